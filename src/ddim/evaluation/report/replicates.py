"""Seeds as an axis: cells that differ only in `seed` (replicates, each with its own x_T draws) become one table
entry, their mean with a 95 % Student-t interval over seeds and the count (value_ci, num_seeds). A group of one cell
is returned as it is, with its own (bootstrap) interval, so aggregating twice changes nothing."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .cells import FAILED, RECON, Cell, cell_method, is_finished, normalize_eta

# Student t's 0.975 quantile for 1..30 degrees of freedom (any table; scipy.stats.t.ppf in the tests)
T_975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788, 2.1604,
         2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555,
         2.0518, 2.0484, 2.0452, 2.0423)
Z_975 = 1.959963984540054
AVERAGED = ("value", "kid_mean", RECON, "value_infinity", "images_per_second", "seconds")


def t_quantile_975(df: int) -> float:
    """Student t's 0.975 quantile: the table to 30 degrees of freedom, then the Cornish–Fisher expansion in 1/df
    (three terms; off by < 2e-6 beyond 30)."""
    if df < 1:
        raise ValueError(f"{df} degrees of freedom; a t interval needs at least 2 values")
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of its 95 % Student-t interval) of n ≥ 2 values."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_quantile_975(n - 1) * sd / math.sqrt(n)


def replicate_identity(cell: Cell) -> tuple[Any, ...]:
    """What puts cells in one table entry: the sampler setting. (Cells of one setting that differ in more than the
    seed are told apart by `sameness`.)"""
    eta = cell.get("eta")
    return (cell_method(cell), cell.get("steps"), None if eta is None else normalize_eta(eta), cell.get("skip"))


def sameness(cell: Cell) -> str:
    """The cell's key without its seed: equal for the replicates of one setting."""
    return json.dumps({k: v for k, v in (cell.get("key") or {}).items() if k != "seed"}, sort_keys=True, default=str)


def combine(group: Sequence[Cell]) -> Cell:
    """One entry from the cells of one setting: the last finished cell of each seed, those agreeing with the last
    finished cell on everything but the seed, averaged; failed seeds counted. A lone cell comes back unchanged."""
    finished = [c for c in group if is_finished(c)]
    if not finished:
        return group[0]
    last = finished[-1]
    by_seed: dict[Any, Cell] = {}
    for cell in finished:
        if sameness(cell) == sameness(last):
            by_seed[cell.get("seed")] = cell
    failed = {c.get("seed") for c in group if c.get("status") == FAILED} - set(by_seed)
    members = list(by_seed.values())
    if len(members) == 1:
        return members[0] if not failed else {**members[0], "failed_seeds": sorted(failed, key=str)}
    values = [float(c["value"]) for c in members]
    mean, half = mean_interval(values)
    merged = {k: v for k, v in last.items() if k not in ("value_ci", "bootstrap", "extrapolation", "job", "seed")}
    for name in AVERAGED:
        present = [float(c[name]) for c in members if c.get(name) is not None]
        merged[name] = sum(present) / len(present) if len(present) == len(members) else None
    merged.update(value=mean, value_ci=[mean - half, mean + half], value_half_width=half, interval="seeds",
                  num_seeds=len(members), seeds=sorted(by_seed, key=str), seed_values=values,
                  jobs=[c.get("job") for c in members], **({"failed_seeds": sorted(failed, key=str)} if failed else {}))
    return merged


def aggregate_seeds(cells: Iterable[Cell]) -> list[Cell]:
    """The cells with every setting's replicates combined into one entry, in the order of each setting's first
    cell."""
    groups: dict[tuple[Any, ...], list[Cell]] = {}
    for cell in cells:
        groups.setdefault(replicate_identity(cell), []).append(cell)
    return [combine(group) for group in groups.values()]


def seeds_in(cells: Iterable[Cell]) -> list[Any]:
    """The seeds the cells record (cells from before seeds were recorded add none)."""
    return sorted({c["seed"] for c in cells if c.get("seed") is not None}, key=str)


__all__ = ["aggregate_seeds", "combine", "mean_interval", "replicate_identity", "sameness", "seeds_in",
           "t_quantile_975"]
