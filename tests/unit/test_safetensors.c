/*
 * test_safetensors.c — round trips (F32, BF16 with exact rounding), F16
 * reading, sharded save/load with an index, and a table of hostile files
 * each refused with the right error code and a message naming the file and
 * the problem (never a crash).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "safetensors.h"

static char tmpdir[256];

static void path_in(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* A safetensors file from a header text and a data section of `dlen`
 * bytes (filled with a pattern). hlen_override != 0 replaces the length. */
static void write_st(const char *path, const char *header, size_t dlen, uint64_t hlen_override) {
    size_t hl = strlen(header);
    size_t tot = 8 + hl + dlen;
    uint8_t *b = malloc(tot);
    assert_non_null(b);
    sl_put_u64(b, hlen_override ? hlen_override : hl);
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < dlen; i++) b[8 + hl + i] = (uint8_t)(i * 7);
    write_bytes(path, b, tot);
    free(b);
}

static int setup_dir(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sl_test_st_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ conversions */

static void bf16_rounds_to_nearest_even(void **state) {
    (void)state;
    /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to even (1). */
    assert_int_equal(sl_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    /* 1 + 3*2^-8 lies halfway between 1+2^-7 (odd) and 1+2^-6 (even). */
    assert_int_equal(sl_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    /* just above the half-way point rounds up */
    assert_int_equal(sl_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    assert_int_equal(sl_f32_to_bf16(-2.0f), 0xc000);
    assert_int_equal(sl_f32_to_bf16(INFINITY), 0x7f80);
    /* the largest float rounds to +inf, as torch does */
    assert_int_equal(sl_f32_to_bf16(0x1.fffffep127f), 0x7f80);
    uint16_t nan = sl_f32_to_bf16(NAN);
    assert_true(isnan(sl_bf16_to_f32(nan)));
    assert_true(sl_bf16_to_f32(0x3f81) == 1.0f + 0x1p-7f);
}

static void f16_widens_exactly(void **state) {
    (void)state;
    assert_true(sl_f16_to_f32(0x3c00) == 1.0f);
    assert_true(sl_f16_to_f32(0xc000) == -2.0f);
    assert_true(sl_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(sl_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(sl_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(sl_f16_to_f32(0x7c00) == INFINITY);
    assert_true(sl_f16_to_f32(0xfc00) == -INFINITY);
    assert_true(isnan(sl_f16_to_f32(0x7e00)));
    assert_true(signbit(sl_f16_to_f32(0x8000)));
}

/* ------------------------------------------------------------ round trips */

static float test_val(size_t i) { return (float)sin((double)i * 0.731) * 3.0f + (float)i * 1e-3f; }

static void f32_round_trip_is_exact_and_layout_matches_transformers(void **state) {
    (void)state;
    enum { A = 6 * 5, B = 7 };
    float a[A], b[B], s = 2.5f;
    for (size_t i = 0; i < A; i++) a[i] = test_val(i);
    for (size_t i = 0; i < B; i++) b[i] = -test_val(i + 100);
    sl_st_save_tensor ts[3] = {
        {.name = "model.layers.0.w", .ndim = 2, .shape = {6, 5}, .data = a},
        {.name = "lm_head.weight", .ndim = 1, .shape = {B}, .data = b},
        {.name = "scalar", .ndim = 0, .data = &s},
    };
    char err[SL_ST_ERRLEN], path[300];
    path_in(path, sizeof path, "rt_f32.safetensors");
    assert_int_equal(sl_safetensors_save_file(path, ts, 3, SL_DTYPE_F32, err, sizeof err), 0);

    /* layout: header length a multiple of 8, keys sorted, __metadata__ pt */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t lb[8];
    assert_int_equal(fread(lb, 1, 8, f), 8);
    uint64_t hl = sl_get_u64(lb);
    assert_int_equal(hl % 8, 0);
    char *h = calloc(1, hl + 1);
    assert_int_equal(fread(h, 1, hl, f), hl);
    fclose(f);
    assert_non_null(strstr(h, "\"__metadata__\":{\"format\":\"pt\"}"));
    char *p1 = strstr(h, "\"lm_head.weight\""), *p2 = strstr(h, "\"model.layers.0.w\""),
         *p3 = strstr(h, "\"scalar\"");
    assert_true(p1 && p2 && p3 && p1 < p2 && p2 < p3);
    /* data in name order: lm_head first at offset 0 */
    assert_non_null(strstr(h, "\"lm_head.weight\":{\"data_offsets\":[0,28],\"dtype\":\"F32\",\"shape\":[7]}"));
    free(h);

    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open(path, &st, err, sizeof err), 0);
    assert_int_equal(sl_safetensors_count(st), 3);
    assert_string_equal(sl_safetensors_at(st, 0)->name, "lm_head.weight");
    assert_int_equal(sl_safetensors_total_numel(st), A + B + 1);
    const sl_st_tensor *t = sl_safetensors_find(st, "model.layers.0.w");
    assert_non_null(t);
    assert_int_equal(t->dtype, SL_DTYPE_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 6);
    assert_int_equal(t->shape[1], 5);
    assert_int_equal((uintptr_t)t->data % 4, 0);
    float got[A];
    int64_t shp[2] = {6, 5};
    assert_int_equal(sl_safetensors_read_f32(st, "model.layers.0.w", shp, 2, got, err, sizeof err), 0);
    assert_memory_equal(got, a, sizeof a);
    float gs = 0;
    assert_int_equal(sl_safetensors_read_f32(st, "scalar", NULL, 0, &gs, err, sizeof err), 0);
    assert_true(gs == 2.5f);
    assert_null(sl_safetensors_find(st, "nope"));
    sl_safetensors_close(st);
}

static void bf16_round_trip_gives_the_rounded_values(void **state) {
    (void)state;
    enum { N = 64 };
    float a[N];
    for (size_t i = 0; i < N; i++) a[i] = test_val(i) * 17.0f;
    a[0] = 1.0f + 0x1p-8f;
    a[1] = 1.0f + 3 * 0x1p-8f;
    a[2] = -0.0f;
    sl_st_save_tensor t = {.name = "w", .ndim = 2, .shape = {8, 8}, .data = a};
    char err[SL_ST_ERRLEN], dir[300];
    path_in(dir, sizeof dir, "rt_bf16");
    assert_int_equal(sl_safetensors_save(dir, &t, 1, SL_DTYPE_BF16, 0, err, sizeof err), 0);
    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open(dir, &st, err, sizeof err), 0);
    const sl_st_tensor *r = sl_safetensors_find(st, "w");
    assert_non_null(r);
    assert_int_equal(r->dtype, SL_DTYPE_BF16);
    assert_int_equal(r->nbytes, N * 2);
    float got[N];
    int64_t shp[2] = {8, 8};
    assert_int_equal(sl_safetensors_read_f32(st, "w", shp, 2, got, err, sizeof err), 0);
    for (size_t i = 0; i < N; i++) {
        float want = sl_bf16_to_f32(sl_f32_to_bf16(a[i]));
        assert_true(got[i] == want);
        assert_true(fabsf(got[i] - a[i]) <= fabsf(a[i]) * 0x1p-8f);
    }
    assert_true(got[0] == 1.0f);
    assert_true(got[1] == 1.0f + 0x1p-6f);
    assert_true(signbit(got[2]));
    sl_safetensors_close(st);
}

static void f16_tensors_are_read_and_widened(void **state) {
    (void)state;
    char path[300], err[SL_ST_ERRLEN];
    path_in(path, sizeof path, "f16.safetensors");
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}";
    size_t hl = strlen(hdr);
    uint8_t b[8 + 128];
    sl_put_u64(b, hl);
    memcpy(b + 8, hdr, hl);
    uint16_t v[4] = {0x3c00, 0xc000, 0x0001, 0x7bff};
    for (int i = 0; i < 4; i++) sl_put_u16(b + 8 + hl + 2 * i, v[i]);
    write_bytes(path, b, 8 + hl + 8);
    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open(path, &st, err, sizeof err), 0);
    float got[4];
    int64_t shp[2] = {2, 2};
    assert_int_equal(sl_safetensors_read_f32(st, "h", shp, 2, got, err, sizeof err), 0);
    assert_true(got[0] == 1.0f && got[1] == -2.0f && got[2] == 0x1p-24f && got[3] == 65504.0f);
    sl_safetensors_close(st);
}

static void shape_mismatch_and_missing_tensor_are_named(void **state) {
    (void)state;
    float a[6] = {1, 2, 3, 4, 5, 6};
    sl_st_save_tensor t = {.name = "model.norm.weight", .ndim = 2, .shape = {2, 3}, .data = a};
    char err[SL_ST_ERRLEN], path[300];
    path_in(path, sizeof path, "mismatch.safetensors");
    assert_int_equal(sl_safetensors_save_file(path, &t, 1, SL_DTYPE_F32, err, sizeof err), 0);
    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open(path, &st, err, sizeof err), 0);
    float got[6];
    int64_t want[2] = {3, 2};
    assert_int_equal(sl_safetensors_read_f32(st, "model.norm.weight", want, 2, got, err, sizeof err),
                     SL_EINVAL);
    assert_non_null(strstr(err, "model.norm.weight"));
    assert_non_null(strstr(err, "expected shape [3, 2], found [2, 3]"));
    assert_non_null(strstr(err, "mismatch.safetensors"));
    assert_int_equal(sl_safetensors_read_f32(st, "lm_head.weight", want, 2, got, err, sizeof err),
                     SL_ENOENT);
    assert_non_null(strstr(err, "'lm_head.weight' not found"));
    sl_safetensors_close(st);
}

static void sharded_save_writes_an_index_and_loads_back(void **state) {
    (void)state;
    enum { N = 100 };
    static float w[5][N];
    sl_st_save_tensor ts[5];
    char names[5][32];
    for (int k = 0; k < 5; k++) {
        for (int i = 0; i < N; i++) w[k][i] = test_val((size_t)(k * N + i));
        snprintf(names[k], sizeof names[k], "model.layers.%d.weight", 4 - k);
        ts[k] = (sl_st_save_tensor){.name = names[k], .ndim = 2, .shape = {10, 10}, .data = w[k]};
    }
    char err[SL_ST_ERRLEN], dir[300], p[400];
    path_in(dir, sizeof dir, "sharded");
    mkdir(dir, 0755);
    /* a stale single file must disappear */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_bytes(p, "junk", 4);
    /* 400 bytes per tensor, shard limit 900: shards of 2, 2, 1 tensors */
    assert_int_equal(sl_safetensors_save(dir, ts, 5, SL_DTYPE_F32, 900, err, sizeof err), 0);
    assert_int_not_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/model-00003-of-00003.safetensors", dir);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    json_error_t je;
    json_t *idx = json_load_file(p, 0, &je);
    assert_non_null(idx);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(idx, "metadata"), "total_size")),
                     5 * N * 4);
    json_t *wm = json_object_get(idx, "weight_map");
    assert_int_equal(json_object_size(wm), 5);
    assert_string_equal(json_string_value(json_object_get(wm, "model.layers.0.weight")),
                        "model-00001-of-00003.safetensors");
    assert_string_equal(json_string_value(json_object_get(wm, "model.layers.4.weight")),
                        "model-00003-of-00003.safetensors");
    json_decref(idx);

    sl_safetensors *st;
    assert_int_equal(sl_safetensors_open(dir, &st, err, sizeof err), 0);
    assert_int_equal(sl_safetensors_shard_count(st), 3);
    assert_int_equal(sl_safetensors_count(st), 5);
    for (int k = 0; k < 5; k++) {
        float got[N];
        int64_t shp[2] = {10, 10};
        assert_int_equal(sl_safetensors_read_f32(st, names[k], shp, 2, got, err, sizeof err), 0);
        assert_memory_equal(got, w[k], sizeof got);
    }
    sl_safetensors_close(st);
    /* the index file itself opens too */
    assert_int_equal(sl_safetensors_open(p, &st, err, sizeof err), 0);
    sl_safetensors_close(st);

    /* saving again as one file removes the index */
    assert_int_equal(sl_safetensors_save(dir, ts, 5, SL_DTYPE_BF16, 0, err, sizeof err), 0);
    assert_int_not_equal(access(p, F_OK), 0);
    assert_int_equal(sl_safetensors_open(dir, &st, err, sizeof err), 0);
    assert_int_equal(sl_safetensors_shard_count(st), 1);
    sl_safetensors_close(st);
}

