"""Searching τ for a model, a solver and a number of steps S (GITS's idea, Chen et al. 2024): run a fine teacher
trajectory of the η = 0 ODE once from a batch of x_T, price every jump i → j of the solver from the teacher's own
states, and pick the S-jump path of least summed cost by dynamic programming.

Nodes are the teacher's grid, walked from noisy to clean: node 0 is the top index (T − 1, where x_T is exact), the
last grid node the smallest index, and one terminal node after it stands for ᾱ = 1 (x̂0, index −1). A path is
source → τ_S → … → τ_1 → terminal. Its cost is
  start(τ_S) + Σ jump(τ_k → τ_{k−1}) + jump(τ_1 → terminal),
start(a) = mse(x_T, teacher state at a) (sampling from a puts x_T there, without a network evaluation), jump = the
mean squared distance (per dimension, over the batch) between the solver's step from the teacher's state and the
teacher's state where it lands. Squared, not the distance itself (GITS's): errors of different jumps point in
unrelated directions and add in quadrature, and on the mixture oracle the sum of squares finds the better τ at every
S tried (docs/samplers.md); the sum of distances is the bound for errors that all line up.

Cost per solver, each from what the teacher computed (no network evaluation beyond the teacher's):
  ddim:     a jump needs only ε̂ at its start, which the teacher evaluated: cost(i, j).
  dpmpp_2m: a jump also uses the previous point's x̂0 (its history), so its cost depends on the node k before i:
            cost(k, i, j), with the teacher's x̂0 at k; the DP runs over the last jump (k, i) and is exact for this
            cost. The first jump has no history and is first order (as the sampler's is); so is the jump to the
            terminal (x̂0 of τ_1), whatever k was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from .sampling import EpsModel
from .schedule import NoiseSchedule
from .solvers import SOLVERS
from .trajectory import check_timesteps

SEARCH_METHODS = ("ddim", "dpmpp_2m")
TEACHER_METHODS = ("ddim", "dpmpp_2m", "heun")


class Teacher(NamedTuple):
    """The teacher's grid (decreasing indices), its states there (node n: x at grid[n]; the last entry is its
    final x_0) and its x̂0 at each grid node, each (G[+1], B, D) in float64."""

    grid: list[int]
    states: torch.Tensor
    x0_preds: torch.Tensor
    nfe: int


def run_teacher(model: EpsModel, x_T: torch.Tensor, schedule: NoiseSchedule, timesteps: Sequence[int],
                method: str = "dpmpp_2m") -> Teacher:
    """The η = 0 ODE from x_T along the fine τ `timesteps` (its top is where x_T is put) with `method`, keeping
    every node's state and x̂0."""
    if method not in TEACHER_METHODS:
        raise ValueError(f"teacher method {method!r}; expected one of {', '.join(TEACHER_METHODS)}")
    timesteps = check_timesteps(timesteps, schedule.T)
    states, x0_preds = [x_T.flatten(1).double()], []

    def keep(step) -> None:
        states.append(step.x.flatten(1).double())
        x0_preds.append(step.x0_pred.flatten(1).double())

    SOLVERS[method].sample(model, x_T, schedule, timesteps, callback=keep)
    return Teacher(list(reversed(timesteps)), torch.stack(states), torch.stack(x0_preds),
                   SOLVERS[method].nfe(len(timesteps)))


def _mse(error: torch.Tensor) -> torch.Tensor:
    """Mean square over every latent and dimension, per leading index."""
    return error.flatten(1).square().mean(1)


