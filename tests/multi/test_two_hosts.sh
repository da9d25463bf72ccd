#!/bin/sh
# Two "hosts" on one machine: network namespaces slA (10.77.X.1) and slB
# (10.77.X.2) joined by a veth pair. The supervisor runs in slA with
# [run] transport = tcp (CURVE); the actor `echo` has host = 10.77.X.2 and
# is started in slB through the [cluster] launcher (launcher = command,
# launch_command = ip netns exec slB — the same path ssh or srun take:
# `PREFIX env SL_...=... slime-actor ...`); its mailbox binds on slB's
# address and the pinger in slA reaches it only over the veth. Checked:
# the --dry-run line, the echo's mailbox endpoint in slB, ping round trips
# across, a SIGKILL of the remote actor -> restarted by the supervisor
# (new pid, restarts = 1), round trips resume, clean stop (exit 0).
# Skips (77): not root, no `ip`, namespaces or veth refused (CI containers).
set -u
. "$(dirname "$0")/../rl/lib.sh"
[ "$(id -u)" = 0 ] || { echo "not root: skipped"; exit 77; }
command -v ip >/dev/null 2>&1 || { echo "no ip(8): skipped"; exit 77; }
[ -x "$PY" ] || { echo "no python3: skipped"; exit 77; }
sl_need slime-supervisor slime-actor slime-ctl

ID=$$
NA=slA$ID NB=slB$ID VA=va$ID VB=vb$ID
NET=10.77.$((ID % 250))
sl_tmp sl2h
cleanup() {
    sl_cleanup
    ip netns del "$NA" 2>/dev/null
    ip netns del "$NB" 2>/dev/null
}
trap cleanup EXIT
if ! { ip netns add "$NA" && ip netns add "$NB"; } 2>"$T/ns.err"; then
    echo "network namespaces refused ($(head -1 "$T/ns.err")): skipped"; exit 77
fi
if ! { ip link add "$VA" type veth peer name "$VB" &&
       ip link set "$VA" netns "$NA" && ip link set "$VB" netns "$NB" &&
       ip -n "$NA" addr add "$NET.1/24" dev "$VA" && ip -n "$NB" addr add "$NET.2/24" dev "$VB" &&
       ip -n "$NA" link set "$VA" up && ip -n "$NB" link set "$VB" up &&
       ip -n "$NA" link set lo up && ip -n "$NB" link set lo up; } 2>"$T/veth.err"; then
    echo "veth pair refused ($(head -1 "$T/veth.err")): skipped"; exit 77
fi
cat > "$T/t.conf" <<CONF
[run]
transport = tcp
tcp_address = $NET.1
[supervisor]
heartbeat_ms = 100
heartbeat_timeout_ms = 2000
[cluster]
launcher = command
launch_command = ip netns exec $NB
[actor echo]
kind = echo
host = $NET.2
[actor ping]
kind = pinger
peer = echo
interval_ms = 20
CONF

# the command line, without running it
"$BUILD/slime-supervisor" "$T/t.conf" --run-dir "$RUN" --dry-run > "$T/dry.out" 2>&1 || fail "dry run: $(cat "$T/dry.out")"
grep -q "^ip netns exec $NB env SL_RUN_DIR=$RUN .*SL_MB_TCP=$NET.2 $BUILD/slime-actor --kind echo --name echo\$" "$T/dry.out" ||
    fail "dry-run line: $(cat "$T/dry.out")"
echo "ok: --dry-run prints: $(grep "^ip netns" "$T/dry.out" | cut -c1-100)..."

ip netns exec "$NA" "$BUILD/slime-supervisor" "$T/t.conf" --run-dir "$RUN" > "$T/sup.out" 2>&1 &
SUP=$!

wait_for 15 is echo state running || fail "the remote echo never answered a mailbox heartbeat"
wait_for 10 is ping state running || fail "the pinger never started"
grep -qx "tcp://$NET.2:[0-9]*" "$RUN/mb/echo.tcp" || fail "echo's endpoint: $(cat "$RUN/mb/echo.tcp" 2>/dev/null)"
grep -qx "tcp://$NET.1:[0-9]*" "$RUN/mb/ping.tcp" || fail "ping's endpoint: $(cat "$RUN/mb/ping.tcp" 2>/dev/null)"
[ -s "$RUN/curve.key" ] || fail "no CURVE key"
wait_for 15 replies_at_least 10 || fail "the pinger got no replies across the namespaces"
echo "ok: round trips slA -> slB over tcp+CURVE ($(cat "$RUN/mb/echo.tcp") answers; replies=$(ping_replies))"

EPID=$(field echo pid)
[ -n "$EPID" ] || fail "no pid for echo"
# the actor really runs in slB
[ "$(readlink /proc/"$EPID"/ns/net)" = "$(ip netns exec "$NB" readlink /proc/self/ns/net)" ] ||
    fail "echo (pid $EPID) is not in namespace $NB"
kill -KILL "$EPID"
wait_for 15 is echo restarts 1 || fail "the remote echo was not restarted (restarts $(field echo restarts))"
wait_for 15 is echo state running || fail "the restarted echo is not running"
[ "$(field echo pid)" != "$EPID" ] || fail "same pid after restart"
before=$(ping_replies)
wait_for 15 replies_at_least $((before + 10)) || fail "no round trips after the restart (replies $(ping_replies))"
echo "ok: SIGKILLed remote actor restarted in $NB (pid $EPID -> $(field echo pid)); round trips resumed (replies=$(ping_replies))"

kill -TERM "$SUP"
wait "$SUP"; rc=$?
SUP=
[ "$rc" = 0 ] || fail "supervisor exit $rc"
echo "PASS: supervisor in $NA, actor in $NB over tcp+CURVE: round trip, kill/restart, clean stop"
