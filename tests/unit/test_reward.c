/*
 * test_reward.c — the built-in rewards (actors/reward_builtin.c): table-
 * driven cases for math, gsm8k, exact, f1 and format, the registry and the
 * "boxed_" prefix, and hostile inputs (huge, unbalanced, NUL bytes, no
 * label). Expected values follow slime's rm_hub where slime has the reward.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reward_builtin.h"

typedef struct rcase {
    const char *rm;
    const char *response;
    const char *label;
    const char *meta;
    double want;
} rcase;

static size_t cases_run;

static void run_cases(const rcase *c, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double s = -1.0;
        int rc = sl_reward_score(c[i].rm, c[i].response, strlen(c[i].response), c[i].label,
                                 c[i].meta, &s);
        cases_run++;
        if (rc != 0 || s < c[i].want - 1e-9 || s > c[i].want + 1e-9) {
            print_error("case %zu: %s(%s | %s) = %g (rc %d), want %g\n", i, c[i].rm,
                        c[i].response, c[i].label ? c[i].label : "(null)", s, rc, c[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

#define RUN(tab) run_cases(tab, sizeof tab / sizeof tab[0])

/* ------------------------------------------------------------ math */

static void math_grades_boxed_answers_like_slime(void **state)
{
    (void)state;
    static const rcase t[] = {
        {"math", "The answer is \\boxed{42}.", "42", NULL, 1},
        {"math", "\\boxed{41}", "42", NULL, 0},
        {"math", "the answer is 42", "42", NULL, 0},               /* no box, no reward */
        {"math", "first \\boxed{1}, final \\boxed{2}", "2", NULL, 1}, /* the last box counts */
        {"math", "first \\boxed{1}, final \\boxed{2}", "1", NULL, 0},
        {"math", "so \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", NULL, 1}, /* nested braces */
        {"math", "\\boxed{\\dfrac{1}{2}}", "\\frac12", NULL, 1},
        {"math", "\\boxed{0.5}", "\\frac{1}{2}", NULL, 1},
        {"math", "\\boxed{.5}", "1/2", NULL, 1},
        {"math", "\\boxed{1/2}", "\\frac{1}{2}", NULL, 1},
        {"math", "\\boxed{\\frac{1}{2}}", "1/2", NULL, 1},
        {"math", "\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", NULL, 0}, /* unreduced: slime says no */
        {"math", "\\boxed{0.25}", "\\frac{1}{4}", NULL, 1},
        {"math", "\\boxed{0.3}", "\\frac{1}{3}", NULL, 0},
        {"math", "\\boxed{1,000}", "1000", NULL, 1},
        {"math", "\\boxed{1000}", "1,000", NULL, 1},
        {"math", "\\boxed{1,234,567}", "1234567", NULL, 1},
        {"math", "\\boxed{-3}", "-3", NULL, 1},
        {"math", "\\boxed{\xe2\x88\x92" "3}", "-3", NULL, 1}, /* Unicode minus */
        {"math", "\\boxed{3}", "-3", NULL, 0},
        {"math", "\\boxed{- 3}", "-3", NULL, 1},
        {"math", "\\boxed{50\\%}", "50", NULL, 1},
        {"math", "\\boxed{\\$5}", "5", NULL, 1},
        {"math", "\\boxed{5 \\text{ dollars}}", "5", NULL, 1},
        {"math", "\\boxed{3 \\text{ cm}}", "3", NULL, 1},
        {"math", "\\boxed{x = 5}", "5", NULL, 1},
        {"math", "\\boxed{\\left(1, 2\\right)}", "(1,2)", NULL, 1},
        {"math", "\\boxed{(2,1)}", "(1,2)", NULL, 0},
        {"math", "\\boxed{[1,2)}", "[1, 2)", NULL, 1},
        {"math", "\\boxed{3.0}", "3", NULL, 1},
        {"math", "\\boxed{3.5}", "3", NULL, 0},
        {"math", "\\boxed{6/2}", "3", NULL, 0},   /* an integer only equals an integer */
        {"math", "\\boxed{10^{3}}", "1000", NULL, 0},
        {"math", "\\boxed{x+1}", "1+x", NULL, 1}, /* simple symbolic equality */
        {"math", "\\boxed{(x+1)^2}", "x^2+2x+1", NULL, 1},
        {"math", "\\boxed{x+2}", "x+1", NULL, 0},
        {"math", "\\boxed{2\\sqrt{3}}", "\\sqrt{12}", NULL, 1},
        {"math", "\\boxed{\\sqrt2}", "\\sqrt{2}", NULL, 1},
        {"math", "\\boxed{\\pi}", "\\pi", NULL, 1},
        {"math", "\\boxed{2\\pi}", "6.2832", NULL, 0},
        {"math", "\\boxed{7 \\frac{3}{4}}", "7.75", NULL, 1}, /* mixed number */
        {"math", "\\boxed{45^\\circ}", "45", NULL, 1},
        {"math", "\\boxed{\\text{(A)}}", "(A)", NULL, 1},
        {"math", "\\boxed{A}", "a", NULL, 1},
        {"math", "\\boxed{7}", "\\boxed{7}", NULL, 1}, /* boxed label is extracted */
        {"math", "\\boxed{8}", "\\boxed{7}", NULL, 0},
    };
    RUN(t);
}

