/*
 * wal.c — the append-only record log (io_uring with a pwrite fallback),
 * its scanner/replay, and the atomic whole-file writer. See wal.h.
 *
 * Writing: records are copied into one of N_CHUNKS staging chunks
 * (registered with the ring when the memlock limit allows). A full chunk is
 * submitted at once, so the kernel writes while the next one fills; sync
 * submits the partial chunk, reaps every write, then submits one fdatasync
 * and waits for it. (IOSQE_IO_DRAIN on the fsync saves a round trip on
 * paper but measured twice as slow on kernel 6.18.) Records larger than a
 * chunk are written straight from the caller's memory with one writev and
 * waited for.
 */
#include "wal.h"
#include "faults.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define CHUNK_BYTES (1u << 20)
#define N_CHUNKS 4
#define RING_DEPTH 32
#define UD_BIG 1000u
#define UD_FSYNC 1001u

struct sl_wal {
    int fd;
    char *path;
    int uring;      /* 1 when the ring is in use */
    int registered; /* chunks registered as fixed buffers */
    struct io_uring ring;
    uint8_t *stage; /* N_CHUNKS * CHUNK_BYTES, page aligned */
    size_t fill[N_CHUNKS];
    size_t wlen[N_CHUNKS];
    uint64_t chunk_off[N_CHUNKS];
    int busy[N_CHUNKS];
    int cur;
    unsigned inflight;
    int big_busy, fsync_busy;
    size_t big_len;
    uint64_t big_off;
    struct iovec big_iov[3];
    uint8_t big_hdr[SL_WAL_HEADER_SIZE];
    uint64_t end;      /* file offset of the next record (queued included) */
    uint64_t next_seq;
    int failed;        /* errno of the first failure: poisoned */
};

static const uint8_t zeros[8];

static inline size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* checksum = XXH3(payload, seed = sl_hash64(magic|length|sequence)) */
static uint64_t record_checksum(uint32_t len, uint64_t seq, const void *data) {
    uint8_t h[16];
    sl_put_u32(h, SL_WAL_MAGIC);
    sl_put_u32(h + 4, len);
    sl_put_u64(h + 8, seq);
    return XXH3_64bits_withSeed(len ? data : zeros, len, sl_hash64(h, sizeof h));
}

static void put_header(uint8_t *h, uint32_t len, uint64_t seq, const void *data) {
    sl_put_u32(h, SL_WAL_MAGIC);
    sl_put_u32(h + 4, len);
    sl_put_u64(h + 8, seq);
    sl_put_u64(h + 16, record_checksum(len, seq, data));
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off) {
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return EIO;
        p += n, len -= (size_t)n, off += (uint64_t)n;
    }
    return 0;
}

/* Write the bytes of IOV[0..CNT) from byte SKIP on, at OFF, synchronously. */
static int pwrite_iov_from(int fd, const struct iovec *iov, int cnt, size_t skip, uint64_t off) {
    for (int i = 0; i < cnt; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        int e = pwrite_all(fd, (const uint8_t *)iov[i].iov_base + skip, l - skip, off);
        if (e) return e;
        off += l - skip;
        skip = 0;
    }
    return 0;
}

static int fsync_dir_of(const char *path) {
    char *copy = strdup(path);
    if (!copy) return ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0) return errno;
    int e = fsync(fd) ? errno : 0;
    close(fd);
    return e;
}

static int uring_wanted(unsigned flags) {
    const char *e = getenv("SL_WAL_NO_URING");
    return !(flags & SL_WAL_OPEN_NO_URING) && !(e && *e && strcmp(e, "0"));
}

/* ------------------------------------------------------------- scanning */

typedef struct reader {
    int fd;
    uint64_t size;
    uint8_t *buf;
    size_t cap;
    uint64_t boff; /* file offset of buf[0] */
    size_t blen;
} reader;

