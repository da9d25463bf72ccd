/*
 * frame.c — encode and validate mailbox frames (frame.h, PROTOCOL.md §2).
 * Pure byte work: every read is bounds-checked against the length given,
 * so any byte string at all can be handed to sl_frame_decode.
 */
#include "frame.h"

#include <string.h>

/* ------------------------------------------------------------ registry */

bool sl_msg_type_known(uint16_t type) {
    if (type >= SL_MSG_PING && type <= SL_MSG_RUNTIME_LAST) return true;
    if (type >= SL_MSG_RL_FIRST && type <= SL_MSG_RL_LAST) return true;
    if (type >= SL_MSG_USER_FIRST) return true;
    return false;
}

const char *sl_msg_type_name(uint16_t type) {
    switch (type) {
    case SL_MSG_PING: return "PING";
    case SL_MSG_PONG: return "PONG";
    case SL_MSG_ECHO: return "ECHO";
    case SL_MSG_ECHO_REPLY: return "ECHO_REPLY";
    case SL_MSG_ERROR: return "ERROR";
    case SL_MSG_STOP: return "STOP";
    case SL_MSG_TEST: return "TEST";
    case SL_MSG_PROMPTS: return "PROMPTS";
    case SL_MSG_SAMPLES: return "SAMPLES";
    case SL_MSG_TRAIN_BATCH: return "TRAIN_BATCH";
    case SL_MSG_WEIGHTS: return "WEIGHTS";
    case SL_MSG_GENERATE: return "GENERATE";
    case SL_MSG_RELEASE: return "RELEASE";
    default: break;
    }
    if (type >= SL_MSG_USER_FIRST) return "USER";
    if (type >= SL_MSG_RL_FIRST && type <= SL_MSG_RL_LAST) return "RL";
    return "UNKNOWN";
}

static const char *const reason_names[SL_FRAME_NREASONS] = {
    [SL_FRAME_OK] = "ok",
    [SL_FRAME_ETRUNCATED] = "truncated header",
    [SL_FRAME_EMAGIC] = "bad magic",
    [SL_FRAME_EVERSION] = "unsupported version",
    [SL_FRAME_EHEADERCRC] = "bad header checksum",
    [SL_FRAME_ETYPE] = "unknown type",
    [SL_FRAME_EFLAGS] = "unknown flags",
    [SL_FRAME_ESENDER] = "bad sender name",
    [SL_FRAME_EOVERSIZE] = "oversize payload",
    [SL_FRAME_ELENGTH] = "length mismatch",
    [SL_FRAME_ECHECKSUM] = "bad payload checksum",
    [SL_FRAME_ESHAPE] = "bad multipart shape",
};

const char *sl_frame_reason_name(sl_frame_reason r) {
    if ((unsigned)r >= SL_FRAME_NREASONS) return "unknown reason";
    return reason_names[r];
}

sl_err sl_frame_reason_err(sl_frame_reason r) {
    switch (r) {
    case SL_FRAME_OK: return SL_OK;
    case SL_FRAME_EHEADERCRC:
    case SL_FRAME_ECHECKSUM: return SL_ECHECKSUM;
    case SL_FRAME_EOVERSIZE:
    case SL_FRAME_ELENGTH:
    case SL_FRAME_ETRUNCATED: return SL_ERANGE;
    case SL_FRAME_EMAGIC:
    case SL_FRAME_EVERSION:
    case SL_FRAME_ETYPE:
    case SL_FRAME_EFLAGS:
    case SL_FRAME_ESHAPE: return SL_EPROTO;
    default: return SL_EINVAL;
    }
}

/* ---------------------------------------------------------------- names */

