/*
 * workflow.c — parsing and checking WF_SAMPLE messages, and what the
 * workflow actors share: PROMPTS, engines, tokenizer (workflow.h).
 */
#include "workflow.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "rl_common.h"
#include "sample_batch.h"

static const char *const reason_names[SL_WF_N_REASONS] = {
    [SL_WF_OK] = "ok",
    [SL_WF_BAD_JSON] = "bad_json",
    [SL_WF_MISSING_FIELD] = "missing_field",
    [SL_WF_BAD_PHASE] = "bad_phase",
    [SL_WF_UNKNOWN_GROUP] = "unknown_group",
    [SL_WF_GROUP_DONE] = "group_done",
    [SL_WF_BAD_INDEX] = "bad_index",
    [SL_WF_BAD_SAMPLE_ID] = "bad_sample_id",
    [SL_WF_DUPLICATE] = "duplicate",
    [SL_WF_BAD_PROMPT_LEN] = "bad_prompt_len",
    [SL_WF_PROMPT_MISMATCH] = "prompt_mismatch",
    [SL_WF_TOKEN_RANGE] = "token_out_of_vocab",
    [SL_WF_MASK_LENGTH] = "mask_length",
    [SL_WF_MASK_VALUE] = "mask_value",
    [SL_WF_LOGPROB_LENGTH] = "logprobs_length",
    [SL_WF_BAD_LOGPROB] = "bad_logprob",
    [SL_WF_NO_LOSS_TOKEN] = "no_loss_token",
    [SL_WF_TOO_LONG] = "too_long",
    [SL_WF_BAD_REWARD] = "bad_reward",
    [SL_WF_BAD_METADATA] = "bad_metadata",
};

const char *sl_wf_reason_name(sl_wf_reason r) {
    return (unsigned)r < SL_WF_N_REASONS ? reason_names[r] : "?";
}

static sl_wf_reason say(sl_wf_reason r, char *why, size_t wl, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static sl_wf_reason say(sl_wf_reason r, char *why, size_t wl, const char *fmt, ...) {
    if (why && wl) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, wl, fmt, ap);
        va_end(ap);
    }
    return r;
}

void sl_wf_sample_fini(sl_wf_sample *s) {
    if (!s) return;
    free(s->tokens);
    free(s->loss_mask);
    free(s->logprobs);
    free(s->metadata);
    s->tokens = NULL, s->loss_mask = NULL, s->logprobs = NULL, s->metadata = NULL;
}

