#!/bin/sh
# Reward plugins under limits, in the reward actor's worker process and
# never in the trainer (DESIGN.md §8). Short runs (1 RL step of 1 prompt x 2
# samples, no SFT, no eval) with tests/rl/plugin_len_penalty.c built here:
#   1. reward_hog (1 GiB unchecked) under reward_memory_mb = 256: stopped
#      by RLIMIT_AS (the worker dies), every sample failed and counted;
#      under 8192 it scores (the limit is what stopped it);
#   2. reward_hang under reward_cpu_s = 1 with a 600 s deadline (the run
#      is given 180 s): stopped by RLIMIT_CPU (SIGXCPU), no timeout;
#   3. reward_hang, reward_timeout_ms = 300, reward_retries = 2: each
#      sample is tried 3 times (2 retries counted), then failed;
#      meanwhile the plugin is mapped in the reward actor's worker and not
#      in the trainer (/proc/PID/maps);
#   4. reward_crash, reward_retries = 0: failed at once, no retry.
# Each run must end by itself with exit 0 and the reward actor alive
# (never restarted), reward_failed counted in metrics.jsonl.
# Skips (77) when not built or without cc.
set -u
. "$(dirname "$0")/../rl/lib.sh"
sl_setup slrwl
command -v cc > /dev/null || { echo "no cc: skipped"; exit 77; }
cc -shared -fPIC -O1 -Wall -I"$ROOT/actors" -o "$T/plug.so" "$ROOT/tests/rl/plugin_len_penalty.c" ||
    fail "building the plugin"
# run NAME [--set ...]: RUN=$T/NAME, started in the background (SUP)
run() {
    RUN=$T/$1; shift
    sl_start "$(basename "$RUN").out" --set sft.steps=0 --set run.num_steps=1 --set rollout.rollout_batch_size=1 \
        --set rollout.n_samples_per_prompt=2 --set eval.at_start=false --set eval.at_end=false \
        --set trainer.save_interval=0 \
        --set reward.rm_type=custom "$@"
}
finish() {
    wait_end 180
    checks
}
checks() {
    [ "$SUP_RC" -eq 0 ] || fail "$RUN: supervisor exit $SUP_RC"
    grep -q "reward (pid [0-9]*) ended" "$RUN/logs/supervisor.log" && fail "$RUN: the reward actor died"
    grep -q '"reward_failed":[1-9]' "$RUN/metrics.jsonl" || fail "$RUN: metrics do not count failed rewards"
    return 0
}
# count NAME: the reward actor's final counter NAME
count() { sed -n "s/.*stopping: .*[ (]$1 \([0-9]*\).*/\1/p" "$RUN/logs/reward.log" | tail -1; }

run hog --set "reward.custom_rm_path=$T/plug.so:reward_hog" --set reward.reward_memory_mb=256 \
    --set reward.reward_retries=0
wait_end 180
if grep -q "reward_memory_mb not enforced" "$RUN/logs/reward.log"; then
    echo "ok 1 # skip built with AddressSanitizer (RLIMIT_AS is not set under it)"
else
    checks
    [ "$(count crashes)" -ge 1 ] || fail "the hog was not stopped (crashes $(count crashes))"
    hogfail=$(count failed)
    run hogfree --set "reward.custom_rm_path=$T/plug.so:reward_hog" --set reward.reward_memory_mb=8192
    wait_end 180
    [ "$SUP_RC" -eq 0 ] || fail "$RUN: supervisor exit $SUP_RC"
    [ "$(count crashes)" = 0 ] || fail "the hog crashed under 8 GiB too: the limit proves nothing"
    echo "ok 1 - a plugin over reward_memory_mb is stopped: $hogfail samples failed, run finished (under 8 GiB: 0)"
fi

run cpu --set "reward.custom_rm_path=$T/plug.so:reward_hang" --set reward.reward_timeout_ms=600000 \
    --set reward.reward_cpu_s=1 --set reward.reward_retries=0
finish
[ "$(count crashes)" -ge 1 ] || fail "the spinning plugin was not stopped by RLIMIT_CPU"
[ "$(count timeouts)" = 0 ] || fail "the deadline, not the CPU limit, stopped it"
grep -q "worker died on sample .*(signal 24)" "$RUN/logs/reward.log" || fail "no SIGXCPU in reward.log"
echo "ok 2 - a plugin over reward_cpu_s is stopped by RLIMIT_CPU (SIGXCPU; $(count crashes) crashes)"

run retry --set "reward.custom_rm_path=$T/plug.so:reward_hang" --set reward.reward_timeout_ms=300 \
    --set reward.reward_retries=2
i=0
while ! grep -q "reward plugin .* in a worker process" "$RUN/logs/reward.log" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 600 ] && fail "the reward plugin was not loaded"
    sleep 0.1
done
pids=$("$BUILD/slime-ctl" --run-dir "$RUN" status --json | "$PY" -c '
import json, sys
print(" ".join("%s=%d" % (a["kind"], a["pid"]) for a in json.load(sys.stdin)["actors"]))')
for kp in $pids; do
    k=${kp%%=*} p=${kp#*=}
    case $k in
        trainer) grep -q plug.so "/proc/$p/maps" && fail "the plugin is mapped in the trainer" ;;
        reward) grep -q plug.so "/proc/$p/maps" || fail "the plugin is not in the reward actor" ;;
    esac
done
finish
[ "$(count retries)" -ge 2 ] || fail "no retries counted ($(count retries))"
[ "$(count timeouts)" -ge 3 ] || fail "a retried sample was not tried 3 times ($(count timeouts) timeouts)"
echo "ok 3 - a hung plugin is retried ($(count retries) retries, $(count timeouts) timeouts), then failed;" \
     "it runs in the reward actor, not in the trainer"

run crash --set "reward.custom_rm_path=$T/plug.so:reward_crash" --set reward.reward_retries=0
finish
[ "$(count retries)" = 0 ] || fail "retried with reward_retries = 0"
[ "$(count crashes)" -ge 1 ] || fail "no crash counted"
echo "ok 4 - a crashing plugin fails its samples ($(count crashes) crashes), no retry when 0"
echo "PASS: reward plugin limits"
