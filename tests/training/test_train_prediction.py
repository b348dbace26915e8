"""train.py with model.prediction=v: the checkpoint says so, and evaluation's loader turns it into an ε-model."""

import pytest
import torch

from ddim.diffusion.prediction import EpsFromPrediction, eps_x0_from_output
from ddim.evaluation.pipeline.cell import load_model
from ddim.evaluation.pipeline.plan import CellPlan
from ddim.models import read_checkpoint
from ddim.sampling import SamplerSettings
from ddim.training.train import train

from ..helpers import tiny_train_config


@pytest.mark.slow
def test_a_v_network_trains_and_evaluation_samples_it_as_an_eps_model(tmp_path):
    result = train(tiny_train_config(tmp_path, "model.prediction=v", "trainer.max_steps=2"))
    assert result["loss"] is not None and result["loss"] > 0
    loaded = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert loaded.model.config["prediction"] == "v"
    plan = CellPlan(ckpt=str(tmp_path / "checkpoints" / "last.ckpt"), sampler=SamplerSettings(5),
                    out_dir=str(tmp_path), dataset={"name": "digits"}, extractor="x")
    model, schedule, _ = load_model(plan)
    assert isinstance(model, EpsFromPrediction) and model.config["prediction"] == "v"
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 900])
    a_t = schedule.alphas_cumprod[t].float().reshape(-1, 1, 1, 1)
    with torch.no_grad():
        expected, _ = eps_x0_from_output(loaded.model(x, t), x, a_t, "v")
        torch.testing.assert_close(model(x, t), expected)
