/*
 * nccl_comm.h — several GPUs: NCCL communicators, data-parallel gradient
 * all-reduce for the GPU model (bucketed, overlapped with backward), ZeRO-1
 * (AdamW moments and the authoritative master weights sharded across
 * ranks) and the bucketed broadcast of the flat bf16 weight buffer from a
 * trainer to rollout engines.
 *
 * One process per GPU (one actor per rank): a rank selects its GPU
 * (sl_gpu_set_device) before it makes a GPU model. Rank 0 makes a unique
 * id (sl_nccl_unique_id), sends it as hex text to the other ranks through
 * the mailbox (message NCCL_ID, actors/nccl_msg.h, mailbox/PROTOCOL.md
 * §13), and every rank calls sl_nccl_init with it.
 *
 * Data parallelism (sl_dp): sl_dp_new hooks the GPU model's backward
 * (sl_gpum_set_bwd_hook). Before the backward of the last micro-batch of a
 * step the caller arms it (sl_dp_arm): as each layer's gradients are
 * complete, every bucket (about bucket_bytes of fp32 gradients) that lies
 * entirely in finished layers is all-reduced (average over ranks) on a
 * communication stream while the backward of the next layers runs; the
 * rest (embeddings, LM head, norms and biases) when the backward ends.
 * sl_dp_step then makes the model's stream wait for the reductions, clips
 * by the global norm and takes one AdamW step: with zero1 each rank steps
 * only its shard of the flat parameters (moments allocated for the shard
 * alone; the model's full moments are freed) and the bf16 weights of each
 * shard are broadcast to every rank (an all-gather of unequal shards);
 * without zero1 every rank steps everything (identical on all ranks).
 * Gradients are averaged (each rank's loss its local mean; ranks should
 * see equal token counts for results equal to one GPU's, up to the order
 * of the reduction) or, with SL_DP_SUM, summed (each rank's loss already
 * divided by the global denominator: the trainer, trainer_core.h).
 *
 * The pure parts (hex of the id, bucket plan, shard ranges) are in
 * nccl_comm.c and exist in every build; without CUDA (NO_CUDA=1 or no
 * nvcc) the NCCL functions are stubs that return SL_EUNSUPPORTED with a
 * message, sl_gpu_device_count returns 0.
 * Not thread-safe: one thread drives a communicator and its GPU model.
 */
#ifndef SL_NCCL_COMM_H
#define SL_NCCL_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "gpu_model.h"

#define SL_NCCL_ID_BYTES 128                    /* sizeof(ncclUniqueId) */
#define SL_NCCL_ID_HEX (2 * SL_NCCL_ID_BYTES + 1) /* hex text + NUL */
#define SL_NCCL_MAX_RANKS 4096
#define SL_DP_BUCKET_MIN 4096 /* bytes */

/* sl_dp_new flags */
#define SL_DP_ZERO1 1 /* shard the AdamW moments and the master weights' update */
#define SL_DP_SUM 2   /* sum the gradients over ranks (default: average) */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ pure C */

/* id bytes -> 256 lower-case hex chars + NUL. */
void sl_nccl_id_to_hex(const unsigned char id[SL_NCCL_ID_BYTES], char hex[SL_NCCL_ID_HEX]);
/* hex text (exactly 256 hex digits, either case) -> bytes. SL_EINVAL with
 * the reason in why (offset of the first bad character, or the length). */
int sl_nccl_id_from_hex(const char *hex, unsigned char id[SL_NCCL_ID_BYTES], char *why,
                        size_t whylen);

/* Shard r of n ranks over `total` elements: [*lo, *hi), contiguous, sizes
 * differ by at most `align` elements, boundaries multiples of align (> 0)
 * except the last hi = total. */
void sl_shard_range(size_t total, int nranks, int rank, size_t align, size_t *lo, size_t *hi);

/* Bucket plan of a flat fp32 gradient buffer laid out as the GPU model's
 * (sl_gpum_flat): layer l's matrices at [layer_off[l], layer_off[l+1]),
 * layer_off[n_layers] = the end of the decayed part. Buckets of at most
 * bucket_elems elements: first the layer part cut from its top downwards
 * (the backward finishes the last layer first), each bucket tagged with
 * the lowest layer it touches (it is ready once that layer's backward is
 * done), then the parts before the layers and after them (ready at the
 * end, layer -1). Returns the number of buckets written to lo/hi/layer
 * (arrays of cap entries; cap too small: -1). */
int sl_dp_plan(size_t n_total, const size_t *layer_off, int n_layers, size_t bucket_elems,
               size_t *lo, size_t *hi, int *layer, int cap);

/* ------------------------------------------------------------ devices */

/* CUDA devices this process sees (cudaGetDeviceCount); 0 without CUDA or
 * without a GPU. */
int sl_gpu_device_count(void);
/* Select GPU dev for this process's CUDA work (before any model is made).
 * SL_ERANGE when dev is not in [0, count) (message in err). */
int sl_gpu_set_device(int dev, char *err, size_t errlen);

typedef struct sl_nccl sl_nccl;
typedef struct sl_dp sl_dp;

typedef struct sl_dp_stats {
    int buckets;          /* per armed backward */
    int early;            /* of them launched while the backward still ran */
    size_t bucket_bytes;
    size_t shard_lo, shard_hi; /* this rank's ZeRO-1 shard (elements) */
    size_t moment_bytes;  /* device bytes of the moments this rank keeps */
} sl_dp_stats;

#ifdef SL_HAVE_CUDA

