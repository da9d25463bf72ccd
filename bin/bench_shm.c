/*
 * bench_shm.c — `slime-bench shm [--bytes N] [--iters K]`: shared-memory
 * batch handoff between two processes against a plain memcpy of the same
 * bytes in one process. Prints one JSON object.
 *
 * One handoff, timed by the producer: publish the slot (which hashes it),
 * send the 64-byte descriptor over a socketpair, the consumer validates it,
 * reads the batch in place (sums it as u64 words), releases the slot and
 * writes the sum back. "verified" rehashes the bytes in the consumer,
 * "trusted" relies on the descriptor's checksum matching the producer's
 * record. The producer fills the slot before the clock starts. Figures are
 * medians over K iterations after one warm-up. Not a dependency of the
 * mailbox module: the descriptor travels over a bare socketpair.
 */
#include "shm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    return v[n / 2];
}

static uint64_t sum_words(const void *p, size_t n) {
    const uint64_t *w = p;
    uint64_t s = 0;
    for (size_t i = 0; i < n / 8; i++) s += w[i];
    return s;
}

static int read_full(int fd, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k <= 0) return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

/* Consumer process: per message {flags u8, desc[64]}, answer the sum. */
static int consumer(int sock) {
    sl_shm_view *v = NULL;
    uint8_t msg[1 + SL_SHM_DESC_SIZE];
    while (read_full(sock, msg, sizeof msg) == 0) {
        sl_shm_desc d;
        const void *p;
        size_t n;
        uint64_t s = 0;
        if (sl_shm_desc_decode(msg + 1, SL_SHM_DESC_SIZE, &d) != SL_OK) return 1;
        if (!v && sl_shm_arena_open(&d, 0, &v) != SL_OK) return 1;
        int rc = sl_shm_read(v, &d, msg[0] ? SL_SHM_READ_TRUST_DATA : 0, &p, &n);
        if (rc == SL_OK) {
            s = sum_words(p, n);
            rc = sl_shm_release(v, &d);
        }
        if (rc != SL_OK) s = ~0ull;
        if (write(sock, &s, sizeof s) != (ssize_t)sizeof s) return 1;
    }
    sl_shm_view_close(v);
    return 0;
}

int bench_shm(int argc, char **argv) {
    size_t bytes = 64u << 20;
    int iters = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
            bytes = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: slime-bench shm [--bytes N] [--iters K]\n");
            return SL_EXIT_USAGE;
        }
    }
    bytes &= ~(size_t)7;
    if (bytes == 0 || bytes > (8ull << 30) || iters < 1 || iters > 100000) {
        fprintf(stderr, "slime-bench shm: --bytes 8..8G, --iters 1..100000\n");
        return SL_EXIT_USAGE;
    }
    sl_shm_arena *a;
    if (sl_shm_arena_create("bench", 2, bytes, &a) != SL_OK) return SL_EXIT_FAIL;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return SL_EXIT_FAIL;
    pid_t pid = fork();
    if (pid < 0) return SL_EXIT_FAIL;
    if (pid == 0) {
        close(sv[0]);
        _exit(consumer(sv[1]));
    }
    close(sv[1]);

    uint64_t *t[2] = {calloc((size_t)iters, 8), calloc((size_t)iters, 8)};
    uint64_t *tm = calloc((size_t)iters, 8), *tr = calloc((size_t)iters, 8);
    int ok = t[0] && t[1] && tm && tr;
    for (int mode = 0; mode < 2 && ok; mode++) {
        for (int it = -1; it < iters && ok; it++) {
            void *p;
            uint32_t slot;
            sl_shm_desc d;
            if (sl_shm_slot_acquire(a, &p, &slot) != SL_OK) { ok = 0; break; }
            memset(p, it & 0xff, bytes);
            uint64_t want = sum_words(p, bytes);
            uint64_t t0 = sl_now_ns();
            uint8_t msg[1 + SL_SHM_DESC_SIZE];
            msg[0] = (uint8_t)mode;
            if (sl_shm_slot_publish(a, slot, bytes, 1, &d) != SL_OK) { ok = 0; break; }
            sl_shm_desc_encode(&d, msg + 1);
            uint64_t got;
            if (write(sv[0], msg, sizeof msg) != (ssize_t)sizeof msg ||
                read_full(sv[0], &got, sizeof got) != 0 || got != want) {
                ok = 0;
                break;
            }
            if (it >= 0) t[mode][it] = sl_now_ns() - t0;
        }
    }
    close(sv[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!ok || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "slime-bench shm: the handoff failed\n");
        sl_shm_arena_close(a);
        return SL_EXIT_FAIL;
    }

    /* Baselines in one process: memcpy of the same bytes, and one read pass. */
    uint8_t *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) return SL_EXIT_FAIL;
    memset(src, 1, bytes);
    memset(dst, 2, bytes);
    volatile uint64_t sink = 0;
    for (int it = -1; it < iters; it++) {
        uint64_t t0 = sl_now_ns();
        memcpy(dst, src, bytes);
        uint64_t t1 = sl_now_ns();
        sink += sum_words(dst, bytes);
        uint64_t t2 = sl_now_ns();
        if (it >= 0) tm[it] = t1 - t0, tr[it] = t2 - t1;
        src[it & 1023] ^= 1;
    }
    (void)sink;
    double gb = (double)bytes / 1e9;
    double v_ns = (double)median(t[0], iters), r_ns = (double)median(t[1], iters);
    double m_ns = (double)median(tm, iters), s_ns = (double)median(tr, iters);
    printf("{\"bench\":\"shm\",\"bytes\":%zu,\"iters\":%d,"
           "\"handoff_verified_gbps\":%.2f,\"handoff_verified_ms\":%.3f,"
           "\"handoff_trusted_gbps\":%.2f,\"handoff_trusted_ms\":%.3f,"
           "\"memcpy_gbps\":%.2f,\"memcpy_ms\":%.3f,"
           "\"read_pass_gbps\":%.2f,\"memcpy_plus_read_gbps\":%.2f,"
           "\"note\":\"handoff = publish (hash) + descriptor over a socketpair + consumer "
           "validate (+rehash when verified) + in-place sum + release + reply; memcpy = one "
           "in-process copy of the same bytes; medians\"}\n",
           bytes, iters, gb / (v_ns / 1e9), v_ns / 1e6, gb / (r_ns / 1e9), r_ns / 1e6,
           gb / (m_ns / 1e9), m_ns / 1e6, gb / (s_ns / 1e9), gb / ((m_ns + s_ns) / 1e9));
    free(src);
    free(dst);
    free(t[0]);
    free(t[1]);
    free(tm);
    free(tr);
    sl_shm_arena_close(a);
    return SL_EXIT_OK;
}
