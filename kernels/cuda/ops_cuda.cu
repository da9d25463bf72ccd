/*
 * ops_cuda.cu — the CUDA backend's table (ops_cuda.h): device memory,
 * the cuBLAS handle, matrix products (cuBLAS sgemm in fp32, no TF32) and
 * the sl_ops struct that points at every op family's host launcher
 * (elementwise.cu, rmsnorm.cu, attention.cu, lmhead.cu).
 *
 * It is not a memory pool: alloc is one cudaMalloc (zero-filled), so
 * callers allocate once per role, as model.c does.
 */
#include <pthread.h>
#include <string.h>

/* this file is only built with CUDA: declare the real functions */
#ifndef SL_HAVE_CUDA
#define SL_HAVE_CUDA 1
#endif
#include "common.cuh"
#include "ops_cuda.h"

void sl_cuda_die(const char *what, const char *msg, const char *func, const char *file, int line)
{
    fprintf(stderr, "[cuda] %s failed: %s (in %s, %s:%d)\n", what, msg, func, file, line);
    fflush(stderr);
    exit(1);
}

/* --------------------------------------------------------------- state */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_ok;
static cublasHandle_t g_blas;
static void *g_ws;

static void cuda_init(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        cudaGetLastError(); /* clear the sticky-free error state */
        return;
    }
    if (cublasCreate(&g_blas) != CUBLAS_STATUS_SUCCESS) return;
    /* fp32 products stay fp32 (no TF32): the CPU twin is the reference */
    CUBLAS_CHECK(cublasSetMathMode(g_blas, CUBLAS_DEFAULT_MATH));
    if (cudaMalloc(&g_ws, SL_CUDA_WS_BYTES) != cudaSuccess) {
        cublasDestroy(g_blas);
        return;
    }
    g_ok = 1;
}

extern "C" int sl_cuda_available(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) cudaGetLastError();
    return e == cudaSuccess && n > 0;
}

cublasHandle_t sl_cuda_blas(void) { return g_blas; }
void *sl_cuda_workspace(void) { return g_ws; }

/* -------------------------------------------------------------- memory */

static void *cuda_alloc(size_t bytes)
{
    if (bytes == 0) return NULL;
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is not sticky: clear it */
        return NULL;
    }
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
}

static void cuda_free(void *p)
{
    if (p) CUDA_CHECK(cudaFree(p));
}

static void cuda_copy_in(void *dst, const void *src, size_t bytes)
{
    if (bytes) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

static void cuda_copy_out(void *dst, const void *src, size_t bytes)
{
    if (bytes) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

static void cuda_copy(void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src) CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
}

static void cuda_zero(void *p, size_t bytes)
{
    if (bytes) CUDA_CHECK(cudaMemset(p, 0, bytes));
}

/* -------------------------------------------------------------- matmul */

/* Row-major C (M,N) = op(A) op(B) is column-major C^T (N,M) = op(B)^T
 * op(A)^T: B's row-major buffer read column-major is B^T, so B comes
 * first with the same transpose flag. */
void sl_cuda_matmul(float *C, const float *A, const float *B, int M, int N, int K, int transA,
                    int transB, float alpha, int accumulate)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate) cuda_zero(C, sizeof(float) * (size_t)M * (size_t)N);
        return;
    }
    float beta = accumulate ? 1.0f : 0.0f;
    int lda = transA ? M : K, ldb = transB ? K : N;
    CUBLAS_CHECK(cublasSgemm(g_blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                             transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, A, lda,
                             &beta, C, N));
}

/* --------------------------------------------------------------- table */

static sl_ops g_ops;

static void fill_table(void)
{
    memset(&g_ops, 0, sizeof(g_ops));
    g_ops.name = "cuda";
    g_ops.alloc = cuda_alloc;
    g_ops.free = cuda_free;
    g_ops.copy_in = cuda_copy_in;
    g_ops.copy_out = cuda_copy_out;
    g_ops.copy = cuda_copy;
    g_ops.zero = cuda_zero;
    g_ops.matmul = sl_cuda_matmul;
    g_ops.add_inplace = sl_cuda_add_inplace;
    g_ops.bias_add = sl_cuda_bias_add;
    g_ops.bias_bwd = sl_cuda_bias_bwd;
    g_ops.embedding_fwd = sl_cuda_embedding_fwd;
    g_ops.embedding_bwd = sl_cuda_embedding_bwd;
    g_ops.rmsnorm_fwd = sl_cuda_rmsnorm_fwd;
    g_ops.rmsnorm_bwd = sl_cuda_rmsnorm_bwd;
    g_ops.rope_fwd = sl_cuda_rope_fwd;
    g_ops.rope_bwd = sl_cuda_rope_bwd;
    g_ops.attention_fwd = sl_cuda_attention_fwd;
    g_ops.attention_bwd = sl_cuda_attention_bwd;
    g_ops.attention_cached_fwd = sl_cuda_attention_cached_fwd;
    g_ops.swiglu_fwd = sl_cuda_swiglu_fwd;
    g_ops.swiglu_bwd = sl_cuda_swiglu_bwd;
    g_ops.lmhead_logprob_fwd = sl_cuda_lmhead_logprob_fwd;
    g_ops.lmhead_logprob_bwd = sl_cuda_lmhead_logprob_bwd;
}

static void init_all(void)
{
    cuda_init();
    if (g_ok) fill_table();
}

extern "C" const sl_ops *sl_ops_cuda(void)
{
    pthread_once(&g_once, init_all);
    return g_ok ? &g_ops : NULL;
}
