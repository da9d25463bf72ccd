#!/bin/sh
# conf/gsm8k.conf end to end with "a user's Qwen folder": a tiny random
# Qwen3 model (tests/unit/helper_make_qwen.c: hidden 16, 1 layer, Qwen3's
# 151,936-row vocabulary, the real qwen3 tokenizer from
# $SL_SHARED/data/tokenizers/qwen3) given with --set model.path=..., GSM8K
# questions from $SL_SHARED/data/gsm8k/test.jsonl (the first 16 lines, to
# keep tokenizing short), chat template on, rm_type gsm8k. Tiny overrides:
# 2 RL steps of 2 prompts x 2 samples, 16 new tokens, eval on 2 prompts.
# Asserts: exit 0, 2 ledger lines of 4 distinct sample ids, metrics with
# reward_mean on both RL steps. Skips (77) without $SL_SHARED's data or
# the programs.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
SHARED=${SL_SHARED:-$ROOT/../shared}
PY=/usr/bin/python3
for p in slime-supervisor slime-actor tests/helper_make_qwen; do
    [ -x "$BUILD/$p" ] || { echo "$BUILD/$p not built: skipped"; exit 77; }
done
[ -f "$SHARED/data/gsm8k/test.jsonl" ] && [ -f "$SHARED/data/tokenizers/qwen3/tokenizer.json" ] ||
    { echo "no $SHARED/data (gsm8k, qwen3 tokenizer): skipped"; exit 77; }
[ -x "$PY" ] || { echo "no $PY: skipped"; exit 77; }

T=$(mktemp -d /tmp/slgsm.XXXXXX)
RUN=$T/run
SUP=
cleanup() { [ -n "$SUP" ] && kill -9 "$SUP" 2>/dev/null; [ -n "${SL_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -20 "$T/sup.out" 2>/dev/null;
         for f in "$RUN"/logs/*.log; do echo "--- $f"; grep -v DEBUG "$f" | tail -15; done; exit 1; }

"$BUILD/tests/helper_make_qwen" "$T/qwen" "$SHARED/data/tokenizers/qwen3" > /dev/null || fail "helper_make_qwen"
head -n 16 "$SHARED/data/gsm8k/test.jsonl" > "$T/gsm8k16.jsonl"
start=$(date +%s)
cd "$ROOT" || fail "cd $ROOT"
"$BUILD/slime-supervisor" conf/gsm8k.conf --run-dir "$RUN" --set model.path="$T/qwen" \
    --set data.prompt_data="$T/gsm8k16.jsonl" --set data.eval_prompt_data="$T/gsm8k16.jsonl" \
    --set run.num_steps=2 --set rollout.rollout_batch_size=2 --set rollout.n_samples_per_prompt=2 \
    --set rollout.rollout_max_response_len=16 --set eval.n_prompts=2 --set trainer.global_batch_size=4 \
    --set trainer.micro_batch_size=2 --set trainer.save_interval=0 --set trainer.eval_interval=0 \
    --set supervisor.heartbeat_timeout_ms=120000 > "$T/sup.out" 2>&1 &
SUP=$!
i=0
while kill -0 "$SUP" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 2400 ] && fail "run not done within 240 s"
    sleep 0.1
done
wait "$SUP"; rc=$?; SUP=
[ $rc -eq 0 ] || fail "supervisor exit $rc"
echo "wall time $(( $(date +%s) - start )) s"

"$PY" - "$RUN" <<'PYEOF' || fail "checks"
import json, sys
run = sys.argv[1]
ledger = [json.loads(l) for l in open(run + "/ledger.jsonl") if l.strip()]
assert [r["step"] for r in ledger] == [1, 2], "ledger steps %s" % [r["step"] for r in ledger]
ids = [s for r in ledger for s in r["sample_ids"]]
assert len(ids) == 8 and len(set(ids)) == 8, "sample ids %s" % ids
m = [json.loads(l) for l in open(run + "/metrics.jsonl") if l.strip()]
rl = [x for x in m if x["phase"] == "rl"]
assert [x["rl_step"] for x in rl] == [1, 2], "metrics rl steps %s" % [x["rl_step"] for x in rl]
assert all("reward_mean" in x and "loss" in x for x in rl), "metrics lack reward_mean/loss"
ev = [x for x in m if x["phase"] == "eval"]
assert ev and ev[-1]["eval_n"] == 2, "no eval"
print("ledger %s; reward_mean %s" % ([r["step"] for r in ledger], [x["reward_mean"] for x in rl]))
PYEOF
grep -q "chat\|data: 16 RL prompts" "$RUN/logs/buffer.log" || fail "buffer did not load the 16 prompts"
echo "PASS: conf/gsm8k.conf with a tiny random Qwen3 folder: 2 RL steps"
