/*
 * test_workflow.c — WF_SAMPLE checks (actors/workflow.h): a good sample is
 * taken in the batch layout (mask 0 on the prompt, log-probs zeroed where
 * the mask is 0), and each kind of malformed sample is refused with its own
 * reason. The workflow actors' side: PROMPTS as the buffer sends them are
 * read with their defaults, bad ones refused with the reason; a group's
 * samples spread over the engines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "rl_msg.h"
#include "workflow.h"

static const int32_t PROMPT[3] = {5, 6, 7};
static const uint64_t IDS[2] = {4096, 4097};

/* A good sample of group 4096 index 1: prompt 5 6 7, response 8 9 10 11
 * with the middle two tokens tool output (mask 0, log-prob 3). */
static json_t *good(void) {
    return json_pack("{s:i,s:s,s:i,s:i,s:i,s:[iiiiiii],s:i,s:[iiii],s:[ffff],s:i,s:s,s:{s:f}}", "step", 2, "phase",
                     "rl", "group", 4096, "index", 1, "sample_id", 4097, "tokens", 5, 6, 7, 8, 9, 10, 11, "prompt_len",
                     3, "loss_mask", 1, 0, 0, 1, "logprobs", -0.5, 3.0, 3.0, -0.25, "weight_version", 4, "metadata",
                     "{}", "metrics", "tool_call_rate", 1.0);
}

static sl_wf_reason parse_check(json_t *o, sl_wf_sample *s, const uint8_t *taken, int complete) {
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    sl_wf_limits lim = {.vocab = 100, .max_response = 8, .max_prompt = 10};
    char why[256];
    sl_wf_reason r = sl_wf_sample_parse(t, strlen(t), &lim, s, why, sizeof why);
    free(t);
    if (r == SL_WF_OK) {
        sl_wf_expect e = {.found = s->step == 2 && s->group == 4096, .complete = complete, .n = 2,
                          .sample_ids = IDS, .prompt = PROMPT, .prompt_len = 3, .taken = taken};
        r = sl_wf_sample_check(s, &e, why, sizeof why);
    }
    if (r != SL_WF_OK) {
        assert_true(why[0] != 0); /* every refusal says what was wrong */
        sl_wf_sample_fini(s);
    }
    return r;
}

static void a_good_sample_is_taken_in_the_batch_layout(void **state) {
    (void)state;
    sl_wf_sample s;
    assert_int_equal(parse_check(good(), &s, NULL, 0), SL_WF_OK);
    assert_int_equal(s.n_tokens, 7);
    assert_int_equal(s.prompt_len, 3);
    const uint8_t mask[7] = {0, 0, 0, 1, 0, 0, 1};
    assert_memory_equal(s.loss_mask, mask, 7);
    assert_true(s.logprobs[3] == -0.5f && s.logprobs[6] == -0.25f);
    assert_true(s.logprobs[4] == 0.f && s.logprobs[5] == 0.f && s.logprobs[0] == 0.f);
    assert_int_equal(s.weight_version, 4);
    assert_false(s.has_reward);
    assert_int_equal(s.n_metrics, 1);
    assert_string_equal(s.metric_name[0], "tool_call_rate");
    assert_string_equal(s.metadata, "{}");
    sl_wf_sample_fini(&s);
    sl_wf_sample_fini(&s); /* twice is safe */
    json_t *o = good();
    json_object_set_new(o, "reward", json_real(0.75));
    assert_int_equal(parse_check(o, &s, NULL, 0), SL_WF_OK);
    assert_true(s.has_reward && s.reward == 0.75);
    sl_wf_sample_fini(&s);
}

