#!/bin/sh
# `slime-ctl top` against a running demo topology (conf/demo.conf's actors,
# run dir in /tmp). Asserts:
#   - `top --once` lists every actor with its pid (the one `status --json`
#     reports), state running, CPU %, RSS and a messages/s rate (the actor
#     runtime's mailbox counters, RUN_DIR/stats/NAME.json, through status);
#   - with a metrics.jsonl present it shows the RL step of the last line
#     out of run.num_steps, its reward and the last eval accuracy;
#   - after a kill, the actor's new pid and its restart count;
#   - stdout not a terminal: `--count 2` prints two plain snapshots (no
#     escape sequences);
#   - bad arguments exit 2; no supervisor: exit 1.
# Skips (77) when the programs are not built.
set -u
. "$(dirname "$0")/../rl/lib.sh"
sl_need slime-supervisor slime-actor slime-ctl
sl_tmp sltop
fail() { echo "FAIL: $*"; echo "--- top output"; cat "$T/top.out" 2>/dev/null;
         echo "--- supervisor output"; cat "$T/sup.out" 2>/dev/null; exit 1; }
CTL="$BUILD/slime-ctl --run-dir $RUN"

"$BUILD/slime-supervisor" "$ROOT/conf/demo.conf" --run-dir "$RUN" --set run.num_steps=40 \
    > "$T/sup.out" 2>&1 &
SUP=$!

# wait until the three actors run
i=0
while :; do
    n=$($CTL status 2>/dev/null | grep -c ' running ')
    [ "$n" -eq 3 ] && break
    i=$((i + 1)); [ $i -gt 300 ] && fail "actors not running within 30 s"
    sleep 0.1
done
sleep 1.2 # let every runtime write its counters once

# pid NAME: from the status table
pid() { $CTL status | awk -v n="$1" '$1 == n { print $3 }'; }

$CTL top --once > "$T/top.out" 2>&1 || fail "top --once exit $?"
grep -q "no metrics yet" "$T/top.out" || fail "no 'no metrics yet' line"
for a in echo.0 echo.1 ping; do
    p=$(pid "$a")
    [ -n "$p" ] && [ "$p" -gt 0 ] || fail "no pid for $a in status"
    line=$(grep "^$a " "$T/top.out") || fail "$a missing from top"
    echo "$line" | awk -v p="$p" '{ exit !($3 == "running" && $4 == p && $5 == 0 && $6 ~ /^[0-9]+$/ &&
        $7 ~ /^[0-9.]+$/ && $7 > 1 && ($8 == "-" || $8 ~ /^[0-9]+$/) && $9 ~ /^[0-9.]+$/) }' || fail "bad line for $a (pid $p): $line"
done
# the pinger sends 5 TEST a second: its rate is real, not a placeholder
awk '$1 == "ping" { exit !($9 >= 2 && $9 <= 40) }' "$T/top.out" || fail "ping's messages/s not 2..40"

# metrics: an SFT line, the step-0 eval, two RL steps and an eval
cat > "$RUN/metrics.jsonl" <<EOF
{"step":5,"rl_step":0,"phase":"sft","loss":0.75,"tokens_per_s":900,"time":1}
{"step":5,"rl_step":0,"phase":"eval","reward_mean":0.4,"eval_accuracy":0.4,"time":2}
{"step":6,"rl_step":1,"phase":"rl","reward_mean":0.5,"tokens_per_s":1000,"samples_trained":64,"time":3}
{"step":7,"rl_step":2,"phase":"rl","reward_mean":0.625,"tokens_per_s":1234,"response_len_mean":7.5,"samples_trained":128,"time":4}
{"step":7,"rl_step":2,"phase":"eval","reward_mean":0.71,"eval_accuracy":0.71,"time":5}
{"step":8,"rl_step":3,"phase":"rl","reward_mean":0.
EOF
$CTL top --once > "$T/top.out" 2>&1 || fail "top --once with metrics exit $?"
grep -q "^run: rl step 2/40 | reward 0.625 | eval acc 0.710 (rl step 2) | 1234 tok/s | resp len 7.5 | 128 samples trained" \
    "$T/top.out" || fail "run line with metrics"

# kill one echo: new pid, one restart
old=$(pid echo.1)
$CTL inject echo.1 kill > /dev/null || fail "inject kill"
i=0
while :; do
    new=$(pid echo.1)
    [ -n "$new" ] && [ "$new" -gt 0 ] && [ "$new" != "$old" ] && $CTL status | grep -q '^echo.1 .* running ' && break
    i=$((i + 1)); [ $i -gt 100 ] && fail "echo.1 not restarted"
    sleep 0.1
done
$CTL top --count 2 --interval 300 > "$T/top.out" 2>&1 || fail "top --count 2 exit $?"
[ "$(grep -c '^slime top' "$T/top.out")" -eq 2 ] || fail "not two snapshots"
grep -q "$(printf '\033')" "$T/top.out" && fail "escape sequences when stdout is not a terminal"
grep "^echo.1 " "$T/top.out" | tail -1 | awk -v p="$new" '{ exit !($4 == p && $5 == 1) }' ||
    fail "echo.1 after the kill: want pid $new, 1 restart"

# usage errors
$CTL top --interval 5 > /dev/null 2>&1; [ $? -eq 2 ] || fail "--interval 5 not exit 2"
$CTL top --bogus > /dev/null 2>&1; [ $? -eq 2 ] || fail "--bogus not exit 2"
$CTL top --count x > /dev/null 2>&1; [ $? -eq 2 ] || fail "--count x not exit 2"

$CTL stop > /dev/null || fail "stop"
wait "$SUP"; rc=$?; SUP=
[ $rc -eq 0 ] || fail "supervisor exit $rc"
$CTL top --once > /dev/null 2>&1; [ $? -eq 1 ] || fail "top without a supervisor: not exit 1"
echo "ok: slime-ctl top"
