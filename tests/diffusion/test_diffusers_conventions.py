"""Diffusers' conventions as our options, and diffusers' own stored full-loop numbers.

The stored numbers come from diffusers' tests/schedulers/test_scheduler_{ddim,ddpm,pndm,dpm_multi}.py (commit
58eb52c of huggingface/diffusers): a dummy "model" x · t/(t + 1), a deterministic 4×3×8×8 sample, and the sum and
mean of |x| after the loop, to 1e-2 and 1e-3. docs/samplers.md lists the cases we cannot express, and why."""

import math

import pytest
import torch

from ddim.diffusion import NoiseSchedule, make_timesteps, sample
from ddim.diffusion.prediction import X0Clip, as_eps_model
from ddim.diffusion.solvers import SOLVERS

from .gaussian_oracle import GaussianOracle
from .test_solvers import (
    MEAN, SCHEDULE, STD, _dpm_scheduler, _latents, _pndm_scheduler, _run_diffusers, diffusers, needs_diffusers,
)

KEEP_EPS = X0Clip("clip", recompute_eps=False)  # diffusers' clip_sample=True with use_clipped_model_output=False


def _deterministic(flip: bool = False) -> torch.Tensor:
    """diffusers' dummy_sample_deter (and, flipped, dummy_noise_deter)."""
    values = torch.arange(4 * 3 * 8 * 8)
    values = values.flip(-1) if flip else values
    return (values.reshape(3, 8, 8, 4) / values.numel()).permute(3, 0, 1, 2)


def _dummy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.to(x.dtype).reshape(-1, 1, 1, 1)
    return x * t / (t + 1)


def _noisy(schedule: NoiseSchedule, t: int) -> torch.Tensor:
    a = schedule.alpha_bar(t)
    return math.sqrt(a) * _deterministic() + math.sqrt(1 - a) * _deterministic(flip=True)


def _assert_stored(x: torch.Tensor, total: float | None, mean: float) -> None:
    """diffusers' two assertions (some tests state only the mean)."""
    if total is not None:
        assert abs(x.abs().sum().item() - total) < 1e-2, x.abs().sum().item()
    assert abs(x.abs().mean().item() - mean) < 1e-3, x.abs().mean().item()


UNIFORM_10 = make_timesteps(1000, 10, "uniform")  # diffusers' "leading" spacing: 0, 100, ..., 900


@pytest.mark.parametrize("case,prediction,beta_start,total,mean", [
    ("no_noise", "eps", 1e-4, 172.0067, 0.223967),
    ("with_v_prediction", "v", 1e-4, 52.5302, 0.0684),
    ("with_set_alpha_to_one", "eps", 0.01, 149.8295, 0.1951),
])
def test_ddim_full_loops(case, prediction, beta_start, total, mean):
    """DDIMScheduler(clip_sample=True), 10 steps, η = 0: clipped x̂0 with the model's own ε̂ (keep)."""
    schedule = NoiseSchedule.linear(1000, beta_start, 0.02)
    model = as_eps_model(_dummy_model, schedule, prediction)
    _assert_stored(sample(model, _deterministic(), schedule, UNIFORM_10, clip_denoised=KEEP_EPS), total, mean)


def test_ddim_full_loop_with_noise():
    """add_noise at index 100 (t_start = 8 of 10), then the last two steps. (x̂0 stays inside [−1, 1] in these loops,
    so keeping or recomputing ε̂ gives the same numbers: the clip options are matched to diffusers below.)"""
    out = sample(_dummy_model, _noisy(SCHEDULE, 100), SCHEDULE, [0, 100], clip_denoised=KEEP_EPS)
    _assert_stored(out, 354.5418, 0.4616)


def _torch_noise(seed: int = 0):
    """The step noise diffusers draws: torch.randn from a generator seeded with torch.manual_seed(seed)."""
    generator = torch.manual_seed(seed)
    return lambda x: torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.dtype)


@pytest.mark.parametrize("prediction,total,mean", [("eps", 258.9606, 0.3372), ("v", 202.0296, 0.2631)])
def test_ddpm_full_loops(prediction, total, mean):
    """DDPMScheduler(clip_sample=True, variance_type="fixed_small"), all 1000 steps: η = 1 on consecutive indices
    with x̂0 clipped is DDPM's ancestral step (ε̂ re-derived from the clipped x̂0 gives its posterior mean)."""
    model = as_eps_model(_dummy_model, SCHEDULE, prediction)
    out = sample(model, _deterministic(), SCHEDULE, list(range(1000)), eta=1.0, generator=_torch_noise(),
                 clip_denoised=True)
    _assert_stored(out, total, mean)


