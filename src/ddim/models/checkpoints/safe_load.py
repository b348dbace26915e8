"""Reading checkpoint files without running pickled code, and the errors every format raises."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ddim.errors import InputError

SHOW_KEYS = 10  # how many keys an error message lists


class CheckpointError(InputError):
    """A checkpoint that cannot be read as a DDPM U-Net (bad input: entry points print it as one line)."""


class CheckpointMismatchError(CheckpointError):
    """The weights do not fit the architecture: lists missing / unexpected keys and shape mismatches."""


class UnsafeCheckpointError(CheckpointError):
    """The file needs full unpickling (it may run code) and trust_pickle was not given."""


def load_checkpoint_file(path: Path, trust_pickle: bool) -> Any:
    """The object in a torch or safetensors file, never running pickled code unless trust_pickle."""
    if path.suffix == ".safetensors":
        return load_safetensors(path)[0]
    check_torch_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as error:
        if not trust_pickle and "weights only" in str(error).lower():
            detail = str(error).split("\n")
            reason = next((line.strip() for line in detail if "Unsupported" in line or "global" in line.lower()), "")
            raise UnsafeCheckpointError(
                f"{path}: the file needs full unpickling, which can run arbitrary code "
                f"({reason or 'not plain tensors'}); refused. Pass trust_pickle=True (--trust-pickle) only if you "
                f"trust where it came from") from None
        raise CheckpointError(f"{path}: not a readable torch file ({error})") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable torch file, truncated or corrupt "
                              f"({type(error).__name__}: {first_line(error)})") from None


def load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the string metadata of a safetensors file (which holds no code); a CheckpointError for one that
    is empty, cut short or no safetensors file."""
    import safetensors
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error.strerror or error})") from None
    except getattr(safetensors, "SafetensorError", Exception) as error:  # exported at the top since 0.4.x
        raise CheckpointError(f"{path}: not a readable safetensors file, truncated or corrupt "
                              f"({first_line(error)})") from None


def check_torch_file(path: str | os.PathLike) -> None:
    """A CheckpointError saying what is wrong with a file that cannot be a torch checkpoint: empty, cut short (a
    zip archive without its end record, what an interrupted save or copy leaves), or something else entirely.
    torch.save writes a zip archive (or, before PyTorch 1.6, a pickle, whose protocol-2 header is 0x80)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
        is_zip = zipfile.is_zipfile(path)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error.strerror or error})") from None
    if size == 0:
        raise CheckpointError(f"{path}: an empty file (0 bytes), not a checkpoint; its write was cut short or never "
                              f"happened")
    if head == b"PK\x03\x04" and not is_zip:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({size} bytes, a zip archive without its end "
                              f"record): the file was cut short, e.g. by an interrupted save or copy")
    if head[:1] != b"\x80" and not is_zip:
        raise CheckpointError(f"{path}: not a readable torch file (neither a zip archive nor a pickle)")


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def tensor_dict(obj: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    """`obj` as a {name: tensor} dict, or one clear error saying which part of the file is not one."""
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: {what} is not a state dict of tensors (got {type(obj).__name__})")
    return {str(k): v for k, v in obj.items()}


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drops `prefix` (e.g. DataParallel's "module.") when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state
