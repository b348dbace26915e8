"""The LightningModule: L_γ on ε̂ (whatever the network predicts), Adam with warm-up, and an EMA copy used for
sampling."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.optim.swa_utils import AveragedModel

from ddim.data.randomness import STREAM_DIFFUSION, STREAM_DROPOUT, keyed_generator, keyed_global_rng
from ddim.diffusion import LOSS_WEIGHTINGS, NoiseSchedule, loss_weights, q_sample
from ddim.diffusion.prediction import eps_x0_from_output
from ddim.errors import InputError
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
    """Trains ε_θ with L_γ; `self.ema.module` holds the exponential moving average of the weights.

    The step's t, ε and dropout come from generators keyed by (seed, global rank, global step): every rank draws its
    own, and a resumed run draws what the uninterrupted one would have (ddim.data.randomness). A cosine LR decays
    over `lr_decay_steps`, else over trainer.max_steps of the first fit, a length the checkpoint keeps: a resume
    with a longer max_steps continues the same curve (at 0 past its end) instead of jumping back up."""

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
        lr_decay_steps: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("lr", lr), ("weight_decay", weight_decay), ("warmup_steps", warmup_steps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (name == "lr" and not value):
                expected = "a positive number" if name == "lr" else "a number >= 0"
                raise InputError(f"module.{name}={value!r}; expected {expected}")
        if nonfinite_loss not in NONFINITE_LOSS:
            raise InputError(f"module.nonfinite_loss={nonfinite_loss!r}; expected one of {', '.join(NONFINITE_LOSS)}")
        if lr_decay not in LR_DECAYS:
            raise InputError(f"module.lr_decay={lr_decay!r}; expected one of {', '.join(LR_DECAYS)}")
        if lr_decay_steps is not None and (isinstance(lr_decay_steps, bool) or not isinstance(lr_decay_steps, int)
                                           or lr_decay_steps < 1):
            raise InputError(f"module.lr_decay_steps={lr_decay_steps!r}; expected a positive integer (or null)")
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise InputError(f"loss_weighting={loss_weighting!r}; expected one of {', '.join(LOSS_WEIGHTINGS)}")
        if not 0.0 <= ema_decay < 1.0:
            raise InputError(f"ema_decay={ema_decay!r}; expected a value in [0, 1)")
        # plain dicts only, so that checkpoints load with torch.load(weights_only=True) and carry the architecture
        self.save_hyperparameters()
        self.model = UNet(**model)  # raises InputError for its own config values
        self.prediction = self.model.config["prediction"]  # what its output is: eps, x0 or v
        try:
            self.schedule = NoiseSchedule.from_config(schedule)
        except ValueError as error:  # the pure core raises plain ValueErrors; here they are config values
            raise InputError(str(error)) from None
        self.ema = AveragedModel(self.model, multi_avg_fn=ema_update_fn(ema_decay, ema_warmup), use_buffers=True)
        self.ema.requires_grad_(False)
        self.register_buffer("alphas_cumprod", self.schedule.alphas_cumprod.float(), persistent=False)
        weights = loss_weights(self.schedule, loss_weighting, min_snr_gamma).float()
        self.register_buffer("loss_weights", weights, persistent=False)
        self.skipped_steps = 0  # batches whose loss was not finite, with nonfinite_loss=skip
        self._loss_was_finite = True
        self.lr_decay_length: int | None = None  # the cosine's length, resolved in configure_optimizers
        self._saved_decay_length: int | None = None  # the one a resumed checkpoint carries
        self.last_timesteps: torch.Tensor | None = None  # the t and ε the last loss drew (for inspection)
        self.last_noise: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x, t)

    def diffusion_loss(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L_γ: γ_t · mean over pixels of ‖ε̂ − ε‖², averaged over the batch (Ho et al.'s meanflat); t and ε from
        `generator` (None: the global RNG). An x0- or v-network (model.prediction) is trained through the ε̂ its output
        converts to, so γ keeps its meaning (Theorem 1); loss_weighting=x0_mse or v_mse makes it that type's own MSE."""
        batch = x0.shape[0]
        if self.hparams.antithetic:
            t = antithetic_timesteps(batch, self.schedule.T, x0.device, generator)
        else:
            t = torch.randint(0, self.schedule.T, (batch,), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        self.last_timesteps, self.last_noise = t, noise
        a_t = self.alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1)))
        x_t = q_sample(x0, a_t, noise)
        eps, _ = eps_x0_from_output(self.model(x_t, t).float(), x_t, a_t, self.prediction)
        per_sample = (eps - noise).square().flatten(1).mean(1)
        return (self.loss_weights[t] * per_sample).mean()

    def training_step(self, batch: torch.Tensor | tuple | list, batch_idx: int) -> torch.Tensor | None:
        x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
        key = (self.hparams.seed, self.global_rank, self.trainer.global_step)
        with keyed_global_rng(x0.device, key[0], STREAM_DROPOUT, *key[1:]):
            loss = self.diffusion_loss(x0, keyed_generator(x0.device, key[0], STREAM_DIFFUSION, *key[1:]))
        finite_here = bool(torch.isfinite(loss))
        # every rank decides together (one all-reduce): a rank that skipped alone would leave the others waiting
        # in the gradient all-reduce, and one that stopped alone would leave them hanging
        if not self.trainer.strategy.reduce_boolean_decision(finite_here, all=True):
            step = self.trainer.global_step + 1  # the step this batch would have made
            what = f"loss is {loss.item()}" if not finite_here else "the loss of another process is not finite"
            if self.hparams.nonfinite_loss == "stop":
                raise NonFiniteLossError(
                    f"{what} at step {step}; stopped before the optimizer used it. The checkpoints "
                    f"already written are kept (resume=.../last.ckpt); module.nonfinite_loss=skip skips such steps")
            self.skipped_steps += 1
            self._loss_was_finite = False
            log.warning("%s at step %d: step skipped on every process (%d so far)", what, step, self.skipped_steps)
            self.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False)
            # not None, which Lightning refuses under DDP: a loss with a zero gradient for every parameter, so every
            # rank joins the same gradient all-reduce; on_before_optimizer_step then drops the gradients, and Adam
            # leaves weights and state as they were. The step still counts (global step, LR), the EMA is not updated
            return torch.stack([p.sum() for p in self.model.parameters()]).sum() * 0.0
        self._loss_was_finite = True
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=x0.shape[0])
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self._loss_was_finite:
            optimizer.zero_grad(set_to_none=True)  # Adam skips parameters without a gradient

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
        self.lr_decay_length = self._decay_length(decay)
        # the length is read at each step: a strategy that restores the checkpoint after this still sets it
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_lr_factor(step, warmup, decay, self.lr_decay_length))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _decay_length(self, decay: str) -> int | None:
        """module.lr_decay_steps if given; else the length the resumed checkpoint carries; else trainer.max_steps."""
        if decay == "constant":
            return None
        configured, saved, max_steps = self.hparams.get("lr_decay_steps"), self._saved_decay_length, self.trainer.max_steps
        if configured is not None:
            if saved is not None and saved != configured:
                log.info("cosine LR: module.lr_decay_steps=%d replaces the %d steps of the resumed run", configured, saved)
            return configured
        if saved is not None:
            if saved != max_steps:
                log.info("cosine LR: keeps the %d steps of the first fit (trainer.max_steps is now %d, and the LR is 0 "
                         "past step %d); module.lr_decay_steps=N sets another length", saved, max_steps, saved)
            return saved
        if max_steps < 1:
            raise InputError(f"module.lr_decay={decay} decays to 0 at trainer.max_steps, which is {max_steps}; "
                             f"set trainer.max_steps or module.lr_decay_steps (or module.lr_decay=constant)")
        return max_steps

    def on_train_start(self) -> None:
        # the LR restored with the optimizer was computed on the resumed run's curve: recompute it on the curve now
        # in force (the same number unless module.lr_decay_steps re-planned it), so the first step uses the new one
        for config in self.trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            groups = scheduler.optimizer.param_groups
            for group, base, factor in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas):
                group["lr"] = base * factor(scheduler.last_epoch)
            scheduler._last_lr = [group["lr"] for group in groups]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lr_decay_length"] = self.lr_decay_length

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._saved_decay_length = checkpoint.get("lr_decay_length")
        if self._saved_decay_length is not None and self.lr_decay_length is not None:  # optimizers built already
            self.lr_decay_length = self._decay_length(self.hparams.lr_decay)

    @property
    def ema_model(self) -> torch.nn.Module:
        return self.ema.module
