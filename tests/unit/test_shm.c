/*
 * test_shm.c — shared-memory arenas: slot lifecycle, holders, stale and
 * forged descriptors, consumers and producers in other processes, reclaim.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "shm.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOT 65536

static void fill(void *p, size_t n, uint8_t seed) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(seed + i * 7);
}

static uint64_t sum(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    return s;
}

/* Acquire, fill LEN bytes and publish to N consumers. */
static sl_shm_desc publish(sl_shm_arena *a, size_t len, unsigned n, uint8_t seed) {
    void *p;
    uint32_t slot;
    sl_shm_desc d;
    assert_int_equal(sl_shm_slot_acquire(a, &p, &slot), SL_OK);
    fill(p, len, seed);
    assert_int_equal(sl_shm_slot_publish(a, slot, len, n, &d), SL_OK);
    return d;
}

static void wait_ok(pid_t pid) {
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_a_slot_goes_acquire_publish_read_release_and_reuse_bumps_generation(void **state) {
    sl_shm_arena *a;
    assert_int_equal(sl_shm_arena_create("life", 1, SLOT, &a), SL_OK);
    sl_shm_desc d = publish(a, 1000, 1, 3);
    assert_int_equal(d.slot, 0);
    assert_int_equal(d.generation, 1);
    assert_int_equal(d.length, 1000);

    sl_shm_view *v;
    assert_int_equal(sl_shm_arena_open(&d, 0, &v), SL_OK);
    const void *ptr;
    size_t len;
    assert_int_equal(sl_shm_read(v, &d, 0, &ptr, &len), SL_OK);
    assert_int_equal(len, 1000);
    uint8_t want[1000];
    fill(want, sizeof want, 3);
    assert_memory_equal(ptr, want, sizeof want);

    sl_shm_stats st;
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.published, 1);
    assert_int_equal(sl_shm_release(v, &d), SL_OK);
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.free, 1);

    sl_shm_desc d2 = publish(a, 10, 1, 9);
    assert_int_equal(d2.slot, 0);
    assert_int_equal(d2.generation, 2);
    assert_int_equal(sl_shm_read(v, &d2, 0, &ptr, &len), SL_OK);
    assert_int_equal(sl_shm_release(v, &d2), SL_OK);
    sl_shm_view_close(v);
    sl_shm_arena_close(a);
}

static void test_a_slot_is_free_only_after_both_consumers_release_it(void **state) {
    sl_shm_arena *a;
    assert_int_equal(sl_shm_arena_create("two", 2, SLOT, &a), SL_OK);
    sl_shm_desc d = publish(a, 4096, 2, 1);
    sl_shm_view *v0, *v1;
    assert_int_equal(sl_shm_arena_open(&d, 0, &v0), SL_OK);
    assert_int_equal(sl_shm_arena_open(&d, 1, &v1), SL_OK);
    const void *p0, *p1;
    size_t l0, l1;
    assert_int_equal(sl_shm_read(v0, &d, 0, &p0, &l0), SL_OK);
    assert_int_equal(sl_shm_read(v1, &d, 0, &p1, &l1), SL_OK);
    assert_int_equal(sum(p0, l0), sum(p1, l1));
    sl_shm_stats st;
    assert_int_equal(sl_shm_release(v0, &d), SL_OK);
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.published, 1);
    assert_int_equal(st.free, 1);
    assert_int_equal(sl_shm_release(v1, &d), SL_OK);
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.published, 0);
    assert_int_equal(st.free, 2);
    sl_shm_view_close(v0);
    sl_shm_view_close(v1);
    sl_shm_arena_close(a);
}

