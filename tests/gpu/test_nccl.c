/*
 * test_nccl.c — NCCL with the one GPU a machine may have (kernels/nccl_comm.h):
 *  - a unique id made, sent as hex, parsed back and joined as rank 0 of 1;
 *  - all-reduce (average) of one rank is the identity, bit for bit;
 *  - the bucketed broadcast leaves the root's buffer as it was and cuts it
 *    into ceil(bytes / bucket) pieces;
 *  - data parallelism over one rank: a GPU model trained by sl_dp_step
 *    (gradient buckets all-reduced from the backward hook, ZeRO-1 shards;
 *    and without ZeRO-1) ends with the same parameters as a twin trained by
 *    sl_gpum_adamw_step, within 1e-6 relative, and most buckets were
 *    launched while the backward still ran (overlap);
 *  - a bad id (length, character) is refused with a message.
 * The 2-GPU loss-curve comparison is test_nccl_dp2 (skips below 2 GPUs).
 * Exit: 0 pass, 1 failure, 77 no CUDA device / built without CUDA.
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
#include "gpu_sync.h"
#include "gpu_test.h"

static void expect(int ok, const char *what)
{
    printf("  %-64s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) g_fail = 1;
}

static float frand(void) { return (float)(urand() * 2.0 - 1.0); }

static void test_collectives(void)
{
    printf("NCCL, one rank\n");
    char hex[SL_NCCL_ID_HEX], err[256];
    int rc = sl_nccl_unique_id(hex, err, sizeof err);
    expect(rc == 0 && strlen(hex) == 256, "unique id as 256 hex digits");
    unsigned char id[SL_NCCL_ID_BYTES];
    char why[128];
    char bad[SL_NCCL_ID_HEX];
    memcpy(bad, hex, sizeof bad);
    bad[17] = 'x';
    expect(sl_nccl_id_from_hex(bad, id, why, sizeof why) == SL_EINVAL && strstr(why, "17"), "bad digit refused");
    bad[17] = hex[17], bad[200] = 0;
    expect(sl_nccl_id_from_hex(bad, id, why, sizeof why) == SL_EINVAL && strstr(why, "200"), "short id refused");
    sl_nccl *c = NULL;
    rc = sl_nccl_init(bad, 1, 0, &c, err, sizeof err);
    expect(rc == SL_EINVAL && !c, "init with a short id refused");
    rc = sl_nccl_init(hex, 1, 1, &c, err, sizeof err);
    expect(rc == SL_ERANGE && !c, "rank 1 of 1 refused");
    rc = sl_nccl_init(hex, 1, 0, &c, err, sizeof err);
    if (rc) printf("  sl_nccl_init: %s\n", err);
    expect(rc == 0 && c && sl_nccl_size(c) == 1 && sl_nccl_rank(c) == 0, "joined as rank 0 of 1");
    if (!c) return;
    size_t n = (1 << 20) + 37;
    float *h = malloc(4 * n), *h2 = malloc(4 * n);
    for (size_t i = 0; i < n; i++) h[i] = frand();
    float *d = sl_gpu_alloc(4 * n);
    sl_gpu_copy(d, h, 4 * n);
    rc = sl_nccl_allreduce_avg(c, d, n);
    sl_gpu_copy(h2, d, 4 * n);
    expect(rc == 0 && memcmp(h, h2, 4 * n) == 0, "all-reduce (avg) of one rank is the identity");
    int nb = 0;
    rc = sl_nccl_broadcast(c, d, 4 * n, 0, 1 << 20, &nb);
    sl_gpu_copy(h2, d, 4 * n);
    expect(rc == 0 && memcmp(h, h2, 4 * n) == 0, "broadcast from root 0 keeps the buffer");
    char msg[96];
    snprintf(msg, sizeof msg, "broadcast in %d buckets of 1 MiB (want %zu)", nb, (4 * n + (1 << 20) - 1) >> 20);
    expect(nb == (int)((4 * n + (1 << 20) - 1) >> 20), msg);
    expect(sl_nccl_broadcast(c, d, 4 * n, 1, 0, NULL) == SL_ERANGE, "broadcast from root 1 of 1 refused");
    sl_gpu_free(d);
    free(h), free(h2);
    sl_nccl_free(c);
}

/* plain AdamW twin vs the data-parallel step over one rank */
static void test_dp_one_rank(int zero1, int tied)
{
    printf("data parallel over one rank, zero1=%d tied=%d\n", zero1, tied);
    sl_hf_config cfg;
    qwen2(&cfg, 256, 4, 4, 2, 64, 512, 1000, tied);
    int lens[] = {60, 100, 37};
    int32_t cu[4] = {0, 60, 160, 197};
    int T = 197;
    char err[256];
    sl_model *m = NULL;
    if (sl_model_new(&cfg, sl_ops_cpu(), T, 11, &m, err, sizeof err)) {
        printf("  sl_model_new: %s FAIL\n", err);
        g_fail = 1;
        return;
    }
    (void)lens;
    sl_gpum *a = NULL, *b = NULL;
    if (sl_gpum_new(m, T, &a, err, sizeof err) || sl_gpum_new(m, T, &b, err, sizeof err)) {
        printf("  sl_gpum_new: %s FAIL\n", err);
        g_fail = 1;
        sl_gpum_free(a), sl_model_free(m);
        return;
    }
    char hex[SL_NCCL_ID_HEX];
    sl_nccl *c = NULL;
    sl_dp *dp = NULL;
    if (sl_nccl_unique_id(hex, err, sizeof err) || sl_nccl_init(hex, 1, 0, &c, err, sizeof err) ||
        sl_dp_new(c, b, 64 << 10, zero1, &dp, err, sizeof err)) {
        printf("  setup: %s FAIL\n", err);
        g_fail = 1;
        goto out;
    }
    int32_t tok[197];
    for (int t = 0; t < T; t++) tok[t] = (int32_t)((frand() + 1.0f) * 0.5f * (cfg.vocab_size - 1));
    double la = 0, lb = 0, gna = 0, gnb = 0;
    int same_loss = 1;
    for (int step = 0; step < 4; step++) {
        /* two micro-batches: only the last one's backward is armed */
        for (int mb = 0; mb < 2; mb++) {
            if (mb == 1) sl_dp_arm(dp);
            sl_gpum_forward_backward_ce(a, tok, cu, 3, NULL, NULL, &la);
            sl_gpum_forward_backward_ce(b, tok, cu, 3, NULL, NULL, &lb);
            if (la != lb) same_loss = 0;
        }
        sl_gpum_adamw_step(a, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, &gna);
        if (sl_dp_step(dp, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, &gnb)) g_fail = 1;
    }
    expect(same_loss, "identical losses on both twins at every micro-batch");
    char msg[128];
    snprintf(msg, sizeof msg, "grad norm %.6g vs %.6g", gna, gnb);
    expect(fabs(gna - gnb) <= 1e-6 * fabs(gna), msg);
    sl_dp_gather_params(dp);
    float *pa = malloc(4 * m->n_params), *pb = malloc(4 * m->n_params), *p0 = malloc(4 * m->n_params);
    sl_gpum_params_to_host(a, pa);
    sl_gpum_params_to_host(b, pb);
    memcpy(p0, m->params_mem, 4 * m->n_params);
    double num = 0, den = 0, moved = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        double dd = (double)pa[i] - pb[i];
        num += dd * dd, den += (double)pa[i] * pa[i];
        moved += ((double)pa[i] - p0[i]) * ((double)pa[i] - p0[i]);
    }
    snprintf(msg, sizeof msg, "parameters after 4 steps: rel diff %.2e (moved %.2e)", sqrt(num / den), sqrt(moved / den));
    expect(den > 0 && sqrt(num / den) <= 1e-6 && moved > 0, msg);
    sl_dp_stats st;
    sl_dp_get_stats(dp, &st);
    snprintf(msg, sizeof msg, "%d buckets, %d launched during the backward", st.buckets, st.early);
    expect(st.buckets > 4 && st.early * 2 >= st.buckets, msg);
    if (zero1) expect(st.shard_lo == 0 && st.moment_bytes > 0, "ZeRO-1 shard of one rank is everything");
    free(pa), free(pb), free(p0);
out:
    sl_dp_free(dp);
    sl_nccl_free(c);
    sl_gpum_free(a);
    sl_gpum_free(b);
    sl_model_free(m);
}

int main(void)
{
    sl_log_init("test_nccl", SL_LOG_WARN);
    if (sl_gpu_device_count() < 1) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    char err[128];
    if (sl_gpu_set_device(0, err, sizeof err)) {
        printf("%s\n", err);
        return 1;
    }
    expect(sl_gpu_set_device(sl_gpu_device_count(), err, sizeof err) == SL_ERANGE && strstr(err, "has"),
           "a device past the last is refused");
    test_collectives();
    test_dp_one_rank(1, 1);
    test_dp_one_rank(0, 0);
    test_dp_one_rank(1, 0);
    printf("%s\n", g_fail ? "FAILED" : "all NCCL checks passed");
    return g_fail ? 1 : 0;
}
#endif
