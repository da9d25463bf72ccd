/*
 * test_task_arith.c — the built-in arithmetic task: exact text formats,
 * determinism by seed, disjoint train / held-out splits, answers graded
 * correct by the gsm8k reward, the character tokenizer (one id per
 * character, exact round trip through kernels/tokenizer.c) and the tiny
 * model's config.json.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base.h"
#include "chat.h"
#include "dataset.h"
#include "reward_builtin.h"
#include "task_arith.h"
#include "tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static int setup(void **s) {
    (void)s;
    strcpy(tmpdir, "/tmp/sl_test_arith.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **s) {
    (void)s;
    const char *names[] = {"tokenizer.json", "tokenizer_config.json", "config.json", "train.jsonl", "heldout.jsonl"};
    char p[128];
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    return 0;
}

static void configs_out_of_range_are_refused(void **s) {
    (void)s;
    sl_arith_cfg c;
    char err[128];
    sl_arith_cfg_init(&c);
    assert_int_equal(sl_arith_cfg_validate(&c, err, sizeof err), 0);
    struct { int mn, mx; const char *ops; int pm; } bad[] = {
        {0, 2, "+", 100}, {3, 2, "+", 100}, {1, 8, "+", 100}, {1, 2, "", 100}, {1, 2, "/", 100},
        {1, 2, "++", 100}, {1, 2, "+", 0}, {1, 2, "+", 1000},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        sl_arith_cfg_init(&c);
        c.min_digits = bad[i].mn;
        c.max_digits = bad[i].mx;
        strcpy(c.ops, bad[i].ops);
        c.heldout_permille = bad[i].pm;
        assert_int_equal(sl_arith_cfg_validate(&c, err, sizeof err), SL_EINVAL);
        assert_true(err[0] != 0);
        sl_arith_item it;
        assert_int_equal(sl_arith_generate(&c, SL_ARITH_TRAIN, 1, 1, &it), SL_EINVAL);
    }
    sl_arith_cfg_init(&c);
    sl_arith_item it;
    assert_int_equal(sl_arith_format(&c, 1, '/', 2, &it), SL_EINVAL);
    assert_int_equal(sl_arith_format(&c, -1, '+', 2, &it), SL_EINVAL);
    assert_int_equal(sl_arith_format(&c, 10000000, '+', 2, &it), SL_EINVAL); /* 8 digits */
}

static void texts_have_the_documented_exact_format(void **s) {
    (void)s;
    sl_arith_cfg c;
    sl_arith_cfg_init(&c);
    sl_arith_item it;
    assert_int_equal(sl_arith_format(&c, 47, '+', 385, &it), 0);
    assert_string_equal(it.prompt, "47+385=");
    assert_string_equal(it.target, "#### 432");
    assert_string_equal(it.label, "432");
    assert_true(it.answer == 432);
    c.style = SL_ARITH_WORDS;
    c.target = SL_ARITH_REVERSED;
    assert_int_equal(sl_arith_format(&c, 47, '+', 385, &it), 0);
    assert_string_equal(it.prompt, "What is 47+385?");
    assert_string_equal(it.target, "234\n#### 432");
    assert_int_equal(sl_arith_format(&c, 3, '-', 45, &it), 0);
    assert_string_equal(it.target, "24-\n#### -42");
    assert_string_equal(it.label, "-42");
    assert_int_equal(sl_arith_format(&c, 9999999, '*', 9999999, &it), 0);
    assert_string_equal(it.label, "99999980000001");
    assert_string_equal(it.target, "10000008999999\n#### 99999980000001");
    assert_int_equal(sl_arith_format(&c, 0, '*', 7, &it), 0);
    assert_string_equal(it.target, "0\n#### 0");
}

static int same_items(const sl_arith_item *a, const sl_arith_item *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i].a != b[i].a || a[i].b != b[i].b || a[i].op != b[i].op || strcmp(a[i].prompt, b[i].prompt) ||
            strcmp(a[i].target, b[i].target))
            return 0;
    return 1;
}

