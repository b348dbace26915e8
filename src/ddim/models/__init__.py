"""The DDPM U-Net and loading of published weights and checkpoints into it."""

from .checkpoints import (
    DEFAULT_SCHEDULE,
    KNOWN_WEIGHTS,
    CheckpointError,
    CheckpointMismatchError,
    check_torch_file,
    is_hub_uri,
    LoadedCheckpoint,
    PretrainedSpec,
    UnsafeCheckpointError,
    load_pretrained,
    read_checkpoint,
    read_hyper_parameters,
    resolve_hub,
    resolve_pretrained,
    safetensors_metadata,
)
from .unet import UNet, count_parameters

__all__ = [
    "DEFAULT_SCHEDULE", "KNOWN_WEIGHTS", "CheckpointError", "CheckpointMismatchError", "LoadedCheckpoint",
    "PretrainedSpec", "UNet", "UnsafeCheckpointError", "check_torch_file", "count_parameters", "load_pretrained", "read_checkpoint",
    "is_hub_uri", "read_hyper_parameters", "resolve_hub", "resolve_pretrained", "safetensors_metadata",
]
