/*
 * test_gpu_model.c — the mixed-precision GPU model (kernels/gpu_model.h)
 * against the CPU fp32 reference (ops.h / model.h):
 *  - op by op on fresh random inputs (rounded to bf16 first on both sides):
 *    flash attention forward and backward over packed variable-length
 *    sequences (head_dim 64 and 128, GQA), the fused LM head (log-prob,
 *    entropy, dh, dW), RMSNorm and SwiGLU forward and backward;
 *  - whole models: log-probs, entropies, loss and every parameter gradient
 *    of the same weights and batch on both (a small Qwen2 tied and untied,
 *    and the real Qwen2.5-0.5B widths with 2 layers and the full 151,936
 *    vocabulary), with an RL-style backward (random dlogprob and dentropy);
 *    and Qwen3 with its per-head q/k RMSNorm);
 *  - AdamW on the GPU lowers the loss of a repeated batch;
 *  - the trainer's hooks: logit scale (1/temperature), gradient clipping,
 *    reference snapshot, parameters and moments through the host layout.
 * Every comparison prints ||gpu - cpu|| / ||cpu||; the bound is 1e-2 for
 * ops and forward outputs, 3e-2 for whole-model gradients (bf16 storage of
 * activations through several layers); NaN never passes.
 * Exit: 0 pass, 1 failure, 77 no CUDA device / built without CUDA.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "gpu_model.h"
#include "model.h"
#include "ops.h"

#ifndef SL_HAVE_CUDA
int main(void)
{
    printf("built without CUDA: skipped\n");
    return 77;
}
#else
#define GPU_TEST_SEED 0x243f6a8885a308d3ull
#include "gpu_test.h"

static float bfr(float x) /* round to bf16, nearest even */
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}
static float *randv(size_t n, double scale)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = bfr((float)((urand() * 2.0 - 1.0) * scale));
    return p;
}
static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* ------------------------------------------------------------ op tests */

static void test_attention(int HD)
{
    const sl_ops *cpu = sl_ops_cpu();
    int NH = 6, NKV = 2, lens[] = {1, 63, 64, 65, 200, 130, 7}, ns = 7;
    int32_t cu[8] = {0};
    for (int s = 0; s < ns; s++) cu[s + 1] = cu[s] + lens[s];
    int T = cu[ns];
    size_t QN = (size_t)T * NH * HD, KN = (size_t)T * NKV * HD;
    float *q = randv(QN, 1.5), *k = randv(KN, 1.5), *v = randv(KN, 1.0), *dout = randv(QN, 1.0);
    float *o1 = zeros(QN), *l1 = zeros((size_t)T * NH), *dq1 = zeros(QN), *dk1 = zeros(KN), *dv1 = zeros(KN);
    float *o2 = zeros(QN), *l2 = zeros((size_t)T * NH), *dq2 = zeros(QN), *dk2 = zeros(KN), *dv2 = zeros(KN);
    float sc = 1.0f / sqrtf((float)HD);
    cpu->attention_fwd(o1, l1, q, k, v, cu, ns, NH, NKV, HD, sc);
    cpu->attention_bwd(dq1, dk1, dv1, dout, q, k, v, o1, l1, cu, ns, NH, NKV, HD, sc);
    sl_gpu_test_attention(o2, l2, dq2, dk2, dv2, dout, q, k, v, cu, ns, NH, NKV, HD, sc);
    char nm[64];
    printf("attention HD=%d (T=%d, 7 packed sequences, 6 heads / 2 kv)\n", HD, T);
    snprintf(nm, sizeof nm, "out");
    check(nm, o2, o1, QN, 1e-2);
    check("lse", l2, l1, (size_t)T * NH, 1e-2);
    check("dq", dq2, dq1, QN, 1e-2);
    check("dk", dk2, dk1, KN, 1e-2);
    check("dv", dv2, dv1, KN, 1e-2);
    float *ps[] = {q, k, v, dout, o1, l1, dq1, dk1, dv1, o2, l2, dq2, dk2, dv2};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
}

