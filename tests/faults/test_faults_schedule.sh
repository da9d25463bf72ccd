#!/bin/sh
# Signal faults from the topology's [faults] schedule, driven by the
# supervisor, in one shortened default run (conf/topology.conf, 14 RL steps
# of 8 prompts x 4 samples):
#   - SIGKILL of each actor kind (buffer, trainer, rollout, reward) at a
#     step drawn from the seed ("rand");
#   - SIGSTOP of the rollout and of the reward actor ("hang"): the
#     heartbeats must find them hung (heartbeat_timeout_ms 3 s) and the
#     supervisor kill and restart them;
#   - a slow trainer (SIGSTOP for slow_ms, then SIGCONT);
#   - a dropped and a corrupted outgoing mailbox frame of every actor kind
#     (SIGUSR1/SIGUSR2): a corrupt frame must be refused by the receiver's
#     decoder ("dropped a N-byte frame: bad ... checksum"), and both must
#     be recovered by the timeouts and re-sends (rollout_timeout_ms, the
#     buffer's STATUS probe).
# Asserts: the run ends by itself with exit 0; every scheduled fault fired;
# the ledger holds steps 1..14 and every sample id exactly once (whole
# groups); metrics.jsonl continues to the last step (a step whose metrics
# line died with a killed or hung buffer may be missing: at most one per
# buffer fault); the latest checkpoint loads.
# Env: SL_FAULT_SEED (default 7). Skips (77) when not built.
set -u
. "$(dirname "$0")/../rl/lib.sh"
sl_setup slflt
STEPS=14
SEED=${SL_FAULT_SEED:-7}
SCHED="kill:buffer@rand,kill:trainer@rand,kill:rollout@rand,kill:reward@rand,hang:rollout@step5,hang:reward@step9,
slow:trainer@step3,drop:buffer@step4,drop:trainer@step6,drop:rollout@step7,drop:reward@step8,
corrupt:buffer@step10,corrupt:trainer@step11,corrupt:rollout@step12,corrupt:reward@step2"
SCHED=$(echo $SCHED | tr -d ' ')
n_sched=$(echo "$SCHED" | tr ',' '\n' | grep -c .)

start=$(date +%s)
# shellcheck disable=SC2086
sl_start sup.out $SL_SMALL --set run.num_steps=$STEPS --set faults.seed="$SEED" --set "faults.schedule=$SCHED"
wait_end 240
[ "$SUP_RC" -eq 0 ] || fail "supervisor exit $SUP_RC"
echo "wall time $(( $(date +%s) - start )) s"

fired=$(grep -c "WARN fault: " "$RUN/logs/supervisor.log")
[ "$fired" -eq "$n_sched" ] || fail "$fired of $n_sched scheduled faults fired"
hung=$(grep -c "is hung: no heartbeat" "$RUN/logs/supervisor.log")
[ "$hung" -ge 2 ] || fail "the stopped actors were not found hung by the heartbeats ($hung)"
refused=$(cat "$RUN"/logs/*.log | grep -c "dropped a [0-9]*-byte frame: bad")
[ "$refused" -ge 1 ] || fail "no corrupt frame was refused by a decoder"
check_ledger $STEPS 8 4 groups
bufaults=$(grep -c "WARN fault: \(kill\|hang\) buffer" "$RUN/logs/supervisor.log")
check_metrics $STEPS "$bufaults"
check_ckpt
echo "PASS: $n_sched scheduled faults (seed $SEED), $(restart_count) restarts, $hung hung actors found," \
     "$refused decoder(s) refused corrupt frames; samples lost 0, trained twice 0"
