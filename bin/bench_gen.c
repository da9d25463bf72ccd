/*
 * bench_gen.c — `slime-bench gen [--requests N] [--max-new M] [--hidden H]
 * [--layers L]`: the engine's scheduler (engine.h sl_engine_submit/step),
 * the continuous batching behind the generation service: N requests of M
 * tokens each (EOS ignored) on the built-in arithmetic task's tiny Qwen3
 * (random weights), submitted one at a time (1 caller) and then with 8 in
 * flight (8 callers). Reports requests/s and tokens/s of each as one JSON
 * object. It measures the library, not the mailbox round trips
 * (tests/rl/test_gen_service.sh prints those).
 */
#include "base.h"
#include "bench_common.h"
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run N requests keeping INFLIGHT of them submitted; seconds, tokens. */
static int run(sl_engine *e, int n, int inflight, int max_new, double *secs, long long *tokens)
{
    static const int32_t prompt[] = {18, 19, 12, 20, 21, 30}; /* "12+34=" */
    int sent = 0, done = 0;
    *tokens = 0;
    uint64_t t0 = sl_now_ns();
    while (done < n) {
        while (sent < n && sent - done < inflight) {
            sl_engine_seq_req r = {.prompt = prompt, .prompt_len = 6, .seed = (uint64_t)sent};
            sl_gen_params_default(&r.params);
            r.params.max_new_tokens = max_new;
            if (sl_engine_submit(e, &r, NULL)) return SL_EINVAL;
            sent++;
        }
        int rc = sl_engine_step(e, true, 512);
        if (rc) return rc;
        sl_engine_done d;
        while (sl_engine_take_done(e, &d)) {
            *tokens += d.n_tokens;
            done++;
            sl_engine_done_fini(&d);
        }
    }
    *secs = (double)(sl_now_ns() - t0) / 1e9;
    return SL_OK;
}

int bench_gen(int argc, char **argv)
{
    int n = bench_arg_int(argc, argv, "--requests", 64);
    int max_new = bench_arg_int(argc, argv, "--max-new", 64);
    int hidden = bench_arg_int(argc, argv, "--hidden", 64);
    int layers = bench_arg_int(argc, argv, "--layers", 2);
    if (n < 1 || n > 100000 || max_new < 1 || max_new > 200 || hidden < 8 || hidden % 4 || layers < 1) {
        fprintf(stderr, "bench gen: bad arguments\n");
        return SL_EXIT_USAGE;
    }
    sl_model *m = NULL;
    sl_engine *e = NULL;
    if (bench_arith_model("gen", hidden, layers, 256, &m)) return SL_EXIT_FAIL;
    sl_engine_cfg ec = {.max_batch = 64, .max_seq_len = 256, .max_sessions = 0};
    char err[256];
    if (sl_engine_new(m, &ec, &e, err, sizeof err)) {
        fprintf(stderr, "bench gen: %s\n", err);
        sl_model_free(m);
        return SL_EXIT_FAIL;
    }
    double s1 = 0, s8 = 0;
    long long t1 = 0, t8 = 0;
    int rc = run(e, n, 1, max_new, &s1, &t1);
    if (!rc) rc = run(e, n, 8, max_new, &s8, &t8);
    if (!rc)
        printf("{\"bench\":\"gen\",\"requests\":%d,\"max_new\":%d,\"hidden\":%d,\"layers\":%d,"
               "\"callers_1\":{\"requests_per_s\":%.1f,\"tokens_per_s\":%.0f},"
               "\"callers_8\":{\"requests_per_s\":%.1f,\"tokens_per_s\":%.0f}}\n",
               n, max_new, hidden, layers, n / s1, (double)t1 / s1, n / s8, (double)t8 / s8);
    else
        fprintf(stderr, "bench gen: %s\n", sl_strerror(rc));
    sl_engine_free(e);
    sl_model_free(m);
    return rc ? SL_EXIT_FAIL : SL_EXIT_OK;
}
