#!/usr/bin/python3
"""A custom actor written in Python that joins a running topology.

    [actor py]
    kind = exec
    command = /usr/bin/python3 tests/runtime/py_echo_actor.py
    heartbeat = mailbox          ; the default for kind = exec

It speaks only the mailbox protocol (mailbox/PROTOCOL.md) through
mailbox/python/slime_mailbox.py: it answers the supervisor's PING with PONG
(that is its heartbeat) and ECHO with ECHO_REPLY, answers every TEST request
with a TEST reply carrying the same payload (what the C `pinger` sends),
records "start NAME" / "stop NAME" in $SL_RUN_DIR/events.log like the C demo
actors, and exits 0 on SIGTERM or STOP. Exit 2 when the environment the
supervisor sets (SL_RUN_DIR, SL_ACTOR_NAME) is missing.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "mailbox", "python"))
import slime_mailbox as slm  # noqa: E402

def record(run_dir, what, name):
    fd = os.open(os.path.join(run_dir, "events.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("%s %s\n" % (what, name)).encode())
    finally:
        os.close(fd)


def main():
    got = slm.actor_from_env("py_echo_actor.py")
    if got is None:
        return 2
    mb, stopping = got
    run_dir, name = mb.run_dir, mb.name
    record(run_dir, "start", name)
    print("py_echo_actor.py: %s ready at %s" % (name, mb.endpoint), file=sys.stderr, flush=True)
    answered = 0
    while not stopping:
        try:
            msg = mb.recv(timeout_ms=100)
        except InterruptedError:
            continue
        if msg is None or mb.handle_builtin(msg):
            continue
        if msg.type == slm.STOP:
            break
        if msg.type == slm.TEST and not msg.flags & slm.FLAG_REPLY:
            try:
                mb.reply(msg, slm.TEST, msg.payload)
                answered += 1
                if answered % 10 == 0:
                    print("py_echo_actor.py: answered=%d" % answered, file=sys.stderr, flush=True)
            except ConnectionError:
                pass  # the asker went away; it will count a timeout
    print("py_echo_actor.py: stopping after %d answers" % answered, file=sys.stderr, flush=True)
    record(run_dir, "stop", name)
    mb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
