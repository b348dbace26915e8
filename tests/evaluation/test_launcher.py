"""The SLURM launcher's job side: submitit's preemption handler failing its `scontrol requeue` because SLURM is
requeuing the job already (preemption with no grace time) ends the process as a requeue does, instead of raising
inside the cell, where the cell's own error handling would record a failed cell (seen on the test SLURM)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from ddim.evaluation.pipeline.launcher import _exit_when_slurm_requeues_first


def run_handler(raises: Exception | None) -> list[int]:
    calls: list[int] = []

    def submitit_handler(signum, frame):  # what submitit installs: checkpoint, then scontrol requeue
        calls.append(signum)
        if raises:
            raise raises

    previous = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        _exit_when_slurm_requeues_first()
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(0.1)  # the handler runs here
    finally:
        signal.signal(signal.SIGUSR2, previous)
    return calls


def test_a_requeue_refused_because_slurm_requeues_already_exits_the_job():
    with pytest.raises(SystemExit):
        run_handler(subprocess.CalledProcessError(1, ["scontrol", "requeue", "7_1"]))


def test_submitit_handler_still_runs_and_other_errors_pass_through():
    assert run_handler(None) == [signal.SIGUSR2]
    with pytest.raises(RuntimeError):
        run_handler(RuntimeError("not a requeue"))
