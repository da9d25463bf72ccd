/*
 * test_ops_cuda.c — every op of the CUDA backend (ops_cuda.h) against its
 * CPU twin (sl_ops_cpu) on fresh random inputs, then whole models (Qwen2
 * tied, Qwen3, Llama 3) on both backends with the same weights: log-probs,
 * entropies, logits, every parameter gradient, and KV-cache prefill/decode
 * logits. Outputs that an op overwrites are poisoned with NaN first, so an
 * unwritten element fails. Each comparison prints its max difference and
 * its error relative to the largest reference value.
 *
 * Exits 77 (skipped) when no CUDA device is usable. With SL_CUDA_BENCH=1 it
 * also times one fp32 training step of a Qwen2.5-0.5B-shaped model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "model.h"
#include "ops.h"
#include "ops_cuda.h"

/* fp32 on both sides: the only differences are summation orders */
#define TOL 1e-3

static const sl_ops *G, *H;
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static double urand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static float *randv(size_t n, double scale)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (float)((urand() * 2.0 - 1.0) * scale);
    return p;
}

/* device copy of a host array */
static void *dev(const void *host, size_t bytes)
{
    void *d = G->alloc(bytes);
    assert_non_null(d);
    G->copy_in(d, host, bytes);
    return d;
}

/* device array of n NaNs */
static float *dev_nan(size_t n)
{
    float *h = malloc(sizeof(float) * n);
    assert_non_null(h);
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    float *d = dev(h, sizeof(float) * n);
    free(h);
    return d;
}

static float *back(const float *d, size_t n)
{
    float *h = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(h);
    G->copy_out(h, d, sizeof(float) * n);
    return h;
}

/* compare n values of device array d against host reference ref */
static double cmp_dev(const char *what, const float *d, const float *ref, size_t n, double tol)
{
    float *got = back(d, n);
    double md = 0.0, mr = 0.0;
    size_t nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) {
            nan++;
            continue;
        }
        double e = fabs((double)got[i] - ref[i]);
        if (e > md) md = e;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    double rel = md / (mr > 1e-30 ? mr : 1e-30);
    printf("    %-44s max diff %.3g  rel %.3g%s\n", what, md, rel, nan ? "  NON-FINITE!" : "");
    free(got);
    assert_int_equal(nan, 0);
    assert_true(rel < tol);
    return rel;
}

/* ------------------------------------------------------------- matmul */

static void matmul_matches_cpu_for_every_transpose_and_accumulate(void **s)
{
    (void)s;
    static const int shapes[][3] = {{67, 45, 130}, {128, 896, 64}, {1, 513, 7}, {300, 2, 1000}};
    for (size_t z = 0; z < sizeof(shapes) / sizeof(shapes[0]); z++) {
        int M = shapes[z][0], N = shapes[z][1], K = shapes[z][2];
        for (int f = 0; f < 8; f++) {
            int ta = f & 1, tb = (f >> 1) & 1, acc = f >> 2;
            float *A = randv((size_t)M * K, 1), *B = randv((size_t)K * N, 1);
            float *C = randv((size_t)M * N, 1);
            float *dA = dev(A, sizeof(float) * M * K), *dB = dev(B, sizeof(float) * K * N);
            float *dC = acc ? dev(C, sizeof(float) * M * N) : dev_nan((size_t)M * N);
            H->matmul(C, A, B, M, N, K, ta, tb, 0.5f, acc);
            G->matmul(dC, dA, dB, M, N, K, ta, tb, 0.5f, acc);
            char what[96];
            snprintf(what, sizeof(what), "matmul %dx%dx%d tA=%d tB=%d acc=%d", M, N, K, ta, tb,
                     acc);
            cmp_dev(what, dC, C, (size_t)M * N, TOL);
            G->free(dA), G->free(dB), G->free(dC);
            free(A), free(B), free(C);
        }
    }
}

/* --------------------------------------------------------- elementwise */

