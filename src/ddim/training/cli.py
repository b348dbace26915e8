"""What `python train.py` does with a composed config, as a function returning the exit code, so the command's
one-line errors and exit codes can be checked in-process (train.py is this and @hydra.main)."""

from __future__ import annotations

import sys

from hydra.errors import InstantiationException
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from ddim.utils.signals import SIGTERM_EXIT_CODE

from .module import NonFiniteLossError
from .train import error_line, is_bad_input, train

# exit codes: 0 done; 1 failed while training (a NaN loss, a full disk), the checkpoints already written kept;
# 2 bad input (an InputError: a config value, a path, a checkpoint), one line; 143 (128 + SIGTERM) stopped by
# SIGTERM after saving a checkpoint. Anything else is a failure to debug: it keeps its traceback (Hydra prints it)
EXIT_DONE, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def run_train(cfg: DictConfig) -> int:
    try:
        result = train(cfg)
    except (ValueError, InstantiationException) as error:  # ValueError: InputError, CheckpointError among them
        if not is_bad_input(error):
            raise
        print(f"error: {error_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (NonFiniteLossError, OSError) as error:  # MissingInputError, an OSError too, is caught above
        print(f"error: {error_line(error)}", file=sys.stderr)
        return EXIT_FAILED
    except SIGTERMException:
        # stopped by the scheduler after saving last.ckpt: not a success, so `train && evaluate` does not go on
        return SIGTERM_EXIT_CODE
    if result["stopped_by"]:
        # SIGTERM, Ctrl+C or SLURM's requeue signal (the job is already requeued; this exit is its end in the queue)
        print(f"stopped by {result['stopped_by']} at step {result['global_step']}; "
              f"continue with resume={result['checkpoint']} (or rerun with the same hydra.run.dir)", file=sys.stderr)
        return SIGTERM_EXIT_CODE
    print(f"checkpoint: {result['checkpoint']}\nsample grid: {result['samples']}")
    return EXIT_DONE
