"""Rows of docs/reliability.md: each bad input is one line naming the value and what is expected, raised before any
long work, and nothing already on disk is damaged. Most run in-process through the real config (compose API); the
entry points turn these errors into `error: <line>` and a non-zero exit (tests/training/test_train.py,
tests/e2e/test_evaluate.py and tests/e2e/test_damaged_checkpoints.py check that through the CLIs)."""

import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from hydra.errors import HydraException, InstantiationException
from PIL import Image

from ddim.evaluation.pipeline.task import run_evaluation
from ddim.training.train import error_line, train

from ..helpers import ROOT, TINY_TRAIN, compose_config, tiny_train_config


def one_line(run) -> str:
    """The message the entry point prints after `error: ` (train.py unwraps Hydra's instantiation error)."""
    with pytest.raises(Exception) as info:
        run()
    error = info.value
    cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
    assert isinstance(cause, (ValueError, FileNotFoundError, RuntimeError, OSError)), repr(error)
    message = error_line(error)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("overrides,expected", [
    (["trainer.max_steps=0"], "trainer.max_steps=0; expected a positive number of optimizer steps (-1: no limit)"),
    (["trainer.max_steps=-5"], "trainer.max_steps=-5; expected a positive number"),
    (["trainer.max_steps=abc"], "trainer.max_steps='abc'; expected a positive number"),
    (["dataset.batch_size=0"], "dataset.batch_size=0; expected a positive integer"),
    (["dataset.batch_size=-4"], "dataset.batch_size=-4; expected a positive integer"),
    (["dataset.batch_size=100000"], "fewer than dataset.batch_size=100000 with drop_last=true"),
    (["module.lr=abc"], "module.lr='abc'; expected a positive number"),
    (["module.lr=-1"], "module.lr=-1; expected a positive number"),
    (["module.warmup_steps=-3"], "module.warmup_steps=-3; expected a number >= 0"),
    (["module.ema_decay=1.5"], "ema_decay=1.5; expected a value in [0, 1)"),
    (["module.nonfinite_loss=maybe"], "module.nonfinite_loss='maybe'; expected one of stop, skip"),
    (["model.ch=0"], "ch=0; expected positive integers"),
    (["model.in_channels=3"], "model takes 3x8x8 images but dataset digits gives 1x8x8"),
    (["diffusion.T=0"], "number of diffusion steps T=0; expected a positive integer"),
])
def test_train_config_values(tmp_path, overrides, expected):
    message = one_line(lambda: train(tiny_train_config(tmp_path, *overrides)))
    assert expected in message, message
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("overrides,expected", [
    (["eval.batch_size=0"], "eval.batch_size=0; expected an integer >= 1"),
    (["eval.num_samples=1"], "eval.num_samples=1; expected an integer >= 2"),
    (["sampler.steps=100000"], "steps=100000; expected an integer number of sampling steps between 1 and T=1000"),
    (["sampler.steps=-3"], "steps=-3; expected an integer number of sampling steps"),
    (["dataset=folder", "dataset.resolution=8", "dataset.root=/no/such/folder"], "image folder /no/such/folder not found"),
])
def test_evaluate_config_values(checkpoint, tmp_path, overrides, expected):
    cfg = compose_config("evaluate", tmp_path, [f"ckpt={checkpoint}", "wandb=none", *overrides])
    message = one_line(lambda: run_evaluation(cfg, str(tmp_path)))
    assert expected in message, message
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("config,overrides,expected", [
    ("train", ["dataset=imagenet"], "Could not find 'dataset/imagenet'"),
    ("train", ["trainer=tpu"], "Could not find 'trainer/tpu'"),
    ("evaluate", ["sampler.steps=abc"], "sampler.steps=abc"),
    ("evaluate", ["sampler.foo=1"], "Could not override 'sampler.foo'"),
    ("evaluate", ["eval.num_samples=many"], "eval.num_samples=many"),
])
def test_unknown_groups_keys_and_wrong_types_fail_when_composed(tmp_path, config, overrides, expected):
    # Hydra's own message, printed by the entry point with exit code 1 before the task starts
    with pytest.raises(HydraException) as info:
        compose_config(config, tmp_path, overrides)
    assert expected in str(info.value).splitlines()[0], str(info.value)


