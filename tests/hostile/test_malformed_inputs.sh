#!/bin/sh
# test_malformed_inputs.sh — malformed files and values at every entry point
# of the programs must give a clear error and exit code exactly 2: never 0,
# never 1, never a signal (exit > 128), never a hang (30 s limit each).
#
#   slime-supervisor FILE --check      bad topology files (tests/topology/bad
#                                      and generated ones) and bad --set values
#   slime-model info/score/tokenize    bad config.json, model.safetensors,
#                                      tokenizer.json, JSON lines on stdin,
#                                      bad arguments
#   slime-ctl                          bad arguments
#
# The inputs are generated into a temporary folder by gen_malformed.py
# (truncations, bit flips, wrong types, huge numbers, empty files), so the
# repository stays small. Prints every failure and the count of inputs tried.
# Exit 77 (skipped) when the programs are not built or python3 is missing.
set -u
BUILD=${SL_BUILD:-build}
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SUP="$BUILD/slime-supervisor" MODEL="$BUILD/slime-model" CTL="$BUILD/slime-ctl"
for b in "$SUP" "$MODEL" "$CTL"; do [ -x "$b" ] || { echo "skip: $b not built"; exit 77; }; done
command -v python3 >/dev/null || { echo "skip: python3 missing"; exit 77; }
T=$(mktemp -d /tmp/sl_test_hostile_XXXXXX)
trap 'rm -rf "$T"' EXIT
python3 "$ROOT/tests/hostile/gen_malformed.py" "$ROOT" "$T/in" || { echo "generator failed"; exit 1; }
LIMIT=${SL_HOSTILE_TIMEOUT:-30}
tried=0 failed=0
per=""

# expect2 NAME STDIN_FILE CMD... : the command must exit 2 with a message.
expect2() {
    name=$1 stdin=$2
    shift 2
    tried=$((tried + 1))
    timeout -s KILL "$LIMIT" "$@" <"$stdin" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" -eq 2 ] && [ -s "$T/err" ]; then return 0; fi
    failed=$((failed + 1))
    if [ "$rc" -eq 137 ]; then why="killed after ${LIMIT}s or by SIGKILL"
    elif [ "$rc" -gt 128 ]; then why="signal $((rc - 128))"
    elif [ "$rc" -eq 2 ]; then why="exit 2 but no message on stderr"
    else why="exit $rc"; fi
    printf '  FAIL %s: %s; stderr: %s\n' "$name" "$why" "$(head -c 300 "$T/err" | tr '\n' ' ')"
}

section() {
    per="$per $1=$tried"
    printf '=== %s\n' "$1"
}

N=/dev/null
IN=$T/in
FIX=$ROOT/tests/fixtures/model/qwen3

# ------------------------------------------------------------- supervisor
section topology-files
for f in "$ROOT"/tests/topology/bad/*.conf "$IN"/topo/*.conf; do
    case $f in */good.conf) continue ;; esac
    expect2 "supervisor --check $(basename "$f")" $N "$SUP" "$f" --check
done
expect2 "supervisor --check on a missing file" $N "$SUP" "$T/no_such.conf" --check
expect2 "supervisor --check on a folder" $N "$SUP" "$T" --check

section supervisor-set
while IFS= read -r s; do
    expect2 "supervisor --set '$s'" $N "$SUP" "$IN/topo/good.conf" --check --set "$s"
done <"$IN/sets.txt"

section supervisor-args
expect2 "supervisor with no arguments" $N "$SUP"
expect2 "supervisor with an unknown option" $N "$SUP" "$IN/topo/good.conf" --check --frobnicate
expect2 "supervisor --set without a value" $N "$SUP" "$IN/topo/good.conf" --check --set
expect2 "supervisor --run-dir without a value" $N "$SUP" "$IN/topo/good.conf" --run-dir
expect2 "supervisor with two topology files" $N "$SUP" "$IN/topo/good.conf" "$IN/topo/good.conf" --check

# ------------------------------------------------------------------ model
section config-json
for d in "$IN"/cfg/*/; do
    d=${d%/}
    ln -s "$FIX/model.safetensors" "$d/model.safetensors"
    expect2 "score with config.json $(basename "$d")" $N "$MODEL" score "$d"
done
for d in "$IN"/cfgjson/*/; do
    expect2 "info with config.json $(basename "$d")" $N "$MODEL" info "${d%/}"
done

