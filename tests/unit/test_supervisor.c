/*
 * test_supervisor.c — the supervisor with real child processes: it starts
 * build/slime-supervisor on small topologies of demo actors (echo, pinger)
 * in a fresh /tmp run directory, kills and stops children, and reads the
 * outcome through the control plane (status JSON), RUN_DIR/events.log and
 * exit statuses. Every wait is bounded.
 *
 * Needs $SL_BUILD (tests/run.sh sets it) or ./build holding slime-supervisor,
 * slime-actor and slime-ctl; skips (77) when they are missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char bindir[1024];
static char base[64];    /* /tmp/slsv.XXXXXX */
static char run_dir[96]; /* base/run */
static char conf[96];    /* base/t.conf */
static pid_t sup = -1;

/* ============================================================ helpers */

static int setup(void **state) {
    (void)state;
    snprintf(base, sizeof base, "/tmp/slsv.XXXXXX");
    if (!mkdtemp(base)) return -1;
    snprintf(run_dir, sizeof run_dir, "%s/run", base);
    snprintf(conf, sizeof conf, "%s/t.conf", base);
    sup = -1;
    return 0;
}

static bool gone(pid_t pid);

static int teardown(void **state) {
    (void)state;
    if (sup > 0) { /* a failed test: never leave a supervisor behind */
        kill(sup, SIGKILL);
        waitpid(sup, NULL, 0);
        sup = -1;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

/* SL_TIME_SCALE (default 1; `make asan` sets it): every deadline and
 * heartbeat timeout of these tests is multiplied by it, for slow builds on
 * loaded machines. What is asserted stays the same. */
static double time_scale(void) {
    const char *v = getenv("SL_TIME_SCALE");
    double s = v && *v ? atof(v) : 1.0;
    return s >= 1.0 ? s : 1.0;
}
#define TMS(ms) ((int)((ms) * time_scale()))

/* CONF = TEXT with every heartbeat_timeout_ms scaled by SL_TIME_SCALE. */
static void write_conf(const char *text) {
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    const char *key = "heartbeat_timeout_ms = ";
    for (const char *p = text; *p;) {
        const char *k = strstr(p, key);
        if (!k) {
            fputs(p, f);
            break;
        }
        fwrite(p, 1, (size_t)(k - p) + strlen(key), f);
        char *end;
        long v = strtol(k + strlen(key), &end, 10);
        fprintf(f, "%d", TMS(v));
        p = end;
    }
    fclose(f);
}

/* Start slime-supervisor CONF --run-dir RUN_DIR [EXTRA...] with output to
 * base/sup.out. */
static pid_t start_supervisor(const char *const *extra) {
    char prog[1100], out[128];
    snprintf(prog, sizeof prog, "%s/slime-supervisor", bindir);
    snprintf(out, sizeof out, "%s/sup.out", base);
    const char *argv[16] = {prog, conf, "--run-dir", run_dir};
    int n = 4;
    for (; extra && *extra && n < 15; extra++) argv[n++] = *extra;
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(prog, (char **)argv);
        _exit(127);
    }
    return pid;
}

/* Wait up to MS for PID to exit; its status, or -1 on timeout. */
static int wait_status(pid_t pid, int ms) {
    uint64_t end = sl_now_ms() + (uint64_t)TMS(ms);
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (sl_now_ms() >= end) return -1;
        usleep(10000);
    }
}

static json_t *status(void) {
    char *reply = NULL;
    if (sl_control_request(run_dir, "status --json", &reply, TMS(2000)) != SL_OK) return NULL;
    json_t *o = json_loads(reply, 0, NULL);
    free(reply);
    return o;
}

static json_t *actor(json_t *st, const char *name) {
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(st, "actors"), i, a) {
        if (strcmp(json_string_value(json_object_get(a, "name")), name) == 0) return a;
    }
    return NULL;
}

static long long ival(json_t *st, const char *name, const char *field) {
    return json_integer_value(json_object_get(actor(st, name), field));
}

