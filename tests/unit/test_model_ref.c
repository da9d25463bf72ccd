/*
 * test_model_ref.c — the C transformer against PyTorch/transformers.
 *
 * Fixtures (tests/fixtures/model/{qwen2,qwen3,llama}/, made by
 * tests/fixtures/make_model_fixtures.py with torch 2.11 / transformers
 * 5.17 on the CPU in float32): the HF folder, and reference.safetensors
 * with a packed batch of 3 sequences, HF's logits, next-token log-probs,
 * entropies, mean CE loss, every parameter's gradient, and the losses of
 * ten AdamW steps (without and with clipping at 1.0).
 *
 * Tolerances (relative error = max|a-b| / max(max|b|, 1e-12)):
 *   logits 1e-4 relative, log-probs and entropy 1e-4 absolute, loss 1e-5,
 *   each gradient 1e-3 relative, AdamW losses 1e-4.
 * Skips (77) when the fixture files are missing.
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

#include "base.h"
#include "model.h"
#include "optim.h"
#include "safetensors.h"

static char g_root[2048];

static void fixture_dir(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/tests/fixtures/model/%s", g_root, name);
}

static double rel_err(const float *a, const float *b, size_t n, double *maxabs)
{
    double md = 0.0, mb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md)) md = d; /* NaN propagates as a failure */
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    if (maxabs) *maxabs = md;
    return md / (mb > 1e-12 ? mb : 1e-12);
}

typedef struct ref {
    sl_safetensors *st;
    sl_model *m;
    int T, n_seq;
    int32_t *ids, *cu;
} ref;

static float *ref_tensor(ref *r, const char *name, size_t *n)
{
    const sl_st_tensor *t = sl_safetensors_find(r->st, name);
    assert_non_null(t);
    float *d = malloc(sizeof(float) * (size_t)t->numel);
    assert_non_null(d);
    sl_st_tensor_to_f32(t, d);
    if (n) *n = (size_t)t->numel;
    return d;
}

static void ref_open(ref *r, const char *name)
{
    char dir[2300], path[2400], err[SL_MODEL_ERRLEN];
    memset(r, 0, sizeof(*r));
    fixture_dir(dir, sizeof(dir), name);
    snprintf(path, sizeof(path), "%s/reference.safetensors", dir);
    int rc = sl_safetensors_open(path, &r->st, err, sizeof(err));
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    rc = sl_model_load_hf(dir, sl_ops_cpu(), 64, &r->m, err, sizeof(err));
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    size_t n, nc;
    float *ids = ref_tensor(r, "input_ids", &n), *cu = ref_tensor(r, "cu_seqlens", &nc);
    r->T = (int)n;
    r->n_seq = (int)nc - 1;
    r->ids = malloc(sizeof(int32_t) * n);
    r->cu = malloc(sizeof(int32_t) * nc);
    for (size_t i = 0; i < n; i++) r->ids[i] = (int32_t)ids[i];
    for (size_t i = 0; i < nc; i++) r->cu[i] = (int32_t)cu[i];
    free(ids);
    free(cu);
    assert_int_equal(r->cu[r->n_seq], r->T);
}

static void ref_close(ref *r)
{
    sl_model_free(r->m);
    sl_safetensors_close(r->st);
    free(r->ids);
    free(r->cu);
}

static void check_forward(const char *name)
{
    ref r;
    ref_open(&r, name);
    int T = r.T, V = r.m->cfg.vocab_size;
    size_t n;
    float *ref_logits = ref_tensor(&r, "logits", &n);
    assert_int_equal(n, (size_t)T * V);
    float *logits = malloc(sizeof(float) * n);
    assert_int_equal(sl_model_forward_logits(r.m, r.ids, r.cu, r.n_seq, logits), 0);
    double mad, rel = rel_err(logits, ref_logits, n, &mad);
    printf("    %s logits: rel %.3g (max abs %.3g)\n", name, rel, mad);
    assert_true(rel < 1e-4);

    float *ref_lp = ref_tensor(&r, "logprobs", NULL), *ref_ent = ref_tensor(&r, "entropy", NULL);
    float *ref_loss = ref_tensor(&r, "loss", NULL);
    float *lp = malloc(sizeof(float) * T), *ent = malloc(sizeof(float) * T);
    double loss = 0;
    assert_int_equal(sl_model_forward(r.m, r.ids, r.cu, r.n_seq, NULL, lp, ent, &loss), 0);
    double mlp, mle;
    rel_err(lp, ref_lp, T, &mlp);
    rel_err(ent, ref_ent, T, &mle);
    printf("    %s logprobs max abs %.3g, entropy max abs %.3g, loss %.7f vs %.7f (diff %.3g)\n",
           name, mlp, mle, loss, ref_loss[0], fabs(loss - ref_loss[0]));
    assert_true(mlp < 1e-4);
    assert_true(mle < 1e-4);
    assert_true(fabs(loss - ref_loss[0]) < 1e-5);

    /* gradients of the mean CE loss */
    sl_model_zero_grad(r.m);
    double l2;
    assert_int_equal(sl_model_backward_ce(r.m, NULL, &l2), 0);
    assert_true(fabs(l2 - loss) < 1e-6);
    double worst = 0.0;
    const char *worst_name = "";
    int n_checked = 0;
    for (size_t i = 0; i < sl_safetensors_count(r.st); i++) {
        const sl_st_tensor *t = sl_safetensors_at(r.st, i);
        if (strncmp(t->name, "grad.", 5) != 0) continue;
        const sl_model_tensor *mt = sl_model_find_tensor(r.m, t->name + 5);
        if (!mt) fprintf(stderr, "no model tensor for %s\n", t->name);
        assert_non_null(mt);
        assert_int_equal((size_t)t->numel, mt->numel);
        float *gr = malloc(sizeof(float) * mt->numel);
        sl_st_tensor_to_f32(t, gr);
        double e = rel_err(r.m->grads_mem + mt->offset, gr, mt->numel, NULL);
        if (e > 1e-3) printf("    %s grad %s: rel %.3g\n", name, mt->name, e);
        if (!(e <= worst)) worst = e, worst_name = mt->name;
        n_checked++;
        free(gr);
    }
    printf("    %s gradients: %d tensors, worst rel %.3g (%s)\n", name, n_checked, worst,
           worst_name);
    assert_int_equal(n_checked, r.m->n_tensors);
    assert_true(worst < 1e-3);
    free(logits);
    free(ref_logits);
    free(ref_lp);
    free(ref_ent);
    free(ref_loss);
    free(lp);
    free(ent);
    ref_close(&r);
}

