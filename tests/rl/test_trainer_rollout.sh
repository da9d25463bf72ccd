#!/bin/sh
# test_trainer_rollout.sh — the trainer and rollout actors end to end
# without the buffer and reward actors: helper_rl_driver plays both (see
# tests/unit/helper_rl_driver.c for the checks: samples through shm, a train
# step, weights v1 reaching the rollout, ledger, checkpoint, duplicate
# refusal, a malformed batch, SIGKILL + resume of the trainer).
set -u
B=${SL_BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
ACTOR=$B/slime-actor
DRIVER=$B/tests/helper_rl_driver
[ -x "$ACTOR" ] && [ -x "$DRIVER" ] || { echo "needs $ACTOR and $DRIVER"; exit 77; }
D=$(mktemp -d /tmp/sl_rl_tr.XXXXXX)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/run" && chmod 700 "$D/run"
cat > "$D/topology.conf" <<CONF
[run]
name = trtest
run_dir = $D/run
seed = 7
num_steps = 3
resume = auto

[actor trainer]
kind = trainer

[actor rollout]
kind = rollout

[actor reward]
kind = reward               ; declared, not started: the driver plays it

[model]
path = builtin:arith

[rollout]
n_samples_per_prompt = 4

[trainer]
lr = 1e-3
save_interval = 1
CONF
timeout 150 "$DRIVER" "$ACTOR" "$D/topology.conf" "$D/run"
rc=$?
if [ $rc -ne 0 ]; then
    for f in "$D"/run/*.log; do echo "--- $f"; tail -20 "$f"; done
fi
exit $rc
