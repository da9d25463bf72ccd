/*
 * test_wf_tool.c — the tool workflow's calculator (actors/wf_tool.h):
 * integer arithmetic with precedence, parentheses and unary minus; every
 * bad or unbounded expression refused with a reason; finding a closed
 * <calc>...</calc> at the end of a response.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "wf_tool.h"

static int64_t ok(const char *e) {
    int64_t v = 0;
    char err[96];
    int rc = sl_calc_eval(e, strlen(e), &v, err, sizeof err);
    if (rc) print_error("%s: %s\n", e, err);
    assert_int_equal(rc, 0);
    return v;
}

static void refused(const char *e, const char *why) {
    int64_t v = 77;
    char err[96];
    assert_int_equal(sl_calc_eval(e, strlen(e), &v, err, sizeof err), SL_EINVAL);
    assert_int_equal(v, 77);
    if (!strstr(err, why)) {
        print_error("%s: \"%s\" lacks \"%s\"\n", e, err, why);
        fail();
    }
}

static void the_calculator_does_integer_arithmetic(void **state) {
    (void)state;
    assert_int_equal(ok("47+38"), 85);
    assert_int_equal(ok("12-30"), -18);
    assert_int_equal(ok("2+3*4"), 14);
    assert_int_equal(ok("(2+3)*4"), 20);
    assert_int_equal(ok(" 7 / 2 "), 3);
    assert_int_equal(ok("-7/2"), -3);
    assert_int_equal(ok("--5"), 5);
    assert_int_equal(ok("99*99*99"), 970299);
    assert_int_equal(ok("1000000000000"), 1000000000000LL);
    assert_int_equal(ok("10-2-3"), 5);
    assert_int_equal(ok("100/10/5"), 2);
}

static void bad_or_unbounded_expressions_are_refused(void **state) {
    (void)state;
    refused("", "empty");
    refused("1/0", "division by zero");
    refused("(1+2", "missing )");
    refused("1+", "number expected");
    refused("1+2)", "unexpected character");
    refused("2^3", "unexpected character");
    refused("system(1)", "number expected");
    refused("1000000000001", "out of range");
    refused("1000000*1000000*10", "out of range");
    refused("((((((((((1))))))))))", "too deeply nested");
    char big[100];
    memset(big, '1', 99);
    big[99] = 0;
    refused(big, "too long");
}

static void a_closed_call_is_found_at_the_end_only(void **state) {
    (void)state;
    const char *t = "ab<calc>1+2</calc>x<calc>47+38</calc>", *e;
    size_t n;
    assert_int_equal(sl_calc_find_call(t, strlen(t), &e, &n), 1);
    assert_int_equal(n, 5);
    assert_memory_equal(e, "47+38", 5);
    t = "<calc>1+2</calc> and more";
    assert_int_equal(sl_calc_find_call(t, strlen(t), &e, &n), 0);
    t = "1+2</calc>";
    assert_int_equal(sl_calc_find_call(t, strlen(t), &e, &n), 0);
    t = "<calc></calc>";
    assert_int_equal(sl_calc_find_call(t, strlen(t), &e, &n), 1);
    assert_int_equal(n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_calculator_does_integer_arithmetic),
        cmocka_unit_test(bad_or_unbounded_expressions_are_refused),
        cmocka_unit_test(a_closed_call_is_found_at_the_end_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
