"""End of a multirun: gather the cells' metrics.json into tables and figures, and log them to W&B."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ddim.data import DATASET_INFO, build_dataset
from ddim.diffusion import SKIP_TYPES, encode, sample
from ddim.sampling import SamplerSettings, consistency_grid_from_columns, generate, interpolation_grid, save_image_grid
from ddim.utils.noise import CounterNoise

from ..report.cells import load_cells
from ..report.tables import format_table, write_results
from .cell import image_shape, load_model
from .intervals import paired_differences
from .options import FabricOptions
from .task import plan_from_config

log = logging.getLogger(__name__)


class SweepResults(Callback):
    """Writes results.csv, results.md, fid_vs_steps.png and comparisons.csv (plus consistency and interpolation
    grids) into the sweep directory once every cell has run; cells that failed are marked in the table. With a cluster
    launcher the launching process waits for the jobs, so this still runs after the last cell."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        collect_sweep(Path(config.hydra.sweep.dir), config)


def collect_sweep(sweep_dir: Path, config: DictConfig | None = None) -> list[Path]:
    """The end of a sweep from what is on disk: the tables from the cells' metrics.json with the paper's paired
    differences (from the cells' stored resamples, topped up to the config's fid.bootstrap from their features), then,
    given the sweep's config, the figures and the W&B summary when it asks for them. Returns the files written."""
    cells = load_cells(sweep_dir)
    if not cells:
        log.warning("no metrics.json under %s: nothing to tabulate", sweep_dir)
        return []
    comparisons = sweep_differences(sweep_dir, cells, config)
    paths = write_results(sweep_dir, cells, comparisons=comparisons)
    print(format_table(cells, comparisons=comparisons))
    print(f"\nresults: {sweep_dir / 'results.md'}")
    if config is None:
        return paths
    figures: list[Path] = []
    if config.eval.figures:
        try:
            figures = make_figures(config, cells, sweep_dir)
        except Exception as error:  # figures are a bonus: the table is already written
            log.error("figures failed: %s: %s", type(error).__name__, error)
    if config.wandb.enabled:
        try:
            log_sweep_to_wandb(config, cells, sweep_dir, [*paths, *figures])
        except Exception as error:  # W&B unreachable or raising: the tables are written already
            log.error("W&B logging failed (%s: %s); the results are in %s", type(error).__name__, error,
                      sweep_dir / "results.md")
    return [*paths, *figures]


def sweep_differences(sweep_dir: Path, cells: list[dict[str, Any]], config: DictConfig | None) -> list[dict[str, Any]]:
    """paired_differences with the config's fid.bootstrap and device (stored resamples only without a config, or
    with fid.bootstrap=0); [] with a log line if it fails, so the tables are still written."""
    resamples = OmegaConf.select(config, "fid.bootstrap") if config is not None else None
    fabric = OmegaConf.select(config, "fabric") if config is not None else None
    device = FabricOptions(**OmegaConf.to_container(fabric, resolve=True)).main_device() if fabric else "cpu"
    try:
        return paired_differences(sweep_dir, cells, int(resamples) if resamples else None, device)
    except Exception as error:  # the differences are a bonus over the tables
        log.error("paired differences failed: %s: %s", type(error).__name__, error)
        return []


@torch.inference_mode()
def make_figures(config: DictConfig, cells: list[dict[str, Any]], sweep_dir: Path) -> list[Path]:
    """Figure 5 (one row per x_T, one column per S of the sweep, η = 0) and Figure 6-style interpolations
    (slerp between x_T pairs, and between the latents of two encoded test images)."""
    finished = [c for c in cells if c.get("status") == "ok"]
    if not finished:
        return []
    # the figures walk named spacings at each S of the sweep; the sweep config's own τ (a searched file for its
    # default S, say) is not theirs to read
    named = OmegaConf.merge(config, {"sampler": {"skip": "uniform", "timesteps": None, "trajectory_file": None}})
    plan = plan_from_config(named, str(sweep_dir))
    device = torch.device(plan.fabric.main_device())
    model, schedule, _ = load_model(plan, device)
    shape = image_shape(model)
    skip = finished[0].get("skip", "uniform")
    skip = skip if skip in SKIP_TYPES else "uniform"  # a searched or given τ has one S: the figures need every S
    all_steps = sorted({int(c["steps"]) for c in finished})
    rows = int(config.eval.figure_rows)
    upscale = max(1, 64 // shape[-1])

    columns = [generate(model, schedule, SamplerSettings(s, 0.0, skip), range(rows), plan.seed, shape, device)
               for s in all_steps]
    consistency = consistency_grid_from_columns(columns)
    paths = [save_image_grid(consistency, sweep_dir / "consistency.png", nrow=len(all_steps), upscale=upscale)]

    steps = max([s for s in all_steps if s <= 100] or [min(all_steps)])
    timesteps = SamplerSettings(steps, 0.0, skip).trajectory(schedule)
    points = 9

    def decode(latents: torch.Tensor) -> torch.Tensor:
        return sample(model, latents, schedule, timesteps, eta=0.0)

    noise = CounterNoise(plan.seed, range(rows), shape, device).latents()
    images = interpolation_grid(noise[0::2], noise[1::2], points, decode)
    paths.append(save_image_grid(images, sweep_dir / "interpolation.png", nrow=points, upscale=upscale))

    data = plan.dataset
    test = build_dataset(data["name"], data.get("root"), DATASET_INFO[data["name"]]["test_split"], data["resolution"])
    real = torch.stack([test[i] for i in range(min(4, len(test) - len(test) % 2))]).to(device)
    x_T = encode(model, real, schedule, timesteps)
    images = interpolation_grid(x_T[0::2], x_T[1::2], points, decode)
    paths.append(save_image_grid(images, sweep_dir / "interpolation_real.png", nrow=points, upscale=upscale))
    return paths


def log_sweep_to_wandb(config: DictConfig, cells: list[dict[str, Any]], sweep_dir: Path, files: list[Path]) -> None:
    """The sweep's table as a wandb.Table and its figures as images, in one run of the sweep's group."""
    import wandb

    columns = sorted({k for c in cells for k, v in c.items() if isinstance(v, (int, float, str)) or v is None} - {"key"})
    # η is a number in most cells and "sigma_hat" in DDPM's: a column of mixed types, which wandb.Table refuses
    # unless told
    table = wandb.Table(columns=columns, data=[[c.get(k) for k in columns] for c in cells], allow_mixed_types=True)
    try:
        run = wandb.init(project=config.wandb.project, mode=config.wandb.mode, dir=str(sweep_dir), name="sweep-summary",
                         group=str(sweep_dir), job_type="sweep-summary", reinit="finish_previous",
                         settings=wandb.Settings(silent=True))
        run.log({"results": table, **{p.stem: wandb.Image(str(p)) for p in files if p.suffix == ".png"}})
    finally:
        wandb.finish()
