"""Made-up metrics.json files in a fake multirun dir → the pivot, results.csv, results.md and the plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ddim.evaluation.report.cells import eta_label, load_cells
from ddim.evaluation.report.paper import read_paper_table1, read_paper_table2
from ddim.evaluation.report.pivot import pivot_table
from ddim.evaluation.report.tables import format_table, write_results

PAPER_DIR = Path(__file__).resolve().parents[2] / "src" / "ddim" / "evaluation" / "report" / "paper"
PAPER_TABLE1 = PAPER_DIR / "paper_table1_fid.csv"


def ok_cell(steps: int, eta, value: float, recon: float | None = None, dataset: str = "cifar10", metric: str = "fid",
            **changes):
    """A finished cell of the paper's CIFAR-10 setup (50,000 samples, quad, EMA, the whole test set), unless changed."""
    cell = {"steps": steps, "eta": eta, "skip": "quad", "metric": metric, "value": value, "recon_mse": recon,
            "num_samples": 50000, "recon_samples": 10000 if recon is not None else 0, "ema": True, "nfe": steps,
            "seconds": 10.0, "images_per_second": 100.0, "status": "ok", "dataset": dataset,
            "key": {"ckpt": "/x.ckpt", "steps": steps}}
    return {**cell, **changes}


def paper_beside_a_cell(md: str) -> bool:
    """Whether any table row (not a footnote) shows a paper number."""
    return any("(paper" in line for line in md.splitlines() if line.startswith("|"))


def write_sweep(root: Path, cells: list[dict]) -> Path:
    for job, cell in enumerate(cells):
        (root / str(job)).mkdir(parents=True)
        (root / str(job) / "metrics.json").write_text(json.dumps(cell))
    (root / "multirun.yaml").write_text("not a cell\n")
    return root


@pytest.fixture
def cells() -> list[dict]:
    failed = {"steps": 10, "eta": 0.5, "skip": "quad", "status": "failed", "value": None, "recon_mse": None,
              "error": "RuntimeError: CUDA out of memory"}
    return [
        ok_cell(10, 0.0, 13.5, recon=0.0151),
        ok_cell(100, 0.0, 4.31, recon=0.00095),
        ok_cell(10, 1.0, 40.0),
        ok_cell(100, 1.0, 5.5),
        ok_cell(100, 0.5, 4.5),
        ok_cell(10, "sigma_hat", 360.0),
        ok_cell(100, "sigma_hat", 10.2),
        failed,
    ]


def test_load_cells_reads_every_job_in_numeric_order(tmp_path, cells):
    extra = [ok_cell(20, 0.0, 7.0)] * 3  # jobs 8..10: "10" must sort after "9"
    loaded = load_cells(write_sweep(tmp_path, cells + extra))
    assert [c["job"] for c in loaded] == [str(i) for i in range(11)]
    assert loaded[7]["status"] == "failed"


def test_pivot_rows_columns_and_failed_cells(cells):
    rows = pivot_table(cells)
    assert [r["S"] for r in rows] == [10, 100]
    assert list(rows[0]) == ["S", "η=0.0", "η=0.5", "η=1.0", "σ̂", "recon_mse"]
    assert rows[0]["η=0.5"] == "failed" and rows[1]["η=0.5"] == 4.5
    assert rows[0]["σ̂"] == 360.0 and rows[1]["η=1.0"] == 5.5
    assert rows[0]["recon_mse"] == 0.0151 and rows[1]["recon_mse"] == 0.00095
    assert eta_label(0) == "η=0.0" and eta_label("sigma_hat") == "σ̂"


def test_pivot_missing_cell_is_none():
    rows = pivot_table([ok_cell(10, 0.0, 1.0), ok_cell(20, 1.0, 2.0)])
    assert rows[0]["η=1.0"] is None and rows[1]["η=0.0"] is None and rows[1]["recon_mse"] is None


def test_paper_tables_parse():
    fid = read_paper_table1(PAPER_TABLE1)
    assert fid["cifar10"][(100, 0.0)] == 4.16 and fid["celeba"][(10, "sigma_hat")] == 299.71
    assert read_paper_table2(PAPER_DIR / "paper_table2_reconstruction.csv")[100] == 0.0009


