# tests/rl/lib.sh — shared pieces of the run tests (tests/rl, tests/faults):
# start a shortened embedded default run under build/slime-supervisor, wait
# for ledger lines or for the end, and check what a run must leave behind.
# Sourced (POSIX sh), never run. Before sourcing, set nothing; after it:
#
#   sl_need PROG..       skip (77) unless every PROG (a path under $BUILD)
#                        is built
#   sl_tmp PREFIX        make $T (a 0700 scratch folder /tmp/PREFIX.*, removed
#                        at exit, after killing $SUP, unless SL_KEEP is set)
#                        and RUN=$T/run
#   sl_setup PREFIX [PROG..]
#                        sl_need the programs (slime-supervisor, slime-actor,
#                        slime-ctl, slime-model, PROG..), skip (77) without
#                        python3, then sl_tmp PREFIX
#   sl_driver_setup PREFIX DRIVER
#                        for a test driver that plays actors itself
#                        (tests/unit/helper_DRIVER.c, no supervisor): skip (77)
#                        unless slime-actor and $BUILD/tests/DRIVER are built;
#                        make $T as sl_setup does and an empty RUN=$T/run
#   sl_driver_run ARGS.. run the driver on slime-actor, $T/topology.conf (the
#                        caller writes it) and $RUN with ARGS, 150 s at most;
#                        print the actors' log tails when it fails; returns
#                        its exit status
#   sl_start OUT ARGS..  start the supervisor on conf/topology.conf with
#                        --run-dir $RUN and ARGS, output to $T/OUT; sets SUP
#   sl_launch CONF NAME ARGS..
#                        start the supervisor in $ROOT on CONF (relative to
#                        $ROOT) with --run-dir $T/NAME and ARGS, output to
#                        $T/sup.out; sets RUN=$T/NAME and SUP
#   sl_finish SECS       wait_end SECS, then fail unless the exit status is 0
#   sl_run CONF NAME SECS ARGS..
#                        sl_launch, then sl_finish
#   SL_TOOL_SMALL        --set arguments of a shortened conf/tool.conf run:
#                        SFT 300 steps with every target in the tool form,
#                        TOOL_STEPS (3) GRPO steps of TOOL_RBS (8) prompts x
#                        TOOL_NPER (4) samples, evals of 16 prompts at the
#                        start and end, no checkpoint
#   sl_tool_run NAME ARGS..
#                        sl_run of conf/tool.conf with SL_TOOL_SMALL and ARGS
#                        (300 s at most), then check_ledger (whole groups) and
#                        check_wf_metrics (2 eval lines)
#   SL_SMALL             --set arguments of a small, fast run (8 prompts x 4
#                        samples, 20 SFT steps, checkpoints every 3 steps)
#   field ACTOR KEY      one value of ACTOR from `slime-ctl status --json`
#   is ACTOR KEY VALUE   field ACTOR KEY is VALUE
#   wait_for SECS CMD..  run CMD every 0.1 s until it succeeds (0), at most
#                        SECS seconds (1)
#   ping_replies         the replies count of the pinger's last "ping stats"
#                        line ($RUN/logs/ping.log; empty before the first)
#   replies_at_least N   ping_replies is at least N
#   ledger_lines         lines in $RUN/ledger.jsonl
#   wait_ledger N SECS   until the ledger has N lines (fails if the run ends)
#   wait_end SECS        until the supervisor exits; its status in $SUP_RC
#   fail MSG             print MSG, the supervisor's and actors' log tails, exit 1
#                        (a caller may redefine it to return 1 instead: the
#                        functions below then return 1 after it)
#   check_ledger STEPS RBS NPER [groups]
#                        the ledger holds steps 1..STEPS each once and every
#                        sample id exactly once, STEPS*RBS*NPER of them
#                        (groups: and each step is RBS whole groups)
#   check_metrics STEPS [GAPS]
#                        metrics.jsonl: RL steps rising, none twice, the last
#                        one STEPS, at most GAPS (default 0) missing
#   check_wf_metrics STEPS RBS NPER [EVALS]
#                        metrics.jsonl of a run whose workflow calls the
#                        calculator tool: STEPS RL lines (and EVALS eval lines
#                        when given), each with tool_call_rate, tool_calls,
#                        tool_errors, accuracy, wf_accepted, wf_refused; the
#                        buffer refused nothing and accepted at least
#                        STEPS*RBS*NPER samples; tool_calls > 0 over the RL lines
#   check_ckpt           the latest checkpoint loads (slime-model generate)
#   fault_count          faults fired: supervisor schedule + inject, and the
#                        actors' injection points (logs)
#   restart_count        actor restarts (supervisor.log "ended:" lines)
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
PY=/usr/bin/python3
# SL_TIME_SCALE (an integer, default 1; `make asan` sets it) multiplies the
# deadlines of wait_ledger / wait_end and SL_SMALL's heartbeat timeout
TS=${SL_TIME_SCALE:-1}
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
SUP=
SUP_RC=
T=
RUN=
SL_SMALL="--set sft.steps=20 --set eval.n_prompts=20 --set trainer.save_interval=3 --set trainer.eval_interval=5
 --set rollout.rollout_timeout_ms=3000 --set rollout.rollout_batch_size=8 --set rollout.n_samples_per_prompt=4
 --set trainer.global_batch_size=32 --set trainer.micro_batch_size=32
 --set supervisor.heartbeat_ms=300 --set supervisor.heartbeat_timeout_ms=$((3000 * TS)) --set supervisor.intensity=30"
