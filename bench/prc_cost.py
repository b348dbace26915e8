"""What fid.metrics=[...,prc] costs a cell: precision and recall (Kynkäänniemi et al. 2019, k = 3) from the stored
features, four blocks of pairwise distances between and within the two equal-sized sets (N² · D multiply-adds each).

    python bench/prc_cost.py                       # the demo's 1000 x 1024 against 1,437, and 10000 x 2048
    python bench/prc_cost.py --cells 5000x2048

Synthetic features (|N(0, 1)| · 0.4): the cost depends on N, D and the device, not on the values. The time grows
as N² (50,000 × 2,048 is 25 times 10,000 × 2,048). Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["1000x1024x1437", "10000x2048"],
                        help="NxD or NxDxN_REFERENCE (the larger set is subsampled to the smaller's size)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    from ddim.evaluation.metrics.fidelity import precision_recall

    print(f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print("| N | D | reference N | seconds |")
    print("|---|---|---|---|")
    for cell in args.cells:
        num, dim, *ref = (int(v) for v in cell.split("x"))
        rng = np.random.default_rng(0)
        generated = np.abs(rng.standard_normal((num, dim), dtype=np.float32)) * 0.4
        real = np.abs(rng.standard_normal((ref[0] if ref else num, dim), dtype=np.float32)) * 0.4
        start = time.perf_counter()
        precision_recall(generated, real, device=args.device)
        print(f"| {num:,} | {dim:,} | {len(real):,} | {time.perf_counter() - start:.2f} |")


if __name__ == "__main__":
    main()
