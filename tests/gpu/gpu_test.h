/*
 * gpu_test.h — what the GPU test programs (tests/gpu/test_gpu_*.c) share:
 * the failure flag, the start (skip with exit 77 where there is no CUDA
 * device), a xorshift generator, the relative error of a GPU result against
 * its CPU reference and the check that prints it, and the small Qwen2 /
 * Qwen3 configurations the tests build.
 *
 * A program defines GPU_TEST_SEED before including it to start the
 * generator elsewhere (each test keeps the stream its checks were tuned
 * on). Only for CUDA builds (include it inside `#ifdef SL_HAVE_CUDA`).
 * Not a test framework: no registration, no fixtures.
 */
#ifndef SL_GPU_TEST_H
#define SL_GPU_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base.h"
#include "model.h"
#include "nccl_comm.h"
#include "ops_cuda.h"

#ifndef GPU_TEST_SEED
#define GPU_TEST_SEED 0x9e3779b97f4a7c15ull
#endif

static int g_fail; /* any check failed: the program exits 1 */
static uint64_t g_rng = GPU_TEST_SEED;

/* Logging at WARN under NAME; 0 when a CUDA device is there, else 77 (the
 * skip code, said on stdout). */
static inline int gpu_test_start(const char *name)
{
    sl_log_init(name, SL_LOG_WARN);
    if (!sl_cuda_available()) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    return 0;
}

/* Print COND and ok / FAIL; on failure the printf-style detail too. */
#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        int ok_ = (cond);                                                                         \
        printf("  %-60s %s\n", #cond, ok_ ? "ok" : "FAIL");                                       \
        if (!ok_) {                                                                               \
            printf("    ");                                                                       \
            printf(__VA_ARGS__);                                                                  \
            printf("\n");                                                                         \
            g_fail = 1;                                                                           \
        }                                                                                         \
    } while (0)

/* xorshift64: the next raw value. */
static inline uint64_t rnd(void)
{
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}

/* uniform in [0, 1) from the same stream (53 bits). */
static inline double urand(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

/* ||a - ref|| / ||ref|| (||a - ref|| when ref is all zero); INFINITY when A
 * holds a NaN or an infinity, so a bound never passes it. */
static inline double rel_err(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = (double)a[i] - ref[i];
        num += d * d, den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Print WHAT and the relative error REL; ok when finite and below TOL,
 * else FAIL (g_fail set). Returns REL. */
static inline double check_rel(const char *what, double rel, double tol)
{
    int ok = isfinite(rel) && rel < tol;
    printf("  %-44s rel %.2e %s%s\n", what, rel, isfinite(rel) ? "" : "NaN ", ok ? "ok" : "FAIL");
    if (!ok) g_fail = 1;
    return rel;
}

/* check_rel of GPU (n values) against its reference CPU. */
static inline double check(const char *what, const float *gpu, const float *cpu, size_t n, double tol)
{
    return check_rel(what, rel_err(gpu, cpu, n), tol);
}

/* A Qwen2 configuration: q/k/v bias, rope theta 1e6, 4096 positions. */
static inline void qwen2(sl_hf_config *c, int C, int L, int NH, int NKV, int HD, int F, int V, int tied)
{
    sl_hf_config_defaults(c);
    c->arch = SL_ARCH_QWEN2;
    snprintf(c->model_type, sizeof c->model_type, "qwen2");
    c->hidden_size = C, c->num_hidden_layers = L, c->num_attention_heads = NH;
    c->num_key_value_heads = NKV, c->head_dim = HD, c->intermediate_size = F, c->vocab_size = V;
    c->max_position_embeddings = 4096, c->tie_word_embeddings = tied, c->qkv_bias = 1;
    c->rope_theta = 1000000.0;
}

/* The same shape as Qwen3: per-head q/k RMSNorm, no q/k/v bias. */
static inline void qwen3(sl_hf_config *c, int C, int L, int NH, int NKV, int HD, int F, int V, int tied)
{
    qwen2(c, C, L, NH, NKV, HD, F, V, tied);
    c->arch = SL_ARCH_QWEN3;
    snprintf(c->model_type, sizeof c->model_type, "qwen3");
    c->qkv_bias = 0, c->qk_norm = 1;
}

/* The smallest Qwen3 the trainer tests use: hidden 128, 2 layers, 2 heads
 * of 64 over 1 KV head, FFN 256, tied, other fields at their defaults. */
static inline void tiny_qwen3(sl_hf_config *c, int V, int max_pos)
{
    sl_hf_config_defaults(c);
    c->arch = SL_ARCH_QWEN3;
    snprintf(c->model_type, sizeof c->model_type, "qwen3");
    c->hidden_size = 128, c->num_hidden_layers = 2, c->num_attention_heads = 2;
    c->num_key_value_heads = 1, c->head_dim = 64, c->intermediate_size = 256, c->vocab_size = V;
    c->max_position_embeddings = max_pos, c->tie_word_embeddings = 1, c->qk_norm = 1;
}

/* ---- data-parallel checks: a reference process and two ranks ---- */

/* CUDA devices, counted in a child process (the test must not start CUDA
 * before it forks the ranks). */
static inline int gpu_count_forked(void)
{
    int p[2], n = 0;
    if (pipe(p)) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        n = sl_gpu_device_count();
        _exit(sl_write_exact(p[1], &n, sizeof n) ? 1 : 0);
    }
    close(p[1]);
    if (sl_read_exact(p[0], &n, sizeof n)) n = 0;
    close(p[0]);
    waitpid(pid, NULL, 0);
    return n;
}

/* The ranks' GPUs: 0 and 1, or both on GPU 0 with one GPU, where each rank
 * names its own NCCL host (NCCL refuses two ranks of one host on one GPU)
 * and NCCL talks over loopback sockets. Call in each rank's process before
 * its first CUDA call. Returns the device of rank (-1: the reference). */
static inline int dp_test_device(int rank, int one_gpu)
{
    if (rank >= 0 && one_gpu) {
        char host[32];
        snprintf(host, sizeof host, "slime-test-rank-%d", rank);
        setenv("NCCL_HOSTID", host, 1);
        setenv("NCCL_SOCKET_IFNAME", "lo", 0);
    }
    return rank < 0 || one_gpu ? 0 : rank;
}

/* Start of a 1-vs-2-rank check: stdout line-buffered (a run cut by a
 * timeout keeps its lines), the log, the GPU count. Returns 77 without a
 * GPU (the exit status), else 0 with *one_gpu set (and said). */
static inline int dp_test_start(const char *name, int *one_gpu)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    sl_log_init(name, SL_LOG_WARN);
    int ngpu = gpu_count_forked();
    if (ngpu < 1) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    *one_gpu = ngpu == 1;
    printf(*one_gpu ? "one GPU: both ranks on GPU 0, NCCL over loopback sockets (NCCL_HOSTID per rank)\n"
                    : "ranks on GPUs 0 and 1\n");
    return 0;
}

