/*
 * rmsnorm.cu — RMSNorm forward/backward (HF LlamaRMSNorm) and the column
 * sum kernel shared with bias backward. One warp per row; the weight
 * gradient is a column reduction over rows (block partial sums, then one
 * atomicAdd per column and block).
 *
 * Not fused with the residual add yet (NOTES.md).
 */
#include "common.cuh"

#define ROWS_PER_BLOCK 8 /* warps per block, one row each */

__global__ void rmsnorm_fwd_kernel(float *out, float *rstd, const float *inp, const float *w,
                                   int T, int C, float eps)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= T) return;
    const float *x = inp + (size_t)row * C;
    float *o = out + (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) ss += x[c] * x[c];
    ss = warp_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    if (lane == 0) rstd[row] = r;
    /* out may alias inp: each lane rewrites only the elements it read */
    for (int c = lane; c < C; c += 32) o[c] = w[c] * (x[c] * r);
}

__global__ void rmsnorm_bwd_kernel(float *dinp, const float *dout, const float *inp,
                                   const float *w, const float *rstd, int T, int C)
{
    int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= T) return;
    const float *x = inp + (size_t)row * C, *g = dout + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    float r = rstd[row], dot = 0.0f;
    for (int c = lane; c < C; c += 32) dot += w[c] * g[c] * x[c];
    dot = warp_sum(dot);
    float k = dot * r * r * r / (float)C;
    for (int c = lane; c < C; c += 32) dx[c] += r * w[c] * g[c] - k * x[c];
}

void sl_cuda_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int T, int C,
                         float eps)
{
    if (T <= 0) return;
    rmsnorm_fwd_kernel<<<cdiv_u((size_t)T, ROWS_PER_BLOCK), 32 * ROWS_PER_BLOCK>>>(
        out, rstd, inp, w, T, C, eps);
    LAUNCH_CHECK();
}

void sl_cuda_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, const float *rstd, int T, int C)
{
    if (T <= 0) return;
    rmsnorm_bwd_kernel<<<cdiv_u((size_t)T, ROWS_PER_BLOCK), 32 * ROWS_PER_BLOCK>>>(
        dinp, dout, inp, w, rstd, T, C);
    LAUNCH_CHECK();
    sl_cuda_colsum(dw, dout, inp, rstd, T, C);
}

/* ---------------------------------------------------------- column sum */

#define CS_X 32
#define CS_Y 8
#define CS_ROWS 256 /* rows per block along y (more when T needs > 65535 slabs) */

/* block (32, 8): columns blockIdx.x*32 + tx, rows of one slab of `rows` */
__global__ void colsum_kernel(float *dst, const float *a, const float *b, const float *r, int T,
                              int C, int rows)
{
    __shared__ float part[CS_Y][CS_X + 1];
    int c = blockIdx.x * CS_X + threadIdx.x;
    int t0 = blockIdx.y * rows, t1 = min(T, t0 + rows);
    float s = 0.0f;
    if (c < C)
        for (int t = t0 + threadIdx.y; t < t1; t += CS_Y) {
            size_t i = (size_t)t * C + c;
            float v = a[i];
            if (b) v *= b[i];
            if (r) v *= r[t];
            s += v;
        }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        for (int y = 1; y < CS_Y; y++) s += part[y][threadIdx.x];
        atomicAdd(&dst[c], s);
    }
}

void sl_cuda_colsum(float *dst, const float *a, const float *b, const float *r, int T, int C)
{
    if (T <= 0 || C <= 0) return;
    int rows = CS_ROWS;
    if (cdiv_u((size_t)T, (size_t)rows) > 65535u) rows = (int)cdiv_u((size_t)T, 65535u);
    dim3 grid(cdiv_u((size_t)C, CS_X), cdiv_u((size_t)T, (size_t)rows)), block(CS_X, CS_Y);
    colsum_kernel<<<grid, block>>>(dst, a, b, r, T, C, rows);
    LAUNCH_CHECK();
}
