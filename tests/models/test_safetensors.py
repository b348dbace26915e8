"""python -m ddim.convert SRC DST.safetensors: the weights with the UNet arguments and the schedule as JSON metadata,
read back by read_checkpoint and by evaluate.py ckpt= to the same outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from ddim.convert import main as convert_main
from ddim.models import CheckpointError, UNet, read_checkpoint

from .test_pretrained import lightning_checkpoint, outputs, perturbed

# what shapes cannot tell: attention on level 0 at 32x32 means resolution 32 (shapes alone would say 16), and the
# norm's groups and eps; a schedule other than the default
CONFIG = dict(in_channels=3, out_ch=3, ch=16, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[32], dropout=0.1,
              resolution=32, norm_groups=8, norm_eps=1e-5)
SCHEDULE = {"name": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.03}


@pytest.fixture
def source(tmp_path):
    """One of our checkpoints with raw and (different) EMA weights, CONFIG and SCHEDULE in its hyper-parameters."""
    torch.manual_seed(0)
    raw = UNet(**CONFIG).eval()
    ema_state = perturbed(raw, 1)
    ckpt = lightning_checkpoint(raw, ema_state)
    ckpt["hyper_parameters"].update(model=dict(CONFIG), schedule=dict(SCHEDULE))
    torch.save(ckpt, tmp_path / "last.ckpt")
    return tmp_path / "last.ckpt", raw, ema_state


def ema_model(ema_state: dict[str, torch.Tensor]) -> UNet:
    model = UNet(**CONFIG)
    model.load_state_dict(ema_state)
    return model.eval()


def test_convert_to_safetensors_round_trip(source, tmp_path):
    src, raw, ema_state = source
    dst = tmp_path / "out" / "model.safetensors"
    assert convert_main([str(src), str(dst)]) == 0
    assert sorted(p.name for p in dst.parent.iterdir()) == ["model.safetensors"]  # no temp file left behind
    with safe_open(str(dst), framework="pt") as f:
        metadata = f.metadata()
        assert set(f.keys()) == set(raw.state_dict())  # one set of weights, our names
    assert json.loads(metadata["model"]) == UNet(**CONFIG).config and json.loads(metadata["schedule"]) == SCHEDULE
    assert metadata["source"] == "lightning" and metadata["converted_from"] == str(src)
    loaded = read_checkpoint(dst)
    assert loaded.source == "safetensors" and loaded.schedule == SCHEDULE and not loaded.model.training
    assert loaded.model_config == UNet(**CONFIG).config  # resolution, groups, eps from the metadata
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(9))
    t = torch.tensor([11, 905])
    expected = outputs(ema_model(ema_state), x, t)
    torch.testing.assert_close(outputs(loaded.model, x, t), expected, rtol=0, atol=0)
    # --no-ema writes the raw weights
    assert convert_main([str(src), str(tmp_path / "raw.safetensors"), "--no-ema"]) == 0
    torch.testing.assert_close(outputs(read_checkpoint(tmp_path / "raw.safetensors").model, x, t), outputs(raw, x, t),
                               rtol=0, atol=0)


def test_evaluate_ckpt_reads_the_safetensors(source, tmp_path):
    from ddim.evaluation.pipeline.cell import load_model
    from ddim.evaluation.pipeline.task import plan_from_config
    from tests.helpers import compose_config

    src, _, ema_state = source
    dst = tmp_path / "model.safetensors"
    assert convert_main([str(src), str(dst)]) == 0
    cfg = compose_config("evaluate", tmp_path / "eval", [f"ckpt={dst}", "dataset=digits", "wandb=none"])
    plan = plan_from_config(cfg, str(tmp_path / "eval"))
    model, schedule, _ = load_model(plan)
    assert model.config["resolution"] == 32
    assert float(schedule.betas[-1]) == pytest.approx(SCHEDULE["beta_end"])
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(outputs(model, x, torch.tensor([500])),
                               outputs(ema_model(ema_state), x, torch.tensor([500])), rtol=0, atol=0)


def test_damaged_safetensors_is_one_line(source, tmp_path):
    src, *_ = source
    dst = tmp_path / "model.safetensors"
    assert convert_main([str(src), str(dst)]) == 0
    data = dst.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(dst)
    assert str(info.value).startswith(f"{dst}: not a readable safetensors file, truncated or corrupt")
    assert "\n" not in str(info.value)


def test_safetensors_with_a_model_that_is_no_json_says_so(tmp_path):
    from safetensors.torch import save_file

    save_file(UNet(**CONFIG).state_dict(), str(tmp_path / "odd.safetensors"), metadata={"model": "{not json"})
    with pytest.raises(CheckpointError, match="metadata 'model' is not JSON"):
        read_checkpoint(tmp_path / "odd.safetensors")