static const char *sval(json_t *st, const char *name, const char *field) {
    const char *v = json_string_value(json_object_get(actor(st, name), field));
    return v ? v : "";
}

/* Poll status until every actor is running (or one named RESTARTED has
 * RESTARTS restarts and is running, when RESTARTED is not NULL). Returns
 * the last status (caller decrefs) or NULL on timeout. */
typedef bool (*pred_fn)(json_t *st, const void *arg);

static json_t *wait_for(pred_fn pred, const void *arg, int ms) {
    uint64_t end = sl_now_ms() + (uint64_t)TMS(ms);
    while (sl_now_ms() < end) {
        json_t *st = status();
        if (st && pred(st, arg)) return st;
        json_decref(st);
        usleep(30000);
    }
    return NULL;
}

static bool all_running(json_t *st, const void *arg) {
    (void)arg;
    size_t i;
    json_t *a;
    json_t *arr = json_object_get(st, "actors");
    if (json_array_size(arr) == 0) return false;
    json_array_foreach(arr, i, a) {
        if (strcmp(json_string_value(json_object_get(a, "state")), "running") != 0) return false;
    }
    return true;
}

typedef struct want {
    const char *name;
    int restarts;
    const char *state;
} want;

/* Every actor running, except those listed; listed actors with restarts. */
static bool matches(json_t *st, const void *arg) {
    const want *w = arg;
    for (; w->name; w++) {
        if (ival(st, w->name, "restarts") != w->restarts) return false;
        if (strcmp(sval(st, w->name, "state"), w->state) != 0) return false;
    }
    return true;
}

static bool gone(pid_t pid) {
    if (kill(pid, 0) != 0) return errno == ESRCH;
    /* A zombie whose parent (init in a container) has not reaped it yet is
     * gone as far as we care. */
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static bool all_gone(const pid_t *pids, int n, int ms) {
    uint64_t end = sl_now_ms() + (uint64_t)TMS(ms);
    for (;;) {
        bool ok = true;
        for (int i = 0; i < n; i++) ok = ok && gone(pids[i]);
        if (ok) return true;
        if (sl_now_ms() >= end) return false;
        usleep(10000);
    }
}

static char proc_state(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f) return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

/* Stop the supervisor with SIGTERM; returns its exit status. */
static int stop_supervisor(void) {
    kill(sup, SIGTERM);
    int rc = wait_status(sup, 10000);
    if (rc >= 0) sup = -1;
    return rc;
}

static const char *three_echos(const char *strategy, const char *b_restart) {
    static char text[1024];
    snprintf(text, sizeof text,
             "[run]\nname = t\n"
             "[supervisor]\nstrategy = %s\nintensity = 10\nperiod = 10\n"
             "heartbeat_ms = 50\nheartbeat_timeout_ms = 1500\n"
             "[actor a]\nkind = echo\nshutdown_ms = 1000\n"
             "[actor b]\nkind = echo\nrestart = %s\nshutdown_ms = 1000\n"
             "[actor c]\nkind = echo\nshutdown_ms = 1000\n",
             strategy, b_restart);
    return text;
}

/* Start the topology in CONF and wait until all actors run; returns their
 * pids in order a, b, c. */
static json_t *start_and_wait(pid_t pids[3]) {
    sup = start_supervisor(NULL);
    json_t *st = wait_for(all_running, NULL, 8000);
    assert_non_null(st);
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        pids[i] = (pid_t)ival(st, names[i], "pid");
        assert_true(pids[i] > 0);
    }
    return st;
}

/* ============================================================ strategies */

static void one_for_one_restarts_only_the_killed_child(void **state) {
    (void)state;
    write_conf(three_echos("one_for_one", "permanent"));
    pid_t p[3];
    json_decref(start_and_wait(p));
    assert_int_equal(kill(p[1], SIGKILL), 0);
    want w[] = {{"a", 0, "running"}, {"b", 1, "running"}, {"c", 0, "running"}, {0}};
    json_t *st = wait_for(matches, w, 5000);
    assert_non_null(st);
    assert_int_equal(ival(st, "a", "pid"), p[0]);
    assert_int_equal(ival(st, "c", "pid"), p[2]);
    assert_int_not_equal(ival(st, "b", "pid"), p[1]);
    assert_string_equal(sval(st, "b", "last_exit"), "signal 9");
    json_decref(st);
    assert_int_equal(stop_supervisor(), 0);
}

