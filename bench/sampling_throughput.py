"""Sampling images/s and network evaluations/s of the CIFAR-10 and CelebA U-Nets, fp32 / bf16 / channels_last /
torch.compile, each as a ratio to diffusers' UNet2DModel + DDIMScheduler on the same weights in the same process.

    python bench/sampling_throughput.py                       # short CPU run: CIFAR-10, batch 1 and 8, S = 2
    python bench/sampling_throughput.py --full                # batch 1..256, CIFAR-10 and CelebA, every mode
    python bench/sampling_throughput.py --full --device cuda  # adds the fraction of bf16 peak and Table 1 hours

Ours is `ddim.sampling.generate` (counter-based x_T and noise on the device, the eq. 12 loop); diffusers' is
what DDIMPipeline does per step (randn x_T, unet(x, t).sample, scheduler.step), without its image conversion. Both
get the same speed options (diffusers' bf16 is plain autocast; ours also stores conv/linear weights in bf16, which
gives the same numbers without re-casting them every step). The U-Nets are random-weight DDPM-layout models (the arithmetic does not depend on the
weights): a diffusers UNet2DModel saved to a folder and read back by our loader, so both run the same weights.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch
import yaml

from ddim.diffusion import NoiseSchedule
from ddim.sampling import SamplerSettings, autocast_context, fast_model, generate
from ddim.models import read_checkpoint
from sampler_overhead import synchronize, timed

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
# the paper's Table 1 grid per data set: S values, number of η columns (0, 0.2, 0.5, 1, σ̂), trajectory, samples
TABLE1 = {"cifar10": ([10, 20, 50, 100, 1000], 5, "quad", 50_000), "celeba": ([10, 20, 50, 100, 1000], 5, "uniform", 50_000)}
# dense bf16 tensor-core peak, TFLOP/s (vendor data sheets, SXM parts)
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "RTX 4090": 165.0}
MODES = {  # name: (bf16, channels_last, compile, cuda_graphs)
    "fp32": (False, False, False, False), "bf16": (True, False, False, False),
    "bf16+channels_last": (True, True, False, False), "compile": (False, False, True, False),
    "bf16+compile": (True, False, True, False), "bf16+channels_last+compile": (True, True, True, False),
    # CUDA graphs: diffusers' pipeline has no such option, so its column stays eager (same precision and layout)
    "bf16+cuda_graphs": (True, False, False, True), "bf16+channels_last+cuda_graphs": (True, True, False, True),
    "bf16+channels_last+compile+cuda_graphs": (True, True, True, True),
}


def diffusers_unet(config: dict):
    """A diffusers UNet2DModel in the DDPM layout of our config (google/ddpm-cifar10-32's block types)."""
    import diffusers

    levels = len(config["ch_mult"])
    attn = [config["resolution"] // 2**i in config["attn_resolutions"] for i in range(levels)]
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=config["resolution"], in_channels=config["in_channels"], out_channels=config["out_ch"],
        block_out_channels=tuple(config["ch"] * m for m in config["ch_mult"]), layers_per_block=config["num_res_blocks"],
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6,
        norm_num_groups=32, act_fn="silu", dropout=0.0, time_embedding_type="positional", mid_block_scale_factor=1,
    ).eval().requires_grad_(False)


def same_weights(name: str, device: torch.device):
    """(ours, diffusers') on `device` with identical weights, and our config."""
    config = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    theirs = diffusers_unet(config)
    with tempfile.TemporaryDirectory() as folder:
        theirs.save_pretrained(folder)
        ours = read_checkpoint(folder).model
    x = torch.randn(2, config["in_channels"], config["resolution"], config["resolution"])
    t = torch.tensor([10, 900])
    with torch.no_grad():
        error = (ours.eval()(x, t) - theirs(x, t).sample).abs().max().item()
    assert error < 1e-3, f"the two U-Nets disagree by {error}: the weight mapping is off"
    return ours.to(device).eval().requires_grad_(False), theirs.to(device), config


def flops_per_forward(model: torch.nn.Module, config: dict, device: torch.device) -> float:
    """FLOPs of one image's forward (2 per multiply-add), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, config["in_channels"], config["resolution"], config["resolution"], device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, torch.tensor([500], device=device))
    return float(counter.get_total_flops())


def diffusers_sampler(unet, batch: int, config: dict, steps: int, eta: float, device: torch.device, bf16: bool):
    """DDIMPipeline's loop: the paper's settings (no clipping, ᾱ := 1 before index 0), leading spacing."""
    import diffusers

    scheduler = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False,
                                        set_alpha_to_one=True, timestep_spacing="leading")
    shape = (batch, config["in_channels"], config["resolution"], config["resolution"])

    @torch.inference_mode()
    def run() -> None:
        generator = torch.Generator(device).manual_seed(0)
        image = torch.randn(shape, generator=generator, device=device)
        scheduler.set_timesteps(steps)
        with autocast_context(device, bf16):
            for t in scheduler.timesteps:
                eps = unet(image, t).sample
                image = scheduler.step(eps.float(), t, image, eta=eta, generator=generator).prev_sample
        synchronize(device)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="comma list of conf/model names (default cifar10; --full: +celeba)")
    parser.add_argument("--batches", default=None, help="comma list (default 1,8; --full: 1,2,4,...,256)")
    parser.add_argument("--modes", default=None, help=f"comma list of {', '.join(MODES)} (default fp32,bf16,"
                        "bf16+channels_last; --full: all)")
    parser.add_argument("--steps", type=int, default=None, help="S of each timed run (default 2; --full: 10)")
    parser.add_argument("--eta", type=float, default=0.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--no-diffusers", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak; default from the GPU's name")
    args = parser.parse_args()
    full = args.full
    models = (args.models or ("cifar10,celeba" if full else "cifar10")).split(",")
    batches = [int(b) for b in (args.batches or ("1,2,4,8,16,32,64,128,256" if full else "1,8")).split(",")]
    modes = (args.modes or (",".join(MODES) if full else "fp32,bf16,bf16+channels_last")).split(",")
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"--modes {','.join(unknown)}: expected some of {', '.join(MODES)}")
    steps = args.steps or (10 if full else 2)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if device.type == "cuda" and k in name), None)
    print(f"device: {name}; S = {steps}, η = {args.eta}; torch {torch.__version__}")

    for model_name in models:
        ours, theirs, config = same_weights(model_name, device)
        flops = flops_per_forward(ours, config, device)
        shape = (config["in_channels"], config["resolution"], config["resolution"])
        schedule, settings = NoiseSchedule.linear(), SamplerSettings(steps, args.eta)
        print(f"\n{model_name}: {sum(p.numel() for p in ours.parameters()):,} parameters, "
              f"{flops / 1e9:.1f} GFLOP per image and network evaluation")
        print("| batch | mode | ours images/s | ours NFE/s | diffusers images/s | ours / diffusers |"
              + (" % of bf16 peak |" if peak else ""))
        print("|---|---|---|---|---|---|" + ("---|" if peak else ""))
        best_nfe_per_s = 0.0
        for mode in modes:
            bf16, channels_last, compile_, graphs = MODES[mode]
            if graphs and device.type != "cuda":
                continue
            if compile_:
                torch._dynamo.reset()
            net = fast_model(copy.deepcopy(ours), device, compile=compile_, channels_last=channels_last, bf16=bf16,
                             cuda_graphs=graphs)
            unet = copy.deepcopy(theirs)
            if channels_last:
                unet = unet.to(memory_format=torch.channels_last)
            if compile_:
                unet = torch.compile(unet)
            for batch in batches:
                def run_ours() -> None:
                    generate(net, schedule, settings, range(batch), 0, shape, device, bf16)
                    synchronize(device)
                runs = {"ours": run_ours}
                if not args.no_diffusers:
                    runs["diffusers"] = diffusers_sampler(unet, batch, config, steps, args.eta, device, bf16)
                seconds = timed(runs, device, args.repeats)
                images_per_s = batch / seconds["ours"]
                nfe_per_s = images_per_s * settings.nfe(schedule)
                best_nfe_per_s = max(best_nfe_per_s, nfe_per_s)
                theirs_per_s = batch / seconds["diffusers"] if "diffusers" in seconds else float("nan")
                row = (f"| {batch} | {mode} | {images_per_s:.2f} | {nfe_per_s:.1f} | {theirs_per_s:.2f} | "
                       f"{images_per_s / theirs_per_s:.2f} |")
                if peak:
                    row += f" {100 * nfe_per_s * flops / (peak * 1e12):.1f} |"
                print(row, flush=True)
        if model_name in TABLE1:
            s_values, columns, skip, num = TABLE1[model_name]
            total = num * columns * sum(SamplerSettings(s, 0.0, skip).nfe(schedule) for s in s_values)
            print(f"Table 1 grid ({model_name}): {total:.3g} network evaluations = "
                  f"{total / best_nfe_per_s / 3600:.1f} hours on this device at the best rate above "
                  f"({best_nfe_per_s:.0f} NFE/s)")


if __name__ == "__main__":
    main()
