/*
 * bench_gpu_gen.c — slime-bench gpu-gen: the GPU rollout engine
 * (sl_engine_new_gpu) on a random Qwen2.5-0.5B-shaped model (hidden 896,
 * 24 layers, 14 heads / 2 kv heads of 64, intermediate 4864, vocab 151936,
 * tied, q/k/v bias): P prompts of S random tokens, N sampled tokens each
 * (temperature 1, top_p 1, no stop token: every response is N long, as
 * transformers' generate with min_new_tokens = max_new_tokens in
 * tests/bench/pytorch_ref.py --generate). One warm-up call (graphs
 * captured, cuBLAS plans made), then --reps timed calls; reports the median
 * call's generated tokens/s, prefill and decode time, decode steps/s.
 *
 *   slime-bench gpu-gen [--prompts P] [--prompt-len S] [--new N] [--layers L]
 *                       [--graphs 0|1] [--reps R] [--samples K] [--variants 0|1]
 * --samples K: K samples per prompt (P/K prompts, group prompt sharing).
 * --variants 1: then one call each without CUDA graphs, with the chunked
 * (reference) sampling kernel, with 8-warp decode attention blocks,
 * profiled (device ms per decode step by kind of op), and with groups of 8
 * samples per prompt; one JSON line each.
 * Not a test: it asserts nothing about speed.
 */
#include "base.h"
#include "bench_common.h"
#include "engine.h"
#include "gpu_engine.h"
#include "gpu_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SL_HAVE_CUDA

typedef struct run_t {
    double s, pre_ms, dec_ms;
    long long gen, steps, prefill;
} run_t;

/* one warm-up call, then reps timed calls: the median one in *out */
static int timed(sl_engine *e, sl_geng *gc, const sl_gen_request *req, int nreq,
                 const sl_gen_params *p, int reps, run_t *out)
{
    run_t run[64];
    int n_ok = 0;
    for (int i = -1; i < reps && i < 64; i++) {
        sl_geng_stats g0, g1;
        sl_gen_output o;
        if (i == 0) { /* the profile counts timed calls only */
            double pm[SL_GENG_PROF_N];
            sl_geng_profile(gc, pm, SL_GENG_PROF_N);
        }
        sl_geng_stats_get(gc, &g0);
        int rc = sl_engine_generate(e, req, nreq, p, &o);
        if (rc) {
            fprintf(stderr, "bench gpu-gen: generate failed (%d)\n", rc);
            return rc;
        }
        sl_geng_stats_get(gc, &g1);
        if (i >= 0)
            run[n_ok++] = (run_t){o.seconds, g1.prefill_ms - g0.prefill_ms,
                                  g1.decode_ms - g0.decode_ms, o.gen_tokens, o.decode_steps,
                                  o.prefill_tokens};
        sl_gen_output_fini(&o);
    }
    for (int i = 0; i < n_ok; i++) /* by time */
        for (int j = i + 1; j < n_ok; j++)
            if (run[j].s < run[i].s) {
                run_t t = run[i];
                run[i] = run[j], run[j] = t;
            }
    *out = run[n_ok / 2];
    return SL_OK;
}

static void print_run(const run_t *m)
{
    printf("\"generated_tokens\": %lld, \"prefill_tokens\": %lld, \"decode_steps\": %lld, "
           "\"seconds\": %.4f, \"prefill_ms\": %.1f, \"decode_ms\": %.1f, "
           "\"decode_ms_per_step\": %.3f, \"generated_tokens_per_s\": %.0f",
           m->gen, m->prefill, m->steps, m->s, m->pre_ms, m->dec_ms,
           m->steps ? m->dec_ms / m->steps : 0.0, m->gen / m->s);
}

