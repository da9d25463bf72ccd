/*
 * gpu_testhooks.cu — host-array entry points to single bf16 kernels, for
 * tests/gpu/ (each op against its CPU twin). Inputs are rounded to bf16 on
 * the device exactly as the model stores them; outputs come back as fp32.
 * Not for production use: they allocate and free on every call.
 */
#include <string.h>

#ifndef SL_HAVE_CUDA
#define SL_HAVE_CUDA 1
#endif
#include "base.h"
#include "bf16.cuh"
#include "gpu_model.h"

static bf16 *up_bf(const float *h, size_t n)
{
    float *f;
    bf16 *b;
    CUDA_CHECK(cudaMalloc(&f, 4 * n + 16));
    CUDA_CHECK(cudaMalloc(&b, 2 * n + 16));
    CUDA_CHECK(cudaMemcpy(f, h, 4 * n, cudaMemcpyHostToDevice));
    sl_bf_f32_to_bf16(b, f, n);
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
    cudaFree(f);
    return b;
}
static void down_bf(float *h, const bf16 *b, size_t n)
{
    float *f;
    CUDA_CHECK(cudaMalloc(&f, 4 * n + 16));
    sl_bf_bf16_to_f32(f, b, n);
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
    CUDA_CHECK(cudaMemcpy(h, f, 4 * n, cudaMemcpyDeviceToHost));
    cudaFree(f);
}
static void *up(const void *h, size_t bytes)
{
    void *d;
    CUDA_CHECK(cudaMalloc(&d, bytes + 16));
    if (h) CUDA_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    else CUDA_CHECK(cudaMemset(d, 0, bytes + 16));
    return d;
}
static void down(void *h, const void *d, size_t bytes)
{
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
    CUDA_CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}

extern "C" void sl_gpu_test_attention(float *out, float *lse, float *dq, float *dk, float *dv,
                                      const float *dout, const float *q, const float *k,
                                      const float *v, const int32_t *cu, int n_seq, int NH,
                                      int NKV, int HD, float scale)
{
    sl_bf_init();
    int T = cu[n_seq];
    size_t QN = (size_t)T * NH * HD, KN = (size_t)T * NKV * HD;
    sl_att_tile *tiles = (sl_att_tile *)malloc(sizeof(sl_att_tile) * (T + 1));
    int nt = 0;
    for (int s = 0; s < n_seq; s++)
        for (int r = cu[s]; r < cu[s + 1]; r += SL_ATT_TILE) tiles[nt++] = (sl_att_tile){r, cu[s], cu[s + 1], 0};
    sl_att_tile *dt = (sl_att_tile *)up(tiles, sizeof(sl_att_tile) * nt);
    bf16 *bq = up_bf(q, QN), *bk = up_bf(k, KN), *bv = up_bf(v, KN), *bdo = up_bf(dout, QN);
    bf16 *bo = (bf16 *)up(NULL, 2 * QN), *bdk = (bf16 *)up(NULL, 2 * KN), *bdv = (bf16 *)up(NULL, 2 * KN);
    float *dlse = (float *)up(NULL, 4 * (size_t)T * NH), *ddq = (float *)up(NULL, 4 * QN);
    float *D = (float *)up(NULL, 4 * (size_t)T * NH), *dkv = (float *)up(NULL, 8 * KN);
    cudaStream_t s = sl_bf_stream();
    /* poison outputs: every element must be written */
    CUDA_CHECK(cudaMemsetAsync(bo, 0xff, 2 * QN, s));
    CUDA_CHECK(cudaMemsetAsync(bdk, 0xff, 2 * KN, s));
    CUDA_CHECK(cudaMemsetAsync(bdv, 0xff, 2 * KN, s));
    CUDA_CHECK(cudaMemsetAsync(dlse, 0xff, 4 * (size_t)T * NH, s));
    sl_bf_attn_fwd(bo, dlse, bq, bk, bv, NH * HD, NKV * HD, NKV * HD, dt, nt, T, NH, NKV, HD, scale);
    sl_bf_attn_bwd(ddq, bdk, bdv, NKV * HD, NKV * HD, bdo, bo, dlse, bq, bk, bv, NH * HD,
                   NKV * HD, NKV * HD, D, dkv, dt, nt, T, NH, NKV, HD, scale);
    down_bf(out, bo, QN);
    down(lse, dlse, 4 * (size_t)T * NH);
    down(dq, ddq, 4 * QN);
    down_bf(dk, bdk, KN);
    down_bf(dv, bdv, KN);
    void *ps[] = {dt, bq, bk, bv, bdo, bo, bdk, bdv, dlse, ddq, D, dkv};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) cudaFree(ps[i]);
    free(tiles);
}

