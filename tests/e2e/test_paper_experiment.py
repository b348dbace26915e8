"""sweep=paper_cifar10_table1 end to end, offline: a model in the official DDIM checkpoint format, a fake
CIFAR-10 folder and a randomly initialised Inception saved to disk stand in for the real files."""

import json

import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from ddim.evaluation.pipeline.sweep import SweepResults
from ddim.evaluation.pipeline.task import run_evaluation
from ddim.models import UNet

from ..data.test_datasets import no_md5, write_fake_cifar10  # noqa: F401  (no_md5 is a fixture)
from ..helpers import ROOT


def random_inception_weights(path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        torch.save(FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict(), path)


def official_ddim_checkpoint(path):
    """[model, optimizer, epoch, step, ema] with DataParallel's module. prefix, as ermongroup/ddim saves it."""
    torch.manual_seed(0)
    model = UNet(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,), dropout=0.0, resolution=32)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save([state, {}, 1, 100, state], path)


@pytest.mark.slow
def test_paper_cifar10_table1_experiment_runs_offline_on_a_small_n(tmp_path, no_md5):  # noqa: F811
    write_fake_cifar10(tmp_path / "cifar10", per_batch=4)
    random_inception_weights(tmp_path / "inception.pth")
    official_ddim_checkpoint(tmp_path / "ckpt.pth")
    sweep = tmp_path / "sweep"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("evaluate", return_hydra_config=True, overrides=[
            "sweep=paper_cifar10_table1", f"ckpt={tmp_path / 'ckpt.pth'}", f"dataset.root={tmp_path / 'cifar10'}",
            f"fid.weights={tmp_path / 'inception.pth'}", "eval.num_samples=6", "eval.batch_size=6",
            "eval.recon_samples=2", "fid.kid_subsets=0", "eval.figure_rows=2", "wandb=none",
            f"hydra.sweep.dir={sweep}",
        ])
    assert cfg.sampler.skip == "quad" and cfg.fid.extractor == "inception-v3-compat"
    assert cfg.hydra.sweeper.params["sampler.eta"] == "0,0.2,0.5,1,sigma_hat"
    for job, eta in enumerate([0, "sigma_hat"]):
        cell = cfg.copy()
        with open_dict(cell):
            cell.sampler.steps, cell.sampler.eta = 10, eta
            del cell["hydra"]
        assert run_evaluation(cell, str(sweep / str(job)), multirun=True)["status"] == "ok"
    SweepResults().on_multirun_end(cfg)

    cells = [json.loads((sweep / str(job) / "metrics.json").read_text()) for job in range(2)]
    assert all(c["metric"] == "fid" and c["dataset"] == "cifar10" and c["nfe"] == 10 for c in cells)
    table = (sweep / "results.md").read_text()
    # 6 samples are not the paper's 50,000: no paper number stands beside them, and the footnote says why
    assert not any("(paper" in line for line in table.splitlines() if line.startswith("|"))
    assert "6 samples (paper 50k) (2 cells)" in table and "2 test images (paper 10k) (1 cell)" in table
    assert all(c["ema"] is True and c["skip"] == "quad" for c in cells)
    assert (sweep / "consistency.png").is_file()
