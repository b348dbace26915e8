"""Error bars for a Fréchet distance from the features a cell already stored, without sampling again.

A bootstrap resample is a multiset of image indices, written as counts (image i taken counts[i] times); its FD is
the FD of the resampled set to the fixed reference statistics, from frequency-weighted sums: the weighted mean and
the unbiased covariance Σ_i w_i (x_i − μ)(x_i − μ)ᵀ / (N − 1), which is what np.cov gives on the resampled rows.
Resample b of a cell is drawn from (seed, N, b) alone, so every cell of a sweep with the same seed and N gets the
same resamples; image i shares x_T across those cells, so the FDs of two cells move together under resampling and
their difference is resampled pairwise. Resample b does not depend on how many are drawn.

The cost is one weighted D × D covariance per resample (N·D² multiply-adds, fewer by the ~37 % of images a resample
leaves out) plus one D × D symmetric eigenvalue problem: tr (Σ Σ_ref)^½ is Σ √λ of Σ_ref^½ Σ Σ_ref^½, or, when a
resample has fewer distinct images than dimensions, of the smaller Y Σ_ref Yᵀ (Y: the weighted, centred rows).
Memory is O(D²) beside the features (float32, read once). bench/bootstrap_cost.py measures it; docs/benchmarks.md.

FD∞ (Chong & Forsyth 2020): the FD of N samples is close to linear in 1/N, FD_N ≈ FD∞ + k/N, so a line fitted to the
FDs of random subsets of a few sizes, extrapolated to 1/N = 0, removes the finite-N bias of the generated side (the
reference statistics are held fixed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

CONFIDENCE = 0.95
# a constant stream tag keeps these draws apart from the sampler's noise and any other use of the seed
BOOTSTRAP_STREAM = 0x626F6F74  # "boot"
SUBSET_STREAM = 0x73756273  # "subs"
RESAMPLE_VERSION = 1  # bump if the draws change: stored replicates of an older scheme must not be paired with newer
_CHUNK_ELEMENTS = 1 << 22  # float64 elements of a chunk of weighted rows: 32 MB, whatever D
_BATCH_ELEMENTS = 1 << 20  # multisets are batched only while N·D + D² is below this


def resample_counts(seed: int, num: int, index: int) -> np.ndarray:
    """How often each of images 0..num−1 appears in bootstrap resample `index` (num draws with replacement)."""
    rng = np.random.default_rng([BOOTSTRAP_STREAM, int(seed), int(num), int(index)])
    return np.bincount(rng.integers(0, num, num), minlength=num)


def subset_counts(seed: int, num: int, size: int) -> np.ndarray:
    """0/1 counts of a random subset of `size` of images 0..num−1 (without replacement), for FD∞."""
    rng = np.random.default_rng([SUBSET_STREAM, int(seed), int(num), int(size)])
    counts = np.zeros(num, dtype=np.int64)
    counts[rng.choice(num, size, replace=False)] = 1
    return counts


def percentile_interval(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central `confidence` interval of bootstrap replicates (the percentile interval)."""
    tail = (1 - confidence) / 2
    low, high = np.quantile(np.asarray(values, dtype=np.float64), [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_interval(value: float, replicates: Sequence[float] | np.ndarray,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of the replicates moved so that their mean is `value`. An FD of N samples is biased
    upward by about k/N, and the FD of a resample of them is biased once more: the plain percentile interval sits
    that bias above the N-sample FD it is meant to bracket (in the coverage test: 89 % instead of 96 % at D = 16,
    N = 300). For a difference of two cells the biases mostly cancel and the shift is small."""
    replicates = np.asarray(replicates, dtype=np.float64)
    low, high = percentile_interval(replicates, confidence)
    shift = float(replicates.mean()) - float(value)
    return low - shift, high - shift


def extrapolation_sizes(num: int, sizes: int = 5) -> list[int]:
    """`sizes` subset sizes evenly spaced from num/5 to num, distinct and at least 2 (a covariance needs two)."""
    return sorted({max(2, int(round(n))) for n in np.linspace(num / 5, num, sizes)})


class FrechetToReference:
    """The FD of any weighting of one cell's features to fixed reference statistics (mu_ref, sigma_ref). The
    features stay float32 on `device`; every sum is float64 about their mean, as FeatureStats' are."""

    def __init__(self, features: np.ndarray | torch.Tensor, mu_ref: np.ndarray, sigma_ref: np.ndarray,
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.features = torch.as_tensor(features).to(self.device, torch.float32)
        if self.features.ndim != 2 or len(self.features) < 2:
            raise ValueError(f"need [N >= 2, D] features, got shape {tuple(self.features.shape)}")
        self.num, self.dim = self.features.shape
        as64 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), device=self.device)  # noqa: E731
        self.mu_ref, self.sigma_ref = as64(mu_ref).reshape(-1), as64(np.atleast_2d(sigma_ref))
        if len(self.mu_ref) != self.dim:
            raise ValueError(f"reference dim {len(self.mu_ref)} differs from the features' {self.dim}")
        step = max(1, _CHUNK_ELEMENTS // self.dim)  # the mean a chunk at a time: no float64 copy of the whole set
        self.shift = sum(self.features[i : i + step].double().sum(0) for i in range(0, self.num, step)) / self.num
        self.shift_from_ref = self.shift - self.mu_ref
        self.trace_ref = float(torch.trace(self.sigma_ref))
        self._sqrt_ref: torch.Tensor | None = None

    @property
    def sqrt_ref(self) -> torch.Tensor:
        """Σ_ref^½ (symmetric, from its eigendecomposition; tiny negative eigenvalues clamped to 0)."""
        if self._sqrt_ref is None:
            values, vectors = torch.linalg.eigh(self.sigma_ref)
            self._sqrt_ref = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
        return self._sqrt_ref

    def distance(self, counts: np.ndarray) -> float:
        """FD of the multiset that takes image i counts[i] times (all ones: the cell's own FD)."""
        return float(self.distances(np.asarray(counts)[None])[0])

    def distances(self, counts: np.ndarray) -> np.ndarray:
        """FDs of a batch of such multisets, one per row of counts [b, N]. Only the rows some multiset takes are
        read (about 63 % for one resample), a chunk at a time."""
        counts = np.atleast_2d(counts)
        sizes = counts.sum(1).astype(np.float64)
        if (sizes < 2).any():
            raise ValueError(f"{sizes.min():g} sample(s): a covariance needs at least 2")
        keep = np.flatnonzero(counts.any(0))
        weights = torch.as_tensor(counts[:, keep], dtype=torch.float64, device=self.device)[:, :, None]  # b × n' × 1
        index = torch.as_tensor(keep, device=self.device)
        n = torch.as_tensor(sizes, device=self.device)[:, None]  # b × 1
        small = len(keep) < self.dim  # fewer distinct rows than dimensions: keep the rows, not a D × D sum
        total = torch.zeros(len(counts), self.dim, dtype=torch.float64, device=self.device)
        gram = None if small else torch.zeros(len(counts), self.dim, self.dim, dtype=torch.float64, device=self.device)
        rows = []
        step = max(1, _CHUNK_ELEMENTS // (self.dim * len(counts)))
        for start in range(0, len(keep), step):
            centred = self.features.index_select(0, index[start : start + step]).double().sub_(self.shift)
            if small:
                rows.append(centred * weights[:, start : start + step].sqrt())
            else:
                weighted = centred * weights[:, start : start + step]
                total += weighted.sum(1)
                gram.baddbmm_(weighted.transpose(1, 2), centred.expand(len(counts), -1, -1))  # in place: no D × D copy
        if small:
            y, root = torch.cat(rows, 1), weights.sqrt()
            offset = (root * y).sum(1) / n  # the weighted mean, about the shift
            y = (y - root * offset[:, None]) / (n[:, :, None] - 1).sqrt()
            trace = y.square().sum((1, 2))
            product = y @ self.sigma_ref @ y.transpose(1, 2)  # n' × n': the nonzero eigenvalues of Σ^½ Σ_ref Σ^½
        else:
            offset = total / n
            scaled = offset * n.sqrt()  # Σ w (x − μ)(x − μ)ᵀ = Σ w x xᵀ − n μ μᵀ, in place in the sums
            sigma = gram.baddbmm_(scaled[:, :, None], scaled[:, None, :], alpha=-1).div_(n[:, :, None] - 1)
            trace = sigma.diagonal(dim1=1, dim2=2).sum(1)
            product = self.sqrt_ref @ sigma @ self.sqrt_ref
        # eigvalsh reads one triangle: the product is symmetric up to rounding
        root_sum = torch.linalg.eigvalsh(product).clamp_min(0).sqrt().sum(1)
        mean_term = (self.shift_from_ref + offset).square().sum(1)
        return (mean_term + trace - 2 * root_sum).cpu().numpy() + self.trace_ref

    def replicates(self, seed: int, resamples: int, start: int = 0) -> np.ndarray:
        """FD of bootstrap resamples start..start+resamples−1 of this cell's N images (seed: the cell's)."""
        return self.batched([resample_counts(seed, self.num, b) for b in range(start, start + resamples)])

    def batched(self, counts: Sequence[np.ndarray]) -> np.ndarray:
        """distances of many multisets: small cells in batches (fewer, larger operations, where per-call costs rule);
        a large one a multiset at a time, each reading only the rows it takes."""
        batch = max(1, min(64, _BATCH_ELEMENTS // (self.num * self.dim + self.dim * self.dim)))
        values = [self.distances(np.stack(counts[i : i + batch])) for i in range(0, len(counts), batch)]
        return np.concatenate(values) if values else np.zeros(0)

    def infinity(self, seed: int, sizes: int = 5) -> dict[str, object]:
        """FD∞: the intercept at 1/N = 0 of the least-squares line through the FDs of random subsets of
        `extrapolation_sizes` (the largest is the whole set)."""
        chosen = extrapolation_sizes(self.num, sizes)
        if len(chosen) < 2:
            raise ValueError(f"{self.num} samples give fewer than 2 subset sizes to extrapolate from")
        values = [float(v) for v in self.batched([subset_counts(seed, self.num, size) for size in chosen])]
        slope, intercept = np.polyfit(1.0 / np.asarray(chosen, dtype=np.float64), values, 1)
        return {"value": float(intercept), "slope": float(slope), "sizes": chosen, "values": values}


__all__ = [
    "BOOTSTRAP_STREAM", "CONFIDENCE", "RESAMPLE_VERSION", "FrechetToReference", "bootstrap_interval",
    "extrapolation_sizes", "percentile_interval", "resample_counts", "subset_counts",
]
