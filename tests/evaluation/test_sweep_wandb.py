"""The sweep's W&B summary holds every cell, whatever mixes of types its columns have."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from ddim.evaluation.pipeline.sweep import log_sweep_to_wandb


@pytest.mark.slow  # starts wandb's service process
def test_a_table_with_sigma_hat_beside_numeric_etas_is_logged_whole(tmp_path):
    # metrics.json records η as a number and DDPM's σ̂ as "sigma_hat": one column of numbers and a string, which
    # wandb.Table refuses by default (the demo's sweep summary was lost to it: "Data row contained incompatible types")
    cells = [{"steps": 10, "eta": 0.0, "value": 13.5, "recon_mse": 0.0124, "status": "ok"},
             {"steps": 10, "eta": "sigma_hat", "value": 32.5, "recon_mse": None, "status": "ok"}]
    config = OmegaConf.create({"wandb": {"project": "ddim-test", "mode": "offline"}})
    log_sweep_to_wandb(config, cells, tmp_path, [])
    tables = list(tmp_path.glob("wandb/offline-run-*/files/media/table/results_*.table.json"))
    assert len(tables) == 1, sorted(str(p) for p in tmp_path.rglob("*"))[:40]
    logged = json.loads(tables[0].read_text())
    rows = [dict(zip(logged["columns"], row)) for row in logged["data"]]
    assert [(r["eta"], r["value"]) for r in rows] == [(0.0, 13.5), ("sigma_hat", 32.5)]
