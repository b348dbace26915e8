"""Images from a network of this project (one with a `.config`), the way training's callbacks draw them: in eval
mode (its mode restored after), as the ε-model the samplers take, in batches, image i from (seed, i) alone."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ddim.diffusion import NoiseSchedule, as_eps_model

from .generate import generate
from .settings import SamplerSettings


def network_samples(model: torch.nn.Module, schedule: NoiseSchedule, settings: SamplerSettings, indices: Sequence[int],
                    seed: int, device: torch.device | str, batch_size: int | None = None) -> torch.Tensor:
    """Images in [−1, 1] for `indices`, `batch_size` at a time (None: all at once)."""
    config = model.config
    shape = (config["in_channels"], config["resolution"], config["resolution"])
    indices = list(indices)
    size = batch_size or max(1, len(indices))
    was_training = model.training
    model.eval()
    try:
        network = as_eps_model(model, schedule, config.get("prediction", "eps"))  # x0 and v networks converted
        return torch.cat([generate(network, schedule, settings, indices[i : i + size], seed, shape, device)
                          for i in range(0, len(indices), size)])
    finally:
        model.train(was_training)


__all__ = ["network_samples"]
