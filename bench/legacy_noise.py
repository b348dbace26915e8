"""The per-sample noise that the counter-based generator replaced, kept only so benchmarks can show before/after:
one CPU generator per image (seeded through numpy's SeedSequence), x_T and step noise drawn on the CPU by a Python
loop over images, a block of steps at a time, and copied to the device."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def per_sample_generators(seed: int, indices: Sequence[int]) -> list[torch.Generator]:
    return [
        torch.Generator().manual_seed(int(np.random.SeedSequence([seed, int(i)]).generate_state(1, np.uint64)[0] >> 1))
        for i in indices
    ]


def per_sample_latents(generators: Sequence[torch.Generator], shape: Sequence[int],
                       device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators]).to(device)


class PerSampleNoise:
    def __init__(self, generators: Sequence[torch.Generator], image_numel: int) -> None:
        self.generators = list(generators)
        self.block = max(1, min(32, 2**20 // image_numel))  # at most 4 MB of float32 per image
        self._buffer: torch.Tensor | None = None
        self._next = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._buffer is None or self._next == self.block:
            draws = [torch.randn((self.block, *x.shape[1:]), generator=g) for g in self.generators]
            self._buffer = torch.stack(draws, dim=1).to(x.device, x.dtype)  # [block, B, ...]
            self._next = 0
        noise = self._buffer[self._next]
        self._next += 1
        return noise
