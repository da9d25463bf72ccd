#!/bin/sh
# The supervisor itself dies (SIGKILL) in the middle of a shortened default
# run (12 RL steps of 8 prompts x 4 samples; a trainer SIGKILL from the
# [faults] schedule at step 2 too). Asserts:
#   - every actor exits with it (PR_SET_PDEATHSIG), within 10 s;
#   - RUN_DIR is 0700, its logs 0600 (DESIGN.md §8);
#   - the same command with --set run.resume=auto continues the run (on
#     mailboxes over tcp this time, [run] transport = tcp: CURVE keys made
#     for the run in RUN_DIR/curve.key, 0600, every mailbox bound to
#     127.0.0.1): it ends by itself, exit 0, the ledger holds steps 1..12
#     and every sample id exactly once, metrics continue to the last step,
#     the latest checkpoint loads.
# Skips (77) when not built.
set -u
. "$(dirname "$0")/../rl/lib.sh"
sl_setup slsup
STEPS=12
# shellcheck disable=SC2086
set -- $SL_SMALL --set run.num_steps=$STEPS --set faults.schedule=kill:trainer@step2
start=$(date +%s)
sl_start sup1.out "$@"
wait_ledger 5 180
pids=$("$BUILD/slime-ctl" --run-dir "$RUN" status --json | "$PY" -c '
import json, sys
print(" ".join(str(a["pid"]) for a in json.load(sys.stdin)["actors"] if a["pid"] > 0))') ||
    fail "slime-ctl status"
[ -n "$pids" ] || fail "no running actors"
kill -9 "$SUP"
wait "$SUP" 2>/dev/null; SUP=
at=$(ledger_lines)
echo "supervisor killed at ledger line $at; actors $pids"
i=0
for p in $pids; do
    while kill -0 "$p" 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 100 ] && fail "actor pid $p outlived its supervisor by 10 s"
        sleep 0.1
    done
done
mode=$(stat -c %a "$RUN")
[ "$mode" = 700 ] || fail "RUN_DIR has mode $mode, not 700"
for f in "$RUN"/logs/*.log; do
    m=$(stat -c %a "$f"); [ "$m" = 600 ] || fail "$f has mode $m, not 600"
done

sl_start sup2.out "$@" --set run.resume=auto --set run.transport=tcp
wait_end 240
[ "$SUP_RC" -eq 0 ] || fail "resumed supervisor exit $SUP_RC"
[ "$(stat -c %a "$RUN/curve.key")" = 600 ] || fail "curve.key is not 0600"
ntcp=0
for f in "$RUN"/mb/*.tcp; do
    grep -qx "tcp://127\.0\.0\.1:[0-9]*" "$f" || fail "$f: $(cat "$f")"
    ntcp=$((ntcp + 1))
done
[ $ntcp -ge 5 ] || fail "only $ntcp tcp mailboxes"
echo "wall time $(( $(date +%s) - start )) s"
check_ledger $STEPS 8 4 groups
check_metrics $STEPS 1
check_ckpt
echo "PASS: supervisor SIGKILLed at step $at: its actors exited, the resumed run (tcp + CURVE) finished;" \
     "samples lost 0, trained twice 0"
