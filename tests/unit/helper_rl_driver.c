/*
 * helper_rl_driver.c — drives a trainer and a rollout actor (spawned as
 * `slime-actor --kind trainer|rollout`) without a buffer or reward actor,
 * for tests/rl/test_trainer_rollout.sh. It plays both missing parts itself
 * through two mailboxes, "buffer" and "reward":
 *
 *   1. STATUS_REQ: a fresh trainer is at step 0, weight_version 0;
 *   2. PROMPTS (one arithmetic group of 4) -> SAMPLES arrive at "reward";
 *      the slot reads as a valid sample batch (weight_version 0, 4 samples,
 *      loss mask on the responses) for the reward's and the buffer's ids;
 *   3. TRAIN_BATCH step 1 (rewards 1/0, a slot of our own arena, consumer
 *      31) -> TRAIN_DONE with weight_version 1; the ledger holds the 4 ids;
 *      the slot was released; a checkpoint step_000001 exists;
 *   4. the same step again -> "duplicate": true, not trained;
 *   5. new PROMPTS -> samples made with weight_version 1;
 *   6. a malformed TRAIN_BATCH (bad desc) -> an error, the trainer lives;
 *   7. SIGKILL the trainer, start it again: STATUS says step 1, version 1
 *      (resumed from the checkpoint), the ledger still has one line;
 *   8. step 3 right after the restart is refused (behind: the trainer is at
 *      step 1), step 2 trains (weight_version 2, ledger 2 lines);
 *   9. a long step (512 samples) trains while PINGs keep being answered
 *      (the step runs on a worker thread);
 *  10. the rollout generates with the new trainer's weights (version 3).
 * Prints one line per check; exit 0 when all pass, 1 otherwise.
 *
 *   helper_rl_driver SLIME_ACTOR TOPOLOGY RUN_DIR
 */
#include "actor_driver.h"
#include "dataset.h"
#include "mailbox.h"
#include "rl_common.h"
#include "rl_msg.h"
#include "sample_batch.h"
#include "shm.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>



static json_t *payload_json(const sl_msg *m) {
    json_t *o = NULL;
    sl_rl_json_parse(m->payload, m->len, &o, NULL, 0);
    return o;
}

/* Wait for a message of TYPE on MB (others dropped), up to MS. */
static int wait_type(sl_mailbox *mb, uint16_t type, int ms, sl_msg *out) {
    uint64_t end = sl_now_ms() + (uint64_t)ms;
    while (sl_now_ms() < end) {
        sl_msg m;
        int e = sl_mailbox_recv(mb, &m, 100);
        if (e) continue;
        if (sl_mailbox_handle_builtin(mb, &m)) continue;
        if (m.type == type) {
            *out = m;
            return 0;
        }
        sl_msg_fini(&m);
    }
    return -1;
}

static int request_json(sl_mailbox *mb, const char *to, uint16_t type, json_t *o, json_t **reply,
                        int ms) {
    char *t = json_dumps(o, JSON_COMPACT);
    sl_msg r;
    int e = sl_mailbox_request(mb, to, type, t, strlen(t), &r, ms);
    free(t);
    *reply = NULL;
    if (e) return e;
    if (sl_msg_is_error(&r, NULL)) {
        sl_msg_fini(&r);
        return SL_EPROTO;
    }
    *reply = payload_json(&r);
    sl_msg_fini(&r);
    return *reply ? 0 : SL_EINVAL;
}

/* Receive SAMPLES at the reward mailbox, read the slot as reward (0) and as
 * buffer (30), copy the batch out into *copy (malloc'd), release both. */
static int get_samples(sl_mailbox *rw, uint8_t **copy, size_t *clen, uint64_t *version) {
    sl_msg m;
    if (wait_type(rw, SL_MSG_SAMPLES, 60000, &m)) return -1;
    json_t *o = payload_json(&m);
    sl_msg_fini(&m);
    sl_shm_desc d;
    if (!o || sl_rl_json_desc(o, &d) || sl_rl_json_u64(o, "weight_version", version)) {
        json_decref(o);
        return -2;
    }
    json_decref(o);
    sl_shm_view *vr, *vb;
    const void *p;
    size_t len;
    if (sl_shm_arena_open(&d, 0, &vr) || sl_shm_arena_open(&d, SL_RL_CONSUMER_BUFFER, &vb))
        return -3;
    int rc = 0;
    if (sl_shm_read(vr, &d, 0, &p, &len)) rc = -4;
    sl_batch_view bv;
    char err[256];
    if (!rc && sl_batch_view_open(&bv, p, len, 100, 0, err, sizeof err)) {
        printf("batch: %s\n", err);
        rc = -5;
    }
    if (!rc && bv.n_samples != 4) rc = -6;
    for (uint32_t i = 0; !rc && i < bv.n_samples; i++) {
        sl_batch_sample s;
        sl_batch_view_sample(&bv, i, &s);
        if (s.prompt_len != 5 || s.n_tokens <= 5 || !s.loss_mask[5] || s.loss_mask[4]) rc = -7;
        if (s.weight_version != *version || !s.label || strcmp(s.label, "19")) rc = -8;
    }
    if (!rc) {
        *copy = malloc(len);
        memcpy(*copy, p, len);
        *clen = len;
    }
    sl_shm_release(vr, &d);
    if (sl_shm_read(vb, &d, 0, &p, &len) == 0) sl_shm_release(vb, &d);
    else rc = rc ? rc : -9;
    sl_shm_view_close(vr);
    sl_shm_view_close(vb);
    return rc;
}

