/*
 * bf16_kernels.cu — the elementwise and row kernels of the bf16 GPU model
 * (bf16.cuh): conversions, embedding, RMSNorm forward/backward (fp32
 * residual in, bf16 out), q/k/v bias + RoPE fused in place, SwiGLU,
 * the LM head's per-row log-softmax statistics and gradient, AdamW on fp32
 * master weights that also refreshes the bf16 copy. fp32 arithmetic
 * everywhere; bf16 only for storage.
 */
#include <math.h>

#include "bf16.cuh"

#define S_ (sl_bf_stream())

__global__ void k_f2b(bf16 *d, const float *s, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        d[i] = __float2bfloat16(s[i]);
}
__global__ void k_b2f(float *d, const bf16 *s, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        d[i] = __bfloat162float(s[i]);
}
void sl_bf_f32_to_bf16(bf16 *dst, const float *src, size_t n)
{
    if (!n) return;
    k_f2b<<<ew_grid(n, 256), 256, 0, S_>>>(dst, src, n);
    LAUNCH_CHECK();
}
void sl_bf_bf16_to_f32(float *dst, const bf16 *src, size_t n)
{
    if (!n) return;
    k_b2f<<<ew_grid(n, 256), 256, 0, S_>>>(dst, src, n);
    LAUNCH_CHECK();
}

/* ------------------------------------------------------------ embedding */
__global__ void k_embed_fwd(float *res, const bf16 *E, const int32_t *tok, int C)
{
    int t = blockIdx.x;
    const bf16 *e = E + (size_t)tok[t] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) res[(size_t)t * C + c] = __bfloat162float(e[c]);
}
__global__ void k_embed_bwd(float *dE, const float *dres, const int32_t *tok, int C)
{
    int t = blockIdx.x;
    float *d = dE + (size_t)tok[t] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) atomicAdd(d + c, dres[(size_t)t * C + c]);
}
void sl_bf_embed_fwd(float *res, const bf16 *E, const int32_t *tok, int T, int C)
{
    k_embed_fwd<<<T, 256, 0, S_>>>(res, E, tok, C);
    LAUNCH_CHECK();
}
void sl_bf_embed_bwd(float *dE, const float *dres, const int32_t *tok, int T, int C)
{
    k_embed_bwd<<<T, 256, 0, S_>>>(dE, dres, tok, C);
    LAUNCH_CHECK();
}

/* -------------------------------------------------------------- rmsnorm */
/* one warp per row */
__global__ void k_rms_fwd(bf16 *out, float *rstd, const float *x, const bf16 *w, int T, int C,
                          float eps)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= T) return;
    const float *xr = x + (size_t)row * C;
    float ss = 0.f;
    for (int c = lane; c < C; c += 32) ss += xr[c] * xr[c];
    ss = warp_sum(ss);
    float r = rsqrtf(ss / (float)C + eps);
    if (lane == 0) rstd[row] = r;
    bf16 *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) o[c] = __float2bfloat16(__bfloat162float(w[c]) * xr[c] * r);
}
void sl_bf_rmsnorm_fwd(bf16 *out, float *rstd, const float *x, const bf16 *w, int T, int C,
                       float eps)
{
    k_rms_fwd<<<cdiv_u(T, 8), 256, 0, S_>>>(out, rstd, x, w, T, C, eps);
    LAUNCH_CHECK();
}

