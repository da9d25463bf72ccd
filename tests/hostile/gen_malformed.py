#!/usr/bin/env python3
"""gen_malformed.py — write the malformed inputs of test_malformed_inputs.sh.

What it is: a deterministic generator (no randomness beyond a fixed seed)
of broken files and values for every program entry point, each one
certainly invalid: truncated, bit-flipped at a place that matters,
wrong types, huge numbers, empty files. It writes into OUT:
  topo/NAME.conf          topologies for `slime-supervisor FILE --check`
  sets.txt                one bad `--set` value per line (applied to a good topology)
  cfg/NAME/               model folders with a bad config.json (for `score`)
  cfgjson/NAME/           folders whose config.json is not JSON (for `info`)
  st/NAME/                folders with a good config.json, bad model.safetensors
  tok/NAME.json           bad tokenizer.json files (for `tokenize FILE`)
  tok/tiny.json           a valid tiny tokenizer (for the stdin cases)
  score_lines/NAME.jsonl  bad stdin for `score` on the fixture model
  tok_lines/NAME.jsonl    bad stdin for `tokenize tiny.json`
  dec_lines/NAME.jsonl    bad stdin for `tokenize tiny.json --decode`
What it is not: a fuzzer (tests/fuzz/ has those).
Usage: gen_malformed.py ROOT OUT
"""
import json
import os
import random
import struct
import sys

ROOT, OUT = sys.argv[1], sys.argv[2]
rng = random.Random(7)


def write(rel, data):
    p = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


# ---------------------------------------------------------------- topologies
good = read("tests/topology/good/minimal.conf").decode()
write("topo/good.conf", good)
topo = {
    "empty": "",
    "only_comment": "# nothing\n",
    "binary_garbage": bytes(rng.randrange(256) for _ in range(512)),
    "nul_in_value": good.replace("kind = echo", "kind = ec\0ho", 1) if "kind = echo" in good else good + "[actor z]\nkind = ec\0ho\n",
    "long_line": good + "[run]\nname = " + "x" * 5000 + "\n",
    "huge_count": good + "[actor big]\nkind = echo\ncount = 99999999999999999999\n",
    "negative_count": good + "[actor neg]\nkind = echo\ncount = -3\n",
    "count_hex": good + "[actor hx]\nkind = echo\ncount = 0x10\n",
    "int_trailing_junk": "[supervisor]\nintensity = 3abc\n" + good,
    "double_nan": "[rollout]\nrollout_temperature = nan\n" + good,
    "double_inf": "[rollout]\nrollout_temperature = inf\n" + good,
    "double_huge": "[rollout]\nrollout_temperature = 1e999\n" + good,
    "int_overflow": "[rollout]\nrollout_batch_size = 9223372036854775808\n" + good,
    "bool_word": "[data]\nrollout_shuffle = maybe\n" + good,
    "section_unclosed": good + "[actor x\nkind = echo\n",
    "empty_section": good + "[]\n",
    "actor_name_too_long": good + "[actor " + "a" * 40 + "]\nkind = echo\n",
    "actor_name_bad_chars": good + "[actor a/b]\nkind = echo\n",
    "truncated_header": good + "[act",
    "bad_utf8_kind": good + "[actor u]\nkind = \xff\xfe\n".encode("latin-1").decode("latin-1"),
}
for k, v in topo.items():
    write("topo/%s.conf" % k, v.encode("latin-1") if isinstance(v, str) else v)
# a file over the 1 MiB limit (comments only, then a valid topology)
write("topo/too_big.conf", ("#" * 1023 + "\n") * 1100 + good)
# the good topology cut in the middle of its last line (a value cut short)
g = good.rstrip("\n")
write("topo/cut_mid_value.conf", g[:-1] + "\n" if not g.endswith("=") else g)