/* Pointer to N bytes at file offset OFF (OFF + N <= size), or NULL with
 * *ERR set. Valid until the next call. */
static const uint8_t *reader_get(reader *r, uint64_t off, size_t n, int *err) {
    if (off >= r->boff && off + n <= r->boff + r->blen) return r->buf + (off - r->boff);
    if (n > r->cap) {
        size_t cap = r->cap;
        while (cap < n) cap *= 2;
        uint8_t *nb = realloc(r->buf, cap);
        if (!nb) {
            *err = SL_ENOMEM;
            return NULL;
        }
        r->buf = nb, r->cap = cap;
    }
    size_t want = r->size - off < r->cap ? (size_t)(r->size - off) : r->cap;
    size_t got = 0;
    while (got < want) {
        ssize_t k = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            *err = SL_EIO;
            return NULL;
        }
        got += (size_t)k;
    }
    r->boff = off, r->blen = got;
    return r->buf;
}

static int scan_fd(int fd, sl_wal_fn fn, void *user, sl_wal_info *info) {
    memset(info, 0, sizeof *info);
    info->why = "";
    struct stat st;
    if (fstat(fd, &st) != 0) return SL_EIO;
    reader r = {.fd = fd, .size = (uint64_t)st.st_size, .cap = CHUNK_BYTES};
    info->file_size = r.size;
    if (!(r.buf = malloc(r.cap))) return SL_ENOMEM;
    uint64_t off = 0;
    int rc = SL_OK, err = SL_OK;
    while (off < r.size) {
        if (r.size - off < SL_WAL_HEADER_SIZE) {
            info->stop = SL_WAL_STOP_TORN, info->why = "incomplete header";
            break;
        }
        const uint8_t *h = reader_get(&r, off, SL_WAL_HEADER_SIZE, &err);
        if (!h) break;
        uint32_t magic = sl_get_u32(h), len = sl_get_u32(h + 4);
        uint64_t seq = sl_get_u64(h + 8), ck = sl_get_u64(h + 16);
        if (magic != SL_WAL_MAGIC) {
            if (!memcmp(h, zeros, 8) && !memcmp(h + 8, zeros, 8) && !memcmp(h + 16, zeros, 8))
                info->stop = SL_WAL_STOP_TORN, info->why = "zero-filled tail";
            else
                info->stop = SL_WAL_STOP_CORRUPT, info->why = "bad magic";
            break;
        }
        if (len > SL_WAL_RECORD_MAX) {
            info->stop = SL_WAL_STOP_CORRUPT, info->why = "length over the maximum";
            break;
        }
        size_t rec = SL_WAL_HEADER_SIZE + pad8(len);
        if (r.size - off < rec) {
            info->stop = SL_WAL_STOP_TORN, info->why = "incomplete record";
            break;
        }
        const uint8_t *p = reader_get(&r, off, rec, &err);
        if (!p) break;
        const uint8_t *payload = p + SL_WAL_HEADER_SIZE;
        if (record_checksum(len, seq, payload) != ck) {
            info->stop = SL_WAL_STOP_CORRUPT, info->why = "checksum mismatch";
            break;
        }
        if (memcmp(payload + len, zeros, pad8(len) - len)) {
            info->stop = SL_WAL_STOP_CORRUPT, info->why = "nonzero padding";
            break;
        }
        if (info->records ? seq != info->last_seq + 1 : seq == 0) {
            info->stop = SL_WAL_STOP_CORRUPT, info->why = "sequence out of order";
            break;
        }
        if (fn && (rc = fn(user, seq, len ? payload : NULL, len)) != 0) {
            info->stop = SL_WAL_STOP_CALLER;
            /* The record was delivered: count it. */
        }
        if (!info->records) info->first_seq = seq;
        info->records++;
        info->last_seq = seq;
        off += rec;
        if (rc) break;
    }
    info->end_offset = off;
    free(r.buf);
    if (err) return err;
    return rc;
}

