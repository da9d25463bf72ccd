/*
 * engine.h — the generation engine of a rollout actor, as an in-process
 * library over one sl_model: batched sampling of n_samples responses per
 * prompt with a KV cache, continuous batching within one generate call,
 * per-token log-probs and the weight_version every sample was made with.
 *
 * How a generate call runs:
 *   - Requests are admitted in order, sample by sample, into the cache's
 *     slots (max_batch of them). The first admitted sample of a request
 *     prefills its prompt once (sl_model_prefill); every other sample of
 *     the group gets a copy of that prompt's KV entries (a slot-to-slot copy
 *     in the sl_kv_cache layout of model.h) and the same first-token logits,
 *     so a prompt is computed once per group, not once per sample. (A
 *     sample admitted after all its siblings left the batch prefills again.)
 *   - Every step decodes all active sequences together (sl_model_decode);
 *     a sequence that finishes leaves the batch at once and the next waiting
 *     sample takes its slot.
 *   - Tokens are chosen by sampler.h with the request's seed and the
 *     sample's sequence id (its sample id, or its index in the request when
 *     no ids are given) and the token's index in the response as the step:
 *     the same (seed, id) gives the same response whatever else shares the
 *     batch (up to the floating-point effect of batch shape on BLAS, which
 *     the tests show to be below token-flipping size on the models here).
 *   - The recorded log-prob of a token is log softmax(logits / T)[token]
 *     over the full vocabulary with T = temperature (T = 1 when greedy):
 *     the temperature-scaled policy, as slime records SGLang's log-probs and
 *     as trainer_core.h recomputes them (rollout_temperature). top-k/top-p
 *     truncation does not enter it.
 *   - A response ends with finish reason STOP when a stop token is sampled
 *     (the stop token is kept in the response, with its log-prob, as slime
 *     keeps the EOS so it is trained), LENGTH after max_new_tokens tokens
 *     (or when the cache's max_seq_len is reached), ABORT when the abort
 *     flag was raised.
 *
 * It is not an actor (no mailbox, no shared memory) and not a tokenizer or
 * detokenizer (stop strings are the caller's, through a per-sequence stop
 * callback of the scheduler below).
 *
 * Two ways to drive it: sl_engine_generate (one blocking call over a set of
 * requests), or the scheduler (sl_engine_submit / sl_engine_step /
 * sl_engine_take_done): sequences are submitted at any time, each with its
 * own sampling parameters, seed, optional session and stop callback; every
 * sl_engine_step admits waiting sequences into free KV slots (their prompt
 * prefilled, or its KV copied from a live sibling with the same share key,
 * or restored from the session cache) and runs one decode step over all
 * active ones; finished sequences are collected with sl_engine_take_done.
 * The caller does other work between steps (an actor answers its mailbox).
 * Do not call sl_engine_generate while the scheduler holds sequences
 * (SL_EINVAL).
 *
 * Sessions (scheduler, cfg.max_sessions > 0): when a sequence with a
 * session key finishes (stop or length), its prompt + response tokens and
 * their KV entries are copied into the session cache (max_sessions entries,
 * the least recently used one replaced). A later sequence of the same
 * session, made with the same weight_version, restores the KV of the
 * longest common prefix of its prompt and the cached tokens (at most
 * prompt_len - 1 tokens: the last prompt token is always run, for its
 * logits) and prefills only the rest; cached_tokens reports how many.
 *
 * Thread safety: an engine and its model are used by one thread at a time.
 * The abort flag may be raised from any thread or a signal handler.
 */
#ifndef SL_ENGINE_H
#define SL_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "model.h"

#define SL_ENGINE_MAX_STOP 32 /* stop token ids per call */

/* Engine shape, fixed at creation. */
typedef struct sl_engine_cfg {
    int max_batch;   /* sequences decoded together = KV slots (default 64); <= model max_tokens */
    int max_seq_len; /* prompt + response tokens per sequence (default min(1024, max_position_embeddings)) */
    int max_sessions; /* session KV entries kept by the scheduler (LRU; default 0 = none) */
} sl_engine_cfg;

