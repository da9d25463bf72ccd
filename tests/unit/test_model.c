/*
 * test_model.c — the transformer (model.h) and config.json reader
 * (hfconfig.h) on tiny random models: whole-model finite differences for
 * every tensor kind, KV-cache prefill/decode against the full forward,
 * packed batches against sequences one by one, save/load round trips
 * (F32 exact, BF16 rounded), and hostile configs, folders and batches.
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
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "model.h"

static char g_tmp[256];

/* ------------------------------------------------------------- helpers */

static void tiny_config(sl_hf_config *c, sl_arch arch, int tied)
{
    sl_hf_config_defaults(c);
    c->arch = arch;
    snprintf(c->model_type, sizeof(c->model_type), "%s",
             arch == SL_ARCH_QWEN2 ? "qwen2" : arch == SL_ARCH_QWEN3 ? "qwen3" : "llama");
    c->hidden_size = 16;
    c->intermediate_size = 24;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 4;
    c->num_key_value_heads = 2;
    c->head_dim = arch == SL_ARCH_QWEN3 ? 8 : 4;
    c->vocab_size = 32;
    c->max_position_embeddings = 64;
    c->rms_norm_eps = 1e-6;
    c->tie_word_embeddings = tied;
    c->qkv_bias = arch != SL_ARCH_LLAMA;
    c->o_bias = arch == SL_ARCH_QWEN3; /* attention_bias on qwen3: q/k/v and o biased */
    c->qk_norm = arch == SL_ARCH_QWEN3;
    if (arch == SL_ARCH_LLAMA) {
        c->rope_type = SL_ROPE_LLAMA3;
        c->rope_factor = 8.0;
        c->rope_low_freq_factor = 1.0;
        c->rope_high_freq_factor = 4.0;
        c->rope_original_max_pos = 16;
    }
}

/* Make every parameter non-trivial: matrices ~0.3, norms 1 +- 0.2, biases +- 0.1. */
static void perturb(sl_model *m, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 0; i < m->n_tensors; i++) {
        const sl_model_tensor *t = &m->tensors[i];
        float *p = m->params_mem + t->offset;
        for (size_t j = 0; j < t->numel; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            float u = (float)((s >> 40) / 16777216.0 * 2.0 - 1.0);
            if (t->ndim == 2)
                p[j] = 0.3f * u;
            else if (strstr(t->name, "norm"))
                p[j] = 1.0f + 0.2f * u;
            else
                p[j] = 0.1f * u;
        }
    }
}

static sl_model *tiny_model(sl_arch arch, int tied, int max_tokens)
{
    sl_hf_config c;
    tiny_config(&c, arch, tied);
    sl_model *m = NULL;
    char err[256];
    int rc = sl_model_new(&c, sl_ops_cpu(), max_tokens, 7, &m, err, sizeof(err));
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    perturb(m, 99 + arch);
    return m;
}

static double maxabs_diff(const float *a, const float *b, size_t n)
{
    double md = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md)) md = d;
    }
    return md;
}

/* ------------------------------------------------ finite differences */

static const int32_t FD_TOK[10] = {3, 17, 5, 9, 30, 1, 1, 22, 8, 13};
static const int32_t FD_CU[3] = {0, 4, 10};
static float FD_A[10], FD_B[10];

static double fd_loss(sl_model *m)
{
    float lp[10], ent[10];
    assert_int_equal(sl_model_forward(m, FD_TOK, FD_CU, 2, NULL, lp, ent, NULL), 0);
    double L = 0;
    for (int t = 0; t < 10; t++) L += (double)FD_A[t] * lp[t] + (double)FD_B[t] * ent[t];
    return L;
}

