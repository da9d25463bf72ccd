/*
 * gpu_model.h — the transformer of model.h trained on one NVIDIA GPU in
 * mixed precision (Megatron style): fp32 master weights, fp32 gradients and
 * fp32 AdamW moments on the device; a bf16 copy of the weights and bf16
 * activations for the matrix products (cuBLASLt, bf16 operands, fp32
 * accumulation); fp32 residual stream, norms, softmax and losses. Flash
 * attention (causal, GQA, packed variable-length sequences, no T x T
 * matrix); the LM head is fused with log-softmax / log-prob / entropy and
 * processed in chunks of tokens, so at most SL_GPUM_HEAD_ROWS x V logits
 * exist at a time; its backward recomputes them.
 *
 * A GPU model is made from a host model (model.h, any backend whose memory
 * is host memory, i.e. the CPU one): same config, same parameters, and
 * gradients/parameters can be copied back in the host model's layout, so
 * the CPU fp32 model is the reference of every test (tests/gpu/).
 *
 * Supported: Llama / Mistral / Qwen2 shapes (q/k/v bias optional), Qwen3
 * (per-head q/k RMSNorm before RoPE), tied or untied head, head_dim 64 or
 * 128. Not (yet): o_proj bias, q/k norm together with a q/k/v bias
 * (SL_EUNSUPPORTED). The bf16 weights live in one flat device buffer
 * (sl_gpum_weights) — the buffer that weight sync publishes.
 *
 * Without CUDA (NO_CUDA=1 or no nvcc) every function is a stub that
 * returns SL_EUNSUPPORTED / NULL, so callers need no #ifdef.
 * Not thread-safe: one thread drives a GPU model; all work runs on one
 * CUDA stream and the host calls return when their results are on the host.
 */
#ifndef SL_GPU_MODEL_H
#define SL_GPU_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define SL_GPUM_HEAD_ROWS 4096 /* tokens per LM-head chunk */

typedef struct sl_gpum sl_gpum;

typedef struct sl_gpum_info {
    size_t n_params;      /* as the host model */
    size_t weight_bytes;  /* bf16 flat buffer */
    size_t device_bytes;  /* everything this model allocated on the device */
    int max_tokens;
} sl_gpum_info;

/* Options of a GPU model. */
typedef struct sl_gpum_opts {
    int recompute; /* activation recomputation (below) */
    int profile;   /* device time per kind of op (sl_gpum_profile) */
} sl_gpum_opts;

