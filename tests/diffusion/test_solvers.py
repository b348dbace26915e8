"""The higher-order ODE samplers against closed forms (the Gaussian-data oracle's exact ODE solution) and against
diffusers' schedulers run on the same ε-model and timesteps in float64."""

import math
import warnings

import numpy as np
import pytest
import torch

from ddim.diffusion import NoiseSchedule, make_timesteps
from ddim.diffusion.solvers import METHODS, SOLVERS, check_method, nfe

from .gaussian_oracle import GaussianOracle

SCHEDULE = NoiseSchedule.linear()


def tau(steps: int, skip: str = "uniform") -> list[int]:
    return make_timesteps(SCHEDULE.T, steps, skip)
# the same ᾱ(t/T) curve on a 100× finer integer grid: near t = 0 the T = 1000 grid's smallest step (index 0 → 1)
# does not shrink with S, which puts a floor under every solver's error; here that floor is far below the
# errors measured, so the slopes are the solvers' own orders
FINE = NoiseSchedule.linear(100_000, 1e-6, 2e-4)
MEAN, STD = 0.2, 0.3


def _latents(n: int, dim: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _sigma(schedule: NoiseSchedule, index: int) -> float:
    a = schedule.alpha_bar(index)
    return math.sqrt((1 - a) / a)


def exact_ode(schedule: NoiseSchedule, x: torch.Tensor, t: int, t_to: int) -> torch.Tensor:
    """The probability-flow ODE for data N(μ, s²), solved: in x̄ = x/√ᾱ and σ = √((1 − ᾱ)/ᾱ) it is
    dx̄/dσ = ε* = σ(x̄ − μ)/(s² + σ²), so x̄ − μ ∝ √(s² + σ²) and x̄(σ') = μ + (x̄(σ) − μ)·√((s² + σ'²)/(s² + σ²))."""
    s_from, s_to = _sigma(schedule, t), _sigma(schedule, t_to) if t_to >= 0 else 0.0
    x_bar = x / math.sqrt(schedule.alpha_bar(t))
    out_bar = MEAN + (x_bar - MEAN) * math.sqrt((STD**2 + s_to**2) / (STD**2 + s_from**2))
    return out_bar * math.sqrt(schedule.alpha_bar(t_to))


def _final_errors(method, schedule, steps_list, skip, x_T):
    oracle = GaussianOracle(schedule, MEAN, STD)
    errors = []
    for steps in steps_list:
        timesteps = make_timesteps(schedule.T, steps, skip)
        out = SOLVERS[method].sample(oracle, x_T, schedule, timesteps)
        top = timesteps[-1]
        errors.append((out - exact_ode(schedule, x_T, top, -1)).abs().max().item())
    return errors


def _slope(steps_list, errors) -> float:
    return float(np.polyfit(np.log(steps_list), np.log(errors), 1)[0])


# measured on FINE (see docs/samplers.md): ddim −1.00; plms −2.05 (its Adams–Bashforth weights assume equal steps
# in t, and quad's steps are not equal, so it is second order here); dpmpp_2m −2.18; dpm_2s −2.02; heun −2.10
@pytest.mark.parametrize(
    "method,order,skip",
    [("ddim", 1, "quad"), ("plms", 2, "quad"), ("dpmpp_2m", 2, "quad"), ("dpm_2s", 2, "quad"), ("heun", 2, "quad"),
     ("heun", 2, "uniform")],
)
def test_error_against_the_exact_ode_solution_falls_at_the_method_order(method, order, skip):
    steps_list = [40, 80, 160, 320]
    errors = _final_errors(method, FINE, steps_list, skip, _latents(64))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert _slope(steps_list, errors) == pytest.approx(-order, abs=0.25), errors


def test_dpm_3_converges_faster_than_second_order_until_the_floor_near_t_0():
    """On FINE, quad, the state at index 0: errors 1.4e-3, 3.5e-4, 6.3e-5, 4.5e-6 (slope −2.7; local −1.95, −2.5,
    −3.8). Beyond S = 160 the few λ-steps next to t = 0, log((k + 1)/k) on quad, no longer shrink with S and hold
    it near 1e-6, so third order itself cannot be read off this problem more cleanly."""
    oracle, x_T, steps_list, errors = GaussianOracle(FINE, MEAN, STD), _latents(64), [20, 40, 80, 160], []
    for steps in steps_list:
        top, at_zero = make_timesteps(FINE.T, steps, "quad")[-1], {}
        SOLVERS["dpm_3"].sample(oracle, x_T, FINE, make_timesteps(FINE.T, steps, "quad"),
                                 callback=lambda s: at_zero.__setitem__(s.t_to, s.x))
        errors.append((at_zero[0] - exact_ode(FINE, x_T, top, 0)).abs().max().item())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert _slope(steps_list, errors) < -2.5, errors


@pytest.mark.parametrize("method", ["plms", "dpmpp_2m", "dpm_2s", "heun"])
def test_on_the_paper_schedule_higher_order_beats_ddim_and_converges_at_second_order_down_to_index_0(method):
    """T = 1000, quad τ: the state reached at index 0 (before the fixed first-order jump to ᾱ = 1) converges at
    second order or better while S is small enough that τ has not yet run into consecutive integers near 0."""
    oracle, x_T = GaussianOracle(SCHEDULE, MEAN, STD), _latents(64)
    steps_list, errors, ddim_errors = [10, 20, 40], [], []
    for steps in steps_list:
        top = make_timesteps(1000, steps, "quad")[-1]
        at_zero = {}
        for name, store in [(method, errors), ("ddim", ddim_errors)]:
            SOLVERS[name].sample(oracle, x_T, SCHEDULE, tau(steps, "quad"),
                                  callback=lambda s: at_zero.__setitem__(s.t_to, s.x))
            store.append((at_zero[0] - exact_ode(SCHEDULE, x_T, top, 0)).abs().max().item())
    # at S = 10 the DPM solvers are no better than DDIM yet: their first λ-steps are long
    assert all(e < d / 2 for e, d in zip(errors[1:], ddim_errors[1:])), (errors, ddim_errors)
    assert _slope(steps_list, errors) < -1.8, errors


@pytest.mark.parametrize("method", METHODS)
def test_every_method_lands_on_the_data_distribution(method):
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    steps = 100 if method == "ddim" else 25
    x0 = SOLVERS[method].sample(oracle, _latents(10000, 1, seed=1), SCHEDULE, tau(steps, "quad"))
    assert x0.mean().item() == pytest.approx(MEAN, abs=0.01)
    assert x0.std().item() == pytest.approx(STD, rel=0.03)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("steps,skip", [(1, "uniform"), (2, "uniform"), (10, "uniform"), (15, "quad"), (100, "quad")])
def test_nfe_is_the_number_of_network_calls(method, steps, skip):
    calls = []

    def model(x, t):
        assert t.dtype == torch.long and t.shape == (x.shape[0],) and 0 <= int(t[0]) < 1000
        calls.append(int(t[0]))
        return torch.zeros_like(x)

    SOLVERS[method].sample(model, torch.zeros(2, 3), SCHEDULE, tau(steps, skip))
    assert len(calls) == nfe(method, steps, skip, 1000)
    n = len(make_timesteps(1000, steps, skip))  # quad drops repeated indices
    expected = {"ddim": n, "plms": n + 1 if n > 1 else 1, "heun": 2 * n - 1,
                "pndm": n + 3 * min(3, n - 1)}.get(method, n)  # the DPM solvers: n
    assert len(calls) == expected


@pytest.mark.parametrize("method", METHODS)
def test_float32_in_float32_out_close_to_float64(method):
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    x_T = _latents(32, 3, seed=8)
    out32 = SOLVERS[method].sample(oracle, x_T.float(), SCHEDULE, tau(20, "quad"))
    out64 = SOLVERS[method].sample(oracle, x_T, SCHEDULE, tau(20, "quad"))
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-5)


