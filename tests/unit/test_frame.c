/*
 * test_frame.c — the mailbox wire format (mailbox/frame.h): round trips,
 * the byte-exact example of PROTOCOL.md, and every kind of malformed frame
 * refused with its own reason. No sockets here (test_mailbox.c has those).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

static uint8_t buf[SL_FRAME_MAX_SIZE + 64];

/* Encode a small valid frame into buf; returns its size. */
static size_t make_frame(uint16_t type, const char *sender, const void *payload, size_t len) {
    sl_frame_header h = {.type = type, .flags = SL_FLAG_REPLY, .seq = 7, .corr = 99};
    snprintf(h.sender, sizeof h.sender, "%s", sender);
    size_t n = 0;
    assert_int_equal(sl_frame_encode(&h, payload, len, buf, sizeof buf, &n), SL_OK);
    assert_int_equal(n, SL_FRAME_HEADER_SIZE + len);
    return n;
}

/* Recompute the header checksum after editing header bytes, so that the
 * check under test (not the header CRC) is the one that fires. */
static void reseal(uint8_t *b) {
    sl_put_u32(b + SL_FRAME_OFF_HEADER_CRC, sl_crc32(b, SL_FRAME_OFF_HEADER_CRC));
}

static sl_frame_reason decode(size_t n) { return sl_frame_decode(buf, n, NULL, NULL); }

static void hex_to_bytes(const char *hex, uint8_t *out, size_t *n) {
    *n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ' || *p == '\n') { p++; continue; }
        unsigned v;
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        out[(*n)++] = (uint8_t)v;
        p += 2;
    }
}

/* ------------------------------------------------------------- round trips */

static void a_frame_round_trips_with_every_field(void **state) {
    (void)state;
    const char text[] = "hello, mailbox";
    sl_frame_header h = {.type = SL_MSG_ECHO, .flags = SL_FLAG_NOREPLY, .seq = 0x0102030405060708ull,
                         .corr = 0x8000000000000abcull};
    strcpy(h.sender, "rollout.3");
    size_t n = 0;
    assert_int_equal(sl_frame_encode(&h, text, sizeof text, buf, sizeof buf, &n), SL_OK);
    sl_frame_header d;
    const uint8_t *p = NULL;
    assert_int_equal(sl_frame_decode(buf, n, &d, &p), SL_FRAME_OK);
    assert_int_equal(d.version, SL_FRAME_VERSION);
    assert_int_equal(d.type, SL_MSG_ECHO);
    assert_int_equal(d.flags, SL_FLAG_NOREPLY);
    assert_true(d.seq == h.seq);
    assert_true(d.corr == h.corr);
    assert_string_equal(d.sender, "rollout.3");
    assert_int_equal(d.payload_len, sizeof text);
    assert_int_equal(d.payload_crc, sl_crc32(text, sizeof text));
    assert_ptr_equal(p, buf + SL_FRAME_HEADER_SIZE);
    assert_memory_equal(p, text, sizeof text);
}

static void an_empty_payload_round_trips_with_a_null_pointer(void **state) {
    (void)state;
    size_t n = make_frame(SL_MSG_STOP, "supervisor", NULL, 0);
    sl_frame_header d;
    const uint8_t *p = buf;
    assert_int_equal(sl_frame_decode(buf, n, &d, &p), SL_FRAME_OK);
    assert_null(p);
    assert_int_equal(d.payload_len, 0);
    assert_int_equal(sl_get_u32(buf + SL_FRAME_OFF_PAYLOAD_CRC), 0);
}

static void the_largest_payload_round_trips(void **state) {
    (void)state;
    uint8_t *big = malloc(SL_FRAME_MAX_PAYLOAD);
    for (size_t i = 0; i < SL_FRAME_MAX_PAYLOAD; i++) big[i] = (uint8_t)(i * 31 + 7);
    size_t n = make_frame(0x8001, "custom_py", big, SL_FRAME_MAX_PAYLOAD);
    assert_int_equal(n, SL_FRAME_MAX_SIZE);
    const uint8_t *p;
    assert_int_equal(sl_frame_decode(buf, n, NULL, &p), SL_FRAME_OK);
    assert_memory_equal(p, big, SL_FRAME_MAX_PAYLOAD);
    free(big);
}

