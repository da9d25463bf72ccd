/*
 * workflow_plugin.h — C signatures of the in-process workflow hooks
 * (slime's names):
 *
 *   [rollout] dynamic_sampling_filter_path = FILE.so[:SYMBOL]
 *       default symbol slime_dynamic_sampling_filter; type
 *       sl_dynamic_sampling_filter_fn. Called by the buffer once per
 *       complete RL group: keep it (return 1) or drop it (0). Replaces
 *       DAPO's non-zero reward std rule; with [algorithm]
 *       dynamic_sampling = true dropped groups are replaced by more
 *       prompts (over_sampling_batch_size), as with the built-in rule.
 *   [rollout] buffer_filter_path = FILE.so[:SYMBOL]
 *       default symbol slime_buffer_filter; type sl_buffer_filter_fn.
 *       Called by the buffer once per RL step with every gathered group
 *       (after the dynamic-sampling filter): it sets keep[g] = 0 for the
 *       groups not to train; the first rollout_batch_size kept groups (in
 *       dispatch order) make the train batch.
 *   [rollout] custom_generate_function_path = FILE.so[:SYMBOL]
 *       default symbol slime_generate; type sl_generate_plugin_fn. One
 *       sample's generation, called by the built-in rollout driver in
 *       place of its own sampling: the plugin drives the engine through
 *       in->generate (any number of turns) and returns the response
 *       tokens with their loss mask and log-probs.
 *
 * A plugin needs no slime library: include this header only (it has no
 * other dependency). Plugins run inside the actor that loads them (the
 * buffer, or the rollout's generation thread) with its rights: they are
 * trusted code, unlike reward plugins (reward_plugin.h) which run in a
 * sandboxed worker. A missing file or symbol stops the actor at start
 * with an error naming it; a crash in a plugin crashes that actor (the
 * supervisor restarts it; no accepted sample is lost). abi_version is
 * SL_WORKFLOW_PLUGIN_ABI; later versions only append fields. Pointers in
 * the inputs are valid during the call only.
 *
 *     // keep_long.c — cc -shared -fPIC -O2 -o keep_long.so keep_long.c
 *     #include "workflow_plugin.h"
 *     int slime_dynamic_sampling_filter(const sl_group_filter_input *g) {
 *         for (uint32_t i = 0; i < g->n_samples; i++)
 *             if (g->response_len[i] > 4) return 1;
 *         return 0;
 *     }
 */
#ifndef SL_WORKFLOW_PLUGIN_H
#define SL_WORKFLOW_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define SL_WORKFLOW_PLUGIN_ABI 1
#define SL_DYNAMIC_FILTER_DEFAULT_SYMBOL "slime_dynamic_sampling_filter"
#define SL_BUFFER_FILTER_DEFAULT_SYMBOL "slime_buffer_filter"
#define SL_GENERATE_PLUGIN_DEFAULT_SYMBOL "slime_generate"

/* ------------------------------------------------------------ filters */

/* One complete group as the filters see it. */
typedef struct sl_group_filter_input {
    uint32_t abi_version;         /* SL_WORKFLOW_PLUGIN_ABI */
    uint32_t n_samples;           /* the group size */
    int64_t step;                 /* RL step */
    uint64_t group_id;            /* the prompt's id (dataset.h) */
    const float *rewards;         /* (n_samples) */
    const uint8_t *failed;        /* (n_samples) 1 = the reward could not be computed */
    const uint32_t *response_len; /* (n_samples) tokens after the prompt */
    const int32_t *const *tokens; /* (n_samples) each: prompt + response ids */
    const uint32_t *n_tokens;     /* (n_samples) */
    uint32_t prompt_len;
    const char *label;            /* or NULL */
    const char *metadata;         /* JSON text or NULL */
} sl_group_filter_input;

/* Keep (1) or drop (0) a group. Any other value: kept (and logged). */
typedef int (*sl_dynamic_sampling_filter_fn)(const sl_group_filter_input *group);

/* The groups of one step (in dispatch order). KEEP (n_groups) arrives with
 * 1 for every group the dynamic-sampling filter kept and 0 for the others;
 * the plugin may clear entries (setting a dropped one to 1 is ignored).
 * Return 0; any other value leaves KEEP as it was before the call. */
typedef int (*sl_buffer_filter_fn)(int64_t step, const sl_group_filter_input *groups, size_t n_groups,
                                   uint8_t *keep);

/* ------------------------------------------------ custom generation */

/* Sampling parameters of one engine call made by a generate plugin. */
typedef struct sl_generate_params {
    int max_new_tokens;
    float temperature, top_p;
    int top_k;                      /* 0 = all */
    const int32_t *stop_token_ids;  /* extra stop ids (EOS always stops) */
    int n_stop_token_ids;
    const char *const *stop;        /* stop strings, or NULL */
    int n_stop;
    uint64_t seed;
} sl_generate_params;

/* What one engine call returns (arrays owned by the engine until the next
 * call or the end of the plugin call). */
typedef struct sl_generate_result {
    const int32_t *ids;     /* (n) generated ids */
    const float *logprobs;  /* (n) their log-probs under the rollout weights */
    int n;
    int finish;             /* 0 stop, 1 length, 2 abort */
    uint64_t weight_version;
} sl_generate_result;

/* One sample to generate. */
typedef struct sl_generate_plugin_input {
    uint32_t abi_version;
    uint32_t sample_index;          /* within its group */
    uint64_t sample_id;
    const int32_t *prompt;          /* (prompt_len) token ids */
    uint32_t prompt_len;
    const char *label, *metadata;   /* or NULL */
    sl_generate_params params;      /* the run's sampling parameters for this sample */
    uint32_t max_response;          /* most response tokens (model + inserted) */
    /* Continue SEQ (n ids) with the engine. Returns 0 or an error code. */
    int (*generate)(void *engine, const int32_t *seq, int n, const sl_generate_params *p,
                    sl_generate_result *out);
    /* Text <-> ids with the model's tokenizer. tokenize writes at most cap
     * ids and returns how many (or -1); detokenize writes at most cap bytes
     * including a NUL and returns the length (or -1). */
    int (*tokenize)(void *engine, const char *text, int32_t *ids, int cap);
    int (*detokenize)(void *engine, const int32_t *ids, int n, char *text, int cap);
    void *engine;
} sl_generate_plugin_input;

/* The response: the plugin writes up to in->max_response entries into the
 * caller's arrays and sets n. loss_mask: 1 for model tokens, 0 for text
 * the plugin inserted (tool output); logprobs: the model's for masked-in
 * tokens (any value elsewhere). has_reward/reward: an optional reward
 * (else the reward actors score the sample). */
typedef struct sl_generate_plugin_output {
    int32_t *tokens;   /* (max_response) */
    uint8_t *loss_mask;
    float *logprobs;
    uint32_t n;
    int finish;        /* 0 stop, 1 length, 2 abort */
    int has_reward;
    double reward;
} sl_generate_plugin_output;

/* Generate one sample. 0 = done; any other value fails the sample. */
typedef int (*sl_generate_plugin_fn)(const sl_generate_plugin_input *in, sl_generate_plugin_output *out);

#endif /* SL_WORKFLOW_PLUGIN_H */