static void test_head(void)
{
    const sl_ops *cpu = sl_ops_cpu();
    int T = 150, C = 128, V = 20000;
    float *h = randv((size_t)T * C, 1.0), *W = randv((size_t)V * C, 0.2);
    int32_t *tg = malloc(4 * T);
    for (int t = 0; t < T; t++) tg[t] = t % 17 == 5 ? -1 : (int32_t)(urand() * V);
    float *dlp = randv(T, 1.0), *den = randv(T, 0.5);
    float *lp1 = zeros(T), *en1 = zeros(T), *lse1 = zeros(T), *dh1 = zeros((size_t)T * C), *dW1 = zeros((size_t)V * C);
    float *lp2 = zeros(T), *en2 = zeros(T), *dh2 = zeros((size_t)T * C), *dW2 = zeros((size_t)V * C);
    float *scratch = zeros(SL_LMHEAD_SCRATCH);
    cpu->lmhead_logprob_fwd(lp1, en1, lse1, h, W, tg, T, C, V, scratch);
    cpu->lmhead_logprob_bwd(dh1, dW1, dlp, den, h, W, tg, lse1, en1, T, C, V, scratch);
    sl_gpu_test_head(lp2, en2, dh2, dW2, dlp, den, h, W, tg, T, C, V);
    printf("LM head (T=%d, C=%d, V=%d, some targets -1)\n", T, C, V);
    check("logprob", lp2, lp1, T, 1e-2);
    check("entropy", en2, en1, T, 1e-2);
    check("dh", dh2, dh1, (size_t)T * C, 1e-2);
    check("dW", dW2, dW1, (size_t)V * C, 1e-2);
    float *ps[] = {h, W, dlp, den, lp1, en1, lse1, dh1, dW1, lp2, en2, dh2, dW2, scratch};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
    free(tg);
}

static void test_norm_swiglu(void)
{
    const sl_ops *cpu = sl_ops_cpu();
    int T = 333, C = 896, F = 1000;
    float *x = randv((size_t)T * C, 2.0), *w = randv(C, 1.0), *dout = randv((size_t)T * C, 1.0);
    for (int c = 0; c < C; c++) w[c] = bfr(1.0f + w[c] * 0.3f);
    float *o1 = zeros((size_t)T * C), *r1 = zeros(T), *dx1 = zeros((size_t)T * C), *dw1 = zeros(C);
    float *o2 = zeros((size_t)T * C), *dx2 = zeros((size_t)T * C), *dw2 = zeros(C);
    cpu->rmsnorm_fwd(o1, r1, x, w, T, C, 1e-6f);
    cpu->rmsnorm_bwd(dx1, dw1, dout, x, w, r1, T, C);
    sl_gpu_test_rmsnorm(o2, dx2, dw2, x, w, dout, T, C, 1e-6f);
    printf("RMSNorm (T=%d, C=%d)\n", T, C);
    check("out", o2, o1, (size_t)T * C, 1e-2);
    check("dx", dx2, dx1, (size_t)T * C, 1e-2);
    check("dw", dw2, dw1, C, 1e-2);
    size_t n = (size_t)T * F;
    float *gu = randv(2 * n, 3.0), *da = randv(n, 1.0);
    float *a1 = zeros(n), *dg1 = zeros(n), *du1 = zeros(n), *a2 = zeros(n), *dgu2 = zeros(2 * n);
    float *g = zeros(n), *u = zeros(n);
    for (int t = 0; t < T; t++)
        for (int f = 0; f < F; f++) g[(size_t)t * F + f] = gu[(size_t)t * 2 * F + f], u[(size_t)t * F + f] = gu[(size_t)t * 2 * F + F + f];
    cpu->swiglu_fwd(a1, g, u, n);
    cpu->swiglu_bwd(dg1, du1, da, g, u, n);
    sl_gpu_test_swiglu(a2, dgu2, gu, da, T, F);
    for (int t = 0; t < T; t++)
        for (int f = 0; f < F; f++) g[(size_t)t * F + f] = dgu2[(size_t)t * 2 * F + f], u[(size_t)t * F + f] = dgu2[(size_t)t * 2 * F + F + f];
    printf("SwiGLU (T=%d, F=%d)\n", T, F);
    check("act", a2, a1, n, 1e-2);
    check("dgate", g, dg1, n, 1e-2);
    check("dup", u, du1, n, 1e-2);
    float *ps[] = {x, w, dout, o1, r1, dx1, dw1, o2, dx2, dw2, gu, da, a1, dg1, du1, a2, dgu2, g, u};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
}

