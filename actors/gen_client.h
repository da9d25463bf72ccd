/*
 * gen_client.h — the C client of the generation service that rollout
 * engines answer (actors/rl_msg.h GENERATE .. CHAT_TEMPLATED,
 * mailbox/PROTOCOL.md §11): generate token ids with sampling parameters,
 * abort, tokenize, detokenize, apply the chat template — so an actor needs
 * neither a model nor a tokenizer of its own.
 *
 * Two ways to call:
 *   - blocking: sl_gen_generate / sl_gen_tokenize / ... send a request with
 *     sl_mailbox_request and wait for its reply (messages arriving meanwhile
 *     are queued for the mailbox's next sl_mailbox_recv). Inside an actor's
 *     handler keep the timeout under the heartbeat timeout, or use:
 *   - asynchronous: sl_gen_send sends a GENERATE with a fresh correlation id
 *     (sl_mailbox_new_corr) and returns it; the GENERATED reply (or an ERROR
 *     reply) arrives later through sl_mailbox_recv / the actor's handle with
 *     that corr; sl_gen_result_parse turns it into an sl_gen_result. Many
 *     requests may be in flight at once (the engine batches them).
 *
 * The engine refuses a bad request with an ERROR reply whose text names the
 * field; the functions here return its code (SL_EINVAL, SL_EFULL, ...) and
 * copy the text into result->error (or the err buffer).
 *
 * What it is not: a server (actors/rollout.c is), a tokenizer, or a retry
 * policy (a timed-out request is not resent: its reply, if it comes, is
 * dropped as late; send ABORT for it).
 *
 * Thread safety: as the mailbox (one thread at a time per mailbox).
 */
#ifndef SL_GEN_CLIENT_H
#define SL_GEN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "engine.h" /* sl_finish_reason */
#include "mailbox.h"

#define SL_GEN_MAX_STOP 16         /* stop strings and stop token ids per request */
#define SL_GEN_MAX_STOP_LEN 256    /* bytes per stop string */
#define SL_GEN_MAX_SESSION 64      /* characters of a session id */

/* One GENERATE request. Pointers are borrowed for the call. */
typedef struct sl_gen_call {
    uint64_t rid;                 /* caller-chosen, unique among its requests in flight */
    const int32_t *prompt;        /* (prompt_len) token ids, each in [0, vocab) */
    int prompt_len;               /* >= 1, < the engine's max sequence length */
    int max_tokens;               /* >= 1 (default 256); clamped to the room left in the engine's sequence */
    float temperature;            /* >= 0, 0 = greedy (default 1) */
    float top_p;                  /* (0, 1] (default 1) */
    int top_k;                    /* 0 = off (default 0) */
    const char *const *stop;      /* (n_stop) stop strings, or NULL */
    int n_stop;                   /* 0 .. SL_GEN_MAX_STOP */
    const int32_t *stop_token_ids;/* (n_stop_token_ids) or NULL */
    int n_stop_token_ids;         /* 0 .. SL_GEN_MAX_STOP */
    uint64_t seed;                /* sampler seed (default 0) */
    const char *session;          /* NULL or 1..64 characters: reuse this session's KV */
    bool ignore_eos;              /* true: the model's EOS ids do not stop generation */
} sl_gen_call;

/* Defaults: rid 0, no prompt, max_tokens 256, temperature 1, top_p 1,
 * top_k 0, no stops, seed 0, no session, ignore_eos false. */
void sl_gen_call_default(sl_gen_call *c);

/* A GENERATED reply. ids/logprobs are malloc'd (sl_gen_result_fini). */
typedef struct sl_gen_result {
    uint64_t rid;
    int32_t *ids;            /* (n) generated ids (a stop token / the token completing a stop string included) */
    float *logprobs;         /* (n) log-prob of each id under softmax(logits / T) */
    int n;
    sl_finish_reason finish; /* STOP, LENGTH or ABORT */
    uint64_t weight_version; /* weights the tokens were made with */
    int prompt_tokens;       /* the request's prompt length */
    int cached_tokens;       /* prompt tokens whose KV came from the session's cache */
    uint32_t error_code;     /* 0, or the code of an ERROR reply */
    char error[256];         /* its text ("" when none) */
} sl_gen_result;

