/*
 * ops_cpu.c — the CPU backend of the ops table (ops.h): fp32, matrix
 * products through OpenBLAS cblas_sgemm, everything else plain C threaded
 * with OpenMP where the loop is large enough to pay. It is the numerical
 * reference the CUDA backend is tested against; clarity first, then speed.
 *
 * It is not a general BLAS wrapper and checks no shapes (the model does).
 */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- memory */

static void *cpu_alloc(size_t bytes)
{
    if (bytes == 0) return NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    void *p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes)
{
    if (bytes) memmove(dst, src, bytes);
}
static void cpu_zero(void *p, size_t bytes)
{
    if (bytes) memset(p, 0, bytes);
}

/* ---------------------------------------------------------------- matmul */

/* One thread pool: OpenBLAS runs single-threaded (set once) and the
 * product is split into row or column blocks over OpenMP threads. Two
 * pools (OpenBLAS's pthreads and OpenMP's) spinning on the same cores
 * were measured 5x slower for small products than either alone. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single(void) { openblas_set_num_threads(1); }

static void gemm_block(float *C, const float *A, const float *B, int M, int N, int K, int ldc,
                       int lda, int ldb, int transA, int transB, float alpha, int accumulate)
{
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
                accumulate ? 1.0f : 0.0f, C, ldc);
}

static void cpu_matmul(float *C, const float *A, const float *B, int M, int N, int K, int transA,
                       int transB, float alpha, int accumulate)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate) memset(C, 0, sizeof(float) * (size_t)M * (size_t)N);
        return;
    }
    pthread_once(&blas_once, blas_single);
    int lda = transA ? M : K, ldb = transB ? K : N;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    double flops = 2.0 * M * N * K;
    if (nt <= 1 || flops < 2e6 || (M < 8 * nt && N < 8 * nt)) {
        gemm_block(C, A, B, M, N, K, N, lda, ldb, transA, transB, alpha, accumulate);
        return;
    }
    int split_rows = M >= N || N < 8 * nt; /* rows of C = rows of op(A) */
    int len = split_rows ? M : N;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int b = 0; b < nt; b++) {
        int r0 = (int)((int64_t)len * b / nt), r1 = (int)((int64_t)len * (b + 1) / nt);
        if (r1 <= r0) continue;
        if (split_rows) {
            const float *Ab = transA ? A + r0 : A + (size_t)r0 * K;
            gemm_block(C + (size_t)r0 * N, Ab, B, r1 - r0, N, K, N, lda, ldb, transA, transB,
                       alpha, accumulate);
        } else {
            const float *Bb = transB ? B + (size_t)r0 * K : B + r0;
            gemm_block(C + r0, A, Bb, M, r1 - r0, K, N, lda, ldb, transA, transB, alpha,
                       accumulate);
        }
    }
}

/* ----------------------------------------------------------- elementwise */

static void cpu_add_inplace(float *y, const float *x, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_bias_add(float *out, const float *b, int T, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)T * C > 65536)
    for (int t = 0; t < T; t++) {
        float *o = out + (size_t)t * C;
        for (int c = 0; c < C; c++) o[c] += b[c];
    }
}

static void cpu_bias_bwd(float *db, const float *dout, int T, int C)
{
    for (int t = 0; t < T; t++) {
        const float *d = dout + (size_t)t * C;
        for (int c = 0; c < C; c++) db[c] += d[c];
    }
}

/* ------------------------------------------------------------- embedding */

static void cpu_embedding_fwd(float *out, const float *wte, const int32_t *tokens, int T, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)T * C > 65536)
    for (int t = 0; t < T; t++)
        memcpy(out + (size_t)t * C, wte + (size_t)tokens[t] * C, sizeof(float) * (size_t)C);
}

