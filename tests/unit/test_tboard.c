/*
 * test_tboard.c — the TensorBoard event writer: CRC-32C vectors, and
 * files written by it read back by a small independent reader here
 * (TFRecord framing, both masked CRCs, the Event/Summary/Value protobuf
 * fields). The check against the real tensorboard package is
 * tests/tboard_check.py (run where tensorboard is installed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base.h"
#include "tboard.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ============================================================ the reader */

/* Bitwise CRC-32C, independent of the slice-by-8 code under test. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static uint32_t mask(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

typedef struct {
    char tag[300];
    float value;
} tvalue;

typedef struct {
    double wall_time;
    int64_t step;
    char file_version[64];
    int n;
    tvalue v[16];
} tevent;

static int get_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *out) {
    uint64_t v = 0;
    for (int s = 0; s < 70; s += 7) {
        if (*i >= n) return -1;
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int parse_value(const uint8_t *p, size_t n, tvalue *v) {
    size_t i = 0;
    memset(v, 0, sizeof *v);
    while (i < n) {
        uint64_t key, len;
        if (get_varint(p, n, &i, &key)) return -1;
        if (key == (1 << 3 | 2)) {
            if (get_varint(p, n, &i, &len) || len > n - i || len >= sizeof v->tag) return -1;
            memcpy(v->tag, p + i, len);
            i += len;
        } else if (key == (2 << 3 | 5)) {
            if (n - i < 4) return -1;
            uint32_t bits = sl_get_u32(p + i);
            memcpy(&v->value, &bits, 4);
            i += 4;
        } else return -1;
    }
    return 0;
}

static int parse_event(const uint8_t *p, size_t n, tevent *e) {
    size_t i = 0;
    memset(e, 0, sizeof *e);
    while (i < n) {
        uint64_t key, len, u;
        if (get_varint(p, n, &i, &key)) return -1;
        switch (key) {
        case 1 << 3 | 1:
            if (n - i < 8) return -1;
            u = sl_get_u64(p + i);
            memcpy(&e->wall_time, &u, 8);
            i += 8;
            break;
        case 2 << 3 | 0:
            if (get_varint(p, n, &i, &u)) return -1;
            e->step = (int64_t)u;
            break;
        case 3 << 3 | 2:
            if (get_varint(p, n, &i, &len) || len > n - i || len >= sizeof e->file_version) return -1;
            memcpy(e->file_version, p + i, len);
            i += len;
            break;
        case 5 << 3 | 2: {
            if (get_varint(p, n, &i, &len) || len > n - i) return -1;
            size_t j = i, end = i + len;
            while (j < end) {
                uint64_t k2, l2;
                if (get_varint(p, end, &j, &k2) || k2 != (1 << 3 | 2)) return -1;
                if (get_varint(p, end, &j, &l2) || l2 > end - j || e->n >= 16) return -1;
                if (parse_value(p + j, l2, &e->v[e->n++])) return -1;
                j += l2;
            }
            i = end;
            break;
        }
        default: return -1;
        }
    }
    return 0;
}

/* Read every record of PATH into EV (at most MAX); returns the count, or
 * -1 on a framing/CRC/protobuf error. */
static int read_events(const char *path, tevent *ev, int max) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int n = 0;
    uint8_t head[12];
    size_t got;
    while ((got = fread(head, 1, 12, f)) == 12) {
        uint64_t len = sl_get_u64(head);
        if (sl_get_u32(head + 8) != mask(crc32c_bitwise(head, 8)) || len > (1u << 24) || n >= max) goto bad;
        uint8_t *d = malloc(len + 4);
        if (!d || fread(d, 1, len + 4, f) != len + 4 || sl_get_u32(d + len) != mask(crc32c_bitwise(d, len)) ||
            parse_event(d, len, &ev[n])) {
            free(d);
            goto bad;
        }
        free(d);
        n++;
    }
    fclose(f);
    return got == 0 ? n : -1;
bad:
    fclose(f);
    return -1;
}

/* ============================================================ fixtures */

static char dir[64];

static int setup(void **state) {
    snprintf(dir, sizeof dir, "/tmp/test_tboard.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static int count_files(const char *d) {
    DIR *dd = opendir(d);
    if (!dd) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dd)))
        if (!strncmp(e->d_name, "events.out.tfevents.", 20)) n++;
    closedir(dd);
    return n;
}

/* ================================================================ tests */