def _state_at_index_0(sampler, *args, **kwargs) -> torch.Tensor:
    states = {}
    sampler(*args, callback=lambda s: states.__setitem__(s.t_to, s.x), **kwargs)
    return states[0]


def test_ddim_full_loop_with_no_set_alpha_to_one_is_our_state_at_index_0():
    """set_alpha_to_one=False makes the last step go from index 0 to ᾱ_0 itself, not to ᾱ = 1: with x̂0 inside
    [−1, 1] that step is the identity, so the result is the state our run reaches at index 0."""
    schedule = NoiseSchedule.linear(1000, 0.01, 0.02)
    state = _state_at_index_0(sample, _dummy_model, _deterministic(), schedule, UNIFORM_10, clip_denoised=KEEP_EPS)
    _assert_stored(state, 149.0784, 0.1941)


def test_pndm_full_loop_with_set_alpha_to_one():
    """PNDMScheduler(set_alpha_to_one=True, beta_start=0.01): the Runge–Kutta warm-up, then PLMS."""
    schedule = NoiseSchedule.linear(1000, 0.01, 0.02)
    _assert_stored(SOLVERS["pndm"].sample(_dummy_model, _deterministic(), schedule, UNIFORM_10), 230.0399, 0.2995)


@pytest.mark.parametrize("case,beta_start,total,mean", [
    ("no_noise", 1e-4, 198.1318, 0.2580), ("with_no_set_alpha_to_one", 0.01, 186.9482, 0.2434),
])
def test_pndm_full_loops_without_alpha_one_are_our_state_at_index_0(case, beta_start, total, mean):
    """PNDMScheduler's default set_alpha_to_one=False: its last step, from index 0 to ᾱ_0, is φ between equal ᾱ,
    the identity; the result is our state at index 0."""
    schedule = NoiseSchedule.linear(1000, beta_start, 0.02)
    _assert_stored(_state_at_index_0(SOLVERS["pndm"].sample, _dummy_model, _deterministic(), schedule, UNIFORM_10),
                   total, mean)


# diffusers' default "linspace" spacing for 10 steps, 999 down to 100, then a last step to index 0's σ (sigma_min)
LINSPACE_10_TO_0 = [0, 100, 200, 300, 400, 500, 599, 699, 799, 899, 999]


@pytest.mark.parametrize("case,prediction,start,x0_clip,mean", [
    ("no_noise", "eps", 999, None, 0.3301), ("with_v_prediction", "v", 999, None, 0.2251),
    ("with_noise", "eps", 500, None, 0.4146), ("no_noise_thres", "eps", 999, X0Clip("dynamic", 0.87, 0.5), 1.1364),
])
def test_dpm_multistep_full_loops_are_our_state_at_index_0(case, prediction, start, x0_clip, mean):
    """DPMSolverMultistepScheduler(dpmsolver++, order 2, lower_order_final=False, final_sigmas_type="sigma_min")
    ends on index 0's noise level, not at ᾱ = 1: its result is the state our dpmpp_2m reaches at index 0.
    no_noise_thres: thresholding=True, dynamic_thresholding_ratio=0.87, sample_max_value=0.5."""
    timesteps = [t for t in LINSPACE_10_TO_0 if t <= start]
    x = _deterministic() if start == 999 else _noisy(SCHEDULE, start)
    state = _state_at_index_0(SOLVERS["dpmpp_2m"].sample, as_eps_model(_dummy_model, SCHEDULE, prediction), x,
                              SCHEDULE, timesteps, x0_clip=x0_clip)
    _assert_stored(state, 318.4111 if case == "with_noise" else None, mean)


# ---- our new solvers and options against the diffusers scheduler itself, float64 -------------------------------

@needs_diffusers
@pytest.mark.parametrize("steps", [4, 5, 10, 20])
def test_pndm_matches_diffusers_pndm_with_runge_kutta(steps):
    """From S = 4 on: diffusers' warm-up takes the last four of S timesteps, which fewer than four do not have
    (with S ≤ 3 ours warms up on every interval but the last)."""
    scheduler = _pndm_scheduler(steps, skip_prk_steps=False)
    timesteps = make_timesteps(1000, steps, "uniform")
    x_T = _latents(16, 3, seed=11)
    calls = []
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    ours = SOLVERS["pndm"].sample(lambda x, t: calls.append(int(t[0])) or oracle(x, t), x_T, SCHEDULE, timesteps)
    assert len(calls) == len(scheduler.timesteps) == SOLVERS["pndm"].nfe(steps)
    torch.testing.assert_close(ours, _run_diffusers(scheduler, x_T), rtol=0, atol=1e-12)


