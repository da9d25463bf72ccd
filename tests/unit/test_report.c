/*
 * test_report.c — the HTML run report on synthetic run directories: the
 * curves are SVG paths, the topology is escaped, restarts come from
 * status.json or supervisor.log, sample tables hold the first and last
 * steps, garbled lines are skipped and counted, missing files are said so.
 * The browser check is tests/report/test_report_chromium.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base.h"
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[64];

static int setup(void **state) {
    snprintf(dir, sizeof dir, "/tmp/test_report.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void put_file(const char *name, const char *text) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    return b;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* The number of "L" points in the series path of chart KEY (plus the M). */
static int path_points(const char *html, const char *key) {
    char id[64];
    snprintf(id, sizeof id, "id=\"chart-%s\"", key);
    const char *c = strstr(html, id);
    if (!c) return -1;
    const char *end = strstr(c, "</svg>");
    const char *p = strstr(c, "<path class=\"series\"");
    if (!p || p > end) return 0;
    const char *d = strstr(p, " d=\"M");
    const char *q = strchr(d + 5, '"');
    int n = 1;
    for (const char *s = d; s < q; s++) n += *s == 'L';
    return n;
}

static void write_metrics(int sft, int rl) {
    char p[256];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (int s = 1; s <= sft + rl; s++) {
        if (s <= sft) fprintf(f, "{\"step\":%d,\"phase\":\"sft\",\"loss\":1.5,\"tokens_per_s\":%d}\n", s, 1000 + s);
        else
            fprintf(f, "{\"step\":%d,\"phase\":\"rl\",\"reward_mean\":%.3f,\"response_len_mean\":%d,\"kl\":0.01,"
                       "\"entropy\":1.2,\"tokens_per_s\":%d,\"weight_version\":%d}\n",
                    s, 0.01 * s, 100 + s, 900 + s, s - sft);
        if (s % 5 == 0) fprintf(f, "{\"step\":%d,\"phase\":\"eval\",\"eval_accuracy\":0.%d}\n", s, s);
    }
    fclose(f);
}

/* ================================================================ tests */

static void a_full_run_dir_gives_six_charts_with_paths_and_phase_shading(void **state) {
    write_metrics(4, 16);
    sl_report_info in;
    assert_int_equal(sl_report_write(dir, &in), SL_OK);
    assert_int_equal(in.metrics_rows, 20 + 4);
    assert_int_equal(in.metrics_skipped, 0);
    assert_int_equal(in.charts_with_data, 6);
    char *h = read_all("report.html");
    assert_int_equal(count(h, "<svg "), 6);
    assert_int_equal(count(h, "<path class=\"series\""), 6);
    assert_int_equal(path_points(h, "reward_mean"), 16);
    assert_int_equal(path_points(h, "eval_accuracy"), 4);
    assert_int_equal(path_points(h, "tokens_per_s"), 20);
    assert_int_equal(path_points(h, "kl"), 16);
    assert_non_null(strstr(h, "stroke=\"#1f77b4\""));
    assert_int_equal(count(h, "class=\"phase-sft\""), 6);
    assert_int_equal(count(h, "class=\"phase-rl\""), 6);
    assert_non_null(strstr(h, "<!DOCTYPE html>"));
    assert_non_null(strstr(h, "</html>"));
    free(h);
}

static void the_page_is_self_contained(void **state) {
    write_metrics(2, 5);
    put_file("topology.conf", "[run]\nurl = http://example.com/x\n");
    assert_int_equal(sl_report_write(dir, NULL), SL_OK);
    char *h = read_all("report.html");
    assert_int_equal(count(h, "<script"), 0);
    assert_int_equal(count(h, "<link"), 0);
    assert_int_equal(count(h, "src="), 0);
    assert_int_equal(count(h, "@import"), 0);
    assert_int_equal(count(h, "url("), 0);
    /* The only "http" is the escaped text of the config. */
    assert_int_equal(count(h, "http"), 1);
    free(h);
}

static void the_config_is_html_escaped(void **state) {
    put_file("topology.conf", "# <script>alert('x')</script> & \"q\"\n[actor a]\nkind = exec\n");
    sl_report_info in;
    assert_int_equal(sl_report_write(dir, &in), SL_OK);
    assert_true(in.has_config);
    char *h = read_all("report.html");
    assert_non_null(strstr(h, "# &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\n[actor a]"));
    assert_int_equal(count(h, "<script"), 0);
    free(h);
}

static void garbled_metrics_lines_are_skipped_and_counted(void **state) {
    put_file("metrics.jsonl", "{\"step\":1,\"phase\":\"rl\",\"reward_mean\":0.5}\n"
                              "garbage\n"
                              "\n"
                              "   \n"
                              "[1,2]\n"
                              "{\"phase\":\"rl\",\"reward_mean\":1}\n"
                              "{\"step\":\"two\"}\n"
                              "{\"step\":2,\"phase\":\"rl\",\"reward_mean\":\"high\",\"kl\":null}\n"
                              "{\"step\":3,\"phase\":\"rl\",\"reward_mean\":0.7}\n"
                              "\x01\x02\xff\xfe\n"
                              "{\"step\":4,\"phase\":\"rl\",\"reward_mean\":0.9");
    sl_report_info in;
    assert_int_equal(sl_report_write(dir, &in), SL_OK);
    assert_int_equal(in.metrics_rows, 3);
    assert_int_equal(in.metrics_skipped, 6);
    char *h = read_all("report.html");
    assert_int_equal(path_points(h, "reward_mean"), 2);
    assert_non_null(strstr(h, "3 lines used, 6 skipped"));
    free(h);
}

