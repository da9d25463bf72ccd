/*
 * fuzz_dataset.c — libFuzzer target for prompt dataset lines
 * (actors/dataset.h: sl_dataset_load_text).
 *
 * Input: byte 0 picks options (strict or skip mode, chat template on/off
 * and its format, GSM8K labels, required labels, a tiny tokenizer with a
 * prompt-token limit, shuffle, epochs); the rest is the JSON-lines text.
 * Properties: loading never crashes or leaks; a refusal gives a message;
 * a loaded dataset's records are readable, its stats add up, the order
 * functions stay in range and a cursor survives format + parse.
 * What it is not: a test of the exact records (test_dataset does that).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "fuzz_util.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sl_tokenizer *tok;

/* A byte-level BPE vocabulary of a few letters (the unit test's TINY). */
static const char TINY[] =
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"abc\": 4,"
    " \"cc\": 5, \"\\u0120\": 6, \"\\u0120a\": 7}, \"merges\": [\"a b\", [\"ab\", \"c\"], \"c c\", \"\\u0120 a\"]},"
    " \"added_tokens\": [{\"id\": 8, \"content\": \"<x>\", \"special\": true, \"normalized\": false}],"
    " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true},"
    " \"decoder\": {\"type\": \"ByteLevel\"}}";

static void load_tok(void) {
    char path[64];
    int fd = fuzz_memfd((const uint8_t *)TINY, sizeof TINY - 1, path, sizeof path);
    char err[SL_TOKENIZER_ERRLEN];
    if (sl_tokenizer_load(path, &tok, err, sizeof err)) {
        fprintf(stderr, "fuzz_dataset: tiny tokenizer: %s\n", err);
        abort();
    }
    close(fd);
}

static void release(void) { sl_tokenizer_free(tok); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 64 * 1024) return 0;
    if (!tok) {
        load_tok();
        atexit(release);
    }
    unsigned m = data[0];
    data++;
    size--;
    sl_dataset_opts o;
    if (m & 0x80) sl_dataset_opts_gsm8k(&o);
    else sl_dataset_opts_init(&o);
    o.skip_bad = m & 1;
    o.apply_chat_template = (m >> 1) & 1;
    if (o.apply_chat_template && (m & 0x40)) o.chat_format = SL_CHAT_LLAMA3;
    o.label_required = (m >> 2) & 1;
    if (m & 8) {
        o.tok = tok;
        o.max_prompt_tokens = (m & 0x10) ? 8 : 0;
    }
    o.shuffle = (m >> 5) & 1;
    o.seed = m;
    o.num_epoch = 1 + ((m >> 4) & 1);
    if (m & 0x20) o.max_line_bytes = 64;
    char *text = malloc(size ? size : 1);
    if (!text) abort();
    if (size) memcpy(text, data, size);
    sl_dataset *ds = (sl_dataset *)1;
    char err[512];
    err[0] = 0;
    int rc = sl_dataset_load_text("fuzz.jsonl", text, size, &o, &ds, err, sizeof err);
    if (rc) {
        FUZZ_CHECK(ds == NULL);
        FUZZ_CHECK(err[0] != 0);
    } else {
        size_t n = sl_dataset_size(ds);
        FUZZ_CHECK(n > 0);
        const sl_dataset_stats *st = sl_dataset_stats_get(ds);
        FUZZ_CHECK(st->kept == n);
        uint64_t sk = 0;
        for (int k = 0; k < SL_DATASET_BAD_KINDS; k++) sk += st->skipped[k];
        FUZZ_CHECK(sk == st->skipped_total);
        FUZZ_CHECK(st->kept + st->blank + st->skipped_total <= st->lines);
        for (size_t i = 0; i < n; i++) {
            const sl_prompt *p = sl_dataset_get(ds, i);
            FUZZ_CHECK(p && p->text && strlen(p->text) == p->text_len);
            if (o.tok) FUZZ_CHECK(p->n_ids == 0 || p->ids != NULL);
            for (size_t k = 0; k < p->n_ids; k++)
                FUZZ_CHECK(p->ids[k] >= 0 && p->ids[k] < sl_tokenizer_vocab_size(tok));
            if (o.max_prompt_tokens) FUZZ_CHECK(p->n_ids <= o.max_prompt_tokens);
            if (p->label) (void)strlen(p->label);
            if (p->metadata) (void)strlen(p->metadata);
        }
        FUZZ_CHECK(sl_dataset_get(ds, n) == NULL);
        sl_data_cursor cur = {0, 0};
        uint64_t ids[7];
        size_t got = 0;
        for (int step = 0; step < 4; step++) {
            FUZZ_CHECK(sl_dataset_next(ds, &cur, ids, 7, &got) == 0);
            for (size_t k = 0; k < got; k++) FUZZ_CHECK(sl_dataset_get_id(ds, ids[k]) != NULL);
        }
        char buf[160];
        size_t len = sl_data_cursor_format(ds, &cur, buf, sizeof buf);
        FUZZ_CHECK(len > 0);
        sl_data_cursor back = {0, 0};
        FUZZ_CHECK(sl_data_cursor_parse(ds, buf, len, &back, err, sizeof err) == 0);
        FUZZ_CHECK(back.epoch == cur.epoch && back.position == cur.position);
        /* the input parsed as a cursor: any answer, no crash */
        (void)sl_data_cursor_parse(ds, text, size < 256 ? size : 256, &back, err, sizeof err);
        sl_dataset_free(ds);
    }
    free(text);
    return 0;
}
