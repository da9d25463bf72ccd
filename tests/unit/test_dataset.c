/*
 * test_dataset.c — the prompt dataset: slime's keys, chat templates,
 * tokenizing, every kind of malformed line (strict: FILE:LINE error; skip:
 * counted), the seeded per-epoch shuffle (pinned to a Python rendering of
 * the documented algorithm), epochs, the data cursor's exact save/restore,
 * and the packed sample ids. The tiny arithmetic tokenizer (task_arith.h)
 * is written to a temporary folder; GSM8K's real files under $SL_SHARED are
 * loaded when present (those tests skip otherwise, and the program then
 * exits 77).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base.h"
#include "dataset.h"
#include "reward_builtin.h"
#include "task_arith.h"
#include "topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int missing_data;
static char tmpdir[64];
static char fixdir[512];
static sl_tokenizer *ctok; /* the character tokenizer */

static int setup(void **s) {
    (void)s;
    strcpy(tmpdir, "/tmp/sl_test_dataset.XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    char err[256];
    if (sl_arith_write_tokenizer(tmpdir, err, sizeof err)) return -1;
    if (sl_tokenizer_load(tmpdir, &ctok, err, sizeof err)) return -1;
    const char *root = getenv("SL_ROOT");
    snprintf(fixdir, sizeof fixdir, "%s/tests/fixtures/data", root ? root : ".");
    return 0;
}

static int teardown(void **s) {
    (void)s;
    sl_tokenizer_free(ctok);
    char p[128];
    const char *names[] = {"tokenizer.json", "tokenizer_config.json", "case.jsonl", "many.jsonl"};
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    return 0;
}

static void fixture(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", fixdir, name); }

static void write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* ------------------------------------------------------------ sample ids */

static void sample_ids_round_trip_through_packing_and_text(void **s) {
    (void)s;
    struct { uint32_t e; uint64_t i; uint32_t k; } cases[] = {
        {0, 0, 0}, {0, 123, 4}, {7, 99999, 4095}, {SL_SAMPLE_MAX_EPOCHS - 1, SL_SAMPLE_MAX_INDEX - 1, 4095},
        {1000000, 4000000000ull, 17},
    };
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        uint64_t id, back;
        assert_int_equal(sl_sample_id_pack(cases[c].e, cases[c].i, cases[c].k, &id), 0);
        assert_int_equal(sl_sample_epoch(id), cases[c].e);
        assert_true(sl_sample_index(id) == cases[c].i);
        assert_int_equal(sl_sample_sub(id), cases[c].k);
        uint64_t pid;
        assert_int_equal(sl_prompt_id_pack(cases[c].e, cases[c].i, &pid), 0);
        assert_true(sl_sample_prompt_id(id) == pid);
        char txt[SL_SAMPLE_ID_TEXT_MAX];
        size_t n = sl_sample_id_format(id, txt, sizeof txt);
        assert_true(n > 0 && n == strlen(txt));
        assert_int_equal(sl_sample_id_parse(txt, n, &back), 0);
        assert_true(back == id);
    }
    char txt[SL_SAMPLE_ID_TEXT_MAX];
    uint64_t id;
    assert_int_equal(sl_sample_id_pack(0, 123, 4, &id), 0);
    sl_sample_id_format(id, txt, sizeof txt);
    assert_string_equal(txt, "e0:i123:s4");
    sl_prompt_id_format(id, txt, sizeof txt);
    assert_string_equal(txt, "e0:i123");
    assert_int_equal(sl_sample_id_format(id, txt, 5), 0); /* too small: "" */
    assert_string_equal(txt, "");
}

static void sample_id_fields_over_their_widths_are_refused(void **s) {
    (void)s;
    uint64_t id = 42;
    assert_int_equal(sl_sample_id_pack(SL_SAMPLE_MAX_EPOCHS, 0, 0, &id), SL_ERANGE);
    assert_int_equal(sl_sample_id_pack(0, SL_SAMPLE_MAX_INDEX, 0, &id), SL_ERANGE);
    assert_int_equal(sl_sample_id_pack(0, 0, SL_SAMPLE_MAX_GROUP, &id), SL_ERANGE);
    assert_true(id == 42);
    const char *bad[] = {"", "e0:i1", "e0:i1:s4096", "e1048576:i0:s0", "e0:i4294967296:s0", "E0:i1:s1",
                         "e0:i1:s1 ", " e0:i1:s1", "e-1:i1:s1", "e0:i:s1", "e0:i1:s", "e0i1s1",
                         "e0:i99999999999999999999999:s0", "e0:i1:s1:x", "e+1:i1:s1"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        assert_int_equal(sl_sample_id_parse(bad[i], strlen(bad[i]), &id), SL_EINVAL);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void sample_ids_are_unique_across_epochs_indices_and_groups(void **s) {
    (void)s;
    enum { E = 4, I = 300, K = 8 };
    uint64_t *ids = malloc(sizeof(uint64_t) * E * I * K);
    assert_non_null(ids);
    size_t n = 0;
    for (uint32_t e = 0; e < E; e++)
        for (uint64_t i = 0; i < I; i++)
            for (uint32_t k = 0; k < K; k++) assert_int_equal(sl_sample_id_pack(e, i, k, &ids[n++]), 0);
    qsort(ids, n, sizeof *ids, cmp_u64);
    for (size_t i = 1; i < n; i++) assert_true(ids[i] != ids[i - 1]);
    free(ids);
}

/* ---------------------------------------------------------------- loading */

static void string_prompts_load_with_labels_metadata_and_line_numbers(void **s) {
    (void)s;
    char path[600], err[512];
    fixture(path, sizeof path, "prompts.jsonl");
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), 0);
    assert_int_equal(sl_dataset_size(ds), 4);
    const sl_prompt *p = sl_dataset_get(ds, 0);
    assert_string_equal(p->text, "What is 2+2?");
    assert_int_equal(p->text_len, 12);
    assert_string_equal(p->label, "4");
    assert_string_equal(p->metadata, "{\"source\":\"toy\",\"level\":1}");
    assert_null(p->ids);
    assert_null(p->response);
    assert_int_equal(p->line, 1);
    p = sl_dataset_get(ds, 1);
    assert_string_equal(p->label, "7"); /* a number label keeps its JSON text */
    assert_null(p->metadata);
    p = sl_dataset_get(ds, 2);
    assert_int_equal(p->line, 4); /* line 3 is blank */
    assert_null(p->metadata);     /* null metadata = none */
    p = sl_dataset_get(ds, 3);
    assert_string_equal(p->metadata, "[1,\"two\",{\"3\":true}]");
    assert_null(sl_dataset_get(ds, 4));
    const sl_dataset_stats *st = sl_dataset_stats_get(ds);
    assert_int_equal(st->lines, 5);
    assert_int_equal(st->blank, 1);
    assert_int_equal(st->kept, 4);
    assert_int_equal(st->skipped_total, 0);
    sl_dataset_free(ds);

    /* other keys: label_key empty means no labels */
    o.label_key = "";
    o.metadata_key = NULL;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), 0);
    assert_null(sl_dataset_get(ds, 0)->label);
    assert_null(sl_dataset_get(ds, 0)->metadata);
    sl_dataset_free(ds);
    sl_dataset_free(NULL);
}

