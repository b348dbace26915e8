"""What one cell of the S × η grid is: its settings, the key that says when it is finished, and its work folders."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddim.utils.noise import NOISE_VERSION

from .generate import SamplerSettings


@dataclass
class CellPlan:
    """Everything a worker process needs to do its share of a cell; plain values, so it pickles."""

    ckpt: str
    settings: SamplerSettings
    out_dir: str
    dataset: dict[str, Any]
    extractor: str
    num_samples: int
    batch_size: int
    seed: int = 0
    ema: bool = True
    trust_pickle: bool = False
    weights: str | None = None
    recon_samples: int = 0
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    save_samples: bool = False
    bf16: bool = False
    compile: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False
    accelerator: str = "auto"
    devices: int = 1
    cache_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def image_key(self) -> dict[str, Any]:
        """What decides image i (and its features): cells sharing it can share and extend each other's work. The
        noise generator's version is part of it, so batches cached under an older generator are never mixed in;
        bf16 changes images beyond rounding, the other speed options (compile, channels_last, CUDA graphs) do not."""
        return {
            "ckpt": str(Path(self.ckpt).resolve()), "ckpt_stamp": file_stamp(self.ckpt), "ema": self.ema,
            "steps": self.settings.steps,
            "eta": self.settings.eta, "skip": self.settings.skip, "clip_denoised": self.settings.clip_denoised,
            "seed": self.seed, "extractor": self.extractor, "save_samples": self.save_samples,
            "noise": NOISE_VERSION, "bf16": self.bf16,
            # only when not ddim, so the keys (and cached work) of cells from before methods existed still hold
            **({"method": self.settings.method} if self.settings.method != "ddim" else {}),
        }

    def work_dir(self, kind: str) -> Path:
        """Where finished batches of `kind` ("features", "reconstruction") go, named by what produced them."""
        digest = hashlib.sha1(json.dumps(self.image_key, sort_keys=True, default=str).encode()).hexdigest()[:10]
        return Path(self.out_dir) / f"{kind}-{digest}"

    @property
    def key(self) -> dict[str, Any]:
        """What identifies a finished cell: rerunning with the same key skips it."""
        return {**self.image_key, "num_samples": self.num_samples, "recon_samples": self.recon_samples,
                "dataset": self.dataset.get("name")}


def file_stamp(path: str | Path) -> str:
    """Size and modification time of a file (or of a folder's files): a retrained checkpoint at the same path
    is another model, and its cells must not count as finished."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return ";".join(f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files if p.exists())


__all__ = ["CellPlan", "file_stamp"]
