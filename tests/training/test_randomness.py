"""The keyed pieces on their own: seeds from (seed, stream, keys), the data order of KeyedShardSampler (sharded,
a permutation per epoch, resumed from the consumed batches), the keyed flip, and the global batch rule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ddim.data import DiffusionDataModule
from ddim.data.randomness import KeyedShardSampler, mix_seed
from ddim.errors import InputError

from ..helpers import compose_config


def test_mixed_seeds_differ_for_neighbouring_keys_and_repeat_for_the_same():
    seeds = {mix_seed(0, "diffusion", 0, 1), mix_seed(0, "diffusion", 1, 0), mix_seed(1, "diffusion", 0, 0),
             mix_seed(0, "dropout", 0, 1), mix_seed(0, "diffusion", 0, 0), mix_seed(0, "diffusion", 1)}
    assert len(seeds) == 6  # (rank 1, step 0) is not (rank 0, step 1), nor seed 1, nor another stream
    assert mix_seed(3, "flip", 2, 7) == mix_seed(3, "flip", 2, 7) and 0 <= mix_seed(3, "flip", 2, 7) < 2**63


class Items(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        return index


def sampler(rank: int, world: int, consumed: int = 0, n: int = 23, batch: int = 4, seed: int = 5) -> KeyedShardSampler:
    return KeyedShardSampler(Items(n), batch, seed, num_replicas=world, rank=rank, consumed=lambda: consumed)


def test_ranks_take_disjoint_equal_shares_of_one_permutation_per_epoch():
    n, world, batch = 23, 3, 4
    shares = [list(sampler(r, world)) for r in range(world)]
    assert [len(s) for s in shares] == [n // world] * world  # 7 each: the tail of 2 is left out this epoch
    together = [i for share in shares for i in share]
    assert len(set(together)) == len(together) == world * (n // world) and set(together) <= set(range(n))
    assert sampler(0, world).batches_per_epoch == 7 // batch  # drop_last: one batch of 4 a rank
    # each epoch is a permutation of the whole set, another one each epoch, the same on every rank
    one = sampler(0, 1)
    assert sorted(one.epoch_order(0).tolist()) == sorted(one.epoch_order(1).tolist()) == list(range(n))
    assert one.epoch_order(0).tolist() != one.epoch_order(1).tolist()
    assert sampler(2, world).epoch_order(4).tolist() == one.epoch_order(4)[: world * 7][2::world].tolist()


@pytest.mark.parametrize("consumed", [0, 1, 3, 5, 6, 12])
def test_iteration_starts_where_the_consumed_batches_end(consumed):
    """n = 23, batch 4, one rank: 5 batches an epoch. After `consumed` batches the sampler yields the rest of epoch
    consumed // 5 from batch consumed % 5: exactly what an uninterrupted iteration would yield next."""
    uninterrupted = [i for epoch in range(3) for i in sampler(0, 1).epoch_order(epoch)[:20].tolist()]
    resumed = list(sampler(0, 1, consumed=consumed))
    epoch, first = divmod(consumed, 5)
    assert resumed == uninterrupted[epoch * 20 + first * 4 : (epoch + 1) * 20] + sampler(0, 1).epoch_order(epoch)[20:].tolist()


def flipping_module(rank: int, step: int, training: bool = True, flip: bool = True) -> DiffusionDataModule:
    datamodule = DiffusionDataModule("folder", root="/unused", resolution=8, batch_size=4, flip=flip, seed=3)
    datamodule.trainer = SimpleNamespace(training=training, global_rank=rank, global_step=step)
    return datamodule


def test_flips_are_mirrors_keyed_by_seed_rank_and_step():
    batch = torch.randn(256, 3, 8, 8)
    out = flipping_module(0, 7).on_after_batch_transfer(batch, 0)
    mirrored = torch.tensor([not torch.equal(o, b) for o, b in zip(out, batch)])
    # each image is itself or its left-right mirror, and about half are mirrored (p = 1/2: 128 ± 8 at 1 σ)
    assert torch.equal(out[mirrored], batch[mirrored].flip(-1)) and torch.equal(out[~mirrored], batch[~mirrored])
    assert 96 < int(mirrored.sum()) < 160
    assert torch.equal(flipping_module(0, 7).on_after_batch_transfer(batch, 0), out)  # the same key, the same coins
    assert not torch.equal(flipping_module(1, 7).on_after_batch_transfer(batch, 0), out)  # another rank
    assert not torch.equal(flipping_module(0, 8).on_after_batch_transfer(batch, 0), out)  # another step
    assert flipping_module(0, 7, training=False).on_after_batch_transfer(batch, 0) is batch
    assert flipping_module(0, 7, flip=False).on_after_batch_transfer(batch, 0) is batch


def data(batch_size: int | None, global_batch_size: int | None) -> DiffusionDataModule:
    return DiffusionDataModule("digits", resolution=8, batch_size=batch_size, global_batch_size=global_batch_size)


def test_the_global_batch_splits_over_the_processes_or_is_refused_in_one_line():
    assert data(None, 128).per_process_batch_size(8) == 16
    assert data(None, 128).per_process_batch_size(1) == 128
    assert data(16, 128).per_process_batch_size(8) == 16  # both given and agreeing
    assert data(64, None).per_process_batch_size(8) == 64  # per process, as before
    with pytest.raises(InputError, match=r"^dataset.global_batch_size=128 does not split evenly over 3 processes"):
        data(None, 128).per_process_batch_size(3)
    with pytest.raises(InputError, match=r"dataset.batch_size=32 per process x 8 processes is 256, not "
                                         r"dataset.global_batch_size=128; set one of them and the other to null"):
        data(32, 128).per_process_batch_size(8)
    with pytest.raises(InputError, match="dataset.batch_size=null and dataset.global_batch_size=null"):
        data(None, None)
    with pytest.raises(InputError, match=r"dataset.global_batch_size=0; expected a positive integer"):
        data(None, 0)


@pytest.mark.parametrize("experiment", ["cifar10", "celeba"])
def test_the_paper_recipes_fix_the_global_batch_not_the_per_process_one(tmp_path, experiment):
    cfg = compose_config("train", tmp_path, [f"experiment={experiment}", "trainer=ddp"])
    assert cfg.dataset.global_batch_size == 128 and cfg.dataset.batch_size is None
    assert cfg.module.lr == 2e-4
