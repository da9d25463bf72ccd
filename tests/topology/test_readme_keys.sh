#!/bin/sh
# The README never drifts from the key table (topology/keys.c, printed by
# `slime-supervisor --help-config`):
#   - the README points at `slime-supervisor --help-config`;
#   - every `section.key` / `actor.NAME.key` it mentions (--set examples,
#     prose) names a key of that section;
#   - every key of its ```ini blocks exists in the block's section (and an
#     enum value written there is one the key allows);
#   - every `key = value` in backticks is a key of some section;
#   - every other backticked snake_case word is a key, an enum value, or one
#     of the few names listed below that are not configuration (metrics
#     fields, C symbols). A new one fails here: add the key to keys.c or the
#     word to NOT_KEYS.
# Skips (77) when slime-supervisor is not built or python3 is missing.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
PY=/usr/bin/python3
[ -x "$BUILD/slime-supervisor" ] || { echo "$BUILD/slime-supervisor not built: skipped"; exit 77; }
[ -x "$PY" ] || { echo "no $PY: skipped"; exit 77; }
"$BUILD/slime-supervisor" --help-config > /tmp/slreadme.$$ || { echo "FAIL: --help-config exit $?"; exit 1; }
trap 'rm -f /tmp/slreadme.$$' EXIT
"$PY" - "$ROOT/README.md" /tmp/slreadme.$$ <<'PYEOF'
import re, sys

NOT_KEYS = {"sl_actor_ops", "cuda_ipc", "train_rollout_logprob_abs_diff", "weight_version", "samples_trained", "reward_mean", "reward_std",
            "response_len_mean", "grad_norm", "tokens_per_s", "eval_accuracy", "sample_ids",
            "loss_mask", "cached_tokens", "staleness", "groups_kept", "tool_call_rate"}
readme = open(sys.argv[1]).read()
ref = open(sys.argv[2]).read()
keys, enums, sec = {}, {}, None
for line in ref.splitlines():
    m = re.match(r"^\[(\w+)[^\]]*\]", line)
    if m:
        sec = m.group(1)
        keys.setdefault(sec, set())
        continue
    m = re.match(r"^  (\w+)\s+(.*)$", line)
    if m and sec:
        keys[sec].add(m.group(1))
        e = re.match(r"enum \(([^)]*)\)", m.group(2))
        if e:
            enums[(sec, m.group(1))] = {v.strip() for v in e.group(1).split(",")}
assert len(keys) >= 5 and sum(map(len, keys.values())) >= 50, "could not parse --help-config"
all_keys = set().union(*keys.values())
all_values = set().union(*enums.values()) if enums else set()
errors = []
if "slime-supervisor --help-config" not in readme:
    errors.append("the README does not point at `slime-supervisor --help-config`")

n_dotted = 0
for m in re.finditer(r"(?<![\w./-])(actor\.[A-Za-z0-9_-]+|[a-z]+)\.([a-z_][a-z0-9_]*)\b(?![./]\w)", readme):
    s, k = m.group(1), m.group(2)
    if s.startswith("actor."):
        s = "actor"
    if s not in keys:
        continue  # a file name (metrics.jsonl) or prose
    if k in ("key", "h", "c", "py", "sh", "conf", "json", "jsonl", "md", "so", "a", "txt", "log", "html"):
        continue  # section.key itself, or a file name (actor.h)
    n_dotted += 1
    if k not in keys[s]:
        errors.append(f"README mentions {m.group(0)}: [{s}] has no key '{k}'")

n_ini = 0
for block in re.findall(r"```ini\n(.*?)```", readme, re.S):
    sec = None
    for line in block.splitlines():
        line = line.split(";", 1)[0].strip()
        m = re.match(r"^\[(\w+)", line)
        if m:
            sec = m.group(1)
            if sec not in keys:
                errors.append(f"ini block: unknown section [{sec}]")
            continue
        m = re.match(r"^(\w+)\s*=\s*(.*)$", line)
        if m and sec in keys:
            n_ini += 1
            k, v = m.group(1), m.group(2).strip()
            if k not in keys[sec]:
                errors.append(f"ini block: [{sec}] has no key '{k}'")
            elif (sec, k) in enums and re.fullmatch(r"\w+", v) and v not in enums[(sec, k)]:
                errors.append(f"ini block: [{sec}] {k} = {v}: not one of {sorted(enums[(sec, k)])}")

n_assign = 0
for m in re.finditer(r"`(\w+) = ([^`]*)`", readme):
    n_assign += 1
    if m.group(1) not in all_keys:
        errors.append(f"`{m.group(0)[1:-1]}`: no key '{m.group(1)}' in any section")

n_words = 0
for w in sorted(set(re.findall(r"`([a-z][a-z0-9]*_[a-z0-9_]*)`", readme))):
    n_words += 1
    if w not in all_keys and w not in all_values and w not in NOT_KEYS:
        errors.append(f"`{w}` is neither a key nor an enum value (nor listed in NOT_KEYS)")

for e in errors:
    print("FAIL:", e)
print(f"checked {n_dotted} section.key mentions, {n_ini} ini lines, {n_assign} `key = value`, "
      f"{n_words} snake_case words against {sum(map(len, keys.values()))} keys")
sys.exit(1 if errors else 0)
PYEOF
