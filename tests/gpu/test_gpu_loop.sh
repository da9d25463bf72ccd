#!/bin/sh
# test_gpu_loop.sh — the RL loop with the trainer on the GPU ([actor
# trainer] device = cuda:0: bf16 sl_gpum under trainer_core) and the rollout
# on the CPU (a mixed topology: weights go down through the shm fp32 path),
# a small Qwen3-shaped built-in model with head_dim 64 (q/k norm on the
# GPU). SFT warm-up, then GRPO, stopped after 3 RL steps and resumed to the
# end (run.resume = auto: the GPU trainer reloads its checkpoint, fp32
# weights and AdamW moments). Asserts:
#   - exit 0, RL steps 1..N in metrics.jsonl each once, ledger steps 1..N
#     with every sample id exactly once;
#   - train_rollout_logprob_abs_diff (trainer's bf16 recomputed log-probs
#     against the CPU engine's) <= 0.02 on every RL step, losses finite;
#   - the trainer's log says it ran on the GPU and resumed from a checkpoint;
#   - the latest checkpoint loads (slime-model).
# Then --check of conf/h200.conf (with SL_GPU_COUNT=1 where the machine has
# no GPU).
# Env: SL_GPU_LOOP_STEPS (default 8). Exit 77 without a GPU or programs.
set -u
. "$(dirname "$0")/../rl/lib.sh"
command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU ||
    { echo "no GPU: skipped"; exit 77; }
sl_setup slgpuloop
STEPS=${SL_GPU_LOOP_STEPS:-8}
RBS=8
NPER=8
set -- $SL_SMALL --set run.num_steps="$STEPS" --set sft.steps=40 --set sft.batch_size=32 \
    --set rollout.rollout_batch_size=$RBS --set rollout.n_samples_per_prompt=$NPER \
    --set trainer.global_batch_size=64 --set trainer.micro_batch_size=64 \
    --set trainer.save_interval=2 --set trainer.eval_interval=0 \
    --set actor.trainer.device=cuda:0 --set supervisor.heartbeat_timeout_ms=20000 \
    --set model.builtin_hidden_size=128 --set model.builtin_num_attention_heads=2 \
    --set model.builtin_num_key_value_heads=1 --set model.builtin_head_dim=64 \
    --set model.builtin_intermediate_size=256
start=$(date +%s)
sl_start sup1.out "$@"
wait_ledger 3 "${SL_GPU_LOOP_WAIT:-300}"
"$BUILD/slime-ctl" --run-dir "$RUN" stop > /dev/null || fail "slime-ctl stop"
wait "$SUP"; rc=$?; SUP=
[ $rc -eq 0 ] || fail "stopped supervisor exit $rc"
echo "stopped after $(ledger_lines) ledger line(s)"
sl_start sup2.out "$@" --set run.resume=auto
wait_end "${SL_GPU_LOOP_WAIT:-400}"
[ "$SUP_RC" -eq 0 ] || fail "resumed supervisor exit $SUP_RC"
echo "wall time $(( $(date +%s) - start )) s"
check_ledger "$STEPS" "$RBS" "$NPER" groups
check_metrics "$STEPS"
grep -q "on the GPU (bf16)" "$RUN/logs/trainer.log" || fail "the trainer did not run on the GPU"
grep -q "resumed from" "$RUN/logs/trainer.log" || fail "the trainer did not resume from a checkpoint"
"$PY" - "$RUN" <<'EOF' || fail "metrics"
import json, math, sys
m = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if l.strip()]
rl = [x for x in m if x["phase"] == "rl"]
sft = [x for x in m if x["phase"] == "sft"]
assert sft, "no sft lines"
d = [x["train_rollout_logprob_abs_diff"] for x in rl]
print("train_rollout_logprob_abs_diff per RL step:", " ".join("%.4f" % v for v in d))
print("sft loss %.3f -> %.3f; rl reward_mean %s" % (sft[0]["loss"], sft[-1]["loss"],
      " ".join("%.2f" % x["reward_mean"] for x in rl)))
assert all(0 < v <= 0.02 for v in d), "abs diff above 0.02 (or 0: not measured)"
assert all(math.isfinite(x["loss"]) for x in rl + sft), "non-finite loss"
assert sft[-1]["loss"] < sft[0]["loss"], "SFT on the GPU did not lower the loss"
EOF
check_ckpt
SL_GPU_COUNT=1 "$BUILD/slime-supervisor" "$ROOT/conf/h200.conf" --check > "$T/check.out" 2>&1 ||
    { cat "$T/check.out"; fail "conf/h200.conf does not validate"; }
echo "GPU loop: ok"
