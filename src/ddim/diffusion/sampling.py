"""The generalized generative process of Section 4 (eq. 12, 16), DDPM's σ̂ step, and its η = 0 inverse."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from .prediction import X0Clip
from .schedule import NoiseSchedule, x0_from_eps
from .trajectory import check_timesteps, timestep_pairs

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# a torch generator, or a callable that returns the next noise shaped like its argument
Generator = torch.Generator | Callable[[torch.Tensor], torch.Tensor] | None
VARIANCES = ("eta", "sigma_hat")


class SampleStep(NamedTuple):
    """What a step hands to `callback`: the index it stepped from and the one it reached (sampling walks τ down,
    encoding up), the new state and its x̂0."""

    t_from: int
    t_to: int
    x: torch.Tensor
    x0_pred: torch.Tensor


Callback = Callable[[SampleStep], None] | None


def _eps(model: EpsModel, x: torch.Tensor, t: int) -> torch.Tensor:
    """ε̂ at network index t for the whole batch, in x's dtype (a bf16 network's output comes back in x's)."""
    return model(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)).to(x.dtype)


def ddim_sigma(a_t: float | torch.Tensor, a_prev: float | torch.Tensor, eta: float) -> float | torch.Tensor:
    """σ_t(η) of eq. 16: η · √((1 − ᾱ_prev)/(1 − ᾱ_t)) · √(1 − ᾱ_t/ᾱ_prev)."""
    if eta == 0:
        return 0.0  # also where the formula is 0/0: the η = 0 step run forwards from x_0, where ᾱ_t = 1
    return eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5


def ddpm_posterior_variance(a_t: float | torch.Tensor, a_prev: float | torch.Tensor) -> float | torch.Tensor:
    """β̃ of q(x_prev | x_t, x_0) (Ho et al. eq. 7) for a jump between any two indices."""
    return (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)


def randn_like(x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """N(0, I) shaped like x, from a torch generator, or from a callable that is asked for it (CounterNoise: image
    i's noise does not depend on which batch it is in, EDM's StackedRandomGenerator idea)."""
    if callable(generator):
        return generator(x)
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def ddim_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    a_t: float | torch.Tensor,
    a_prev: float | torch.Tensor,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_denoised: bool | X0Clip = False,
) -> torch.Tensor:
    """Eq. 12: x_prev = √ᾱ_prev x̂0 + √(1 − ᾱ_prev − σ²) ε̂ + σ z, with σ = σ(η) of eq. 16; `clip_denoised`
    True clips x̂0 to [−1, 1] and re-derives ε̂ from it, an X0Clip says what else (prediction.py)."""
    x_prev, _ = _ddim_step(x_t, eps, a_t, a_prev, eta, noise, clip_denoised)
    return x_prev


def _ddim_step(x_t, eps, a_t, a_prev, eta, noise, clip_denoised):
    if not 0 <= eta <= 1:  # η > 1 asks for σ² > 1 − ᾱ_prev on some steps: eq. 12's direction term has no real root
        raise ValueError(f"eta={eta!r}; expected a number in [0, 1]")
    eps, x0 = X0Clip.of(clip_denoised).apply(x_t, eps, x0_from_eps(x_t, a_t, eps), a_t)
    sigma = ddim_sigma(a_t, a_prev, eta)
    x_prev = _sqrt(a_prev) * x0 + _sqrt(1 - a_prev - sigma**2) * eps
    if _is_positive(sigma):
        if noise is None:
            raise ValueError("ddim_step: sigma > 0 (eta > 0) needs `noise`")
        x_prev = x_prev + sigma * noise
    return x_prev, x0


def ddpm_sigma_hat_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    a_t: float | torch.Tensor,
    a_prev: float | torch.Tensor,
    noise: torch.Tensor | None = None,
    clip_denoised: bool | X0Clip = True,
) -> torch.Tensor:
    """Table 1's σ̂ row: DDPM's ancestral step with the larger variance β̂ = 1 − ᾱ_t/ᾱ_prev,
    x_prev = √ᾱ_prev β̂/(1 − ᾱ_t) x̂0 + √(1 − β̂)(1 − ᾱ_prev)/(1 − ᾱ_t) x_t + √β̂ z; `noise=None` adds none."""
    x_prev, _ = _sigma_hat_step(x_t, eps, a_t, a_prev, noise, clip_denoised)
    return x_prev