def test_write_results_files(tmp_path, cells):
    sweep = write_sweep(tmp_path, cells)
    paths = write_results(sweep, load_cells(sweep), paper=PAPER_TABLE1)
    assert [p.name for p in paths] == ["results.csv", "results.md", "fid_vs_steps.png"]
    assert not list(sweep.glob(".*.tmp*"))  # atomic writes leave no temp files

    with open(sweep / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(cells)
    by_job = {r["job"]: r for r in rows}
    assert by_job["1"]["value"] == "4.31" and by_job["1"]["eta"] == "0.0" and by_job["1"]["steps"] == "100"
    assert by_job["7"]["status"] == "failed" and by_job["7"]["error"] == "RuntimeError: CUDA out of memory"
    assert by_job["7"]["value"] == ""
    assert json.loads(by_job["0"]["key"]) == {"ckpt": "/x.ckpt", "steps": 10}

    md = (sweep / "results.md").read_text()
    assert md.startswith("## fid by steps S and η — cifar10 (quad trajectory)")
    assert "| S | η=0.0 | η=0.5 | η=1.0 | σ̂ | recon MSE (η=0) |" in md
    assert "| 100 | 4.31 (paper 4.16, +0.15) | 4.50 (paper 4.46, +0.04) | 5.50 (paper 5.78, -0.28) | " \
           "10.20 (paper 9.99, +0.21) | 0.00095 (paper 0.0009) |" in md
    assert "| 10 | 13.50 (paper 13.36, +0.14) | failed | 40.00 (paper 41.07, -1.07) | " \
           "360.00 (paper 367.43, -7.43) | 0.0151 (paper 0.014) |" in md
    assert "- S=10 η=0.5: RuntimeError: CUDA out of memory" in md

    png = (sweep / "fid_vs_steps.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_no_paper_comparison_for_other_metrics_or_datasets(tmp_path):
    digits = [ok_cell(10, 0.0, 2.5, recon=0.01, dataset="digits", metric="fd_digits"),
              ok_cell(20, "sigma_hat", 0.75, dataset="digits", metric="fd_digits")]
    md = format_table(digits, paper=PAPER_TABLE1)
    assert md.startswith("## fd_digits by steps S and η — digits")
    assert "paper" not in md
    assert "| 10 | 2.50 | — | 0.01 |" in md and "| 20 | — | 0.75 | — |" in md
    # FID on a data set outside the paper's table: no comparison either
    assert "paper" not in format_table([ok_cell(10, 0.0, 9.0, dataset="mnist")], paper=PAPER_TABLE1)
    paths = write_results(tmp_path, digits)
    assert all(p.is_file() for p in paths)


def test_all_failed_sweep_still_writes_a_table(tmp_path):
    failed = [{"steps": 10, "eta": 0.0, "skip": "uniform", "status": "failed", "value": None, "error": "boom"}]
    paths = write_results(tmp_path, failed, paper=PAPER_TABLE1)
    md = paths[1].read_text()
    assert "| 10 | failed | — |" in md and "boom" in md


def test_a_thousand_sample_uniform_sweep_has_no_paper_number_and_says_why():
    small = [ok_cell(s, eta, 10.0 + s / 100, recon=0.01 if eta == 0 else None, num_samples=1000, skip="uniform",
                     recon_samples=500 if eta == 0 else 0)
             for s in (10, 100) for eta in (0.0, 1.0)]
    md = format_table(small)
    assert not paper_beside_a_cell(md)
    assert "No paper number beside the other cells the paper's Table 1 has, which ran another setup: " \
           "1k samples (paper 50k) (4 cells); uniform trajectory (paper quad) (4 cells)." in md
    assert "500 test images (paper 10k) (2 cells)" in md
    # the same grid at the paper's setup gets the paper's numbers
    paper_setup = format_table([ok_cell(100, 0.0, 4.2, recon=0.001), ok_cell(100, 1.0, 5.9)])
    assert "4.20 (paper 4.16, +0.04)" in paper_setup and "5.90 (paper 5.78, +0.12)" in paper_setup
    assert "0.001 (paper 0.0009)" in paper_setup and "No paper number" not in paper_setup


@pytest.mark.parametrize("change, reason", [
    ({"num_samples": 49984}, "49,984 samples (paper 50k)"),  # the official sampler's count at batch 64
    ({"skip": "uniform"}, "uniform trajectory (paper quad)"),
    ({"ema": False}, "non-EMA weights (paper EMA)"),
    ({"ema": None}, "EMA not recorded (paper EMA)"),
    ({"metric": "fd_digits_conv"}, "metric fd_digits_conv (paper: fid)"),
])
def test_each_mismatch_with_the_papers_setup_hides_the_number_and_is_named(change, reason):
    md = format_table([ok_cell(10, 0.0, 13.5, **change), ok_cell(10, 1.0, 40.0)])
    assert "13.50 |" in md and "13.50 (paper" not in md
    assert "40.00 (paper 41.07, -1.07)" in md  # the matching cell keeps its number
    assert f"{reason} (1 cell)" in md


def test_celeba_compares_on_the_uniform_trajectory_only():
    uniform = format_table([ok_cell(10, 0.0, 17.0, dataset="celeba", skip="uniform")])
    assert "17.00 (paper 17.33, -0.33)" in uniform
    quad = format_table([ok_cell(10, 0.0, 17.0, dataset="celeba", skip="quad")])
    assert not paper_beside_a_cell(quad) and "quad trajectory (paper uniform) (1 cell)" in quad
