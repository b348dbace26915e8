"""Weights γ_t of the objective L_γ = Σ_t γ_t E‖ε_θ(x_t, t) − ε‖² (eq. 5)."""

from __future__ import annotations

import torch

from .sampling import ddpm_posterior_variance
from .schedule import NoiseSchedule

LOSS_WEIGHTINGS = ("simple", "theorem1", "min_snr", "x0_mse", "v_mse")


def signal_to_noise(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """SNR_t = ᾱ_t / (1 − ᾱ_t)."""
    return alphas_cumprod / (1 - alphas_cumprod)


def loss_weights(schedule: NoiseSchedule, weighting: str = "simple", min_snr_gamma: float = 5.0) -> torch.Tensor:
    """γ_t for each network index, float64, scaled to mean 1 so the learning rate keeps its meaning.

    simple:   γ = 1, L_simple (what the paper trains).
    theorem1: γ_t ∝ 1/(σ_t² ᾱ_t) with DDPM's σ (η = 1), so that J_σ = L_γ + C (Theorem 1); σ at index 0
              is 0, so it takes index 1's value, as Ho et al.'s clipped log-variance does.
    min_snr:  γ_t = min(SNR_t, k)/SNR_t (Hang et al., 2023), a common alternative, k = min_snr_gamma.
    x0_mse:   γ_t = 1/SNR_t: ‖x̂0 − x0‖² = ‖ε̂ − ε‖²/SNR_t, the MSE an x0-predicting network is usually trained on.
    v_mse:    γ_t = 1/ᾱ_t: ‖v̂ − v‖² = ‖ε̂ − ε‖²/ᾱ_t (v = √ᾱ ε − √(1 − ᾱ) x0), v-prediction's usual MSE.
    """
    a = schedule.alphas_cumprod
    if weighting == "simple":
        weights = torch.ones_like(a)
    elif weighting == "theorem1":
        a_prev = torch.cat([a.new_ones(1), a[:-1]])
        sigma2 = ddpm_posterior_variance(a, a_prev)
        if len(sigma2) > 1:
            sigma2[0] = sigma2[1]
        weights = 1 / (sigma2 * a)
    elif weighting == "min_snr":
        snr = signal_to_noise(a)
        weights = snr.clamp(max=min_snr_gamma) / snr
    elif weighting == "x0_mse":
        weights = 1 / signal_to_noise(a)
    elif weighting == "v_mse":
        weights = 1 / a
    else:
        raise ValueError(f"unknown loss weighting {weighting!r}; expected one of {', '.join(LOSS_WEIGHTINGS)}")
    return weights / weights.mean()