static void chat_template_renders_message_lists_and_plain_strings_then_tokenizes(void **s) {
    (void)s;
    char path[600], err[512];
    fixture(path, sizeof path, "messages.jsonl");
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.apply_chat_template = 1;
    o.chat_format = SL_CHAT_CHATML;
    o.tok = ctok;
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), 0);
    assert_int_equal(sl_dataset_size(ds), 3);
    const char *want[] = {
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\n3*3?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\n10-4?<|im_end|>\n<|im_start|>assistant\n",
    };
    for (size_t i = 0; i < 3; i++) {
        const sl_prompt *p = sl_dataset_get(ds, i);
        assert_string_equal(p->text, want[i]);
        assert_non_null(p->ids);
        /* the character tokenizer: 3 specials per turn pair, else one id per character */
        char *back = NULL;
        assert_int_equal(sl_tokenizer_decode(ctok, p->ids, p->n_ids, 0, &back, NULL), 0);
        assert_string_equal(back, want[i]);
        free(back);
        assert_int_equal(p->ids[0], SL_ARITH_IM_START_ID);
    }
    /* one id per character, the two <|im_start|> and one <|im_end|> one id each */
    assert_int_equal(sl_dataset_get(ds, 1)->n_ids,
                     strlen(want[1]) - 2 * strlen("<|im_start|>") - strlen("<|im_end|>") + 3);
    sl_dataset_free(ds);

    /* Llama 3 renders too (the character tokenizer does not know its specials, which is fine untokenized) */
    o.chat_format = SL_CHAT_LLAMA3;
    o.tok = NULL;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), 0);
    assert_non_null(strstr(sl_dataset_get(ds, 1)->text, "<|start_header_id|>user<|end_header_id|>\n\n3*3?<|eot_id|>"));
    sl_dataset_free(ds);
}

