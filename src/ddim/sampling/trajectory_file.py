"""The small JSON file a trajectory search writes and `sampler.skip=searched sampler.trajectory_file=PATH` reads:
τ, what it was searched for (model hash, method, steps) and what the search cost."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddim.diffusion import check_timesteps
from ddim.errors import InputError, MissingInputError
from ddim.utils import atomic_write_text

FORMAT = "ddim-searched-trajectory/1"


@dataclass(frozen=True)
class SearchedTrajectory:
    """τ for one (model, method, steps), and how it was found."""

    timesteps: list[int]  # increasing network indices; steps = len(timesteps)
    method: str  # the solver the cost was measured with
    model_hash: str  # sha256 of the checkpoint file (first 16 hex digits)
    cost: float  # the path's summed cost on the search batch (mean squared error per dimension against the teacher)
    search_nfe: int  # network evaluations the search spent per latent (teacher + jump costs)
    search_seconds: float  # wall time of the search
    details: dict[str, Any] = dataclasses.field(default_factory=dict)  # teacher steps, batch, baselines' costs…

    @property
    def steps(self) -> int:
        return len(self.timesteps)


def trajectory_file_name(method: str, steps: int) -> str:
    """The name a folder of searched trajectories gives the file for (method, S)."""
    return f"{method}_S{steps}.json"


def resolve_trajectory_file(path: str | Path, method: str, steps: int) -> Path:
    """`path` itself, or where it is a folder (one a sweep over methods and S shares), its file for (method, S)."""
    path = Path(path)
    return path / trajectory_file_name(method, steps) if path.is_dir() else path


def write_trajectory_file(path: str | Path, found: SearchedTrajectory) -> Path:
    """Writes atomically (a temporary file renamed over `path`)."""
    record = {"format": FORMAT, "steps": found.steps, **dataclasses.asdict(found)}
    return atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def read_trajectory_file(path: str | Path) -> SearchedTrajectory:
    """The file's trajectory, or one InputError line naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"sampler.trajectory_file={path}: no such file (python -m ddim.trajectory_search "
                                f"writes one)")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"sampler.trajectory_file={path}: not a JSON trajectory file ({error})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f"sampler.trajectory_file={path}: expected a JSON object with format {FORMAT!r}")
    fields = [f.name for f in dataclasses.fields(SearchedTrajectory)]
    missing = [name for name in fields if name not in record and name != "details"]
    if missing:
        raise InputError(f"sampler.trajectory_file={path}: missing {', '.join(missing)}")
    try:
        timesteps = check_timesteps(record["timesteps"])
    except ValueError as error:
        raise InputError(f"sampler.trajectory_file={path}: {error}") from None
    if record.get("steps", len(timesteps)) != len(timesteps):
        raise InputError(f"sampler.trajectory_file={path}: steps={record['steps']} but {len(timesteps)} timesteps")
    return SearchedTrajectory(**{**{k: record[k] for k in fields if k in record}, "timesteps": timesteps})


__all__ = ["FORMAT", "SearchedTrajectory", "read_trajectory_file", "resolve_trajectory_file", "trajectory_file_name",
           "write_trajectory_file"]
