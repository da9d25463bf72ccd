/*
 * test_trainer_core.c — one training step: it lowers the loss, micro-
 * batching and packing do not change the step, global_batch_size and
 * num_steps_per_rollout are respected (with old log-probs), the SFT loss is
 * the mean NLL of the response, GRPO moves log-probs with the advantage
 * sign, KL to the reference, the temperature-scaled log-probs, save/load
 * continues identically, and bad batches or states are refused.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataset.h"
#include "sampler.h"
#include "trainer_core.h"
#include "tiny_model.h"

#define VOCAB TINY_TRAINER_VOCAB
#define NS 8     /* samples in the test batch */
#define MAXT 256 /* tokens */

static sl_model *tiny_model(uint64_t seed, int max_tokens)
{
    return tiny_model_new(TINY_TRAINER_SHAPE, seed, max_tokens);
}

/* A fixed batch: NS samples of 3..6 prompt tokens and 2..7 response tokens. */
typedef struct tbatch {
    int32_t tokens[MAXT];
    uint64_t off[NS + 1];
    uint8_t mask[MAXT];
    float roll[MAXT];
    float rewards[NS];
    sl_train_batch b;
} tbatch;

static void make_batch(tbatch *t, uint64_t seed)
{
    memset(t, 0, sizeof(*t));
    uint64_t o = 0;
    for (int i = 0; i < NS; i++) {
        int pl = 3 + (int)(sl_sampler_uniform(seed, (uint64_t)i, 0) * 4);
        int rl = 2 + (int)(sl_sampler_uniform(seed, (uint64_t)i, 1) * 6);
        for (int k = 0; k < pl + rl; k++) {
            t->tokens[o + (uint64_t)k] = (int32_t)(sl_sampler_uniform(seed, (uint64_t)i, 10 + (uint64_t)k) * VOCAB);
            t->mask[o + (uint64_t)k] = k >= pl;
            t->roll[o + (uint64_t)k] = k >= pl ? -3.0f : 0.0f;
        }
        o += (uint64_t)(pl + rl);
        t->off[i + 1] = o;
        t->rewards[i] = (float)(i % 3 == 0);
    }
    t->b = (sl_train_batch){.n_samples = NS, .offsets = t->off, .tokens = t->tokens,
                            .loss_mask = t->mask, .rollout_logprobs = t->roll,
                            .rewards = t->rewards, .group_size = 4};
}

static sl_trainer *trainer_for(sl_model *m, const sl_trainer_cfg *c)
{
    sl_trainer *t = NULL;
    char err[256];
    int rc = sl_trainer_new(m, c, &t, err, sizeof(err));
    if (rc) print_message("%s\n", err);
    assert_int_equal(rc, 0);
    return t;
}

static double masked_nll(sl_trainer *t, const tbatch *tb)
{
    float lp[MAXT];
    assert_int_equal(sl_trainer_logprobs(t, &tb->b, lp, NULL), 0);
    double s = 0, n = 0;
    for (uint64_t k = 0; k < tb->off[NS]; k++)
        if (tb->mask[k]) {
            s -= lp[k];
            n += 1;
        }
    return s / n;
}

static void sft_loss_is_the_mean_nll_and_a_step_lowers_it(void **state)
{
    (void)state;
    sl_model *m = tiny_model(1, 128);
    tbatch tb;
    make_batch(&tb, 1);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.loss_type = SL_LOSS_SFT;
    c.calculate_per_token_loss = true;
    c.global_batch_size = NS;
    c.micro_batch_size = 3;
    c.lr = 1e-2;
    sl_trainer *t = trainer_for(m, &c);
    double before = masked_nll(t, &tb);
    sl_train_metrics mt;
    tb.b.rewards = NULL; /* SFT needs none */
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    print_message("sft: nll %.5f, step loss %.5f\n", before, mt.loss);
    assert_true(fabs(mt.loss - before) < 1e-5);
    assert_true(fabs(mt.pg_loss - before) < 1e-5);
    assert_int_equal(mt.steps, 1);
    assert_int_equal(mt.samples, NS);
    double after = masked_nll(t, &tb);
    assert_true(after < before - 0.01);
    for (int i = 0; i < 5; i++) assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    assert_true(masked_nll(t, &tb) < after);
    sl_trainer_counters ctr;
    sl_trainer_get_counters(t, &ctr);
    assert_int_equal(ctr.optimizer_step, 6);
    assert_int_equal(ctr.weight_version, 6);
    assert_int_equal(sl_trainer_weight_version(t), 6);
    assert_int_equal(ctr.samples_trained, 6 * NS);
    sl_trainer_free(t);
    sl_model_free(m);
}