int sl_wal_replay(const char *path, sl_wal_fn fn, void *user, sl_wal_info *info) {
    sl_wal_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->why = "";
    if (!path) return SL_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? SL_ENOENT : SL_EIO;
    int rc = scan_fd(fd, fn, user, info);
    close(fd);
    if (info->stop == SL_WAL_STOP_TORN || info->stop == SL_WAL_STOP_CORRUPT)
        sl_warn("wal %s: replay stopped at offset %llu after %llu records: %s", path,
                (unsigned long long)info->end_offset, (unsigned long long)info->records,
                info->why);
    return rc;
}

/* -------------------------------------------------------------- writing */

static void fail(sl_wal *w, int e, const char *what) {
    if (!w->failed) {
        w->failed = e ? e : EIO;
        sl_error("wal %s: %s: %s (the log refuses further writes; reopen it)", w->path, what,
                 strerror(w->failed));
    }
}

/* Wait for one completion and account for it. */
static int reap_one(sl_wal *w) {
    struct io_uring_cqe *cqe;
    int e = io_uring_wait_cqe(&w->ring, &cqe);
    if (e < 0) {
        if (e == -EINTR) return 0;
        fail(w, -e, "io_uring_wait_cqe");
        return -1;
    }
    uint64_t ud = cqe->user_data;
    int res = cqe->res;
    io_uring_cqe_seen(&w->ring, cqe);
    w->inflight--;
    if (ud == UD_FSYNC) {
        w->fsync_busy = 0;
        if (res < 0) fail(w, -res, "fdatasync");
    } else if (ud == UD_BIG) {
        w->big_busy = 0;
        if (res < 0) fail(w, -res, "write");
        else if ((size_t)res < w->big_len) { /* short write: finish it by hand */
            int e2 = pwrite_iov_from(w->fd, w->big_iov, 3, (size_t)res, w->big_off + (size_t)res);
            if (e2) fail(w, e2, "write");
        }
    } else if (ud < N_CHUNKS) {
        w->busy[ud] = 0;
        if (res < 0) fail(w, -res, "write");
        else if ((size_t)res < w->wlen[ud]) {
            int e2 = pwrite_all(w->fd, w->stage + ud * CHUNK_BYTES + res, w->wlen[ud] - (size_t)res,
                                w->chunk_off[ud] + (size_t)res);
            if (e2) fail(w, e2, "write");
        }
    }
    return 0;
}

static struct io_uring_sqe *get_sqe(sl_wal *w) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    while (!sqe) {
        io_uring_submit(&w->ring);
        if (w->inflight && reap_one(w) < 0) return NULL;
        sqe = io_uring_get_sqe(&w->ring);
    }
    return sqe;
}

static int submit(sl_wal *w) {
    int e = io_uring_submit(&w->ring);
    if (e < 0) {
        fail(w, -e, "io_uring_submit");
        return -1;
    }
    return 0;
}

/* Send the current chunk to the kernel and move to the next free one. */
static int flush_chunk(sl_wal *w) {
    int c = w->cur;
    if (w->fill[c] == 0) return w->failed ? -1 : 0;
    uint8_t *buf = w->stage + (size_t)c * CHUNK_BYTES;
    w->wlen[c] = w->fill[c];
    if (w->uring) {
        struct io_uring_sqe *sqe = get_sqe(w);
        if (!sqe) return -1;
        if (w->registered)
            io_uring_prep_write_fixed(sqe, w->fd, buf, (unsigned)w->wlen[c], w->chunk_off[c], c);
        else
            io_uring_prep_write(sqe, w->fd, buf, (unsigned)w->wlen[c], w->chunk_off[c]);
        io_uring_sqe_set_data64(sqe, (uint64_t)c);
        w->busy[c] = 1;
        w->inflight++;
        if (submit(w) < 0) return -1;
    } else {
        int e = pwrite_all(w->fd, buf, w->wlen[c], w->chunk_off[c]);
        if (e) fail(w, e, "pwrite");
    }
    w->fill[c] = 0;
    w->cur = (c + 1) % N_CHUNKS;
    while (w->busy[w->cur] && !w->failed)
        if (reap_one(w) < 0) break;
    return w->failed ? -1 : 0;
}