static bool name_char_ok(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

bool sl_mb_name_valid(const char *name) {
    if (!name || !name[0] || name[0] == '.') return false;
    size_t n = 0;
    for (; name[n]; n++) {
        if (n >= SL_MB_NAME_MAX - 1) return false;
        if (!name_char_ok((unsigned char)name[n])) return false;
    }
    return true;
}

/* The 40-byte wire field: a valid name, then NUL padding to the end. */
static bool sender_field_ok(const uint8_t *f) {
    size_t n = 0;
    while (n < SL_MB_NAME_MAX && f[n]) {
        if (!name_char_ok(f[n])) return false;
        n++;
    }
    if (n == 0 || n >= SL_MB_NAME_MAX || f[0] == '.') return false;
    for (size_t i = n; i < SL_MB_NAME_MAX; i++)
        if (f[i]) return false;
    return true;
}

/* ------------------------------------------------------------- encoding */

sl_err sl_frame_encode(const sl_frame_header *h, const void *payload, size_t len,
                       uint8_t *out, size_t cap, size_t *out_len) {
    if (out_len) *out_len = 0;
    if (!h || !out || !out_len || (len && !payload)) return SL_EINVAL;
    if (len > SL_FRAME_MAX_PAYLOAD) return SL_ERANGE;
    if (!sl_msg_type_known(h->type) || (h->flags & ~(uint32_t)SL_FLAG_KNOWN)) return SL_EINVAL;
    if (memchr(h->sender, 0, SL_MB_NAME_MAX) == NULL || !sl_mb_name_valid(h->sender))
        return SL_EINVAL;
    if (cap < SL_FRAME_HEADER_SIZE + len) return SL_EFULL;

    memset(out, 0, SL_FRAME_HEADER_SIZE);
    sl_put_u32(out + SL_FRAME_OFF_MAGIC, SL_FRAME_MAGIC);
    sl_put_u16(out + SL_FRAME_OFF_VERSION, SL_FRAME_VERSION);
    sl_put_u16(out + SL_FRAME_OFF_TYPE, h->type);
    sl_put_u32(out + SL_FRAME_OFF_FLAGS, h->flags);
    sl_put_u32(out + SL_FRAME_OFF_LEN, (uint32_t)len);
    sl_put_u64(out + SL_FRAME_OFF_SEQ, h->seq);
    sl_put_u64(out + SL_FRAME_OFF_CORR, h->corr);
    memcpy(out + SL_FRAME_OFF_SENDER, h->sender, strlen(h->sender));
    sl_put_u32(out + SL_FRAME_OFF_PAYLOAD_CRC, len ? sl_crc32(payload, len) : 0);
    sl_put_u32(out + SL_FRAME_OFF_HEADER_CRC, sl_crc32(out, SL_FRAME_OFF_HEADER_CRC));
    if (len) memcpy(out + SL_FRAME_HEADER_SIZE, payload, len);
    *out_len = SL_FRAME_HEADER_SIZE + len;
    return SL_OK;
}

/* ------------------------------------------------------------- decoding */

static sl_frame_reason refuse(sl_frame_reason r, sl_frame_header *h, const uint8_t **payload) {
    if (h) memset(h, 0, sizeof *h);
    if (payload) *payload = NULL;
    return r;
}

sl_frame_reason sl_frame_decode(const uint8_t *buf, size_t len, sl_frame_header *h,
                                const uint8_t **payload) {
    if (!buf || len < SL_FRAME_HEADER_SIZE) return refuse(SL_FRAME_ETRUNCATED, h, payload);
    if (sl_get_u32(buf + SL_FRAME_OFF_MAGIC) != SL_FRAME_MAGIC)
        return refuse(SL_FRAME_EMAGIC, h, payload);
    if (sl_get_u16(buf + SL_FRAME_OFF_VERSION) != SL_FRAME_VERSION)
        return refuse(SL_FRAME_EVERSION, h, payload);
    if (sl_get_u32(buf + SL_FRAME_OFF_HEADER_CRC) != sl_crc32(buf, SL_FRAME_OFF_HEADER_CRC))
        return refuse(SL_FRAME_EHEADERCRC, h, payload);
    uint16_t type = sl_get_u16(buf + SL_FRAME_OFF_TYPE);
    if (!sl_msg_type_known(type)) return refuse(SL_FRAME_ETYPE, h, payload);
    uint32_t flags = sl_get_u32(buf + SL_FRAME_OFF_FLAGS);
    if (flags & ~(uint32_t)SL_FLAG_KNOWN) return refuse(SL_FRAME_EFLAGS, h, payload);
    if (!sender_field_ok(buf + SL_FRAME_OFF_SENDER)) return refuse(SL_FRAME_ESENDER, h, payload);
    uint32_t plen = sl_get_u32(buf + SL_FRAME_OFF_LEN);
    if (plen > SL_FRAME_MAX_PAYLOAD) return refuse(SL_FRAME_EOVERSIZE, h, payload);
    if ((size_t)plen != len - SL_FRAME_HEADER_SIZE) return refuse(SL_FRAME_ELENGTH, h, payload);
    uint32_t pcrc = sl_get_u32(buf + SL_FRAME_OFF_PAYLOAD_CRC);
    if (pcrc != (plen ? sl_crc32(buf + SL_FRAME_HEADER_SIZE, plen) : 0u))
        return refuse(SL_FRAME_ECHECKSUM, h, payload);

    if (h) {
        memset(h, 0, sizeof *h);
        h->version = SL_FRAME_VERSION;
        h->type = type;
        h->flags = flags;
        h->payload_len = plen;
        h->seq = sl_get_u64(buf + SL_FRAME_OFF_SEQ);
        h->corr = sl_get_u64(buf + SL_FRAME_OFF_CORR);
        memcpy(h->sender, buf + SL_FRAME_OFF_SENDER, SL_MB_NAME_MAX); /* NUL-padded: checked */
        h->payload_crc = pcrc;
    }
    if (payload) *payload = plen ? buf + SL_FRAME_HEADER_SIZE : NULL;
    return SL_FRAME_OK;
}

/* ------------------------------------------------------- payload helpers */

size_t sl_frame_error_payload(uint8_t *out, size_t cap, uint32_t code, const char *text) {
    if (!out || cap < 4) return 0;
    sl_put_u32(out, code);
    size_t n = text ? strlen(text) : 0;
    if (n > cap - 4) n = cap - 4;
    if (n) memcpy(out + 4, text, n);
    return 4 + n;
}
