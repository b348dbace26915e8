"""Kill it anywhere and lose nothing: real train.py and evaluate.py -m processes, SIGKILLed at chosen points
(held there by tests/e2e/kill_points.py) or sent SIGTERM, then run again."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ..helpers import ROOT, TINY_TRAIN, chunk_indices, wait_for_file

# a checkpoint and a grid every 2 steps: each kill may lose at most the steps since the last checkpoint
KILL_TRAIN = [*TINY_TRAIN, "trainer.max_steps=8", "logger=csv"]
INTERVAL = 2


def start(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, script, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


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
    """One run killed three times, each time resumed from its last.ckpt in the same folder."""
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
        wait_for_file(marker, process)
        kill(process)
        on_disk = sound_checkpoints(folder)  # every file under a final name loads in full
        assert on_disk["last.ckpt"] == newest, (point, on_disk)
        assert max(on_disk.values()) == newest and step - newest <= INTERVAL
        if point == "checkpoint":  # killed inside the write: its temp file is there, the final name is not
            assert list(folder.glob(".step_0000004.ckpt.*.tmp.ckpt")) and "step_0000004.ckpt" not in on_disk
        if point == "grid":
            from PIL import Image

            Image.open(run / "samples" / "last.png").verify()  # the previous grid, whole

    # the step-4 checkpoint was written by a run resumed from step 2: it went on with the optimizer, the EMA and
    # the LR schedule of step 2's checkpoint (an EMA or optimizer started afresh would count fewer than 4)
    resumed = torch.load(last, map_location="cpu", weights_only=True)
    assert resumed["global_step"] == 4
    assert resumed["optimizer_states"][0]["state"][0]["step"].item() == 4
    assert int(resumed["state_dict"]["ema.n_averaged"]) == 4
    assert resumed["lr_schedulers"][0]["last_epoch"] == 4
    assert not list(folder.glob(".*.tmp*"))  # the killed write's temp file was cleared by the next sound write


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    marker = tmp_path / "running.marker"
    # checkpoints and grids far apart: what is on disk after SIGTERM was written because of it
    process = start("train.py", *TINY_TRAIN, "trainer.max_steps=100000", "logger=none",
                    "callbacks.checkpoint.every_n_train_steps=100000", "callbacks.sample_grid.every_n_steps=100000",
                    *pause_args("mark", 3, marker), f"hydra.run.dir={tmp_path / 'run'}")
    wait_for_file(marker, process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 143, output[-3000:]
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    step = ckpt["global_step"]
    assert 3 <= step < 100000 and int(ckpt["state_dict"]["ema.n_averaged"]) == step
    assert f"stopped by SIGTERM at step {step}; continue with resume=" in output


def pause_sweep_args(pattern: str, marker: Path, nth: int = 1, release: Path | None = None) -> list[str]:
    args = ["+hydra.callbacks.pause._target_=tests.e2e.kill_points.PauseBeforeRename",
            f"+hydra.callbacks.pause.pattern='{pattern}'", f"+hydra.callbacks.pause.marker={marker}",
            f"+hydra.callbacks.pause.nth={nth}"]
    return args + ([f"+hydra.callbacks.pause.release={release}"] if release else [])


CHUNK = r"\d{8}_\d+\.npz"


@pytest.mark.slow
def test_two_sweeps_on_one_folder_and_kills_in_a_cell_and_in_the_tables_lose_nothing(checkpoint, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", f"ckpt={checkpoint}", "sampler.steps=2,3", "sampler.eta=0", "eval.num_samples=24",
            "eval.recon_samples=0", "fid.kid_subsets=0", "eval.figures=false", "wandb=none",
            f"hydra.sweep.dir={sweep}"]
    n = 24

    # 1. the first sweep is held inside cell 0, its third chunk written but not yet renamed
    first_marker, release = tmp_path / "first.marker", tmp_path / "release"
    first = start("evaluate.py", *args, "eval.batch_size=4", *pause_sweep_args(CHUNK, first_marker, 3, release))
    wait_for_file(first_marker, first)

    # 2. a second sweep on the same folder meanwhile: cell 0 is locked, so it does cell 1 only
    second = subprocess.run([sys.executable, "evaluate.py", *args, "eval.batch_size=6"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"this cell is being evaluated by another process (pid {first.pid} on " in second.stdout + second.stderr
    assert json.loads((sweep / "1" / "metrics.json").read_text())["status"] == "ok"
    assert not (sweep / "0" / "metrics.json").exists()
    tables_before = (sweep / "results.md").read_text()  # its end-of-sweep tables, cell 0 not yet there

    # 3. the first is SIGKILLed inside cell 0; its unrenamed chunk is cut in half, as a kill mid-write leaves it
    kill(first)
    assert chunk_indices(sweep / "0") == list(range(8))
    (temp,) = (sweep / "0").glob("features-*/.*.tmp.npz")
    temp.write_bytes(temp.read_bytes()[: temp.stat().st_size // 2])

    # 4. a rerun finishes cell 0 (cell 1 is done) and is SIGKILLed while writing the tables
    tables_marker = tmp_path / "tables.marker"
    third = start("evaluate.py", *args, "eval.batch_size=4", *pause_sweep_args(r"results\.md", tables_marker))
    wait_for_file(tables_marker, third)
    kill(third)
    # never half-written: the old tables stand whole, the new ones are only a temp file
    assert (sweep / "results.md").read_text() == tables_before and list(sweep.glob(".results.md.*.tmp.md"))
    with open(sweep / "results.csv") as f:  # written (atomically) before results.md
        assert [row["status"] for row in csv.DictReader(f)] == ["ok", "ok"]

    # 5. the last rerun only writes the tables
    last = subprocess.run([sys.executable, "evaluate.py", *args, "eval.batch_size=4"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert last.returncode == 0, last.stderr[-3000:]
    assert (last.stdout + last.stderr).count("cell already finished") == 2
    assert "| 2 " in (sweep / "results.md").read_text() and "| 3 " in (sweep / "results.md").read_text()
    # every image of every cell was recorded exactly once, whoever made it
    assert chunk_indices(sweep / "0") == list(range(n)) and chunk_indices(sweep / "1") == list(range(n))