int sl_wal_append(sl_wal *w, const void *data, size_t len, uint64_t *seq) {
    if (!w || (!data && len)) return SL_EINVAL;
    if (len > SL_WAL_RECORD_MAX) return SL_ERANGE;
    if (w->failed) return SL_EIO;
    size_t rec = SL_WAL_HEADER_SIZE + pad8(len);
    uint64_t s = w->next_seq;
    if (rec <= CHUNK_BYTES) {
        if (w->fill[w->cur] + rec > CHUNK_BYTES && flush_chunk(w) < 0) return SL_EIO;
        int c = w->cur;
        if (w->fill[c] == 0) w->chunk_off[c] = w->end;
        uint8_t *p = w->stage + (size_t)c * CHUNK_BYTES + w->fill[c];
        put_header(p, (uint32_t)len, s, data);
        if (len) memcpy(p + SL_WAL_HEADER_SIZE, data, len);
        memset(p + SL_WAL_HEADER_SIZE + len, 0, pad8(len) - len);
        w->fill[c] += rec;
    } else {
        /* Too big to stage: write it from the caller's memory, in order
         * after what is staged, and wait so the caller may reuse DATA. */
        if (flush_chunk(w) < 0) return SL_EIO;
        put_header(w->big_hdr, (uint32_t)len, s, data);
        w->big_iov[0] = (struct iovec){w->big_hdr, SL_WAL_HEADER_SIZE};
        w->big_iov[1] = (struct iovec){(void *)data, len};
        w->big_iov[2] = (struct iovec){(void *)zeros, pad8(len) - len};
        w->big_len = rec;
        w->big_off = w->end;
        if (w->uring) {
            struct io_uring_sqe *sqe = get_sqe(w);
            if (!sqe) return SL_EIO;
            io_uring_prep_writev(sqe, w->fd, w->big_iov, 3, w->end);
            io_uring_sqe_set_data64(sqe, UD_BIG);
            w->big_busy = 1;
            w->inflight++;
            if (submit(w) < 0) return SL_EIO;
            while (w->big_busy && !w->failed)
                if (reap_one(w) < 0) break;
        } else {
            int e = pwrite_iov_from(w->fd, w->big_iov, 3, 0, w->end);
            if (e) fail(w, e, "pwrite");
        }
        if (w->failed) return SL_EIO;
    }
    w->end += rec;
    w->next_seq = s + 1;
    if (seq) *seq = s;
    return SL_OK;
}

int sl_wal_sync(sl_wal *w) {
    if (!w) return SL_EINVAL;
    if (w->failed) return SL_EIO;
    if (flush_chunk(w) < 0) return SL_EIO;
    sl_fault_point("wal_write"); /* writes submitted, not waited for nor synced */
    if (w->uring) {
        while (w->inflight && !w->failed)
            if (reap_one(w) < 0) break;
        if (w->failed) return SL_EIO;
        struct io_uring_sqe *sqe = get_sqe(w);
        if (!sqe) return SL_EIO;
        io_uring_prep_fsync(sqe, w->fd, IORING_FSYNC_DATASYNC);
        io_uring_sqe_set_data64(sqe, UD_FSYNC);
        w->fsync_busy = 1;
        w->inflight++;
        if (submit(w) < 0) return SL_EIO;
        while (w->inflight && !w->failed)
            if (reap_one(w) < 0) break;
    } else if (fdatasync(w->fd) != 0) {
        fail(w, errno, "fdatasync");
    }
    return w->failed ? SL_EIO : SL_OK;
}

