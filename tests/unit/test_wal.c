/*
 * test_wal.c — the write-ahead log: append/replay, batched sync, reopen,
 * torn and corrupt tails, size limits, garbage files, atomic file writes.
 * Log tests run twice: on io_uring and on the pwrite fallback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char path[128];
static unsigned URING = 0, PWRITE = SL_WAL_OPEN_NO_URING;
static int have_uring;

static unsigned flags_of(void **state) {
    unsigned f = *(unsigned *)*state;
    if (!f && !have_uring) skip();
    return f;
}

static void fill(uint8_t *p, size_t n, uint64_t seed) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static size_t size_of(uint64_t i) { return (size_t)((i * 2654435761u) % 9000); }

static uint64_t file_size(const char *p) {
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return (uint64_t)st.st_size;
}

static int setup(void **state) {
    snprintf(dir, sizeof dir, "/tmp/test_wal.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/log", dir);
    return 0;
}

static int teardown(void **state) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') snprintf(p, sizeof p, "%s/%s", dir, e->d_name), unlink(p);
    if (d) closedir(d);
    rmdir(dir);
    return 0;
}

/* Append records FROM..TO-1 (content from their index), syncing every EVERY. */
static void append_range(sl_wal *w, uint64_t from, uint64_t to, uint64_t every) {
    static uint8_t buf[9000];
    for (uint64_t i = from; i < to; i++) {
        size_t n = size_of(i);
        fill(buf, n, i);
        uint64_t seq;
        assert_int_equal(sl_wal_append(w, buf, n, &seq), SL_OK);
        assert_int_equal(seq, i + 1);
        if (every && (i + 1) % every == 0) assert_int_equal(sl_wal_sync(w), SL_OK);
    }
}

typedef struct check {
    uint64_t next;
    int bad;
} check;

static int check_cb(void *user, uint64_t seq, const void *data, size_t len) {
    check *c = user;
    static uint8_t want[9000];
    uint64_t i = seq - 1;
    if (seq != c->next || len != size_of(i)) return c->bad = 1, 1;
    fill(want, len, i);
    if (len && memcmp(data, want, len)) return c->bad = 1, 1;
    c->next++;
    return 0;
}

static sl_wal *open_ok(unsigned flags, sl_wal_info *info) {
    sl_wal *w = NULL;
    assert_int_equal(sl_wal_open(path, flags, &w, info), SL_OK);
    assert_string_equal(sl_wal_backend(w), flags ? "pwrite" : "io_uring");
    return w;
}

static void test_many_records_of_various_sizes_replay_in_order(void **state) {
    unsigned f = flags_of(state);
    sl_wal *w = open_ok(f, NULL);
    append_range(w, 0, 3000, 250);
    assert_int_equal(sl_wal_close(w), SL_OK);
    check c = {.next = 1};
    sl_wal_info info;
    assert_int_equal(sl_wal_replay(path, check_cb, &c, &info), 0);
    assert_false(c.bad);
    assert_int_equal(info.records, 3000);
    assert_int_equal(info.first_seq, 1);
    assert_int_equal(info.last_seq, 3000);
    assert_int_equal(info.stop, SL_WAL_STOP_END);
    assert_int_equal(info.end_offset, file_size(path));
}

static void test_one_sync_makes_a_large_batch_durable(void **state) {
    unsigned f = flags_of(state);
    sl_wal *w = open_ok(f, NULL);
    /* ~13 MB: more than every staging chunk together, so chunks are reused. */
    append_range(w, 0, 3000, 0);
    assert_int_equal(sl_wal_sync(w), SL_OK);
    assert_int_equal(file_size(path), sl_wal_size(w));
    sl_wal_info info;
    assert_int_equal(sl_wal_replay(path, NULL, NULL, &info), 0);
    assert_int_equal(info.records, 3000);
    assert_int_equal(sl_wal_close(w), SL_OK);
}

