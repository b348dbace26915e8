"""Training randomness as a function of (seed, global rank, global step), and a data order as a function of
(seed, epoch): ranks draw different numbers, and a resumed or requeued run draws exactly what the uninterrupted run
would have drawn (GUIDE §3: EDM seeds every rank apart; `seed_everything` on every rank is the trap).

Streams keep the draws apart, so that adding one never shifts another: t and ε of the loss, the U-Net's dropout, the
horizontal flips of the batch, and the epoch's permutation of the data set."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

STREAM_DIFFUSION, STREAM_DROPOUT, STREAM_FLIP, STREAM_ORDER = "diffusion", "dropout", "flip", "order"


def mix_seed(seed: int, stream: str, *keys: int) -> int:
    """A 63-bit seed from (seed, stream, keys): BLAKE2b of their text, so nearby keys give unrelated seeds (not
    seed + rank, under which rank 1 at step 0 would draw what rank 0 draws with seed + 1)."""
    text = ",".join([str(int(seed)), stream, *(str(int(k)) for k in keys)]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def keyed_generator(device: torch.device | str, seed: int, stream: str, *keys: int) -> torch.Generator:
    """A fresh generator on `device` seeded from (seed, stream, keys): draws on the batch's device, no host copy."""
    return torch.Generator(device=device).manual_seed(mix_seed(seed, stream, *keys))


@contextmanager
def keyed_global_rng(device: torch.device, seed: int, stream: str, *keys: int) -> Iterator[None]:
    """Inside: the global RNG (what nn.Dropout draws from) seeded from the key; after: restored as it was, so code
    outside training (the sample grid, user code) sees a stream untouched by training."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.manual_seed(mix_seed(seed, stream, *keys))
        yield


class KeyedShardSampler(DistributedSampler):
    """Epoch e's order is a permutation of the data set keyed by (seed, e); rank r of w takes positions
    r, r + w, r + 2w, ... of it (the tail that does not divide by w is left out, so every rank has as many batches).

    Where to start is read, at each new iteration, from `consumed()`: the batches the run has consumed so far
    (global step × gradient accumulation). Epoch consumed // batches_per_epoch, from batch consumed %
    batches_per_epoch: a resumed run goes on with the very batches the uninterrupted run would have drawn.

    A DistributedSampler, so that Lightning keeps it under DDP instead of wrapping it in its DistributedSamplerWrapper
    (which would shard and shuffle it a second time). Lightning's set_epoch is not used: it is called after the
    first iterator of a resumed fit has been made, too late for that iterator."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, num_replicas: int = 1, rank: int = 0,
                 drop_last: bool = True, consumed: Callable[[], int] | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size, self.drop_last_batch, self.consumed = batch_size, drop_last, consumed
        self.per_rank = len(dataset) // num_replicas  # type: ignore[arg-type]
        full, rest = divmod(self.per_rank, batch_size)
        self.batches_per_epoch = full if drop_last or not rest else full + 1

    def position(self) -> tuple[int, int]:
        """(epoch, first batch) where the next iteration starts."""
        consumed = self.consumed() if self.consumed is not None else 0
        return divmod(consumed, max(1, self.batches_per_epoch))

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """This rank's indices for the whole of `epoch`, in order."""
        generator = keyed_generator("cpu", self.seed, STREAM_ORDER, epoch)
        permutation = torch.randperm(len(self.dataset), generator=generator)  # type: ignore[arg-type]
        return permutation[: self.per_rank * self.num_replicas][self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        epoch, first_batch = self.position()
        yield from self.epoch_order(epoch)[first_batch * self.batch_size :].tolist()

    def __len__(self) -> int:
        return self.per_rank

    def set_epoch(self, epoch: int) -> None:
        """Ignored: the epoch follows from consumed() (see the class docstring)."""


__all__ = ["KeyedShardSampler", "keyed_generator", "keyed_global_rng", "mix_seed"]
