"""SIGTERM (a scheduler's preemption or time limit, scancel, kill) as a clean exit: SystemExit in the main thread,
so `finally` blocks run and half-written files are removed, and what was finished stays on disk for the rerun."""

from __future__ import annotations

import signal
import sys
from types import FrameType

SIGTERM_EXIT_CODE = 128 + signal.SIGTERM  # 143, what a shell reports for a process ended by SIGTERM


def exit_on_sigterm(message: str) -> bool:
    """Installs the handler unless SIGTERM is already handled (submitit ignores it on purpose inside its jobs: its
    USR2 handler checkpoints and requeues the job instead). Returns whether it was installed."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False

    def stop(signum: int, frame: FrameType | None) -> None:
        print(f"SIGTERM: {message}", file=sys.stderr, flush=True)
        sys.exit(SIGTERM_EXIT_CODE)

    signal.signal(signal.SIGTERM, stop)
    return True
