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
. "$(dirname "$0")/lib.sh"
sl_setup slrl
STEPS=${SL_RL_TEST_STEPS:-120}
SFT=${SL_RL_TEST_SFT:-2000}
RBS=32
NPER=16
set -- --set run.num_steps="$STEPS" --set sft.steps="$SFT" \
    --set eval.n_prompts=100 --set trainer.eval_interval=0 --set trainer.save_interval=2 \
    --set rollout.rollout_batch_size=$RBS --set rollout.n_samples_per_prompt=$NPER
start=$(date +%s)

# 1. start, stop after 3 RL steps are in the ledger
sl_start sup1.out "$@"
wait_ledger 3 180
"$BUILD/slime-ctl" --run-dir "$RUN" stop > /dev/null || fail "slime-ctl stop"
wait "$SUP"; rc=$?; SUP=
[ $rc -eq 0 ] || fail "stopped supervisor exit $rc"
stopped_at=$(wc -l < "$RUN/ledger.jsonl")
echo "stopped after $stopped_at ledger line(s)"

# 2. resume to the end
sl_start sup2.out "$@" --set run.resume=auto
wait_end 240
[ "$SUP_RC" -eq 0 ] || fail "resumed supervisor exit $SUP_RC"
echo "wall time $(( $(date +%s) - start )) s"

check_ledger "$STEPS" "$RBS" "$NPER" groups
check_metrics "$STEPS"
"$PY" - "$RUN" "$STEPS" <<'EOF' || fail "checks"
import json, sys
run, steps = sys.argv[1], int(sys.argv[2])
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