def _sigma_hat_step(x_t, eps, a_t, a_prev, noise, clip_denoised):
    _, x0 = X0Clip.of(clip_denoised).apply(x_t, eps, x0_from_eps(x_t, a_t, eps), a_t)  # this step uses no ε̂
    beta_hat = 1 - a_t / a_prev
    x_prev = (_sqrt(a_prev) * beta_hat / (1 - a_t)) * x0 + (_sqrt(1 - beta_hat) * (1 - a_prev) / (1 - a_t)) * x_t
    if noise is not None:
        x_prev = x_prev + _sqrt(beta_hat) * noise
    return x_prev, x0


def sample(
    model: EpsModel,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    eta: float = 0.0,
    variance: str = "eta",
    generator: Generator = None,
    clip_denoised: bool | X0Clip | None = None,
    callback: Callback = None,
) -> torch.Tensor:
    """x_0 from x_T by walking τ backwards: eq. 12 with σ(η) (variance="eta") or DDPM's σ̂ step
    (variance="sigma_hat"). `timesteps` is τ, increasing network indices (make_timesteps builds the named ones).
    x̂0 is clipped to [−1, 1] only for σ̂, as in the official code, unless clip_denoised says otherwise."""
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; expected one of {', '.join(VARIANCES)}")
    if not 0 <= eta <= 1:  # η > 1 asks for σ² > 1 − ᾱ_prev on some steps: eq. 12's direction term has no real root
        raise ValueError(f"eta={eta!r}; expected a number in [0, 1]")
    timesteps = check_timesteps(timesteps, schedule.T)
    clip = X0Clip.of((variance == "sigma_hat") if clip_denoised is None else clip_denoised)
    x = x_T
    for t, t_prev in timestep_pairs(timesteps):
        a_t, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(t_prev)
        eps = _eps(model, x, t)
        if variance == "eta":
            stochastic = eta > 0 and t_prev >= 0
            noise = randn_like(x, generator) if stochastic else None
            x, x0 = _ddim_step(x, eps, a_t, a_prev, eta, noise, clip)
        else:
            noise = randn_like(x, generator) if t_prev >= 0 else None
            x, x0 = _sigma_hat_step(x, eps, a_t, a_prev, noise, clip)
        if callback is not None:
            callback(SampleStep(t, t_prev, x, x0))
    return x


def encode(
    model: EpsModel,
    x_0: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    callback: Callback = None,
) -> torch.Tensor:
    """x_T from x_0 (Section 4.3): Euler steps of the η = 0 ODE run forwards along τ, from each index p to the
    next t with ε̂ evaluated at p (at index 0 for the first step, which starts from x_0 where ᾱ = 1)."""
    timesteps = check_timesteps(timesteps, schedule.T)
    x = x_0
    for t, t_prev in reversed(timestep_pairs(timesteps)):
        a_prev, a_t = schedule.alpha_bar(t_prev), schedule.alpha_bar(t)
        eps = _eps(model, x, max(t_prev, 0))
        # the η = 0 update is symmetric in its two ends: going from ᾱ_prev to ᾱ_t is the same formula
        x, x0 = _ddim_step(x, eps, a_prev, a_t, 0.0, None, False)
        if callback is not None:
            callback(SampleStep(t_prev, t, x, x0))
    return x


def _sqrt(value: float | torch.Tensor) -> float | torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.clamp(min=0).sqrt()
    return math.sqrt(max(value, 0.0))  # 1 − ᾱ − σ² can round to −1e-17 when η = 1


def _is_positive(value: float | torch.Tensor) -> bool:
    return bool((value > 0).any()) if isinstance(value, torch.Tensor) else value > 0
