"""evaluate.py -m hydra/launcher=slurm on the real test cluster (conftest.py): the sweep is one job array, a cell
preempted by a higher partition comes back and makes each image exactly once, a cell past its time limit is
requeued, and a cell whose process is killed outright is a failed cell in the tables, with no sacct to ask."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import yaml

from ..e2e.test_cluster import evaluate_popen
from ..helpers import chunk_indices, wait_until

NUM_SAMPLES = 16
# S=200 at 2 images a batch: ~2 s a batch here, so a signal lands between a cell's first chunk and its last
CELL = ["eval.batch_size=2", "eval.recon_samples=0", "fid.kid_subsets=0",
        "fid.bootstrap=0", "eval.figures=false", "wandb=none"]
LAUNCHER = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=1"]


def sweep_popen(checkpoint: Path, sweep: Path, *args: str, samples: int = NUM_SAMPLES, timeout_min: int = 30):
    """The sweep's launching process. submitit takes a signal for a time-out once the job has run
    min(0.8 x limit, limit - 10 min): under 30 minutes a preemption would count as one."""
    return evaluate_popen("-m", *LAUNCHER, f"hydra.launcher.timeout_min={timeout_min}", f"ckpt={checkpoint}", *CELL,
                          f"eval.num_samples={samples}", f"hydra.sweep.dir={sweep}", *args)


def slurm_job_id(cell_dir: Path) -> str:
    """The array task ("123_1") that ran the cell, as Hydra recorded it."""
    return str(yaml.safe_load((cell_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["id"])


def submitted_job(sweep: Path) -> str | None:
    """The SLURM job id of the sweep's submission (submitit names its folder after it), once there is one."""
    folders = [p.name for p in (sweep / ".submitit").glob("*") if p.name.isdigit()]
    return folders[0] if folders else None


