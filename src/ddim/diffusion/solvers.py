"""Higher-order solvers for the η = 0 (probability-flow) ODE, on the same ε-model, trajectories τ and (t, t_prev)
pairs as `sample`: DPM-Solver-2 and -3 (single-step) and Heun here, PNDM's PLMS and PNDM, DPM-Solver++(2M) and (2S)
in pndm_dpmpp.py; the SOLVERS registry of them all.

Each sampler takes (model, x_T, schedule, timesteps, *, callback=None), τ ready-made (make_timesteps builds the
named spacings), so a call that names callback works for `sample` too (where eta comes fifth), and calls `callback`
once per interval of τ. Their costs differ: `nfe(method, timesteps)` gives the true number of network evaluations,
which is what a fair comparison holds fixed.

Notation beyond the package's table: α = √ᾱ, σ_vp = √(1 − ᾱ), λ = log(α/σ_vp) (half the log-SNR, Lu et al.),
x̄ = x/√ᾱ and σ = √((1 − ᾱ)/ᾱ) = e^{−λ} (the scaled ODE dx̄ = ε̂ dσ that DDIM's η = 0 step is Euler on).

The last step to ᾱ = 1 (index −1, λ = ∞, σ = 0): no network evaluation exists there, and the second-order DPM
updates divide by r = h_prev/h → 0 as h → ∞. The DPM solvers and Heun take that step at first order, which is
exactly x_prev = x̂0 of the last ε̂ (DPM-Solver-1's step and DDIM's coincide there). PLMS keeps its multistep ε̂
on it: DDIM's transfer φ is finite at ᾱ = 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from .pndm_dpmpp import _lambda, dpmpp_2m_sample, dpmpp_2s_sample, plms_sample, pndm_nfe, pndm_sample
from .sampling import Callback, EpsModel, SampleStep, _ddim_step, _eps, encode, sample
from .schedule import NoiseSchedule, x0_from_eps
from .trajectory import check_timesteps, make_timesteps, timestep_pairs


def dpm_2s_sample(
    model: EpsModel,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    *,
    callback: Callback = None,
) -> torch.Tensor:
    """DPM-Solver-2, single-step, noise prediction (Lu et al. 2022a, Algorithm 4 with r1 = r): from t over the
    intermediate s to q, u = (α_s/α_t) x − σ_s (e^{rh} − 1) ε̂_t and x_q = (α_q/α_t) x − σ_q (e^h − 1) ε̂_t
    − (σ_q/2r)(e^h − 1)(ε̂(u, s) − ε̂_t), h = λ_q − λ_t, r = (λ_s − λ_t)/h.

    The network only takes the indices 0..T−1, so the intermediate s is the next index of τ rather than the
    λ-midpoint: τ is walked two intervals per step, as diffusers' DPMSolverSinglestepScheduler does. The last
    interval (to ᾱ = 1, where 1/r → ∞) is first order (x̂0), and so is the one before it when the other
    intervals do not pair up. NFE = S."""
    return _singlestep_dpm(model, x_T, schedule, timesteps, callback, max_order=2, midpoint=True)


def dpm_3_sample(
    model: EpsModel,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    *,
    callback: Callback = None,
) -> torch.Tensor:
    """DPM-Solver-3, single-step, noise prediction (Lu et al. 2022a, Algorithm 5's u1, u2, with r1, r2 set by τ):
    from t over the next two indices s1, s2 of τ to q, u1 is DDIM's step to s1, u2 = (α_2/α_t) x − σ_2 (e^{r2 h} − 1)
    ε̂_t − σ_2 ((e^{r2 h} − 1)/(r2 h) − 1)(r2/r1)(ε̂(u1) − ε̂_t), and x_q is the third-order expansion of eq. 3.6,
    x_q = (α_q/α_t) x − σ_q (e^h − 1) ε̂_t − σ_q ((e^h − 1)/h − 1) D1 − σ_q ((e^h − 1 − h)/h² − 1/2) D2, with D1, D2
    the first and second λ-differences of ε̂ through (0, ε̂_t), (r1, ε̂(u1)), (r2, ε̂(u2)). Algorithm 5's shortcut,
    D1 from ε̂(u2) alone, is third order only at r1 = 1/3, r2 = 2/3, which grid indices do not give.

    τ is walked three intervals per step, as diffusers' DPMSolverSinglestepScheduler(solver_order=3,
    solver_type="heun") does; what is left before the last interval is one second- or first-order step, and the
    last interval (to ᾱ = 1) is first order (x̂0). NFE = S."""
    return _singlestep_dpm(model, x_T, schedule, timesteps, callback, max_order=3, midpoint=False)


def _singlestep_dpm(model, x_T, schedule, timesteps, callback, max_order: int, midpoint: bool) -> torch.Tensor:
    """Single-step DPM-Solver of order ≤ max_order whose intermediate points are the next indices of τ."""
    pairs = timestep_pairs(check_timesteps(timesteps, schedule.T))
    x, k = x_T, 0
    while k < len(pairs):
        # at most max_order intervals, none of them the last one (to ᾱ = 1, taken alone at first order)
        order = max(1, min(max_order, len(pairs) - 1 - k))
        points = [pairs[k][0]] + [pairs[k + j][1] for j in range(order)]
        alphas = [schedule.alpha_bar(p) for p in points]
        lams = [_lambda(a) for a in alphas]
        state, eps = x, [_eps(model, x, points[0])]
        for j in range(1, order + 1):
            x0 = x0_from_eps(state, alphas[j - 1], eps[-1])
            if j == 1:
                state, _ = _ddim_step(x, eps[0], alphas[0], alphas[1], 0.0, None, False)  # DPM-Solver-1 is DDIM
            else:
                state = _dpm_update(x, eps, alphas[0], alphas[j], [lam - lams[0] for lam in lams[: j + 1]], midpoint)
            if callback is not None:
                callback(SampleStep(points[j - 1], points[j], state, x0))
            if j < order:
                eps.append(_eps(model, state, points[j]))
        x, k = state, k + order
    return x


def _dpm_update(x, eps, a_from, a_to, offsets, midpoint):
    """Second- or third-order single-step update from a_from to a_to (λ offsets from the start: 0, r1 h, [r2 h,] h)
    with ε̂ at the start and at the intermediate points."""
    h = offsets[-1]
    sigma_to, growth = math.sqrt(1 - a_to), math.expm1(h)
    out = math.sqrt(a_to / a_from) * x - (sigma_to * growth) * eps[0]
    if len(eps) == 2:
        r = offsets[1] / h
        weight = growth / 2 if midpoint else growth / h - 1
        return out - (sigma_to * weight / r) * (eps[1] - eps[0])
    r1, r2 = offsets[1] / h, offsets[2] / h
    d1_0, d1_1 = (eps[1] - eps[0]) / r1, (eps[2] - eps[0]) / r2
    d1 = (r2 * d1_0 - r1 * d1_1) / (r2 - r1)
    d2 = 2 * (d1_1 - d1_0) / (r2 - r1)
    return out - (sigma_to * (growth / h - 1)) * d1 - (sigma_to * ((growth - h) / h**2 - 0.5)) * d2


def heun_sample(
    model: EpsModel,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    *,
    callback: Callback = None,
) -> torch.Tensor:
    """Heun's method (Karras et al. 2022, Algorithm 1 with no churn) on the η = 0 ODE dx̄ = ε̂ dσ (DDIM eq. 14):
    x̄_p = x̄_t + (σ_p − σ_t)(ε̂(x_t, t) + ε̂(x'_p, p))/2, x'_p the Euler (DDIM) trial point. The last
    interval, to σ = 0 where there is no network index, is Euler (x̂0). NFE = 2S − 1."""
    x = x_T
    for t, t_prev in timestep_pairs(check_timesteps(timesteps, schedule.T)):
        x, x0 = _heun_step(model, x, schedule.alpha_bar(t), schedule.alpha_bar(t_prev), t, t_prev)
        if callback is not None:
            callback(SampleStep(t, t_prev, x, x0))
    return x


def heun_encode(
    model: EpsModel,
    x_0: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    callback: Callback = None,
) -> torch.Tensor:
    """x_T from x_0 by Heun's method on the same ODE run forwards along τ (DDIM's `encode` is its Euler
    version). The first interval starts at ᾱ = 1, where ε̂ is taken at index 0 as `encode` does. NFE = 2S."""
    x = x_0
    for t, t_prev in reversed(timestep_pairs(check_timesteps(timesteps, schedule.T))):
        x, x0 = _heun_step(model, x, schedule.alpha_bar(t_prev), schedule.alpha_bar(t), max(t_prev, 0), t)
        if callback is not None:
            callback(SampleStep(t_prev, t, x, x0))
    return x


def _heun_step(model, x, a_from, a_to, index_from, index_to):
    """One Heun step of dx̄ = ε̂ dσ between any two ᾱ (either direction); Euler when index_to < 0."""
    eps = _eps(model, x, index_from)
    trial, x0 = _ddim_step(x, eps, a_from, a_to, 0.0, None, False)
    if index_to < 0:
        return trial, x0
    eps_mean = (eps + _eps(model, trial, index_to)) / 2
    # the η = 0 step is an exact Euler step in (σ, x̄) whatever ε̂ it is given: feed it the averaged slope
    x_next, _ = _ddim_step(x, eps_mean, a_from, a_to, 0.0, None, False)
    return x_next, x0


class Solver(NamedTuple):
    """A registry entry: the sampling function, its NFE for a trajectory of n indices, and its encoder
    (x_0 → x_T, the same ODE run forwards) where there is one."""

    sample: Callable[..., torch.Tensor]
    nfe: Callable[[int], int]
    encode: Callable[..., torch.Tensor] | None = None
    clips_x0: bool = False  # sample takes x0_clip= (the data-prediction solvers, where diffusers thresholds)


SOLVERS: dict[str, Solver] = {
    "ddim": Solver(sample, lambda n: n, encode),
    "plms": Solver(plms_sample, lambda n: n + 1 if n > 1 else 1),
    "dpmpp_2m": Solver(dpmpp_2m_sample, lambda n: n, clips_x0=True),
    "dpm_2s": Solver(dpm_2s_sample, lambda n: n),
    "dpm_3": Solver(dpm_3_sample, lambda n: n),
    "heun": Solver(heun_sample, lambda n: 2 * n - 1, heun_encode),
    "pndm": Solver(pndm_sample, pndm_nfe),
    "dpmpp_2s": Solver(dpmpp_2s_sample, lambda n: n, clips_x0=True),
}
METHODS = tuple(SOLVERS)


def check_method(method: str) -> Solver:
    if method not in SOLVERS:
        raise ValueError(f"unknown sampler method {method!r}; expected one of {', '.join(METHODS)}")
    return SOLVERS[method]


def nfe(method: str, steps: int | Sequence[int], skip: str = "uniform", T: int = 1000) -> int:
    """Network evaluations per image for `method` on the trajectory that (steps, skip) give for T (fewer indices
    than S where the quad trajectory repeats some)."""
    sampler = check_method(method)
    if isinstance(steps, int):
        return sampler.nfe(len(make_timesteps(T, steps, skip)))
    return sampler.nfe(len(steps))
