"""Format (d): a diffusers UNet2DModel folder in the DDPM layout, mapped by DIFFUSERS_KEY_TABLE (diffusers itself is
never imported)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .build import LoadedCheckpoint, build_unet, plain
from .safe_load import SHOW_KEYS, CheckpointError, CheckpointMismatchError, load_checkpoint_file, tensor_dict


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


# diffusers' prediction_type -> ours (UNet's `prediction`)
DIFFUSERS_PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}


def _scheduler_config(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The scheduler_config.json next to (or in ../scheduler of) the model, and what it holds, if there is one."""
    for candidate in (folder / "scheduler_config.json", folder.parent / "scheduler" / "scheduler_config.json"):
        if candidate.is_file():
            return candidate, json.loads(candidate.read_text())
    return None


def _diffusers_schedule(folder: Path) -> dict[str, Any] | None:
    """The linear β schedule of the model's scheduler_config.json, if it has one."""
    found = _scheduler_config(folder)
    sched = found[1] if found else {}
    if sched.get("beta_schedule") == "linear" and sched.get("trained_betas") is None:
        return {"name": "linear", "T": int(sched.get("num_train_timesteps", 1000)),
                "beta_start": float(sched.get("beta_start", 1e-4)), "beta_end": float(sched.get("beta_end", 0.02))}
    return None


def _diffusers_prediction(folder: Path) -> str:
    """What the network predicts, from its scheduler_config.json's prediction_type (ε where nothing says)."""
    found = _scheduler_config(folder)
    if found is None:
        return "eps"
    path, sched = found
    value = sched.get("prediction_type", "epsilon")
    if value not in DIFFUSERS_PREDICTIONS:
        raise CheckpointError(f"{path}: prediction_type={value!r}; expected one of {', '.join(DIFFUSERS_PREDICTIONS)}")
    return DIFFUSERS_PREDICTIONS[value]


def read_diffusers_folder(folder: Path, overrides: dict[str, Any]) -> LoadedCheckpoint:
    """Format (d): config.json mapped onto UNet kwargs, the weights renamed by DIFFUSERS_KEY_TABLE."""
    # a whole pipeline folder (model_index.json) keeps its UNet in unet/
    if not (folder / "config.json").is_file() and (folder / "unet" / "config.json").is_file():
        folder = folder / "unet"
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: a folder without config.json; expected a diffusers UNet2DModel folder")
    raw = json.loads(config_path.read_text())
    config = {**unet_config_from_diffusers(raw, str(config_path), overrides.get("resolution")),
              **({} if "prediction" in overrides else {"prediction": _diffusers_prediction(folder)}), **overrides}
    if (folder / "diffusion_pytorch_model.safetensors").is_file():
        from safetensors.torch import load_file

        weights = load_file(str(folder / "diffusion_pytorch_model.safetensors"), device="cpu")
    elif (folder / "diffusion_pytorch_model.bin").is_file():
        weights = load_checkpoint_file(folder / "diffusion_pytorch_model.bin", trust_pickle=False)
    else:
        raise CheckpointError(f"{folder}: no diffusion_pytorch_model.safetensors or .bin next to config.json "
                              f"(found {sorted(p.name for p in folder.iterdir())})")
    weights = tensor_dict(weights, folder, "diffusion_pytorch_model")
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
    model = build_unet(state, config, folder)
    extra = {"diffusers_config": plain(raw)}
    return LoadedCheckpoint(model, dict(model.config), "diffusers", _diffusers_schedule(folder), extra)
