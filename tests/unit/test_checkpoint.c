/*
 * test_checkpoint.c — checkpoints (checkpoint.h): a round trip restores
 * weights, optimizer state (proved by an identical next step), counters and
 * run state; `latest` and the listing; hostile pointers, state files and
 * torn weights/optimizer files are refused without touching the trainer;
 * ledger appends and truncation (torn last line, garbage line).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "checkpoint.h"
#include "dataset.h"
#include "task_arith.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];       /* per-test temporary run dir */
static char mdir[PATH_MAX];  /* model folder (config + tokenizer) */

static int setup(void **state) {
    (void)state;
    strcpy(root, "/tmp/sl_test_ckpt_XXXXXX");
    if (!mkdtemp(root)) return -1;
    snprintf(mdir, sizeof mdir, "%s/model", root);
    char err[256];
    sl_arith_model_cfg mc;
    sl_arith_model_cfg_init(&mc);
    mc.hidden_size = 32;
    mc.intermediate_size = 64;
    mc.num_attention_heads = 2;
    mc.num_key_value_heads = 1;
    mc.head_dim = 16;
    mc.max_position_embeddings = 64;
    if (sl_arith_write_model_config(mdir, &mc, err, sizeof err)) return -1;
    if (sl_arith_write_tokenizer(mdir, err, sizeof err)) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct pair {
    sl_model *m;
    sl_trainer *t;
} pair;

static pair make(uint64_t seed) {
    pair p;
    sl_hf_config c;
    char err[512];
    assert_int_equal(sl_hf_config_load(&c, mdir, err, sizeof err), SL_OK);
    assert_int_equal(sl_model_new(&c, sl_ops_cpu(), 64, seed, &p.m, err, sizeof err), SL_OK);
    sl_hf_config_fini(&c);
    sl_trainer_cfg tc;
    sl_trainer_cfg_default(&tc);
    tc.loss_type = SL_LOSS_SFT;
    tc.global_batch_size = 4;
    tc.micro_batch_size = 2;
    tc.lr = 1e-2;
    assert_int_equal(sl_trainer_new(p.m, &tc, &p.t, err, sizeof err), SL_OK);
    return p;
}

static void unmake(pair *p) {
    sl_trainer_free(p->t);
    sl_model_free(p->m);
}

/* Four samples of 8 tokens; trained on the last 4 of each. */
static int32_t toks[32];
static uint64_t offs[5] = {0, 8, 16, 24, 32};
static uint8_t mask[32];

static sl_train_batch batch(int salt) {
    for (int i = 0; i < 32; i++) {
        toks[i] = 1 + (i * 7 + salt) % 90;
        mask[i] = (i % 8) >= 4;
    }
    return (sl_train_batch){.n_samples = 4, .offsets = offs, .tokens = toks, .loss_mask = mask};
}

static void step(pair *p, int salt) {
    sl_train_batch b = batch(salt);
    sl_train_metrics m;
    assert_int_equal(sl_trainer_step(p->t, &b, &m), SL_OK);
    assert_int_equal(m.steps, 1);
}

static int params_equal(const pair *a, const pair *b) {
    return a->m->n_params == b->m->n_params &&
           memcmp(a->m->params_mem, b->m->params_mem, a->m->n_params * sizeof(float)) == 0;
}

static void write_ckpt(pair *p, int64_t rl_step, const char *cursor) {
    sl_ckpt_state st = {.step = rl_step, .weight_version = sl_trainer_weight_version(p->t),
                        .sft_done = true, .sft_step = 2, .rng = 0xfedcba9876543210ull};
    strcpy(st.phase, "rl");
    st.cursor_json = (char *)cursor;
    char name[SL_CKPT_NAME_MAX], err[512];
    assert_int_equal(sl_ckpt_write(root, p->t, mdir, &st, name, err, sizeof err), SL_OK);
}

static void test_a_checkpoint_round_trip_restores_weights_optimizer_counters_and_state(void **s) {
    (void)s;
    pair a = make(1);
    step(&a, 1);
    step(&a, 2);
    write_ckpt(&a, 3, "{\"epoch\":1,\"position\":17}");
    char name[SL_CKPT_NAME_MAX], err[512];
    assert_int_equal(sl_ckpt_latest(root, name, err, sizeof err), SL_OK);
    assert_string_equal(name, "step_000003");
    /* the folder is a Hugging Face folder with the tokenizer beside it */
    char p[PATH_MAX];
    struct stat sb;
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json",
                           "tokenizer_config.json", "state.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/checkpoints/step_000003/%s", root, files[i]);
        assert_int_equal(stat(p, &sb), 0);
    }

    pair b = make(99);
    assert_false(params_equal(&a, &b));
    sl_ckpt_state st;
    assert_int_equal(sl_ckpt_load(root, name, b.t, &st, err, sizeof err), SL_OK);
    assert_true(params_equal(&a, &b));
    assert_int_equal(st.step, 3);
    assert_int_equal(st.weight_version, sl_trainer_weight_version(a.t));
    assert_int_equal(st.weight_version, 2);
    assert_true(st.sft_done);
    assert_int_equal(st.sft_step, 2);
    assert_string_equal(st.phase, "rl");
    assert_true(st.rng == 0xfedcba9876543210ull);
    assert_non_null(st.cursor_json);
    assert_non_null(strstr(st.cursor_json, "\"position\":17"));
    sl_trainer_counters ca, cb;
    sl_trainer_get_counters(a.t, &ca);
    sl_trainer_get_counters(b.t, &cb);
    assert_int_equal(ca.optimizer_step, cb.optimizer_step);
    /* same optimizer moments: the next step gives bit-identical weights */
    step(&a, 3);
    step(&b, 3);
    assert_true(params_equal(&a, &b));
    sl_ckpt_state_fini(&st);
    unmake(&a);
    unmake(&b);
}