/* Copy a rollout batch into our arena with rewards 1, 0, 1, 0; publish to
 * the trainer's id. */
static int make_train_batch(sl_shm_arena *a, const uint8_t *src, size_t len, sl_shm_desc *d) {
    sl_batch_view bv;
    if (sl_batch_view_open(&bv, src, len, 100, 0, NULL, 0)) return -1;
    sl_batch_dims dims = {.n_samples = bv.n_samples, .n_tokens = bv.n_tokens,
                          .meta_bytes = bv.meta_bytes, .flags = bv.flags};
    void *p;
    uint32_t slot;
    if (sl_shm_slot_acquire(a, &p, &slot)) return -2;
    sl_batch_writer w;
    sl_batch_writer_init(&w, p, 1 << 20, &dims, bv.weight_version, 1, 100);
    for (uint32_t i = 0; i < bv.n_samples; i++) {
        sl_batch_sample s;
        sl_batch_view_sample(&bv, i, &s);
        sl_batch_sample_in in = {.tokens = s.tokens, .n_tokens = s.n_tokens,
                                 .prompt_len = s.prompt_len, .logprobs = s.logprobs,
                                 .loss_mask = s.loss_mask, .reward = (i % 2) ? 0.0f : 1.0f,
                                 .sample_id = s.sample_id, .group_id = s.group_id,
                                 .weight_version = s.weight_version, .label = s.label,
                                 .metadata = s.metadata};
        if (sl_batch_writer_add(&w, &in)) return -3;
    }
    size_t n;
    if (sl_batch_writer_finish(&w, &n)) return -4;
    return sl_shm_slot_publish_mask(a, slot, n, 1u << SL_RL_CONSUMER_TRAINER, d);
}

/* A batch of REPS copies of the group (distinct prompt ids), for a long
 * step. */
static int make_big_batch(sl_shm_arena *a, const uint8_t *src, size_t len, int reps, int64_t step,
                          sl_shm_desc *d) {
    sl_batch_view bv;
    if (sl_batch_view_open(&bv, src, len, 100, 0, NULL, 0)) return -1;
    sl_batch_dims dims = {.n_samples = bv.n_samples * (uint32_t)reps,
                          .n_tokens = bv.n_tokens * (uint64_t)reps,
                          .meta_bytes = bv.meta_bytes * (uint64_t)reps, .flags = bv.flags};
    void *p;
    uint32_t slot;
    if (sl_shm_slot_acquire(a, &p, &slot)) return -2;
    sl_batch_writer w;
    if (sl_batch_writer_init(&w, p, 1 << 20, &dims, bv.weight_version, (uint64_t)step, 100)) return -3;
    for (int r = 0; r < reps; r++)
        for (uint32_t i = 0; i < bv.n_samples; i++) {
            sl_batch_sample s;
            sl_batch_view_sample(&bv, i, &s);
            uint64_t id;
            sl_sample_id_pack(1, 1000 + (uint64_t)r, i, &id);
            sl_batch_sample_in in = {.tokens = s.tokens, .n_tokens = s.n_tokens,
                                     .prompt_len = s.prompt_len, .logprobs = s.logprobs,
                                     .loss_mask = s.loss_mask, .reward = (i % 2) ? 0.0f : 1.0f,
                                     .sample_id = id, .group_id = sl_sample_prompt_id(id),
                                     .weight_version = s.weight_version, .label = s.label,
                                     .metadata = s.metadata};
            if (sl_batch_writer_add(&w, &in)) return -4;
        }
    size_t n;
    if (sl_batch_writer_finish(&w, &n)) return -5;
    return sl_shm_slot_publish_mask(a, slot, n, 1u << SL_RL_CONSUMER_TRAINER, d);
}