/* cudaMemcpy of any direction (for callers without CUDA headers). */
void sl_gpu_copy(void *dst, const void *src, size_t bytes);
/* A fresh unique id, as hex (rank 0 makes it). */
int sl_nccl_unique_id(char hex[SL_NCCL_ID_HEX], char *err, size_t errlen);
/* Join the communicator of nranks ranks named by hex, as rank (blocks until
 * every rank joined). Uses the current device (sl_gpu_set_device). */
int sl_nccl_init(const char *hex, int nranks, int rank, sl_nccl **out, char *err, size_t errlen);
void sl_nccl_free(sl_nccl *c);
/* Abort the communicator (ncclCommAbort): a collective blocked on a dead
 * peer in another thread returns; then only sl_nccl_free (which knows). */
void sl_nccl_abort(sl_nccl *c);
int sl_nccl_rank(const sl_nccl *c);
int sl_nccl_size(const sl_nccl *c);
/* In place, averaged over ranks, fp32 device buffer; returns when done. */
int sl_nccl_allreduce_avg(sl_nccl *c, float *dbuf, size_t n);
/* In place, summed over ranks, n <= 64 doubles of host memory (metrics);
 * returns when done. */
int sl_nccl_sum_host(sl_nccl *c, double *v, int n);
/* Broadcast bytes of device memory from root in buckets of bucket_bytes
 * (0: one piece), after the work queued on the GPU model's stream; returns
 * when done. *n_buckets (may be NULL) gets the number of pieces. */
int sl_nccl_broadcast(sl_nccl *c, void *dbuf, size_t bytes, int root, size_t bucket_bytes,
                      int *n_buckets);

/* Data parallelism over GPU model g (see above). bucket_bytes >=
 * SL_DP_BUCKET_MIN; flags: SL_DP_ZERO1 | SL_DP_SUM (1 = ZeRO-1, averaged). */
int sl_dp_new(sl_nccl *c, sl_gpum *g, size_t bucket_bytes, int flags, sl_dp **out, char *err,
              size_t errlen);
void sl_dp_free(sl_dp *d);
/* The next backward of g all-reduces the gradients (its last micro-batch). */
void sl_dp_arm(sl_dp *d);
/* After the armed backward: make the model's stream wait for the
 * reductions (the averaged gradients are then in the model's buffer on
 * every rank; the caller may clip and step itself: zero_stage 0). */
void sl_dp_wait(sl_dp *d);
/* After the armed backward: wait for the reductions, then the global
 * gradient norm, the same on every rank (each rank sums the squares of its
 * shard, the sums are all-reduced); when it is finite and max_norm > 0 the
 * gradients this rank steps (zero1: its shard; else all) are scaled to at
 * most max_norm. Then sl_dp_step with max_norm 0. */
double sl_dp_clip_grad(sl_dp *d, float max_norm);
/* After the armed backward: wait for the reductions, clip, step (as
 * sl_gpum_adamw_step's arguments), refresh the bf16 weights on all ranks,
 * zero the gradients. */
int sl_dp_step(sl_dp *d, float lr, float beta1, float beta2, float eps, float weight_decay,
               float max_norm, double *grad_norm);
/* zero1: bring the fp32 master weights of every shard to every rank (before
 * sl_gpum_params_to_host, a checkpoint). No-op without zero1. */
int sl_dp_gather_params(sl_dp *d);
/* The optimizer step count (bias correction of the next step uses step + 1;
 * after a resume). */
void sl_dp_set_step(sl_dp *d, int64_t step);
/* The AdamW moments in the host layout (n_params floats each), as the GPU
 * model's sl_gpum_moments_to/from_host. zero1: to_host gathers every
 * shard (collective: every rank calls it; the gradient buffer is the
 * staging area, so between steps only), from_host keeps this rank's shard
 * of the full arrays (NULL: zeros; local). */
int sl_dp_moments_to_host(sl_dp *d, float *m, float *v);
void sl_dp_moments_from_host(sl_dp *d, const float *m, const float *v);
void sl_dp_get_stats(const sl_dp *d, sl_dp_stats *st);

#else /* !SL_HAVE_CUDA */
#include <stdio.h>
#include "base.h"
static inline int sl_nccl_stub(char *err, size_t errlen)
{
    if (err && errlen) snprintf(err, errlen, "built without CUDA/NCCL");
    return SL_EUNSUPPORTED;
}
static inline int sl_nccl_unique_id(char hex[SL_NCCL_ID_HEX], char *err, size_t errlen)
{
    hex[0] = 0;
    return sl_nccl_stub(err, errlen);
}
static inline int sl_nccl_init(const char *hex, int nranks, int rank, sl_nccl **out, char *err,
                               size_t errlen)
{
    (void)hex, (void)nranks, (void)rank;
    *out = 0;
    return sl_nccl_stub(err, errlen);
}
static inline void sl_nccl_free(sl_nccl *c) { (void)c; }
static inline void sl_nccl_abort(sl_nccl *c) { (void)c; }
static inline int sl_nccl_broadcast(sl_nccl *c, void *dbuf, size_t bytes, int root, size_t bucket_bytes,
                                    int *n_buckets)
{
    (void)c, (void)dbuf, (void)bytes, (void)root, (void)bucket_bytes, (void)n_buckets;
    return SL_EUNSUPPORTED;
}

static inline int sl_dp_new(sl_nccl *c, sl_gpum *g, size_t bucket_bytes, int flags, sl_dp **out,
                            char *err, size_t errlen)
{
    (void)c, (void)g, (void)bucket_bytes, (void)flags;
    *out = 0;
    return sl_nccl_stub(err, errlen);
}
static inline void sl_dp_free(sl_dp *d) { (void)d; }
#endif

#ifdef __cplusplus
}
#endif

#endif /* SL_NCCL_COMM_H */
