"""Feature extractors for Fréchet distances, all as torch-fidelity extractors so one code path serves every data set:
torch-fidelity's InceptionV3 (FID, CIFAR-10 / CelebA / LSUN) and a small classifier for the 8×8 digits (fd_digits)."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity import FeatureExtractorBase, register_feature_extractor
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from ddim.data.datasets import digits_arrays
from ddim.errors import InputError, MissingInputError
from ddim.sampling.pixels import to_uint8
from ddim.utils import atomic_torch_save


log = logging.getLogger(__name__)

INCEPTION = "inception-v3-compat"  # torch-fidelity's own registered name for its TF-compatible InceptionV3
DIGITS = "digits-classifier"
# The same classifier's second conv block (64 × 4 × 4): it still sees local structure, so η = 1's leftover pixel
# noise at few steps shows in it, while the 64-d penultimate layer, trained to name the digit, is nearly blind to it
# (docs/demo_experiments.md). The role Inception's pool3 plays for FID; the default for the digits data set.
DIGITS_CONV = "digits-classifier-conv"
# Bump when the architecture, training recipe or split changes: it is part of the weights' and statistics' cache keys.
DIGITS_VERSION = "v1"
DIGITS_SEED = 0
METRIC_NAMES = {INCEPTION: "fid", DIGITS: "fd_digits", DIGITS_CONV: "fd_digits_conv"}
# Channels each extractor's forward expects; gray images are repeated to 3 channels for Inception.
INPUT_CHANNELS = {INCEPTION: 3, DIGITS: 1, DIGITS_CONV: 1}


def default_cache_dir() -> Path:
    """$DDIM_CACHE, else ~/.cache/ddim: where classifier weights and reference statistics live."""
    return Path(os.environ.get("DDIM_CACHE") or Path.home() / ".cache" / "ddim").expanduser()


def metric_name(extractor_name: str) -> str:
    """The name a Fréchet distance gets in every output: "fid" only for Inception features."""
    if extractor_name not in METRIC_NAMES:
        raise InputError(f"unknown feature extractor {extractor_name!r}; expected one of {', '.join(METRIC_NAMES)}")
    return METRIC_NAMES[extractor_name]


class DigitsClassifier(nn.Module):
    """A small CNN for 8×8 gray digits; `features` gives the 64-d penultimate activations, `conv_features` the
    1,024 activations after the second conv block (64 channels at 4×4)."""

    feature_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8×8 → 4×4
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4×4 → 2×2
            nn.Flatten(), nn.Linear(128 * 2 * 2, self.feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, 10)

    @staticmethod
    def preprocess(images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 0..255 (what torch-fidelity feeds) → float in [-1, 1], the range it was trained in."""
        return images_uint8.float() / 127.5 - 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body[:5](x).flatten(1)  # conv, ReLU, conv, ReLU, max-pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_digits_classifier(seed: int = DIGITS_SEED, epochs: int = 20, batch_size: int = 64) -> DigitsClassifier:
    """Trains on the train split, on CPU in one thread with a private RNG, so every run gives bit-identical weights."""
    images, labels = digits_arrays("train")
    # train on exactly what evaluation feeds it: images through the uint8 boundary
    inputs = DigitsClassifier.preprocess(to_uint8(images))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU reductions split differently across thread counts; one thread fixes the result
    try:
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
            torch.manual_seed(seed)
            model = DigitsClassifier()
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(inputs), batch_size):
                batch = order[start : start + batch_size]
                # one-pixel random shifts: cheap augmentation that keeps features robust to sampler jitter
                shift = torch.randint(-1, 2, (2,), generator=generator).tolist()
                x = torch.roll(inputs[batch], shifts=shift, dims=(2, 3))
                loss = F.cross_entropy(model(x), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval().requires_grad_(False)


def digits_weights_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the cached classifier weights live; the file name carries the version and seed."""
    return Path(cache_dir or default_cache_dir()) / f"digits_classifier_{DIGITS_VERSION}_seed{DIGITS_SEED}.pt"


def load_digits_classifier(
    weights_path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> DigitsClassifier:
    """Weights from `weights_path`, else from the cache, else trained now (seconds) and cached atomically."""
    model = DigitsClassifier()
    path = Path(weights_path) if weights_path else digits_weights_path(cache_dir)
    if weights_path and not path.is_file():
        raise MissingInputError(f"digits classifier weights {path}: no such file")
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval().requires_grad_(False)
    start = time.perf_counter()
    model = train_digits_classifier()
    log.info("trained the digits classifier in %.1f s; caching it at %s", time.perf_counter() - start, path)
    atomic_torch_save(model.state_dict(), path)
    return model


def digits_accuracy(model: DigitsClassifier, split: str = "test") -> float:
    """Top-1 accuracy on a split, through the same uint8 boundary evaluation uses."""
    images, labels = digits_arrays(split)
    with torch.inference_mode():
        logits = model(DigitsClassifier.preprocess(to_uint8(images)))
    return float((logits.argmax(1) == labels).float().mean())


class FeatureExtractorDigits(FeatureExtractorBase):
    """torch-fidelity wrapper of DigitsClassifier: uint8 [B, 1, 8, 8] in, features "64" (penultimate), "1024"
    (second conv block) or "logits" out. As `digits-classifier` its FD layer is "64" (fd_digits)."""

    def __init__(
        self,
        name: str,
        features_list: list[str] | tuple[str, ...],
        feature_extractor_weights_path: str | None = None,
        cache_dir: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(name, list(features_list))
        self.classifier = load_digits_classifier(feature_extractor_weights_path, cache_dir)
        # identifies these exact weights in reference-statistics cache keys
        self.cache_tag = f"{DIGITS}-{DIGITS_VERSION}-{weights_digest(self.classifier)}"
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (torch.is_tensor(x) and x.dtype == torch.uint8):
            raise TypeError("digits classifier expects a torch.uint8 tensor")
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"digits classifier expects [B, 1, H, W] images, got {tuple(x.shape)}")
        if x.shape[-2:] != (8, 8):
            # other resolutions are resized to what the classifier knows; 8×8 (the data set) passes untouched
            x = F.interpolate(x.float(), size=(8, 8), mode="area").round().clamp(0, 255).to(torch.uint8)
        x = DigitsClassifier.preprocess(x)
        out = {}
        if "1024" in self.features_list:
            out["1024"] = self.classifier.conv_features(x)
        if {"64", "logits"} & set(self.features_list):
            out["64"] = self.classifier.features(x)
            out["logits"] = self.classifier.head(out["64"])
        return tuple(out[name].to(torch.float32) for name in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return "64", "1024", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "64", "kid": "64", "prc": "64"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return True

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return (torch.rand([1, 1, 8, 8]) * 255).to(torch.uint8)


class FeatureExtractorDigitsConv(FeatureExtractorDigits):
    """`digits-classifier-conv`: the same classifier and weights, Fréchet distance on the second conv block
    ("1024", fd_digits_conv)."""

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "1024", "kid": "1024", "prc": "1024"}[metric]


for _name, _cls in ((DIGITS, FeatureExtractorDigits), (DIGITS_CONV, FeatureExtractorDigitsConv)):
    if _name not in FEATURE_EXTRACTORS_REGISTRY:  # re-imports (reloads, spawned workers) must not register twice
        register_feature_extractor(_name, _cls)


def weights_digest(module: nn.Module) -> str:
    """A short hash of every parameter and buffer, by name: the same weights give the same digest, whatever file
    they came from (≈0.3 s for Inception's 24M parameters, once per cell)."""
    digest = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


def _inception_error(what: str) -> InputError:
    return InputError(f"InceptionV3 FID weights {what}: pass fid.weights=PATH to a local copy of {URL_INCEPTION_V3}")


def _unreadable(path: Path) -> str | None:
    """Why `path` cannot be read as a weights file, or None when it can."""
    if not path.is_file():
        return "no such file"
    if not os.access(path, os.R_OK):
        return "not readable"
    return None


def build_feature_extractor(
    name: str, weights_path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
    logits: bool = False,
) -> FeatureExtractorBase:
    """A ready torch-fidelity extractor on `device` for the metric's default layer (Inception "2048", digits "64"),
    and with `logits` the class logits the Inception Score takes as a second output (Inception "logits_unbiased",
    digits "logits"). Missing or unreadable weights fail here, in one line, before any sampling."""
    if name not in METRIC_NAMES:
        raise InputError(f"unknown feature extractor {name!r}; expected one of {', '.join(METRIC_NAMES)}")
    if weights_path in (None, ""):  # an empty fid.weights= override means "not given"
        weights_path = None
    else:
        path = Path(weights_path).expanduser()
        problem = _unreadable(path)
        if problem and name == INCEPTION:
            raise _inception_error(f"fid.weights={weights_path}: {problem}")
        if problem:
            raise MissingInputError(f"fid.weights={weights_path}: {problem} (digits classifier weights)")
        weights_path = str(path)
    cls = FEATURE_EXTRACTORS_REGISTRY[name]
    layers = [cls.get_default_feature_layer_for_metric("fid")]
    if logits:
        layers.append(cls.get_default_feature_layer_for_metric("isc"))
    if name != INCEPTION:
        return cls(name, layers, feature_extractor_weights_path=weights_path).to(device)
    try:
        extractor = FeatureExtractorInceptionV3(name, layers, feature_extractor_weights_path=weights_path,
                                                verbose=False)
    except Exception as error:  # offline download, corrupt file, wrong state dict: all have the same fix
        what = "could not be downloaded" if weights_path is None else f"fid.weights={weights_path} could not be loaded"
        detail = (str(error).splitlines() or [""])[0]
        raise _inception_error(f"{what} ({type(error).__name__}: {detail})") from error
    return extractor.to(device)


def input_channels(extractor: FeatureExtractorBase) -> int | None:
    """How many channels the extractor's forward takes; None for extractors we know nothing about (left as is)."""
    return getattr(extractor, "input_channels", INPUT_CHANNELS.get(extractor.get_name()))


def match_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Gray → RGB by repeating the channel (Inception on gray data); anything else must already match."""
    if channels is None or images.shape[1] == channels:
        return images
    if images.shape[1] == 1:
        return images.expand(-1, channels, -1, -1)
    raise ValueError(f"images have {images.shape[1]} channels; the feature extractor takes {channels}")


__all__ = [
    "DIGITS", "DIGITS_VERSION", "INCEPTION", "DigitsClassifier", "FeatureExtractorDigits", "build_feature_extractor",
    "default_cache_dir", "digits_accuracy", "digits_weights_path",
    "input_channels", "load_digits_classifier", "match_channels", "metric_name", "train_digits_classifier",
]
