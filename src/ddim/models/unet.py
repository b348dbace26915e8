"""The DDPM U-Net of Ho et al. (2020), the ε_θ(x_t, t) network that the DDIM paper samples.

Parameter names are exactly those of the PyTorch port of Ho et al.'s TensorFlow weights (pesser/pytorch_diffusion,
reused by ermongroup/ddim), so those state dicts load as they are:

    temb.dense.{0,1}                                       time-embedding MLP, ch -> 4ch -> 4ch
    conv_in
    down.{i}.block.{j}.{norm1,conv1,temb_proj,norm2,conv2,nin_shortcut}
    down.{i}.attn.{j}.{norm,q,k,v,proj_out}                only on levels whose resolution is in attn_resolutions
    down.{i}.downsample.conv                               all levels but the last (if resamp_with_conv)
    mid.{block_1,attn_1,block_2}
    up.{i}.block.{j}   (num_res_blocks + 1 blocks)         up[i] is level i, the same resolution as down[i]
    up.{i}.attn.{j}
    up.{i}.upsample.conv                                   all levels but 0 (if resamp_with_conv)
    norm_out, conv_out

Level i works at resolution `resolution / 2**i` with `ch * ch_mult[i]` channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ddim.errors import InputError

from .norm import NORM_EPS, NORM_GROUPS, group_norm


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (float) timesteps as in Ho et al.: [sin | cos] with frequencies
    exp(−log(10000)·k/(half − 1)), zero-padded to `dim` when it is odd."""
    half = dim // 2
    # half − 1 in the denominator (not half) is what the DDPM code does; the published weights depend on it
    step = math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=timesteps.device) * -step)
    angles = timesteps.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class ResnetBlock(nn.Module):
    """norm → swish → conv → (+ projected time embedding) → norm → swish → dropout → conv, plus a skip
    that is a 1x1 conv (`nin_shortcut`) only when the channel count changes."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, dropout: float,
                 norm_groups: int = NORM_GROUPS, norm_eps: float = NORM_EPS) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, norm_groups, norm_eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.temb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = group_norm(out_channels, norm_groups, norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all H·W positions with 1x1-conv projections, scaled by C^−1/2, residual."""

    def __init__(self, channels: int, norm_groups: int = NORM_GROUPS, norm_eps: float = NORM_EPS) -> None:
        super().__init__()
        self.norm = group_norm(channels, norm_groups, norm_eps)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        # tokens [B, H·W, C] with the channels contiguous (free for channels_last input): the 1x1 convolutions become
        # plain matrix products, and SDPA gets the layout its fused kernels need. With the channel axis strided,
        # CPU SDPA fell back to explicit bmm + softmax.
        h = self.norm(x).flatten(2).transpose(1, 2).contiguous()
        q, k, v = (F.linear(h, conv.weight.flatten(1), conv.bias)[:, None] for conv in (self.q, self.k, self.v))
        # SDPA's default scale is 1/sqrt(last dim) = C^−1/2, the reference's scaling; one head
        out = F.scaled_dot_product_attention(q, k, v)[:, 0]
        out = F.linear(out, self.proj_out.weight.flatten(1), self.proj_out.bias)
        return x + out.transpose(1, 2).reshape(b, c, height, width)


class Downsample(nn.Module):
    """Halves H and W: a 3x3 stride-2 conv after padding one zero row/column at the bottom/right (TensorFlow's
    'SAME' padding, which the published weights were trained with), or 2x2 average pooling."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "conv"):
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, 2)


class Upsample(nn.Module):
    """Doubles H and W: nearest-neighbour, then a 3x3 conv if with_conv."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if hasattr(self, "conv") else x


# what the output predicts: ddim.diffusion.prediction.PREDICTIONS, restated because models do not import diffusion
PREDICTIONS = ("eps", "x0", "v")

# Channel multipliers per level by image size: Ho et al.'s 32 (CIFAR-10), 64 (the DDIM CelebA model) and 256
# (LSUN); 128 and 16 as improved-diffusion and the 32-pixel model minus a level. Down to a 4x4 bottom either way.
CH_MULT_BY_RESOLUTION: dict[int, tuple[int, ...]] = {
    16: (1, 2, 2), 32: (1, 2, 2, 2), 64: (1, 2, 2, 2, 4), 128: (1, 1, 2, 3, 4), 256: (1, 1, 2, 2, 4, 4),
}


def ch_mult_for(resolution: int) -> tuple[int, ...]:
    """`ch_mult="auto"`: the published multipliers for this image size."""
    if int(resolution) not in CH_MULT_BY_RESOLUTION:
        raise InputError(f"UNet: ch_mult=auto knows resolutions {sorted(CH_MULT_BY_RESOLUTION)}, got "
                         f"{resolution}; give model.ch_mult=[...] explicitly")
    return CH_MULT_BY_RESOLUTION[int(resolution)]


