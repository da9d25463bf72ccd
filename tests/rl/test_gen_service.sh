#!/bin/sh
# test_gen_service.sh — the rollout actor as a generation service
# (GENERATE/ABORT/TOKENIZE/DETOKENIZE/APPLY_CHAT_TEMPLATE, PROTOCOL.md §11):
# helper_gen_service plays the trainer and 8 callers (see
# tests/unit/helper_gen_service.c for the checks: continuous batching gives
# each caller the tokens it gets alone, stops, sessions, ABORT, malformed
# requests, heartbeats while generating) and, when /usr/bin/python3 has
# zmq, runs tests/rl/py_gen_caller.py as a Python caller.
set -u
. "$(dirname "$0")/lib.sh"
sl_driver_setup sl_gen helper_gen_service
cat > "$T/topology.conf" <<CONF
[run]
name = gentest
run_dir = $RUN
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
sl_driver_run $PY
exit $?
