/*
 * trainer_core.c — one training step (trainer_core.h): batch checks,
 * old/reference log-probs, advantages, micro-batched forward/backward with
 * rl_algo.h's losses, clipping, AdamW, LR schedule; trainer state
 * save/load. CPU backend (parameters and gradients are host memory).
 */
#include "trainer_core.h"
#include "nccl_comm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "gpu_model.h"
#include "wal.h"

struct sl_trainer {
    sl_model *m;           /* borrowed policy (on the GPU: its host twin) */
    sl_model *ref;         /* owned frozen reference (CPU), or NULL */
    sl_gpum *g;            /* borrowed GPU model, or NULL (CPU backend) */
    bool ref_gpu;          /* g holds a reference snapshot */
    bool host_stale;       /* g's parameters changed since m->params_mem was refreshed */
    int max_tokens;        /* tokens of one forward (m's, or g's) */
    sl_trainer_cfg cfg;
    sl_adamw opt;
    sl_trainer_counters ctr;
    float *norm_save;      /* (C) final norm weight while scaled by 1/T */
    /* scratch, grown on demand */
    size_t cap_T;          /* token capacity of the token-indexed arrays */
    float *old_logp, *ref_logp, *first_logp, *adv, *maskf, *kl; /* (cap_T) token-indexed */
    size_t cap_P;          /* capacity of the per-pack arrays */
    float *p_mask, *p_logp, *p_ent, *p_old, *p_ref, *p_roll, *p_adv, *p_glogp, *p_gent;
    int32_t *p_cu;         /* (max_tokens + 1) */
    size_t *p_off;         /* (max_tokens + 1) */
    size_t *tok_off;       /* (n + 1) */
    size_t cap_n;
    float *rewards;        /* (n) normalized rewards */
    /* data parallelism (sl_trainer_enable_dp): rank of size; dp owned */
    sl_nccl *nc;
    sl_dp *dp;
    int rank, size;
    bool moments_stale;    /* zero1: the host moments lag the device shards */
};

/* ================================================================ config */

void sl_trainer_cfg_default(sl_trainer_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->loss_type = SL_LOSS_POLICY;
    c->advantage_estimator = SL_ADV_GRPO;
    c->eps_clip = 0.2f;
    c->eps_clip_high = -1.0f;
    c->eps_clip_c = 0.0f;
    c->kl_loss_type = SL_KL_K1;
    c->tis_clip = 2.0f;
    c->rewards_normalization = true;
    c->gamma = 1.0f;
    c->rollout_temperature = 1.0f;
    c->global_batch_size = 32;
    c->micro_batch_size = 8;
    c->lr = 1e-6;
    c->lr_decay_style = SL_LR_CONSTANT;
    c->weight_decay = 0.01;
    c->adam_beta1 = 0.9;
    c->adam_beta2 = 0.999;
    c->adam_eps = 1e-8;
    c->clip_grad = 1.0;
}

static int cfg_fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "trainer: %s", msg);
    return SL_EINVAL;
}

int sl_trainer_cfg_check(const sl_trainer_cfg *c, char *err, size_t errlen)
{
    if (!c) return cfg_fail(err, errlen, "no config");
    if (c->loss_type != SL_LOSS_POLICY && c->loss_type != SL_LOSS_SFT)
        return cfg_fail(err, errlen, "unknown loss_type");
    if (!strcmp(sl_adv_estimator_name(c->advantage_estimator), "?"))
        return cfg_fail(err, errlen, "unknown advantage_estimator");
    if (!strcmp(sl_kl_type_name(c->kl_loss_type), "?"))
        return cfg_fail(err, errlen, "unknown kl_loss_type");
    if (!(c->eps_clip >= 0 && c->eps_clip < 10)) return cfg_fail(err, errlen, "eps_clip out of range");
    if (c->eps_clip_c > 0 && c->eps_clip_c <= 1)
        return cfg_fail(err, errlen, "eps_clip_c must be > 1 (or <= 0 for off)");
    if (!isfinite(c->entropy_coef) || !isfinite(c->kl_loss_coef) || c->kl_loss_coef < 0 ||
        !isfinite(c->kl_coef) || c->kl_coef < 0)
        return cfg_fail(err, errlen, "bad entropy_coef / kl_loss_coef / kl_coef");
    if (c->use_tis && !(c->tis_clip > 0 && c->tis_clip_low >= 0 && c->tis_clip_low < c->tis_clip))
        return cfg_fail(err, errlen, "bad tis_clip / tis_clip_low");
    if (!(c->rollout_temperature > 0 && c->rollout_temperature < 1e3))
        return cfg_fail(err, errlen, "rollout_temperature must be > 0");
    if (!(c->gamma >= 0 && c->gamma <= 1)) return cfg_fail(err, errlen, "gamma must be in [0, 1]");
    if (c->global_batch_size < 1 || c->micro_batch_size < 1 ||
        c->micro_batch_size > c->global_batch_size)
        return cfg_fail(err, errlen,
                        "need 1 <= micro_batch_size <= global_batch_size");
    if (c->num_steps_per_rollout < 0) return cfg_fail(err, errlen, "num_steps_per_rollout < 0");
    if (!(c->lr >= 0 && c->lr < 10) || !(c->min_lr >= 0) || !(c->lr_warmup_init >= 0) ||
        c->lr_warmup_steps < 0 || c->lr_decay_steps < 0)
        return cfg_fail(err, errlen, "bad learning-rate schedule");
    if (!strcmp(sl_lr_decay_style_name(c->lr_decay_style), "?"))
        return cfg_fail(err, errlen, "unknown lr_decay_style");
    if (!(c->weight_decay >= 0) || !(c->adam_beta1 >= 0 && c->adam_beta1 < 1) ||
        !(c->adam_beta2 >= 0 && c->adam_beta2 < 1) || !(c->adam_eps >= 0))
        return cfg_fail(err, errlen, "bad AdamW hyper-parameters");
    if (!isfinite(c->clip_grad)) return cfg_fail(err, errlen, "bad clip_grad");
    return SL_OK;
}

static bool needs_ref(const sl_trainer_cfg *c)
{
    return c->loss_type == SL_LOSS_POLICY && (c->use_kl_loss || c->kl_coef > 0);
}

/* ============================================================ lifecycle */

static bool has_ref(const sl_trainer *t) { return t->ref || t->ref_gpu; }

static int make_ref(sl_trainer *t, char *err, size_t errlen)
{
#ifdef SL_HAVE_CUDA
    if (t->g) {
        int e = sl_gpum_ref_snapshot(t->g);
        if (e && err && errlen) snprintf(err, errlen, "trainer: no device memory for the reference");
        t->ref_gpu = e == SL_OK;
        return e;
    }
#endif
    int rc = sl_model_new(&t->m->cfg, t->m->ops, t->m->max_tokens, 0, &t->ref, err, errlen);
    if (rc != SL_OK) return rc;
    t->m->ops->copy(t->ref->params_mem, t->m->params_mem, sizeof(float) * t->m->n_params);
    return SL_OK;
}

