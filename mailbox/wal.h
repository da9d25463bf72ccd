/*
 * wal.h — an append-only, checksummed record log written with io_uring
 * (the buffer's write-ahead log of accepted samples), its replay, and an
 * atomic whole-file writer for checkpoints.
 *
 * What it is: durable bytes. sl_wal_append queues a record (copied into a
 * registered staging buffer, written by io_uring), sl_wal_sync submits what
 * is queued and waits for it plus one fdatasync: many appends, one sync;
 * the caller ACKs after sync returns. What it is not: a database (no index,
 * no compaction) or a record format (payloads are opaque bytes).
 *
 * On-disk record (little endian), padded with zeros to a multiple of 8:
 *   magic u32 (SL_WAL_MAGIC) | length u32 | sequence u64 | checksum u64 |
 *   payload[length] | zero pad
 * checksum = XXH3_64bits_withSeed(payload, length, seed) where
 * seed = sl_hash64(the 16 bytes magic|length|sequence) — so the header
 * fields and the payload are both covered (xxhash in any language computes
 * it). Sequence numbers rise by one per record; a new file starts at 1.
 *
 * Crash model: a record is durable once sl_wal_sync returned 0 after it.
 * A crash may leave a torn or garbage tail; replay stops at the first
 * record that is incomplete, has a bad magic, length, sequence or checksum,
 * and sl_wal_open truncates the file there (with a warning naming the
 * offset). A corrupt record in the middle therefore drops everything after
 * it: records are only trusted in order.
 *
 * Backends: io_uring when io_uring_queue_init works, else plain
 * pwrite + fdatasync (ENOSYS/EPERM, e.g. seccomp in containers); the one
 * used is logged at info level and returned by sl_wal_backend. Setting
 * SL_WAL_NO_URING=1 in the environment (or SL_WAL_OPEN_NO_URING) forces the
 * fallback.
 *
 * Threads: one sl_wal is used by one thread at a time. sl_wal_replay and
 * sl_file_write_atomic are reentrant.
 */
#ifndef SL_WAL_H
#define SL_WAL_H

#include "base.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define SL_WAL_MAGIC 0x314c4157u      /* "WAL1" little endian */
#define SL_WAL_HEADER_SIZE 24
#define SL_WAL_RECORD_MAX (64u << 20) /* payload bytes; longer is corrupt */

/* sl_wal_open flags. */
#define SL_WAL_OPEN_NO_URING 1u /* use pwrite + fdatasync */

typedef struct sl_wal sl_wal;

/* Why a scan stopped. */
typedef enum sl_wal_stop {
    SL_WAL_STOP_END = 0,     /* clean end of file */
    SL_WAL_STOP_TORN = 1,    /* incomplete record (or zero-filled tail) */
    SL_WAL_STOP_CORRUPT = 2, /* bad magic, length, sequence or checksum */
    SL_WAL_STOP_CALLER = 3,  /* the callback returned nonzero */
} sl_wal_stop;

typedef struct sl_wal_info {
    uint64_t records;     /* valid records read */
    uint64_t first_seq;   /* sequence of the first one (0 when none) */
    uint64_t last_seq;    /* sequence of the last one (0 when none) */
    uint64_t end_offset;  /* bytes of whole valid records = where it stopped */
    uint64_t file_size;   /* size of the file scanned */
    sl_wal_stop stop;
    const char *why;      /* static text for TORN/CORRUPT, "" otherwise */
} sl_wal_info;

/* Called once per valid record in order. DATA (LEN bytes, NULL when LEN
 * is 0) is valid only during the call. Return 0 to go on, nonzero to stop
 * (sl_wal_replay then returns that value). */
typedef int (*sl_wal_fn)(void *user, uint64_t seq, const void *data, size_t len);

/* Open PATH for appending, creating it (0600; the directory is fsynced so
 * the new name is durable) when absent. Replays it to find the end and the
 * next sequence; a torn or corrupt tail is truncated off (warning with the
 * offset) and the truncation synced. INFO (may be NULL) receives what the
 * scan found. FLAGS: 0 or SL_WAL_OPEN_NO_URING. *OUT is owned by the
 * caller (sl_wal_close). Errors: SL_EINVAL, SL_EIO (open, read, truncate,
 * ring setup failed; errno logged), SL_ENOMEM. */
int sl_wal_open(const char *path, unsigned flags, sl_wal **out, sl_wal_info *info);

/* Queue one record of LEN bytes (0..SL_WAL_RECORD_MAX). DATA is copied (or
 * written before return, for records larger than a staging buffer), so the
 * caller may reuse it at once. *SEQ (may be NULL) receives the record's
 * sequence. Not durable until sl_wal_sync. Errors: SL_ERANGE (too long),
 * SL_EINVAL, SL_EIO (an earlier write or sync failed: the log is poisoned
 * and refuses everything; reopen it, which truncates to what is valid). */
int sl_wal_append(sl_wal *wal, const void *data, size_t len, uint64_t *seq);

/* Write everything queued, wait for the writes, then one fdatasync
 * (IORING_OP_FSYNC with IORING_FSYNC_DATASYNC; reaping the writes first
 * measured twice as fast as draining the fsync behind them). Returns 0
 * when every record appended so far is durable. Errors: SL_EIO (poisons
 * the log). */
int sl_wal_sync(sl_wal *wal);

/* Sync what is queued, then close. Returns the sync's result. NULL is
 * accepted (returns 0). */
int sl_wal_close(sl_wal *wal);

/* The sequence the next append will get. */
uint64_t sl_wal_next_seq(const sl_wal *wal);

/* Bytes of the log, including queued records. */
uint64_t sl_wal_size(const sl_wal *wal);

/* "io_uring" or "pwrite" (static storage). */
const char *sl_wal_backend(const sl_wal *wal);

/* Read PATH's records in order, calling FN (may be NULL: count only) for
 * each, and stop cleanly at the end or at the first torn/corrupt record.
 * INFO (may be NULL) says how many were read and where and why it stopped.
 * Returns 0 (a torn or corrupt tail is not an error: INFO says so), the
 * callback's nonzero value, or SL_ENOENT / SL_EIO / SL_ENOMEM. */
int sl_wal_replay(const char *path, sl_wal_fn fn, void *user, sl_wal_info *info);

/* Replace PATH atomically with the concatenation of IOVCNT buffers: write
 * a temporary file in the same directory (io_uring, or pwritev where
 * io_uring is unavailable), fsync it, rename it over PATH, fsync the
 * directory. After a crash PATH holds either the old or the new contents.
 * Mode 0644. Errors: SL_EINVAL, SL_EIO (the temporary file is removed). */
int sl_file_write_atomic(const char *path, const struct iovec *iov, int iovcnt);

#endif /* SL_WAL_H */
