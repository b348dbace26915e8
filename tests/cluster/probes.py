"""Test-only callbacks for jobs on the test SLURM: for train.py (`+callbacks.probe._target_=tests.cluster.probes.
NodeProbe`) where each rank ran, and for a sweep's cells (`+hydra.callbacks.hold._target_=tests.cluster.probes.
HoldFirstRun`); both hold the first run of the job back, so that a signal lands mid-run whatever the machine's speed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.experimental.callback import Callback as HydraCallback

from ..e2e.kill_points import pause_before_rename


class NodeProbe(L.Callback):
    """Writes `<out_dir>/start-rank<R>-run<N>.json` (N: SLURM_RESTART_COUNT, 0 for the first run) with the rank, the
    world size, the SLURM node and the step the fit starts from; in the first run, sleeps `seconds` after each step
    and writes `<out_dir>/running` at step `mark_step`."""

    def __init__(self, out_dir: str, mark_step: int = 2, seconds: float = 1.0) -> None:
        self.out_dir, self.mark_step, self.seconds = Path(out_dir), int(mark_step), float(seconds)
        self.run = int(os.environ.get("SLURM_RESTART_COUNT", "0"))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "step": trainer.global_step,
                  "node": os.environ.get("SLURMD_NODENAME"), "job": os.environ.get("SLURM_JOB_ID")}
        (self.out_dir / f"start-rank{trainer.global_rank}-run{self.run}.json").write_text(json.dumps(record))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.run > 0:
            return
        if trainer.global_step >= self.mark_step and trainer.is_global_zero:
            (self.out_dir / "running").touch()
        time.sleep(self.seconds)


class HoldFirstRun(HydraCallback):
    """In a cell's job (on_job_start runs there), the first run only: holds the process as it renames its first
    chunk file, until a signal ends it (the time limit's USR2); a requeued run goes through."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        if int(os.environ.get("SLURM_RESTART_COUNT", "0")) == 0:
            pause_before_rename(lambda name: name.endswith(".npz") and not name.startswith("."), self.marker)
