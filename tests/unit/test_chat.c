/*
 * test_chat.c — the built-in chat-template renderers. Hand-written
 * expectations (worked out from the Jinja templates of Qwen3 and Llama 3)
 * need nothing; the renderings of tests/fixtures/tokenizer/chats.json must
 * equal transformers' apply_chat_template output in chat_NAME.jsonl (made
 * by make_tokenizer_fixtures.py) — skipped, exit 77, when those are absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base.h"
#include "chat.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int missing_data;

static void expect_render(sl_chat_format f, const sl_chat_msg *m, size_t n, int agp, int thinking, const char *want) {
    sl_chat_opts o;
    sl_chat_opts_init(&o);
    o.add_generation_prompt = agp;
    o.enable_thinking = thinking;
    char *out;
    size_t len;
    assert_int_equal(sl_chat_render(f, m, n, &o, &out, &len), 0);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
}

static void chatml_renders_system_and_user_with_the_generation_prompt(void **s) {
    (void)s;
    sl_chat_msg m[] = {{"system", "Be brief.", NULL}, {"user", "2+2?", NULL}};
    expect_render(SL_CHAT_CHATML, m, 2, 1, -1,
                  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
    expect_render(SL_CHAT_CHATML, m, 2, 0, -1,
                  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n");
    expect_render(SL_CHAT_CHATML, m + 1, 1, 1, 0,
                  "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

static void qwen3_drops_reasoning_from_history_but_keeps_it_after_the_last_query(void **s) {
    (void)s;
    sl_chat_msg m[] = {{"user", "Hi", NULL},
                       {"assistant", "<think>\ngreeting\n</think>\n\nHello!", NULL},
                       {"user", "Bye", NULL},
                       {"assistant", "<think>\nfarewell\n</think>\n\nBye!", NULL}};
    expect_render(SL_CHAT_CHATML, m, 4, 0, -1,
                  "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
                  "<|im_start|>user\nBye<|im_end|>\n"
                  "<|im_start|>assistant\n<think>\nfarewell\n</think>\n\nBye!<|im_end|>\n");
    /* the last assistant turn gets an (empty) think block even without one */
    sl_chat_msg m2[] = {{"user", "Q", NULL}, {"assistant", "A", NULL}};
    expect_render(SL_CHAT_CHATML, m2, 2, 0, -1,
                  "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA<|im_end|>\n");
    /* an explicit reasoning_content wins */
    sl_chat_msg m3[] = {{"user", "Q", NULL}, {"assistant", "A", "why"}};
    expect_render(SL_CHAT_CHATML, m3, 2, 0, -1,
                  "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nwhy\n</think>\n\nA<|im_end|>\n");
}

static void llama3_trims_content_adds_bos_and_always_the_assistant_header(void **s) {
    (void)s;
    sl_chat_msg m[] = {{"system", "  sys \n", NULL}, {"user", "\t hi \xE3\x80\x80", NULL}};
    const char *want = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|>"
                       "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n";
    expect_render(SL_CHAT_LLAMA3, m, 2, 1, -1, want);
    expect_render(SL_CHAT_LLAMA3, m, 2, 0, -1, want);
}

static void bad_messages_and_names_are_refused(void **s) {
    (void)s;
    char *out = (char *)1;
    sl_chat_msg tool[] = {{"tool", "x", NULL}};
    assert_int_equal(sl_chat_render(SL_CHAT_CHATML, tool, 1, NULL, &out, NULL), SL_EUNSUPPORTED);
    assert_null(out);
    sl_chat_msg odd[] = {{"wizard", "x", NULL}};
    assert_int_equal(sl_chat_render(SL_CHAT_CHATML, odd, 1, NULL, &out, NULL), SL_EINVAL);
    sl_chat_msg nul[] = {{"user", NULL, NULL}};
    assert_int_equal(sl_chat_render(SL_CHAT_LLAMA3, nul, 1, NULL, &out, NULL), SL_EINVAL);
    assert_int_equal(sl_chat_render((sl_chat_format)42, NULL, 0, NULL, &out, NULL), SL_EINVAL);
    sl_chat_format f = SL_CHAT_NONE;
    assert_int_equal(sl_chat_format_from_name("Qwen3", &f), 0);
    assert_int_equal(f, SL_CHAT_CHATML);
    assert_int_equal(sl_chat_format_from_name("llama", &f), 0);
    assert_int_equal(f, SL_CHAT_LLAMA3);
    assert_int_equal(sl_chat_format_from_name("mistral", &f), SL_EINVAL);
    assert_int_equal(f, SL_CHAT_LLAMA3);
    assert_int_equal(sl_chat_format_from_template("{{'<|im_start|>'}}"), SL_CHAT_CHATML);
    assert_int_equal(sl_chat_format_from_template("<|start_header_id|>"), SL_CHAT_LLAMA3);
    assert_int_equal(sl_chat_format_from_template(NULL), SL_CHAT_NONE);
    assert_string_equal(sl_chat_format_name(SL_CHAT_LLAMA3), "llama3");
}

