"""The differences the paper draws, and whether a sweep resolves them: η = 0 against η = 1 at each S (DDIM against
DDPM-like sampling), each η = 0 solver against ddim at each NFE, and a searched τ against each fixed spacing of the
same method and NFE. This module picks the pairs of cells (same
seed, same N, so the same bootstrap resamples apply to both) and renders the differences the pipeline computed from
their resamples (pipeline/intervals.py): a line each in results.md, a row each in comparisons.csv."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cells import DDIM, Cell, cell_method, cell_nfe, eta_label, format_number, is_eta_cell, is_eta_zero, is_finished
from .cells import normalize_eta, trajectory_names
from .markdown import spread_text

CSV_FIELDS = ["comparison", "kind", "skip", "steps", "nfe", "first", "second", "first_value", "second_value",
              "difference", "ci_low", "ci_high", "real", "seeds", "bootstrap", "num_samples"]


@dataclass
class Comparison:
    """One difference first − second at one S (kind "eta") or NFE (kind "method": two methods; "trajectory": two
    trajectories of `method`), with the pairs of cells that measure it, one per seed (and N) both sides ran."""

    kind: str
    first: str
    second: str
    skip: str
    steps: int | None = None
    nfe: int | None = None
    pairs: list[tuple[Cell, Cell]] = field(default_factory=list)
    method: str = ""  # kind "trajectory": the method both cells sample with

    @property
    def label(self) -> str:
        where = f"S={self.steps}" if self.kind == "eta" else f"NFE={self.nfe}"
        qualifier = self.method if self.kind == "trajectory" else self.skip
        return where + (f" ({qualifier})" if qualifier else "") + f": {self.first} − {self.second}"


def _pair_key(cell: Cell) -> tuple[Any, Any]:
    return (cell.get("seed"), cell.get("num_samples"))


def _paired(first: Iterable[Cell], second: Iterable[Cell]) -> list[tuple[Cell, Cell]]:
    """The (first, second) cells of equal seed and N; the last finished cell of each."""
    a = {_pair_key(c): c for c in first}
    b = {_pair_key(c): c for c in second}
    return [(a[k], b[k]) for k in sorted(set(a) & set(b), key=str)]


def paper_comparisons(cells: Sequence[Cell]) -> list[Comparison]:
    """Every η = 0 − η = 1 difference at each S, then every method − ddim difference at each NFE, for which the
    sweep has a pair of finished cells."""
    finished = [c for c in cells if is_finished(c) and c.get("steps") is not None]
    by_skip = len(trajectory_names(finished)) > 1
    skip_of = lambda c: str(c.get("skip") or "?") if by_skip else ""  # noqa: E731
    found: list[Comparison] = []
    ddim = [c for c in finished if is_eta_cell(c) and c.get("eta") is not None]
    for skip, steps in sorted({(skip_of(c), int(c["steps"])) for c in ddim}):
        here = [c for c in ddim if skip_of(c) == skip and int(c["steps"]) == steps]
        zero = [c for c in here if is_eta_zero(c["eta"])]
        one = [c for c in here if normalize_eta(c["eta"]) == 1.0]
        pairs = _paired(zero, one)
        if pairs:
            found.append(Comparison("eta", eta_label(0.0), eta_label(1.0), skip, steps=steps, pairs=pairs))
    solvers = [c for c in finished if (not is_eta_cell(c) or is_eta_zero(c.get("eta"))) and cell_nfe(c) is not None]
    for skip, nfe in sorted({(skip_of(c), cell_nfe(c)) for c in solvers}):
        here = [c for c in solvers if skip_of(c) == skip and cell_nfe(c) == nfe]
        base = [c for c in here if cell_method(c) == DDIM]
        for method in sorted({cell_method(c) for c in here} - {DDIM}):
            pairs = _paired([c for c in here if cell_method(c) == method], base)
            if pairs:
                found.append(Comparison("method", method, DDIM, skip, nfe=nfe, pairs=pairs))
    found += _trajectory_comparisons(solvers)
    return found


SEARCHED = "searched"  # sampler.skip of a τ from python -m ddim.trajectory_search


def _trajectory_comparisons(cells: Sequence[Cell]) -> list[Comparison]:
    """searched − each fixed spacing, for every method and NFE with a searched cell."""
    found = []
    for method, nfe in sorted({(cell_method(c), cell_nfe(c)) for c in cells if c.get("skip") == SEARCHED}):
        here = [c for c in cells if cell_method(c) == method and cell_nfe(c) == nfe]
        searched = [c for c in here if c.get("skip") == SEARCHED]
        for skip in sorted({str(c.get("skip")) for c in here} - {SEARCHED}):
            pairs = _paired(searched, [c for c in here if str(c.get("skip")) == skip])
            if pairs:
                found.append(Comparison("trajectory", SEARCHED, skip, "", nfe=nfe, pairs=pairs, method=method))
    return found


def is_real(record: dict[str, Any]) -> bool:
    """Whether the difference's interval excludes 0."""
    return not (record["ci_low"] <= 0.0 <= record["ci_high"])


def comparison_line(record: dict[str, Any]) -> str:
    """"S=10: η=0.0 − η=1.0 = -3.41 [-4.02, -2.80], real" (and the number of seeds when more than one)."""
    seeds = f" ({record['seeds']} seeds)" if record.get("seeds", 1) > 1 else ""
    verdict = "real" if is_real(record) else "not resolved (the interval holds 0)"
    difference = record["difference"]
    low, high = (spread_text(record[k], difference) for k in ("ci_low", "ci_high"))
    return f"- {record['comparison']} = {format_number(difference)} [{low}, {high}]{seeds}, {verdict}"


def format_comparisons(records: Sequence[dict[str, Any]], metric: str = "metric") -> list[str]:
    """The results.md section: one line per difference, or nothing without any."""
    if not records:
        return []
    resamples = sorted({int(r["bootstrap"]) for r in records})
    lines = [f"## Differences in {metric}, with 95 % paired-bootstrap intervals", ""]
    lines += [comparison_line(r) for r in records]
    lines += ["", f"Paired: the same {'/'.join(map(str, resamples))} resamples of image indices in both cells (image i "
                  "has the same x_T in both), the metric recomputed from the stored features for each; \"real\" where "
                  "the 95 % interval of the difference excludes 0. With several seeds: the mean difference over seeds, "
                  "its interval from the seed-averaged resamples."]
    return lines


def comparisons_csv(records: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: ("" if record.get(k) is None else record.get(k)) for k in CSV_FIELDS})
    return buffer.getvalue()


__all__ = ["CSV_FIELDS", "Comparison", "comparison_line", "comparisons_csv", "format_comparisons", "is_real",
           "paper_comparisons"]
