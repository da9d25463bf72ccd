/*
 * gpu_sync.cu — CUDA IPC weight sync (kernels/gpu_sync.h).
 */
#include <stdlib.h>
#include <string.h>

#ifndef SL_HAVE_CUDA
#define SL_HAVE_CUDA 1
#endif
#include "base.h"
#include "bf16.cuh"
#include "gpu_sync.h"

struct sl_gsync {
    int publisher, copy;
    void *src;  /* exported (publisher) or opened (subscriber) buffer */
    void *own;  /* subscriber's copy */
    size_t bytes;
    cudaEvent_t ev;
    cudaStream_t stream; /* subscriber */
};

static int cerr(char *err, size_t errlen, const char *what, cudaError_t e)
{
    if (err && errlen) snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
    cudaGetLastError();
    return SL_EUNSUPPORTED;
}

extern "C" int sl_gsync_export(void *dptr, size_t bytes, sl_gsync **out, sl_gsync_handle *h,
                               char *err, size_t errlen)
{
    *out = NULL;
    sl_gsync *s = (sl_gsync *)calloc(1, sizeof(*s));
    if (!s) return SL_ENOMEM;
    s->publisher = 1, s->src = dptr, s->bytes = bytes;
    cudaError_t e = cudaEventCreateWithFlags(&s->ev, cudaEventInterprocess | cudaEventDisableTiming);
    if (e != cudaSuccess) return free(s), cerr(err, errlen, "cudaEventCreate(interprocess)", e);
    cudaIpcMemHandle_t mh;
    cudaIpcEventHandle_t eh;
    if ((e = cudaIpcGetMemHandle(&mh, dptr)) != cudaSuccess ||
        (e = cudaIpcGetEventHandle(&eh, s->ev)) != cudaSuccess) {
        cudaEventDestroy(s->ev);
        free(s);
        return cerr(err, errlen, "cudaIpcGet*Handle", e);
    }
    memset(h, 0, sizeof(*h));
    memcpy(h->mem, &mh, sizeof(mh) < 64 ? sizeof(mh) : 64);
    memcpy(h->ev, &eh, sizeof(eh) < 64 ? sizeof(eh) : 64);
    h->bytes = bytes;
    *out = s;
    return SL_OK;
}

extern "C" void sl_gsync_publish(sl_gsync *s) { CUDA_CHECK(cudaEventRecord(s->ev, sl_bf_stream())); }

extern "C" int sl_gsync_import(const sl_gsync_handle *h, int copy, sl_gsync **out, char *err,
                               size_t errlen)
{
    *out = NULL;
    sl_gsync *s = (sl_gsync *)calloc(1, sizeof(*s));
    if (!s) return SL_ENOMEM;
    s->copy = copy, s->bytes = h->bytes;
    cudaIpcMemHandle_t mh;
    cudaIpcEventHandle_t eh;
    memcpy(&mh, h->mem, sizeof(mh));
    memcpy(&eh, h->ev, sizeof(eh));
    cudaError_t e;
    if ((e = cudaIpcOpenMemHandle(&s->src, mh, cudaIpcMemLazyEnablePeerAccess)) != cudaSuccess)
        return free(s), cerr(err, errlen, "cudaIpcOpenMemHandle", e);
    if ((e = cudaIpcOpenEventHandle(&s->ev, eh)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (copy && (e = cudaMalloc(&s->own, s->bytes)) != cudaSuccess)) {
        cudaIpcCloseMemHandle(s->src);
        free(s);
        return cerr(err, errlen, "cuda IPC import", e);
    }
    *out = s;
    return SL_OK;
}

extern "C" void *sl_gpu_alloc(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}
extern "C" void sl_gpu_free(void *p)
{
    if (p) cudaFree(p);
}

extern "C" const void *sl_gsync_pull(sl_gsync *s, int copy)
{
    CUDA_CHECK(cudaStreamWaitEvent(s->stream, s->ev, 0));
    copy = copy && s->own;
    if (copy) CUDA_CHECK(cudaMemcpyAsync(s->own, s->src, s->bytes, cudaMemcpyDeviceToDevice, s->stream));
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    s->copy = copy;
    return copy ? s->own : s->src;
}

extern "C" void sl_gsync_pull_into(sl_gsync *s, void *dst)
{
    CUDA_CHECK(cudaStreamWaitEvent(s->stream, s->ev, 0));
    CUDA_CHECK(cudaMemcpyAsync(dst, s->src, s->bytes, cudaMemcpyDeviceToDevice, s->stream));
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
}

extern "C" void sl_gsync_free(sl_gsync *s)
{
    if (!s) return;
    if (s->publisher) {
        cudaEventDestroy(s->ev);
    } else {
        if (s->own) cudaFree(s->own);
        cudaIpcCloseMemHandle(s->src);
        cudaStreamDestroy(s->stream);
        cudaEventDestroy(s->ev);
    }
    free(s);
}

extern "C" void sl_gsync_stamp(sl_gsync *s, uint32_t stamp)
{
    static uint32_t host_stamp; /* pageable source: the copy is staged at call time */
    host_stamp = stamp;
    CUDA_CHECK(cudaMemcpyAsync(s->src, &host_stamp, 4, cudaMemcpyHostToDevice, sl_bf_stream()));
}

extern "C" uint32_t sl_gsync_read_stamp(sl_gsync *s)
{
    uint32_t v = 0;
    CUDA_CHECK(cudaMemcpy(&v, s->copy ? s->own : s->src, 4, cudaMemcpyDeviceToHost));
    return v;
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

extern "C" double sl_gsync_d2d_ms(size_t bytes, int reps)
{
    void *a, *b;
    CUDA_CHECK(cudaMalloc(&a, bytes));
    CUDA_CHECK(cudaMalloc(&b, bytes));
    CUDA_CHECK(cudaMemset(a, 1, bytes));
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float *ms = (float *)calloc(reps, sizeof(float));
    for (int i = -2; i < reps; i++) {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
        CUDA_CHECK(cudaEventRecord(e1, 0));
        CUDA_CHECK(cudaEventSynchronize(e1));
        if (i >= 0) CUDA_CHECK(cudaEventElapsedTime(&ms[i], e0, e1));
    }
    qsort(ms, reps, sizeof(float), cmp_f);
    double r = ms[reps / 2];
    free(ms);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return r;
}
