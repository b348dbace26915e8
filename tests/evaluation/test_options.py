"""The evaluation options: declared once (the dataclasses are the configs' schemas and the plan's fields), checked
when composed, pretrained=NAME's trajectory, and the one-line refusal of renamed keys."""

from __future__ import annotations

import dataclasses

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from ddim.errors import InputError
from ddim.evaluation.pipeline.options import GROUPS, EvalOptions, renamed_override
from ddim.evaluation.pipeline.task import options_from_config

from ..helpers import compose_config


def test_each_group_of_the_composed_config_is_exactly_its_dataclass(tmp_path):
    cfg = compose_config("evaluate", tmp_path, [])
    for group, cls in GROUPS.items():
        assert set(cfg[group]) == {f.name for f in dataclasses.fields(cls)}, group
    options = options_from_config(cfg)
    assert options["eval"] == EvalOptions() and options["sampler"].steps == 50


def test_a_wrong_type_or_an_unknown_key_is_refused_when_composed(tmp_path):
    with pytest.raises(ConfigCompositionException):
        compose_config("evaluate", tmp_path, ["eval.num_samples=lots"])
    with pytest.raises(ConfigCompositionException):
        compose_config("evaluate", tmp_path, ["eval.num_sample=10"])


@pytest.mark.parametrize("values, message", [
    ({"num_samples": 1}, "eval.num_samples=1; expected an integer >= 2"),
    ({"batch_size": 0}, "eval.batch_size=0; expected an integer >= 1"),
    ({"recon_samples": -1}, "eval.recon_samples=-1; expected an integer >= 0"),
])
def test_option_values_are_checked_when_the_options_are_made(values, message):
    with pytest.raises(InputError, match=message):
        EvalOptions(**values)


@pytest.mark.parametrize("overrides, skip", [
    (["pretrained=cifar10"], "quad"),  # the trajectory of the paper's CIFAR-10 table
    (["pretrained=celeba"], "uniform"),
    (["pretrained=cifar10", "sampler.skip=uniform"], "uniform"),  # the user's choice wins
    ([], "uniform"),
])
def test_pretrained_sets_the_trajectory_its_weights_were_evaluated_with(tmp_path, overrides, skip):
    cfg = compose_config("evaluate", tmp_path, overrides)
    assert OmegaConf.to_container(cfg.sampler, resolve=True)["skip"] == skip


@pytest.mark.parametrize("arguments, line", [
    (["ckpt=x", "trainer.devices=8"], "trainer.devices=8 is now fabric.devices=8"),
    (["+trainer.accelerator=cpu"], "trainer.accelerator=cpu is now fabric.accelerator=cpu"),
    (["-m", "experiment=demo_sweep"], "experiment=demo_sweep is now sweep=demo_sweep"),
    (["fabric.devices=2", "sweep=demo_sweep", "sampler.steps=10"], None),
])
def test_renamed_keys_name_their_new_names(arguments, line):
    found = renamed_override(arguments)
    assert (found is None) if line is None else found.startswith(line)
