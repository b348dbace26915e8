"""Format (b): this project's Lightning checkpoint, with its hyper-parameters; and (e), its safetensors form: the
weights under our names, the hyper-parameters as JSON strings in the file's metadata."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .build import LoadedCheckpoint, build_unet, infer_unet_config, plain
from .safe_load import CheckpointError, check_torch_file, first_line, tensor_dict


def read_hyper_parameters(path: str | os.PathLike) -> dict[str, Any] | None:
    """The hyper-parameters of one of this project's checkpoints, memory-mapped and without building the model;
    None for formats that carry none (bare state dicts, official lists, diffusers folders, old pickles). A file
    that is no torch file at all (empty, cut short, text) is a CheckpointError saying so."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".safetensors":
        return None
    check_torch_file(path)
    try:
        # mmap needs the zip format; an old pickle-format file is small enough to read whole
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError:
        return None  # needs full unpickling: read_checkpoint says so, with trust_pickle as the way out
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as error:
        raise CheckpointError(f"{path}: truncated or corrupt torch file ({first_line(error)})") from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    return hparams if isinstance(hparams, dict) else None


def read_our_checkpoint(path: Path, obj: Mapping, ema: bool, overrides: dict[str, Any]) -> LoadedCheckpoint:
    """Format (b): the EMA or raw weights of our checkpoint, with the architecture and schedule it saved."""
    full = tensor_dict(obj["state_dict"], path, "state_dict")
    prefix = "ema.module." if ema else "model."
    state = {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}
    if not state:
        hint = "; pass ema=False (--no-ema) for the raw weights" if ema else ""
        raise CheckpointError(f"{path}: state_dict has no '{prefix}*' weights{hint}")
    hparams = plain(dict(obj.get("hyper_parameters") or {}))
    if isinstance(hparams.get("model"), Mapping):
        config = {**hparams["model"], **overrides}
    else:
        config = {**infer_unet_config(state, path, overrides.get("resolution")), **overrides}
    schedule = hparams.get("schedule") if isinstance(hparams.get("schedule"), Mapping) else None
    model = build_unet(state, config, path)
    return LoadedCheckpoint(model, dict(model.config), "lightning", schedule, hparams)


# metadata keys of format (e) holding JSON (the others are plain strings); "model" marks a file as format (e)
JSON_METADATA = ("model", "schedule")


def safetensors_metadata(hyper_parameters: Mapping[str, Any]) -> dict[str, str]:
    """The string metadata of format (e): "model" and "schedule" as JSON, the other values as they are."""
    return {"format": "pt", **{str(k): json.dumps(plain(v)) if k in JSON_METADATA else str(v)
                               for k, v in hyper_parameters.items() if v is not None}}


def read_our_safetensors(path: Path, state: dict[str, Any], metadata: Mapping[str, str],
                         overrides: dict[str, Any]) -> LoadedCheckpoint:
    """Format (e): one set of weights, built with the architecture and schedule its metadata states."""
    hparams: dict[str, Any] = {k: v for k, v in metadata.items() if k != "format"}
    for key in JSON_METADATA:
        if key in hparams:
            try:
                hparams[key] = json.loads(hparams[key])
            except json.JSONDecodeError as error:
                raise CheckpointError(f"{path}: metadata {key!r} is not JSON ({error})") from None
    if not isinstance(hparams["model"], Mapping):
        raise CheckpointError(f"{path}: metadata 'model' is not a JSON object of UNet arguments")
    schedule = hparams.get("schedule") if isinstance(hparams.get("schedule"), Mapping) else None
    model = build_unet(tensor_dict(state, path, "the file"), {**hparams["model"], **overrides}, path)
    return LoadedCheckpoint(model, dict(model.config), "safetensors", schedule, hparams)
