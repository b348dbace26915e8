"""The evaluation task: a config becomes a CellPlan, the cell runs, its metrics go to metrics.json and W&B."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ddim.data import DATASET_INFO, check_available
from ddim.errors import InputError, MissingInputError
from ddim.models import (
    check_torch_file, is_hub_uri, read_checkpoint, read_hyper_parameters, resolve_hub, resolve_pretrained,
)

from ..metrics.features import DIGITS_CONV, INCEPTION
from .cell import CellBusy, run_cell, write_failure
from .options import GROUPS
from .plan import CellPlan

log = logging.getLogger(__name__)


def resolve_ckpt(cfg: DictConfig) -> str:
    """`ckpt=PATH` (or hf://ORG/REPO, through huggingface_hub's cache), else the local file of `pretrained=NAME`,
    downloaded on first use unless pretrained.download=false; one clear line when neither is usable."""
    if is_hub_uri(cfg.get("ckpt")):
        return str(resolve_hub(str(cfg.ckpt)))
    if cfg.get("ckpt"):
        path = Path(str(cfg.ckpt)).expanduser()
        if not path.exists():
            raise MissingInputError(f"ckpt={cfg.ckpt}: no such file or folder; expected a checkpoint of this project, "
                                    f"published DDPM weights, or a diffusers folder")
        return str(path)
    if cfg.get("pretrained"):
        return str(resolve_pretrained(cfg.pretrained.name, cfg.pretrained.get("root"), ema=bool(cfg.ema),
                                      download=bool(cfg.pretrained.get("download", True))))
    raise InputError("no model given: pass ckpt=PATH (a checkpoint) or pretrained=NAME (cifar10, celeba, lsun_church, lsun_bedroom)")


def dataset_for(cfg: DictConfig, ckpt: str) -> dict[str, Any]:
    """The reference data set: dataset=... if given, else the one the checkpoint was trained on, else the
    pretrained model's."""
    if cfg.get("dataset"):
        data = OmegaConf.to_container(cfg.dataset, resolve=True)
    elif cfg.get("pretrained"):
        name = cfg.pretrained.dataset
        root = os.path.join(os.environ.get("DDIM_DATA", "data"), name)
        # LSUN has no torchvision loader here: its images are read as a folder ($DDIM_DATA/lsun_church, ...)
        data = {"name": name if name in DATASET_INFO else "folder", "root": root,
                "resolution": cfg.pretrained.resolution}
    else:
        # read_hyper_parameters refuses an empty, truncated or non-torch file with a line saying so
        data = (read_hyper_parameters(ckpt) or {}).get("data")
        if not data:
            # a file that is no checkpoint at all says so here, rather than being asked for its data set
            read_checkpoint(ckpt, ema=bool(cfg.ema), trust_pickle=bool(cfg.trust_pickle))
            raise InputError(f"ckpt={ckpt} does not say which data set it was trained on; pass dataset=NAME")
    return {k: data[k] for k in ("name", "root", "resolution") if k in data}


def options_from_config(cfg: DictConfig) -> dict[str, Any]:
    """Each option group's dataclass from the config (the same classes are its schemas), checked when made."""
    return {group: cls(**OmegaConf.to_container(cfg[group], resolve=True)) for group, cls in GROUPS.items()}


def plan_from_config(cfg: DictConfig, out_dir: str) -> CellPlan:
    options = options_from_config(cfg)
    sampler, fid, evaluation = options["sampler"], options["fid"], options["eval"]
    ckpt = resolve_ckpt(cfg)
    if Path(ckpt).is_file() and Path(ckpt).suffix != ".safetensors":
        check_torch_file(ckpt)  # an empty, cut-short or non-torch file says so before anything else is asked
    dataset = dataset_for(cfg, ckpt)
    check_available(dataset["name"], dataset.get("root"))  # a missing data set is found before any weights load
    extractor = fid.extractor
    if extractor == "auto":
        extractor = DIGITS_CONV if dataset["name"] == "digits" else INCEPTION
    recon = evaluation.recon_samples
    if (evaluation.recon_only_eta0 and sampler.eta != 0) or not sampler.can_encode:
        recon = 0
    return CellPlan(ckpt=ckpt, out_dir=out_dir, dataset=dataset, extractor=extractor, **options, seed=int(cfg.seed),
                    ema=bool(cfg.ema), trust_pickle=bool(cfg.trust_pickle), recon_samples=recon)


def run_evaluation(cfg: DictConfig, out_dir: str, multirun: bool = False, group: str | None = None) -> dict[str, Any]:
    """Runs one cell. In a multirun a failure is written to metrics.json and logged, so the other cells and the
    end-of-sweep table still happen; in a single run it propagates."""
    try:
        plan = plan_from_config(cfg, out_dir)
        metrics = run_cell(plan)
    except CellBusy as error:
        if not multirun:
            raise
        log.warning("skipped: %s", error)  # nothing written: the other process writes this cell's metrics.json
        return {"status": "busy", **{k: cfg.sampler.get(k) for k in ("steps", "eta", "skip")}}
    except Exception as error:
        if not multirun:
            raise
        log.error("cell failed: %s: %s", type(error).__name__, error)
        metrics = write_failure(out_dir, cell_settings(cfg), error)
    log_cell_to_wandb(cfg, metrics, out_dir, group)
    return metrics


def cell_settings(cfg: DictConfig) -> dict[str, Any]:
    """What a failed cell's metrics.json says about it, so that the table puts it in its row and column."""
    return {**{k: cfg.sampler.get(k) for k in ("steps", "eta", "skip", "method")}, "seed": cfg.get("seed")}


def log_cell_to_wandb(cfg: DictConfig, metrics: dict[str, Any], out_dir: str, group: str | None) -> None:
    """One W&B run per cell, grouped by sweep; offline unless wandb=online."""
    if not cfg.wandb.enabled:
        return
    import wandb

    method = metrics.get("method") or "ddim"
    name = f"S{metrics.get('steps')}-" + (f"eta{metrics.get('eta')}" if method == "ddim" else method)
    try:
        run = wandb.init(project=cfg.wandb.project, mode=cfg.wandb.mode, dir=out_dir, name=name, group=group,
                         job_type="evaluate", config=OmegaConf.to_container(cfg, resolve=True), reinit="finish_previous",
                         settings=wandb.Settings(silent=True))
        run.log({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        run.summary.update({k: v for k, v in metrics.items() if isinstance(v, (int, float, str))})
    except Exception as error:  # W&B unreachable or raising: the cell's metrics.json is written already
        log.error("W&B logging failed (%s: %s); the results are in %s", type(error).__name__, error,
                  Path(out_dir) / "metrics.json")
    finally:
        _finish_quietly(wandb)


def _finish_quietly(wandb: Any) -> None:
    try:
        wandb.finish()
    except Exception as error:
        log.error("wandb.finish failed (%s: %s)", type(error).__name__, error)
