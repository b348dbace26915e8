"""sampler.recompute_eps and sampler.threshold: checked when made, turned into the core's X0Clip, used by generate,
and part of a cell's image key only when they change images."""

import pytest
import torch

from ddim.diffusion import NoiseSchedule, sample
from ddim.diffusion.prediction import X0Clip
from ddim.diffusion.solvers import SOLVERS
from ddim.errors import InputError
from ddim.evaluation.pipeline.plan import CellPlan
from ddim.sampling import SamplerSettings, generate
from ddim.utils.noise import CounterNoise

from ..diffusion.gaussian_oracle import GaussianOracle

SCHEDULE = NoiseSchedule.linear()
WIDE = GaussianOracle(SCHEDULE, 0.3, 2.0)  # data far outside [−1, 1]: x̂0 is clipped on most steps


def test_the_settings_become_the_cores_x0_clip():
    assert SamplerSettings(10).x0_clip == X0Clip("none")
    assert SamplerSettings(10, eta="sigma_hat").x0_clip == X0Clip("clip")
    assert SamplerSettings(10, clip_denoised=True, recompute_eps=False).x0_clip == X0Clip("clip", recompute_eps=False)
    assert SamplerSettings(10, threshold=0.9, threshold_max=2.0).x0_clip == X0Clip("dynamic", 0.9, 2.0)


@pytest.mark.parametrize("kwargs,message", [
    ({"threshold": 1.5}, r"^sampler\.threshold=1\.5; expected a quantile in \(0, 1\]"),
    ({"threshold": 0.9, "threshold_max": 0}, r"^sampler\.threshold_max=0; expected a positive number$"),
    ({"threshold": 0.9, "clip_denoised": True}, r"both say what happens to x̂0; set one of them$"),
    ({"threshold": 0.9, "method": "plms"},
     r"^sampler\.threshold applies to method=ddim\|dpmpp_2m\|dpmpp_2s, not method=plms$"),
])
def test_bad_x0_options_are_one_line(kwargs, message):
    with pytest.raises(InputError, match=message):
        SamplerSettings(10, **kwargs)


@pytest.mark.parametrize("kwargs,x0_clip", [
    ({"clip_denoised": True, "recompute_eps": False}, X0Clip("clip", recompute_eps=False)),
    ({"threshold": 0.8, "threshold_max": 1.5}, X0Clip("dynamic", 0.8, 1.5)),
])
def test_generate_samples_with_the_x0_option(kwargs, x0_clip):
    """DDIM at η = 0.5: the same images as the core's sample given that X0Clip and the same noise."""
    settings = SamplerSettings(10, eta=0.5, **kwargs)
    got = generate(WIDE, SCHEDULE, settings, range(4), seed=3, shape=(2, 4, 4))
    noise = CounterNoise(3, range(4), (2, 4, 4), torch.device("cpu"), num_step_streams=settings.nfe(SCHEDULE))
    timesteps = settings.trajectory(SCHEDULE)
    expected = sample(WIDE, noise.latents(), SCHEDULE, timesteps, eta=0.5, generator=noise, clip_denoised=x0_clip)
    torch.testing.assert_close(got, expected.float())
    plain = generate(WIDE, SCHEDULE, SamplerSettings(10, eta=0.5, clip_denoised=True), range(4), seed=3, shape=(2, 4, 4))
    assert (got - plain).abs().max() > 1e-2


def test_the_image_key_names_the_x0_options_only_when_set(tmp_path):
    def key(sampler):
        return CellPlan(ckpt=str(tmp_path), sampler=sampler, out_dir=str(tmp_path), dataset={"name": "digits"},
                        extractor="x").image_key

    assert not {"recompute_eps", "threshold"} & set(key(SamplerSettings(10)))
    assert key(SamplerSettings(10, clip_denoised=True, recompute_eps=False))["recompute_eps"] is False
    assert key(SamplerSettings(10, threshold=0.9))["threshold"] == [0.9, 1.0]


@pytest.mark.parametrize("method", ["dpmpp_2m", "dpmpp_2s"])
def test_the_data_prediction_solvers_threshold_too(method):
    settings = SamplerSettings(10, method=method, threshold=0.8, threshold_max=1.5)
    got = generate(WIDE, SCHEDULE, settings, range(4), seed=3, shape=(2, 4, 4))
    x_T = CounterNoise(3, range(4), (2, 4, 4), torch.device("cpu"), num_step_streams=settings.nfe(SCHEDULE)).latents()
    expected = SOLVERS[method].sample(WIDE, x_T, SCHEDULE, settings.trajectory(SCHEDULE),
                                      x0_clip=X0Clip("dynamic", 0.8, 1.5))
    torch.testing.assert_close(got, expected.float())
    plain = generate(WIDE, SCHEDULE, SamplerSettings(10, method=method), range(4), seed=3, shape=(2, 4, 4))
    assert (got - plain).abs().max() > 1e-2
