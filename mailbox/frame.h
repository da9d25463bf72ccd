/*
 * frame.h — the mailbox wire format: one fixed 80-byte little-endian header
 * followed by a bounded payload, the message type registry, and a decoder
 * that validates every byte it is given.
 *
 * It is pure byte work: no sockets, no allocation, no I/O. It is not the
 * transport (mailbox.h) and it knows nothing of what payloads mean beyond
 * the few runtime messages (PING/PONG/ECHO/ERROR/STOP). mailbox/PROTOCOL.md
 * is the normative description; this header and that file must agree.
 *
 * Header layout (all integers little-endian, offsets in bytes):
 *
 *     0  u32  magic        "SLMB" = 53 4C 4D 42 (u32 0x424D4C53)
 *     4  u16  version      SL_FRAME_VERSION (1)
 *     6  u16  type         sl_msg_type
 *     8  u32  flags        SL_FLAG_*; undefined bits must be 0
 *    12  u32  payload_len  0..SL_FRAME_MAX_PAYLOAD, = bytes after the header
 *    16  u64  seq          sender's sequence number (1, 2, 3 ... per mailbox)
 *    24  u64  corr         correlation id (0 = none; a reply copies the request's)
 *    32  char sender[40]   sender's mailbox name, NUL-terminated, NUL-padded
 *    72  u32  payload_crc  CRC-32 (zlib) of the payload bytes (0 for none)
 *    76  u32  header_crc   CRC-32 (zlib) of header bytes 0..75
 *    80  ...  payload
 */
#ifndef SL_FRAME_H
#define SL_FRAME_H

#include "base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ constants */

#define SL_FRAME_MAGIC 0x424D4C53u /* bytes "SLMB" read as a little-endian u32 */
#define SL_FRAME_VERSION 1
#define SL_FRAME_HEADER_SIZE 80
#define SL_FRAME_MAX_PAYLOAD (64 * 1024) /* bulk data never travels in messages */
#define SL_FRAME_MAX_SIZE (SL_FRAME_HEADER_SIZE + SL_FRAME_MAX_PAYLOAD)

/* A mailbox (actor) name: 1..39 characters of [A-Za-z0-9_.-], not starting
 * with '.', stored NUL-padded in 40 bytes. Matches topology.h's instance
 * names ("GROUP" or "GROUP.I"). */
#define SL_MB_NAME_MAX 40

/* Header field offsets (PROTOCOL.md §2). */
enum {
    SL_FRAME_OFF_MAGIC = 0,
    SL_FRAME_OFF_VERSION = 4,
    SL_FRAME_OFF_TYPE = 6,
    SL_FRAME_OFF_FLAGS = 8,
    SL_FRAME_OFF_LEN = 12,
    SL_FRAME_OFF_SEQ = 16,
    SL_FRAME_OFF_CORR = 24,
    SL_FRAME_OFF_SENDER = 32,
    SL_FRAME_OFF_PAYLOAD_CRC = 72,
    SL_FRAME_OFF_HEADER_CRC = 76,
};

/* ------------------------------------------------------- message types */

/* The registry of message types (u16 on the wire). Ranges:
 *   0x0000            invalid, never sent
 *   0x0001..0x00FF    runtime messages (defined below; others rejected)
 *   0x0100..0x01FF    RL messages, reserved for actors/ (the whole range
 *                     is accepted by the decoder so that actors/ can define
 *                     them without changing the transport)
 *   0x0200..0x7FFF    unassigned, rejected
 *   0x8000..0xFFFF    user range, for custom actors, accepted, never
 *                     interpreted by the runtime
 * Payloads of the runtime messages are in PROTOCOL.md §4. */
typedef enum sl_msg_type {
    SL_MSG_INVALID = 0x0000,
    SL_MSG_PING = 0x0001,       /* heartbeat: payload u64 ping sequence */
    SL_MSG_PONG = 0x0002,       /* reply to PING: same payload */
    SL_MSG_ECHO = 0x0003,       /* test request: any payload */
    SL_MSG_ECHO_REPLY = 0x0004, /* reply to ECHO: the same payload */
    SL_MSG_ERROR = 0x0005,      /* error reply: u32 sl_err code + UTF-8 text */
    SL_MSG_STOP = 0x0006,       /* ask the actor to stop cleanly; no payload */
    SL_MSG_TEST = 0x0007,       /* one-way test message, any payload */
    SL_MSG_RUNTIME_LAST = 0x0007,

    /* RL range (0x0100..0x01FF), reserved; semantics defined in actors/. */
    SL_MSG_RL_FIRST = 0x0100,
    SL_MSG_PROMPTS = 0x0100,     /* reserved: buffer -> rollout */
    SL_MSG_SAMPLES = 0x0101,     /* reserved: rollout -> reward -> buffer */
    SL_MSG_TRAIN_BATCH = 0x0102, /* reserved: buffer -> trainer */
    SL_MSG_WEIGHTS = 0x0103,     /* reserved: trainer -> rollout (version notice) */
    SL_MSG_GENERATE = 0x0104,    /* reserved: generation request */
    SL_MSG_RELEASE = 0x0105,     /* reserved: shm slot release */
    SL_MSG_RL_LAST = 0x01FF,

    SL_MSG_USER_FIRST = 0x8000, /* custom actors: 0x8000..0xFFFF */
    SL_MSG_USER_LAST = 0xFFFF,
} sl_msg_type;

/* Whether TYPE may appear on the wire (see the ranges above). */
bool sl_msg_type_known(uint16_t type);

