"""exclusive_lock between processes: one holder at a time, the holder kept alive by its heartbeat, and a dead
holder's lock taken over (at once on this host, after stale_s from another)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import time
from pathlib import Path

from ddim.utils import exclusive_lock, lock_holder

FORK = multiprocessing.get_context("fork")


def hold(path: str, go: str, seconds: float, results, heartbeat_s: float = 30.0, stale_s: float = 300.0) -> None:
    while not os.path.exists(go):
        time.sleep(0.001)
    with exclusive_lock(path, stale_s=stale_s, heartbeat_s=heartbeat_s) as mine:
        results.put((os.getpid(), mine))
        if mine:
            time.sleep(seconds)


def test_of_processes_started_together_exactly_one_holds_the_lock(tmp_path):
    results = FORK.Queue()
    go = tmp_path / "go"
    lock = tmp_path / "cell" / ".cell.lock"
    for attempt in range(5):
        go.unlink(missing_ok=True)
        workers = [FORK.Process(target=hold, args=(str(lock), str(go), 0.3, results)) for _ in range(4)]
        for w in workers:
            w.start()
        go.touch()
        got = sorted(results.get(timeout=30)[1] for _ in workers)
        for w in workers:
            w.join(30)
        assert got == [False, False, False, True], attempt
        assert not lock.exists()  # released on the way out


def test_a_live_holder_keeps_its_lock_past_stale_s_by_its_heartbeat(tmp_path):
    results, lock, go = FORK.Queue(), tmp_path / ".cell.lock", tmp_path / "go"
    go.touch()
    holder = FORK.Process(target=hold, args=(str(lock), str(go), 1.2, results, 0.05))
    holder.start()
    pid, mine = results.get(timeout=30)
    assert mine
    time.sleep(0.7)
    with exclusive_lock(lock, stale_s=0.3) as second:  # older than stale_s, but touched 20 times a second
        assert not second
    assert lock_holder(lock).startswith(f"pid {pid} on {socket.gethostname()} since ")
    holder.join(30)


def test_a_killed_holders_lock_is_taken_over_at_once_on_its_host(tmp_path):
    results, lock, go = FORK.Queue(), tmp_path / ".cell.lock", tmp_path / "go"
    go.touch()
    holder = FORK.Process(target=hold, args=(str(lock), str(go), 60.0, results))
    holder.start()
    pid, _ = results.get(timeout=30)
    os.kill(pid, signal.SIGKILL)  # no cleanup runs: the file stays, naming a dead pid
    holder.join(30)
    assert json.loads(lock.read_text())["pid"] == pid
    with exclusive_lock(lock) as mine:
        assert mine and json.loads(lock.read_text())["pid"] == os.getpid()


def test_another_hosts_lock_is_taken_over_only_once_untouched_for_stale_s(tmp_path):
    lock = tmp_path / ".cell.lock"
    lock.write_text(json.dumps({"host": "node-that-crashed", "pid": os.getpid(), "since": "earlier"}))
    with exclusive_lock(lock, stale_s=60) as mine:
        assert not mine  # its pid means nothing here: only its age can say it is dead
    assert lock_holder(lock) == "pid %d on node-that-crashed since earlier" % os.getpid()
    old = time.time() - 61
    os.utime(lock, (old, old))
    with exclusive_lock(lock, stale_s=60) as mine:
        assert mine and json.loads(lock.read_text())["host"] == socket.gethostname()
    assert not lock.exists() and not Path(f"{lock}.break").exists()
