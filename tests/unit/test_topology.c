/*
 * test_topology.c — topology.conf loading, validation, overrides, getters,
 * write-back and the reference text.
 *
 * The malformed files live in tests/topology/bad/: each starts with one
 * `# expect: LINE: message` comment per error it must produce (and
 * optionally `# gpus: N`, the GPU count the device check should see). The
 * test loads each and asserts that exactly those errors come out, each as
 * `FILE:LINE: ...message...`. Valid files live in tests/topology/good/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "topology.h"

/* ------------------------------------------------------------ helpers */

static char root[4096];

static const char *fixture(const char *rel) {
    static char path[8192];
    snprintf(path, sizeof path, "%s/tests/topology/%s", root, rel);
    return path;
}

/* Load TEXT; errors collected into a malloc'd string *ERRS (may be NULL). */
static int load_str(const char *text, const char *const *sets, int n, sl_topology **t, char **errs) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    int rc = sl_topology_load_string("t.conf", text, sets, n, t, f);
    fclose(f);
    if (errs) *errs = buf;
    else free(buf);
    return rc;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* Assert that ERRS holds a line starting "PREFIX" and containing SUB. */
static void assert_error_line(const char *errs, const char *prefix, const char *sub) {
    const char *l = errs;
    while (l && *l) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)n, l);
        if (strncmp(line, prefix, strlen(prefix)) == 0 && strstr(line + strlen(prefix), sub)) return;
        l = e ? e + 1 : NULL;
    }
    fail_msg("no error line '%s...%s' in:\n%s", prefix, sub, errs);
}

static const char *full_conf(void) { return fixture("good/full.conf"); }

/* ------------------------------------------------------------ setup */

static int setup(void **state) {
    (void)state;
    const char *r = getenv("SL_ROOT");
    snprintf(root, sizeof root, "%s", r && *r ? r : ".");
    sl_topology_set_gpu_count(0);
    sl_log_init("test_topology", SL_LOG_ERROR);
    return 0;
}

/* ------------------------------------------------------------ bad files */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void every_malformed_file_reports_its_expected_errors_at_the_right_lines(void **state) {
    (void)state;
    DIR *d = opendir(fixture("bad"));
    assert_non_null(d);
    char *names[256];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 256) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".conf") == 0) names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    assert_true(n >= 30);
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s", fixture("bad"));
        strcat(path, "/");
        strcat(path, names[i]);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        char expect[16][1024];
        int ne = 0, gpus = 0;
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            if (strncmp(line, "# expect: ", 10) == 0 && ne < 16) snprintf(expect[ne++], 1024, "%s", line + 10);
            else if (strncmp(line, "# gpus: ", 8) == 0) gpus = atoi(line + 8);
            else break;
        }
        fclose(f);
        if (ne == 0) fail_msg("%s has no '# expect:' line", names[i]);
        sl_topology_set_gpu_count(gpus);
        char *buf = NULL;
        size_t len = 0;
        FILE *ef = open_memstream(&buf, &len);
        sl_topology *t = (sl_topology *)1;
        int rc = sl_topology_load(path, NULL, 0, &t, ef);
        fclose(ef);
        sl_topology_set_gpu_count(0);
        if (rc != ne || count_lines(buf) != ne)
            fail_msg("%s: expected %d error(s), got %d:\n%s", names[i], ne, rc, buf);
        assert_null(t);
        for (int k = 0; k < ne; k++) {
            /* "LINE: message" -> prefix "PATH:LINE: " + substring */
            char *colon = strchr(expect[k], ':');
            assert_non_null(colon);
            char prefix[8400];
            snprintf(prefix, sizeof prefix, "%s:%.*s: ", path, (int)(colon - expect[k]), expect[k]);
            assert_error_line(buf, prefix, colon + 2);
        }
        free(buf);
        free(names[i]);
    }
}

static void a_file_with_three_independent_errors_reports_all_three(void **state) {
    (void)state;
    char *errs;
    sl_topology *t;
    int n = load_str("[supervisor]\nintensty = 5\n"
                     "[actor e]\nkind = echo\ncount = 100\n"
                     "[actor p]\nkind = pinger\npeer = ghost\n",
                     NULL, 0, &t, &errs);
    assert_int_equal(n, 3);
    assert_null(t);
    assert_error_line(errs, "t.conf:2: ", "unknown key 'intensty' in [supervisor] (did you mean 'intensity'?)");
    assert_error_line(errs, "t.conf:5: ", "bad value for 'count': 100 is out of range 1..64");
    assert_error_line(errs, "t.conf:8: ", "peer 'ghost' names no actor");
    free(errs);
}

