/*
 * test_trainer_dp.c — the trainer's data parallelism (sl_trainer_enable_dp,
 * trainer_core.h) gives one GPU's training: three processes train the same
 * small Qwen3 on the same batches, one alone (the reference) and two as
 * ranks 0 and 1 of an NCCL group with ZeRO-1, each rank training half of
 * every global batch:
 *  - GRPO steps with what changes the arithmetic across ranks: samples of
 *    different lengths (ranks get different token counts), two optimizer
 *    steps per batch (old log-probs), a KL loss against the reference,
 *    entropy, clipping, temperature 0.8; then the same with the per-token
 *    loss (global token denominator);
 *  - each step's metrics (loss, KL, entropy, grad norm, abs diff) on both
 *    ranks equal the reference's within bf16 reduction-order tolerance and
 *    each other exactly;
 *  - rank 0 saves after sl_trainer_collect (the moments of both shards),
 *    both ranks load that checkpoint into fresh trainers with data
 *    parallelism on, and the next step matches the reference that never
 *    stopped (resume under ZeRO-1);
 *  - the final parameters of both ranks match the reference's.
 * With one GPU both ranks share it: each names its own NCCL host
 * (NCCL_HOSTID) and NCCL talks over loopback sockets, the path it takes
 * between machines. Exit 0 pass, 1 failure, 77 no GPU / no CUDA.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "gpu_model.h"
#include "model.h"
#include "nccl_comm.h"
#include "trainer_core.h"

#ifndef SL_HAVE_CUDA
int main(void)
{
    printf("built without CUDA: skipped\n");
    return 77;
}
#else
#include "gpu_test.h"

#define NS 16
#define GS 4
#define NB 3 /* batches before the save; one more after the load */
#define NM 5

typedef struct out {
    double met[NB + 1][NM];
    int ok;
} out;

static int id_pipe[2];
static int one_gpu;
static char ck_dir[64];

static void cfg_model(sl_hf_config *c)
{
    sl_hf_config_defaults(c);
    c->arch = SL_ARCH_QWEN3;
    snprintf(c->model_type, sizeof c->model_type, "qwen3");
    c->hidden_size = 128, c->num_hidden_layers = 2, c->num_attention_heads = 2;
    c->num_key_value_heads = 1, c->head_dim = 64, c->intermediate_size = 256, c->vocab_size = 300;
    c->max_position_embeddings = 256, c->tie_word_embeddings = 1, c->qk_norm = 1;
}

/* batch k (same in every process: its own generator) */
typedef struct batch {
    uint64_t off[NS + 1];
    int32_t tok[NS * 40];
    uint8_t mask[NS * 40];
    float rew[NS], roll[NS * 40];
    sl_train_batch b;
} batch;

static void make_batch(int k, batch *B)
{
    g_rng = 0x9e3779b97f4a7c15ull + (uint64_t)k * 7919;
    B->off[0] = 0;
    for (int i = 0; i < NS; i++) {
        int pl = 6 + (int)(urand() * 7), rl = 4 + (int)(urand() * 17);
        B->off[i + 1] = B->off[i] + (uint64_t)(pl + rl);
        for (int t = 0; t < pl + rl; t++) {
            B->tok[B->off[i] + t] = (int32_t)(urand() * 300);
            B->mask[B->off[i] + t] = t >= pl;
            B->roll[B->off[i] + t] = t ? (float)(-1.0 - 3.0 * urand()) : 0.0f;
        }
        B->rew[i] = urand() < 0.5 ? 1.0f : 0.0f;
    }
    B->b = (sl_train_batch){.n_samples = NS, .offsets = B->off, .tokens = B->tok,
                            .loss_mask = B->mask, .rollout_logprobs = B->roll, .rewards = B->rew,
                            .group_size = GS};
}

static void cfg_step(int k, sl_trainer_cfg *cfg)
{
    sl_trainer_cfg_default(cfg);
    cfg->rollout_temperature = 0.8f;
    cfg->global_batch_size = 8, cfg->micro_batch_size = 2;
    cfg->use_kl_loss = true, cfg->kl_loss_coef = 0.1f, cfg->kl_loss_type = SL_KL_LOW_VAR_KL;
    cfg->entropy_coef = 0.01f;
    cfg->lr = 1e-3, cfg->weight_decay = 0.01, cfg->clip_grad = 0.5;
    cfg->calculate_per_token_loss = k >= 2; /* the last batches: token denominator */
}

/* a trainer on a fresh model of the test's weights; rank >= 0: data parallel */
static sl_trainer *make_trainer(sl_nccl *nc, sl_model **mo, sl_gpum **go)
{
    char err[512];
    sl_hf_config c;
    cfg_model(&c);
    sl_model *m = NULL;
    sl_gpum *g = NULL;
    sl_trainer *t = NULL;
    sl_trainer_cfg cfg;
    cfg_step(0, &cfg);
    if (sl_model_new(&c, sl_ops_cpu(), 1, 11, &m, err, sizeof err) || sl_gpum_new(m, 512, &g, err, sizeof err) ||
        sl_trainer_new_gpu(m, g, &cfg, &t, err, sizeof err) ||
        (nc && sl_trainer_enable_dp(t, nc, 64 << 10, true, err, sizeof err))) {
        fprintf(stderr, "trainer: %s\n", err);
        return NULL;
    }
    *mo = m, *go = g;
    return t;
}

