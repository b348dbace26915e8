"""python -m ddim.evaluation.collect and the end-of-sweep callback: the same tables from the cells on disk."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from ddim.evaluation.collect import main
from ddim.evaluation.pipeline.sweep import SweepResults
from ddim.evaluation.report.paper import PAPER_TABLE1
from ddim.evaluation.report.cells import load_cells
from ddim.evaluation.report.tables import format_table

from .test_tables import ok_cell, write_sweep

CELLS = [ok_cell(10, 0.0, 13.5, recon=0.0151), ok_cell(100, 0.0, 4.31), ok_cell(10, 1.0, 40.0)]
NO_EXTRAS = {"eval": {"figures": False}, "wandb": {"enabled": False}}


def test_collect_rebuilds_the_tables_from_metrics_json(tmp_path, capsys):
    sweep = write_sweep(tmp_path, CELLS)
    (sweep / "multirun.yaml").write_text(OmegaConf.to_yaml(NO_EXTRAS))
    assert main([str(sweep)]) == 0
    table = (sweep / "results.md").read_text()
    assert table == format_table(load_cells(sweep), paper=PAPER_TABLE1)  # the sweep's own table writer
    assert "13.5" in table and "4.31" in table and "40" in table
    assert len((sweep / "results.csv").read_text().splitlines()) == 1 + len(CELLS)
    assert (sweep / "fid_vs_steps.png").stat().st_size > 0
    assert "results:" in capsys.readouterr().out


def test_the_callback_and_the_cli_write_the_same_files(tmp_path):
    by_cli, by_callback = write_sweep(tmp_path / "a", CELLS), write_sweep(tmp_path / "b", CELLS)
    assert main([str(by_cli), "--tables-only"]) == 0
    SweepResults().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(by_callback)}}, **NO_EXTRAS}))
    for name in ["results.md", "results.csv"]:
        assert (by_cli / name).read_text() == (by_callback / name).read_text()


@pytest.mark.slow
@pytest.mark.parametrize("make,message", [
    (lambda root: root / "nope", "no such folder; expected the hydra.sweep.dir of an `evaluate.py -m` run"),
    (lambda root: root, "holds no <job>/metrics.json"),
])
def test_collect_bad_input_is_one_clear_line(tmp_path, make, message):
    sweep = make(tmp_path)
    done = subprocess.run([sys.executable, "-m", "ddim.evaluation.collect", str(sweep)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(sweep) in lines[0] and message in lines[0], done.stderr[-2000:]
