"""Inception Score and precision/recall (fid.metrics=[fid,kid,isc,prc]) on made-up features with known answers,
against an independent numpy k-NN computation, and through score() from a cell's stored chunk files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddim.errors import InputError
from ddim.evaluation.metrics.features import DigitsClassifier, build_feature_extractor
from ddim.evaluation.metrics.fidelity import equal_sized, inception_score, precision_recall
from ddim.evaluation.metrics.statistics import FeatureStats, extract_layers
from ddim.evaluation.pipeline import cell as cell_module
from ddim.evaluation.pipeline.options import EvalOptions, FidOptions
from ddim.evaluation.pipeline.plan import CellPlan
from ddim.evaluation.pipeline.store import save_chunk
from ddim.sampling import SamplerSettings


def numpy_precision_recall(generated: np.ndarray, real: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al.'s definition, brute force: a sample is covered by a set if it lies within the distance
    from some member of that set to the member's k-th nearest other member."""
    def radii(x):
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def covered(points, members):
        d = np.linalg.norm(points[:, None] - members[None], axis=-1)
        return float((d <= radii(members)[None]).any(axis=1).mean())

    return covered(generated, real), covered(real, generated)


def test_identical_sets_have_precision_and_recall_one():
    features = np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32)
    assert precision_recall(features, features.copy()) == (1.0, 1.0)


def test_far_apart_sets_have_precision_and_recall_zero():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((150, 8))
    assert precision_recall(real + 100.0, real) == (0.0, 0.0)


def test_overlapping_sets_match_the_brute_force_definition():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((120, 6))
    generated = rng.standard_normal((120, 6)) * 0.5 + 0.8  # narrower, shifted: precision high, recall low
    expected = numpy_precision_recall(generated, real)
    assert 0.0 < expected[1] < expected[0] < 1.0
    assert precision_recall(generated, real) == pytest.approx(expected, abs=1e-6)  # float32 means; one sample is 1/120


def test_the_larger_set_is_subsampled_to_the_smaller_ones_size():
    rng = np.random.default_rng(3)
    small, large = rng.standard_normal((50, 4)), rng.standard_normal((300, 4))
    a, b = equal_sized(small, large)
    assert a is small and len(b) == 50 and {tuple(r) for r in b} <= {tuple(r) for r in large}


def test_inception_score_of_uniform_one_hot_predictions_is_the_class_count():
    classes = 7
    logits = torch.full((classes * 20, classes), -60.0)
    logits[torch.arange(len(logits)), torch.arange(len(logits)) % classes] = 60.0  # one-hot, every class equally often
    mean, std = inception_score(logits, splits=1)
    assert mean == pytest.approx(classes, rel=1e-9) and std == 0.0


def test_inception_score_of_identical_predictions_is_one():
    logits = torch.randn(1, 10).repeat(100, 1)
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_metrics_must_include_fid_and_be_known():
    with pytest.raises(InputError, match=r"fid.metrics=\['kid'\]; expected a list of fid, kid, isc, prc"):
        FidOptions(metrics=["kid"])
    with pytest.raises(InputError, match="fid.metrics"):
        FidOptions(metrics=["fid", "is"])
    assert not FidOptions(metrics=["fid", "kid"], kid_subsets=0).wants("kid")


def test_digits_extractor_gives_the_conv_features_and_the_ten_class_logits(tmp_path):
    torch.save(DigitsClassifier().state_dict(), tmp_path / "untrained.pt")  # the layers, not the training, are tested
    extractor = build_feature_extractor("digits-classifier-conv", tmp_path / "untrained.pt", logits=True)
    features, logits = extract_layers(extractor, torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8))
    assert features.shape == (3, 1024) and logits.shape == (3, 10)


def test_score_reports_precision_recall_and_the_score_from_stored_chunks(tmp_path):
    rng = np.random.default_rng(4)
    real = rng.standard_normal((100, 5)).astype(np.float32)
    reference = FeatureStats.from_features(real)
    plan = CellPlan(ckpt=str(tmp_path / "model.ckpt"), out_dir=str(tmp_path), dataset={"name": "digits", "resolution": 8},
                    extractor="digits-classifier-conv", sampler=SamplerSettings(10, 0.0),
                    eval=EvalOptions(num_samples=100), seed=0,
                    fid=FidOptions(metrics=["fid", "isc", "prc"], bootstrap=0, isc_splits=1))
    folder = plan.work_dir("features")
    folder.mkdir()
    logits = np.full((100, 4), -60.0, dtype=np.float32)
    logits[np.arange(100), np.arange(100) % 4] = 60.0
    for start in (0, 50):
        rows = list(range(start, start + 50))
        save_chunk(folder, rows, features=real[rows], logits=logits[rows], seconds=np.full(50, 0.01))
    result = cell_module.score(plan, reference)
    assert result["precision"] == result["recall"] == 1.0
    assert result["isc_mean"] == pytest.approx(4.0, rel=1e-9)
    assert result["value"] == pytest.approx(0.0, abs=1e-9) and "kid_mean" not in result


def test_the_new_metrics_appear_in_results_csv_and_md():
    from ddim.evaluation.report.tables import format_csv, format_table

    cells = [{"status": "ok", "steps": s, "eta": 0.0, "skip": "uniform", "metric": "fd_digits_conv", "value": v,
              "seed": 0, "kid_mean": 0.01, "kid_std": 0.002, "isc_mean": 9.1, "isc_std": 0.1, "precision": p,
              "recall": 0.5} for s, v, p in ((10, 3.0, 0.75), (20, 2.0, 0.8125))]
    header = format_csv(cells).splitlines()[0].split(",")
    assert {"isc_mean", "isc_std", "precision", "recall", "kid_mean"} <= set(header)
    md = format_table(cells, paper=None, paper_recon=None)
    assert "| S | sampler | KID | IS (digits classifier, ≤ 10) (mean ± std over splits) | precision | recall |" in md
    assert "| 10 | η=0.0 | 0.01 ± 0.002 | 9.10 ± 0.1 | 0.750 | 0.500 |" in md
    assert "| 20 | η=0.0 | 0.01 ± 0.002 | 9.10 ± 0.1 | 0.812 | 0.500 |" in md
    assert "KID, Inception Score" not in format_table([{**c, "isc_mean": None, "precision": None} for c in cells],
                                                      paper=None, paper_recon=None)
