/*
 * test_nccl_msg.c — the NCCL unique id through the mailbox (no GPU needed):
 * hex round trip, shard ranges and the gradient bucket plan
 * (kernels/nccl_comm.c), NCCL_ID payloads encoded/decoded and refused when
 * malformed (actors/nccl_msg.c), and one NCCL_ID sent from "rank 0" to
 * "rank 1" mailboxes and decoded to the same id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailbox.h"
#include "nccl_comm.h"
#include "nccl_msg.h"

static void fake_id(char hex[SL_NCCL_ID_HEX], unsigned seed)
{
    unsigned char raw[SL_NCCL_ID_BYTES];
    for (int i = 0; i < SL_NCCL_ID_BYTES; i++) raw[i] = (unsigned char)(seed * 31u + (unsigned)i * 7u);
    sl_nccl_id_to_hex(raw, hex);
}

static void hex_round_trip(void **st)
{
    (void)st;
    unsigned char raw[SL_NCCL_ID_BYTES], back[SL_NCCL_ID_BYTES];
    for (int i = 0; i < SL_NCCL_ID_BYTES; i++) raw[i] = (unsigned char)(i * 37 + 1);
    char hex[SL_NCCL_ID_HEX], why[96];
    sl_nccl_id_to_hex(raw, hex);
    assert_int_equal(strlen(hex), 256);
    assert_int_equal(sl_nccl_id_from_hex(hex, back, why, sizeof why), 0);
    assert_memory_equal(raw, back, SL_NCCL_ID_BYTES);
    hex[10] = 'G';
    assert_int_equal(sl_nccl_id_from_hex(hex, back, why, sizeof why), SL_EINVAL);
    assert_non_null(strstr(why, "character 10"));
    assert_int_equal(sl_nccl_id_from_hex("abcd", back, why, sizeof why), SL_EINVAL);
    assert_non_null(strstr(why, "got 4"));
}

static void shards_cover_everything(void **st)
{
    (void)st;
    size_t totals[] = {0, 1, 63, 64, 1000, 494032768};
    for (size_t t = 0; t < sizeof totals / sizeof totals[0]; t++)
        for (int n = 1; n <= 8; n++) {
            size_t prev = 0;
            for (int r = 0; r < n; r++) {
                size_t lo, hi;
                sl_shard_range(totals[t], n, r, 64, &lo, &hi);
                assert_int_equal(lo, prev);
                assert_true(hi >= lo);
                assert_true(lo % 64 == 0 || lo == totals[t]);
                prev = hi;
            }
            assert_int_equal(prev, totals[t]);
        }
}

static void bucket_plan(void **st)
{
    (void)st;
    /* embed [0,100), 3 layers of 50, norms [250, 270) */
    size_t off[] = {100, 150, 200, 250};
    size_t lo[64], hi[64];
    int ly[64];
    int nb = sl_dp_plan(270, off, 3, 40, lo, hi, ly, 64);
    assert_true(nb > 0);
    /* every element exactly once */
    char seen[270] = {0};
    for (int b = 0; b < nb; b++)
        for (size_t i = lo[b]; i < hi[b]; i++) seen[i]++, assert_true(hi[b] - lo[b] <= 40);
    for (int i = 0; i < 270; i++) assert_int_equal(seen[i], 1);
    /* layer buckets first, top down, tagged with the lowest layer they touch */
    assert_int_equal(hi[0], 250);
    assert_int_equal(lo[0], 210);
    assert_int_equal(ly[0], 2);
    assert_int_equal(lo[1], 170);
    assert_int_equal(ly[1], 1); /* [170, 210) touches layer 1 */
    for (int b = 0; b < nb; b++)
        if (ly[b] >= 0) assert_true(off[ly[b]] <= lo[b] && lo[b] < off[ly[b] + 1]);
        else assert_true(hi[b] <= 100 || lo[b] >= 250);
    assert_int_equal(sl_dp_plan(270, off, 3, 40, lo, hi, ly, 3), -1);
}

