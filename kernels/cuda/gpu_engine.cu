/*
 * gpu_engine.cu — the generation core of the GPU rollout engine
 * (kernels/gpu_engine.h): weights in the trainer's flat bf16 layout
 * (gpu_layout.cuh), a paged bf16 KV cache with refcounted blocks, packed
 * prefill over flash attention (flash.cu), decode steps with a paged
 * attention kernel captured as CUDA graphs per batch bucket, and the
 * sampling kernel (one block per row, no sort of the vocabulary).
 *
 * Cache layout: block b holds, for every layer l, K then V as
 * [NKV][SL_GENG_BLOCK][HD] bf16 at kc + ((b * L + l) * 2 + kv) * BE, BE =
 * NKV * SL_GENG_BLOCK * HD. Block 0 is scratch (padded rows write there).
 */
#include <math.h>
#include <string.h>
#include <time.h>

#ifndef SL_HAVE_CUDA
#define SL_HAVE_CUDA 1
#endif
#include "base.h"
#include "bf16.cuh"
#include "gpu_engine.h"
#include "gpu_layout.cuh"

#define BS SL_GENG_BLOCK
#define MAXG 16     /* query heads per kv head */
#define GCH 8       /* heads per decode-attention block */
#define SAMP_T 1024 /* threads of the sampling kernel */
#define LOG2E_F 1.4426950408889634f
#define N_BUCKETS 16

/* ======================================================== device kernels */

/* In place on qkv (T, W) rows: + bias, q/k RMSNorm per head (qwen3), RoPE
 * on q and k; K and V also go to the cache at cidx[t] (block * BS + off).
 * One warp per head, E = HD / 32 dims per lane (d = lane + 32 e). */
template <int HD>
__global__ void k_qkv_cache(bf16 *qkv, const bf16 *bias, const bf16 *qn, const bf16 *kn,
                            const int32_t *pos, const int32_t *cidx, const float *cos_t,
                            const float *sin_t, bf16 *kc, int l, int L, int NH, int NKV,
                            float eps)
{
    const int E = HD / 32, half = HD / 2;
    int t = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    int W = (NH + 2 * NKV) * HD, nw = blockDim.x / 32;
    bf16 *row = qkv + (size_t)t * W;
    int p = pos[t], c = cidx[t];
    size_t BE = (size_t)NKV * BS * HD;
    for (int h = warp; h < NH + 2 * NKV; h += nw) {
        float x[E];
#pragma unroll
        for (int e = 0; e < E; e++) {
            int d = h * HD + lane + 32 * e;
            x[e] = __bfloat162float(row[d]);
            if (bias) x[e] += __bfloat162float(bias[d]);
        }
        if (h < NH + NKV) {
            const bf16 *nw_ = h < NH ? qn : kn;
            if (nw_) {
                float ss = 0.f;
#pragma unroll
                for (int e = 0; e < E; e++) ss += x[e] * x[e];
                ss = warp_sum(ss);
                float r = rsqrtf(ss / (float)HD + eps);
#pragma unroll
                for (int e = 0; e < E; e++)
                    x[e] = x[e] * r * __bfloat162float(nw_[lane + 32 * e]);
            }
            /* rotate-half pairs (i, i + half): in-lane, e and e + E/2 */
            const float *ct = cos_t + (size_t)p * half, *st = sin_t + (size_t)p * half;
#pragma unroll
            for (int e = 0; e < E / 2; e++) {
                int i = lane + 32 * e;
                float x1 = x[e], x2 = x[e + E / 2], cc = ct[i], ss = st[i];
                x[e] = x1 * cc - x2 * ss;
                x[e + E / 2] = x2 * cc + x1 * ss;
            }
        }
        int kv = h < NH ? -1 : (h < NH + NKV ? 0 : 1);
        int kh = h < NH ? 0 : (h - NH) % NKV;
        bf16 *dst = NULL;
        if (kv >= 0)
            dst = kc + (((size_t)(c / BS) * L + l) * 2 + kv) * BE + ((size_t)kh * BS + c % BS) * HD;
#pragma unroll
        for (int e = 0; e < E; e++) {
            bf16 b = __float2bfloat16(x[e]);
            row[h * HD + lane + 32 * e] = b;
            if (dst) dst[lane + 32 * e] = b;
        }
    }
}

/* Paged decode attention: one block per (row, kv head, chunk of GCH query
 * heads), 4 warps; each lane scores one position (its whole K row), the
 * warp keeps an online softmax per head and accumulates P V with each lane
 * owning E dims. */
template <int HD, int NWARP>
__global__ void __launch_bounds__(NWARP * 32)
    k_dec_attn(bf16 *out, const bf16 *qkv, const bf16 *kc, const int32_t *table,
               const int32_t *lens, int MB, int l, int L, int NH, int NKV, float scale_log2)
{
    const int E = HD / 32;
    int b = blockIdx.x, kvh = blockIdx.y, ch = blockIdx.z;
    int G = NH / NKV, h0 = ch * GCH, ng = min(GCH, G - h0);
    if (ng <= 0) return;
    int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    int W = (NH + 2 * NKV) * HD, len = lens[b];
    size_t BE = (size_t)NKV * BS * HD;
    __shared__ __align__(16) float sq[GCH][HD];
    __shared__ float sm_m[NWARP][GCH], sm_l[NWARP][GCH];
    __shared__ float sacc[NWARP][GCH][HD];
    const bf16 *q = qkv + (size_t)b * W + (size_t)(kvh * G + h0) * HD;
    for (int i = threadIdx.x; i < ng * HD; i += blockDim.x)
        sq[i / HD][i % HD] = __bfloat162float(q[i]) * scale_log2;
    __syncthreads();
    float m[GCH], lsum[GCH], acc[GCH][E];
#pragma unroll
    for (int h = 0; h < GCH; h++) {
        m[h] = -INFINITY, lsum[h] = 0.f;
#pragma unroll
        for (int e = 0; e < E; e++) acc[h][e] = 0.f;
    }
    const int32_t *tb = table + (size_t)b * MB;
    for (int base = warp * 32; base < len; base += NWARP * 32) {
        int p = base + lane;
        float s[GCH];
#pragma unroll
        for (int h = 0; h < GCH; h++) s[h] = 0.f;
        if (p < len) {
            const bf16 *kr = kc + (((size_t)tb[p / BS] * L + l) * 2) * BE +
                             ((size_t)kvh * BS + p % BS) * HD;
#pragma unroll
            for (int c8 = 0; c8 < HD / 8; c8++) {
                uint4 u = *(const uint4 *)(kr + c8 * 8);
                const bf16 *kb = (const bf16 *)&u;
                float kf[8];
#pragma unroll
                for (int j = 0; j < 8; j++) kf[j] = __bfloat162float(kb[j]);
#pragma unroll
                for (int h = 0; h < GCH; h++)
                    if (h < ng) {
                        float4 a = *(const float4 *)&sq[h][c8 * 8];
                        float4 b = *(const float4 *)&sq[h][c8 * 8 + 4];
                        s[h] += a.x * kf[0] + a.y * kf[1] + a.z * kf[2] + a.w * kf[3] +
                                b.x * kf[4] + b.y * kf[5] + b.z * kf[6] + b.w * kf[7];
                    }
            }
        }
        float pe[GCH];
#pragma unroll
        for (int h = 0; h < GCH; h++) {
            if (h >= ng) continue;
            float sv = p < len ? s[h] : -INFINITY;
            float mn = fmaxf(m[h], warp_max(sv));
            float corr = exp2f(m[h] - mn); /* m = -inf first: 0 */
            pe[h] = p < len ? exp2f(sv - mn) : 0.f;
            lsum[h] = lsum[h] * corr + pe[h];
#pragma unroll
            for (int e = 0; e < E; e++) acc[h][e] *= corr;
            m[h] = mn;
        }
        int nj = min(32, len - base);
#pragma unroll 4
        for (int j = 0; j < nj; j++) {
            int pp = base + j;
            const bf16 *vr = kc + (((size_t)tb[pp / BS] * L + l) * 2 + 1) * BE +
                             ((size_t)kvh * BS + pp % BS) * HD;
            float vf[E];
#pragma unroll
            for (int e = 0; e < E; e++) vf[e] = __bfloat162float(vr[lane + 32 * e]);
#pragma unroll
            for (int h = 0; h < GCH; h++) {
                if (h >= ng) continue;
                float pj = __shfl_sync(0xffffffffu, pe[h], j);
#pragma unroll
                for (int e = 0; e < E; e++) acc[h][e] += pj * vf[e];
            }
        }
    }
#pragma unroll
    for (int h = 0; h < GCH; h++) {
        if (h >= ng) continue;
        float ls = warp_sum(lsum[h]);
        if (lane == 0) sm_m[warp][h] = m[h], sm_l[warp][h] = ls;
#pragma unroll
        for (int e = 0; e < E; e++) sacc[warp][h][lane + 32 * e] = acc[h][e];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < ng * HD; i += blockDim.x) {
        int h = i / HD, d = i % HD;
        float M = -INFINITY;
        for (int w = 0; w < NWARP; w++) M = fmaxf(M, sm_m[w][h]);
        float num = 0.f, den = 0.f;
        for (int w = 0; w < NWARP; w++) {
            if (sm_m[w][h] == -INFINITY) continue;
            float f = exp2f(sm_m[w][h] - M);
            num += sacc[w][h][d] * f, den += sm_l[w][h] * f;
        }
        out[(size_t)b * NH * HD + (size_t)(kvh * G + h0 + h) * HD + d] =
            __float2bfloat16(den > 0.f ? num / den : 0.f);
    }
}

