"""The sampler-method axis of a sweep: the metric by NFE (rows) and method (columns), DDIM at η = 0 included, for
results.md beside the S × η table, and one curve per η = 0 solver for fid_vs_steps.png. Pure functions over
metrics.json dicts, like tables.py; a cell without "method" (from before the axis existed) is ddim."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ddim.diffusion import METHODS, nfe

DDIM = "ddim"
FAILED = "failed"
MISSING = "—"

Cell = dict[str, Any]


def cell_method(cell: Cell) -> str:
    return str(cell.get("method") or DDIM)


def is_eta_cell(cell: Cell) -> bool:
    """Whether the cell belongs in the S × η table: the paper's sampler, any η."""
    return cell_method(cell) == DDIM


def method_label(method: str) -> str:
    return "ddim (η=0)" if method == DDIM else method


def _is_eta_zero(eta: Any) -> bool:
    try:
        return float(eta) == 0.0
    except (TypeError, ValueError):
        return False  # "sigma_hat" or junk from a failed cell


def method_cells(cells: Iterable[Cell]) -> list[Cell]:
    """The cells the method table compares: every η = 0 solver's, and DDIM's at η = 0."""
    return [c for c in cells if c.get("steps") is not None and (not is_eta_cell(c) or _is_eta_zero(c.get("eta")))]


def methods_in(cells: Iterable[Cell]) -> list[str]:
    """The methods the cells use, in the registry's order (ddim first), unknown names last."""
    names = {cell_method(c) for c in cells}
    return [m for m in METHODS if m in names] + sorted(names - set(METHODS))


def cell_nfe(cell: Cell) -> int | None:
    """The cell's recorded NFE, else what its method, S and trajectory give for T = 1000 (a failed cell
    records none); None where even that cannot be worked out."""
    if cell.get("nfe") is not None:
        return int(cell["nfe"])
    try:
        return nfe(cell_method(cell), int(cell["steps"]), str(cell.get("skip") or "uniform"))
    except (ValueError, TypeError):
        return None


def _is_ok(cell: Cell) -> bool:
    return cell.get("status") == "ok" and cell.get("value") is not None


def method_pivot(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """A row per NFE (per trajectory and NFE when cells mix trajectories), a column per method label holding the
    metric, "failed" or None."""
    chosen = [c for c in method_cells(cells) if cell_nfe(c) is not None]
    skips = {str(c.get("skip")) for c in chosen if c.get("skip") is not None}
    by_skip = len(skips) > 1
    labels = [method_label(m) for m in methods_in(chosen)]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for cell in chosen:
        key = (str(cell.get("skip") or "?") if by_skip else "", cell_nfe(cell))
        row = rows.setdefault(key, {"NFE": key[1], **({"skip": key[0]} if by_skip else {}),
                                    **{label: None for label in labels}})
        label = method_label(cell_method(cell))
        if row[label] is None or _is_ok(cell):  # a finished cell wins over a failed duplicate
            row[label] = FAILED if cell.get("status") == FAILED else (
                None if cell.get("value") is None else float(cell["value"]))
    return [rows[key] for key in sorted(rows)]


def format_method_table(cells: Sequence[Cell], metric: str = "metric") -> str:
    """The method pivot as markdown, or "" when the sweep has only the one method (the η table says it all)."""
    chosen = method_cells(cells)
    methods = methods_in(chosen)
    if methods in ([], [DDIM]):
        return ""
    from .tables import format_number  # tables imports this module for its hooks

    rows = method_pivot(chosen)
    by_skip = bool(rows) and "skip" in rows[0]
    labels = [method_label(m) for m in methods]
    header = ["NFE", *(["skip"] if by_skip else []), *labels]
    lines = [f"## {metric} by network evaluations (NFE) and sampler method", "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for row in rows:
        texts = [str(row["NFE"]), *([row["skip"]] if by_skip else [])]
        for label in labels:
            value = row[label]
            texts.append(MISSING if value is None else value if isinstance(value, str) else format_number(value))
        lines.append("| " + " | ".join(texts) + " |")
    lines += ["", "NFE per image: S for ddim, dpmpp_2m, dpm_2s and dpm_3; S + 1 for plms; 2S − 1 for heun "
                  "(fewer where the quad trajectory repeats indices). See docs/samplers.md."]
    failed = [c for c in chosen if c.get("status") == FAILED and not is_eta_cell(c)]
    if failed:
        lines.append("Failed cells:")
        lines += [f"- {cell_method(c)} S={c['steps']}: {c.get('error') or 'no error recorded'}" for c in failed]
    return "\n".join(lines) + "\n"


def method_curves(cells: Iterable[Cell]) -> dict[str, list[tuple[int, float]]]:
    """{label: [(S, value)]} for each η = 0 solver other than ddim (ddim's η = 0 line is the η table's),
    per trajectory when the cells mix them."""
    finished = [c for c in cells if not is_eta_cell(c) and _is_ok(c) and c.get("steps") is not None]
    skips = sorted({str(c.get("skip")) for c in finished})
    curves: dict[str, list[tuple[int, float]]] = {}
    for cell in finished:
        label = cell_method(cell) + (f" ({cell.get('skip')})" if len(skips) > 1 else "")
        curves.setdefault(label, []).append((int(cell["steps"]), float(cell["value"])))
    return {label: sorted(points) for label, points in sorted(curves.items())}


__all__ = [
    "cell_method", "cell_nfe", "format_method_table", "is_eta_cell", "method_cells", "method_curves", "method_label",
    "method_pivot", "methods_in",
]
