"""Peak memory and time of scoring one cell of the paper's size (50,000 images, 2,048-d Inception features) against a
50,000-image reference: FID alone, and FID + KID (100 subsets of 1,000), before and after the running-sums change.

    python bench/scoring_memory.py                 # N = 50,000, D = 2,048
    python bench/scoring_memory.py --num 5000      # a quick look

"before" is the scoring path as it was: chunks of float64 features, every row gathered and stacked (np.stack),
FeatureStats holding the whole float64 array and torch-fidelity's np.cov over it, the cached float32 reference turned
into float64, and KID on float64 copies of both sets. "after" is ddim.evaluation.pipeline.cell.score's path: float32
chunks streamed into running float64 sums (O(D²)), and for KID the float32 features read once and only each subset
made float64. Each mode runs in a fresh process; the figure is its peak RSS above its RSS before scoring.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHUNK = 500  # eval.batch_size of the paper sweeps


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_chunks(folder: Path, num: int, dim: int, dtype: type) -> None:
    from ddim.evaluation.pipeline.store import save_chunk

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, num, CHUNK):
        indices = list(range(start, min(num, start + CHUNK)))
        # Inception's pool features are non-negative, mean ~0.3
        features = np.abs(rng.standard_normal((len(indices), dim), dtype=np.float32)) * 0.4
        save_chunk(folder, indices, features=features.astype(dtype))


def score_before(folder: Path, reference_path: Path, num: int, kid: bool) -> float:
    import torch
    from torch_fidelity.metric_fid import fid_features_to_statistics
    from torch_fidelity.metric_kid import kid_features_to_metric

    from ddim.evaluation.metrics.statistics import fid_from_stats

    rows: dict[int, np.ndarray] = {}
    for path in sorted(folder.glob("[!.]*.npz")):
        with np.load(path) as data:
            for i, row in zip(data["indices"], data["features"]):
                rows[int(i)] = row
    features = np.asarray(np.stack([rows[i] for i in range(num)]), dtype=np.float64)
    del rows
    generated = fid_features_to_statistics(torch.from_numpy(features))
    with np.load(reference_path) as data:  # the old FeatureStats.load: float64 features, cached mu and sigma
        reference_features = np.asarray(data["features"], dtype=np.float64)
        reference = {"mu": data["mu"], "sigma": data["sigma"]}
    value = fid_from_stats(generated["mu"], generated["sigma"], reference["mu"], reference["sigma"])
    if kid:
        kid_features_to_metric(torch.as_tensor(features), torch.as_tensor(reference_features), kid_subsets=100,
                               kid_subset_size=1000, rng_seed=2020, verbose=False)
    return value


def score_after(folder: Path, reference_path: Path, num: int, kid: bool) -> float:
    from ddim.evaluation.metrics.statistics import FeatureStats, fid_from_stats, kid_from_features
    from ddim.evaluation.pipeline.store import iter_chunks, read_chunks

    generated = FeatureStats()
    for _, rows in iter_chunks(folder, "features", num):
        generated.update(rows)
    reference = FeatureStats.load(reference_path)  # the cached reference: float32 features, mu and sigma
    value = fid_from_stats(generated.mu, generated.sigma, reference.mu, reference.sigma)
    if kid:
        kid_from_features(read_chunks(folder, "features", num), reference.features, 100, 1000)
    return value


def child(mode: str, folder: str, reference: str, num: int, kid: bool) -> None:
    import torch  # noqa: F401  (imported before the baseline, as in a real cell)
    import torch_fidelity  # noqa: F401

    import ddim.evaluation.metrics.statistics  # noqa: F401

    baseline = rss_mb()
    start = time.perf_counter()
    score = score_before if mode == "before" else score_after
    value = score(Path(folder), Path(reference), num, kid)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak - baseline, "seconds": seconds, "fid": value}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, folder, reference, num, kid = args.child
        child(mode, folder, reference, int(num), kid == "kid")
        return
    with tempfile.TemporaryDirectory(prefix="scoring-memory-") as tmp:
        root = Path(tmp)
        make_chunks(root / "before", args.num, args.dim, np.float64)  # what run_shard used to write
        make_chunks(root / "after", args.num, args.dim, np.float32)
        rng = np.random.default_rng(1)
        from ddim.evaluation.metrics.statistics import FeatureStats

        reference = np.abs(rng.standard_normal((args.num, args.dim), dtype=np.float32)) * 0.4
        FeatureStats.from_features(reference).save(root / "reference.npz")  # as reference_stats caches it
        del reference
        print(f"N = {args.num:,}, D = {args.dim:,}; peak RSS above the process's RSS before scoring\n")
        print("| scoring | path | peak memory (MB) | seconds | FID |")
        print("|---|---|---|---|---|")
        for kid in (False, True):
            for mode in ("before", "after"):
                out = subprocess.run([sys.executable, __file__, "--child", mode, str(root / mode),
                                      str(root / "reference.npz"), str(args.num), "kid" if kid else "fid"],
                                     capture_output=True, text=True, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"| {'FID + KID' if kid else 'FID'} | {mode} | {result['peak_mb']:,.0f} | "
                      f"{result['seconds']:.1f} | {result['fid']:.6f} |")


if __name__ == "__main__":
    main()