__global__ void k_gather_rows(float *dst, const float *src, const int32_t *idx, int C)
{
    int i = blockIdx.x;
    const float *s = src + (size_t)idx[i] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[(size_t)i * C + c] = s[c];
}

/* ---------------------------------------------------------- sampling */
__device__ __forceinline__ uint64_t d_splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
__device__ __forceinline__ double d_uniform(uint64_t seed, uint64_t id, uint64_t step)
{
    uint64_t h = d_splitmix64(seed);
    h = d_splitmix64(h ^ id);
    h = d_splitmix64(h ^ (step * 0xd1b54a32d192ed03ull));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* block reductions over SAMP_T threads (sh: 32 floats) */
__device__ float blk_sum(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x / 32;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x / 32) ? sh[lane] : 0.f;
    return warp_sum(v);
}
__device__ float blk_max(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x / 32) ? sh[lane] : -INFINITY;
    return warp_max(v);
}
__device__ float blk_min(float v, float *sh)
{
    return -blk_max(-v, sh);
}

/* count and mass (exp((x - mx) * it)) of logits >= th */
__device__ void blk_count_mass(const float *x, int V, float th, float mx, float it, float *cnt,
                               float *mass, float *sh)
{
    float c = 0.f, s = 0.f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = x[i];
        if (v >= th) c += 1.f, s += exp2f((v - mx) * it * LOG2E_F);
    }
    *cnt = blk_sum(c, sh);
    *mass = blk_sum(s, sh);
}

/* TILED (default): the inverse CDF walks tiles of SAMP_T * 4 ids with
 * coalesced reads (tile sums, then a block scan inside the chosen tile);
 * else each thread owns a contiguous chunk of the row (uncoalesced; kept as
 * the reference variant, SL_GENG_SAMPLER=chunked). */