/* Each case: a bad third line after two good ones; strict load must fail
 * naming FILE:3 and saying what is wrong. */
typedef struct bad_case {
    const char *line;
    const char *want; /* substring of the message */
    int chat;         /* apply_chat_template */
    size_t max_tokens;
    size_t max_line;
    int gsm8k;
    const char *response_key;
    sl_dataset_bad kind;
} bad_case;

static void every_malformed_line_kind_is_refused_naming_file_and_line(void **s) {
    (void)s;
    const bad_case cases[] = {
        {"{\"input\": \"x\", \"label\": ", "bad JSON", 0, 0, 0, 0, NULL, SL_DATASET_BAD_JSON},
        {"{\"input\": \"x\", \"label\": \"1\"} junk", "bad JSON", 0, 0, 0, 0, NULL, SL_DATASET_BAD_JSON},
        {"[1, 2]", "not a JSON object", 0, 0, 0, 0, NULL, SL_DATASET_BAD_JSON},
        {"\"just a string\"", "bad JSON", 0, 0, 0, 0, NULL, SL_DATASET_BAD_JSON},
        {"{\"input\": \"\xff\xfe\", \"label\": \"1\"}", "bad JSON", 0, 0, 0, 0, NULL, SL_DATASET_BAD_JSON},
        {"{\"input\": \"a\\u0000b\", \"label\": \"1\"}", "bad JSON", 0, 0, 0, 0, NULL, SL_DATASET_BAD_JSON},
        {"{\"label\": \"1\"}", "no key \"input\"", 0, 0, 0, 0, NULL, SL_DATASET_BAD_MISSING},
        {"{\"input\": \"x\"}", "no key \"label\"", 0, 0, 0, 0, NULL, SL_DATASET_BAD_MISSING},
        {"{\"input\": \"x\", \"label\": null}", "no key \"label\"", 0, 0, 0, 0, NULL, SL_DATASET_BAD_MISSING},
        {"{\"input\": 12, \"label\": \"1\"}", "must be a string or a list", 0, 0, 0, 0, NULL, SL_DATASET_BAD_TYPE},
        {"{\"input\": null, \"label\": \"1\"}", "must be a string or a list", 1, 0, 0, 0, NULL, SL_DATASET_BAD_TYPE},
        {"{\"input\": \"x\", \"label\": {\"a\": 1}}", "string or a number", 0, 0, 0, 0, NULL, SL_DATASET_BAD_TYPE},
        {"{\"input\": \"x\", \"label\": true}", "string or a number", 0, 0, 0, 0, NULL, SL_DATASET_BAD_TYPE},
        {"{\"input\": [{\"role\": \"user\", \"content\": \"x\"}], \"label\": \"1\"}", "apply_chat_template is off", 0,
         0, 0, 0, NULL, SL_DATASET_BAD_TYPE},
        {"{\"input\": [{\"role\": \"wizard\", \"content\": \"x\"}], \"label\": \"1\"}", "chat template refused", 1, 0,
         0, 0, NULL, SL_DATASET_BAD_TYPE},
        {"{\"input\": [{\"role\": \"tool\", \"content\": \"x\"}], \"label\": \"1\"}", "chat template refused", 1, 0, 0,
         0, NULL, SL_DATASET_BAD_TYPE},
        {"{\"input\": [{\"role\": \"user\"}], \"label\": \"1\"}", "\"input\"", 1, 0, 0, 0, NULL, SL_DATASET_BAD_TYPE},
        {"{\"input\": [{\"role\": \"user\", \"content\": 5}], \"label\": \"1\"}", "\"input\"", 1, 0, 0, 0, NULL,
         SL_DATASET_BAD_TYPE},
        {"{\"input\": [], \"label\": \"1\"}", "empty message list", 1, 0, 0, 0, NULL, SL_DATASET_BAD_TYPE},
        {"{\"input\": [7], \"label\": \"1\"}", "\"input\"", 1, 0, 0, 0, NULL, SL_DATASET_BAD_TYPE},
        {"{\"input\": \"a long prompt here\", \"label\": \"1\"}", "over the limit of 10", 0, 10, 0, 0, NULL,
         SL_DATASET_BAD_LONG},
        {"{\"input\": \"ok\", \"label\": \"1\", \"pad\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", "over max_line_bytes", 0,
         0, 50, 0, NULL, SL_DATASET_BAD_LONG},
        {"{\"input\": \"x\", \"label\": \"no marker 12\"}", "no \"#### N\" answer", 0, 0, 0, 1, NULL,
         SL_DATASET_BAD_LABEL},
        {"{\"input\": \"x\", \"label\": \"####   \"}", "no \"#### N\" answer", 0, 0, 0, 1, NULL, SL_DATASET_BAD_LABEL},
        {"{\"input\": \"x\", \"label\": \"1\"}", "no key \"response\"", 0, 0, 0, 0, "response",
         SL_DATASET_BAD_MISSING},
        {"{\"input\": \"x\", \"label\": \"1\", \"response\": [1]}", "\"response\" must be a string", 0, 0, 0, 0,
         "response", SL_DATASET_BAD_TYPE},
    };
    char path[128];
    snprintf(path, sizeof path, "%s/case.jsonl", tmpdir);
    for (size_t c = 0; c < SL_ARRAY_LEN(cases); c++) {
        const bad_case *bc = &cases[c];
        char text[1024];
        const char *good = bc->gsm8k ? "{\"input\": \"ok\", \"label\": \"#### 1\", \"response\": \"r\"}"
                                     : "{\"input\": \"ok\", \"label\": \"1\", \"response\": \"r\"}";
        int n = snprintf(text, sizeof text, "%s\n%s\n%s\n%s\n", good, good, bc->line, good);
        write_file(path, text, (size_t)n);
        sl_dataset_opts o;
        sl_dataset_opts_init(&o);
        o.apply_chat_template = bc->chat;
        o.tok = ctok;
        o.max_prompt_tokens = bc->max_tokens;
        if (bc->max_line) o.max_line_bytes = bc->max_line;
        o.label_gsm8k = bc->gsm8k;
        o.response_key = bc->response_key;
        char err[512], want_prefix[200];
        sl_dataset *ds = (sl_dataset *)&o; /* must be reset to NULL */
        int rc = sl_dataset_load(path, &o, &ds, err, sizeof err);
        if (rc != SL_EINVAL || !strstr(err, bc->want)) print_error("case %zu: rc %d err \"%s\"\n", c, rc, err);
        assert_int_equal(rc, SL_EINVAL);
        assert_null(ds);
        snprintf(want_prefix, sizeof want_prefix, "%s:3: ", path);
        assert_memory_equal(err, want_prefix, strlen(want_prefix));
        assert_non_null(strstr(err, bc->want));

        /* the same text from memory names the given name */
        rc = sl_dataset_load_text("mem.jsonl", text, (size_t)n, &o, &ds, err, sizeof err);
        assert_int_equal(rc, SL_EINVAL);
        assert_memory_equal(err, "mem.jsonl:3: ", 13);

        /* skip mode keeps the three good lines and counts this kind */
        o.skip_bad = 1;
        assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), 0);
        assert_int_equal(sl_dataset_size(ds), 3);
        const sl_dataset_stats *st = sl_dataset_stats_get(ds);
        if (st->skipped[bc->kind] != 1) print_error("case %zu: kind %d not counted\n", c, bc->kind);
        assert_int_equal(st->skipped[bc->kind], 1);
        assert_int_equal(st->skipped_total, 1);
        assert_int_equal(sl_dataset_get(ds, 2)->line, 4);
        sl_dataset_free(ds);
    }
}