static int trainer_new(sl_model *m, sl_gpum *g, const sl_trainer_cfg *cfg, sl_trainer **out,
                       char *err, size_t errlen)
{
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!m) return cfg_fail(err, errlen, "no model");
    int rc = sl_trainer_cfg_check(cfg, err, errlen);
    if (rc != SL_OK) return rc;
    if (strcmp(m->ops->name, "cpu") != 0) {
        if (err && errlen) snprintf(err, errlen, "trainer: only the cpu backend is supported");
        return SL_EUNSUPPORTED;
    }
    sl_trainer *t = calloc(1, sizeof(*t));
    if (!t) return SL_ENOMEM;
    t->m = m;
    t->g = g;
    t->size = 1;
    t->max_tokens = m->max_tokens;
#ifdef SL_HAVE_CUDA
    if (g) {
        sl_gpum_info gi;
        sl_gpum_get_info(g, &gi);
        t->max_tokens = gi.max_tokens;
    }
#endif
    t->cfg = *cfg;
    sl_range *nd = NULL;
    sl_adamw_params ap = {cfg->adam_beta1, cfg->adam_beta2, cfg->adam_eps, cfg->weight_decay};
    rc = sl_adamw_init(&t->opt, m->n_params, &ap);
    if (rc != SL_OK) goto fail;
    nd = malloc(sizeof(sl_range) * (size_t)(m->n_tensors ? m->n_tensors : 1));
    rc = SL_ENOMEM;
    if (!nd) goto fail;
    size_t n_nd = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].no_decay)
            nd[n_nd++] = (sl_range){m->tensors[i].offset, m->tensors[i].numel};
    rc = sl_adamw_set_no_decay(&t->opt, nd, n_nd);
    if (rc != SL_OK) goto fail;
    t->norm_save = malloc(sizeof(float) * (size_t)m->cfg.hidden_size);
    t->p_cu = malloc(sizeof(int32_t) * (size_t)(t->max_tokens + 1));
    t->p_off = malloc(sizeof(size_t) * (size_t)(t->max_tokens + 1));
    rc = SL_ENOMEM;
    if (!t->norm_save || !t->p_cu || !t->p_off) goto fail;
    if (needs_ref(cfg) && (rc = make_ref(t, err, errlen)) != SL_OK) goto fail;
    free(nd);
    *out = t;
    return SL_OK;
fail:
    free(nd);
    sl_trainer_free(t);
    if (rc == SL_ENOMEM && err && errlen) snprintf(err, errlen, "trainer: out of memory");
    return rc;
}

int sl_trainer_new(sl_model *m, const sl_trainer_cfg *cfg, sl_trainer **out, char *err,
                   size_t errlen)
{
    return trainer_new(m, NULL, cfg, out, err, errlen);
}

int sl_trainer_new_gpu(sl_model *m, sl_gpum *g, const sl_trainer_cfg *cfg, sl_trainer **out,
                       char *err, size_t errlen)
{
#ifdef SL_HAVE_CUDA
    if (!g) return cfg_fail(err, errlen, "no GPU model");
    return trainer_new(m, g, cfg, out, err, errlen);
#else
    (void)m, (void)g, (void)cfg;
    if (out) *out = NULL;
    if (err && errlen) snprintf(err, errlen, "trainer: built without CUDA");
    return SL_EUNSUPPORTED;
#endif
}

static void free_scratch(sl_trainer *t)
{
    float **tok[] = {&t->old_logp, &t->ref_logp, &t->first_logp, &t->adv, &t->maskf, &t->kl};
    for (size_t i = 0; i < SL_ARRAY_LEN(tok); i++) {
        free(*tok[i]);
        *tok[i] = NULL;
    }
    float **pk[] = {&t->p_mask, &t->p_logp, &t->p_ent, &t->p_old, &t->p_ref,
                    &t->p_roll, &t->p_adv, &t->p_glogp, &t->p_gent};
    for (size_t i = 0; i < SL_ARRAY_LEN(pk); i++) {
        free(*pk[i]);
        *pk[i] = NULL;
    }
    free(t->tok_off);
    free(t->rewards);
    t->tok_off = NULL;
    t->rewards = NULL;
    t->cap_T = t->cap_P = t->cap_n = 0;
}

void sl_trainer_free(sl_trainer *t)
{
    if (!t) return;
#ifdef SL_HAVE_CUDA
    sl_dp_free(t->dp);
#endif
    sl_model_free(t->ref);
    sl_adamw_fini(&t->opt);
    free_scratch(t);
    free(t->norm_save);
    free(t->p_cu);
    free(t->p_off);
    free(t);
}

int sl_trainer_set_cfg(sl_trainer *t, const sl_trainer_cfg *cfg, char *err, size_t errlen)
{
    if (!t) return SL_EINVAL;
    int rc = sl_trainer_cfg_check(cfg, err, errlen);
    if (rc != SL_OK) return rc;
    if (needs_ref(cfg) && !has_ref(t) && (rc = make_ref(t, err, errlen)) != SL_OK) return rc;
    t->cfg = *cfg;
    t->opt.p = (sl_adamw_params){cfg->adam_beta1, cfg->adam_beta2, cfg->adam_eps,
                                 cfg->weight_decay};
    return SL_OK;
}

void sl_trainer_reset_optimizer(sl_trainer *t)
{
    if (!t) return;
    memset(t->opt.m, 0, sizeof(float) * t->opt.n);
    memset(t->opt.v, 0, sizeof(float) * t->opt.n);
    t->opt.step = 0;
#ifdef SL_HAVE_CUDA
    if (t->g) {
        sl_gpum_moments_from_host(t->g, NULL, NULL);
        sl_gpum_set_step(t->g, 0);
    }
    if (t->dp) {
        sl_dp_moments_from_host(t->dp, NULL, NULL);
        sl_dp_set_step(t->dp, 0);
        t->moments_stale = false;
    }
#endif
    t->ctr.optimizer_step = 0;
}

/* On the GPU: bring the host twin's parameters up to date (the device
 * holds the truth; the host copy is refreshed only when asked for). */
static void sync_host(const sl_trainer *tc)
{
#ifdef SL_HAVE_CUDA
    sl_trainer *t = (sl_trainer *)tc; /* the host copy is a cache */
    if (t->g && t->host_stale) {
        if (t->dp) sl_dp_gather_params(t->dp); /* zero1: collective */
        sl_gpum_params_to_host(t->g, t->m->params_mem);
        t->host_stale = false;
    }
#else
    (void)tc;
#endif
}

