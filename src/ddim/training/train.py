"""The training task: build data, module, callbacks, loggers and trainer from the config, then fit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import InstantiationException
import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins.io import CheckpointIO
from omegaconf import DictConfig, OmegaConf

from ddim.errors import InputError, MissingInputError
from ddim.models import CheckpointError, read_checkpoint, read_hyper_parameters

from .callbacks import CheckpointOnInterrupt
from .checkpoint_io import AtomicCheckpointIO
from .module import DiffusionModule

log = logging.getLogger(__name__)


def plain(cfg: DictConfig | None) -> dict[str, Any]:
    """A resolved config node as plain builtins, with Hydra's `_target_` dropped."""
    data = OmegaConf.to_container(cfg, resolve=True) if cfg is not None else {}
    return {k: v for k, v in data.items() if k != "_target_"}


def checkpoint_hparams(path: str | Path) -> dict[str, Any]:
    """The hyper-parameters stored in one of our checkpoints, read without running pickled code; a damaged file
    is one line that says so and names the newest sound checkpoint beside it."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"resume={path}: no such checkpoint file")
    try:
        hparams = read_hyper_parameters(path)
    except CheckpointError as error:  # its message starts with the path
        previous = _previous_sound_checkpoint(path)
        hint = f"; the newest sound checkpoint beside it is resume={previous}" if previous else ""
        raise CheckpointError(f"resume={error}{hint}") from None
    if not hparams or "model" not in hparams:
        try:  # a file that is no checkpoint at all, or one that needs unpickling, says so first
            read_checkpoint(path)
        except CheckpointError as error:
            raise CheckpointError(f"resume={error}") from None
        raise InputError(f"resume={path}: not a training checkpoint of this project (no hyper_parameters.model)")
    return hparams


def _previous_sound_checkpoint(damaged: Path) -> Path | None:
    """Where to resume from instead: the newest other checkpoint in the same folder that reads as one of ours."""
    # "[!.]*": not the hidden temp files of an interrupted atomic write
    others = sorted((p for p in damaged.parent.glob("[!.]*.ckpt") if p.resolve() != damaged.resolve()),
                    key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for candidate in others:
        try:
            if "model" in (read_hyper_parameters(candidate) or {}):
                return candidate
        except CheckpointError:
            continue
    return None


def check_model_fits_data(model: dict[str, Any], datamodule: Any, dataset_name: str) -> None:
    if model["in_channels"] != datamodule.channels or model["resolution"] != datamodule.resolution:
        raise InputError(
            f"model takes {model['in_channels']}x{model['resolution']}x{model['resolution']} images but dataset "
            f"{dataset_name} gives {datamodule.channels}x{datamodule.resolution}x{datamodule.resolution}; "
            f"pick a matching model=... (or experiment=...)"
        )


def build_module(cfg: DictConfig, resume: str | Path | None = None) -> DiffusionModule:
    """The module from the config, or from the resumed checkpoint's own architecture and schedule."""
    model, schedule = plain(cfg.model), plain(cfg.diffusion)
    if resume:
        saved = checkpoint_hparams(resume)
        if saved["model"] != model or saved["schedule"] != schedule:
            log.warning("resume: using the checkpoint's model and schedule, which differ from the config")
        model, schedule = saved["model"], saved["schedule"]
    # cfg.seed keys the training noise (with the rank and the step): the same seed resumes the same stream
    return DiffusionModule(model=model, schedule=schedule, data=plain(cfg.dataset), seed=cfg.seed,
                           **plain(cfg.module))


