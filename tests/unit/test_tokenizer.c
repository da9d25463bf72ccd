/*
 * test_tokenizer.c — the BPE tokenizer against Hugging Face `tokenizers`:
 * every text of tests/fixtures/tokenizer/texts.jsonl must encode to exactly
 * the reference ids of ids_NAME.jsonl (made by make_tokenizer_fixtures.py)
 * for qwen3, llama3, llama2 and gpt2, and the reference ids must decode to
 * decoded_NAME.jsonl. Also: hostile tokenizer files are refused cleanly, a
 * tiny hand-made tokenizer.json behaves as worked out by hand, and encoding
 * from several threads at once gives the same ids.
 *
 * The real files come from $SL_SHARED/data/tokenizers; when they or the
 * reference fixtures are absent those tests are skipped and the program
 * exits 77 (after running the tests that need nothing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base.h"
#include "tokenizer.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int missing_data;
static char tmpdir[256];

/* --------------------------------------------------------------- paths */

static const char *root_dir(void) {
    const char *r = getenv("SL_ROOT");
    return r && *r ? r : ".";
}

static int tok_dir(const char *name, char *out, size_t n) {
    const char *sh = getenv("SL_SHARED");
    char def[1024];
    if (!sh || !*sh) {
        snprintf(def, sizeof def, "%s/../shared", root_dir());
        sh = def;
    }
    snprintf(out, n, "%s/data/tokenizers/%s", sh, name);
    struct stat st;
    return stat(out, &st) == 0 && S_ISDIR(st.st_mode);
}

static void fixture_path(const char *file, char *out, size_t n) {
    snprintf(out, n, "%s/tests/fixtures/tokenizer/%s", root_dir(), file);
}

/* Lines of a JSON-lines file, each parsed; NULL when the file is absent. */
static json_t *read_jsonl(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    json_t *arr = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)len, 0, &je);
        if (!j) {
            fprintf(stderr, "%s: bad line: %s\n", path, je.text);
            json_decref(arr);
            arr = NULL;
            break;
        }
        json_array_append_new(arr, j);
    }
    free(line);
    fclose(f);
    return arr;
}

static sl_tokenizer *load_real(const char *name) {
    char dir[1200], err[SL_TOKENIZER_ERRLEN];
    if (!tok_dir(name, dir, sizeof dir)) return NULL;
    sl_tokenizer *t = NULL;
    int rc = sl_tokenizer_load(dir, &t, err, sizeof err);
    if (rc) fail_msg("loading %s: %s", dir, err);
    return t;
}

static int encode_str(const sl_tokenizer *t, const char *s, int32_t **ids, size_t *n) {
    return sl_tokenizer_encode(t, s, strlen(s), ids, n);
}

/* ------------------------------------------------ reference fixtures */

