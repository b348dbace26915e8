"""A sweep's metrics.json files → results.csv, the paper's Table 1 layout as markdown, and a metric-vs-steps plot.
Pure functions over plain dicts, so they can be tested on made-up cells."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ddim.utils import atomic_path, atomic_write_text

from .method_table import format_method_table, is_eta_cell, method_curves

log = logging.getLogger(__name__)

SIGMA_HAT = "sigma_hat"
FAILED = "failed"
MISSING = "—"
RECON = "recon_mse"
# results.csv leads with these; any other field a cell carries follows, sorted
CSV_FIELDS = [
    "job", "dataset", "steps", "eta", "skip", "metric", "value", "kid_mean", "kid_std", "recon_mse", "num_samples",
    "nfe", "seconds", "images_per_second", "status", "error",
]
# Table 1 is CIFAR-10 and CelebA only; Table 2 (reconstruction) is CIFAR-10 only
PAPER_TABLE2_DATASET = "cifar10"
PAPER_TABLE2_FILE = "paper_table2_reconstruction.csv"

Cell = dict[str, Any]
Eta = float | str


def _job_order(path: Path) -> tuple[int, int | str]:
    name = path.parent.name
    return (0, int(name)) if name.isdigit() else (1, name)


def load_cells(sweep_dir: str | Path) -> list[Cell]:
    """Every <job>/metrics.json under a multirun sweep dir, in job order, each with its job dir name as "job"."""
    cells: list[Cell] = []
    for path in sorted(Path(sweep_dir).glob("*/metrics.json"), key=_job_order):
        try:
            cell = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            log.warning("skipping unreadable %s: %s", path, error)
            continue
        if isinstance(cell, dict):
            cell.setdefault("job", path.parent.name)
            cells.append(cell)
    return cells


def normalize_eta(eta: Any) -> Eta:
    """η as a float, or "sigma_hat"; numeric strings (a failed cell may carry the raw override) become floats."""
    if isinstance(eta, str) and eta != SIGMA_HAT:
        try:
            return float(eta)
        except ValueError:
            return eta
    return eta if isinstance(eta, str) else float(eta)


def eta_sort_key(eta: Eta) -> tuple[int, float, str]:
    """Numbers ascending, then σ̂, then anything unexpected."""
    if isinstance(eta, str):
        return (1, 0.0, "") if eta == SIGMA_HAT else (2, 0.0, eta)
    return (0, float(eta), "")


def eta_label(eta: Eta) -> str:
    """Column header: η=0.0 … and σ̂ for DDPM's larger-variance sampler."""
    if eta == SIGMA_HAT:
        return "σ̂"
    return f"η={eta}" if isinstance(eta, str) else f"η={float(eta)}"


def _usable(cells: Iterable[Cell]) -> list[Cell]:
    """The cells of the S × η table: the other sampler methods have their own (method_table.py)."""
    return [c for c in cells if c.get("steps") is not None and c.get("eta") is not None and is_eta_cell(c)]


def eta_values(cells: Iterable[Cell]) -> list[Eta]:
    return sorted({normalize_eta(c["eta"]) for c in _usable(cells)}, key=eta_sort_key)


def _skips(cells: Iterable[Cell]) -> list[str]:
    """The trajectories the cells used; a cell that does not say (an early failure) adds none."""
    return sorted({str(c["skip"]) for c in _usable(cells) if c.get("skip") is not None})


def _row_key(cell: Cell, by_skip: bool) -> tuple[str, int]:
    return (str(cell.get("skip") or "?") if by_skip else "", int(cell["steps"]))


def _is_ok(cell: Cell) -> bool:
    return cell.get("status") == "ok" and cell.get("value") is not None


def _cell_value(cell: Cell) -> float | str | None:
    if cell.get("status") == FAILED:
        return FAILED
    return None if cell.get("value") is None else float(cell["value"])


