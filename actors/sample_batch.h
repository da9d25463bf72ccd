/*
 * sample_batch.h — the flat, versioned layout of a batch of samples as it
 * travels through shared memory (DESIGN.md §2): rollout engines write it
 * into an shm slot, reward actors, the buffer and the trainer read it in
 * place. One contiguous, position-independent byte range: a 128-byte header,
 * then arrays at offsets that follow from the counts alone (no stored
 * pointers), each starting on an 8-byte boundary, in this order:
 *
 *   offsets      u64[n+1]   token offset of each sample; [0]=0, [n]=T
 *   sample_ids   u64[n]     packed sample ids (dataset.h: sl_sample_id)
 *   group_ids    u64[n]     prompt id of the sample's group
 *   versions     u64[n]     weight_version the sample was generated with
 *   meta_off     u64[2n+1]  byte offsets into meta: string 2i is sample i's
 *                           label, 2i+1 its metadata JSON; [0]=0, [2n]=M
 *   tokens       i32[T]     prompt + response token ids of every sample
 *   logprobs     f32[T]     rollout log-probs (only with HAS_LOGPROBS)
 *   advantages   f32[T]     per-token advantages (only with HAS_ADVANTAGES)
 *   prompt_len   u32[n]     tokens of the sample that are prompt
 *   rewards      f32[n]
 *   sample_flags u32[n]     SL_SAMPLE_* bits
 *   loss_mask    u8[T]      1 = the token is trained
 *   meta         u8[M]      label / metadata strings, each NUL-terminated
 *
 * Header (little endian): magic u32 "SLSB" | version u16 | header_size u16
 * | flags u32 | n_samples u32 | n_tokens u64 | meta_bytes u64 | total_size
 * u64 | weight_version u64 | step u64 | checksum u64 | vocab_size u32 |
 * zero padding to 128 bytes. checksum = XXH3-64 of the whole batch
 * (total_size bytes) with the checksum field read as zero.
 *
 * Rules a valid batch obeys (sl_batch_view_open checks every one, so that a
 * consumer never reads out of bounds on a hostile or corrupt batch):
 *   - magic, version 1, header size 128, no unknown flag bits, zero padding;
 *   - n <= SL_BATCH_MAX_SAMPLES, T <= SL_BATCH_MAX_TOKENS, M <=
 *     SL_BATCH_MAX_META; the size computed from the counts equals
 *     total_size, and total_size <= the buffer's length;
 *   - the checksum matches (unless the caller skips it, e.g. after
 *     sl_shm_read already hashed the same bytes);
 *   - offsets start at 0, never decrease, end at T; each sample has
 *     1 <= prompt_len <= its length;
 *   - every token id is in [0, vocab) (the caller's vocab, or the header's
 *     when the caller passes 0; one of them must be known);
 *   - loss_mask bytes are 0 or 1, and 1 only on response tokens (index >=
 *     prompt_len within the sample);
 *   - log-probs (when present) are finite, and <= SL_BATCH_LOGPROB_TOL on
 *     masked tokens; advantages (when present) and rewards are finite;
 *   - meta_off starts at 0, never decreases, ends at M; a string is either
 *     absent (empty range) or at most SL_BATCH_MAX_STR bytes ending in NUL;
 *   - group_ids[i] == sl_sample_prompt_id(sample_ids[i]) (a group is the
 *     samples of one prompt); sample_flags hold only known bits.
 * Sample ids are not checked for uniqueness here (the buffer's WAL and the
 * trainer's ledger do that across batches).
 *
 * What it is not: a transport (shm.h moves the bytes), and not a wire format
 * for big-endian hosts (the views are native pointers; this code refuses to
 * compile on a big-endian target).
 *
 * Thread safety: a writer is used by one thread; views are read-only and
 * may be shared by any number of threads.
 */
