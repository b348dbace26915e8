"""Loading every supported checkpoint format into our UNet, refusing pickled code, converting, and the registry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch.optim.swa_utils import AveragedModel

from ddim.convert import main as convert_main
from ddim.models import (
    KNOWN_WEIGHTS,
    CheckpointError,
    CheckpointMismatchError,
    UNet,
    UnsafeCheckpointError,
    count_parameters,
    load_pretrained,
    read_checkpoint,
    resolve_pretrained,
)
from ddim.models.checkpoints import DIFFUSERS_KEY_TABLE, diffusers_key_to_ours

ROOT = Path(__file__).resolve().parents[2]
# attention on level 1 at 16x16, so the resolution inferred from shapes (first attention level at 16x16) is 32
TINY = dict(in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[16], dropout=0.0,
            resolution=32)
ARCHITECTURE = ("in_channels", "out_ch", "ch", "ch_mult", "num_res_blocks", "attn_resolutions", "resolution")
SCHEDULE = {"name": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02}


def tiny(seed: int) -> UNet:
    torch.manual_seed(seed)
    return UNet(**TINY).eval()


def outputs(model: torch.nn.Module, x: torch.Tensor | None = None, t: torch.Tensor | None = None) -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)
    x = torch.randn(2, 3, 16, 16, generator=gen) if x is None else x
    t = torch.tensor([7, 870]) if t is None else t
    with torch.no_grad():
        return model.eval()(x, t)


def perturbed(model: UNet, seed: int) -> dict[str, torch.Tensor]:
    """A state dict close to `model`'s but different, like EMA weights next to the raw ones."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in model.state_dict().items()}


def with_state(state: dict[str, torch.Tensor]) -> UNet:
    model = UNet(**TINY)
    model.load_state_dict(state)
    return model.eval()


# (a) bare state dicts ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".ckpt", ".pth", ".pt", ".safetensors"])
def test_bare_state_dict(tmp_path, suffix):
    model = tiny(0)
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        save_file(model.state_dict(), str(path))
    else:
        torch.save(model.state_dict(), path)
    loaded = read_checkpoint(path)
    assert loaded.source == "state_dict" and loaded.schedule is None
    assert {k: loaded.model_config[k] for k in ARCHITECTURE} == {k: TINY[k] for k in ARCHITECTURE}
    assert not loaded.model.training
    torch.testing.assert_close(outputs(loaded.model), outputs(model), rtol=0, atol=0)


def test_bare_state_dict_saved_from_dataparallel_and_with_a_given_resolution(tmp_path):
    model = tiny(0)
    torch.save(torch.nn.DataParallel(model).state_dict(), tmp_path / "dp.pth")
    loaded = read_checkpoint(tmp_path / "dp.pth", model_config={"resolution": 64})
    assert loaded.model_config["resolution"] == 64 and loaded.model_config["attn_resolutions"] == [32]
    torch.testing.assert_close(outputs(loaded.model), outputs(model), rtol=0, atol=0)


# (b) this project's Lightning checkpoint ---------------------------------------------------------------------------

def lightning_checkpoint(raw: UNet, ema_state: dict[str, torch.Tensor]) -> dict:
    """The shape of a checkpoint of ddim.training.DiffusionModule: model.*, ema.module.* (AveragedModel), hparams."""
    ema = AveragedModel(raw, use_buffers=True)
    ema.module.load_state_dict(ema_state)
    state = {f"model.{k}": v for k, v in raw.state_dict().items()}
    state.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    hparams = {"model": dict(TINY), "schedule": dict(SCHEDULE), "lr": 2e-4, "ema_decay": 0.9999,
               "data": {"name": "cifar10", "root": "data/cifar10", "resolution": 32}}
    return {"state_dict": state, "hyper_parameters": hparams, "epoch": 0, "global_step": 10,
            "pytorch-lightning_version": "2.5.0"}