static void the_protocol_md_example_is_byte_exact(void **state) {
    (void)state;
    /* PROTOCOL.md §7: PING from "supervisor", seq 1, corr 2^63 + 1,
     * payload u64 42. Python's zlib.crc32 gives the same checksums. */
    static const char *hex =
        "534c4d42 0100 0100 00000000 08000000 0100000000000000 0100000000000080"
        "73757065727669736f72000000000000000000000000000000000000000000000000000000000000"
        "f7a1940d 646f19a8"
        "2a00000000000000";
    uint8_t want[256];
    size_t wn;
    hex_to_bytes(hex, want, &wn);
    uint8_t payload[8];
    sl_put_u64(payload, 42);
    sl_frame_header h = {.type = SL_MSG_PING, .seq = 1, .corr = 0x8000000000000001ull};
    strcpy(h.sender, "supervisor");
    size_t n;
    assert_int_equal(sl_frame_encode(&h, payload, 8, buf, sizeof buf, &n), SL_OK);
    if (n != wn || memcmp(buf, want, n)) {
        for (size_t i = 0; i < n; i++) printf("%02x", buf[i]);
        printf("\n");
    }
    assert_int_equal(n, wn);
    assert_memory_equal(buf, want, n);
    assert_int_equal(sl_frame_decode(want, wn, NULL, NULL), SL_FRAME_OK);
}

static void crc32_is_zlibs(void **state) {
    (void)state;
    assert_int_equal(sl_crc32("123456789", 9), 0xCBF43926u);
}

/* --------------------------------------------------------- encode refusals */

static void encode_refuses_bad_arguments(void **state) {
    (void)state;
    sl_frame_header h = {.type = SL_MSG_PING};
    size_t n = 123;
    strcpy(h.sender, "a");
    assert_int_equal(sl_frame_encode(NULL, NULL, 0, buf, sizeof buf, &n), SL_EINVAL);
    assert_int_equal(n, 0);
    assert_int_equal(sl_frame_encode(&h, NULL, 5, buf, sizeof buf, &n), SL_EINVAL);
    assert_int_equal(sl_frame_encode(&h, buf, SL_FRAME_MAX_PAYLOAD + 1, buf, sizeof buf, &n),
                     SL_ERANGE);
    assert_int_equal(sl_frame_encode(&h, "x", 1, buf, SL_FRAME_HEADER_SIZE, &n), SL_EFULL);
    h.type = 0x0200;
    assert_int_equal(sl_frame_encode(&h, NULL, 0, buf, sizeof buf, &n), SL_EINVAL);
    h.type = SL_MSG_PING;
    h.flags = 1u << 20;
    assert_int_equal(sl_frame_encode(&h, NULL, 0, buf, sizeof buf, &n), SL_EINVAL);
    h.flags = 0;
    strcpy(h.sender, "bad/name");
    assert_int_equal(sl_frame_encode(&h, NULL, 0, buf, sizeof buf, &n), SL_EINVAL);
    memset(h.sender, 'a', sizeof h.sender); /* unterminated */
    assert_int_equal(sl_frame_encode(&h, NULL, 0, buf, sizeof buf, &n), SL_EINVAL);
}

static void mailbox_names_follow_the_topology_rules(void **state) {
    (void)state;
    assert_true(sl_mb_name_valid("supervisor"));
    assert_true(sl_mb_name_valid("rollout.12"));
    assert_true(sl_mb_name_valid("a-b_C9"));
    assert_true(sl_mb_name_valid("abcdefghijabcdefghijabcdefghijabcdefghi")); /* 39 */
    assert_false(sl_mb_name_valid("abcdefghijabcdefghijabcdefghijabcdefghij")); /* 40 */
    assert_false(sl_mb_name_valid(""));
    assert_false(sl_mb_name_valid(NULL));
    assert_false(sl_mb_name_valid(".hidden"));
    assert_false(sl_mb_name_valid(".."));
    assert_false(sl_mb_name_valid("a/b"));
    assert_false(sl_mb_name_valid("a b"));
    assert_false(sl_mb_name_valid("\xc3\xa9t\xc3\xa9"));
}