static void skip_mode_counts_each_kind_and_strict_mode_stops_at_the_first(void **s) {
    (void)s;
    char path[600], err[512];
    fixture(path, sizeof path, "mixed_bad.jsonl");
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), SL_EINVAL);
    char want[640];
    snprintf(want, sizeof want, "%s:2: bad JSON", path);
    assert_memory_equal(err, want, strlen(want));

    o.skip_bad = 1;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), 0);
    assert_int_equal(sl_dataset_size(ds), 3);
    const sl_dataset_stats *st = sl_dataset_stats_get(ds);
    assert_int_equal(st->lines, 12);
    assert_int_equal(st->blank, 1);
    assert_int_equal(st->skipped[SL_DATASET_BAD_JSON], 3);
    assert_int_equal(st->skipped[SL_DATASET_BAD_MISSING], 2);
    assert_int_equal(st->skipped[SL_DATASET_BAD_TYPE], 3);
    assert_int_equal(st->skipped_total, 8);
    assert_string_equal(sl_dataset_get(ds, 0)->text, "ok 1");
    assert_string_equal(sl_dataset_get(ds, 1)->text, "ok 2");
    assert_string_equal(sl_dataset_get(ds, 1)->metadata, "{\"k\":\"v\"}");
    assert_string_equal(sl_dataset_get(ds, 2)->text, "ok 4");
    assert_int_equal(sl_dataset_get(ds, 2)->line, 12);
    sl_dataset_free(ds);
}