static void a_missing_file_is_reported_as_cannot_read(void **state) {
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sl_topology *t;
    int n = sl_topology_load("/nonexistent/topology.conf", NULL, 0, &t, f);
    fclose(f);
    assert_true(n > 0);
    assert_null(t);
    assert_string_equal(buf, "/nonexistent/topology.conf: cannot read: No such file or directory\n");
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &len);
    n = sl_topology_load(fixture("good"), NULL, 0, &t, f);
    fclose(f);
    assert_true(n > 0);
    assert_non_null(strstr(buf, ": cannot read: Is a directory"));
    free(buf);
}

static void line_numbers_count_comments_blank_lines_crlf_and_a_bom(void **state) {
    (void)state;
    char *errs;
    sl_topology *t;
    int n = load_str("\xEF\xBB\xBF# bom, then a comment\r\n"
                     "\r\n"
                     "; another comment\r\n"
                     "[actor a]\r\n"
                     "   kind = echo\r\n"
                     "\r\n"
                     "   restart = sometimes ; inline comment\r\n",
                     NULL, 0, &t, &errs);
    assert_int_equal(n, 1);
    assert_error_line(errs, "t.conf:7: ", "bad value for 'restart': 'sometimes' is not one of");
    free(errs);
}

static void syntax_errors_are_all_reported_not_only_the_first(void **state) {
    (void)state;
    char *errs;
    sl_topology *t;
    int n = load_str("[actor a]\nkind = echo\nbroken line\n[run\nname = x\n[actor b]\nkind = echo\nalso broken\n",
                     NULL, 0, &t, &errs);
    assert_int_equal(n, 3);
    assert_error_line(errs, "t.conf:3: ", "expected 'key = value'");
    assert_error_line(errs, "t.conf:4: ", "unterminated section header");
    assert_error_line(errs, "t.conf:8: ", "expected 'key = value'");
    free(errs);
}

static void a_nul_byte_or_an_overlong_line_is_an_error_not_a_crash(void **state) {
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    char path[] = "/tmp/test_topology_nul_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "[actor a]\nkind = e\0cho\n", 23), 23);
    close(fd);
    FILE *f = open_memstream(&buf, &len);
    sl_topology *t;
    assert_int_equal(sl_topology_load(path, NULL, 0, &t, f), 1);
    fclose(f);
    unlink(path);
    assert_error_line(buf, path, ":2: contains a NUL byte");
    free(buf);

    size_t big = SL_TOPOLOGY_MAX_LINE + 10;
    char *text = malloc(big + 64);
    strcpy(text, "[actor a]\nkind = echo\ncommand = ");
    size_t o = strlen(text);
    memset(text + o, 'x', big);
    strcpy(text + o + big, "\n");
    char *errs;
    int n = load_str(text, NULL, 0, &t, &errs);
    assert_int_equal(n, 1);
    assert_error_line(errs, "t.conf:3: ", "line too long");
    free(errs);
    free(text);
}

static void errors_printed_are_capped_but_all_are_counted(void **state) {
    (void)state;
    size_t cap = 300 * 16 + 64;
    char *text = malloc(cap);
    strcpy(text, "[actor a]\nkind = echo\n");
    for (int i = 0; i < 300; i++) strcat(text, "nonsense line\n");
    char *errs;
    sl_topology *t;
    int n = load_str(text, NULL, 0, &t, &errs);
    assert_int_equal(n, 300);
    assert_int_equal(count_lines(errs), SL_TOPOLOGY_MAX_ERRORS + 1);
    assert_non_null(strstr(errs, "too many errors"));
    free(errs);
    free(text);
}

static void too_many_instances_are_refused(void **state) {
    (void)state;
    char text[4096] = "";
    for (int i = 0; i < 17; i++) {
        char s[64];
        snprintf(s, sizeof s, "[actor g%d]\nkind = echo\ncount = 64\n", i);
        strcat(text, s);
    }
    char *errs;
    sl_topology *t;
    assert_int_equal(load_str(text, NULL, 0, &t, &errs), 1);
    assert_non_null(strstr(errs, "1088 actor instances (at most 1024)"));
    free(errs);
}

