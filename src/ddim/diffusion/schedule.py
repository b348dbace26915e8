"""Noise schedules β_t and the closed forms of the forward process q(x_t | x_0)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

SCHEDULE_NAMES = ("linear", "quad", "cosine")


@dataclass(frozen=True)
class NoiseSchedule:
    """β_t for network indices 0..T−1, kept in float64 so that products over 1000 steps stay exact."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        betas = torch.as_tensor(self.betas, dtype=torch.float64).flatten().cpu()
        if betas.numel() == 0:
            raise ValueError("NoiseSchedule: betas is empty; expected T >= 1 values in (0, 1)")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(
                f"NoiseSchedule: betas must lie in (0, 1), got min {betas.min().item():.3g}, max {betas.max().item():.3g}"
            )
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "alphas_cumprod", torch.cumprod(1.0 - betas, dim=0))

    @property
    def T(self) -> int:
        return self.betas.numel()

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """Ho et al.'s schedule, used for every model in the paper."""
        _check_T(T)
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def quad(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """β linear in √β (the official DDIM code's "quad" beta schedule)."""
        _check_T(T)
        return cls(torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2)

    @classmethod
    def cosine(cls, T: int = 1000, offset: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """Nichol & Dhariwal's ᾱ(t) = cos²(((t/T + s)/(1 + s))·π/2), with β clipped at max_beta."""
        _check_T(T)

        def f(t: float) -> float:
            return math.cos((t / T + offset) / (1 + offset) * math.pi / 2) ** 2

        betas = [min(1 - f(i + 1) / f(i), max_beta) for i in range(T)]
        return cls(torch.tensor(betas, dtype=torch.float64))

    @classmethod
    def from_name(cls, name: str, T: int = 1000, **kwargs: float) -> "NoiseSchedule":
        if name not in SCHEDULE_NAMES:
            raise ValueError(f"unknown noise schedule {name!r}; expected one of {', '.join(SCHEDULE_NAMES)}")
        return getattr(cls, name)(T=T, **kwargs)

    @classmethod
    def from_config(cls, schedule: Mapping[str, Any]) -> "NoiseSchedule":
        """A NoiseSchedule from the config/checkpoint dict {"name": ..., "T": ..., other keyword arguments}."""
        kwargs = dict(schedule)
        return cls.from_name(kwargs.pop("name"), **kwargs)

    def alpha_bar(self, index: int) -> float:
        """ᾱ at a network index; index −1 is the state before the first step, where ᾱ := 1."""
        if index < -1 or index >= self.T:
            raise IndexError(f"timestep index {index} outside −1..{self.T - 1}")
        return 1.0 if index < 0 else float(self.alphas_cumprod[index])


def _check_T(T: int) -> None:
    if int(T) != T or T < 1:
        raise ValueError(f"number of diffusion steps T={T!r}; expected a positive integer")


def q_sample(x0: torch.Tensor, a_t: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """Forward marginal: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε."""
    a_t = torch.as_tensor(a_t, dtype=x0.dtype, device=x0.device)
    return a_t.sqrt() * x0 + (1 - a_t).sqrt() * noise


def x0_from_eps(x_t: torch.Tensor, a_t: torch.Tensor | float, eps: torch.Tensor) -> torch.Tensor:
    """Predicted clean image: x̂0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t."""
    a_t = torch.as_tensor(a_t, dtype=x_t.dtype, device=x_t.device)
    return (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()


def eps_from_x0(x_t: torch.Tensor, a_t: torch.Tensor | float, x0: torch.Tensor) -> torch.Tensor:
    """The ε that takes x0 to x_t at ᾱ_t: ε = (x_t − √ᾱ_t x0) / √(1 − ᾱ_t)."""
    a_t = torch.as_tensor(a_t, dtype=x_t.dtype, device=x_t.device)
    return (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()
