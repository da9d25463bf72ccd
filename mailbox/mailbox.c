/*
 * mailbox.c — ZeroMQ mailboxes (mailbox.h, PROTOCOL.md §3).
 *
 * One ROUTER bound at ipc://RUN_DIR/mb/NAME receives; each ZeroMQ message
 * on it must be exactly [routing id][frame]. One DEALER per peer sends one
 * frame per message (ZMQ_IMMEDIATE, so a send to an absent peer fails
 * instead of queueing forever). Replies go to the sender's own ROUTER by
 * name, never back through the routing id. Not thread-safe: one mailbox per
 * thread.
 */
#include "mailbox.h"
#include "faults.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#define SUN_PATH_MAX ((int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define DEALER_LINGER_MS 100
#define EP_MAX 256 /* "ipc://" + a socket path, or "tcp://ADDR:PORT" */
#define RECONNECT_IVL_MS 10
#define RECONNECT_IVL_MAX_MS 100
/* Frames bigger than this are cut by ZeroMQ itself (the peer is
 * disconnected, nothing is counted); between SL_FRAME_MAX_SIZE and this
 * they are received, refused and counted. */
#define ROUTER_MAXMSGSIZE (4 * (int64_t)SL_FRAME_MAX_SIZE)

typedef struct peer {
    char name[SL_MB_NAME_MAX];
    char ep[EP_MAX]; /* tcp: the endpoint it is connected to */
    void *sock; /* DEALER, NULL when the slot is free */
    uint64_t last_use;
} peer;

typedef struct qnode {
    sl_msg msg;
    struct qnode *next;
} qnode;

struct sl_mailbox {
    void *ctx;
    void *router;
    char name[SL_MB_NAME_MAX];
    char mb_dir[SUN_PATH_MAX + 1]; /* RUN_DIR/mb */
    char path[SUN_PATH_MAX + 1]; /* RUN_DIR/mb/NAME */
    char endpoint[EP_MAX];
    peer peers[SL_MAILBOX_PEERS_MAX];
    uint64_t use_clock;
    uint64_t seq;
    uint64_t corr_async;   /* sl_mailbox_new_corr */
    uint64_t corr_request; /* sl_mailbox_request, bit 63 set */
    qnode *qhead, *qtail;
    int send_timeout_ms;
    sl_mailbox_stats st;
    bool warned[SL_FRAME_NREASONS];
    uint8_t *txbuf; /* SL_FRAME_MAX_SIZE */
    bool bound;
    /* transport tcp (SL_MB_TCP set): CURVE keys (Z85, 40 chars + NUL) */
    bool tcp;
    char tcp_addr[64];
    char server_pub[41], server_sec[41], client_pub[41], client_sec[41];
};

/* ------------------------------------------------------------------ msg */

void sl_msg_fini(sl_msg *msg) {
    if (!msg) return;
    free(msg->payload);
    memset(msg, 0, sizeof *msg);
}

bool sl_msg_is_error(const sl_msg *msg, uint32_t *code) {
    if (!msg || (msg->type != SL_MSG_ERROR && !(msg->flags & SL_FLAG_ERROR))) return false;
    if (code) *code = msg->len >= 4 ? sl_get_u32(msg->payload) : (uint32_t)SL_EPROTO;
    return true;
}

/* --------------------------------------------------------------- helpers */


/* Milliseconds left before DEADLINE (sl_now_ms value); -1 means forever. */
static int remaining_ms(int64_t deadline) {
    if (deadline < 0) return -1;
    int64_t left = deadline - (int64_t)sl_now_ms();
    return left > 0 ? (int)(left > INT_MAX ? INT_MAX : left) : 0;
}

static int64_t deadline_after(int timeout_ms) {
    return timeout_ms < 0 ? -1 : (int64_t)sl_now_ms() + timeout_ms;
}

/* Is a live process accepting on the unix socket at PATH?
 * 1: yes, 0: no (refused / absent), -1: PATH exists and is not a socket. */
static int socket_alive(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return 0;
    if (!S_ISSOCK(sb.st_mode)) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return rc == 0 ? 1 : 0;
}

static uint64_t random_u64(void) {
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v)
        v = sl_now_ns() ^ ((uint64_t)getpid() << 32);
    return v;
}

