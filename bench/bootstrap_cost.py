"""What fid.bootstrap and fid.extrapolate cost a cell: time per bootstrap resample (extrapolated to 200), FD∞'s five
subsets, and peak memory above what score() already holds (the cell's float32 features and the reference statistics),
for the paper's cell (50,000 × 2,048 Inception features) and the demo's (1,000 × 1,024, fd_digits_conv).

    python bench/bootstrap_cost.py                                   # 50000x2048 and 1000x1024, 20 resamples each
    python bench/bootstrap_cost.py --cells 5000x2048 --resamples 5   # a quick look

Each cell runs in a fresh process (peak RSS is per process). The features are synthetic (|N(0, 1)| · 0.4, Inception's
pool features are non-negative with mean ~0.3): the cost depends on N, D and the device, not on the values. Resample
b draws N indices with replacement keyed by (seed, N, b) and costs one weighted D × D covariance over the ~63 % of
images it takes (N·D² multiply-adds) and one D × D symmetric eigenproblem (fewer distinct images than dimensions: an
n' × n' one). Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset_peak) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Linux: VmHWM starts again from the current RSS (5 > /proc/self/clear_refs), so the features' own making does
    not count as the bootstrap's peak."""
    Path("/proc/self/clear_refs").write_text("5")


def measure(num: int, dim: int, resamples: int, device: str) -> dict:
    import torch

    from ddim.evaluation.metrics.bootstrap import FrechetToReference

    rng = np.random.default_rng(0)
    features = rng.standard_normal((num, dim), dtype=np.float32)  # what read_chunks hands score(), float32
    np.abs(features, out=features)
    features *= 0.4
    reference = np.abs(rng.standard_normal((min(num, 10_000), dim), dtype=np.float32)) * 0.45 + 0.01
    mu_ref, sigma_ref = reference.mean(0, dtype=np.float64), np.cov(reference, rowvar=False)
    del reference
    before = status_mb("VmRSS")
    reset_peak()
    start = time.perf_counter()
    distance = FrechetToReference(features, mu_ref, sigma_ref, device)
    if num * 0.63 >= dim:
        _ = distance.sqrt_ref  # Σ_ref^½, once per cell
    setup = time.perf_counter() - start
    start = time.perf_counter()
    distance.replicates(seed=0, resamples=resamples)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    per_resample = (time.perf_counter() - start) / resamples
    start = time.perf_counter()
    distance.infinity(seed=0, sizes=5)
    infinity = time.perf_counter() - start
    peak = status_mb("VmHWM")
    return {"num": num, "dim": dim, "resamples": resamples, "device": device, "threads": torch.get_num_threads(),
            "setup_s": setup, "per_resample_s": per_resample, "infinity_s": infinity,
            "features_mb": features.nbytes / 2**20, "extra_peak_mb": peak - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="50000x2048,1000x1024", help="NxD,NxD,...")
    parser.add_argument("--resamples", type=int, default=20, help="resamples timed per cell (then extrapolated)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        num, dim = map(int, args.child.split("x"))
        print(json.dumps(measure(num, dim, args.resamples, args.device)))
        return
    rows = []
    for cell in args.cells.split(","):
        done = subprocess.run([sys.executable, __file__, "--child", cell, "--resamples", str(args.resamples),
                               "--device", args.device], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{platform.processor() or platform.machine()}, torch threads {rows[0]['threads']}, device {args.device}, "
          f"{args.resamples} resamples timed per cell\n")
    print("| N × D | features (float32) | setup | per resample | 200 resamples (extrapolated) | FD∞, 5 sizes | "
          "peak memory above features |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['num']:,} × {r['dim']:,} | {r['features_mb']:.0f} MB | {r['setup_s']:.1f} s | "
              f"{r['per_resample_s']:.2f} s | {200 * r['per_resample_s'] / 60:.1f} min | {r['infinity_s']:.1f} s | "
              f"{r['extra_peak_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
