/*
 * gpu_model.cu — the mixed-precision GPU transformer (kernels/gpu_model.h):
 * parameter layout (fused q|k|v and gate|up matrices, decayed tensors
 * first), buffers, and the forward / backward / AdamW sequences over the
 * bf16 kernels (bf16_kernels.cu, flash.cu) and cuBLASLt (bf16_gemm.cu).
 *
 * Layout on the device: gpu_layout.cuh (shared with the GPU engine); the
 * weight-decayed matrices come first. A segment table maps it to the host
 * model's layout.
 */
#include <math.h>
#include <string.h>

#ifndef SL_HAVE_CUDA
#define SL_HAVE_CUDA 1
#endif
#include "base.h"
#include "bf16.cuh"
#include "gpu_layout.cuh"
#include "gpu_model.h"

struct sl_gpum {
    int C, F, L, NH, NKV, HD, V, W, tied, qkv_bias, qk_norm, max_tokens, max_pos;
    float eps, scale;
    float logit_scale; /* 1/temperature: alpha of the LM head's GEMMs */
    bf16 *Wref;        /* frozen bf16 snapshot (reference model), or NULL */
    bf16 *Wpol;        /* the policy's Wb while the snapshot is in use */
    bf16 *qk_pre;      /* (L, T, NH+NKV, HD) q/k projections before q/k norm */
    float *qk_rstd;    /* (L, T, NH+NKV) */
    size_t n_params, n_gpu, n_decay;
    float *P, *G, *M, *Vm;
    bf16 *Wb;
    size_t o_embed, o_head, o_nf;
    glayer *ly;
    seg *segs;
    int n_segs;
    float *cos_t, *sin_t;
    int32_t *d_tok, *d_tgt, *d_pos;
    sl_att_tile *d_tiles;
    int n_tiles;
    /* activations */
    float *res, *res_mid, *rstd1, *rstd2, *lse, *rstdf, *hlse, *hlp, *hent;
    bf16 *ln1, *qkv, *att, *ln2, *gu, *act, *lnf, *logits;
    /* backward */
    float *dres, *dln, *dq, *Dbuf, *dkv, *dlp, *dent;
    bf16 *dres_b, *datt, *dqkv, *dact, *dgu;
    double *d_norm;
    /* host state */
    int T, n_seq, have_fwd, step, has_tgt;
    int32_t *h_tgt, *h_pos, *h_cu;
    sl_att_tile *h_tiles;
    float *h_lp, *h_tmp;
    size_t dev_bytes;
    /* SL_GPUM_PROFILE=1: device time per kind of op (events between ops) */
    int prof, n_ev;
    cudaEvent_t ev[2048];
    int ev_cat[2048];
    double prof_ms[SL_GPUM_PROF_N];
    /* data parallelism (sl_gpum_set_bwd_hook, sl_gpum_get_flat) */
    int recompute; /* activation recomputation: one layer of intermediates, rebuilt in backward */
    sl_gpum_bwd_hook hook;
    void *hook_ctx;
    size_t *layer_off;
};

static void mark(sl_gpum *g, int cat)
{
    if (!g->prof || g->n_ev >= 2048) return;
    CUDA_CHECK(cudaEventRecord(g->ev[g->n_ev], sl_bf_stream()));
    g->ev_cat[g->n_ev++] = cat;
}
static void prof_flush(sl_gpum *g)
{
    if (!g->prof || g->n_ev == 0) return;
    CUDA_CHECK(cudaEventSynchronize(g->ev[g->n_ev - 1]));
    for (int i = 0; i + 1 < g->n_ev; i++) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, g->ev[i], g->ev[i + 1]));
        g->prof_ms[g->ev_cat[i]] += ms;
    }
    g->n_ev = 0;
}
enum { P_GEMM, P_ATTN_F, P_ATTN_B, P_NORM, P_HEAD, P_EW, P_OPT, P_END };

static int dmalloc(sl_gpum *g, void **p, size_t bytes)
{
    if (cudaMalloc(p, bytes ? bytes : 16) != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return -1;
    }
    g->dev_bytes += bytes;
    return 0;
}

/* layout building: gpu_layout.cuh, shared with the GPU engine */
static int build_layout(sl_gpum *g, const sl_model *h)
{
    sl_gpu_layout lo;
    if (sl_gpu_layout_build(&lo, h)) return -1;
    g->ly = lo.ly, g->segs = lo.segs, g->n_segs = lo.n_segs;
    g->o_embed = lo.o_embed, g->o_head = lo.o_head, g->o_nf = lo.o_nf;
    g->n_decay = lo.n_decay, g->n_gpu = lo.n_gpu;
    return 0;
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, const char *a)
{
    if (err && errlen) snprintf(err, errlen, fmt, a);
    return rc;
}