static void saving_refuses_duplicates_and_f16(void **state) {
    (void)state;
    float a[2] = {1, 2};
    sl_st_save_tensor ts[2] = {
        {.name = "x", .ndim = 1, .shape = {2}, .data = a},
        {.name = "x", .ndim = 1, .shape = {2}, .data = a},
    };
    char err[SL_ST_ERRLEN], path[300];
    path_in(path, sizeof path, "dup_save.safetensors");
    assert_int_equal(sl_safetensors_save_file(path, ts, 2, SL_DTYPE_F32, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "duplicate tensor name 'x'"));
    assert_int_equal(sl_safetensors_save_file(path, ts, 1, SL_DTYPE_F16, err, sizeof err), SL_EINVAL);
    assert_int_not_equal(access(path, F_OK), 0);
}

/* ---------------------------------------------------------- hostile files */

typedef struct hostile {
    const char *name;
    const char *header;   /* NULL: raw bytes below */
    size_t dlen;
    uint64_t hlen;        /* override of the length field, 0 = real */
    const char *raw;      /* raw file content when header is NULL */
    size_t rawlen;
    int want;             /* expected error code */
    const char *msg;      /* substring of the message */
} hostile;

#define T1(extra) "{\"a\":{" extra "}}"

static const hostile cases[] = {
    {"an empty file is refused as truncated", NULL, 0, 0, "", 0, SL_EINVAL, "truncated"},
    {"a five-byte file is refused as truncated", NULL, 0, 0, "\x05\x00\x00\x00\x00", 5, SL_EINVAL,
     "truncated"},
    {"a header length past the end is refused", "{}", 0, 4096, NULL, 0, SL_EINVAL,
     "runs past the end"},
    {"an absurd header length is refused", "{}", 0, 1ull << 40, NULL, 0, SL_EINVAL,
     "absurd header length"},
    {"a header that is not JSON is refused", "{nope", 0, 0, NULL, 0, SL_EINVAL, "not valid JSON"},
    {"a JSON array header is refused", "[1,2]", 0, 0, NULL, 0, SL_EINVAL, "not a JSON object"},
    {"a header with trailing garbage is refused", "{} garbage", 0, 0, NULL, 0, SL_EINVAL,
     "not valid JSON"},
    {"a tensor entry that is not an object is refused", "{\"a\":5}", 0, 0, NULL, 0, SL_EINVAL,
     "not a JSON object"},
    {"a missing dtype is refused", T1("\"shape\":[2],\"data_offsets\":[0,8]"), 8, 0, NULL, 0,
     SL_EINVAL, "missing dtype"},
    {"a dtype that is not a string is refused", T1("\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]"),
     8, 0, NULL, 0, SL_EINVAL, "dtype is not a string"},
    {"an F64 dtype is refused as unsupported",
     T1("\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]"), 8, 0, NULL, 0, SL_EUNSUPPORTED,
     "unknown/unsupported dtype 'F64'"},
    {"an invented dtype is refused", T1("\"dtype\":\"Q4_K\",\"shape\":[1],\"data_offsets\":[0,1]"), 1,
     0, NULL, 0, SL_EUNSUPPORTED, "unknown/unsupported dtype 'Q4_K'"},
    {"a missing shape is refused", T1("\"dtype\":\"F32\",\"data_offsets\":[0,8]"), 8, 0, NULL, 0,
     SL_EINVAL, "missing shape"},
    {"a shape that is not an array is refused", T1("\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]"),
     8, 0, NULL, 0, SL_EINVAL, "shape is not an array"},
    {"a negative dimension is refused", T1("\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]"), 8,
     0, NULL, 0, SL_EINVAL, "shape[0] is not a non-negative integer"},
    {"a fractional dimension is refused", T1("\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]"),
     8, 0, NULL, 0, SL_EINVAL, "shape[0]"},
    {"a shape whose product overflows is refused",
     T1("\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]"), 8, 0, NULL, 0,
     SL_EINVAL, "overflows"},
    {"a rank above eight is refused",
     T1("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]"), 4, 0, NULL, 0,
     SL_EUNSUPPORTED, "rank 9"},
    {"missing data_offsets are refused", T1("\"dtype\":\"F32\",\"shape\":[2]"), 8, 0, NULL, 0, SL_EINVAL,
     "missing data_offsets"},
    {"data_offsets with one number are refused", T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]"),
     8, 0, NULL, 0, SL_EINVAL, "[begin, end]"},
    {"negative data_offsets are refused",
     T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]"), 8, 0, NULL, 0, SL_EINVAL,
     "[begin, end]"},
    {"reversed data_offsets are refused", T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]"), 8,
     0, NULL, 0, SL_EINVAL, "end before begin"},
    {"data_offsets past the data are refused",
     T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"), 4, 0, NULL, 0, SL_EINVAL,
     "out of range"},
    {"a length that does not match the shape is refused",
     T1("\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"), 8, 0, NULL, 0, SL_EINVAL,
     "does not match shape [3]"},
    {"overlapping tensors are refused",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, 0, NULL, 0, SL_EINVAL, "overlap"},
    {"a hole between tensors is refused",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
     12, 0, NULL, 0, SL_EINVAL, "hole"},
    {"trailing bytes after the tensors are refused",
     T1("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]"), 12, 0, NULL, 0, SL_EINVAL,
     "data section is 12 bytes"},
    {"duplicate tensor names are refused",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
     8, 0, NULL, 0, SL_EINVAL, "duplicate"},
    {"a __metadata__ that is not an object is refused", "{\"__metadata__\":[1]}", 0, 0, NULL, 0,
     SL_EINVAL, "__metadata__ is not a JSON object"},
    {"a __metadata__ value that is not a string is refused", "{\"__metadata__\":{\"format\":1}}", 0, 0,
     NULL, 0, SL_EINVAL, "__metadata__ value 'format'"},
    {"an empty tensor name is refused", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
     4, 0, NULL, 0, SL_EINVAL, "empty name"},
};

