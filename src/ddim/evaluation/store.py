"""A cell's finished work on disk: per-image results in chunk files, so an interrupted cell resumes, and the saved
samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ddim.utils import atomic_path


# finished batches; not the ".NAME.tmp.npz" a killed process may leave half-written (see atomic_path)
CHUNK_GLOB = "[!.]*.npz"


def done_indices(folder: Path) -> set[int]:
    """Indices already written by an earlier (perhaps interrupted) run of the same cell."""
    done: set[int] = set()
    for path in folder.glob(CHUNK_GLOB):
        with np.load(path) as data:
            done.update(int(i) for i in data["indices"])
    return done


def save_chunk(folder: Path, indices: Sequence[int], **arrays: np.ndarray) -> None:
    """One batch's per-image arrays, atomically, in a file named by its first index and size."""
    with atomic_path(folder / f"{indices[0]:08d}_{len(indices)}.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, indices=np.asarray(indices, dtype=np.int64), **arrays)


def read_chunks(folder: Path, name: str, num: int) -> np.ndarray:
    """Rows of `name` ordered by image index, for indices 0..num−1, each exactly once."""
    rows: dict[int, np.ndarray] = {}
    for path in sorted(folder.glob(CHUNK_GLOB)):
        with np.load(path) as data:
            for i, row in zip(data["indices"], data[name]):
                if i < num:
                    rows[int(i)] = row
    missing = num - len(rows)
    if missing:
        raise RuntimeError(f"{folder}: {missing} of {num} results are missing after sampling")
    return np.stack([rows[i] for i in range(num)])


def write_samples(out: Path, images: np.ndarray) -> None:
    """samples.npz (N×H×W×C uint8, the layout outside FID tools read) and samples/NNNNNN.png, one per image."""
    with atomic_path(out / "samples.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, arr_0=images)
    folder = out / "samples"
    folder.mkdir(exist_ok=True)
    for i, image in enumerate(images):
        with atomic_path(folder / f"{i:06d}.png") as tmp:
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(tmp, format="PNG")


__all__ = ["done_indices", "read_chunks", "save_chunk", "write_samples"]