static void check_fixtures(const char *name) {
    char p1[1200], p2[1200], p3[1200];
    fixture_path("texts.jsonl", p1, sizeof p1);
    snprintf(p2, sizeof p2, "%s/tests/fixtures/tokenizer/ids_%s.jsonl", root_dir(), name);
    snprintf(p3, sizeof p3, "%s/tests/fixtures/tokenizer/decoded_%s.jsonl", root_dir(), name);
    sl_tokenizer *t = load_real(name);
    json_t *texts = read_jsonl(p1), *ref = read_jsonl(p2), *dec = read_jsonl(p3);
    if (!t || !texts || !ref) {
        missing_data = 1;
        sl_tokenizer_free(t);
        json_decref(texts);
        json_decref(ref);
        json_decref(dec);
        skip();
    }
    size_t n = json_array_size(texts);
    assert_int_equal(n, json_array_size(ref));
    assert_true(n >= 1000);
    size_t ok = 0, dec_ok = 0, dec_n = 0, shown = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *tx = json_object_get(json_array_get(texts, i), "text");
        json_t *ids = json_object_get(json_array_get(ref, i), "ids");
        assert_true(json_is_string(tx) && json_is_array(ids));
        int32_t *mine;
        size_t nm;
        assert_int_equal(sl_tokenizer_encode(t, json_string_value(tx), json_string_length(tx), &mine, &nm), 0);
        size_t nr = json_array_size(ids), d = 0;
        while (d < nm && d < nr && mine[d] == (int32_t)json_integer_value(json_array_get(ids, d))) d++;
        if (d == nm && d == nr) {
            ok++;
        } else if (shown++ < 5) {
            printf("  %s text %zu \"%.60s\": differs at token %zu (ours %zu ids, reference %zu)\n", name, i,
                   json_string_value(tx), d, nm, nr);
            printf("    ours:");
            for (size_t k = d; k < nm && k < d + 8; k++) printf(" %d", mine[k]);
            printf("\n    ref: ");
            for (size_t k = d; k < nr && k < d + 8; k++) printf(" %lld", (long long)json_integer_value(json_array_get(ids, k)));
            printf("\n");
        }
        free(mine);
        /* decoding the reference ids */
        if (dec && i < json_array_size(dec)) {
            int32_t *rid = malloc((nr + 1) * sizeof *rid);
            assert_non_null(rid);
            for (size_t k = 0; k < nr; k++) rid[k] = (int32_t)json_integer_value(json_array_get(ids, k));
            json_t *row = json_array_get(dec, i);
            for (int skip_special = 0; skip_special < 2; skip_special++) {
                json_t *want = json_object_get(row, skip_special ? "text_skip" : "text");
                char *s;
                size_t sl;
                assert_int_equal(sl_tokenizer_decode(t, rid, nr, skip_special, &s, &sl), 0);
                dec_n++;
                if (json_is_string(want) && sl == json_string_length(want) && !memcmp(s, json_string_value(want), sl))
                    dec_ok++;
                else if (shown++ < 8)
                    printf("  %s decode text %zu (skip_special=%d): ours \"%.60s\" reference \"%.60s\"\n", name, i,
                           skip_special, s, json_string_value(want));
                free(s);
            }
            free(rid);
        }
    }
    printf("  %s: %zu/%zu texts encode to the reference ids; %zu/%zu decodings match\n", name, ok, n, dec_ok, dec_n);
    json_decref(texts);
    json_decref(ref);
    json_decref(dec);
    sl_tokenizer_free(t);
    assert_int_equal(ok, n);
    assert_int_equal(dec_ok, dec_n);
    if (!dec) missing_data = 1;
}

static void qwen3_matches_hf_on_every_fixture_text(void **s) { (void)s; check_fixtures("qwen3"); }
static void llama3_matches_hf_on_every_fixture_text(void **s) { (void)s; check_fixtures("llama3"); }
static void llama2_matches_hf_on_every_fixture_text(void **s) { (void)s; check_fixtures("llama2"); }
static void gpt2_matches_hf_on_every_fixture_text(void **s) { (void)s; check_fixtures("gpt2"); }

/* ------------------------------------------------- known ids, real files */

static void expect_ids(const sl_tokenizer *t, const char *text, const int32_t *want, size_t nw) {
    int32_t *ids;
    size_t n;
    assert_int_equal(encode_str(t, text, &ids, &n), 0);
    assert_int_equal(n, nw);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
    free(ids);
}

