/*
 * bench_gpu.c — GPU benchmarks of slime-bench (one JSON object each):
 *
 *  gpu-train [--layers L] [--seqs B] [--seq-len S] [--steps N] [--fused 0|1]
 *      mixed-precision training step of the GPU model (kernels/gpu_model.h)
 *      on a random Qwen2.5-0.5B-shaped model (hidden 896, 24 layers, 14
 *      heads / 2 kv heads of 64, intermediate 4864, vocab 151936, tied,
 *      q/k/v bias): forward + backward (mean CE) + AdamW over B packed
 *      sequences of S random tokens (--fused 1, the default: forward and CE
 *      backward in one pass, forward_ms is then the whole pass and
 *      backward_ms 0); median ms per phase, tokens/s, MFU
 *      against the bf16 GEMM rate measured in the same run, device memory.
 *      SL_GPUM_RECOMPUTE=1 in the environment: with activation recomputation.
 *  gpu-sync [--reps N]
 *      CUDA IPC weight sync of that model's flat bf16 weights (0.99 GB)
 *      from this process to a child process: publish -> ready latency with
 *      a device-to-device copy and in place, against a raw in-process copy.
 *
 *  gpu-grpo [--layers L] [--prompts P] [--samples N] [--prompt-len A]
 *           [--response-len R] [--micro M] [--steps K]
 *      one GRPO step of the trainer (actors/trainer_core.h on the GPU, the
 *      step the trainer actor runs) on that model: P x N samples of A
 *      prompt + R response tokens (random ids, rewards 0/1), one optimizer
 *      step, micro-batches of M samples packed up to 16384 tokens, PPO clip
 *      + entropy bonus; median seconds per step and its old/ref log-prob
 *      share (none here), trained tokens/s, peak device memory.
 *
 * Without CUDA both report that they are not in this build. Not tests:
 * they assert nothing about speed (the sync checks the stamps it sends).
 */
#include "base.h"
#include "bench_common.h"
#include "gpu_model.h"
#include "gpu_sync.h"
#include "trainer_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SL_HAVE_CUDA
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;




