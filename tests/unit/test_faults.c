/*
 * test_faults.c — fault injection points (mailbox/faults.h): spec syntax
 * and its refusals, the pass at which a point fires (fixed and seeded),
 * actor filters, the per-run firing limit kept in RUN_DIR/faults/ across
 * "restarts", a kill point really killing its process, and a frame
 * corrupted by sl_faults_corrupt refused by the decoder.
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
#include <sys/wait.h>
#include <unistd.h>

#include "faults.h"
#include "frame.h"

static char dir[64];

static int setup(void **st) {
    (void)st;
    unsetenv("SL_FAULTS");
    snprintf(dir, sizeof dir, "/tmp/sltf.XXXXXX");
    assert_non_null(mkdtemp(dir));
    sl_faults_reset();
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    sl_faults_reset();
    return 0;
}

static void good_specs_pass_the_check(void **st) {
    (void)st;
    const char *good[] = {"", "ckpt_write=kill", "trainer:ckpt_write=kill@3x2",
                          "wal_ack=kill@r10, mb_send=drop@5x3 rollout:mb_send=corrupt@r7",
                          "buffer:wal_append=kill@1x1"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(sl_faults_check(good[i], NULL, 0), SL_OK);
}

static void bad_specs_are_refused_with_the_entry_named(void **st) {
    (void)st;
    const char *bad[] = {"ckpt_write",         "nowhere=kill",        "ckpt_write=explode",
                         "ckpt_write=drop",     "wal_ack=kill@0",      "wal_ack=kill@",
                         "wal_ack=kill@3y",     "wal_ack=kill@3x0",    ":wal_ack=kill",
                         "wal_ack=kill@99999999999999", "mb_send=corrupt@rx"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[300];
        assert_int_equal(sl_faults_check(bad[i], err, sizeof err), SL_EINVAL);
        assert_non_null(strstr(err, "entry '"));
    }
}

static void a_point_fires_at_its_pass_and_only_for_its_actor(void **st) {
    (void)st;
    assert_int_equal(sl_faults_arm("rollout:mb_send=drop@3x2,trainer:mb_send=corrupt", "rollout.1", NULL, 1), 1);
    int drops = 0;
    for (int i = 1; i <= 9; i++) {
        sl_fault_action a = sl_fault_point("mb_send");
        if (a == SL_FAULT_DROP) {
            drops++;
            assert_true(i == 3 || i == 6); /* passes 3 and 6, then the x2 limit */
        } else {
            assert_int_equal(a, SL_FAULT_NONE);
        }
    }
    assert_int_equal(drops, 2);
    assert_int_equal(sl_fault_point("ckpt_write"), SL_FAULT_NONE);
    assert_int_equal(sl_faults_fired(), 2);
}

static void requested_frames_come_first(void **st) {
    (void)st;
    sl_faults_request_net(SL_FAULT_CORRUPT);
    sl_faults_request_net(SL_FAULT_DROP);
    assert_int_equal(sl_faults_net(), SL_FAULT_DROP);
    assert_int_equal(sl_faults_net(), SL_FAULT_CORRUPT);
    assert_int_equal(sl_faults_net(), SL_FAULT_NONE);
}

/* The pass of @rN is the same for the same seed, actor and point. */
static int random_pass(uint64_t seed) {
    sl_faults_reset();
    assert_int_equal(sl_faults_arm("mb_send=drop@r50", "buffer", NULL, seed), 1);
    for (int i = 1; i <= 50; i++)
        if (sl_fault_point("mb_send") == SL_FAULT_DROP) return i;
    return 0;
}

static void a_random_pass_is_drawn_from_the_seed(void **st) {
    (void)st;
    int a = random_pass(11), b = random_pass(11);
    assert_true(a >= 1 && a <= 50);
    assert_int_equal(a, b);
    int differ = 0;
    for (uint64_t s = 1; s < 20; s++) differ += random_pass(s) != a;
    assert_true(differ > 0);
}

/* A kill point kills its process; its marker keeps a "restarted" process
 * (a second child) from dying at the same place again. */
static int child_status(void) {
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        sl_faults_reset();
        if (sl_faults_arm("trainer:ckpt_write=kill@2", "trainer", dir, 1) != 1) _exit(3);
        sl_fault_point("ckpt_write");
        sl_fault_point("ckpt_write");
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(p, &st, 0), p);
    return st;
}

static void a_kill_point_kills_once_per_run(void **st) {
    (void)st;
    int s1 = child_status();
    assert_true(WIFSIGNALED(s1) && WTERMSIG(s1) == 9);
    char m[128];
    snprintf(m, sizeof m, "%s/faults/trainer.ckpt_write.0", dir);
    struct stat sb;
    assert_int_equal(stat(m, &sb), 0);
    int s2 = child_status();
    assert_true(WIFEXITED(s2) && WEXITSTATUS(s2) == 0);
}

static void the_environment_replaces_the_spec(void **st) {
    (void)st;
    setenv("SL_FAULTS", "reward_score=kill@5,wal_ack=kill@2", 1);
    assert_int_equal(sl_faults_arm("ckpt_write=kill", "x", NULL, 1), 2);
    setenv("SL_FAULTS", "bogus", 1);
    assert_int_equal(sl_faults_arm("ckpt_write=kill", "x", NULL, 1), -1);
    unsetenv("SL_FAULTS");
}

static void a_corrupted_frame_is_refused(void **st) {
    (void)st;
    static uint8_t buf[SL_FRAME_HEADER_SIZE + 64];
    for (size_t len = 0; len <= 64; len += 16) {
        sl_frame_header h = {.type = 0x8001, .seq = 1};
        snprintf(h.sender, sizeof h.sender, "t");
        uint8_t pl[64];
        memset(pl, 'a', sizeof pl);
        size_t n = 0;
        assert_int_equal(sl_frame_encode(&h, pl, len, buf, sizeof buf, &n), SL_OK);
        assert_int_equal(sl_frame_decode(buf, n, NULL, NULL), SL_FRAME_OK);
        sl_faults_corrupt(buf, n);
        assert_int_not_equal(sl_frame_decode(buf, n, NULL, NULL), SL_FRAME_OK);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(good_specs_pass_the_check, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_specs_are_refused_with_the_entry_named, setup, teardown),
        cmocka_unit_test_setup_teardown(a_point_fires_at_its_pass_and_only_for_its_actor, setup, teardown),
        cmocka_unit_test_setup_teardown(requested_frames_come_first, setup, teardown),
        cmocka_unit_test_setup_teardown(a_random_pass_is_drawn_from_the_seed, setup, teardown),
        cmocka_unit_test_setup_teardown(a_kill_point_kills_once_per_run, setup, teardown),
        cmocka_unit_test_setup_teardown(the_environment_replaces_the_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(a_corrupted_frame_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
