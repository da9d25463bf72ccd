/*
 * test_ops.c — the CPU ops table (ops.h) checked op by op: forward against
 * naive double-precision references, backward against central finite
 * differences of a scalar loss L = sum(r * out) computed in double from the
 * fp32 forward (step h, tolerance on max|analytic - numeric| relative to
 * the largest numeric gradient; the max difference is printed).
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

static const sl_ops *O;
static uint64_t g_rng = 12345;

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

static float *zerov(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static double dotd(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* A forward closure: recompute the scalar loss from the current inputs. */
typedef double (*loss_fn)(void *ctx);

/* Compare analytic gradient g of x (n elements; check `count` of them,
 * every element when count >= n) against central differences. */
static double fd_check(const char *what, float *x, const float *g, size_t n, size_t count,
                       loss_fn f, void *ctx, double h, double tol)
{
    double md = 0.0, mg = 0.0;
    size_t stride = count >= n ? 1 : n / count;
    for (size_t i = 0; i < n; i += stride) {
        float save = x[i];
        x[i] = (float)(save + h);
        double lp = f(ctx);
        x[i] = (float)(save - h);
        double lm = f(ctx);
        x[i] = save;
        double num = (lp - lm) / (2.0 * h);
        double d = fabs(num - g[i]);
        if (!(d <= md)) md = d;
        if (fabs(num) > mg) mg = fabs(num);
    }
    double rel = md / (mg > 1e-6 ? mg : 1e-6);
    printf("    %-34s max |analytic-numeric| %.3g (rel %.3g, max grad %.3g)\n", what, md, rel, mg);
    assert_true(rel < tol);
    return rel;
}

/* ------------------------------------------------------------- matmul */

static void matmul_matches_naive_for_every_transpose(void **s)
{
    (void)s;
    int M = 7, N = 5, K = 9;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int acc = 0; acc < 2; acc++) {
                float *A = randv((size_t)M * K, 1), *B = randv((size_t)K * N, 1);
                float *C = randv((size_t)M * N, 1), *C0 = malloc(sizeof(float) * M * N);
                memcpy(C0, C, sizeof(float) * M * N);
                O->matmul(C, A, B, M, N, K, ta, tb, 0.5f, acc);
                double md = 0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double r = acc ? C0[i * N + j] : 0.0;
                        for (int k = 0; k < K; k++)
                            r += 0.5 * (ta ? A[k * M + i] : A[i * K + k]) *
                                 (tb ? B[j * K + k] : B[k * N + j]);
                        double d = fabs(r - C[i * N + j]);
                        if (d > md) md = d;
                    }
                printf("    matmul transA=%d transB=%d acc=%d: max diff %.3g\n", ta, tb, acc, md);
                assert_true(md < 1e-5);
                free(A), free(B), free(C), free(C0);
            }
}

typedef struct lin_ctx {
    float *x, *w, *y, *r;
    int T, in, out;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *c = p;
    O->matmul(c->y, c->x, c->w, c->T, c->out, c->in, 0, 1, 1.0f, 0);
    return dotd(c->y, c->r, (size_t)c->T * c->out);
}

static void linear_layer_backward_matches_finite_differences(void **s)
{
    (void)s;
    lin_ctx c = {.T = 6, .in = 8, .out = 5};
    c.x = randv(48, 1), c.w = randv(40, 1), c.y = zerov(30), c.r = randv(30, 1);
    float *dx = zerov(48), *dw = zerov(40);
    /* the model's backward: dx = dy W, dW += dy^T x */
    O->matmul(dx, c.r, c.w, c.T, c.in, c.out, 0, 0, 1.0f, 0);
    O->matmul(dw, c.r, c.x, c.out, c.in, c.T, 1, 0, 1.0f, 1);
    fd_check("linear dx", c.x, dx, 48, 48, lin_loss, &c, 1e-2, 1e-3);
    fd_check("linear dW", c.w, dw, 40, 40, lin_loss, &c, 1e-2, 1e-3);
    free(c.x), free(c.w), free(c.y), free(c.r), free(dx), free(dw);
}

/* ---------------------------------------------------------- embedding */

typedef struct emb_ctx {
    float *wte, *out, *r;
    int32_t *tok;
    int T, C;
} emb_ctx;

