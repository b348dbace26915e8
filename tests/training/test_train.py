"""End to end: the real config, shrunk; train, look at the files, resume (DDP: test_ddp_randomness.py; SIGTERM and
exact resume: test_resume_exact.py; SLURM's requeue on SIGUSR1, on two nodes: tests/cluster/test_training.py)."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from PIL import Image

from ddim.training.callbacks import CheckpointOnInterrupt
from ddim.training.cli import EXIT_BAD_INPUT, run_train
from ddim.training.train import train

from ..helpers import ROOT, TINY_TRAIN, compose_config, tiny_train_config


@pytest.mark.slow
def test_train_writes_checkpoint_and_grid_then_resumes_with_step_and_ema(tmp_path):
    first = train(tiny_train_config(tmp_path / "a"))
    ckpt_path = tmp_path / "a" / "checkpoints" / "last.ckpt"
    assert first["checkpoint"] == str(ckpt_path) and first["global_step"] == 4
    assert first["loss"] is not None and first["loss"] > 0
    grid = Image.open(tmp_path / "a" / "samples" / "last.png")
    assert grid.size[0] > 8 and grid.size[1] > 8
    assert (tmp_path / "a" / "samples" / "step_0000002.png").is_file()

    # our checkpoints are readable without running pickled code, and carry the architecture and data set
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4
    assert ckpt["hyper_parameters"]["model"]["ch"] == 32
    assert ckpt["hyper_parameters"]["data"]["name"] == "digits"
    assert int(ckpt["state_dict"]["ema.n_averaged"]) == 4
    assert any(k.startswith("ema.module.conv_in") for k in ckpt["state_dict"])

    second = train(tiny_train_config(tmp_path / "b", f"resume={ckpt_path}", "trainer.max_steps=6"))
    assert second["global_step"] == 6
    resumed = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # the EMA carried on from the first run's average: 4 updates then 2 more
    assert int(resumed["state_dict"]["ema.n_averaged"]) == 6
    assert resumed["optimizer_states"][0]["state"][0]["step"].item() == 6


@pytest.mark.slow
def test_logger_none_trains_samples_and_checkpoints_through_the_cli(tmp_path):
    # the config's LearningRateMonitor has nothing to log to: train drops it rather than refusing to start
    done = subprocess.run([sys.executable, "train.py", *TINY_TRAIN, "logger=none", "trainer.max_steps=2",
                           f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"checkpoint: {tmp_path / 'checkpoints' / 'last.ckpt'}" in done.stdout
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert (tmp_path / "samples" / "last.png").is_file() and (tmp_path / "samples" / "step_0000002.png").is_file()
    assert not (tmp_path / "csv").exists() and not (tmp_path / "wandb").exists()


@pytest.mark.slow
def test_wandb_logger_offline_writes_its_run_and_the_csv_log(tmp_path):
    # logger=wandb is the default: an offline W&B run plus a CSV log, the learning rate in both
    train(tiny_train_config(tmp_path, "logger=wandb", "trainer.max_steps=2"))
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train/loss" in header and "lr-Adam" in header


def test_missing_resume_file_is_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"resume=.*nope.ckpt: no such checkpoint file"):
        train(tiny_train_config(tmp_path, f"resume={tmp_path / 'nope.ckpt'}"))


def test_model_that_does_not_fit_the_data_is_one_clear_line(tmp_path):
    with pytest.raises(ValueError, match=r"model takes 3x8x8 images but dataset digits gives 1x8x8"):
        train(tiny_train_config(tmp_path, "model.in_channels=3"))


@pytest.mark.parametrize("overrides,message", [
    (["dataset=cifar10", "dataset.root=/no/such/dir", "model=cifar10"], "CIFAR-10 not found under /no/such/dir"),
    (["diffusion.name=sigmoid"], "unknown noise schedule 'sigmoid'"),
    (["callbacks.sample_grid.eta=-1"], "sampler.eta=-1; expected a number"),
    (["callbacks.sample_grid.skip=cubic"], "sampler.skip='cubic'; expected one of uniform, quad, trailing"),
    (["resume=/no/such.ckpt"], "resume=/no/such.ckpt: no such checkpoint file"),
])
def test_train_bad_input_is_one_line_before_any_work(tmp_path, capsys, overrides, message):
    """What train.py runs (run_train on the composed config), in-process: exit 2 and one line, nothing written."""
    assert run_train(compose_config("train", tmp_path, [*overrides, "logger=none"])) == EXIT_BAD_INPUT
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_train_py_exits_2_with_the_one_line(tmp_path):
    """The command itself: Hydra's entry point passes run_train's code and line through."""
    done = subprocess.run([sys.executable, "train.py", "resume=/no/such.ckpt", "logger=none",
                           f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_BAD_INPUT, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: resume=/no/such.ckpt: no such checkpoint file"], done.stderr[-2000:]
    assert not (tmp_path / "checkpoints").exists()


def train_popen(*overrides: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "train.py", *overrides], cwd=ROOT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("sigterm,exception,saved", [
    (True, SIGTERMException(), True),
    (True, RuntimeError("DataLoader worker (pid 7) is killed by signal: Terminated"), True),  # the same SIGTERM
    (False, KeyboardInterrupt(), True),
    (False, RuntimeError("loss is nan"), False),  # a failed run is not a state to continue from
])
def test_checkpoint_on_interrupt_saves_only_when_the_run_was_stopped(tmp_path, sigterm, exception, saved):
    written = []
    trainer = SimpleNamespace(received_sigterm=sigterm, global_step=3, save_checkpoint=written.append)
    CheckpointOnInterrupt(str(tmp_path / "last.ckpt")).on_exception(trainer, None, exception)
    assert written == ([tmp_path / "last.ckpt"] if saved else [])


def nan_at(step: int):
    """A diffusion_loss that is NaN for the batch that would make optimizer step `step`."""
    from ddim.training.module import DiffusionModule

    original = DiffusionModule.diffusion_loss

    def loss(self, x0, generator=None):
        value = original(self, x0, generator)
        return value * float("nan") if self.trainer.global_step + 1 == step else value

    return loss


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from ddim.training.module import DiffusionModule, NonFiniteLossError

    monkeypatch.setattr(DiffusionModule, "diffusion_loss", nan_at(3))
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 3; stopped .* module.nonfinite_loss=skip"):
        train(tiny_train_config(tmp_path))
    kept = {p.name: torch.load(p, weights_only=True) for p in (tmp_path / "checkpoints").glob("*.ckpt")}
    assert set(kept) == {"last.ckpt", "step_0000002.ckpt"}
    assert all(c["global_step"] == 2 for c in kept.values())
    assert all(torch.isfinite(v).all() for v in kept["last.ckpt"]["state_dict"].values() if v.is_floating_point())


@pytest.mark.slow
def test_nan_loss_with_skip_skips_that_step_and_trains_on(tmp_path, monkeypatch):
    from ddim.training.module import DiffusionModule

    monkeypatch.setattr(DiffusionModule, "diffusion_loss", nan_at(3))
    result = train(tiny_train_config(tmp_path, "module.nonfinite_loss=skip"))
    ckpt = torch.load(result["checkpoint"], weights_only=True)
    assert ckpt["global_step"] == 4
    assert int(ckpt["state_dict"]["ema.n_averaged"]) == 3  # no EMA update from the skipped step
    assert ckpt["optimizer_states"][0]["state"][0]["step"].item() == 3  # nor an Adam update
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_wandb_raising_at_start_leaves_the_run_and_its_csv_log(tmp_path, monkeypatch):
    import wandb

    def unreachable(*args, **kwargs):
        raise wandb.errors.CommError("could not reach api.wandb.ai")

    monkeypatch.setattr(wandb, "init", unreachable)
    result = train(tiny_train_config(tmp_path, "logger=wandb", "trainer.max_steps=2"))
    assert result["global_step"] == 2 and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert "train/loss" in (tmp_path / "csv" / "metrics.csv").read_text()


@pytest.mark.slow
def test_cosine_lr_decay_ends_the_run_at_zero_and_needs_a_step_limit(tmp_path):
    result = train(tiny_train_config(tmp_path / "run", "module.lr=1e-3", "module.lr_decay=cosine"))
    ckpt = torch.load(result["checkpoint"], weights_only=True)
    # warm-up 2, then cos over steps 2..4: the LR the scheduler left after step 3 is 1e-3 · 0.5 (1 + cos(π / 2))
    assert ckpt["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(0.0, abs=1e-12)
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 4
    with pytest.raises(ValueError, match=r"module.lr_decay=cosine decays to 0 at trainer.max_steps, which is -1"):
        train(tiny_train_config(tmp_path / "endless", "module.lr_decay=cosine", "trainer.max_steps=-1",
                                "trainer.max_epochs=1"))