static int train(sl_trainer *t, int k, double *met)
{
    batch *B = malloc(sizeof *B);
    make_batch(k, B);
    sl_trainer_cfg cfg;
    cfg_step(k, &cfg);
    char err[256];
    sl_train_metrics mt;
    int rc = sl_trainer_set_cfg(t, &cfg, err, sizeof err);
    if (!rc) rc = sl_trainer_step(t, &B->b, &mt);
    free(B);
    if (rc) return fprintf(stderr, "step %d: %s\n", k, sl_strerror(rc)), 1;
    met[0] = mt.loss, met[1] = mt.kl, met[2] = mt.entropy, met[3] = mt.grad_norm;
    met[4] = mt.train_rollout_logprob_abs_diff;
    return 0;
}

/* rank -1: the reference */
static int child(int rank, int fd)
{
    char err[256];
    out o = {0};
    if (sl_gpu_set_device(dp_test_device(rank, one_gpu), err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    sl_nccl *nc;
    if (dp_test_join(rank, id_pipe, &nc)) return 1;
    sl_model *m;
    sl_gpum *g;
    sl_trainer *t = make_trainer(nc, &m, &g);
    if (!t) return 1;
    for (int k = 0; k < NB; k++)
        if (train(t, k, o.met[k])) return 1;
    if (rank >= 0) {
        /* every rank collects (ZeRO-1: the moments of both shards), rank 0 saves */
        if (sl_trainer_collect(t)) return fprintf(stderr, "collect failed\n"), 1;
        if (rank == 0 && sl_trainer_save(t, ck_dir, NULL, err, sizeof err)) return fprintf(stderr, "save: %s\n", err), 1;
        double bar = 1;
        if (sl_nccl_sum_host(nc, &bar, 1) || bar != 2) return fprintf(stderr, "barrier failed\n"), 1;
        /* a fresh trainer per rank, data parallel, from the checkpoint */
        sl_trainer_free(t), sl_gpum_free(g), sl_model_free(m);
        if (!(t = make_trainer(nc, &m, &g))) return 1;
        if (sl_trainer_load(t, ck_dir, NULL, err, sizeof err)) return fprintf(stderr, "load: %s\n", err), 1;
    }
    if (train(t, NB, o.met[NB])) return 1;
    size_t np;
    const float *p = sl_trainer_params(t, &np); /* collective under ZeRO-1 */
    o.ok = 1;
    if (sl_write_exact(fd, &o, sizeof o) || sl_write_exact(fd, p, 4 * np)) return 1;
    sl_trainer_free(t), sl_gpum_free(g), sl_model_free(m);
    sl_nccl_free(nc);
    return 0;
}

int main(void)
{
    if (dp_test_start("test_trainer_dp", &one_gpu)) return 77;
    snprintf(ck_dir, sizeof ck_dir, "/tmp/test_trainer_dp.XXXXXX");
    if (!mkdtemp(ck_dir) || pipe(id_pipe)) return 1;
    strcat(ck_dir, "/ck");
    sl_hf_config c;
    cfg_model(&c);
    sl_model *m = NULL;
    char err[256];
    if (sl_model_new(&c, sl_ops_cpu(), 1, 11, &m, err, sizeof err)) return printf("%s\n", err), 1;
    size_t np = m->n_params;
    sl_model_free(m);
    out o[3];
    float *params[3];
    if (run_ranks(child, o, sizeof o[0], params, np)) return 1;
    int fail = 0;
    static const char *names[NM] = {"loss", "kl", "entropy", "grad_norm", "abs_diff"};
    /* bf16 weights: the order of a reduction may round a weight the other
     * way, which moves later steps a little */
    static const double tol[NM] = {2e-2, 5e-2, 1e-2, 2e-2, 1e-2};
    for (int k = 0; k <= NB; k++) {
        printf("  batch %d%s:\n", k, k == NB ? " (after save/load on the ranks)" : "");
        for (int i = 0; i < NM; i++) {
            double one = o[0].met[k][i], r0 = o[1].met[k][i], r1 = o[2].met[k][i];
            double rel = fabs(one - r0) / (fabs(one) + 1e-6);
            int ok = isfinite(r0) && rel < tol[i] && r0 == r1;
            printf("    %-10s 1 GPU %-12.6g rank 0 %-12.6g rank 1 %-12.6g (rel %.1e) %s\n", names[i], one, r0, r1,
                   rel, ok ? "ok" : "FAIL");
            if (!ok) fail = 1;
        }
    }
    for (int r = 1; r <= 2; r++) {
        double rel = rel_err(params[r], params[0], np);
        printf("  parameters of rank %d vs 1 GPU: rel %.2e %s\n", r - 1, rel, rel < 2e-3 ? "ok" : "FAIL");
        if (!(rel < 2e-3)) fail = 1;
    }
    for (int k = 0; k < 3; k++) free(params[k]);
    printf("%s\n", fail ? "FAILED" : "data-parallel trainer matches one GPU");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(ck_dir) - 3), ck_dir);
    if (system(cmd)) {
    }
    return fail;
}
#endif