static void an_empty_run_dir_still_gives_a_page_that_says_what_is_missing(void **state) {
    sl_report_info in;
    assert_int_equal(sl_report_write(dir, &in), SL_OK);
    assert_int_equal(in.metrics_rows, 0);
    assert_int_equal(in.charts_with_data, 0);
    assert_int_equal(in.restarts, -1);
    assert_false(in.has_config);
    char *h = read_all("report.html");
    assert_int_equal(count(h, ">no data</text>"), 6);
    assert_non_null(strstr(h, "No topology.conf"));
    assert_non_null(strstr(h, "No record of actor restarts"));
    assert_non_null(strstr(h, "No samples.jsonl"));
    free(h);
}

static void a_single_point_and_a_flat_series_still_draw(void **state) {
    put_file("metrics.jsonl", "{\"step\":7,\"phase\":\"rl\",\"reward_mean\":0,\"kl\":0,\"entropy\":-3}\n");
    sl_report_info in;
    assert_int_equal(sl_report_write(dir, &in), SL_OK);
    char *h = read_all("report.html");
    assert_int_equal(path_points(h, "reward_mean"), 1);
    assert_int_equal(count(h, "nan"), 0);
    assert_int_equal(count(h, "inf"), 0);
    assert_int_equal(count(h, "r=\"4\""), 3);
    free(h);
}

static void a_long_run_is_drawn_with_a_bounded_number_of_points(void **state) {
    char p[256];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (int s = 0; s < 20000; s++) fprintf(f, "{\"step\":%d,\"phase\":\"rl\",\"kl\":%g}\n", s, sin(s * 0.01));
    fclose(f);
    sl_report_info in;
    assert_int_equal(sl_report_write(dir, &in), SL_OK);
    assert_int_equal(in.metrics_rows, 20000);
    char *h = read_all("report.html");
    int n = path_points(h, "kl");
    assert_in_range(n, 1000, 1600);
    assert_int_equal(count(h, "<circle"), 0);
    free(h);
}

static void restarts_come_from_status_json_first(void **state) {
    put_file("status.json", "{\"ok\":true,\"run_dir\":\"/r\",\"actors\":["
                            "{\"name\":\"buffer\",\"kind\":\"buffer\",\"pid\":10,\"state\":\"running\",\"restarts\":0},"
                            "{\"name\":\"roll<out>\",\"kind\":\"rollout\",\"pid\":11,\"state\":\"running\","
                            "\"restarts\":3,\"last_exit\":\"killed by signal 9\"},"
                            "{\"name\":\"trainer\",\"kind\":\"trainer\",\"pid\":12,\"state\":\"running\",\"restarts\":2},"
                            "7]}");
    sl_report_info in;
    assert_int_equal(sl_report_write(dir, &in), SL_OK);
    assert_int_equal(in.restarts, 5);
    char *h = read_all("report.html");
    assert_non_null(strstr(h, "from status.json"));
    assert_int_equal(count(h, "<tr class=\"actor\">"), 3);
    assert_non_null(strstr(h, "roll&lt;out&gt;"));
    assert_non_null(strstr(h, "killed by signal 9"));
    assert_non_null(strstr(h, "5 restarts in total"));
    free(h);
}