static void set_int(void *sock, int opt, int v) { zmq_setsockopt(sock, opt, &v, sizeof v); }

/* ------------------------------------------------------------- tcp + curve */

/* RUN_DIR/curve.key: the run's CURVE server key pair, two Z85 lines
 * (public, secret). Must be a regular file of this user, mode 0600. */
static sl_err read_curve_key(const char *run_dir, char pub[41], char sec[41]) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", run_dir, SL_MB_CURVE_KEY_FILE) >= (int)sizeof path) return SL_ERANGE;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        sl_error("mailbox: transport tcp: cannot open %s: %s", path, strerror(errno));
        return SL_EIO;
    }
    struct stat sb;
    char buf[128];
    ssize_t n = -1;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid() && !(sb.st_mode & 077))
        n = read(fd, buf, sizeof buf - 1);
    else
        sl_error("mailbox: %s must be a file of this user with mode 0600", path);
    close(fd);
    if (n < 0) return SL_EIO;
    buf[n] = 0;
    if (n != 82 || buf[40] != '\n' || buf[81] != '\n') {
        sl_error("mailbox: %s: expected two lines of 40 Z85 characters", path);
        return SL_EINVAL;
    }
    memcpy(pub, buf, 40), pub[40] = 0;
    memcpy(sec, buf + 41, 40), sec[40] = 0;
    uint8_t raw[32];
    if (!zmq_z85_decode(raw, pub) || !zmq_z85_decode(raw, sec)) {
        sl_error("mailbox: %s: not Z85 keys", path);
        return SL_EINVAL;
    }
    return SL_OK;
}

sl_err sl_mailbox_curve_keygen(const char *run_dir) {
    char pub[41], sec[41], path[PATH_MAX], tmp[PATH_MAX + 8];
    if (!run_dir) return SL_EINVAL;
    if (zmq_curve_keypair(pub, sec) != 0) {
        sl_error("mailbox: zmq_curve_keypair: %s (libzmq without CURVE?)", zmq_strerror(zmq_errno()));
        return SL_EUNSUPPORTED;
    }
    if (snprintf(path, sizeof path, "%s/%s", run_dir, SL_MB_CURVE_KEY_FILE) >= (int)sizeof path) return SL_ERANGE;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return SL_EIO;
    char line[84];
    int n = snprintf(line, sizeof line, "%s\n%s\n", pub, sec);
    bool ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    memset(line, 0, sizeof line);
    memset(sec, 0, sizeof sec);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return SL_EIO;
    }
    return SL_OK;
}

/* The endpoint file RUN_DIR/mb/NAME.tcp of mailbox NAME: "tcp://A:P\n".
 * Returns 1 with EP filled, 0 when absent or malformed. */
static int read_tcp_endpoint(const char *mb_dir, const char *name, char *ep, size_t cap) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.tcp", mb_dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 7 || buf[n - 1] != '\n' || strncmp(buf, "tcp://", 6) != 0) return 0;
    buf[n - 1] = 0;
    if (strlen(buf) >= cap || strpbrk(buf, " \t\n")) return 0;
    strcpy(ep, buf);
    return 1;
}

static sl_err write_tcp_endpoint(const char *mb_dir, const char *name, const char *ep) {
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/%s.tcp", mb_dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return SL_EIO;
    char line[160];
    int n = snprintf(line, sizeof line, "%s\n", ep);
    bool ok = n > 0 && n < (int)sizeof line && write(fd, line, (size_t)n) == n;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return SL_EIO;
    }
    return SL_OK;
}

/* Is something accepting TCP connections at EP ("tcp://A:P")? 1/0. */
static int tcp_alive(const char *ep) {
    char host[128];
    const char *hp = ep + 6, *colon = strrchr(hp, ':');
    if (!colon || (size_t)(colon - hp) >= sizeof host) return 0;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return rc == 0;
}

/* Bind MB's ROUTER on tcp with CURVE (server side): the port of a
 * predecessor of the same name if its endpoint file names one (peers keep
 * their connections), else a free one, recorded in RUN_DIR/mb/NAME.tcp. */