extern "C" void sl_gpum_free(sl_gpum *g)
{
    if (!g) return;
    if (g->Wpol) g->Wb = g->Wpol, g->Wpol = NULL; /* Wref is freed once, below */
    /* every device pointer of the struct */
    void *ptrs[] = {g->P, g->G, g->M, g->Vm, g->Wb, g->cos_t, g->sin_t, g->d_tok, g->d_tgt,
                    g->d_pos, g->d_tiles, g->res, g->res_mid, g->rstd1, g->rstd2, g->lse,
                    g->rstdf, g->hlse, g->hlp, g->hent, g->ln1, g->qkv, g->att, g->ln2, g->gu,
                    g->act, g->lnf, g->logits, g->dres, g->dln, g->dq, g->Dbuf, g->dkv, g->dlp, g->dent,
                    g->dres_b, g->datt, g->dqkv, g->dact, g->dgu, g->d_norm, g->Wref,
                    g->qk_pre, g->qk_rstd};
    for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++)
        if (ptrs[i]) cudaFree(ptrs[i]);
    if (g->prof)
        for (int i = 0; i < 2048; i++) cudaEventDestroy(g->ev[i]);
    free(g->ly);
    free(g->layer_off);
    free(g->segs);
    free(g->h_tgt);
    free(g->h_pos);
    free(g->h_cu);
    free(g->h_tiles);
    free(g->h_lp);
    free(g->h_tmp);
    free(g);
}

extern "C" int sl_gpum_new(const sl_model *h, int max_tokens, sl_gpum **out, char *err,
                           size_t errlen)
{
    const char *re = getenv("SL_GPUM_RECOMPUTE"), *pe = getenv("SL_GPUM_PROFILE");
    sl_gpum_opts o = {.recompute = re && *re && strcmp(re, "0") != 0, .profile = pe && *pe == '1'};
    return sl_gpum_new_opts(h, max_tokens, &o, out, err, errlen);
}

extern "C" int sl_gpum_new_opts(const sl_model *h, int max_tokens, const sl_gpum_opts *opts,
                                sl_gpum **out, char *err, size_t errlen)
{
    *out = NULL;
    sl_gpum_opts none = {0, 0};
    if (!opts) opts = &none;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
        cudaGetLastError();
        return fail(err, errlen, SL_EUNSUPPORTED, "%s", "no CUDA device");
    }
    const sl_hf_config *c = &h->cfg;
    if (strcmp(h->ops->name, "cpu") != 0)
        return fail(err, errlen, SL_EINVAL, "%s", "the host model must use the CPU backend");
    if (c->o_bias || (c->qk_norm && c->qkv_bias))
        return fail(err, errlen, SL_EUNSUPPORTED, "model_type %s: o_proj bias, or q/k norm with a q/k/v bias, not supported on the GPU yet", c->model_type);
    if (c->head_dim != 64 && c->head_dim != 128)
        return fail(err, errlen, SL_EUNSUPPORTED, "%s", "head_dim must be 64 or 128 on the GPU");
    if (c->intermediate_size % 8)
        return fail(err, errlen, SL_EUNSUPPORTED, "%s", "intermediate_size must be a multiple of 8 on the GPU");
    if (max_tokens < 1 || max_tokens > (1 << 20))
        return fail(err, errlen, SL_EINVAL, "%s", "max_tokens must be in [1, 2^20]");
    sl_bf_init();
    sl_gpum *g = (sl_gpum *)calloc(1, sizeof(*g));
    if (!g) return fail(err, errlen, SL_ENOMEM, "%s", "out of host memory");
    g->C = c->hidden_size, g->F = c->intermediate_size, g->L = c->num_hidden_layers;
    g->NH = c->num_attention_heads, g->NKV = c->num_key_value_heads, g->HD = c->head_dim;
    g->V = c->vocab_size, g->W = (g->NH + 2 * g->NKV) * g->HD, g->tied = c->tie_word_embeddings;
    g->qkv_bias = c->qkv_bias, g->max_tokens = max_tokens, g->max_pos = c->max_position_embeddings;
    g->qk_norm = c->qk_norm != 0, g->logit_scale = 1.f;
    g->recompute = opts->recompute != 0;
    g->eps = (float)c->rms_norm_eps, g->scale = 1.0f / sqrtf((float)g->HD);
    g->n_params = h->n_params;
    if (build_layout(g, h)) {
        sl_gpum_free(g);
        return fail(err, errlen, SL_ENOMEM, "%s", "out of host memory");
    }
    size_t T = max_tokens, C = g->C, F = g->F, L = g->L, W = g->W, QD = (size_t)g->NH * g->HD;
    size_t HR = SL_GPUM_HEAD_ROWS < T ? SL_GPUM_HEAD_ROWS : T;
    g->h_tgt = (int32_t *)malloc(sizeof(int32_t) * T);
    g->h_pos = (int32_t *)malloc(sizeof(int32_t) * T);
    g->h_cu = (int32_t *)malloc(sizeof(int32_t) * (T + 1));
    g->h_tiles = (sl_att_tile *)malloc(sizeof(sl_att_tile) * (T + 1));
    g->h_lp = (float *)malloc(sizeof(float) * 2 * T);
    if (!g->ly || !g->segs || !g->h_tgt || !g->h_pos || !g->h_cu || !g->h_tiles || !g->h_lp) {
        sl_gpum_free(g);
        return fail(err, errlen, SL_ENOMEM, "%s", "out of host memory");
    }
    size_t NP = g->n_gpu, half = (size_t)g->HD / 2;
    int bad = 0;
