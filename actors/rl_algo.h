/*
 * rl_algo.h — the RL algorithm math of slime, as pure C functions: group
 * reward normalization, advantage estimators (grpo, gspo, rloo,
 * reinforce_plus_plus, reinforce_plus_plus_baseline, Dr. GRPO), approximate
 * KL estimators (k1, k2, k3, low_var_kl), the PPO-family policy loss (clip,
 * clip-higher, dual clip, GSPO sequence ratio, KL loss, entropy bonus,
 * truncated importance sampling, per-sample or per-token reduction), the SFT
 * loss, and DAPO's dynamic-sampling filter.
 *
 * What it is not: no I/O, no allocation visible to the caller (scratch is
 * internal and bounded), no threads, no model. The trainer computes the
 * per-token log-probs and entropies with the model, calls sl_rl_loss() to
 * get the loss, its metrics and dL/dlogp (and dL/dentropy), and back-
 * propagates those through the model itself.
 *
 * Layout: a batch holds n samples; sample i owns the response tokens
 * [offsets[i], offsets[i+1]) of every per-token array (the concatenation
 * slime's torch.cat makes). loss_mask is 0/1 per token (any float weight is
 * accepted and used as a multiplier, as slime does). Inputs are fp32,
 * sums are accumulated in double.
 *
 * Names follow THUDM/slime (slime/utils/ppo_utils.py,
 * slime/backends/megatron_utils/loss.py, slime/ray/rollout.py,
 * slime/rollout/filter_hub/dynamic_sampling_filters.py).
 *
 * Thread safety: every function is reentrant; none keeps state.
 */
#ifndef SL_RL_ALGO_H
#define SL_RL_ALGO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

/* ------------------------------------------------------------ enums */

typedef enum sl_adv_estimator {
    SL_ADV_GRPO = 0,
    SL_ADV_GSPO = 1,                        /* grpo advantages, sequence-level ratio */
    SL_ADV_REINFORCE_PLUS_PLUS = 2,
    SL_ADV_REINFORCE_PLUS_PLUS_BASELINE = 3,
    SL_ADV_RLOO = 4,                        /* not in slime; leave-one-out baseline */
} sl_adv_estimator;

typedef enum sl_kl_type {
    SL_KL_K1 = 0,
    SL_KL_K2 = 1,
    SL_KL_K3 = 2,
    SL_KL_LOW_VAR_KL = 3, /* k3, clamped to [-10, 10] */
} sl_kl_type;

typedef enum sl_loss_type {
    SL_LOSS_POLICY = 0, /* slime "policy_loss" */
    SL_LOSS_SFT = 1,    /* slime "sft_loss" */
} sl_loss_type;

/* Parse slime's names ("grpo", "gspo", "reinforce_plus_plus",
 * "reinforce_plus_plus_baseline", "rloo"; "k1", "k2", "k3", "low_var_kl";
 * "policy_loss", "sft_loss"). Return 0, or SL_EINVAL for NULL or an
 * unknown name (*out untouched). */
int sl_adv_estimator_from_name(const char *name, sl_adv_estimator *out);
int sl_kl_type_from_name(const char *name, sl_kl_type *out);
int sl_loss_type_from_name(const char *name, sl_loss_type *out);
/* The canonical name, or "?" for an out-of-range value. Static string. */
const char *sl_adv_estimator_name(sl_adv_estimator e);
const char *sl_kl_type_name(sl_kl_type t);

/* ------------------------------------------------------------ KL */

/* slime compute_approx_kl for one token: log_ratio = logp - logp_ref;
 * k1 = log_ratio, k2 = log_ratio^2/2, k3 = exp(-log_ratio) - 1 + log_ratio;
 * low_var_kl = k3 clamped to [-10, 10]. */
double sl_rl_approx_kl(float logp, float logp_ref, sl_kl_type type);

/* d sl_rl_approx_kl / d logp (0 where low_var_kl's clamp is active). */
double sl_rl_approx_kl_grad(float logp, float logp_ref, sl_kl_type type);

/* ------------------------------------------------------------ rewards */