#define SAMP_MAX_TILES 1024
template <int TILED>
__global__ void __launch_bounds__(SAMP_T) k_sample(const float *logits, int V, const int32_t *row_of,
                                                   const sl_geng_samp *sp, int32_t *otok,
                                                   float *olp)
{
    __shared__ float sh[32];
    __shared__ int s_pick;
    __shared__ float s_chunk[SAMP_T];
    int i = blockIdx.x;
    const float *x = logits + (size_t)row_of[i] * V;
    sl_geng_samp p = sp[i];
    int greedy = !(p.temperature > 0.f);
    float it = greedy ? 1.f : 1.f / p.temperature;
    /* max (and its lowest id), min of the finite ones */
    float mx = -INFINITY, mn = INFINITY;
    int am = 0x7fffffff;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float v = x[j];
        if (v > mx) mx = v, am = j;
        if (v > -INFINITY && v < mn) mn = v;
    }
    float gmx = blk_max(mx, sh);
    int cand = mx == gmx ? am : 0x7fffffff;
    /* lowest id holding the max */
    if (threadIdx.x == 0) s_pick = 0x7fffffff;
    __syncthreads();
    atomicMin(&s_pick, cand);
    float gmn = blk_min(mn, sh); /* has a __syncthreads before it reads */
    int amax = s_pick;
    mx = gmx;
    float zall;
    {
        float s = 0.f;
        for (int j = threadIdx.x; j < V; j += blockDim.x) s += exp2f((x[j] - mx) * it * LOG2E_F);
        zall = blk_sum(s, sh);
    }
    if (greedy) {
        if (threadIdx.x == 0) otok[i] = amax, olp[i] = -logf(zall);
        return;
    }
    /* thresholds: keep logits >= th */
    float th = -INFINITY;
    float cnt, mass;
    if (p.top_k > 0 && p.top_k < V) {
        float lo = gmn, hi = mx; /* count(>= lo) >= k; find the largest such */
        blk_count_mass(x, V, lo, mx, it, &cnt, &mass, sh);
        if (cnt >= (float)p.top_k) {
            for (int r = 0; r < 40 && lo < hi; r++) {
                float mid = 0.5f * (lo + hi);
                if (mid <= lo || mid >= hi) break;
                blk_count_mass(x, V, mid, mx, it, &cnt, &mass, sh);
                if (cnt >= (float)p.top_k) lo = mid;
                else hi = mid;
            }
            blk_count_mass(x, V, hi, mx, it, &cnt, &mass, sh);
            th = cnt >= (float)p.top_k ? hi : lo;
        }
    }
    if (p.top_p < 1.f) {
        float zk;
        blk_count_mass(x, V, th, mx, it, &cnt, &zk, sh);
        float target = p.top_p * zk;
        float lo = th > -INFINITY ? th : gmn, hi = mx; /* mass(>= lo) >= target */
        for (int r = 0; r < 40 && lo < hi; r++) {
            float mid = 0.5f * (lo + hi);
            if (mid <= lo || mid >= hi) break;
            blk_count_mass(x, V, mid, mx, it, &cnt, &mass, sh);
            if (mass >= target) lo = mid;
            else hi = mid;
        }
        blk_count_mass(x, V, hi, mx, it, &cnt, &mass, sh);
        th = mass >= target ? hi : lo;
    }
    if (TILED) {
        /* inverse CDF in id order over the kept tokens, by tiles */
        __shared__ float s_tile[SAMP_MAX_TILES];
        __shared__ float s_r;
        __shared__ int s_t;
        const int TILE = SAMP_T * 4;
        int ntiles = (V + TILE - 1) / TILE;
        for (int t = 0; t < ntiles; t++) {
            float own = 0.f;
            for (int k = 0; k < 4; k++) {
                int j = t * TILE + threadIdx.x * 4 + k;
                if (j < V) {
                    float v = x[j];
                    if (v >= th) own += exp2f((v - mx) * it * LOG2E_F);
                }
            }
            float ts = blk_sum(own, sh);
            if (threadIdx.x == 0) s_tile[t] = ts;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            float Z = 0.f;
            for (int t = 0; t < ntiles; t++) Z += s_tile[t];
            float u = (float)d_uniform(p.seed, p.seq_id, p.step) * Z, cum = 0.f;
            int ts = -1, lastnz = 0;
            for (int t = 0; t < ntiles; t++) {
                if (s_tile[t] > 0.f) lastnz = t;
                if (ts < 0 && s_tile[t] > 0.f && u < cum + s_tile[t]) ts = t, s_r = u - cum;
                cum += s_tile[t];
            }
            if (ts < 0) ts = lastnz, s_r = s_tile[lastnz]; /* rounding: its last kept id */
            s_t = ts;
            s_pick = -1;
        }
        __syncthreads();
        int t = s_t;
        float r = s_r;
        float e4[4], own = 0.f;
        for (int k = 0; k < 4; k++) {
            int j = t * TILE + threadIdx.x * 4 + k;
            e4[k] = 0.f;
            if (j < V) {
                float v = x[j];
                if (v >= th) e4[k] = exp2f((v - mx) * it * LOG2E_F);
            }
            own += e4[k];
        }
        /* exclusive block scan of own */
        int lane = threadIdx.x & 31, w = threadIdx.x / 32;
        float incl = own;
        for (int o = 1; o < 32; o <<= 1) {
            float y = __shfl_up_sync(0xffffffffu, incl, o);
            if (lane >= o) incl += y;
        }
        if (lane == 31) s_chunk[w] = incl;
        __syncthreads();
        if (w == 0) {
            float ws = lane < (int)(blockDim.x / 32) ? s_chunk[lane] : 0.f, wi = ws;
            for (int o = 1; o < 32; o <<= 1) {
                float y = __shfl_up_sync(0xffffffffu, wi, o);
                if (lane >= o) wi += y;
            }
            s_chunk[32 + lane] = wi - ws; /* exclusive prefix of warp sums */
        }
        __syncthreads();
        float pre = s_chunk[32 + w] + incl - own;
        if (own > 0.f && r >= pre && r < pre + own) {
            float acc = pre;
            int pick = -1;
            for (int k = 0; k < 4 && pick < 0; k++) {
                acc += e4[k];
                if (e4[k] > 0.f && r < acc) pick = t * TILE + threadIdx.x * 4 + k;
            }
            if (pick < 0)
                for (int k = 3; k >= 0 && pick < 0; k--)
                    if (e4[k] > 0.f) pick = t * TILE + threadIdx.x * 4 + k;
            atomicMax(&s_pick, pick);
        }
        __syncthreads();
        if (s_pick < 0) { /* rounding: the last kept id of the tile */
            for (int k = 3; k >= 0; k--)
                if (e4[k] > 0.f) {
                    atomicMax(&s_pick, t * TILE + threadIdx.x * 4 + k);
                    break;
                }
            __syncthreads();
        }
        if (threadIdx.x == 0) {
            int tk = s_pick < 0 ? amax : s_pick;
            otok[i] = tk;
            olp[i] = (x[tk] - mx) * it - logf(zall);
        }
        return;
    }
    /* inverse CDF in id order over the kept tokens: contiguous chunks */
    int per = (V + blockDim.x - 1) / blockDim.x;
    int j0 = threadIdx.x * per, j1 = min(V, j0 + per);
    float own = 0.f;
    for (int j = j0; j < j1; j++) {
        float v = x[j];
        if (v >= th) own += exp2f((v - mx) * it * LOG2E_F);
    }
    s_chunk[threadIdx.x] = own;
    if (threadIdx.x == 0) s_pick = -1;
    __syncthreads();
    /* exclusive scan (serial per warp of prefix sums: blockDim <= 1024) */
    if (threadIdx.x < 32) {
        int lane = threadIdx.x, nper = blockDim.x / 32;
        float ws = 0.f;
        for (int k = 0; k < nper; k++) ws += s_chunk[lane * nper + k];
        float incl = ws;
        for (int o = 1; o < 32; o <<= 1) {
            float y = __shfl_up_sync(0xffffffffu, incl, o);
            if (lane >= o) incl += y;
        }
        float run = incl - ws;
        for (int k = 0; k < nper; k++) {
            float v = s_chunk[lane * nper + k];
            s_chunk[lane * nper + k] = run;
            run += v;
        }
        if (lane == 31) sh[0] = incl;
    }
    __syncthreads();
    float Z = sh[0];
    float u = (float)d_uniform(p.seed, p.seq_id, p.step) * Z;
    float pre = s_chunk[threadIdx.x];
    if (own > 0.f && u >= pre && u < pre + own) {
        float acc = pre;
        int pick = -1, last = -1;
        for (int j = j0; j < j1; j++) {
            float v = x[j];
            if (v < th) continue;
            last = j;
            acc += exp2f((v - mx) * it * LOG2E_F);
            if (u < acc) {
                pick = j;
                break;
            }
        }
        if (pick < 0) pick = last;
        atomicMax(&s_pick, pick);
    }
    __syncthreads();
    if (s_pick < 0) { /* rounding: the last kept token */
        int last = -1;
        for (int j = j0; j < j1; j++)
            if (x[j] >= th) last = j;
        atomicMax(&s_pick, last);
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        int t = s_pick < 0 ? amax : s_pick;
        otok[i] = t;
        olp[i] = (x[t] - mx) * it - logf(zall);
    }
}

/* ============================================================== host side */