static sl_err bind_tcp(sl_mailbox *mb) {
    set_int(mb->router, ZMQ_CURVE_SERVER, 1);
    zmq_setsockopt(mb->router, ZMQ_CURVE_SECRETKEY, mb->server_sec, 40);
    char ep[EP_MAX];
    bool have = read_tcp_endpoint(mb->mb_dir, mb->name, ep, sizeof ep);
    char want[EP_MAX];
    snprintf(want, sizeof want, "tcp://%s:", mb->tcp_addr);
    if (have && strncmp(ep, want, strlen(want)) == 0 && zmq_bind(mb->router, ep) == 0) {
        snprintf(mb->endpoint, sizeof mb->endpoint, "%s", ep);
        return SL_OK;
    }
    if (have && zmq_errno() == EADDRINUSE && tcp_alive(ep)) {
        sl_error("mailbox: %s (%s) is bound by a live process", mb->name, ep);
        return SL_EFULL;
    }
    snprintf(want, sizeof want, "tcp://%s:*", mb->tcp_addr);
    if (zmq_bind(mb->router, want) != 0) {
        sl_error("mailbox: bind %s: %s", want, zmq_strerror(zmq_errno()));
        return SL_EIO;
    }
    size_t l = sizeof ep;
    if (zmq_getsockopt(mb->router, ZMQ_LAST_ENDPOINT, ep, &l) != 0) return SL_EIO;
    snprintf(mb->endpoint, sizeof mb->endpoint, "%s", ep);
    return write_tcp_endpoint(mb->mb_dir, mb->name, ep);
}

/* ------------------------------------------------------------ open/close */

