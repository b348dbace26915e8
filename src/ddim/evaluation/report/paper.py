"""The paper's numbers (Table 1: FID; Table 2: reconstruction) and when a cell may stand beside them: only when it
ran the paper's setup. A 1,000-sample FID is biased upward against a 50,000-sample one, and the uniform trajectory
gives ~5.7 on CIFAR-10 at S = 100 where the paper's quad gives 4.16, so a number beside a different setup misleads."""

from __future__ import annotations

import csv
from pathlib import Path

from .cells import DDIM, SIGMA_HAT, Cell, Eta, cell_method, is_eta_zero, normalize_eta

PAPER_DIR = Path(__file__).parent / "paper"
PAPER_TABLE1 = PAPER_DIR / "paper_table1_fid.csv"
PAPER_TABLE2 = PAPER_DIR / "paper_table2_reconstruction.csv"

# what the paper's numbers were measured with (Section 5, Appendix D; GUIDE §2)
TABLE1_NUM_SAMPLES = 50_000
TABLE1_TRAJECTORY = {"cifar10": "quad", "celeba": "uniform"}
TABLE2_DATASET = "cifar10"
TABLE2_NUM_IMAGES = 10_000  # the whole CIFAR-10 test set


def _read_csv(path: Path) -> list[dict[str, str]]:
    """A reference CSV with '#' comment lines."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(lines))


def read_paper_table1(path: str | Path = PAPER_TABLE1) -> dict[str, dict[tuple[int, Eta], float]]:
    """{dataset: {(S, η): FID}} from paper_table1_fid.csv (columns eta_<η> and sigma_hat)."""
    table: dict[str, dict[tuple[int, Eta], float]] = {}
    for row in _read_csv(Path(path)):
        for column, text in row.items():
            if column in ("dataset", "steps") or not text:
                continue
            eta: Eta = SIGMA_HAT if column == SIGMA_HAT else float(column.removeprefix("eta_"))
            table.setdefault(row["dataset"], {})[(int(row["steps"]), eta)] = float(text)
    return table


def read_paper_table2(path: str | Path = PAPER_TABLE2) -> dict[int, float]:
    """{S: reconstruction MSE} from paper_table2_reconstruction.csv."""
    return {int(row["steps"]): float(row["mse"]) for row in _read_csv(Path(path))}


def _count(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n >= 1000 else f"{n:,}"


def _ema(cell: Cell) -> bool | None:
    ema = cell.get("ema", (cell.get("key") or {}).get("ema"))
    return None if ema is None else bool(ema)


def table1_mismatches(cell: Cell) -> list[str]:
    """How the cell's setup differs from the paper's Table 1 for its data set, as short phrases ("1k samples
    (paper 50k)"); empty when the paper's number may stand beside it."""
    dataset = cell.get("dataset")
    if dataset not in TABLE1_TRAJECTORY:
        return [f"data set {dataset} (paper: {', '.join(TABLE1_TRAJECTORY)})"]
    reasons = []
    if cell.get("metric") != "fid":
        reasons.append(f"metric {cell.get('metric')} (paper: fid)")
    if cell_method(cell) != DDIM:
        reasons.append(f"method {cell_method(cell)} (paper: ddim)")
    n = cell.get("num_samples")
    if n != TABLE1_NUM_SAMPLES:
        reasons.append(f"{_count(int(n)) if n else '?'} samples (paper {_count(TABLE1_NUM_SAMPLES)})")
    trajectory = TABLE1_TRAJECTORY[dataset]
    if cell.get("skip") != trajectory:
        reasons.append(f"{cell.get('skip')} trajectory (paper {trajectory})")
    if _ema(cell) is not True:
        reasons.append("non-EMA weights (paper EMA)" if _ema(cell) is False else "EMA not recorded (paper EMA)")
    return reasons


def table2_mismatches(cell: Cell) -> list[str]:
    """As table1_mismatches, for Table 2's reconstruction error (the CIFAR-10 test set, η = 0, EMA weights; the
    paper does not say which trajectory)."""
    if cell.get("dataset") != TABLE2_DATASET:
        return [f"data set {cell.get('dataset')} (paper: {TABLE2_DATASET})"]
    reasons = []
    if not is_eta_zero(cell.get("eta")) or cell_method(cell) != DDIM:
        reasons.append("not ddim at η = 0")
    n = cell.get("recon_samples")
    if n != TABLE2_NUM_IMAGES:
        reasons.append(f"{_count(int(n)) if n else '?'} test images (paper {_count(TABLE2_NUM_IMAGES)})")
    if _ema(cell) is not True:
        reasons.append("non-EMA weights (paper EMA)" if _ema(cell) is False else "EMA not recorded (paper EMA)")
    return reasons


def paper_fid(cell: Cell, table: dict[str, dict[tuple[int, Eta], float]]) -> float | None:
    """The paper's FID for the cell's (data set, S, η), whatever its setup; None where the paper has none."""
    try:
        key = (int(cell["steps"]), normalize_eta(cell["eta"]))
    except (KeyError, TypeError, ValueError):
        return None
    return table.get(str(cell.get("dataset")), {}).get(key)


__all__ = [
    "PAPER_TABLE1", "PAPER_TABLE2", "TABLE1_NUM_SAMPLES", "TABLE1_TRAJECTORY", "TABLE2_NUM_IMAGES", "paper_fid",
    "read_paper_table1", "read_paper_table2", "table1_mismatches", "table2_mismatches",
]
