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
                       `DIFFUSERS_KEY_TABLE`; diffusers itself is never imported.

Files are read with ``torch.load(weights_only=True)``, so loading never runs pickled code; a file that needs full
unpickling is refused unless the caller passes ``trust_pickle=True`` (only for files one trusts).

Architecture hyper-parameters come from the file when it has them (our hyper_parameters, diffusers' config.json),
otherwise from tensor shapes: ch from conv_in, ch_mult from the blocks' channels, num_res_blocks from the block count,
attention levels from the attention keys, in/out channels from conv_in/conv_out. The image resolution is not in the
shapes: `model_config["resolution"]` if given, else the resolution at which the first attention level is 16x16, as in
every published DDPM/DDIM model (CIFAR-10 32, CelebA 64, LSUN 256), else 32.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .unet import UNet

DEFAULT_SCHEDULE: dict[str, Any] = {"name": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02}
DEFAULT_WEIGHTS_ROOT = Path("~/.cache/ddim/weights")
WEIGHTS_ROOT_ENV = "DDIM_WEIGHTS"
UNET_ARGS = tuple(p for p in inspect.signature(UNet.__init__).parameters if p != "self")
SHOW_KEYS = 10


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as a DDPM U-Net (ValueError, so entry points print it as one line)."""


class CheckpointMismatchError(CheckpointError):
    """The weights do not fit the architecture: lists missing / unexpected keys and shape mismatches."""


class UnsafeCheckpointError(CheckpointError):
    """The file needs full unpickling (it may run code) and trust_pickle was not given."""


@dataclass
class LoadedCheckpoint:
    """A model in eval mode and what its file says about itself."""

    model: UNet
    model_config: dict[str, Any]  # the model's full UNet kwargs (model.config)
    source: str  # "state_dict" | "lightning" | "official_ddim" | "diffusers"
    schedule: dict[str, Any] | None  # e.g. DEFAULT_SCHEDULE, when the file says
    extra: dict[str, Any] = field(default_factory=dict)  # lightning: its hyper_parameters


# ---------------------------------------------------------------------------------------------------------------------
# entry points


def read_checkpoint(path: str | os.PathLike, ema: bool = True, trust_pickle: bool = False,
                    model_config: Mapping[str, Any] | None = None) -> LoadedCheckpoint:
    """Reads any format of the module docstring; `ema` picks the EMA weights where the file has both; `model_config`
    overrides (or completes) the architecture the file states or implies."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint file or folder")
    overrides = dict(model_config or {})
    if path.is_dir():
        return _read_diffusers(path, overrides)
    if path.name.startswith("diffusion_pytorch_model") and (path.parent / "config.json").is_file():
        return _read_diffusers(path.parent, overrides)
    obj = _load_file(path, trust_pickle)
    if isinstance(obj, (list, tuple)):
        return _read_official(path, obj, ema, overrides)
    if isinstance(obj, Mapping) and "state_dict" in obj:
        return _read_lightning(path, obj, ema, overrides)
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if any(str(k).startswith("ema.module.") for k in obj) or all(str(k).startswith("model.") for k in obj):
            # our LightningModule's own state_dict(), saved without the Lightning wrapper
            return _read_lightning(path, {"state_dict": obj}, ema, overrides)
        return _read_state_dict(path, obj, overrides)
    kind = f"a dict with keys {list(obj)[:SHOW_KEYS]}" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
    raise CheckpointError(f"{path}: not a checkpoint this loader knows (a state dict, this project's checkpoint, the "
                          f"official DDIM list or a diffusers folder); it holds {kind}")


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
        raise CheckpointError(f"{path}: truncated or corrupt torch file ({_first_line(error)})") from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    return hparams if isinstance(hparams, dict) else None


def load_pretrained(path: str | os.PathLike, ema: bool = True, trust_pickle: bool = False,
                    model_config: Mapping[str, Any] | None = None) -> UNet:
    """The UNet of `read_checkpoint(...)`, in eval mode."""
    return read_checkpoint(path, ema=ema, trust_pickle=trust_pickle, model_config=model_config).model


# ---------------------------------------------------------------------------------------------------------------------
# reading files