static void test_a_consumer_in_another_process_reads_in_place_and_cannot_write(void **state) {
    sl_shm_arena *a;
    assert_int_equal(sl_shm_arena_create("fork", 2, SLOT, &a), SL_OK);
    sl_shm_desc d = publish(a, SLOT, 1, 5);
    uint64_t want = sum(NULL, 0);
    {
        sl_shm_view *tmp;
        const void *p;
        size_t n;
        assert_int_equal(sl_shm_arena_open(&d, 0, &tmp), SL_OK);
        assert_int_equal(sl_shm_read(tmp, &d, 0, &p, &n), SL_OK);
        want = sum(p, n);
        sl_shm_view_close(tmp);
    }
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    uint8_t wire[SL_SHM_DESC_SIZE];
    sl_shm_desc_encode(&d, wire);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[1]);
        uint8_t buf[SL_SHM_DESC_SIZE];
        sl_shm_desc got;
        sl_shm_view *v;
        const void *p;
        size_t n;
        if (read(fds[0], buf, sizeof buf) != (ssize_t)sizeof buf) _exit(10);
        if (sl_shm_desc_decode(buf, sizeof buf, &got) != SL_OK) _exit(11);
        if (sl_shm_arena_open(&got, 0, &v) != SL_OK) _exit(12);
        if (sl_shm_read(v, &got, 0, &p, &n) != SL_OK) _exit(13);
        if (n != SLOT || sum(p, n) != want) _exit(14);
        if (sl_shm_release(v, &got) != SL_OK) _exit(15);
        _exit(0);
    }
    close(fds[0]);
    assert_int_equal(write(fds[1], wire, sizeof wire), (ssize_t)sizeof wire);
    close(fds[1]);
    wait_ok(pid);
    sl_shm_stats st;
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.free, 2);

    /* The data area is mapped read-only in consumers: a write faults. */
    d = publish(a, 100, 1, 6);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sl_shm_view *v;
        const void *p;
        size_t n;
        if (sl_shm_arena_open(&d, 0, &v) != SL_OK) _exit(12);
        if (sl_shm_read(v, &d, 0, &p, &n) != SL_OK) _exit(13);
        signal(SIGSEGV, SIG_DFL); /* cmocka's handler would catch it */
        *(volatile uint8_t *)p = 1;
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    sl_shm_arena_close(a);
}

static void test_a_stale_descriptor_is_refused_after_the_slot_is_reused(void **state) {
    sl_shm_arena *a;
    assert_int_equal(sl_shm_arena_create("stale", 1, SLOT, &a), SL_OK);
    sl_shm_desc old = publish(a, 64, 1, 1);
    sl_shm_view *v;
    assert_int_equal(sl_shm_arena_open(&old, 0, &v), SL_OK);
    assert_int_equal(sl_shm_release(v, &old), SL_OK);
    sl_shm_desc cur = publish(a, 64, 1, 2);
    assert_int_equal(cur.generation, old.generation + 1);
    const void *p;
    size_t n;
    assert_int_equal(sl_shm_read(v, &old, 0, &p, &n), SL_ESTALE);
    assert_int_equal(sl_shm_release(v, &old), SL_ESTALE);
    /* The stale release did not take the current holder's reference. */
    assert_int_equal(sl_shm_read(v, &cur, 0, &p, &n), SL_OK);
    /* A descriptor for a slot being written (not yet published) is stale too. */
    assert_int_equal(sl_shm_release(v, &cur), SL_OK);
    void *w;
    uint32_t slot;
    assert_int_equal(sl_shm_slot_acquire(a, &w, &slot), SL_OK);
    sl_shm_desc guess = cur;
    guess.generation++;
    assert_int_equal(sl_shm_read(v, &guess, 0, &p, &n), SL_ESTALE);
    sl_shm_view_close(v);
    sl_shm_arena_close(a);
}

