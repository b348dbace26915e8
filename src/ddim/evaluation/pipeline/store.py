"""A cell's finished work on disk: per-image results in chunk files, so an interrupted cell resumes, the saved
samples, and the bootstrap replicates of its metric (bootstrap.json)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ddim.utils import atomic_path, atomic_write_text

from ..metrics.bootstrap import RESAMPLE_VERSION


# finished batches; not the ".NAME.tmp.npz" a killed process may leave half-written (see atomic_path)
CHUNK_GLOB = "[!.]*.npz"
REPLICATES_FILE = "bootstrap.json"


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


def iter_chunks(folder: Path, name: str, num: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(indices, rows of `name`) file by file, for indices 0..num−1, each index once; at the end a RuntimeError if
    any is missing. One chunk in memory at a time: running statistics never hold the whole cell."""
    seen = np.zeros(num, dtype=bool)
    for path in sorted(folder.glob(CHUNK_GLOB)):
        with np.load(path) as data:
            indices = data["indices"]
            keep = indices < num
            keep[keep] = ~seen[indices[keep]]  # an index that another file already gave is the same image
            if keep.any():
                seen[indices[keep]] = True
                yield indices[keep], data[name][keep]
    missing = num - int(seen.sum())
    if missing:
        raise RuntimeError(f"{folder}: {missing} of {num} results are missing after sampling")


def read_chunks(folder: Path, name: str, num: int) -> np.ndarray:
    """Rows of `name` ordered by image index, for indices 0..num−1, each exactly once, in one array of the stored
    dtype (no per-row copies: a 50,000 × 2,048 float32 cell is 0.4 GB, once)."""
    out: np.ndarray | None = None
    for indices, rows in iter_chunks(folder, name, num):
        if out is None:
            out = np.empty((num, *rows.shape[1:]), dtype=rows.dtype)
        out[indices] = rows
    assert out is not None or num == 0
    return out if out is not None else np.empty((0,))


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


def write_replicates(out: Path, seed: int, num: int, values: Sequence[float]) -> Path:
    """The metric of bootstrap resamples 0..B−1 of a cell of `seed` and `num` images, for pairing with other cells."""
    record = {"format": RESAMPLE_VERSION, "seed": int(seed), "num_samples": int(num),
              "values": [float(v) for v in values]}
    return atomic_write_text(Path(out) / REPLICATES_FILE, json.dumps(record))


def read_replicates(out: Path, seed: int, num: int, resamples: int | None = None) -> np.ndarray | None:
    """The first `resamples` stored replicates (all with None) if the file holds that many for this seed and N,
    else None."""
    path = Path(out) / REPLICATES_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (record.get("format"), record.get("seed"), record.get("num_samples")) != (RESAMPLE_VERSION, seed, num):
        return None
    values = np.asarray(record.get("values") or [], dtype=np.float64)
    if resamples is not None and len(values) < resamples:
        return None
    return values[:resamples] if resamples is not None else values


__all__ = ["REPLICATES_FILE", "done_indices", "iter_chunks", "read_chunks", "read_replicates", "save_chunk",
           "write_replicates", "write_samples"]