static void restarts_come_from_the_supervisor_log_otherwise(void **state) {
    char p[256];
    snprintf(p, sizeof p, "%s/logs", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    put_file("status.json", "{ not json");
    put_file("logs/supervisor.log",
             "2026-11-29T03:00:00.000Z INFO supervisor pid 1: 2 actors\n"
             "2026-11-29T03:00:00.010Z INFO started a (echo) pid 2\n"
             "2026-11-29T03:00:00.020Z INFO started b (echo) pid 3\n"
             "2026-11-29T03:00:01.000Z WARN b (pid 3) ended: killed by signal 9\n"
             "2026-11-29T03:00:01.010Z INFO started b (echo) pid 4\n"
             "2026-11-29T03:00:02.000Z WARN b (pid 4) is hung: no heartbeat for 900 ms: SIGKILL\n"
             "2026-11-29T03:00:02.100Z WARN b (pid 4) ended: hung <x>\n"
             "2026-11-29T03:00:02.110Z INFO started b (echo) pid 5\n"
             "garbage line\n"
             "\n");
    sl_report_info in;
    assert_int_equal(sl_report_write(dir, &in), SL_OK);
    assert_int_equal(in.restarts, 2);
    char *h = read_all("report.html");
    assert_non_null(strstr(h, "from logs/supervisor.log"));
    assert_non_null(strstr(h, "<td>b</td><td class=\"num\">3</td><td class=\"num warn\">2</td>"));
    assert_non_null(strstr(h, "<td>a</td><td class=\"num\">1</td><td class=\"num\">0</td>"));
    assert_non_null(strstr(h, "ended: hung &lt;x&gt;"));
    assert_non_null(strstr(h, "2 restarts in total"));
    free(h);
}

static void samples_of_the_first_and_last_steps_are_tabled(void **state) {
    for (int s = 5; s >= 1; s--)
        for (int k = 0; k < 3; k++) {
            char pr[64], re[64];
            snprintf(pr, sizeof pr, "prompt <%d.%d>", s, k);
            snprintf(re, sizeof re, "response %d.%d & more", s, k);
            assert_int_equal(sl_report_append_sample(dir, s * 10, pr, re, k == 1 ? NAN : 0.5 * k), SL_OK);
        }
    for (int k = 0; k < 20; k++) /* more than SL_REPORT_SAMPLES_PER_STEP at the last step */
        assert_int_equal(sl_report_append_sample(dir, 60, "p", "r", 1), SL_OK);
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, SL_REPORT_SAMPLES_FILE);
    FILE *f = fopen(p, "a");
    fputs("not json\n{\"step\":1.5,\"prompt\":\"a\",\"response\":\"b\",\"reward\":1}\n"
          "{\"step\":1,\"prompt\":\"a\",\"response\":2,\"reward\":1}\n", f);
    fclose(f);
    sl_report_info in;
    assert_int_equal(sl_report_write(dir, &in), SL_OK);
    assert_int_equal(in.samples_rows, 35);
    assert_int_equal(in.samples_skipped, 3);
    char *h = read_all("report.html");
    assert_non_null(strstr(h, "First step: 10"));
    assert_non_null(strstr(h, "Last step: 60"));
    assert_int_equal(count(h, "<tr class=\"sample\">"), 3 + SL_REPORT_SAMPLES_PER_STEP);
    assert_non_null(strstr(h, "prompt &lt;1.2&gt;"));
    assert_non_null(strstr(h, "response 1.0 &amp; more"));
    assert_null(strstr(h, "prompt &lt;3.0&gt;"));
    assert_non_null(strstr(h, "<td class=\"num\">–</td>")); /* null reward */
    free(h);
}

static void sample_lines_round_trip_through_json(void **state) {
    assert_int_equal(sl_report_append_sample(dir, 3, "a \"quoted\"\nline", "\xc3\xa9", 0.25), SL_OK);
    assert_int_equal(sl_report_append_sample(dir, 4, "x", "y", INFINITY), SL_OK);
    assert_int_equal(sl_report_append_sample(dir, 4, "bad \xff utf8", "y", 1), SL_EINVAL);
    assert_int_equal(sl_report_append_sample(dir, 4, NULL, "y", 1), SL_EINVAL);
    assert_int_equal(sl_report_append_sample("/nonexistent/dir", 4, "x", "y", 1), SL_EIO);
    char *s = read_all(SL_REPORT_SAMPLES_FILE);
    assert_string_equal(s, "{\"step\":3,\"prompt\":\"a \\\"quoted\\\"\\nline\",\"response\":\"\xc3\xa9\",\"reward\":0.25}\n"
                           "{\"step\":4,\"prompt\":\"x\",\"response\":\"y\",\"reward\":null}\n");
    free(s);
}

static void a_huge_sample_is_cut_and_shown_shortened(void **state) {
    size_t n = 200000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i += 2) big[i] = (char)0xc3, big[i + 1] = (char)0xa9; /* é */
    big[n] = 0;
    assert_int_equal(sl_report_append_sample(dir, 1, big, "ok", 1), SL_OK);
    free(big);
    sl_report_info in;
    assert_int_equal(sl_report_write(dir, &in), SL_OK);
    assert_int_equal(in.samples_rows, 1);
    char *h = read_all("report.html");
    assert_true(strlen(h) < 40000);
    assert_int_equal(count(h, "\xc3\xa9"), 1000);
    free(h);
}

static void bad_arguments_are_refused(void **state) {
    assert_int_equal(sl_report_write(NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_report_write("", NULL), SL_EINVAL);
    assert_int_equal(sl_report_render(dir, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_report_write("/nonexistent/run/dir", NULL), SL_EIO);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(a_full_run_dir_gives_six_charts_with_paths_and_phase_shading),
        T(the_page_is_self_contained),
        T(the_config_is_html_escaped),
        T(garbled_metrics_lines_are_skipped_and_counted),
        T(an_empty_run_dir_still_gives_a_page_that_says_what_is_missing),
        T(a_single_point_and_a_flat_series_still_draw),
        T(a_long_run_is_drawn_with_a_bounded_number_of_points),
        T(restarts_come_from_status_json_first),
        T(restarts_come_from_the_supervisor_log_otherwise),
        T(samples_of_the_first_and_last_steps_are_tabled),
        T(sample_lines_round_trip_through_json),
        T(a_huge_sample_is_cut_and_shown_shortened),
        T(bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
