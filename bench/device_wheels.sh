#!/usr/bin/env bash
# The wheels bench/gpu_check.sh needs on the lent GPU machine beyond what its image holds (it has torch, lightning,
# torchmetrics, huggingface-hub, safetensors, scipy, pytest, zipp; it cannot reach a package registry): the versions
# installed in this checkout's venv, so the device runs what the tests here run. Run here, in the repository's
# root; `.whl/` is git-ignored through .git/info/exclude and travels with `carry: [".whl"]`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
pins=$($PY -c "from importlib.metadata import version
print(' '.join(f'{n}=={version(n)}' for n in ('diffusers', 'importlib_metadata', 'torch-fidelity')))")
# all pure-Python wheels: no platform to match
$PY -m pip download -q --no-deps --only-binary=:all: -d .whl $pins
ls -la .whl