static void the_type_registry_accepts_known_and_user_ranges_only(void **state) {
    (void)state;
    assert_false(sl_msg_type_known(0));
    for (uint16_t t = SL_MSG_PING; t <= SL_MSG_RUNTIME_LAST; t++) assert_true(sl_msg_type_known(t));
    assert_false(sl_msg_type_known(SL_MSG_RUNTIME_LAST + 1));
    assert_false(sl_msg_type_known(0x00ff));
    assert_true(sl_msg_type_known(SL_MSG_PROMPTS));
    assert_true(sl_msg_type_known(0x01ff));
    assert_false(sl_msg_type_known(0x0200));
    assert_false(sl_msg_type_known(0x7fff));
    assert_true(sl_msg_type_known(0x8000));
    assert_true(sl_msg_type_known(0xffff));
    assert_string_equal(sl_msg_type_name(SL_MSG_PING), "PING");
    assert_string_equal(sl_msg_type_name(SL_MSG_ECHO_REPLY), "ECHO_REPLY");
    assert_string_equal(sl_msg_type_name(SL_MSG_TRAIN_BATCH), "TRAIN_BATCH");
    assert_string_equal(sl_msg_type_name(0x9000), "USER");
    assert_string_equal(sl_msg_type_name(0x0300), "UNKNOWN");
}

static void every_reason_has_a_distinct_name(void **state) {
    (void)state;
    for (int i = 0; i < SL_FRAME_NREASONS; i++) {
        const char *a = sl_frame_reason_name((sl_frame_reason)i);
        assert_non_null(a);
        assert_string_not_equal(a, "unknown reason");
        for (int j = 0; j < i; j++) assert_string_not_equal(a, sl_frame_reason_name((sl_frame_reason)j));
    }
    assert_string_equal(sl_frame_reason_name(SL_FRAME_NREASONS), "unknown reason");
    assert_int_equal(sl_frame_reason_err(SL_FRAME_ECHECKSUM), SL_ECHECKSUM);
    assert_int_equal(sl_frame_reason_err(SL_FRAME_EMAGIC), SL_EPROTO);
}

/* --------------------------------------------------------- decode refusals */

static void short_frames_are_refused_as_truncated(void **state) {
    (void)state;
    make_frame(SL_MSG_PING, "a", NULL, 0);
    assert_int_equal(sl_frame_decode(NULL, 0, NULL, NULL), SL_FRAME_ETRUNCATED);
    assert_int_equal(decode(0), SL_FRAME_ETRUNCATED);
    assert_int_equal(decode(1), SL_FRAME_ETRUNCATED);
    assert_int_equal(decode(SL_FRAME_HEADER_SIZE - 1), SL_FRAME_ETRUNCATED);
    assert_int_equal(decode(SL_FRAME_HEADER_SIZE), SL_FRAME_OK);
}

static void a_bad_magic_is_refused(void **state) {
    (void)state;
    size_t n = make_frame(SL_MSG_PING, "a", "x", 1);
    buf[0] = 'X';
    reseal(buf);
    sl_frame_header h;
    const uint8_t *p = buf;
    memset(&h, 0x55, sizeof h);
    assert_int_equal(sl_frame_decode(buf, n, &h, &p), SL_FRAME_EMAGIC);
    assert_null(p);
    assert_int_equal(h.type, 0); /* zeroed on refusal */
}

static void a_bad_version_is_refused(void **state) {
    (void)state;
    size_t n = make_frame(SL_MSG_PING, "a", "x", 1);
    sl_put_u16(buf + SL_FRAME_OFF_VERSION, 2);
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_EVERSION);
    sl_put_u16(buf + SL_FRAME_OFF_VERSION, 0);
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_EVERSION);
}

