/*
 * bench_multi.c — slime-bench multi-gpu: the scale benchmark of several
 * GPUs (kernels/nccl_comm.h), one JSON object:
 *
 *  multi-gpu [--layers L] [--seqs B] [--seq-len S] [--steps N] [--bucket-mb M] [--one-gpu]
 *      For each configuration of T trainer ranks + E engine ranks (1+0,
 *      2+0, 1+1, 2+2, 4+4) that the GPUs allow (one GPU per rank, one process per
 *      rank, forked before any CUDA call): the data-parallel training step
 *      of a random Qwen2.5-0.5B-shaped model (B sequences of S tokens per
 *      trainer rank, gradient buckets of M MiB all-reduced during the
 *      backward, ZeRO-1) and the NCCL broadcast of its flat bf16 weights
 *      (0.99 GB) from trainer rank 0 to the engines, in buckets of M MiB;
 *      median ms of N steps. step_ms + broadcast_ms is the RL step without
 *      its generation phase (the GPU rollout engine is not part of this
 *      benchmark). Configurations that need more GPUs than the machine has
 *      are listed under "skipped" with the reason; with a single GPU the
 *      one-rank figures are given (1 trainer rank's step through sl_dp,
 *      the broadcast through a one-rank communicator: the call's overhead,
 *      no transfer) — the 1+1 weight transfer on one GPU is CUDA IPC
 *      (slime-bench gpu-sync).
 *      --one-gpu (or SL_DP_ONE_GPU=1): the ranks share GPU 0, at most 2 of
 *      them (1+0, 1+1). NCCL refuses two ranks of one host on one device,
 *      so each rank names its own host (NCCL_HOSTID) and NCCL talks over
 *      loopback sockets (NCCL_SOCKET_IFNAME=lo), as between machines; the
 *      JSON says "transport": "socket-one-gpu" (a check that the path
 *      works, not a scale figure). Otherwise "one-gpu-per-rank".
 *
 * The NCCL unique ids (data-parallel group, broadcast group) are made by
 * rank 0, the root of both, and handed to the other ranks through pipes:
 * ncclGetUniqueId starts NCCL's bootstrap root in the calling process, so
 * a helper process that made them and exited would leave the ranks with
 * "remote process exited or there was a network error".
 * Asserts nothing about speed.
 */
#include "base.h"
#include "bench_common.h"
#include "gpu_model.h"
#include "nccl_comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SL_HAVE_CUDA
int bench_multi_gpu(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("{\"bench\":\"multi-gpu\",\"gpus_available\":0,\"skipped\":\"built without CUDA/NCCL\"}\n");
    return SL_EXIT_OK;
}
#else
#include <sys/wait.h>
#include <unistd.h>



typedef struct opts {
    int layers, B, S, steps;
    size_t bucket;
} opts;

typedef struct ids {
    char dp[SL_NCCL_ID_HEX], bc[SL_NCCL_ID_HEX];
} ids;

typedef struct result {
    double step_ms, bcast_ms, loss;
    int buckets, early, bcast_buckets, ok;
    double weight_gb;
} result;


/* The ids of rank RANK of N: rank 0 makes them and writes them to
 * ID_FD[1..N-1] (then closes those); rank k >= 1 reads them from ID_FD[k]. */
static int share_ids(int rank, int n, const int *id_fd, ids *id)
{
    char err[256];
    if (rank > 0) {
        if (!sl_read_exact(id_fd[rank], id, sizeof *id)) return 0;
        return fprintf(stderr, "rank %d: no NCCL ids from rank 0\n", rank), 1;
    }
    int rc = 0;
    if (sl_nccl_unique_id(id->dp, err, sizeof err) || sl_nccl_unique_id(id->bc, err, sizeof err)) {
        fprintf(stderr, "rank 0: %s\n", err);
        rc = 1;
    }
    for (int k = 1; k < n; k++) {
        if (!rc && write(id_fd[k], id, sizeof *id) != (ssize_t)sizeof *id) rc = 1;
        close(id_fd[k]);
    }
    return rc;
}

/* One rank of the T+E configuration, in its own process on GPU `rank`
 * (GPU 0 with ONE_GPU). ranks 0..T-1 train (data-parallel communicator of
 * T), trainer 0 and the engines T..T+E-1 share the broadcast communicator
 * (rank 0 = trainer 0). ID_FD: see share_ids. */