/* slime _post_process_rewards (slime/ray/rollout.py): consecutive groups of
 * group_size rewards. For grpo, gspo and reinforce_plus_plus_baseline (when
 * rewards_normalization): r - group mean; for grpo and gspo also divided by
 * (std + 1e-6) unless grpo_std_normalization is false (Dr. GRPO); std is
 * torch's unbiased (n-1) std, and a group of one gets std 0. For rloo:
 * r_i - mean of the other n-1 rewards (0 for a group of one). For
 * reinforce_plus_plus, or without rewards_normalization: a copy.
 * n_total must be a multiple of group_size (group_size 0 = one group of
 * n_total). out may alias rewards. Returns 0 or SL_EINVAL (NULL pointers,
 * bad sizes, non-finite rewards). */
int sl_rl_group_rewards(const float *rewards, size_t n_total, size_t group_size,
                        sl_adv_estimator est, bool rewards_normalization,
                        bool grpo_std_normalization, float *out);

/* Per-token KL penalty used in the reward (slime compute_advantages_and_
 * returns): kl[t] = approx_kl(logp[t], ref_logp[t], type), or all zeros when
 * kl_coef == 0 or logp/ref_logp is NULL. n_tok tokens. */
void sl_rl_token_kl(const float *logp, const float *ref_logp, size_t n_tok,
                    float kl_coef, sl_kl_type type, float *kl_out);

/* The configuration of sl_rl_advantages (slime argument names). */
typedef struct sl_rl_adv_config {
    sl_adv_estimator estimator;
    float kl_coef;             /* KL in the reward; 0 = off */
    sl_kl_type kl_type;        /* slime uses kl_loss_type for this KL too */
    float gamma;               /* reinforce_plus_plus discount (slime default 1) */
    bool normalize_advantages; /* masked whitening over the batch (required by
                                * slime for the reinforce_plus_plus family) */
} sl_rl_adv_config;

/* Token-level advantages and returns from per-sample rewards that already
 * went through sl_rl_group_rewards (slime compute_advantages_and_returns):
 *  grpo/gspo/rloo: adv[t] = reward of the sample, on every response token
 *    (masked tokens too, the loss masks them).
 *  reinforce_plus_plus: token reward -kl_coef*kl[t]*mask[t], plus the sample
 *    reward on its last masked token; returns are the discounted (gamma)
 *    suffix sums; adv = returns. A sample with no masked token: SL_EINVAL.
 *  reinforce_plus_plus_baseline: adv[t] = reward - kl_coef*kl[t].
 *  normalize_advantages: adv = (adv - mean) * rsqrt(var + 1e-8) with the
 *    masked mean and the masked unbiased (Bessel) variance over the batch
 *    (slime distributed_masked_whiten, one rank); all-zero mask: SL_EINVAL.
 * kl is the per-token KL from sl_rl_token_kl (NULL = zeros). returns_out
 * may be NULL. Arrays are caller-owned; offsets has n_samples+1 entries,
 * non-decreasing, offsets[0] == 0. Returns 0 or SL_EINVAL. */
int sl_rl_advantages(const sl_rl_adv_config *cfg, size_t n_samples,
                     const size_t *offsets, const float *loss_mask,
                     const float *rewards, const float *kl, float *adv_out,
                     float *returns_out);

/* ------------------------------------------------------------ DAPO filter */

/* DAPO dynamic sampling (slime check_reward_nonzero_std): for each of the
 * n_total/group_size consecutive groups, keep[g] = 1 when the unbiased std
 * (float64) of its rewards is > 1e-6, else 0 (a group of one is dropped:
 * torch's std of one element is NaN). *n_kept (may be NULL) gets the count.
 * Returns 0 or SL_EINVAL (NULL, group_size 0, n_total not a multiple). */
int sl_rl_dynamic_sampling_filter(const float *rewards, size_t n_total,
                                  size_t group_size, uint8_t *keep,
                                  size_t *n_kept);

/* ------------------------------------------------------------ losses */