static void elementwise_ops_match_cpu(void **s)
{
    (void)s;
    size_t n = 100003;
    float *y = randv(n, 1), *x = randv(n, 1);
    float *dy = dev(y, sizeof(float) * n), *dx = dev(x, sizeof(float) * n);
    H->add_inplace(y, x, n);
    G->add_inplace(dy, dx, n);
    cmp_dev("add_inplace n=100003", dy, y, n, TOL);

    int T = 37, C = 129;
    float *o = randv((size_t)T * C, 1), *b = randv((size_t)C, 1);
    float *dO = dev(o, sizeof(float) * T * C), *dB = dev(b, sizeof(float) * C);
    H->bias_add(o, b, T, C);
    G->bias_add(dO, dB, T, C);
    cmp_dev("bias_add 37x129", dO, o, (size_t)T * C, TOL);
    G->free(dO), G->free(dB), free(o), free(b);

    T = 1000, C = 300;
    float *g = randv((size_t)T * C, 1), *db = randv((size_t)C, 1);
    float *dG = dev(g, sizeof(float) * T * C), *dDB = dev(db, sizeof(float) * C);
    H->bias_bwd(db, g, T, C);
    G->bias_bwd(dDB, dG, T, C);
    cmp_dev("bias_bwd 1000x300 (+=)", dDB, db, (size_t)C, TOL);
    G->free(dG), G->free(dDB), free(g), free(db);

    /* swiglu, gate up to +-8 (both tails of the sigmoid) */
    float *gate = randv(n, 8), *up = randv(n, 1), *out = randv(n, 1);
    float *dgate_ = randv(n, 1), *dup_ = randv(n, 1);
    float *d_gate = dev(gate, sizeof(float) * n), *d_up = dev(up, sizeof(float) * n);
    float *d_out = dev_nan(n), *d_dout = dev(out, sizeof(float) * n);
    float *d_dg = dev_nan(n), *d_du = dev_nan(n);
    float *ref = malloc(sizeof(float) * n);
    H->swiglu_fwd(ref, gate, up, n);
    G->swiglu_fwd(d_out, d_gate, d_up, n);
    cmp_dev("swiglu_fwd", d_out, ref, n, TOL);
    H->swiglu_bwd(dgate_, dup_, out, gate, up, n);
    G->swiglu_bwd(d_dg, d_du, d_dout, d_gate, d_up, n);
    cmp_dev("swiglu_bwd dgate", d_dg, dgate_, n, TOL);
    cmp_dev("swiglu_bwd dup", d_du, dup_, n, TOL);
    G->free(d_gate), G->free(d_up), G->free(d_out), G->free(d_dout), G->free(d_dg),
        G->free(d_du);
    free(gate), free(up), free(out), free(dgate_), free(dup_), free(ref);
    G->free(dy), G->free(dx), free(y), free(x);
}

static void embedding_lookup_and_scatter_add_match_cpu(void **s)
{
    (void)s;
    int V = 50, C = 77, T = 300; /* T > V: many repeated tokens */
    int32_t tok[300];
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(urand() * V) % V;
    float *wte = randv((size_t)V * C, 1), *out = malloc(sizeof(float) * T * C);
    float *g = randv((size_t)T * C, 1), *dw = randv((size_t)V * C, 1);
    int32_t *dtok = dev(tok, sizeof(tok));
    float *dwte = dev(wte, sizeof(float) * V * C), *dout = dev_nan((size_t)T * C);
    float *dg = dev(g, sizeof(float) * T * C), *ddw = dev(dw, sizeof(float) * V * C);
    H->embedding_fwd(out, wte, tok, T, C);
    G->embedding_fwd(dout, dwte, dtok, T, C);
    cmp_dev("embedding_fwd", dout, out, (size_t)T * C, TOL);
    H->embedding_bwd(dw, g, tok, T, C);
    G->embedding_bwd(ddw, dg, dtok, T, C);
    cmp_dev("embedding_bwd (repeated tokens, +=)", ddw, dw, (size_t)V * C, TOL);
    G->free(dtok), G->free(dwte), G->free(dout), G->free(dg), G->free(ddw);
    free(wte), free(out), free(g), free(dw);
}

