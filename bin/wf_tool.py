#!/usr/bin/python3
"""The example multi-turn tool workflow in Python: the twin of
bin/slime-wf-tool (actors/wf_tool.h), run as a workflow actor:

    [rollout]
    workflow = tool
    [actor tool]
    kind = exec
    command = /usr/bin/python3 bin/wf_tool.py

It speaks only the mailbox protocol (mailbox/PROTOCOL.md) through
mailbox/python/slime_mailbox.py: PROMPTS from the buffer; GENERATE (all
samples of all groups in flight at once, so the engine batches them),
TOKENIZE and DETOKENIZE to a rollout engine; WF_SAMPLE to the buffer. When
the model closes <calc>EXPR</calc> the expression is evaluated by a small
bounded integer parser (never eval) and <result>VALUE</result> is appended
with loss_mask 0; generation continues in the same session. Each sample's
metrics: tool_call_rate, tool_calls, tool_errors.

Environment: SL_RUN_DIR, SL_ACTOR_NAME (set by the supervisor; exit 2
without them), SL_TOPOLOGY (the engines are its kind = rollout actors;
else WF_ENGINE, default "rollout"). Exits 0 on SIGTERM or STOP.
"""
import configparser
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mailbox", "python"))
import slime_mailbox as slm  # noqa: E402

PROMPTS, WF_SAMPLE, WF_ACK = 0x0110, 0x0130, 0x0131
MAX_CALLS = 4
CALC_MAX_LEN, CALC_MAX_DEPTH, CALC_MAX_ABS = 64, 8, 10 ** 12
RESEND_S = 60.0

# ------------------------------------------------------------ calculator

class CalcError(ValueError):
    pass


def calc(expr):
    """Integers, + - * / (truncating toward zero), unary minus, parentheses."""
    if not expr or len(expr) > CALC_MAX_LEN:
        raise CalcError("empty or too long")
    pos = [0]

    def ws():
        while pos[0] < len(expr) and expr[pos[0]] == " ":
            pos[0] += 1

    def bound(v):
        if abs(v) > CALC_MAX_ABS:
            raise CalcError("value out of range")
        return v

    def factor(depth):
        ws()
        if pos[0] < len(expr) and expr[pos[0]] == "-":
            pos[0] += 1
            return bound(-factor(depth))
        if pos[0] < len(expr) and expr[pos[0]] == "(":
            if depth >= CALC_MAX_DEPTH:
                raise CalcError("too deeply nested")
            pos[0] += 1
            v = add(depth + 1)
            ws()
            if pos[0] >= len(expr) or expr[pos[0]] != ")":
                raise CalcError("missing )")
            pos[0] += 1
            return v
        start = pos[0]
        while pos[0] < len(expr) and expr[pos[0]] in "0123456789":
            pos[0] += 1
        if start == pos[0]:
            raise CalcError("number expected")
        return bound(int(expr[start:pos[0]]))

    def mul(depth):
        v = factor(depth)
        while True:
            ws()
            if pos[0] >= len(expr) or expr[pos[0]] not in "*/":
                return v
            op = expr[pos[0]]
            pos[0] += 1
            r = factor(depth)
            if op == "*":
                v = bound(v * r)
            else:
                if r == 0:
                    raise CalcError("division by zero")
                q = abs(v) // abs(r)
                v = q if (v >= 0) == (r >= 0) else -q

    def add(depth):
        v = mul(depth)
        while True:
            ws()
            if pos[0] >= len(expr) or expr[pos[0]] not in "+-":
                return v
            op = expr[pos[0]]
            pos[0] += 1
            r = mul(depth)
            v = bound(v + r if op == "+" else v - r)

    v = add(0)
    ws()
    if pos[0] != len(expr):
        raise CalcError("unexpected character")
    return v


def find_call(text):
    """The expression of a <calc>...</calc> that ends TEXT, else None."""
    if not text.endswith("</calc>"):
        return None
    i = text.rfind("<calc>", 0, len(text) - len("</calc>"))
    return None if i < 0 else text[i + len("<calc>"):len(text) - len("</calc>")]


# ------------------------------------------------------------ the workflow

