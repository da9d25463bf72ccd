/*
 * slime-wf-tool — the example multi-turn tool workflow (actors/wf_tool.h)
 * as a program, to run as a workflow actor:
 *
 *     [rollout]
 *     workflow = tool
 *     [actor tool]
 *     kind = exec
 *     command = build/slime-wf-tool
 *
 * Flags and environment as every actor (actors/actor.h: --run-dir, --name,
 * --topology or SL_RUN_DIR, SL_ACTOR_NAME, SL_TOPOLOGY, set by the
 * supervisor).
 */
#include "wf_tool.h"

int main(int argc, char **argv) { return sl_actor_main(&sl_wf_tool_ops, argc, argv); }