static void rmsnorm_forward_and_backward_match_cpu(void **s)
{
    (void)s;
    static const int shapes[][2] = {{37, 896}, {1000, 64}, {5, 7}};
    for (int z = 0; z < 3; z++) {
        int T = shapes[z][0], C = shapes[z][1];
        size_t n = (size_t)T * C;
        float *x = randv(n, 2), *w = randv((size_t)C, 1), *out = malloc(sizeof(float) * n);
        float *rstd = malloc(sizeof(float) * T);
        float *dx = dev(x, sizeof(float) * n), *dw = dev(w, sizeof(float) * C);
        float *dout = dev_nan(n), *drstd = dev_nan((size_t)T);
        H->rmsnorm_fwd(out, rstd, x, w, T, C, 1e-6f);
        G->rmsnorm_fwd(dout, drstd, dx, dw, T, C, 1e-6f);
        char what[96];
        snprintf(what, sizeof(what), "rmsnorm_fwd %dx%d out", T, C);
        cmp_dev(what, dout, out, n, TOL);
        snprintf(what, sizeof(what), "rmsnorm_fwd %dx%d rstd", T, C);
        cmp_dev(what, drstd, rstd, (size_t)T, TOL);
        /* in place (out aliases inp) */
        float *dxi = dev(x, sizeof(float) * n);
        G->rmsnorm_fwd(dxi, drstd, dxi, dw, T, C, 1e-6f);
        snprintf(what, sizeof(what), "rmsnorm_fwd %dx%d in place", T, C);
        cmp_dev(what, dxi, out, n, TOL);
        /* backward: dinp and dw accumulate */
        float *g = randv(n, 1), *din = randv(n, 1), *gw = randv((size_t)C, 1);
        float *dg = dev(g, sizeof(float) * n), *ddin = dev(din, sizeof(float) * n);
        float *dgw = dev(gw, sizeof(float) * C);
        H->rmsnorm_bwd(din, gw, g, x, w, rstd, T, C);
        G->rmsnorm_bwd(ddin, dgw, dg, dx, dw, drstd, T, C);
        snprintf(what, sizeof(what), "rmsnorm_bwd %dx%d dinp (+=)", T, C);
        cmp_dev(what, ddin, din, n, TOL);
        snprintf(what, sizeof(what), "rmsnorm_bwd %dx%d dw (+=)", T, C);
        cmp_dev(what, dgw, gw, (size_t)C, TOL);
        G->free(dx), G->free(dw), G->free(dout), G->free(drstd), G->free(dxi), G->free(dg),
            G->free(ddin), G->free(dgw);
        free(x), free(w), free(out), free(rstd), free(g), free(din), free(gw);
    }
}

static void rope_forward_and_backward_match_cpu(void **s)
{
    (void)s;
    int T = 50, NH = 3, HD = 64, P = 64, half = HD / 2;
    size_t n = (size_t)T * NH * HD;
    int32_t pos[50];
    for (int t = 0; t < T; t++) pos[t] = (int32_t)(urand() * P) % P;
    float *ct = malloc(sizeof(float) * P * half), *st = malloc(sizeof(float) * P * half);
    for (int p = 0; p < P; p++)
        for (int i = 0; i < half; i++) {
            double a = p * pow(10000.0, -2.0 * i / HD);
            ct[p * half + i] = (float)cos(a), st[p * half + i] = (float)sin(a);
        }
    float *x = randv(n, 1);
    float *dx = dev(x, sizeof(float) * n), *dct = dev(ct, sizeof(float) * P * half);
    float *dst = dev(st, sizeof(float) * P * half);
    int32_t *dpos = dev(pos, sizeof(pos));
    H->rope_fwd(x, pos, ct, st, T, NH, HD);
    G->rope_fwd(dx, dpos, dct, dst, T, NH, HD);
    cmp_dev("rope_fwd", dx, x, n, TOL);
    H->rope_bwd(x, pos, ct, st, T, NH, HD);
    G->rope_bwd(dx, dpos, dct, dst, T, NH, HD);
    cmp_dev("rope_bwd", dx, x, n, TOL);
    G->free(dx), G->free(dct), G->free(dst), G->free(dpos);
    free(x), free(ct), free(st);
}

/* ------------------------------------------------------------ attention */

