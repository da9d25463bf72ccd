/*
 * base.c — error names, the line logger, checksums and the clock shared by
 * every layer. See base.h.
 */
#include "base.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

const char *sl_strerror(int err) {
    switch (err) {
    case SL_OK: return "ok";
    case SL_EINVAL: return "invalid argument or malformed input";
    case SL_ENOMEM: return "out of memory";
    case SL_EIO: return "i/o error";
    case SL_ETIMEDOUT: return "timed out";
    case SL_ENOENT: return "not found";
    case SL_ECHECKSUM: return "checksum mismatch";
    case SL_ESTALE: return "stale generation";
    case SL_EFULL: return "no free slot";
    case SL_ECLOSED: return "closed";
    case SL_EPROTO: return "protocol error";
    case SL_ERANGE: return "out of range";
    case SL_EAGAIN: return "try again";
    case SL_EUNSUPPORTED: return "not supported";
    default: return "unknown error";
    }
}

/* ---------------------------------------------------------------- logging */

static char log_name[64] = "slime";
static sl_log_level log_level = SL_LOG_INFO;

void sl_log_init(const char *name, sl_log_level level) {
    if (name) snprintf(log_name, sizeof log_name, "%s", name);
    log_level = level;
}

sl_log_level sl_log_get_level(void) { return log_level; }

void sl_vlog(sl_log_level level, const char *fmt, va_list ap) {
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (level > log_level) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_name,
                     names[level < 4 ? level : 3]);
    if (n < 0) return;
    if ((size_t)n < sizeof line) {
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        if (m > 0) n += m;
    }
    if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* one write per line keeps lines whole when several threads log */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void sl_log(sl_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_vlog(level, fmt, ap);
    va_end(ap);
}

/* --------------------------------------------------------------- progress */

static sl_progress_hook progress_hook;

void sl_progress_set_hook(sl_progress_hook fn) { progress_hook = fn; }

void sl_progress_report(const char *what, uint64_t done, uint64_t total) {
    sl_progress_hook h = progress_hook;
    if (h) h(what ? what : "", done, total);
}

/* -------------------------------------------------------------- checksums */

uint32_t sl_crc32(const void *data, size_t len) {
    uLong c = crc32(0L, Z_NULL, 0);
    const Bytef *p = data;
    /* zlib takes uInt lengths: feed large ranges in pieces */
    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

uint64_t sl_hash64(const void *data, size_t len) { return XXH3_64bits(data, len); }

uint64_t sl_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int sl_read_exact(int fd, void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}

int sl_write_exact(int fd, const void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, (const char *)buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        done += (size_t)w;
    }
    return 0;
}
