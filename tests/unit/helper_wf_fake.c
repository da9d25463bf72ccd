/*
 * helper_wf_fake — a workflow actor for tests (tests/rl/test_workflow.sh):
 * it answers the buffer's PROMPTS with WF_SAMPLE messages without any
 * generation engine. Runs as `kind = exec` on the builtin:arith task (its
 * character-level tokenizer: id = ch - 0x20 + 1, "\n" = 96).
 *
 * Every sample's response is "<t>" + "#### ANSWER" with ANSWER the label for
 * even indices and label+1 for odd ones (so the gsm8k reward varies within
 * a group); the "<t>" tokens carry loss_mask 0 and log-prob +7 (any value
 * is allowed where the mask is 0; the buffer must neutralise it), the rest
 * mask 1 with log-prob -0.5. Groups whose id has bit 12 set carry their own
 * reward (1 for even, 0 for odd), the others go to the reward actors.
 *
 * WF_FAKE_MODE (environment):
 *   good       (default) as above.
 *   malformed  before the first RL group's samples, one malformed sample of
 *              every kind in workflow.h; after the group, a duplicate and a
 *              sample of the completed group. Each WF_ACK's reason is
 *              checked against the one expected: RUN_DIR/wf_fake.log gets
 *              "ack EXPECTED GOT" lines.
 *   slow       each group: half its samples, 400 ms pause, the rest (a
 *              kill -9 lands mid-group).
 * Every WF_ACK with ok=false on a sample meant to be good is logged as
 * "unexpected REASON" in RUN_DIR/wf_fake.log.
 */
#include "actor.h"
#include "rl_common.h"
#include "rl_msg.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EXPECT 64

typedef struct fake {
    int mode; /* 0 good, 1 malformed, 2 slow */
    int did_malformed;
    int max_resp;
    uint64_t corr[MAX_EXPECT];
    char expect[MAX_EXPECT][32];
    int n_expect;
    FILE *log;
} fake;

static int32_t cid(char c) { return c == '\n' ? 96 : (int32_t)(c - 0x20 + 1); }

static void note(fake *f, const char *fmt, const char *a, const char *b) {
    if (!f->log) return;
    fprintf(f->log, fmt, a, b);
    fflush(f->log);
}

/* Send O as WF_SAMPLE (a request); remember what the ACK should say. */
static void send_sample(fake *f, sl_actor_ctx *ctx, const char *to, json_t *o, const char *expect) {
    char *t = json_dumps(o, JSON_COMPACT);
    uint64_t corr = 0;
    if (t) sl_actor_send_corr(ctx, to, SL_MSG_WF_SAMPLE, t, strlen(t), &corr);
    free(t);
    if (f->n_expect < MAX_EXPECT) {
        f->corr[f->n_expect] = corr;
        snprintf(f->expect[f->n_expect], sizeof f->expect[0], "%s", expect ? expect : "");
        f->n_expect++;
    } else if (expect) {
        note(f, "overflow %s%s\n", expect, "");
    }
}

static void send_raw(fake *f, sl_actor_ctx *ctx, const char *to, const char *text, const char *expect) {
    uint64_t corr = 0;
    sl_actor_send_corr(ctx, to, SL_MSG_WF_SAMPLE, text, strlen(text), &corr);
    if (f->n_expect < MAX_EXPECT) {
        f->corr[f->n_expect] = corr;
        snprintf(f->expect[f->n_expect], sizeof f->expect[0], "%s", expect);
        f->n_expect++;
    }
}