static void whole_model_fd(sl_arch arch, int tied, const char *label)
{
    sl_model *m = tiny_model(arch, tied, 16);
    for (int t = 0; t < 10; t++) {
        FD_A[t] = (float)((t * 37 % 11) / 11.0 - 0.5) * 0.4f;
        FD_B[t] = (float)((t * 53 % 7) / 7.0 - 0.5) * 0.4f;
    }
    fd_loss(m);
    sl_model_zero_grad(m);
    assert_int_equal(sl_model_backward(m, FD_A, FD_B), 0);
    double worst = 0, worst_abs = 0;
    int checked = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const sl_model_tensor *t = &m->tensors[i];
        size_t pick[3] = {0, t->numel / 2 + 1, t->numel - 1};
        for (int k = 0; k < 3; k++) {
            size_t j = pick[k] % t->numel;
            float *p = m->params_mem + t->offset + j, save = *p;
            double h = 1e-2;
            *p = (float)(save + h);
            double lp = fd_loss(m);
            *p = (float)(save - h);
            double lm = fd_loss(m);
            *p = save;
            double num = (lp - lm) / (2 * h), an = m->grads_mem[t->offset + j];
            double d = fabs(num - an), rel = d / (1e-3 + fabs(num));
            if (d > 2e-4 && rel > 1e-2)
                printf("    %s %s[%zu]: analytic %.6g numeric %.6g\n", label, t->name, j, an, num);
            assert_false(d > 2e-4 && rel > 1e-2);
            if (d > worst_abs) worst_abs = d;
            if (rel > worst) worst = rel;
            checked++;
        }
    }
    printf("    %s: %d parameters of %d tensors, max |analytic-numeric| %.3g (max rel %.3g)\n",
           label, checked, m->n_tensors, worst_abs, worst);
    sl_model_free(m);
}

static void whole_model_gradients_match_finite_differences_qwen3(void **s)
{
    (void)s;
    whole_model_fd(SL_ARCH_QWEN3, 0, "qwen3 (qk-norm, qkv+o bias, untied)");
}

static void whole_model_gradients_match_finite_differences_qwen2_tied(void **s)
{
    (void)s;
    whole_model_fd(SL_ARCH_QWEN2, 1, "qwen2 (qkv bias, tied)");
}

static void whole_model_gradients_match_finite_differences_llama3(void **s)
{
    (void)s;
    whole_model_fd(SL_ARCH_LLAMA, 0, "llama (llama3 rope, untied)");
}

/* ----------------------------------------------------------- KV cache */