extern "C" void sl_gpu_test_head(float *logprob, float *entropy, float *dh, float *dW,
                                 const float *dlogprob, const float *dentropy, const float *h,
                                 const float *W, const int32_t *target, int T, int C, int V)
{
    sl_bf_init();
    bf16 *bh = up_bf(h, (size_t)T * C), *bW = up_bf(W, (size_t)V * C);
    bf16 *lg = (bf16 *)up(NULL, 2 * (size_t)T * V);
    float *lse = (float *)up(NULL, 4 * T), *lp = (float *)up(NULL, 4 * T), *en = (float *)up(NULL, 4 * T);
    float *ddh = (float *)up(NULL, 4 * (size_t)T * C), *ddW = (float *)up(NULL, 4 * (size_t)V * C);
    float *dlp = (float *)up(dlogprob, 4 * T), *den = (float *)up(dentropy, 4 * T);
    int32_t *tg = (int32_t *)up(target, 4 * T);
    sl_bf_gemm(lg, 0, bh, bW, NULL, T, V, C, 0, 1, 1.f, 0.f);
    sl_bf_head_stats(lse, lp, en, lg, tg, T, V);
    sl_bf_head_grad(lg, lse, en, dlp, den, tg, T, V);
    sl_bf_gemm(ddh, 1, lg, bW, NULL, T, C, V, 0, 0, 1.f, 0.f);
    sl_bf_gemm(ddW, 1, lg, bh, ddW, V, C, T, 1, 0, 1.f, 1.f);
    down(logprob, lp, 4 * T);
    down(entropy, en, 4 * T);
    down(dh, ddh, 4 * (size_t)T * C);
    down(dW, ddW, 4 * (size_t)V * C);
    void *ps[] = {bh, bW, lg, lse, lp, en, ddh, ddW, dlp, den, tg};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) cudaFree(ps[i]);
}

/* rmsnorm forward + backward (accumulate = 0) */
extern "C" void sl_gpu_test_rmsnorm(float *out, float *dx, float *dw, const float *x,
                                    const float *w, const float *dout, int T, int C, float eps)
{
    sl_bf_init();
    float *dxin = (float *)up(x, 4 * (size_t)T * C), *dd = (float *)up(dout, 4 * (size_t)T * C);
    bf16 *bw = up_bf(w, C), *bo = (bf16 *)up(NULL, 2 * (size_t)T * C), *bdx = (bf16 *)up(NULL, 2 * (size_t)T * C);
    float *r = (float *)up(NULL, 4 * T), *ddx = (float *)up(NULL, 4 * (size_t)T * C), *ddw = (float *)up(NULL, 4 * C);
    sl_bf_rmsnorm_fwd(bo, r, dxin, bw, T, C, eps);
    sl_bf_rmsnorm_bwd(ddx, bdx, ddw, dd, dxin, bw, r, T, C, 0);
    down_bf(out, bo, (size_t)T * C);
    down(dx, ddx, 4 * (size_t)T * C);
    down(dw, ddw, 4 * C);
    void *ps[] = {dxin, dd, bw, bo, bdx, r, ddx, ddw};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) cudaFree(ps[i]);
}

/* swiglu forward + backward on gate|up packed (T, 2F) */
extern "C" void sl_gpu_test_swiglu(float *act, float *dgu, const float *gu, const float *dact,
                                   int T, int F)
{
    sl_bf_init();
    size_t n = (size_t)T * F;
    bf16 *bgu = up_bf(gu, 2 * n), *bda = up_bf(dact, n);
    bf16 *ba = (bf16 *)up(NULL, 2 * n), *bdgu = (bf16 *)up(NULL, 4 * n), *ba2 = (bf16 *)up(NULL, 2 * n);
    sl_bf_swiglu_fwd(ba, bgu, T, F);
    sl_bf_swiglu_bwd(bdgu, ba2, bda, bgu, T, F);
    down_bf(act, ba, n);
    down_bf(dgu, bdgu, 2 * n);
    void *ps[] = {bgu, bda, ba, bdgu, ba2};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) cudaFree(ps[i]);
}
