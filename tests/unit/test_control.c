/*
 * test_control.c — the nng control plane and heartbeats (mailbox/control.c)
 * in one process: request/reply round trips, hostile requests, timeouts,
 * no-server, survey answers with names and pids, malformed and late
 * answers, endpoint limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "control.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/protocol/survey0/respond.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/slctl.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ a server */

typedef struct server_arg {
    sl_control_server *srv;
    volatile int stop;
    int served;
    uint64_t bad;
    int silent; /* receive but never answer */
} server_arg;

static void *serve(void *p) {
    server_arg *a = p;
    while (!a->stop) {
        char *req = NULL;
        sl_err e = sl_control_server_recv(a->srv, &req, &a->bad);
        if (e == SL_EAGAIN) {
            usleep(2000);
            continue;
        }
        if (e) break;
        if (!a->silent) {
            char reply[SL_CONTROL_MAX_REQUEST + 16];
            snprintf(reply, sizeof reply, "echo:%s", req);
            sl_control_server_reply(a->srv, reply);
        }
        a->served++;
        free(req);
    }
    return NULL;
}

static void control_request_gets_the_servers_reply(void **state) {
    (void)state;
    server_arg a = {0};
    assert_int_equal(sl_control_server_open(dir, &a.srv), SL_OK);
    assert_true(sl_control_server_fd(a.srv) >= 0);
    pthread_t th;
    pthread_create(&th, NULL, serve, &a);
    for (int i = 0; i < 5; i++) {
        char req[32], *reply = NULL;
        snprintf(req, sizeof req, "status %d", i);
        assert_int_equal(sl_control_request(dir, req, &reply, 2000), SL_OK);
        char want[48];
        snprintf(want, sizeof want, "echo:%s", req);
        assert_string_equal(reply, want);
        free(reply);
    }
    a.stop = 1;
    pthread_join(th, NULL);
    assert_int_equal(a.served, 5);
    assert_int_equal(a.bad, 0);
    sl_control_server_close(a.srv);
}

static void control_request_without_a_server_says_closed_at_once(void **state) {
    (void)state;
    char *reply = (char *)1;
    uint64_t t0 = sl_now_ms();
    assert_int_equal(sl_control_request(dir, "status", &reply, 3000), SL_ECLOSED);
    assert_null(reply);
    assert_true(sl_now_ms() - t0 < 1000);
}

static void control_request_times_out_when_nobody_answers(void **state) {
    (void)state;
    server_arg a = {.silent = 1};
    assert_int_equal(sl_control_server_open(dir, &a.srv), SL_OK);
    pthread_t th;
    pthread_create(&th, NULL, serve, &a);
    char *reply = NULL;
    uint64_t t0 = sl_now_ms();
    assert_int_equal(sl_control_request(dir, "status", &reply, 200), SL_ETIMEDOUT);
    uint64_t dt = sl_now_ms() - t0;
    assert_true(dt >= 150 && dt < 2000);
    assert_null(reply);
    a.stop = 1;
    pthread_join(th, NULL);
    sl_control_server_close(a.srv);
}

/* Send raw bytes with a REQ socket; return the reply text (malloc'd). */
static char *raw_request(const void *bytes, size_t len) {
    char ep[256];
    assert_int_equal(sl_control_endpoint(dir, ep, sizeof ep), SL_OK);
    nng_socket s;
    assert_int_equal(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000);
    assert_int_equal(nng_dial(s, ep, NULL, 0), 0);
    assert_int_equal(nng_send(s, (void *)bytes, len, 0), 0);
    char *buf = NULL;
    size_t n = 0;
    int rv = nng_recv(s, &buf, &n, NNG_FLAG_ALLOC);
    assert_int_equal(rv, 0);
    char *out = strndup(buf, n);
    nng_free(buf, n);
    nng_close(s);
    return out;
}

static void hostile_requests_are_refused_counted_and_never_delivered(void **state) {
    (void)state;
    server_arg a = {0};
    assert_int_equal(sl_control_server_open(dir, &a.srv), SL_OK);
    pthread_t th;
    pthread_create(&th, NULL, serve, &a);
    char *r = raw_request("", 0);
    assert_non_null(strstr(r, "empty request"));
    free(r);
    r = raw_request("sta\0tus", 7);
    assert_non_null(strstr(r, "not text"));
    free(r);
    size_t big = SL_CONTROL_MAX_REQUEST + 100;
    char *huge = malloc(big);
    memset(huge, 'a', big);
    r = raw_request(huge, big);
    assert_non_null(strstr(r, "too long"));
    free(r);
    free(huge);
    /* a trailing newline or NUL is tolerated */
    r = raw_request("stop\n", 5);
    assert_string_equal(r, "echo:stop");
    free(r);
    a.stop = 1;
    pthread_join(th, NULL);
    assert_int_equal(a.bad, 3);
    assert_int_equal(a.served, 1);
    sl_control_server_close(a.srv);
}