static void kv_cache_decode_equals_full_forward(void **s)
{
    (void)s;
    sl_model *m = tiny_model(SL_ARCH_QWEN3, 0, 32);
    int V = m->cfg.vocab_size;
    int32_t toks[15] = {1, 5, 9, 2, 30, 31, 7, 7, 12, /* A: 9 */ 4, 8, 15, 16, 23, 6 /* B: 6 */};
    int32_t cu[3] = {0, 9, 15};
    float *full = malloc(sizeof(float) * 15 * V), *got = malloc(sizeof(float) * 2 * V);
    assert_int_equal(sl_model_forward_logits(m, toks, cu, 2, full), 0);
    sl_kv_cache *kc = NULL;
    assert_int_equal(sl_kv_cache_new(m, 3, 12, &kc), 0);
    const int32_t *A = toks, *B = toks + 9;
    double md = 0;
    /* prefill A[0..4) in slot 2 and B[0..2) in slot 0 */
    assert_int_equal(sl_model_prefill(m, kc, 2, A, 4, got), 0);
    md = fmax(md, maxabs_diff(got, full + 3 * V, V));
    assert_int_equal(sl_model_prefill(m, kc, 0, B, 2, got), 0);
    md = fmax(md, maxabs_diff(got, full + (9 + 1) * V, V));
    /* a multi-token continuation of A: A[4..6) */
    assert_int_equal(sl_model_prefill(m, kc, 2, A + 4, 2, got), 0);
    md = fmax(md, maxabs_diff(got, full + 5 * V, V));
    /* decode both until B ends, then A alone */
    int ia = 6, ib = 2;
    while (ia < 9) {
        if (ib < 6) {
            int32_t slots[2] = {0, 2}, tk[2] = {B[ib], A[ia]};
            assert_int_equal(sl_model_decode(m, kc, slots, tk, 2, got), 0);
            md = fmax(md, maxabs_diff(got, full + (9 + ib) * V, V));
            md = fmax(md, maxabs_diff(got + V, full + ia * V, V));
            ib++;
        } else {
            int32_t slots[1] = {2}, tk[1] = {A[ia]};
            assert_int_equal(sl_model_decode(m, kc, slots, tk, 1, got), 0);
            md = fmax(md, maxabs_diff(got, full + ia * V, V));
        }
        ia++;
    }
    assert_int_equal(kc->len[2], 9);
    assert_int_equal(kc->len[0], 5);
    printf("    KV-cache prefill/decode vs full forward: max abs logit diff %.3g\n", md);
    assert_true(md < 2e-5);
    /* a full slot is refused, a bad slot too */
    int32_t sl1[1] = {2}, tk1[1] = {3}, sl_bad[1] = {3}, dup[2] = {0, 0}, tk2[2] = {1, 2};
    for (int i = 0; i < 3; i++) assert_int_equal(sl_model_decode(m, kc, sl1, tk1, 1, got), 0);
    assert_int_equal(sl_model_decode(m, kc, sl1, tk1, 1, got), SL_ERANGE);
    assert_int_equal(sl_model_decode(m, kc, sl_bad, tk1, 1, got), SL_EINVAL);
    assert_int_equal(sl_model_decode(m, kc, dup, tk2, 2, got), SL_EINVAL);
    sl_kv_cache_reset(kc, 2);
    assert_int_equal(kc->len[2], 0);
    assert_int_equal(sl_model_prefill(m, kc, 2, A, 9, got), 0);
    md = maxabs_diff(got, full + 8 * V, V);
    assert_true(md < 2e-5);
    sl_kv_cache_free(kc);
    free(full);
    free(got);
    sl_model_free(m);
}

static void kv_cache_decode_equals_full_forward_past_one_attention_block(void **s)
{
    (void)s;
    sl_hf_config c;
    tiny_config(&c, SL_ARCH_LLAMA, 1);
    c.max_position_embeddings = 256;
    sl_model *m = NULL;
    char err[256];
    assert_int_equal(sl_model_new(&c, sl_ops_cpu(), 160, 3, &m, err, sizeof(err)), 0);
    perturb(m, 5);
    int V = c.vocab_size, n = 150;
    int32_t toks[150], cu[2] = {0, 150};
    for (int i = 0; i < n; i++) toks[i] = (i * 13 + 5) % V;
    float *full = malloc(sizeof(float) * n * V), *got = malloc(sizeof(float) * V);
    assert_int_equal(sl_model_forward_logits(m, toks, cu, 1, full), 0);
    sl_kv_cache *kc = NULL;
    assert_int_equal(sl_kv_cache_new(m, 1, 200, &kc), 0);
    assert_int_equal(sl_model_prefill(m, kc, 0, toks, 100, got), 0);
    double md = maxabs_diff(got, full + 99 * V, V);
    for (int i = 100; i < n; i++) {
        int32_t slot = 0;
        assert_int_equal(sl_model_decode(m, kc, &slot, toks + i, 1, got), 0);
        md = fmax(md, maxabs_diff(got, full + (size_t)i * V, V));
    }
    printf("    150-token sequence, prefill 100 + 50 decode steps: max abs logit diff %.3g\n", md);
    assert_true(md < 2e-5);
    sl_kv_cache_free(kc);
    free(full);
    free(got);
    sl_model_free(m);
}

/* ------------------------------------------------------------- packing */

