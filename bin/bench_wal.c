/*
 * bench_wal.c — `slime-bench wal [--dir D] [--size B] [--seconds S]`:
 * write-ahead log appends/s and MB/s with one fdatasync per batch, at a few
 * batch sizes, on io_uring and on the pwrite fallback, plus replay MB/s.
 * Prints one JSON object. The log lives in D (default $TMPDIR or /tmp):
 * point it at the disk the run directory will use, since fdatasync cost is
 * the disk's.
 */
#include "wal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

static int count_cb(void *user, uint64_t seq, const void *data, size_t len) {
    *(uint64_t *)user += len;
    return 0;
}

int bench_wal(int argc, char **argv) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    size_t size = 512;
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: slime-bench wal [--dir D] [--size B] [--seconds S]\n");
            return SL_EXIT_USAGE;
        }
    }
    if (size > SL_WAL_RECORD_MAX || !(seconds > 0 && seconds <= 600)) {
        fprintf(stderr, "slime-bench wal: --size 0..%u, --seconds in (0, 600]\n",
                SL_WAL_RECORD_MAX);
        return SL_EXIT_USAGE;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/slime-bench-wal.%d", dir, (int)getpid());
    struct statfs sf;
    long fstype = statfs(dir, &sf) == 0 ? (long)sf.f_type : 0;
    uint8_t *rec = malloc(size ? size : 1);
    if (!rec) return SL_EXIT_FAIL;
    for (size_t i = 0; i < size; i++) rec[i] = (uint8_t)(i * 31);

    static const unsigned batches[] = {1, 16, 256, 4096};
    static const unsigned backends[] = {0, SL_WAL_OPEN_NO_URING};
    printf("{\"bench\":\"wal\",\"dir\":\"%s\",\"fs_magic\":\"0x%lx\",\"record_bytes\":%zu,"
           "\"results\":[",
           dir, fstype, size);
    int first = 1, rc = SL_EXIT_OK;
    double replay_mbps = 0;
    for (size_t b = 0; b < SL_ARRAY_LEN(backends); b++) {
        for (size_t k = 0; k < SL_ARRAY_LEN(batches); k++) {
            unlink(path);
            sl_wal *w;
            if (sl_wal_open(path, backends[b], &w, NULL) != SL_OK) {
                rc = SL_EXIT_FAIL;
                goto out;
            }
            uint64_t n = 0, syncs = 0, t0 = sl_now_ns(), limit = (uint64_t)(seconds * 1e9), t;
            do {
                for (unsigned j = 0; j < batches[k]; j++)
                    if (sl_wal_append(w, rec, size, NULL) != SL_OK) rc = SL_EXIT_FAIL;
                if (sl_wal_sync(w) != SL_OK) rc = SL_EXIT_FAIL;
                n += batches[k];
                syncs++;
                t = sl_now_ns() - t0;
            } while (t < limit && rc == SL_EXIT_OK);
            const char *be = sl_wal_backend(w);
            uint64_t file_bytes = sl_wal_size(w);
            if (sl_wal_close(w) != SL_OK || rc != SL_EXIT_OK) {
                rc = SL_EXIT_FAIL;
                goto out;
            }
            double s = (double)t / 1e9;
            printf("%s{\"backend\":\"%s\",\"batch\":%u,\"records\":%llu,\"seconds\":%.3f,"
                   "\"appends_per_s\":%.0f,\"mb_per_s\":%.2f,\"syncs_per_s\":%.0f,"
                   "\"file_mb_per_s\":%.2f}",
                   first ? "" : ",", be, batches[k], (unsigned long long)n, s, (double)n / s,
                   (double)n * (double)size / 1e6 / s, (double)syncs / s,
                   (double)file_bytes / 1e6 / s);
            first = 0;
            fflush(stdout);
            if (b == 0 && k + 1 == SL_ARRAY_LEN(batches)) { /* replay the biggest log */
                uint64_t payload = 0, r0 = sl_now_ns();
                sl_wal_info info;
                if (sl_wal_replay(path, count_cb, &payload, &info) != 0 || info.records != n) {
                    rc = SL_EXIT_FAIL;
                    goto out;
                }
                replay_mbps = (double)info.end_offset / 1e6 / ((double)(sl_now_ns() - r0) / 1e9);
            }
        }
    }
out:
    printf("],\"replay_mb_per_s\":%.1f}\n", replay_mbps);
    unlink(path);
    free(rec);
    if (rc != SL_EXIT_OK) fprintf(stderr, "slime-bench wal: a write or sync failed\n");
    return rc;
}
