#!/usr/bin/env python3
"""make_corpus.py — regenerate the seed corpora in tests/fuzz/corpus/.

What it is: the one script that writes every seed file from valid inputs of
the repository (tests/topology/good, tests/fixtures, the PING example of
mailbox/PROTOCOL.md) and, for tokenizers, from cut-down copies of the
shared real tokenizers (first 400 vocabulary entries, the merges among
them, their normalizer / pre-tokenizer / decoder chains unchanged).
What it is not: run by make; the corpora are committed (each < 50 KB).
Run from anywhere:  python3 tests/fuzz/make_corpus.py [SHARED_DIR]
"""
import ctypes
import json
import os
import struct
import sys
import zlib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


# ---------------------------------------------------------------- topology
for n in ("full", "layout", "minimal"):
    put("topology", n + ".conf", read("tests/topology/good/%s.conf" % n))
put("topology", "default.conf", read("conf/topology.conf"))
put("topology", "sets.conf", read("tests/topology/good/minimal.conf") +
    b"%%set\nactor.echo.count=3\nrollout.rollout_temperature=0.7\nactor.extra.kind=echo\nsupervisor.intensity=5\n")


# ---------------------------------------------------------------- frame
def frame(typ, flags, seq, corr, sender, payload):
    h = struct.pack("<IHHIIQQ", 0x424D4C53, 1, typ, flags, len(payload), seq, corr)
    h += sender.encode().ljust(40, b"\0")
    h += struct.pack("<I", zlib.crc32(payload) if payload else 0)
    h += struct.pack("<I", zlib.crc32(h))
    assert len(h) == 80
    return h + payload


ping = bytes.fromhex(
    "534c4d420100010000000000080000000100000000000000010000000000008073757065"
    "727669736f72000000000000000000000000000000000000000000000000000000000000"
    "f7a1940d646f19a82a00000000000000")
assert frame(1, 0, 1, 0x8000000000000001, "supervisor", struct.pack("<Q", 42)) == ping
put("frame", "ping", b"\0" + ping)             # mode 0: checksums as sent
put("frame", "ping_fixcrc", b"\1" + ping)      # mode 1: checksums recomputed
put("frame", "pong", b"\0" + frame(2, 1, 7, 0x8000000000000001, "py_actor", struct.pack("<Q", 42)))
put("frame", "empty", b"\0" + frame(1, 0, 0, 0, "a", b""))
put("frame", "error", b"\0" + frame(4, 1, 3, 9, "echo.0", struct.pack("<I", 3) + b"bad frame"))

# ---------------------------------------------------------------- shm descriptors
def desc(arena, pid, cfd, dfd, slot, off, length, gen, csum, last_odd):
    b = struct.pack("<IHHQIIIIQQQQ", 0x44534C53, 1, 0, arena, pid, cfd, dfd, slot, off, length, gen, csum)
    assert len(b) == 64
    return b


put("shm_desc", "slot0", desc(0x1234567890ABCDEF, 4242, 5, 6, 0, 0, 4096, 1, 0xDEADBEEF, 0))
put("shm_desc", "slot3", desc(7, 1, 3, 4, 3, 128, 65536, 99, 0x0123456789ABCDEF, 1))

# ---------------------------------------------------------------- safetensors
def st(tensors, extra_meta=True):
    """tensors: list of (name, dtype, shape, bytes)."""
    hdr, body = {}, b""
    if extra_meta:
        hdr["__metadata__"] = {"format": "pt"}
    for name, dt, shape, data in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + body


put("safetensors", "f32", st([("w", "F32", [2, 3], struct.pack("<6f", *range(6))),
                             ("b", "F32", [3], struct.pack("<3f", 1, 2, 3))]))
put("safetensors", "bf16_f16", st([("a.weight", "BF16", [2, 2], b"\x80\x3f" * 4),
                                   ("c", "F16", [4], b"\x00\x3c" * 4),
                                   ("s", "F32", [], struct.pack("<f", 0.5))], extra_meta=False))
put("safetensors", "empty_tensor", st([("z", "F32", [0, 4], b""), ("x", "F32", [1], b"\0\0\0\0")]))
put("safetensors", "index.json", json.dumps({"metadata": {"total_size": 10},
                                             "weight_map": {"x": "a.safetensors", "y": "a.safetensors"}}))
