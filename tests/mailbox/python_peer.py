"""Driven by test_python_mailbox.sh: a Python actor (slime_mailbox) and a C
mailbox (helper_mbpeer, bound as c_actor) exchange messages both ways.
Every check raises on failure; the exit code is the number of failures.
Timeouts are multiplied by SL_TIME_SCALE (default 1; `make asan` sets it)."""
import os
import struct
import subprocess
import sys
import time

import zmq
import slime_mailbox as slm

helper = sys.argv[1]
fails = 0
checks = 0
SCALE = max(1.0, float(os.environ.get("SL_TIME_SCALE") or 1))


def tms(ms):
    """MS scaled by SL_TIME_SCALE."""
    return int(ms * SCALE)


def check(cond, what):
    global fails, checks
    checks += 1
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        fails += 1


# 1. the byte-exact example of PROTOCOL.md §7
ex = slm.encode(slm.PING, "supervisor", struct.pack("<Q", 42), 0, 1, (1 << 63) + 1)
check(ex.hex() == "534c4d420100010000000000080000000100000000000000010000000000008073"
      "757065727669736f72000000000000000000000000000000000000000000000000000000000000"
      "f7a1940d646f19a82a00000000000000", "PROTOCOL.md example frame is byte-exact")
check(slm.decode(ex).corr == (1 << 63) + 1, "the example decodes")
for bad, reason in [(ex[:79], slm.R_TRUNCATED), (b"X" + ex[1:], slm.R_MAGIC),
                    (ex[:-1], slm.R_LENGTH), (ex[:-1] + b"\x01", slm.R_CHECKSUM)]:
    try:
        slm.decode(bad)
        check(False, "refused: " + slm.REASONS[reason])
    except slm.FrameError as e:
        check(e.reason == reason, "refused: " + slm.REASONS[reason])

mb = slm.Mailbox.from_env()
check(mb.name == "py_actor", "opened the mailbox named by SL_ACTOR_NAME")

# 2. Python -> C requests
r = mb.request("c_actor", slm.ECHO, b"hello from python", tms(3000))
check(r.type == slm.ECHO_REPLY and r.payload == b"hello from python" and r.sender == "c_actor",
      "ECHO answered by the C actor")
check(mb.ping("c_actor", 0x1122334455667788, tms(3000)), "PING answered with PONG echoing the sequence")
r = mb.request("c_actor", 0x8001, b"shout", tms(3000))
check(r.type == 0x8001 and r.payload == b"SHOUT", "user type 0x8001 answered (upper-cased)")
r = mb.request("c_actor", 0x8555, b"?", tms(3000))
check(r.is_error() and r.error()[0] == 13, "unhandled request gets an ERROR reply (SL_EUNSUPPORTED)")

# 3. hostile bytes to the C actor: it must survive and keep answering
raw = mb.ctx.socket(zmq.DEALER)
raw.setsockopt(zmq.LINGER, 0)
raw.connect("ipc://%s/mb/c_actor" % mb.run_dir)
raw.send(b"garbage")
raw.send(ex[:-3])
raw.send_multipart([ex, b"extra"])
raw.send(b"SLMB" + b"\xff" * 200)
time.sleep(0.05)
raw.close()
check(mb.ping("c_actor", 5, tms(3000)), "C actor still answers after malformed frames")

# 4. C -> Python: the C helper requests while Python serves its mailbox
def serve_while(proc):
    handled = 0
    while proc.poll() is None:
        m = mb.recv(50)
        if m is not None and mb.handle_builtin(m):
            handled += 1
    return handled

for args, what in [(["ping", "py_actor", "987654321", str(tms(3000))], "C PING answered by Python PONG"),
                   (["request", "py_actor", "3", "from C", str(tms(3000))], "C ECHO answered by Python")]:
    p = subprocess.Popen([helper, mb.run_dir, "c_client", *args], stdout=subprocess.PIPE)
    n = serve_while(p)
    out = p.stdout.read().decode().strip()
    check(p.returncode == 0 and n == 1, "%s (%s)" % (what, out))

# 5. late reply: a request that times out, then a recv that must not return it.
# With a 0 ms timeout the reply is almost always late, but on a loaded
# machine this process can be descheduled between its send and its first
# receive, and the C actor's reply is then on time: try again (5 tries).
timed_out = False
for _ in range(5):
    try:
        mb.request("c_actor", 0x8001, b"x", 0)
    except TimeoutError:
        timed_out = True
        break
# the reply comes when the C actor gets to it: wait for it (generously),
# and recv must never return it
late, end = None, time.monotonic() + 10 * SCALE
while late is None and mb.stats["dropped_late_reply"] == 0 and time.monotonic() < end:
    late = mb.recv(100)
check(late is None and mb.stats["dropped_late_reply"] == 1,
      "a reply arriving after the timeout is dropped as late (timed out: %s)" % timed_out)

# 6. stop the C actor cleanly
r = mb.request("c_actor", slm.STOP, b"", tms(3000))
check(r.type == slm.STOP, "STOP acknowledged")
mb.close()
print("%d checks, %d failed" % (checks, fails))
sys.exit(fails)