int sl_wal_open(const char *path, unsigned flags, sl_wal **out, sl_wal_info *info) {
    sl_wal_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->why = "";
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!path || !*path || (flags & ~SL_WAL_OPEN_NO_URING)) return SL_EINVAL;
    sl_wal *w = calloc(1, sizeof *w);
    if (!w) return SL_ENOMEM;
    w->fd = -1;
    int rc = SL_EIO;
    if (!(w->path = strdup(path))) {
        rc = SL_ENOMEM;
        goto fail;
    }
    w->fd = open(path, O_RDWR | O_CLOEXEC);
    if (w->fd < 0 && errno == ENOENT) {
        w->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd >= 0) {
            int e = fsync_dir_of(path);
            if (e) sl_warn("wal %s: fsync of its directory: %s", path, strerror(e));
        }
    }
    if (w->fd < 0) {
        sl_error("wal %s: open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(w->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        sl_error("wal %s: not a regular file", path);
        rc = SL_EINVAL;
        goto fail;
    }
    if ((rc = scan_fd(w->fd, NULL, NULL, info)) != SL_OK) {
        sl_error("wal %s: scan failed: %s", path, sl_strerror(rc));
        goto fail;
    }
    if (info->records == 0 && info->stop == SL_WAL_STOP_CORRUPT) {
        /* Never truncate a file that does not look like a log at all. */
        sl_error("wal %s: not a write-ahead log (%s at offset 0); refusing to truncate it", path,
                 info->why);
        rc = SL_EPROTO;
        goto fail;
    }
    if (info->end_offset < info->file_size) {
        sl_warn("wal %s: %s at offset %llu after %llu records; truncating %llu bytes", path,
                info->why, (unsigned long long)info->end_offset,
                (unsigned long long)info->records,
                (unsigned long long)(info->file_size - info->end_offset));
        if (ftruncate(w->fd, (off_t)info->end_offset) != 0 || fsync(w->fd) != 0) {
            sl_error("wal %s: truncate: %s", path, strerror(errno));
            rc = SL_EIO;
            goto fail;
        }
    }
    w->end = info->end_offset;
    w->next_seq = info->records ? info->last_seq + 1 : 1;
    if (posix_memalign((void **)&w->stage, 4096, (size_t)N_CHUNKS * CHUNK_BYTES) != 0) {
        w->stage = NULL;
        rc = SL_ENOMEM;
        goto fail;
    }
    if (uring_wanted(flags)) {
        int e = io_uring_queue_init(RING_DEPTH, &w->ring, 0);
        if (e == 0) {
            w->uring = 1;
            struct iovec iov[N_CHUNKS];
            for (int i = 0; i < N_CHUNKS; i++)
                iov[i] = (struct iovec){w->stage + (size_t)i * CHUNK_BYTES, CHUNK_BYTES};
            w->registered = io_uring_register_buffers(&w->ring, iov, N_CHUNKS) == 0;
        } else {
            sl_warn("wal %s: io_uring unavailable (%s); using pwrite + fdatasync", path,
                    strerror(-e));
        }
    }
    sl_info("wal %s: %s backend%s, %llu records, next sequence %llu", path,
            sl_wal_backend(w), w->registered ? " (registered buffers)" : "",
            (unsigned long long)info->records, (unsigned long long)w->next_seq);
    *out = w;
    return SL_OK;
fail:
    if (w->fd >= 0) close(w->fd);
    free(w->path);
    free(w);
    return rc;
}

int sl_wal_close(sl_wal *w) {
    if (!w) return SL_OK;
    int rc = w->failed ? SL_EIO : sl_wal_sync(w);
    if (w->uring) {
        while (w->inflight && reap_one(w) == 0) {
        }
        io_uring_queue_exit(&w->ring);
    }
    close(w->fd);
    free(w->stage);
    free(w->path);
    free(w);
    return rc;
}

