/*
 * rl_algo.c — slime's RL math in plain C: reward group normalization,
 * advantage estimators, KL estimators, the policy/SFT losses with their
 * gradients w.r.t. log-probs and entropies, and the DAPO filter.
 *
 * It is not a trainer: it never sees the model, allocates nothing and does
 * no I/O. See rl_algo.h for the formulas and the slime files they follow.
 */
#include "rl_algo.h"

#include <math.h>
#include <string.h>

/* ================================================================ names */

static const char *const adv_names[] = {
    "grpo", "gspo", "reinforce_plus_plus", "reinforce_plus_plus_baseline", "rloo",
};
static const char *const kl_names[] = {"k1", "k2", "k3", "low_var_kl"};

int sl_adv_estimator_from_name(const char *name, sl_adv_estimator *out)
{
    if (!name || !out)
        return SL_EINVAL;
    for (size_t i = 0; i < sizeof adv_names / sizeof adv_names[0]; i++)
        if (strcmp(name, adv_names[i]) == 0) {
            *out = (sl_adv_estimator)i;
            return 0;
        }
    return SL_EINVAL;
}

int sl_kl_type_from_name(const char *name, sl_kl_type *out)
{
    if (!name || !out)
        return SL_EINVAL;
    for (size_t i = 0; i < sizeof kl_names / sizeof kl_names[0]; i++)
        if (strcmp(name, kl_names[i]) == 0) {
            *out = (sl_kl_type)i;
            return 0;
        }
    return SL_EINVAL;
}

int sl_loss_type_from_name(const char *name, sl_loss_type *out)
{
    if (!name || !out)
        return SL_EINVAL;
    if (strcmp(name, "policy_loss") == 0)
        *out = SL_LOSS_POLICY;
    else if (strcmp(name, "sft_loss") == 0)
        *out = SL_LOSS_SFT;
    else
        return SL_EINVAL;
    return 0;
}

const char *sl_adv_estimator_name(sl_adv_estimator e)
{
    if ((unsigned)e >= sizeof adv_names / sizeof adv_names[0])
        return "?";
    return adv_names[e];
}

const char *sl_kl_type_name(sl_kl_type t)
{
    if ((unsigned)t >= sizeof kl_names / sizeof kl_names[0])
        return "?";
    return kl_names[t];
}

/* ================================================================ KL */

double sl_rl_approx_kl(float logp, float logp_ref, sl_kl_type type)
{
    double r = (double)logp - (double)logp_ref;
    switch (type) {
    case SL_KL_K1:
        return r;
    case SL_KL_K2:
        return r * r / 2.0;
    case SL_KL_K3:
        return exp(-r) - 1.0 + r;
    case SL_KL_LOW_VAR_KL: {
        double k = exp(-r) - 1.0 + r;
        return k > 10.0 ? 10.0 : (k < -10.0 ? -10.0 : k);
    }
    }
    return 0.0;
}

double sl_rl_approx_kl_grad(float logp, float logp_ref, sl_kl_type type)
{
    double r = (double)logp - (double)logp_ref;
    switch (type) {
    case SL_KL_K1:
        return 1.0;
    case SL_KL_K2:
        return r;
    case SL_KL_K3:
        return 1.0 - exp(-r);
    case SL_KL_LOW_VAR_KL: {
        /* torch.clamp passes the gradient on [min, max] inclusive. */
        double k = exp(-r) - 1.0 + r;
        return (k > 10.0 || k < -10.0) ? 0.0 : 1.0 - exp(-r);
    }
    }
    return 0.0;
}

/* ================================================================ rewards */

static bool all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return false;
    return true;
}

int sl_rl_group_rewards(const float *rewards, size_t n_total, size_t group_size,
                        sl_adv_estimator est, bool rewards_normalization,
                        bool grpo_std_normalization, float *out)
{
    if ((!rewards || !out) && n_total > 0)
        return SL_EINVAL;
    if ((unsigned)est > SL_ADV_RLOO)
        return SL_EINVAL;
    if (n_total == 0)
        return 0;
    if (group_size == 0)
        group_size = n_total;
    if (n_total % group_size != 0 || !all_finite(rewards, n_total))
        return SL_EINVAL;

    bool center = rewards_normalization &&
                  (est == SL_ADV_GRPO || est == SL_ADV_GSPO ||
                   est == SL_ADV_REINFORCE_PLUS_PLUS_BASELINE);
    bool scale = center && grpo_std_normalization &&
                 (est == SL_ADV_GRPO || est == SL_ADV_GSPO);
    bool rloo = rewards_normalization && est == SL_ADV_RLOO;

    for (size_t g = 0; g < n_total; g += group_size) {
        const float *r = rewards + g;
        float *o = out + g;
        double sum = 0.0;
        for (size_t i = 0; i < group_size; i++)
            sum += r[i];
        double mean = sum / (double)group_size;
        if (rloo) {
            for (size_t i = 0; i < group_size; i++)
                o[i] = group_size > 1
                           ? (float)((double)r[i] - (sum - r[i]) / (double)(group_size - 1))
                           : 0.0f;
        } else if (center) {
            double ss = 0.0;
            for (size_t i = 0; i < group_size; i++) {
                double d = (double)r[i] - mean;
                ss += d * d;
            }
            /* torch.std is unbiased; one sample: slime turns std off. */
            double sd = group_size > 1 ? sqrt(ss / (double)(group_size - 1)) : 0.0;
            for (size_t i = 0; i < group_size; i++) {
                double d = (double)r[i] - mean;
                o[i] = (float)(scale ? d / (sd + 1e-6) : d);
            }
        } else if (o != r) {
            memcpy(o, r, group_size * sizeof *o);
        }
    }
    return 0;
}