static double emb_loss(void *p)
{
    emb_ctx *c = p;
    O->embedding_fwd(c->out, c->wte, c->tok, c->T, c->C);
    return dotd(c->out, c->r, (size_t)c->T * c->C);
}

static void embedding_backward_accumulates_repeated_tokens(void **s)
{
    (void)s;
    int32_t tok[6] = {3, 1, 3, 0, 4, 3};
    emb_ctx c = {.T = 6, .C = 4, .tok = tok};
    c.wte = randv(20, 1), c.out = zerov(24), c.r = randv(24, 1);
    float *dw = zerov(20);
    O->embedding_bwd(dw, c.r, tok, 6, 4);
    fd_check("embedding dwte", c.wte, dw, 20, 20, emb_loss, &c, 1e-2, 1e-3);
    free(c.wte), free(c.out), free(c.r), free(dw);
}

/* ------------------------------------------------------------ rmsnorm */

typedef struct rms_ctx {
    float *x, *w, *out, *rstd, *r;
    int T, C;
} rms_ctx;

static double rms_loss(void *p)
{
    rms_ctx *c = p;
    O->rmsnorm_fwd(c->out, c->rstd, c->x, c->w, c->T, c->C, 1e-5f);
    return dotd(c->out, c->r, (size_t)c->T * c->C);
}

static void rms_case(const char *label, int T, int C)
{
    rms_ctx c = {.T = T, .C = C};
    size_t n = (size_t)T * C;
    c.x = randv(n, 1), c.w = randv(C, 1), c.out = zerov(n), c.rstd = zerov(T), c.r = randv(n, 1);
    rms_loss(&c);
    /* forward against double */
    double md = 0;
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < C; i++) ss += (double)c.x[t * C + i] * c.x[t * C + i];
        double r = 1.0 / sqrt(ss / C + 1e-5);
        for (int i = 0; i < C; i++) {
            double d = fabs(c.w[i] * c.x[t * C + i] * r - c.out[t * C + i]);
            if (d > md) md = d;
        }
    }
    printf("    %s forward max diff %.3g\n", label, md);
    assert_true(md < 1e-5);
    float *dx = zerov(n), *dw = zerov(C);
    O->rmsnorm_bwd(dx, dw, c.r, c.x, c.w, c.rstd, T, C);
    char what[64];
    snprintf(what, sizeof(what), "%s dx", label);
    fd_check(what, c.x, dx, n, n, rms_loss, &c, 1e-3, 1e-2);
    snprintf(what, sizeof(what), "%s dw", label);
    fd_check(what, c.w, dw, C, C, rms_loss, &c, 1e-3, 1e-2);
    free(c.x), free(c.w), free(c.out), free(c.rstd), free(c.r), free(dx), free(dw);
}

static void rmsnorm_backward_matches_finite_differences(void **s)
{
    (void)s;
    rms_case("rmsnorm (T=5, C=16)", 5, 16);
}

static void per_head_qk_norm_backward_matches_finite_differences(void **s)
{
    (void)s;
    /* Qwen3 q/k norm = rmsnorm over rows of (T * n_head, head_dim) */
    rms_case("qk-norm (T=3 x 4 heads, hd=8)", 3 * 4, 8);
}

/* --------------------------------------------------------------- rope */

typedef struct rope_ctx {
    float *x, *y, *r, *cs, *sn;
    int32_t *pos;
    int T, NH, HD;
} rope_ctx;

static double rope_loss(void *p)
{
    rope_ctx *c = p;
    size_t n = (size_t)c->T * c->NH * c->HD;
    memcpy(c->y, c->x, sizeof(float) * n);
    O->rope_fwd(c->y, c->pos, c->cs, c->sn, c->T, c->NH, c->HD);
    return dotd(c->y, c->r, n);
}

