#!/usr/bin/env bash
# Re-takes every figure of docs/benchmarks.md in one go, on whatever machine runs it (a GPU if there is one).
#   bash bench/run_all.sh            # short: a few minutes on a CPU
#   bash bench/run_all.sh --full     # the whole grid: batch 1..256, CIFAR-10 and CelebA, every mode (GPU)
# PY picks the interpreter (default python); the tables go to stdout and to bench/results-<host>-<date>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
FULL=${1:-}
OUT=bench/results-$(hostname)-$(date -u +%Y%m%dT%H%M).md
GPU=$($PY -c "import torch; print(int(torch.cuda.is_available()))")
{
  echo "## step noise: host time per step, batch 256"; $PY bench/step_noise.py
  echo; echo "## sampling throughput and ratio to diffusers"; $PY bench/sampling_throughput.py $FULL
  if [ "$GPU" = 1 ]; then
    echo; echo "## sampler overhead"; $PY bench/sampler_overhead.py --model cifar10 --batch 256 --steps 100 --bf16
    echo; echo "## training throughput"
    for extra in "" "--compile"; do
      for exp in cifar10 celeba; do
        $PY bench/train_throughput.py --steps 60 --synthetic $extra experiment=$exp trainer=gpu 2>/dev/null | tail -5
      done
    done
  else
    echo; echo "## sampler overhead"; $PY bench/sampler_overhead.py --model digits --batch 500 --steps 50 --repeats 5
    echo; echo "## training throughput (the demo)"; $PY bench/train_throughput.py 2>/dev/null | tail -5
  fi
} | tee "$OUT"
echo "written: $OUT"
