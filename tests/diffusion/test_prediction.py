"""Prediction types (ε, x0, v) and what a step does to x̂0 (clip, dynamic thresholding), against closed forms, the
Gaussian oracle written in each parameterization, and diffusers' own thresholding."""

import math

import pytest
import torch

from ddim.diffusion import NoiseSchedule, ddim_step, encode, make_timesteps, q_sample, sample
from ddim.diffusion.prediction import (
    PREDICTIONS, X0Clip, as_eps_model, dynamic_threshold, eps_x0_from_output, prediction_target,
)
from ddim.diffusion.solvers import SOLVERS

from .gaussian_oracle import GaussianOracle

SCHEDULE = NoiseSchedule.linear()
MEAN, STD = 0.2, 0.3


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_the_target_of_each_type_converts_back_to_the_true_noise_and_image(prediction):
    x0, noise = _randn(6, 5), _randn(6, 5, seed=1)
    a = torch.tensor([0.999, 0.9, 0.5, 0.1, 0.01, 1e-4], dtype=torch.float64).reshape(-1, 1)
    x_t = q_sample(x0, a, noise)
    eps, x0_pred = eps_x0_from_output(prediction_target(x0, noise, a, prediction), x_t, a, prediction)
    torch.testing.assert_close(eps, noise, rtol=0, atol=1e-10)
    torch.testing.assert_close(x0_pred, x0, rtol=0, atol=1e-10)


def test_v_is_salimans_and_hos_velocity():
    """v = √ᾱ ε − √(1 − ᾱ) x0 = d x_φ/dφ for x_φ = cos φ x0 + sin φ ε, φ = arccos √ᾱ (by autograd)."""
    x0, noise = _randn(3, 4), _randn(3, 4, seed=2)
    phi = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    x_phi = torch.cos(phi) * x0 + torch.sin(phi) * noise
    velocity = torch.autograd.functional.jacobian(lambda p: torch.cos(p) * x0 + torch.sin(p) * noise, phi)
    a = torch.cos(phi.detach()) ** 2
    torch.testing.assert_close(prediction_target(x0, noise, a, "v"), velocity)
    assert x_phi.shape == velocity.shape


class OracleAs(torch.nn.Module):
    """The Gaussian data's optimal predictor written in each parameterization from E[x0 | x_t] (not from ε*):
    x̂0* = μ + √ᾱ s² (x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ)."""

    def __init__(self, prediction: str) -> None:
        super().__init__()
        self.prediction = prediction

    def forward(self, x, t):
        a = SCHEDULE.alphas_cumprod[t].to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        x0 = MEAN + a.sqrt() * STD**2 * (x - a.sqrt() * MEAN) / (a * STD**2 + 1 - a)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return {"eps": eps, "x0": x0, "v": a.sqrt() * eps - (1 - a).sqrt() * x0}[self.prediction]


@pytest.mark.parametrize("method", ["ddim", "plms", "dpmpp_2m", "dpm_2s", "heun"])
def test_the_three_parameterizations_of_the_oracle_give_the_same_samples(method):
    timesteps = make_timesteps(1000, 20, "quad")
    x_T = _randn(64, 3, seed=3)
    outs = {p: SOLVERS[method].sample(as_eps_model(OracleAs(p), SCHEDULE, p), x_T, SCHEDULE, timesteps)
            for p in PREDICTIONS}
    reference = SOLVERS[method].sample(GaussianOracle(SCHEDULE, MEAN, STD), x_T, SCHEDULE, timesteps)
    for p in PREDICTIONS:
        torch.testing.assert_close(outs[p], reference, rtol=0, atol=1e-10)


def test_the_three_parameterizations_encode_alike_and_eta_one_sampling_too():
    timesteps = make_timesteps(1000, 10, "uniform")
    x0 = MEAN + STD * _randn(32, 2, seed=4)
    latents = [encode(as_eps_model(OracleAs(p), SCHEDULE, p), x0, SCHEDULE, timesteps) for p in PREDICTIONS]
    noisy = [sample(as_eps_model(OracleAs(p), SCHEDULE, p), latents[0], SCHEDULE, timesteps, eta=1.0,
                    generator=torch.Generator().manual_seed(5)) for p in PREDICTIONS]
    for got in latents[1:]:
        torch.testing.assert_close(got, latents[0], rtol=0, atol=1e-10)
    for got in noisy[1:]:
        torch.testing.assert_close(got, noisy[0], rtol=0, atol=1e-10)


def test_an_eps_model_is_passed_through_and_a_wrapper_keeps_the_config():
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    assert as_eps_model(oracle, SCHEDULE, "eps") is oracle
    oracle.config = {"resolution": 8, "prediction": "v"}
    assert as_eps_model(oracle, SCHEDULE, "v").config == oracle.config
    with pytest.raises(ValueError, match=r"prediction='sample'; expected one of eps, x0, v"):
        as_eps_model(oracle, SCHEDULE, "sample")


def test_clip_keeping_eps_and_recomputing_it_are_the_two_closed_forms():
    """η = 0: recompute gives √ᾱ_p c + √(1 − ᾱ_p) (x_t − √ᾱ_t c)/√(1 − ᾱ_t), keep gives √ᾱ_p c + √(1 − ᾱ_p) ε̂,
    c = clip(x̂0); they agree where nothing is clipped."""
    a_t, a_p = 0.3, 0.8
    x_t, eps = 2.5 * _randn(4, 6, seed=6), _randn(4, 6, seed=7)
    clipped = ((x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-1, 1)
    recompute = math.sqrt(a_p) * clipped + math.sqrt(1 - a_p) * (x_t - math.sqrt(a_t) * clipped) / math.sqrt(1 - a_t)
    keep = math.sqrt(a_p) * clipped + math.sqrt(1 - a_p) * eps
    torch.testing.assert_close(ddim_step(x_t, eps, a_t, a_p, clip_denoised=True), recompute)
    torch.testing.assert_close(ddim_step(x_t, eps, a_t, a_p, clip_denoised=X0Clip("clip")), recompute)
    torch.testing.assert_close(ddim_step(x_t, eps, a_t, a_p, clip_denoised=X0Clip("clip", recompute_eps=False)), keep)
    assert (recompute - keep).abs().max() > 0.1


def test_dynamic_threshold_matches_diffusers_and_its_closed_form():
    diffusers = pytest.importorskip("diffusers")
    x0 = 3 * _randn(5, 3, 4, 4, seed=8)
    x0[0] *= 0.1  # an image whose quantile is below 1: s = 1, a plain clip
    for ratio, max_value in [(0.995, 1.0), (0.9, 2.0), (0.87, 0.5), (0.6, 10.0)]:
        scheduler = diffusers.DDIMScheduler(thresholding=True, dynamic_thresholding_ratio=ratio,
                                            sample_max_value=max_value)
        torch.testing.assert_close(dynamic_threshold(x0, ratio, max_value), scheduler._threshold_sample(x0.clone()))
    torch.testing.assert_close(dynamic_threshold(x0, 0.995, 1.0)[0], x0[0].clamp(-1, 1))
    out = dynamic_threshold(x0, 0.9, 100.0)  # s = the 90th percentile of |x0|: about 10 % of each image at ±1
    share = (out.abs() >= 1 - 1e-12).flatten(1).double().mean(1)
    assert all(0.05 < float(f) < 0.15 for f in share[1:]), share


def test_bad_clip_options_are_refused():
    with pytest.raises(ValueError, match="clip mode='soft'"):
        X0Clip("soft")
    with pytest.raises(ValueError, match="ratio=1.5"):
        X0Clip("dynamic", ratio=1.5)
