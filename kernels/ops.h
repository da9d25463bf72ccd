/*
 * ops.h — the backend ops table: every numerical operation the transformer
 * (model.c) performs, as a struct of function pointers. The CPU backend
 * (ops_cpu.c, fp32, OpenBLAS + OpenMP) is the reference; a CUDA backend
 * implements the same table later and is tested op by op against it.
 *
 * Conventions, for every op:
 *  - Pointers named like tensors point into backend memory (from ->alloc);
 *    host pointers are only the ones documented as such (int arrays of
 *    positions and sequence offsets are host arrays for the CPU backend and
 *    device arrays for a device backend: they come from ->alloc too).
 *  - Row-major. T tokens, C channels. A Linear weight is (out, in) as in
 *    PyTorch: y = x W^T is matmul(y, x, W, T, out, in, 0, 1, 0).
 *  - Backward ops ACCUMULATE into parameter gradients (dw, db += ...).
 *    Input gradients: accumulate (+=) where the comment says "+=",
 *    overwrite otherwise.
 *  - Ops never allocate except where stated, never fail on valid shapes and
 *    check nothing: the model validates shapes once. They are not
 *    thread-safe against each other on the same buffers; internally the CPU
 *    ops use OpenMP threads.
 *
 * It is not a tensor library: no shapes, no dtypes, no autograd; the model
 * sequences the calls and owns every buffer.
 */
#ifndef SL_OPS_H
#define SL_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Chunk sizes of the fused LM head: the vocabulary is processed in chunks
 * of SL_LMHEAD_CHUNK_V columns for at most SL_LMHEAD_CHUNK_T tokens at a
 * time, so the only logits buffer is `scratch` of SL_LMHEAD_SCRATCH floats
 * (never T x V, whatever the vocabulary). */
#define SL_LMHEAD_CHUNK_T 128
#define SL_LMHEAD_CHUNK_V 8192
#define SL_LMHEAD_SCRATCH ((size_t)SL_LMHEAD_CHUNK_T * SL_LMHEAD_CHUNK_V)