#define A_(p, n) bad |= dmalloc(g, (void **)&(p), (n))
    A_(g->P, 4 * NP); A_(g->G, 4 * NP); A_(g->M, 4 * NP); A_(g->Vm, 4 * NP); A_(g->Wb, 2 * NP);
    A_(g->cos_t, 4 * (size_t)g->max_pos * half); A_(g->sin_t, 4 * (size_t)g->max_pos * half);
    A_(g->d_tok, 4 * T); A_(g->d_tgt, 4 * T); A_(g->d_pos, 4 * T);
    A_(g->d_tiles, sizeof(sl_att_tile) * (T + 1));
    /* with recomputation only the layer inputs (res) are kept for every
     * layer; the intermediates below hold one layer (LA = 1), rebuilt by
     * running that layer's forward again in backward */
    size_t LA = g->recompute ? 1 : L;
    A_(g->res, 4 * (L + 1) * T * C); A_(g->res_mid, 4 * LA * T * C);
    A_(g->rstd1, 4 * LA * T); A_(g->rstd2, 4 * LA * T); A_(g->lse, 4 * LA * T * g->NH);
    A_(g->rstdf, 4 * T); A_(g->hlse, 4 * T); A_(g->hlp, 4 * T); A_(g->hent, 4 * T);
    A_(g->ln1, 2 * LA * T * C); A_(g->qkv, 2 * LA * T * W); A_(g->att, 2 * LA * T * QD);
    A_(g->ln2, 2 * LA * T * C); A_(g->gu, 2 * LA * T * 2 * F); A_(g->act, 2 * T * F);
    A_(g->lnf, 2 * T * C); A_(g->logits, 2 * HR * g->V);
    A_(g->dres, 4 * T * C); A_(g->dln, 4 * T * C); A_(g->dq, 4 * T * QD);
    A_(g->Dbuf, 4 * T * g->NH); A_(g->dkv, 4 * 2 * T * g->NKV * g->HD); A_(g->dlp, 4 * T); A_(g->dent, 4 * T);
    A_(g->dres_b, 2 * T * C); A_(g->datt, 2 * T * QD); A_(g->dqkv, 2 * T * W);
    A_(g->dact, 2 * T * F); A_(g->dgu, 2 * T * 2 * F); A_(g->d_norm, 8);
    if (g->qk_norm) {
        size_t nhk = (size_t)g->NH + g->NKV;
        A_(g->qk_pre, 2 * LA * T * nhk * g->HD); A_(g->qk_rstd, 4 * LA * T * nhk);
    }
