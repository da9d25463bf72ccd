#!/usr/bin/env python3
"""Write a tiny random Hugging Face model folder (config.json +
model.safetensors, or shards + index) with the names and layout
transformers uses, for the slime-model shell tests. Standard library only
(no torch, no numpy), so it runs anywhere python3 does.

usage: make_random_model.py DIR [--family qwen3|qwen2|llama] [--vocab N]
                            [--hidden H] [--layers L] [--dtype F32|BF16]
                            [--shard-bytes B] [--seed S]
Prints the parameter count on stdout.
"""
import argparse, json, os, random, struct
from array import array


def bf16_bytes(vals):
    out = bytearray()
    raw = array("f", vals)
    u = array("I")
    u.frombytes(raw.tobytes())
    for x in u:
        x = (x + 0x7FFF + ((x >> 16) & 1)) & 0xFFFFFFFF
        out += struct.pack("<H", x >> 16)
    return bytes(out)


def write_st(path, tensors, dtype):
    names = sorted(tensors)
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for n in names:
        shape, vals = tensors[n]
        b = array("f", vals).tobytes() if dtype == "F32" else bf16_bytes(vals)
        header[n] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--family", default="qwen3", choices=["qwen3", "qwen2", "llama"])
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dtype", default="F32", choices=["F32", "BF16"])
    ap.add_argument("--shard-bytes", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    H, L, V = a.hidden, a.layers, a.vocab
    nh, nkv = 4, 2
    hd = H // nh
    inter = 2 * H
    tie = a.family != "llama"
    cfg = {
        "architectures": {"qwen3": ["Qwen3ForCausalLM"], "qwen2": ["Qwen2ForCausalLM"],
                          "llama": ["LlamaForCausalLM"]}[a.family],
        "model_type": a.family,
        "hidden_size": H, "intermediate_size": inter, "num_hidden_layers": L,
        "num_attention_heads": nh, "num_key_value_heads": nkv, "head_dim": hd,
        "vocab_size": V, "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0, "tie_word_embeddings": tie, "hidden_act": "silu",
        "torch_dtype": "float32" if a.dtype == "F32" else "bfloat16",
        "bos_token_id": 0, "eos_token_id": 1,
    }
    if a.family == "qwen2":
        cfg["attention_bias"] = True
    if a.family == "llama":
        cfg["rope_theta"] = 500000.0
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    t = {}

    def rnd(*shape, scale=0.08):
        n = 1
        for d in shape:
            n *= d
        t_vals = [rng.gauss(0.0, scale) for _ in range(n)]
        return (shape, t_vals)

    def ones(n):
        return ((n,), [1.0 + rng.gauss(0.0, 0.02) for _ in range(n)])

    t["model.embed_tokens.weight"] = rnd(V, H, scale=0.5)
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = rnd(nh * hd, H)
        t[p + "self_attn.k_proj.weight"] = rnd(nkv * hd, H)
        t[p + "self_attn.v_proj.weight"] = rnd(nkv * hd, H)
        t[p + "self_attn.o_proj.weight"] = rnd(H, nh * hd)
        if a.family == "qwen2":
            t[p + "self_attn.q_proj.bias"] = rnd(nh * hd)
            t[p + "self_attn.k_proj.bias"] = rnd(nkv * hd)
            t[p + "self_attn.v_proj.bias"] = rnd(nkv * hd)
        if a.family == "qwen3":
            t[p + "self_attn.q_norm.weight"] = ones(hd)
            t[p + "self_attn.k_norm.weight"] = ones(hd)
        t[p + "mlp.gate_proj.weight"] = rnd(inter, H)
        t[p + "mlp.up_proj.weight"] = rnd(inter, H)
        t[p + "mlp.down_proj.weight"] = rnd(H, inter)
        t[p + "input_layernorm.weight"] = ones(H)
        t[p + "post_attention_layernorm.weight"] = ones(H)
    t["model.norm.weight"] = ones(H)
    if not tie:
        t["lm_head.weight"] = rnd(V, H)

    os.makedirs(a.dir, exist_ok=True)
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    esz = 4 if a.dtype == "F32" else 2
    total = sum(len(v[1]) * esz for v in t.values())
    if a.shard_bytes and total > a.shard_bytes:
        shards, cur, size = [[]], 0, 0
        for n in sorted(t):
            b = len(t[n][1]) * esz
            if shards[-1] and size + b > a.shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append(n)
            size += b
        wm = {}
        for i, names in enumerate(shards):
            fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            write_st(os.path.join(a.dir, fn), {n: t[n] for n in names}, a.dtype)
            for n in names:
                wm[n] = fn
        with open(os.path.join(a.dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2,
                      sort_keys=True)
    else:
        write_st(os.path.join(a.dir, "model.safetensors"), t, a.dtype)
    print(sum(len(v[1]) for v in t.values()))


if __name__ == "__main__":
    main()
