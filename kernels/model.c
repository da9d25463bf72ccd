/*
 * model.c — the Llama/Qwen transformer of model.h: parameter layout and
 * name table, initialisation, Hugging Face load/save, forward, backward,
 * and the KV-cache path. Every numerical step is a call into the backend
 * ops table; this file only sequences them and owns the buffers.
 */
#include "model.h"

#include "base.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* =================================================================== rope */

int sl_rope_tables(const sl_hf_config *c, int max_pos, float *cos_t, float *sin_t)
{
    int hd = c->head_dim, half = hd / 2;
    if (hd <= 0 || hd % 2 || !(c->rope_theta > 0.0) || max_pos <= 0) return SL_EINVAL;
    double *inv = malloc(sizeof(double) * (size_t)half);
    if (!inv) return SL_ENOMEM;
    for (int i = 0; i < half; i++) {
        /* transformers: 1 / theta ** (arange(0, dim, 2) / dim), in float32 */
        float f = (float)(1.0 / pow(c->rope_theta, (double)(2 * i) / (double)hd));
        double x = f;
        if (c->rope_type == SL_ROPE_LINEAR) {
            x = (float)(x / c->rope_factor);
        } else if (c->rope_type == SL_ROPE_LLAMA3) {
            double factor = c->rope_factor, lo = c->rope_low_freq_factor,
                   hi = c->rope_high_freq_factor, old = c->rope_original_max_pos;
            double low_wl = old / lo, high_wl = old / hi;
            double wl = 2.0 * M_PI / x;
            if (wl > low_wl) {
                x = x / factor;
            } else if (wl >= high_wl) {
                double smooth = (old / wl - lo) / (hi - lo);
                x = (1.0 - smooth) * x / factor + smooth * x;
            }
            x = (float)x;
        }
        inv[i] = x;
    }
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < half; i++) {
            float ang = (float)p * (float)inv[i]; /* float32 product, as torch */
            cos_t[(size_t)p * half + i] = cosf(ang);
            sin_t[(size_t)p * half + i] = sinf(ang);
        }
    free(inv);
    return SL_OK;
}

/* ================================================================ layout */

/* Walk every tensor in layout order: point p's fields into base and, when
 * tab is not NULL, record names. Returns the float count. */
static size_t layout(const sl_hf_config *c, float *base, sl_model_params *p,
                     sl_model_tensor *tab, int *n_tab)
{
    size_t off = 0;
    int n = 0;
    int64_t C = c->hidden_size, F = c->intermediate_size, V = c->vocab_size, HD = c->head_dim;
    int64_t QD = (int64_t)c->num_attention_heads * HD, KD = (int64_t)c->num_key_value_heads * HD;
#define T_(field, nm, d0, d1)                                                                  \
    do {                                                                                       \
        int64_t s0_ = (d0), s1_ = (d1);                                                        \
        size_t ne_ = (size_t)(s0_ * (s1_ > 0 ? s1_ : 1));                                     \
        if (base) (field) = base + off;                                                        \
        if (tab) {                                                                             \
            sl_model_tensor *t_ = &tab[n];                                                     \
            snprintf(t_->name, sizeof(t_->name), "%s", nm);                                    \
            t_->ndim = s1_ > 0 ? 2 : 1;                                                        \
            t_->shape[0] = s0_;                                                                \
            t_->shape[1] = s1_ > 0 ? s1_ : 0;                                                  \
            t_->offset = off;                                                                  \
            t_->numel = ne_;                                                                   \
            t_->no_decay = s1_ <= 0;                                                           \
        }                                                                                      \
        n++;                                                                                   \
        off += ne_;                                                                            \
    } while (0)
    char nm[96];
    T_(p->embed, "model.embed_tokens.weight", V, C);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        sl_layer_params *L = p ? &p->layer[l] : NULL;
        sl_layer_params dummy;
        if (!L) L = &dummy;
#define NAME(s) (snprintf(nm, sizeof(nm), "model.layers.%d.%s", l, s), nm)
        T_(L->attn_norm, NAME("input_layernorm.weight"), C, 0);
        T_(L->wq, NAME("self_attn.q_proj.weight"), QD, C);
        if (c->qkv_bias) T_(L->bq, NAME("self_attn.q_proj.bias"), QD, 0);
        T_(L->wk, NAME("self_attn.k_proj.weight"), KD, C);
        if (c->qkv_bias) T_(L->bk, NAME("self_attn.k_proj.bias"), KD, 0);
        T_(L->wv, NAME("self_attn.v_proj.weight"), KD, C);
        if (c->qkv_bias) T_(L->bv, NAME("self_attn.v_proj.bias"), KD, 0);
        if (c->qk_norm) {
            T_(L->q_norm, NAME("self_attn.q_norm.weight"), HD, 0);
            T_(L->k_norm, NAME("self_attn.k_norm.weight"), HD, 0);
        }
        T_(L->wo, NAME("self_attn.o_proj.weight"), C, QD);
        if (c->o_bias) T_(L->bo, NAME("self_attn.o_proj.bias"), C, 0);
        T_(L->mlp_norm, NAME("post_attention_layernorm.weight"), C, 0);
        T_(L->w_gate, NAME("mlp.gate_proj.weight"), F, C);
        T_(L->w_up, NAME("mlp.up_proj.weight"), F, C);
        T_(L->w_down, NAME("mlp.down_proj.weight"), C, F);
#undef NAME
    }
    T_(p->final_norm, "model.norm.weight", C, 0);
    if (!c->tie_word_embeddings) {
        T_(p->lm_head, "lm_head.weight", V, C);
    } else if (base) {
        p->lm_head = p->embed;
    }
