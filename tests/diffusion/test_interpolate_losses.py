import math

import pytest
import torch

from ddim.diffusion import NoiseSchedule, loss_weights, slerp


def test_slerp_endpoints_and_norm_on_orthogonal_inputs():
    z0 = torch.tensor([[3.0, 0.0, 0.0]])
    z1 = torch.tensor([[0.0, 3.0, 0.0]])
    torch.testing.assert_close(slerp(z0, z1, 0.0), z0)
    torch.testing.assert_close(slerp(z0, z1, 1.0), z1)
    mid = slerp(z0, z1, 0.5)
    # θ = π/2: z_½ = sin(π/4)(z0 + z1), on the same sphere
    torch.testing.assert_close(mid, math.sin(math.pi / 4) * (z0 + z1))
    assert mid.norm().item() == pytest.approx(3.0)


def test_slerp_parallel_inputs_fall_back_to_lerp_without_nan():
    z = torch.randn(2, 3, 4, 4)
    out = slerp(z, 2 * z, 0.25)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, 1.25 * z)


def test_slerp_batches_angles_per_element():
    z0 = torch.stack([torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])])
    z1 = torch.stack([torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 1e-3])])
    out = slerp(z0, z1, 0.5)
    assert out[0].tolist() == pytest.approx([math.sqrt(0.5), math.sqrt(0.5)])
    assert out[1, 1].item() == pytest.approx(1.0, abs=1e-3)  # θ ≈ π: halfway is the orthogonal direction


def test_loss_weightings():
    schedule = NoiseSchedule.linear()
    assert torch.equal(loss_weights(schedule, "simple"), torch.ones(1000, dtype=torch.float64))
    a, b = schedule.alphas_cumprod, schedule.betas
    w = loss_weights(schedule, "theorem1")
    t, s = 10, 700  # γ_t ∝ 1 / (σ_t² ᾱ_t) with σ_t² = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) β_t
    sigma2 = lambda i: (1 - a[i - 1]) / (1 - a[i]) * b[i]
    assert (w[t] / w[s]).item() == pytest.approx((sigma2(s) * a[s] / (sigma2(t) * a[t])).item(), rel=1e-9)
    assert w.mean().item() == pytest.approx(1.0)
    m = loss_weights(schedule, "min_snr", min_snr_gamma=5.0)
    snr = a / (1 - a)
    low = int((snr > 5).sum())  # SNR falls with t: the first indices are clamped at γ = 5
    assert (m[low:] == m[-1]).all() and (m[:low] < m[-1]).all()
    assert (m[0] / m[-1]).item() == pytest.approx(5 / snr[0].item(), rel=1e-9)
    with pytest.raises(ValueError, match="unknown loss weighting"):
        loss_weights(schedule, "elbo")
