/*
 * fuzz_util.h — small helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * What it is: turning fuzzer bytes into the shapes the parsers take (a
 * NUL-terminated copy, a file named /proc/self/fd/N backed by a memfd) and
 * an oracle macro that aborts, so libFuzzer records a crash.
 * What it is not: part of the library; only the fuzz targets include it.
 */
#ifndef SL_FUZZ_UTIL_H
#define SL_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A property the library promises does not hold: report and abort (a
 * crash for libFuzzer, with the input saved). */
#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "fuzz: property failed: %s (%s:%d)\n", #cond, __FILE__,        \
                    __LINE__);                                                            \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* A malloc'd NUL-terminated copy of data[0..size) (the parsers that take C
 * strings get exactly the fuzzer's bytes, embedded NULs cut them short). */
static inline char *fuzz_strdup(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* Write data[0..size) into a fresh memfd and put its path, /proc/self/fd/N,
 * in path[0..cap). Returns the fd (close it when done) or aborts: a fuzz
 * run without memfds is not a finding about the parser. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0) {
        perror("fuzz: memfd_create");
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            perror("fuzz: write");
            abort();
        }
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

#endif /* SL_FUZZ_UTIL_H */
