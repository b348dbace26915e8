"""fid.reference=PATH.npz: pytorch-fid's / EDM's mu-sigma files, guided-diffusion's reference batches and our own
cache are read and told apart; bad files are one InputError line; our cache exported and read back scores the same
FD as the cache itself, and as an independent scipy sqrtm computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch

from ddim.errors import InputError
from ddim.evaluation.export_reference import main as export_main
from ddim.evaluation.metrics.reference_files import GUIDED, MU_SIGMA, OURS, export_reference, read_reference
from ddim.evaluation.metrics.statistics import FeatureStats, fid_from_stats
from ddim.evaluation.pipeline import cell as cell_module
from ddim.evaluation.pipeline.options import EvalOptions, FidOptions
from ddim.evaluation.pipeline.plan import CellPlan
from ddim.evaluation.pipeline.reference import cell_reference
from ddim.evaluation.pipeline.store import save_chunk
from ddim.sampling import SamplerSettings

DIM = 6


def features(num: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((DIM, DIM)) / np.sqrt(DIM)
    return (rng.standard_normal((num, DIM)) @ mixing + shift).astype(np.float32)


def scipy_fd(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def cache_file(tmp_path):
    real = features(300, 0).astype(np.float64)
    stats = FeatureStats.from_features(real)
    return real, stats.save(tmp_path / "cache.npz")


def test_exported_then_imported_reference_scores_what_the_cache_and_scipy_do(tmp_path):
    real, cache = cache_file(tmp_path)
    assert export_main([str(cache), str(tmp_path / "exported.npz")]) == 0
    with np.load(tmp_path / "exported.npz") as data:
        assert sorted(data.files) == ["mu", "sigma"] and data["mu"].dtype == np.float64  # pytorch-fid's layout
    imported, found = read_reference(tmp_path / "exported.npz", DIM)
    from_cache, found_cache = read_reference(cache, DIM)
    assert (found, found_cache) == (MU_SIGMA, OURS) and imported.num_samples is None and not imported.has_features
    generated = FeatureStats.from_features(features(200, 1, shift=0.4))
    through_file = fid_from_stats(generated.mu, generated.sigma, imported.mu, imported.sigma)
    through_cache = fid_from_stats(generated.mu, generated.sigma, from_cache.mu, from_cache.sigma)
    assert through_file == pytest.approx(through_cache, rel=1e-12)
    assert through_file == pytest.approx(scipy_fd(generated.features.astype(np.float64), real), rel=1e-9)


def test_a_guided_diffusion_reference_batch_gives_its_mu_sigma_and_image_count(tmp_path):
    path = tmp_path / "VIRTUAL_ref.npz"
    mu, sigma = np.arange(DIM, dtype=np.float64), np.eye(DIM)
    np.savez(path, arr_0=np.zeros((37, 8, 8, 3), np.uint8), mu=mu, sigma=sigma, mu_s=mu[:2], sigma_s=np.eye(2))
    stats, found = read_reference(path, DIM)
    assert found == GUIDED and stats.num_samples == 37
    np.testing.assert_array_equal(stats.mu, mu)
    np.testing.assert_array_equal(stats.sigma, sigma)


@pytest.mark.parametrize("arrays, message", [
    ({"mu": np.zeros(DIM)}, "holds mu; expected mu and sigma"),
    ({"mu": np.zeros(DIM), "sigma": np.eye(DIM + 1)}, r"mu has shape \(6,\) and sigma \(7, 7\)"),
    ({"mu": np.zeros(4), "sigma": np.eye(4)}, "statistics of 4-d features; this cell's extractor gives 6-d"),
    ({"mu": np.full(DIM, np.nan), "sigma": np.eye(DIM)}, "NaN or inf"),
])
def test_bad_reference_files_are_one_line(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(InputError, match=message) as error:
        read_reference(tmp_path / "bad.npz", DIM)
    assert "\n" not in str(error.value) and "fid.reference=" in str(error.value)


def test_a_file_that_is_no_npz_or_missing_is_one_line(tmp_path):
    (tmp_path / "stats.npz").write_text("mu, sigma")
    with pytest.raises(InputError, match="not a readable .npz"):
        read_reference(tmp_path / "stats.npz", DIM)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_reference(tmp_path / "none.npz", DIM)
    assert export_main([str(tmp_path / "stats.npz"), str(tmp_path / "out.npz")]) == 2
    assert not (tmp_path / "out.npz").exists()


def test_export_reads_the_reference_a_cells_metrics_json_names(tmp_path, capsys):
    _, cache = cache_file(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"reference_stats": str(cache)}))
    assert export_main([str(tmp_path / "metrics.json"), str(tmp_path / "out.npz")]) == 0
    assert "of 300 images" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["sigma"], FeatureStats.load(cache).sigma)


class Identity(torch.nn.Module):
    """A stand-in extractor: the flattened image as its features (6 = 1 × 2 × 3 values)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # where extract_layers finds the device

    def forward(self, x):
        return (x.flatten(1).float(),)

    def get_name(self):
        return "identity"


def plan_for(tmp_path, reference, metrics=("fid",)) -> CellPlan:
    return CellPlan(ckpt=str(tmp_path / "model.ckpt"), out_dir=str(tmp_path), dataset={"name": "digits", "resolution": 8},
                    extractor="digits-classifier-conv", sampler=SamplerSettings(10, 0.0),
                    eval=EvalOptions(num_samples=200), seed=0,
                    fid=FidOptions(metrics=list(metrics), bootstrap=20, reference=str(reference)))


def test_a_cell_scored_against_the_exported_file_matches_the_cache_and_says_the_format(tmp_path):
    _, cache = cache_file(tmp_path)
    export_reference(FeatureStats.load(cache), tmp_path / "exported.npz")
    extractor = Identity()
    plan = plan_for(tmp_path, tmp_path / "exported.npz")
    reference, found = cell_reference(plan, extractor, (1, 2, 3))
    assert found == MU_SIGMA
    folder = plan.work_dir("features")
    folder.mkdir()
    generated = features(200, 1, shift=0.4)
    save_chunk(folder, list(range(200)), features=generated, seconds=np.full(200, 0.01))
    from_file = cell_module.score(plan, reference)
    from_cache = cell_module.score(plan_for(tmp_path, cache), FeatureStats.load(cache))
    assert from_file["value"] == pytest.approx(from_cache["value"], rel=1e-12)
    assert from_file["value_ci"] == pytest.approx(from_cache["value_ci"], rel=1e-9)  # same resamples, same FDs
    with pytest.raises(InputError, match="without features: kid and prc need the reference's features"):
        cell_reference(plan_for(tmp_path, tmp_path / "exported.npz", ("fid", "kid", "prc")), extractor, (1, 2, 3))
    with pytest.raises(InputError, match="this cell's extractor gives 6-d"):
        np.savez(tmp_path / "wide.npz", mu=np.zeros(9), sigma=np.eye(9))
        cell_reference(plan_for(tmp_path, tmp_path / "wide.npz"), extractor, (1, 2, 3))
