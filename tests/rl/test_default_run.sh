#!/bin/sh
# A shortened embedded default run (conf/topology.conf: SFT warm-up, then
# GRPO on builtin:arith, with buffer, trainer, rollout and reward actors
# under build/slime-supervisor), stopped mid-way with `slime-ctl stop` and
# resumed with --set run.resume=auto. Asserts:
#   - the run ends by itself (the buffer stops it), exit 0, with exactly
#     NUM_STEPS RL steps in metrics.jsonl (each once) and in ledger.jsonl;
#   - the ledger holds every trained sample id exactly once: steps 1..N,
#     32 prompts x 16 samples each (the conf's rollout sizes, set here
#     explicitly), no duplicate and no gap;
#   - learning happened: the final eval accuracy is above the step-0 eval
#     (taken right after the warm-up), or the mean RL reward of the last
#     steps is above that of the first steps.
# The warm-up is the conf's sloppy teacher (SFT targets that forget carries),
# shortened; RL prompts are fresh train-split problems.
# Env: SL_RL_TEST_STEPS (default 120), SL_RL_TEST_SFT (default 2000).
# Skips (77) when the programs are not built.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
PY=/usr/bin/python3
for p in slime-supervisor slime-actor slime-ctl; do
    [ -x "$BUILD/$p" ] || { echo "$BUILD/$p not built: skipped"; exit 77; }
done
[ -x "$PY" ] || { echo "no $PY: skipped"; exit 77; }

STEPS=${SL_RL_TEST_STEPS:-120}
SFT=${SL_RL_TEST_SFT:-2000}
RBS=32
NPER=16
T=$(mktemp -d /tmp/slrl.XXXXXX)
RUN=$T/run
SUP=
cleanup() { [ -n "$SUP" ] && kill -9 "$SUP" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- supervisor output"; tail -30 "$T"/sup*.out 2>/dev/null;
         for f in "$RUN"/logs/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

set -- --run-dir "$RUN" --set run.num_steps="$STEPS" --set sft.steps="$SFT" \
    --set eval.n_prompts=100 --set trainer.eval_interval=0 --set trainer.save_interval=2 \
    --set rollout.rollout_batch_size=$RBS --set rollout.n_samples_per_prompt=$NPER
start=$(date +%s)

# 1. start, stop after 3 RL steps are in the ledger
"$BUILD/slime-supervisor" "$ROOT/conf/topology.conf" "$@" > "$T/sup1.out" 2>&1 &
SUP=$!
i=0
while :; do
    n=$(cat "$RUN/ledger.jsonl" 2>/dev/null | wc -l)
    [ "$n" -ge 3 ] && break
    kill -0 "$SUP" 2>/dev/null || fail "the run ended before 3 RL steps"
    i=$((i + 1)); [ $i -gt 1800 ] && fail "no 3 RL steps within 180 s"
    sleep 0.1
done
"$BUILD/slime-ctl" --run-dir "$RUN" stop > /dev/null || fail "slime-ctl stop"
wait "$SUP"; rc=$?; SUP=
[ $rc -eq 0 ] || fail "stopped supervisor exit $rc"
stopped_at=$(wc -l < "$RUN/ledger.jsonl")
echo "stopped after $stopped_at ledger line(s)"

# 2. resume to the end
"$BUILD/slime-supervisor" "$ROOT/conf/topology.conf" "$@" --set run.resume=auto > "$T/sup2.out" 2>&1 &
SUP=$!
i=0
while kill -0 "$SUP" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 2400 ] && fail "resumed run not done within 240 s"
    sleep 0.1
done
wait "$SUP"; rc=$?; SUP=
[ $rc -eq 0 ] || fail "resumed supervisor exit $rc"
echo "wall time $(( $(date +%s) - start )) s"

"$PY" - "$RUN" "$STEPS" "$RBS" "$NPER" <<'EOF' || fail "checks"
import json, sys
run, steps, rbs, nper = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ledger = [json.loads(l) for l in open(run + "/ledger.jsonl") if l.strip()]
got = [r["step"] for r in ledger]
assert got == list(range(1, steps + 1)), "ledger steps %s" % got
ids = [s for r in ledger for s in r["sample_ids"]]
assert len(ids) == len(set(ids)), "duplicate sample ids: %d of %d unique" % (len(set(ids)), len(ids))
assert len(ids) == steps * rbs * nper, "%d sample ids, expected %d" % (len(ids), steps * rbs * nper)
for r in ledger:  # whole groups: nper samples s0.. of each prompt
    groups = {}
    for s in r["sample_ids"]:
        p, sub = s.rsplit(":s", 1)
        groups.setdefault(p, set()).add(int(sub))
    assert all(v == set(range(nper)) for v in groups.values()), "incomplete group at step %d" % r["step"]
    assert len(groups) == rbs, "%d groups at step %d" % (len(groups), r["step"])
m = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
rl = [x for x in m if x["phase"] == "rl"]
assert [x["rl_step"] for x in rl] == list(range(1, steps + 1)), "metrics rl steps %s" % [x["rl_step"] for x in rl]
ev = [x for x in m if x["phase"] == "eval"]
assert ev and ev[0]["rl_step"] == 0 and ev[-1]["rl_step"] == steps, "evals at %s" % [x["rl_step"] for x in ev]
sft = [x for x in m if x["phase"] == "sft"]
assert len(sft) >= 1, "no sft lines"
e0, e1 = ev[0]["eval_accuracy"], ev[-1]["eval_accuracy"]
k = max(1, steps // 3)
r0 = sum(x["reward_mean"] for x in rl[:k]) / k
r1 = sum(x["reward_mean"] for x in rl[-k:]) / k
print("eval accuracy after warm-up %.3f, at the end %.3f; reward first %d steps %.3f, last %.3f" % (e0, e1, k, r0, r1))
assert e1 > e0 or r1 > r0, "no learning"
for key in ("reward_mean", "reward_std", "response_len_mean", "loss", "weight_version", "samples_trained", "time"):
    assert key in rl[-1], "metrics line lacks " + key
EOF
grep -q "re-sent the WAL'd batch\|trainer at RL step" "$RUN/logs/buffer.log" || fail "buffer did not report its resume"
echo "PASS: default run, stopped at $stopped_at and resumed: $STEPS steps, complete ledger, learning"
