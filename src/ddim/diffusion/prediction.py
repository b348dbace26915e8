"""What the network predicts (ε, x0 or v), turned into ε̂ and x̂0 at one place; and what is done to x̂0 before a step
uses it (clipping to [−1, 1], or Saharia et al.'s dynamic thresholding).

With x_t = √ᾱ x0 + √(1 − ᾱ) ε and v = √ᾱ ε − √(1 − ᾱ) x0 (Salimans & Ho 2022):
    eps: ε̂ = out,                     x̂0 = (x_t − √(1 − ᾱ) ε̂)/√ᾱ
    x0:  x̂0 = out,                    ε̂ = (x_t − √ᾱ x̂0)/√(1 − ᾱ)
    v:   x̂0 = √ᾱ x_t − √(1 − ᾱ) v̂,   ε̂ = √ᾱ v̂ + √(1 − ᾱ) x_t
Every sampler and encoder takes an ε-model: `as_eps_model` makes one of any network, so none of them needs to know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .schedule import NoiseSchedule, eps_from_x0, x0_from_eps

PREDICTIONS = ("eps", "x0", "v")
CLIP_MODES = ("none", "clip", "dynamic")


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction={prediction!r}; expected one of {', '.join(PREDICTIONS)}")
    return prediction


def eps_x0_from_output(output: torch.Tensor, x_t: torch.Tensor, a_t: torch.Tensor | float,
                       prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(ε̂, x̂0) from the network's output for `prediction` (the module docstring's table); a_t broadcasts."""
    if check_prediction(prediction) == "eps":
        return output, x0_from_eps(x_t, a_t, output)
    if prediction == "x0":
        return eps_from_x0(x_t, a_t, output), output
    a_t = torch.as_tensor(a_t, dtype=x_t.dtype, device=x_t.device)
    signal, noise = a_t.sqrt(), (1 - a_t).sqrt()
    return signal * output + noise * x_t, signal * x_t - noise * output


def prediction_target(x0: torch.Tensor, noise: torch.Tensor, a_t: torch.Tensor | float, prediction: str) -> torch.Tensor:
    """What a `prediction` network should output at x_t = q_sample(x0, ᾱ_t, noise): ε, x0 or v."""
    a_t = torch.as_tensor(a_t, dtype=x0.dtype, device=x0.device)
    if check_prediction(prediction) == "eps":
        return noise
    return x0 if prediction == "x0" else a_t.sqrt() * noise - (1 - a_t).sqrt() * x0


class EpsFromPrediction(torch.nn.Module):
    """An x0- or v-network as the ε-model every sampler takes: ε̂ from its output with ᾱ at the network index.
    `config` is the network's own (image shape, prediction), so callers that read it still can."""

    def __init__(self, model: torch.nn.Module, schedule: NoiseSchedule, prediction: str) -> None:
        super().__init__()
        self.model, self.prediction = model, check_prediction(prediction)
        self.config = getattr(model, "config", None)
        self.register_buffer("alphas_cumprod", schedule.alphas_cumprod.clone(), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.alphas_cumprod.device != x.device:  # wrapped around a model already moved: follow x once, not per call
            self.alphas_cumprod = self.alphas_cumprod.to(x.device)
        a_t = self.alphas_cumprod[t].to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        eps, _ = eps_x0_from_output(self.model(x, t).to(x.dtype), x, a_t, self.prediction)
        return eps


def as_eps_model(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule,
                 prediction: str = "eps") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`model` itself for an ε-network, else EpsFromPrediction around it."""
    return model if check_prediction(prediction) == "eps" else EpsFromPrediction(model, schedule, prediction)


def dynamic_threshold(x0: torch.Tensor, ratio: float = 0.995, max_value: float = 1.0) -> torch.Tensor:
    """Saharia et al. 2022 (Imagen), per image: s = the `ratio` quantile of |x̂0| held in [1, max_value] (as
    torch.clamp does, a max_value below 1 wins); x̂0 is clipped to [−s, s] and divided by s (diffusers'
    `thresholding=True`, `dynamic_thresholding_ratio`, `sample_max_value`)."""
    flat = x0.reshape(x0.shape[0], -1)
    work = flat if flat.dtype in (torch.float32, torch.float64) else flat.float()  # quantile needs float32/64
    s = torch.quantile(work.abs(), ratio, dim=1).clamp(min=1, max=max_value).to(x0.dtype)
    s = s.reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


@dataclass(frozen=True)
class X0Clip:
    """What a step does to x̂0 before using it: `mode` none, clip (to [−1, 1]) or dynamic (dynamic_threshold with
    `ratio`, `max_value`). With `recompute_eps` ε̂ is re-derived from the changed x̂0, so both terms of eq. 12
    describe one point (ours; diffusers' `use_clipped_model_output=True`); without it the step keeps the model's ε̂
    (diffusers' default)."""

    mode: str = "none"
    ratio: float = 0.995
    max_value: float = 1.0
    recompute_eps: bool = True

    def __post_init__(self) -> None:
        if self.mode not in CLIP_MODES:
            raise ValueError(f"clip mode={self.mode!r}; expected one of {', '.join(CLIP_MODES)}")
        if self.mode == "dynamic" and not (0 < self.ratio <= 1 and self.max_value > 0):
            raise ValueError(f"dynamic thresholding ratio={self.ratio!r}, max_value={self.max_value!r}; expected a "
                             f"ratio in (0, 1] and a positive max_value")

    @classmethod
    def of(cls, clip: bool | X0Clip | None) -> X0Clip:
        """A bool as the clip it has always meant (True: clip and recompute ε̂); one shared instance each, as the
        steps of a sampling loop ask for it every step."""
        return clip if isinstance(clip, X0Clip) else (_CLIP if clip else _NO_CLIP)

    def apply(self, x_t: torch.Tensor, eps: torch.Tensor, x0: torch.Tensor,
              a_t: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, x̂0) after clipping or thresholding x̂0 (unchanged for mode none)."""
        if self.mode == "none":
            return eps, x0
        x0 = x0.clamp(-1, 1) if self.mode == "clip" else dynamic_threshold(x0, self.ratio, self.max_value)
        if self.recompute_eps:
            eps = eps_from_x0(x_t, a_t, x0)
        return eps, x0


_NO_CLIP, _CLIP = X0Clip(), X0Clip("clip")