static void attention_case(int hd, int nh, int nkv, const int *lens, int n_seq)
{
    int32_t cu[16];
    cu[0] = 0;
    for (int i = 0; i < n_seq; i++) cu[i + 1] = cu[i] + lens[i];
    int T = cu[n_seq];
    size_t nq = (size_t)T * nh * hd, nk = (size_t)T * nkv * hd;
    float scale = 1.0f / sqrtf((float)hd);
    float *q = randv(nq, 1.5), *k = randv(nk, 1.5), *v = randv(nk, 1), *g = randv(nq, 1);
    float *out = malloc(sizeof(float) * nq), *lse = malloc(sizeof(float) * T * nh);
    float *dq = malloc(sizeof(float) * nq), *dk = malloc(sizeof(float) * nk);
    float *dv = malloc(sizeof(float) * nk);
    float *Q = dev(q, sizeof(float) * nq), *K = dev(k, sizeof(float) * nk);
    float *Vd = dev(v, sizeof(float) * nk), *Gd = dev(g, sizeof(float) * nq);
    int32_t *CU = dev(cu, sizeof(int32_t) * (n_seq + 1));
    float *O = dev_nan(nq), *LSE = dev_nan((size_t)T * nh);
    float *DQ = dev_nan(nq), *DK = dev_nan(nk), *DV = dev_nan(nk);
    H->attention_fwd(out, lse, q, k, v, cu, n_seq, nh, nkv, hd, scale);
    G->attention_fwd(O, LSE, Q, K, Vd, CU, n_seq, nh, nkv, hd, scale);
    char what[96];
    snprintf(what, sizeof(what), "attention_fwd hd=%d h=%d kv=%d T=%d out", hd, nh, nkv, T);
    cmp_dev(what, O, out, nq, TOL);
    snprintf(what, sizeof(what), "attention_fwd hd=%d h=%d kv=%d T=%d lse", hd, nh, nkv, T);
    cmp_dev(what, LSE, lse, (size_t)T * nh, TOL);
    H->attention_bwd(dq, dk, dv, g, q, k, v, out, lse, cu, n_seq, nh, nkv, hd, scale);
    G->attention_bwd(DQ, DK, DV, Gd, Q, K, Vd, O, LSE, CU, n_seq, nh, nkv, hd, scale);
    snprintf(what, sizeof(what), "attention_bwd hd=%d h=%d kv=%d T=%d dq", hd, nh, nkv, T);
    cmp_dev(what, DQ, dq, nq, TOL);
    snprintf(what, sizeof(what), "attention_bwd hd=%d h=%d kv=%d T=%d dk", hd, nh, nkv, T);
    cmp_dev(what, DK, dk, nk, TOL);
    snprintf(what, sizeof(what), "attention_bwd hd=%d h=%d kv=%d T=%d dv", hd, nh, nkv, T);
    cmp_dev(what, DV, dv, nk, TOL);
    G->free(Q), G->free(K), G->free(Vd), G->free(Gd), G->free(CU), G->free(O), G->free(LSE);
    G->free(DQ), G->free(DK), G->free(DV);
    free(q), free(k), free(v), free(g), free(out), free(lse), free(dq), free(dk), free(dv);
}

static void attention_forward_and_backward_match_cpu_on_packed_gqa_batches(void **s)
{
    (void)s;
    static const int l1[] = {1, 33, 100, 64, 7};
    static const int l2[] = {70, 5, 129};
    static const int l3[] = {200};
    static const int l4[] = {40, 33, 1};
    static const int l5[] = {300, 31};
    attention_case(8, 4, 2, l1, 5);
    attention_case(64, 4, 1, l2, 3);
    attention_case(128, 2, 2, l3, 1);
    attention_case(256, 2, 1, l4, 3);
    attention_case(64, 14, 2, l5, 2); /* Qwen2.5-0.5B heads */
}

