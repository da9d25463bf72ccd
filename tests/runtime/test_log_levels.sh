#!/bin/sh
# Logs, --quiet, --verbose and progress of slime-supervisor:
#   1. default (conf/demo.conf): every line of the supervisor's stderr and of
#      each actor's log carries a UTC time, the actor's name and a level
#      ("2026-11-29T06:38:17.649Z echo.0 INFO ..."); the run ends with the
#      summary line;
#   2. --quiet: the supervisor prints no INFO line but the summary, the
#      actors' logs hold no INFO line, the resolved topology says
#      log_level = warn (the flag wins over --set run.log_level=debug);
#   3. --verbose: DEBUG lines from the supervisor (each child's command)
#      and from the actors (their runtime settings);
#   4. a short RL run (conf/topology.conf, stderr appended to a file) shows
#      progress: the SFT warm-up line, the trainer's checkpoint writing
#      (SL_PROGRESS_AFTER_MS=0 so that the tiny model's save shows), the
#      final [done] line; with --quiet only the [done] line and the summary.
# Skips (77) when the programs are not built.
set -u
. "$(dirname "$0")/../rl/lib.sh"
sl_need slime-supervisor slime-actor slime-ctl
sl_tmp sllog
# SL_TIME_SCALE (an integer, default 1; `make asan` sets it) multiplies the
# RL runs' deadline and heartbeat timeout (the summary must count 0 restarts:
# a sanitized actor slow to start must not be judged hung)
TS=${SL_TIME_SCALE:-1}
OUT=
RUN=
fail() { echo "FAIL: $*"; echo "--- supervisor output"; tail -30 "$OUT" 2>/dev/null;
         for f in "$RUN"/logs/*.log; do echo "--- $f"; tail -10 "$f"; done; exit 1; }
LINE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'

# demo NAME FLAGS...: conf/demo.conf for ~2 s, stopped with slime-ctl
demo() {
    name=$1; shift
    RUN=$T/$name OUT=$T/$name.out
    "$BUILD/slime-supervisor" "$ROOT/conf/demo.conf" --run-dir "$RUN" "$@" > "$OUT" 2>&1 &
    SUP=$!
    i=0
    until [ "$("$BUILD/slime-ctl" --run-dir "$RUN" status 2>/dev/null | grep -c ' running ')" -eq 3 ]; do
        i=$((i + 1)); [ $i -gt 300 ] && fail "$name: actors not running within 30 s"
        sleep 0.1
    done
    sleep 1.5
    "$BUILD/slime-ctl" --run-dir "$RUN" stop > /dev/null || fail "$name: stop"
    wait "$SUP"; rc=$?; SUP=
    [ $rc -eq 0 ] || fail "$name: exit $rc"
    grep -q "supervisor INFO summary: exit status 0, 3 actors, 0 restarts" "$OUT" || fail "$name: no summary line"
}

# 1. default
demo default
grep -Eqv "$LINE supervisor (ERROR|WARN|INFO|DEBUG) " "$OUT" && fail "a supervisor line without time/name/level"
for a in echo.0 echo.1 ping; do
    f=$RUN/logs/$a.log
    [ -s "$f" ] || fail "empty $f"
    grep -Eqv "$LINE $a (ERROR|WARN|INFO|DEBUG) " "$f" && fail "a line of $f without time/name/level: $(grep -Ev "$LINE" "$f" | head -1)"
    grep -Eq "$LINE $a INFO .* actor running" "$f" || fail "$a: no INFO start line"
done
grep -q "INFO started echo.0" "$OUT" || fail "default: no INFO started line"
echo "ok 1 - log lines carry time, actor name and level"

# 2. --quiet
demo quiet --set run.log_level=debug --quiet
grep -v "INFO summary:" "$OUT" | grep -q " INFO " && fail "--quiet: INFO lines on the supervisor's stderr"
grep -q " INFO \| DEBUG " "$RUN"/logs/echo.0.log "$RUN"/logs/ping.log && fail "--quiet: INFO lines in actor logs"
grep -Eq '^log_level *= *warn' "$RUN/topology.conf" || fail "--quiet: resolved topology not log_level = warn"
echo "ok 2 - --quiet: warnings, errors and the summary only"

# 3. --verbose
demo verbose --verbose
grep -Eq "$LINE supervisor DEBUG echo.0: exec " "$OUT" || fail "--verbose: no supervisor DEBUG line"
grep -Eq "$LINE echo.0 DEBUG runtime: mailbox " "$RUN/logs/echo.0.log" || fail "--verbose: no actor DEBUG line"
echo "ok 3 - --verbose: debug lines from the supervisor and the actors"

# 4. progress of a short RL run, stderr appended to a file (as a terminal would get it)
rl() {
    name=$1; shift
    RUN=$T/$name OUT=$T/$name.out
    : > "$OUT"
    SL_PROGRESS_AFTER_MS=0 timeout $((300 * TS)) "$BUILD/slime-supervisor" "$ROOT/conf/topology.conf" --run-dir "$RUN" \
        --set supervisor.heartbeat_timeout_ms=$((20000 * TS)) --set run.num_steps=2 --set sft.steps=30 --set eval.n_prompts=8 --set rollout.rollout_batch_size=4 \
        --set rollout.n_samples_per_prompt=4 "$@" >> "$OUT" 2>&1 || fail "$name: exit $?"
    grep -q '^\[done\] step 2/2' "$OUT" || fail "$name: no [done] line"
    grep -q "INFO summary: exit status 0, 4 actors, 0 restarts; last progress: \[done\] step 2/2" "$OUT" ||
        fail "$name: no summary with the last progress"
}
rl rl
grep -q '^\[sft\] step [0-9]*/30' "$OUT" || fail "no SFT progress line"
grep -q '^\[trainer\] writing weights: .* done in ' "$OUT" || fail "no checkpoint-writing progress"
echo "ok 4 - progress: SFT warm-up, checkpoint writing, the final line"
rl rlquiet --quiet
grep -q '^\[sft\]\|^\[rl\]\|^\[trainer\]' "$OUT" && fail "--quiet: progress lines besides [done]"
grep -v "INFO summary:" "$OUT" | grep -q " INFO " && fail "--quiet RL run: INFO lines"
echo "ok 5 - --quiet RL run: only the final progress line and the summary"
echo "PASS: log levels and progress"