void sl_rl_token_kl(const float *logp, const float *ref_logp, size_t n_tok,
                    float kl_coef, sl_kl_type type, float *kl_out)
{
    if (!kl_out)
        return;
    for (size_t t = 0; t < n_tok; t++)
        kl_out[t] = (kl_coef == 0.0f || !logp || !ref_logp)
                        ? 0.0f
                        : (float)sl_rl_approx_kl(logp[t], ref_logp[t], type);
}

/* offsets[0] == 0, non-decreasing. */
static bool offsets_ok(const size_t *offsets, size_t n)
{
    if (!offsets || offsets[0] != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (offsets[i + 1] < offsets[i])
            return false;
    return true;
}

int sl_rl_advantages(const sl_rl_adv_config *cfg, size_t n_samples,
                     const size_t *offsets, const float *loss_mask,
                     const float *rewards, const float *kl, float *adv_out,
                     float *returns_out)
{
    if (!cfg || !offsets_ok(offsets, n_samples))
        return SL_EINVAL;
    size_t T = offsets[n_samples];
    if (n_samples > 0 && (!rewards || !adv_out))
        return SL_EINVAL;
    if (T > 0 && !loss_mask)
        return SL_EINVAL;
    if ((unsigned)cfg->estimator > SL_ADV_RLOO)
        return SL_EINVAL;
    double kc = cfg->kl_coef;

    for (size_t i = 0; i < n_samples; i++) {
        size_t a = offsets[i], b = offsets[i + 1];
        double r = rewards[i];
        switch (cfg->estimator) {
        case SL_ADV_GRPO:
        case SL_ADV_GSPO:
        case SL_ADV_RLOO:
            for (size_t t = a; t < b; t++)
                adv_out[t] = (float)r;
            break;
        case SL_ADV_REINFORCE_PLUS_PLUS_BASELINE:
            /* slime's value on every token; a token outside the loss
             * (mask 0) whose KL is not finite gets r (never read by the
             * loss, but kept finite) */
            for (size_t t = a; t < b; t++) {
                double k = kl ? kl[t] : 0.0f;
                if (loss_mask[t] == 0.0f && !isfinite(k))
                    k = 0.0;
                adv_out[t] = (float)(r - kc * k);
            }
            break;
        case SL_ADV_REINFORCE_PLUS_PLUS: {
            size_t last = b;
            for (size_t t = a; t < b; t++)
                if (loss_mask[t] != 0.0f)
                    last = t;
            if (last == b)
                return SL_EINVAL; /* slime asserts: fully masked sample */
            double g = 0.0, gamma = cfg->gamma;
            for (size_t t = b; t-- > a;) {
                double tr = loss_mask[t] != 0.0f ? -kc * (double)(kl ? kl[t] : 0.0f) * loss_mask[t] : 0.0;
                if (t == last)
                    tr += r;
                g = tr + gamma * g;
                adv_out[t] = (float)g;
            }
            break;
        }
        }
    }
    if (returns_out && returns_out != adv_out)
        memcpy(returns_out, adv_out, T * sizeof *adv_out);

    if (cfg->normalize_advantages && T > 0) {
        double s = 0.0, s2 = 0.0, m = 0.0;
        for (size_t t = 0; t < T; t++) {
            double v = adv_out[t], w = loss_mask[t];
            if (w == 0.0)
                continue; /* outside the loss: its value never counts */
            s += v * w;
            s2 += v * v * w;
            m += w;
        }
        if (m == 0.0)
            return SL_EINVAL;
        double mean = s / m;
        double var = s2 / m - mean * mean;
        if (m >= 2.0)
            var *= m / (m - 1.0);
        double inv = 1.0 / sqrt(var + 1e-8);
        for (size_t t = 0; t < T; t++)
            adv_out[t] = (float)(((double)adv_out[t] - mean) * inv);
    }
    return 0;
}

/* ================================================================ DAPO */

int sl_rl_dynamic_sampling_filter(const float *rewards, size_t n_total,
                                  size_t group_size, uint8_t *keep,
                                  size_t *n_kept)
{
    if (group_size == 0 || n_total % group_size != 0 ||
        (n_total > 0 && (!rewards || !keep)))
        return SL_EINVAL;
    size_t kept = 0;
    for (size_t g = 0; g * group_size < n_total; g++) {
        const float *r = rewards + g * group_size;
        double sum = 0.0, ss = 0.0;
        for (size_t i = 0; i < group_size; i++)
            sum += r[i];
        double mean = sum / (double)group_size;
        for (size_t i = 0; i < group_size; i++)
            ss += ((double)r[i] - mean) * ((double)r[i] - mean);
        /* NaN compares false, so a NaN reward or a group of one drops it. */
        double sd = group_size > 1 ? sqrt(ss / (double)(group_size - 1)) : NAN;
        keep[g] = sd > 1e-6;
        kept += keep[g];
    }
    if (n_kept)
        *n_kept = kept;
    return 0;
}

/* ================================================================ losses */

void sl_rl_loss_config_default(sl_rl_loss_config *c)
{
    if (!c)
        return;
    memset(c, 0, sizeof *c);
    c->loss_type = SL_LOSS_POLICY;
    c->estimator = SL_ADV_GRPO;
    c->eps_clip = 0.2f;
    c->eps_clip_high = -1.0f;
    c->eps_clip_c = 0.0f;
    c->kl_loss_type = SL_KL_K1;
    c->tis_clip = 2.0f;
    c->tis_clip_low = 0.0f;
    c->denom = 0.0;
}

static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* One token of compute_policy_loss: returns the loss term, stores
 * d(term)/d(ratio) in *dratio and whether the clipped branch won. The
 * derivative follows torch's subgradients: maximum/minimum split the
 * gradient in half on ties, clamp passes it on its closed interval. */
static double pg_token(double ratio, double A, double lo, double hi, bool dual,
                       double c, double *dratio, bool *clipped)
{
    double pg1 = -ratio * A;
    double pg2 = -clampd(ratio, lo, hi) * A;
    bool in_range = ratio >= lo && ratio <= hi;
    double d1 = -A, d2 = in_range ? -A : 0.0;
    double pg, d;
    if (pg1 > pg2) {
        pg = pg1;
        d = d1;
    } else if (pg2 > pg1) {
        pg = pg2;
        d = d2;
    } else {
        pg = pg1;
        d = 0.5 * (d1 + d2);
    }
    *clipped = pg2 > pg1;
    if (dual && A < 0.0) {
        double pg3 = -c * A;
        if (pg3 < pg) {
            pg = pg3;
            d = 0.0;
        } else if (pg3 == pg) {
            d *= 0.5;
        }
    }
    *dratio = d;
    return pg;
}

int sl_rl_loss(const sl_rl_loss_config *cfg, const sl_rl_loss_input *in,
               sl_rl_loss_metrics *m, float *grad_logp, float *grad_entropy)
{
    if (!cfg || !in || !m || !offsets_ok(in->offsets, in->n_samples))
        return SL_EINVAL;
    const size_t n = in->n_samples, T = in->offsets[n];
    bool sft = cfg->loss_type == SL_LOSS_SFT;
    bool policy = cfg->loss_type == SL_LOSS_POLICY;
    if (!sft && !policy)
        return SL_EINVAL;
    if (T > 0 && (!in->loss_mask || !in->logp))
        return SL_EINVAL;
    bool dual = policy && cfg->eps_clip_c > 0.0f;
    if (dual && cfg->eps_clip_c <= 1.0f)
        return SL_EINVAL; /* slime asserts eps_clip_c > 1 */
    bool use_kl = policy && cfg->use_kl_loss;
    bool use_tis = policy && cfg->use_tis;
    bool gspo = policy && cfg->estimator == SL_ADV_GSPO;
    if (T > 0 && policy && !in->advantages)
        return SL_EINVAL;
    if (T > 0 && use_kl && !in->ref_logp)
        return SL_EINVAL;
    if (T > 0 && use_tis && !in->rollout_logp)
        return SL_EINVAL;

    memset(m, 0, sizeof *m);
    const float *mask = in->loss_mask;
    const double lo = 1.0 - (double)cfg->eps_clip;
    const double hi = 1.0 + (double)(cfg->eps_clip_high < 0.0f ? cfg->eps_clip : cfg->eps_clip_high);
    const double ent_coef = policy ? cfg->entropy_coef : 0.0;
    const double kl_coef = cfg->kl_loss_coef;

    /* The global denominator (see the header). */
    double D = cfg->denom;
    if (!(D > 0.0)) {
        D = 0.0;
        for (size_t i = 0; i < n; i++) {
            if (cfg->calculate_per_token_loss) {
                double s = 0.0;
                for (size_t t = in->offsets[i]; t < in->offsets[i + 1]; t++)
                    s += mask[t];
                D += s > 1.0 ? s : 1.0;
            } else {
                D += 1.0;
            }
        }
        if (D == 0.0)
            D = 1.0;
    }

    for (size_t i = 0; i < n; i++) {
        const size_t a = in->offsets[i], b = in->offsets[i + 1];
        double M = 0.0;
        for (size_t t = a; t < b; t++)
            M += mask[t];
        m->n_tokens += M;
        /* A token with mask 0 (prompt, or tool output inserted by a
         * workflow) contributes nothing: its values are never read, so NaN
         * or infinite log-probs, advantages or entropies there cannot leak
         * in through 0 * inf; its gradients are exactly 0. */
        const double Mc = M > 1.0 ? M : 1.0;
        const double scale = 1.0 / ((cfg->calculate_per_token_loss ? 1.0 : Mc) * D);

        /* GSPO: one ratio per sequence, from the masked mean log-ratio. */
        double seq_kl = 0.0;
        if (gspo) {
            for (size_t t = a; t < b; t++) {
                if (mask[t] == 0.0f)
                    continue;
                double old = in->old_logp ? in->old_logp[t] : in->logp[t];
                seq_kl += (old - (double)in->logp[t]) * mask[t];
            }
            seq_kl /= Mc;
        }
        double gspo_acc = 0.0; /* sum_t w_t * d pg_t / d ratio_seq */

        for (size_t t = a; t < b; t++) {
            if (mask[t] == 0.0f) {
                if (grad_logp)
                    grad_logp[t] = 0.0f;
                if (grad_entropy)
                    grad_entropy[t] = 0.0f;
                continue;
            }
            const double w = (double)mask[t] * scale;
            const double lp = in->logp[t];
            double g = 0.0;
            if (sft) {
                m->pg_loss += -w * lp;
                if (grad_logp)
                    grad_logp[t] = (float)(-w);
                if (grad_entropy)
                    grad_entropy[t] = 0.0f;
                continue;
            }
            const double old = in->old_logp ? in->old_logp[t] : lp;
            const double ppo_kl = gspo ? seq_kl : old - lp;
            const double ratio = exp(-ppo_kl);
            double dr;
            bool clipped;
            double pg = pg_token(ratio, in->advantages[t], lo, hi, dual,
                                 cfg->eps_clip_c, &dr, &clipped);
            if (use_tis) {
                double tis = exp(old - (double)in->rollout_logp[t]);
                double tw = clampd(tis, cfg->tis_clip_low, cfg->tis_clip);
                pg *= tw;
                dr *= tw;
                m->tis += w * tis;
                m->tis_weight += w * tw;
                m->tis_clipfrac += w * (tw != tis ? 1.0 : 0.0);
                m->ois += w * ratio;
            }
            m->pg_loss += w * pg;
            m->pg_clipfrac += w * (clipped ? 1.0 : 0.0);
            m->ppo_kl += w * ppo_kl;
            if (gspo)
                gspo_acc += w * dr;
            else
                g += w * dr * ratio; /* d ratio / d logp = ratio */

            if (in->entropy)
                m->entropy_loss += w * in->entropy[t];
            if (grad_entropy)
                grad_entropy[t] = (float)(-ent_coef * w);

            if (use_kl) {
                m->kl_loss += w * sl_rl_approx_kl(in->logp[t], in->ref_logp[t], cfg->kl_loss_type);
                g += kl_coef * w *
                     sl_rl_approx_kl_grad(in->logp[t], in->ref_logp[t], cfg->kl_loss_type);
            }
            if (grad_logp)
                grad_logp[t] = (float)g;
        }
        if (gspo && grad_logp) {
            /* ratio_seq = exp(sum_s mask_s (logp_s - old_s) / Mc) */
            const double k = gspo_acc * exp(-seq_kl) / Mc;
            for (size_t t = a; t < b; t++)
                if (mask[t] != 0.0f)
                    grad_logp[t] = (float)((double)grad_logp[t] + k * mask[t]);
        }
    }

    if (sft) {
        m->loss = m->pg_loss;
    } else {
        m->loss = m->pg_loss - ent_coef * m->entropy_loss;
        if (use_kl)
            m->loss += kl_coef * m->kl_loss;
    }
    return 0;
}
