/*
 * test_engine.c — the generation engine: prompt sharing by KV copy equals
 * independent generation, seeds make results reproducible and independent
 * of batch composition, greedy equals the argmax of a full forward, stop
 * tokens and length limits, recorded log-probs equal the trainer's
 * recomputation, weight loading, abort, hostile requests.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "sampler.h"
#include "tiny_model.h"
#include "trainer_core.h"

#define VOCAB TINY_ENGINE_VOCAB

static sl_model *tiny_model(uint64_t seed, int max_tokens)
{
    return tiny_model_new(TINY_ENGINE_SHAPE, seed, max_tokens);
}

static sl_engine *engine_for(sl_model *m, int max_batch, int max_seq_len)
{
    sl_engine_cfg ec = {.max_batch = max_batch, .max_seq_len = max_seq_len};
    sl_engine *e = NULL;
    char err[256];
    assert_int_equal(sl_engine_new(m, &ec, &e, err, sizeof(err)), 0);
    return e;
}

static const int32_t P0[] = {1, 5, 9, 2, 7};
static const int32_t P1[] = {3, 3, 8, 11, 12, 30, 4};
static const int32_t P2[] = {20, 21};

static void expect_same_sample(const sl_gen_sample *a, const sl_gen_sample *b, float tol)
{
    assert_int_equal(a->n_tokens, b->n_tokens);
    assert_int_equal(a->finish, b->finish);
    assert_memory_equal(a->tokens, b->tokens, sizeof(int32_t) * (size_t)a->n_tokens);
    for (int k = 0; k < a->n_tokens; k++) assert_true(fabsf(a->logprobs[k] - b->logprobs[k]) <= tol);
}

static void prompt_sharing_by_kv_copy_equals_independent_generation(void **state)
{
    (void)state;
    sl_model *m = tiny_model(1, 64);
    sl_engine *shared = engine_for(m, 8, 64), *alone = engine_for(m, 1, 64);
    sl_gen_params p;
    sl_gen_params_default(&p);
    p.max_new_tokens = 12;
    uint64_t ids[4] = {100, 101, 102, 103};
    sl_gen_request group = {P1, 7, 4, 42, ids};
    sl_gen_output a, b;
    assert_int_equal(sl_engine_generate(shared, &group, 1, &p, &a), 0);
    assert_int_equal(a.n_samples, 4);
    assert_int_equal(a.kv_copies, 3);
    assert_int_equal(a.prefill_tokens, 7);
    sl_gen_request singles[4];
    for (int j = 0; j < 4; j++) singles[j] = (sl_gen_request){P1, 7, 1, 42, &ids[j]};
    assert_int_equal(sl_engine_generate(alone, singles, 4, &p, &b), 0);
    assert_int_equal(b.kv_copies, 0);
    assert_int_equal(b.prefill_tokens, 28);
    int differ = 0;
    for (int j = 0; j < 4; j++) {
        expect_same_sample(&a.samples[j], &b.samples[j], 1e-5f);
        assert_int_equal(a.samples[j].sample_id, ids[j]);
        if (j && memcmp(a.samples[j].tokens, a.samples[0].tokens, sizeof(int32_t) * 12)) differ = 1;
    }
    assert_true(differ); /* the samples of a group are not copies of each other */
    sl_gen_output_fini(&a);
    sl_gen_output_fini(&b);
    sl_engine_free(shared);
    sl_engine_free(alone);
    sl_model_free(m);
}