static void message_lists_parse_from_json_and_bad_json_is_refused(void **s) {
    (void)s;
    sl_chat_msgs l;
    char err[200];
    const char *ok = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\", \"x\": 1},"
                     " {\"role\": \"assistant\", \"content\": \"yo\", \"reasoning_content\": \"r\"}]}";
    assert_int_equal(sl_chat_parse_json(ok, strlen(ok), &l, err, sizeof err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.msgs[1].role, "assistant");
    assert_string_equal(l.msgs[1].reasoning_content, "r");
    assert_null(l.msgs[0].reasoning_content);
    sl_chat_msgs_fini(&l);
    sl_chat_msgs_fini(&l);
    const char *bad[] = {"", "[", "{}", "[1]", "[{\"role\": \"user\"}]", "[{\"role\": 1, \"content\": \"x\"}]",
                         "[{\"role\": \"user\", \"content\": [\"multi\"]}]",
                         "[{\"role\": \"user\", \"content\": \"a\\u0000b\"}]",
                         "[{\"role\": \"user\", \"content\": \"x\", \"reasoning_content\": 3}]",
                         "{\"messages\": {\"role\": \"user\"}}"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        err[0] = 0;
        assert_int_equal(sl_chat_parse_json(bad[i], strlen(bad[i]), &l, err, sizeof err), SL_EINVAL);
        assert_true(err[0] != 0);
        assert_int_equal(l.n, 0);
    }
}

/* ------------------------------------------------------------ fixtures */

static json_t *read_jsonl(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    json_t *arr = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        json_t *j = json_loadb(line, (size_t)len, 0, NULL);
        if (j) json_array_append_new(arr, j);
    }
    free(line);
    fclose(f);
    return arr;
}

static void check_fixture(const char *name, sl_chat_format fmt) {
    const char *root = getenv("SL_ROOT");
    if (!root || !*root) root = ".";
    char p1[1024], p2[1024];
    snprintf(p1, sizeof p1, "%s/tests/fixtures/tokenizer/chats.json", root);
    snprintf(p2, sizeof p2, "%s/tests/fixtures/tokenizer/chat_%s.jsonl", root, name);
    json_t *chats = json_load_file(p1, 0, NULL), *ref = read_jsonl(p2);
    if (!chats || !ref) {
        missing_data = 1;
        json_decref(chats);
        json_decref(ref);
        skip();
    }
    size_t ok = 0, n = json_array_size(ref);
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(ref, i);
        size_t conv = (size_t)json_integer_value(json_object_get(row, "conv"));
        json_t *msgs = json_object_get(json_array_get(chats, conv), "messages");
        assert_non_null(msgs);
        char *js = json_dumps(msgs, 0);
        sl_chat_msgs l;
        char err[200];
        assert_int_equal(sl_chat_parse_json(js, strlen(js), &l, err, sizeof err), 0);
        free(js);
        sl_chat_opts o;
        sl_chat_opts_init(&o);
        o.add_generation_prompt = json_is_true(json_object_get(row, "add_generation_prompt"));
        json_t *et = json_object_get(row, "enable_thinking");
        if (json_is_boolean(et)) o.enable_thinking = json_is_true(et);
        char *out;
        assert_int_equal(sl_chat_render(fmt, l.msgs, l.n, &o, &out, NULL), 0);
        const char *want = json_string_value(json_object_get(row, "text"));
        if (want && !strcmp(out, want)) ok++;
        else printf("  %s conversation %zu (row %zu) differs:\n    ours: %s\n    ref:  %s\n", name, conv, i, out, want);
        free(out);
        sl_chat_msgs_fini(&l);
    }
    printf("  %s: %zu/%zu renderings equal transformers' apply_chat_template\n", name, ok, n);
    json_decref(chats);
    json_decref(ref);
    assert_true(n >= 20);
    assert_int_equal(ok, n);
}

static void qwen3_renderings_equal_transformers(void **s) { (void)s; check_fixture("qwen3", SL_CHAT_CHATML); }
static void llama3_renderings_equal_transformers(void **s) { (void)s; check_fixture("llama3", SL_CHAT_LLAMA3); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chatml_renders_system_and_user_with_the_generation_prompt),
        cmocka_unit_test(qwen3_drops_reasoning_from_history_but_keeps_it_after_the_last_query),
        cmocka_unit_test(llama3_trims_content_adds_bos_and_always_the_assistant_header),
        cmocka_unit_test(bad_messages_and_names_are_refused),
        cmocka_unit_test(message_lists_parse_from_json_and_bad_json_is_refused),
        cmocka_unit_test(qwen3_renderings_equal_transformers),
        cmocka_unit_test(llama3_renderings_equal_transformers),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed) return 1;
    return missing_data ? SL_EXIT_SKIP : 0;
}
