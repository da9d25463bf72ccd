/*
 * engine.c — the generation engine (engine.h): admission of samples into
 * KV slots with prompt sharing by KV copy, batched decode steps, seeded
 * per-sequence sampling. Not an actor.
 */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

struct sl_engine {
    sl_model *m;                         /* borrowed */
    sl_engine_cfg cfg;
    sl_kv_cache *kv;                     /* max_batch x max_seq_len */
    float *logits;                       /* (max_batch, V) host */
    float *first_logits;                 /* (V) logits after the current head request's prompt */
    void *sampler_scratch;
    uint64_t version;
    const volatile sig_atomic_t *abort_flag;
};

/* One active sequence (a slot of the cache). */
typedef struct seq {
    int sample;     /* index into the output's samples, -1 = free slot */
    int32_t last;   /* last sampled token, appended at the next decode */
    int max_new;    /* response length limit of this sequence */
} seq;

/* ================================================================ config */

void sl_engine_cfg_default(sl_engine_cfg *cfg, const sl_model *m)
{
    cfg->max_batch = 64;
    cfg->max_seq_len = 1024;
    if (m) {
        if (cfg->max_seq_len > m->cfg.max_position_embeddings)
            cfg->max_seq_len = m->cfg.max_position_embeddings;
        if (cfg->max_batch > m->max_tokens) cfg->max_batch = m->max_tokens;
    }
}

void sl_gen_params_default(sl_gen_params *p)
{
    memset(p, 0, sizeof(*p));
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->top_k = 0;
    p->max_new_tokens = 256;
    p->n_stop_token_ids = 0;
}

const char *sl_finish_reason_name(sl_finish_reason r)
{
    switch (r) {
    case SL_FINISH_STOP: return "stop";
    case SL_FINISH_LENGTH: return "length";
    case SL_FINISH_ABORT: return "abort";
    }
    return "?";
}

void sl_gen_output_fini(sl_gen_output *out)
{
    if (!out) return;
    free(out->samples);
    free(out->token_mem);
    free(out->logprob_mem);
    memset(out, 0, sizeof(*out));
}

/* ============================================================ lifecycle */

static int fail(char *err, size_t errlen, int rc, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "engine: %s", msg);
    return rc;
}

int sl_engine_new(sl_model *m, const sl_engine_cfg *cfg, sl_engine **out, char *err,
                  size_t errlen)
{
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!m) return fail(err, errlen, SL_EINVAL, "no model");
    sl_engine_cfg c;
    if (cfg)
        c = *cfg;
    else
        sl_engine_cfg_default(&c, m);
    if (c.max_batch < 1 || c.max_batch > m->max_tokens)
        return fail(err, errlen, SL_EINVAL, "max_batch must be in [1, model max_tokens]");
    if (c.max_seq_len < 2 || c.max_seq_len > m->cfg.max_position_embeddings)
        return fail(err, errlen, SL_EINVAL,
                    "max_seq_len must be in [2, max_position_embeddings]");
    sl_engine *e = calloc(1, sizeof(*e));
    if (!e) return fail(err, errlen, SL_ENOMEM, "out of memory");
    e->m = m;
    e->cfg = c;
    size_t V = (size_t)m->cfg.vocab_size;
    if (sl_kv_cache_new(m, c.max_batch, c.max_seq_len, &e->kv) != SL_OK) goto fail;
    e->logits = malloc(sizeof(float) * V * (size_t)c.max_batch);
    e->first_logits = malloc(sizeof(float) * V);
    e->sampler_scratch = malloc(sl_sampler_scratch_bytes((int32_t)V));
    if (!e->logits || !e->first_logits || !e->sampler_scratch) goto fail;
    *out = e;
    return SL_OK;
fail:
    sl_engine_free(e);
    return fail(err, errlen, SL_ENOMEM, "out of memory for the KV cache / logits");
}

void sl_engine_free(sl_engine *e)
{
    if (!e) return;
    sl_kv_cache_free(e->kv);
    free(e->logits);
    free(e->first_logits);
    free(e->sampler_scratch);
    free(e);
}

sl_model *sl_engine_model(const sl_engine *e) { return e ? e->m : NULL; }

int sl_engine_load_weights(sl_engine *e, const float *params, size_t n, uint64_t version)
{
    if (!e || !params || n != e->m->n_params) return SL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(params[i])) {
            sl_error("engine: weights of version %llu hold a non-finite value at %zu",
                     (unsigned long long)version, i);
            return SL_EINVAL;
        }
    e->m->ops->copy_in(e->m->params_mem, params, sizeof(float) * n);
    e->version = version;
    return SL_OK;
}

void sl_engine_set_version(sl_engine *e, uint64_t version)
{
    if (e) e->version = version;
}

uint64_t sl_engine_version(const sl_engine *e) { return e ? e->version : 0; }

void sl_engine_set_abort_flag(sl_engine *e, const volatile sig_atomic_t *flag)
{
    if (e) e->abort_flag = flag;
}

/* ============================================================ generation */

