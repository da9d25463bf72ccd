/*
 * ops_cuda.h — the CUDA backend of the ops table (ops.h) for NVIDIA sm_90
 * (H100/H200). Backend memory is device memory (cudaMalloc); index arrays
 * (positions, cu_seqlens, slots, kv lengths, targets) are device arrays
 * allocated through the table like everything else.
 *
 * This version stores everything in fp32 and computes in fp32: matrix
 * products through cuBLAS (sgemm, no TF32), attention as tiled online-
 * softmax kernels that never hold a T x T matrix, the LM head chunked over
 * the vocabulary like the CPU backend. It is tested op by op against
 * sl_ops_cpu() (tests/gpu/). The bf16 mixed-precision training path is
 * kernels/gpu_model.h (its own kernels; see tests/bench/NOTES.md).
 *
 * Built only when the Makefile finds nvcc (it then defines SL_HAVE_CUDA);
 * without it these two functions are inline stubs that report no GPU, so
 * callers need no #ifdef.
 */
#ifndef SL_OPS_CUDA_H
#define SL_OPS_CUDA_H

#include "ops.h"

#ifdef SL_HAVE_CUDA
#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the CUDA runtime loads and sees at least one device, else 0.
 * Never fails loudly; thread-safe. */
int sl_cuda_available(void);

/* The CUDA table (static, process-wide), or NULL when no device is usable.
 * The first call picks the current device, creates the cuBLAS handle and a
 * small workspace (thread-safe, once). All ops run on the legacy default
 * stream in call order; copy_out returns when the data is on the host.
 * A failed CUDA or cuBLAS call inside an op prints the call, function,
 * file and line and ends the process (exit 1): the supervisor restarts the
 * actor. alloc returns NULL when device memory is exhausted. */
const sl_ops *sl_ops_cuda(void);

#ifdef __cplusplus
}
#endif
#else /* !SL_HAVE_CUDA */
static inline int sl_cuda_available(void) { return 0; }
static inline const sl_ops *sl_ops_cuda(void) { return 0; }
#endif

#endif /* SL_OPS_CUDA_H */