static void real_tokenizers_give_well_known_ids(void **s) {
    (void)s;
    sl_tokenizer *q = load_real("qwen3"), *l3 = load_real("llama3"), *g = load_real("gpt2"), *l2 = load_real("llama2");
    if (!q || !l3 || !g || !l2) {
        missing_data = 1;
        sl_tokenizer_free(q); sl_tokenizer_free(l3); sl_tokenizer_free(g); sl_tokenizer_free(l2);
        skip();
    }
    expect_ids(q, "Hello world", (int32_t[]){9707, 1879}, 2);
    expect_ids(q, "<|im_start|>user\n", (int32_t[]){151644, 872, 198}, 3);
    expect_ids(l3, "Hello world", (int32_t[]){9906, 1917}, 2);
    expect_ids(l3, "<|begin_of_text|>", (int32_t[]){128000}, 1);
    expect_ids(g, "Hello world", (int32_t[]){15496, 995}, 2);
    expect_ids(g, "a<|endoftext|>", (int32_t[]){64, 50256}, 2);
    /* Llama 2: each stretch between added tokens gets the "▁" prefix */
    expect_ids(l2, "<s>", (int32_t[]){1}, 1);
    assert_int_equal(sl_tokenizer_vocab_size(q), 151669);
    assert_int_equal(sl_tokenizer_eos_id(q), 151645);
    assert_int_equal(sl_tokenizer_pad_id(q), 151643);
    assert_int_equal(sl_tokenizer_bos_id(q), -1);
    assert_int_equal(sl_tokenizer_bos_id(l3), 128000);
    assert_int_equal(sl_tokenizer_bos_id(l2), 1);
    assert_int_equal(sl_tokenizer_eos_id(l2), 2);
    assert_int_equal(sl_tokenizer_eos_id(g), 50256);
    assert_true(sl_tokenizer_is_special(q, 151644));
    assert_false(sl_tokenizer_is_special(q, 9707));
    assert_non_null(sl_tokenizer_chat_template(q));
    assert_int_equal(sl_tokenizer_token_to_id(q, "Ġworld", strlen("Ġworld")), 1879);
    size_t len;
    const char *tk = sl_tokenizer_id_to_token(q, 151645, &len);
    assert_non_null(tk);
    assert_string_equal(tk, "<|im_end|>");
    assert_null(sl_tokenizer_id_to_token(q, 1 << 30, NULL));
    /* decode: special tokens kept or skipped; an id out of range refused */
    char *txt;
    assert_int_equal(sl_tokenizer_decode(q, (int32_t[]){151644, 9707, 1879}, 3, 0, &txt, NULL), 0);
    assert_string_equal(txt, "<|im_start|>Hello world");
    free(txt);
    assert_int_equal(sl_tokenizer_decode(q, (int32_t[]){151644, 9707, 1879}, 3, 1, &txt, NULL), 0);
    assert_string_equal(txt, "Hello world");
    free(txt);
    assert_int_equal(sl_tokenizer_decode(q, (int32_t[]){9707, 999999}, 2, 0, &txt, NULL), SL_ERANGE);
    assert_null(txt);
    sl_tokenizer_free(q); sl_tokenizer_free(l3); sl_tokenizer_free(g); sl_tokenizer_free(l2);
}

