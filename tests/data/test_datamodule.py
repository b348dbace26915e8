"""The data module on digits, its eager validation, and the dataset config group."""

from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from ddim.data import DiffusionDataModule

CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"


def test_digits_batches():
    datamodule = DiffusionDataModule("digits", resolution=8, batch_size=100, seed=0)
    datamodule.check_available()
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    assert len(loader) == 1437 // 100  # drop_last: every batch full
    batch = next(iter(loader))
    assert batch.shape == (100, 1, 8, 8) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1
    assert datamodule.channels == 1 and datamodule.resolution == 8
    # a seed fixes the order regardless of the global RNG
    torch.manual_seed(123)
    again = next(iter(DiffusionDataModule("digits", resolution=8, batch_size=100, seed=0).train_dataloader()))
    assert torch.equal(batch, again)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"name": "mnist"}, "expected one of digits, cifar10, celeba, folder"),
    ({"resolution": 0}, "dataset.resolution=0"),
    ({"batch_size": 0}, "dataset.batch_size=0"),
    ({"num_workers": -1}, "dataset.num_workers=-1"),
    ({"flip": True}, "flip"),
])
def test_bad_arguments_fail_when_built(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        DiffusionDataModule(**{"name": "digits", "resolution": 8, "batch_size": 16, **kwargs})


def test_batch_larger_than_the_data_set_is_caught():
    with pytest.raises(ValueError, match="fewer than dataset.batch_size=2000"):
        DiffusionDataModule("digits", resolution=8, batch_size=2000).setup("fit")


def test_missing_cifar10_is_caught_before_setup(tmp_path):
    datamodule = DiffusionDataModule("cifar10", root=str(tmp_path), resolution=32, batch_size=8, flip=True)
    assert datamodule.channels == 3
    with pytest.raises(FileNotFoundError, match=f"CIFAR-10 not found under {tmp_path}"):
        datamodule.check_available()
    # download=true defers to prepare_data, which must not run here (no network in tests)
    DiffusionDataModule("cifar10", root=str(tmp_path), resolution=32, batch_size=8, download=True).check_available()


@pytest.mark.parametrize("name", ["digits", "cifar10", "celeba", "folder"])
def test_dataset_configs_instantiate(name, monkeypatch, tmp_path):
    monkeypatch.setenv("DDIM_DATA", str(tmp_path))
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg.name == name and cfg.download is False
    if name == "folder":
        assert OmegaConf.is_missing(cfg, "root")
        cfg.root = str(tmp_path)
    datamodule = hydra.utils.instantiate(cfg)
    assert isinstance(datamodule, DiffusionDataModule)
    if name in ("cifar10", "celeba"):
        assert datamodule.root == str(tmp_path / name) and datamodule.flip