static void empty_missing_and_all_bad_files_are_refused(void **s) {
    (void)s;
    char err[512], path[128];
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_load("/nonexistent/x.jsonl", &o, &ds, err, sizeof err), SL_ENOENT);
    assert_non_null(strstr(err, "/nonexistent/x.jsonl: cannot open"));
    snprintf(path, sizeof path, "%s/case.jsonl", tmpdir);
    write_file(path, "\n  \n\t\n", 6);
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "no prompts"));
    write_file(path, "x\ny\n", 4);
    o.skip_bad = 1;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "no prompts (2 lines, 2 skipped"));
    assert_int_equal(sl_dataset_load_text("t", "", 0, &o, &ds, err, sizeof err), SL_EINVAL);
    assert_null(ds);
    /* a file without a final newline and with CRLF endings still loads */
    write_file(path, "{\"input\":\"a\",\"label\":\"1\"}\r\n{\"input\":\"b\",\"label\":\"2\"}", 52);
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), 0);
    assert_int_equal(sl_dataset_size(ds), 2);
    assert_string_equal(sl_dataset_get(ds, 1)->label, "2");
    sl_dataset_free(ds);
    /* bad options */
    o.num_epoch = 0;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "num_epoch"));
    o.num_epoch = 1;
    o.input_key = "";
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), SL_EINVAL);
}

static void binary_garbage_never_crashes_the_loader(void **s) {
    (void)s;
    uint64_t st = 99;
    char buf[512], err[256];
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.skip_bad = 1;
    o.apply_chat_template = 1;
    o.tok = ctok;
    const char *seed_line = "{\"input\": [{\"role\": \"user\", \"content\": \"hi\"}], \"label\": 3, \"metadata\": {}}\n";
    for (int it = 0; it < 300; it++) {
        size_t n = strlen(seed_line);
        memcpy(buf, seed_line, n);
        for (int k = 0; k < 1 + it % 6; k++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            buf[(st >> 33) % n] = (char)(st >> 20);
        }
        sl_dataset *ds = NULL;
        int rc = sl_dataset_load_text("fuzz", buf, n, &o, &ds, err, sizeof err);
        assert_true(rc == 0 || rc == SL_EINVAL);
        assert_true((rc == 0) == (ds != NULL));
        sl_dataset_free(ds);
    }
}

/* ------------------------------------------------------------------ gsm8k */

static void gsm8k_labels_are_the_numbers_after_the_marker(void **s) {
    (void)s;
    char path[600], err[512];
    fixture(path, sizeof path, "gsm8k_tiny.jsonl");
    sl_dataset_opts o;
    sl_dataset_opts_gsm8k(&o);
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), 0);
    assert_int_equal(sl_dataset_size(ds), 3);
    assert_string_equal(sl_dataset_get(ds, 0)->label, "7");
    assert_string_equal(sl_dataset_get(ds, 1)->label, "120");
    assert_string_equal(sl_dataset_get(ds, 2)->label, "-3");
    assert_non_null(strstr(sl_dataset_get(ds, 0)->text, "Tom has 3 apples"));
    double score = 0;
    assert_int_equal(sl_reward_gsm8k("so #### 120", 11, sl_dataset_get(ds, 1)->label, NULL, &score), 0);
    assert_true(score == 1.0);
    sl_dataset_free(ds);
}

static int shared_tokenizer(const char *name, sl_tokenizer **tok) {
    const char *sh = getenv("SL_SHARED");
    char p[600], err[256];
    if (!sh) return -1;
    snprintf(p, sizeof p, "%s/data/tokenizers/%s", sh, name);
    if (access(p, R_OK)) return -1;
    return sl_tokenizer_load(p, tok, err, sizeof err) ? -1 : 0;
}