static void grpo_step_moves_logprobs_with_the_advantage_and_lowers_the_loss(void **state)
{
    (void)state;
    sl_model *m = tiny_model(2, 128);
    tbatch tb;
    make_batch(&tb, 2);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.global_batch_size = NS;
    c.micro_batch_size = 2;
    c.lr = 3e-3;
    sl_trainer *t = trainer_for(m, &c);
    float before[MAXT], after[MAXT];
    assert_int_equal(sl_trainer_logprobs(t, &tb.b, before, NULL), 0);
    sl_train_metrics m1, m2;
    assert_int_equal(sl_trainer_step(t, &tb.b, &m1), 0);
    assert_int_equal(sl_trainer_logprobs(t, &tb.b, after, NULL), 0);
    /* samples with reward 1 (above their group's mean) gain probability */
    for (int i = 0; i < NS; i++) {
        double d = 0;
        for (uint64_t k = tb.off[i]; k < tb.off[i + 1]; k++)
            if (tb.mask[k]) d += after[k] - before[k];
        if (tb.rewards[i] > 0) assert_true(d > 0);
        else assert_true(d < 0);
    }
    assert_true(fabs(m1.reward_mean - 3.0 / 8.0) < 1e-6);
    assert_true(m1.grad_norm > 0 && isfinite(m1.grad_norm));
    assert_true(m1.entropy > 0);
    assert_true(fabs(m1.lr - 3e-3) < 1e-12);
    /* the rollout log-probs were -3: the first forward's mean distance */
    double diff = 0, n = 0;
    for (uint64_t k = 0; k < tb.off[NS]; k++)
        if (tb.mask[k]) {
            diff += fabs(before[k] + 3.0);
            n++;
        }
    assert_true(fabs(m1.train_rollout_logprob_abs_diff - diff / n) < 1e-5);
    /* the clipped surrogate loss on this batch, against the log-probs
     * before the step, went down (at the step it was -mean advantage) */
    float adv_s[NS], adv[MAXT], maskf[MAXT];
    size_t off[NS + 1];
    assert_int_equal(sl_rl_group_rewards(tb.rewards, NS, 4, SL_ADV_GRPO, true, true, adv_s), 0);
    for (int i = 0; i <= NS; i++) off[i] = (size_t)tb.off[i];
    for (int i = 0; i < NS; i++)
        for (uint64_t k = tb.off[i]; k < tb.off[i + 1]; k++) {
            adv[k] = adv_s[i];
            maskf[k] = tb.mask[k];
        }
    sl_rl_loss_config lc;
    sl_rl_loss_config_default(&lc);
    sl_rl_loss_input in = {.n_samples = NS, .offsets = off, .loss_mask = maskf, .logp = after,
                           .old_logp = before, .advantages = adv};
    sl_rl_loss_metrics lm;
    assert_int_equal(sl_rl_loss(&lc, &in, &lm, NULL, NULL), 0);
    print_message("grpo: surrogate loss %.5f at the step, %.5f after it\n", m1.loss, lm.loss);
    assert_true(lm.loss < m1.loss - 1e-3);
    assert_int_equal(sl_trainer_step(t, &tb.b, &m2), 0);
    assert_true(m2.steps == 1);
    sl_trainer_free(t);
    sl_model_free(m);
}

/* Run one step with the given micro-batch size and model max_tokens; return
 * the parameters after it and the gradient norm. */
static float *step_params(int mbs, int max_tokens, bool per_token, sl_loss_type lt, double *gn)
{
    sl_model *m = tiny_model(3, max_tokens);
    tbatch tb;
    make_batch(&tb, 3);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.loss_type = lt;
    c.calculate_per_token_loss = per_token;
    c.global_batch_size = NS;
    c.micro_batch_size = mbs;
    c.entropy_coef = 0.01f;
    c.clip_grad = 0;
    c.lr = 1e-3;
    sl_trainer *t = trainer_for(m, &c);
    sl_train_metrics mt;
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    *gn = mt.grad_norm;
    float *p = malloc(sizeof(float) * m->n_params);
    memcpy(p, m->params_mem, sizeof(float) * m->n_params);
    p[0] = (float)m->n_params; /* first element: count (the embedding's is not compared) */
    sl_trainer_free(t);
    sl_model_free(m);
    return p;
}

