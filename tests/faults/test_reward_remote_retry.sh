#!/bin/sh
# rm_type = remote with a reward actor that fails (DESIGN.md §8: "reward ->
# retry with a limit, then the sample is marked failed and counted").
# tests/rl/py_reward_actor.py --fail ACTIONS answers the k-th request for a
# sample id with the k-th action (drop = no reply, error = ERROR reply), then
# scores; it logs every request. Short runs (1 RL step of 2 prompts x 2
# samples, no SFT, no eval), reward_timeout_ms = 400, backoff 150 ms:
#   1. --fail drop,error with reward_retries = 2: every sample is asked 3
#      times (attempts 1, 2, 3: dropped, refused, scored), the reward actor
#      counts 2 retries and 1 timeout per sample and no failure; the second
#      request comes after the timeout + the backoff, the third after twice
#      the backoff (doubled); reward_failed 0 in metrics.jsonl;
#   2. --fail error,error,error with reward_retries = 2: 3 attempts each,
#      then every sample failed and counted (reward actor and metrics);
#   3. --fail error with reward_retries = 0: failed at once, never re-asked.
# Each run must end by itself with exit 0, the reward actor never restarted.
# Skips (77) without python3-zmq.
set -u
. "$(dirname "$0")/../rl/lib.sh"
sl_setup slrwr
"$PY" -c 'import zmq' 2> /dev/null || { echo "no python3-zmq: skipped"; exit 77; }
# run NAME FAIL [--set ...]: a run to its end; RUN=$T/NAME
run() {
    RUN=$T/$1 fl=$2; shift 2
    sl_start "$(basename "$RUN").out" --set sft.steps=0 --set run.num_steps=1 --set rollout.rollout_batch_size=2 \
        --set rollout.n_samples_per_prompt=2 --set eval.at_start=false --set eval.at_end=false \
        --set trainer.save_interval=0 --set reward.rm_type=remote --set reward.remote_actor=pyreward \
        --set actor.pyreward.kind=exec --set actor.pyreward.heartbeat=mailbox \
        --set "actor.pyreward.command=$PY $ROOT/tests/rl/py_reward_actor.py --fail $fl" \
        --set reward.reward_timeout_ms=400 --set reward.reward_retry_backoff_ms=150 "$@"
    wait_end 240
    [ "$SUP_RC" -eq 0 ] || fail "$RUN: supervisor exit $SUP_RC"
    grep -q "reward (pid [0-9]*) ended" "$RUN/logs/supervisor.log" && fail "$RUN: the reward actor died"
    [ -s "$RUN/pyreward.log" ] || fail "$RUN: the Python reward actor saw no request"
    return 0
}
# count NAME: the reward actor's final counter NAME
count() { sed -n "s/.*stopping: .*[ (]$1 \([0-9]*\).*/\1/p" "$RUN/logs/reward.log" | tail -1; }
# check_log ACTIONS BACKOFF_MIN_GAPS: every sample id was asked once per
# action (ACTIONS: "drop error score"), attempts 1..k in order; the gaps
# between its requests (received here) are at least BACKOFF_MIN_GAPS ("500
# 250", ms: the waits less 50 ms for the delivery times of the two).
# Prints the number of sample ids.
check_log() {
    "$PY" - "$RUN/pyreward.log" "$1" "$2" <<'PYEOF' || fail "$RUN: request log (above)"
import sys
log, actions, gaps = sys.argv[1], sys.argv[2].split(), [int(g) for g in sys.argv[3].split()]
by = {}
for line in open(log):
    sid, k, attempt, ms, action = line.split()
    by.setdefault(sid, []).append((int(k), attempt, int(ms), action))
assert len(by) >= 4, "requests for %d sample ids" % len(by)
for sid, reqs in by.items():
    assert [r[3] for r in reqs] == actions, "sample %s: %s" % (sid, reqs)
    assert [r[1] for r in reqs] == [str(i + 1) for i in range(len(actions))], "attempts %s" % reqs
    for i, g in enumerate(gaps):
        d = reqs[i + 1][2] - reqs[i][2]
        assert d >= g, "sample %s: request %d came %d ms after the one before (< %d)" % (sid, i + 2, d, g)
print(len(by))
PYEOF
}
# reward_failed in metrics.jsonl, summed
metrics_failed() {
    "$PY" -c '
import json, sys
print(sum(json.loads(l).get("reward_failed", 0) for l in open(sys.argv[1]) if l.strip()))' "$RUN/metrics.jsonl"
}

# 1. timeout (400 ms) + backoff 150 before attempt 2, backoff 300 before
# attempt 3 (more than 150: doubled)
run retry drop,error --set reward.reward_retries=2
n=$(check_log "drop error score" "500 250") || exit 1
[ "$(count retries)" = $((2 * n)) ] || fail "retries $(count retries), expected $((2 * n))"
[ "$(count timeouts)" = "$n" ] || fail "timeouts $(count timeouts), expected $n"
[ "$(count failed)" = 0 ] || fail "failed $(count failed) after successful retries"
[ "$(count scored)" = "$n" ] || fail "scored $(count scored), expected $n"
[ "$(metrics_failed)" = 0 ] || fail "metrics count $(metrics_failed) failed rewards"
[ "$(cat "$RUN/pyreward.count")" = "$n" ] || fail "the actor scored $(cat "$RUN/pyreward.count"), not $n"
echo "ok 1 - $n samples: dropped, refused, then scored on the 3rd attempt ($(count retries) retries, backoff doubled)"

# 2. retries exhausted
run exhaust error,error,error --set reward.reward_retries=2
n=$(check_log "error error error" "100 250") || exit 1
[ "$(count retries)" = $((2 * n)) ] || fail "retries $(count retries), expected $((2 * n))"
[ "$(count failed)" = "$n" ] || fail "failed $(count failed), expected $n"
[ "$(metrics_failed)" = "$n" ] || fail "metrics count $(metrics_failed) failed rewards, expected $n"
grep -q "failed after 3 attempt(s): ERROR reply" "$RUN/logs/reward.log" || fail "no exhaustion line in reward.log"
echo "ok 2 - reward_retries = 2 spent: all $n samples failed and counted (reward_failed $n)"

# 3. no retry
run noretry error --set reward.reward_retries=0
n=$(check_log "error" "") || exit 1
[ "$(count retries)" = 0 ] || fail "retries $(count retries) with reward_retries = 0"
[ "$(count failed)" = "$n" ] || fail "failed $(count failed), expected $n"
echo "ok 3 - reward_retries = 0: $n samples failed at the first ERROR reply"
echo "PASS: remote reward retries"