sets = [
    "rollout.rollout_batch_size=abc", "rollout.rollout_batch_size=-1", "rollout.rollout_batch_size=0",
    "rollout.rollout_batch_size=99999999999999999999", "rollout.rollout_temperature=1e999",
    "rollout.rollout_temperature=-0.5", "rollout.rollout_temperature=nan", "supervisor.strategy=bogus",
    "supervisor.intensity=", "run.name=", "run.name=a b/c", "nosuchsection.key=1", "rollout.no_such_key=1",
    "rollout.rollout_batch_size", "=1", ".=1", "rollout.=1", "actor.=1", "actor.echo=1", "actor.echo.count=0",
    "actor.echo.count=100000", "actor.echo.kind=nope", "actor.new.count=2", "data.rollout_shuffle=yesno",
    "actor.echo.device=cuda:x", "actor.echo.restart=sometimes", "actor.echo.shutdown_ms=-5",
    "supervisor.heartbeat_ms=1.5", "algorithm.advantage_estimator=nope", "actor.bad/name.kind=echo",
]
write("sets.txt", "\n".join(sets) + "\n")

# ---------------------------------------------------------------- config.json (score)
cfg_text = read("tests/fixtures/model/qwen3/config.json").decode()
cfg = json.loads(cfg_text)


def cfg_case(name, obj_or_text):
    text = obj_or_text if isinstance(obj_or_text, (str, bytes)) else json.dumps(obj_or_text)
    write("cfg/%s/config.json" % name, text)


