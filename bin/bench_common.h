/*
 * bench_common.h — what the CPU benchmarks of slime-bench share (bin/bench_*.c):
 * reading "--key value" integer options, elapsed seconds, medians, the
 * Qwen2.5-0.5B shape of the GPU benchmarks, and the built-in
 * arithmetic task's tiny Qwen3 (task_arith.h) at a chosen size with random
 * weights.
 *
 * What it is not: an option parser (unknown options are ignored, as
 * slime-bench always did); header-only so that the Makefile's
 * bin/bench_*.c discovery needs nothing new.
 */
#ifndef SL_BENCH_COMMON_H
#define SL_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "hfconfig.h"
#include "model.h"
#include "task_arith.h"

/* The integer after KEY in ARGV, DEF when KEY is absent (atoi: no check). */
static inline int bench_arg_int(int argc, char **argv, const char *key, int def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], key) == 0) return atoi(argv[i + 1]);
    return def;
}

/* 1 when the flag KEY is in ARGV, else 0. */
static inline int bench_arg_flag(int argc, char **argv, const char *key)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], key) == 0) return 1;
    return 0;
}

/* Seconds since T0 (sl_now_ns). */
static inline double bench_secs(uint64_t t0) { return (double)(sl_now_ns() - t0) / 1e9; }

/* Median of V[0..N) (sorts V in place); 0 when N is 0. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static inline double bench_median(double *v, int n)
{
    qsort(v, n, sizeof(double), bench_cmp_double);
    return n ? v[n / 2] : 0;
}

/* The Qwen2.5-0.5B shape of the GPU benchmarks (hidden 896, 14 heads, 2 KV
 * heads, intermediate 4864, vocab 151936, tied, q/k/v bias) with LAYERS
 * layers (24 in the real model). */
static inline void bench_qwen05(sl_hf_config *c, int layers)
{
    sl_hf_config_defaults(c);
    c->arch = SL_ARCH_QWEN2;
    snprintf(c->model_type, sizeof(c->model_type), "qwen2");
    c->hidden_size = 896, c->intermediate_size = 4864, c->num_hidden_layers = layers;
    c->num_attention_heads = 14, c->num_key_value_heads = 2, c->head_dim = 64;
    c->vocab_size = 151936, c->max_position_embeddings = 32768, c->tie_word_embeddings = 1;
    c->qkv_bias = 1, c->rope_theta = 1000000.0;
}

/* A model of the arithmetic task's config.json shape (written to a
 * temporary folder and read back) with HIDDEN, 3*HIDDEN intermediate and
 * LAYERS layers, random weights (seed 1), room for MAX_TOKENS tokens per
 * forward; the folder is removed again. *OUT: caller sl_model_free.
 * Errors go to stderr as "bench WHO: ...". */
static inline int bench_arith_model(const char *who, int hidden, int layers, int max_tokens, sl_model **out)
{
    char dir[] = "/tmp/sl_bench_XXXXXX", err[256], path[300];
    if (!mkdtemp(dir)) return SL_EIO;
    sl_arith_model_cfg mc;
    sl_arith_model_cfg_init(&mc);
    mc.hidden_size = hidden;
    mc.intermediate_size = 3 * hidden;
    mc.num_hidden_layers = layers;
    mc.head_dim = hidden / mc.num_attention_heads;
    sl_hf_config hc;
    int rc = sl_arith_write_model_config(dir, &mc, err, sizeof(err));
    if (rc == SL_OK) rc = sl_hf_config_load(&hc, dir, err, sizeof(err));
    static const char *const files[] = {"config.json", "generation_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    if (rc != SL_OK) {
        fprintf(stderr, "bench %s: %s\n", who, err);
        return rc;
    }
    rc = sl_model_new(&hc, sl_ops_cpu(), max_tokens, 1, out, err, sizeof(err));
    sl_hf_config_fini(&hc);
    if (rc != SL_OK) fprintf(stderr, "bench %s: %s\n", who, err);
    return rc;
}

#endif /* SL_BENCH_COMMON_H */
