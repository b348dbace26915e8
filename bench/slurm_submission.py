"""The sbatch file `evaluate.py -m hydra/launcher=slurm` submits, written without a cluster.

    python bench/slurm_submission.py                                   # the paper's 5 x 5 CIFAR-10 grid: 25 cells
    python bench/slurm_submission.py hydra.launcher.partition=h100 hydra.launcher.timeout_min=120

Runs the real command (Hydra, the submitit launcher, submitit's sbatch writer) with stand-ins first on PATH: an
`sbatch` that keeps a copy of the file and answers "Submitted batch job 4242", and an `srun` that submitit only looks
for (it refuses to start where there is none); then stops the launching process, which
would otherwise wait for jobs that do not exist, and prints the file. Nothing is submitted anywhere.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = ["sampler.steps=10,20,50,100,1000", "sampler.eta=0,0.2,0.5,1,sigma_hat"]
FAKE_SBATCH = """#!/bin/sh
cp "$1" "$SBATCH_CAPTURE"
echo "Submitted batch job 4242"
"""


def sbatch_text(overrides: list[str], sweep_dir: Path, timeout_s: float = 300.0) -> str:
    """The sbatch file of `evaluate.py -m hydra/launcher=slurm ckpt=... *overrides` for the sweep in sweep_dir."""
    with tempfile.TemporaryDirectory(prefix="fake-slurm-") as tmp:
        bin_dir, capture = Path(tmp) / "bin", Path(tmp) / "submitted.sh"
        bin_dir.mkdir()
        for name, text in [("sbatch", FAKE_SBATCH), ("srun", "#!/bin/sh\nexit 1\n")]:
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SBATCH_CAPTURE": str(capture)}
        command = [sys.executable, str(ROOT / "evaluate.py"), "-m", "hydra/launcher=slurm",
                   "ckpt=/path/to/checkpoints/last.ckpt", *overrides, f"hydra.sweep.dir={sweep_dir}"]
        launcher = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
        deadline = time.monotonic() + timeout_s
        try:
            while not capture.is_file() and launcher.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            if launcher.poll() is None:
                launcher.terminate()
            output, _ = launcher.communicate(timeout=60)
        if not capture.is_file():
            raise RuntimeError(f"no sbatch file was submitted; the launching process said:\n{output[-3000:]}")
        return capture.read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (default: the 25-cell CIFAR-10 grid)")
    parser.add_argument("--sweep-dir", type=Path, default=ROOT / "outputs" / "evaluate-multirun" / "table1")
    args = parser.parse_args()
    overrides = args.overrides if any(o.startswith("sampler.") for o in args.overrides) else [*GRID, *args.overrides]
    print(sbatch_text(overrides, args.sweep_dir.resolve()))


if __name__ == "__main__":
    main()