static void test_forged_descriptors_are_refused(void **state) {
    sl_shm_arena *a, *other;
    assert_int_equal(sl_shm_arena_create("forge", 2, SLOT, &a), SL_OK);
    assert_int_equal(sl_shm_arena_create("other", 2, SLOT, &other), SL_OK);
    sl_shm_desc d = publish(a, 512, 1, 4);
    sl_shm_desc od = publish(other, 512, 1, 4);
    sl_shm_view *v;
    assert_int_equal(sl_shm_arena_open(&d, 0, &v), SL_OK);
    const void *p;
    size_t n;
    sl_shm_desc f;

    f = d, f.slot = 2;
    assert_int_equal(sl_shm_read(v, &f, 0, &p, &n), SL_ERANGE);
    f = d, f.slot = 0xffffffffu;
    assert_int_equal(sl_shm_read(v, &f, 0, &p, &n), SL_ERANGE);
    f = d, f.length = SLOT + 1;
    assert_int_equal(sl_shm_read(v, &f, 0, &p, &n), SL_ERANGE);
    f = d, f.offset = SLOT - 10, f.length = 11;
    assert_int_equal(sl_shm_read(v, &f, 0, &p, &n), SL_ERANGE);
    f = d, f.offset = UINT64_MAX - 5;
    assert_int_equal(sl_shm_read(v, &f, 0, &p, &n), SL_ERANGE);
    f = d, f.offset = 8, f.length = 100; /* inside the slot but not what was published */
    assert_int_equal(sl_shm_read(v, &f, 0, &p, &n), SL_ECHECKSUM);
    f = d, f.checksum ^= 1;
    assert_int_equal(sl_shm_read(v, &f, 0, &p, &n), SL_ECHECKSUM);
    /* Wrong arena: the view refuses it, and opening with another arena's id fails. */
    assert_int_equal(sl_shm_read(v, &od, 0, &p, &n), SL_EINVAL);
    assert_int_equal(sl_shm_release(v, &od), SL_EINVAL);
    f = od, f.arena_id = d.arena_id;
    sl_shm_view *bad = NULL;
    assert_int_equal(sl_shm_arena_open(&f, 0, &bad), SL_EPROTO);
    assert_null(bad);
    /* A descriptor pointing at a file that is not an arena (pid reuse). */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    f = d, f.ctl_fd = (uint32_t)fd;
    assert_int_equal(sl_shm_arena_open(&f, 0, &bad), SL_ECLOSED);
    close(fd);
    f = d, f.ctl_fd = 100000;
    assert_int_equal(sl_shm_arena_open(&f, 0, &bad), SL_ECLOSED);
    /* The real descriptor still reads; a consumer it is not addressed to
     * cannot read or release it. */
    assert_int_equal(sl_shm_read(v, &d, 0, &p, &n), SL_OK);
    sl_shm_view *pv;
    assert_int_equal(sl_shm_arena_open(&d, 1, &pv), SL_OK); /* consumer 1: not addressed */
    assert_int_equal(sl_shm_read(pv, &d, 0, &p, &n), SL_ESTALE);
    assert_int_equal(sl_shm_release(pv, &d), SL_ESTALE);
    sl_shm_view_close(pv);
    sl_shm_stats st;
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.published, 1);
    assert_int_equal(sl_shm_release(v, &d), SL_OK);
    sl_shm_view_close(v);
    sl_shm_arena_close(a);
    sl_shm_arena_close(other);
}

static void test_bytes_changed_after_publication_fail_the_checksum(void **state) {
    sl_shm_arena *a;
    assert_int_equal(sl_shm_arena_create("tamper", 1, SLOT, &a), SL_OK);
    void *w;
    uint32_t slot;
    sl_shm_desc d;
    assert_int_equal(sl_shm_slot_acquire(a, &w, &slot), SL_OK);
    fill(w, 256, 1);
    assert_int_equal(sl_shm_slot_publish(a, slot, 256, 1, &d), SL_OK);
    ((uint8_t *)w)[100] ^= 0x40; /* a producer bug */
    sl_shm_view *v;
    assert_int_equal(sl_shm_arena_open(&d, 0, &v), SL_OK);
    const void *p;
    size_t n;
    assert_int_equal(sl_shm_read(v, &d, 0, &p, &n), SL_ECHECKSUM);
    assert_int_equal(sl_shm_read(v, &d, SL_SHM_READ_TRUST_DATA, &p, &n), SL_OK);
    assert_int_equal(sl_shm_read(v, &d, 0x80, &p, &n), SL_EINVAL);
    sl_shm_view_close(v);
    sl_shm_arena_close(a);
}