static void results_depend_on_seed_not_on_batch_composition(void **state)
{
    (void)state;
    sl_model *m = tiny_model(2, 64);
    sl_engine *big = engine_for(m, 16, 64), *small = engine_for(m, 3, 64);
    sl_gen_params p;
    sl_gen_params_default(&p);
    p.max_new_tokens = 10;
    p.top_p = 0.9f;
    p.stop_token_ids[0] = 6;
    p.n_stop_token_ids = 1;
    sl_gen_request target = {P0, 5, 3, 7, NULL};
    sl_gen_output ref, mixed, again, other;
    assert_int_equal(sl_engine_generate(big, &target, 1, &p, &ref), 0);
    /* the same request after and between others, decoded in a smaller batch */
    sl_gen_request reqs[3] = {{P2, 2, 5, 99, NULL}, target, {P1, 7, 2, 5, NULL}};
    assert_int_equal(sl_engine_generate(small, reqs, 3, &p, &mixed), 0);
    assert_int_equal(mixed.n_samples, 10);
    for (int j = 0; j < 3; j++) {
        const sl_gen_sample *g = &mixed.samples[5 + j];
        assert_int_equal(g->request, 1);
        assert_int_equal(g->index, j);
        expect_same_sample(&ref.samples[j], g, 1e-5f);
    }
    assert_int_equal(sl_engine_generate(big, &target, 1, &p, &again), 0);
    for (int j = 0; j < 3; j++) expect_same_sample(&ref.samples[j], &again.samples[j], 0.0f);
    sl_gen_request seeded = target;
    seeded.seed = 8;
    assert_int_equal(sl_engine_generate(big, &seeded, 1, &p, &other), 0);
    int differ = 0;
    for (int j = 0; j < 3; j++)
        if (other.samples[j].n_tokens != ref.samples[j].n_tokens ||
            memcmp(other.samples[j].tokens, ref.samples[j].tokens,
                   sizeof(int32_t) * (size_t)ref.samples[j].n_tokens))
            differ = 1;
    assert_true(differ);
    sl_gen_output_fini(&ref);
    sl_gen_output_fini(&mixed);
    sl_gen_output_fini(&again);
    sl_gen_output_fini(&other);
    sl_engine_free(big);
    sl_engine_free(small);
    sl_model_free(m);
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void greedy_generation_equals_argmax_of_the_full_forward(void **state)
{
    (void)state;
    sl_model *m = tiny_model(3, 64);
    sl_engine *e = engine_for(m, 4, 64);
    sl_gen_params p;
    sl_gen_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 16;
    sl_gen_request r[2] = {{P0, 5, 2, 1, NULL}, {P1, 7, 1, 2, NULL}};
    sl_gen_output o;
    assert_int_equal(sl_engine_generate(e, r, 2, &p, &o), 0);
    expect_same_sample(&o.samples[0], &o.samples[1], 0.0f); /* greedy ignores the seed */
    for (int s = 0; s < 3; s++) {
        const sl_gen_sample *g = &o.samples[s];
        const sl_gen_request *q = &r[g->request];
        int L = q->prompt_len + g->n_tokens;
        int32_t seq[64];
        memcpy(seq, q->prompt, sizeof(int32_t) * (size_t)q->prompt_len);
        memcpy(seq + q->prompt_len, g->tokens, sizeof(int32_t) * (size_t)g->n_tokens);
        float *logits = malloc(sizeof(float) * (size_t)L * VOCAB);
        int32_t cu[2] = {0, L};
        assert_int_equal(sl_model_forward_logits(m, seq, cu, 1, logits), 0);
        for (int k = 0; k < g->n_tokens; k++) {
            const float *row = logits + (size_t)(q->prompt_len - 1 + k) * VOCAB;
            assert_int_equal(g->tokens[k], argmax(row, VOCAB));
            float lp = sl_logprob_of(row, VOCAB, 1.0f, g->tokens[k]);
            assert_true(fabsf(lp - g->logprobs[k]) < 1e-4f);
        }
        free(logits);
    }
    sl_gen_output_fini(&o);
    sl_engine_free(e);
    sl_model_free(m);
}

static void stop_tokens_and_length_limits_end_responses(void **state)
{
    (void)state;
    sl_model *m = tiny_model(4, 64);
    sl_engine *e = engine_for(m, 4, 16);
    sl_gen_params p;
    sl_gen_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 6;
    sl_gen_request r = {P0, 5, 1, 1, NULL};
    sl_gen_output o;
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &o), 0);
    assert_int_equal(o.samples[0].n_tokens, 6);
    assert_int_equal(o.samples[0].finish, SL_FINISH_LENGTH);
    assert_string_equal(sl_finish_reason_name(o.samples[0].finish), "length");
    int32_t stop = o.samples[0].tokens[3];
    int first = 0;
    while (o.samples[0].tokens[first] != stop) first++;
    sl_gen_output_fini(&o);

    p.stop_token_ids[0] = 39;
    p.stop_token_ids[1] = stop;
    p.n_stop_token_ids = 2;
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &o), 0);
    assert_int_equal(o.samples[0].finish, SL_FINISH_STOP);
    assert_int_equal(o.samples[0].n_tokens, first + 1);
    assert_int_equal(o.samples[0].tokens[first], stop); /* the stop token is kept */
    sl_gen_output_fini(&o);

    /* max_seq_len 16 with a 7-token prompt: at most 10 response tokens */
    p.n_stop_token_ids = 0;
    p.max_new_tokens = 40;
    sl_gen_request r1 = {P1, 7, 2, 1, NULL};
    assert_int_equal(sl_engine_generate(e, &r1, 1, &p, &o), 0);
    for (int j = 0; j < 2; j++) {
        assert_int_equal(o.samples[j].n_tokens, 10);
        assert_int_equal(o.samples[j].finish, SL_FINISH_LENGTH);
    }
    sl_gen_output_fini(&o);
    sl_engine_free(e);
    sl_model_free(m);
}

