#!/bin/sh
# The Python implementation of the mailbox protocol (mailbox/python/
# slime_mailbox.py) talks to a C mailbox (build/tests/helper_mbpeer) both
# ways: requests, PING/PONG, user types, ERROR replies, malformed frames
# dropped by the C side, a clean STOP. Skips (77) when Debian's
# /usr/bin/python3 has no zmq module or the helper is not built.
set -u
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

"$HELPER" "$RUN" c_actor serve 30 > "$RUN/c.out" &
CPID=$!
i=0
until grep -q ready "$RUN/c.out" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "FAIL: C peer did not start"; exit 1; }
    sleep 0.05
done
PYTHONPATH="$ROOT/mailbox/python" SL_RUN_DIR="$RUN" SL_ACTOR_NAME=py_actor \
    "$PY" "$ROOT/tests/mailbox/python_peer.py" "$HELPER"
rc=$?
if [ $rc -ne 0 ]; then echo "FAIL: python peer exited $rc"; exit 1; fi
wait $CPID
crc=$?
if [ $crc -ne 0 ]; then echo "FAIL: C peer exited $crc (expected a clean STOP)"; exit 1; fi
echo "python <-> C mailbox exchange: ok"
