"""Test-only hooks that hold a real train.py / evaluate.py process at a chosen point, so that a test can SIGKILL it
exactly there. Loaded by the child through the config (`+callbacks.pause._target_=tests.e2e.kill_points.PauseAt`,
`+hydra.callbacks.pause._target_=tests.e2e.kill_points.PauseBeforeRename`); nothing in src/ knows about them.

Each writes `marker` when it reaches its point and then sleeps, so the test kills a process that is certainly
there. A checkpoint write (or a results table) is held after its temp file is complete and before the rename: the
last instant of the write, and the one a non-atomic writer would have left half-done under the final name."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.experimental.callback import Callback as HydraCallback

from ddim.training.callbacks import SampleGrid

HOLD_SECONDS = 300


def hold(marker: str | os.PathLike, release: str | os.PathLike | None = None) -> None:
    """Writes `marker`, then waits until the file `release` appears (or, without one, until killed)."""
    Path(marker).write_text(str(os.getpid()))
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline and not (release and Path(release).exists()):
        time.sleep(0.05)


def pause_before_rename(name_matches, marker: str | os.PathLike, release: str | os.PathLike | None = None) -> None:
    """Holds the process in os.replace when the target's name passes `name_matches` (atomic_path renames
    with os.replace)."""
    original = os.replace

    def replace(src, dst, *args, **kwargs):
        if name_matches(Path(dst).name):
            hold(marker, release)
        return original(src, dst, *args, **kwargs)

    os.replace = replace


class PauseAt(L.Callback):
    """point: "step" (inside the optimizer step that will be number `at_step`), "grid" (while the sample grid of
    step `at_step` is being drawn), "checkpoint" (writing the checkpoint of step `at_step`), or "mark" (write the
    marker at step `at_step` and go on, for sending SIGTERM to a running process)."""

    def __init__(self, point: str, at_step: int, marker: str) -> None:
        self.point, self.at_step, self.marker = point, int(at_step), marker

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.point == "grid":
            grid = next(c for c in trainer.callbacks if isinstance(c, SampleGrid))
            original = grid.make_samples

            def make_samples(module: Any):
                if trainer.global_step == self.at_step:
                    hold(self.marker)
                return original(module)

            grid.make_samples = make_samples
        elif self.point == "checkpoint":
            pause_before_rename(lambda name: name.endswith(".ckpt") and trainer.global_step == self.at_step,
                                self.marker)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int):
        if trainer.global_step == self.at_step - 1 and self.point == "step":
            hold(self.marker)
        if trainer.global_step == self.at_step and self.point == "mark" and not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))


class PauseBeforeRename(HydraCallback):
    """For evaluate.py -m: holds the sweep when it renames its `nth` file whose name matches the regex `pattern`
    (a chunk file, results.md), until `release` appears (or it is killed)."""

    def __init__(self, pattern: str, marker: str, nth: int = 1, release: str | None = None) -> None:
        self.pattern, self.marker, self.nth, self.release, self.seen = re.compile(pattern), marker, int(nth), release, 0

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        def matches(name: str) -> bool:
            if not self.pattern.fullmatch(name):
                return False
            self.seen += 1
            return self.seen == self.nth

        pause_before_rename(matches, self.marker, self.release)
