/*
 * test_rl_algo.c — the RL math (actors/rl_algo.c) against PyTorch fixtures
 * (the JSON files in tests/fixtures/rl/, made by tests/fixtures/make_rl_fixtures.py from
 * slime's formulas with autograd gradients) and against values computed by
 * hand here. Prints the largest difference seen per fixture file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl_algo.h"

#define RTOL 1e-5
#define ATOL 1e-6

/* ------------------------------------------------------------ helpers */

static double max_rel_seen;

static void check_close(double got, double want, const char *what, const char *cas)
{
    double diff = fabs(got - want);
    double rel = diff / (fabs(want) > 1.0 ? fabs(want) : 1.0);
    if (rel > max_rel_seen)
        max_rel_seen = rel;
    if (!(diff <= ATOL + RTOL * fabs(want))) {
        print_error("%s: %s got %.9g want %.9g (diff %.3g)\n", cas, what, got, want, diff);
        fail();
    }
}

static json_t *load_fixture(const char *file)
{
    char path[1024];
    const char *root = getenv("SL_ROOT");
    snprintf(path, sizeof path, "%s/tests/fixtures/rl/%s", root ? root : ".", file);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        print_error("cannot load %s: %s (line %d)\n", path, err.text, err.line);
    assert_non_null(j);
    return j;
}

/* A float array from a JSON array (NULL for null/absent). Caller frees. */
static float *farr(json_t *obj, const char *key, size_t *n_out)
{
    json_t *a = json_object_get(obj, key);
    if (!a || json_is_null(a))
        return NULL;
    assert_true(json_is_array(a));
    size_t n = json_array_size(a);
    float *v = calloc(n ? n : 1, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)json_number_value(json_array_get(a, i));
    if (n_out)
        *n_out = n;
    return v;
}

static size_t *offsets_of(json_t *obj, size_t *n_samples)
{
    json_t *a = json_object_get(obj, "offsets");
    size_t n = json_array_size(a);
    assert_true(n >= 1);
    size_t *o = calloc(n, sizeof *o);
    assert_non_null(o);
    for (size_t i = 0; i < n; i++)
        o[i] = (size_t)json_integer_value(json_array_get(a, i));
    *n_samples = n - 1;
    return o;
}

