/*
 * gpu_engine.h — the device half of the GPU rollout engine: a generation
 * core on one NVIDIA GPU (sm_90, bf16 storage, fp32 accumulation) that the
 * scheduler of actors/engine.h drives when the engine is made with
 * sl_engine_new_gpu (continuous batching, groups, stop tokens, abort stay
 * in engine.c; this file is the model side).
 *
 *  - Weights: ONE flat bf16 device buffer in exactly the layout of
 *    sl_gpum_weights() (kernels/cuda/gpu_layout.cuh, shared with the
 *    trainer), loaded from host fp32 params (sl_model layout) or taken from
 *    an external device pointer in that layout: copied into the engine's
 *    own buffer, or used in place (the trainer's buffer through CUDA IPC).
 *  - Paged KV cache: bf16 blocks of SL_GENG_BLOCK positions (all layers of
 *    a block contiguous), one block table per slot, refcounted blocks: a
 *    slot can share another slot's prompt (full blocks by reference, the
 *    last partial block copied), so a group's prompt is computed once.
 *  - Prefill: the new prompts packed in one pass (flash attention, no T x T
 *    matrix), their K/V scattered into the cache; logits only for the last
 *    token of each prompt.
 *  - Decode: one token per slot, paged attention; the whole step (all
 *    layers, LM head, sampling) is a CUDA graph captured per batch-size
 *    bucket (1, 2, 4, ... max_batch), replayed with the step's inputs.
 *  - Sampling on the device (sampler.h semantics: temperature, top-k with
 *    ties kept, top-p as the smallest prefix reaching p, greedy = argmax
 *    with the lowest id on ties), no sort of the vocabulary: thresholds are
 *    found by bisection over the logit values, the token by inverse CDF in
 *    id order with sl_sampler_uniform(seed, seq_id, step). The log-prob is
 *    log softmax(logits / T)[token] over the full vocabulary (T = 1 when
 *    greedy), fp32 logits.
 *
 * Supported shapes: Llama / Mistral / Qwen2 (q/k/v bias) / Qwen3 (q/k
 * RMSNorm per head), tied or untied head, head_dim 64 or 128, GQA with at
 * most 16 query heads per kv head. Not: o_proj bias (SL_EUNSUPPORTED).
 *
 * Without CUDA every function is a stub returning SL_EUNSUPPORTED / NULL.
 * Not thread-safe: one thread drives a core; calls return when their
 * results are on the host.
 */
#ifndef SL_GPU_ENGINE_H
#define SL_GPU_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "model.h"

#define SL_GENG_BLOCK 16 /* positions per KV block */

typedef struct sl_geng sl_geng;

/* Sampling of one output row. */
typedef struct sl_geng_samp {
    float temperature; /* 0 = greedy */
    float top_p;       /* (0, 1] */
    int32_t top_k;     /* 0 = off */
    int32_t pad_;
    uint64_t seed, seq_id, step; /* sl_sampler_uniform(seed, seq_id, step) */
} sl_geng_samp;

typedef struct sl_geng_stats {
    int64_t prefill_calls, prefill_tokens, decode_steps, graph_launches, graphs_captured;
    int64_t kv_blocks, kv_blocks_used, kv_shared_blocks, kv_block_copies;
    double prefill_ms, decode_ms; /* host wall time inside the calls */
    size_t device_bytes;
} sl_geng_stats;

