/*
 * bench_rl_step.c — `slime-bench rl-step [--steps N] [--prompts P]
 * [--samples S] [--max-new M] [--hidden H] [--layers L] [--sft-steps K]`:
 * seconds per GRPO step of the in-process RL core on the CPU, split into
 * rollout (engine.h: P prompts x S samples of up to M tokens), reward
 * (gsm8k), train (trainer_core.h: one optimizer step over the P*S samples)
 * and weight sync (copying the trainer's flat parameters into the engine's
 * own model, as a publish does). The task is the built-in arithmetic task
 * (task_arith.h) and the model its tiny Qwen3 (hidden H, L layers),
 * optionally warmed up by K SFT steps first (not timed) so that responses
 * have realistic lengths. One JSON object on stdout. It measures the
 * library calls, not the actors' messaging.
 */
#include "base.h"
#include "bench_common.h"
#include "engine.h"
#include "reward_builtin.h"
#include "task_arith.h"
#include "trainer_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int encode(const char *s, int32_t *out)
{
    int n = 0;
    for (; *s; s++) out[n++] = *s == '\n' ? SL_ARITH_NEWLINE_ID : (int32_t)(*s - ' ' + 1);
    return n;
}

static size_t decode(const int32_t *ids, int n, char *out, size_t cap)
{
    size_t k = 0;
    for (int i = 0; i < n && k + 1 < cap; i++) {
        if (ids[i] >= 1 && ids[i] <= 95) out[k++] = (char)(' ' + ids[i] - 1);
        else if (ids[i] == SL_ARITH_NEWLINE_ID) out[k++] = '\n';
    }
    out[k] = 0;
    return k;
}

