/*
 * launch.h — the command line that starts an actor instance, on this
 * machine or on another one (`host`, [cluster] in the topology).
 *
 * An actor on this machine: its own command (slime-actor --kind K --name N,
 * or a kind exec program); the supervisor passes SL_RUN_DIR & co. in the
 * environment. An actor with `host`: the [cluster] launcher's prefix
 * (ssh_command, srun_command or launch_command, split shell-like, {host}
 * replaced in every word), then `env` with the variables of
 * mailbox/PROTOCOL.md §6 and SL_MB_TCP=HOST (its mailbox binds on its own
 * machine's address), then the command: e.g.
 *   ssh -o BatchMode=yes -tt 10.0.0.2 env SL_RUN_DIR=/shared/runs/x ... \
 *       /opt/slime/build/slime-actor --kind trainer --name trainer.1
 * Paths (slime-actor, RUN_DIR, the topology copy) must be the same on
 * both machines: RUN_DIR on a shared file system (the tcp endpoint files,
 * the CURVE key, the WAL live there).
 * `slime-supervisor --dry-run` prints these lines (sl_launch_print) and
 * starts nothing.
 */
#ifndef SL_LAUNCH_H
#define SL_LAUNCH_H

#include <stdio.h>

#include "base.h"
#include "topology.h"

/* argv (NULL-terminated, heap; free with sl_launch_free) of instance A.
 * run_dir / topo_path: as the supervisor passes them. SL_ENOMEM, or
 * SL_EINVAL with the reason in why (a launcher template that does not
 * split; the topology validation already refuses those). */
sl_err sl_launch_argv(const sl_topology *t, const sl_actor_spec *a, const char *actor_bin,
                      const char *run_dir, const char *topo_path, char ***argv, char *why,
                      size_t wl);
void sl_launch_free(char **argv);
/* One line: the words, each quoted for a POSIX shell where needed. */
void sl_launch_print(FILE *f, char *const *argv);

#endif
