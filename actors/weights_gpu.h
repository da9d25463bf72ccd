/*
 * weights_gpu.h — GPU weight publishing from the trainer to GPU rollout
 * engines on the same GPU through CUDA IPC (DESIGN.md §2, "GPU, same
 * node"): a thin actor-side layer over kernels/gpu_sync.h that turns the
 * handles into the `cuda_ipc` object of a WEIGHTS message body
 * (mailbox/PROTOCOL.md §10) and back.
 *
 * Publisher (the trainer): exports its flat bf16 weight buffer
 * (sl_gpum_weights(), layout "gpum-bf16": the sl_gpum device layout of
 * kernels/gpu_model.h) once; each publish records the IPC event on the
 * GPU model's stream after everything queued so far (the optimizer step)
 * and returns the JSON object
 *
 *   {"mem": 128 hex, "ev": 128 hex, "bytes": N, "layout": "gpum-bf16",
 *    "pid": exporter pid, "nonce": 16 hex (random per export)}
 *
 * pid + nonce name the exporter incarnation: a restarted trainer exports a
 * new buffer with a new nonce.
 *
 * Subscriber (a GPU rollout): given that object, opens the handles on
 * first use, or again when the incarnation (pid, nonce, mem) changed —
 * the old mapping is closed first — then waits for the event and either
 * copies the weights into the caller's device buffer (dst != NULL, one
 * device-to-device copy) or returns the publisher's buffer to read in
 * place (dst == NULL: no copy; only while the trainer does not write it,
 * i.e. synchronous RL: the trainer's next optimizer step rewrites it).
 *
 * Hostile input: any malformed object (missing or mistyped field, hex of
 * the wrong length or not hex, bytes 0 / over 2^40 / not the expected
 * size, another layout) is refused with SL_EPROTO and a message naming the
 * field; nothing is opened. What the handles point to cannot be checked
 * beyond that (CUDA IPC has no authentication: the peer is the run's own
 * trainer, on the run's private mailbox).
 *
 * Without CUDA (NO_CUDA=1) the parser works; everything that touches the
 * GPU returns SL_EUNSUPPORTED with a message.
 *
 * Thread safety: one thread per object. The publisher's publish must run
 * on a thread that may use the GPU model's stream (the model's thread).
 */
#ifndef SL_WEIGHTS_GPU_H
#define SL_WEIGHTS_GPU_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define SL_WGPU_LAYOUT "gpum-bf16"
#define SL_WGPU_HANDLE_BYTES 64
#define SL_WGPU_MAX_BYTES (1ull << 40)

/* A parsed `cuda_ipc` object. */
typedef struct sl_wgpu_ref {
    unsigned char mem[SL_WGPU_HANDLE_BYTES]; /* cudaIpcMemHandle_t */
    unsigned char ev[SL_WGPU_HANDLE_BYTES];  /* cudaIpcEventHandle_t */
    uint64_t bytes;
    int64_t pid;
    uint64_t nonce;
} sl_wgpu_ref;

/* Parse and check OBJ (borrowed). expect_bytes: the buffer size the
 * caller's layout has (0 = any). Errors: SL_EPROTO with the field and the
 * problem in err ("cuda_ipc.mem: ..."). Pure: no GPU needed. */
int sl_wgpu_parse(const json_t *obj, uint64_t expect_bytes, sl_wgpu_ref *out, char *err,
                  size_t errlen);

/* The object for REF (new reference, caller owns; NULL on out of memory). */
json_t *sl_wgpu_to_json(const sl_wgpu_ref *ref);

/* ------------------------------------------------------------ publisher */

typedef struct sl_wgpu_pub sl_wgpu_pub;

/* Export DPTR (device memory of BYTES, its own cudaMalloc allocation, e.g.
 * sl_gpum_weights()). *out is owned by the caller (sl_wgpu_pub_free).
 * Errors: SL_EINVAL, SL_EUNSUPPORTED (no CUDA, IPC refused; err says). */
int sl_wgpu_pub_new(void *dptr, size_t bytes, sl_wgpu_pub **out, char *err, size_t errlen);

/* Record the publish event after everything queued on the GPU model's
 * stream, and return the `cuda_ipc` object (new reference, caller owns;
 * NULL on out of memory). */
json_t *sl_wgpu_publish(sl_wgpu_pub *p);

/* Stop exporting (subscribers keep their mappings until they see a new
 * incarnation). NULL is accepted. */
void sl_wgpu_pub_free(sl_wgpu_pub *p);

/* ----------------------------------------------------------- subscriber */

typedef struct sl_wgpu_sub sl_wgpu_sub;

/* A subscriber; opens nothing yet. Errors: SL_ENOMEM. */
int sl_wgpu_sub_new(sl_wgpu_sub **out);

/* Close the mapping (if any). NULL is accepted. */
void sl_wgpu_sub_free(sl_wgpu_sub *s);

/* Make the weights of OBJ (a WEIGHTS message's `cuda_ipc`, borrowed)
 * ready. dst: the caller's device buffer of dst_bytes (== the object's
 * bytes) to copy into, or NULL to read the publisher's buffer in place.
 * *out (may be NULL) gets the device pointer to read (dst, or the mapped
 * buffer, valid until the next call or sl_wgpu_sub_free). Returns when
 * the weights are on the device. Errors: SL_EPROTO (malformed object, or
 * dst_bytes differs; err), SL_EUNSUPPORTED (no CUDA; cannot open the
 * handles: exporter gone, another GPU), SL_EINVAL (NULL). After an error
 * the previous mapping is kept only if the object named the same
 * incarnation. */
int sl_wgpu_sub_pull(sl_wgpu_sub *s, const json_t *obj, void *dst, size_t dst_bytes,
                     const void **out, char *err, size_t errlen);

/* Times the subscriber (re)opened handles (tests: a restarted trainer). */
uint64_t sl_wgpu_sub_opens(const sl_wgpu_sub *s);

#endif /* SL_WEIGHTS_GPU_H */
