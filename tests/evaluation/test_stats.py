"""Fréchet distance and KID against closed forms and independent computations; the pixel boundary; the
reference-statistics cache."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torch_fidelity import FeatureExtractorBase
from torchvision.utils import save_image

from ddim.evaluation.metrics.statistics import (
    FeatureStats,
    extract_features,
    fid_from_stats,
    kid_from_features,
    reference_stats,
    stats_cache_path,
    to_uint8,
)


def correlated_features(num: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = np.eye(dim) + 0.3 * rng.standard_normal((dim, dim))
    return rng.standard_normal((num, dim)) @ mixing + rng.standard_normal(dim)


# ---- the uint8 boundary ----

def test_to_uint8_endpoints_midpoint_and_clamping():
    images = torch.tensor([-1.0, 0.0, 1.0, -1.5, 3.0, -0.5, 0.5])
    # 0 → 128: (0 + 1)/2 · 255 + 0.5 = 128.0, truncated; torchvision's save_image rounding (half up), not 127
    # ±0.5 → 63.75 and 191.25, rounded to nearest: 64 and 191
    assert to_uint8(images).tolist() == [0, 128, 255, 0, 255, 64, 191]
    assert to_uint8(images).dtype == torch.uint8


def test_to_uint8_matches_a_png_written_by_torchvision(tmp_path):
    images = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2
    save_image((images[0] + 1) / 2, tmp_path / "x.png")
    from_png = torch.from_numpy(np.array(Image.open(tmp_path / "x.png"))).permute(2, 0, 1)
    assert torch.equal(to_uint8(images)[0], from_png)


def test_to_uint8_rejects_nan_and_passes_uint8_through():
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(torch.tensor([[0.0, float("nan")]]))
    pixels = torch.arange(256, dtype=torch.uint8)
    assert to_uint8(pixels) is pixels


# ---- Fréchet distance ----

def test_fd_of_a_set_with_itself_is_zero():
    stats = FeatureStats.from_features(correlated_features(3000, 16, seed=0))
    assert abs(fid_from_stats(stats.mu, stats.sigma, stats.mu, stats.sigma)) < 1e-6


def test_fd_of_a_mean_shift_is_the_squared_shift():
    features = correlated_features(3000, 16, seed=1)
    delta = np.linspace(-1.0, 2.0, 16)
    a, b = FeatureStats.from_features(features), FeatureStats.from_features(features + delta)
    np.testing.assert_allclose(b.sigma, a.sigma, atol=1e-10)  # same covariance, so only ‖δ‖² remains
    assert fid_from_stats(a.mu, a.sigma, b.mu, b.sigma) == pytest.approx(float(delta @ delta), rel=1e-6)
    smaller = FeatureStats.from_features(features + delta / 2)
    assert fid_from_stats(a.mu, a.sigma, smaller.mu, smaller.sigma) < fid_from_stats(a.mu, a.sigma, b.mu, b.sigma)


def test_fd_diagonal_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    var1, var2 = rng.uniform(0.1, 3.0, 10), rng.uniform(0.1, 3.0, 10)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    assert fid_from_stats(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)


def test_fd_general_covariances_match_scipy_sqrtm():
    a = FeatureStats.from_features(correlated_features(2000, 8, seed=3))
    b = FeatureStats.from_features(correlated_features(2000, 8, seed=4))
    covmean = scipy.linalg.sqrtm(a.sigma @ b.sigma).real
    expected = np.sum((a.mu - b.mu) ** 2) + np.trace(a.sigma + b.sigma - 2 * covmean)
    assert fid_from_stats(a.mu, a.sigma, b.mu, b.sigma) == pytest.approx(expected, rel=1e-8)


# ---- streamed statistics ----

def test_streamed_stats_equal_one_shot_numpy_and_survive_save_load(tmp_path):
    features = correlated_features(500, 6, seed=5).astype(np.float32)
    stats = FeatureStats(keep_features=True)
    for start in range(0, 500, 64):
        stats.update(torch.from_numpy(features[start : start + 64]))
    assert stats.num_samples == 500
    np.testing.assert_allclose(stats.mu, features.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.sigma, np.cov(features.astype(np.float64), rowvar=False, ddof=1), rtol=1e-12)
    path = stats.save(tmp_path / "stats.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["stats.npz"]  # no temp file left behind
    loaded = FeatureStats.load(path)
    assert loaded.num_samples == 500
    np.testing.assert_array_equal(loaded.features, stats.features)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)


def test_running_sums_keep_no_features_and_lose_no_precision_to_a_large_mean():
    # features with mean 10⁴ and unit spread: Σxxᵀ − n μμᵀ without a shift would lose ~8 of float64's 16 digits
    features = 1e4 + correlated_features(4000, 5, seed=6)
    stats = FeatureStats()
    for start in range(0, 4000, 300):
        stats.update(features[start : start + 300])
    np.testing.assert_allclose(stats.mu, features.mean(0), rtol=1e-13)
    np.testing.assert_allclose(stats.sigma, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match="without keeping the features"):
        _ = stats.features


def test_kid_equals_the_librarys_on_float32_features():
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    a = correlated_features(300, 7, seed=7).astype(np.float32)
    b = (correlated_features(250, 7, seed=8) + 0.3).astype(np.float32)
    library = kid_features_to_metric(torch.from_numpy(a.astype(np.float64)), torch.from_numpy(b.astype(np.float64)),
                                     kid_subsets=5, kid_subset_size=100, rng_seed=11, verbose=False)
    assert kid_from_features(a, b, subsets=5, subset_size=100, seed=11) == (
        library[KEY_METRIC_KID_MEAN], library[KEY_METRIC_KID_STD])


def test_stats_need_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        _ = FeatureStats.from_features(np.zeros((1, 3))).sigma


# ---- KID ----

def unbiased_mmd2_cubic(x: np.ndarray, y: np.ndarray) -> float:
    """Independent formula: unbiased MMD² with k(a, b) = (a·b / d + 1)³."""
    m, d = len(x), x.shape[1]
    kernel = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def test_kid_matches_the_unbiased_mmd_formula_and_caps_the_subset():
    x, y = correlated_features(60, 5, seed=6), correlated_features(50, 5, seed=7) + 0.5
    # one subset as large as the smaller set (capped from 1000); MMD² does not depend on sample order
    mean, std = kid_from_features(x[:50], y, subsets=1, subset_size=1000)
    assert mean == pytest.approx(unbiased_mmd2_cubic(x[:50], y), rel=1e-9)
    assert std == 0.0
    same_mean, _ = kid_from_features(x, x, subsets=5, subset_size=30)
    far_mean, _ = kid_from_features(x, x + 3.0, subsets=5, subset_size=30)
    assert abs(same_mean) < far_mean / 10


# ---- reference statistics cache ----

class PixelFeatures(FeatureExtractorBase):
    """A weightless extractor for tests: the flattened pixels as float features."""

    def __init__(self) -> None:
        super().__init__("test-pixels", ["pixels"])
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # extract_features reads the device from a parameter
        self.calls = 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        self.calls += 1
        return (x.flatten(1).float(),)

    @staticmethod
    def get_provided_features_list() -> tuple[str]:
        return ("pixels",)


class ImagesWithLabels(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], index % 10


class Untouchable(torch.utils.data.Dataset):
    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        raise AssertionError("a cache hit must not index the data set")


def test_reference_stats_cache_hit_does_not_touch_the_dataset(tmp_path):
    images = torch.rand(21, 1, 2, 2, generator=torch.Generator().manual_seed(8)) * 2 - 1
    extractor = PixelFeatures()
    key = {"dataset": "toy", "split": "train", "resolution": 2}
    first = reference_stats(ImagesWithLabels(images), extractor, "test-pixels", tmp_path, key, batch_size=8)
    assert first.num_samples == 21 and extractor.calls == 3  # batches of 8, 8, 5
    np.testing.assert_array_equal(first.features, to_uint8(images).flatten(1).double().numpy())
    cached = list((tmp_path / "reference_stats").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("toy_train_2_test-pixels_n21_")

    second = reference_stats(Untouchable(21), extractor, "test-pixels", tmp_path, key, batch_size=8)
    assert extractor.calls == 3
    np.testing.assert_array_equal(second.features, first.features)
    np.testing.assert_array_equal(second.sigma, first.sigma)


def test_reference_stats_key_changes_the_file():
    base = {"dataset": "toy", "split": "train", "num_samples": 3}
    assert stats_cache_path("c", base) != stats_cache_path("c", {**base, "split": "test"})
    # the hash covers the key's content, not its order
    reordered = stats_cache_path("c", dict(reversed(list(base.items()))))
    assert reordered.name.rsplit("_", 1)[1] == stats_cache_path("c", base).name.rsplit("_", 1)[1]


def test_extract_features_requires_uint8():
    with pytest.raises(TypeError, match="uint8"):
        extract_features(PixelFeatures(), torch.zeros(1, 1, 2, 2))
