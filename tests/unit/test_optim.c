/*
 * test_optim.c — AdamW against hand-computed values and against PyTorch's
 * AdamW formula re-derived here in double, no-decay ranges, global-norm
 * clipping with clip_grad_norm_ semantics, and LR schedule values at key
 * steps (Megatron's get_lr).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "optim.h"

static void assert_close(double got, double want, double rtol, double atol) {
    double d = fabs(got - want);
    if (!(d <= atol + rtol * fabs(want))) {
        print_error("got %.10g want %.10g (diff %.3g)\n", got, want, d);
        fail();
    }
}

static void first_adamw_step_matches_the_hand_computed_value(void **state) {
    (void)state;
    /* step 1 with zero moments: m = 0.1 g, v = 0.001 g^2, bc1 = 0.1,
     * bc2 = 0.001, so denom = |g| + eps and
     * p1 = p (1 - lr wd) - lr g / (|g| + eps). */
    sl_adamw opt;
    sl_adamw_params hp = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
    assert_int_equal(sl_adamw_init(&opt, 3, &hp), 0);
    float p[3] = {1.0f, -2.0f, 0.5f};
    float g[3] = {0.5f, -0.25f, 0.0f};
    sl_adamw_step(&opt, p, g, 0.1);
    assert_int_equal(opt.step, 1);
    assert_close(p[0], 1.0 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8), 1e-6, 1e-7);   /* 0.899 */
    assert_close(p[1], -2.0 * 0.999 + 0.1 * 0.25 / (0.25 + 1e-8), 1e-6, 1e-7); /* -1.898 */
    assert_close(p[2], 0.5 * 0.999, 1e-7, 0);                                   /* g = 0 */
    assert_close(opt.m[0], 0.05, 1e-6, 0);
    assert_close(opt.v[0], 0.00025, 1e-6, 0);
    sl_adamw_fini(&opt);
    sl_adamw_fini(&opt); /* twice is safe */
}

/* PyTorch's _single_tensor_adam(decoupled_weight_decay=True), in double. */
static void torch_adamw_ref(double *p, const double *g, double *m, double *v, size_t n, double lr,
                            double b1, double b2, double eps, double wd, int step) {
    double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
    for (size_t i = 0; i < n; i++) {
        p[i] *= 1 - lr * wd;
        m[i] += (1 - b1) * (g[i] - m[i]);
        v[i] = v[i] * b2 + (1 - b2) * g[i] * g[i];
        double denom = sqrt(v[i]) / sqrt(bc2) + eps;
        p[i] -= lr / bc1 * m[i] / denom;
    }
}

static void ten_adamw_steps_follow_the_torch_formula(void **state) {
    (void)state;
    enum { N = 257 };
    float p[N], g[N];
    double rp[N], rg[N], rm[N] = {0}, rv[N] = {0};
    for (int i = 0; i < N; i++) rp[i] = p[i] = (float)sin(i * 0.37);
    sl_adamw opt;
    sl_adamw_params hp = {.beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.1};
    assert_int_equal(sl_adamw_init(&opt, N, &hp), 0);
    double maxrel = 0;
    for (int s = 1; s <= 10; s++) {
        double lr = 1e-2 * s / 10.0;
        for (int i = 0; i < N; i++) rg[i] = g[i] = (float)(cos(i * 0.11 + s) * (1 + (i % 7)));
        sl_adamw_step(&opt, p, g, lr);
        torch_adamw_ref(rp, rg, rm, rv, N, lr, 0.8, 0.95, 1e-6, 0.1, s);
        for (int i = 0; i < N; i++) {
            double rel = fabs(p[i] - rp[i]) / (fabs(rp[i]) + 1e-3);
            if (rel > maxrel) maxrel = rel;
        }
    }
    print_message("    max relative difference to the double reference: %.3g\n", maxrel);
    assert_true(maxrel < 1e-5);
    assert_int_equal(opt.step, 10);
    sl_adamw_fini(&opt);
}

