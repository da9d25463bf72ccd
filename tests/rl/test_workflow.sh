#!/bin/sh
# Workflow actors ([rollout] workflow = wf, kind exec) in real runs of the
# builtin:arith task, with the fake workflow tests/unit/helper_wf_fake.c
# (no generation engine: it answers PROMPTS with made-up samples whose
# tool-like tokens have loss_mask 0 and garbage log-probs):
#   1. malformed: one malformed sample of every kind workflow.h refuses
#      (19 kinds, 23 samples), then the good ones. Asserts each WF_ACK names
#      the expected reason, metrics.jsonl's wf_refused counts each reason,
#      the buffer log names them, the run ends (exit 0) with a complete
#      ledger (every step, whole groups, no duplicate): nothing malformed
#      reached the trainer, which refused no batch. Groups with a reward of
#      their own skip the reward actor, the others are scored by it.
#   2. killed: a slow workflow (half a group, a pause, the rest) is killed
#      with SIGKILL (slime-ctl inject wf kill) mid-run: the supervisor
#      restarts it, its groups are dispatched again to the new instance, the
#      run completes with every step in the ledger exactly once and no
#      sample id twice.
#   2b. hung: the same workflow stopped (slime-ctl inject wf hang, SIGSTOP)
#      mid-group: the supervisor finds it hung (heartbeat), kills and
#      restarts it; the run completes with a complete ledger.
#   3. filter plugins (tests/rl/plugin_wf_filters.c, cc -shared):
#      dynamic_sampling_filter_path drops the groups of prompt index % 3 == 0
#      (more prompts are sampled), buffer_filter_path those of index % 5 == 1;
#      none of them is trained.
# Skips (77) when the programs are not built.
# The shared run and ledger checks are in tests/rl/lib.sh.
set -u
. "$(dirname "$0")/lib.sh"
sl_setup slwf tests/helper_wf_fake

RBS=4
NPER=4
# start NAME STEPS MODE [--set ...]: a run in the background; leaves RUN, SUP set
start() {
    name=$1; steps=$2; WF_FAKE_MODE=$3; shift 3
    export WF_FAKE_MODE
    sl_launch conf/topology.conf "$name" --set sft.steps=0 --set run.num_steps="$steps" \
        --set rollout.rollout_batch_size=$RBS --set rollout.n_samples_per_prompt=$NPER --set eval.n_prompts=4 \
        --set trainer.save_interval=0 --set trainer.eval_interval=0 --set trainer.global_batch_size=$((RBS * NPER)) \
        --set trainer.micro_batch_size=$((RBS * NPER)) --set supervisor.intensity=5 \
        --set rollout.workflow=wf --set actor.wf.kind=exec --set actor.wf.command="$BUILD/tests/helper_wf_fake" \
        "$@"
}
# ledger STEPS: every step once, whole groups, no sample id twice
ledger() { check_ledger "$1" $RBS $NPER groups; }
# wait_half: until the (slow) workflow pauses in the middle of a new group (a new "half" line), 60 s at most
wait_half() {
    h0=$(grep -c "^half" "$RUN/wf_fake.log")
    i=0
    while [ "$(grep -c "^half" "$RUN/wf_fake.log")" -le "$h0" ]; do
        i=$((i + 1)); [ $i -gt 600 ] && fail "the workflow sent no half group within 60 s"
        sleep 0.05
    done
}

# ---------------------------------------------------------------- 1. malformed
start malformed 3 malformed
sl_finish 180
ledger 3
"$PY" - "$RUN" <<'PYEOF' || fail "malformed checks"
import json, sys, collections
run = sys.argv[1]
acks = [l.split() for l in open(run + "/wf_fake.log") if l.strip()]
bad = [a for a in acks if a[0] != "ack" or a[1] != a[2]]
assert not bad, "unexpected acknowledgements: %s" % bad
want = collections.Counter(a[1] for a in acks)
assert len(want) >= 19, "only %d kinds refused: %s" % (len(want), sorted(want))
m = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
rl = [x for x in m if x["phase"] == "rl"]
got = rl[-1]["wf_refused"]
for k, v in want.items():
    assert got.get(k, 0) >= v, "wf_refused[%s] = %s, %d sent" % (k, got.get(k), v)
