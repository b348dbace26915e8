"""A sweep's cells as results.csv and the paper's Table 1 layout in markdown, and writing the three result files."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ddim.utils import atomic_write_text

from .method_table import format_method_table
from .plots import plot_metric_vs_steps
from .results import (
    FAILED,
    RECON,
    Cell,
    eta_label,
    eta_values,
    normalize_eta,
    paper_numbers,
    pivot_table,
    sweep_dataset,
    sweep_metric,
    trajectory_names,
    usable_cells,
)

MISSING = "—"
# results.csv leads with these; any other field a cell carries follows, sorted
CSV_FIELDS = [
    "job", "dataset", "steps", "eta", "skip", "metric", "value", "kid_mean", "kid_std", "recon_mse", "num_samples",
    "nfe", "seconds", "images_per_second", "status", "error",
]


def format_number(value: float) -> str:
    """Two decimals for FID-sized numbers, three significant digits for small ones."""
    return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"


def format_table(cells: Sequence[Cell], paper: str | Path | None = None, paper_recon: str | Path | None = None) -> str:
    """The Table-1 pivot as markdown: a title naming the metric, failed cells marked, and with `paper` (the
    reference CSV) the paper's number and our difference beside each comparable cell."""
    usable = usable_cells(cells)
    metric, dataset = sweep_metric(cells), sweep_dataset(cells)
    paper_fid, paper_mse = paper_numbers(usable, paper, paper_recon)
    etas = eta_values(usable)
    rows = pivot_table(usable)
    by_skip = bool(rows) and "skip" in rows[0]
    skips = trajectory_names(usable)

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


def write_results(sweep_dir: str | Path, cells: Sequence[Cell], paper: str | Path | None = None,
                  paper_recon: str | Path | None = None) -> list[Path]:
    """results.csv, results.md and fid_vs_steps.png in the sweep dir, each written atomically; returns their paths."""
    sweep_dir = Path(sweep_dir)
    csv_path = atomic_write_text(sweep_dir / "results.csv", format_csv(cells))
    md_path = atomic_write_text(sweep_dir / "results.md", format_table(cells, paper, paper_recon))
    png_path = plot_metric_vs_steps(cells, sweep_dir / "fid_vs_steps.png", paper, paper_recon)
    return [csv_path, md_path, png_path]


__all__ = ["format_csv", "format_number", "format_table", "write_results"]
