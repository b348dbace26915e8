"""The data sets: sklearn's 8x8 digits, CIFAR-10, CelebA (the DDIM crop) and any folder of images.

Every item is one float CHW tensor in the model range [-1, 1] (no label). A missing data set is one line naming
the path and the fix, raised before any loading work.

Over 300 lines: one short loader per data set beside the DATASET_INFO table that names them, read together."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, CelebA

from ddim.errors import InputError, MissingInputError

from .transforms import celeba_crop, center_crop_square, image_transform, to_model_range

# resolution: the default (and the paper's); channels: what items have; train_split: the "training set" FID
# reference statistics come from (and what the data module trains on); test_split: the set reconstruction uses.
DATASET_INFO: dict[str, dict[str, Any]] = {
    "digits": {"resolution": 8, "channels": 1, "train_split": "train", "test_split": "test",
               "splits": ("train", "test", "all")},
    "cifar10": {"resolution": 32, "channels": 3, "train_split": "train", "test_split": "test",
                "splits": ("train", "test")},
    "celeba": {"resolution": 64, "channels": 3, "train_split": "train", "test_split": "test",
               "splits": ("train", "valid", "test", "all")},
    "folder": {"resolution": 64, "channels": 3, "train_split": "all", "test_split": "all", "splits": ("all",)},
}

DIGITS_NUM_IMAGES = 1797
DIGITS_SPLIT_SEED = 0
DIGITS_TRAIN_FRACTION = 0.8

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")
CELEBA_IMAGES = "img_align_celeba"
# torchvision's CelebA parses all five annotation files, even when no target is asked for
CELEBA_FILES = ("list_eval_partition.txt", "identity_CelebA.txt", "list_attr_celeba.txt", "list_bbox_celeba.txt",
                "list_landmarks_align_celeba.txt")
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def digits_split_indices(split: str) -> np.ndarray:
    """Sorted indices into sklearn's load_digits: "train" is the first 80% of a seed-0 permutation, "test" the rest."""
    if split == "all":
        return np.arange(DIGITS_NUM_IMAGES)
    permutation = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(DIGITS_NUM_IMAGES)
    num_train = int(DIGITS_TRAIN_FRACTION * DIGITS_NUM_IMAGES)
    if split == "train":
        return np.sort(permutation[:num_train])
    if split == "test":
        return np.sort(permutation[num_train:])
    raise InputError(f"digits split {split!r}; expected train, test or all")


def default_root(name: str) -> Path:
    """$DDIM_DATA/<name> (else data/<name>): where a data set lives when dataset.root is not given."""
    return Path(os.environ.get("DDIM_DATA") or "data") / name


def _check_name(name: str) -> None:
    if name not in DATASET_INFO:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_INFO)}")


def validate(name: str, resolution: Any, split: str | None = None) -> None:
    """One-line InputError (a ValueError) for an unknown name, a resolution that is not a positive int, or an unknown split."""
    _check_name(name)
    # bool is an int subclass: dataset.resolution=true is a mistake, not 1
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise InputError(f"dataset.resolution={resolution!r}; expected a positive integer")
    splits = DATASET_INFO[name]["splits"]
    if split is not None and split not in splits:
        raise InputError(f"dataset {name} has no split {split!r}; expected one of {', '.join(splits)}")


def check_available(name: str, root: str | os.PathLike | None, download: bool = False) -> None:
    """Raises one-line MissingInputError (a FileNotFoundError) when the data set is not on disk (and will not be downloaded)."""
    _check_name(name)
    if name == "digits":
        return  # bundled with scikit-learn
    if name == "folder":
        path = _folder_root(root)
        if next(_iter_images(path), None) is None:  # stop at the first image: folders can be huge
            _no_images(path)
        return
    if download:
        return  # prepare_data / build_dataset fetch it
    path = _resolve_root(name, root)
    if name == "cifar10":
        _check_cifar10(path)
    else:
        _celeba_layout(path)


