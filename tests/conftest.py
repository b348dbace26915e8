"""Keep every test offline and every file it writes inside temp dirs, module-scoped fixtures included."""

import os
import tempfile
from pathlib import Path

import pytest

_scratch = tempfile.mkdtemp(prefix="ddim-tests-")
os.environ["DDIM_CACHE"] = os.path.join(_scratch, "cache")  # digits classifier, reference statistics
os.environ["WANDB_DIR"] = os.path.join(_scratch, "wandb")
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ["HYDRA_FULL_ERROR"] = "1"
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_scratch, "matplotlib"))
# One CPU thread per test process (and the train.py/evaluate.py/DDP processes it starts) unless OMP_NUM_THREADS says
# otherwise: set before torch is imported. On the 2-core machines here, shared by parallel test runs, torch's two
# spinning threads made each 1000-step sampler test ~10x slower (5 s -> 46 s at load 5) and -m "not slow" 7.5 min.
os.environ.setdefault("OMP_NUM_THREADS", "1")


E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items):
    """Everything under tests/e2e/ is slow: it runs train.py/evaluate.py as subprocesses, and its session fixture
    `checkpoint` trains a model. Slow tests elsewhere carry their own @pytest.mark.slow."""
    for item in items:
        if E2E in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.slow)