int bench_gpu_train(int argc, char **argv)
{
    int layers = bench_arg_int(argc, argv, "--layers", 24), B = bench_arg_int(argc, argv, "--seqs", 8);
    int S = bench_arg_int(argc, argv, "--seq-len", 1024), steps = bench_arg_int(argc, argv, "--steps", 10);
    int fused = bench_arg_int(argc, argv, "--fused", 1);
    if (layers < 1 || B < 1 || S < 2 || steps < 1 || (long)B * S > (1 << 20)) {
        fprintf(stderr, "bench gpu-train: bad arguments\n");
        return SL_EXIT_USAGE;
    }
    int T = B * S;
    sl_hf_config c;
    bench_qwen05(&c, layers);
    char err[256];
    sl_model *h = NULL;
    uint64_t t0 = sl_now_ns();
    if (sl_model_new(&c, sl_ops_cpu(), 1, 1, &h, err, sizeof(err))) {
        fprintf(stderr, "bench gpu-train: %s\n", err);
        return SL_EXIT_FAIL;
    }
    double init_s = (double)(sl_now_ns() - t0) / 1e9;
    size_t free0, total;
    sl_gpu_mem_info(&free0, &total);
    double gemm = sl_gpu_gemm_tflops(8192, 20);
    sl_gpum *g = NULL;
    int rc = sl_gpum_new(h, T, &g, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "bench gpu-train: %s\n", err);
        sl_model_free(h);
        return SL_EXIT_FAIL;
    }
    int32_t *tok = malloc(sizeof(int32_t) * T), *cu = malloc(sizeof(int32_t) * (B + 1));
    double *tf = calloc(steps, sizeof(double)), *tb = calloc(steps, sizeof(double)),
           *to = calloc(steps, sizeof(double)), *ts = calloc(steps, sizeof(double));
    uint64_t x = 88172645463325252ull;
    for (int t = 0; t < T; t++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tok[t] = (int32_t)(x % (uint64_t)c.vocab_size);
    }
    for (int s = 0; s <= B; s++) cu[s] = s * S;
    double loss0 = 0, loss = 0, gn = 0;
    double prof[SL_GPUM_PROF_N];
    for (int i = -2; i < steps; i++) {
        if (i == 0) sl_gpum_profile(g, prof, SL_GPUM_PROF_N); /* reset after warm-up */
        uint64_t a = sl_now_ns();
        uint64_t b, d;
        if (fused) { /* forward + CE backward in one pass (LM head logits once) */
            if (sl_gpum_forward_backward_ce(g, tok, cu, B, NULL, NULL, &loss)) return SL_EXIT_FAIL;
            sl_gpum_sync(g);
            b = d = sl_now_ns();
        } else {
            if (sl_gpum_forward(g, tok, cu, B, NULL, NULL, NULL, &loss)) return SL_EXIT_FAIL;
            sl_gpum_sync(g);
            b = sl_now_ns();
            sl_gpum_backward_ce(g, NULL);
            sl_gpum_sync(g);
            d = sl_now_ns();
        }
        sl_gpum_adamw_step(g, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.f, i == steps - 1 ? &gn : NULL);
        sl_gpum_sync(g);
        uint64_t e = sl_now_ns();
        if (i == -2) loss0 = loss;
        if (i >= 0) tf[i] = (b - a) / 1e6, tb[i] = (d - b) / 1e6, to[i] = (e - d) / 1e6, ts[i] = (e - a) / 1e6;
    }
    int profiled = sl_gpum_profile(g, prof, SL_GPUM_PROF_N);
    size_t free1;
    sl_gpu_mem_info(&free1, &total);
    sl_gpum_info info;
    sl_gpum_get_info(g, &info);
    double step_ms = bench_median(ts, steps);
    /* model FLOPs: 6 x matmul params x tokens + attention (causal, 3 x fwd) */
    double C = 896, F = 4864, Wq = (14 + 4) * 64.0, QD = 896, V = 151936;
    double mm = layers * (C * Wq + QD * C + 3 * C * F) + V * C;
    double att_fwd = 4.0 * 64 * 14 * layers * (double)B * S * (S + 1) / 2.0;
    double flops = 6.0 * mm * T + 3.0 * att_fwd;
    double tps = T / (step_ms / 1e3);
    const char *rc_env = getenv("SL_GPUM_RECOMPUTE");
    printf("{\"bench\":\"gpu-train\",\"shape\":\"qwen2.5-0.5b\",\"recompute\":%s,\"fused_ce\":%s,\"layers\":%d,\"params\":%zu,"
           "\"seqs\":%d,\"seq_len\":%d,\"steps\":%d,\"step_ms\":%.2f,\"forward_ms\":%.2f,"
           "\"backward_ms\":%.2f,\"adamw_ms\":%.2f,\"tokens_per_s\":%.0f,\"model_tflop_per_step\":%.3f,"
           "\"achieved_tflops\":%.1f,\"gemm_bf16_tflops\":%.1f,\"mfu_vs_gemm\":%.3f,"
           "\"device_alloc_gib\":%.2f,\"gpu_mem_used_gib\":%.2f,\"loss_first\":%.4f,"
           "\"loss_last\":%.4f,\"grad_norm_last\":%.4f,\"host_init_s\":%.1f",
           rc_env && *rc_env && strcmp(rc_env, "0") ? "true" : "false", fused ? "true" : "false", layers, info.n_params, B, S, steps, step_ms, bench_median(tf, steps), bench_median(tb, steps),
           bench_median(to, steps), tps, flops / 1e12, flops / (step_ms / 1e3) / 1e12, gemm,
           flops / (step_ms / 1e3) / 1e12 / gemm, info.device_bytes / 1073741824.0,
           (double)(free0 - free1) / 1073741824.0, loss0, loss, gn, init_s);
    if (profiled)
        printf(",\"profile_ms_per_step\":{\"gemm\":%.2f,\"attn_fwd\":%.2f,\"attn_bwd\":%.2f,"
               "\"norm\":%.2f,\"lm_head\":%.2f,\"elementwise\":%.2f,\"adamw\":%.2f}",
               prof[0] / steps, prof[1] / steps, prof[2] / steps, prof[3] / steps,
               prof[4] / steps, prof[5] / steps, prof[6] / steps);
    printf("}\n");
    free(tok), free(cu), free(tf), free(tb), free(to), free(ts);
    sl_gpum_free(g);
    sl_model_free(h);
    return SL_EXIT_OK;
}

/* ------------------------------------------------------------ gpu-sync */
typedef struct {
    char mode; /* 'c' copy, 'i' in place, 'q' quit */
    uint32_t stamp;
} sync_req;
typedef struct {
    double pull_ms;
    uint32_t stamp;
} sync_rep;

