/*
 * control.c — nng control plane (REQ/REP) and heartbeats
 * (SURVEYOR/RESPONDENT). See control.h. Only transport and validation of
 * what arrives; no command semantics.
 */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/protocol/survey0/respond.h>
#include <nng/protocol/survey0/survey.h>

#define UNIX_PATH_MAX_ 107 /* sun_path holds 108 bytes with the NUL */
#define HB_ANSWER_MAX 64

/* ================================================================ helpers */

static sl_err endpoint(const char *run_dir, const char *leaf, char *out, size_t cap) {
    if (!run_dir || !out || !*run_dir) return SL_EINVAL;
    size_t path_len = strlen(run_dir) + 1 + strlen(leaf);
    if (path_len > UNIX_PATH_MAX_) return SL_ERANGE;
    int n = snprintf(out, cap, "ipc://%s/%s", run_dir, leaf);
    if (n < 0 || (size_t)n >= cap) return SL_ERANGE;
    return SL_OK;
}

sl_err sl_control_endpoint(const char *run_dir, char *out, size_t cap) {
    return endpoint(run_dir, "control", out, cap);
}

sl_err sl_hb_endpoint(const char *run_dir, char *out, size_t cap) {
    return endpoint(run_dir, "heartbeat", out, cap);
}

static sl_err nng_to_sl(int rv) {
    switch (rv) {
    case 0: return SL_OK;
    case NNG_EAGAIN: return SL_EAGAIN;
    case NNG_ETIMEDOUT: return SL_ETIMEDOUT;
    case NNG_ENOMEM: return SL_ENOMEM;
    case NNG_EADDRINUSE: return SL_EFULL;
    case NNG_ECONNREFUSED:
    case NNG_ENOENT:
    case NNG_ECLOSED:
    case NNG_ECONNSHUT:
    case NNG_ECONNRESET: return SL_ECLOSED;
    case NNG_EMSGSIZE: return SL_EPROTO;
    default: return SL_EIO;
    }
}

static int sock_fd(nng_socket s, const char *opt) {
    int fd = -1;
    if (nng_socket_get_int(s, opt, &fd) != 0) return -1;
    return fd;
}

/* Listen a fresh socket of kind OPEN at ENDPOINT. */
static sl_err listen_at(int (*open)(nng_socket *), const char *ep, size_t recvmax, nng_socket *out) {
    nng_socket s;
    int rv = open(&s);
    if (rv != 0) return nng_to_sl(rv);
    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, recvmax);
    rv = nng_listen(s, ep, NULL, 0);
    if (rv != 0) {
        nng_close(s);
        return nng_to_sl(rv);
    }
    *out = s;
    return SL_OK;
}

/* ================================================================ control */

struct sl_control_server {
    nng_socket sock;
    bool pending; /* a request was received and awaits its reply */
};

sl_err sl_control_server_open(const char *run_dir, sl_control_server **out) {
    if (!out) return SL_EINVAL;
    *out = NULL;
    char ep[256];
    sl_err e = sl_control_endpoint(run_dir, ep, sizeof ep);
    if (e) return e;
    sl_control_server *srv = calloc(1, sizeof *srv);
    if (!srv) return SL_ENOMEM;
    e = listen_at(nng_rep0_open, ep, 64 * 1024, &srv->sock);
    if (e) {
        free(srv);
        return e;
    }
    /* Replies are sent blocking (nng 1.5 refuses some non-blocking sends)
     * but never wait long for a client that went away. */
    nng_socket_set_ms(srv->sock, NNG_OPT_SENDTIMEO, 500);
    *out = srv;
    return SL_OK;
}

void sl_control_server_close(sl_control_server *srv) {
    if (!srv) return;
    nng_close(srv->sock);
    free(srv);
}

int sl_control_server_fd(const sl_control_server *srv) {
    return srv ? sock_fd(srv->sock, NNG_OPT_RECVFD) : -1;
}

