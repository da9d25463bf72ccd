/*
 * common.cuh — shared pieces of the CUDA backend: error-check macros (they
 * print the failed statement, function, file and line, then end the
 * process), launch helpers, warp reductions and the internal prototypes of
 * every op family (one .cu per family). Not a public header.
 */
#ifndef SL_CUDA_COMMON_CUH
#define SL_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void sl_cuda_die(const char *what, const char *msg, const char *func, const char *file, int line);

#define CUDA_CHECK(call)                                                                        \
    do {                                                                                        \
        cudaError_t e_ = (call);                                                                \
        if (e_ != cudaSuccess)                                                                  \
            sl_cuda_die(#call, cudaGetErrorString(e_), __func__, __FILE__, __LINE__);           \
    } while (0)

#define CUBLAS_CHECK(call)                                                                      \
    do {                                                                                        \
        cublasStatus_t s_ = (call);                                                             \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                        \
            sl_cuda_die(#call, cublasGetStatusString(s_), __func__, __FILE__, __LINE__);        \
    } while (0)

/* after every kernel launch */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

static inline unsigned cdiv_u(size_t n, size_t d) { return (unsigned)((n + d - 1) / d); }

/* Grid for a grid-stride elementwise loop over n items. */
static inline unsigned ew_grid(size_t n, int threads)
{
    size_t b = (n + (size_t)threads - 1) / (size_t)threads;
    if (b > 65535u * 16u) b = 65535u * 16u;
    return b ? (unsigned)b : 1u;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---------------------------------------------- internal op prototypes */

/* ops_cuda.cu */
cublasHandle_t sl_cuda_blas(void);
void sl_cuda_matmul(float *C, const float *A, const float *B, int M, int N, int K, int transA,
                    int transB, float alpha, int accumulate);
void *sl_cuda_workspace(void); /* SL_CUDA_WS_BYTES of device memory, backend-private */
#define SL_CUDA_WS_BYTES ((size_t)1 << 16)

/* elementwise.cu */
void sl_cuda_add_inplace(float *y, const float *x, size_t n);
void sl_cuda_bias_add(float *out, const float *b, int T, int C);
void sl_cuda_bias_bwd(float *db, const float *dout, int T, int C);
void sl_cuda_embedding_fwd(float *out, const float *wte, const int32_t *tokens, int T, int C);
void sl_cuda_embedding_bwd(float *dwte, const float *dout, const int32_t *tokens, int T, int C);
void sl_cuda_rope_fwd(float *x, const int32_t *pos, const float *cos_t, const float *sin_t,
                      int T, int n_head, int hd);
void sl_cuda_rope_bwd(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t,
                      int T, int n_head, int hd);
void sl_cuda_swiglu_fwd(float *out, const float *gate, const float *up, size_t n);
void sl_cuda_swiglu_bwd(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, size_t n);

/* rmsnorm.cu */
void sl_cuda_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int T, int C,
                         float eps);
void sl_cuda_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, const float *rstd, int T, int C);
/* dst[c] += sum_t a[t,c] * (b ? b[t,c] : 1) * (r ? r[t] : 1) (column sums). */
void sl_cuda_colsum(float *dst, const float *a, const float *b, const float *r, int T, int C);

/* attention.cu */
void sl_cuda_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                           const int32_t *cu, int n_seq, int n_head, int n_kv, int hd,
                           float scale);
void sl_cuda_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *out, const float *lse,
                           const int32_t *cu, int n_seq, int n_head, int n_kv, int hd,
                           float scale);
void sl_cuda_attention_cached_fwd(float *out, const float *q, const float *kc, const float *vc,
                                  const int32_t *slot, const int32_t *cuq, const int32_t *kv_len,
                                  int n_seq, int max_len, int n_head, int n_kv, int hd,
                                  float scale);

/* lmhead.cu */
void sl_cuda_lmhead_logprob_fwd(float *logprob, float *entropy, float *lse, const float *h,
                                const float *W, const int32_t *target, int T, int C, int V,
                                float *scratch);
void sl_cuda_lmhead_logprob_bwd(float *dh, float *dW, const float *dlogprob,
                                const float *dentropy, const float *h, const float *W,
                                const int32_t *target, const float *lse, const float *entropy,
                                int T, int C, int V, float *scratch);

#endif /* SL_CUDA_COMMON_CUH */