static void test_a_reopened_log_continues_its_sequence(void **state) {
    unsigned f = flags_of(state);
    sl_wal *w = open_ok(f, NULL);
    append_range(w, 0, 10, 0);
    assert_int_equal(sl_wal_close(w), SL_OK);
    sl_wal_info info;
    w = open_ok(f, &info);
    assert_int_equal(info.records, 10);
    assert_int_equal(sl_wal_next_seq(w), 11);
    append_range(w, 10, 15, 0);
    assert_int_equal(sl_wal_close(w), SL_OK);
    check c = {.next = 1};
    assert_int_equal(sl_wal_replay(path, check_cb, &c, &info), 0);
    assert_false(c.bad);
    assert_int_equal(info.records, 15);
}

static void write_20(unsigned f, uint64_t *start_of_8, uint64_t *start_of_20) {
    sl_wal *w = open_ok(f, NULL);
    append_range(w, 0, 7, 0);
    *start_of_8 = sl_wal_size(w);
    append_range(w, 7, 19, 0);
    *start_of_20 = sl_wal_size(w);
    append_range(w, 19, 20, 0);
    assert_int_equal(sl_wal_close(w), SL_OK);
}

static void test_a_torn_tail_is_replayed_up_to_it_and_truncated_by_open(void **state) {
    unsigned f = flags_of(state);
    uint64_t s8, s20;
    write_20(f, &s8, &s20);
    uint64_t full = file_size(path);
    sl_wal_info info;
    /* Cut inside the last record's payload, then inside its header. */
    uint64_t cuts[2] = {full - 5, s20 + 10};
    const char *why[2] = {"incomplete record", "incomplete header"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(truncate(path, (off_t)cuts[k]), 0);
        check c = {.next = 1};
        assert_int_equal(sl_wal_replay(path, check_cb, &c, &info), 0);
        assert_false(c.bad);
        assert_int_equal(info.records, 19);
        assert_int_equal(info.stop, SL_WAL_STOP_TORN);
        assert_string_equal(info.why, why[k]);
        assert_int_equal(info.end_offset, s20);
        assert_int_equal(info.file_size, cuts[k]);
    }
    sl_wal *w = open_ok(f, &info);
    assert_int_equal(info.records, 19);
    assert_int_equal(file_size(path), s20);
    assert_int_equal(sl_wal_next_seq(w), 20);
    append_range(w, 19, 25, 0);
    assert_int_equal(sl_wal_close(w), SL_OK);
    check c = {.next = 1};
    assert_int_equal(sl_wal_replay(path, check_cb, &c, &info), 0);
    assert_int_equal(info.records, 25);
    assert_int_equal(info.stop, SL_WAL_STOP_END);
}

static void flip(uint64_t off) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

