/*
 * flash.cu — causal grouped-query attention of the bf16 GPU model over
 * packed variable-length sequences, flash style: 64x64 tiles, bf16 tensor
 * cores through WMMA (16x16x16, fp32 accumulation), online softmax, the
 * T x T score matrix never stored. Forward: one block of 4 warps per
 * (64-query tile, head), each warp 16 query rows. Backward (FlashAttention-2
 * order): one block per (64-key tile, kv head) looping over the group's
 * query heads and the query tiles at and after the key tile; dK and dV
 * stay in registers, dQ is accumulated in fp32 with atomics.
 *
 * Scores are staged through shared memory (fp32) so the softmax works on a
 * known layout; that costs shared-memory traffic, not correctness.
 */
#include <math.h>
#include <mma.h>

#include "bf16.cuh"

using namespace nvcuda;

#define BT 64             /* rows per tile */
#define NW 4              /* warps per block */
#define SP (BT + 4)       /* fp32 score row pitch */
#define LOG2E 1.4426950408889634f

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa_row;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> fa_col;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb_row;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb_col;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;

/* load rows [r0, r0+64) of a (T, stride) bf16 matrix's HD columns into
 * shared (pitch HD+8); rows outside [r0, end) are zero */
template <int HD>
__device__ __forceinline__ void load_tile(bf16 *sm, const bf16 *g, int stride, int r0, int end)
{
    const int P = HD + 8, VPR = HD / 8; /* uint4 per row */
    for (int i = threadIdx.x; i < BT * VPR; i += blockDim.x) {
        int r = i / VPR, c = (i % VPR) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (r0 + r < end) v = *(const uint4 *)(g + (size_t)(r0 + r) * stride + c);
        *(uint4 *)(sm + r * P + c) = v;
    }
}