static void cpu_embedding_bwd(float *dwte, const float *dout, const int32_t *tokens, int T, int C)
{
    /* serial: repeated tokens would race */
    for (int t = 0; t < T; t++) {
        float *d = dwte + (size_t)tokens[t] * C;
        const float *g = dout + (size_t)t * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

/* ------------------------------------------------------------ reductions */

/* Sums in one fixed order, whatever the build: 8 interleaved partial sums
 * (a GNU vector of 8 floats: lane-wise, exactly the scalar arithmetic, and
 * SIMD whether or not the vectorizer runs), combined pairwise, then the
 * tail. Without -ffast-math the compiler keeps this order, so the -O2 build
 * and the -O1 + sanitizers one (whose checks stop GCC's vectorizer) give
 * bit-identical results. (With `omp simd reduction` each build chose its own
 * order: the -O1 + ASan/UBSan build of test_learning followed another RL
 * trajectory than the -O2 one from the first SFT steps.) */
static inline float sum8(const float *p)
{
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

typedef float sl_v8f __attribute__((vector_size(32)));

/* sum of a[i] * b[i] */
static inline float dotf(const float *a, const float *b, int n)
{
    sl_v8f acc = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        sl_v8f va, vb;
        memcpy(&va, a + i, sizeof va), memcpy(&vb, b + i, sizeof vb);
        acc += va * vb;
    }
    float s[8];
    memcpy(s, &acc, sizeof s);
    float r = sum8(s);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

/* sum of a[i] * b[i] * c[i] */
static inline float dot3f(const float *a, const float *b, const float *c, int n)
{
    sl_v8f acc = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        sl_v8f va, vb, vc;
        memcpy(&va, a + i, sizeof va), memcpy(&vb, b + i, sizeof vb), memcpy(&vc, c + i, sizeof vc);
        acc += va * vb * vc;
    }
    float s[8];
    memcpy(s, &acc, sizeof s);
    float r = sum8(s);
    for (; i < n; i++) r += a[i] * b[i] * c[i];
    return r;
}

/* --------------------------------------------------------------- rmsnorm */

static void cpu_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int T,
                            int C, float eps)
{
#pragma omp parallel for schedule(static) if ((size_t)T * C > 32768)
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C;
        float *o = out + (size_t)t * C;
        float ss = dotf(x, x, C);
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        rstd[t] = r;
        for (int c = 0; c < C; c++) o[c] = w[c] * (x[c] * r);
    }
}

static void cpu_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, const float *rstd, int T, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)T * C > 32768)
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C, *g = dout + (size_t)t * C;
        float *dx = dinp + (size_t)t * C;
        float r = rstd[t], dot = dot3f(w, g, x, C);
        /* d/dx_c of w_c x_c r: r w_c g_c - x_c r^3 sum(w g x) / C */
        float k = dot * r * r * r / (float)C;
        for (int c = 0; c < C; c++) dx[c] += r * w[c] * g[c] - k * x[c];
    }
    for (int t = 0; t < T; t++) {
        const float *x = inp + (size_t)t * C, *g = dout + (size_t)t * C;
        float r = rstd[t];
        for (int c = 0; c < C; c++) dw[c] += g[c] * x[c] * r;
    }
}

/* ------------------------------------------------------------------ rope */

