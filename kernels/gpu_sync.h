/*
 * gpu_sync.h — weight sync between two processes on one GPU through CUDA
 * IPC (DESIGN §2): the trainer exports its flat bf16 weight buffer once
 * (a memory handle) with an inter-process event; each publish records the
 * event on the trainer's stream after the optimizer step. The engine opens
 * both handles once; each pull makes its stream wait for the event and
 * then either copies the buffer device-to-device into its own copy
 * (copy = 1) or reads the trainer's buffer in place (copy = 0: no copy at
 * all, the engine must not run while the trainer writes).
 *
 * The handles are plain bytes (sl_gsync_handle) to send over any channel
 * (a socket, the mailbox). Without CUDA the functions are stubs returning
 * SL_EUNSUPPORTED. Not thread-safe per object.
 */
#ifndef SL_GPU_SYNC_H
#define SL_GPU_SYNC_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_gsync_handle {
    unsigned char mem[64]; /* cudaIpcMemHandle_t */
    unsigned char ev[64];  /* cudaIpcEventHandle_t */
    uint64_t bytes;
} sl_gsync_handle;

typedef struct sl_gsync sl_gsync;

#ifdef SL_HAVE_CUDA
#ifdef __cplusplus
extern "C" {
#endif
/* Publisher side: export dptr (device memory from cudaMalloc, bytes long).
 * Errors: SL_EUNSUPPORTED (no GPU / IPC refused, message in err). */
int sl_gsync_export(void *dptr, size_t bytes, sl_gsync **out, sl_gsync_handle *h, char *err,
                    size_t errlen);
/* Record the publish event after everything queued so far on the GPU
 * model's stream (sl_bf stream). */
void sl_gsync_publish(sl_gsync *s);
/* Subscriber side: open the handles (another process). copy: keep an own
 * copy (allocated here) and refresh it on each pull. */
int sl_gsync_import(const sl_gsync_handle *h, int copy, sl_gsync **out, char *err,
                    size_t errlen);
/* Wait for the last publish and, when copy (and the import was made with
 * copy), copy; returns when the weights are ready: the device pointer of
 * the weights to read (own copy, or the publisher's buffer in place). */
const void *sl_gsync_pull(sl_gsync *s, int copy);
/* Wait for the last publish, then copy the weights into dst (device
 * memory of at least the handle's bytes, the caller's). Returns when the
 * copy is done. */
void sl_gsync_pull_into(sl_gsync *s, void *dst);
/* Copy n bytes of device memory to the host (tests, checks). */
void sl_gpu_to_host(void *dst, const void *src, size_t n);
/* Plain device memory (cudaMalloc) for callers without CUDA headers. */
void *sl_gpu_alloc(size_t bytes);
void sl_gpu_free(void *p);
void sl_gsync_free(sl_gsync *s);
/* Test/bench helpers: write a 32-bit stamp at the start of the exported
 * buffer (on the publish stream); read the stamp of the subscriber's view;
 * time one in-process device-to-device copy of `bytes` (median of reps, ms). */
void sl_gsync_stamp(sl_gsync *s, uint32_t stamp);
uint32_t sl_gsync_read_stamp(sl_gsync *s);
double sl_gsync_d2d_ms(size_t bytes, int reps);
#ifdef __cplusplus
}
#endif
#else
#include "base.h"
static inline int sl_gsync_import(const sl_gsync_handle *h, int copy, sl_gsync **out, char *err,
                                  size_t errlen)
{
    (void)h, (void)copy, (void)err, (void)errlen;
    *out = 0;
    return SL_EUNSUPPORTED;
}
static inline void *sl_gpu_alloc(size_t bytes)
{
    (void)bytes;
    return 0;
}
static inline void sl_gpu_free(void *p) { (void)p; }
#endif

#endif
