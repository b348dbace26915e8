"""The statistics a cell is scored against: the training set's, through the on-disk cache (shared by evaluate.py and
the FID-while-training callback, so either fills it for the other), or a file named by fid.reference."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch_fidelity import FeatureExtractorBase

from ddim.data import DATASET_INFO, build_dataset
from ddim.errors import InputError

from ..metrics.reference_files import read_reference
from ..metrics.statistics import FeatureStats, extract_features, reference_stats
from .plan import CellPlan

log = logging.getLogger(__name__)


def training_set_reference(dataset: dict[str, Any], extractor: FeatureExtractorBase, extractor_name: str,
                           cache_dir: str | os.PathLike | None, batch_size: int = 256) -> FeatureStats:
    """Features and statistics of the data set's training split, cached under the data set, split, resolution and
    extractor (and its weights)."""
    split = DATASET_INFO[dataset["name"]]["train_split"]
    return reference_stats(
        build_dataset(dataset["name"], dataset.get("root"), split, dataset["resolution"]), extractor, extractor_name,
        cache_dir, key={"dataset": dataset["name"], "split": split, "resolution": dataset["resolution"],
                        "extractor": extractor_name},
        batch_size=batch_size,
    )


def feature_dim(extractor: FeatureExtractorBase, shape: tuple[int, int, int]) -> int:
    """The width of the extractor's Fréchet features for images of `shape` (C, H, W), from one blank image pair."""
    return int(extract_features(extractor, torch.zeros((2, *shape), dtype=torch.uint8)).shape[1])


def cell_reference(plan: CellPlan, extractor: FeatureExtractorBase,
                   shape: tuple[int, int, int]) -> tuple[FeatureStats, str | None]:
    """The cell's reference statistics and, for fid.reference, the format its file was read as (logged in one
    line); a file of another dimension, or one without features when kid or prc are asked for, is an InputError."""
    if not plan.fid.reference:
        return training_set_reference(plan.dataset, extractor, plan.extractor, plan.fid.cache_dir,
                                      plan.eval.batch_size), None
    dim = feature_dim(extractor, shape)
    stats, found = read_reference(plan.fid.reference, dim)
    count = f", {stats.num_samples:,} samples" if stats.num_samples else ", no sample count"
    log.info("fid.reference=%s: %s, %d-d%s", plan.fid.reference, found, dim, count)
    need = [m for m in ("kid", "prc") if plan.fid.wants(m)]
    if need and not stats.has_features:
        raise InputError(f"fid.reference={plan.fid.reference} is {found}, without features: {' and '.join(need)} "
                         f"need{'s' if len(need) == 1 else ''} the reference's features; pass fid.metrics=[fid] (isc also works) or a reference "
                         f"cache of this project")
    return stats, found


__all__ = ["cell_reference", "feature_dim", "training_set_reference"]
