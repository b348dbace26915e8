"""The README's "Reproduce the paper" commands are real: each composes with Hydra into the sweep it names, every cell
of that sweep makes valid options, and the model it names is one the registry can fetch (or says why not)."""

import itertools
import re
import shlex

import pytest
from omegaconf import open_dict

from ddim.evaluation.pipeline.task import options_from_config
from ddim.models import KNOWN_WEIGHTS

from ..helpers import ROOT, compose_config


def readme_commands() -> list[list[str]]:
    """The evaluate.py lines of the bash block that follows "One command per table"."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"One command per table.*?```bash\n(.*?)```", text, re.S)
    assert block, "README: no 'One command per table' block"
    return [shlex.split(line)[2:] for line in block.group(1).splitlines() if line.startswith("python evaluate.py")]


def test_there_is_one_command_per_table():
    sweeps = [next(a for a in args if a.startswith("sweep=")) for args in readme_commands()]
    assert sweeps[:2] == ["sweep=paper_cifar10_table1", "sweep=paper_celeba_table1"]


@pytest.mark.parametrize("args", readme_commands(), ids=lambda args: " ".join(args)[:60])
def test_each_command_composes_and_every_cell_is_valid(args, tmp_path):
    cfg = compose_config("evaluate", tmp_path, [a for a in args if a != "-m"], return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.dataset.name == cfg.pretrained.dataset
    spec = KNOWN_WEIGHTS[cfg.pretrained.name]
    assert (spec.url and spec.md5) or cfg.pretrained.name == "celeba"  # CelebA's file has no published checksum
    overrides = dict(a.split("=", 1) for a in args if "=" in a)
    params = {k: str(overrides.get(k, v)).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    cells = list(itertools.product(*params.values()))
    assert len(cells) in (1, 25)  # one cell, or Table 1's S × η grid
    for values in cells:
        cell = cfg.copy()
        with open_dict(cell):
            del cell["hydra"]
            for key, value in zip(params, values):
                group, name = key.split(".")
                cell[group][name] = value if value == "sigma_hat" else float(value) if "." in value else int(value)
        options = options_from_config(cell)
        assert options["sampler"].skip == cfg.pretrained.skip