static void gsm8k_real_files_load_with_every_label_graded_correct(void **s) {
    (void)s;
    const char *sh = getenv("SL_SHARED");
    char test[600], train[600], err[512];
    snprintf(test, sizeof test, "%s/data/gsm8k/test.jsonl", sh ? sh : "/nonexistent");
    snprintf(train, sizeof train, "%s/data/gsm8k/train.jsonl", sh ? sh : "/nonexistent");
    sl_tokenizer *qtok = NULL;
    if (!sh || access(test, R_OK) || access(train, R_OK) || shared_tokenizer("qwen3", &qtok)) {
        missing_data = 1;
        skip();
    }
    sl_dataset_opts o;
    sl_dataset_opts_gsm8k(&o);
    o.apply_chat_template = 1;
    o.tok = qtok;
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_load(test, &o, &ds, err, sizeof err), 0);
    assert_int_equal(sl_dataset_size(ds), 1319);
    assert_string_equal(sl_dataset_get(ds, 0)->label, "18");
    const sl_dataset_stats *st = sl_dataset_stats_get(ds);
    assert_true(st->max_prompt_tokens_seen > 50 && st->max_prompt_tokens_seen < 1000);
    for (size_t i = 0; i < sl_dataset_size(ds); i++) {
        const sl_prompt *p = sl_dataset_get(ds, i);
        char resp[128];
        int n = snprintf(resp, sizeof resp, "The answer.\n#### %s", p->label);
        double score = 0;
        assert_int_equal(sl_reward_gsm8k(resp, (size_t)n, p->label, NULL, &score), 0);
        if (score != 1.0) print_error("line %u label \"%s\" not graded\n", p->line, p->label);
        assert_true(score == 1.0);
        assert_true(p->n_ids > 10);
        assert_memory_equal(p->text, "<|im_start|>user\n", 17);
    }
    sl_dataset_free(ds);
    o.tok = NULL;
    o.apply_chat_template = 0;
    assert_int_equal(sl_dataset_load(train, &o, &ds, err, sizeof err), 0);
    assert_int_equal(sl_dataset_size(ds), 7473);
    assert_string_equal(sl_dataset_get(ds, 0)->label, "72");
    sl_dataset_free(ds);
    sl_tokenizer_free(qtok);
}

static void options_come_from_the_topology_data_section(void **s) {
    (void)s;
    const char *text = "[run]\nseed = 77\n[data]\ninput_key = question\nlabel_key = answer\n"
                       "apply_chat_template = true\nrollout_shuffle = true\nnum_epoch = 3\n[actor e]\nkind = echo\n";
    sl_topology *topo = NULL;
    assert_int_equal(sl_topology_load_string("t.conf", text, NULL, 0, &topo, stderr), 0);
    sl_dataset_opts o;
    sl_dataset_opts_from_topology(&o, topo);
    assert_string_equal(o.input_key, "question");
    assert_string_equal(o.label_key, "answer");
    assert_string_equal(o.metadata_key, "metadata"); /* the default */
    assert_true(o.apply_chat_template && o.shuffle);
    assert_int_equal(o.num_epoch, 3);
    assert_int_equal(o.seed, 77);
    assert_int_equal(o.label_required, 1);
    sl_topology_free(topo);
}

/* ---------------------------------------------------------------- order */

static sl_dataset *numbered(size_t n, int shuffle, uint64_t seed, uint32_t epochs) {
    size_t cap = n * 40 + 1;
    char *text = malloc(cap), err[256];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += (size_t)snprintf(text + len, cap - len, "{\"input\":\"p%zu\",\"label\":\"%zu\"}\n", i, i);
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.shuffle = shuffle;
    o.seed = seed;
    o.num_epoch = epochs;
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_load_text("numbered", text, len, &o, &ds, err, sizeof err), 0);
    free(text);
    return ds;
}

static void shuffle_follows_the_documented_splitmix64_fisher_yates(void **s) {
    (void)s;
    /* from a Python rendering of the algorithm in dataset.h */
    const uint64_t e0[10] = {4, 6, 5, 2, 7, 0, 1, 8, 9, 3}, e1[10] = {4, 5, 6, 9, 2, 0, 7, 8, 1, 3};
    sl_dataset *ds = numbered(10, 1, 1234, 2);
    for (uint64_t i = 0; i < 10; i++) {
        uint64_t idx;
        assert_int_equal(sl_dataset_index_at(ds, 0, i, &idx), 0);
        assert_true(idx == e0[i]);
        assert_int_equal(sl_dataset_index_at(ds, 1, i, &idx), 0);
        assert_true(idx == e1[i]);
    }
    uint64_t idx;
    assert_int_equal(sl_dataset_index_at(ds, 0, 10, &idx), SL_ERANGE);
    sl_dataset_free(ds);
}

