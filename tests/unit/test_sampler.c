/*
 * test_sampler.c — greedy, seeded reproducibility independent of batch
 * order, top-k / top-p sets (HF semantics, ties), the two returned
 * log-probs, refusal of bad input, and sampling statistics against the
 * target distribution computed here independently (temperature 1 and 0.7,
 * top-p 0.9, top-k 3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "sampler.h"

static sl_sampler_cfg cfg_of(float t, int k, float p, uint64_t seed) {
    sl_sampler_cfg c;
    sl_sampler_cfg_default(&c);
    c.temperature = t;
    c.top_k = k;
    c.top_p = p;
    c.seed = seed;
    return c;
}

static void greedy_picks_the_argmax_and_lowest_id_on_ties(void **state) {
    (void)state;
    float l[5] = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
    sl_sampler_cfg c = cfg_of(0, 0, 1, 7);
    sl_sample s;
    for (uint64_t step = 0; step < 20; step++) {
        assert_int_equal(sl_sample_logits(l, 5, &c, 3, step, NULL, &s), 0);
        assert_int_equal(s.token, 1);
    }
    double z = 0;
    for (int i = 0; i < 5; i++) z += exp(l[i]);
    assert_true(fabs(s.logprob - (2.0 - log(z))) < 1e-6);
    assert_true(s.logprob_sampled == 0.0f);
}

static void the_same_seed_sequence_and_step_give_the_same_token(void **state) {
    (void)state;
    enum { V = 50 };
    float l[V];
    for (int i = 0; i < V; i++) l[i] = (float)sin(i * 1.3);
    sl_sampler_cfg c = cfg_of(1, 0, 1, 1234);
    int32_t a[100], b[100];
    sl_sample s;
    /* one pass in order, one pass in reverse order (another batch layout) */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sl_sample_logits(l, V, &c, (uint64_t)(i % 10), (uint64_t)(i / 10), NULL, &s), 0);
        a[i] = s.token;
    }
    for (int i = 99; i >= 0; i--) {
        assert_int_equal(sl_sample_logits(l, V, &c, (uint64_t)(i % 10), (uint64_t)(i / 10), NULL, &s), 0);
        b[i] = s.token;
    }
    assert_memory_equal(a, b, sizeof a);
    /* and another seed gives a different stream */
    c.seed = 1235;
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        sl_sample_logits(l, V, &c, (uint64_t)(i % 10), (uint64_t)(i / 10), NULL, &s);
        differ += s.token != a[i];
    }
    assert_true(differ > 50);
    assert_true(sl_sampler_uniform(1, 2, 3) == sl_sampler_uniform(1, 2, 3));
    assert_true(sl_sampler_uniform(1, 2, 3) != sl_sampler_uniform(1, 3, 2));
}

static void top_k_never_picks_outside_the_k_largest_and_keeps_ties(void **state) {
    (void)state;
    float l[6] = {1.0f, 2.0f, 2.0f, 2.0f, 0.0f, -3.0f};
    sl_sampler_cfg c = cfg_of(1, 2, 1, 99);
    int seen[6] = {0};
    sl_sample s;
    char scratch[6 * 16 + 64];
    assert_true(sl_sampler_scratch_bytes(6) <= sizeof scratch);
    for (uint64_t i = 0; i < 600; i++) {
        assert_int_equal(sl_sample_logits(l, 6, &c, i, 0, scratch, &s), 0);
        seen[s.token]++;
        /* three tied tokens kept: each has probability 1/3 */
        assert_true(fabsf(s.logprob_sampled - logf(1.0f / 3)) < 1e-6f);
    }
    assert_int_equal(seen[0] + seen[4] + seen[5], 0);
    assert_true(seen[1] > 0 && seen[2] > 0 && seen[3] > 0);
}