def _coefficients(schedule: NoiseSchedule, grid: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """√ᾱ, √(1 − ᾱ) and λ at the grid nodes and the terminal (ᾱ = 1: λ = +∞)."""
    abar = torch.tensor([schedule.alpha_bar(t) for t in grid] + [1.0], dtype=torch.float64)
    lam = torch.cat([0.5 * (abar[:-1].log() - torch.log1p(-abar[:-1])), torch.tensor([math.inf], dtype=torch.float64)])
    return abar.sqrt(), (1 - abar).sqrt(), lam


def start_costs(teacher: Teacher) -> torch.Tensor:
    """start[a]: x_T put at node a instead of the teacher's state there (0 at the top node)."""
    return _mse(teacher.states[:-1] - teacher.states[0])


def first_order_costs(teacher: Teacher, schedule: NoiseSchedule) -> torch.Tensor:
    """cost[i, j], G × (G + 1): DDIM's (= DPM-Solver-1's) jump from the teacher's state at node i to node j > i
    against the teacher's state there; +∞ where j ≤ i."""
    alpha, sigma, _ = _coefficients(schedule, teacher.grid)
    G = len(teacher.grid)
    cost = torch.full((G, G + 1), math.inf, dtype=torch.float64)
    for i in range(G):
        x0, x = teacher.x0_preds[i], teacher.states[i]
        eps = (x - alpha[i] * x0) / sigma[i]
        ahead = slice(i + 1, G + 1)
        landed = alpha[ahead, None, None] * x0 + sigma[ahead, None, None] * eps
        cost[i, ahead] = _mse(landed - teacher.states[ahead])
    return cost


def second_order_costs(teacher: Teacher, schedule: NoiseSchedule) -> torch.Tensor:
    """cost[k, i, j], G × G × (G + 1): DPM-Solver++(2M)'s jump i → j after a jump from k, from the teacher's state
    at i and its x̂0 at k and i; +∞ unless k < i < j. The jump to the terminal is first order (x̂0 at i)."""
    alpha, sigma, lam = _coefficients(schedule, teacher.grid)
    G = len(teacher.grid)
    cost = torch.full((G, G, G + 1), math.inf, dtype=torch.float64)
    size = teacher.states[0].numel()
    for i in range(1, G):
        x0, x = teacher.x0_preds[i], teacher.states[i]
        eps = (x - alpha[i] * x0) / sigma[i]
        ahead = slice(i + 1, G + 1)
        u = (alpha[ahead, None, None] * x0 + sigma[ahead, None, None] * eps - teacher.states[ahead]).flatten(1)
        v = (x0 - teacher.x0_preds[:i]).flatten(1)  # x̂0_i − x̂0_k, k < i
        h = lam[ahead] - lam[i]
        h_before = lam[i] - lam[:i]
        # D = x̂0_i + (h / 2h_before)(x̂0_i − x̂0_k); the step is the first-order one plus −α_j expm1(−h) times that
        beta = (-alpha[ahead] * torch.expm1(-h) * h)[None, :] / (2 * h_before[:, None])
        beta[:, -1] = 0.0  # to the terminal: x̂0_i
        squared = (u.square().sum(1)[None, :] + 2 * beta * (v @ u.T) + beta.square() * v.square().sum(1)[:, None])
        cost[:i, i, ahead] = squared.clamp(min=0) / size
    return cost


class Path(NamedTuple):
    nodes: list[int]  # grid positions of τ_S, …, τ_1 (increasing positions: decreasing indices)
    cost: float


def best_path(start: torch.Tensor, jump: torch.Tensor, steps: int) -> Path:
    """The least-cost path of `steps` nodes: start[a] + Σ jump[i, j], ending with a jump to the terminal G."""
    G = start.numel()
    _check_steps(steps, G)
    jump = _forward_only(jump)
    reach = start.clone()  # reach[j]: least cost of a path whose latest node is j
    back = []
    for _ in range(steps - 1):
        total = reach[:, None] + jump[:, :G]
        reach, arg = total.min(0)
        back.append(arg)
    total = reach + jump[:, G]
    cost, last = total.min(0)
    nodes = [int(last)]
    for arg in reversed(back):
        nodes.append(int(arg[nodes[-1]]))
    return Path(nodes[::-1], float(cost))


def best_path_with_history(start: torch.Tensor, first: torch.Tensor, jump: torch.Tensor, steps: int) -> Path:
    """As best_path, where a jump's cost depends on the node before it: the first jump from a costs first[a, b],
    each later jump i → j after k costs jump[k, i, j], the jump to the terminal first[i, G]. The DP state is the last
    jump (k, i)."""
    G = start.numel()
    _check_steps(steps, G)
    if steps == 1:
        return best_path(start, first, 1)
    first = _forward_only(first)
    positions = torch.arange(G + 1)
    ordered = (positions[:G, None, None] < positions[None, :G, None]) & (positions[None, :G, None] < positions)
    jump = jump.masked_fill(~ordered, math.inf)  # only k < i < j is a path
    reach = start[:, None] + first[:, :G]  # reach[k, i]: least cost of a path whose last jump is k → i
    back = []
    for _ in range(steps - 2):
        total = reach[:, :, None] + jump[:, :, :G]  # [k, i, j]
        reach, arg = total.min(0)  # → [i, j]
        back.append(arg)
    total = reach + first[None, :, G]  # the jump to the terminal is first order (x̂0), whatever came before
    flat = int(total.argmin())
    cost, (k, i) = float(total.flatten()[flat]), divmod(flat, G)
    nodes = [i, k]
    for arg in reversed(back):
        nodes.append(int(arg[nodes[-1], nodes[-2]]))
    return Path(nodes[::-1], cost)


def _forward_only(jump: torch.Tensor) -> torch.Tensor:
    """G × (G + 1) costs with +∞ wherever j ≤ i: a path only moves towards the terminal."""
    G = jump.shape[0]
    return jump.masked_fill(~torch.ones(G, G + 1, dtype=torch.bool).triu(1), math.inf)


def _check_steps(steps: int, G: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= G:
        raise ValueError(f"steps={steps!r}; expected 1 to {G} (the teacher grid's nodes)")


class JumpCosts(NamedTuple):
    """Every cost a search for one method reads: start[a], first[i, j] and, for dpmpp_2m, second[k, i, j]."""

    start: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor | None


def jump_costs(teacher: Teacher, schedule: NoiseSchedule, method: str) -> JumpCosts:
    """The cost tables of `method` from the teacher: computed once, then searched and priced for any S and τ (the
    second-order table is G² (G + 1) entries, the bulk of a search's time after the teacher)."""
    if method not in SEARCH_METHODS:
        raise ValueError(f"method {method!r}: the search prices jumps for {', '.join(SEARCH_METHODS)} only")
    second = second_order_costs(teacher, schedule) if method == "dpmpp_2m" else None
    return JumpCosts(start_costs(teacher), first_order_costs(teacher, schedule), second)


def search_trajectory(teacher: Teacher, schedule: NoiseSchedule, method: str, steps: int,
                      costs: JumpCosts | None = None) -> tuple[list[int], float]:
    """(τ as increasing network indices, its cost) for `method` with `steps` network indices; `costs`: jump_costs'
    tables where the caller already has them."""
    start, first, second = costs or jump_costs(teacher, schedule, method)
    if method == "ddim":
        path = best_path(start, first, steps)
    else:
        path = best_path_with_history(start, first, second, steps)
    return sorted(teacher.grid[n] for n in path.nodes), path.cost


def path_cost(teacher: Teacher, schedule: NoiseSchedule, method: str, timesteps: Sequence[int],
              costs: JumpCosts | None = None) -> float:
    """The search's cost of a given τ whose indices all lie on the teacher's grid (e.g. a fixed spacing's, to
    compare with the searched one); `costs` as for search_trajectory."""
    position = {t: n for n, t in enumerate(teacher.grid)}
    missing = [t for t in timesteps if t not in position]
    if missing:
        raise ValueError(f"timesteps {missing} are not on the teacher's grid")
    nodes = sorted(position[t] for t in timesteps)
    return price_path(*(costs or jump_costs(teacher, schedule, method)), nodes)


def price_path(start: torch.Tensor, first: torch.Tensor, jump: torch.Tensor | None, nodes: Sequence[int]) -> float:
    """start[τ_S] + each jump's cost along the grid positions `nodes` (increasing) and on to the terminal: first[a, b]
    for the first jump, the jump to the terminal and every jump where `jump` is None, else jump[k, a, b]."""
    terminal = start.numel()
    chain = (*nodes, terminal)
    cost = float(start[chain[0]])
    for n in range(len(chain) - 1):
        a, b = chain[n], chain[n + 1]
        cost += float(first[a, b] if jump is None or n == 0 or b == terminal else jump[chain[n - 1], a, b])
    return cost