/* One good sample of group (gid, step, phase) index I as JSON. */
static json_t *good_sample(const json_t *pr, int64_t step, const char *phase, uint64_t gid, int i, const char *label) {
    long ans = label ? strtol(label, NULL, 10) : 0;
    char resp[64];
    snprintf(resp, sizeof resp, "<t>#### %ld", (i % 2) ? ans + 1 : ans);
    json_t *tok = json_array(), *mask = json_array(), *lp = json_array();
    size_t pl = json_array_size(pr);
    for (size_t k = 0; k < pl; k++) json_array_append(tok, json_array_get(pr, k));
    for (const char *c = resp; *c; c++) {
        int tool = c - resp < 3;
        json_array_append_new(tok, json_integer(cid(*c)));
        json_array_append_new(mask, json_integer(tool ? 0 : 1));
        json_array_append_new(lp, json_real(tool ? 7.0 : -0.5));
    }
    json_t *o = json_pack("{s:I,s:s,s:I,s:i,s:I,s:o,s:I,s:o,s:o,s:i,s:s}", "step", (json_int_t)step, "phase", phase,
                          "group", (json_int_t)gid, "index", i, "sample_id", (json_int_t)(gid + (uint64_t)i), "tokens",
                          tok, "prompt_len", (json_int_t)pl, "loss_mask", mask, "logprobs", lp, "weight_version", 0,
                          "metadata", "{\"fake\":true}");
    json_object_set_new(o, "metrics", json_pack("{s:f}", "tool_call_rate", 1.0));
    if (gid & 4096) json_object_set_new(o, "reward", json_real((i % 2) ? 0.0 : 1.0));
    return o;
}

static void malformed(fake *f, sl_actor_ctx *ctx, const char *to, const json_t *pr, int64_t step, uint64_t gid,
                      int n, const char *label) {
    json_t *o;
#define MUT(expect, code)                                                                                        \
    do {                                                                                                         \
        o = good_sample(pr, step, "rl", gid, 0, label);                                                          \
        code;                                                                                                    \
        send_sample(f, ctx, to, o, expect);                                                                      \
        json_decref(o);                                                                                          \
    } while (0)
    send_raw(f, ctx, to, "this is not json", "bad_json");
    MUT("missing_field", json_object_del(o, "tokens"));
    MUT("missing_field", json_object_set_new(o, "step", json_string("one")));
    MUT("bad_phase", json_object_set_new(o, "phase", json_string("train")));
    MUT("unknown_group", json_object_set_new(o, "step", json_integer(step + 9999)));
    MUT("bad_index", json_object_set_new(o, "index", json_integer(n)));
    MUT("bad_sample_id", json_object_set_new(o, "sample_id", json_integer((json_int_t)(gid + 4095))));
    MUT("bad_prompt_len", json_object_set_new(o, "prompt_len", json_integer(0)));
    MUT("bad_prompt_len", json_object_set_new(o, "prompt_len", json_integer((json_int_t)json_array_size(json_object_get(o, "tokens")))));
    MUT("prompt_mismatch", json_array_set_new(json_object_get(o, "tokens"), 0, json_integer(cid('Z'))));
    MUT("prompt_mismatch", {
        /* one prompt token moved into the response */
        json_object_set_new(o, "prompt_len", json_integer((json_int_t)json_array_size(pr) - 1));
        json_array_insert_new(json_object_get(o, "loss_mask"), 0, json_integer(0));
        json_array_insert_new(json_object_get(o, "logprobs"), 0, json_real(0));
    });
    MUT("token_out_of_vocab", json_array_append_new(json_object_get(o, "tokens"), json_integer(100000)));
    MUT("token_out_of_vocab", json_array_set_new(json_object_get(o, "tokens"), 1, json_integer(-3)));
    MUT("mask_length", json_array_remove(json_object_get(o, "loss_mask"), 0));
    MUT("mask_value", json_array_set_new(json_object_get(o, "loss_mask"), 4, json_integer(2)));
    MUT("logprobs_length", json_array_remove(json_object_get(o, "logprobs"), 0));
    MUT("bad_logprob", json_array_set_new(json_object_get(o, "logprobs"), 4, json_real(5.0)));
    MUT("bad_logprob", json_array_set_new(json_object_get(o, "logprobs"), 4, json_string("x")));
    MUT("no_loss_token", {
        json_t *mk = json_object_get(o, "loss_mask");
        for (size_t k = 0; k < json_array_size(mk); k++) json_array_set_new(mk, k, json_integer(0));
    });
    MUT("too_long", {
        for (int k = 0; k <= f->max_resp; k++) {
            json_array_append_new(json_object_get(o, "tokens"), json_integer(cid('7')));
            json_array_append_new(json_object_get(o, "loss_mask"), json_integer(1));
            json_array_append_new(json_object_get(o, "logprobs"), json_real(-1));
        }
    });
    MUT("bad_reward", json_object_set_new(o, "reward", json_string("high")));
    MUT("bad_metadata", {
        char *big = malloc(5001);
        memset(big, 'm', 5000);
        big[5000] = 0;
        json_object_set_new(o, "metadata", json_string(big));
        free(big);
    });
    MUT("bad_metadata", json_object_set_new(o, "metrics", json_pack("{s:s}", "tool_call_rate", "x")));
#undef MUT
}

