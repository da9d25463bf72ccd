/*
 * attention.cu — causal grouped-query attention over packed variable-length
 * sequences, fp32, never materializing T x T: forward with an online
 * (rescaling) softmax that keeps only the per-row log-sum-exp, backward as
 * two kernels that recompute the scores (dQ per query tile; dK/dV per key
 * tile, owning its rows, so no atomics), and the KV-cache forward.
 *
 * Tiles are ATT_B = 32 query rows (or keys) of one sequence. The sequence
 * offsets live on the device, so the host does not know T: each kernel
 * runs a fixed grid (x: tile slots, y: heads) and every block walks the
 * tile indices blockIdx.x, + gridDim.x, ... locating its (sequence, tile)
 * by scanning cu. Blocks of 8 warps; in the score phase a warp owns 4 query
 * rows and lane j holds key j of the tile; shared-memory rows are padded to
 * hd + 1 floats (odd stride: conflict-free column reads).
 *
 * It is a straightforward CUDA-core kernel, not a tensor-core flash kernel
 * (that is the next step: NOTES.md). head_dim up to 256.
 */
#include "common.cuh"

#define ATT_B 32       /* rows per query tile, keys per key tile */
#define ATT_WARPS 8
#define ATT_RPW 4      /* query rows per warp */
#define ATT_THREADS (32 * ATT_WARPS)
#define ATT_GRID_X 512 /* tile slots per head (grid-stride beyond) */

/* Where tile number b lies: sequence *s and its first row *r0. Tiles are
 * numbered sequence by sequence, ceil(len / ATT_B) per sequence. */
__device__ __forceinline__ bool find_tile(const int32_t *cu, int n_seq, int b, int *s, int *r0)
{
    for (int i = 0; i < n_seq; i++) {
        int nt = (cu[i + 1] - cu[i] + ATT_B - 1) / ATT_B;
        if (b < nt) {
            *s = i;
            *r0 = b * ATT_B;
            return true;
        }
        b -= nt;
    }
    return false;
}

/* rows x hd from a strided global tensor into shared (row stride ld), zero
 * beyond nrow */
__device__ __forceinline__ void load_rows(float *dst, int ld, const float *src, size_t stride,
                                          int nrow, int hd)
{
    for (int i = threadIdx.x; i < ATT_B * hd; i += ATT_THREADS) {
        int r = i / hd, d = i % hd;
        dst[r * ld + d] = r < nrow ? src[(size_t)r * stride + d] : 0.0f;
    }
}

__device__ __forceinline__ float sdot(const float *a, const float *b, int hd)
{
    float s = 0.0f;
    for (int d = 0; d < hd; d++) s = fmaf(a[d], b[d], s);
    return s;
}

/* ------------------------------------------------------------- forward */

/* Training (slot == NULL): sequence s's queries and keys are tokens
 * [cu[s], cu[s+1]) of q and k/v; query i sees keys 0..i. Cached: keys are
 * kc/vc slot[s] (max_len positions), query i of nq sees keys
 * 0..kv_len[s]-nq+i. lse may be NULL. */