#ifdef SL_HAVE_CUDA
#ifdef __cplusplus
extern "C" {
#endif

/* A GPU model with host's config and parameters (host->ops must be the
 * CPU backend), activations for max_tokens tokens. Errors: SL_EUNSUPPORTED
 * (no GPU, unsupported architecture), SL_EINVAL, SL_ENOMEM (message in
 * err). */
int sl_gpum_new(const sl_model *host, int max_tokens, sl_gpum **out, char *err, size_t errlen);
/* The same with options; sl_gpum_new takes them from the environment
 * (SL_GPUM_RECOMPUTE=1, SL_GPUM_PROFILE=1: benchmarks and tests). */
int sl_gpum_new_opts(const sl_model *host, int max_tokens, const sl_gpum_opts *opts, sl_gpum **out,
                     char *err, size_t errlen);
void sl_gpum_free(sl_gpum *g);
void sl_gpum_get_info(const sl_gpum *g, sl_gpum_info *info);

/* As sl_model_forward (same batch rules and outputs, host arrays). */
int sl_gpum_forward(sl_gpum *g, const int32_t *tokens, const int32_t *cu_seqlens, int n_seq,
                    const int32_t *targets, float *logprobs, float *entropy, double *loss);
/* As sl_model_backward / sl_model_backward_ce: gradients accumulate. */
int sl_gpum_backward(sl_gpum *g, const float *dlogprob, const float *dentropy);
int sl_gpum_backward_ce(sl_gpum *g, double *loss_out);
void sl_gpum_zero_grad(sl_gpum *g);
/* Forward and mean cross-entropy backward in one pass (supervised steps):
 * the LM head's gradient is taken from the logits of the forward chunk,
 * so they are computed once. Same batch rules; logprobs (host, may be
 * NULL) and *loss as sl_gpum_forward; gradients accumulate. Leaves no
 * activations for another backward. */
int sl_gpum_forward_backward_ce(sl_gpum *g, const int32_t *tokens, const int32_t *cu_seqlens,
                                int n_seq, const int32_t *targets, float *logprobs,
                                double *loss);
/* Global gradient-norm clip (max_norm <= 0: none), then one AdamW step
 * (decoupled weight decay on matrices and embeddings, not on norms and
 * biases, bias-corrected), refreshes the bf16 weights and zeroes the
 * gradients. *grad_norm (may be NULL) gets the norm before clipping. */
void sl_gpum_adamw_step(sl_gpum *g, float lr, float beta1, float beta2, float eps,
                        float weight_decay, float max_norm, double *grad_norm);
/* Copy gradients / master parameters to host arrays of n_params floats in
 * the host model's layout. */
void sl_gpum_grads_to_host(sl_gpum *g, float *host);
void sl_gpum_params_to_host(sl_gpum *g, float *host);
/* The flat bf16 weight buffer (device pointer) and its size. */
void *sl_gpum_weights(sl_gpum *g, size_t *bytes);
/* ---- what a trainer needs around the steps (actors/trainer_core.c) ----
 * Logits are multiplied by s in forward and backward (the alpha of the LM
 * head's GEMMs, exact): s = 1/temperature gives log softmax(z/T). Default 1. */
void sl_gpum_set_logit_scale(sl_gpum *g, float s);
/* Global gradient norm (before clipping, as sl_grad_clip); when it is
 * finite and max_norm > 0 the gradients are scaled to at most max_norm.
 * A non-finite norm leaves the gradients untouched (skip the step). */
double sl_gpum_clip_grad(sl_gpum *g, float max_norm);
/* Replace the master parameters (host layout, n_params floats) and
 * refresh the bf16 weights. */
void sl_gpum_params_from_host(sl_gpum *g, const float *host);
/* AdamW moments m, v in the host layout (n_params floats each; either may
 * be NULL on download; NULL on upload = zeros) and the step count (bias
 * correction of the next step uses step + 1). */
void sl_gpum_moments_to_host(sl_gpum *g, float *m, float *v);
void sl_gpum_moments_from_host(sl_gpum *g, const float *m, const float *v);
int64_t sl_gpum_get_step(const sl_gpum *g);
void sl_gpum_set_step(sl_gpum *g, int64_t step);
/* The reference model: a frozen bf16 copy of the current weights (taken
 * again on each call; weight_bytes of device memory). sl_gpum_use_ref(g, 1)
 * makes forwards use it (backward is refused: SL_EINVAL) until
 * sl_gpum_use_ref(g, 0). Errors: SL_ENOMEM, SL_EINVAL (no snapshot). */
int sl_gpum_ref_snapshot(sl_gpum *g);
int sl_gpum_use_ref(sl_gpum *g, int on);
/* With recompute (sl_gpum_opts; [trainer] recompute_activations), activations are recomputed:
 * only the layer inputs (fp32 residual stream) are kept for every layer, the
 * other intermediates for one layer, and the backward runs each layer's
 * forward again before its backward (same results; about one more forward
 * of compute). */
/* With profile (sl_gpum_opts), device time
 * per kind of op is summed (events between ops, so it slows the model):
 * ms[0..SL_GPUM_PROF_N) = gemm, attention forward, attention backward,
 * norms, LM head (its GEMMs included), other elementwise, optimizer;
 * returned and reset here. Returns 0 when profiling is off. */
#define SL_GPUM_PROF_N 7
int sl_gpum_profile(sl_gpum *g, double *ms, int n);
/* Wait for the device (timing). */
void sl_gpum_sync(sl_gpum *g);
/* Measurement helpers: median bf16 GEMM rate (n x n x n, random data,
 * cuBLASLt as the model uses it) in TFLOP/s; device memory free/total. */
double sl_gpu_gemm_tflops(int n, int reps);
void sl_gpu_mem_info(size_t *free_b, size_t *total_b);

/* For data parallelism (kernels/nccl_comm.h): the flat fp32 buffers on
 * the device (parameters, gradients, moments; M/V NULL after
 * sl_gpum_drop_moments), the bf16 weights, n elements of which the first
 * n_decay are weight-decayed; layer l's matrices start at layer_off[l],
 * layer_off[n_layers] = n_decay. Pointers stay valid while g lives. */
typedef struct sl_gpum_flat {
    float *P, *G, *M, *V;
    void *Wb;
    size_t n, n_decay;
    int n_layers;
    const size_t *layer_off;
} sl_gpum_flat;
void sl_gpum_get_flat(sl_gpum *g, sl_gpum_flat *f);
/* fn(ctx, l) is called on the host during every backward once layer l's
 * gradient kernels are queued on the model's stream (l = L-1 .. 0), and
 * fn(ctx, -1) when every gradient's are (NULL: none). */
typedef void (*sl_gpum_bwd_hook)(void *ctx, int layer);
void sl_gpum_set_bwd_hook(sl_gpum *g, sl_gpum_bwd_hook fn, void *ctx);
/* A flat device buffer of n floats (the layout above) to the host layout
 * (n_params floats), and back (host NULL: zeros). After the work queued on
 * the model's stream. */
void sl_gpum_flat_to_host(sl_gpum *g, const float *dev, float *host);
void sl_gpum_flat_from_host(sl_gpum *g, float *dev, const float *host);
/* Free the full AdamW moments (ZeRO-1 keeps shards of its own); then
 * sl_gpum_adamw_step is a no-op and sl_gpum_moments_to/from_host do
 * nothing (the moments are nccl_comm's: sl_dp_moments_*). */
void sl_gpum_drop_moments(sl_gpum *g);
/* The model's CUDA stream (a cudaStream_t). */
void *sl_gpum_stream(sl_gpum *g);

/* Test hooks (gpu_testhooks.cu): one bf16 op on host fp32 arrays, for the
 * op-by-op comparison with the CPU backend in tests/gpu/. attention: q
 * (T,NH,HD), k/v (T,NKV,HD), packed by cu (n_seq+1, host); forward then
 * backward with dout. head: logits h W^T, stats and the gradients for
 * dlogprob/dentropy (dW overwritten). rmsnorm: forward and backward (dx
 * overwritten, dw overwritten). swiglu: gu (T, 2F) gate|up. */
void sl_gpu_test_attention(float *out, float *lse, float *dq, float *dk, float *dv,
                           const float *dout, const float *q, const float *k, const float *v,
                           const int32_t *cu, int n_seq, int NH, int NKV, int HD, float scale);
void sl_gpu_test_head(float *logprob, float *entropy, float *dh, float *dW,
                      const float *dlogprob, const float *dentropy, const float *h,
                      const float *W, const int32_t *target, int T, int C, int V);
void sl_gpu_test_rmsnorm(float *out, float *dx, float *dw, const float *x, const float *w,
                         const float *dout, int T, int C, float eps);
void sl_gpu_test_swiglu(float *act, float *dgu, const float *gu, const float *dact, int T, int F);

#ifdef __cplusplus
}
#endif
#else /* !SL_HAVE_CUDA */
#include <stdio.h>
#include "base.h"
static inline int sl_gpum_new(const sl_model *host, int max_tokens, sl_gpum **out, char *err,
                              size_t errlen)
{
    (void)host, (void)max_tokens;
    *out = 0;
    if (err && errlen) snprintf(err, errlen, "built without CUDA");
    return SL_EUNSUPPORTED;
}
static inline int sl_gpum_new_opts(const sl_model *host, int max_tokens, const sl_gpum_opts *opts,
                                   sl_gpum **out, char *err, size_t errlen)
{
    (void)opts;
    return sl_gpum_new(host, max_tokens, out, err, errlen);
}
static inline void sl_gpum_free(sl_gpum *g) { (void)g; }
static inline void *sl_gpum_weights(sl_gpum *g, size_t *bytes)
{
    (void)g;
    if (bytes) *bytes = 0;
    return 0;
}
#endif

#endif /* SL_GPU_MODEL_H */
