#!/bin/bash
# tests/bench/device_run.sh — the device command of tests/bench/RESULTS.md: GPU
# tests, slime-bench gpu-sync / gpu-train (and a profiled gpu-train), then
# pytorch_ref.py, all in one run; logs under $OUT. Copy build/slime-bench,
# build/tests/test_gpu_model, build/tests/test_gpu_engine and
# tests/bench/pytorch_ref.py next to it.
# Env: RUN_TEST/RUN_SYNC/RUN_TRAIN (default 1), RUN_PROF (0), RUN_GEN (0:
# test_gpu_engine, then slime-bench gpu-gen and its variants: no graphs,
# reference sampler, profile, groups;
# pair it with PT_ARGS=--generate for the side-by-side row), PT_ARGS.
cd "$(dirname "$0")"
export OMP_NUM_THREADS=16
nvidia-smi --query-gpu=name,memory.total,clocks.sm,driver_version --format=csv,noheader
T0=$(date +%s)
step() { echo "=== $1 (t=$(( $(date +%s) - T0 ))s)"; }
if [ "${RUN_TEST:-1}" = 1 ]; then step test; timeout 180 ./test_gpu_model 2>&1 | tee $OUT/test.log; echo "rc=${PIPESTATUS[0]}"; fi
if [ "${RUN_SYNC:-1}" = 1 ]; then step sync; timeout 60 ./slime-bench gpu-sync --reps 50 2>&1 | tee $OUT/sync.json; fi
if [ "${RUN_TRAIN:-1}" = 1 ]; then step train; timeout 120 ./slime-bench gpu-train --steps 10 2>&1 | tee $OUT/train.json; fi
if [ "${RUN_PROF:-0}" = 1 ]; then step prof; SL_GPUM_PROFILE=1 timeout 120 ./slime-bench gpu-train --steps 3 2>&1 | tee $OUT/prof.json; fi
if [ "${RUN_GEN:-0}" = 1 ]; then
    step gen-test; timeout 240 ./test_gpu_engine 2>&1 | tee $OUT/gen_test.log; echo "rc=${PIPESTATUS[0]}"
    step gen; timeout 240 ./slime-bench gpu-gen --reps 5 --variants 1 2>&1 | tee $OUT/gen.json
fi
if [ -n "${PT_ARGS:-}" ]; then step pytorch; PYTHONUNBUFFERED=1 timeout ${PT_TIMEOUT:-300} python3 pytorch_ref.py $PT_ARGS 2>&1 | grep -v Warning | tee $OUT/pytorch.json; fi
step done
