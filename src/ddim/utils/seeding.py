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
