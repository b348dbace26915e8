"""Two real DDP processes on the CPU (gloo): what each rank drew and did, read from its own record
(tests/training/probes.py). Ranks draw different t and ε and see disjoint shards of the data; two runs of the same
seed draw the same; a NaN on one rank only makes every rank skip that step, and no rank hangs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddim.data import build_dataset

from ..helpers import ROOT, TINY_TRAIN

STEPS, BATCH = 4, 16


def ddp_run(run_dir: Path, *extra: str) -> list[dict]:
    """train.py with trainer=ddp_cpu for STEPS steps; the records of rank 0 and rank 1."""
    records = run_dir / "records"
    command = [sys.executable, "train.py", *TINY_TRAIN, "trainer=ddp_cpu", f"trainer.max_steps={STEPS}",
               "logger=none", "model.dropout=0.1", f"dataset.batch_size={BATCH}",
               "callbacks.checkpoint.every_n_train_steps=100000", "callbacks.sample_grid.every_n_steps=100000",
               "+callbacks.record._target_=tests.training.probes.RecordDraws", f"+callbacks.record.out_dir={records}",
               f"+callbacks.record.steps={STEPS}", f"hydra.run.dir={run_dir}", *extra]
    # a timeout, not a hang, if one rank waited in an all-reduce that the other never joins
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    ranks = [torch.load(records / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert [[s["step"] for s in r["steps"]] for r in ranks] == [list(range(1, STEPS + 1))] * 2
    # rank 0 wrote the checkpoint of the whole run: the step count and the EMA went on through every (unskipped) step
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == STEPS
    assert int(ckpt["state_dict"]["ema.n_averaged"]) == ranks[0]["steps"][-1]["ema_count"]
    return ranks


@pytest.mark.slow
def test_ddp_ranks_draw_apart_repeat_across_runs_shard_the_data_and_skip_a_one_rank_nan_together(tmp_path):
    clean = ddp_run(tmp_path / "clean")
    nan = ddp_run(tmp_path / "nan", "module.nonfinite_loss=skip", "+callbacks.nan._target_=tests.training.probes.NanOnRank",
                  "+callbacks.nan.rank=1", "+callbacks.nan.step=3")

    first = [r["steps"][0] for r in clean]
    print(f"step 1 t, rank 0: {first[0]['t'].tolist()}")
    print(f"step 1 t, rank 1: {first[1]['t'].tolist()}")
    for step in range(STEPS):  # every step: the ranks' t and ε differ (the bug: rank r's k-th = rank 0's k-th)
        zero, one = clean[0]["steps"][step], clean[1]["steps"][step]
        assert not torch.equal(zero["t"], one["t"]) and (zero["eps"] - one["eps"]).abs().min() > 0
    for rank in (0, 1):  # and each rank's draws change from step to step
        t = [s["t"] for s in clean[rank]["steps"]]
        assert all(not torch.equal(a, b) for a, b in zip(t, t[1:]))

    # the two runs: the same seed draws the same t and ε at every step on each rank, NaN or not (the draws are keyed
    # by step, not by what training did); before the NaN (steps 1-2) they are the same run in every respect
    for rank in (0, 1):
        for a, b in zip(clean[rank]["steps"], nan[rank]["steps"]):
            assert torch.equal(a["t"], b["t"]) and torch.equal(a["eps"], b["eps"]) and torch.equal(a["batch"], b["batch"])
        for a, b in zip(clean[rank]["steps"][:2], nan[rank]["steps"][:2]):
            assert torch.equal(a["weights"], b["weights"])

    # sharding: the loader each rank really iterates (after Lightning's sampler handling) gives disjoint halves that
    # together cover the data set once (no second shard, no repeats), and its batches are those indices
    dataset = build_dataset("digits", None, "train", 8)
    orders = [r["epoch_order"] for r in clean]
    assert all(r["sampler"] == "KeyedShardSampler" for r in clean)
    assert len(orders[0]) == len(orders[1]) == len(dataset) // 2
    assert not set(orders[0]) & set(orders[1]) and len(set(orders[0]) | set(orders[1])) == 2 * (len(dataset) // 2)
    for rank in (0, 1):
        expected = torch.stack([dataset[i] for i in orders[rank][:BATCH]])
        assert torch.equal(clean[rank]["steps"][0]["batch"], expected)

    # the clean run stepped on every step; the NaN run skipped step 3 on both ranks (no Adam update, no EMA update),
    # and both ranks hold the same weights after it (a rank that stepped alone would differ, or hang)
    assert [s["adam_step"] for s in clean[0]["steps"]] == [1, 2, 3, 4]
    for rank in (0, 1):
        steps = nan[rank]["steps"]
        assert [s["adam_step"] for s in steps] == [1, 2, 2, 3], rank
        assert [s["ema_count"] for s in steps] == [1, 2, 2, 3], rank
        assert [s["skipped"] for s in steps] == [0, 0, 1, 1], rank
        assert torch.equal(steps[2]["weights"], steps[1]["weights"])  # step 3 changed nothing
    for step in range(STEPS):
        assert torch.equal(nan[0]["steps"][step]["weights"], nan[1]["steps"][step]["weights"])
        assert torch.equal(clean[0]["steps"][step]["weights"], clean[1]["steps"][step]["weights"])
