"""The leaf of the report: what a cell's metrics.json record says, read into plain dicts, and the constants and
labels every table and plot shares. Imports nothing else of the report."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ddim.diffusion import nfe

log = logging.getLogger(__name__)

Cell = dict[str, Any]  # one metrics.json record
Eta = float | str

SIGMA_HAT = "sigma_hat"
FAILED = "failed"
MISSING = "—"
RECON = "recon_mse"
DDIM = "ddim"


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


def is_finished(cell: Cell) -> bool:
    return cell.get("status") == "ok" and cell.get("value") is not None


def cell_value(cell: Cell) -> float | str | None:
    """The cell's metric, "failed", or None (not run, or no value)."""
    if cell.get("status") == FAILED:
        return FAILED
    return None if cell.get("value") is None else float(cell["value"])


def normalize_eta(eta: Any) -> Eta:
    """η as a float, or "sigma_hat"; numeric strings (a failed cell may carry the raw override) become floats."""
    if isinstance(eta, str) and eta != SIGMA_HAT:
        try:
            return float(eta)
        except ValueError:
            return eta
    return eta if isinstance(eta, str) else float(eta)


def is_eta_zero(eta: Any) -> bool:
    try:
        return float(eta) == 0.0
    except (TypeError, ValueError):
        return False  # "sigma_hat" or junk from a failed cell


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


def cell_method(cell: Cell) -> str:
    """The sampler method; a cell without one (from before the method axis existed) is ddim."""
    return str(cell.get("method") or DDIM)


def is_eta_cell(cell: Cell) -> bool:
    """Whether the cell belongs in the S × η table: the paper's sampler, any η."""
    return cell_method(cell) == DDIM


def method_label(method: str) -> str:
    return "ddim (η=0)" if method == DDIM else method


def cell_nfe(cell: Cell) -> int | None:
    """The cell's recorded NFE, else what its method, S and trajectory give for T = 1000 (a failed cell records
    none); None where even that cannot be worked out."""
    if cell.get("nfe") is not None:
        return int(cell["nfe"])
    try:
        return nfe(cell_method(cell), int(cell["steps"]), str(cell.get("skip") or "uniform"))
    except (ValueError, TypeError):
        return None


def eta_cells(cells: Iterable[Cell]) -> list[Cell]:
    """The cells of the S × η table: the other sampler methods have their own."""
    return [c for c in cells if c.get("steps") is not None and c.get("eta") is not None and is_eta_cell(c)]


def eta_values(cells: Iterable[Cell]) -> list[Eta]:
    return sorted({normalize_eta(c["eta"]) for c in eta_cells(cells)}, key=eta_sort_key)


def trajectory_names(cells: Iterable[Cell]) -> list[str]:
    """The trajectories the cells used; a cell that does not say (an early failure) adds none."""
    return sorted({str(c["skip"]) for c in cells if c.get("skip") is not None})


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


__all__ = [
    "DDIM", "FAILED", "MISSING", "RECON", "SIGMA_HAT", "Cell", "Eta", "cell_method", "cell_nfe", "cell_value",
    "eta_cells", "eta_label", "eta_sort_key", "eta_values", "format_number", "is_eta_cell", "is_eta_zero",
    "is_finished", "load_cells", "method_label", "normalize_eta", "sweep_dataset", "sweep_metric", "trajectory_names",
]
