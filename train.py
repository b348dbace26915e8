"""Train a DDPM-objective model: python train.py [dataset=...] [experiment=...] [trainer=ddp] [resume=PATH].
Exit codes: see ddim.training.cli."""

import sys

import hydra
from omegaconf import DictConfig

from ddim.training.cli import run_train


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    code = run_train(cfg)
    if code:  # a 0 returns, so that a multirun goes on to its next job
        sys.exit(code)


if __name__ == "__main__":
    main()