static void one_for_all_restarts_every_child(void **state) {
    (void)state;
    write_conf(three_echos("one_for_all", "permanent"));
    pid_t p[3];
    json_decref(start_and_wait(p));
    assert_int_equal(kill(p[1], SIGKILL), 0);
    want w[] = {{"a", 1, "running"}, {"b", 1, "running"}, {"c", 1, "running"}, {0}};
    json_t *st = wait_for(matches, w, 6000);
    assert_non_null(st);
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) assert_int_not_equal(ival(st, names[i], "pid"), p[i]);
    assert_string_equal(sval(st, "b", "last_exit"), "signal 9");
    assert_string_equal(sval(st, "a", "last_exit"), "exit 0"); /* stopped cleanly by us */
    json_decref(st);
    assert_true(all_gone(p, 3, 2000));
    assert_int_equal(stop_supervisor(), 0);
}

static void rest_for_one_restarts_the_child_and_those_after_it(void **state) {
    (void)state;
    write_conf(three_echos("rest_for_one", "permanent"));
    pid_t p[3];
    json_decref(start_and_wait(p));
    assert_int_equal(kill(p[1], SIGKILL), 0);
    want w[] = {{"a", 0, "running"}, {"b", 1, "running"}, {"c", 1, "running"}, {0}};
    json_t *st = wait_for(matches, w, 6000);
    assert_non_null(st);
    assert_int_equal(ival(st, "a", "pid"), p[0]);
    assert_int_not_equal(ival(st, "b", "pid"), p[1]);
    assert_int_not_equal(ival(st, "c", "pid"), p[2]);
    json_decref(st);
    assert_int_equal(stop_supervisor(), 0);
}

/* restart_together: a group of two restarts as one under one_for_one;
 * the others are untouched. */
static void a_restart_together_group_restarts_as_one(void **state) {
    (void)state;
    write_conf("[run]\nname = t\n"
               "[supervisor]\nstrategy = one_for_one\nintensity = 10\nperiod = 10\n"
               "heartbeat_ms = 50\nheartbeat_timeout_ms = 1500\n"
               "[actor a]\nkind = echo\nshutdown_ms = 1000\n"
               "[actor g]\nkind = echo\ncount = 2\nrestart_together = true\nshutdown_ms = 1000\n"
               "[actor c]\nkind = echo\nshutdown_ms = 1000\n");
    sup = start_supervisor(NULL);
    json_t *st = wait_for(all_running, NULL, 8000);
    assert_non_null(st);
    const char *names[4] = {"a", "g.0", "g.1", "c"};
    pid_t p[4];
    for (int i = 0; i < 4; i++) p[i] = (pid_t)ival(st, names[i], "pid");
    json_decref(st);
    assert_int_equal(kill(p[2], SIGKILL), 0);
    want w[] = {{"a", 0, "running"}, {"g.0", 1, "running"}, {"g.1", 1, "running"}, {"c", 0, "running"}, {0}};
    st = wait_for(matches, w, 6000);
    assert_non_null(st);
    assert_int_equal(ival(st, "a", "pid"), p[0]);
    assert_int_equal(ival(st, "c", "pid"), p[3]);
    assert_int_not_equal(ival(st, "g.0", "pid"), p[1]);
    assert_int_not_equal(ival(st, "g.1", "pid"), p[2]);
    assert_string_equal(sval(st, "g.1", "last_exit"), "signal 9");
    assert_string_equal(sval(st, "g.0", "last_exit"), "exit 0"); /* stopped cleanly by us */
    json_decref(st);
    assert_true(all_gone(p + 1, 2, 2000));
    assert_int_equal(stop_supervisor(), 0);
}

/* ============================================================ restart types */

