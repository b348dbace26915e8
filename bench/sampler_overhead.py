"""Sampling throughput and the sampler's overhead over bare U-Net forwards at the same batch.

    python bench/sampler_overhead.py --model digits --batch 500 --steps 50            # CPU
    python bench/sampler_overhead.py --model cifar10 --batch 256 --steps 100 --bf16 --compile   # GPU

Overhead = time(sample) / time(S bare forwards on the same x and t) − 1; the target is ≤ 3 %. Where the machine's
timing noise is larger than that (a shared CPU), the "sampler alone" rows measure the sampler's own work directly,
with a model that costs nothing: their time over the bare forwards' is the overhead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from ddim.diffusion import NoiseSchedule, make_timesteps, sample
from ddim.sampling import autocast_context
from ddim.models import UNet
from ddim.utils import CounterNoise

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fns: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Best wall time (seconds) of each function over `repeats` rounds, after one warm-up call each; the rounds
    interleave the functions so that drift of the machine (clocks, caches, other load) hits them alike."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="digits", help="a file in conf/model/ (digits, cifar10, celeba, lsun)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    device = torch.device(args.device)
    config = yaml.safe_load((CONF / f"{args.model}.yaml").read_text())
    model = UNet(**config).to(device).eval().requires_grad_(False)
    net = torch.compile(model) if args.compile else model
    schedule = NoiseSchedule.linear()
    shape = (args.batch, config["in_channels"], config["resolution"], config["resolution"])
    x_T = torch.randn(shape, device=device)
    timesteps = make_timesteps(schedule.T, args.steps)
    t_batches = [torch.full((args.batch,), t, device=device, dtype=torch.long) for t in reversed(timesteps)]

    @torch.inference_mode()
    def bare() -> None:
        with autocast_context(device, args.bf16):
            for t in t_batches:
                net(x_T, t)

    def free_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x  # costs nothing: what remains is the sampler's own work

    def sampler(eta: float, per_sample: bool, model=None):
        @torch.inference_mode()
        def run() -> None:
            generator = (CounterNoise(0, range(args.batch), x_T.shape[1:], device) if per_sample
                         else torch.Generator(device).manual_seed(0))
            with autocast_context(device, args.bf16):
                sample(model or net, x_T, schedule, timesteps, eta=eta, generator=generator)
        return run

    runs = {"bare U-Net forwards": bare, "sample η=0": sampler(0.0, False),
            "sample η=1, one generator": sampler(1.0, False), "sample η=1, per-sample counter noise": sampler(1.0, True),
            "sampler alone η=0 (free model)": sampler(0.0, False, free_model),
            "sampler alone η=1, per-sample (free model)": sampler(1.0, True, free_model)}
    seconds = timed(runs, device, args.repeats)
    base = seconds["bare U-Net forwards"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; model {args.model}; batch {args.batch}; S = {args.steps}; "
          f"bf16 {args.bf16}; compile {args.compile}; torch {torch.__version__}")
    print("| run | seconds | images/s | overhead vs bare forwards |")
    print("|---|---|---|---|")
    for label, value in seconds.items():
        if value is base:
            overhead = "—"
        elif "free model" in label:
            overhead = f"+{100 * value / base:.2f} % (the sampler's own work)"
        else:
            overhead = f"{100 * (value / base - 1):+.1f} %"
        print(f"| {label} | {value:.3f} | {args.batch / value:.1f} | {overhead} |")


if __name__ == "__main__":
    main()