static int metric_name_ok(const char *k) {
    size_t n = strlen(k);
    if (n == 0 || n >= SL_WF_METRIC_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_')) return 0;
    return 1;
}

static sl_wf_reason parse_obj(const json_t *o, const sl_wf_limits *lim, sl_wf_sample *s, char *why, size_t wl) {
    uint64_t step = 0, gid = 0, idx = 0, sid = 0, pl = 0, wv = 0;
    const char *phase = NULL;
    /* the identifying fields first, so that a refusal names its sample */
    if (sl_rl_json_u64(o, "group", &gid)) return say(SL_WF_MISSING_FIELD, why, wl, "\"group\" (u64) missing or bad");
    s->group = gid;
    if (sl_rl_json_u64(o, "index", &idx) || idx > UINT32_MAX)
        return say(SL_WF_MISSING_FIELD, why, wl, "\"index\" (int) missing or bad");
    s->index = (uint32_t)idx;
    if (sl_rl_json_u64(o, "step", &step) || step > (uint64_t)INT64_MAX)
        return say(SL_WF_MISSING_FIELD, why, wl, "\"step\" (int) missing or bad");
    s->step = (int64_t)step;
    if (sl_rl_json_str_opt(o, "phase", NULL, &phase) || !phase)
        return say(SL_WF_MISSING_FIELD, why, wl, "\"phase\" (string) missing or bad");
    if (strcmp(phase, "rl") != 0 && strcmp(phase, "eval") != 0)
        return say(SL_WF_BAD_PHASE, why, wl, "phase \"%.32s\" (rl or eval)", phase);
    s->eval = strcmp(phase, "eval") == 0;
    if (sl_rl_json_u64(o, "sample_id", &sid))
        return say(SL_WF_MISSING_FIELD, why, wl, "\"sample_id\" (u64) missing or bad");
    s->sample_id = sid;
    if (sl_rl_json_u64(o, "prompt_len", &pl))
        return say(SL_WF_MISSING_FIELD, why, wl, "\"prompt_len\" (int) missing or bad");
    if (sl_rl_json_u64_opt(o, "weight_version", 0, &wv))
        return say(SL_WF_MISSING_FIELD, why, wl, "\"weight_version\" is not a non-negative integer");
    s->weight_version = wv;
    const json_t *tk = json_object_get(o, "tokens"), *mk = json_object_get(o, "loss_mask"),
                 *lp = json_object_get(o, "logprobs");
    if (!json_is_array(tk)) return say(SL_WF_MISSING_FIELD, why, wl, "\"tokens\" (array) missing");
    if (!json_is_array(mk)) return say(SL_WF_MISSING_FIELD, why, wl, "\"loss_mask\" (array) missing");
    if (!json_is_array(lp)) return say(SL_WF_MISSING_FIELD, why, wl, "\"logprobs\" (array) missing");
    size_t nt = json_array_size(tk);
    if (pl < 1 || pl >= nt)
        return say(SL_WF_BAD_PROMPT_LEN, why, wl, "prompt_len %llu with %zu tokens (1 .. tokens-1)",
                   (unsigned long long)pl, nt);
    if (lim && lim->max_prompt && pl > lim->max_prompt)
        return say(SL_WF_BAD_PROMPT_LEN, why, wl, "prompt_len %llu over the %u prompt tokens allowed",
                   (unsigned long long)pl, lim->max_prompt);
    size_t nr = nt - pl;
    if (lim && lim->max_response && nr > lim->max_response)
        return say(SL_WF_TOO_LONG, why, wl, "%zu response tokens (at most %u)", nr, lim->max_response);
    for (size_t i = 0; i < nt; i++) {
        const json_t *v = json_array_get(tk, i);
        if (!json_is_integer(v)) return say(SL_WF_MISSING_FIELD, why, wl, "tokens[%zu] is not an integer", i);
        json_int_t x = json_integer_value(v);
        if (x < 0 || (lim && lim->vocab > 0 && x >= lim->vocab))
            return say(SL_WF_TOKEN_RANGE, why, wl, "tokens[%zu] = %lld outside [0, %d)", i, (long long)x,
                       lim ? lim->vocab : 0);
    }
    if (json_array_size(mk) != nr)
        return say(SL_WF_MASK_LENGTH, why, wl, "%zu loss_mask entries for %zu response tokens", json_array_size(mk),
                   nr);
    size_t on = 0;
    for (size_t i = 0; i < nr; i++) {
        const json_t *v = json_array_get(mk, i);
        if (!json_is_integer(v) || (json_integer_value(v) != 0 && json_integer_value(v) != 1))
            return say(SL_WF_MASK_VALUE, why, wl, "loss_mask[%zu] is not 0 or 1", i);
        on += json_integer_value(v) == 1;
    }
    if (json_array_size(lp) != nr)
        return say(SL_WF_LOGPROB_LENGTH, why, wl, "%zu logprobs for %zu response tokens", json_array_size(lp), nr);
    for (size_t i = 0; i < nr; i++) {
        if (json_integer_value(json_array_get(mk, i)) != 1) continue; /* any value where the mask is 0 */
        const json_t *v = json_array_get(lp, i);
        double x = json_is_number(v) ? json_number_value(v) : NAN;
        if (!isfinite(x) || x > SL_BATCH_LOGPROB_TOL)
            return say(SL_WF_BAD_LOGPROB, why, wl, "logprobs[%zu] of a masked-in token is %s", i,
                       json_is_number(v) ? "positive" : "not a number");
    }
    if (on == 0) return say(SL_WF_NO_LOSS_TOKEN, why, wl, "loss_mask is 0 on all %zu response tokens", nr);
    const json_t *rw = json_object_get(o, "reward");
    if (rw && !json_is_null(rw)) {
        if (!json_is_number(rw) || !isfinite(json_number_value(rw)))
            return say(SL_WF_BAD_REWARD, why, wl, "reward is not a finite number");
        s->has_reward = 1;
        s->reward = json_number_value(rw);
    }
    const json_t *md = json_object_get(o, "metadata");
    if (md && !json_is_null(md) && (!json_is_string(md) || json_string_length(md) > SL_WF_MAX_METADATA ||
                                    strlen(json_string_value(md)) != json_string_length(md)))
        return say(SL_WF_BAD_METADATA, why, wl, "metadata is not a string of at most %d bytes without NUL",
                   SL_WF_MAX_METADATA);
    const json_t *mt = json_object_get(o, "metrics");
    if (mt && !json_is_null(mt)) {
        if (!json_is_object(mt) || json_object_size(mt) > SL_WF_MAX_METRICS)
            return say(SL_WF_BAD_METADATA, why, wl, "metrics is not an object of at most %d numbers",
                       SL_WF_MAX_METRICS);
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)mt, k, v) {
            if (!metric_name_ok(k) || !json_is_number(v) || !isfinite(json_number_value(v)))
                return say(SL_WF_BAD_METADATA, why, wl, "metrics entry \"%.48s\": a name of [a-z0-9_] and a finite number", k);
            snprintf(s->metric_name[s->n_metrics], SL_WF_METRIC_NAME_MAX, "%s", k);
            s->metric_value[s->n_metrics++] = json_number_value(v);
        }
    }
    /* everything checked: copy out in the batch layout */
    s->n_tokens = (uint32_t)nt;
    s->prompt_len = (uint32_t)pl;
    s->tokens = malloc(nt * sizeof *s->tokens);
    s->loss_mask = calloc(nt, 1);
    s->logprobs = calloc(nt, sizeof *s->logprobs);
    if (md && json_is_string(md)) s->metadata = strdup(json_string_value(md));
    if (!s->tokens || !s->loss_mask || !s->logprobs || (md && json_is_string(md) && !s->metadata)) {
        sl_wf_sample_fini(s);
        return say(SL_WF_BAD_JSON, why, wl, "out of memory");
    }
    for (size_t i = 0; i < nt; i++) s->tokens[i] = (int32_t)json_integer_value(json_array_get(tk, i));
    for (size_t i = 0; i < nr; i++) {
        if (json_integer_value(json_array_get(mk, i)) != 1) continue;
        s->loss_mask[pl + i] = 1;
        double x = json_number_value(json_array_get(lp, i));
        s->logprobs[pl + i] = x > 0 ? 0.f : (float)x;
    }
    return SL_WF_OK;
}