static void rope_apply(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                       int T, int n_head, int hd, float sign)
{
    int half = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)T * n_head * hd > 65536)
    for (int t = 0; t < T; t++) {
        const float *cs = cos_t + (size_t)pos[t] * half, *sn = sin_t + (size_t)pos[t] * half;
        for (int h = 0; h < n_head; h++) {
            float *v = x + ((size_t)t * n_head + h) * hd;
            for (int i = 0; i < half; i++) {
                float c = cs[i], s = sign * sn[i];
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

static void cpu_rope_fwd(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                         int T, int n_head, int hd)
{
    rope_apply(x, pos, cos_t, sin_t, T, n_head, hd, 1.0f);
}

static void cpu_rope_bwd(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t,
                         int T, int n_head, int hd)
{
    rope_apply(dx, pos, cos_t, sin_t, T, n_head, hd, -1.0f);
}

/* ------------------------------------------------------------- attention */


/* One query row against nkeys keys (stride ks floats between keys):
 * o = softmax(scale q.k) v with an online (single pass, rescaling)
 * softmax, so no score buffer is needed; returns the log-sum-exp. */
static float attn_row(float *o, const float *qi, const float *kb, const float *vb, size_t ks,
                      int nkeys, int hd, float scale)
{
    float mx = -INFINITY, sum = 0.0f;
    for (int i = 0; i < hd; i++) o[i] = 0.0f;
    for (int j = 0; j < nkeys; j++) {
        float d = dotf(qi, kb + (size_t)j * ks, hd) * scale;
        if (d > mx) {
            float r = expf(mx - d); /* 0 on the first key */
            sum *= r;
            for (int i = 0; i < hd; i++) o[i] *= r;
            mx = d;
        }
        float e = expf(d - mx);
        sum += e;
        const float *vj = vb + (size_t)j * ks;
        for (int i = 0; i < hd; i++) o[i] += e * vj[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < hd; i++) o[i] *= inv;
    return mx + logf(sum);
}

static void attention_fwd_rows(float *out, float *lse, const float *q, const float *k,
                              const float *v, const int32_t *cu, int n_seq, int n_head, int n_kv,
                              int hd, float scale)
{
    int group = n_head / n_kv;
    size_t ks = (size_t)n_kv * hd, qs = (size_t)n_head * hd;
    /* rows are independent: parallel over (sequence, head) pairs */
#pragma omp parallel for schedule(dynamic, 1)
    for (int u = 0; u < n_seq * n_head; u++) {
        int sq = u / n_head, h = u % n_head, kvh = h / group;
        int b = cu[sq], L = cu[sq + 1] - cu[sq];
        const float *kb = k + (size_t)b * ks + (size_t)kvh * hd;
        const float *vb = v + (size_t)b * ks + (size_t)kvh * hd;
        for (int i = 0; i < L; i++) {
            size_t t = (size_t)b + i;
            lse[t * n_head + h] = attn_row(out + t * qs + (size_t)h * hd,
                                           q + t * qs + (size_t)h * hd, kb, vb, ks, i + 1,
                                           hd, scale);
        }
    }
}

static void attention_bwd_rows(float *dq, float *dk, float *dv, const float *dout, const float *q,
                              const float *k, const float *v, const float *out, const float *lse,
                              const int32_t *cu, int n_seq, int n_head, int n_kv, int hd,
                              float scale)
{
    int T = cu[n_seq], group = n_head / n_kv;
    size_t ks = (size_t)n_kv * hd, qs = (size_t)n_head * hd;
    memset(dk, 0, sizeof(float) * (size_t)T * ks);
    memset(dv, 0, sizeof(float) * (size_t)T * ks);
    /* a unit owns the dk/dv rows of one (sequence, kv head): no races */
#pragma omp parallel for schedule(dynamic, 1)
    for (int u = 0; u < n_seq * n_kv; u++) {
        int sq = u / n_kv, kvh = u % n_kv;
        int b = cu[sq], L = cu[sq + 1] - cu[sq];
        const float *kb = k + (size_t)b * ks + (size_t)kvh * hd;
        const float *vb = v + (size_t)b * ks + (size_t)kvh * hd;
        float *dkb = dk + (size_t)b * ks + (size_t)kvh * hd;
        float *dvb = dv + (size_t)b * ks + (size_t)kvh * hd;
        for (int h = kvh * group; h < (kvh + 1) * group; h++) {
            for (int i = 0; i < L; i++) {
                size_t t = (size_t)b + i;
                const float *qi = q + t * qs + (size_t)h * hd;
                const float *gi = dout + t * qs + (size_t)h * hd;
                const float *oi = out + t * qs + (size_t)h * hd;
                float *dqi = dq + t * qs + (size_t)h * hd;
                float l = lse[t * n_head + h];
                float D = dotf(gi, oi, hd);
                for (int c = 0; c < hd; c++) dqi[c] = 0.0f;
                for (int j = 0; j <= i; j++) {
                    const float *kj = kb + (size_t)j * ks, *vj = vb + (size_t)j * ks;
                    float p = expf(dotf(qi, kj, hd) * scale - l);
                    float dp = dotf(gi, vj, hd);
                    float ds = p * (dp - D) * scale;
                    float *dkj = dkb + (size_t)j * ks, *dvj = dvb + (size_t)j * ks;
                    for (int c = 0; c < hd; c++) {
                        dqi[c] += ds * kj[c];
                        dkj[c] += ds * qi[c];
                        dvj[c] += p * gi[c];
                    }
                }
            }
        }
    }
}

/* Blocked attention through BLAS: for each (sequence, head), query rows in
 * blocks of ATT_BQ against all keys up to the block's last row; the score
 * block (ATT_BQ x L) lives in per-thread scratch. Entries above the
 * diagonal are computed and then zeroed (cheaper than masking inside
 * BLAS). Falls back to the row-by-row code when scratch cannot be had. */
#define ATT_BQ 64

static int max_seqlen(const int32_t *cu, int n_seq)
{
    int m = 1;
    for (int s = 0; s < n_seq; s++)
        if (cu[s + 1] - cu[s] > m) m = cu[s + 1] - cu[s];
    return m;
}

/* P = softmax over the causal part of each row of S (nb x nk, row r may
 * see keys 0..i0+r), zero elsewhere; stores lse (stride lse_stride). */
static void softmax_block(float *S, int nb, int nk, int i0, float *lse, size_t lse_stride)
{
    for (int r = 0; r < nb; r++) {
        float *row = S + (size_t)r * nk;
        int n = i0 + r + 1;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++)
            if (row[j] > mx) mx = row[j];
        float sum = 0.0f;
        for (int j = 0; j < n; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < n; j++) row[j] *= inv;
        for (int j = n; j < nk; j++) row[j] = 0.0f;
        lse[(size_t)r * lse_stride] = mx + logf(sum);
    }
}

static void cpu_attention_fwd(float *out, float *lse, const float *q, const float *k,
                              const float *v, const int32_t *cu, int n_seq, int n_head, int n_kv,
                              int hd, float scale)
{
    int group = n_head / n_kv, maxL = max_seqlen(cu, n_seq), failed = 0;
    size_t ks = (size_t)n_kv * hd, qs = (size_t)n_head * hd;
#pragma omp parallel reduction(| : failed)
    {
        float *S = malloc(sizeof(float) * ATT_BQ * (size_t)maxL);
        failed = S == NULL;
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < n_seq * n_head; u++) {
            if (!S) continue;
            int sq = u / n_head, h = u % n_head, kvh = h / group;
            int b = cu[sq], L = cu[sq + 1] - cu[sq];
            const float *kb = k + (size_t)b * ks + (size_t)kvh * hd;
            const float *vb = v + (size_t)b * ks + (size_t)kvh * hd;
            for (int i0 = 0; i0 < L; i0 += ATT_BQ) {
                int nb = L - i0 < ATT_BQ ? L - i0 : ATT_BQ, nk = i0 + nb;
                size_t t0 = (size_t)b + i0;
                const float *qb = q + t0 * qs + (size_t)h * hd;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, hd, scale, qb,
                            (int)qs, kb, (int)ks, 0.0f, S, nk);
                softmax_block(S, nb, nk, i0, lse + t0 * n_head + h, (size_t)n_head);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, hd, nk, 1.0f, S, nk,
                            vb, (int)ks, 0.0f, out + t0 * qs + (size_t)h * hd, (int)qs);
            }
        }
        free(S);
    }
    if (failed) attention_fwd_rows(out, lse, q, k, v, cu, n_seq, n_head, n_kv, hd, scale);
}

