/*
 * helper_mbpeer.c — a small mailbox peer process for tests (test_mailbox's
 * restart test, tests/mailbox/test_python_mailbox.sh). Not a real actor:
 * no supervisor contract, just the mailbox.
 *
 *   helper_mbpeer RUN_DIR NAME serve [SECONDS]
 *       bind NAME, print "ready" on stdout, answer PING/ECHO, reply to user
 *       type 0x8001 with the payload upper-cased, reply to any other request
 *       with an ERROR; on STOP acknowledge (if asked) and exit 0; exit 3
 *       after SECONDS (default 30) if nobody stops it.
 *   helper_mbpeer RUN_DIR NAME request TO TYPE TEXT [TIMEOUT_MS]
 *       one request; prints "TYPE_NAME PAYLOAD" of the reply; exit 0 on a
 *       reply, 1 on an error reply, 4 on timeout, 5 on another failure.
 *   helper_mbpeer RUN_DIR NAME ping TO SEQ [TIMEOUT_MS]
 *       PING with u64 SEQ (waiting TIMEOUT_MS, default 3000); exit 0 when
 *       the PONG echoes it.
 */
#include "mailbox.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_UPPER 0x8001

static int serve(sl_mailbox *mb, int seconds) {
    printf("ready\n");
    fflush(stdout);
    uint64_t end = sl_now_ms() + (uint64_t)seconds * 1000;
    while (sl_now_ms() < end) {
        sl_msg m;
        sl_err err = sl_mailbox_recv(mb, &m, 100);
        if (err == SL_ETIMEDOUT || err == SL_EAGAIN) continue;
        if (err) return 5;
        if (sl_mailbox_handle_builtin(mb, &m)) {
        } else if (m.type == SL_MSG_STOP) {
            if (m.corr) sl_mailbox_reply(mb, &m, SL_MSG_STOP, NULL, 0);
            sl_msg_fini(&m);
            return 0;
        } else if (m.type == USER_UPPER && !(m.flags & SL_FLAG_REPLY)) {
            for (uint32_t i = 0; i < m.len; i++) m.payload[i] = (uint8_t)toupper(m.payload[i]);
            sl_mailbox_reply(mb, &m, USER_UPPER, m.payload, m.len);
        } else if (m.corr && !(m.flags & SL_FLAG_REPLY)) {
            sl_mailbox_reply_error(mb, &m, SL_EUNSUPPORTED, "helper_mbpeer: no handler");
        }
        sl_msg_fini(&m);
    }
    return 3;
}

static int request(sl_mailbox *mb, const char *to, const char *type, const char *text, int tmo) {
    char *end;
    unsigned long t = strtoul(type, &end, 0);
    if (*end || t > 0xffff) return 2;
    sl_msg r;
    sl_err err = sl_mailbox_request(mb, to, (uint16_t)t, text, strlen(text), &r, tmo);
    if (err == SL_ETIMEDOUT) return 4;
    if (err) {
        fprintf(stderr, "request: %s\n", sl_strerror(err));
        return 5;
    }
    uint32_t code = 0;
    bool is_err = sl_msg_is_error(&r, &code);
    if (is_err) printf("%s %u %s\n", sl_msg_type_name(r.type), code, r.len > 4 ? (char *)r.payload + 4 : "");
    else printf("%s %s\n", sl_msg_type_name(r.type), r.payload ? (char *)r.payload : "");
    sl_msg_fini(&r);
    return is_err ? 1 : 0;
}

static int ping(sl_mailbox *mb, const char *to, uint64_t seq, int tmo) {
    uint8_t p[8];
    sl_put_u64(p, seq);
    sl_msg r;
    sl_err err = sl_mailbox_request(mb, to, SL_MSG_PING, p, 8, &r, tmo);
    if (err) {
        fprintf(stderr, "ping: %s\n", sl_strerror(err));
        return err == SL_ETIMEDOUT ? 4 : 5;
    }
    int ok = r.type == SL_MSG_PONG && r.len == 8 && sl_get_u64(r.payload) == seq;
    printf("%s %llu\n", sl_msg_type_name(r.type),
           (unsigned long long)(r.len == 8 ? sl_get_u64(r.payload) : 0));
    sl_msg_fini(&r);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: helper_mbpeer RUN_DIR NAME serve|request|ping ...\n");
        return 2;
    }
    sl_log_init(argv[2], SL_LOG_WARN);
    sl_mailbox *mb;
    sl_err err = sl_mailbox_open(argv[1], argv[2], &mb);
    if (err) {
        fprintf(stderr, "open: %s\n", sl_strerror(err));
        return 5;
    }
    int rc = 2;
    if (!strcmp(argv[3], "serve")) rc = serve(mb, argc > 4 ? atoi(argv[4]) : 30);
    else if (!strcmp(argv[3], "request") && argc >= 7)
        rc = request(mb, argv[4], argv[5], argv[6], argc > 7 ? atoi(argv[7]) : 3000);
    else if (!strcmp(argv[3], "ping") && argc >= 6)
        rc = ping(mb, argv[4], strtoull(argv[5], NULL, 0), argc > 6 ? atoi(argv[6]) : 3000);
    sl_mailbox_close(mb);
    return rc;
}
