"""The Lightning data module: one training set, shuffled batches of [-1, 1] images (no labels)."""

from __future__ import annotations

import logging
import os

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from ddim.errors import InputError

from .datasets import DATASET_INFO, build_dataset, check_available, download_dataset, validate
from .randomness import STREAM_FLIP, KeyedShardSampler, keyed_generator

log = logging.getLogger(__name__)


class ResumableLoader(DataLoader):
    """A DataLoader that tells Lightning it resumes mid-epoch, which its KeyedShardSampler does (from the global
    step; nothing else to restore), so Lightning does not warn that it cannot. Its state says what the order was
    keyed by, to name a resume that changes it."""

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.sampler.seed, "num_replicas": self.sampler.num_replicas}  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, int]) -> None:
        now = self.state_dict()
        if state and state != now:
            log.warning("resume: the data order was keyed by %s and is now keyed by %s, so the batches from here differ "
                        "from the uninterrupted run's", state, now)


def _positive_int_or_none(name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InputError(f"dataset.{name}={value!r}; expected a positive integer (or null)")


class DiffusionDataModule(L.LightningDataModule):
    """Training batches of one data set's training split; validates its arguments when built.

    The batch: `batch_size` images per process, or `global_batch_size` images per optimizer step over all
    processes (devices × num_nodes), split evenly; set both only if they agree. The order is KeyedShardSampler's
    (keyed by seed and epoch, sharded by rank, resumed from the global step), and `flip` mirrors images on the
    batch's device with coins keyed by (seed, rank, step): the dataset itself is deterministic, so neither the
    number of workers nor a restart changes what a step sees."""

    def __init__(
        self,
        name: str = "digits",
        root: str | os.PathLike | None = None,
        resolution: int = 8,
        batch_size: int | None = 128,
        num_workers: int = 0,
        flip: bool = False,
        download: bool = False,
        drop_last: bool = True,
        seed: int | None = None,
        global_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        validate(name, resolution)
        if batch_size is None and global_batch_size is None:
            raise InputError("dataset.batch_size=null and dataset.global_batch_size=null; expected one of them set "
                             "(per process, or per step over all processes)")
        _positive_int_or_none("batch_size", batch_size)
        _positive_int_or_none("global_batch_size", global_batch_size)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise InputError(f"dataset.num_workers={num_workers!r}; expected an integer >= 0")
        if flip and name == "digits":
            raise InputError("dataset digits: flip=true mirrors digits into non-digits; use flip=false")
        self.name = name
        self.root = root
        self.resolution = resolution
        self.batch_size = batch_size
        self.global_batch_size = global_batch_size
        self.num_workers = num_workers
        self.flip = flip
        self.download = download
        self.drop_last = drop_last
        self.seed = 0 if seed is None else seed
        self.train_set: Dataset | None = None

    @property
    def channels(self) -> int:
        """Channels of every image (1 for digits, 3 otherwise)."""
        return DATASET_INFO[self.name]["channels"]

    @property
    def split(self) -> str:
        """The split trained on: the same "training set" the FID reference statistics use."""
        return DATASET_INFO[self.name]["train_split"]

    def per_process_batch_size(self, world_size: int) -> int:
        """The batch of one process when `world_size` processes train together; one line when that cannot be."""
        if self.global_batch_size is None:
            return self.batch_size  # type: ignore[return-value]
        per_process, rest = divmod(self.global_batch_size, world_size)
        if rest or not per_process:
            raise InputError(f"dataset.global_batch_size={self.global_batch_size} does not split evenly over "
                             f"{world_size} processes (devices x num_nodes); expected a multiple of {world_size}")
        if self.batch_size is not None and self.batch_size != per_process:
            raise InputError(f"dataset.batch_size={self.batch_size} per process x {world_size} processes is "
                             f"{self.batch_size * world_size}, not dataset.global_batch_size={self.global_batch_size}; "
                             f"set one of them and the other to null")
        return per_process

    def _world(self) -> tuple[int, int]:
        """(global rank, world size): from the trainer when one runs this module, else one process."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def check_available(self) -> None:
        """One-line FileNotFoundError if the data set is missing and download=false; cheap, call it first."""
        check_available(self.name, self.root, self.download)

    def prepare_data(self) -> None:
        """Downloads the data set if allowed (Lightning runs this on one process per node)."""
        if self.download:
            download_dataset(self.name, self.root)

    def setup(self, stage: str | None = None) -> None:
        """Builds the training set once, unflipped (flips happen per step, in on_after_batch_transfer)."""
        if self.train_set is not None:
            return
        train_set = build_dataset(self.name, self.root, self.split, self.resolution, flip=False)
        _, world = self._world()
        batch_size = self.per_process_batch_size(world)
        share = len(train_set) // world  # type: ignore[arg-type]
        if self.drop_last and share < batch_size:
            # an epoch of zero batches would make a step-based run spin without training
            per = f" ({share} for each of {world} processes)" if world > 1 else ""
            raise InputError(f"dataset {self.name} has {len(train_set)} training images{per}, fewer than "  # type: ignore[arg-type]
                             f"dataset.batch_size={batch_size} with drop_last=true; lower the batch size")
        self.train_set = train_set

    def train_dataloader(self) -> DataLoader:
        """This rank's shuffled batches, from where the run stands (see KeyedShardSampler)."""
        if self.train_set is None:
            self.setup("fit")
        rank, world = self._world()
        batch_size = self.per_process_batch_size(world)
        trainer = self.trainer
        consumed = (lambda: trainer.global_step * trainer.accumulate_grad_batches) if trainer is not None else None
        sampler = KeyedShardSampler(self.train_set, batch_size, self.seed, num_replicas=world, rank=rank,  # type: ignore[arg-type]
                                    drop_last=self.drop_last, consumed=consumed)
        return ResumableLoader(
            self.train_set,  # type: ignore[arg-type]
            batch_size=batch_size,
            sampler=sampler,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            # workers outlive epochs: with small data sets an epoch is a few batches, and restarting them dominates
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def on_after_batch_transfer(self, batch: torch.Tensor, dataloader_idx: int) -> torch.Tensor:
        """The random horizontal flip of training batches, p = 1/2 per image, keyed by (seed, rank, step)."""
        trainer = self.trainer
        if not self.flip or trainer is None or not trainer.training:
            return batch
        coins = keyed_generator(batch.device, self.seed, STREAM_FLIP, trainer.global_rank, trainer.global_step)
        mirror = torch.rand(batch.shape[0], generator=coins, device=batch.device) < 0.5
        return torch.where(mirror.view(-1, *([1] * (batch.dim() - 1))), batch.flip(-1), batch)


__all__ = ["DiffusionDataModule"]
