"""Sub-sequences τ of the network indices 0..T−1 that the generalized process walks (Section 4.2).

`make_timesteps` is the one place a named spacing becomes indices; every sampler and encoder takes the
ready-made list, checked by `check_timesteps`."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence

import torch

SKIP_TYPES = ("uniform", "quad", "trailing", "linspace", "logsnr", "edm")
# spacings defined through ᾱ, which need the schedule's alphas_cumprod
SCHEDULE_SKIPS = ("logsnr", "edm")
EDM_RHO = 7.0


def make_timesteps(T: int, steps: int, skip: str = "uniform", alphas_cumprod: torch.Tensor | None = None) -> list[int]:
    """Increasing network indices τ_1 < … < τ_S.

    uniform:  [i·(T // S) for i < S]; equals the paper's range(0, T, T // S) when S divides T, and still gives
              exactly S indices when it does not (diffusers' "leading" spacing).
    quad:     int(linspace(0, √(0.8 T), S)²), the paper's CIFAR-10 trajectory. Low values repeat; a repeat is an
              identity step, so repeats are dropped and len(result) is the true number of network evaluations.
    trailing: round(T − i·T/S) − 1 for i < S, reversed: ends at T − 1 (Lin et al., 2024), not in the paper.
    linspace: round(linspace(0, T − 1, S)), diffusers' timestep_spacing="linspace": both ends included.
    logsnr:   S points uniform in λ = log(√ᾱ/√(1 − ᾱ)) from λ(T − 1) to λ(0) (DPM-Solver's "logSNR" steps), each
              moved to the index nearest in λ.
    edm:      Karras et al.'s σ_i = (σ_max^{1/ρ} + i/(S − 1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, ρ = 7, σ = √((1 − ᾱ)/ᾱ)
              between σ(T − 1) and σ(0), each moved to the index nearest in log σ.
    logsnr and edm need `alphas_cumprod`; where two points land on one index the repeat is dropped, as for quad.
    """
    check_steps(T, steps)
    if skip == "uniform":
        stride = T // steps
        return [i * stride for i in range(steps)]
    if skip == "quad":
        top = math.sqrt(0.8 * T)
        # numpy's linspace(0, top, S) written out (i · step, last value exactly top) so int() cuts identically
        step = top / (steps - 1) if steps > 1 else 0.0
        points = [i * step for i in range(steps - 1)] + [top if steps > 1 else 0.0]
        values = [int(p**2) for p in points]
        return sorted(set(values))
    if skip == "trailing":
        return sorted({round(T - i * T / steps) - 1 for i in range(steps)})
    if skip == "linspace":
        return sorted({round(v) for v in _linspace(0.0, T - 1.0, steps)})
    if skip in SCHEDULE_SKIPS:
        if alphas_cumprod is None or alphas_cumprod.numel() != T:
            raise ValueError(f"skip={skip!r} is defined through ᾱ; pass the schedule's alphas_cumprod (T={T} values)")
        log_sigma = 0.5 * (torch.log1p(-alphas_cumprod.double()) - torch.log(alphas_cumprod.double()))  # = −λ
        if skip == "logsnr":
            targets = _linspace(float(log_sigma[-1]), float(log_sigma[0]), steps)
        else:
            hi, lo = math.exp(float(log_sigma[-1])) ** (1 / EDM_RHO), math.exp(float(log_sigma[0])) ** (1 / EDM_RHO)
            targets = [math.log((hi + v * (lo - hi)) ** EDM_RHO) for v in _linspace(0.0, 1.0, steps)]
        return sorted({_nearest(log_sigma, v) for v in targets})
    raise ValueError(f"unknown skip type {skip!r}; expected one of {', '.join(SKIP_TYPES)}")


def _linspace(start: float, stop: float, num: int) -> list[float]:
    """numpy's linspace written out: i · step from start, the last value exactly stop."""
    if num == 1:
        return [start]
    step = (stop - start) / (num - 1)
    return [start + i * step for i in range(num - 1)] + [stop]


def _nearest(grid: torch.Tensor, value: float) -> int:
    return int(torch.argmin((grid - value).abs()))


def check_steps(T: int, steps: int) -> None:
    if isinstance(steps, bool) or int(steps) != steps or not 1 <= steps <= T:
        raise ValueError(f"steps={steps!r}; expected an integer number of sampling steps between 1 and T={T}")


def check_timesteps(timesteps: Iterable[int], T: int | None = None) -> list[int]:
    """τ as a list of ints, or ValueError unless it is a non-empty, strictly increasing list of indices in 0..T−1
    (T = None: any index ≥ 0, for a τ read before the model's T is known)."""
    try:
        values = [_as_index(v) for v in timesteps]
    except (TypeError, ValueError):
        values = []
    if not values or values != sorted(set(values)) or values[0] < 0 or (T is not None and values[-1] >= T):
        where = "≥ 0" if T is None else f"in 0..{T - 1}"
        raise ValueError(f"timesteps={timesteps!r}; expected a strictly increasing list of network indices {where}")
    return values


def _as_index(value: object) -> int:
    if isinstance(value, bool) or isinstance(value, str):
        raise TypeError(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return operator.index(value)


def timestep_pairs(timesteps: Sequence[int]) -> list[tuple[int, int]]:
    """(t, previous index on the trajectory) from last to first; the first index's previous is −1 (ᾱ = 1)."""
    previous = [-1, *timesteps[:-1]]
    return list(zip(reversed(timesteps), reversed(previous)))
