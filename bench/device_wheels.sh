#!/usr/bin/env bash
# The wheels bench/gpu_check.sh needs on the lent GPU machine beyond what its image holds (it has torch, lightning,
# torchmetrics, huggingface-hub, safetensors, scipy, pytest; it cannot reach a package registry). Run here, in the
# repository's root; `.whl/` is git-ignored through .git/info/exclude and travels with `carry: [".whl"]`.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PIP=${PIP:-python3 -m pip}
# all pure-Python wheels (no platform to match); zipp, which importlib_metadata needs, is in the image
$PIP download -q --no-deps --only-binary=:all: -d .whl diffusers==0.42.1 importlib_metadata==10.2.0 \
  torch-fidelity==0.4.0
ls -la .whl
