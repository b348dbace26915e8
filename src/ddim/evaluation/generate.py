"""Turning a model, a sampler setting and image indices into images: the loop every caller shares."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ddim.diffusion import METHODS, SAMPLERS, NoiseSchedule, SKIP_TYPES, check_steps, nfe, sample
from ddim.utils import PerSampleNoise, per_sample_generators, per_sample_latents


@dataclass(frozen=True)
class SamplerSettings:
    """One cell of the S × η grid. `eta` is a number ≥ 0, or "sigma_hat" for Table 1's σ̂ row; `method` is
    "ddim" (the paper's sampler, every η) or one of the η = 0 ODE solvers of ddim.diffusion.solvers."""

    steps: int
    eta: float | str = 0.0
    skip: str = "uniform"
    clip_denoised: bool | None = None
    method: str = "ddim"

    def __post_init__(self) -> None:
        if isinstance(self.eta, str):
            if self.eta != "sigma_hat":
                raise ValueError(f"sampler.eta={self.eta!r}; expected a number >= 0 or sigma_hat")
        elif isinstance(self.eta, bool) or not isinstance(self.eta, (int, float)) or self.eta < 0:
            raise ValueError(f"sampler.eta={self.eta!r}; expected a number >= 0 or sigma_hat")
        if self.skip not in SKIP_TYPES:
            raise ValueError(f"sampler.skip={self.skip!r}; expected one of {', '.join(SKIP_TYPES)}")
        if self.method not in METHODS:
            raise ValueError(f"sampler.method={self.method!r}; expected one of {', '.join(METHODS)}")
        if self.method != "ddim" and (self.eta != 0 or self.clip_denoised):
            raise ValueError(f"sampler.method={self.method} solves the η = 0 ODE; sampler.eta={self.eta!r} and "
                             f"sampler.clip_denoised={self.clip_denoised!r} apply to method=ddim only")

    def validate(self, T: int) -> None:
        check_steps(T, self.steps)

    @property
    def variance(self) -> str:
        return "sigma_hat" if self.eta == "sigma_hat" else "eta"

    @property
    def eta_value(self) -> float:
        return 0.0 if self.eta == "sigma_hat" else float(self.eta)

    @property
    def label(self) -> str:
        if self.method != "ddim":
            return self.method
        return "σ̂" if self.eta == "sigma_hat" else f"η={float(self.eta):g}"

    @property
    def can_encode(self) -> bool:
        """Whether the method has an x_0 → x_T encoder for the reconstruction error (Table 2)."""
        return SAMPLERS[self.method].encode is not None

    def nfe(self, T: int) -> int:
        """Network evaluations per image: fewer than S where the quad trajectory repeats indices, about 2S for
        heun, S + 1 for plms."""
        return nfe(self.method, self.steps, self.skip, T)


def autocast_context(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


@torch.inference_mode()
def generate(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: NoiseSchedule,
    settings: SamplerSettings,
    indices: Sequence[int],
    seed: int,
    shape: Sequence[int],
    device: torch.device | str = "cpu",
    bf16: bool = False,
) -> torch.Tensor:
    """Images in [−1, 1] for the given global indices: image i depends only on (seed, i), so results do not
    depend on batch size, order or the number of processes."""
    device = torch.device(device)
    generators = per_sample_generators(seed, indices)
    x_T = per_sample_latents(generators, shape, device)
    with autocast_context(device, bf16):
        if settings.method == "ddim":
            images = sample(
                model, x_T, schedule, settings.steps, eta=settings.eta_value, skip=settings.skip,
                variance=settings.variance, generator=PerSampleNoise(generators, math.prod(shape)),
                clip_denoised=settings.clip_denoised,
            )
        else:  # deterministic ODE solvers: x_T is all the randomness
            images = SAMPLERS[settings.method].sample(model, x_T, schedule, settings.steps, skip=settings.skip)
    return images.float()


@torch.inference_mode()
def reconstruct(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: NoiseSchedule,
    images: torch.Tensor,
    steps: int,
    skip: str = "uniform",
    bf16: bool = False,
    method: str = "ddim",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_T, x̂_0): encode with S steps of the η = 0 ODE, then decode with the same S (Table 2), both with
    `method` (one that has an encoder: ddim, heun)."""
    solver = SAMPLERS[method]
    if solver.encode is None:
        raise ValueError(f"sampler.method={method} has no encoder; reconstruction needs one of "
                         f"{', '.join(m for m, s in SAMPLERS.items() if s.encode is not None)}")
    with autocast_context(images.device, bf16):
        latents = solver.encode(model, images, schedule, steps, skip=skip)
        decoded = solver.sample(model, latents, schedule, steps, skip=skip)
    return latents.float(), decoded.float()
