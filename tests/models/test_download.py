"""pretrained=NAME fetches a missing file on first use, from a server on 127.0.0.1 standing in for the published
source through $DDIM_WEIGHTS_URL: verified before it gets its name, cached for the next run, never half-written, and
never fetched when downloads are off."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from ddim.errors import InputError, MissingInputError
from ddim.models import KNOWN_WEIGHTS, UNet, read_checkpoint, resolve_pretrained
from ddim.models.checkpoints import ChecksumError, DownloadError

SPEC = KNOWN_WEIGHTS["cifar10"]
TINY = dict(in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[16], dropout=0.0,
            resolution=32)


class WeightsServer:
    """Serves `files` ({url path: bytes}) on a free port of 127.0.0.1; counts requests; with `cut_short` it sends the
    full Content-Length, then half the bytes, then closes the connection."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.cut_short = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if server.cut_short else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/weights"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tiny_model() -> UNet:
    torch.manual_seed(0)
    return UNet(**TINY).eval()


@pytest.fixture
def checkpoint_bytes(tiny_model) -> bytes:
    """A bare state dict with our names, as the reference DDPM port's files are."""
    buffer = io.BytesIO()
    torch.save(tiny_model.state_dict(), buffer)
    return buffer.getvalue()


@pytest.fixture
def server(monkeypatch, tmp_path, checkpoint_bytes):
    """The server as $DDIM_WEIGHTS_URL, holding the made-up file at cifar10's path, whose MD5 the registry expects;
    $DDIM_WEIGHTS an empty temp folder."""
    for name in ("HF_HUB_OFFLINE", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    served = WeightsServer()
    served.files[f"/weights/{SPEC.file}"] = checkpoint_bytes
    monkeypatch.setenv("DDIM_WEIGHTS_URL", served.url)
    monkeypatch.setenv("DDIM_WEIGHTS", str(tmp_path / "weights"))
    md5 = hashlib.md5(checkpoint_bytes).hexdigest()
    monkeypatch.setitem(KNOWN_WEIGHTS, "cifar10", dataclasses.replace(SPEC, md5=md5))
    yield served
    served.close()


def outputs(model: torch.nn.Module) -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, 16, 16, generator=gen), torch.tensor([7, 870]))


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_first_use_downloads_and_loads_and_the_second_run_uses_the_cache(server, tmp_path, tiny_model,
                                                                         checkpoint_bytes):
    path = resolve_pretrained("cifar10")
    assert path == tmp_path / "weights" / SPEC.file and path.read_bytes() == checkpoint_bytes
    assert server.requests == [f"/weights/{SPEC.file}"]
    assert files_under(tmp_path / "weights") == ["ema_diffusion_cifar10_model", SPEC.file]  # no temp file left
    torch.testing.assert_close(outputs(read_checkpoint(path).model), outputs(tiny_model), rtol=0, atol=0)
    assert resolve_pretrained("cifar10") == path
    assert len(server.requests) == 1  # the cached file, checksum verified, no request


def test_wrong_checksum_is_refused_and_leaves_nothing(server, tmp_path, monkeypatch, checkpoint_bytes):
    monkeypatch.setitem(KNOWN_WEIGHTS, "cifar10", dataclasses.replace(SPEC, md5="0" * 32))
    with pytest.raises(ChecksumError) as info:
        resolve_pretrained("cifar10")
    assert isinstance(info.value, OSError) and not isinstance(info.value, InputError)  # exit 1: a rerun may succeed
    message = str(info.value)
    assert "\n" not in message and "model-790000.ckpt" in message and server.url in message
    assert f"expected {'0' * 32}" in message and hashlib.md5(checkpoint_bytes).hexdigest() in message
    assert len(server.requests) == 1 and files_under(tmp_path / "weights") == []  # nor the folders it made


def test_transfer_cut_short_leaves_nothing_and_the_next_run_succeeds(server, tmp_path, checkpoint_bytes):
    server.cut_short = True
    with pytest.raises(ChecksumError, match=f"{len(checkpoint_bytes) // 2} bytes.*cut short"):
        resolve_pretrained("cifar10")
    assert files_under(tmp_path / "weights") == []
    server.cut_short = False
    assert resolve_pretrained("cifar10").read_bytes() == checkpoint_bytes
    assert len(server.requests) == 2


def test_a_file_already_there_with_a_foreign_folder_keeps_that_folder(server, tmp_path, monkeypatch):
    """A failed download removes only the folders it made: the weights root, which holds other files, stays."""
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "mine.txt").write_text("keep")
    del server.files[f"/weights/{SPEC.file}"]
    with pytest.raises(DownloadError) as info:  # an OSError, not bad input: the network or the server failed
        resolve_pretrained("cifar10")
    assert not isinstance(info.value, InputError)
    message = str(info.value)
    assert "\n" not in message and "404" in message and str(tmp_path / "weights" / SPEC.file) in message
    assert files_under(tmp_path / "weights") == ["mine.txt"]


@pytest.mark.parametrize("how", ["download=false", "HF_HUB_OFFLINE=1", "config"])
def test_offline_never_touches_the_network_and_says_where_to_put_the_file(server, tmp_path, monkeypatch, how):
    path = tmp_path / "weights" / SPEC.file
    if how == "download=false":
        call = lambda: resolve_pretrained("cifar10", download=False)  # noqa: E731
    elif how == "HF_HUB_OFFLINE=1":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        call = lambda: resolve_pretrained("cifar10")  # noqa: E731
    else:
        from ddim.evaluation.pipeline.task import resolve_ckpt
        from tests.helpers import compose_config

        cfg = compose_config("evaluate", tmp_path / "eval", ["pretrained=cifar10", "pretrained.download=false"])
        assert cfg.pretrained.download is False
        call = lambda: resolve_ckpt(cfg)  # noqa: E731
    with pytest.raises(MissingInputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and str(path) in message and SPEC.url in message
    assert ("HF_HUB_OFFLINE=1" if how == "HF_HUB_OFFLINE=1" else "pretrained.download=false") in message
    assert server.requests == [] and files_under(tmp_path / "weights") == []


def test_no_published_checksum_means_no_download(server, tmp_path):
    server.files[f"/weights/{KNOWN_WEIGHTS['celeba'].file}"] = b"anything"
    with pytest.raises(MissingInputError, match="no published checksum .* save it as .*celeba/ckpt.pth"):
        resolve_pretrained("celeba")
    assert server.requests == []


def test_a_mirror_that_is_no_url_is_one_line(server, monkeypatch):
    monkeypatch.setenv("DDIM_WEIGHTS_URL", "mirror.example/weights")
    with pytest.raises(InputError, match=r"^\$DDIM_WEIGHTS_URL=mirror.example/weights: expected a base URL"):
        resolve_pretrained("cifar10")
    assert server.requests == []
