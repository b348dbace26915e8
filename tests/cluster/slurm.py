"""A one-machine SLURM cluster for tests: Debian's slurmctld and two slurmd (nodes n1 and n2 on 127.0.0.1, each on
its own port), no munge and no slurmdbd, everything in one temp dir. The settings that make it fast and usable
are the ones docs/cluster.md's laptop recipe lists; see there for why each is set."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ddim.evaluation.pipeline.launcher import UNFINISHED

NODES = ("n1", "n2")
CPUS_PER_NODE = 2  # declared, not real: both nodes share this machine's cores (SlurmdParameters=config_overrides)
# a pending job is looked at every 2 s instead of 60, and a requeued job may start again 5 s after it ended
# instead of the default credential lifetime of 120 s: a requeue cycle takes ~7 s, not ~160
CONFIG = """\
ClusterName=ddimtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={node_ports[0]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
AuthInfo=cred_expire=5
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool-%n
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd-%n.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SchedulerParameters=sched_interval=2,bf_interval=2
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
MinJobAge=600
KillWait=5
# a job past its limit is killed a minute later, not at the same look that may send its --signal (test_sweeps)
OverTimeLimit=1
InactiveLimit=0
{nodes}
PartitionName=low Nodes={node_list} Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE
PartitionName=high Nodes={node_list} MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
"""


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Cluster:
    """The daemons run in the foreground as children of the test process; `env` is os.environ with SLURM_CONF
    pointing at this cluster, for every sbatch/squeue/scontrol and every process that submits."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.conf = directory / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.daemons: list[subprocess.Popen] = []

    def write_config(self) -> None:
        ctld_port, *node_ports = free_ports(1 + len(NODES))
        nodes = "\n".join(f"NodeName={name} NodeAddr=127.0.0.1 Port={port} CPUs={CPUS_PER_NODE} RealMemory=4000 "
                          f"State=UNKNOWN" for name, port in zip(NODES, node_ports))
        self.conf.write_text(CONFIG.format(host=socket.gethostname(), ctld_port=ctld_port, node_ports=node_ports,
                                           dir=self.dir, nodes=nodes, node_list=",".join(NODES)))

    def start(self, timeout: float = 60) -> None:
        self.write_config()
        (self.dir / "state").mkdir(exist_ok=True)
        log = open(self.dir / "daemons.out", "ab")
        self.daemons.append(subprocess.Popen(["slurmctld", "-D", "-c", "-i"], env=self.env, stdout=log, stderr=log))
        for name in NODES:
            self.daemons.append(subprocess.Popen(["slurmd", "-D", "-N", name], env=self.env, stdout=log, stderr=log))
        self.wait(lambda: self.node_states() == {name: "idle" for name in NODES}, timeout, "idle nodes")

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: rc {done.returncode}: {done.stderr.strip()}")
        return done

    def node_states(self) -> dict[str, str]:
        done = self.run("sinfo", "--noheader", "--Node", "--format=%N %t", check=False)
        states = dict(line.split() for line in done.stdout.splitlines() if line.strip())
        return {name: state.rstrip("*~#") for name, state in states.items()}

    def sbatch(self, *args: str) -> str:
        """The job id of `sbatch --parsable ARGS`."""
        return self.run("sbatch", "--parsable", *args).stdout.strip().split(";")[0]

    def jobs(self) -> dict[str, str]:
        """Job (array task) id → state, for every job squeue still lists, finished ones included (MinJobAge)."""
        done = self.run("squeue", "--noheader", "--array", "--states=all", "--format=%i %T", check=False)
        return dict(line.split() for line in done.stdout.splitlines() if line.strip())

    def job(self, job_id: str) -> dict[str, str]:
        """scontrol's fields of one job (or array task): JobState, Restarts, NodeList, ..."""
        text = self.run("scontrol", "show", "job", "--oneliner", job_id).stdout
        return dict(field.split("=", 1) for field in text.split() if "=" in field)

    def active(self) -> dict[str, str]:
        return {j: s for j, s in self.jobs().items() if s in UNFINISHED}

    @staticmethod
    def wait(condition, timeout: float, what: str, every: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"SLURM test cluster: no {what} after {timeout} s")
            time.sleep(every)

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancels every job and waits until none is left running (their processes gone with them)."""
        active = self.active()
        if active:
            self.run("scancel", "--full", *active, check=False)
        self.wait(lambda: not self.active(), timeout, "empty queue")

    def job_processes(self) -> list[int]:
        """Processes started for this cluster's jobs (slurmstepd and what it runs), by the SLURM_CONF they inherit;
        the daemons are not counted."""
        mine = f"SLURM_CONF={self.conf}".encode()
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                variables = environ.read_bytes().split(b"\0")
                cmdline = (environ.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if mine in variables and (cmdline.startswith(b"slurmstepd") or any(v.startswith(b"SLURM_JOB_ID=")
                                                                                for v in variables)):
                found.append(int(environ.parent.name))
        return found

    def stop(self, timeout: float = 30) -> None:
        """Cancels every job, waits for their processes to end, then stops the daemons; nothing is left behind."""
        try:
            if self.daemons and self.daemons[0].poll() is None:
                self.cancel_all()
            self.wait(lambda: not self.job_processes(), timeout, "end of the jobs' processes")  # slurmstepd too
        finally:
            for daemon in reversed(self.daemons):  # the slurmd first, then slurmctld
                if daemon.poll() is None:
                    daemon.send_signal(signal.SIGTERM)
            for daemon in self.daemons:
                try:
                    daemon.wait(timeout)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()


def available() -> str | None:
    """None when this machine can run the cluster, else why not (the skip reason)."""
    missing = [tool for tool in ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol") if not shutil.which(tool)]
    if missing:
        return (f"no SLURM here ({', '.join(missing)} not on PATH); Debian: apt-get install --no-install-recommends "
                f"slurmctld slurmd slurm-client (.ci/run does it)")
    if os.geteuid() != 0:
        return "the SLURM test cluster runs its daemons as root (SlurmUser=root, no munge); not root here"
    return None
