/*
 * plugin_wf_filters.c — filter plugins for tests/rl/test_workflow.sh
 * (actors/workflow_plugin.h):
 *   slime_dynamic_sampling_filter  drops every group whose prompt index
 *       (sample id bits 12..43) is a multiple of 3;
 *   slime_buffer_filter            drops every group whose prompt index is
 *       1 mod 5, and checks it is only shown complete groups.
 * Built by the test with cc -shared -fPIC.
 */
#include "workflow_plugin.h"

static uint64_t prompt_index(uint64_t id) { return (id >> 12) & 0xffffffffull; }

int slime_dynamic_sampling_filter(const sl_group_filter_input *g) {
    if (g->abi_version != SL_WORKFLOW_PLUGIN_ABI) return 1;
    return prompt_index(g->group_id) % 3 != 0;
}

int slime_buffer_filter(int64_t step, const sl_group_filter_input *groups, size_t n, uint8_t *keep) {
    (void)step;
    for (size_t i = 0; i < n; i++) {
        const sl_group_filter_input *g = &groups[i];
        if (g->n_samples < 1 || !g->tokens[0] || g->n_tokens[0] <= g->prompt_len) return -1;
        if (prompt_index(g->group_id) % 5 == 1) keep[i] = 0;
    }
    return 0;
}