static void hostile_bytes_never_crash_the_loader(void **state) {
    (void)state;
    /* mutate a valid file at random; every outcome is fine except a crash
     * or a success that does not load again */
    const char *base = "[run]\nname = r\n[supervisor]\nheartbeat_ms = 100\n[actor a]\nkind = exec\n"
                       "command = sh -c 'echo \"hi\"'\n[actor p]\nkind = pinger\npeer = a\n";
    size_t bl = strlen(base);
    char buf[512];
    srand(42);
    int ok = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, base, bl + 1);
        int muts = 1 + rand() % 4;
        for (int m = 0; m < muts; m++) buf[rand() % bl] = (char)(1 + rand() % 255);
        sl_topology *t;
        if (sl_topology_load_string("fuzz", buf, NULL, 0, &t, NULL) == 0) {
            ok++;
            char *w = NULL;
            size_t wl = 0;
            FILE *f = open_memstream(&w, &wl);
            sl_topology_write(t, f);
            fclose(f);
            sl_topology *t2;
            if (sl_topology_load_string("again", w, NULL, 0, &t2, stderr) != 0) fail_msg("write-back fails:\n%s", w);
            assert_int_equal(t2->n_actors, t->n_actors);
            sl_topology_free(t2);
            free(w);
            sl_topology_free(t);
        }
    }
    assert_true(ok > 0);
}

/* ------------------------------------------------------------ good files */

static void a_minimal_file_gets_every_default(void **state) {
    (void)state;
    sl_topology *t;
    assert_int_equal(sl_topology_load(fixture("good/minimal.conf"), NULL, 0, &t, stderr), 0);
    assert_string_equal(t->run_name, "default");
    assert_string_equal(t->run_dir, "runs/default");
    assert_int_equal(t->supervisor.strategy, SL_STRATEGY_ONE_FOR_ONE);
    assert_int_equal(t->supervisor.intensity, 5);
    assert_int_equal(t->supervisor.period, 10);
    assert_int_equal(t->supervisor.heartbeat_ms, 500);
    assert_int_equal(t->supervisor.heartbeat_timeout_ms, 3000);
    assert_int_equal(t->n_actors, 1);
    const sl_actor_spec *a = &t->actors[0];
    assert_string_equal(a->name, "solo");
    assert_string_equal(a->group, "solo");
    assert_string_equal(a->section, "actor solo");
    assert_int_equal(a->kind, SL_KIND_ECHO);
    assert_string_equal(a->kind_name, "echo");
    assert_int_equal(a->restart, SL_RESTART_PERMANENT);
    assert_int_equal(a->shutdown_ms, 2000);
    assert_string_equal(a->device, "cpu");
    assert_int_equal(a->cuda_device, -1);
    assert_null(a->argv);
    assert_null(a->command);
    assert_null(a->peer);
    assert_int_equal(a->heartbeat, SL_HEARTBEAT_NNG);
    assert_int_equal(a->line, 2);
    /* RL keys come from the table's defaults */
    assert_int_equal(sl_topology_get_int(t, "rollout", "rollout_batch_size"), 16);
    assert_int_equal(sl_topology_get_int(t, "rollout", "rollout_top_k"), -1);
    assert_true(sl_topology_get_double(t, "algorithm", "eps_clip") == 0.2);
    assert_string_equal(sl_topology_get_str(t, "algorithm", "advantage_estimator"), "grpo");
    assert_int_equal(sl_topology_get_enum(t, "algorithm", "advantage_estimator"), 0);
    assert_false(sl_topology_get_bool(t, "data", "apply_chat_template"));
    assert_string_equal(sl_topology_get_str(t, "data", "input_key"), "input");
    assert_string_equal(sl_topology_get_str(t, "run", "run_dir"), "runs/default");
    assert_string_equal(sl_topology_get_str(t, "actor solo", "heartbeat"), "nng");
    assert_false(sl_topology_is_set(t, "rollout", "rollout_batch_size"));
    assert_true(sl_topology_is_set(t, "actor solo", "kind"));
    sl_topology_free(t);
}

