"""The cluster path without a cluster: the SLURM launcher's configs and the GPU sbatch file of a 25-cell sweep (a
stand-in sbatch: the test SLURM has no GPUs), hydra/launcher=local's cells as separate processes (one preempted and
requeued on the way), and SIGTERM'd cells that resume without making any image twice. Real jobs, preemption, time
limits and two-node training run on a real SLURM in tests/cluster/."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import hydra
import numpy as np
import pytest
import yaml

from ddim.evaluation.pipeline.store import done_indices, save_chunk

from ..helpers import ROOT, chunk_indices, compose_config, wait_until
from .test_evaluate import run_evaluate

# small and slow enough per batch that a signal lands between the first and the last chunk
CELL = ["eval.num_samples=16", "eval.batch_size=4", "eval.recon_samples=0", "fid.kid_subsets=0", "eval.figures=false",
        "wandb=none"]
NUM_SAMPLES = 16


def evaluate_popen(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "evaluate.py"), *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the field after the state is the parent's pid
            found.append(int(stat.parent.name))
    return found


def test_slurm_launcher_composes_and_takes_overrides(tmp_path):
    cfg = compose_config("evaluate", tmp_path, ["hydra/launcher=slurm", "hydra.launcher.partition=h100",
                                                "hydra.launcher.timeout_min=90"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.ddim_launcher.SlurmLauncher"  # submitit's, aware of dead jobs
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node, launcher.tasks_per_node) == ("h100", 90, 1, 1)
    assert launcher.max_num_timeout > 0 and launcher.signal_delay_s > 0 and launcher.additional_parameters.requeue
    assert launcher.submitit_folder.endswith("/.submitit/%j")  # job logs and pickles live in the sweep dir
    assert cfg.hydra.callbacks.results._target_ == "ddim.evaluation.pipeline.sweep.SweepResults"

    local = compose_config("evaluate", tmp_path, ["hydra/launcher=local"], return_hydra_config=True).hydra.launcher
    assert local._target_.endswith("submitit_launcher.LocalLauncher") and local.gpus_per_node == 0


def test_ddp_multinode_trainer_requeues_on_sigusr1_and_matches_the_sbatch_script(tmp_path):
    cfg = compose_config("train", tmp_path, ["experiment=celeba", "trainer=ddp_multinode"])
    assert (cfg.trainer.strategy, cfg.trainer.accelerator) == ("ddp", "gpu")
    environment = hydra.utils.instantiate(cfg.trainer.plugins[0])
    assert type(environment).__name__ == "SLURMEnvironment"
    assert environment.auto_requeue and environment.requeue_signal == signal.SIGUSR1

    script = (ROOT / "docs" / "cluster" / "train_celeba.sbatch").read_text()
    flags = dict(line[len("#SBATCH --"):].split("=", 1) for line in script.splitlines()
                 if line.startswith("#SBATCH --") and "=" in line)
    assert flags["signal"] == "SIGUSR1@90" and "#SBATCH --requeue" in script
    # the config's defaults are the script's shape, and the script splits the paper's 128 over every GPU
    assert (int(flags["nodes"]), int(flags["ntasks-per-node"])) == (cfg.trainer.num_nodes, cfg.trainer.devices)
    assert flags["gpus-per-node"] == flags["ntasks-per-node"]
    assert "TOTAL_BATCH=${TOTAL_BATCH:-128}" in script and "dataset.global_batch_size=\"$TOTAL_BATCH\"" in script
    assert cfg.dataset.global_batch_size == 128 and cfg.dataset.batch_size is None
    assert "experiment=celeba trainer=ddp_multinode" in script and 'hydra.run.dir="$RUN_DIR"' in script


def test_a_half_written_chunk_left_by_a_killed_process_is_ignored(tmp_path):
    save_chunk(tmp_path, [0, 1], features=np.zeros((2, 3)))
    (tmp_path / ".00000002_2.npz.x1y2.tmp.npz").write_bytes(b"PK\x03\x04 cut short")  # what atomic_path leaves
    assert done_indices(tmp_path) == {0, 1}


@pytest.mark.slow
def test_sbatch_file_of_a_25_cell_sweep(tmp_path):
    spec = importlib.util.spec_from_file_location("slurm_submission", ROOT / "bench" / "slurm_submission.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    text = bench.sbatch_text([*bench.GRID, "hydra.launcher.partition=h100"], tmp_path / "sweep")
    lines = set(text.splitlines())
    # one array task per cell, at most array_parallelism (32) at once
    assert "#SBATCH --array=0-24%25" in lines
    assert {"#SBATCH --partition=h100", "#SBATCH --gpus-per-node=1", "#SBATCH --ntasks-per-node=1",
            "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB", "#SBATCH --time=240"} <= lines
    # USR2 two minutes before the limit: submitit checkpoints and requeues; --requeue lets preempted jobs return
    assert {"#SBATCH --signal=USR2@120", "#SBATCH --requeue"} <= lines
    assert f"-m submitit.core._submit {tmp_path / 'sweep'}/.submitit/%j" in text


@pytest.mark.slow
def test_local_launcher_runs_cells_as_processes_and_a_preempted_cell_resumes(checkpoint, tmp_path):  # noqa: F811
    sweep = tmp_path / "sweep"
    launching = evaluate_popen("-m", "hydra/launcher=local", f"ckpt={checkpoint}", "sampler.steps=2,10",
                               "sampler.eta=0", *CELL, f"hydra.sweep.dir={sweep}")
    slow_cell = sweep / "1"
    wait_until(lambda: len(chunk_indices(slow_cell)) > 0, launching, "first chunk of cell 1")
    # preempt the S=10 cell as SLURM would: submitit's signal (USR2) to the job's process, whose parent is the
    # local "scheduler" named by the job id Hydra recorded
    job_id = int(yaml.safe_load((slow_cell / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["id"])
    made_before = len(chunk_indices(slow_cell))
    (task,) = children(job_id)
    os.kill(task, signal.SIGUSR2)
    output, _ = launching.communicate(timeout=600)
    assert launching.returncode == 0, output[-4000:]

    assert made_before < NUM_SAMPLES, "the cell finished before it was preempted: make it slower"
    log = (sweep / ".submitit" / str(job_id) / f"{job_id}_0_log.err").read_text()
    assert "Caught signal SIGUSR2" in log and "this job is preempted" in log, log[-3000:]
    # the requeued job (the first one exited on the signal) went on from the finished chunks: every image once
    assert json.loads((slow_cell / "metrics.json").read_text())["status"] == "ok"
    assert chunk_indices(slow_cell) == list(range(NUM_SAMPLES))
    assert chunk_indices(sweep / "0") == list(range(NUM_SAMPLES))

    # each cell ran in a process of its own, not in the launching one, and the tables came after both
    job_ids = {yaml.safe_load((sweep / j / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["id"] for j in "01"}
    assert len(job_ids) == 2 and str(launching.pid) not in job_ids
    table = (sweep / "results.md").read_text()
    assert "| 2 " in table and "| 10 " in table and "failed" not in table
    assert (sweep / "results.csv").read_text().count("\n") == 3


@pytest.mark.slow
def test_sigterm_stops_a_cell_cleanly_and_the_rerun_makes_no_image_twice(checkpoint, tmp_path):  # noqa: F811
    run = tmp_path / "cell"
    args = [f"ckpt={checkpoint}", "sampler.steps=10", "sampler.eta=0", *CELL, f"hydra.run.dir={run}"]
    first = evaluate_popen(*args)
    wait_until(lambda: len(chunk_indices(run)) > 0, first, "first chunk")
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "SIGTERM: stopping" in output
    assert not (run / "metrics.json").exists()
    assert not list(run.glob("features-*/.*"))  # no half-written chunk left behind
    kept = {p: p.stat().st_mtime_ns for p in run.glob("features-*/*.npz")}
    assert 0 < len(chunk_indices(run)) < NUM_SAMPLES, "the cell finished before SIGTERM: make it slower"

    again = run_evaluate(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert chunk_indices(run) == list(range(NUM_SAMPLES))  # each image once: none redone, none missing
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in kept.items())
    assert "value=" in again.stdout
