"""slime_mailbox — the slime mailbox protocol (mailbox/PROTOCOL.md) in pure Python.

A small reference implementation for custom actors written in Python: it
binds the actor's ROUTER at ipc://RUN_DIR/mb/NAME, sends through one DEALER
per peer, validates every received frame exactly like the C library
(mailbox/frame.c), and answers the runtime's PING (PONG) and ECHO.

It needs only python3-zmq (Debian) and the standard library (struct, zlib).
It is not fast and not the C API: one Mailbox per thread, like the C one.

    import slime_mailbox as slm
    mb = slm.Mailbox.from_env()          # SL_RUN_DIR + SL_ACTOR_NAME
                                         # (or mb, stop = slm.actor_from_env(PROG))
    while True:
        msg = mb.recv(timeout_ms=1000)
        if msg is None or mb.handle_builtin(msg):
            continue
        if msg.type == slm.STOP:
            break
        ...
"""

import errno
import os
import signal
import socket
import stat
import struct
import sys
import time
import zlib

import zmq

# ------------------------------------------------------------------ constants

MAGIC = 0x424D4C53  # b"SLMB" read as a little-endian u32
VERSION = 1
HEADER_SIZE = 80
MAX_PAYLOAD = 64 * 1024
NAME_MAX = 40  # bytes of the sender field, NUL included: names are 1..39 chars
CORR_REQUEST_BIT = 1 << 63

# '<' little-endian: magic, version, type, flags, payload_len, seq, corr,
# sender[40], payload_crc — then header_crc (u32) over these 76 bytes.
_HEAD = struct.Struct("<IHHIIQQ40sI")
assert _HEAD.size == 76

# message types (frame.h sl_msg_type)
PING, PONG, ECHO, ECHO_REPLY, ERROR, STOP, TEST = 1, 2, 3, 4, 5, 6, 7
RUNTIME_LAST = 7
RL_FIRST, RL_LAST = 0x0100, 0x01FF
USER_FIRST = 0x8000
TYPE_NAMES = {PING: "PING", PONG: "PONG", ECHO: "ECHO", ECHO_REPLY: "ECHO_REPLY",
              ERROR: "ERROR", STOP: "STOP", TEST: "TEST"}

# flags
FLAG_REPLY, FLAG_ERROR, FLAG_NOREPLY = 1, 2, 4
FLAG_KNOWN = FLAG_REPLY | FLAG_ERROR | FLAG_NOREPLY

# refusal reasons (frame.h sl_frame_reason), same numbers
REASONS = ["ok", "truncated header", "bad magic", "unsupported version",
           "bad header checksum", "unknown type", "unknown flags", "bad sender name",
           "oversize payload", "length mismatch", "bad payload checksum",
           "bad multipart shape"]
(R_OK, R_TRUNCATED, R_MAGIC, R_VERSION, R_HEADERCRC, R_TYPE, R_FLAGS, R_SENDER,
 R_OVERSIZE, R_LENGTH, R_CHECKSUM, R_SHAPE) = range(12)

_NAME_CHARS = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def type_known(t):
    return (1 <= t <= RUNTIME_LAST) or (RL_FIRST <= t <= RL_LAST) or (USER_FIRST <= t <= 0xFFFF)


def name_valid(name):
    b = name.encode() if isinstance(name, str) else bytes(name)
    return 0 < len(b) < NAME_MAX and b[0:1] != b"." and all(c in _NAME_CHARS for c in b)


class FrameError(ValueError):
    """A refused frame; .reason is one of the R_* numbers."""

    def __init__(self, reason):
        super().__init__(REASONS[reason])
        self.reason = reason


class Msg:
    """One validated message."""

    __slots__ = ("type", "flags", "seq", "corr", "sender", "payload")

    def __init__(self, type, flags, seq, corr, sender, payload):
        self.type, self.flags, self.seq, self.corr = type, flags, seq, corr
        self.sender, self.payload = sender, payload

    def is_error(self):
        return self.type == ERROR or bool(self.flags & FLAG_ERROR)

    def error(self):
        """(code, text) of an ERROR payload."""
        if len(self.payload) < 4:
            return (10, "")  # SL_EPROTO
        return struct.unpack_from("<I", self.payload)[0], self.payload[4:].decode("utf-8", "replace")

    def __repr__(self):
        return "Msg(%s from %s seq=%d corr=%#x flags=%#x %d bytes)" % (
            TYPE_NAMES.get(self.type, hex(self.type)), self.sender, self.seq, self.corr,
            self.flags, len(self.payload))


