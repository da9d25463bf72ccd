/*
 * elementwise.cu — the CUDA twins of the CPU backend's elementwise ops:
 * residual add, bias add and its backward, embedding lookup and its
 * scatter-add backward, RoPE (rotate_half layout) and SwiGLU. Each op is a
 * __global__ kernel plus a host launcher; fp32, grid-stride loops.
 *
 * Not fused yet: each op is one pass over memory (fusion ideas in
 * tests/bench/NOTES.md).
 */
#include "common.cuh"

#define EW_THREADS 256

/* --------------------------------------------------------------- add */

__global__ void add_inplace_kernel(float *y, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

void sl_cuda_add_inplace(float *y, const float *x, size_t n)
{
    if (!n) return;
    add_inplace_kernel<<<ew_grid(n, EW_THREADS), EW_THREADS>>>(y, x, n);
    LAUNCH_CHECK();
}

/* -------------------------------------------------------------- bias */

__global__ void bias_add_kernel(float *out, const float *b, size_t n, int C)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] += b[i % (size_t)C];
}

void sl_cuda_bias_add(float *out, const float *b, int T, int C)
{
    size_t n = (size_t)T * (size_t)C;
    if (!n) return;
    bias_add_kernel<<<ew_grid(n, EW_THREADS), EW_THREADS>>>(out, b, n, C);
    LAUNCH_CHECK();
}

void sl_cuda_bias_bwd(float *db, const float *dout, int T, int C)
{
    sl_cuda_colsum(db, dout, NULL, NULL, T, C);
}

/* --------------------------------------------------------- embedding */

__global__ void embedding_fwd_kernel(float *out, const float *wte, const int32_t *tokens,
                                     size_t n, int C)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / (size_t)C, c = i % (size_t)C;
        out[i] = wte[(size_t)tokens[t] * C + c];
    }
}

/* repeated tokens add into the same row: atomics (order-dependent
 * rounding only) */
__global__ void embedding_bwd_kernel(float *dwte, const float *dout, const int32_t *tokens,
                                     size_t n, int C)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / (size_t)C, c = i % (size_t)C;
        atomicAdd(&dwte[(size_t)tokens[t] * C + c], dout[i]);
    }
}

void sl_cuda_embedding_fwd(float *out, const float *wte, const int32_t *tokens, int T, int C)
{
    size_t n = (size_t)T * (size_t)C;
    if (!n) return;
    embedding_fwd_kernel<<<ew_grid(n, EW_THREADS), EW_THREADS>>>(out, wte, tokens, n, C);
    LAUNCH_CHECK();
}

void sl_cuda_embedding_bwd(float *dwte, const float *dout, const int32_t *tokens, int T, int C)
{
    size_t n = (size_t)T * (size_t)C;
    if (!n) return;
    embedding_bwd_kernel<<<ew_grid(n, EW_THREADS), EW_THREADS>>>(dwte, dout, tokens, n, C);
    LAUNCH_CHECK();
}

/* -------------------------------------------------------------- rope */

/* one thread per (token, head, i < hd/2): rotates the pair (i, i + hd/2) */
__global__ void rope_kernel(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                            size_t n, int n_head, int hd, float sign)
{
    int half = hd / 2;
    for (size_t u = blockIdx.x * (size_t)blockDim.x + threadIdx.x; u < n;
         u += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(u % (size_t)half);
        size_t th = u / (size_t)half; /* token * n_head + head */
        size_t t = th / (size_t)n_head;
        size_t tab = (size_t)pos[t] * half + i;
        float c = cos_t[tab], s = sign * sin_t[tab];
        float *v = x + th * hd;
        float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
    }
}

static void rope_launch(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                        int T, int n_head, int hd, float sign)
{
    size_t n = (size_t)T * (size_t)n_head * (size_t)(hd / 2);
    if (!n) return;
    rope_kernel<<<ew_grid(n, EW_THREADS), EW_THREADS>>>(x, pos, cos_t, sin_t, n, n_head, hd,
                                                       sign);
    LAUNCH_CHECK();
}

void sl_cuda_rope_fwd(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                      int T, int n_head, int hd)
{
    rope_launch(x, pos, cos_t, sin_t, T, n_head, hd, 1.0f);
}

void sl_cuda_rope_bwd(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t,
                      int T, int n_head, int hd)
{
    rope_launch(dx, pos, cos_t, sin_t, T, n_head, hd, -1.0f);
}

/* ------------------------------------------------------------ swiglu */

__global__ void swiglu_fwd_kernel(float *out, const float *gate, const float *up, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

__global__ void swiglu_bwd_kernel(float *dgate, float *dup, const float *dout, const float *gate,
                                  const float *up, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i], sg = 1.0f / (1.0f + expf(-g)), d = dout[i];
        dup[i] = d * g * sg;
        dgate[i] = d * up[i] * sg * (1.0f + g * (1.0f - sg));
    }
}

void sl_cuda_swiglu_fwd(float *out, const float *gate, const float *up, size_t n)
{
    if (!n) return;
    swiglu_fwd_kernel<<<ew_grid(n, EW_THREADS), EW_THREADS>>>(out, gate, up, n);
    LAUNCH_CHECK();
}

void sl_cuda_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, size_t n)
{
    if (!n) return;
    swiglu_bwd_kernel<<<ew_grid(n, EW_THREADS), EW_THREADS>>>(dgate, dup, dout, gate, up, n);
    LAUNCH_CHECK();
}
