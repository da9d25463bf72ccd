#!/bin/sh
# [rollout] custom_generate_function_path (actors/workflow_plugin.h): a C
# hook for one sample's generation, hosted by build/slime-wf-plugin run as
# the workflow actor. The hook (tests/rl/plugin_calc_generate.c, built here
# with cc -shared) re-implements the <calc> tool loop: mask-1 model turns,
# mask-0 <result> observations. On a shortened conf/tool.conf:
#   1. round trip: exit 0; every RL step once in the ledger with whole groups
#      and no duplicate sample id; the buffer accepted every sample and refused
#      none; tool_calls / tool_call_rate / accuracy in every RL metrics line and
#      tool_calls > 0; the driver sent mask-0 tokens (its fini line counts them);
#   2. the hook crashes the driver once (SIGSEGV in step 2): the run still
#      completes with a complete ledger (the supervisor restarts the driver,
#      the buffer dispatches its groups again after rollout_timeout_ms,
#      shortened here to 5 s);
#   3. a missing file, a missing symbol, and no [rollout] workflow: the
#      supervisor refuses the topology with exit 2 and names the key.
# The shared run and checks are in tests/rl/lib.sh (sl_tool_run).
set -u
. "$(dirname "$0")/lib.sh"
command -v cc > /dev/null || { echo "no cc: skipped"; exit 77; }
sl_setup slcgen slime-wf-plugin

cc -shared -fPIC -O2 -Wall -Wextra -I"$ROOT/actors" -o "$T/calc.so" "$ROOT/tests/rl/plugin_calc_generate.c" ||
    fail "building the plugin"

PLUGIN="--set actor.tool.command=$BUILD/slime-wf-plugin"
# shellcheck disable=SC2086
sl_tool_run ok $PLUGIN --set rollout.custom_generate_function_path="$T/calc.so:calc_generate"
grep -q "custom generate .*calc.so:calc_generate" "$RUN/logs/tool.log" || fail "the driver did not load the hook"
obs=$(sed -n 's/.*samples sent (\([0-9]*\) mask-0 tokens).*/\1/p' "$RUN/logs/tool.log" | tail -1)
[ -n "$obs" ] && [ "$obs" -gt 0 ] || fail "no mask-0 (observation) tokens sent: '$obs'"
echo "ok 1: custom generate hook round trip ($obs mask-0 tokens)"

touch "$T/crashflag"
# the hook's SIGSEGV is the test: under `make asan` the driver dies of it as
# in the plain build (ASan's handler would report it as an error); the
# redispatch timeout is scaled by SL_TIME_SCALE: one shorter than a slow
# driver's restart sends the lost groups twice (the second copy refused)
# shellcheck disable=SC2086
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0" SL_TEST_CRASH_ONCE=$T/crashflag sl_tool_run crash $PLUGIN \
    --set rollout.custom_generate_function_path="$T/calc.so:calc_generate" --set rollout.rollout_timeout_ms=$((5000 * TS))
[ ! -e "$T/crashflag" ] || fail "the hook never crashed (the case tests nothing)"
grep -q "restarts tool:1" "$RUN/logs/supervisor.log" || fail "the driver was not restarted once"
grep -q "dispatched again" "$RUN/logs/buffer.log" || fail "the buffer did not dispatch the lost groups again"
echo "ok 2: a crashing hook: driver restarted, run complete"

refused() {
    want=$1; shift
    # shellcheck disable=SC2086
    (cd "$ROOT" && "$BUILD/slime-supervisor" conf/tool.conf --run-dir "$T/bad" $SL_TOOL_SMALL $PLUGIN "$@") > "$T/bad.out" 2>&1
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
