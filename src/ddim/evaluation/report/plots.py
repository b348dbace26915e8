"""The metric-vs-steps plot of a sweep, drawn with matplotlib's object API: a setting's seeds are one point, and a
point with an interval (over seeds, or one cell's bootstrap) gets its error bar."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from ddim.utils import atomic_path

from .cells import (
    Cell, cell_method, eta_cells, eta_label, eta_values, is_eta_cell, is_finished, normalize_eta, sweep_dataset,
    sweep_metric, trajectory_names,
)
from .paper import PAPER_TABLE1, paper_fid, read_paper_table1, table1_mismatches
from .replicates import aggregate_seeds


def method_curves(cells: Iterable[Cell]) -> dict[str, list[tuple[int, float]]]:
    """{label: [(S, value)]} for each η = 0 solver other than ddim (ddim's η = 0 line is the η table's), per
    trajectory when the cells mix them."""
    finished = [c for c in aggregate_seeds(cells) if not is_eta_cell(c) and is_finished(c) and c.get("steps") is not None]
    skips = trajectory_names(finished)
    curves: dict[str, list[tuple[int, float]]] = {}
    for cell in finished:
        label = cell_method(cell) + (f" ({cell.get('skip')})" if len(skips) > 1 else "")
        curves.setdefault(label, []).append((int(cell["steps"]), float(cell["value"])))
    return {label: sorted(points) for label, points in sorted(curves.items())}


def error_bars(axes: object, cells: Sequence[Cell], color: str) -> None:
    """Vertical bars from each cell's value_ci (none for cells without one)."""
    with_ci = [c for c in cells if c.get("value_ci")]
    if with_ci:
        values = [float(c["value"]) for c in with_ci]
        below = [max(0.0, v - float(c["value_ci"][0])) for v, c in zip(values, with_ci)]
        above = [max(0.0, float(c["value_ci"][1]) - v) for v, c in zip(values, with_ci)]
        axes.errorbar([int(c["steps"]) for c in with_ci], values, yerr=[below, above], fmt="none", ecolor=color,
                      capsize=2, linewidth=1)


def plot_metric_vs_steps(cells: Sequence[Cell], path: str | Path, paper: str | Path | None = PAPER_TABLE1) -> Path:
    """fid_vs_steps.png: the metric against S (log x), one line per η (and trajectory, when several) and one per
    η = 0 solver method; the paper's numbers over the same range of S as dashed lines, for an η whose cells ran the
    paper's setup."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global backend state to disturb
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    usable = aggregate_seeds(eta_cells(cells))
    finished = [c for c in usable if is_finished(c)]
    metric = sweep_metric(cells)
    table1 = read_paper_table1(paper) if paper is not None else {}
    comparable = [c for c in finished if paper_fid(c, table1) is not None and not table1_mismatches(c)]
    reference_etas = {normalize_eta(c["eta"]) for c in comparable}
    dataset_table = table1.get(str(comparable[0]["dataset"]), {}) if comparable else {}
    skips = trajectory_names(finished)
    curves = method_curves(cells)
    steps = sorted({int(c["steps"]) for c in finished} | {s for points in curves.values() for s, _ in points})
    figure = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    values: list[float] = []
    for i, eta in enumerate(eta_values(usable)):
        color = f"C{i % 10}"
        for j, skip in enumerate(skips or [None]):
            line = sorted((c for c in finished
                           if normalize_eta(c["eta"]) == eta and (skip is None or str(c.get("skip")) == skip)),
                          key=lambda c: int(c["steps"]))
            points = [(int(c["steps"]), float(c["value"])) for c in line]
            if points:
                label = eta_label(eta) + (f" ({skip})" if len(skips) > 1 else "")
                axes.plot(*zip(*points), marker="o", color=color, label=label, linestyle=["-", "-.", ":"][j % 3])
                error_bars(axes, line, color)
                values += [v for _, v in points]
        reference = sorted((s, v) for (s, e), v in dataset_table.items()
                           if e == eta and eta in reference_etas and steps and steps[0] <= s <= steps[-1])
        if reference:
            axes.plot(*zip(*reference), marker="x", linestyle="--", color=color, alpha=0.6,
                      label=f"paper {eta_label(eta)}")
            values += [v for _, v in reference]
    for k, (label, points) in enumerate(curves.items()):  # one curve per η = 0 solver beside DDIM's η lines
        axes.plot(*zip(*points), marker="s", color=f"C{(len(eta_values(usable)) + k) % 10}", label=label)
        values += [v for _, v in points]
    if not finished and not curves:
        axes.text(0.5, 0.5, "no finished cells", ha="center", va="center", transform=axes.transAxes)
    else:
        axes.set_xscale("log")
        axes.set_xticks(steps)  # label the S values of the sweep, not powers of ten
        axes.xaxis.set_major_formatter(ScalarFormatter())
        axes.xaxis.set_minor_formatter(NullFormatter())
        positive = [v for v in values if v > 0]
        if positive and len(positive) == len(values) and max(positive) > 20 * min(positive):
            axes.set_yscale("log")  # σ̂ at small S is ~100× the rest: a linear axis would flatten every other line
        axes.legend(fontsize=7)
    axes.set_xlabel("steps S")
    axes.set_ylabel(metric)
    dataset = sweep_dataset(usable)
    axes.set_title(f"{metric} vs steps" + (f" — {dataset}" if dataset else ""))
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)


__all__ = ["method_curves", "plot_metric_vs_steps"]