static void shuffle_is_a_permutation_reproducible_by_seed_and_new_each_epoch(void **s) {
    (void)s;
    enum { N = 500 };
    sl_dataset *a = numbered(N, 1, 7, 3), *b = numbered(N, 1, 7, 3), *c = numbered(N, 1, 8, 3), *plain = numbered(N, 0, 7, 3);
    int diff_epoch = 0, diff_seed = 0;
    for (uint32_t e = 0; e < 3; e++) {
        char seen[N] = {0};
        for (uint64_t i = 0; i < N; i++) {
            uint64_t x, y, z, w, x1;
            assert_int_equal(sl_dataset_index_at(a, e, i, &x), 0);
            assert_int_equal(sl_dataset_index_at(b, e, i, &y), 0);
            assert_int_equal(sl_dataset_index_at(c, e, i, &z), 0);
            assert_int_equal(sl_dataset_index_at(plain, e, i, &w), 0);
            assert_int_equal(sl_dataset_index_at(a, (e + 1) % 3, i, &x1), 0); /* another epoch in between */
            assert_int_equal(sl_dataset_index_at(a, e, i, &x), 0);
            assert_true(x < N && !seen[x]);
            seen[x] = 1;
            assert_true(x == y);
            assert_true(w == i);
            diff_seed += x != z;
            diff_epoch += x != x1;
        }
    }
    assert_true(diff_seed > N);
    assert_true(diff_epoch > N);
    sl_dataset_free(a);
    sl_dataset_free(b);
    sl_dataset_free(c);
    sl_dataset_free(plain);
}

static void next_straddles_epochs_and_ends_after_num_epoch(void **s) {
    (void)s;
    sl_dataset *ds = numbered(5, 1, 3, 2);
    sl_data_cursor cur = {0, 0};
    uint64_t ids[3];
    size_t got, total = 0;
    int count[2][5] = {{0}};
    size_t gots[8], ng = 0;
    do {
        assert_int_equal(sl_dataset_next(ds, &cur, ids, 3, &got), 0);
        gots[ng++] = got;
        for (size_t k = 0; k < got; k++) {
            uint32_t e = sl_sample_epoch(ids[k]);
            uint64_t i = sl_sample_index(ids[k]);
            assert_true(e < 2 && i < 5 && sl_sample_sub(ids[k]) == 0);
            count[e][i]++;
            assert_non_null(sl_dataset_get_id(ds, ids[k]));
        }
        total += got;
    } while (got > 0 && ng < 8);
    assert_int_equal(total, 10);
    assert_int_equal(ng, 5); /* 3, 3, 3, 1, 0 */
    assert_int_equal(gots[3], 1);
    assert_int_equal(gots[4], 0);
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < 5; i++) assert_int_equal(count[e][i], 1);
    assert_int_equal(cur.epoch, 2);
    assert_int_equal(cur.position, 0);
    /* a cursor beyond the data is refused */
    sl_data_cursor bad = {0, 5};
    assert_int_equal(sl_dataset_next(ds, &bad, ids, 3, &got), SL_EINVAL);
    sl_dataset_free(ds);
}