/* dx = r * (w*g) - x * r^3 / C * sum(w*g*x); one warp per row */
__global__ void k_rms_bwd(float *dx, bf16 *dx_b, const float *dout, const float *x, const bf16 *w,
                          const float *rstd, int T, int C, int acc)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= T) return;
    const float *xr = x + (size_t)row * C, *g = dout + (size_t)row * C;
    float dot = 0.f;
    for (int c = lane; c < C; c += 32) dot += __bfloat162float(w[c]) * g[c] * xr[c];
    dot = warp_sum(dot);
    float r = rstd[row], k = dot * r * r * r / (float)C;
    float *d = dx + (size_t)row * C;
    bf16 *db = dx_b + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float v = r * __bfloat162float(w[c]) * g[c] - xr[c] * k;
        if (acc) v += d[c];
        d[c] = v;
        db[c] = __float2bfloat16(v);
    }
}
/* dw[c] += sum_t dout[t,c] x[t,c] r[t]: blocks of 32 columns x 8 row lanes */
__global__ void k_rms_dw(float *dw, const float *dout, const float *x, const float *rstd, int T,
                         int C, int rows_per)
{
    __shared__ float sh[8][33];
    int c = blockIdx.x * 32 + threadIdx.x, t0 = blockIdx.y * rows_per;
    int t1 = min(T, t0 + rows_per);
    float s = 0.f;
    if (c < C)
        for (int t = t0 + threadIdx.y; t < t1; t += 8)
            s += dout[(size_t)t * C + c] * x[(size_t)t * C + c] * rstd[t];
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int i = 1; i < 8; i++) s += sh[i][threadIdx.x];
        atomicAdd(dw + c, s);
    }
}
void sl_bf_rmsnorm_bwd(float *dx, bf16 *dx_b, float *dw, const float *dout, const float *x,
                       const bf16 *w, const float *rstd, int T, int C, int accumulate)
{
    /* dw first: it reads nothing that dx overwrites (dout, x distinct) */
    int rows_per = 64;
    dim3 g(cdiv_u(C, 32), cdiv_u(T, rows_per));
    k_rms_dw<<<g, dim3(32, 8), 0, S_>>>(dw, dout, x, rstd, T, C, rows_per);
    LAUNCH_CHECK();
    k_rms_bwd<<<cdiv_u(T, 8), 256, 0, S_>>>(dx, dx_b, dout, x, w, rstd, T, C, accumulate);
    LAUNCH_CHECK();
}

/* ----------------------------------------------------------------- qkv */
/* block per token; threads over (head, i < HD/2) pairs for q and k, and
 * plain bias for v */
__global__ void k_qkv_fwd(bf16 *qkv, const bf16 *bias, const int32_t *pos, const float *cos_t,
                          const float *sin_t, int NH, int NKV, int HD)
{
    int t = blockIdx.x, half = HD / 2, W = (NH + 2 * NKV) * HD;
    bf16 *row = qkv + (size_t)t * W;
    const float *ct = cos_t + (size_t)pos[t] * half, *st = sin_t + (size_t)pos[t] * half;
    int n_rot = (NH + NKV) * half;
    for (int j = threadIdx.x; j < n_rot; j += blockDim.x) {
        int h = j / half, i = j % half;
        int o = h * HD + i;
        float x1 = __bfloat162float(row[o]), x2 = __bfloat162float(row[o + half]);
        if (bias) x1 += __bfloat162float(bias[o]), x2 += __bfloat162float(bias[o + half]);
        float c = ct[i], s = st[i];
        row[o] = __float2bfloat16(x1 * c - x2 * s);
        row[o + half] = __float2bfloat16(x2 * c + x1 * s);
    }
    if (bias)
        for (int j = (NH + NKV) * HD + threadIdx.x; j < W; j += blockDim.x)
            row[j] = __float2bfloat16(__bfloat162float(row[j]) + __bfloat162float(bias[j]));
}
void sl_bf_qkv_post_fwd(bf16 *qkv, const bf16 *bias, const int32_t *pos, const float *cos_t,
                        const float *sin_t, int T, int NH, int NKV, int HD)
{
    k_qkv_fwd<<<T, 256, 0, S_>>>(qkv, bias, pos, cos_t, sin_t, NH, NKV, HD);
    LAUNCH_CHECK();
}

