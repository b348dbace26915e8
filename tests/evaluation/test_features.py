"""Feature extractors: the digits classifier (deterministic, accurate, a usable Fréchet distance, a proper
torch-fidelity extractor) and the Inception builder's one-line errors, all offline."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torch_fidelity
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

import ddim.evaluation.metrics.features as features_module
from ddim.errors import InputError
from ddim.data import digits_split_indices
from ddim.data.datasets import TensorImages
from ddim.evaluation.metrics.features import (
    DIGITS,
    DIGITS_CONV,
    INCEPTION,
    build_feature_extractor,
    digits_accuracy,
    digits_arrays,
    digits_weights_path,
    metric_name,
    train_digits_classifier,
)
from ddim.evaluation.metrics.statistics import (
    FeatureStats, extract_features, extractor_tag, fid_from_stats, kid_from_features, reference_stats,
)
from ddim.sampling import to_uint8


@pytest.fixture
def digits_extractor():
    """Trained once per session into the session's cache dir (conftest's autouse fixture sets DDIM_CACHE, which
    is why this fixture is function-scoped: a wider scope would be built before that fixture runs)."""
    return build_feature_extractor(DIGITS, None, "cpu")


def stats_of(extractor, images: torch.Tensor) -> FeatureStats:
    return FeatureStats.from_features(extract_features(extractor, to_uint8(images)))


def test_digits_split_is_a_fixed_partition():
    train, test = digits_split_indices("train"), digits_split_indices("test")
    assert (len(train), len(test)) == (1437, 360)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    assert np.array_equal(train, digits_split_indices("train"))
    with pytest.raises(ValueError, match="split"):
        digits_split_indices("val")
    images, labels = digits_arrays("test")
    assert images.shape == (360, 1, 8, 8) and images.min() == -1 and images.max() == 1 and len(labels) == 360


def test_digits_training_is_deterministic_and_leaves_the_global_rng_alone():
    rng_state = torch.get_rng_state()
    first, second = train_digits_classifier(epochs=1), train_digits_classifier(epochs=1)
    assert torch.equal(torch.get_rng_state(), rng_state)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


def test_digits_classifier_is_cached_accurate_and_registered(digits_extractor):
    assert digits_weights_path().is_file()
    assert digits_accuracy(digits_extractor.classifier, "test") > 0.95
    reloaded = build_feature_extractor(DIGITS, None, "cpu")  # from the cache file, no training
    images, _ = digits_arrays("test")
    assert torch.equal(extract_features(reloaded, to_uint8(images[:16])),
                       extract_features(digits_extractor, to_uint8(images[:16])))
    assert reloaded.cache_tag == digits_extractor.cache_tag
    assert torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY[DIGITS] is type(digits_extractor)
    assert metric_name(DIGITS) == "fd_digits" and metric_name(INCEPTION) == "fid"


def test_conv_extractor_is_the_second_conv_block_of_the_same_weights(digits_extractor):
    conv = build_feature_extractor(DIGITS_CONV, None, "cpu")
    assert conv.cache_tag == digits_extractor.cache_tag  # same weights; the extractor name keys the statistics
    assert metric_name(DIGITS_CONV) == "fd_digits_conv"
    assert torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY[DIGITS_CONV] is type(conv)
    images = to_uint8(digits_arrays("test")[0][:32])
    # independently: the classifier's first five layers written out as functional ops on its own weights
    c1, c2 = conv.classifier.body[0], conv.classifier.body[2]
    x = images.float() / 127.5 - 1
    h = torch.nn.functional.relu(torch.nn.functional.conv2d(x, c1.weight, c1.bias, padding=1))
    h = torch.nn.functional.relu(torch.nn.functional.conv2d(h, c2.weight, c2.bias, padding=1))
    expected = torch.nn.functional.max_pool2d(h, 2).reshape(32, 64 * 4 * 4)
    got = extract_features(conv, images)
    assert got.shape == (32, 1024)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the 64-d extractor is unchanged by the second layer's existence
    torch.testing.assert_close(extract_features(digits_extractor, images),
                               conv.classifier.features(x), rtol=0, atol=0)


@pytest.mark.slow
def test_conv_fd_rises_with_pixel_noise(digits_extractor):
    """What fd_digits_conv is for: grain that a sampler leaves in the pixels raises it."""
    conv = build_feature_extractor(DIGITS_CONV, None, "cpu")
    train, _ = digits_arrays("train")
    test, _ = digits_arrays("test")
    reference = stats_of(conv, train)
    noise = torch.randn(test.shape, generator=torch.Generator().manual_seed(0))
    fd = [fid_from_stats(reference.mu, reference.sigma, s.mu, s.sigma)
          for s in (stats_of(conv, (test + sigma * noise).clamp(-1, 1)) for sigma in (0.0, 0.2, 0.4))]
    assert fd[0] * 1.1 < fd[1] < fd[2]  # measured: 20.9, 25.6, 43.3


def test_digits_fd_separates_real_digits_from_noise(digits_extractor):
    train, _ = digits_arrays("train")
    test, _ = digits_arrays("test")
    noise = torch.rand(test.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    reference = stats_of(digits_extractor, train)
    fd = lambda other: fid_from_stats(reference.mu, reference.sigma, other.mu, other.sigma)  # noqa: E731
    real, half, random = fd(stats_of(digits_extractor, test)), fd(stats_of(digits_extractor, torch.cat(
        [test[:180], noise[:180]]))), fd(stats_of(digits_extractor, noise))
    assert stats_of(digits_extractor, test).mu.shape == (64,)
    assert real < half < random and random > 10 * real


@pytest.mark.slow
@pytest.mark.parametrize("name", [DIGITS, DIGITS_CONV])
def test_torch_fidelity_computes_the_same_fd_with_our_extractor(name):
    """Registration works end to end: the library's own pipeline on uint8 tensors equals our streamed path."""
    digits_extractor = build_feature_extractor(name, None, "cpu")
    train, _ = digits_arrays("train")
    test, _ = digits_arrays("test")
    a, b = to_uint8(train[:300]), to_uint8(test[:200])
    metrics = torch_fidelity.calculate_metrics(
        input1=TensorImages(a), input2=TensorImages(b), feature_extractor=name, fid=True, kid=True,
        kid_subsets=3, kid_subset_size=100, cuda=False, cache=False, verbose=False, save_cpu_ram=True, batch_size=128,
    )
    ours_a, ours_b = stats_of(digits_extractor, train[:300]), stats_of(digits_extractor, test[:200])
    # Both paths run the same float32 network on different batches, so features agree to BLAS order (~1e-6
    # relative), and each metric is a difference of terms far larger than itself: FD of ‖μ‖² and tr Σ, KID of
    # kernel means. The tolerance is 1e-6 of those terms, not of the metric (KID's terms are ~400x KID here).
    fd_terms = sum(float(np.trace(s.sigma) + s.mu @ s.mu) for s in (ours_a, ours_b))
    assert metrics["frechet_inception_distance"] == pytest.approx(
        fid_from_stats(ours_a.mu, ours_a.sigma, ours_b.mu, ours_b.sigma), abs=1e-6 * fd_terms)
    kid_mean, _ = kid_from_features(ours_a.features, ours_b.features, subsets=3, subset_size=100)
    assert metrics["kernel_inception_distance_mean"] == pytest.approx(
        kid_mean, abs=1e-6 * cubic_kernel_terms(ours_a.features, ours_b.features))


