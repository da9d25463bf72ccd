/*
 * trainer_core.h — one training step of the trainer actor, as an in-process
 * library over one sl_model: old and reference log-probs when needed,
 * advantages from rewards when the batch has none, num_steps_per_rollout
 * optimizer steps over global_batch_size samples each, in micro-batches
 * packed into single sl_model_forward calls, the policy or SFT loss of
 * rl_algo.h, gradient clipping, AdamW and the LR schedule of optim.h; and
 * save/load of the trainer state (Hugging Face folder + optimizer state +
 * counters).
 *
 * Semantics (slime / Megatron):
 *   - A batch of n samples is split, in order, into n / global_batch_size
 *     global batches; each is one optimizer step (num_steps_per_rollout of
 *     them; n must be a multiple of global_batch_size). Gradients of its
 *     micro-batches (micro_batch_size samples, packed into forwards of at
 *     most the model's max_tokens tokens) accumulate; the loss of each
 *     micro-batch is reduced with the global denominator (samples of the
 *     global batch, or its loss tokens with calculate_per_token_loss), so
 *     the accumulated gradient equals the gradient of one big batch.
 *   - old log-probs: computed for the whole batch before the first step
 *     when there is more than one step; with one step old = current,
 *     detached (ratio 1).
 *   - reference log-probs: from a frozen copy of the policy's weights at
 *     sl_trainer_new time, only when use_kl_loss or kl_coef > 0.
 *   - All log-probs (current, old, ref) are of the temperature-scaled
 *     policy, log softmax(logits / rollout_temperature), as slime's trainer
 *     computes them and as engine.h records them at rollout. (Implemented
 *     by scaling the final norm's weight by 1/T around each forward and
 *     rescaling its gradient, which is exact up to float rounding.)
 *   - Token alignment: per-token arrays of a batch are indexed by token:
 *     rollout_logprobs[t] is the log-prob of token t given the tokens before
 *     it, loss_mask[t] says whether token t is trained. The first token of a
 *     sample (t at its offset) must not be trained.
 *   - Advantages: when the batch has none they are computed from the
 *     rewards: sl_rl_group_rewards over consecutive groups of group_size,
 *     then sl_rl_advantages over the whole batch (KL in the reward with
 *     kl_coef, against the reference log-probs).
 *   - A step whose gradient norm is not finite is skipped (counted).
 *
 * The GPU backend (sl_trainer_new_gpu): the same step, losses and
 * schedule; only the model underneath changes — forwards, backwards,
 * gradient clipping and AdamW run on an sl_gpum (gpu_model.h, bf16 mixed
 * precision), the temperature is the LM head's logit scale, the reference
 * model is a bf16 snapshot inside the GPU model, and the host model keeps
 * a copy of the parameters refreshed on demand (sl_trainer_params, save).
 * Checkpoints are the same files (fp32 weights, AdamW moments) either way.
 *
 * It is not an actor: no mailbox, no shared memory, no ledger; the trainer
 * actor calls these functions and publishes the weights.
 *
 * Thread safety: a trainer and its model are used by one thread at a time.
 */
#ifndef SL_TRAINER_CORE_H
#define SL_TRAINER_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "gpu_model.h"
#include "model.h"
#include "nccl_comm.h"
#include "optim.h"
#include "rl_algo.h"
#include "sample_batch.h"

/* Everything a step needs, under slime's argument names. */
typedef struct sl_trainer_cfg {
    /* loss and algorithm */
    sl_loss_type loss_type;                /* policy_loss | sft_loss */
    sl_adv_estimator advantage_estimator;  /* grpo (default) ... */
    float eps_clip;                        /* 0.2 */
    float eps_clip_high;                   /* < 0 = eps_clip */
    float eps_clip_c;                      /* dual clip, <= 0 = off */
    float entropy_coef;                    /* 0 */
    bool use_kl_loss;                      /* false */
    float kl_loss_coef;                    /* 0 */
    sl_kl_type kl_loss_type;               /* k1 */
    float kl_coef;                         /* KL in the reward, 0 = off */
    bool calculate_per_token_loss;         /* false: per-sample mean */
    bool use_tis;                          /* false */
    float tis_clip;                        /* 2 */
    float tis_clip_low;                    /* 0 */
    bool rewards_normalization;            /* true (group mean subtraction) */
    bool disable_grpo_std_normalization;   /* false (true = Dr. GRPO) */
    bool normalize_advantages;             /* false (true required for reinforce_plus_plus) */
    float gamma;                           /* 1 */
    float rollout_temperature;             /* 1; > 0 */
    /* batching */
    int global_batch_size;                 /* samples per optimizer step (default 32) */
    int micro_batch_size;                  /* samples per micro-batch (default 8) */
    int num_steps_per_rollout;             /* 0 = n / global_batch_size; else must equal it */
    /* optimizer */
    double lr;                             /* 1e-6 */
    double min_lr;                         /* 0 */
    double lr_warmup_init;                 /* 0 */
    int64_t lr_warmup_steps;               /* 0 */
    int64_t lr_decay_steps;                /* 0 = constant after warm-up */
    sl_lr_decay_style lr_decay_style;      /* constant */
    double weight_decay;                   /* 0.01 */
    double adam_beta1, adam_beta2;         /* 0.9, 0.999 */
    double adam_eps;                       /* 1e-8 */
    double clip_grad;                      /* 1.0; <= 0 = off */
} sl_trainer_cfg;

