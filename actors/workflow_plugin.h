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
 *   (slime's custom_generate_function_path, one sample's generation called
 *   by the built-in rollout driver, is not implemented yet: the rollout
 *   engine is now an event-driven scheduler and a blocking per-sample hook
 *   needs its own thread there. Write the generation as a workflow actor
 *   instead: [rollout] workflow, actors/wf_tool.h.)
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

#endif /* SL_WORKFLOW_PLUGIN_H */
