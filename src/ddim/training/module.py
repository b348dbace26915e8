"""The LightningModule: L_γ on ε-prediction, Adam with warm-up, and an EMA copy used for sampling."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.optim.swa_utils import AveragedModel

from ddim.diffusion import LOSS_WEIGHTINGS, NoiseSchedule, loss_weights, q_sample
from ddim.models import UNet

log = logging.getLogger(__name__)


LR_DECAYS = ("constant", "cosine")


def warmup_lr_factor(step: int, warmup_steps: int, decay: str = "constant", total_steps: int | None = None) -> float:
    """Linear warm-up from 0 to the full learning rate over `warmup_steps`, then constant (Ho et al.) or a cosine
    down to 0 at `total_steps`: short runs end on a low LR, where the loss settles (see docs/demo_experiments.md)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def ema_decay_at(num_averaged: int, decay: float, warmup: bool = True) -> float:
    """The EMA decay for the update after `num_averaged` earlier ones: min(decay, (1 + n)/(10 + n)) with warm-up,
    so short runs are not dominated by the random initialisation (0.999^2500 still weighs it 8 %)."""
    return min(decay, (1 + num_averaged) / (10 + num_averaged)) if warmup else decay


def ema_update_fn(decay: float, warmup: bool) -> Callable[[list, list, torch.Tensor], None]:
    """AveragedModel's multi_avg_fn: averaged ← d · averaged + (1 − d) · current, d from ema_decay_at."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        weight = 1.0 - ema_decay_at(int(num_averaged), decay, warmup)
        for avg, cur in zip(averaged, current):
            avg.lerp_(cur.detach(), weight)

    return update


NONFINITE_LOSS = ("stop", "skip")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf with module.nonfinite_loss=stop; the checkpoints already written are kept."""


def antithetic_timesteps(batch_size: int, T: int, device: torch.device, generator=None) -> torch.Tensor:
    """t uniform on 0..T−1, drawn in pairs (t, T−1−t) to lower the variance of the loss (official DDIM code)."""
    half = torch.randint(0, T, (batch_size // 2 + 1,), device=device, generator=generator)
    return torch.cat([half, T - 1 - half])[:batch_size]


class DiffusionModule(L.LightningModule):
    """Trains ε_θ with L_γ; `self.ema.module` holds the exponential moving average of the weights."""

    def __init__(
        self,
        model: dict[str, Any],
        schedule: dict[str, Any],
        lr: float = 2e-4,
        adam_betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        warmup_steps: int = 5000,
        lr_decay: str = "constant",
        ema_decay: float = 0.9999,
        ema_warmup: bool = True,
        loss_weighting: str = "simple",
        min_snr_gamma: float = 5.0,
        antithetic: bool = True,
        data: dict[str, Any] | None = None,
        nonfinite_loss: str = "stop",
    ) -> None:
        super().__init__()
        for name, value in (("lr", lr), ("weight_decay", weight_decay), ("warmup_steps", warmup_steps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (name == "lr" and not value):
                expected = "a positive number" if name == "lr" else "a number >= 0"
                raise ValueError(f"module.{name}={value!r}; expected {expected}")
        if nonfinite_loss not in NONFINITE_LOSS:
            raise ValueError(f"module.nonfinite_loss={nonfinite_loss!r}; expected one of {', '.join(NONFINITE_LOSS)}")
        if lr_decay not in LR_DECAYS:
            raise ValueError(f"module.lr_decay={lr_decay!r}; expected one of {', '.join(LR_DECAYS)}")
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting={loss_weighting!r}; expected one of {', '.join(LOSS_WEIGHTINGS)}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay={ema_decay!r}; expected a value in [0, 1)")
        # plain dicts only, so that checkpoints load with torch.load(weights_only=True) and carry the architecture
        self.save_hyperparameters()
        self.model = UNet(**model)
        self.ema = AveragedModel(self.model, multi_avg_fn=ema_update_fn(ema_decay, ema_warmup), use_buffers=True)
        self.ema.requires_grad_(False)
        self.schedule = NoiseSchedule.from_config(schedule)
        self.register_buffer("alphas_cumprod", self.schedule.alphas_cumprod.float(), persistent=False)
        weights = loss_weights(self.schedule, loss_weighting, min_snr_gamma).float()
        self.register_buffer("loss_weights", weights, persistent=False)
        self.skipped_steps = 0  # batches whose loss was not finite, with nonfinite_loss=skip
        self._loss_was_finite = True

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x, t)

    def diffusion_loss(self, x0: torch.Tensor) -> torch.Tensor:
        """L_γ: γ_t · mean over pixels of ‖ε_θ(x_t, t) − ε‖², averaged over the batch (Ho et al.'s meanflat)."""
        batch = x0.shape[0]
        if self.hparams.antithetic:
            t = antithetic_timesteps(batch, self.schedule.T, x0.device)
        else:
            t = torch.randint(0, self.schedule.T, (batch,), device=x0.device)
        noise = torch.randn_like(x0)
        a_t = self.alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1)))
        eps = self.model(q_sample(x0, a_t, noise), t)
        per_sample = (eps.float() - noise).square().flatten(1).mean(1)
        return (self.loss_weights[t] * per_sample).mean()

    def training_step(self, batch: torch.Tensor | tuple | list, batch_idx: int) -> torch.Tensor | None:
        x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
        loss = self.diffusion_loss(x0)
        if not torch.isfinite(loss):
            step = self.trainer.global_step + 1  # the step this batch would have made
            if self.hparams.nonfinite_loss == "stop":
                raise NonFiniteLossError(
                    f"loss is {loss.item()} at step {step}; stopped before the optimizer used it. The checkpoints "
                    f"already written are kept (resume=.../last.ckpt); module.nonfinite_loss=skip skips such steps")
            self.skipped_steps += 1
            self._loss_was_finite = False
            log.warning("loss is %s at step %d: step skipped (%d so far)", loss.item(), step, self.skipped_steps)
            self.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False)
            # Lightning then runs no backward, so the optimizer has no gradients and changes nothing; the step
            # still counts (global step, LR schedule), and the EMA is not updated
            return None
        self._loss_was_finite = True
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=x0.shape[0])
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimizer step, then the EMA update: both inside the step, so that what callbacks see at the end of
        a batch (the checkpoint of step N, its sample grid) holds the EMA of step N too."""
        super().optimizer_step(*args, **kwargs)
        if self._loss_was_finite:
            self.ema.update_parameters(self.model)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.adam_betas),
            weight_decay=self.hparams.weight_decay,
        )
        warmup, decay = self.hparams.warmup_steps, self.hparams.get("lr_decay", "constant")
        total = self.trainer.max_steps
        if decay != "constant" and total < 1:
            raise ValueError(f"module.lr_decay={decay} decays to 0 at trainer.max_steps, which is {total}; "
                             f"set trainer.max_steps (or module.lr_decay=constant)")
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_lr_factor(step, warmup, decay, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @property
    def ema_model(self) -> torch.nn.Module:
        return self.ema.module