assert sum(got.values()) == sum(want.values()), "refusals %s vs sent %s" % (got, dict(want))
assert rl[-1]["wf_accepted"] >= 3 * 16, "accepted %s" % rl[-1]["wf_accepted"]
assert abs(rl[-1]["tool_call_rate"] - 1.0) < 1e-9, "tool_call_rate %s" % rl[-1].get("tool_call_rate")
assert all(0.49 < x["accuracy"] < 0.51 for x in rl), "accuracy %s" % [x["accuracy"] for x in rl]
print("refused and counted: %s" % ", ".join("%s %d" % kv for kv in sorted(got.items())))
PYEOF
for r in bad_json missing_field bad_phase unknown_group group_done bad_index bad_sample_id duplicate \
         bad_prompt_len prompt_mismatch token_out_of_vocab mask_length mask_value logprobs_length \
         bad_logprob no_loss_token too_long bad_reward bad_metadata; do
    grep -q "refused a sample from wf .*: $r: " "$RUN/logs/buffer.log" || fail "buffer log lacks reason $r"
done
if grep -q " WARN \| ERROR " "$RUN/logs/trainer.log"; then fail "the trainer warned or refused something"; fi
if grep -q "the trainer refused" "$RUN/logs/buffer.log"; then fail "the trainer refused a batch"; fi
echo "ok 1: 19 kinds of malformed sample refused and counted; run complete"

# ---------------------------------------------------------------- 2. killed
STEPS=6
start killed $STEPS slow --set rollout.rollout_timeout_ms=2500
wait_ledger 2 180
# kill it while it pauses in the middle of a group
wait_half
"$BUILD/slime-ctl" --run-dir "$RUN" inject wf kill > /dev/null || fail "inject wf kill"
echo "workflow killed with $(wc -l < "$RUN/ledger.jsonl") ledger line(s)"
sl_finish 180
ledger $STEPS
redis=$(grep -c "dispatched again" "$RUN/logs/buffer.log")
dups=$(grep -c "refused a sample from wf .*: duplicate: " "$RUN/logs/buffer.log")
[ "$dups" -ge 1 ] || fail "the restarted workflow sent no sample of the half-done group again"
[ "$redis" -ge 1 ] || fail "no group was dispatched again after the kill"
starts=$(grep -c "^start wf" "$RUN/events.log" 2>/dev/null || echo 0)
[ "$starts" -ge 2 ] || fail "the workflow was not restarted ($starts start(s))"
echo "ok 2: workflow killed mid-group, restarted; $redis group(s) dispatched again ($dups sample(s) already kept refused as duplicates); ledger complete"
# ---------------------------------------------------------------- 2b. hung
start hung 4 slow --set rollout.rollout_timeout_ms=2500 --set supervisor.heartbeat_ms=300 \
    --set supervisor.heartbeat_timeout_ms=2000
wait_ledger 1 180
wait_half
"$BUILD/slime-ctl" --run-dir "$RUN" inject wf hang 60 > /dev/null || fail "inject wf hang"
sl_finish 180
ledger 4
grep -q "wf (pid [0-9]*) is hung" "$RUN/logs/supervisor.log" || fail "the hung workflow was not found hung"
echo "ok 2b: workflow hung mid-group (SIGSTOP): killed by the supervisor, restarted, ledger complete"

# ---------------------------------------------------------------- 3. filter plugins
if command -v cc > /dev/null; then
    cc -shared -fPIC -O2 -Wall -Wextra -I"$ROOT/actors" -o "$T/filters.so" "$ROOT/tests/rl/plugin_wf_filters.c" ||
        fail "building the filter plugins"
    start filters 3 good --set algorithm.dynamic_sampling=true --set rollout.over_sampling_batch_size=12 \
        --set rollout.dynamic_sampling_filter_path="$T/filters.so" \
        --set rollout.buffer_filter_path="$T/filters.so:slime_buffer_filter"
    sl_finish 180
    grep -q "dynamic_sampling_filter_path: .*filters.so:slime_dynamic_sampling_filter loaded" "$RUN/logs/buffer.log" ||
        fail "the dynamic-sampling filter was not loaded"
    "$PY" - "$RUN" "$RBS" <<'PYEOF' || fail "filter checks"
import json, sys
run, rbs = sys.argv[1], int(sys.argv[2])
ledger = [json.loads(l) for l in open(run + "/ledger.jsonl") if l.strip()]
assert [r["step"] for r in ledger] == [1, 2, 3], "ledger steps"
idx = set()
for r in ledger:
    g = {int(s.split(":")[1][1:]) for s in r["sample_ids"]}
    assert 1 <= len(g) <= rbs, "%d groups at step %d" % (len(g), r["step"])
    idx |= g
bad = [i for i in idx if i % 3 == 0 or i % 5 == 1]
assert not bad, "groups the filters dropped were trained: %s" % bad
print("trained prompt indices %s" % sorted(idx))
PYEOF
    echo "ok 3: dynamic_sampling_filter_path and buffer_filter_path plugins applied"
else
    echo "no cc: case 3 skipped"
fi
echo "PASS: workflow actors"
