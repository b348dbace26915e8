"""Helpers with no better home: atomic file writes and per-sample seeding."""

from .io import atomic_path, atomic_torch_save, atomic_write_text, exclusive_lock
from .seeding import PerSampleNoise, per_sample_generators, per_sample_latents

__all__ = ["PerSampleNoise", "atomic_path", "atomic_torch_save", "atomic_write_text", "exclusive_lock",
           "per_sample_generators", "per_sample_latents"]
