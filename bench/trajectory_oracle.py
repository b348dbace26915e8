"""Global error against NFE for every solver × trajectory on the Gaussian-mixture oracle, the measured order, and
whether the searched τ beats every fixed spacing; the tables of docs/samplers.md.

    python bench/trajectory_oracle.py [--latents 256] [--teacher-latents 64]

The oracle (tests/diffusion/mixture_oracle.py) has an exact, nonlinear ε*; the reference x_0 of each x_T (put at
index T − 1) is solve_ivp's DOP853 at rtol 1e-11 in float64. Error: RMS over latents and dimensions of sampler(x_T)
− reference. A solver's S is the largest whose NFE fits the column's budget. The searched τ comes from
ddim.diffusion.search with its defaults (dpmpp_2m teacher on 100 logsnr nodes plus T − 1) on other latents than
the ones scored. Order: −slope of log error on log NFE over the columns 10..50.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the oracle lives beside the tests that use it

from ddim.diffusion import SOLVERS, NoiseSchedule, make_timesteps  # noqa: E402
from ddim.diffusion.search import SEARCH_METHODS, jump_costs, run_teacher, search_trajectory  # noqa: E402
from ddim.sampling.search import SearchOptions, teacher_grid  # noqa: E402
from tests.diffusion.mixture_oracle import MixtureOracle, reference_ode  # noqa: E402

BUDGETS = (2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50)
SPACINGS = ("uniform", "quad", "linspace", "logsnr", "edm", "trailing")
FIXED_RIVALS = ("uniform", "quad", "logsnr", "edm")  # the done-means comparison of issue 22


def steps_for(method: str, budget: int) -> int | None:
    """The largest S whose NFE on a trajectory of S indices is at most `budget`."""
    fitting = [s for s in range(1, budget + 1) if SOLVERS[method].nfe(s) <= budget]
    return max(fitting) if fitting else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latents", type=int, default=256)
    parser.add_argument("--teacher-latents", type=int, default=SearchOptions.num_latents)
    args = parser.parse_args()
    schedule = NoiseSchedule.linear()
    oracle = MixtureOracle(schedule)
    x_T = torch.randn(args.latents, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = reference_ode(oracle, x_T, schedule.alpha_bar(schedule.T - 1))
    start = time.perf_counter()
    options = SearchOptions(num_latents=args.teacher_latents)
    search_x = torch.randn(args.teacher_latents, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    teacher = run_teacher(oracle, search_x, schedule, teacher_grid(schedule, options), options.teacher_method)
    print(f"teacher: {teacher.nfe} NFE x {args.teacher_latents} latents, {time.perf_counter() - start:.2f} s\n")

    def error(method: str, timesteps: list[int]) -> float:
        return float((SOLVERS[method].sample(oracle, x_T, schedule, timesteps) - exact).square().mean().sqrt())

    for method in SOLVERS:
        costs = jump_costs(teacher, schedule, method) if method in SEARCH_METHODS else None  # once for every budget
        rows = {}
        for skip in (*SPACINGS, *(["searched"] if method in SEARCH_METHODS else [])):
            row = {}
            for budget in BUDGETS:
                steps = steps_for(method, budget)
                if steps is None:
                    continue
                if skip == "searched":
                    timesteps, _ = search_trajectory(teacher, schedule, method, steps, costs)
                else:
                    timesteps = make_timesteps(schedule.T, steps, skip, schedule.alphas_cumprod)
                row[budget] = error(method, timesteps)
            rows[skip] = row
        columns = [b for b in BUDGETS if any(b in r for r in rows.values())]
        print(f"### {method}\n")
        print("| τ | " + " | ".join(f"NFE ≤ {b}" for b in columns) + " | order (NFE 10–50) |")
        print("|---" * (len(columns) + 2) + "|")
        for skip, row in rows.items():
            fit = [b for b in columns if b >= 10 and b in row]
            order = -np.polyfit(np.log(fit), np.log([row[b] for b in fit]), 1)[0]
            cells = [f"{row[b]:.2e}" if b in row else "–" for b in columns]
            print(f"| {skip} | " + " | ".join(cells) + f" | {order:.2f} |")
        if "searched" in rows:
            lost = [b for b in columns if b <= 20 and rows["searched"][b] >= min(rows[s][b] for s in FIXED_RIVALS)]
            print(f"\nsearched below the best of {', '.join(FIXED_RIVALS)} at every NFE ≤ 20: "
                  f"{'yes' if not lost else 'no, not at NFE ' + ', '.join(map(str, lost))}")
        print()


if __name__ == "__main__":
    main()