static void generation_is_determined_by_the_seed(void **s) {
    (void)s;
    enum { N = 400 };
    sl_arith_cfg c;
    sl_arith_cfg_init(&c);
    strcpy(c.ops, "+-*");
    sl_arith_item *a = calloc(N, sizeof *a), *b = calloc(N, sizeof *b), *d = calloc(N, sizeof *d);
    for (int split = 0; split < 2; split++) {
        assert_int_equal(sl_arith_generate(&c, (sl_arith_split)split, 42, N, a), 0);
        assert_int_equal(sl_arith_generate(&c, (sl_arith_split)split, 42, N, b), 0);
        assert_true(same_items(a, b, N));
        assert_int_equal(sl_arith_generate(&c, (sl_arith_split)split, 42, N / 2, d), 0);
        assert_true(same_items(a, d, N / 2)); /* a prefix of a longer run */
        assert_int_equal(sl_arith_generate(&c, (sl_arith_split)split, 43, N, d), 0);
        size_t diff = 0;
        for (size_t i = 0; i < N; i++) diff += strcmp(a[i].prompt, d[i].prompt) != 0;
        assert_true(diff > N / 2);
    }
    /* all three operators and the digit range show up */
    int seen_op[3] = {0}, seen_two_digit = 0, seen_one_digit = 0;
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_TRAIN, 42, N, a), 0);
    for (size_t i = 0; i < N; i++) {
        seen_op[a[i].op == '+' ? 0 : a[i].op == '-' ? 1 : 2] = 1;
        assert_true(a[i].a >= 0 && a[i].a <= 99 && a[i].b >= 0 && a[i].b <= 99);
        seen_two_digit |= a[i].a >= 10;
        seen_one_digit |= a[i].a < 10;
        if (a[i].op == '-') assert_true(a[i].answer >= 0); /* negative off */
    }
    assert_true(seen_op[0] && seen_op[1] && seen_op[2] && seen_two_digit && seen_one_digit);
    free(a);
    free(b);
    free(d);
}

static void train_and_heldout_splits_never_share_a_problem(void **s) {
    (void)s;
    enum { NT = 6000, NH = 600 };
    sl_arith_cfg c;
    sl_arith_cfg_init(&c);
    strcpy(c.ops, "+-*");
    sl_arith_item *tr = calloc(NT, sizeof *tr), *ho = calloc(NH, sizeof *ho), *ho2 = calloc(NH, sizeof *ho2);
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_TRAIN, 1, NT, tr), 0);
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_HELDOUT, 1, NH, ho), 0);
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_HELDOUT, 2, NH, ho2), 0); /* another seed */
    /* problems as (op, a, b) marks in a table: 3 ops x 100 x 100 */
    static char in_train[3][100][100];
    memset(in_train, 0, sizeof in_train);
    for (size_t i = 0; i < NT; i++) {
        int o = tr[i].op == '+' ? 0 : tr[i].op == '-' ? 1 : 2;
        in_train[o][tr[i].a][tr[i].b] = 1;
        assert_int_equal(sl_arith_split_of(&c, tr[i].a, tr[i].op, tr[i].b), SL_ARITH_TRAIN);
    }
    static char in_ho[3][100][100];
    memset(in_ho, 0, sizeof in_ho);
    for (size_t i = 0; i < NH; i++) {
        for (int k = 0; k < 2; k++) {
            const sl_arith_item *h = k ? &ho2[i] : &ho[i];
            int o = h->op == '+' ? 0 : h->op == '-' ? 1 : 2;
            assert_false(in_train[o][h->a][h->b]);
            assert_int_equal(sl_arith_split_of(&c, h->a, h->op, h->b), SL_ARITH_HELDOUT);
            if (!k) {
                assert_false(in_ho[o][h->a][h->b]); /* no duplicates within held-out */
                in_ho[o][h->a][h->b] = 1;
            }
        }
    }
    /* about heldout_permille of all problems are held out */
    size_t held = 0, all = 0;
    for (int a = 0; a < 100; a++)
        for (int b = 0; b < 100; b++, all++) held += sl_arith_split_of(&c, a, '+', b) == SL_ARITH_HELDOUT;
    assert_true(held > all / 20 && held < all / 5);
    /* a held-out split smaller than asked for is refused */
    sl_arith_cfg tiny;
    sl_arith_cfg_init(&tiny);
    tiny.max_digits = 1;
    strcpy(tiny.ops, "+");
    assert_int_equal(sl_arith_generate(&tiny, SL_ARITH_HELDOUT, 1, 60, ho), SL_ERANGE);
    free(tr);
    free(ho);
    free(ho2);
}