def test_unknown_method_is_one_clear_error():
    with pytest.raises(ValueError, match=r"unknown sampler method 'euler'; expected one of ddim, plms, dpmpp_2m"):
        check_method("euler")
    with pytest.raises(ValueError, match="unknown sampler method"):
        nfe("euler", 10)


def test_callback_sees_each_interval_once_and_ends_at_the_output():
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    timesteps = make_timesteps(1000, 9, "uniform")
    expected = list(zip(reversed(timesteps), reversed([-1, *timesteps[:-1]])))
    for method in METHODS:
        seen = []
        out = SOLVERS[method].sample(oracle, _latents(4), SCHEDULE, tau(9), callback=seen.append)
        assert [(s.t_from, s.t_to) for s in seen] == expected, method
        torch.testing.assert_close(seen[-1].x, out)


@pytest.mark.parametrize("method", ["heun", "ddim"])
def test_encoding_forwards_then_sampling_reconstructs_better_as_steps_grow(method):
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    x0 = MEAN + STD * _latents(2000, 4, seed=2)
    sampler = SOLVERS[method]
    errors = []
    for steps in [10, 20, 50, 100]:
        x_T = sampler.encode(oracle, x0, SCHEDULE, tau(steps, "quad"))
        errors.append(((sampler.sample(oracle, x_T, SCHEDULE, tau(steps, "quad")) - x0) ** 2).mean().item())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_heun_reconstructs_better_than_ddim_at_equal_cost():
    """Heun at S costs about 2S evaluations each way; DDIM given 2S steps still reconstructs worse."""
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    x0 = MEAN + STD * _latents(2000, 4, seed=3)

    def error(method, steps):
        sampler = SOLVERS[method]
        x_T = sampler.encode(oracle, x0, SCHEDULE, tau(steps, "quad"))
        return ((sampler.sample(oracle, x_T, SCHEDULE, tau(steps, "quad")) - x0) ** 2).mean().item()

    assert error("heun", 25) < error("ddim", 50) / 4
    assert [name for name, s in SOLVERS.items() if s.encode is not None] == ["ddim", "heun"]