static void test_descriptors_round_trip_and_malformed_bytes_are_refused(void **state) {
    sl_shm_desc d = {.arena_id = 0x1122334455667788ull, .pid = 42, .ctl_fd = 3, .data_fd = 4,
                     .slot = 7, .offset = 16, .length = 1 << 20, .generation = 99,
                     .checksum = 0xdeadbeefcafef00dull};
    uint8_t w[SL_SHM_DESC_SIZE];
    sl_shm_desc_encode(&d, w);
    assert_int_equal(sl_get_u32(w), SL_SHM_DESC_MAGIC);
    assert_int_equal(sl_get_u64(w + 48), 99);
    sl_shm_desc g;
    assert_int_equal(sl_shm_desc_decode(w, sizeof w, &g), SL_OK);
    assert_memory_equal(&g, &d, sizeof d);
    assert_int_equal(sl_shm_desc_decode(w, sizeof w - 1, &g), SL_EINVAL);
    uint8_t b[SL_SHM_DESC_SIZE];
    memcpy(b, w, sizeof b), b[0] ^= 1;
    assert_int_equal(sl_shm_desc_decode(b, sizeof b, &g), SL_EPROTO);
    memcpy(b, w, sizeof b), b[4] = 9;
    assert_int_equal(sl_shm_desc_decode(b, sizeof b, &g), SL_EPROTO);
    memcpy(b, w, sizeof b), b[6] = 1;
    assert_int_equal(sl_shm_desc_decode(b, sizeof b, &g), SL_EINVAL);
    memcpy(b, w, sizeof b), sl_put_u32(b + 16, 0);
    assert_int_equal(sl_shm_desc_decode(b, sizeof b, &g), SL_EINVAL);
    memcpy(b, w, sizeof b), sl_put_u64(b + 32, UINT64_MAX);
    assert_int_equal(sl_shm_desc_decode(b, sizeof b, &g), SL_EINVAL);
    assert_int_equal(g.slot, 7); /* untouched by the failed decodes */
}

static void test_a_second_release_of_the_same_descriptor_is_harmless(void **state) {
    sl_shm_arena *a;
    assert_int_equal(sl_shm_arena_create("double", 1, SLOT, &a), SL_OK);
    sl_shm_desc d = publish(a, 64, 2, 1);
    sl_shm_view *v0, *v1;
    assert_int_equal(sl_shm_arena_open(&d, 0, &v0), SL_OK);
    assert_int_equal(sl_shm_arena_open(&d, 1, &v1), SL_OK);
    assert_int_equal(sl_shm_release(v0, &d), SL_OK);
    assert_int_equal(sl_shm_release(v0, &d), SL_ESTALE);
    assert_int_equal(sl_shm_release(v0, &d), SL_ESTALE);
    sl_shm_stats st;
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.published, 1); /* consumer 1 still holds it */
    const void *p;
    size_t n;
    assert_int_equal(sl_shm_read(v1, &d, 0, &p, &n), SL_OK);
    assert_int_equal(sl_shm_release(v1, &d), SL_OK);
    assert_int_equal(sl_shm_release(v1, &d), SL_ESTALE);
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.free, 1);
    sl_shm_view_close(v0);
    sl_shm_view_close(v1);
    sl_shm_arena_close(a);
}

