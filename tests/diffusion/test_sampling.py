import numpy as np
import pytest
import torch

from ddim.diffusion import (
    NoiseSchedule,
    ddim_sigma,
    ddim_step,
    ddpm_posterior_variance,
    ddpm_sigma_hat_step,
    encode,
    make_timesteps,
    q_sample,
    sample,
)

from .gaussian_oracle import GaussianOracle

SCHEDULE = NoiseSchedule.linear()


def tau(steps: int, skip: str = "uniform") -> list[int]:
    return make_timesteps(SCHEDULE.T, steps, skip)
MEAN, STD = 0.2, 0.3


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sigma_eta_one_on_consecutive_steps_is_ddpm_posterior_variance():
    betas = SCHEDULE.betas.numpy()
    abar = np.cumprod(1 - betas)
    for t in [1, 10, 500, 999]:
        # Ho et al. eq. 7, written from β directly: β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t
        posterior = (1 - abar[t - 1]) / (1 - abar[t]) * betas[t]
        assert ddim_sigma(abar[t], abar[t - 1], eta=1.0) ** 2 == pytest.approx(posterior, rel=1e-9)
        assert ddpm_posterior_variance(abar[t], abar[t - 1]) == pytest.approx(posterior, rel=1e-9)
    assert ddim_sigma(abar[5], abar[4], eta=0.0) == 0.0


def test_eta_one_step_mean_is_ddpm_posterior_mean():
    """With the true ε, eq. 12 at η = 1 between consecutive indices is q(x_{t−1} | x_t, x_0)'s mean."""
    betas, abar = SCHEDULE.betas, SCHEDULE.alphas_cumprod
    t = 300
    x0, eps = torch.randn(5, 4, generator=_generator(), dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    x_t = q_sample(x0, abar[t], eps)
    mean = (abar[t - 1].sqrt() * betas[t] / (1 - abar[t])) * x0 + ((1 - betas[t]).sqrt() * (1 - abar[t - 1]) / (1 - abar[t])) * x_t
    zero = torch.zeros_like(x_t)
    torch.testing.assert_close(ddim_step(x_t, eps, abar[t], abar[t - 1], eta=1.0, noise=zero), mean)
    # the σ̂ step shares that mean when the jump is one index (β̂ = β_t)
    torch.testing.assert_close(ddpm_sigma_hat_step(x_t, eps, abar[t], abar[t - 1], clip_denoised=False), mean)


def test_deterministic_step_with_true_noise_lands_on_the_same_noise_path():
    """η = 0 keeps the ε direction: from q_sample(x0, ᾱ_t, ε) it reaches exactly q_sample(x0, ᾱ_p, ε)."""
    x0, eps = torch.randn(3, 2, 4, 4, generator=_generator(1)), torch.randn(3, 2, 4, 4, generator=_generator(2))
    a_t, a_p = SCHEDULE.alpha_bar(900), SCHEDULE.alpha_bar(100)
    x_p = ddim_step(q_sample(x0, a_t, eps), eps, a_t, a_p)
    torch.testing.assert_close(x_p, q_sample(x0, a_p, eps), rtol=1e-4, atol=1e-4)
    # and the last step (to ᾱ = 1) returns x0
    torch.testing.assert_close(ddim_step(q_sample(x0, a_t, eps), eps, a_t, 1.0), x0, rtol=1e-3, atol=1e-3)


def test_step_accepts_broadcastable_tensor_alphas():
    x0, eps = torch.randn(2, 3), torch.randn(2, 3)
    a_t = torch.tensor([[0.5], [0.2]])
    a_p = torch.tensor([[0.9], [0.6]])
    out = ddim_step(q_sample(x0, a_t, eps), eps, a_t, a_p)
    torch.testing.assert_close(out, q_sample(x0, a_p, eps))


def test_positive_sigma_without_noise_and_eta_outside_zero_one_are_rejected():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="needs `noise`"):
        ddim_step(x, x, 0.5, 0.9, eta=0.5)
    with pytest.raises(ValueError, match=r"eta=-0.1; expected a number in \[0, 1\]"):
        ddim_step(x, x, 0.5, 0.9, eta=-0.1, noise=x)
    with pytest.raises(ValueError, match=r"eta=-1; expected a number in \[0, 1\]"):
        sample(lambda x, t: x, x, SCHEDULE, tau(10), eta=-1)
    with pytest.raises(ValueError, match="unknown variance"):
        sample(lambda x, t: x, x, SCHEDULE, tau(10), variance="large")