def test_paths_a_folder_where_a_file_is_expected_and_an_unreadable_file(checkpoint, tmp_path, monkeypatch):
    cfg = compose_config("evaluate", tmp_path, [f"ckpt={tmp_path}", "wandb=none"])
    assert "a folder without config.json" in one_line(lambda: run_evaluation(cfg, str(tmp_path)))
    message = one_line(lambda: train(tiny_train_config(tmp_path / "run", f"resume={tmp_path}")))
    assert f"resume={tmp_path}: no such checkpoint file" in message
    # root reads any file whatever its mode, so a read that fails is simulated
    from ddim.models.checkpoints import safe_load as pretrained  # where check_torch_file opens the file

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pretrained, "open", refused, raising=False)
    cfg = compose_config("evaluate", tmp_path, [f"ckpt={checkpoint}", "wandb=none", "dataset=digits"])
    assert one_line(lambda: run_evaluation(cfg, str(tmp_path))) == f"{checkpoint}: cannot be read (Permission denied)"


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_resume_from_a_pickle_carrying_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save({"state_dict": {}, "payload": Payload(marker)}, tmp_path / "evil.ckpt")
    message = one_line(lambda: train(tiny_train_config(tmp_path / "run", f"resume={tmp_path / 'evil.ckpt'}")))
    assert message.startswith(f"resume={tmp_path / 'evil.ckpt'}: the file needs full unpickling") and "refused" in message
    assert not marker.exists()


def image_folder(folder, good: int, size: int = 8, mode: str = "RGB"):
    folder.mkdir(parents=True)
    for i in range(good):
        Image.new(mode, (size, size), color=i * 20).save(folder / f"{i}.png")
    return folder


def test_data_folders_empty_and_with_a_corrupt_image(tmp_path):
    folder_args = ["dataset=folder", "dataset.resolution=8", "model.in_channels=3", "model.out_ch=3",
                   "dataset.batch_size=4", "trainer.max_steps=1"]
    (tmp_path / "empty").mkdir()
    message = one_line(lambda: train(tiny_train_config(tmp_path / "a", *folder_args, f"dataset.root={tmp_path / 'empty'}")))
    assert "no images (.png, .jpg, .jpeg, .webp, .bmp) found under" in message
    # every batch of 4 holds the damaged file: it is named, and training stops with one line
    folder = image_folder(tmp_path / "images", good=3)
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    message = one_line(lambda: train(tiny_train_config(tmp_path / "b", *folder_args, f"dataset.root={folder}")))
    assert message.startswith(f"image {folder / 'bad.png'} cannot be read (") and "remove or replace it" in message


def test_full_disk_while_training_keeps_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(tiny_train_config(run, "trainer.max_steps=2"))
    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def small_disk():  # files may grow to 1 MB: the 11 MB checkpoint cannot be written (EFBIG, as ENOSPC would)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    done = subprocess.run([sys.executable, "train.py", *TINY_TRAIN, f"resume={last}", f"hydra.run.dir={run}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=small_disk)
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: could not write checkpoint {run / 'checkpoints' / 'step_0000004.ckpt'} (File too large); "
                     f"the checkpoint that was there is untouched"], done.stderr[-3000:]
    assert last.read_bytes() == before and not list(last.parent.glob(".*.tmp*"))


def test_wandb_raising_in_a_cell_keeps_its_metrics(checkpoint, tmp_path, monkeypatch, caplog):
    import wandb

    def unreachable(*args, **kwargs):
        raise wandb.errors.CommError("could not reach api.wandb.ai")

    monkeypatch.setattr(wandb, "init", unreachable)
    cfg = compose_config("evaluate", tmp_path, [f"ckpt={checkpoint}", "wandb=online", "eval.num_samples=4",
                                                "eval.batch_size=4", "eval.recon_samples=0", "fid.kid_subsets=0"])
    metrics = run_evaluation(cfg, str(tmp_path))
    assert metrics["status"] == "ok" and (tmp_path / "metrics.json").is_file()
    assert "W&B logging failed (CommError: could not reach api.wandb.ai)" in caplog.text
