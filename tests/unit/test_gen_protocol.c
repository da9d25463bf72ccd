/*
 * test_gen_protocol.c — the generation service's wire format: the
 * byte-exact GENERATE and GENERATED frames of mailbox/PROTOCOL.md §11 are
 * rebuilt here (sl_gen_call_json / sl_gen_result_json + sl_frame_encode)
 * and compared with the hex blocks in the document itself (so the doc
 * cannot drift); payloads round-trip through sl_gen_result_parse; the
 * client refuses bad calls and malformed replies.
 *
 * `test_gen_protocol --print` prints the two frames as the doc shows them.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gen_client.h"
#include "rl_msg.h"

static const int32_t PROMPT[] = {18, 19, 12, 20, 21, 30}; /* "12+34=" in the builtin:arith tokenizer */
static const char GEN_JSON[] =
    "{\"rid\":7,\"prompt\":[18,19,12,20,21,30],\"max_tokens\":4,\"temperature\":0.5,\"seed\":42}";
static const int32_t IDS[] = {21, 23, 99}; /* "46<|im_end|>" */
static const float LPS[] = {-0.25f, -0.125f, -0.5f};
static const char GENERATED_JSON[] =
    "{\"rid\":7,\"ids\":[21,23,99],\"logprobs\":[-0.25,-0.125,-0.5],\"finish_reason\":\"stop\","
    "\"weight_version\":3,\"prompt_tokens\":6,\"cached_tokens\":0}";

static size_t build_generate(uint8_t *out, size_t cap)
{
    sl_gen_call c;
    sl_gen_call_default(&c);
    c.rid = 7;
    c.prompt = PROMPT;
    c.prompt_len = 6;
    c.max_tokens = 4;
    c.temperature = 0.5f;
    c.seed = 42;
    char *j = NULL;
    size_t jl = 0;
    assert_int_equal(sl_gen_call_json(&c, &j, &jl), 0);
    assert_string_equal(j, GEN_JSON);
    sl_frame_header h = {.type = SL_MSG_GENERATE, .flags = 0, .seq = 1, .corr = 1};
    snprintf(h.sender, sizeof h.sender, "caller0");
    size_t n = 0;
    assert_int_equal(sl_frame_encode(&h, j, jl, out, cap, &n), 0);
    free(j);
    return n;
}

static size_t build_generated(uint8_t *out, size_t cap)
{
    sl_gen_result r = {.rid = 7, .ids = (int32_t *)IDS, .logprobs = (float *)LPS, .n = 3,
                       .finish = SL_FINISH_STOP, .weight_version = 3, .prompt_tokens = 6,
                       .cached_tokens = 0};
    char *j = NULL;
    size_t jl = 0;
    assert_int_equal(sl_gen_result_json(&r, &j, &jl), 0);
    assert_string_equal(j, GENERATED_JSON);
    sl_frame_header h = {.type = SL_MSG_GENERATED, .flags = SL_FLAG_REPLY, .seq = 1, .corr = 1};
    snprintf(h.sender, sizeof h.sender, "rollout");
    size_t n = 0;
    assert_int_equal(sl_frame_encode(&h, j, jl, out, cap, &n), 0);
    free(j);
    return n;
}

/* The hex block that follows MARKER in mailbox/PROTOCOL.md, decoded. */
static size_t doc_frame(const char *marker, uint8_t *out, size_t cap)
{
    const char *root = getenv("SL_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/mailbox/PROTOCOL.md", root && *root ? root : ".");
    FILE *f = fopen(path, "rb");
    if (!f) f = fopen("mailbox/PROTOCOL.md", "rb");
    assert_non_null(f);
    static char doc[1 << 18];
    size_t dl = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[dl] = 0;
    const char *p = strstr(doc, marker);
    assert_non_null(p);
    p = strstr(p, "```");
    assert_non_null(p);
    p = strchr(p, '\n');
    assert_non_null(p);
    const char *end = strstr(p, "```");
    assert_non_null(end);
    size_t n = 0;
    int hi = -1;
    for (; p < end; p++) {
        if (isspace((unsigned char)*p)) continue;
        assert_true(isxdigit((unsigned char)*p));
        int v = isdigit((unsigned char)*p) ? *p - '0' : tolower((unsigned char)*p) - 'a' + 10;
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1);
    return n;
}

