/*
 * lmhead.cu — the LM head fused with log-softmax, log-prob of the target
 * and entropy, chunked over the vocabulary exactly like the CPU twin: for
 * at most SL_LMHEAD_CHUNK_T tokens at a time, logits of SL_LMHEAD_CHUNK_V
 * vocabulary columns go to `scratch` through cuBLAS, and one block per
 * token folds the chunk into a running (max, sum e, sum e*l) state (double
 * sums, float exponentials) kept in the backend workspace. Backward turns
 * each recomputed chunk into d logits in place and feeds two products.
 *
 * It never holds T x V logits. Not yet bf16 and not yet one fused GEMM +
 * softmax kernel (NOTES.md).
 */
#include "common.cuh"
#include "ops.h"

#define LM_THREADS 256

typedef struct lm_state {
    double s, a; /* sum e^(l-m), sum e^(l-m) l */
    float m, tl; /* running max, the target's logit */
} lm_state;

/* block per row i of the chunk (nv logits at scratch + i*nv) */
__global__ void lm_fold_kernel(lm_state *st, const float *scratch, int nv, int v0, int first,
                               int last, const int32_t *target, float *logprob, float *entropy,
                               float *lse)
{
    __shared__ float redf[LM_THREADS / 32];
    __shared__ double reds[LM_THREADS / 32], reda[LM_THREADS / 32];
    const int i = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const float *l = scratch + (size_t)i * nv;
    lm_state S = st[i];
    if (first) S.s = 0.0, S.a = 0.0, S.m = -INFINITY, S.tl = 0.0f;

    float mx = -INFINITY;
    for (int j = threadIdx.x; j < nv; j += LM_THREADS) mx = fmaxf(mx, l[j]);
    mx = warp_max(mx);
    if (lane == 0) redf[warp] = mx;
    __syncthreads();
    mx = redf[0];
    for (int w = 1; w < LM_THREADS / 32; w++) mx = fmaxf(mx, redf[w]);
    float mn = fmaxf(mx, S.m);

    double ss = 0.0, aa = 0.0;
    for (int j = threadIdx.x; j < nv; j += LM_THREADS) {
        float e = expf(l[j] - mn);
        ss += e;
        aa += (double)e * l[j];
    }
    ss = warp_sum_d(ss);
    aa = warp_sum_d(aa);
    if (lane == 0) reds[warp] = ss, reda[warp] = aa;
    __syncthreads();
    if (threadIdx.x == 0) {
        ss = 0.0, aa = 0.0;
        for (int w = 0; w < LM_THREADS / 32; w++) ss += reds[w], aa += reda[w];
        double r = exp((double)S.m - (double)mn);
        S.s = S.s * r + ss;
        S.a = S.a * r + aa;
        S.m = mn;
        int tg = target ? target[i] : -1;
        if (tg >= v0 && tg < v0 + nv) S.tl = l[tg - v0];
        if (last) {
            double L = (double)S.m + log(S.s);
            lse[i] = (float)L;
            logprob[i] = tg >= 0 ? (float)(S.tl - L) : 0.0f;
            if (entropy) entropy[i] = (float)(L - S.a / S.s);
        } else {
            st[i] = S;
        }
    }
}

void sl_cuda_lmhead_logprob_fwd(float *logprob, float *entropy, float *lse, const float *h,
                                const float *W, const int32_t *target, int T, int C, int V,
                                float *scratch)
{
    lm_state *st = (lm_state *)sl_cuda_workspace();
    static_assert(sizeof(lm_state) * SL_LMHEAD_CHUNK_T <= SL_CUDA_WS_BYTES, "workspace");
    for (int t0 = 0; t0 < T; t0 += SL_LMHEAD_CHUNK_T) {
        int nt = T - t0 < SL_LMHEAD_CHUNK_T ? T - t0 : SL_LMHEAD_CHUNK_T;
        for (int v0 = 0; v0 < V; v0 += SL_LMHEAD_CHUNK_V) {
            int nv = V - v0 < SL_LMHEAD_CHUNK_V ? V - v0 : SL_LMHEAD_CHUNK_V;
            sl_cuda_matmul(scratch, h + (size_t)t0 * C, W + (size_t)v0 * C, nt, nv, C, 0, 1,
                           1.0f, 0);
            lm_fold_kernel<<<nt, LM_THREADS>>>(st, scratch, nv, v0, v0 == 0, v0 + nv >= V,
                                               target ? target + t0 : NULL, logprob + t0,
                                               entropy ? entropy + t0 : NULL, lse + t0);
            LAUNCH_CHECK();
        }
    }
}

/* d logit_v = gl ([v = target] - p_v) - ge p_v (log p_v + H), in place */
__global__ void lm_dlogits_kernel(float *scratch, int nt, int nv, int v0, const int32_t *target,
                                  const float *lse, const float *dlogprob, const float *dentropy,
                                  const float *entropy)
{
    size_t n = (size_t)nt * nv;
    for (size_t u = blockIdx.x * (size_t)blockDim.x + threadIdx.x; u < n;
         u += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(u / (size_t)nv), j = (int)(u % (size_t)nv);
        int tg = target ? target[i] : -1;
        float L = lse[i], gl = (dlogprob && tg >= 0) ? dlogprob[i] : 0.0f;
        float ge = dentropy ? dentropy[i] : 0.0f, H = entropy ? entropy[i] : 0.0f;
        float lp = scratch[u] - L, p = expf(lp);
        float g = -p * gl - ge * p * (lp + H);
        if (tg == v0 + j) g += gl;
        scratch[u] = g;
    }
}

void sl_cuda_lmhead_logprob_bwd(float *dh, float *dW, const float *dlogprob,
                                const float *dentropy, const float *h, const float *W,
                                const int32_t *target, const float *lse, const float *entropy,
                                int T, int C, int V, float *scratch)
{
    for (int t0 = 0; t0 < T; t0 += SL_LMHEAD_CHUNK_T) {
        int nt = T - t0 < SL_LMHEAD_CHUNK_T ? T - t0 : SL_LMHEAD_CHUNK_T;
        for (int v0 = 0; v0 < V; v0 += SL_LMHEAD_CHUNK_V) {
            int nv = V - v0 < SL_LMHEAD_CHUNK_V ? V - v0 : SL_LMHEAD_CHUNK_V;
            sl_cuda_matmul(scratch, h + (size_t)t0 * C, W + (size_t)v0 * C, nt, nv, C, 0, 1,
                           1.0f, 0);
            size_t n = (size_t)nt * nv;
            lm_dlogits_kernel<<<ew_grid(n, 256), 256>>>(
                scratch, nt, nv, v0, target ? target + t0 : NULL, lse + t0,
                dlogprob ? dlogprob + t0 : NULL, dentropy ? dentropy + t0 : NULL,
                entropy ? entropy + t0 : NULL);
            LAUNCH_CHECK();
            sl_cuda_matmul(dW + (size_t)v0 * C, scratch, h + (size_t)t0 * C, nv, C, nt, 1, 0,
                           1.0f, 1);
            sl_cuda_matmul(dh + (size_t)t0 * C, scratch, W + (size_t)v0 * C, nt, C, nv, 0, 0,
                           1.0f, v0 > 0);
        }
    }
}
