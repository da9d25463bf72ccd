#!/bin/sh
# test_trainer_rollout.sh — the trainer and rollout actors end to end
# without the buffer and reward actors: helper_rl_driver plays both (see
# tests/unit/helper_rl_driver.c for the checks: samples through shm, a train
# step, weights v1 reaching the rollout, ledger, checkpoint, duplicate
# refusal, a malformed batch, SIGKILL + resume of the trainer).
set -u
. "$(dirname "$0")/lib.sh"
sl_driver_setup sl_rl_tr helper_rl_driver
cat > "$T/topology.conf" <<CONF
[run]
name = trtest
run_dir = $RUN
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
sl_driver_run
exit $?