# a real header: the first tensors of the llama fixture, data cut to fit
with open(os.path.join(ROOT, "tests/fixtures/model/llama/model.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    real = json.loads(f.read(n))
keep = []
for name in sorted(k for k in real if k != "__metadata__"):
    t = real[name]
    numel = 1
    for s in t["shape"]:
        numel *= s
    if numel <= 256:
        size = numel * {"F32": 4, "BF16": 2, "F16": 2}[t["dtype"]]
        keep.append((name, t["dtype"], t["shape"], bytes(size)))
    if len(keep) == 6:
        break
put("safetensors", "llama_small", st(keep))

# ---------------------------------------------------------------- tokenizer
TINY = ('{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4,'
        ' "cc": 5, "\\u0120": 6, "\\u0120a": 7}, "merges": ["a b", ["ab", "c"], "c c", "\\u0120 a"]},'
        ' "added_tokens": [{"id": 8, "content": "<x>", "special": true, "normalized": false},'
        '  {"id": 9, "content": "<xy>", "special": false, "normalized": false}],'
        ' "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},'
        ' "decoder": {"type": "ByteLevel"}}')
put("tokenizer", "tiny.json", TINY)


def shrink(name, keep=400, n_added=4):
    path = os.path.join(SHARED, "data", "tokenizers", name, "tokenizer.json")
    if not os.path.exists(path):
        print("skip %s (no %s)" % (name, path))
        return
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    m = d["model"]
    items = sorted(m["vocab"].items(), key=lambda kv: kv[1])[:keep]
    vocab = {tok: i for i, (tok, _) in enumerate(items)}
    merges = []
    for mg in m["merges"]:
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(mg)
    m["vocab"], m["merges"] = vocab, merges
    added = []
    for t in d.get("added_tokens", []):
        if t["content"] in vocab:
            t["id"] = vocab[t["content"]]
            added.append(t)
        elif len(added) < n_added:
            t["id"] = len(vocab) + len(added)
            added.append(t)
    d["added_tokens"] = added
    d["post_processor"] = None
    put("tokenizer", name + "_small.json", json.dumps(d, ensure_ascii=False, separators=(",", ":")))


for n in ("qwen3", "llama3", "llama2"):
    shrink(n)

# ---------------------------------------------------------------- config.json
for n in ("llama", "qwen2", "qwen3"):
    put("hfconfig", n + ".json", read("tests/fixtures/model/%s/config.json" % n))

# ---------------------------------------------------------------- dataset (byte 0: options)
put("dataset", "prompts", b"\x00" + read("tests/fixtures/data/prompts.jsonl"))
put("dataset", "messages_chat", b"\x02" + read("tests/fixtures/data/messages.jsonl"))
put("dataset", "messages_llama3_tok", b"\x4a" + read("tests/fixtures/data/messages.jsonl"))
put("dataset", "mixed_bad_skip", b"\x01" + read("tests/fixtures/data/mixed_bad.jsonl"))
put("dataset", "gsm8k_tok_limit", b"\x98" + read("tests/fixtures/data/gsm8k_tiny.jsonl"))
put("dataset", "gsm8k_shuffle", b"\xa0" + read("tests/fixtures/data/gsm8k_tiny.jsonl"))

# ---------------------------------------------------------------- sample batch (byte 0: mode)
xxh = ctypes.CDLL("libxxhash.so.0")
xxh.XXH3_64bits.restype = ctypes.c_uint64
xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def pad8(b):
    return b + b"\0" * ((8 - len(b) % 8) % 8)


def batch(samples, flags, vocab, version=3, step=2):
    """samples: list of (tokens, prompt_len, reward, sample_id, label, metadata)."""
    n = len(samples)
    T = sum(len(s[0]) for s in samples)
    offs, o = [0], 0
    for s in samples:
        o += len(s[0])
        offs.append(o)
    meta, moff = b"", [0]
    for s in samples:
        for txt in (s[4], s[5]):
            if txt is not None:
                meta += txt.encode() + b"\0"
            moff.append(len(meta))
    arrays = [struct.pack("<%dQ" % (n + 1), *offs),
              struct.pack("<%dQ" % n, *[s[3] for s in samples]),
              struct.pack("<%dQ" % n, *[s[3] & ~0xFFF for s in samples]),
              struct.pack("<%dQ" % n, *[version] * n),
              struct.pack("<%dQ" % (2 * n + 1), *moff),
              struct.pack("<%di" % T, *[t for s in samples for t in s[0]])]
    if flags & 1:
        arrays.append(struct.pack("<%df" % T, *[-0.5] * T))
    if flags & 2:
        arrays.append(struct.pack("<%df" % T, *[0.25] * T))
    arrays += [struct.pack("<%dI" % n, *[s[1] for s in samples]),
               struct.pack("<%df" % n, *[s[2] for s in samples]),
               struct.pack("<%dI" % n, *[0] * n),
               bytes(1 if k >= s[1] else 0 for s in samples for k in range(len(s[0]))),
               meta]
    body = b"".join(pad8(a) for a in arrays)
    total = 128 + len(body)
    hdr = struct.pack("<IHHIIQQQQQQI", 0x42534C53, 1, 128, flags, n, T, len(meta), total, version, step, 0, vocab)
    hdr = hdr.ljust(128, b"\0")
    whole = hdr + body
    csum = xxh.XXH3_64bits(whole, len(whole))
    off = struct.calcsize("<IHHIIQQQQQ")
    return whole[:off] + struct.pack("<Q", csum) + whole[off + 8:]


def sid(epoch, index, sub):
    return (epoch << 44) | (index << 12) | sub


two = [([5, 6, 7, 8], 2, 1.0, sid(0, 1, 0), "4", '{"source":"toy"}'),
       ([5, 6, 9], 1, 0.0, sid(0, 1, 1), "4", None)]
put("sample_batch", "two_checked", b"\x01" + batch(two, 3, 1000))
put("sample_batch", "two_skip", b"\x00" + batch(two, 3, 1000))
put("sample_batch", "plain_hdr_vocab", b"\x02" + batch(two, 0, 50))
put("sample_batch", "one_logprobs", b"\x00" + batch([([1, 2], 1, 0.5, sid(1, 7, 3), None, None)], 1, 1000))
print("corpora written to", OUT)