/* ---------------------------------------------------------- whole model */

static void perturb(sl_model *m)
{
    /* norms 1 +- 0.2 and biases +-0.05, so their paths are exercised */
    for (int i = 0; i < m->n_tensors; i++) {
        const sl_model_tensor *t = &m->tensors[i];
        if (!t->no_decay) continue;
        int is_norm = strstr(t->name, "norm") != NULL;
        for (size_t j = 0; j < t->numel; j++)
            m->params_mem[t->offset + j] = bfr((float)(is_norm ? 1.0 + (urand() - 0.5) * 0.4 : (urand() - 0.5) * 0.1));
    }
    /* matrices to bf16 values so both sides start from the same weights */
    for (size_t j = 0; j < m->n_params; j++) m->params_mem[j] = bfr(m->params_mem[j]);
}

static void test_model(const char *name, sl_hf_config *c, const int *lens, int ns, int train_steps)
{
    printf("model %s (C=%d L=%d NH=%d NKV=%d HD=%d F=%d V=%d tied=%d)\n", name, c->hidden_size,
           c->num_hidden_layers, c->num_attention_heads, c->num_key_value_heads, c->head_dim,
           c->intermediate_size, c->vocab_size, c->tie_word_embeddings);
    int32_t cu[64] = {0};
    for (int s = 0; s < ns; s++) cu[s + 1] = cu[s] + lens[s];
    int T = cu[ns];
    char err[256];
    sl_model *m = NULL;
    if (sl_model_new(c, sl_ops_cpu(), T, 7, &m, err, sizeof err)) {
        printf("  sl_model_new: %s FAIL\n", err);
        g_fail = 1;
        return;
    }
    perturb(m);
    sl_gpum *g = NULL;
    if (sl_gpum_new(m, T, &g, err, sizeof err)) {
        printf("  sl_gpum_new: %s FAIL\n", err);
        g_fail = 1;
        sl_model_free(m);
        return;
    }
    int32_t *tok = malloc(4 * T);
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(urand() * c->vocab_size);
    float *lp1 = zeros(T), *en1 = zeros(T), *lp2 = zeros(T), *en2 = zeros(T);
    double loss1 = 0, loss2 = 0;
    int rc1 = sl_model_forward(m, tok, cu, ns, NULL, lp1, en1, &loss1);
    int rc2 = sl_gpum_forward(g, tok, cu, ns, NULL, lp2, en2, &loss2);
    if (rc1 || rc2) {
        printf("  forward rc %d / %d FAIL\n", rc1, rc2);
        g_fail = 1;
        goto out;
    }
    check("logprobs", lp2, lp1, T, 1e-2);
    check("entropy", en2, en1, T, 1e-2);
    printf("  loss cpu %.5f gpu %.5f\n", loss1, loss2);
    if (fabs(loss1 - loss2) > 1e-2 * fabs(loss1)) g_fail = 1, printf("  loss FAIL\n");
    /* RL-style backward: random dlogprob and dentropy */
    float *dlp = randv(T, 1.0 / T), *den = randv(T, 0.5 / T);
    sl_model_zero_grad(m);
    sl_gpum_zero_grad(g);
    sl_model_backward(m, dlp, den);
    sl_gpum_backward(g, dlp, den);
    float *gg = zeros(m->n_params);
    sl_gpum_grads_to_host(g, gg);
    double worst = 0;
    const char *wn = "";
    int bad = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const sl_model_tensor *t = &m->tensors[i];
        double rel = rel_err(gg + t->offset, m->grads_mem + t->offset, t->numel);
        if (!isfinite(rel)) bad = 1;
        else if (rel > worst) worst = rel, wn = t->name;
    }
    int ok = !bad && worst < 3e-2;
    printf("  grads (%d tensors, dlogprob+dentropy): worst rel %.2e (%s)%s %s\n", m->n_tensors, worst, wn,
           bad ? " NaN" : "", ok ? "ok" : "FAIL");
    if (!ok) g_fail = 1;
    check("all grads (flat)", gg, m->grads_mem, m->n_params, 3e-2);
    /* fused forward + CE backward against the CPU's forward + backward_ce */
    sl_model_zero_grad(m);
    sl_gpum_zero_grad(g);
    double lc = 0, lg = 0;
    sl_model_forward(m, tok, cu, ns, NULL, NULL, NULL, &lc);
    sl_model_backward_ce(m, NULL, NULL);
    float *lpf = zeros(T);
    if (sl_gpum_forward_backward_ce(g, tok, cu, ns, NULL, lpf, &lg)) g_fail = 1, printf("  fused rc FAIL\n");
    sl_gpum_grads_to_host(g, gg);
    check("fused CE: logprobs", lpf, lp1, T, 1e-2);
    check("fused CE: all grads (flat)", gg, m->grads_mem, m->n_params, 3e-2);
    if (fabs(lc - lg) > 1e-2 * fabs(lc)) g_fail = 1, printf("  fused loss FAIL\n");
    free(lpf);
    free(dlp), free(den), free(gg);
    if (train_steps > 0) {
        sl_gpum_zero_grad(g);
        double l0 = 0, l = 0;
        for (int i = 0; i < train_steps; i++) {
            sl_gpum_forward(g, tok, cu, ns, NULL, NULL, NULL, &l);
            if (i == 0) l0 = l;
            sl_gpum_backward_ce(g, NULL);
            sl_gpum_adamw_step(g, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.01f, 1.0f, NULL);
        }
        sl_gpum_forward(g, tok, cu, ns, NULL, NULL, NULL, &l);
        int dec = isfinite(l) && l < l0 - 0.5;
        printf("  AdamW %d steps on one batch: loss %.4f -> %.4f %s\n", train_steps, l0, l, dec ? "ok" : "FAIL");
        if (!dec) g_fail = 1;
    }
