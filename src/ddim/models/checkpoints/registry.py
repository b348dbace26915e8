"""The published weights the paper samples: where each file goes, where it comes from, and its checksum; a missing
file is fetched on first use (download.py)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddim.errors import InputError, MissingInputError

from .download import fetch_file, file_digest, mirror_url, offline_reason

DEFAULT_WEIGHTS_ROOT = Path("~/.cache/ddim/weights")
WEIGHTS_ROOT_ENV = "DDIM_WEIGHTS"


@dataclass(frozen=True)
class PretrainedSpec:
    """A published DDPM model: which file to put where, where it comes from, and how the paper evaluated it."""

    name: str
    file: str  # relative to the weights root; the EMA weights, which the paper samples
    dataset: str
    resolution: int
    skip: str  # the trajectory of the paper's table for this data set
    model: dict[str, Any]  # UNet kwargs
    source: str  # where to get the file, in words
    url: str | None = None
    md5: str | None = None  # as checked by ermongroup/ddim's functions/ckpt_util.py
    sha256: str | None = None  # only where known for certain
    raw_file: str | None = None  # the non-EMA weights, where they are a separate file
    raw_url: str | None = None
    raw_md5: str | None = None
    diffusers: str | None = None  # the same model as a diffusers UNet2DModel on the Hugging Face hub


def _ddpm_config(ch_mult: tuple[int, ...], resolution: int, dropout: float) -> dict[str, Any]:
    """UNet kwargs of Ho et al.'s published models, which differ only in these three."""
    return {"in_channels": 3, "out_ch": 3, "ch": 128, "ch_mult": list(ch_mult), "num_res_blocks": 2,
            "attn_resolutions": [16], "dropout": dropout, "resolution": resolution, "resamp_with_conv": True}


_PESSER = ("the pesser/pytorch_diffusion port of Ho et al.'s TensorFlow checkpoint, the file ermongroup/ddim "
           "downloads for --use_pretrained")

KNOWN_WEIGHTS: dict[str, PretrainedSpec] = {
    "cifar10": PretrainedSpec(
        name="cifar10", file="ema_diffusion_cifar10_model/model-790000.ckpt", dataset="cifar10", resolution=32,
        skip="quad", model=_ddpm_config((1, 2, 2, 2), 32, 0.1), source=_PESSER,
        url="https://heibox.uni-heidelberg.de/f/2e4f01e2d9ee49bab1d5/?dl=1", md5="1fa350b952534ae442b1d5235cce5cd3",
        raw_file="diffusion_cifar10_model/model-790000.ckpt",
        raw_url="https://heibox.uni-heidelberg.de/f/869980b53bf5416c8a28/?dl=1",
        raw_md5="82ed3067fd1002f5cf4c339fb80c4669", diffusers="google/ddpm-cifar10-32"),
    "celeba": PretrainedSpec(
        name="celeba", file="celeba/ckpt.pth", dataset="celeba", resolution=64, skip="uniform",
        model=_ddpm_config((1, 2, 2, 2, 4), 64, 0.1),
        source="the DDIM authors' CelebA 64x64 training checkpoint (a list with the EMA state as entry 4), linked "
               "from the ermongroup/ddim README",
        url="https://drive.google.com/drive/folders/1si6Gn3U2ZrggnfYXOESWVFIwcNbyfh5o"),
    "lsun_church": PretrainedSpec(
        name="lsun_church", file="ema_diffusion_lsun_church_model/model-4432000.ckpt", dataset="lsun_church",
        resolution=256, skip="uniform", model=_ddpm_config((1, 1, 2, 2, 4, 4), 256, 0.0), source=_PESSER,
        url="https://heibox.uni-heidelberg.de/f/44ccb50ef3c6436db52e/?dl=1", md5="fdc68a23938c2397caba4a260bc2445f",
        raw_file="diffusion_lsun_church_model/model-4432000.ckpt",
        raw_url="https://heibox.uni-heidelberg.de/f/2711a6f712e34b06b9d8/?dl=1",
        raw_md5="eb619b8a5ab95ef80f94ce8a5488dae3", diffusers="google/ddpm-church-256"),
    "lsun_bedroom": PretrainedSpec(
        name="lsun_bedroom", file="ema_diffusion_lsun_bedroom_model/model-2388000.ckpt", dataset="lsun_bedroom",
        resolution=256, skip="uniform", model=_ddpm_config((1, 1, 2, 2, 4, 4), 256, 0.0), source=_PESSER,
        url="https://heibox.uni-heidelberg.de/f/b95206528f384185889b/?dl=1", md5="1921fa46b66a3665e450e42f36c2720f",
        raw_file="diffusion_lsun_bedroom_model/model-2388000.ckpt",
        raw_url="https://heibox.uni-heidelberg.de/f/f179d4f21ebc4d43bbfe/?dl=1",
        raw_md5="f70280ac0e08b8e696f42cb8e948ff1c", diffusers="google/ddpm-bedroom-256"),
}