/* dx1 = dy1 c + dy2 s; dx2 = dy2 c - dy1 s */
__global__ void k_qkv_bwd(bf16 *dqkv, const float *dq, const int32_t *pos, const float *cos_t,
                          const float *sin_t, int NH, int NKV, int HD)
{
    int t = blockIdx.x, half = HD / 2, W = (NH + 2 * NKV) * HD;
    bf16 *row = dqkv + (size_t)t * W;
    const float *dqr = dq + (size_t)t * NH * HD;
    const float *ct = cos_t + (size_t)pos[t] * half, *st = sin_t + (size_t)pos[t] * half;
    int n_rot = (NH + NKV) * half;
    for (int j = threadIdx.x; j < n_rot; j += blockDim.x) {
        int h = j / half, i = j % half, o = h * HD + i;
        float y1, y2;
        if (h < NH) y1 = dqr[o], y2 = dqr[o + half];
        else y1 = __bfloat162float(row[o]), y2 = __bfloat162float(row[o + half]);
        float c = ct[i], s = st[i];
        row[o] = __float2bfloat16(y1 * c + y2 * s);
        row[o + half] = __float2bfloat16(y2 * c - y1 * s);
    }
}
/* db[c] += sum_t a[t,c] over bf16 a (T, C) */
__global__ void k_colsum_b(float *db, const bf16 *a, int T, int C, int rows_per)
{
    __shared__ float sh[8][33];
    int c = blockIdx.x * 32 + threadIdx.x, t0 = blockIdx.y * rows_per;
    int t1 = min(T, t0 + rows_per);
    float s = 0.f;
    if (c < C)
        for (int t = t0 + threadIdx.y; t < t1; t += 8) s += __bfloat162float(a[(size_t)t * C + c]);
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int i = 1; i < 8; i++) s += sh[i][threadIdx.x];
        atomicAdd(db + c, s);
    }
}
void sl_bf_qkv_post_bwd(bf16 *dqkv, const float *dq, float *dbias, const int32_t *pos,
                        const float *cos_t, const float *sin_t, int T, int NH, int NKV, int HD)
{
    k_qkv_bwd<<<T, 256, 0, S_>>>(dqkv, dq, pos, cos_t, sin_t, NH, NKV, HD);
    LAUNCH_CHECK();
    if (dbias) {
        int W = (NH + 2 * NKV) * HD, rows_per = 128;
        dim3 g(cdiv_u(W, 32), cdiv_u(T, rows_per));
        k_colsum_b<<<g, dim3(32, 8), 0, S_>>>(dbias, dqkv, T, W, rows_per);
        LAUNCH_CHECK();
    }
}

/* ------------------------------------------------- q/k norm (Qwen3) */
/* one warp per (token, head) of the q and k heads of qkv (T, W): pre =
 * the projection, qkv = w * pre * rstd (per head, over HD) */
__global__ void k_headnorm_fwd(bf16 *qkv, bf16 *pre, float *rstd, const bf16 *wq,
                               const bf16 *wk, int T, int NH, int NKV, int HD, float eps)
{
    int nhk = NH + NKV, W = (NH + 2 * NKV) * HD, lane = threadIdx.x & 31;
    long row = blockIdx.x * (long)(blockDim.x / 32) + threadIdx.x / 32;
    if (row >= (long)T * nhk) return;
    int t = (int)(row / nhk), h = (int)(row % nhk);
    bf16 *x = qkv + (size_t)t * W + (size_t)h * HD, *p = pre + (size_t)row * HD;
    const bf16 *w = h < NH ? wq : wk;
    float v[4], ss = 0.f;
    for (int j = 0; j < HD / 32; j++) {
        bf16 b = x[lane + 32 * j];
        p[lane + 32 * j] = b;
        v[j] = __bfloat162float(b);
        ss += v[j] * v[j];
    }
    ss = warp_sum(ss);
    float r = rsqrtf(ss / (float)HD + eps);
    if (lane == 0) rstd[row] = r;
    for (int j = 0; j < HD / 32; j++) {
        int c = lane + 32 * j;
        x[c] = __float2bfloat16(__bfloat162float(w[c]) * v[j] * r);
    }
}
void sl_bf_headnorm_fwd(bf16 *qkv, bf16 *pre, float *rstd, const bf16 *wq, const bf16 *wk, int T,
                        int NH, int NKV, int HD, float eps)
{
    long rows = (long)T * (NH + NKV);
    k_headnorm_fwd<<<cdiv_u((size_t)rows, 8), 256, 0, S_>>>(qkv, pre, rstd, wq, wk, T, NH, NKV,
                                                             HD, eps);
    LAUNCH_CHECK();
}

/* in place on the q and k parts of dqkv (gradient w.r.t. the normed
 * values): dx = r w g - x r^3 / HD sum(w g x); dw += sum g x r (block
 * partial sums in shared memory, one atomic per column per block) */