typedef struct sl_ops {
    const char *name; /* "cpu", "cuda" */

    /* ------------------------------------------------------------ memory */
    /* Backend memory, zero-filled, 64-byte aligned; NULL when out of memory
     * (or bytes == 0). free(NULL) is a no-op. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    void (*copy_in)(void *dst, const void *host_src, size_t bytes);  /* host -> backend */
    void (*copy_out)(void *host_dst, const void *src, size_t bytes); /* backend -> host */
    void (*copy)(void *dst, const void *src, size_t bytes);          /* backend -> backend */
    void (*zero)(void *p, size_t bytes);

    /* ------------------------------------------------------------ matmul */
    /* C (M,N) = alpha * op(A) op(B) + (accumulate ? C : 0), where op(A) is
     * (M,K): A is (M,K), or (K,M) when transA; op(B) is (K,N): B is (K,N),
     * or (N,K) when transB. */
    void (*matmul)(float *C, const float *A, const float *B, int M, int N, int K, int transA,
                   int transB, float alpha, int accumulate);

    /* ------------------------------------------------------ elementwise */
    /* y[i] += x[i], i < n. */
    void (*add_inplace)(float *y, const float *x, size_t n);
    /* out[t,c] += b[c] for t < T. */
    void (*bias_add)(float *out, const float *b, int T, int C);
    /* db[c] += sum_t dout[t,c]. */
    void (*bias_bwd)(float *db, const float *dout, int T, int C);

    /* --------------------------------------------------------- embedding */
    /* out[t,:] = wte[tokens[t],:]; tokens in [0,V) (checked by the model). */
    void (*embedding_fwd)(float *out, const float *wte, const int32_t *tokens, int T, int C);
    /* dwte[tokens[t],:] += dout[t,:]. */
    void (*embedding_bwd)(float *dwte, const float *dout, const int32_t *tokens, int T, int C);

    /* ----------------------------------------------------------- rmsnorm */
    /* HF LlamaRMSNorm over rows of C: rstd[t] = 1/sqrt(mean(x^2) + eps),
     * out = w * x * rstd. rstd (T) is kept for backward. Used for the layer
     * norms (rows = tokens) and Qwen3's q/k norms (rows = token x head,
     * C = head_dim). out may alias inp. */
    void (*rmsnorm_fwd)(float *out, float *rstd, const float *inp, const float *w, int T, int C,
                        float eps);
    /* dinp += d/dinp, dw += d/dw, given dout, the forward input and rstd.
     * dinp must not alias dout. */
    void (*rmsnorm_bwd)(float *dinp, float *dw, const float *dout, const float *inp,
                        const float *w, const float *rstd, int T, int C);

    /* -------------------------------------------------------------- rope */
    /* Rotary embedding in place on x (T, n_head, head_dim), HF's
     * rotate_half layout (pairs i and i + head_dim/2). cos/sin tables are
     * (max_pos, head_dim/2) (see sl_rope_tables in model.h); pos (T) the
     * position of each token, < max_pos. */
    void (*rope_fwd)(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int T,
                     int n_head, int head_dim);
    /* The transposed rotation, in place on the gradient dx. */
    void (*rope_bwd)(float *dx, const int32_t *pos, const float *cos_t, const float *sin_t, int T,
                     int n_head, int head_dim);

    /* --------------------------------------------------------- attention */
    /* Causal grouped-query attention over packed sequences: sequence s is
     * tokens [cu[s], cu[s+1]), n_seq sequences, T = cu[n_seq]. q (T, n_head,
     * hd), k and v (T, n_kv, hd); query head h uses kv head h / (n_head /
     * n_kv). out (T, n_head, hd); lse (T, n_head) the log-sum-exp of each
     * score row, kept for backward (scores are recomputed there, so no
     * T x T buffer survives). scale is usually 1/sqrt(hd). */
    void (*attention_fwd)(float *out, float *lse, const float *q, const float *k, const float *v,
                          const int32_t *cu, int n_seq, int n_head, int n_kv, int hd,
                          float scale);
    /* dq, dk, dv (overwritten) from dout and the forward tensors. */
    void (*attention_bwd)(float *dq, float *dk, float *dv, const float *dout, const float *q,
                          const float *k, const float *v, const float *out, const float *lse,
                          const int32_t *cu, int n_seq, int n_head, int n_kv, int hd,
                          float scale);
    /* Attention of new tokens against a KV cache (inference; no lse).
     * Sequence s has query tokens [cuq[s], cuq[s+1]) of q (Tq, n_head, hd)
     * and keys/values in cache slot slot[s]: kc/vc are (n_slots, max_len,
     * n_kv, hd) for one layer, the first kv_len[s] positions valid, the
     * queries being the last (cuq[s+1]-cuq[s]) of those positions. */
    void (*attention_cached_fwd)(float *out, const float *q, const float *kc, const float *vc,
                                 const int32_t *slot, const int32_t *cuq, const int32_t *kv_len,
                                 int n_seq, int max_len, int n_head, int n_kv, int hd,
                                 float scale);

    /* ------------------------------------------------------------ swiglu */
    /* out = silu(gate) * up, n elements. */
    void (*swiglu_fwd)(float *out, const float *gate, const float *up, size_t n);
    /* dgate, dup (overwritten) from dout. */
    void (*swiglu_bwd)(float *dgate, float *dup, const float *dout, const float *gate,
                       const float *up, size_t n);

    /* ------------------------------------------------- LM head, fused CE */
    /* For each token t: logits = h[t,:] W^T (W (V,C)), never stored beyond
     * one chunk; lse[t] = logsumexp(logits); logprob[t] = logits[target[t]]
     * - lse[t] (0 when target[t] < 0: no target); entropy[t] = -sum p log p
     * (entropy may be NULL). scratch: SL_LMHEAD_SCRATCH floats. */
    void (*lmhead_logprob_fwd)(float *logprob, float *entropy, float *lse, const float *h,
                               const float *W, const int32_t *target, int T, int C, int V,
                               float *scratch);
    /* Given dlogprob[t] (d loss / d logprob[t]) and dentropy[t] (may be
     * NULL): dh (T,C) overwritten, dW (V,C) +=. d logprob/d logit_v =
     * [v = target] - p_v; d entropy/d logit_v = -p_v (log p_v + entropy). */
    void (*lmhead_logprob_bwd)(float *dh, float *dW, const float *dlogprob,
                               const float *dentropy, const float *h, const float *W,
                               const int32_t *target, const float *lse, const float *entropy,
                               int T, int C, int V, float *scratch);
} sl_ops;

/* The CPU backend (static table, never NULL). Its "backend memory" is host
 * memory, so copy_in/copy_out are memcpy. Threads: one OpenMP pool; on its
 * first matrix product it sets OpenBLAS to one thread (process-wide,
 * openblas_set_num_threads(1)) and splits products over OpenMP threads
 * itself, so that two spinning thread pools never share the cores. Use
 * OMP_NUM_THREADS to choose the thread count. */
const sl_ops *sl_ops_cpu(void);

#endif /* SL_OPS_H */
