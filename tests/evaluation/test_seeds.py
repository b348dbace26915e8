"""Seeds as an axis and the paper's differences, on made-up metrics.json cells: replicates become one entry with a
Student-t interval, one cell shows its bootstrap interval, and the differences render with a verdict."""

from __future__ import annotations

import csv

import pytest

from ddim.evaluation.report.cells import load_cells
from ddim.evaluation.report.comparisons import comparison_line, format_comparisons, paper_comparisons
from ddim.evaluation.report.pivot import method_pivot, pivot_table
from ddim.evaluation.report.replicates import aggregate_seeds, mean_interval, t_quantile_975
from ddim.evaluation.report.tables import format_table, write_results

from .test_tables import ok_cell, write_sweep

SEED_VALUES = [13.0, 13.4, 13.6, 13.8]  # mean 13.45, sd 0.3416: ± 3.1824 · 0.3416 / 2 = 0.5435


def seeded(steps: int, eta, values: list[float], **changes) -> list[dict]:
    return [ok_cell(steps, eta, v, seed=seed, **{**changes, "key": {"ckpt": "/x.ckpt", "steps": steps, "seed": seed}})
            for seed, v in enumerate(values)]


def test_t_quantile_matches_scipy():
    from scipy.stats import t

    for df in [*range(1, 40), 50, 100, 1000]:
        assert t_quantile_975(df) == pytest.approx(t.ppf(0.975, df), abs=1e-4)
    mean, half = mean_interval(SEED_VALUES)
    assert mean == pytest.approx(13.45) and half == pytest.approx(0.5435, abs=1e-4)


def test_cells_that_differ_only_in_seed_are_one_entry_with_a_t_interval(tmp_path):
    cells = [*seeded(10, 0.0, SEED_VALUES, recon=0.0151), *seeded(10, 1.0, [40.0, 41.0, 39.5, 40.5]),
             ok_cell(100, 0.0, 4.31, seed=0)]
    sweep = write_sweep(tmp_path, cells)
    paths = write_results(sweep, load_cells(sweep))
    md = paths[1].read_text()
    assert "| 10 | 13.45 ± 0.54 (4 seeds) (paper 13.36, +0.09) | 40.25 ± 1.03 (4 seeds) (paper 41.07, -0.82) |" in md
    assert "| 100 | 4.31 (paper 4.16, +0.15) | — |" in md  # one seed, no bootstrap: no interval to show
    assert "± : the 95 % Student-t interval of the mean over seeds" in md
    rows = pivot_table(load_cells(sweep))
    assert rows[0]["η=0.0"] == pytest.approx(13.45) and rows[0]["recon_mse"] == pytest.approx(0.0151)
    with open(sweep / "results.csv", newline="") as f:  # the CSV keeps one row per cell, with its seed
        assert [r["seed"] for r in csv.DictReader(f)] == ["0", "1", "2", "3", "0", "1", "2", "3", "0"]


def test_a_failed_seed_is_counted_and_named():
    failed = {"steps": 10, "eta": 0.0, "skip": "quad", "method": "ddim", "seed": 3, "status": "failed", "value": None,
              "error": "RuntimeError: out of memory"}
    md = format_table([*seeded(10, 0.0, SEED_VALUES[:3]), failed])
    assert "13.33 ± 0.76 (3 seeds, 1 failed)" in md
    assert "- S=10 η=0.0 seed 3: RuntimeError: out of memory" in md


def test_cells_that_differ_in_more_than_seed_are_not_averaged():
    other = ok_cell(10, 0.0, 20.0, seed=5, key={"ckpt": "/other.ckpt", "steps": 10, "seed": 5})
    entry = aggregate_seeds([*seeded(10, 0.0, SEED_VALUES[:2]), other])
    assert len(entry) == 1 and entry[0]["value"] == 20.0 and "num_seeds" not in entry[0]  # the last finished wins
    assert aggregate_seeds(aggregate_seeds(seeded(10, 0.0, SEED_VALUES))) == aggregate_seeds(seeded(10, 0.0, SEED_VALUES))


