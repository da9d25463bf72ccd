/*
 * metrics.h — what a run reports about itself while it runs: the
 * RUN_DIR/metrics.jsonl writer (one JSON object per step), the same lines
 * as TensorBoard scalars (RUN_DIR/tb, through tboard.h), and the live
 * progress line.
 *
 * metrics.jsonl: one object per line, written with one write(2) on an
 * O_APPEND descriptor. Fields (absent when they do not apply):
 *   step              global step of the curves: SFT steps 1..S, then
 *                     S + k for RL step k (monotone over the whole run)
 *   rl_step           RL step k (0 for SFT lines and the step-0 eval)
 *   phase             "sft" | "rl" | "eval"
 *   reward_mean, reward_std, response_len_mean   (rl and eval)
 *   loss, pg_loss, kl, entropy, grad_norm, clipfrac, lr   (from the trainer)
 *   tokens_per_s      generated tokens per second of rollout (rl, eval) or
 *                     trained tokens per second (sft)
 *   weight_version, samples_trained (cumulative RL samples trained),
 *   eval_accuracy     (eval lines: mean of reward == 1)
 *   time              Unix seconds (real)
 * The writer adds "time" when the caller did not.
 *
 * Progress line: "[rl] step 12/40 | reward 0.53 | eval 0.61 | 1234 tok/s |
 * ETA 2m10s". It is written (1) to RUN_DIR/progress (replaced atomically,
 * for `cat` or a supervisor that wants to show it) and (2) where the user
 * sees it: actors' stderr goes to logs/NAME.log, so the line is written to
 * the supervisor's stderr, opened as /proc/PPID/fd/2 (O_APPEND) when the
 * parent is slime-supervisor. On a terminal it is refreshed in place
 * ("\r" + clear line); otherwise one plain line per update. SL_PROGRESS=0
 * in the environment turns (2) off; so does a log level below info
 * (slime-supervisor --quiet), except for the final "done" line.
 *
 * What it is not: no aggregation across actors (the buffer computes the
 * figures), no reading of metrics (report.h reads them).
 *
 * Thread safety: one sl_metrics per thread.
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base.h"

typedef struct sl_metrics sl_metrics;

/* Open RUN_DIR/metrics.jsonl for appending (created 0644), RUN_DIR/tb for
 * TensorBoard (best effort: a failure is logged, not returned) and the
 * progress outputs. *OUT owned by the caller (sl_metrics_close).
 * Errors: SL_EINVAL, SL_EIO, SL_ENOMEM. */
int sl_metrics_open(const char *run_dir, sl_metrics **out);

/* Close; NULL is fine. Ends a terminal progress line with a newline. */
void sl_metrics_close(sl_metrics *m);

/* Append OBJ (borrowed; "time" is added when missing) as one line and the
 * same as TensorBoard scalars. Errors: SL_EINVAL (not an object, no
 * "step"), SL_EIO, SL_ENOMEM. */
int sl_metrics_write(sl_metrics *m, json_t *obj);

/* Rewrite PATH (a metrics.jsonl) keeping only the lines a resumed run
 * keeps: "sft" lines when KEEP_SFT, and "rl"/"eval" lines whose rl_step is
 * <= MAX_RL_STEP (with KEEP_SFT; without it every rl/eval line goes too,
 * except none). Lines that are not JSON objects are dropped. Atomic
 * (sl_file_write_atomic). A missing file is fine (0). *KEPT / *DROPPED
 * (may be NULL) get the counts. Errors: SL_EIO, SL_ENOMEM. */
int sl_metrics_truncate(const char *path, bool keep_sft, int64_t max_rl_step, int *kept,
                        int *dropped);

/* The last cumulative samples_trained of PATH's rl lines (0 when none);
 * for a resumed run. */
int64_t sl_metrics_last_samples_trained(const char *path);

/* The rl_step of PATH's last rl line (0 when none). */
int64_t sl_metrics_last_rl_step(const char *path);

/* One progress update. NAN for a figure that is unknown. */
typedef struct sl_progress {
    const char *phase; /* "sft", "rl", "eval", "done" */
    int64_t step;      /* within the phase */
    int64_t total;     /* steps of the phase */
    double reward;     /* last reward mean */
    double eval_acc;   /* last eval accuracy */
    double tokens_per_s;
    double eta_s;      /* seconds left, NAN = unknown */
} sl_progress;

/* Format P into BUF (CAP bytes) as the progress line (no newline).
 * Returns the length. Pure. */
size_t sl_progress_format(const sl_progress *p, char *buf, size_t cap);

/* Show P (see the header comment), at most once a second unless the
 * phase changed or is "done". Never fails: output errors are
 * ignored (progress is a convenience). */
void sl_metrics_progress(sl_metrics *m, const sl_progress *p);

/* Show the library's long operations (sl_progress_report in base.h:
 * loading weights, writing a checkpoint's weights) where the progress
 * line goes: "[NAME] loading weights 45% (1.20 GB of 2.65 GB)", refreshed
 * in place on a terminal (4 times a second at most), one plain line every
 * 5 s otherwise, then "[NAME] loading weights: 2.65 GB done in 3.1 s".
 * Operations shorter than a second (SL_PROGRESS_AFTER_MS in the
 * environment changes it) show nothing; so does a log level
 * below info (slime-supervisor --quiet). Installs a process-wide hook
 * (sl_progress_set_hook); NAME (the actor's) is copied. sl_actor_main
 * calls it for every actor. Not thread safe: one operation at a time. */
void sl_metrics_task_progress_install(const char *name);

#endif /* SL_METRICS_H */