static void reply_raw(sl_control_server *srv, const char *text) {
    nng_send(srv->sock, (void *)text, strlen(text), 0);
    srv->pending = false;
}

sl_err sl_control_server_recv(sl_control_server *srv, char **req, uint64_t *bad) {
    if (!srv || !req) return SL_EINVAL;
    *req = NULL;
    for (;;) {
        char *buf = NULL;
        size_t len = 0;
        int rv = nng_recv(srv->sock, &buf, &len, NNG_FLAG_ALLOC | NNG_FLAG_NONBLOCK);
        if (rv != 0) return rv == NNG_EAGAIN ? SL_EAGAIN : nng_to_sl(rv);
        srv->pending = true;
        /* Requests are one line of text; a trailing NUL or newline is
         * tolerated (clients in other languages send either). */
        size_t n = len;
        while (n > 0 && (buf[n - 1] == '\0' || buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
        const char *why = NULL;
        if (n == 0) why = "empty request";
        else if (n > SL_CONTROL_MAX_REQUEST) why = "request too long";
        else if (memchr(buf, '\0', n)) why = "request is not text";
        if (why) {
            nng_free(buf, len);
            if (bad) (*bad)++;
            char msg[96];
            snprintf(msg, sizeof msg, "{\"ok\":false,\"error\":\"%s\"}", why);
            reply_raw(srv, msg);
            continue;
        }
        char *s = malloc(n + 1);
        if (!s) {
            nng_free(buf, len);
            reply_raw(srv, "{\"ok\":false,\"error\":\"out of memory\"}");
            return SL_ENOMEM;
        }
        memcpy(s, buf, n);
        s[n] = '\0';
        nng_free(buf, len);
        *req = s;
        return SL_OK;
    }
}

sl_err sl_control_server_reply(sl_control_server *srv, const char *reply) {
    if (!srv || !reply) return SL_EINVAL;
    size_t len = strlen(reply);
    if (len > SL_CONTROL_MAX_REPLY) return SL_ERANGE;
    if (!srv->pending) return SL_EIO;
    srv->pending = false;
    int rv = nng_send(srv->sock, (void *)reply, len, 0); /* bounded by SENDTIMEO */
    return rv ? SL_EIO : SL_OK;
}

sl_err sl_control_request(const char *run_dir, const char *request, char **reply, int timeout_ms) {
    if (!run_dir || !request || !reply) return SL_EINVAL;
    *reply = NULL;
    size_t rlen = strlen(request);
    if (rlen == 0) return SL_EINVAL;
    if (rlen > SL_CONTROL_MAX_REQUEST) return SL_ERANGE;
    char ep[256];
    sl_err e = sl_control_endpoint(run_dir, ep, sizeof ep);
    if (e) return e;
    if (timeout_ms <= 0) timeout_ms = SL_CONTROL_TIMEOUT_MS;

    nng_socket s;
    int rv = nng_req0_open(&s);
    if (rv) return nng_to_sl(rv);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, SL_CONTROL_MAX_REPLY + 16);
    /* Never resend: commands such as "inject NAME kill" are not idempotent,
     * and no resend means no REQ retry timer (see the surveyor below). */
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    /* A synchronous dial fails at once when nobody listens: that is the
     * "no supervisor here" answer, not a timeout. */
    rv = nng_dial(s, ep, NULL, 0);
    if (rv) {
        nng_close(s);
        return rv == NNG_ENOENT || rv == NNG_ECONNREFUSED ? SL_ECLOSED : nng_to_sl(rv);
    }
    rv = nng_send(s, (void *)request, rlen, 0);
    if (rv) {
        nng_close(s);
        return nng_to_sl(rv);
    }
    char *buf = NULL;
    size_t len = 0;
    rv = nng_recv(s, &buf, &len, NNG_FLAG_ALLOC);
    nng_close(s);
    if (rv) return nng_to_sl(rv);
    if (len > SL_CONTROL_MAX_REPLY || memchr(buf, '\0', len)) {
        nng_free(buf, len);
        return SL_EPROTO;
    }
    char *out = malloc(len + 1);
    if (!out) {
        nng_free(buf, len);
        return SL_ENOMEM;
    }
    memcpy(out, buf, len);
    out[len] = '\0';
    nng_free(buf, len);
    *reply = out;
    return SL_OK;
}

/* ============================================================= heartbeats */

/* The surveyor is nng's raw SURVEYOR: we put the survey id in the header
 * and check the deadline ourselves. The cooked surveyor arms an nng timer
 * per survey, and nng 1.5.2 deadlocks when that timer fires while the next
 * survey is being sent (the send holds the socket lock and waits for the
 * timer; the timer's callback waits for the socket lock). Seen in the
 * supervisor within ~70 restarts at a 10 ms heartbeat. */
struct sl_hb_surveyor {
    nng_socket sock;
    uint64_t bad;
    uint32_t survey;      /* id of the current survey, 31 bits */
    int64_t deadline_ns;  /* answers to it are taken until then */
};

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

sl_err sl_hb_surveyor_open(const char *run_dir, sl_hb_surveyor **out) {
    if (!out) return SL_EINVAL;
    *out = NULL;
    char ep[256];
    sl_err e = sl_hb_endpoint(run_dir, ep, sizeof ep);
    if (e) return e;
    sl_hb_surveyor *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    e = listen_at(nng_surveyor0_open_raw, ep, 4096, &s->sock);
    if (e) {
        free(s);
        return e;
    }
    *out = s;
    return SL_OK;
}

void sl_hb_surveyor_close(sl_hb_surveyor *s) {
    if (!s) return;
    nng_close(s->sock);
    free(s);
}

sl_err sl_hb_survey(sl_hb_surveyor *s, int deadline_ms) {
    if (!s || deadline_ms < 1) return SL_EINVAL;
    s->survey = (s->survey + 1) & 0x7fffffffu;
    if (s->survey == 0) s->survey = 1;
    s->deadline_ns = mono_ns() + (int64_t)deadline_ms * 1000000;
    char body[16];
    int n = snprintf(body, sizeof body, "hb %u", s->survey);
    nng_msg *m = NULL;
    if (nng_msg_alloc(&m, 0) != 0) return SL_EIO;
    /* a backtrace of one hop: the id with the high bit set (survey0) */
    if (nng_msg_header_append_u32(m, s->survey | 0x80000000u) != 0 ||
        nng_msg_append(m, body, (size_t)n) != 0) {
        nng_msg_free(m);
        return SL_EIO;
    }
    int rv = nng_sendmsg(s->sock, m, NNG_FLAG_NONBLOCK);
    if (rv) nng_msg_free(m);
    return rv ? SL_EIO : SL_OK;
}

int sl_hb_surveyor_fd(const sl_hb_surveyor *s) {
    return s ? sock_fd(s->sock, NNG_OPT_RECVFD) : -1;
}

/* "NAME PID": NAME of [A-Za-z0-9_.-] (1..39, not starting with '.'), PID a
 * positive decimal. */
static bool parse_answer(const char *buf, size_t len, char name[SL_HB_NAME_MAX], pid_t *pid) {
    if (len == 0 || len >= HB_ANSWER_MAX) return false;
    size_t i = 0;
    while (i < len && buf[i] != ' ') {
        char c = buf[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok || i >= SL_HB_NAME_MAX - 1) return false;
        i++;
    }
    if (i == 0 || buf[0] == '.' || i == len) return false;
    size_t nl = i++;
    if (i == len) return false;
    long long v = 0;
    for (; i < len; i++) {
        if (buf[i] < '0' || buf[i] > '9') return false;
        v = v * 10 + (buf[i] - '0');
        if (v > 0x7fffffff) return false;
    }
    if (v <= 0) return false;
    memcpy(name, buf, nl);
    name[nl] = '\0';
    *pid = (pid_t)v;
    return true;
}

sl_err sl_hb_collect(sl_hb_surveyor *s, char name[SL_HB_NAME_MAX], pid_t *pid) {
    if (!s || !name || !pid) return SL_EINVAL;
    for (;;) {
        nng_msg *m = NULL;
        int rv = nng_recvmsg(s->sock, &m, NNG_FLAG_NONBLOCK);
        if (rv == NNG_EAGAIN || rv == NNG_ESTATE || rv == NNG_ETIMEDOUT) return SL_EAGAIN;
        if (rv) return SL_EIO;
        uint32_t id = 0;
        bool hdr = nng_msg_header_len(m) == 4 && nng_msg_header_trim_u32(m, &id) == 0;
        bool current = hdr && s->survey && id == (s->survey | 0x80000000u) &&
                       mono_ns() <= s->deadline_ns;
        bool ok = current && parse_answer(nng_msg_body(m), nng_msg_len(m), name, pid);
        nng_msg_free(m);
        if (ok) return SL_OK;
        if (!hdr || (current && !ok)) s->bad++; /* stale answers are not malformed */
    }
}

uint64_t sl_hb_surveyor_bad(const sl_hb_surveyor *s) { return s ? s->bad : 0; }

struct sl_hb_responder {
    nng_socket sock;
    char answer[HB_ANSWER_MAX];
    size_t answer_len;
};

static bool name_ok(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= SL_HB_NAME_MAX || name[0] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

sl_err sl_hb_responder_open(const char *run_dir, const char *name, sl_hb_responder **out) {
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!name_ok(name)) return SL_EINVAL;
    char ep[256];
    sl_err e = sl_hb_endpoint(run_dir, ep, sizeof ep);
    if (e) return e;
    sl_hb_responder *r = calloc(1, sizeof *r);
    if (!r) return SL_ENOMEM;
    int rv = nng_respondent0_open(&r->sock);
    if (rv) {
        free(r);
        return nng_to_sl(rv);
    }
    nng_socket_set_size(r->sock, NNG_OPT_RECVMAXSZ, 4096);
    /* Redial quickly: after a supervisor restart the survey resumes soon. */
    nng_socket_set_ms(r->sock, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(r->sock, NNG_OPT_RECONNMAXT, 500);
    nng_socket_set_ms(r->sock, NNG_OPT_SENDTIMEO, 100);
    rv = nng_dial(r->sock, ep, NULL, NNG_FLAG_NONBLOCK);
    if (rv) {
        nng_close(r->sock);
        free(r);
        return nng_to_sl(rv);
    }
    r->answer_len = (size_t)snprintf(r->answer, sizeof r->answer, "%s %ld", name, (long)getpid());
    *out = r;
    return SL_OK;
}

void sl_hb_responder_close(sl_hb_responder *r) {
    if (!r) return;
    nng_close(r->sock);
    free(r);
}

int sl_hb_responder_fd(const sl_hb_responder *r) {
    return r ? sock_fd(r->sock, NNG_OPT_RECVFD) : -1;
}

int sl_hb_respond(sl_hb_responder *r) {
    if (!r) return 0;
    int n = 0;
    for (;;) {
        char *buf = NULL;
        size_t len = 0;
        int rv = nng_recv(r->sock, &buf, &len, NNG_FLAG_ALLOC | NNG_FLAG_NONBLOCK);
        if (rv) break;
        nng_free(buf, len);
        /* The survey body is not trusted or needed: answering is the whole
         * protocol. */
        /* Not NNG_FLAG_NONBLOCK: nng 1.5's respondent refuses a
         * non-blocking send outright; SENDTIMEO bounds the wait. */
        if (nng_send(r->sock, r->answer, r->answer_len, 0) == 0) n++;
    }
    return n;
}