const float *sl_trainer_params(const sl_trainer *t, size_t *n)
{
    if (n) *n = t ? t->m->n_params : 0;
    if (!t) return NULL;
    sync_host(t);
    return t->m->params_mem;
}

sl_gpum *sl_trainer_gpu_model(const sl_trainer *t) { return t ? t->g : NULL; }

int sl_trainer_enable_dp(sl_trainer *t, sl_nccl *c, size_t bucket_bytes, bool zero1, char *err,
                         size_t errlen)
{
#ifdef SL_HAVE_CUDA
    if (!t || !c || !t->g) return cfg_fail(err, errlen, "data parallelism needs a GPU trainer");
    if (t->dp) return cfg_fail(err, errlen, "data parallelism is already on");
    int rc = sl_dp_new(c, t->g, bucket_bytes, SL_DP_SUM | (zero1 ? SL_DP_ZERO1 : 0), &t->dp, err,
                       errlen);
    if (rc != SL_OK) return rc;
    /* ZeRO-1 dropped the model's moments: the host copy is the state
     * (zeros, or what sl_trainer_load put there) */
    sl_dp_moments_from_host(t->dp, t->opt.m, t->opt.v);
    sl_dp_set_step(t->dp, t->opt.step);
    t->nc = c;
    t->rank = sl_nccl_rank(c);
    t->size = sl_nccl_size(c);
    t->moments_stale = false;
    return SL_OK;
#else
    (void)t, (void)c, (void)bucket_bytes, (void)zero1;
    if (err && errlen) snprintf(err, errlen, "trainer: built without CUDA/NCCL");
    return SL_EUNSUPPORTED;
#endif
}

/* Host copies of the moments up to date (GPU backend). Collective under
 * ZeRO-1. */
static int moments_to_host(sl_trainer *t)
{
#ifdef SL_HAVE_CUDA
    if (t->dp) {
        if (!t->moments_stale) return SL_OK;
        int rc = sl_dp_moments_to_host(t->dp, t->opt.m, t->opt.v);
        t->moments_stale = rc != SL_OK;
        return rc;
    }
    if (t->g) sl_gpum_moments_to_host(t->g, t->opt.m, t->opt.v);
#else
    (void)t;
#endif
    return SL_OK;
}

int sl_trainer_collect(sl_trainer *t)
{
    if (!t) return SL_EINVAL;
    sync_host(t);
    return moments_to_host(t);
}

uint64_t sl_trainer_weight_version(const sl_trainer *t) { return t ? t->ctr.weight_version : 0; }

void sl_trainer_get_counters(const sl_trainer *t, sl_trainer_counters *c)
{
    if (t && c) *c = t->ctr;
}

void sl_train_batch_from_view(const sl_batch_view *v, uint32_t group_size, sl_train_batch *b)
{
    memset(b, 0, sizeof(*b));
    b->n_samples = v->n_samples;
    b->offsets = v->offsets;
    b->tokens = v->tokens;
    b->loss_mask = v->loss_mask;
    b->rollout_logprobs = v->logprobs;
    b->rewards = v->rewards;
    b->advantages = v->advantages;
    b->group_size = group_size;
}

/* ============================================================== scratch */

static int grow_f(float **p, size_t n)
{
    float *q = realloc(*p, sizeof(float) * (n ? n : 1));
    if (!q) return SL_ENOMEM;
    *p = q;
    return SL_OK;
}

static int ensure_scratch(sl_trainer *t, size_t T, size_t n)
{
    if (T > t->cap_T) {
        float **tok[] = {&t->old_logp, &t->ref_logp, &t->first_logp, &t->adv, &t->maskf, &t->kl};
        for (size_t i = 0; i < SL_ARRAY_LEN(tok); i++)
            if (grow_f(tok[i], T) != SL_OK) return SL_ENOMEM;
        t->cap_T = T;
    }
    size_t P = (size_t)t->max_tokens;
    if (P > t->cap_P) {
        float **pk[] = {&t->p_mask, &t->p_logp, &t->p_ent, &t->p_old, &t->p_ref,
                        &t->p_roll, &t->p_adv, &t->p_glogp, &t->p_gent};
        for (size_t i = 0; i < SL_ARRAY_LEN(pk); i++)
            if (grow_f(pk[i], P) != SL_OK) return SL_ENOMEM;
        t->cap_P = P;
    }
    if (n + 1 > t->cap_n) {
        size_t *o = realloc(t->tok_off, sizeof(size_t) * (n + 1));
        if (!o) return SL_ENOMEM;
        t->tok_off = o;
        if (grow_f(&t->rewards, n + 1) != SL_OK) return SL_ENOMEM;
        t->cap_n = n + 1;
    }
    return SL_OK;
}

/* ========================================================= batch checks */

static int check_batch(const sl_trainer *t, const sl_train_batch *b)
{
    if (!b || !b->offsets || !b->tokens || !b->loss_mask || b->n_samples < 1 ||
        b->offsets[0] != 0) {
        sl_error("trainer: empty or malformed batch");
        return SL_EINVAL;
    }
    int V = t->m->cfg.vocab_size;
    for (uint32_t i = 0; i < b->n_samples; i++) {
        uint64_t o0 = b->offsets[i], o1 = b->offsets[i + 1];
        if (o1 <= o0 || o1 - o0 > (uint64_t)t->max_tokens ||
            o1 - o0 > (uint64_t)t->m->cfg.max_position_embeddings) {
            sl_error("trainer: sample %u has %lld tokens (1 .. model max_tokens %d)", i,
                     (long long)(o1 - o0), t->max_tokens);
            return SL_EINVAL;
        }
        if (b->loss_mask[o0]) {
            sl_error("trainer: sample %u trains its first token", i);
            return SL_EINVAL;
        }
        for (uint64_t k = o0; k < o1; k++) {
            if (b->tokens[k] < 0 || b->tokens[k] >= V || b->loss_mask[k] > 1) {
                sl_error("trainer: sample %u: bad token id or loss mask at %llu", i,
                         (unsigned long long)k);
                return SL_EINVAL;
            }
            if (b->rollout_logprobs && !isfinite(b->rollout_logprobs[k])) return SL_EINVAL;
            if (b->advantages && !isfinite(b->advantages[k])) return SL_EINVAL;
        }
        if (b->rewards && !isfinite(b->rewards[i])) return SL_EINVAL;
    }
    const sl_trainer_cfg *c = &t->cfg;
    if (b->n_samples % (uint32_t)c->global_batch_size != 0) {
        sl_error("trainer: %u samples is not a multiple of global_batch_size %d", b->n_samples,
                 c->global_batch_size);
        return SL_EINVAL;
    }
    int steps = (int)(b->n_samples / (uint32_t)c->global_batch_size);
    if (c->num_steps_per_rollout > 0 && steps != c->num_steps_per_rollout) {
        sl_error("trainer: %u samples make %d steps of %d, num_steps_per_rollout is %d",
                 b->n_samples, steps, c->global_batch_size, c->num_steps_per_rollout);
        return SL_EINVAL;
    }
    if (c->loss_type == SL_LOSS_POLICY) {
        if (!b->advantages && !b->rewards) {
            sl_error("trainer: policy_loss needs rewards or advantages");
            return SL_EINVAL;
        }
        if (c->use_tis && !b->rollout_logprobs) {
            sl_error("trainer: use_tis needs rollout log-probs");
            return SL_EINVAL;
        }
        if (!b->advantages && b->group_size &&
            (b->n_samples % b->group_size != 0)) {
            sl_error("trainer: %u samples is not a multiple of group_size %u", b->n_samples,
                     b->group_size);
            return SL_EINVAL;
        }
    }
    return SL_OK;
}