uint64_t sl_wal_next_seq(const sl_wal *w) { return w ? w->next_seq : 0; }
uint64_t sl_wal_size(const sl_wal *w) { return w ? w->end : 0; }
const char *sl_wal_backend(const sl_wal *w) { return w && w->uring ? "io_uring" : "pwrite"; }

/* ---------------------------------------------------------- atomic file */

/* Write IOV at offset 0 of FD and fsync it through a private ring. Returns
 * 0 or an errno; ENOSYS/EPERM-like ring failures are reported as -1 so the
 * caller falls back. */
static int uring_write_file(int fd, const struct iovec *iov, int cnt) {
    enum { BATCH = 16 };
    struct io_uring ring;
    if (!uring_wanted(0) || io_uring_queue_init(BATCH, &ring, 0) != 0) return -1;
    int err = 0, i = 0;
    uint64_t off = 0;
    while (i < cnt && !err) {
        /* Up to BATCH writes in flight, each buffer at its own offset. */
        uint64_t offs[BATCH];
        int idx[BATCH], n = 0;
        while (i < cnt && n < BATCH) {
            if (iov[i].iov_len) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                size_t len = iov[i].iov_len > (1u << 30) ? (1u << 30) : iov[i].iov_len;
                io_uring_prep_write(sqe, fd, iov[i].iov_base, (unsigned)len, off);
                io_uring_sqe_set_data64(sqe, (uint64_t)n);
                idx[n] = i, offs[n] = off, n++;
            }
            off += iov[i].iov_len;
            i++;
        }
        io_uring_submit(&ring);
        while (n) {
            struct io_uring_cqe *cqe;
            int e = io_uring_wait_cqe(&ring, &cqe);
            if (e == -EINTR) continue;
            if (e < 0) {
                err = -e;
                break;
            }
            int k = (int)cqe->user_data, res = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
            n--;
            if (res < 0) {
                err = -res;
            } else if ((size_t)res < iov[idx[k]].iov_len) { /* short (or capped) write */
                int e2 = pwrite_all(fd, (const uint8_t *)iov[idx[k]].iov_base + res,
                                    iov[idx[k]].iov_len - (size_t)res, offs[k] + (size_t)res);
                if (e2) err = e2;
            }
        }
    }
    if (!err) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        struct io_uring_cqe *cqe;
        io_uring_prep_fsync(sqe, fd, 0);
        io_uring_submit(&ring);
        int e;
        while ((e = io_uring_wait_cqe(&ring, &cqe)) == -EINTR) {
        }
        if (e < 0) err = -e;
        else {
            if (cqe->res < 0) err = -cqe->res;
            io_uring_cqe_seen(&ring, cqe);
        }
    }
    io_uring_queue_exit(&ring);
    return err;
}

int sl_file_write_atomic(const char *path, const struct iovec *iov, int iovcnt) {
    if (!path || !*path || iovcnt < 0 || (iovcnt && !iov)) return SL_EINVAL;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 40);
    if (!tmp) return SL_ENOMEM;
    snprintf(tmp, plen + 40, "%s.tmp.%d.%llx", path, (int)getpid(),
             (unsigned long long)(sl_now_ns() & 0xffffffffffull));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        sl_error("write %s: %s", tmp, strerror(errno));
        free(tmp);
        return SL_EIO;
    }
    int err = uring_write_file(fd, iov, iovcnt);
    if (err < 0) { /* no io_uring: plain writes */
        err = pwrite_iov_from(fd, iov, iovcnt, 0, 0);
        if (!err && fsync(fd) != 0) err = errno;
    }
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        sl_error("write %s: %s", path, strerror(err));
        unlink(tmp);
        free(tmp);
        return SL_EIO;
    }
    free(tmp);
    err = fsync_dir_of(path);
    if (err) {
        sl_error("write %s: fsync of its directory: %s", path, strerror(err));
        return SL_EIO;
    }
    return SL_OK;
}