@pytest.mark.slow
def test_lightning_checkpoint_picks_ema_unless_told(tmp_path):
    raw = tiny(0)
    ema_state = perturbed(raw, 1)
    ckpt = lightning_checkpoint(raw, ema_state)
    assert "ema.n_averaged" in ckpt["state_dict"] and "ema.module.conv_in.weight" in ckpt["state_dict"]
    torch.save(ckpt, tmp_path / "last.ckpt")
    loaded = read_checkpoint(tmp_path / "last.ckpt")
    assert loaded.source == "lightning" and loaded.schedule == SCHEDULE
    assert loaded.extra["data"]["name"] == "cifar10" and loaded.model_config == UNet(**TINY).config
    torch.testing.assert_close(outputs(loaded.model), outputs(with_state(ema_state)), rtol=0, atol=0)
    raw_loaded = load_pretrained(tmp_path / "last.ckpt", ema=False)
    assert not raw_loaded.training
    torch.testing.assert_close(outputs(raw_loaded), outputs(raw), rtol=0, atol=0)
    assert not torch.allclose(outputs(raw_loaded), outputs(loaded.model))


def test_module_state_dict_without_the_lightning_wrapper(tmp_path):
    raw = tiny(0)
    ema_state = perturbed(raw, 1)
    torch.save(lightning_checkpoint(raw, ema_state)["state_dict"], tmp_path / "module.pt")
    loaded = read_checkpoint(tmp_path / "module.pt")
    assert loaded.source == "lightning" and loaded.model_config["ch_mult"] == [1, 2]
    torch.testing.assert_close(outputs(loaded.model), outputs(with_state(ema_state)), rtol=0, atol=0)


def test_lightning_checkpoint_without_ema_weights_says_so(tmp_path):
    ckpt = lightning_checkpoint(tiny(0), perturbed(tiny(0), 1))
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    torch.save(ckpt, tmp_path / "noema.ckpt")
    with pytest.raises(CheckpointError, match="no 'ema.module.\\*' weights; pass ema=False"):
        read_checkpoint(tmp_path / "noema.ckpt")
    read_checkpoint(tmp_path / "noema.ckpt", ema=False)


# (c) the official DDIM training checkpoint -------------------------------------------------------------------------

def official_checkpoint(raw: UNet, ema_state: dict[str, torch.Tensor] | None) -> list:
    """[model_state, optimizer_state, epoch, step, ema_state] as ermongroup/ddim saves it: the model wrapped in
    DataParallel (module.* keys), the EMA helper's shadow dict of parameters (no prefix)."""
    wrapped = torch.nn.DataParallel(raw)
    optimizer = torch.optim.Adam(wrapped.parameters(), lr=2e-4)
    wrapped(torch.randn(1, 3, 16, 16), torch.tensor([5])).square().mean().backward()
    optimizer.step()  # a real Adam state: tensors for exp_avg, exp_avg_sq, step
    optimizer.zero_grad()
    states = [wrapped.state_dict(), optimizer.state_dict(), 3, 1000]
    return states + [ema_state] if ema_state is not None else states


@pytest.mark.slow
@pytest.mark.parametrize("ema_prefix", ["", "module."])
def test_official_list_picks_the_ema_entry(tmp_path, ema_prefix):
    raw = tiny(0)
    ema_state = perturbed(raw, 1)
    states = official_checkpoint(raw, {ema_prefix + k: v for k, v in ema_state.items()})
    assert all(k.startswith("module.") for k in states[0])
    torch.save(states, tmp_path / "ckpt.pth")
    loaded = read_checkpoint(tmp_path / "ckpt.pth")
    assert loaded.source == "official_ddim" and loaded.extra == {"epoch": 3, "step": 1000}
    torch.testing.assert_close(outputs(loaded.model), outputs(with_state(ema_state)), rtol=0, atol=0)
    raw_loaded = load_pretrained(tmp_path / "ckpt.pth", ema=False)
    torch.testing.assert_close(outputs(raw_loaded), outputs(raw), rtol=0, atol=0)
    assert not torch.allclose(outputs(raw_loaded), outputs(loaded.model))


def test_official_list_without_ema_needs_ema_false(tmp_path):
    raw = tiny(0)
    torch.save(official_checkpoint(raw, None), tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointError, match="no EMA state .* pass ema=False"):
        read_checkpoint(tmp_path / "ckpt.pth")
    torch.testing.assert_close(outputs(load_pretrained(tmp_path / "ckpt.pth", ema=False)), outputs(raw))


# (d) diffusers UNet2DModel in the DDPM layout ----------------------------------------------------------------------