/* Fill the defaults written above. */
void sl_trainer_cfg_default(sl_trainer_cfg *c);

/* Check a config (ranges, combinations). SL_EINVAL with the reason in err. */
int sl_trainer_cfg_check(const sl_trainer_cfg *c, char *err, size_t errlen);

/* A batch as the trainer reads it; every array is borrowed for the call
 * and indexed as in sample_batch.h (per-token arrays by offsets). */
typedef struct sl_train_batch {
    uint32_t n_samples;
    const uint64_t *offsets;         /* (n+1) token offsets; [0] = 0 */
    const int32_t *tokens;           /* (T) prompt + response ids */
    const uint8_t *loss_mask;        /* (T) 1 = trained (response tokens only) */
    const float *rollout_logprobs;   /* (T) or NULL (needed by use_tis; metric otherwise) */
    const float *rewards;            /* (n) or NULL (needed when advantages is NULL and policy_loss) */
    const float *advantages;         /* (T) or NULL: computed from rewards */
    uint32_t group_size;             /* samples per prompt, consecutive (0 = the whole batch) */
} sl_train_batch;

/* Views of a checked sample batch (sample_batch.h) as a train batch (no
 * copies; valid while the view is). */
void sl_train_batch_from_view(const sl_batch_view *v, uint32_t group_size, sl_train_batch *b);

/* What one sl_trainer_step did. Loss-like values are means over its
 * optimizer steps, each reduced as the loss is. */
typedef struct sl_train_metrics {
    double loss, pg_loss;
    double entropy;          /* reduced entropy of the current policy */
    double kl;               /* reduced KL to the reference (kl_loss_type), 0 without reference */
    double ppo_kl;           /* reduced old - new log-ratio */
    double clipfrac;         /* pg_clipfrac */
    double tis;              /* reduced raw TIS ratio (use_tis) */
    double grad_norm;        /* mean over steps, before clipping */
    double lr;               /* learning rate of the last step */
    double train_rollout_logprob_abs_diff; /* mean |trainer - rollout| log-prob over trained
                                            * tokens, first forward (0 without rollout log-probs) */
    double reward_mean;      /* mean of the batch's rewards (0 without) */
    double adv_mean;         /* mean advantage over trained tokens */
    int64_t tokens;          /* trained (masked) tokens */
    int64_t samples;         /* samples trained */
    int steps;               /* optimizer steps taken */
    int skipped_steps;       /* steps skipped for a non-finite gradient */
    int64_t optimizer_step;  /* total optimizer steps so far */
    double seconds;          /* wall time of the call */
} sl_train_metrics;

typedef struct sl_trainer sl_trainer;

/* A trainer for model m (borrowed; must outlive the trainer) with config
 * *cfg (copied, checked). Creates the AdamW state (no weight decay on norms
 * and biases), and the frozen reference model (a copy of m's current
 * weights) when use_kl_loss or kl_coef > 0. Errors (err): SL_EINVAL,
 * SL_ENOMEM. On error *out is NULL. */
int sl_trainer_new(sl_model *m, const sl_trainer_cfg *cfg, sl_trainer **out, char *err,
                   size_t errlen);

/* The same on the GPU: g (borrowed, made by sl_gpum_new from m, must
 * outlive the trainer) runs every forward, backward and optimizer step; m
 * (borrowed) is its host twin: same config, its params_mem receives the
 * parameters when they are asked for; samples may be as long as g's
 * max_tokens. Errors as sl_trainer_new; SL_EUNSUPPORTED without CUDA. */
int sl_trainer_new_gpu(sl_model *m, sl_gpum *g, const sl_trainer_cfg *cfg, sl_trainer **out,
                       char *err, size_t errlen);

/* The GPU model of a GPU trainer (borrowed), or NULL. */
sl_gpum *sl_trainer_gpu_model(const sl_trainer *t);

