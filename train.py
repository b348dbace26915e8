"""Train a DDPM-objective model: python train.py [dataset=...] [experiment=...] [trainer=ddp] [resume=PATH]."""

import hydra
from omegaconf import DictConfig

from ddim.training.train import train


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    result = train(cfg)
    print(f"checkpoint: {result['checkpoint']}\nsample grid: {result['samples']}")


if __name__ == "__main__":
    main()
