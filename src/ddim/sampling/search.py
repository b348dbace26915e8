"""A trajectory search on a model: the teacher batch, the search of ddim.diffusion.search, its cost and the file.
The latents are not any evaluation's: they come from their own seed, so τ is not fitted to the images it is then
scored on."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ddim.diffusion import NoiseSchedule, make_timesteps
from ddim.diffusion.search import (
    SEARCH_METHODS, TEACHER_METHODS, jump_costs, path_cost, run_teacher, search_trajectory,
)
from ddim.errors import InputError
from ddim.utils.noise import CounterNoise

from .trajectory_file import SearchedTrajectory


@dataclass
class SearchOptions:
    """How τ is searched (`search.*` of python -m ddim.trajectory_search)."""

    teacher_steps: int = 100  # nodes of the teacher's grid: the candidate indices of τ (index T − 1 is always one)
    teacher_skip: str = "logsnr"  # the teacher grid's spacing (a named one of sampler.skip)
    teacher_method: str = "dpmpp_2m"  # the teacher's η = 0 solver: ddim | dpmpp_2m | heun (2 evaluations a node)
    num_latents: int = 48  # x_T of the search batch (48 × ~94 teacher evaluations: fewer than 1,000 images at NFE 5)
    seed: int = 1000  # the batch's x_T seed: not an evaluation's, so τ is not fitted to the images it is scored on

    def __post_init__(self) -> None:
        for name in ("teacher_steps", "num_latents"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise InputError(f"search.{name}={value!r}; expected an integer >= 2")
        if self.teacher_method not in TEACHER_METHODS:
            raise InputError(f"search.teacher_method={self.teacher_method!r}; expected one of "
                             f"{', '.join(TEACHER_METHODS)}")


def teacher_grid(schedule: NoiseSchedule, options: SearchOptions) -> list[int]:
    """The candidate indices: the teacher spacing's, with T − 1 (where x_T is exact) added."""
    try:
        grid = make_timesteps(schedule.T, min(options.teacher_steps, schedule.T), options.teacher_skip,
                              schedule.alphas_cumprod)
    except ValueError as error:
        raise InputError(f"search.teacher_skip: {error}") from None
    return sorted({*grid, schedule.T - 1})


def file_digest(path: str | Path) -> str:
    """sha256 of a checkpoint file, or of a folder's files in name order (first 16 hex digits)."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def other_model_warning(settings, ckpt: str | Path) -> str | None:
    """A line to log where a searched τ was searched on another checkpoint than `ckpt` (by file hash), else None.
    Not an error: a τ searched on one model may be tried on another on purpose."""
    found = settings.searched
    if found is None or not Path(ckpt).exists():
        return None
    digest = file_digest(ckpt)
    if digest == found.model_hash:
        return None
    return (f"sampler.trajectory_file's τ was searched on a model with hash {found.model_hash}, not this checkpoint "
            f"({digest}): it is sampled with as it stands")


def search(model, schedule: NoiseSchedule, shape: tuple[int, ...], method: str, steps: int, options: SearchOptions,
           model_hash: str, device: torch.device | str = "cpu",
           compare: tuple[str, ...] = ("uniform", "quad", "logsnr", "edm")) -> SearchedTrajectory:
    """τ of `steps` indices for `method` on `model`, and what it cost. `compare`: fixed spacings whose cost (on
    their indices snapped to the teacher grid) is recorded beside the searched one's."""
    if method not in SEARCH_METHODS:
        raise InputError(f"sampler.method={method}: the search prices jumps for {', '.join(SEARCH_METHODS)} only")
    grid = teacher_grid(schedule, options)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= len(grid):
        raise InputError(f"sampler.steps={steps!r}; expected 1 to {len(grid)} (the teacher grid's nodes)")
    start = time.perf_counter()
    x_T = CounterNoise(options.seed, range(options.num_latents), shape, torch.device(device)).latents()
    with torch.inference_mode():
        teacher = run_teacher(model, x_T, schedule, grid, options.teacher_method)
    costs = jump_costs(teacher, schedule, method)  # once, for the search and every fixed spacing it is compared with
    timesteps, cost = search_trajectory(teacher, schedule, method, steps, costs)
    seconds = time.perf_counter() - start
    snapped = {}
    for skip in compare:
        fixed = make_timesteps(schedule.T, steps, skip, schedule.alphas_cumprod)
        on_grid = sorted({min(grid, key=lambda g: abs(g - t)) for t in fixed})
        snapped[skip] = round(path_cost(teacher, schedule, method, on_grid, costs), 6)
    details = {"teacher_method": options.teacher_method, "teacher_steps": len(grid),
               "teacher_skip": options.teacher_skip, "num_latents": options.num_latents, "seed": options.seed,
               "search_seconds_per_latent": seconds / options.num_latents, "fixed_spacing_costs_on_grid": snapped}
    return SearchedTrajectory(timesteps, method, model_hash, round(cost, 6), teacher.nfe, round(seconds, 3), details)


__all__ = ["SearchOptions", "file_digest", "other_model_warning", "search", "teacher_grid"]