def job_logs(sweep: Path, chars: int = 3000) -> str:
    """The tail of every submitit log of the sweep: what a job did when it never got as far as Hydra's files."""
    logs = sorted((sweep / ".submitit").glob("*/*_log.*"))
    return "\n".join(f"== {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in logs) or "no submitit logs"


def cell_pid(job_id: str) -> int | None:
    """The pid of the cell's Python process (submitit's _submit) in that array task, if it runs now."""
    array, task = job_id.split("_")
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"submitit.core._submit" not in cmdline.read_bytes():
                continue
            variables = set((cmdline.parent / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if {f"SLURM_ARRAY_JOB_ID={array}".encode(), f"SLURM_ARRAY_TASK_ID={task}".encode()} <= variables:
            return int(cmdline.parent.name)
    return None


def cells(sweep: Path) -> dict[tuple[int, float], dict]:
    found = [json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")]
    return {(c["steps"], c["eta"]): c for c in found}


def test_a_2x2_sweep_is_one_job_array_and_a_preempted_cell_makes_each_image_once(checkpoint, idle, tmp_path):
    sweep = tmp_path / "sweep"
    start = time.monotonic()
    launching = sweep_popen(checkpoint, sweep, "sampler.steps=20,200", "sampler.eta=0,1")
    slow = sweep / "2"  # S=200, eta=0: Hydra numbers (20, 0), (20, 1), (200, 0), (200, 1)
    wait_until(lambda: len(chunk_indices(slow)) > 0, launching, "first chunk of cell 2")
    job = slurm_job_id(slow)
    node = idle.job(job)["NodeList"]
    # a job of the higher partition takes the cell's node: SLURM signals and requeues the cells running there
    idle.sbatch("-p", "high", "-w", node, "-c2", "-o", "/dev/null", "--wrap", "sleep 2")
    made_before = {p: p.stat().st_mtime_ns for p in slow.glob("features-*/*.npz")}
    output, _ = launching.communicate(timeout=600)
    seconds = time.monotonic() - start
    assert launching.returncode == 0, output[-4000:]

    restarts = int(idle.job(job)["Restarts"])
    print(f"2x2 sweep, submit to results.md: {seconds:.0f} s; cell 2 ({job} on {node}) requeued {restarts} time(s), "
          f"{len(made_before)} of {NUM_SAMPLES // 2} chunks made before")
    assert len(made_before) < NUM_SAMPLES // 2, "the cell finished before it was preempted: make it slower"
    assert restarts >= 1
    # the requeued job went on from the chunks on disk: every image index exactly once, none made again
    assert chunk_indices(slow) == list(range(NUM_SAMPLES))
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in made_before.items())

    found = cells(sweep)
    assert set(found) == {(20, 0), (200, 0), (20, 1), (200, 1)}
    assert all(c["status"] == "ok" for c in found.values()), found
    assert all(chunk_indices(sweep / d) == list(range(NUM_SAMPLES)) for d in "0123")
    # one array of 4 tasks, each cell in its own, submitted with the requeue and the signal of slurm.yaml
    jobs = {slurm_job_id(sweep / d) for d in "0123"}
    (array,) = {j.split("_")[0] for j in jobs}
    assert {j.split("_")[1] for j in jobs} == set("0123")
    submitted = set((sweep / ".submitit" / array / f"{array}_submission.sh").read_text().splitlines())
    assert {"#SBATCH --array=0-3%4", "#SBATCH --requeue", "#SBATCH --signal=USR2@120"} <= submitted
    table = (sweep / "results.md").read_text()
    assert "| 20 " in table and "| 200 " in table and "failed" not in table


def test_a_cell_killed_outright_is_failed_in_the_table_and_the_sweep_ends(checkpoint, idle, tmp_path):
    sweep = tmp_path / "sweep"
    launching = sweep_popen(checkpoint, sweep, "sampler.steps=20,200", "sampler.eta=0")
    slow = sweep / "1"
    wait_until(lambda: len(chunk_indices(slow)) > 0, launching, "first chunk of cell 1")
    job = slurm_job_id(slow)
    os.kill(cell_pid(job), signal.SIGKILL)  # no handler runs, no result is written: the job just fails
    output, _ = launching.communicate(timeout=300)
    assert launching.returncode == 0, output[-4000:]
    assert idle.job(job)["JobState"] == "FAILED" and not idle.run("sacct", check=False).returncode == 0

    found = cells(sweep)
    assert found[(20, 0)]["status"] == "ok"
    assert found[(200, 0)]["status"] == "failed" and f"SLURM job {job} ended" in found[(200, 0)]["error"]
    assert "failed" in (sweep / "results.md").read_text()


def test_a_cell_past_its_time_limit_is_requeued_and_finishes(checkpoint, idle, tmp_path):
    """SLURM's shortest limit is a minute and it looks every ~30 s: this one takes 60-90 s."""
    sweep, held = tmp_path / "sweep", tmp_path / "held"
    # slurmctld sends USR2 at its first look (every ~30 s) at which the time left is <= signal_delay_s + 30 s
    # (PERIODIC_TIMEOUT), so delay 5 s puts it 25-55 s into the 1-minute run: the job has imported torch and submitit
    # handles USR2 by then (with 40 or 50 s it came at the first look, 0-30 s in, and on a loaded machine killed a job
    # still unpickling). The first run is held after its first chunk until the signal (HoldFirstRun); submitit calls it
    # a time-out and requeues; the rerun goes on from the chunk. The kill at the limit would come at a later look, and
    # the cluster's OverTimeLimit=1 puts it a minute later still, so a look that comes late cannot signal and kill at once.
    # Once requeued, the job gets 10 minutes: the rerun (start-up, reference statistics, the rest of the images) took
    # 22 s here under load, too close to its own USR2 25 s in, which would make a second time-out of the one tested
    launching = sweep_popen(checkpoint, sweep, "sampler.steps=20", "sampler.eta=0", "hydra.launcher.signal_delay_s=5",
                            "+hydra.callbacks.hold._target_=tests.cluster.probes.HoldFirstRun",
                            f"+hydra.callbacks.hold.marker={held}", timeout_min=1)
    wait_until(lambda: submitted_job(sweep) is not None, launching, "the job's submitit folder")
    job = submitted_job(sweep)
    wait_until(lambda: int(idle.job(job)["Restarts"]) >= 1, launching, "the time limit's requeue", every=0.5,
               details=lambda: job_logs(sweep))
    idle.run("scontrol", "update", f"JobId={job}", "TimeLimit=10")
    output, _ = launching.communicate(timeout=600)
    assert launching.returncode == 0, output[-4000:]
    cell = sweep / "0"
    assert (cell / ".hydra" / "hydra.yaml").exists(), job_logs(sweep)
    assert slurm_job_id(cell) == job
    log = (sweep / ".submitit" / job / f"{job}_0_log.out").read_text()
    restarts = int(idle.job(job)["Restarts"])
    print(f"time-limited cell {job}: requeued {restarts} time(s)")
    assert held.exists() and "this job is timed-out" in log and "remaining timeouts" in log, log[-3000:]
    assert restarts == 1
    assert chunk_indices(cell) == list(range(NUM_SAMPLES))
    assert cells(sweep)[(20, 0)]["status"] == "ok"
