/*
 * weights_sync.h — CPU weight publishing from the trainer to the rollout
 * engines through shared memory (DESIGN.md §2, "Weight sync, CPU").
 *
 * The trainer owns a publisher: an shm arena (shm.h) of at least 2 slots,
 * each big enough for one flat fp32 parameter array (the sl_model
 * params_mem layout) behind a 64-byte header. Publishing version V copies
 * the parameters into a free slot and publishes it to the consumer ids of
 * the engines (rollout i = 16 + i); the descriptor travels in a WEIGHTS
 * message. Engines copy the parameters out and release the slot.
 *
 * Never waits for a slow engine: when no slot is free (engines still hold
 * older versions they have not copied yet), the publisher reclaims every
 * hold of the consumers it publishes to (and, if that is not enough, of
 * every consumer) — those older versions become stale, an engine that
 * meets one gets SL_ESTALE and simply waits for (or asks, WEIGHTS_REQ)
 * the newer one. A consumer never sees torn data: it copies, then checks
 * the copy's hash against the descriptor's checksum (XXH3-64, the one shm
 * computes at publish), so a slot reused under its feet is detected.
 *
 * Slot layout (little endian): magic u32 "SLWT" | version u16 (1) |
 * header_size u16 (64) | n_params u64 | weight_version u64 | zero padding
 * to 64 bytes | float params[n_params].
 *
 * What it is not: the GPU path (CUDA IPC, NCCL), and not a message sender
 * (the actor sends the descriptor).
 *
 * Thread safety: a publisher may be used from one thread at a time (its
 * arena is thread-safe, but the "latest" bookkeeping is not); a subscriber
 * likewise.
 */
#ifndef SL_WEIGHTS_SYNC_H
#define SL_WEIGHTS_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "shm.h"

#define SL_WEIGHTS_MAGIC 0x54574c53u /* "SLWT" little endian */
#define SL_WEIGHTS_VERSION 1
#define SL_WEIGHTS_HEADER_SIZE 64

typedef struct sl_weights_pub sl_weights_pub;

/* A publisher for arrays of N_PARAMS floats, with N_SLOTS (>= 2) slots.
 * NAME labels the arena (shm.h rules: [A-Za-z0-9._-], 1..47 bytes).
 * *OUT is owned by the caller (sl_weights_pub_free). Errors: SL_EINVAL
 * (bad name, n_params 0, n_slots < 2), SL_EIO, SL_ENOMEM. */
int sl_weights_pub_new(const char *name, size_t n_params, uint32_t n_slots,
                       sl_weights_pub **out);

/* Close the arena (engines keep what they mapped). NULL is accepted. */
void sl_weights_pub_free(sl_weights_pub *p);

/* Publish PARAMS (n_params floats, borrowed for the call) as WEIGHT_VERSION
 * to the consumer ids set in MASK (nonzero). Fills *DESC (send it as hex in
 * a WEIGHTS message). Never waits (see the header comment: may reclaim
 * older holds). Errors: SL_EINVAL (NULL, empty mask), SL_EFULL (no slot even
 * after reclaiming: cannot happen with >= 2 slots and a single publishing
 * thread), or what shm returns. */
int sl_weights_publish(sl_weights_pub *p, const float *params, uint64_t weight_version,
                       uint32_t mask, sl_shm_desc *desc);

/* Drop every hold of CONSUMER_ID (an engine restarted and will never
 * release what its previous incarnation held). Returns the number dropped
 * (>= 0) or a negative sl_err. */
int sl_weights_pub_reclaim(sl_weights_pub *p, unsigned consumer_id);

/* Slot counts (for tests and metrics). */
void sl_weights_pub_stats(const sl_weights_pub *p, sl_shm_stats *st);

/* Times a publish had to reclaim holds because no slot was free. */
uint64_t sl_weights_pub_forced(const sl_weights_pub *p);

/* ------------------------------------------------------------ consumer */

typedef struct sl_weights_sub sl_weights_sub;

/* A subscriber reading as CONSUMER_ID (0..31). Maps the publisher's arena
 * lazily, at the first descriptor (and again when the trainer restarted and
 * descriptors name a new arena). Errors: SL_EINVAL, SL_ENOMEM. */
int sl_weights_sub_new(unsigned consumer_id, sl_weights_sub **out);

/* Unmap (holds still held stay held: release or let the publisher
 * reclaim). NULL is accepted. */
void sl_weights_sub_free(sl_weights_sub *s);

/* Copy the weights DESC names into DST (N_PARAMS floats, caller's memory;
 * written even on some errors — treat DST as garbage unless SL_OK) and
 * release the slot. *WEIGHT_VERSION (may be NULL) gets the version.
 * Errors: SL_ESTALE (the publisher already reused the slot for a newer
 * version, or this consumer was reclaimed: wait for the newer WEIGHTS),
 * SL_ECLOSED (the publisher is gone), SL_EPROTO (bad slot header),
 * SL_ERANGE (n_params differs from the slot's), SL_ECHECKSUM, SL_EINVAL,
 * or what shm returns. The slot is released in every case where it could
 * be read. */
int sl_weights_sub_apply(sl_weights_sub *s, const sl_shm_desc *desc, float *dst,
                         size_t n_params, uint64_t *weight_version);

/* Release DESC without reading it (a newer version arrived first). */
int sl_weights_sub_drop(sl_weights_sub *s, const sl_shm_desc *desc);

#endif /* SL_WEIGHTS_SYNC_H */