static uint64_t now_ns(void) /* base.h's sl_now_ns has C linkage only */
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct sl_geng {
    int C, F, L, NH, NKV, HD, V, W, QD, KD, qkv_bias, qk_norm, max_pos;
    float eps, scale;
    int max_batch, max_seq, MB, n_blocks, Tmax, graphs;
    sl_gpu_layout lo;
    size_t n_params, wbytes, BE;
    bf16 *Wown, *Wb;
    float *cos_t, *sin_t;
    bf16 *kc;
    /* activations (Tmax rows) */
    float *x, *rstd, *lse, *xl, *logits;
    bf16 *ln, *qkv, *att, *gu, *act;
    int32_t *d_tok, *d_pos, *d_cidx, *d_last, *d_rowof;
    sl_att_tile *d_tiles;
    /* decode step inputs (one pinned block -> one device block) */
    char *h_step, *d_step;
    size_t step_bytes;
    int32_t *s_tok, *s_pos, *s_cidx, *s_len, *s_table; /* device views */
    sl_geng_samp *s_samp;
    int32_t *d_otok;
    float *d_olp;
    int32_t *h_otok;
    float *h_olp;
    /* prefill host staging */
    int32_t *h_ptok, *h_ppos, *h_pcidx, *h_last, *h_rowof;
    sl_att_tile *h_tiles;
    sl_geng_samp *h_psamp, *d_psamp;
    /* host KV bookkeeping */
    int *slot_len, *table, *refc, *free_blk, n_free;
    /* graphs */
    int nb_bucket, bucket[N_BUCKETS];
    cudaGraphExec_t gexec[N_BUCKETS];
    sl_geng_stats st;
    int chunked_sampler;
    int attn_warps; /* warps per decode-attention block: 4 (default, measured faster) or 8 */
    /* profile (sl_geng_tune): events between ops, eager steps only */
    int prof, n_ev;
    cudaEvent_t ev[1024];
    int ev_cat[1024];
    double prof_ms[SL_GENG_PROF_N];
};

static void mark(sl_geng *g, int cat)
{
    if (!g->prof || g->n_ev >= 1024) return;
    CUDA_CHECK(cudaEventRecord(g->ev[g->n_ev], sl_bf_stream()));
    g->ev_cat[g->n_ev++] = cat;
}
static void prof_flush(sl_geng *g)
{
    if (!g->prof || g->n_ev == 0) return;
    CUDA_CHECK(cudaEventSynchronize(g->ev[g->n_ev - 1]));
    for (int i = 0; i + 1 < g->n_ev; i++) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, g->ev[i], g->ev[i + 1]));
        if (g->ev_cat[i] < SL_GENG_PROF_N) g->prof_ms[g->ev_cat[i]] += ms;
    }
    g->n_ev = 0;
}
enum { PR_GEMM, PR_ATTN, PR_QKV, PR_OTHER, PR_HEAD, PR_SAMPLE, PR_END };

static int fail(char *err, size_t errlen, int rc, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "gpu engine: %s", msg);
    return rc;
}

static int dmal(sl_geng *g, void **p, size_t bytes)
{
    if (cudaMalloc(p, bytes ? bytes : 16) != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return -1;
    }
    g->st.device_bytes += bytes;
    return 0;
}

static void drop_graphs(sl_geng *g)
{
    for (int i = 0; i < g->nb_bucket; i++)
        if (g->gexec[i]) cudaGraphExecDestroy(g->gexec[i]), g->gexec[i] = NULL;
}

extern "C" void sl_geng_free(sl_geng *g)
{
    if (!g) return;
    cudaStreamSynchronize(sl_bf_stream());
    drop_graphs(g);
    if (g->prof)
        for (int i = 0; i < 1024; i++) cudaEventDestroy(g->ev[i]);
    void *dp[] = {g->Wown, g->cos_t, g->sin_t, g->kc, g->x, g->rstd, g->lse, g->xl, g->logits,
                  g->ln, g->qkv, g->att, g->gu, g->act, g->d_tok, g->d_pos, g->d_cidx,
                  g->d_last, g->d_rowof, g->d_tiles, g->d_step, g->d_otok, g->d_olp, g->d_psamp};
    for (size_t i = 0; i < sizeof(dp) / sizeof(dp[0]); i++)
        if (dp[i]) cudaFree(dp[i]);
    void *hp[] = {g->h_step, g->h_otok, g->h_olp, g->h_ptok, g->h_ppos, g->h_pcidx, g->h_last,
                  g->h_rowof, g->h_tiles, g->h_psamp};
    for (size_t i = 0; i < sizeof(hp) / sizeof(hp[0]); i++)
        if (hp[i]) cudaFreeHost(hp[i]);
    free(g->slot_len), free(g->table), free(g->refc), free(g->free_blk);
    sl_gpu_layout_free(&g->lo);
    free(g);
}

static int hal(void **p, size_t bytes)
{
    if (cudaHostAlloc(p, bytes ? bytes : 16, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return -1;
    }
    return 0;
}

extern "C" int sl_geng_use_device(int n)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || n < 0 || n >= ndev ||
        cudaSetDevice(n) != cudaSuccess) {
        cudaGetLastError();
        return SL_EUNSUPPORTED;
    }
    return SL_OK;
}

extern "C" int sl_geng_new(const sl_model *h, int max_batch, int max_seq_len,
                           int max_prefill_tokens, int graphs, sl_geng **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
        cudaGetLastError();
        return fail(err, errlen, SL_EUNSUPPORTED, "no CUDA device");
    }
    if (!h) return fail(err, errlen, SL_EINVAL, "no model");
    const sl_hf_config *c = &h->cfg;
    if (c->o_bias) return fail(err, errlen, SL_EUNSUPPORTED, "o_proj bias is not supported");
    if (c->head_dim != 64 && c->head_dim != 128)
        return fail(err, errlen, SL_EUNSUPPORTED, "head_dim must be 64 or 128");
    if (c->num_attention_heads % c->num_key_value_heads ||
        c->num_attention_heads / c->num_key_value_heads > MAXG)
        return fail(err, errlen, SL_EUNSUPPORTED, "at most 16 query heads per kv head");
    if (c->intermediate_size % 8 || c->hidden_size % 8)
        return fail(err, errlen, SL_EUNSUPPORTED, "hidden/intermediate size must be multiples of 8");
    if (max_batch < 1 || max_batch > 4096)
        return fail(err, errlen, SL_EINVAL, "max_batch must be in [1, 4096]");
    if (c->vocab_size > SAMP_MAX_TILES * SAMP_T * 4)
        return fail(err, errlen, SL_EUNSUPPORTED, "vocabulary above 4M tokens");
    if (max_seq_len < 2 || max_seq_len > c->max_position_embeddings)
        return fail(err, errlen, SL_EINVAL, "max_seq_len must be in [2, max_position_embeddings]");
    if (max_prefill_tokens < max_seq_len) max_prefill_tokens = max_seq_len;
    if (max_prefill_tokens > 65536) max_prefill_tokens = 65536;
    sl_bf_init();
    sl_geng *g = (sl_geng *)calloc(1, sizeof(*g));
    if (!g) return fail(err, errlen, SL_ENOMEM, "out of host memory");
    g->C = c->hidden_size, g->F = c->intermediate_size, g->L = c->num_hidden_layers;
    g->NH = c->num_attention_heads, g->NKV = c->num_key_value_heads, g->HD = c->head_dim;
    g->V = c->vocab_size, g->QD = g->NH * g->HD, g->KD = g->NKV * g->HD;
    g->W = g->QD + 2 * g->KD, g->qkv_bias = c->qkv_bias, g->qk_norm = c->qk_norm;
    g->max_pos = c->max_position_embeddings;
    g->eps = (float)c->rms_norm_eps, g->scale = 1.0f / sqrtf((float)g->HD);
    g->max_batch = max_batch, g->max_seq = max_seq_len, g->MB = (max_seq_len + BS - 1) / BS;
    g->n_blocks = max_batch * g->MB + 1;
    /* prefill rows padded up to a multiple of 1024 */
    g->Tmax = ((max_prefill_tokens > max_batch ? max_prefill_tokens : max_batch) + 1023) / 1024 * 1024;
    g->graphs = graphs;
    {
        const char *ev = getenv("SL_GENG_SAMPLER");
        g->chunked_sampler = ev && strcmp(ev, "chunked") == 0;
        const char *ea = getenv("SL_GENG_ATTN_WARPS");
        g->attn_warps = ea && atoi(ea) == 8 ? 8 : 4;
    }
    g->n_params = h->n_params;
    g->BE = (size_t)g->NKV * BS * g->HD;
    if (sl_gpu_layout_build(&g->lo, h)) {
        free(g);
        return fail(err, errlen, SL_ENOMEM, "out of host memory");
    }
    g->wbytes = 2 * g->lo.n_gpu;
    size_t T = g->Tmax, C = g->C, F = g->F, MBt = (size_t)max_batch, half = g->HD / 2;
    int bad = 0;