def ddpm_layout_diffusers_model():
    """google/ddpm-cifar10-32's layout (DownBlock2D / AttnDownBlock2D, single-head attention, padding 0, [sin, cos]
    embedding with freq_shift 1, GroupNorm eps 1e-6), small: 3 levels of 32/64/64 channels, attention at 8x8."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    model = diffusers.UNet2DModel(
        sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), attention_head_dim=None, downsample_padding=0,
        flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6, norm_num_groups=32, act_fn="silu", dropout=0.0,
        center_input_sample=False, time_embedding_type="positional", mid_block_scale_factor=1,
    )
    with torch.no_grad():  # random everything, so that no default (zero) initialisation hides a wrong mapping
        for p in model.parameters():
            p.copy_(0.15 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def diffusers_folder(tmp_path_factory):
    model = ddpm_layout_diffusers_model()
    folder = tmp_path_factory.mktemp("ddpm-tiny")
    model.save_pretrained(folder)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([0, 421, 999])
    with torch.no_grad():
        expected = model(x, t).sample
    return folder, x, t, expected


def assert_relative_close(got: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    error = (got - expected).abs().max() / expected.abs().max()
    assert error < tol, f"relative error {error:.3g}"


def test_diffusers_folder_gives_the_diffusers_outputs(diffusers_folder):
    folder, x, t, expected = diffusers_folder
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    loaded = read_checkpoint(folder)
    assert loaded.source == "diffusers"
    assert {k: loaded.model_config[k] for k in ARCHITECTURE} == {
        "in_channels": 3, "out_ch": 3, "ch": 32, "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [8],
        "resolution": 16}
    assert_relative_close(outputs(loaded.model, x, t), expected)
    # the weights file itself, with config.json next to it, reads the same
    assert_relative_close(outputs(load_pretrained(folder / "diffusion_pytorch_model.safetensors"), x, t), expected)


def test_diffusers_bin_and_pre_attention_class_names(diffusers_folder, tmp_path):
    folder, x, t, expected = diffusers_folder
    renames = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    old = {}
    for key, value in load_file(str(folder / "diffusion_pytorch_model.safetensors")).items():
        for new_name, old_name in renames.items():
            key = key.replace(new_name, old_name)
        old[key] = value
    assert any(".proj_attn." in k for k in old)
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    torch.save(old, tmp_path / "diffusion_pytorch_model.bin")
    assert_relative_close(outputs(load_pretrained(tmp_path), x, t), expected)


def test_diffusers_key_table_covers_every_weight(diffusers_folder):
    folder, *_ = diffusers_folder
    keys = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    mapped = {diffusers_key_to_ours(k, 3) for k in keys}
    assert None not in mapped and len(mapped) == len(keys) == len(UNet(**{**TINY, "ch_mult": [1, 2, 2],
                                                                           "attn_resolutions": [8],
                                                                           "resolution": 16}).state_dict())
    assert diffusers_key_to_ours("up_blocks.0.upsamplers.0.conv.weight", 3) == "up.2.upsample.conv.weight"
    assert diffusers_key_to_ours("down_blocks.1.resnets.0.conv_shortcut.bias", 3) == "down.1.block.0.nin_shortcut.bias"
    assert "to_out.0 | proj_attn -> proj_out" in DIFFUSERS_KEY_TABLE


@pytest.mark.parametrize("field,value", [
    ("downsample_padding", 1), ("flip_sin_to_cos", True), ("freq_shift", 0), ("attention_head_dim", 8),
    ("up_block_types", ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"]), ("resnet_time_scale_shift", "scale_shift"),
    ("mid_block_type", None), ("freq_shift", "DELETE"),
])
def test_diffusers_config_that_cannot_map_names_the_field(diffusers_folder, tmp_path, field, value):
    folder, *_ = diffusers_folder
    config = json.loads((folder / "config.json").read_text())
    if value == "DELETE":
        del config[field]  # UNet2DModel's default (0) applies
    else:
        config[field] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    os.symlink(folder / "diffusion_pytorch_model.safetensors", tmp_path / "diffusion_pytorch_model.safetensors")
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(tmp_path)
    assert f"{field}=" in str(info.value) and "\n" not in str(info.value)


def test_converted_diffusers_model_keeps_the_outputs(diffusers_folder, tmp_path):
    folder, x, t, expected = diffusers_folder
    assert convert_main([str(folder), str(tmp_path / "ddpm.ckpt")]) == 0
    converted = read_checkpoint(tmp_path / "ddpm.ckpt")
    assert converted.source == "lightning" and converted.extra["source"] == "diffusers"
    assert_relative_close(outputs(converted.model, x, t), expected)


# errors --------------------------------------------------------------------------------------------------------------

def test_wrong_architecture_lists_missing_and_unexpected_keys(tmp_path):
    state = tiny(0).state_dict()
    del state["down.1.attn.0.q.bias"]
    state["down.1.attn.0.extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        read_checkpoint(tmp_path / "odd.pth")
    message = str(info.value)
    assert "1 missing keys [down.1.attn.0.q.bias]" in message
    assert "1 unexpected keys [down.1.attn.0.extra.weight]" in message and "\n" not in message


def test_checkpoint_claiming_another_architecture_lists_the_mismatch(tmp_path):
    ckpt = lightning_checkpoint(tiny(0), tiny(0).state_dict())
    ckpt["hyper_parameters"]["model"]["ch_mult"] = [1, 2, 2]
    torch.save(ckpt, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointMismatchError) as info:
        read_checkpoint(tmp_path / "bad.ckpt")
    message = str(info.value)
    assert "missing keys [down.1.downsample.conv.weight" in message and "more)" in message
    assert "shape mismatches" in message and "\n" not in message


class Payload:
    """Runs a shell command when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class TaggedStateDict(dict):
    """A harmless custom class: still not loadable without full unpickling."""


