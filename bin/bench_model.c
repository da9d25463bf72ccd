/*
 * bench_model.c — `slime-bench model [--tokens T] [--seq-len L] [--steps N]
 * [--decode-batch B] [--decode-steps S] [--threads K]`: CPU throughput of
 * the transformer (kernels/model.h) on a random ~12M-parameter Llama-shaped
 * model (hidden 256, 6 layers, 8 heads / 4 kv heads of 32, intermediate
 * 688, vocab 32000, tied embeddings): forward-only and forward+backward
 * tokens/s over packed batches of T tokens (sequences of L), and decode
 * tokens/s over a KV cache at batch 1 and batch B. One JSON object on
 * stdout. Not a test: it asserts nothing about speed.
 */
#include "base.h"
#include "bench_common.h"
#include "model.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* decode tokens/s for batch b: prefill a 16-token prompt per slot, then
 * `steps` decode steps over all b slots. */
static double decode_rate(sl_model *m, int b, int steps, int32_t *toks)
{
    sl_kv_cache *kc = NULL;
    if (sl_kv_cache_new(m, b, 16 + steps + 1, &kc)) return -1;
    float *logits = malloc(sizeof(float) * (size_t)b * m->cfg.vocab_size);
    int32_t *slots = malloc(sizeof(int32_t) * b), *next = malloc(sizeof(int32_t) * b);
    double r = -1;
    if (!logits || !slots || !next) goto out;
    for (int i = 0; i < b; i++) {
        slots[i] = i;
        if (sl_model_prefill(m, kc, i, toks + i * 16, 16, NULL)) goto out;
        next[i] = toks[i];
    }
    uint64_t t0 = sl_now_ns();
    for (int s = 0; s < steps; s++) {
        if (sl_model_decode(m, kc, slots, next, b, logits)) goto out;
        for (int i = 0; i < b; i++) next[i] = (next[i] * 31 + s) % m->cfg.vocab_size;
    }
    r = (double)b * steps / bench_secs(t0);
out:
    free(logits);
    free(slots);
    free(next);
    sl_kv_cache_free(kc);
    return r;
}

int bench_model(int argc, char **argv)
{
    int T = bench_arg_int(argc, argv, "--tokens", 1024);
    int L = bench_arg_int(argc, argv, "--seq-len", 256);
    int steps = bench_arg_int(argc, argv, "--steps", 3);
    int db = bench_arg_int(argc, argv, "--decode-batch", 8);
    int ds = bench_arg_int(argc, argv, "--decode-steps", 32);
    int threads = bench_arg_int(argc, argv, "--threads", 0);
    if (T < 1 || L < 1 || L > T || steps < 1 || db < 1 || ds < 1 || db * 16 > T) {
        fprintf(stderr, "bench model: bad arguments\n");
        return SL_EXIT_USAGE;
    }
    if (threads > 0) omp_set_num_threads(threads);
    sl_hf_config c;
    sl_hf_config_defaults(&c);
    c.hidden_size = 256;
    c.intermediate_size = 688;
    c.num_hidden_layers = 6;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 4;
    c.head_dim = 32;
    c.vocab_size = 32000;
    c.max_position_embeddings = 4096;
    c.tie_word_embeddings = 1;
    c.rope_theta = 500000.0;
    char err[256];
    sl_model *m = NULL;
    if (sl_model_new(&c, sl_ops_cpu(), T, 1, &m, err, sizeof(err))) {
        fprintf(stderr, "bench model: %s\n", err);
        return SL_EXIT_FAIL;
    }
    int n_seq = (T + L - 1) / L;
    int32_t *toks = malloc(sizeof(int32_t) * T), *cu = malloc(sizeof(int32_t) * (n_seq + 1));
    if (!toks || !cu) return SL_EXIT_FAIL;
    for (int t = 0; t < T; t++) toks[t] = (int32_t)((t * 7919u + 13u) % (unsigned)c.vocab_size);
    for (int s = 0; s <= n_seq; s++) cu[s] = s * L < T ? s * L : T;

    double loss = 0;
    /* warm-up */
    sl_model_forward(m, toks, cu, n_seq, NULL, NULL, NULL, &loss);
    sl_model_backward_ce(m, NULL, NULL);
    uint64_t t0 = sl_now_ns();
    for (int i = 0; i < steps; i++) sl_model_forward(m, toks, cu, n_seq, NULL, NULL, NULL, &loss);
    double fwd = (double)T * steps / bench_secs(t0);
    t0 = sl_now_ns();
    for (int i = 0; i < steps; i++) {
        sl_model_zero_grad(m);
        sl_model_forward(m, toks, cu, n_seq, NULL, NULL, NULL, &loss);
        sl_model_backward_ce(m, NULL, NULL);
    }
    double train = (double)T * steps / bench_secs(t0);
    double d1 = decode_rate(m, 1, ds, toks);
    double dB = decode_rate(m, db, ds, toks);
    printf("{\"bench\":\"model\",\"backend\":\"cpu\",\"threads\":%d,\"params\":%zu,"
           "\"shape\":{\"hidden\":256,\"layers\":6,\"heads\":8,\"kv_heads\":4,\"head_dim\":32,"
           "\"intermediate\":688,\"vocab\":32000,\"tied\":true},"
           "\"batch_tokens\":%d,\"seq_len\":%d,\"steps\":%d,"
           "\"forward_tokens_per_s\":%.1f,\"train_tokens_per_s\":%.1f,"
           "\"decode_tokens_per_s_batch1\":%.1f,\"decode_batch\":%d,"
           "\"decode_tokens_per_s\":%.1f,\"loss\":%.4f}\n",
           omp_get_max_threads(), m->n_params, T, L, steps, fwd, train, d1, db, dB, loss);
    free(toks);
    free(cu);
    sl_model_free(m);
    return SL_EXIT_OK;
}
