/*
 * report.h — the run report: RUN_DIR/report.html, one self-contained page
 * (no network, no scripts, no external fonts) that says how a run went:
 *
 *   - inline SVG line charts over steps of reward_mean, eval_accuracy,
 *     response_len_mean, kl, entropy and tokens_per_s (axes, ticks, labels,
 *     sft / rl phases shaded), read from RUN_DIR/metrics.jsonl;
 *   - the run's configuration, RUN_DIR/topology.conf, HTML-escaped;
 *   - actor restarts, from RUN_DIR/status.json (what `slime-ctl status
 *     --json` prints) or else from RUN_DIR/logs/supervisor.log;
 *   - sample prompts, responses and rewards of the first and the last step
 *     found in RUN_DIR/samples.jsonl.
 *
 * Every input may be missing or garbled: a missing file is said so on the
 * page; a bad line is skipped and counted. It is not a live view and does
 * not talk to the supervisor.
 */
#ifndef SL_REPORT_H
#define SL_REPORT_H

#include <stdint.h>
#include <stdio.h>

/* RUN_DIR/samples.jsonl: one JSON object per line,
 *
 *   {"step": 12, "prompt": "...", "response": "...", "reward": 1.0}
 *
 * step an integer, prompt and response strings (UTF-8), reward a number or
 * null. Other keys are allowed and ignored. Writers append a few samples
 * per step (the report shows at most SL_REPORT_SAMPLES_PER_STEP of the
 * first and of the last step); sl_report_append_sample writes one line. */
#define SL_REPORT_SAMPLES_FILE "samples.jsonl"
#define SL_REPORT_SAMPLES_PER_STEP 8

/* What the report found (for logs and tests). */
typedef struct sl_report_info {
    int metrics_rows;     /* metrics.jsonl lines used */
    int metrics_skipped;  /* lines skipped: not JSON, not an object, no step, too long */
    int samples_rows;     /* samples.jsonl lines that were valid */
    int samples_skipped;  /* samples.jsonl lines skipped */
    int restarts;         /* actor restarts in total; -1 when there is no record */
    int has_config;       /* topology.conf was read */
    int charts_with_data; /* of the 6 charts, how many have at least one point */
} sl_report_info;

/* Append one sample line to RUN_DIR/samples.jsonl (created 0644 if
 * needed; O_APPEND, one write(2), so concurrent writers do not interleave
 * lines). PROMPT and RESPONSE are copied, at most 64 KiB each (cut at a
 * UTF-8 boundary); invalid UTF-8 is refused by jansson: SL_EINVAL.
 * A non-finite REWARD is written as null. Thread-safe.
 * Errors: SL_EINVAL, SL_ENOMEM, SL_EIO. */
int sl_report_append_sample(const char *run_dir, int64_t step, const char *prompt, const char *response,
                            double reward);

/* Render the report of RUN_DIR as HTML to OUT. INFO (may be NULL) is
 * filled. Missing inputs are not errors. Not thread-safe with respect to
 * OUT; otherwise reentrant.
 * Errors: SL_EINVAL (NULL arguments), SL_ENOMEM, SL_EIO (writing OUT). */
int sl_report_render(const char *run_dir, FILE *out, sl_report_info *info);

/* Write RUN_DIR/report.html atomically (temporary file, fsync, rename):
 * sl_report_render into memory, then sl_file_write_atomic. INFO may be
 * NULL. Errors: as sl_report_render, SL_EIO when the file cannot be
 * written. */
int sl_report_write(const char *run_dir, sl_report_info *info);

#endif /* SL_REPORT_H */
