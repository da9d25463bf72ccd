/*
 * rl_common.h — small helpers the RL actors (buffer, rollout, reward,
 * trainer) share: where the model folder is (`builtin:arith` is
 * materialized under RUN_DIR/model/), finding actor instances by kind in
 * the topology, consumer ids, and the JSON side of RL messages (parsing a
 * payload, sending a JSON object, shm descriptors as hex strings, checked
 * integer fields).
 *
 * What it is not: no actor logic, no message numbers (rl_msg.h), no batch
 * layout (sample_batch.h), no weights transport (weights_sync.h).
 *
 * Thread safety: every function is reentrant (no global state) except the
 * ones taking an sl_actor_ctx, which must run on the actor's thread.
 */
#ifndef SL_RL_COMMON_H
#define SL_RL_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "base.h"
#include "rl_msg.h"
#include "shm.h"
#include "task_arith.h"

/* Consumer ids of shm holders: SL_RL_CONSUMER_* of rl_msg.h. */
#define SL_RL_MAX_INSTANCES 16 /* per kind (reward and rollout ids must stay below 16) */

/* The model path that means the built-in tiny model of task_arith.h. */
#define SL_RL_BUILTIN_ARITH "builtin:arith"

/* Hex text of an encoded shm descriptor: 2 * SL_SHM_DESC_SIZE chars + NUL. */
#define SL_RL_DESC_HEX_LEN (2 * SL_SHM_DESC_SIZE)

/* The model folder of a run: for [model] path = builtin:arith, RUN_DIR/model
 * after making sure it holds the tiny model's config.json, tokenizer.json
 * and tokenizer_config.json (deterministic content; written into a
 * temporary folder and renamed, so concurrent callers and crashes never
 * leave a half-written folder; idempotent: an existing complete folder is
 * kept). Any other path is returned as is. OUT gets the path (CAP bytes).
 * Errors: SL_EINVAL (no path, path too long), SL_EIO (cannot write; reason
 * logged). Reentrant; safe from several processes at once. */
int sl_rl_model_dir_for(const char *model_path, const char *run_dir, char *out, size_t cap);

/* The same for an actor: [model] path of its topology and its run dir;
 * the built-in model has the shape of the [model] builtin_* keys. */
int sl_rl_model_dir(sl_actor_ctx *ctx, char *out, size_t cap);

/* The built-in model's shape from TOPO's [model] builtin_* keys (the
 * defaults of sl_arith_model_cfg_init when TOPO is NULL). Strings point
 * into TOPO. */
void sl_rl_builtin_shape(const sl_topology *topo, sl_arith_model_cfg *m);

/* Instances of actor kind KIND ("rollout", "reward", ...) in TOPO, in file
 * order: up to MAX specs into OUT (may be NULL to count). Returns how many
 * there are (may exceed MAX), 0 when TOPO is NULL. */
int sl_rl_find_kind(const sl_topology *topo, const char *kind, const sl_actor_spec **out, int max);

/* The first instance of KIND, or NULL. */
const sl_actor_spec *sl_rl_find_first(const sl_topology *topo, const char *kind);

/* Descriptor <-> lowercase hex text (SL_RL_DESC_HEX_LEN chars). Encoding
 * writes OUT[SL_RL_DESC_HEX_LEN + 1]. Decoding accepts upper or lower case;
 * errors: SL_EINVAL (NULL, wrong length, not hex), or what
 * sl_shm_desc_decode returns (SL_EINVAL, SL_EPROTO). */
void sl_rl_desc_to_hex(const sl_shm_desc *desc, char out[SL_RL_DESC_HEX_LEN + 1]);
int sl_rl_desc_from_hex(const char *hex, sl_shm_desc *desc);

/* Parse a message payload (LEN bytes, not NUL-terminated, at most
 * SL_FRAME_MAX_PAYLOAD) as a JSON object. *OUT is a new reference (caller
 * json_decref). Errors: SL_EINVAL (not valid JSON, not an object, too
 * big, embedded NUL); the reason goes to ERR when not NULL. */
int sl_rl_json_parse(const void *payload, size_t len, json_t **out, char *err, size_t errlen);

/* Serialize OBJ compactly and send it to TO as TYPE (one-way), or as a
 * reply to REQ (sl_rl_json_reply). OBJ is borrowed. Errors: SL_ERANGE
 * (larger than a frame), SL_ENOMEM, or the mailbox's. */
int sl_rl_json_send(sl_actor_ctx *ctx, const char *to, uint16_t type, const json_t *obj);
int sl_rl_json_reply(sl_actor_ctx *ctx, const sl_msg *req, uint16_t type, const json_t *obj);

/* Checked field getters of a JSON object. They fail (SL_EINVAL, nothing
 * written) when KEY is missing or of the wrong type or range; the *_opt
 * forms return DEF for a missing key (but still fail on a wrong type).
 * u64: a non-negative integer (JSON integers are int64: at most 2^63-1).
 * dbl: an integer or a real, finite. str: a string (borrowed from OBJ). */
int sl_rl_json_u64(const json_t *obj, const char *key, uint64_t *out);
int sl_rl_json_u64_opt(const json_t *obj, const char *key, uint64_t def, uint64_t *out);
int sl_rl_json_i64_opt(const json_t *obj, const char *key, int64_t def, int64_t *out);
int sl_rl_json_dbl_opt(const json_t *obj, const char *key, double def, double *out);
int sl_rl_json_str_opt(const json_t *obj, const char *key, const char *def, const char **out);

/* Whether M is a request that waits for a reply (a correlation id, not
 * SL_FLAG_NOREPLY, not itself a reply). A one-way message (sl_actor_send:
 * corr 0) is answered, where an answer is due, with a one-way message to
 * its sender instead. */
static inline bool sl_rl_is_request(const sl_msg *m) {
    return m->corr != 0 && !(m->flags & (SL_FLAG_NOREPLY | SL_FLAG_REPLY));
}

/* The "desc" field of OBJ decoded (sl_rl_desc_from_hex). */
int sl_rl_json_desc(const json_t *obj, sl_shm_desc *desc);

#endif /* SL_RL_COMMON_H */