static void cached_attention_matches_cpu(void **s)
{
    (void)s;
    int n_slots = 4, max_len = 80, nh = 4, nkv = 2, hd = 64, n_seq = 3;
    int32_t slot[3] = {2, 0, 3}, kvl[3] = {50, 80, 1}, cuq[4] = {0, 1, 38, 39};
    int Tq = cuq[n_seq];
    size_t nc = (size_t)n_slots * max_len * nkv * hd, nq = (size_t)Tq * nh * hd;
    float *kc = randv(nc, 1.5), *vc = randv(nc, 1), *q = randv(nq, 1.5);
    float *out = malloc(sizeof(float) * nq);
    float *KC = dev(kc, sizeof(float) * nc), *VC = dev(vc, sizeof(float) * nc);
    float *Q = dev(q, sizeof(float) * nq), *O = dev_nan(nq);
    int32_t *SL = dev(slot, sizeof(slot)), *KL = dev(kvl, sizeof(kvl)), *CQ = dev(cuq, sizeof(cuq));
    float scale = 1.0f / sqrtf((float)hd);
    H->attention_cached_fwd(out, q, kc, vc, slot, cuq, kvl, n_seq, max_len, nh, nkv, hd, scale);
    G->attention_cached_fwd(O, Q, KC, VC, SL, CQ, KL, n_seq, max_len, nh, nkv, hd, scale);
    cmp_dev("attention_cached_fwd (decode + prefill rows)", O, out, nq, TOL);
    G->free(KC), G->free(VC), G->free(Q), G->free(O), G->free(SL), G->free(KL), G->free(CQ);
    free(kc), free(vc), free(q), free(out);
}

/* -------------------------------------------------------------- LM head */

static void lmhead_case(int with_entropy)
{
    int T = 200, C = 64, V = 20000; /* 2 token chunks, 3 vocab chunks (last partial) */
    int32_t tg[200];
    for (int t = 0; t < T; t++) tg[t] = t % 7 == 3 ? -1 : (int32_t)(urand() * V) % V;
    tg[0] = 0, tg[1] = V - 1, tg[2] = SL_LMHEAD_CHUNK_V; /* chunk edges */
    float *h = randv((size_t)T * C, 1), *W = randv((size_t)V * C, 0.5);
    float *lp = malloc(sizeof(float) * T), *ent = malloc(sizeof(float) * T);
    float *lse = malloc(sizeof(float) * T), *scr = malloc(sizeof(float) * SL_LMHEAD_SCRATCH);
    float *Hd = dev(h, sizeof(float) * T * C), *Wd = dev(W, sizeof(float) * V * C);
    int32_t *TG = dev(tg, sizeof(tg));
    float *LP = dev_nan((size_t)T), *ENT = with_entropy ? dev_nan((size_t)T) : NULL;
    float *LSE = dev_nan((size_t)T), *SCR = G->alloc(sizeof(float) * SL_LMHEAD_SCRATCH);
    assert_non_null(SCR);
    H->lmhead_logprob_fwd(lp, with_entropy ? ent : NULL, lse, h, W, tg, T, C, V, scr);
    G->lmhead_logprob_fwd(LP, ENT, LSE, Hd, Wd, TG, T, C, V, SCR);
    cmp_dev("lmhead_fwd logprob", LP, lp, (size_t)T, TOL);
    cmp_dev("lmhead_fwd lse", LSE, lse, (size_t)T, TOL);
    if (with_entropy) cmp_dev("lmhead_fwd entropy", ENT, ent, (size_t)T, TOL);

    float *dlp = randv((size_t)T, 1), *dent = randv((size_t)T, 1);
    float *dh = malloc(sizeof(float) * T * C), *dW = randv((size_t)V * C, 0.1);
    float *DLP = dev(dlp, sizeof(float) * T), *DENT = with_entropy ? dev(dent, sizeof(float) * T) : NULL;
    float *DH = dev_nan((size_t)T * C), *DW = dev(dW, sizeof(float) * V * C);
    H->lmhead_logprob_bwd(dh, dW, dlp, with_entropy ? dent : NULL, h, W, tg, lse,
                          with_entropy ? ent : NULL, T, C, V, scr);
    G->lmhead_logprob_bwd(DH, DW, DLP, DENT, Hd, Wd, TG, LSE, ENT, T, C, V, SCR);
    cmp_dev(with_entropy ? "lmhead_bwd dh (logprob + entropy)" : "lmhead_bwd dh (logprob)", DH,
            dh, (size_t)T * C, TOL);
    cmp_dev(with_entropy ? "lmhead_bwd dW (+=, logprob + entropy)" : "lmhead_bwd dW (+=, logprob)",
            DW, dW, (size_t)V * C, TOL);
    G->free(Hd), G->free(Wd), G->free(TG), G->free(LP), G->free(ENT), G->free(LSE);
    G->free(SCR), G->free(DLP), G->free(DENT), G->free(DH), G->free(DW);
    free(h), free(W), free(lp), free(ent), free(lse), free(scr), free(dlp), free(dent);
    free(dh), free(dW);
}