static void micro_batches_and_packing_give_the_same_step_as_one_batch(void **state)
{
    (void)state;
    for (int v = 0; v < 3; v++) {
        bool per_token = v >= 1;
        sl_loss_type lt = v == 2 ? SL_LOSS_SFT : SL_LOSS_POLICY;
        double g_big, g_micro, g_pack;
        float *big = step_params(NS, 128, per_token, lt, &g_big);
        float *micro = step_params(1, 128, per_token, lt, &g_micro);
        float *pack = step_params(4, 14, per_token, lt, &g_pack); /* forwards of <= 14 tokens */
        size_t n = (size_t)big[0];
        double maxd = 0, maxd2 = 0;
        for (size_t i = 1; i < n; i++) {
            maxd = fmax(maxd, fabs((double)big[i] - micro[i]));
            maxd2 = fmax(maxd2, fabs((double)big[i] - pack[i]));
        }
        print_message("%s %s: grad norm %.6f / %.6f / %.6f, max param diff %.2e / %.2e\n",
                      lt == SL_LOSS_SFT ? "sft" : "grpo", per_token ? "per-token" : "per-sample",
                      g_big, g_micro, g_pack, maxd, maxd2);
        assert_true(fabs(g_big - g_micro) <= 1e-4 * g_big);
        assert_true(fabs(g_big - g_pack) <= 1e-4 * g_big);
        assert_true(maxd < 1e-5 && maxd2 < 1e-5);
        free(big);
        free(micro);
        free(pack);
    }
}

static void global_batch_size_sets_the_number_of_steps_and_old_logprobs(void **state)
{
    (void)state;
    sl_model *m = tiny_model(4, 128);
    tbatch tb;
    make_batch(&tb, 4);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.global_batch_size = 4;
    c.micro_batch_size = 2;
    c.lr = 1e-2;
    sl_trainer *t = trainer_for(m, &c);
    sl_train_metrics mt;
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    assert_int_equal(mt.steps, 2);
    assert_int_equal(mt.optimizer_step, 2);
    /* the second step trains against old log-probs from before the first */
    assert_true(fabs(mt.ppo_kl) > 1e-7);
    assert_int_equal(sl_trainer_weight_version(t), 1); /* one publish per call */
    char err[256];
    c.num_steps_per_rollout = 2;
    assert_int_equal(sl_trainer_set_cfg(t, &c, err, sizeof(err)), 0);
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    assert_int_equal(mt.optimizer_step, 4);
    c.num_steps_per_rollout = 3;
    assert_int_equal(sl_trainer_set_cfg(t, &c, err, sizeof(err)), 0);
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), SL_EINVAL);
    c.num_steps_per_rollout = 0;
    c.global_batch_size = 3; /* 8 samples are not a multiple of 3 */
    assert_int_equal(sl_trainer_set_cfg(t, &c, err, sizeof(err)), 0);
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), SL_EINVAL);
    c.global_batch_size = 8;
    assert_int_equal(sl_trainer_set_cfg(t, &c, err, sizeof(err)), 0);
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    assert_int_equal(mt.steps, 1);
    assert_true(mt.ppo_kl == 0.0); /* one step: old = current */
    sl_trainer_counters ctr;
    sl_trainer_get_counters(t, &ctr);
    assert_int_equal(ctr.optimizer_step, 5);
    assert_int_equal(ctr.rollout_step, 3);
    sl_trainer_free(t);
    sl_model_free(m);
}

static void kl_loss_against_the_frozen_reference_grows_from_zero(void **state)
{
    (void)state;
    sl_model *m = tiny_model(5, 128);
    tbatch tb;
    make_batch(&tb, 5);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.global_batch_size = NS;
    c.use_kl_loss = true;
    c.kl_loss_coef = 0.1f;
    c.kl_loss_type = SL_KL_LOW_VAR_KL;
    c.lr = 1e-2;
    sl_trainer *t = trainer_for(m, &c);
    sl_train_metrics mt;
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    assert_true(fabs(mt.kl) < 1e-7);
    for (int i = 0; i < 3; i++) assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    assert_true(mt.kl > 1e-5);
    /* KL in the reward (kl_coef) works too and needs no kl loss */
    c.use_kl_loss = false;
    c.kl_coef = 0.05f;
    char err[256];
    assert_int_equal(sl_trainer_set_cfg(t, &c, err, sizeof(err)), 0);
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    assert_true(mt.kl > 1e-5);
    sl_trainer_free(t);
    sl_model_free(m);
}