#undef A_
    g->h_tmp = (float *)calloc(NP, sizeof(float));
    if (bad || !g->h_tmp) {
        size_t need = g->dev_bytes;
        sl_gpum_free(g);
        if (err && errlen) snprintf(err, errlen, "out of device memory (%.2f GiB wanted)", need / 1073741824.0);
        return SL_ENOMEM;
    }
    cudaStream_t s = sl_bf_stream();
    /* parameters */
    for (int i = 0; i < g->n_segs; i++)
        memcpy(g->h_tmp + g->segs[i].gpu, h->params_mem + g->segs[i].host, 4 * g->segs[i].n);
    CUDA_CHECK(cudaMemcpy(g->P, g->h_tmp, 4 * NP, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemsetAsync(g->G, 0, 4 * NP, s));
    CUDA_CHECK(cudaMemsetAsync(g->M, 0, 4 * NP, s));
    CUDA_CHECK(cudaMemsetAsync(g->Vm, 0, 4 * NP, s));
    sl_bf_f32_to_bf16(g->Wb, g->P, NP);
    CUDA_CHECK(cudaMemcpy(g->cos_t, h->rope_cos, 4 * (size_t)g->max_pos * half, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(g->sin_t, h->rope_sin, 4 * (size_t)g->max_pos * half, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaStreamSynchronize(s));
    if (opts->profile) {
        g->prof = 1;
        for (int i = 0; i < 2048; i++) CUDA_CHECK(cudaEventCreate(&g->ev[i]));
    }
    *out = g;
    return SL_OK;
}

extern "C" void sl_gpum_get_info(const sl_gpum *g, sl_gpum_info *info)
{
    info->n_params = g->n_params;
    info->weight_bytes = 2 * g->n_gpu;
    info->device_bytes = g->dev_bytes;
    info->max_tokens = g->max_tokens;
}

extern "C" void *sl_gpum_weights(sl_gpum *g, size_t *bytes)
{
    if (bytes) *bytes = 2 * g->n_gpu;
    return g->Wb;
}

extern "C" int sl_gpum_profile(sl_gpum *g, double *ms, int n)
{
    for (int i = 0; i < n && i < SL_GPUM_PROF_N; i++) ms[i] = g->prof_ms[i], g->prof_ms[i] = 0;
    return g->prof;
}

extern "C" void sl_gpum_sync(sl_gpum *g)
{
    (void)g;
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
}

/* ------------------------------------------------------------- forward */

/* where layer l's intermediates live: their own slot, or the single slot
 * of recomputation */
static size_t act_slot(const sl_gpum *g, int l) { return g->recompute ? 0 : (size_t)l; }

static void layer_fwd(sl_gpum *g, int l)
{
    size_t T = g->T, C = g->C, F = g->F, W = g->W, QD = (size_t)g->NH * g->HD;
    const glayer *y = &g->ly[l];
    size_t a = act_slot(g, l); /* the slot of this layer's intermediates */
    float *x = g->res + l * T * C, *xm = g->res_mid + a * T * C, *xn = g->res + (l + 1) * T * C;
    bf16 *ln1 = g->ln1 + a * T * C, *qkv = g->qkv + a * T * W, *att = g->att + a * T * QD;
    bf16 *ln2 = g->ln2 + a * T * C, *gu = g->gu + a * T * 2 * F;
    mark(g, P_NORM);
    sl_bf_rmsnorm_fwd(ln1, g->rstd1 + a * T, x, g->Wb + y->n1, (int)T, (int)C, g->eps);
    mark(g, P_GEMM);
    sl_bf_gemm(qkv, 0, ln1, g->Wb + y->wqkv, NULL, (int)T, (int)W, (int)C, 0, 1, 1.f, 0.f);
    if (g->qk_norm) {
        size_t nhk = (size_t)g->NH + g->NKV;
        mark(g, P_NORM);
        sl_bf_headnorm_fwd(qkv, g->qk_pre + a * T * nhk * g->HD, g->qk_rstd + a * T * nhk,
                           g->Wb + y->qn, g->Wb + y->kn, (int)T, g->NH, g->NKV, g->HD, g->eps);
    }
    mark(g, P_EW);
    sl_bf_qkv_post_fwd(qkv, g->qkv_bias ? g->Wb + y->bqkv : NULL, g->d_pos, g->cos_t, g->sin_t,
                       (int)T, g->NH, g->NKV, g->HD);
    mark(g, P_ATTN_F);
    sl_bf_attn_fwd(att, g->lse + a * T * g->NH, qkv, qkv + QD, qkv + QD + (size_t)g->NKV * g->HD,
                   (int)W, (int)W, (int)W, g->d_tiles, g->n_tiles, (int)T, g->NH, g->NKV, g->HD,
                   g->scale);
    mark(g, P_GEMM);
    sl_bf_gemm(xm, 1, att, g->Wb + y->wo, x, (int)T, (int)C, (int)QD, 0, 1, 1.f, 1.f);
    mark(g, P_NORM);
    sl_bf_rmsnorm_fwd(ln2, g->rstd2 + a * T, xm, g->Wb + y->n2, (int)T, (int)C, g->eps);
    mark(g, P_GEMM);
    sl_bf_gemm(gu, 0, ln2, g->Wb + y->wgu, NULL, (int)T, (int)(2 * F), (int)C, 0, 1, 1.f, 0.f);
    mark(g, P_EW);
    sl_bf_swiglu_fwd(g->act, gu, (int)T, (int)F);
    mark(g, P_GEMM);
    sl_bf_gemm(xn, 1, g->act, g->Wb + y->wd, xm, (int)T, (int)C, (int)F, 0, 1, 1.f, 1.f);
}

static int prep_batch(sl_gpum *g, const int32_t *tokens, const int32_t *cu, int n_seq,
                      const int32_t *targets)
{
    g->have_fwd = 0;
    if (n_seq < 1 || !cu || cu[0] != 0) return SL_EINVAL;
    for (int s = 0; s < n_seq; s++)
        if (cu[s + 1] <= cu[s] || cu[s + 1] - cu[s] > g->max_pos) return SL_EINVAL;
    int T = cu[n_seq];
    if (T > g->max_tokens) return SL_ERANGE;
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= g->V) return SL_EINVAL;
    int nt = 0, n = 0;
    for (int s = 0; s < n_seq; s++) {
        for (int t = cu[s]; t < cu[s + 1]; t++) {
            g->h_pos[t] = t - cu[s];
            int tg = targets ? targets[t] : (t + 1 < cu[s + 1] ? tokens[t + 1] : -1);
            if (tg >= g->V) return SL_EINVAL;
            g->h_tgt[t] = tg < 0 ? -1 : tg;
            n += tg >= 0;
        }
        for (int r = cu[s]; r < cu[s + 1]; r += SL_ATT_TILE)
            g->h_tiles[nt++] = (sl_att_tile){r, cu[s], cu[s + 1], 0};
    }
    g->T = T, g->n_seq = n_seq, g->n_tiles = nt, g->has_tgt = n;
    cudaStream_t s = sl_bf_stream();
    CUDA_CHECK(cudaMemcpyAsync(g->d_tok, tokens, 4 * (size_t)T, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(g->d_tgt, g->h_tgt, 4 * (size_t)T, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(g->d_pos, g->h_pos, 4 * (size_t)T, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(g->d_tiles, g->h_tiles, sizeof(sl_att_tile) * nt, cudaMemcpyHostToDevice, s));
    return SL_OK;
}

static void fwd_body(sl_gpum *g)
{
    int T = g->T;
    size_t C = g->C;
    mark(g, P_EW);
    sl_bf_embed_fwd(g->res, g->Wb + g->o_embed, g->d_tok, T, (int)C);
    for (int l = 0; l < g->L; l++) layer_fwd(g, l);
    mark(g, P_NORM);
    sl_bf_rmsnorm_fwd(g->lnf, g->rstdf, g->res + (size_t)g->L * T * C, g->Wb + g->o_nf, T, (int)C, g->eps);
}

/* log-probs (and loss) to the host after the head */
static void finish_fwd(sl_gpum *g, float *logprobs, float *entropy, double *loss)
{
    int T = g->T;
    cudaStream_t s = sl_bf_stream();
    mark(g, P_END);
    CUDA_CHECK(cudaMemcpyAsync(g->h_lp, g->hlp, 4 * (size_t)T, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaMemcpyAsync(g->h_lp + T, g->hent, 4 * (size_t)T, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    prof_flush(g);
    double sum = 0;
    for (int t = 0; t < T; t++)
        if (g->h_tgt[t] >= 0) sum -= g->h_lp[t];
    if (logprobs) memcpy(logprobs, g->h_lp, 4 * (size_t)T);
    if (entropy) memcpy(entropy, g->h_lp + T, 4 * (size_t)T);
    if (loss) *loss = g->has_tgt ? sum / g->has_tgt : 0.0;
}

extern "C" int sl_gpum_forward(sl_gpum *g, const int32_t *tokens, const int32_t *cu, int n_seq,
                               const int32_t *targets, float *logprobs, float *entropy,
                               double *loss)
{
    int rc = prep_batch(g, tokens, cu, n_seq, targets);
    if (rc) return rc;
    fwd_body(g);
    int T = g->T;
    size_t C = g->C;
    for (int c0 = 0; c0 < T; c0 += SL_GPUM_HEAD_ROWS) {
        int n = T - c0 < SL_GPUM_HEAD_ROWS ? T - c0 : SL_GPUM_HEAD_ROWS;
        mark(g, P_HEAD);
        sl_bf_gemm(g->logits, 0, g->lnf + (size_t)c0 * C, g->Wb + g->o_head, NULL, n, g->V, (int)C, 0, 1, g->logit_scale, 0.f);
        sl_bf_head_stats(g->hlse + c0, g->hlp + c0, g->hent + c0, g->logits, g->d_tgt + c0, n, g->V);
    }
    finish_fwd(g, logprobs, entropy, loss);
    g->have_fwd = 1;
    return SL_OK;
}

/* ------------------------------------------------------------ backward */

static void layer_bwd(sl_gpum *g, int l)
{
    size_t T = g->T, C = g->C, F = g->F, W = g->W, QD = (size_t)g->NH * g->HD;
    size_t KD = (size_t)g->NKV * g->HD;
    const glayer *y = &g->ly[l];
    size_t a = act_slot(g, l); /* the slot of this layer's intermediates */
    float *x = g->res + l * T * C, *xm = g->res_mid + a * T * C;
    bf16 *ln1 = g->ln1 + a * T * C, *qkv = g->qkv + a * T * W, *att = g->att + a * T * QD;
    bf16 *ln2 = g->ln2 + a * T * C, *gu = g->gu + a * T * 2 * F;
    int iT = (int)T, iC = (int)C, iF = (int)F;
    /* MLP: dres holds d res[l+1] (fp32) and dres_b its bf16 copy */
    mark(g, P_GEMM);
    sl_bf_gemm(g->dact, 0, g->dres_b, g->Wb + y->wd, NULL, iT, iF, iC, 0, 0, 1.f, 0.f);
    mark(g, P_EW);
    sl_bf_swiglu_bwd(g->dgu, g->act, g->dact, gu, iT, iF);
    mark(g, P_GEMM);
    sl_bf_gemm(g->G + y->wd, 1, g->dres_b, g->act, g->G + y->wd, iC, iF, iT, 1, 0, 1.f, 1.f);
    sl_bf_gemm(g->dln, 1, g->dgu, g->Wb + y->wgu, NULL, iT, iC, 2 * iF, 0, 0, 1.f, 0.f);
    sl_bf_gemm(g->G + y->wgu, 1, g->dgu, ln2, g->G + y->wgu, 2 * iF, iC, iT, 1, 0, 1.f, 1.f);
    mark(g, P_NORM);
    sl_bf_rmsnorm_bwd(g->dres, g->dres_b, g->G + y->n2, g->dln, xm, g->Wb + y->n2,
                      g->rstd2 + a * T, iT, iC, 1);
    /* attention */
    mark(g, P_GEMM);
    sl_bf_gemm(g->datt, 0, g->dres_b, g->Wb + y->wo, NULL, iT, (int)QD, iC, 0, 0, 1.f, 0.f);
    sl_bf_gemm(g->G + y->wo, 1, g->dres_b, att, g->G + y->wo, iC, (int)QD, iT, 1, 0, 1.f, 1.f);
    mark(g, P_ATTN_B);
    sl_bf_attn_bwd(g->dq, g->dqkv + QD, g->dqkv + QD + KD, (int)W, (int)W, g->datt, att,
                   g->lse + a * T * g->NH, qkv, qkv + QD, qkv + QD + KD, (int)W, (int)W, (int)W,
                   g->Dbuf, g->dkv, g->d_tiles, g->n_tiles, iT, g->NH, g->NKV, g->HD, g->scale);
    mark(g, P_EW);
    sl_bf_qkv_post_bwd(g->dqkv, g->dq, g->qkv_bias ? g->G + y->bqkv : NULL, g->d_pos, g->cos_t,
                       g->sin_t, iT, g->NH, g->NKV, g->HD);
    if (g->qk_norm) {
        size_t nhk = (size_t)g->NH + g->NKV;
        mark(g, P_NORM);
        sl_bf_headnorm_bwd(g->dqkv, g->qk_pre + a * T * nhk * g->HD, g->qk_rstd + a * T * nhk,
                           g->Wb + y->qn, g->Wb + y->kn, g->G + y->qn, g->G + y->kn, iT, g->NH,
                           g->NKV, g->HD);
    }
    mark(g, P_GEMM);
    sl_bf_gemm(g->dln, 1, g->dqkv, g->Wb + y->wqkv, NULL, iT, iC, (int)W, 0, 0, 1.f, 0.f);
    sl_bf_gemm(g->G + y->wqkv, 1, g->dqkv, ln1, g->G + y->wqkv, (int)W, iC, iT, 1, 0, 1.f, 1.f);
    mark(g, P_NORM);
    sl_bf_rmsnorm_bwd(g->dres, g->dres_b, g->G + y->n1, g->dln, x, g->Wb + y->n1,
                      g->rstd1 + a * T, iT, iC, 1);
}

static void bwd_body(sl_gpum *g)
{
    int T = g->T;
    size_t C = g->C;
    mark(g, P_NORM);
    sl_bf_rmsnorm_bwd(g->dres, g->dres_b, g->G + g->o_nf, g->dln, g->res + (size_t)g->L * T * C,
                      g->Wb + g->o_nf, g->rstdf, T, (int)C, 0);
    for (int l = g->L - 1; l >= 0; l--) {
        if (g->recompute) layer_fwd(g, l); /* rebuilds the slot (and rewrites res[l+1] unchanged) */
        layer_bwd(g, l);
        if (g->hook) g->hook(g->hook_ctx, l);
    }
    mark(g, P_EW);
    sl_bf_embed_bwd(g->G + g->o_embed, g->dres, g->d_tok, T, (int)C);
    mark(g, P_END);
    if (g->hook) g->hook(g->hook_ctx, -1);
}

/* one head chunk's backward from logits already in g->logits */
static void head_chunk_bwd(sl_gpum *g, int c0, int n, int use_dent)
{
    size_t C = g->C;
    const bf16 *h = g->lnf + (size_t)c0 * C;
    sl_bf_head_grad(g->logits, g->hlse + c0, g->hent + c0, g->dlp + c0,
                    use_dent ? g->dent + c0 : NULL, g->d_tgt + c0, n, g->V);
    float a = g->logit_scale; /* z = a h W^T: dh = a dz W, dW = a dz^T h */
    sl_bf_gemm(g->dln + (size_t)c0 * C, 1, g->logits, g->Wb + g->o_head, NULL, n, (int)C, g->V, 0, 0, a, 0.f);
    sl_bf_gemm(g->G + g->o_head, 1, g->logits, h, g->G + g->o_head, g->V, (int)C, n, 1, 0, a, 1.f);
}

extern "C" int sl_gpum_backward(sl_gpum *g, const float *dlogprob, const float *dentropy)
{
    if (!g->have_fwd || g->Wpol) return SL_EINVAL;
    int T = g->T;
    size_t C = g->C;
    cudaStream_t s = sl_bf_stream();
    CUDA_CHECK(cudaMemcpyAsync(g->dlp, dlogprob, 4 * (size_t)T, cudaMemcpyHostToDevice, s));
    if (dentropy) CUDA_CHECK(cudaMemcpyAsync(g->dent, dentropy, 4 * (size_t)T, cudaMemcpyHostToDevice, s));
    for (int c0 = 0; c0 < T; c0 += SL_GPUM_HEAD_ROWS) {
        int n = T - c0 < SL_GPUM_HEAD_ROWS ? T - c0 : SL_GPUM_HEAD_ROWS;
        mark(g, P_HEAD);
        sl_bf_gemm(g->logits, 0, g->lnf + (size_t)c0 * C, g->Wb + g->o_head, NULL, n, g->V, (int)C, 0, 1, g->logit_scale, 0.f);
        head_chunk_bwd(g, c0, n, dentropy != NULL);
    }
    bwd_body(g);
    CUDA_CHECK(cudaStreamSynchronize(s));
    prof_flush(g);
    return SL_OK;
}

extern "C" int sl_gpum_forward_backward_ce(sl_gpum *g, const int32_t *tokens, const int32_t *cu,
                                           int n_seq, const int32_t *targets, float *logprobs,
                                           double *loss)
{
    if (g->Wpol) return SL_EINVAL; /* no training on the reference snapshot */
    int rc = prep_batch(g, tokens, cu, n_seq, targets);
    if (rc) return rc;
    int T = g->T, nt = g->has_tgt;
    size_t C = g->C;
    float *d = g->h_lp + T; /* host scratch */
    for (int t = 0; t < T; t++) d[t] = (g->h_tgt[t] >= 0 && nt) ? -1.0f / nt : 0.f;
    cudaStream_t s = sl_bf_stream();
    CUDA_CHECK(cudaMemcpyAsync(g->dlp, d, 4 * (size_t)T, cudaMemcpyHostToDevice, s));
    fwd_body(g);
    for (int c0 = 0; c0 < T; c0 += SL_GPUM_HEAD_ROWS) {
        int n = T - c0 < SL_GPUM_HEAD_ROWS ? T - c0 : SL_GPUM_HEAD_ROWS;
        mark(g, P_HEAD);
        sl_bf_gemm(g->logits, 0, g->lnf + (size_t)c0 * C, g->Wb + g->o_head, NULL, n, g->V, (int)C, 0, 1, g->logit_scale, 0.f);
        sl_bf_head_stats(g->hlse + c0, g->hlp + c0, g->hent + c0, g->logits, g->d_tgt + c0, n, g->V);
        head_chunk_bwd(g, c0, n, 0);
    }
    bwd_body(g);
    finish_fwd(g, logprobs, NULL, loss);
    g->have_fwd = 0; /* the activations were consumed by the backward */
    return SL_OK;
}

extern "C" int sl_gpum_backward_ce(sl_gpum *g, double *loss_out)
{
    if (!g->have_fwd) return SL_EINVAL;
    int T = g->T, n = g->has_tgt;
    float *d = g->h_lp + T; /* reuse: entropy copy no longer needed */
    double loss = 0;
    for (int t = 0; t < T; t++) {
        d[t] = (g->h_tgt[t] >= 0 && n) ? -1.0f / n : 0.f;
        if (g->h_tgt[t] >= 0 && n) loss -= g->h_lp[t] / n;
    }
    if (loss_out) *loss_out = loss;
    return sl_gpum_backward(g, d, NULL);
}

extern "C" void sl_gpum_zero_grad(sl_gpum *g)
{
    CUDA_CHECK(cudaMemsetAsync(g->G, 0, 4 * g->n_gpu, sl_bf_stream()));
}

extern "C" void sl_gpum_adamw_step(sl_gpum *g, float lr, float b1, float b2, float eps, float wd,
                                   float max_norm, double *grad_norm)
{
    cudaStream_t s = sl_bf_stream();
    if (!g->M) return; /* moments dropped: the data-parallel step (nccl_comm) steps */
    if (max_norm > 0 || grad_norm) {
        CUDA_CHECK(cudaMemsetAsync(g->d_norm, 0, 8, s));
        sl_bf_sumsq(g->d_norm, g->G, g->n_gpu);
        if (max_norm > 0) sl_bf_scale(g->G, g->n_gpu, g->d_norm, max_norm);
        if (grad_norm) {
            double v = 0;
            CUDA_CHECK(cudaMemcpyAsync(&v, g->d_norm, 8, cudaMemcpyDeviceToHost, s));
            CUDA_CHECK(cudaStreamSynchronize(s));
            *grad_norm = sqrt(v);
        }
    }
    g->step++;
    mark(g, P_OPT);
    float bc1 = 1.f - powf(b1, (float)g->step), bc2 = 1.f - powf(b2, (float)g->step);
    sl_bf_adamw(g->P, g->G, g->M, g->Vm, g->Wb, g->n_gpu, g->n_decay, lr, b1, b2, eps, wd, bc1, bc2);
    mark(g, P_END);
    prof_flush(g);
}

static void to_host(sl_gpum *g, const float *src, float *host)
{
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
    CUDA_CHECK(cudaMemcpy(g->h_tmp, src, 4 * g->n_gpu, cudaMemcpyDeviceToHost));
    for (int i = 0; i < g->n_segs; i++)
        memcpy(host + g->segs[i].host, g->h_tmp + g->segs[i].gpu, 4 * g->segs[i].n);
}

extern "C" void sl_gpum_grads_to_host(sl_gpum *g, float *host) { to_host(g, g->G, host); }
extern "C" void sl_gpum_params_to_host(sl_gpum *g, float *host) { to_host(g, g->P, host); }

/* ------------------------------------------------ trainer integration */

extern "C" void sl_gpum_set_logit_scale(sl_gpum *g, float s) { g->logit_scale = s; }

extern "C" double sl_gpum_clip_grad(sl_gpum *g, float max_norm)
{
    cudaStream_t s = sl_bf_stream();
    double v = 0;
    CUDA_CHECK(cudaMemsetAsync(g->d_norm, 0, 8, s));
    sl_bf_sumsq(g->d_norm, g->G, g->n_gpu);
    CUDA_CHECK(cudaMemcpyAsync(&v, g->d_norm, 8, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    double nrm = sqrt(v);
    if (isfinite(nrm) && max_norm > 0) sl_bf_scale(g->G, g->n_gpu, g->d_norm, max_norm);
    return nrm;
}

static void from_host(sl_gpum *g, float *dst, const float *host)
{
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
    memset(g->h_tmp, 0, 4 * g->n_gpu);
    if (host)
        for (int i = 0; i < g->n_segs; i++)
            memcpy(g->h_tmp + g->segs[i].gpu, host + g->segs[i].host, 4 * g->segs[i].n);
    CUDA_CHECK(cudaMemcpy(dst, g->h_tmp, 4 * g->n_gpu, cudaMemcpyHostToDevice));
}

extern "C" void sl_gpum_params_from_host(sl_gpum *g, const float *host)
{
    from_host(g, g->P, host);
    bf16 *wb = g->Wpol ? g->Wpol : g->Wb;
    sl_bf_f32_to_bf16(wb, g->P, g->n_gpu);
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
}

extern "C" void sl_gpum_moments_to_host(sl_gpum *g, float *m, float *v)
{
    if (!g->M) return; /* dropped: ZeRO-1 holds them */
    if (m) to_host(g, g->M, m);
    if (v) to_host(g, g->Vm, v);
}

extern "C" void sl_gpum_moments_from_host(sl_gpum *g, const float *m, const float *v)
{
    if (!g->M) return;
    from_host(g, g->M, m);
    from_host(g, g->Vm, v);
}

extern "C" void sl_gpum_flat_to_host(sl_gpum *g, const float *dev, float *host) { to_host(g, dev, host); }
extern "C" void sl_gpum_flat_from_host(sl_gpum *g, float *dev, const float *host) { from_host(g, dev, host); }

extern "C" int64_t sl_gpum_get_step(const sl_gpum *g) { return g->step; }
extern "C" void sl_gpum_set_step(sl_gpum *g, int64_t step) { g->step = (int)step; }

extern "C" int sl_gpum_ref_snapshot(sl_gpum *g)
{
    if (g->Wpol) return SL_EINVAL;
    if (!g->Wref && dmalloc(g, (void **)&g->Wref, 2 * g->n_gpu)) return SL_ENOMEM;
    CUDA_CHECK(cudaMemcpyAsync(g->Wref, g->Wb, 2 * g->n_gpu, cudaMemcpyDeviceToDevice, sl_bf_stream()));
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
    return SL_OK;
}

extern "C" int sl_gpum_use_ref(sl_gpum *g, int on)
{
    if (on) {
        if (!g->Wref || g->Wpol) return SL_EINVAL;
        g->Wpol = g->Wb, g->Wb = g->Wref;
    } else if (g->Wpol) {
        g->Wb = g->Wpol, g->Wpol = NULL;
    }
    g->have_fwd = 0;
    return SL_OK;
}

/* ------------------------------------------- data parallelism (nccl_comm) */

extern "C" void sl_gpum_get_flat(sl_gpum *g, sl_gpum_flat *f)
{
    if (!g->layer_off) {
        g->layer_off = (size_t *)malloc(sizeof(size_t) * (g->L + 1));
        if (!g->layer_off) sl_cuda_die("malloc", "out of host memory", __func__, __FILE__, __LINE__);
        for (int l = 0; l < g->L; l++) g->layer_off[l] = g->ly[l].wqkv;
        g->layer_off[g->L] = g->n_decay;
    }
    f->P = g->P, f->G = g->G, f->M = g->M, f->V = g->Vm, f->Wb = g->Wb;
    f->n = g->n_gpu, f->n_decay = g->n_decay, f->n_layers = g->L, f->layer_off = g->layer_off;
}

extern "C" void sl_gpum_set_bwd_hook(sl_gpum *g, sl_gpum_bwd_hook fn, void *ctx)
{
    g->hook = fn, g->hook_ctx = ctx;
}

extern "C" void sl_gpum_drop_moments(sl_gpum *g)
{
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
    if (g->M) cudaFree(g->M), g->dev_bytes -= 4 * g->n_gpu;
    if (g->Vm) cudaFree(g->Vm), g->dev_bytes -= 4 * g->n_gpu;
    g->M = g->Vm = NULL;
}

extern "C" void *sl_gpum_stream(sl_gpum *g)
{
    (void)g;
    return (void *)sl_bf_stream();
}
