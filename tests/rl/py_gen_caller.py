#!/usr/bin/python3
"""py_gen_caller.py — a Python caller of the generation service
(mailbox/python/slime_mailbox.py: generate, generate_async, abort,
tokenize, detokenize, apply_chat_template), run by helper_gen_service.c
against a live rollout actor:

    SL_RUN_DIR=DIR py_gen_caller.py PROMPT_JSON SEED TEMPERATURE MAX_TOKENS EXPECTED_IDS_JSON

It must get EXPECTED_IDS (what the C caller got for the same request),
alone and while another request shares the batch; tokenize/detokenize
must round-trip; a malformed request raises GenError naming the field;
ABORT ends a long request with finish "abort". Exit 0 when all hold."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "mailbox", "python"))
import slime_mailbox as slm  # noqa: E402


def main():
    prompt, seed, temp, max_tokens = json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    expected = json.loads(sys.argv[5])
    fails = []
    mb = slm.Mailbox(os.environ["SL_RUN_DIR"], "pycaller")
    try:
        r = slm.generate(mb, "rollout", prompt, rid=1, max_tokens=max_tokens, temperature=temp, seed=seed)
        if r["ids"] != expected or len(r["logprobs"]) != len(expected) or r["weight_version"] != 1:
            fails.append("generate: %r != %r" % (r["ids"], expected))
        # the same while a long request shares the batch
        long_corr = slm.generate_async(mb, "rollout", prompt, rid=2, max_tokens=200, ignore_eos=True, seed=3)
        corr = slm.generate_async(mb, "rollout", prompt, rid=3, max_tokens=max_tokens, temperature=temp, seed=seed)
        got = {}
        while len(got) < 1:
            m = mb.recv(10000)
            if m is None:
                break
            if m.corr == corr:
                got["r"] = slm.parse_generated(m)
            elif m.corr == long_corr:
                got["long"] = slm.parse_generated(m)
        if got.get("r", {}).get("ids") != expected:
            fails.append("generate_async beside another request: %r" % (got.get("r"),))
        slm.abort(mb, "rollout", 2)
        while "long" not in got:
            m = mb.recv(10000)
            if m is None:
                break
            if m.corr == long_corr:
                got["long"] = slm.parse_generated(m)
        lr = got.get("long", {})
        if lr.get("finish_reason") not in ("abort", "length") or lr.get("rid") != 2:
            fails.append("abort: %r" % (lr,))
        ids = slm.tokenize(mb, "rollout", "7*8=")
        if slm.detokenize(mb, "rollout", ids) != "7*8=" or len(ids) != 4:
            fails.append("tokenize/detokenize: %r" % (ids,))
        text, cids = slm.apply_chat_template(mb, "rollout", [{"role": "user", "content": "7*8="}])
        if text != "<|im_start|>user\n7*8=<|im_end|>\n<|im_start|>assistant\n" or cids != slm.tokenize(mb, "rollout", text):
            fails.append("apply_chat_template: %r" % (text,))
        try:
            slm.generate(mb, "rollout", prompt, rid=4, top_p=2.0)
            fails.append("top_p 2.0 accepted")
        except slm.GenError as e:
            if not e.text.startswith("top_p:"):
                fails.append("error text %r" % (e.text,))
    finally:
        mb.close()
    for f in fails:
        print("py_gen_caller: FAIL " + f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