def _load_file(path: Path, trust_pickle: bool) -> Any:
    """The object in a torch or safetensors file, never running pickled code unless trust_pickle."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
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
                              f"({type(error).__name__}: {_first_line(error)})") from None


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


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _tensors(obj: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    """`obj` as a {name: tensor} dict, or one clear error saying which part of the file is not one."""
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: {what} is not a state dict of tensors (got {type(obj).__name__})")
    return {str(k): v for k, v in obj.items()}


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drops `prefix` (e.g. DataParallel's "module.") when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _read_state_dict(path: Path, obj: Mapping, overrides: dict[str, Any]) -> LoadedCheckpoint:
    state = _strip_prefix(_tensors(obj, path, "the file"), "module.")
    if any(k.startswith(("down_blocks.", "mid_block.", "time_embedding.")) for k in state):
        raise CheckpointError(f"{path}: diffusers UNet2DModel weights without their config.json; pass the folder "
                              f"holding config.json and {path.name}")
    config = {**infer_unet_config(state, path, overrides.get("resolution")), **overrides}
    model = _build(state, config, path)
    return LoadedCheckpoint(model, dict(model.config), "state_dict", None, {})


def _read_lightning(path: Path, obj: Mapping, ema: bool, overrides: dict[str, Any]) -> LoadedCheckpoint:
    full = _tensors(obj["state_dict"], path, "state_dict")
    prefix = "ema.module." if ema else "model."
    state = {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}
    if not state:
        hint = "; pass ema=False (--no-ema) for the raw weights" if ema else ""
        raise CheckpointError(f"{path}: state_dict has no '{prefix}*' weights{hint}")
    hparams = _plain(dict(obj.get("hyper_parameters") or {}))
    if isinstance(hparams.get("model"), Mapping):
        config = {**hparams["model"], **overrides}
    else:
        config = {**infer_unet_config(state, path, overrides.get("resolution")), **overrides}
    schedule = hparams.get("schedule") if isinstance(hparams.get("schedule"), Mapping) else None
    model = _build(state, config, path)
    return LoadedCheckpoint(model, dict(model.config), "lightning", schedule, hparams)


def _read_official(path: Path, obj: list | tuple, ema: bool, overrides: dict[str, Any]) -> LoadedCheckpoint:
    # [model_state, optimizer_state, epoch, step(, ema_state)]: ema_state is only there when training used EMA
    if len(obj) < 4:
        raise CheckpointError(f"{path}: a list of {len(obj)} entries; the official DDIM checkpoint is "
                              f"[model_state, optimizer_state, epoch, step, ema_state]")
    if ema and len(obj) < 5:
        raise CheckpointError(f"{path}: this official DDIM checkpoint has no EMA state (a list of {len(obj)} entries, "
                              f"EMA would be entry 4); pass ema=False (--no-ema) for the raw weights")
    index = 4 if ema else 0
    # model_state has DataParallel's "module." prefix; the EMAHelper's shadow dict usually does not
    state = _strip_prefix(_tensors(obj[index], path, f"entry {index}"), "module.")
    config = {**infer_unet_config(state, path, overrides.get("resolution")), **overrides}
    extra = {k: obj[i] for i, k in ((2, "epoch"), (3, "step")) if isinstance(obj[i], (int, float))}
    model = _build(state, config, path)
    return LoadedCheckpoint(model, dict(model.config), "official_ddim", None, extra)


# ---------------------------------------------------------------------------------------------------------------------
# architecture from shapes, and building with a clear report


def infer_unet_config(state: Mapping[str, torch.Tensor], path: Path | str = "state dict",
                      resolution: int | None = None) -> dict[str, Any]:
    """UNet kwargs implied by a state dict with our names (see the module docstring for what is inferred how)."""
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


def _plain(value: Any) -> Any:
    """Builtins only (tuples as lists), so configs and hyper-parameters save with weights_only=True."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(state: Mapping[str, torch.Tensor], config: Mapping[str, Any], path: Path) -> UNet:
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
    keys = ("in_channels", "out_ch", "ch", "ch_mult", "num_res_blocks", "attn_resolutions", "resolution")
    return ", ".join(f"{k}={config[k]}" for k in keys if k in config)


