/*
 * dataset.h — the prompt dataset as slime reads it: a JSON-lines file, one
 * object per line, with the prompt under `input_key` (a string, or a list of
 * {"role", "content"} messages), the reference answer under `label_key` and
 * per-sample metadata under `metadata_key` (any JSON, kept as its
 * serialized text). With `apply_chat_template` the prompt is rendered by
 * chat.h (a plain string becomes one user message) with the generation
 * prompt appended; otherwise the string is used as is. Prompts are
 * tokenized with a given tokenizer. On top: a seeded per-epoch shuffle, a
 * data cursor {epoch, position} that checkpoints save and restore exactly,
 * and the packed ids that name prompts and samples across the whole run.
 *
 * What it is not: no dispatching, no batching of samples, no file watching
 * (the buffer actor does those); the whole file is read at load.
 *
 * Hostile input. Every line is checked: bad JSON, a line that is not an
 * object, a missing input/label key, a value of the wrong type, a message
 * list chat.h refuses, a prompt longer than max_prompt_tokens, a line over
 * max_line_bytes. In strict mode (the default) the first such line fails
 * the load with SL_EINVAL and an error "FILE:LINE: what is wrong" (programs
 * exit SL_EXIT_USAGE, 2, on it). In skip mode (opts.skip_bad = 1, for large
 * real datasets) bad lines are dropped and counted per kind
 * (sl_dataset_stats), the first few are logged with sl_warn, and the load
 * fails only when no line is left. Blank lines (only whitespace) are
 * ignored in both modes. Dataset indices count kept records, 0-based, in
 * file order.
 *
 * Thread safety: after load, sl_dataset_get / _size / _stats may be called
 * from any thread; sl_dataset_next mutates a per-dataset permutation cache
 * and must not run concurrently with itself on one dataset.
 */
#ifndef SL_DATASET_H
#define SL_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "chat.h"
#include "tokenizer.h"

/* ------------------------------------------------------------ sample ids */

/* A prompt is named by (dataset index, epoch); a sample by (dataset index,
 * epoch, index within the group). Packed in 64 bits:
 *
 *   bits 63..44  epoch   20 bits  0 .. 1,048,575 (topology allows num_epoch <= 10^6)
 *   bits 43..12  index   32 bits  0 .. 4,294,967,295 prompts per dataset
 *   bits 11..0   sample  12 bits  0 .. 4095 (n_samples_per_prompt <= 4096)
 *
 * A prompt id is the id of its sample 0 (sample bits zero), so the group id
 * of any sample is sl_sample_prompt_id(id). Ids are unique across a run as
 * long as one dataset feeds it. Text form for the ledger and logs:
 * "e<epoch>:i<index>:s<sample>" (e.g. "e0:i123:s4"), a prompt "e0:i123". */
#define SL_SAMPLE_EPOCH_BITS 20
#define SL_SAMPLE_INDEX_BITS 32
#define SL_SAMPLE_SUB_BITS 12
#define SL_SAMPLE_MAX_EPOCHS (1u << SL_SAMPLE_EPOCH_BITS)          /* epochs 0 .. this-1 */
#define SL_SAMPLE_MAX_INDEX (1ull << SL_SAMPLE_INDEX_BITS)         /* indices 0 .. this-1 */
#define SL_SAMPLE_MAX_GROUP (1u << SL_SAMPLE_SUB_BITS)             /* samples 0 .. this-1 */
#define SL_SAMPLE_ID_TEXT_MAX 40 /* enough for any id's text form, NUL included */

/* Pack; returns 0 and the id in *id, or SL_ERANGE when a field is over its
 * width (*id untouched). */
int sl_sample_id_pack(uint32_t epoch, uint64_t index, uint32_t sample, uint64_t *id);

/* The prompt id (sample 0) of (epoch, index); SL_ERANGE as above. */
static inline int sl_prompt_id_pack(uint32_t epoch, uint64_t index, uint64_t *id) {
    return sl_sample_id_pack(epoch, index, 0, id);
}

/* Fields of an id (any 64-bit value unpacks). */
static inline uint32_t sl_sample_epoch(uint64_t id) { return (uint32_t)(id >> 44); }
static inline uint64_t sl_sample_index(uint64_t id) { return (id >> 12) & 0xffffffffull; }
static inline uint32_t sl_sample_sub(uint64_t id) { return (uint32_t)(id & 0xfffu); }
static inline uint64_t sl_sample_prompt_id(uint64_t id) { return id & ~(uint64_t)0xfffu; }

/* Text form "e%u:i%llu:s%u" into buf (cap >= SL_SAMPLE_ID_TEXT_MAX is
 * always enough). Returns the length written (excluding the NUL), or 0 when
 * it does not fit (buf then holds ""). */
