"""Evaluation: feature extractors, Fréchet-distance statistics, tables and figures.

Only the plain-library modules are imported here; the sweep cell, task and Hydra callback (plan.py, store.py, cell.py,
task.py, sweep.py) pull in Lightning, Hydra and the data modules, so they are imported by their own module path."""

from .features import (
    DIGITS,
    DIGITS_CONV,
    INCEPTION,
    DigitsClassifier,
    FeatureExtractorDigits,
    FeatureExtractorDigitsConv,
    build_feature_extractor,
    default_cache_dir,
    digits_accuracy,
    digits_arrays,
    load_digits_classifier,
    metric_name,
    train_digits_classifier,
)
from .figures import (
    consistency_grid,
    consistency_grid_from_columns,
    interpolation_grid,
    save_image_grid,
    upscale_nearest,
)
from .pixels import to_uint8
from .stats import FeatureStats, extract_features, fid_from_stats, kid_from_features, reference_stats
from .results import load_cells, pivot_table
from .tables import format_table, write_results

__all__ = [
    "DIGITS", "DIGITS_CONV", "INCEPTION", "DigitsClassifier", "FeatureExtractorDigits", "FeatureExtractorDigitsConv",
    "FeatureStats", "build_feature_extractor",
    "consistency_grid", "consistency_grid_from_columns", "default_cache_dir", "digits_accuracy", "digits_arrays",
    "extract_features", "fid_from_stats", "format_table", "interpolation_grid",
    "kid_from_features", "load_cells", "load_digits_classifier", "metric_name", "pivot_table", "reference_stats",
    "save_image_grid", "to_uint8", "train_digits_classifier", "upscale_nearest", "write_results",
]
