"""`hf://ORG/REPO[@REVISION][/SUBFOLDER]`: a diffusers UNet2DModel repository on the Hugging Face Hub, fetched into
(or found in) huggingface_hub's own cache with only its config and weights, so a second run, and an offline one
(HF_HUB_OFFLINE=1), read the cached snapshot without a request."""

from __future__ import annotations

import re
from pathlib import Path

from ddim.errors import InputError, MissingInputError

from .download import DownloadError, offline_reason

HUB_SCHEME = "hf://"
_URI = re.compile(r"hf://(?:models/)?(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[^/@]+))?"
                  r"(?:/(?P<sub>[\w.-]+(?:/[\w.-]+)*))?/?")
_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")  # preferred first


def is_hub_uri(value: object) -> bool:
    return isinstance(value, str) and value.startswith(HUB_SCHEME)


def _patterns(sub: str, weights: str) -> list[str]:
    """The files a UNet needs, at the repo's root (or SUBFOLDER) and in its unet/, with the scheduler's config."""
    prefix = f"{sub}/" if sub else ""
    return ([f"{prefix}{folder}{name}" for folder in ("", "unet/") for name in ("config.json", weights)]
            + [f"{prefix}scheduler_config.json", f"{prefix}scheduler/scheduler_config.json"])


def _has(folder: Path, name: str) -> bool:
    return (folder / name).is_file() or (folder / "unet" / name).is_file()


def resolve_hub(uri: str, download: bool = True) -> Path:
    """The local folder (in huggingface_hub's cache) of the UNet2DModel at `uri`, downloaded unless `download` is
    False or HF_HUB_OFFLINE is set; one line naming the repository and the cache when it cannot be had."""
    match = _URI.fullmatch(uri.strip())
    if match is None:
        raise InputError(f"ckpt={uri}: expected hf://ORG/REPO[@REVISION][/SUBFOLDER], e.g. hf://google/ddpm-cifar10-32")
    repo, revision, sub = match["repo"], match["revision"], match["sub"] or ""
    try:
        from huggingface_hub import constants, errors, snapshot_download
    except ImportError:
        raise InputError(f"ckpt={uri}: reading from the Hugging Face Hub needs huggingface_hub "
                         f"(pip install huggingface_hub)") from None
    offline = offline_reason(download)
    cache = constants.HF_HUB_CACHE
    try:
        folder = Path()
        for weights in _WEIGHTS:  # a second call only when the repository has no safetensors weights
            snapshot = snapshot_download(repo, revision=revision, allow_patterns=_patterns(sub, weights),
                                         local_files_only=offline is not None)
            folder = Path(snapshot) / sub
            if _has(folder, weights):
                break
    except errors.LocalEntryNotFoundError as error:
        where = (f"ckpt={uri}: {repo}{'@' + revision if revision else ''} is not in the Hugging Face cache {cache}, "
                 + (f"and {offline} forbids downloading it" if offline else
                    f"and the Hub could not be reached ({_first_line(error.__cause__ or error)})"))
        hint = f"; run once online (or `hf download {repo}` where there is a network and copy {cache} here)"
        raise (MissingInputError if offline else DownloadError)(where + hint) from None
    except errors.HFValidationError as error:
        raise InputError(f"ckpt={uri}: {_first_line(error)}") from None
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as error:
        raise MissingInputError(f"ckpt={uri}: {_first_line(error)}") from None
    except errors.HfHubHTTPError as error:  # a server error, a gated repository without a token
        raise DownloadError(f"ckpt={uri}: the Hub refused the download ({_first_line(error)})") from None
    if not _has(folder, "config.json") or not any(_has(folder, w) for w in _WEIGHTS):
        raise MissingInputError(f"ckpt={uri}: {folder} (the cached snapshot of {repo}) has no config.json and "
                                f"{' or '.join(_WEIGHTS)}, at its root or in unet/; expected a diffusers UNet2DModel "
                                f"repository{'' if offline is None else f' (downloading is off: {offline})'}")
    return folder


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
