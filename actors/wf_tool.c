/*
 * wf_tool.c — the example multi-turn tool workflow and its calculator
 * (wf_tool.h).
 */
#include "wf_tool.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_client.h"
#include "rl_common.h"
#include "rl_msg.h"
#include "tokenizer.h"
#include "workflow.h"

/* ============================================================ calculator */

typedef struct calc {
    const char *s;
    size_t n, i;
    int depth;
    char *err;
    size_t errlen;
    int bad;
} calc;

static void cfail(calc *c, const char *why) {
    if (!c->bad && c->err && c->errlen) snprintf(c->err, c->errlen, "%s at %zu", why, c->i);
    c->bad = 1;
}

static void skip_ws(calc *c) {
    while (c->i < c->n && c->s[c->i] == ' ') c->i++;
}

static int64_t bounded(calc *c, __int128 v) {
    if (v > SL_CALC_MAX_ABS || v < -SL_CALC_MAX_ABS) {
        cfail(c, "value out of range");
        return 0;
    }
    return (int64_t)v;
}

static int64_t expr(calc *c);

static int64_t factor(calc *c) {
    skip_ws(c);
    if (c->bad) return 0;
    if (c->i < c->n && c->s[c->i] == '-') {
        c->i++;
        return bounded(c, -(__int128)factor(c));
    }
    if (c->i < c->n && c->s[c->i] == '(') {
        if (++c->depth > SL_CALC_MAX_DEPTH) {
            cfail(c, "too deeply nested");
            return 0;
        }
        c->i++;
        int64_t v = expr(c);
        skip_ws(c);
        if (c->i >= c->n || c->s[c->i] != ')') {
            cfail(c, "missing )");
            return 0;
        }
        c->i++;
        c->depth--;
        return v;
    }
    if (c->i >= c->n || !isdigit((unsigned char)c->s[c->i])) {
        cfail(c, "number expected");
        return 0;
    }
    __int128 v = 0;
    while (c->i < c->n && isdigit((unsigned char)c->s[c->i])) {
        v = v * 10 + (c->s[c->i++] - '0');
        if (v > SL_CALC_MAX_ABS) {
            cfail(c, "value out of range");
            return 0;
        }
    }
    return (int64_t)v;
}

static int64_t term(calc *c) {
    int64_t v = factor(c);
    for (;;) {
        skip_ws(c);
        if (c->bad || c->i >= c->n || (c->s[c->i] != '*' && c->s[c->i] != '/')) return v;
        char op = c->s[c->i++];
        int64_t r = factor(c);
        if (c->bad) return 0;
        if (op == '*') {
            v = bounded(c, (__int128)v * r);
        } else {
            if (r == 0) {
                cfail(c, "division by zero");
                return 0;
            }
            v = v / r;
        }
    }
}

static int64_t expr(calc *c) {
    int64_t v = term(c);
    for (;;) {
        skip_ws(c);
        if (c->bad || c->i >= c->n || (c->s[c->i] != '+' && c->s[c->i] != '-')) return v;
        char op = c->s[c->i++];
        int64_t r = term(c);
        if (c->bad) return 0;
        v = bounded(c, op == '+' ? (__int128)v + r : (__int128)v - r);
    }
}

int sl_calc_eval(const char *s, size_t n, int64_t *out, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!s || !out) return SL_EINVAL;
    calc c = {s, n, 0, 0, err, errlen, 0};
    if (n == 0 || n > SL_CALC_MAX_LEN) {
        if (err && errlen) snprintf(err, errlen, "%s", n ? "expression too long" : "empty expression");
        return SL_EINVAL;
    }
    int64_t v = expr(&c);
    skip_ws(&c);
    if (!c.bad && c.i != n) cfail(&c, "unexpected character");
    if (c.bad) return SL_EINVAL;
    *out = v;
    return SL_OK;
}

int sl_calc_find_call(const char *text, size_t n, const char **ex, size_t *len) {
    static const char open[] = "<calc>", close[] = "</calc>";
    size_t cl = sizeof close - 1, ol = sizeof open - 1;
    if (!text || n < cl + ol || memcmp(text + n - cl, close, cl) != 0) return 0;
    size_t end = n - cl;
    for (size_t i = end - ol + 1; i-- > 0;)
        if (memcmp(text + i, open, ol) == 0) {
            *ex = text + i + ol;
            *len = end - (i + ol);
            return 1;
        }
    return 0;
}

/* ============================================================ the actor */

#define GEN_RESEND_MS 60000 /* no GENERATED this long: the engine is gone, ask again */
#define MAX_GEN_ERRORS 3

struct wgroup;

