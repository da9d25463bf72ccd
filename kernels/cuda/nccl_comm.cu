/*
 * nccl_comm.cu — NCCL communicators, data-parallel gradient buckets,
 * ZeRO-1 and the bucketed weight broadcast (kernels/nccl_comm.h).
 *
 * Streams: the GPU model computes on its stream (sl_bf_stream); every
 * NCCL call runs on the communicator's own stream, ordered after the
 * model's work by events: a bucket's all-reduce waits for an event
 * recorded when its last layer's gradient kernels were queued, so it runs
 * while the model's stream computes the gradients of the layers below.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <nccl.h>

#ifndef SL_HAVE_CUDA
#define SL_HAVE_CUDA 1
#endif
#include "base.h"
#include "bf16.cuh"
#include "nccl_comm.h"

static_assert(sizeof(ncclUniqueId) == SL_NCCL_ID_BYTES, "ncclUniqueId size");

struct sl_nccl {
    ncclComm_t comm;
    int rank, size;
    cudaStream_t stream;
    cudaEvent_t ev;
    double *d_sum; /* sl_nccl_sum_host's device buffer (64 doubles) */
    int aborted;
};

static int nerr(char *err, size_t errlen, const char *what, ncclResult_t r)
{
    if (err && errlen) snprintf(err, errlen, "%s: %s", what, ncclGetErrorString(r));
    return SL_EIO;
}

#define NCCL_OR_DIE(call)                                                                       \
    do {                                                                                        \
        ncclResult_t r_ = (call);                                                               \
        if (r_ != ncclSuccess) sl_cuda_die(#call, ncclGetErrorString(r_), __func__, __FILE__, __LINE__); \
    } while (0)

extern "C" int sl_gpu_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" int sl_gpu_set_device(int dev, char *err, size_t errlen)
{
    int n = sl_gpu_device_count();
    if (dev < 0 || dev >= n) {
        if (err && errlen)
            snprintf(err, errlen, "device cuda:%d: this machine has %d CUDA GPU%s", dev, n, n == 1 ? "" : "s");
        return SL_ERANGE;
    }
    cudaError_t e = cudaSetDevice(dev);
    if (e != cudaSuccess) {
        if (err && errlen) snprintf(err, errlen, "cudaSetDevice(%d): %s", dev, cudaGetErrorString(e));
        cudaGetLastError();
        return SL_EIO;
    }
    return SL_OK;
}

extern "C" void sl_gpu_copy(void *dst, const void *src, size_t bytes)
{
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

extern "C" int sl_nccl_unique_id(char hex[SL_NCCL_ID_HEX], char *err, size_t errlen)
{
    ncclUniqueId id;
    hex[0] = 0;
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) return nerr(err, errlen, "ncclGetUniqueId", r);
    sl_nccl_id_to_hex((const unsigned char *)id.internal, hex);
    return SL_OK;
}

extern "C" int sl_nccl_init(const char *hex, int nranks, int rank, sl_nccl **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    ncclUniqueId id;
    char why[96];
    if (sl_nccl_id_from_hex(hex, (unsigned char *)id.internal, why, sizeof why)) {
        if (err && errlen) snprintf(err, errlen, "%s", why);
        return SL_EINVAL;
    }
    if (nranks < 1 || nranks > SL_NCCL_MAX_RANKS || rank < 0 || rank >= nranks) {
        if (err && errlen) snprintf(err, errlen, "rank %d of %d ranks is out of range", rank, nranks);
        return SL_ERANGE;
    }
    if (sl_gpu_device_count() < 1) {
        if (err && errlen) snprintf(err, errlen, "no CUDA device");
        return SL_EUNSUPPORTED;
    }
    sl_nccl *c = (sl_nccl *)calloc(1, sizeof(*c));
    if (!c) return SL_ENOMEM;
    ncclResult_t r = ncclCommInitRank(&c->comm, nranks, id, rank);
    if (r != ncclSuccess) {
        free(c);
        return nerr(err, errlen, "ncclCommInitRank", r);
    }
    c->rank = rank, c->size = nranks;
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->ev, cudaEventDisableTiming));
    *out = c;
    return SL_OK;
}

