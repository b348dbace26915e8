"""Train a DDPM-objective model: python train.py [dataset=...] [experiment=...] [trainer=ddp] [resume=PATH]."""

import sys

import hydra
from hydra.errors import InstantiationException
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from ddim.training.module import NonFiniteLossError
from ddim.training.train import error_line, is_bad_input, train
from ddim.utils.signals import SIGTERM_EXIT_CODE

# exit codes: 0 done; 1 failed while training (a NaN loss, a full disk), the checkpoints already written kept;
# 2 bad input (an InputError: a config value, a path, a checkpoint), one line; 143 (128 + SIGTERM) stopped by
# SIGTERM after saving a checkpoint. Anything else is a failure to debug: it keeps its traceback (Hydra prints it)
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        result = train(cfg)
    except (ValueError, InstantiationException) as error:  # ValueError: InputError, CheckpointError among them
        if not is_bad_input(error):
            raise
        print(f"error: {error_line(error)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except (NonFiniteLossError, OSError) as error:  # MissingInputError, an OSError too, is caught above
        print(f"error: {error_line(error)}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except SIGTERMException:
        # stopped by the scheduler after saving last.ckpt: not a success, so `train && evaluate` does not go on
        sys.exit(SIGTERM_EXIT_CODE)
    if result["stopped_by"]:
        # SIGTERM, Ctrl+C or SLURM's requeue signal (the job is already requeued; this exit is its end in the queue)
        print(f"stopped by {result['stopped_by']} at step {result['global_step']}; "
              f"continue with resume={result['checkpoint']} (or rerun with the same hydra.run.dir)", file=sys.stderr)
        sys.exit(SIGTERM_EXIT_CODE)
    print(f"checkpoint: {result['checkpoint']}\nsample grid: {result['samples']}")


if __name__ == "__main__":
    main()