static void hostile_file_is_refused(void **state) {
    const hostile *h = *state;
    char path[300], err[SL_ST_ERRLEN];
    path_in(path, sizeof path, "hostile.safetensors");
    if (h->header) write_st(path, h->header, h->dlen, h->hlen);
    else write_bytes(path, h->raw, h->rawlen);
    sl_safetensors *st = (sl_safetensors *)1;
    err[0] = 0;
    int rc = sl_safetensors_open(path, &st, err, sizeof err);
    print_message("    %s -> %s\n", h->name, err);
    assert_int_equal(rc, h->want);
    assert_null(st);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, h->msg));
}

/* ---------------------------------------------------------- hostile index */

static void write_text(const char *dir, const char *name, const char *text) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    write_bytes(p, text, strlen(text));
}

static const char *good_shard =
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";

/* A fresh folder with shard s1.safetensors holding tensor "a" and the
 * given index text. */
static void index_case(const char *sub, const char *index, char *dir, size_t len) {
    snprintf(dir, len, "%s/%s", tmpdir, sub);
    mkdir(dir, 0755);
    char p[400];
    snprintf(p, sizeof p, "%s/s1.safetensors", dir);
    write_st(p, good_shard, 4, 0);
    if (index) write_text(dir, "model.safetensors.index.json", index);
}

