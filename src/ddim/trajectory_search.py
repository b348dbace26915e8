"""python -m ddim.trajectory_search ckpt=PATH sampler.method=ddim sampler.steps=10: the least-cost τ of S indices for
this model and solver (ddim.diffusion.search), written as a small JSON file (ddim.sampling.trajectory_file) that
`sampler.skip=searched sampler.trajectory_file=PATH` reads. -m sampler.steps=5,10 searches several S."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import hydra
import torch
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ddim.diffusion import NoiseSchedule
from ddim.errors import InputError
from ddim.models import DEFAULT_SCHEDULE, read_checkpoint
from ddim.sampling.search import SearchOptions, file_digest, search
from ddim.sampling.trajectory_file import trajectory_file_name, write_trajectory_file

log = logging.getLogger("trajectory_search")
CONF = Path(__file__).resolve().parents[2] / "conf"


@dataclass
class SearchedSampler:
    method: str = "ddim"  # the solver τ is searched for: ddim | dpmpp_2m
    steps: int = 10  # S, the number of network indices of τ (= NFE for both)


@dataclass
class TrajectorySearchConfig:
    ckpt: Optional[str] = None  # the model, in any format evaluate.py's ckpt= reads
    ema: bool = True  # search with the EMA weights
    trust_pickle: bool = False
    out: Optional[str] = None  # the file to write; null: <run dir, or -m's sweep dir>/<method>_S<steps>.json
    device: str = "auto"  # auto (CUDA where there is one) | cpu | cuda
    sampler: SearchedSampler = field(default_factory=SearchedSampler)
    search: SearchOptions = field(default_factory=SearchOptions)


ConfigStore.instance().store(name="trajectory_search_schema", node=TrajectorySearchConfig)


def run_search(cfg: DictConfig, run_dir: str | Path) -> Path:
    """Loads the model, searches and writes the file; returns its path."""
    if not cfg.ckpt:
        raise InputError("ckpt=PATH is required: the model whose trajectory is searched")
    options = SearchOptions(**OmegaConf.to_container(cfg.search, resolve=True))
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = read_checkpoint(cfg.ckpt, ema=cfg.ema, trust_pickle=cfg.trust_pickle)
    model = loaded.model.to(device).eval().requires_grad_(False)
    schedule = NoiseSchedule.from_config(loaded.schedule or DEFAULT_SCHEDULE)
    config = model.config
    shape = (config["in_channels"], config["resolution"], config["resolution"])
    method, steps = cfg.sampler.method, cfg.sampler.steps
    found = search(model, schedule, shape, method, steps, options, file_digest(cfg.ckpt), device)
    out = Path(cfg.out) if cfg.out else Path(run_dir) / trajectory_file_name(method, steps)
    write_trajectory_file(out, found)
    log.info("%s S=%d: τ=%s cost %.4g (fixed spacings on the grid: %s); search %d NFE x %d latents, %.1f s -> %s",
             method, steps, found.timesteps, found.cost, found.details["fixed_spacing_costs_on_grid"], found.search_nfe,
             options.num_latents, found.search_seconds, out)
    return out


@hydra.main(config_path=str(CONF), config_name="trajectory_search", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    # -m over methods and S: every file in the sweep dir itself, the folder sampler.trajectory_file then takes
    run_dir = hydra_cfg.sweep.dir if hydra_cfg.mode == RunMode.MULTIRUN else hydra_cfg.runtime.output_dir
    try:
        out = run_search(cfg, run_dir)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(out)


if __name__ == "__main__":
    main()