__global__ void k_headnorm_bwd(bf16 *dqkv, const bf16 *pre, const float *rstd, const bf16 *wq,
                               const bf16 *wk, float *dwq, float *dwk, int T, int NH, int NKV,
                               int HD)
{
    __shared__ float sdw[2][128];
    for (int c = threadIdx.x; c < 2 * 128; c += blockDim.x) (&sdw[0][0])[c] = 0.f;
    __syncthreads();
    int nhk = NH + NKV, W = (NH + 2 * NKV) * HD, lane = threadIdx.x & 31, warps = blockDim.x / 32;
    long rows = (long)T * nhk;
    for (long row = blockIdx.x * (long)warps + threadIdx.x / 32; row < rows;
         row += (long)gridDim.x * warps) {
        int t = (int)(row / nhk), h = (int)(row % nhk), isk = h >= NH;
        bf16 *dy = dqkv + (size_t)t * W + (size_t)h * HD;
        const bf16 *x = pre + (size_t)row * HD, *w = isk ? wk : wq;
        float r = rstd[row], g[4], xv[4], dot = 0.f;
        for (int j = 0; j < HD / 32; j++) {
            int c = lane + 32 * j;
            g[j] = __bfloat162float(dy[c]);
            xv[j] = __bfloat162float(x[c]);
            dot += __bfloat162float(w[c]) * g[j] * xv[j];
        }
        dot = warp_sum(dot);
        float k = dot * r * r * r / (float)HD;
        for (int j = 0; j < HD / 32; j++) {
            int c = lane + 32 * j;
            dy[c] = __float2bfloat16(r * __bfloat162float(w[c]) * g[j] - xv[j] * k);
            atomicAdd(&sdw[isk][c], g[j] * xv[j] * r);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < HD; c += blockDim.x) {
        atomicAdd(dwq + c, sdw[0][c]);
        atomicAdd(dwk + c, sdw[1][c]);
    }
}
void sl_bf_headnorm_bwd(bf16 *dqkv, const bf16 *pre, const float *rstd, const bf16 *wq,
                        const bf16 *wk, float *dwq, float *dwk, int T, int NH, int NKV, int HD)
{
    long rows = (long)T * (NH + NKV);
    unsigned blocks = cdiv_u((size_t)rows, 8);
    if (blocks > 1024) blocks = 1024;
    k_headnorm_bwd<<<blocks, 256, 0, S_>>>(dqkv, pre, rstd, wq, wk, dwq, dwk, T, NH, NKV, HD);
    LAUNCH_CHECK();
}

/* -------------------------------------------------------------- swiglu */
/* 8 columns per thread (uint4 of bf16); F % 8 == 0 (checked by the launcher) */
__global__ void k_swiglu_fwd(bf16 *act, const bf16 *gu, int T, int F)
{
    int F8 = F / 8;
    size_t n = (size_t)T * F8;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned t = (unsigned)(i / (unsigned)F8), f = (unsigned)(i % (unsigned)F8) * 8;
        uint4 gv = *(const uint4 *)(gu + (size_t)t * 2 * F + f);
        uint4 uv = *(const uint4 *)(gu + (size_t)t * 2 * F + F + f);
        const bf16 *ge = (const bf16 *)&gv, *ue = (const bf16 *)&uv;
        uint4 ov;
        bf16 *oe = (bf16 *)&ov;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float g = __bfloat162float(ge[j]), u = __bfloat162float(ue[j]);
            oe[j] = __float2bfloat16(g / (1.f + __expf(-g)) * u);
        }
        *(uint4 *)(act + (size_t)t * F + f) = ov;
    }
}
__global__ void k_swiglu_bwd(bf16 *dgu, bf16 *act, const bf16 *dact, const bf16 *gu, int T, int F)
{
    int F8 = F / 8;
    size_t n = (size_t)T * F8;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned t = (unsigned)(i / (unsigned)F8), f = (unsigned)(i % (unsigned)F8) * 8;
        size_t gi = (size_t)t * 2 * F + f, ai = (size_t)t * F + f;
        uint4 gv = *(const uint4 *)(gu + gi), uv = *(const uint4 *)(gu + gi + F);
        uint4 dv = *(const uint4 *)(dact + ai);
        const bf16 *ge = (const bf16 *)&gv, *ue = (const bf16 *)&uv, *de = (const bf16 *)&dv;
        uint4 av, dgv, duv;
        bf16 *ae = (bf16 *)&av, *dge = (bf16 *)&dgv, *due = (bf16 *)&duv;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float g = __bfloat162float(ge[j]), u = __bfloat162float(ue[j]), d = __bfloat162float(de[j]);
            float sg = 1.f / (1.f + __expf(-g)), silu = g * sg;
            ae[j] = __float2bfloat16(silu * u);
            dge[j] = __float2bfloat16(d * u * sg * (1.f + g * (1.f - sg)));
            due[j] = __float2bfloat16(d * silu);
        }
        *(uint4 *)(act + ai) = av;
        *(uint4 *)(dgu + gi) = dgv;
        *(uint4 *)(dgu + gi + F) = duv;
    }
}
static void need_f8(int F)
{
    if (F % 8) sl_cuda_die("swiglu", "intermediate_size must be a multiple of 8", __func__, __FILE__, __LINE__);
}
void sl_bf_swiglu_fwd(bf16 *act, const bf16 *gu, int T, int F)
{
    need_f8(F);
    size_t n = (size_t)T * F / 8;
    k_swiglu_fwd<<<ew_grid(n, 256), 256, 0, S_>>>(act, gu, T, F);
    LAUNCH_CHECK();
}
void sl_bf_swiglu_bwd(bf16 *dgu, bf16 *act, const bf16 *dact, const bf16 *gu, int T, int F)
{
    need_f8(F);
    size_t n = (size_t)T * F / 8;
    k_swiglu_bwd<<<ew_grid(n, 256), 256, 0, S_>>>(dgu, act, dact, gu, T, F);
    LAUNCH_CHECK();
}