#ifdef SL_HAVE_CUDA
#ifdef __cplusplus
extern "C" {
#endif

/* Make GPU n the current device of this thread (before sl_geng_new).
 * SL_EUNSUPPORTED when there is no such device. */
int sl_geng_use_device(int n);

/* A core for host's config (host->ops: the CPU backend; its parameters are
 * NOT loaded: call sl_geng_load_host or sl_geng_set_weights_device),
 * max_batch slots of max_seq_len positions, prefills of at most
 * max_prefill_tokens tokens per call (>= max_seq_len), graphs 0/1.
 * Errors: SL_EUNSUPPORTED (no GPU, shape), SL_EINVAL, SL_ENOMEM. */
int sl_geng_new(const sl_model *host, int max_batch, int max_seq_len, int max_prefill_tokens,
                int graphs, sl_geng **out, char *err, size_t errlen);
void sl_geng_free(sl_geng *g);
/* Host fp32 parameters in the sl_model params_mem layout (n == n_params). */
int sl_geng_load_host(sl_geng *g, const float *params, size_t n);
/* Device weights in the sl_gpum_weights layout (bytes must match):
 * copy != 0 copies them into the core's buffer (device to device), else
 * the core reads dptr in place until the next load / set. */
int sl_geng_set_weights_device(sl_geng *g, const void *dptr, size_t bytes, int copy);
/* The weights the core reads, and the buffer size in bytes. */
const void *sl_geng_weights(const sl_geng *g, size_t *bytes);

/* Free slot's KV blocks (its length becomes 0). */
void sl_geng_slot_reset(sl_geng *g, int slot);
/* Positions in slot's cache. */
int sl_geng_slot_len(const sl_geng *g, int slot);
/* Empty slot dst gets the first n positions of slot src (n <= its length):
 * full blocks shared, the partial one copied. */
int sl_geng_slot_share(sl_geng *g, int dst, int src, int n);

/* Prefill n_seq empty slots with their prompts (tokens packed, cu (n_seq +
 * 1) offsets, each prompt 1 .. max_seq_len - 1 tokens, the sum <=
 * max_prefill_tokens), then sample n_out tokens: output i from the
 * last-token logits of sequence out_seq[i] with samp[i] (n_out <=
 * max_batch). Tokens must be in the vocabulary (SL_EINVAL otherwise). */
int sl_geng_prefill(sl_geng *g, int n_seq, const int *slots, const int32_t *tokens,
                    const int32_t *cu, int n_out, const int *out_seq, const sl_geng_samp *samp,
                    int32_t *out_tok, float *out_lp);
/* One decode step: for each i < n, token tok[i] is appended to slot
 * slots[i] (distinct slots, each shorter than max_seq_len) and the next
 * token sampled with samp[i]. */
int sl_geng_decode(sl_geng *g, int n, const int *slots, const int32_t *tok,
                   const sl_geng_samp *samp, int32_t *out_tok, float *out_lp);
void sl_geng_stats_get(const sl_geng *g, sl_geng_stats *st);
/* Variants for measurement: graphs 0/1, chunked_sampler 1 = the reference
 * sampling kernel (contiguous chunks per thread; also SL_GENG_SAMPLER=
 * chunked in the environment at creation), profile 1 = device time per
 * kind of op summed over eager steps (events between ops; graphs off),
 * attn_warps 4 (default: measured faster on the H200) or 8 warps per
 * decode-attention block (also SL_GENG_ATTN_WARPS=8 at creation). Drops
 * the captured graphs. */
void sl_geng_tune(sl_geng *g, int graphs, int chunked_sampler, int profile, int attn_warps);
/* ms[0..SL_GENG_PROF_N): gemm (layers), attention, qkv post + cache
 * write, other (norms, swiglu, embedding), LM head gemm, sampling;
 * returned and reset. Returns 1 when profiling is on. */
#define SL_GENG_PROF_N 6
int sl_geng_profile(sl_geng *g, double *ms, int n);

/* Test hook: sample n outputs from host logits rows (R x V fp32): output i
 * from row row_of[i] with samp[i]. */
int sl_geng_test_sample(const float *logits, int R, int V, int n, const int *row_of,
                        const sl_geng_samp *samp, int32_t *out_tok, float *out_lp);

#ifdef __cplusplus
}
#endif
#else /* !SL_HAVE_CUDA */
#include <stdio.h>
static inline int sl_geng_new(const sl_model *host, int max_batch, int max_seq_len,
                              int max_prefill_tokens, int graphs, sl_geng **out, char *err,
                              size_t errlen)
{
    (void)host, (void)max_batch, (void)max_seq_len, (void)max_prefill_tokens, (void)graphs;
    *out = 0;
    if (err && errlen) snprintf(err, errlen, "built without CUDA");
    return SL_EUNSUPPORTED;
}
static inline void sl_geng_free(sl_geng *g) { (void)g; }
static inline int sl_geng_use_device(int n)
{
    (void)n;
    return SL_EUNSUPPORTED;
}
static inline int sl_geng_load_host(sl_geng *g, const float *p, size_t n)
{
    (void)g, (void)p, (void)n;
    return SL_EUNSUPPORTED;
}
static inline int sl_geng_set_weights_device(sl_geng *g, const void *d, size_t b, int c)
{
    (void)g, (void)d, (void)b, (void)c;
    return SL_EUNSUPPORTED;
}
static inline const void *sl_geng_weights(const sl_geng *g, size_t *bytes)
{
    (void)g;
    if (bytes) *bytes = 0;
    return 0;
}
static inline void sl_geng_slot_reset(sl_geng *g, int s) { (void)g, (void)s; }
static inline int sl_geng_slot_len(const sl_geng *g, int s) { return (void)g, (void)s, 0; }
static inline int sl_geng_slot_share(sl_geng *g, int d, int s, int n)
{
    (void)g, (void)d, (void)s, (void)n;
    return SL_EUNSUPPORTED;
}
static inline int sl_geng_prefill(sl_geng *g, int n_seq, const int *slots, const int32_t *tokens,
                                  const int32_t *cu, int n_out, const int *out_seq,
                                  const sl_geng_samp *samp, int32_t *out_tok, float *out_lp)
{
    (void)g, (void)n_seq, (void)slots, (void)tokens, (void)cu, (void)n_out, (void)out_seq;
    (void)samp, (void)out_tok, (void)out_lp;
    return SL_EUNSUPPORTED;
}
static inline int sl_geng_decode(sl_geng *g, int n, const int *slots, const int32_t *tok,
                                 const sl_geng_samp *samp, int32_t *out_tok, float *out_lp)
{
    (void)g, (void)n, (void)slots, (void)tok, (void)samp, (void)out_tok, (void)out_lp;
    return SL_EUNSUPPORTED;
}
#define SL_GENG_PROF_N 6
static inline void sl_geng_tune(sl_geng *g, int graphs, int chunked, int profile, int warps)
{
    (void)g, (void)graphs, (void)chunked, (void)profile, (void)warps;
}
static inline int sl_geng_profile(sl_geng *g, double *ms, int n)
{
    (void)g, (void)ms, (void)n;
    return 0;
}
static inline void sl_geng_stats_get(const sl_geng *g, sl_geng_stats *st)
{
    (void)g;
    if (st) *st = (sl_geng_stats){0};
}
static inline int sl_geng_test_sample(const float *logits, int R, int V, int n, const int *row_of,
                                      const sl_geng_samp *samp, int32_t *out_tok, float *out_lp)
{
    (void)logits, (void)R, (void)V, (void)n, (void)row_of, (void)samp, (void)out_tok, (void)out_lp;
    return SL_EUNSUPPORTED;
}
#endif

#endif /* SL_GPU_ENGINE_H */