/* The configuration of sl_rl_loss (slime argument names and defaults). */
typedef struct sl_rl_loss_config {
    sl_loss_type loss_type;
    sl_adv_estimator estimator; /* gspo: sequence-level ratio */
    float eps_clip;             /* 0.2 */
    float eps_clip_high;        /* < 0 = same as eps_clip (slime: None) */
    float eps_clip_c;           /* dual clip; <= 0 = off (slime: None); else must be > 1 */
    float entropy_coef;         /* 0 */
    bool use_kl_loss;
    float kl_loss_coef;
    sl_kl_type kl_loss_type;
    bool use_tis;
    float tis_clip;             /* 2.0 */
    float tis_clip_low;         /* 0 */
    bool calculate_per_token_loss;
    /* The global denominator: the number of samples (per-sample reduction)
     * or of loss tokens (per-token: sum over samples of max(mask sum, 1)) in
     * the whole global batch, when this call sees one micro-batch of it.
     * <= 0 = this batch's own count. */
    double denom;
} sl_rl_loss_config;

/* Fill c with slime's defaults (policy_loss, grpo, eps_clip 0.2, eps_clip_high
 * = eps_clip, no dual clip, no KL, no entropy, tis_clip 2, per-sample). */
void sl_rl_loss_config_default(sl_rl_loss_config *c);

/* The per-token inputs of one (micro-)batch. Arrays are caller-owned,
 * indexed by the offsets layout. */
typedef struct sl_rl_loss_input {
    size_t n_samples;
    const size_t *offsets;     /* (n_samples+1) */
    const float *loss_mask;    /* (T) */
    const float *logp;         /* (T) current policy log-probs (differentiated) */
    const float *old_logp;     /* (T) or NULL = logp (on-policy, detached) */
    const float *ref_logp;     /* (T) needed when use_kl_loss */
    const float *rollout_logp; /* (T) needed when use_tis */
    const float *advantages;   /* (T) needed for policy_loss */
    const float *entropy;      /* (T) or NULL (entropy metric 0, no gradient) */
} sl_rl_loss_input;

/* Scalar results; each metric is reduced like the loss (slime's
 * sum_of_sample_mean then divided by the denominator). */
typedef struct sl_rl_loss_metrics {
    double loss;          /* the value whose gradient is returned */
    double pg_loss;       /* (sft: the NLL) */
    double entropy_loss;  /* reduced entropy */
    double pg_clipfrac;   /* fraction of tokens where the clipped branch wins */
    double ppo_kl;        /* reduced (old - new) log-ratio (GSPO: per sequence) */
    double kl_loss;       /* reduced KL to the reference (use_kl_loss) */
    double tis;           /* reduced raw exp(old - rollout) (use_tis; slime's "tis") */
    double tis_weight;    /* reduced clipped TIS weight actually applied (use_tis) */
    double tis_clipfrac;  /* fraction of tokens whose TIS weight was clipped */
    double ois;           /* reduced exp(new - old) (use_tis) */
    double n_tokens;      /* loss tokens in this batch (sum of masks) */
} sl_rl_loss_metrics;

/* Loss, metrics and gradients for one (micro-)batch (slime
 * policy_loss_function / sft_loss_function with get_sum_of_sample_mean).
 * Reduction: per-sample = sum_i (sum_t mask*x / max(sum_t mask, 1)) / denom;
 * per-token = sum_t mask*x / denom.
 * policy_loss: loss = pg_loss - entropy_coef*entropy_loss
 *                     + kl_loss_coef*kl_loss (when use_kl_loss);
 *   pg per token = max(-ratio*A, -clip(ratio, 1-eps_clip, 1+eps_clip_high)*A),
 *   dual clip for A < 0: min(that, -eps_clip_c*A); ratio = exp(logp - old),
 *   or for gspo exp(mean over the sample's masked tokens of logp - old);
 *   with use_tis every pg term is multiplied by clip(exp(old - rollout),
 *   tis_clip_low, tis_clip) (a constant).
 * sft_loss: loss = -reduce(logp).
 * grad_logp (T, may be NULL) gets dloss/dlogp[t]; grad_entropy (T, may be
 * NULL) gets dloss/dentropy[t] = -entropy_coef * reducer weight. Both are
 * caller-owned and fully written (0 on masked tokens).
 * Returns 0 or SL_EINVAL (NULL where required, bad offsets, eps_clip_c in
 * (0, 1], a required array missing). On error the outputs are unspecified. */
int sl_rl_loss(const sl_rl_loss_config *cfg, const sl_rl_loss_input *in,
               sl_rl_loss_metrics *m, float *grad_logp, float *grad_entropy);

#endif /* SL_RL_ALGO_H */