# ---------------------------------------------------------------------------------------------------------------------
# diffusers UNet2DModel (DDPM layout)

DIFFUSERS_KEY_TABLE = """
diffusers UNet2DModel name (L levels)            ->  our name
time_embedding.linear_1                          ->  temb.dense.0
time_embedding.linear_2                          ->  temb.dense.1
conv_in                                          ->  conv_in
down_blocks.{i}.resnets.{j}.<resnet part>        ->  down.{i}.block.{j}.<part>
down_blocks.{i}.attentions.{j}.<attention part>  ->  down.{i}.attn.{j}.<part>
down_blocks.{i}.downsamplers.0.conv              ->  down.{i}.downsample.conv
mid_block.resnets.0 / mid_block.resnets.1        ->  mid.block_1 / mid.block_2
mid_block.attentions.0                           ->  mid.attn_1
up_blocks.{k}.resnets.{j}                        ->  up.{L-1-k}.block.{j}   (diffusers stores the deepest level first)
up_blocks.{k}.attentions.{j}                     ->  up.{L-1-k}.attn.{j}
up_blocks.{k}.upsamplers.0.conv                  ->  up.{L-1-k}.upsample.conv
conv_norm_out                                    ->  norm_out
conv_out                                         ->  conv_out
resnet parts:    norm1, conv1, norm2, conv2 -> same; time_emb_proj -> temb_proj; conv_shortcut (1x1) -> nin_shortcut
attention parts: group_norm -> norm; to_q | query -> q; to_k | key -> k; to_v | value -> v;
                 to_out.0 | proj_attn -> proj_out   (Linear [C, C] weights become 1x1-conv [C, C, 1, 1] weights;
                 query/key/value/proj_attn are the names of files older than diffusers' Attention class)
"""

RESNET_PARTS = {"norm1": "norm1", "conv1": "conv1", "time_emb_proj": "temb_proj", "norm2": "norm2",
                "conv2": "conv2", "conv_shortcut": "nin_shortcut"}
ATTENTION_PARTS = {"group_norm": "norm", "to_q": "q", "query": "q", "to_k": "k", "key": "k", "to_v": "v",
                   "value": "v", "to_out.0": "proj_out", "proj_attn": "proj_out"}
_PART = r"(?P<part>.+)\.(?P<param>weight|bias)"
_SCOPES = (
    (re.compile(r"time_embedding\.linear_(?P<n>[12])\.(?P<param>weight|bias)"), "temb"),
    (re.compile(r"(?P<name>conv_in|conv_out|conv_norm_out)\.(?P<param>weight|bias)"), "top"),
    (re.compile(r"(?P<dir>down|up)_blocks\.(?P<i>\d+)\.resnets\.(?P<j>\d+)\." + _PART), "block"),
    (re.compile(r"(?P<dir>down|up)_blocks\.(?P<i>\d+)\.attentions\.(?P<j>\d+)\." + _PART), "attn"),
    (re.compile(r"(?P<dir>down|up)_blocks\.(?P<i>\d+)\.(?:downsamplers|upsamplers)\.0\.conv\.(?P<param>weight|bias)"),
     "resample"),
    (re.compile(r"mid_block\.resnets\.(?P<j>[01])\." + _PART), "mid_block"),
    (re.compile(r"mid_block\.attentions\.0\." + _PART), "mid_attn"),
)


