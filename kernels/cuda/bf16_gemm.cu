/*
 * bf16_gemm.cu — matrix products of the bf16 GPU model through cuBLASLt:
 * bf16 operands, fp32 accumulation (CUBLAS_COMPUTE_32F), bf16 or fp32
 * output, optional C input (D = alpha AB + beta C) used for the fused
 * residual add of the output projections and for accumulating fp32 weight
 * gradients. The heuristic's choice is cached per shape.
 *
 * Not thread-safe: one thread drives the GPU model.
 */
#include <string.h>

#include "bf16.cuh"

#define LT_CHECK(call) CUBLAS_CHECK(call)
#define WS_BYTES ((size_t)64 << 20)
#define N_CACHE 512

static cublasLtHandle_t g_lt;
static void *g_ws;
static cudaStream_t g_stream;
static int g_init;

typedef struct {
    int m, n, k, ta, tb, d_f32, has_c;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} plan;
static plan g_cache[N_CACHE];
static int g_n_cache;

void sl_bf_init(void)
{
    if (g_init) return;
    LT_CHECK(cublasLtCreate(&g_lt));
    CUDA_CHECK(cudaMalloc(&g_ws, WS_BYTES));
    /* a blocking stream: ordered with the legacy default stream, so plain
     * cudaMemcpy / cudaMemset elsewhere cannot race with its kernels */
    CUDA_CHECK(cudaStreamCreate(&g_stream));
    g_init = 1;
}

cudaStream_t sl_bf_stream(void)
{
    sl_bf_init();
    return g_stream;
}

static plan *get_plan(int m, int n, int k, int ta, int tb, int d_f32, int has_c)
{
    for (int i = 0; i < g_n_cache; i++) {
        plan *p = &g_cache[i];
        if (p->m == m && p->n == n && p->k == k && p->ta == ta && p->tb == tb &&
            p->d_f32 == d_f32 && p->has_c == has_c)
            return p;
    }
    if (g_n_cache == N_CACHE) sl_cuda_die("gemm plan cache", "full", __func__, __FILE__, __LINE__);
    plan *p = &g_cache[g_n_cache];
    memset(p, 0, sizeof(*p));
    p->m = m, p->n = n, p->k = k, p->ta = ta, p->tb = tb, p->d_f32 = d_f32, p->has_c = has_c;
    LT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
    /* column-major view: A is (ta ? k x m : m x k) */
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, ta ? k : m, ta ? m : k, ta ? k : m));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, tb ? n : k, tb ? k : n, tb ? n : k));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->lc, d_f32 ? CUDA_R_32F : CUDA_R_16BF, m, n, m));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = WS_BYTES;
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &ws, sizeof(ws)));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    LT_CHECK(cublasLtMatmulAlgoGetHeuristic(g_lt, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &res,
                                            &found));
    cublasLtMatmulPreferenceDestroy(pref);
    if (found < 1) sl_cuda_die("cublasLtMatmulAlgoGetHeuristic", "no algorithm", __func__, __FILE__, __LINE__);
    p->algo = res.algo;
    g_n_cache++;
    return p;
}

/* Row-major D (M,N) = op(A) op(B) is column-major D^T (N,M) = op(B)^T
 * op(A)^T: B's buffer read column-major is B^T, so B goes first. */
void sl_bf_gemm(void *D, int d_f32, const bf16 *A, const bf16 *B, const void *C, int M, int N,
                int K, int transA, int transB, float alpha, float beta)
{
    sl_bf_init();
    if (M <= 0 || N <= 0 || K <= 0) return;
    if (!C) beta = 0.0f;
    plan *p = get_plan(N, M, K, transB, transA, d_f32, C != NULL);
    LT_CHECK(cublasLtMatmul(g_lt, p->op, &alpha, B, p->la, A, p->lb, &beta, C ? C : D, p->lc, D,
                            p->lc, &p->algo, g_ws, WS_BYTES, g_stream));
}

/* ------------------------------------------------ measurement helpers */
__global__ void k_fill_rand(bf16 *x, size_t n, uint32_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15, h *= 2246822519u, h ^= h >> 13, h *= 3266489917u, h ^= h >> 16;
        x[i] = __float2bfloat16(((float)(h & 0xffffff) / 16777216.0f - 0.5f) * 2.0f);
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

extern "C" double sl_gpu_gemm_tflops(int n, int reps)
{
    sl_bf_init();
    size_t nn = (size_t)n * n;
    bf16 *A, *B, *D;
    CUDA_CHECK(cudaMalloc(&A, 2 * nn));
    CUDA_CHECK(cudaMalloc(&B, 2 * nn));
    CUDA_CHECK(cudaMalloc(&D, 2 * nn));
    k_fill_rand<<<1024, 256, 0, g_stream>>>(A, nn, 1);
    k_fill_rand<<<1024, 256, 0, g_stream>>>(B, nn, 2);
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float *ms = (float *)calloc(reps, sizeof(float));
    for (int i = -3; i < reps; i++) {
        CUDA_CHECK(cudaEventRecord(e0, g_stream));
        sl_bf_gemm(D, 0, A, B, NULL, n, n, n, 0, 1, 1.f, 0.f);
        CUDA_CHECK(cudaEventRecord(e1, g_stream));
        CUDA_CHECK(cudaEventSynchronize(e1));
        if (i >= 0) CUDA_CHECK(cudaEventElapsedTime(&ms[i], e0, e1));
    }
    qsort(ms, reps, sizeof(float), cmp_float);
    double t = ms[reps / 2] * 1e-3;
    free(ms);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(A);
    cudaFree(B);
    cudaFree(D);
    return 2.0 * n * (double)n * n / t / 1e12;
}

extern "C" void sl_gpu_mem_info(size_t *free_b, size_t *total_b)
{
    CUDA_CHECK(cudaMemGetInfo(free_b, total_b));
}
