"""Kill it anywhere and lose nothing: real train.py and evaluate.py -m processes, SIGKILLed at chosen points
(held there by tests/e2e/kill_points.py) or sent SIGTERM, then run again."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ..helpers import ROOT, TINY_TRAIN

# 8 steps, a checkpoint and a grid every 2: each kill may lose at most the steps since the last checkpoint
KILL_TRAIN = [*TINY_TRAIN, "trainer.max_steps=8", "logger=csv"]
INTERVAL = 2


def start(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, script, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(marker: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before {marker.name}:\n{process.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{marker.name} never appeared")
        time.sleep(0.05)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stdout.close()


def pause_args(point: str, at_step: int, marker: Path) -> list[str]:
    return ["+callbacks.pause._target_=tests.e2e.kill_points.PauseAt", f"+callbacks.pause.point={point}",
            f"+callbacks.pause.at_step={at_step}", f"+callbacks.pause.marker={marker}"]


def sound_checkpoints(folder: Path) -> dict[str, int]:
    """{name: global_step} of every checkpoint under its final name; each must load in full."""
    steps = {}
    for path in sorted(folder.glob("[!.]*.ckpt")):
        steps[path.name] = torch.load(path, map_location="cpu", weights_only=True)["global_step"]
    return steps


@pytest.mark.slow
def test_sigkill_in_a_step_a_checkpoint_write_and_a_grid_then_resume_loses_at_most_one_interval(tmp_path):
    run = tmp_path / "run"
    folder = run / "checkpoints"
    last = folder / "last.ckpt"
    common = [*KILL_TRAIN, f"hydra.run.dir={run}"]
    # (where, the step it is in when killed, the newest complete checkpoint expected after the kill)
    kills = [("step", 3, 2), ("checkpoint", 4, 2), ("grid", 6, 4)]
    for i, (point, step, newest) in enumerate(kills):
        marker = tmp_path / f"{point}.marker"
        resume = [f"resume={last}"] if i else []
        process = start("train.py", *common, *resume, *pause_args(point, step, marker))
        wait_for(marker, process)
        kill(process)
        on_disk = sound_checkpoints(folder)  # every file under a final name loads in full
        assert on_disk["last.ckpt"] == newest, (point, on_disk)
        assert max(on_disk.values()) == newest and step - newest <= INTERVAL
        if point == "checkpoint":  # killed inside the write: its temp file is there, the final name is not
            assert list(folder.glob(".step_0000004.ckpt.*.tmp.ckpt")) and "step_0000004.ckpt" not in on_disk
        if point == "grid":
            from PIL import Image

            Image.open(run / "samples" / "last.png").verify()  # the previous grid, whole

    done = subprocess.run([sys.executable, "train.py", *common, f"resume={last}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    final = torch.load(last, map_location="cpu", weights_only=True)
    # the run went on from step 4's checkpoint with its optimizer, EMA and LR schedule, and reached step 8
    assert final["global_step"] == 8
    assert final["optimizer_states"][0]["state"][0]["step"].item() == 8
    assert int(final["state_dict"]["ema.n_averaged"]) == 8
    assert final["lr_schedulers"][0]["last_epoch"] == 8
    assert not list(folder.glob(".*.tmp*"))  # the killed write's temp file was cleared by the next sound write


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    marker = tmp_path / "running.marker"
    # checkpoints and grids far apart: what is on disk after SIGTERM was written because of it
    process = start("train.py", *TINY_TRAIN, "trainer.max_steps=100000", "logger=none",
                    "callbacks.checkpoint.every_n_train_steps=100000", "callbacks.sample_grid.every_n_steps=100000",
                    *pause_args("mark", 3, marker), f"hydra.run.dir={tmp_path / 'run'}")
    wait_for(marker, process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 143, output[-3000:]
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    step = ckpt["global_step"]
    assert 3 <= step < 100000 and int(ckpt["state_dict"]["ema.n_averaged"]) == step
    assert f"stopped by SIGTERM at step {step}; continue with resume=" in output
