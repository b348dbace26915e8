"""The sampler-method axis: settings validation and dispatch, and made-up metrics.json cells → the NFE × method
table beside the η table, and the method curves of the plot."""

from __future__ import annotations

import pytest
import torch

from ddim.diffusion import SOLVERS, NoiseSchedule, encode, make_timesteps
from ddim.sampling import SamplerSettings, generate, reconstruct
from ddim.evaluation.report.pivot import method_pivot, pivot_table
from ddim.evaluation.report.plots import method_curves
from ddim.evaluation.report.tables import format_method_table, format_table, write_results
from ddim.utils.noise import CounterNoise

from ..diffusion.gaussian_oracle import GaussianOracle


def tau(steps: int, skip: str = "uniform") -> list[int]:
    return make_timesteps(1000, steps, skip)


def cell(steps, value, method=None, eta=0.0, nfe=None, status="ok"):
    out = {"steps": steps, "eta": eta, "skip": "quad", "metric": "fid", "value": value, "nfe": nfe, "status": status,
           "dataset": "cifar10"}
    if method is not None:
        out["method"] = method
    return out


@pytest.fixture
def cells():
    return [
        cell(10, 13.0, nfe=10),                    # written before the method axis existed: ddim
        cell(10, 40.0, "ddim", eta=1.0, nfe=10),   # not at η = 0: the η table only
        cell(20, 7.0, "ddim", nfe=20),
        cell(10, 6.0, "plms", nfe=11),
        cell(10, 5.5, "dpmpp_2m", nfe=10),
        cell(5, 9.0, "heun", nfe=9),
        cell(10, 4.9, "heun", nfe=19),
        {"steps": 10, "eta": 0.0, "skip": "quad", "method": "dpm_2s", "status": "failed", "value": None,
         "error": "RuntimeError: out of memory"},  # a failed cell records no NFE: worked out from S
    ]


def test_method_pivot_rows_are_nfe_and_columns_methods(cells):
    rows = {row["NFE"]: row for row in method_pivot(cells)}
    assert sorted(rows) == [9, 10, 11, 19, 20]
    assert rows[10] == {"NFE": 10, "ddim (η=0)": 13.0, "plms": None, "dpmpp_2m": 5.5, "dpm_2s": "failed",
                        "heun": None}
    assert rows[11]["plms"] == 6.0 and rows[19]["heun"] == 4.9 and rows[9]["heun"] == 9.0
    assert rows[20]["ddim (η=0)"] == 7.0


def test_eta_table_holds_only_ddim_cells(cells):
    rows = {row["S"]: row for row in pivot_table(cells)}
    assert rows[10]["η=0.0"] == 13.0 and rows[10]["η=1.0"] == 40.0  # not plms's or heun's numbers
    assert 5 not in rows  # heun's S = 5 is no row of the η table


def test_results_md_has_both_tables(cells, tmp_path):
    text = format_table(cells)
    eta_part, method_part = text.split("## fid by network evaluations (NFE) and sampler method")
    assert "## fid by steps S and η" in eta_part and "heun" not in eta_part
    assert "| NFE | ddim (η=0) | plms | dpmpp_2m | dpm_2s | heun |" in method_part
    assert "| 10 | 13.00 | — | 5.50 | failed | — |" in method_part
    assert "- dpm_2s S=10: RuntimeError: out of memory" in method_part
    paths = write_results(tmp_path, cells)
    assert (tmp_path / "results.md").read_text() == text
    assert all(p.stat().st_size > 0 for p in paths)


def test_ddim_only_sweep_has_no_method_table():
    cells = [cell(10, 13.0), cell(10, 40.0, eta=1.0), cell(20, 7.0, "ddim")]
    assert format_method_table(cells, "fid") == ""
    assert "NFE" not in format_table(cells)