/* Fill the defaults above for model m (m may be NULL: max_seq_len 1024). */
void sl_engine_cfg_default(sl_engine_cfg *cfg, const sl_model *m);

/* Sampling parameters of one generate call (slime's rollout_* keys). */
typedef struct sl_gen_params {
    float temperature;  /* rollout_temperature; 0 = greedy (default 1) */
    float top_p;        /* rollout_top_p in (0, 1] (default 1) */
    int top_k;          /* rollout_top_k, 0 = off (default 0) */
    int max_new_tokens; /* rollout_max_response_len, >= 1 (default 256) */
    int32_t stop_token_ids[SL_ENGINE_MAX_STOP];
    int n_stop_token_ids; /* 0 .. SL_ENGINE_MAX_STOP (default 0) */
} sl_gen_params;

/* temperature 1, top_p 1, top_k 0, max_new_tokens 256, no stop ids. */
void sl_gen_params_default(sl_gen_params *p);

/* One prompt and how many responses to sample for it. Borrowed for the
 * duration of the call. */
typedef struct sl_gen_request {
    const int32_t *prompt;      /* (prompt_len) token ids, each in [0, vocab) */
    int prompt_len;             /* 1 .. max_seq_len */
    int n_samples;              /* n_samples_per_prompt, >= 1 */
    uint64_t seed;              /* sampler seed of this request */
    const uint64_t *sample_ids; /* (n_samples) or NULL: sample j is named j */
} sl_gen_request;

typedef enum sl_finish_reason {
    SL_FINISH_STOP = 0,   /* a stop token was sampled (it ends the response) */
    SL_FINISH_LENGTH = 1, /* max_new_tokens (or max_seq_len) reached */
    SL_FINISH_ABORT = 2,  /* the abort flag was raised */
} sl_finish_reason;

/* "stop", "length", "abort" (slime's finish_reason names), "?" otherwise. */
const char *sl_finish_reason_name(sl_finish_reason r);

/* One generated response. tokens/logprobs point into the output's arena. */
typedef struct sl_gen_sample {
    uint64_t sample_id;      /* sample_ids[index], or index */
    int request;             /* index of its request in the call */
    int index;               /* index within its request (0 .. n_samples-1) */
    int n_tokens;            /* response length (may be 0 only when aborted) */
    const int32_t *tokens;   /* (n_tokens) response token ids, stop token included */
    const float *logprobs;   /* (n_tokens) log-probs, see the header comment */
    sl_finish_reason finish;
    uint64_t weight_version; /* the engine's version when the sample was made */
} sl_gen_sample;

/* The result of one generate call. Samples are in request order, then
 * index order (request 0's samples first), whatever order they finished in. */
typedef struct sl_gen_output {
    int n_samples;
    sl_gen_sample *samples;  /* (n_samples) owned */
    int32_t *token_mem;      /* arena behind samples[i].tokens, owned */
    float *logprob_mem;      /* arena behind samples[i].logprobs, owned */
    /* statistics of the call */
    int64_t gen_tokens;      /* response tokens produced */
    int64_t prefill_tokens;  /* prompt tokens run through the model */
    int64_t kv_copies;       /* prompts shared by copying KV instead of prefilling */
    int64_t decode_steps;    /* sl_model_decode calls */
    double seconds;          /* wall time of the call */
} sl_gen_output;

/* Release an output's memory; safe on a zeroed struct and twice. */
void sl_gen_output_fini(sl_gen_output *out);

typedef struct sl_engine sl_engine;