static void logprobs_are_those_of_the_temperature_scaled_policy(void **state)
{
    (void)state;
    sl_model *m = tiny_model(6, 128);
    tbatch tb;
    make_batch(&tb, 6);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.rollout_temperature = 0.6f;
    sl_trainer *t = trainer_for(m, &c);
    float lp[MAXT], ent[MAXT];
    float *final_norm0 = malloc(sizeof(float) * 16);
    memcpy(final_norm0, m->w.final_norm, sizeof(float) * 16);
    assert_int_equal(sl_trainer_logprobs(t, &tb.b, lp, ent), 0);
    assert_memory_equal(final_norm0, m->w.final_norm, sizeof(float) * 16); /* restored */
    int L = (int)tb.off[1];
    float logits[MAXT * VOCAB];
    int32_t cu[2] = {0, L};
    assert_int_equal(sl_model_forward_logits(m, tb.tokens, cu, 1, logits), 0);
    assert_true(lp[0] == 0.0f);
    for (int k = 1; k < L; k++) {
        float want = sl_logprob_of(logits + (size_t)(k - 1) * VOCAB, VOCAB, 0.6f, tb.tokens[k]);
        assert_true(fabsf(want - lp[k]) < 1e-4f);
        assert_true(ent[k] > 0);
    }
    free(final_norm0);
    sl_trainer_free(t);
    sl_model_free(m);
}

static void save_then_load_continues_identically(void **state)
{
    (void)state;
    char dir[] = "/tmp/sl_trainer_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ck[128];
    snprintf(ck, sizeof(ck), "%s/ckpt", dir);
    tbatch tb;
    make_batch(&tb, 7);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.global_batch_size = 4;
    c.micro_batch_size = 2;
    c.lr = 1e-2;
    c.lr_warmup_steps = 3;
    c.lr_decay_steps = 10;
    c.lr_decay_style = SL_LR_COSINE;
    sl_model *a = tiny_model(7, 128), *b = tiny_model(8, 128);
    sl_trainer *ta = trainer_for(a, &c), *tbt = trainer_for(b, &c);
    sl_train_metrics ma, mb;
    char err[256];
    assert_int_equal(sl_trainer_step(ta, &tb.b, &ma), 0);
    assert_int_equal(sl_trainer_save(ta, ck, "{\"cursor\": 17}", err, sizeof(err)), 0);
    assert_int_equal(sl_trainer_save(ta, ck, "{\"cursor\": 17}", err, sizeof(err)), 0); /* replaces */
    assert_int_equal(sl_trainer_step(ta, &tb.b, &ma), 0);
    char *extra = NULL;
    int rc = sl_trainer_load(tbt, ck, &extra, err, sizeof(err));
    if (rc) print_message("%s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(extra);
    assert_string_equal(extra, "{\"cursor\":17}");
    free(extra);
    sl_trainer_counters ca, cb;
    sl_trainer_get_counters(tbt, &cb);
    assert_int_equal(cb.optimizer_step, 2);
    assert_int_equal(cb.weight_version, 1);
    assert_int_equal(sl_trainer_step(tbt, &tb.b, &mb), 0);
    assert_memory_equal(a->params_mem, b->params_mem, sizeof(float) * a->n_params);
    assert_true(ma.loss == mb.loss && ma.lr == mb.lr);
    sl_trainer_get_counters(ta, &ca);
    sl_trainer_get_counters(tbt, &cb);
    assert_memory_equal(&ca, &cb, sizeof(ca));

    /* a corrupt optimizer state is refused and changes nothing */
    char path[200];
    snprintf(path, sizeof(path), "%s/optimizer.bin", ck);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 100, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    assert_int_equal(sl_trainer_load(tbt, ck, NULL, err, sizeof(err)), SL_ECHECKSUM);
    assert_memory_equal(a->params_mem, b->params_mem, sizeof(float) * a->n_params);
    truncate(path, 40);
    assert_int_equal(sl_trainer_load(tbt, ck, NULL, err, sizeof(err)), SL_EINVAL);
    snprintf(path, sizeof(path), "%s/trainer_state.json", ck);
    f = fopen(path, "w");
    fputs("{\"rollout_step\": -1}", f);
    fclose(f);
    assert_int_equal(sl_trainer_load(tbt, ck, NULL, err, sizeof(err)), SL_EINVAL);
    assert_int_equal(sl_trainer_load(tbt, "/nonexistent/ckpt", NULL, err, sizeof(err)), SL_ENOENT);
    assert_int_equal(sl_trainer_save(ta, ck, "[1]", err, sizeof(err)), SL_EINVAL);
    /* clean up */
    const char *files[] = {"config.json", "model.safetensors", "optimizer.bin", "trainer_state.json"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", ck, files[i]);
        unlink(path);
    }
    rmdir(ck);
    rmdir(dir);
    sl_trainer_free(ta);
    sl_trainer_free(tbt);
    sl_model_free(a);
    sl_model_free(b);
}

static void resetting_the_optimizer_restarts_the_schedule_and_keeps_the_version(void **state)
{
    (void)state;
    sl_model *m = tiny_model(10, 128);
    tbatch tb;
    make_batch(&tb, 10);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.global_batch_size = NS;
    c.lr = 1e-2;
    c.lr_warmup_steps = 4;
    sl_trainer *t = trainer_for(m, &c);
    sl_train_metrics mt;
    for (int i = 0; i < 3; i++) assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    assert_true(fabs(mt.lr - 1e-2 * 2 / 4) < 1e-12); /* third step: warm-up 2/4 */
    sl_trainer_reset_optimizer(t);
    sl_trainer_counters ctr;
    sl_trainer_get_counters(t, &ctr);
    assert_int_equal(ctr.optimizer_step, 0);
    assert_int_equal(ctr.weight_version, 3);
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), 0);
    assert_true(mt.lr == 0.0); /* warm-up starts over (Megatron: lr_warmup_init at step 0) */
    assert_int_equal(mt.optimizer_step, 1);
    assert_int_equal(sl_trainer_weight_version(t), 4);
    sl_trainer_reset_optimizer(NULL);
    sl_trainer_free(t);
    sl_model_free(m);
}

