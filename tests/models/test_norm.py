"""The U-Net's GroupNorm: its bf16 path against the closed form, exact fp32 without autocast, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ddim.models.norm import GroupNorm


def _group_norm_float64(x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float):
    """The closed form, in float64: (x − mean) / sqrt(var + eps) per (image, group), then the per-channel affine."""
    b, c = x.shape[:2]
    g = x.double().reshape(b, groups, -1)
    normed = ((g - g.mean(-1, keepdim=True)) / (g.var(-1, unbiased=False, keepdim=True) + eps).sqrt()).reshape(x.shape)
    shape = (1, c) + (1,) * (x.dim() - 2)
    return normed * weight.double().reshape(shape) + bias.double().reshape(shape)


@pytest.fixture
def bf16_group_norm_on_cpu(monkeypatch):
    """The CUDA path (autocast off, γ and β cast to bf16) taken on the CPU, so its arithmetic is tested here."""
    monkeypatch.setattr("ddim.models.norm.AUTOCAST_FP32_GROUP_NORM", {"cuda", "cpu"})


def test_group_norm_in_bf16_matches_the_closed_form(bf16_group_norm_on_cpu):
    torch.manual_seed(0)
    norm = GroupNorm(8, 32, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = (torch.randn(3, 32, 6, 6) * 3 + 1).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = norm(x)
    assert out.dtype == torch.bfloat16
    expected = _group_norm_float64(x, 8, norm.weight, norm.bias, 1e-6)
    # bf16 output and bf16 γ, β (relative rounding 2⁻⁹ each): a few units of 2⁻⁹ on values of size ~2
    assert (out.double() - expected).abs().max() < 4 * 2**-9 * expected.abs().max()


def test_group_norm_without_autocast_is_nn_group_norm_exactly(bf16_group_norm_on_cpu):
    torch.manual_seed(1)
    norm = GroupNorm(4, 16)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 16, 5, 5)
    assert torch.equal(norm(x), F.group_norm(x, 4, norm.weight, norm.bias, norm.eps))
    assert torch.allclose(norm(x).double(), _group_norm_float64(x, 4, norm.weight, norm.bias, norm.eps), atol=1e-5)


def test_group_norm_in_bf16_trains_its_fp32_parameters(bf16_group_norm_on_cpu):
    # bf16-mixed training: the gradient reaches the fp32 γ and β through the per-call cast, close to fp32's
    torch.manual_seed(2)
    x = torch.randn(2, 16, 4, 4)
    grads = {}
    for autocast in (False, True):
        norm = GroupNorm(4, 16)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = norm(x.bfloat16() if autocast else x)
        (out.float() * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        assert norm.weight.grad.dtype == torch.float32
        grads[autocast] = norm.weight.grad
    assert torch.allclose(grads[True], grads[False], rtol=0.02, atol=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_group_norm_under_cuda_autocast_skips_the_fp32_round_trip():
    torch.manual_seed(3)
    norm = GroupNorm(8, 32).cuda()
    x = torch.randn(2, 32, 8, 8, device="cuda").bfloat16()
    plain = torch.nn.GroupNorm(8, 32).cuda()
    plain.load_state_dict(norm.state_dict())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ours, theirs = norm(x), plain(x)
    assert theirs.dtype == torch.float32 and ours.dtype == torch.bfloat16
    assert (ours.float() - theirs).abs().max() < 4 * 2**-9 * theirs.abs().max()