static void a_full_file_loads_with_the_values_it_sets(void **state) {
    (void)state;
    sl_topology *t;
    assert_int_equal(sl_topology_load(full_conf(), NULL, 0, &t, stderr), 0);
    assert_string_equal(t->run_name, "full-run");
    assert_string_equal(t->run_dir, "/tmp/slime-full");
    assert_int_equal(t->supervisor.strategy, SL_STRATEGY_REST_FOR_ONE);
    assert_int_equal(t->supervisor.intensity, 2);
    assert_int_equal(t->supervisor.period, 30);
    assert_int_equal(t->supervisor.heartbeat_ms, 250);
    assert_int_equal(t->supervisor.heartbeat_timeout_ms, 2000);
    assert_int_equal(sl_topology_get_int(t, "run", "seed"), 7);
    assert_string_equal(sl_topology_get_str(t, "run", "log_level"), "debug");
    assert_int_equal(sl_topology_get_enum(t, "run", "resume"), 1);
    assert_string_equal(sl_topology_get_str(t, "model", "path"), "/models/Qwen3-0.6B");
    assert_string_equal(sl_topology_get_str(t, "model", "family"), "qwen3");
    assert_true(sl_topology_get_bool(t, "data", "apply_chat_template"));
    assert_true(sl_topology_get_bool(t, "data", "rollout_shuffle"));
    assert_string_equal(sl_topology_get_str(t, "data", "label_key"), "answer");
    assert_int_equal(sl_topology_get_int(t, "rollout", "n_samples_per_prompt"), 16);
    assert_true(sl_topology_get_double(t, "rollout", "rollout_temperature") == 0.7);
    assert_true(sl_topology_get_double(t, "rollout", "rollout_top_p") == 0.95);
    assert_true(sl_topology_get_bool(t, "rollout", "async"));
    assert_string_equal(sl_topology_get_str(t, "rollout", "rollout_stop"), "</answer>|\\n\\n");
    assert_int_equal(sl_topology_get_int(t, "reward", "reward_timeout_ms"), 5000);
    assert_int_equal(sl_topology_get_enum(t, "algorithm", "advantage_estimator"), 3);
    assert_true(sl_topology_get_bool(t, "algorithm", "use_kl_loss"));
    assert_string_equal(sl_topology_get_str(t, "algorithm", "kl_loss_type"), "low_var_kl");
    assert_true(sl_topology_get_double(t, "trainer", "lr") == 2e-6);
    assert_true(sl_topology_get_double(t, "trainer", "adam_beta2") == 0.98); /* default */
    assert_int_equal(sl_topology_get_int(t, "trainer", "global_batch_size"), 32);
    assert_true(sl_topology_get_double(t, "trainer", "global_batch_size") == 32.0);
    const sl_actor_spec *b = sl_topology_find_actor(t, "buffer");
    assert_non_null(b);
    assert_int_equal(b->restart, SL_RESTART_TRANSIENT);
    assert_int_equal(b->shutdown_ms, 500);
    assert_int_equal(sl_topology_find_actor(t, "trainer")->shutdown_ms, 60000);
    assert_int_equal(sl_topology_find_actor(t, "reward.1")->restart, SL_RESTART_TEMPORARY);
    assert_int_equal(sl_topology_find_actor(t, "rollout.0")->heartbeat, SL_HEARTBEAT_MAILBOX);
    const sl_actor_spec *p = sl_topology_find_actor(t, "ping");
    assert_string_equal(p->peer, "rollout.2");
    assert_int_equal(p->interval_ms, 50);
    assert_int_equal(sl_topology_get_int(t, "actor ping", "interval_ms"), 50);
    assert_int_equal(sl_topology_get_int(t, "actor rollout.1", "count"), 3); /* instance name works */
    sl_topology_free(t);
}

static void count_expands_into_named_instances_in_file_order(void **state) {
    (void)state;
    sl_topology *t;
    assert_int_equal(sl_topology_load(full_conf(), NULL, 0, &t, stderr), 0);
    const char *want[] = {"buffer", "rollout.0", "rollout.1", "rollout.2", "reward.0",
                          "reward.1", "trainer",   "ping",      "custom"};
    assert_int_equal(t->n_actors, 9);
    for (int i = 0; i < 9; i++) assert_string_equal(t->actors[i].name, want[i]);
    assert_string_equal(t->actors[2].group, "rollout");
    assert_int_equal(t->actors[2].index, 1);
    assert_int_equal(t->actors[2].count, 3);
    assert_int_equal(t->actors[0].count, 1);
    assert_null(sl_topology_find_actor(t, "rollout"));
    assert_null(sl_topology_find_actor(t, "rollout.3"));
    sl_topology_free(t);
}