static void every_answer_is_correct_and_graded_by_the_gsm8k_reward(void **s) {
    (void)s;
    enum { N = 500 };
    sl_arith_item *it = calloc(N, sizeof *it);
    for (int variant = 0; variant < 4; variant++) {
        sl_arith_cfg c;
        sl_arith_cfg_init(&c);
        strcpy(c.ops, "+-*");
        c.min_digits = 1 + variant;
        c.max_digits = variant == 3 ? SL_ARITH_MAX_DIGITS : 2 + 2 * variant;
        c.style = variant & 1 ? SL_ARITH_WORDS : SL_ARITH_TERSE;
        c.target = variant & 2 ? SL_ARITH_REVERSED : SL_ARITH_PLAIN;
        c.negative = variant & 1;
        assert_int_equal(sl_arith_generate(&c, variant & 1 ? SL_ARITH_HELDOUT : SL_ARITH_TRAIN, 5, N, it), 0);
        for (size_t i = 0; i < N; i++) {
            int64_t want = it[i].op == '+' ? it[i].a + it[i].b : it[i].op == '-' ? it[i].a - it[i].b : it[i].a * it[i].b;
            assert_true(it[i].answer == want);
            assert_true(strtoll(it[i].label, NULL, 10) == want);
            double score = -1;
            assert_int_equal(sl_reward_gsm8k(it[i].target, strlen(it[i].target), it[i].label, NULL, &score), 0);
            assert_true(score == 1.0);
            assert_int_equal(sl_reward_format(it[i].target, strlen(it[i].target), NULL, NULL, &score), 0);
            assert_true(score == 1.0);
            /* an off-by-one answer scores 0 — checked below 10^6 only: the gsm8k
             * reward compares with a relative tolerance of 1e-6 */
            if (llabs(want) >= 1000000) continue;
            char wrong[64];
            int n = snprintf(wrong, sizeof wrong, "#### %lld", (long long)(want + 1));
            assert_int_equal(sl_reward_gsm8k(wrong, (size_t)n, it[i].label, NULL, &score), 0);
            if (score != 0.0) print_error("\"%s\" graded %g against label %s\n", wrong, score, it[i].label);
            assert_true(score == 0.0);
        }
    }
    free(it);
}