static void a_second_server_in_the_same_run_dir_is_refused(void **state) {
    (void)state;
    sl_control_server *a = NULL, *b = NULL;
    assert_int_equal(sl_control_server_open(dir, &a), SL_OK);
    assert_int_equal(sl_control_server_open(dir, &b), SL_EFULL);
    assert_null(b);
    sl_control_server_close(a);
    sl_control_server_close(NULL);
}

static void a_stale_socket_file_is_replaced(void **state) {
    (void)state;
    /* A dead supervisor leaves its socket file; a new one must start.
     * (nng cannot be used in a forked child, so the dead one is faked
     * with a plain unix socket bound and closed without unlink.) */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/control", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    close(fd);
    char path[128];
    snprintf(path, sizeof path, "%s/control", dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    sl_control_server *s = NULL;
    assert_int_equal(sl_control_server_open(dir, &s), SL_OK);
    sl_control_server_close(s);
}

static void endpoints_longer_than_a_unix_socket_path_are_refused(void **state) {
    (void)state;
    char longdir[200], ep[300];
    memset(longdir, 'x', sizeof longdir - 1);
    longdir[0] = '/';
    longdir[sizeof longdir - 1] = '\0';
    assert_int_equal(sl_control_endpoint(longdir, ep, sizeof ep), SL_ERANGE);
    assert_int_equal(sl_hb_endpoint(longdir, ep, sizeof ep), SL_ERANGE);
    char *reply = NULL;
    assert_int_equal(sl_control_request(longdir, "status", &reply, 100), SL_ERANGE);
    sl_hb_responder *r = NULL;
    assert_int_equal(sl_hb_responder_open(longdir, "a", &r), SL_ERANGE);
    assert_int_equal(sl_control_endpoint(dir, ep, sizeof ep), SL_OK);
    assert_true(strncmp(ep, "ipc:///tmp/slctl.", 17) == 0);
}

/* ------------------------------------------------------------ heartbeats */

/* Survey until NAME answers or TIMEOUT_MS passes; answers of responders in
 * RS are produced in between (same thread). */
static int survey_until(sl_hb_surveyor *s, sl_hb_responder **rs, int nr, int want, int timeout_ms,
                        char names[][SL_HB_NAME_MAX], pid_t *pids) {
    uint64_t end = sl_now_ms() + (uint64_t)timeout_ms;
    int got = 0;
    while (got < want && sl_now_ms() < end) {
        assert_int_equal(sl_hb_survey(s, 200), SL_OK);
        got = 0;
        uint64_t round_end = sl_now_ms() + 150;
        while (sl_now_ms() < round_end && got < want) {
            for (int i = 0; i < nr; i++) sl_hb_respond(rs[i]);
            char name[SL_HB_NAME_MAX];
            pid_t pid;
            while (sl_hb_collect(s, name, &pid) == SL_OK && got < want) {
                strcpy(names[got], name);
                pids[got++] = pid;
            }
            usleep(2000);
        }
    }
    return got;
}

static void every_responder_answers_a_survey_with_its_name_and_pid(void **state) {
    (void)state;
    sl_hb_surveyor *s = NULL;
    sl_hb_responder *r[2] = {0};
    assert_int_equal(sl_hb_surveyor_open(dir, &s), SL_OK);
    assert_true(sl_hb_surveyor_fd(s) >= 0);
    assert_int_equal(sl_hb_responder_open(dir, "echo.0", &r[0]), SL_OK);
    assert_int_equal(sl_hb_responder_open(dir, "ping", &r[1]), SL_OK);
    assert_true(sl_hb_responder_fd(r[0]) >= 0);
    char names[2][SL_HB_NAME_MAX];
    pid_t pids[2];
    assert_int_equal(survey_until(s, r, 2, 2, 3000, names, pids), 2);
    bool e0 = strcmp(names[0], "echo.0") == 0 || strcmp(names[1], "echo.0") == 0;
    bool p = strcmp(names[0], "ping") == 0 || strcmp(names[1], "ping") == 0;
    assert_true(e0 && p);
    assert_int_equal(pids[0], getpid());
    assert_int_equal(pids[1], getpid());
    assert_int_equal(sl_hb_surveyor_bad(s), 0);
    sl_hb_responder_close(r[0]);
    sl_hb_responder_close(r[1]);
    sl_hb_surveyor_close(s);
}

static void a_responder_that_starts_first_connects_when_the_surveyor_comes(void **state) {
    (void)state;
    sl_hb_responder *r = NULL;
    assert_int_equal(sl_hb_responder_open(dir, "early", &r), SL_OK);
    usleep(100000);
    sl_hb_surveyor *s = NULL;
    assert_int_equal(sl_hb_surveyor_open(dir, &s), SL_OK);
    char names[1][SL_HB_NAME_MAX];
    pid_t pids[1];
    assert_int_equal(survey_until(s, &r, 1, 1, 3000, names, pids), 1);
    assert_string_equal(names[0], "early");
    sl_hb_responder_close(r);
    sl_hb_surveyor_close(s);
}

static void malformed_answers_are_dropped_and_counted(void **state) {
    (void)state;
    sl_hb_surveyor *s = NULL;
    assert_int_equal(sl_hb_surveyor_open(dir, &s), SL_OK);
    char ep[256];
    sl_hb_endpoint(dir, ep, sizeof ep);
    nng_socket raw;
    assert_int_equal(nng_respondent0_open(&raw), 0);
    nng_socket_set_ms(raw, NNG_OPT_RECVTIMEO, 300);
    nng_socket_set_ms(raw, NNG_OPT_SENDTIMEO, 300);
    assert_int_equal(nng_dial(raw, ep, NULL, NNG_FLAG_NONBLOCK), 0);
    static const char *bad[] = {"", "noname", "a b", "a -1", "a 0", "a 12x", ".a 5", "a/b 5",
                                "a 99999999999", "n\xff 5",
                                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 5"};
    char name[SL_HB_NAME_MAX];
    pid_t pid;
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        uint64_t before = sl_hb_surveyor_bad(s);
        bool answered = false;
        for (int attempt = 0; attempt < 20 && !answered; attempt++) {
            sl_hb_survey(s, 1000);
            char *buf = NULL;
            size_t len = 0;
            if (nng_recv(raw, &buf, &len, NNG_FLAG_ALLOC) != 0) continue;
            nng_free(buf, len);
            answered = nng_send(raw, (void *)bad[i], strlen(bad[i]), 0) == 0;
        }
        assert_true(answered);
        uint64_t end = sl_now_ms() + 800;
        while (sl_now_ms() < end && sl_hb_surveyor_bad(s) == before) {
            assert_int_equal(sl_hb_collect(s, name, &pid), SL_EAGAIN); /* never delivered */
            usleep(2000);
        }
        assert_int_equal(sl_hb_surveyor_bad(s), before + 1);
    }
    assert_int_equal(sl_hb_surveyor_bad(s), SL_ARRAY_LEN(bad));
    nng_close(raw);
    sl_hb_surveyor_close(s);
}

static void answers_after_the_deadline_are_not_collected(void **state) {
    (void)state;
    sl_hb_surveyor *s = NULL;
    sl_hb_responder *r = NULL;
    assert_int_equal(sl_hb_surveyor_open(dir, &s), SL_OK);
    assert_int_equal(sl_hb_responder_open(dir, "slow", &r), SL_OK);
    char names[1][SL_HB_NAME_MAX];
    pid_t pids[1];
    assert_int_equal(survey_until(s, &r, 1, 1, 3000, names, pids), 1); /* connected */
    assert_int_equal(sl_hb_survey(s, 30), SL_OK);
    usleep(150000); /* the responder's loop is "stuck" past the deadline */
    sl_hb_respond(r);
    usleep(50000);
    char name[SL_HB_NAME_MAX];
    pid_t pid;
    assert_int_equal(sl_hb_collect(s, name, &pid), SL_EAGAIN);
    sl_hb_responder_close(r);
    sl_hb_surveyor_close(s);
}

static void invalid_responder_names_are_refused(void **state) {
    (void)state;
    sl_hb_responder *r = (sl_hb_responder *)1;
    assert_int_equal(sl_hb_responder_open(dir, "", &r), SL_EINVAL);
    assert_null(r);
    assert_int_equal(sl_hb_responder_open(dir, ".hidden", &r), SL_EINVAL);
    assert_int_equal(sl_hb_responder_open(dir, "a b", &r), SL_EINVAL);
    assert_int_equal(sl_hb_responder_open(dir, "0123456789012345678901234567890123456789", &r), SL_EINVAL);
    assert_int_equal(sl_hb_responder_open(dir, NULL, &r), SL_EINVAL);
    sl_hb_responder_close(NULL);
    sl_hb_surveyor_close(NULL);
    assert_int_equal(sl_hb_respond(NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(control_request_gets_the_servers_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(control_request_without_a_server_says_closed_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(control_request_times_out_when_nobody_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_requests_are_refused_counted_and_never_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(a_second_server_in_the_same_run_dir_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_stale_socket_file_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(endpoints_longer_than_a_unix_socket_path_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(every_responder_answers_a_survey_with_its_name_and_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(a_responder_that_starts_first_connects_when_the_surveyor_comes, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_answers_are_dropped_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(answers_after_the_deadline_are_not_collected, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_responder_names_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
