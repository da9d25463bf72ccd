/*
 * slime-wf-plugin — the built-in driver of [rollout]
 * custom_generate_function_path (actors/wf_plugin.h), run as a workflow
 * actor (kind exec). Flags and environment as every actor (actors/actor.h).
 */
#include "wf_plugin.h"

int main(int argc, char **argv) { return sl_actor_main(&sl_wf_plugin_ops, argc, argv); }
