#!/bin/sh
# TensorBoard event files read by the real tensorboard package:
# helper_tb_write writes events and the expected scalars, and
# tests/tboard_check.py loads them with tensorboard's EventAccumulator and
# compares every tag, step and value. Skips (77) where python3 has no
# tensorboard (it is installed on the GPU machine) or the helper is not built.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
HELPER=$BUILD/tests/helper_tb_write
PY=${PYTHON:-python3}
"$PY" -c 'import tensorboard' 2>/dev/null || { echo "no tensorboard for $PY: skipped"; exit 77; }
[ -x "$HELPER" ] || { echo "$HELPER not built: skipped"; exit 77; }
T=$(mktemp -d /tmp/sltb.XXXXXX)
trap 'rm -rf "$T"' EXIT
"$HELPER" "$T" || { echo "FAIL: helper_tb_write"; exit 1; }
"$PY" "$ROOT/tests/tboard_check.py" "$T/tb" "$T/expected.json"
