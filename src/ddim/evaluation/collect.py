"""python -m ddim.evaluation.collect SWEEP_DIR [--tables-only]: the end of a sweep, rebuilt from what is on disk.

The same step the end-of-sweep callback runs (`collect_sweep`): results.csv, results.md and fid_vs_steps.png from
the cells' metrics.json, then the figures and the W&B summary as the sweep's own multirun.yaml asks. For sweeps
whose launching process did not live to the end (a login node that went away, a cell job killed outright), or to
refresh the tables while cluster jobs are still finishing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def sweep_config(sweep_dir: Path) -> DictConfig | None:
    """The config the sweep was launched with (Hydra writes it as multirun.yaml), or None without one."""
    path = sweep_dir / "multirun.yaml"
    return OmegaConf.load(path) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddim.evaluation.collect", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="the hydra.sweep.dir of an `evaluate.py -m` run")
    parser.add_argument("--tables-only", action="store_true",
                        help="only results.csv/md and the plot; no figures (they load the model) and no W&B summary")
    args = parser.parse_args(argv)
    sweep_dir: Path = args.sweep_dir
    if not sweep_dir.is_dir():
        print(f"error: {sweep_dir}: no such folder; expected the hydra.sweep.dir of an `evaluate.py -m` run",
              file=sys.stderr)
        return 2
    if not any(sweep_dir.glob("*/metrics.json")):
        print(f"error: {sweep_dir} holds no <job>/metrics.json; expected the hydra.sweep.dir of an `evaluate.py -m` "
              f"run with at least one cell finished", file=sys.stderr)
        return 2

    from ddim.evaluation.pipeline.sweep import collect_sweep

    config = None if args.tables_only else sweep_config(sweep_dir)
    if config is None and not args.tables_only:
        print(f"note: no {sweep_dir / 'multirun.yaml'}: tables only", file=sys.stderr)
    collect_sweep(sweep_dir, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