static void the_character_tokenizer_gives_one_id_per_character_and_round_trips(void **s) {
    (void)s;
    char err[256];
    assert_int_equal(sl_arith_write_tokenizer(tmpdir, err, sizeof err), 0);
    sl_tokenizer *tok = NULL;
    assert_int_equal(sl_tokenizer_load(tmpdir, &tok, err, sizeof err), 0);
    assert_int_equal(sl_tokenizer_vocab_size(tok), SL_ARITH_VOCAB_SIZE);
    assert_int_equal(sl_tokenizer_eos_id(tok), SL_ARITH_IM_END_ID);
    assert_int_equal(sl_tokenizer_pad_id(tok), SL_ARITH_ENDOFTEXT_ID);
    assert_int_equal(sl_tokenizer_bos_id(tok), -1);
    assert_int_equal(sl_chat_format_from_template(sl_tokenizer_chat_template(tok)), SL_CHAT_CHATML);
    assert_int_equal(sl_tokenizer_token_to_id(tok, "<|im_start|>", 12), SL_ARITH_IM_START_ID);
    assert_true(sl_tokenizer_is_special(tok, SL_ARITH_IM_END_ID));
    assert_false(sl_tokenizer_is_special(tok, 17));

    /* every printable character and the newline: exactly the documented id */
    char all[97];
    for (int ch = 0x20; ch <= 0x7e; ch++) all[ch - 0x20] = (char)ch;
    all[95] = '\n';
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(sl_tokenizer_encode(tok, all, 96, &ids, &n), 0);
    assert_int_equal(n, 96);
    for (int i = 0; i < 95; i++) assert_int_equal(ids[i], i + 1);
    assert_int_equal(ids[95], SL_ARITH_NEWLINE_ID);
    free(ids);

    /* the task's texts, plain and as a ChatML conversation */
    sl_arith_cfg c;
    sl_arith_cfg_init(&c);
    strcpy(c.ops, "+-*");
    c.negative = 1;
    sl_arith_item it[200];
    for (int variant = 0; variant < 4; variant++) {
        c.style = variant & 1 ? SL_ARITH_WORDS : SL_ARITH_TERSE;
        c.target = variant & 2 ? SL_ARITH_REVERSED : SL_ARITH_PLAIN;
        c.max_digits = 4;
        assert_int_equal(sl_arith_generate(&c, SL_ARITH_TRAIN, (uint64_t)variant, 200, it), 0);
        for (size_t i = 0; i < 200; i++) {
            char text[160];
            int len = snprintf(text, sizeof text, "%s%s", it[i].prompt, it[i].target);
            assert_int_equal(sl_tokenizer_encode(tok, text, (size_t)len, &ids, &n), 0);
            assert_int_equal(n, (size_t)len);
            for (size_t k = 0; k < n; k++)
                assert_int_equal(ids[k], text[k] == '\n' ? SL_ARITH_NEWLINE_ID : text[k] - 0x20 + 1);
            char *back = NULL;
            size_t blen = 0;
            assert_int_equal(sl_tokenizer_decode(tok, ids, n, 0, &back, &blen), 0);
            assert_int_equal(blen, (size_t)len);
            assert_string_equal(back, text);
            free(back);
            free(ids);
        }
    }
    sl_chat_msg m[] = {{"user", it[0].prompt, NULL}, {"assistant", it[0].target, NULL}};
    char *conv = NULL;
    size_t clen = 0;
    sl_chat_opts o;
    sl_chat_opts_init(&o);
    o.add_generation_prompt = 0;
    assert_int_equal(sl_chat_render(SL_CHAT_CHATML, m, 2, &o, &conv, &clen), 0);
    assert_int_equal(sl_tokenizer_encode(tok, conv, clen, &ids, &n), 0);
    assert_int_equal(ids[0], SL_ARITH_IM_START_ID);
    size_t specials = 0;
    for (size_t k = 0; k < n; k++) specials += ids[k] >= SL_ARITH_ENDOFTEXT_ID;
    assert_int_equal(specials, 4); /* two <|im_start|>, two <|im_end|> */
    char *back = NULL;
    assert_int_equal(sl_tokenizer_decode(tok, ids, n, 0, &back, NULL), 0);
    assert_string_equal(back, conv);
    free(back);
    assert_int_equal(sl_tokenizer_decode(tok, ids, n, 1, &back, NULL), 0); /* specials skipped */
    assert_null(strstr(back, "<|im_"));
    free(back);
    free(ids);
    free(conv);

    /* a character outside the vocabulary is <unk> */
    assert_int_equal(sl_tokenizer_encode(tok, "1\xc3\xa9" "2", 4, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], SL_ARITH_UNK_ID);
    free(ids);
    sl_tokenizer_free(tok);
}

