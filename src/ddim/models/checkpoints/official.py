"""Format (c): the official DDIM training checkpoint, a list [model_state, optimizer_state, epoch, step, ema_state]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .build import LoadedCheckpoint, build_unet, infer_unet_config
from .safe_load import CheckpointError, strip_prefix, tensor_dict


def read_official(path: Path, obj: list | tuple, ema: bool, overrides: dict[str, Any]) -> LoadedCheckpoint:
    """Format (c): entry 4 (EMA) or entry 0 (raw) of the list, the architecture inferred from shapes."""
    # [model_state, optimizer_state, epoch, step(, ema_state)]: ema_state is only there when training used EMA
    if len(obj) < 4:
        raise CheckpointError(f"{path}: a list of {len(obj)} entries; the official DDIM checkpoint is "
                              f"[model_state, optimizer_state, epoch, step, ema_state]")
    if ema and len(obj) < 5:
        raise CheckpointError(f"{path}: this official DDIM checkpoint has no EMA state (a list of {len(obj)} entries, "
                              f"EMA would be entry 4); pass ema=False (--no-ema) for the raw weights")
    index = 4 if ema else 0
    # model_state has DataParallel's "module." prefix; the EMAHelper's shadow dict usually does not
    state = strip_prefix(tensor_dict(obj[index], path, f"entry {index}"), "module.")
    config = {**infer_unet_config(state, path, overrides.get("resolution")), **overrides}
    extra = {k: obj[i] for i, k in ((2, "epoch"), (3, "step")) if isinstance(obj[i], (int, float))}
    model = build_unet(state, config, path)
    return LoadedCheckpoint(model, dict(model.config), "official_ddim", None, extra)