TOOL_STEPS=3
TOOL_RBS=8
TOOL_NPER=4
SL_TOOL_SMALL="--set run.num_steps=$TOOL_STEPS --set sft.steps=300 --set data.arith_tool_share=1
 --set data.arith_train_size=9600 --set rollout.rollout_batch_size=$TOOL_RBS
 --set rollout.n_samples_per_prompt=$TOOL_NPER --set trainer.global_batch_size=$((TOOL_RBS * TOOL_NPER))
 --set trainer.micro_batch_size=$((TOOL_RBS * TOOL_NPER)) --set eval.n_prompts=16
 --set trainer.eval_interval=0 --set trainer.save_interval=0"

sl_cleanup() {
    [ -n "$SUP" ] && kill -9 "$SUP" 2>/dev/null
    [ -n "$T" ] || return 0
    if [ -n "${SL_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}

sl_need() {
    for p in "$@"; do
        [ -x "$BUILD/$p" ] || { echo "$BUILD/$p not built: skipped"; exit 77; }
    done
}

sl_tmp() {
    T=$(mktemp -d "/tmp/$1.XXXXXX")
    RUN=$T/run
    trap sl_cleanup EXIT
}

sl_setup() {
    _prefix=$1; shift
    sl_need slime-supervisor slime-actor slime-ctl slime-model "$@"
    [ -x "$PY" ] || { echo "no $PY: skipped"; exit 77; }
    sl_tmp "$_prefix"
}

sl_driver_setup() {
    ACTOR=$BUILD/slime-actor
    DRIVER=$BUILD/tests/$2
    sl_need slime-actor "tests/$2"
    sl_tmp "$1"
    mkdir -p "$RUN" && chmod 700 "$RUN"
}

sl_driver_run() {
    timeout 150 "$DRIVER" "$ACTOR" "$T/topology.conf" "$RUN" "$@"
    _rc=$?
    if [ $_rc -ne 0 ]; then
        for f in "$RUN"/*.log; do echo "--- $f"; tail -20 "$f"; done
    fi
    return $_rc
}

fail() {
    echo "FAIL: $*"
    for f in "$T"/*.out; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
    for f in "$RUN"/logs/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -25 "$f"; }; done
    exit 1
}

sl_start() {
    out=$1; shift
    "$BUILD/slime-supervisor" "$ROOT/conf/topology.conf" --run-dir "$RUN" "$@" > "$T/$out" 2>&1 &
    SUP=$!
}

sl_launch() {
    _conf=$1; RUN=$T/$2; shift 2
    (cd "$ROOT" && exec "$BUILD/slime-supervisor" "$_conf" --run-dir "$RUN" "$@") > "$T/sup.out" 2>&1 &
    SUP=$!
}

sl_finish() {
    wait_end "$1" || return 1
    [ "$SUP_RC" -eq 0 ] || { fail "$RUN: supervisor exit $SUP_RC"; return 1; }
}

sl_run() {
    _conf=$1; _name=$2; _secs=$3; shift 3
    sl_launch "$_conf" "$_name" "$@"
    sl_finish "$_secs"
}

sl_tool_run() {
    _name=$1; shift
    # shellcheck disable=SC2086
    sl_run conf/tool.conf "$_name" 300 $SL_TOOL_SMALL "$@" || return 1
    check_ledger $TOOL_STEPS $TOOL_RBS $TOOL_NPER groups || return 1
    check_wf_metrics $TOOL_STEPS $TOOL_RBS $TOOL_NPER 2
}

field() {
    "$BUILD/slime-ctl" --run-dir "$RUN" status --json 2>/dev/null |
        "$PY" -c 'import json,sys
o=json.load(sys.stdin)
print([a for a in o["actors"] if a["name"]==sys.argv[1]][0][sys.argv[2]])' "$1" "$2" 2>/dev/null
}

is() { [ "$(field "$1" "$2")" = "$3" ]; }

wait_for() {
    _n=$(($1 * 10)); shift
    while [ $_n -gt 0 ]; do "$@" && return 0; sleep 0.1; _n=$((_n - 1)); done
    return 1
}

ping_replies() { grep -o ' replies=[0-9]*' "$RUN/logs/ping.log" 2>/dev/null | tail -1 | cut -d= -f2; }

replies_at_least() {
    _r=$(ping_replies)
    [ -n "$_r" ] && [ "$_r" -ge "$1" ]
}

ledger_lines() { cat "$RUN/ledger.jsonl" 2>/dev/null | wc -l; }

wait_ledger() {
    _i=0
    while [ "$(ledger_lines)" -lt "$1" ]; do
        kill -0 "$SUP" 2>/dev/null || { fail "the run ended before $1 ledger lines"; return 1; }
        _i=$((_i + 1)); [ $_i -gt $(($2 * 10 * TS)) ] && { fail "no $1 ledger lines within $(($2 * TS)) s"; return 1; }
        sleep 0.1
    done
}

wait_end() {
    _i=0
    while kill -0 "$SUP" 2>/dev/null; do
        _i=$((_i + 1)); [ $_i -gt $(($1 * 10 * TS)) ] && { fail "run not done within $(($1 * TS)) s"; return 1; }
        sleep 0.1
    done
    wait "$SUP"; SUP_RC=$?; SUP=
}

check_ledger() {
    "$PY" - "$RUN" "$1" "$2" "$3" "${4:-}" <<'PYEOF' || fail "ledger check"
import json, sys
run, steps, rbs, nper, groups = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ledger = [json.loads(l) for l in open(run + "/ledger.jsonl") if l.strip()]
got = [r["step"] for r in ledger]
assert got == list(range(1, steps + 1)), "ledger steps %s" % got
ids = [s for r in ledger for s in r["sample_ids"]]
lost = steps * rbs * nper - len(set(ids))
assert len(ids) == len(set(ids)), "trained twice: %d sample ids of %d" % (len(ids) - len(set(ids)), len(ids))
assert lost == 0, "%d sample ids, expected %d" % (len(ids), steps * rbs * nper)
if groups:
    for r in ledger:  # whole groups: nper samples s0.. of each prompt
        g = {}
        for s in r["sample_ids"]:
            p, sub = s.rsplit(":s", 1)
            g.setdefault(p, set()).add(int(sub))
        assert all(v == set(range(nper)) for v in g.values()), "incomplete group at step %d" % r["step"]
        assert len(g) == rbs, "%d groups at step %d" % (len(g), r["step"])
print("ledger: steps 1..%d, %d sample ids, each once (lost 0, trained twice 0)" % (steps, len(ids)))
PYEOF
}

check_metrics() {
    "$PY" - "$RUN" "$1" "${2:-0}" <<'PYEOF' || fail "metrics check"
import json, sys
run, steps, gaps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
rl = [x["rl_step"] for x in m if x["phase"] == "rl"]
assert rl == sorted(set(rl)), "metrics rl steps not rising or repeated: %s" % rl
assert rl and rl[-1] == steps, "last metrics rl step %s, expected %d" % (rl[-1:] or None, steps)
missing = sorted(set(range(1, steps + 1)) - set(rl))
assert len(missing) <= gaps, "metrics lack steps %s" % missing
ev = [x["rl_step"] for x in m if x["phase"] == "eval"]
assert len(ev) == len(set(ev)), "eval steps %s" % ev
PYEOF
}

check_wf_metrics() {
    "$PY" - "$RUN" "$1" "$2" "$3" "${4:-}" <<'PYEOF' || fail "$RUN: metrics check"
import json, sys
run, steps, rbs, nper, evals = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
m = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
rl = [x for x in m if x["phase"] == "rl"]
ev = [x for x in m if x["phase"] == "eval"]
assert len(rl) == steps, "metrics lines: %d rl, expected %d" % (len(rl), steps)
assert not evals or len(ev) == int(evals), "metrics lines: %d eval, expected %s" % (len(ev), evals)
for x in rl:
    for k in ("tool_call_rate", "tool_calls", "tool_errors", "accuracy", "wf_accepted", "wf_refused"):
        assert k in x, "rl line lacks %s" % k
assert rl[-1]["wf_refused"] == {}, "refusals: %s" % rl[-1]["wf_refused"]
assert rl[-1]["wf_accepted"] >= steps * rbs * nper, "accepted %d" % rl[-1]["wf_accepted"]
calls = sum(x["tool_calls"] for x in rl)
assert calls > 0, "the model never called the calculator"
line = "tool_call_rate by RL step %s" % [round(x["tool_call_rate"], 3) for x in rl]
if ev:
    line += ", eval accuracy %.3f -> %.3f" % (ev[0]["eval_accuracy"], ev[-1]["eval_accuracy"])
print(line)
PYEOF
}

check_ckpt() {
    _c=$(cat "$RUN/checkpoints/latest" 2>/dev/null) || { fail "no checkpoints/latest"; return 1; }
    "$BUILD/slime-model" info "$RUN/checkpoints/$_c" > /dev/null 2>&1 || { fail "slime-model info $_c"; return 1; }
    "$BUILD/slime-model" generate "$RUN/checkpoints/$_c" --prompt "12+34=" --max-tokens 4 > /dev/null 2>&1 ||
        fail "the checkpoint $_c does not load (slime-model generate)"
}

fault_count() {
    _a=$(grep -c "WARN fault: \|WARN inject: " "$RUN/logs/supervisor.log" 2>/dev/null)
    _b=$(cat "$RUN"/logs/*.log 2>/dev/null | grep -c "faults: [a-z_]*: \(kill\|drop\|corrupt\) at pass")
    echo $((_a + _b))
}

restart_count() { grep -c ") ended: " "$RUN/logs/supervisor.log" 2>/dev/null; }
