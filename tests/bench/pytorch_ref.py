#!/usr/bin/env python3
"""pytorch_ref.py — the PyTorch + transformers reference for the GPU
benchmarks (issue 6), run in the same device command as slime-bench:

  train:     Qwen2.5-0.5B shape (hidden 896, 24 layers, 14 heads / 2 kv,
             intermediate 4864, vocab 151936, tied), random init, bf16
             parameters, sdpa attention, fused AdamW; B x S random tokens,
             forward + backward (HF causal-LM loss) + optimizer step.
             Eager, and with --compile also torch.compile of the same model.
  generate:  transformers' generate at batch 256 (128-token random prompts,
             256 new tokens sampled, no early stop).
  ceilings:  bf16 8192^3 matmul TFLOP/s and device copy TB/s.

One JSON object per line on stdout. Usage:
  pytorch_ref.py [--train] [--compile] [--generate] [--ceilings] [--steps N]
"""
import argparse
import json
import time

import torch


def cfg():
    from transformers import Qwen2Config
    return Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                       num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                       max_position_embeddings=32768, rope_theta=1000000.0,
                       tie_word_embeddings=True, rms_norm_eps=1e-6)


def make_model():
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    with torch.device("cuda"):
        try:
            m = AutoModelForCausalLM.from_config(cfg(), attn_implementation="sdpa", dtype=torch.bfloat16)
        except TypeError:
            m = AutoModelForCausalLM.from_config(cfg(), attn_implementation="sdpa", torch_dtype=torch.bfloat16)
    return m.to(torch.bfloat16)


def emit(d):
    print(json.dumps(d), flush=True)


def bench_train(compile_, steps, B, S):
    model = make_model()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=True)
    run = torch.compile(model) if compile_ else model
    ids = torch.randint(0, 151936, (B, S), device="cuda")

    def step():
        out = run(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss

    t0 = time.time()
    for _ in range(3):
        loss = step()
    torch.cuda.synchronize()
    warm_s = time.time() - t0
    torch.cuda.reset_peak_memory_stats()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(steps)]
    for a, b in ev:
        a.record()
        loss = step()
        b.record()
    torch.cuda.synchronize()
    ms = sorted(a.elapsed_time(b) for a, b in ev)
    med = ms[len(ms) // 2]
    emit({"bench": "pytorch-train", "mode": "compile" if compile_ else "eager", "seqs": B,
          "seq_len": S, "steps": steps, "step_ms": round(med, 2),
          "tokens_per_s": round(B * S / (med / 1e3)), "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
          "warmup_s": round(warm_s, 1), "loss": round(float(loss), 4),
          "params": sum(p.numel() for p in model.parameters())})
    del model, opt, run
    torch.cuda.empty_cache()


def bench_generate(batch, prompt, new):
    model = make_model()
    model.eval()
    ids = torch.randint(0, 151936, (batch, prompt), device="cuda")
    att = torch.ones_like(ids)
    kw = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, pad_token_id=0, eos_token_id=None)
    with torch.no_grad():
        model.generate(ids, attention_mask=att, max_new_tokens=8, min_new_tokens=8, **kw)
        torch.cuda.synchronize()
        t0 = time.time()
        out = model.generate(ids, attention_mask=att, max_new_tokens=new, min_new_tokens=new, **kw)
        torch.cuda.synchronize()
        dt = time.time() - t0
    gen = (out.shape[1] - prompt) * batch
    emit({"bench": "pytorch-generate", "batch": batch, "prompt": prompt, "new_tokens": new,
          "seconds": round(dt, 2), "generated_tokens_per_s": round(gen / dt),
          "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)})
    del model
    torch.cuda.empty_cache()


def bench_ceilings():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    ts = []
    for _ in range(10):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        a @ b
        e1.record()
        torch.cuda.synchronize()
        ts.append(e0.elapsed_time(e1))
    ts.sort()
    tf = 2 * n**3 / (ts[5] / 1e3) / 1e12
    x = torch.empty(2**30, dtype=torch.float32, device="cuda").uniform_()
    y = torch.empty_like(x)
    for _ in range(2):
        y.copy_(x)
    torch.cuda.synchronize()
    cs = []
    for _ in range(10):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        y.copy_(x)
        e1.record()
        torch.cuda.synchronize()
        cs.append(e0.elapsed_time(e1))
    cs.sort()
    emit({"bench": "pytorch-ceilings", "gemm_bf16_8192_tflops": round(tf, 1),
          "copy_tb_per_s_rw": round(2 * x.numel() * 4 / (cs[5] / 1e3) / 1e12, 2),
          "torch": torch.__version__, "device": torch.cuda.get_device_name()})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--generate", action="store_true")
    ap.add_argument("--ceilings", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seqs", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=1024)
    a = ap.parse_args()
    if a.ceilings:
        bench_ceilings()
    if a.train:
        bench_train(False, a.steps, a.seqs, a.seq_len)
    if a.compile:
        bench_train(True, a.steps, a.seqs, a.seq_len)
    if a.generate:
        bench_generate(256, 128, 256)


if __name__ == "__main__":
    main()
