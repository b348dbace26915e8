"""Turning a model, sampler settings and image indices into images: the loop training's sample grid and every
evaluation share. Image i depends only on (seed, i), whatever the batch, order or process."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ddim.diffusion import SOLVERS, NoiseSchedule, sample
from ddim.errors import InputError
from ddim.utils.noise import CounterNoise

from .settings import SamplerSettings
from .speed import autocast_context


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
    depend on batch size, order or the number of processes. x_T and the step noise are made on `device`."""
    device = torch.device(device)
    timesteps = settings.trajectory(schedule)
    noise = CounterNoise(seed, indices, shape, device, num_step_streams=settings.nfe(schedule))
    x_T = noise.latents()
    with autocast_context(device, bf16):
        if settings.method == "ddim":
            images = sample(
                model, x_T, schedule, timesteps, eta=settings.eta_value,
                variance=settings.variance, generator=noise, clip_denoised=settings.x0_clip,
            )
        else:  # deterministic ODE solvers: x_T is all the randomness
            solver = SOLVERS[settings.method]
            options = {"x0_clip": settings.x0_clip} if solver.clips_x0 else {}
            images = solver.sample(model, x_T, schedule, timesteps, **options)
    return images.float()


@torch.inference_mode()
def reconstruct(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: NoiseSchedule,
    images: torch.Tensor,
    timesteps: Sequence[int],
    bf16: bool = False,
    method: str = "ddim",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_T, x̂_0): encode along τ with the η = 0 ODE, then decode along the same τ (Table 2), both with
    `method` (one that has an encoder: ddim, heun)."""
    solver = SOLVERS[method]
    if solver.encode is None:
        raise InputError(f"sampler.method={method} has no encoder; reconstruction needs one of "
                         f"{', '.join(m for m, s in SOLVERS.items() if s.encode is not None)}")
    with autocast_context(images.device, bf16):
        latents = solver.encode(model, images, schedule, timesteps)
        decoded = solver.sample(model, latents, schedule, timesteps)
    return latents.float(), decoded.float()


__all__ = ["generate", "reconstruct"]