static void math_gives_zero_for_missing_or_malformed_answers(void **state)
{
    (void)state;
    static const rcase t[] = {
        {"math", "\\boxed{}", "5", NULL, 0},
        {"math", "\\boxed{5", "5", NULL, 0},          /* never closes */
        {"math", "\\boxed 5", "5", NULL, 0},          /* slime needs \boxed{ */
        {"math", "\\fbox{5}", "5", NULL, 0},          /* slime's extract_answer wants \boxed */
        {"math", "\\boxed{5}", "", NULL, 0},          /* empty label */
        {"math", "\\boxed{5}", NULL, NULL, 0},        /* no label */
        {"math", "}}}{{{\\boxed{5}}}}", "5", NULL, 1}, /* stray braces outside */
        {"math", "\\boxed{\\frac{1}{2}", "\\frac{1}{2}", NULL, 0},
        {"math", "\\boxed{((((((1))))))}", "1", NULL, 0}, /* integer label: integer literal only */
    };
    RUN(t);
}

static void math_extracts_the_last_balanced_box(void **state)
{
    (void)state;
    const char *s = "a \\boxed{x} b \\boxed{\\frac{a}{\\sqrt{b}}} c";
    size_t st, n;
    assert_int_equal(sl_reward_extract_boxed(s, strlen(s), &st, &n), 0);
    assert_int_equal(n, strlen("\\frac{a}{\\sqrt{b}}"));
    assert_memory_equal(s + st, "\\frac{a}{\\sqrt{b}}", n);
    assert_int_equal(sl_reward_extract_boxed("no box", 6, &st, &n), SL_ENOENT);
    assert_int_equal(sl_reward_extract_boxed("\\boxed{{}", 9, &st, &n), SL_ENOENT);
    assert_int_equal(sl_reward_math_equal("0.5", "\\frac{1}{2}"), 1);
    assert_int_equal(sl_reward_math_equal("1", NULL), 0);
    cases_run += 6;
}

/* ------------------------------------------------------------ gsm8k */