static double num(json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

static bool flag(json_t *obj, const char *key)
{
    return json_is_true(json_object_get(obj, key));
}

/* ------------------------------------------------------------ fixtures */

static void loss_matches_every_pytorch_fixture(void **state)
{
    (void)state;
    json_t *root = load_fixture("loss_cases.json");
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_array_size(cases) >= 20);
    max_rel_seen = 0.0;
    double max_grad_rel = 0.0;
    size_t idx;
    json_t *c;
    json_array_foreach(cases, idx, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *jc = json_object_get(c, "config"), *ji = json_object_get(c, "input"),
               *je = json_object_get(c, "expect");
        sl_rl_loss_config cfg;
        sl_rl_loss_config_default(&cfg);
        assert_int_equal(sl_loss_type_from_name(json_string_value(json_object_get(jc, "loss_type")),
                                                &cfg.loss_type), 0);
        assert_int_equal(sl_adv_estimator_from_name(json_string_value(json_object_get(jc, "estimator")),
                                                    &cfg.estimator), 0);
        assert_int_equal(sl_kl_type_from_name(json_string_value(json_object_get(jc, "kl_loss_type")),
                                              &cfg.kl_loss_type), 0);
        cfg.eps_clip = (float)num(jc, "eps_clip");
        cfg.eps_clip_high = (float)num(jc, "eps_clip_high");
        cfg.eps_clip_c = (float)num(jc, "eps_clip_c");
        cfg.entropy_coef = (float)num(jc, "entropy_coef");
        cfg.use_kl_loss = flag(jc, "use_kl_loss");
        cfg.kl_loss_coef = (float)num(jc, "kl_loss_coef");
        cfg.use_tis = flag(jc, "use_tis");
        cfg.tis_clip = (float)num(jc, "tis_clip");
        cfg.tis_clip_low = (float)num(jc, "tis_clip_low");
        cfg.calculate_per_token_loss = flag(jc, "calculate_per_token_loss");
        cfg.denom = num(jc, "denom");

        sl_rl_loss_input in = {0};
        size_t T = 0;
        size_t *offs = offsets_of(ji, &in.n_samples);
        in.offsets = offs;
        float *mask = farr(ji, "loss_mask", &T), *logp = farr(ji, "logp", NULL),
              *old = farr(ji, "old_logp", NULL), *ref = farr(ji, "ref_logp", NULL),
              *roll = farr(ji, "rollout_logp", NULL), *adv = farr(ji, "advantages", NULL),
              *ent = farr(ji, "entropy", NULL);
        in.loss_mask = mask;
        in.logp = logp;
        in.old_logp = old;
        in.ref_logp = ref;
        in.rollout_logp = roll;
        in.advantages = adv;
        in.entropy = ent;
        assert_int_equal(offs[in.n_samples], T);

        float *g = calloc(T, sizeof *g), *ge = calloc(T, sizeof *ge);
        assert_non_null(g);
        assert_non_null(ge);
        sl_rl_loss_metrics m;
        assert_int_equal(sl_rl_loss(&cfg, &in, &m, g, ge), 0);

        check_close(m.loss, num(je, "loss"), "loss", name);
        check_close(m.pg_loss, num(je, "pg_loss"), "pg_loss", name);
        check_close(m.n_tokens, num(je, "n_tokens"), "n_tokens", name);
        const char *opt[] = {"pg_clipfrac", "ppo_kl", "entropy_loss", "kl_loss", "tis", "tis_clipfrac", "ois",
                             "tis_weight"};
        const double got[] = {m.pg_clipfrac, m.ppo_kl, m.entropy_loss, m.kl_loss, m.tis, m.tis_clipfrac, m.ois,
                              m.tis_weight};
        for (size_t k = 0; k < sizeof opt / sizeof opt[0]; k++)
            if (json_object_get(je, opt[k]))
                check_close(got[k], num(je, opt[k]), opt[k], name);

        size_t nge = 0, ngl = 0;
        float *wg = farr(je, "grad_logp", &ngl), *wge = farr(je, "grad_entropy", &nge);
        assert_int_equal(ngl, T);
        assert_int_equal(nge, T);
        double before = max_rel_seen;
        for (size_t t = 0; t < T; t++) {
            char what[64];
            snprintf(what, sizeof what, "grad_logp[%zu]", t);
            check_close(g[t], wg[t], what, name);
            snprintf(what, sizeof what, "grad_entropy[%zu]", t);
            check_close(ge[t], wge[t], what, name);
        }
        if (max_rel_seen > max_grad_rel && max_rel_seen > before)
            max_grad_rel = max_rel_seen;
        free(wg), free(wge), free(g), free(ge);
        free(mask), free(logp), free(old), free(ref), free(roll), free(adv), free(ent), free(offs);
    }
    printf("    loss fixtures: %zu cases, max relative diff %.3g (tolerance %.0e)\n",
           json_array_size(cases), max_rel_seen, RTOL);
    json_decref(root);
}

