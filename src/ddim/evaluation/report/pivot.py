"""The one pivot of the report: cells into rows × columns, a finished cell winning over a failed duplicate, and its
two uses, Table 1's S × η grid and the NFE × method grid, where a setting's seeds are one entry (replicates.py). The
pivot keeps whole cells, so a renderer can ask each one more than its value (whether it matches the paper's setup,
its interval)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cells import (
    RECON, Cell, cell_method, cell_nfe, cell_value, eta_cells, eta_label, eta_values, is_eta_cell,
    is_eta_zero, is_finished, method_label, normalize_eta, trajectory_names,
)
from .replicates import aggregate_seeds
from ddim.diffusion import METHODS


@dataclass
class Pivot:
    """rows: sorted row keys ((trajectory or "", S or NFE)); columns: the column keys in display order."""

    rows: list[tuple[str, int]] = field(default_factory=list)
    columns: list[Any] = field(default_factory=list)
    by_skip: bool = False  # whether rows are split by trajectory (the cells mix them)
    cells: dict[tuple[tuple[str, int], Any], Cell] = field(default_factory=dict)

    def get(self, row: tuple[str, int], column: Any) -> Cell | None:
        return self.cells.get((row, column))


def pivot(cells: Iterable[Cell], row_key: Callable[[Cell], tuple[str, int]], column_key: Callable[[Cell], Hashable],
          columns: Sequence[Any], by_skip: bool) -> Pivot:
    table = Pivot(columns=list(columns), by_skip=by_skip)
    for cell in cells:
        key = (row_key(cell), column_key(cell))
        if key not in table.cells or is_finished(cell):  # a finished cell wins over a failed duplicate
            table.cells[key] = cell
    table.rows = sorted({row for row, _ in table.cells})
    return table


def _skip_of(cell: Cell, by_skip: bool) -> str:
    return str(cell.get("skip") or "?") if by_skip else ""


def eta_pivot(cells: Iterable[Cell]) -> Pivot:
    """Table 1's layout: a row per S (per trajectory and S when the cells mix trajectories), a column per η
    (numeric order, σ̂ last); the seeds of a setting combined."""
    chosen = aggregate_seeds(eta_cells(cells))
    by_skip = len(trajectory_names(chosen)) > 1
    return pivot(chosen, lambda c: (_skip_of(c, by_skip), int(c["steps"])), lambda c: normalize_eta(c["eta"]),
                 eta_values(chosen), by_skip)


def method_cells(cells: Iterable[Cell]) -> list[Cell]:
    """The cells the method table compares: every η = 0 solver's, and DDIM's at η = 0."""
    return [c for c in cells if c.get("steps") is not None and (not is_eta_cell(c) or is_eta_zero(c.get("eta")))]


def methods_in(cells: Iterable[Cell]) -> list[str]:
    """The methods the cells use, in the registry's order (ddim first), unknown names last."""
    names = {cell_method(c) for c in cells}
    return [m for m in METHODS if m in names] + sorted(names - set(METHODS))


def method_grid(cells: Iterable[Cell]) -> Pivot:
    """A row per NFE (per trajectory and NFE when the cells mix them), a column per method; seeds combined."""
    chosen = [c for c in aggregate_seeds(method_cells(cells)) if cell_nfe(c) is not None]
    by_skip = len(trajectory_names(chosen)) > 1
    return pivot(chosen, lambda c: (_skip_of(c, by_skip), cell_nfe(c)), cell_method, methods_in(chosen), by_skip)


def pivot_table(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """Table 1 as plain rows: {"S", ["skip"], one key per η label holding the metric, "failed" or None,
    "recon_mse" from the η = 0 cell}."""
    grid = eta_pivot(cells)
    rows = []
    for row in grid.rows:
        values: dict[str, Any] = {"S": row[1], **({"skip": row[0]} if grid.by_skip else {})}
        for eta in grid.columns:
            cell = grid.get(row, eta)
            values[eta_label(eta)] = cell_value(cell) if cell else None
        zero = next((grid.get(row, eta) for eta in grid.columns if is_eta_zero(eta) and grid.get(row, eta)), None)
        values[RECON] = float(zero[RECON]) if zero and zero.get(RECON) is not None else None
        rows.append(values)
    return rows


def method_pivot(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """The method grid as plain rows: {"NFE", ["skip"], one key per method label holding the metric, "failed" or
    None}."""
    grid = method_grid(cells)
    return [{"NFE": row[1], **({"skip": row[0]} if grid.by_skip else {}),
             **{method_label(m): (cell_value(grid.get(row, m)) if grid.get(row, m) else None) for m in grid.columns}}
            for row in grid.rows]


__all__ = ["Pivot", "eta_pivot", "method_cells", "method_grid", "method_pivot", "methods_in",
           "pivot", "pivot_table"]