/* ====================================================== forward helpers */

/* Scale (or restore) model m's final norm weight so that its logits are
 * divided by the temperature: logits = (w/T * x * rstd) W^T. */
static void temp_scale(sl_trainer *t, sl_model *m, int on)
{
    float T = t->cfg.rollout_temperature;
    if (T == 1.0f) return;
#ifdef SL_HAVE_CUDA
    if (t->g) { /* exact: the LM head's GEMMs scale by 1/T, forward and backward */
        (void)m;
        sl_gpum_set_logit_scale(t->g, on ? 1.0f / T : 1.0f);
        return;
    }
#endif
    int C = m->cfg.hidden_size;
    if (on) {
        memcpy(t->norm_save, m->w.final_norm, sizeof(float) * (size_t)C);
        for (int i = 0; i < C; i++) m->w.final_norm[i] /= T;
    } else {
        memcpy(m->w.final_norm, t->norm_save, sizeof(float) * (size_t)C);
    }
}

/* The samples [i0, i1) packed into one forward of at most max_tokens
 * tokens: returns the end of the pack (> i0). */
static uint32_t pack_end(const sl_trainer *t, const sl_train_batch *b, uint32_t i0, uint32_t i1)
{
    uint64_t base = b->offsets[i0];
    uint32_t i = i0 + 1;
    while (i < i1 && b->offsets[i + 1] - base <= (uint64_t)t->max_tokens) i++;
    return i;
}

/* Forward of model m over samples [i0, i1) (one pack). Fills t->p_cu and
 * the per-position outputs logp/ent (position p of a sample predicts its
 * token p+1). Returns the pack's token count or a negative error. */
static int pack_forward(sl_trainer *t, sl_model *m, const sl_train_batch *b, uint32_t i0,
                        uint32_t i1, float *logp, float *ent)
{
    uint64_t base = b->offsets[i0];
    for (uint32_t i = i0; i <= i1; i++) {
        t->p_cu[i - i0] = (int32_t)(b->offsets[i] - base);
        t->p_off[i - i0] = (size_t)(b->offsets[i] - base);
    }
    int rc;
#ifdef SL_HAVE_CUDA
    if (t->g) /* m == t->ref (NULL) means the reference: use_ref was set by the caller */
        rc = sl_gpum_forward(t->g, b->tokens + base, t->p_cu, (int)(i1 - i0), NULL, logp, ent, NULL);
    else
#endif
        rc = sl_model_forward(m, b->tokens + base, t->p_cu, (int)(i1 - i0), NULL, logp, ent, NULL);
    if (rc != SL_OK) return -rc;
    return t->p_cu[i1 - i0];
}

/* Token-indexed src (batch array) to position-indexed dst for a pack:
 * dst[p] = src[base + p + 1] within each sample, 0 at its last position. */
static void shift_f(const sl_trainer *t, const float *src, uint64_t base, uint32_t n_seq,
                    float *dst)
{
    for (uint32_t s = 0; s < n_seq; s++) {
        int a = t->p_cu[s], z = t->p_cu[s + 1];
        for (int p = a; p < z - 1; p++) dst[p] = src ? src[base + (uint64_t)p + 1] : 0.0f;
        dst[z - 1] = 0.0f;
    }
}

static void unshift_f(const sl_trainer *t, const float *pos, uint64_t base, uint32_t n_seq,
                      float *dst_tok)
{
    for (uint32_t s = 0; s < n_seq; s++) {
        int a = t->p_cu[s], z = t->p_cu[s + 1];
        dst_tok[base + (uint64_t)a] = 0.0f;
        for (int p = a; p < z - 1; p++) dst_tok[base + (uint64_t)p + 1] = pos[p];
    }
}

/* No-grad log-probs of every token of samples [s0, s1) under the policy
 * (ref false) or the frozen reference. */
static int batch_logprobs(sl_trainer *t, bool ref, const sl_train_batch *b, uint32_t s0,
                          uint32_t s1, float *out_logp, float *out_ent)
{
    sl_model *m = ref ? t->ref : t->m;
#ifdef SL_HAVE_CUDA
    if (t->g && ref && sl_gpum_use_ref(t->g, 1) != SL_OK) return SL_EINVAL;
#endif
    temp_scale(t, m, 1);
    int rc = SL_OK;
    for (uint32_t i0 = s0; i0 < s1;) {
        uint32_t i1 = pack_end(t, b, i0, s1);
        int T = pack_forward(t, m, b, i0, i1, t->p_logp, out_ent ? t->p_ent : NULL);
        if (T < 0) {
            rc = -T;
            break;
        }
        uint64_t base = b->offsets[i0];
        unshift_f(t, t->p_logp, base, i1 - i0, out_logp);
        if (out_ent) {
            /* the entropy of the distribution token t was drawn from */
            for (uint32_t s = 0; s < i1 - i0; s++) {
                int a = t->p_cu[s], z = t->p_cu[s + 1];
                out_ent[base + (uint64_t)a] = 0.0f;
                for (int p = a; p < z - 1; p++) out_ent[base + (uint64_t)p + 1] = t->p_ent[p];
            }
        }
        i0 = i1;
    }
    temp_scale(t, m, 0);
#ifdef SL_HAVE_CUDA
    if (t->g && ref) sl_gpum_use_ref(t->g, 0);
#endif
    if (m) m->have_fwd = 0; /* the scaled activations must not be back-propagated */
    return rc;
}

