"""Writes that never leave a half-written file (write beside the target, then rename over it), and a lock per
folder that holds on shared filesystems and is taken over once its holder is dead."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """Yields a temporary path in the target's folder; on success it replaces `path` in one rename. With `fsync`
    the data reach the disk before the rename and the rename before return, so not even a power cut leaves a
    half-written file under the final name (for checkpoints; small files skip the cost)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            _fsync(tmp)
        os.replace(tmp, target)
        if fsync:
            _fsync(target.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


LOCK_HEARTBEAT_S = 30.0  # the holder touches its lock file this often
LOCK_STALE_S = 300.0  # a lock file untouched this long is a dead holder's, whatever host it was on


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, stale_s: float = LOCK_STALE_S,
                   heartbeat_s: float = LOCK_HEARTBEAT_S) -> Iterator[bool]:
    """Holds the lock file `path` while the block runs; yields False at once, holding nothing, when another process
    has it. The file is made with O_CREAT | O_EXCL, which is atomic on local disks and on NFS (v3 and later) and
    Lustre alike, unlike flock, whose meaning there depends on mount options; it says who holds it (lock_holder),
    and a thread touches it every `heartbeat_s` while the block runs. A killed holder's file is stale, and taken
    over, when its pid is dead on this host, or, from any host, when it has not been touched for `stale_s`
    (the hosts' clocks need only agree to well within that)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (_create_lock(target) or (_break_if_stale(target, stale_s) and _create_lock(target))):
        yield False
        return
    done = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(target, done, heartbeat_s), daemon=True)
    beat.start()
    try:
        yield True
    finally:
        done.set()
        beat.join()
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


def lock_holder(path: str | os.PathLike) -> str:
    """"pid P on HOST since TIME" for a lock of exclusive_lock, or "?" if it cannot be read."""
    try:
        holder = json.loads(Path(path).read_text())
        return f"pid {holder['pid']} on {holder['host']} since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def _create_lock(target: Path) -> bool:
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    since = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": since}))
    return True


def _heartbeat(target: Path, done: threading.Event, every: float) -> None:
    while not done.wait(every):
        with contextlib.suppress(OSError):
            os.utime(target)


def _is_stale(target: Path, stale_s: float) -> bool:
    try:
        text, touched = target.read_text(), target.stat().st_mtime
    except FileNotFoundError:
        return True
    if time.time() - touched > stale_s:
        return True
    try:
        holder = json.loads(text)
    except ValueError:  # being written right now, or not ours: only its age can tell
        return False
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True  # dead on this host
    except (OSError, KeyError, TypeError, ValueError):  # alive under another user, or not our format
        pass
    return False


def _break_if_stale(target: Path, stale_s: float) -> bool:
    """Removes a stale lock file; True if the lock may be free now. Two processes that both find it stale must not
    both remove it (the second would remove the first's new lock): the remover holds `<lock>.break`, itself an
    O_EXCL file, and looks again while holding it."""
    breaker = target.with_name(target.name + ".break")
    with contextlib.suppress(FileNotFoundError):
        if time.time() - breaker.stat().st_mtime > stale_s:  # a remover that died holding it
            breaker.unlink()
    if not _is_stale(target, stale_s) or not _create_lock(breaker):
        return False
    try:
        if not _is_stale(target, stale_s):
            return False
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        return True
    finally:
        breaker.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