sl_wf_reason sl_wf_sample_parse(const void *payload, size_t len, const sl_wf_limits *lim, sl_wf_sample *out,
                                char *why, size_t wl) {
    if (!out) return SL_WF_BAD_JSON;
    memset(out, 0, sizeof *out);
    if (why && wl) why[0] = 0;
    json_t *o = NULL;
    char err[160];
    if (!payload || sl_rl_json_parse(payload, len, &o, err, sizeof err) != 0)
        return say(SL_WF_BAD_JSON, why, wl, "%s", payload ? err : "no payload");
    sl_wf_reason r = parse_obj(o, lim, out, why, wl);
    json_decref(o);
    if (r != SL_WF_OK) sl_wf_sample_fini(out);
    return r;
}

sl_wf_reason sl_wf_sample_check(const sl_wf_sample *s, const sl_wf_expect *e, char *why, size_t wl) {
    if (!s || !e || !e->found)
        return say(SL_WF_UNKNOWN_GROUP, why, wl, "no open %s group %llu at step %lld", s && s->eval ? "eval" : "rl",
                   s ? (unsigned long long)s->group : 0ull, s ? (long long)s->step : 0ll);
    if (e->complete) return say(SL_WF_GROUP_DONE, why, wl, "group %llu is complete", (unsigned long long)s->group);
    if (s->index >= e->n)
        return say(SL_WF_BAD_INDEX, why, wl, "index %u outside the group's 0..%u", s->index, e->n - 1);
    if (e->sample_ids && s->sample_id != e->sample_ids[s->index])
        return say(SL_WF_BAD_SAMPLE_ID, why, wl, "sample_id %llu, dispatched %llu for index %u",
                   (unsigned long long)s->sample_id, (unsigned long long)e->sample_ids[s->index], s->index);
    if (e->taken && e->taken[s->index])
        return say(SL_WF_DUPLICATE, why, wl, "index %u of group %llu already accepted", s->index,
                   (unsigned long long)s->group);
    if (s->prompt_len != e->prompt_len ||
        (e->prompt && memcmp(s->tokens, e->prompt, (size_t)e->prompt_len * sizeof *e->prompt) != 0))
        return say(SL_WF_PROMPT_MISMATCH, why, wl, "the first %u tokens are not the %u-token prompt sent",
                   s->prompt_len, e->prompt_len);
    return SL_WF_OK;
}

/* ============================================================ the workflow actor's side */

void sl_wf_prompts_fini(sl_wf_prompts *p) {
    if (!p) return;
    free(p->prompt), free(p->sample_ids), free(p->label), free(p->metadata);
    p->prompt = NULL, p->sample_ids = NULL, p->label = NULL, p->metadata = NULL;
}