static void a_temporary_child_is_never_restarted(void **state) {
    (void)state;
    write_conf(three_echos("one_for_one", "temporary"));
    pid_t p[3];
    json_decref(start_and_wait(p));
    assert_int_equal(kill(p[1], SIGKILL), 0);
    want w[] = {{"a", 0, "running"}, {"b", 0, "failed"}, {"c", 0, "running"}, {0}};
    json_t *st = wait_for(matches, w, 5000);
    assert_non_null(st);
    assert_int_equal(ival(st, "b", "pid"), 0);
    json_decref(st);
    usleep((useconds_t)TMS(300) * 1000); /* and it stays down */
    st = status();
    assert_int_equal(ival(st, "b", "restarts"), 0);
    assert_string_equal(sval(st, "b", "state"), "failed");
    json_decref(st);
    assert_int_equal(stop_supervisor(), 0);
}

static void a_transient_child_is_restarted_after_a_crash_but_not_after_exit_0(void **state) {
    (void)state;
    write_conf(three_echos("one_for_one", "transient"));
    pid_t p[3];
    json_decref(start_and_wait(p));
    /* crash: restarted */
    assert_int_equal(kill(p[1], SIGKILL), 0);
    want w1[] = {{"b", 1, "running"}, {0}};
    json_t *st = wait_for(matches, w1, 5000);
    assert_non_null(st);
    pid_t b2 = (pid_t)ival(st, "b", "pid");
    json_decref(st);
    /* SIGTERM: the actor stops cleanly, exit 0: not restarted */
    assert_int_equal(kill(b2, SIGTERM), 0);
    want w2[] = {{"b", 1, "stopped"}, {0}};
    st = wait_for(matches, w2, 5000);
    assert_non_null(st);
    assert_string_equal(sval(st, "b", "last_exit"), "exit 0");
    assert_int_equal(ival(st, "b", "pid"), 0);
    assert_string_equal(sval(st, "a", "state"), "running");
    json_decref(st);
    assert_int_equal(stop_supervisor(), 0);
}

static void a_group_restart_leaves_temporary_siblings_stopped(void **state) {
    (void)state;
    write_conf(three_echos("one_for_all", "temporary"));
    pid_t p[3];
    json_decref(start_and_wait(p));
    assert_int_equal(kill(p[0], SIGKILL), 0);
    want w[] = {{"a", 1, "running"}, {"b", 0, "stopped"}, {"c", 1, "running"}, {0}};
    json_t *st = wait_for(matches, w, 6000);
    assert_non_null(st);
    assert_int_equal(ival(st, "b", "pid"), 0);
    assert_string_equal(sval(st, "b", "last_exit"), "exit 0");
    json_decref(st);
    assert_true(all_gone(p, 3, 2000));
    assert_int_equal(stop_supervisor(), 0);
}

/* ============================================================ intensity */

static void too_many_restarts_stop_everything_with_exit_1(void **state) {
    (void)state;
    write_conf("[supervisor]\nstrategy = one_for_one\nintensity = 2\nperiod = 30\n"
               "heartbeat_ms = 50\nheartbeat_timeout_ms = 1500\n"
               "[actor a]\nkind = echo\n[actor b]\nkind = echo\n");
    sup = start_supervisor(NULL);
    json_t *st = wait_for(all_running, NULL, 8000);
    assert_non_null(st);
    pid_t a = (pid_t)ival(st, "a", "pid");
    json_decref(st);
    int rc = -1;
    for (int k = 1; k <= 3; k++) {
        st = status();
        assert_non_null(st);
        pid_t b = (pid_t)ival(st, "b", "pid");
        json_decref(st);
        assert_true(b > 0);
        assert_int_equal(kill(b, SIGKILL), 0);
        if (k < 3) {
            want w[] = {{"b", k, "running"}, {0}};
            st = wait_for(matches, w, 5000);
            assert_non_null(st);
            json_decref(st);
        }
    }
    rc = wait_status(sup, 8000);
    assert_int_equal(rc, 1);
    sup = -1;
    assert_true(all_gone(&a, 1, 2000));
}

