/*
 * test_engine_sched.c — the engine's scheduler (engine.h, sl_engine_submit
 * / step / take_done): sequences of many "callers" with their own
 * parameters batched together give the tokens each gives alone; a group
 * submitted with a share key equals sl_engine_generate's group; sessions
 * restore the cached prefix and give the same tokens as a cold prompt;
 * cancel ends one sequence and leaves the others unaffected; the stop
 * callback ends a sequence on the token it reports; hostile submissions.
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
#include "tiny_model.h"

#define VOCAB TINY_ENGINE_VOCAB

static sl_model *tiny_model(uint64_t seed, int max_tokens)
{
    return tiny_model_new(TINY_ENGINE_SHAPE, seed, max_tokens);
}

static sl_engine *engine_for(sl_model *m, int max_batch, int max_seq_len, int sessions)
{
    sl_engine_cfg ec = {.max_batch = max_batch, .max_seq_len = max_seq_len, .max_sessions = sessions};
    sl_engine *e = NULL;
    char err[256];
    assert_int_equal(sl_engine_new(m, &ec, &e, err, sizeof(err)), 0);
    return e;
}

/* Run the scheduler until every sequence is done; results by handle order. */
static int run_all(sl_engine *e, sl_engine_done *out, int cap)
{
    int n = 0;
    for (int guard = 0; guard < 100000; guard++) {
        sl_engine_sched_stats st;
        sl_engine_sched_stats_get(e, &st);
        while (n < cap && sl_engine_take_done(e, &out[n])) n++;
        if (st.n_waiting == 0 && st.n_active == 0 && st.n_done == 0) break;
        assert_int_equal(sl_engine_step(e, true, 0), 0);
    }
    /* order by handle */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && out[j].handle < out[j - 1].handle; j--) {
            sl_engine_done t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static void same_done(const sl_engine_done *a, const sl_engine_done *b, float tol)
{
    assert_int_equal(a->n_tokens, b->n_tokens);
    assert_int_equal(a->finish, b->finish);
    assert_memory_equal(a->tokens, b->tokens, sizeof(int32_t) * (size_t)a->n_tokens);
    for (int k = 0; k < a->n_tokens; k++) assert_true(fabsf(a->logprobs[k] - b->logprobs[k]) <= tol);
}

static sl_engine_seq_req req_of(const int32_t *p, int n, uint64_t seed, float temp, int max_new)
{
    sl_engine_seq_req r = {.prompt = p, .prompt_len = n, .seed = seed};
    sl_gen_params_default(&r.params);
    r.params.temperature = temp;
    r.params.max_new_tokens = max_new;
    return r;
}

static const int32_t P[6][7] = {{1, 5, 9, 2, 7}, {3, 3, 8, 11, 12, 30, 4}, {20, 21},
                                {9, 9, 9}, {1, 2, 3, 4, 5, 6}, {33}};
static const int PL[6] = {5, 7, 2, 3, 6, 1};

static void concurrent_sequences_equal_serial_ones(void **state)
{
    (void)state;
    sl_model *m = tiny_model(1, 128);
    sl_engine *e = engine_for(m, 4, 64, 0); /* 4 slots for 6 callers: some wait */
    sl_engine_seq_req r[6];
    for (int i = 0; i < 6; i++) {
        r[i] = req_of(P[i], PL[i], 100 + (uint64_t)i, i == 3 ? 0.0f : 0.7f + 0.1f * i, 8 + 3 * i);
        if (i == 1) r[i].params.top_k = 5;
        if (i == 4) r[i].params.top_p = 0.8f;
    }
    sl_engine_done ser[6], con[6];
    for (int i = 0; i < 6; i++) {
        assert_int_equal(sl_engine_submit(e, &r[i], NULL), 0);
        assert_int_equal(run_all(e, &ser[i], 1), 1);
    }
    for (int i = 0; i < 6; i++) assert_int_equal(sl_engine_submit(e, &r[i], NULL), 0);
    assert_int_equal(run_all(e, con, 6), 6);
    for (int i = 0; i < 6; i++) {
        same_done(&ser[i], &con[i], 1e-5f);
        assert_int_equal(con[i].prompt_len, PL[i]);
        sl_engine_done_fini(&ser[i]);
        sl_engine_done_fini(&con[i]);
    }
    sl_engine_free(e);
    sl_model_free(m);
}

static void a_shared_group_equals_generate(void **state)
{
    (void)state;
    sl_model *m = tiny_model(2, 128);
    sl_engine *e = engine_for(m, 8, 64, 0);
    sl_gen_params p;
    sl_gen_params_default(&p);
    p.max_new_tokens = 10;
    uint64_t ids[4] = {100, 101, 102, 103};
    sl_gen_request g = {P[1], 7, 4, 42, ids};
    sl_gen_output ref;
    assert_int_equal(sl_engine_generate(e, &g, 1, &p, &ref), 0);
    for (int j = 0; j < 4; j++) {
        sl_engine_seq_req r = {.prompt = P[1], .prompt_len = 7, .params = p, .seed = 42,
                               .seq_id = ids[j], .share_key = 77};
        assert_int_equal(sl_engine_submit(e, &r, NULL), 0);
    }
    sl_engine_done d[4];
    assert_int_equal(run_all(e, d, 4), 4);
    sl_engine_sched_stats st;
    sl_engine_sched_stats_get(e, &st);
    assert_int_equal(st.kv_copies, 3);
    assert_int_equal(st.prefill_tokens, 7);
    for (int j = 0; j < 4; j++) {
        assert_int_equal(d[j].n_tokens, ref.samples[j].n_tokens);
        assert_memory_equal(d[j].tokens, ref.samples[j].tokens, sizeof(int32_t) * (size_t)d[j].n_tokens);
        sl_engine_done_fini(&d[j]);
    }
    sl_gen_output_fini(&ref);
    sl_engine_free(e);
    sl_model_free(m);
}

static void a_session_reuses_its_prefix(void **state)
{
    (void)state;
    sl_model *m = tiny_model(3, 128);
    sl_engine *e = engine_for(m, 4, 64, 2);
    sl_engine_seq_req r = req_of(P[0], 5, 9, 0.8f, 6);
    r.session = "chat-1";
    sl_engine_done t1, t2, cold;
    assert_int_equal(sl_engine_submit(e, &r, NULL), 0);
    assert_int_equal(run_all(e, &t1, 1), 1);
    assert_int_equal(t1.cached_tokens, 0);
    /* turn 2: prompt + response + 3 new tokens */
    int32_t p2[32];
    int n2 = 0;
    memcpy(p2, P[0], 5 * sizeof(int32_t));
    n2 = 5;
    memcpy(p2 + n2, t1.tokens, sizeof(int32_t) * (size_t)t1.n_tokens);
    n2 += t1.n_tokens;
    p2[n2++] = 4;
    p2[n2++] = 17;
    p2[n2++] = 2;
    sl_engine_seq_req r2 = req_of(p2, n2, 11, 0.9f, 7);
    r2.session = "chat-1";
    assert_int_equal(sl_engine_submit(e, &r2, NULL), 0);
    assert_int_equal(run_all(e, &t2, 1), 1);
    assert_int_equal(t2.cached_tokens, 5 + t1.n_tokens);
    sl_engine_seq_req r3 = r2;
    r3.session = NULL;
    assert_int_equal(sl_engine_submit(e, &r3, NULL), 0);
    assert_int_equal(run_all(e, &cold, 1), 1);
    assert_int_equal(cold.cached_tokens, 0);
    same_done(&t2, &cold, 1e-4f);
    sl_engine_sched_stats st;
    sl_engine_sched_stats_get(e, &st);
    assert_int_equal(st.session_hits, 1);
    /* another session of the same prompt gets nothing cached; LRU of 2 */
    sl_engine_seq_req r4 = r2;
    r4.session = "chat-2";
    sl_engine_done t4;
    assert_int_equal(sl_engine_submit(e, &r4, NULL), 0);
    assert_int_equal(run_all(e, &t4, 1), 1);
    assert_int_equal(t4.cached_tokens, 0);
    /* new weights: the cache is not used */
    sl_engine_set_version(e, 5);
    sl_engine_done t5;
    assert_int_equal(sl_engine_submit(e, &r2, NULL), 0);
    assert_int_equal(run_all(e, &t5, 1), 1);
    assert_int_equal(t5.cached_tokens, 0);
    assert_int_equal(t5.weight_version, 5);
    sl_engine_done_fini(&t1);
    sl_engine_done_fini(&t2);
    sl_engine_done_fini(&t4);
    sl_engine_done_fini(&t5);
    sl_engine_done_fini(&cold);
    sl_engine_free(e);
    sl_model_free(m);
}

static int stop_on_7(void *user, const int32_t *ids, int n)
{
    (*(int *)user)++;
    return ids[n - 1] == 7;
}

static void cancel_and_stop_callback(void **state)
{
    (void)state;
    sl_model *m = tiny_model(4, 128);
    sl_engine *e = engine_for(m, 2, 64, 0);
    sl_engine_seq_req a = req_of(P[1], 7, 1, 1.0f, 30), b = req_of(P[2], 2, 2, 1.0f, 30),
                      c = req_of(P[3], 3, 3, 1.0f, 30);
    sl_engine_done ref_b;
    assert_int_equal(sl_engine_submit(e, &b, NULL), 0);
    assert_int_equal(run_all(e, &ref_b, 1), 1);
    uint64_t ha, hb, hc;
    assert_int_equal(sl_engine_submit(e, &a, &ha), 0);
    assert_int_equal(sl_engine_submit(e, &b, &hb), 0);
    assert_int_equal(sl_engine_submit(e, &c, &hc), 0); /* waits: 2 slots */
    assert_int_equal(sl_engine_step(e, true, 0), 0);
    assert_int_equal(sl_engine_step(e, true, 0), 0);
    assert_int_equal(sl_engine_cancel(e, ha), 0);
    assert_int_equal(sl_engine_cancel(e, hc), 0);
    assert_int_equal(sl_engine_cancel(e, hc), SL_ENOENT);
    sl_engine_done d[3];
    assert_int_equal(run_all(e, d, 3), 3);
    assert_int_equal(d[0].finish, SL_FINISH_ABORT);
    assert_int_equal(d[0].n_tokens, 3);
    same_done(&ref_b, &d[1], 1e-5f);
    assert_int_equal(d[2].finish, SL_FINISH_ABORT);
    assert_int_equal(d[2].n_tokens, 0);
    for (int i = 0; i < 3; i++) sl_engine_done_fini(&d[i]);
    /* stop callback: find a 7 in a long greedy-free response */
    int calls = 0;
    sl_engine_seq_req s = req_of(P[4], 6, 5, 1.0f, 60);
    s.stop_fn = stop_on_7;
    s.user = &calls;
    sl_engine_done ds, dn;
    assert_int_equal(sl_engine_submit(e, &s, NULL), 0);
    assert_int_equal(run_all(e, &ds, 1), 1);
    s.stop_fn = NULL;
    assert_int_equal(sl_engine_submit(e, &s, NULL), 0);
    assert_int_equal(run_all(e, &dn, 1), 1);
    int first7 = -1;
    for (int k = 0; k < dn.n_tokens && first7 < 0; k++)
        if (dn.tokens[k] == 7) first7 = k;
    if (first7 >= 0) {
        assert_int_equal(ds.finish, SL_FINISH_STOP);
        assert_int_equal(ds.n_tokens, first7 + 1);
    } else {
        assert_int_equal(ds.n_tokens, dn.n_tokens);
    }
    assert_int_equal(calls, ds.n_tokens);
    assert_memory_equal(ds.tokens, dn.tokens, sizeof(int32_t) * (size_t)ds.n_tokens);
    sl_engine_done_fini(&ds);
    sl_engine_done_fini(&dn);
    sl_engine_done_fini(&ref_b);
    sl_engine_free(e);
    sl_model_free(m);
}

static void hostile_submissions_are_refused(void **state)
{
    (void)state;
    sl_model *m = tiny_model(5, 128);
    sl_engine *e = engine_for(m, 2, 16, 1);
    int32_t bad[] = {1, VOCAB};
    int32_t longp[16] = {0};
    sl_engine_seq_req r = req_of(bad, 2, 1, 1.0f, 4);
    assert_int_equal(sl_engine_submit(e, &r, NULL), SL_EINVAL);
    r = req_of(longp, 16, 1, 1.0f, 4); /* needs room for one token */
    assert_int_equal(sl_engine_submit(e, &r, NULL), SL_EINVAL);
    r = req_of(longp, 0, 1, 1.0f, 4);
    assert_int_equal(sl_engine_submit(e, &r, NULL), SL_EINVAL);
    r = req_of(longp, 3, 1, -1.0f, 4);
    assert_int_equal(sl_engine_submit(e, &r, NULL), SL_EINVAL);
    r = req_of(longp, 3, 1, 1.0f, 0);
    assert_int_equal(sl_engine_submit(e, &r, NULL), SL_EINVAL);
    r = req_of(longp, 3, 1, 1.0f, 4);
    r.session = "";
    assert_int_equal(sl_engine_submit(e, &r, NULL), SL_EINVAL);
    r.session = NULL;
    r.params.stop_token_ids[0] = -1;
    r.params.n_stop_token_ids = 1;
    assert_int_equal(sl_engine_submit(e, &r, NULL), SL_EINVAL);
    /* max_new_tokens beyond the room is clamped: 15 prompt tokens, 16 positions */
    r = req_of(longp, 15, 1, 1.0f, 100);
    sl_engine_done d;
    assert_int_equal(sl_engine_submit(e, &r, NULL), 0);
    assert_int_equal(run_all(e, &d, 1), 1);
    assert_true(d.n_tokens <= 2);
    sl_engine_done_fini(&d);
    /* generate refuses while the scheduler holds sequences */
    r = req_of(longp, 3, 1, 1.0f, 4);
    assert_int_equal(sl_engine_submit(e, &r, NULL), 0);
    sl_gen_params p;
    sl_gen_params_default(&p);
    sl_gen_request g = {longp, 3, 1, 1, NULL};
    sl_gen_output o;
    assert_int_equal(sl_engine_generate(e, &g, 1, &p, &o), SL_EINVAL);
    sl_engine_free(e); /* frees the waiting sequence */
    sl_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_sequences_equal_serial_ones),
        cmocka_unit_test(a_shared_group_equals_generate),
        cmocka_unit_test(a_session_reuses_its_prefix),
        cmocka_unit_test(cancel_and_stop_callback),
        cmocka_unit_test(hostile_submissions_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
