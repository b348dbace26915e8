import pytest
import torch

from ddim.diffusion import NoiseSchedule
from ddim.training import DiffusionModule, antithetic_timesteps, ema_decay_at, warmup_lr_factor

from ..diffusion.gaussian_oracle import GaussianOracle

TINY = dict(in_channels=1, out_ch=1, ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[4],
            dropout=0.0, resolution=8)
LINEAR = {"name": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02}


def test_warmup_is_linear_then_constant():
    assert [warmup_lr_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_lr_factor(0, 0) == 1.0


def test_cosine_decay_falls_from_one_to_zero_after_the_warmup():
    # warm-up 10, then cos over steps 10..110: the closed form 0.5 (1 + cos(π (s − 10) / 100))
    factors = {s: warmup_lr_factor(s, 10, "cosine", 110) for s in (4, 10, 35, 60, 85, 110, 200)}
    assert factors[4] == pytest.approx(0.5)
    assert factors[10] == pytest.approx(1.0)
    assert factors[35] == pytest.approx(0.5 * (1 + 2**-0.5))
    assert factors[60] == pytest.approx(0.5)
    assert factors[85] == pytest.approx(0.5 * (1 - 2**-0.5))
    assert factors[110] == pytest.approx(0.0, abs=1e-12) and factors[200] == pytest.approx(0.0, abs=1e-12)


def test_lr_decay_is_checked_by_name():
    with pytest.raises(ValueError, match="module.lr_decay='linear'; expected one of constant, cosine"):
        DiffusionModule(model=TINY, schedule=LINEAR, lr_decay="linear")


def test_antithetic_timesteps_come_in_mirrored_pairs():
    t = antithetic_timesteps(9, 1000, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert t.shape == (9,) and t.dtype == torch.long and int(t.min()) >= 0 and int(t.max()) <= 999
    half = 9 // 2 + 1
    assert torch.equal(t[half:] + t[: 9 - half], torch.full((9 - half,), 999))


@pytest.mark.parametrize("weighting", ["simple", "min_snr"])
def test_loss_of_the_optimal_predictor_is_the_posterior_variance_of_the_noise(weighting):
    """With x0 ~ N(μ, s²), the best ε̂ leaves E‖ε̂ − ε‖² = Var(ε | x_t) = 1 − (1 − ᾱ)/(ᾱ s² + 1 − ᾱ) per
    dimension; L_γ must be Σ_t γ_t of that over uniform t."""
    torch.manual_seed(0)
    module = DiffusionModule(model=TINY, schedule=LINEAR, loss_weighting=weighting, antithetic=False)
    mean, std = 0.1, 0.4
    module.model = GaussianOracle(module.schedule, mean, std)
    x0 = mean + std * torch.randn(200000, 1, 1, 1)
    a = module.schedule.alphas_cumprod
    expected = (module.loss_weights.double() * (1 - (1 - a) / (a * std**2 + 1 - a))).mean().item()
    assert module.diffusion_loss(x0).item() == pytest.approx(expected, rel=0.02)


def test_ema_decay_warms_up_then_holds():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.999) == pytest.approx(91 / 100)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert ema_decay_at(0, 0.999, warmup=False) == 0.999


def test_ema_follows_its_closed_form():
    module = DiffusionModule(model=TINY, schedule=LINEAR, ema_decay=0.9, ema_warmup=False)
    param = lambda m: next(m.parameters())
    first = param(module.model).detach().clone()
    module.ema.update_parameters(module.model)  # the first update copies the weights
    torch.testing.assert_close(param(module.ema_model), first)
    with torch.no_grad():
        param(module.model).add_(1.0)
    module.ema.update_parameters(module.model)
    torch.testing.assert_close(param(module.ema_model), 0.9 * first + 0.1 * (first + 1.0))
    assert not any(p.requires_grad for p in module.ema.parameters())
    # with warm-up the second update uses d = min(0.9, 2/11)
    warm = DiffusionModule(model=TINY, schedule=LINEAR, ema_decay=0.9)
    start = param(warm.model).detach().clone()
    warm.ema.update_parameters(warm.model)
    with torch.no_grad():
        param(warm.model).add_(1.0)
    warm.ema.update_parameters(warm.model)
    torch.testing.assert_close(param(warm.ema_model), start + (1 - 2 / 11))


def test_bad_module_settings_are_one_clear_line():
    with pytest.raises(ValueError, match=r"loss_weighting='elbo'; expected one of simple, theorem1, min_snr"):
        DiffusionModule(model=TINY, schedule=LINEAR, loss_weighting="elbo")
    with pytest.raises(ValueError, match=r"ema_decay=1.5; expected a value in \[0, 1\)"):
        DiffusionModule(model=TINY, schedule=LINEAR, ema_decay=1.5)
    with pytest.raises(ValueError, match="unknown noise schedule 'warp'"):
        DiffusionModule(model=TINY, schedule={"name": "warp", "T": 10})
