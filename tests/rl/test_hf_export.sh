#!/bin/sh
# Checkpoints are Hugging Face folders: a short embedded default run
# (builtin:arith, 30 SFT steps, 2 RL steps of 4x4) leaves
# checkpoints/step_000000 (end of warm-up) and step_000002 (the final model,
# the one `latest` names). Asserts for both: config.json, model.safetensors,
# generation_config.json, tokenizer.json, tokenizer_config.json and
# special_tokens_map.json are there and are JSON; `slime-model info` loads
# the folder (Qwen3ForCausalLM, 100-token vocabulary); `slime-model
# tokenize` reads its tokenizer; `slime-model score --logits` gives finite
# logits whose log-softmax at the next token equals the log-probs it prints
# (1e-4); the two checkpoints' weights differ (training happened). Then
# tests/gpu/check_hf_export.py --dump-ours writes our logits, and the
# transformers comparison runs when transformers is installed (else only a
# note: it runs on the GPU machine).
# Skips (77) when the programs or /usr/bin/python3 are missing.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
PY=/usr/bin/python3
for p in slime-supervisor slime-actor slime-model; do
    [ -x "$BUILD/$p" ] || { echo "$BUILD/$p not built: skipped"; exit 77; }
done
[ -x "$PY" ] || { echo "no $PY: skipped"; exit 77; }
T=$(mktemp -d /tmp/slhf.XXXXXX)
RUN=$T/run
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; tail -20 "$T/sup.out" 2>/dev/null; exit 1; }

timeout 300 "$BUILD/slime-supervisor" "$ROOT/conf/topology.conf" --run-dir "$RUN" --quiet \
    --set run.num_steps=2 --set sft.steps=30 --set eval.n_prompts=8 \
    --set rollout.rollout_batch_size=4 --set rollout.n_samples_per_prompt=4 > "$T/sup.out" 2>&1 ||
    fail "run exit $?"
[ "$(cat "$RUN/checkpoints/latest")" = step_000002 ] || fail "latest is not step_000002"
for c in step_000000 step_000002; do
    D=$RUN/checkpoints/$c
    for f in config.json model.safetensors generation_config.json tokenizer.json tokenizer_config.json \
        special_tokens_map.json; do
        [ -s "$D/$f" ] || fail "$c lacks $f"
    done
    for f in config.json generation_config.json tokenizer.json tokenizer_config.json special_tokens_map.json; do
        "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$D/$f" || fail "$c/$f is not JSON"
    done
    "$BUILD/slime-model" info "$D" > "$T/info.json" || fail "slime-model info $c"
    "$PY" - "$T/info.json" <<'PYEOF' || fail "info of $c"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["architecture"] == "Qwen3ForCausalLM", o["architecture"]
assert o["config"]["vocab_size"] == 100, o["config"]
PYEOF
    echo '{"text":"12+34=46"}' | "$BUILD/slime-model" tokenize "$D" > "$T/ids.json" || fail "tokenize $c"
    "$PY" -c 'import json,sys; sys.stdout.write(json.dumps({"ids": json.load(open(sys.argv[1]))["ids"]}))' \
        "$T/ids.json" | "$BUILD/slime-model" score "$D" --logits > "$T/score.$c.json" || fail "score $c"
    "$PY" - "$T/score.$c.json" <<'PYEOF' || fail "logits of $c"
import json, math, sys
o = json.load(open(sys.argv[1]))
lg, lp = o["logits"], o["logprobs"]
assert len(lg) == 8 and len(lp) == 7 and all(len(r) == 100 for r in lg), (len(lg), len(lp))
ids = [18, 19, 12, 20, 21, 30, 21, 23]  # "12+34=46", one id per character
for t in range(7):
    row = lg[t]
    assert all(math.isfinite(x) for x in row)
    m = max(row)
    lse = m + math.log(sum(math.exp(x - m) for x in row))
    want = row[ids[t + 1]] - lse
    assert abs(want - lp[t]) < 1e-4, (t, want, lp[t])
PYEOF
done
cmp -s "$RUN/checkpoints/step_000000/model.safetensors" "$RUN/checkpoints/step_000002/model.safetensors" &&
    fail "RL did not change the weights"
"$PY" "$ROOT/tests/gpu/check_hf_export.py" --slime-build "$BUILD" --model "$RUN/checkpoints/step_000002" \
    --dump-ours "$T/ours.jsonl" > "$T/dump.out" 2>&1 || { cat "$T/dump.out"; fail "check_hf_export.py --dump-ours"; }
[ "$(wc -l < "$T/ours.jsonl")" -eq 3 ] || fail "ours.jsonl does not hold 3 texts"
"$PY" "$ROOT/tests/gpu/check_hf_export.py" --slime-build "$BUILD" --model "$RUN/checkpoints/step_000002"
rc=$?
case $rc in
    0) echo "transformers loads the checkpoint and its logits match ours" ;;
    77) echo "note: no transformers here; the comparison runs on the GPU machine" ;;
    *) fail "check_hf_export.py exit $rc" ;;
esac
echo "ok: checkpoints are Hugging Face folders"