int bench_gpu_gen(int argc, char **argv)
{
    int P = bench_arg_int(argc, argv, "--prompts", 256), S = bench_arg_int(argc, argv, "--prompt-len", 128);
    int N = bench_arg_int(argc, argv, "--new", 256), layers = bench_arg_int(argc, argv, "--layers", 24);
    int graphs = bench_arg_int(argc, argv, "--graphs", 1), reps = bench_arg_int(argc, argv, "--reps", 3);
    int K = bench_arg_int(argc, argv, "--samples", 1), variants = bench_arg_int(argc, argv, "--variants", 0);
    if (P < 1 || P > 4096 || S < 1 || N < 1 || S + N > 32768 || layers < 1 || reps < 1 ||
        reps > 50 || K < 1 || P % K) {
        fprintf(stderr, "bench gpu-gen: bad arguments\n");
        return SL_EXIT_USAGE;
    }
    sl_hf_config c;
    bench_qwen05(&c, layers);
    char err[256];
    sl_model *h = NULL;
    if (sl_model_new(&c, sl_ops_cpu(), 1, 1, &h, err, sizeof(err))) {
        fprintf(stderr, "bench gpu-gen: %s\n", err);
        return SL_EXIT_FAIL;
    }
    sl_engine_cfg cfg = {.max_batch = P, .max_seq_len = S + N};
    sl_engine *e = NULL;
    int rc = sl_engine_new_gpu(h, &cfg, 0, graphs, &e, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "bench gpu-gen: %s\n", err);
        sl_model_free(h);
        return SL_EXIT_FAIL;
    }
    int nreq = P / K;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)nreq * S);
    sl_gen_request *req = calloc((size_t)nreq, sizeof(*req));
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < (size_t)nreq * S; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tok[i] = (int32_t)(x % (uint64_t)c.vocab_size);
    }
    for (int r = 0; r < nreq; r++)
        req[r] = (sl_gen_request){.prompt = tok + (size_t)r * S, .prompt_len = S, .n_samples = K,
                                  .seed = 1234 + (uint64_t)r};
    sl_gen_params p;
    sl_gen_params_default(&p);
    p.max_new_tokens = N;
    sl_geng *gc = (sl_geng *)sl_engine_gpu(e);
    run_t m;
    if (timed(e, gc, req, nreq, &p, reps, &m) != SL_OK) {
        sl_engine_free(e);
        sl_model_free(h);
        return SL_EXIT_FAIL;
    }
    sl_geng_stats gs;
    sl_geng_stats_get(gc, &gs);
    size_t fb, tb;
    sl_gpu_mem_info(&fb, &tb);
    printf("{\"bench\": \"gpu-gen\", \"prompts\": %d, \"samples_per_prompt\": %d, "
           "\"prompt_len\": %d, \"new_tokens\": %d, \"layers\": %d, \"graphs\": %d, "
           "\"reps\": %d, ",
           P, K, S, N, layers, graphs, reps);
    print_run(&m);
    printf(", \"graphs_captured\": %lld, \"engine_device_gib\": %.2f, \"device_used_gib\": %.2f}\n",
           (long long)gs.graphs_captured, gs.device_bytes / 1073741824.0,
           (double)(tb - fb) / 1073741824.0);
    fflush(stdout);
    if (variants) {
        static const struct { const char *name; int graphs, chunked, prof, warps; } var[] = {
            {"no-graphs", 0, 0, 0, 4}, {"chunked-sampler", 1, 1, 0, 4},
            {"attention-8-warps", 1, 0, 0, 8}, {"profile", 0, 0, 1, 4}};
        for (size_t v = 0; v < sizeof var / sizeof var[0]; v++) {
            sl_geng_tune(gc, var[v].graphs, var[v].chunked, var[v].prof, var[v].warps);
            double pm[SL_GENG_PROF_N];
            sl_geng_profile(gc, pm, SL_GENG_PROF_N);
            if (timed(e, gc, req, nreq, &p, 1, &m) != SL_OK) break;
            printf("{\"bench\": \"gpu-gen\", \"variant\": \"%s\", ", var[v].name);
            print_run(&m);
            if (sl_geng_profile(gc, pm, SL_GENG_PROF_N) && m.steps) {
                static const char *cat[SL_GENG_PROF_N] = {"gemm", "attention", "qkv_cache",
                                                          "other", "lm_head", "sampling"};
                printf(", \"profile_ms_per_decode_step\": {");
                for (int i = 0; i < SL_GENG_PROF_N; i++)
                    printf("%s\"%s\": %.4f", i ? ", " : "", cat[i], pm[i] / m.steps);
                printf("}");
            }
            printf("}\n");
            fflush(stdout);
        }
        /* groups: 8 samples per prompt share its prefill */
        sl_geng_tune(gc, graphs, 0, 0, 4);
        int ng = nreq / 8 > 0 ? nreq / 8 : 1;
        for (int r = 0; r < ng; r++) req[r].n_samples = nreq / ng;
        if (timed(e, gc, req, ng, &p, 1, &m) == SL_OK) {
            printf("{\"bench\": \"gpu-gen\", \"variant\": \"groups-of-%d\", ", nreq / ng);
            print_run(&m);
            printf("}\n");
        }
    }
    free(tok);
    free(req);
    sl_engine_free(e);
    sl_model_free(h);
    return SL_OK;
}
#else
int bench_gpu_gen(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("{\"bench\": \"gpu-gen\", \"error\": \"built without CUDA\"}\n");
    return SL_EXIT_FAIL;
}
#endif