#define A_(p, n) bad |= dmal(g, (void **)&(p), (n))
    A_(g->Wown, g->wbytes);
    A_(g->cos_t, 4 * (size_t)g->max_pos * half);
    A_(g->sin_t, 4 * (size_t)g->max_pos * half);
    A_(g->kc, 2 * (size_t)g->n_blocks * g->L * 2 * g->BE);
    A_(g->x, 4 * T * C); A_(g->rstd, 4 * T); A_(g->lse, 4 * T * g->NH);
    A_(g->xl, 4 * MBt * C); A_(g->logits, 4 * MBt * g->V);
    A_(g->ln, 2 * T * C); A_(g->qkv, 2 * T * g->W); A_(g->att, 2 * T * g->QD);
    A_(g->gu, 2 * T * 2 * F); A_(g->act, 2 * T * F);
    A_(g->d_tok, 4 * T); A_(g->d_pos, 4 * T); A_(g->d_cidx, 4 * T);
    A_(g->d_last, 4 * MBt); A_(g->d_rowof, 4 * MBt);
    A_(g->d_tiles, sizeof(sl_att_tile) * (T / SL_ATT_TILE + MBt + 1));
    A_(g->d_otok, 4 * MBt); A_(g->d_olp, 4 * MBt); A_(g->d_psamp, sizeof(sl_geng_samp) * MBt);
