#!/bin/sh
# slime-model end to end: info on random models (single file, BF16 shards),
# tokenize with the shared tokenizers, score/generate on a random model when
# the model kernels are built, and hostile inputs: each must exit with
# exactly 2 and a message on stderr, never a signal.
set -u
BUILD=${SL_BUILD:-build}
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN="$BUILD/slime-model"
GEN="$ROOT/tests/model/make_random_model.py"
[ -x "$BIN" ] || { echo "skip: $BIN not built"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 missing"; exit 77; }
T=$(mktemp -d /tmp/sl_test_model_XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); printf '  ok   %s\n' "$1"; }
bad() { fail=$((fail + 1)); printf '  FAIL %s\n' "$1"; }

# expect_exit2 NAME MSG_SUBSTRING CMD...   (stdin from $T/in when present)
expect_exit2() {
    name=$1 msg=$2; shift 2
    if [ -f "$T/in" ]; then "$@" <"$T/in" >"$T/out" 2>"$T/err"; else "$@" </dev/null >"$T/out" 2>"$T/err"; fi
    rc=$?
    if [ "$rc" -eq 2 ] && grep -q -- "$msg" "$T/err"; then ok "$name"
    else bad "$name (exit $rc, stderr: $(head -c 300 "$T/err"))"; fi
    rm -f "$T/in"
}

json_get() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d'+sys.argv[2]))" "$@"; }

# ------------------------------------------------------------------ info
n1=$(python3 "$GEN" "$T/m1" --family qwen3) || { echo "generator failed"; exit 1; }
n2=$(python3 "$GEN" "$T/m2" --family llama --dtype BF16 --shard-bytes 20000)
if "$BIN" info "$T/m1" >"$T/info1" 2>"$T/err" && [ "$(json_get "$T/info1" "['weights']['parameters']")" = "$n1" ] \
   && [ "$(json_get "$T/info1" "['architecture']")" = "Qwen3ForCausalLM" ]; then ok "info reads a random qwen3 model ($n1 parameters)"
else bad "info on qwen3 model: $(cat "$T/err")"; fi
if "$BIN" info "$T/m2" >"$T/info2" 2>"$T/err" && [ "$(json_get "$T/info2" "['weights']['files']")" = 4 ] \
   && [ "$(json_get "$T/info2" "['weights']['dtypes']['BF16']")" = "$n2" ]; then ok "info reads a sharded BF16 llama model"
else bad "info on sharded model: $(cat "$T/err")"; fi

# -------------------------------------------------------------- tokenize
S=${SL_SHARED:-}
if [ -n "$S" ] && [ -d "$S/data/tokenizers/qwen3" ]; then
    printf '%s\n' '{"text":"Hello world"}' '' '{"text":"<|im_start|>user"}' >"$T/tin"
    "$BIN" tokenize "$S/data/tokenizers/qwen3" <"$T/tin" >"$T/tout" 2>"$T/err"
    if [ $? -eq 0 ] && [ "$(sed -n 1p "$T/tout")" = '{"ids":[9707,1879]}' ] \
       && [ "$(sed -n 2p "$T/tout")" = '{"ids":[151644,872]}' ]; then ok "tokenize qwen3 gives HF ids, added tokens recognized"
    else bad "tokenize qwen3: $(cat "$T/tout" "$T/err")"; fi
    printf '%s\n' '{"ids":[9707,1879]}' | "$BIN" tokenize "$S/data/tokenizers/qwen3/tokenizer.json" --decode >"$T/tout" 2>"$T/err"
    if [ "$(cat "$T/tout")" = '{"text":"Hello world"}' ]; then ok "tokenize --decode on the tokenizer.json file"
    else bad "decode qwen3: $(cat "$T/tout" "$T/err")"; fi
    for fam in gpt2 llama3 llama2; do
        d="$S/data/tokenizers/$fam"
        [ -d "$d" ] || continue
        printf '%s\n' '{"text":"The quick brown fox, 12345 times."}' | "$BIN" tokenize "$d" >"$T/tout" 2>"$T/err" &&
        python3 -c "import json,sys; print(json.dumps({'ids': json.load(open(sys.argv[1]))['ids']}))" "$T/tout" >"$T/tids" &&
        "$BIN" tokenize "$d" --decode <"$T/tids" >"$T/tback" 2>>"$T/err" &&
        grep -q 'The quick brown fox, 12345 times.' "$T/tback"
        if [ $? -eq 0 ]; then ok "tokenize round trip with $fam"; else bad "round trip $fam: $(cat "$T/err")"; fi
    done
    cp -r "$T/m1" "$T/m1tok" && cp "$S/data/tokenizers/qwen3/"* "$T/m1tok/" 2>/dev/null
    if "$BIN" info "$T/m1tok" >"$T/info3" 2>"$T/err" && [ "$(json_get "$T/info3" "['tokenizer']['vocab_size']")" -gt 150000 ] \
       && [ "$(json_get "$T/info3" "['tokenizer']['chat_format']")" = chatml ]; then ok "info describes the tokenizer"
    else bad "info with tokenizer: $(cat "$T/err")"; fi
    printf '%s\n' '{"text":"a"}' '{"text": 5}' >"$T/in"
    expect_exit2 "tokenize: a non-string text names the line" "line 2" "$BIN" tokenize "$S/data/tokenizers/qwen3"
    printf '%s\n' '{"ids":[1,2]}' '{"ids":[1,99999999]}' >"$T/in"
    expect_exit2 "tokenize --decode: an id past the vocabulary names the line" "line 2" "$BIN" tokenize "$S/data/tokenizers/qwen3" --decode
    printf '%s\n' '{"text":"a"}' '' '{"text":"b"' >"$T/in"
    expect_exit2 "tokenize: broken JSON names the line" "line 3" "$BIN" tokenize "$S/data/tokenizers/qwen3"
    printf '%s\n' '[1,2]' >"$T/in"
    expect_exit2 "tokenize: a JSON array line is refused" "line 1: not a JSON object" "$BIN" tokenize "$S/data/tokenizers/qwen3"
