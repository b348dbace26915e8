"""Where the error bars are computed and stored: score() puts the cell's interval and FD∞ in metrics.json and its
resamples in bootstrap.json, metrics.json records seed and sample counts, and the end of a sweep turns two cells'
resamples into the paper's paired difference (results.md, comparisons.csv), from the stored replicates or, where
those are missing, from the features in the cells' work dirs. Made-up features, no model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ddim.diffusion import NoiseSchedule
from ddim.evaluation.metrics.bootstrap import FrechetToReference
from ddim.evaluation.metrics.statistics import FeatureStats, fid_from_stats
from ddim.evaluation.pipeline import cell as cell_module
from ddim.evaluation.pipeline.intervals import paired_differences
from ddim.evaluation.pipeline.options import EvalOptions, FidOptions
from ddim.evaluation.pipeline.plan import CellPlan
from ddim.evaluation.pipeline.store import REPLICATES_FILE, read_replicates, save_chunk
from ddim.evaluation.pipeline.sweep import collect_sweep
from ddim.evaluation.report.cells import load_cells
from ddim.models import DEFAULT_SCHEDULE
from ddim.sampling import SamplerSettings

NUM, DIM = 120, 5


def make_plan(out_dir: Path, eta: float, **fid) -> CellPlan:
    fid = {"kid_subsets": 0, "bootstrap": 50, **fid}
    return CellPlan(ckpt=str(out_dir.parent / "model.ckpt"), out_dir=str(out_dir),
                    dataset={"name": "digits", "resolution": 8}, extractor="digits-classifier-conv",
                    sampler=SamplerSettings(10, eta), eval=EvalOptions(num_samples=NUM), fid=FidOptions(**fid), seed=0)


def reference(tmp_path: Path) -> FeatureStats:
    stats = FeatureStats.from_features(np.random.default_rng(0).standard_normal((400, DIM)).astype(np.float32))
    stats.path = stats.save(tmp_path / "reference.npz")
    return stats


def write_features(plan: CellPlan, features: np.ndarray) -> None:
    folder = plan.work_dir("features")
    folder.mkdir(parents=True)
    for start in range(0, len(features), 50):  # three chunk files, as batches of 50 would leave them
        indices = list(range(start, min(start + 50, len(features))))
        save_chunk(folder, indices, features=features[indices].astype(np.float32), seconds=np.full(len(indices), 0.01))


def cell_features(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((NUM, DIM)) * 1.2 + 0.3


def test_score_records_the_interval_and_fd_infinity_and_keeps_the_resamples(tmp_path):
    plan, ref = make_plan(tmp_path / "0", 0.0, extrapolate=True), reference(tmp_path)
    features = cell_features()
    write_features(plan, features)
    result = cell_module.score(plan, ref)
    stats = FeatureStats.from_features(features.astype(np.float32))
    assert result["value"] == pytest.approx(fid_from_stats(stats.mu, stats.sigma, ref.mu, ref.sigma), rel=1e-9)
    low, high = result["value_ci"]
    assert low < result["value"] < high and result["bootstrap"] == 50 and result["value_se"] > 0
    stored = read_replicates(tmp_path / "0", seed=0, num=NUM)
    np.testing.assert_allclose(stored, FrechetToReference(features.astype(np.float32), ref.mu, ref.sigma).replicates(0, 50))
    assert result["extrapolation"]["sizes"] == [24, 48, 72, 96, 120] and "value_infinity" in result
    off = cell_module.score(make_plan(tmp_path / "0", 0.0, bootstrap=0), ref)  # fid.bootstrap=0: no interval
    assert "value_ci" not in off and "value_infinity" not in off


def test_metrics_json_records_the_seed_and_both_sample_counts(tmp_path, monkeypatch):
    plan, ref = make_plan(tmp_path / "0", 0.0), reference(tmp_path)
    plan.seed = 3
    model = SimpleNamespace(config={"in_channels": 1, "resolution": 8})
    monkeypatch.setattr(cell_module, "load_model", lambda *a, **k: (model, NoiseSchedule.from_config(DEFAULT_SCHEDULE), {}))
    monkeypatch.setattr(cell_module, "build_feature_extractor", lambda *a, **k: None)
    monkeypatch.setattr(cell_module, "cell_reference", lambda *a, **k: (ref, None))  # the training set's statistics
    monkeypatch.setattr(cell_module, "launch", lambda p: write_features(p, cell_features()))
    metrics = cell_module.run_cell(plan)
    on_disk = json.loads((tmp_path / "0" / "metrics.json").read_text())
    assert on_disk == metrics
    assert (metrics["seed"], metrics["num_samples"], metrics["reference_num_samples"]) == (3, NUM, 400)
    assert metrics["key"]["seed"] == 3 and metrics["key"]["bootstrap"] == 50
    assert metrics["features_dir"] == plan.work_dir("features").name and metrics["reference_stats"] == str(ref.path)


def scored_sweep(tmp_path: Path) -> Path:
    """Two cells of one seed and N, η = 0 and η = 1, whose images share x_T: the second's features are the first's
    moved a little, so their difference is resolved by paired resamples."""
    sweep, ref = tmp_path / "sweep", reference(tmp_path)
    first = cell_features()
    second = first + 0.1 + 0.05 * np.random.default_rng(2).standard_normal(first.shape)
    for job, (eta, features) in enumerate([(0.0, first), (1.0, second)]):
        plan = make_plan(sweep / str(job), eta)
        write_features(plan, features)
        metrics = {"status": "ok", "dataset": "digits", "steps": 10, "eta": eta, "skip": "uniform", "method": "ddim",
                   "metric": "fd_digits_conv", "seed": 0, "num_samples": NUM, "reference_num_samples": 400,
                   "features_dir": plan.work_dir("features").name, "reference_stats": str(ref.path),
                   "key": {"eta": eta}, **cell_module.score(plan, ref)}
        (sweep / str(job) / "metrics.json").write_text(json.dumps(metrics))
    return sweep


def test_the_sweep_writes_the_paired_difference_and_says_whether_it_is_real(tmp_path):
    sweep = scored_sweep(tmp_path)
    paths = collect_sweep(sweep)
    assert sweep / "comparisons.csv" in paths
    cells = load_cells(sweep)
    record = paired_differences(sweep, cells)[0]
    assert record["difference"] == pytest.approx(cells[0]["value"] - cells[1]["value"])
    assert record["ci_low"] < record["difference"] < record["ci_high"] and record["bootstrap"] == 50
    md = (sweep / "results.md").read_text()
    line = next(line for line in md.splitlines() if line.startswith("- S=10: η=0.0 − η=1.0 = "))
    assert line.endswith(", real") == record["real"] and record["real"]
    rows = (sweep / "comparisons.csv").read_text().splitlines()
    assert rows[0].startswith("comparison,kind,skip,steps,nfe,first,second") and len(rows) == 2


def test_missing_or_too_few_resamples_are_drawn_from_the_features(tmp_path):
    sweep = scored_sweep(tmp_path)
    cells = load_cells(sweep)
    stored = paired_differences(sweep, cells)
    (sweep / "1" / REPLICATES_FILE).unlink()  # as if the cell had been scored with fid.bootstrap=0
    assert paired_differences(sweep, cells) == []  # stored replicates only: nothing to pair
    recomputed = paired_differences(sweep, cells, resamples=50)  # the sweep's fid.bootstrap: drawn from the features
    assert recomputed[0]["ci_low"] == pytest.approx(stored[0]["ci_low"], rel=1e-9)
    assert recomputed[0]["ci_high"] == pytest.approx(stored[0]["ci_high"], rel=1e-9)
    first_fifty = read_replicates(sweep / "0", 0, NUM)
    paired_differences(sweep, cells, resamples=80)  # topped up: resamples 50..79 added, 0..49 kept
    topped = read_replicates(sweep / "0", 0, NUM)
    assert len(topped) == 80 and np.array_equal(topped[:50], first_fifty)