int sl_trainer_logprobs(sl_trainer *t, const sl_train_batch *b, float *out_logp,
                        float *out_entropy)
{
    if (!t || !out_logp) return SL_EINVAL;
    sl_trainer_cfg c = t->cfg;
    /* shape checks only: no step count or reward requirements here */
    t->cfg.global_batch_size = 1;
    t->cfg.num_steps_per_rollout = 0;
    t->cfg.loss_type = SL_LOSS_SFT;
    int rc = check_batch(t, b);
    t->cfg = c;
    if (rc != SL_OK) return rc;
    rc = ensure_scratch(t, b->offsets[b->n_samples], b->n_samples);
    if (rc != SL_OK) return rc;
    return batch_logprobs(t, false, b, 0, b->n_samples, out_logp, out_entropy);
}

/* =============================================================== step */

/* Samples [*a, *e) of global batch [g0, g1) that this rank trains: a
 * contiguous share (all of them without data parallelism). */
static void own_range(const sl_trainer *t, uint32_t g0, uint32_t g1, uint32_t *a, uint32_t *e)
{
    uint64_t n = g1 - g0;
    *a = g0 + (uint32_t)(n * (uint64_t)t->rank / (uint64_t)t->size);
    *e = g0 + (uint32_t)(n * (uint64_t)(t->rank + 1) / (uint64_t)t->size);
}

/* Log-probs of this rank's samples of every global batch (all: of every
 * sample) of a batch whose size is a multiple of global_batch_size. */
static int step_logprobs(sl_trainer *t, bool ref, const sl_train_batch *b, bool all, float *out)
{
    if (all || t->size == 1) return batch_logprobs(t, ref, b, 0, b->n_samples, out, NULL);
    uint32_t G = (uint32_t)t->cfg.global_batch_size;
    for (uint32_t g0 = 0; g0 < b->n_samples; g0 += G) {
        uint32_t a, e;
        own_range(t, g0, g0 + G, &a, &e);
        int rc = batch_logprobs(t, ref, b, a, e, out, NULL);
        if (rc != SL_OK) return rc;
    }
    return SL_OK;
}

static void metrics_add(sl_train_metrics *acc, const sl_rl_loss_metrics *x)
{
    acc->loss += x->loss;
    acc->pg_loss += x->pg_loss;
    acc->entropy += x->entropy_loss;
    acc->ppo_kl += x->ppo_kl;
    acc->clipfrac += x->pg_clipfrac;
    acc->tis += x->tis;
}

/* Advantages (token-indexed, t->adv) from the batch or its rewards. */
static int compute_advantages(sl_trainer *t, const sl_train_batch *b, size_t T)
{
    const sl_trainer_cfg *c = &t->cfg;
    uint32_t n = b->n_samples;
    if (b->advantages) {
        memcpy(t->adv, b->advantages, sizeof(float) * T);
        return SL_OK;
    }
    size_t gs = b->group_size ? b->group_size : n;
    int rc = sl_rl_group_rewards(b->rewards, n, gs, c->advantage_estimator,
                                 c->rewards_normalization, !c->disable_grpo_std_normalization,
                                 t->rewards);
    if (rc != SL_OK) return rc;
    if (has_ref(t) && c->kl_coef > 0)
        sl_rl_token_kl(t->old_logp, t->ref_logp, T, c->kl_coef, c->kl_loss_type, t->kl);
    sl_rl_adv_config ac = {.estimator = c->advantage_estimator,
                           .kl_coef = c->kl_coef,
                           .kl_type = c->kl_loss_type,
                           .gamma = c->gamma,
                           .normalize_advantages = c->normalize_advantages};
    return sl_rl_advantages(&ac, n, t->tok_off, t->maskf, t->rewards,
                            (has_ref(t) && c->kl_coef > 0) ? t->kl : NULL, t->adv, NULL);
}

/* The model operations of a step on either backend. */
static void zero_grad(sl_trainer *t)
{
#ifdef SL_HAVE_CUDA
    if (t->g) {
        sl_gpum_zero_grad(t->g);
        return;
    }
#endif
    sl_model_zero_grad(t->m);
}

static int backward(sl_trainer *t, const float *dlogp, const float *dent)
{
#ifdef SL_HAVE_CUDA
    if (t->g) return sl_gpum_backward(t->g, dlogp, dent);
#endif
    return sl_model_backward(t->m, dlogp, dent);
}

static double clip_grad(sl_trainer *t, double max_norm)
{
#ifdef SL_HAVE_CUDA
    if (t->dp) return sl_dp_clip_grad(t->dp, (float)max_norm);
    if (t->g) return sl_gpum_clip_grad(t->g, (float)max_norm);
#endif
    return sl_grad_clip(t->m->grads_mem, t->m->n_params, max_norm);
}

static int adamw_step(sl_trainer *t, double lr)
{
#ifdef SL_HAVE_CUDA
    if (t->g) {
        /* the same update as sl_adamw_step (bias correction of step + 1,
         * decoupled decay on matrices and embeddings), on the device */
        const sl_adamw_params *p = &t->opt.p;
        sl_gpum_set_step(t->g, t->opt.step);
        if (t->dp) {
            /* ZeRO-1: this rank's shard, then every shard's bf16 weights */
            sl_dp_set_step(t->dp, t->opt.step);
            int rc = sl_dp_step(t->dp, (float)lr, p->beta1, p->beta2, p->eps, p->weight_decay,
                                0.0f, NULL);
            if (rc != SL_OK) return rc;
            t->moments_stale = true;
        } else {
            sl_gpum_adamw_step(t->g, (float)lr, p->beta1, p->beta2, p->eps, p->weight_decay,
                               0.0f, NULL);
        }
        t->opt.step++;
        t->host_stale = true;
        return SL_OK;
    }
#endif
    sl_adamw_step(&t->opt, t->m->params_mem, t->m->grads_mem, lr);
    return SL_OK;
}

/* One optimizer step over samples [g0, g1). Accumulates the loss metrics
 * into *acc. Sets *skipped when the gradient was not finite. */
