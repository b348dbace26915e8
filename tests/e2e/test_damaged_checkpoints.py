"""A damaged file is named as damaged by every way in: evaluate.py ckpt=, pretrained=, train.py resume= and
python -m ddim.convert. The file is checked as a checkpoint before anything is read from it, so nobody is sent off
to pass dataset=NAME for a file that was cut short."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ddim.convert import main as convert_main
from ddim.evaluation.pipeline.task import run_evaluation
from ddim.models import CheckpointError
from ddim.training.train import train

from ..helpers import ROOT, compose_config, tiny_train_config


def damaged_bytes(kind: str, good: Path) -> bytes:
    if kind == "truncated":  # what a save or copy cut short leaves: the start of a zip archive, no end record
        return good.read_bytes()[:100_000]
    if kind == "zero_bytes":
        return b""
    if kind == "text":
        return (ROOT / "README.md").read_bytes()
    return b"\x13" + np.random.default_rng(0).bytes(50_000)  # random, and surely neither zip nor pickle


MESSAGES = {
    "truncated": "truncated or corrupt checkpoint (100000 bytes, a zip archive without its end record)",
    "zero_bytes": "an empty file (0 bytes), not a checkpoint",
    "text": "not a readable torch file (neither a zip archive nor a pickle)",
    "random_bytes": "not a readable torch file (neither a zip archive nor a pickle)",
}


@pytest.fixture
def run_folder(checkpoint, tmp_path) -> Path:
    """A copy of a run's checkpoints folder: a sound step_0000004.ckpt (and last.ckpt, to be damaged)."""
    folder = tmp_path / "checkpoints"
    shutil.copytree(checkpoint.parent, folder)
    return folder


@pytest.mark.parametrize("kind", MESSAGES)
def test_damaged_file_says_what_is_wrong_for_every_entry_point(kind, checkpoint, run_folder, tmp_path, capsys):
    damaged = run_folder / "last.ckpt"
    damaged.write_bytes(damaged_bytes(kind, checkpoint))
    expected = MESSAGES[kind]

    # evaluate.py ckpt=PATH, without dataset= (the checkpoint would have said which data set)
    cfg = compose_config("evaluate", tmp_path / "eval", [f"ckpt={damaged}", "wandb=none"])
    with pytest.raises(CheckpointError) as info:
        run_evaluation(cfg, str(tmp_path / "eval"))
    assert str(info.value).startswith(f"{damaged}: {expected}"), info.value
    assert "dataset=NAME" not in str(info.value)

    # train.py resume=PATH: says the file is damaged and where the newest sound checkpoint is
    with pytest.raises(CheckpointError) as info:
        train(tiny_train_config(tmp_path / "train", f"resume={damaged}"))
    message = str(info.value)
    assert message.startswith(f"resume={damaged}: {expected}"), message
    assert message.endswith(f"the newest sound checkpoint beside it is resume={run_folder / 'step_0000004.ckpt'}")
    assert not (tmp_path / "train" / "checkpoints").exists()

    # pretrained=celeba whose local file is damaged (CelebA has no published checksum to catch it first)
    weights = tmp_path / "weights"
    (weights / "celeba").mkdir(parents=True)
    shutil.copyfile(damaged, weights / "celeba" / "ckpt.pth")
    cfg = compose_config("evaluate", tmp_path / "pre", ["pretrained=celeba", f"pretrained.root={weights}", "wandb=none"])
    with pytest.raises(CheckpointError, match=re.escape(f"ckpt.pth: {expected}")):
        run_evaluation(cfg, str(tmp_path / "pre"))

    # python -m ddim.convert SRC DST: one line, exit 2, nothing written
    assert convert_main([str(damaged), str(tmp_path / "converted.ckpt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {damaged}: {expected}"), err
    assert not (tmp_path / "converted.ckpt").exists()
    assert damaged.read_bytes() == damaged_bytes(kind, checkpoint)  # the evidence is left as it was


def test_torch_file_that_is_no_checkpoint_says_so_before_asking_for_a_data_set(tmp_path):
    import torch

    other = tmp_path / "other.ckpt"
    torch.save({"optimizer": {"lr": 1.0}}, other)
    cfg = compose_config("evaluate", tmp_path, [f"ckpt={other}", "wandb=none"])
    with pytest.raises(CheckpointError, match="not a checkpoint this loader knows"):
        run_evaluation(cfg, str(tmp_path))


def test_truncated_checkpoint_through_the_real_clis(checkpoint, run_folder, tmp_path):
    damaged = run_folder / "last.ckpt"
    damaged.write_bytes(damaged_bytes("truncated", checkpoint))
    for script, args in (("evaluate.py", [f"ckpt={damaged}", "wandb=none"]),
                         ("train.py", [f"resume={damaged}", "logger=none"])):
        done = subprocess.run([sys.executable, script, *args, f"hydra.run.dir={tmp_path / script}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "truncated or corrupt checkpoint" in lines[0], done.stderr[-2000:]
        assert "Traceback" not in done.stderr
