"""The evaluation options, each declared once: a field of these dataclasses (with its comment) is the option, its
default and its documentation. They are registered in Hydra's ConfigStore as the schemas of the config groups
`sampler` (ddim.sampling.SamplerSettings), `eval`, `fid` and `fabric`, so a value of the wrong type or an unknown key
is refused when the config is composed, and the plan holds the same objects. Adding an option is one field here plus
its use. `python evaluate.py --cfg job` lists them all with their values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore

from ddim.errors import InputError
from ddim.sampling import SamplerSettings


def _positive(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name}={value!r}; expected an integer >= {minimum}")


@dataclass
class EvalOptions:
    """What a cell measures and how fast (`eval.*`)."""

    num_samples: int = 1000  # images sampled and scored (the paper: 50000)
    batch_size: int = 250  # per process; does not change any image (per-sample noise)
    recon_samples: int = 500  # test images encoded then decoded with the cell's S (Table 2); 0 turns it off
    recon_only_eta0: bool = True  # reconstruction does not depend on η: measure it once per S
    save_samples: bool = False  # also write samples.npz (N×H×W×C uint8) for outside tools
    figures: bool = True  # consistency and interpolation grids at the end of a sweep
    figure_rows: int = 8
    bf16: bool = False  # autocast the U-Net to bfloat16 (GPUs; CPUs with AMX/avx512_bf16); part of the cache key
    compile: bool = False  # torch.compile the U-Net
    channels_last: bool = False  # U-Net weights and activations in NHWC (faster convs with bf16)
    cuda_graphs: bool = False  # replay the U-Net forward as a CUDA graph; ignored with a log line off CUDA

    def __post_init__(self) -> None:
        _positive("eval.num_samples", self.num_samples, 2)  # a covariance needs two
        _positive("eval.batch_size", self.batch_size)
        _positive("eval.recon_samples", self.recon_samples, 0)
        _positive("eval.figure_rows", self.figure_rows)


FID_METRICS = ("fid", "kid", "isc", "prc")


@dataclass
class FidOptions:
    """The Fréchet distance, its error bars, the metrics beside it (KID, Inception Score, precision/recall) and the
    reference it is measured against (`fid.*`). extractor=auto: our digits classifier's second conv block on digits
    (fd_digits_conv; digits-classifier is its 64-d penultimate layer, fd_digits), torch-fidelity's Inception-v3 (FID)
    on everything else."""

    extractor: str = "auto"  # auto | inception-v3-compat | digits-classifier-conv | digits-classifier
    weights: Optional[str] = None  # local Inception weights file; null: torch-fidelity's download
    kid_subsets: int = 100  # KID (kid in fid.metrics) from the same features; 0 turns it off
    kid_subset_size: int = 1000
    cache_dir: Optional[str] = None  # reference statistics cache; null: $DDIM_CACHE or ~/.cache/ddim
    # bootstrap resamples of the cell's images, from its stored features: a 95 % interval of FD/FID (value_ci) and of
    # differences between cells (results.md); 0 turns it off. One D × D covariance and eigenproblem each: at 50,000 ×
    # 2,048 on a CPU ~10 s a resample (docs/benchmarks.md), on a GPU milliseconds
    bootstrap: int = 200
    extrapolate: bool = False  # also FD∞ (Chong & Forsyth 2020): FD of random subsets of N/5..N images, fitted in 1/N
    extrapolate_sizes: int = 5  # how many subset sizes the FD∞ line is fitted to
    # what a cell reports: fid (the Fréchet distance on the extractor's features, always), kid, isc (Inception Score
    # from the extractor's class logits: Inception's, or the digits classifier's 10), prc (precision and recall,
    # Kynkäänniemi et al. 2019, k-NN balls on the Fréchet features). isc stores logits beside the features, so turning
    # it on later samples the cell again; prc is computed from the stored features
    metrics: List[str] = field(default_factory=lambda: ["fid", "kid"])
    isc_splits: int = 10
    prc_neighborhood: int = 3  # k of the k-NN balls (the paper's 3)
    # reference statistics from a file instead of the training set's: pytorch-fid's or EDM's .npz (mu, sigma), a
    # guided-diffusion reference batch (arr_0, mu, sigma: its mu and sigma), or one of ours (python -m
    # ddim.evaluation.export_reference); kid and prc need reference features, which only ours hold
    reference: Optional[str] = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(FID_METRICS))
        if unknown or "fid" not in self.metrics:
            raise InputError(f"fid.metrics={list(self.metrics)}; expected a list of {', '.join(FID_METRICS)} that "
                             f"includes fid (the cell's value)")
        _positive("fid.isc_splits", self.isc_splits)
        _positive("fid.prc_neighborhood", self.prc_neighborhood)
        if self.reference == "":  # an empty override means "not given"
            self.reference = None
        _positive("fid.kid_subsets", self.kid_subsets, 0)
        _positive("fid.kid_subset_size", self.kid_subset_size, 2)
        _positive("fid.bootstrap", self.bootstrap, 0)
        _positive("fid.extrapolate_sizes", self.extrapolate_sizes, 2)

    def wants(self, metric: str) -> bool:
        """Whether the cell computes `metric` (kid also needs kid_subsets > 0)."""
        return metric in self.metrics and (metric != "kid" or self.kid_subsets > 0)


@dataclass
class FabricOptions:
    """The processes that share a cell's samples (`fabric.*`, Lightning Fabric; spawned: DDP on GPUs, gloo on CPUs)."""

    accelerator: str = "auto"  # auto | cpu | gpu | cuda
    devices: int = 1

    def __post_init__(self) -> None:
        _positive("fabric.devices", self.devices)

    def main_device(self) -> str:
        """The launching process's device (reference statistics, figures): CUDA where there is one and the
        accelerator allows it."""
        import torch

        return "cuda" if torch.cuda.is_available() and self.accelerator in ("auto", "gpu", "cuda") else "cpu"


GROUPS = {"sampler": SamplerSettings, "eval": EvalOptions, "fid": FidOptions, "fabric": FabricOptions}

# names users typed before the layout change, and what they are now (evaluate.py refuses the old ones in one line)
RENAMED_OVERRIDES = {
    "trainer.": ("fabric.", "evaluate.py's processes are Lightning Fabric's, not a Trainer's"),
    "experiment=": ("sweep=", "evaluation grids live in conf/sweep/; conf/experiment/ holds training recipes"),
}


def renamed_override(arguments: list[str]) -> str | None:
    """The one line for the first command-line override that uses an old name, else None."""
    for argument in arguments:
        bare = argument.lstrip("+~")
        for old, (new, why) in RENAMED_OVERRIDES.items():
            if bare.startswith(old):
                return f"{bare} is now {new}{bare[len(old):]} ({why})"
    return None


def register_schemas() -> None:
    store = ConfigStore.instance()
    for group, node in GROUPS.items():
        store.store(group=group, name="schema", node=node)


register_schemas()

__all__ = ["EvalOptions", "FID_METRICS", "FabricOptions", "FidOptions", "GROUPS", "renamed_override", "register_schemas"]