#undef A_
    /* step block: tok, pos, cidx, len (MBt each), table (MBt x MB), samp */
    size_t ints = MBt * (4 + (size_t)g->MB);
    ints = (ints + 1) & ~(size_t)1; /* 8-byte alignment of samp */
    g->step_bytes = 4 * ints + sizeof(sl_geng_samp) * MBt;
    bad |= dmal(g, (void **)&g->d_step, g->step_bytes);
    bad |= hal((void **)&g->h_step, g->step_bytes);
    bad |= hal((void **)&g->h_otok, 4 * MBt);
    bad |= hal((void **)&g->h_olp, 4 * MBt);
    bad |= hal((void **)&g->h_ptok, 4 * T);
    bad |= hal((void **)&g->h_ppos, 4 * T);
    bad |= hal((void **)&g->h_pcidx, 4 * T);
    bad |= hal((void **)&g->h_last, 4 * MBt);
    bad |= hal((void **)&g->h_rowof, 4 * MBt);
    bad |= hal((void **)&g->h_tiles, sizeof(sl_att_tile) * (T / SL_ATT_TILE + MBt + 1));
    bad |= hal((void **)&g->h_psamp, sizeof(sl_geng_samp) * MBt);
    g->slot_len = (int *)calloc(MBt, sizeof(int));
    g->table = (int *)calloc(MBt * g->MB, sizeof(int));
    g->refc = (int *)calloc((size_t)g->n_blocks, sizeof(int));
    g->free_blk = (int *)malloc(sizeof(int) * (size_t)g->n_blocks);
    if (bad || !g->slot_len || !g->table || !g->refc || !g->free_blk) {
        size_t need = g->st.device_bytes;
        sl_geng_free(g);
        if (err && errlen)
            snprintf(err, errlen, "gpu engine: out of memory (%.2f GiB of device memory wanted)",
                     need / 1073741824.0);
        return SL_ENOMEM;
    }
    g->s_tok = (int32_t *)g->d_step;
    g->s_pos = g->s_tok + MBt;
    g->s_cidx = g->s_pos + MBt;
    g->s_len = g->s_cidx + MBt;
    g->s_table = g->s_len + MBt;
    g->s_samp = (sl_geng_samp *)(g->d_step + 4 * ints);
    g->n_free = 0;
    for (int b = g->n_blocks - 1; b >= 1; b--) g->free_blk[g->n_free++] = b;
    g->st.kv_blocks = g->n_blocks - 1;
    cudaStream_t s = sl_bf_stream();
    CUDA_CHECK(cudaMemcpy(g->cos_t, h->rope_cos, 4 * (size_t)g->max_pos * half, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(g->sin_t, h->rope_sin, 4 * (size_t)g->max_pos * half, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemsetAsync(g->Wown, 0, g->wbytes, s));
    CUDA_CHECK(cudaMemsetAsync(g->att, 0, 2 * T * g->QD, s));
    CUDA_CHECK(cudaMemsetAsync(g->kc, 0, 2 * g->BE * g->L * 2, s)); /* scratch block */
    for (size_t i = 0; i < MBt; i++) g->h_rowof[i] = (int32_t)i;
    CUDA_CHECK(cudaMemcpy(g->d_rowof, g->h_rowof, 4 * MBt, cudaMemcpyHostToDevice));
    g->Wb = g->Wown;
    for (int b = 1; b < max_batch; b *= 2) g->bucket[g->nb_bucket++] = b;
    g->bucket[g->nb_bucket++] = max_batch;
    CUDA_CHECK(cudaStreamSynchronize(s));
    *out = g;
    return SL_OK;
}

extern "C" int sl_geng_load_host(sl_geng *g, const float *params, size_t n)
{
    if (!g || !params || n != g->n_params) return SL_EINVAL;
    size_t N = g->lo.n_gpu;
    float *tmp = (float *)malloc(sizeof(float) * N);
    if (!tmp) return SL_ENOMEM;
    sl_gpu_layout_gather(&g->lo, tmp, params);
    /* convert through the (fp32) activation buffer in chunks */
    size_t chunk = (size_t)g->Tmax * g->C;
    cudaStream_t s = sl_bf_stream();
    CUDA_CHECK(cudaStreamSynchronize(s));
    for (size_t o = 0; o < N; o += chunk) {
        size_t k = N - o < chunk ? N - o : chunk;
        CUDA_CHECK(cudaMemcpy(g->x, tmp + o, 4 * k, cudaMemcpyHostToDevice));
        sl_bf_f32_to_bf16(g->Wown + o, g->x, k);
        CUDA_CHECK(cudaStreamSynchronize(s));
    }
    free(tmp);
    if (g->Wb != g->Wown) drop_graphs(g);
    g->Wb = g->Wown;
    return SL_OK;
}

extern "C" int sl_geng_set_weights_device(sl_geng *g, const void *dptr, size_t bytes, int copy)
{
    if (!g || !dptr || bytes != g->wbytes) return SL_EINVAL;
    cudaStream_t s = sl_bf_stream();
    if (copy) {
        CUDA_CHECK(cudaMemcpyAsync(g->Wown, dptr, bytes, cudaMemcpyDeviceToDevice, s));
        CUDA_CHECK(cudaStreamSynchronize(s));
        if (g->Wb != g->Wown) drop_graphs(g);
        g->Wb = g->Wown;
    } else {
        CUDA_CHECK(cudaStreamSynchronize(s));
        if (g->Wb != (bf16 *)dptr) drop_graphs(g); /* graphs hold the pointer */
        g->Wb = (bf16 *)dptr;
    }
    return SL_OK;
}

extern "C" const void *sl_geng_weights(const sl_geng *g, size_t *bytes)
{
    if (bytes) *bytes = g ? g->wbytes : 0;
    return g ? g->Wb : NULL;
}

/* ------------------------------------------------------------- KV blocks */

static int blk_alloc(sl_geng *g)
{
    if (g->n_free == 0) return -1;
    int b = g->free_blk[--g->n_free];
    g->refc[b] = 1;
    g->st.kv_blocks_used++;
    return b;
}
static void blk_unref(sl_geng *g, int b)
{
    if (b <= 0) return;
    if (--g->refc[b] == 0) {
        g->free_blk[g->n_free++] = b;
        g->st.kv_blocks_used--;
    }
}

extern "C" void sl_geng_slot_reset(sl_geng *g, int slot)
{
    if (!g || slot < 0 || slot >= g->max_batch) return;
    int *t = g->table + (size_t)slot * g->MB;
    for (int i = 0; i < g->MB; i++) blk_unref(g, t[i]), t[i] = 0;
    g->slot_len[slot] = 0;
}

extern "C" int sl_geng_slot_len(const sl_geng *g, int slot)
{
    return g && slot >= 0 && slot < g->max_batch ? g->slot_len[slot] : 0;
}

/* blocks for positions [0, n) of slot */
static int ensure(sl_geng *g, int slot, int n)
{
    int *t = g->table + (size_t)slot * g->MB;
    for (int i = 0; i < (n + BS - 1) / BS; i++)
        if (t[i] == 0 && (t[i] = blk_alloc(g)) < 0) {
            t[i] = 0;
            return SL_ENOMEM;
        }
    return SL_OK;
}

extern "C" int sl_geng_slot_share(sl_geng *g, int dst, int src, int n)
{
    if (!g || dst < 0 || src < 0 || dst >= g->max_batch || src >= g->max_batch || dst == src ||
        n < 1 || n > g->slot_len[src] || g->slot_len[dst] != 0)
        return SL_EINVAL;
    int *td = g->table + (size_t)dst * g->MB, *ts = g->table + (size_t)src * g->MB;
    int full = n / BS;
    for (int i = 0; i < full; i++) {
        td[i] = ts[i];
        g->refc[ts[i]]++;
        g->st.kv_shared_blocks++;
    }
    if (n % BS) {
        int b = blk_alloc(g);
        if (b < 0) {
            sl_geng_slot_reset(g, dst);
            return SL_ENOMEM;
        }
        size_t bb = 2 * g->BE * g->L * 2; /* bytes of a block */
        CUDA_CHECK(cudaMemcpyAsync((char *)g->kc + bb * b, (char *)g->kc + bb * ts[full], bb,
                                   cudaMemcpyDeviceToDevice, sl_bf_stream()));
        td[full] = b;
        g->st.kv_block_copies++;
    }
    g->slot_len[dst] = n;
    return SL_OK;
}

/* ---------------------------------------------------------------- forward */

static void qkv_cache(sl_geng *g, int l, int T, const int32_t *pos, const int32_t *cidx)
{
    const glayer *y = &g->lo.ly[l];
    const bf16 *bias = g->qkv_bias ? g->Wb + y->bqkv : NULL;
    const bf16 *qn = g->qk_norm ? g->Wb + y->qn : NULL, *kn = g->qk_norm ? g->Wb + y->kn : NULL;
    if (g->HD == 64)
        k_qkv_cache<64><<<T, 256, 0, sl_bf_stream()>>>(g->qkv, bias, qn, kn, pos, cidx, g->cos_t,
                                                       g->sin_t, g->kc, l, g->L, g->NH, g->NKV, g->eps);
    else
        k_qkv_cache<128><<<T, 256, 0, sl_bf_stream()>>>(g->qkv, bias, qn, kn, pos, cidx, g->cos_t,
                                                        g->sin_t, g->kc, l, g->L, g->NH, g->NKV, g->eps);
    LAUNCH_CHECK();
}

/* RMSNorm of rows (fp32 in, bf16 out): one warp per row, 2 rows per block
 * (the training kernel's 8 rows per block leaves most SMs idle at decode
 * batch sizes) */
__global__ void k_rms_rows(bf16 *out, const float *x, const bf16 *w, int T, int C, float eps)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= T) return;
    const float *xr = x + (size_t)row * C;
    float ss = 0.f;
    for (int c = lane; c < C; c += 32) ss += xr[c] * xr[c];
    ss = warp_sum(ss);
    float r = rsqrtf(ss / (float)C + eps);
    bf16 *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) o[c] = __float2bfloat16(__bfloat162float(w[c]) * xr[c] * r);
}
static void rms(sl_geng *g, bf16 *out, const float *x, const bf16 *w, int T)
{
    k_rms_rows<<<(T + 1) / 2, 64, 0, sl_bf_stream()>>>(out, x, w, T, g->C, g->eps);
    LAUNCH_CHECK();
}

/* all layers over T rows; decode: paged attention over the step's tables,
 * else flash attention over n_tiles tiles of the packed prompts */
static void layers(sl_geng *g, int T, int decode, int n_tiles)
{
    size_t C = g->C, F = g->F;
    const int32_t *pos = decode ? g->s_pos : g->d_pos, *cidx = decode ? g->s_cidx : g->d_cidx;
    cudaStream_t s = sl_bf_stream();
    for (int l = 0; l < g->L; l++) {
        const glayer *y = &g->lo.ly[l];
        mark(g, PR_OTHER);
        rms(g, g->ln, g->x, g->Wb + y->n1, T);
        mark(g, PR_GEMM);
        sl_bf_gemm(g->qkv, 0, g->ln, g->Wb + y->wqkv, NULL, T, g->W, (int)C, 0, 1, 1.f, 0.f);
        mark(g, PR_QKV);
        qkv_cache(g, l, T, pos, cidx);
        mark(g, PR_ATTN);
        if (decode) {
            dim3 gr(T, g->NKV, (g->NH / g->NKV + GCH - 1) / GCH);
            float sl2 = g->scale * LOG2E_F;
#define DEC_(HD_, NW_)                                                                            \
    k_dec_attn<HD_, NW_><<<gr, NW_ * 32, 0, s>>>(g->att, g->qkv, g->kc, g->s_table, g->s_len,     \
                                                 g->MB, l, g->L, g->NH, g->NKV, sl2)
            if (g->HD == 64 && g->attn_warps == 4) DEC_(64, 4);
            else if (g->HD == 64) DEC_(64, 8);
            else if (g->attn_warps == 4) DEC_(128, 4);
            else DEC_(128, 8);
#undef DEC_
            LAUNCH_CHECK();
        } else {
            sl_bf_attn_fwd(g->att, g->lse, g->qkv, g->qkv + g->QD, g->qkv + g->QD + g->KD, g->W,
                           g->W, g->W, g->d_tiles, n_tiles, T, g->NH, g->NKV, g->HD, g->scale);
        }
        mark(g, PR_GEMM);
        sl_bf_gemm(g->x, 1, g->att, g->Wb + y->wo, g->x, T, (int)C, g->QD, 0, 1, 1.f, 1.f);
        mark(g, PR_OTHER);
        rms(g, g->ln, g->x, g->Wb + y->n2, T);
        mark(g, PR_GEMM);
        sl_bf_gemm(g->gu, 0, g->ln, g->Wb + y->wgu, NULL, T, (int)(2 * F), (int)C, 0, 1, 1.f, 0.f);
        mark(g, PR_OTHER);
        sl_bf_swiglu_fwd(g->act, g->gu, T, (int)F);
        mark(g, PR_GEMM);
        sl_bf_gemm(g->x, 1, g->act, g->Wb + y->wd, g->x, T, (int)C, (int)F, 0, 1, 1.f, 1.f);
    }
}

