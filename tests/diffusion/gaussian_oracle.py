"""Data x0 ~ N(μ, s²) i.i.d. per dimension: the optimal ε-predictor is known in closed form,
E[ε | x_t] = √(1 − ᾱ)(x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ), so a sampler driven by it must reproduce N(μ, s²)."""

import torch

from ddim.diffusion import NoiseSchedule


class GaussianOracle(torch.nn.Module):
    def __init__(self, schedule: NoiseSchedule, mean: float, std: float) -> None:
        super().__init__()
        self.alphas_cumprod = schedule.alphas_cumprod
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        a = self.alphas_cumprod[t].to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return (1 - a).sqrt() * (x - a.sqrt() * self.mean) / (a * self.std**2 + 1 - a)
