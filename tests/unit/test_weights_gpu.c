/*
 * test_weights_gpu.c — the `cuda_ipc` object of WEIGHTS (weights_gpu.h):
 * a well-formed object round-trips, every malformed one is refused with
 * SL_EPROTO and a message naming the field, and a subscriber given a
 * malformed object opens nothing. Needs no GPU (the handles themselves are
 * exercised by tests/gpu/test_gpu_loop.sh on a GPU machine).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "weights_gpu.h"

#include <stdio.h>
#include <string.h>

static sl_wgpu_ref sample_ref(void)
{
    sl_wgpu_ref r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < SL_WGPU_HANDLE_BYTES; i++) {
        r.mem[i] = (unsigned char)(i * 7 + 1);
        r.ev[i] = (unsigned char)(255 - i);
    }
    r.bytes = 987654321;
    r.pid = 4242;
    r.nonce = 0x0123456789abcdefull;
    return r;
}

static void test_a_well_formed_object_round_trips(void **state)
{
    (void)state;
    sl_wgpu_ref r = sample_ref(), back;
    json_t *o = sl_wgpu_to_json(&r);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "layout")), "gpum-bf16");
    assert_int_equal(strlen(json_string_value(json_object_get(o, "mem"))), 128);
    char err[256] = "";
    assert_int_equal(sl_wgpu_parse(o, 0, &back, err, sizeof err), SL_OK);
    assert_memory_equal(back.mem, r.mem, SL_WGPU_HANDLE_BYTES);
    assert_memory_equal(back.ev, r.ev, SL_WGPU_HANDLE_BYTES);
    assert_true(back.bytes == r.bytes);
    assert_true(back.pid == r.pid);
    assert_true(back.nonce == r.nonce);
    /* the expected size is checked when given */
    assert_int_equal(sl_wgpu_parse(o, r.bytes, &back, err, sizeof err), SL_OK);
    assert_int_equal(sl_wgpu_parse(o, r.bytes + 2, &back, err, sizeof err), SL_EPROTO);
    assert_non_null(strstr(err, "cuda_ipc.bytes"));
    json_decref(o);
}

/* One malformation: set KEY to VALUE (NULL = delete it); the parser must
 * refuse with a message naming FIELD. */
static void refuse_one(const char *key, json_t *value, const char *field)
{
    sl_wgpu_ref r = sample_ref(), out;
    json_t *o = sl_wgpu_to_json(&r);
    if (value)
        json_object_set_new(o, key, value);
    else
        json_object_del(o, key);
    char err[256] = "";
    int rc = sl_wgpu_parse(o, 0, &out, err, sizeof err);
    if (rc != SL_EPROTO || !strstr(err, field)) {
        fprintf(stderr, "key %s: rc %d err \"%s\" (want field %s)\n", key, rc, err, field);
        fail();
    }
    json_decref(o);
}

static void test_every_malformed_field_is_refused_with_its_name(void **state)
{
    (void)state;
    char hex127[128], hex129[130], nothex[129];
    memset(hex127, 'a', 127), hex127[127] = 0;
    memset(hex129, 'a', 129), hex129[129] = 0;
    memset(nothex, 'a', 128), nothex[128] = 0, nothex[77] = 'g';
    refuse_one("mem", NULL, "cuda_ipc.mem");
    refuse_one("mem", json_integer(5), "cuda_ipc.mem");
    refuse_one("mem", json_string(hex127), "cuda_ipc.mem");
    refuse_one("mem", json_string(hex129), "cuda_ipc.mem");
    refuse_one("mem", json_string(nothex), "cuda_ipc.mem");
    refuse_one("ev", NULL, "cuda_ipc.ev");
    refuse_one("ev", json_string(""), "cuda_ipc.ev");
    refuse_one("ev", json_string(nothex), "cuda_ipc.ev");
    refuse_one("bytes", NULL, "cuda_ipc.bytes");
    refuse_one("bytes", json_string("12"), "cuda_ipc.bytes");
    refuse_one("bytes", json_real(12.5), "cuda_ipc.bytes");
    refuse_one("bytes", json_integer(0), "cuda_ipc.bytes");
    refuse_one("bytes", json_integer(-4), "cuda_ipc.bytes");
    refuse_one("bytes", json_integer((json_int_t)1 << 41), "cuda_ipc.bytes");
    refuse_one("layout", NULL, "cuda_ipc.layout");
    refuse_one("layout", json_string("fp32"), "cuda_ipc.layout");
    refuse_one("layout", json_true(), "cuda_ipc.layout");
    refuse_one("pid", NULL, "cuda_ipc.pid");
    refuse_one("pid", json_integer(0), "cuda_ipc.pid");
    refuse_one("pid", json_string("1"), "cuda_ipc.pid");
    refuse_one("nonce", NULL, "cuda_ipc.nonce");
    refuse_one("nonce", json_string("0123"), "cuda_ipc.nonce");
    refuse_one("nonce", json_string("zz23456789abcdef"), "cuda_ipc.nonce");
    /* a NUL inside the hex text */
    refuse_one("mem", json_stringn("ab\0d", 4), "cuda_ipc.mem");
    /* not an object at all */
    sl_wgpu_ref out;
    char err[256] = "";
    json_t *a = json_array();
    assert_int_equal(sl_wgpu_parse(a, 0, &out, err, sizeof err), SL_EPROTO);
    assert_non_null(strstr(err, "cuda_ipc"));
    json_decref(a);
    assert_int_equal(sl_wgpu_parse(NULL, 0, &out, err, sizeof err), SL_EPROTO);
}

static void test_a_subscriber_refuses_a_malformed_object_and_opens_nothing(void **state)
{
    (void)state;
    sl_wgpu_sub *s;
    assert_int_equal(sl_wgpu_sub_new(&s), SL_OK);
    sl_wgpu_ref r = sample_ref();
    json_t *o = sl_wgpu_to_json(&r);
    json_object_set_new(o, "layout", json_string("gpum-fp8"));
    char err[256] = "";
    const void *p = (const void *)1;
    assert_int_equal(sl_wgpu_sub_pull(s, o, NULL, 0, &p, err, sizeof err), SL_EPROTO);
    assert_null(p);
    assert_int_equal(sl_wgpu_sub_opens(s), 0);
    /* a buffer of another size than the object's */
    json_object_set_new(o, "layout", json_string("gpum-bf16"));
    char dummy[16];
    assert_int_equal(sl_wgpu_sub_pull(s, o, dummy, sizeof dummy, &p, err, sizeof err), SL_EPROTO);
    assert_non_null(strstr(err, "cuda_ipc.bytes"));
    assert_int_equal(sl_wgpu_sub_opens(s), 0);
    json_decref(o);
    sl_wgpu_sub_free(s);
    sl_wgpu_sub_free(NULL);
    sl_wgpu_pub_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_well_formed_object_round_trips),
        cmocka_unit_test(test_every_malformed_field_is_refused_with_its_name),
        cmocka_unit_test(test_a_subscriber_refuses_a_malformed_object_and_opens_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