static void cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                              const float *k, const float *v, const float *out, const float *lse,
                              const int32_t *cu, int n_seq, int n_head, int n_kv, int hd,
                              float scale)
{
    int T = cu[n_seq], group = n_head / n_kv, maxL = max_seqlen(cu, n_seq), failed = 0;
    size_t ks = (size_t)n_kv * hd, qs = (size_t)n_head * hd;
    memset(dk, 0, sizeof(float) * (size_t)T * ks);
    memset(dv, 0, sizeof(float) * (size_t)T * ks);
    /* a unit owns the dk/dv rows of one (sequence, kv head): no races */
#pragma omp parallel reduction(| : failed)
    {
        float *P = malloc(sizeof(float) * 2 * ATT_BQ * (size_t)maxL);
        float *dS = P ? P + ATT_BQ * (size_t)maxL : NULL;
        failed = P == NULL;
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < n_seq * n_kv; u++) {
            if (!P) continue;
            int sq = u / n_kv, kvh = u % n_kv;
            int b = cu[sq], L = cu[sq + 1] - cu[sq];
            const float *kb = k + (size_t)b * ks + (size_t)kvh * hd;
            const float *vb = v + (size_t)b * ks + (size_t)kvh * hd;
            float *dkb = dk + (size_t)b * ks + (size_t)kvh * hd;
            float *dvb = dv + (size_t)b * ks + (size_t)kvh * hd;
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                for (int i0 = 0; i0 < L; i0 += ATT_BQ) {
                    int nb = L - i0 < ATT_BQ ? L - i0 : ATT_BQ, nk = i0 + nb;
                    size_t t0 = (size_t)b + i0, ho = (size_t)h * hd;
                    const float *qb = q + t0 * qs + ho, *gb = dout + t0 * qs + ho;
                    const float *ob = out + t0 * qs + ho;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, hd, scale, qb,
                                (int)qs, kb, (int)ks, 0.0f, P, nk);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nk, hd, 1.0f, gb,
                                (int)qs, vb, (int)ks, 0.0f, dS, nk);
                    for (int r = 0; r < nb; r++) {
                        float *pr = P + (size_t)r * nk, *dr = dS + (size_t)r * nk;
                        float l = lse[(t0 + r) * n_head + h];
                        float D = dotf(gb + (size_t)r * qs, ob + (size_t)r * qs, hd);
                        int n = i0 + r + 1;
                        for (int j = 0; j < n; j++) {
                            float p = expf(pr[j] - l);
                            pr[j] = p;
                            dr[j] = p * (dr[j] - D) * scale;
                        }
                        for (int j = n; j < nk; j++) pr[j] = 0.0f, dr[j] = 0.0f;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, hd, nk, 1.0f, dS,
                                nk, kb, (int)ks, 0.0f, dq + t0 * qs + ho, (int)qs);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nb, 1.0f, dS, nk,
                                qb, (int)qs, 1.0f, dkb, (int)ks);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nb, 1.0f, P, nk,
                                gb, (int)qs, 1.0f, dvb, (int)ks);
                }
            }
        }
        free(P);
    }
    if (failed)
        attention_bwd_rows(dq, dk, dv, dout, q, k, v, out, lse, cu, n_seq, n_head, n_kv, hd,
                           scale);
}