size_t sl_sample_id_format(uint64_t id, char *buf, size_t cap);

/* Same for a prompt id: "e%u:i%llu" (the sample bits are ignored). */
size_t sl_prompt_id_format(uint64_t id, char *buf, size_t cap);

/* Parse the text form (exactly "e<E>:i<I>:s<S>", decimal, no sign, no
 * spaces, each field within its width) of len bytes. Errors: SL_EINVAL. */
int sl_sample_id_parse(const char *text, size_t len, uint64_t *id);

/* ---------------------------------------------------------------- loading */

/* Kinds of bad lines, counted in skip mode. */
typedef enum sl_dataset_bad {
    SL_DATASET_BAD_JSON = 0,    /* not valid JSON (or not UTF-8), or not an object */
    SL_DATASET_BAD_MISSING = 1, /* input (or required label) key absent */
    SL_DATASET_BAD_TYPE = 2,    /* a value of the wrong type, or a message list chat.h refuses */
    SL_DATASET_BAD_LONG = 3,    /* prompt over max_prompt_tokens, or line over max_line_bytes */
    SL_DATASET_BAD_LABEL = 4,   /* label_gsm8k: the label has no "#### N" answer */
    SL_DATASET_BAD_KINDS = 5,
} sl_dataset_bad;

typedef struct sl_dataset_opts {
    const char *input_key;     /* default "input" */
    const char *label_key;     /* default "label"; NULL or "" = labels not read */
    const char *metadata_key;  /* default "metadata"; NULL or "" = not read */
    const char *response_key;  /* NULL (default) = none; else a string field kept
                                  as the record's response (SFT targets) */
    int label_required;        /* 1 (default): a line without label_key is bad */
    int label_gsm8k;           /* 1: the label is the text after the label's last
                                  "####", trimmed (GSM8K's "answer" field) */
    int apply_chat_template;   /* 0 (default): prompts must be strings, used as is */
    sl_chat_format chat_format;/* with apply_chat_template; default CHATML */
    sl_chat_opts chat;         /* default: sl_chat_opts_init (generation prompt on) */
    const sl_tokenizer *tok;   /* NULL = no token ids (borrowed; only used during load) */
    size_t max_prompt_tokens;  /* 0 = no limit (needs tok to apply) */
    size_t max_line_bytes;     /* default 16 MiB */
    int skip_bad;              /* 0 = strict (default), 1 = count and skip bad lines */
    uint64_t seed;             /* shuffle seed (run.seed) */
    int shuffle;               /* rollout_shuffle */
    uint32_t num_epoch;        /* default 1; 1 .. SL_SAMPLE_MAX_EPOCHS */
} sl_dataset_opts;

/* slime's defaults (see the field comments). */
void sl_dataset_opts_init(sl_dataset_opts *o);

/* Defaults for GSM8K's files (/work/shared/data/gsm8k/ train.jsonl, test.jsonl): input_key
 * "question", label_key "answer", label_gsm8k = 1. */
void sl_dataset_opts_gsm8k(sl_dataset_opts *o);

struct sl_topology;

/* slime's keys from a loaded topology: [data] input_key, label_key,
 * metadata_key, apply_chat_template, rollout_shuffle, num_epoch and [run]
 * seed, over sl_dataset_opts_init's defaults. The key strings point into
 * topo (keep it alive until the load). The tokenizer, chat format and
 * limits are left for the caller. Thread-safe. */
void sl_dataset_opts_from_topology(sl_dataset_opts *o, const struct sl_topology *topo);

/* One kept record. Everything is owned by the dataset. */
typedef struct sl_prompt {
    const char *text;            /* the prompt as the model sees it (template applied) */
    size_t text_len;
    const int32_t *ids;          /* (n_ids,) token ids of text; NULL without a tokenizer */
    size_t n_ids;
    const char *label;           /* NULL when absent; numbers are kept as their JSON text */
    const char *metadata;        /* serialized JSON, NULL when absent or null */
    const char *response;        /* response_key's string, NULL when not read */
    const int32_t *response_ids; /* (n_response_ids,) NULL without tokenizer/response */
    size_t n_response_ids;
    uint32_t line;               /* 1-based line in the file */
} sl_prompt;

typedef struct sl_dataset_stats {
    uint64_t lines;                          /* lines read, blank ones included */
    uint64_t kept;                           /* records kept */
    uint64_t blank;                          /* blank lines ignored */
    uint64_t skipped[SL_DATASET_BAD_KINDS];  /* bad lines per kind (skip mode) */
    uint64_t skipped_total;
    uint64_t max_prompt_tokens_seen;         /* longest kept prompt, in tokens */
} sl_dataset_stats;

