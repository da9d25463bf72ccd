/*
 * sampler.h — choosing the next token from one row of logits: temperature
 * (0 = greedy), top-k, top-p (nucleus), seeded and reproducible per
 * sequence. CPU reference; a CUDA twin is tested against it later.
 *
 * Semantics follow Hugging Face generate's warpers, applied in this order:
 *   1. temperature: logits / T (T = 0 means greedy argmax, lowest id wins a
 *      tie);
 *   2. top-k (k > 0): tokens whose scaled logit is below the k-th largest
 *      are removed; ties with the k-th value are kept (TopKLogitsWarper);
 *   3. top-p (0 < p < 1): over the remaining tokens' softmax, sorted by
 *      probability (descending, lower id first on ties), keep the smallest
 *      prefix whose cumulative probability reaches p — a token is kept iff
 *      the mass strictly before it is < p (TopPLogitsWarper's "cumulative
 *      ascending prob <= 1 - p is removed"); at least one token is kept.
 * The choice is by inverse CDF with one uniform number drawn from a
 * counter-based generator keyed by (seed, seq_id, step): the same triple
 * gives the same token whatever else is in the batch, on any thread.
 *
 * Two log-probs come back for the chosen token:
 *   logprob          log softmax(logits / T)[token] over the FULL vocabulary
 *                    (T = 1 when greedy). This is what RL records as the
 *                    rollout policy's log-prob (slime keeps SGLang's
 *                    temperature-scaled log-prob of the sampled token), and
 *                    what the trainer recomputes with the same temperature.
 *   logprob_sampled  the log-prob under the distribution actually sampled
 *                    from, after top-k/top-p truncation and renormalization
 *                    (0 when greedy, and when only one token survives).
 * Non-finite logits (NaN, +inf) are refused; -inf logits are tokens that
 * cannot be chosen.
 *
 * It is not a logits processor zoo: no repetition penalty, min-p, beam
 * search or grammar constraints.
 */
#ifndef SL_SAMPLER_H
#define SL_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_sampler_cfg {
    float temperature; /* 0 = greedy; default 1 */
    int top_k;         /* 0 (or >= vocab) = off */
    float top_p;       /* 1 = off; must be in (0, 1] */
    uint64_t seed;
} sl_sampler_cfg;

typedef struct sl_sample {
    int32_t token;
    float logprob;         /* under softmax(logits / T), full vocabulary */
    float logprob_sampled; /* under the truncated, renormalized distribution */
} sl_sample;

/* temperature 1, top_k 0, top_p 1, seed 0. */
void sl_sampler_cfg_default(sl_sampler_cfg *cfg);

/* Check a configuration: temperature finite and >= 0, top_k >= 0,
 * top_p in (0, 1]. SL_EINVAL otherwise. */
int sl_sampler_cfg_check(const sl_sampler_cfg *cfg);

/* Bytes of scratch sl_sample_logits needs for a vocabulary of `vocab`. */
size_t sl_sampler_scratch_bytes(int32_t vocab);

/* Sample one token from logits[0..vocab). `scratch` is caller memory of
 * sl_sampler_scratch_bytes(vocab) bytes, or NULL to let the call allocate
 * (and free) its own. seq_id and step select the random number (see
 * above). logits are not modified. Errors: SL_EINVAL (bad cfg, vocab < 1,
 * a NaN/+inf logit, or every logit -inf; *out untouched), SL_ENOMEM.
 * Thread-safe (no hidden state). */
int sl_sample_logits(const float *logits, int32_t vocab, const sl_sampler_cfg *cfg,
                     uint64_t seq_id, uint64_t step, void *scratch, sl_sample *out);

/* The uniform number in [0, 1) that sl_sample_logits uses for (seed,
 * seq_id, step): splitmix64 chained over the three keys, top 53 bits. */
double sl_sampler_uniform(uint64_t seed, uint64_t seq_id, uint64_t step);

/* log softmax(logits / T)[token] over the full row (T <= 0 means 1),
 * accumulated in double. Returns -INFINITY for a -inf logit. */
float sl_logprob_of(const float *logits, int32_t vocab, float temperature, int32_t token);

#endif /* SL_SAMPLER_H */