typedef struct wsample {
    struct wgroup *g;
    uint32_t index;
    int32_t *seq;      /* prompt + response */
    uint8_t *mask;     /* (response) */
    float *lp;         /* (response) */
    uint32_t n_seq, cap;
    int turn, calls, errors, gen_errors;
    uint64_t corr;     /* GENERATE in flight (0: none) */
    int64_t sent_ms;
    uint64_t wv;
    int have_wv, done;
} wsample;

typedef struct wgroup {
    struct wgroup *next;
    sl_wf_prompts p;
    uint32_t n_done;
    wsample *s; /* (p.n) */
} wgroup;

typedef struct wf_tool {
    sl_actor_ctx *ctx;
    sl_tokenizer *tok;
    sl_wf_engines eng;
    wgroup *groups;
    uint64_t next_rid;
    uint64_t n_groups, n_samples, n_calls, n_call_errors, n_refused, n_gen_errors, n_resent;
} wf_tool;

static void group_free(wgroup *g) {
    if (!g) return;
    for (uint32_t i = 0; g->s && i < g->p.n; i++) free(g->s[i].seq), free(g->s[i].mask), free(g->s[i].lp);
    free(g->s);
    sl_wf_prompts_fini(&g->p);
    free(g);
}

static int grow(wsample *s, uint32_t need) {
    if (need <= s->cap) return SL_OK;
    uint32_t cap = need + 64;
    int32_t *q = realloc(s->seq, cap * sizeof *q);
    if (!q) return SL_ENOMEM;
    s->seq = q;
    uint8_t *m = realloc(s->mask, cap);
    if (!m) return SL_ENOMEM;
    s->mask = m;
    float *l = realloc(s->lp, cap * sizeof *l);
    if (!l) return SL_ENOMEM;
    s->lp = l;
    s->cap = cap;
    return SL_OK;
}

static uint32_t resp_len(const wsample *s) { return s->n_seq - s->g->p.prompt_len; }

/* The sample is finished: WF_SAMPLE to the buffer. */
static void finish_sample(wf_tool *w, wsample *s) {
    wgroup *g = s->g;
    s->done = 1;
    g->n_done++;
    w->n_samples++;
    uint32_t rl = resp_len(s);
    json_t *tok = json_array(), *mask = json_array(), *lp = json_array();
    for (uint32_t i = 0; i < s->n_seq; i++) json_array_append_new(tok, json_integer(s->seq[i]));
    for (uint32_t i = 0; i < rl; i++) {
        json_array_append_new(mask, json_integer(s->mask[i]));
        json_array_append_new(lp, json_real(s->mask[i] ? s->lp[i] : 0.0));
    }
    json_t *o = json_pack("{s:I,s:s,s:I,s:i,s:I,s:o,s:i,s:o,s:o,s:I,s:{s:f,s:i,s:i}}", "step", (json_int_t)g->p.step,
                          "phase", g->p.eval ? "eval" : "rl", "group", (json_int_t)g->p.group, "index", (int)s->index,
                          "sample_id", (json_int_t)g->p.sample_ids[s->index], "tokens", tok, "prompt_len",
                          (int)g->p.prompt_len, "loss_mask", mask, "logprobs", lp, "weight_version", (json_int_t)s->wv,
                          "metrics", "tool_call_rate", s->calls > 0 ? 1.0 : 0.0, "tool_calls", s->calls,
                          "tool_errors", s->errors);
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    uint64_t corr = 0;
    int rc = t ? sl_actor_send_corr(w->ctx, g->p.buffer, SL_MSG_WF_SAMPLE, t, strlen(t), &corr) : SL_ENOMEM;
    free(t);
    if (rc) sl_actor_log(w->ctx, SL_LOG_WARN, "WF_SAMPLE to %s: %s", g->p.buffer, sl_strerror(rc));
    free(s->seq), free(s->mask), free(s->lp);
    s->seq = NULL, s->mask = NULL, s->lp = NULL;
}

static void drop_finished_groups(wf_tool *w) {
    for (wgroup **p = &w->groups; *p;) {
        if ((*p)->n_done == (*p)->p.n) {
            wgroup *g = *p;
            *p = g->next;
            group_free(g);
            w->n_groups++;
        } else {
            p = &(*p)->next;
        }
    }
}

