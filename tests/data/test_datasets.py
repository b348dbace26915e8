"""The data sets on small fakes written here: digits (bundled), CIFAR-10, CelebA, image folders; the error lines."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import CIFAR10, CelebA

from ddim.data import DATASET_INFO, build_dataset, check_available, digits_split_indices
from ddim.data.datasets import CELEBA_FILES, CIFAR10_FILES


def test_digits_items_shape_and_exact_range():
    train = build_dataset("digits", None, "train", 8)
    images = torch.stack([train[i] for i in range(len(train))])
    assert images.shape == (1437, 1, 8, 8) and images.dtype == torch.float32
    assert images.min() == -1 and images.max() == 1  # 0 and 16 both occur
    assert torch.equal(train[0], build_dataset("digits", None, "train", 8)[0])


def test_digits_split_is_a_fixed_partition():
    train, test = digits_split_indices("train"), digits_split_indices("test")
    assert (len(train), len(test)) == (1437, 360)
    assert not set(train) & set(test)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    assert np.array_equal(train, np.sort(np.random.default_rng(0).permutation(1797)[:1437]))
    assert len(build_dataset("digits", None, "all", 8)) == 1797
    with pytest.raises(ValueError, match="split"):
        digits_split_indices("val")


def test_digits_resize_and_no_flip():
    x = build_dataset("digits", None, "test", 16)[0]
    assert x.shape == (1, 16, 16) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match="flip"):
        build_dataset("digits", None, "train", 8, flip=True)


def test_unknown_name_split_and_resolution_are_one_line():
    with pytest.raises(ValueError, match="expected one of digits, cifar10, celeba, folder"):
        build_dataset("mnist", None, "train", 8)
    with pytest.raises(ValueError, match="no split 'valid'"):
        build_dataset("cifar10", None, "valid", 32)
    for resolution in (0, -8, 8.0, True, "8"):
        with pytest.raises(ValueError, match="resolution"):
            build_dataset("digits", None, "train", resolution)


def write_fake_cifar10(root: Path, per_batch: int = 2) -> None:
    """CIFAR-10's python format: pickled dicts of uint8 rows (1024 R, 1024 G, 1024 B) and labels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    pixel = np.concatenate([np.full(1024, 255), np.zeros(1024), np.full(1024, 51)]).astype(np.uint8)
    for name in CIFAR10_FILES[:-1]:
        batch = {"batch_label": name, "data": np.stack([pixel] * per_batch), "labels": [3] * per_batch,
                 "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))


@pytest.fixture
def no_md5(monkeypatch):
    """The fakes cannot match the real files' md5s: check presence only, as torchvision does for md5=None."""
    monkeypatch.setattr(CIFAR10, "train_list", [[name, None] for name, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[name, None] for name, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": None})
    monkeypatch.setattr(CelebA, "file_list", [(i, None, name) for i, _, name in CelebA.file_list])


def test_cifar10_on_a_fake_folder(tmp_path, no_md5):
    write_fake_cifar10(tmp_path)
    train, test = build_dataset("cifar10", tmp_path, "train", 32), build_dataset("cifar10", tmp_path, "test", 32)
    assert (len(train), len(test)) == (10, 2)
    x = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    # channel order and scaling: R = 255 → 1, G = 0 → -1, B = 51 → 0.2·2 − 1
    assert torch.allclose(x[:, 5, 7], torch.tensor([1.0, -1.0, -0.6]))
    assert build_dataset("cifar10", tmp_path, "train", 16)[0].shape == (3, 16, 16)


def test_cifar10_md5_mismatch_is_one_line(tmp_path):
    write_fake_cifar10(tmp_path)
    with pytest.raises(RuntimeError, match="md5 check") as info:
        build_dataset("cifar10", tmp_path, "train", 32)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def write_fake_celeba(folder: Path, count: int = 6) -> None:
    """img_align_celeba/ with `count` 178x218 JPEGs and the five annotation files, train/valid/test = 2/2/2."""
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(count)]
    for name in names:
        Image.new("RGB", (178, 218), (200, 100, 0)).save(folder / "img_align_celeba" / name)
    # at least 2 per split: torchvision squeezes a 1-image split to a 0-d tensor and fails
    partition = [0, 0, 1, 1, 2, 2][:count]
    rows = {
        "list_eval_partition.txt": [f"{n} {p}" for n, p in zip(names, partition)],
        "identity_CelebA.txt": [f"{n} 1" for n in names],
        "list_attr_celeba.txt": [str(count), "Smiling", *[f"{n} 1" for n in names]],
        "list_bbox_celeba.txt": [str(count), "image_id x_1 y_1 width height", *[f"{n} 0 0 10 10" for n in names]],
        "list_landmarks_align_celeba.txt": [str(count), "lefteye_x lefteye_y", *[f"{n} 69 109" for n in names]],
    }
    assert set(rows) == set(CELEBA_FILES)
    for filename, lines in rows.items():
        (folder / filename).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_celeba_on_a_fake_folder(tmp_path, no_md5, layout):
    write_fake_celeba(tmp_path if layout == "flat" else tmp_path / "celeba")
    train = build_dataset("celeba", tmp_path, "train", 64, flip=True)
    assert len(train) == 2 and len(build_dataset("celeba", tmp_path, "test", 64)) == 2
    x = train[0]
    assert x.shape == (3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert abs(float(x[0].mean()) - (200 / 255 * 2 - 1)) < 0.05  # JPEG moves a flat colour only slightly


def test_folder_crops_and_resizes_every_image(tmp_path):
    (tmp_path / "sub").mkdir()
    # 60x20: thirds red | green | blue, so the centre square is pure green
    stripes = np.zeros((20, 60, 3), np.uint8)
    stripes[:, :20, 0] = stripes[:, 20:40, 1] = stripes[:, 40:, 2] = 255
    Image.fromarray(stripes).save(tmp_path / "a.png")
    Image.new("L", (30, 40), 0).save(tmp_path / "sub" / "b.JPG")
    Image.new("RGBA", (16, 16), (255, 255, 255, 255)).save(tmp_path / "sub" / "c.webp", lossless=True)
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = build_dataset("folder", tmp_path, "all", 16)
    assert len(dataset) == 3
    items = [dataset[i] for i in range(3)]
    assert all(x.shape == (3, 16, 16) and x.dtype == torch.float32 for x in items)
    assert torch.equal(items[0], torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1).expand(3, 16, 16))
    assert items[1].max() <= -0.95 and items[2].min() == 1
    with pytest.raises(ValueError, match="split"):
        build_dataset("folder", tmp_path, "train", 16)


def test_missing_data_is_one_line_naming_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    cases = {
        "cifar10": "CIFAR-10 not found under .*nowhere.*dataset.download=true",
        "celeba": "CelebA not found under .*nowhere.*often fails",
        "folder": "image folder .*nowhere not found",
    }
    for name, pattern in cases.items():
        resolution = DATASET_INFO[name]["resolution"]
        for check in (lambda: check_available(name, missing),
                      lambda: build_dataset(name, missing, DATASET_INFO[name]["train_split"], resolution)):
            with pytest.raises(FileNotFoundError, match=pattern) as info:
                check()
            assert "\n" not in str(info.value)
    missing.mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        build_dataset("folder", missing, "all", 8)
    with pytest.raises(FileNotFoundError, match="dataset.root=PATH"):
        check_available("folder", None)


def test_partial_cifar10_names_the_missing_files(tmp_path):
    write_fake_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="missing test_batch\\)"):
        check_available("cifar10", tmp_path)


def test_dataset_info_lists_reference_and_test_splits():
    for name, info in DATASET_INFO.items():
        assert {info["train_split"], info["test_split"]} <= set(info["splits"])
        assert info["channels"] in (1, 3) and info["resolution"] > 0
    assert (DATASET_INFO["folder"]["train_split"], DATASET_INFO["folder"]["test_split"]) == ("all", "all")
