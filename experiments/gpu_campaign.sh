#!/usr/bin/env bash
# Runs on the lent GPU machine (see experiments/device/README.md), from the repo root:
#   bash experiments/gpu_campaign.sh CHUNK
# chunk 1: wheel smoke check, GPU tests, then the GPU campaign; chunk 2: the GPU campaign resumed, then
# the host CPU; chunk followup: the op shapes the first H200 campaign lacked and its zoo steps again, in
# one command of under 8 minutes (device time is 15 minutes a session now, start-up included); first run
# `python experiments/gpu_campaign.py followup --dir .gpu --prepare` here and carry .gpu and .whl. Data live in .gpu/ (carried back and forth; the campaigns run inside it so MLflow's
# sqlite store and its artifacts stay together), and each chunk ends by packing .gpu into $OUT, so rows
# measured before a kill still come back. Budgets keep each chunk inside a 10-minute command.
set -uo pipefail
chunk=${1:?chunk number}
OUT=${OUT:-/tmp/flopcast-out}; mkdir -p "$OUT" .gpu
export PYTHONUNBUFFERED=1
t0=$(date +%s)
left() { echo $(( $1 - ($(date +%s) - t0) )); }
pack() { tar czf "$OUT/chunk$chunk.tgz" .gpu; cp .gpu/*.log "$OUT/" 2>/dev/null; echo "packed at $(( $(date +%s) - t0 )) s"; }
trap pack EXIT
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && python3 -m pip install -q --no-deps --no-build-isolation --no-compile --target /tmp/site . || exit 3
export PYTHONPATH=/tmp/site
nvidia-smi --query-gpu=name,memory.total,power.limit,clocks.max.sm,driver_version --format=csv | tee .gpu/nvidia-smi-$chunk.log
campaign() {  # PHASE BUDGET_MIN TIMEOUT_S
  (cd .gpu && timeout "$3" python3 ../experiments/gpu_campaign.py "$1" --dir . --budget-minutes "$2" 2>&1 \
    | grep -v USDT | tail -25 | tee -a "campaign-$chunk.log")
}
if [ "$chunk" = followup ]; then
  campaign followup $(( $(left 420) / 60 )) $(left 440)
elif [ "$chunk" = 1 ]; then
  python3 experiments/device/smoke_wheels.py 2>&1 | tail -5 | tee .gpu/smoke.log
  timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu -rA tests/features/test_memory_gpu.py tests/calibration \
    2>&1 | grep -v USDT | tail -40 | tee .gpu/gpu-tests.log
  campaign gpu $(( $(left 540) / 60 )) $(left 560)
else
  campaign gpu 5 330
  campaign cpu $(( $(left 540) / 60 )) $(left 560)
fi