template <int NI>
__global__ void __launch_bounds__(ATT_THREADS)
attn_fwd_kernel(float *out, float *lse, const float *q, const float *k, const float *v,
                const int32_t *cu, const int32_t *slot, const int32_t *kv_len, int n_seq,
                int max_len, int n_head, int n_kv, int hd, float scale)
{
    extern __shared__ float sm[];
    const int ld = hd + 1, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float *Qs = sm, *Ks = Qs + ATT_B * ld, *Vs = Ks + ATT_B * ld;
    const int h = blockIdx.y, kvh = h / (n_head / n_kv);
    const size_t qs = (size_t)n_head * hd, ks = (size_t)n_kv * hd;

    int s, q0;
    for (int b = blockIdx.x; find_tile(cu, n_seq, b, &s, &q0); b += gridDim.x) {
        int qb = cu[s], nq = cu[s + 1] - qb, nrow = min(ATT_B, nq - q0);
        const float *kb, *vb;
        int first;
        if (slot) {
            size_t off = (size_t)slot[s] * max_len * ks + (size_t)kvh * hd;
            kb = k + off, vb = v + off, first = kv_len[s] - nq;
        } else {
            kb = k + (size_t)qb * ks + (size_t)kvh * hd;
            vb = v + (size_t)qb * ks + (size_t)kvh * hd;
            first = 0;
        }
        __syncthreads(); /* the previous tile is done with Qs */
        load_rows(Qs, ld, q + (size_t)(qb + q0) * qs + (size_t)h * hd, qs, nrow, hd);

        float m[ATT_RPW], l[ATT_RPW], o[ATT_RPW][NI];
#pragma unroll
        for (int i = 0; i < ATT_RPW; i++) {
            m[i] = -INFINITY, l[i] = 0.0f;
#pragma unroll
            for (int n = 0; n < NI; n++) o[i][n] = 0.0f;
        }
        const int kend = first + q0 + nrow; /* keys [0, kend) are visible to some row */
        for (int k0 = 0; k0 < kend; k0 += ATT_B) {
            int nk = min(ATT_B, kend - k0);
            __syncthreads();
            load_rows(Ks, ld, kb + (size_t)k0 * ks, ks, nk, hd);
            load_rows(Vs, ld, vb + (size_t)k0 * ks, ks, nk, hd);
            __syncthreads();
            const int j = k0 + lane;
            float p[ATT_RPW];
#pragma unroll
            for (int i = 0; i < ATT_RPW; i++) {
                int r = warp * ATT_RPW + i;
                float sc = sdot(Qs + r * ld, Ks + lane * ld, hd) * scale;
                if (r >= nrow || j > first + q0 + r) sc = -INFINITY;
                float mn = fmaxf(m[i], warp_max(sc));
                float alpha = mn == -INFINITY ? 1.0f : expf(m[i] - mn);
                p[i] = mn == -INFINITY ? 0.0f : expf(sc - mn);
                l[i] = l[i] * alpha + warp_sum(p[i]);
                m[i] = mn;
#pragma unroll
                for (int n = 0; n < NI; n++) o[i][n] *= alpha;
            }
            for (int jj = 0; jj < nk; jj++) {
                const float *vr = Vs + jj * ld;
#pragma unroll
                for (int i = 0; i < ATT_RPW; i++) {
                    float pj = __shfl_sync(0xffffffffu, p[i], jj);
#pragma unroll
                    for (int n = 0; n < NI; n++) {
                        int d = lane + 32 * n;
                        if (d < hd) o[i][n] = fmaf(pj, vr[d], o[i][n]);
                    }
                }
            }
        }
#pragma unroll
        for (int i = 0; i < ATT_RPW; i++) {
            int r = warp * ATT_RPW + i;
            if (r >= nrow) continue;
            size_t t = (size_t)qb + q0 + r;
            float inv = 1.0f / l[i];
            float *orow = out + t * qs + (size_t)h * hd;
#pragma unroll
            for (int n = 0; n < NI; n++) {
                int d = lane + 32 * n;
                if (d < hd) orow[d] = o[i][n] * inv;
            }
            if (lse && lane == 0) lse[t * n_head + h] = m[i] + logf(l[i]);
        }
    }
}

/* ------------------------------------------------------------ backward */

/* D_r = dot(dout_r, out_r) for the warp's rows, into Ds[r] */
__device__ __forceinline__ void rows_D(float *Ds, const float *dout, const float *out, size_t qs,
                                       int nrow, int hd)
{
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int i = 0; i < ATT_RPW; i++) {
        int r = warp * ATT_RPW + i;
        float s = 0.0f;
        if (r < nrow)
            for (int d = lane; d < hd; d += 32) s += dout[(size_t)r * qs + d] * out[(size_t)r * qs + d];
        s = warp_sum(s);
        if (lane == 0) Ds[r] = s;
    }
}

