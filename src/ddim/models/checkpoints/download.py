"""Fetching a published weights file on first use: torch.hub's downloader into a temp file beside the target, the
published checksum checked, then one rename, so the final name only ever holds verified bytes."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import uuid
from pathlib import Path

from ddim.errors import InputError

log = logging.getLogger(__name__)

MIRROR_ENV = "DDIM_WEIGHTS_URL"  # a base URL serving the weights folder's layout: BASE/<file> for every entry
_TRUE = {"1", "ON", "YES", "TRUE"}  # what huggingface_hub takes as true in HF_HUB_OFFLINE


class DownloadError(OSError):
    """Fetching a file failed (network, server, or bytes that are not the published ones): not bad input, so entry
    points exit 1 with the one line, and a rerun may succeed; nothing was kept."""


class ChecksumError(DownloadError):
    """A downloaded file whose digest is not the published one (cut short, or not these weights)."""


def offline_reason(download: bool = True) -> str | None:
    """Why nothing may touch the network (the setting, as the user would write it), or None if downloads are on."""
    if not download:
        return "pretrained.download=false"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE:
        return f"HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']}"
    return None


def mirror_url(file: str) -> str | None:
    """$DDIM_WEIGHTS_URL/<file>, where a mirror is set: the file under the same relative path as in $DDIM_WEIGHTS."""
    base = os.environ.get(MIRROR_ENV, "").strip()
    if not base:
        return None
    if not base.startswith(("http://", "https://", "file://")):
        raise InputError(f"${MIRROR_ENV}={base}: expected a base URL (http://, https:// or file://) under which the "
                         f"weights lie as in $DDIM_WEIGHTS, e.g. https://mirror.example/ddim-weights")
    return f"{base.rstrip('/')}/{file}"


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(url: str, dest: Path, checksums: dict[str, str], what: str, progress: bool = True) -> Path:
    """Downloads `url` to `dest` (a progress bar on stderr) and returns `dest`. The bytes go to a hidden temp file in
    dest's folder, renamed to `dest` only once every digest in `checksums` ({"md5": hex, ...}) holds; on any failure
    the temp file and the folders made for it are removed, and the error is one DownloadError line."""
    if not checksums:
        raise InputError(f"{what}: refusing to download {url} without a published checksum to verify it against")
    from torch.hub import download_url_to_file

    made = _make_folders(dest.parent)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.download"
    done = False
    try:
        log.info("%s: downloading %s to %s", what, url, dest)
        # torch.hub writes its own .partial file and moves it to `tmp` when the transfer ends
        download_url_to_file(url, str(tmp), progress=progress)
        size = tmp.stat().st_size
        for algorithm, expected in checksums.items():
            got = file_digest(tmp, algorithm)
            if got != expected.lower():
                raise ChecksumError(
                    f"{what}: the download of {dest.name} from {url} has {algorithm} {got} ({size} bytes), expected "
                    f"{expected}: the transfer was cut short or the file is not these weights; nothing was kept")
        os.replace(tmp, dest)
        done = True
    except DownloadError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        detail = error if isinstance(error, urllib.error.HTTPError) else getattr(error, "reason", None) or error
        detail = (str(detail).strip().splitlines() or ["no reason given"])[0]
        raise DownloadError(
            f"{what}: downloading {url} failed ({type(error).__name__}: {detail}); "
            f"nothing was kept. Download it yourself and save it as {dest}, or set ${MIRROR_ENV} to a mirror") from None
    finally:
        if not done:
            tmp.unlink(missing_ok=True)
            for folder in reversed(made):  # deepest first; a folder something else wrote into stays
                try:
                    folder.rmdir()
                except OSError:
                    break
    return dest


def _make_folders(folder: Path) -> list[Path]:
    """mkdir -p `folder`; the folders it created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing
