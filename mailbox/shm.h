/*
 * shm.h — shared-memory arenas for bulk data between actor processes
 * (rollout batches, train batches): a producer owns an arena split into
 * fixed-size slots, writes a batch into a slot, publishes it and sends a
 * small descriptor in a mailbox message; consumers in other processes map
 * the arena and read the batch in place (zero copies), then release it.
 *
 * What it is not: a message transport (the descriptor travels in a mailbox
 * frame), a batch layout (actors/ define what the bytes mean), or a
 * cross-machine channel (same node only).
 *
 * Mapping. The arena is two memfds, both sealed against shrink and grow:
 * a small control area and the data area. A consumer maps them by opening
 * /proc/PID/fd/FD of the producer (PID and FDs taken from the descriptor):
 * the control area read-write (for its holder bits), the data area opened
 * O_RDONLY, so the kernel itself keeps consumers from writing batches. Why memfd and not a named /dev/shm object: the kernel frees a
 * memfd when its last holder goes, so a kill -9 of any process (or of the
 * whole run) leaks nothing and needs no cleanup pass, and two runs can never
 * collide on a name. Opening /proc/PID/fd needs only PTRACE_MODE_READ (same
 * uid), which Yama does not restrict (pidfd_getfd needs ATTACH, which it
 * does). PID reuse is guarded: the link must name a "memfd:slime." file and
 * the arena header must carry the descriptor's random 64-bit arena id. A
 * consumer of a dead producer gets SL_ECLOSED from sl_shm_arena_open (no
 * crash); a view opened before the producer died stays valid (its mapping
 * keeps the memory alive).
 *
 * Slots. A control area (read-write for consumers) holds per slot: a 64-bit
 * generation (bumped on every acquire), a state (free / writing /
 * published), a holder mask (one bit per consumer id, 0..SL_SHM_CONSUMERS_MAX
 * - 1, tagged with the generation so that a stale release cannot touch a
 * newer publication), the length and the checksum. The data area is mapped
 * read-only in consumers. A published slot returns to free when the last
 * consumer in its mask releases it.
 *
 * Dead consumers. A consumer that dies holding slots never releases them.
 * The reclaim path is explicit: when the supervisor (or producer) learns a
 * consumer died, sl_shm_arena_reclaim(arena, consumer_id) clears that
 * consumer's bit in every slot; descriptors it had not read yet become stale
 * and are refused if it later sees them. We chose this over lease timeouts
 * because a slow consumer is not a dead one: a timeout would free memory a
 * live reader is still reading.
 *
 * Threads: a producer arena's functions are safe to call from several
 * threads (slot ownership is decided by atomic compare-and-swap). A view is
 * safe for concurrent sl_shm_read / sl_shm_release; open/close are not.
 */
#ifndef SL_SHM_H
#define SL_SHM_H

#include "base.h"

#include <stddef.h>
#include <stdint.h>

#define SL_SHM_CONSUMERS_MAX 32        /* consumer ids 0..31 per arena */
#define SL_SHM_NAME_MAX 48             /* arena name, including the NUL */
#define SL_SHM_DESC_SIZE 64            /* encoded descriptor bytes */
#define SL_SHM_DESC_MAGIC 0x44534c53u  /* "SLSD" little endian */
#define SL_SHM_DESC_VERSION 1

/* sl_shm_read flags. */
#define SL_SHM_READ_TRUST_DATA 1u /* skip rehashing the bytes (see sl_shm_read) */

/* A descriptor names one published slot. It travels in a mailbox message
 * (sl_shm_desc_encode / sl_shm_desc_decode) and is hostile on arrival:
 * sl_shm_read checks every field against the arena. */
typedef struct sl_shm_desc {
    uint64_t arena_id;   /* random id of the arena (its identity) */
    uint32_t pid;        /* producer process */
    uint32_t ctl_fd;     /* producer's control-area memfd number */
    uint32_t data_fd;    /* producer's data-area memfd number */
    uint32_t slot;       /* slot index */
    uint64_t offset;     /* byte offset of the data inside the slot */
    uint64_t length;     /* bytes */
    uint64_t generation; /* the slot's generation when published */
    uint64_t checksum;   /* sl_hash64 of the LENGTH bytes at OFFSET */
} sl_shm_desc;

/* Encode DESC into exactly SL_SHM_DESC_SIZE little-endian bytes at OUT:
 * magic u32, version u16, flags u16 (0), arena_id u64, pid u32,
 * ctl_fd u32, data_fd u32, slot u32, offset u64, length u64,
 * generation u64, checksum u64. */
void sl_shm_desc_encode(const sl_shm_desc *desc, uint8_t out[SL_SHM_DESC_SIZE]);

/* Decode LEN bytes at IN into *DESC. Errors: SL_EINVAL (LEN is not
 * SL_SHM_DESC_SIZE, nonzero flags, fds over INT_MAX, offset+length
 * overflow),
 * SL_EPROTO (bad magic or version). *DESC is untouched on error. */
int sl_shm_desc_decode(const void *in, size_t len, sl_shm_desc *desc);

/* ------------------------------------------------------------ producer */

typedef struct sl_shm_arena sl_shm_arena;

