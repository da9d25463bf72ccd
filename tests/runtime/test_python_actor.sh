#!/bin/sh
# A custom actor written in Python (tests/runtime/py_echo_actor.py, kind =
# exec, heartbeat = mailbox) joins a running topology and talks with a C
# actor: a `pinger` whose peer is the Python actor counts TEST replies. Then
# the Python actor is SIGSTOPped: the supervisor's mailbox PING goes
# unanswered, it is killed as hung and restarted; the exchange resumes; a
# SIGTERM to the supervisor stops both in reverse order, exit 0.
# Skips (77) when /usr/bin/python3 has no zmq module or the programs are not built.
set -u
. "$(dirname "$0")/../rl/lib.sh"
[ -x "$PY" ] && "$PY" -c 'import zmq' 2>/dev/null || { echo "no python3-zmq: skipped"; exit 77; }
sl_need slime-supervisor slime-actor slime-ctl
sl_tmp slpy

cat > "$T/t.conf" <<CONF
[supervisor]
heartbeat_ms = 100
heartbeat_timeout_ms = 1500

[actor py]
kind = exec
command = $PY $ROOT/tests/runtime/py_echo_actor.py
heartbeat = mailbox

[actor ping]
kind = pinger
peer = py
interval_ms = 20
CONF

"$BUILD/slime-supervisor" "$T/t.conf" --run-dir "$RUN" > "$T/sup.out" 2>&1 &
SUP=$!

wait_for 10 is py state running || fail "the Python actor never answered a mailbox heartbeat"
wait_for 10 is ping state running || fail "the pinger never started"
wait_for 10 replies_at_least 10 || fail "the pinger got no replies from the Python actor"
echo "ok: Python actor answers PING (heartbeat) and TEST (pinger: replies=$(ping_replies))"

PYPID=$(field py pid)
kill -STOP "$PYPID"
wait_for 8 is py last_exit hung || fail "a stopped Python actor was not detected as hung"
wait_for 8 is py state running || fail "the Python actor was not restarted"
[ "$(field py restarts)" = 1 ] || fail "restarts of py: $(field py restarts)"
[ "$(field py pid)" != "$PYPID" ] || fail "same pid after restart"
before=$(ping_replies)
wait_for 10 replies_at_least $((before + 10)) || fail "no replies after the restart"
echo "ok: stopped Python actor detected as hung over the mailbox and restarted; replies resumed"

kill -TERM "$SUP"
wait "$SUP"; rc=$?
SUP=
[ "$rc" = 0 ] || fail "supervisor exit $rc after SIGTERM"
stops=$(grep '^stop ' "$RUN/events.log" | tr '\n' ',')
[ "$stops" = "stop ping,stop py," ] || fail "stop order: $stops"
echo "ok: SIGTERM stopped ping then py, exit 0"
