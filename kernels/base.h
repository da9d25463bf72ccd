/*
 * base.h — the few things every layer needs: error codes, logging,
 * checksums. It is the lowest header of the project: kernels/, mailbox/,
 * topology/ and actors/ may all include it, and it includes nothing of
 * theirs. It is not a grab bag: only what two layers truly share lives here.
 */
#ifndef SL_BASE_H
#define SL_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

/* ---------------------------------------------------------------- errors */

/* Library functions return 0 on success or one of these (never abort on
 * bad input from outside). Keep the numbers stable: they appear in logs. */
typedef enum sl_err {
    SL_OK = 0,
    SL_EINVAL = 1,     /* bad argument or malformed input */
    SL_ENOMEM = 2,     /* allocation failed */
    SL_EIO = 3,        /* read/write/syscall failed (errno says more) */
    SL_ETIMEDOUT = 4,  /* deadline passed */
    SL_ENOENT = 5,     /* no such file, key or object */
    SL_ECHECKSUM = 6,  /* checksum mismatch */
    SL_ESTALE = 7,     /* stale generation / version */
    SL_EFULL = 8,      /* no free slot / queue full */
    SL_ECLOSED = 9,    /* object closed or peer gone */
    SL_EPROTO = 10,    /* protocol violation (magic, version, type) */
    SL_ERANGE = 11,    /* value or length out of range */
    SL_EAGAIN = 12,    /* try again (nothing ready yet) */
    SL_EUNSUPPORTED = 13, /* feature not available in this build/platform */
} sl_err;

/* Human-readable name of an error code; never NULL, static storage. */
const char *sl_strerror(int err);

/* Exit codes of the programs. */
enum { SL_EXIT_OK = 0, SL_EXIT_FAIL = 1, SL_EXIT_USAGE = 2, SL_EXIT_SKIP = 77 };

/* --------------------------------------------------------------- logging */

typedef enum sl_log_level {
    SL_LOG_ERROR = 0,
    SL_LOG_WARN = 1,
    SL_LOG_INFO = 2,
    SL_LOG_DEBUG = 3,
} sl_log_level;

/* Set the name printed on every log line (an actor's name, a program's
 * name) and the most verbose level printed. The name is copied. Call once
 * at start-up, before other threads log. */
void sl_log_init(const char *name, sl_log_level level);

/* Current level, for callers that want to skip expensive formatting. */
sl_log_level sl_log_get_level(void);

/* Write one line to stderr: "2026-11-29T03:04:05.123Z NAME LEVEL message".
 * Thread-safe (one write(2) per line). */
void sl_log(sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sl_vlog(sl_log_level level, const char *fmt, va_list ap);

#define sl_error(...) sl_log(SL_LOG_ERROR, __VA_ARGS__)
#define sl_warn(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define sl_info(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_debug(...)                                                          \
    do {                                                                       \
        if (sl_log_get_level() >= SL_LOG_DEBUG) sl_log(SL_LOG_DEBUG, __VA_ARGS__); \
    } while (0)

/* -------------------------------------------------------------- progress */

/* Progress of a long operation inside the library (loading a model's
 * weights, writing them): the library reports, the program decides where
 * it shows (actors: the user's terminal, metrics.h). WHAT is a short
 * label ("loading weights"), DONE/TOTAL in bytes; DONE == TOTAL ends the
 * operation. The hook is process-wide, NULL (the default) shows nothing;
 * set it once at start-up. A hook must be cheap and must not fail. */
typedef void (*sl_progress_hook)(const char *what, uint64_t done, uint64_t total);
void sl_progress_set_hook(sl_progress_hook fn);
void sl_progress_report(const char *what, uint64_t done, uint64_t total);

/* ------------------------------------------------------------- checksums */

/* CRC-32 (IEEE 802.3, the one zlib and Python's zlib.crc32 compute), used
 * on the wire so that a custom actor in any language can check frames with
 * its standard library. */
uint32_t sl_crc32(const void *data, size_t len);

/* 64-bit XXH3 hash of a byte range, for bulk data (shared-memory batches,
 * WAL records, checkpoints). */
uint64_t sl_hash64(const void *data, size_t len);

/* ------------------------------------------------------------------ time */

/* Monotonic clock in nanoseconds / milliseconds. */
uint64_t sl_now_ns(void);

/* Exactly n bytes from / to a file descriptor (pipes, sockets), retried
 * on EINTR and short transfers: 0, or -1 (end of file or an error). */
int sl_read_exact(int fd, void *buf, size_t n);
int sl_write_exact(int fd, const void *buf, size_t n);
static inline uint64_t sl_now_ms(void) { return sl_now_ns() / 1000000u; }

/* ------------------------------------------------------- little endian io */

static inline void sl_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void sl_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void sl_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t sl_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t sl_get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t sl_get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif /* SL_BASE_H */
