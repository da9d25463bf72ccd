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
 *   [rollout] custom_generate_function_path = FILE.so:SYMBOL
 *       default symbol slime_custom_generate; type sl_custom_generate_fn.
 *       One sample's generation. Hosted by the built-in driver
 *       bin/slime-wf-plugin, started as the workflow actor ([rollout]
 *       workflow = NAME, [actor NAME] kind = exec, command =
 *       build/slime-wf-plugin): for every sample of every PROMPTS group it
 *       calls SYMBOL on a worker thread (a bounded pool, SL_GEN_PLUGIN_THREADS);
 *       the blocking generate() callback goes to the rollout engines
 *       through the driver's mailbox, so the calls of all threads share the
 *       engines' continuous batch. The driver sends the result as WF_SAMPLE.
 *       It runs in the driver process, not in the buffer: a crash takes the
 *       driver down only (the supervisor restarts it, the buffer dispatches
 *       its open groups again).
 *
 *
 * A plugin needs no slime library: include this header only (it has no
 * other dependency). Plugins run inside the actor that loads them (the
 * buffer) with its rights: they are
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

/* ------------------------------------------------- custom generation */

#define SL_GENERATE_PLUGIN_ABI 1
#define SL_CUSTOM_GENERATE_DEFAULT_SYMBOL "slime_custom_generate"
#define SL_GEN_PLUGIN_THREADS 64 /* worker threads of bin/slime-wf-plugin */

/* Sampling of one generate() call. */
typedef struct sl_gen_plugin_params {
    int max_tokens;          /* >= 1; clamped to the sample's response budget left */
    float temperature;       /* >= 0 (0 greedy) */
    float top_p;             /* (0, 1] */
    int top_k;               /* 0 = off */
    const char *const *stop; /* (n_stop) stop strings or NULL */
    int n_stop;              /* 0..8 */
    uint64_t seed;
} sl_gen_plugin_params;

/* The answer of generate(). Owned by the driver; valid until the next
 * generate() of the same sample or the return of the hook. */
typedef struct sl_gen_plugin_out {
    const int32_t *ids; /* (n) generated ids */
    const float *logprobs; /* (n) */
    int n;
    int finish;         /* 0 stop (EOS or a stop string), 1 length, 2 abort */
} sl_gen_plugin_out;

/* One sample, as the hook sees it. Inputs are read-only and valid during
 * the call. The callbacks are thread-safe for distinct samples; a sample's
 * callbacks must be called from the hook's own thread only. They return 0
 * or a negative number (bad argument, out of memory, no engine answered,
 * the response budget exceeded). */
typedef struct sl_gen_plugin_sample {
    uint32_t abi_version;     /* SL_GENERATE_PLUGIN_ABI */
    uint32_t index;           /* 0..n_samples-1 in the group */
    uint32_t n_samples;
    int eval;                 /* 1: an evaluation group */
    int64_t step;
    uint64_t group_id, sample_id, seed;
    const int32_t *prompt;    /* (prompt_len) */
    uint32_t prompt_len;
    const char *label;        /* or NULL */
    const char *metadata;     /* JSON text or NULL */
    int max_new_tokens;       /* the response budget: model + tool tokens */
    sl_gen_plugin_params defaults; /* the run's sampling for this group */
    /* Generate from IDS (N tokens: usually prompt + the response so far). */
    int (*generate)(const struct sl_gen_plugin_sample *s, const int32_t *ids, int n,
                    const sl_gen_plugin_params *p, sl_gen_plugin_out *out);
    /* Text <-> ids with the run's tokenizer; *ids / *text malloc'd (free()). */
    int (*tokenize)(const struct sl_gen_plugin_sample *s, const char *text, int32_t **ids, size_t *n);
    int (*detokenize)(const struct sl_gen_plugin_sample *s, const int32_t *ids, size_t n, char **text);
    /* Append N response tokens: model tokens (mask 1, LOGPROBS required)
     * or tool / environment tokens (mask 0, LOGPROBS may be NULL). */
    int (*append)(const struct sl_gen_plugin_sample *s, const int32_t *ids, const float *logprobs, size_t n,
                  int mask);
    uint32_t (*response_len)(const struct sl_gen_plugin_sample *s);
    /* The response so far (response_len ids); valid until the next append. */
    const int32_t *(*response)(const struct sl_gen_plugin_sample *s);
    int (*set_reward)(const struct sl_gen_plugin_sample *s, double reward);  /* else the reward actors score it */
    int (*set_metadata)(const struct sl_gen_plugin_sample *s, const char *json); /* copied */
    int (*set_metric)(const struct sl_gen_plugin_sample *s, const char *name, double value); /* per-step mean */
    void *driver;             /* the driver's; do not touch */
} sl_gen_plugin_sample;

/* Build the sample's response with append(). Return 0: it goes to the
 * buffer (it must hold at least one mask-1 token); any other value: the
 * sample is dropped and its group dispatched again later. */
typedef int (*sl_custom_generate_fn)(const sl_gen_plugin_sample *s);

#endif /* SL_WORKFLOW_PLUGIN_H */
