"""Image grids: the paper's Figure 5 (same x_T, different S) and slerp interpolations, as plain tensor functions,
and one atomic PNG writer."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from ddim.diffusion import slerp
from ddim.utils import atomic_path

from .pixels import to_uint8


def upscale_nearest(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Each pixel becomes a factor×factor block: 8×8 digits stay crisp instead of blurring."""
    if factor < 1:
        raise ValueError(f"upscale={factor}; expected an integer >= 1")
    if factor == 1:
        return images
    return images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def save_image_grid(
    images: torch.Tensor, path: str | os.PathLike, nrow: int = 8, upscale: int = 1, padding: int = 2
) -> Path:
    """Writes a [B, C, H, W] batch in [-1, 1] as one PNG grid, `nrow` images per row, atomically."""
    if images.dim() != 4:
        raise ValueError(f"expected a [B, C, H, W] batch, got shape {tuple(images.shape)}")
    pixels = upscale_nearest(to_uint8(images.detach().cpu()), upscale)
    grid = make_grid(pixels, nrow=nrow, padding=padding * upscale)  # padding scales with the pixels it separates
    with atomic_path(path) as tmp:
        # uint8/255 → save_image's ×255 + 0.5 round trip is exact, so the PNG holds to_uint8's pixels
        save_image(grid.float() / 255, tmp, format="png")
    return Path(path)


def consistency_grid(rows_of_images: Sequence[Sequence[torch.Tensor] | torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Figure 5's layout: row i holds x_T number i decoded with each S (one column per S); returns the rows
    concatenated row-major as [rows·columns, C, H, W], to save with nrow = number of columns."""
    rows = [row if torch.is_tensor(row) else torch.stack(list(row)) for row in rows_of_images]
    if not rows:
        raise ValueError("consistency_grid needs at least one row")
    if any(row.shape != rows[0].shape for row in rows):
        shapes = [tuple(r.shape) for r in rows]
        raise ValueError(f"every row needs the same number of images of the same shape; got {shapes}")
    return torch.cat(rows)


def consistency_grid_from_columns(columns: Sequence[torch.Tensor]) -> torch.Tensor:
    """The same layout from one [num_x_T, C, H, W] batch per S (how a sampler produces them)."""
    return consistency_grid(list(torch.stack(list(columns), dim=1)))


def interpolation_grid(
    z0: torch.Tensor, z1: torch.Tensor, num_points: int = 9,
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """One row per pair (z0[i], z1[i]), `num_points` slerps from α = 0 to 1 along it (Section 5.3), row-major as
    [pairs·num_points, ...]; passed through `decode` (e.g. a DDIM sampler) when given."""
    if z0.shape != z1.shape:
        raise ValueError(f"endpoints differ in shape: {tuple(z0.shape)} vs {tuple(z1.shape)}")
    if num_points < 2:
        raise ValueError(f"num_points={num_points}; expected at least 2 (the endpoints)")
    alphas = torch.linspace(0, 1, num_points)
    latents = torch.stack([slerp(z0, z1, float(a)) for a in alphas], dim=1).flatten(0, 1)
    return decode(latents) if decode is not None else latents


__all__ = [
    "consistency_grid", "consistency_grid_from_columns", "interpolation_grid", "save_image_grid", "upscale_nearest",
]