/* Ask the engine for the next turn of sample S. */
static void send_turn(wf_tool *w, wsample *s) {
    wgroup *g = s->g;
    int budget = (int)g->p.max_new_tokens - (int)resp_len(s);
    if (budget < 1 || s->calls >= SL_WF_TOOL_MAX_CALLS + 1) {
        finish_sample(w, s);
        return;
    }
    static const char *const stop[] = {"</calc>"};
    char session[SL_GEN_MAX_SESSION];
    snprintf(session, sizeof session, "wf-%c%lld-%llx-%u", g->p.eval ? 'e' : 'r', (long long)g->p.step,
             (unsigned long long)g->p.group, s->index);
    sl_gen_call c;
    sl_gen_call_default(&c);
    c.rid = ++w->next_rid; /* unique among this caller's requests (eval and RL groups may share ids) */
    c.prompt = s->seq;
    c.prompt_len = (int)s->n_seq;
    c.max_tokens = budget;
    c.temperature = (float)g->p.temperature;
    c.top_p = (float)g->p.top_p;
    c.top_k = g->p.top_k;
    c.stop = stop;
    c.n_stop = 1;
    c.seed = g->p.seed + (uint64_t)s->index * 7919u + (uint64_t)s->turn * 104729u;
    c.session = session;
    const char *engine = sl_wf_engine_for(&w->eng, g->p.group, s->index);
    int rc = sl_gen_send(sl_actor_mailbox(w->ctx), engine, &c, &s->corr);
    s->sent_ms = (int64_t)sl_now_ms();
    if (rc) {
        s->corr = 0;
        sl_actor_log(w->ctx, SL_LOG_WARN, "GENERATE to %s: %s (asked again later)", engine, sl_strerror(rc));
    }
}

/* The engine's answer for sample S. */
static void on_generated(wf_tool *w, wsample *s, const sl_msg *m) {
    sl_gen_result r;
    int rc = sl_gen_result_parse(m, &r);
    s->corr = 0;
    if (rc != SL_OK) {
        w->n_gen_errors++;
        sl_actor_log(w->ctx, SL_LOG_WARN, "GENERATE for group %llu sample %u failed: %s (%s)",
                     (unsigned long long)s->g->p.group, s->index, sl_strerror(rc), r.error);
        sl_gen_result_fini(&r);
        if (++s->gen_errors > MAX_GEN_ERRORS) {
            /* give the sample up as far as it went (at least one model token) or drop the group */
            if (resp_len(s) > 0) finish_sample(w, s);
            else s->done = 1, s->g->n_done++;
        } else {
            send_turn(w, s);
        }
        return;
    }
    if (!s->have_wv) s->wv = r.weight_version, s->have_wv = 1;
    s->turn++;
    if (grow(s, s->n_seq + (uint32_t)r.n + 32) != SL_OK) {
        sl_gen_result_fini(&r);
        return;
    }
    for (int i = 0; i < r.n; i++) {
        uint32_t k = resp_len(s);
        s->seq[s->n_seq++] = r.ids[i];
        s->mask[k] = 1;
        s->lp[k] = r.logprobs[i] > 0 ? 0.f : r.logprobs[i];
    }
    sl_finish_reason fin = r.finish;
    sl_gen_result_fini(&r);
    if (fin != SL_FINISH_STOP || resp_len(s) == 0) {
        finish_sample(w, s);
        return;
    }
    /* a closed <calc>...</calc>: evaluate, insert the result (mask 0), go on */
    char *text = NULL;
    size_t tl = 0;
    const char *ex;
    size_t el;
    uint32_t pl = s->g->p.prompt_len;
    if (sl_tokenizer_decode(w->tok, s->seq + pl, resp_len(s), 1, &text, &tl) != 0 ||
        !sl_calc_find_call(text, tl, &ex, &el)) {
        free(text);
        finish_sample(w, s); /* stopped at EOS */
        return;
    }
    int64_t v = 0;
    char err[96], res[64];
    s->calls++;
    w->n_calls++;
    if (sl_calc_eval(ex, el, &v, err, sizeof err) == SL_OK) {
        snprintf(res, sizeof res, "<result>%lld</result>", (long long)v);
    } else {
        s->errors++;
        w->n_call_errors++;
        snprintf(res, sizeof res, "<result>error</result>");
    }
    free(text);
    int32_t *ids = NULL;
    size_t n = 0;
    if (sl_tokenizer_encode(w->tok, res, strlen(res), &ids, &n) != 0 ||
        resp_len(s) + (uint32_t)n >= s->g->p.max_new_tokens || grow(s, s->n_seq + (uint32_t)n) != SL_OK ||
        s->calls > SL_WF_TOOL_MAX_CALLS) {
        free(ids);
        finish_sample(w, s); /* no room for the result and an answer */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t k = resp_len(s);
        s->seq[s->n_seq++] = ids[i];
        s->mask[k] = 0;
        s->lp[k] = 0.f;
    }
    free(ids);
    send_turn(w, s);
}