int bench_rl_step(int argc, char **argv)
{
    int steps = bench_arg_int(argc, argv, "--steps", 5);
    int np = bench_arg_int(argc, argv, "--prompts", 16);
    int ns = bench_arg_int(argc, argv, "--samples", 8);
    int max_new = bench_arg_int(argc, argv, "--max-new", 16);
    int hidden = bench_arg_int(argc, argv, "--hidden", 64);
    int layers = bench_arg_int(argc, argv, "--layers", 2);
    int sft_steps = bench_arg_int(argc, argv, "--sft-steps", 0);
    if (steps < 1 || np < 1 || np > 4096 || ns < 1 || ns > 256 || max_new < 1 || max_new > 200 ||
        hidden < 8 || hidden % 4 || layers < 1 || sft_steps < 0) {
        fprintf(stderr, "bench rl-step: bad arguments\n");
        return SL_EXIT_USAGE;
    }
    int rc = SL_EXIT_FAIL;
    sl_model *tm = NULL, *em = NULL;
    sl_engine *e = NULL;
    sl_trainer *t = NULL;
    size_t n = (size_t)np * (size_t)ns, per = 48 + (size_t)max_new;
    sl_arith_item *items = calloc((size_t)np * (size_t)(steps + 1) + 64, sizeof(sl_arith_item));
    sl_gen_request *req = calloc((size_t)np, sizeof(*req));
    int32_t *prompts = malloc(sizeof(int32_t) * (size_t)np * 48);
    int32_t *tokens = malloc(sizeof(int32_t) * n * per);
    uint64_t *off = malloc(sizeof(uint64_t) * (n + 1));
    uint8_t *mask = malloc(n * per);
    float *roll = malloc(sizeof(float) * n * per), *rewards = malloc(sizeof(float) * n);
    char err[256];
    if (!items || !req || !prompts || !tokens || !off || !mask || !roll || !rewards) goto out;
    int max_tokens = (int)(n * per < 8192 ? n * per : 8192);
    if (bench_arith_model("rl-step", hidden, layers, max_tokens, &tm) ||
        bench_arith_model("rl-step", hidden, layers, max_tokens, &em))
        goto out;
    sl_engine_cfg ec = {.max_batch = n < 256 ? (int)n : 256, .max_seq_len = 48 + max_new};
    if (ec.max_batch > max_tokens) ec.max_batch = max_tokens;
    sl_trainer_cfg tc;
    sl_trainer_cfg_default(&tc);
    if (sl_engine_new(em, &ec, &e, err, sizeof(err)) || sl_trainer_new(tm, &tc, &t, err, sizeof(err))) {
        fprintf(stderr, "bench rl-step: %s\n", err);
        goto out;
    }
    sl_arith_cfg task;
    sl_arith_cfg_init(&task);
    task.target = SL_ARITH_REVERSED;

    if (sft_steps > 0) {
        /* warm-up (not timed): SFT on the train split */
        int bs = 32;
        sl_arith_item *tr = calloc((size_t)bs, sizeof(*tr));
        sl_trainer_cfg sc = tc;
        sc.loss_type = SL_LOSS_SFT;
        sc.calculate_per_token_loss = true;
        sc.global_batch_size = sc.micro_batch_size = bs;
        sc.lr = 3e-3;
        if (!tr || sl_trainer_set_cfg(t, &sc, err, sizeof(err))) {
            free(tr);
            goto out;
        }
        for (int s = 0; s < sft_steps; s++) {
            if (sl_arith_generate(&task, SL_ARITH_TRAIN, (uint64_t)s, (size_t)bs, tr)) break;
            uint64_t o = 0;
            off[0] = 0;
            for (int i = 0; i < bs; i++) {
                int pl = encode(tr[i].prompt, tokens + o);
                int tl = encode(tr[i].target, tokens + o + pl);
                tokens[o + (uint64_t)(pl + tl)] = SL_ARITH_IM_END_ID;
                for (int k = 0; k <= pl + tl; k++) mask[o + (uint64_t)k] = k >= pl;
                o += (uint64_t)(pl + tl + 1);
                off[i + 1] = o;
            }
            sl_train_batch b = {.n_samples = (uint32_t)bs, .offsets = off, .tokens = tokens,
                                .loss_mask = mask};
            if (sl_trainer_step(t, &b, NULL)) break;
        }
        free(tr);
    }
    tc.global_batch_size = (int)n;
    tc.micro_batch_size = (int)(n < 64 ? n : 64);
    tc.lr = 1e-4;
    if (sl_trainer_set_cfg(t, &tc, err, sizeof(err))) goto out;
    if (sl_arith_generate(&task, SL_ARITH_HELDOUT, 7, (size_t)np * (size_t)steps, items)) goto out;

    size_t n_params = 0;
    const float *params = sl_trainer_params(t, &n_params);
    if (sl_engine_load_weights(e, params, n_params, sl_trainer_weight_version(t))) goto out;
    double t_roll = 0, t_rew = 0, t_train = 0, t_sync = 0, reward_sum = 0;
    int64_t gen_tokens = 0, train_tokens = 0;
    for (int s = 0; s < steps; s++) {
        const sl_arith_item *it = items + (size_t)s * (size_t)np;
        for (int i = 0; i < np; i++) {
            req[i].prompt = prompts + (size_t)i * 48;
            req[i].prompt_len = encode(it[i].prompt, prompts + (size_t)i * 48);
            req[i].n_samples = ns;
            req[i].seed = (uint64_t)s * 100003u + (uint64_t)i;
        }
        sl_gen_params gp;
        sl_gen_params_default(&gp);
        gp.max_new_tokens = max_new;
        gp.stop_token_ids[0] = SL_ARITH_IM_END_ID;
        gp.n_stop_token_ids = 1;
        sl_gen_output o;
        uint64_t t0 = sl_now_ns();
        if (sl_engine_generate(e, req, np, &gp, &o)) goto out;
        t_roll += bench_secs(t0);
        gen_tokens += o.gen_tokens;
        t0 = sl_now_ns();
        for (int k = 0; k < o.n_samples; k++) {
            char text[256];
            size_t len = decode(o.samples[k].tokens, o.samples[k].n_tokens, text, sizeof(text));
            double sc = 0;
            sl_reward_gsm8k(text, len, it[o.samples[k].request].label, NULL, &sc);
            rewards[k] = (float)sc;
            reward_sum += sc;
        }
        t_rew += bench_secs(t0);
        uint64_t w = 0;
        off[0] = 0;
        for (int k = 0; k < o.n_samples; k++) {
            const sl_gen_sample *g = &o.samples[k];
            const sl_gen_request *q = &req[g->request];
            memcpy(tokens + w, q->prompt, sizeof(int32_t) * (size_t)q->prompt_len);
            memcpy(tokens + w + (uint64_t)q->prompt_len, g->tokens, sizeof(int32_t) * (size_t)g->n_tokens);
            for (int j = 0; j < q->prompt_len + g->n_tokens; j++) {
                mask[w + (uint64_t)j] = j >= q->prompt_len;
                roll[w + (uint64_t)j] = j >= q->prompt_len ? g->logprobs[j - q->prompt_len] : 0.0f;
            }
            w += (uint64_t)(q->prompt_len + g->n_tokens);
            off[k + 1] = w;
        }
        sl_gen_output_fini(&o);
        sl_train_batch b = {.n_samples = (uint32_t)n, .offsets = off, .tokens = tokens,
                            .loss_mask = mask, .rollout_logprobs = roll, .rewards = rewards,
                            .group_size = (uint32_t)ns};
        sl_train_metrics mt;
        t0 = sl_now_ns();
        if (sl_trainer_step(t, &b, &mt)) goto out;
        t_train += bench_secs(t0);
        train_tokens += (int64_t)w;
        t0 = sl_now_ns();
        if (sl_engine_load_weights(e, params, n_params, sl_trainer_weight_version(t))) goto out;
        t_sync += bench_secs(t0);
    }
    double total = t_roll + t_rew + t_train + t_sync;
    printf("{\"bench\":\"rl-step\",\"steps\":%d,\"prompts\":%d,\"samples_per_prompt\":%d,"
           "\"max_new_tokens\":%d,\"hidden\":%d,\"layers\":%d,\"params\":%zu,\"sft_steps\":%d,"
           "\"step_s\":%.5f,\"rollout_s\":%.5f,\"reward_s\":%.6f,\"train_s\":%.5f,"
           "\"weight_sync_s\":%.6f,\"response_len_mean\":%.2f,\"reward_mean\":%.4f,"
           "\"rollout_tokens_per_s\":%.0f,\"train_tokens_per_s\":%.0f}\n",
           steps, np, ns, max_new, hidden, layers, n_params, sft_steps, total / steps,
           t_roll / steps, t_rew / steps, t_train / steps, t_sync / steps,
           (double)gen_tokens / ((double)steps * (double)n), reward_sum / ((double)steps * (double)n),
           t_roll > 0 ? (double)gen_tokens / t_roll : 0, t_train > 0 ? (double)train_tokens / t_train : 0);
    rc = SL_EXIT_OK;
out:
    sl_trainer_free(t);
    sl_engine_free(e);
    sl_model_free(tm);
    sl_model_free(em);
    free(items);
    free(req);
    free(prompts);
    free(tokens);
    free(off);
    free(mask);
    free(roll);
    free(rewards);
    return rc;
}