#undef T_
    if (n_tab) *n_tab = n;
    return off;
}

/* ========================================================== construction */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s) { return ((splitmix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

static int init_params(sl_model *m, uint64_t seed)
{
    float *host = malloc(sizeof(float) * m->n_params);
    if (!host) return SL_ENOMEM;
    uint64_t st = seed ^ 0x5eedf00dull;
    for (int i = 0; i < m->n_tensors; i++) {
        const sl_model_tensor *t = &m->tensors[i];
        float *d = host + t->offset;
        if (t->ndim == 2) {
            for (size_t j = 0; j < t->numel; j++) {
                double u1 = unif(&st), u2 = unif(&st);
                d[j] = (float)(0.02 * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
            }
        } else {
            float v = strstr(t->name, "norm") ? 1.0f : 0.0f;
            for (size_t j = 0; j < t->numel; j++) d[j] = v;
        }
    }
    m->ops->copy_in(m->params_mem, host, sizeof(float) * m->n_params);
    free(host);
    return SL_OK;
}

void sl_model_free(sl_model *m)
{
    if (!m) return;
    const sl_ops *o = m->ops;
    if (o) {
        o->free(m->params_mem);
        o->free(m->grads_mem);
        o->free(m->rope_cos);
        o->free(m->rope_sin);
        o->free(m->acts_mem);
        o->free(m->bwd_mem);
        o->free(m->idx_mem);
        o->free(m->logits_rows);
        o->free(m->head_scratch);
    }
    free(m->w.layer);
    free(m->g.layer);
    free(m->acts);
    free(m->tensors);
    free(m->h_targets);
    sl_hf_config_fini(&m->cfg);
    free(m);
}

/* Carve n floats from *cur. */
static float *carve(float **cur, size_t n)
{
    float *p = *cur;
    *cur += n;
    return p;
}

static int model_create(const sl_hf_config *cfg, const sl_ops *ops, int max_tokens, int do_init,
                        uint64_t seed, sl_model **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc = sl_hf_config_validate(cfg, err, errlen);
    if (rc) return rc;
    if (!ops) return fail(err, errlen, SL_EINVAL, "model: no backend ops");
    if (max_tokens < 1 || max_tokens > (1 << 24))
        return fail(err, errlen, SL_EINVAL, "model: max_tokens %d out of range", max_tokens);
    sl_model *m = calloc(1, sizeof(*m));
    if (!m) return fail(err, errlen, SL_ENOMEM, "model: out of memory");
    m->ops = ops;
    m->cfg = *cfg;
    m->cfg.raw_json = NULL;
    if (cfg->raw_json && !(m->cfg.raw_json = strdup(cfg->raw_json))) goto nomem;
    m->max_tokens = max_tokens;
    const sl_hf_config *c = &m->cfg;
    int L = c->num_hidden_layers;
    size_t T = (size_t)max_tokens, C = (size_t)c->hidden_size, F = (size_t)c->intermediate_size;
    size_t NH = (size_t)c->num_attention_heads, NKV = (size_t)c->num_key_value_heads;
    size_t HD = (size_t)c->head_dim, QD = NH * HD, KD = NKV * HD, V = (size_t)c->vocab_size;

    /* parameters, gradients, name table */
    m->w.layer = calloc((size_t)L, sizeof(sl_layer_params));
    m->g.layer = calloc((size_t)L, sizeof(sl_layer_params));
    m->acts = calloc((size_t)L, sizeof(sl_layer_acts));
    m->tensors = calloc((size_t)L * 16 + 4, sizeof(sl_model_tensor));
    m->h_targets = malloc(sizeof(int32_t) * T);
    if (!m->w.layer || !m->g.layer || !m->acts || !m->tensors || !m->h_targets) goto nomem;
    m->n_params = layout(c, NULL, NULL, m->tensors, &m->n_tensors);
    m->params_mem = ops->alloc(sizeof(float) * m->n_params);
    m->grads_mem = ops->alloc(sizeof(float) * m->n_params);
    if (!m->params_mem || !m->grads_mem) goto nomem;
    layout(c, m->params_mem, &m->w, NULL, NULL);
    layout(c, m->grads_mem, &m->g, NULL, NULL);

    /* rope */
    size_t rope_n = (size_t)c->max_position_embeddings * (HD / 2);
    m->rope_cos = ops->alloc(sizeof(float) * rope_n);
    m->rope_sin = ops->alloc(sizeof(float) * rope_n);
    float *hc = malloc(sizeof(float) * rope_n), *hs = malloc(sizeof(float) * rope_n);
    if (!m->rope_cos || !m->rope_sin || !hc || !hs ||
        sl_rope_tables(c, c->max_position_embeddings, hc, hs) != SL_OK) {
        free(hc);
        free(hs);
        goto nomem;
    }
    ops->copy_in(m->rope_cos, hc, sizeof(float) * rope_n);
    ops->copy_in(m->rope_sin, hs, sizeof(float) * rope_n);
    free(hc);
    free(hs);

    /* activations */
    size_t per_layer = T * (C * 4 + QD * 2 + KD * 2 + F * 3 + NH + 2);
    if (c->qk_norm) per_layer += T * (QD + KD + NH + NKV);
    size_t acts_n = (size_t)(L + 1) * T * C + (size_t)L * per_layer + T * (C + 5);
    m->acts_mem = ops->alloc(sizeof(float) * acts_n);
    m->head_scratch = ops->alloc(sizeof(float) * SL_LMHEAD_SCRATCH);
    if (!m->acts_mem || !m->head_scratch) {
        fail(err, errlen, SL_ENOMEM, "model: cannot allocate %.1f MiB of activations",
             (double)acts_n * 4 / 1048576.0);
        sl_model_free(m);
        return SL_ENOMEM;
    }
    float *cur = m->acts_mem;
    m->resid = carve(&cur, (size_t)(L + 1) * T * C);
    for (int l = 0; l < L; l++) {
        sl_layer_acts *a = &m->acts[l];
        a->ln1 = carve(&cur, T * C);
        a->rstd1 = carve(&cur, T);
        if (c->qk_norm) {
            a->q_pre = carve(&cur, T * QD);
            a->q_rstd = carve(&cur, T * NH);
            a->k_pre = carve(&cur, T * KD);
            a->k_rstd = carve(&cur, T * NKV);
        }
        a->q = carve(&cur, T * QD);
        a->k = carve(&cur, T * KD);
        a->v = carve(&cur, T * KD);
        a->att = carve(&cur, T * QD);
        a->lse = carve(&cur, T * NH);
        a->res_mid = carve(&cur, T * C);
        a->ln2 = carve(&cur, T * C);
        a->rstd2 = carve(&cur, T);
        a->gate = carve(&cur, T * F);
        a->up = carve(&cur, T * F);
        a->act = carve(&cur, T * F);
    }
    m->ln_f = carve(&cur, T * C);
    m->rstd_f = carve(&cur, T);
    m->head_lse = carve(&cur, T);
    m->logprob = carve(&cur, T);
    m->entropy = carve(&cur, T);

    size_t bwd_n = T * (2 * C + 3 * QD + 3 * KD + 3 * F + 2);
    m->bwd_mem = ops->alloc(sizeof(float) * bwd_n);
    m->idx_mem = ops->alloc(sizeof(int32_t) * (6 * T + 2));
    m->logits_rows = ops->alloc(sizeof(float) * SL_MODEL_LOGIT_ROWS * V);
    if (!m->bwd_mem || !m->idx_mem || !m->logits_rows) goto nomem;
    cur = m->bwd_mem;
    m->dres = carve(&cur, T * C);
    m->dln = carve(&cur, T * C);
    m->dq = carve(&cur, T * QD);
    m->dq2 = carve(&cur, T * QD);
    m->datt = carve(&cur, T * QD);
    m->dk = carve(&cur, T * KD);
    m->dk2 = carve(&cur, T * KD);
    m->dv = carve(&cur, T * KD);
    m->dgate = carve(&cur, T * F);
    m->dup = carve(&cur, T * F);
    m->dact = carve(&cur, T * F);
    m->dlogprob = carve(&cur, T);
    m->dentropy = carve(&cur, T);
    m->tokens = m->idx_mem;
    m->targets = m->tokens + T;
    m->pos = m->targets + T;
    m->slots = m->pos + T;
    m->kv_len = m->slots + T;
    m->cu = m->kv_len + T;

    if (do_init && (rc = init_params(m, seed)) != SL_OK) goto nomem;
    *out = m;
    return SL_OK;
nomem:
    fail(err, errlen, SL_ENOMEM, "model: out of memory (%zu parameters, max_tokens %d)",
         m->n_params, max_tokens);
    sl_model_free(m);
    return SL_ENOMEM;
}

int sl_model_new(const sl_hf_config *cfg, const sl_ops *ops, int max_tokens, uint64_t seed,
                 sl_model **out, char *err, size_t errlen)
{
    return model_create(cfg, ops, max_tokens, 1, seed, out, err, errlen);
}

const sl_model_tensor *sl_model_find_tensor(const sl_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

void sl_model_zero_grad(sl_model *m)
{
    m->ops->zero(m->grads_mem, sizeof(float) * m->n_params);
}

/* ============================================================ HF folders */

int sl_model_load_hf(const char *dir, const sl_ops *ops, int max_tokens, sl_model **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    sl_hf_config cfg;
    int rc = sl_hf_config_load(&cfg, dir, err, errlen);
    if (rc) return rc;
    sl_model *m = NULL;
    sl_safetensors *st = NULL;
    rc = sl_safetensors_open(dir, &st, err, errlen);
    if (rc) {
        sl_hf_config_fini(&cfg);
        return rc;
    }
    /* check every tensor's presence and shape before allocating anything,
     * so that a config.json claiming a huge model costs nothing */
    int n_tab = 0;
    layout(&cfg, NULL, NULL, NULL, &n_tab);
    sl_model_tensor *tab = calloc((size_t)n_tab, sizeof(*tab));
    if (!tab) {
        rc = fail(err, errlen, SL_ENOMEM, "out of memory");
    } else {
        layout(&cfg, NULL, NULL, tab, NULL);
        for (int i = 0; i < n_tab && rc == SL_OK; i++) {
            const sl_st_tensor *t = sl_safetensors_find(st, tab[i].name);
            if (!t) {
                rc = fail(err, errlen, SL_ENOENT, "tensor '%s' not found in %s", tab[i].name, dir);
            } else if (t->ndim != tab[i].ndim || t->shape[0] != tab[i].shape[0] ||
                       (t->ndim == 2 && t->shape[1] != tab[i].shape[1])) {
                char shp[64];
                if (tab[i].ndim == 2)
                    snprintf(shp, sizeof(shp), "[%lld, %lld]", (long long)tab[i].shape[0],
                             (long long)tab[i].shape[1]);
                else
                    snprintf(shp, sizeof(shp), "[%lld]", (long long)tab[i].shape[0]);
                rc = fail(err, errlen, SL_EINVAL,
                          "tensor '%s' in %s: shape does not match config.json (expected %s)",
                          tab[i].name, dir, shp);
            }
        }
        free(tab);
    }
    if (rc == SL_OK) rc = model_create(&cfg, ops, max_tokens, 0, 0, &m, err, errlen);
    sl_hf_config_fini(&cfg);
    if (rc) goto fail;
    int on_host = ops == sl_ops_cpu();
    float *tmp = NULL;
    uint64_t bytes_done = 0, bytes_all = (uint64_t)m->n_params * sizeof(float);
    sl_progress_report("loading weights", 0, bytes_all);
    for (int i = 0; i < m->n_tensors && rc == SL_OK; i++) {
        const sl_model_tensor *t = &m->tensors[i];
        float *dst = m->params_mem + t->offset;
        if (!on_host) {
            free(tmp);
            if (!(tmp = malloc(sizeof(float) * t->numel))) {
                rc = fail(err, errlen, SL_ENOMEM, "out of memory");
                break;
            }
            dst = tmp;
        }
        rc = sl_safetensors_read_f32(st, t->name, t->shape, t->ndim, dst, err, errlen);
        if (rc == SL_OK && !on_host) ops->copy_in(m->params_mem + t->offset, tmp, sizeof(float) * t->numel);
        bytes_done += (uint64_t)t->numel * sizeof(float);
        if (rc == SL_OK) sl_progress_report("loading weights", bytes_done, bytes_all);
    }
    free(tmp);
    if (rc) goto fail;
    size_t extra = 0;
    const char *first_extra = NULL;
    for (size_t i = 0; i < sl_safetensors_count(st); i++) {
        const sl_st_tensor *t = sl_safetensors_at(st, i);
        if (!sl_model_find_tensor(m, t->name)) {
            if (!first_extra) first_extra = t->name;
            extra++;
        }
    }
    if (extra && !(extra == 1 && m->cfg.tie_word_embeddings &&
                   strcmp(first_extra, "lm_head.weight") == 0))
        sl_warn("%s: %zu tensor(s) not used by the model (first: %s)", dir, extra, first_extra);
    sl_safetensors_close(st);
    *out = m;
    return SL_OK;
fail:
    sl_safetensors_close(st);
    sl_model_free(m);
    return rc;
}

int sl_model_save_hf(const sl_model *m, const char *dir, sl_dtype dtype, char *err,
                     size_t errlen)
{
    if (dtype != SL_DTYPE_F32 && dtype != SL_DTYPE_BF16)
        return fail(err, errlen, SL_EINVAL, "save: dtype must be F32 or BF16");
    sl_st_save_tensor *ts = calloc((size_t)m->n_tensors, sizeof(*ts));
    float *host = NULL;
    const float *src = m->params_mem;
    if (!ts) return fail(err, errlen, SL_ENOMEM, "out of memory");
    if (m->ops != sl_ops_cpu()) {
        host = malloc(sizeof(float) * m->n_params);
        if (!host) {
            free(ts);
            return fail(err, errlen, SL_ENOMEM, "out of memory");
        }
        m->ops->copy_out(host, m->params_mem, sizeof(float) * m->n_params);
        src = host;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const sl_model_tensor *t = &m->tensors[i];
        ts[i].name = t->name;
        ts[i].ndim = t->ndim;
        ts[i].shape[0] = t->shape[0];
        ts[i].shape[1] = t->shape[1];
        ts[i].data = src + t->offset;
    }
    int rc = sl_safetensors_save(dir, ts, (size_t)m->n_tensors, dtype, 0, err, errlen);
    free(ts);
    free(host);
    if (rc) return rc;
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/config.json", dir) >= sizeof(path))
        return fail(err, errlen, SL_EINVAL, "save: path too long");
    return sl_hf_config_save(&m->cfg, path, dtype == SL_DTYPE_BF16 ? "bfloat16" : "float32",
                             err, errlen);
}

/* ================================================================ batches */

/* Check a packed batch; fills host positions. Logs why it is refused. */
static int check_batch(const sl_model *m, const int32_t *tokens, const int32_t *cu, int n_seq,
                       const int32_t *targets, int32_t *pos)
{
    const sl_hf_config *c = &m->cfg;
    if (!tokens || !cu || n_seq < 1 || n_seq > m->max_tokens || cu[0] != 0) {
        sl_error("model: bad batch (n_seq %d, cu_seqlens[0] must be 0)", n_seq);
        return SL_EINVAL;
    }
    for (int s = 0; s < n_seq; s++) {
        int len = cu[s + 1] - cu[s];
        if (cu[s + 1] <= cu[s] || cu[s + 1] > m->max_tokens) {
            sl_error("model: bad cu_seqlens at %d (%d -> %d, max_tokens %d)", s, cu[s],
                     cu[s + 1], m->max_tokens);
            return SL_EINVAL;
        }
        if (len > c->max_position_embeddings) {
            sl_error("model: sequence %d has %d tokens > max_position_embeddings %d", s, len,
                     c->max_position_embeddings);
            return SL_ERANGE;
        }
    }
    /* only now is every offset known to be in [0, T] */
    for (int s = 0; s < n_seq; s++)
        for (int i = 0; i < cu[s + 1] - cu[s]; i++) pos[cu[s] + i] = i;
    int T = cu[n_seq];
    for (int t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size) {
            sl_error("model: token %d at %d out of vocabulary (%d)", tokens[t], t, c->vocab_size);
            return SL_EINVAL;
        }
        if (targets && (targets[t] < -1 || targets[t] >= c->vocab_size)) {
            sl_error("model: target %d at %d out of vocabulary", targets[t], t);
            return SL_EINVAL;
        }
    }
    return SL_OK;
}

/* ================================================================ forward */

#define ACT_AT(base, l, row) ((base) + ((size_t)(l) * m->max_tokens) * (row))

/* The layers over T tokens whose tokens/pos/cu (and for the cached path
 * slots/kv_len) are in backend memory; leaves ln_f filled. With a cache,
 * K/V are appended and attention reads the cache. */
static void forward_layers(sl_model *m, int T, int n_seq, sl_kv_cache *kc)
{
    const sl_ops *o = m->ops;
    const sl_hf_config *c = &m->cfg;
    int C = c->hidden_size, F = c->intermediate_size, NH = c->num_attention_heads;
    int NKV = c->num_key_value_heads, HD = c->head_dim, QD = NH * HD, KD = NKV * HD;
    float eps = (float)c->rms_norm_eps, scale = 1.0f / sqrtf((float)HD);

    o->embedding_fwd(m->resid, m->w.embed, m->tokens, T, C);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const sl_layer_params *w = &m->w.layer[l];
        sl_layer_acts *a = &m->acts[l];
        float *x = ACT_AT(m->resid, l, C), *xn = ACT_AT(m->resid, l + 1, C);
        o->rmsnorm_fwd(a->ln1, a->rstd1, x, w->attn_norm, T, C, eps);
        float *qd = c->qk_norm ? a->q_pre : a->q, *kd = c->qk_norm ? a->k_pre : a->k;
        o->matmul(qd, a->ln1, w->wq, T, QD, C, 0, 1, 1.0f, 0);
        o->matmul(kd, a->ln1, w->wk, T, KD, C, 0, 1, 1.0f, 0);
        o->matmul(a->v, a->ln1, w->wv, T, KD, C, 0, 1, 1.0f, 0);
        if (c->qkv_bias) {
            o->bias_add(qd, w->bq, T, QD);
            o->bias_add(kd, w->bk, T, KD);
            o->bias_add(a->v, w->bv, T, KD);
        }
        if (c->qk_norm) {
            o->rmsnorm_fwd(a->q, a->q_rstd, a->q_pre, w->q_norm, T * NH, HD, eps);
            o->rmsnorm_fwd(a->k, a->k_rstd, a->k_pre, w->k_norm, T * NKV, HD, eps);
        }
        o->rope_fwd(a->q, m->pos, m->rope_cos, m->rope_sin, T, NH, HD);
        o->rope_fwd(a->k, m->pos, m->rope_cos, m->rope_sin, T, NKV, HD);
        if (kc) {
            size_t layer_off = (size_t)l * kc->n_slots * kc->max_len * KD;
            /* host arrays staged by cached_forward: h_targets = slot,
             * cache_pos = position of each new token */
            for (int t = 0; t < T; t++) {
                size_t dst =
                    layer_off + ((size_t)m->h_targets[t] * kc->max_len + m->cache_pos[t]) * KD;
                o->copy(kc->k + dst, a->k + (size_t)t * KD, sizeof(float) * KD);
                o->copy(kc->v + dst, a->v + (size_t)t * KD, sizeof(float) * KD);
            }
            o->attention_cached_fwd(a->att, a->q, kc->k + layer_off, kc->v + layer_off, m->slots,
                                    m->cu, m->kv_len, n_seq, kc->max_len, NH, NKV, HD, scale);
        } else {
            o->attention_fwd(a->att, a->lse, a->q, a->k, a->v, m->cu, n_seq, NH, NKV, HD, scale);
        }
        o->matmul(a->res_mid, a->att, w->wo, T, C, QD, 0, 1, 1.0f, 0);
        if (c->o_bias) o->bias_add(a->res_mid, w->bo, T, C);
        o->add_inplace(a->res_mid, x, (size_t)T * C);
        o->rmsnorm_fwd(a->ln2, a->rstd2, a->res_mid, w->mlp_norm, T, C, eps);
        o->matmul(a->gate, a->ln2, w->w_gate, T, F, C, 0, 1, 1.0f, 0);
        o->matmul(a->up, a->ln2, w->w_up, T, F, C, 0, 1, 1.0f, 0);
        o->swiglu_fwd(a->act, a->gate, a->up, (size_t)T * F);
        o->matmul(xn, a->act, w->w_down, T, C, F, 0, 1, 1.0f, 0);
        o->add_inplace(xn, a->res_mid, (size_t)T * C);
    }
    o->rmsnorm_fwd(m->ln_f, m->rstd_f, ACT_AT(m->resid, c->num_hidden_layers, C),
                   m->w.final_norm, T, C, eps);
}

/* Stage a packed batch's index arrays into backend memory. */
static int stage_batch(sl_model *m, const int32_t *tokens, const int32_t *cu, int n_seq,
                       const int32_t *targets)
{
    int T = cu && n_seq >= 1 && n_seq <= m->max_tokens ? cu[n_seq] : -1;
    if (T < 1 || T > m->max_tokens) {
        sl_error("model: batch of %d tokens (max_tokens %d)", T, m->max_tokens);
        return SL_EINVAL;
    }
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)T);
    if (!pos) return SL_ENOMEM;
    int rc = check_batch(m, tokens, cu, n_seq, targets, pos);
    if (rc) {
        free(pos);
        return rc;
    }
    for (int s = 0; s < n_seq; s++)
        for (int t = cu[s]; t < cu[s + 1]; t++)
            m->h_targets[t] = targets ? targets[t] : (t + 1 < cu[s + 1] ? tokens[t + 1] : -1);
    const sl_ops *o = m->ops;
    o->copy_in(m->tokens, tokens, sizeof(int32_t) * (size_t)T);
    o->copy_in(m->pos, pos, sizeof(int32_t) * (size_t)T);
    o->copy_in(m->cu, cu, sizeof(int32_t) * (size_t)(n_seq + 1));
    o->copy_in(m->targets, m->h_targets, sizeof(int32_t) * (size_t)T);
    free(pos);
    return SL_OK;
}

int sl_model_forward(sl_model *m, const int32_t *tokens, const int32_t *cu_seqlens, int n_seq,
                     const int32_t *targets, float *logprobs, float *entropy, double *loss)
{
    m->have_fwd = 0;
    int rc = stage_batch(m, tokens, cu_seqlens, n_seq, targets);
    if (rc) return rc;
    int T = cu_seqlens[n_seq];
    const sl_hf_config *c = &m->cfg;
    forward_layers(m, T, n_seq, NULL);
    m->ops->lmhead_logprob_fwd(m->logprob, m->entropy, m->head_lse, m->ln_f, m->w.lm_head,
                               m->targets, T, c->hidden_size, c->vocab_size, m->head_scratch);
    m->T = T;
    m->n_seq = n_seq;
    m->have_fwd = 1;
    float *lp = logprobs ? logprobs : (loss ? malloc(sizeof(float) * (size_t)T) : NULL);
    if (lp) m->ops->copy_out(lp, m->logprob, sizeof(float) * (size_t)T);
    if (entropy) m->ops->copy_out(entropy, m->entropy, sizeof(float) * (size_t)T);
    if (loss) {
        double s = 0.0;
        int n = 0;
        if (lp)
            for (int t = 0; t < T; t++)
                if (m->h_targets[t] >= 0) s -= lp[t], n++;
        *loss = n ? s / n : 0.0;
    }
    if (lp != logprobs) free(lp);
    return SL_OK;
}

/* logits of rows `rows` (n of them, ln_f rows; NULL = 0..n-1) into host out (n, V). */
static void logits_out(sl_model *m, const int32_t *rows, int n, float *out)
{
    const sl_ops *o = m->ops;
    int C = m->cfg.hidden_size, V = m->cfg.vocab_size;
    for (int r0 = 0; r0 < n; r0 += SL_MODEL_LOGIT_ROWS) {
        int nr = n - r0 < SL_MODEL_LOGIT_ROWS ? n - r0 : SL_MODEL_LOGIT_ROWS;
        const float *h = m->ln_f + (size_t)r0 * C;
        if (rows) {
            for (int i = 0; i < nr; i++)
                o->copy(m->dln + (size_t)i * C, m->ln_f + (size_t)rows[r0 + i] * C,
                        sizeof(float) * (size_t)C);
            h = m->dln;
        }
        o->matmul(m->logits_rows, h, m->w.lm_head, nr, V, C, 0, 1, 1.0f, 0);
        o->copy_out(out + (size_t)r0 * V, m->logits_rows, sizeof(float) * (size_t)nr * V);
    }
}

int sl_model_forward_logits(sl_model *m, const int32_t *tokens, const int32_t *cu_seqlens,
                            int n_seq, float *logits)
{
    m->have_fwd = 0;
    if (!logits) return SL_EINVAL;
    int rc = stage_batch(m, tokens, cu_seqlens, n_seq, NULL);
    if (rc) return rc;
    int T = cu_seqlens[n_seq];
    forward_layers(m, T, n_seq, NULL);
    logits_out(m, NULL, T, logits);
    return SL_OK;
}

/* =============================================================== backward */

int sl_model_backward(sl_model *m, const float *dlogprob, const float *dentropy)
{
    if (!m->have_fwd || !dlogprob) {
        sl_error("model: backward without a preceding forward");
        return SL_EINVAL;
    }
    const sl_ops *o = m->ops;
    const sl_hf_config *c = &m->cfg;
    int T = m->T, n_seq = m->n_seq;
    int C = c->hidden_size, F = c->intermediate_size, NH = c->num_attention_heads;
    int NKV = c->num_key_value_heads, HD = c->head_dim, QD = NH * HD, KD = NKV * HD;
    float scale = 1.0f / sqrtf((float)HD);

    o->copy_in(m->dlogprob, dlogprob, sizeof(float) * (size_t)T);
    if (dentropy) o->copy_in(m->dentropy, dentropy, sizeof(float) * (size_t)T);
    o->lmhead_logprob_bwd(m->dln, m->g.lm_head, m->dlogprob, dentropy ? m->dentropy : NULL,
                          m->ln_f, m->w.lm_head, m->targets, m->head_lse, m->entropy, T, C,
                          c->vocab_size, m->head_scratch);
    o->zero(m->dres, sizeof(float) * (size_t)T * C);
    o->rmsnorm_bwd(m->dres, m->g.final_norm, m->dln, ACT_AT(m->resid, c->num_hidden_layers, C),
                   m->w.final_norm, m->rstd_f, T, C);
    for (int l = c->num_hidden_layers - 1; l >= 0; l--) {
        const sl_layer_params *w = &m->w.layer[l];
        sl_layer_params *g = &m->g.layer[l];
        sl_layer_acts *a = &m->acts[l];
        float *x = ACT_AT(m->resid, l, C);
        /* MLP: dres is d(layer output) */
        o->matmul(m->dact, m->dres, w->w_down, T, F, C, 0, 0, 1.0f, 0);
        o->matmul(g->w_down, m->dres, a->act, C, F, T, 1, 0, 1.0f, 1);
        o->swiglu_bwd(m->dgate, m->dup, m->dact, a->gate, a->up, (size_t)T * F);
        o->matmul(m->dln, m->dgate, w->w_gate, T, C, F, 0, 0, 1.0f, 0);
        o->matmul(m->dln, m->dup, w->w_up, T, C, F, 0, 0, 1.0f, 1);
        o->matmul(g->w_gate, m->dgate, a->ln2, F, C, T, 1, 0, 1.0f, 1);
        o->matmul(g->w_up, m->dup, a->ln2, F, C, T, 1, 0, 1.0f, 1);
        o->rmsnorm_bwd(m->dres, g->mlp_norm, m->dln, a->res_mid, w->mlp_norm, a->rstd2, T, C);
        /* attention: dres is now d(res_mid) */
        if (c->o_bias) o->bias_bwd(g->bo, m->dres, T, C);
        o->matmul(m->datt, m->dres, w->wo, T, QD, C, 0, 0, 1.0f, 0);
        o->matmul(g->wo, m->dres, a->att, C, QD, T, 1, 0, 1.0f, 1);
        o->attention_bwd(m->dq, m->dk, m->dv, m->datt, a->q, a->k, a->v, a->att, a->lse, m->cu,
                         n_seq, NH, NKV, HD, scale);
        o->rope_bwd(m->dq, m->pos, m->rope_cos, m->rope_sin, T, NH, HD);
        o->rope_bwd(m->dk, m->pos, m->rope_cos, m->rope_sin, T, NKV, HD);
        float *dqp = m->dq, *dkp = m->dk;
        if (c->qk_norm) {
            o->zero(m->dq2, sizeof(float) * (size_t)T * QD);
            o->zero(m->dk2, sizeof(float) * (size_t)T * KD);
            o->rmsnorm_bwd(m->dq2, g->q_norm, m->dq, a->q_pre, w->q_norm, a->q_rstd, T * NH, HD);
            o->rmsnorm_bwd(m->dk2, g->k_norm, m->dk, a->k_pre, w->k_norm, a->k_rstd, T * NKV,
                           HD);
            dqp = m->dq2;
            dkp = m->dk2;
        }
        if (c->qkv_bias) {
            o->bias_bwd(g->bq, dqp, T, QD);
            o->bias_bwd(g->bk, dkp, T, KD);
            o->bias_bwd(g->bv, m->dv, T, KD);
        }
        o->matmul(m->dln, dqp, w->wq, T, C, QD, 0, 0, 1.0f, 0);
        o->matmul(m->dln, dkp, w->wk, T, C, KD, 0, 0, 1.0f, 1);
        o->matmul(m->dln, m->dv, w->wv, T, C, KD, 0, 0, 1.0f, 1);
        o->matmul(g->wq, dqp, a->ln1, QD, C, T, 1, 0, 1.0f, 1);
        o->matmul(g->wk, dkp, a->ln1, KD, C, T, 1, 0, 1.0f, 1);
        o->matmul(g->wv, m->dv, a->ln1, KD, C, T, 1, 0, 1.0f, 1);
        o->rmsnorm_bwd(m->dres, g->attn_norm, m->dln, x, w->attn_norm, a->rstd1, T, C);
    }
    o->embedding_bwd(m->g.embed, m->dres, m->tokens, T, C);
    return SL_OK;
}

int sl_model_backward_ce(sl_model *m, const float *weights, double *loss_out)
{
    if (!m->have_fwd) {
        sl_error("model: backward without a preceding forward");
        return SL_EINVAL;
    }
    int T = m->T, n = 0;
    float *d = malloc(sizeof(float) * (size_t)T), *lp = malloc(sizeof(float) * (size_t)T);
    if (!d || !lp) {
        free(d);
        free(lp);
        return SL_ENOMEM;
    }
    for (int t = 0; t < T; t++) n += m->h_targets[t] >= 0;
    m->ops->copy_out(lp, m->logprob, sizeof(float) * (size_t)T);
    double loss = 0.0;
    for (int t = 0; t < T; t++) {
        double w = m->h_targets[t] < 0 ? 0.0 : weights ? weights[t] : (n ? 1.0 / n : 0.0);
        d[t] = (float)-w;
        loss -= w * lp[t];
    }
    int rc = sl_model_backward(m, d, NULL);
    if (loss_out) *loss_out = loss;
    free(d);
    free(lp);
    return rc;
}

/* ============================================================== KV cache */

int sl_kv_cache_new(const sl_model *m, int n_slots, int max_len, sl_kv_cache **out)
{
    *out = NULL;
    const sl_hf_config *c = &m->cfg;
    if (n_slots < 1 || n_slots > (1 << 20) || max_len < 1 || max_len > c->max_position_embeddings)
        return SL_EINVAL;
    sl_kv_cache *kc = calloc(1, sizeof(*kc));
    if (!kc) return SL_ENOMEM;
    kc->ops = m->ops;
    kc->n_layers = c->num_hidden_layers;
    kc->n_slots = n_slots;
    kc->max_len = max_len;
    kc->kv_dim = c->num_key_value_heads * c->head_dim;
    double bytes = 4.0 * kc->n_layers * (double)n_slots * max_len * kc->kv_dim;
    if (bytes > 1e12) {
        free(kc);
        return SL_EINVAL;
    }
    size_t n = (size_t)kc->n_layers * n_slots * max_len * kc->kv_dim;
    kc->k = m->ops->alloc(sizeof(float) * n);
    kc->v = m->ops->alloc(sizeof(float) * n);
    kc->len = calloc((size_t)n_slots, sizeof(int32_t));
    if (!kc->k || !kc->v || !kc->len) {
        sl_kv_cache_free(kc);
        return SL_ENOMEM;
    }
    *out = kc;
    return SL_OK;
}

void sl_kv_cache_free(sl_kv_cache *c)
{
    if (!c) return;
    c->ops->free(c->k);
    c->ops->free(c->v);
    free(c->len);
    free(c);
}

void sl_kv_cache_reset(sl_kv_cache *c, int slot)
{
    if (!c) return;
    if (slot < 0) {
        memset(c->len, 0, sizeof(int32_t) * (size_t)c->n_slots);
    } else if (slot < c->n_slots) {
        c->len[slot] = 0;
    }
}

/* n_seq sequences: sequence s appends tokens [cuq[s], cuq[s+1]) to slot
 * slots[s]; writes each sequence's last-token logits (n_seq, V) to out. */
static int cached_forward(sl_model *m, sl_kv_cache *kc, const int32_t *slots, const int32_t *cuq,
                          int n_seq, const int32_t *tokens, float *out)
{
    m->have_fwd = 0;
    const sl_hf_config *c = &m->cfg;
    if (!kc || kc->n_layers != c->num_hidden_layers ||
        kc->kv_dim != c->num_key_value_heads * c->head_dim || !tokens || n_seq < 1)
        return SL_EINVAL;
    int T = cuq[n_seq];
    if (T < 1 || T > m->max_tokens) {
        sl_error("model: %d new tokens > max_tokens %d", T, m->max_tokens);
        return SL_EINVAL;
    }
    for (int s = 0; s < n_seq; s++) {
        if (slots[s] < 0 || slots[s] >= kc->n_slots || cuq[s + 1] <= cuq[s]) return SL_EINVAL;
        for (int r = 0; r < s; r++)
            if (slots[r] == slots[s]) return SL_EINVAL;
        if (kc->len[slots[s]] + (cuq[s + 1] - cuq[s]) > kc->max_len) {
            sl_error("model: cache slot %d full (%d + %d > %d)", slots[s], kc->len[slots[s]],
                     cuq[s + 1] - cuq[s], kc->max_len);
            return SL_ERANGE;
        }
    }
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size) {
            sl_error("model: token %d out of vocabulary", tokens[t]);
            return SL_EINVAL;
        }
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)T), *kvl = malloc(sizeof(int32_t) * (size_t)n_seq);
    int32_t *last = malloc(sizeof(int32_t) * (size_t)n_seq);
    if (!pos || !kvl || !last) {
        free(pos);
        free(kvl);
        free(last);
        return SL_ENOMEM;
    }
    for (int s = 0; s < n_seq; s++) {
        int base = kc->len[slots[s]];
        for (int t = cuq[s]; t < cuq[s + 1]; t++) pos[t] = base + (t - cuq[s]);
        kvl[s] = base + cuq[s + 1] - cuq[s];
        last[s] = cuq[s + 1] - 1;
    }
    const sl_ops *o = m->ops;
    o->copy_in(m->tokens, tokens, sizeof(int32_t) * (size_t)T);
    o->copy_in(m->pos, pos, sizeof(int32_t) * (size_t)T);
    o->copy_in(m->cu, cuq, sizeof(int32_t) * (size_t)(n_seq + 1));
    o->copy_in(m->slots, slots, sizeof(int32_t) * (size_t)n_seq);
    o->copy_in(m->kv_len, kvl, sizeof(int32_t) * (size_t)n_seq);
    /* h_targets (unused outside training) holds each token's slot */
    for (int s = 0; s < n_seq; s++)
        for (int t = cuq[s]; t < cuq[s + 1]; t++) m->h_targets[t] = slots[s];
    m->cache_pos = pos;
    forward_layers(m, T, n_seq, kc);
    m->cache_pos = NULL;
    for (int s = 0; s < n_seq; s++) kc->len[slots[s]] = kvl[s];
    if (out) logits_out(m, last, n_seq, out);
    free(pos);
    free(kvl);
    free(last);
    return SL_OK;
}

int sl_model_prefill(sl_model *m, sl_kv_cache *c, int slot, const int32_t *tokens, int n,
                     float *logits)
{
    if (n < 1) return SL_EINVAL;
    int32_t slots[1] = {slot}, cuq[2] = {0, n};
    return cached_forward(m, c, slots, cuq, 1, tokens, logits);
}

int sl_model_decode(sl_model *m, sl_kv_cache *c, const int32_t *slots, const int32_t *tokens,
                    int n, float *logits)
{
    if (n < 1 || !slots || n > m->max_tokens) return SL_EINVAL;
    int32_t *cuq = malloc(sizeof(int32_t) * (size_t)(n + 1));
    if (!cuq) return SL_ENOMEM;
    for (int i = 0; i <= n; i++) cuq[i] = i;
    int rc = cached_forward(m, c, slots, cuq, n, tokens, logits);
    free(cuq);
    return rc;
}
