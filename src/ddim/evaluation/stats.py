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
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch_fidelity import FeatureExtractorBase
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

from ddim.utils import atomic_path

from .features import default_cache_dir, input_channels, match_channels
from .pixels import to_uint8

log = logging.getLogger(__name__)
STATS_FORMAT = 1  # bump if the .npz layout changes: it is part of every cache key


class FeatureStats:
    """Features accumulated batch by batch (kept whole: KID needs them), with their mean and unbiased covariance."""

    def __init__(self) -> None:
        self._batches: list[np.ndarray] = []

    @classmethod
    def from_features(cls, features: np.ndarray | torch.Tensor) -> FeatureStats:
        stats = cls()
        stats.update(features)
        return stats

    def update(self, features: np.ndarray | torch.Tensor) -> None:
        """Appends a [B, D] batch of features (stored as float64)."""
        if torch.is_tensor(features):
            features = features.detach().cpu().numpy()
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2:
            raise ValueError(f"features must be [batch, dim], got shape {features.shape}")
        if self._batches and features.shape[1] != self._batches[0].shape[1]:
            raise ValueError(f"feature dim {features.shape[1]} differs from the earlier {self._batches[0].shape[1]}")
        self._batches.append(features)
        self.__dict__.pop("features", None)  # statistics computed so far are stale now
        self.__dict__.pop("_mu_sigma", None)

    @cached_property
    def features(self) -> np.ndarray:
        """All features, [num_samples, dim] float64."""
        if not self._batches:
            raise ValueError("no features accumulated")
        if len(self._batches) > 1:
            self._batches = [np.concatenate(self._batches)]
        return self._batches[0]

    @property
    def num_samples(self) -> int:
        return sum(len(b) for b in self._batches)

    @cached_property
    def _mu_sigma(self) -> tuple[np.ndarray, np.ndarray]:
        if self.num_samples < 2:
            raise ValueError(f"{self.num_samples} sample(s): a covariance needs at least 2")
        # torch-fidelity's own statistics (np.mean, np.cov with N − 1), so our FID equals the library's
        stats = fid_features_to_statistics(torch.from_numpy(self.features))
        return np.asarray(stats["mu"], dtype=np.float64), np.atleast_2d(np.asarray(stats["sigma"], dtype=np.float64))

    @property
    def mu(self) -> np.ndarray:
        return self._mu_sigma[0]

    @property
    def sigma(self) -> np.ndarray:
        return self._mu_sigma[1]

    def save(self, path: str | os.PathLike) -> Path:
        """Writes features, mu and sigma to an .npz atomically; features go as float32 when that loses nothing."""
        features = self.features
        as32 = features.astype(np.float32)
        if np.array_equal(as32, features):  # extractors emit float32, so this is the usual, half-size case
            features = as32
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a str path
                np.savez(f, features=features, mu=self.mu, sigma=self.sigma, format=np.int64(STATS_FORMAT))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        with np.load(path) as data:
            stats = cls.from_features(data["features"])
            stats.__dict__["_mu_sigma"] = (data["mu"].astype(np.float64), data["sigma"].astype(np.float64))
        return stats


def extract_features(extractor: FeatureExtractorBase, images_uint8: torch.Tensor) -> torch.Tensor:
    """The extractor's first requested feature layer for a uint8 [B, C, H, W] batch, on the extractor's device."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"extract_features takes uint8 images (see to_uint8), got {images_uint8.dtype}")
    device = next(extractor.parameters()).device
    images = match_channels(images_uint8, input_channels(extractor)).to(device)
    with torch.inference_mode():
        return extractor(images)[0]


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
    """KID mean and std over `subsets` random subsets (torch-fidelity's kid_features_to_metric, cubic kernel);
    subset_size is capped at the smaller set."""
    t1, t2 = (torch.as_tensor(np.asarray(f, dtype=np.float64)) for f in (f1, f2))
    size = min(int(subset_size), len(t1), len(t2))
    if size < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples; got {len(t1)} and {len(t2)} samples")
    out = kid_features_to_metric(t1, t2, kid_subsets=int(subsets), kid_subset_size=size, rng_seed=seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


def extractor_tag(extractor: FeatureExtractorBase) -> str:
    """What identifies the extractor's weights in a cache key (the digits classifier's carries a weights hash)."""
    return str(getattr(extractor, "cache_tag", extractor.get_name()))


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
            return stats
        log.warning("%s holds %d samples, expected %d: recomputing", path, stats.num_samples, full_key["num_samples"])
    start = time.perf_counter()
    stats = FeatureStats()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate_images)
    for images in loader:
        stats.update(extract_features(extractor, to_uint8(images)))
    if stats.num_samples != full_key["num_samples"]:
        raise RuntimeError(f"data set yielded {stats.num_samples} images; its key says {full_key['num_samples']}")
    stats.save(path)
    log.info("reference statistics of %d images in %.1f s, cached at %s", stats.num_samples,
             time.perf_counter() - start, path)
    return stats


__all__ = [
    "FeatureStats", "extract_features", "extractor_tag", "fid_from_stats", "kid_from_features", "reference_stats",
    "stats_cache_path", "to_uint8",
]