static void top_p_keeps_the_smallest_set_reaching_p(void **state) {
    (void)state;
    float l[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    struct {
        float p;
        int allowed;
    } cases[] = {{0.75f, 2}, {0.85f, 3}, {0.3f, 1}, {0.99f, 4}};
    for (size_t k = 0; k < SL_ARRAY_LEN(cases); k++) {
        sl_sampler_cfg c = cfg_of(1, 0, cases[k].p, 5);
        int seen[4] = {0};
        sl_sample s;
        for (uint64_t i = 0; i < 2000; i++) {
            assert_int_equal(sl_sample_logits(l, 4, &c, i, 1, NULL, &s), 0);
            seen[s.token]++;
        }
        for (int t = 0; t < 4; t++) {
            if (t < cases[k].allowed) assert_true(seen[t] > 0);
            else assert_int_equal(seen[t], 0);
        }
    }
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

static void top_p_on_a_large_vocabulary_stays_in_the_nucleus(void **state) {
    (void)state;
    enum { V = 30000 };
    float *l = malloc(V * sizeof *l);
    double *pr = malloc(V * sizeof *pr);
    assert_non_null(l);
    assert_non_null(pr);
    uint64_t x = 42;
    for (int i = 0; i < V; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((double)(x >> 40) / (double)(1 << 24)) * 12.0f;
    }
    /* the nucleus by brute force: threshold probability of the last kept */
    double mx = -1e30, z = 0;
    for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < V; i++) z += (pr[i] = exp(l[i] - mx));
    double *sorted = malloc(V * sizeof *sorted);
    memcpy(sorted, pr, V * sizeof *sorted);
    qsort(sorted, V, sizeof *sorted, cmpd);
    double cum = 0, thr = 0;
    for (int i = 0; i < V && cum / z < 0.9; i++) {
        cum += sorted[i];
        thr = sorted[i];
    }
    sl_sampler_cfg c = cfg_of(1, 0, 0.9f, 11);
    void *scratch = malloc(sl_sampler_scratch_bytes(V));
    sl_sample s;
    for (uint64_t i = 0; i < 200; i++) {
        assert_int_equal(sl_sample_logits(l, V, &c, i, 0, scratch, &s), 0);
        assert_true(pr[s.token] >= thr);
        assert_true(fabs(s.logprob - log(pr[s.token] / z)) < 1e-4);
        assert_true(fabs(s.logprob_sampled - log(pr[s.token] / cum)) < 1e-4);
    }
    free(scratch);
    free(sorted);
    free(pr);
    free(l);
}

static void minus_infinity_tokens_are_never_chosen(void **state) {
    (void)state;
    float l[4] = {-INFINITY, 0.0f, -INFINITY, 0.0f};
    sl_sampler_cfg c = cfg_of(1, 0, 1, 1);
    sl_sample s;
    for (uint64_t i = 0; i < 200; i++) {
        assert_int_equal(sl_sample_logits(l, 4, &c, i, 0, NULL, &s), 0);
        assert_true(s.token == 1 || s.token == 3);
        assert_true(fabsf(s.logprob - logf(0.5f)) < 1e-6f);
    }
}

static void bad_logits_and_bad_configs_are_refused(void **state) {
    (void)state;
    float l[3] = {0, NAN, 1};
    sl_sampler_cfg c = cfg_of(1, 0, 1, 1);
    sl_sample s = {.token = -7};
    assert_int_equal(sl_sample_logits(l, 3, &c, 0, 0, NULL, &s), SL_EINVAL);
    l[1] = INFINITY;
    assert_int_equal(sl_sample_logits(l, 3, &c, 0, 0, NULL, &s), SL_EINVAL);
    float m[2] = {-INFINITY, -INFINITY};
    assert_int_equal(sl_sample_logits(m, 2, &c, 0, 0, NULL, &s), SL_EINVAL);
    assert_int_equal(s.token, -7);
    float ok[2] = {0, 1};
    assert_int_equal(sl_sample_logits(ok, 0, &c, 0, 0, NULL, &s), SL_EINVAL);
    c.top_p = 0;
    assert_int_equal(sl_sample_logits(ok, 2, &c, 0, 0, NULL, &s), SL_EINVAL);
    c = cfg_of(-1, 0, 1, 1);
    assert_int_equal(sl_sampler_cfg_check(&c), SL_EINVAL);
    c = cfg_of(1, -2, 1, 1);
    assert_int_equal(sl_sampler_cfg_check(&c), SL_EINVAL);
    c = cfg_of(1, 0, 1.5f, 1);
    assert_int_equal(sl_sampler_cfg_check(&c), SL_EINVAL);
}

/* ------------------------------------------------------------- statistics */

enum { SV = 8, DRAWS = 40000 };
static const float stat_logits[SV] = {1.2f, 0.3f, -0.5f, 2.0f, 0.0f, -1.5f, 0.9f, 1.9f};

/* Target: softmax(l/T), then top-k (ties kept), then top-p, renormalized. */
static void target(float t, int k, double p, double *q) {
    double e[SV], z = 0;
    int order[SV];
    for (int i = 0; i < SV; i++) e[i] = exp(stat_logits[i] / t), order[i] = i;
    for (int i = 0; i < SV; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && e[order[j]] > e[order[j - 1]]; j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    int keep = SV;
    if (k > 0 && k < SV) keep = k;
    for (int i = 0; i < keep; i++) z += e[order[i]];
    double before = 0;
    int n = 0;
    while (n < keep && (n == 0 || before / z < p)) before += e[order[n++]];
    for (int i = 0; i < SV; i++) q[i] = 0;
    for (int i = 0; i < n; i++) q[order[i]] = e[order[i]] / before;
}

static void check_stats(float t, int k, float p) {
    double q[SV];
    target(t, k, p, q);
    sl_sampler_cfg c = cfg_of(t, k, p, 2024);
    int cnt[SV] = {0};
    sl_sample s;
    for (uint64_t i = 0; i < DRAWS; i++) {
        assert_int_equal(sl_sample_logits(stat_logits, SV, &c, i % 97, i, NULL, &s), 0);
        cnt[s.token]++;
        assert_true(q[s.token] > 0);
        assert_true(fabs(s.logprob_sampled - log(q[s.token])) < 1e-5);
    }
    double maxdiff = 0, chi2 = 0;
    int dof = -1;
    for (int i = 0; i < SV; i++) {
        double f = (double)cnt[i] / DRAWS;
        if (fabs(f - q[i]) > maxdiff) maxdiff = fabs(f - q[i]);
        if (q[i] > 0) {
            double ex = q[i] * DRAWS;
            chi2 += (cnt[i] - ex) * (cnt[i] - ex) / ex;
            dof++;
        }
    }
    print_message("    T=%.1f top_k=%d top_p=%.2f: max |freq-p| = %.4f, chi2 = %.2f (dof %d)\n", t, k,
                  p, maxdiff, chi2, dof);
    /* sd of a frequency is at most 0.0025 at 40000 draws: 5 sd */
    assert_true(maxdiff < 0.0125);
    /* chi-square 99.99th percentile for dof <= 7 is below 30 */
    assert_true(chi2 < 30.0);
}

static void sampling_at_temperature_1_matches_softmax(void **state) {
    (void)state;
    check_stats(1.0f, 0, 1.0f);
}

static void sampling_at_temperature_0_7_matches_the_sharpened_softmax(void **state) {
    (void)state;
    check_stats(0.7f, 0, 1.0f);
}

static void sampling_with_top_p_0_9_matches_the_renormalized_nucleus(void **state) {
    (void)state;
    check_stats(1.0f, 0, 0.9f);
}

static void sampling_with_top_k_3_matches_the_renormalized_top_3(void **state) {
    (void)state;
    check_stats(1.0f, 3, 1.0f);
}

static void logprob_is_the_temperature_scaled_full_softmax(void **state) {
    (void)state;
    sl_sampler_cfg c = cfg_of(0.7f, 3, 0.9f, 8);
    sl_sample s;
    for (uint64_t i = 0; i < 50; i++) {
        assert_int_equal(sl_sample_logits(stat_logits, SV, &c, 0, i, NULL, &s), 0);
        double z = 0;
        for (int j = 0; j < SV; j++) z += exp(stat_logits[j] / 0.7);
        assert_true(fabs(s.logprob - (stat_logits[s.token] / 0.7 - log(z))) < 1e-5);
        assert_true(fabsf(s.logprob - sl_logprob_of(stat_logits, SV, 0.7f, s.token)) < 1e-6f);
        assert_true(s.logprob_sampled >= s.logprob);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_picks_the_argmax_and_lowest_id_on_ties),
        cmocka_unit_test(the_same_seed_sequence_and_step_give_the_same_token),
        cmocka_unit_test(top_k_never_picks_outside_the_k_largest_and_keeps_ties),
        cmocka_unit_test(top_p_keeps_the_smallest_set_reaching_p),
        cmocka_unit_test(top_p_on_a_large_vocabulary_stays_in_the_nucleus),
        cmocka_unit_test(minus_infinity_tokens_are_never_chosen),
        cmocka_unit_test(bad_logits_and_bad_configs_are_refused),
        cmocka_unit_test(sampling_at_temperature_1_matches_softmax),
        cmocka_unit_test(sampling_at_temperature_0_7_matches_the_sharpened_softmax),
        cmocka_unit_test(sampling_with_top_p_0_9_matches_the_renormalized_nucleus),
        cmocka_unit_test(sampling_with_top_k_3_matches_the_renormalized_top_3),
        cmocka_unit_test(logprob_is_the_temperature_scaled_full_softmax),
    };
    return cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
}
