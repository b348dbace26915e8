"""The DDPM U-Net: the paper's parameter counts, the reference parameter names, shapes, the time embedding."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from ddim.models import UNet, count_parameters
from ddim.models.unet import AttnBlock, timestep_embedding

DIGITS = dict(in_channels=1, out_ch=1, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
              resolution=8)


def meta_unet(**kwargs) -> UNet:
    """A UNet on the meta device: shapes and names without allocating or initialising 100M parameters."""
    with torch.device("meta"):
        return UNet(**kwargs)


def test_cifar10_config_has_the_papers_parameter_count():
    assert count_parameters(meta_unet()) == 35_746_307


def test_celeba_config_has_the_papers_parameter_count():
    assert count_parameters(meta_unet(ch_mult=(1, 2, 2, 2, 4), resolution=64)) == 78_700_803


def test_paper_configs_use_groupnorm_32_eps_1e6():
    norms = [m for m in meta_unet().modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.num_groups == 32 and m.eps == 1e-6 and m.affine for m in norms)


def test_small_channel_counts_use_a_group_count_that_divides_them():
    model = meta_unet(ch=16, ch_mult=(1, 3), attn_resolutions=(), resolution=8)
    groups = {(m.num_channels, m.num_groups) for m in model.modules() if isinstance(m, torch.nn.GroupNorm)}
    assert (16, 16) in groups and (48, 16) in groups
    assert all(c % g == 0 for c, g in groups)


def test_state_dict_has_the_reference_names_and_shapes():
    state = meta_unet().state_dict()
    expected_shapes = {
        "temb.dense.0.weight": (512, 128), "temb.dense.1.weight": (512, 512), "conv_in.weight": (128, 3, 3, 3),
        "down.0.block.0.norm1.weight": (128,), "down.0.block.0.conv1.weight": (128, 128, 3, 3),
        "down.0.block.0.temb_proj.weight": (128, 512), "down.0.block.1.norm2.bias": (128,),
        "down.0.block.1.conv2.weight": (128, 128, 3, 3), "down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
        "down.1.attn.0.norm.weight": (256,), "down.1.attn.1.q.weight": (256, 256, 1, 1),
        "down.1.attn.1.k.bias": (256,), "down.1.attn.0.v.weight": (256, 256, 1, 1),
        "down.1.attn.0.proj_out.weight": (256, 256, 1, 1), "down.0.downsample.conv.weight": (128, 128, 3, 3),
        "down.2.downsample.conv.bias": (256,), "mid.block_1.conv1.weight": (256, 256, 3, 3),
        "mid.attn_1.q.weight": (256, 256, 1, 1), "mid.block_2.temb_proj.bias": (256,),
        # up[i] is level i; its first block sees the level below's output plus level i's skip
        "up.0.block.0.norm1.weight": (384,), "up.0.block.0.nin_shortcut.weight": (128, 384, 1, 1),
        "up.0.block.2.conv1.weight": (128, 256, 3, 3), "up.1.attn.2.proj_out.weight": (256, 256, 1, 1),
        "up.3.block.0.conv1.weight": (256, 512, 3, 3), "up.3.upsample.conv.weight": (256, 256, 3, 3),
        "up.1.upsample.conv.bias": (256,), "norm_out.weight": (128,), "conv_out.weight": (3, 128, 3, 3),
    }
    for name, shape in expected_shapes.items():
        assert tuple(state[name].shape) == shape, name
    absent = ["down.3.downsample.conv.weight", "up.0.upsample.conv.weight", "down.0.block.0.nin_shortcut.weight",
              "down.0.attn.0.q.weight", "down.2.attn.0.q.weight", "up.0.attn.0.q.weight", "temb.dense.2.weight"]
    assert not [name for name in absent if name in state]
    # attention only at 16x16 (level 1), on both paths: 2 down + 3 up blocks, and the middle
    attn_levels = {k.split(".")[0] + "." + k.split(".")[1] for k in state if ".attn." in k}
    assert attn_levels == {"down.1", "up.1"}
    assert len({k.split(".attn.")[1].split(".")[0] for k in state if k.startswith("up.1.attn.")}) == 3
    assert sum(k.endswith(".weight") for k in state) == len(list(meta_unet().parameters())) // 2


@pytest.mark.slow
def test_cifar10_forward_keeps_the_input_shape():
    model = UNet().eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = model(x, torch.tensor([999]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_digits_config_runs_forward_and_backward():
    torch.manual_seed(0)
    model = UNet(**DIGITS)
    x = torch.randn(4, 1, 8, 8)
    out = model(x, torch.randint(0, 1000, (4,)))
    assert out.shape == x.shape
    out.square().mean().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["down.1.attn.0.q.weight"].abs().sum() > 0 and grads["temb.dense.0.weight"].abs().sum() > 0


def test_timestep_embedding_is_the_ddpm_sinusoid():
    t = torch.tensor([0, 1, 500, 999])
    emb = timestep_embedding(t, 128)
    freqs = torch.exp(-math.log(10000.0) / 63 * torch.arange(64, dtype=torch.float32))
    angles = t.float()[:, None] * freqs
    torch.testing.assert_close(emb, torch.cat([angles.sin(), angles.cos()], dim=1))
    # the lowest frequency is exactly 1/10000: the denominator is half - 1, as in Ho et al.
    torch.testing.assert_close(emb[:, 63], torch.sin(t.float() / 10000.0))
    odd = timestep_embedding(t, 7)
    assert odd.shape == (4, 7) and (odd[:, -1] == 0).all()


def test_different_timesteps_give_different_outputs():
    torch.manual_seed(0)
    model = UNet(**DIGITS).eval()
    x = torch.randn(1, 1, 8, 8).expand(3, -1, -1, -1)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 1, 900]))
    # a batch of 1 takes other conv/GEMM blockings than a batch of 3, so float32 sums run in another order: ~1e-6
    # on outputs of size ~1 (measured 1.1e-6, over ~20 layers of reductions up to 9·128 long); 1e-5 holds that
    # with room, and is still 2,000× below what one timestep apart changes (0.024)
    tolerance = 1e-5
    assert (out[0] - out[1]).abs().max() > 100 * tolerance and (out[1] - out[2]).abs().max() > 100 * tolerance
    with torch.no_grad():
        again = model(x[:1], torch.tensor([1]))
    torch.testing.assert_close(again[0], out[1], rtol=tolerance, atol=tolerance)


def test_attention_is_single_head_softmax_over_positions_scaled_by_c():
    torch.manual_seed(0)
    block = AttnBlock(32).eval()
    x = torch.randn(2, 32, 4, 4)
    h = block.norm(x)
    q, k, v = (conv(h).flatten(2) for conv in (block.q, block.k, block.v))  # [B, C, HW]
    weights = F.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(32), dim=2)
    expected = x + block.proj_out(torch.einsum("bij,bcj->bci", weights, v).reshape(2, 32, 4, 4))
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_config_is_plain_and_rebuilds_the_same_architecture():
    model = meta_unet(**DIGITS)
    config = json.loads(json.dumps(model.config))
    assert config["ch_mult"] == [1, 2, 2] and config["attn_resolutions"] == [4] and config["resolution"] == 8
    rebuilt = meta_unet(**config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kwargs,message", [
    (dict(resolution=30), "not divisible by 2**(len(ch_mult)-1)=8"),
    (dict(attn_resolutions=(12,)), "[12] not reached"),
    (dict(ch_mult=()), "ch_mult=[]"),
    (dict(num_res_blocks=0), "num_res_blocks=0"),
    (dict(dropout=1.5), "dropout=1.5"),
])
def test_bad_arguments_are_one_clear_line(kwargs, message):
    with pytest.raises(ValueError) as info:
        meta_unet(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_avgpool_resampling_has_no_resampling_weights():
    model = UNet(**{**DIGITS, "resamp_with_conv": False}).eval()
    assert not [k for k in model.state_dict() if "sample" in k]
    with torch.no_grad():
        assert model(torch.randn(2, 1, 8, 8), torch.tensor([3, 4])).shape == (2, 1, 8, 8)
