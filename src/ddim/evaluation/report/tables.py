"""A sweep's cells as results.csv and as markdown (Table 1's S × η layout with Table 2's reconstruction column, the
NFE × method table, and the paper's differences with their intervals), and writing the result files."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ddim.utils import atomic_write_text

from .cells import (
    DDIM, FAILED, MISSING, RECON, Cell, cell_method, cell_value, eta_cells, eta_label, is_eta_cell, method_label,
    normalize_eta, sweep_dataset, sweep_metric, trajectory_names,
)
from .comparisons import comparisons_csv, format_comparisons
from .markdown import entry_text, markdown_table
from .other_metrics import OTHER_FIELDS, format_other_metrics
from .paper import (
    PAPER_TABLE1, PAPER_TABLE2, TABLE1_NUM_SAMPLES, TABLE1_TRAJECTORY, TABLE2_DATASET, TABLE2_NUM_IMAGES, paper_fid, read_paper_table1,
    read_paper_table2, table1_mismatches, table2_mismatches,
)
from .pivot import eta_pivot, method_cells, method_grid
from .plots import plot_metric_vs_steps
from .replicates import seeds_in

# results.csv leads with these; any other field a cell carries follows, sorted
CSV_FIELDS = [
    "job", "dataset", "steps", "eta", "skip", "method", "seed", "metric", "value", "value_ci", "bootstrap",
    "value_infinity", *OTHER_FIELDS, "recon_mse", "num_samples", "reference_num_samples", "recon_samples", "nfe",
    "seconds", "images_per_second", "status", "error",
]


def _paper_notes(beside: int, mismatched: dict[str, int], what: str, setup: str) -> list[str]:
    notes = []
    if beside:
        notes.append(f"In parentheses: Song et al. (2021) {what} and our difference (ours − paper), beside the {beside} "
                     f"cell(s) that ran the paper's setup ({setup}).")
    if mismatched:
        reasons = "; ".join(f"{reason} ({n} cell{'s' if n > 1 else ''})" for reason, n in sorted(mismatched.items()))
        notes.append(f"No paper number beside the other cells the paper's {what} has, which ran another setup: "
                     f"{reasons}.")
    return notes


def format_table(cells: Sequence[Cell], paper: str | Path | None = PAPER_TABLE1,
                 paper_recon: str | Path | None = PAPER_TABLE2, comparisons: Sequence[dict[str, Any]] = ()) -> str:
    """The Table-1 pivot as markdown: a title naming the metric, each entry with its error bar (entry_text), failed
    cells marked, the paper's number and our difference beside each cell that ran the paper's setup, a footnote saying
    why the others have none, the method table, and the paper's differences (`comparisons`, from
    pipeline/intervals.py) with their intervals."""
    chosen = eta_cells(cells)
    metric, dataset = sweep_metric(cells), sweep_dataset(cells)
    table1 = read_paper_table1(paper) if paper is not None else {}
    table2 = read_paper_table2(paper_recon) if paper_recon is not None else {}
    grid = eta_pivot(chosen)
    skips = trajectory_names(chosen)

    title = f"## {metric} by steps S and η" + (f" — {dataset}" if dataset else "")
    title += f" ({skips[0]} trajectory)" if len(skips) == 1 else ""
    header = ["S", *(["skip"] if grid.by_skip else []), *(eta_label(e) for e in grid.columns), "recon MSE (η=0)"]
    fid_beside, recon_beside = 0, 0
    fid_mismatch: dict[str, int] = {}
    recon_mismatch: dict[str, int] = {}
    rows = []
    for row in grid.rows:
        texts = [str(row[1]), *([row[0]] if grid.by_skip else [])]
        recon_cell = None
        for eta in grid.columns:
            cell = grid.get(row, eta)
            value = cell_value(cell) if cell else None
            text = entry_text(cell)
            reference = paper_fid(cell, table1) if cell else None
            if reference is not None:
                reasons = table1_mismatches(cell)
                if not reasons:
                    fid_beside += 1
                    text += f" (paper {reference:.2f}" + (f", {value - reference:+.2f})" if isinstance(value, float) else ")")
                for reason in reasons:
                    fid_mismatch[reason] = fid_mismatch.get(reason, 0) + 1
            texts.append(text)
            if cell and cell.get(RECON) is not None and normalize_eta(cell["eta"]) == 0.0:
                recon_cell = cell
        recon = MISSING if recon_cell is None else f"{float(recon_cell[RECON]):.3g}"
        if recon_cell is not None and row[1] in table2 and recon_cell.get("dataset") == TABLE2_DATASET:
            reasons = table2_mismatches(recon_cell)
            if not reasons:
                recon_beside += 1
                recon += f" (paper {table2[row[1]]:g})"
            for reason in reasons:
                recon_mismatch[reason] = recon_mismatch.get(reason, 0) + 1
        rows.append([*texts, recon])
    lines = [title, "", *markdown_table(header, rows)]

    setup1 = ", ".join(f"{d}: {TABLE1_TRAJECTORY[d]}" for d in TABLE1_TRAJECTORY)
    notes = _paper_notes(fid_beside, fid_mismatch, "Table 1",
                         f"FID, ddim, {TABLE1_NUM_SAMPLES:,} samples, EMA weights, trajectory {setup1}")
    notes += _paper_notes(recon_beside, recon_mismatch, "Table 2",
                          f"CIFAR-10, η = 0, all {TABLE2_NUM_IMAGES:,} test images, EMA weights")
    if any(c.get(RECON) is not None for c in chosen):
        notes.append("Reconstruction: per-dimension MSE in [0, 1] on the test set, encoded and decoded with the row's S.")
    notes += _interval_notes(list(grid.cells.values()))
    failed = [c for c in chosen if c.get("status") == FAILED]
    if failed:
        notes.append("Failed cells:")
        notes += [f"- S={c['steps']} {eta_label(normalize_eta(c['eta']))}{_seed_text(c, chosen)}: "
                  f"{c.get('error') or 'no error recorded'}" for c in failed]
    if notes:
        lines += ["", *notes]
    methods = format_method_table(cells, metric)
    differences = "\n".join(format_comparisons(comparisons, metric))
    others = format_other_metrics(cells)
    return ("\n".join(lines) + "\n" + (f"\n{methods}" if methods else "") + (f"\n{differences}\n" if differences else "")
            + (f"\n{others}" if others else ""))


def _seed_text(cell: Cell, cells: Sequence[Cell]) -> str:
    return f" seed {cell['seed']}" if cell.get("seed") is not None and len(seeds_in(cells)) > 1 else ""


def _interval_notes(cells: Sequence[Cell]) -> list[str]:
    """What the error bars in the table are, for the kinds it shows."""
    notes = []
    if any(c.get("num_seeds", 1) > 1 for c in cells):
        notes.append("± : the 95 % Student-t interval of the mean over seeds (cells that differ only in seed).")
    if any(c.get("value_ci") for c in cells if c.get("num_seeds", 1) == 1):
        resamples = sorted({int(c["bootstrap"]) for c in cells if c.get("bootstrap")})
        notes.append(f"[low, high]: the 95 % bootstrap interval of one cell ({'/'.join(map(str, resamples))} resamples "
                     "of its images, recomputed from the stored features; fid.bootstrap).")
    if any(c.get("value_infinity") is not None for c in cells):
        notes.append("∞: the metric extrapolated to infinitely many samples (Chong & Forsyth 2020; fid.extrapolate).")
    return notes


def format_method_table(cells: Sequence[Cell], metric: str = "metric") -> str:
    """The NFE × method grid as markdown, or "" when the sweep has only the one method (the η table says it all)."""
    grid = method_grid(cells)
    if grid.columns in ([], [DDIM]):
        return ""
    header = ["NFE", *(["skip"] if grid.by_skip else []), *(method_label(m) for m in grid.columns)]
    rows = [[str(row[1]), *([row[0]] if grid.by_skip else []),
             *(entry_text(grid.get(row, m)) for m in grid.columns)]
            for row in grid.rows]
    lines = [f"## {metric} by network evaluations (NFE) and sampler method", "", *markdown_table(header, rows)]
    lines += ["", "NFE per image: S for ddim, dpmpp_2m, dpmpp_2s, dpm_2s and dpm_3; S + 1 for plms; S + 9 for pndm "
                  "(S ≥ 4); 2S − 1 for heun (S counts the distinct indices of τ: fewer where quad repeats some). "
                  "See docs/samplers.md."]
    failed = [c for c in method_cells(cells) if c.get("status") == FAILED and not is_eta_cell(c)]
    if failed:
        lines.append("Failed cells:")
        lines += [f"- {cell_method(c)} S={c['steps']}: {c.get('error') or 'no error recorded'}" for c in failed]
    return "\n".join(lines) + "\n"


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


def write_results(sweep_dir: str | Path, cells: Sequence[Cell], paper: str | Path | None = PAPER_TABLE1,
                  paper_recon: str | Path | None = PAPER_TABLE2, comparisons: Sequence[dict[str, Any]] = ()) -> list[Path]:
    """results.csv, results.md and fid_vs_steps.png in the sweep dir, and comparisons.csv when there are differences
    with intervals, each written atomically; returns their paths."""
    sweep_dir = Path(sweep_dir)
    csv_path = atomic_write_text(sweep_dir / "results.csv", format_csv(cells))
    md_path = atomic_write_text(sweep_dir / "results.md", format_table(cells, paper, paper_recon, comparisons))
    png_path = plot_metric_vs_steps(cells, sweep_dir / "fid_vs_steps.png", paper)
    paths = [csv_path, md_path, png_path]
    if comparisons:
        paths.append(atomic_write_text(sweep_dir / "comparisons.csv", comparisons_csv(comparisons)))
    return paths


__all__ = ["format_csv", "format_method_table", "format_table", "write_results"]