# -------------------------------------------------------------- wire format

def encode(type, sender, payload=b"", flags=0, seq=0, corr=0):
    """Bytes of one frame. Raises ValueError on arguments the protocol refuses."""
    payload = bytes(payload)
    if not type_known(type) or flags & ~FLAG_KNOWN:
        raise ValueError("bad type or flags")
    if not name_valid(sender):
        raise ValueError("bad sender name %r" % (sender,))
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload over %d bytes" % MAX_PAYLOAD)
    head = _HEAD.pack(MAGIC, VERSION, type, flags, len(payload), seq, corr,
                      sender.encode(), zlib.crc32(payload) if payload else 0)
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def decode(buf):
    """Validate BUF (bytes) and return a Msg, or raise FrameError. Same checks,
    same order, as sl_frame_decode."""
    buf = bytes(buf)
    if len(buf) < HEADER_SIZE:
        raise FrameError(R_TRUNCATED)
    magic, version, type, flags, plen, seq, corr, sender, pcrc = _HEAD.unpack_from(buf)
    if magic != MAGIC:
        raise FrameError(R_MAGIC)
    if version != VERSION:
        raise FrameError(R_VERSION)
    if struct.unpack_from("<I", buf, 76)[0] != zlib.crc32(buf[:76]):
        raise FrameError(R_HEADERCRC)
    if not type_known(type):
        raise FrameError(R_TYPE)
    if flags & ~FLAG_KNOWN:
        raise FrameError(R_FLAGS)
    name, _, pad = sender.partition(b"\0")
    if not _ or pad.strip(b"\0") or not name_valid(name):
        raise FrameError(R_SENDER)
    if plen > MAX_PAYLOAD:
        raise FrameError(R_OVERSIZE)
    if plen != len(buf) - HEADER_SIZE:
        raise FrameError(R_LENGTH)
    payload = buf[HEADER_SIZE:]
    if pcrc != (zlib.crc32(payload) if plen else 0):
        raise FrameError(R_CHECKSUM)
    return Msg(type, flags, seq, corr, name.decode(), payload)


def _socket_alive(path):
    """True when a live process accepts on the unix socket PATH; None when
    PATH exists but is no socket; False otherwise."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(st.st_mode):
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class PeerAbsent(ConnectionError):
    """The peer's mailbox is not there (SL_ECLOSED)."""


class PeerFull(ConnectionError):
    """The peer is there but its queue stayed full (SL_EFULL)."""


# ------------------------------------------------------------------ mailbox

