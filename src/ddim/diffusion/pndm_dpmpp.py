"""The PNDM family and DPM-Solver++ among the η = 0 solvers, in solvers.py's form (model, x_T, schedule, timesteps,
*, callback=None): PNDM's PLMS, PNDM with its pseudo Runge–Kutta warm-up, and the data-prediction DPM-Solver++ in
its multistep (2M) and single-step (2S) forms. Notation: solvers.py's."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .prediction import X0Clip
from .sampling import Callback, EpsModel, SampleStep, _ddim_step, _eps
from .schedule import NoiseSchedule, eps_from_x0, x0_from_eps
from .trajectory import check_timesteps, timestep_pairs

# Adams–Bashforth weights on ε̂ for 1..4 stored evaluations, newest first (PNDM eq. 12 uses the 4-step row)
_ADAMS_BASHFORTH = {
    1: (1.0,), 2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}
PRK_STEPS = 3  # PNDM's warm-up: pseudo Runge–Kutta on the first three intervals, four evaluations each


def _adams_bashforth(history: list[torch.Tensor]) -> torch.Tensor:
    """PLMS's ε̂: the Adams–Bashforth row for the stored ε̂ (oldest first, at most four)."""
    return sum(w * e for w, e in zip(_ADAMS_BASHFORTH[len(history)], reversed(history)))


def _lambda(a: float) -> float:
    """λ = log(√ᾱ/√(1 − ᾱ)); +∞ at ᾱ = 1."""
    return math.inf if a >= 1.0 else 0.5 * (math.log(a) - math.log1p(-a))


def _dpmpp_step(x: torch.Tensor, data: torch.Tensor, a_from: float, a_to: float, h: float) -> torch.Tensor:
    """DPM-Solver++'s update x_to = (σ_to/σ_from) x − α_to (e^{−h} − 1) D with the data term D, h = λ_to − λ_from."""
    return math.sqrt((1 - a_to) / (1 - a_from)) * x + (-math.sqrt(a_to) * math.expm1(-h)) * data


def _phi(x, eps, a_from, a_to):
    """DDIM's transfer φ (PNDM eq. 9): the η = 0 step from ᾱ_from to ᾱ_to with the given ε̂."""
    return _ddim_step(x, eps, a_from, a_to, 0.0, None, False)[0]


def plms_sample(
    model: EpsModel,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    *,
    callback: Callback = None,
) -> torch.Tensor:
    """PNDM's pseudo linear multistep (Liu et al. 2022, eq. 11–12): DDIM's transfer φ (eq. 9) fed the
    4-step Adams–Bashforth combination of the stored ε̂ (55, −59, 37, −9)/24.

    Warm-up: diffusers' PLMS-only start (`PNDMScheduler(skip_prk_steps=True)`), not PNDM's pseudo Runge–Kutta
    (which costs 4 evaluations on each of 3 steps). The first interval is an improved-Euler step — φ with ε̂ at
    x_T, then φ again from x_T with the mean of that ε̂ and one at the trial point, whose ε̂ is then discarded —
    and the next intervals use the 2- and 3-step Adams–Bashforth rows until four ε̂ are stored. NFE = S + 1
    (S = 1: a plain DDIM step, NFE 1). The weights assume equal steps in t: on a non-uniform τ they are applied
    as they stand, as PNDM does."""
    pairs = timestep_pairs(check_timesteps(timesteps, schedule.T))
    x, history = x_T, []
    for k, (t, t_prev) in enumerate(pairs):
        a_t, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(t_prev)
        eps = _eps(model, x, t)
        if k == 0 and len(pairs) > 1:
            eps_used = (eps + _eps(model, _phi(x, eps, a_t, a_prev), t_prev)) / 2
            history = [eps]
        else:
            history = [*history[-3:], eps]
            eps_used = _adams_bashforth(history)
        x, x0 = _ddim_step(x, eps_used, a_t, a_prev, 0.0, None, False)
        if callback is not None:
            callback(SampleStep(t, t_prev, x, x0))
    return x


