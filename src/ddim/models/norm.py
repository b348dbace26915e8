"""The U-Net's GroupNorm: the published models' settings, and a bf16 path under CUDA autocast."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORM_GROUPS = 32
NORM_EPS = 1e-6

# Device types whose autocast runs group_norm in fp32 (CUDA's policy); CPU autocast already keeps it in bf16 with
# fp32 γ and β (a mixed-dtype kernel), so the CPU path is left as it is.
AUTOCAST_FP32_GROUP_NORM = {"cuda"}


def group_norm_runs_in_bf16(device_type: str) -> bool:
    """Whether the U-Net's GroupNorm takes its own bf16 path on this device type under autocast."""
    return device_type in AUTOCAST_FP32_GROUP_NORM


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm (same parameters, same state dict) that under CUDA autocast normalises bf16/fp16 activations in
    their own dtype. Autocast runs group_norm in fp32 there, so every norm cast its input up and the next conv cast it
    back down: half of an eager bf16 forward's H100 time was such casts. The kernel accumulates the statistics in
    fp32 either way; only the output is rounded to bf16, as the following conv's input was anyway."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        if (group_norm_runs_in_bf16(device) and x.dtype in (torch.bfloat16, torch.float16)
                and torch.is_autocast_enabled(device)):
            with torch.autocast(device, enabled=False):
                return F.group_norm(x, self.num_groups, self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)
        return super().forward(x)


def group_norm(channels: int, groups: int = NORM_GROUPS, eps: float = NORM_EPS) -> GroupNorm:
    """GroupNorm with `groups` groups (32 in every published model); for small test models whose channel count
    is not a multiple of it, gcd(groups, channels) groups, the largest count that divides both."""
    return GroupNorm(math.gcd(groups, channels), channels, eps=eps, affine=True)