static void lmhead_logprob_entropy_and_gradients_match_cpu(void **s)
{
    (void)s;
    lmhead_case(1);
    lmhead_case(0);
}

/* ---------------------------------------------------------- whole model */

static void model_config(sl_hf_config *c, sl_arch arch, int tied)
{
    sl_hf_config_defaults(c);
    c->arch = arch;
    snprintf(c->model_type, sizeof(c->model_type), "%s",
             arch == SL_ARCH_QWEN2 ? "qwen2" : arch == SL_ARCH_QWEN3 ? "qwen3" : "llama");
    c->hidden_size = 64;
    c->intermediate_size = 96;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->head_dim = arch == SL_ARCH_QWEN3 ? 32 : 16;
    c->vocab_size = 300;
    c->max_position_embeddings = 256;
    c->rms_norm_eps = 1e-6;
    c->tie_word_embeddings = tied;
    c->qkv_bias = arch != SL_ARCH_LLAMA;
    c->o_bias = arch == SL_ARCH_QWEN3;
    c->qk_norm = arch == SL_ARCH_QWEN3;
    if (arch == SL_ARCH_LLAMA) {
        c->rope_type = SL_ROPE_LLAMA3;
        c->rope_factor = 8.0;
        c->rope_low_freq_factor = 1.0;
        c->rope_high_freq_factor = 4.0;
        c->rope_original_max_pos = 64;
    }
}

/* matrices ~0.3 (larger than init, so attention is not uniform), norms
 * 1 +- 0.2, biases +- 0.1 */
static void perturb(sl_model *m)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const sl_model_tensor *t = &m->tensors[i];
        float *p = m->params_mem + t->offset;
        for (size_t j = 0; j < t->numel; j++) {
            float u = (float)(urand() * 2.0 - 1.0);
            p[j] = t->ndim == 2 ? 0.3f * u : strstr(t->name, "norm") ? 1.0f + 0.2f * u : 0.1f * u;
        }
    }
}