static void gsm8k_reads_the_number_after_the_last_hashes(void **state)
{
    (void)state;
    static const rcase t[] = {
        {"gsm8k", "She sold 48 + 24 = 72 clips.\n#### 72", "72", NULL, 1},
        {"gsm8k", "#### 1,000", "1000", NULL, 1},
        {"gsm8k", "#### 1000", "1,000", NULL, 1},
        {"gsm8k", "#### $18", "18", NULL, 1},
        {"gsm8k", "#### 18.", "18", NULL, 1},
        {"gsm8k", "#### -3", "-3", NULL, 1},
        {"gsm8k", "#### \xe2\x88\x92" "3", "-3", NULL, 1},
        {"gsm8k", "#### 3", "-3", NULL, 0},
        {"gsm8k", "#### 0.50", "0.5", NULL, 1},
        {"gsm8k", "#### 72\nthen again #### 73", "72", NULL, 0},
        {"gsm8k", "#### 73\n#### 72", "72", NULL, 1},
        {"gsm8k", "Natalia sold 72 in all.", "72", NULL, 0},       /* strict: no marker */
        {"gsm8k", "Natalia sold 72 in all.", "72", "{\"flexible\": true}", 1},
        {"gsm8k", "it is 7, no wait 8.", "8", "{\"flexible\": true}", 1},
        {"gsm8k", "Natalia sold 72 in all.", "72", "{not json", 0},
        {"gsm8k", "#### 72", "Natalia sold 48/2 = 24 clips in May.\n#### 72", NULL, 1},
        {"gsm8k", "####", "5", NULL, 0},
        {"gsm8k", "#### five", "5", NULL, 0},
        {"gsm8k", "#### 5", NULL, NULL, 0},
        {"gsm8k", "#### 5", "five", NULL, 0},
        {"gsm8k", "#### 12804185", "12804184", NULL, 0},   /* large integers compare exactly */
        {"gsm8k", "#### 12804184", "12804184", NULL, 1},
    };
    RUN(t);
}

/* ------------------------------------------------------------ exact, f1 */

static void exact_compares_trimmed_strings(void **state)
{
    (void)state;
    static const rcase t[] = {
        {"exact", "  Paris \n", "Paris", NULL, 1},
        {"exact", "paris", "Paris", NULL, 0},
        {"exact", "Paris", " Paris\t", NULL, 1},
        {"exact", "Par is", "Paris", NULL, 0},
        {"exact", "Paris", NULL, NULL, 0},
    };
    RUN(t);
}

static void f1_matches_squad_token_f1(void **state)
{
    (void)state;
    static const rcase t[] = {
        {"f1", "The Eiffel Tower", "eiffel tower", NULL, 1},
        {"f1", "Eiffel", "Eiffel Tower", NULL, 2.0 / 3.0},
        {"f1", "Hello, world!", "hello world", NULL, 1},
        {"f1", "cat cat dog", "cat dog dog", NULL, 2.0 / 3.0},
        {"f1", "yes", "no", NULL, 0},
        {"f1", "Yes.", "yes", NULL, 1},
        {"f1", "no", "no way", NULL, 0}, /* yes/no/noanswer must match exactly */
        {"f1", "a an the", "the", NULL, 0},
        {"f1", "blue whale", "the blue whale is big", NULL, 2.0 * 1.0 * 0.5 / 1.5},
        {"f1", "anything", NULL, NULL, 0},
    };
    RUN(t);
}

/* ------------------------------------------------------------ format */

static void format_rewards_a_readable_final_answer(void **state)
{
    (void)state;
    static const rcase t[] = {
        {"format", "So the total is 42.\n#### 42", NULL, NULL, 1},
        {"format", "#### 42\n\nDone.", NULL, NULL, 1},
        {"format", "#### 42 because reasons", NULL, NULL, 0},
        {"format", "#### forty-two", NULL, NULL, 0},
        {"format", "thus \\boxed{42}", NULL, NULL, 1},
        {"format", "thus \\boxed{ }", NULL, NULL, 0},
        {"format", "thus \\boxed{42", NULL, NULL, 0},
        {"format", "just text", NULL, NULL, 0},
        {"format", "thus \\boxed{42}", NULL, "{\"format\": \"gsm8k\"}", 0},
        {"format", "#### 42", NULL, "{\"format\": \"boxed\"}", 0},
        {"format", "#### 42", NULL, "{\"format\": \"gsm8k\"}", 1},
    };
    RUN(t);
}

/* ------------------------------------------------------------ registry */

