/*
 * wf_plugin.h — the built-in driver of [rollout]
 * custom_generate_function_path (the hook's signature: workflow_plugin.h),
 * run as a workflow actor by bin/slime-wf-plugin:
 *
 *     [rollout]
 *     workflow = gen
 *     custom_generate_function_path = my_gen.so:my_generate
 *     [actor gen]
 *     kind = exec
 *     command = build/slime-wf-plugin
 */
#ifndef SL_WF_PLUGIN_H
#define SL_WF_PLUGIN_H

#include <stddef.h>

#include "actor.h"
#include "workflow_plugin.h"

/* Load SPEC ("FILE.so[:SYMBOL]", default symbol slime_custom_generate).
 * SL_OK with *dl and *fn, or SL_EINVAL with the reason in ERR. */
int sl_wf_plugin_load(const char *spec, void **dl, sl_custom_generate_fn *fn, char *err, size_t errlen);

extern const sl_actor_ops sl_wf_plugin_ops;

#endif /* SL_WF_PLUGIN_H */