static void test_a_corrupt_record_in_the_middle_stops_replay_there(void **state) {
    unsigned f = flags_of(state);
    uint64_t s8, s20;
    write_20(f, &s8, &s20);
    sl_wal_info info;
    struct {
        uint64_t off;
        const char *why;
    } cases[] = {
        {s8 + SL_WAL_HEADER_SIZE + 3, "checksum mismatch"}, /* payload byte */
        {s8 + 1, "bad magic"},
        {s8 + 9, "checksum mismatch"}, /* sequence field: covered by the checksum */
        {s8 + 16, "checksum mismatch"},
    };
    for (size_t k = 0; k < SL_ARRAY_LEN(cases); k++) {
        flip(cases[k].off);
        check c = {.next = 1};
        assert_int_equal(sl_wal_replay(path, check_cb, &c, &info), 0);
        assert_false(c.bad);
        assert_int_equal(info.records, 7);
        assert_int_equal(info.stop, SL_WAL_STOP_CORRUPT);
        assert_string_equal(info.why, cases[k].why);
        assert_int_equal(info.end_offset, s8);
        flip(cases[k].off); /* restore */
    }
    /* A huge length field is refused before anything is read. */
    int fd = open(path, O_RDWR);
    uint8_t big[4] = {0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(pwrite(fd, big, 4, (off_t)s8 + 4), 4);
    close(fd);
    assert_int_equal(sl_wal_replay(path, NULL, NULL, &info), 0);
    assert_int_equal(info.records, 7);
    assert_string_equal(info.why, "length over the maximum");
    sl_wal *w = open_ok(f, &info);
    assert_int_equal(file_size(path), s8);
    assert_int_equal(sl_wal_next_seq(w), 8);
    assert_int_equal(sl_wal_close(w), SL_OK);
}

typedef struct sizes {
    uint64_t n;
    size_t len[4];
    uint64_t hash[4];
} sizes;

static int sizes_cb(void *user, uint64_t seq, const void *data, size_t len) {
    sizes *s = user;
    if (s->n < 4) s->len[s->n] = len, s->hash[s->n] = sl_hash64(data, len);
    s->n++;
    return 0;
}

static void test_zero_length_and_maximum_length_records_round_trip(void **state) {
    unsigned f = flags_of(state);
    uint8_t *big = malloc(SL_WAL_RECORD_MAX + 1);
    assert_non_null(big);
    fill(big, SL_WAL_RECORD_MAX, 77);
    sl_wal *w = open_ok(f, NULL);
    uint64_t seq;
    assert_int_equal(sl_wal_append(w, NULL, 0, &seq), SL_OK);
    assert_int_equal(sl_wal_append(w, big, SL_WAL_RECORD_MAX, &seq), SL_OK);
    assert_int_equal(seq, 2);
    assert_int_equal(sl_wal_append(w, big, SL_WAL_RECORD_MAX + 1, &seq), SL_ERANGE);
    assert_int_equal(sl_wal_append(w, NULL, 5, &seq), SL_EINVAL);
    assert_int_equal(sl_wal_append(w, "abc", 3, &seq), SL_OK);
    assert_int_equal(seq, 3);
    assert_int_equal(sl_wal_close(w), SL_OK);
    sizes s = {0};
    sl_wal_info info;
    assert_int_equal(sl_wal_replay(path, sizes_cb, &s, &info), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.len[0], 0);
    assert_int_equal(s.len[1], SL_WAL_RECORD_MAX);
    assert_int_equal(s.hash[1], sl_hash64(big, SL_WAL_RECORD_MAX));
    assert_int_equal(s.len[2], 3);
    assert_int_equal(s.hash[2], sl_hash64("abc", 3));
    assert_int_equal(info.stop, SL_WAL_STOP_END);
    free(big);
}

static void test_a_garbage_file_is_reported_and_never_truncated(void **state) {
    unsigned f = flags_of(state);
    uint8_t junk[10000];
    fill(junk, sizeof junk, 5);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    sl_wal_info info;
    assert_int_equal(sl_wal_replay(path, NULL, NULL, &info), 0);
    assert_int_equal(info.records, 0);
    assert_int_equal(info.stop, SL_WAL_STOP_CORRUPT);
    assert_int_equal(info.end_offset, 0);
    sl_wal *w = (sl_wal *)1;
    assert_int_equal(sl_wal_open(path, f, &w, &info), SL_EPROTO);
    assert_null(w);
    assert_int_equal(file_size(path), sizeof junk);
    /* A zero-filled file is a torn first write: it is truncated and used. */
    fd = open(path, O_WRONLY | O_TRUNC);
    memset(junk, 0, sizeof junk);
    assert_int_equal(write(fd, junk, 100), 100);
    close(fd);
    assert_int_equal(sl_wal_replay(path, NULL, NULL, &info), 0);
    assert_int_equal(info.stop, SL_WAL_STOP_TORN);
    w = open_ok(f, &info);
    assert_int_equal(file_size(path), 0);
    assert_int_equal(sl_wal_close(w), SL_OK);
    /* Missing files and non-regular files. */
    assert_int_equal(sl_wal_replay("/nonexistent/wal", NULL, NULL, &info), SL_ENOENT);
    assert_int_equal(sl_wal_open("/dev/null", f, &w, NULL), SL_EINVAL);
    assert_int_equal(sl_wal_open("/nonexistent/dir/wal", f, &w, NULL), SL_EIO);
    assert_int_equal(sl_wal_close(NULL), SL_OK);
}

static int stop_at_5(void *user, uint64_t seq, const void *data, size_t len) {
    return seq == 5 ? 42 : 0;
}

static void test_replay_stops_when_the_callback_asks(void **state) {
    unsigned f = flags_of(state);
    sl_wal *w = open_ok(f, NULL);
    append_range(w, 0, 10, 0);
    assert_int_equal(sl_wal_close(w), SL_OK);
    sl_wal_info info;
    assert_int_equal(sl_wal_replay(path, stop_at_5, NULL, &info), 42);
    assert_int_equal(info.records, 5);
    assert_int_equal(info.stop, SL_WAL_STOP_CALLER);
}

static void read_all(const char *p, char *buf, size_t cap, size_t *n) {
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t k = read(fd, buf, cap);
    assert_true(k >= 0);
    *n = (size_t)k;
    close(fd);
}

static void test_atomic_file_write_replaces_contents_and_leaves_no_temporaries(void **state) {
    char p[256], buf[256];
    size_t n;
    snprintf(p, sizeof p, "%s/ckpt.json", dir);
    struct iovec v1[3] = {{"{\"step\": ", 9}, {"", 0}, {"12}", 3}};
    assert_int_equal(sl_file_write_atomic(p, v1, 3), SL_OK);
    read_all(p, buf, sizeof buf, &n);
    assert_int_equal(n, 12);
    assert_memory_equal(buf, "{\"step\": 12}", 12);
    struct iovec v2[1] = {{"new", 3}};
    assert_int_equal(sl_file_write_atomic(p, v2, 1), SL_OK);
    read_all(p, buf, sizeof buf, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "new", 3);
    /* Many buffers (more than one ring batch). */
    struct iovec many[40];
    for (int i = 0; i < 40; i++) many[i] = (struct iovec){"ab", 2};
    assert_int_equal(sl_file_write_atomic(p, many, 40), SL_OK);
    read_all(p, buf, sizeof buf, &n);
    assert_int_equal(n, 80);
    assert_memory_equal(buf + 76, "abab", 4);
    DIR *d = opendir(dir);
    struct dirent *e;
    int tmp = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) tmp++;
    closedir(d);
    assert_int_equal(tmp, 0);
    assert_int_equal(sl_file_write_atomic("/nonexistent/dir/x", v2, 1), SL_EIO);
    assert_int_equal(sl_file_write_atomic(NULL, v2, 1), SL_EINVAL);
}

