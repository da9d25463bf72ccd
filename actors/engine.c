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

#include "gpu_engine.h"
#include "sampler.h"

/* A sequence of the scheduler, and a session entry. */
typedef struct sseq {
    uint64_t handle;
    int32_t *prompt;
    int prompt_len;
    sl_gen_params p;
    uint64_t seed, seq_id, share_key;
    char session[SL_ENGINE_SESSION_MAX + 1]; /* "" = none */
    sl_engine_stop_fn stop_fn;
    void *user;
    int32_t *tokens;
    float *logprobs;
    int n_tokens, max_new, cached;
    int slot;           /* KV slot while active, -1 otherwise */
    int32_t last;       /* last sampled token (appended at the next decode) */
    sl_finish_reason finish;
    uint64_t version;
    struct sseq *next;
} sseq;

typedef struct sess {
    char key[SL_ENGINE_SESSION_MAX + 1]; /* "" = free entry */
    int32_t *toks;                       /* (n) tokens whose KV is in skv slot (entry index) */
    int n;
    uint64_t version;
    uint64_t used;                       /* LRU clock */
} sess;


struct sl_engine {
    sl_model *m;                         /* borrowed */
    sl_engine_cfg cfg;
    sl_kv_cache *kv;                     /* max_batch x max_seq_len */
    float *logits;                       /* (max_batch, V) host */
    float *first_logits;                 /* (V) logits after the current head request's prompt */
    void *sampler_scratch;
    uint64_t version;
    const volatile sig_atomic_t *abort_flag;
    /* scheduler (sl_engine_submit / step / take_done) */
    struct sseq **slots;                 /* (max_batch) active sequence per KV slot, or NULL */
    struct sseq *wait_head, *wait_tail;  /* waiting, FIFO */
    struct sseq *done_head, *done_tail;  /* finished, FIFO */
    uint64_t next_handle;
    uint64_t first_key;                  /* share key whose prompt logits are in first_logits (0: none) */
    int32_t *act_slots, *act_toks;       /* (max_batch) decode scratch */
    sl_engine_sched_stats st;
    /* sessions */
    sl_kv_cache *skv;                    /* (max_sessions) x max_seq_len, or NULL */
    struct sess *sess;                   /* (max_sessions) */
    uint64_t sess_clock;
    /* GPU engine (sl_engine_new_gpu): the model runs in gpu, kv/logits unused */
    sl_geng *gpu;
    int gpu_prefill_cap;                 /* prompt tokens per prefill pass */
    int *g_slots, *g_heads, *g_out_seq, *g_out_slot;
    int32_t *g_tok, *g_out_tok, *g_ptok, *g_cu;
    float *g_out_lp;
    sl_geng_samp *g_samp;
};

/* One active sequence (a slot of the cache). */
typedef struct seq {
    int sample;     /* index into the output's samples, -1 = free slot */
    int32_t last;   /* last sampled token, appended at the next decode */
    int max_new;    /* response length limit of this sequence */
} seq;

static int gpu_generate(sl_engine *e, const sl_gen_request *reqs, int n_req,
                        const sl_gen_params *p, size_t n_samples, sl_gen_output *out);
static int gpu_step(sl_engine *e, bool admit_new, int max_prefill_tokens);

/* ================================================================ config */

void sl_engine_cfg_default(sl_engine_cfg *cfg, const sl_model *m)
{
    cfg->max_batch = 64;
    cfg->max_seq_len = 1024;
    cfg->max_sessions = 0;
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
    if (c.max_sessions < 0 || c.max_sessions > 4096)
        return fail(err, errlen, SL_EINVAL, "max_sessions must be in [0, 4096]");
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
    e->slots = calloc((size_t)c.max_batch, sizeof(*e->slots));
    e->act_slots = malloc(sizeof(int32_t) * (size_t)c.max_batch);
    e->act_toks = malloc(sizeof(int32_t) * (size_t)c.max_batch);
    if (!e->slots || !e->act_slots || !e->act_toks) goto fail;
    if (c.max_sessions > 0) {
        if (sl_kv_cache_new(m, c.max_sessions, c.max_seq_len, &e->skv) != SL_OK) goto fail;
        e->sess = calloc((size_t)c.max_sessions, sizeof(*e->sess));
        if (!e->sess) goto fail;
    }
    e->next_handle = 1;
    *out = e;
    return SL_OK;
fail:
    sl_engine_free(e);
    return fail(err, errlen, SL_ENOMEM, "out of memory for the KV cache / logits");
}

