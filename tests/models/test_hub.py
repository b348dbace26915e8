"""ckpt=hf://ORG/REPO reads a diffusers UNet2DModel through huggingface_hub's cache: a prepared cache folder
(models--ORG--REPO/refs/main, snapshots/<commit>/...) with HF_HUB_OFFLINE=1 loads without a request."""

from __future__ import annotations

import json

import pytest
import torch

from ddim.errors import InputError, MissingInputError
from ddim.models import read_checkpoint, resolve_hub

from .test_pretrained import assert_relative_close, ddpm_layout_diffusers_model

huggingface_hub = pytest.importorskip("huggingface_hub")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REAL_REPO_INFO = huggingface_hub.HfApi.repo_info
SCHEDULER = {"_class_name": "DDPMScheduler", "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.03,
             "num_train_timesteps": 1000}


@pytest.fixture(scope="module")
def hub_model():
    model = ddpm_layout_diffusers_model()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([3, 640])
    with torch.no_grad():
        expected = model(x, t).sample
    return model, x, t, expected


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, hub_model):
    """Two cached repositories: ddim-test/tiny-ddpm (the UNet at the root) and ddim-test/tiny-pipeline (a pipeline:
    unet/ and scheduler/); the Hub API made to fail loudly if anything asks it."""
    model = hub_model[0]
    cache = tmp_path / "hub"
    for repo, unet_folder in (("tiny-ddpm", ""), ("tiny-pipeline", "unet")):
        storage = cache / f"models--ddim-test--{repo}"
        (storage / "refs").mkdir(parents=True)
        (storage / "refs" / "main").write_text(COMMIT)
        snapshot = storage / "snapshots" / COMMIT
        model.save_pretrained(snapshot / unet_folder)
        if unet_folder:
            (snapshot / "scheduler").mkdir()
            (snapshot / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []

    def no_network(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the Hub API was called")

    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", no_network)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_tree", no_network)
    return cache


def test_hf_uri_loads_the_cached_repo_offline(hub_cache, hub_model):
    _, x, t, expected = hub_model
    folder = resolve_hub("hf://ddim-test/tiny-ddpm")
    assert folder == hub_cache / "models--ddim-test--tiny-ddpm" / "snapshots" / COMMIT
    loaded = read_checkpoint("hf://ddim-test/tiny-ddpm")
    assert loaded.source == "diffusers" and loaded.model_config["ch_mult"] == [1, 2, 2]
    assert_relative_close(loaded.model(x, t).detach(), expected)
    # a pipeline repository: its unet/, and the schedule from scheduler/; a revision pins the snapshot
    pipeline = read_checkpoint(f"hf://ddim-test/tiny-pipeline@{COMMIT}")
    assert pipeline.schedule == {"name": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.03}
    assert_relative_close(pipeline.model(x, t).detach(), expected)
    assert_relative_close(read_checkpoint("hf://ddim-test/tiny-pipeline/unet").model(x, t).detach(), expected)


def test_evaluate_ckpt_hf_uri_resolves_to_the_snapshot(hub_cache, tmp_path):
    from ddim.evaluation.pipeline.task import resolve_ckpt
    from tests.helpers import compose_config

    cfg = compose_config("evaluate", tmp_path / "eval", ["ckpt=hf://ddim-test/tiny-ddpm"])
    assert resolve_ckpt(cfg) == str(hub_cache / "models--ddim-test--tiny-ddpm" / "snapshots" / COMMIT)


def test_repo_not_in_the_cache_offline_is_one_line(hub_cache):
    with pytest.raises(MissingInputError) as info:
        read_checkpoint("hf://ddim-test/absent")
    message = str(info.value)
    assert "\n" not in message and "ddim-test/absent" in message and str(hub_cache) in message
    assert "HF_HUB_OFFLINE=1 forbids downloading it" in message


def test_unreachable_hub_falls_back_to_the_cache_and_otherwise_is_a_download_error(hub_cache, hub_model,
                                                                                 monkeypatch):
    """Downloads on, but nothing listens at the Hub's address: the cached repository still loads; an uncached one is
    a DownloadError (an OSError: exit 1, a rerun may succeed), not bad input."""
    import socket

    from ddim.models.checkpoints import DownloadError

    with socket.socket() as probe:  # a port that was free a moment ago: connections to it are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", REAL_REPO_INFO)
    _, x, t, expected = hub_model
    assert_relative_close(read_checkpoint("hf://ddim-test/tiny-ddpm").model(x, t).detach(), expected)
    with pytest.raises(DownloadError) as info:
        read_checkpoint("hf://ddim-test/absent")
    message = str(info.value)
    assert "\n" not in message and "the Hub could not be reached (" in message and "Connect" in message
    assert not isinstance(info.value, InputError)


def test_cached_snapshot_without_weights_is_one_line(hub_cache):
    snapshot = hub_cache / "models--ddim-test--tiny-ddpm" / "snapshots" / COMMIT
    (snapshot / "diffusion_pytorch_model.safetensors").unlink()
    weights = "diffusion_pytorch_model.safetensors or diffusion_pytorch_model.bin"
    with pytest.raises(MissingInputError, match=f"has no config.json and {weights}"):
        resolve_hub("hf://ddim-test/tiny-ddpm")


@pytest.mark.parametrize("uri", ["hf://just-one-part", "hf://a/b/c@d", "hf://a/b@"])
def test_malformed_hf_uri_is_one_line(uri):
    with pytest.raises(InputError, match=r"expected hf://ORG/REPO\[@REVISION\]\[/SUBFOLDER\]"):
        resolve_hub(uri)


def test_convert_reads_an_hf_uri(hub_cache, hub_model, tmp_path):
    from ddim.convert import main as convert_main

    _, x, t, expected = hub_model
    assert convert_main(["hf://ddim-test/tiny-ddpm", str(tmp_path / "tiny.safetensors")]) == 0
    converted = read_checkpoint(tmp_path / "tiny.safetensors")
    assert converted.source == "safetensors" and converted.extra["source"] == "diffusers"
    assert converted.extra["converted_from"] == "hf://ddim-test/tiny-ddpm"
    assert_relative_close(converted.model(x, t).detach(), expected)
