/*
 * nccl_msg.h — NCCL_ID (0x0140): how the ranks of a NCCL communicator get
 * its unique id (kernels/nccl_comm.h) through the mailbox
 * (mailbox/PROTOCOL.md §13).
 *
 * Rank 0 of a communicator (trainer rank 0 for the data-parallel group and
 * for the weight broadcast to engines) makes the id and sends one NCCL_ID
 * to every other member, which then calls sl_nccl_init. Payload (JSON):
 *   {"group": "dp"|"weights", "nranks": int, "rank": int (the recipient's),
 *    "epoch": int (>= 0, bumped each time the group is rebuilt, e.g. after
 *    a restart: an id of an older epoch is stale), "id": 256 hex digits}
 * Decoding checks every field: a malformed payload is refused with the
 * field and what is wrong.
 */
#ifndef SL_NCCL_MSG_H
#define SL_NCCL_MSG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nccl_comm.h"

#define SL_MSG_NCCL_ID 0x0140

typedef struct sl_nccl_id_msg {
    char group[16]; /* "dp" or "weights" */
    int nranks, rank;
    int64_t epoch;
    char id[SL_NCCL_ID_HEX];
} sl_nccl_id_msg;

/* JSON text of M in buf (cap bytes); returns its length, or -1 (too small
 * or M invalid). */
int sl_nccl_id_msg_encode(const sl_nccl_id_msg *m, char *buf, size_t cap);
/* Parse and check len bytes. SL_EINVAL / SL_EPROTO with the reason in why. */
int sl_nccl_id_msg_decode(const void *payload, size_t len, sl_nccl_id_msg *m, char *why, size_t wl);

/* Send an NCCL_ID to `to` (an actor name) through ctx. */
struct sl_actor_ctx;
int sl_nccl_id_send(struct sl_actor_ctx *ctx, const char *to, const char *group, int nranks, int rank,
                    int64_t epoch, const char hex[SL_NCCL_ID_HEX]);

/* This process names its own NCCL "host" (NCCL_HOSTID = "slime-" the
 * supervisor's pid "-" actor_name; NCCL_SOCKET_IFNAME = lo unless set):
 * NCCL refuses two ranks of one host on one GPU, so actors that share a
 * GPU within one NCCL group call this before their first NCCL call, and
 * then talk over loopback sockets (slow: tests on one GPU). */
void sl_nccl_own_host(const char *actor_name);

/* Whether rollout ro gets the weights from trainer rank 0 (tr) by NCCL
 * broadcast (group "weights"): both on GPUs, and on different GPUs (or
 * machines) or [trainer] gpu_weight_sync = broadcast. */
struct sl_topology;
struct sl_actor_spec;
bool sl_weights_by_nccl(const struct sl_topology *t, const struct sl_actor_spec *tr,
                        const struct sl_actor_spec *ro);

/* Joining an NCCL group without blocking the actor's loop: a thread
 * selects the device and calls sl_nccl_init (which blocks until every
 * rank joined); the loop polls. Fill group..id, then start. */
typedef struct sl_ncjoin {
    char group[16];
    int nranks, rank, device;
    int64_t epoch;
    char id[SL_NCCL_ID_HEX];
    /* private */
    pthread_t th;
    atomic_int done;
    bool started;
    int rc;
    char err[256];
    sl_nccl *nc;
} sl_ncjoin;
int sl_ncjoin_start(sl_ncjoin *j);
/* 0: still joining (or not started); 1: joined, *nc is the communicator
 * (now the caller's); < 0: -error, message in j->err. */
int sl_ncjoin_poll(sl_ncjoin *j, sl_nccl **nc);
/* At exit: a join still blocked is left to die with the process; a
 * finished one is reaped (its communicator freed unless taken). */
void sl_ncjoin_fini(sl_ncjoin *j);

#endif
