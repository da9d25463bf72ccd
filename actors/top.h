/*
 * top.h — what `slime-ctl top` shows: one snapshot of a running topology,
 * built from the supervisor's status JSON (supervisor.h: actors, states,
 * pids, restarts, mailbox counters), /proc (CPU time, resident memory of
 * each actor process) and the tail of RUN_DIR/metrics.jsonl (step, reward,
 * eval accuracy, tokens/s; metrics.h), rendered as a plain-text table.
 *
 * Rates (CPU %, messages/s) are differences between two snapshots of the
 * same pid: the first snapshot of a process shows "-".
 *
 * What it is not: the control-plane client (control.h), the terminal loop
 * (bin/slime-ctl.c), a writer of anything.
 *
 * Thread safety: one sl_top per thread.
 */
#ifndef SL_TOP_H
#define SL_TOP_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "base.h"

typedef struct sl_top sl_top;

/* A viewer of RUN_DIR (copied). *OUT owned by the caller (sl_top_free).
 * Errors: SL_EINVAL, SL_ENOMEM. */
int sl_top_new(const char *run_dir, sl_top **out);
void sl_top_free(sl_top *t);

/* One snapshot: STATUS is the supervisor's `status` reply (borrowed; an
 * object with "actors"), NOW_MS a monotonic time in milliseconds (for the
 * CPU rate). Renders the snapshot into F. Missing or malformed pieces
 * (no metrics yet, a pid that vanished, an odd field) show as "-", never
 * fail. Errors: SL_EINVAL (STATUS is not an object with an "actors"
 * array), SL_ENOMEM. */
int sl_top_render(sl_top *t, json_t *status, uint64_t now_ms, FILE *f);

/* The run line alone ("rl step 12/40 | reward 0.531 | ..." or "no metrics
 * yet") from the last lines of RUN_DIR/metrics.jsonl, into BUF (CAP).
 * Returns the length. Reads only the last 64 KiB of the file. */
size_t sl_top_run_line(sl_top *t, char *buf, size_t cap);

#endif /* SL_TOP_H */