@pytest.mark.parametrize("eta,variance", [(0.0, "eta"), (0.5, "eta"), (1.0, "eta"), (0.0, "sigma_hat")])
def test_oracle_samples_have_the_data_distribution_at_1000_steps(eta, variance):
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    x_T = torch.randn(20000, 2, generator=_generator(3), dtype=torch.float64)
    x0 = sample(oracle, x_T, SCHEDULE, tau(1000), eta=eta, variance=variance, generator=_generator(4))
    assert x0.mean().item() == pytest.approx(MEAN, abs=0.01)
    assert x0.std().item() == pytest.approx(STD, rel=0.03)


@pytest.mark.parametrize("steps,skip", [(10, "uniform"), (20, "quad"), (50, "uniform")])
def test_oracle_ddim_with_few_steps_is_exactly_euler_on_the_scaled_ode(steps, skip):
    """In x̄ = x/√ᾱ and σ = √((1 − ᾱ)/ᾱ), the oracle's ε̂ is σ(x̄ − μ)/(s² + σ²) and an η = 0 step is
    x̄_p = x̄_t + (σ_p − σ_t) ε̂: each sample ends at μ + P·(x̄_T − μ), P = Π(1 + σ_t(σ_p − σ_t)/(s² + σ_t²))."""
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    x_T = torch.randn(1000, 1, generator=_generator(5), dtype=torch.float64)
    timesteps = make_timesteps(1000, steps, skip)
    scaled_sigma = lambda i: 0.0 if i < 0 else ((1 - SCHEDULE.alpha_bar(i)) / SCHEDULE.alpha_bar(i)) ** 0.5
    factor = 1.0
    for t, p in zip(reversed(timesteps), reversed([-1, *timesteps[:-1]])):
        s_t, s_p = scaled_sigma(t), scaled_sigma(p)
        factor *= 1 + s_t * (s_p - s_t) / (STD**2 + s_t**2)
    expected = MEAN + factor * (x_T / SCHEDULE.alpha_bar(timesteps[-1]) ** 0.5 - MEAN)
    torch.testing.assert_close(sample(oracle, x_T, SCHEDULE, tau(steps, skip)), expected, rtol=1e-9, atol=1e-9)


def test_eta_zero_ignores_the_generator_and_is_deterministic():
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    x_T = torch.randn(8, 3, generator=_generator(6))
    a = sample(oracle, x_T, SCHEDULE, tau(50), eta=0.0, generator=_generator(7))
    b = sample(oracle, x_T, SCHEDULE, tau(50), eta=0.0, generator=_generator(8))
    assert torch.equal(a, b)
    c = sample(oracle, x_T, SCHEDULE, tau(50), eta=1.0, generator=_generator(7))
    d = sample(oracle, x_T, SCHEDULE, tau(50), eta=1.0, generator=_generator(8))
    assert not torch.allclose(c, d)


def test_a_noise_callable_keyed_by_image_makes_image_i_independent_of_batching():
    from ddim.utils.noise import CounterNoise  # the callable generate() passes; the core only calls it

    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    x_T = torch.randn(4, 2, 3, generator=_generator(9))
    together = sample(oracle, x_T, SCHEDULE, tau(20), eta=1.0, generator=CounterNoise(100, range(4), (2, 3)))
    alone = [sample(oracle, x_T[i : i + 1], SCHEDULE, tau(20), eta=1.0, generator=CounterNoise(100, [i], (2, 3)))
             for i in range(4)]
    torch.testing.assert_close(together, torch.cat(alone))


@pytest.mark.parametrize("eta", [-0.1, 1.5])
def test_eta_outside_zero_one_is_refused_naming_the_value(eta):
    # η > 1 would ask for σ² > 1 − ᾱ_prev: at S = 10, η = 1.5 gives σ² = 2.25 β̃, past 1 − ᾱ_prev on the last steps
    with pytest.raises(ValueError, match=rf"eta={eta}; expected a number in \[0, 1\]"):
        sample(GaussianOracle(SCHEDULE, MEAN, STD), torch.zeros(2, 3), SCHEDULE, tau(10), eta=eta)


