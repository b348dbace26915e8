"""Where one U-Net forward's GPU time goes: the top kernels and ops by device time under the speed options of
`eval`, with the forward's milliseconds and achieved TFLOP/s.

    python bench/unet_profile.py --model cifar10 --batch 256 --bf16 --channels-last
    python bench/unet_profile.py --model celeba --batch 128 --bf16 --channels-last --compile

Random weights (the arithmetic does not depend on them), the config of conf/model/NAME.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml
from torch.profiler import ProfilerActivity, profile

from ddim.sampling import autocast_context, fast_model
from ddim.models import UNet
from sampler_overhead import synchronize
from sampling_throughput import flops_per_forward

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cifar10")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--forwards", type=int, default=10)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--cuda-graphs", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    config = yaml.safe_load((CONF / f"{args.model}.yaml").read_text())
    config.pop("_target_", None)
    model = UNet(**config).to(device).eval().requires_grad_(False)
    flops = flops_per_forward(model, config, device) * args.batch
    net = fast_model(model, device, compile=args.compile, channels_last=args.channels_last,
                     cuda_graphs=args.cuda_graphs, bf16=args.bf16)
    x = torch.randn(args.batch, config["in_channels"], config["resolution"], config["resolution"], device=device)
    t = torch.randint(0, 1000, (args.batch,), device=device)

    def forwards(n: int) -> None:
        with torch.inference_mode(), autocast_context(device, args.bf16):
            for _ in range(n):
                net(x, t)
        synchronize(device)

    forwards(3)  # compile, cuDNN algorithm choice, graph capture
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        forwards(args.forwards)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=args.top, max_name_column_width=70))
    import time
    start = time.perf_counter()
    forwards(args.forwards)
    seconds = (time.perf_counter() - start) / args.forwards
    print(f"{args.model}, batch {args.batch}, bf16 {args.bf16}, channels_last {args.channels_last}, compile "
          f"{args.compile}, cuda_graphs {args.cuda_graphs}: {1e3 * seconds:.2f} ms per forward, "
          f"{flops / seconds / 1e12:.1f} TFLOP/s")


if __name__ == "__main__":
    main()
