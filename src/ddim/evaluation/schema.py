"""Typed schemas for the evaluation config groups, registered in Hydra's ConfigStore: a value of the wrong type
(`eval.num_samples=lots`) or an unknown key is refused when the config is composed, before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class SamplerSchema:
    steps: int = 50
    eta: Any = 0.0  # a number >= 0 or "sigma_hat": checked by SamplerSettings
    skip: str = "uniform"
    clip_denoised: Optional[bool] = None
    method: str = "ddim"  # checked by SamplerSettings against ddim.diffusion.METHODS


@dataclass
class EvalSchema:
    num_samples: int = 1000
    batch_size: int = 250
    recon_samples: int = 500
    recon_only_eta0: bool = True
    save_samples: bool = False
    figures: bool = True
    figure_rows: int = 8
    bf16: bool = False
    compile: bool = False
    channels_last: bool = False
    cuda_graphs: bool = False


@dataclass
class FidSchema:
    extractor: str = "auto"
    weights: Optional[str] = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    cache_dir: Optional[str] = None


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(group="sampler", name="schema", node=SamplerSchema)
    store.store(group="eval", name="schema", node=EvalSchema)
    store.store(group="fid", name="schema", node=FidSchema)


register_schemas()
