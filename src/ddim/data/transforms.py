"""Pixel-range boundary and image transforms: every data set ends in the model range [-1, 1] through here."""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

# The official DDIM CelebA crop: a 128x128 box centred at (x=89, y=121) of the 178x218 aligned image.
CELEBA_CROP_TOP = 57
CELEBA_CROP_LEFT = 25
CELEBA_CROP_SIZE = 128


def to_model_range(x01: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] → the model range [-1, 1] (x·2 − 1)."""
    return x01 * 2 - 1


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """Model-range images → [0, 1] ((x + 1) / 2), clamped because samples overshoot [-1, 1]."""
    return ((x + 1) / 2).clamp(0, 1)


def celeba_crop(image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
    """The DDIM paper's CelebA crop: the 128x128 box at top 57, left 25 of the 178x218 aligned image."""
    return TF.crop(image, CELEBA_CROP_TOP, CELEBA_CROP_LEFT, CELEBA_CROP_SIZE, CELEBA_CROP_SIZE)


def center_crop_square(image: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
    """The largest centred square of an image, so resizing never changes its aspect ratio."""
    height, width = TF.get_size(image)
    return TF.center_crop(image, [min(height, width)])


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode (L, P, RGBA, ...) → RGB; a named function so transforms pickle into spawned workers."""
    return image if image.mode == "RGB" else image.convert("RGB")


def pil_to_model_range(image: Image.Image) -> torch.Tensor:
    """A PIL image (uint8) → float CHW tensor in [-1, 1]."""
    return to_model_range(TF.to_dtype(TF.to_image(image), torch.float32, scale=True))


def image_transform(resolution: int, crop: Callable | None = None, flip: bool = False) -> Callable:
    """PIL image → optional crop → RGB → resize to resolution² → [-1, 1] tensor → optional random horizontal flip."""
    steps: list[Callable] = []
    if crop is not None:
        steps.append(crop)
    steps.append(to_rgb)
    # antialias: PIL-style area-aware downsampling, as the official DDIM / DDPM pipelines resize with PIL
    steps.append(v2.Resize((resolution, resolution), interpolation=v2.InterpolationMode.BILINEAR, antialias=True))
    steps.append(pil_to_model_range)
    if flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    return v2.Compose(steps)


__all__ = [
    "celeba_crop", "center_crop_square", "from_model_range", "image_transform", "pil_to_model_range", "to_model_range",
    "to_rgb",
]
