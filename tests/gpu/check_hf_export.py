#!/usr/bin/env python3
"""check_hf_export.py — a folder we saved (a checkpoint, RUN_DIR/checkpoints/
step_NNNNNN, or any Hugging Face folder our loader reads) loads in
transformers as it is, and transformers' logits match ours.

    python3 tests/gpu/check_hf_export.py --slime-build build --model DIR
    python3 tests/gpu/check_hf_export.py --model DIR --dump-ours OURS.jsonl --slime-build build
    python3 tests/gpu/check_hf_export.py --model DIR --ours OURS.jsonl

What it does:
  1. checks the folder has config.json, model.safetensors (or
     model.safetensors.index.json and every shard it names), tokenizer.json
     and tokenizer_config.json;
  2. AutoTokenizer.from_pretrained(DIR) and
     AutoModelForCausalLM.from_pretrained(DIR, torch_dtype=float32) load it;
  3. a few texts (arithmetic prompts, plain text, the chat template when the
     tokenizer has one) are tokenized by transformers; our tokenizer
     (`slime-model tokenize`) must give the same ids;
  4. our logits for those ids (`slime-model score DIR --logits`, every
     position, fp32 on the CPU) are compared with transformers' (fp32, CPU
     by default; TF32 off on a GPU): max abs diff, and max abs diff relative
     to the largest |logit|, printed per text. Pass: relative diff <= --tol
     (default 1e-4) for every text, and the same argmax at >= 99% of the
     positions.

--dump-ours writes our ids and logits to a JSON-lines file (then exits) and
--ours reads them back, for a machine where our binaries cannot run: dump
here, check there with only the folder and the file.

Exit: 0 pass, 1 mismatch or a load failure, 2 usage, 77 transformers (or
torch) not installed.
"""
import argparse
import json
import math
import os
import subprocess
import sys

TEXTS = [
    "12+34=46",
    "What is 7-5? Answer: 2",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?",
]


def fail(msg):
    print("FAIL:", msg)
    return 1


def check_files(d):
    missing = [f for f in ("config.json", "tokenizer.json", "tokenizer_config.json")
               if not os.path.isfile(os.path.join(d, f))]
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.isfile(idx):
        with open(idx) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        missing += [s for s in shards if not os.path.isfile(os.path.join(d, s))]
    elif not os.path.isfile(os.path.join(d, "model.safetensors")):
        missing.append("model.safetensors")
    present = sorted(f for f in os.listdir(d) if f.endswith((".json", ".txt", ".jinja", ".model")))
    return missing, present


def slime(build, args, lines):
    exe = os.path.join(build, "slime-model")
    if not os.access(exe, os.X_OK):
        raise RuntimeError(f"{exe} is not an executable (build it, or use --ours)")
    inp = "".join(json.dumps(x) + "\n" for x in lines)
    r = subprocess.run([exe] + args, input=inp, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"slime-model {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def texts_for(tok):
    out = list(TEXTS)
    if getattr(tok, "chat_template", None):
        try:
            out.append(tok.apply_chat_template([{"role": "user", "content": "3+4="}],
                                               tokenize=False, add_generation_prompt=True) + "7")
        except Exception as e:  # a template transformers cannot render: say so, go on
            print(f"note: chat template not rendered by transformers: {e}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the saved Hugging Face folder")
    ap.add_argument("--slime-build", default="build", help="our build folder (slime-model)")
    ap.add_argument("--ours", help="read our ids/logits from this file instead of running slime-model")
    ap.add_argument("--dump-ours", help="write our ids/logits for the texts to this file and exit")
    ap.add_argument("--tol", type=float, default=1e-4, help="max |diff| / max |logit| (default 1e-4)")
    ap.add_argument("--device", default="cpu", help="torch device for transformers (default cpu)")
    a = ap.parse_args()
    d = a.model
    if not os.path.isdir(d):
        print(f"{d}: not a folder", file=sys.stderr)
        return 2
    missing, present = check_files(d)
    print(f"folder {d}: {', '.join(present)}")
    if missing:
        return fail(f"{d} lacks {', '.join(missing)}")

    if a.dump_ours:
        # our tokenizer for the texts (no transformers needed here)
        ids = [r["ids"] for r in slime(a.slime_build, ["tokenize", d], [{"text": t} for t in TEXTS])]
        sc = slime(a.slime_build, ["score", d, "--logits"], [{"ids": i} for i in ids])
        with open(a.dump_ours, "w") as f:
            for t, i, s in zip(TEXTS, ids, sc):
                f.write(json.dumps({"text": t, "ids": i, "logits": s["logits"]}) + "\n")
        print(f"wrote our logits for {len(ids)} texts to {a.dump_ours}")
        return 0

    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        print(f"transformers/torch not installed ({e}): skipped")
        return 77
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
    except Exception as e:
        return fail(f"transformers cannot load {d}: {type(e).__name__}: {e}")
    model.to(a.device).eval()
    print(f"transformers loaded {type(model).__name__} and {type(tok).__name__}")

    if a.ours:
        with open(a.ours) as f:
            cases = [json.loads(l) for l in f if l.strip()]
        ours = [(c["text"], c["ids"], c["logits"]) for c in cases]
        for text, ids, _ in ours:
            hf_ids = tok(text, add_special_tokens=False)["input_ids"]
            if hf_ids != ids:
                return fail(f"tokenizers differ on {text!r}: transformers {hf_ids[:20]} ours {ids[:20]}")
    else:
        texts = texts_for(tok)
        hf_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        our_ids = [r["ids"] for r in slime(a.slime_build, ["tokenize", d], [{"text": t} for t in texts])]
        for t, h, o in zip(texts, hf_ids, our_ids):
            if h != o:
                return fail(f"tokenizers differ on {t!r}: transformers {h[:20]} ours {o[:20]}")
        print(f"tokenizers agree on {len(texts)} texts")
        sc = slime(a.slime_build, ["score", d, "--logits"], [{"ids": i} for i in hf_ids])
        ours = [(t, i, s["logits"]) for t, i, s in zip(texts, hf_ids, sc)]

    worst = 0.0
    bad = []
    for text, ids, logits in ours:
        with torch.no_grad():
            x = torch.tensor([ids], dtype=torch.long, device=a.device)
            hf = model(input_ids=x).logits[0].float().cpu()
        me = torch.tensor(logits, dtype=torch.float32)
        if tuple(hf.shape) != tuple(me.shape):
            return fail(f"{text!r}: transformers logits {tuple(hf.shape)} vs ours {tuple(me.shape)}")
        diff = (hf - me).abs().max().item()
        scale = max(hf.abs().max().item(), 1e-12)
        rel = diff / scale
        agree = (hf.argmax(-1) == me.argmax(-1)).float().mean().item()
        worst = max(worst, rel)
        ok = rel <= a.tol and agree >= 0.99 and math.isfinite(diff)
        print(f"{'ok  ' if ok else 'FAIL'} {len(ids):4d} tokens  max|diff| {diff:.3e}  "
              f"max|logit| {scale:.3e}  rel {rel:.3e}  argmax agree {agree:.3f}  {text[:40]!r}")
        if not ok:
            bad.append(text)
    print(json.dumps({"model": d, "texts": len(ours), "max_rel_diff": worst, "tol": a.tol,
                      "pass": not bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