static void the_model_config_names_a_tiny_qwen3_over_that_vocabulary(void **s) {
    (void)s;
    char err[256], path[128];
    assert_int_equal(sl_arith_write_model_config(tmpdir, NULL, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/config.json", tmpdir);
    json_error_t je;
    json_t *c = json_load_file(path, 0, &je);
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "model_type")), "qwen3");
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "architectures"), 0)), "Qwen3ForCausalLM");
    assert_int_equal(json_integer_value(json_object_get(c, "vocab_size")), SL_ARITH_VOCAB_SIZE);
    assert_int_equal(json_integer_value(json_object_get(c, "hidden_size")), 64);
    assert_int_equal(json_integer_value(json_object_get(c, "num_hidden_layers")), 2);
    assert_int_equal(json_integer_value(json_object_get(c, "num_attention_heads")), 4);
    assert_int_equal(json_integer_value(json_object_get(c, "num_key_value_heads")), 2);
    assert_int_equal(json_integer_value(json_object_get(c, "head_dim")), 16);
    assert_int_equal(json_integer_value(json_object_get(c, "eos_token_id")), SL_ARITH_IM_END_ID);
    assert_true(json_is_true(json_object_get(c, "tie_word_embeddings")));
    assert_true(json_is_null(json_object_get(c, "bos_token_id")));
    json_decref(c);

    sl_arith_model_cfg m;
    sl_arith_model_cfg_init(&m);
    m.model_type = "llama";
    m.hidden_size = 128;
    m.head_dim = 32;
    m.num_hidden_layers = 3;
    assert_int_equal(sl_arith_write_model_config(tmpdir, &m, err, sizeof err), 0);
    c = json_load_file(path, 0, &je);
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "model_type")), "llama");
    assert_int_equal(json_integer_value(json_object_get(c, "num_hidden_layers")), 3);
    json_decref(c);
    m.head_dim = 30; /* llama: 4 * 30 != 128 */
    assert_int_equal(sl_arith_write_model_config(tmpdir, &m, err, sizeof err), SL_EINVAL);
    m.model_type = "gpt2";
    assert_int_equal(sl_arith_write_model_config(tmpdir, &m, err, sizeof err), SL_EINVAL);
    sl_arith_model_cfg_init(&m);
    m.num_key_value_heads = 3; /* does not divide 4 */
    assert_int_equal(sl_arith_write_model_config(tmpdir, &m, err, sizeof err), SL_EINVAL);
    assert_int_equal(sl_arith_write_model_config("/proc/nonexistent/x", NULL, err, sizeof err), SL_EIO);
}

static void jsonl_splits_load_back_through_the_dataset_reader(void **s) {
    (void)s;
    enum { N = 50 };
    sl_arith_cfg c;
    sl_arith_cfg_init(&c);
    c.target = SL_ARITH_REVERSED;
    sl_arith_item it[N];
    char path[128], err[256];
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_TRAIN, 9, N, it), 0);
    snprintf(path, sizeof path, "%s/train.jsonl", tmpdir);
    assert_int_equal(sl_arith_write_jsonl(path, it, N, 1), 0);
    sl_arith_write_tokenizer(tmpdir, err, sizeof err);
    sl_tokenizer *tok = NULL;
    assert_int_equal(sl_tokenizer_load(tmpdir, &tok, err, sizeof err), 0);
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.response_key = "response";
    o.apply_chat_template = 1;
    o.tok = tok;
    sl_dataset *ds = NULL;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), 0);
    assert_int_equal(sl_dataset_size(ds), N);
    for (size_t i = 0; i < N; i++) {
        const sl_prompt *p = sl_dataset_get(ds, i);
        assert_string_equal(p->label, it[i].label);
        assert_string_equal(p->response, it[i].target);
        assert_int_equal(p->n_response_ids, strlen(it[i].target));
        char want[128];
        snprintf(want, sizeof want, "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n", it[i].prompt);
        assert_string_equal(p->text, want);
    }
    sl_dataset_free(ds);
    /* held-out file: no response key */
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_HELDOUT, 9, N, it), 0);
    snprintf(path, sizeof path, "%s/heldout.jsonl", tmpdir);
    assert_int_equal(sl_arith_write_jsonl(path, it, N, 0), 0);
    o.response_key = NULL;
    assert_int_equal(sl_dataset_load(path, &o, &ds, err, sizeof err), 0);
    assert_null(sl_dataset_get(ds, 0)->response);
    sl_dataset_free(ds);
    sl_tokenizer_free(tok);
}

/* The sloppy teacher forgets every carry and borrow; sloppy_permille
 * rewrites about that share of train targets, leaving problems, labels
 * and the held-out split unchanged. */
