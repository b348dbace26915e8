"""Evaluate checkpoints with DDIM's generalized sampler: one cell, or an S × η grid with -m (see conf/evaluate.yaml)."""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ddim.errors import InputError
from ddim.evaluation.pipeline.options import renamed_override  # also registers the config schemas
from ddim.evaluation.pipeline.task import run_evaluation
from ddim.utils.signals import exit_on_sigterm

log = logging.getLogger("evaluate")


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_sigterm("stopping; the finished batches are on disk and the same command continues from them")
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        group = str(hydra_cfg.sweep.dir) if multirun else None
        metrics = run_evaluation(cfg, hydra_cfg.runtime.output_dir, multirun=multirun, group=group)
    except InputError as error:
        # bad input is one line, not a traceback; any other error (out of memory, a bug) keeps its traceback
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:  # a write that failed (a full disk): what is written is whole, a rerun goes on
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    if not multirun:
        shown = {k: metrics.get(k) for k in ("metric", "value", "kid_mean", "recon_mse", "nfe", "images_per_second")}
        shown.update({k: metrics[k] for k in ("isc_mean", "precision", "recall") if metrics.get(k) is not None})
        print(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))


if __name__ == "__main__":
    renamed = renamed_override(sys.argv[1:])
    if renamed:  # before Hydra, whose own message would not name the new key
        print(f"error: {renamed}", file=sys.stderr)
        sys.exit(2)
    main()