static void recorded_logprobs_equal_the_trainers_recomputation(void **state)
{
    (void)state;
    sl_model *m = tiny_model(5, 128);
    float temps[2] = {1.0f, 0.7f};
    for (int ti = 0; ti < 2; ti++) {
        sl_engine *e = engine_for(m, 8, 64);
        sl_gen_params p;
        sl_gen_params_default(&p);
        p.temperature = temps[ti];
        p.top_k = 20; /* truncation does not change the recorded log-prob */
        p.max_new_tokens = 12;
        sl_gen_request r[2] = {{P0, 5, 3, 11, NULL}, {P1, 7, 2, 12, NULL}};
        sl_gen_output o;
        assert_int_equal(sl_engine_generate(e, r, 2, &p, &o), 0);
        /* pack the samples as a train batch */
        int32_t tokens[128];
        uint64_t off[6] = {0};
        uint8_t mask[128] = {0};
        float roll[128] = {0};
        for (int s = 0; s < o.n_samples; s++) {
            const sl_gen_sample *g = &o.samples[s];
            const sl_gen_request *q = &r[g->request];
            uint64_t b = off[s];
            memcpy(tokens + b, q->prompt, sizeof(int32_t) * (size_t)q->prompt_len);
            memcpy(tokens + b + q->prompt_len, g->tokens, sizeof(int32_t) * (size_t)g->n_tokens);
            for (int k = 0; k < g->n_tokens; k++) {
                mask[b + q->prompt_len + k] = 1;
                roll[b + q->prompt_len + k] = g->logprobs[k];
            }
            off[s + 1] = b + (uint64_t)(q->prompt_len + g->n_tokens);
        }
        sl_train_batch tb = {.n_samples = 5, .offsets = off, .tokens = tokens,
                             .loss_mask = mask, .rollout_logprobs = roll};
        sl_trainer_cfg tc;
        sl_trainer_cfg_default(&tc);
        tc.rollout_temperature = temps[ti];
        sl_trainer *t = NULL;
        char err[256];
        assert_int_equal(sl_trainer_new(m, &tc, &t, err, sizeof(err)), 0);
        float lp[128];
        assert_int_equal(sl_trainer_logprobs(t, &tb, lp, NULL), 0);
        double maxd = 0;
        for (uint64_t k = 0; k < off[5]; k++)
            if (mask[k]) maxd = fmax(maxd, fabs((double)lp[k] - roll[k]));
        print_message("temperature %.1f: max |engine - trainer| log-prob %.3g\n", temps[ti], maxd);
        assert_true(maxd < 1e-4);
        sl_trainer_free(t);
        sl_gen_output_fini(&o);
        sl_engine_free(e);
    }
    sl_model_free(m);
}

static void loading_weights_changes_outputs_and_version(void **state)
{
    (void)state;
    sl_model *m = tiny_model(6, 64), *other = tiny_model(7, 64);
    sl_engine *e = engine_for(m, 4, 64);
    assert_int_equal(sl_engine_version(e), 0);
    sl_gen_params p;
    sl_gen_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = 8;
    sl_gen_request r = {P0, 5, 1, 1, NULL};
    sl_gen_output a, b;
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &a), 0);
    assert_int_equal(sl_engine_load_weights(e, other->params_mem, other->n_params, 5), 0);
    assert_int_equal(sl_engine_version(e), 5);
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &b), 0);
    assert_int_equal(b.samples[0].weight_version, 5);
    assert_int_equal(a.samples[0].weight_version, 0);
    assert_true(memcmp(a.samples[0].logprobs, b.samples[0].logprobs, sizeof(float) * 8) != 0);
    /* refused: wrong size, non-finite values (nothing changes) */
    assert_int_equal(sl_engine_load_weights(e, other->params_mem, other->n_params - 1, 6),
                     SL_EINVAL);
    other->params_mem[3] = NAN;
    assert_int_equal(sl_engine_load_weights(e, other->params_mem, other->n_params, 6), SL_EINVAL);
    assert_int_equal(sl_engine_version(e), 5);
    sl_engine_set_version(e, 9);
    assert_int_equal(sl_engine_version(e), 9);
    sl_gen_output_fini(&a);
    sl_gen_output_fini(&b);
    sl_engine_free(e);
    sl_model_free(m);
    sl_model_free(other);
}