static int train_global_batch(sl_trainer *t, const sl_train_batch *b, uint32_t g0, uint32_t g1,
                              bool have_old, bool fill_first, sl_train_metrics *acc,
                              int *skipped)
{
    const sl_trainer_cfg *c = &t->cfg;
    sl_model *m = t->m;
    double denom = 0;
    for (uint32_t i = g0; i < g1; i++) {
        if (!c->calculate_per_token_loss) {
            denom += 1;
            continue;
        }
        double ms = 0;
        for (uint64_t k = b->offsets[i]; k < b->offsets[i + 1]; k++) ms += b->loss_mask[k];
        denom += ms > 1 ? ms : 1;
    }
    sl_rl_loss_config lc;
    sl_rl_loss_config_default(&lc);
    lc.loss_type = c->loss_type;
    lc.estimator = c->advantage_estimator;
    lc.eps_clip = c->eps_clip;
    lc.eps_clip_high = c->eps_clip_high;
    lc.eps_clip_c = c->eps_clip_c;
    lc.entropy_coef = c->entropy_coef;
    lc.use_kl_loss = c->use_kl_loss;
    lc.kl_loss_coef = c->kl_loss_coef;
    lc.kl_loss_type = c->kl_loss_type;
    lc.use_tis = c->use_tis;
    lc.tis_clip = c->tis_clip;
    lc.tis_clip_low = c->tis_clip_low;
    lc.calculate_per_token_loss = c->calculate_per_token_loss;
    lc.denom = denom;
    bool policy = c->loss_type == SL_LOSS_POLICY;
    bool want_ent = policy || c->entropy_coef != 0;

    zero_grad(t);
    temp_scale(t, m, 1);
    int rc = SL_OK;
    uint32_t a, e; /* this rank's samples */
    own_range(t, g0, g1, &a, &e);
    for (uint32_t mb0 = a; mb0 < e && rc == SL_OK;) {
        uint32_t mb1 = mb0 + (uint32_t)c->micro_batch_size;
        if (mb1 > e) mb1 = e;
        for (uint32_t i0 = mb0; i0 < mb1;) {
            uint32_t i1 = pack_end(t, b, i0, mb1);
            uint32_t ns = i1 - i0;
            int P = pack_forward(t, m, b, i0, i1, t->p_logp, want_ent ? t->p_ent : NULL);
            if (P < 0) {
                rc = -P;
                break;
            }
            uint64_t base = b->offsets[i0];
            shift_f(t, t->maskf, base, ns, t->p_mask);
            if (fill_first) unshift_f(t, t->p_logp, base, ns, t->first_logp);
            sl_rl_loss_input in = {.n_samples = ns,
                                   .offsets = t->p_off,
                                   .loss_mask = t->p_mask,
                                   .logp = t->p_logp,
                                   .entropy = want_ent ? t->p_ent : NULL};
            if (have_old) {
                shift_f(t, t->old_logp, base, ns, t->p_old);
                in.old_logp = t->p_old;
            }
            if (has_ref(t) && c->use_kl_loss) {
                shift_f(t, t->ref_logp, base, ns, t->p_ref);
                in.ref_logp = t->p_ref;
            }
            if (c->use_tis) {
                shift_f(t, b->rollout_logprobs, base, ns, t->p_roll);
                in.rollout_logp = t->p_roll;
            }
            if (policy) {
                shift_f(t, t->adv, base, ns, t->p_adv);
                in.advantages = t->p_adv;
            }
            sl_rl_loss_metrics lm;
            rc = sl_rl_loss(&lc, &in, &lm, t->p_glogp, t->p_gent);
            if (rc != SL_OK) {
                sl_error("trainer: loss computation refused the micro-batch");
                break;
            }
            metrics_add(acc, &lm);
#ifdef SL_HAVE_CUDA
            if (t->dp && i1 == e) sl_dp_arm(t->dp); /* the last backward: buckets as layers finish */
#endif
            rc = backward(t, t->p_glogp, c->entropy_coef != 0 ? t->p_gent : NULL);
            if (rc != SL_OK) break;
            i0 = i1;
        }
        mb0 = mb1;
    }
    temp_scale(t, m, 0);
    if (rc != SL_OK) {
        zero_grad(t);
        return rc;
    }
#ifdef SL_HAVE_CUDA
    if (t->dp) {
        /* the sum of every rank's gradients (a rank without samples adds
         * zeros); then clip and step see the same gradients everywhere */
        if (a == e) sl_dp_arm(t->dp);
        sl_dp_wait(t->dp);
    }
#endif
    if (c->rollout_temperature != 1.0f && !t->g) {
        /* the gradient was taken w.r.t. w/T: d/dw = d/d(w/T) / T */
        float inv = 1.0f / c->rollout_temperature;
        for (int i = 0; i < m->cfg.hidden_size; i++) m->g.final_norm[i] *= inv;
    }
    double gn = clip_grad(t, c->clip_grad);
    sl_lr_schedule s = {.lr = c->lr,
                        .min_lr = c->min_lr,
                        .lr_warmup_init = c->lr_warmup_init,
                        .lr_warmup_steps = c->lr_warmup_steps,
                        .lr_decay_steps = c->lr_decay_steps,
                        .lr_decay_style = c->lr_decay_steps > 0 ? c->lr_decay_style : SL_LR_CONSTANT};
    if (c->lr_decay_steps <= 0) s.lr_decay_steps = INT64_MAX;
    double lr = sl_lr_at(&s, t->opt.step);
    acc->lr = lr;
    if (!isfinite(gn)) {
        sl_warn("trainer: non-finite gradient norm, step skipped");
        *skipped = 1;
        zero_grad(t);
        return SL_OK;
    }
    acc->grad_norm += gn;
    rc = adamw_step(t, lr);
    zero_grad(t);
    if (rc != SL_OK) return rc;
    m->have_fwd = 0;
    return SL_OK;
}

