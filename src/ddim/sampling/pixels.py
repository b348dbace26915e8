"""The one named boundary between model space ([-1, 1] floats) and pixels (uint8 0..255)."""

from __future__ import annotations

import torch


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float → uint8 0..255, rounded as torchvision.utils.save_image does (×255, +0.5, truncate): 0 → 128,
    and streamed features equal those of the same images saved as PNG. Out-of-range values clamp; NaN raises."""
    if images.dtype == torch.uint8:
        return images
    if torch.isnan(images).any():
        raise ValueError(f"to_uint8: {int(torch.isnan(images).flatten(1).any(1).sum())} image(s) contain NaN")
    unit = (images.float() + 1) / 2
    return unit.mul(255).add(0.5).clamp(0, 255).to(torch.uint8)


__all__ = ["to_uint8"]
