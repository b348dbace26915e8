"""evaluate.py end to end on a checkpoint trained for a few steps (conftest.py's `checkpoint`): one cell, a 2 × 2
sweep, skipping, seeding, two processes, and the one-line errors."""

import csv
import json
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddim.diffusion import NoiseSchedule, make_timesteps
from ddim.evaluation.pipeline import cell as cell_module
from ddim.evaluation.pipeline.cell import run_cell
from ddim.evaluation.pipeline.options import GROUPS
from ddim.evaluation.pipeline.plan import CellPlan
from ddim.sampling import SamplerSettings, generate
from ddim.models import UNet
from ..helpers import ROOT

FAST_EVAL = ["eval.num_samples=24", "eval.batch_size=8", "eval.recon_samples=8", "fid.kid_subsets=5",
             "fid.kid_subset_size=8", "eval.figure_rows=2"]


def run_evaluate(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def plan_for(checkpoint: Path, out_dir: Path, sampler: SamplerSettings | None = None, recon_samples: int = 0,
             **options) -> CellPlan:
    """A small digits cell; `options` are eval/fid/fabric fields by name, each put into its own group."""
    groups: dict[str, dict] = {"eval": {"num_samples": 12, "batch_size": 5}, "fid": {"kid_subsets": 0}, "fabric": {}}
    for name, value in options.items():
        group = next(g for g in groups if name in {f.name for f in dataclasses.fields(GROUPS[g])})
        groups[group][name] = value
    return CellPlan(ckpt=str(checkpoint), out_dir=str(out_dir), dataset={"name": "digits", "root": None, "resolution": 8},
                    extractor="digits-classifier", sampler=sampler or SamplerSettings(3, 1.0),
                    recon_samples=recon_samples, **{g: GROUPS[g](**values) for g, values in groups.items()})


def test_image_i_does_not_depend_on_batch_size():
    torch.manual_seed(0)
    model = UNet(in_channels=1, out_ch=1, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,),
                 dropout=0.0, resolution=8).eval()
    schedule, settings = NoiseSchedule.linear(), SamplerSettings(5, eta=1.0)
    together = generate(model, schedule, settings, range(6), seed=3, shape=(1, 8, 8))
    split = torch.cat([generate(model, schedule, settings, [i], seed=3, shape=(1, 8, 8)) for i in range(6)])
    # batched CPU convolutions differ from batch-1 ones by ~1e-6, which five steps amplify a little
    torch.testing.assert_close(together, split, rtol=1e-4, atol=1e-4)
    other_seed = generate(model, schedule, settings, range(6), seed=4, shape=(1, 8, 8))
    assert not torch.allclose(together, other_seed)


@pytest.mark.slow
def test_cell_resumes_without_repeating_images_and_two_processes_agree(checkpoint, tmp_path, monkeypatch):
    calls = []
    original = cell_module.generate

    def counting(model, schedule, settings, indices, *args, **kwargs):
        calls.extend(indices)
        return original(model, schedule, settings, indices, *args, **kwargs)

    monkeypatch.setattr(cell_module, "generate", counting)
    first = run_cell(plan_for(checkpoint, tmp_path / "one", num_samples=7))
    assert sorted(calls) == list(range(7))
    calls.clear()
    # more samples in the same cell: the first 7 are already on disk, only the rest are made
    grown = run_cell(plan_for(checkpoint, tmp_path / "one"))
    assert sorted(calls) == list(range(7, 12))
    calls.clear()
    # the same cell again: metrics.json says it is finished
    assert run_cell(plan_for(checkpoint, tmp_path / "one")) == grown
    assert calls == []
    assert first["value"] != grown["value"]

    # batch size and process count change nothing: the distance is the same to float precision
    two = run_cell(plan_for(checkpoint, tmp_path / "two", devices=2, accelerator="cpu", batch_size=4))
    assert two["value"] == pytest.approx(grown["value"], rel=1e-5, abs=1e-8)