static void rope_backward_is_the_transposed_rotation(void **s)
{
    (void)s;
    sl_hf_config cfg;
    sl_hf_config_defaults(&cfg);
    cfg.head_dim = 16;
    cfg.rope_theta = 10000.0;
    cfg.rope_type = SL_ROPE_LLAMA3;
    cfg.rope_factor = 8.0, cfg.rope_low_freq_factor = 1.0, cfg.rope_high_freq_factor = 4.0;
    cfg.rope_original_max_pos = 64;
    int maxp = 100;
    rope_ctx c = {.T = 5, .NH = 3, .HD = 16};
    int32_t pos[5] = {0, 1, 7, 50, 99};
    c.pos = pos;
    c.cs = zerov(maxp * 8), c.sn = zerov(maxp * 8);
    assert_int_equal(sl_rope_tables(&cfg, maxp, c.cs, c.sn), 0);
    /* position 0 is the identity */
    for (int i = 0; i < 8; i++) assert_true(c.cs[i] == 1.0f && c.sn[i] == 0.0f);
    size_t n = 5 * 3 * 16;
    c.x = randv(n, 1), c.y = zerov(n), c.r = randv(n, 1);
    float *dx = malloc(sizeof(float) * n);
    memcpy(dx, c.r, sizeof(float) * n);
    O->rope_bwd(dx, pos, c.cs, c.sn, 5, 3, 16);
    fd_check("rope dx (llama3 table)", c.x, dx, n, n, rope_loss, &c, 1e-2, 1e-3);
    free(c.x), free(c.y), free(c.r), free(c.cs), free(c.sn), free(dx);
}

/* ---------------------------------------------------------- attention */

typedef struct att_ctx {
    float *q, *k, *v, *out, *lse, *r;
    int32_t *cu;
    int n_seq, NH, NKV, HD, T;
    float scale;
} att_ctx;

static double att_loss(void *p)
{
    att_ctx *c = p;
    O->attention_fwd(c->out, c->lse, c->q, c->k, c->v, c->cu, c->n_seq, c->NH, c->NKV, c->HD,
                     c->scale);
    return dotd(c->out, c->r, (size_t)c->T * c->NH * c->HD);
}

static void attention_naive_case(const int32_t *cu, int n_seq, int NH, int NKV, int HD)
{
    int T = cu[n_seq], group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HD);
    size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD;
    float *q = randv(nq, 1), *k = randv(nk, 1), *v = randv(nk, 1), *out = zerov(nq);
    float *lse = zerov((size_t)T * NH);
    double *sc = malloc(sizeof(double) * T);
    O->attention_fwd(out, lse, q, k, v, cu, n_seq, NH, NKV, HD, scale);
    double md = 0;
    for (int sq = 0; sq < n_seq; sq++)
        for (int h = 0; h < NH; h++)
            for (int i = cu[sq]; i < cu[sq + 1]; i++) {
                double mx = -1e300, sum = 0;
                int kvh = h / group;
                for (int j = cu[sq]; j <= i; j++) {
                    sc[j] = scale * dotd(q + ((size_t)i * NH + h) * HD,
                                         k + ((size_t)j * NKV + kvh) * HD, HD);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = cu[sq]; j <= i; j++) sum += exp(sc[j] - mx);
                for (int d = 0; d < HD; d++) {
                    double o = 0;
                    for (int j = cu[sq]; j <= i; j++)
                        o += exp(sc[j] - mx) / sum * v[((size_t)j * NKV + kvh) * HD + d];
                    md = fmax(md, fabs(o - out[((size_t)i * NH + h) * HD + d]));
                }
                md = fmax(md, fabs(mx + log(sum) - lse[(size_t)i * NH + h]));
            }
    printf("    attention (GQA %d/%d, %d packed seqs, T=%d) forward max diff %.3g\n", NH, NKV,
           n_seq, T, md);
    assert_true(md < 1e-5);
    free(q), free(k), free(v), free(out), free(lse), free(sc);
}

static void attention_forward_matches_naive_softmax(void **s)
{
    (void)s;
    int32_t cu[4] = {0, 4, 11, 13};
    attention_naive_case(cu, 3, 4, 2, 8);
    /* sequences longer than the 64-row query blocks */
    int32_t cu2[4] = {0, 150, 215, 280};
    attention_naive_case(cu2, 3, 4, 1, 16);
}

