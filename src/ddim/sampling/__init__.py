"""Batch-independent generation that training's sample grid and every evaluation share: sampler settings, the
generate/reconstruct loop, the network's speed options, the pixel boundary and image grids. Below training and
evaluation; imports only the core, the models and utils."""

from .generate import generate, reconstruct
from .grids import consistency_grid, consistency_grid_from_columns, interpolation_grid, save_image_grid, upscale_nearest
from .network_samples import network_samples
from .pixels import to_uint8
from .settings import SamplerSettings
from .speed import autocast_context, fast_model

__all__ = [
    "SamplerSettings", "autocast_context", "consistency_grid", "consistency_grid_from_columns", "fast_model",
    "generate", "interpolation_grid", "network_samples", "reconstruct", "save_image_grid", "to_uint8", "upscale_nearest",
]
