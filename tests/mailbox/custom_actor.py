#!/usr/bin/python3
"""A custom actor in Python, for a topology's `kind = exec` actor:

    [actor pyecho]
    kind = exec
    command = /usr/bin/python3 tests/mailbox/custom_actor.py

It binds ipc://$SL_RUN_DIR/mb/$SL_ACTOR_NAME (mailbox/python/slime_mailbox.py,
found relative to this file or on PYTHONPATH), answers the supervisor's
PING with PONG and ECHO with ECHO_REPLY, upper-cases the payload of user
type 0x8001, answers other requests with ERROR (SL_EUNSUPPORTED), and exits
0 on STOP or SIGTERM. Exit 2 when the environment is incomplete.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "mailbox", "python"))
import slime_mailbox as slm  # noqa: E402

USER_UPPER = 0x8001
stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


def main():
    if not os.environ.get("SL_RUN_DIR") or not os.environ.get("SL_ACTOR_NAME"):
        print("custom_actor.py: SL_RUN_DIR and SL_ACTOR_NAME must be set", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    mb = slm.Mailbox.from_env()
    print("custom_actor.py: %s (%s) ready at %s" % (mb.name, os.environ.get("SL_ACTOR_KIND", "exec"),
                                                    mb.endpoint), file=sys.stderr, flush=True)
    while not stopping:
        msg = mb.recv(timeout_ms=200)
        if msg is None or mb.handle_builtin(msg):
            continue
        try:
            if msg.type == slm.STOP:
                if msg.corr:
                    mb.reply(msg, slm.STOP)
                break
            if msg.type == USER_UPPER and not msg.flags & slm.FLAG_REPLY:
                mb.reply(msg, USER_UPPER, msg.payload.upper())
            elif msg.corr and not msg.flags & slm.FLAG_REPLY:
                mb.reply_error(msg, 13, "custom_actor.py: unsupported type %#x" % msg.type)
        except ConnectionError as e:  # the requester went away: nothing to do
            print("custom_actor.py: reply failed: %r" % e, file=sys.stderr)
    mb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