static void sched_free(sl_engine *e);

int sl_engine_new_gpu(sl_model *m, const sl_engine_cfg *cfg, int max_prefill_tokens, int graphs,
                      sl_engine **out, char *err, size_t errlen)
{
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!m) return fail(err, errlen, SL_EINVAL, "no model");
    sl_engine_cfg c;
    if (cfg)
        c = *cfg;
    else {
        sl_engine_cfg_default(&c, NULL);
        if (c.max_seq_len > m->cfg.max_position_embeddings)
            c.max_seq_len = m->cfg.max_position_embeddings;
    }
    c.max_sessions = 0;
    if (c.max_batch < 1 || c.max_batch > 4096)
        return fail(err, errlen, SL_EINVAL, "max_batch must be in [1, 4096]");
    if (c.max_seq_len < 2 || c.max_seq_len > m->cfg.max_position_embeddings)
        return fail(err, errlen, SL_EINVAL,
                    "max_seq_len must be in [2, max_position_embeddings]");
    if (max_prefill_tokens <= 0) max_prefill_tokens = 16384;
    if (max_prefill_tokens < c.max_seq_len) max_prefill_tokens = c.max_seq_len;
    if (max_prefill_tokens > 65536) max_prefill_tokens = 65536;
    sl_geng *g = NULL;
    int rc = sl_geng_new(m, c.max_batch, c.max_seq_len, max_prefill_tokens, graphs, &g, err, errlen);
    if (rc != SL_OK) return rc;
    rc = sl_geng_load_host(g, m->params_mem, m->n_params);
    if (rc != SL_OK) {
        sl_geng_free(g);
        return fail(err, errlen, rc, "cannot upload the weights");
    }
    sl_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        sl_geng_free(g);
        return fail(err, errlen, SL_ENOMEM, "out of memory");
    }
    e->m = m;
    e->cfg = c;
    e->gpu = g;
    e->gpu_prefill_cap = max_prefill_tokens;
    size_t nb = (size_t)c.max_batch;
    e->slots = calloc(nb, sizeof(*e->slots));
    e->act_slots = malloc(sizeof(int32_t) * nb);
    e->act_toks = malloc(sizeof(int32_t) * nb);
    e->g_slots = malloc(sizeof(int) * nb);
    e->g_heads = malloc(sizeof(int) * nb);
    e->g_out_seq = malloc(sizeof(int) * nb);
    e->g_out_slot = malloc(sizeof(int) * nb);
    e->g_tok = malloc(sizeof(int32_t) * nb);
    e->g_out_tok = malloc(sizeof(int32_t) * nb);
    e->g_out_lp = malloc(sizeof(float) * nb);
    e->g_cu = malloc(sizeof(int32_t) * (nb + 1));
    e->g_ptok = malloc(sizeof(int32_t) * (size_t)max_prefill_tokens);
    e->g_samp = malloc(sizeof(sl_geng_samp) * nb);
    if (!e->slots || !e->act_slots || !e->act_toks || !e->g_slots || !e->g_heads ||
        !e->g_out_seq || !e->g_out_slot || !e->g_tok || !e->g_out_tok || !e->g_out_lp ||
        !e->g_cu || !e->g_ptok || !e->g_samp) {
        sl_engine_free(e);
        return fail(err, errlen, SL_ENOMEM, "out of memory");
    }
    e->next_handle = 1;
    *out = e;
    return SL_OK;
}

int sl_engine_is_gpu(const sl_engine *e) { return e && e->gpu; }
const struct sl_geng *sl_engine_gpu(const sl_engine *e) { return e ? e->gpu : NULL; }

int sl_engine_set_weights_device(sl_engine *e, const void *dptr, size_t bytes, uint64_t version,
                                 int copy)
{
    if (!e) return SL_EINVAL;
    if (!e->gpu) return SL_EUNSUPPORTED;
    int rc = sl_geng_set_weights_device(e->gpu, dptr, bytes, copy);
    if (rc != SL_OK) {
        size_t want = 0;
        sl_geng_weights(e->gpu, &want);
        sl_error("engine: device weights of version %llu: %zu bytes at %p (want %zu bytes)",
                 (unsigned long long)version, bytes, dptr, want);
        return rc;
    }
    e->version = version;
    return SL_OK;
}