int sl_wf_prompts_parse(const sl_msg *m, sl_wf_prompts *out, char *why, size_t wl) {
    if (!out) return SL_EINVAL;
    memset(out, 0, sizeof *out);
    if (why && wl) why[0] = 0;
    json_t *o = NULL;
    if (!m || sl_rl_json_parse(m->payload, m->len, &o, why, wl) != 0) return SL_EINVAL;
    uint64_t step = 0, gid = 0, n = 0, seed = 0, mnt = 0;
    int64_t top_k = -1;
    double temp = 1, top_p = 1;
    const char *phase = "rl", *label = NULL, *meta = NULL;
    json_t *pr = json_object_get(o, "prompt"), *sids = json_object_get(o, "sample_ids");
    if (sl_rl_json_u64_opt(o, "step", 0, &step) || sl_rl_json_u64(o, "group", &gid) || sl_rl_json_u64(o, "n", &n) ||
        n < 1 || n > SL_WF_MAX_GROUP || sl_rl_json_u64_opt(o, "seed", 0, &seed) ||
        sl_rl_json_str_opt(o, "phase", "rl", &phase) || sl_rl_json_dbl_opt(o, "temperature", 1.0, &temp) ||
        sl_rl_json_dbl_opt(o, "top_p", 1.0, &top_p) || sl_rl_json_i64_opt(o, "top_k", -1, &top_k) ||
        sl_rl_json_u64_opt(o, "max_new_tokens", 256, &mnt) || mnt < 1 || mnt > SL_WF_MAX_NEW_TOKENS ||
        !json_is_array(pr) || json_array_size(pr) < 1 || sl_rl_json_str_opt(o, "label", NULL, &label) ||
        sl_rl_json_str_opt(o, "metadata", NULL, &meta)) {
        if (why && wl) snprintf(why, wl, "missing or bad fields");
        json_decref(o);
        return SL_EINVAL;
    }
    snprintf(out->buffer, sizeof out->buffer, "%s", m->sender);
    out->step = (int64_t)step, out->eval = strcmp(phase, "eval") == 0, out->group = gid, out->n = (uint32_t)n;
    out->seed = seed, out->temperature = temp, out->top_p = top_p, out->top_k = top_k < 0 ? 0 : (int)top_k;
    out->max_new_tokens = (uint32_t)mnt;
    out->prompt_len = (uint32_t)json_array_size(pr);
    out->prompt = malloc(out->prompt_len * sizeof *out->prompt);
    out->sample_ids = malloc(out->n * sizeof *out->sample_ids);
    out->label = label ? strdup(label) : NULL;
    out->metadata = meta ? strdup(meta) : NULL;
    if (!out->prompt || !out->sample_ids || (label && !out->label) || (meta && !out->metadata)) {
        json_decref(o);
        sl_wf_prompts_fini(out);
        if (why && wl) snprintf(why, wl, "out of memory");
        return SL_ENOMEM;
    }
    for (uint32_t k = 0; k < out->prompt_len; k++) out->prompt[k] = (int32_t)json_integer_value(json_array_get(pr, k));
    for (uint32_t i = 0; i < out->n; i++) {
        json_t *sid = json_array_get(sids, i);
        out->sample_ids[i] = json_is_integer(sid) ? (uint64_t)json_integer_value(sid) : gid + i;
    }
    json_decref(o);
    return SL_OK;
}

int sl_wf_prompts_same_group(const sl_wf_prompts *a, const sl_wf_prompts *b) {
    return a->group == b->group && a->step == b->step && a->eval == b->eval;
}

int sl_wf_actor_setup(sl_actor_ctx *ctx, const char *who, sl_wf_engines *e, sl_tokenizer **tok) {
    const sl_topology *t = sl_actor_topology(ctx);
    if (!t) {
        sl_actor_log(ctx, SL_LOG_ERROR, "%s needs the topology (SL_TOPOLOGY)", who);
        return SL_EINVAL;
    }
    const sl_actor_spec *ro[SL_RL_MAX_INSTANCES];
    e->n = sl_rl_find_kind(t, "rollout", ro, SL_RL_MAX_INSTANCES);
    if (e->n > SL_RL_MAX_INSTANCES) e->n = SL_RL_MAX_INSTANCES;
    if (e->n < 1) {
        sl_actor_log(ctx, SL_LOG_ERROR, "the topology has no rollout engine to GENERATE with");
        return SL_EINVAL;
    }
    for (int i = 0; i < e->n; i++) snprintf(e->name[i], sizeof e->name[i], "%s", ro[i]->name);
    char mdir[4096], err[512];
    int rc = sl_rl_model_dir(ctx, mdir, sizeof mdir);
    /* the buffer writes a builtin model's files; wait for them a little */
    for (int k = 0; rc == SL_OK && k < 100; k++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/tokenizer.json", mdir);
        if (access(p, R_OK) == 0) break;
        usleep(100 * 1000);
    }
    if (rc) {
        sl_actor_log(ctx, SL_LOG_ERROR, "no model folder ([model] path): %s", sl_strerror(rc));
        return rc;
    }
    if ((rc = sl_tokenizer_load(mdir, tok, err, sizeof err))) {
        sl_actor_log(ctx, SL_LOG_ERROR, "tokenizer of %s: %s", mdir, err);
        return rc;
    }
    return SL_OK;
}

const char *sl_wf_engine_for(const sl_wf_engines *e, uint64_t group, uint32_t index) {
    return e->name[(sl_sample_index(group) + index) % (uint64_t)e->n];
}