def test_pickle_with_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "payload-ran"
    torch.save({"conv_in.weight": torch.zeros(1), "payload": Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(tmp_path / "evil.pt")
    assert "trust_pickle=True" in str(info.value) and "full unpickling" in str(info.value)
    assert "system" in str(info.value) and not marker.exists()


def test_custom_classes_need_trust_pickle(tmp_path):
    model = tiny(0)
    torch.save(TaggedStateDict(model.state_dict()), tmp_path / "tagged.pt")
    with pytest.raises(UnsafeCheckpointError, match="trust_pickle"):
        read_checkpoint(tmp_path / "tagged.pt")
    trusted = load_pretrained(tmp_path / "tagged.pt", trust_pickle=True)
    torch.testing.assert_close(outputs(trusted), outputs(model), rtol=0, atol=0)


def test_missing_and_unreadable_files_are_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        read_checkpoint(tmp_path / "nope.ckpt")
    assert str(tmp_path / "nope.ckpt") in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch file"):
        read_checkpoint(tmp_path / "junk.ckpt")
    torch.save({"optimizer": {"lr": 1.0}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a checkpoint this loader knows"):
        read_checkpoint(tmp_path / "other.ckpt")


# conversion ----------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_convert_cli_round_trip_of_an_official_checkpoint(tmp_path):
    raw = tiny(0)
    ema_state = perturbed(raw, 1)
    torch.save(official_checkpoint(raw, ema_state), tmp_path / "ckpt.pth")
    dst = tmp_path / "out" / "converted.ckpt"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-m", "ddim.convert", str(tmp_path / "ckpt.pth"), str(dst)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dst.parent.iterdir()) == ["converted.ckpt"]  # no temp file left behind
    ckpt = torch.load(dst, map_location="cpu", weights_only=True)
    hparams = ckpt["hyper_parameters"]
    assert hparams["schedule"] == SCHEDULE and hparams["source"] == "official_ddim"
    assert hparams["converted_from"] == str(tmp_path / "ckpt.pth")
    assert int(ckpt["state_dict"]["ema.n_averaged"]) == 0
    assert {k for k in ckpt["state_dict"] if k.startswith("model.")} == {f"model.{k}" for k in raw.state_dict()}
    source = read_checkpoint(tmp_path / "ckpt.pth")
    converted = read_checkpoint(dst)
    assert converted.model_config == source.model_config
    torch.testing.assert_close(outputs(converted.model), outputs(source.model), rtol=0, atol=0)
    torch.testing.assert_close(outputs(load_pretrained(dst, ema=False)), outputs(source.model), rtol=0, atol=0)


def test_convert_no_ema_and_errors(tmp_path, capsys):
    raw = tiny(0)
    torch.save(official_checkpoint(raw, perturbed(raw, 1)), tmp_path / "ckpt.pth")
    assert convert_main([str(tmp_path / "ckpt.pth"), str(tmp_path / "raw.ckpt"), "--no-ema"]) == 0
    torch.testing.assert_close(outputs(load_pretrained(tmp_path / "raw.ckpt")), outputs(raw), rtol=0, atol=0)
    assert convert_main([str(tmp_path / "missing.pth"), str(tmp_path / "x.ckpt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "missing.pth" in err[0]
    assert not (tmp_path / "x.ckpt").exists()


# the registry of published weights -----------------------------------------------------------------------------------

def test_resolve_pretrained_names_the_file_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        resolve_pretrained("cifar10", tmp_path, download=False)  # tests/models/test_download.py downloads
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "ema_diffusion_cifar10_model" / "model-790000.ckpt") in message
    assert KNOWN_WEIGHTS["cifar10"].url in message and "ckpt=hf://google/ddpm-cifar10-32" in message
    with pytest.raises(ValueError, match="expected one of cifar10, celeba, lsun_church, lsun_bedroom"):
        resolve_pretrained("imagenet", tmp_path)


def test_resolve_pretrained_finds_and_verifies_the_file(tmp_path, monkeypatch):
    spec = KNOWN_WEIGHTS["cifar10"]
    path = tmp_path / spec.file
    path.parent.mkdir(parents=True)
    path.write_bytes(b"stand-in weights")
    with pytest.raises(ValueError, match="md5 .* does not match the published 1fa350b9"):
        resolve_pretrained("cifar10", tmp_path)
    digest = hashlib.md5(b"stand-in weights").hexdigest()
    monkeypatch.setitem(KNOWN_WEIGHTS, "cifar10", dataclasses.replace(spec, md5=digest))
    monkeypatch.setenv("DDIM_WEIGHTS", str(tmp_path))
    assert resolve_pretrained("cifar10") == path
    # the non-EMA file is a separate download
    with pytest.raises(FileNotFoundError, match="diffusion_cifar10_model/model-790000.ckpt"):
        resolve_pretrained("cifar10", ema=False, download=False)


def test_resolve_pretrained_accepts_the_diffusers_folder(tmp_path):
    folder = tmp_path / "google" / "ddpm-church-256"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert resolve_pretrained("lsun_church", tmp_path) == folder


def test_registry_matches_the_paper_and_the_configs():
    counts = {"cifar10": 35_746_307, "celeba": 78_700_803}
    for name, spec in KNOWN_WEIGHTS.items():
        assert spec.name == name and spec.model["resolution"] == spec.resolution
        assert spec.skip == ("quad" if name == "cifar10" else "uniform")
        assert spec.sha256 is None or len(spec.sha256) == 64
        with torch.device("meta"):
            model = UNet(**spec.model)
        if name in counts:
            assert count_parameters(model) == counts[name]
        on_disk = yaml.safe_load((ROOT / "conf" / "pretrained" / f"{name}.yaml").read_text())
        assert {k: on_disk[k] for k in ("name", "file", "dataset", "resolution", "skip", "model")} == {
            "name": spec.name, "file": spec.file, "dataset": spec.dataset, "resolution": spec.resolution,
            "skip": spec.skip, "model": spec.model}
    assert KNOWN_WEIGHTS["lsun_bedroom"].model["ch_mult"] == [1, 1, 2, 2, 4, 4]
    assert KNOWN_WEIGHTS["lsun_church"].model["dropout"] == 0.0


@pytest.mark.parametrize("name", list(KNOWN_WEIGHTS))
def test_evaluate_config_composes_with_each_pretrained_group(tmp_path, name):
    from tests.helpers import compose_config

    cfg = compose_config("evaluate", tmp_path, [f"pretrained={name}"])
    assert cfg.pretrained.name == name and cfg.pretrained.skip == KNOWN_WEIGHTS[name].skip
    assert cfg.pretrained.root is None and cfg.pretrained.download is True
