"""Checkpoints that are never half-written: Lightning's TorchCheckpointIO writes the final file in place (or via a
temp file in /tmp and a copy), so a kill or a full disk mid-write leaves a truncated last.ckpt."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ddim.utils import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes to a temp file in the checkpoint's own folder, fsyncs it, then renames it over the target: the file
    under the final name is always either the old checkpoint or the complete new one. A failed write (e.g. a full
    disk) is an OSError naming the file, and leaves the previous checkpoint as it was."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r})")
        file = None
        try:
            with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as raw:
                file = _RecordingWriter(raw)
                torch.save(checkpoint, file)
        except (OSError, RuntimeError) as error:
            # torch's zip writer turns a failed write into a RuntimeError about stream positions: name the cause
            cause = (file.error if file is not None and file.error is not None else error)
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause).splitlines()[0]
            raise OSError(f"could not write checkpoint {Path(path)} ({reason}); the checkpoint that was there is "
                          f"untouched") from None
        # a process killed while writing this name earlier left its temp file: the name is sound now, drop it
        target = Path(path)
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp{target.suffix}"):
            stale.unlink(missing_ok=True)


class _RecordingWriter:
    """A binary file that remembers the OSError of a failed write (a full disk: "No space left on device")."""

    def __init__(self, file: Any) -> None:
        self.file, self.error = file, None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()