static void test_acquire_says_full_when_every_slot_is_busy(void **state) {
    sl_shm_arena *a;
    assert_int_equal(sl_shm_arena_create("full", 3, 100, &a), SL_OK);
    sl_shm_stats st;
    sl_shm_arena_stats(a, &st);
    assert_true(st.slot_bytes >= 4096); /* rounded up to a page */
    void *p;
    uint32_t s0, s1, s2, sx;
    sl_shm_desc d;
    assert_int_equal(sl_shm_slot_acquire(a, &p, &s0), SL_OK);
    assert_int_equal(sl_shm_slot_acquire(a, &p, &s1), SL_OK);
    assert_int_equal(sl_shm_slot_acquire(a, &p, &s2), SL_OK);
    assert_int_equal(sl_shm_slot_acquire(a, &p, &sx), SL_EFULL);
    assert_int_equal(sl_shm_slot_publish(a, s0, 10, 1, &d), SL_OK);
    assert_int_equal(sl_shm_slot_acquire(a, &p, &sx), SL_EFULL);
    /* Publishing bad arguments leaves the slot acquired. */
    assert_int_equal(sl_shm_slot_publish(a, s1, st.slot_bytes + 1, 1, &d), SL_ERANGE);
    assert_int_equal(sl_shm_slot_publish(a, s1, 10, 0, &d), SL_EINVAL);
    assert_int_equal(sl_shm_slot_publish(a, s1, 10, 33, &d), SL_EINVAL);
    assert_int_equal(sl_shm_slot_publish(a, s0, 10, 1, &d), SL_EINVAL); /* already published */
    assert_int_equal(sl_shm_slot_cancel(a, s1), SL_OK);
    assert_int_equal(sl_shm_slot_cancel(a, s1), SL_EINVAL);
    assert_int_equal(sl_shm_slot_acquire(a, &p, &sx), SL_OK);
    assert_int_equal(sx, s1);
    sl_shm_arena_close(a);
}

static void test_bad_arena_geometry_and_names_are_refused(void **state) {
    sl_shm_arena *a = (sl_shm_arena *)1;
    assert_int_equal(sl_shm_arena_create("x", 0, 4096, &a), SL_EINVAL);
    assert_null(a);
    assert_int_equal(sl_shm_arena_create("x", 1, 0, &a), SL_EINVAL);
    assert_int_equal(sl_shm_arena_create("x", 70000, 4096, &a), SL_EINVAL);
    assert_int_equal(sl_shm_arena_create("x", 65536, 1ull << 30, &a), SL_EINVAL);
    assert_int_equal(sl_shm_arena_create("", 1, 4096, &a), SL_EINVAL);
    assert_int_equal(sl_shm_arena_create("a/b", 1, 4096, &a), SL_EINVAL);
    assert_int_equal(sl_shm_arena_create(NULL, 1, 4096, &a), SL_EINVAL);
    sl_shm_arena_close(NULL);
    sl_shm_view_close(NULL);
}

static void test_reclaim_frees_the_slots_of_a_consumer_that_died(void **state) {
    sl_shm_arena *a;
    assert_int_equal(sl_shm_arena_create("reclaim", 2, SLOT, &a), SL_OK);
    sl_shm_desc d1 = publish(a, 128, 2, 1);
    sl_shm_desc d2 = publish(a, 128, 1, 2);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* consumer 0 reads both and dies holding them */
        sl_shm_view *v;
        const void *p;
        size_t n;
        if (sl_shm_arena_open(&d1, 0, &v) != SL_OK) _exit(12);
        if (sl_shm_read(v, &d1, 0, &p, &n) != SL_OK) _exit(13);
        if (sl_shm_read(v, &d2, 0, &p, &n) != SL_OK) _exit(14);
        _exit(0);
    }
    wait_ok(pid);
    sl_shm_stats st;
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.published, 2);
    assert_int_equal(sl_shm_arena_reclaim(a, 0), 2);
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.published, 1); /* d1 is still held by consumer 1 */
    assert_int_equal(st.free, 1);
    assert_int_equal(sl_shm_arena_reclaim(a, 0), 0);
    assert_int_equal(sl_shm_arena_reclaim(a, 32), -SL_EINVAL);
    sl_shm_view *v1;
    assert_int_equal(sl_shm_arena_open(&d1, 1, &v1), SL_OK);
    assert_int_equal(sl_shm_release(v1, &d1), SL_OK);
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.free, 2);
    sl_shm_view_close(v1);
    sl_shm_arena_close(a);
}