void sl_engine_free(sl_engine *e)
{
    if (!e) return;
    sched_free(e);
    sl_geng_free(e->gpu);
    free(e->g_slots), free(e->g_heads), free(e->g_out_seq), free(e->g_out_slot);
    free(e->g_tok), free(e->g_out_tok), free(e->g_out_lp), free(e->g_cu), free(e->g_ptok);
    free(e->g_samp);
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
    if (e->gpu) {
        int rc = sl_geng_load_host(e->gpu, params, n);
        if (rc != SL_OK) return rc;
    } else {
        e->m->ops->copy_in(e->m->params_mem, params, sizeof(float) * n);
    }
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
    if (!e->gpu && max_prompt > e->m->max_tokens) max_prompt = e->m->max_tokens;
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

/* The output of a generate call: one arena slice of max_new_tokens (cap)
 * per sample, every sample ABORT until it finishes. On error out is
 * emptied. */
static int output_new(const sl_engine *e, const sl_gen_request *reqs, int n_req, size_t n_samples,
                      size_t cap, sl_gen_output *out)
{
    size_t ns = n_samples ? n_samples : 1;
    out->samples = calloc(ns, sizeof(sl_gen_sample));
    out->token_mem = malloc(sizeof(int32_t) * ns * cap);
    out->logprob_mem = malloc(sizeof(float) * ns * cap);
    if (!out->samples || !out->token_mem || !out->logprob_mem) {
        sl_gen_output_fini(out);
        return SL_ENOMEM;
    }
    out->n_samples = (int)n_samples;
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
    return SL_OK;
}

int sl_engine_generate(sl_engine *e, const sl_gen_request *reqs, int n_req,
                       const sl_gen_params *p, sl_gen_output *out)
{
    if (!out) return SL_EINVAL;
    memset(out, 0, sizeof(*out));
    if (!e || !p) return SL_EINVAL;
    if (e->wait_head || e->st.n_active > 0) {
        sl_error("engine: generate called while the scheduler holds sequences");
        return SL_EINVAL;
    }
    e->first_key = 0;
    size_t n_samples = 0;
    int rc = check_call(e, reqs, n_req, p, &n_samples);
    if (rc != SL_OK) return rc;
    uint64_t t0 = sl_now_ns();
    size_t cap = (size_t)p->max_new_tokens;
    if ((rc = output_new(e, reqs, n_req, n_samples, cap, out)) != SL_OK) return rc;
    if (e->gpu) return gpu_generate(e, reqs, n_req, p, n_samples, out);

    int nb = e->cfg.max_batch;
    seq *slot = malloc(sizeof(seq) * (size_t)nb);
    int32_t *act_slots = malloc(sizeof(int32_t) * (size_t)nb);
    int32_t *act_toks = malloc(sizeof(int32_t) * (size_t)nb);
    if (!slot || !act_slots || !act_toks) {
        rc = SL_ENOMEM;
        goto done;
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

/* ============================================================ scheduler */

static void sseq_free(sseq *q)
{
    if (!q) return;
    free(q->prompt);
    free(q->tokens);
    free(q->logprobs);
    free(q);
}

static void sched_free(sl_engine *e)
{
    for (sseq *q = e->wait_head, *n; q; q = n) {
        n = q->next;
        sseq_free(q);
    }
    for (sseq *q = e->done_head, *n; q; q = n) {
        n = q->next;
        sseq_free(q);
    }
    if (e->slots)
        for (int i = 0; i < e->cfg.max_batch; i++) sseq_free(e->slots[i]);
    free(e->slots);
    free(e->act_slots);
    free(e->act_toks);
    if (e->sess)
        for (int i = 0; i < e->cfg.max_sessions; i++) free(e->sess[i].toks);
    free(e->sess);
    sl_kv_cache_free(e->skv);
}

void sl_engine_done_fini(sl_engine_done *d)
{
    if (!d) return;
    free(d->tokens);
    free(d->logprobs);
    memset(d, 0, sizeof(*d));
}

void sl_engine_sched_stats_get(const sl_engine *e, sl_engine_sched_stats *st)
{
    if (!e || !st) return;
    *st = e->st;
}

void sl_engine_sessions_clear(sl_engine *e)
{
    if (!e || !e->sess) return;
    for (int i = 0; i < e->cfg.max_sessions; i++) {
        free(e->sess[i].toks);
        memset(&e->sess[i], 0, sizeof(e->sess[i]));
    }
}

/* Copy positions [0, n) of slot src of cache a to slot dst of cache b
 * (the same model: same layers and kv_dim; n_slots may differ). */
static void kv_copy_x(sl_kv_cache *b, int dst, const sl_kv_cache *a, int src, int n)
{
    size_t arow = (size_t)a->max_len * a->kv_dim, brow = (size_t)b->max_len * b->kv_dim;
    size_t bytes = sizeof(float) * (size_t)n * a->kv_dim;
    for (int l = 0; l < a->n_layers; l++) {
        size_t ab = (size_t)l * a->n_slots * arow + (size_t)src * arow;
        size_t bb = (size_t)l * b->n_slots * brow + (size_t)dst * brow;
        b->ops->copy(b->k + bb, a->k + ab, bytes);
        b->ops->copy(b->v + bb, a->v + ab, bytes);
    }
    b->len[dst] = n;
}

static int check_params(const sl_engine *e, const sl_gen_params *p)
{
    sl_sampler_cfg sc = {.temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p};
    if (sl_sampler_cfg_check(&sc) != SL_OK || p->max_new_tokens < 1 || p->n_stop_token_ids < 0 ||
        p->n_stop_token_ids > SL_ENGINE_MAX_STOP)
        return SL_EINVAL;
    for (int i = 0; i < p->n_stop_token_ids; i++)
        if (p->stop_token_ids[i] < 0 || p->stop_token_ids[i] >= e->m->cfg.vocab_size)
            return SL_EINVAL;
    return SL_OK;
}

int sl_engine_submit(sl_engine *e, const sl_engine_seq_req *r, uint64_t *handle)
{
    if (handle) *handle = 0;
    if (!e || !r) return SL_EINVAL;
    int max_prompt = e->cfg.max_seq_len - 1;
    if (!e->gpu && max_prompt > e->m->max_tokens) max_prompt = e->m->max_tokens;
    if (check_params(e, &r->params) != SL_OK) {
        sl_error("engine: submit: bad sampling parameters");
        return SL_EINVAL;
    }
    if (!r->prompt || r->prompt_len < 1 || r->prompt_len > max_prompt) {
        sl_error("engine: submit: prompt of %d tokens (1 .. %d)", r->prompt_len, max_prompt);
        return SL_EINVAL;
    }
    for (int t = 0; t < r->prompt_len; t++)
        if (r->prompt[t] < 0 || r->prompt[t] >= e->m->cfg.vocab_size) {
            sl_error("engine: submit: token %d outside the vocabulary", r->prompt[t]);
            return SL_EINVAL;
        }
    if (r->session && (!*r->session || strlen(r->session) > SL_ENGINE_SESSION_MAX)) {
        sl_error("engine: submit: session key of 1..%d characters", SL_ENGINE_SESSION_MAX);
        return SL_EINVAL;
    }
    sseq *q = calloc(1, sizeof(*q));
    if (!q) return SL_ENOMEM;
    int max_new = r->params.max_new_tokens;
    if (max_new > e->cfg.max_seq_len - r->prompt_len + 1)
        max_new = e->cfg.max_seq_len - r->prompt_len + 1;
    q->prompt = malloc(sizeof(int32_t) * (size_t)r->prompt_len);
    q->tokens = malloc(sizeof(int32_t) * (size_t)max_new);
    q->logprobs = malloc(sizeof(float) * (size_t)max_new);
    if (!q->prompt || !q->tokens || !q->logprobs) {
        sseq_free(q);
        return SL_ENOMEM;
    }
    memcpy(q->prompt, r->prompt, sizeof(int32_t) * (size_t)r->prompt_len);
    q->prompt_len = r->prompt_len;
    q->p = r->params;
    q->max_new = max_new;
    q->seed = r->seed;
    q->seq_id = r->seq_id;
    q->share_key = r->share_key;
    if (r->session) snprintf(q->session, sizeof(q->session), "%s", r->session);
    q->stop_fn = r->stop_fn;
    q->user = r->user;
    q->slot = -1;
    q->finish = SL_FINISH_ABORT;
    q->handle = e->next_handle++;
    if (e->wait_tail)
        e->wait_tail->next = q;
    else
        e->wait_head = q;
    e->wait_tail = q;
    e->st.submitted++;
    e->st.n_waiting++;
    if (handle) *handle = q->handle;
    return SL_OK;
}

static void push_done(sl_engine *e, sseq *q)
{
    q->next = NULL;
    if (e->done_tail)
        e->done_tail->next = q;
    else
        e->done_head = q;
    e->done_tail = q;
    e->st.n_done++;
    e->st.finished++;
    if (q->finish == SL_FINISH_ABORT) e->st.aborted++;
}

static sess *sess_find(sl_engine *e, const char *key)
{
    if (!e->sess || !*key) return NULL;
    for (int i = 0; i < e->cfg.max_sessions; i++)
        if (e->sess[i].key[0] && strcmp(e->sess[i].key, key) == 0) return &e->sess[i];
    return NULL;
}

/* Save the KV of an active sequence that finished (STOP or LENGTH) into
 * its session entry. Best effort: a failure only loses the cache. */
static void sess_save(sl_engine *e, sseq *q)
{
    if (!e->sess || !q->session[0] || q->slot < 0 || q->n_tokens < 1) return;
    int sl = q->slot;
    /* the last sampled token is not in the KV yet: append it when room */
    if (e->kv->len[sl] < e->cfg.max_seq_len &&
        sl_model_prefill(e->m, e->kv, sl, &q->tokens[q->n_tokens - 1], 1, NULL) != SL_OK)
        return;
    int n = e->kv->len[sl];
    if (n > q->prompt_len + q->n_tokens) return; /* cannot happen */
    sess *s = sess_find(e, q->session);
    if (!s) {
        s = &e->sess[0];
        for (int i = 0; i < e->cfg.max_sessions; i++) {
            if (!e->sess[i].key[0]) {
                s = &e->sess[i];
                break;
            }
            if (e->sess[i].used < s->used) s = &e->sess[i];
        }
    }
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)n);
    if (!toks) return;
    int np = n < q->prompt_len ? n : q->prompt_len;
    memcpy(toks, q->prompt, sizeof(int32_t) * (size_t)np);
    if (n > np) memcpy(toks + np, q->tokens, sizeof(int32_t) * (size_t)(n - np));
    free(s->toks);
    snprintf(s->key, sizeof(s->key), "%s", q->session);
    s->toks = toks;
    s->n = n;
    s->version = q->version;
    s->used = ++e->sess_clock;
    kv_copy_x(e->skv, (int)(s - e->sess), e->kv, sl, n);
    e->st.session_saves++;
}

/* Finish active sequence q (its slot is freed). */
static void finish_active(sl_engine *e, sseq *q, sl_finish_reason why)
{
    q->finish = why;
    if (why != SL_FINISH_ABORT) sess_save(e, q);
    if (e->gpu) sl_geng_slot_reset(e->gpu, q->slot);
    e->slots[q->slot] = NULL;
    q->slot = -1;
    e->st.n_active--;
    push_done(e, q);
}

int sl_engine_cancel(sl_engine *e, uint64_t handle)
{
    if (!e || !handle) return SL_EINVAL;
    for (sseq **pp = &e->wait_head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next)
        if ((*pp)->handle == handle) {
            sseq *q = *pp;
            *pp = q->next;
            if (e->wait_tail == q) e->wait_tail = prev;
            e->st.n_waiting--;
            q->finish = SL_FINISH_ABORT;
            q->version = e->version;
            push_done(e, q);
            return SL_OK;
        }
    for (int i = 0; i < e->cfg.max_batch; i++)
        if (e->slots[i] && e->slots[i]->handle == handle) {
            finish_active(e, e->slots[i], SL_FINISH_ABORT);
            return SL_OK;
        }
    return SL_ENOENT;
}

int sl_engine_take_done(sl_engine *e, sl_engine_done *out)
{
    if (!e || !out) return 0;
    sseq *q = e->done_head;
    if (!q) return 0;
    e->done_head = q->next;
    if (!e->done_head) e->done_tail = NULL;
    e->st.n_done--;
    *out = (sl_engine_done){.handle = q->handle, .user = q->user, .tokens = q->tokens,
                            .logprobs = q->logprobs, .n_tokens = q->n_tokens,
                            .finish = q->finish, .weight_version = q->version,
                            .prompt_len = q->prompt_len, .cached_tokens = q->cached};
    q->tokens = NULL;
    q->logprobs = NULL;
    sseq_free(q);
    return 1;
}

static int sched_append(sl_engine *e, sseq *q, int32_t tok, float lp);

/* Sample the next token of q from logits and append it. 1: finished (with
 * q->finish set), 0: goes on, < 0: -error. */
static int sched_sample(sl_engine *e, sseq *q, const float *logits)
{
    sl_sampler_cfg sc = {.temperature = q->p.temperature, .top_k = q->p.top_k,
                         .top_p = q->p.top_p, .seed = q->seed};
    sl_sample pick;
    int rc = sl_sample_logits(logits, e->m->cfg.vocab_size, &sc, q->seq_id, (uint64_t)q->n_tokens,
                              e->sampler_scratch, &pick);
    if (rc != SL_OK) return -rc;
    return sched_append(e, q, pick.token, pick.logprob);
}

/* Append token tok (log-prob lp) to q. 1: finished (q->finish set), 0: goes on. */
static int sched_append(sl_engine *e, sseq *q, int32_t tok, float lp)
{
    q->tokens[q->n_tokens] = tok;
    q->logprobs[q->n_tokens] = lp;
    q->n_tokens++;
    q->last = tok;
    e->st.gen_tokens++;
    if (is_stop(&q->p, tok) || (q->stop_fn && q->stop_fn(q->user, q->tokens, q->n_tokens))) {
        q->finish = SL_FINISH_STOP;
        return 1;
    }
    if (q->n_tokens >= q->max_new) {
        q->finish = SL_FINISH_LENGTH;
        return 1;
    }
    return 0;
}

/* Move the head waiting sequence into free slot sl (made with the current
 * weights); returns it. */
static sseq *seat_waiting(sl_engine *e, int sl)
{
    sseq *q = e->wait_head;
    e->wait_head = q->next;
    if (!e->wait_head) e->wait_tail = NULL;
    q->next = NULL;
    e->st.n_waiting--;
    q->slot = sl;
    q->version = e->version;
    e->slots[sl] = q;
    e->st.n_active++;
    return q;
}

/* Admit the head waiting sequence into free slot sl: restore / share /
 * prefill its prompt, sample its first token. Returns prompt tokens
 * prefilled (>= 0) or -error. */
static int admit(sl_engine *e, int sl)
{
    sseq *q = seat_waiting(e, sl);
    sl_kv_cache_reset(e->kv, sl);

    int from = 0, prefilled = 0;
    bool shared = false;
    sess *s = sess_find(e, q->session);
    if (s && s->version == e->version) {
        int lcp = 0, cap = q->prompt_len - 1 < s->n ? q->prompt_len - 1 : s->n;
        while (lcp < cap && s->toks[lcp] == q->prompt[lcp]) lcp++;
        if (lcp > 0) {
            kv_copy_x(e->kv, sl, e->skv, (int)(s - e->sess), lcp);
            from = lcp;
            q->cached = lcp;
            e->st.session_hits++;
            e->st.cached_tokens += lcp;
        }
        s->used = ++e->sess_clock;
    }
    if (from == 0 && q->share_key && e->first_key == q->share_key) {
        for (int k = 0; k < e->cfg.max_batch; k++) {
            sseq *o = e->slots[k];
            if (!o || o == q || o->share_key != q->share_key || o->prompt_len != q->prompt_len ||
                e->kv->len[k] < q->prompt_len ||
                memcmp(o->prompt, q->prompt, sizeof(int32_t) * (size_t)q->prompt_len) != 0)
                continue;
            kv_copy_prefix(e->kv, k, sl, q->prompt_len);
            e->st.kv_copies++;
            shared = true;
            break;
        }
    }
    if (!shared) {
        int rc = sl_model_prefill(e->m, e->kv, sl, q->prompt + from, q->prompt_len - from,
                                  e->first_logits);
        if (rc != SL_OK) return -rc;
        prefilled = q->prompt_len - from;
        e->st.prefill_tokens += prefilled;
        e->first_key = from == 0 ? q->share_key : 0;
    }
    int fin = sched_sample(e, q, e->first_logits);
    if (fin < 0) return fin;
    if (fin) finish_active(e, q, q->finish);
    return prefilled;
}

static void abort_all_active(sl_engine *e)
{
    for (int i = 0; i < e->cfg.max_batch; i++)
        if (e->slots[i]) finish_active(e, e->slots[i], SL_FINISH_ABORT);
}

int sl_engine_step(sl_engine *e, bool admit_new, int max_prefill_tokens)
{
    if (!e) return SL_EINVAL;
    if (e->gpu) return gpu_step(e, admit_new, max_prefill_tokens);
    int nb = e->cfg.max_batch;
    if (admit_new) {
        int budget = 0, admitted = 0;
        for (int sl = 0; sl < nb && e->wait_head; sl++) {
            if (e->slots[sl]) continue;
            if (admitted && max_prefill_tokens > 0 && budget >= max_prefill_tokens) break;
            int r = admit(e, sl);
            if (r < 0) {
                sl_error("engine: admission failed: %s", sl_strerror(-r));
                abort_all_active(e);
                return -r;
            }
            budget += r;
            admitted++;
        }
    }
    int n = 0;
    for (int sl = 0; sl < nb; sl++)
        if (e->slots[sl]) {
            e->act_slots[n] = sl;
            e->act_toks[n] = e->slots[sl]->last;
            n++;
        }
    if (n == 0) return SL_OK;
    int rc = sl_model_decode(e->m, e->kv, e->act_slots, e->act_toks, n, e->logits);
    if (rc != SL_OK) {
        sl_error("engine: decode failed: %s", sl_strerror(rc));
        abort_all_active(e);
        return rc;
    }
    e->st.decode_steps++;
    size_t V = (size_t)e->m->cfg.vocab_size;
    for (int i = 0; i < n; i++) {
        sseq *q = e->slots[e->act_slots[i]];
        int fin = sched_sample(e, q, e->logits + (size_t)i * V);
        if (fin < 0) {
            sl_error("engine: sampling failed (non-finite logits?)");
            abort_all_active(e);
            return -fin;
        }
        if (fin) finish_active(e, q, q->finish);
    }
    return SL_OK;
}

/* ============================================================ GPU engine */

static void gpu_samp(sl_geng_samp *s, const sseq *q)
{
    *s = (sl_geng_samp){.temperature = q->p.temperature, .top_p = q->p.top_p,
                        .top_k = q->p.top_k, .seed = q->seed, .seq_id = q->seq_id,
                        .step = (uint64_t)q->n_tokens};
}

/* Admission: waiting sequences take free slots; one packed prefill of the
 * distinct prompts of this step (a sequence whose share key and prompt
 * match one admitted in the same step shares its KV and its logits), then
 * one decode step over every active sequence (kernels/gpu_engine.h). */
static int gpu_step(sl_engine *e, bool admit_new, int max_prefill_tokens)
{
    int nb = e->cfg.max_batch, rc;
    if (admit_new && e->wait_head) {
        int n_heads = 0, n_out = 0, ntok = 0;
        e->g_cu[0] = 0;
        for (int sl = 0; sl < nb && e->wait_head; sl++) {
            if (e->slots[sl]) continue;
            sseq *q = e->wait_head;
            int head = -1;
            if (q->share_key)
                for (int h = 0; h < n_heads && head < 0; h++) {
                    const sseq *o = e->slots[e->g_heads[h]];
                    if (o->share_key == q->share_key && o->prompt_len == q->prompt_len &&
                        memcmp(o->prompt, q->prompt, sizeof(int32_t) * (size_t)q->prompt_len) == 0)
                        head = h;
                }
            if (head < 0) {
                if (n_heads > 0 && (ntok + q->prompt_len > e->gpu_prefill_cap ||
                                    (max_prefill_tokens > 0 && ntok >= max_prefill_tokens)))
                    break;
                head = n_heads;
                e->g_heads[n_heads] = sl;
                memcpy(e->g_ptok + ntok, q->prompt, sizeof(int32_t) * (size_t)q->prompt_len);
                ntok += q->prompt_len;
                e->g_cu[++n_heads] = ntok;
            }
            seat_waiting(e, sl);
            e->g_out_seq[n_out] = head;
            e->g_out_slot[n_out] = sl;
            gpu_samp(&e->g_samp[n_out], q);
            n_out++;
        }
        if (n_heads > 0) {
            rc = sl_geng_prefill(e->gpu, n_heads, e->g_heads, e->g_ptok, e->g_cu, n_out,
                                 e->g_out_seq, e->g_samp, e->g_out_tok, e->g_out_lp);
            for (int i = 0; rc == SL_OK && i < n_out; i++) {
                int sl = e->g_out_slot[i], hs = e->g_heads[e->g_out_seq[i]];
                if (sl == hs) continue;
                rc = sl_geng_slot_share(e->gpu, sl, hs, e->slots[sl]->prompt_len);
                e->st.kv_copies++;
            }
            if (rc != SL_OK) {
                sl_error("engine: GPU prefill failed: %s", sl_strerror(rc));
                abort_all_active(e);
                return rc;
            }
            e->st.prefill_tokens += ntok;
            for (int i = 0; i < n_out; i++) {
                sseq *q = e->slots[e->g_out_slot[i]];
                if (sched_append(e, q, e->g_out_tok[i], e->g_out_lp[i]))
                    finish_active(e, q, q->finish);
            }
        }
    }
    int n = 0;
    for (int sl = 0; sl < nb; sl++)
        if (e->slots[sl]) {
            e->g_slots[n] = sl;
            e->g_tok[n] = e->slots[sl]->last;
            gpu_samp(&e->g_samp[n], e->slots[sl]);
            n++;
        }
    if (n == 0) return SL_OK;
    rc = sl_geng_decode(e->gpu, n, e->g_slots, e->g_tok, e->g_samp, e->g_out_tok, e->g_out_lp);
    if (rc != SL_OK) {
        sl_error("engine: GPU decode failed: %s", sl_strerror(rc));
        abort_all_active(e);
        return rc;
    }
    e->st.decode_steps++;
    for (int i = 0; i < n; i++) {
        sseq *q = e->slots[e->g_slots[i]];
        if (sched_append(e, q, e->g_out_tok[i], e->g_out_lp[i])) finish_active(e, q, q->finish);
    }
    return SL_OK;
}

/* End every waiting and active sequence with ABORT. */
static void gpu_abort_all(sl_engine *e)
{
    abort_all_active(e);
    while (e->wait_head) sl_engine_cancel(e, e->wait_head->handle);
}

/* sl_engine_generate on the GPU (out made by output_new): the requests
 * go through the scheduler, sample s of the output is the sequence with
 * user = s. */
static int gpu_generate(sl_engine *e, const sl_gen_request *reqs, int n_req,
                        const sl_gen_params *p, size_t n_samples, sl_gen_output *out)
{
    uint64_t t0 = sl_now_ns();
    sl_engine_sched_stats st0 = e->st;
    size_t cap = (size_t)p->max_new_tokens;
    int rc = SL_OK;
    for (size_t s = 0; s < n_samples && rc == SL_OK; s++) {
        const sl_gen_sample *g = &out->samples[s];
        const sl_gen_request *rq = &reqs[g->request];
        sl_engine_seq_req q = {.prompt = rq->prompt, .prompt_len = rq->prompt_len, .params = *p,
                               .seed = rq->seed, .seq_id = g->sample_id,
                               .share_key = (uint64_t)g->request + 1, .user = (void *)(uintptr_t)s};
        rc = sl_engine_submit(e, &q, NULL);
    }
    int aborted = 0;
    while (rc == SL_OK && (e->st.n_waiting > 0 || e->st.n_active > 0)) {
        if (e->abort_flag && *e->abort_flag) {
            aborted = 1;
            gpu_abort_all(e);
            break;
        }
        rc = sl_engine_step(e, true, 0);
    }
    if (rc != SL_OK) gpu_abort_all(e);
    sl_engine_done d;
    while (sl_engine_take_done(e, &d)) {
        size_t k = (size_t)(uintptr_t)d.user;
        if (k < n_samples) {
            sl_gen_sample *g = &out->samples[k];
            int nt = d.n_tokens < (int)cap ? d.n_tokens : (int)cap;
            memcpy((int32_t *)g->tokens, d.tokens, sizeof(int32_t) * (size_t)nt);
            memcpy((float *)g->logprobs, d.logprobs, sizeof(float) * (size_t)nt);
            g->n_tokens = nt;
            g->finish = d.finish;
            g->weight_version = d.weight_version;
        }
        sl_engine_done_fini(&d);
    }
    if (rc != SL_OK) {
        sl_gen_output_fini(out);
        return rc;
    }
    if (aborted) sl_warn("engine: generation aborted");
    out->gen_tokens = e->st.gen_tokens - st0.gen_tokens;
    out->prefill_tokens = e->st.prefill_tokens - st0.prefill_tokens;
    out->kv_copies = e->st.kv_copies - st0.kv_copies;
    out->decode_steps = e->st.decode_steps - st0.decode_steps;
    out->seconds = (double)(sl_now_ns() - t0) * 1e-9;
    return SL_OK;
}
