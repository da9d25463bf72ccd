/*
 * reward_plugin.h — the C signature of a custom reward plugin
 * ([reward] rm_type = custom, custom_rm_path = FILE.so:SYMBOL).
 *
 * A plugin is a shared object exporting one function of type
 * sl_reward_plugin_fn (default symbol name "slime_reward"). It needs no
 * slime library: include this header only (it has no other dependency), or
 * copy the struct.
 *
 *     // len_penalty.c — cc -shared -fPIC -O2 -o len_penalty.so len_penalty.c
 *     #include "reward_plugin.h"
 *     int slime_reward(const sl_reward_plugin_input *in, double *reward) {
 *         if (in->abi_version != SL_REWARD_PLUGIN_ABI) return -1;
 *         *reward = in->response_len < 100 ? 1.0 : 100.0 / in->response_len;
 *         return 0;
 *     }
 *
 * How it is run (actors/reward.c): the reward actor dlopens the file once
 * at start (a missing file or symbol stops the actor with an error naming
 * it), then calls the function only inside a forked worker process:
 *   - one call per sample, with that sample's texts; the call must return
 *     within [reward] reward_timeout_ms, or the worker is killed (SIGKILL)
 *     and restarted and the sample is failed (reward 0, counted);
 *   - the worker runs under RLIMIT_AS = reward_memory_mb and RLIMIT_CPU
 *     (the time limit, rounded up, per call); a crash (SIGSEGV, abort,
 *     exit) fails the sample the same way;
 *   - a return value other than 0, or a *reward that is NaN or infinite,
 *     fails the sample;
 *   - the worker is a child of the reward actor (PR_SET_PDEATHSIG), so it
 *     never outlives it. It may keep state between calls (it is reused
 *     until it fails), but a restart loses it.
 * Plugins are trusted to the extent of running as the user; the worker
 * protects the run from a plugin's bugs, not from a malicious plugin.
 *
 * Strings are NUL-terminated UTF-8 (as decoded by the tokenizer; invalid
 * sequences were replaced by U+FFFD) and also given with their lengths;
 * they are valid only during the call. label and metadata may be NULL.
 * metadata is the dataset's metadata_key value serialized as JSON.
 * The reward is any finite double (built-in rewards use 0..1; GRPO only
 * looks at differences within a group).
 *
 * Thread safety: each worker calls the function from one thread.
 */
#ifndef SL_REWARD_PLUGIN_H
#define SL_REWARD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define SL_REWARD_PLUGIN_ABI 1
#define SL_REWARD_PLUGIN_DEFAULT_SYMBOL "slime_reward"

/* What one call sees. Later ABI versions only append fields. */
typedef struct sl_reward_plugin_input {
    uint32_t abi_version;  /* SL_REWARD_PLUGIN_ABI */
    uint32_t sample_index; /* index of the sample within its group */
    uint64_t sample_id;    /* packed sample id (dataset.h) */
    const char *prompt;    /* the prompt as the model saw it (template applied) */
    size_t prompt_len;
    const char *response;  /* the generated response, special tokens removed */
    size_t response_len;
    const char *label;     /* reference answer, or NULL */
    const char *metadata;  /* JSON text, or NULL */
} sl_reward_plugin_input;

/* Score one sample: write the reward to *REWARD and return 0; any other
 * return value means "could not score" (the sample is failed). */
typedef int (*sl_reward_plugin_fn)(const sl_reward_plugin_input *in, double *reward);

#endif /* SL_REWARD_PLUGIN_H */