static void byte_level_round_trip_is_exact(void **s) {
    (void)s;
    sl_tokenizer *q = load_real("qwen3");
    if (!q) { missing_data = 1; skip(); }
    const char *texts[] = {"", " ", "caf\xC3\xA9 \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 \t\r\n x",
                           "<|im_start|>a<|im_end|>", "1234567890 \xE4\xB8\xAD\xE6\x96\x87"};
    for (size_t i = 0; i < SL_ARRAY_LEN(texts); i++) {
        int32_t *ids;
        size_t n;
        char *back;
        assert_int_equal(encode_str(q, texts[i], &ids, &n), 0);
        assert_int_equal(sl_tokenizer_decode(q, ids, n, 0, &back, NULL), 0);
        assert_string_equal(back, texts[i]);
        free(ids);
        free(back);
    }
    /* ill-formed UTF-8 is encoded as U+FFFD, never refused */
    int32_t *a, *b;
    size_t na, nb;
    assert_int_equal(sl_tokenizer_encode(q, "a\xFF" "b", 3, &a, &na), 0);
    assert_int_equal(encode_str(q, "a\xEF\xBF\xBD" "b", &b, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    free(a);
    free(b);
    sl_tokenizer_free(q);
}

/* ---------------------------------------------------------- threads */

typedef struct thr_arg {
    const sl_tokenizer *t;
    json_t *texts;
    int32_t *sums;
    int bad;
} thr_arg;

static void *thr_main(void *p) {
    thr_arg *a = p;
    for (size_t i = 0; i < json_array_size(a->texts); i++) {
        json_t *tx = json_object_get(json_array_get(a->texts, i), "text");
        int32_t *ids;
        size_t n;
        if (sl_tokenizer_encode(a->t, json_string_value(tx), json_string_length(tx), &ids, &n)) { a->bad = 1; break; }
        uint32_t h = (uint32_t)n;
        for (size_t k = 0; k < n; k++) h = h * 31u + (uint32_t)ids[k];
        a->sums[i] = (int32_t)h;
        free(ids);
    }
    return NULL;
}

static void encoding_from_four_threads_gives_the_same_ids(void **s) {
    (void)s;
    char p[1200];
    fixture_path("texts.jsonl", p, sizeof p);
    sl_tokenizer *t = load_real("llama3");
    json_t *texts = read_jsonl(p);
    if (!t || !texts) {
        missing_data = 1;
        sl_tokenizer_free(t);
        json_decref(texts);
        skip();
    }
    size_t n = json_array_size(texts);
    thr_arg a[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        a[k] = (thr_arg){t, texts, calloc(n, sizeof(int32_t)), 0};
        assert_non_null(a[k].sums);
        assert_int_equal(pthread_create(&th[k], NULL, thr_main, &a[k]), 0);
    }
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    for (int k = 0; k < 4; k++) {
        assert_false(a[k].bad);
        if (k) assert_memory_equal(a[k].sums, a[0].sums, n * sizeof(int32_t));
    }
    for (int k = 0; k < 4; k++) free(a[k].sums);
    json_decref(texts);
    sl_tokenizer_free(t);
}

/* ------------------------------------------------- a hand-made tokenizer */

static char *write_tmp(const char *name, const char *content) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    return path;
}

/* Vocabulary of single letters plus merges a+b, ab+c, c+c; "Ġ" is the
 * byte-level space. */
static const char TINY[] =
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"abc\": 4,"
    " \"cc\": 5, \"\\u0120\": 6, \"\\u0120a\": 7}, \"merges\": [\"a b\", [\"ab\", \"c\"], \"c c\", \"\\u0120 a\"]},"
    " \"added_tokens\": [{\"id\": 8, \"content\": \"<x>\", \"special\": true, \"normalized\": false},"
    "  {\"id\": 9, \"content\": \"<xy>\", \"special\": false, \"normalized\": false}],"
    " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true},"
    " \"decoder\": {\"type\": \"ByteLevel\"}}";

static void a_hand_made_tokenizer_merges_by_rank_and_matches_added_tokens_longest_first(void **s) {
    (void)s;
    char err[SL_TOKENIZER_ERRLEN];
    sl_tokenizer *t;
    assert_int_equal(sl_tokenizer_load(write_tmp("tiny.json", TINY), &t, err, sizeof err), 0);
    assert_int_equal(sl_tokenizer_vocab_size(t), 10);
    expect_ids(t, "abc", (int32_t[]){4}, 1);
    expect_ids(t, "ccc", (int32_t[]){5, 2}, 2);
    expect_ids(t, "a a", (int32_t[]){0, 7}, 2);
    expect_ids(t, "<xy>a<x>", (int32_t[]){9, 0, 8}, 3);
    expect_ids(t, "", NULL, 0);
    char *txt;
    assert_int_equal(sl_tokenizer_decode(t, (int32_t[]){9, 0, 8, 7}, 4, 1, &txt, NULL), 0);
    assert_string_equal(txt, "<xy>a a");
    free(txt);
    sl_tokenizer_free(t);
}

static void merge_order_follows_rank_then_position(void **s) {
    (void)s;
    /* "abcc": pairs (a,b) rank 0 -> ab; then (ab,c) rank 1 beats (c,c) rank 2 */
    char err[SL_TOKENIZER_ERRLEN];
    sl_tokenizer *t;
    assert_int_equal(sl_tokenizer_load(write_tmp("tiny2.json", TINY), &t, err, sizeof err), 0);
    int32_t *ids;
    size_t n;
    assert_int_equal(encode_str(t, "abcc", &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 4);
    assert_int_equal(ids[1], 2);
    free(ids);
    sl_tokenizer_free(t);
}

/* ---------------------------------------------------------- hostile */

static void expect_refused(const char *json, int code, const char *needle) {
    char err[SL_TOKENIZER_ERRLEN] = "";
    sl_tokenizer *t = (sl_tokenizer *)1;
    int rc = sl_tokenizer_load(write_tmp("bad.json", json), &t, err, sizeof err);
    if (rc != code || (needle && !strstr(err, needle)))
        fail_msg("expected %d with \"%s\", got %d: %s", code, needle ? needle : "", rc, err);
    assert_null(t);
}

static void hostile_tokenizer_files_are_refused_with_a_clear_error(void **s) {
    (void)s;
    expect_refused("{\"model\": ", SL_EINVAL, "bad JSON");
    expect_refused("[1, 2]", SL_EINVAL, "not a JSON object");
    expect_refused("{}", SL_EINVAL, "model");
    expect_refused("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", SL_EUNSUPPORTED, "WordPiece");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", SL_EINVAL, "vocab");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", SL_EINVAL, "out of range");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}, \"merges\": []}}", SL_EINVAL, "out of range");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}", SL_EINVAL, "duplicate");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}}", SL_EINVAL, "integer");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a z\"]}}", SL_EINVAL, "not in the vocab");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}", SL_EINVAL, "merged token");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}", SL_EINVAL, "one space");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\"]]}}", SL_EINVAL, "neither");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": {}}}", SL_EINVAL, "merges");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                   " \"normalizer\": {\"type\": \"BertNormalizer\"}}", SL_EUNSUPPORTED, "BertNormalizer");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                   " \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", SL_EUNSUPPORTED, "Whitespace");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                   " \"decoder\": {\"type\": \"WordPiece\"}}", SL_EUNSUPPORTED, "WordPiece");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                   " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}",
                   SL_EINVAL, "regex");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": \"<unk>\"}}",
                   SL_EINVAL, "unk_token");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                   " \"added_tokens\": [{\"id\": 5, \"content\": \"<x>\"}, {\"id\": 5, \"content\": \"<y>\"}]}",
                   SL_EINVAL, "duplicate id");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                   " \"added_tokens\": [{\"id\": 16777216, \"content\": \"<x>\"}]}", SL_EINVAL, "out of range");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"dropout\": 0.1}}",
                   SL_EUNSUPPORTED, "dropout");
    /* a missing file, a folder without tokenizer files */
    char err[SL_TOKENIZER_ERRLEN];
    sl_tokenizer *t;
    char p[600];
    snprintf(p, sizeof p, "%s/nope.json", tmpdir);
    assert_int_equal(sl_tokenizer_load(p, &t, err, sizeof err), SL_ENOENT);
    assert_null(t);
    snprintf(p, sizeof p, "%s/empty", tmpdir);
    mkdir(p, 0700);
    assert_int_equal(sl_tokenizer_load(p, &t, err, sizeof err), SL_ENOENT);
    assert_non_null(strstr(err, "encoder.json"));
    assert_int_equal(sl_tokenizer_load(NULL, &t, err, sizeof err), SL_EINVAL);
    /* a GPT-2 pair with a broken merges line */
    write_tmp("encoder.json", "{\"a\": 0, \"b\": 1, \"ab\": 2}");
    write_tmp("vocab.bpe", "#version: 0.2\na b\nab c\n");
    snprintf(p, sizeof p, "%s/vocab.bpe", tmpdir);
    assert_int_equal(sl_tokenizer_load(p, &t, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "not in the vocab"));
    write_tmp("vocab.bpe", "#version: 0.2\na b\n");
    assert_int_equal(sl_tokenizer_load(tmpdir, &t, err, sizeof err), 0);
    expect_ids(t, "ab", (int32_t[]){2}, 1);
    sl_tokenizer_free(t);
    sl_tokenizer_free(NULL);
}