static void advantages_match_every_pytorch_fixture(void **state)
{
    (void)state;
    json_t *root = load_fixture("adv_cases.json");
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_array_size(cases) >= 10);
    max_rel_seen = 0.0;
    size_t idx;
    json_t *c;
    json_array_foreach(cases, idx, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *jc = json_object_get(c, "config"), *ji = json_object_get(c, "input"),
               *je = json_object_get(c, "expect");
        sl_rl_adv_config cfg = {0};
        assert_int_equal(sl_adv_estimator_from_name(json_string_value(json_object_get(jc, "estimator")),
                                                    &cfg.estimator), 0);
        assert_int_equal(sl_kl_type_from_name(json_string_value(json_object_get(jc, "kl_type")),
                                              &cfg.kl_type), 0);
        cfg.kl_coef = (float)num(jc, "kl_coef");
        cfg.gamma = (float)num(jc, "gamma");
        cfg.normalize_advantages = flag(jc, "normalize_advantages");
        size_t n = 0, T = 0, nr = 0;
        size_t *offs = offsets_of(ji, &n);
        float *mask = farr(ji, "loss_mask", &T), *raw = farr(ji, "rewards", &nr),
              *logp = farr(ji, "logp", NULL), *ref = farr(ji, "ref_logp", NULL);
        assert_int_equal(nr, n);
        float *gr = calloc(n, sizeof *gr), *kl = calloc(T, sizeof *kl), *adv = calloc(T, sizeof *adv),
              *ret = calloc(T, sizeof *ret);
        assert_int_equal(sl_rl_group_rewards(raw, n, (size_t)num(jc, "group_size"), cfg.estimator,
                                             flag(jc, "rewards_normalization"),
                                             flag(jc, "grpo_std_normalization"), gr), 0);
        float *wgr = farr(je, "group_rewards", NULL);
        for (size_t i = 0; i < n; i++)
            check_close(gr[i], wgr[i], "group_rewards", name);
        sl_rl_token_kl(logp, ref, T, cfg.kl_coef, cfg.kl_type, kl);
        float *wkl = farr(je, "kl", NULL);
        for (size_t t = 0; t < T; t++)
            check_close(kl[t], wkl[t], "kl", name);
        assert_int_equal(sl_rl_advantages(&cfg, n, offs, mask, gr, kl, adv, ret), 0);
        float *wadv = farr(je, "advantages", NULL), *wret = farr(je, "returns", NULL);
        for (size_t t = 0; t < T; t++) {
            check_close(adv[t], wadv[t], "advantages", name);
            check_close(ret[t], wret[t], "returns", name);
        }
        free(wgr), free(wkl), free(wadv), free(wret);
        free(gr), free(kl), free(adv), free(ret), free(mask), free(raw), free(logp), free(ref), free(offs);
    }
    printf("    advantage fixtures: %zu cases, max relative diff %.3g (tolerance %.0e)\n",
           json_array_size(cases), max_rel_seen, RTOL);
    json_decref(root);
}

/* ------------------------------------------------------------ by hand */

static void grpo_divides_by_the_unbiased_group_std(void **state)
{
    (void)state;
    const float r[8] = {1, 0, 1, 1, 0, 0, 0, 0};
    float o[8];
    assert_int_equal(sl_rl_group_rewards(r, 8, 4, SL_ADV_GRPO, true, true, o), 0);
    /* mean .75, centred (.25,-.75,.25,.25), unbiased std sqrt(.75/3) = .5 */
    assert_float_equal(o[0], 0.25 / (0.5 + 1e-6), 1e-6);
    assert_float_equal(o[1], -0.75 / (0.5 + 1e-6), 1e-6);
    for (int i = 4; i < 8; i++)
        assert_float_equal(o[i], 0.0, 0.0); /* equal rewards: no signal */
}

static void dr_grpo_only_subtracts_the_group_mean(void **state)
{
    (void)state;
    const float r[4] = {1, 0, 1, 1};
    float o[4];
    assert_int_equal(sl_rl_group_rewards(r, 4, 4, SL_ADV_GRPO, true, false, o), 0);
    assert_float_equal(o[0], 0.25, 1e-7);
    assert_float_equal(o[1], -0.75, 1e-7);
}

static void rloo_subtracts_the_mean_of_the_others(void **state)
{
    (void)state;
    const float r[4] = {1, 0, 1, 1};
    float o[4];
    assert_int_equal(sl_rl_group_rewards(r, 4, 4, SL_ADV_RLOO, true, true, o), 0);
    assert_float_equal(o[0], 1.0 - 2.0 / 3.0, 1e-6);
    assert_float_equal(o[1], -1.0, 1e-6);
    /* reinforce++ keeps the raw reward (whitening comes later) */
    assert_int_equal(sl_rl_group_rewards(r, 4, 4, SL_ADV_REINFORCE_PLUS_PLUS, true, true, o), 0);
    assert_float_equal(o[1], 0.0, 0.0);
    assert_float_equal(o[2], 1.0, 0.0);
}