/* ------------------------------------------------------------- LM head */
/* online (max, sum exp, sum exp * x) merge */
__device__ __forceinline__ void om_merge(float &m, float &s, float &u, float m2, float s2, float u2)
{
    float mn = fmaxf(m, m2);
    if (mn == -INFINITY) return;
    float a = __expf(m - mn), b = __expf(m2 - mn);
    s = s * a + s2 * b;
    u = u * a + u2 * b;
    m = mn;
}

#define HEAD_THREADS 512
__global__ void k_head_stats(float *lse, float *logprob, float *entropy, const bf16 *logits,
                             const int32_t *target, int V)
{
    int t = blockIdx.x;
    const bf16 *row = logits + (size_t)t * V;
    float m = -INFINITY, s = 0.f, u = 0.f;
    int nv = (V % 8 == 0) ? V / 8 : 0;
    const uint4 *r4 = (const uint4 *)row;
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        uint4 q = r4[i];
        const bf16 *e = (const bf16 *)&q;
        float x[8], mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < 8; j++) x[j] = __bfloat162float(e[j]), mx = fmaxf(mx, x[j]);
        float ls = 0.f, lu = 0.f;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float p = __expf(x[j] - mx);
            ls += p, lu += p * x[j];
        }
        om_merge(m, s, u, mx, ls, lu);
    }
    for (int i = nv * 8 + threadIdx.x; i < V; i += blockDim.x) {
        float x = __bfloat162float(row[i]);
        om_merge(m, s, u, x, 1.f, x);
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o),
              u2 = __shfl_xor_sync(0xffffffffu, u, o);
        om_merge(m, s, u, m2, s2, u2);
    }
    __shared__ float sm[32], ss[32], su[32];
    int w = threadIdx.x / 32, lane = threadIdx.x & 31, nw = blockDim.x / 32;
    if (lane == 0) sm[w] = m, ss[w] = s, su[w] = u;
    __syncthreads();
    if (w == 0) {
        m = lane < nw ? sm[lane] : -INFINITY;
        s = lane < nw ? ss[lane] : 0.f;
        u = lane < nw ? su[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1) {
            float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o),
                  u2 = __shfl_xor_sync(0xffffffffu, u, o);
            om_merge(m, s, u, m2, s2, u2);
        }
        if (lane == 0) {
            float l = m + logf(s);
            lse[t] = l;
            int tg = target[t];
            logprob[t] = tg >= 0 ? __bfloat162float(row[tg]) - l : 0.f;
            if (entropy) entropy[t] = l - u / s;
        }
    }
}
void sl_bf_head_stats(float *lse, float *logprob, float *entropy, const bf16 *logits,
                      const int32_t *target, int Tc, int V)
{
    k_head_stats<<<Tc, HEAD_THREADS, 0, S_>>>(lse, logprob, entropy, logits, target, V);
    LAUNCH_CHECK();
}