/* ============================================================ hung actors */

static void a_stopped_actor_is_detected_as_hung_and_restarted(void **state) {
    (void)state;
    write_conf("[supervisor]\nheartbeat_ms = 50\nheartbeat_timeout_ms = 1000\n"
               "[actor a]\nkind = echo\n[actor b]\nkind = echo\n");
    sup = start_supervisor(NULL);
    json_t *st = wait_for(all_running, NULL, 8000);
    assert_non_null(st);
    pid_t b = (pid_t)ival(st, "b", "pid");
    pid_t a = (pid_t)ival(st, "a", "pid");
    json_decref(st);
    uint64_t t0 = sl_now_ms();
    assert_int_equal(kill(b, SIGSTOP), 0);
    want w[] = {{"a", 0, "running"}, {"b", 1, "running"}, {0}};
    st = wait_for(matches, w, 8000);
    uint64_t dt = sl_now_ms() - t0;
    assert_non_null(st);
    assert_string_equal(sval(st, "b", "last_exit"), "hung");
    assert_int_equal(ival(st, "a", "pid"), a);
    json_decref(st);
    /* detected within heartbeat_timeout_ms plus a margin (startup of the
     * new one included; generous for a loaded machine) */
    printf("# hung actor replaced after %llu ms (timeout %d ms)\n", (unsigned long long)dt, TMS(1000));
    assert_true(dt >= (uint64_t)TMS(1000));
    assert_true(dt < (uint64_t)TMS(1000 + 3000));
    assert_true(all_gone(&b, 1, 1000));
    assert_int_equal(stop_supervisor(), 0);
}

static void an_actor_with_heartbeat_none_is_never_judged_hung(void **state) {
    (void)state;
    write_conf("[supervisor]\nheartbeat_ms = 50\nheartbeat_timeout_ms = 200\n"
               "[actor a]\nkind = echo\nheartbeat = none\n");
    sup = start_supervisor(NULL);
    json_t *st = wait_for(all_running, NULL, 8000);
    assert_non_null(st);
    pid_t a = (pid_t)ival(st, "a", "pid");
    json_decref(st);
    assert_int_equal(kill(a, SIGSTOP), 0);
    usleep((useconds_t)TMS(800) * 1000); /* four timeouts */
    st = status();
    assert_non_null(st);
    assert_int_equal(ival(st, "a", "pid"), a);
    assert_int_equal(ival(st, "a", "restarts"), 0);
    assert_string_equal(sval(st, "a", "heartbeat"), "none");
    json_decref(st);
    kill(a, SIGCONT);
    assert_int_equal(stop_supervisor(), 0); /* SIGTERM also reaches a stopped child (SIGCONT) */
}

static void inject_hang_stops_the_actor_then_resumes_it(void **state) {
    (void)state;
    write_conf("[supervisor]\nheartbeat_ms = 50\nheartbeat_timeout_ms = 5000\n"
               "[actor a]\nkind = echo\n");
    sup = start_supervisor(NULL);
    json_t *st = wait_for(all_running, NULL, 8000);
    assert_non_null(st);
    pid_t a = (pid_t)ival(st, "a", "pid");
    json_decref(st);
    char *reply = NULL;
    assert_int_equal(sl_control_request(run_dir, "inject a hang 1", &reply, TMS(2000)), SL_OK);
    assert_non_null(strstr(reply, "\"ok\":true"));
    free(reply);
    usleep(200000);
    assert_int_equal(proc_state(a), 'T');
    uint64_t end = sl_now_ms() + (uint64_t)TMS(3000);
    while (proc_state(a) == 'T' && sl_now_ms() < end) usleep(20000);
    assert_int_not_equal(proc_state(a), 'T');
    st = status();
    assert_int_equal(ival(st, "a", "pid"), a);
    assert_int_equal(ival(st, "a", "restarts"), 0);
    json_decref(st);
    /* bad injections are refused, not fatal */
    const char *bad[] = {"inject nobody kill", "inject a explode", "inject a hang x", "inject a hang",
                         "frobnicate", "status --yaml"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        assert_int_equal(sl_control_request(run_dir, bad[i], &reply, TMS(2000)), SL_OK);
        assert_non_null(strstr(reply, "\"ok\":false"));
        free(reply);
    }
    assert_int_equal(stop_supervisor(), 0);
}

