"""FID while training (callbacks.fid_every_n_steps): off by default; when on, it leaves the training stream as it
was (the same weights to the last bit), logs what an independent FD of the same samples gives, and on a short
digits run the logged FD falls."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg
import torch

from ddim.data.datasets import digits_arrays
from ddim.diffusion import NoiseSchedule
from ddim.errors import InputError
from ddim.evaluation.metrics.features import DigitsClassifier, FeatureExtractorDigitsConv
from ddim.evaluation.training_fid import FidDuringTraining
from ddim.models import UNet
from ddim.sampling import SamplerSettings, generate, to_uint8
from ddim.training.train import train

from ..helpers import tiny_train_config


def logged(run_dir) -> list[tuple[int, float]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [(int(r["step"]), float(r["eval/fd_digits_conv"])) for r in csv.DictReader(f) if r.get("eval/fd_digits_conv")]


def scipy_fd(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))


def test_the_callback_is_off_by_default_and_checks_its_values(tmp_path):
    cfg = tiny_train_config(tmp_path)
    assert cfg.callbacks.fid_every_n_steps == 0 and cfg.callbacks.fid.every_n_steps == 0
    with pytest.raises(InputError, match=r"callbacks.fid_every_n_steps=-1; expected an integer >= 0"):
        FidDuringTraining(every_n_steps=-1)
    with pytest.raises(InputError, match="eta"):
        FidDuringTraining(every_n_steps=5, eta=-1.0)


def test_setup_puts_the_extractor_on_the_device_training_runs_on(monkeypatch):
    """Lightning calls setup before it moves the module (still on the CPU) to the strategy's root device: the
    extractor and the reference statistics go where training will run, not where the module is at that moment."""
    import ddim.evaluation.metrics.features as features
    import ddim.evaluation.pipeline.reference as reference

    seen = {}
    monkeypatch.setattr(features, "build_feature_extractor", lambda name, weights, device: seen.setdefault("device", device))
    monkeypatch.setattr(reference, "training_set_reference", lambda *a, **k: SimpleNamespace(mu="mu", sigma="sigma"))
    trainer = SimpleNamespace(is_global_zero=True, strategy=SimpleNamespace(root_device=torch.device("meta")))
    module = SimpleNamespace(hparams={"data": {"name": "digits", "resolution": 8}}, device=torch.device("cpu"))
    callback = FidDuringTraining(every_n_steps=5)
    callback.setup(trainer, module, "fit")
    assert seen["device"] == torch.device("meta") and callback.metric == "fd_digits_conv"
    assert callback._reference == ("mu", "sigma")  # the moments only, not the cache's features


@pytest.mark.slow
def test_fd_while_training_leaves_the_weights_alone_and_logs_an_independent_fd(tmp_path):
    weights = tmp_path / "classifier.pt"
    torch.manual_seed(0)
    torch.save(DigitsClassifier().state_dict(), weights)  # untrained: the FD's plumbing is tested, not its meaning
    fid = ["callbacks.fid_every_n_steps=2", "callbacks.fid.num_samples=64", "callbacks.fid.steps=5",
           "callbacks.fid.batch_size=32", f"callbacks.fid.weights={weights}"]
    off = train(tiny_train_config(tmp_path / "off"))
    on = train(tiny_train_config(tmp_path / "on", *fid))
    a = torch.load(off["checkpoint"], map_location="cpu", weights_only=True)
    b = torch.load(on["checkpoint"], map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 4 and a["state_dict"].keys() == b["state_dict"].keys()
    assert max((a["state_dict"][k].double() - b["state_dict"][k].double()).abs().max().item()
               for k in a["state_dict"]) == 0.0
    assert a["optimizer_states"][0]["state"][0]["exp_avg"].equal(b["optimizer_states"][0]["state"][0]["exp_avg"])

    history = logged(tmp_path / "on")
    assert [step for step, _ in history] == [2, 4]
    # independently: step 4's EMA weights from the checkpoint, the same x_T, features, and scipy's sqrtm
    hparams = b["hyper_parameters"]
    model = UNet(**hparams["model"])
    model.load_state_dict({k[len("ema.module."):]: v for k, v in b["state_dict"].items() if k.startswith("ema.module.")})
    schedule = NoiseSchedule.from_config(hparams["schedule"])
    images = to_uint8(generate(model.eval(), schedule, SamplerSettings(5, 0.0, "uniform"), range(64), 0, (1, 8, 8)))
    extractor = FeatureExtractorDigitsConv("digits-classifier-conv", ["1024"], feature_extractor_weights_path=str(weights))
    with torch.no_grad():
        generated = extractor(images)[0].numpy()
        train_images = to_uint8(digits_arrays("train")[0])
        real = extractor(train_images)[0].numpy()
    assert history[-1][1] == pytest.approx(scipy_fd(generated, real), rel=1e-6)


@pytest.mark.slow
def test_a_short_digits_run_logs_a_falling_fd(tmp_path):
    # 180 steps of the tiny U-Net at batch 64 (~1 min on one CPU thread), fd_digits_conv of 200 EMA samples every 60:
    # measured 361, 196, 125 (and 107 at 240); from noise towards digits the distance must fall at every evaluation
    run = tiny_train_config(tmp_path, "trainer.max_steps=180", "dataset.batch_size=64", "module.lr=2e-3",
                            "module.warmup_steps=20", "module.ema_decay=0.9", "trainer.log_every_n_steps=50",
                            "callbacks.checkpoint.every_n_train_steps=1000", "callbacks.sample_grid.every_n_steps=1000",
                            "callbacks.fid_every_n_steps=60", "callbacks.fid.num_samples=200", "callbacks.fid.steps=10",
                            "callbacks.fid.batch_size=200")
    train(run)
    history = logged(tmp_path)
    assert [step for step, _ in history] == [60, 120, 180]
    values = [value for _, value in history]
    assert values[0] > values[1] > values[2] and values[2] < 0.6 * values[0], values