static void packed_batch_equals_sequences_one_by_one(void **s)
{
    (void)s;
    sl_model *m = tiny_model(SL_ARCH_LLAMA, 0, 32);
    int32_t toks[12] = {2, 4, 6, 8, 10, 12, 14, /* 7 */ 1, 3, /* 2 */ 5, 7, 9 /* 3 */};
    int32_t cu[4] = {0, 7, 9, 12};
    float lp[12], ent[12], lp1[12], ent1[12];
    double loss;
    assert_int_equal(sl_model_forward(m, toks, cu, 3, NULL, lp, ent, &loss), 0);
    float dl[12];
    for (int t = 0; t < 12; t++) dl[t] = -0.1f * (1 + t % 3);
    sl_model_zero_grad(m);
    assert_int_equal(sl_model_backward(m, dl, NULL), 0);
    float *packed = malloc(sizeof(float) * m->n_params);
    memcpy(packed, m->grads_mem, sizeof(float) * m->n_params);
    sl_model_zero_grad(m);
    double sum_nll = 0;
    for (int sq = 0; sq < 3; sq++) {
        int32_t c1[2] = {0, cu[sq + 1] - cu[sq]};
        assert_int_equal(sl_model_forward(m, toks + cu[sq], c1, 1, NULL, lp1 + cu[sq],
                                          ent1 + cu[sq], NULL),
                         0);
        assert_int_equal(sl_model_backward(m, dl + cu[sq], NULL), 0); /* accumulates */
        for (int t = cu[sq]; t < cu[sq + 1] - 1; t++) sum_nll -= lp1[t];
    }
    double dlp = maxabs_diff(lp, lp1, 12), den = maxabs_diff(ent, ent1, 12);
    double dg = maxabs_diff(packed, m->grads_mem, m->n_params), mg = 0;
    for (size_t i = 0; i < m->n_params; i++) mg = fmax(mg, fabs(packed[i]));
    printf("    packed vs one by one: logprob %.3g, entropy %.3g, grads %.3g (max grad %.3g), "
           "loss %.7f vs %.7f\n",
           dlp, den, dg, mg, loss, sum_nll / 9);
    assert_true(dlp < 1e-6 && den < 1e-6);
    assert_true(dg < 1e-5 * mg);
    assert_true(fabs(loss - sum_nll / 9) < 1e-6);
    /* last positions carry no target */
    assert_true(lp[6] == 0.0f && lp[8] == 0.0f && lp[11] == 0.0f);
    /* explicit targets */
    int32_t tg[12];
    for (int t = 0; t < 12; t++) tg[t] = (t * 7) % 32;
    tg[3] = -1;
    assert_int_equal(sl_model_forward(m, toks, cu, 3, tg, lp, NULL, NULL), 0);
    assert_true(lp[3] == 0.0f && lp[6] != 0.0f);
    free(packed);
    sl_model_free(m);
}