def engines_of(topology):
    names = []
    if topology and os.path.exists(topology):
        cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), strict=False, interpolation=None)
        try:
            cp.read(topology)
        except configparser.Error:
            cp = None
        for sec in (cp.sections() if cp else []):
            if sec.startswith("actor ") and cp.get(sec, "kind", fallback="") == "rollout":
                name, count = sec[6:].strip(), int(cp.get(sec, "count", fallback="1"))
                names += [name] if count == 1 else ["%s.%d" % (name, i) for i in range(count)]
    return names or [os.environ.get("WF_ENGINE", "rollout")]


class Sample:
    def __init__(self, group, index, prompt):
        self.g, self.index = group, index
        self.seq = list(prompt)
        self.mask, self.lp = [], []
        self.turn = self.calls = self.errors = self.gen_errors = 0
        self.wv = None
        self.corr = 0
        self.sent = 0.0
        self.done = False


class Workflow:
    def __init__(self, mb, engines):
        self.mb, self.engines = mb, engines
        self.inflight = {}  # corr -> Sample
        self.groups = []
        self.rid = 0
        self.stats = {"groups": 0, "samples": 0, "calls": 0, "refused": 0, "engine_errors": 0}

    def engine_for(self, s):
        return self.engines[((s.g["group"] >> 12) + s.index) % len(self.engines)]

    def send_turn(self, s):
        g = s.g
        budget = g["max_new"] - len(s.mask)
        if budget < 1:
            return self.finish(s)
        self.rid += 1
        session = "wf-%s%d-%x-%d" % ("e" if g["eval"] else "r", g["step"], g["group"], s.index)
        try:
            s.corr = slm.generate_async(
                self.mb, self.engine_for(s), s.seq, rid=self.rid, max_tokens=budget,
                temperature=g["temperature"], top_p=g["top_p"], top_k=max(0, g["top_k"]), stop=["</calc>"],
                seed=(g["seed"] + s.index * 7919 + s.turn * 104729) & 0x7FFFFFFFFFFFFFFF, session=session)
            self.inflight[s.corr] = s
        except ConnectionError as e:
            s.corr = 0
            print("wf_tool.py: GENERATE: %s (asked again later)" % e, file=sys.stderr, flush=True)
        s.sent = time.monotonic()

    def finish(self, s):
        g = s.g
        s.done = True
        g["n_done"] += 1
        self.stats["samples"] += 1
        o = {"step": g["step"], "phase": "eval" if g["eval"] else "rl", "group": g["group"], "index": s.index,
             "sample_id": g["sample_ids"][s.index], "tokens": s.seq, "prompt_len": g["prompt_len"],
             "loss_mask": s.mask, "logprobs": [lp if m else 0.0 for lp, m in zip(s.lp, s.mask)],
             "weight_version": s.wv or 0,
             "metrics": {"tool_call_rate": 1.0 if s.calls else 0.0, "tool_calls": s.calls,
                         "tool_errors": s.errors}}
        try:
            self.mb.send(g["buffer"], WF_SAMPLE, json.dumps(o, separators=(",", ":")).encode(), 0, self.mb.new_corr())
        except ConnectionError as e:
            print("wf_tool.py: WF_SAMPLE: %s" % e, file=sys.stderr, flush=True)
        if g["n_done"] == g["n"]:
            self.groups.remove(g)
            self.stats["groups"] += 1

    def on_prompts(self, msg):
        try:
            p = json.loads(msg.payload.decode())
            n = int(p["n"])
            g = {"buffer": msg.sender, "step": int(p.get("step", 0)), "eval": p.get("phase") == "eval",
                 "group": int(p["group"]), "sample_ids": [int(x) for x in p["sample_ids"]], "n": n,
                 "prompt_len": len(p["prompt"]), "temperature": float(p.get("temperature", 1.0)),
                 "top_p": float(p.get("top_p", 1.0)), "top_k": int(p.get("top_k", -1)),
                 "max_new": int(p.get("max_new_tokens", 256)), "seed": int(p.get("seed", 0)), "n_done": 0}
            if not 1 <= n <= 4096 or len(g["sample_ids"]) != n or not p["prompt"]:
                raise ValueError("bad sizes")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            print("wf_tool.py: bad PROMPTS from %s: %s" % (msg.sender, e), file=sys.stderr, flush=True)
            return
        for x in self.groups:
            if (x["group"], x["step"], x["eval"]) == (g["group"], g["step"], g["eval"]):
                return  # dispatched again while the first copy runs
        self.groups.append(g)
        g["samples"] = [Sample(g, i, p["prompt"]) for i in range(n)]
        for s in g["samples"]:
            self.send_turn(s)

    def on_generated(self, s, msg):
        s.corr = 0
        try:
            r = slm.parse_generated(msg)
        except (slm.GenError, ValueError) as e:
            self.stats["engine_errors"] += 1
            print("wf_tool.py: GENERATE for group %d sample %d: %s" % (s.g["group"], s.index, e),
                  file=sys.stderr, flush=True)
            s.gen_errors += 1
            if s.gen_errors > 3:
                if s.mask:
                    self.finish(s)
                else:  # give the group up: the buffer dispatches it again
                    s.done = True
                    s.g["n_done"] += 1
                    if s.g["n_done"] == s.g["n"]:
                        self.groups.remove(s.g)
            else:
                self.send_turn(s)
            return
        if s.wv is None:
            s.wv = int(r["weight_version"])
        s.turn += 1
        s.seq += r["ids"]
        s.mask += [1] * len(r["ids"])
        s.lp += [min(0.0, float(x)) for x in r["logprobs"]]
        if r["finish_reason"] != "stop" or not s.mask:
            return self.finish(s)
        eng = self.engine_for(s)
        text = slm.detokenize(self.mb, eng, s.seq[s.g["prompt_len"]:], skip_special_tokens=True)
        expr = find_call(text)
        if expr is None:
            return self.finish(s)  # stopped at EOS
        s.calls += 1
        self.stats["calls"] += 1
        try:
            res = "<result>%d</result>" % calc(expr)
        except CalcError:
            s.errors += 1
            res = "<result>error</result>"
        ids = slm.tokenize(self.mb, eng, res)
        if s.calls > MAX_CALLS or len(s.mask) + len(ids) >= s.g["max_new"]:
            return self.finish(s)
        s.seq += ids
        s.mask += [0] * len(ids)
        s.lp += [0.0] * len(ids)
        self.send_turn(s)

    def on_ack(self, msg):
        try:
            a = json.loads(msg.payload.decode())
        except ValueError:
            return
        if not a.get("ok"):
            self.stats["refused"] += 1
            print("wf_tool.py: the buffer refused group %s index %s: %s" % (a.get("group"), a.get("index"),
                                                                          a.get("reason")), file=sys.stderr, flush=True)

    def tick(self):
        now = time.monotonic()
        for g in list(self.groups):
            for s in g["samples"]:
                if not s.done and ((s.corr and now - s.sent > RESEND_S) or (not s.corr and now - s.sent > 1.0)):
                    self.inflight.pop(s.corr, None)
                    self.send_turn(s)


