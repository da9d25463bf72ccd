/*
 * test_mailbox_tcp.c — mailboxes on tcp with ZeroMQ CURVE (mailbox.h,
 * SL_MB_TCP): two mailboxes talk over 127.0.0.1 with the run's key pair;
 * a peer without the key (plain ZeroMQ, or CURVE with another server key)
 * is refused — its valid frame never arrives — while the same frame sent
 * with the run's public key does; the key file must be 0600; a restarted
 * mailbox binds its port again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "frame.h"
#include "mailbox.h"

static char dir[64];

static int setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/sltcp.XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(sl_mailbox_curve_keygen(dir), SL_OK);
    setenv(SL_ENV_MB_TCP, "127.0.0.1", 1);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    unsetenv(SL_ENV_MB_TCP);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void read_key(char pub[41]) {
    char p[128], buf[128];
    snprintf(p, sizeof p, "%s/curve.key", dir);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    memcpy(pub, buf, 40);
    pub[40] = 0;
}

static void the_key_file_is_private_and_mailboxes_bind_loopback(void **st) {
    (void)st;
    char p[128];
    snprintf(p, sizeof p, "%s/curve.key", dir);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    sl_mailbox *a = NULL;
    assert_int_equal(sl_mailbox_open(dir, "a", &a), SL_OK);
    assert_int_equal(strncmp(sl_mailbox_endpoint(a), "tcp://127.0.0.1:", 16), 0);
    sl_mailbox_close(a);
    chmod(p, 0644);
    assert_int_not_equal(sl_mailbox_open(dir, "a", &a), SL_OK);
    assert_null(a);
}

static void two_mailboxes_talk_over_curve(void **st) {
    (void)st;
    sl_mailbox *a = NULL, *b = NULL;
    assert_int_equal(sl_mailbox_open(dir, "a", &a), SL_OK);
    assert_int_equal(sl_mailbox_open(dir, "b", &b), SL_OK);
    assert_int_equal(sl_mailbox_send(b, "a", 0x8001, "hello", 5), SL_OK);
    sl_msg m = {0};
    assert_int_equal(sl_mailbox_recv(a, &m, 3000), SL_OK);
    assert_string_equal(m.sender, "b");
    assert_int_equal(m.len, 5);
    sl_msg_fini(&m);
    /* a restarted "a" binds the same port: b's connection carries on */
    char ep[256];
    snprintf(ep, sizeof ep, "%s", sl_mailbox_endpoint(a));
    sl_mailbox_close(a);
    assert_int_equal(sl_mailbox_open(dir, "a", &a), SL_OK);
    assert_string_equal(sl_mailbox_endpoint(a), ep);
    /* frames sent while b's connection to the old "a" is still being torn
     * down are lost (at-most-once across a restart, as over ipc): resend
     * until one arrives, for at most 5 s */
    sl_err got = SL_ETIMEDOUT;
    for (int i = 0; i < 25 && got != SL_OK; i++) {
        assert_int_equal(sl_mailbox_send(b, "a", 0x8001, "again", 5), SL_OK);
        got = sl_mailbox_recv(a, &m, 200);
    }
    assert_int_equal(got, SL_OK);
    assert_int_equal(m.len, 5);
    sl_msg_fini(&m);
    sl_mailbox_close(b);
    sl_mailbox_close(a);
}

/* Send one valid frame to A's endpoint from a raw DEALER; SERVER_KEY NULL:
 * no CURVE. Returns whether A received it within 1.5 s. */
static bool raw_send_arrives(sl_mailbox *a, const char *server_key) {
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (server_key) {
        char pub[41], sec[41];
        assert_int_equal(zmq_curve_keypair(pub, sec), 0);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_key, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    assert_int_equal(zmq_connect(s, sl_mailbox_endpoint(a)), 0);
    static uint8_t buf[SL_FRAME_HEADER_SIZE + 16];
    sl_frame_header h = {.type = 0x8001, .seq = 1};
    snprintf(h.sender, sizeof h.sender, "intruder");
    size_t n = 0;
    assert_int_equal(sl_frame_encode(&h, "knock", 5, buf, sizeof buf, &n), SL_OK);
    zmq_send(s, buf, n, ZMQ_DONTWAIT); /* queued until (if ever) the handshake completes */
    sl_msg m = {0};
    sl_err e = sl_mailbox_recv(a, &m, 1500);
    bool got = e == SL_OK && strcmp(m.sender, "intruder") == 0;
    sl_msg_fini(&m);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return got;
}

static void a_peer_without_the_key_is_refused(void **st) {
    (void)st;
    sl_mailbox *a = NULL;
    assert_int_equal(sl_mailbox_open(dir, "a", &a), SL_OK);
    char other_pub[41], other_sec[41], pub[41];
    assert_int_equal(zmq_curve_keypair(other_pub, other_sec), 0);
    assert_false(raw_send_arrives(a, NULL));      /* plain ZeroMQ */
    assert_false(raw_send_arrives(a, other_pub)); /* CURVE, another server key */
    read_key(pub);
    assert_true(raw_send_arrives(a, pub));        /* the run's key: let in */
    sl_mailbox_close(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_key_file_is_private_and_mailboxes_bind_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(two_mailboxes_talk_over_curve, setup, teardown),
        cmocka_unit_test_setup_teardown(a_peer_without_the_key_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