static json_t *train(sl_mailbox *bf, const sl_shm_desc *d, int64_t step) {
    char hex[SL_RL_DESC_HEX_LEN + 1];
    sl_rl_desc_to_hex(d, hex);
    json_t *o = json_pack("{s:s, s:I, s:s, s:{s:i}, s:i}", "desc", hex, "step", (json_int_t)step,
                          "phase", "rl", "cursor", "epoch", 0, "n_samples", 4);
    json_t *r;
    int e = request_json(bf, "trainer", SL_MSG_TRAIN_BATCH, o, &r, 60000);
    json_decref(o);
    if (e) printf("TRAIN_BATCH: %s\n", sl_strerror(e));
    return r;
}

static int ledger_lines(void) {
    char p[1024];
    snprintf(p, sizeof p, "%s/ledger.jsonl", run_dir);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static json_t *status(sl_mailbox *bf) {
    json_t *o = json_object(), *r = NULL;
    for (int i = 0; i < 50 && !r; i++) {
        request_json(bf, "trainer", SL_MSG_STATUS_REQ, o, &r, 1000);
        if (!r) usleep(200000);
    }
    json_decref(o);
    return r;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: helper_rl_driver SLIME_ACTOR TOPOLOGY RUN_DIR\n");
        return 2;
    }
    actor_bin = argv[1];
    topo = argv[2];
    run_dir = argv[3];
    signal(SIGPIPE, SIG_IGN);
    sl_mailbox *bf, *rw;
    if (sl_mailbox_open(run_dir, "buffer", &bf) || sl_mailbox_open(run_dir, "reward", &rw)) {
        fprintf(stderr, "cannot open mailboxes in %s\n", run_dir);
        return 2;
    }
    sl_shm_arena *arena;
    if (sl_shm_arena_create("drv.train", 4, 1 << 20, &arena)) return 2;
    pid_t tp = spawn("trainer", "trainer");
    pid_t rp = spawn("rollout", "rollout");

    json_t *st = status(bf);
    uint64_t v = 99, s = 99;
    CHECK(st && !sl_rl_json_u64(st, "step", &s) && s == 0 && !sl_rl_json_u64(st, "weight_version", &v) &&
              v == 0,
          "a fresh trainer reports step 0, weight_version 0");
    json_decref(st);

    send_prompts(bf, 3, 1, 12);
    uint8_t *batch = NULL;
    size_t blen = 0;
    uint64_t ver = 99;
    int rc = get_samples(rw, &batch, &blen, &ver);
    CHECK(rc == 0 && ver == 0, "PROMPTS give a valid group of 4 samples at weight_version 0 (rc %d, v %llu)",
          rc, (unsigned long long)ver);
    if (rc) goto out;

    sl_shm_desc d;
    CHECK(make_train_batch(arena, batch, blen, &d) == 0, "a train batch is built");
    json_t *r = train(bf, &d, 1);
    uint64_t wv = 0;
    json_t *mt = r ? json_object_get(r, "metrics") : NULL;
    CHECK(r && !sl_rl_json_u64(r, "weight_version", &wv) && wv == 1 && mt &&
              json_integer_value(json_object_get(mt, "samples_trained")) == 4,
          "TRAIN_BATCH step 1 trains 4 samples and gives weight_version 1");
    json_decref(r);
    sl_shm_stats ss;
    sl_shm_arena_stats(arena, &ss);
    CHECK(ss.free == 4, "the trainer released the batch's slot");
    CHECK(ledger_lines() == 1, "the ledger holds one line");
    char p[1024];
    snprintf(p, sizeof p, "%s/checkpoints/step_000001/state.json", run_dir);
    CHECK(access(p, F_OK) == 0, "checkpoint step_000001 was written (save_interval 1)");

    CHECK(make_train_batch(arena, batch, blen, &d) == 0, "the same batch again");
    r = train(bf, &d, 1);
    CHECK(r && json_is_true(json_object_get(r, "duplicate")), "a re-sent step is not trained twice");
    json_decref(r);
    CHECK(ledger_lines() == 1, "the ledger still holds one line");

    send_prompts(bf, 4, 2, 12);
    free(batch);
    batch = NULL;
    rc = get_samples(rw, &batch, &blen, &ver);
    CHECK(rc == 0 && ver == 1, "new samples are made with weight_version 1 (rc %d, v %llu)", rc,
          (unsigned long long)ver);

    {
        json_t *o = json_pack("{s:s, s:i, s:s}", "desc", "00zz", "step", 2, "phase", "rl");
        json_t *rr;
        int e = request_json(bf, "trainer", SL_MSG_TRAIN_BATCH, o, &rr, 5000);
        json_decref(o);
        json_decref(rr);
        CHECK(e == SL_EPROTO, "a malformed TRAIN_BATCH gets an error reply");
    }

    kill(tp, SIGKILL);
    waitpid(tp, NULL, 0);
    tp = spawn("trainer", "trainer");
    st = status(bf);
    CHECK(st && !sl_rl_json_u64(st, "step", &s) && s == 1 && !sl_rl_json_u64(st, "weight_version", &v) &&
              v == 1,
          "a restarted trainer resumes at step 1, weight_version 1");
    json_decref(st);
    CHECK(ledger_lines() == 1, "the ledger was kept (step 1 <= checkpoint)");

    {
        sl_shm_desc d3;
        CHECK(make_train_batch(arena, batch, blen, &d3) == 0, "a batch for step 3");
        json_t *r3 = train(bf, &d3, 3);
        CHECK(!r3, "step 3 after a restart at step 1 is refused (the trainer is behind)");
        json_decref(r3);
        sl_shm_arena_stats(arena, &ss);
        CHECK(ss.free == 4, "the refused batch's slot was released");
        CHECK(make_train_batch(arena, batch, blen, &d3) == 0, "a batch for step 2");
        r3 = train(bf, &d3, 2);
        CHECK(r3 && !sl_rl_json_u64(r3, "weight_version", &wv) && wv == 2,
              "step 2 trains on the resumed state (weight_version 2)");
        json_decref(r3);
        CHECK(ledger_lines() == 2, "the ledger holds steps 1 and 2");
    }

    {
        /* a long step: the actor still answers PING meanwhile (the step
         * runs on a worker thread, the loop stays responsive) */
        sl_shm_desc d4;
        CHECK(make_big_batch(arena, batch, blen, 128, 3, &d4) == 0, "a batch of 512 samples for step 3");
        char hex[SL_RL_DESC_HEX_LEN + 1];
        sl_rl_desc_to_hex(&d4, hex);
        json_t *o = json_pack("{s:s, s:i, s:s, s:i}", "desc", hex, "step", 3, "phase", "rl",
                              "n_samples", 512);
        char *t = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        uint64_t t0 = sl_now_ms();
        sl_mailbox_send(bf, "trainer", SL_MSG_TRAIN_BATCH, t, strlen(t));
        free(t);
        int pings = 0, slow = 0;
        uint64_t worst = 0;
        sl_msg done = {0};
        int got = 0;
        while (!got && sl_now_ms() - t0 < 60000) {
            uint64_t p0 = sl_now_ms();
            sl_msg pong;
            uint64_t seq = (uint64_t)pings;
            if (sl_mailbox_request(bf, "trainer", SL_MSG_PING, &seq, sizeof seq, &pong, 2000) == 0) {
                pings++;
                sl_msg_fini(&pong);
            } else {
                slow++;
            }
            if (sl_now_ms() - p0 > worst) worst = sl_now_ms() - p0;
            got = wait_type(bf, SL_MSG_TRAIN_DONE, 100, &done) == 0;
        }
        uint64_t took = sl_now_ms() - t0;
        json_t *r4 = got ? payload_json(&done) : NULL;
        sl_msg_fini(&done);
        CHECK(r4 && !sl_rl_json_u64(r4, "weight_version", &wv) && wv == 3,
              "the long step trains (weight_version 3) in %llu ms", (unsigned long long)took);
        json_decref(r4);
        CHECK(pings >= 2 && slow == 0,
              "PING answered %d time(s) during the step (worst %llu ms, %d unanswered)", pings,
              (unsigned long long)worst, slow);
    }

    send_prompts(bf, 5, 2, 12);
    free(batch);
    batch = NULL;
    rc = get_samples(rw, &batch, &blen, &ver);
    CHECK(rc == 0 && ver == 3, "the rollout gets the new trainer's weights (v %llu)",
          (unsigned long long)ver);

out:
    free(batch);
    sl_mailbox_send(bf, "trainer", SL_MSG_STOP, NULL, 0);
    sl_mailbox_send(bf, "rollout", SL_MSG_STOP, NULL, 0);
    int stt, stt2;
    waitpid(tp, &stt, 0);
    waitpid(rp, &stt2, 0);
    CHECK(WIFEXITED(stt) && WEXITSTATUS(stt) == 0 && WIFEXITED(stt2) && WEXITSTATUS(stt2) == 0,
          "both actors stop cleanly on STOP");
    sl_shm_arena_close(arena);
    sl_mailbox_close(bf);
    sl_mailbox_close(rw);
    return driver_summary();
}
