#!/usr/bin/python3
"""len_penalty_actor.py — a custom reward actor in Python (python3-zmq and
mailbox/python/slime_mailbox.py), started by the supervisor with
kind = exec. The README's "Attaching custom actors" example;
tests/rl/test_custom_actors.sh runs it in a real run.

    [reward]
    rm_type = remote
    remote_actor = pylenpen

    [actor pylenpen]
    kind = exec
    command = /usr/bin/python3 tests/rl/len_penalty_actor.py --penalty 0.005
    heartbeat = mailbox          ; answer the supervisor's PING with PONG

Each REWARD_REQ (0x0119) {"response","label","metadata","prompt"} gets a
REWARD (0x011A) reply {"reward": r}:

    r = 1 if the response's last "#### N" equals the label, else 0,
        minus PENALTY x the response's length in bytes

A malformed request gets an ERROR reply. It stops on SIGTERM or STOP and
logs (stderr -> RUN_DIR/logs/NAME.log) how many samples it scored.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "mailbox", "python"))
import slime_mailbox as slm  # noqa: E402

REWARD_REQ = 0x0119
REWARD = 0x011A
EINVAL = 22
def reward(req, penalty):
    resp, label = req["response"], req.get("label") or ""
    if not isinstance(resp, str) or not isinstance(label, str):
        raise TypeError("response and label must be strings")
    at = resp.rfind("####")
    # the rest of the last "####" line, after spaces, is the answer
    answer = resp[at + 4:].lstrip(" ").split("\n", 1)[0] if at >= 0 else None
    exact = 1.0 if label and answer == label else 0.0
    return exact - penalty * len(resp.encode("utf-8"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--penalty", type=float, default=0.01)
    a = ap.parse_args()
    got = slm.actor_from_env("len_penalty_actor.py")
    if got is None:
        return 2
    mb, stopping = got
    print(f"length-penalty reward actor: penalty {a.penalty} per byte", file=sys.stderr, flush=True)
    scored = 0
    while not stopping:
        try:
            msg = mb.recv(timeout_ms=100)
        except InterruptedError:
            continue
        if msg is None or mb.handle_builtin(msg):  # PING -> PONG, ECHO
            continue
        if msg.type == slm.STOP:
            break
        if msg.type != REWARD_REQ:
            continue
        try:
            req = json.loads(msg.payload.decode("utf-8"))
            r = reward(req, a.penalty)
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            mb.reply_error(msg, EINVAL, "REWARD_REQ: expected {\"response\": string, ...}")
            continue
        mb.reply(msg, REWARD, json.dumps({"reward": r}).encode())
        scored += 1
    print(f"scored {scored} samples", file=sys.stderr, flush=True)
    mb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