static void on_prompts(wf_tool *w, const sl_msg *m) {
    char why[160];
    wgroup *g = calloc(1, sizeof *g);
    if (!g) return;
    if (sl_wf_prompts_parse(m, &g->p, why, sizeof why) != SL_OK) {
        sl_actor_log(w->ctx, SL_LOG_WARN, "PROMPTS from %s: %s", m->sender, why);
        group_free(g);
        return;
    }
    for (wgroup *x = w->groups; x; x = x->next)
        if (sl_wf_prompts_same_group(&x->p, &g->p)) {
            /* dispatched again (we were slow): the first copy is still running */
            group_free(g);
            return;
        }
    if (!(g->s = calloc(g->p.n, sizeof *g->s))) {
        group_free(g);
        return;
    }
    g->next = w->groups;
    w->groups = g;
    uint32_t pl = g->p.prompt_len;
    for (uint32_t i = 0; i < g->p.n; i++) {
        wsample *s = &g->s[i];
        s->g = g, s->index = i;
        if (grow(s, pl + 64) != SL_OK) continue;
        memcpy(s->seq, g->p.prompt, pl * sizeof *s->seq);
        s->n_seq = pl;
    }
    for (uint32_t i = 0; i < g->p.n; i++) send_turn(w, &g->s[i]);
    drop_finished_groups(w);
}

static void on_ack(wf_tool *w, const sl_msg *m) {
    json_t *o = NULL;
    if (sl_rl_json_parse(m->payload, m->len, &o, NULL, 0) != 0) return;
    if (!json_is_true(json_object_get(o, "ok"))) {
        const char *r = "";
        sl_rl_json_str_opt(o, "reason", "", &r);
        w->n_refused++;
        sl_actor_log(w->ctx, SL_LOG_WARN, "the buffer refused a sample (group %lld index %lld): %s",
                     (long long)json_integer_value(json_object_get(o, "group")),
                     (long long)json_integer_value(json_object_get(o, "index")), r);
    }
    json_decref(o);
}

static sl_err wf_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    wf_tool *w = state;
    (void)ctx;
    if (m->type == SL_MSG_PROMPTS) {
        on_prompts(w, m);
        return SL_OK;
    }
    if (m->type == SL_MSG_WF_ACK) {
        on_ack(w, m);
        return SL_OK;
    }
    if ((m->flags & SL_FLAG_REPLY) && m->corr) {
        for (wgroup *g = w->groups; g; g = g->next)
            for (uint32_t i = 0; i < g->p.n; i++)
                if (!g->s[i].done && g->s[i].corr == m->corr) {
                    on_generated(w, &g->s[i], m);
                    drop_finished_groups(w);
                    return SL_OK;
                }
    }
    return SL_OK; /* a late answer (aborted or resent request): dropped */
}

static sl_err wf_tick(void *state, sl_actor_ctx *ctx) {
    wf_tool *w = state;
    (void)ctx;
    int64_t now = (int64_t)sl_now_ms();
    for (wgroup *g = w->groups; g; g = g->next)
        for (uint32_t i = 0; i < g->p.n; i++) {
            wsample *s = &g->s[i];
            if (s->done || (s->corr && now - s->sent_ms < GEN_RESEND_MS)) continue;
            if (!s->corr && now - s->sent_ms < 1000) continue;
            w->n_resent++;
            send_turn(w, s); /* lost or never sent: ask again (same seed) */
        }
    drop_finished_groups(w);
    return SL_OK;
}

static sl_err wf_init(sl_actor_ctx *ctx, void **state) {
    wf_tool *w = calloc(1, sizeof *w);
    if (!w) return SL_ENOMEM;
    *state = w;
    w->ctx = ctx;
    int rc = sl_wf_actor_setup(ctx, "the tool workflow", &w->eng, &w->tok);
    if (rc != SL_OK) return rc;
    sl_actor_set_tick(ctx, 500);
    sl_actor_log(ctx, SL_LOG_INFO, "tool workflow: %d engine(s), calculator <calc>EXPR</calc> -> <result>V</result>",
                 w->eng.n);
    return SL_OK;
}

static void wf_fini(void *state, sl_actor_ctx *ctx) {
    wf_tool *w = state;
    if (!w) return;
    sl_actor_log(ctx, SL_LOG_INFO,
                 "stopping: %llu groups, %llu samples, %llu tool calls (%llu errors), %llu refused, %llu engine "
                 "errors, %llu re-sent",
                 (unsigned long long)w->n_groups, (unsigned long long)w->n_samples, (unsigned long long)w->n_calls,
                 (unsigned long long)w->n_call_errors, (unsigned long long)w->n_refused,
                 (unsigned long long)w->n_gen_errors, (unsigned long long)w->n_resent);
    while (w->groups) {
        wgroup *g = w->groups;
        w->groups = g->next;
        group_free(g);
    }
    sl_tokenizer_free(w->tok);
    free(w);
}

const sl_actor_ops sl_wf_tool_ops = {
    .name = "wf_tool",
    .init = wf_init,
    .handle = wf_handle,
    .tick = wf_tick,
    .tick_ms = 500,
    .fini = wf_fini,
};