#define BOTH(t)                                                                            \
    cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, &URING),                 \
        cmocka_unit_test_prestate_setup_teardown(t, setup, teardown, &PWRITE)

int main(void) {
    sl_log_init("test_wal", SL_LOG_ERROR);
    struct io_uring ring;
    int e = io_uring_queue_init(4, &ring, 0);
    have_uring = e == 0;
    if (have_uring) io_uring_queue_exit(&ring);
    else fprintf(stderr, "io_uring unavailable (%s): its variants are skipped\n", strerror(-e));
    const struct CMUnitTest tests[] = {
        BOTH(test_many_records_of_various_sizes_replay_in_order),
        BOTH(test_one_sync_makes_a_large_batch_durable),
        BOTH(test_a_reopened_log_continues_its_sequence),
        BOTH(test_a_torn_tail_is_replayed_up_to_it_and_truncated_by_open),
        BOTH(test_a_corrupt_record_in_the_middle_stops_replay_there),
        BOTH(test_zero_length_and_maximum_length_records_round_trip),
        BOTH(test_a_garbage_file_is_reported_and_never_truncated),
        BOTH(test_replay_stops_when_the_callback_asks),
        cmocka_unit_test_setup_teardown(
            test_atomic_file_write_replaces_contents_and_leaves_no_temporaries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