def main():
    got = slm.actor_from_env("wf_tool.py")
    if got is None:
        return 2
    mb, stopping = got
    wf = Workflow(mb, engines_of(os.environ.get("SL_TOPOLOGY")))
    print("wf_tool.py: %s ready at %s, engines %s" % (mb.name, mb.endpoint, wf.engines), file=sys.stderr, flush=True)
    last_tick = time.monotonic()
    while not stopping:
        try:
            msg = mb.recv(timeout_ms=200)
        except InterruptedError:
            continue
        if time.monotonic() - last_tick > 0.5:
            wf.tick()
            last_tick = time.monotonic()
        if msg is None or mb.handle_builtin(msg):
            continue
        if msg.type == slm.STOP:
            break
        if msg.flags & slm.FLAG_REPLY:
            if msg.type == WF_ACK:
                wf.on_ack(msg)
                continue
            s = wf.inflight.pop(msg.corr, None)
            if s is not None and not s.done:
                try:
                    wf.on_generated(s, msg)
                except (TimeoutError, ConnectionError, slm.GenError, ValueError) as e:
                    print("wf_tool.py: %s (sample asked again later)" % e, file=sys.stderr, flush=True)
                    s.corr = 0
            continue
        if msg.type == PROMPTS:
            wf.on_prompts(msg)
    print("wf_tool.py: stopping: %s" % json.dumps(wf.stats), file=sys.stderr, flush=True)
    mb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
