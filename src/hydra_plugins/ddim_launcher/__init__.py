"""The project's Hydra launcher plugin (Hydra takes launchers only from the hydra_plugins namespace): the submitit
SLURM launcher that notices dead jobs without sacct, ddim.evaluation.pipeline.launcher."""

from ddim.evaluation.pipeline.launcher import QueueAwareSlurmLauncher


class SlurmLauncher(QueueAwareSlurmLauncher):
    """conf/hydra/launcher/slurm.yaml's _target_."""


__all__ = ["SlurmLauncher"]