static void test_latest_follows_the_newest_write_and_the_list_is_ascending(void **s) {
    (void)s;
    pair a = make(1);
    write_ckpt(&a, 10, NULL);
    step(&a, 1);
    write_ckpt(&a, 2, NULL);
    write_ckpt(&a, 2, NULL); /* rewriting a step replaces the folder */
    char name[SL_CKPT_NAME_MAX], err[512];
    assert_int_equal(sl_ckpt_latest(root, name, err, sizeof err), SL_OK);
    assert_string_equal(name, "step_000002");
    char **names;
    size_t n;
    assert_int_equal(sl_ckpt_list(root, &names, &n), SL_OK);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "step_000002");
    assert_string_equal(names[1], "step_000010");
    sl_ckpt_list_free(names, n);
    assert_int_equal(sl_ckpt_forget_latest(root), SL_OK);
    assert_int_equal(sl_ckpt_latest(root, name, err, sizeof err), SL_ENOENT);
    unmake(&a);
}

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_hostile_latest_pointers_and_state_files_are_refused(void **s) {
    (void)s;
    pair a = make(1);
    write_ckpt(&a, 1, NULL);
    char p[PATH_MAX], name[SL_CKPT_NAME_MAX], err[512];
    snprintf(p, sizeof p, "%s/checkpoints/latest", root);
    const char *bad[] = {"../../etc\n", "step_1\n", "step_00000x\n", "", "step_000001\nstep_000002\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        put(p, bad[i]);
        assert_int_equal(sl_ckpt_latest(root, name, err, sizeof err), SL_EINVAL);
        assert_non_null(strstr(err, "refused"));
    }
    put(p, "step_000777\n");
    assert_int_equal(sl_ckpt_latest(root, name, err, sizeof err), SL_ENOENT);

    pair b = make(5);
    sl_ckpt_state st;
    assert_int_equal(sl_ckpt_load(root, "../step_000001", b.t, &st, err, sizeof err), SL_EINVAL);
    snprintf(p, sizeof p, "%s/checkpoints/step_000001/state.json", root);
    const char *states[] = {
        "not json", "[]", "{\"step\":1}",
        "{\"step\":-1,\"weight_version\":0,\"phase\":\"rl\",\"sft_done\":true,\"sft_step\":0,\"cursor\":null,\"rng\":\"1\"}",
        "{\"step\":1,\"weight_version\":0,\"phase\":\"xx\",\"sft_done\":true,\"sft_step\":0,\"cursor\":null,\"rng\":\"1\"}",
        "{\"step\":1,\"weight_version\":0,\"phase\":\"rl\",\"sft_done\":true,\"sft_step\":0,\"cursor\":5,\"rng\":\"1\"}",
        "{\"step\":1,\"weight_version\":0,\"phase\":\"rl\",\"sft_done\":true,\"sft_step\":0,\"cursor\":null,\"rng\":\"-3\"}",
        /* well-formed but for another step */
        "{\"step\":2,\"weight_version\":0,\"phase\":\"rl\",\"sft_done\":true,\"sft_step\":0,\"cursor\":null,\"rng\":\"1\"}",
        /* well-formed but the version disagrees with the trainer's counters */
        "{\"step\":1,\"weight_version\":9,\"phase\":\"rl\",\"sft_done\":true,\"sft_step\":0,\"cursor\":null,\"rng\":\"1\"}",
    };
    for (size_t i = 0; i < sizeof states / sizeof *states; i++) {
        put(p, states[i]);
        int e = sl_ckpt_load(root, "step_000001", b.t, &st, err, sizeof err);
        assert_int_equal(e, SL_EINVAL);
        assert_true(strlen(err) > 0);
        assert_null(st.cursor_json);
    }
    unmake(&a);
    unmake(&b);
}

