#!/bin/bash
# Regression for a supervisor deadlock: with nng's cooked SURVEYOR, the
# survey deadline timer could fire while the next survey was being sent and
# the supervisor hung for good inside nng_send (nng 1.5.2; seen within ~70
# kills at a 10 ms heartbeat). Here 8 echo actors are surveyed every 10 ms
# while random children are SIGKILLed 250 times; after every kill the
# supervisor must answer `slime-ctl status` within 5 s, restart everything
# (each kill is followed by a restart), and stop cleanly (exit 0).
# Skips (77) when the programs are not built. Waits are multiplied by
# SL_TIME_SCALE (an integer, default 1; `make asan` sets it).
set -u
. "$(dirname "$0")/../rl/lib.sh"
sl_need slime-supervisor slime-actor slime-ctl
KILLS=${SL_STORM_KILLS:-250}
sl_tmp slstorm
fail() { echo "FAIL: $*"; echo "--- supervisor output (tail)"; tail -20 "$T/sup.out"; exit 1; }

cat > "$T/t.conf" <<CONF
[supervisor]
strategy = one_for_one
intensity = 10000
period = 1
heartbeat_ms = 10
heartbeat_timeout_ms = $((3000 * TS))

[actor echo]
kind = echo
count = 8
shutdown_ms = 500
CONF

"$BUILD/slime-supervisor" "$T/t.conf" --run-dir "$RUN" > "$T/sup.out" 2>&1 &
SUP=$!
i=0
until [ "$(grep -c 'is running' "$T/sup.out")" -ge 8 ]; do
    i=$((i + 1)); [ $i -gt $((100 * TS)) ] && fail "8 echo actors not running within $((10 * TS)) s"
    sleep 0.1
done
killed=0
for k in $(seq 1 "$KILLS"); do
    victim=$(pgrep -P "$SUP" | shuf -n 1)
    [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null && killed=$((killed + 1))
    sleep 0.0$((RANDOM % 5 + 1))
    timeout $((5 * TS)) "$BUILD/slime-ctl" --run-dir "$RUN" --timeout $((5000 * TS)) status > /dev/null 2>&1 ||
        fail "supervisor did not answer status within $((5 * TS)) s after kill $k"
done
i=0
until [ "$(pgrep -P "$SUP" | wc -l)" -eq 8 ]; do
    i=$((i + 1)); [ $i -gt $((100 * TS)) ] && fail "not 8 children again within $((10 * TS)) s"
    sleep 0.1
done
timeout $((20 * TS)) "$BUILD/slime-ctl" --run-dir "$RUN" stop > /dev/null || fail "slime-ctl stop"
wait "$SUP"; rc=$?; SUP=
[ $rc -eq 0 ] || fail "supervisor exit $rc"
started=$(grep -c 'INFO started echo' "$T/sup.out")
[ "$started" -ge $((8 + killed)) ] || fail "$killed kills but only $started starts"
echo "PASS: $killed SIGKILLs at a 10 ms heartbeat, the supervisor answered after each ($started starts), exit 0"