static void cpu_attention_cached_fwd(float *out, const float *q, const float *kc, const float *vc,
                                     const int32_t *slot, const int32_t *cuq,
                                     const int32_t *kv_len, int n_seq, int max_len, int n_head,
                                     int n_kv, int hd, float scale)
{
    int group = n_head / n_kv;
    size_t ks = (size_t)n_kv * hd, qs = (size_t)n_head * hd;
#pragma omp parallel for schedule(dynamic, 1)
    for (int u = 0; u < n_seq * n_head; u++) {
        int sq = u / n_head, h = u % n_head, kvh = h / group;
        int nq = cuq[sq + 1] - cuq[sq], first = kv_len[sq] - nq;
        const float *kb = kc + (size_t)slot[sq] * max_len * ks + (size_t)kvh * hd;
        const float *vb = vc + (size_t)slot[sq] * max_len * ks + (size_t)kvh * hd;
        for (int i = 0; i < nq; i++) {
            size_t t = (size_t)cuq[sq] + i;
            attn_row(out + t * qs + (size_t)h * hd, q + t * qs + (size_t)h * hd, kb, vb, ks,
                     first + i + 1, hd, scale);
        }
    }
}

/* ---------------------------------------------------------------- swiglu */

static void cpu_swiglu_fwd(float *out, const float *gate, const float *up, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void cpu_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], sg = 1.0f / (1.0f + expf(-g));
        float d = dout[i];
        dup[i] = d * g * sg;
        dgate[i] = d * up[i] * sg * (1.0f + g * (1.0f - sg));
    }
}

/* ------------------------------------------------------- LM head, fused */

static void cpu_lmhead_logprob_fwd(float *logprob, float *entropy, float *lse, const float *h,
                                   const float *W, const int32_t *target, int T, int C, int V,
                                   float *scratch)
{
    double m[SL_LMHEAD_CHUNK_T], s[SL_LMHEAD_CHUNK_T], a[SL_LMHEAD_CHUNK_T];
    float tl[SL_LMHEAD_CHUNK_T];
    for (int t0 = 0; t0 < T; t0 += SL_LMHEAD_CHUNK_T) {
        int nt = T - t0 < SL_LMHEAD_CHUNK_T ? T - t0 : SL_LMHEAD_CHUNK_T;
        for (int i = 0; i < nt; i++) m[i] = -INFINITY, s[i] = 0.0, a[i] = 0.0, tl[i] = 0.0f;
        for (int v0 = 0; v0 < V; v0 += SL_LMHEAD_CHUNK_V) {
            int nv = V - v0 < SL_LMHEAD_CHUNK_V ? V - v0 : SL_LMHEAD_CHUNK_V;
            cpu_matmul(scratch, h + (size_t)t0 * C, W + (size_t)v0 * C, nt, nv, C, 0, 1, 1.0f, 0);
            /* online log-sum-exp; a = sum e^(l-m) l for the entropy */
#pragma omp parallel for schedule(static)
            for (int i = 0; i < nt; i++) {
                const float *l = scratch + (size_t)i * nv;
                float mx = -INFINITY;
                for (int j = 0; j < nv; j++)
                    if (l[j] > mx) mx = l[j];
                float mn = mx > m[i] ? mx : (float)m[i];
                double r = exp(m[i] - mn), ss = 0.0, aa = 0.0;
                /* float exponentials (the hot loop), double sums */
                for (int j = 0; j < nv; j++) {
                    float e = expf(l[j] - mn);
                    ss += e;
                    aa += (double)e * l[j];
                }
                s[i] = s[i] * r + ss;
                a[i] = a[i] * r + aa;
                m[i] = mn;
                int tg = target ? target[t0 + i] : -1;
                if (tg >= v0 && tg < v0 + nv) tl[i] = l[tg - v0];
            }
        }
        for (int i = 0; i < nt; i++) {
            double L = m[i] + log(s[i]);
            lse[t0 + i] = (float)L;
            int tg = target ? target[t0 + i] : -1;
            logprob[t0 + i] = tg >= 0 ? (float)(tl[i] - L) : 0.0f;
            if (entropy) entropy[t0 + i] = (float)(L - a[i] / s[i]);
        }
    }
}