def weights_root(root: str | os.PathLike | None = None) -> Path:
    """`root`, else $DDIM_WEIGHTS, else ~/.cache/ddim/weights."""
    return Path(root or os.environ.get(WEIGHTS_ROOT_ENV) or DEFAULT_WEIGHTS_ROOT).expanduser()


@functools.lru_cache(maxsize=32)
def _file_digest(path: str, algorithm: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so that a replaced file is hashed again
    return file_digest(path, algorithm)


def _verify(path: Path, algorithm: str, expected: str | None, url: str | None) -> None:
    """Raises if the file's digest is not the published one; nothing to check when none is known."""
    if not expected:
        return
    stat = path.stat()
    got = _file_digest(str(path), algorithm, stat.st_size, stat.st_mtime_ns)
    if got != expected:
        raise InputError(f"{path}: {algorithm} {got} does not match the published {expected}; the file is damaged or "
                         f"not these weights: delete it to download it again from {url}")


def resolve_pretrained(name: str, root: str | os.PathLike | None = None, ema: bool = True,
                       download: bool = True) -> Path:
    """The local file (or diffusers folder) of the published model `name`, its checksum verified where known. A
    missing file with a published checksum is downloaded into the weights root (from $DDIM_WEIGHTS_URL/<file> if
    set, else its published URL) unless `download` is False or HF_HUB_OFFLINE is set; otherwise a
    MissingInputError whose one line says which file to put where and where to get it."""
    spec = KNOWN_WEIGHTS.get(name)
    if spec is None:
        raise InputError(f"pretrained={name!r}; expected one of {', '.join(KNOWN_WEIGHTS)}")
    base = weights_root(root)
    use_raw = not ema and spec.raw_file is not None
    file, url = (spec.raw_file, spec.raw_url) if use_raw else (spec.file, spec.url)
    checksums = {k: v for k, v in (("sha256", None if use_raw else spec.sha256),
                                   ("md5", spec.raw_md5 if use_raw else spec.md5)) if v}
    path = base / file
    if path.is_file():
        for algorithm, expected in checksums.items():
            _verify(path, algorithm, expected, url)
        return path
    if spec.diffusers and (base / spec.diffusers / "config.json").is_file():
        return base / spec.diffusers
    also = (f", or put the diffusers model {spec.diffusers} in {base / spec.diffusers} (or pass "
            f"ckpt=hf://{spec.diffusers})" if spec.diffusers else "")
    by_hand = (f"download {file} ({spec.source}) from {url or 'its source'} and save it as {path} (or set "
               f"${WEIGHTS_ROOT_ENV} to the folder that holds {file}){also}")
    if not checksums:
        raise MissingInputError(f"pretrained={name}: {path} not found, and {file} has no published checksum to verify "
                                f"a download against, so it is not fetched; {by_hand}")
    offline = offline_reason(download)
    if offline:
        raise MissingInputError(f"pretrained={name}: {path} not found, and {offline} forbids downloading it; "
                                f"{by_hand}")
    source = mirror_url(file) or url
    if not source:
        raise MissingInputError(f"pretrained={name}: {path} not found, and {file} has no direct download link; "
                                f"{by_hand}")
    return fetch_file(source, path, checksums, f"pretrained={name}")