section safetensors
for d in "$IN"/st/*/; do
    expect2 "info with model.safetensors $(basename "$d")" $N "$MODEL" info "${d%/}"
done
expect2 "score with model.safetensors cut_in_data" $N "$MODEL" score "$IN/st/cut_in_data"
expect2 "score with model.safetensors dtype_f64" $N "$MODEL" score "$IN/st/dtype_f64"

section tokenizer-json
for f in "$IN"/tok/bad_*.json; do
    expect2 "tokenize with $(basename "$f")" $N "$MODEL" tokenize "$f"
done
mkdir -p "$T/tokdir" && cp "$IN/tok/bad_truncated_half.json" "$T/tokdir/tokenizer.json"
expect2 "tokenize on a folder with a truncated tokenizer.json" $N "$MODEL" tokenize "$T/tokdir"
expect2 "tokenize on a missing file" $N "$MODEL" tokenize "$T/none.json"

section stdin-lines
for f in "$IN"/score_lines/*.jsonl; do
    expect2 "score stdin $(basename "$f")" "$f" "$MODEL" score "$FIX"
done
for f in "$IN"/tok_lines/*.jsonl; do
    expect2 "tokenize stdin $(basename "$f")" "$f" "$MODEL" tokenize "$IN/tok/tiny.json"
done
for f in "$IN"/dec_lines/*.jsonl; do
    expect2 "tokenize --decode stdin $(basename "$f")" "$f" "$MODEL" tokenize "$IN/tok/tiny.json" --decode
done

section model-args
expect2 "slime-model with no arguments" $N "$MODEL"
expect2 "slime-model with an unknown command" $N "$MODEL" frobnicate
expect2 "info with no folder" $N "$MODEL" info
expect2 "info with two folders" $N "$MODEL" info "$FIX" "$FIX"
expect2 "info on a missing folder" $N "$MODEL" info "$T/none"
expect2 "info on a file" $N "$MODEL" info "$FIX/config.json"
expect2 "score with no folder" $N "$MODEL" score
expect2 "score --max-len 1" $N "$MODEL" score "$FIX" --max-len 1
expect2 "score --max-len abc" $N "$MODEL" score "$FIX" --max-len abc
expect2 "score --max-len 99999999999999999999" $N "$MODEL" score "$FIX" --max-len 99999999999999999999
expect2 "score --max-len without a value" $N "$MODEL" score "$FIX" --max-len
expect2 "score with an unknown option" $N "$MODEL" score "$FIX" --bogus
expect2 "tokenize with no file" $N "$MODEL" tokenize
expect2 "generate without --prompt" $N "$MODEL" generate "$FIX"
expect2 "generate --max-tokens -1" $N "$MODEL" generate "$FIX" --prompt hi --max-tokens -1
expect2 "generate --temperature nan" $N "$MODEL" generate "$FIX" --prompt hi --temperature nan
expect2 "generate --temperature -1" $N "$MODEL" generate "$FIX" --prompt hi --temperature -1
expect2 "generate --top-p 2" $N "$MODEL" generate "$FIX" --prompt hi --top-p 2
expect2 "generate --top-k abc" $N "$MODEL" generate "$FIX" --prompt hi --top-k abc
expect2 "generate --seed 1e99" $N "$MODEL" generate "$FIX" --prompt hi --seed 1e99

# -------------------------------------------------------------------- ctl
section ctl-args
R=$T/run
expect2 "slime-ctl with no arguments" $N env -u SL_RUN_DIR "$CTL"
expect2 "slime-ctl status without a run dir" $N env -u SL_RUN_DIR "$CTL" status
expect2 "slime-ctl --run-dir without a value" $N "$CTL" --run-dir
expect2 "slime-ctl with an unknown option" $N "$CTL" --frobnicate x status
expect2 "slime-ctl --timeout 0" $N "$CTL" --run-dir "$R" --timeout 0 status
expect2 "slime-ctl --timeout abc" $N "$CTL" --run-dir "$R" --timeout abc status
expect2 "slime-ctl --timeout -5" $N "$CTL" --run-dir "$R" --timeout -5 status
expect2 "slime-ctl with an unknown command" $N "$CTL" --run-dir "$R" frobnicate
expect2 "slime-ctl with only a run dir" $N "$CTL" --run-dir "$R"
expect2 "slime-ctl status with an extra word" $N "$CTL" --run-dir "$R" status extra
expect2 "slime-ctl stop with an extra word" $N "$CTL" --run-dir "$R" stop now
expect2 "slime-ctl inject without an actor" $N "$CTL" --run-dir "$R" inject
expect2 "slime-ctl inject hang without seconds" $N "$CTL" --run-dir "$R" inject echo hang
expect2 "slime-ctl inject with too many words" $N "$CTL" --run-dir "$R" inject echo kill now please
expect2 "slime-ctl inject with a space in a word" $N "$CTL" --run-dir "$R" inject "echo 1" kill
expect2 "slime-ctl with an empty run dir" $N "$CTL" --run-dir "" status

per="$per end=$tried"
printf '\nmalformed inputs tried: %d, failed: %d\n' "$tried" "$failed"
printf 'per entry point:'
prev_name="" prev=0
for kv in $per; do
    n=${kv%%=*} v=${kv#*=}
    [ -n "$prev_name" ] && printf ' %s %d' "$prev_name" $((v - prev))
    prev_name=$n prev=$v
done
printf '\n'
[ "$tried" -ge 100 ] || { echo "fewer than 100 inputs tried"; exit 1; }
[ "$failed" -eq 0 ]
