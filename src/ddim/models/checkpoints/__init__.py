"""Load published DDPM weights (and this project's checkpoints) into our UNet without retraining.

Formats `read_checkpoint` recognizes:

(a) ``state_dict``:    a bare state dict with our parameter names: the pesser/pytorch_diffusion ports of Ho et al.'s
                       TensorFlow checkpoints that ermongroup/ddim samples (``.ckpt``/``.pth``/``.pt``/``.safetensors``;
                       a ``module.`` prefix from DataParallel is dropped).
(b) ``lightning``:     this project's checkpoint: {"state_dict": {"model.<k>", "ema.module.<k>", "ema.n_averaged"},
                       "hyper_parameters": {"model": UNet kwargs, "schedule": {...}, ...}}.
(c) ``official_ddim``: the official DDIM training checkpoint, a list [model_state, optimizer_state, epoch, step,
                       ema_state]; model_state comes from DataParallel (``module.`` keys), ema_state from its EMAHelper.
(d) ``diffusers``:     a diffusers folder (config.json + diffusion_pytorch_model.safetensors or .bin) holding a
                       UNet2DModel in the DDPM layout (google/ddpm-cifar10-32 and friends), converted by
                       `DIFFUSERS_KEY_TABLE`; diffusers itself is never imported. ``hf://ORG/REPO[@REV][/SUB]``
                       names such a folder on the Hugging Face Hub, read through huggingface_hub's cache (hub.py).
(e) ``safetensors``:   what ``python -m ddim.convert SRC DST.safetensors`` writes: one set of weights with our names,
                       the metadata holding "model" (UNet kwargs) and "schedule" as JSON, "source", "converted_from".

Files are read with ``torch.load(weights_only=True)``, so loading never runs pickled code; a file that needs full
unpickling is refused unless the caller passes ``trust_pickle=True`` (only for files one trusts).

Architecture hyper-parameters come from the file when it has them (our hyper_parameters, diffusers' config.json),
otherwise from tensor shapes: ch from conv_in, ch_mult from the blocks' channels, num_res_blocks from the block count,
attention levels from the attention keys, in/out channels from conv_in/conv_out. The image resolution is not in the
shapes: `model_config["resolution"]` if given, else the resolution at which the first attention level is 16x16, as in
every published DDPM/DDIM model (CIFAR-10 32, CelebA 64, LSUN 256), else 32.

One module per concern: reference.py (a), ours.py (b) and (e), official.py (c), diffusers.py (d) with its key table;
safe_load.py reads files and holds the errors; build.py infers and builds the UNet; registry.py knows the published
weights and where they live, download.py fetches a missing one on first use, hub.py reads hf:// repositories. This
file only dispatches.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ddim.errors import MissingInputError

from ..unet import UNet
from .build import DEFAULT_SCHEDULE, LoadedCheckpoint, infer_unet_config
from .diffusers import DIFFUSERS_KEY_TABLE, diffusers_key_to_ours, read_diffusers_folder, unet_config_from_diffusers
from .download import MIRROR_ENV, ChecksumError, DownloadError
from .hub import is_hub_uri, resolve_hub
from .official import read_official
from .ours import read_hyper_parameters, read_our_checkpoint, read_our_safetensors, safetensors_metadata
from .reference import read_reference_state_dict
from .registry import KNOWN_WEIGHTS, PretrainedSpec, resolve_pretrained, weights_root
from .safe_load import (
    SHOW_KEYS, CheckpointError, CheckpointMismatchError, UnsafeCheckpointError, check_torch_file, load_checkpoint_file,
    load_safetensors,
)


def read_checkpoint(path: str | os.PathLike, ema: bool = True, trust_pickle: bool = False,
                    model_config: Mapping[str, Any] | None = None) -> LoadedCheckpoint:
    """Reads any format of the module docstring (a path, or an hf:// repository); `ema` picks the EMA weights where
    the file has both; `model_config` overrides (or completes) the architecture the file states or implies."""
    if is_hub_uri(path):
        path = resolve_hub(str(path))
    path = Path(path).expanduser()
    if not path.exists():
        raise MissingInputError(f"{path}: no such checkpoint file or folder")
    overrides = dict(model_config or {})
    if path.is_dir():
        return read_diffusers_folder(path, overrides)
    if path.name.startswith("diffusion_pytorch_model") and (path.parent / "config.json").is_file():
        return read_diffusers_folder(path.parent, overrides)
    if path.suffix == ".safetensors":
        obj, metadata = load_safetensors(path)
        if "model" in metadata:  # written by python -m ddim.convert SRC DST.safetensors
            return read_our_safetensors(path, obj, metadata, overrides)
    else:
        obj = load_checkpoint_file(path, trust_pickle)
    if isinstance(obj, (list, tuple)):
        return read_official(path, obj, ema, overrides)
    if isinstance(obj, Mapping) and "state_dict" in obj:
        return read_our_checkpoint(path, obj, ema, overrides)
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if any(str(k).startswith("ema.module.") for k in obj) or all(str(k).startswith("model.") for k in obj):
            # our LightningModule's own state_dict(), saved without the Lightning wrapper
            return read_our_checkpoint(path, {"state_dict": obj}, ema, overrides)
        return read_reference_state_dict(path, obj, overrides)
    kind = f"a dict with keys {list(obj)[:SHOW_KEYS]}" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
    raise CheckpointError(f"{path}: not a checkpoint this loader knows (a state dict, this project's checkpoint, the "
                          f"official DDIM list or a diffusers folder); it holds {kind}")


def load_pretrained(path: str | os.PathLike, ema: bool = True, trust_pickle: bool = False,
                    model_config: Mapping[str, Any] | None = None) -> UNet:
    """The UNet of `read_checkpoint(...)`, in eval mode."""
    return read_checkpoint(path, ema=ema, trust_pickle=trust_pickle, model_config=model_config).model


__all__ = [
    "DEFAULT_SCHEDULE", "DIFFUSERS_KEY_TABLE", "KNOWN_WEIGHTS", "MIRROR_ENV", "ChecksumError", "CheckpointError",
    "CheckpointMismatchError", "DownloadError", "LoadedCheckpoint", "PretrainedSpec", "UnsafeCheckpointError",
    "check_torch_file", "diffusers_key_to_ours", "infer_unet_config", "is_hub_uri", "load_pretrained",
    "read_checkpoint", "read_hyper_parameters", "resolve_hub", "resolve_pretrained", "safetensors_metadata",
    "unet_config_from_diffusers", "weights_root",
]
