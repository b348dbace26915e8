"""hydra-submitit-launcher's SLURM launcher with a launching side that cannot wait forever on a dead job.

submitit learns a job's state from `sacct` only. Where the cluster keeps no accounting (no slurmdbd: sacct exits 1)
a job that ended without writing its result, a cell whose process was killed, stays UNKNOWN to submitit, which
counts that as still running and waits forever; where sacct works it notices only on its next poll (every 10
minutes into a long sweep), and then raises, so the sweep ends without its tables. Here the state comes from
squeue when sacct fails, and a job that ended without a result becomes a failed cell: its metrics.json says so,
the other cells' results stand and the tables are written, as for a cell that raised."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from omegaconf import open_dict

log = logging.getLogger(__name__)

POLL_S = 30  # at most this long between two looks at the queue (submitit's own: 10 minutes)
# squeue's states in which a job may still write its result; any other (COMPLETED, FAILED, CANCELLED, TIMEOUT,
# NODE_FAIL, OUT_OF_MEMORY, ...) means it has ended
UNFINISHED = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
              "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "PREEMPTED", "RESV_DEL_HOLD"}
GONE = "GONE"  # squeue lists no such job: it ended more than MinJobAge (300 s by default) ago


def squeue_states(job_ids: set[str]) -> dict[str, str] | None:
    """Array task id ("123_4") or job id → state, for jobs squeue still lists; None when squeue itself failed."""
    done = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T",
                           f"--jobs={','.join(sorted(job_ids))}"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return {} if "Invalid job id" in done.stderr else None  # none of them is known any more, or no answer
    return dict(line.strip().split("|", 1) for line in done.stdout.splitlines() if "|" in line)


def watcher_class() -> type:
    from submitit.slurm.slurm import SlurmInfoWatcher

    class QueueWatcher(SlurmInfoWatcher):
        """submitit's watcher, asking squeue when sacct fails."""

        def update(self) -> None:
            command = self._make_command()
            if command is None:
                return
            self._last_status_check = time.time()  # as submitit's: a failed look is tried again after the delay
            try:
                self._info_dict.update(self.read_info(subprocess.check_output(command, stderr=subprocess.DEVNULL)))
            except (OSError, subprocess.CalledProcessError):
                pending = self._registered - self._finished
                states = squeue_states({job_id.split("_")[0] for job_id in pending})
                if states is None:
                    log.warning("squeue failed; the jobs' states are looked at again later")
                    return
                for job_id in pending:
                    state = states.get(job_id, GONE).split()[0]
                    self._info_dict[job_id] = {"State": "RUNNING" if state in UNFINISHED else state}
            self._finished |= {j for j in self._registered - self._finished if self.is_done(j, mode="cache")}

    return QueueWatcher


class QueueAwareSlurmLauncher(submitit_launcher.SlurmLauncher):
    """The submitit SLURM launcher (same keys, conf/hydra/launcher/slurm.yaml) whose waiting notices a job that ended
    without a result through squeue, and turns it into a failed cell instead of waiting or raising."""

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """The cell, in its job."""
        _exit_when_slurm_requeues_first()
        return super().__call__(*args, **kwargs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.slurm.slurm import SlurmJob

        # SlurmJob's watcher and result are class attributes that its jobs use; swapped back on the way out
        watcher, results = SlurmJob.watcher, SlurmJob.results
        SlurmJob.watcher = watcher_class()(delay_s=POLL_S)
        SlurmJob.results = lambda job: self._results_or_failure(job, results)
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            SlurmJob.watcher, SlurmJob.results = watcher, results

    def _results_or_failure(self, job: Any, results: Any) -> list[JobReturn]:
        from submitit.core.utils import UncompletedJobError

        try:
            return results(job)
        except UncompletedJobError:
            overrides, _, job_num = job.submission().args[:3]
            return [self._failed_cell(list(overrides), int(job_num), job)]

    def _failed_cell(self, overrides: list[str], job_num: int, job: Any) -> JobReturn:
        """metrics.json of a cell whose job ended without a result (unless it finished before dying), as its
        JobReturn; the launching side goes on to the next job and the tables."""
        # here, not at the top: Hydra imports every hydra_plugins module at each app's start, and these bring torch
        # and Lightning into apps that do not use them
        from .cell import write_failure
        from .task import cell_settings

        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = job_num
            cfg.hydra.job.id = str(job.job_id)
        out_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
        metrics_path = out_dir / "metrics.json"
        finished = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        if finished.get("status") == "ok":  # it died after writing its metrics
            return self._job_return(overrides, cfg, out_dir, finished)
        error = JobEndedWithoutResult(f"SLURM job {job.job_id} ended ({job.state}) without a result; its log: "
                                      f"{job.paths.stderr}")
        log.error("cell %s failed: %s", out_dir, error)
        return self._job_return(overrides, cfg, out_dir, write_failure(out_dir, cell_settings(cfg), error))

    @staticmethod
    def _job_return(overrides: list[str], cfg: Any, out_dir: Path, metrics: dict[str, Any]) -> JobReturn:
        return JobReturn(overrides=overrides, cfg=cfg, hydra_cfg=cfg.hydra, working_dir=str(out_dir),
                         task_name=str(cfg.hydra.job.name), status=JobStatus.COMPLETED, _return_value=metrics)


def _exit_when_slurm_requeues_first() -> None:
    """submitit's preemption handler (USR2) checkpoints the cell and runs `scontrol requeue`. When SLURM preempts with
    no grace time it is requeuing the job already, that command fails, and its CalledProcessError, raised inside the
    cell, would be caught as the cell failing: a failed result for a cell that SLURM then runs again. Here that
    exits as a requeue does; the rerun goes on from the chunks on disk."""
    from submitit.core.job_environment import JobEnvironment

    usr_signal = JobEnvironment._usr_sig()
    handler = signal.getsignal(usr_signal)
    if not callable(handler):
        return

    def checkpoint_and_requeue(signum: int, frame: Any) -> None:
        try:
            handler(signum, frame)
        except subprocess.CalledProcessError as error:
            log.warning("%s failed: SLURM is requeuing this job itself; exiting", " ".join(map(str, error.cmd)))
            sys.exit(-1)

    signal.signal(usr_signal, checkpoint_and_requeue)


class JobEndedWithoutResult(RuntimeError):
    """The job's process died (killed, out of memory, node failure) before the cell returned."""
