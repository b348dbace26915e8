"""FID while training: a Lightning callback, attached from conf/callbacks/default.yaml by its `_target_` (training
never imports evaluation) and off unless callbacks.fid_every_n_steps=N.

Every N optimizer steps, rank 0 samples `num_samples` images from the EMA weights with a fixed x_T (image i depends
only on (seed, i): the counter-based noise of ddim.utils.noise, not the training stream), takes their Fréchet
distance to the training set's reference statistics (the cache evaluate.py uses and fills) and logs it as
`eval/<metric>` (fid, fd_digits_conv, ...) to every logger (W&B, CSV). The other ranks wait at the next step's
gradient all-reduce. Every RNG (torch's CPU and CUDA, numpy's, Python's) is as it was afterwards, so the weights a
run reaches do not depend on whether this ran (tests/evaluation/test_training_fid.py)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import numpy as np
import torch

from ddim.errors import InputError
from ddim.sampling import SamplerSettings, network_samples, to_uint8

log = logging.getLogger(__name__)


@contextmanager
def rng_untouched(device: torch.device) -> Iterator[None]:
    """Inside, anything may draw from the global RNGs; after, torch's (CPU and `device`'s CUDA), numpy's and
    Python's are restored."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


class FidDuringTraining(L.Callback):
    """Logs `eval/<metric>` every `every_n_steps` optimizer steps (0: off, the default). The extractor is fid.extractor's
    (auto: fd_digits_conv on digits, Inception FID elsewhere); `weights` and `cache_dir` as fid.weights and
    fid.cache_dir. `history` keeps (step, value) pairs."""

    def __init__(
        self, every_n_steps: int = 0, num_samples: int = 500, steps: int = 20, eta: float = 0.0,
        skip: str = "uniform", seed: int = 0, extractor: str = "auto", weights: str | None = None,
        cache_dir: str | None = None, batch_size: int = 250,
    ) -> None:
        for name, value, least in (("fid_every_n_steps", every_n_steps, 0), ("fid.num_samples", num_samples, 2),
                                   ("fid.batch_size", batch_size, 1), ("fid.steps", steps, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InputError(f"callbacks.{name}={value!r}; expected an integer >= {least}")
        self.settings = SamplerSettings(steps, eta, skip)  # η and skip are checked now (InputError)
        self.every_n_steps, self.num_samples, self.seed, self.batch_size = every_n_steps, num_samples, seed, batch_size
        self.extractor_option, self.weights, self.cache_dir = extractor, weights, cache_dir
        self.history: list[tuple[int, float]] = []
        self.seconds: list[float] = []  # of each evaluation: sampling, features and FD
        self._extractor = self._reference = None
        self.metric = ""
        self._last_step = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """The extractor and the reference statistics, before the first step: a wrong extractor name or weights file
        is one line now, not after N steps. On the device training runs on (the strategy's root device: the module
        is moved there only after setup, so pl_module.device is still the CPU here)."""
        if not self.every_n_steps or stage != "fit" or self._reference is not None:
            return
        from .metrics.features import DIGITS_CONV, INCEPTION, build_feature_extractor, metric_name
        from .pipeline.reference import training_set_reference

        data = dict(pl_module.hparams.get("data") or {})
        if not data.get("name") or data.get("resolution") is None:
            raise InputError("callbacks.fid_every_n_steps: the module's data config names no data set and resolution")
        name = self.extractor_option
        if name == "auto":
            name = DIGITS_CONV if data["name"] == "digits" else INCEPTION
        self.metric = metric_name(name)
        if not trainer.is_global_zero:
            return
        device = trainer.strategy.root_device
        with rng_untouched(device):
            self._extractor = build_feature_extractor(name, self.weights, device)
            reference = training_set_reference(data, self._extractor, name, self.cache_dir, self.batch_size)
        # only the moments: the features the cache also holds (50,000 × 2,048 float32, 0.4 GB) are KID's, not ours
        self._reference = (reference.mu, reference.sigma)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if not self.every_n_steps or step % self.every_n_steps or step == self._last_step or not trainer.is_global_zero:
            return
        self._last_step = step
        start = time.perf_counter()
        value = self.evaluate(pl_module)
        self.seconds.append(time.perf_counter() - start)
        self.history.append((step, value))
        # straight to the loggers: self.log would reach them only on steps that log_every_n_steps picks
        for logger in trainer.loggers:
            logger.log_metrics({f"eval/{self.metric}": value}, step=step)
        log.info("step %d: %s %.4f from %d EMA samples (%.1f s)", step, self.metric, value, self.num_samples,
                 self.seconds[-1])

    def samples(self, pl_module: L.LightningModule) -> torch.Tensor:
        """The EMA model's images for indices 0..num_samples−1, uint8, the same x_T at every evaluation."""
        return to_uint8(network_samples(pl_module.ema_model, pl_module.schedule, self.settings, range(self.num_samples),
                                        self.seed, pl_module.device, self.batch_size))

    def evaluate(self, pl_module: L.LightningModule) -> float:
        from .metrics.statistics import FeatureStats, extract_features, fid_from_stats

        with rng_untouched(pl_module.device):
            images = self.samples(pl_module)
            generated = FeatureStats()
            for start in range(0, len(images), self.batch_size):
                generated.update(extract_features(self._extractor, images[start : start + self.batch_size]))
            return fid_from_stats(generated.mu, generated.sigma, *self._reference)


__all__ = ["FidDuringTraining", "rng_untouched"]