def cubic_kernel_terms(f1: np.ndarray, f2: np.ndarray) -> float:
    """mean|k(x,x')| + mean|k(y,y')| + 2 mean|k(x,y)| with KID's kernel k(x, y) = (x·y/d + 1)³."""
    x, y = (np.asarray(f, dtype=np.float64) for f in (f1, f2))
    kernel = lambda u, v: np.abs((u @ v.T / x.shape[1] + 1) ** 3).mean()  # noqa: E731
    return float(kernel(x, x) + kernel(y, y) + 2 * kernel(x, y))


# ---- Inception: errors before any work, never a download ----

def _forbid_construction(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("InceptionV3 must not be built when the weights file is missing")

    monkeypatch.setattr(features_module, "FeatureExtractorInceptionV3", refuse)


def _assert_one_line_with_the_fix(message: str) -> None:
    assert "\n" not in message
    assert "fid.weights=PATH" in message and URL_INCEPTION_V3 in message


def test_missing_inception_weights_fail_in_one_line_before_building(tmp_path, monkeypatch):
    _forbid_construction(monkeypatch)
    missing = tmp_path / "weights-inception.pth"
    with pytest.raises(InputError) as error:
        build_feature_extractor(INCEPTION, missing, "cpu")
    _assert_one_line_with_the_fix(str(error.value))
    assert f"fid.weights={missing}: no such file" in str(error.value)


def test_offline_inception_download_fails_in_one_line(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", offline)
    with pytest.raises(InputError, match="could not be downloaded") as error:
        build_feature_extractor(INCEPTION, None, "cpu")
    _assert_one_line_with_the_fix(str(error.value))


def test_corrupt_inception_weights_fail_in_one_line(tmp_path):
    corrupt = tmp_path / "weights.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="could not be loaded") as error:
        build_feature_extractor(INCEPTION, corrupt, "cpu")
    _assert_one_line_with_the_fix(str(error.value))


def test_unknown_extractor_and_missing_digits_weights(tmp_path):
    with pytest.raises(ValueError, match="unknown feature extractor"):
        build_feature_extractor("resnet", None, "cpu")
    with pytest.raises(FileNotFoundError, match="no such file"):
        build_feature_extractor(DIGITS, tmp_path / "nope.pt", "cpu")


@pytest.mark.slow
def test_inception_from_a_weights_file_takes_gray_images(tmp_path, monkeypatch):
    """A randomly initialised InceptionV3 saved to disk goes through the real weights-path branch; 1-channel images
    give the same 2048-d features as their 3-channel repeat."""
    with monkeypatch.context() as patch:
        patch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        random_weights = FeatureExtractorInceptionV3(INCEPTION, ["2048"]).state_dict()
    torch.save(random_weights, tmp_path / "inception.pth")
    del random_weights
    extractor = build_feature_extractor(INCEPTION, tmp_path / "inception.pth", "cpu")
    gray = to_uint8(torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    features = extract_features(extractor, gray)
    assert features.shape == (2, 2048)
    assert torch.equal(features, extract_features(extractor, gray.repeat(1, 3, 1, 1)))


def _random_inception_file(path, seed: int, monkeypatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(seed)
        torch.save(FeatureExtractorInceptionV3(INCEPTION, ["2048"]).state_dict(), path)


@pytest.mark.slow
def test_reference_statistics_are_keyed_by_the_inception_weights_not_the_file_name(tmp_path, monkeypatch):
    for name, seed in (("a.pth", 0), ("b.pth", 1), ("a_copy.pth", 0)):
        _random_inception_file(tmp_path / name, seed, monkeypatch)
    a, b, a_copy = (build_feature_extractor(INCEPTION, tmp_path / n, "cpu") for n in ("a.pth", "b.pth", "a_copy.pth"))
    assert extractor_tag(a) != extractor_tag(b) and extractor_tag(a) == extractor_tag(a_copy)
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    cache, key = tmp_path / "cache", {"dataset": "made-up", "split": "train", "resolution": 8}
    first = reference_stats(images, a, INCEPTION, cache, key, batch_size=3)
    other = reference_stats(images, b, INCEPTION, cache, key, batch_size=3)
    assert len(list((cache / "reference_stats").glob("*.npz"))) == 2  # other weights: another entry, not a hit
    assert not np.allclose(first.mu, other.mu)
    again = reference_stats(images, a_copy, INCEPTION, cache, key, batch_size=3)  # same weights: the cache hit
    assert len(list((cache / "reference_stats").glob("*.npz"))) == 2
    np.testing.assert_array_equal(again.mu, first.mu)