int sl_trainer_step(sl_trainer *t, const sl_train_batch *b, sl_train_metrics *out)
{
    if (!t) return SL_EINVAL;
    uint64_t t0 = sl_now_ns();
    sl_train_metrics acc;
    memset(&acc, 0, sizeof(acc));
    int rc = check_batch(t, b);
    if (rc != SL_OK) return rc;
    const sl_trainer_cfg *c = &t->cfg;
    uint32_t n = b->n_samples;
    size_t T = (size_t)b->offsets[n];
    rc = ensure_scratch(t, T, n);
    if (rc != SL_OK) return rc;
    for (uint32_t i = 0; i <= n; i++) t->tok_off[i] = (size_t)b->offsets[i];
    double n_mask = 0;
    for (size_t k = 0; k < T; k++) {
        t->maskf[k] = b->loss_mask[k];
        n_mask += b->loss_mask[k];
    }
    int steps = (int)(n / (uint32_t)c->global_batch_size);
    bool policy = c->loss_type == SL_LOSS_POLICY;
    bool have_old = policy && steps > 1;

    /* KL in the reward needs every sample's log-probs on every rank */
    bool all = policy && has_ref(t) && c->kl_coef > 0;
    if (have_old && (rc = step_logprobs(t, false, b, all, t->old_logp)) != SL_OK) return rc;
    if (has_ref(t) && policy && (rc = step_logprobs(t, true, b, all, t->ref_logp)) != SL_OK)
        return rc;
    if (policy && has_ref(t) && c->kl_coef > 0 && !have_old) {
        /* KL in the reward needs the current log-probs before any update */
        rc = step_logprobs(t, false, b, true, t->old_logp);
        if (rc != SL_OK) return rc;
    }
    if (policy && (rc = compute_advantages(t, b, T)) != SL_OK) return rc;
    if (have_old || (policy && has_ref(t) && c->kl_coef > 0))
        memcpy(t->first_logp, t->old_logp, sizeof(float) * T);

    int skipped = 0;
    for (int s = 0; s < steps; s++) {
        uint32_t g0 = (uint32_t)s * (uint32_t)c->global_batch_size;
        uint32_t g1 = g0 + (uint32_t)c->global_batch_size;
        int sk = 0;
        bool fill_first = !(have_old || (policy && has_ref(t) && c->kl_coef > 0));
        rc = train_global_batch(t, b, g0, g1, have_old, fill_first, &acc, &sk);
        if (rc != SL_OK) return rc;
        skipped += sk;
    }
    /* metrics of the first forward, over this rank's samples */
    double diff = 0, kl = 0, adv = 0;
    for (uint32_t g0 = 0; g0 < n; g0 += (uint32_t)c->global_batch_size) {
        uint32_t a, e;
        own_range(t, g0, g0 + (uint32_t)c->global_batch_size, &a, &e);
        for (uint64_t k = b->offsets[a]; k < b->offsets[e]; k++) {
            if (!b->loss_mask[k]) continue;
            if (b->rollout_logprobs) diff += fabs((double)t->first_logp[k] - b->rollout_logprobs[k]);
            if (has_ref(t) && policy) kl += sl_rl_approx_kl(t->first_logp[k], t->ref_logp[k], c->kl_loss_type);
            if (policy) adv += t->adv[k];
        }
    }
#ifdef SL_HAVE_CUDA
    if (t->dp) { /* every rank's share of the sums */
        double v[9] = {acc.loss, acc.pg_loss, acc.entropy, acc.ppo_kl, acc.clipfrac, acc.tis, diff, kl, adv};
        if ((rc = sl_nccl_sum_host(t->nc, v, 9)) != SL_OK) return rc;
        acc.loss = v[0], acc.pg_loss = v[1], acc.entropy = v[2], acc.ppo_kl = v[3];
        acc.clipfrac = v[4], acc.tis = v[5], diff = v[6], kl = v[7], adv = v[8];
    }
#endif
    int applied = steps - skipped;
    double inv = 1.0 / steps;
    acc.loss *= inv;
    acc.pg_loss *= inv;
    acc.entropy *= inv;
    acc.ppo_kl *= inv;
    acc.clipfrac *= inv;
    acc.tis *= inv;
    acc.grad_norm = applied > 0 ? acc.grad_norm / applied : NAN;
    acc.steps = applied;
    acc.skipped_steps = skipped;

    if (n_mask > 0) {
        acc.train_rollout_logprob_abs_diff = diff / n_mask;
        acc.kl = kl / n_mask;
        acc.adv_mean = adv / n_mask;
    }
    if (b->rewards) {
        double r = 0;
        for (uint32_t i = 0; i < n; i++) r += b->rewards[i];
        acc.reward_mean = r / n;
    }
    acc.tokens = (int64_t)n_mask;
    acc.samples = n;
    if (applied > 0) {
        t->ctr.rollout_step++;
        t->ctr.weight_version++;
    }
    t->ctr.optimizer_step = t->opt.step;
    t->ctr.samples_trained += n;
    t->ctr.tokens_trained += (int64_t)n_mask;
    acc.optimizer_step = t->opt.step;
    acc.seconds = (double)(sl_now_ns() - t0) * 1e-9;
    if (out) *out = acc;
    return SL_OK;
}

/* =========================================================== save / load */

#define OPT_MAGIC 0x504f4c53u /* "SLOP" little endian */
#define OPT_VERSION 1
#define OPT_HEADER 32