static void attention_backward_matches_finite_differences_with_gqa_and_packing(void **s)
{
    (void)s;
    int32_t cu[4] = {0, 3, 8, 10};
    att_ctx c = {.cu = cu, .n_seq = 3, .NH = 4, .NKV = 2, .HD = 4, .T = 10};
    c.scale = 0.5f;
    size_t nq = 10 * 4 * 4, nk = 10 * 2 * 4;
    c.q = randv(nq, 1), c.k = randv(nk, 1), c.v = randv(nk, 1), c.out = zerov(nq);
    c.lse = zerov(40), c.r = randv(nq, 1);
    att_loss(&c);
    float *dq = zerov(nq), *dk = zerov(nk), *dv = zerov(nk);
    O->attention_bwd(dq, dk, dv, c.r, c.q, c.k, c.v, c.out, c.lse, cu, 3, 4, 2, 4, c.scale);
    fd_check("attention dq", c.q, dq, nq, nq, att_loss, &c, 1e-2, 2e-3);
    fd_check("attention dk", c.k, dk, nk, nk, att_loss, &c, 1e-2, 2e-3);
    fd_check("attention dv", c.v, dv, nk, nk, att_loss, &c, 1e-2, 2e-3);
    free(c.q), free(c.k), free(c.v), free(c.out), free(c.lse), free(c.r), free(dq), free(dk),
        free(dv);
}

static void attention_backward_matches_finite_differences_over_several_query_blocks(void **s)
{
    (void)s;
    int32_t cu[3] = {0, 140, 200};
    att_ctx c = {.cu = cu, .n_seq = 2, .NH = 2, .NKV = 1, .HD = 4, .T = 200};
    c.scale = 0.5f;
    size_t nq = 200 * 2 * 4, nk = 200 * 1 * 4;
    c.q = randv(nq, 1), c.k = randv(nk, 1), c.v = randv(nk, 1), c.out = zerov(nq);
    c.lse = zerov(400), c.r = randv(nq, 1);
    att_loss(&c);
    float *dq = zerov(nq), *dk = zerov(nk), *dv = zerov(nk);
    O->attention_bwd(dq, dk, dv, c.r, c.q, c.k, c.v, c.out, c.lse, cu, 2, 2, 1, 4, c.scale);
    fd_check("attention dq (T=200, 3 blocks)", c.q, dq, nq, 50, att_loss, &c, 1e-2, 5e-3);
    fd_check("attention dk (T=200, 3 blocks)", c.k, dk, nk, 50, att_loss, &c, 1e-2, 5e-3);
    fd_check("attention dv (T=200, 3 blocks)", c.v, dv, nk, 50, att_loss, &c, 1e-2, 5e-3);
    free(c.q), free(c.k), free(c.v), free(c.out), free(c.lse), free(c.r), free(dq), free(dk),
        free(dv);
}

static void cached_attention_equals_packed_attention(void **s)
{
    (void)s;
    /* two sequences in cache slots 1 and 0; the last 2 (resp. 1) tokens are
     * the queries */
    int32_t cu[3] = {0, 5, 8};
    int NH = 4, NKV = 2, HD = 8, max_len = 6, T = 8;
    size_t nq = (size_t)T * NH * HD, nk = (size_t)T * NKV * HD, kd = (size_t)NKV * HD;
    float *q = randv(nq, 1), *k = randv(nk, 1), *v = randv(nk, 1), *out = zerov(nq),
          *lse = zerov((size_t)T * NH);
    O->attention_fwd(out, lse, q, k, v, cu, 2, NH, NKV, HD, 0.3f);
    float *kc = zerov(2 * max_len * kd), *vc = zerov(2 * max_len * kd);
    int32_t slot[2] = {1, 0}, kvlen[2] = {5, 3};
    for (int t = 0; t < 5; t++) {
        memcpy(kc + (1 * max_len + t) * kd, k + t * kd, sizeof(float) * kd);
        memcpy(vc + (1 * max_len + t) * kd, v + t * kd, sizeof(float) * kd);
    }
    for (int t = 0; t < 3; t++) {
        memcpy(kc + (0 * max_len + t) * kd, k + (5 + t) * kd, sizeof(float) * kd);
        memcpy(vc + (0 * max_len + t) * kd, v + (5 + t) * kd, sizeof(float) * kd);
    }
    /* queries: tokens 3,4 of seq 0 and token 7 of seq 1 */
    float *qq = zerov(3 * NH * HD), *oo = zerov(3 * NH * HD);
    memcpy(qq, q + 3 * NH * HD, sizeof(float) * 2 * NH * HD);
    memcpy(qq + 2 * NH * HD, q + 7 * NH * HD, sizeof(float) * NH * HD);
    int32_t cuq[3] = {0, 2, 3};
    O->attention_cached_fwd(oo, qq, kc, vc, slot, cuq, kvlen, 2, max_len, NH, NKV, HD, 0.3f);
    double md = 0;
    for (int i = 0; i < 2 * NH * HD; i++) md = fmax(md, fabs(oo[i] - out[3 * NH * HD + i]));
    for (int i = 0; i < NH * HD; i++) md = fmax(md, fabs(oo[2 * NH * HD + i] - out[7 * NH * HD + i]));
    printf("    cached vs packed attention max diff %.3g\n", md);
    assert_true(md < 1e-6);
    free(q), free(k), free(v), free(out), free(lse), free(kc), free(vc), free(qq), free(oo);
}