static sl_err fake_init(sl_actor_ctx *ctx, void **state) {
    fake *f = calloc(1, sizeof *f);
    if (!f) return SL_ENOMEM;
    *state = f;
    const char *m = getenv("WF_FAKE_MODE");
    f->mode = m && strcmp(m, "malformed") == 0 ? 1 : m && strcmp(m, "slow") == 0 ? 2 : 0;
    const sl_topology *t = sl_actor_topology(ctx);
    f->max_resp = t ? (int)sl_topology_get_int(t, "rollout", "rollout_max_response_len") : 16;
    char p[4200];
    snprintf(p, sizeof p, "%s/wf_fake.log", sl_actor_run_dir(ctx));
    f->log = fopen(p, "a");
    sl_actor_record_event(ctx, "start");
    return SL_OK;
}

static void on_ack(fake *f, const sl_msg *m) {
    json_t *o = NULL;
    if (sl_rl_json_parse(m->payload, m->len, &o, NULL, 0) != 0) return;
    const char *reason = NULL;
    sl_rl_json_str_opt(o, "reason", "", &reason);
    bool ok = json_is_true(json_object_get(o, "ok"));
    for (int i = 0; i < f->n_expect; i++)
        if (f->corr[i] == m->corr) {
            if (f->expect[i][0]) note(f, "ack %s %s\n", f->expect[i], ok ? "ok" : reason);
            else if (!ok) note(f, "unexpected %s%s\n", reason, "");
            f->n_expect--;
            f->corr[i] = f->corr[f->n_expect];
            memcpy(f->expect[i], f->expect[f->n_expect], sizeof f->expect[i]);
            json_decref(o);
            return;
        }
    if (!ok) note(f, "unexpected %s%s\n", reason, "");
    json_decref(o);
}

static sl_err fake_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    fake *f = state;
    if (m->type == SL_MSG_WF_ACK) {
        on_ack(f, m);
        return SL_OK;
    }
    if (m->type != SL_MSG_PROMPTS) return SL_OK;
    json_t *o = NULL;
    if (sl_rl_json_parse(m->payload, m->len, &o, NULL, 0) != 0) return SL_OK;
    uint64_t step = 0, gid = 0, n = 0;
    const char *phase = "rl", *label = NULL;
    sl_rl_json_u64_opt(o, "step", 0, &step);
    sl_rl_json_u64(o, "group", &gid);
    sl_rl_json_u64(o, "n", &n);
    sl_rl_json_str_opt(o, "phase", "rl", &phase);
    sl_rl_json_str_opt(o, "label", NULL, &label);
    const json_t *pr = json_object_get(o, "prompt");
    bool rl = strcmp(phase, "rl") == 0;
    if (f->mode == 1 && rl && !f->did_malformed) malformed(f, ctx, m->sender, pr, (int64_t)step, gid, (int)n, label);
    for (uint64_t i = 0; i < n; i++) {
        if (f->mode == 2 && i == n / 2) {
            note(f, "half %s%s\n", phase, "");
            usleep(400 * 1000);
        }
        json_t *s = good_sample(pr, (int64_t)step, phase, gid, (int)i, label);
        send_sample(f, ctx, m->sender, s, NULL);
        if (f->mode == 1 && rl && !f->did_malformed && i == 0) send_sample(f, ctx, m->sender, s, "duplicate");
        if (f->mode == 1 && rl && !f->did_malformed && i == n - 1) send_sample(f, ctx, m->sender, s, "group_done");
        json_decref(s);
    }
    if (rl) f->did_malformed = 1;
    json_decref(o);
    return SL_OK;
}

static void fake_fini(void *state, sl_actor_ctx *ctx) {
    fake *f = state;
    sl_actor_record_event(ctx, "stop");
    if (f && f->log) fclose(f->log);
    free(f);
}

static const sl_actor_ops ops = {
    .name = "wf_fake",
    .init = fake_init,
    .handle = fake_handle,
    .fini = fake_fini,
};

int main(int argc, char **argv) { return sl_actor_main(&ops, argc, argv); }