@needs_diffusers
@pytest.mark.parametrize("steps,skip", [(2, "uniform"), (9, "uniform"), (10, "uniform"), (7, "quad"), (26, "quad")])
def test_dpmpp_2s_matches_diffusers_singlestep_defaults(steps, skip):
    timesteps = make_timesteps(1000, steps, skip)
    scheduler = _dpm_scheduler(diffusers.DPMSolverSinglestepScheduler, timesteps, algorithm_type="dpmsolver++",
                               solver_order=2, solver_type="midpoint", final_sigmas_type="zero")
    x_T = _latents(16, 3, seed=12)
    ours = SOLVERS["dpmpp_2s"].sample(GaussianOracle(SCHEDULE, MEAN, STD), x_T, SCHEDULE, timesteps)
    torch.testing.assert_close(ours, _run_diffusers(scheduler, x_T), rtol=0, atol=1e-12)


@needs_diffusers
@pytest.mark.parametrize("x0_clip,diffusers_options", [
    (X0Clip("clip", recompute_eps=False), {"clip_sample": True}),
    (X0Clip("clip"), {"clip_sample": True, "use_clipped_model_output": True}),
    (X0Clip("dynamic", 0.9, 1.5, recompute_eps=False), {"thresholding": True, "dynamic_thresholding_ratio": 0.9,
                                                         "sample_max_value": 1.5}),
    (X0Clip("dynamic", 0.9, 1.5), {"thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 1.5,
                                   "use_clipped_model_output": True}),
])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_clip_and_threshold_options_match_diffusers_ddim(x0_clip, diffusers_options, eta):
    """On data N(0.2, 2²), where x̂0 leaves [−1, 1]; η = 1 with the same injected noise on both sides."""
    oracle = GaussianOracle(SCHEDULE, 0.2, 2.0)
    options = dict(diffusers_options)
    use_clipped = options.pop("use_clipped_model_output", False)
    scheduler = diffusers.DDIMScheduler(set_alpha_to_one=True, timestep_spacing="leading", **options)
    scheduler.set_timesteps(10)
    scheduler.alphas_cumprod = SCHEDULE.alphas_cumprod.clone()
    scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    x_T = _latents(8, 3 * 4 * 4, seed=13).reshape(8, 3, 4, 4)
    noise = [_latents(8, 48, seed=100 + k).reshape(8, 3, 4, 4) for k in range(10)]
    x = x_T
    for k, t in enumerate(scheduler.timesteps):
        eps = oracle(x, torch.full((8,), int(t), dtype=torch.long))
        x = scheduler.step(eps, t, x, eta=eta, use_clipped_model_output=use_clipped, variance_noise=noise[k]).prev_sample
    draws = iter(noise)
    ours = sample(oracle, x_T, SCHEDULE, UNIFORM_10, eta=eta, generator=lambda _: next(draws), clip_denoised=x0_clip)
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-12)


@needs_diffusers
@pytest.mark.parametrize("method", ["dpmpp_2m", "dpmpp_2s"])
def test_thresholding_in_the_data_prediction_solvers_matches_diffusers(method):
    """thresholding=True on data N(0.2, 2²), where x̂0 leaves [−1, 1] (dpmpp_2m: diffusers rounds to float32)."""
    oracle = GaussianOracle(SCHEDULE, 0.2, 2.0)
    cls = diffusers.DPMSolverMultistepScheduler if method == "dpmpp_2m" else diffusers.DPMSolverSinglestepScheduler
    timesteps = make_timesteps(1000, 10, "quad")
    scheduler = _dpm_scheduler(cls, timesteps, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
                               final_sigmas_type="zero", thresholding=True, dynamic_thresholding_ratio=0.9,
                               sample_max_value=1.5)
    x_T = _latents(8, 48, seed=14).reshape(8, 3, 4, 4)
    x = x_T
    for t in scheduler.timesteps:
        x = scheduler.step(oracle(x, torch.full((8,), int(t), dtype=torch.long)), t, x).prev_sample
    ours = SOLVERS[method].sample(oracle, x_T, SCHEDULE, timesteps, x0_clip=X0Clip("dynamic", 0.9, 1.5))
    unthresholded = SOLVERS[method].sample(oracle, x_T, SCHEDULE, timesteps)
    torch.testing.assert_close(ours, x.to(ours.dtype), rtol=0, atol=1e-6 if method == "dpmpp_2m" else 1e-12)
    assert (unthresholded - ours).abs().max() > 0.1
