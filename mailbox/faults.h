/*
 * faults.h — fault injection points inside the actors (DESIGN.md §8):
 * named places in the code where a test may make the process die, or make
 * the mailbox drop or corrupt an outgoing frame.
 *
 * What it is: a tiny, process-wide table of armed points. Code marks a
 * point with one call, `sl_fault_point("ckpt_write")`; when no point is
 * armed (every production run) that is one load and a branch. It lives in
 * mailbox/ (not actors/) because the WAL and the mailbox below the actors
 * have points too. What it is not: the schedule of signals the supervisor
 * sends (kill, hang, ...; supervisor.c, [faults] schedule) — that one needs
 * no code in the actors.
 *
 * Spec (topology [faults] points, or the environment variable SL_FAULTS,
 * which wins when set), entries separated by ',' or whitespace:
 *
 *     [ACTOR:]POINT=ACTION[@N|@rN][xK]
 *
 *   ACTOR   only in this actor (its mailbox name, or its group: "trainer",
 *           "rollout" matches rollout.0 ...); default: every actor.
 *   POINT   a name from the list below (unknown names are refused).
 *   ACTION  kill     the process dies at once (SIGKILL to itself: nothing
 *                    is flushed, as in a power cut of that one process);
 *           drop     (point mb_send only) the frame is not sent;
 *           corrupt  (point mb_send only) one payload or header byte of the
 *                    frame is flipped: the receiver's decoder must refuse it.
 *   @N      fire at the N-th pass through POINT in this process (default 1);
 *   @rN     at a pass drawn uniformly from 1..N, seeded by [faults] seed,
 *           the actor and the point;
 *   xK      fire at most K times in the whole run, across restarts
 *           (default 1): each firing leaves RUN_DIR/faults/ACTOR.POINT.I,
 *           written before the process dies, so a restarted actor does not
 *           die at the same place forever. For drop/corrupt, xK fires at
 *           passes N, 2N, ... up to K times.
 *
 * Points (where the calls are):
 *   wal_append       buffer: a batch about to be appended to the WAL
 *   wal_write        WAL: records queued, not yet written nor synced
 *   wal_ack          buffer: WAL synced, batch not yet sent to the trainer
 *   weights_publish  weights copied into shm, not yet announced
 *   ckpt_write       checkpoint: weights saved in .partial, not yet renamed
 *   train_step       trainer: optimizer step done, ledger line not written
 *   rollout_generate rollout: a group generated, not yet sent to reward
 *   reward_score     reward: a group scored, SCORED not yet sent
 *   mb_send          mailbox: a frame encoded, about to be sent
 *
 * Threads: arming happens once at start-up (single thread); sl_fault_point
 * may be called from any thread. sl_faults_request_net is async-signal-safe
 * (the actor runtime calls it from its SIGUSR1/SIGUSR2 handlers: slime-ctl
 * inject ACTOR drop|corrupt).
 */
#ifndef SL_FAULTS_H
#define SL_FAULTS_H

#include "base.h"

#include <stddef.h>
#include <stdint.h>

typedef enum sl_fault_action {
    SL_FAULT_NONE = 0,
    SL_FAULT_KILL = 1,
    SL_FAULT_DROP = 2,
    SL_FAULT_CORRUPT = 3,
} sl_fault_action;

#define SL_FAULTS_MAX 32 /* armed entries per process */

/* Check SPEC's syntax (every entry, every point name). On an error writes
 * "entry 'E': what is wrong" to ERR (CAP bytes) and returns SL_EINVAL. */
sl_err sl_faults_check(const char *spec, char *err, size_t cap);

/* Arm the entries of SPEC (NULL or "": the environment's SL_FAULTS, if
 * any) that apply to ACTOR, for a run in RUN_DIR (firing markers go to
 * RUN_DIR/faults/), with SEED for @rN draws. The environment variable
 * SL_FAULTS, when set and not empty, replaces SPEC. Returns the number of
 * entries armed (0: none), or -1 on a malformed spec (logged). */
int sl_faults_arm(const char *spec, const char *actor, const char *run_dir, uint64_t seed);

/* Disarm everything (tests). */
void sl_faults_reset(void);

/* A pass through POINT: with a KILL entry due, the process dies here (its
 * marker written first); with a DROP/CORRUPT entry due, that action is
 * returned for the caller to apply; else SL_FAULT_NONE. */
sl_fault_action sl_fault_point(const char *point);

/* Ask for the next outgoing frame to be dropped (DROP) or corrupted
 * (CORRUPT). Async-signal-safe. */
void sl_faults_request_net(sl_fault_action a);

/* For the mailbox: the action for the frame being sent now (armed mb_send
 * entries and pending requests), counted. */
sl_fault_action sl_faults_net(void);

/* Flip one byte of FRAME (LEN bytes) so that a decoder must refuse it. */
void sl_faults_corrupt(uint8_t *frame, size_t len);

/* Faults fired by this process so far (kill excluded: it does not return). */
uint64_t sl_faults_fired(void);

#endif /* SL_FAULTS_H */
