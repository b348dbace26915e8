"""The mixture oracle itself: its exact ε* against autograd of its log-density, and its reference ODE solution
against the Gaussian closed form where the mixture has one component."""

import math

import pytest
import torch

from ddim.diffusion import NoiseSchedule

from .mixture_oracle import MixtureOracle, reference_ode

SCHEDULE = NoiseSchedule.linear()


@pytest.mark.parametrize("index", [0, 10, 100, 400, 999])
def test_eps_star_is_minus_sqrt_one_minus_alpha_bar_times_the_score(index):
    oracle = MixtureOracle(SCHEDULE)
    a = SCHEDULE.alpha_bar(index)
    x = (0.3 * torch.randn(64, 2, generator=torch.Generator().manual_seed(index), dtype=torch.float64)
         + math.sqrt(a) * oracle.means[torch.arange(64) % 3]).requires_grad_(True)
    rows = torch.full((64, 1), a, dtype=torch.float64)
    (score,) = torch.autograd.grad(oracle.log_density(x, rows).sum(), x)
    torch.testing.assert_close(oracle.eps_at(x.detach(), rows), -math.sqrt(1 - a) * score, rtol=1e-10, atol=1e-12)
    t = torch.full((64,), index, dtype=torch.long)
    torch.testing.assert_close(oracle(x.detach(), t), oracle.eps_at(x.detach(), rows))


def test_the_reference_ode_matches_the_gaussian_closed_form_for_one_component():
    mean, std = (0.2, -0.1), 0.3
    oracle = MixtureOracle(SCHEDULE, means=(mean,), stds=(std,), weights=(1.0,))
    a_top = SCHEDULE.alpha_bar(999)
    x_top = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma_top = math.sqrt((1 - a_top) / a_top)
    # x̄(σ) − μ ∝ √(s² + σ²) (tests/diffusion/test_solvers.py: exact_ode), down to σ = 0
    exact = torch.tensor(mean) + (x_top / math.sqrt(a_top) - torch.tensor(mean)) * std / math.hypot(std, sigma_top)
    # 1e-8: four orders below the smallest global error the solver tables report
    torch.testing.assert_close(reference_ode(oracle, x_top, a_top), exact.double(), rtol=1e-6, atol=1e-8)