static void model_case(sl_arch arch, int tied, const char *label)
{
    sl_hf_config c;
    model_config(&c, arch, tied);
    char err[256];
    sl_model *mc = NULL, *mg = NULL;
    assert_int_equal(sl_model_new(&c, H, 192, 1, &mc, err, sizeof(err)), 0);
    assert_int_equal(sl_model_new(&c, G, 192, 1, &mg, err, sizeof(err)), 0);
    assert_true(mc->n_params == mg->n_params);
    perturb(mc);
    G->copy_in(mg->params_mem, mc->params_mem, sizeof(float) * mc->n_params);
    int V = c.vocab_size;

    int32_t cu[4] = {0, 50, 51, 150}, tok[150];
    int T = cu[3];
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(urand() * V) % V;
    float lpc[150], lpg[150], enc[150], eng[150];
    double lossc, lossg;
    assert_int_equal(sl_model_forward(mc, tok, cu, 3, NULL, lpc, enc, &lossc), 0);
    assert_int_equal(sl_model_forward(mg, tok, cu, 3, NULL, lpg, eng, &lossg), 0);
    double md = 0, me = 0;
    for (int t = 0; t < T; t++) {
        assert_true(isfinite(lpg[t]) && isfinite(eng[t]));
        if (fabs(lpg[t] - lpc[t]) > md) md = fabs(lpg[t] - lpc[t]);
        if (fabs(eng[t] - enc[t]) > me) me = fabs(eng[t] - enc[t]);
    }
    printf("    %s: logprob max diff %.3g, entropy max diff %.3g, loss %.6f vs %.6f\n", label,
           md, me, lossg, lossc);
    assert_true(md < 1e-3 * (1.0 + fabs(lossc)) && me < 1e-3 * (1.0 + fabs(lossc)));

    /* every parameter gradient, from a loss on logprobs and entropies */
    float dl[150], de[150];
    for (int t = 0; t < T; t++) dl[t] = (float)(urand() - 0.5), de[t] = (float)(urand() - 0.5) * 0.3f;
    sl_model_zero_grad(mc);
    sl_model_zero_grad(mg);
    assert_int_equal(sl_model_backward(mc, dl, de), 0);
    assert_int_equal(sl_model_backward(mg, dl, de), 0);
    float *gg = back(mg->grads_mem, mg->n_params);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < mc->n_tensors; i++) {
        const sl_model_tensor *t = &mc->tensors[i];
        double d = 0, r = 0;
        for (size_t j = 0; j < t->numel; j++) {
            double a = gg[t->offset + j], b = mc->grads_mem[t->offset + j];
            assert_true(isfinite(a));
            if (fabs(a - b) > d) d = fabs(a - b);
            if (fabs(b) > r) r = fabs(b);
        }
        double rel = d / (r > 1e-30 ? r : 1e-30);
        if (rel > worst) worst = rel, worst_name = t->name;
    }
    printf("    %s: %d gradient tensors, worst rel diff %.3g (%s)\n", label, mc->n_tensors, worst,
           worst_name);
    assert_true(worst < TOL);
    free(gg);

    /* logits */
    float *lc = malloc(sizeof(float) * T * V), *lg = malloc(sizeof(float) * T * V);
    assert_int_equal(sl_model_forward_logits(mc, tok, cu, 3, lc), 0);
    assert_int_equal(sl_model_forward_logits(mg, tok, cu, 3, lg), 0);
    double ml = 0, mr = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) {
        assert_true(isfinite(lg[i]));
        if (fabs(lg[i] - lc[i]) > ml) ml = fabs(lg[i] - lc[i]);
        if (fabs(lc[i]) > mr) mr = fabs(lc[i]);
    }
    printf("    %s: logits max diff %.3g (rel %.3g)\n", label, ml, ml / mr);
    assert_true(ml / mr < TOL);

    /* KV cache: prefill two slots, then decode steps on both */
    sl_kv_cache *kcc = NULL, *kcg = NULL;
    assert_int_equal(sl_kv_cache_new(mc, 2, 64, &kcc), 0);
    assert_int_equal(sl_kv_cache_new(mg, 2, 64, &kcg), 0);
    double mk = 0;
    assert_int_equal(sl_model_prefill(mc, kcc, 0, tok, 20, lc), 0);
    assert_int_equal(sl_model_prefill(mg, kcg, 0, tok, 20, lg), 0);
    assert_int_equal(sl_model_prefill(mc, kcc, 1, tok + 60, 7, lc + V), 0);
    assert_int_equal(sl_model_prefill(mg, kcg, 1, tok + 60, 7, lg + V), 0);
    for (int i = 0; i < 2 * V; i++) mk = fmax(mk, fabs(lg[i] - lc[i]));
    for (int step = 0; step < 4; step++) {
        int32_t slots[2] = {0, 1}, tk[2] = {tok[100 + step], tok[120 + step]};
        assert_int_equal(sl_model_decode(mc, kcc, slots, tk, 2, lc), 0);
        assert_int_equal(sl_model_decode(mg, kcg, slots, tk, 2, lg), 0);
        for (int i = 0; i < 2 * V; i++) {
            assert_true(isfinite(lg[i]));
            mk = fmax(mk, fabs(lg[i] - lc[i]));
        }
    }
    printf("    %s: prefill + 4 decode steps, logits max diff %.3g\n", label, mk);
    assert_true(mk / mr < TOL);
    sl_kv_cache_free(kcc);
    sl_kv_cache_free(kcg);
    free(lc), free(lg);
    sl_model_free(mc);
    sl_model_free(mg);
}

static void whole_model_matches_cpu_qwen2_tied(void **s)
{
    (void)s;
    model_case(SL_ARCH_QWEN2, 1, "qwen2 (qkv bias, tied)");
}

static void whole_model_matches_cpu_qwen3(void **s)
{
    (void)s;
    model_case(SL_ARCH_QWEN3, 0, "qwen3 (qk-norm, biases, untied)");
}