static void expect_open_fails(const char *dir, int want, const char *msg) {
    char err[SL_ST_ERRLEN] = "";
    sl_safetensors *st = (sl_safetensors *)1;
    int rc = sl_safetensors_open(dir, &st, err, sizeof err);
    print_message("    -> %s\n", err);
    assert_int_equal(rc, want);
    assert_null(st);
    assert_non_null(strstr(err, msg));
    assert_non_null(strstr(err, tmpdir));
}

static void a_shard_named_in_the_index_but_missing_is_refused(void **state) {
    (void)state;
    char dir[300];
    index_case("ix_missing", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}",
               dir, sizeof dir);
    expect_open_fails(dir, SL_ENOENT, "shard 's2.safetensors' named in the index is missing");
}

static void an_index_that_is_not_json_is_refused(void **state) {
    (void)state;
    char dir[300];
    index_case("ix_badjson", "{\"weight_map\":", dir, sizeof dir);
    expect_open_fails(dir, SL_EINVAL, "index is not valid JSON");
}

static void an_index_without_weight_map_is_refused(void **state) {
    (void)state;
    char dir[300];
    index_case("ix_nowm", "{\"metadata\":{\"total_size\":4}}", dir, sizeof dir);
    expect_open_fails(dir, SL_EINVAL, "no \"weight_map\" object");
}