/* ------------------------------------------------------------------ main */

static int setup(void **s) {
    (void)s;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sl_test_tokenizer.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **s) {
    (void)s;
    const char *files[] = {"tiny.json", "tiny2.json", "bad.json", "encoder.json", "vocab.bpe"};
    char p[600];
    for (size_t i = 0; i < SL_ARRAY_LEN(files); i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/empty", tmpdir);
    rmdir(p);
    rmdir(tmpdir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_hand_made_tokenizer_merges_by_rank_and_matches_added_tokens_longest_first),
        cmocka_unit_test(merge_order_follows_rank_then_position),
        cmocka_unit_test(hostile_tokenizer_files_are_refused_with_a_clear_error),
        cmocka_unit_test(real_tokenizers_give_well_known_ids),
        cmocka_unit_test(byte_level_round_trip_is_exact),
        cmocka_unit_test(encoding_from_four_threads_gives_the_same_ids),
        cmocka_unit_test(qwen3_matches_hf_on_every_fixture_text),
        cmocka_unit_test(llama3_matches_hf_on_every_fixture_text),
        cmocka_unit_test(llama2_matches_hf_on_every_fixture_text),
        cmocka_unit_test(gpt2_matches_hf_on_every_fixture_text),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    if (failed) return 1;
    if (missing_data) {
        printf("(tokenizer files under $SL_SHARED or reference fixtures absent: those tests skipped)\n");
        return SL_EXIT_SKIP;
    }
    return 0;
}