#ifndef SL_SAMPLE_BATCH_H
#define SL_SAMPLE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define SL_BATCH_MAGIC 0x42534c53u /* "SLSB" little endian */
#define SL_BATCH_VERSION 1
#define SL_BATCH_HEADER_SIZE 128
#define SL_BATCH_MAX_SAMPLES (1u << 24)       /* samples per batch */
#define SL_BATCH_MAX_TOKENS (1ull << 31)      /* tokens per batch */
#define SL_BATCH_MAX_META (1ull << 30)        /* label + metadata bytes per batch */
#define SL_BATCH_MAX_STR (1u << 20)           /* one label or metadata string, NUL included */
#define SL_BATCH_LOGPROB_TOL 1e-3f            /* largest log-prob accepted on a trained token */

/* Header flags. */
#define SL_BATCH_HAS_LOGPROBS 0x1u   /* the logprobs array is present */
#define SL_BATCH_HAS_ADVANTAGES 0x2u /* the advantages array is present */
#define SL_BATCH_FLAGS_KNOWN (SL_BATCH_HAS_LOGPROBS | SL_BATCH_HAS_ADVANTAGES)

/* Per-sample flags. */
#define SL_SAMPLE_TRUNCATED 0x1u /* generation hit rollout_max_response_len */
#define SL_SAMPLE_ABORTED 0x2u   /* generation was cut short (engine stopping) */
#define SL_SAMPLE_EVAL 0x4u      /* an evaluation sample, never trained */
#define SL_SAMPLE_FLAGS_KNOWN (SL_SAMPLE_TRUNCATED | SL_SAMPLE_ABORTED | SL_SAMPLE_EVAL)

/* sl_batch_view_open flags. */
#define SL_BATCH_SKIP_CHECKSUM 0x1u /* trust the bytes' integrity (already hashed) */

/* The counts that fix a batch's size. */
typedef struct sl_batch_dims {
    uint32_t n_samples;  /* n */
    uint64_t n_tokens;   /* T: sum of all samples' lengths */
    uint64_t meta_bytes; /* M: sum of sl_batch_meta_bytes over the samples */
    uint32_t flags;      /* SL_BATCH_HAS_* */
} sl_batch_dims;

/* Bytes a batch of these dimensions takes, into *size. Errors: SL_EINVAL
 * (NULL), SL_ERANGE (a count over its limit, unknown flags). Pure. */
int sl_batch_size(const sl_batch_dims *dims, size_t *size);

/* Meta bytes one sample's label and metadata take (each string's length + 1
 * for its NUL; NULL = absent = 0). */
uint64_t sl_batch_meta_bytes(const char *label, const char *metadata);

/* One sample handed to the writer. Pointers are borrowed for the call. */
typedef struct sl_batch_sample_in {
    const int32_t *tokens;     /* (n_tokens,) prompt then response */
    uint32_t n_tokens;
    uint32_t prompt_len;       /* 1 .. n_tokens */
    const float *logprobs;     /* (n_tokens,) or NULL = zeros; used with HAS_LOGPROBS */
    const uint8_t *loss_mask;  /* (n_tokens,) or NULL = 1 on the response, 0 on the prompt */
    const float *advantages;   /* (n_tokens,) or NULL = zeros; used with HAS_ADVANTAGES */
    float reward;
    uint64_t sample_id;        /* sl_sample_id(...) */
    uint64_t group_id;         /* sl_sample_prompt_id(sample_id) */
    uint64_t weight_version;
    uint32_t flags;            /* SL_SAMPLE_* */
    const char *label;         /* NUL-terminated or NULL */
    const char *metadata;      /* NUL-terminated JSON text or NULL */
} sl_batch_sample_in;

/* A writer fills a caller's buffer (an shm slot) in place: compute the
 * size with sl_batch_size, init, add exactly n samples whose totals match
 * the dims, finish. The writer does not own the buffer. */
typedef struct sl_batch_writer {
    uint8_t *buf;
    size_t size;          /* total bytes of this batch */
    sl_batch_dims dims;
    uint32_t next_sample;
    uint64_t next_token;
    uint64_t next_meta;
    int32_t vocab_size;
    int failed;           /* an add failed: finish refuses */
} sl_batch_writer;