class Mailbox:
    """An actor's mailbox. Not thread-safe: one per thread."""

    SEND_TIMEOUT_MS = 200
    QUEUE_MAX = 4096

    def __init__(self, run_dir, name, send_timeout_ms=SEND_TIMEOUT_MS):
        if not name_valid(name):
            raise ValueError("bad mailbox name %r" % (name,))
        self.name = name
        self.run_dir = run_dir
        self.mb_dir = os.path.join(run_dir, "mb")
        self.path = os.path.join(self.mb_dir, name)
        if len(self.path.encode()) > 107:
            raise ValueError("socket path too long: %s" % self.path)
        self.endpoint = "ipc://" + self.path
        self.send_timeout_ms = send_timeout_ms
        self.seq = 0
        self._corr_async = int.from_bytes(os.urandom(8), "little") & ~CORR_REQUEST_BIT
        self._corr_request = int.from_bytes(os.urandom(8), "little") | CORR_REQUEST_BIT
        self._queue = []
        self._peers = {}
        self.stats = {"sent": 0, "send_failed": 0, "received": 0, "dropped_late_reply": 0,
                      "dropped_queue_full": 0, "requests": 0, "request_timeouts": 0,
                      "dropped": [0] * len(REASONS)}
        try:
            os.mkdir(self.mb_dir, 0o700)
        except FileExistsError:
            pass
        alive = _socket_alive(self.path)
        if alive:
            raise OSError(errno.EADDRINUSE, "mailbox bound by a live process", self.path)
        if alive is None:
            raise OSError(errno.EEXIST, "exists and is not a socket", self.path)
        try:
            os.unlink(self.path)  # a dead predecessor's socket
        except FileNotFoundError:
            pass
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.RCVHWM, 10000)
        self.router.setsockopt(zmq.MAXMSGSIZE, 4 * (HEADER_SIZE + MAX_PAYLOAD))
        old = os.umask(0o077)
        try:
            self.router.bind(self.endpoint)
        finally:
            os.umask(old)
        self._poller = zmq.Poller()
        self._poller.register(self.router, zmq.POLLIN)

    @classmethod
    def from_env(cls, **kw):
        """Open the mailbox the supervisor assigned: SL_RUN_DIR, SL_ACTOR_NAME."""
        return cls(os.environ["SL_RUN_DIR"], os.environ["SL_ACTOR_NAME"], **kw)

    def close(self):
        if self.router is None:
            return
        for s in self._peers.values():
            s.close(linger=100)
        self._peers.clear()
        self.router.close(linger=0)
        self.router = None
        self.ctx.term()
        if _socket_alive(self.path) is False:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------- sending

    def _peer(self, to):
        s = self._peers.get(to)
        if s is None:
            s = self.ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 100)
            s.setsockopt(zmq.SNDHWM, 1000)
            s.setsockopt(zmq.IMMEDIATE, 1)
            s.setsockopt(zmq.RECONNECT_IVL, 10)
            s.setsockopt(zmq.RECONNECT_IVL_MAX, 100)
            s.connect("ipc://" + os.path.join(self.mb_dir, to))
            self._peers[to] = s
        return s

    def new_corr(self):
        """A correlation id for requests tracked by the caller (bit 63 clear)."""
        self._corr_async = (self._corr_async + 1) & ~CORR_REQUEST_BIT or 1
        return self._corr_async

    def send(self, to, type, payload=b"", flags=0, corr=0, timeout_ms=None):
        """Send one frame to mailbox TO. Raises PeerAbsent / PeerFull."""
        if not name_valid(to):
            raise ValueError("bad peer name %r" % (to,))
        self.seq += 1
        frame = encode(type, self.name, payload, flags, self.seq, corr)
        s = self._peer(to)
        wait = self.send_timeout_ms if timeout_ms is None else timeout_ms
        try:
            s.send(frame, zmq.DONTWAIT)
        except zmq.Again:
            if not s.poll(wait, zmq.POLLOUT):
                self.stats["send_failed"] += 1
                if _socket_alive(os.path.join(self.mb_dir, to)):
                    raise PeerFull(to)
                raise PeerAbsent(to)
            s.send(frame, zmq.DONTWAIT)
        self.stats["sent"] += 1

    def reply(self, req, type, payload=b""):
        """Answer REQ (same correlation id, FLAG_REPLY)."""
        if req.flags & FLAG_NOREPLY:
            return
        self.send(req.sender, type, payload, FLAG_REPLY, req.corr)

    def reply_error(self, req, code, text=""):
        if req.flags & FLAG_NOREPLY:
            return
        self.send(req.sender, ERROR, struct.pack("<I", code) + text.encode()[:1020],
                  FLAG_REPLY | FLAG_ERROR, req.corr)

    def handle_builtin(self, msg):
        """PING -> PONG, ECHO -> ECHO_REPLY (same payload). True when handled."""
        if msg.flags & FLAG_REPLY:
            return False
        answer = {PING: PONG, ECHO: ECHO_REPLY}.get(msg.type)
        if answer is None:
            return False
        try:
            self.reply(msg, answer, msg.payload)
        except ConnectionError:
            pass
        return True

    # ----------------------------------------------------------- receiving

    def _pull(self):
        """One ZeroMQ message off the ROUTER: a Msg, or None (nothing there or
        dropped: check self._empty)."""
        try:
            parts = self.router.recv_multipart(zmq.DONTWAIT)
        except zmq.Again:
            self._empty = True
            return None
        self._empty = False
        if len(parts) != 2:
            self.stats["dropped"][R_SHAPE] += 1
            return None
        try:
            msg = decode(parts[1])
        except FrameError as e:
            self.stats["dropped"][e.reason] += 1
            return None
        self.stats["received"] += 1
        return msg

    @staticmethod
    def _orphan(msg):
        return bool(msg.flags & FLAG_REPLY) and (msg.corr == 0 or msg.corr & CORR_REQUEST_BIT)

    def _wait(self, deadline):
        left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
        if left == 0:
            return False
        self._poller.poll(left)
        return True

    def recv(self, timeout_ms=-1):
        """Next valid message, or None after TIMEOUT_MS (-1: wait forever)."""
        if self._queue:
            return self._queue.pop(0)
        deadline = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000.0
        while True:
            msg = self._pull()
            if msg is not None:
                if not self._orphan(msg):
                    return msg
                self.stats["dropped_late_reply"] += 1
                continue
            if not self._empty:
                continue
            if not self._wait(deadline):
                return None

    def request(self, to, type, payload=b"", timeout_ms=3000):
        """Send a request and return the reply Msg (it may be an ERROR reply).
        Raises TimeoutError, PeerAbsent, PeerFull."""
        self.stats["requests"] += 1
        self._corr_request = ((self._corr_request + 1) & 0xFFFFFFFFFFFFFFFF) | CORR_REQUEST_BIT
        corr = self._corr_request
        self.send(to, type, payload, 0, corr,
                  timeout_ms=min(self.send_timeout_ms, timeout_ms) if timeout_ms >= 0 else None)
        deadline = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000.0
        while True:
            msg = self._pull()
            if msg is not None:
                if msg.flags & FLAG_REPLY and msg.corr == corr:
                    return msg
                if self._orphan(msg):
                    self.stats["dropped_late_reply"] += 1
                elif len(self._queue) < self.QUEUE_MAX:
                    self._queue.append(msg)
                else:
                    self.stats["dropped_queue_full"] += 1
                continue
            if not self._empty:
                continue
            if not self._wait(deadline):
                self.stats["request_timeouts"] += 1
                raise TimeoutError("no reply from %s within %d ms" % (to, timeout_ms))

    def ping(self, to, seq, timeout_ms=3000):
        """PING TO with the u64 SEQ; True when its PONG echoes it."""
        r = self.request(to, PING, struct.pack("<Q", seq), timeout_ms)
        return r.type == PONG and r.payload == struct.pack("<Q", seq)