static void whole_model_matches_cpu_llama3(void **s)
{
    (void)s;
    model_case(SL_ARCH_LLAMA, 0, "llama (llama3 rope, untied)");
}

/* ---------------------------------------------------------------- bench */

/* One fp32 training step (forward + backward, no optimizer) of a
 * Qwen2.5-0.5B-shaped model on n_seq x len tokens; prints a JSON line. */
static int bench_step(int n_seq, int len)
{
    sl_hf_config c;
    sl_hf_config_defaults(&c);
    c.arch = SL_ARCH_QWEN2;
    snprintf(c.model_type, sizeof(c.model_type), "qwen2");
    c.hidden_size = 896, c.intermediate_size = 4864, c.num_hidden_layers = 24;
    c.num_attention_heads = 14, c.num_key_value_heads = 2, c.head_dim = 64;
    c.vocab_size = 151936, c.max_position_embeddings = 4096, c.tie_word_embeddings = 1;
    c.qkv_bias = 1, c.rope_theta = 1000000.0;
    int T = n_seq * len;
    sl_model *m = NULL;
    char err[256];
    if (sl_model_new(&c, G, T, 1, &m, err, sizeof(err))) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    int32_t *tok = malloc(sizeof(int32_t) * T), *cu = malloc(sizeof(int32_t) * (n_seq + 1));
    float *dl = malloc(sizeof(float) * T);
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(urand() * c.vocab_size) % c.vocab_size;
    for (int s = 0; s <= n_seq; s++) cu[s] = s * len;
    double best_f = 1e30, best_b = 1e30;
    for (int it = 0; it < 4; it++) {
        double t0 = (double)sl_now_ns();
        sl_model_forward(m, tok, cu, n_seq, NULL, NULL, NULL, NULL);
        float one;
        G->copy_out(&one, m->logprob, sizeof(float)); /* synchronizes */
        double t1 = (double)sl_now_ns();
        for (int t = 0; t < T; t++) dl[t] = -1.0f / T;
        sl_model_backward(m, dl, NULL);
        G->copy_out(&one, m->grads_mem, sizeof(float));
        double t2 = (double)sl_now_ns();
        if (it > 0) { /* first is warm-up */
            if (t1 - t0 < best_f) best_f = t1 - t0;
            if (t2 - t1 < best_b) best_b = t2 - t1;
        }
    }
    printf("{\"bench\":\"cuda_fp32_train_step\",\"model\":\"qwen2.5-0.5b-shape\",\"tokens\":%d,"
           "\"fwd_ms\":%.2f,\"bwd_ms\":%.2f,\"tokens_per_s\":%.0f}\n",
           T, best_f / 1e6, best_b / 1e6, T / ((best_f + best_b) / 1e9));
    free(tok), free(cu), free(dl);
    sl_model_free(m);
    return 0;
}

int main(void)
{
    if (!sl_cuda_available() || !(G = sl_ops_cuda())) {
        printf("test_ops_cuda: no CUDA device, skipped\n");
        return 77;
    }
    H = sl_ops_cpu();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matmul_matches_cpu_for_every_transpose_and_accumulate),
        cmocka_unit_test(elementwise_ops_match_cpu),
        cmocka_unit_test(embedding_lookup_and_scatter_add_match_cpu),
        cmocka_unit_test(rmsnorm_forward_and_backward_match_cpu),
        cmocka_unit_test(rope_forward_and_backward_match_cpu),
        cmocka_unit_test(attention_forward_and_backward_match_cpu_on_packed_gqa_batches),
        cmocka_unit_test(cached_attention_matches_cpu),
        cmocka_unit_test(lmhead_logprob_entropy_and_gradients_match_cpu),
        cmocka_unit_test(whole_model_matches_cpu_qwen2_tied),
        cmocka_unit_test(whole_model_matches_cpu_qwen3),
        cmocka_unit_test(whole_model_matches_cpu_llama3),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    const char *b = getenv("SL_CUDA_BENCH");
    if (b && *b == '1') {
        if (bench_step(1, 2048)) rc = rc ? rc : 1;
        if (bench_step(8, 1024)) rc = rc ? rc : 1;
    }
    return rc;
}