static void a_raised_abort_flag_ends_every_sample_as_aborted(void **state)
{
    (void)state;
    sl_model *m = tiny_model(8, 64);
    sl_engine *e = engine_for(m, 4, 64);
    volatile sig_atomic_t flag = 1;
    sl_engine_set_abort_flag(e, &flag);
    sl_gen_params p;
    sl_gen_params_default(&p);
    sl_gen_request r = {P0, 5, 3, 1, NULL};
    sl_gen_output o;
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &o), 0);
    assert_int_equal(o.n_samples, 3);
    for (int j = 0; j < 3; j++) {
        assert_int_equal(o.samples[j].finish, SL_FINISH_ABORT);
        assert_int_equal(o.samples[j].n_tokens, 0);
    }
    sl_gen_output_fini(&o);
    sl_gen_output_fini(&o); /* twice is safe */
    sl_engine_free(e);
    sl_model_free(m);
}

static void hostile_requests_and_shapes_are_refused(void **state)
{
    (void)state;
    sl_model *m = tiny_model(9, 16);
    sl_engine *e = NULL;
    char err[256];
    sl_engine_cfg ec = {.max_batch = 17, .max_seq_len = 32};
    assert_int_equal(sl_engine_new(m, &ec, &e, err, sizeof(err)), SL_EINVAL); /* > max_tokens */
    ec = (sl_engine_cfg){.max_batch = 4, .max_seq_len = 129};
    assert_int_equal(sl_engine_new(m, &ec, &e, err, sizeof(err)), SL_EINVAL); /* > max_pos */
    assert_null(e);
    assert_int_equal(sl_engine_new(NULL, NULL, &e, err, sizeof(err)), SL_EINVAL);
    e = engine_for(m, 4, 32);
    sl_gen_params p;
    sl_gen_params_default(&p);
    sl_gen_output o;
    int32_t bad[3] = {1, VOCAB, 2};
    sl_gen_request r = {bad, 3, 1, 1, NULL};
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &o), SL_EINVAL);
    assert_null(o.samples);
    int32_t longp[20] = {0};
    r = (sl_gen_request){longp, 20, 1, 1, NULL}; /* longer than max_tokens 16 */
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &o), SL_EINVAL);
    r = (sl_gen_request){P0, 0, 1, 1, NULL};
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &o), SL_EINVAL);
    r = (sl_gen_request){P0, 5, 0, 1, NULL};
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &o), SL_EINVAL);
    r = (sl_gen_request){P0, 5, 1, 1, NULL};
    p.top_p = 0.0f;
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &o), SL_EINVAL);
    sl_gen_params_default(&p);
    p.max_new_tokens = 0;
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &o), SL_EINVAL);
    sl_gen_params_default(&p);
    p.n_stop_token_ids = 1;
    p.stop_token_ids[0] = -1;
    assert_int_equal(sl_engine_generate(e, &r, 1, &p, &o), SL_EINVAL);
    /* no requests: an empty output */
    sl_gen_params_default(&p);
    assert_int_equal(sl_engine_generate(e, NULL, 0, &p, &o), 0);
    assert_int_equal(o.n_samples, 0);
    sl_gen_output_fini(&o);
    sl_engine_free(e);
    sl_engine_free(NULL);
    sl_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prompt_sharing_by_kv_copy_equals_independent_generation),
        cmocka_unit_test(results_depend_on_seed_not_on_batch_composition),
        cmocka_unit_test(greedy_generation_equals_argmax_of_the_full_forward),
        cmocka_unit_test(stop_tokens_and_length_limits_end_responses),
        cmocka_unit_test(recorded_logprobs_equal_the_trainers_recomputation),
        cmocka_unit_test(loading_weights_changes_outputs_and_version),
        cmocka_unit_test(a_raised_abort_flag_ends_every_sample_as_aborted),
        cmocka_unit_test(hostile_requests_and_shapes_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