/* Release a result's arrays and zero it; safe on a zeroed struct and twice. */
void sl_gen_result_fini(sl_gen_result *r);

/* The JSON payload of a GENERATE for C (malloc'd, NUL-terminated, *len
 * bytes; caller frees). Only fields that differ from the engine's defaults
 * are written, except rid, prompt and max_tokens. Errors: SL_EINVAL (NULL,
 * empty prompt, n_stop/n_stop_token_ids out of range, session too long),
 * SL_ERANGE (larger than a frame), SL_ENOMEM. */
sl_err sl_gen_call_json(const sl_gen_call *c, char **json, size_t *len);

/* Blocking GENERATE to the engine named ENGINE ("rollout" or "rollout.1"),
 * waiting up to TIMEOUT_MS (-1 forever). On SL_OK *out holds the result.
 * Errors: those of sl_gen_call_json and sl_mailbox_request (SL_ETIMEDOUT,
 * SL_ECLOSED ...), the code of an ERROR reply (text in out->error), SL_EPROTO
 * (a reply that is not a well-formed GENERATED). *out is zeroed first; on
 * error it holds no arrays. */
sl_err sl_gen_generate(sl_mailbox *mb, const char *engine, const sl_gen_call *c, int timeout_ms,
                       sl_gen_result *out);

/* Asynchronous GENERATE: send and return at once; *corr gets the
 * correlation id its reply will carry. */
sl_err sl_gen_send(sl_mailbox *mb, const char *engine, const sl_gen_call *c, uint64_t *corr);

/* Parse a reply to a GENERATE (a GENERATED, or an ERROR reply) into *out
 * (zeroed first). Returns SL_OK for a GENERATED, the error code for an
 * ERROR reply (text in out->error), SL_EPROTO for anything else. */
sl_err sl_gen_result_parse(const sl_msg *reply, sl_gen_result *out);

/* The JSON payload of a GENERATED for R (what the engine sends; fields in
 * the order of PROTOCOL.md §11): malloc'd, NUL-terminated, *len bytes.
 * Log-probs above 0 are written as 0, non-finite ones as -1e30.
 * Errors: SL_EINVAL, SL_ERANGE (larger than a frame), SL_ENOMEM. */
sl_err sl_gen_result_json(const sl_gen_result *r, char **json, size_t *len);

/* ABORT the caller's request RID (all = false) or all of its requests
 * (all = true). One-way: each aborted request is answered with its
 * GENERATED (finish ABORT, the tokens so far) to its corr. */
sl_err sl_gen_abort(sl_mailbox *mb, const char *engine, uint64_t rid, bool all);

/* TOKENIZE: *ids (malloc'd, caller frees) gets *n ids of TEXT. With
 * add_special_tokens the tokenizer's BOS (when it has one) is prepended.
 * ERR (may be NULL) gets the text of an ERROR reply. */
sl_err sl_gen_tokenize(sl_mailbox *mb, const char *engine, const char *text,
                       bool add_special_tokens, int timeout_ms, int32_t **ids, size_t *n,
                       char *err, size_t errlen);

/* DETOKENIZE: *text (malloc'd, NUL-terminated, caller frees). */
sl_err sl_gen_detokenize(sl_mailbox *mb, const char *engine, const int32_t *ids, size_t n,
                         bool skip_special_tokens, int timeout_ms, char **text, char *err,
                         size_t errlen);

/* One chat message (strings borrowed). */
typedef struct sl_gen_chat_msg {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} sl_gen_chat_msg;

/* APPLY_CHAT_TEMPLATE with the engine's model's template: *text (may be
 * NULL if not wanted) and ids, n (may be NULL) malloc'd, caller frees. */
sl_err sl_gen_apply_chat_template(sl_mailbox *mb, const char *engine, const sl_gen_chat_msg *msgs,
                                  size_t n_msgs, bool add_generation_prompt, int timeout_ms,
                                  char **text, int32_t **ids, size_t *n, char *err,
                                  size_t errlen);

#endif /* SL_GEN_CLIENT_H */