static void reinforce_pp_puts_the_reward_on_the_last_masked_token(void **state)
{
    (void)state;
    const size_t offs[2] = {0, 3};
    const float mask[3] = {1, 1, 0}, r[1] = {1.0f}, kl[3] = {0.1f, 0.2f, 0.3f};
    float adv[3];
    sl_rl_adv_config cfg = {.estimator = SL_ADV_REINFORCE_PLUS_PLUS, .kl_coef = 0.5f, .gamma = 1.0f};
    assert_int_equal(sl_rl_advantages(&cfg, 1, offs, mask, r, kl, adv, NULL), 0);
    /* token rewards (-0.05, 1 - 0.1, 0) -> returns (0.85, 0.9, 0) */
    assert_float_equal(adv[0], 0.85, 1e-6);
    assert_float_equal(adv[1], 0.9, 1e-6);
    assert_float_equal(adv[2], 0.0, 1e-7);
    cfg.gamma = 0.5f; /* 0.9*0.5 - 0.05 */
    assert_int_equal(sl_rl_advantages(&cfg, 1, offs, mask, r, kl, adv, NULL), 0);
    assert_float_equal(adv[0], 0.4, 1e-6);
    const float none[3] = {0, 0, 0};
    assert_int_equal(sl_rl_advantages(&cfg, 1, offs, none, r, kl, adv, NULL), SL_EINVAL);
}

static void kl_estimators_match_hand_values(void **state)
{
    (void)state;
    float lp = 0.5f, ref = 0.0f;
    assert_float_equal(sl_rl_approx_kl(lp, ref, SL_KL_K1), 0.5, 1e-12);
    assert_float_equal(sl_rl_approx_kl(lp, ref, SL_KL_K2), 0.125, 1e-12);
    assert_float_equal(sl_rl_approx_kl(lp, ref, SL_KL_K3), exp(-0.5) - 0.5, 1e-12);
    assert_float_equal(sl_rl_approx_kl_grad(lp, ref, SL_KL_K3), 1.0 - exp(-0.5), 1e-12);
    /* log ratio -3: k3 = e^3 - 1 - 3 = 16.09, low_var_kl clamps to 10 */
    assert_float_equal(sl_rl_approx_kl(-3.0f, 0.0f, SL_KL_K3), exp(3.0) - 4.0, 1e-9);
    assert_float_equal(sl_rl_approx_kl(-3.0f, 0.0f, SL_KL_LOW_VAR_KL), 10.0, 0.0);
    assert_float_equal(sl_rl_approx_kl_grad(-3.0f, 0.0f, SL_KL_LOW_VAR_KL), 0.0, 0.0);
    sl_kl_type t;
    assert_int_equal(sl_kl_type_from_name("low_var_kl", &t), 0);
    assert_int_equal(t, SL_KL_LOW_VAR_KL);
    assert_int_equal(sl_kl_type_from_name("k4", &t), SL_EINVAL);
    assert_string_equal(sl_kl_type_name(SL_KL_K2), "k2");
}

/* One token, one sample: the PPO branches by hand. */
static double one_token(sl_rl_loss_config *cfg, float ratio, float A, float *grad)
{
    const size_t offs[2] = {0, 1};
    const float mask[1] = {1}, old[1] = {0.0f}, adv[1] = {A};
    float lp[1] = {logf(ratio)};
    sl_rl_loss_input in = {.n_samples = 1, .offsets = offs, .loss_mask = mask, .logp = lp,
                           .old_logp = old, .advantages = adv};
    sl_rl_loss_metrics m;
    assert_int_equal(sl_rl_loss(cfg, &in, &m, grad, NULL), 0);
    return m.loss;
}

