#!/bin/sh
# The Python implementation of the mailbox protocol (mailbox/python/
# slime_mailbox.py) talks to a C mailbox (build/tests/helper_mbpeer) both
# ways: requests, PING/PONG, user types, ERROR replies, malformed frames
# dropped by the C side, a clean STOP. Skips (77) when Debian's
# /usr/bin/python3 has no zmq module or the helper is not built.
# Waits are multiplied by SL_TIME_SCALE (an integer, default 1; `make asan`
# sets it).
set -u
TS=${SL_TIME_SCALE:-1}
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
PY=/usr/bin/python3
HELPER=$BUILD/tests/helper_mbpeer
if ! [ -x "$PY" ] || ! "$PY" -c 'import zmq' 2>/dev/null; then
    echo "skip: $PY has no zmq module (apt-get install python3-zmq)"; exit 77
fi
[ -x "$HELPER" ] || { echo "skip: $HELPER not built"; exit 77; }
RUN=$(mktemp -d /tmp/slpyXXXXXX) || exit 1
chmod 700 "$RUN"
trap 'kill $CPID 2>/dev/null; rm -rf "$RUN"' EXIT INT TERM

"$HELPER" "$RUN" c_actor serve $((30 * TS)) > "$RUN/c.out" &
CPID=$!
i=0
until grep -q ready "$RUN/c.out" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt $((100 * TS)) ] && { echo "FAIL: C peer did not start"; exit 1; }
    sleep 0.05
done
PYTHONPATH="$ROOT/mailbox/python" SL_RUN_DIR="$RUN" SL_ACTOR_NAME=py_actor \
    "$PY" "$ROOT/tests/mailbox/python_peer.py" "$HELPER"
rc=$?
if [ $rc -ne 0 ]; then echo "FAIL: python peer exited $rc"; exit 1; fi
wait $CPID
crc=$?
if [ $crc -ne 0 ]; then echo "FAIL: C peer exited $crc (expected a clean STOP)"; exit 1; fi

# The kind = exec actor program, started as the supervisor starts it (env
# only), driven by the C helper: PING, a user type, ERROR, then SIGTERM.
SL_RUN_DIR="$RUN" SL_ACTOR_NAME=pyexec SL_ACTOR_KIND=exec SL_TOPOLOGY=/dev/null \
    "$PY" "$ROOT/tests/mailbox/custom_actor.py" 2> "$RUN/py.err" &
CPID=$!
i=0
until [ -S "$RUN/mb/pyexec" ]; do
    i=$((i + 1)); [ $i -gt $((100 * TS)) ] && { echo "FAIL: custom_actor.py did not bind"; cat "$RUN/py.err"; exit 1; }
    sleep 0.05
done
out=$("$HELPER" "$RUN" drv ping pyexec 31337 $((3000 * TS))) || { echo "FAIL: ping custom_actor.py: $out"; exit 1; }
echo "ok   custom_actor.py answers PING ($out)"
out=$("$HELPER" "$RUN" drv request pyexec 0x8001 "exec actor" $((3000 * TS))) || { echo "FAIL: user type: $out"; exit 1; }
[ "$out" = "0x8001 EXEC ACTOR" ] || [ "$out" = "USER EXEC ACTOR" ] || { echo "FAIL: user type gave '$out'"; exit 1; }
echo "ok   custom_actor.py answers a user type ($out)"
out=$("$HELPER" "$RUN" drv request pyexec 0x8002 "?" $((3000 * TS))); rc=$?
[ $rc -eq 1 ] || { echo "FAIL: expected an ERROR reply, got rc $rc '$out'"; exit 1; }
echo "ok   custom_actor.py answers an unknown request with ERROR ($out)"
kill -TERM $CPID
wait $CPID
crc=$?
[ $crc -eq 0 ] || { echo "FAIL: custom_actor.py exited $crc on SIGTERM"; cat "$RUN/py.err"; exit 1; }
[ ! -e "$RUN/mb/pyexec" ] || { echo "FAIL: custom_actor.py left its socket"; exit 1; }
echo "ok   custom_actor.py exits 0 on SIGTERM and removes its socket"
echo "python <-> C mailbox exchange: ok"