static void an_exec_command_is_split_like_a_shell_without_expansion(void **state) {
    (void)state;
    sl_topology *t;
    assert_int_equal(sl_topology_load(full_conf(), NULL, 0, &t, stderr), 0);
    const sl_actor_spec *c = sl_topology_find_actor(t, "custom");
    assert_int_equal(c->kind, SL_KIND_EXEC);
    assert_int_equal(c->heartbeat, SL_HEARTBEAT_NONE);
    assert_int_equal(c->argc, 5);
    assert_string_equal(c->argv[0], "python3");
    assert_string_equal(c->argv[1], "tests/my actor.py");
    assert_string_equal(c->argv[2], "--tag");
    assert_string_equal(c->argv[3], "a b");
    assert_string_equal(c->argv[4], "c d");
    assert_null(c->argv[5]);
    assert_string_equal(c->command, "python3 \"tests/my actor.py\" --tag 'a b' c\\ d");
    sl_topology_free(t);

    char *errs;
    assert_int_equal(load_str("[actor x]\nkind = exec\ncommand = run \"$HOME\" \\$x\n", NULL, 0, &t, &errs), 0);
    free(errs);
    assert_string_equal(t->actors[0].argv[1], "$HOME");
    assert_string_equal(t->actors[0].argv[2], "$x");
    assert_int_equal(t->actors[0].heartbeat, SL_HEARTBEAT_MAILBOX); /* exec's default */
    assert_string_equal(sl_topology_get_str(t, "actor x", "heartbeat"), "mailbox");
    sl_topology_free(t);
}

static void indentation_inline_comments_and_colons_are_understood(void **state) {
    (void)state;
    sl_topology *t;
    assert_int_equal(sl_topology_load(fixture("good/layout.conf"), NULL, 0, &t, stderr), 0);
    assert_string_equal(t->run_name, "layout");
    assert_int_equal(sl_topology_get_int(t, "run", "seed"), 99);
    assert_int_equal(t->n_actors, 3);
    assert_string_equal(t->actors[1].name, "a.1");
    assert_string_equal(t->actors[2].peer, "a.1");
    sl_topology_free(t);
}

static void a_value_longer_than_inih_line_buffer_is_kept_whole(void **state) {
    (void)state;
    char text[2048] = "[actor x]\nkind = exec\ncommand = /bin/echo";
    for (int i = 0; i < 100; i++) strcat(text, " word");
    strcat(text, "   ; trailing comment\n[actor y]\nkind = echo\n");
    sl_topology *t;
    char *errs;
    assert_int_equal(load_str(text, NULL, 0, &t, &errs), 0);
    free(errs);
    assert_int_equal(t->actors[0].argc, 101);
    assert_int_equal((int)strlen(t->actors[0].command), 9 + 500);
    sl_topology_free(t);
}

static void cuda_devices_are_accepted_when_the_machine_has_them(void **state) {
    (void)state;
    sl_topology_set_gpu_count(2);
    sl_topology *t;
    char *errs;
    assert_int_equal(load_str("[actor a]\nkind = echo\ndevice = cuda:1\n", NULL, 0, &t, &errs), 0);
    free(errs);
    assert_int_equal(t->actors[0].cuda_device, 1);
    assert_string_equal(t->actors[0].device, "cuda:1");
    sl_topology_free(t);
    assert_int_equal(sl_topology_gpu_count(), 2);
    sl_topology_set_gpu_count(-1); /* detection: the environment variable comes first */
    setenv("SL_GPU_COUNT", "3", 1);
    assert_int_equal(sl_topology_gpu_count(), 3);
    unsetenv("SL_GPU_COUNT");
    sl_topology_set_gpu_count(0);
    assert_int_equal(load_str("[actor a]\nkind = echo\ndevice = cuda:1\n", NULL, 0, &t, &errs), 1);
    assert_error_line(errs, "t.conf:3: ", "device cuda:1 requested but this machine has no CUDA GPU");
    free(errs);
}

/* ------------------------------------------------------------ --set */

static void set_overrides_replace_file_values(void **state) {
    (void)state;
    const char *sets[] = {"supervisor.strategy=one_for_all", "actor.rollout.count = 4",
                          "rollout.rollout_temperature=0.3", "actor.extra.kind=echo",
                          "run.name=over",                   "actor.custom.command=/bin/sleep 5"};
    sl_topology *t;
    assert_int_equal(sl_topology_load(full_conf(), sets, 6, &t, stderr), 0);
    assert_int_equal(t->supervisor.strategy, SL_STRATEGY_ONE_FOR_ALL);
    assert_string_equal(t->run_name, "over");
    assert_true(sl_topology_get_double(t, "rollout", "rollout_temperature") == 0.3);
    assert_non_null(sl_topology_find_actor(t, "rollout.3"));
    assert_null(sl_topology_find_actor(t, "rollout.4"));
    const sl_actor_spec *x = sl_topology_find_actor(t, "extra");
    assert_non_null(x); /* a new actor, appended last */
    assert_ptr_equal(x, &t->actors[t->n_actors - 1]);
    assert_int_equal(x->line, 0);
    assert_int_equal(sl_topology_find_actor(t, "custom")->argc, 2);
    /* the entry remembers where its value came from */
    int found = 0;
    for (int i = 0; i < t->n_entries; i++)
        if (strcmp(t->entries[i].section, "supervisor") == 0 && strcmp(t->entries[i].key, "strategy") == 0) {
            assert_string_equal(t->entries[i].file, "--set");
            assert_int_equal(t->entries[i].line, 1);
            found++;
        }
    assert_int_equal(found, 1);
    sl_topology_free(t);
}

