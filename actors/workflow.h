/*
 * workflow.h — the buffer's side of workflow actors: parsing and checking
 * the WF_SAMPLE messages (rl_msg.h) a workflow actor returns.
 *
 * A workflow actor ([rollout] workflow = NAME; any executable, kind exec)
 * takes the place of the built-in rollout driver: the buffer sends it
 * PROMPTS, it drives generation itself (GENERATE to the rollout engines,
 * tool calls, environments) and returns one WF_SAMPLE per sample. Every
 * sample is hostile until checked here; a refused one gets WF_ACK
 * ok=false with the reason's name and is counted per reason (buffer.c).
 *
 * Two stages:
 *   sl_wf_sample_parse   the message alone: JSON, fields and types, token
 *                        ids inside the vocabulary, lengths that agree
 *                        (tokens = prompt_len + len(loss_mask) =
 *                        prompt_len + len(logprobs)), mask bytes 0/1,
 *                        finite log-probs <= 0 on every masked-in token, at
 *                        least one masked-in token, the response within its
 *                        budget, a finite reward, metadata and metrics.
 *   sl_wf_sample_check   against the group the buffer dispatched: the group
 *                        is known and still open, the index is inside it and
 *                        not yet taken, the sample id is the one dispatched
 *                        for that index, the prompt tokens are the prompt
 *                        that was sent.
 * The sample that passes both is in the layout a sample_batch.h batch
 * wants: whole-sample loss mask (0 on the prompt) and log-probs (0 on the
 * prompt and on every token with mask 0, whatever the workflow sent there).
 *
 * What it is not: no messaging, no group bookkeeping (actors/buffer.c).
 * Pure functions; thread-compatible.
 *
 * The other side, shared by the built-in workflow actors (actors/wf_tool.c,
 * actors/wf_plugin.c): sl_wf_prompts_parse reads the buffer's PROMPTS,
 * sl_wf_actor_setup finds the rollout engines to GENERATE with and loads the
 * run's tokenizer, sl_wf_engine_for spreads a group's samples over the
 * engines.
 */
#ifndef SL_WORKFLOW_H
#define SL_WORKFLOW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "base.h"
#include "rl_common.h"
#include "tokenizer.h"

/* Why a sample was refused. Names (sl_wf_reason_name) are what WF_ACK's
 * "reason" and metrics.jsonl's "wf_refused" carry. */
typedef enum sl_wf_reason {
    SL_WF_OK = 0,
    SL_WF_BAD_JSON,        /* "bad_json": not a JSON object */
    SL_WF_MISSING_FIELD,   /* "missing_field": a required field missing or of the wrong type */
    SL_WF_BAD_PHASE,       /* "bad_phase": phase neither "rl" nor "eval" */
    SL_WF_UNKNOWN_GROUP,   /* "unknown_group": no open group of that id at that step/phase */
    SL_WF_GROUP_DONE,      /* "group_done": the group is already complete */
    SL_WF_BAD_INDEX,       /* "bad_index": index outside 0..n-1 */
    SL_WF_BAD_SAMPLE_ID,   /* "bad_sample_id": not the id dispatched for that index */
    SL_WF_DUPLICATE,       /* "duplicate": that index was already accepted */
    SL_WF_BAD_PROMPT_LEN,  /* "bad_prompt_len": prompt_len < 1 or >= len(tokens) */
    SL_WF_PROMPT_MISMATCH, /* "prompt_mismatch": tokens[0:prompt_len] is not the prompt sent */
    SL_WF_TOKEN_RANGE,     /* "token_out_of_vocab": an id < 0 or >= the vocabulary */
    SL_WF_MASK_LENGTH,     /* "mask_length": len(loss_mask) != len(tokens) - prompt_len */
    SL_WF_MASK_VALUE,      /* "mask_value": a mask entry other than 0 or 1 */
    SL_WF_LOGPROB_LENGTH,  /* "logprobs_length": len(logprobs) != len(tokens) - prompt_len */
    SL_WF_BAD_LOGPROB,     /* "bad_logprob": a masked-in token's log-prob missing, not finite or > 0 */
    SL_WF_NO_LOSS_TOKEN,   /* "no_loss_token": the mask is 0 everywhere */
    SL_WF_TOO_LONG,        /* "too_long": the response exceeds its token budget */
    SL_WF_BAD_REWARD,      /* "bad_reward": reward present but not a finite number */
    SL_WF_BAD_METADATA,    /* "bad_metadata": metadata not a string / too long, or bad "metrics" */
    SL_WF_N_REASONS
} sl_wf_reason;

/* The reason's name ("?" for a value out of range). Static string. */
const char *sl_wf_reason_name(sl_wf_reason r);

/* What the buffer knows that a sample must fit. */
typedef struct sl_wf_limits {
    int32_t vocab;          /* ids must be in [0, vocab) */
    uint32_t max_response;  /* most tokens after the prompt (model + tool tokens) */
    uint32_t max_prompt;    /* most prompt tokens */
} sl_wf_limits;

#define SL_WF_MAX_METADATA 4096 /* bytes of a sample's metadata string */
#define SL_WF_MAX_METRICS 16 /* entries of a sample's "metrics" object */
#define SL_WF_METRIC_NAME_MAX 48

