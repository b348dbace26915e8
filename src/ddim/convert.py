"""Convert any checkpoint `ddim.models.read_checkpoint` reads into this project's checkpoint format.

    python -m ddim.convert SRC DST [--no-ema] [--trust-pickle] [--resolution N]

SRC is a file or folder, or hf://ORG/REPO[@REVISION]: a diffusers UNet2DModel on the Hugging Face Hub.
A DST ending in .safetensors holds the selected weights (EMA unless --no-ema) under our names, with the metadata
"model" (the UNet arguments) and "schedule" as JSON, "source" and "converted_from": no pickle at all. Any other DST is
{"state_dict": {"model.<k>", "ema.module.<k>", "ema.n_averaged"}, "hyper_parameters": {"model", "schedule",
"converted_from", "source"}}, loadable with torch.load(weights_only=True); the selected weights fill both the raw and
the EMA slot, with n_averaged = 0: a file holds one set of weights, so sampling it with or without ema gives the same
model, and an AveragedModel that resumes from it starts from those weights. Either is written beside DST and renamed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ddim.models import DEFAULT_SCHEDULE, read_checkpoint, safetensors_metadata
from ddim.utils import atomic_path, atomic_torch_save


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, ema: bool = True, trust_pickle: bool = False,
                       model_config: Mapping[str, Any] | None = None) -> Path:
    """Reads `src` (any supported format) and writes it atomically to `dst` in this project's format (safetensors
    when dst ends in .safetensors)."""
    loaded = read_checkpoint(src, ema=ema, trust_pickle=trust_pickle, model_config=model_config)
    weights = {k: v.detach().clone().contiguous() for k, v in loaded.model.state_dict().items()}
    hyper_parameters = {
        "model": dict(loaded.model_config),
        "schedule": dict(loaded.schedule or DEFAULT_SCHEDULE),
        "converted_from": str(src),
        "source": loaded.source,
    }
    dst = Path(dst).expanduser()
    # written beside dst, then renamed: a crash never leaves a half-written checkpoint under the final name
    if dst.suffix == ".safetensors":
        from safetensors.torch import save_file

        with atomic_path(dst) as tmp:
            save_file(weights, str(tmp), metadata=safetensors_metadata(hyper_parameters))
        return dst
    state_dict: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in weights.items()}
    # the same tensors under both names would be saved once and shared on load; keep them independent
    state_dict.update({f"ema.module.{k}": v.clone() for k, v in weights.items()})
    state_dict["ema.n_averaged"] = torch.tensor(0, dtype=torch.long)
    return atomic_torch_save({"state_dict": state_dict, "hyper_parameters": hyper_parameters}, dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddim.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="a state dict, this project's checkpoint, the official DDIM list, "
                                    "a diffusers folder, or hf://ORG/REPO")
    parser.add_argument("dst", help="where to write the converted checkpoint (safetensors if it ends in .safetensors)")
    parser.add_argument("--no-ema", action="store_true", help="take the raw weights where the file also has EMA ones")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow full unpickling (it can run code): only for files you trust")
    parser.add_argument("--resolution", type=int, default=None,
                        help="image resolution, for files that do not say it (bare state dicts, official lists)")
    args = parser.parse_args(argv)
    model_config = {"resolution": args.resolution} if args.resolution else None
    try:
        dst = convert_checkpoint(args.src, args.dst, ema=not args.no_ema, trust_pickle=args.trust_pickle,
                                 model_config=model_config)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a failed download of hf://..., a full disk: not bad input, and nothing half-written
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