static void registry_finds_rewards_by_rm_type(void **state)
{
    (void)state;
    assert_ptr_equal(sl_reward_find("math"), sl_reward_math);
    assert_ptr_equal(sl_reward_find("gsm8k"), sl_reward_gsm8k);
    assert_ptr_equal(sl_reward_find("exact"), sl_reward_exact);
    assert_ptr_equal(sl_reward_find("f1"), sl_reward_f1);
    assert_ptr_equal(sl_reward_find("format"), sl_reward_format);
    assert_null(sl_reward_find("remote_rm"));
    assert_null(sl_reward_find(NULL));
    double s = 5;
    assert_int_equal(sl_reward_score("nope", "x", 1, "x", NULL, &s), SL_ENOENT);
    assert_true(s == 0.0);
    assert_int_equal(sl_reward_score(NULL, "x", 1, "x", NULL, &s), SL_ENOENT);
    assert_int_equal(sl_reward_math("x", 1, "x", NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_reward_math(NULL, 3, "x", NULL, &s), SL_EINVAL);
    assert_int_equal(sl_reward_math(NULL, 0, "x", NULL, &s), 0);
    assert_true(s == 0.0);
    static const rcase t[] = {
        {"boxed_exact", "I think \\boxed{Paris}", "Paris", NULL, 1},
        {"boxed_exact", "I think Paris", "Paris", NULL, 0},
        {"boxed_f1", "so \\boxed{the Eiffel Tower}", "Eiffel Tower", NULL, 1},
        {"boxed_math", "\\boxed{12}", "12", NULL, 0}, /* the box is gone before math looks */
    };
    RUN(t);
    cases_run += 9;
}

/* ------------------------------------------------------------ hostile */

static void hostile_inputs_never_crash_and_finish_quickly(void **state)
{
    (void)state;
    const char *rms[] = {"math", "gsm8k", "exact", "f1", "format", "boxed_math"};
    const size_t big = 4u << 20;
    char *buf = malloc(big + 64);
    assert_non_null(buf);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double s;
    /* 4 MiB of opening braces after a \boxed */
    memcpy(buf, "\\boxed", 6);
    memset(buf + 6, '{', big);
    for (size_t r = 0; r < sizeof rms / sizeof rms[0]; r++) {
        assert_int_equal(sl_reward_score(rms[r], buf, big + 6, "5", NULL, &s), 0);
        assert_true(s == 0.0);
    }
    /* a balanced but huge box: over SL_REWARD_MAX_ANSWER, scores 0 */
    memcpy(buf, "\\boxed{", 7);
    memset(buf + 7, '1', big);
    buf[big + 7] = '}';
    assert_int_equal(sl_reward_math(buf, big + 8, "1", NULL, &s), 0);
    assert_true(s == 0.0);
    /* many boxes and many markers */
    for (size_t i = 0; i + 8 <= big; i += 8)
        memcpy(buf + i, (i / 8) % 2 ? "\\boxed{1" : "#### 1{}", 8);
    for (size_t r = 0; r < sizeof rms / sizeof rms[0]; r++)
        assert_int_equal(sl_reward_score(rms[r], buf, big, "1", NULL, &s), 0);
    /* many short words for f1 */
    for (size_t i = 0; i + 2 <= big; i += 2)
        memcpy(buf + i, i % 6 ? "x " : "y ", 2);
    assert_int_equal(sl_reward_f1(buf, big, "x y z", NULL, &s), 0);
    assert_true(s > 0.0 && s < 0.01);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("    hostile inputs (4 MiB each) took %.2f s\n", secs);
    assert_true(secs < 15.0);
    free(buf);

    /* NUL bytes: before the box they are just bytes; inside it, no answer */
    const char nul1[] = "abc\0 \\boxed{42}";
    assert_int_equal(sl_reward_math(nul1, sizeof nul1 - 1, "42", NULL, &s), 0);
    assert_true(s == 1.0);
    const char nul2[] = "\\boxed{4\0" "2}";
    assert_int_equal(sl_reward_math(nul2, sizeof nul2 - 1, "42", NULL, &s), 0);
    assert_true(s == 0.0);
    const char nul3[] = "#### 4\0" "2";
    assert_int_equal(sl_reward_gsm8k(nul3, sizeof nul3 - 1, "42", NULL, &s), 0);
    assert_true(s == 0.0);

    /* pathological answers inside the length cap */
    static char ans[SL_REWARD_MAX_ANSWER + 32];
    const char *pat[] = {"(", "-", "\\frac", "\\sqrt", "{", "1,000", "^", "x", "\\text{ ", " 1"};
    for (size_t k = 0; k < sizeof pat / sizeof pat[0]; k++) {
        size_t pl = strlen(pat[k]), n = 7;
        memcpy(ans, "\\boxed{", 7);
        while (n + pl + 2 < SL_REWARD_MAX_ANSWER)
            memcpy(ans + n, pat[k], pl), n += pl;
        ans[n++] = '}';
        ans[n] = 0;
        assert_int_equal(sl_reward_math(ans, n, "1", NULL, &s), 0);
        assert_int_equal(sl_reward_math(ans, n, ans + 7, NULL, &s), 0);
    }
    cases_run += 30;
}

/* Random answers built from the tokens the normalizers care about: every
 * call must return 0 with a score of 0 or 1 (run under ASan/UBSan by
 * `make asan`). Fixed seed, so a failure reproduces. */
static void random_answers_never_crash(void **state)
{
    (void)state;
    static const char *const tok[] = {
        "\\boxed{", "{", "}", "\\frac", "\\dfrac", "\\sqrt", "[", "]", "(", ")", "1", "2", "0", ".", ",",
        "-", "+", "*", "/", "^", "=", " ", "x", "y", "pi", "\\pi", "\\text{ ", "\\text{", "\\left",
        "\\right", "\\!", "\\%", "\\$", "$", "%", "#### ", "\xe2\x88\x92", "million", "cm", "e",
        "\\", "\\cdot", " and ", "\n", "1,000", "\\circ", "a", "the",
    };
    const size_t nt = sizeof tok / sizeof tok[0];
    unsigned long long seed = 0x9e3779b97f4a7c15ull;
    char resp[600], lab[300];
    const char *rms[] = {"math", "gsm8k", "exact", "f1", "format", "boxed_math"};
    for (int it = 0; it < 3000; it++) {
        size_t rn = 0, ln = 0;
        int k = 1 + (int)((seed >> 33) % 40);
        for (int j = 0; j < k; j++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            const char *t = tok[(seed >> 33) % nt];
            size_t tl = strlen(t);
            if (rn + tl < sizeof resp - 1)
                memcpy(resp + rn, t, tl), rn += tl;
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            if ((seed >> 40) % 2) {
                t = tok[(seed >> 33) % nt];
                tl = strlen(t);
                if (ln + tl < sizeof lab - 1)
                    memcpy(lab + ln, t, tl), ln += tl;
            }
        }
        resp[rn] = 0;
        lab[ln] = 0;
        for (size_t r = 0; r < sizeof rms / sizeof rms[0]; r++) {
            double s = -1;
            assert_int_equal(sl_reward_score(rms[r], resp, rn, lab, NULL, &s), 0);
            assert_true(s >= 0.0 && s <= 1.0);
        }
        int e1 = sl_reward_math_equal(resp, lab), e2 = sl_reward_math_equal(resp, resp);
        assert_true(e1 == 0 || e1 == 1);
        assert_true(e2 == 0 || e2 == 1);
    }
    cases_run += 3000;
}

static int print_count(void **state)
{
    (void)state;
    printf("    %zu reward cases checked\n", cases_run);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(math_grades_boxed_answers_like_slime),
        cmocka_unit_test(math_gives_zero_for_missing_or_malformed_answers),
        cmocka_unit_test(math_extracts_the_last_balanced_box),
        cmocka_unit_test(gsm8k_reads_the_number_after_the_last_hashes),
        cmocka_unit_test(exact_compares_trimmed_strings),
        cmocka_unit_test(f1_matches_squad_token_f1),
        cmocka_unit_test(format_rewards_a_readable_final_answer),
        cmocka_unit_test(registry_finds_rewards_by_rm_type),
        cmocka_unit_test(hostile_inputs_never_crash_and_finish_quickly),
        cmocka_unit_test(random_answers_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, print_count);
}
