"""Lightning glue: the module (L_γ, EMA), callbacks and the training task."""

from .module import DiffusionModule, antithetic_timesteps, ema_decay_at, warmup_lr_factor

__all__ = ["DiffusionModule", "antithetic_timesteps", "ema_decay_at", "warmup_lr_factor"]
