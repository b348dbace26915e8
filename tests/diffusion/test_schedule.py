import math

import numpy as np
import pytest
import torch

from ddim.diffusion import NoiseSchedule, eps_from_x0, q_sample, x0_from_eps


def test_linear_schedule_matches_numpy_cumprod():
    schedule = NoiseSchedule.linear()
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    assert schedule.T == 1000
    assert schedule.alphas_cumprod.dtype == torch.float64
    np.testing.assert_allclose(schedule.betas.numpy(), betas, rtol=0, atol=1e-15)
    np.testing.assert_allclose(schedule.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-12)
    # ᾱ_T of the paper's schedule is about 4.0e-5 (Ho et al.)
    assert 3.9e-5 < schedule.alphas_cumprod[-1].item() < 4.1e-5


def test_alpha_bar_before_first_index_is_one():
    schedule = NoiseSchedule.linear()
    assert schedule.alpha_bar(-1) == 1.0
    assert schedule.alpha_bar(0) == pytest.approx(1 - 1e-4)
    with pytest.raises(IndexError):
        schedule.alpha_bar(1000)


def test_cosine_schedule_follows_its_closed_form():
    T, s = 1000, 0.008
    schedule = NoiseSchedule.cosine(T)
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    expected = np.array(f[1:]) / f[0]
    # away from the end where β is clipped at 0.999, ᾱ is exactly f(t)/f(0)
    np.testing.assert_allclose(schedule.alphas_cumprod[:900].numpy(), expected[:900], rtol=1e-10)


def test_quad_schedule_is_linear_in_sqrt_beta():
    schedule = NoiseSchedule.from_name("quad", T=10, beta_start=0.01, beta_end=0.04)
    np.testing.assert_allclose(schedule.betas.sqrt().numpy(), np.linspace(0.1, 0.2, 10), rtol=1e-12)


@pytest.mark.parametrize("bad", ["sigmoid", "Linear", ""])
def test_unknown_schedule_name_is_one_clear_line(bad):
    with pytest.raises(ValueError, match=r"unknown noise schedule .*expected one of linear, quad, cosine"):
        NoiseSchedule.from_name(bad)


@pytest.mark.parametrize("betas", [[0.0, 0.1], [0.5, 1.0], []])
def test_betas_outside_open_unit_interval_rejected(betas):
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule(torch.tensor(betas))


def test_x0_and_eps_roundtrip_through_forward_marginal():
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 8, 8, generator=gen), torch.randn(4, 3, 8, 8, generator=gen)
    a_t = torch.tensor([0.9, 0.5, 0.1, 1e-3]).reshape(4, 1, 1, 1)
    x_t = q_sample(x0, a_t, eps)
    torch.testing.assert_close(x0_from_eps(x_t, a_t, eps), x0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(eps_from_x0(x_t, a_t, x0), eps, rtol=1e-5, atol=1e-5)
