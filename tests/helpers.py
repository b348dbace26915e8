"""Compose the real Hydra configs for tests, shrunk to seconds on a CPU and kept inside tmp_path."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from ddim.evaluation.pipeline import options  # noqa: F401  (registers the config schemas, as evaluate.py does)

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = [
    "model.ch=32", "model.ch_mult=[1,2]", "model.num_res_blocks=1", "model.attn_resolutions=[4]",
]


def compose_config(name: str, output_dir: Path, overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=return_hydra_config)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


# train.py overrides for a run of seconds on a CPU: 4 steps, a checkpoint and a grid every 2 (also CLI arguments)
TINY_TRAIN = [
    *TINY_MODEL, "logger=csv", "trainer.accelerator=cpu", "trainer.max_steps=4", "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false", "dataset.batch_size=16", "module.warmup_steps=2",
    "callbacks.checkpoint.every_n_train_steps=2", "callbacks.sample_grid.every_n_steps=2",
    "callbacks.sample_grid.num_samples=4", "callbacks.sample_grid.steps=5",
]


def tiny_train_config(output_dir: Path, *extra: str) -> DictConfig:
    return compose_config("train", output_dir, [*TINY_TRAIN, *extra])


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, what: str, timeout: float = 400,
               every: float = 0.05, details: Callable[[], str] = lambda: "") -> None:
    """Polls `condition` every `every` s while the child runs; its output, and `details()`, in the failure when it
    ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the process ended (rc {process.returncode}) before {what}:\n"
                                 f"{process.communicate()[0][-4000:]}\n{details()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {what} after {timeout} s\n{details()}")
        time.sleep(every)


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 400) -> None:
    wait_until(path.exists, process, str(path), timeout)


def chunk_indices(cell_dir: Path) -> list[int]:
    """Every image index in a cell's finished chunk files, repeats kept: a repeated image shows up twice."""
    indices: list[int] = []
    for path in sorted(cell_dir.glob("features-*/[!.]*.npz")):
        with np.load(path) as data:
            indices.extend(int(i) for i in data["indices"])
    return sorted(indices)