static int full_io(int fd, void *buf, size_t n, int wr)
{
    char *p = buf;
    while (n) {
        ssize_t k = wr ? write(fd, p, n) : read(fd, p, n);
        if (k <= 0) return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

static int sync_child(int fd)
{
    sl_gsync_handle h;
    if (full_io(fd, &h, sizeof(h), 0)) return SL_EXIT_FAIL;
    char err[256];
    sl_gsync *s = NULL;
    int rc = sl_gsync_import(&h, 1, &s, err, sizeof(err));
    sync_rep rep = {rc ? -1.0 : 0.0, 0};
    if (rc) fprintf(stderr, "gpu-sync child: %s\n", err);
    full_io(fd, &rep, sizeof(rep), 1);
    if (rc) return SL_EXIT_FAIL;
    for (;;) {
        sync_req q;
        if (full_io(fd, &q, sizeof(q), 0) || q.mode == 'q') break;
        uint64_t a = sl_now_ns();
        sl_gsync_pull(s, q.mode == 'c');
        rep.pull_ms = (sl_now_ns() - a) / 1e6;
        rep.stamp = sl_gsync_read_stamp(s);
        if (full_io(fd, &rep, sizeof(rep), 1)) break;
    }
    sl_gsync_free(s);
    return SL_EXIT_OK;
}

int bench_gpu_grpo(int argc, char **argv)
{
    int layers = bench_arg_int(argc, argv, "--layers", 24), P = bench_arg_int(argc, argv, "--prompts", 64);
    int N = bench_arg_int(argc, argv, "--samples", 16), A = bench_arg_int(argc, argv, "--prompt-len", 12);
    int R = bench_arg_int(argc, argv, "--response-len", 16), M = bench_arg_int(argc, argv, "--micro", 256);
    int steps = bench_arg_int(argc, argv, "--steps", 5);
    long n = (long)P * N;
    if (layers < 1 || P < 1 || N < 1 || A < 1 || R < 1 || M < 1 || steps < 1 || n > 65536 ||
        (long)(A + R) > 16384) {
        fprintf(stderr, "bench gpu-grpo: bad arguments\n");
        return SL_EXIT_USAGE;
    }
    sl_hf_config c;
    bench_qwen05(&c, layers);
    char err[256];
    sl_model *h = NULL;
    sl_gpum *g = NULL;
    sl_trainer *t = NULL;
    if (sl_model_new(&c, sl_ops_cpu(), 1, 1, &h, err, sizeof(err)) ||
        sl_gpum_new(h, 16384, &g, err, sizeof(err))) {
        fprintf(stderr, "bench gpu-grpo: %s\n", err);
        return SL_EXIT_FAIL;
    }
    sl_trainer_cfg cfg;
    sl_trainer_cfg_default(&cfg);
    cfg.global_batch_size = (int)n, cfg.micro_batch_size = M < n ? M : (int)n;
    cfg.entropy_coef = 0.003f, cfg.eps_clip_high = 0.28f, cfg.lr = 1e-6;
    if (sl_trainer_new_gpu(h, g, &cfg, &t, err, sizeof(err))) {
        fprintf(stderr, "bench gpu-grpo: %s\n", err);
        return SL_EXIT_FAIL;
    }
    long T = n * (A + R);
    uint64_t *off = malloc(sizeof(uint64_t) * (n + 1));
    int32_t *tok = malloc(sizeof(int32_t) * T);
    uint8_t *mask = malloc(T);
    float *rew = malloc(sizeof(float) * n), *roll = calloc(T, sizeof(float));
    uint64_t x = 88172645463325252ull;
    off[0] = 0;
    for (long i = 0; i < n; i++) {
        off[i + 1] = off[i] + (uint64_t)(A + R);
        for (int k = 0; k < A + R; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            tok[off[i] + k] = (int32_t)(x % 100);
            mask[off[i] + k] = k >= A;
            roll[off[i] + k] = k >= A ? -11.9f : 0.f;
        }
        rew[i] = (float)(x >> 63);
    }
    sl_train_batch b = {.n_samples = (uint32_t)n, .offsets = off, .tokens = tok, .loss_mask = mask,
                        .rollout_logprobs = roll, .rewards = rew, .group_size = (uint32_t)N};
    double *sec = calloc(steps, sizeof(double));
    sl_train_metrics mt;
    memset(&mt, 0, sizeof mt);
    int bad = 0;
    for (int i = -1; i < steps && !bad; i++) {
        if (sl_trainer_step(t, &b, &mt)) bad = 1;
        if (i >= 0) sec[i] = mt.seconds;
    }
    size_t fr, tot;
    sl_gpu_mem_info(&fr, &tot);
    double med = bench_median(sec, steps);
    long trained = n * R;
    printf("{\"bench\":\"gpu-grpo\",\"layers\":%d,\"samples\":%ld,\"tokens\":%ld,"
           "\"trained_tokens\":%ld,\"micro_batch_size\":%d,\"steps\":%d,\"step_s\":%.4f,"
           "\"tokens_per_s\":%.0f,\"loss\":%.5f,\"grad_norm\":%.4f,"
           "\"train_rollout_logprob_abs_diff\":%.4f,\"device_used_gib\":%.2f,\"ok\":%s}\n",
           layers, n, T, trained, cfg.micro_batch_size, steps, med, med > 0 ? T / med : 0.0,
           mt.loss, mt.grad_norm, mt.train_rollout_logprob_abs_diff,
           (double)(tot - fr) / 1073741824.0, bad ? "false" : "true");
    free(sec), free(off), free(tok), free(mask), free(rew), free(roll);
    sl_trainer_free(t);
    sl_gpum_free(g);
    sl_model_free(h);
    return bad ? SL_EXIT_FAIL : SL_EXIT_OK;
}

int bench_gpu_sync(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child") == 0) return sync_child(atoi(argv[2]));
    int reps = bench_arg_int(argc, argv, "--reps", 50);
    if (reps < 3 || reps > 100000) {
        fprintf(stderr, "bench gpu-sync: bad arguments\n");
        return SL_EXIT_USAGE;
    }
    /* flat bf16 weights of Qwen2.5-0.5B: 494,032,768 parameters */
    size_t n_params = 151936ull * 896 + 24ull * (2 * 896 * 896 + 2 * 128 * 896 + 896 + 256 +
                                                  3ull * 896 * 4864 + 2 * 896) + 896;
    size_t bytes = 2 * n_params;
    double raw = sl_gsync_d2d_ms(bytes, 20);
    void *buf = sl_gpu_alloc(bytes);
    if (!buf) {
        fprintf(stderr, "bench gpu-sync: no device memory\n");
        return SL_EXIT_FAIL;
    }
    char err[256];
    sl_gsync *s = NULL;
    sl_gsync_handle h;
    if (sl_gsync_export(buf, bytes, &s, &h, err, sizeof(err))) {
        fprintf(stderr, "bench gpu-sync: %s\n", err);
        return SL_EXIT_FAIL;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return SL_EXIT_FAIL;
    char fdstr[16];
    snprintf(fdstr, sizeof(fdstr), "%d", sv[1]);
    char *cargv[] = {"slime-bench", "gpu-sync", "--child", fdstr, NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, cargv, environ)) {
        fprintf(stderr, "bench gpu-sync: cannot start the child\n");
        return SL_EXIT_FAIL;
    }
    close(sv[1]);
    int fd = sv[0], bad = 0;
    sync_rep rep;
    if (full_io(fd, &h, sizeof(h), 1) || full_io(fd, &rep, sizeof(rep), 0) || rep.pull_ms < 0) {
        fprintf(stderr, "bench gpu-sync: child could not import the handles\n");
        return SL_EXIT_FAIL;
    }
    double *rt = calloc(reps, sizeof(double)), *pl = calloc(reps, sizeof(double));
    double res[2][2];
    uint32_t stamp = 1;
    for (int m = 0; m < 2; m++) {
        char mode = m == 0 ? 'c' : 'i';
        for (int i = -3; i < reps; i++) {
            sl_gsync_stamp(s, ++stamp);
            sl_gsync_publish(s);
            uint64_t a = sl_now_ns();
            sync_req q = {mode, stamp};
            if (full_io(fd, &q, sizeof(q), 1) || full_io(fd, &rep, sizeof(rep), 0)) {
                bad = 1;
                break;
            }
            double ms = (sl_now_ns() - a) / 1e6;
            if (rep.stamp != stamp) bad = 1;
            if (i >= 0) rt[i] = ms, pl[i] = rep.pull_ms;
        }
        res[m][0] = bench_median(rt, reps), res[m][1] = bench_median(pl, reps);
    }
    sync_req q = {'q', 0};
    full_io(fd, &q, sizeof(q), 1);
    int st = 0;
    waitpid(pid, &st, 0);
    close(fd);
    printf("{\"bench\":\"gpu-sync\",\"params\":%zu,\"bytes\":%zu,\"reps\":%d,"
           "\"raw_d2d_copy_ms\":%.3f,\"copy_publish_to_ready_ms\":%.3f,\"copy_pull_ms\":%.3f,"
           "\"inplace_publish_to_ready_ms\":%.3f,\"inplace_pull_ms\":%.3f,\"stamps_ok\":%s}\n",
           n_params, bytes, reps, raw, res[0][0], res[0][1], res[1][0], res[1][1],
           bad ? "false" : "true");
    free(rt), free(pl);
    sl_gsync_free(s);
    sl_gpu_free(buf);
    return bad ? SL_EXIT_FAIL : SL_EXIT_OK;
}
#endif /* SL_HAVE_CUDA */
