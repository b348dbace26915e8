"""Resume equals no interruption: a run stopped and continued ends bit for bit where the uninterrupted run ends
(weights, EMA, Adam, LR schedule), because its t, ε, dropout, flips and data order are keyed by (seed, rank, step)
and (seed, epoch), not drawn from a stream that every restart re-seeds. And a cosine LR continues its curve."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddim.training.train import train

from ..helpers import TINY_TRAIN, tiny_train_config, wait_for_file
from .test_train import train_popen

IMAGES, BATCH = 24, 8  # 3 batches an epoch: a few steps cross epochs and resume mid-epoch


def image_folder(folder: Path, count: int = IMAGES) -> Path:
    """`count` random 8x8 RGB PNGs: a data set small enough that epochs pass in a few steps."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return image_folder(tmp_path_factory.mktemp("data") / "images")


def exact_run(folder: Path, *extra: str) -> list[str]:
    """TINY_TRAIN on the folder with flips and dropout on, so every kind of training randomness is exercised;
    no periodic checkpoint or grid, so what a rerun finds is what the stop wrote."""
    return [*TINY_TRAIN, "dataset=folder", f"dataset.root={folder}", "dataset.resolution=8", "dataset.flip=true",
            f"dataset.batch_size={BATCH}", "dataset.num_workers=0", "model.dropout=0.1", "logger=none",
            "callbacks.checkpoint.every_n_train_steps=100000", "callbacks.sample_grid.every_n_steps=100000", *extra]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def tensors(ckpt: dict) -> dict[str, torch.Tensor]:
    """Every tensor of the training state: weights and EMA (state_dict) and Adam's moments and step counts."""
    found = {f"state_dict.{k}": v for k, v in ckpt["state_dict"].items()}
    for index, state in ckpt["optimizer_states"][0]["state"].items():
        found.update({f"adam.{index}.{k}": v for k, v in state.items()})
    return found


def max_difference(a: dict, b: dict) -> float:
    """The largest absolute difference between two checkpoints' training state; they must hold the same tensors."""
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    return max((ta[k].double() - tb[k].double()).abs().max().item() for k in ta)


def assert_same_state(resumed: dict, straight: dict, label: str) -> None:
    difference = max_difference(resumed, straight)
    print(f"{label}: max |resumed - uninterrupted| over weights, EMA and Adam = {difference}")
    assert difference == 0.0  # the same ops on the same numbers in the same order: bit for bit on one CPU
    assert resumed["global_step"] == straight["global_step"]
    assert int(resumed["state_dict"]["ema.n_averaged"]) == int(straight["state_dict"]["ema.n_averaged"])
    assert resumed["lr_schedulers"] == straight["lr_schedulers"]


@pytest.mark.slow
def test_stopped_at_step_4_and_resumed_to_8_ends_where_8_uninterrupted_steps_end(tmp_path, folder):
    straight = load(Path(train(tiny_train_config(tmp_path / "straight", *exact_run(folder, "trainer.max_steps=8")))
                         ["checkpoint"]))
    train(tiny_train_config(tmp_path / "resumed", *exact_run(folder, "trainer.max_steps=4")))
    halfway = load(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert halfway["global_step"] == 4  # mid-epoch 1 (3 batches an epoch)
    # the rerun in the same run dir finds last.ckpt; steps 5-8 finish epoch 1 and start epoch 2
    resumed = load(Path(train(tiny_train_config(tmp_path / "resumed", *exact_run(folder, "trainer.max_steps=8")))
                        ["checkpoint"]))
    assert max_difference(halfway, resumed) > 0  # the resumed run trained: equality below is not vacuous
    assert_same_state(resumed, straight, "plain resume at step 4 of 8")


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_and_rerun_in_its_dir_ends_where_the_uninterrupted_run_ends(tmp_path, folder):
    run_dir = tmp_path / "run"
    marker = tmp_path / "step3.marker"
    pause = ["+callbacks.pause._target_=tests.e2e.kill_points.PauseAt", "+callbacks.pause.point=mark",
             "+callbacks.pause.at_step=3", f"+callbacks.pause.marker={marker}"]
    first = train_popen(*exact_run(folder, "trainer.max_steps=100000", f"hydra.run.dir={run_dir}", *pause))
    wait_for_file(marker, first)
    first.send_signal(signal.SIGTERM)  # lands wherever the run is: the save happens at the next step boundary
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "interrupted at step" in output and "checkpoint:" not in output  # stopped, not reported as done
    step = load(run_dir / "checkpoints" / "last.ckpt")["global_step"]
    assert step >= 3  # the state when SIGTERM came, not the last periodic checkpoint's or nothing
    end = step + 4  # at least one epoch boundary after the stop

    rerun = train_popen(*exact_run(folder, f"trainer.max_steps={end}", f"hydra.run.dir={run_dir}"))
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and f"resuming from {run_dir / 'checkpoints' / 'last.ckpt'}" in output, output[-3000:]
    straight = train(tiny_train_config(tmp_path / "straight", *exact_run(folder, f"trainer.max_steps={end}")))
    assert_same_state(load(run_dir / "checkpoints" / "last.ckpt"), load(Path(straight["checkpoint"])),
                      f"SIGTERM at step {step}, rerun to {end}")


def cosine_lr(step: int, lr: float, warmup: int, length: int) -> float:
    """The closed form: linear warm-up over `warmup` steps, then 0.5 (1 + cos(π (s − w) / (length − w))), 0 past it."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (length - warmup))))


@pytest.mark.slow
@pytest.mark.parametrize("replan", [False, True])
def test_cosine_lr_after_a_resume_with_a_longer_max_steps_continues_the_first_fits_curve(tmp_path, replan):
    """A fit planned for 8 steps stops after 4 (as a preemption would) and is resumed with trainer.max_steps=12:
    the LR of steps 4-11 is the 8-step curve's (0 from step 8), not a jump onto a 12-step curve, unless the resume
    asks for another length with module.lr_decay_steps=12."""
    lrs = tmp_path / "lr.json"
    cosine = ["module.lr=1e-3", "module.lr_decay=cosine", "module.warmup_steps=2", "logger=none",
              "+callbacks.lr._target_=tests.training.probes.RecordLR", f"+callbacks.lr.path={lrs}"]
    stop = ["+callbacks.stop._target_=tests.training.probes.StopAfter", "+callbacks.stop.step=4"]
    train(tiny_train_config(tmp_path / "run", *cosine, "trainer.max_steps=8", *stop))
    assert load(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 4
    replanned = ["module.lr_decay_steps=12"] if replan else []
    train(tiny_train_config(tmp_path / "run", *cosine, "trainer.max_steps=12", *replanned))  # resumes from the dir
    seen = {int(k): v for k, v in json.loads(lrs.read_text()).items()}
    assert sorted(seen) == list(range(12))
    after = 12 if replan else 8
    expected = {step: cosine_lr(step, 1e-3, 2, 8 if step < 4 else after) for step in range(12)}
    assert seen == pytest.approx(expected, abs=1e-12)
    if not replan:
        assert all(seen[step] == 0 for step in range(8, 12)) and seen[4] < seen[3]  # continues down, no jump
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["lr_decay_length"] == after and ckpt["global_step"] == 12