# ---- diffusers on the same ε-model and timesteps, float64 ----------------------------------------------------

try:
    import diffusers
except ImportError:  # a test-only dependency: without it only these comparisons are skipped
    diffusers = None
needs_diffusers = pytest.mark.skipif(diffusers is None, reason="diffusers is not installed")


def _float64_sigmas(scheduler, last: float) -> None:
    """diffusers rounds σ to float32 in set_timesteps; put the float64 values of our schedule back."""
    values = [_sigma(SCHEDULE, int(t)) for t in scheduler.timesteps] + [last]
    scheduler.sigmas = torch.tensor(values, dtype=torch.float64)


def _pndm_scheduler(steps: int, skip_prk_steps: bool):
    """diffusers' PNDMScheduler on SCHEDULE for S uniform steps ("leading"), ending at ᾱ = 1, in float64."""
    scheduler = diffusers.PNDMScheduler(skip_prk_steps=skip_prk_steps, set_alpha_to_one=True, timestep_spacing="leading")
    scheduler.set_timesteps(steps)
    scheduler.alphas_cumprod = SCHEDULE.alphas_cumprod.clone()
    scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return scheduler


def _dpm_scheduler(cls, timesteps: list[int], last_sigma: float = 0.0, **options):
    """diffusers' DPM-Solver scheduler `cls` walking our τ down, its σ in float64 and ending at `last_sigma`."""
    scheduler = cls(**{"lower_order_final": True, "use_karras_sigmas": False, "thresholding": False, **options})
    scheduler.set_timesteps(timesteps=timesteps[::-1])
    _float64_sigmas(scheduler, last_sigma)
    return scheduler


def _run_diffusers(scheduler, x, keep: int | None = None):
    """The sample after all of diffusers' steps, or after the first `keep` of them."""
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    for t in scheduler.timesteps[:keep]:
        index = torch.full((x.shape[0],), int(t), dtype=torch.long)
        x = scheduler.step(oracle(scheduler.scale_model_input(x, t), index), t, x).prev_sample
    return x


def _ours(method, timesteps, x_T):
    states = {}
    out = SOLVERS[method].sample(GaussianOracle(SCHEDULE, MEAN, STD), x_T, SCHEDULE, timesteps,
                                  callback=lambda s: states.__setitem__(s.t_to, s.x))
    return out, states