/* ------------------------------------------------------------- swiglu */

typedef struct sw_ctx {
    float *g, *u, *out, *r;
    size_t n;
} sw_ctx;

static double sw_loss(void *p)
{
    sw_ctx *c = p;
    O->swiglu_fwd(c->out, c->g, c->u, c->n);
    return dotd(c->out, c->r, c->n);
}

static void swiglu_backward_matches_finite_differences(void **s)
{
    (void)s;
    sw_ctx c = {.n = 40};
    c.g = randv(40, 3), c.u = randv(40, 1), c.out = zerov(40), c.r = randv(40, 1);
    float *dg = zerov(40), *du = zerov(40);
    O->swiglu_bwd(dg, du, c.r, c.g, c.u, 40);
    fd_check("swiglu dgate", c.g, dg, 40, 40, sw_loss, &c, 1e-3, 1e-3);
    fd_check("swiglu dup", c.u, du, 40, 40, sw_loss, &c, 1e-3, 1e-3);
    free(c.g), free(c.u), free(c.out), free(c.r), free(dg), free(du);
}

/* --------------------------------------------------------------- bias */

typedef struct bias_ctx {
    float *x0, *x, *b, *r;
    int T, C;
} bias_ctx;

static double bias_loss(void *p)
{
    bias_ctx *c = p;
    memcpy(c->x, c->x0, sizeof(float) * (size_t)c->T * c->C);
    O->bias_add(c->x, c->b, c->T, c->C);
    return dotd(c->x, c->r, (size_t)c->T * c->C);
}

static void bias_gradient_is_the_sum_over_tokens(void **s)
{
    (void)s;
    bias_ctx c = {.T = 7, .C = 6};
    c.x0 = randv(42, 1), c.x = zerov(42), c.b = randv(6, 1), c.r = randv(42, 1);
    float *db = zerov(6);
    O->bias_bwd(db, c.r, 7, 6);
    fd_check("bias db", c.b, db, 6, 6, bias_loss, &c, 1e-2, 1e-3);
    free(c.x0), free(c.x), free(c.b), free(c.r), free(db);
}

/* ------------------------------------------------------------ LM head */

typedef struct head_ctx {
    float *h, *W, *lp, *ent, *lse, *a, *b, *scratch;
    int32_t *tg;
    int T, C, V;
} head_ctx;

static double head_loss(void *p)
{
    head_ctx *c = p;
    O->lmhead_logprob_fwd(c->lp, c->ent, c->lse, c->h, c->W, c->tg, c->T, c->C, c->V, c->scratch);
    return dotd(c->lp, c->a, c->T) + dotd(c->ent, c->b, c->T);
}

