#!/bin/sh
# Custom rewards in a real run (conf/topology.conf cut down to one tiny RL
# step, no SFT): the reward actor scores with
#   1. a C plugin (tests/rl/plugin_len_penalty.c built here with
#      cc -shared -fPIC), custom_rm_path = FILE.so (default symbol);
#   2. a plugin that hangs (FILE.so:reward_hang, reward_timeout_ms = 300):
#      every sample fails at the deadline, the worker is killed and
#      restarted, the reward actor stays alive, the run still ends, exit 0;
#   3. a plugin that crashes (FILE.so:reward_crash): the same, counted as
#      crashes;
#   4. a plugin that returns an error (FILE.so:reward_fail): failed, counted;
#   5. a custom reward actor in Python (tests/rl/py_reward_actor.py,
#      rm_type = remote) answering REWARD_REQ over the mailbox.
# Skips (77) when the programs or cc are not built/available; case 5 skips
# alone without python3-zmq.
set -u
. "$(dirname "$0")/lib.sh"
sl_need slime-supervisor slime-actor
command -v cc > /dev/null || { echo "no cc: skipped"; exit 77; }
sl_tmp slrw
RUN=
fail() { echo "FAIL: $*"; echo "--- supervisor output"; tail -20 "$T/sup.out" 2>/dev/null;
         for f in "$RUN"/logs/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

cc -shared -fPIC -O2 -Wall -Wextra -I"$ROOT/actors" -o "$T/plug.so" "$ROOT/tests/rl/plugin_len_penalty.c" ||
    fail "building the plugin"

# run NAME [--set ...]: a one-step run; leaves RUN set
run() {
    RUN=$T/$1; shift
    "$BUILD/slime-supervisor" "$ROOT/conf/topology.conf" --run-dir "$RUN" \
        --set sft.steps=0 --set run.num_steps=1 --set rollout.rollout_batch_size=2 \
        --set rollout.n_samples_per_prompt=2 --set eval.n_prompts=2 --set trainer.save_interval=0 \
        --set supervisor.intensity=3 "$@" > "$T/sup.out" 2>&1 &
    SUP=$!
    i=0
    while kill -0 "$SUP" 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 1200 ] && fail "$RUN: not done within 120 s"
        sleep 0.1
    done
    wait "$SUP"; rc=$?; SUP=
    [ $rc -eq 0 ] || fail "$RUN: supervisor exit $rc"
    grep -q '"phase":"rl"' "$RUN/metrics.jsonl" || fail "$RUN: no RL step in metrics.jsonl"
    if grep -q "reward (pid [0-9]*) ended" "$RUN/logs/supervisor.log"; then fail "$RUN: the reward actor died"; fi
}
# count NAME: the reward actor's final counter NAME ("failed", "timeouts", "crashes")
count() { sed -n "s/.*stopping: .*[ (]$1 \([0-9]*\).*/\1/p" "$RUN/logs/reward.log" | tail -1; }

run plugin --set reward.rm_type=custom --set reward.custom_rm_path="$T/plug.so"
[ "$(count failed)" = 0 ] || fail "the plugin's samples failed: $(count failed)"
grep -q "reward plugin .*plug.so:slime_reward" "$RUN/logs/reward.log" || fail "plugin not loaded"
echo "ok 1 - C plugin scores every sample"

run hang --set reward.rm_type=custom --set reward.custom_rm_path="$T/plug.so:reward_hang" \
    --set reward.reward_timeout_ms=300
[ "$(count timeouts)" -ge 1 ] || fail "no timeout counted"
[ "$(count failed)" -ge 1 ] || fail "no failed sample counted"
grep -q '"reward_failed":[1-9]' "$RUN/metrics.jsonl" || fail "metrics do not count failed rewards"
echo "ok 2 - a hung plugin fails its samples at the deadline ($(count timeouts) timeouts), actor alive"

run crash --set reward.rm_type=custom --set reward.custom_rm_path="$T/plug.so:reward_crash"
[ "$(count crashes)" -ge 1 ] || fail "no crash counted"
[ "$(count failed)" -ge 1 ] || fail "no failed sample counted"
echo "ok 3 - a crashing plugin fails its samples ($(count crashes) crashes), actor alive"

run fail --set reward.rm_type=custom --set reward.custom_rm_path="$T/plug.so:reward_fail"
[ "$(count failed)" -ge 1 ] || fail "no failed sample counted"
[ "$(count crashes)" = 0 ] || fail "an error return counted as a crash"
echo "ok 4 - a plugin error fails the sample"

RUN=$T/nosym
"$BUILD/slime-supervisor" "$ROOT/conf/topology.conf" --run-dir "$RUN" --set reward.rm_type=custom \
    --set reward.custom_rm_path="$T/plug.so:no_such_symbol" --set supervisor.intensity=0 > "$T/sup.out" 2>&1
[ $? -ne 0 ] || fail "a missing plugin symbol did not stop the run"
grep -q "has no symbol no_such_symbol" "$RUN/logs/reward.log" || fail "missing symbol not named"
echo "ok 5 - a missing plugin symbol is named and stops the reward actor"

if [ -x "$PY" ] && "$PY" -c 'import zmq' 2>/dev/null; then
    run remote --set reward.rm_type=remote --set reward.remote_actor=pyreward \
        --set actor.pyreward.kind=exec --set actor.pyreward.heartbeat=mailbox \
        --set "actor.pyreward.command=$PY $ROOT/tests/rl/py_reward_actor.py"
    n=$(cat "$RUN/pyreward.count" 2>/dev/null || echo 0)
    [ "$n" -ge 8 ] || fail "the Python reward actor scored $n samples"
    [ "$(count failed)" = 0 ] || fail "remote samples failed: $(count failed)"
    echo "ok 6 - the Python reward actor scored $n samples over the mailbox"
else
    echo "ok 6 # skip no python3-zmq"
fi
echo "PASS: reward plugins"