else
    echo "  (tokenize checks skipped: SL_SHARED tokenizers absent)"
fi
printf '{"a":1}\n' >"$T/bad_tok.json"
expect_exit2 "tokenize: a tokenizer.json that is not a tokenizer is refused" "bad_tok.json" "$BIN" tokenize "$T/bad_tok.json"

# ---------------------------------------------------- score and generate
if "$BIN" score "$T/m1" </dev/null >/dev/null 2>"$T/err"; then
    printf '%s\n' '{"ids":[5,17,200,3]}' '{"ids":[9]}' >"$T/sin"
    "$BIN" score "$T/m1" <"$T/sin" >"$T/sout" 2>"$T/err"
    if [ $? -eq 0 ] && python3 - "$T/sout" <<'PY'
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 2, lines
a, b = lines[0]["logprobs"], lines[1]["logprobs"]
assert len(a) == 3 and len(b) == 0, lines
assert all(x < 0 and math.isfinite(x) for x in a), a
PY
    then ok "score gives n-1 finite negative log-probs per line"; else bad "score: $(cat "$T/sout" "$T/err")"; fi
    printf '%s\n' '{"ids":[1,2]}' '{"ids":[1,256]}' >"$T/in"
    expect_exit2 "score: an id past the model vocabulary names the line" "line 2" "$BIN" score "$T/m1"
    printf '%s\n' '{"ids":"x"}' >"$T/in"
    expect_exit2 "score: ids that are not an array are refused" "line 1" "$BIN" score "$T/m1"
    if [ -n "$S" ] && [ -d "$S/data/tokenizers/gpt2" ]; then
        python3 "$GEN" "$T/mg" --family qwen2 --vocab 50257 --hidden 16 --layers 1 >/dev/null
        cp "$S/data/tokenizers/gpt2/"* "$T/mg/"
        "$BIN" generate "$T/mg" --prompt "Hello" --max-tokens 8 --seed 3 >"$T/g1" 2>"$T/err"; r1=$?
        "$BIN" generate "$T/mg" --prompt "Hello" --max-tokens 8 --seed 3 >"$T/g2" 2>>"$T/err"; r2=$?
        if [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && cmp -s "$T/g1" "$T/g2" && [ -s "$T/g1" ]; then ok "generate is reproducible with a seed"
        else bad "generate: $(cat "$T/g1" "$T/err")"; fi
        "$BIN" generate "$T/mg" --prompt "Hello there" --max-tokens 6 --seed 9 --json >"$T/gj" 2>"$T/err" &&
        printf '%s\n' '{"text":"Hello there"}' | "$BIN" tokenize "$T/mg" >"$T/pids" 2>>"$T/err" &&
        python3 - "$T/pids" "$T/gj" >"$T/sin2" <<'PY' &&
import json, sys
p = json.load(open(sys.argv[1]))["ids"]; g = json.load(open(sys.argv[2]))
print(json.dumps({"ids": p + g["tokens"]}))
PY
        "$BIN" score "$T/mg" <"$T/sin2" >"$T/sout2" 2>>"$T/err" &&
        python3 - "$T/pids" "$T/gj" "$T/sout2" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["ids"]; g = json.load(open(sys.argv[2]))
s = json.load(open(sys.argv[3]))["logprobs"][len(p) - 1:]
d = max(abs(a - b) for a, b in zip(s, g["logprobs"]))
assert len(s) == len(g["logprobs"]) and d < 1e-3, (s, g["logprobs"])
print("    max |score - generate logprob| = %.2e" % d, file=sys.stderr)
PY
        if [ $? -eq 0 ]; then ok "generate's log-probs (KV cache) equal score's (full forward)"; else bad "generate vs score: $(cat "$T/err")"; fi
        "$BIN" generate "$T/mg" --prompt "Hello" --max-tokens 4 --temperature 0 >"$T/g3" 2>"$T/err"
        if [ $? -eq 0 ]; then ok "greedy generate runs"; else bad "greedy generate: $(cat "$T/err")"; fi
        expect_exit2 "generate: a bad --top-p is refused" "top-p" "$BIN" generate "$T/mg" --prompt x --top-p 1.5
        expect_exit2 "generate: a bad --max-tokens is refused" "max-tokens" "$BIN" generate "$T/mg" --prompt x --max-tokens -1
    fi
    expect_exit2 "generate: a missing --prompt is refused" "prompt" "$BIN" generate "$T/m1"
else
    echo "  (score/generate checks skipped: this slime-model has no model kernels yet)"
fi

# ------------------------------------------------------------ hostile
expect_exit2 "no arguments print usage" "usage" "$BIN"
expect_exit2 "an unknown command is refused" "unknown command" "$BIN" frobnicate
expect_exit2 "info on a missing folder is refused" "not a folder" "$BIN" info "$T/nope"
cp -r "$T/m1" "$T/h1"
f="$T/h1/model.safetensors"
head -c 100 "$T/m1/model.safetensors" >"$f"
expect_exit2 "info: a truncated weights file is refused" "model.safetensors: header length" "$BIN" info "$T/h1"
head -c 4 "$T/m1/model.safetensors" >"$f"
expect_exit2 "info: a four-byte weights file is refused" "truncated" "$BIN" info "$T/h1"
size=$(wc -c <"$T/m1/model.safetensors")
head -c $((size - 3)) "$T/m1/model.safetensors" >"$f"
expect_exit2 "info: a file missing its last bytes is refused" "out of range" "$BIN" info "$T/h1"
printf '\377\377\377\377\377\377\377\177{}' >"$f"
expect_exit2 "info: an absurd header length is refused" "absurd header length" "$BIN" info "$T/h1"
python3 - "$f" <<'PY'
import struct, sys
h = b'{"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}}'
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"\0" * 4)
PY
expect_exit2 "info: an unknown dtype is refused" "unknown/unsupported dtype 'I8'" "$BIN" info "$T/h1"
python3 - "$f" <<'PY'
import struct, sys
h = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}'
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"\0" * 12)
PY
expect_exit2 "info: overlapping tensors are refused" "overlap" "$BIN" info "$T/h1"
printf '\006\000\000\000\000\000\000\000{"a":[' >"$f"
expect_exit2 "info: a header that is not JSON is refused" "not valid JSON" "$BIN" info "$T/h1"
cp "$T/m1/model.safetensors" "$f"
printf '{"model_type": "qwen3",' >"$T/h1/config.json"
expect_exit2 "info: a broken config.json is refused" "config.json" "$BIN" info "$T/h1"
cp -r "$T/m2" "$T/h2"
rm "$T/h2/model-00002-of-00004.safetensors"
expect_exit2 "info: a shard named in the index but missing is refused" "model-00002-of-00004.safetensors' named in the index is missing" "$BIN" info "$T/h2"
printf '{"weight_map": 7}' >"$T/h2/model.safetensors.index.json"
expect_exit2 "info: a broken index is refused" "weight_map" "$BIN" info "$T/h2"

printf '\n%d passed, %d failed\n' "$pass" "$fail"
[ "$fail" -eq 0 ]