out:
    free(tok), free(lp1), free(en1), free(lp2), free(en2);
    sl_gpum_free(g);
    sl_model_free(m);
}

/* What the GPU trainer (actors/trainer_core.c) uses around the steps: the
 * logit scale (1/temperature) against the CPU model with its final norm
 * scaled the same way, log-probs and gradients; parameters and AdamW
 * moments round-trip through the host layout; the reference snapshot keeps
 * the old weights after an update and refuses a backward. */
static void test_trainer_hooks(void)
{
    sl_hf_config c;
    qwen3(&c, 128, 2, 2, 1, 64, 256, 500, 1);
    printf("trainer hooks (qwen3 C=128 L=2)\n");
    int32_t cu[3] = {0, 40, 70};
    int T = 70;
    char err[256];
    sl_model *m = NULL;
    sl_gpum *g = NULL;
    if (sl_model_new(&c, sl_ops_cpu(), T, 3, &m, err, sizeof err) ||
        sl_gpum_new(m, T, &g, err, sizeof err)) {
        printf("  new: %s FAIL\n", err);
        g_fail = 1;
        sl_model_free(m);
        return;
    }
    int32_t tok[70];
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(urand() * c.vocab_size);
    float temp = 0.7f;
    /* CPU twin of the scale: final norm weight / T */
    for (int i = 0; i < c.hidden_size; i++) m->w.final_norm[i] /= temp;
    sl_gpum_set_logit_scale(g, 1.0f / temp);
    float lp1[70], lp2[70], en1[70], en2[70];
    sl_model_forward(m, tok, cu, 2, NULL, lp1, en1, NULL);
    sl_gpum_forward(g, tok, cu, 2, NULL, lp2, en2, NULL);
    check("scaled logprobs", lp2, lp1, T, 1e-2);
    check("scaled entropy", en2, en1, T, 1e-2);
    float *dlp = randv(T, 1.0 / T);
    sl_model_zero_grad(m);
    sl_gpum_zero_grad(g);
    sl_model_backward(m, dlp, NULL);
    sl_gpum_backward(g, dlp, NULL);
    /* d/dw of the unscaled final norm = d/d(w/T) / T on the CPU side */
    for (int i = 0; i < c.hidden_size; i++) m->g.final_norm[i] /= temp;
    for (int i = 0; i < c.hidden_size; i++) m->w.final_norm[i] *= temp;
    float *gg = zeros(m->n_params);
    sl_gpum_grads_to_host(g, gg);
    check("scaled: all grads (flat)", gg, m->grads_mem, m->n_params, 3e-2);
    double n1 = sl_gpum_clip_grad(g, 0.0f);
    double n0 = 0;
    for (size_t i = 0; i < m->n_params; i++) n0 += (double)gg[i] * gg[i];
    n0 = sqrt(n0);
    int ok = fabs(n1 - n0) <= 1e-4 * n0;
    printf("  grad norm gpu %.6g host %.6g %s\n", n1, n0, ok ? "ok" : "FAIL");
    if (!ok) g_fail = 1;
    sl_gpum_clip_grad(g, (float)(n0 / 2));
    double n2 = sl_gpum_clip_grad(g, 0.0f);
    ok = fabs(n2 - n0 / 2) <= 1e-3 * n0;
    printf("  clipped to half: %.6g %s\n", n2, ok ? "ok" : "FAIL");
    if (!ok) g_fail = 1;
    /* snapshot, one AdamW step: the snapshot still gives the old log-probs */
    sl_gpum_set_logit_scale(g, 1.0f);
    float lp_old[70], lp_new[70], lp_ref[70];
    sl_gpum_forward(g, tok, cu, 2, NULL, lp_old, NULL, NULL);
    if (sl_gpum_ref_snapshot(g)) g_fail = 1, printf("  snapshot FAIL\n");
    sl_gpum_backward_ce(g, NULL);
    sl_gpum_set_step(g, 0);
    sl_gpum_adamw_step(g, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.0f, 0.0f, NULL);
    ok = sl_gpum_get_step(g) == 1;
    sl_gpum_forward(g, tok, cu, 2, NULL, lp_new, NULL, NULL);
    sl_gpum_use_ref(g, 1);
    sl_gpum_forward(g, tok, cu, 2, NULL, lp_ref, NULL, NULL);
    ok = ok && sl_gpum_backward(g, dlp, NULL) == SL_EINVAL;
    sl_gpum_use_ref(g, 0);
    double dn = 0, dr = 0;
    for (int t = 0; t < T; t++) dn += fabs(lp_new[t] - lp_old[t]), dr += fabs(lp_ref[t] - lp_old[t]);
    ok = ok && dn > 1e-3 && dr == 0;
    printf("  reference snapshot: |new-old| %.3g, |ref-old| %.3g, backward refused %s\n", dn, dr, ok ? "ok" : "FAIL");
    if (!ok) g_fail = 1;
    /* host round trips */
    float *p = zeros(m->n_params), *mm = zeros(m->n_params), *vv = zeros(m->n_params);
    float *p2 = zeros(m->n_params), *mm2 = zeros(m->n_params), *vv2 = zeros(m->n_params);
    sl_gpum_params_to_host(g, p);
    sl_gpum_moments_to_host(g, mm, vv);
    double vs = 0;
    for (size_t i = 0; i < m->n_params; i++) vs += vv[i];
    for (size_t i = 0; i < m->n_params; i++) p[i] += 0.25f, mm[i] *= 2.0f;
    sl_gpum_params_from_host(g, p);
    sl_gpum_moments_from_host(g, mm, vv);
    sl_gpum_params_to_host(g, p2);
    sl_gpum_moments_to_host(g, mm2, vv2);
    ok = vs > 0 && !memcmp(p, p2, 4 * m->n_params) && !memcmp(mm, mm2, 4 * m->n_params) &&
         !memcmp(vv, vv2, 4 * m->n_params);
    printf("  params and moments round-trip through the host layout %s\n", ok ? "ok" : "FAIL");
    if (!ok) g_fail = 1;
    free(p), free(mm), free(vv), free(p2), free(mm2), free(vv2), free(gg), free(dlp);
    sl_gpum_free(g);
    sl_model_free(m);
}