/* The child creates an arena, sends its descriptor, waits for one byte,
 * then exits (closing the arena with it). */
static pid_t spawn_producer(sl_shm_desc *d, int *go) {
    int dp[2], gp[2];
    assert_int_equal(pipe(dp), 0);
    assert_int_equal(pipe(gp), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(dp[0]);
        close(gp[1]);
        sl_shm_arena *a;
        void *p;
        uint32_t slot;
        sl_shm_desc cd;
        uint8_t w[SL_SHM_DESC_SIZE], c;
        if (sl_shm_arena_create("dying", 1, SLOT, &a) != SL_OK) _exit(10);
        if (sl_shm_slot_acquire(a, &p, &slot) != SL_OK) _exit(11);
        fill(p, 300, 8);
        if (sl_shm_slot_publish(a, slot, 300, 1, &cd) != SL_OK) _exit(12);
        sl_shm_desc_encode(&cd, w);
        if (write(dp[1], w, sizeof w) != (ssize_t)sizeof w) _exit(13);
        if (read(gp[0], &c, 1) != 1) _exit(14);
        _exit(0);
    }
    close(dp[1]);
    close(gp[0]);
    uint8_t w[SL_SHM_DESC_SIZE];
    assert_int_equal(read(dp[0], w, sizeof w), (ssize_t)sizeof w);
    close(dp[0]);
    assert_int_equal(sl_shm_desc_decode(w, sizeof w, d), SL_OK);
    *go = gp[1];
    return pid;
}

static void test_a_dead_producer_gives_a_clean_error_and_open_views_stay_valid(void **state) {
    sl_shm_desc d;
    int go;
    pid_t pid = spawn_producer(&d, &go);
    sl_shm_view *v;
    assert_int_equal(sl_shm_arena_open(&d, 0, &v), SL_OK);
    assert_int_equal(write(go, "x", 1), 1);
    close(go);
    wait_ok(pid);
    /* A new consumer cannot map it any more... */
    sl_shm_view *late = NULL;
    assert_int_equal(sl_shm_arena_open(&d, 1, &late), SL_ECLOSED);
    assert_null(late);
    /* ...but the mapping taken before the death keeps the memory alive. */
    const void *p;
    size_t n;
    assert_int_equal(sl_shm_read(v, &d, 0, &p, &n), SL_OK);
    uint8_t want[300];
    fill(want, sizeof want, 8);
    assert_memory_equal(p, want, sizeof want);
    assert_int_equal(sl_shm_release(v, &d), SL_OK);
    sl_shm_view_close(v);
}

/* ------------------------------------------------- concurrent hand-offs */

#define RACE_N 20000
typedef struct race_q {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sl_shm_desc q[8];
    unsigned head, tail;
} race_q;

typedef struct race_c {
    race_q *q;
    const sl_shm_desc *first;
    unsigned id;
    int errors;
} race_c;

static void *race_consumer(void *arg) {
    race_c *c = arg;
    sl_shm_view *v;
    if (sl_shm_arena_open(c->first, c->id, &v) != SL_OK) return c->errors = 1, NULL;
    for (uint64_t i = 0; i < RACE_N; i++) {
        pthread_mutex_lock(&c->q->mu);
        while (c->q->head == c->q->tail) pthread_cond_wait(&c->q->cv, &c->q->mu);
        sl_shm_desc d = c->q->q[c->q->head++ % 8];
        pthread_mutex_unlock(&c->q->mu);
        const void *p;
        size_t n;
        uint64_t tag;
        if (sl_shm_read(v, &d, SL_SHM_READ_TRUST_DATA, &p, &n) != SL_OK || n != 64) c->errors++;
        else if (memcpy(&tag, p, 8), tag != i) c->errors++;
        if (sl_shm_release(v, &d) != SL_OK) c->errors++;
        if (i % 7 == 0 && sl_shm_release(v, &d) != SL_ESTALE) c->errors++; /* double release */
    }
    sl_shm_view_close(v);
    return NULL;
}

