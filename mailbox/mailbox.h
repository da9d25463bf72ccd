/*
 * mailbox.h — an actor's mailbox on ZeroMQ: a ROUTER bound at
 * ipc://RUN_DIR/mb/NAME that receives frames (frame.h), one DEALER per peer
 * to send, and request/reply with timeout on top.
 *
 * What it is: the data-flow message transport between actor processes.
 * Every received frame is validated (frame.h); malformed ones are dropped
 * and counted per reason (sl_mailbox_stats), never delivered, never fatal.
 * What it is not: supervision (nng control plane), bulk data (shared memory),
 * or message semantics (actors/). mailbox/PROTOCOL.md is the wire contract.
 *
 * Threads: a mailbox belongs to one thread at a time (ZeroMQ sockets are
 * not thread-safe). Use one mailbox per thread; distinct mailboxes may be
 * used concurrently from distinct threads.
 *
 * Messages own their payload: sl_mailbox_recv / sl_mailbox_request fill an
 * sl_msg whose payload was malloc'd for it; release it with sl_msg_fini().
 */
#ifndef SL_MAILBOX_H
#define SL_MAILBOX_H

#include "base.h"
#include "frame.h"

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Environment variables the supervisor sets for every actor it starts
 * (PROTOCOL.md §6). */
#define SL_ENV_RUN_DIR "SL_RUN_DIR"       /* absolute run directory */
#define SL_ENV_ACTOR_NAME "SL_ACTOR_NAME" /* this actor's mailbox name */
#define SL_ENV_ACTOR_KIND "SL_ACTOR_KIND" /* its kind ("echo", "exec", ...) */
#define SL_ENV_TOPOLOGY "SL_TOPOLOGY"     /* path of the topology file */

/* Transport tcp (DESIGN.md §8): when SL_MB_TCP holds an address (the
 * supervisor sets it for every actor of a topology with [run] transport =
 * tcp), sl_mailbox_open binds tcp://ADDR:PORT instead of ipc, with ZeroMQ
 * CURVE (server key pair from RUN_DIR/curve.key, which must be 0600 and
 * this user's; made per run by sl_mailbox_curve_keygen); the port is kept
 * in RUN_DIR/mb/NAME.tcp ("tcp://ADDR:PORT\n", 0600) so that peers find it
 * and a restarted mailbox binds the same port again. Senders connect with
 * the server's public key and a fresh client key pair of their own: a peer
 * without RUN_DIR/curve.key cannot complete the handshake and is refused
 * (client keys are not checked further: whoever can read the key file is
 * this user). */
#define SL_ENV_MB_TCP "SL_MB_TCP"
#define SL_MB_CURVE_KEY_FILE "curve.key"

/* Make a fresh CURVE key pair and write it to RUN_DIR/curve.key (0600,
 * replacing any older one). Errors: SL_EUNSUPPORTED (libzmq has no
 * CURVE), SL_ERANGE, SL_EIO. */
sl_err sl_mailbox_curve_keygen(const char *run_dir);

/* The supervisor's mailbox name: it sends PING, actors answer PONG. */
#define SL_MB_SUPERVISOR "supervisor"

/* Defaults (see the setters below). */
#define SL_MAILBOX_SEND_TIMEOUT_MS 200 /* wait for a connection/room on send */
#define SL_MAILBOX_SNDHWM 1000         /* messages queued per peer */
#define SL_MAILBOX_RCVHWM 10000        /* messages queued on the ROUTER */
#define SL_MAILBOX_QUEUE_MAX 4096      /* messages held while a request waits */
#define SL_MAILBOX_PEERS_MAX 64        /* cached DEALERs (least recently used evicted) */
#define SL_CORR_REQUEST_BIT (1ull << 63) /* set in ids made by sl_mailbox_request */

/* ----------------------------------------------------------------- msg */

/* One received, validated message. Owns PAYLOAD (malloc'd, NULL when LEN is
 * 0; one extra NUL byte follows the payload so text payloads can be read
 * as C strings, not counted in LEN). */
typedef struct sl_msg {
    uint16_t type;              /* sl_msg_type */
    uint32_t flags;             /* SL_FLAG_* */
    uint64_t seq;               /* sender's sequence number */
    uint64_t corr;              /* correlation id (0 = none) */
    char sender[SL_MB_NAME_MAX]; /* validated mailbox name */
    uint32_t len;               /* payload bytes */
    uint8_t *payload;           /* owned */
} sl_msg;