static int check_call(const sl_engine *e, const sl_gen_request *reqs, int n_req,
                      const sl_gen_params *p, size_t *n_samples)
{
    sl_sampler_cfg sc = {.temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p};
    if (sl_sampler_cfg_check(&sc) != SL_OK || p->max_new_tokens < 1 || p->n_stop_token_ids < 0 ||
        p->n_stop_token_ids > SL_ENGINE_MAX_STOP) {
        sl_error("engine: bad sampling parameters (temperature %g, top_p %g, top_k %d, "
                 "max_new_tokens %d, %d stop ids)",
                 p->temperature, p->top_p, p->top_k, p->max_new_tokens, p->n_stop_token_ids);
        return SL_EINVAL;
    }
    int V = e->m->cfg.vocab_size;
    for (int i = 0; i < p->n_stop_token_ids; i++)
        if (p->stop_token_ids[i] < 0 || p->stop_token_ids[i] >= V) {
            sl_error("engine: stop token %d outside the vocabulary", p->stop_token_ids[i]);
            return SL_EINVAL;
        }
    if (n_req < 0 || (n_req > 0 && !reqs)) return SL_EINVAL;
    size_t total = 0;
    int max_prompt = e->cfg.max_seq_len - 1;
    if (max_prompt > e->m->max_tokens) max_prompt = e->m->max_tokens;
    for (int r = 0; r < n_req; r++) {
        const sl_gen_request *q = &reqs[r];
        if (!q->prompt || q->prompt_len < 1 || q->prompt_len > max_prompt || q->n_samples < 1 ||
            q->n_samples > (1 << 20)) {
            sl_error("engine: request %d: bad prompt (%d tokens, at most %d) or n_samples %d", r,
                     q->prompt_len, max_prompt, q->n_samples);
            return SL_EINVAL;
        }
        for (int t = 0; t < q->prompt_len; t++)
            if (q->prompt[t] < 0 || q->prompt[t] >= V) {
                sl_error("engine: request %d: token %d outside the vocabulary", r, q->prompt[t]);
                return SL_EINVAL;
            }
        total += (size_t)q->n_samples;
        if (total > (1u << 24)) return SL_EINVAL;
    }
    *n_samples = total;
    return SL_OK;
}

static int is_stop(const sl_gen_params *p, int32_t tok)
{
    for (int i = 0; i < p->n_stop_token_ids; i++)
        if (p->stop_token_ids[i] == tok) return 1;
    return 0;
}

/* Copy the first n positions of slot src's KV entries to slot dst (every
 * layer), in the (L, n_slots, max_len, kv_dim) layout of model.h. */
static void kv_copy_prefix(sl_kv_cache *kc, int src, int dst, int n)
{
    size_t row = (size_t)kc->max_len * kc->kv_dim;
    size_t bytes = sizeof(float) * (size_t)n * kc->kv_dim;
    for (int l = 0; l < kc->n_layers; l++) {
        size_t base = (size_t)l * kc->n_slots * row;
        kc->ops->copy(kc->k + base + (size_t)dst * row, kc->k + base + (size_t)src * row, bytes);
        kc->ops->copy(kc->v + base + (size_t)dst * row, kc->v + base + (size_t)src * row, bytes);
    }
    kc->len[dst] = n;
}

/* Sample token number `step` of output sample s from logits; append it.
 * Returns 1 when the sequence finished, 0 when it goes on, < 0 on error. */
static int sample_next(sl_engine *e, const sl_gen_request *q, const sl_gen_params *p,
                       sl_gen_output *out, int s, int max_new, const float *logits, int32_t *tok)
{
    sl_gen_sample *g = &out->samples[s];
    sl_sampler_cfg sc = {
        .temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p, .seed = q->seed};
    sl_sample pick;
    int rc = sl_sample_logits(logits, e->m->cfg.vocab_size, &sc, g->sample_id,
                              (uint64_t)g->n_tokens, e->sampler_scratch, &pick);
    if (rc != SL_OK) {
        sl_error("engine: sampling failed (non-finite logits?) for sample %d", s);
        return -rc;
    }
    int32_t *toks = (int32_t *)g->tokens;
    float *lps = (float *)g->logprobs;
    toks[g->n_tokens] = pick.token;
    lps[g->n_tokens] = pick.logprob;
    g->n_tokens++;
    out->gen_tokens++;
    *tok = pick.token;
    if (is_stop(p, pick.token)) {
        g->finish = SL_FINISH_STOP;
        return 1;
    }
    if (g->n_tokens >= max_new) {
        g->finish = SL_FINISH_LENGTH;
        return 1;
    }
    return 0;
}

