/*
 * helper_gen_service.c — drives one rollout actor (`slime-actor --kind
 * rollout`) as a generation service, for tests/rl/test_gen_service.sh. It
 * plays the trainer (publishes random weights, version 1, on WEIGHTS_REQ)
 * and many callers (mailboxes caller0..7), and checks through the C client
 * (actors/gen_client.h):
 *
 *   1. TOKENIZE / DETOKENIZE round trip, APPLY_CHAT_TEMPLATE (text + ids);
 *   2. GENERATE from one caller, serially: 8 requests with their own
 *      parameters; then the same 8 from 8 callers at once, and from one
 *      caller with 8 in flight: identical ids, log-probs within 1e-5;
 *      PROMPTS groups (the buffer's path, SAMPLES to "reward") generated
 *      alongside GENERATE traffic equal the same groups generated alone;
 *   3. stop strings (the reply ends at the token completing the string),
 *      stop_token_ids, max_tokens ("length"), weight_version in replies;
 *   4. sessions: turn 2 reports cached_tokens = turn 1's prompt +
 *      generation and equals a cold request with the same prompt and seed;
 *   5. ABORT by rid and "all": finish "abort" promptly with the tokens so
 *      far, another caller's request in the same batch unaffected;
 *   6. malformed requests of many kinds get an ERROR naming the field, and
 *      the engine keeps serving; PINGs are answered while it generates;
 *   7. optionally (argv[4] = a python3), tests/rl/py_gen_caller.py makes the
 *      same request through slime_mailbox.py and must get the same ids.
 * Prints one line per check and the measured throughput; exit 0 when all
 * pass.
 *
 *   helper_gen_service SLIME_ACTOR TOPOLOGY RUN_DIR [PYTHON3 SCRIPT]
 */
#include "actor_driver.h"
#include "gen_client.h"
#include "hfconfig.h"
#include "mailbox.h"
#include "model.h"
#include "rl_common.h"
#include "dataset.h"
#include "rl_msg.h"
#include "sample_batch.h"
#include "weights_sync.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ENG = "rollout";


#define NCALL 8

/* The 8 requests of the batching check: their own prompts and parameters. */
static void make_call(int i, const int32_t *base, int nbase, int32_t *buf, sl_gen_call *c) {
    sl_gen_call_default(c);
    int n = 0;
    for (int k = 0; k < nbase; k++) buf[n++] = base[k];
    for (int k = 0; k < i; k++) buf[n++] = (int32_t)(16 + (i * 7 + k) % 10); /* digits */
    c->rid = 100 + (uint64_t)i;
    c->prompt = buf;
    c->prompt_len = n;
    c->max_tokens = 20 + 5 * i;
    c->temperature = i == 3 ? 0.0f : 0.6f + 0.1f * (float)i;
    c->top_k = i == 1 ? 5 : 0;
    c->top_p = i == 4 ? 0.8f : 1.0f;
    c->seed = 1000 + (uint64_t)i;
}

/* A request that runs long: 240 tokens, EOS ignored (rid and seed: the caller's). */
static sl_gen_call long_call(const int32_t *base, int nbase) {
    sl_gen_call c;
    sl_gen_call_default(&c);
    c.prompt = base;
    c.prompt_len = nbase;
    c.max_tokens = 240;
    c.ignore_eos = true;
    return c;
}

static bool same_result(const sl_gen_result *a, const sl_gen_result *b, float tol) {
    if (a->n != b->n || a->finish != b->finish ||
        (a->n && memcmp(a->ids, b->ids, sizeof(int32_t) * (size_t)a->n))) {
        printf("     rid %llu: %d tokens (finish %d) vs rid %llu: %d tokens (finish %d, err %s)\n     ",
               (unsigned long long)a->rid, a->n, a->finish, (unsigned long long)b->rid, b->n, b->finish, b->error);
        for (int k = 0; k < a->n || k < b->n; k++)
            printf("%d/%d ", k < a->n ? a->ids[k] : -1, k < b->n ? b->ids[k] : -1);
        printf("\n");
    }
    if (a->n != b->n || a->finish != b->finish) return false;
    float md = 0;
    for (int k = 0; k < a->n; k++)
        if (fabsf(a->logprobs[k] - b->logprobs[k]) > md) md = fabsf(a->logprobs[k] - b->logprobs[k]);
    if (md > tol) printf("     rid %llu: log-probs differ by %g (tolerance %g)\n", (unsigned long long)a->rid, md, tol);
    if (a->n && memcmp(a->ids, b->ids, sizeof(int32_t) * (size_t)a->n)) return false;
    for (int k = 0; k < a->n; k++)
        if (fabsf(a->logprobs[k] - b->logprobs[k]) > tol) return false;
    return true;
}