def diffusers_key_to_ours(key: str, num_levels: int) -> str | None:
    """Our name for a diffusers UNet2DModel parameter (DIFFUSERS_KEY_TABLE), or None if it has no counterpart."""
    for pattern, scope in _SCOPES:
        m = pattern.fullmatch(key)
        if m is None:
            continue
        g = m.groupdict()
        param = g["param"]
        if scope == "temb":
            return f"temb.dense.{int(g['n']) - 1}.{param}"
        if scope == "top":
            return f"{'norm_out' if g['name'] == 'conv_norm_out' else g['name']}.{param}"
        if scope == "mid_block":
            part = RESNET_PARTS.get(g["part"])
            return f"mid.block_{int(g['j']) + 1}.{part}.{param}" if part else None
        if scope == "mid_attn":
            part = ATTENTION_PARTS.get(g["part"])
            return f"mid.attn_1.{part}.{param}" if part else None
        level = int(g["i"]) if g["dir"] == "down" else num_levels - 1 - int(g["i"])
        if scope == "resample":
            return f"{g['dir']}.{level}.{'downsample' if g['dir'] == 'down' else 'upsample'}.conv.{param}"
        parts = RESNET_PARTS if scope == "block" else ATTENTION_PARTS
        part = parts.get(g["part"])
        return f"{g['dir']}.{level}.{scope}.{g['j']}.{part}.{param}" if part else None
    return None


# UNet2DModel's own defaults (diffusers 0.42), which apply to fields a config.json leaves out
_DIFFUSERS_DEFAULTS: dict[str, Any] = {
    "sample_size": None, "in_channels": 3, "out_channels": 3, "center_input_sample": False,
    "time_embedding_type": "positional", "time_embedding_dim": None, "freq_shift": 0, "flip_sin_to_cos": True,
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    "mid_block_type": "UNetMidBlock2D",
    "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (224, 448, 672, 896), "layers_per_block": 2, "mid_block_scale_factor": 1,
    "downsample_padding": 1, "downsample_type": "conv", "upsample_type": "conv", "dropout": 0.0, "act_fn": "silu",
    "attention_head_dim": 8, "norm_num_groups": 32, "attn_norm_num_groups": None, "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None, "num_class_embeds": None,
}


