"""Helpers with no better home: atomic file writes and per-sample, counter-based noise."""

from .io import atomic_path, atomic_torch_save, atomic_write_text, exclusive_lock, lock_holder
from .noise import NOISE_VERSION, CounterNoise, counter_normals, counter_normals_streams, philox4x32

__all__ = ["NOISE_VERSION", "CounterNoise", "atomic_path", "atomic_torch_save", "atomic_write_text", "counter_normals",
           "counter_normals_streams", "exclusive_lock", "lock_holder", "philox4x32"]
