#!/bin/sh
# Injection points inside the actors ([faults] points, mailbox/faults.h),
# all in one shortened default run (14 RL steps of 8 prompts x 4 samples):
# the process dies (SIGKILL to itself) at
#   buffer   wal_append (a batch about to be written to the WAL),
#            wal_write (WAL writes submitted, not synced),
#            wal_ack (WAL synced, batch not yet sent to the trainer);
#   trainer  train_step (optimizer step done, ledger line not written),
#            weights_publish (weights in shm, not announced),
#            ckpt_write (weights saved in .partial, not renamed);
#   rollout  rollout_generate (a group generated, not sent), at a pass
#            drawn from the seed;
#   reward   reward_score (a group scored, SCORED not sent), likewise;
# and every actor drops two and corrupts two outgoing mailbox frames
# (mb_send) at passes drawn from the seed.
# Asserts: every kill point fired once (its marker in RUN_DIR/faults/) and
# the actor was restarted; the run ends by itself, exit 0; the ledger holds
# steps 1..14 and every sample id exactly once; metrics continue to the
# last step (at most one missing line per buffer death); no .partial
# checkpoint is left; the latest checkpoint loads.
# Env: SL_FAULT_SEED (default 3). Skips (77) when not built.
set -u
. "$(dirname "$0")/../rl/lib.sh"
sl_setup slpts
STEPS=14
SEED=${SL_FAULT_SEED:-3}
KILLS="buffer:wal_append buffer:wal_write buffer:wal_ack trainer:train_step trainer:weights_publish
trainer:ckpt_write rollout:rollout_generate reward:reward_score"
POINTS="buffer:wal_append=kill@3,buffer:wal_write=kill@5,buffer:wal_ack=kill@7,trainer:train_step=kill@6"
POINTS="$POINTS,trainer:weights_publish=kill@4,trainer:ckpt_write=kill@2,rollout:rollout_generate=kill@r20"
POINTS="$POINTS,reward:reward_score=kill@r20,mb_send=drop@r60x2,mb_send=corrupt@r70x2"

start=$(date +%s)
# shellcheck disable=SC2086
sl_start sup.out $SL_SMALL --set run.num_steps=$STEPS --set faults.seed="$SEED" --set "faults.points=$POINTS"
wait_end 240
[ "$SUP_RC" -eq 0 ] || fail "supervisor exit $SUP_RC"
echo "wall time $(( $(date +%s) - start )) s"

for k in $KILLS; do
    a=${k%%:*} p=${k#*:}
    [ -f "$RUN/faults/$a.$p.0" ] || fail "point $p of $a never fired"
    grep -q "faults: $p: kill at pass" "$RUN/logs/$a.log" || fail "$a.log does not name the kill at $p"
done
died=$(grep -c ") ended: signal 9" "$RUN/logs/supervisor.log")
[ "$died" -ge 8 ] || fail "only $died actor deaths for 8 kill points"
net=$(cat "$RUN"/logs/*.log | grep -c "faults: mb_send: \(drop\|corrupt\) at pass")
[ "$net" -ge 4 ] || fail "only $net dropped/corrupted frames"
ls -a "$RUN/checkpoints" | grep -q partial && fail "a .partial checkpoint was left behind"
check_ledger $STEPS 8 4 groups
check_metrics $STEPS 3
check_ckpt
echo "PASS: 8 kill points fired and recovered, $net frames dropped/corrupted, $(restart_count) restarts;" \
     "samples lost 0, trained twice 0"
