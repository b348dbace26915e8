"""Shared fixtures: keep every test offline and every run's files inside tmp dirs."""

import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Caches (digits classifier, reference statistics) go to a per-session temp dir, never ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "ddim-cache"
    monkeypatch.setenv("DDIM_CACHE", str(cache))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path_factory.getbasetemp() / "wandb"))