/* dQ of one query tile and head: dq_r = scale sum_j p_rj (dp_rj - D_r) k_j */
template <int NI>
__global__ void __launch_bounds__(ATT_THREADS)
attn_bwd_dq_kernel(float *dq, const float *dout, const float *q, const float *k, const float *v,
                   const float *out, const float *lse, const int32_t *cu, int n_seq, int n_head,
                   int n_kv, int hd, float scale)
{
    extern __shared__ float sm[];
    const int ld = hd + 1, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float *Qs = sm, *Gs = Qs + ATT_B * ld, *Ks = Gs + ATT_B * ld, *Vs = Ks + ATT_B * ld;
    float *Ds = Vs + ATT_B * ld;
    const int h = blockIdx.y, kvh = h / (n_head / n_kv);
    const size_t qs = (size_t)n_head * hd, ks = (size_t)n_kv * hd;

    int s, q0;
    for (int b = blockIdx.x; find_tile(cu, n_seq, b, &s, &q0); b += gridDim.x) {
        int qb = cu[s], nq = cu[s + 1] - qb, nrow = min(ATT_B, nq - q0);
        const float *kb = k + (size_t)qb * ks + (size_t)kvh * hd;
        const float *vb = v + (size_t)qb * ks + (size_t)kvh * hd;
        size_t roff = (size_t)(qb + q0) * qs + (size_t)h * hd;
        __syncthreads();
        load_rows(Qs, ld, q + roff, qs, nrow, hd);
        load_rows(Gs, ld, dout + roff, qs, nrow, hd);
        rows_D(Ds, dout + roff, out + roff, qs, nrow, hd);
        float L[ATT_RPW], acc[ATT_RPW][NI];
#pragma unroll
        for (int i = 0; i < ATT_RPW; i++) {
            int r = warp * ATT_RPW + i;
            L[i] = r < nrow ? lse[(size_t)(qb + q0 + r) * n_head + h] : 0.0f;
#pragma unroll
            for (int n = 0; n < NI; n++) acc[i][n] = 0.0f;
        }
        const int kend = q0 + nrow;
        for (int k0 = 0; k0 < kend; k0 += ATT_B) {
            int nk = min(ATT_B, kend - k0);
            __syncthreads();
            load_rows(Ks, ld, kb + (size_t)k0 * ks, ks, nk, hd);
            load_rows(Vs, ld, vb + (size_t)k0 * ks, ks, nk, hd);
            __syncthreads();
            const int j = k0 + lane;
            float ds[ATT_RPW];
#pragma unroll
            for (int i = 0; i < ATT_RPW; i++) {
                int r = warp * ATT_RPW + i;
                ds[i] = 0.0f;
                if (r < nrow && j <= q0 + r) {
                    float p = expf(sdot(Qs + r * ld, Ks + lane * ld, hd) * scale - L[i]);
                    float dp = sdot(Gs + r * ld, Vs + lane * ld, hd);
                    ds[i] = p * (dp - Ds[r]) * scale;
                }
            }
            for (int jj = 0; jj < nk; jj++) {
                const float *kr = Ks + jj * ld;
#pragma unroll
                for (int i = 0; i < ATT_RPW; i++) {
                    float dj = __shfl_sync(0xffffffffu, ds[i], jj);
#pragma unroll
                    for (int n = 0; n < NI; n++) {
                        int d = lane + 32 * n;
                        if (d < hd) acc[i][n] = fmaf(dj, kr[d], acc[i][n]);
                    }
                }
            }
        }
#pragma unroll
        for (int i = 0; i < ATT_RPW; i++) {
            int r = warp * ATT_RPW + i;
            if (r >= nrow) continue;
            float *row = dq + (size_t)(qb + q0 + r) * qs + (size_t)h * hd;
#pragma unroll
            for (int n = 0; n < NI; n++) {
                int d = lane + 32 * n;
                if (d < hd) row[d] = acc[i][n];
            }
        }
    }
}

/* dK, dV of one key tile and kv head, over every query head of the group
 * and every query tile at or after the key tile. Thread (j = tid % 32,
 * dg = tid / 32) owns dk/dv[j][dg + 8 n]. */
