"""What every format shares: the result type, the architecture implied by tensor shapes, and building the UNet
with a one-line report of what does not fit."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..unet import UNet
from .safe_load import SHOW_KEYS, CheckpointError, CheckpointMismatchError

# Ho et al.'s linear β, which every published DDPM model was trained with: the schedule of files that state none
DEFAULT_SCHEDULE: dict[str, Any] = {"name": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02}

# the keyword arguments UNet takes: a config with any other key is refused before building
UNET_ARGS = tuple(p for p in inspect.signature(UNet.__init__).parameters if p != "self")


@dataclass
class LoadedCheckpoint:
    """A model in eval mode and what its file says about itself."""

    model: UNet
    model_config: dict[str, Any]  # the model's full UNet kwargs (model.config)
    source: str  # "state_dict" | "lightning" | "official_ddim" | "diffusers" | "safetensors"
    schedule: dict[str, Any] | None  # e.g. DEFAULT_SCHEDULE, when the file says
    extra: dict[str, Any] = field(default_factory=dict)  # lightning: its hyper_parameters


def infer_unet_config(state: Mapping[str, torch.Tensor], path: Path | str = "state dict",
                      resolution: int | None = None) -> dict[str, Any]:
    """UNet kwargs implied by a state dict with our names (the package docstring says what is inferred how)."""
    if "conv_in.weight" not in state or "conv_out.weight" not in state:
        raise CheckpointError(f"{path}: not a DDPM U-Net state dict (no conv_in.weight / conv_out.weight); "
                              f"first keys: {list(state)[:SHOW_KEYS]}")
    conv_in = state["conv_in.weight"]
    ch, in_channels = int(conv_in.shape[0]), int(conv_in.shape[1])
    levels = sorted({int(m.group(1)) for k in state if (m := re.match(r"down\.(\d+)\.", k))})
    if not levels or levels != list(range(len(levels))):
        raise CheckpointError(f"{path}: cannot find the levels down.0, down.1, ... of a DDPM U-Net "
                              f"(found {levels}); first keys: {list(state)[:SHOW_KEYS]}")
    ch_mult = []
    for i in levels:
        width = state.get(f"down.{i}.block.0.conv1.weight")
        if width is None or int(width.shape[0]) % ch:
            raise CheckpointError(f"{path}: down.{i}.block.0.conv1.weight is missing or not a multiple of ch={ch}")
        ch_mult.append(int(width.shape[0]) // ch)
    num_res_blocks = len({k.split(".")[3] for k in state if k.startswith("down.0.block.")})
    attn_levels = sorted({i for i in levels if any(k.startswith(f"down.{i}.attn.") for k in state)})
    if resolution is None:
        resolution = 16 * 2 ** attn_levels[0] if attn_levels else 32
        if resolution % 2 ** (len(levels) - 1):
            raise CheckpointError(f"{path}: cannot infer the image resolution of a {len(levels)}-level U-Net with "
                                  f"attention on levels {attn_levels}; pass model_config={{'resolution': N}}")
    resolution = int(resolution)
    return {
        "in_channels": in_channels, "out_ch": int(state["conv_out.weight"].shape[0]), "ch": ch, "ch_mult": ch_mult,
        "num_res_blocks": num_res_blocks, "attn_resolutions": [resolution // 2**i for i in attn_levels],
        "dropout": 0.1, "resolution": resolution,
        "resamp_with_conv": len(levels) == 1 or "down.0.downsample.conv.weight" in state,
    }


def plain(value: Any) -> Any:
    """Builtins only (tuples as lists), so configs and hyper-parameters save with weights_only=True."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def build_unet(state: Mapping[str, torch.Tensor], config: Mapping[str, Any], path: Path) -> UNet:
    """UNet(**config) holding `state`, in eval mode; a mismatch is one line listing what does not fit."""
    unknown = sorted(set(config) - set(UNET_ARGS))
    if unknown:
        raise CheckpointError(f"{path}: model config has keys the UNet does not take: {unknown}")
    try:
        model = UNet(**config)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} in the file vs {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        def show(items: list[str]) -> str:
            more = f", ... ({len(items) - SHOW_KEYS} more)" if len(items) > SHOW_KEYS else ""
            return "[" + ", ".join(items[:SHOW_KEYS]) + more + "]"

        raise CheckpointMismatchError(
            f"{path}: the weights do not fit UNet({_describe(config)}): {len(missing)} missing keys {show(missing)}; "
            f"{len(unexpected)} unexpected keys {show(unexpected)}; {len(shapes)} shape mismatches {show(shapes)}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _describe(config: Mapping[str, Any]) -> str:
    """The architecture keys of `config` as "k=v, ...", for error messages."""
    keys = ("in_channels", "out_ch", "ch", "ch_mult", "num_res_blocks", "attn_resolutions", "resolution")
    return ", ".join(f"{k}={config[k]}" for k in keys if k in config)