def pivot_table(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """Table 1's layout: a row per S (per trajectory and S when cells mix trajectories), a column per η label
    (numeric order, σ̂ last) holding the metric, "failed", or None, and "recon_mse" from the η = 0 cell."""
    usable = _usable(cells)
    by_skip = len(_skips(usable)) > 1
    labels = [eta_label(e) for e in eta_values(usable)]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for cell in usable:
        key = _row_key(cell, by_skip)
        row = rows.setdefault(key, {"S": key[1], **({"skip": key[0]} if by_skip else {}),
                                    **{label: None for label in labels}, RECON: None})
        label = eta_label(normalize_eta(cell["eta"]))
        if row[label] is None or _is_ok(cell):  # a finished cell wins over a failed duplicate
            row[label] = _cell_value(cell)
        if normalize_eta(cell["eta"]) == 0.0 and cell.get(RECON) is not None:
            row[RECON] = float(cell[RECON])
    return [rows[key] for key in sorted(rows)]


def _read_csv(path: Path) -> list[dict[str, str]]:
    """A reference CSV with '#' comment lines."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(lines))


def read_paper_table1(path: str | Path) -> dict[str, dict[tuple[int, Eta], float]]:
    """{dataset: {(S, η): FID}} from paper_table1_fid.csv (columns eta_<η> and sigma_hat)."""
    table: dict[str, dict[tuple[int, Eta], float]] = {}
    for row in _read_csv(Path(path)):
        for column, text in row.items():
            if column in ("dataset", "steps") or not text:
                continue
            eta: Eta = SIGMA_HAT if column == SIGMA_HAT else float(column.removeprefix("eta_"))
            table.setdefault(row["dataset"], {})[(int(row["steps"]), eta)] = float(text)
    return table


def read_paper_table2(path: str | Path) -> dict[int, float]:
    """{S: reconstruction MSE} from paper_table2_reconstruction.csv."""
    return {int(row["steps"]): float(row["mse"]) for row in _read_csv(Path(path))}


def sweep_metric(cells: Iterable[Cell]) -> str:
    """The metric the sweep's cells report ("fid", "fd_digits"), "metric" when none finished."""
    names = sorted({str(c["metric"]) for c in cells if c.get("metric")})
    return "/".join(names) if names else "metric"


def sweep_dataset(cells: Iterable[Cell]) -> str | None:
    """The one data set the cells name, else None (none, or a mix)."""
    names = {str(c["dataset"]) for c in cells if c.get("dataset")}
    return names.pop() if len(names) == 1 else None


def format_number(value: float) -> str:
    """Two decimals for FID-sized numbers, three significant digits for small ones."""
    return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"


def _paper_tables(
    cells: Sequence[Cell], paper: str | Path | None, paper_recon: str | Path | None
) -> tuple[dict[tuple[int, Eta], float], dict[int, float]]:
    """The paper's numbers comparable to these cells: Table 1 only for FID on a paper data set, Table 2 only
    for CIFAR-10."""
    if paper is None:
        return {}, {}
    dataset = sweep_dataset(cells)
    fid = read_paper_table1(paper).get(dataset or "", {}) if sweep_metric(cells) == "fid" else {}
    if paper_recon is None and (Path(paper).parent / PAPER_TABLE2_FILE).is_file():
        paper_recon = Path(paper).parent / PAPER_TABLE2_FILE
    recon = read_paper_table2(paper_recon) if paper_recon is not None and dataset == PAPER_TABLE2_DATASET else {}
    return fid, recon


def format_table(cells: Sequence[Cell], paper: str | Path | None = None, paper_recon: str | Path | None = None) -> str:
    """The Table-1 pivot as markdown: a title naming the metric, failed cells marked, and with `paper` (the
    reference CSV) the paper's number and our difference beside each comparable cell."""
    usable = _usable(cells)
    metric, dataset = sweep_metric(cells), sweep_dataset(cells)
    paper_fid, paper_mse = _paper_tables(usable, paper, paper_recon)
    etas = eta_values(usable)
    rows = pivot_table(usable)
    by_skip = bool(rows) and "skip" in rows[0]
    skips = _skips(usable)

    title = f"## {metric} by steps S and η"
    if dataset:
        title += f" — {dataset}"
    if len(skips) == 1:
        title += f" ({skips[0]} trajectory)"
    header = ["S", *(["skip"] if by_skip else []), *(eta_label(e) for e in etas), "recon MSE (η=0)"]
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for row in rows:
        texts = [str(row["S"]), *([row["skip"]] if by_skip else [])]
        for eta in etas:
            value = row[eta_label(eta)]
            text = MISSING if value is None else value if isinstance(value, str) else format_number(value)
            reference = paper_fid.get((row["S"], eta))
            if reference is not None:
                delta = f", {value - reference:+.2f}" if isinstance(value, float) else ""
                text += f" (paper {reference:.2f}{delta})"
            texts.append(text)
        recon = MISSING if row[RECON] is None else f"{row[RECON]:.3g}"
        if row["S"] in paper_mse:
            recon += f" (paper {paper_mse[row['S']]:g})"
        texts.append(recon)
        lines.append("| " + " | ".join(texts) + " |")

    notes = []
    if paper_fid:
        notes.append("In parentheses: Song et al. (2021) Table 1 and our difference (ours − paper); the paper's "
                     "CIFAR-10 row used the quad trajectory, CelebA the uniform one.")
    if paper_mse:
        notes.append("Reconstruction: per-dimension MSE in [0, 1] on the test set; in parentheses the paper's Table 2.")
    failed = [c for c in usable if c.get("status") == FAILED]
    if failed:
        notes.append("Failed cells:")
        notes += [f"- S={c['steps']} {eta_label(normalize_eta(c['eta']))}: {c.get('error') or 'no error recorded'}"
                  for c in failed]
    if notes:
        lines += ["", *notes]
    methods = format_method_table(cells, metric)
    return "\n".join(lines) + "\n" + (f"\n{methods}" if methods else "")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def format_csv(cells: Sequence[Cell]) -> str:
    """One row per cell with every field any cell has: the usual ones first, the rest sorted."""
    extra = sorted({k for c in cells for k in c} - set(CSV_FIELDS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*CSV_FIELDS, *extra], lineterminator="\n")
    writer.writeheader()
    for cell in cells:
        writer.writerow({k: _csv_value(cell.get(k)) for k in writer.fieldnames})
    return buffer.getvalue()


def plot_metric_vs_steps(
    cells: Sequence[Cell], path: str | Path, paper: str | Path | None = None, paper_recon: str | Path | None = None
) -> Path:
    """fid_vs_steps.png: the metric against S (log x), one line per η (and trajectory, when several) and one per
    η = 0 solver method; the paper's numbers over the same range of S as dashed lines when comparable."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global backend state to disturb
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    usable = _usable(cells)
    finished = [c for c in usable if _is_ok(c)]
    metric = sweep_metric(cells)
    paper_fid, _ = _paper_tables(usable, paper, paper_recon)
    skips = _skips(finished)
    curves = method_curves(cells)
    steps = sorted({int(c["steps"]) for c in finished} | {s for points in curves.values() for s, _ in points})
    figure = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    values: list[float] = []
    for i, eta in enumerate(eta_values(usable)):
        color = f"C{i % 10}"
        for j, skip in enumerate(skips or [None]):
            points = sorted((int(c["steps"]), float(c["value"])) for c in finished
                            if normalize_eta(c["eta"]) == eta and (skip is None or str(c.get("skip")) == skip))
            if points:
                label = eta_label(eta) + (f" ({skip})" if len(skips) > 1 else "")
                axes.plot(*zip(*points), marker="o", color=color, label=label, linestyle=["-", "-.", ":"][j % 3])
                values += [v for _, v in points]
        reference = sorted((s, v) for (s, e), v in paper_fid.items()
                           if e == eta and steps and steps[0] <= s <= steps[-1])
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


def write_results(sweep_dir: str | Path, cells: Sequence[Cell], paper: str | Path | None = None,
                  paper_recon: str | Path | None = None) -> list[Path]:
    """results.csv, results.md and fid_vs_steps.png in the sweep dir, each written atomically; returns their paths."""
    sweep_dir = Path(sweep_dir)
    csv_path = atomic_write_text(sweep_dir / "results.csv", format_csv(cells))
    md_path = atomic_write_text(sweep_dir / "results.md", format_table(cells, paper, paper_recon))
    png_path = plot_metric_vs_steps(cells, sweep_dir / "fid_vs_steps.png", paper, paper_recon)
    return [csv_path, md_path, png_path]


__all__ = [
    "eta_label", "eta_sort_key", "eta_values", "format_csv", "format_number", "format_table", "load_cells",
    "normalize_eta", "pivot_table", "plot_metric_vs_steps", "read_paper_table1", "read_paper_table2", "write_results",
]