static void every_kind_of_malformed_sample_has_its_reason(void **state) {
    (void)state;
    sl_wf_sample s;
    json_t *o;
    int kinds = 0;
#define EXPECT(reason, code)                                                                                     \
    do {                                                                                                         \
        o = good();                                                                                              \
        code;                                                                                                    \
        sl_wf_reason got = parse_check(o, &s, NULL, 0);                                                          \
        if (got != (reason)) {                                                                                   \
            print_error("%s: got %s\n", sl_wf_reason_name(reason), sl_wf_reason_name(got));                     \
            fail();                                                                                              \
        }                                                                                                        \
        kinds++;                                                                                                 \
    } while (0)
    char why[128];
    assert_int_equal(sl_wf_sample_parse("{nope", 5, NULL, &s, why, sizeof why), SL_WF_BAD_JSON);
    assert_int_equal(sl_wf_sample_parse("[1,2]", 5, NULL, &s, why, sizeof why), SL_WF_BAD_JSON);
    EXPECT(SL_WF_MISSING_FIELD, json_object_del(o, "logprobs"));
    EXPECT(SL_WF_MISSING_FIELD, json_object_set_new(o, "group", json_integer(-1)));
    EXPECT(SL_WF_MISSING_FIELD, json_array_set_new(json_object_get(o, "tokens"), 4, json_real(9.5)));
    EXPECT(SL_WF_BAD_PHASE, json_object_set_new(o, "phase", json_string("sft")));
    EXPECT(SL_WF_UNKNOWN_GROUP, json_object_set_new(o, "step", json_integer(3)));
    EXPECT(SL_WF_BAD_INDEX, json_object_set_new(o, "index", json_integer(2)));
    EXPECT(SL_WF_BAD_SAMPLE_ID, json_object_set_new(o, "sample_id", json_integer(4096)));
    EXPECT(SL_WF_BAD_PROMPT_LEN, json_object_set_new(o, "prompt_len", json_integer(0)));
    EXPECT(SL_WF_BAD_PROMPT_LEN, json_object_set_new(o, "prompt_len", json_integer(7)));
    EXPECT(SL_WF_PROMPT_MISMATCH, json_array_set_new(json_object_get(o, "tokens"), 2, json_integer(8)));
    EXPECT(SL_WF_TOKEN_RANGE, json_array_set_new(json_object_get(o, "tokens"), 5, json_integer(100)));
    EXPECT(SL_WF_TOKEN_RANGE, json_array_set_new(json_object_get(o, "tokens"), 0, json_integer(-1)));
    EXPECT(SL_WF_MASK_LENGTH, json_array_append_new(json_object_get(o, "loss_mask"), json_integer(1)));
    EXPECT(SL_WF_MASK_VALUE, json_array_set_new(json_object_get(o, "loss_mask"), 1, json_integer(-1)));
    EXPECT(SL_WF_MASK_VALUE, json_array_set_new(json_object_get(o, "loss_mask"), 1, json_real(0.5)));
    EXPECT(SL_WF_LOGPROB_LENGTH, json_array_remove(json_object_get(o, "logprobs"), 3));
    EXPECT(SL_WF_BAD_LOGPROB, json_array_set_new(json_object_get(o, "logprobs"), 0, json_real(0.5)));
    EXPECT(SL_WF_BAD_LOGPROB, json_array_set_new(json_object_get(o, "logprobs"), 3, json_null()));
    EXPECT(SL_WF_NO_LOSS_TOKEN, {
        json_array_set_new(json_object_get(o, "loss_mask"), 0, json_integer(0));
        json_array_set_new(json_object_get(o, "loss_mask"), 3, json_integer(0));
    });
    EXPECT(SL_WF_TOO_LONG, {
        for (int k = 0; k < 5; k++) {
            json_array_append_new(json_object_get(o, "tokens"), json_integer(1));
            json_array_append_new(json_object_get(o, "loss_mask"), json_integer(1));
            json_array_append_new(json_object_get(o, "logprobs"), json_real(-1));
        }
    });
    EXPECT(SL_WF_BAD_REWARD, json_object_set_new(o, "reward", json_string("1")));
    EXPECT(SL_WF_BAD_METADATA, json_object_set_new(o, "metadata", json_integer(3)));
    EXPECT(SL_WF_BAD_METADATA, json_object_set_new(o, "metrics", json_pack("{s:f}", "Tool-Rate", 1.0)));
    /* group state */
    const uint8_t taken[2] = {0, 1};
    assert_int_equal(parse_check(good(), &s, taken, 0), SL_WF_DUPLICATE);
    assert_int_equal(parse_check(good(), &s, NULL, 1), SL_WF_GROUP_DONE);
    kinds += 2;
    assert_true(kinds >= 20);
    /* every reason has a distinct name */
    for (int i = 0; i < SL_WF_N_REASONS; i++)
        for (int j = i + 1; j < SL_WF_N_REASONS; j++)
            assert_string_not_equal(sl_wf_reason_name((sl_wf_reason)i), sl_wf_reason_name((sl_wf_reason)j));
    assert_string_equal(sl_wf_reason_name(SL_WF_N_REASONS), "?");
#undef EXPECT
}

/* PROMPTS payload TEXT from "buffer" into *P. */
static int prompts(const char *text, sl_wf_prompts *p, char *why, size_t wl) {
    sl_msg m = {.type = SL_MSG_PROMPTS, .len = (uint32_t)strlen(text), .payload = (uint8_t *)text};
    snprintf(m.sender, sizeof m.sender, "buffer");
    return sl_wf_prompts_parse(&m, p, why, wl);
}

