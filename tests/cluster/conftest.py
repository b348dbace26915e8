"""One SLURM cluster (tests/cluster/slurm.py) for every test in tests/cluster/, started once per run and shut down
with no job or process left; the tests are skipped, with the reason, where SLURM is not installed. All of them are
slow: they run real jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..e2e.conftest import checkpoint  # noqa: F401  (the tiny trained checkpoint the sweeps evaluate)
from .slurm import Cluster, available

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("slurm"))  # one worker, so one cluster, under pytest -n


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> Cluster:
    reason = available()
    if reason:
        pytest.skip(reason)
    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(cluster.conf))  # for the processes the tests start (evaluate.py submits)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture
def idle(slurm: Cluster) -> Cluster:
    """The cluster with no job left over from an earlier test, afterwards too."""
    slurm.cancel_all()
    yield slurm
    slurm.cancel_all()
