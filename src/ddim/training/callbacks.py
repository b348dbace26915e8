"""Callbacks: a sample grid from the EMA weights and a fixed x_T, so grids are comparable over training; a
checkpoint when the run is stopped by SIGTERM or Ctrl+C, or SLURM's requeue signal, so the rerun continues where it
stopped."""

from __future__ import annotations

import logging
import shutil
import signal
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from ddim.errors import InputError
from ddim.sampling import SamplerSettings, network_samples, save_image_grid
from ddim.utils import atomic_path

log = logging.getLogger(__name__)


class SampleGrid(L.Callback):
    """Every `every_n_steps` optimizer steps (and at the end), samples `num_samples` images with the EMA model
    and writes `<out_dir>/step_XXXXXXX.png` plus a copy `last.png`; also logs it to W&B when that logger is on."""

    def __init__(
        self, out_dir: str, every_n_steps: int = 500, num_samples: int = 64, steps: int = 50, eta: float = 0.0,
        skip: str = "uniform", seed: int = 0, nrow: int = 8, upscale: int = 1,
    ) -> None:
        if every_n_steps < 1 or num_samples < 1:
            raise InputError(f"SampleGrid: every_n_steps={every_n_steps}, num_samples={num_samples}; expected >= 1")
        SamplerSettings(steps, eta, skip)  # η and skip are checked now (InputError), not at the first grid
        self.out_dir = Path(out_dir)
        self.every_n_steps, self.num_samples = every_n_steps, num_samples
        self.steps, self.eta, self.skip, self.seed = steps, eta, skip, seed
        self.nrow, self.upscale = nrow, upscale
        self._last_step = -1

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self.write_grid(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.received_sigterm:  # after SIGTERM the seconds left are for exiting, not for a grid
            self.write_grid(trainer, pl_module)

    def make_samples(self, pl_module: L.LightningModule) -> torch.Tensor:
        """The same x_T and noise every time: image i depends only on (seed, i)."""
        settings = SamplerSettings(min(self.steps, pl_module.schedule.T), self.eta, self.skip)
        return network_samples(pl_module.ema_model, pl_module.schedule, settings, range(self.num_samples), self.seed,
                               pl_module.device)

    def write_grid(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step or not trainer.is_global_zero:
            return
        self._last_step = step
        images = self.make_samples(pl_module)
        path = save_image_grid(images, self.out_dir / f"step_{step:07d}.png", nrow=self.nrow, upscale=self.upscale)
        with atomic_path(self.out_dir / "last.png") as tmp:
            shutil.copyfile(path, tmp)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("samples", [str(path)], step=step, caption=[f"step {step}"])


class CheckpointOnInterrupt(L.Callback):
    """Saves `path` when fit stops on SIGTERM (a scheduler's preemption or time limit, scancel, kill) or Ctrl+C.
    Lightning turns SIGTERM into an exception after the current optimizer step, so the state saved is whole; a
    rerun in the same run dir resumes from it (train() looks there). Other errors save nothing: a run that failed
    is not a state to continue from.

    Under SLURM auto-requeue (trainer=ddp_multinode) Lightning saves hpc_ckpt_N.ckpt inside its SIGUSR1 handler,
    which Python runs between any two bytecodes: after Adam's step but before the global step is counted, say, so
    the file can hold an Adam step one ahead of global_step. Here that handler only raises a flag, and Lightning's
    own save-and-requeue runs at the next step boundary."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.stopped_at: int | None = None
        self.saved_to: Path | None = None  # last.ckpt, or hpc_ckpt_N.ckpt when requeued
        self.stopped_by: str | None = None
        self._requeue: tuple[int, object] | None = None  # (signal, Lightning's handler) while deferred
        self._requeue_asked = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning registers its handlers when fit starts, before this hook
        environment = trainer._accelerator_connector.cluster_environment
        requeue_signal = getattr(environment, "requeue_signal", None)
        if not getattr(environment, "auto_requeue", False) or requeue_signal is None:
            return
        handler = signal.getsignal(requeue_signal)
        if callable(handler):
            self._requeue = (requeue_signal, handler)
            signal.signal(requeue_signal, self._ask_requeue)

    def _ask_requeue(self, signum: int, frame: object) -> None:
        self._requeue_asked = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if self.stopped_at is not None:
            return
        # Lightning checks the flag within an epoch only under DDP; on one process it waits for the epoch's end
        # (CelebA: 1,270 batches). Every rank decides together, so no rank waits alone in the save's barrier; one
        # reduction per step, a second only on the step that stops
        reduce = trainer.strategy.reduce_boolean_decision
        if not reduce(trainer.received_sigterm or self._requeue_asked, all=False):
            return
        if reduce(trainer.received_sigterm, all=False):
            self.save(trainer)
        else:
            signum, lightning_handler = self._requeue
            path = Path(trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir))
            lightning_handler(signum, None)  # saves that hpc_ckpt_N.ckpt and calls `scontrol requeue`
            self._stopped(trainer, path, "SLURM's requeue signal")
            rank_zero_info(f"requeued at step {trainer.global_step}: saved {path}")
        trainer.should_stop = True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # a data-loader worker killed by the same SIGTERM can surface first, as a RuntimeError: the flag decides
        if not (trainer.received_sigterm or isinstance(exception, KeyboardInterrupt)):
            return
        if self.stopped_at != trainer.global_step:  # not saved already by on_train_batch_end
            self.save(trainer, "Ctrl+C" if isinstance(exception, KeyboardInterrupt) else "SIGTERM")

    def save(self, trainer: L.Trainer, reason: str = "SIGTERM") -> None:
        trainer.save_checkpoint(self.path)
        self._stopped(trainer, self.path, reason)
        rank_zero_info(f"interrupted at step {trainer.global_step}: saved {self.path}; "
                       "rerun with the same hydra.run.dir to continue")

    def _stopped(self, trainer: L.Trainer, path: Path, reason: str) -> None:
        self.stopped_at, self.saved_to, self.stopped_by = trainer.global_step, path, reason