static void test_concurrent_handoffs_with_double_releases_lose_no_slot(void **state) {
    sl_shm_arena *a;
    assert_int_equal(sl_shm_arena_create("race", 3, 4096, &a), SL_OK);
    race_q qs[2];
    race_c cs[2];
    pthread_t th[2];
    sl_shm_desc first = publish(a, 64, 1, 0);
    {
        sl_shm_view *v;
        assert_int_equal(sl_shm_arena_open(&first, 0, &v), SL_OK);
        assert_int_equal(sl_shm_release(v, &first), SL_OK);
        sl_shm_view_close(v);
    }
    for (int k = 0; k < 2; k++) {
        pthread_mutex_init(&qs[k].mu, NULL);
        pthread_cond_init(&qs[k].cv, NULL);
        qs[k].head = qs[k].tail = 0;
        cs[k] = (race_c){.q = &qs[k], .first = &first, .id = (unsigned)k};
        assert_int_equal(pthread_create(&th[k], NULL, race_consumer, &cs[k]), 0);
    }
    uint64_t full = 0;
    for (uint64_t i = 0; i < RACE_N; i++) {
        void *p;
        uint32_t slot;
        int rc;
        while ((rc = sl_shm_slot_acquire(a, &p, &slot)) == SL_EFULL) full++, sched_yield();
        assert_int_equal(rc, SL_OK);
        memcpy(p, &i, 8);
        sl_shm_desc d;
        assert_int_equal(sl_shm_slot_publish(a, slot, 64, 2, &d), SL_OK);
        for (int k = 0; k < 2; k++) {
            pthread_mutex_lock(&qs[k].mu);
            while (qs[k].tail - qs[k].head == 8) {
                pthread_mutex_unlock(&qs[k].mu);
                sched_yield();
                pthread_mutex_lock(&qs[k].mu);
            }
            qs[k].q[qs[k].tail++ % 8] = d;
            pthread_cond_signal(&qs[k].cv);
            pthread_mutex_unlock(&qs[k].mu);
        }
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(pthread_join(th[k], NULL), 0);
        assert_int_equal(cs[k].errors, 0);
    }
    sl_shm_stats st;
    sl_shm_arena_stats(a, &st);
    assert_int_equal(st.free, 3);
    assert_true(full > 0); /* the producer did have to wait for releases */
    sl_shm_arena_close(a);
}

int main(void) {
    sl_log_init("test_shm", SL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_slot_goes_acquire_publish_read_release_and_reuse_bumps_generation),
        cmocka_unit_test(test_a_slot_is_free_only_after_both_consumers_release_it),
        cmocka_unit_test(test_a_consumer_in_another_process_reads_in_place_and_cannot_write),
        cmocka_unit_test(test_a_stale_descriptor_is_refused_after_the_slot_is_reused),
        cmocka_unit_test(test_forged_descriptors_are_refused),
        cmocka_unit_test(test_bytes_changed_after_publication_fail_the_checksum),
        cmocka_unit_test(test_descriptors_round_trip_and_malformed_bytes_are_refused),
        cmocka_unit_test(test_a_second_release_of_the_same_descriptor_is_harmless),
        cmocka_unit_test(test_acquire_says_full_when_every_slot_is_busy),
        cmocka_unit_test(test_bad_arena_geometry_and_names_are_refused),
        cmocka_unit_test(test_reclaim_frees_the_slots_of_a_consumer_that_died),
        cmocka_unit_test(test_a_dead_producer_gives_a_clean_error_and_open_views_stay_valid),
        cmocka_unit_test(test_concurrent_handoffs_with_double_releases_lose_no_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