/* One checked sample. Arrays are heap-owned (sl_wf_sample_fini frees). */
typedef struct sl_wf_sample {
    int64_t step;
    int eval;               /* phase "eval" */
    uint64_t group;
    uint32_t index;
    uint64_t sample_id;
    int32_t *tokens;        /* (n_tokens) prompt then response */
    uint32_t n_tokens;
    uint32_t prompt_len;
    uint8_t *loss_mask;     /* (n_tokens) 0 on the prompt */
    float *logprobs;        /* (n_tokens) 0 on the prompt and wherever the mask is 0 */
    uint64_t weight_version;
    int has_reward;
    double reward;
    char *metadata;         /* NULL when absent */
    int n_metrics;
    char metric_name[SL_WF_MAX_METRICS][SL_WF_METRIC_NAME_MAX];
    double metric_value[SL_WF_MAX_METRICS];
} sl_wf_sample;

/* Parse and check a WF_SAMPLE payload (LEN bytes). On SL_WF_OK *OUT is
 * filled (caller: sl_wf_sample_fini); on any other reason *OUT holds
 * nothing to free, but its step/phase/group/index fields are set as far as
 * they could be read (for the WF_ACK), and WHY (when not NULL) says what
 * exactly was wrong (field and position). */
sl_wf_reason sl_wf_sample_parse(const void *payload, size_t len, const sl_wf_limits *lim,
                                sl_wf_sample *out, char *why, size_t wl);

/* Free a sample's arrays (safe on a zeroed or already finished one). */
void sl_wf_sample_fini(sl_wf_sample *s);

/* The group a sample claims to belong to, as dispatched. */
typedef struct sl_wf_expect {
    int found;               /* 0: no open group of that (phase, step, id) */
    int complete;            /* all samples in (or being scored) */
    uint32_t n;              /* samples in the group */
    const uint64_t *sample_ids; /* (n) the ids dispatched */
    const int32_t *prompt;   /* (prompt_len) the prompt sent */
    uint32_t prompt_len;
    const uint8_t *taken;    /* (n) 1 where that index is already accepted */
} sl_wf_expect;

/* Check S against its group E. Returns SL_WF_OK or the reason (WHY says
 * more). Pure. */
sl_wf_reason sl_wf_sample_check(const sl_wf_sample *s, const sl_wf_expect *e, char *why, size_t wl);

/* ------------------------------------------------------------ the workflow actor's side */

#define SL_WF_MAX_GROUP 4096          /* samples of one PROMPTS group */
#define SL_WF_MAX_NEW_TOKENS 1000000  /* a PROMPTS max_new_tokens */

/* One PROMPTS message (rl_msg.h) as a workflow actor reads it. The arrays
 * and strings are heap-owned (sl_wf_prompts_fini frees). */
typedef struct sl_wf_prompts {
    char buffer[SL_ACTOR_NAME_MAX]; /* the sender: where the WF_SAMPLEs go */
    int64_t step;
    int eval;                  /* phase "eval" */
    uint64_t group;
    uint32_t n;                /* samples, 1..SL_WF_MAX_GROUP */
    uint64_t seed;
    double temperature, top_p;
    int top_k;                 /* 0: off (a negative top_k reads as 0) */
    uint32_t max_new_tokens;   /* 1..SL_WF_MAX_NEW_TOKENS (default 256) */
    int32_t *prompt;           /* (prompt_len) */
    uint32_t prompt_len;       /* >= 1 */
    uint64_t *sample_ids;      /* (n) "sample_ids" as sent, group + i where one is missing */
    char *label, *metadata;    /* NULL when absent */
} sl_wf_prompts;

/* Parse PROMPTS message M into *OUT (caller: sl_wf_prompts_fini, also on
 * error). Returns SL_OK, SL_EINVAL (not JSON, or a field missing or bad:
 * WHY says which) or SL_ENOMEM. Thread-compatible. */
int sl_wf_prompts_parse(const sl_msg *m, sl_wf_prompts *out, char *why, size_t wl);

/* Free what sl_wf_prompts_parse allocated (safe on a zeroed or finished one). */
void sl_wf_prompts_fini(sl_wf_prompts *p);

/* 1 when A and B are the same group (phase, step, id): a group the buffer
 * dispatched again while the first copy still runs. */
int sl_wf_prompts_same_group(const sl_wf_prompts *a, const sl_wf_prompts *b);

/* The rollout engines a workflow actor sends GENERATE to. */
typedef struct sl_wf_engines {
    char name[SL_RL_MAX_INSTANCES][SL_ACTOR_NAME_MAX];
    int n;
} sl_wf_engines;

/* A workflow actor's init: the topology's rollout engines (file order, at
 * most SL_RL_MAX_INSTANCES) into *E and the run's model tokenizer into *TOK
 * (caller: sl_tokenizer_free), waiting up to 10 s for the buffer to write a
 * builtin model's tokenizer.json. What is wrong is logged (WHO names the
 * actor in "WHO needs the topology"). Returns SL_OK, SL_EINVAL (no
 * topology, no rollout engine, no model folder) or the tokenizer's error.
 * On the actor's thread. */
int sl_wf_actor_setup(sl_actor_ctx *ctx, const char *who, sl_wf_engines *e, sl_tokenizer **tok);

/* The engine for sample INDEX of GROUP (a group's samples spread over the
 * engines). E->n must be >= 1. Points into E. */
const char *sl_wf_engine_for(const sl_wf_engines *e, uint64_t group, uint32_t index);

#endif /* SL_WORKFLOW_H */