class UNet(nn.Module):
    """ε_θ(x, t): x [B, in_channels, H, W] in [−1, 1], t a LongTensor [B] of network indices 0..T−1.

    `norm_groups` and `norm_eps` (32 and 1e-6 for every published DDPM model) exist so that converted weights of
    other GroupNorm settings (a diffusers config's norm_num_groups / norm_eps) load exactly. `prediction` says what
    the output is, ε (the paper's), x0 or v; samplers turn it into ε̂ (ddim.diffusion.prediction.as_eps_model)."""

    def __init__(
        self,
        in_channels: int = 3,
        out_ch: int = 3,
        ch: int = 128,
        ch_mult: Sequence[int] | str = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.1,
        resolution: int = 32,
        resamp_with_conv: bool = True,
        norm_groups: int = NORM_GROUPS,
        norm_eps: float = NORM_EPS,
        prediction: str = "eps",
    ) -> None:
        super().__init__()
        ch_mult = ch_mult_for(resolution) if ch_mult == "auto" else tuple(int(m) for m in ch_mult)
        attn_resolutions = tuple(int(r) for r in attn_resolutions)
        _validate(in_channels, out_ch, ch, ch_mult, num_res_blocks, attn_resolutions, dropout, resolution,
                  norm_groups, norm_eps)
        if prediction not in PREDICTIONS:
            raise InputError(f"UNet: prediction={prediction!r}; expected one of {', '.join(PREDICTIONS)}")
        # plain builtins only, so that checkpoints carrying it load with torch.load(weights_only=True)
        self.config: dict[str, Any] = {
            "in_channels": int(in_channels), "out_ch": int(out_ch), "ch": int(ch), "ch_mult": list(ch_mult),
            "num_res_blocks": int(num_res_blocks), "attn_resolutions": list(attn_resolutions),
            "dropout": float(dropout), "resolution": int(resolution), "resamp_with_conv": bool(resamp_with_conv),
            "norm_groups": int(norm_groups), "norm_eps": float(norm_eps), "prediction": str(prediction),
        }
        self.ch = ch
        self.num_levels = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        temb_ch = 4 * ch
        norm = {"norm_groups": norm_groups, "norm_eps": norm_eps}

        def resnet(cin: int, cout: int) -> ResnetBlock:
            return ResnetBlock(cin, cout, temb_ch, dropout, **norm)

        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, temb_ch), nn.Linear(temb_ch, temb_ch)])
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)

        level_channels = [ch * m for m in ch_mult]
        has_attn = [resolution // 2**i in attn_resolutions for i in range(self.num_levels)]

        self.down = nn.ModuleList()
        # channel counts of the skip activations, in the order forward() pushes them
        skips = [ch]
        cin = ch
        for i, cout in enumerate(level_channels):
            level = nn.Module()
            level.block = nn.ModuleList()
            level.attn = nn.ModuleList()
            for _ in range(num_res_blocks):
                level.block.append(resnet(cin, cout))
                if has_attn[i]:
                    level.attn.append(AttnBlock(cout, **norm))
                cin = cout
                skips.append(cout)
            if i != self.num_levels - 1:
                level.downsample = Downsample(cout, resamp_with_conv)
                skips.append(cout)
            self.down.append(level)

        self.mid = nn.Module()
        self.mid.block_1 = resnet(cin, cin)
        self.mid.attn_1 = AttnBlock(cin, **norm)
        self.mid.block_2 = resnet(cin, cin)

        # built deepest level first (the order skips are consumed) but stored so that up[i] is level i
        up_levels: list[nn.Module] = []
        for i in reversed(range(self.num_levels)):
            cout = level_channels[i]
            level = nn.Module()
            level.block = nn.ModuleList()
            level.attn = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                level.block.append(resnet(cin + skips.pop(), cout))
                if has_attn[i]:
                    level.attn.append(AttnBlock(cout, **norm))
                cin = cout
            if i != 0:
                level.upsample = Upsample(cout, resamp_with_conv)
            up_levels.insert(0, level)
        self.up = nn.ModuleList(up_levels)

        self.norm_out = group_norm(cin, norm_groups, norm_eps)
        self.conv_out = nn.Conv2d(cin, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        temb = timestep_embedding(t, self.ch).to(x.dtype)
        temb = self.temb.dense[1](F.silu(self.temb.dense[0](temb)))

        hs = [self.conv_in(x)]
        for i, level in enumerate(self.down):
            for j, block in enumerate(level.block):
                h = block(hs[-1], temb)
                if len(level.attn) > 0:
                    h = level.attn[j](h)
                hs.append(h)
            if i != self.num_levels - 1:
                hs.append(level.downsample(hs[-1]))

        h = hs[-1]
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h, temb)), temb)

        for i in reversed(range(self.num_levels)):
            level = self.up[i]
            for j, block in enumerate(level.block):
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
                if len(level.attn) > 0:
                    h = level.attn[j](h)
            if i != 0:
                h = level.upsample(h)

        return self.conv_out(F.silu(self.norm_out(h)))


def _validate(in_channels: int, out_ch: int, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int,
              attn_resolutions: tuple[int, ...], dropout: float, resolution: int, norm_groups: int,
              norm_eps: float) -> None:
    """One clear ValueError line for arguments that cannot make a working U-Net."""
    if min(in_channels, out_ch, ch) < 1:
        raise InputError(f"UNet: in_channels={in_channels}, out_ch={out_ch}, ch={ch}; expected positive integers")
    if not ch_mult or min(ch_mult) < 1:
        raise InputError(f"UNet: ch_mult={list(ch_mult)}; expected a non-empty list of positive integers")
    if num_res_blocks < 1:
        raise InputError(f"UNet: num_res_blocks={num_res_blocks}; expected an integer >= 1")
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"UNet: dropout={dropout}; expected a value in [0, 1)")
    if norm_groups < 1 or norm_eps <= 0:
        raise InputError(f"UNet: norm_groups={norm_groups}, norm_eps={norm_eps}; expected positive values")
    factor = 2 ** (len(ch_mult) - 1)
    if resolution < factor or resolution % factor:
        raise InputError(f"UNet: resolution={resolution} is not divisible by 2**(len(ch_mult)-1)={factor} "
                         f"(ch_mult={list(ch_mult)})")
    reached = [resolution // 2**i for i in range(len(ch_mult))]
    missing = [r for r in attn_resolutions if r not in reached]
    if missing:
        raise InputError(f"UNet: attn_resolutions={list(attn_resolutions)}: {missing} not reached; the levels of "
                         f"resolution={resolution}, ch_mult={list(ch_mult)} have resolutions {reached}")


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
