/*
 * test_loss_mask.c — every loss honours loss_mask: a token with mask 0
 * (a prompt token, or tool output a workflow inserted in the middle of a
 * response) contributes nothing to the loss, its gradient, the KL, the
 * entropy, the TIS weights or the per-token normalisation, whatever values
 * (even NaN or infinite) its log-probs, advantages or entropy hold.
 *
 *   - rl_algo: each loss configuration on samples with mask-0 spans full of
 *     garbage equals the same configuration on the samples with those
 *     tokens cut out; the gradient there is exactly 0.
 *   - advantages: reinforce++ (with and without baseline) and whitening
 *     ignore the KL under mask 0.
 *   - trainer_core: a step over a batch whose mask-0 tokens carry other
 *     rollout log-probs gives bit-identical weights and metrics; changing a
 *     masked-in value does change them (the check can fail).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rl_algo.h"
#include "sampler.h"
#include "tiny_model.h"
#include "trainer_core.h"

#define TOL 1e-9

/* ------------------------------------------------------------ rl_algo */

/* Two samples with mask-0 spans inside their responses (1 = kept). */
static const float MASK[] = {0, 0, 1, 1, 0, 0, 0, 1, 0, 1, /* sample 0: 10 tokens */
                             0, 1, 0, 0, 1, 1, 1, 0};      /* sample 1: 8 tokens */
static const size_t OFF[] = {0, 10, 18};
#define TF 18

typedef struct arrays {
    size_t off[3];
    float mask[TF], logp[TF], old[TF], ref[TF], roll[TF], adv[TF], ent[TF];
    size_t n; /* tokens */
} arrays;

/* The full arrays (garbage under mask 0) and the compact ones (each sample
 * keeps one leading mask-0 token with tame values, then its kept tokens). */
static void make_arrays(arrays *full, arrays *cut) {
    memset(full, 0, sizeof *full);
    memset(cut, 0, sizeof *cut);
    full->n = TF;
    memcpy(full->off, OFF, sizeof OFF);
    size_t c = 0;
    for (int s = 0; s < 2; s++) {
        cut->off[s] = c;
        cut->mask[c] = 0, cut->logp[c] = -1, cut->old[c] = -1, cut->ref[c] = -1, cut->roll[c] = -1;
        cut->adv[c] = 0, cut->ent[c] = 1;
        c++;
        for (size_t t = OFF[s]; t < OFF[s + 1]; t++) {
            full->mask[t] = MASK[t];
            if (MASK[t] == 0) {
                /* what a model / a workflow may leave under mask 0 */
                full->logp[t] = -80.0f;
                full->old[t] = NAN;
                full->ref[t] = INFINITY;
                full->roll[t] = -1e30f;
                full->adv[t] = NAN;
                full->ent[t] = NAN;
                continue;
            }
            float lp = -0.2f - 0.11f * (float)t, a = (t % 3 == 0) ? -1.3f : 0.9f;
            full->logp[t] = cut->logp[c] = lp;
            full->old[t] = cut->old[c] = lp + 0.05f * (float)((int)(t % 5) - 2);
            full->ref[t] = cut->ref[c] = lp - 0.3f;
            full->roll[t] = cut->roll[c] = lp + 0.4f;
            full->adv[t] = cut->adv[c] = a;
            full->ent[t] = cut->ent[c] = 0.5f + 0.1f * (float)(t % 4);
            cut->mask[c] = 1;
            c++;
        }
    }
    cut->off[2] = c;
    cut->n = c;
}

static sl_rl_loss_input input_of(const arrays *a) {
    return (sl_rl_loss_input){.n_samples = 2, .offsets = a->off, .loss_mask = a->mask, .logp = a->logp,
                              .old_logp = a->old, .ref_logp = a->ref, .rollout_logp = a->roll,
                              .advantages = a->adv, .entropy = a->ent};
}

static void close_or_fail(double got, double want, const char *what, int cfg) {
    if (!(fabs(got - want) <= TOL + 1e-6 * fabs(want))) {
        print_error("config %d: %s: %.12g with mask-0 garbage, %.12g without those tokens\n", cfg, what, got, want);
        fail();
    }
}

