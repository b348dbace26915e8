"""A google/ddpm-cifar10-32-shaped pipeline folder (model_index.json, unet/, scheduler/) whose scheduler_config.json
says prediction_type=v_prediction: it loads as a v-network and samples what diffusers' own loop gives on the same
made-up weights."""

import json

import pytest
import torch

from ddim.convert import convert_checkpoint
from ddim.diffusion import NoiseSchedule, make_timesteps, sample
from ddim.diffusion.prediction import PREDICTIONS, as_eps_model
from ddim.models import CheckpointError, read_checkpoint
from ddim.models.unet import PREDICTIONS as UNET_PREDICTIONS

from .test_pretrained import ddpm_layout_diffusers_model


def _pipeline_folder(root, prediction_type: str):
    diffusers = pytest.importorskip("diffusers")
    unet = ddpm_layout_diffusers_model()
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                        beta_schedule="linear", clip_sample=False, set_alpha_to_one=True,
                                        prediction_type=prediction_type)
    folder = root / f"ddpm-tiny-{prediction_type}"
    diffusers.DDIMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    return folder, unet, scheduler


def test_a_v_prediction_pipeline_folder_samples_as_diffusers_does(tmp_path):
    folder, unet, scheduler = _pipeline_folder(tmp_path, "v_prediction")
    assert {"model_index.json", "unet", "scheduler"} <= {p.name for p in folder.iterdir()}
    loaded = read_checkpoint(folder)
    assert loaded.model.config["prediction"] == "v"
    schedule = NoiseSchedule.from_config(loaded.schedule)
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = sample(as_eps_model(loaded.model, schedule, "v"), x_T, schedule, make_timesteps(1000, 10, "uniform"))
        scheduler.set_timesteps(10)  # "leading": 900, 800, ..., 0, as our uniform τ
        x = x_T
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
        as_if_eps = sample(loaded.model, x_T, schedule, make_timesteps(1000, 10, "uniform"))
    error = (ours - x).abs().max() / x.abs().max()
    assert error < 1e-4, f"relative error {error:.3g}"
    assert (as_if_eps - x).abs().max() > 100 * (ours - x).abs().max()  # reading v as ε would be far off


def test_diffusers_own_pipeline_read_from_that_folder_makes_our_images(tmp_path):
    """DDIMPipeline.from_pretrained(folder)(generator=seed 0): its x_T is torch.randn from that generator."""
    diffusers = pytest.importorskip("diffusers")
    folder, _, _ = _pipeline_folder(tmp_path, "v_prediction")
    pipeline = diffusers.DDIMPipeline.from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    theirs = pipeline(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=10, eta=0.0,
                      output_type="np").images
    loaded = read_checkpoint(folder)
    schedule = NoiseSchedule.from_config(loaded.schedule)
    x_T = torch.randn((2, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = sample(as_eps_model(loaded.model, schedule, loaded.model.config["prediction"]), x_T, schedule,
                      make_timesteps(1000, 10, "uniform"))
    ours = (ours / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()  # the pipeline's output conversion
    assert abs(ours - theirs).max() < 1e-5  # measured 8e-7; the images' spread is 0.35


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_a_converted_v_folder_stays_a_v_network(tmp_path, suffix):
    folder, _, _ = _pipeline_folder(tmp_path, "v_prediction")
    convert_checkpoint(folder, tmp_path / f"ours{suffix}")
    assert read_checkpoint(tmp_path / f"ours{suffix}").model.config["prediction"] == "v"


def test_prediction_types_of_scheduler_configs(tmp_path):
    folder, _, _ = _pipeline_folder(tmp_path, "sample")
    assert read_checkpoint(folder).model.config["prediction"] == "x0"
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "prediction_type": "flow"}))
    with pytest.raises(CheckpointError, match=r"scheduler_config.json: prediction_type='flow'; expected one of epsilon"):
        read_checkpoint(folder)
    assert read_checkpoint(folder, model_config={"prediction": "eps"}).model.config["prediction"] == "eps"


def test_the_unet_knows_the_cores_prediction_types():
    assert UNET_PREDICTIONS == PREDICTIONS
