"""train.py with trainer=ddp_multinode_cpu under `sbatch -N2` on the test cluster: one gloo process on each node,
a requeue on SIGUSR1 through Lightning's hpc_ckpt, and a rerun that resumes and ends at the requested step."""

from __future__ import annotations

import json
import sys

import torch

from ..helpers import ROOT, TINY_TRAIN
from .slurm import free_ports

STEPS = 12


def test_two_node_ddp_requeues_on_sigusr1_and_resumes_to_the_last_step(idle, tmp_path):
    run_dir, probe, records = tmp_path / "run", tmp_path / "probe", tmp_path / "records"
    overrides = [*TINY_TRAIN, "trainer=ddp_multinode_cpu", f"trainer.max_steps={STEPS}", "logger=none",
                 "callbacks.sample_grid.every_n_steps=100000", f"hydra.run.dir={run_dir}",
                 "+callbacks.record._target_=tests.training.probes.RecordDraws", f"+callbacks.record.out_dir={records}",
                 "+callbacks.record.steps=2",
                 "+callbacks.probe._target_=tests.cluster.probes.NodeProbe", f"+callbacks.probe.out_dir={probe}"]
    # the node names do not resolve here: rank 0's address is given, as on clusters without DNS for them
    script = tmp_path / "train.sbatch"
    script.write_text("#!/bin/bash\n"
                      f"export MASTER_ADDR=127.0.0.1 MASTER_PORT={free_ports(1)[0]}\n"
                      f"srun {sys.executable} train.py {' '.join(overrides)}\n")
    log = tmp_path / "job.log"
    job = idle.sbatch("--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1", "--requeue", "--open-mode=append",
                      f"--output={log}", f"--chdir={ROOT}", str(script))
    idle.wait(lambda: (probe / "running").exists() or idle.job(job)["JobState"] not in {"PENDING", "RUNNING"},
              300, "step 2 of the first run")
    idle.run("scancel", "--signal=USR1", job)  # what SLURM's --signal=SIGUSR1@90 sends before a time limit
    idle.wait(lambda: idle.job(job)["JobState"] not in {"PENDING", "RUNNING", "COMPLETING", "REQUEUED"}
              and int(idle.job(job)["Restarts"]) > 0, 400, "the requeued job's end")
    text = log.read_text()
    state = idle.job(job)
    assert state["JobState"] == "COMPLETED", text[-4000:]

    starts = {p.stem: json.loads(p.read_text()) for p in probe.glob("start-*.json")}
    first, again = [starts[f"start-rank{r}-run0"] for r in (0, 1)], [starts[f"start-rank{r}-run1"] for r in (0, 1)]
    hpc = sorted(run_dir.glob("hpc_ckpt_*.ckpt"))
    saved = torch.load(hpc[-1], map_location="cpu", weights_only=True)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    print(f"2-node job {job}: world size {[s['world_size'] for s in first]} on nodes {[s['node'] for s in first]}; "
          f"requeued {state['Restarts']} time(s) from {hpc[-1].name} at step {saved['global_step']}; the rerun "
          f"started at {[s['step'] for s in again]}, world size {[s['world_size'] for s in again]}, ended at step "
          f"{last['global_step']}")
    # one process on each node, one process group of two, in both runs
    assert all(s["world_size"] == 2 for s in first + again)
    assert {s["node"] for s in first} == {"n1", "n2"} and {s["node"] for s in again} == {"n1", "n2"}
    # Lightning saved a whole step on SIGUSR1 and requeued; the rerun started from it and ended at the last step
    step = saved["global_step"]
    assert hpc[-1].name == "hpc_ckpt_1.ckpt" and 2 <= step < STEPS
    # a whole step: the counters agree (saved inside the signal handler they could be one apart)
    assert int(saved["state_dict"]["ema.n_averaged"]) == step
    assert saved["optimizer_states"][0]["state"][0]["step"].item() == step
    assert all(s["step"] == step for s in again) and int(state["Restarts"]) == 1
    assert last["global_step"] == STEPS
    assert "stopped by SLURM's requeue signal" in text and f"resuming from {run_dir}" in text

    # the two nodes drew different t for their halves of the batch (noise keyed by global rank)
    ranks = [torch.load(records / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert not torch.equal(ranks[0]["steps"][0]["t"], ranks[1]["steps"][0]["t"])