/* Wait on MB for the replies carrying CORR[0..n) (any order) into OUT[i].
 * Returns how many arrived and parsed as GENERATED. */
static int wait_corrs(sl_mailbox *mb, const uint64_t *corr, int n, int ms, sl_gen_result *out) {
    uint64_t end = sl_now_ms() + (uint64_t)ms;
    int got = 0, ok = 0;
    while (got < n && sl_now_ms() < end) {
        sl_msg m = {0};
        if (sl_mailbox_recv(mb, &m, 100)) continue;
        int i = 0;
        while (i < n && !((m.flags & SL_FLAG_REPLY) && m.corr == corr[i])) i++;
        if (i < n) {
            int e = sl_gen_result_parse(&m, &out[i]);
            if (e) printf("     (reply to corr %llu: %s %s)\n", (unsigned long long)corr[i], sl_strerror(e), out[i].error);
            else ok++;
            got++;
        } else {
            printf("     (unexpected message 0x%04x corr %llu flags %u)\n", m.type, (unsigned long long)m.corr, m.flags);
        }
        sl_msg_fini(&m);
    }
    if (got < n) printf("     (%d of %d replies missing)\n", n - got, n);
    return ok;
}

static int wait_corr(sl_mailbox *mb, uint64_t corr, int ms, sl_gen_result *out) {
    return wait_corrs(mb, &corr, 1, ms, out) == 1 ? 0 : SL_ETIMEDOUT;
}

/* Send a raw GENERATE-range request; 1 when an ERROR reply naming FIELD comes back. */
static int refused_naming(sl_mailbox *mb, uint16_t type, const char *payload, const char *field) {
    sl_msg m = {0};
    int e = sl_mailbox_request(mb, ENG, type, payload, strlen(payload), &m, 5000);
    if (e) {
        printf("     (no reply: %s)\n", sl_strerror(e));
        return 0;
    }
    int ok = 0;
    uint32_t code = 0;
    if (sl_msg_is_error(&m, &code) && m.len > 4) {
        char text[300];
        size_t n = m.len - 4 < sizeof text - 1 ? m.len - 4 : sizeof text - 1;
        memcpy(text, m.payload + 4, n);
        text[n] = 0;
        ok = strncmp(text, field, strlen(field)) == 0 && text[strlen(field)] == ':';
        if (!ok) printf("     (error text: %s)\n", text);
    } else {
        printf("     (not an error reply: type 0x%04x)\n", m.type);
    }
    sl_msg_fini(&m);
    return ok;
}

static void publish_weights(sl_mailbox *tr, sl_weights_pub **pub) {
    char mdir[1024], err[256];
    sl_hf_config cfg;
    sl_model *m = NULL;
    CHECK(sl_rl_model_dir_for("builtin:arith", run_dir, mdir, sizeof mdir) == 0 &&
              sl_hf_config_load(&cfg, mdir, err, sizeof err) == 0,
          "the builtin:arith model folder");
    CHECK(sl_model_new(&cfg, sl_ops_cpu(), 64, 7, &m, err, sizeof err) == 0, "a random model (%s)", err);
    sl_hf_config_fini(&cfg);
    for (size_t i = 0; i < m->n_params; i++) m->params_mem[i] *= 2.0f; /* less flat than the init (x8: log-probs differ by ~1e-4 with the batch shape, BLAS kernels by M) */
    char name[64];
    snprintf(name, sizeof name, "gentest.%d", (int)getpid());
    sl_msg q = {0};
    int e = sl_mailbox_recv(tr, &q, 20000);
    CHECK(e == 0 && q.type == SL_MSG_WEIGHTS_REQ, "the rollout asks for weights");
    sl_msg_fini(&q);
    sl_shm_desc d;
    e = sl_weights_pub_new(name, m->n_params, 2, pub);
    if (!e) e = sl_weights_publish(*pub, m->params_mem, 1, 1u << SL_RL_CONSUMER_ROLLOUT_BASE, &d);
    char hex[SL_RL_DESC_HEX_LEN + 1];
    sl_rl_desc_to_hex(&d, hex);
    char js[512];
    snprintf(js, sizeof js, "{\"desc\":\"%s\",\"weight_version\":1}", hex);
    if (!e) e = sl_mailbox_send(tr, ENG, SL_MSG_WEIGHTS, js, strlen(js));
    CHECK(e == 0, "weights v1 published (%s)", sl_strerror(e));
    sl_model_free(m);
}