def checkpoint_in_run_dir(output_dir: Path) -> Path | None:
    """The newest state this run dir already holds: checkpoints/last.ckpt (periodic, or written on SIGTERM) or
    Lightning's hpc_ckpt_N.ckpt (SLURM auto-requeue). A requeued job, rerun in the same dir, continues from it."""
    found = [p for p in [output_dir / "checkpoints" / "last.ckpt", *output_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fits the model; returns where the checkpoint and sample grid are and the last logged loss."""
    output_dir = Path(cfg.paths.output_dir)
    steps = cfg.trainer.get("max_steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or not (steps == -1 or steps >= 1):
        raise InputError(f"trainer.max_steps={steps!r}; expected a positive number of optimizer steps (-1: no limit)")
    # the initial weights only (the same on every rank; DDP starts from rank 0's anyway): the noise of every step,
    # the flips and the data order are keyed by (seed, rank, step) and (seed, epoch), see ddim.data.randomness
    L.seed_everything(cfg.seed, workers=True)
    data_seed = cfg.dataset.get("seed")
    datamodule = hydra.utils.instantiate(cfg.dataset, seed=cfg.seed if data_seed is None else data_seed)
    datamodule.check_available()  # a missing data set is one line, before any model is built
    resume = cfg.get("resume") or checkpoint_in_run_dir(output_dir)
    if resume and not cfg.get("resume"):
        log.info("resuming from %s, found in this run's directory", resume)
    module = build_module(cfg, resume)
    check_model_fits_data(module.hparams.model, datamodule, cfg.dataset.name)
    # entries that are plain values (callbacks.fid_every_n_steps) are settings the callbacks' nodes interpolate
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if isinstance(c, DictConfig)]
    loggers = [hydra.utils.instantiate(c) for c in (cfg.get("logger") or {}).values()]
    loggers = [logger for logger in loggers if _logger_starts(logger)]
    if not loggers:  # logger=none: Lightning refuses a LearningRateMonitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    # checkpoints are written to a temp file and renamed, unless the config brings its own CheckpointIO
    plugins = [hydra.utils.instantiate(p) for p in (cfg.trainer.get("plugins") or [])]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                                 plugins=plugins)
    processes = trainer.num_devices * trainer.num_nodes
    per_process = datamodule.per_process_batch_size(processes)  # one line now if the global batch cannot split
    if datamodule.global_batch_size is not None and trainer.is_global_zero:
        log.info("batch: dataset.global_batch_size=%d over %d processes, %d each", datamodule.global_batch_size,
                 processes, per_process)
    last = output_dir / "checkpoints" / "last.ckpt"
    interrupt = next((c for c in callbacks if isinstance(c, CheckpointOnInterrupt)), None)
    try:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None, weights_only=True)
        except SIGTERMException:  # raised at an epoch's end after the stop: reported below when it was saved
            if interrupt is None or interrupt.stopped_at is None:
                raise
        if interrupt is None or interrupt.stopped_at is None:
            trainer.save_checkpoint(last)  # the end state, whatever every_n_train_steps was
    finally:
        _finish_wandb()
    loss = trainer.callback_metrics.get("train/loss")
    result = {
        "checkpoint": str(last),
        "samples": str(output_dir / "samples" / "last.png"),
        "global_step": trainer.global_step,
        "loss": float(loss) if loss is not None else None,
        "stopped_by": interrupt.stopped_by if interrupt is not None else None,  # SIGTERM, Ctrl+C, requeue
    }
    if result["stopped_by"]:  # the state to continue from: last.ckpt, or hpc_ckpt_N.ckpt when requeued
        result["checkpoint"] = str(interrupt.saved_to)
    if trainer.is_global_zero and not result["stopped_by"]:
        log.info("checkpoint: %s", result["checkpoint"])
        log.info("sample grid: %s", result["samples"])
    return result


def is_bad_input(error: BaseException) -> bool:
    """Whether `error` is bad input (exit 2, one line): an InputError, also behind Hydra's InstantiationException.
    CheckpointError counts too: a damaged resume= file (it is being made an InputError subclass)."""
    if isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return isinstance(error, (InputError, CheckpointError))


def error_line(error: BaseException) -> str:
    """The one line an entry point prints for `error`: a DataLoader worker's error comes wrapped in a traceback,
    whose last line is the original message."""
    if isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    message = str(error)
    if message.startswith("Caught ") and "Original Traceback" in message:
        last = message.strip().splitlines()[-1]
        message = last.split(": ", 1)[1] if ": " in last else last
    return message


def _logger_starts(logger: Any) -> bool:
    """W&B unreachable or raising is one error line; training goes on with the other loggers (the CSV log)."""
    if not isinstance(logger, WandbLogger):
        return True
    try:
        logger.experiment  # noqa: B018  (starts the run now rather than at the first step)
    except Exception as error:
        log.error("W&B is unavailable (%s: %s); training goes on without it", type(error).__name__, error)
        return False
    return True


def _finish_wandb() -> None:
    """Close the W&B run even when fit failed, so the next multirun job starts clean."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()
