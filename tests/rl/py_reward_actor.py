#!/usr/bin/python3
"""A custom reward actor in Python ([reward] rm_type = remote).

    [reward]
    rm_type = remote
    remote_actor = pyreward

    [actor pyreward]
    kind = exec
    command = /usr/bin/python3 tests/rl/py_reward_actor.py
    heartbeat = mailbox

The reward actor sends one REWARD_REQ (0x0119) request per sample with the
JSON payload {"response", "label", "metadata", "prompt"}; this actor answers
each with a REWARD (0x011A) reply {"reward": float} (mailbox/PROTOCOL.md,
"RL messages"). Here: 1.0 when the response's last "#### N" answer equals the
label, else 0.0 — the same as the built-in gsm8k reward, in a few lines of
Python. It answers PING (its heartbeat), exits 0 on SIGTERM or STOP, and
counts what it scored in $SL_RUN_DIR/pyreward.count (for the tests).
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "mailbox", "python"))
import slime_mailbox as slm  # noqa: E402

REWARD_REQ = 0x0119
REWARD = 0x011A
def score(req):
    answers = re.findall(r"####\s*(-?[0-9][0-9,]*)", req.get("response", ""))
    label = str(req.get("label", "")).strip()
    return 1.0 if answers and answers[-1].replace(",", "") == label else 0.0


def main():
    got = slm.actor_from_env("py_reward_actor.py")
    if got is None:
        return 2
    mb, stopping = got
    n = 0
    while not stopping:
        try:
            msg = mb.recv(timeout_ms=100)
        except InterruptedError:
            continue
        if msg is None or mb.handle_builtin(msg):
            continue
        if msg.type == slm.STOP:
            break
        if msg.type != REWARD_REQ:
            continue
        try:
            r = score(json.loads(msg.payload.decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            mb.reply_error(msg, 22, "bad REWARD_REQ payload")
            continue
        mb.reply(msg, REWARD, json.dumps({"reward": r}).encode())
        n += 1
        with open(os.path.join(mb.run_dir, "pyreward.count"), "w") as f:
            f.write("%d\n" % n)
    mb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