static void an_index_weight_map_value_that_is_not_a_string_is_refused(void **state) {
    (void)state;
    char dir[300];
    index_case("ix_nonstr", "{\"weight_map\":{\"a\":1}}", dir, sizeof dir);
    expect_open_fails(dir, SL_EINVAL, "weight_map['a'] is not a file name string");
}

static void an_index_pointing_outside_the_folder_is_refused(void **state) {
    (void)state;
    char dir[300];
    index_case("ix_escape", "{\"weight_map\":{\"a\":\"../s1.safetensors\"}}", dir, sizeof dir);
    expect_open_fails(dir, SL_EINVAL, "not a file in the same folder");
}

static void an_index_naming_a_tensor_its_shard_lacks_is_refused(void **state) {
    (void)state;
    char dir[300];
    index_case("ix_lacks", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"zz\":\"s1.safetensors\"}}", dir,
               sizeof dir);
    expect_open_fails(dir, SL_EINVAL, "tensor 'zz' is in the index but not in shard 's1.safetensors'");
}

static void an_index_with_bad_total_size_is_refused(void **state) {
    (void)state;
    char dir[300];
    index_case("ix_total", "{\"metadata\":{\"total_size\":\"x\"},\"weight_map\":{\"a\":\"s1.safetensors\"}}",
               dir, sizeof dir);
    expect_open_fails(dir, SL_EINVAL, "total_size");
}

