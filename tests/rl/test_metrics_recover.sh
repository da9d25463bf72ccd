#!/bin/sh
# metrics.jsonl lines the buffer rebuilds from its WAL (actors/buffer.c
# recover_metrics): a shortened default run (SL_SMALL, 6 RL steps) is
# stopped once a checkpoint of RL step >= 3 exists; the RL metrics lines of
# steps 2..CKPT are then removed (as if their TRAIN_DONE never reached the
# buffer) and the run resumed. Asserts: exit 0; the buffer log says each of
# those steps was rebuilt from the WAL and no other; their lines carry
# "recovered": true and the others do not; samples_trained counts 32 per
# step throughout; metrics and ledger complete (steps 1..6, each once,
# whole groups). Skips (77) when the programs are not built.
set -u
. "$(dirname "$0")/lib.sh"
sl_setup slrecover
# shellcheck disable=SC2086
set -- $SL_SMALL --set run.num_steps=6

sl_start sup1.out "$@"
# the trainer writes the checkpoint before the buffer writes that step's
# metrics line (on TRAIN_DONE): under load a stop can fall in between, so
# wait for both
i=0
while :; do
    c=$(sed -n 's/^step_0*\([0-9][0-9]*\)$/\1/p' "$RUN/checkpoints/latest" 2>/dev/null)
    [ -n "$c" ] && [ "$c" -ge 3 ] &&
        grep -q "\"rl_step\":$c,\"phase\":\"rl\"" "$RUN/metrics.jsonl" 2>/dev/null && break
    kill -0 "$SUP" 2>/dev/null || fail "the run ended before a checkpoint of RL step 3"
    i=$((i + 1)); [ $i -gt $((1800 * TS)) ] && fail "no checkpoint of RL step 3 (and its metrics line) within $((180 * TS)) s"
    sleep 0.1
done
"$BUILD/slime-ctl" --run-dir "$RUN" stop > /dev/null || fail "slime-ctl stop"
wait "$SUP"; rc=$?; SUP=
[ $rc -eq 0 ] || fail "stopped supervisor exit $rc"
CKPT=$(sed -n 's/^step_0*\([0-9][0-9]*\)$/\1/p' "$RUN/checkpoints/latest")
"$PY" - "$RUN" "$CKPT" <<'PYEOF' || fail "cutting metrics.jsonl"
import json, sys
p, ckpt = sys.argv[1] + "/metrics.jsonl", int(sys.argv[2])
lines = [l for l in open(p) if l.strip()]
keep = [l for l in lines if not (json.loads(l)["phase"] == "rl" and 2 <= json.loads(l)["rl_step"] <= ckpt)]
assert len(lines) - len(keep) == ckpt - 1, "metrics.jsonl held %d of RL steps 2..%d" % (len(lines) - len(keep), ckpt)
open(p, "w").writelines(keep)
PYEOF
echo "stopped at checkpoint $CKPT; RL metrics lines 2..$CKPT removed"

sl_start sup2.out "$@" --set run.resume=auto
wait_end 240
[ "$SUP_RC" -eq 0 ] || fail "resumed supervisor exit $SUP_RC"
got=$(sed -n 's/.*metrics of RL step \([0-9]*\) rebuilt from the WAL.*/\1/p' "$RUN/logs/buffer.log" | tr '\n' ' ')
[ "$got" = "$(seq -s ' ' 2 "$CKPT") " ] || fail "rebuilt from the WAL: '$got', expected 2..$CKPT"
check_metrics 6
check_ledger 6 8 4 groups
"$PY" - "$RUN" "$CKPT" <<'PYEOF' || fail "recovered lines"
import json, sys
run, ckpt = sys.argv[1], int(sys.argv[2])
rl = [x for x in map(json.loads, open(run + "/metrics.jsonl")) if x["phase"] == "rl"]
assert [x["rl_step"] for x in rl] == list(range(1, 7)), "rl steps %s" % [x["rl_step"] for x in rl]
rec = [x["rl_step"] for x in rl if x.get("recovered")]
assert rec == list(range(2, ckpt + 1)), "recovered lines %s, expected 2..%d" % (rec, ckpt)
for x in rl:
    assert x["samples_trained"] == 32 * x["rl_step"], "step %d: samples_trained %s" % (x["rl_step"], x["samples_trained"])
    assert x.get("samples_step", 32) == 32, "step %d: samples_step %s" % (x["rl_step"], x.get("samples_step"))
print("recovered lines of RL steps %s; samples_trained 32 per step" % rec)
PYEOF
echo "PASS: metrics rebuilt from the WAL for RL steps 2..$CKPT"
