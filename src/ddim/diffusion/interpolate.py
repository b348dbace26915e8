"""Spherical interpolation of latents x_T (Section 5.3 and Figure 6)."""

from __future__ import annotations

import torch


def slerp(z0: torch.Tensor, z1: torch.Tensor, alpha: float | torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """z_α = sin((1 − α)θ)/sin θ · z0 + sin(αθ)/sin θ · z1, θ the angle between z0 and z1 (per batch element).
    Nearly parallel inputs (sin θ < eps) fall back to linear interpolation, the limit of the same formula."""
    flat0, flat1 = z0.flatten(1).double(), z1.flatten(1).double()
    cos = (flat0 * flat1).sum(1) / (flat0.norm(dim=1) * flat1.norm(dim=1)).clamp_min(eps)
    theta = torch.arccos(cos.clamp(-1, 1))
    alpha = torch.as_tensor(alpha, dtype=torch.float64, device=z0.device)
    sin_theta = torch.sin(theta)
    parallel = sin_theta < eps
    safe = torch.where(parallel, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(parallel, 1 - alpha, torch.sin((1 - alpha) * theta) / safe)
    w1 = torch.where(parallel, alpha.expand_as(theta), torch.sin(alpha * theta) / safe)
    shape = (-1, *([1] * (z0.dim() - 1)))
    return (w0.reshape(shape) * z0.double() + w1.reshape(shape) * z1.double()).to(z0.dtype)
