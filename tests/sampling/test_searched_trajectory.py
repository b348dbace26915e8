"""The searched-trajectory file: written and read back whole, a bad one refused in one line, read by
sampler.skip=searched (a file or a folder of them), and written by python -m ddim.trajectory_search's task."""

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from ddim.diffusion import NoiseSchedule
from ddim.errors import InputError, MissingInputError
from ddim.models import UNet
from ddim.sampling import SamplerSettings, generate
from ddim.sampling.search import other_model_warning
from ddim.sampling.trajectory_file import SearchedTrajectory, read_trajectory_file, write_trajectory_file
from ddim.trajectory_search import run_search

FOUND = SearchedTrajectory([0, 37, 210, 999], "dpmpp_2m", "0123456789abcdef", 0.0125, 94, 3.5,
                           {"teacher_method": "dpmpp_2m", "fixed_spacing_costs_on_grid": {"quad": 0.02}})


def test_the_file_round_trips(tmp_path):
    path = write_trajectory_file(tmp_path / "dpmpp_2m_S4.json", FOUND)
    assert read_trajectory_file(path) == FOUND
    assert json.loads(path.read_text())["steps"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["dpmpp_2m_S4.json"]  # no temporary file left


def _record(**changes):
    record = {"format": "ddim-searched-trajectory/1", "steps": 4, "timesteps": [0, 37, 210, 999],
              "method": "dpmpp_2m", "model_hash": "x", "cost": 0.1, "search_nfe": 94, "search_seconds": 1.0}
    return json.dumps({k: v for k, v in {**record, **changes}.items() if v is not None})


@pytest.mark.parametrize("text, message", [
    ("{not json", r"not a JSON trajectory file"),
    ("[1, 2]", r"expected a JSON object with format 'ddim-searched-trajectory/1'"),
    (_record(format="other/1"), r"expected a JSON object with format"),
    (_record(cost=None, method=None), r"missing method, cost$"),
    (_record(timesteps=[5, 3]), r"timesteps=\[5, 3\]; expected a strictly increasing list"),
    (_record(steps=3), r"steps=3 but 4 timesteps$"),
])
def test_a_bad_file_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=rf"^sampler\.trajectory_file={path}: .*{message}") as caught:
        read_trajectory_file(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(MissingInputError, match=r"no such file"):
        read_trajectory_file(tmp_path / "missing.json")


def test_skip_searched_reads_the_file_or_a_folder_and_checks_method_and_steps(tmp_path):
    write_trajectory_file(tmp_path / "dpmpp_2m_S4.json", FOUND)
    for where in (tmp_path, tmp_path / "dpmpp_2m_S4.json"):
        settings = SamplerSettings(4, skip="searched", method="dpmpp_2m", trajectory_file=str(where))
        assert settings.trajectory(NoiseSchedule.linear()) == FOUND.timesteps
    with pytest.raises(InputError, match=r"was searched for method=dpmpp_2m steps=4, not method=ddim steps=4$"):
        SamplerSettings(4, skip="searched", method="ddim", trajectory_file=str(tmp_path / "dpmpp_2m_S4.json"))
    with pytest.raises(MissingInputError, match=r"ddim_S4\.json: no such file"):
        SamplerSettings(4, skip="searched", method="ddim", trajectory_file=str(tmp_path))
    # a fixed spacing ignores the file, so one sweep can mix skip=quad,searched
    assert SamplerSettings(4, skip="quad", trajectory_file=str(tmp_path)).given_timesteps is None


@pytest.mark.slow  # ~5 s: a U-Net at 32×32 (what a bare state dict is read as)
def test_the_search_task_writes_a_file_that_a_searched_cell_samples_with(tmp_path):
    torch.manual_seed(0)
    net = UNet(in_channels=1, out_ch=1, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0,
               resolution=8)
    ckpt = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), ckpt)  # read back as a plain state dict (32×32 is what it infers)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[2] / "conf"), version_base="1.3"):
        cfg = compose("trajectory_search", [f"ckpt={ckpt}", "sampler.method=ddim", "sampler.steps=3", "device=cpu",
                                            "search.teacher_steps=12", "search.num_latents=2"])
    path = run_search(cfg, tmp_path)
    found = read_trajectory_file(path)
    assert path == tmp_path / "ddim_S3.json" and found.method == "ddim" and found.steps == 3
    assert found.search_nfe == 12  # the teacher (dpmpp_2m: one evaluation a node) on the 12 logsnr indices, 999 one
    assert set(found.details["fixed_spacing_costs_on_grid"]) == {"uniform", "quad", "logsnr", "edm"}
    searched = SamplerSettings(3, skip="searched", trajectory_file=str(path))
    given = SamplerSettings(timesteps=found.timesteps)
    model = net.eval().requires_grad_(False)
    torch.testing.assert_close(generate(model, NoiseSchedule.linear(), searched, range(2), 0, (1, 32, 32)),
                               generate(model, NoiseSchedule.linear(), given, range(2), 0, (1, 32, 32)))


def test_a_trajectory_searched_on_another_checkpoint_is_named_in_a_warning(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()[:16]
    for model_hash, expected in ((digest, None), ("0" * 16, f"hash {'0' * 16}, not this checkpoint ({digest})")):
        write_trajectory_file(tmp_path / "dpmpp_2m_S4.json", dataclasses.replace(FOUND, model_hash=model_hash))
        settings = SamplerSettings(4, skip="searched", method="dpmpp_2m", trajectory_file=str(tmp_path))
        warning = other_model_warning(settings, ckpt)
        assert warning is None if expected is None else expected in warning
    assert other_model_warning(SamplerSettings(4, skip="quad"), ckpt) is None