static void crc32c_matches_the_standard_check_value(void **state) {
    assert_int_equal(sl_crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(sl_crc32c("", 0), 0);
}

static void crc32c_matches_the_rfc3720_vectors(void **state) {
    uint8_t b[32];
    memset(b, 0, 32);
    assert_int_equal(sl_crc32c(b, 32), 0x8A9136AAu);
    memset(b, 0xff, 32);
    assert_int_equal(sl_crc32c(b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)i;
    assert_int_equal(sl_crc32c(b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)(31 - i);
    assert_int_equal(sl_crc32c(b, 32), 0x113FDB5Cu);
}

static void crc32c_slice_by_8_agrees_with_bitwise_at_every_length_and_alignment(void **state) {
    uint8_t b[200];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof b; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (uint8_t)x;
    }
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof b; n += 7)
            assert_int_equal(sl_crc32c(b + off, n), crc32c_bitwise(b + off, n));
}

static void mask_is_the_tfrecord_formula(void **state) {
    assert_int_equal(sl_tb_mask_crc(0), 0xa282ead8u);
    assert_int_equal(sl_tb_mask_crc(0xE3069283u), mask(0xE3069283u));
    assert_int_equal(sl_tb_mask_crc(0x00008000u), 1u + 0xa282ead8u);
}

static void a_new_file_starts_with_the_file_version_record(void **state) {
    char tb[128];
    snprintf(tb, sizeof tb, "%s/tb", dir);
    sl_tb_writer *w = NULL;
    assert_int_equal(sl_tb_open(tb, &w), SL_OK);
    const char *p = sl_tb_path(w);
    assert_non_null(strstr(p, "/tb/events.out.tfevents."));
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    assert_int_equal(sl_tb_close(w), SL_OK);
    tevent ev[4];
    assert_int_equal(read_events(path, ev, 4), 1);
    assert_string_equal(ev[0].file_version, "brain.Event:2");
    assert_int_equal(ev[0].n, 0);
    assert_true(ev[0].wall_time > 1.6e9);
}

static void scalars_read_back_with_their_tags_steps_values_and_times(void **state) {
    sl_tb_writer *w = NULL;
    assert_int_equal(sl_tb_open(dir, &w), SL_OK);
    char path[512];
    snprintf(path, sizeof path, "%s", sl_tb_path(w));
    for (int s = 0; s < 20; s++)
        assert_int_equal(sl_tb_scalar(w, "rl/reward_mean", s, 0.25f * s - 1.0f, 1.7e9 + s), SL_OK);
    assert_int_equal(sl_tb_scalar(w, "big/step", 1ll << 40, 3.5e30f, 1.7e9), SL_OK);
    assert_int_equal(sl_tb_scalar(w, "neg/step", -5, -0.0f, 1.7e9), SL_OK);
    assert_int_equal(sl_tb_scalar(w, "zero/wall", 3, 1.0f, 0), SL_OK);
    assert_int_equal(sl_tb_scalar(w, "nan", 4, NAN, 1.7e9), SL_OK);
    const char *tags[3] = {"a", "b/c", "\xc3\xa9t\xc3\xa9"};
    float vals[3] = {1, 2, 3};
    assert_int_equal(sl_tb_scalars(w, 3, tags, vals, 99, 1.8e9), SL_OK);
    assert_int_equal(sl_tb_close(w), SL_OK);

    tevent ev[40];
    assert_int_equal(read_events(path, ev, 40), 1 + 20 + 4 + 1);
    for (int s = 0; s < 20; s++) {
        tevent *e = &ev[1 + s];
        assert_int_equal(e->step, s);
        assert_true(e->wall_time == 1.7e9 + s);
        assert_int_equal(e->n, 1);
        assert_string_equal(e->v[0].tag, "rl/reward_mean");
        assert_true(e->v[0].value == 0.25f * s - 1.0f);
        assert_string_equal(e->file_version, "");
    }
    assert_int_equal(ev[21].step, 1ll << 40);
    assert_true(ev[21].v[0].value == 3.5e30f);
    assert_int_equal(ev[22].step, -5);
    assert_true(ev[23].wall_time > 1.6e9); /* 0 means now */
    assert_true(isnan(ev[24].v[0].value));
    assert_int_equal(ev[25].n, 3);
    assert_string_equal(ev[25].v[2].tag, "\xc3\xa9t\xc3\xa9");
    assert_true(ev[25].v[1].value == 2.0f);
    assert_int_equal(ev[25].step, 99);
}

static void a_metrics_line_becomes_phase_prefixed_scalars(void **state) {
    sl_tb_writer *w = NULL;
    assert_int_equal(sl_tb_open(dir, &w), SL_OK);
    char path[512];
    snprintf(path, sizeof path, "%s", sl_tb_path(w));
    const char *l1 = "{\"step\":7,\"phase\":\"rl\",\"reward_mean\":0.5,\"kl\":0.01,\"weight_version\":3,"
                     "\"time\":1750000000.5,\"note\":\"hi\",\"ok\":true,\"hist\":[1,2],\"sub\":{\"x\":1}}\n";
    int n = -1;
    assert_int_equal(sl_tb_from_metrics_line(w, l1, strlen(l1), &n), SL_OK);
    assert_int_equal(n, 3);
    const char *l2 = "{\"step\":8.0,\"loss\":2.25,\"time\":12.5}";
    assert_int_equal(sl_tb_from_metrics_line(w, l2, strlen(l2), &n), SL_OK);
    assert_int_equal(n, 1);
    const char *l3 = "{\"step\":9,\"phase\":\"eval\",\"eval_accuracy\":0.75}";
    assert_int_equal(sl_tb_from_metrics_line(w, l3, strlen(l3), NULL), SL_OK);
    assert_int_equal(sl_tb_close(w), SL_OK);

    tevent ev[8];
    assert_int_equal(read_events(path, ev, 8), 4);
    assert_int_equal(ev[1].step, 7);
    assert_true(ev[1].wall_time == 1750000000.5);
    assert_int_equal(ev[1].n, 3);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        if (!strcmp(ev[1].v[i].tag, "rl/reward_mean") && ev[1].v[i].value == 0.5f) seen |= 1;
        if (!strcmp(ev[1].v[i].tag, "rl/kl") && ev[1].v[i].value == 0.01f) seen |= 2;
        if (!strcmp(ev[1].v[i].tag, "rl/weight_version") && ev[1].v[i].value == 3.0f) seen |= 4;
    }
    assert_int_equal(seen, 7);
    assert_int_equal(ev[2].step, 8);
    assert_string_equal(ev[2].v[0].tag, "loss");
    assert_true(ev[2].wall_time > 1.6e9); /* "time" 12.5 is not Unix time: now */
    assert_string_equal(ev[3].v[0].tag, "eval/eval_accuracy");
    assert_true(ev[3].v[0].value == 0.75f);
}