def unet_config_from_diffusers(raw: Mapping[str, Any], where: str = "config.json",
                               resolution: int | None = None) -> dict[str, Any]:
    """Our UNet kwargs for a diffusers UNet2DModel config; a config our UNet cannot reproduce exactly raises an error
    naming the field."""
    cfg = {**_DIFFUSERS_DEFAULTS, **{k: v for k, v in raw.items() if not k.startswith("_")}}
    name = raw.get("_class_name", "UNet2DModel")

    def refuse(field_name: str, why: str) -> CheckpointError:
        value = cfg.get(field_name, name)
        return CheckpointError(f"{where}: {field_name}={value!r} cannot map onto the DDPM U-Net: {why}")

    if name != "UNet2DModel":
        raise CheckpointError(f"{where}: _class_name={name!r}; expected a UNet2DModel")
    # (field, the value the DDPM U-Net needs, why)
    required = (
        ("time_embedding_type", "positional", "the DDPM U-Net uses a sinusoidal embedding"),
        ("flip_sin_to_cos", False, "the DDPM embedding is [sin, cos]"),
        ("freq_shift", 1, "the DDPM embedding divides by half_dim - 1"),
        ("center_input_sample", False, "inputs are already in [-1, 1]"),
        ("downsample_padding", 0, "the DDPM downsampling pads one row/column at the bottom/right only"),
        ("downsample_type", "conv", "only conv downsampling maps"),
        ("upsample_type", "conv", "only conv upsampling maps"),
        ("mid_block_type", "UNetMidBlock2D", "the DDPM middle is resnet, attention, resnet"),
        ("add_attention", True, "the DDPM middle has attention"),
        ("mid_block_scale_factor", 1, "the DDPM blocks do not rescale"),
        ("resnet_time_scale_shift", "default", "the DDPM blocks add the time embedding"),
        ("class_embed_type", None, "the DDPM U-Net is unconditional"),
        ("num_class_embeds", None, "the DDPM U-Net is unconditional"),
    )
    for key, want, why in required:
        if cfg[key] != want:
            raise refuse(key, f"expected {want!r}; {why}")
    if str(cfg["act_fn"]) not in ("silu", "swish"):
        raise refuse("act_fn", "the DDPM U-Net uses swish (silu)")
    channels = [int(c) for c in cfg["block_out_channels"]]
    ch = channels[0]
    if any(c % ch for c in channels):
        raise refuse("block_out_channels", f"each must be a multiple of the first ({ch})")
    if cfg["time_embedding_dim"] not in (None, 4 * ch):
        raise refuse("time_embedding_dim", f"the DDPM time embedding has 4 * ch = {4 * ch} channels")
    down, up = list(cfg["down_block_types"]), list(cfg["up_block_types"])
    if len(down) != len(channels) or len(up) != len(channels):
        raise refuse("down_block_types", "need one down and one up block type per entry of block_out_channels")
    for key, types, allowed in (("down_block_types", down, ("DownBlock2D", "AttnDownBlock2D")),
                                ("up_block_types", up, ("UpBlock2D", "AttnUpBlock2D"))):
        if any(t not in allowed for t in types):
            raise refuse(key, f"only {' and '.join(allowed)} map")
    attn_levels = [i for i, t in enumerate(down) if t == "AttnDownBlock2D"]
    up_attn_levels = sorted(len(up) - 1 - k for k, t in enumerate(up) if t == "AttnUpBlock2D")
    if up_attn_levels != attn_levels:
        raise refuse("up_block_types", f"attention on up levels {up_attn_levels} must mirror the down levels "
                                       f"{attn_levels}")
    head_dim = cfg["attention_head_dim"]
    for level_channels in [channels[i] for i in attn_levels] + [channels[-1]]:
        if head_dim is not None and level_channels // int(head_dim) != 1:
            raise refuse("attention_head_dim", f"{level_channels // int(head_dim)} heads at {level_channels} channels; "
                                               f"the DDPM attention is single-head (use null)")
    groups = cfg["norm_num_groups"]
    if groups is None or any(c % int(groups) for c in channels):
        raise refuse("norm_num_groups", "need a group count that divides every block's channels")
    if cfg["attn_norm_num_groups"] not in (None, groups):
        raise refuse("attn_norm_num_groups", f"must be null or equal norm_num_groups={groups}")

    size = cfg["sample_size"] if resolution is None else resolution
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise refuse("sample_size", "the DDPM U-Net is square")
        size = size[0]
    if size is None:
        size = 16 * 2 ** attn_levels[0] if attn_levels else 32
    size = int(size)
    return {
        "in_channels": int(cfg["in_channels"]), "out_ch": int(cfg["out_channels"]), "ch": ch,
        "ch_mult": [c // ch for c in channels], "num_res_blocks": int(cfg["layers_per_block"]),
        "attn_resolutions": [size // 2**i for i in attn_levels], "dropout": float(cfg["dropout"]),
        "resolution": size, "resamp_with_conv": True, "norm_groups": int(groups), "norm_eps": float(cfg["norm_eps"]),
    }


def _diffusers_schedule(folder: Path) -> dict[str, Any] | None:
    """The linear β schedule of a scheduler_config.json next to (or in ../scheduler of) the model, if it has one."""
    for candidate in (folder / "scheduler_config.json", folder.parent / "scheduler" / "scheduler_config.json"):
        if candidate.is_file():
            sched = json.loads(candidate.read_text())
            if sched.get("beta_schedule") == "linear" and sched.get("trained_betas") is None:
                return {"name": "linear", "T": int(sched.get("num_train_timesteps", 1000)),
                        "beta_start": float(sched.get("beta_start", 1e-4)),
                        "beta_end": float(sched.get("beta_end", 0.02))}
            return None
    return None


def _read_diffusers(folder: Path, overrides: dict[str, Any]) -> LoadedCheckpoint:
    # a whole pipeline folder (model_index.json) keeps its UNet in unet/
    if not (folder / "config.json").is_file() and (folder / "unet" / "config.json").is_file():
        folder = folder / "unet"
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: a folder without config.json; expected a diffusers UNet2DModel folder")
    raw = json.loads(config_path.read_text())
    config = {**unet_config_from_diffusers(raw, str(config_path), overrides.get("resolution")), **overrides}
    if (folder / "diffusion_pytorch_model.safetensors").is_file():
        from safetensors.torch import load_file

        weights = load_file(str(folder / "diffusion_pytorch_model.safetensors"), device="cpu")
    elif (folder / "diffusion_pytorch_model.bin").is_file():
        weights = _load_file(folder / "diffusion_pytorch_model.bin", trust_pickle=False)
    else:
        raise CheckpointError(f"{folder}: no diffusion_pytorch_model.safetensors or .bin next to config.json "
                              f"(found {sorted(p.name for p in folder.iterdir())})")
    weights = _tensors(weights, folder, "diffusion_pytorch_model")
    num_levels = len(config["ch_mult"])
    state: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in weights.items():
        ours = diffusers_key_to_ours(key, num_levels)
        if ours is None:
            unmapped.append(key)
            continue
        if ".attn" in ours and value.dim() == 2:
            value = value[:, :, None, None]  # Linear [C, C] -> 1x1 conv [C, C, 1, 1]
        state[ours] = value
    if unmapped:
        raise CheckpointMismatchError(f"{folder}: {len(unmapped)} diffusers weights have no counterpart in the DDPM "
                                      f"U-Net: {unmapped[:SHOW_KEYS]}")
    model = _build(state, config, folder)
    extra = {"diffusers_config": _plain(raw)}
    return LoadedCheckpoint(model, dict(model.config), "diffusers", _diffusers_schedule(folder), extra)


# ---------------------------------------------------------------------------------------------------------------------
# the published weights the paper samples


@dataclass(frozen=True)
class PretrainedSpec:
    """A published DDPM model: which file to put where, where it comes from, and how the paper evaluated it."""

    name: str
    file: str  # relative to the weights root; the EMA weights, which the paper samples
    dataset: str
    resolution: int
    skip: str  # the trajectory of the paper's table for this data set
    model: dict[str, Any]  # UNet kwargs
    source: str  # where to get the file, in words
    url: str | None = None
    md5: str | None = None  # as checked by ermongroup/ddim's functions/ckpt_util.py
    sha256: str | None = None  # only where known for certain
    raw_file: str | None = None  # the non-EMA weights, where they are a separate file
    raw_url: str | None = None
    raw_md5: str | None = None
    diffusers: str | None = None  # the same model as a diffusers UNet2DModel on the Hugging Face hub


def _ddpm_config(ch_mult: tuple[int, ...], resolution: int, dropout: float) -> dict[str, Any]:
    return {"in_channels": 3, "out_ch": 3, "ch": 128, "ch_mult": list(ch_mult), "num_res_blocks": 2,
            "attn_resolutions": [16], "dropout": dropout, "resolution": resolution, "resamp_with_conv": True}


_PESSER = ("the pesser/pytorch_diffusion port of Ho et al.'s TensorFlow checkpoint, the file ermongroup/ddim "
           "downloads for --use_pretrained")

KNOWN_WEIGHTS: dict[str, PretrainedSpec] = {
    "cifar10": PretrainedSpec(
        name="cifar10", file="ema_diffusion_cifar10_model/model-790000.ckpt", dataset="cifar10", resolution=32,
        skip="quad", model=_ddpm_config((1, 2, 2, 2), 32, 0.1), source=_PESSER,
        url="https://heibox.uni-heidelberg.de/f/2e4f01e2d9ee49bab1d5/?dl=1", md5="1fa350b952534ae442b1d5235cce5cd3",
        raw_file="diffusion_cifar10_model/model-790000.ckpt",
        raw_url="https://heibox.uni-heidelberg.de/f/869980b53bf5416c8a28/?dl=1",
        raw_md5="82ed3067fd1002f5cf4c339fb80c4669", diffusers="google/ddpm-cifar10-32"),
    "celeba": PretrainedSpec(
        name="celeba", file="celeba/ckpt.pth", dataset="celeba", resolution=64, skip="uniform",
        model=_ddpm_config((1, 2, 2, 2, 4), 64, 0.1),
        source="the DDIM authors' CelebA 64x64 training checkpoint (a list with the EMA state as entry 4), linked "
               "from the ermongroup/ddim README",
        url="https://drive.google.com/drive/folders/1si6Gn3U2ZrggnfYXOESWVFIwcNbyfh5o"),
    "lsun_church": PretrainedSpec(
        name="lsun_church", file="ema_diffusion_lsun_church_model/model-4432000.ckpt", dataset="lsun_church",
        resolution=256, skip="uniform", model=_ddpm_config((1, 1, 2, 2, 4, 4), 256, 0.0), source=_PESSER,
        url="https://heibox.uni-heidelberg.de/f/44ccb50ef3c6436db52e/?dl=1", md5="fdc68a23938c2397caba4a260bc2445f",
        raw_file="diffusion_lsun_church_model/model-4432000.ckpt",
        raw_url="https://heibox.uni-heidelberg.de/f/2711a6f712e34b06b9d8/?dl=1",
        raw_md5="eb619b8a5ab95ef80f94ce8a5488dae3", diffusers="google/ddpm-church-256"),
    "lsun_bedroom": PretrainedSpec(
        name="lsun_bedroom", file="ema_diffusion_lsun_bedroom_model/model-2388000.ckpt", dataset="lsun_bedroom",
        resolution=256, skip="uniform", model=_ddpm_config((1, 1, 2, 2, 4, 4), 256, 0.0), source=_PESSER,
        url="https://heibox.uni-heidelberg.de/f/b95206528f384185889b/?dl=1", md5="1921fa46b66a3665e450e42f36c2720f",
        raw_file="diffusion_lsun_bedroom_model/model-2388000.ckpt",
        raw_url="https://heibox.uni-heidelberg.de/f/f179d4f21ebc4d43bbfe/?dl=1",
        raw_md5="f70280ac0e08b8e696f42cb8e948ff1c", diffusers="google/ddpm-bedroom-256"),
}


def weights_root(root: str | os.PathLike | None = None) -> Path:
    """`root`, else $DDIM_WEIGHTS, else ~/.cache/ddim/weights."""
    return Path(root or os.environ.get(WEIGHTS_ROOT_ENV) or DEFAULT_WEIGHTS_ROOT).expanduser()


@functools.lru_cache(maxsize=32)
def _file_digest(path: str, algorithm: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so that a replaced file is hashed again
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, algorithm: str, expected: str | None, url: str | None) -> None:
    if not expected:
        return
    stat = path.stat()
    got = _file_digest(str(path), algorithm, stat.st_size, stat.st_mtime_ns)
    if got != expected:
        raise ValueError(f"{path}: {algorithm} {got} does not match the published {expected}; the file is damaged or "
                         f"not these weights: download it again from {url}")


def resolve_pretrained(name: str, root: str | os.PathLike | None = None, ema: bool = True) -> Path:
    """The local file (or diffusers folder) of the published model `name`, its checksum verified where known; a
    missing file is a FileNotFoundError whose one line says which file to put where and where to get it."""
    spec = KNOWN_WEIGHTS.get(name)
    if spec is None:
        raise ValueError(f"pretrained={name!r}; expected one of {', '.join(KNOWN_WEIGHTS)}")
    base = weights_root(root)
    use_raw = not ema and spec.raw_file is not None
    file, url = (spec.raw_file, spec.raw_url) if use_raw else (spec.file, spec.url)
    path = base / file
    if path.is_file():
        _verify(path, "sha256", None if use_raw else spec.sha256, url)
        _verify(path, "md5", spec.raw_md5 if use_raw else spec.md5, url)
        return path
    if spec.diffusers and (base / spec.diffusers / "config.json").is_file():
        return base / spec.diffusers
    also = f", or put the diffusers model {spec.diffusers} in {base / spec.diffusers}" if spec.diffusers else ""
    raise FileNotFoundError(f"pretrained={name}: {path} not found; download {file} ({spec.source}) from "
                            f"{url or 'its source'} and save it as {path} (or set ${WEIGHTS_ROOT_ENV} to the folder "
                            f"that holds {file}){also}")


__all__ = [
    "DEFAULT_SCHEDULE", "DIFFUSERS_KEY_TABLE", "check_torch_file", "read_hyper_parameters", "KNOWN_WEIGHTS", "CheckpointError", "CheckpointMismatchError",
    "LoadedCheckpoint", "PretrainedSpec", "UnsafeCheckpointError", "diffusers_key_to_ours", "infer_unet_config",
    "load_pretrained", "read_checkpoint", "resolve_pretrained", "unet_config_from_diffusers", "weights_root",
]
