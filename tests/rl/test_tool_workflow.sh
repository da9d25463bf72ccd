#!/bin/sh
# The example tool workflows round trip in real runs of conf/tool.conf
# (shortened: SFT 300 steps with every target in the tool form, 3 GRPO
# steps of 8 prompts x 4 samples, evals of 16 prompts):
#   1. C: build/slime-wf-tool (actors/wf_tool.h) as the workflow actor;
#   2. Python: bin/wf_tool.py (python3-zmq; that case skips alone without it),
#      started by the supervisor with kind = exec.
# Each asserts: exit 0; every RL step in the ledger once with whole groups and
# no duplicate sample id; the buffer accepted the workflow's samples and
# refused none; the model called the calculator (tool_calls > 0 summed over
# the run's RL metrics lines) and tool_call_rate / accuracy are in every RL line;
# the engine answered GENERATE (the workflow's log has no engine error).
# Skips (77) when the programs are not built.
# The shared run and checks are in tests/rl/lib.sh (sl_tool_run).
set -u
. "$(dirname "$0")/lib.sh"
sl_setup sltool slime-wf-tool

sl_tool_run c --set actor.tool.command="$BUILD/slime-wf-tool"   # the build under test (make asan: build/asan)
if grep -q "GENERATE for group" "$RUN/logs/tool.log"; then fail "engine errors in the C workflow's log"; fi
echo "ok 1: C tool workflow round trip"
if "$PY" -c "import zmq" 2>/dev/null; then
    sl_tool_run py --set actor.tool.command="$PY $ROOT/bin/wf_tool.py"
    grep -q "wf_tool.py: tool ready" "$RUN/logs/tool.log" || fail "the Python workflow did not start"
    if grep -q "wf_tool.py: GENERATE for group" "$RUN/logs/tool.log"; then fail "engine errors in the Python workflow's log"; fi
    # same seeds, same engine: the twins should make the same samples (informational)
    same=$("$PY" -c "
import json, sys
def f(r): return [(x['reward_mean'], x['response_len_mean'], x['tool_calls']) for x in map(json.loads, open(r + '/metrics.jsonl')) if x['phase'] == 'rl']
print('identical' if f(sys.argv[1]) == f(sys.argv[2]) else 'different')" "$T/c" "$T/py")
    echo "ok 2: Python tool workflow round trip (per-step figures $same to the C workflow's)"
else
    echo "no python3-zmq: case 2 skipped"
fi
echo "PASS: tool workflows"
