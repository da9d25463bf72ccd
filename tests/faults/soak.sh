#!/bin/sh
# tests/faults/soak.sh — `make soak`: random faults for SOAK_MINUTES
# (default 10). Scenario after scenario, each a shortened embedded default
# run (conf/topology.conf, 6..14 RL steps of 8 prompts x 4 samples) with a
# fault mix drawn from SOAK_SEED + the scenario number:
#   - 3..8 signal faults from the [faults] schedule (kill, hang, slow, drop,
#     corrupt of a random actor kind at a random step);
#   - 0..3 kill points inside the actors and a few dropped/corrupted
#     mailbox frames ([faults] points);
#   - every third scenario, the supervisor itself SIGKILLed mid-run and
#     started again with --set run.resume=auto.
# After each scenario it counts, from the ledger: samples lost (sample ids
# missing) and samples trained twice (ids repeated); and whether the run
# ended by itself (exit 0) with its steps, metrics to the last step and a
# loadable latest checkpoint.
# Prints per scenario one line, then the summary:
#   scenarios run, faults injected, restarts, samples lost, samples trained
#   twice, scenarios failed
# Exit 0 only when samples lost, trained twice and scenarios failed are all
# 0. Env: SOAK_MINUTES, SOAK_SEED (default: the time), SL_KEEP (keep runs).
set -u
. "$(dirname "$0")/../rl/lib.sh"
sl_setup slsoak
MIN=${SOAK_MINUTES:-10}
SEED=${SOAK_SEED:-$(date +%s)}
# a scenario that fails must not end the soak: fail() records and returns
FAILED=0
fail() { echo "  scenario $n FAILED: $*"; FAILED=$((FAILED + 1)); return 1; }
# (lib.sh's waits call fail and go on; a scenario is over at its first fail)

end=$(( $(date +%s) + MIN * 60 ))
n=0 faults=0 restarts=0 lost=0 twice=0
echo "soak: $MIN minute(s), seed $SEED"
while [ "$(date +%s)" -lt "$end" ]; do
    n=$((n + 1))
    RUN=$T/s$n
    mix=$("$PY" - "$SEED" "$n" <<'PYEOF'
import random, sys
r = random.Random("%s/%s" % (sys.argv[1], sys.argv[2]))
steps = r.randint(6, 14)
kinds = ["buffer", "trainer", "rollout", "reward"]
sched = []
for _ in range(r.randint(3, 8)):
    a = r.choice(["kill", "kill", "kill", "hang", "slow", "drop", "corrupt"])
    when = "rand" if r.random() < 0.5 else "step%d" % r.randint(1, steps - 1)
    sched.append("%s:%s@%s" % (a, r.choice(kinds), when))
pts = []
for p in r.sample(["buffer:wal_append", "buffer:wal_write", "buffer:wal_ack", "trainer:train_step",
                   "trainer:weights_publish", "trainer:ckpt_write", "rollout:rollout_generate",
                   "reward:reward_score"], r.randint(0, 3)):
    pts.append("%s=kill@r%d" % (p, 10))
if r.random() < 0.5:
    pts.append("mb_send=%s@r80x2" % r.choice(["drop", "corrupt"]))
print(steps, ",".join(sched), ",".join(pts) or "-", r.randint(0, 1 << 30))
PYEOF
)
    set -- $mix
    steps=$1 sched=$2 pts=$3 fseed=$4
    [ "$pts" = - ] && pts=
    supkill=$(( n % 3 == 0 ))
    # shellcheck disable=SC2086
    set -- $SL_SMALL --set run.num_steps="$steps" --set faults.seed="$fseed" --set "faults.schedule=$sched" \
        --set "faults.points=$pts"
    ok=1
    sl_start sup1.out "$@"
    if [ $supkill = 1 ]; then
        wait_ledger $(( steps / 2 )) 240 || ok=0
        if [ $ok = 1 ]; then
            kill -9 "$SUP"; wait "$SUP" 2>/dev/null; SUP=
            sleep 1
            faults=$((faults + 1))
            sl_start sup2.out "$@" --set run.resume=auto
        fi
    fi
    if [ $ok = 1 ]; then
        wait_end 400 || ok=0
        [ $ok = 1 ] && { [ "$SUP_RC" -eq 0 ] || fail "supervisor exit $SUP_RC" || ok=0; }
    fi
    [ -n "$SUP" ] && { kill -9 "$SUP" 2>/dev/null; wait "$SUP" 2>/dev/null; SUP=; }
    counts=$("$PY" - "$RUN" "$steps" 8 4 <<'PYEOF'
import json, sys
run, steps, rbs, nper = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
try:
    ledger = [json.loads(l) for l in open(run + "/ledger.jsonl") if l.strip()]
except OSError:
    ledger = []
ids = [s for r in ledger for s in r["sample_ids"]]
u = len(set(ids))
print(max(0, steps * rbs * nper - u) if [r["step"] for r in ledger] == list(range(1, steps + 1)) else
      max(0, len([r for r in ledger if r["step"] <= steps]) * rbs * nper - u), len(ids) - u)
PYEOF
)
    set -- $counts
    l=$1 d=$2
    if [ $ok = 1 ]; then
        [ "$(ledger_lines)" -eq "$steps" ] || fail "ledger has $(ledger_lines) of $steps steps" || ok=0
    fi
    [ $ok = 1 ] && { check_metrics "$steps" 9 || ok=0; }
    [ $ok = 1 ] && { check_ckpt || ok=0; }
    f=$(fault_count) r=$(restart_count)
    faults=$((faults + f)) restarts=$((restarts + r)) lost=$((lost + l)) twice=$((twice + d))
    sk=; [ $supkill = 1 ] && sk=" + supervisor SIGKILL"
    echo "scenario $n: $steps steps, faults $f$sk, restarts $r," \
         "lost $l, twice $d $( [ $ok = 1 ] && echo ok || echo FAILED) [$sched${pts:+ | $pts}]"
    [ $ok = 1 ] && [ -z "${SL_KEEP:-}" ] && rm -rf "$RUN"
done
echo "---- soak summary (seed $SEED, $MIN min)"
echo "scenarios run:         $n"
echo "faults injected:       $faults"
echo "restarts:              $restarts"
echo "samples lost:          $lost"
echo "samples trained twice: $twice"
echo "scenarios failed:      $FAILED"
[ "$lost" -eq 0 ] && [ "$twice" -eq 0 ] && [ "$FAILED" -eq 0 ]