/* Rank 0 and 1 join a communicator of 2 (*nc; the reference, rank -1, gets
 * NULL). Rank 0 makes the unique id (its process then serves NCCL's
 * bootstrap root, so it must be a rank, not a helper that exits) and hands
 * it to rank 1 through id_pipe (the mailbox in the system). 0, or 1 with
 * the reason on stderr. */
static inline int dp_test_join(int rank, const int id_pipe[2], sl_nccl **nc)
{
    char err[256], hex[SL_NCCL_ID_HEX] = "";
    *nc = NULL;
    if (rank < 0) return 0;
    if (rank == 0) {
        if (sl_nccl_unique_id(hex, err, sizeof err)) return fprintf(stderr, "rank 0: %s\n", err), 1;
        if (sl_write_exact(id_pipe[1], hex, sizeof hex)) return 1;
    } else if (sl_read_exact(id_pipe[0], hex, sizeof hex)) {
        return fprintf(stderr, "rank 1: no unique id from rank 0\n"), 1;
    }
    if (sl_nccl_init(hex, 2, rank, nc, err, sizeof err)) return fprintf(stderr, "rank %d: %s\n", rank, err), 1;
    return 0;
}

/* Forks child(k - 1, fd) for k = 0..2 (-1: the reference, then ranks 0
 * and 1); each writes res_bytes of results, then np floats of parameters,
 * to fd. res gets 3 x res_bytes, params[k] np floats (malloc'd; the
 * caller frees). 0 when every process wrote everything and exited 0. */
static inline int run_ranks(int (*child)(int rank, int fd), void *res, size_t res_bytes,
                            float *params[3], size_t np)
{
    int fds[3], fail = 0;
    pid_t pids[3];
    for (int k = 0; k < 3; k++) {
        int p[2];
        if (pipe(p)) return -1;
        pids[k] = fork();
        if (pids[k] == 0) {
            close(p[0]);
            _exit(child(k - 1, p[1]));
        }
        close(p[1]);
        fds[k] = p[0];
    }
    for (int k = 0; k < 3; k++) {
        params[k] = malloc(4 * np);
        if (!params[k] || sl_read_exact(fds[k], (char *)res + k * res_bytes, res_bytes) ||
            sl_read_exact(fds[k], params[k], 4 * np)) {
            printf("process %d gave no result: FAIL\n", k);
            fail = 1;
        }
        close(fds[k]);
        int st = 0;
        waitpid(pids[k], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) fail = 1;
    }
    return fail ? -1 : 0;
}

#endif
