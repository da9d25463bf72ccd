/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors reader
 * (kernels/safetensors.h: sl_safetensors_open).
 *
 * Input: the bytes of a .safetensors file (8-byte header length, JSON
 * header, data), written to a memfd and opened as /proc/self/fd/N. An
 * input starting with '{' is instead taken as a model.safetensors.index.json
 * next to one valid shard "a.safetensors" (in a private temporary folder),
 * to reach the index parser. Properties: open never crashes or leaks; every
 * tensor of an opened file lies inside the mapping (each is converted to
 * f32 under ASan), numel matches the shape, and names are sorted and unique.
 * What it is not: a test of model loading (model.h checks the shapes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

/* The shard the index inputs point at: tensors "x" (F32 [2]) and "y" (BF16 [1]). */
static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/sl_fuzz_st.XXXXXX");
    if (!mkdtemp(dir)) abort();
    static const char hdr[] =
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"y\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[8,10]}}";
    char p[128];
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    uint8_t n[8] = {0};
    uint64_t len = sizeof hdr - 1;
    for (int i = 0; i < 8; i++) n[i] = (uint8_t)(len >> (8 * i));
    fwrite(n, 1, 8, f);
    fwrite(hdr, 1, len, f);
    static const uint8_t body[10] = {0, 0, 128, 63, 0, 0, 0, 64, 128, 63};
    fwrite(body, 1, sizeof body, f);
    fclose(f);
}

static void cleanup(void) {
    char p[128];
    snprintf(p, sizeof p, "%s/a.safetensors", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/m.index.json", dir);
    unlink(p);
    rmdir(dir);
}

static void check(const sl_safetensors *st) {
    size_t n = sl_safetensors_count(st);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_st_tensor *t = sl_safetensors_at(st, i);
        FUZZ_CHECK(t && t->name);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= SL_ST_MAX_DIMS);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            numel *= t->shape[d];
        }
        FUZZ_CHECK(numel == t->numel);
        FUZZ_CHECK(t->nbytes == (size_t)t->numel * sl_dtype_size(t->dtype));
        FUZZ_CHECK(t->shard >= 0 && t->shard < sl_safetensors_shard_count(st));
        FUZZ_CHECK(sl_safetensors_find(st, t->name) == t);
        if (i) FUZZ_CHECK(strcmp(sl_safetensors_at(st, i - 1)->name, t->name) < 0);
        if (t->numel <= (1 << 20)) {
            float *dst = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
            if (!dst) abort();
            sl_st_tensor_to_f32(t, dst);
            free(dst);
        }
        total += t->numel;
    }
    FUZZ_CHECK(total == sl_safetensors_total_numel(st));
    FUZZ_CHECK(sl_safetensors_at(st, n) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        make_dir();
        atexit(cleanup);
    }
    char err[SL_ST_ERRLEN];
    char path[160];
    int fd = -1;
    if (size && data[0] == '{') {
        snprintf(path, sizeof path, "%s/m.index.json", dir);
        FILE *f = fopen(path, "wb");
        if (!f) abort();
        fwrite(data, 1, size, f);
        fclose(f);
    } else {
        fd = fuzz_memfd(data, size, path, sizeof path);
    }
    sl_safetensors *st = (sl_safetensors *)1;
    err[0] = 0;
    int rc = sl_safetensors_open(path, &st, err, sizeof err);
    if (rc) {
        FUZZ_CHECK(st == NULL);
        FUZZ_CHECK(err[0] != 0);
    } else {
        FUZZ_CHECK(st != NULL);
        check(st);
        sl_safetensors_close(st);
    }
    if (fd >= 0) close(fd);
    return 0;
}