static void corrupt(const char *path, long at) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t size = lseek(fd, 0, SEEK_END);
    long pos = at >= 0 ? at : (long)size + at;
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, pos), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, pos), 1);
    close(fd);
}

static void test_torn_or_altered_weight_and_optimizer_files_are_refused_and_change_nothing(void **s) {
    (void)s;
    pair a = make(1);
    step(&a, 1);
    write_ckpt(&a, 1, NULL);
    pair b = make(7);
    float *before = malloc(b.m->n_params * sizeof(float));
    memcpy(before, b.m->params_mem, b.m->n_params * sizeof(float));
    char p[PATH_MAX], err[512];
    sl_ckpt_state st;

    snprintf(p, sizeof p, "%s/checkpoints/step_000001/optimizer.bin", root);
    corrupt(p, -5);
    assert_int_not_equal(sl_ckpt_load(root, "step_000001", b.t, &st, err, sizeof err), SL_OK);
    assert_memory_equal(before, b.m->params_mem, b.m->n_params * sizeof(float));

    write_ckpt(&a, 1, NULL); /* a fresh copy, then tear the weights */
    snprintf(p, sizeof p, "%s/checkpoints/step_000001/model.safetensors", root);
    assert_int_equal(truncate(p, 100), 0);
    assert_int_not_equal(sl_ckpt_load(root, "step_000001", b.t, &st, err, sizeof err), SL_OK);
    assert_memory_equal(before, b.m->params_mem, b.m->n_params * sizeof(float));
    free(before);
    unmake(&a);
    unmake(&b);
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static void test_the_ledger_is_cut_back_to_a_step_and_a_torn_line_is_dropped(void **s) {
    (void)s;
    char path[PATH_MAX], err[256];
    snprintf(path, sizeof path, "%s/ledger.jsonl", root);
    for (int st = 1; st <= 5; st++) {
        uint64_t ids[3];
        for (uint32_t k = 0; k < 3; k++) assert_int_equal(sl_sample_id_pack(0, (uint64_t)st, k, &ids[k]), SL_OK);
        assert_int_equal(sl_ledger_append(path, st, (uint64_t)st, ids, 3), SL_OK);
    }
    assert_int_equal(count_lines(path), 5);
    FILE *f = fopen(path, "r");
    char line[512];
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line,
                        "{\"step\":1,\"weight_version\":1,\"sample_ids\":[\"e0:i1:s0\",\"e0:i1:s1\",\"e0:i1:s2\"]}\n");
    /* a writer died mid-line */
    f = fopen(path, "a");
    fputs("{\"step\":6,\"weight_ver", f);
    fclose(f);
    size_t kept, dropped;
    assert_int_equal(sl_ledger_truncate(path, 3, &kept, &dropped, err, sizeof err), SL_OK);
    assert_int_equal(kept, 3);
    assert_int_equal(dropped, 3);
    assert_int_equal(count_lines(path), 3);
    /* nothing to drop: unchanged */
    assert_int_equal(sl_ledger_truncate(path, 3, &kept, &dropped, err, sizeof err), SL_OK);
    assert_int_equal(dropped, 0);
    /* a garbage line is an error and the file stays as it was */
    f = fopen(path, "a");
    fputs("garbage\n", f);
    fclose(f);
    assert_int_equal(sl_ledger_truncate(path, 1, &kept, &dropped, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, ":4:"));
    assert_int_equal(count_lines(path), 4);
    /* a missing ledger is fine */
    unlink(path);
    assert_int_equal(sl_ledger_truncate(path, 1, &kept, &dropped, err, sizeof err), SL_OK);
    assert_int_equal(kept, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_a_checkpoint_round_trip_restores_weights_optimizer_counters_and_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_follows_the_newest_write_and_the_list_is_ascending,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_latest_pointers_and_state_files_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_torn_or_altered_weight_and_optimizer_files_are_refused_and_change_nothing, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_the_ledger_is_cut_back_to_a_step_and_a_torn_line_is_dropped,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
