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

#endif
