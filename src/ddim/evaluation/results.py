"""A sweep's metrics.json files and the paper's reference CSVs, read into plain dicts, and the Table 1 pivot.
Pure functions over plain dicts, so they can be tested on made-up cells."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .method_table import is_eta_cell

log = logging.getLogger(__name__)

SIGMA_HAT = "sigma_hat"
FAILED = "failed"
RECON = "recon_mse"
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


def usable_cells(cells: Iterable[Cell]) -> list[Cell]:
    """The cells of the S × η table: the other sampler methods have their own (method_table.py)."""
    return [c for c in cells if c.get("steps") is not None and c.get("eta") is not None and is_eta_cell(c)]


def eta_values(cells: Iterable[Cell]) -> list[Eta]:
    return sorted({normalize_eta(c["eta"]) for c in usable_cells(cells)}, key=eta_sort_key)


def trajectory_names(cells: Iterable[Cell]) -> list[str]:
    """The trajectories the cells used; a cell that does not say (an early failure) adds none."""
    return sorted({str(c["skip"]) for c in usable_cells(cells) if c.get("skip") is not None})


def _row_key(cell: Cell, by_skip: bool) -> tuple[str, int]:
    return (str(cell.get("skip") or "?") if by_skip else "", int(cell["steps"]))


def is_finished(cell: Cell) -> bool:
    return cell.get("status") == "ok" and cell.get("value") is not None


def _cell_value(cell: Cell) -> float | str | None:
    if cell.get("status") == FAILED:
        return FAILED
    return None if cell.get("value") is None else float(cell["value"])


def pivot_table(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """Table 1's layout: a row per S (per trajectory and S when cells mix trajectories), a column per η label
    (numeric order, σ̂ last) holding the metric, "failed", or None, and "recon_mse" from the η = 0 cell."""
    usable = usable_cells(cells)
    by_skip = len(trajectory_names(usable)) > 1
    labels = [eta_label(e) for e in eta_values(usable)]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for cell in usable:
        key = _row_key(cell, by_skip)
        row = rows.setdefault(key, {"S": key[1], **({"skip": key[0]} if by_skip else {}),
                                    **{label: None for label in labels}, RECON: None})
        label = eta_label(normalize_eta(cell["eta"]))
        if row[label] is None or is_finished(cell):  # a finished cell wins over a failed duplicate
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


def paper_numbers(
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


__all__ = [
    "eta_label", "eta_sort_key", "eta_values", "is_finished", "load_cells", "normalize_eta", "paper_numbers",
    "pivot_table", "read_paper_table1", "read_paper_table2", "sweep_dataset", "sweep_metric", "trajectory_names",
    "usable_cells",
]