static void a_shared_memory_batch_view_trains_like_the_arrays_it_holds(void **state)
{
    (void)state;
    tbatch tb;
    make_batch(&tb, 11);
    /* write the batch in the sample-batch layout, then view it */
    sl_batch_dims d = {.n_samples = NS, .n_tokens = tb.off[NS], .meta_bytes = 0,
                       .flags = SL_BATCH_HAS_LOGPROBS};
    size_t size = 0;
    assert_int_equal(sl_batch_size(&d, &size), 0);
    uint64_t *buf = calloc(size / 8 + 1, 8);
    sl_batch_writer w;
    assert_int_equal(sl_batch_writer_init(&w, buf, size, &d, 3, 1, VOCAB), 0);
    for (int i = 0; i < NS; i++) {
        uint64_t id = 0;
        assert_int_equal(sl_sample_id_pack(0, (uint64_t)(i / 4), (uint32_t)(i % 4), &id), 0);
        uint32_t pl = 0;
        while (!tb.mask[tb.off[i] + pl]) pl++;
        sl_batch_sample_in in = {.tokens = tb.tokens + tb.off[i],
                                 .n_tokens = (uint32_t)(tb.off[i + 1] - tb.off[i]),
                                 .prompt_len = pl,
                                 .logprobs = tb.roll + tb.off[i],
                                 .loss_mask = tb.mask + tb.off[i],
                                 .reward = tb.rewards[i],
                                 .sample_id = id,
                                 .group_id = sl_sample_prompt_id(id),
                                 .weight_version = 3};
        assert_int_equal(sl_batch_writer_add(&w, &in), 0);
    }
    size_t len = 0;
    assert_int_equal(sl_batch_writer_finish(&w, &len), 0);
    sl_batch_view v;
    char err[256];
    assert_int_equal(sl_batch_view_open(&v, buf, len, VOCAB, 0, err, sizeof(err)), 0);
    sl_train_batch vb;
    sl_train_batch_from_view(&v, 4, &vb);
    assert_int_equal(vb.n_samples, NS);
    assert_null(vb.advantages);
    /* the same step from the arrays and from the view */
    sl_model *a = tiny_model(11, 128), *b = tiny_model(11, 128);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.global_batch_size = NS;
    c.lr = 1e-2;
    sl_trainer *ta = trainer_for(a, &c), *tbt = trainer_for(b, &c);
    sl_train_metrics ma, mb;
    assert_int_equal(sl_trainer_step(ta, &tb.b, &ma), 0);
    assert_int_equal(sl_trainer_step(tbt, &vb, &mb), 0);
    assert_memory_equal(a->params_mem, b->params_mem, sizeof(float) * a->n_params);
    assert_true(ma.train_rollout_logprob_abs_diff == mb.train_rollout_logprob_abs_diff);
    sl_trainer_free(ta);
    sl_trainer_free(tbt);
    sl_model_free(a);
    sl_model_free(b);
    free(buf);
}