template <int HD>
__global__ void __launch_bounds__(NW * 32)
k_attn_fwd(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int sq, int sk,
           int sv, const sl_att_tile *tiles, int NH, int NKV, float scale)
{
    const int P = HD + 8, OP = HD + 4;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = (bf16 *)smem, *Ks = Qs + BT * P, *Vs = Ks + BT * P, *Ps = Vs + BT * P;
    float *S = (float *)(Ps + BT * P), *O = S + BT * SP, *mrow = O + BT * OP, *lrow = mrow + BT;

    sl_att_tile tl = tiles[blockIdx.x];
    int h = blockIdx.y, kvh = h / (NH / NKV);
    int w = threadIdx.x / 32, lane = threadIdx.x & 31, r0 = w * 16;
    int q0 = tl.r0;
    float sl2 = scale * LOG2E;

    load_tile<HD>(Qs, q + (size_t)h * HD, sq, q0, tl.end);
    for (int i = threadIdx.x; i < BT * OP; i += blockDim.x) O[i] = 0.f;
    if (threadIdx.x < BT) mrow[threadIdx.x] = -INFINITY, lrow[threadIdx.x] = 0.f;

    int qlast = min(q0 + BT, tl.end) - 1;
    for (int kt = tl.start; kt <= qlast; kt += BT) {
        __syncthreads();
        load_tile<HD>(Ks, k + (size_t)kvh * HD, sk, kt, tl.end);
        load_tile<HD>(Vs, v + (size_t)kvh * HD, sv, kt, tl.end);
        __syncthreads();
        /* S_w = Q_w K^T */
        for (int n = 0; n < BT / 16; n++) {
            fc acc;
            wmma::fill_fragment(acc, 0.f);
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                fa_row a;
                fb_col b;
                wmma::load_matrix_sync(a, Qs + r0 * P + kk * 16, P);
                wmma::load_matrix_sync(b, Ks + n * 16 * P + kk * 16, P);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(S + r0 * SP + n * 16, acc, SP, wmma::mem_row_major);
        }
        __syncwarp();
        /* online softmax on the warp's 16 rows: lane pair (2i, 2i+1) owns
         * row r0+i, each lane 32 of its 64 columns */
        {
            int row = r0 + (lane >> 1), hf = lane & 1, qi = q0 + row;
            const float *sr = S + row * SP + hf * 32;
            float sv[32], mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < 32; j += 4) {
                float4 f = *(const float4 *)(sr + j);
                sv[j] = f.x, sv[j + 1] = f.y, sv[j + 2] = f.z, sv[j + 3] = f.w;
            }
            int kb = kt + hf * 32;
#pragma unroll
            for (int j = 0; j < 32; j++) {
                int kj = kb + j;
                bool ok = kj <= qi && kj < tl.end && qi < tl.end;
                sv[j] = ok ? sv[j] * sl2 : -INFINITY;
                mx = fmaxf(mx, sv[j]);
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            float mo = mrow[row], mn = fmaxf(mo, mx), alpha = 1.f, ps = 0.f;
            bool live = mn != -INFINITY;
            if (live) alpha = mo == -INFINITY ? 0.f : exp2f(mo - mn);
            bf16 *pr = Ps + row * P + hf * 32;
#pragma unroll
            for (int j = 0; j < 32; j += 2) {
                float p0 = live ? exp2f(sv[j] - mn) : 0.f, p1 = live ? exp2f(sv[j + 1] - mn) : 0.f;
                ps += p0 + p1;
                *(__nv_bfloat162 *)(pr + j) = __floats2bfloat162_rn(p0, p1);
            }
            ps += __shfl_xor_sync(0xffffffffu, ps, 1);
            float *orow = O + row * OP + hf * (HD / 2);
#pragma unroll
            for (int c = 0; c < HD / 2; c++) orow[c] *= alpha;
            __syncwarp();
            if (hf == 0) mrow[row] = mn, lrow[row] = lrow[row] * alpha + ps;
        }
        __syncwarp();
        /* O_w += P_w V */
        for (int n = 0; n < HD / 16; n++) {
            fc acc;
            wmma::load_matrix_sync(acc, O + r0 * OP + n * 16, OP, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < BT / 16; kk++) {
                fa_row a;
                fb_row b;
                wmma::load_matrix_sync(a, Ps + r0 * P + kk * 16, P);
                wmma::load_matrix_sync(b, Vs + kk * 16 * P + n * 16, P);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(O + r0 * OP + n * 16, acc, OP, wmma::mem_row_major);
        }
    }
    __syncthreads();
    for (int i = 0; i < 16; i++) {
        int row = r0 + i, qi = q0 + row;
        if (qi >= tl.end) break;
        float l = lrow[row], inv = 1.f / l;
        bf16 *o = out + (size_t)qi * NH * HD + (size_t)h * HD;
        for (int c = lane; c < HD; c += 32) o[c] = __float2bfloat16(O[row * OP + c] * inv);
        if (lane == 0) lse[(size_t)qi * NH + h] = (mrow[row] + log2f(l)) / LOG2E;
    }
}

template <int HD>
static size_t fwd_smem(void)
{
    return (size_t)4 * BT * (HD + 8) * 2 + (size_t)BT * SP * 4 + (size_t)BT * (HD + 4) * 4 +
           2 * BT * 4;
}

void sl_bf_attn_fwd(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int sq,
                    int sk, int sv, const sl_att_tile *tiles, int n_tiles, int T, int NH, int NKV,
                    int HD, float scale)
{
    (void)T;
    dim3 g(n_tiles, NH);
    if (HD == 64) {
        size_t sm = fwd_smem<64>();
        CUDA_CHECK(cudaFuncSetAttribute(k_attn_fwd<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
        k_attn_fwd<64><<<g, NW * 32, sm, sl_bf_stream()>>>(out, lse, q, k, v, sq, sk, sv, tiles, NH, NKV, scale);
    } else if (HD == 128) {
        size_t sm = fwd_smem<128>();
        CUDA_CHECK(cudaFuncSetAttribute(k_attn_fwd<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
        k_attn_fwd<128><<<g, NW * 32, sm, sl_bf_stream()>>>(out, lse, q, k, v, sq, sk, sv, tiles, NH, NKV, scale);
    } else {
        sl_cuda_die("sl_bf_attn_fwd", "head_dim must be 64 or 128", __func__, __FILE__, __LINE__);
    }
    LAUNCH_CHECK();
}

/* D[t,h] = sum_c dout * out; one warp per (t, h) */
__global__ void k_attn_D(float *D, const bf16 *dout, const bf16 *out, int T, int NH, int HD)
{
    size_t r = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (r >= (size_t)T * NH) return;
    const bf16 *a = dout + r * HD, *b = out + r * HD;
    float s = 0.f;
    for (int c = lane; c < HD; c += 32) s += __bfloat162float(a[c]) * __bfloat162float(b[c]);
    s = warp_sum(s);
    if (lane == 0) D[r] = s;
}

template <int HD>
__global__ void __launch_bounds__(NW * 32)
k_attn_bwd(float *dq, float *dkf, float *dvf, const bf16 *dout, const float *lse,
           const bf16 *q, const bf16 *k, const bf16 *v, int sq, int sk, int sv, const float *Dg,
           const sl_att_tile *tiles, int NH, int NKV, float scale)
{
    const int P = HD + 8, QP = HD + 4;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Ks = (bf16 *)smem, *Vs = Ks + BT * P, *Qs = Vs + BT * P, *dOs = Qs + BT * P;
    bf16 *PT = dOs + BT * P, *dST = PT + BT * P;
    float *S = (float *)(dST + BT * P), *dQs = S + BT * SP, *lse_s = dQs + BT * QP,
          *D_s = lse_s + BT;

    sl_att_tile tl = tiles[blockIdx.x];
    int h = blockIdx.y, G = NH / NKV, kvh = h / G;
    int w = threadIdx.x / 32, lane = threadIdx.x & 31, r0 = w * 16;
    int k0 = tl.r0;
    float sl2 = scale * LOG2E;

    load_tile<HD>(Ks, k + (size_t)kvh * HD, sk, k0, tl.end);
    load_tile<HD>(Vs, v + (size_t)kvh * HD, sv, k0, tl.end);

    fc dK[HD / 16], dV[HD / 16];
#pragma unroll
    for (int n = 0; n < HD / 16; n++) wmma::fill_fragment(dK[n], 0.f), wmma::fill_fragment(dV[n], 0.f);

    {
        for (int q0 = k0; q0 < tl.end; q0 += BT) {
            __syncthreads();
            load_tile<HD>(Qs, q + (size_t)h * HD, sq, q0, tl.end);
            load_tile<HD>(dOs, dout + (size_t)h * HD, NH * HD, q0, tl.end);
            if (threadIdx.x < BT) {
                int qi = q0 + threadIdx.x;
                lse_s[threadIdx.x] = qi < tl.end ? lse[(size_t)qi * NH + h] * LOG2E : 0.f;
                D_s[threadIdx.x] = qi < tl.end ? Dg[(size_t)qi * NH + h] : 0.f;
            }
            __syncthreads();
            /* S^T_w = K_w Q^T (16 keys x 64 queries) */
            for (int n = 0; n < BT / 16; n++) {
                fc acc;
                wmma::fill_fragment(acc, 0.f);
#pragma unroll
                for (int kk = 0; kk < HD / 16; kk++) {
                    fa_row a;
                    fb_col b;
                    wmma::load_matrix_sync(a, Ks + r0 * P + kk * 16, P);
                    wmma::load_matrix_sync(b, Qs + n * 16 * P + kk * 16, P);
                    wmma::mma_sync(acc, a, b, acc);
                }
                wmma::store_matrix_sync(S + r0 * SP + n * 16, acc, SP, wmma::mem_row_major);
            }
            __syncwarp();
            float pr[32];
#pragma unroll
            for (int i = 0; i < 16; i++) {
                int row = r0 + i, kj = k0 + row;
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    int c = lane + 32 * hh, qi = q0 + c;
                    bool ok = qi >= kj && qi < tl.end && kj < tl.end;
                    float p = ok ? exp2f(S[row * SP + c] * sl2 - lse_s[c]) : 0.f;
                    pr[i * 2 + hh] = p;
                    PT[row * P + c] = __float2bfloat16(p);
                }
            }
            __syncwarp();
            /* dP^T_w = V_w dO^T */
            for (int n = 0; n < BT / 16; n++) {
                fc acc;
                wmma::fill_fragment(acc, 0.f);
#pragma unroll
                for (int kk = 0; kk < HD / 16; kk++) {
                    fa_row a;
                    fb_col b;
                    wmma::load_matrix_sync(a, Vs + r0 * P + kk * 16, P);
                    wmma::load_matrix_sync(b, dOs + n * 16 * P + kk * 16, P);
                    wmma::mma_sync(acc, a, b, acc);
                }
                wmma::store_matrix_sync(S + r0 * SP + n * 16, acc, SP, wmma::mem_row_major);
            }
            __syncwarp();
#pragma unroll
            for (int i = 0; i < 16; i++) {
                int row = r0 + i;
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    int c = lane + 32 * hh;
                    float ds = pr[i * 2 + hh] * (S[row * SP + c] - D_s[c]);
                    dST[row * P + c] = __float2bfloat16(ds);
                }
            }
            __syncwarp();
            /* dV_w += P^T_w dO; dK_w += dS^T_w Q */
#pragma unroll
            for (int n = 0; n < HD / 16; n++) {
#pragma unroll
                for (int kk = 0; kk < BT / 16; kk++) {
                    fa_row a, a2;
                    fb_row b, b2;
                    wmma::load_matrix_sync(a, PT + r0 * P + kk * 16, P);
                    wmma::load_matrix_sync(b, dOs + kk * 16 * P + n * 16, P);
                    wmma::mma_sync(dV[n], a, b, dV[n]);
                    wmma::load_matrix_sync(a2, dST + r0 * P + kk * 16, P);
                    wmma::load_matrix_sync(b2, Qs + kk * 16 * P + n * 16, P);
                    wmma::mma_sync(dK[n], a2, b2, dK[n]);
                }
            }
            __syncthreads();
            /* dQ rows r0.. of this query tile = dS K: dS[q][k] = dST[k][q] */
            for (int n = 0; n < HD / 16; n++) {
                fc acc;
                wmma::fill_fragment(acc, 0.f);
#pragma unroll
                for (int kk = 0; kk < BT / 16; kk++) {
                    fa_col a;
                    fb_row b;
                    wmma::load_matrix_sync(a, dST + kk * 16 * P + r0, P);
                    wmma::load_matrix_sync(b, Ks + kk * 16 * P + n * 16, P);
                    wmma::mma_sync(acc, a, b, acc);
                }
                wmma::store_matrix_sync(dQs + r0 * QP + n * 16, acc, QP, wmma::mem_row_major);
            }
            __syncwarp();
            /* vector atomics (sm_90): 4 floats per request */
            for (int idx = lane; idx < 16 * (HD / 4); idx += 32) {
                int i = idx / (HD / 4), c = (idx % (HD / 4)) * 4, qi = q0 + r0 + i;
                if (qi >= tl.end) continue;
                const float *src = dQs + (r0 + i) * QP + c;
                float4 v = make_float4(src[0] * scale, src[1] * scale, src[2] * scale, src[3] * scale);
                atomicAdd((float4 *)(dq + (size_t)qi * NH * HD + (size_t)h * HD + c), v);
            }
        }
    }
    /* write dK, dV (scale on dK) through shared staging */
    __syncthreads();
    float *st = S; /* 64 x SP floats >= 64 x HD when HD <= 64; else use dQs */
    float *stg = HD <= BT ? st : dQs;
    int pitch = HD <= BT ? SP : QP;
    for (int pass = 0; pass < 2; pass++) {
#pragma unroll
        for (int n = 0; n < HD / 16; n++) {
            fc &f = pass == 0 ? dK[n] : dV[n];
            wmma::store_matrix_sync(stg + r0 * pitch + n * 16, f, pitch, wmma::mem_row_major);
        }
        __syncwarp();
        float *dst = pass == 0 ? dkf : dvf;
        float f = pass == 0 ? scale : 1.f;
        for (int i = 0; i < 16; i++) {
            int kj = k0 + r0 + i;
            if (kj >= tl.end) break;
            float *o = dst + (size_t)kj * NKV * HD + (size_t)kvh * HD;
            for (int c = lane; c < HD; c += 32) atomicAdd(o + c, stg[(r0 + i) * pitch + c] * f);
        }
        __syncwarp();
    }
}

template <int HD>
static size_t bwd_smem(void)
{
    return (size_t)6 * BT * (HD + 8) * 2 + (size_t)BT * SP * 4 + (size_t)BT * (HD + 4) * 4 +
           2 * BT * 4;
}

__global__ void k_dkv_out(bf16 *dk, bf16 *dv, int sdk, int sdv, const float *dkf,
                          const float *dvf, int T, int KD)
{
    size_t n = (size_t)T * KD;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / KD, c = i % KD;
        dk[t * sdk + c] = __float2bfloat16(dkf[i]);
        dv[t * sdv + c] = __float2bfloat16(dvf[i]);
    }
}

void sl_bf_attn_bwd(float *dq, bf16 *dk, bf16 *dv, int sdk, int sdv, const bf16 *dout,
                    const bf16 *out, const float *lse, const bf16 *q, const bf16 *k,
                    const bf16 *v, int sq, int sk, int sv, float *Dbuf, float *dkv,
                    const sl_att_tile *tiles, int n_tiles, int T, int NH, int NKV, int HD,
                    float scale)
{
    cudaStream_t s = sl_bf_stream();
    size_t KN = (size_t)T * NKV * HD;
    float *dkf = dkv, *dvf = dkv + KN;
    CUDA_CHECK(cudaMemsetAsync(dq, 0, sizeof(float) * (size_t)T * NH * HD, s));
    CUDA_CHECK(cudaMemsetAsync(dkv, 0, sizeof(float) * 2 * KN, s));
    size_t rows = (size_t)T * NH;
    k_attn_D<<<cdiv_u(rows, 8), 256, 0, s>>>(Dbuf, dout, out, T, NH, HD);
    LAUNCH_CHECK();
    dim3 g(n_tiles, NH);
    if (HD == 64) {
        size_t sm = bwd_smem<64>();
        CUDA_CHECK(cudaFuncSetAttribute(k_attn_bwd<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
        k_attn_bwd<64><<<g, NW * 32, sm, s>>>(dq, dkf, dvf, dout, lse, q, k, v, sq, sk, sv, Dbuf, tiles, NH, NKV, scale);
    } else if (HD == 128) {
        size_t sm = bwd_smem<128>();
        CUDA_CHECK(cudaFuncSetAttribute(k_attn_bwd<128>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
        k_attn_bwd<128><<<g, NW * 32, sm, s>>>(dq, dkf, dvf, dout, lse, q, k, v, sq, sk, sv, Dbuf, tiles, NH, NKV, scale);
    } else {
        sl_cuda_die("sl_bf_attn_bwd", "head_dim must be 64 or 128", __func__, __FILE__, __LINE__);
    }
    LAUNCH_CHECK();
    k_dkv_out<<<ew_grid(KN, 256), 256, 0, s>>>(dk, dv, sdk, sdv, dkf, dvf, T, NKV * HD);
    LAUNCH_CHECK();
}
