"""Test-only callbacks that a real train.py process loads through the config (`+callbacks.NAME._target_=
tests.training.probes.CLASS`): they record what each rank actually drew and did, inject a failure on one rank, or
stop a fit early. Nothing in src/ knows about them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch


def first_param(module: L.LightningModule) -> torch.nn.Parameter:
    return next(module.model.parameters())


class RecordDraws(L.Callback):
    """Writes `<out_dir>/rank<R>.pt` after each of the first `steps` steps: per step the t and ε the loss drew, the
    batch it saw, Adam's step count, the EMA's count, the skipped steps and the weights; also this rank's order of
    the first epoch as the (Lightning-processed) train loader's sampler gives it."""

    def __init__(self, out_dir: str, steps: int = 4) -> None:
        self.out_dir, self.steps = Path(out_dir), int(steps)
        self.record: dict[str, Any] = {"steps": []}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sampler = trainer.train_dataloader.sampler
        self.record.update(rank=trainer.global_rank, world_size=trainer.world_size,
                           sampler=type(sampler).__name__, epoch_order=list(iter(sampler)))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step > self.steps:
            return
        adam = trainer.optimizers[0].state.get(first_param(pl_module), {})
        self.record["steps"].append({
            "step": trainer.global_step,
            "t": pl_module.last_timesteps.cpu().clone(),
            "eps": pl_module.last_noise.cpu().clone(),
            "batch": batch.detach().cpu().clone(),
            "adam_step": int(adam["step"]) if "step" in adam else 0,
            "ema_count": int(pl_module.ema.n_averaged),
            "skipped": pl_module.skipped_steps,
            "weights": torch.cat([p.detach().flatten().cpu() for p in pl_module.model.parameters()]),
        })
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(self.record, self.out_dir / f"rank{trainer.global_rank}.pt")


class NanOnRank(L.Callback):
    """Makes the loss NaN on rank `rank` only, for the batch that would make optimizer step `step`."""

    def __init__(self, rank: int, step: int) -> None:
        self.rank, self.step = int(rank), int(step)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.global_rank != self.rank:
            return
        original = pl_module.diffusion_loss

        def loss(x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
            value = original(x0, generator)
            return value * float("nan") if trainer.global_step + 1 == self.step else value

        pl_module.diffusion_loss = loss


class TorchValueErrorAt(L.Callback):
    """A ValueError raised by torch itself inside fit (a shape mismatch), at the start of step `step`: a failure,
    not bad input."""

    def __init__(self, step: int = 1) -> None:
        self.step = int(step)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if trainer.global_step + 1 == self.step:
            torch.nn.functional.binary_cross_entropy(torch.zeros(2), torch.zeros(3))


class StopAfter(L.Callback):
    """Ends fit after optimizer step `step`, as a preemption would, without touching max_steps."""

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


class RecordLR(L.Callback):
    """Appends {global step: the LR that step uses} to the JSON file `path` (kept across runs)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        seen = json.loads(self.path.read_text()) if self.path.exists() else {}
        seen[str(trainer.global_step)] = trainer.optimizers[0].param_groups[0]["lr"]
        self.path.write_text(json.dumps(seen))
