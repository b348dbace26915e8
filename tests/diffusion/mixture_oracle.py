"""Data x0 ~ Σ_k w_k N(μ_k, s_k² I) in d dimensions: x_t ~ Σ_k w_k N(√ᾱ μ_k, v_k I) with v_k = ᾱ s_k² + 1 − ᾱ, so
the optimal ε-predictor is exact and nonlinear in x_t:
  ε*(x_t) = −√(1 − ᾱ) ∇ log p_t(x_t) = √(1 − ᾱ) Σ_k r_k(x_t) (x_t − √ᾱ μ_k) / v_k,
r_k the posterior responsibilities. The probability-flow ODE it drives has no closed form; `reference_ode` solves it
with scipy's solve_ivp in float64 at tight tolerance (in x̄ = x/√ᾱ and σ = √((1 − ᾱ)/ᾱ): dx̄/dσ = ε*)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ddim.diffusion import NoiseSchedule

# three components in 2-D, narrow ones among them, so ε* bends sharply near the data
MEANS = ((-0.6, -0.4), (0.7, 0.5), (0.1, 0.8))
STDS = (0.08, 0.15, 0.04)
WEIGHTS = (0.5, 0.3, 0.2)


class MixtureOracle(torch.nn.Module):
    def __init__(self, schedule: NoiseSchedule, means=MEANS, stds=STDS, weights=WEIGHTS) -> None:
        super().__init__()
        self.alphas_cumprod = schedule.alphas_cumprod
        self.means = torch.tensor(means, dtype=torch.float64)  # (K, d)
        self.variances = torch.tensor(stds, dtype=torch.float64) ** 2
        self.log_weights = torch.tensor(weights, dtype=torch.float64).log()

    def _parts(self, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log w_k N(x; √ᾱ μ_k, v_k I) per k, x − √ᾱ μ_k, v_k), x as (B, d), a as (B, 1)."""
        v = a * self.variances + 1 - a  # (B, K)
        diff = x[:, None, :] - a.sqrt()[:, :, None] * self.means  # (B, K, d)
        d = x.shape[1]
        log_joint = self.log_weights - 0.5 * diff.square().sum(-1) / v - 0.5 * d * torch.log(2 * math.pi * v)
        return log_joint, diff, v

    def log_density(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._parts(x, a)[0], dim=1)

    def eps_at(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """ε* for x as (B, d) at ᾱ given per row, (B, 1)."""
        log_joint, diff, v = self._parts(x, a)
        r = torch.softmax(log_joint, dim=1)
        return (1 - a).sqrt() * (r[:, :, None] * diff / v[:, :, None]).sum(1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        a = self.alphas_cumprod[t].to(torch.float64)[:, None]
        return self.eps_at(x.flatten(1).double(), a).to(x.dtype).reshape(x.shape)


def reference_ode(oracle: MixtureOracle, x_top: torch.Tensor, a_top: float, rtol: float = 1e-11) -> torch.Tensor:
    """x_0 from x at ᾱ = a_top by the probability-flow ODE, solved by solve_ivp (DOP853, float64) from σ_top to 0."""
    shape = x_top.shape
    sigma_top = math.sqrt((1 - a_top) / a_top)

    def slope(sigma: float, x_bar: np.ndarray) -> np.ndarray:
        a = 1.0 / (1.0 + sigma**2)
        x = torch.from_numpy(x_bar).reshape(shape[0], -1) * math.sqrt(a)
        return oracle.eps_at(x, torch.full((shape[0], 1), a, dtype=torch.float64)).numpy().ravel()

    x_bar = (x_top.double() / math.sqrt(a_top)).numpy().ravel()
    solution = solve_ivp(slope, (sigma_top, 0.0), x_bar, method="DOP853", rtol=rtol, atol=rtol)
    assert solution.success, solution.message
    return torch.from_numpy(solution.y[:, -1]).reshape(shape)
