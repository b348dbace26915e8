"""Fréchet distances of one checkpoint's η = 0 and η = 1 samples in every layer of the digits classifier (issue 7):
the pixels, the two conv blocks and the 64-d penultimate layer that `fd_digits` uses.

    python bench/fd_layers.py CKPT [--skip uniform] [--steps 10 20 100] [--num-samples 1000] [--seeds 0 1 2]

Same x_T per image index as `evaluate.py` (seed 0 unless --seeds), the 1,437 training digits as reference, the images through
the uint8 boundary as the metric sees them. The `pen64` column reproduces `fd_digits` from results.md.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ddim.diffusion import NoiseSchedule
from ddim.evaluation.pipeline.cell import image_shape
from ddim.data.datasets import digits_arrays
from ddim.evaluation.metrics.features import DigitsClassifier, load_digits_classifier
from ddim.sampling import SamplerSettings, generate
from ddim.sampling import to_uint8
from ddim.evaluation.metrics.statistics import fid_from_stats
from ddim.models.checkpoints import DEFAULT_SCHEDULE, read_checkpoint


def layer_features(classifier: DigitsClassifier, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """[B, D] features per layer for images in [−1, 1]."""
    x = DigitsClassifier.preprocess(to_uint8(images))
    body = classifier.body
    with torch.inference_mode():
        return {"pixels_64": x.flatten(1), "conv2_1024": body[:5](x).flatten(1),
                "conv3_512": body[:8](x).flatten(1), "pen64 (fd_digits)": body(x)}


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().numpy(), b.double().numpy()
    return fid_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--skip", default="uniform")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 100])
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one row per seed: the seed-to-seed spread")
    args = parser.parse_args()
    loaded = read_checkpoint(args.ckpt)
    model, schedule = loaded.model.eval(), NoiseSchedule.from_config(loaded.schedule or DEFAULT_SCHEDULE)
    classifier = load_digits_classifier()
    reference = layer_features(classifier, digits_arrays("train")[0])
    print("| S | η | seed | " + " | ".join(reference) + " |\n|---|---|---|" + "---|" * len(reference))
    for steps in args.steps:
        for eta in (0.0, 1.0):
            for seed in args.seeds:
                images = generate(model, schedule, SamplerSettings(steps, eta, args.skip), range(args.num_samples),
                                  seed, image_shape(model))
                ours = layer_features(classifier, images)
                print(f"| {steps} | {eta:g} | {seed} | "
                      + " | ".join(f"{frechet(ours[k], reference[k]):.2f}" for k in reference) + " |", flush=True)


if __name__ == "__main__":
    main()
