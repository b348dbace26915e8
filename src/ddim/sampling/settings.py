"""What one cell samples with: S, η (or σ̂), the trajectory and the method, checked when made. The sampler config
group's schema is this class itself (registered in ddim.evaluation.pipeline.options), so an option is declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ddim.diffusion import METHODS, SKIP_TYPES, SOLVERS, NoiseSchedule, check_timesteps, make_timesteps
from ddim.diffusion.prediction import X0Clip
from ddim.errors import InputError

from .trajectory_file import SearchedTrajectory, read_trajectory_file, resolve_trajectory_file

# the methods whose x̂0 can be clipped or thresholded: ddim, and the solvers that step on x̂0 (as diffusers' do)
X0_METHODS = tuple(m for m, solver in SOLVERS.items() if m == "ddim" or solver.clips_x0)
# skip values beyond the core's named spacings: τ from a trajectory_search file, or given as sampler.timesteps
SEARCHED, EXPLICIT = "searched", "timesteps"
SKIPS = (*SKIP_TYPES, SEARCHED)


@dataclass
class SamplerSettings:
    """How one cell samples, and the `sampler` config group's schema (one declaration per option: a field here, with
    its comment, is the option). `eta` is a number in [0, 1], or "sigma_hat" for Table 1's σ̂ row; `method` is "ddim"
    (the paper's sampler, every η) or one of the η = 0 ODE solvers of ddim.diffusion.solvers."""

    steps: int = 50  # S, the number of steps of the trajectory τ
    eta: Any = 0.0  # η of eq. 16 in [0, 1] (0: DDIM, 1: DDPM's σ), or sigma_hat (Table 1's σ̂ row)
    skip: str = "uniform"  # the trajectory: uniform | quad | trailing | linspace | logsnr | edm | searched
    clip_denoised: Optional[bool] = None  # clip x̂0 to [-1, 1]; null: the sampler's own default (off for η, on for σ̂)
    # after clipping or thresholding x̂0: true re-derives ε̂ from it (ours; diffusers' use_clipped_model_output=True),
    # false keeps the network's ε̂ (diffusers' default); σ̂ and the DPM-Solver++ methods use x̂0 alone: no change
    recompute_eps: bool = True
    # dynamic thresholding of x̂0 (Saharia et al. 2022; diffusers' thresholding=True): the quantile of |x̂0| per image
    # (diffusers' dynamic_thresholding_ratio, e.g. 0.995) that x̂0 is clipped to and divided by; null: off
    threshold: Optional[float] = None
    threshold_max: float = 1.0  # the most that quantile may be (diffusers' sample_max_value); it is at least 1
    method: str = "ddim"  # ddim | plms | pndm | dpmpp_2m | dpmpp_2s | dpm_2s | dpm_3 | heun; all but ddim: η = 0 ODE
    # τ as increasing network indices in 0..T−1, e.g. [0,100,300]; sets steps to its length and skip to "timesteps"
    timesteps: Optional[list[int]] = None
    # with skip=searched: the file `python -m ddim.trajectory_search` wrote for this method and steps, or a folder of
    # such files (<method>_S<steps>.json); other skips ignore it, so one sweep can mix searched and fixed spacings
    trajectory_file: Optional[str] = None

    def __post_init__(self) -> None:
        if isinstance(self.eta, str):
            if self.eta != "sigma_hat":
                raise InputError(f"sampler.eta={self.eta!r}; expected a number in [0, 1] or sigma_hat")
        elif isinstance(self.eta, bool) or not isinstance(self.eta, (int, float)) or not 0 <= self.eta <= 1:
            # η > 1 asks for σ² > 1 − ᾱ_prev on some steps, where eq. 12's direction term has no real root
            raise InputError(f"sampler.eta={self.eta!r}; expected a number in [0, 1] or sigma_hat")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise InputError(f"sampler.steps={self.steps!r}; expected a positive integer")
        self._check_trajectory()
        if self.method not in METHODS:
            raise InputError(f"sampler.method={self.method!r}; expected one of {', '.join(METHODS)}")
        if self.method != "ddim" and self.eta != 0:
            raise InputError(f"sampler.method={self.method} solves the η = 0 ODE; sampler.eta={self.eta!r} applies "
                             f"to method=ddim only")
        if self.clip_denoised and not self.clips_x0:
            raise InputError(f"sampler.clip_denoised={self.clip_denoised!r} applies to method={'|'.join(X0_METHODS)}, "
                             f"not method={self.method}")
        self._check_threshold()

    def _check_threshold(self) -> None:
        if self.threshold is None:
            return
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or not 0 < self.threshold <= 1:
            raise InputError(f"sampler.threshold={self.threshold!r}; expected a quantile in (0, 1], e.g. 0.995 (or null)")
        if not isinstance(self.threshold_max, (int, float)) or self.threshold_max <= 0:
            raise InputError(f"sampler.threshold_max={self.threshold_max!r}; expected a positive number")
        if self.clip_denoised is not None:
            raise InputError(f"sampler.threshold={self.threshold} and sampler.clip_denoised={self.clip_denoised} "
                             f"both say what happens to x̂0; set one of them")
        if not self.clips_x0:
            raise InputError(f"sampler.threshold applies to method={'|'.join(X0_METHODS)}, not method={self.method}")

    @property
    def clips_x0(self) -> bool:
        """Whether the method clips or thresholds x̂0 on request: ddim, and the data-prediction solvers."""
        return self.method in X0_METHODS

    @property
    def x0_clip(self) -> X0Clip:
        """What a step does to x̂0: the threshold, else clip_denoised (null: clip for σ̂ only, as the official code)."""
        if self.threshold is not None:
            return X0Clip("dynamic", float(self.threshold), float(self.threshold_max), self.recompute_eps)
        clip = self.variance == "sigma_hat" if self.clip_denoised is None else self.clip_denoised
        return X0Clip("clip" if clip else "none", recompute_eps=self.recompute_eps)

    def _check_trajectory(self) -> None:
        """skip, timesteps and trajectory_file agree; a searched file is read now, so a bad one fails first."""
        if self.timesteps is not None:
            try:
                self.timesteps = check_timesteps(self.timesteps)  # the bound T is checked in validate
            except ValueError as error:
                raise InputError(f"sampler.{error}") from None
            if self.skip == SEARCHED:
                raise InputError("sampler.timesteps and sampler.skip=searched both give τ; set one of them")
            self.steps, self.skip = len(self.timesteps), EXPLICIT
        elif self.skip not in SKIPS:
            raise InputError(f"sampler.skip={self.skip!r}; expected one of {', '.join(SKIPS)}")
        self._searched: SearchedTrajectory | None = None
        if self.skip == SEARCHED:
            if not self.trajectory_file:
                raise InputError("sampler.skip=searched needs sampler.trajectory_file=PATH (a file written by "
                                 "python -m ddim.trajectory_search)")
            path = resolve_trajectory_file(self.trajectory_file, self.method, self.steps)
            self._searched = read_trajectory_file(path)
            if (self._searched.method, self._searched.steps) != (self.method, self.steps):
                raise InputError(f"sampler.trajectory_file={path} was searched for method={self._searched.method} "
                                 f"steps={self._searched.steps}, not method={self.method} steps={self.steps}")

    def validate(self, schedule: NoiseSchedule) -> None:
        """That τ can be built on this model's schedule (S ≤ T, indices below T)."""
        try:
            self.trajectory(schedule)
        except ValueError as error:  # the core's own message, as bad input
            raise InputError(f"sampler.{error}") from None

    @property
    def searched(self) -> SearchedTrajectory | None:
        """The searched trajectory file's record with skip=searched, else None."""
        return self._searched

    @property
    def given_timesteps(self) -> list[int] | None:
        """τ where it is data (sampler.timesteps, or a searched file's) rather than a named spacing."""
        if self.skip == EXPLICIT:
            return list(self.timesteps)
        return list(self._searched.timesteps) if self._searched is not None else None

    def trajectory(self, schedule: NoiseSchedule) -> list[int]:
        """τ, the increasing network indices this cell walks: the one place a setting becomes indices."""
        if self.given_timesteps is not None:
            return check_timesteps(self.given_timesteps, schedule.T)
        return make_timesteps(schedule.T, self.steps, self.skip, schedule.alphas_cumprod)

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

    def nfe(self, schedule: NoiseSchedule) -> int:
        """Network evaluations per image: fewer than S where the quad trajectory repeats indices, about 2S for
        heun, S + 1 for plms."""
        return SOLVERS[self.method].nfe(len(self.trajectory(schedule)))

__all__ = ["SamplerSettings"]