@pytest.mark.parametrize("skip", ["uniform", "quad"])
def test_encode_then_decode_reconstructs_better_as_steps_grow(skip):
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    x0 = MEAN + STD * torch.randn(2000, 4, generator=_generator(10), dtype=torch.float64)
    errors = []
    for steps in [10, 50, 200, 1000]:
        x_T = encode(oracle, x0, SCHEDULE, tau(steps, skip))
        errors.append(((sample(oracle, x_T, SCHEDULE, tau(steps, skip)) - x0) ** 2).mean().item())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-3


def test_encoding_data_gives_standard_normal_latents():
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    x0 = MEAN + STD * torch.randn(20000, 1, generator=_generator(11), dtype=torch.float64)
    x_T = encode(oracle, x0, SCHEDULE, tau(200))
    assert x_T.mean().item() == pytest.approx(0.0, abs=0.02)
    assert x_T.std().item() == pytest.approx(1.0, rel=0.03)


def test_callback_sees_every_step_and_last_x0_pred_is_the_output():
    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    seen = []
    out = sample(oracle, torch.randn(3, 2, generator=_generator(12)), SCHEDULE, tau(10), callback=seen.append)
    assert [s.t_from for s in seen] == list(reversed(make_timesteps(1000, 10)))
    assert seen[-1].t_to == -1
    torch.testing.assert_close(seen[-1].x0_pred, out)


def test_model_sees_long_timesteps_of_the_trajectory():
    calls = []

    def model(x, t):
        calls.append(t.clone())
        return torch.zeros_like(x)

    sample(model, torch.zeros(2, 1), SCHEDULE, tau(10, "quad"))
    assert all(c.dtype == torch.long and c.shape == (2,) for c in calls)
    assert [int(c[0]) for c in calls] == list(reversed(make_timesteps(1000, 10, "quad")))


def test_sigma_hat_clips_x0_and_adds_no_noise_on_the_last_step():
    # ε̂ = 0 at index 0 makes x̂0 = x / √ᾱ_0 ≈ x; values beyond ±1 must be clipped by σ̂, not by η-DDIM
    x = torch.tensor([[3.0, -0.5]])
    out = sample(lambda x, t: torch.zeros_like(x), x, SCHEDULE, [0], variance="sigma_hat", generator=_generator())
    torch.testing.assert_close(out, torch.tensor([[1.0, -0.5 / SCHEDULE.alpha_bar(0) ** 0.5]]))
    out = sample(lambda x, t: torch.zeros_like(x), x, SCHEDULE, [0], eta=1.0, generator=_generator())
    assert out[0, 0].item() > 2.9


def test_explicit_timesteps_must_be_increasing_indices():
    with pytest.raises(ValueError, match="strictly increasing"):
        sample(lambda x, t: x, torch.zeros(1, 1), SCHEDULE, [5, 3])


def test_counter_noise_gives_image_i_the_same_samples_in_any_batch():
    from ddim.utils import CounterNoise

    oracle = GaussianOracle(SCHEDULE, MEAN, STD)
    steps = 70
    noise = CounterNoise(1, range(5), (1, 2, 2), num_step_streams=steps)
    x_T = noise.latents(torch.float64)
    together = sample(oracle, x_T, SCHEDULE, tau(steps), eta=1.0, generator=noise)
    alone = []
    for i in [3, 0, 4, 1, 2]:
        one = CounterNoise(1, [i], (1, 2, 2), num_step_streams=steps)
        alone.append((i, sample(oracle, one.latents(torch.float64), SCHEDULE, tau(steps), eta=1.0, generator=one)))
    torch.testing.assert_close(together, torch.cat([x for _, x in sorted(alone, key=lambda p: p[0])]))
    other = CounterNoise(2, range(5), (1, 2, 2), num_step_streams=steps)
    assert not torch.allclose(together, sample(oracle, x_T, SCHEDULE, tau(steps), eta=1.0, generator=other))
