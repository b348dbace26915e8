"""`python train.py dataset=NAME` trains the data set's own U-Net unless model= is given."""

import subprocess
import sys

import pytest
import torch

from ddim.data import DATASET_INFO
from ddim.models import UNet

from ..data.test_datasets import write_fake_celeba
from ..helpers import ROOT, compose_config

PAPER_PARAMETERS = {"cifar10": 35_746_307, "celeba": 78_700_803}


@pytest.mark.parametrize("dataset", ["digits", "cifar10", "celeba", "folder"])
def test_each_dataset_composes_the_model_for_its_images(tmp_path, dataset):
    extra = ["dataset.root=/anywhere"] if dataset == "folder" else []
    cfg = compose_config("train", tmp_path, [f"dataset={dataset}", *extra])
    info = DATASET_INFO[dataset]
    assert cfg.model.resolution == cfg.dataset.resolution == info["resolution"]
    assert cfg.model.in_channels == cfg.model.out_ch == info["channels"]
    if dataset in PAPER_PARAMETERS:
        assert sum(p.numel() for p in UNet(**cfg.model).parameters()) == PAPER_PARAMETERS[dataset]


@pytest.mark.slow
@pytest.mark.parametrize("resolution, levels", [(32, [1, 2, 2, 2]), (64, [1, 2, 2, 2, 4]), (256, [1, 1, 2, 2, 4, 4])])
def test_folder_model_follows_the_folder_resolution(tmp_path, resolution, levels):
    cfg = compose_config("train", tmp_path, ["dataset=folder", "dataset.root=/x", f"dataset.resolution={resolution}"])
    assert cfg.model.resolution == resolution
    unet = UNet(**cfg.model)
    assert unet.config["ch_mult"] == levels
    assert unet(torch.zeros(1, 3, resolution, resolution), torch.zeros(1, dtype=torch.long)).shape[-1] == resolution


def test_folder_model_at_an_unknown_size_names_the_fix(tmp_path):
    cfg = compose_config("train", tmp_path, ["dataset=folder", "dataset.root=/x", "dataset.resolution=48"])
    with pytest.raises(ValueError, match="ch_mult=auto knows resolutions .* got 48; give model.ch_mult"):
        UNet(**cfg.model)


def test_model_given_by_the_user_wins_and_experiments_keep_their_recipe(tmp_path):
    cfg = compose_config("train", tmp_path, ["dataset=digits", "model=cifar10"])
    assert cfg.model.resolution == 32 and cfg.dataset.name == "digits"
    cfg = compose_config("train", tmp_path, ["experiment=celeba"])
    assert (cfg.dataset.name, cfg.model.resolution, list(cfg.model.ch_mult)) == ("celeba", 64, [1, 2, 2, 2, 4])
    assert cfg.module.ema_decay == 0.9999 and cfg.trainer.max_steps == 500_000


@pytest.mark.slow
def test_train_dataset_celeba_runs_the_celeba_unet_on_a_fake_tree(tmp_path):
    """The design card's command through the real CLI, on a fake CelebA tree (no MD5 of the list files)."""
    write_fake_celeba(tmp_path / "celeba")
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "train.py", "dataset=celeba", f"dataset.root={tmp_path / 'celeba'}", "trainer.max_steps=2",
         "dataset.batch_size=2", "dataset.num_workers=0", "logger=csv", "trainer.accelerator=cpu",
         "callbacks.sample_grid.num_samples=1", "callbacks.sample_grid.steps=1", "trainer.enable_model_summary=false",
         f"hydra.run.dir={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert ckpt["hyper_parameters"]["model"]["ch_mult"] == [1, 2, 2, 2, 4]
    assert ckpt["hyper_parameters"]["data"]["name"] == "celeba"
    weights = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    assert sum(v.numel() for v in weights.values()) == PAPER_PARAMETERS["celeba"]
