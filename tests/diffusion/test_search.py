"""The trajectory search: its DP against brute force, its jump costs against the samplers themselves, and on the
mixture oracle a searched τ against every fixed spacing's global error (reference: solve_ivp)."""

import math
from itertools import combinations

import pytest
import torch

from ddim.diffusion import SOLVERS, NoiseSchedule, make_timesteps
from ddim.diffusion.search import (
    best_path,
    best_path_with_history,
    first_order_costs,
    path_cost,
    run_teacher,
    search_trajectory,
    second_order_costs,
    start_costs,
)

from .mixture_oracle import MixtureOracle, reference_ode

SCHEDULE = NoiseSchedule.linear()
ORACLE = MixtureOracle(SCHEDULE)
GRID = sorted({*make_timesteps(1000, 100, "logsnr", SCHEDULE.alphas_cumprod), 999})


def _brute_force(start, first, jump, steps):
    """Every path of `steps` grid nodes priced on its own (jump None: first-order costs everywhere)."""
    G = start.numel()
    best = (math.inf, None)
    for nodes in combinations(range(G), steps):
        chain, cost = (*nodes, G), float(start[nodes[0]])
        for n in range(steps):
            a, b = chain[n], chain[n + 1]
            history = jump is not None and n > 0 and b < G
            cost += float(jump[chain[n - 1], a, b] if history else first[a, b])
        best = min(best, (cost, list(nodes)))
    return best


def _random_costs(G, seed):
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(G, generator=g, dtype=torch.float64)
    first = torch.rand(G, G + 1, generator=g, dtype=torch.float64)  # the DP must ignore j <= i itself
    jump = torch.rand(G, G, G + 1, generator=g, dtype=torch.float64)
    return start, first, jump


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("steps", [1, 2, 3, 5])
def test_the_dp_returns_the_brute_force_optimum_on_a_small_grid(seed, steps):
    start, first, jump = _random_costs(7, seed)
    path = best_path(start, first, steps)
    cost, nodes = _brute_force(start, first, None, steps)
    assert path.nodes == nodes and path.cost == pytest.approx(cost, rel=1e-12)
    path = best_path_with_history(start, first, jump, steps)
    cost, nodes = _brute_force(start, first, jump, steps)
    assert path.nodes == nodes and path.cost == pytest.approx(cost, rel=1e-12)


@pytest.fixture(scope="module")
def teacher():
    x_T = torch.randn(32, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    return run_teacher(ORACLE, x_T, SCHEDULE, GRID, "dpmpp_2m")


def test_the_teacher_follows_the_reference_ode(teacher):
    exact = reference_ode(ORACLE, teacher.states[0], SCHEDULE.alpha_bar(999))
    assert (teacher.states[-1] - exact).square().mean().sqrt() < 2e-3
    assert teacher.grid[0] == 999 and teacher.nfe == len(GRID)


def _mse(a, b):
    return float((a - b).square().mean())


def test_first_order_costs_are_one_ddim_step_from_the_teachers_state(teacher):
    cost = first_order_costs(teacher, SCHEDULE)
    G = len(teacher.grid)
    for i, j in [(0, 1), (3, 40), (10, G - 1), (50, G)]:
        x_i = teacher.states[i]
        to = [teacher.grid[j]] if j < G else []  # the step to the terminal is the x̂0 step
        landed = []
        SOLVERS["ddim"].sample(ORACLE, x_i, SCHEDULE, sorted([*to, teacher.grid[i]]),
                               callback=lambda s: landed.append(s.x))
        assert cost[i, j] == pytest.approx(_mse(landed[0], teacher.states[j]), rel=1e-9)
    assert math.isinf(cost[5, 5]) and math.isinf(cost[5, 2])
    assert start_costs(teacher)[0] == 0


def test_second_order_costs_follow_dpmpp_2m_from_the_teachers_states(teacher):
    cost = second_order_costs(teacher, SCHEDULE)
    G = len(teacher.grid)

    def lam(n):
        a = SCHEDULE.alpha_bar(teacher.grid[n])
        return 0.5 * math.log(a / (1 - a))

    for k, i, j in [(0, 1, 2), (2, 10, 30), (20, 21, G - 1)]:
        a_i, a_j = SCHEDULE.alpha_bar(teacher.grid[i]), SCHEDULE.alpha_bar(teacher.grid[j])
        x0_i, x0_k = teacher.x0_preds[i], teacher.x0_preds[k]
        h, h_before = lam(j) - lam(i), lam(i) - lam(k)
        data = x0_i + h / (2 * h_before) * (x0_i - x0_k)
        landed = math.sqrt((1 - a_j) / (1 - a_i)) * teacher.states[i] - math.sqrt(a_j) * math.expm1(-h) * data
        assert cost[k, i, j] == pytest.approx(_mse(landed, teacher.states[j]), rel=1e-9)
    # to the terminal: x̂0 at i, whatever came before
    assert cost[3, 7, G] == pytest.approx(_mse(teacher.x0_preds[7], teacher.states[G]), rel=1e-9)
    assert cost[1, 7, G] == cost[3, 7, G] and math.isinf(cost[7, 3, 9])


@pytest.mark.parametrize("method", ["ddim", "dpmpp_2m"])
@pytest.mark.parametrize("steps", [5, 10])
def test_the_searched_trajectory_beats_every_fixed_spacing_on_the_mixture_oracle(teacher, method, steps):
    x_T = torch.randn(128, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)  # not the teacher's
    exact = reference_ode(ORACLE, x_T, SCHEDULE.alpha_bar(999))

    def error(timesteps):
        return (SOLVERS[method].sample(ORACLE, x_T, SCHEDULE, timesteps) - exact).square().mean().sqrt().item()

    timesteps, cost = search_trajectory(teacher, SCHEDULE, method, steps)
    assert len(timesteps) == steps and cost == pytest.approx(path_cost(teacher, SCHEDULE, method, timesteps))
    fixed = {skip: error(make_timesteps(1000, steps, skip, SCHEDULE.alphas_cumprod))
             for skip in ("uniform", "quad", "linspace", "logsnr", "edm", "trailing")}
    assert error(timesteps) < min(fixed.values()), (error(timesteps), fixed)