static void set_creates_a_missing_section_and_the_last_set_wins(void **state) {
    (void)state;
    const char *sets[] = {"trainer.lr=1e-5", "trainer.lr=3e-5"};
    sl_topology *t;
    char *errs;
    assert_int_equal(load_str("[actor a]\nkind = echo\n", sets, 2, &t, &errs), 0);
    free(errs);
    assert_true(sl_topology_get_double(t, "trainer", "lr") == 3e-5);
    assert_int_equal(t->n_sections, 2);
    assert_string_equal(t->sections[1].name, "trainer");
    sl_topology_free(t);
}

static void set_overrides_are_validated_like_file_lines(void **state) {
    (void)state;
    const char *sets[] = {
        "actor.a.count=99",                 /* 1: out of range */
        "supervisor.intensty=3",            /* 2: unknown key, suggestion */
        "nosection",                        /* 3: malformed */
        "bogus.key=1",                      /* 4: unknown section */
        "actor.a=3",                        /* 5: malformed actor override */
        "actor.b.kind=exec",                /* 6: new exec actor without command */
        "actor.a.command=x ;y",             /* 7: would be a comment on reload */
        "actor.bad/name.kind=echo",         /* 8: bad actor name */
        "supervisor.heartbeat_ms=4000",     /* 9: >= the default timeout */
    };
    char *errs;
    sl_topology *t;
    int n = load_str("[actor a]\nkind = echo\n", sets, 9, &t, &errs);
    assert_null(t);
    assert_int_equal(n, 9);
    assert_int_equal(count_lines(errs), 9);
    assert_error_line(errs, "--set:1: ", "bad value for 'count': 99 is out of range 1..64");
    assert_error_line(errs, "--set:2: ", "unknown key 'intensty' in [supervisor] (did you mean 'intensity'?)");
    assert_error_line(errs, "--set:3: ", "expected section.key=value");
    assert_error_line(errs, "--set:4: ", "unknown section '[bogus]'");
    assert_error_line(errs, "--set:5: ", "expected actor.NAME.key=value");
    assert_error_line(errs, "--set:6: ", "[actor b] kind exec needs key 'command'");
    assert_error_line(errs, "--set:7: ", "starts a comment");
    assert_error_line(errs, "--set:8: ", "bad actor name 'bad/name'");
    assert_error_line(errs, "--set:9: ", "heartbeat_timeout_ms (3000) must exceed heartbeat_ms (4000)");
    free(errs);
}

/* ------------------------------------------------------------ write */

static void compare_topologies(const sl_topology *a, const sl_topology *b) {
    assert_string_equal(a->run_name, b->run_name);
    assert_string_equal(a->run_dir, b->run_dir);
    assert_memory_equal(&a->supervisor, &b->supervisor, sizeof a->supervisor);
    assert_int_equal(a->n_sections, b->n_sections);
    for (int i = 0; i < a->n_sections; i++) assert_string_equal(a->sections[i].name, b->sections[i].name);
    assert_int_equal(a->n_entries, b->n_entries);
    for (int i = 0; i < a->n_entries; i++) {
        assert_string_equal(a->entries[i].section, b->entries[i].section);
        assert_string_equal(a->entries[i].key, b->entries[i].key);
        assert_string_equal(a->entries[i].value, b->entries[i].value);
    }
    assert_int_equal(a->n_actors, b->n_actors);
    for (int i = 0; i < a->n_actors; i++) {
        const sl_actor_spec *x = &a->actors[i], *y = &b->actors[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->restart, y->restart);
        assert_int_equal(x->shutdown_ms, y->shutdown_ms);
        assert_string_equal(x->device, y->device);
        assert_int_equal(x->heartbeat, y->heartbeat);
        assert_int_equal(x->argc, y->argc);
        for (int k = 0; k < x->argc; k++) assert_string_equal(x->argv[k], y->argv[k]);
        assert_true((x->peer == NULL) == (y->peer == NULL));
        if (x->peer) assert_string_equal(x->peer, y->peer);
        assert_int_equal(x->interval_ms, y->interval_ms);
    }
}