def build_dataset(name: str, root: str | os.PathLike | None, split: str, resolution: int, download: bool = False,
                  flip: bool = False) -> Dataset:
    """The named data set's split as a Dataset of float CHW tensors in [-1, 1]; flip adds random horizontal flips.

    digits: sklearn's 1,797 8x8 gray images (0..16 → x/16); another resolution resizes them bilinearly. cifar10:
    torchvision's CIFAR-10 (32x32 RGB; another resolution resizes). celeba: the aligned images cropped at top 57,
    left 25 to 128x128 (the official DDIM crop), then resized to resolution. folder: every png/jpg/jpeg/webp/bmp
    under root (recursively, sorted), centre-cropped to a square and resized; split "all" only. root None means
    $DDIM_DATA/<name> (else data/<name>); digits ignores it.
    """
    validate(name, resolution, split)
    if name == "digits":
        if flip:
            raise InputError("dataset digits: flip=true mirrors digits into non-digits; use flip=false")
        return _digits(split, resolution)
    if name == "folder":
        return _folder(root, resolution, flip)
    check_available(name, root, download)
    path = _resolve_root(name, root)
    if name == "cifar10":
        return _cifar10(path, split, resolution, download, flip)
    return _celeba(path, split, resolution, download, flip)


def download_dataset(name: str, root: str | os.PathLike | None) -> None:
    """Fetches cifar10 or celeba into root if it is not there yet; digits and folder need nothing."""
    _check_name(name)
    if name in ("cifar10", "celeba"):
        build_dataset(name, root, DATASET_INFO[name]["train_split"], DATASET_INFO[name]["resolution"], download=True)


class CorruptDataError(InputError, RuntimeError):
    """Data set files that fail their check: bad input (a RuntimeError too, as torchvision reports it)."""


class TensorImages(Dataset):
    """Images held in one [N, C, H, W] tensor; items are single images."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


class ImagesOnly(Dataset):
    """A torchvision data set of (image, target) pairs seen as images only."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.dataset[index][0]