static void bad_batches_and_configs_are_refused(void **state)
{
    (void)state;
    sl_model *m = tiny_model(9, 16);
    sl_trainer_cfg c;
    sl_trainer_cfg_default(&c);
    c.global_batch_size = NS;
    sl_trainer *t = trainer_for(m, &c);
    tbatch tb;
    sl_train_metrics mt;
    make_batch(&tb, 9);
    tb.mask[0] = 1; /* the first token cannot be trained */
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), SL_EINVAL);
    make_batch(&tb, 9);
    tb.tokens[5] = VOCAB;
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), SL_EINVAL);
    make_batch(&tb, 9);
    tb.mask[5] = 2;
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), SL_EINVAL);
    make_batch(&tb, 9);
    tb.b.rewards = NULL; /* policy loss without rewards or advantages */
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), SL_EINVAL);
    make_batch(&tb, 9);
    tb.off[3] = tb.off[2]; /* an empty sample */
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), SL_EINVAL);
    make_batch(&tb, 9);
    tb.rewards[2] = NAN;
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), SL_EINVAL);
    make_batch(&tb, 9);
    tb.b.group_size = 3;
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), SL_EINVAL);
    /* a sample longer than the model's max_tokens (16) */
    make_batch(&tb, 9);
    tb.off[1] = 17;
    for (int i = 2; i <= NS; i++) tb.off[i] = tb.off[i - 1] + 2;
    assert_int_equal(sl_trainer_step(t, &tb.b, &mt), SL_EINVAL);
    assert_int_equal(sl_trainer_step(t, NULL, &mt), SL_EINVAL);
    /* nothing was trained */
    sl_trainer_counters ctr;
    sl_trainer_get_counters(t, &ctr);
    assert_int_equal(ctr.optimizer_step, 0);
    char err[256];
    sl_trainer_cfg bad = c;
    bad.micro_batch_size = NS + 1;
    assert_int_equal(sl_trainer_set_cfg(t, &bad, err, sizeof(err)), SL_EINVAL);
    bad = c;
    bad.eps_clip_c = 0.5f;
    assert_int_equal(sl_trainer_cfg_check(&bad, err, sizeof(err)), SL_EINVAL);
    bad = c;
    bad.rollout_temperature = 0.0f;
    assert_int_equal(sl_trainer_cfg_check(&bad, err, sizeof(err)), SL_EINVAL);
    bad = c;
    bad.adam_beta2 = 1.0;
    sl_trainer *t2 = NULL;
    assert_int_equal(sl_trainer_new(m, &bad, &t2, err, sizeof(err)), SL_EINVAL);
    assert_null(t2);
    sl_trainer_free(t);
    sl_trainer_free(NULL);
    sl_model_free(m);
}

int main(int argc, char **argv)
{
    (void)argc;
    /* libgomp's threads spin-wait between parallel regions; on cores shared
     * with other processes that makes the tiny models' many short ops 10-20x
     * slower. The policy is read when libgomp loads: set it, run again once. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sft_loss_is_the_mean_nll_and_a_step_lowers_it),
        cmocka_unit_test(grpo_step_moves_logprobs_with_the_advantage_and_lowers_the_loss),
        cmocka_unit_test(micro_batches_and_packing_give_the_same_step_as_one_batch),
        cmocka_unit_test(global_batch_size_sets_the_number_of_steps_and_old_logprobs),
        cmocka_unit_test(kl_loss_against_the_frozen_reference_grows_from_zero),
        cmocka_unit_test(logprobs_are_those_of_the_temperature_scaled_policy),
        cmocka_unit_test(save_then_load_continues_identically),
        cmocka_unit_test(resetting_the_optimizer_restarts_the_schedule_and_keeps_the_version),
        cmocka_unit_test(a_shared_memory_batch_view_trains_like_the_arrays_it_holds),
        cmocka_unit_test(bad_batches_and_configs_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