@needs_diffusers
@pytest.mark.parametrize("steps", [2, 5, 10, 20])
def test_plms_matches_diffusers_pndm_without_runge_kutta(steps):
    """PNDMScheduler steps t → t − T // S (a hidden stride), so only the uniform τ can be compared."""
    scheduler = _pndm_scheduler(steps, skip_prk_steps=True)
    timesteps = make_timesteps(1000, steps, "uniform")
    assert sorted(set(scheduler.timesteps.tolist())) == timesteps and len(scheduler.timesteps) == steps + 1
    x_T = _latents(16, 3, seed=4)
    torch.testing.assert_close(_ours("plms", timesteps, x_T)[0], _run_diffusers(scheduler, x_T), rtol=0, atol=1e-12)


@needs_diffusers
@pytest.mark.parametrize("steps,skip", [(10, "uniform"), (20, "uniform"), (7, "quad"), (25, "quad")])
def test_dpmpp_2m_matches_diffusers_multistep(steps, skip):
    """Agreement is 1e-7, not 1e-15: DPMSolverMultistepScheduler.step rounds x to float32 on every step."""
    timesteps = make_timesteps(1000, steps, skip)
    scheduler = _dpm_scheduler(diffusers.DPMSolverMultistepScheduler, timesteps, algorithm_type="dpmsolver++",
                               solver_order=2, solver_type="midpoint", final_sigmas_type="zero")
    x_T = _latents(16, 3, seed=5)
    torch.testing.assert_close(_ours("dpmpp_2m", timesteps, x_T)[0], _run_diffusers(scheduler, x_T), rtol=0, atol=1e-6)


@needs_diffusers
@pytest.mark.parametrize("method,order,solver_type", [("dpm_2s", 2, "midpoint"), ("dpm_3", 3, "heun")])
@pytest.mark.parametrize("steps,skip", [(2, "uniform"), (9, "uniform"), (10, "uniform"), (11, "uniform"), (7, "quad"),
                                        (26, "quad")])
def test_singlestep_dpm_matches_diffusers_down_to_index_0(method, order, solver_type, steps, skip):
    """The noise-prediction DPM-Solver in diffusers cannot step to σ = 0 (final_sigmas_type="zero" is refused),
    so it ends at σ of index 0 instead of ᾱ = 1, and its last step may be of higher order. Both runs pass through
    index 0, where τ starts: compare the states there, then check our last step from it is DDIM's step to x̂0."""
    timesteps = make_timesteps(1000, steps, skip)
    assert timesteps[0] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # algorithm_type="dpmsolver" is deprecated in favour of ++
        scheduler = _dpm_scheduler(diffusers.DPMSolverSinglestepScheduler, timesteps, _sigma(SCHEDULE, 0),
                                   algorithm_type="dpmsolver", solver_order=order, solver_type=solver_type,
                                   final_sigmas_type="sigma_min")
    x_T = _latents(16, 3, seed=6)
    out, states = _ours(method, timesteps, x_T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference = _run_diffusers(scheduler, x_T, keep=len(timesteps) - 1)  # the state after reaching index 0
    torch.testing.assert_close(states[0], reference, rtol=0, atol=1e-12)
    a0 = SCHEDULE.alpha_bar(0)
    eps0 = GaussianOracle(SCHEDULE, MEAN, STD)(states[0], torch.zeros(16, dtype=torch.long))
    torch.testing.assert_close(out, (states[0] - math.sqrt(1 - a0) * eps0) / math.sqrt(a0), rtol=0, atol=1e-12)


@needs_diffusers
@pytest.mark.parametrize("steps,skip", [(1, "uniform"), (10, "uniform"), (20, "quad")])
def test_heun_matches_diffusers_heun_discrete(steps, skip):
    """HeunDiscreteScheduler works on x̄ = x/√ᾱ (it starts from x_T·√(1 + σ_max²)) and feeds the model
    x̄/√(1 + σ²) = x: the same ODE in the same variables, ending with an Euler step to σ = 0."""
    scheduler = diffusers.HeunDiscreteScheduler(use_karras_sigmas=False)
    timesteps = make_timesteps(1000, steps, skip)
    scheduler.set_timesteps(timesteps=timesteps[::-1])
    _float64_sigmas(scheduler, 0.0)
    x_T = _latents(16, 3, seed=7)
    x_bar_T = x_T * math.sqrt(1 + _sigma(SCHEDULE, timesteps[-1]) ** 2)
    torch.testing.assert_close(_ours("heun", timesteps, x_T)[0], _run_diffusers(scheduler, x_bar_T), rtol=0, atol=1e-12)