/* "PING", "ECHO_REPLY", "PROMPTS", "USER", "RL", "UNKNOWN" ...; never NULL,
 * static storage. */
const char *sl_msg_type_name(uint16_t type);

/* Flags (u32 on the wire). Undefined bits must be zero. */
enum {
    SL_FLAG_REPLY = 1u << 0,  /* this message answers the request whose
                                 correlation id it carries */
    SL_FLAG_ERROR = 1u << 1,  /* the reply reports a failure (type ERROR) */
    SL_FLAG_NOREPLY = 1u << 2, /* the sender wants no reply */
    SL_FLAG_KNOWN = SL_FLAG_REPLY | SL_FLAG_ERROR | SL_FLAG_NOREPLY,
};

/* ------------------------------------------------------- decode reasons */

/* Why a frame was refused. SL_FRAME_ESHAPE is never returned by
 * sl_frame_decode: the mailbox uses it for ZeroMQ messages of the wrong
 * multipart shape. Keep the numbers stable: they index
 * sl_mailbox_stats.dropped and appear in logs. */
typedef enum sl_frame_reason {
    SL_FRAME_OK = 0,
    SL_FRAME_ETRUNCATED = 1, /* fewer bytes than a header */
    SL_FRAME_EMAGIC = 2,     /* magic is not "SLMB" */
    SL_FRAME_EVERSION = 3,   /* protocol version not supported */
    SL_FRAME_EHEADERCRC = 4, /* header checksum mismatch */
    SL_FRAME_ETYPE = 5,      /* type outside the known and user ranges */
    SL_FRAME_EFLAGS = 6,     /* undefined flag bits set */
    SL_FRAME_ESENDER = 7,    /* sender empty, unterminated, bad characters
                                or not NUL-padded */
    SL_FRAME_EOVERSIZE = 8,  /* payload_len > SL_FRAME_MAX_PAYLOAD */
    SL_FRAME_ELENGTH = 9,    /* payload_len differs from the bytes present
                                (truncated payload or trailing bytes) */
    SL_FRAME_ECHECKSUM = 10, /* payload checksum mismatch */
    SL_FRAME_ESHAPE = 11,    /* (mailbox) wrong number of ZeroMQ parts */
    SL_FRAME_NREASONS = 12,
} sl_frame_reason;

/* "ok", "truncated", "bad magic", ...; never NULL, static storage. */
const char *sl_frame_reason_name(sl_frame_reason r);

/* The sl_err that best matches a reason (ECHECKSUM, EPROTO, ERANGE, EINVAL). */
sl_err sl_frame_reason_err(sl_frame_reason r);

/* ---------------------------------------------------------------- header */

/* A decoded (or to-be-encoded) header. sender is always NUL-terminated. */
typedef struct sl_frame_header {
    uint16_t version;     /* decode: SL_FRAME_VERSION; encode: ignored */
    uint16_t type;        /* sl_msg_type */
    uint32_t flags;       /* SL_FLAG_* */
    uint32_t payload_len; /* decode: validated; encode: ignored (taken from len) */
    uint64_t seq;
    uint64_t corr;
    char sender[SL_MB_NAME_MAX];
    uint32_t payload_crc; /* decode: validated; encode: ignored (computed) */
} sl_frame_header;

/* Whether NAME is a valid mailbox name (1..39 chars of [A-Za-z0-9_.-], not
 * starting with '.'). NULL gives false. */
bool sl_mb_name_valid(const char *name);

/* Encode one frame: H's type, flags, seq, corr and sender, then LEN bytes of
 * PAYLOAD (may be NULL when LEN is 0), into OUT (capacity CAP bytes; at
 * least SL_FRAME_HEADER_SIZE + LEN). Sets *OUT_LEN to the frame's size.
 * Computes both checksums. Does not allocate; thread-safe.
 * Errors: SL_EINVAL (NULL argument, invalid sender, unknown type or flags),
 * SL_ERANGE (LEN > SL_FRAME_MAX_PAYLOAD), SL_EFULL (CAP too small).
 * On error OUT is unspecified and *OUT_LEN is 0. */
sl_err sl_frame_encode(const sl_frame_header *h, const void *payload, size_t len,
                       uint8_t *out, size_t cap, size_t *out_len);

/* Decode and validate one frame of LEN bytes at BUF (any bytes at all;
 * BUF may be NULL when LEN is 0). Checks, in this order: size, magic,
 * version, header checksum, type, flags, sender, payload size bound, exact
 * length, payload checksum. On SL_FRAME_OK fills *H and sets *PAYLOAD to
 * point INTO BUF (no copy; NULL when payload_len is 0); the caller must
 * keep BUF alive while it uses *PAYLOAD. On any other reason *H and
 * *PAYLOAD are zeroed. Never reads outside BUF[0..LEN); thread-safe.
 * H and PAYLOAD may each be NULL when the caller only validates. */
sl_frame_reason sl_frame_decode(const uint8_t *buf, size_t len, sl_frame_header *h,
                                const uint8_t **payload);

/* ------------------------------------------------------- payload helpers */

/* ERROR payload: u32 code (sl_err, little-endian) then UTF-8 text, not
 * NUL-terminated. Writes at most CAP bytes (text is truncated to fit);
 * returns the bytes written (>= 4 when CAP >= 4, else 0). */
size_t sl_frame_error_payload(uint8_t *out, size_t cap, uint32_t code, const char *text);

#endif /* SL_FRAME_H */