static void masked_tokens_contribute_nothing_to_any_loss(void **state) {
    (void)state;
    arrays full, cut;
    make_arrays(&full, &cut);
    for (int cfg = 0; cfg < 9; cfg++) {
        sl_rl_loss_config c;
        sl_rl_loss_config_default(&c);
        switch (cfg) {
        case 0: break; /* GRPO, per sample */
        case 1: c.calculate_per_token_loss = true; break;
        case 2: c.use_kl_loss = true, c.kl_loss_coef = 0.3f, c.kl_loss_type = SL_KL_K3; break;
        case 3: c.use_kl_loss = true, c.kl_loss_coef = 0.1f, c.kl_loss_type = SL_KL_LOW_VAR_KL; break;
        case 4: c.use_tis = true, c.tis_clip = 2.0f; break;
        case 5: c.entropy_coef = 0.01f; break;
        case 6: c.estimator = SL_ADV_GSPO; break;
        case 7: c.eps_clip_c = 3.0f, c.eps_clip_high = 0.28f; break;
        case 8: c.loss_type = SL_LOSS_SFT; break;
        }
        sl_rl_loss_input fi = input_of(&full), ci = input_of(&cut);
        sl_rl_loss_metrics fm, cm;
        float fg[TF], fe[TF], cg[TF], ce[TF];
        for (int t = 0; t < TF; t++) fg[t] = fe[t] = cg[t] = ce[t] = 12345.f; /* every entry must be written */
        assert_int_equal(sl_rl_loss(&c, &fi, &fm, fg, fe), 0);
        assert_int_equal(sl_rl_loss(&c, &ci, &cm, cg, ce), 0);
        close_or_fail(fm.loss, cm.loss, "loss", cfg);
        close_or_fail(fm.pg_loss, cm.pg_loss, "pg_loss", cfg);
        close_or_fail(fm.entropy_loss, cm.entropy_loss, "entropy", cfg);
        close_or_fail(fm.ppo_kl, cm.ppo_kl, "ppo_kl", cfg);
        close_or_fail(fm.kl_loss, cm.kl_loss, "kl_loss", cfg);
        close_or_fail(fm.pg_clipfrac, cm.pg_clipfrac, "clipfrac", cfg);
        close_or_fail(fm.tis, cm.tis, "tis", cfg);
        close_or_fail(fm.tis_weight, cm.tis_weight, "tis_weight", cfg);
        close_or_fail(fm.tis_clipfrac, cm.tis_clipfrac, "tis_clipfrac", cfg);
        close_or_fail(fm.ois, cm.ois, "ois", cfg);
        close_or_fail(fm.n_tokens, cm.n_tokens, "n_tokens", cfg);
        assert_true(isfinite(fm.loss));
        size_t c2 = 0;
        for (int s = 0; s < 2; s++) {
            c2 = cut.off[s] + 1;
            for (size_t t = OFF[s]; t < OFF[s + 1]; t++) {
                if (MASK[t] == 0) {
                    if (fg[t] != 0.0f || fe[t] != 0.0f) {
                        print_error("config %d: token %zu (mask 0) has gradient %g / entropy gradient %g\n", cfg, t,
                                    fg[t], fe[t]);
                        fail();
                    }
                    continue;
                }
                close_or_fail(fg[t], cg[c2], "grad_logp", cfg);
                close_or_fail(fe[t], ce[c2], "grad_entropy", cfg);
                c2++;
            }
        }
    }
}

static void advantages_ignore_the_kl_under_mask_zero(void **state) {
    (void)state;
    arrays full, cut;
    make_arrays(&full, &cut);
    float kf[TF], kc[TF];
    for (size_t t = 0; t < full.n; t++) kf[t] = MASK[t] ? 0.1f * (float)(t % 4) : NAN;
    size_t c = 0;
    for (int s = 0; s < 2; s++) {
        kc[c++] = 0.f;
        for (size_t t = OFF[s]; t < OFF[s + 1]; t++)
            if (MASK[t]) kc[c++] = kf[t];
    }
    const float rew[2] = {1.0f, -0.5f};
    const sl_adv_estimator est[] = {SL_ADV_REINFORCE_PLUS_PLUS, SL_ADV_REINFORCE_PLUS_PLUS_BASELINE, SL_ADV_GRPO};
    for (int e = 0; e < 3; e++)
        for (int norm = 0; norm < 2; norm++) {
            sl_rl_adv_config ac = {.estimator = est[e], .kl_coef = 0.2f, .kl_type = SL_KL_K1, .gamma = 1.0f,
                                   .normalize_advantages = norm};
            float af[TF], acut[TF];
            assert_int_equal(sl_rl_advantages(&ac, 2, full.off, full.mask, rew, kf, af, NULL), 0);
            assert_int_equal(sl_rl_advantages(&ac, 2, cut.off, cut.mask, rew, kc, acut, NULL), 0);
            for (int s = 0; s < 2; s++) {
                size_t c2 = cut.off[s] + 1;
                for (size_t t = OFF[s]; t < OFF[s + 1]; t++) {
                    assert_true(isfinite(af[t]));
                    if (MASK[t]) close_or_fail(af[t], acut[c2++], "advantage", 100 + e * 2 + norm);
                }
            }
        }
}

/* ------------------------------------------------------------ trainer */

#define VOCAB TINY_TRAINER_VOCAB
#define NS 4
#define MAXT 128

