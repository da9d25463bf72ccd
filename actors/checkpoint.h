/*
 * checkpoint.h — the trainer's run state on disk: checkpoints under
 * RUN_DIR/checkpoints/, the `latest` pointer, and RUN_DIR/ledger.jsonl.
 *
 * A checkpoint is the folder RUN_DIR/checkpoints/step_NNNNNN/ (NNNNNN = the
 * last trained RL step, 6 digits or more; step_000000 is the end of the SFT
 * warm-up) holding:
 *   - what sl_trainer_save writes: config.json + model.safetensors (a
 *     Hugging Face folder), optimizer.bin, trainer_state.json;
 *   - the tokenizer files of the model folder (tokenizer.json,
 *     tokenizer_config.json, and special_tokens_map.json, vocab.json,
 *     merges.txt, generation_config.json, chat_template.jinja when present),
 *     so the folder loads in transformers as it is;
 *   - state.json: {"step", "weight_version", "phase", "sft_done",
 *     "sft_step", "cursor" (the buffer's data cursor object or null), "rng"}.
 * It is written as a hidden temporary folder, every file fsynced, then
 * renamed into place; then RUN_DIR/checkpoints/latest (the folder's name,
 * one line) is replaced atomically (sl_file_write_atomic). A crash at any
 * point leaves the previous checkpoint and pointer intact.
 *
 * The ledger: one JSON line per trained RL batch, {"step", "weight_version",
 * "sample_ids": ["e0:i12:s3", ...]}, appended and fsynced before the
 * trainer answers TRAIN_DONE. On resume it is cut back to the lines with
 * step <= the checkpoint's step (rewritten atomically).
 *
 * Everything read back is hostile: a `latest` naming anything but a
 * step_NNNNNN folder, a state.json that is not the shape above, a torn or
 * altered weights/optimizer file are refused with a clear error (never a
 * crash), and nothing in the trainer changes before every file checked out.
 *
 * What it is not: the format of the weights and optimizer files
 * (trainer_core.h, safetensors.h), the buffer's WAL (wal.h), metrics.
 *
 * Thread safety: reentrant; one writer per run directory at a time.
 */
#ifndef SL_CHECKPOINT_H
#define SL_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "trainer_core.h"

#define SL_CKPT_NAME_MAX 32

/* The run state stored beside the weights. */
typedef struct sl_ckpt_state {
    int64_t step;            /* last trained RL step (0: none yet) */
    uint64_t weight_version; /* version of the saved weights */
    char phase[8];           /* "sft" or "rl": the phase of the last trained batch */
    bool sft_done;           /* the SFT warm-up finished */
    int64_t sft_step;        /* SFT batches trained */
    char *cursor_json;       /* owned: the buffer's cursor object as JSON text, or NULL */
    uint64_t rng;            /* the trainer's RNG state (seed of the run's trainer stream) */
} sl_ckpt_state;

/* Free cursor_json and zero the struct; safe twice. */
void sl_ckpt_state_fini(sl_ckpt_state *st);

/* The folder name of STEP: "step_%06lld" into OUT (SL_CKPT_NAME_MAX). */
void sl_ckpt_name(int64_t step, char out[SL_CKPT_NAME_MAX]);

/* Whether NAME is a well-formed checkpoint name (step_ + 6..18 digits);
 * *STEP (may be NULL) gets its number. */
bool sl_ckpt_name_parse(const char *name, int64_t *step);

/* Write checkpoint step_<st->step> of trainer T into RUN_DIR/checkpoints
 * (created 0755 when missing), copying the tokenizer files found in
 * TOKENIZER_DIR (may be NULL: none), then point `latest` at it. An existing
 * folder of the same name is replaced. NAME_OUT (may be NULL) gets the
 * name. Errors (reason in ERR): SL_EINVAL (NULL, st->cursor_json not a JSON
 * object, step < 0), SL_EIO, SL_ENOMEM, or sl_trainer_save's. */
int sl_ckpt_write(const char *run_dir, const sl_trainer *t, const char *tokenizer_dir,
                  const sl_ckpt_state *st, char name_out[SL_CKPT_NAME_MAX], char *err,
                  size_t errlen);

/* The name `latest` points at, into NAME. Errors: SL_ENOENT (no pointer,
 * or the folder it names is missing), SL_EINVAL (a malformed pointer:
 * "refused" and why in ERR), SL_EIO. */
int sl_ckpt_latest(const char *run_dir, char name[SL_CKPT_NAME_MAX], char *err, size_t errlen);

/* Remove the `latest` pointer (a fresh run: old checkpoints are no longer
 * this run's). Missing is fine. Errors: SL_EIO. */
int sl_ckpt_forget_latest(const char *run_dir);

/* Read and check only DIR/state.json into *ST (zeroed first; caller
 * sl_ckpt_state_fini). Errors: SL_ENOENT, SL_EINVAL (malformed: ERR says
 * which field), SL_EIO. */
int sl_ckpt_read_state(const char *dir, sl_ckpt_state *st, char *err, size_t errlen);

/* Load checkpoint NAME of RUN_DIR into trainer T (weights, optimizer,
 * counters: sl_trainer_load) and its state into *ST. state.json is checked
 * first, then everything sl_trainer_load checks; the state's
 * weight_version must equal the saved counters'. On error *ST is zeroed
 * and T is unchanged (as sl_trainer_load guarantees), except when the
 * versions disagree (found after loading: T then holds the checkpoint's
 * weights; treat it as a failed start). Errors: SL_EINVAL
 * (bad name or files), SL_ENOENT, SL_ECHECKSUM, SL_EIO, SL_ENOMEM. */
int sl_ckpt_load(const char *run_dir, const char *name, sl_trainer *t, sl_ckpt_state *st,
                 char *err, size_t errlen);

/* The well-formed checkpoint names of RUN_DIR, ascending by step: *NAMES
 * (malloc'd array of *N malloc'd strings; free with sl_ckpt_list_free).
 * Hidden temporaries and anything else are skipped. A missing folder gives
 * 0 names. Errors: SL_EIO, SL_ENOMEM. */
int sl_ckpt_list(const char *run_dir, char ***names, size_t *n);
void sl_ckpt_list_free(char **names, size_t n);

/* ---------------------------------------------------------------- ledger */

/* Append one line {"step","weight_version","sample_ids":[text ids]} to
 * PATH (created 0644) and fsync it. IDS are packed sample ids (dataset.h).
 * Errors: SL_EINVAL, SL_EIO, SL_ENOMEM. */
int sl_ledger_append(const char *path, int64_t step, uint64_t weight_version, const uint64_t *ids,
                     size_t n);

/* Rewrite PATH atomically keeping the lines whose step <= MAX_STEP, in
 * order (a missing file is fine: nothing to do). A torn last line (no
 * newline: the writer died mid-append) is dropped; any other line that is
 * not a ledger object is an error (SL_EINVAL, the line number in ERR) and
 * the file is left as it was. *KEPT / *DROPPED (may be NULL) get counts.
 * Errors: SL_EINVAL, SL_EIO, SL_ENOMEM. */
int sl_ledger_truncate(const char *path, int64_t max_step, size_t *kept, size_t *dropped,
                       char *err, size_t errlen);

#endif /* SL_CHECKPOINT_H */
