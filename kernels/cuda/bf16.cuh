/*
 * bf16.cuh — internal pieces of the bf16 GPU model (gpu_model.cu): the
 * cuBLASLt matrix product (bf16 operands, fp32 accumulation, bf16 or fp32
 * output, optional C input for fused residual adds and gradient
 * accumulation), and the launchers of the bf16 kernels (bf16_kernels.cu,
 * flash.cu). Not a public header; the public API is kernels/gpu_model.h.
 *
 * Conventions: row-major, T tokens; "bf" = __nv_bfloat16. Index arrays
 * (positions, targets, tokens, tile lists) are device arrays.
 */
#ifndef SL_CUDA_BF16_CUH
#define SL_CUDA_BF16_CUH

#include <cuda_bf16.h>
#include <cublasLt.h>

#include "common.cuh"

typedef __nv_bfloat16 bf16;

/* One attention tile: 64 query (or key) rows [r0, min(r0+64, end)) of the
 * sequence [start, end). */
typedef struct sl_att_tile {
    int r0, start, end, pad;
} sl_att_tile;
#define SL_ATT_TILE 64

/* --------------------------------------------------------------- gemm */
/* D (M,N) = alpha op(A) op(B) + beta C, row-major like ops.h's matmul:
 * op(A) (M,K) is A (M,K) or A (K,M) when transA; op(B) (K,N) is B (K,N) or
 * (N,K) when transB. A, B bf16. D and C have type d_f32 ? float : bf16 and
 * the same shape; C may equal D (accumulate) or be NULL (beta ignored).
 * Dense operands. Runs on sl_bf_stream(). */
void sl_bf_gemm(void *D, int d_f32, const bf16 *A, const bf16 *B, const void *C, int M, int N,
                int K, int transA, int transB, float alpha, float beta);
cudaStream_t sl_bf_stream(void);
void sl_bf_init(void); /* idempotent: handle, workspace */

/* ------------------------------------------------------------ kernels */
void sl_bf_f32_to_bf16(bf16 *dst, const float *src, size_t n);
void sl_bf_bf16_to_f32(float *dst, const bf16 *src, size_t n);
void sl_bf_embed_fwd(float *res, const bf16 *E, const int32_t *tok, int T, int C);
void sl_bf_embed_bwd(float *dE, const float *dres, const int32_t *tok, int T, int C);
/* out = w * x * rstd (bf16), rstd kept. */
void sl_bf_rmsnorm_fwd(bf16 *out, float *rstd, const float *x, const bf16 *w, int T, int C,
                       float eps);
/* dx = (accumulate ? dx : 0) + d/dx; dx_b = bf16(dx); dw += column sums. */
void sl_bf_rmsnorm_bwd(float *dx, bf16 *dx_b, float *dw, const float *dout, const float *x,
                       const bf16 *w, const float *rstd, int T, int C, int accumulate);
/* qkv (T, W) with W = (NH + 2 NKV) HD, in place: + bias (may be NULL),
 * RoPE on the q and k parts. */
void sl_bf_qkv_post_fwd(bf16 *qkv, const bf16 *bias, const int32_t *pos, const float *cos_t,
                        const float *sin_t, int T, int NH, int NKV, int HD);
/* dqkv's q part = rope_bwd(dq fp32), k part rope_bwd in place; dbias +=
 * column sums (dbias may be NULL). */
void sl_bf_qkv_post_bwd(bf16 *dqkv, const float *dq, float *dbias, const int32_t *pos,
                        const float *cos_t, const float *sin_t, int T, int NH, int NKV, int HD);
/* Qwen3 q/k norm, before RoPE: per (token, head) of the q and k parts of
 * qkv, pre (T, NH+NKV, HD) = the projection, qkv = w * pre * rstd; rstd
 * (T, NH+NKV). HD 64 or 128. */
void sl_bf_headnorm_fwd(bf16 *qkv, bf16 *pre, float *rstd, const bf16 *wq, const bf16 *wk, int T,
                        int NH, int NKV, int HD, float eps);
/* In place: dqkv's q and k parts from d(normed) to d(pre); dwq, dwk (HD)
 * accumulate. */
void sl_bf_headnorm_bwd(bf16 *dqkv, const bf16 *pre, const float *rstd, const bf16 *wq,
                        const bf16 *wk, float *dwq, float *dwk, int T, int NH, int NKV, int HD);
/* act (T,F) = silu(gu[:, :F]) * gu[:, F:] */
void sl_bf_swiglu_fwd(bf16 *act, const bf16 *gu, int T, int F);
/* dgu from dact; act recomputed into act. */
void sl_bf_swiglu_bwd(bf16 *dgu, bf16 *act, const bf16 *dact, const bf16 *gu, int T, int F);
/* Per row of logits (Tc, V): lse, logprob of target (0 if < 0), entropy. */
void sl_bf_head_stats(float *lse, float *logprob, float *entropy, const bf16 *logits,
                      const int32_t *target, int Tc, int V);
/* In place: logits -> d loss / d logits. dentropy, entropy may be NULL. */
void sl_bf_head_grad(bf16 *logits, const float *lse, const float *entropy,
                     const float *dlogprob, const float *dentropy, const int32_t *target, int Tc,
                     int V);
/* AdamW over n params: decay applies to i < n_decay. Writes the bf16
 * copy and zeroes g. */
void sl_bf_adamw(float *p, float *g, float *m, float *v, bf16 *pb, size_t n, size_t n_decay,
                 float lr, float b1, float b2, float eps, float wd, float bc1, float bc2);
/* sum of squares of x (n) into *out (device double, accumulate). */
void sl_bf_sumsq(double *out, const float *x, size_t n);
void sl_bf_scale(float *x, size_t n, const double *sumsq, float max_norm);

/* ---------------------------------------------------------- attention */
/* Flash causal GQA attention over packed sequences. q, k, v point at the
 * first head of token 0 with row strides sq, sk, sv (elements); out (T,
 * NH*HD) dense; lse (T, NH) natural log. tiles (n_tiles) cover every
 * sequence in 64-row tiles. HD 64 or 128. */
void sl_bf_attn_fwd(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, int sq,
                    int sk, int sv, const sl_att_tile *tiles, int n_tiles, int T, int NH, int NKV,
                    int HD, float scale);
/* dq (T, NH*HD) fp32, zeroed here and accumulated; dk, dv bf16 with row
 * strides sdk, sdv; Dbuf (T*NH) and dkv (2*T*NKV*HD) fp32 scratch (one
 * block per key tile and query head: the group's heads add dk/dv there). */
void sl_bf_attn_bwd(float *dq, bf16 *dk, bf16 *dv, int sdk, int sdv, const bf16 *dout,
                    const bf16 *out, const float *lse, const bf16 *q, const bf16 *k,
                    const bf16 *v, int sq, int sk, int sv, float *Dbuf, float *dkv,
                    const sl_att_tile *tiles, int n_tiles, int T, int NH, int NKV, int HD,
                    float scale);

#endif