static void msg_round_trip_and_hostile(void **st)
{
    (void)st;
    sl_nccl_id_msg m = {.group = "dp", .nranks = 4, .rank = 3, .epoch = 2}, d;
    fake_id(m.id, 5);
    char buf[512], why[160];
    int n = sl_nccl_id_msg_encode(&m, buf, sizeof buf);
    assert_true(n > 256);
    assert_int_equal(sl_nccl_id_msg_decode(buf, (size_t)n, &d, why, sizeof why), 0);
    assert_string_equal(d.group, "dp");
    assert_int_equal(d.nranks, 4);
    assert_int_equal(d.rank, 3);
    assert_int_equal(d.epoch, 2);
    assert_string_equal(d.id, m.id);
    const struct {
        const char *text, *field;
    } bad[] = {
        {"[1]", "not a JSON object"},
        {"{\"group\":\"x\",\"nranks\":2,\"rank\":0,\"epoch\":0,\"id\":\"00\"}", "group"},
        {"{\"group\":\"dp\",\"nranks\":0,\"rank\":0,\"epoch\":0,\"id\":\"00\"}", "nranks"},
        {"{\"group\":\"dp\",\"nranks\":2,\"rank\":2,\"epoch\":0,\"id\":\"00\"}", "rank"},
        {"{\"group\":\"dp\",\"nranks\":2,\"rank\":1,\"epoch\":-1,\"id\":\"00\"}", "epoch"},
        {"{\"group\":\"dp\",\"nranks\":2,\"rank\":1,\"epoch\":0,\"id\":\"00\"}", "id"},
        {"{\"group\":\"dp\",\"nranks\":2,\"rank\":1,\"epoch\":0}", "id"},
        {"{\"group\":\"dp\",\"group\":\"dp\"}", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = sl_nccl_id_msg_decode(bad[i].text, strlen(bad[i].text), &d, why, sizeof why);
        assert_true(rc == SL_EINVAL || rc == SL_EPROTO);
        assert_non_null(strstr(why, bad[i].field));
    }
    m.rank = 4;
    assert_int_equal(sl_nccl_id_msg_encode(&m, buf, sizeof buf), -1);
}

static void id_through_the_mailbox(void **st)
{
    (void)st;
    char dir[] = "/tmp/slnccl.XXXXXX";
    assert_non_null(mkdtemp(dir));
    sl_mailbox *r0 = NULL, *r1 = NULL;
    assert_int_equal(sl_mailbox_open(dir, "trainer.0", &r0), 0);
    assert_int_equal(sl_mailbox_open(dir, "trainer.1", &r1), 0);
    sl_nccl_id_msg m = {.group = "dp", .nranks = 2, .rank = 1, .epoch = 0}, d;
    fake_id(m.id, 9);
    char buf[512], why[160];
    int n = sl_nccl_id_msg_encode(&m, buf, sizeof buf);
    assert_int_equal(sl_mailbox_send(r0, "trainer.1", SL_MSG_NCCL_ID, buf, (size_t)n), 0);
    sl_msg msg = {0};
    assert_int_equal(sl_mailbox_recv(r1, &msg, 5000), 0);
    assert_int_equal(msg.type, SL_MSG_NCCL_ID);
    assert_string_equal(msg.sender, "trainer.0");
    assert_int_equal(sl_nccl_id_msg_decode(msg.payload, msg.len, &d, why, sizeof why), 0);
    assert_string_equal(d.id, m.id);
    assert_int_equal(d.rank, 1);
    sl_msg_fini(&msg);
    sl_mailbox_close(r0);
    sl_mailbox_close(r1);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hex_round_trip),
        cmocka_unit_test(shards_cover_everything),
        cmocka_unit_test(bucket_plan),
        cmocka_unit_test(msg_round_trip_and_hostile),
        cmocka_unit_test(id_through_the_mailbox),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