static void a_corrupted_header_is_refused_by_its_checksum(void **state) {
    (void)state;
    size_t n = make_frame(SL_MSG_PING, "a", "x", 1);
    buf[SL_FRAME_OFF_SEQ] ^= 1; /* not resealed */
    assert_int_equal(decode(n), SL_FRAME_EHEADERCRC);
}

static void an_unknown_type_is_refused(void **state) {
    (void)state;
    uint16_t bad[] = {0, SL_MSG_RUNTIME_LAST + 1, 0x0200, 0x7fff};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        size_t n = make_frame(SL_MSG_PING, "a", NULL, 0);
        sl_put_u16(buf + SL_FRAME_OFF_TYPE, bad[i]);
        reseal(buf);
        assert_int_equal(decode(n), SL_FRAME_ETYPE);
    }
}

static void unknown_flags_are_refused(void **state) {
    (void)state;
    size_t n = make_frame(SL_MSG_PING, "a", NULL, 0);
    sl_put_u32(buf + SL_FRAME_OFF_FLAGS, SL_FLAG_REPLY | (1u << 31));
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_EFLAGS);
}

static void bad_senders_are_refused(void **state) {
    (void)state;
    size_t n = make_frame(SL_MSG_PING, "abc", NULL, 0);
    uint8_t *s = buf + SL_FRAME_OFF_SENDER;
    /* unterminated: 40 printable bytes */
    memset(s, 'a', SL_MB_NAME_MAX);
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_ESENDER);
    /* empty */
    memset(s, 0, SL_MB_NAME_MAX);
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_ESENDER);
    /* unprintable / path characters */
    memcpy(s, "a\x01" "b", 3);
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_ESENDER);
    memset(s, 0, SL_MB_NAME_MAX);
    memcpy(s, "../x", 4);
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_ESENDER);
    /* garbage after the terminating NUL */
    memset(s, 0, SL_MB_NAME_MAX);
    memcpy(s, "ok", 2);
    s[SL_MB_NAME_MAX - 1] = 'z';
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_ESENDER);
    /* and the control: a clean field passes */
    s[SL_MB_NAME_MAX - 1] = 0;
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_OK);
}

static void an_oversize_length_is_refused_before_the_length_check(void **state) {
    (void)state;
    size_t n = make_frame(SL_MSG_PING, "a", "abcd", 4);
    sl_put_u32(buf + SL_FRAME_OFF_LEN, SL_FRAME_MAX_PAYLOAD + 1);
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_EOVERSIZE);
    sl_put_u32(buf + SL_FRAME_OFF_LEN, 0xffffffffu);
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_EOVERSIZE);
}

static void a_length_that_differs_from_the_bytes_is_refused(void **state) {
    (void)state;
    size_t n = make_frame(SL_MSG_ECHO, "a", "abcdefgh", 8);
    assert_int_equal(decode(n - 1), SL_FRAME_ELENGTH); /* truncated payload */
    assert_int_equal(decode(n + 3), SL_FRAME_ELENGTH); /* trailing bytes */
    sl_put_u32(buf + SL_FRAME_OFF_LEN, 9);
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_ELENGTH);
}

static void a_corrupted_payload_is_refused_by_its_checksum(void **state) {
    (void)state;
    size_t n = make_frame(SL_MSG_ECHO, "a", "abcdefgh", 8);
    buf[SL_FRAME_HEADER_SIZE + 3] ^= 0x20;
    assert_int_equal(decode(n), SL_FRAME_ECHECKSUM);
    /* a checksum on an empty payload must be 0 */
    n = make_frame(SL_MSG_ECHO, "a", NULL, 0);
    sl_put_u32(buf + SL_FRAME_OFF_PAYLOAD_CRC, 1);
    reseal(buf);
    assert_int_equal(decode(n), SL_FRAME_ECHECKSUM);
}