extern "C" void sl_nccl_free(sl_nccl *c)
{
    if (!c) return;
    if (c->aborted) {
        cudaGetLastError();
    } else {
        cudaStreamSynchronize(c->stream);
        ncclCommDestroy(c->comm);
    }
    if (c->d_sum) cudaFree(c->d_sum);
    cudaEventDestroy(c->ev);
    cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" void sl_nccl_abort(sl_nccl *c)
{
    if (!c || c->aborted) return;
    c->aborted = 1;
    ncclCommAbort(c->comm);
}

extern "C" int sl_nccl_rank(const sl_nccl *c) { return c->rank; }
extern "C" int sl_nccl_size(const sl_nccl *c) { return c->size; }

/* the communicator's stream waits for the model's queued work */
static void after_model(sl_nccl *c)
{
    CUDA_CHECK(cudaEventRecord(c->ev, sl_bf_stream()));
    CUDA_CHECK(cudaStreamWaitEvent(c->stream, c->ev, 0));
}

extern "C" int sl_nccl_allreduce_avg(sl_nccl *c, float *dbuf, size_t n)
{
    after_model(c);
    ncclResult_t r = ncclAllReduce(dbuf, dbuf, n, ncclFloat32, ncclAvg, c->comm, c->stream);
    if (r != ncclSuccess) return nerr(NULL, 0, "ncclAllReduce", r);
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return SL_OK;
}

extern "C" int sl_nccl_sum_host(sl_nccl *c, double *v, int n)
{
    if (n < 0 || n > 64) return SL_ERANGE;
    if (!c->d_sum && cudaMalloc(&c->d_sum, 64 * sizeof(double)) != cudaSuccess) {
        cudaGetLastError();
        c->d_sum = NULL;
        return SL_ENOMEM;
    }
    CUDA_CHECK(cudaMemcpyAsync(c->d_sum, v, sizeof(double) * n, cudaMemcpyHostToDevice, c->stream));
    ncclResult_t r = ncclAllReduce(c->d_sum, c->d_sum, n, ncclFloat64, ncclSum, c->comm, c->stream);
    if (r != ncclSuccess) return nerr(NULL, 0, "ncclAllReduce", r);
    CUDA_CHECK(cudaMemcpyAsync(v, c->d_sum, sizeof(double) * n, cudaMemcpyDeviceToHost, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return SL_OK;
}

extern "C" int sl_nccl_broadcast(sl_nccl *c, void *dbuf, size_t bytes, int root,
                                 size_t bucket_bytes, int *n_buckets)
{
    if (root < 0 || root >= c->size) return SL_ERANGE;
    if (bucket_bytes == 0 || bucket_bytes > bytes) bucket_bytes = bytes ? bytes : 1;
    after_model(c);
    int nb = 0;
    for (size_t off = 0; off < bytes; off += bucket_bytes, nb++) {
        size_t n = bytes - off < bucket_bytes ? bytes - off : bucket_bytes;
        ncclResult_t r = ncclBroadcast((char *)dbuf + off, (char *)dbuf + off, n, ncclUint8, root,
                                       c->comm, c->stream);
        if (r != ncclSuccess) return nerr(NULL, 0, "ncclBroadcast", r);
    }
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (c->aborted) { /* sl_nccl_abort from another thread: a peer is gone */
        cudaGetLastError();
        return SL_ECLOSED;
    }
    CUDA_CHECK(e);
    if (n_buckets) *n_buckets = nb;
    return SL_OK;
}

/* ------------------------------------------------------ data parallel */

struct sl_dp {
    sl_nccl *c;
    sl_gpum *g;
    sl_gpum_flat f;
    int zero1, armed, step;
    ncclRedOp_t op;      /* ncclAvg, or ncclSum with SL_DP_SUM */
    int nb, next, early, launched_early;
    size_t *blo, *bhi;
    int *blayer;
    size_t bucket_bytes;
    size_t lo, hi;       /* this rank's shard */
    size_t *slo, *shi;   /* every rank's shard */
    float *M, *V;        /* zero1: moments of the shard */
    double *d_norm;
    cudaEvent_t ev_done;
};

/* launch the armed buckets that are ready once layer `layer` is done (-1:
 * all the rest); in plan order */
static void dp_hook(void *ctx, int layer)
{
    sl_dp *d = (sl_dp *)ctx;
    if (!d->armed) return;
    int first = 1;
    while (d->next < d->nb && (layer < 0 || (d->blayer[d->next] >= 0 && d->blayer[d->next] >= layer))) {
        if (first) after_model(d->c), first = 0;
        int b = d->next++;
        NCCL_OR_DIE(ncclAllReduce(d->f.G + d->blo[b], d->f.G + d->blo[b], d->bhi[b] - d->blo[b],
                                  ncclFloat32, d->op, d->c->comm, d->c->stream));
        if (layer >= 0) d->early++;
    }
    if (layer < 0) {
        d->launched_early = d->early;
        d->armed = 0;
        d->next = 0, d->early = 0;
        CUDA_CHECK(cudaEventRecord(d->ev_done, d->c->stream));
    }
}

extern "C" int sl_dp_new(sl_nccl *c, sl_gpum *g, size_t bucket_bytes, int flags, sl_dp **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    int zero1 = (flags & SL_DP_ZERO1) != 0;
    if (bucket_bytes < SL_DP_BUCKET_MIN) {
        if (err && errlen) snprintf(err, errlen, "bucket of %zu bytes: at least %d", bucket_bytes, SL_DP_BUCKET_MIN);
        return SL_EINVAL;
    }
    sl_dp *d = (sl_dp *)calloc(1, sizeof(*d));
    if (!d) return SL_ENOMEM;
    d->c = c, d->g = g, d->zero1 = zero1, d->bucket_bytes = bucket_bytes;
    d->op = (flags & SL_DP_SUM) ? ncclSum : ncclAvg;
    sl_gpum_get_flat(g, &d->f);
    size_t be = bucket_bytes / 4;
    int cap = (int)(d->f.n / be) + 2 * d->f.n_layers + 8;
    d->blo = (size_t *)malloc(sizeof(size_t) * cap);
    d->bhi = (size_t *)malloc(sizeof(size_t) * cap);
    d->blayer = (int *)malloc(sizeof(int) * cap);
    d->slo = (size_t *)malloc(sizeof(size_t) * c->size);
    d->shi = (size_t *)malloc(sizeof(size_t) * c->size);
    if (!d->blo || !d->bhi || !d->blayer || !d->slo || !d->shi) {
        sl_dp_free(d);
        return SL_ENOMEM;
    }
    d->nb = sl_dp_plan(d->f.n, d->f.layer_off, d->f.n_layers, be, d->blo, d->bhi, d->blayer, cap);
    if (d->nb < 0) {
        sl_dp_free(d);
        if (err && errlen) snprintf(err, errlen, "bucket plan overflow");
        return SL_EINVAL;
    }
    for (int r = 0; r < c->size; r++) sl_shard_range(d->f.n, c->size, r, 64, &d->slo[r], &d->shi[r]);
    d->lo = zero1 ? d->slo[c->rank] : 0;
    d->hi = zero1 ? d->shi[c->rank] : d->f.n;
    bool bad = cudaMalloc(&d->d_norm, 8) != cudaSuccess;
    if (zero1 && !bad) {
        size_t n = d->hi - d->lo;
        bad = cudaMalloc(&d->M, 4 * (n ? n : 1)) != cudaSuccess || cudaMalloc(&d->V, 4 * (n ? n : 1)) != cudaSuccess;
        if (!bad) {
            CUDA_CHECK(cudaMemset(d->M, 0, 4 * n));
            CUDA_CHECK(cudaMemset(d->V, 0, 4 * n));
        }
    }
    if (bad) {
        cudaGetLastError();
        sl_dp_free(d);
        if (err && errlen) snprintf(err, errlen, "out of device memory for the optimizer shard");
        return SL_ENOMEM;
    }
    CUDA_CHECK(cudaEventCreateWithFlags(&d->ev_done, cudaEventDisableTiming));
    if (zero1) sl_gpum_drop_moments(g), sl_gpum_get_flat(g, &d->f);
    sl_gpum_set_bwd_hook(g, dp_hook, d);
    *out = d;
    return SL_OK;
}

extern "C" void sl_dp_free(sl_dp *d)
{
    if (!d) return;
    if (d->g) sl_gpum_set_bwd_hook(d->g, NULL, NULL);
    if (d->ev_done) cudaEventDestroy(d->ev_done);
    if (d->M) cudaFree(d->M);
    if (d->V) cudaFree(d->V);
    if (d->d_norm) cudaFree(d->d_norm);
    free(d->blo), free(d->bhi), free(d->blayer), free(d->slo), free(d->shi);
    free(d);
}

extern "C" void sl_dp_arm(sl_dp *d) { d->armed = 1, d->next = 0, d->early = 0; }

/* every rank broadcasts its shard of buf (elem bytes per element) */
static int gather_shards(sl_dp *d, void *buf, size_t elem)
{
    after_model(d->c);
    ncclResult_t r = ncclGroupStart();
    for (int k = 0; k < d->c->size && r == ncclSuccess; k++) {
        char *p = (char *)buf + d->slo[k] * elem;
        size_t n = (d->shi[k] - d->slo[k]) * elem;
        if (n) r = ncclBroadcast(p, p, n, ncclUint8, k, d->c->comm, d->c->stream);
    }
    ncclResult_t r2 = ncclGroupEnd();
    if (r != ncclSuccess || r2 != ncclSuccess) return nerr(NULL, 0, "ncclBroadcast (gather)", r ? r : r2);
    CUDA_CHECK(cudaEventRecord(d->ev_done, d->c->stream));
    CUDA_CHECK(cudaStreamWaitEvent(sl_bf_stream(), d->ev_done, 0));
    return SL_OK;
}

extern "C" void sl_dp_wait(sl_dp *d)
{
    if (d->armed) dp_hook(d, -1); /* a backward that never reached its end hook */
    CUDA_CHECK(cudaStreamWaitEvent(sl_bf_stream(), d->ev_done, 0));
}

extern "C" double sl_dp_clip_grad(sl_dp *d, float max_norm)
{
    cudaStream_t s = sl_bf_stream();
    sl_dp_wait(d);
    /* each rank its shard's sum of squares, summed over ranks: the same
     * norm on every rank (one rank's whole sum would differ in the last
     * bits from another's: the device sum's order is not fixed) */
    int r = d->c->rank;
    CUDA_CHECK(cudaMemsetAsync(d->d_norm, 0, 8, s));
    if (d->shi[r] > d->slo[r]) sl_bf_sumsq(d->d_norm, d->f.G + d->slo[r], d->shi[r] - d->slo[r]);
    after_model(d->c);
    NCCL_OR_DIE(ncclAllReduce(d->d_norm, d->d_norm, 1, ncclFloat64, ncclSum, d->c->comm, d->c->stream));
    CUDA_CHECK(cudaEventRecord(d->ev_done, d->c->stream));
    CUDA_CHECK(cudaStreamWaitEvent(s, d->ev_done, 0));
    double v = 0;
    CUDA_CHECK(cudaMemcpyAsync(&v, d->d_norm, 8, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    double nrm = sqrt(v);
    /* zero1 steps only its shard: scale that */
    if (isfinite(nrm) && max_norm > 0 && d->hi > d->lo) sl_bf_scale(d->f.G + d->lo, d->hi - d->lo, d->d_norm, max_norm);
    return nrm;
}

extern "C" int sl_dp_step(sl_dp *d, float lr, float b1, float b2, float eps, float wd,
                          float max_norm, double *grad_norm)
{
    cudaStream_t s = sl_bf_stream();
    sl_dp_wait(d);
    if (!d->zero1) {
        sl_gpum_adamw_step(d->g, lr, b1, b2, eps, wd, max_norm, grad_norm);
        return SL_OK;
    }
    size_t n = d->f.n;
    if (max_norm > 0 || grad_norm) {
        /* the reduced gradients are identical on every rank: the global
         * norm is computed whole on each */
        CUDA_CHECK(cudaMemsetAsync(d->d_norm, 0, 8, s));
        sl_bf_sumsq(d->d_norm, d->f.G, n);
        if (max_norm > 0) sl_bf_scale(d->f.G + d->lo, d->hi - d->lo, d->d_norm, max_norm);
        if (grad_norm) {
            double v = 0;
            CUDA_CHECK(cudaMemcpyAsync(&v, d->d_norm, 8, cudaMemcpyDeviceToHost, s));
            CUDA_CHECK(cudaStreamSynchronize(s));
            *grad_norm = sqrt(v);
        }
    }
    d->step++;
    float bc1 = 1.f - powf(b1, (float)d->step), bc2 = 1.f - powf(b2, (float)d->step);
    size_t sn = d->hi - d->lo;
    size_t ndec = d->f.n_decay > d->lo ? d->f.n_decay - d->lo : 0;
    if (ndec > sn) ndec = sn;
    if (sn)
        sl_bf_adamw(d->f.P + d->lo, d->f.G + d->lo, d->M, d->V, (bf16 *)d->f.Wb + d->lo, sn, ndec,
                    lr, b1, b2, eps, wd, bc1, bc2);
    /* sl_bf_adamw zeroes the gradients of its shard only */
    if (d->lo) CUDA_CHECK(cudaMemsetAsync(d->f.G, 0, 4 * d->lo, s));
    if (d->hi < n) CUDA_CHECK(cudaMemsetAsync(d->f.G + d->hi, 0, 4 * (n - d->hi), s));
    return gather_shards(d, d->f.Wb, 2);
}

extern "C" int sl_dp_gather_params(sl_dp *d)
{
    if (!d->zero1) return SL_OK;
    int rc = gather_shards(d, d->f.P, 4);
    CUDA_CHECK(cudaStreamSynchronize(sl_bf_stream()));
    return rc;
}

extern "C" void sl_dp_set_step(sl_dp *d, int64_t step)
{
    d->step = (int)step;
    sl_gpum_set_step(d->g, step);
}

extern "C" int sl_dp_moments_to_host(sl_dp *d, float *m, float *v)
{
    if (!d->zero1) {
        sl_gpum_moments_to_host(d->g, m, v);
        return SL_OK;
    }
    /* each shard into its place of the (zero, between steps) gradient
     * buffer, every shard to every rank, then the host layout */
    float *stage = d->f.G, *mine[2] = {d->M, d->V}, *host[2] = {m, v};
    cudaStream_t s = sl_bf_stream();
    int rc = SL_OK;
    for (int k = 0; k < 2 && rc == SL_OK; k++) {
        if (!host[k]) continue;
        if (d->hi > d->lo)
            CUDA_CHECK(cudaMemcpyAsync(stage + d->lo, mine[k], 4 * (d->hi - d->lo), cudaMemcpyDeviceToDevice, s));
        rc = gather_shards(d, stage, 4);
        if (rc == SL_OK) sl_gpum_flat_to_host(d->g, stage, host[k]);
    }
    CUDA_CHECK(cudaMemsetAsync(stage, 0, 4 * d->f.n, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    return rc;
}

extern "C" void sl_dp_moments_from_host(sl_dp *d, const float *m, const float *v)
{
    if (!d->zero1) {
        sl_gpum_moments_from_host(d->g, m, v);
        return;
    }
    float *stage = d->f.G, *mine[2] = {d->M, d->V};
    const float *host[2] = {m, v};
    cudaStream_t s = sl_bf_stream();
    for (int k = 0; k < 2; k++) {
        sl_gpum_flat_from_host(d->g, stage, host[k]);
        if (d->hi > d->lo)
            CUDA_CHECK(cudaMemcpyAsync(mine[k], stage + d->lo, 4 * (d->hi - d->lo), cudaMemcpyDeviceToDevice, s));
    }
    CUDA_CHECK(cudaMemsetAsync(stage, 0, 4 * d->f.n, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
}

extern "C" void sl_dp_get_stats(const sl_dp *d, sl_dp_stats *st)
{
    st->buckets = d->nb;
    st->early = d->launched_early;
    st->bucket_bytes = d->bucket_bytes;
    st->shard_lo = d->lo, st->shard_hi = d->hi;
    st->moment_bytes = d->zero1 ? 8 * (d->hi - d->lo) : 8 * d->f.n;
}
