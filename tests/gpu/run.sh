#!/bin/sh
# tests/gpu/run.sh — build and run every GPU test: each CUDA op against its
# CPU twin and whole models on both backends (test_ops_cuda). Run it on the
# GPU machine. SL_NO_BUILD=1 runs binaries built elsewhere (the device
# machine may lack the -dev packages); BUILD picks the build folder
# (default build). SL_CUDA_BENCH=1 adds the fp32 training-step timing.
# Exit: 0 all passed, 77 no GPU (all skipped), 1 a failure, 2 build error.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
GPU_TESTS="test_ops_cuda test_gpu_model test_gpu_engine test_gpu_trainer test_gpu_weights_ipc test_nccl test_nccl_dp2 test_trainer_dp"
if [ "${SL_NO_BUILD:-0}" != 1 ]; then
    targets=""
    for t in $GPU_TESTS; do targets="$targets $BUILD/tests/$t"; done
    # shellcheck disable=SC2086
    make -C "$ROOT" --no-print-directory BUILD="$BUILD" $targets || exit 2
fi
export SL_ROOT="$ROOT" SL_BUILD="$ROOT/$BUILD"
pass=0 fail=0 skip=0
for t in $GPU_TESTS; do
    printf '=== %s\n' "$t"
    "$ROOT/$BUILD/tests/$t"
    case $? in
        0) pass=$((pass + 1)) ;;
        77) skip=$((skip + 1)) ;;
        *) fail=$((fail + 1)) ;;
    esac
done
printf '\nGPU tests: %d passed, %d skipped, %d failed\n' "$pass" "$skip" "$fail"
[ "$fail" -eq 0 ] || exit 1
[ "$pass" -eq 0 ] && [ "$skip" -gt 0 ] && exit 77
exit 0