static void every_single_bit_flip_is_caught(void **state) {
    (void)state;
    size_t n = make_frame(SL_MSG_ECHO, "flip", "12345678", 8);
    uint8_t orig[SL_FRAME_HEADER_SIZE + 8];
    memcpy(orig, buf, n);
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) {
            memcpy(buf, orig, n);
            buf[i] ^= (uint8_t)(1u << b);
            sl_frame_reason r = decode(n);
            if (r == SL_FRAME_OK) fail_msg("flip of byte %zu bit %d went unnoticed", i, b);
        }
}

static void random_bytes_never_crash_the_decoder(void **state) {
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int ok = 0;
    for (int it = 0; it < 3000; it++) {
        size_t n = make_frame(SL_MSG_ECHO, "fuzz", "payload!", 8);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int mode = (int)(x % 3);
        if (mode == 0) { /* pure noise of random length */
            n = (size_t)(x >> 8) % (SL_FRAME_HEADER_SIZE * 3);
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                buf[i] = (uint8_t)x;
            }
        } else { /* a few random byte writes, header resealed half the time */
            for (int k = 0; k < 1 + (int)(x % 4); k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                buf[(x >> 16) % n] = (uint8_t)x;
            }
            if (mode == 2) reseal(buf);
            n = (size_t)((x >> 40) % 4) == 0 ? n - (size_t)((x >> 44) % n) : n;
        }
        sl_frame_header h;
        const uint8_t *p;
        sl_frame_reason r = sl_frame_decode(buf, n, &h, &p);
        assert_true((unsigned)r < SL_FRAME_NREASONS);
        if (r == SL_FRAME_OK) {
            ok++;
            assert_int_equal(h.payload_len, n - SL_FRAME_HEADER_SIZE);
            assert_non_null(memchr(h.sender, 0, sizeof h.sender));
        }
    }
    print_message("3000 random frames decoded, %d still valid\n", ok);
}

static void an_error_payload_holds_the_code_then_the_text(void **state) {
    (void)state;
    uint8_t b[16];
    size_t n = sl_frame_error_payload(b, sizeof b, SL_EINVAL, "bad request here!");
    assert_int_equal(n, 16);
    assert_int_equal(sl_get_u32(b), SL_EINVAL);
    assert_memory_equal(b + 4, "bad request ", 12);
    assert_int_equal(sl_frame_error_payload(b, 3, 1, "x"), 0);
    assert_int_equal(sl_frame_error_payload(b, 4, 1, NULL), 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_frame_round_trips_with_every_field),
        cmocka_unit_test(an_empty_payload_round_trips_with_a_null_pointer),
        cmocka_unit_test(the_largest_payload_round_trips),
        cmocka_unit_test(the_protocol_md_example_is_byte_exact),
        cmocka_unit_test(crc32_is_zlibs),
        cmocka_unit_test(encode_refuses_bad_arguments),
        cmocka_unit_test(mailbox_names_follow_the_topology_rules),
        cmocka_unit_test(the_type_registry_accepts_known_and_user_ranges_only),
        cmocka_unit_test(every_reason_has_a_distinct_name),
        cmocka_unit_test(short_frames_are_refused_as_truncated),
        cmocka_unit_test(a_bad_magic_is_refused),
        cmocka_unit_test(a_bad_version_is_refused),
        cmocka_unit_test(a_corrupted_header_is_refused_by_its_checksum),
        cmocka_unit_test(an_unknown_type_is_refused),
        cmocka_unit_test(unknown_flags_are_refused),
        cmocka_unit_test(bad_senders_are_refused),
        cmocka_unit_test(an_oversize_length_is_refused_before_the_length_check),
        cmocka_unit_test(a_length_that_differs_from_the_bytes_is_refused),
        cmocka_unit_test(a_corrupted_payload_is_refused_by_its_checksum),
        cmocka_unit_test(every_single_bit_flip_is_caught),
        cmocka_unit_test(random_bytes_never_crash_the_decoder),
        cmocka_unit_test(an_error_payload_holds_the_code_then_the_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
