"""How a cell's τ is given: a named spacing, an explicit sampler.timesteps list, or a searched file; each checked
when the settings are made, and recorded in the cell's key."""

import pytest
import torch

from ddim.diffusion import NoiseSchedule, make_timesteps
from ddim.errors import InputError
from ddim.evaluation.pipeline.plan import CellPlan
from ddim.sampling import SamplerSettings, generate
from ddim.models import UNet

SCHEDULE = NoiseSchedule.linear()
SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def model() -> UNet:
    torch.manual_seed(0)
    return UNet(in_channels=1, out_ch=1, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
                resolution=8).eval().requires_grad_(False)


@pytest.mark.parametrize("skip", ["quad", "logsnr", "edm"])
@pytest.mark.parametrize("method, eta", [("ddim", 0.5), ("dpmpp_2m", 0.0)])
def test_explicit_timesteps_give_the_same_images_as_the_equivalent_skip(model, skip, method, eta):
    named = SamplerSettings(6, eta, skip, clip_denoised=method == "ddim" or None, method=method)
    given = SamplerSettings(eta=eta, clip_denoised=method == "ddim" or None, method=method,
                            timesteps=make_timesteps(1000, 6, skip, SCHEDULE.alphas_cumprod))
    assert (given.steps, given.skip) == (len(named.trajectory(SCHEDULE)), "timesteps")
    assert given.trajectory(SCHEDULE) == named.trajectory(SCHEDULE)
    first = generate(model, SCHEDULE, named, range(3), seed=2, shape=SHAPE)
    torch.testing.assert_close(generate(model, SCHEDULE, given, range(3), seed=2, shape=SHAPE), first, rtol=0, atol=0)


def test_a_given_trajectory_is_part_of_the_cell_key_and_a_named_one_is_not(tmp_path):
    def key(sampler):
        return CellPlan(ckpt=str(tmp_path), sampler=sampler, out_dir=str(tmp_path), dataset={"name": "digits"},
                        extractor="x").image_key

    assert "timesteps" not in key(SamplerSettings(10, skip="edm"))
    assert key(SamplerSettings(timesteps=[0, 50, 90]))["timesteps"] == [0, 50, 90]
    assert key(SamplerSettings(timesteps=[0, 50, 90])) != key(SamplerSettings(timesteps=[0, 40, 90]))


@pytest.mark.parametrize("kwargs, message", [
    ({"timesteps": [3, 1]}, r"^sampler\.timesteps=\[3, 1\]; expected a strictly increasing list of network indices"),
    ({"skip": "karras"}, r"^sampler\.skip='karras'; expected one of uniform, quad, trailing, linspace, logsnr, edm, "
                         r"searched$"),
    ({"skip": "searched"}, r"^sampler\.skip=searched needs sampler\.trajectory_file=PATH"),
    ({"skip": "searched", "timesteps": [0, 5]}, r"both give τ; set one of them$"),
])
def test_bad_trajectory_settings_are_one_clear_line(kwargs, message):
    with pytest.raises(InputError, match=message):
        SamplerSettings(**kwargs)


def test_timesteps_beyond_the_models_T_are_refused_when_validated():
    settings = SamplerSettings(timesteps=[0, 500, 1000])
    with pytest.raises(InputError, match=r"^sampler\.timesteps=\[0, 500, 1000\]; .* in 0\.\.999$"):
        settings.validate(SCHEDULE)
    SamplerSettings(timesteps=[0, 500, 999]).validate(SCHEDULE)