template <int NJ>
__global__ void __launch_bounds__(ATT_THREADS)
attn_bwd_dkv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k,
                    const float *v, const float *out, const float *lse, const int32_t *cu,
                    int n_seq, int n_head, int n_kv, int hd, float scale)
{
    extern __shared__ float sm[];
    const int ld = hd + 1, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float *Ks = sm, *Vs = Ks + ATT_B * ld, *Qs = Vs + ATT_B * ld, *Gs = Qs + ATT_B * ld;
    float *Ps = Gs + ATT_B * ld, *Ss = Ps + ATT_B * (ATT_B + 1), *Ds = Ss + ATT_B * (ATT_B + 1);
    float *Ls = Ds + ATT_B;
    const int kvh = blockIdx.y, group = n_head / n_kv;
    const size_t qs = (size_t)n_head * hd, ks = (size_t)n_kv * hd;
    const int tj = threadIdx.x % 32, dg = threadIdx.x / 32;

    int s, k0;
    for (int b = blockIdx.x; find_tile(cu, n_seq, b, &s, &k0); b += gridDim.x) {
        int base = cu[s], L = cu[s + 1] - base, nk = min(ATT_B, L - k0);
        size_t koff = (size_t)(base + k0) * ks + (size_t)kvh * hd;
        __syncthreads();
        load_rows(Ks, ld, k + koff, ks, nk, hd);
        load_rows(Vs, ld, v + koff, ks, nk, hd);
        float adk[NJ], adv[NJ];
#pragma unroll
        for (int n = 0; n < NJ; n++) adk[n] = adv[n] = 0.0f;
        for (int h = kvh * group; h < (kvh + 1) * group; h++) {
            for (int q0 = k0; q0 < L; q0 += ATT_B) {
                int nrow = min(ATT_B, L - q0);
                size_t roff = (size_t)(base + q0) * qs + (size_t)h * hd;
                __syncthreads(); /* previous phase 2 is done with Qs, Gs, Ps, Ss */
                load_rows(Qs, ld, q + roff, qs, nrow, hd);
                load_rows(Gs, ld, dout + roff, qs, nrow, hd);
                rows_D(Ds, dout + roff, out + roff, qs, nrow, hd);
                if (threadIdx.x < ATT_B)
                    Ls[threadIdx.x] = (int)threadIdx.x < nrow
                                          ? lse[(size_t)(base + q0 + threadIdx.x) * n_head + h]
                                          : 0.0f;
                __syncthreads();
                /* phase 1: p and ds for (row r, key lane) */
                for (int i = 0; i < ATT_RPW; i++) {
                    int r = warp * ATT_RPW + i;
                    float p = 0.0f, ds = 0.0f;
                    if (r < nrow && lane < nk && k0 + lane <= q0 + r) {
                        p = expf(sdot(Qs + r * ld, Ks + lane * ld, hd) * scale - Ls[r]);
                        float dp = sdot(Gs + r * ld, Vs + lane * ld, hd);
                        ds = p * (dp - Ds[r]) * scale;
                    }
                    Ps[r * (ATT_B + 1) + lane] = p;
                    Ss[r * (ATT_B + 1) + lane] = ds;
                }
                __syncthreads();
                /* phase 2: dv_j += sum_r p_rj g_r, dk_j += sum_r ds_rj q_r */
                for (int r = 0; r < nrow; r++) {
                    float p = Ps[r * (ATT_B + 1) + tj], ds = Ss[r * (ATT_B + 1) + tj];
                    const float *gr = Gs + r * ld, *qr = Qs + r * ld;
#pragma unroll
                    for (int n = 0; n < NJ; n++) {
                        int d = dg + 8 * n;
                        if (d < hd) {
                            adv[n] = fmaf(p, gr[d], adv[n]);
                            adk[n] = fmaf(ds, qr[d], adk[n]);
                        }
                    }
                }
            }
        }
        if (tj < nk) {
            size_t off = (size_t)(base + k0 + tj) * ks + (size_t)kvh * hd;
#pragma unroll
            for (int n = 0; n < NJ; n++) {
                int d = dg + 8 * n;
                if (d < hd) dk[off + d] = adk[n], dv[off + d] = adv[n];
            }
        }
    }
}

/* -------------------------------------------------------------- launch */

static size_t smem_fwd(int hd) { return sizeof(float) * 3 * ATT_B * (size_t)(hd + 1); }
static size_t smem_dq(int hd) { return sizeof(float) * (4 * ATT_B * (size_t)(hd + 1) + ATT_B); }
static size_t smem_dkv(int hd)
{
    return sizeof(float) * (4 * ATT_B * (size_t)(hd + 1) + 2 * ATT_B * (ATT_B + 1) + 2 * ATT_B);
}

/* Raise a kernel's dynamic shared-memory limit once (beyond 48 KB). */
template <typename K> static void allow_smem(K kernel, size_t bytes)
{
    if (bytes > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)bytes));
}

static int hd_class(int hd)
{
    if (hd <= 0 || hd > 256 || (hd & 1)) {
        fprintf(stderr, "[cuda] attention: head_dim %d unsupported (even, <= 256)\n", hd);
        exit(1);
    }
    return hd <= 32 ? 1 : hd <= 64 ? 2 : hd <= 128 ? 4 : 8;
}