sl_err sl_mailbox_open(const char *run_dir, const char *name, sl_mailbox **out) {
    if (out) *out = NULL;
    if (!run_dir || !name || !out || !run_dir[0]) return SL_EINVAL;
    if (!sl_mb_name_valid(name)) {
        sl_error("mailbox: invalid name '%s' (1..%d of [A-Za-z0-9_.-])", name, SL_MB_NAME_MAX - 1);
        return SL_EINVAL;
    }
    sl_mailbox *mb = calloc(1, sizeof *mb);
    if (!mb) return SL_ENOMEM;
    sl_err err = SL_EIO;
    snprintf(mb->name, sizeof mb->name, "%s", name);
    int n = snprintf(mb->mb_dir, sizeof mb->mb_dir, "%s/mb", run_dir);
    int m = snprintf(mb->path, sizeof mb->path, "%s/mb/%s", run_dir, name);
    if (n < 0 || n >= (int)sizeof mb->mb_dir || m < 0 || m >= (int)sizeof mb->path) {
        sl_error("mailbox: socket path %s/mb/%s is longer than %d bytes", run_dir, name,
                 SUN_PATH_MAX);
        err = SL_ERANGE;
        goto fail;
    }
    snprintf(mb->endpoint, sizeof mb->endpoint, "ipc://%s", mb->path);
    mb->send_timeout_ms = SL_MAILBOX_SEND_TIMEOUT_MS;
    mb->corr_async = random_u64() & ~SL_CORR_REQUEST_BIT;
    mb->corr_request = random_u64() | SL_CORR_REQUEST_BIT;

    if (mkdir(mb->mb_dir, 0700) != 0 && errno != EEXIST) {
        sl_error("mailbox: mkdir %s: %s", mb->mb_dir, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (stat(mb->mb_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        sl_error("mailbox: %s is not a directory", mb->mb_dir);
        goto fail;
    }
    const char *tcp = getenv(SL_ENV_MB_TCP);
    if (tcp && *tcp) {
        if (strlen(tcp) >= sizeof mb->tcp_addr || strpbrk(tcp, ":/ *")) {
            sl_error("mailbox: %s='%s' is not an address", SL_ENV_MB_TCP, tcp);
            err = SL_EINVAL;
            goto fail;
        }
        mb->tcp = true;
        snprintf(mb->tcp_addr, sizeof mb->tcp_addr, "%s", tcp);
        if ((err = read_curve_key(run_dir, mb->server_pub, mb->server_sec)) != SL_OK) goto fail;
        err = SL_EIO;
        if (zmq_curve_keypair(mb->client_pub, mb->client_sec) != 0) goto fail;
        goto sockets;
    }
    /* ZeroMQ would silently unlink and steal a live mailbox's socket; refuse
     * instead, and clear only the socket of a dead predecessor. */
    int alive = socket_alive(mb->path);
    if (alive == 1) {
        sl_error("mailbox: %s is bound by a live process", mb->path);
        err = SL_EFULL;
        goto fail;
    }
    if (alive < 0) {
        sl_error("mailbox: %s exists and is not a socket; not removing it", mb->path);
        goto fail;
    }
    if (unlink(mb->path) != 0 && errno != ENOENT) {
        sl_error("mailbox: unlink stale %s: %s", mb->path, strerror(errno));
        goto fail;
    }

sockets:
    mb->txbuf = malloc(SL_FRAME_MAX_SIZE);
    mb->ctx = zmq_ctx_new();
    if (!mb->txbuf || !mb->ctx) {
        err = SL_ENOMEM;
        goto fail;
    }
    zmq_ctx_set(mb->ctx, ZMQ_BLOCKY, 0); /* sockets default to linger 0 */
    mb->router = zmq_socket(mb->ctx, ZMQ_ROUTER);
    if (!mb->router) {
        sl_error("mailbox: zmq_socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    set_int(mb->router, ZMQ_LINGER, 0);
    set_int(mb->router, ZMQ_RCVHWM, SL_MAILBOX_RCVHWM);
    int64_t maxsz = ROUTER_MAXMSGSIZE;
    zmq_setsockopt(mb->router, ZMQ_MAXMSGSIZE, &maxsz, sizeof maxsz);
    if (mb->tcp) {
        if ((err = bind_tcp(mb)) != SL_OK) goto fail;
        mb->bound = true;
        *out = mb;
        return SL_OK;
    }
    mode_t old = umask(0077); /* the socket file is for this user only */
    int rc = zmq_bind(mb->router, mb->endpoint);
    umask(old);
    if (rc != 0) {
        sl_error("mailbox: bind %s: %s", mb->endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    mb->bound = true;
    *out = mb;
    return SL_OK;
fail:
    sl_mailbox_close(mb);
    return err;
}

static void peer_close(peer *p) {
    if (p->sock) zmq_close(p->sock);
    memset(p, 0, sizeof *p);
}

void sl_mailbox_close(sl_mailbox *mb) {
    if (!mb) return;
    for (int i = 0; i < SL_MAILBOX_PEERS_MAX; i++) peer_close(&mb->peers[i]);
    if (mb->router) {
        if (mb->bound) zmq_unbind(mb->router, mb->endpoint);
        zmq_close(mb->router);
    }
    if (mb->ctx) zmq_ctx_term(mb->ctx);
    /* ZeroMQ does not always remove the file; remove it unless someone
     * else has bound the name since. */
    if (mb->bound && !mb->tcp && socket_alive(mb->path) == 0) unlink(mb->path);
    memset(mb->server_sec, 0, sizeof mb->server_sec);
    memset(mb->client_sec, 0, sizeof mb->client_sec);
    for (qnode *q = mb->qhead, *next; q; q = next) {
        next = q->next;
        sl_msg_fini(&q->msg);
        free(q);
    }
    free(mb->txbuf);
    free(mb);
}

const char *sl_mailbox_name(const sl_mailbox *mb) { return mb ? mb->name : ""; }
const char *sl_mailbox_endpoint(const sl_mailbox *mb) { return mb ? mb->endpoint : ""; }

void sl_mailbox_set_send_timeout(sl_mailbox *mb, int timeout_ms) {
    if (mb) mb->send_timeout_ms = timeout_ms < 0 ? 0 : timeout_ms;
}

uint64_t sl_mailbox_new_corr(sl_mailbox *mb) {
    uint64_t c;
    do c = ++mb->corr_async & ~SL_CORR_REQUEST_BIT;
    while (c == 0);
    return c;
}

static uint64_t new_request_corr(sl_mailbox *mb) {
    return ++mb->corr_request | SL_CORR_REQUEST_BIT;
}

void sl_mailbox_stats_get(const sl_mailbox *mb, sl_mailbox_stats *out) {
    if (!out) return;
    if (!mb) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = mb->st;
}

/* ------------------------------------------------------------------ send */

/* The cached DEALER for TO, created (and the least recently used one
 * evicted) when missing. */
static peer *peer_get(sl_mailbox *mb, const char *to) {
    peer *free_slot = NULL, *lru = NULL;
    for (int i = 0; i < SL_MAILBOX_PEERS_MAX; i++) {
        peer *p = &mb->peers[i];
        if (p->sock && !strcmp(p->name, to)) {
            p->last_use = ++mb->use_clock;
            return p;
        }
        if (!p->sock && !free_slot) free_slot = p;
        if (p->sock && (!lru || p->last_use < lru->last_use)) lru = p;
    }
    peer *p = free_slot ? free_slot : lru;
    if (!free_slot) peer_close(p);
    char ep[EP_MAX];
    if (mb->tcp) {
        if (!read_tcp_endpoint(mb->mb_dir, to, ep, sizeof ep)) return NULL; /* not there (yet) */
    } else {
        int n = snprintf(ep, sizeof ep, "ipc://%s/%s", mb->mb_dir, to);
        if (n < 0 || n - 6 > SUN_PATH_MAX) return NULL;
    }
    void *s = zmq_socket(mb->ctx, ZMQ_DEALER);
    if (!s) return NULL;
    if (mb->tcp) {
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, mb->server_pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, mb->client_pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, mb->client_sec, 40);
    }
    set_int(s, ZMQ_LINGER, DEALER_LINGER_MS);
    set_int(s, ZMQ_SNDHWM, SL_MAILBOX_SNDHWM);
    set_int(s, ZMQ_IMMEDIATE, 1);
    set_int(s, ZMQ_RECONNECT_IVL, RECONNECT_IVL_MS);
    set_int(s, ZMQ_RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS);
    if (zmq_connect(s, ep) != 0) {
        sl_warn("mailbox %s: connect %s: %s", mb->name, ep, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    snprintf(p->name, sizeof p->name, "%s", to);
    snprintf(p->ep, sizeof p->ep, "%s", ep);
    p->sock = s;
    p->last_use = ++mb->use_clock;
    return p;
}

static sl_err send_frame(sl_mailbox *mb, const char *to, size_t n, int timeout_ms) {
    peer *p = peer_get(mb, to);
    if (!p) return mb->tcp ? SL_ECLOSED : SL_EIO; /* tcp: no endpoint file yet */
    int64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        if (zmq_send(p->sock, mb->txbuf, n, ZMQ_DONTWAIT) == (int)n) return SL_OK;
        int e = zmq_errno();
        if (e == EINTR) continue;
        if (e != EAGAIN) {
            sl_warn("mailbox %s: send to %s: %s", mb->name, to, zmq_strerror(e));
            return SL_EIO;
        }
        int left = remaining_ms(deadline);
        if (left == 0) break;
        zmq_pollitem_t it = {.socket = p->sock, .events = ZMQ_POLLOUT};
        if (zmq_poll(&it, 1, left) < 0 && zmq_errno() != EINTR) return SL_EIO;
        if (!(it.revents & ZMQ_POLLOUT) && remaining_ms(deadline) == 0) break;
    }
    if (mb->tcp) {
        /* a peer restarted on another port: connect anew on the next send */
        char ep[EP_MAX];
        if (!read_tcp_endpoint(mb->mb_dir, to, ep, sizeof ep) || strcmp(ep, p->ep) != 0) {
            peer_close(p);
            return SL_ECLOSED;
        }
        return tcp_alive(ep) ? SL_EFULL : SL_ECLOSED;
    }
    /* Tell "nobody there" from "there but not draining". */
    char path[sizeof mb->mb_dir + SL_MB_NAME_MAX + 2];
    snprintf(path, sizeof path, "%s/%s", mb->mb_dir, to);
    if (socket_alive(path) != 1) {
        sl_debug("mailbox %s: peer %s is absent", mb->name, to);
        return SL_ECLOSED;
    }
    sl_debug("mailbox %s: peer %s is not accepting (queue full)", mb->name, to);
    return SL_EFULL;
}

sl_err sl_mailbox_send_ex(sl_mailbox *mb, const char *to, uint16_t type, uint32_t flags,
                          uint64_t corr, const void *payload, size_t len) {
    if (!mb || !sl_mb_name_valid(to)) return SL_EINVAL;
    if (len > SL_FRAME_MAX_PAYLOAD) return SL_ERANGE;
    sl_frame_header h = {.type = type, .flags = flags, .seq = mb->seq + 1, .corr = corr};
    memcpy(h.sender, mb->name, sizeof h.sender);
    size_t n = 0;
    sl_err err = sl_frame_encode(&h, payload, len, mb->txbuf, SL_FRAME_MAX_SIZE, &n);
    if (err) return err;
    mb->seq++;
    sl_fault_action fa = sl_faults_net(); /* fault injection (faults.h); none in real runs */
    if (fa == SL_FAULT_DROP) {
        mb->st.sent++; /* as far as the sender knows, it went out */
        return SL_OK;
    }
    if (fa == SL_FAULT_CORRUPT) sl_faults_corrupt(mb->txbuf, n);
    err = send_frame(mb, to, n, mb->send_timeout_ms);
    if (err) {
        mb->st.send_failed++;
        return err;
    }
    mb->st.sent++;
    return SL_OK;
}

sl_err sl_mailbox_send(sl_mailbox *mb, const char *to, uint16_t type, const void *payload,
                       size_t len) {
    return sl_mailbox_send_ex(mb, to, type, 0, 0, payload, len);
}

sl_err sl_mailbox_reply(sl_mailbox *mb, const sl_msg *req, uint16_t type, const void *payload,
                        size_t len) {
    if (!mb || !req) return SL_EINVAL;
    if (req->flags & SL_FLAG_NOREPLY) return SL_OK;
    return sl_mailbox_send_ex(mb, req->sender, type, SL_FLAG_REPLY, req->corr, payload, len);
}

sl_err sl_mailbox_reply_error(sl_mailbox *mb, const sl_msg *req, uint32_t code,
                              const char *text) {
    if (!mb || !req) return SL_EINVAL;
    if (req->flags & SL_FLAG_NOREPLY) return SL_OK;
    uint8_t buf[1024];
    size_t n = sl_frame_error_payload(buf, sizeof buf, code, text);
    return sl_mailbox_send_ex(mb, req->sender, SL_MSG_ERROR, SL_FLAG_REPLY | SL_FLAG_ERROR,
                              req->corr, buf, n);
}

bool sl_mailbox_handle_builtin(sl_mailbox *mb, const sl_msg *msg) {
    if (!mb || !msg || (msg->flags & SL_FLAG_REPLY)) return false;
    uint16_t answer;
    if (msg->type == SL_MSG_PING) answer = SL_MSG_PONG;
    else if (msg->type == SL_MSG_ECHO) answer = SL_MSG_ECHO_REPLY;
    else return false;
    sl_err err = sl_mailbox_reply(mb, msg, answer, msg->payload, msg->len);
    if (err) sl_debug("mailbox %s: answer to %s failed: %s", mb->name, msg->sender, sl_strerror(err));
    return true;
}

/* --------------------------------------------------------------- receive */

static void drop(sl_mailbox *mb, sl_frame_reason r, size_t bytes) {
    mb->st.dropped[r]++;
    mb->st.dropped_total++;
    if (!mb->warned[r]) { /* once per reason; the counters carry the rest */
        mb->warned[r] = true;
        sl_warn("mailbox %s: dropped a %zu-byte frame: %s (further drops counted only)",
                mb->name, bytes, sl_frame_reason_name(r));
    }
}

/* Take one ZeroMQ message off the ROUTER without waiting.
 * SL_OK with *GOT = 1: *OUT is a valid message (owned by the caller);
 * SL_OK with *GOT = 0: nothing valid came (nothing there, or a frame was
 * dropped: the caller should look again). */
static sl_err pull_one(sl_mailbox *mb, sl_msg *out, int *got, bool *empty) {
    *got = 0;
    *empty = false;
    zmq_msg_t id, data;
    zmq_msg_init(&id);
    if (zmq_msg_recv(&id, mb->router, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&id);
        if (e == EAGAIN || e == EINTR) {
            *empty = true;
            return SL_OK;
        }
        sl_error("mailbox %s: recv: %s", mb->name, zmq_strerror(e));
        return SL_EIO;
    }
    bool more = zmq_msg_more(&id);
    zmq_msg_close(&id);
    if (!more) { /* a ROUTER always prefixes the routing id: cannot happen */
        drop(mb, SL_FRAME_ESHAPE, 0);
        return SL_OK;
    }
    zmq_msg_init(&data);
    if (zmq_msg_recv(&data, mb->router, 0) < 0) { /* parts arrive atomically */
        zmq_msg_close(&data);
        return SL_EIO;
    }
    if (zmq_msg_more(&data)) { /* extra parts: drain and refuse the lot */
        size_t total = zmq_msg_size(&data);
        do {
            zmq_msg_close(&data);
            zmq_msg_init(&data);
            if (zmq_msg_recv(&data, mb->router, 0) < 0) break;
            total += zmq_msg_size(&data);
        } while (zmq_msg_more(&data));
        zmq_msg_close(&data);
        drop(mb, SL_FRAME_ESHAPE, total);
        return SL_OK;
    }
    const uint8_t *buf = zmq_msg_data(&data);
    size_t len = zmq_msg_size(&data);
    sl_frame_header h;
    const uint8_t *payload;
    sl_frame_reason r = sl_frame_decode(buf, len, &h, &payload);
    if (r != SL_FRAME_OK) {
        zmq_msg_close(&data);
        drop(mb, r, len);
        return SL_OK;
    }
    uint8_t *copy = NULL;
    if (h.payload_len) {
        copy = malloc((size_t)h.payload_len + 1);
        if (!copy) {
            zmq_msg_close(&data);
            return SL_ENOMEM;
        }
        memcpy(copy, payload, h.payload_len);
        copy[h.payload_len] = 0;
    }
    zmq_msg_close(&data);
    out->type = h.type;
    out->flags = h.flags;
    out->seq = h.seq;
    out->corr = h.corr;
    memcpy(out->sender, h.sender, sizeof out->sender);
    out->len = h.payload_len;
    out->payload = copy;
    mb->st.received++;
    *got = 1;
    return SL_OK;
}

/* A reply that no waiting request can claim. */
static bool is_orphan_reply(const sl_msg *m) {
    return (m->flags & SL_FLAG_REPLY) && (m->corr == 0 || (m->corr & SL_CORR_REQUEST_BIT));
}

static void drop_late(sl_mailbox *mb, sl_msg *m) {
    mb->st.dropped_late_reply++;
    mb->st.dropped_total++;
    sl_debug("mailbox %s: dropped late reply %s from %s (corr %llu)", mb->name,
             sl_msg_type_name(m->type), m->sender, (unsigned long long)m->corr);
    sl_msg_fini(m);
}

static void enqueue(sl_mailbox *mb, sl_msg *m) {
    qnode *q = mb->st.queued < SL_MAILBOX_QUEUE_MAX ? malloc(sizeof *q) : NULL;
    if (!q) {
        mb->st.dropped_queue_full++;
        mb->st.dropped_total++;
        sl_warn("mailbox %s: queue full, dropped %s from %s", mb->name,
                sl_msg_type_name(m->type), m->sender);
        sl_msg_fini(m);
        return;
    }
    q->msg = *m;
    q->next = NULL;
    memset(m, 0, sizeof *m);
    if (mb->qtail) mb->qtail->next = q;
    else mb->qhead = q;
    mb->qtail = q;
    mb->st.queued++;
}

static bool dequeue(sl_mailbox *mb, sl_msg *out) {
    qnode *q = mb->qhead;
    if (!q) return false;
    mb->qhead = q->next;
    if (!mb->qhead) mb->qtail = NULL;
    mb->st.queued--;
    *out = q->msg;
    free(q);
    return true;
}

/* Wait for ROUTER input until DEADLINE. SL_OK: input (maybe), SL_ETIMEDOUT,
 * SL_EAGAIN (signal), SL_EIO. */
static sl_err wait_input(sl_mailbox *mb, int64_t deadline) {
    int left = remaining_ms(deadline);
    if (left == 0) return SL_ETIMEDOUT;
    zmq_pollitem_t it = {.socket = mb->router, .events = ZMQ_POLLIN};
    int rc = zmq_poll(&it, 1, left);
    if (rc < 0) return zmq_errno() == EINTR ? SL_EAGAIN : SL_EIO;
    return SL_OK;
}

sl_err sl_mailbox_recv(sl_mailbox *mb, sl_msg *msg, int timeout_ms) {
    if (msg) memset(msg, 0, sizeof *msg);
    if (!mb || !msg) return SL_EINVAL;
    if (dequeue(mb, msg)) return SL_OK;
    int64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        int got;
        bool empty;
        sl_err err = pull_one(mb, msg, &got, &empty);
        if (err) return err;
        if (got) {
            if (!is_orphan_reply(msg)) return SL_OK;
            drop_late(mb, msg);
            continue;
        }
        if (!empty) continue; /* a frame was dropped; look for the next */
        err = wait_input(mb, deadline);
        if (err) return err;
    }
}

sl_err sl_mailbox_request(sl_mailbox *mb, const char *to, uint16_t type, const void *payload,
                          size_t len, sl_msg *reply, int timeout_ms) {
    if (reply) memset(reply, 0, sizeof *reply);
    if (!mb || !reply) return SL_EINVAL;
    mb->st.requests++;
    int64_t deadline = deadline_after(timeout_ms);
    uint64_t corr = new_request_corr(mb);
    int saved = mb->send_timeout_ms;
    if (timeout_ms >= 0 && timeout_ms < saved) mb->send_timeout_ms = timeout_ms;
    sl_err err = sl_mailbox_send_ex(mb, to, type, 0, corr, payload, len);
    mb->send_timeout_ms = saved;
    if (err) return err;
    for (;;) {
        sl_msg m = {0};
        int got;
        bool empty;
        err = pull_one(mb, &m, &got, &empty);
        if (err) return err;
        if (got) {
            if ((m.flags & SL_FLAG_REPLY) && m.corr == corr) {
                *reply = m;
                return SL_OK;
            }
            if (is_orphan_reply(&m)) drop_late(mb, &m);
            else enqueue(mb, &m); /* for the next sl_mailbox_recv */
            continue;
        }
        if (!empty) continue;
        err = wait_input(mb, deadline);
        if (err == SL_ETIMEDOUT) mb->st.request_timeouts++;
        if (err) return err;
    }
}

/* --------------------------------------------------------------- polling */

int sl_mailbox_fd(const sl_mailbox *mb) {
    if (!mb) return -1;
    int fd = -1;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(mb->router, ZMQ_FD, &fd, &sz) != 0) return -1;
    return fd;
}

bool sl_mailbox_has_input(sl_mailbox *mb) {
    if (!mb) return false;
    if (mb->qhead) return true;
    int ev = 0;
    size_t sz = sizeof ev;
    if (zmq_getsockopt(mb->router, ZMQ_EVENTS, &ev, &sz) != 0) return false;
    return (ev & ZMQ_POLLIN) != 0;
}

int sl_mailbox_poll(sl_mailbox *mb, struct pollfd *fds, int nfds, int timeout_ms) {
    if (!mb || nfds < 0 || (nfds > 0 && !fds)) return -SL_EINVAL;
    zmq_pollitem_t stack[17], *items = stack;
    if (nfds + 1 > (int)SL_ARRAY_LEN(stack)) {
        items = calloc((size_t)nfds + 1, sizeof *items);
        if (!items) return -SL_ENOMEM;
    }
    items[0] = (zmq_pollitem_t){.socket = mb->router, .events = ZMQ_POLLIN};
    for (int i = 0; i < nfds; i++) {
        short ev = 0;
        if (fds[i].events & POLLIN) ev |= ZMQ_POLLIN;
        if (fds[i].events & POLLOUT) ev |= ZMQ_POLLOUT;
        items[i + 1] = (zmq_pollitem_t){.fd = fds[i].fd, .events = ev};
    }
    int rc = zmq_poll(items, nfds + 1, mb->qhead ? 0 : timeout_ms);
    int result;
    if (rc < 0) {
        result = zmq_errno() == EINTR ? -SL_EAGAIN : -SL_EIO;
        for (int i = 0; i < nfds; i++) fds[i].revents = 0;
    } else {
        for (int i = 0; i < nfds; i++) {
            short re = 0, z = items[i + 1].revents;
            if (z & ZMQ_POLLIN) re |= POLLIN;
            if (z & ZMQ_POLLOUT) re |= POLLOUT;
            if (z & ZMQ_POLLERR) re |= POLLERR;
            fds[i].revents = re;
        }
        result = (mb->qhead || (items[0].revents & ZMQ_POLLIN)) ? 1 : 0;
    }
    if (items != stack) free(items);
    return result;
}
