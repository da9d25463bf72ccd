/*
 * test_weights_sync.c — CPU weight publishing (weights_sync.h): a consumer
 * in another process copies the published version, versions rise, a
 * publish never waits for a slow consumer (its old version goes stale), a
 * restarted consumer gets the latest, and bad descriptors are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "weights_sync.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 10007
#define CID 16u

static void fill(float *p, size_t n, float base) {
    for (size_t i = 0; i < n; i++) p[i] = base + (float)i * 0.001f;
}

static int same(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

static void test_a_consumer_in_another_process_copies_the_published_version(void **state) {
    (void)state;
    sl_weights_pub *p;
    assert_int_equal(sl_weights_pub_new("wt.fork", N, 2, &p), SL_OK);
    float *w = malloc(N * sizeof *w);
    fill(w, N, 1.5f);
    sl_shm_desc d;
    assert_int_equal(sl_weights_publish(p, w, 7, 1u << CID, &d), SL_OK);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sl_weights_sub *s;
        float *got = calloc(N, sizeof *got);
        uint64_t v = 0;
        int ok = sl_weights_sub_new(CID, &s) == SL_OK &&
                 sl_weights_sub_apply(s, &d, got, N, &v) == SL_OK && v == 7 && same(got, w, N);
        sl_weights_sub_free(s);
        _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    sl_shm_stats ss;
    sl_weights_pub_stats(p, &ss);
    assert_int_equal(ss.free, 2); /* the child released its hold */
    free(w);
    sl_weights_pub_free(p);
}

static void test_versions_read_back_in_the_order_they_were_published(void **state) {
    (void)state;
    sl_weights_pub *p;
    sl_weights_sub *s;
    assert_int_equal(sl_weights_pub_new("wt.mono", N, 2, &p), SL_OK);
    assert_int_equal(sl_weights_sub_new(CID, &s), SL_OK);
    float *w = malloc(N * sizeof *w), *got = malloc(N * sizeof *got);
    uint64_t prev = 0;
    for (uint64_t v = 1; v <= 6; v++) {
        fill(w, N, (float)v);
        sl_shm_desc d;
        assert_int_equal(sl_weights_publish(p, w, v, 1u << CID, &d), SL_OK);
        uint64_t got_v = 0;
        assert_int_equal(sl_weights_sub_apply(s, &d, got, N, &got_v), SL_OK);
        assert_int_equal(got_v, v);
        assert_true(got_v > prev);
        assert_true(same(got, w, N));
        prev = got_v;
    }
    assert_int_equal(sl_weights_pub_forced(p), 0);
    free(w);
    free(got);
    sl_weights_sub_free(s);
    sl_weights_pub_free(p);
}

static void test_a_publish_never_waits_for_a_consumer_holding_old_versions(void **state) {
    (void)state;
    sl_weights_pub *p;
    sl_weights_sub *s;
    assert_int_equal(sl_weights_pub_new("wt.slow", N, 2, &p), SL_OK);
    assert_int_equal(sl_weights_sub_new(CID, &s), SL_OK);
    float *w = malloc(N * sizeof *w), *got = malloc(N * sizeof *got);
    sl_shm_desc d1, d2, d3;
    fill(w, N, 1);
    assert_int_equal(sl_weights_publish(p, w, 1, 1u << CID, &d1), SL_OK);
    fill(w, N, 2);
    assert_int_equal(sl_weights_publish(p, w, 2, 1u << CID, &d2), SL_OK);
    /* both slots held by the slow consumer: the third publish reclaims */
    fill(w, N, 3);
    assert_int_equal(sl_weights_publish(p, w, 3, 1u << CID, &d3), SL_OK);
    assert_int_equal(sl_weights_pub_forced(p), 1);
    uint64_t v = 0;
    assert_int_equal(sl_weights_sub_apply(s, &d1, got, N, &v), SL_ESTALE);
    assert_int_equal(sl_weights_sub_apply(s, &d2, got, N, &v), SL_ESTALE);
    assert_int_equal(sl_weights_sub_apply(s, &d3, got, N, &v), SL_OK);
    assert_int_equal(v, 3);
    assert_true(same(got, w, N));
    sl_shm_stats ss;
    sl_weights_pub_stats(p, &ss);
    assert_int_equal(ss.free, 2);
    free(w);
    free(got);
    sl_weights_sub_free(s);
    sl_weights_pub_free(p);
}

