"""Error bars from the features a cell stored, with no sampling: the cell's own bootstrap interval and FD∞ when it
is scored (cell.score → metrics.json), and at the end of a sweep the paired differences the report compares
(sweep.collect_sweep → results.md, comparisons.csv).

Each cell keeps the FDs of its resamples (bootstrap.json), and the cells of one seed and N share their resamples
(metrics/bootstrap.py), so the difference of two cells under resample b is the difference of their stored replicates
b. A cell without enough of them (scored with a smaller fid.bootstrap, or 0) is resampled at the end of the sweep
from the features in its work dir and the reference statistics its metrics.json names."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics.bootstrap import FrechetToReference, bootstrap_interval
from ..metrics.statistics import FeatureStats
from ..report.cells import Cell
from ..report.comparisons import is_real, paper_comparisons
from .plan import CellPlan
from .store import read_chunks, read_replicates, write_replicates

log = logging.getLogger(__name__)


def score_intervals(plan: CellPlan, features: np.ndarray, reference: FeatureStats, value: float) -> dict[str, Any]:
    """metrics.json's value_ci, bootstrap and value_se (fid.bootstrap), and value_infinity with its fit
    (fid.extrapolate), from the cell's features; writes the replicates to bootstrap.json."""
    if not plan.fid.bootstrap and not plan.fid.extrapolate:
        return {}
    start = time.perf_counter()
    distance = FrechetToReference(features, reference.mu, reference.sigma, plan.fabric.main_device())
    result: dict[str, Any] = {}
    if plan.fid.bootstrap:
        replicates = distance.replicates(plan.seed, plan.fid.bootstrap)
        write_replicates(Path(plan.out_dir), plan.seed, len(features), replicates)
        result.update(value_ci=list(bootstrap_interval(value, replicates)), bootstrap=plan.fid.bootstrap,
                      value_se=float(replicates.std(ddof=1)) if len(replicates) > 1 else None)
    if plan.fid.extrapolate:
        try:
            fit = distance.infinity(plan.seed, plan.fid.extrapolate_sizes)
        except ValueError as error:  # too few samples for two subset sizes
            log.warning("no FD∞: %s", error)
        else:
            result["value_infinity"] = fit.pop("value")
            result["extrapolation"] = fit
    result["interval_seconds"] = round(time.perf_counter() - start, 3)
    return result


def cell_replicates(sweep_dir: Path, cell: Cell, resamples: int | None = None,
                    device: str = "cpu") -> np.ndarray | None:
    """The cell's bootstrap replicates: the stored ones (all of them with resamples=None), topped up to `resamples`
    from its features where fewer are stored; None where neither is possible."""
    folder = Path(sweep_dir) / str(cell.get("job"))
    seed, num = cell.get("seed"), cell.get("num_samples")
    if seed is None or num is None:
        return None  # a cell from before seeds were recorded: its resamples cannot be matched
    stored = read_replicates(folder, seed, num)
    have = 0 if stored is None else len(stored)
    if resamples is None or have >= resamples:
        return stored if resamples is None else stored[:resamples]
    features_dir, reference = cell.get("features_dir"), cell.get("reference_stats")
    if not features_dir or not (folder / features_dir).is_dir() or not reference or not Path(reference).is_file():
        log.warning("%s: %d stored resamples and no features or reference statistics to draw more", folder, have)
        return stored
    features = read_chunks(folder / features_dir, "features", int(num))
    with np.load(reference) as data:
        mu, sigma = data["mu"], data["sigma"]
    more = FrechetToReference(features, mu, sigma, device).replicates(seed, resamples - have, start=have)
    values = more if stored is None else np.concatenate([stored, more])
    write_replicates(folder, seed, num, values)
    return values


def paired_differences(sweep_dir: Path, cells: Sequence[Cell], resamples: int | None = None,
                       device: str = "cpu") -> list[dict[str, Any]]:
    """For each of the paper's comparisons the sweep can make (report/comparisons.py): the difference first − second
    and its 95 % interval from the same resamples of both cells; with several seeds the mean difference, its
    interval from the seed-averaged resamples. Comparisons without replicates on both sides are left out."""
    records = []
    for comparison in paper_comparisons(cells):
        points, draws, used = [], [], []
        for first, second in comparison.pairs:
            a = cell_replicates(sweep_dir, first, resamples, device)
            b = cell_replicates(sweep_dir, second, resamples, device)
            if a is None or b is None or not min(len(a), len(b)):
                continue
            n = min(len(a), len(b))
            points.append(float(first["value"]) - float(second["value"]))
            draws.append(a[:n] - b[:n])
            used.append((first, second))
        if not points:
            continue
        n = min(len(d) for d in draws)
        difference = float(np.mean(points))
        low, high = bootstrap_interval(difference, np.mean([d[:n] for d in draws], axis=0))
        record = {
            "comparison": comparison.label, "kind": comparison.kind, "skip": comparison.skip or None,
            "steps": comparison.steps, "nfe": comparison.nfe, "first": comparison.first, "second": comparison.second,
            "first_value": float(np.mean([float(a["value"]) for a, _ in used])),
            "second_value": float(np.mean([float(b["value"]) for _, b in used])),
            "difference": difference, "ci_low": low, "ci_high": high, "seeds": len(points), "bootstrap": n,
            "num_samples": "/".join(sorted({str(a.get("num_samples")) for a, _ in used})),
        }
        record["real"] = is_real(record)
        records.append(record)
    return records


__all__ = ["cell_replicates", "paired_differences", "score_intervals"]