@pytest.mark.slow
def test_two_by_two_sweep_end_to_end(checkpoint, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", f"ckpt={checkpoint}", "sampler.steps=2,4", "sampler.eta=0,1", *FAST_EVAL,
            f"hydra.sweep.dir={sweep}"]
    done = run_evaluate(*args)
    assert done.returncode == 0, done.stderr[-4000:]

    cells = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert len(cells) == 4 and all(c["status"] == "ok" for c in cells)
    assert {(c["steps"], c["eta"]) for c in cells} == {(2, 0), (4, 0), (2, 1), (4, 1)}
    assert all(c["metric"] == "fd_digits_conv" and c["value"] > 0 for c in cells)  # fid.extractor=auto on digits
    assert all((c["recon_mse"] is not None) == (c["eta"] == 0) for c in cells)
    assert all(c["nfe"] == c["steps"] for c in cells)

    with open(sweep / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    table = (sweep / "results.md").read_text()
    assert "fd_digits_conv" in table and "| 2 " in table and "| 4 " in table
    for name in ["fid_vs_steps.png", "consistency.png", "interpolation.png", "interpolation_real.png"]:
        assert (sweep / name).stat().st_size > 0, name
    # W&B offline runs: one per cell plus the sweep's summary
    assert len(list(sweep.glob("*/wandb/offline-run-*"))) == 4
    assert list(sweep.glob("wandb/offline-run-*"))

    # the same sweep again skips every finished cell
    stamps = {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    again = run_evaluate(*args)
    assert again.returncode == 0, again.stderr[-4000:]
    assert stamps == {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    assert (again.stdout + again.stderr).count("cell already finished") == 4


def test_method_cell_records_method_true_nfe_and_its_own_images(checkpoint, tmp_path):
    """A heun cell: metrics say method and NFE = 2S − 1, its reconstruction uses heun's encoder, and it does not
    reuse the ddim cell's cached images (the method is part of the image key)."""
    ddim = run_cell(plan_for(checkpoint, tmp_path, sampler=SamplerSettings(3, 0.0)))
    heun = run_cell(plan_for(checkpoint, tmp_path / "heun", sampler=SamplerSettings(3, 0.0, method="heun"),
                             recon_samples=4))
    assert (ddim["method"], ddim["nfe"]) == ("ddim", 3) and (heun["method"], heun["nfe"]) == ("heun", 5)
    assert heun["recon_mse"] is not None and heun["value"] != ddim["value"]
    assert plan_for(checkpoint, tmp_path).work_dir("features") != plan_for(
        checkpoint, tmp_path, sampler=SamplerSettings(3, 0.0, method="heun")).work_dir("features")


@pytest.mark.slow  # two cells, ~6 s
def test_a_cell_records_its_exact_trajectory_and_explicit_timesteps_score_as_the_same_spacing(checkpoint, tmp_path):
    named = run_cell(plan_for(checkpoint, tmp_path / "edm", sampler=SamplerSettings(4, 0.0, "edm")))
    edm = make_timesteps(1000, 4, "edm", NoiseSchedule.linear().alphas_cumprod)
    assert named["timesteps"] == edm and named["nfe"] == 4
    given = run_cell(plan_for(checkpoint, tmp_path / "given", sampler=SamplerSettings(timesteps=named["timesteps"])))
    assert (given["timesteps"], given["skip"], given["steps"]) == (named["timesteps"], "timesteps", 4)
    assert given["value"] == pytest.approx(named["value"], rel=1e-6)


def test_isc_and_prc_cells_store_logits_and_leave_the_fd_as_it_was(checkpoint, tmp_path):
    """fid.metrics=[fid,kid,isc,prc]: the chunk files hold the digits classifier's 10 logits beside the features (their
    own work dir: batches without logits cannot serve the score), the score is in [1, 10], precision and recall in
    [0, 1], and the FD is the one the same images give without them."""
    plain = run_cell(plan_for(checkpoint, tmp_path / "plain", sampler=SamplerSettings(3, 0.0)))
    plan = plan_for(checkpoint, tmp_path / "more", sampler=SamplerSettings(3, 0.0), metrics=["fid", "kid", "isc", "prc"],
                    kid_subsets=2, kid_subset_size=6, isc_splits=2)
    more = run_cell(plan)
    chunks = sorted(plan.work_dir("features").glob("*.npz"))
    assert chunks and all(np.load(c)["logits"].shape[1] == 10 for c in chunks)
    assert plan.work_dir("features") != plan_for(checkpoint, tmp_path / "more", sampler=SamplerSettings(3, 0.0)).work_dir(
        "features")
    assert more["value"] == pytest.approx(plain["value"], rel=1e-12)
    assert 1.0 <= more["isc_mean"] <= 10.0 and 0.0 <= more["precision"] <= 1.0 and 0.0 <= more["recall"] <= 1.0
    assert more["key"]["metrics"] == ["fid", "isc", "kid", "prc"] and "metrics" not in plain["key"]


@pytest.mark.slow
def test_failing_cell_is_marked_and_the_others_run(checkpoint, tmp_path):
    sweep = tmp_path / "sweep"
    done = run_evaluate("-m", f"ckpt={checkpoint}", "sampler.steps=2,5000", "sampler.eta=0", *FAST_EVAL,
                        "eval.figures=false", "wandb=none", f"hydra.sweep.dir={sweep}")
    assert done.returncode == 0, done.stderr[-4000:]
    cells = {json.loads(p.read_text())["steps"]: json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}
    assert cells[2]["status"] == "ok"
    assert cells[5000]["status"] == "failed" and "steps=5000" in cells[5000]["error"]
    assert "failed" in (sweep / "results.md").read_text()


@pytest.mark.parametrize("args,message", [
    (["ckpt=/no/such/file.ckpt"], "error: ckpt=/no/such/file.ckpt: no such file"),
    (["sampler.eta=-0.5"], "error: sampler.eta=-0.5; expected a number in [0, 1] or sigma_hat"),
    (["sampler.eta=1.5"], "error: sampler.eta=1.5; expected a number in [0, 1] or sigma_hat"),
    (["sampler.eta=large"], "error: sampler.eta='large'; expected a number in [0, 1] or sigma_hat"),
    (["sampler.steps=0"], "error: sampler.steps=0; expected an integer number of sampling steps between 1 and T=1000"),
    (["sampler.skip=cubic"], "error: sampler.skip='cubic'; expected one of uniform, quad, trailing"),
    (["sampler.method=euler"], "error: sampler.method='euler'; expected one of ddim, plms, dpmpp_2m, dpm_2s, dpm_3, heun"),
    (["sampler.method=heun", "sampler.eta=1"], "error: sampler.method=heun solves the η = 0 ODE; sampler.eta=1"),
])
def test_bad_input_is_one_clear_line(checkpoint, tmp_path, args, message):
    if not args[0].startswith("ckpt="):
        args = [f"ckpt={checkpoint}", *args]
    done = run_evaluate(*args, "wandb=none", f"hydra.run.dir={tmp_path}")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(message), done.stderr[-2000:]


def test_checkpoint_of_another_architecture_is_one_clear_line(checkpoint, tmp_path):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["model"]["ch"] = 64  # the weights no longer fit the architecture it claims
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    done = run_evaluate(f"ckpt={bad}", "wandb=none", f"hydra.run.dir={tmp_path}")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and ("missing" in lines[0] or "size" in lines[0] or "shape" in lines[0]), done.stderr[-2000:]


def test_missing_inception_weights_offline_is_one_clear_line(checkpoint, tmp_path):
    done = run_evaluate(f"ckpt={checkpoint}", "fid.extractor=inception-v3-compat", f"fid.weights={tmp_path}/pt_inception.pth",
                        "wandb=none", f"hydra.run.dir={tmp_path}")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "pt_inception.pth" in lines[0] and "fid.weights" in lines[0], done.stderr[-2000:]


def test_save_samples_writes_npz_and_pngs_of_the_scored_images(checkpoint, tmp_path):
    import numpy as np
    from PIL import Image

    from ddim.sampling import to_uint8

    run_cell(plan_for(checkpoint, tmp_path, num_samples=4, save_samples=True))
    saved = np.load(tmp_path / "samples.npz")["arr_0"]
    assert saved.shape == (4, 8, 8, 1) and saved.dtype == np.uint8
    # the same images come out of generate() for indices 0..3 with the cell's seed and settings
    model, schedule, _ = cell_module.load_model(plan_for(checkpoint, tmp_path))
    again = to_uint8(generate(model, schedule, SamplerSettings(3, 1.0), range(4), 0, (1, 8, 8)))
    assert np.abs(again.permute(0, 2, 3, 1).numpy().astype(int) - saved.astype(int)).max() <= 1
    pngs = sorted((tmp_path / "samples").glob("*.png"))
    assert len(pngs) == 4 and np.array_equal(np.asarray(Image.open(pngs[2])), saved[2, ..., 0])


def test_a_failure_that_is_not_bad_input_keeps_its_traceback(checkpoint, tmp_path):
    # an out-of-memory error inside the cell is a failure, not a config mistake: traceback, exit 1, no "error:" line
    inject = ("import runpy, sys; import ddim.evaluation.pipeline.task as task\n"
              "def out_of_memory(plan): raise RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB')\n"
              "task.run_cell = out_of_memory\n"
              f"sys.argv = ['evaluate.py', 'ckpt={checkpoint}', 'wandb=none', 'hydra.run.dir={tmp_path}']\n"
              f"runpy.run_path({str(ROOT / 'evaluate.py')!r}, run_name='__main__')\n")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run([sys.executable, "-c", inject], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" in done.stderr and "RuntimeError: CUDA out of memory" in done.stderr
    assert not any(line.startswith("error:") for line in done.stderr.splitlines())


@pytest.mark.parametrize("old, new", [
    ("trainer.devices=8", "fabric.devices=8"),
    ("+trainer.accelerator=cpu", "fabric.accelerator=cpu"),
    ("experiment=paper_cifar10_table1", "sweep=paper_cifar10_table1"),
])
def test_an_old_evaluate_name_fails_in_one_line_naming_the_new_one(tmp_path, old, new):
    done = run_evaluate("ckpt=whatever.ckpt", old, f"hydra.run.dir={tmp_path}")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {old.lstrip('+')} is now {new} ("), done.stderr