class ImageFiles(Dataset):
    """A list of image files, each read with PIL and transformed."""

    def __init__(self, paths: list[Path], transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.paths = paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        try:
            with Image.open(self.paths[index]) as image:
                return self.transform(image)
        except OSError as error:  # PIL's UnidentifiedImageError and truncated files are OSErrors
            raise InputError(f"image {self.paths[index]} cannot be read ({error}); remove or replace it") from None


@functools.lru_cache(maxsize=1)
def _digits_bunch() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits: images [1797, 8, 8] with values 0..16 and their labels (read once per process)."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    if len(digits.images) != DIGITS_NUM_IMAGES:
        raise RuntimeError(f"sklearn's digits has {len(digits.images)} images; expected {DIGITS_NUM_IMAGES}")
    return digits.images, digits.target


def _digits_pixels() -> np.ndarray:
    return _digits_bunch()[0]


def digits_arrays(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's images in model range [-1, 1] as float32 [N, 1, 8, 8] (x/16·2 − 1) and their int64 labels (the
    digits classifier's training data)."""
    images, labels = _digits_bunch()
    index = digits_split_indices(split)
    pixels = torch.from_numpy(images[index].astype(np.float32)).unsqueeze(1) / 16 * 2 - 1
    return pixels, torch.from_numpy(labels[index].astype(np.int64))


def _digits(split: str, resolution: int) -> TensorImages:
    images = torch.from_numpy(_digits_pixels()[digits_split_indices(split)].astype(np.float32)).unsqueeze(1) / 16
    if resolution != images.shape[-1]:
        images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False,
                               antialias=True).clamp(0, 1)
    return TensorImages(to_model_range(images))


def _resolve_root(name: str, root: str | os.PathLike | None) -> Path:
    return Path(root).expanduser() if root is not None else default_root(name)


def _check_cifar10(path: Path) -> None:
    missing = [f for f in CIFAR10_FILES if not (path / CIFAR10_FOLDER / f).is_file()]
    if missing:
        raise MissingInputError(
            f"CIFAR-10 not found under {path.resolve()} (expected {CIFAR10_FOLDER}/ with {', '.join(CIFAR10_FILES)}"
            f"{_missing(missing, CIFAR10_FILES)}); pass dataset.download=true to fetch it, or dataset.root=PATH")


def _missing(missing: list[str], expected: tuple[str, ...]) -> str:
    """"; missing a, b" when only part of a data set is there (a partial copy), else nothing."""
    return f"; missing {', '.join(missing)}" if len(missing) < len(expected) else ""


def _cifar10(path: Path, split: str, resolution: int, download: bool, flip: bool) -> Dataset:
    transform = image_transform(resolution, flip=flip)
    try:
        dataset = CIFAR10(str(path), train=split == "train", transform=transform, download=download)
    except RuntimeError as err:
        if "corrupted" not in str(err):
            raise
        raise CorruptDataError(
            f"CIFAR-10 under {path.resolve()} fails torchvision's md5 check (a partial or altered download); delete "
            f"{(path / CIFAR10_FOLDER).resolve()} and pass dataset.download=true") from err
    except OSError as err:  # URLError is an OSError: no network, proxy, server down (exit 1, one line)
        raise OSError(f"could not download CIFAR-10 into {path.resolve()} ({err}); fetch {CIFAR10.url} by hand "
                           f"and extract it there") from err
    return ImagesOnly(dataset)


def _celeba_layout(path: Path) -> str:
    """The sub-folder of path holding CelebA: "" (path is the CelebA folder) or "celeba" (torchvision's layout)."""
    for base in ("", "celeba"):
        folder = path / base
        if (folder / CELEBA_IMAGES).is_dir() and all((folder / f).is_file() for f in CELEBA_FILES):
            return base
    folder = path / "celeba" if (path / "celeba").is_dir() else path
    expected = (CELEBA_IMAGES + "/", *CELEBA_FILES)
    missing = [f for f in expected if not (folder / f).exists()]
    raise MissingInputError(
        f"CelebA not found under {path.resolve()} (expected {CELEBA_IMAGES}/ and {', '.join(CELEBA_FILES)} there or "
        f"in celeba/{_missing(missing, expected)}); get img_align_celeba.zip and the annotation files from "
        f"{CELEBA_URL} and unzip them there (dataset.download=true uses torchvision's Google Drive download, which "
        f"needs gdown and often fails on quota), or pass dataset.root=PATH")


class FlatCelebA(CelebA):
    """torchvision's CelebA reading from root/<base_folder>, so root may be the CelebA folder itself."""

    def __init__(self, root: str, base_folder: str, **kwargs: Any) -> None:
        self.base_folder = base_folder  # read by the parent's __init__ for every file path
        super().__init__(root, **kwargs)

    def _check_integrity(self) -> bool:
        # Presence, not torchvision's MD5s: those cover only the five list files (never the images), and copies
        # from mirrors re-save them; a download still checks MD5s as it fetches, and parsing catches bad lists.
        folder = Path(self.root) / self.base_folder
        return (folder / CELEBA_IMAGES).is_dir() and all((folder / f).is_file() for f in CELEBA_FILES)


def _celeba(path: Path, split: str, resolution: int, download: bool, flip: bool) -> Dataset:
    try:
        base = _celeba_layout(path)
    except MissingInputError:
        if not download:
            raise
        base = ""  # download straight into root, the layout the error message asks for
    transform = image_transform(resolution, crop=celeba_crop, flip=flip)
    try:
        dataset = FlatCelebA(str(path), base, split=split, target_type=[], transform=transform, download=download)
    except RuntimeError as err:
        if "corrupted" not in str(err) and not download:
            raise
        raise (OSError if download else CorruptDataError)(
            f"CelebA under {path.resolve()} could not be {'downloaded' if download else 'verified'} ({err}); "
            f"torchvision's Google Drive download often fails: get img_align_celeba.zip and the annotation files "
            f"from {CELEBA_URL} and unzip them there") from err
    return ImagesOnly(dataset)


def _folder_root(root: str | os.PathLike | None) -> Path:
    if root is None:
        raise MissingInputError("dataset folder needs dataset.root=PATH (a folder of images)")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise MissingInputError(f"image folder {path.resolve()} not found; pass dataset.root=PATH (a folder of images)")
    return path


def _iter_images(path: Path) -> Iterator[Path]:
    """Image files under path, recursively, by extension (case-insensitive); hidden files and folders skipped."""
    for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in filenames:
            if not filename.startswith(".") and filename.lower().endswith(IMAGE_EXTENSIONS):
                yield Path(dirpath) / filename


def _no_images(path: Path) -> None:
    raise MissingInputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {path.resolve()}; "
                            f"pass dataset.root=PATH (a folder of images)")


def _folder(root: str | os.PathLike | None, resolution: int, flip: bool) -> ImageFiles:
    path = _folder_root(root)
    paths = sorted(_iter_images(path))  # sorted: the same index is the same image on every machine
    if not paths:
        _no_images(path)
    return ImageFiles(paths, image_transform(resolution, crop=center_crop_square, flip=flip))


__all__ = [
    "DATASET_INFO", "CorruptDataError", "ImageFiles", "ImagesOnly", "TensorImages", "build_dataset", "check_available", "default_root",
    "digits_split_indices", "download_dataset", "validate",
]