static int run_rank(const opts *o, int T, int E, int rank, int one_gpu, const int *id_fd, result *r)
{
    char err[256];
    memset(r, 0, sizeof(*r));
    if (one_gpu) {
        char host[32];
        snprintf(host, sizeof host, "slime-bench-rank-%d", rank);
        setenv("NCCL_HOSTID", host, 1);
        setenv("NCCL_SOCKET_IFNAME", "lo", 0);
    }
    if (sl_gpu_set_device(one_gpu ? 0 : rank, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    ids id;
    if (share_ids(rank, T + E, id_fd, &id)) return 1;
    sl_hf_config c;
    bench_qwen05(&c, o->layers);
    int Tok = o->B * o->S;
    sl_model *h = NULL;
    if (sl_model_new(&c, sl_ops_cpu(), 1, 1, &h, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    sl_gpum *g = NULL;
    if (sl_gpum_new(h, rank < T ? Tok : 1, &g, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    size_t wbytes = 0;
    void *w = sl_gpum_weights(g, &wbytes);
    r->weight_gb = wbytes / 1e9;
    sl_nccl *dpc = NULL, *bc = NULL;
    sl_dp *dp = NULL;
    if (rank < T && (sl_nccl_init(id.dp, T, rank, &dpc, err, sizeof err) ||
                     sl_dp_new(dpc, g, o->bucket, 1, &dp, err, sizeof err)))
        return fprintf(stderr, "rank %d: %s\n", rank, err), 1;
    int in_bc = rank == 0 || rank >= T;
    if (in_bc && sl_nccl_init(id.bc, 1 + E, rank == 0 ? 0 : rank - T + 1, &bc, err, sizeof err))
        return fprintf(stderr, "rank %d: %s\n", rank, err), 1;
    int32_t *tok = malloc(sizeof(int32_t) * Tok), *cu = malloc(sizeof(int32_t) * (o->B + 1));
    uint64_t x = 88172645463325252ull + (uint64_t)rank * 7919;
    for (int t = 0; t < Tok; t++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tok[t] = (int32_t)(x % (uint64_t)c.vocab_size);
    }
    for (int s = 0; s <= o->B; s++) cu[s] = s * o->S;
    double *ts = calloc(o->steps, sizeof(double)), *tb = calloc(o->steps, sizeof(double));
    for (int i = -2; i < o->steps; i++) {
        uint64_t a = sl_now_ns();
        if (rank < T) {
            sl_dp_arm(dp);
            if (sl_gpum_forward_backward_ce(g, tok, cu, o->B, NULL, NULL, &r->loss)) return 1;
            sl_dp_step(dp, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, NULL);
            sl_gpum_sync(g);
        }
        uint64_t b = sl_now_ns();
        if (bc) sl_nccl_broadcast(bc, w, wbytes, 0, o->bucket * 4, &r->bcast_buckets);
        uint64_t d = sl_now_ns();
        if (i >= 0) ts[i] = (b - a) / 1e6, tb[i] = (d - b) / 1e6;
    }
    r->step_ms = rank < T ? bench_median(ts, o->steps) : 0;
    r->bcast_ms = bc ? bench_median(tb, o->steps) : 0;
    if (dp) {
        sl_dp_stats st;
        sl_dp_get_stats(dp, &st);
        r->buckets = st.buckets, r->early = st.early;
    }
    r->ok = 1;
    sl_dp_free(dp);
    sl_nccl_free(dpc);
    sl_nccl_free(bc);
    sl_gpum_free(g);
    sl_model_free(h);
    free(tok), free(cu), free(ts), free(tb);
    return 0;
}

static int run_config(const opts *o, int T, int E, int one_gpu, result *rank0, result *eng)
{
    int n = T + E;
    pid_t pids[16];
    int fds[16], id_rd[16], id_wr[16]; /* id pipe k: rank 0 -> rank k (k >= 1) */
    for (int k = 1; k < n; k++) {
        int p[2];
        if (pipe(p)) return -1;
        id_rd[k] = p[0], id_wr[k] = p[1];
    }
    for (int k = 0; k < n; k++) {
        int p[2];
        if (pipe(p)) return -1;
        pids[k] = fork();
        if (pids[k] == 0) {
            close(p[0]);
            /* keep only this rank's ends of the id pipes, so a rank waiting
             * for the ids sees the end of file when rank 0 fails */
            for (int j = 1; j < n; j++) {
                if (k != j) close(id_rd[j]);
                if (k != 0) close(id_wr[j]);
            }
            int *id_fd = k == 0 ? id_wr : id_rd;
            result r;
            int rc = run_rank(o, T, E, k, one_gpu, id_fd, &r);
            ssize_t wr = write(p[1], &r, sizeof r);
            (void)wr;
            _exit(rc);
        }
        close(p[1]);
        fds[k] = p[0];
    }
    for (int k = 1; k < n; k++) close(id_rd[k]), close(id_wr[k]);
    int ok = 1;
    for (int k = 0; k < n; k++) {
        result r = {0};
        if (read(fds[k], &r, sizeof r) != (ssize_t)sizeof r || !r.ok) ok = 0;
        close(fds[k]);
        if (k == 0) *rank0 = r;
        if (k == n - 1) *eng = r;
        int st = 0;
        waitpid(pids[k], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) ok = 0;
    }
    return ok ? 0 : -1;
}

int bench_multi_gpu(int argc, char **argv)
{
    opts o = {bench_arg_int(argc, argv, "--layers", 24), bench_arg_int(argc, argv, "--seqs", 4),
              bench_arg_int(argc, argv, "--seq-len", 1024), bench_arg_int(argc, argv, "--steps", 5),
              (size_t)bench_arg_int(argc, argv, "--bucket-mb", 16) << 20};
    if (o.layers < 1 || o.B < 1 || o.S < 2 || o.steps < 1 || (long)o.B * o.S > (1 << 20) ||
        o.bucket < SL_DP_BUCKET_MIN) {
        fprintf(stderr, "bench multi-gpu: bad arguments\n");
        return SL_EXIT_USAGE;
    }
    const char *og = getenv("SL_DP_ONE_GPU");
    int one_gpu = bench_arg_flag(argc, argv, "--one-gpu") || (og && strcmp(og, "1") == 0);
    /* the count in a helper process too: CUDA must not start here before fork */
    int p[2], ngpu = 0;
    if (pipe(p)) return SL_EXIT_FAIL;
    pid_t pid = fork();
    if (pid == 0) {
        int n = sl_gpu_device_count();
        ssize_t wr = write(p[1], &n, sizeof n);
        (void)wr;
        _exit(0);
    }
    close(p[1]);
    if (read(p[0], &ngpu, sizeof ngpu) != (ssize_t)sizeof ngpu) ngpu = 0;
    close(p[0]);
    waitpid(pid, NULL, 0);
    /* ranks that fit: one per GPU, or 2 on GPU 0 with --one-gpu */
    int max_ranks = one_gpu ? (ngpu > 0 ? 2 : 0) : ngpu;
    printf("{\"bench\":\"multi-gpu\",\"gpus_available\":%d,\"transport\":\"%s\",\"shape\":\"qwen2.5-0.5b\","
           "\"layers\":%d,\"seqs_per_trainer\":%d,\"seq_len\":%d,\"steps\":%d,\"bucket_mb\":%zu,\"configs\":[",
           ngpu, one_gpu ? "socket-one-gpu" : "one-gpu-per-rank", o.layers, o.B, o.S, o.steps, o.bucket >> 20);
    fflush(stdout);
    const int cfg[][2] = {{1, 0}, {2, 0}, {1, 1}, {2, 2}, {4, 4}};
    int first = 1;
    char skipped[512] = "";
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        int T = cfg[i][0], E = cfg[i][1];
        if (T + E > max_ranks) {
            size_t l = strlen(skipped);
            if (one_gpu && ngpu > 0)
                snprintf(skipped + l, sizeof skipped - l, "%s\"%d+%d: needs %d ranks, --one-gpu runs at most %d\"",
                         l ? "," : "", T, E, T + E, max_ranks);
            else
                snprintf(skipped + l, sizeof skipped - l, "%s\"%d+%d: needs %d GPUs, %d available\"",
                         l ? "," : "", T, E, T + E, ngpu);
            continue;
        }
        result r0 = {0}, re = {0};
        int rc = run_config(&o, T, E, one_gpu, &r0, &re);
        printf("%s{\"trainers\":%d,\"engines\":%d,\"ok\":%s,\"train_step_ms\":%.2f,\"tokens_per_s\":%.0f,"
               "\"grad_buckets\":%d,\"buckets_during_backward\":%d,\"weight_gb\":%.3f,"
               "\"broadcast_ms\":%.2f,\"broadcast_buckets\":%d,\"broadcast_gb_per_s\":%.1f,"
               "\"rl_step_ms_without_generation\":%.2f,\"loss\":%.4f}",
               first ? "" : ",", T, E, rc ? "false" : "true", r0.step_ms,
               r0.step_ms > 0 ? T * (double)o.B * o.S / (r0.step_ms / 1e3) : 0, r0.buckets, r0.early,
               r0.weight_gb, r0.bcast_ms, r0.bcast_buckets,
               r0.bcast_ms > 0 ? r0.weight_gb / (r0.bcast_ms / 1e3) : 0, r0.step_ms + r0.bcast_ms, r0.loss);
        first = 0;
        fflush(stdout);
        (void)re;
    }
    printf("],\"skipped\":[%s]}\n", skipped);
    return SL_EXIT_OK;
}
#endif