static void write_round_trips_with_overrides_applied(void **state) {
    (void)state;
    const char *sets[] = {"actor.rollout.count=5", "trainer.lr=5e-6", "actor.late.kind=echo"};
    sl_topology *t;
    assert_int_equal(sl_topology_load(full_conf(), sets, 3, &t, stderr), 0);
    char *w = NULL;
    size_t wl = 0;
    FILE *f = open_memstream(&w, &wl);
    assert_int_equal(sl_topology_write(t, f), 0);
    fclose(f);
    sl_topology *t2;
    assert_int_equal(sl_topology_load_string("written", w, NULL, 0, &t2, stderr), 0);
    compare_topologies(t, t2);
    assert_true(sl_topology_get_double(t2, "trainer", "lr") == 5e-6);
    /* and writing the copy gives the same text, apart from the source name */
    char *w2 = NULL;
    size_t wl2 = 0;
    f = open_memstream(&w2, &wl2);
    sl_topology_write(t2, f);
    fclose(f);
    assert_string_equal(strchr(w, '\n'), strchr(w2, '\n'));
    free(w);
    free(w2);
    sl_topology_free(t);
    sl_topology_free(t2);
}

/* ------------------------------------------------------------ reference */

static void print_reference_lists_every_key_of_the_table(void **state) {
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sl_topology_print_reference(f);
    fclose(f);
    size_t n;
    const sl_key_def *keys = sl_topology_keys(&n);
    assert_true(n >= 70);
    for (size_t i = 0; i < n; i++) {
        char hdr[64], line[128];
        if (strcmp(keys[i].section, "actor") == 0) snprintf(hdr, sizeof hdr, "\n[actor NAME]");
        else snprintf(hdr, sizeof hdr, "\n[%s]\n", keys[i].section);
        const char *s = strstr(buf, hdr);
        if (!s) fail_msg("no section %s in the reference", keys[i].section);
        snprintf(line, sizeof line, "\n  %s ", keys[i].key);
        const char *k = strstr(s, line);
        const char *next = strstr(s + 1, "\n[");
        if (!k || (next && k > next)) fail_msg("key %s.%s missing from the reference", keys[i].section, keys[i].key);
        assert_non_null(strstr(k, keys[i].help));
        /* the table's defaults are themselves valid values */
        if (keys[i].def && *keys[i].def && !keys[i].required) {
            char text[512];
            if (strcmp(keys[i].section, "actor") == 0)
                snprintf(text, sizeof text, "[actor a]\nkind = %s\n%s = %s\n",
                         keys[i].kinds ? (strchr(keys[i].kinds, '|') ? "exec" : keys[i].kinds) : "echo",
                         keys[i].key, keys[i].def);
            else
                snprintf(text, sizeof text, "[actor a]\nkind = echo\n[%s]\n%s = %s\n%s", keys[i].section,
                         keys[i].key, keys[i].def, strcmp(keys[i].section, "model") == 0 ? "path = m\n" : "");
            sl_topology *t;
            char *errs;
            int rc = load_str(text, NULL, 0, &t, &errs);
            /* pinger keys need a peer, exec keys a command: only the key itself must not be refused */
            if (rc && strstr(errs, "bad value")) fail_msg("default of %s.%s refused:\n%s", keys[i].section, keys[i].key, errs);
            free(errs);
            sl_topology_free(t);
        }
    }
    assert_non_null(strstr(buf, "one_for_one, one_for_all, rest_for_one"));
    free(buf);
}

/* ------------------------------------------------------------ misc */

static void getters_of_unknown_keys_return_zero_values(void **state) {
    (void)state;
    sl_topology *t;
    char *errs;
    assert_int_equal(load_str("[actor a]\nkind = echo\n", NULL, 0, &t, &errs), 0);
    free(errs);
    assert_string_equal(sl_topology_get_str(t, "trainer", "no_such_key"), "");
    assert_int_equal(sl_topology_get_int(t, "nosection", "lr"), 0);
    assert_false(sl_topology_get_bool(t, "trainer", "lr"));
    assert_int_equal(sl_topology_get_enum(t, "trainer", "lr"), -1);
    assert_null(sl_topology_key_find("trainer", "no_such_key"));
    assert_non_null(sl_topology_key_find("actor zzz", "kind"));
    sl_topology_free(t);
}