static void head_case(int T, int C, int V, size_t count, double scale)
{
    head_ctx c = {.T = T, .C = C, .V = V};
    c.h = randv((size_t)T * C, 1), c.W = randv((size_t)V * C, scale);
    c.lp = zerov(T), c.ent = zerov(T), c.lse = zerov(T), c.a = randv(T, 1), c.b = randv(T, 1);
    c.scratch = zerov(SL_LMHEAD_SCRATCH);
    c.tg = malloc(sizeof(int32_t) * T);
    for (int t = 0; t < T; t++) c.tg[t] = t % 5 == 4 ? -1 : (int32_t)(urand() * V);
    if (V > 10) c.tg[0] = V - 1; /* a target in the last vocabulary chunk */
    head_loss(&c);
    /* forward against double */
    double md = 0;
    for (int t = 0; t < T; t++) {
        double *l = malloc(sizeof(double) * V), mx = -1e300, sum = 0, pl = 0;
        for (int v = 0; v < V; v++) {
            l[v] = dotd(c.h + (size_t)t * C, c.W + (size_t)v * C, C);
            if (l[v] > mx) mx = l[v];
        }
        for (int v = 0; v < V; v++) sum += exp(l[v] - mx);
        double L = mx + log(sum);
        for (int v = 0; v < V; v++) pl += exp(l[v] - L) * (l[v] - L);
        double lpw = c.tg[t] >= 0 ? l[c.tg[t]] - L : 0.0;
        md = fmax(md, fabs(lpw - c.lp[t]));
        md = fmax(md, fabs(-pl - c.ent[t]));
        md = fmax(md, fabs(L - c.lse[t]));
        free(l);
    }
    printf("    lm head T=%d C=%d V=%d: logprob/entropy/lse max diff %.3g\n", T, C, V, md);
    assert_true(md < 2e-5);
    float *dh = zerov((size_t)T * C), *dW = zerov((size_t)V * C);
    O->lmhead_logprob_bwd(dh, dW, c.a, c.b, c.h, c.W, c.tg, c.lse, c.ent, T, C, V, c.scratch);
    fd_check("lm head logprob+entropy dh", c.h, dh, (size_t)T * C, count, head_loss, &c, 1e-2,
             1e-2);
    fd_check("lm head logprob+entropy dW", c.W, dW, (size_t)V * C, count, head_loss, &c, 1e-2,
             1e-2);
    free(c.h), free(c.W), free(c.lp), free(c.ent), free(c.lse), free(c.a), free(c.b);
    free(c.scratch), free(c.tg), free(dh), free(dW);
}

static void lm_head_logprob_and_entropy_backward_match_finite_differences(void **s)
{
    (void)s;
    head_case(6, 8, 40, 100000, 1.0);
}

static void lm_head_chunks_over_tokens_and_vocabulary(void **s)
{
    (void)s;
    /* T > SL_LMHEAD_CHUNK_T and V > SL_LMHEAD_CHUNK_V: several chunks each way */
    head_case(SL_LMHEAD_CHUNK_T + 3, 4, SL_LMHEAD_CHUNK_V + 37, 100, 1.0);
}

static void add_inplace_adds(void **s)
{
    (void)s;
    float y[5] = {1, 2, 3, 4, 5}, x[5] = {0.5f, -2, 0, 1, 1};
    O->add_inplace(y, x, 5);
    assert_true(y[0] == 1.5f && y[1] == 0.0f && y[4] == 6.0f);
}

int main(void)
{
    O = sl_ops_cpu();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matmul_matches_naive_for_every_transpose),
        cmocka_unit_test(linear_layer_backward_matches_finite_differences),
        cmocka_unit_test(embedding_backward_accumulates_repeated_tokens),
        cmocka_unit_test(rmsnorm_backward_matches_finite_differences),
        cmocka_unit_test(per_head_qk_norm_backward_matches_finite_differences),
        cmocka_unit_test(rope_backward_is_the_transposed_rotation),
        cmocka_unit_test(attention_forward_matches_naive_softmax),
        cmocka_unit_test(attention_backward_matches_finite_differences_with_gqa_and_packing),
        cmocka_unit_test(attention_backward_matches_finite_differences_over_several_query_blocks),
        cmocka_unit_test(cached_attention_equals_packed_attention),
        cmocka_unit_test(swiglu_backward_matches_finite_differences),
        cmocka_unit_test(bias_gradient_is_the_sum_over_tokens),
        cmocka_unit_test(lm_head_logprob_and_entropy_backward_match_finite_differences),
        cmocka_unit_test(lm_head_chunks_over_tokens_and_vocabulary),
        cmocka_unit_test(add_inplace_adds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