static void check_adamw(const char *name, int clip)
{
    ref r;
    ref_open(&r, name);
    float *want = ref_tensor(&r, clip ? "adam_losses_clip" : "adam_losses", NULL);
    float *want_norm = clip ? ref_tensor(&r, "adam_gradnorm_clip", NULL) : NULL;
    sl_adamw opt;
    sl_adamw_params p = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    assert_int_equal(sl_adamw_init(&opt, r.m->n_params, &p), 0);
    double worst = 0.0, worst_norm = 0.0;
    for (int step = 0; step < 10; step++) {
        double loss;
        sl_model_zero_grad(r.m);
        assert_int_equal(sl_model_forward(r.m, r.ids, r.cu, r.n_seq, NULL, NULL, NULL, &loss), 0);
        assert_int_equal(sl_model_backward_ce(r.m, NULL, NULL), 0);
        if (clip) {
            double gn = sl_grad_clip(r.m->grads_mem, r.m->n_params, 1.0);
            double e = fabs(gn - want_norm[step]) / want_norm[step];
            if (e > worst_norm) worst_norm = e;
        }
        sl_adamw_step(&opt, r.m->params_mem, r.m->grads_mem, 1e-3);
        double d = fabs(loss - want[step]);
        if (d > worst) worst = d;
        if (step == 0 || step == 9)
            printf("    %s adamw%s step %d: loss %.6f vs %.6f\n", name, clip ? "+clip" : "",
                   step, loss, want[step]);
    }
    printf("    %s adamw%s: max loss diff %.3g%s", name, clip ? "+clip" : "", worst,
           clip ? "" : "\n");
    if (clip) printf(", grad-norm rel diff %.3g\n", worst_norm);
    assert_true(worst < 1e-4);
    if (clip) assert_true(worst_norm < 1e-3);
    sl_adamw_fini(&opt);
    free(want);
    free(want_norm);
    ref_close(&r);
}

static void qwen2_forward_and_gradients_match_transformers(void **s) { (void)s; check_forward("qwen2"); }
static void qwen3_forward_and_gradients_match_transformers(void **s) { (void)s; check_forward("qwen3"); }
static void llama3_forward_and_gradients_match_transformers(void **s) { (void)s; check_forward("llama"); }
static void qwen2_ten_adamw_steps_match_torch(void **s) { (void)s; check_adamw("qwen2", 0); }
static void qwen3_ten_adamw_steps_match_torch(void **s) { (void)s; check_adamw("qwen3", 0); }
static void llama3_ten_adamw_steps_match_torch(void **s) { (void)s; check_adamw("llama", 0); }
static void llama3_ten_clipped_adamw_steps_match_torch(void **s) { (void)s; check_adamw("llama", 1); }
static void qwen2_ten_clipped_adamw_steps_match_torch(void **s) { (void)s; check_adamw("qwen2", 1); }

int main(void)
{
    const char *root = getenv("SL_ROOT");
    snprintf(g_root, sizeof(g_root), "%s", root ? root : ".");
    static const char *names[] = {"qwen2", "qwen3", "llama"};
    for (size_t i = 0; i < 3; i++) {
        char dir[2300], path[2400];
        fixture_dir(dir, sizeof(dir), names[i]);
        snprintf(path, sizeof(path), "%s/reference.safetensors", dir);
        if (access(path, R_OK) != 0) {
            printf("fixture %s missing: skipped\n", path);
            return 77;
        }
    }
    sl_log_init("test_model_ref", SL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(qwen2_forward_and_gradients_match_transformers),
        cmocka_unit_test(qwen3_forward_and_gradients_match_transformers),
        cmocka_unit_test(llama3_forward_and_gradients_match_transformers),
        cmocka_unit_test(qwen2_ten_adamw_steps_match_torch),
        cmocka_unit_test(qwen3_ten_adamw_steps_match_torch),
        cmocka_unit_test(llama3_ten_adamw_steps_match_torch),
        cmocka_unit_test(qwen2_ten_clipped_adamw_steps_match_torch),
        cmocka_unit_test(llama3_ten_clipped_adamw_steps_match_torch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