# ------------------------------------------------------ generation service
# PROTOCOL.md §11: any actor asks a rollout engine to generate, tokenize,
# detokenize or apply the chat template (actors/rl_msg.h 0x0120..0x0128;
# the C twin is actors/gen_client.h).

GENERATE, GENERATED, ABORT = 0x0120, 0x0121, 0x0122
TOKENIZE, TOKENIZED = 0x0123, 0x0124
DETOKENIZE, DETOKENIZED = 0x0125, 0x0126
APPLY_CHAT_TEMPLATE, CHAT_TEMPLATED = 0x0127, 0x0128
TYPE_NAMES.update({GENERATE: "GENERATE", GENERATED: "GENERATED", ABORT: "ABORT",
                   TOKENIZE: "TOKENIZE", TOKENIZED: "TOKENIZED", DETOKENIZE: "DETOKENIZE",
                   DETOKENIZED: "DETOKENIZED", APPLY_CHAT_TEMPLATE: "APPLY_CHAT_TEMPLATE",
                   CHAT_TEMPLATED: "CHAT_TEMPLATED"})


class StopFlag:
    """True once the process got SIGTERM or SIGINT (how the supervisor stops
    an actor). Installs the two handlers; use one per process."""

    def __init__(self):
        self._set = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum, frame):
        self._set = True

    def __bool__(self):
        return self._set


def actor_from_env(prog, **kw):
    """For a custom actor's main(): (Mailbox.from_env(**kw), StopFlag()) of
    the actor the supervisor started, or None when SL_RUN_DIR or
    SL_ACTOR_NAME is missing, after saying so on stderr as PROG (the actor
    should then exit 2)."""
    if not os.environ.get("SL_RUN_DIR") or not os.environ.get("SL_ACTOR_NAME"):
        print("%s: SL_RUN_DIR and SL_ACTOR_NAME must be set" % prog, file=sys.stderr)
        return None
    stop = StopFlag()
    return Mailbox.from_env(**kw), stop


