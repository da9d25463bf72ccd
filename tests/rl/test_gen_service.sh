#!/bin/sh
# test_gen_service.sh — the rollout actor as a generation service
# (GENERATE/ABORT/TOKENIZE/DETOKENIZE/APPLY_CHAT_TEMPLATE, PROTOCOL.md §11):
# helper_gen_service plays the trainer and 8 callers (see
# tests/unit/helper_gen_service.c for the checks: continuous batching gives
# each caller the tokens it gets alone, stops, sessions, ABORT, malformed
# requests, heartbeats while generating) and, when /usr/bin/python3 has
# zmq, runs tests/rl/py_gen_caller.py as a Python caller.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${SL_BUILD:-$ROOT/build}
ACTOR=$B/slime-actor
DRIVER=$B/tests/helper_gen_service
[ -x "$ACTOR" ] && [ -x "$DRIVER" ] || { echo "needs $ACTOR and $DRIVER"; exit 77; }
D=$(mktemp -d /tmp/sl_gen.XXXXXX)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/run" && chmod 700 "$D/run"
cat > "$D/topology.conf" <<CONF
[run]
name = gentest
run_dir = $D/run
seed = 7

[actor trainer]
kind = trainer              ; declared, not started: the driver plays it

[actor rollout]
kind = rollout

[actor reward]
kind = reward               ; declared, not started: the driver plays it

[model]
path = builtin:arith

[rollout]
session_capacity = 4
n_samples_per_prompt = 4
CONF
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # the tiny model: one thread is fastest on a loaded machine
PY=""
if /usr/bin/python3 -c 'import zmq' 2>/dev/null; then
    PY="/usr/bin/python3 $ROOT/tests/rl/py_gen_caller.py"
else
    echo "note: /usr/bin/python3 has no zmq: the Python caller is skipped"
fi
# shellcheck disable=SC2086
timeout 150 "$DRIVER" "$ACTOR" "$D/topology.conf" "$D/run" $PY
rc=$?
if [ $rc -ne 0 ]; then
    for f in "$D"/run/*.log; do echo "--- $f"; tail -20 "$f"; done
fi
exit $rc
