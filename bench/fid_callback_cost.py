"""What FID while training (callbacks.fid_every_n_steps) costs: seconds per evaluation (sampling num_samples images
from the EMA weights, their features, the FD) at the demo's model and data (experiment=demo_train: the digits U-Net,
fd_digits_conv), for a few sizes, plus the one-off reference statistics and what one training step costs.

    python bench/fid_callback_cost.py                        # n=500 S=20 (the default) and n=1000 S=50
    python bench/fid_callback_cost.py --sizes 200x10 --repeats 2

The weights are the untrained initialisation: the cost depends on the model's size, n and S, not on its values.
Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["500x20", "1000x50"], help="NUM_SAMPLESxSTEPS")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from hydra.utils import instantiate

    from ddim.training.train import build_module
    from tests.helpers import compose_config

    cfg = compose_config("train", Path(tempfile.mkdtemp()), ["experiment=demo_train", "logger=none"])
    module = build_module(cfg).eval()
    trainer = SimpleNamespace(is_global_zero=True, strategy=SimpleNamespace(root_device=torch.device("cpu")))
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread(s); the demo's U-Net ({sum(p.numel() for p in module.model.parameters()):,} parameters)")

    # one training step of the demo (batch 128) for scale: forward, backward, Adam, EMA
    batch = torch.randn(cfg.dataset.batch_size, 1, 8, 8)
    optimizer = torch.optim.Adam(module.model.parameters(), lr=1e-4)
    module.train()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        loss = module.diffusion_loss(batch, torch.Generator().manual_seed(0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        module.ema.update_parameters(module.model)
        times.append(time.perf_counter() - start)
    step = sorted(times)[len(times) // 2]
    print(f"one training step (batch {cfg.dataset.batch_size}): {step:.3f} s (median of 5)")

    print("| n | S | reference (once) | seconds per evaluation | = training steps |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        num, steps = (int(v) for v in size.split("x"))
        callback = instantiate(cfg.callbacks.fid, every_n_steps=1, num_samples=num, steps=steps)
        start = time.perf_counter()
        callback.setup(trainer, module, "fit")
        reference = time.perf_counter() - start
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            callback.evaluate(module)
            seconds.append(time.perf_counter() - start)
        best = min(seconds)
        print(f"| {num} | {steps} | {reference:.2f} s | {best:.2f} s (min of {args.repeats}) | {best / step:.0f} |")


if __name__ == "__main__":
    main()
