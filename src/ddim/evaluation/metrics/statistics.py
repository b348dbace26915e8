"""Fréchet-distance plumbing: streamed features, their statistics, cached reference statistics, and thin wrappers
over torch-fidelity's own FID and KID formulas (so the numbers are the library's)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch_fidelity import FeatureExtractorBase
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
from torch_fidelity.metric_kid import kernel_mmd

from ddim.sampling.pixels import to_uint8
from ddim.utils import atomic_path

from .features import default_cache_dir, input_channels, match_channels, weights_digest

log = logging.getLogger(__name__)
STATS_FORMAT = 1  # bump if the .npz layout changes: it is part of every cache key
UPDATE_ROWS = 4096  # rows per float64 block in FeatureStats.update: 64 MB at D = 2,048


class FeatureStats:
    """The mean and unbiased covariance of features seen batch by batch, as running float64 sums about a shift (the
    first batch's mean, so the one-pass formula loses no precision to a large mean): memory is O(D²) whatever N (a
    50,000 × 2,048 cell kept whole in float64 is 0.8 GB; EDM's fid.py keeps sums too). `keep_features` also keeps the
    features themselves, float32 where that loses nothing, for KID and the reference cache."""

    def __init__(self, keep_features: bool = False) -> None:
        self.num_samples = 0
        self._shift: np.ndarray | None = None
        self._sum: np.ndarray | None = None  # Σ (x − shift)
        self._outer: np.ndarray | None = None  # Σ (x − shift)(x − shift)ᵀ
        self._kept: list[np.ndarray] | None = [] if keep_features else None
        self._mu_sigma: tuple[np.ndarray, np.ndarray] | None = None
        self.path: Path | None = None  # the cache file reference_stats read these from or saved them to

    @classmethod
    def from_features(cls, features: np.ndarray | torch.Tensor, keep_features: bool = True) -> FeatureStats:
        stats = cls(keep_features)
        stats.update(features)
        return stats

    @classmethod
    def from_moments(cls, mu: np.ndarray, sigma: np.ndarray, num_samples: int | None = None) -> FeatureStats:
        """Statistics known only by their mean and covariance (another tool's reference file): no features, and
        `num_samples` None where the file does not say."""
        stats = cls()
        mu, sigma = np.asarray(mu, dtype=np.float64), np.atleast_2d(np.asarray(sigma, dtype=np.float64))
        stats.num_samples, stats._shift, stats._mu_sigma = num_samples, mu, (mu, sigma)  # type: ignore[assignment]
        return stats

    @property
    def has_features(self) -> bool:
        return bool(self._kept)

    @property
    def dim(self) -> int | None:
        return None if self._shift is None else len(self._shift)

    def update(self, features: np.ndarray | torch.Tensor) -> None:
        """Adds a [B, D] batch of features."""
        if torch.is_tensor(features):
            features = features.detach().cpu().numpy()
        features = np.asarray(features)
        if features.ndim != 2:
            raise ValueError(f"features must be [batch, dim], got shape {features.shape}")
        if self.dim is not None and features.shape[1] != self.dim:
            raise ValueError(f"feature dim {features.shape[1]} differs from the earlier {self.dim}")
        if not len(features):
            return
        if self._shift is None:
            self._shift = features[:UPDATE_ROWS].astype(np.float64).mean(0)
            self._sum = np.zeros_like(self._shift)
            self._outer = np.zeros((len(self._shift), len(self._shift)))
        for start in range(0, len(features), UPDATE_ROWS):  # float64 temporaries of a block, not of the whole batch
            centered = features[start : start + UPDATE_ROWS].astype(np.float64) - self._shift
            self._sum += centered.sum(0)
            self._outer += centered.T @ centered
        self.num_samples += len(features)
        if self._kept is not None:
            if features.dtype != np.float32:  # extractors emit float32; keep float64 only where float32 would round
                as32 = features.astype(np.float32)
                features = as32 if np.array_equal(as32, features) else features.astype(np.float64)
            self._kept.append(features)
        self._mu_sigma = None  # statistics computed so far are stale now

    @property
    def features(self) -> np.ndarray:
        """All features, [num_samples, dim] (only with keep_features)."""
        if self._kept is None:
            raise ValueError("these statistics were accumulated without keeping the features (keep_features=False)")
        if not self._kept:
            raise ValueError("no features accumulated")
        if len(self._kept) > 1:
            self._kept = [np.concatenate(self._kept)]
        return self._kept[0]

    def _statistics(self) -> tuple[np.ndarray, np.ndarray]:
        if self._mu_sigma is None:
            n = self.num_samples
            if n < 2:
                raise ValueError(f"{n} sample(s): a covariance needs at least 2")
            mean_offset = self._sum / n
            sigma = (self._outer - n * np.outer(mean_offset, mean_offset)) / (n - 1)
            self._mu_sigma = (self._shift + mean_offset, (sigma + sigma.T) / 2)  # symmetric to the last bit
        return self._mu_sigma

    @property
    def mu(self) -> np.ndarray:
        return self._statistics()[0]

    @property
    def sigma(self) -> np.ndarray:
        return self._statistics()[1]

    def save(self, path: str | os.PathLike) -> Path:
        """Writes features, mu and sigma to an .npz atomically."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a str path
                np.savez(f, features=self.features, mu=self.mu, sigma=self.sigma, format=np.int64(STATS_FORMAT))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        """The saved statistics as sums about their own mean (Σ = 0, Σxxᵀ = (n − 1)·sigma), so loading a 50,000-image
        reference computes nothing and later updates still add up."""
        with np.load(path) as data:
            features, mu = data["features"], data["mu"].astype(np.float64)
            sigma = np.atleast_2d(data["sigma"].astype(np.float64))
        stats = cls(keep_features=True)
        stats.num_samples, stats._kept = len(features), [features]
        stats._shift, stats._sum, stats._outer = mu, np.zeros_like(mu), sigma * (len(features) - 1)
        stats._mu_sigma = (mu, sigma)
        return stats


def extract_features(extractor: FeatureExtractorBase, images_uint8: torch.Tensor) -> torch.Tensor:
    """The extractor's first requested feature layer for a uint8 [B, C, H, W] batch, on the extractor's device."""
    return extract_layers(extractor, images_uint8)[0]


def extract_layers(extractor: FeatureExtractorBase, images_uint8: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every requested layer (the Fréchet features, then the logits where asked for) for a uint8 batch."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"extract_features takes uint8 images (see to_uint8), got {images_uint8.dtype}")
    device = next(extractor.parameters()).device
    images = match_channels(images_uint8, input_channels(extractor)).to(device)
    with torch.inference_mode():
        return tuple(extractor(images))


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), by torch-fidelity's fid_statistics_to_metric."""
    as64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731  the library asserts equal dtypes
    stat1 = {"mu": as64(mu1), "sigma": np.atleast_2d(as64(sigma1))}
    stat2 = {"mu": as64(mu2), "sigma": np.atleast_2d(as64(sigma2))}
    return float(fid_statistics_to_metric(stat1, stat2, verbose=False)[KEY_METRIC_FID])


def kid_from_features(
    f1: np.ndarray | torch.Tensor, f2: np.ndarray | torch.Tensor, subsets: int = 100, subset_size: int = 1000,
    seed: int = 2020,
) -> tuple[float, float]:
    """KID mean and std over `subsets` random subsets, subset_size capped at the smaller set: torch-fidelity's
    kid_features_to_metric (its subset draws, its cubic kernel_mmd, in float64), with only each subset made float64
    instead of both whole sets (1.6 GB at 2 × 50,000 × 2,048)."""
    a, b = (f.detach().cpu().numpy() if torch.is_tensor(f) else np.asarray(f) for f in (f1, f2))
    size = min(int(subset_size), len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples; got {len(a)} and {len(b)} samples")
    rng = np.random.RandomState(seed)
    mmds = np.zeros(int(subsets))
    for i in range(int(subsets)):  # the library's loop: the same draws in the same order
        x = a[rng.choice(len(a), size, replace=False)].astype(np.float64)
        y = b[rng.choice(len(b), size, replace=False)].astype(np.float64)
        mmds[i] = kernel_mmd(x, y)  # the library's defaults: cubic polynomial kernel, unbiased MMD²
    return float(np.mean(mmds)), float(np.std(mmds))


def extractor_tag(extractor: FeatureExtractorBase) -> str:
    """What identifies the extractor's weights in a cache key: its own `cache_tag` (the digits classifier's), else its
    name and a hash of its weights, so a wrong weights file that happens to load never reads (or poisons) the
    statistics of the right one. Computed only when a cache key is asked for (≈0.3 s for Inception)."""
    tag = getattr(extractor, "cache_tag", None)
    return str(tag) if tag else f"{extractor.get_name()}-{weights_digest(extractor)}"


def stats_cache_path(cache_dir: str | os.PathLike | None, key: Mapping[str, Any]) -> Path:
    """<cache>/reference_stats/<readable key values>-<hash of the whole key>.npz"""
    canonical = json.dumps(dict(key), sort_keys=True, default=str)
    digest = hashlib.sha1(canonical.encode()).hexdigest()[:10]
    readable = "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", f"n{v}" if k == "num_samples" else str(v))
                        for k, v in key.items() if k not in ("tag", "format"))
    return Path(cache_dir or default_cache_dir()) / "reference_stats" / f"{readable}_{digest}.npz"


def _first_image(item: Any) -> torch.Tensor:
    return item[0] if isinstance(item, (tuple, list)) else item


def _collate_images(items: list[Any]) -> torch.Tensor:
    """Stacks the images of a batch, dropping labels when the data set yields (image, label)."""
    return torch.stack([_first_image(item) for item in items])


def reference_stats(
    dataset: Dataset,
    extractor: FeatureExtractorBase,
    extractor_name: str,
    cache_dir: str | os.PathLike | None,
    key: Mapping[str, Any],
    batch_size: int = 256,
    num_workers: int = 0,
) -> FeatureStats:
    """Features of every image of `dataset` ([-1, 1] CHW floats, or (image, label)), cached on disk under `key`
    (plus extractor, sample count and weights tag); a cache hit never indexes the data set."""
    full_key = dict(key)
    full_key.setdefault("extractor", extractor_name)
    full_key.setdefault("num_samples", len(dataset))
    full_key["tag"] = extractor_tag(extractor)
    full_key["format"] = STATS_FORMAT
    path = stats_cache_path(cache_dir, full_key)
    if path.is_file():
        stats = FeatureStats.load(path)
        if stats.num_samples == full_key["num_samples"]:
            log.info("reference statistics from cache: %s", path)
            stats.path = path
            return stats
        log.warning("%s holds %d samples, expected %d: recomputing", path, stats.num_samples, full_key["num_samples"])
    start = time.perf_counter()
    stats = FeatureStats(keep_features=True)  # the cache holds the features too: KID draws from them
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate_images)
    for images in loader:
        stats.update(extract_features(extractor, to_uint8(images)))
    if stats.num_samples != full_key["num_samples"]:
        raise RuntimeError(f"data set yielded {stats.num_samples} images; its key says {full_key['num_samples']}")
    stats.path = stats.save(path)
    log.info("reference statistics of %d images in %.1f s, cached at %s", stats.num_samples,
             time.perf_counter() - start, path)
    return stats


__all__ = [
    "FeatureStats", "extract_features", "extract_layers", "extractor_tag", "fid_from_stats", "kid_from_features", "reference_stats",
    "stats_cache_path", "to_uint8",
]