/* An engine generating with model m (borrowed: it must outlive the engine;
 * the engine changes only its parameters, through sl_engine_load_weights,
 * and its activations). cfg NULL = defaults. Allocates a KV cache of
 * max_batch x max_seq_len and a logits buffer of max_batch x vocab.
 * weight_version starts at 0. Errors (message in err): SL_EINVAL (NULL m,
 * max_batch < 1 or above the model's max_tokens, max_seq_len < 2 or above
 * max_position_embeddings), SL_ENOMEM. On error *out is NULL. */
int sl_engine_new(sl_model *m, const sl_engine_cfg *cfg, sl_engine **out, char *err,
                  size_t errlen);

/* A GPU engine (kernels/gpu_engine.h): the same scheduler and semantics
 * on one CUDA device. m is the host model (CPU backend): its config shapes
 * the engine and its parameters are uploaded as version 0 (bf16); m must
 * outlive the engine. cfg as sl_engine_new, except that max_batch is not
 * bounded by m's max_tokens and sessions are not kept (max_sessions is
 * ignored). max_prefill_tokens: prompt tokens per prefill pass (0 = 16384,
 * at least max_seq_len); graphs: capture the decode step as CUDA graphs.
 * Errors: SL_EUNSUPPORTED (no CUDA in this build, no device, unsupported
 * shape), SL_EINVAL, SL_ENOMEM (message in err). */
int sl_engine_new_gpu(sl_model *m, const sl_engine_cfg *cfg, int max_prefill_tokens, int graphs,
                      sl_engine **out, char *err, size_t errlen);

/* 1 when e was made by sl_engine_new_gpu. */
int sl_engine_is_gpu(const sl_engine *e);
/* The GPU core of a GPU engine (kernels/gpu_engine.h; its counters), or NULL. */
const struct sl_geng *sl_engine_gpu(const sl_engine *e);

/* GPU engine: weights already on the device in the layout of
 * sl_gpum_weights() (kernels/cuda/gpu_layout.cuh), bytes its size. copy
 * != 0: copied device to device into the engine's buffer; 0: read in
 * place until the next load (the pointer must stay valid). Sets the
 * weight_version. SL_EUNSUPPORTED on a CPU engine, SL_EINVAL on a size
 * mismatch. */
int sl_engine_set_weights_device(sl_engine *e, const void *dptr, size_t bytes, uint64_t version,
                                 int copy);

/* Free the engine (not the model); NULL is ignored. */
void sl_engine_free(sl_engine *e);

/* The model the engine generates with (borrowed). */
sl_model *sl_engine_model(const sl_engine *e);

/* Copy n floats of parameters (host memory, the model's flat layout:
 * params_mem order of model.h, n == model->n_params) into the model, and
 * set the weight_version to `version`. Errors: SL_EINVAL (NULL, n
 * mismatch, a non-finite value — then nothing is changed). */
int sl_engine_load_weights(sl_engine *e, const float *params, size_t n, uint64_t version);

/* Set the weight_version without copying (the model's parameters were
 * changed in place by their owner, e.g. a trainer sharing the model in one
 * process). */
void sl_engine_set_version(sl_engine *e, uint64_t version);
uint64_t sl_engine_version(const sl_engine *e);

/* A flag the engine polls between decode steps (NULL = none): when it
 * reads non-zero, the call stops and every unfinished sample ends with
 * SL_FINISH_ABORT (waiting ones with 0 tokens). Borrowed. */
void sl_engine_set_abort_flag(sl_engine *e, const volatile sig_atomic_t *flag);

/* Generate for n_req requests with params p. On success *out (zeroed by
 * the call first; free with sl_gen_output_fini) holds sum(n_samples)
 * samples. Every request is checked before anything runs. Errors (message
 * logged): SL_EINVAL (NULL, bad params, empty or out-of-vocabulary prompt,
 * n_samples < 1, a prompt longer than max_seq_len - 1 or the model's
 * max_tokens), SL_ENOMEM, or a model error; on error *out holds nothing.
 * Deterministic for the same requests, params, weights and engine shape. */
