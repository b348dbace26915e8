"""The test cluster itself: two nodes that run one job across both, and a partition that preempts the other."""

from __future__ import annotations


def test_a_job_spans_both_nodes_and_a_high_partition_job_requeues_a_low_one(idle):
    done = idle.run("srun", "-N2", "--ntasks-per-node=1", "bash", "-c", "echo $SLURMD_NODENAME $SLURM_PROCID")
    assert sorted(done.stdout.split("\n")[:2]) == ["n1 0", "n2 1"], done.stdout

    low = idle.sbatch("-p", "low", "-N1", "-w", "n1", "-c2", "--requeue", "-o", "/dev/null", "--wrap", "sleep 300")
    idle.wait(lambda: idle.job(low)["JobState"] == "RUNNING", 30, "low job running")
    high = idle.sbatch("-p", "high", "-N1", "-w", "n1", "-c2", "-o", "/dev/null", "--wrap", "sleep 1")
    # the high job takes the node: the low one goes back to the queue and comes back after it
    idle.wait(lambda: idle.job(high)["JobState"] == "COMPLETED", 60, "high job done")
    idle.wait(lambda: idle.job(low)["JobState"] == "RUNNING", 60, "low job back")
    assert idle.job(low)["Restarts"] == "1"
