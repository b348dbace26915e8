"""The Lightning data module: one training set, shuffled batches of [-1, 1] images (no labels)."""

from __future__ import annotations

import os

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from .datasets import DATASET_INFO, build_dataset, check_available, download_dataset, validate


class DiffusionDataModule(L.LightningDataModule):
    """Training batches of one data set's training split; validates its arguments when built."""

    def __init__(
        self,
        name: str = "digits",
        root: str | os.PathLike | None = None,
        resolution: int = 8,
        batch_size: int = 128,
        num_workers: int = 0,
        flip: bool = False,
        download: bool = False,
        drop_last: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        validate(name, resolution)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"dataset.batch_size={batch_size!r}; expected a positive integer")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"dataset.num_workers={num_workers!r}; expected an integer >= 0")
        if flip and name == "digits":
            raise ValueError("dataset digits: flip=true mirrors digits into non-digits; use flip=false")
        self.name = name
        self.root = root
        self.resolution = resolution
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.flip = flip
        self.download = download
        self.drop_last = drop_last
        self.seed = seed
        self.train_set: Dataset | None = None

    @property
    def channels(self) -> int:
        """Channels of every image (1 for digits, 3 otherwise)."""
        return DATASET_INFO[self.name]["channels"]

    @property
    def split(self) -> str:
        """The split trained on: the same "training set" the FID reference statistics use."""
        return DATASET_INFO[self.name]["train_split"]

    def check_available(self) -> None:
        """One-line FileNotFoundError if the data set is missing and download=false; cheap, call it first."""
        check_available(self.name, self.root, self.download)

    def prepare_data(self) -> None:
        """Downloads the data set if allowed (Lightning runs this on one process per node)."""
        if self.download:
            download_dataset(self.name, self.root)

    def setup(self, stage: str | None = None) -> None:
        """Builds the training set once (flips only here: evaluation sets are never flipped)."""
        if self.train_set is not None:
            return
        train_set = build_dataset(self.name, self.root, self.split, self.resolution, flip=self.flip)
        if self.drop_last and len(train_set) < self.batch_size:  # type: ignore[arg-type]
            # an epoch of zero batches would make a step-based run spin without training
            raise ValueError(f"dataset {self.name} has {len(train_set)} training images, fewer than "  # type: ignore[arg-type]
                             f"dataset.batch_size={self.batch_size} with drop_last=true; lower the batch size")
        self.train_set = train_set

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches; a seed makes the order independent of the global RNG."""
        if self.train_set is None:
            self.setup("fit")
        generator = torch.Generator().manual_seed(self.seed) if self.seed is not None else None
        return DataLoader(
            self.train_set,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            # workers outlive epochs: with small data sets an epoch is a few batches, and restarting them dominates
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=generator,
        )


__all__ = ["DiffusionDataModule"]