static void the_sloppy_teacher_forgets_carries_in_the_configured_share(void **s) {
    (void)s;
    sl_arith_cfg c;
    sl_arith_cfg_init(&c);
    c.target = SL_ARITH_REVERSED;
    sl_arith_item it;
    assert_int_equal(sl_arith_format(&c, 47, '+', 38, &it), 0);
    assert_int_equal(sl_arith_carryless(&it), 75); /* 7+8 -> 5, 4+3 -> 7 */
    assert_int_equal(sl_arith_format(&c, 52, '-', 17, &it), 0);
    assert_int_equal(sl_arith_carryless(&it), 45); /* |2-7| = 5, 5-1 = 4 */
    assert_int_equal(sl_arith_format(&c, 9, '+', 3, &it), 0);
    assert_int_equal(sl_arith_carryless(&it), 2);
    assert_int_equal(sl_arith_format(&c, 23, '+', 41, &it), 0);
    assert_int_equal(sl_arith_carryless(&it), 64); /* no carry: right */
    assert_int_equal(sl_arith_format(&c, 47, '+', 38, &it), 0);
    assert_int_equal(sl_arith_make_sloppy(&c, &it), 0);
    assert_string_equal(it.target, "57\n#### 75");
    assert_string_equal(it.label, "85");
    c.target = SL_ARITH_PLAIN;
    assert_int_equal(sl_arith_format(&c, 52, '-', 17, &it), 0);
    assert_int_equal(sl_arith_make_sloppy(&c, &it), 0);
    assert_string_equal(it.target, "#### 45");

    c.target = SL_ARITH_REVERSED;
    c.sloppy_permille = 1001;
    assert_int_equal(sl_arith_cfg_validate(&c, NULL, 0), SL_EINVAL);
    c.sloppy_permille = -1;
    assert_int_equal(sl_arith_cfg_validate(&c, NULL, 0), SL_EINVAL);
    enum { N = 4000 };
    sl_arith_item *clean = calloc(N, sizeof *clean), *sl = calloc(N, sizeof *sl), *sl2 = calloc(N, sizeof *sl2);
    assert_true(clean && sl && sl2);
    c.sloppy_permille = 0;
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_TRAIN, 5, N, clean), 0);
    c.sloppy_permille = 700;
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_TRAIN, 5, N, sl), 0);
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_TRAIN, 5, N, sl2), 0);
    assert_memory_equal(sl, sl2, N * sizeof *sl);
    int changed = 0, carry = 0, sloppy_of_carry = 0;
    for (int i = 0; i < N; i++) {
        assert_string_equal(sl[i].prompt, clean[i].prompt);
        assert_string_equal(sl[i].label, clean[i].label);
        int has_carry = sl_arith_carryless(&clean[i]) != clean[i].answer;
        if (strcmp(sl[i].target, clean[i].target) != 0) {
            changed++;
            assert_true(has_carry);
            char want[24];
            snprintf(want, sizeof want, "%lld", (long long)sl_arith_carryless(&clean[i]));
            assert_non_null(strstr(sl[i].target, want));
        }
        carry += has_carry;
    }
    sloppy_of_carry = changed;
    /* about 70% of the problems with a carry got the sloppy target */
    assert_true(carry > 500);
    assert_true(sloppy_of_carry > carry * 6 / 10 && sloppy_of_carry < carry * 8 / 10);
    /* held-out targets never change */
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_HELDOUT, 5, 500, sl), 0);
    c.sloppy_permille = 0;
    assert_int_equal(sl_arith_generate(&c, SL_ARITH_HELDOUT, 5, 500, sl2), 0);
    assert_memory_equal(sl, sl2, 500 * sizeof *sl);
    free(clean), free(sl), free(sl2);
}

int main(void) {
    sl_log_init("test_task_arith", SL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(configs_out_of_range_are_refused),
        cmocka_unit_test(texts_have_the_documented_exact_format),
        cmocka_unit_test(generation_is_determined_by_the_seed),
        cmocka_unit_test(train_and_heldout_splits_never_share_a_problem),
        cmocka_unit_test(every_answer_is_correct_and_graded_by_the_gsm8k_reward),
        cmocka_unit_test(the_character_tokenizer_gives_one_id_per_character_and_round_trips),
        cmocka_unit_test(the_model_config_names_a_tiny_qwen3_over_that_vocabulary),
        cmocka_unit_test(jsonl_splits_load_back_through_the_dataset_reader),
        cmocka_unit_test(the_sloppy_teacher_forgets_carries_in_the_configured_share),
    };
    return cmocka_run_group_tests(tests, setup, teardown) ? 1 : 0;
}