static void ppo_clip_and_dual_clip_match_hand_values(void **state)
{
    (void)state;
    sl_rl_loss_config c;
    sl_rl_loss_config_default(&c);
    float g;
    /* ratio 1.5, A = +1: clipped at 1.2, no gradient */
    assert_float_equal(one_token(&c, 1.5f, 1.0f, &g), -1.2, 1e-6);
    assert_float_equal(g, 0.0, 0.0);
    /* ratio 1.5, A = -1: unclipped 1.5 wins, dL/dlogp = -A*ratio = 1.5 */
    assert_float_equal(one_token(&c, 1.5f, -1.0f, &g), 1.5, 1e-6);
    assert_float_equal(g, 1.5, 1e-6);
    /* ratio 1.1 inside the range: -ratio*A, gradient -A*ratio */
    assert_float_equal(one_token(&c, 1.1f, 2.0f, &g), -2.2, 1e-6);
    assert_float_equal(g, -2.2, 1e-6);
    /* clip-higher: 1.25 is inside [0.8, 1.28] */
    c.eps_clip_high = 0.28f;
    assert_float_equal(one_token(&c, 1.25f, 1.0f, &g), -1.25, 1e-6);
    /* dual clip: ratio 4, A = -1 -> min(4, 3) = 3, no gradient */
    c.eps_clip_c = 3.0f;
    assert_float_equal(one_token(&c, 4.0f, -1.0f, &g), 3.0, 1e-6);
    assert_float_equal(g, 0.0, 0.0);
    assert_float_equal(one_token(&c, 2.0f, -1.0f, &g), 2.0, 1e-6);
    c.eps_clip_c = 0.5f; /* slime asserts > 1 */
    const size_t offs[2] = {0, 1};
    const float one[1] = {1};
    sl_rl_loss_input in = {.n_samples = 1, .offsets = offs, .loss_mask = one, .logp = one,
                           .advantages = one};
    sl_rl_loss_metrics m;
    assert_int_equal(sl_rl_loss(&c, &in, &m, NULL, NULL), SL_EINVAL);
}

static void per_sample_and_per_token_reductions_differ_as_slime(void **state)
{
    (void)state;
    /* SFT on samples of 1 and 3 tokens: NLL 1 and (2,2,2). */
    const size_t offs[3] = {0, 1, 4};
    const float mask[4] = {1, 1, 1, 1}, lp[4] = {-1, -2, -2, -2};
    sl_rl_loss_input in = {.n_samples = 2, .offsets = offs, .loss_mask = mask, .logp = lp};
    sl_rl_loss_config c;
    sl_rl_loss_config_default(&c);
    c.loss_type = SL_LOSS_SFT;
    sl_rl_loss_metrics m;
    float g[4];
    assert_int_equal(sl_rl_loss(&c, &in, &m, g, NULL), 0);
    assert_float_equal(m.loss, (1.0 + 2.0) / 2.0, 1e-12); /* mean of sample means */
    assert_float_equal(g[0], -0.5, 1e-7);
    assert_float_equal(g[1], -1.0 / 6.0, 1e-7);
    c.calculate_per_token_loss = true;
    assert_int_equal(sl_rl_loss(&c, &in, &m, g, NULL), 0);
    assert_float_equal(m.loss, 7.0 / 4.0, 1e-12); /* sum over tokens / tokens */
    assert_float_equal(g[0], -0.25, 1e-7);
    c.denom = 8.0; /* a micro-batch of an 8-token global batch */
    assert_int_equal(sl_rl_loss(&c, &in, &m, g, NULL), 0);
    assert_float_equal(m.loss, 7.0 / 8.0, 1e-12);
}