class GenError(RuntimeError):
    """The engine refused a request: .code (sl_err number) and .text (names the field)."""

    def __init__(self, code, text):
        RuntimeError.__init__(self, "error %d: %s" % (code, text))
        self.code, self.text = code, text


def _json():
    import json
    return json


def generate_payload(rid, prompt, max_tokens=256, temperature=1.0, top_p=1.0, top_k=0,
                     stop=None, stop_token_ids=None, seed=0, session=None, ignore_eos=False):
    """The JSON payload (bytes) of a GENERATE."""
    o = {"rid": int(rid), "prompt": [int(t) for t in prompt], "max_tokens": int(max_tokens)}
    if temperature != 1.0:
        o["temperature"] = float(temperature)
    if top_p != 1.0:
        o["top_p"] = float(top_p)
    if top_k:
        o["top_k"] = int(top_k)
    if stop:
        o["stop"] = list(stop)
    if stop_token_ids:
        o["stop_token_ids"] = [int(t) for t in stop_token_ids]
    if seed:
        o["seed"] = int(seed)
    if session is not None:
        o["session"] = session
    if ignore_eos:
        o["ignore_eos"] = True
    return _json().dumps(o, separators=(",", ":")).encode()


def parse_generated(msg):
    """A GENERATED reply as a dict (rid, ids, logprobs, finish_reason,
    weight_version, prompt_tokens, cached_tokens); raises GenError for an
    ERROR reply, ValueError for anything else."""
    if msg.is_error():
        raise GenError(*msg.error())
    if msg.type != GENERATED:
        raise ValueError("not a GENERATED reply: %r" % (msg,))
    r = _json().loads(msg.payload.decode())
    if not isinstance(r, dict) or len(r.get("ids", ())) != len(r.get("logprobs", ())) or \
            r.get("finish_reason") not in ("stop", "length", "abort"):
        raise ValueError("malformed GENERATED: %r" % (r,))
    return r


def _call(mb, engine, type, want, obj, timeout_ms):
    r = mb.request(engine, type, _json().dumps(obj).encode(), timeout_ms)
    if r.is_error():
        raise GenError(*r.error())
    if r.type != want:
        raise ValueError("unexpected reply %r" % (r,))
    return _json().loads(r.payload.decode())


def generate(mb, engine, prompt, rid=0, timeout_ms=60000, **params):
    """Blocking GENERATE to ENGINE ("rollout"): token ids in, a dict out
    (see parse_generated). PARAMS: max_tokens, temperature, top_p, top_k,
    stop, stop_token_ids, seed, session, ignore_eos."""
    r = mb.request(engine, GENERATE, generate_payload(rid, prompt, **params), timeout_ms)
    return parse_generated(r)


def generate_async(mb, engine, prompt, rid=0, **params):
    """Send a GENERATE without waiting; returns its correlation id. Its
    GENERATED (or ERROR) reply comes out of mb.recv() with that corr."""
    corr = mb.new_corr()
    mb.send(engine, GENERATE, generate_payload(rid, prompt, **params), 0, corr)
    return corr


def abort(mb, engine, rid=None):
    """ABORT the caller's request RID, or all of them (rid None)."""
    o = {"all": True} if rid is None else {"rid": int(rid)}
    mb.send(engine, ABORT, _json().dumps(o).encode())


def tokenize(mb, engine, text, add_special_tokens=False, timeout_ms=10000):
    return _call(mb, engine, TOKENIZE, TOKENIZED,
                 {"text": text, "add_special_tokens": bool(add_special_tokens)}, timeout_ms)["ids"]


def detokenize(mb, engine, ids, skip_special_tokens=False, timeout_ms=10000):
    return _call(mb, engine, DETOKENIZE, DETOKENIZED,
                 {"ids": [int(t) for t in ids], "skip_special_tokens": bool(skip_special_tokens)},
                 timeout_ms)["text"]


def apply_chat_template(mb, engine, messages, add_generation_prompt=True, timeout_ms=10000):
    """(text, ids) of MESSAGES ([{"role", "content"}]) in the engine model's chat format."""
    r = _call(mb, engine, APPLY_CHAT_TEMPLATE, CHAT_TEMPLATED,
              {"messages": messages, "add_generation_prompt": bool(add_generation_prompt)}, timeout_ms)
    return r["text"], r["ids"]
