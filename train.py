"""Train a DDPM-objective model: python train.py [dataset=...] [experiment=...] [trainer=ddp] [resume=PATH]."""

import sys

import hydra
from hydra.errors import InstantiationException
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from ddim.training.train import train
from ddim.utils.signals import SIGTERM_EXIT_CODE


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        result = train(cfg)
    except (ValueError, FileNotFoundError, InstantiationException) as error:
        # bad input (config values, paths, checkpoints) is one line, found before training starts
        cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
        print(f"error: {cause}", file=sys.stderr)
        sys.exit(2)
    except SIGTERMException:
        # stopped by the scheduler after saving last.ckpt: not a success, so `train && evaluate` does not go on
        sys.exit(SIGTERM_EXIT_CODE)
    print(f"checkpoint: {result['checkpoint']}\nsample grid: {result['samples']}")


if __name__ == "__main__":
    main()