/* Start a batch in buf (cap bytes, 8-byte aligned). Writes the header.
 * vocab_size (> 0) is recorded in the header and every added token is
 * checked against it. Errors: SL_EINVAL (NULL, misaligned buffer,
 * vocab_size <= 0), SL_ERANGE (dims over the limits or the batch larger
 * than cap). */
int sl_batch_writer_init(sl_batch_writer *w, void *buf, size_t cap, const sl_batch_dims *dims,
                         uint64_t weight_version, uint64_t step, int32_t vocab_size);

/* Append one sample (copied into the buffer). Checks the sample against
 * the rules above and against the space left. Errors: SL_EINVAL (a rule
 * broken: bad prompt_len, token id, mask, non-finite value, group id),
 * SL_ERANGE (more samples, tokens or meta bytes than the dims said). On
 * error nothing of this sample counts and the writer is marked failed. */
int sl_batch_writer_add(sl_batch_writer *w, const sl_batch_sample_in *s);

/* Check that exactly the dims' counts were added, compute the checksum and
 * give the batch's length (= its size) in *len (may be NULL). Errors:
 * SL_EINVAL (counts short, or an earlier add failed). */
int sl_batch_writer_finish(sl_batch_writer *w, size_t *len);

/* A checked batch: pointers into the buffer (zero copies), valid as long
 * as the buffer is. Absent optional arrays are NULL. */
typedef struct sl_batch_view {
    uint32_t n_samples;
    uint64_t n_tokens;
    uint64_t meta_bytes;
    uint32_t flags;
    uint64_t weight_version;
    uint64_t step;
    uint64_t checksum;
    int32_t vocab_size;           /* from the header */
    size_t size;                  /* total_size */
    const uint64_t *offsets;      /* (n+1,) */
    const uint64_t *sample_ids;   /* (n,) */
    const uint64_t *group_ids;    /* (n,) */
    const uint64_t *versions;     /* (n,) */
    const uint64_t *meta_off;     /* (2n+1,) */
    const int32_t *tokens;        /* (T,) */
    const float *logprobs;        /* (T,) or NULL */
    const float *advantages;      /* (T,) or NULL */
    const uint32_t *prompt_len;   /* (n,) */
    const float *rewards;         /* (n,) */
    const uint32_t *sample_flags; /* (n,) */
    const uint8_t *loss_mask;     /* (T,) */
    const char *meta;             /* (M,) */
} sl_batch_view;

/* Validate buf[0..len) against every rule above and fill *v with views
 * into it. vocab_size > 0 is the consumer's vocabulary (ids must be below
 * it and below the header's when that is set); 0 = use the header's.
 * flags: SL_BATCH_SKIP_CHECKSUM. Errors (v zeroed, err — when not NULL —
 * says which rule failed and where): SL_EINVAL (NULL, misaligned, any broken
 * rule), SL_EPROTO (bad magic, version, header size, flags, padding),
 * SL_ERANGE (counts over limits, size larger than len), SL_ECHECKSUM.
 * Runs in time linear in the batch; never reads outside buf[0..len).
 * Thread-safe. */
int sl_batch_view_open(sl_batch_view *v, const void *buf, size_t len, int32_t vocab_size,
                       unsigned flags, char *err, size_t errlen);

/* One sample of a view. Pointers into the batch; label/metadata NULL when
 * absent (else NUL-terminated). */
typedef struct sl_batch_sample {
    const int32_t *tokens;    /* (n_tokens,) */
    uint32_t n_tokens;
    uint32_t prompt_len;
    const float *logprobs;    /* (n_tokens,) or NULL */
    const float *advantages;  /* (n_tokens,) or NULL */
    const uint8_t *loss_mask; /* (n_tokens,) */
    float reward;
    uint64_t sample_id;
    uint64_t group_id;
    uint64_t weight_version;
    uint32_t flags;
    const char *label;
    const char *metadata;
} sl_batch_sample;

/* Sample i (< v->n_samples) of a view opened by sl_batch_view_open.
 * Returns SL_ERANGE for i out of range (s zeroed), else 0. */
int sl_batch_view_sample(const sl_batch_view *v, uint32_t i, sl_batch_sample *s);

#endif /* SL_SAMPLE_BATCH_H */