/* ============================================================ shutdown */

static void orderly_shutdown_stops_children_in_reverse_order(void **state) {
    (void)state;
    write_conf(three_echos("one_for_one", "permanent"));
    pid_t p[3];
    json_decref(start_and_wait(p));
    assert_int_equal(stop_supervisor(), 0);
    assert_true(all_gone(p, 3, 1000));
    char path[160], buf[512] = {0};
    snprintf(path, sizeof path, "%s/events.log", run_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *sc = strstr(buf, "stop c\n"), *sb = strstr(buf, "stop b\n"), *sa = strstr(buf, "stop a\n");
    assert_non_null(sc);
    assert_non_null(sb);
    assert_non_null(sa);
    assert_true(sc < sb && sb < sa);
}

static void sigint_to_the_supervisor_stops_everything_with_exit_0(void **state) {
    (void)state;
    write_conf(three_echos("one_for_one", "permanent"));
    pid_t p[3];
    json_decref(start_and_wait(p));
    kill(sup, SIGINT);
    assert_int_equal(wait_status(sup, 10000), 0);
    sup = -1;
    assert_true(all_gone(p, 3, 1000));
}

static void slime_ctl_stop_ends_the_run_with_exit_0(void **state) {
    (void)state;
    write_conf(three_echos("one_for_one", "permanent"));
    pid_t p[3];
    json_decref(start_and_wait(p));
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "'%s/slime-ctl' --run-dir '%s' stop >/dev/null", bindir, run_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(wait_status(sup, 10000), 0);
    sup = -1;
    assert_true(all_gone(p, 3, 1000));
}

static void children_die_when_the_supervisor_is_killed(void **state) {
    (void)state;
    write_conf(three_echos("one_for_one", "permanent"));
    pid_t p[3];
    json_decref(start_and_wait(p));
    kill(sup, SIGKILL);
    assert_int_equal(wait_status(sup, 5000), 128 + SIGKILL);
    sup = -1;
    assert_true(all_gone(p, 3, 3000));
}

/* ============================================================ programs */

static void slime_ctl_status_json_has_the_documented_fields(void **state) {
    (void)state;
    write_conf("[actor e]\nkind = echo\ncount = 2\n"
               "[actor p]\nkind = pinger\npeer = e\ninterval_ms = 20\n"
               "[supervisor]\nheartbeat_ms = 50\nheartbeat_timeout_ms = 1500\n");
    sup = start_supervisor(NULL);
    json_t *st = wait_for(all_running, NULL, 8000);
    assert_non_null(st);
    json_decref(st);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "'%s/slime-ctl' --run-dir '%s' status --json", bindir, run_dir);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    assert_int_equal(pclose(f), 0);
    json_error_t jerr;
    json_t *o = json_loads(out, 0, &jerr); /* exactly one JSON value */
    assert_non_null(o);
    assert_true(json_is_object(o));
    assert_true(json_is_string(json_object_get(o, "run_dir")));
    assert_string_equal(json_string_value(json_object_get(o, "run_dir")), run_dir);
    json_t *arr = json_object_get(o, "actors");
    assert_int_equal(json_array_size(arr), 3);
    static const char *names[] = {"e.0", "e.1", "p"}, *kinds[] = {"echo", "echo", "pinger"};
    for (size_t i = 0; i < 3; i++) {
        json_t *a = json_array_get(arr, i);
        assert_string_equal(json_string_value(json_object_get(a, "name")), names[i]);
        assert_string_equal(json_string_value(json_object_get(a, "kind")), kinds[i]);
        assert_true(json_integer_value(json_object_get(a, "pid")) > 0);
        const char *s = json_string_value(json_object_get(a, "state"));
        assert_non_null(s);
        assert_non_null(strstr("starting|running|restarting|stopped|failed", s));
        assert_true(json_is_integer(json_object_get(a, "restarts")));
        json_t *le = json_object_get(a, "last_exit");
        assert_true(le && (json_is_null(le) || json_is_string(le)));
    }
    json_decref(o);
    /* the pinger got replies from the echos (logged every 10) */
    char path[160];
    snprintf(path, sizeof path, "%s/logs/p.log", run_dir);
    bool replies = false;
    uint64_t end = sl_now_ms() + (uint64_t)TMS(5000);
    while (!replies && sl_now_ms() < end) {
        FILE *lf = fopen(path, "r");
        char line[512];
        while (lf && fgets(line, sizeof line, lf))
            if (strstr(line, "replies=10 ")) replies = true;
        if (lf) fclose(lf);
        if (!replies) usleep(50000);
    }
    assert_true(replies);
    /* the table form and errors */
    snprintf(cmd, sizeof cmd, "'%s/slime-ctl' --run-dir '%s' status | grep -q 'e.1 .*echo .*running'", bindir,
             run_dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s/slime-ctl' --run-dir '%s' inject nobody kill 2>/dev/null", bindir, run_dir);
    assert_int_equal(WEXITSTATUS(system(cmd)), 1);
    snprintf(cmd, sizeof cmd, "'%s/slime-ctl' --run-dir '%s' bogus 2>/dev/null", bindir, run_dir);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "'%s/slime-ctl' --run-dir '%s/none' status 2>/dev/null", bindir, base);
    assert_int_equal(WEXITSTATUS(system(cmd)), 1);
    assert_int_equal(stop_supervisor(), 0);
}