static void cpu_lmhead_logprob_bwd(float *dh, float *dW, const float *dlogprob,
                                   const float *dentropy, const float *h, const float *W,
                                   const int32_t *target, const float *lse, const float *entropy,
                                   int T, int C, int V, float *scratch)
{
    for (int t0 = 0; t0 < T; t0 += SL_LMHEAD_CHUNK_T) {
        int nt = T - t0 < SL_LMHEAD_CHUNK_T ? T - t0 : SL_LMHEAD_CHUNK_T;
        for (int v0 = 0; v0 < V; v0 += SL_LMHEAD_CHUNK_V) {
            int nv = V - v0 < SL_LMHEAD_CHUNK_V ? V - v0 : SL_LMHEAD_CHUNK_V;
            cpu_matmul(scratch, h + (size_t)t0 * C, W + (size_t)v0 * C, nt, nv, C, 0, 1, 1.0f, 0);
#pragma omp parallel for schedule(static)
            for (int i = 0; i < nt; i++) {
                float *l = scratch + (size_t)i * nv;
                int t = t0 + i, tg = target ? target[t] : -1;
                float L = lse[t], gl = dlogprob ? dlogprob[t] : 0.0f;
                float ge = dentropy ? dentropy[t] : 0.0f, H = entropy ? entropy[t] : 0.0f;
                if (tg < 0) gl = 0.0f;
                for (int j = 0; j < nv; j++) {
                    float lp = l[j] - L, p = expf(lp);
                    l[j] = -p * gl - ge * p * (lp + H);
                }
                if (tg >= v0 && tg < v0 + nv) l[tg - v0] += gl;
            }
            cpu_matmul(dW + (size_t)v0 * C, scratch, h + (size_t)t0 * C, nv, C, nt, 1, 0, 1.0f, 1);
            cpu_matmul(dh + (size_t)t0 * C, scratch, W + (size_t)v0 * C, nt, C, nv, 0, 0, 1.0f,
                       v0 > 0);
        }
    }
}

/* ----------------------------------------------------------------- table */

static const sl_ops CPU_OPS = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_in = cpu_copy,
    .copy_out = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .matmul = cpu_matmul,
    .add_inplace = cpu_add_inplace,
    .bias_add = cpu_bias_add,
    .bias_bwd = cpu_bias_bwd,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .rmsnorm_fwd = cpu_rmsnorm_fwd,
    .rmsnorm_bwd = cpu_rmsnorm_bwd,
    .rope_fwd = cpu_rope_fwd,
    .rope_bwd = cpu_rope_bwd,
    .attention_fwd = cpu_attention_fwd,
    .attention_bwd = cpu_attention_bwd,
    .attention_cached_fwd = cpu_attention_cached_fwd,
    .swiglu_fwd = cpu_swiglu_fwd,
    .swiglu_bwd = cpu_swiglu_bwd,
    .lmhead_logprob_fwd = cpu_lmhead_logprob_fwd,
    .lmhead_logprob_bwd = cpu_lmhead_logprob_bwd,
};

const sl_ops *sl_ops_cpu(void) { return &CPU_OPS; }
