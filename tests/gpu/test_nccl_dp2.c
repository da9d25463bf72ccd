/*
 * test_nccl_dp2.c — data parallelism on 2 GPUs gives one GPU's loss curve
 * (kernels/nccl_comm.h). Three processes, forked before any CUDA call:
 * the reference trains a small Qwen2 on GPU 0 with the whole batch (two
 * sequences of equal length) and sl_gpum_adamw_step; ranks 0 and 1 (GPUs
 * 0 and 1) train the same model with one sequence each, gradients
 * all-reduced in buckets during the backward, ZeRO-1 step. The unique id
 * goes from rank 0 to rank 1 as hex text (a pipe here, the mailbox in the
 * system). For 8 steps the mean of the ranks' losses must match the
 * reference's within 1e-2 relative, and the final parameters (gathered
 * from the shards) within 2e-2 relative (bf16 weights: the order of the
 * reduction may round a weight the other way). With one GPU both ranks
 * share it: each names its own NCCL host (NCCL_HOSTID) and NCCL talks
 * over loopback sockets, the path it takes between machines.
 * Exit: 0 pass, 1 failure, 77 no GPU / built without CUDA.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "gpu_model.h"
#include "model.h"
#include "nccl_comm.h"
#include "ops.h"

#ifndef SL_HAVE_CUDA
int main(void)
{
    printf("built without CUDA: skipped\n");
    return 77;
}
#else
#include "gpu_test.h"

#define STEPS 8
#define LEN 128

static int id_pipe[2]; /* rank 0 -> rank 1: the unique id as hex */
static int one_gpu; /* one GPU: both ranks on GPU 0 */

typedef struct out {
    double loss[STEPS];
    int ok;
} out;

static sl_model *make_host(sl_hf_config *c)
{
    sl_hf_config_defaults(c);
    c->arch = SL_ARCH_QWEN2;
    snprintf(c->model_type, sizeof c->model_type, "qwen2");
    c->hidden_size = 256, c->num_hidden_layers = 4, c->num_attention_heads = 4;
    c->num_key_value_heads = 2, c->head_dim = 64, c->intermediate_size = 512, c->vocab_size = 1000;
    c->max_position_embeddings = 4096, c->tie_word_embeddings = 1, c->qkv_bias = 1;
    c->rope_theta = 1000000.0;
    char err[256];
    sl_model *m = NULL;
    if (sl_model_new(c, sl_ops_cpu(), 2 * LEN, 5, &m, err, sizeof err)) fprintf(stderr, "%s\n", err);
    return m;
}

/* rank -1: the reference (both sequences); rank 0/1: one sequence */
static int child(int rank, int fd)
{
    char err[256];
    out o = {0};
    if (sl_gpu_set_device(dp_test_device(rank, one_gpu), err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    sl_hf_config c;
    sl_model *m = make_host(&c);
    if (!m) return 1;
    int32_t tok[2 * LEN];
    uint64_t x = 0x1234567ull;
    for (int t = 0; t < 2 * LEN; t++) x ^= x << 13, x ^= x >> 7, x ^= x << 17, tok[t] = (int32_t)(x % 1000);
    sl_gpum *g = NULL;
    if (sl_gpum_new(m, 2 * LEN, &g, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    sl_nccl *nc = NULL;
    sl_dp *dp = NULL;
    if (dp_test_join(rank, id_pipe, &nc)) return 1;
    if (rank >= 0 && sl_dp_new(nc, g, 64 << 10, 1, &dp, err, sizeof err))
        return fprintf(stderr, "rank %d: %s\n", rank, err), 1;
    int32_t cu2[3] = {0, LEN, 2 * LEN}, cu1[2] = {0, LEN};
    for (int s = 0; s < STEPS; s++) {
        if (rank < 0) {
            if (sl_gpum_forward_backward_ce(g, tok, cu2, 2, NULL, NULL, &o.loss[s])) return 1;
            sl_gpum_adamw_step(g, 2e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, NULL);
        } else {
            sl_dp_arm(dp);
            if (sl_gpum_forward_backward_ce(g, tok + rank * LEN, cu1, 1, NULL, NULL, &o.loss[s])) return 1;
            if (sl_dp_step(dp, 2e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, NULL)) return 1;
        }
    }
    if (dp) sl_dp_gather_params(dp);
    float *p = malloc(4 * m->n_params);
    sl_gpum_params_to_host(g, p);
    o.ok = 1;
    if (sl_write_exact(fd, &o, sizeof o) || sl_write_exact(fd, p, 4 * m->n_params)) return 1;
    sl_dp_free(dp);
    sl_nccl_free(nc);
    sl_gpum_free(g);
    sl_model_free(m);
    free(p);
    return 0;
}

int main(void)
{
    if (dp_test_start("test_nccl_dp2", &one_gpu)) return 77;
    if (pipe(id_pipe)) return 1;
    sl_hf_config c;
    sl_model *m = make_host(&c);
    size_t np = m->n_params;
    out o[3];
    float *params[3];
    if (run_ranks(child, o, sizeof o[0], params, np)) return 1;
    int fail = 0;
    for (int s = 0; s < STEPS; s++) {
        double one = o[0].loss[s], two = 0.5 * (o[1].loss[s] + o[2].loss[s]);
        double rel = fabs(one - two) / fabs(one);
        int ok = isfinite(two) && rel < 1e-2;
        printf("  step %d: loss 1 GPU %.5f, 2 GPUs %.5f (rel %.1e) %s\n", s, one, two, rel, ok ? "ok" : "FAIL");
        if (!ok) fail = 1;
    }
    if (!(o[0].loss[STEPS - 1] < o[0].loss[0])) printf("  loss did not fall: FAIL\n"), fail = 1;
    for (int r = 1; r <= 2; r++) {
        double rel = rel_err(params[r], params[0], np);
        printf("  parameters of rank %d vs 1 GPU: rel %.2e %s\n", r - 1, rel, rel < 2e-2 ? "ok" : "FAIL");
        if (!(rel < 2e-2)) fail = 1;
    }
    for (int k = 0; k < 3; k++) free(params[k]);
    printf("%s\n", fail ? "FAILED" : "1-vs-2-GPU loss curve matches");
    sl_model_free(m);
    return fail;
}
#endif