def dpmpp_2m_sample(
    model: EpsModel,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    *,
    callback: Callback = None,
    x0_clip: X0Clip | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2): x_p = (σ_p/σ_t) x_t − α_p (e^{−h} − 1) D, with
    D = (1 + 1/2r) x̂0_t − (1/2r) x̂0_prev, h = λ_p − λ_t, r = h_prev/h. The first step is first order
    (D = x̂0_t, which is DDIM's step), and so is the last, to ᾱ = 1, where it returns x̂0_t. NFE = S.
    `x0_clip` clips or thresholds each x̂0 before use (diffusers' `thresholding=True` of this solver)."""
    pairs = timestep_pairs(check_timesteps(timesteps, schedule.T))
    clip = X0Clip.of(x0_clip)
    x, x0_before, h_before = x_T, None, None
    for t, t_prev in pairs:
        a_t, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(t_prev)
        eps = _eps(model, x, t)
        _, x0 = clip.apply(x, eps, x0_from_eps(x, a_t, eps), a_t)
        if t_prev < 0:
            x_next = x0
        else:
            h = _lambda(a_prev) - _lambda(a_t)
            data = x0 if x0_before is None else x0 + (h / (2 * h_before)) * (x0 - x0_before)
            x_next = _dpmpp_step(x, data, a_t, a_prev, h)
            x0_before, h_before = x0, h
        x = x_next
        if callback is not None:
            callback(SampleStep(t, t_prev, x, x0))
    return x


def pndm_sample(
    model: EpsModel,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    *,
    callback: Callback = None,
) -> torch.Tensor:
    """PNDM (Liu et al. 2022, Algorithm 2): pseudo Runge–Kutta on the first three intervals of τ (eq. 13: ε̂ at t,
    twice at the midpoint m, at the end p, combined (1, 2, 2, 1)/6 and fed to φ from x_t), then PLMS (eq. 12), whose
    4-step Adams–Bashforth row starts on the fourth interval with the three ε̂ stored at the warm-up's starts.

    The midpoint index is m = t − ⌊(t − p)/2⌋, diffusers' t − (T // S) // 2 on the uniform τ
    (`PNDMScheduler(skip_prk_steps=False)`). The last interval, to ᾱ = 1, has no index for a midpoint: it is never
    a Runge–Kutta step, so with S ≤ 3 the warm-up covers the first S − 1 intervals. NFE = S + 3·min(3, S − 1)."""
    pairs = timestep_pairs(check_timesteps(timesteps, schedule.T))
    x, history = x_T, []
    for k, (t, t_prev) in enumerate(pairs):
        a_t, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(t_prev)
        eps = _eps(model, x, t)
        if k < min(PRK_STEPS, len(pairs) - 1):
            mid = t - (t - t_prev) // 2
            a_mid = schedule.alpha_bar(mid)
            eps_2 = _eps(model, _phi(x, eps, a_t, a_mid), mid)
            eps_3 = _eps(model, _phi(x, eps_2, a_t, a_mid), mid)
            eps_4 = _eps(model, _phi(x, eps_3, a_t, a_prev), t_prev)
            history.append(eps)
            eps_used = (eps + 2 * eps_2 + 2 * eps_3 + eps_4) / 6
        else:
            history = [*history[-3:], eps]
            eps_used = _adams_bashforth(history)
        x0 = x0_from_eps(x, a_t, eps)
        x = _phi(x, eps_used, a_t, a_prev)
        if callback is not None:
            callback(SampleStep(t, t_prev, x, x0))
    return x


def pndm_nfe(n: int) -> int:
    return n + 3 * min(PRK_STEPS, n - 1)


def dpmpp_2s_sample(
    model: EpsModel,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: Sequence[int],
    *,
    callback: Callback = None,
    x0_clip: X0Clip | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2S) (Lu et al. 2022b, Algorithm 1, single-step second order, data prediction): from t over the
    next index s of τ to q, u is DDIM's step to s and x_q = (σ_q/σ_t) x_t − α_q (e^{−h} − 1)(x̂0_t + (x̂0(u, s) −
    x̂0_t)/2r), h = λ_q − λ_t, r = (λ_s − λ_t)/h (diffusers' DPMSolverSinglestepScheduler defaults:
    algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint").

    τ is walked two intervals per step from the noisy end, as dpm_2s is; the last interval (to ᾱ = 1, where the
    update returns x̂0) is first order, and so is the one before it when the others do not pair up. NFE = S.
    `x0_clip` clips or thresholds each x̂0 before use, as dpmpp_2m's does."""
    clip = X0Clip.of(x0_clip)
    pairs = timestep_pairs(check_timesteps(timesteps, schedule.T))
    x, k = x_T, 0
    while k < len(pairs):
        order = max(1, min(2, len(pairs) - 1 - k))
        t, s = pairs[k]
        a_t, a_s = schedule.alpha_bar(t), schedule.alpha_bar(s)
        eps_t = _eps(model, x, t)
        _, x0_t = clip.apply(x, eps_t, x0_from_eps(x, a_t, eps_t), a_t)
        # DPM-Solver++(1) is DDIM's step with the ε̂ that x̂0_t implies; to ᾱ = 1 it is x̂0_t
        u = _phi(x, eps_from_x0(x, a_t, x0_t), a_t, a_s)
        if callback is not None:
            callback(SampleStep(t, s, u, x0_t))
        if order == 2:
            q = pairs[k + 1][1]
            a_q = schedule.alpha_bar(q)
            eps_s = _eps(model, u, s)
            _, x0_s = clip.apply(u, eps_s, x0_from_eps(u, a_s, eps_s), a_s)
            lam_t, lam_s, lam_q = (_lambda(a) for a in (a_t, a_s, a_q))
            h, r = lam_q - lam_t, (lam_s - lam_t) / (lam_q - lam_t)
            u = _dpmpp_step(x, x0_t + (x0_s - x0_t) / (2 * r), a_t, a_q, h)
            if callback is not None:
                callback(SampleStep(s, q, u, x0_s))
        x, k = u, k + order
    return x
