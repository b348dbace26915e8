"""Speed options for the sampling network (bf16 weights, channels_last, torch.compile, CUDA graphs): none changes
the math, only rounding."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import torch

from ddim.models.norm import GroupNorm, group_norm_runs_in_bf16

log = logging.getLogger(__name__)


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


__all__ = ["ChannelsLast", "CudaGraphed", "EpsCallable", "autocast_context", "cast_weights_to_bf16", "fast_model"]
