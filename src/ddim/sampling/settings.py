"""What one cell samples with: S, η (or σ̂), the trajectory and the method, checked when made. The sampler config
group's schema is this class itself (registered in ddim.evaluation.pipeline.options), so an option is declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ddim.diffusion import METHODS, SOLVERS, SKIP_TYPES, check_steps, nfe
from ddim.errors import InputError


@dataclass
class SamplerSettings:
    """How one cell samples, and the `sampler` config group's schema (one declaration per option: a field here, with
    its comment, is the option). `eta` is a number in [0, 1], or "sigma_hat" for Table 1's σ̂ row; `method` is "ddim"
    (the paper's sampler, every η) or one of the η = 0 ODE solvers of ddim.diffusion.solvers."""

    steps: int = 50  # S, the number of steps of the trajectory τ
    eta: Any = 0.0  # η of eq. 16 in [0, 1] (0: DDIM, 1: DDPM's σ), or sigma_hat (Table 1's σ̂ row)
    skip: str = "uniform"  # the trajectory: uniform | quad | trailing
    clip_denoised: Optional[bool] = None  # clip x̂0 to [-1, 1]; null: the sampler's own default (off for η, on for σ̂)
    method: str = "ddim"  # ddim | plms | dpmpp_2m | dpm_2s | dpm_3 | heun; all but ddim solve the η = 0 ODE

    def __post_init__(self) -> None:
        if isinstance(self.eta, str):
            if self.eta != "sigma_hat":
                raise InputError(f"sampler.eta={self.eta!r}; expected a number in [0, 1] or sigma_hat")
        elif isinstance(self.eta, bool) or not isinstance(self.eta, (int, float)) or not 0 <= self.eta <= 1:
            # η > 1 asks for σ² > 1 − ᾱ_prev on some steps, where eq. 12's direction term has no real root
            raise InputError(f"sampler.eta={self.eta!r}; expected a number in [0, 1] or sigma_hat")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise InputError(f"sampler.steps={self.steps!r}; expected a positive integer")
        if self.skip not in SKIP_TYPES:
            raise InputError(f"sampler.skip={self.skip!r}; expected one of {', '.join(SKIP_TYPES)}")
        if self.method not in METHODS:
            raise InputError(f"sampler.method={self.method!r}; expected one of {', '.join(METHODS)}")
        if self.method != "ddim" and (self.eta != 0 or self.clip_denoised):
            raise InputError(f"sampler.method={self.method} solves the η = 0 ODE; sampler.eta={self.eta!r} and "
                             f"sampler.clip_denoised={self.clip_denoised!r} apply to method=ddim only")

    def validate(self, T: int) -> None:
        try:
            check_steps(T, self.steps)
        except ValueError as error:  # the core's own message, as bad input
            raise InputError(f"sampler.{error}") from None

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
        return SOLVERS[self.method].encode is not None

    def nfe(self, T: int) -> int:
        """Network evaluations per image: fewer than S where the quad trajectory repeats indices, about 2S for
        heun, S + 1 for plms."""
        return nfe(self.method, self.steps, self.skip, T)

__all__ = ["SamplerSettings"]