/* Free MSG's payload and zero it. MSG may be NULL; calling twice is safe. */
void sl_msg_fini(sl_msg *msg);

/* Whether MSG is a reply carrying an error (ERROR type or SL_FLAG_ERROR).
 * When it is and CODE is not NULL, *CODE receives the sl_err the peer sent
 * (SL_EPROTO when the payload is too short to hold one). */
bool sl_msg_is_error(const sl_msg *msg, uint32_t *code);

/* ------------------------------------------------------------- mailbox */

typedef struct sl_mailbox sl_mailbox;

/* Drop counters and traffic figures. dropped[] is indexed by
 * sl_frame_reason (dropped[SL_FRAME_OK] stays 0). */
typedef struct sl_mailbox_stats {
    uint64_t sent;                 /* frames handed to ZeroMQ */
    uint64_t send_failed;          /* sends refused (absent/full peer) */
    uint64_t received;             /* valid frames accepted */
    uint64_t dropped[SL_FRAME_NREASONS]; /* malformed frames, per reason */
    uint64_t dropped_late_reply;   /* replies with no request waiting */
    uint64_t dropped_queue_full;   /* messages lost: request queue full */
    uint64_t dropped_total;        /* sum of all dropped_* and dropped[] */
    uint64_t requests;             /* sl_mailbox_request calls */
    uint64_t request_timeouts;     /* of which timed out */
    uint64_t queued;               /* messages held now for the next recv */
} sl_mailbox_stats;

/* Open the mailbox NAME of the run at RUN_DIR: create RUN_DIR/mb (0700) if
 * needed, remove a stale socket file left by a dead predecessor, and bind a
 * ROUTER at ipc://RUN_DIR/mb/NAME. On success *OUT owns the mailbox (close
 * it with sl_mailbox_close). RUN_DIR must exist (created 0700 by whoever
 * starts the run).
 * Errors: SL_EINVAL (NULL argument, invalid NAME), SL_ERANGE (path longer
 * than a unix socket path allows, 107 bytes), SL_EIO (mkdir/bind failed,
 * errno kept), SL_EFULL (the name is bound by a live process), SL_ENOMEM.
 * On error *OUT is NULL. */
sl_err sl_mailbox_open(const char *run_dir, const char *name, sl_mailbox **out);

/* Close MB: close the DEALERs (linger SL_MAILBOX_SEND_TIMEOUT_MS at most),
 * unbind (the socket file is removed), free queued messages. NULL is safe. */
void sl_mailbox_close(sl_mailbox *mb);

/* This mailbox's name and its endpoint ("ipc:///run/x/mb/NAME"); owned by MB. */
const char *sl_mailbox_name(const sl_mailbox *mb);
const char *sl_mailbox_endpoint(const sl_mailbox *mb);

/* How long a send waits for a connection to the peer or room in its queue
 * before giving up (default SL_MAILBOX_SEND_TIMEOUT_MS; 0 = never wait). */
void sl_mailbox_set_send_timeout(sl_mailbox *mb, int timeout_ms);

/* Send one message to the mailbox TO (a name, not a path) with a fresh
 * sequence number and correlation id 0. PAYLOAD (LEN bytes, may be NULL
 * when LEN is 0) is copied; the caller keeps it. Never blocks longer than
 * the send timeout.
 * Errors: SL_EINVAL (bad name/type), SL_ERANGE (LEN > SL_FRAME_MAX_PAYLOAD),
 * SL_ECLOSED (the peer is not there: no socket file, or it never accepted
 * a connection within the send timeout), SL_EFULL (connected, but its
 * queue stayed full), SL_EIO. Failures are counted in send_failed. */
sl_err sl_mailbox_send(sl_mailbox *mb, const char *to, uint16_t type,
                       const void *payload, size_t len);

/* Like sl_mailbox_send with explicit FLAGS and correlation id CORR. */
sl_err sl_mailbox_send_ex(sl_mailbox *mb, const char *to, uint16_t type, uint32_t flags,
                          uint64_t corr, const void *payload, size_t len);