static void a_custom_c_actor_on_the_sdk_joins_as_kind_exec(void **state) {
    (void)state;
    char helper[1100], text[4096];
    snprintf(helper, sizeof helper, "%s/tests/helper_rt_counter", bindir);
    if (access(helper, X_OK) != 0) skip();
    /* heartbeat = nng: the SDK's survey responder, from an exec'd program */
    snprintf(text, sizeof text,
             "[supervisor]\nheartbeat_ms = 50\nheartbeat_timeout_ms = 1500\n"
             "[actor cust]\nkind = exec\ncommand = %s\nheartbeat = nng\n"
             "[actor cust2]\nkind = exec\ncommand = %s\n" /* default heartbeat: mailbox PING */
             "[actor p]\nkind = pinger\npeer = cust\ninterval_ms = 20\n",
             helper, helper);
    write_conf(text);
    sup = start_supervisor(NULL);
    json_t *st = wait_for(all_running, NULL, 8000);
    assert_non_null(st);
    assert_string_equal(sval(st, "cust", "heartbeat"), "nng");
    assert_string_equal(sval(st, "cust2", "heartbeat"), "mailbox");
    assert_string_equal(sval(st, "cust", "kind"), "exec");
    json_decref(st);
    char path[160];
    snprintf(path, sizeof path, "%s/logs/p.log", run_dir);
    bool replies = false;
    uint64_t end = sl_now_ms() + (uint64_t)TMS(5000);
    while (!replies && sl_now_ms() < end) {
        FILE *lf = fopen(path, "r");
        char line[512];
        while (lf && fgets(line, sizeof line, lf))
            if (strstr(line, " replies=10 ")) replies = true;
        if (lf) fclose(lf);
        if (!replies) usleep(50000);
    }
    assert_true(replies);
    assert_int_equal(stop_supervisor(), 0);
    snprintf(path, sizeof path, "%s/events.log", run_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *sp = strstr(buf, "stop p\n"), *s2 = strstr(buf, "stop cust2\n"), *s1 = strstr(buf, "stop cust\n");
    assert_true(sp && s1 && s2 && sp < s2 && s2 < s1);
}

static int run_capture(const char *const *extra, char *err, size_t cap) {
    pid_t pid = start_supervisor(extra);
    int rc = wait_status(pid, 5000);
    if (rc < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/sup.out", base);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(err, 1, cap - 1, f) : 0;
    if (f) fclose(f);
    err[n] = '\0';
    unlink(path);
    return rc;
}

static void a_config_error_gives_file_line_and_exit_2(void **state) {
    (void)state;
    write_conf("[supervisor]\nstrategy = one_for_none\n[actor a]\nkind = echo\nbogus = 1\n");
    char err[4096], want[160];
    assert_int_equal(run_capture(NULL, err, sizeof err), 2);
    snprintf(want, sizeof want, "%s:2:", conf);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof want, "%s:5:", conf);
    assert_non_null(strstr(err, want));
    /* an exec actor without a command is refused before anything starts */
    write_conf("[actor t]\nkind = exec\n");
    assert_int_equal(run_capture(NULL, err, sizeof err), 2);
    snprintf(want, sizeof want, "%s:1:", conf);
    assert_non_null(strstr(err, want));
    /* --set errors too */
    write_conf("[actor a]\nkind = echo\n");
    const char *sets[] = {"--set", "supervisor.intensity=-3", NULL};
    assert_int_equal(run_capture(sets, err, sizeof err), 2);
    assert_non_null(strstr(err, "--set:1:"));
    /* --check validates only */
    const char *check[] = {"--check", NULL};
    assert_int_equal(run_capture(check, err, sizeof err), 0);
    struct stat sb;
    assert_int_not_equal(stat(run_dir, &sb), 0); /* nothing created */
}

static void a_run_dir_open_to_others_is_refused(void **state) {
    (void)state;
    write_conf("[actor a]\nkind = echo\n");
    assert_int_equal(mkdir(run_dir, 0755), 0);
    assert_int_equal(chmod(run_dir, 0755), 0);
    char err[4096];
    assert_int_equal(run_capture(NULL, err, sizeof err), 2);
    assert_non_null(strstr(err, "0700"));
}

int main(void) {
    const char *b = getenv("SL_BUILD");
    snprintf(bindir, sizeof bindir, "%s", b && *b ? b : "build");
    char prog[1100];
    const char *need[] = {"slime-supervisor", "slime-actor", "slime-ctl"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(prog, sizeof prog, "%s/%s", bindir, need[i]);
        if (access(prog, X_OK) != 0) {
            fprintf(stderr, "test_supervisor: %s not built; skipped\n", prog);
            return 77;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_for_one_restarts_only_the_killed_child, setup, teardown),
        cmocka_unit_test_setup_teardown(one_for_all_restarts_every_child, setup, teardown),
        cmocka_unit_test_setup_teardown(rest_for_one_restarts_the_child_and_those_after_it, setup, teardown),
        cmocka_unit_test_setup_teardown(a_restart_together_group_restarts_as_one, setup, teardown),
        cmocka_unit_test_setup_teardown(a_temporary_child_is_never_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(a_transient_child_is_restarted_after_a_crash_but_not_after_exit_0,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_group_restart_leaves_temporary_siblings_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(too_many_restarts_stop_everything_with_exit_1, setup, teardown),
        cmocka_unit_test_setup_teardown(a_stopped_actor_is_detected_as_hung_and_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(an_actor_with_heartbeat_none_is_never_judged_hung, setup, teardown),
        cmocka_unit_test_setup_teardown(inject_hang_stops_the_actor_then_resumes_it, setup, teardown),
        cmocka_unit_test_setup_teardown(orderly_shutdown_stops_children_in_reverse_order, setup, teardown),
        cmocka_unit_test_setup_teardown(sigint_to_the_supervisor_stops_everything_with_exit_0, setup, teardown),
        cmocka_unit_test_setup_teardown(slime_ctl_stop_ends_the_run_with_exit_0, setup, teardown),
        cmocka_unit_test_setup_teardown(children_die_when_the_supervisor_is_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(slime_ctl_status_json_has_the_documented_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(a_custom_c_actor_on_the_sdk_joins_as_kind_exec, setup, teardown),
        cmocka_unit_test_setup_teardown(a_config_error_gives_file_line_and_exit_2, setup, teardown),
        cmocka_unit_test_setup_teardown(a_run_dir_open_to_others_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