static void test_a_restarted_consumer_gets_the_latest_version(void **state) {
    (void)state;
    sl_weights_pub *p;
    assert_int_equal(sl_weights_pub_new("wt.restart", N, 3, &p), SL_OK);
    float *w = malloc(N * sizeof *w), *got = malloc(N * sizeof *got);
    sl_shm_desc d1, d2;
    fill(w, N, 1);
    assert_int_equal(sl_weights_publish(p, w, 1, 1u << CID | 1u << (CID + 1), &d1), SL_OK);
    /* consumer CID dies holding v1; the other consumer reads it */
    sl_weights_sub *other;
    assert_int_equal(sl_weights_sub_new(CID + 1, &other), SL_OK);
    assert_int_equal(sl_weights_sub_apply(other, &d1, got, N, NULL), SL_OK);
    sl_shm_stats ss;
    sl_weights_pub_stats(p, &ss);
    assert_int_equal(ss.published, 1);
    /* the new incarnation asks (WEIGHTS_REQ): reclaim, publish the latest */
    assert_int_equal(sl_weights_pub_reclaim(p, CID), 1);
    fill(w, N, 2);
    assert_int_equal(sl_weights_publish(p, w, 2, 1u << CID, &d2), SL_OK);
    sl_weights_sub *s;
    assert_int_equal(sl_weights_sub_new(CID, &s), SL_OK);
    uint64_t v = 0;
    assert_int_equal(sl_weights_sub_apply(s, &d2, got, N, &v), SL_OK);
    assert_int_equal(v, 2);
    assert_true(same(got, w, N));
    sl_weights_pub_stats(p, &ss);
    assert_int_equal(ss.free, 3);
    free(w);
    free(got);
    sl_weights_sub_free(s);
    sl_weights_sub_free(other);
    sl_weights_pub_free(p);
}

static void test_forged_or_mismatched_descriptors_are_refused(void **state) {
    (void)state;
    sl_weights_pub *p;
    sl_weights_sub *s;
    assert_int_equal(sl_weights_pub_new("wt.bad", N, 2, &p), SL_OK);
    assert_int_equal(sl_weights_sub_new(CID, &s), SL_OK);
    float *w = malloc(N * sizeof *w), *got = malloc((N + 1) * sizeof *got);
    fill(w, N, 5);
    sl_shm_desc d;
    assert_int_equal(sl_weights_publish(p, w, 1, 1u << CID, &d), SL_OK);
    sl_shm_desc bad = d;
    bad.checksum ^= 1;
    assert_int_not_equal(sl_weights_sub_apply(s, &bad, got, N, NULL), SL_OK);
    /* wrong size for this model: refused, the slot is released */
    assert_int_equal(sl_weights_sub_apply(s, &d, got, N + 1, NULL), SL_ERANGE);
    assert_int_equal(sl_weights_sub_apply(s, &d, got, N, NULL), SL_ESTALE);
    /* another consumer id was never addressed */
    assert_int_equal(sl_weights_publish(p, w, 2, 1u << CID, &d), SL_OK);
    sl_weights_sub *s2;
    assert_int_equal(sl_weights_sub_new(CID + 3, &s2), SL_OK);
    assert_int_equal(sl_weights_sub_apply(s2, &d, got, N, NULL), SL_ESTALE);
    assert_int_equal(sl_weights_sub_drop(s, &d), SL_OK);
    assert_int_equal(sl_weights_pub_new("wt.x", N, 1, &(sl_weights_pub *){NULL}), SL_EINVAL);
    sl_weights_sub_free(s2);
    assert_int_equal(sl_weights_sub_new(32, &s2), SL_EINVAL);
    assert_null(s2);
    free(w);
    free(got);
    sl_weights_sub_free(s);
    sl_weights_pub_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_consumer_in_another_process_copies_the_published_version),
        cmocka_unit_test(test_versions_read_back_in_the_order_they_were_published),
        cmocka_unit_test(test_a_publish_never_waits_for_a_consumer_holding_old_versions),
        cmocka_unit_test(test_a_restarted_consumer_gets_the_latest_version),
        cmocka_unit_test(test_forged_or_mismatched_descriptors_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