cfg_case("empty", "")
for i, cut in enumerate((1, 10, len(cfg_text) // 2, len(cfg_text) - 3)):
    cfg_case("truncated_%d" % i, cfg_text[:cut])
cfg_case("array", "[1, 2, 3]")
cfg_case("null", "null")
cfg_case("string", '"config"')
cfg_case("nul_byte", cfg_text.replace('"qwen3"', '"qw\\u0000en3"', 1))
cfg_case("invalid_utf8", cfg_text.encode().replace(b'"qwen3"', b'"qwen\xff3"', 1))
cfg_case("duplicate_key", cfg_text.replace('"vocab_size": 256', '"vocab_size": 256, "vocab_size": 512', 1))
for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size"):
    for tag, val in (("string", "64"), ("null", None), ("float", 1.5), ("negative", -64), ("zero", 0),
                     ("huge", 2 ** 62), ("list", [64])):
        d = dict(cfg)
        d[key] = val
        cfg_case("%s_%s" % (key, tag), d)
    d = dict(cfg)
    del d[key]
    cfg_case("%s_missing" % key, d)
for tag, val in (("string", "1e-6"), ("negative", -1.0), ("zero", 0)):
    d = dict(cfg)
    d["rms_norm_eps"] = val
    cfg_case("rms_norm_eps_%s" % tag, d)
for tag, patch in (("heads_not_dividing", {"num_key_value_heads": 3}),
                   ("odd_head_dim", {"head_dim": 33}),
                   ("model_type_unknown", {"model_type": "gpt_neox"}),
                   ("model_type_number", {"model_type": 3}),
                   ("rope_type_unknown", {"rope_parameters": {"rope_theta": 1e6, "rope_type": "nope"}}),
                   ("rope_theta_negative", {"rope_parameters": {"rope_theta": -1.0, "rope_type": "default"}}),
                   ("rope_not_object", {"rope_parameters": "default"}),
                   ("max_pos_zero", {"max_position_embeddings": 0}),
                   ("max_pos_huge", {"max_position_embeddings": 2 ** 40}),
                   ("tie_not_bool", {"tie_word_embeddings": "no"}),
                   ("sliding_window_on", {"use_sliding_window": True, "sliding_window": 128}),
                   ("eos_list_of_strings", {"eos_token_id": ["</s>"]})):
    d = dict(cfg)
    d.update(patch)
    cfg_case(tag, d)
# info: config.json that is not JSON at all
for name, text in (("empty", ""), ("truncated", cfg_text[: len(cfg_text) // 3]), ("array", "[]"),
                   ("garbage", bytes(rng.randrange(256) for _ in range(200)))):
    write("cfgjson/%s/config.json" % name, text)

# ---------------------------------------------------------------- safetensors (info)
st_bytes = read("tests/fixtures/model/qwen3/model.safetensors")
hlen = struct.unpack("<Q", st_bytes[:8])[0]
hdr = json.loads(st_bytes[8:8 + hlen])
body = st_bytes[8 + hlen:]


def st_case(name, data):
    write("st/%s/config.json" % name, cfg_text)
    write("st/%s/model.safetensors" % name, data)


def st_with(h, b=body, pad=True):
    t = json.dumps(h).encode()
    if pad:
        t += b" " * ((8 - len(t) % 8) % 8)
    return struct.pack("<Q", len(t)) + t + b


names = sorted(k for k in hdr if k != "__metadata__")
first = names[0]
st_case("empty", b"")
st_case("four_bytes", st_bytes[:4])
st_case("length_only", st_bytes[:8])
st_case("cut_in_header", st_bytes[: 8 + hlen // 2])
st_case("cut_in_data", st_bytes[: 8 + hlen + len(body) // 2])
st_case("cut_last_byte", st_bytes[:-1])
st_case("header_len_huge", struct.pack("<Q", 2 ** 63) + st_bytes[8:])
st_case("header_len_past_end", struct.pack("<Q", len(st_bytes)) + st_bytes[8:])
st_case("header_len_zero", struct.pack("<Q", 0) + st_bytes[8:])
st_case("header_not_json", struct.pack("<Q", 16) + b"this is not json" + body)
st_case("header_array", st_with([1, 2, 3]))
st_case("header_flip_brace", st_bytes[:8] + b"[" + st_bytes[9:])
for tag, patch in (("dtype_f64", {"dtype": "F64"}), ("dtype_unknown", {"dtype": "Q4"}),
                   ("dtype_number", {"dtype": 7}), ("shape_negative", {"shape": [-1, 4]}),
                   ("shape_string", {"shape": "4x4"}), ("shape_too_big", {"shape": [2 ** 40, 2 ** 40]}),
                   ("rank_9", {"shape": [1] * 9}), ("offsets_reversed", {"data_offsets": [8, 0]}),
                   ("offsets_past_end", {"data_offsets": [0, len(body) + 8]}),
                   ("offsets_missing", {"data_offsets": None}), ("offsets_float", {"data_offsets": [0.5, 8]}),
                   ("offsets_huge", {"data_offsets": [2 ** 63, 2 ** 64 - 1]})):
    h = json.loads(json.dumps(hdr))
    for k, v in patch.items():
        if v is None:
            del h[first][k]
        else:
            h[first][k] = v
    st_case(tag, st_with(h))
h = json.loads(json.dumps(hdr))
h[names[1]]["data_offsets"] = list(h[names[0]]["data_offsets"])
st_case("offsets_overlap", st_with(h))
h = json.loads(json.dumps(hdr))
h[first]["shape"] = [s + 1 for s in h[first]["shape"]]
st_case("shape_vs_offsets", st_with(h))
h = json.loads(json.dumps(hdr))
h["__metadata__"] = {"format": 5}
st_case("metadata_not_strings", st_with(h))

# ---------------------------------------------------------------- tokenizer.json (tokenize FILE)
TINY = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "cc": 5,
                                           "\u0120": 6, "\u0120a": 7},
                  "merges": ["a b", ["ab", "c"], "c c", "\u0120 a"]},
        "added_tokens": [{"id": 8, "content": "<x>", "special": True, "normalized": False}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "decoder": {"type": "ByteLevel"}}
tiny_text = json.dumps(TINY)
write("tok/tiny.json", tiny_text)


def tok_case(name, obj_or_text):
    write("tok/bad_%s.json" % name, obj_or_text if isinstance(obj_or_text, (str, bytes)) else json.dumps(obj_or_text))


def tiny_with(**patch):
    d = json.loads(tiny_text)
    for path, v in patch.items():
        cur = d
        keys = path.split("__")
        for k in keys[:-1]:
            cur = cur[k]
        cur[keys[-1]] = v
    return d


tok_case("empty", "")
tok_case("truncated_half", tiny_text[: len(tiny_text) // 2])
tok_case("truncated_end", tiny_text[:-1])
tok_case("array", "[1, 2]")
tok_case("no_model", "{}")
tok_case("invalid_utf8", tiny_text.encode().replace(b'"ab"', b'"a\xffb"', 1))
tok_case("model_wordpiece", tiny_with(model__type="WordPiece"))
tok_case("model_number", tiny_with(model=5))
tok_case("vocab_list", tiny_with(model__vocab=[]))
tok_case("vocab_negative", tiny_with(model__vocab={"a": -1}))
tok_case("vocab_huge", tiny_with(model__vocab={"a": 99999999999}))
tok_case("vocab_string_id", tiny_with(model__vocab={"a": "0"}))
tok_case("vocab_duplicate_id", tiny_with(model__vocab={"a": 0, "b": 0}))
tok_case("merge_unknown", tiny_with(model__merges=["a z"]))
tok_case("merge_result_missing", tiny_with(model__merges=["b c"]))
tok_case("merge_no_space", tiny_with(model__merges=["ab"]))
tok_case("merge_one_element", tiny_with(model__merges=[["a"]]))
tok_case("merges_object", tiny_with(model__merges={}))
tok_case("unk_missing", tiny_with(model__unk_token="<unk>"))
tok_case("dropout", tiny_with(model__dropout=0.1))
tok_case("normalizer_bert", tiny_with(normalizer={"type": "BertNormalizer"}))
tok_case("pretok_whitespace", tiny_with(pre_tokenizer={"type": "Whitespace"}))
tok_case("bad_regex", tiny_with(pre_tokenizer={"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}))
tok_case("decoder_wordpiece", tiny_with(decoder={"type": "WordPiece"}))
tok_case("added_dup_id", tiny_with(added_tokens=[{"id": 9, "content": "<x>"}, {"id": 9, "content": "<y>"}]))
tok_case("added_huge_id", tiny_with(added_tokens=[{"id": 16777216, "content": "<x>"}]))
tok_case("added_not_list", tiny_with(added_tokens={"id": 9}))
tok_case("added_no_content", tiny_with(added_tokens=[{"id": 9}]))

# ---------------------------------------------------------------- stdin lines
bad_common = {
    "not_json": "this is not json\n",
    "truncated": '{"ids": [1, 2\n',
    "array": "[1, 2, 3]\n",
    "number": "42\n",
    "null": "null\n",
    "invalid_utf8": b'{"text": "\xff\xfe"}\n',
    "duplicate_key": '{"ids": [1, 2], "ids": [3, 4]}\n',
    "good_then_bad": '{"ids": [1, 2]}\n{"ids": [1,\n',
    "nul_in_line": b'{"ids": [1,\x00 2]}\n',
}
for k, v in bad_common.items():
    write("score_lines/%s.jsonl" % k, v)
    write("tok_lines/%s.jsonl" % k, v)
    write("dec_lines/%s.jsonl" % k, v)
for k, v in {"no_ids": '{"text": "abc"}\n', "ids_string": '{"ids": "1 2"}\n',
             "ids_negative": '{"ids": [1, -2]}\n', "ids_float": '{"ids": [1.5, 2]}\n',
             "ids_huge": '{"ids": [1, 99999999999999999999]}\n', "ids_out_of_vocab": '{"ids": [1, 256]}\n',
             "ids_int32_max": '{"ids": [1, 2147483647]}\n', "ids_nested": '{"ids": [[1, 2]]}\n',
             "ids_too_many": '{"ids": [%s]}\n' % ", ".join(["1"] * 600)}.items():
    write("score_lines/%s.jsonl" % k, v)
for k, v in {"text_number": '{"text": 5}\n', "text_null": '{"text": null}\n', "text_list": '{"text": ["a"]}\n',
             "neither": '{"other": "a"}\n'}.items():
    write("tok_lines/%s.jsonl" % k, v)
for k, v in {"ids_out_of_vocab": '{"ids": [0, 10]}\n', "ids_negative": '{"ids": [-1]}\n',
             "ids_huge": '{"ids": [4294967296]}\n', "ids_string": '{"ids": ["a"]}\n',
             "text_not_ids": '{"text": "ab"}\n'}.items():
    write("dec_lines/%s.jsonl" % k, v)
