"""Reference statistics in other tools' .npz files, read (fid.reference=PATH) and written (export_reference), so a
cell can be scored against published statistics and ours can be used by pytorch-fid or EDM.

Formats read, told apart by their keys:
- this project's reference cache: features, mu, sigma, format (the only one with features: KID and precision/recall);
- a guided-diffusion reference batch (evaluations/README of openai/guided-diffusion): arr_0 (the images, N × H × W × 3
  uint8; only its length is read), mu, sigma (pool_3 of TF Inception), mu_s, sigma_s (spatial; not used);
- pytorch-fid's `--save-stats` and EDM's fid.py ref files: mu, sigma (no sample count).
What is written: mu and sigma in float64, pytorch-fid's and EDM's layout."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ddim.errors import InputError, MissingInputError
from ddim.utils import atomic_path

from .statistics import STATS_FORMAT, FeatureStats

OURS = "this project's reference cache (features, mu, sigma)"
GUIDED = "a guided-diffusion reference batch (arr_0, mu, sigma; its mu and sigma are used)"
MU_SIGMA = "pytorch-fid / EDM statistics (mu, sigma)"


def _member_rows(path: Path, name: str) -> int:
    """The first dimension of array `name` in an .npz, from its header only (a reference batch's images are GBs)."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape = read_header(f)[0]
    return int(shape[0]) if shape else 0


def read_reference(path: str | os.PathLike, dim: int | None = None, what: str = "fid.reference") -> tuple[FeatureStats, str]:
    """The statistics in `path` and which format they came in; a file that is no .npz, lacks mu or sigma, has
    shapes that do not fit, non-finite values, or a dimension other than `dim` is one InputError line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingInputError(f"{what}={path}: no such file; expected an .npz with mu and sigma")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if not {"mu", "sigma"} <= keys:
                raise InputError(f"{what}={path}: holds {', '.join(sorted(keys)) or 'no arrays'}; expected mu and "
                                 f"sigma (pytorch-fid, EDM, guided-diffusion or this project's reference .npz)")
            mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
            ours = {"features", "format"} <= keys and int(data["format"]) == STATS_FORMAT
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(f"{what}={path}: not a readable .npz ({type(error).__name__}: {error})") from None
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise InputError(f"{what}={path}: mu has shape {mu.shape} and sigma {sigma.shape}; expected (D,) and (D, D)")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise InputError(f"{what}={path}: mu or sigma holds NaN or inf")
    if dim is not None and len(mu) != dim:
        raise InputError(f"{what}={path}: statistics of {len(mu)}-d features; this cell's extractor gives {dim}-d "
                         f"(Inception pool3: 2048, fd_digits: 64, fd_digits_conv: 1024)")
    if ours:
        stats = FeatureStats.load(path)
        fmt = OURS
    elif "arr_0" in keys:
        stats, fmt = FeatureStats.from_moments(mu, sigma, _member_rows(path, "arr_0")), GUIDED
    else:
        stats, fmt = FeatureStats.from_moments(mu, sigma), MU_SIGMA
    stats.path = path
    return stats, fmt


def export_reference(stats: FeatureStats, out: str | os.PathLike) -> Path:
    """mu and sigma (float64) to `out`, atomically, as pytorch-fid's and EDM's readers expect."""
    out = Path(out).expanduser()
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a str path
            np.savez(f, mu=np.asarray(stats.mu, dtype=np.float64), sigma=np.asarray(stats.sigma, dtype=np.float64))
    return out


__all__ = ["GUIDED", "MU_SIGMA", "OURS", "export_reference", "read_reference"]
