"""The sampler's own time per step (a model that costs nothing, η = 1 so every step draws noise), with the old
per-image CPU generators against the counter-based noise made on the device.

    python bench/step_noise.py                     # batch 256, 3×32×32 and 3×64×64, on CUDA if there is one
    python bench/step_noise.py --device cpu --steps 20

Two figures per run: `host ms/step` is the time the Python thread spends in a step (what a GPU run pays whenever
the host, not the GPU, is the bottleneck: it is measured without synchronizing), `wall ms/step` adds waiting for
the device at the end. On a CPU both are the same computation.
"""

from __future__ import annotations

import argparse
import time

import torch

from ddim.diffusion import NoiseSchedule, make_timesteps, sample
from ddim.utils.noise import CounterNoise
from legacy_noise import PerSampleNoise, per_sample_generators, per_sample_latents


def free_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return x  # ε̂ = x: costs nothing, so what is timed is the sampler


def old_way(seed: int, batch: int, shape: tuple, device: torch.device, steps: int) -> tuple:
    generators = per_sample_generators(seed, range(batch))
    return per_sample_latents(generators, shape, device), PerSampleNoise(generators, torch.Size(shape).numel())


def new_way(seed: int, batch: int, shape: tuple, device: torch.device, steps: int) -> tuple:
    noise = CounterNoise(seed, range(batch), shape, device, num_step_streams=steps)
    return noise.latents(), noise


@torch.inference_mode()
def per_step(make, batch: int, shape: tuple, device: torch.device, steps: int, repeats: int) -> tuple[float, float]:
    """Best (host, wall) seconds per step over `repeats` runs of the whole loop, x_T included."""
    schedule = NoiseSchedule.linear()
    nfe = len(make_timesteps(schedule.T, steps))
    best_host = best_wall = float("inf")
    for r in range(repeats + 1):  # the first run warms caches and kernels up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        x_T, noise = make(0, batch, shape, device, nfe)
        sample(free_model, x_T, schedule, make_timesteps(schedule.T, steps), eta=1.0, generator=noise)
        host = time.perf_counter() - start
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        if r:
            best_host, best_wall = min(best_host, host / nfe), min(best_wall, wall / nfe)
    return best_host, best_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--resolutions", default="32,64")
    parser.add_argument("--steps", type=int, default=50, help="S; the old way draws 32 (3×32×32) or 21 steps at once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; batch {args.batch}; S = {args.steps}, η = 1; torch {torch.__version__}")
    print("| image | noise | host ms/step | wall ms/step | after/before (wall) |")
    print("|---|---|---|---|---|")
    for resolution in (int(r) for r in args.resolutions.split(",")):
        shape = (3, resolution, resolution)
        before = per_step(old_way, args.batch, shape, device, args.steps, args.repeats)
        after = per_step(new_way, args.batch, shape, device, args.steps, args.repeats)
        label = "×".join(map(str, shape))
        print(f"| {label} | per-image CPU generators (before) | {1e3 * before[0]:.2f} | {1e3 * before[1]:.2f} | — |")
        print(f"| {label} | counter-based on {device.type} (after) | {1e3 * after[0]:.2f} | {1e3 * after[1]:.2f} | "
              f"{after[1] / before[1]:.2f} |")


if __name__ == "__main__":
    main()
