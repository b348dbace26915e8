"""Per-sample randomness: image i's x_T and step noise depend only on (seed, i), never on batching or rank."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def per_sample_generators(seed: int, indices: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image, seeded from (seed, index) through numpy's SeedSequence (no overlaps)."""
    return [
        torch.Generator().manual_seed(int(np.random.SeedSequence([seed, int(i)]).generate_state(1, np.uint64)[0] >> 1))
        for i in indices
    ]


def per_sample_latents(
    generators: Sequence[torch.Generator], shape: Sequence[int], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """x_T ~ N(0, I) of `shape` (without the batch dimension) for each generator, drawn first from it."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators]).to(device)


class PerSampleNoise:
    """The sampler's step noise, image i's drawn from its own generator `block` steps at a time, so the Python
    loop over images runs once a block instead of once a step. `block` depends only on the image size, never on
    the batch, so image i's noise is the same in any batch."""

    def __init__(self, generators: Sequence[torch.Generator], image_numel: int) -> None:
        self.generators = list(generators)
        self.block = max(1, min(32, 2**20 // image_numel))  # at most 4 MB of float32 per image
        self._buffer: torch.Tensor | None = None
        self._next = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.generators) != x.shape[0]:
            raise ValueError(f"got {len(self.generators)} generators for a batch of {x.shape[0]}")
        if self._buffer is None or self._next == self.block:
            draws = [torch.randn((self.block, *x.shape[1:]), generator=g) for g in self.generators]
            self._buffer = torch.stack(draws, dim=1).to(x.device, x.dtype)  # [block, B, ...]
            self._next = 0
        noise = self._buffer[self._next]
        self._next += 1
        return noise