static void free_of_null_is_safe(void **state) {
    (void)state;
    sl_topology_free(NULL);
    assert_string_equal(sl_restart_name(SL_RESTART_TEMPORARY), "temporary");
    assert_string_equal(sl_strategy_name(SL_STRATEGY_REST_FOR_ONE), "rest_for_one");
    assert_string_equal(sl_heartbeat_name(SL_HEARTBEAT_MAILBOX), "mailbox");
    assert_string_equal(sl_actor_kind_name(SL_KIND_PINGER), "pinger");
    assert_string_equal(sl_restart_name((sl_restart)42), "?");
}

/* Run cli_load with stderr captured into a malloc'd string. */
static int cli_capture(const char *path, const char *const *sets, int n, sl_topology **t, char **out) {
    char tmp[] = "/tmp/test_topology_err_XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    int rc = sl_topology_cli_load(path, sets, n, t);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    *out = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, *out, (size_t)len, 0), len);
    close(fd);
    unlink(tmp);
    return rc;
}

static void cli_load_exits_2_with_errors_on_stderr_and_0_when_valid(void **state) {
    (void)state;
    sl_topology *t;
    char *out;
    char path[8192];
    snprintf(path, sizeof path, "%s", fixture("bad/three_errors.conf"));
    assert_int_equal(cli_capture(path, NULL, 0, &t, &out), 2);
    assert_null(t);
    assert_int_equal(count_lines(out), 3);
    char prefix[8300];
    snprintf(prefix, sizeof prefix, "%s:8: ", path);
    assert_error_line(out, prefix, "unknown key 'intensty'");
    free(out);

    assert_int_equal(cli_capture("/nonexistent.conf", NULL, 0, &t, &out), 2);
    assert_string_equal(out, "/nonexistent.conf: cannot read: No such file or directory\n");
    free(out);

    snprintf(path, sizeof path, "%s", fixture("good/minimal.conf"));
    const char *bad_set[] = {"actor.solo.count=x"};
    assert_int_equal(cli_capture(path, bad_set, 1, &t, &out), 2);
    assert_string_equal(out, "--set:1: bad value for 'count': 'x' is not an integer\n");
    free(out);

    assert_int_equal(cli_capture(path, NULL, 0, &t, &out), 0);
    assert_non_null(t);
    assert_string_equal(out, "");
    free(out);
    sl_topology_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_malformed_file_reports_its_expected_errors_at_the_right_lines),
        cmocka_unit_test(a_file_with_three_independent_errors_reports_all_three),
        cmocka_unit_test(a_missing_file_is_reported_as_cannot_read),
        cmocka_unit_test(line_numbers_count_comments_blank_lines_crlf_and_a_bom),
        cmocka_unit_test(syntax_errors_are_all_reported_not_only_the_first),
        cmocka_unit_test(a_nul_byte_or_an_overlong_line_is_an_error_not_a_crash),
        cmocka_unit_test(errors_printed_are_capped_but_all_are_counted),
        cmocka_unit_test(too_many_instances_are_refused),
        cmocka_unit_test(hostile_bytes_never_crash_the_loader),
        cmocka_unit_test(a_minimal_file_gets_every_default),
        cmocka_unit_test(a_full_file_loads_with_the_values_it_sets),
        cmocka_unit_test(count_expands_into_named_instances_in_file_order),
        cmocka_unit_test(an_exec_command_is_split_like_a_shell_without_expansion),
        cmocka_unit_test(indentation_inline_comments_and_colons_are_understood),
        cmocka_unit_test(a_value_longer_than_inih_line_buffer_is_kept_whole),
        cmocka_unit_test(cuda_devices_are_accepted_when_the_machine_has_them),
        cmocka_unit_test(set_overrides_replace_file_values),
        cmocka_unit_test(set_creates_a_missing_section_and_the_last_set_wins),
        cmocka_unit_test(set_overrides_are_validated_like_file_lines),
        cmocka_unit_test(write_round_trips_with_overrides_applied),
        cmocka_unit_test(print_reference_lists_every_key_of_the_table),
        cmocka_unit_test(getters_of_unknown_keys_return_zero_values),
        cmocka_unit_test(free_of_null_is_safe),
        cmocka_unit_test(cli_load_exits_2_with_errors_on_stderr_and_0_when_valid),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