static void tis_weight_is_truncated_at_tis_clip(void **state)
{
    (void)state;
    const size_t offs[2] = {0, 2};
    const float mask[2] = {1, 1}, lp[2] = {0, 0}, old[2] = {0, 0}, roll[2] = {-1.0f, -0.25f},
                adv[2] = {1, 1};
    sl_rl_loss_input in = {.n_samples = 1, .offsets = offs, .loss_mask = mask, .logp = lp,
                           .old_logp = old, .rollout_logp = roll, .advantages = adv};
    sl_rl_loss_config c;
    sl_rl_loss_config_default(&c);
    c.use_tis = true;
    sl_rl_loss_metrics m;
    float g[2];
    assert_int_equal(sl_rl_loss(&c, &in, &m, g, NULL), 0);
    /* weights min(e^1, 2) = 2 and e^0.25; pg = -w */
    double w2 = exp(0.25);
    assert_float_equal(m.pg_loss, -(2.0 + w2) / 2.0, 1e-9);
    assert_float_equal(m.tis, (exp(1.0) + w2) / 2.0, 1e-9);
    assert_float_equal(m.tis_clipfrac, 0.5, 1e-12);
    assert_float_equal(m.tis_weight, (2.0 + w2) / 2.0, 1e-9);
    assert_float_equal(g[0], -1.0, 1e-6);
    assert_float_equal(g[1], -w2 / 2.0, 1e-6);
    c.use_tis = true;
    in.rollout_logp = NULL;
    assert_int_equal(sl_rl_loss(&c, &in, &m, g, NULL), SL_EINVAL);
}

static void entropy_bonus_gradient_is_minus_coef_times_weight(void **state)
{
    (void)state;
    const size_t offs[2] = {0, 4};
    const float mask[4] = {1, 0, 1, 1}, lp[4] = {-1, -1, -1, -1}, adv[4] = {0, 0, 0, 0},
                ent[4] = {2, 9, 1, 3};
    sl_rl_loss_input in = {.n_samples = 1, .offsets = offs, .loss_mask = mask, .logp = lp,
                           .advantages = adv, .entropy = ent};
    sl_rl_loss_config c;
    sl_rl_loss_config_default(&c);
    c.entropy_coef = 0.1f;
    sl_rl_loss_metrics m;
    float g[4], ge[4];
    assert_int_equal(sl_rl_loss(&c, &in, &m, g, ge), 0);
    assert_float_equal(m.entropy_loss, 2.0, 1e-12); /* (2+1+3)/3, masked 9 ignored */
    assert_float_equal(m.loss, -0.2, 1e-7);
    assert_float_equal(ge[0], -0.1 / 3.0, 1e-7);
    assert_float_equal(ge[1], 0.0, 0.0);
}

static void gradient_matches_finite_differences(void **state)
{
    (void)state;
    /* Smooth configuration (no clip kinks): wide clip, k3 KL, entropy. */
    const size_t offs[3] = {0, 3, 7};
    const float mask[7] = {1, 1, 0, 1, 1, 1, 1}, old[7] = {-1, -.5f, -2, -.3f, -1.2f, -.8f, -2},
                ref[7] = {-1.1f, -.4f, -2, -.5f, -1, -.9f, -1.5f},
                adv[7] = {.7f, .7f, .7f, -1.2f, -1.2f, -1.2f, -1.2f};
    float lp[7] = {-.9f, -.6f, -2.2f, -.25f, -1.1f, -.7f, -2.1f};
    for (int est = 0; est < 2; est++) {
        sl_rl_loss_config c;
        sl_rl_loss_config_default(&c);
        c.estimator = est ? SL_ADV_GSPO : SL_ADV_GRPO;
        c.eps_clip = 0.9f;
        c.eps_clip_high = 5.0f;
        c.use_kl_loss = true;
        c.kl_loss_coef = 0.3f;
        c.kl_loss_type = SL_KL_K3;
        sl_rl_loss_input in = {.n_samples = 2, .offsets = offs, .loss_mask = mask, .logp = lp,
                               .old_logp = old, .ref_logp = ref, .advantages = adv};
        sl_rl_loss_metrics m;
        float g[7];
        assert_int_equal(sl_rl_loss(&c, &in, &m, g, NULL), 0);
        for (int t = 0; t < 7; t++) {
            const float h = 1e-2f, keep = lp[t];
            lp[t] = keep + h;
            assert_int_equal(sl_rl_loss(&c, &in, &m, NULL, NULL), 0);
            double up = m.loss;
            lp[t] = keep - h;
            assert_int_equal(sl_rl_loss(&c, &in, &m, NULL, NULL), 0);
            double dn = m.loss;
            lp[t] = keep;
            double fd = (up - dn) / ((double)(keep + h) - (double)(keep - h));
            assert_float_equal(g[t], fd, 2e-4);
        }
    }
}