/* One SAMPLES at RW: the group id and all its tokens (concatenated, with
 * -1 between samples) into TOK (cap), count into *n; both holds released.
 * 0 on success. */
static int get_group(sl_mailbox *rw, uint64_t *gid, int32_t *tok, int cap, int *n) {
    uint64_t end = sl_now_ms() + 30000;
    sl_msg m = {0};
    while (sl_now_ms() < end) {
        if (sl_mailbox_recv(rw, &m, 100)) continue;
        if (m.type == SL_MSG_SAMPLES) break;
        sl_msg_fini(&m);
    }
    if (m.type != SL_MSG_SAMPLES) return -1;
    json_t *o = NULL;
    sl_rl_json_parse(m.payload, m.len, &o, NULL, 0);
    sl_msg_fini(&m);
    sl_shm_desc d;
    uint64_t v = 0;
    if (!o || sl_rl_json_desc(o, &d) || sl_rl_json_u64(o, "group", gid) || sl_rl_json_u64(o, "weight_version", &v) ||
        v != 1) {
        json_decref(o);
        return -2;
    }
    json_decref(o);
    sl_shm_view *vr = NULL, *vb = NULL;
    const void *p;
    size_t len;
    if (sl_shm_arena_open(&d, 0, &vr) || sl_shm_arena_open(&d, SL_RL_CONSUMER_BUFFER, &vb)) return -3;
    int rc = sl_shm_read(vr, &d, 0, &p, &len) ? -4 : 0;
    sl_batch_view bv;
    char err[256];
    if (!rc && sl_batch_view_open(&bv, p, len, 100, 0, err, sizeof err)) rc = -5;
    *n = 0;
    for (uint32_t i = 0; !rc && i < bv.n_samples; i++) {
        sl_batch_sample bs;
        sl_batch_view_sample(&bv, i, &bs);
        for (uint32_t k = 0; k < bs.n_tokens && *n < cap - 1; k++) tok[(*n)++] = bs.tokens[k];
        tok[(*n)++] = -1;
    }
    if (!rc && bv.n_samples != 4) rc = -6;
    if (!rc) sl_shm_release(vr, &d);
    if (sl_shm_read(vb, &d, 0, &p, &len) == 0) sl_shm_release(vb, &d);
    sl_shm_view_close(vr);
    sl_shm_view_close(vb);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s SLIME_ACTOR TOPOLOGY RUN_DIR [PYTHON3 SCRIPT]\n", argv[0]);
        return 2;
    }
    actor_bin = argv[1];
    topo = argv[2];
    run_dir = argv[3];
    setvbuf(stdout, NULL, _IOLBF, 0);
    sl_log_init("gentest", SL_LOG_WARN);
    sl_mailbox *tr = NULL, *cb[NCALL] = {0}, *pinger = NULL, *rw = NULL, *bf = NULL;
    if (sl_mailbox_open(run_dir, "trainer", &tr) || sl_mailbox_open(run_dir, "pinger", &pinger) ||
        sl_mailbox_open(run_dir, "reward", &rw) || sl_mailbox_open(run_dir, "buffer", &bf))
        return 1;
    for (int i = 0; i < NCALL; i++) {
        char n[32];
        snprintf(n, sizeof n, "caller%d", i);
        if (sl_mailbox_open(run_dir, n, &cb[i])) return 1;
    }
    pid_t rp = spawn("rollout", "rollout");
    sl_weights_pub *pub = NULL;
    publish_weights(tr, &pub);
    sl_mailbox *c0 = cb[0];
    char err[256];

    /* ---- 1. tokenizer and chat template */
    int32_t *ids = NULL;
    size_t nid = 0;
    char *text = NULL;
    int e = sl_gen_tokenize(c0, ENG, "12+34=", false, 20000, &ids, &nid, err, sizeof err);
    CHECK(e == 0 && nid == 6, "TOKENIZE \"12+34=\" -> %zu ids (%s %s)", nid, sl_strerror(e), err);
    e = sl_gen_detokenize(c0, ENG, ids, nid, false, 5000, &text, err, sizeof err);
    CHECK(e == 0 && text && !strcmp(text, "12+34="), "DETOKENIZE gives the text back (\"%s\")", text ? text : "");
    free(text);
    text = NULL;
    int32_t base[64];
    int nbase = (int)nid;
    memcpy(base, ids, nid * sizeof *ids);
    free(ids);
    ids = NULL;
    sl_gen_chat_msg chat[2] = {{"system", "Add."}, {"user", "12+34="}};
    int32_t *cids = NULL;
    size_t ncid = 0;
    e = sl_gen_apply_chat_template(c0, ENG, chat, 2, true, 5000, &text, &cids, &ncid, err, sizeof err);
    CHECK(e == 0 && text &&
              !strcmp(text, "<|im_start|>system\nAdd.<|im_end|>\n<|im_start|>user\n12+34=<|im_end|>\n<|im_start|>assistant\n"),
          "APPLY_CHAT_TEMPLATE renders ChatML (%s)", text ? text : err);
    e = text ? sl_gen_tokenize(c0, ENG, text, false, 5000, &ids, &nid, err, sizeof err) : SL_EINVAL;
    CHECK(e == 0 && nid == ncid && ncid > 0 && !memcmp(ids, cids, nid * sizeof *ids),
          "its ids are the tokens of its text (%zu ids)", ncid);
    free(ids);
    free(text);
    free(cids);

    /* ---- 2. continuous batching equals serial */
    int32_t bufs[NCALL][96];
    sl_gen_call calls[NCALL];
    sl_gen_result ser[NCALL], con[NCALL], one[NCALL];
    memset(ser, 0, sizeof ser);
    memset(con, 0, sizeof con);
    memset(one, 0, sizeof one);
    for (int i = 0; i < NCALL; i++) make_call(i, base, nbase, bufs[i], &calls[i]);
    int okc = 1;
    int64_t toks1 = 0;
    uint64_t t0 = sl_now_ns();
    for (int i = 0; i < NCALL; i++) {
        e = sl_gen_generate(c0, ENG, &calls[i], 20000, &ser[i]);
        if (e || ser[i].rid != calls[i].rid || ser[i].weight_version != 1 ||
            ser[i].prompt_tokens != calls[i].prompt_len || ser[i].cached_tokens != 0 || ser[i].n < 1)
            okc = 0;
        toks1 += ser[i].n;
    }
    double s1 = (double)(sl_now_ns() - t0) * 1e-9;
    CHECK(okc, "8 GENERATE one after another (rid, weight_version 1, prompt_tokens; %lld tokens)", (long long)toks1);
    /* 8 callers at once */
    uint64_t corr[NCALL];
    t0 = sl_now_ns();
    okc = 1;
    for (int i = 0; i < NCALL; i++)
        if ((e = sl_gen_send(cb[i], ENG, &calls[i], &corr[i]))) {
            printf("     (send: %s)\n", sl_strerror(e));
            okc = 0;
        }
    for (int i = 0; i < NCALL; i++)
        if (wait_corr(cb[i], corr[i], 20000, &con[i])) okc = 0;
    double s8 = (double)(sl_now_ns() - t0) * 1e-9;
    int same = 1;
    for (int i = 0; i < NCALL; i++)
        if (!same_result(&ser[i], &con[i], 1e-5f)) same = 0;
    CHECK(okc && same, "8 callers at once get the same ids and log-probs (1e-5) as one after another");
    /* one caller, 8 in flight */
    okc = 1;
    for (int i = 0; i < NCALL; i++)
        if (sl_gen_send(c0, ENG, &calls[i], &corr[i])) okc = 0;
    if (wait_corrs(c0, corr, NCALL, 20000, one) != NCALL) okc = 0;
    same = 1;
    for (int i = 0; i < NCALL; i++)
        if (!same_result(&ser[i], &one[i], 1e-5f)) same = 0;
    CHECK(okc && same, "one caller with 8 requests in flight gets the same results");
    /* PROMPTS groups alone, then alongside the 8 callers */
    {
        static int32_t ga[2][2048], gb[2][2048];
        int na[2] = {0}, nb2[2] = {0};
        uint64_t gida[2] = {0}, gidb[2] = {0};
        int okg = 1;
        for (int k = 0; k < 2; k++) {
            send_prompts(bf, 40 + (uint64_t)k, 1, 24);
            if (get_group(rw, &gida[k], ga[k], 2048, &na[k])) okg = 0;
        }
        sl_gen_result mix[NCALL];
        memset(mix, 0, sizeof mix);
        send_prompts(bf, 40, 1, 24);
        for (int i = 0; i < NCALL; i++)
            if (sl_gen_send(cb[i], ENG, &calls[i], &corr[i])) okg = 0;
        send_prompts(bf, 41, 1, 24);
        for (int k = 0; k < 2; k++)
            if (get_group(rw, &gidb[k], gb[k], 2048, &nb2[k])) okg = 0;
        int samem = 1;
        for (int i = 0; i < NCALL; i++) {
            if (wait_corr(cb[i], corr[i], 20000, &mix[i]) || !same_result(&ser[i], &mix[i], 1e-5f)) samem = 0;
            sl_gen_result_fini(&mix[i]);
        }
        int sameg = okg && gida[0] == gidb[0] && gida[1] == gidb[1] && na[0] == nb2[0] && na[1] == nb2[1] &&
                    !memcmp(ga[0], gb[0], sizeof(int32_t) * (size_t)na[0]) &&
                    !memcmp(ga[1], gb[1], sizeof(int32_t) * (size_t)na[1]);
        CHECK(okg && sameg && samem,
              "PROMPTS groups generated alongside 8 callers equal the same groups alone (%d, %d tokens), and the callers' results are unchanged",
              na[0], na[1]);
    }
    printf("     measured: 1 caller serial %.1f req/s %.0f tok/s; 8 callers concurrent %.1f req/s %.0f tok/s\n",
           NCALL / s1, (double)toks1 / s1, NCALL / s8, (double)toks1 / s8);

    /* ---- 3. stops and lengths */
    {
        const sl_gen_result *r = &ser[5];
        /* a stop string: the text of tokens [k, k+2) of a known response */
        int k = r->n / 2;
        char *full = NULL, *stop = NULL;
        e = sl_gen_detokenize(c0, ENG, r->ids + k, 2, false, 5000, &stop, err, sizeof err);
        int expect = -1;
        for (int j = 1; !e && j <= r->n && expect < 0; j++) {
            e = sl_gen_detokenize(c0, ENG, r->ids, (size_t)j, false, 5000, &full, err, sizeof err);
            if (!e && strstr(full, stop)) expect = j;
            free(full);
            full = NULL;
        }
        sl_gen_call c = calls[5];
        const char *stops[2] = {"\x01never", stop};
        c.stop = stops;
        c.n_stop = 2;
        sl_gen_result g = {0};
        if (!e) e = sl_gen_generate(c0, ENG, &c, 20000, &g);
        CHECK(e == 0 && expect > 0 && g.n == expect && g.finish == SL_FINISH_STOP &&
                  !memcmp(g.ids, r->ids, sizeof(int32_t) * (size_t)g.n),
              "stop string \"%s\" ends the response at the token completing it (%d of %d tokens)",
              stop ? stop : "?", g.n, r->n);
        sl_gen_result_fini(&g);
        free(stop);
        /* stop token id: the 4th token's id, first occurrence */
        int32_t st = r->ids[3 < r->n ? 3 : 0];
        int first = 0;
        while (r->ids[first] != st) first++;
        c = calls[5];
        c.stop_token_ids = &st;
        c.n_stop_token_ids = 1;
        e = sl_gen_generate(c0, ENG, &c, 20000, &g);
        CHECK(e == 0 && g.n == first + 1 && g.finish == SL_FINISH_STOP && !memcmp(g.ids, r->ids, sizeof(int32_t) * (size_t)g.n),
              "stop_token_ids [%d] ends the response after %d token(s)", st, g.n);
        sl_gen_result_fini(&g);
        c = calls[2];
        c.max_tokens = 7;
        c.ignore_eos = true;
        e = sl_gen_generate(c0, ENG, &c, 20000, &g);
        CHECK(e == 0 && g.n == 7 && g.finish == SL_FINISH_LENGTH, "max_tokens 7 gives 7 tokens, finish \"length\"");
        sl_gen_result_fini(&g);
    }

    /* ---- 4. sessions */
    {
        sl_gen_call c = calls[6];
        c.session = "conv-1";
        c.ignore_eos = true;
        c.max_tokens = 12;
        sl_gen_result t1 = {0}, t2 = {0}, cold = {0};
        e = sl_gen_generate(c0, ENG, &c, 20000, &t1);
        CHECK(e == 0 && t1.cached_tokens == 0 && t1.n == 12, "session turn 1 (%d + %d tokens, nothing cached)",
              c.prompt_len, t1.n);
        int32_t p2[128];
        int n2 = 0;
        memcpy(p2, c.prompt, sizeof(int32_t) * (size_t)c.prompt_len);
        n2 = c.prompt_len;
        memcpy(p2 + n2, t1.ids, sizeof(int32_t) * (size_t)t1.n);
        n2 += t1.n;
        for (int k = 0; k < 5; k++) p2[n2++] = base[k];
        sl_gen_call c2 = c;
        c2.prompt = p2;
        c2.prompt_len = n2;
        c2.seed = 77;
        e = sl_gen_generate(c0, ENG, &c2, 20000, &t2);
        CHECK(e == 0 && t2.cached_tokens == c.prompt_len + t1.n && t2.prompt_tokens == n2,
              "session turn 2 reports cached_tokens %d = turn 1's prompt + generation (%d)", t2.cached_tokens,
              c.prompt_len + t1.n);
        c2.session = NULL;
        e = sl_gen_generate(c0, ENG, &c2, 20000, &cold);
        CHECK(e == 0 && cold.cached_tokens == 0 && same_result(&t2, &cold, 1e-4f),
              "turn 2 gives the same tokens as a request without session (same prompt and seed)");
        sl_gen_result_fini(&t1);
        sl_gen_result_fini(&t2);
        sl_gen_result_fini(&cold);
    }

    /* ---- 5. ABORT */
    {
        sl_gen_call lg = long_call(base, nbase);
        uint64_t ac[6], bc;
        sl_gen_result ar[6], br = {0};
        memset(ar, 0, sizeof ar);
        int oks = 1;
        for (int i = 0; i < 6; i++) {
            lg.rid = 500 + (uint64_t)i;
            lg.seed = (uint64_t)i;
            if (sl_gen_send(cb[1], ENG, &lg, &ac[i])) oks = 0;
        }
        if (sl_gen_send(cb[2], ENG, &calls[7], &bc)) oks = 0;
        uint64_t ta = sl_now_ms();
        if (sl_gen_abort(cb[1], ENG, 502, false) || sl_gen_abort(cb[1], ENG, 0, true)) oks = 0;
        int aborted = 0, fin_ms = 0;
        wait_corrs(cb[1], ac, 6, 10000, ar);
        for (int i = 0; i < 6; i++)
            if (ar[i].finish == SL_FINISH_ABORT && ar[i].n < 240 && ar[i].rid == 500 + (uint64_t)i) aborted++;
        fin_ms = (int)(sl_now_ms() - ta);
        CHECK(oks && aborted == 6, "ABORT (rid 502, then all): 6 of 6 answered with finish \"abort\" in %d ms", fin_ms);
        e = wait_corr(cb[2], bc, 20000, &br);
        CHECK(e == 0 && same_result(&ser[7], &br, 1e-5f), "another caller's request in the same batch is unaffected");
        for (int i = 0; i < 6; i++) sl_gen_result_fini(&ar[i]);
        sl_gen_result_fini(&br);
    }

    /* ---- 6. heartbeats while generating, and malformed requests */
    {
        sl_gen_call lg = long_call(base, nbase);
        uint64_t lc[16];
        for (int i = 0; i < 16; i++) {
            lg.rid = 900 + (uint64_t)i;
            lg.seed = 50 + (uint64_t)i;
            sl_gen_send(cb[3], ENG, &lg, &lc[i]);
        }
        uint64_t worst = 0;
        int pongs = 0;
        for (int i = 0; i < 20; i++) {
            sl_msg m = {0};
            uint64_t p0 = sl_now_ms();
            uint64_t seq = (uint64_t)i;
            if (sl_mailbox_request(pinger, ENG, SL_MSG_PING, &seq, 8, &m, 3000) == 0 && m.type == SL_MSG_PONG) pongs++;
            sl_msg_fini(&m);
            if (sl_now_ms() - p0 > worst) worst = sl_now_ms() - p0;
        }
        CHECK(pongs == 20, "PING answered %d/20 times while 16 long requests decode (worst %llu ms)", pongs,
              (unsigned long long)worst);
        /* a duplicate rid while 900 is in flight */
        char dup[128];
        snprintf(dup, sizeof dup, "{\"rid\":901,\"prompt\":[%d]}", base[0]);
        int okd = refused_naming(cb[3], SL_MSG_GENERATE, dup, "rid");
        CHECK(okd, "a rid already in flight for the caller is refused");
        sl_gen_abort(cb[3], ENG, 0, true);
        sl_gen_result lr[16];
        memset(lr, 0, sizeof lr);
        int got = wait_corrs(cb[3], lc, 16, 10000, lr);
        for (int i = 0; i < 16; i++) sl_gen_result_fini(&lr[i]);
        CHECK(got == 16, "all 16 answered after ABORT all");

        char longp[4096];
        int L = snprintf(longp, sizeof longp, "{\"rid\":1,\"prompt\":[");
        for (int k = 0; k < 256; k++) L += snprintf(longp + L, sizeof longp - (size_t)L, "%s5", k ? "," : "");
        snprintf(longp + L, sizeof longp - (size_t)L, "]}");
        struct {
            uint16_t type;
            const char *payload, *field;
        } bad[] = {
            {SL_MSG_GENERATE, "not json", "payload"},
            {SL_MSG_GENERATE, "[1,2]", "payload"},
            {SL_MSG_GENERATE, "{\"prompt\":[1]}", "rid"},
            {SL_MSG_GENERATE, "{\"rid\":-1,\"prompt\":[1]}", "rid"},
            {SL_MSG_GENERATE, "{\"rid\":\"7\",\"prompt\":[1]}", "rid"},
            {SL_MSG_GENERATE, "{\"rid\":1}", "prompt"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":\"12+34=\"}", "prompt"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[]}", "prompt"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1,100]}", "prompt"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[-3]}", "prompt"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1.5]}", "prompt"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1,null]}", "prompt"},
            {SL_MSG_GENERATE, longp, "prompt"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"max_tokens\":0}", "max_tokens"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"max_tokens\":100000000}", "max_tokens"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"max_tokens\":\"9\"}", "max_tokens"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"temperature\":-0.5}", "temperature"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"temperature\":true}", "temperature"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"top_p\":0}", "top_p"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"top_p\":1.5}", "top_p"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"top_k\":-5}", "top_k"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"stop\":\"x\"}", "stop"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"stop\":[3]}", "stop"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"stop\":[\"\"]}", "stop"},
            {SL_MSG_GENERATE,
             "{\"rid\":1,\"prompt\":[1],\"stop\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
             "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}",
             "stop"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"stop_token_ids\":[100]}", "stop_token_ids"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"stop_token_ids\":7}", "stop_token_ids"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"seed\":-1}", "seed"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"seed\":1.5}", "seed"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"session\":\"\"}", "session"},
            {SL_MSG_GENERATE,
             "{\"rid\":1,\"prompt\":[1],\"session\":\"0123456789012345678901234567890123456789012345678901234567890123X\"}",
             "session"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"session\":5}", "session"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"ignore_eos\":1}", "ignore_eos"},
            {SL_MSG_GENERATE, "{\"rid\":1,\"prompt\":[1],\"max_new_tokens\":5}", "max_new_tokens"},
            {SL_MSG_ABORT, "{\"rid\":-2}", "rid"},
            {SL_MSG_ABORT, "{}", "rid"},
            {SL_MSG_ABORT, "{\"all\":\"yes\"}", "all"},
            {SL_MSG_TOKENIZE, "{\"text\":5}", "text"},
            {SL_MSG_TOKENIZE, "{\"text\":\"a\",\"add_special_tokens\":\"no\"}", "add_special_tokens"},
            {SL_MSG_DETOKENIZE, "{\"ids\":[1,100]}", "ids"},
            {SL_MSG_DETOKENIZE, "{\"ids\":\"1\"}", "ids"},
            {SL_MSG_APPLY_CHAT_TEMPLATE, "{\"messages\":[]}", "messages"},
            {SL_MSG_APPLY_CHAT_TEMPLATE, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages"},
            {SL_MSG_APPLY_CHAT_TEMPLATE, "{\"messages\":[{\"role\":\"user\"}]}", "messages"},
            {SL_MSG_APPLY_CHAT_TEMPLATE, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[]}", "tools"},
        };
        int nb = (int)(sizeof bad / sizeof bad[0]), okb = 0;
        for (int i = 0; i < nb; i++) {
            int ok = refused_naming(cb[4], bad[i].type, bad[i].payload, bad[i].field);
            if (!ok) printf("     malformed #%d (%.60s) not refused naming \"%s\"\n", i, bad[i].payload, bad[i].field);
            okb += ok;
        }
        CHECK(okb == nb, "%d of %d kinds of malformed requests refused with an ERROR naming the field", okb, nb);
        sl_gen_result r = {0};
        e = sl_gen_generate(cb[4], ENG, &calls[0], 20000, &r);
        CHECK(e == 0 && same_result(&ser[0], &r, 1e-5f), "the engine still serves, with the same results");
        sl_gen_result_fini(&r);
    }

    /* ---- 7. a Python caller */
    if (argc >= 6) {
        json_t *a = json_array(), *p = json_array();
        for (int k = 0; k < ser[2].n; k++) json_array_append_new(a, json_integer(ser[2].ids[k]));
        for (int k = 0; k < calls[2].prompt_len; k++) json_array_append_new(p, json_integer(calls[2].prompt[k]));
        char *exp = json_dumps(a, JSON_COMPACT), *pr = json_dumps(p, JSON_COMPACT);
        json_decref(a);
        json_decref(p);
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "SL_RUN_DIR='%s' %s %s '%s' %llu %.9g %d '%s'", run_dir, argv[4], argv[5], pr,
                 (unsigned long long)calls[2].seed, calls[2].temperature, calls[2].max_tokens, exp);
        free(exp);
        free(pr);
        int rc = system(cmd);
        CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "a Python caller (slime_mailbox.generate) gets the same ids (rc %d)",
              WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    }

    for (int i = 0; i < NCALL; i++) {
        sl_gen_result_fini(&ser[i]);
        sl_gen_result_fini(&con[i]);
        sl_gen_result_fini(&one[i]);
    }
    sl_msg m = {0};
    sl_mailbox_request(c0, ENG, SL_MSG_STOP, NULL, 0, &m, 3000);
    sl_msg_fini(&m);
    int st = 0;
    for (int i = 0; i < 50 && waitpid(rp, &st, WNOHANG) == 0; i++) usleep(100000);
    if (waitpid(rp, &st, WNOHANG) == 0) {
        kill(rp, SIGKILL);
        waitpid(rp, &st, 0);
        CHECK(0, "the rollout stops on STOP");
    }
    sl_weights_pub_free(pub);
    for (int i = 0; i < NCALL; i++) sl_mailbox_close(cb[i]);
    sl_mailbox_close(tr);
    sl_mailbox_close(pinger);
    sl_mailbox_close(rw);
    sl_mailbox_close(bf);
    return driver_summary();
}