/* Create an arena of N_SLOTS slots of SLOT_BYTES each (rounded up to the
 * page size). NAME only labels the two memfds ("slime.NAME" for the control
 * area, "slime.NAME.data" for the slots, seen in /proc/PID/fd and in logs);
 * no name is ever looked up, so none can collide. NAME: 1..47 bytes of
 * [A-Za-z0-9._-]. On success *OUT owns the memfd and the mapping; free it
 * with sl_shm_arena_close. Errors: SL_EINVAL (bad name or sizes, zero
 * slots, more than 65536 slots, total over 1 TiB), SL_EIO (memfd_create,
 * ftruncate or mmap failed; errno logged), SL_ENOMEM. */
int sl_shm_arena_create(const char *name, uint32_t n_slots, size_t slot_bytes,
                        sl_shm_arena **out);

/* Unmap and close. Consumers that have the arena mapped keep their views.
 * NULL is accepted. Not safe while other threads use the arena. */
void sl_shm_arena_close(sl_shm_arena *arena);

/* Take a free slot for writing: *PTR receives its start (writable, the
 * arena's slot_bytes long), *SLOT its index. The slot's generation is
 * bumped. Errors: SL_EFULL when no slot is free (nothing changed),
 * SL_EINVAL on NULL arguments. */
int sl_shm_slot_acquire(sl_shm_arena *arena, void **ptr, uint32_t *slot);

/* Publish the first LENGTH bytes of SLOT (which must be in state writing,
 * i.e. acquired and not yet published) to consumers 0..N_CONSUMERS-1: the
 * checksum is computed, the slot becomes published and *DESC is filled.
 * The producer must not write the slot again. The slot returns to free
 * when every consumer released it. Errors: SL_EINVAL (slot not acquired,
 * N_CONSUMERS 0 or over SL_SHM_CONSUMERS_MAX), SL_ERANGE (LENGTH over the
 * slot size). On error the slot stays acquired. */
int sl_shm_slot_publish(sl_shm_arena *arena, uint32_t slot, size_t length,
                        unsigned n_consumers, sl_shm_desc *desc);

/* The same, addressed to the consumer ids whose bits are set in MASK
 * (nonzero, below 1 << SL_SHM_CONSUMERS_MAX). */
int sl_shm_slot_publish_mask(sl_shm_arena *arena, uint32_t slot, size_t length,
                             uint32_t mask, sl_shm_desc *desc);

/* Give an acquired, unpublished slot back (the write was abandoned).
 * Errors: SL_EINVAL when SLOT is not in state writing. */
int sl_shm_slot_cancel(sl_shm_arena *arena, uint32_t slot);

/* Drop every reference CONSUMER_ID holds (it died, or restarted and will
 * not release what it held). Slots whose last holder it was become free.
 * Returns the number of references dropped (>= 0), or -SL_EINVAL for a bad
 * id. Safe to run while other consumers read and release. */
int sl_shm_arena_reclaim(sl_shm_arena *arena, unsigned consumer_id);

/* Slot counts by state, for tests and metrics (a snapshot). */
typedef struct sl_shm_stats {
    uint32_t n_slots, free, writing, published;
    size_t slot_bytes;
} sl_shm_stats;
void sl_shm_arena_stats(const sl_shm_arena *arena, sl_shm_stats *stats);

/* Arena identity, as it appears in descriptors. */
uint64_t sl_shm_arena_id(const sl_shm_arena *arena);

/* ------------------------------------------------------------ consumer */

typedef struct sl_shm_view sl_shm_view;

/* Map the arena DESC names, as consumer CONSUMER_ID (0..31, unique among
 * the arena's consumers; the producer addresses publications to it). The
 * data area is mapped read-only, the control area read-write. *OUT is
 * owned by the caller (sl_shm_view_close). Errors: SL_ECLOSED (producer
 * gone: its /proc/PID/fd entry is missing, or it is not one of our arenas
 * any more — PID reuse), SL_EPROTO (the arena header is bad or its id is
 * not DESC's), SL_EINVAL (bad consumer id, NULL), SL_EIO (open/mmap
 * failed for another reason, errno logged), SL_ENOMEM. */
int sl_shm_arena_open(const sl_shm_desc *desc, unsigned consumer_id, sl_shm_view **out);

/* Unmap. NULL is accepted. References still held stay held (release them
 * first, or have the producer reclaim them). */
void sl_shm_view_close(sl_shm_view *view);

/* Whether DESC names the arena VIEW maps (so a consumer can cache views). */
int sl_shm_view_matches(const sl_shm_view *view, const sl_shm_desc *desc);

/* Validate DESC against the arena and return the published bytes in
 * place: *PTR (read-only, valid until this consumer releases DESC) and
 * *LEN. Checks: arena id, slot in range, offset+length inside the slot,
 * generation equal to the slot's current one, slot published, this
 * consumer among its holders (else SL_ESTALE), length and checksum equal to
 * what the producer recorded, and (unless FLAGS has SL_SHM_READ_TRUST_DATA)
 * sl_hash64 of the bytes equal to the checksum (SL_ECHECKSUM). Errors:
 * SL_EINVAL (other arena, bad flags), SL_ERANGE (slot/offset/length out of
 * the arena), SL_ESTALE, SL_ECHECKSUM. Nothing is released on error. */
int sl_shm_read(sl_shm_view *view, const sl_shm_desc *desc, unsigned flags,
                const void **ptr, size_t *len);

/* Drop this consumer's reference to DESC's slot. Releasing twice, or
 * releasing a stale descriptor, changes nothing and returns SL_ESTALE;
 * SL_EINVAL for another arena or an out-of-range slot. */
int sl_shm_release(sl_shm_view *view, const sl_shm_desc *desc);

#endif /* SL_SHM_H */