def test_method_only_sweep_still_plots_and_tabulates(tmp_path):
    cells = [cell(5, 9.0, "heun", nfe=9), cell(10, 4.9, "heun", nfe=19), cell(10, 6.0, "plms", nfe=11)]
    assert method_curves(cells) == {"heun": [(5, 9.0), (10, 4.9)], "plms": [(10, 6.0)]}
    write_results(tmp_path, cells)
    assert "| 19 | — | 4.90 |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "fid_vs_steps.png").stat().st_size > 0


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="euler"), "sampler.method='euler'; expected one of ddim, plms, dpmpp_2m, dpm_2s, dpm_3, heun"),
    (dict(method="heun", eta=0.5), "sampler.method=heun solves the η = 0 ODE; sampler.eta=0.5"),
    (dict(method="plms", eta="sigma_hat"), "sampler.method=plms solves the η = 0 ODE; sampler.eta='sigma_hat'"),
    (dict(method="dpm_2s", clip_denoised=True),
     "sampler.clip_denoised=True applies to method=ddim|dpmpp_2m|dpmpp_2s, not method=dpm_2s"),
])
def test_bad_method_settings_are_one_clear_error(kwargs, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        SamplerSettings(10, **kwargs)


def test_settings_report_true_nfe_and_labels():
    assert [SamplerSettings(10, method=m).nfe(NoiseSchedule.linear()) for m in SOLVERS] == [10, 11, 10, 10, 10, 19, 19, 10]  # pndm: 10 + 3·3
    assert SamplerSettings(10, 0.5).label == "η=0.5" and SamplerSettings(10, method="heun").label == "heun"
    assert [m for m in SOLVERS if SamplerSettings(10, method=m).can_encode] == ["ddim", "heun"]


@pytest.mark.parametrize("method", list(SOLVERS))
def test_generate_dispatches_to_the_method_and_image_i_does_not_depend_on_batching(method):
    schedule = NoiseSchedule.linear()
    oracle = GaussianOracle(schedule, 0.2, 0.3)
    settings = SamplerSettings(6, method=method, skip="quad")
    together = generate(oracle, schedule, settings, range(4), seed=3, shape=(1, 2, 2))
    apart = torch.cat([generate(oracle, schedule, settings, [i], seed=3, shape=(1, 2, 2)) for i in range(4)])
    torch.testing.assert_close(together, apart)
    x_T = CounterNoise(3, range(4), (1, 2, 2)).latents()
    torch.testing.assert_close(together, SOLVERS[method].sample(oracle, x_T, schedule, tau(6, "quad")).float())


def test_reconstruct_uses_the_method_encoder_and_refuses_methods_without_one():
    schedule = NoiseSchedule.linear()
    oracle = GaussianOracle(schedule, 0.2, 0.3)
    images = 0.2 + 0.3 * torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    latents, decoded = reconstruct(oracle, schedule, images, tau(10, "quad"), method="heun")
    torch.testing.assert_close(latents, SOLVERS["heun"].encode(oracle, images, schedule, tau(10, "quad")).float())
    ddim_latents, ddim_decoded = reconstruct(oracle, schedule, images, tau(10, "quad"))
    torch.testing.assert_close(ddim_latents, encode(oracle, images, schedule, tau(10, "quad")).float())
    assert (decoded - images).square().mean() < (ddim_decoded - images).square().mean() / 4
    with pytest.raises(ValueError, match="sampler.method=plms has no encoder; reconstruction needs one of ddim, heun"):
        reconstruct(oracle, schedule, images, tau(10, "quad"), method="plms")


def test_demo_methods_sweep_sweeps_every_method(tmp_path):
    from omegaconf import OmegaConf

    from ..helpers import ROOT, compose_config

    sweep = OmegaConf.load(ROOT / "conf" / "sweep" / "demo_methods.yaml")
    assert sweep.hydra.sweeper.params["sampler.method"].split(",") == list(SOLVERS)
    cfg = compose_config("evaluate", tmp_path, ["sweep=demo_methods", "sampler.method=heun"])
    settings = SamplerSettings(**OmegaConf.to_container(cfg.sampler, resolve=True))
    assert (settings.method, settings.skip, settings.steps) == ("heun", "quad", 50)
    assert settings.nfe(NoiseSchedule.linear()) == 2 * 49 - 1  # quad's 50 points hold 49 distinct indices
