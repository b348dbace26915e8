"""Bootstrap intervals and FD∞ from stored features, on Gaussians whose answers are known: the weighted FD against
torch-fidelity's, the interval's coverage of the N-sample FD's mean, paired against unpaired widths, and FD∞
against the closed-form FD of the two Gaussians."""

from __future__ import annotations

import numpy as np
import pytest

from ddim.evaluation.metrics.bootstrap import (
    FrechetToReference, bootstrap_interval, extrapolation_sizes, percentile_interval, resample_counts, subset_counts,
)
from ddim.evaluation.metrics.statistics import FeatureStats, fid_from_stats


def gaussian(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A mean and a full-rank covariance."""
    rng = np.random.default_rng(seed)
    mixing = np.eye(dim) + 0.3 * rng.standard_normal((dim, dim))
    return rng.standard_normal(dim) * 0.5, mixing @ mixing.T


def draw(rng: np.random.Generator, mu: np.ndarray, sigma: np.ndarray, num: int) -> np.ndarray:
    return rng.multivariate_normal(mu, sigma, num)


def fd(features: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray) -> float:
    stats = FeatureStats.from_features(features, keep_features=False)
    return fid_from_stats(stats.mu, stats.sigma, mu_ref, sigma_ref)


@pytest.mark.parametrize("num, dim", [(300, 6), (5, 6)])  # more distinct rows than dimensions, and fewer
def test_weighted_fd_is_the_fd_of_the_repeated_rows(num, dim):
    rng = np.random.default_rng(0)
    (mu, sigma), (mu_ref, sigma_ref) = gaussian(dim, 1), gaussian(dim, 2)
    features = draw(rng, mu, sigma, num).astype(np.float32)
    distance = FrechetToReference(features, mu_ref, sigma_ref)
    assert distance.distance(np.ones(num, dtype=int)) == pytest.approx(fd(features, mu_ref, sigma_ref), rel=1e-7)
    counts = resample_counts(3, num, 0)
    assert counts.sum() == num
    repeated = np.repeat(features, counts, axis=0)
    assert distance.distance(counts) == pytest.approx(fd(repeated, mu_ref, sigma_ref), rel=1e-7)
    # a batch gives what one at a time gives (to the rounding of √λ for the λ ≈ 0 of rows a resample leaves out)
    batch = np.stack([resample_counts(3, num, b) for b in range(4)])
    np.testing.assert_allclose(distance.distances(batch), [distance.distance(c) for c in batch], rtol=1e-7)


def test_resamples_are_keyed_by_seed_n_and_index_alone():
    np.testing.assert_array_equal(resample_counts(0, 50, 3), resample_counts(0, 50, 3))
    assert not np.array_equal(resample_counts(0, 50, 3), resample_counts(0, 50, 4))
    assert not np.array_equal(resample_counts(0, 50, 3), resample_counts(1, 50, 3))
    features = np.random.default_rng(1).standard_normal((40, 3))
    distance = FrechetToReference(features, np.zeros(3), np.eye(3))
    # resample b is the same whatever B, and a later batch continues where an earlier one stopped (to rounding: the
    # batches, and so the order of the sums, differ)
    np.testing.assert_allclose(distance.replicates(7, 3), distance.replicates(7, 5)[:3], rtol=1e-12)
    np.testing.assert_allclose(distance.replicates(7, 2, start=3), distance.replicates(7, 5)[3:], rtol=1e-12)
    assert subset_counts(0, 50, 20).sum() == 20 and set(np.unique(subset_counts(0, 50, 20))) == {0, 1}
    assert extrapolation_sizes(50000) == [10000, 20000, 30000, 40000, 50000]


def test_the_interval_is_the_percentile_interval_moved_onto_the_value():
    replicates = np.arange(1001, dtype=float)  # mean 500, central 95 %: 25 and 975
    assert percentile_interval(replicates) == pytest.approx((25.0, 975.0))
    assert bootstrap_interval(400.0, replicates) == pytest.approx((-75.0, 875.0))


def test_bootstrap_interval_covers_the_mean_n_sample_fd_95_times_in_100():
    """Two known Gaussians, the reference's statistics exact: E[FD_N] from 2,000 independent draws of N; then 100
    independent cells of N, each with its 95 % interval from 200 resamples. At least 90 covered (1,000 cells of this
    setup: ~95 %; with 100 resamples a cell, ~93 %)."""
    dim, num = 3, 200
    rng = np.random.default_rng(2020)
    (mu, sigma), (mu_ref, sigma_ref) = gaussian(dim, 3), gaussian(dim, 4)
    mean_fd = np.mean([fd(draw(rng, mu, sigma, num), mu_ref, sigma_ref) for _ in range(2000)])
    covered = 0
    for trial in range(100):
        features = draw(rng, mu, sigma, num)
        distance = FrechetToReference(features, mu_ref, sigma_ref)
        low, high = bootstrap_interval(fd(features, mu_ref, sigma_ref), distance.replicates(trial, 200))
        covered += low <= mean_fd <= high
    print(f"covered {covered} of 100")
    assert covered >= 90


def test_paired_intervals_are_narrower_than_unpaired_on_correlated_cells():
    """Two cells from the same x_T: the second's features are the first's plus a shift and a little noise (as a
    sampler change moves each image a little). Paired resamples cancel the shared image-to-image spread."""
    dim, num = 4, 400
    rng = np.random.default_rng(5)
    (mu, sigma), (mu_ref, sigma_ref) = gaussian(dim, 6), gaussian(dim, 7)
    first = draw(rng, mu, sigma, num)
    second = first + 0.15 + 0.2 * rng.standard_normal(first.shape)
    a, b = FrechetToReference(first, mu_ref, sigma_ref), FrechetToReference(second, mu_ref, sigma_ref)
    difference = fd(first, mu_ref, sigma_ref) - fd(second, mu_ref, sigma_ref)
    paired = bootstrap_interval(difference, a.replicates(0, 200) - b.replicates(0, 200))
    unpaired = bootstrap_interval(difference, a.replicates(0, 200) - b.replicates(1, 200))
    width = lambda interval: interval[1] - interval[0]  # noqa: E731
    print(f"paired {paired}, unpaired {unpaired}")
    assert width(paired) < width(unpaired) / 3  # measured: 0.24 against 2.12
    assert paired[0] < difference < paired[1] and unpaired[0] < difference < unpaired[1]


def test_fd_infinity_recovers_the_large_n_fd():
    """FD of N = 400 samples of N(0, I) in 8 dimensions to the exact statistics of N(0, diag(0.8..1.25)), versus the
    closed-form FD of the two (0.0435): over 50 independent cells the raw FD_N sits far above it (its 1/N bias, ~0.07)
    and FD∞ does not.

    Tolerance: FD∞ of one cell is a noisy intercept; the mean over 50 cells has standard error SE = sd/√50, estimated
    from the same cells (~0.004). The line leaves out the 1/N² terms, which at N/5 = 80 here shift FD∞ by
    -0.003 ± 0.0025 (measured over 200 cells): under one SE. So the mean must lie within 4 SE (3 for chance, a
    failure ~3e-3, and 1 for the left-out terms), while the raw FD_N's bias exceeds 10."""
    dim, num = 8, 400
    rng = np.random.default_rng(11)
    mu, sigma = np.zeros(dim), np.eye(dim)  # equal means: the FD is the covariance term, all of its bias visible
    mu_ref, sigma_ref = np.zeros(dim), np.diag(np.linspace(0.8, 1.25, dim))
    exact = fid_from_stats(mu, sigma, mu_ref, sigma_ref)
    raw, infinity = [], []
    for seed in range(50):
        features = draw(rng, mu, sigma, num)
        raw.append(fd(features, mu_ref, sigma_ref))
        infinity.append(FrechetToReference(features, mu_ref, sigma_ref).infinity(seed, sizes=5)["value"])
    standard_error = np.std(infinity, ddof=1) / np.sqrt(len(infinity))
    print(f"exact {exact:.5f}, raw {np.mean(raw):.5f}, FD∞ {np.mean(infinity):.5f} ± {standard_error:.5f}")
    assert abs(np.mean(infinity) - exact) < 4 * standard_error
    assert np.mean(raw) - exact > 10 * standard_error
