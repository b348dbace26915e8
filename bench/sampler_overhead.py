"""Sampling throughput and the sampler's overhead over bare U-Net forwards at the same batch.

    python bench/sampler_overhead.py --model digits --batch 500 --steps 50            # CPU
    python bench/sampler_overhead.py --model cifar10 --batch 256 --steps 100 --bf16 --compile   # GPU

Overhead = time(sample) / time(S bare forwards on the same x and t) − 1; the target is ≤ 3 % for η = 0.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from ddim.diffusion import NoiseSchedule, make_timesteps, sample
from ddim.evaluation.generate import autocast_context
from ddim.models import UNet
from ddim.utils import PerSampleNoise, per_sample_generators

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int) -> float:
    """Best of `repeats` wall times (seconds), after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
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

    def sampler(eta: float, per_sample: bool):
        @torch.inference_mode()
        def run() -> None:
            generator = (PerSampleNoise(per_sample_generators(0, range(args.batch)), x_T[0].numel()) if per_sample
                         else torch.Generator(device).manual_seed(0))
            with autocast_context(device, args.bf16):
                sample(net, x_T, schedule, args.steps, eta=eta, generator=generator)
        return run

    base = timed(bare, device, args.repeats)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; model {args.model}; batch {args.batch}; S = {args.steps}; "
          f"bf16 {args.bf16}; compile {args.compile}; torch {torch.__version__}")
    print("| run | seconds | images/s | overhead vs bare forwards |")
    print("|---|---|---|---|")
    print(f"| bare U-Net forwards | {base:.3f} | {args.batch / base:.1f} | — |")
    for label, eta, per_sample in [("sample η=0", 0.0, False), ("sample η=1, one generator", 1.0, False),
                                   ("sample η=1, per-sample generators", 1.0, True)]:
        seconds = timed(sampler(eta, per_sample), device, args.repeats)
        print(f"| {label} | {seconds:.3f} | {args.batch / seconds:.1f} | {100 * (seconds / base - 1):+.1f} % |")


if __name__ == "__main__":
    main()