static void bad_batches_are_refused(void **s)
{
    (void)s;
    sl_model *m = tiny_model(SL_ARCH_QWEN2, 1, 8);
    float lp[8];
    int32_t toks[8] = {1, 2, 3, 4, 5, 6, 7, 8}, bad[3] = {1, 32, 2}, neg[3] = {1, -1, 2};
    int32_t cu_ok[2] = {0, 3}, cu_back[3] = {0, 3, 2}, cu_big[2] = {0, 9}, cu_nz[2] = {1, 3};
    int32_t tg_bad[3] = {1, 2, 99};
    assert_int_equal(sl_model_backward_ce(m, NULL, NULL), SL_EINVAL); /* no forward yet */
    assert_int_equal(sl_model_forward(m, bad, cu_ok, 1, NULL, lp, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_model_forward(m, neg, cu_ok, 1, NULL, lp, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_model_forward(m, toks, cu_back, 2, NULL, lp, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_model_forward(m, toks, cu_big, 1, NULL, lp, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_model_forward(m, toks, cu_nz, 1, NULL, lp, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_model_forward(m, toks, cu_ok, 0, NULL, lp, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_model_forward(m, toks, cu_ok, 1, tg_bad, lp, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_model_backward(m, lp, NULL), SL_EINVAL); /* failed forward */
    sl_kv_cache *kc = NULL;
    assert_int_equal(sl_kv_cache_new(m, 1, 65, &kc), SL_EINVAL); /* > max_position */
    assert_int_equal(sl_kv_cache_new(m, 0, 4, &kc), SL_EINVAL);
    sl_model_free(m);
    sl_model_free(NULL);
}

/* ------------------------------------------------------------ save/load */

static void save_and_load_round_trip(void **s)
{
    (void)s;
    for (int arch = 0; arch < 3; arch++) {
        sl_model *m = tiny_model((sl_arch)arch, arch == SL_ARCH_QWEN2, 16);
        char dir[512], err[SL_MODEL_ERRLEN];
        snprintf(dir, sizeof(dir), "%s/rt%d", g_tmp, arch);
        assert_int_equal(sl_model_save_hf(m, dir, SL_DTYPE_F32, err, sizeof(err)), 0);
        sl_model *m2 = NULL;
        int rc = sl_model_load_hf(dir, sl_ops_cpu(), 16, &m2, err, sizeof(err));
        if (rc) fprintf(stderr, "%s\n", err);
        assert_int_equal(rc, 0);
        assert_int_equal(m2->n_params, m->n_params);
        assert_int_equal(m2->cfg.arch, m->cfg.arch);
        assert_int_equal(m2->cfg.head_dim, m->cfg.head_dim);
        assert_int_equal(m2->cfg.qkv_bias, m->cfg.qkv_bias);
        assert_int_equal(m2->cfg.o_bias, m->cfg.o_bias);
        assert_int_equal(m2->cfg.rope_type, m->cfg.rope_type);
        assert_true(m2->cfg.rope_factor == m->cfg.rope_factor);
        assert_int_equal(m2->cfg.tie_word_embeddings, m->cfg.tie_word_embeddings);
        assert_memory_equal(m2->params_mem, m->params_mem, sizeof(float) * m->n_params);
        /* BF16: every value rounded to 8 bits of mantissa */
        char dir2[600];
        snprintf(dir2, sizeof(dir2), "%s/bf16", dir);
        assert_int_equal(sl_model_save_hf(m, dir2, SL_DTYPE_BF16, err, sizeof(err)), 0);
        sl_model_free(m2);
        assert_int_equal(sl_model_load_hf(dir2, sl_ops_cpu(), 16, &m2, err, sizeof(err)), 0);
        double worst = 0;
        for (size_t i = 0; i < m->n_params; i++) {
            double a = m->params_mem[i], b = m2->params_mem[i];
            double r = fabs(a - b) / fmax(fabs(a), 1e-30);
            if (r > worst) worst = r;
        }
        printf("    %s: F32 round trip exact, BF16 max rel %.3g\n", m->cfg.model_type, worst);
        assert_true(worst <= 1.0 / 256);
        sl_model_free(m2);
        sl_model_free(m);
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void hostile_model_folders_give_errors(void **s)
{
    (void)s;
    char dir[512], path[700], err[SL_MODEL_ERRLEN];
    sl_model *m = NULL;
    /* no folder */
    snprintf(dir, sizeof(dir), "%s/none", g_tmp);
    assert_int_equal(sl_model_load_hf(dir, sl_ops_cpu(), 8, &m, err, sizeof(err)), SL_ENOENT);
    assert_null(m);
    /* config but no weights */
    snprintf(dir, sizeof(dir), "%s/noweights", g_tmp);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    write_file(path, "{\"model_type\":\"llama\",\"hidden_size\":16,\"intermediate_size\":8,"
                     "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"vocab_size\":10}");
    assert_int_not_equal(sl_model_load_hf(dir, sl_ops_cpu(), 8, &m, err, sizeof(err)), 0);
    printf("    no weights: %s\n", err);
    assert_null(m);
    /* weights of a tied model under an untied config: lm_head missing */
    sl_model *t = tiny_model(SL_ARCH_QWEN2, 1, 8);
    snprintf(dir, sizeof(dir), "%s/mismatch", g_tmp);
    assert_int_equal(sl_model_save_hf(t, dir, SL_DTYPE_F32, err, sizeof(err)), 0);
    t->cfg.tie_word_embeddings = 0;
    snprintf(path, sizeof(path), "%s/config.json", dir);
    assert_int_equal(sl_hf_config_save(&t->cfg, path, NULL, err, sizeof(err)), 0);
    assert_int_equal(sl_model_load_hf(dir, sl_ops_cpu(), 8, &m, err, sizeof(err)), SL_ENOENT);
    printf("    missing tensor: %s\n", err);
    /* a shape mismatch: intermediate_size changed */
    t->cfg.tie_word_embeddings = 1;
    t->cfg.intermediate_size = 20;
    assert_int_equal(sl_hf_config_save(&t->cfg, path, NULL, err, sizeof(err)), 0);
    assert_int_equal(sl_model_load_hf(dir, sl_ops_cpu(), 8, &m, err, sizeof(err)), SL_EINVAL);
    printf("    shape mismatch: %s\n", err);
    /* a truncated weights file */
    t->cfg.intermediate_size = 24;
    assert_int_equal(sl_hf_config_save(&t->cfg, path, NULL, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    assert_int_equal(truncate(path, 1000), 0);
    assert_int_not_equal(sl_model_load_hf(dir, sl_ops_cpu(), 8, &m, err, sizeof(err)), 0);
    printf("    truncated weights: %s\n", err);
    assert_null(m);
    /* a config.json claiming a 70B model over tiny weights: refused before
     * anything is allocated */
    snprintf(path, sizeof(path), "%s/config.json", dir);
    write_file(path, "{\"model_type\":\"llama\",\"hidden_size\":8192,\"intermediate_size\":28672,"
                     "\"num_hidden_layers\":80,\"num_attention_heads\":64,"
                     "\"num_key_value_heads\":8,\"vocab_size\":128256}");
    assert_int_equal(sl_model_save_hf(t, dir, SL_DTYPE_F32, err, sizeof(err)), 0);
    write_file(path, "{\"model_type\":\"llama\",\"hidden_size\":8192,\"intermediate_size\":28672,"
                     "\"num_hidden_layers\":80,\"num_attention_heads\":64,"
                     "\"num_key_value_heads\":8,\"vocab_size\":128256}");
    uint64_t t0 = sl_now_ms();
    assert_int_not_equal(sl_model_load_hf(dir, sl_ops_cpu(), 8, &m, err, sizeof(err)), 0);
    printf("    70B config over tiny weights (%llu ms): %s\n",
           (unsigned long long)(sl_now_ms() - t0), err);
    assert_null(m);
    sl_model_free(t);
}

/* ---------------------------------------------------------- config.json */

static int parse(const char *json, sl_hf_config *c, char *err)
{
    int rc = sl_hf_config_parse(c, json, strlen(json), err, SL_HF_ERRLEN);
    return rc;
}

#define BASE "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"vocab_size\":256"

static void config_reads_both_rope_forms_and_family_defaults(void **s)
{
    (void)s;
    sl_hf_config c;
    char err[SL_HF_ERRLEN];
    /* classic keys, "type" spelling */
    assert_int_equal(parse("{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,"
                           "\"num_key_value_heads\":2,\"rope_theta\":500000.0,\"rope_scaling\":"
                           "{\"type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
                           "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192},"
                           "\"bos_token_id\":1,\"eos_token_id\":[2,3,4]}",
                           &c, err),
                     0);
    assert_int_equal(c.rope_type, SL_ROPE_LLAMA3);
    assert_true(c.rope_theta == 500000.0 && c.rope_factor == 8.0);
    assert_int_equal(c.rope_original_max_pos, 8192);
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.n_eos, 3);
    assert_int_equal(c.eos_token_ids[2], 4);
    assert_int_equal(c.rope_new_format, 0);
    assert_int_equal(c.qkv_bias, 0);
    sl_hf_config_fini(&c);
    /* rope_parameters (transformers 5) */
    assert_int_equal(parse("{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,"
                           "\"rope_parameters\":{\"rope_type\":\"linear\",\"rope_theta\":1e4,"
                           "\"factor\":2.0}}",
                           &c, err),
                     0);
    assert_int_equal(c.rope_type, SL_ROPE_LINEAR);
    assert_int_equal(c.rope_new_format, 1);
    assert_int_equal(c.num_key_value_heads, 4);
    sl_hf_config_fini(&c);
    /* qwen2: q/k/v bias without the key */
    assert_int_equal(parse("{\"model_type\":\"qwen2\"," BASE ",\"num_attention_heads\":4,"
                           "\"num_key_value_heads\":1,\"tie_word_embeddings\":true}",
                           &c, err),
                     0);
    assert_int_equal(c.qkv_bias, 1);
    assert_int_equal(c.o_bias, 0);
    assert_int_equal(c.tie_word_embeddings, 1);
    sl_hf_config_fini(&c);
    /* qwen3: explicit head_dim and q/k norm */
    assert_int_equal(parse("{\"model_type\":\"qwen3\"," BASE ",\"num_attention_heads\":4,"
                           "\"num_key_value_heads\":2,\"head_dim\":32}",
                           &c, err),
                     0);
    assert_int_equal(c.head_dim, 32);
    assert_int_equal(c.qk_norm, 1);
    sl_hf_config_fini(&c);
    /* mistral without a window is a llama */
    assert_int_equal(parse("{\"model_type\":\"mistral\"," BASE ",\"num_attention_heads\":4,"
                           "\"sliding_window\":null}",
                           &c, err),
                     0);
    assert_int_equal(c.arch, SL_ARCH_LLAMA);
    sl_hf_config_fini(&c);
}

static void hostile_configs_are_refused_with_a_message(void **s)
{
    (void)s;
    static const struct {
        const char *json;
        int rc;
    } cases[] = {
        {"", SL_EINVAL},
        {"{\"model_type\":\"llama\",", SL_EINVAL},
        {"[1,2]", SL_EINVAL},
        {"{}", SL_EINVAL},
        {"{\"model_type\":\"gpt2\"," BASE ",\"num_attention_heads\":4}", SL_EUNSUPPORTED},
        {"{\"model_type\":7," BASE ",\"num_attention_heads\":4}", SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE "}", SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":0}", SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":-4}", SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":5}", SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"num_key_value_heads\":3}",
         SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"num_key_value_heads\":0}",
         SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":\"4\"}", SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4.5}", SL_EINVAL},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"vocab_size\":99999999999,\"num_attention_heads\":4}",
         SL_EINVAL},
        {"{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2000000,\"vocab_size\":256,\"num_attention_heads\":4}",
         SL_EINVAL},
        {"{\"model_type\":\"qwen3\"," BASE ",\"num_attention_heads\":4,\"head_dim\":7}", SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"rms_norm_eps\":-1}",
         SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"rope_theta\":0}",
         SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"rope_scaling\":"
         "{\"rope_type\":\"yarn\",\"factor\":4}}",
         SL_EUNSUPPORTED},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"rope_scaling\":"
         "{\"rope_type\":\"llama3\",\"factor\":8}}",
         SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"rope_parameters\":[]}",
         SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"eos_token_id\":9999}",
         SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"eos_token_id\":\"x\"}",
         SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"mlp_bias\":true}",
         SL_EUNSUPPORTED},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"hidden_act\":\"gelu\"}",
         SL_EUNSUPPORTED},
        {"{\"model_type\":\"mistral\"," BASE ",\"num_attention_heads\":4,\"sliding_window\":16}",
         SL_EUNSUPPORTED},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,\"num_attention_heads\":4}",
         SL_EINVAL},
        {"{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,"
         "\"max_position_embeddings\":0}",
         SL_EINVAL},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        sl_hf_config c;
        char err[SL_HF_ERRLEN] = "";
        int rc = parse(cases[i].json, &c, err);
        if (rc != cases[i].rc) printf("    case %zu: rc %d (%s)\n", i, rc, err);
        assert_int_equal(rc, cases[i].rc);
        assert_true(strlen(err) > 0);
        assert_null(c.raw_json);
        sl_hf_config_fini(&c);
    }
    printf("    %zu hostile configs refused\n", SL_ARRAY_LEN(cases));
}

static void config_save_keeps_unknown_keys_and_rope_form(void **s)
{
    (void)s;
    sl_hf_config c, c2;
    char err[SL_HF_ERRLEN], path[512];
    assert_int_equal(parse("{\"model_type\":\"llama\"," BASE ",\"num_attention_heads\":4,"
                           "\"my_key\":\"kept\",\"rope_parameters\":{\"rope_type\":\"llama3\","
                           "\"rope_theta\":500000.0,\"factor\":32.0,\"low_freq_factor\":1.0,"
                           "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}",
                           &c, err),
                     0);
    snprintf(path, sizeof(path), "%s/cfg.json", g_tmp);
    assert_int_equal(sl_hf_config_save(&c, path, "bfloat16", err, sizeof(err)), 0);
    assert_int_equal(sl_hf_config_load(&c2, path, err, sizeof(err)), 0);
    assert_non_null(strstr(c2.raw_json, "\"my_key\": \"kept\""));
    assert_non_null(strstr(c2.raw_json, "\"dtype\": \"bfloat16\""));
    assert_non_null(strstr(c2.raw_json, "LlamaForCausalLM"));
    assert_int_equal(c2.rope_new_format, 1);
    assert_true(c2.rope_factor == 32.0 && c2.rope_theta == 500000.0);
    assert_int_equal(c2.rope_original_max_pos, 8192);
    sl_hf_config_fini(&c);
    sl_hf_config_fini(&c2);
    sl_hf_config_fini(&c2); /* twice is safe */
}

static void rope_llama3_scaling_changes_only_low_frequencies(void **s)
{
    (void)s;
    sl_hf_config a, b;
    sl_hf_config_defaults(&a);
    a.head_dim = 16;
    b = a;
    b.rope_type = SL_ROPE_LLAMA3;
    b.rope_factor = 8.0, b.rope_low_freq_factor = 1.0, b.rope_high_freq_factor = 4.0;
    b.rope_original_max_pos = 64;
    float ca[8 * 2], sa[8 * 2], cb[8 * 2], sb[8 * 2];
    assert_int_equal(sl_rope_tables(&a, 2, ca, sa), 0);
    assert_int_equal(sl_rope_tables(&b, 2, cb, sb), 0);
    /* position 1: angle = inv_freq. wavelengths 2pi*10000^(i/8): i=0 (6.3) kept,
     * i=1 (19.9) and 2 (62.8) smoothed, i>=3 divided by 8 */
    assert_true(sa[8] == sb[8]);
    assert_true(sb[9] < sa[9] && sb[9] > sa[9] / 8);
    for (int i = 3; i < 8; i++) assert_true(fabsf(sb[8 + i] - sinf(asinf(sa[8 + i]) / 8)) < 1e-6);
}

int main(void)
{
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/test_model.%d", (int)getpid());
    mkdir(g_tmp, 0700);
    sl_log_init("test_model", SL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_model_gradients_match_finite_differences_qwen3),
        cmocka_unit_test(whole_model_gradients_match_finite_differences_qwen2_tied),
        cmocka_unit_test(whole_model_gradients_match_finite_differences_llama3),
        cmocka_unit_test(kv_cache_decode_equals_full_forward),
        cmocka_unit_test(kv_cache_decode_equals_full_forward_past_one_attention_block),
        cmocka_unit_test(packed_batch_equals_sequences_one_by_one),
        cmocka_unit_test(bad_batches_are_refused),
        cmocka_unit_test(save_and_load_round_trip),
        cmocka_unit_test(hostile_model_folders_give_errors),
        cmocka_unit_test(config_reads_both_rope_forms_and_family_defaults),
        cmocka_unit_test(hostile_configs_are_refused_with_a_message),
        cmocka_unit_test(config_save_keeps_unknown_keys_and_rope_form),
        cmocka_unit_test(rope_llama3_scaling_changes_only_low_frequencies),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return rc;
}