typedef struct sl_dataset sl_dataset;

/* Read and check PATH (JSON lines). On success *out owns a new dataset
 * (sl_dataset_free). On error *out is NULL and err (when not NULL) holds
 * "PATH:LINE: message" (or "PATH: message" for file-level problems).
 * Errors: SL_ENOENT / SL_EIO (file), SL_EINVAL (a bad line in strict mode,
 * no record left, bad opts), SL_ERANGE (more records than
 * SL_SAMPLE_MAX_INDEX), SL_ENOMEM. */
int sl_dataset_load(const char *path, const sl_dataset_opts *opts, sl_dataset **out, char *err,
                    size_t errlen);

/* Same, from text in memory; `name` stands for the file in errors. */
int sl_dataset_load_text(const char *name, const char *text, size_t len, const sl_dataset_opts *opts,
                         sl_dataset **out, char *err, size_t errlen);

/* Free; NULL is ignored. */
void sl_dataset_free(sl_dataset *ds);

/* Number of kept records. */
size_t sl_dataset_size(const sl_dataset *ds);

/* Record i (< size), or NULL. */
const sl_prompt *sl_dataset_get(const sl_dataset *ds, size_t i);

/* Counts of the load. */
const sl_dataset_stats *sl_dataset_stats_get(const sl_dataset *ds);

/* ---------------------------------------------------------------- order */

/* Where the next prompt comes from: position `position` (0 .. size-1) of
 * epoch `epoch`'s order. {0, 0} is the start; epoch == num_epoch means the
 * data is exhausted. */
typedef struct sl_data_cursor {
    uint32_t epoch;
    uint64_t position;
} sl_data_cursor;

/* Dataset index at `position` of `epoch`'s order. Without shuffle the order
 * is the file order. With shuffle it is a Fisher-Yates permutation of
 * 0..n-1 driven by SplitMix64 (Vigna) seeded with
 *     state = seed ^ (0x9E3779B97F4A7C15 * (epoch + 1))
 * where for i = n-1 down to 1, j is drawn uniformly from [0, i] by
 * rejection (a 64-bit output r is rejected while r >= 2^64 - 2^64 mod
 * (i+1); then j = r mod (i+1)) and entries i and j are swapped. Each epoch
 * thus has its own permutation, reproducible from (seed, epoch) alone.
 * Errors: SL_ERANGE (position >= size or epoch >= SL_SAMPLE_MAX_EPOCHS),
 * SL_ENOMEM. Not thread-safe (caches the last epoch's permutation). */
int sl_dataset_index_at(sl_dataset *ds, uint32_t epoch, uint64_t position, uint64_t *index);

/* Take up to `want` prompts from the cursor on: out_ids[k] gets the prompt
 * id (sl_prompt_id_pack(epoch, index)) of each, the cursor advances, and an
 * epoch's end rolls over into the next epoch's order (a batch may straddle
 * two epochs, as slime's data source does). *got (<= want) is less than
 * want only when the last epoch ran out. Returns 0 (also when *got == 0 at
 * the end), SL_EINVAL for NULL or a cursor beyond the data, SL_ENOMEM. */
int sl_dataset_next(sl_dataset *ds, sl_data_cursor *cur, uint64_t *out_ids, size_t want,
                    size_t *got);

/* The record a prompt id names, or NULL (index out of range). */
const sl_prompt *sl_dataset_get_id(const sl_dataset *ds, uint64_t prompt_id);

/* Save the cursor as one JSON object text (for checkpoints):
 * {"epoch":E,"position":P,"size":N,"seed":"S","shuffle":B,"num_epoch":K}
 * into buf (the seed as a decimal string: it is a full 64-bit value). Returns the length (excluding NUL) or 0 when cap is too small.
 * 160 bytes always suffice. */
size_t sl_data_cursor_format(const sl_dataset *ds, const sl_data_cursor *cur, char *buf, size_t cap);

/* Restore a cursor saved by sl_data_cursor_format. The saved size, seed and
 * shuffle must equal this dataset's (else the continuation would differ):
 * SL_ESTALE with a message when they do not; SL_EINVAL for malformed text
 * or a position/epoch out of range. num_epoch may differ (a resumed run may
 * extend training). On error *cur is untouched. */
int sl_data_cursor_parse(const sl_dataset *ds, const char *text, size_t len, sl_data_cursor *cur,
                         char *err, size_t errlen);

/* Number of epochs the dataset was opened for. */
uint32_t sl_dataset_num_epoch(const sl_dataset *ds);

#endif /* SL_DATASET_H */