static void adamw_update_on_a_slice_equals_the_object_step(void **state) {
    (void)state;
    float p1[16], p2[16], g[16], m[16] = {0}, v[16] = {0};
    for (int i = 0; i < 16; i++) p1[i] = p2[i] = (float)i - 7, g[i] = (float)(i % 5) - 2;
    sl_adamw opt;
    assert_int_equal(sl_adamw_init(&opt, 16, NULL), 0);
    for (int s = 1; s <= 3; s++) {
        sl_adamw_step(&opt, p1, g, 1e-3);
        sl_adamw_update(p2, g, m, v, 16, 1e-3, 0.9, 0.999, 1e-8, 0.01, s);
    }
    assert_memory_equal(p1, p2, sizeof p1);
    sl_adamw_fini(&opt);
}

static void no_decay_ranges_get_no_weight_decay(void **state) {
    (void)state;
    /* with zero gradients the Adam part is exactly 0, so only decay moves p */
    float p[10], g[10] = {0};
    for (int i = 0; i < 10; i++) p[i] = 1.0f;
    sl_adamw opt;
    sl_adamw_params hp;
    sl_adamw_params_default(&hp);
    hp.weight_decay = 0.5;
    assert_int_equal(sl_adamw_init(&opt, 10, &hp), 0);
    sl_range r[3] = {{6, 2}, {1, 2}, {2, 2}}; /* unordered, [1,3) and [2,4) merge */
    assert_int_equal(sl_adamw_set_no_decay(&opt, r, 3), 0);
    assert_int_equal(opt.n_no_decay, 2);
    sl_adamw_step(&opt, p, g, 0.1);
    const float d = (float)(1.0 - 0.1 * 0.5);
    float want[10] = {d, 1, 1, 1, d, d, 1, 1, d, d};
    for (int i = 0; i < 10; i++) assert_true(p[i] == want[i]);
    sl_range bad = {8, 3};
    assert_int_equal(sl_adamw_set_no_decay(&opt, &bad, 1), SL_ERANGE);
    sl_adamw_fini(&opt);
}

static void adamw_refuses_bad_hyper_parameters(void **state) {
    (void)state;
    sl_adamw opt;
    sl_adamw_params hp;
    sl_adamw_params_default(&hp);
    hp.beta1 = 1.0;
    assert_int_equal(sl_adamw_init(&opt, 4, &hp), SL_EINVAL);
    sl_adamw_params_default(&hp);
    hp.eps = -1;
    assert_int_equal(sl_adamw_init(&opt, 4, &hp), SL_EINVAL);
    sl_adamw_params_default(&hp);
    hp.weight_decay = NAN;
    assert_int_equal(sl_adamw_init(&opt, 4, &hp), SL_EINVAL);
    sl_adamw_fini(&opt);
}

static void grad_norm_is_the_global_l2_norm(void **state) {
    (void)state;
    float g[4] = {3, 0, 0, 4};
    assert_close(sl_grad_norm(g, 4), 5.0, 1e-12, 0);
    assert_close(sl_grad_norm(g, 0), 0.0, 0, 0);
}

static void clipping_scales_by_max_norm_over_norm_plus_1e6(void **state) {
    (void)state;
    float g[2] = {3, 4};
    double n = sl_grad_clip(g, 2, 1.0);
    assert_close(n, 5.0, 1e-12, 0);
    float c = (float)(1.0 / (5.0 + 1e-6));
    assert_true(g[0] == 3 * c && g[1] == 4 * c);
    float h[2] = {3, 4};
    assert_close(sl_grad_clip(h, 2, 10.0), 5.0, 1e-12, 0);
    assert_true(h[0] == 3 && h[1] == 4); /* below the limit: untouched */
    float z[2] = {3, 4};
    sl_grad_clip(z, 2, 0.0); /* disabled */
    assert_true(z[0] == 3 && z[1] == 4);
}

static void a_non_finite_norm_leaves_gradients_untouched(void **state) {
    (void)state;
    float g[3] = {1, INFINITY, 2};
    assert_true(isinf(sl_grad_clip(g, 3, 1.0)));
    assert_true(g[0] == 1 && g[2] == 2);
    float h[2] = {NAN, 1};
    assert_true(isnan(sl_grad_clip(h, 2, 1.0)));
    assert_true(h[1] == 1);
}

