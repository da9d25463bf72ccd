#!/bin/sh
# [rollout] custom_generate_function_path (actors/workflow_plugin.h): a C
# hook for one sample's generation, hosted by build/slime-wf-plugin run as
# the workflow actor. The hook (tests/rl/plugin_calc_generate.c, built here
# with cc -shared) re-implements the <calc> tool loop: mask-1 model turns,
# mask-0 <result> observations. On a shortened conf/tool.conf:
#   1. round trip: exit 0; every RL step once in the ledger with whole groups
#      and no duplicate sample id; the buffer accepted and refused nothing;
#      tool_calls / tool_call_rate / accuracy in every RL metrics line and
#      tool_calls > 0; the driver sent mask-0 tokens (its fini line counts them);
#   2. the hook crashes the driver once (SIGSEGV in step 2): the run still
#      completes with a complete ledger (the supervisor restarts the driver,
#      the buffer dispatches its groups again after rollout_timeout_ms,
#      shortened here to 5 s);
#   3. a missing file, a missing symbol, and no [rollout] workflow: the
#      supervisor refuses the topology with exit 2 and names the key.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
PY=/usr/bin/python3
# SL_TIME_SCALE (an integer, default 1; `make asan` sets it) multiplies the
# deadline and rollout_timeout_ms: a redispatch timeout shorter than a slow
# driver's restart sends the lost groups twice (the second copy refused)
TS=${SL_TIME_SCALE:-1}
for p in slime-supervisor slime-actor slime-wf-plugin; do
    [ -x "$BUILD/$p" ] || { echo "$BUILD/$p not built: skipped"; exit 77; }
done
[ -x "$PY" ] || { echo "no $PY: skipped"; exit 77; }
command -v cc > /dev/null || { echo "no cc: skipped"; exit 77; }

T=$(mktemp -d /tmp/slcgen.XXXXXX)
SUP=
cleanup() { [ -n "$SUP" ] && kill -9 "$SUP" 2>/dev/null; [ -n "${SL_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"; }
trap cleanup EXIT
RUN=
fail() { echo "FAIL: $*"; echo "--- supervisor output"; tail -20 "$T/sup.out" 2>/dev/null;
         for f in "$RUN"/logs/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

cc -shared -fPIC -O2 -Wall -Wextra -I"$ROOT/actors" -o "$T/calc.so" "$ROOT/tests/rl/plugin_calc_generate.c" ||
    fail "building the plugin"

STEPS=3
RBS=8
NPER=4
COMMON="--set run.num_steps=$STEPS --set sft.steps=300 --set data.arith_tool_share=1 --set data.arith_train_size=9600
 --set rollout.rollout_batch_size=$RBS --set rollout.n_samples_per_prompt=$NPER
 --set trainer.global_batch_size=$((RBS * NPER)) --set trainer.micro_batch_size=$((RBS * NPER))
 --set eval.n_prompts=16 --set trainer.eval_interval=0 --set trainer.save_interval=0
 --set actor.tool.command=$BUILD/slime-wf-plugin"
run() {
    RUN=$T/$1; shift
    # shellcheck disable=SC2086
    (cd "$ROOT" && "$BUILD/slime-supervisor" conf/tool.conf --run-dir "$RUN" $COMMON "$@") > "$T/sup.out" 2>&1 &
    SUP=$!
    i=0
    while kill -0 "$SUP" 2>/dev/null; do
        i=$((i + 1)); [ $i -gt $((3000 * TS)) ] && fail "$RUN: not done within $((300 * TS)) s"
        sleep 0.1
    done
    wait "$SUP"; rc=$?; SUP=
    [ $rc -eq 0 ] || fail "$RUN: supervisor exit $rc"
    "$PY" - "$RUN" "$STEPS" "$RBS" "$NPER" <<'PYEOF' || fail "$RUN: checks"
import json, sys
run, steps, rbs, nper = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ledger = [json.loads(l) for l in open(run + "/ledger.jsonl") if l.strip()]
assert [r["step"] for r in ledger] == list(range(1, steps + 1)), "ledger steps"
ids = [s for r in ledger for s in r["sample_ids"]]
assert len(ids) == len(set(ids)) == steps * rbs * nper, "sample ids: %d, %d unique" % (len(ids), len(set(ids)))
m = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
rl = [x for x in m if x["phase"] == "rl"]
assert len(rl) == steps, "metrics lines: %d rl" % len(rl)
for x in rl:
    for k in ("tool_call_rate", "tool_calls", "tool_errors", "accuracy", "wf_accepted", "wf_refused"):
        assert k in x, "rl line lacks %s" % k
assert rl[-1]["wf_refused"] == {}, "refusals: %s" % rl[-1]["wf_refused"]
calls = sum(x["tool_calls"] for x in rl)
assert calls > 0, "the model never called the calculator"
print("tool_call_rate by RL step %s" % [round(x["tool_call_rate"], 3) for x in rl])
PYEOF
}

run ok --set rollout.custom_generate_function_path="$T/calc.so:calc_generate"
grep -q "custom generate .*calc.so:calc_generate" "$RUN/logs/tool.log" || fail "the driver did not load the hook"
obs=$(sed -n 's/.*samples sent (\([0-9]*\) mask-0 tokens).*/\1/p' "$RUN/logs/tool.log" | tail -1)
[ -n "$obs" ] && [ "$obs" -gt 0 ] || fail "no mask-0 (observation) tokens sent: '$obs'"
echo "ok 1: custom generate hook round trip ($obs mask-0 tokens)"

touch "$T/crashflag"
# the hook's SIGSEGV is the test: under `make asan` the driver dies of it as
# in the plain build (ASan's handler would report it as an error)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0" SL_TEST_CRASH_ONCE=$T/crashflag run crash --set rollout.custom_generate_function_path="$T/calc.so:calc_generate" \
    --set rollout.rollout_timeout_ms=$((5000 * TS))
[ ! -e "$T/crashflag" ] || fail "the hook never crashed (the case tests nothing)"
grep -q "restarts tool:1" "$RUN/logs/supervisor.log" || fail "the driver was not restarted once"
grep -q "dispatched again" "$RUN/logs/buffer.log" || fail "the buffer did not dispatch the lost groups again"
echo "ok 2: a crashing hook: driver restarted, run complete"

refused() {
    want=$1; shift
    (cd "$ROOT" && "$BUILD/slime-supervisor" conf/tool.conf --run-dir "$T/bad" $COMMON "$@") > "$T/bad.out" 2>&1
    rc=$?
    [ $rc -eq 2 ] || { cat "$T/bad.out"; fail "$*: exit $rc, not 2"; }
    grep -q "$want" "$T/bad.out" || { cat "$T/bad.out"; fail "$*: no '$want' in the error"; }
}
refused "cannot read" --set rollout.custom_generate_function_path="$T/nope.so:calc_generate"
refused "has no symbol 'nope'" --set rollout.custom_generate_function_path="$T/calc.so:nope"
refused "has no symbol 'slime_custom_generate'" --set rollout.custom_generate_function_path="$T/calc.so"
refused "needs \[rollout\] workflow" --set rollout.workflow= --set rollout.custom_generate_function_path="$T/calc.so:calc_generate"
echo "ok 3: bad path / symbol / no workflow refused with exit 2"
echo "PASS: custom generate hook"
