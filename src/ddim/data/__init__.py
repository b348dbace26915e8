"""Data: the data sets (digits, cifar10, celeba, folder), the Lightning data module and the pixel-range boundary."""

from .datamodule import DiffusionDataModule
from .datasets import DATASET_INFO, build_dataset, check_available, digits_split_indices
from .transforms import from_model_range, to_model_range

__all__ = [
    "DATASET_INFO", "DiffusionDataModule", "build_dataset", "check_available", "digits_split_indices",
    "from_model_range", "to_model_range",
]