def test_one_cell_shows_its_bootstrap_interval_and_fd_infinity():
    cell = ok_cell(10, 0.0, 13.45, num_samples=1000, value_ci=[12.9, 14.02], bootstrap=200, value_infinity=12.8)
    md = format_table([cell])
    assert "| 10 | 13.45 [12.90, 14.02]; ∞ 12.80 |" in md
    assert "[low, high]: the 95 % bootstrap interval of one cell (200 resamples" in md
    assert "∞: the metric extrapolated to infinitely many samples" in md


def test_method_table_combines_seeds_too():
    cells = [*seeded(10, 0.0, SEED_VALUES, method="ddim"), *seeded(10, 0.0, [9.0, 9.2, 9.1, 9.3], method="dpmpp_2m")]
    rows = method_pivot(cells)
    assert rows == [{"NFE": 10, "ddim (η=0)": pytest.approx(13.45), "dpmpp_2m": pytest.approx(9.15)}]
    assert "9.15 ± 0.21 (4 seeds)" in format_table(cells)


def test_the_papers_comparisons_pair_cells_of_equal_seed_and_n():
    cells = [*seeded(10, 0.0, [13.0, 13.4]), *seeded(10, 1.0, [40.0]), *seeded(20, 0.0, [7.0]),
             *seeded(20, 0.5, [7.5]), *seeded(10, 0.0, [9.0, 9.1], method="dpmpp_2m"),
             ok_cell(10, 1.0, 41.0, seed=1, num_samples=1000)]  # seed 1 at η=1 has another N: no pair
    found = paper_comparisons(cells)
    assert [c.label for c in found] == ["S=10: η=0.0 − η=1.0", "NFE=10: dpmpp_2m − ddim"]
    assert [(a["seed"], b["seed"]) for a, b in found[0].pairs] == [(0, 0)]
    assert [(a["value"], b["value"]) for a, b in found[1].pairs] == [(9.0, 13.0), (9.1, 13.4)]


def test_differences_render_with_their_verdict():
    records = [
        {"comparison": "S=10: η=0.0 − η=1.0", "difference": -3.41, "ci_low": -4.02, "ci_high": -2.80, "seeds": 1,
         "bootstrap": 200},
        {"comparison": "S=20: η=0.0 − η=1.0", "difference": -0.2, "ci_low": -0.5, "ci_high": 0.1, "seeds": 4,
         "bootstrap": 200},
    ]
    assert comparison_line(records[0]) == "- S=10: η=0.0 − η=1.0 = -3.41 [-4.02, -2.80], real"
    assert comparison_line(records[1]) == "- S=20: η=0.0 − η=1.0 = -0.2 [-0.5, 0.1] (4 seeds), not resolved (the interval holds 0)"
    lines = format_comparisons(records, "fid")
    assert lines[0] == "## Differences in fid, with 95 % paired-bootstrap intervals"
    assert "the same 200 resamples of image indices in both cells" in lines[-1]
    assert format_comparisons([], "fid") == []
    md = format_table([ok_cell(10, 0.0, 13.0), ok_cell(10, 1.0, 16.41)], comparisons=records)
    assert md.rstrip().endswith("the 95 % interval of the difference excludes 0. With several seeds: the mean "
                                "difference over seeds, its interval from the seed-averaged resamples.")


def test_a_searched_trajectory_is_compared_with_each_fixed_spacing_of_its_method_and_nfe():
    cells = [ok_cell(5, 0.0, 21.2, skip="quad"), ok_cell(5, 0.0, 16.6, skip="searched"),
             ok_cell(5, 0.0, 26.7, skip="uniform"), ok_cell(5, 0.0, 12.8, skip="quad", method="dpmpp_2m"),
             ok_cell(10, 0.0, 12.3, skip="quad")]  # no searched cell at NFE 10: nothing to compare there
    found = [c for c in paper_comparisons(cells) if c.kind == "trajectory"]
    assert [c.label for c in found] == ["NFE=5 (ddim): searched − quad", "NFE=5 (ddim): searched − uniform"]
    assert [(a["value"], b["value"]) for a, b in found[0].pairs] == [(16.6, 21.2)]