static void cursor_saved_and_restored_gives_the_same_continuation(void **s) {
    (void)s;
    enum { N = 37, FIRST = 50, THEN = 40 };
    sl_dataset *a = numbered(N, 1, 99, 4);
    sl_data_cursor cur = {0, 0};
    uint64_t ids[FIRST], cont_a[THEN], cont_b[THEN];
    size_t got;
    assert_int_equal(sl_dataset_next(a, &cur, ids, FIRST, &got), 0);
    assert_int_equal(got, FIRST);
    char saved[160];
    size_t n = sl_data_cursor_format(a, &cur, saved, sizeof saved);
    assert_true(n > 0 && n == strlen(saved));
    assert_string_equal(saved, "{\"epoch\":1,\"position\":13,\"size\":37,\"seed\":\"99\",\"shuffle\":true,\"num_epoch\":4}");
    assert_int_equal(sl_dataset_next(a, &cur, cont_a, THEN, &got), 0);
    assert_int_equal(got, THEN);

    sl_dataset *b = numbered(N, 1, 99, 4);
    sl_data_cursor rc = {0, 0};
    char err[256];
    assert_int_equal(sl_data_cursor_parse(b, saved, n, &rc, err, sizeof err), 0);
    assert_int_equal(rc.epoch, 1);
    assert_int_equal(rc.position, 13);
    assert_int_equal(sl_dataset_next(b, &rc, cont_b, THEN, &got), 0);
    assert_int_equal(got, THEN);
    assert_memory_equal(cont_a, cont_b, sizeof cont_a);
    assert_true(rc.epoch == cur.epoch && rc.position == cur.position);

    /* another order is refused as stale, malformed text as invalid */
    sl_dataset *c = numbered(N, 1, 100, 4), *d = numbered(N + 1, 1, 99, 4), *e = numbered(N, 0, 99, 4);
    sl_data_cursor keep = {7, 7};
    assert_int_equal(sl_data_cursor_parse(c, saved, n, &keep, err, sizeof err), SL_ESTALE);
    assert_non_null(strstr(err, "another dataset order"));
    assert_int_equal(sl_data_cursor_parse(d, saved, n, &keep, err, sizeof err), SL_ESTALE);
    assert_int_equal(sl_data_cursor_parse(e, saved, n, &keep, err, sizeof err), SL_ESTALE);
    const char *bad[] = {
        "", "{", "[]", "{\"epoch\":1}",
        "{\"epoch\":1,\"position\":37,\"size\":37,\"seed\":\"99\",\"shuffle\":true,\"num_epoch\":4}",
        "{\"epoch\":-1,\"position\":1,\"size\":37,\"seed\":\"99\",\"shuffle\":true,\"num_epoch\":4}",
        "{\"epoch\":1048576,\"position\":1,\"size\":37,\"seed\":\"99\",\"shuffle\":true,\"num_epoch\":4}",
        "{\"epoch\":1,\"position\":1,\"size\":37,\"seed\":99,\"shuffle\":true,\"num_epoch\":4}",
        "{\"epoch\":1,\"position\":1,\"size\":37,\"seed\":\"9x\",\"shuffle\":true,\"num_epoch\":4}",
        "{\"epoch\":1,\"position\":1,\"size\":37,\"seed\":\"-99\",\"shuffle\":true,\"num_epoch\":4}",
        "{\"epoch\":1,\"position\":1.5,\"size\":37,\"seed\":\"99\",\"shuffle\":true,\"num_epoch\":4}",
        "{\"epoch\":1,\"position\":1,\"size\":37,\"seed\":\"99\",\"shuffle\":1,\"num_epoch\":4}",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        assert_int_equal(sl_data_cursor_parse(b, bad[i], strlen(bad[i]), &keep, err, sizeof err), SL_EINVAL);
    assert_int_equal(keep.epoch, 7);
    assert_int_equal(keep.position, 7);
    assert_int_equal(sl_data_cursor_format(a, &cur, saved, 10), 0);
    sl_dataset_free(a);
    sl_dataset_free(b);
    sl_dataset_free(c);
    sl_dataset_free(d);
    sl_dataset_free(e);
}

int main(void) {
    sl_log_init("test_dataset", SL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sample_ids_round_trip_through_packing_and_text),
        cmocka_unit_test(sample_id_fields_over_their_widths_are_refused),
        cmocka_unit_test(sample_ids_are_unique_across_epochs_indices_and_groups),
        cmocka_unit_test(string_prompts_load_with_labels_metadata_and_line_numbers),
        cmocka_unit_test(chat_template_renders_message_lists_and_plain_strings_then_tokenizes),
        cmocka_unit_test(every_malformed_line_kind_is_refused_naming_file_and_line),
        cmocka_unit_test(skip_mode_counts_each_kind_and_strict_mode_stops_at_the_first),
        cmocka_unit_test(empty_missing_and_all_bad_files_are_refused),
        cmocka_unit_test(binary_garbage_never_crashes_the_loader),
        cmocka_unit_test(gsm8k_labels_are_the_numbers_after_the_marker),
        cmocka_unit_test(gsm8k_real_files_load_with_every_label_graded_correct),
        cmocka_unit_test(options_come_from_the_topology_data_section),
        cmocka_unit_test(shuffle_follows_the_documented_splitmix64_fisher_yates),
        cmocka_unit_test(shuffle_is_a_permutation_reproducible_by_seed_and_new_each_epoch),
        cmocka_unit_test(next_straddles_epochs_and_ends_after_num_epoch),
        cmocka_unit_test(cursor_saved_and_restored_gives_the_same_continuation),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    if (failed) return 1;
    if (missing_data) {
        printf("($SL_SHARED GSM8K files or tokenizer absent: that test skipped)\n");
        return SL_EXIT_SKIP;
    }
    return 0;
}
