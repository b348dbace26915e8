"""L_γ for x0- and v-networks: trained through the ε̂ their output converts to, or on their own MSE (x0_mse, v_mse),
against the Gaussian data's posterior variances."""

import pytest
import torch

from ddim.diffusion import loss_weights, signal_to_noise
from ddim.training import DiffusionModule

from ..diffusion.test_prediction import OracleAs
from .test_module import LINEAR, TINY

MEAN, STD = 0.2, 0.3  # OracleAs's data


def _module(prediction: str, weighting: str) -> DiffusionModule:
    module = DiffusionModule(model={**TINY, "prediction": prediction}, schedule=LINEAR, loss_weighting=weighting,
                             antithetic=False)
    assert module.prediction == prediction
    module.model = OracleAs(prediction).float()
    return module


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_the_optimal_network_of_each_type_has_the_same_eps_loss(prediction):
    """E‖ε̂ − ε‖² at the optimum is Var(ε | x_t) = ᾱ s²/(ᾱ s² + 1 − ᾱ), whatever the network outputs."""
    torch.manual_seed(0)
    module = _module(prediction, "simple")
    x0 = MEAN + STD * torch.randn(200000, 1, 1, 1)
    a = module.schedule.alphas_cumprod
    expected = (a * STD**2 / (a * STD**2 + 1 - a)).mean().item()
    assert module.diffusion_loss(x0).item() == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("prediction,weighting", [("x0", "x0_mse"), ("v", "v_mse")])
def test_x0_mse_and_v_mse_are_those_types_own_mse(prediction, weighting):
    """x0_mse: γ ∝ 1/SNR, so the loss is E‖x̂0 − x0‖² = Var(x0 | x_t) = s²(1 − ᾱ)/(ᾱ s² + 1 − ᾱ) up to γ's mean;
    v_mse: γ ∝ 1/ᾱ, E‖v̂ − v‖² = Var(ε | x_t)/ᾱ."""
    torch.manual_seed(1)
    module = _module(prediction, weighting)
    x0 = MEAN + STD * torch.randn(200000, 1, 1, 1)
    a = module.schedule.alphas_cumprod
    raw = 1 / signal_to_noise(a) if weighting == "x0_mse" else 1 / a
    per_t = STD**2 * (1 - a) / (a * STD**2 + 1 - a) if weighting == "x0_mse" else STD**2 / (a * STD**2 + 1 - a)
    expected = (per_t / raw.mean()).mean().item()
    torch.testing.assert_close(loss_weights(module.schedule, weighting), raw / raw.mean())
    assert module.diffusion_loss(x0).item() == pytest.approx(expected, rel=0.03)