/* final norm of R rows of src, LM head (fp32 logits), sample n outputs */
static void head_sample(sl_geng *g, const float *src, int R, int n, const int32_t *rowof,
                        const sl_geng_samp *samp)
{
    mark(g, PR_OTHER);
    rms(g, g->ln, src, g->Wb + g->lo.o_nf, R);
    mark(g, PR_HEAD);
    sl_bf_gemm(g->logits, 1, g->ln, g->Wb + g->lo.o_head, NULL, R, g->V, g->C, 0, 1, 1.f, 0.f);
    mark(g, PR_SAMPLE);
    if (g->chunked_sampler)
        k_sample<0><<<n, SAMP_T, 0, sl_bf_stream()>>>(g->logits, g->V, rowof, samp, g->d_otok, g->d_olp);
    else
        k_sample<1><<<n, SAMP_T, 0, sl_bf_stream()>>>(g->logits, g->V, rowof, samp, g->d_otok, g->d_olp);
    LAUNCH_CHECK();
    mark(g, PR_END);
}

static void decode_body(sl_geng *g, int Bp)
{
    mark(g, PR_OTHER);
    sl_bf_embed_fwd(g->x, g->Wb + g->lo.o_embed, g->s_tok, Bp, g->C);
    layers(g, Bp, 1, 0);
    head_sample(g, g->x, Bp, Bp, g->d_rowof, g->s_samp);
}

static int pad_rows(int T)
{
    if (T <= 1024) return (T + 63) / 64 * 64;
    return (T + 1023) / 1024 * 1024;
}

static int prefill_(sl_geng *g, int n_seq, const int *slots, const int32_t *tokens,
                    const int32_t *cu, int n_out, const int *out_seq, const sl_geng_samp *samp,
                    int32_t *out_tok, float *out_lp, int T);

extern "C" int sl_geng_prefill(sl_geng *g, int n_seq, const int *slots, const int32_t *tokens,
                               const int32_t *cu, int n_out, const int *out_seq,
                               const sl_geng_samp *samp, int32_t *out_tok, float *out_lp)
{
    if (!g || n_seq < 1 || n_seq > g->max_batch || !slots || !tokens || !cu || cu[0] != 0 ||
        n_out < 0 || n_out > g->max_batch)
        return SL_EINVAL;
    uint64_t t0 = now_ns();
    int T = cu[n_seq];
    if (T > g->Tmax) return SL_ERANGE;
    int prof = g->prof; /* the profile is of decode steps */
    g->prof = 0;
    int rc = prefill_(g, n_seq, slots, tokens, cu, n_out, out_seq, samp, out_tok, out_lp, T);
    g->prof = prof;
    if (rc == SL_OK) {
        g->st.prefill_calls++;
        g->st.prefill_tokens += T;
        g->st.prefill_ms += (double)(now_ns() - t0) * 1e-6;
    }
    return rc;
}

