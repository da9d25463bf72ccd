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
#include <sys/wait.h>
#include <unistd.h>

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
static int read_all(int fd, void *buf, size_t n);

static int child(int rank, int fd)
{
    char err[256], hex[SL_NCCL_ID_HEX] = "";
    out o = {0};
    if (rank >= 0 && one_gpu) {
        /* two ranks on one GPU: NCCL refuses two ranks of one host on one
         * device, so each rank names its own "host" and the ranks talk
         * through NCCL's socket transport over loopback (the path NCCL
         * takes between machines) */
        char host[32];
        snprintf(host, sizeof host, "slime-test-rank-%d", rank);
        setenv("NCCL_HOSTID", host, 1);
    }
    if (sl_gpu_set_device(rank < 0 || one_gpu ? 0 : rank, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
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
    if (rank == 0) {
        if (sl_nccl_unique_id(hex, err, sizeof err)) return fprintf(stderr, "rank 0: %s\n", err), 1;
        if (write(id_pipe[1], hex, sizeof hex) != (ssize_t)sizeof hex) return 1;
    } else if (rank == 1 && read_all(id_pipe[0], hex, sizeof hex)) {
        return fprintf(stderr, "rank 1: no unique id from rank 0\n"), 1;
    }
    if (rank >= 0 && (sl_nccl_init(hex, 2, rank, &nc, err, sizeof err) ||
                      sl_dp_new(nc, g, 64 << 10, 1, &dp, err, sizeof err)))
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
    if (write(fd, &o, sizeof o) != (ssize_t)sizeof o) return 1;
    size_t n = 4 * m->n_params, done = 0;
    while (done < n) {
        ssize_t w = write(fd, (char *)p + done, n - done);
        if (w <= 0) return 1;
        done += (size_t)w;
    }
    sl_dp_free(dp);
    sl_nccl_free(nc);
    sl_gpum_free(g);
    sl_model_free(m);
    free(p);
    return 0;
}

static int gpu_count(void)
{
    int p[2], n = 0;
    if (pipe(p)) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        n = sl_gpu_device_count();
        _exit(write(p[1], &n, sizeof n) == (ssize_t)sizeof n ? 0 : 1);
    }
    close(p[1]);
    if (read(p[0], &n, sizeof n) != (ssize_t)sizeof n) n = 0;
    close(p[0]);
    waitpid(pid, NULL, 0);
    return n;
}

static int read_all(int fd, void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}

int main(void)
{
    sl_log_init("test_nccl_dp2", SL_LOG_WARN);
    int ngpu = gpu_count();
    one_gpu = ngpu == 1;
    if (one_gpu) {
        printf("one GPU: both ranks on GPU 0, NCCL over loopback sockets (NCCL_HOSTID per rank)\n");
        setenv("NCCL_SOCKET_IFNAME", "lo", 0);
    }
    if (ngpu < 1) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    /* the id: rank 0 makes it (its process then serves NCCL's bootstrap
     * root, so it must be a rank, not a helper that exits) and hands it to
     * rank 1 through this pipe (the mailbox in the system) */
    if (pipe(id_pipe)) return 1;
    sl_hf_config c;
    sl_model *m = make_host(&c);
    size_t np = m->n_params;
    int fds[3];
    pid_t pids[3];
    for (int k = 0; k < 3; k++) {
        int p[2];
        if (pipe(p)) return 1;
        pids[k] = fork();
        if (pids[k] == 0) {
            close(p[0]);
            _exit(child(k - 1, p[1]));
        }
        close(p[1]);
        fds[k] = p[0];
    }
    out o[3];
    float *params[3];
    int fail = 0;
    for (int k = 0; k < 3; k++) {
        params[k] = malloc(4 * np);
        if (read_all(fds[k], &o[k], sizeof o[k]) || read_all(fds[k], params[k], 4 * np) || !o[k].ok) {
            printf("process %d gave no result: FAIL\n", k);
            fail = 1;
        }
        int st = 0;
        waitpid(pids[k], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) fail = 1;
    }
    if (fail) return 1;
    for (int s = 0; s < STEPS; s++) {
        double one = o[0].loss[s], two = 0.5 * (o[1].loss[s] + o[2].loss[s]);
        double rel = fabs(one - two) / fabs(one);
        int ok = isfinite(two) && rel < 1e-2;
        printf("  step %d: loss 1 GPU %.5f, 2 GPUs %.5f (rel %.1e) %s\n", s, one, two, rel, ok ? "ok" : "FAIL");
        if (!ok) fail = 1;
    }
    if (!(o[0].loss[STEPS - 1] < o[0].loss[0])) printf("  loss did not fall: FAIL\n"), fail = 1;
    for (int r = 1; r <= 2; r++) {
        double num = 0, den = 0;
        for (size_t i = 0; i < np; i++) {
            double d = (double)params[r][i] - params[0][i];
            num += d * d, den += (double)params[0][i] * params[0][i];
        }
        double rel = sqrt(num / den);
        printf("  parameters of rank %d vs 1 GPU: rel %.2e %s\n", r - 1, rel, rel < 2e-2 ? "ok" : "FAIL");
        if (!(rel < 2e-2)) fail = 1;
    }
    printf("%s\n", fail ? "FAILED" : "1-vs-2-GPU loss curve matches");
    sl_model_free(m);
    return fail;
}
#endif