static void the_documented_generate_frame_is_rebuilt_byte_for_byte(void **state)
{
    (void)state;
    uint8_t a[1024], b[1024];
    size_t na = build_generate(a, sizeof a), nb = doc_frame("<!-- frame: GENERATE -->", b, sizeof b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    sl_frame_header h;
    const uint8_t *pl;
    assert_int_equal(sl_frame_decode(b, nb, &h, &pl), SL_FRAME_OK);
    assert_int_equal(h.type, 0x0120);
    assert_int_equal(h.payload_len, strlen(GEN_JSON));
}

static void the_documented_generated_frame_is_rebuilt_and_parses(void **state)
{
    (void)state;
    uint8_t a[1024], b[1024];
    size_t na = build_generated(a, sizeof a), nb = doc_frame("<!-- frame: GENERATED -->", b, sizeof b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    sl_frame_header h;
    const uint8_t *pl;
    assert_int_equal(sl_frame_decode(b, nb, &h, &pl), SL_FRAME_OK);
    sl_msg m = {.type = h.type, .flags = h.flags, .corr = h.corr, .len = h.payload_len, .payload = (uint8_t *)pl};
    sl_gen_result r;
    assert_int_equal(sl_gen_result_parse(&m, &r), 0);
    assert_int_equal(r.rid, 7);
    assert_int_equal(r.n, 3);
    assert_memory_equal(r.ids, IDS, sizeof IDS);
    assert_memory_equal(r.logprobs, LPS, sizeof LPS);
    assert_int_equal(r.finish, SL_FINISH_STOP);
    assert_int_equal(r.weight_version, 3);
    assert_int_equal(r.prompt_tokens, 6);
    sl_gen_result_fini(&r);
}

static sl_err parse_text(const char *json, sl_gen_result *r)
{
    sl_msg m = {.type = SL_MSG_GENERATED, .flags = SL_FLAG_REPLY, .corr = 1, .len = (uint32_t)strlen(json),
                .payload = (uint8_t *)json};
    return sl_gen_result_parse(&m, r);
}

static void malformed_replies_and_calls_are_refused(void **state)
{
    (void)state;
    sl_gen_result r;
    const char *bad[] = {
        "not json",
        "{\"rid\":7,\"ids\":[1],\"logprobs\":[],\"finish_reason\":\"stop\",\"weight_version\":0,\"prompt_tokens\":1,\"cached_tokens\":0}",
        "{\"rid\":7,\"ids\":[1],\"logprobs\":[-1],\"finish_reason\":\"done\",\"weight_version\":0,\"prompt_tokens\":1,\"cached_tokens\":0}",
        "{\"rid\":7,\"ids\":[-1],\"logprobs\":[-1],\"finish_reason\":\"stop\",\"weight_version\":0,\"prompt_tokens\":1,\"cached_tokens\":0}",
        "{\"rid\":7,\"ids\":[1],\"logprobs\":[0.5],\"finish_reason\":\"stop\",\"weight_version\":0,\"prompt_tokens\":1,\"cached_tokens\":0}",
        "{\"rid\":7,\"ids\":[1],\"logprobs\":[-1],\"finish_reason\":\"stop\",\"weight_version\":0,\"prompt_tokens\":1,\"cached_tokens\":2}",
        "{\"rid\":7,\"ids\":[1],\"logprobs\":[-1],\"finish_reason\":\"stop\",\"prompt_tokens\":1,\"cached_tokens\":0}",
        "{\"rid\":\"7\",\"ids\":[1],\"logprobs\":[-1],\"finish_reason\":\"stop\",\"weight_version\":0,\"prompt_tokens\":1,\"cached_tokens\":0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse_text(bad[i], &r), SL_EPROTO);
        assert_null(r.ids);
    }
    /* an ERROR reply: code and text */
    uint8_t ep[64];
    size_t el = sl_frame_error_payload(ep, sizeof ep, SL_EINVAL, "top_p: a number in (0, 1]");
    sl_msg m = {.type = SL_MSG_ERROR, .flags = SL_FLAG_REPLY | SL_FLAG_ERROR, .corr = 1, .len = (uint32_t)el, .payload = ep};
    assert_int_equal(sl_gen_result_parse(&m, &r), SL_EINVAL);
    assert_string_equal(r.error, "top_p: a number in (0, 1]");
    /* bad calls */
    sl_gen_call c;
    sl_gen_call_default(&c);
    char *j;
    assert_int_equal(sl_gen_call_json(&c, &j, NULL), SL_EINVAL); /* no prompt */
    c.prompt = PROMPT;
    c.prompt_len = 6;
    c.n_stop = 17;
    assert_int_equal(sl_gen_call_json(&c, &j, NULL), SL_EINVAL);
    c.n_stop = 0;
    c.session = "";
    assert_int_equal(sl_gen_call_json(&c, &j, NULL), SL_EINVAL);
    c.session = "s";
    const char *stops[] = {"\n\n", "</calc>"};
    c.stop = stops;
    c.n_stop = 2;
    int32_t sti[] = {99};
    c.stop_token_ids = sti;
    c.n_stop_token_ids = 1;
    c.ignore_eos = true;
    c.top_k = 5;
    c.top_p = 0.75f;
    assert_int_equal(sl_gen_call_json(&c, &j, NULL), 0);
    assert_string_equal(j, "{\"rid\":0,\"prompt\":[18,19,12,20,21,30],\"max_tokens\":256,\"top_p\":0.75,\"top_k\":5,"
                           "\"stop\":[\"\\n\\n\",\"</calc>\"],\"stop_token_ids\":[99],\"session\":\"s\",\"ignore_eos\":true}");
    free(j);
}

static void print_frame(const char *name, const uint8_t *b, size_t n)
{
    printf("%s (%zu bytes):\n", name, n);
    for (size_t i = 0; i < n; i++) printf("%02x%s", b[i], (i + 1) % 36 == 0 || i + 1 == n ? "\n" : "");
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--print")) {
        uint8_t b[1024];
        size_t n = build_generate(b, sizeof b);
        print_frame("GENERATE", b, n);
        n = build_generated(b, sizeof b);
        print_frame("GENERATED", b, n);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_documented_generate_frame_is_rebuilt_byte_for_byte),
        cmocka_unit_test(the_documented_generated_frame_is_rebuilt_and_parses),
        cmocka_unit_test(malformed_replies_and_calls_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