/* Receive the next valid message into *MSG (which the caller then owns and
 * releases with sl_msg_fini). Messages queued while a request waited come
 * first. Invalid frames are dropped and counted; replies to requests that
 * are over (SL_FLAG_REPLY with correlation id 0 or with bit 63 set) are
 * dropped and counted as late; neither is ever returned. Replies to ids
 * from sl_mailbox_new_corr are returned.
 * TIMEOUT_MS: -1 waits forever, 0 only checks.
 * Errors: SL_ETIMEDOUT (nothing valid arrived in time; *MSG zeroed),
 * SL_EAGAIN (interrupted by a signal; *MSG zeroed), SL_EIO. */
sl_err sl_mailbox_recv(sl_mailbox *mb, sl_msg *msg, int timeout_ms);

/* Send a request (TYPE, PAYLOAD) to TO with a new correlation id and wait
 * up to TIMEOUT_MS (-1: forever) for the reply carrying that id. Other
 * messages arriving meanwhile are queued for sl_mailbox_recv (at most
 * SL_MAILBOX_QUEUE_MAX; beyond that they are dropped and counted). Replies
 * with another correlation id are dropped as late. On SL_OK *REPLY holds
 * the reply (caller owns it; it may be an ERROR reply: sl_msg_is_error).
 * Errors: those of sl_mailbox_send, SL_ETIMEDOUT (no reply in time; a reply
 * that comes later is dropped as late), SL_EAGAIN (signal), SL_EIO.
 * On error *REPLY is zeroed. */
sl_err sl_mailbox_request(sl_mailbox *mb, const char *to, uint16_t type,
                          const void *payload, size_t len, sl_msg *reply, int timeout_ms);

/* A fresh correlation id for a request the caller tracks itself (send it
 * with sl_mailbox_send_ex; replies carrying it come out of sl_mailbox_recv).
 * Ids made here never have bit 63 set: that bit marks the ids of
 * sl_mailbox_request, whose replies are only delivered to the waiting
 * request (a reply with bit 63 set, or with id 0, arriving while no request
 * waits for it is dropped and counted as late). Never 0. */
uint64_t sl_mailbox_new_corr(sl_mailbox *mb);

/* Answer REQ: send (TYPE, PAYLOAD) to REQ->sender with REQ's correlation id
 * and SL_FLAG_REPLY. Does nothing and returns SL_OK when REQ has
 * SL_FLAG_NOREPLY. Errors: those of sl_mailbox_send. */
sl_err sl_mailbox_reply(sl_mailbox *mb, const sl_msg *req, uint16_t type,
                        const void *payload, size_t len);

/* Answer REQ with an ERROR reply (SL_FLAG_REPLY|SL_FLAG_ERROR): u32 CODE then
 * TEXT (may be NULL). Errors: those of sl_mailbox_send. */
sl_err sl_mailbox_reply_error(sl_mailbox *mb, const sl_msg *req, uint32_t code,
                              const char *text);

/* Handle the runtime messages every actor must answer the same way:
 * PING -> PONG (same payload), ECHO -> ECHO_REPLY (same payload). Returns
 * true when MSG was one of them (it was answered, or the answer failed and
 * was counted); false for anything else (the caller handles it). MSG stays
 * owned by the caller either way. */
bool sl_mailbox_handle_builtin(sl_mailbox *mb, const sl_msg *msg);

/* ------------------------------------------------------------- polling */

/* Wait up to TIMEOUT_MS (-1 forever) until the mailbox has input or one of
 * the NFDS descriptors in FDS (may be NULL when NFDS is 0) is ready; fills
 * their revents like poll(2). Returns 1 when the mailbox has input (call
 * sl_mailbox_recv, which may still find only invalid frames and time out),
 * 0 when it has none; the fds' revents are set either way.
 * Errors (negative): -SL_EAGAIN on a signal, -SL_EIO. */
int sl_mailbox_poll(sl_mailbox *mb, struct pollfd *fds, int nfds, int timeout_ms);

/* The ROUTER's ZMQ_FD, for an event loop of one's own. It is EDGE-triggered
 * in ZeroMQ's sense: when it becomes readable call sl_mailbox_has_input()
 * and sl_mailbox_recv(..., 0) until has_input is false, or events are lost. */
int sl_mailbox_fd(const sl_mailbox *mb);

/* Whether a message is queued or the ROUTER has input now (never blocks). */
bool sl_mailbox_has_input(sl_mailbox *mb);

/* Copy the counters into *OUT. */
void sl_mailbox_stats_get(const sl_mailbox *mb, sl_mailbox_stats *out);

#endif /* SL_MAILBOX_H */