/* the trainer tests' model with one layer, norms as initialized */
static sl_model *tiny_model(uint64_t seed) {
    tiny_shape s = TINY_TRAINER_SHAPE;
    s.layers = 1, s.unit_norms = 0;
    return tiny_model_new(s, seed, 64);
}

typedef struct tbatch {
    int32_t tokens[MAXT];
    uint64_t off[NS + 1];
    uint8_t mask[MAXT];
    float roll[MAXT];
    float rewards[NS];
    sl_train_batch b;
} tbatch;

/* NS samples: 3 prompt tokens, then model / tool / model spans; GARBAGE is
 * the rollout log-prob written under mask 0. */
static void make_batch(tbatch *t, float garbage) {
    memset(t, 0, sizeof *t);
    uint64_t o = 0;
    for (int i = 0; i < NS; i++) {
        int len = 14 + i;
        for (int k = 0; k < len; k++) {
            t->tokens[o + (uint64_t)k] = (int32_t)(sl_sampler_uniform(7, (uint64_t)i, (uint64_t)k) * VOCAB);
            bool model = k >= 3 && !(k >= 6 && k < 10); /* tokens 6..9: tool output */
            t->mask[o + (uint64_t)k] = model;
            t->roll[o + (uint64_t)k] = model ? -1.5f - 0.1f * (float)k : (k < 3 ? 0.f : garbage);
        }
        o += (uint64_t)len;
        t->off[i + 1] = o;
        t->rewards[i] = (float)(i % 2);
    }
    t->b = (sl_train_batch){.n_samples = NS, .offsets = t->off, .tokens = t->tokens, .loss_mask = t->mask,
                            .rollout_logprobs = t->roll, .rewards = t->rewards, .group_size = NS};
}

/* One step; returns the parameters after it (malloc'd) and its metrics. */
static float *step(const tbatch *tb, bool tis, bool per_token, sl_train_metrics *mt, size_t *np) {
    sl_model *m = tiny_model(3);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.loss_type = SL_LOSS_POLICY;
    c.lr = 1e-2;
    c.micro_batch_size = 2;
    c.num_steps_per_rollout = 2; /* two optimizer steps: old log-probs, ratios, clipping */
    c.global_batch_size = NS / 2;
    c.use_tis = tis;
    c.entropy_coef = 0.01;
    c.calculate_per_token_loss = per_token;
    sl_trainer *t = NULL;
    char err[256];
    int rc = sl_trainer_new(m, &c, &t, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(sl_trainer_step(t, &tb->b, mt), 0);
    const float *p = sl_trainer_params(t, np);
    float *out = malloc(*np * sizeof *out);
    assert_non_null(out);
    memcpy(out, p, *np * sizeof *out);
    sl_trainer_free(t);
    sl_model_free(m);
    return out;
}

static void a_trainer_step_ignores_every_value_under_mask_zero(void **state) {
    (void)state;
    for (int v = 0; v < 4; v++) {
        bool tis = v & 1, per_token = v & 2;
        tbatch a, b, c;
        make_batch(&a, -2.0f);
        make_batch(&b, -1e4f); /* exp(old - rollout) overflows there */
        make_batch(&c, -2.0f);
        c.roll[3] = -0.01f; /* a masked-in value: must matter (with TIS) */
        sl_train_metrics ma, mb, mc;
        size_t na, nb, nc;
        float *pa = step(&a, tis, per_token, &ma, &na), *pb = step(&b, tis, per_token, &mb, &nb);
        float *pc = step(&c, tis, per_token, &mc, &nc);
        assert_int_equal(na, nb);
        assert_memory_equal(pa, pb, na * sizeof *pa);
        assert_true(isfinite(mb.loss) && isfinite(mb.tis) && isfinite(mb.entropy) && isfinite(mb.grad_norm));
        assert_true(isfinite(mb.train_rollout_logprob_abs_diff));
        assert_true(ma.loss == mb.loss && ma.tis == mb.tis && ma.entropy == mb.entropy);
        assert_true(ma.train_rollout_logprob_abs_diff == mb.train_rollout_logprob_abs_diff);
        int64_t ones = 0;
        for (uint64_t k = 0; k < a.off[NS]; k++) ones += a.mask[k];
        assert_int_equal(mb.tokens, ones);
        /* the control: a masked-in rollout log-prob moves the metric (and, with TIS, the weights) */
        assert_true(mc.train_rollout_logprob_abs_diff != ma.train_rollout_logprob_abs_diff);
        if (tis) assert_true(memcmp(pa, pc, na * sizeof *pa) != 0);
        free(pa), free(pb), free(pc);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    if (!getenv("OMP_WAIT_POLICY")) { /* see test_trainer_core.c */
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(masked_tokens_contribute_nothing_to_any_loss),
        cmocka_unit_test(advantages_ignore_the_kl_under_mask_zero),
        cmocka_unit_test(a_trainer_step_ignores_every_value_under_mask_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
