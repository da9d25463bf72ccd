#!/bin/sh
# The two custom-actor examples of the README ("Attaching custom actors")
# take part in a real run, each started by the supervisor with kind = exec
# as the run's reward ([reward] rm_type = remote):
#   1. tests/rl/len_penalty_actor.c, built here against actors/actor.h and
#      build/libslime.a with `make -s cflags` / `make -s libs`
#      (heartbeat = nng, answered by the SDK), penalty 0.01 per byte;
#   2. tests/rl/len_penalty_actor.py (python3-zmq, heartbeat = mailbox),
#      penalty 0.005 per byte.
# For each: the run (conf/topology.conf, no SFT, 2 RL steps of 2x4) ends by
# itself, exit 0, one ledger line per step; every reward in samples.jsonl
# is the actor's function of that sample (exact "#### N" match with the
# label computed from the arithmetic prompt, minus the penalty x the
# response's bytes, the response without special tokens as the reward
# actor decodes it); some are negative (no built-in reward is); each RL
# line of metrics.jsonl has a reward_mean <= 0; the actor logged how many
# samples it scored.
# Skips (77) when the programs, cc or /usr/bin/python3 are missing; case 2
# skips alone without python3-zmq.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
PY=/usr/bin/python3
for p in slime-supervisor slime-actor libslime.a; do
    [ -e "$BUILD/$p" ] || { echo "$BUILD/$p not built: skipped"; exit 77; }
done
command -v cc > /dev/null || { echo "no cc: skipped"; exit 77; }
[ -x "$PY" ] || { echo "no $PY: skipped"; exit 77; }

T=$(mktemp -d /tmp/slca.XXXXXX)
SUP=
cleanup() { [ -n "$SUP" ] && kill -9 "$SUP" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
RUN=
fail() { echo "FAIL: $*"; echo "--- supervisor output"; tail -20 "$T/sup.out" 2>/dev/null;
         for f in "$RUN"/logs/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

cflags=$(make -s -C "$ROOT" BUILD="$BUILD" cflags) && libs=$(make -s -C "$ROOT" BUILD="$BUILD" libs) ||
    fail "make cflags/libs"
# shellcheck disable=SC2086
(cd "$ROOT" && cc $cflags -O2 -Wall -Wextra -Werror -o "$T/len_penalty_actor" tests/rl/len_penalty_actor.c $libs) ||
    fail "building tests/rl/len_penalty_actor.c"

# run NAME PENALTY HEARTBEAT COMMAND...: a 2-step run with the actor NAME as the reward
run() {
    name=$1 pen=$2 hb=$3; shift 3
    RUN=$T/$name
    "$BUILD/slime-supervisor" "$ROOT/conf/topology.conf" --run-dir "$RUN" \
        --set sft.steps=0 --set run.num_steps=2 --set rollout.rollout_batch_size=2 \
        --set rollout.n_samples_per_prompt=4 --set eval.n_prompts=2 --set trainer.save_interval=0 \
        --set reward.rm_type=remote --set reward.remote_actor="$name" \
        --set actor."$name".kind=exec --set actor."$name".heartbeat="$hb" \
        --set "actor.$name.command=$* --penalty $pen" > "$T/sup.out" 2>&1 &
    SUP=$!
    i=0
    while kill -0 "$SUP" 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 1500 ] && fail "$name: not done within 150 s"
        sleep 0.1
    done
    wait "$SUP"; rc=$?; SUP=
    [ $rc -eq 0 ] || fail "$name: supervisor exit $rc"
    [ "$(wc -l < "$RUN/ledger.jsonl")" -eq 2 ] || fail "$name: not 2 ledger lines"
    grep -q "started $name (exec)" "$RUN/logs/supervisor.log" || fail "$name not started by the supervisor"
    "$PY" - "$RUN" "$pen" <<'PYEOF' || fail "$name: rewards are not the actor's"
import json, re, sys
run, pen = sys.argv[1], float(sys.argv[2])
special = re.compile(r"<\|(endoftext|im_start|im_end)\|>")
n = neg = 0
for line in open(run + "/samples.jsonl"):
    o = json.loads(line)
    m = re.fullmatch(r"(\d+)([+-])(\d+)=", o["prompt"])
    assert m, o["prompt"]
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    label = str(a + b if op == "+" else a - b)
    resp = special.sub("", o["response"])
    at = resp.rfind("####")
    answer = resp[at + 4:].lstrip(" ").split("\n", 1)[0] if at >= 0 else None
    want = (1.0 if answer == label else 0.0) - pen * len(resp.encode())
    assert abs(o["reward"] - want) < 1e-5, (o, want)
    n += 1
    neg += o["reward"] < 0
assert n >= 2 and neg >= 1, (n, neg)
rl = [json.loads(l) for l in open(run + "/metrics.jsonl") if '"phase":"rl"' in l]
assert len(rl) == 2 and all(x["reward_mean"] <= 0 for x in rl), rl
assert all(x.get("reward_failed", 0) == 0 for x in rl), rl
print(f"{n} samples rewarded by the actor ({neg} negative); reward_mean "
      + ", ".join("%.4f" % x["reward_mean"] for x in rl))
PYEOF
    grep -q "scored [1-9][0-9]* samples" "$RUN/logs/$name.log" || fail "$name did not log its count"
}

run lenpen 0.01 nng "$T/len_penalty_actor"
echo "ok 1 - the C actor (actor.h SDK) is the run's reward"

if "$PY" -c 'import zmq' 2>/dev/null; then
    run pylenpen 0.005 mailbox "$PY" "$ROOT/tests/rl/len_penalty_actor.py"
    echo "ok 2 - the Python actor (python3-zmq) is the run's reward"
else
    echo "ok 2 # skip no python3-zmq"
fi
echo "PASS: custom actors"
