/*
 * test_mailbox.c — ZeroMQ mailboxes (mailbox/mailbox.h) over real ipc
 * sockets: round trips, request/reply, timeouts, late replies, queueing
 * during a request, malformed frames dropped and counted by reason, and
 * reconnection after the peer process is killed and restarted
 * (helper_mbpeer, beside this binary).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "mailbox.h"

#define USER_EARLY 0x8002 /* echo thread: send TEST to the requester first, then reply */

static char run_dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(run_dir, sizeof run_dir, "/tmp/slmbXXXXXX");
    if (!mkdtemp(run_dir)) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", run_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static sl_mailbox *open_mb(const char *name) {
    sl_mailbox *mb = NULL;
    assert_int_equal(sl_mailbox_open(run_dir, name, &mb), SL_OK);
    assert_non_null(mb);
    return mb;
}

static char *mb_path(const char *name) {
    static char p[100];
    snprintf(p, sizeof p, "%s/mb/%s", run_dir, name);
    return p;
}

/* ------------------------------------------------------- an echo thread */

typedef struct echo_thread {
    pthread_t th;
    char name[32];
    volatile int ready, stop;
    sl_mailbox_stats st;
} echo_thread;

static void *echo_main(void *arg) {
    echo_thread *e = arg;
    sl_mailbox *mb = NULL;
    if (sl_mailbox_open(run_dir, e->name, &mb) != SL_OK) {
        e->ready = -1;
        return NULL;
    }
    e->ready = 1;
    while (!e->stop) {
        sl_msg m;
        if (sl_mailbox_recv(mb, &m, 20) != SL_OK) continue;
        if (sl_mailbox_handle_builtin(mb, &m)) {
        } else if (m.type == SL_MSG_STOP) {
            e->stop = 1;
        } else if (m.type == USER_EARLY) {
            sl_mailbox_send(mb, m.sender, SL_MSG_TEST, "early", 5);
            sl_mailbox_reply(mb, &m, USER_EARLY, m.payload, m.len);
        } else if (m.corr && !(m.flags & SL_FLAG_REPLY)) {
            sl_mailbox_reply_error(mb, &m, SL_EUNSUPPORTED, "no handler");
        }
        sl_msg_fini(&m);
    }
    sl_mailbox_stats_get(mb, &e->st);
    sl_mailbox_close(mb);
    return NULL;
}

static void echo_start(echo_thread *e, const char *name) {
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    assert_int_equal(pthread_create(&e->th, NULL, echo_main, e), 0);
    while (!e->ready) usleep(1000);
    assert_int_equal(e->ready, 1);
}

static void echo_stop(echo_thread *e) {
    e->stop = 1;
    pthread_join(e->th, NULL);
}

/* ------------------------------------------------------------ lifecycle */

