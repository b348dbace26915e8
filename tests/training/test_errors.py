"""Errors by kind through train.py: bad input (an InputError, also behind Hydra's InstantiationException) is one
line and exit 2; any other exception, a ValueError from torch inside fit included, is a failure that keeps its
traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import InstantiationException

from ddim.errors import InputError, MissingInputError
from ddim.training.module import NonFiniteLossError
from ddim.training.train import is_bad_input, train

from ..helpers import ROOT, TINY_TRAIN, tiny_train_config


def instantiation_error(cause: BaseException) -> InstantiationException:
    try:
        raise InstantiationException("Error in call to target 'x'") from cause
    except InstantiationException as error:
        return error


@pytest.mark.parametrize("error,bad_input", [
    (InputError("dataset.batch_size=0; expected a positive integer"), True),
    (MissingInputError("resume=/x.ckpt: no such checkpoint file"), True),
    (instantiation_error(InputError("sampler.eta=-1; expected a number")), True),
    (ValueError("Using a target size that is different to the input size"), False),  # torch's, inside fit
    (instantiation_error(TypeError("unexpected keyword argument 'foo'")), False),
    (NonFiniteLossError("loss is nan at step 3"), False),
    (RuntimeError("CUDA out of memory"), False),
])
def test_only_input_errors_count_as_bad_input(error, bad_input):
    assert is_bad_input(error) is bad_input


@pytest.mark.slow
def test_a_value_error_from_torch_inside_fit_keeps_its_traceback_and_is_not_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "train.py", *TINY_TRAIN, "logger=none", f"hydra.run.dir={tmp_path}",
                           "+callbacks.boom._target_=tests.training.probes.TorchValueErrorAt", "+callbacks.boom.step=2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode not in (0, 2), done.stderr[-3000:]
    assert "Traceback" in done.stderr and "binary_cross_entropy" in done.stderr, done.stderr[-3000:]
    assert "ValueError: Using a target size (torch.Size([3]))" in done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith("error:")]


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused_before_fit(tmp_path):
    # trainer=ddp_cpu is 2 processes; the check runs in train() once the trainer knows them, before any is started
    with pytest.raises(InputError, match=r"^dataset.global_batch_size=7 does not split evenly over 2 processes "
                                         r"\(devices x num_nodes\); expected a multiple of 2$"):
        train(tiny_train_config(tmp_path, "dataset.batch_size=null", "dataset.global_batch_size=7", "trainer=ddp_cpu"))
    assert not (tmp_path / "checkpoints").exists()
