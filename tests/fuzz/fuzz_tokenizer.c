/*
 * fuzz_tokenizer.c — libFuzzer target for tokenizer.json loading
 * (kernels/tokenizer.h: sl_tokenizer_load).
 *
 * Input: the bytes of a tokenizer.json, written to a memfd and loaded from
 * /proc/self/fd/N. Properties: loading never crashes or leaks; a refused
 * file leaves *out NULL with a message; a tokenizer that loads encodes a
 * few texts (including the input's own first bytes, any UTF-8 or not) to
 * ids inside its vocabulary, and those ids decode.
 * What it is not: a test of tokenization against the reference (the unit
 * test does that with real tokenizers).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const sl_tokenizer *t, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = sl_tokenizer_encode(t, text, len, &ids, &n);
    FUZZ_CHECK(rc == 0);
    int32_t vocab = sl_tokenizer_vocab_size(t);
    for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < vocab);
    char *back = NULL;
    size_t blen = 0;
    rc = sl_tokenizer_decode(t, ids, n, 0, &back, &blen);
    FUZZ_CHECK(rc == 0 && back != NULL && back[blen] == 0);
    free(back);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 256 * 1024) return 0;
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    char err[SL_TOKENIZER_ERRLEN];
    err[0] = 0;
    sl_tokenizer *t = (sl_tokenizer *)1;
    int rc = sl_tokenizer_load(path, &t, err, sizeof err);
    if (rc) {
        FUZZ_CHECK(t == NULL);
        FUZZ_CHECK(err[0] != 0);
    } else {
        FUZZ_CHECK(t != NULL);
        int32_t vocab = sl_tokenizer_vocab_size(t);
        FUZZ_CHECK(vocab > 0);
        static const char *texts[] = {"", "abc a b", " Hello, world! 123\n\n", "<x>ab<xy>\xe2\x96\x81\xc3\xa9",
                                      "\xff\xfe bad utf8 \xc3"};
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) roundtrip(t, texts[i], strlen(texts[i]));
        roundtrip(t, (const char *)data, size < 64 ? size : 64);
        for (int32_t id = 0; id < vocab && id < 64; id++) {
            size_t len = 0;
            (void)sl_tokenizer_id_to_token(t, id, &len);
            (void)sl_tokenizer_is_special(t, id);
        }
        (void)sl_tokenizer_kind(t);
        (void)sl_tokenizer_chat_template(t);
        sl_tokenizer_free(t);
    }
    close(fd);
    return 0;
}