static void dynamic_sampling_keeps_groups_with_nonzero_std(void **state)
{
    (void)state;
    const float r[12] = {1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0};
    uint8_t keep[3];
    size_t kept = 99;
    assert_int_equal(sl_rl_dynamic_sampling_filter(r, 12, 4, keep, &kept), 0);
    assert_int_equal(kept, 1);
    assert_int_equal(keep[0], 0);
    assert_int_equal(keep[1], 1);
    assert_int_equal(keep[2], 0);
    assert_int_equal(sl_rl_dynamic_sampling_filter(r, 12, 1, (uint8_t[12]){0}, &kept), 0);
    assert_int_equal(kept, 0); /* groups of one have no std */
    assert_int_equal(sl_rl_dynamic_sampling_filter(r, 12, 5, keep, &kept), SL_EINVAL);
    assert_int_equal(sl_rl_dynamic_sampling_filter(r, 12, 0, keep, &kept), SL_EINVAL);
}

static void bad_arguments_are_refused_not_crashed_on(void **state)
{
    (void)state;
    sl_rl_loss_config c;
    sl_rl_loss_config_default(&c);
    sl_rl_loss_metrics m;
    const size_t bad[3] = {0, 4, 2};
    const float x[4] = {0};
    sl_rl_loss_input in = {.n_samples = 2, .offsets = bad, .loss_mask = x, .logp = x, .advantages = x};
    assert_int_equal(sl_rl_loss(&c, &in, &m, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_rl_loss(NULL, &in, &m, NULL, NULL), SL_EINVAL);
    const size_t ok[2] = {0, 4};
    in.n_samples = 1;
    in.offsets = ok;
    in.advantages = NULL;
    assert_int_equal(sl_rl_loss(&c, &in, &m, NULL, NULL), SL_EINVAL);
    const size_t empty[1] = {0};
    in.n_samples = 0;
    in.offsets = empty;
    assert_int_equal(sl_rl_loss(&c, &in, &m, NULL, NULL), 0);
    assert_float_equal(m.loss, 0.0, 0.0);
    const float nanr[2] = {1.0f, NAN};
    float o[2];
    assert_int_equal(sl_rl_group_rewards(nanr, 2, 2, SL_ADV_GRPO, true, true, o), SL_EINVAL);
    assert_int_equal(sl_rl_group_rewards(x, 3, 2, SL_ADV_GRPO, true, true, o), SL_EINVAL);
    sl_adv_estimator e;
    assert_int_equal(sl_adv_estimator_from_name("reinforce_plus_plus_baseline", &e), 0);
    assert_int_equal(e, SL_ADV_REINFORCE_PLUS_PLUS_BASELINE);
    assert_int_equal(sl_adv_estimator_from_name("ppo", &e), SL_EINVAL);
    assert_int_equal(sl_adv_estimator_from_name(NULL, &e), SL_EINVAL);
    assert_string_equal(sl_adv_estimator_name((sl_adv_estimator)77), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loss_matches_every_pytorch_fixture),
        cmocka_unit_test(advantages_match_every_pytorch_fixture),
        cmocka_unit_test(grpo_divides_by_the_unbiased_group_std),
        cmocka_unit_test(dr_grpo_only_subtracts_the_group_mean),
        cmocka_unit_test(rloo_subtracts_the_mean_of_the_others),
        cmocka_unit_test(reinforce_pp_puts_the_reward_on_the_last_masked_token),
        cmocka_unit_test(kl_estimators_match_hand_values),
        cmocka_unit_test(ppo_clip_and_dual_clip_match_hand_values),
        cmocka_unit_test(per_sample_and_per_token_reductions_differ_as_slime),
        cmocka_unit_test(tis_weight_is_truncated_at_tis_clip),
        cmocka_unit_test(entropy_bonus_gradient_is_minus_coef_times_weight),
        cmocka_unit_test(gradient_matches_finite_differences),
        cmocka_unit_test(dynamic_sampling_keeps_groups_with_nonzero_std),
        cmocka_unit_test(bad_arguments_are_refused_not_crashed_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