template <int NI>
static void fwd_launch(float *out, float *lse, const float *q, const float *k, const float *v,
                       const int32_t *cu, const int32_t *slot, const int32_t *kv_len, int n_seq,
                       int max_len, int n_head, int n_kv, int hd, float scale)
{
    size_t sm = smem_fwd(hd);
    allow_smem(attn_fwd_kernel<NI>, sm);
    dim3 grid(ATT_GRID_X, n_head);
    attn_fwd_kernel<NI><<<grid, ATT_THREADS, sm>>>(out, lse, q, k, v, cu, slot, kv_len, n_seq,
                                                   max_len, n_head, n_kv, hd, scale);
    LAUNCH_CHECK();
}

static void fwd_dispatch(float *out, float *lse, const float *q, const float *k, const float *v,
                         const int32_t *cu, const int32_t *slot, const int32_t *kv_len,
                         int n_seq, int max_len, int n_head, int n_kv, int hd, float scale)
{
    if (n_seq <= 0) return;
    switch (hd_class(hd)) {
    case 1: fwd_launch<1>(out, lse, q, k, v, cu, slot, kv_len, n_seq, max_len, n_head, n_kv, hd, scale); break;
    case 2: fwd_launch<2>(out, lse, q, k, v, cu, slot, kv_len, n_seq, max_len, n_head, n_kv, hd, scale); break;
    case 4: fwd_launch<4>(out, lse, q, k, v, cu, slot, kv_len, n_seq, max_len, n_head, n_kv, hd, scale); break;
    default: fwd_launch<8>(out, lse, q, k, v, cu, slot, kv_len, n_seq, max_len, n_head, n_kv, hd, scale); break;
    }
}

void sl_cuda_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                           const int32_t *cu, int n_seq, int n_head, int n_kv, int hd,
                           float scale)
{
    fwd_dispatch(out, lse, q, k, v, cu, NULL, NULL, n_seq, 0, n_head, n_kv, hd, scale);
}

void sl_cuda_attention_cached_fwd(float *out, const float *q, const float *kc, const float *vc,
                                  const int32_t *slot, const int32_t *cuq, const int32_t *kv_len,
                                  int n_seq, int max_len, int n_head, int n_kv, int hd,
                                  float scale)
{
    fwd_dispatch(out, NULL, q, kc, vc, cuq, slot, kv_len, n_seq, max_len, n_head, n_kv, hd,
                 scale);
}

template <int NI>
static void bwd_launch(float *dq, float *dk, float *dv, const float *dout, const float *q,
                       const float *k, const float *v, const float *out, const float *lse,
                       const int32_t *cu, int n_seq, int n_head, int n_kv, int hd, float scale)
{
    size_t s1 = smem_dq(hd), s2 = smem_dkv(hd);
    allow_smem(attn_bwd_dq_kernel<NI>, s1);
    allow_smem(attn_bwd_dkv_kernel<NI * 4>, s2);
    attn_bwd_dq_kernel<NI><<<dim3(ATT_GRID_X, n_head), ATT_THREADS, s1>>>(
        dq, dout, q, k, v, out, lse, cu, n_seq, n_head, n_kv, hd, scale);
    LAUNCH_CHECK();
    attn_bwd_dkv_kernel<NI * 4><<<dim3(ATT_GRID_X, n_kv), ATT_THREADS, s2>>>(
        dk, dv, dout, q, k, v, out, lse, cu, n_seq, n_head, n_kv, hd, scale);
    LAUNCH_CHECK();
}

void sl_cuda_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *out, const float *lse,
                           const int32_t *cu, int n_seq, int n_head, int n_kv, int hd,
                           float scale)
{
    if (n_seq <= 0) return;
    switch (hd_class(hd)) {
    case 1: bwd_launch<1>(dq, dk, dv, dout, q, k, v, out, lse, cu, n_seq, n_head, n_kv, hd, scale); break;
    case 2: bwd_launch<2>(dq, dk, dv, dout, q, k, v, out, lse, cu, n_seq, n_head, n_kv, hd, scale); break;
    case 4: bwd_launch<4>(dq, dk, dv, dout, q, k, v, out, lse, cu, n_seq, n_head, n_kv, hd, scale); break;
    default: bwd_launch<8>(dq, dk, dv, dout, q, k, v, out, lse, cu, n_seq, n_head, n_kv, hd, scale); break;
    }
}
