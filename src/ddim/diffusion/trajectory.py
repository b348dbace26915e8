"""Sub-sequences τ of the network indices 0..T−1 that the generalized process walks (Section 4.2)."""

from __future__ import annotations

import math

SKIP_TYPES = ("uniform", "quad", "trailing")


def make_timesteps(T: int, steps: int, skip: str = "uniform") -> list[int]:
    """Increasing network indices τ_1 < … < τ_S.

    uniform:  [i·(T // S) for i < S]; equals the paper's range(0, T, T // S) when S divides T, and still gives
              exactly S indices when it does not (diffusers' "leading" spacing).
    quad:     int(linspace(0, √(0.8 T), S)²), the paper's CIFAR-10 trajectory. Low values repeat; a repeat is an
              identity step, so repeats are dropped and len(result) is the true number of network evaluations.
    trailing: round(T − i·T/S) − 1 for i < S, reversed: ends at T − 1 (Lin et al., 2024), not in the paper.
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
    raise ValueError(f"unknown skip type {skip!r}; expected one of {', '.join(SKIP_TYPES)}")


def check_steps(T: int, steps: int) -> None:
    if isinstance(steps, bool) or int(steps) != steps or not 1 <= steps <= T:
        raise ValueError(f"steps={steps!r}; expected an integer number of sampling steps between 1 and T={T}")


def timestep_pairs(timesteps: list[int]) -> list[tuple[int, int]]:
    """(t, previous index on the trajectory) from last to first; the first index's previous is −1 (ᾱ = 1)."""
    previous = [-1, *timesteps[:-1]]
    return list(zip(reversed(timesteps), reversed(previous)))