/* Data parallelism (GPU trainers, kernels/nccl_comm.h): this trainer is
 * rank sl_nccl_rank(c) of sl_nccl_size(c) (c borrowed; outlives the
 * trainer). Every rank sees the whole batch and makes the same calls in
 * the same order; of each global batch a rank trains a contiguous share of
 * the samples (old and reference log-probs only for those, except with
 * KL in the reward), its loss divided by the global batch's denominator,
 * so the gradients summed over ranks (in buckets of bucket_bytes, during
 * the last backward) are one GPU's; clipping and the optimizer step see
 * the same sums on every rank; with zero1 each rank keeps the AdamW
 * moments of its shard only. Metrics are summed over ranks (one small
 * all-reduce per call of sl_trainer_step, after the last read of the
 * batch: when it returns on any rank, no rank reads the batch any more).
 * Collective calls (every rank, same point): sl_trainer_step,
 * sl_trainer_params and sl_trainer_collect; sl_trainer_save does no
 * collective work after sl_trainer_collect, so one rank may save then.
 * Errors: SL_EINVAL (not a GPU trainer, already on), SL_ENOMEM,
 * SL_EUNSUPPORTED without CUDA. */
int sl_trainer_enable_dp(sl_trainer *t, sl_nccl *c, size_t bucket_bytes, bool zero1, char *err,
                         size_t errlen);
/* Bring the host copies of the parameters and the optimizer moments up to
 * date (before a save). Collective under data parallelism. */
int sl_trainer_collect(sl_trainer *t);

/* Free the trainer (not the model); NULL is ignored. */
void sl_trainer_free(sl_trainer *t);

/* Replace the config (e.g. switching from the SFT warm-up to RL); the
 * optimizer state and counters are kept, the reference model is created
 * if the new config needs one and there is none (from the current
 * weights). Errors: SL_EINVAL (err), SL_ENOMEM. */
int sl_trainer_set_cfg(sl_trainer *t, const sl_trainer_cfg *cfg, char *err, size_t errlen);

/* Start the optimizer afresh: AdamW moments zeroed and its step count set
 * to 0 (so the LR schedule and warm-up start over), as a new phase does —
 * slime's RL run after an SFT run loads the weights only. The other
 * counters (weight version, samples) are kept. */
void sl_trainer_reset_optimizer(sl_trainer *t);

/* One training step over batch *b (see the header comment); metrics into
 * *m (may be NULL). Increments the weight version by one when at least one
 * optimizer step was applied. Errors (message logged; the model is
 * unchanged unless a step already ran): SL_EINVAL (bad batch: offsets,
 * token ids, a trained first token, a sample longer than the model's
 * max_tokens, n not a multiple of global_batch_size or not matching
 * num_steps_per_rollout, missing rewards/log-probs the config needs),
 * SL_ENOMEM, or a model error. */
int sl_trainer_step(sl_trainer *t, const sl_train_batch *b, sl_train_metrics *m);

/* Log-probs (and entropies) of batch *b's tokens under the current policy
 * at rollout_temperature, no gradient: out_logp[t] for every token t (0 at
 * each sample's first token); out_entropy (T, may be NULL) the entropy of
 * the distribution token t was drawn from. Errors as sl_trainer_step. */
int sl_trainer_logprobs(sl_trainer *t, const sl_train_batch *b, float *out_logp,
                        float *out_entropy);

/* The flat parameters to publish (model params_mem, host memory; n_params
 * floats; on the GPU copied down from the device first, when they changed)
 * and the weight version they are. */
const float *sl_trainer_params(const sl_trainer *t, size_t *n);
uint64_t sl_trainer_weight_version(const sl_trainer *t);

/* Counters. */
typedef struct sl_trainer_counters {
    int64_t rollout_step;     /* sl_trainer_step calls that trained */
    int64_t optimizer_step;   /* AdamW steps */
    uint64_t weight_version;
    int64_t samples_trained;
    int64_t tokens_trained;
} sl_trainer_counters;
void sl_trainer_get_counters(const sl_trainer *t, sl_trainer_counters *c);

/* Save the trainer state into folder dir: config.json + model.safetensors
 * (fp32, a Hugging Face folder), optimizer.bin (AdamW m, v and step, with a
 * CRC-32) and trainer_state.json (counters, and `extra_json` — a JSON
 * object text the caller wants back, e.g. data cursor and RNG; NULL =
 * none). Written into dir + ".tmp", synced, then renamed to dir (an
 * existing dir is replaced), so a crash leaves either the old or the new
 * state. Errors (err): SL_EINVAL (bad extra_json), SL_EIO, SL_ENOMEM. */
int sl_trainer_save(const sl_trainer *t, const char *dir, const char *extra_json, char *err,
                    size_t errlen);

/* Load a state written by sl_trainer_save into this trainer: the weights
 * (the config must match the model's shape), the optimizer state and the
 * counters. *extra_json (may be NULL) gets a malloc'd copy of the saved
 * extra object text (caller frees) or NULL. The reference model is not
 * touched (it stays the one made at sl_trainer_new: create the trainer from
 * the run's initial weights, then load). Every file is checked (sizes,
 * CRC, JSON) before anything changes. Errors (err): SL_ENOENT, SL_EINVAL,
 * SL_ECHECKSUM, SL_EIO, SL_ENOMEM. */
int sl_trainer_load(sl_trainer *t, const char *dir, char **extra_json, char *err,
                    size_t errlen);

#endif /* SL_TRAINER_CORE_H */
