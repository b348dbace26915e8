#!/usr/bin/env bash
# What issue 9 still lacks from a GPU, in one device call that ends inside 10 minutes (each part has its own limit,
# in order of what matters most): the GPU-only tests; both U-Nets' eager sampling against diffusers (GroupNorm in
# bf16, the attention layout and the block noise were all built after the only lease); where an eager bf16
# forward's time goes now; the sampler's host time per step; compiled + CUDA-graph sampling of both U-Nets.
#
#   bash bench/device_wheels.sh                     # here, once: the wheels the machine's image lacks, into .whl/
#   device run, carry [".whl"], timeout_s 600:  PY=python3 bash bench/gpu_check.sh "$OUT"
#
# Where `import diffusers` fails and .whl/ holds wheels, they are installed into /tmp/site first. Each part's
# output goes to OUT_DIR/<part>.txt (five files; the device tool returns at most eight).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/gpu_check.sh OUT_DIR}
PY=${PY:-python}
export PYTHONPATH="src:bench" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if ! $PY -c "import diffusers, torch_fidelity" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  rm -rf /tmp/site/tests  # a wheel ships a top-level `tests` package, which must not shadow ours
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

part() {  # part NAME SECONDS COMMAND...: run under a time limit, keep its output, say how it ended
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "## $name: $*" | tee -a "$OUT/$name.txt"
  timeout -k 5 "$limit" "$@" >> "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "## $name: exit $rc after $((SECONDS - start)) s (limit $limit s)" | tee -a "$OUT/$name.txt"
}

{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } \
  > "$OUT/tests.txt" 2>&1
part tests 110 $PY -m pytest -q -p no:cacheprovider -x tests/utils/test_noise.py tests/models/test_norm.py \
  tests/sampling/test_generate.py
part sampling_eager 170 $PY bench/sampling_throughput.py --models cifar10,celeba --batches 1,32,256 \
  --modes fp32,bf16,bf16+channels_last --steps 10
part profile 50 $PY bench/unet_profile.py --model cifar10 --batch 256 --bf16 --channels-last --top 12
part step_noise 40 $PY bench/step_noise.py
part sampling_compiled 170 $PY bench/sampling_throughput.py --models cifar10,celeba --batches 256,1 \
  --modes bf16+channels_last+compile+cuda_graphs --steps 10 --no-diffusers
