#!/bin/sh
# transformers loads a folder we saved and its logits match ours
# (tests/gpu/check_hf_export.py). MODEL: $1 or $SL_HF_MODEL, else a
# checkpoint made here by a short default run (builtin:arith). Skips (77)
# when python3 has no transformers or the programs are not built.
#   sh tests/gpu/test_hf_export.sh [CHECKPOINT_DIR]
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
PY=${PYTHON:-python3}
"$PY" -c 'import torch, transformers' 2>/dev/null || { echo "no transformers for $PY: skipped"; exit 77; }
[ -x "$BUILD/slime-model" ] || { echo "$BUILD/slime-model not built: skipped"; exit 77; }
MODEL=${1:-${SL_HF_MODEL:-}}
T=$(mktemp -d /tmp/slhfx.XXXXXX)
trap 'rm -rf "$T"' EXIT
if [ -z "$MODEL" ]; then
    [ -x "$BUILD/slime-supervisor" ] || { echo "$BUILD/slime-supervisor not built: skipped"; exit 77; }
    "$BUILD/slime-supervisor" "$ROOT/conf/topology.conf" --run-dir "$T/run" --quiet \
        --set run.num_steps=2 --set sft.steps=30 --set eval.n_prompts=8 \
        --set rollout.rollout_batch_size=4 --set rollout.n_samples_per_prompt=4 > "$T/sup.out" 2>&1 ||
        { echo "FAIL: the short run"; tail -20 "$T/sup.out"; exit 1; }
    MODEL=$T/run/checkpoints/$(cat "$T/run/checkpoints/latest")
fi
"$PY" "$ROOT/tests/gpu/check_hf_export.py" --slime-build "$BUILD" --model "$MODEL"
