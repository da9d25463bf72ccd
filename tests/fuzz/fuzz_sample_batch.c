/*
 * fuzz_sample_batch.c — libFuzzer target for the shared-memory batch layout
 * (actors/sample_batch.h: sl_batch_view_open).
 *
 * Input: byte 0 picks the mode — bit 0: checksum checked (else
 * SL_BATCH_SKIP_CHECKSUM, so that the fuzzer reaches the rules behind it);
 * bit 1: the consumer passes vocabulary 0 (use the header's) instead of
 * 1000. The rest is the batch, copied into an aligned buffer of exactly
 * its size. Properties: open never reads outside the buffer (ASan);
 * a refusal zeroes the view and gives a message; an opened view's samples
 * obey the rules the header promises (token ids in range, masks 0/1 and
 * only on responses, offsets inside, strings NUL-terminated).
 * What it is not: a test of the writer (test_sample_batch does that).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "fuzz_util.h"
#include "sample_batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned mode = data[0];
    data++;
    size--;
    void *buf = malloc(size ? size : 1); /* malloc is 16-byte aligned; exact size for ASan */
    if (!buf) abort();
    if (size) memcpy(buf, data, size);
    unsigned flags = (mode & 1) ? 0 : SL_BATCH_SKIP_CHECKSUM;
    int32_t vocab = (mode & 2) ? 0 : 1000;
    sl_batch_view v;
    char err[256];
    err[0] = 0;
    int rc = sl_batch_view_open(&v, buf, size, vocab, flags, err, sizeof err);
    if (rc) {
        FUZZ_CHECK(err[0] != 0);
        FUZZ_CHECK(v.n_samples == 0 && v.tokens == NULL && v.size == 0);
    } else {
        FUZZ_CHECK(v.size <= size);
        int32_t limit = vocab ? vocab : v.vocab_size;
        for (uint32_t i = 0; i < v.n_samples; i++) {
            sl_batch_sample s;
            FUZZ_CHECK(sl_batch_view_sample(&v, i, &s) == 0);
            FUZZ_CHECK(s.prompt_len >= 1 && s.prompt_len <= s.n_tokens);
            FUZZ_CHECK(s.group_id == sl_sample_prompt_id(s.sample_id));
            FUZZ_CHECK(isfinite(s.reward));
            for (uint32_t k = 0; k < s.n_tokens; k++) {
                FUZZ_CHECK(s.tokens[k] >= 0 && s.tokens[k] < limit);
                FUZZ_CHECK(s.loss_mask[k] <= 1 && (k >= s.prompt_len || !s.loss_mask[k]));
                if (s.logprobs) FUZZ_CHECK(isfinite(s.logprobs[k]));
                if (s.advantages) FUZZ_CHECK(isfinite(s.advantages[k]));
            }
            if (s.label) (void)strlen(s.label);
            if (s.metadata) (void)strlen(s.metadata);
        }
        sl_batch_sample s;
        FUZZ_CHECK(sl_batch_view_sample(&v, v.n_samples, &s) == SL_ERANGE);
    }
    free(buf);
    return 0;
}