/* dlogit_v = dlp * ([v == tg] - p_v) + dent * (-p_v (log p_v + H)) */
__global__ void k_head_grad(bf16 *logits, const float *lse, const float *entropy,
                            const float *dlogprob, const float *dentropy, const int32_t *target,
                            int V)
{
    int t = blockIdx.x, tg = target[t];
    bf16 *row = logits + (size_t)t * V;
    float l = lse[t], dlp = tg >= 0 ? dlogprob[t] : 0.f;
    float de = dentropy ? dentropy[t] : 0.f, H = (dentropy && entropy) ? entropy[t] : 0.f;
    int nv = (V % 8 == 0) ? V / 8 : 0;
    uint4 *r4 = (uint4 *)row;
    for (int i = threadIdx.x; i < nv; i += blockDim.x) {
        uint4 q = r4[i];
        bf16 *e = (bf16 *)&q;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float lp = __bfloat162float(e[j]) - l, p = __expf(lp);
            float d = -dlp * p - de * p * (lp + H);
            if (i * 8 + j == tg) d += dlp;
            e[j] = __float2bfloat16(d);
        }
        r4[i] = q;
    }
    for (int i = nv * 8 + threadIdx.x; i < V; i += blockDim.x) {
        float lp = __bfloat162float(row[i]) - l, p = __expf(lp);
        float d = -dlp * p - de * p * (lp + H);
        if (i == tg) d += dlp;
        row[i] = __float2bfloat16(d);
    }
}
void sl_bf_head_grad(bf16 *logits, const float *lse, const float *entropy,
                     const float *dlogprob, const float *dentropy, const int32_t *target, int Tc,
                     int V)
{
    k_head_grad<<<Tc, HEAD_THREADS, 0, S_>>>(logits, lse, entropy, dlogprob, dentropy, target, V);
    LAUNCH_CHECK();
}

/* --------------------------------------------------------------- adamw */
__global__ void k_adamw(float *p, float *g, float *m, float *v, bf16 *pb, size_t n, size_t nd,
                        float lr, float b1, float b2, float eps, float wd, float bc1, float bc2)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i], mi = b1 * m[i] + (1.f - b1) * gi, vi = b2 * v[i] + (1.f - b2) * gi * gi;
        m[i] = mi, v[i] = vi;
        float pi = p[i];
        if (i < nd) pi -= lr * wd * pi;
        pi -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
        p[i] = pi;
        pb[i] = __float2bfloat16(pi);
        g[i] = 0.f;
    }
}
void sl_bf_adamw(float *p, float *g, float *m, float *v, bf16 *pb, size_t n, size_t n_decay,
                 float lr, float b1, float b2, float eps, float wd, float bc1, float bc2)
{
    k_adamw<<<ew_grid(n, 256), 256, 0, S_>>>(p, g, m, v, pb, n, n_decay, lr, b1, b2, eps, wd, bc1, bc2);
    LAUNCH_CHECK();
}

__global__ void k_sumsq(double *out, const float *x, size_t n)
{
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    s = warp_sum_d(s);
    if ((threadIdx.x & 31) == 0) atomicAdd(out, s);
}
__global__ void k_scale(float *x, size_t n, const double *sumsq, float max_norm)
{
    double nrm = sqrt(*sumsq);
    if (nrm <= max_norm) return;
    float f = (float)(max_norm / (nrm + 1e-6));
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= f;
}
void sl_bf_sumsq(double *out, const float *x, size_t n)
{
    k_sumsq<<<1024, 256, 0, S_>>>(out, x, n);
    LAUNCH_CHECK();
}
void sl_bf_scale(float *x, size_t n, const double *sumsq, float max_norm)
{
    k_scale<<<ew_grid(n, 256), 256, 0, S_>>>(x, n, sumsq, max_norm);
    LAUNCH_CHECK();
}