static void warmup_ramps_linearly_from_zero(void **state) {
    (void)state;
    sl_lr_schedule s = {.lr = 1e-3, .min_lr = 1e-4, .lr_warmup_steps = 10, .lr_decay_steps = 110,
                        .lr_decay_style = SL_LR_COSINE};
    assert_close(sl_lr_at(&s, 0), 0.0, 0, 0);
    assert_close(sl_lr_at(&s, 1), 1e-4, 1e-12, 0);
    assert_close(sl_lr_at(&s, 5), 5e-4, 1e-12, 0);
    assert_close(sl_lr_at(&s, 10), 1e-3, 1e-12, 0);
    s.lr_warmup_init = 1e-5;
    assert_close(sl_lr_at(&s, 0), 1e-5, 1e-12, 0);
}

static void cosine_decay_hits_its_key_points(void **state) {
    (void)state;
    sl_lr_schedule s = {.lr = 1e-3, .min_lr = 1e-4, .lr_warmup_steps = 10, .lr_decay_steps = 110,
                        .lr_decay_style = SL_LR_COSINE};
    assert_close(sl_lr_at(&s, 35), 1e-4 + 0.9e-3 * 0.5 * (cos(M_PI / 4) + 1), 1e-12, 0);
    assert_close(sl_lr_at(&s, 60), 5.5e-4, 1e-12, 0); /* half way: mean of lr and min_lr */
    assert_close(sl_lr_at(&s, 110), 1e-4, 1e-12, 0);
    assert_close(sl_lr_at(&s, 1000), 1e-4, 1e-12, 0);
}

static void linear_decay_hits_its_key_points(void **state) {
    (void)state;
    sl_lr_schedule s = {.lr = 2.0, .min_lr = 0.0, .lr_warmup_steps = 0, .lr_decay_steps = 100,
                        .lr_decay_style = SL_LR_LINEAR};
    assert_close(sl_lr_at(&s, 0), 2.0, 1e-12, 0);
    assert_close(sl_lr_at(&s, 25), 1.5, 1e-12, 0);
    assert_close(sl_lr_at(&s, 100), 0.0, 0, 1e-15);
    assert_close(sl_lr_at(&s, 150), 0.0, 0, 0);
}

static void constant_schedule_stays_at_lr_after_warmup(void **state) {
    (void)state;
    sl_lr_schedule s = {.lr = 1e-6, .min_lr = 0, .lr_warmup_steps = 4, .lr_decay_steps = 10,
                        .lr_decay_style = SL_LR_CONSTANT};
    assert_close(sl_lr_at(&s, 2), 0.5e-6, 1e-12, 0);
    assert_close(sl_lr_at(&s, 5), 1e-6, 0, 0);
    assert_close(sl_lr_at(&s, 1000000), 1e-6, 0, 0);
    sl_lr_decay_style st;
    assert_int_equal(sl_lr_decay_style_from_name("cosine", &st), 0);
    assert_int_equal(st, SL_LR_COSINE);
    assert_int_equal(sl_lr_decay_style_from_name("linear", &st), 0);
    assert_int_equal(st, SL_LR_LINEAR);
    assert_int_equal(sl_lr_decay_style_from_name("wsd", &st), SL_EINVAL);
    assert_string_equal(sl_lr_decay_style_name(SL_LR_CONSTANT), "constant");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_adamw_step_matches_the_hand_computed_value),
        cmocka_unit_test(ten_adamw_steps_follow_the_torch_formula),
        cmocka_unit_test(adamw_update_on_a_slice_equals_the_object_step),
        cmocka_unit_test(no_decay_ranges_get_no_weight_decay),
        cmocka_unit_test(adamw_refuses_bad_hyper_parameters),
        cmocka_unit_test(grad_norm_is_the_global_l2_norm),
        cmocka_unit_test(clipping_scales_by_max_norm_over_norm_plus_1e6),
        cmocka_unit_test(a_non_finite_norm_leaves_gradients_untouched),
        cmocka_unit_test(warmup_ramps_linearly_from_zero),
        cmocka_unit_test(cosine_decay_hits_its_key_points),
        cmocka_unit_test(linear_decay_hits_its_key_points),
        cmocka_unit_test(constant_schedule_stays_at_lr_after_warmup),
    };
    return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}
