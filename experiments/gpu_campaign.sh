#!/usr/bin/env bash
# Runs on the lent GPU machine (see experiments/device/README.md), from the repo root:
#   bash experiments/gpu_campaign.sh CHUNK
# chunk 1: GPU tests, then the GPU campaign; chunk 2: the GPU campaign resumed, then the host CPU.
# Data live in .gpu/ (carried back and forth), and each chunk ends by packing it into $OUT, so rows
# measured before a kill still come back. Budgets keep each chunk inside a 10-minute command.
set -uo pipefail
chunk=${1:?chunk number}
OUT=${OUT:-/tmp/flopcast-out}; mkdir -p "$OUT" .gpu
export PYTHONUNBUFFERED=1 CUDA_MODULE_LOADING=LAZY
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && python3 -m pip install -q --no-deps --no-build-isolation --no-compile --target /tmp/site . || exit 3
export PYTHONPATH=/tmp/site
left() { echo $(( $1 - ($(date +%s) - t0) )); }
pack() { tar czf "$OUT/chunk$chunk.tgz" .gpu; cp .gpu/*.log "$OUT/" 2>/dev/null; echo "packed at $(( $(date +%s) - t0 )) s"; }
trap pack EXIT
nvidia-smi --query-gpu=name,memory.total,power.limit,clocks.max.sm,driver_version --format=csv | tee .gpu/nvidia-smi-$chunk.log
if [ "$chunk" = 1 ]; then
  timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu -rA tests/features/test_memory_gpu.py tests/calibration \
    2>&1 | tail -40 | tee .gpu/gpu-tests.log
  timeout $(left 560) python3 experiments/gpu_campaign.py gpu --dir .gpu --budget-minutes $(( ($(left 540)) / 60 )) \
    2>&1 | grep -v USDT | tail -30 | tee -a .gpu/campaign-$chunk.log
else
  timeout 330 python3 experiments/gpu_campaign.py gpu --dir .gpu --budget-minutes 5 2>&1 | grep -v USDT | tail -20 \
    | tee -a .gpu/campaign-$chunk.log
  timeout $(left 560) python3 experiments/gpu_campaign.py cpu --dir .gpu --budget-minutes $(( ($(left 540)) / 60 )) \
    2>&1 | grep -v USDT | tail -20 | tee -a .gpu/campaign-$chunk.log
fi
