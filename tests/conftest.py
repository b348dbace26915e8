"""Keep every test offline and every file it writes inside temp dirs, module-scoped fixtures included."""

import os
import tempfile

_scratch = tempfile.mkdtemp(prefix="ddim-tests-")
os.environ["DDIM_CACHE"] = os.path.join(_scratch, "cache")  # digits classifier, reference statistics
os.environ["WANDB_DIR"] = os.path.join(_scratch, "wandb")
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ["HYDRA_FULL_ERROR"] = "1"
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_scratch, "matplotlib"))