/* [trainer] recompute_activations: the same gradients (the layer forward run
 * again in backward is the same kernels on the same inputs) with less
 * activation memory */
static void test_recompute(void)
{
    printf("activation recomputation (sl_gpum_opts.recompute)\n");
    sl_hf_config c;
    qwen3(&c, 256, 3, 4, 2, 64, 512, 1000, 1);
    int lens[] = {37, 64, 1, 130, 200};
    int32_t cu[6] = {0};
    for (int s = 0; s < 5; s++) cu[s + 1] = cu[s] + lens[s];
    int T = cu[5];
    char err[256];
    sl_model *m = NULL;
    sl_gpum *g[2] = {NULL, NULL};
    if (sl_model_new(&c, sl_ops_cpu(), T, 11, &m, err, sizeof err)) {
        printf("  sl_model_new: %s FAIL\n", err);
        g_fail = 1;
        return;
    }
    perturb(m);
    for (int k = 0; k < 2; k++) {
        sl_gpum_opts o = {.recompute = k};
        int rc = sl_gpum_new_opts(m, T, &o, &g[k], err, sizeof err);
        if (rc) {
            printf("  sl_gpum_new: %s FAIL\n", err);
            g_fail = 1;
            goto out;
        }
    }
    int32_t tok[512];
    for (int t = 0; t < T; t++) tok[t] = (int32_t)(urand() * c.vocab_size);
    float *dlp = randv(T, 1.0 / T), *den = randv(T, 0.5 / T);
    float *lp[2] = {zeros(T), zeros(T)}, *gr[2] = {zeros(m->n_params), zeros(m->n_params)};
    float *gc[2] = {zeros(m->n_params), zeros(m->n_params)};
    for (int k = 0; k < 2; k++) {
        sl_gpum_zero_grad(g[k]);
        if (sl_gpum_forward(g[k], tok, cu, 5, NULL, lp[k], NULL, NULL) || sl_gpum_backward(g[k], dlp, den))
            g_fail = 1, printf("  rc FAIL\n");
        sl_gpum_grads_to_host(g[k], gr[k]);
        sl_gpum_zero_grad(g[k]);
        if (sl_gpum_forward_backward_ce(g[k], tok, cu, 5, NULL, NULL, NULL)) g_fail = 1, printf("  fused rc FAIL\n");
        sl_gpum_grads_to_host(g[k], gc[k]);
    }
    check("recompute: logprobs", lp[1], lp[0], T, 1e-6);
    check("recompute: RL grads (flat)", gr[1], gr[0], m->n_params, 1e-5);
    check("recompute: fused CE grads (flat)", gc[1], gc[0], m->n_params, 1e-5);
    sl_gpum_info i0, i1;
    sl_gpum_get_info(g[0], &i0);
    sl_gpum_get_info(g[1], &i1);
    int less = i1.device_bytes < i0.device_bytes;
    printf("  device memory %.1f -> %.1f MiB %s\n", i0.device_bytes / 1048576.0, i1.device_bytes / 1048576.0,
           less ? "ok" : "FAIL");
    if (!less) g_fail = 1;
    free(dlp), free(den);
    for (int k = 0; k < 2; k++) free(lp[k]), free(gr[k]), free(gc[k]);
out:
    sl_gpum_free(g[0]);
    sl_gpum_free(g[1]);
    sl_model_free(m);
}

