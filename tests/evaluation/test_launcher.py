"""The SLURM launcher's job side: submitit's preemption handler failing its `scontrol requeue` because SLURM is
requeuing the job already (preemption with no grace time) ends the process as a requeue does, instead of raising
inside the cell, where the cell's own error handling would record a failed cell (seen on the test SLURM). Its
launching side: with sacct failing (no slurmdbd) the job states come from squeue, against stand-in commands (the
real ones: tests/cluster/test_sweeps.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ddim.evaluation.pipeline.launcher import _exit_when_slurm_requeues_first, watcher_class


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


def fake_slurm(bin_dir, monkeypatch, squeue_lines: str | None):
    """sacct fails, as without slurmdbd; squeue prints `squeue_lines` (None: fails, as with no controller); each
    call is logged to bin_dir/calls."""
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text(f"#!/bin/sh\necho sacct >> {bin_dir}/calls\nexit 1\n")
    answer = f"printf '{squeue_lines}'" if squeue_lines is not None else "echo 'Unable to contact' >&2; exit 1"
    (bin_dir / "squeue").write_text(f"#!/bin/sh\necho squeue \"$@\" >> {bin_dir}/calls\n{answer}\n")
    for tool in ("sacct", "squeue"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir / "calls"


def test_without_sacct_the_states_come_from_squeue_and_a_job_it_no_longer_lists_is_done(tmp_path, monkeypatch):
    calls = fake_slurm(tmp_path / "bin", monkeypatch, "7_0|PENDING\\n7_1|FAILED\\n")
    watcher = watcher_class()(delay_s=30)
    for job_id in ("7_0", "7_1", "8"):
        watcher.register_job(job_id)
    assert not watcher.is_done("7_0", mode="force")  # pending: still to come
    assert watcher.get_state("7_0", mode="cache") == "RUNNING"
    assert watcher.is_done("7_1", mode="cache") and watcher.get_state("7_1", mode="cache") == "FAILED"
    assert watcher.is_done("8", mode="cache") and watcher.get_state("8", mode="cache") == "GONE"  # ended long ago
    log = calls.read_text().splitlines()
    assert log[0] == "sacct" and "--jobs=7,8" in log[1].split()


def test_when_squeue_fails_too_the_states_stay_unknown_and_it_asks_again_only_after_the_delay(tmp_path,
                                                                                              monkeypatch):
    calls = fake_slurm(tmp_path / "bin", monkeypatch, None)
    watcher = watcher_class()(delay_s=30)
    watcher.register_job("7_0")
    assert not watcher.is_done("7_0") and watcher.get_state("7_0", mode="cache") == "UNKNOWN"
    assert not watcher.is_done("7_0")  # a second look at once: no call (submitit waits a second between looks)
    assert [line.split()[0] for line in calls.read_text().splitlines()] == ["sacct", "squeue"]


def test_hydras_plugin_scan_does_not_import_torch():
    """Hydra imports every hydra_plugins module when any of its apps starts: the launcher's must stay light."""
    scan = "from hydra.core.plugins import Plugins; import sys; Plugins.instance(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", scan], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["False"], done.stderr[-2000:]
