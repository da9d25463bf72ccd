#!/bin/sh
# Actor crashes in a shortened default run (conf/topology.conf under
# build/slime-supervisor): the trainer is SIGKILLed (slime-ctl inject
# trainer kill) after RL step 5 is in the ledger — it restarts from its
# step-3 checkpoint and cuts the ledger back to 3, so the buffer must
# rewind and re-send steps 4.. from its WAL — and later the rollout is
# SIGKILLed once (its groups are dispatched again after rollout_timeout_ms,
# set short here). Asserts:
#   - the run ends by itself, exit 0;
#   - the ledger holds steps 1..N each exactly once and every sample id
#     exactly once (16 prompts x 8 samples a step);
#   - metrics.jsonl has each RL step once;
#   - the buffer logged the rewind.
#   - a trainer killed while a batch was in flight to it (lost batch, no
#     answer) is found by the buffer's STATUS probe (logged, not asserted:
#     timing decides whether the batch was out).
# Env: SL_RL_CRASH_STEPS (default 10). Skips (77) when not built.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
PY=/usr/bin/python3
for p in slime-supervisor slime-actor slime-ctl; do
    [ -x "$BUILD/$p" ] || { echo "$BUILD/$p not built: skipped"; exit 77; }
done
[ -x "$PY" ] || { echo "no $PY: skipped"; exit 77; }

STEPS=${SL_RL_CRASH_STEPS:-10}
T=$(mktemp -d /tmp/slcrash.XXXXXX)
RUN=$T/run
SUP=
cleanup() { [ -n "$SUP" ] && kill -9 "$SUP" 2>/dev/null; [ -n "${SL_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- supervisor output"; tail -30 "$T"/sup.out 2>/dev/null;
         for f in "$RUN"/logs/*.log; do echo "--- $f"; tail -25 "$f"; done; exit 1; }
ledger_lines() { cat "$RUN/ledger.jsonl" 2>/dev/null | wc -l; }
# wait_ledger N SECONDS: until the ledger has N lines
wait_ledger() {
    i=0
    while [ "$(ledger_lines)" -lt "$1" ]; do
        kill -0 "$SUP" 2>/dev/null || fail "the run ended before $1 ledger lines"
        i=$((i + 1)); [ $i -gt $(($2 * 10)) ] && fail "no $1 ledger lines within $2 s"
        sleep 0.1
    done
}

start=$(date +%s)
"$BUILD/slime-supervisor" "$ROOT/conf/topology.conf" --run-dir "$RUN" --set run.num_steps="$STEPS" \
    --set sft.steps=20 --set eval.n_prompts=20 --set trainer.save_interval=3 --set trainer.eval_interval=5 \
    --set rollout.rollout_timeout_ms=3000 --set rollout.rollout_batch_size=16 --set rollout.n_samples_per_prompt=8 \
    --set trainer.global_batch_size=128 --set trainer.micro_batch_size=64 > "$T/sup.out" 2>&1 &
SUP=$!

# 1. the trainer dies after step 5 (last checkpoint: step 3)
wait_ledger 5 180
"$BUILD/slime-ctl" --run-dir "$RUN" inject trainer kill > /dev/null || fail "inject trainer kill"
echo "trainer killed with $(ledger_lines) ledger line(s)"
# 2. once the restarted trainer is past step 6 again, the rollout dies
sleep 1
wait_ledger 6 180
"$BUILD/slime-ctl" --run-dir "$RUN" inject rollout kill > /dev/null || fail "inject rollout kill"
echo "rollout killed with $(ledger_lines) ledger line(s)"
# 3. after step 7 the trainer is stopped (SIGSTOP) so that the batch of step
#    8 reaches it and is lost with it, then killed: no answer ever comes for
#    that batch; the buffer's STATUS probe finds the restarted trainer idle
#    at its step-6 checkpoint and re-sends 7 and 8
wait_ledger 7 180
"$BUILD/slime-ctl" --run-dir "$RUN" inject trainer pause > /dev/null || fail "inject trainer pause"
sleep 4
"$BUILD/slime-ctl" --run-dir "$RUN" inject trainer kill > /dev/null || fail "inject trainer kill (paused)"
echo "paused trainer killed with $(ledger_lines) ledger line(s)"

i=0
while kill -0 "$SUP" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 2400 ] && fail "run not done within 240 s"
    sleep 0.1
done
wait "$SUP"; rc=$?; SUP=
[ $rc -eq 0 ] || fail "supervisor exit $rc"
echo "wall time $(( $(date +%s) - start )) s"

"$PY" - "$RUN" "$STEPS" <<'PYEOF' || fail "checks"
import json, sys
run, steps = sys.argv[1], int(sys.argv[2])
ledger = [json.loads(l) for l in open(run + "/ledger.jsonl") if l.strip()]
got = [r["step"] for r in ledger]
assert got == list(range(1, steps + 1)), "ledger steps %s" % got
ids = [s for r in ledger for s in r["sample_ids"]]
assert len(ids) == len(set(ids)), "duplicate sample ids: %d of %d unique" % (len(set(ids)), len(ids))
assert len(ids) == steps * 16 * 8, "%d sample ids, expected %d" % (len(ids), steps * 16 * 8)
m = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
rl = [x["rl_step"] for x in m if x["phase"] == "rl"]
assert rl == list(range(1, steps + 1)), "metrics rl steps %s" % rl
ev = [x["rl_step"] for x in m if x["phase"] == "eval"]
assert len(ev) == len(set(ev)), "eval steps %s" % ev
print("ledger: %d steps, %d unique sample ids; evals at %s" % (len(got), len(set(ids)), ev))
PYEOF
grep -q "the trainer is behind" "$RUN/logs/buffer.log" || fail "the buffer did not rewind after the trainer's restart"
redis=$(grep -c "dispatched again" "$RUN/logs/buffer.log")
probe=$(grep -c "idle, no TRAIN_DONE" "$RUN/logs/buffer.log")
echo "PASS: trainer and rollout killed mid-run: $STEPS steps, complete ledger (groups dispatched again: $redis, lost batches found by the probe: $probe)"
