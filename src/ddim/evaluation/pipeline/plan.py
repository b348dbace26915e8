"""What one cell of the S × η grid is: the options it runs with (the config groups' own dataclasses), the key that
says when it is finished, and its work folders."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddim.sampling import SamplerSettings
from ddim.utils.noise import NOISE_VERSION

from .options import EvalOptions, FabricOptions, FidOptions


@dataclass
class CellPlan:
    """Everything a worker process needs to do its share of a cell; plain values, so it pickles. `extractor` is the
    resolved fid.extractor and `recon_samples` the number of test images this cell reconstructs (0 where η ≠ 0 with
    eval.recon_only_eta0, or the method has no encoder)."""

    ckpt: str
    out_dir: str
    dataset: dict[str, Any]
    extractor: str
    sampler: SamplerSettings
    eval: EvalOptions = field(default_factory=EvalOptions)
    fid: FidOptions = field(default_factory=FidOptions)
    fabric: FabricOptions = field(default_factory=FabricOptions)
    seed: int = 0
    ema: bool = True
    trust_pickle: bool = False
    recon_samples: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CellPlan:
        """The inverse of dataclasses.asdict (what a spawned worker receives)."""
        nested = {"sampler": SamplerSettings, "eval": EvalOptions, "fid": FidOptions, "fabric": FabricOptions}
        return cls(**{k: nested[k](**v) if k in nested and isinstance(v, dict) else v for k, v in values.items()})

    def replace(self, **changes: Any) -> CellPlan:
        return dataclasses.replace(self, **changes)

    @property
    def image_key(self) -> dict[str, Any]:
        """What decides image i (and its features): cells sharing it can share and extend each other's work. The
        noise generator's version is part of it, so batches cached under an older generator are never mixed in;
        bf16 changes images beyond rounding, the other speed options (compile, channels_last, CUDA graphs) do not."""
        return {
            "ckpt": str(Path(self.ckpt).resolve()), "ckpt_stamp": file_stamp(self.ckpt), "ema": self.ema,
            "steps": self.sampler.steps,
            "eta": self.sampler.eta, "skip": self.sampler.skip, "clip_denoised": self.sampler.clip_denoised,
            "seed": self.seed, "extractor": self.extractor, "save_samples": self.eval.save_samples,
            "noise": NOISE_VERSION, "bf16": self.eval.bf16,
            # only when not ddim, so the keys (and cached work) of cells from before methods existed still hold
            **({"method": self.sampler.method} if self.sampler.method != "ddim" else {}),
            **({"recompute_eps": False} if not self.sampler.recompute_eps else {}),
            **({"threshold": [self.sampler.threshold, self.sampler.threshold_max]}
               if self.sampler.threshold is not None else {}),
            # a given or searched τ is not named by (steps, skip): the indices themselves decide the images
            **({"timesteps": self.sampler.given_timesteps} if self.sampler.given_timesteps else {}),
            # the Inception Score's logits are stored beside the features: batches without them cannot serve it
            **({"logits": True} if self.fid.wants("isc") else {}),
        }

    def work_dir(self, kind: str) -> Path:
        """Where finished batches of `kind` ("features", "reconstruction") go, named by what produced them."""
        digest = hashlib.sha1(json.dumps(self.image_key, sort_keys=True, default=str).encode()).hexdigest()[:10]
        return Path(self.out_dir) / f"{kind}-{digest}"

    @property
    def key(self) -> dict[str, Any]:
        """What identifies a finished cell: rerunning with the same key skips it."""
        return {**self.image_key, "num_samples": self.eval.num_samples, "recon_samples": self.recon_samples,
                "dataset": self.dataset.get("name"),
                # only when asked for, so cells scored before intervals existed keep their keys
                **({"bootstrap": self.fid.bootstrap} if self.fid.bootstrap else {}),
                **({"extrapolate_sizes": self.fid.extrapolate_sizes} if self.fid.extrapolate else {}),
                **self._metrics_key}

    @property
    def _metrics_key(self) -> dict[str, Any]:
        """The scoring options that change metrics.json, each only when it differs from what cells scored before
        they existed did (the FD against the training set, with KID): a cell asked for more is scored again, from
        its stored features."""
        key: dict[str, Any] = {}
        if sorted(self.fid.metrics) != ["fid", "kid"]:
            key["metrics"] = sorted(self.fid.metrics)
        if self.fid.wants("isc"):
            key["isc_splits"] = self.fid.isc_splits
        if self.fid.wants("prc"):
            key["prc_neighborhood"] = self.fid.prc_neighborhood
        if self.fid.reference:
            key["reference"] = str(Path(self.fid.reference).expanduser().resolve())
            key["reference_stamp"] = file_stamp(Path(self.fid.reference).expanduser())
        return key


def file_stamp(path: str | Path) -> str:
    """Size and modification time of a file (or of a folder's files): a retrained checkpoint at the same path
    is another model, and its cells must not count as finished."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return ";".join(f"{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files if p.exists())


__all__ = ["CellPlan", "file_stamp"]