static void open_creates_a_private_dir_and_close_removes_the_socket(void **state) {
    (void)state;
    sl_mailbox *mb = open_mb("alpha");
    struct stat sb;
    char dir[96];
    snprintf(dir, sizeof dir, "%s/mb", run_dir);
    assert_int_equal(stat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(lstat(mb_path("alpha"), &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    assert_string_equal(sl_mailbox_name(mb), "alpha");
    assert_non_null(strstr(sl_mailbox_endpoint(mb), "ipc:///tmp/slmb"));
    assert_true(sl_mailbox_fd(mb) >= 0);
    sl_mailbox_close(mb);
    assert_int_equal(lstat(mb_path("alpha"), &sb), -1);
    sl_mailbox_close(NULL);
}

static void open_refuses_bad_names_long_paths_and_live_owners(void **state) {
    (void)state;
    sl_mailbox *mb = (sl_mailbox *)1;
    assert_int_equal(sl_mailbox_open(run_dir, "../evil", &mb), SL_EINVAL);
    assert_null(mb);
    assert_int_equal(sl_mailbox_open(run_dir, "", &mb), SL_EINVAL);
    assert_int_equal(sl_mailbox_open(NULL, "a", &mb), SL_EINVAL);
    char longdir[160];
    memset(longdir, 'd', sizeof longdir);
    longdir[0] = '/';
    longdir[sizeof longdir - 1] = 0;
    assert_int_equal(sl_mailbox_open(longdir, "a", &mb), SL_ERANGE);

    sl_mailbox *first = open_mb("owner");
    assert_int_equal(sl_mailbox_open(run_dir, "owner", &mb), SL_EFULL);
    assert_null(mb);
    /* the refused open did not steal or remove the live socket */
    sl_mailbox *other = open_mb("other");
    assert_int_equal(sl_mailbox_send(other, "owner", SL_MSG_TEST, "still", 5), SL_OK);
    sl_msg m;
    assert_int_equal(sl_mailbox_recv(first, &m, 2000), SL_OK);
    assert_memory_equal(m.payload, "still", 5);
    sl_msg_fini(&m);
    sl_msg_fini(&m); /* twice is safe */
    sl_mailbox_close(other);
    sl_mailbox_close(first);
}

static void open_replaces_the_stale_socket_of_a_dead_predecessor(void **state) {
    (void)state;
    sl_mailbox *tmp = open_mb("stale"); /* creates RUN_DIR/mb */
    sl_mailbox_close(tmp);
    /* a socket file nobody listens on, as a SIGKILLed actor leaves it */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", mb_path("stale"));
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    struct stat sb;
    assert_int_equal(lstat(mb_path("stale"), &sb), 0);
    sl_mailbox *mb = open_mb("stale");
    sl_mailbox *a = open_mb("a");
    assert_int_equal(sl_mailbox_send(a, "stale", SL_MSG_TEST, NULL, 0), SL_OK);
    sl_msg m;
    assert_int_equal(sl_mailbox_recv(mb, &m, 2000), SL_OK);
    assert_int_equal(m.type, SL_MSG_TEST);
    assert_int_equal(m.len, 0);
    assert_null(m.payload);
    sl_mailbox_close(a);
    sl_mailbox_close(mb);
}

static void open_refuses_to_remove_a_file_that_is_not_a_socket(void **state) {
    (void)state;
    sl_mailbox *tmp = open_mb("x");
    sl_mailbox_close(tmp);
    FILE *f = fopen(mb_path("notsock"), "w");
    assert_non_null(f);
    fclose(f);
    sl_mailbox *mb;
    assert_int_equal(sl_mailbox_open(run_dir, "notsock", &mb), SL_EIO);
    struct stat sb;
    assert_int_equal(lstat(mb_path("notsock"), &sb), 0);
}

/* ----------------------------------------------------------- messaging */

static void a_message_round_trips_between_two_mailboxes(void **state) {
    (void)state;
    sl_mailbox *a = open_mb("a"), *b = open_mb("b");
    assert_int_equal(sl_mailbox_send(a, "b", SL_MSG_TEST, "one", 3), SL_OK);
    assert_int_equal(sl_mailbox_send(a, "b", 0x8123, "two!", 4), SL_OK);
    sl_msg m;
    assert_int_equal(sl_mailbox_recv(b, &m, 2000), SL_OK);
    assert_int_equal(m.type, SL_MSG_TEST);
    assert_string_equal(m.sender, "a");
    assert_true(m.seq == 1);
    assert_true(m.corr == 0);
    assert_int_equal(m.len, 3);
    assert_string_equal((char *)m.payload, "one"); /* NUL after the payload */
    sl_msg_fini(&m);
    assert_int_equal(sl_mailbox_recv(b, &m, 2000), SL_OK);
    assert_int_equal(m.type, 0x8123);
    assert_true(m.seq == 2);
    sl_msg_fini(&m);
    /* and back */
    assert_int_equal(sl_mailbox_send(b, "a", SL_MSG_TEST, "back", 4), SL_OK);
    assert_int_equal(sl_mailbox_recv(a, &m, 2000), SL_OK);
    assert_string_equal(m.sender, "b");
    sl_msg_fini(&m);
    sl_mailbox_stats st;
    sl_mailbox_stats_get(a, &st);
    assert_true(st.sent == 2 && st.received == 1 && st.dropped_total == 0);
    sl_mailbox_close(a);
    sl_mailbox_close(b);
}

static void recv_times_out_when_nothing_comes(void **state) {
    (void)state;
    sl_mailbox *a = open_mb("a");
    sl_msg m;
    uint64_t t0 = sl_now_ms();
    assert_int_equal(sl_mailbox_recv(a, &m, 0), SL_ETIMEDOUT);
    assert_int_equal(sl_mailbox_recv(a, &m, 100), SL_ETIMEDOUT);
    uint64_t dt = sl_now_ms() - t0;
    assert_true(dt >= 95 && dt < 1000);
    assert_null(m.payload);
    sl_mailbox_close(a);
}

static void sending_to_an_absent_peer_fails_quickly_and_clearly(void **state) {
    (void)state;
    sl_mailbox *a = open_mb("a");
    sl_mailbox_set_send_timeout(a, 50);
    uint64_t t0 = sl_now_ms();
    assert_int_equal(sl_mailbox_send(a, "nobody", SL_MSG_TEST, "x", 1), SL_ECLOSED);
    assert_true(sl_now_ms() - t0 < 1000);
    assert_int_equal(sl_mailbox_send(a, "../etc", SL_MSG_TEST, "x", 1), SL_EINVAL);
    assert_int_equal(sl_mailbox_send(a, "b", 0x0300, NULL, 0), SL_EINVAL);
    static uint8_t big[SL_FRAME_MAX_PAYLOAD + 1];
    assert_int_equal(sl_mailbox_send(a, "b", SL_MSG_TEST, big, sizeof big), SL_ERANGE);
    sl_mailbox_stats st;
    sl_mailbox_stats_get(a, &st);
    assert_true(st.send_failed == 1 && st.sent == 0);
    sl_mailbox_close(a);
}

static void a_request_gets_its_reply(void **state) {
    (void)state;
    echo_thread e;
    echo_start(&e, "echo");
    sl_mailbox *a = open_mb("client");
    sl_msg r;
    assert_int_equal(sl_mailbox_request(a, "echo", SL_MSG_ECHO, "hello", 5, &r, 3000), SL_OK);
    assert_int_equal(r.type, SL_MSG_ECHO_REPLY);
    assert_true(r.flags & SL_FLAG_REPLY);
    assert_true(r.corr & SL_CORR_REQUEST_BIT);
    assert_string_equal(r.sender, "echo");
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.payload, "hello", 5);
    assert_false(sl_msg_is_error(&r, NULL));
    sl_msg_fini(&r);

    uint8_t seq[8];
    sl_put_u64(seq, 123456789);
    assert_int_equal(sl_mailbox_request(a, "echo", SL_MSG_PING, seq, 8, &r, 3000), SL_OK);
    assert_int_equal(r.type, SL_MSG_PONG);
    assert_true(sl_get_u64(r.payload) == 123456789);
    sl_msg_fini(&r);

    /* an unhandled request gets an ERROR reply */
    assert_int_equal(sl_mailbox_request(a, "echo", 0x8999, "?", 1, &r, 3000), SL_OK);
    uint32_t code = 0;
    assert_true(sl_msg_is_error(&r, &code));
    assert_int_equal(code, SL_EUNSUPPORTED);
    assert_string_equal((char *)r.payload + 4, "no handler");
    sl_msg_fini(&r);
    sl_mailbox_close(a);
    echo_stop(&e);
    assert_true(e.st.received == 3);
}

static void a_request_nobody_answers_times_out_in_bounded_time(void **state) {
    (void)state;
    sl_mailbox *a = open_mb("a"), *mute = open_mb("mute");
    sl_msg r;
    uint64_t t0 = sl_now_ms();
    assert_int_equal(sl_mailbox_request(a, "mute", SL_MSG_ECHO, "x", 1, &r, 200), SL_ETIMEDOUT);
    uint64_t dt = sl_now_ms() - t0;
    print_message("request timed out after %llu ms (timeout 200)\n", (unsigned long long)dt);
    assert_true(dt >= 195 && dt < 1200);
    assert_null(r.payload);
    /* and to a peer that does not exist at all: fails, also bounded */
    t0 = sl_now_ms();
    assert_int_not_equal(sl_mailbox_request(a, "ghost", SL_MSG_ECHO, "x", 1, &r, 200), SL_OK);
    assert_true(sl_now_ms() - t0 < 1200);
    sl_mailbox_stats st;
    sl_mailbox_stats_get(a, &st);
    assert_true(st.requests == 2 && st.request_timeouts == 1);
    sl_mailbox_close(mute);
    sl_mailbox_close(a);
}

static void a_late_reply_is_dropped_and_counted(void **state) {
    (void)state;
    sl_mailbox *a = open_mb("a"), *slow = open_mb("slow");
    sl_msg r, req;
    assert_int_equal(sl_mailbox_request(a, "slow", SL_MSG_ECHO, "x", 1, &r, 50), SL_ETIMEDOUT);
    assert_int_equal(sl_mailbox_recv(slow, &req, 2000), SL_OK);
    assert_int_equal(sl_mailbox_reply(slow, &req, SL_MSG_ECHO_REPLY, "late", 4), SL_OK);
    /* a forged reply with an unknown request id, and one with id 0 */
    assert_int_equal(sl_mailbox_send_ex(slow, "a", SL_MSG_PONG, SL_FLAG_REPLY,
                                        SL_CORR_REQUEST_BIT | 77, NULL, 0), SL_OK);
    assert_int_equal(sl_mailbox_send_ex(slow, "a", SL_MSG_PONG, SL_FLAG_REPLY, 0, NULL, 0), SL_OK);
    assert_int_equal(sl_mailbox_send(slow, "a", SL_MSG_TEST, "after", 5), SL_OK);
    sl_msg m;
    assert_int_equal(sl_mailbox_recv(a, &m, 2000), SL_OK);
    assert_int_equal(m.type, SL_MSG_TEST); /* the three replies were skipped */
    sl_msg_fini(&m);
    sl_mailbox_stats st;
    sl_mailbox_stats_get(a, &st);
    assert_true(st.dropped_late_reply == 3);
    assert_true(st.dropped_total == 3);
    sl_msg_fini(&req);
    sl_mailbox_close(slow);
    sl_mailbox_close(a);
}

static void messages_arriving_during_a_request_wait_for_the_next_recv(void **state) {
    (void)state;
    echo_thread e;
    echo_start(&e, "echo");
    sl_mailbox *a = open_mb("client");
    sl_msg r;
    assert_int_equal(sl_mailbox_request(a, "echo", USER_EARLY, "req", 3, &r, 3000), SL_OK);
    assert_int_equal(r.type, USER_EARLY);
    sl_msg_fini(&r);
    sl_mailbox_stats st;
    sl_mailbox_stats_get(a, &st);
    assert_true(st.queued == 1);
    assert_true(sl_mailbox_has_input(a));
    assert_int_equal(sl_mailbox_poll(a, NULL, 0, 0), 1);
    sl_msg m;
    assert_int_equal(sl_mailbox_recv(a, &m, 0), SL_OK);
    assert_int_equal(m.type, SL_MSG_TEST);
    assert_memory_equal(m.payload, "early", 5);
    sl_msg_fini(&m);
    sl_mailbox_stats_get(a, &st);
    assert_true(st.queued == 0);
    sl_mailbox_close(a);
    echo_stop(&e);
}

static void replies_to_caller_tracked_ids_come_out_of_recv(void **state) {
    (void)state;
    echo_thread e;
    echo_start(&e, "echo");
    sl_mailbox *a = open_mb("client");
    uint64_t c1 = sl_mailbox_new_corr(a), c2 = sl_mailbox_new_corr(a);
    assert_true(c1 != 0 && c2 != c1 && !(c1 & SL_CORR_REQUEST_BIT));
    assert_int_equal(sl_mailbox_send_ex(a, "echo", SL_MSG_PING, 0, c1, "p1", 2), SL_OK);
    assert_int_equal(sl_mailbox_send_ex(a, "echo", SL_MSG_PING, 0, c2, "p2", 2), SL_OK);
    sl_msg m;
    assert_int_equal(sl_mailbox_recv(a, &m, 2000), SL_OK);
    assert_true(m.type == SL_MSG_PONG && m.corr == c1);
    sl_msg_fini(&m);
    assert_int_equal(sl_mailbox_recv(a, &m, 2000), SL_OK);
    assert_true(m.type == SL_MSG_PONG && m.corr == c2);
    sl_msg_fini(&m);
    sl_mailbox_close(a);
    echo_stop(&e);
}

static void poll_waits_on_the_mailbox_and_other_fds(void **state) {
    (void)state;
    sl_mailbox *a = open_mb("a"), *b = open_mb("b");
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct pollfd fds[1] = {{.fd = p[0], .events = POLLIN}};
    assert_int_equal(sl_mailbox_poll(b, fds, 1, 30), 0);
    assert_int_equal(fds[0].revents, 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(sl_mailbox_poll(b, fds, 1, 1000), 0);
    assert_true(fds[0].revents & POLLIN);
    fds[0].fd = -1; /* ignored, like poll(2) */
    assert_false(sl_mailbox_has_input(b));
    assert_int_equal(sl_mailbox_send(a, "b", SL_MSG_TEST, "w", 1), SL_OK);
    assert_int_equal(sl_mailbox_poll(b, fds, 1, 2000), 1);
    assert_true(sl_mailbox_has_input(b));
    sl_msg m;
    assert_int_equal(sl_mailbox_recv(b, &m, 0), SL_OK);
    sl_msg_fini(&m);
    assert_false(sl_mailbox_has_input(b));
    close(p[0]);
    close(p[1]);
    sl_mailbox_close(a);
    sl_mailbox_close(b);
}

/* ------------------------------------------------------ hostile frames */

static void reseal(uint8_t *b) {
    sl_put_u32(b + SL_FRAME_OFF_HEADER_CRC, sl_crc32(b, SL_FRAME_OFF_HEADER_CRC));
}

static size_t good(uint8_t *b, const char *payload) {
    sl_frame_header h = {.type = SL_MSG_TEST, .seq = 1};
    strcpy(h.sender, "raw");
    size_t n;
    assert_int_equal(sl_frame_encode(&h, payload, strlen(payload), b, SL_FRAME_MAX_SIZE + 64, &n),
                     SL_OK);
    return n;
}

static void malformed_frames_on_the_wire_are_dropped_and_counted(void **state) {
    (void)state;
    sl_mailbox *b = open_mb("victim");
    void *ctx = zmq_ctx_new();
    void *raw = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(raw, ZMQ_LINGER, &zero, sizeof zero);
    char ep[160];
    snprintf(ep, sizeof ep, "ipc://%s", mb_path("victim"));
    assert_int_equal(zmq_connect(raw, ep), 0);
    uint8_t *f = malloc(SL_FRAME_MAX_SIZE + 64);
    uint64_t want[SL_FRAME_NREASONS] = {0};
    size_t n;
#define SEND(len, reason)                                                        \
    do {                                                                         \
        assert_int_equal(zmq_send(raw, f, (len), 0), (int)(len));                \
        want[reason]++;                                                          \
    } while (0)

    SEND(0, SL_FRAME_ETRUNCATED);
    memcpy(f, "garbage", 7);
    SEND(7, SL_FRAME_ETRUNCATED);
    n = good(f, "abc");
    SEND(SL_FRAME_HEADER_SIZE - 1, SL_FRAME_ETRUNCATED);
    n = good(f, "abc"), f[1] = 'X', reseal(f);
    SEND(n, SL_FRAME_EMAGIC);
    n = good(f, "abc"), sl_put_u16(f + SL_FRAME_OFF_VERSION, 9), reseal(f);
    SEND(n, SL_FRAME_EVERSION);
    n = good(f, "abc"), f[SL_FRAME_OFF_CORR] ^= 4;
    SEND(n, SL_FRAME_EHEADERCRC);
    n = good(f, "abc"), sl_put_u16(f + SL_FRAME_OFF_TYPE, 0x4000), reseal(f);
    SEND(n, SL_FRAME_ETYPE);
    n = good(f, "abc"), sl_put_u32(f + SL_FRAME_OFF_FLAGS, 0x100), reseal(f);
    SEND(n, SL_FRAME_EFLAGS);
    n = good(f, "abc"), memset(f + SL_FRAME_OFF_SENDER, 'q', SL_MB_NAME_MAX), reseal(f);
    SEND(n, SL_FRAME_ESENDER);
    /* oversize: the header claims more than the bound, and the bytes are there */
    memset(f + SL_FRAME_HEADER_SIZE, 'z', SL_FRAME_MAX_PAYLOAD + 16);
    n = good(f, "abc"), sl_put_u32(f + SL_FRAME_OFF_LEN, SL_FRAME_MAX_PAYLOAD + 16), reseal(f);
    SEND(SL_FRAME_MAX_SIZE + 16, SL_FRAME_EOVERSIZE);
    n = good(f, "abcdef");
    SEND(n - 2, SL_FRAME_ELENGTH); /* truncated payload */
    n = good(f, "abcdef");
    SEND(n + 5, SL_FRAME_ELENGTH); /* trailing bytes */
    n = good(f, "abcdef"), f[n - 1] ^= 1;
    SEND(n, SL_FRAME_ECHECKSUM);
    /* extra frames: a valid frame followed by a second part, and an
     * empty delimiter in front of a valid frame (REQ style) */
    n = good(f, "abc");
    assert_int_equal(zmq_send(raw, f, n, ZMQ_SNDMORE), (int)n);
    assert_int_equal(zmq_send(raw, "tail", 4, 0), 4);
    want[SL_FRAME_ESHAPE]++;
    assert_int_equal(zmq_send(raw, "", 0, ZMQ_SNDMORE), 0);
    assert_int_equal(zmq_send(raw, f, n, 0), (int)n);
    want[SL_FRAME_ESHAPE]++;
    /* a reply to no request */
    sl_frame_header h = {.type = SL_MSG_PONG, .flags = SL_FLAG_REPLY, .corr = SL_CORR_REQUEST_BIT | 5};
    strcpy(h.sender, "raw");
    assert_int_equal(sl_frame_encode(&h, NULL, 0, f, SL_FRAME_MAX_SIZE, &n), SL_OK);
    assert_int_equal(zmq_send(raw, f, n, 0), (int)n);
    /* and finally one good frame */
    n = good(f, "survivor");
    assert_int_equal(zmq_send(raw, f, n, 0), (int)n);
#undef SEND

    sl_msg m;
    assert_int_equal(sl_mailbox_recv(b, &m, 3000), SL_OK);
    assert_int_equal(m.type, SL_MSG_TEST);
    assert_string_equal((char *)m.payload, "survivor");
    assert_string_equal(m.sender, "raw");
    sl_msg_fini(&m);
    sl_mailbox_stats st;
    sl_mailbox_stats_get(b, &st);
    uint64_t total = 0;
    for (int r = 0; r < SL_FRAME_NREASONS; r++) {
        if (st.dropped[r] != want[r])
            fail_msg("reason '%s': counted %llu, sent %llu", sl_frame_reason_name((sl_frame_reason)r),
                     (unsigned long long)st.dropped[r], (unsigned long long)want[r]);
        total += want[r];
    }
    print_message("%llu malformed frames dropped, each under its own reason\n",
                  (unsigned long long)total);
    assert_true(st.dropped_late_reply == 1);
    assert_true(st.dropped_total == total + 1);
    assert_true(st.received == 2); /* the orphan reply and the survivor were valid frames */

    /* the receiver still works for ordinary peers */
    sl_mailbox *a = open_mb("a");
    sl_mailbox_set_send_timeout(a, 5000); /* the first connect can be slow on a loaded machine */
    assert_int_equal(sl_mailbox_send(a, "victim", SL_MSG_TEST, "ok", 2), SL_OK);
    assert_int_equal(sl_mailbox_recv(b, &m, 2000), SL_OK);
    assert_string_equal(m.sender, "a");
    sl_msg_fini(&m);
    sl_mailbox_close(a);
    free(f);
    zmq_close(raw);
    zmq_ctx_term(ctx);
    sl_mailbox_close(b);
}

/* ------------------------------------------------- a peer that restarts */

static pid_t spawn_peer(const char *name) {
    char exe[PATH_MAX], helper[PATH_MAX + 32];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(k > 0);
    exe[k] = 0;
    snprintf(helper, sizeof helper, "%s/helper_mbpeer", dirname(exe));
    if (access(helper, X_OK) != 0) fail_msg("%s is missing: build the test helpers", helper);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(helper, helper, run_dir, name, "serve", "20", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char line[16] = {0};
    ssize_t r = read(p[0], line, sizeof line - 1); /* "ready\n" once bound */
    close(p[0]);
    assert_true(r > 0 && !strncmp(line, "ready", 5));
    return pid;
}

static sl_err ping(sl_mailbox *a, const char *to, uint64_t seq, int timeout_ms) {
    uint8_t p[8];
    sl_put_u64(p, seq);
    sl_msg r;
    sl_err err = sl_mailbox_request(a, to, SL_MSG_PING, p, 8, &r, timeout_ms);
    if (err) return err;
    sl_err res = (r.type == SL_MSG_PONG && r.len == 8 && sl_get_u64(r.payload) == seq) ? SL_OK : SL_EPROTO;
    sl_msg_fini(&r);
    return res;
}

static void messages_flow_again_after_the_peer_restarts(void **state) {
    (void)state;
    sl_mailbox *a = open_mb("a");
    sl_mailbox_set_send_timeout(a, 100);
    pid_t pid = spawn_peer("peer");
    assert_int_equal(ping(a, "peer", 1, 3000), SL_OK);

    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    struct stat sb;
    assert_int_equal(lstat(mb_path("peer"), &sb), 0); /* the dead peer's socket stays */
    sl_err err = ping(a, "peer", 2, 300);
    print_message("while the peer is dead: %s\n", sl_strerror(err));
    assert_true(err == SL_ECLOSED || err == SL_ETIMEDOUT);

    pid = spawn_peer("peer"); /* removes the stale socket and binds again */
    uint64_t t0 = sl_now_ms();
    int tries = 0;
    do {
        err = ping(a, "peer", 3, 500);
        tries++;
    } while (err && sl_now_ms() - t0 < 5000);
    print_message("reconnected after %llu ms, %d tries\n",
                  (unsigned long long)(sl_now_ms() - t0), tries);
    assert_int_equal(err, SL_OK);
    /* a clean stop: STOP is acknowledged, the helper exits 0 */
    sl_msg r;
    assert_int_equal(sl_mailbox_request(a, "peer", SL_MSG_STOP, NULL, 0, &r, 3000), SL_OK);
    assert_int_equal(r.type, SL_MSG_STOP);
    sl_msg_fini(&r);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    sl_mailbox_close(a);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    sl_log_init("test_mailbox", SL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_creates_a_private_dir_and_close_removes_the_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(open_refuses_bad_names_long_paths_and_live_owners, setup, teardown),
        cmocka_unit_test_setup_teardown(open_replaces_the_stale_socket_of_a_dead_predecessor, setup, teardown),
        cmocka_unit_test_setup_teardown(open_refuses_to_remove_a_file_that_is_not_a_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(a_message_round_trips_between_two_mailboxes, setup, teardown),
        cmocka_unit_test_setup_teardown(recv_times_out_when_nothing_comes, setup, teardown),
        cmocka_unit_test_setup_teardown(sending_to_an_absent_peer_fails_quickly_and_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(a_request_gets_its_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(a_request_nobody_answers_times_out_in_bounded_time, setup, teardown),
        cmocka_unit_test_setup_teardown(a_late_reply_is_dropped_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(messages_arriving_during_a_request_wait_for_the_next_recv, setup, teardown),
        cmocka_unit_test_setup_teardown(replies_to_caller_tracked_ids_come_out_of_recv, setup, teardown),
        cmocka_unit_test_setup_teardown(poll_waits_on_the_mailbox_and_other_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_frames_on_the_wire_are_dropped_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(messages_flow_again_after_the_peer_restarts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