static int msg(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write "trainer: " + the message into err (may be NULL); returns rc. */
static int msg(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        int k = snprintf(err, errlen, "trainer: ");
        if (k > 0 && (size_t)k < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

/* Remove a folder of plain files (our checkpoint layout has no subfolders). */
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int sl_trainer_save(const sl_trainer *t, const char *dir, const char *extra_json, char *err,
                    size_t errlen)
{
    if (!t || !dir || !*dir || strlen(dir) > 3000) return SL_EINVAL;
    json_t *extra = NULL;
    if (extra_json) {
        json_error_t je;
        extra = json_loads(extra_json, 0, &je);
        if (!extra || !json_is_object(extra)) {
            json_decref(extra);
            return msg(err, errlen, SL_EINVAL, "extra state is not a JSON object: %s", je.text);
        }
    }
#ifdef SL_HAVE_CUDA
    if (t->g) { /* host copies of the device state (no-ops after sl_trainer_collect) */
        sync_host(t);
        moments_to_host((sl_trainer *)t);
    }
#endif
    char tmp[4096], path[8192], old[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", dir);
    snprintf(old, sizeof(old), "%s.old", dir);
    remove_flat_dir(tmp);
    int rc = sl_model_save_hf(t->m, tmp, SL_DTYPE_F32, err, errlen);
    if (rc != SL_OK) {
        json_decref(extra);
        return rc;
    }
    /* optimizer.bin: header, m, v */
    uint8_t hdr[OPT_HEADER] = {0};
    size_t n = t->opt.n;
    uint32_t crc = sl_crc32(t->opt.m, sizeof(float) * n);
    crc = (uint32_t)crc32(crc, (const unsigned char *)t->opt.v, (unsigned)(sizeof(float) * n));
    uint32_t u32;
    uint64_t u64;
    u32 = OPT_MAGIC;
    memcpy(hdr, &u32, 4);
    u32 = OPT_VERSION;
    memcpy(hdr + 4, &u32, 4);
    u64 = n;
    memcpy(hdr + 8, &u64, 8);
    u64 = (uint64_t)t->opt.step;
    memcpy(hdr + 16, &u64, 8);
    memcpy(hdr + 24, &crc, 4);
    struct iovec iov[3] = {{hdr, OPT_HEADER},
                           {t->opt.m, sizeof(float) * n},
                           {t->opt.v, sizeof(float) * n}};
    snprintf(path, sizeof(path), "%s/optimizer.bin", tmp);
    rc = sl_file_write_atomic(path, iov, 3);
    if (rc != SL_OK) {
        json_decref(extra);
        return msg(err, errlen, rc, "cannot write %s", path);
    }
    json_t *st = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "format", 1,
                           "rollout_step", (json_int_t)t->ctr.rollout_step, "optimizer_step",
                           (json_int_t)t->opt.step, "weight_version",
                           (json_int_t)t->ctr.weight_version, "samples_trained",
                           (json_int_t)t->ctr.samples_trained, "tokens_trained",
                           (json_int_t)t->ctr.tokens_trained, "n_params", (json_int_t)n,
                           "optimizer_crc32", (json_int_t)crc);
    if (st && extra) json_object_set_new(st, "extra", extra);
    else json_decref(extra);
    char *text = st ? json_dumps(st, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(st);
    if (!text) return msg(err, errlen, SL_ENOMEM, "out of memory");
    struct iovec jv[2] = {{text, strlen(text)}, {"\n", 1}};
    snprintf(path, sizeof(path), "%s/trainer_state.json", tmp);
    rc = sl_file_write_atomic(path, jv, 2);
    free(text);
    if (rc != SL_OK) return msg(err, errlen, rc, "cannot write %s", path);
    fsync_path(tmp);
    /* swap in: an existing state is moved aside first, then removed */
    remove_flat_dir(old);
    struct stat sb;
    bool had = stat(dir, &sb) == 0;
    if (had && rename(dir, old) != 0) return msg(err, errlen, SL_EIO, "cannot move %s aside", dir);
    if (rename(tmp, dir) != 0) return msg(err, errlen, SL_EIO, "cannot rename into %s", dir);
    if (had) remove_flat_dir(old);
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) {
        *slash = 0;
        fsync_path(*parent ? parent : "/");
    } else {
        fsync_path(".");
    }
    return SL_OK;
}

/* Read a whole file of at most max bytes into a malloc'd buffer. */
static int read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? SL_ENOENT : SL_EIO;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0 || (uint64_t)sb.st_size > max) {
        fclose(f);
        return SL_EINVAL;
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return SL_ENOMEM;
    }
    if (fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return SL_EIO;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return SL_OK;
}

static int get_count(json_t *st, const char *key, int64_t *out)
{
    json_t *v = json_object_get(st, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return SL_EINVAL;
    *out = (int64_t)json_integer_value(v);
    return SL_OK;
}

int sl_trainer_load(sl_trainer *t, const char *dir, char **extra_json, char *err, size_t errlen)
{
    if (extra_json) *extra_json = NULL;
    if (!t || !dir || strlen(dir) > 3000) return SL_EINVAL;
    char path[4096];
    int rc;
    json_t *st = NULL;
    uint8_t *ob = NULL;
    sl_model *tmp = NULL;
    int64_t rs, os, wv, sn, tn, np;

    snprintf(path, sizeof(path), "%s/trainer_state.json", dir);
    json_error_t je;
    uint8_t *jt = NULL;
    size_t jl = 0;
    rc = read_file(path, 1 << 24, &jt, &jl);
    if (rc != SL_OK) return msg(err, errlen, rc, "cannot read %s", path);
    st = json_loadb((const char *)jt, jl, 0, &je);
    free(jt);
    if (!st || !json_is_object(st) || get_count(st, "rollout_step", &rs) ||
        get_count(st, "optimizer_step", &os) || get_count(st, "weight_version", &wv) ||
        get_count(st, "samples_trained", &sn) || get_count(st, "tokens_trained", &tn) ||
        get_count(st, "n_params", &np)) {
        rc = msg(err, errlen, SL_EINVAL, "%s: malformed trainer state", path);
        goto done;
    }
    size_t n = t->m->n_params;
    if ((uint64_t)np != n) {
        rc = msg(err, errlen, SL_EINVAL, "%s: parameter count differs from the model", path);
        goto done;
    }
    snprintf(path, sizeof(path), "%s/optimizer.bin", dir);
    size_t ol = 0;
    rc = read_file(path, OPT_HEADER + 8 * n, &ob, &ol);
    if (rc != SL_OK || ol != OPT_HEADER + 8 * n) {
        rc = msg(err, errlen, rc == SL_ENOENT ? SL_ENOENT : SL_EINVAL,
                 "%s: missing or wrong size", path);
        goto done;
    }
    uint32_t magic, ver, crc;
    uint64_t on, ostep;
    memcpy(&magic, ob, 4);
    memcpy(&ver, ob + 4, 4);
    memcpy(&on, ob + 8, 8);
    memcpy(&ostep, ob + 16, 8);
    memcpy(&crc, ob + 24, 4);
    if (magic != OPT_MAGIC || ver != OPT_VERSION || on != n || (int64_t)ostep != os ||
        ostep > (uint64_t)INT64_MAX) {
        rc = msg(err, errlen, SL_EINVAL, "%s: bad header", path);
        goto done;
    }
    if (sl_crc32(ob + OPT_HEADER, 8 * n) != crc) {
        rc = msg(err, errlen, SL_ECHECKSUM, "%s: CRC mismatch", path);
        goto done;
    }
    rc = sl_model_load_hf(dir, t->m->ops, 1, &tmp, err, errlen);
    if (rc != SL_OK) goto done;
    const sl_hf_config *a = &tmp->cfg, *b = &t->m->cfg;
    if (tmp->n_params != n || a->hidden_size != b->hidden_size ||
        a->num_hidden_layers != b->num_hidden_layers || a->vocab_size != b->vocab_size ||
        a->intermediate_size != b->intermediate_size || a->arch != b->arch ||
        a->num_attention_heads != b->num_attention_heads ||
        a->num_key_value_heads != b->num_key_value_heads || a->head_dim != b->head_dim ||
        a->tie_word_embeddings != b->tie_word_embeddings) {
        rc = msg(err, errlen, SL_EINVAL, "%s: model shape differs from the trainer's", dir);
        goto done;
    }
    /* everything checked: apply */
    memcpy(t->m->params_mem, tmp->params_mem, sizeof(float) * n);
    memcpy(t->opt.m, ob + OPT_HEADER, sizeof(float) * n);
    memcpy(t->opt.v, ob + OPT_HEADER + 4 * n, sizeof(float) * n);
    t->opt.step = os;
    t->ctr.rollout_step = rs;
    t->ctr.optimizer_step = os;
    t->ctr.weight_version = (uint64_t)wv;
    t->ctr.samples_trained = sn;
    t->ctr.tokens_trained = tn;
    sl_model_zero_grad(t->m);
    t->m->have_fwd = 0;
#ifdef SL_HAVE_CUDA
    if (t->g) {
        sl_gpum_params_from_host(t->g, t->m->params_mem);
        sl_gpum_moments_from_host(t->g, t->opt.m, t->opt.v);
        sl_gpum_set_step(t->g, os);
        if (t->dp) {
            sl_dp_moments_from_host(t->dp, t->opt.m, t->opt.v);
            sl_dp_set_step(t->dp, os);
            t->moments_stale = false;
        }
        sl_gpum_zero_grad(t->g);
        t->host_stale = false;
    }
#endif
    if (extra_json) {
        json_t *x = json_object_get(st, "extra");
        if (json_is_object(x)) *extra_json = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS);
    }
    rc = SL_OK;
done:
    sl_model_free(tmp);
    free(ob);
    json_decref(st);
    return rc;
}
