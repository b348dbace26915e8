"""Format (a): a bare state dict with our parameter names, as in the reference ports of Ho et al.'s weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .build import LoadedCheckpoint, build_unet, infer_unet_config
from .safe_load import CheckpointError, strip_prefix, tensor_dict


def read_reference_state_dict(path: Path, obj: Mapping, overrides: dict[str, Any]) -> LoadedCheckpoint:
    """Format (a): the tensors as they are (less a DataParallel prefix), the architecture inferred from shapes."""
    state = strip_prefix(tensor_dict(obj, path, "the file"), "module.")
    if any(k.startswith(("down_blocks.", "mid_block.", "time_embedding.")) for k in state):
        raise CheckpointError(f"{path}: diffusers UNet2DModel weights without their config.json; pass the folder "
                              f"holding config.json and {path.name}")
    config = {**infer_unet_config(state, path, overrides.get("resolution")), **overrides}
    model = build_unet(state, config, path)
    return LoadedCheckpoint(model, dict(model.config), "state_dict", None, {})