static void a_tensor_in_two_shards_is_refused(void **state) {
    (void)state;
    char dir[300], p[400];
    index_case("ix_dup", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}", dir,
               sizeof dir);
    snprintf(p, sizeof p, "%s/s2.safetensors", dir);
    write_st(p,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             8, 0);
    expect_open_fails(dir, SL_EINVAL, "tensor 'a' appears in two shards");
}

static void a_broken_shard_behind_an_index_is_named(void **state) {
    (void)state;
    char dir[300], p[400];
    index_case("ix_broken", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}", dir,
               sizeof dir);
    snprintf(p, sizeof p, "%s/s2.safetensors", dir);
    write_st(p, "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 64);
    expect_open_fails(dir, SL_EINVAL, "s2.safetensors: header length 64 runs past the end");
}

static void a_folder_without_weights_is_refused(void **state) {
    (void)state;
    char dir[300];
    index_case("ix_none", NULL, dir, sizeof dir);
    expect_open_fails(dir, SL_ENOENT, "no model.safetensors or model.safetensors.index.json");
}

static void a_missing_file_is_refused(void **state) {
    (void)state;
    char p[300];
    path_in(p, sizeof p, "does-not-exist.safetensors");
    expect_open_fails(p, SL_ENOENT, "cannot open");
}

int main(void) {
    enum { NH = SL_ARRAY_LEN(cases) };
    struct CMUnitTest tests[NH + 32];
    size_t k = 0;
#define ADD(f) tests[k++] = (struct CMUnitTest)cmocka_unit_test(f)
    ADD(bf16_rounds_to_nearest_even);
    ADD(f16_widens_exactly);
    ADD(f32_round_trip_is_exact_and_layout_matches_transformers);
    ADD(bf16_round_trip_gives_the_rounded_values);
    ADD(f16_tensors_are_read_and_widened);
    ADD(shape_mismatch_and_missing_tensor_are_named);
    ADD(sharded_save_writes_an_index_and_loads_back);
    ADD(saving_refuses_duplicates_and_f16);
    for (size_t i = 0; i < NH; i++)
        tests[k++] = (struct CMUnitTest){.name = cases[i].name,
                                         .test_func = hostile_file_is_refused,
                                         .initial_state = (void *)&cases[i]};
    ADD(a_shard_named_in_the_index_but_missing_is_refused);
    ADD(an_index_that_is_not_json_is_refused);
    ADD(an_index_without_weight_map_is_refused);
    ADD(an_index_weight_map_value_that_is_not_a_string_is_refused);
    ADD(an_index_pointing_outside_the_folder_is_refused);
    ADD(an_index_naming_a_tensor_its_shard_lacks_is_refused);
    ADD(an_index_with_bad_total_size_is_refused);
    ADD(a_tensor_in_two_shards_is_refused);
    ADD(a_broken_shard_behind_an_index_is_named);
    ADD(a_folder_without_weights_is_refused);
    ADD(a_missing_file_is_refused);
    return _cmocka_run_group_tests("safetensors", tests, k, setup_dir, teardown_dir);
}
