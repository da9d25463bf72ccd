/*
 * supervisor.h — the OTP-style supervisor: starts every actor of a
 * topology as its own process, watches them (exit status, heartbeats),
 * restarts them by their restart type and the strategy, stops them in
 * reverse order, and answers the control plane (slime-ctl).
 *
 * Semantics (DESIGN.md §1):
 *   - children start in file order and stop in reverse order;
 *   - restart: permanent = always, transient = only after an abnormal exit
 *     (non-zero status, a signal, or hung), temporary = never;
 *   - strategy: one_for_one restarts the child that died; one_for_all
 *     stops every other live child (reverse order) and restarts them all
 *     (file order); rest_for_one does that for the child and those after
 *     it. Temporary children stopped by a sibling's restart are not
 *     restarted. Children that had already ended for good stay ended;
 *   - more than `intensity` restarts within `period` seconds: stop
 *     everything in order and return exit status 1;
 *   - stopping a child: SIGTERM (and SIGCONT, in case it is stopped), then
 *     SIGKILL after its shutdown_ms (0 = SIGKILL at once);
 *   - hung: a child that has not answered a heartbeat (nng survey, or PING
 *     over the mailbox for heartbeat = mailbox) for heartbeat_timeout_ms is
 *     killed with SIGKILL and handled as an abnormal exit ("hung"). A child
 *     that has not answered its first heartbeat yet (state starting) gets
 *     SL_SUPERVISOR_START_GRACE_MS instead;
 *   - children die with the supervisor (PR_SET_PDEATHSIG = SIGKILL), each
 *     in its own process group (a terminal's Ctrl-C reaches only the
 *     supervisor, which then stops them in order);
 *   - SIGINT / SIGTERM / `slime-ctl stop`: stop everything in reverse
 *     order, exit status 0.
 *
 * Children start with stdin /dev/null, stdout+stderr appended to
 * RUN_DIR/logs/NAME.log, in their own process group, and these variables
 * (the rest of the environment is inherited): SL_RUN_DIR (absolute),
 * SL_ACTOR_NAME, SL_ACTOR_KIND, SL_TOPOLOGY (= RUN_DIR/topology.conf, the
 * resolved copy), SL_DEVICE ("cpu" or "cuda:N", the actor's `device`).
 *
 * Control commands (one line of text over ipc://RUN_DIR/control; every
 * reply is one JSON object; errors are {"ok":false,"error":"..."}):
 *   status [--json]  {"run_dir","pid","strategy","actors":[{"name","kind",
 *                    "pid" (0: not running),"state","restarts","last_exit"
 *                    (null: never exited; "exit N", "signal N", "hung",
 *                    "spawn failed"),"restart","heartbeat",
 *                    "heartbeat_age_ms","msgs_in","msgs_out","msgs_time_ms"
 *                    (mailbox counters the child's runtime writes to
 *                    RUN_DIR/stats/NAME.json about once a second, and when;
 *                    null when it has not)}],"bad_requests"}
 *   stop             {"ok":true,"stopping":true}, then an orderly stop
 *   inject ACTOR kill|term|pause|resume|hang SECONDS|drop|corrupt
 *                    SIGKILL | SIGTERM | SIGSTOP | SIGCONT | SIGSTOP now
 *                    and SIGCONT after SECONDS (0..86400) | SIGUSR1: the
 *                    actor drops its next outgoing frame | SIGUSR2: it
 *                    flips a byte of it (built-in kinds only)
 *
 * Fault schedule ([faults] schedule, see keys.c): entries
 * ACTION:ACTOR@WHEN[xK] fired by the loop — at an RL step (the line count
 * of RUN_DIR/ledger.jsonl), after some time, or at seeded random steps;
 * each firing is logged "fault: ACTION NAME (pid P) at step S, T ms".
 * `status` reports "faults_injected" (schedule + inject). [faults] points
 * is checked here (sl_supervisor_check) and armed by each actor.
 *   help             the list of commands
 *
 * RUN_DIR layout: topology.conf (the resolved copy children read),
 * control and heartbeat (nng sockets), mb/ (mailboxes), logs/NAME.log (each
 * child's stdout+stderr), logs/supervisor.log, supervisor.lock, stats/NAME.json (each
 * actor runtime's mailbox counters).
 *
 * What it is not: an actor (it runs no ops table), and not a scheduler
 * across machines.
 */
#ifndef SL_SUPERVISOR_H
#define SL_SUPERVISOR_H

#include "base.h"
#include "topology.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define SL_SUPERVISOR_START_GRACE_MS 30000 /* first heartbeat of a new child */

/* Options of one supervisor run. Strings are borrowed for the run. */
typedef struct sl_supervisor_opts {
    const char *run_dir;   /* NULL: the topology's run_dir */
    const char *actor_bin; /* path of slime-actor (for built-in kinds) */
} sl_supervisor_opts;

/* Check that TOPO can be run by this build (every built-in kind is
 * registered, no actor is named "supervisor", mailbox paths fit a unix
 * socket path under RUN_DIR (NULL: the topology's)). Problems are written
 * to ERRS as `FILE:LINE: message` lines. Returns the number of problems. */
int sl_supervisor_check(const sl_topology *topo, const char *run_dir, FILE *errs);

/* Create RUN_DIR (and missing parents) with mode 0700, or accept an
 * existing one only if it is a real directory (not a symlink) owned by
 * this user with no group/other permissions. Writes its absolute path to
 * ABS (CAP bytes). On failure writes the reason to WHY (WHYCAP bytes).
 * Errors: SL_EINVAL (refused: permissions, owner, not a directory),
 * SL_ERANGE (path too long), SL_EIO. */
sl_err sl_run_dir_prepare(const char *run_dir, char *abs, size_t cap, char *why, size_t whycap);

/* Run TOPO until it is stopped. Returns the process exit status:
 * 0 = stopped on request (SIGINT, SIGTERM, slime-ctl stop);
 * 1 = restart intensity exceeded, or a runtime failure (sockets);
 * 2 = the run directory or topology cannot be used (message on stderr).
 * Takes over SIGINT, SIGTERM, SIGCHLD, SIGHUP and SIGPIPE for the process;
 * call once per process, from its main thread, before starting threads. */
int sl_supervisor_run(const sl_topology *topo, const sl_supervisor_opts *opts);

/* "starting", "running", "restarting", "stopped", "failed". */
typedef enum sl_child_state {
    SL_CHILD_STARTING = 0,
    SL_CHILD_RUNNING = 1,
    SL_CHILD_RESTARTING = 2,
    SL_CHILD_STOPPED = 3,
    SL_CHILD_FAILED = 4,
} sl_child_state;

/* Name of a state; never NULL, static storage. */
const char *sl_child_state_name(sl_child_state s);

#endif /* SL_SUPERVISOR_H */
