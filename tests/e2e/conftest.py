"""A checkpoint trained for a few steps, shared by every end-to-end test of the session."""

from pathlib import Path

import pytest

from ddim.training.train import train

from ..helpers import tiny_train_config


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """<run>/checkpoints/last.ckpt after 4 steps; step_0000004.ckpt lies beside it. Tests must not change it."""
    out = tmp_path_factory.mktemp("train")
    return Path(train(tiny_train_config(out))["checkpoint"])