int sl_engine_generate(sl_engine *e, const sl_gen_request *reqs, int n_req,
                       const sl_gen_params *p, sl_gen_output *out)
{
    if (!out) return SL_EINVAL;
    memset(out, 0, sizeof(*out));
    if (!e || !p) return SL_EINVAL;
    size_t n_samples = 0;
    int rc = check_call(e, reqs, n_req, p, &n_samples);
    if (rc != SL_OK) return rc;
    uint64_t t0 = sl_now_ns();

    /* Output: one arena slice of max_new_tokens per sample. */
    size_t cap = (size_t)p->max_new_tokens;
    out->samples = calloc(n_samples ? n_samples : 1, sizeof(sl_gen_sample));
    out->token_mem = malloc(sizeof(int32_t) * (n_samples ? n_samples : 1) * cap);
    out->logprob_mem = malloc(sizeof(float) * (n_samples ? n_samples : 1) * cap);
    int nb = e->cfg.max_batch;
    seq *slot = malloc(sizeof(seq) * (size_t)nb);
    int32_t *act_slots = malloc(sizeof(int32_t) * (size_t)nb);
    int32_t *act_toks = malloc(sizeof(int32_t) * (size_t)nb);
    if (!out->samples || !out->token_mem || !out->logprob_mem || !slot || !act_slots ||
        !act_toks) {
        rc = SL_ENOMEM;
        goto done;
    }
    out->n_samples = (int)n_samples;
    {
        size_t s = 0;
        for (int r = 0; r < n_req; r++)
            for (int j = 0; j < reqs[r].n_samples; j++, s++) {
                sl_gen_sample *g = &out->samples[s];
                g->request = r;
                g->index = j;
                g->sample_id = reqs[r].sample_ids ? reqs[r].sample_ids[j] : (uint64_t)j;
                g->tokens = out->token_mem + s * cap;
                g->logprobs = out->logprob_mem + s * cap;
                g->finish = SL_FINISH_ABORT;
                g->weight_version = e->version;
            }
    }
    for (int i = 0; i < nb; i++) slot[i].sample = -1;
    sl_kv_cache_reset(e->kv, -1);

    size_t V = (size_t)e->m->cfg.vocab_size;
    size_t next = 0;      /* next sample to admit (samples are admitted in order) */
    int head_req = -1;    /* request whose prompt logits are in first_logits */
    int n_active = 0;
    int aborted = 0;
    while (next < n_samples || n_active > 0) {
        if (e->abort_flag && *e->abort_flag) {
            aborted = 1;
            break;
        }
        /* Admit waiting samples into free slots. */
        for (int sl = 0; sl < nb && next < n_samples; sl++) {
            if (slot[sl].sample >= 0) continue;
            int s = (int)next;
            int r = out->samples[s].request;
            const sl_gen_request *q = &reqs[r];
            /* A live sibling holds this prompt's KV: copy it. */
            int src = -1;
            if (head_req == r)
                for (int k = 0; k < nb; k++)
                    if (slot[k].sample >= 0 && out->samples[slot[k].sample].request == r) {
                        src = k;
                        break;
                    }
            sl_kv_cache_reset(e->kv, sl);
            if (src >= 0) {
                kv_copy_prefix(e->kv, src, sl, q->prompt_len);
                out->kv_copies++;
            } else {
                rc = sl_model_prefill(e->m, e->kv, sl, q->prompt, q->prompt_len, e->first_logits);
                if (rc != SL_OK) goto done;
                out->prefill_tokens += q->prompt_len;
                head_req = r;
            }
            next++;
            /* The cache holds at most max_seq_len tokens; the last sampled
             * token is never appended, so a response may reach
             * max_seq_len - prompt_len + 1 tokens. */
            int max_new = p->max_new_tokens;
            if (max_new > e->cfg.max_seq_len - q->prompt_len + 1)
                max_new = e->cfg.max_seq_len - q->prompt_len + 1;
            int32_t tok;
            int fin = sample_next(e, q, p, out, s, max_new, e->first_logits, &tok);
            if (fin < 0) {
                rc = -fin;
                goto done;
            }
            if (fin) {
                /* Finished on its first token: the slot stays free (its KV
                 * is dead, so it is not a copy source). */
                continue;
            }
            slot[sl].sample = s;
            slot[sl].last = tok;
            slot[sl].max_new = max_new;
            n_active++;
        }
        if (n_active == 0) continue;

        /* One decode step over every active sequence. */
        int n = 0;
        for (int sl = 0; sl < nb; sl++)
            if (slot[sl].sample >= 0) {
                act_slots[n] = sl;
                act_toks[n] = slot[sl].last;
                n++;
            }
        rc = sl_model_decode(e->m, e->kv, act_slots, act_toks, n, e->logits);
        if (rc != SL_OK) goto done;
        out->decode_steps++;
        for (int i = 0; i < n; i++) {
            int sl = act_slots[i];
            int s = slot[sl].sample;
            int32_t tok;
            int fin = sample_next(e, &reqs[out->samples[s].request], p, out, s, slot[sl].max_new,
                                  e->logits + (size_t)i * V, &tok);
            if (fin < 0) {
                rc = -fin;
                goto done;
            }
            if (fin) {
                slot[sl].sample = -1;
                n_active--;
            } else {
                slot[sl].last = tok;
            }
        }
    }
    if (aborted)
        sl_warn("engine: generation aborted (%zu of %zu samples admitted)", next, n_samples);
    rc = SL_OK;
done:
    free(slot);
    free(act_slots);
    free(act_toks);
    if (rc != SL_OK)
        sl_gen_output_fini(out);
    else
        out->seconds = (double)(sl_now_ns() - t0) * 1e-9;
    return rc;
}