int sl_engine_generate(sl_engine *e, const sl_gen_request *reqs, int n_req,
                       const sl_gen_params *p, sl_gen_output *out);

/* ============================================================ scheduler */

#define SL_ENGINE_SESSION_MAX 64 /* characters of a session key */

/* Stop callback of a sequence: called after each token is appended, with
 * the response so far (ids[0..n)); return non-zero to end the sequence with
 * SL_FINISH_STOP (the last token stays in the response). */
typedef int (*sl_engine_stop_fn)(void *user, const int32_t *ids, int n);

/* One sequence to generate. Everything is copied by sl_engine_submit. */
typedef struct sl_engine_seq_req {
    const int32_t *prompt; /* (prompt_len) ids in [0, vocab) */
    int prompt_len;        /* 1 .. min(max_seq_len - 1, model max_tokens) */
    sl_gen_params params;  /* max_new_tokens is clamped to the room left in a sequence */
    uint64_t seed;         /* sampler stream (seed, seq_id, token index) */
    uint64_t seq_id;
    uint64_t share_key;    /* != 0: sequences with the same key and the same prompt
                              share its prefill by KV copy (a group) */
    const char *session;   /* NULL or 1..SL_ENGINE_SESSION_MAX chars */
    sl_engine_stop_fn stop_fn; /* NULL = none */
    void *user;            /* handed back in sl_engine_done and to stop_fn */
} sl_engine_seq_req;

/* A finished sequence; tokens/logprobs are the caller's after
 * sl_engine_take_done (free with sl_engine_done_fini). */
typedef struct sl_engine_done {
    uint64_t handle;
    void *user;
    int32_t *tokens;   /* (n_tokens) response ids */
    float *logprobs;   /* (n_tokens) */
    int n_tokens;
    sl_finish_reason finish;
    uint64_t weight_version; /* the engine's version when the sequence was admitted */
    int prompt_len;
    int cached_tokens; /* prompt tokens restored from the session cache */
} sl_engine_done;

void sl_engine_done_fini(sl_engine_done *d);

/* Scheduler counters (cumulative). */
typedef struct sl_engine_sched_stats {
    int64_t submitted, finished, aborted;
    int64_t gen_tokens, prefill_tokens, cached_tokens, kv_copies, decode_steps;
    int64_t session_hits, session_saves;
    int n_waiting, n_active, n_done; /* now */
} sl_engine_sched_stats;

/* Queue a sequence (FIFO); *handle (may be NULL) gets its id (never 0).
 * Errors: SL_EINVAL (bad params, prompt, session key; message logged),
 * SL_ENOMEM. */
int sl_engine_submit(sl_engine *e, const sl_engine_seq_req *r, uint64_t *handle);

/* End sequence HANDLE now with SL_FINISH_ABORT (its tokens so far; a
 * waiting one has none); it goes to the done list. SL_ENOENT when no such
 * sequence is waiting or active. */
int sl_engine_cancel(sl_engine *e, uint64_t handle);

/* One scheduler step: when ADMIT, waiting sequences take the free slots
 * (prefilling at most about max_prefill_tokens prompt tokens in this step,
 * but always one sequence when a slot is free; <= 0 = no bound); then one
 * decode step over every active sequence. Returns SL_OK (also when there
 * was nothing to do) or a model/sampling error (then the active
 * sequences are ended as ABORT). */
int sl_engine_step(sl_engine *e, bool admit, int max_prefill_tokens);

/* Take the oldest finished sequence: 1 with *out filled, 0 when none. */
int sl_engine_take_done(sl_engine *e, sl_engine_done *out);

/* Counters and queue sizes. */
void sl_engine_sched_stats_get(const sl_engine *e, sl_engine_sched_stats *st);

/* Forget every session entry (e.g. after new weights). */
void sl_engine_sessions_clear(sl_engine *e);

#endif /* SL_ENGINE_H */