static int prefill_(sl_geng *g, int n_seq, const int *slots, const int32_t *tokens,
                    const int32_t *cu, int n_out, const int *out_seq, const sl_geng_samp *samp,
                    int32_t *out_tok, float *out_lp, int T)
{
    for (int i = 0; i < n_seq; i++) {
        int n = cu[i + 1] - cu[i];
        if (n < 1 || n > g->max_seq - 1 || slots[i] < 0 || slots[i] >= g->max_batch ||
            g->slot_len[slots[i]] != 0)
            return SL_EINVAL;
    }
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= g->V) return SL_EINVAL;
    for (int i = 0; i < n_out; i++)
        if (out_seq[i] < 0 || out_seq[i] >= n_seq) return SL_EINVAL;
    int Tp = pad_rows(T);
    if (Tp > g->Tmax) Tp = g->Tmax;
    int nt = 0;
    for (int i = 0; i < n_seq; i++) {
        int sl = slots[i], n = cu[i + 1] - cu[i];
        if (ensure(g, sl, n) != SL_OK) {
            for (int k = 0; k <= i; k++) sl_geng_slot_reset(g, slots[k]);
            return SL_ENOMEM;
        }
        const int *tb = g->table + (size_t)sl * g->MB;
        for (int p = 0; p < n; p++) {
            int t = cu[i] + p;
            g->h_ptok[t] = tokens[t];
            g->h_ppos[t] = p;
            g->h_pcidx[t] = tb[p / BS] * BS + p % BS;
        }
        for (int r = cu[i]; r < cu[i + 1]; r += SL_ATT_TILE)
            g->h_tiles[nt++] = (sl_att_tile){r, cu[i], cu[i + 1], 0};
        g->h_last[i] = cu[i + 1] - 1;
        g->slot_len[sl] = n;
    }
    for (int t = T; t < Tp; t++) g->h_ptok[t] = 0, g->h_ppos[t] = 0, g->h_pcidx[t] = 0;
    for (int i = 0; i < n_out; i++) g->h_rowof[i] = out_seq[i], g->h_psamp[i] = samp[i];
    cudaStream_t s = sl_bf_stream();
    CUDA_CHECK(cudaMemcpyAsync(g->d_tok, g->h_ptok, 4 * (size_t)Tp, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(g->d_pos, g->h_ppos, 4 * (size_t)Tp, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(g->d_cidx, g->h_pcidx, 4 * (size_t)Tp, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(g->d_tiles, g->h_tiles, sizeof(sl_att_tile) * nt, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(g->d_last, g->h_last, 4 * (size_t)n_seq, cudaMemcpyHostToDevice, s));
    if (n_out)
        CUDA_CHECK(cudaMemcpyAsync(g->d_psamp, g->h_psamp, sizeof(sl_geng_samp) * n_out, cudaMemcpyHostToDevice, s));
    sl_bf_embed_fwd(g->x, g->Wb + g->lo.o_embed, g->d_tok, Tp, g->C);
    layers(g, Tp, 0, nt);
    if (n_out) {
        k_gather_rows<<<n_seq, 256, 0, s>>>(g->xl, g->x, g->d_last, g->C);
        LAUNCH_CHECK();
        /* the output -> sequence map goes to the lse buffer, free after the
         * layers (d_rowof is the decode step's identity map) */
        int32_t *rowof = (int32_t *)g->lse;
        CUDA_CHECK(cudaMemcpyAsync(rowof, g->h_rowof, 4 * (size_t)n_out, cudaMemcpyHostToDevice, s));
        head_sample(g, g->xl, n_seq, n_out, rowof, g->d_psamp);
        CUDA_CHECK(cudaMemcpyAsync(g->h_otok, g->d_otok, 4 * (size_t)n_out, cudaMemcpyDeviceToHost, s));
        CUDA_CHECK(cudaMemcpyAsync(g->h_olp, g->d_olp, 4 * (size_t)n_out, cudaMemcpyDeviceToHost, s));
    }
    CUDA_CHECK(cudaStreamSynchronize(s));
    prof_flush(g);
    for (int i = 0; i < n_out; i++) out_tok[i] = g->h_otok[i], out_lp[i] = g->h_olp[i];
    return SL_OK;
}

extern "C" int sl_geng_decode(sl_geng *g, int n, const int *slots, const int32_t *tok,
                              const sl_geng_samp *samp, int32_t *out_tok, float *out_lp)
{
    if (!g || n < 1 || n > g->max_batch || !slots || !tok || !samp) return SL_EINVAL;
    uint64_t t0 = now_ns();
    int bi = 0;
    while (g->bucket[bi] < n) bi++;
    int Bp = g->bucket[bi];
    size_t MBt = (size_t)g->max_batch;
    int32_t *h_tok = (int32_t *)g->h_step, *h_pos = h_tok + MBt, *h_cidx = h_pos + MBt;
    int32_t *h_len = h_cidx + MBt, *h_table = h_len + MBt;
    sl_geng_samp *h_samp = (sl_geng_samp *)(g->h_step + ((char *)g->s_samp - g->d_step));
    for (int i = 0; i < n; i++) {
        int sl = slots[i];
        if (sl < 0 || sl >= g->max_batch || tok[i] < 0 || tok[i] >= g->V ||
            g->slot_len[sl] < 1 || g->slot_len[sl] >= g->max_seq)
            return SL_EINVAL;
        int p = g->slot_len[sl];
        if (ensure(g, sl, p + 1) != SL_OK) return SL_ENOMEM;
        const int *tb = g->table + (size_t)sl * g->MB;
        h_tok[i] = tok[i];
        h_pos[i] = p;
        h_cidx[i] = tb[p / BS] * BS + p % BS;
        h_len[i] = p + 1;
        memcpy(h_table + (size_t)i * g->MB, tb, sizeof(int) * g->MB);
        h_samp[i] = samp[i];
    }
    for (int i = n; i < Bp; i++) {
        h_tok[i] = 0, h_pos[i] = 0, h_cidx[i] = 0, h_len[i] = 1;
        memset(h_table + (size_t)i * g->MB, 0, sizeof(int) * g->MB);
        memset(&h_samp[i], 0, sizeof(h_samp[i]));
    }
    cudaStream_t s = sl_bf_stream();
    CUDA_CHECK(cudaMemcpyAsync(g->d_step, g->h_step, g->step_bytes, cudaMemcpyHostToDevice, s));
    if (g->graphs && g->gexec[bi]) {
        CUDA_CHECK(cudaGraphLaunch(g->gexec[bi], s));
        g->st.graph_launches++;
    } else {
        decode_body(g, Bp); /* the step itself (also warms up plans) */
        if (g->graphs) {
            cudaGraph_t graph;
            CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
            decode_body(g, Bp);
            CUDA_CHECK(cudaStreamEndCapture(s, &graph));
            CUDA_CHECK(cudaGraphInstantiate(&g->gexec[bi], graph, 0));
            cudaGraphDestroy(graph);
            g->st.graphs_captured++;
        }
    }
    CUDA_CHECK(cudaMemcpyAsync(g->h_otok, g->d_otok, 4 * (size_t)n, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaMemcpyAsync(g->h_olp, g->d_olp, 4 * (size_t)n, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    prof_flush(g);
    for (int i = 0; i < n; i++) {
        out_tok[i] = g->h_otok[i], out_lp[i] = g->h_olp[i];
        g->slot_len[slots[i]]++;
    }
    g->st.decode_steps++;
    g->st.decode_ms += (double)(now_ns() - t0) * 1e-6;
    return SL_OK;
}

extern "C" void sl_geng_tune(sl_geng *g, int graphs, int chunked_sampler, int profile,
                             int attn_warps)
{
    if (!g) return;
    g->attn_warps = attn_warps == 8 ? 8 : 4;
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
    drop_graphs(g);
    if (profile && !g->prof)
        for (int i = 0; i < 1024; i++) CUDA_CHECK(cudaEventCreate(&g->ev[i]));
    if (!profile && g->prof)
        for (int i = 0; i < 1024; i++) cudaEventDestroy(g->ev[i]);
    g->prof = profile != 0;
    g->n_ev = 0;
    g->graphs = graphs && !profile;
    g->chunked_sampler = chunked_sampler != 0;
}

extern "C" int sl_geng_profile(sl_geng *g, double *ms, int n)
{
    if (!g) return 0;
    for (int i = 0; i < n && i < SL_GENG_PROF_N; i++) ms[i] = g->prof_ms[i], g->prof_ms[i] = 0;
    return g->prof;
}

extern "C" void sl_geng_stats_get(const sl_geng *g, sl_geng_stats *st)
{
    if (g && st) *st = g->st;
}

extern "C" int sl_geng_test_sample(const float *logits, int R, int V, int n, const int *row_of,
                                   const sl_geng_samp *samp, int32_t *out_tok, float *out_lp)
{
    if (!logits || R < 1 || V < 1 || V > SAMP_MAX_TILES * SAMP_T * 4 || n < 1 || !row_of || !samp)
        return SL_EINVAL;
    sl_bf_init();
    float *dl;
    int32_t *dr, *dt;
    float *dlp;
    sl_geng_samp *ds;
    CUDA_CHECK(cudaMalloc(&dl, 4 * (size_t)R * V));
    CUDA_CHECK(cudaMalloc(&dr, 4 * (size_t)n));
    CUDA_CHECK(cudaMalloc(&dt, 4 * (size_t)n));
    CUDA_CHECK(cudaMalloc(&dlp, 4 * (size_t)n));
    CUDA_CHECK(cudaMalloc(&ds, sizeof(sl_geng_samp) * n));
    CUDA_CHECK(cudaMemcpy(dl, logits, 4 * (size_t)R * V, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dr, row_of, 4 * (size_t)n, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(ds, samp, sizeof(sl_geng_samp) * n, cudaMemcpyHostToDevice));
    const char *ev = getenv("SL_GENG_SAMPLER");
    if (ev && strcmp(ev, "chunked") == 0)
        k_sample<0><<<n, SAMP_T, 0, sl_bf_stream()>>>(dl, V, dr, ds, dt, dlp);
    else
        k_sample<1><<<n, SAMP_T, 0, sl_bf_stream()>>>(dl, V, dr, ds, dt, dlp);
    LAUNCH_CHECK();
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
    CUDA_CHECK(cudaMemcpy(out_tok, dt, 4 * (size_t)n, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(out_lp, dlp, 4 * (size_t)n, cudaMemcpyDeviceToHost));
    cudaFree(dl), cudaFree(dr), cudaFree(dt), cudaFree(dlp), cudaFree(ds);
    return SL_OK;
}