static void bad_metrics_lines_are_refused_and_write_nothing(void **state) {
    sl_tb_writer *w = NULL;
    assert_int_equal(sl_tb_open(dir, &w), SL_OK);
    assert_int_equal(sl_tb_flush(w), SL_OK);
    long before = file_size(sl_tb_path(w));
    const char *bad[] = {"", "garbage", "{\"step\":1,", "[1,2]", "{\"reward_mean\":1}", "{\"step\":\"3\"}",
                         "{\"step\":1.5,\"kl\":1}", "{\"step\":null}", "{\"step\":1e300}", "42",
                         "{\"step\":1,\"step\":2}"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        assert_int_equal(sl_tb_from_metrics_line(w, bad[i], strlen(bad[i]), NULL), SL_EINVAL);
    /* A line with a step but nothing numeric is fine and writes nothing. */
    const char *empty = "{\"step\":3,\"phase\":\"rl\",\"note\":\"x\"}";
    int n = -1;
    assert_int_equal(sl_tb_from_metrics_line(w, empty, strlen(empty), &n), SL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sl_tb_flush(w), SL_OK);
    assert_int_equal(file_size(sl_tb_path(w)), before);
    assert_int_equal(sl_tb_from_metrics_line(NULL, empty, strlen(empty), NULL), SL_EINVAL);
    assert_int_equal(sl_tb_from_metrics_line(w, NULL, 0, NULL), SL_EINVAL);
    sl_tb_close(w);
}

static void bad_tags_are_refused(void **state) {
    sl_tb_writer *w = NULL;
    assert_int_equal(sl_tb_open(dir, &w), SL_OK);
    char longtag[SL_TB_MAX_TAG + 2];
    memset(longtag, 'a', sizeof longtag - 1);
    longtag[sizeof longtag - 1] = 0;
    const char *bad[] = {"", "a\nb", "tab\there", "\xff", "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xe0\x80\x80",
                         "\xf5\x80\x80\x80", longtag};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        assert_int_equal(sl_tb_scalar(w, bad[i], 1, 1.0f, 0), SL_EINVAL);
    assert_int_equal(sl_tb_scalar(w, NULL, 1, 1.0f, 0), SL_EINVAL);
    longtag[SL_TB_MAX_TAG] = 0; /* exactly the limit */
    assert_int_equal(sl_tb_scalar(w, longtag, 1, 1.0f, 0), SL_OK);
    assert_int_equal(sl_tb_scalar(w, "\xf0\x9f\x98\x80 emoji", 1, 1.0f, 0), SL_OK);
    /* A bad tag among good ones: nothing of the event is written. */
    const char *tags[2] = {"good", "b\x01"};
    float v[2] = {1, 2};
    assert_int_equal(sl_tb_scalars(w, 2, tags, v, 1, 0), SL_EINVAL);
    assert_int_equal(sl_tb_scalars(w, 0, NULL, NULL, 1, 0), SL_OK);
    assert_int_equal(sl_tb_scalar(NULL, "x", 1, 1.0f, 0), SL_EINVAL);
    char path[512];
    snprintf(path, sizeof path, "%s", sl_tb_path(w));
    sl_tb_close(w);
    tevent ev[8];
    assert_int_equal(read_events(path, ev, 8), 3);
}

static void two_writers_in_one_directory_get_distinct_files(void **state) {
    sl_tb_writer *a = NULL, *b = NULL;
    assert_int_equal(sl_tb_open(dir, &a), SL_OK);
    assert_int_equal(sl_tb_open(dir, &b), SL_OK);
    assert_string_not_equal(sl_tb_path(a), sl_tb_path(b));
    assert_int_equal(count_files(dir), 2);
    assert_int_equal(sl_tb_close(a), SL_OK);
    assert_int_equal(sl_tb_close(b), SL_OK);
    assert_int_equal(sl_tb_close(NULL), SL_OK);
}

static void open_fails_cleanly_where_the_directory_cannot_be_made(void **state) {
    sl_tb_writer *w = (sl_tb_writer *)&w;
    char p[128];
    snprintf(p, sizeof p, "%s/no/such/parent", dir);
    assert_int_equal(sl_tb_open(p, &w), SL_EIO);
    assert_null(w);
    assert_int_equal(sl_tb_open("", &w), SL_EINVAL);
    assert_int_equal(sl_tb_open(NULL, &w), SL_EINVAL);
    assert_int_equal(sl_tb_open(dir, NULL), SL_EINVAL);
    assert_int_equal(sl_tb_flush(NULL), SL_EINVAL);
}

static void flush_makes_records_visible_and_a_corrupt_byte_is_detected(void **state) {
    sl_tb_writer *w = NULL;
    assert_int_equal(sl_tb_open(dir, &w), SL_OK);
    long before = file_size(sl_tb_path(w));
    assert_int_equal(sl_tb_scalar(w, "x", 1, 2.0f, 0), SL_OK);
    assert_int_equal(sl_tb_flush(w), SL_OK);
    long after = file_size(sl_tb_path(w));
    /* 12 + 4 framing; event: 9 (wall) + 2 (step) + 2 (summary key, len)
     * + 2 (value key, len) + 3 (tag "x") + 5 (simple_value). */
    assert_int_equal(after - before, 16 + 9 + 2 + 2 + 2 + 3 + 5);
    char path[512];
    snprintf(path, sizeof path, "%s", sl_tb_path(w));
    sl_tb_close(w);
    tevent ev[4];
    assert_int_equal(read_events(path, ev, 4), 2);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, after - 6, SEEK_SET);
    fputc('Y', f); /* inside the float value */
    fclose(f);
    assert_int_equal(read_events(path, ev, 4), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_matches_the_standard_check_value),
        cmocka_unit_test(crc32c_matches_the_rfc3720_vectors),
        cmocka_unit_test(crc32c_slice_by_8_agrees_with_bitwise_at_every_length_and_alignment),
        cmocka_unit_test(mask_is_the_tfrecord_formula),
        cmocka_unit_test_setup_teardown(a_new_file_starts_with_the_file_version_record, setup, teardown),
        cmocka_unit_test_setup_teardown(scalars_read_back_with_their_tags_steps_values_and_times, setup, teardown),
        cmocka_unit_test_setup_teardown(a_metrics_line_becomes_phase_prefixed_scalars, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_metrics_lines_are_refused_and_write_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_tags_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(two_writers_in_one_directory_get_distinct_files, setup, teardown),
        cmocka_unit_test_setup_teardown(open_fails_cleanly_where_the_directory_cannot_be_made, setup, teardown),
        cmocka_unit_test_setup_teardown(flush_makes_records_visible_and_a_corrupt_byte_is_detected, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
