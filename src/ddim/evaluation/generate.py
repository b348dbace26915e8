"""Turning a model, a sampler setting and image indices into images: the loop every caller shares."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ddim.diffusion import METHODS, SAMPLERS, NoiseSchedule, SKIP_TYPES, check_steps, nfe, sample
from ddim.models.norm import GroupNorm, group_norm_runs_in_bf16
from ddim.utils.noise import CounterNoise

log = logging.getLogger(__name__)


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


EpsCallable = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ChannelsLast(torch.nn.Module):
    """The network with weights and input in channels_last (NHWC) layout: oneDNN's bf16 convolutions and cuDNN's
    tensor-core kernels want it, and it saves the layout conversions around every conv."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)
        self.config = getattr(model, "config", None)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last), t)


class CudaGraphed:
    """The network's forward captured once per input shape and dtype (and autocast state) as a CUDA graph, then
    replayed: a fixed-shape step loop launches one graph per step instead of hundreds of kernels."""

    def __init__(self, model: EpsCallable) -> None:
        self.model = model
        self.graphs: dict[tuple, tuple] = {}
        self.pool = torch.cuda.graph_pool_handle()

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, tuple(t.shape), t.dtype, x.device, torch.is_autocast_enabled(x.device.type))
        if key not in self.graphs:
            static_x, static_t = x.clone(), t.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up outside the graph: cuDNN picks its algorithms here
                for _ in range(2):
                    self.model(static_x, static_t)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                static_out = self.model(static_x, static_t)
            self.graphs[key] = (graph, static_x, static_t, static_out)
        graph, static_x, static_t, static_out = self.graphs[key]
        static_x.copy_(x)
        static_t.copy_(t)
        graph.replay()
        return static_out.clone()  # the next replay overwrites static_out


def cast_weights_to_bf16(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Weights stored in bf16, for a network run under bf16 autocast: autocast casts conv and linear weights to bf16
    anyway, but without autograd it caches nothing and re-casts every weight on every call (a fifth of a CPU bf16
    forward). GroupNorm's γ and β too where the U-Net's GroupNorm runs in bf16 and would cast them every call
    (CUDA: two launches per norm); on the CPU autocast's kernel takes them in fp32. Same numbers as plain autocast,
    bit for bit."""
    norms_too = group_norm_runs_in_bf16(device.type)
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) or (norms_too and isinstance(module, GroupNorm)):
            module.to(torch.bfloat16)
    return model


def fast_model(model: torch.nn.Module, device: torch.device | str, compile: bool = False, channels_last: bool = False,
               cuda_graphs: bool = False, bf16: bool = False) -> EpsCallable:
    """The network with the speed options of `eval` applied (in place: `model` itself is converted); none changes the
    math, only rounding (tests bound it). `bf16` stores the weights in bf16 for use under bf16
    autocast (`generate(..., bf16=True)`), which then stops re-casting them every step. CUDA graphs exist only on
    CUDA: elsewhere `cuda_graphs` is ignored with one log line, so one config serves a CPU smoke run and a GPU
    sweep. With `compile` too, CUDA graphs come from torch.compile's "reduce-overhead"."""
    device = torch.device(device)
    if bf16:
        cast_weights_to_bf16(model, device)
    net: EpsCallable = ChannelsLast(model) if channels_last else model
    graphs = cuda_graphs and device.type == "cuda"
    if cuda_graphs and not graphs:
        log.info("eval.cuda_graphs applies only on CUDA devices; sampling on %s without it", device)
    if compile:
        net = torch.compile(net, mode="reduce-overhead" if graphs else None)
    elif graphs:
        net = CudaGraphed(net)
    return net


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
    noise = CounterNoise(seed, indices, shape, device, steps=settings.nfe(schedule.T))
    x_T = noise.latents()
    with autocast_context(device, bf16):
        if settings.method == "ddim":
            images = sample(
                model, x_T, schedule, settings.steps, eta=settings.eta_value, skip=settings.skip,
                variance=settings.variance, generator=noise, clip_denoised=settings.clip_denoised,
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
