"""Training throughput: images/s of the real training task (the composed train config, its data module and
LightningModule), with each step split into data time (waiting for the batch) and step time (forward, backward,
optimizer, EMA), the first `--warmup` steps left out.

    python bench/train_throughput.py                                  # the demo: digits, batch 128, CPU
    python bench/train_throughput.py --steps 60 experiment=cifar10 trainer=gpu dataset.num_workers=8
    python bench/train_throughput.py --steps 60 --compile experiment=cifar10 trainer=gpu dataset.num_workers=8
    python bench/train_throughput.py --steps 60 --compile experiment=celeba trainer=gpu dataset.num_workers=8
    python bench/train_throughput.py --steps 60 --compile --synthetic experiment=cifar10 trainer=gpu   # no data on disk

Arguments after the flags are Hydra overrides of conf/train.yaml (trainer=gpu is bf16-mixed); the demo default is
experiment=demo_train. Checkpoints, sample grids and loggers are off: only the optimisation loop is timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from ddim.evaluation.pipeline import options  # noqa: F401  (registers the config schemas)
from ddim.training.train import build_module, check_model_fits_data

CONF = Path(__file__).resolve().parents[1] / "conf"


class StepTimer(L.Callback):
    """Data time: from the end of one batch to the start of the next (the loader's share); step time: from the start
    of a batch to its end (forward, backward, optimizer step, EMA update)."""

    def __init__(self) -> None:
        self.data: list[float] = []
        self.step: list[float] = []
        self.batch_sizes: list[int] = []
        self._end = self._start = None
        self.device = "CPU"

    def on_train_start(self, trainer, pl_module) -> None:
        # after fit() Lightning moves the module back to the CPU, so the device is read while training
        if pl_module.device.type == "cuda":
            self.device = torch.cuda.get_device_name(pl_module.device)

    def _sync(self, module: L.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()
        if self._end is not None:
            self.data.append(self._start - self._end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._end = time.perf_counter()
        self.step.append(self._end - self._start)
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        self.batch_sizes.append(int(x.shape[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5, help="first steps not counted (allocation, compilation)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the U-Net (nn.Module.compile)")
    parser.add_argument("--synthetic", action="store_true",
                        help="random images of the model's shape instead of the data set (a machine without the data)")
    args, overrides = parser.parse_known_args()
    overrides = overrides or ["experiment=demo_train"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, "logger=none"])
    out = tempfile.mkdtemp(prefix="train-bench-")
    with open_dict(cfg):
        cfg.paths.output_dir = out
        cfg.trainer.max_steps = args.steps
        cfg.trainer.enable_checkpointing = False
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
    L.seed_everything(cfg.seed)
    module = build_module(cfg)
    if args.synthetic:
        model = module.hparams.model
        images = torch.rand(2048, model["in_channels"], model["resolution"], model["resolution"]) * 2 - 1
        data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=cfg.dataset.batch_size,
                                           shuffle=True, drop_last=True)
    else:
        data = hydra.utils.instantiate(cfg.dataset)
        data.check_available()
        check_model_fits_data(module.hparams.model, data, cfg.dataset.name)
    if args.compile:
        module.model.compile()
    timer = StepTimer()
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[timer], logger=False)
    if args.synthetic:
        trainer.fit(module, train_dataloaders=data)
    else:
        trainer.fit(module, datamodule=data)

    data, step = timer.data[args.warmup:], timer.step[args.warmup + 1:]  # data[k] precedes step[k + 1]
    batch = statistics.median(timer.batch_sizes)
    per_step = statistics.median(step) + statistics.median(data)
    device = timer.device if timer.device != "CPU" else f"CPU, {torch.get_num_threads()} threads"
    source = "synthetic data" if args.synthetic else cfg.dataset.name
    print(f"device: {device}; {' '.join(overrides)}; {source}; precision {cfg.trainer.precision}; compile {args.compile}; "
          f"torch {torch.__version__}")
    print(f"{sum(p.numel() for p in module.model.parameters()):,} parameters; batch {batch}; "
          f"{len(step)} steps timed after {args.warmup + 1}")
    print("| images/s | ms/step (median) | data ms (median) | step ms (median) | data share |")
    print("|---|---|---|---|---|")
    print(f"| {batch / per_step:.1f} | {1e3 * per_step:.1f} | {1e3 * statistics.median(data):.2f} | "
          f"{1e3 * statistics.median(step):.1f} | {100 * statistics.median(data) / per_step:.1f} % |")


if __name__ == "__main__":
    sys.exit(main())