int main(void)
{
    int rc = gpu_test_start("test_gpu_model");
    if (rc) return rc;
    test_attention(64);
    test_attention(128);
    test_head();
    test_norm_swiglu();
    sl_hf_config c;
    int lens[] = {37, 64, 1, 130, 200};
    qwen2(&c, 256, 3, 4, 2, 64, 512, 1000, 1);
    test_model("small qwen2 tied", &c, lens, 5, 20);
    qwen2(&c, 256, 2, 2, 1, 128, 512, 1000, 0);
    test_model("small qwen2 untied hd128", &c, lens, 5, 0);
    int lens2[] = {300, 200, 12};
    qwen2(&c, 896, 2, 14, 2, 64, 4864, 151936, 1);
    test_model("qwen2.5-0.5b widths, 2 layers", &c, lens2, 3, 0);
    qwen3(&c, 256, 3, 4, 2, 64, 512, 1000, 1);
    test_model("small qwen3 (q/k norm)", &c, lens, 5, 20);
    qwen3(&c, 256, 2, 2, 1, 128, 512, 1000, 1);
    test_model("small qwen3 hd128", &c, lens, 5, 0);
    test_trainer_hooks();
    test_recompute();
    printf("%s\n", g_fail ? "FAILED" : "all GPU model checks passed");
    return g_fail ? 1 : 0;
}
#endif
