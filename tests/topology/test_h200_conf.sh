#!/bin/sh
# conf/h200.conf validates (--check) as the GPU machine would see it
# (SL_GPU_COUNT=1 stands in for its one H200 here), and is refused with the
# device named when the machine has no GPU at all.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${SL_BUILD:-$ROOT/build}
[ -x "$B/slime-supervisor" ] || { echo "slime-supervisor not built: skipped"; exit 77; }
out=$(SL_GPU_COUNT=1 "$B/slime-supervisor" "$ROOT/conf/h200.conf" --check 2>&1)
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: --check exit $rc: $out"; exit 1; }
echo "$out" | grep -q "ok (4 actors)" || { echo "FAIL: $out"; exit 1; }
out=$(SL_GPU_COUNT=0 "$B/slime-supervisor" "$ROOT/conf/h200.conf" --check 2>&1)
rc=$?
[ $rc -eq 2 ] || { echo "FAIL: without a GPU --check exit $rc (want 2)"; exit 1; }
echo "$out" | grep -q "h200.conf:[0-9]*: device cuda:0 requested but this machine has no CUDA GPU" ||
    { echo "FAIL: $out"; exit 1; }
echo "conf/h200.conf: ok"