static void prompts_are_read_with_their_defaults(void **state) {
    (void)state;
    sl_wf_prompts p, q;
    char why[160];
    /* as the buffer sends them (buffer.c dispatch_group) */
    assert_int_equal(prompts("{\"step\":3,\"phase\":\"eval\",\"group\":8192,\"sample_ids\":[8192,9000],"
                             "\"prompt\":[5,6,7],\"n\":2,\"temperature\":0.5,\"top_p\":0.9,\"top_k\":-1,"
                             "\"max_new_tokens\":32,\"seed\":11,\"label\":\"19\",\"metadata\":\"{}\"}",
                             &p, why, sizeof why),
                     SL_OK);
    assert_string_equal(p.buffer, "buffer");
    assert_int_equal(p.step, 3);
    assert_true(p.eval);
    assert_int_equal(p.group, 8192);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.sample_ids[0], 8192);
    assert_int_equal(p.sample_ids[1], 9000);
    assert_int_equal(p.prompt_len, 3);
    assert_memory_equal(p.prompt, PROMPT, sizeof PROMPT);
    assert_true(p.temperature == 0.5 && p.top_p == 0.9);
    assert_int_equal(p.top_k, 0); /* -1: off */
    assert_int_equal(p.max_new_tokens, 32);
    assert_int_equal(p.seed, 11);
    assert_string_equal(p.label, "19");
    assert_string_equal(p.metadata, "{}");
    /* the least a PROMPTS holds: the defaults, sample ids group + i */
    assert_int_equal(prompts("{\"group\":4096,\"n\":3,\"prompt\":[1]}", &q, why, sizeof why), SL_OK);
    assert_int_equal(q.step, 0);
    assert_false(q.eval);
    assert_int_equal(q.sample_ids[2], 4098);
    assert_true(q.temperature == 1.0 && q.top_p == 1.0);
    assert_int_equal(q.max_new_tokens, 256);
    assert_null(q.label);
    assert_null(q.metadata);
    assert_true(sl_wf_prompts_same_group(&q, &q));
    assert_false(sl_wf_prompts_same_group(&p, &q));
    sl_wf_prompts_fini(&p);
    sl_wf_prompts_fini(&q);
    sl_wf_prompts_fini(&q); /* twice: safe */
}

static void bad_prompts_are_refused_with_the_reason(void **state) {
    (void)state;
    static const char *const bad[] = {
        "not json",
        "[1,2]",
        "{\"n\":2,\"prompt\":[1]}",                             /* no group */
        "{\"group\":1,\"prompt\":[1]}",                         /* no n */
        "{\"group\":1,\"n\":0,\"prompt\":[1]}",               /* n < 1 */
        "{\"group\":1,\"n\":4097,\"prompt\":[1]}",            /* n > SL_WF_MAX_GROUP */
        "{\"group\":1,\"n\":2}",                                /* no prompt */
        "{\"group\":1,\"n\":2,\"prompt\":[]}",                /* empty prompt */
        "{\"group\":1,\"n\":2,\"prompt\":[1],\"max_new_tokens\":0}",
        "{\"group\":1,\"n\":2,\"prompt\":[1],\"max_new_tokens\":1000001}",
        "{\"group\":1,\"n\":2,\"prompt\":[1],\"phase\":7}",
        "{\"group\":1,\"n\":2,\"prompt\":[1],\"label\":[1]}",
        "{\"group\":1,\"n\":2,\"prompt\":[1],\"metadata\":{}}",
        "{\"group\":-1,\"n\":2,\"prompt\":[1]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_wf_prompts p;
        char why[160] = "";
        int rc = prompts(bad[i], &p, why, sizeof why);
        if (rc != SL_EINVAL) print_message("accepted: %s\n", bad[i]);
        assert_int_equal(rc, SL_EINVAL);
        assert_true(why[0] != 0);
        assert_null(p.prompt);
        assert_null(p.sample_ids);
        sl_wf_prompts_fini(&p);
    }
}

static void a_groups_samples_spread_over_the_engines(void **state) {
    (void)state;
    sl_wf_engines e = {.n = 3};
    for (int i = 0; i < 3; i++) snprintf(e.name[i], sizeof e.name[i], "rollout%d", i);
    uint64_t gid;
    assert_int_equal(sl_prompt_id_pack(0, 7, &gid), 0);
    int used[3] = {0};
    for (uint32_t i = 0; i < 6; i++) {
        const char *n = sl_wf_engine_for(&e, gid, i);
        assert_string_equal(n, e.name[(7 + i) % 3]);
        used[n[7] - '0']++;
    }
    assert_true(used[0] == 2 && used[1] == 2 && used[2] == 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_good_sample_is_taken_in_the_batch_layout),
        cmocka_unit_test(every_kind_of_malformed_sample_has_its_reason),
        cmocka_unit_test(prompts_are_read_with_their_defaults),
        cmocka_unit_test(bad_prompts_are_refused_with_the_reason),
        cmocka_unit_test(a_groups_samples_spread_over_the_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
