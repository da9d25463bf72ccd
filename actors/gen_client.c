/*
 * gen_client.c — the C client of the generation service (gen_client.h):
 * JSON payloads of GENERATE / ABORT / TOKENIZE / DETOKENIZE /
 * APPLY_CHAT_TEMPLATE, blocking and asynchronous calls, reply parsing that
 * checks every field of what comes back.
 */
#include "gen_client.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl_msg.h"

void sl_gen_call_default(sl_gen_call *c) {
    memset(c, 0, sizeof *c);
    c->max_tokens = 256;
    c->temperature = 1.0f;
    c->top_p = 1.0f;
}

void sl_gen_result_fini(sl_gen_result *r) {
    if (!r) return;
    free(r->ids);
    free(r->logprobs);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------ helpers */

static sl_err dump(json_t *o, char **json, size_t *len) {
    *json = NULL;
    if (len) *len = 0;
    if (!o) return SL_ENOMEM;
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!t) return SL_ENOMEM;
    size_t n = strlen(t);
    if (n > SL_FRAME_MAX_PAYLOAD) {
        free(t);
        return SL_ERANGE;
    }
    *json = t;
    if (len) *len = n;
    return SL_OK;
}

static json_t *ids_array(const int32_t *ids, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(ids[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Copy an ERROR reply's code and text. Returns the code (never 0). */
static uint32_t error_of(const sl_msg *m, char *err, size_t errlen) {
    uint32_t code = SL_EPROTO;
    sl_msg_is_error(m, &code);
    if (code == 0) code = SL_EPROTO;
    if (err && errlen) {
        size_t tl = m->len > 4 ? m->len - 4 : 0;
        if (tl >= errlen) tl = errlen - 1;
        if (tl) memcpy(err, m->payload + 4, tl);
        err[tl] = 0;
    }
    return code;
}

/* A JSON array of ids -> malloc'd int32 array (ids in [0, 2^31)). */
static int parse_ids(const json_t *a, int32_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!json_is_array(a)) return SL_EPROTO;
    size_t k = json_array_size(a);
    int32_t *v = malloc((k ? k : 1) * sizeof *v);
    if (!v) return SL_ENOMEM;
    for (size_t i = 0; i < k; i++) {
        json_t *x = json_array_get(a, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > INT32_MAX) {
            free(v);
            return SL_EPROTO;
        }
        v[i] = (int32_t)json_integer_value(x);
    }
    *out = v;
    *n = k;
    return SL_OK;
}

/* Send REQ as a blocking request; on success *o is the parsed reply of type
 * WANT (caller decrefs). */
static sl_err call(sl_mailbox *mb, const char *engine, uint16_t type, json_t *req, uint16_t want,
                   int timeout_ms, json_t **o, char *err, size_t errlen) {
    *o = NULL;
    if (err && errlen) err[0] = 0;
    char *t;
    size_t n;
    sl_err e = dump(req, &t, &n);
    if (e) return e;
    sl_msg m = {0};
    e = sl_mailbox_request(mb, engine, type, t, n, &m, timeout_ms);
    free(t);
    if (e) return e;
    if (sl_msg_is_error(&m, NULL)) {
        e = (sl_err)error_of(&m, err, errlen);
        sl_msg_fini(&m);
        return e;
    }
    if (m.type != want) {
        sl_msg_fini(&m);
        return SL_EPROTO;
    }
    json_error_t je;
    *o = m.len ? json_loadb((const char *)m.payload, m.len, 0, &je) : NULL;
    sl_msg_fini(&m);
    if (!*o || !json_is_object(*o)) {
        json_decref(*o);
        *o = NULL;
        return SL_EPROTO;
    }
    return SL_OK;
}

/* ------------------------------------------------------------ generate */

sl_err sl_gen_call_json(const sl_gen_call *c, char **json, size_t *len) {
    if (!json) return SL_EINVAL;
    *json = NULL;
    if (len) *len = 0;
    if (!c || !c->prompt || c->prompt_len < 1 || c->n_stop < 0 || c->n_stop > SL_GEN_MAX_STOP ||
        (c->n_stop && !c->stop) || c->n_stop_token_ids < 0 ||
        c->n_stop_token_ids > SL_GEN_MAX_STOP || (c->n_stop_token_ids && !c->stop_token_ids) ||
        (c->session && (!*c->session || strlen(c->session) > SL_GEN_MAX_SESSION)) ||
        c->rid > (uint64_t)INT64_MAX || c->seed > (uint64_t)INT64_MAX)
        return SL_EINVAL;
    json_t *o = json_object();
    if (!o) return SL_ENOMEM;
    json_object_set_new(o, "rid", json_integer((json_int_t)c->rid));
    json_object_set_new(o, "prompt", ids_array(c->prompt, (size_t)c->prompt_len));
    json_object_set_new(o, "max_tokens", json_integer(c->max_tokens));
    if (c->temperature != 1.0f) json_object_set_new(o, "temperature", json_real(c->temperature));
    if (c->top_p != 1.0f) json_object_set_new(o, "top_p", json_real(c->top_p));
    if (c->top_k != 0) json_object_set_new(o, "top_k", json_integer(c->top_k));
    if (c->n_stop) {
        json_t *a = json_array();
        for (int i = 0; a && i < c->n_stop; i++) {
            if (!c->stop[i]) {
                json_decref(a);
                json_decref(o);
                return SL_EINVAL;
            }
            json_array_append_new(a, json_string(c->stop[i]));
        }
        json_object_set_new(o, "stop", a);
    }
    if (c->n_stop_token_ids)
        json_object_set_new(o, "stop_token_ids",
                            ids_array(c->stop_token_ids, (size_t)c->n_stop_token_ids));
    if (c->seed) json_object_set_new(o, "seed", json_integer((json_int_t)c->seed));
    if (c->session) json_object_set_new(o, "session", json_string(c->session));
    if (c->ignore_eos) json_object_set_new(o, "ignore_eos", json_true());
    return dump(o, json, len);
}

sl_err sl_gen_send(sl_mailbox *mb, const char *engine, const sl_gen_call *c, uint64_t *corr) {
    if (!mb || !engine) return SL_EINVAL;
    char *t;
    size_t n;
    sl_err e = sl_gen_call_json(c, &t, &n);
    if (e) return e;
    uint64_t id = sl_mailbox_new_corr(mb);
    e = sl_mailbox_send_ex(mb, engine, SL_MSG_GENERATE, 0, id, t, n);
    free(t);
    if (!e && corr) *corr = id;
    return e;
}

static int finish_of(const char *s, sl_finish_reason *f) {
    if (!s) return SL_EPROTO;
    if (!strcmp(s, "stop")) *f = SL_FINISH_STOP;
    else if (!strcmp(s, "length")) *f = SL_FINISH_LENGTH;
    else if (!strcmp(s, "abort")) *f = SL_FINISH_ABORT;
    else return SL_EPROTO;
    return SL_OK;
}

static int int_field(const json_t *o, const char *k, json_int_t lo, json_int_t hi, json_int_t *v) {
    json_t *x = json_object_get(o, k);
    if (!json_is_integer(x) || json_integer_value(x) < lo || json_integer_value(x) > hi)
        return SL_EPROTO;
    *v = json_integer_value(x);
    return SL_OK;
}

sl_err sl_gen_result_parse(const sl_msg *m, sl_gen_result *out) {
    if (!out) return SL_EINVAL;
    memset(out, 0, sizeof *out);
    if (!m) return SL_EINVAL;
    if (sl_msg_is_error(m, NULL)) {
        out->error_code = error_of(m, out->error, sizeof out->error);
        return (sl_err)out->error_code;
    }
    if (m->type != SL_MSG_GENERATED || !m->len) return SL_EPROTO;
    json_error_t je;
    json_t *o = json_loadb((const char *)m->payload, m->len, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return SL_EPROTO;
    }
    sl_err e = SL_EPROTO;
    json_int_t rid, wv, pt, ct;
    size_t n = 0;
    json_t *lp = json_object_get(o, "logprobs");
    json_t *fr = json_object_get(o, "finish_reason");
    if (int_field(o, "rid", 0, INT64_MAX, &rid) || int_field(o, "weight_version", 0, INT64_MAX, &wv) ||
        int_field(o, "prompt_tokens", 0, INT32_MAX, &pt) ||
        int_field(o, "cached_tokens", 0, INT32_MAX, &ct) || ct > pt || !json_is_string(fr) ||
        finish_of(json_string_value(fr), &out->finish) || !json_is_array(lp))
        goto done;
    e = parse_ids(json_object_get(o, "ids"), &out->ids, &n);
    if (e) goto done;
    e = SL_EPROTO;
    if (json_array_size(lp) != n || n > INT32_MAX) goto done;
    out->logprobs = malloc((n ? n : 1) * sizeof(float));
    if (!out->logprobs) {
        e = SL_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(lp, i);
        if (!json_is_number(x)) goto done;
        double d = json_number_value(x);
        if (isnan(d) || d > 0) goto done;
        out->logprobs[i] = (float)d;
    }
    out->n = (int)n;
    out->rid = (uint64_t)rid;
    out->weight_version = (uint64_t)wv;
    out->prompt_tokens = (int)pt;
    out->cached_tokens = (int)ct;
    e = SL_OK;
done:
    json_decref(o);
    if (e) {
        sl_gen_result_fini(out);
        snprintf(out->error, sizeof out->error, "malformed GENERATED reply");
    }
    return e;
}

sl_err sl_gen_result_json(const sl_gen_result *r, char **json, size_t *len) {
    if (!json) return SL_EINVAL;
    *json = NULL;
    if (len) *len = 0;
    if (!r || r->n < 0 || (r->n && (!r->ids || !r->logprobs))) return SL_EINVAL;
    json_t *ids = json_array(), *lps = json_array();
    for (int i = 0; ids && lps && i < r->n; i++) {
        json_array_append_new(ids, json_integer(r->ids[i]));
        float v = r->logprobs[i];
        json_array_append_new(lps, json_real(isfinite(v) ? (v > 0 ? 0 : v) : -1e30));
    }
    json_t *o = json_pack("{s:I, s:o, s:o, s:s, s:I, s:i, s:i}", "rid", (json_int_t)r->rid, "ids", ids,
                          "logprobs", lps, "finish_reason", sl_finish_reason_name(r->finish),
                          "weight_version", (json_int_t)r->weight_version, "prompt_tokens",
                          r->prompt_tokens, "cached_tokens", r->cached_tokens);
    return dump(o, json, len);
}

sl_err sl_gen_generate(sl_mailbox *mb, const char *engine, const sl_gen_call *c, int timeout_ms,
                       sl_gen_result *out) {
    if (!out) return SL_EINVAL;
    memset(out, 0, sizeof *out);
    if (!mb || !engine) return SL_EINVAL;
    char *t;
    size_t n;
    sl_err e = sl_gen_call_json(c, &t, &n);
    if (e) return e;
    sl_msg m = {0};
    e = sl_mailbox_request(mb, engine, SL_MSG_GENERATE, t, n, &m, timeout_ms);
    free(t);
    if (e) return e;
    e = sl_gen_result_parse(&m, out);
    sl_msg_fini(&m);
    if (!e && out->rid != c->rid) {
        sl_gen_result_fini(out);
        snprintf(out->error, sizeof out->error, "reply for rid %llu, not %llu",
                 (unsigned long long)out->rid, (unsigned long long)c->rid);
        return SL_EPROTO;
    }
    return e;
}

sl_err sl_gen_abort(sl_mailbox *mb, const char *engine, uint64_t rid, bool all) {
    if (!mb || !engine || rid > (uint64_t)INT64_MAX) return SL_EINVAL;
    json_t *o = all ? json_pack("{s:b}", "all", 1) : json_pack("{s:I}", "rid", (json_int_t)rid);
    char *t;
    size_t n;
    sl_err e = dump(o, &t, &n);
    if (e) return e;
    e = sl_mailbox_send(mb, engine, SL_MSG_ABORT, t, n);
    free(t);
    return e;
}

/* ------------------------------------------------------------ tokenizer */

sl_err sl_gen_tokenize(sl_mailbox *mb, const char *engine, const char *text,
                       bool add_special_tokens, int timeout_ms, int32_t **ids, size_t *n,
                       char *err, size_t errlen) {
    if (!ids || !n) return SL_EINVAL;
    *ids = NULL;
    *n = 0;
    if (!mb || !engine || !text) return SL_EINVAL;
    json_t *r, *q = json_pack("{s:s, s:b}", "text", text, "add_special_tokens", add_special_tokens);
    if (!q) return SL_EINVAL; /* not UTF-8 */
    sl_err e = call(mb, engine, SL_MSG_TOKENIZE, q, SL_MSG_TOKENIZED, timeout_ms, &r, err, errlen);
    if (e) return e;
    e = parse_ids(json_object_get(r, "ids"), ids, n);
    json_decref(r);
    return e;
}

sl_err sl_gen_detokenize(sl_mailbox *mb, const char *engine, const int32_t *ids, size_t n,
                         bool skip_special_tokens, int timeout_ms, char **text, char *err,
                         size_t errlen) {
    if (!text) return SL_EINVAL;
    *text = NULL;
    if (!mb || !engine || (n && !ids)) return SL_EINVAL;
    json_t *r, *q = json_pack("{s:o, s:b}", "ids", ids_array(ids, n), "skip_special_tokens",
                              skip_special_tokens);
    if (!q) return SL_ENOMEM;
    sl_err e = call(mb, engine, SL_MSG_DETOKENIZE, q, SL_MSG_DETOKENIZED, timeout_ms, &r, err, errlen);
    if (e) return e;
    json_t *s = json_object_get(r, "text");
    if (!json_is_string(s)) e = SL_EPROTO;
    else if (!(*text = strdup(json_string_value(s)))) e = SL_ENOMEM;
    json_decref(r);
    return e;
}

sl_err sl_gen_apply_chat_template(sl_mailbox *mb, const char *engine, const sl_gen_chat_msg *msgs,
                                  size_t n_msgs, bool add_generation_prompt, int timeout_ms,
                                  char **text, int32_t **ids, size_t *n, char *err,
                                  size_t errlen) {
    if (text) *text = NULL;
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!mb || !engine || (n_msgs && !msgs) || (!ids) != (!n)) return SL_EINVAL;
    json_t *a = json_array();
    for (size_t i = 0; a && i < n_msgs; i++) {
        json_t *m = msgs[i].role && msgs[i].content
                        ? json_pack("{s:s, s:s}", "role", msgs[i].role, "content", msgs[i].content)
                        : NULL;
        if (!m) {
            json_decref(a);
            return SL_EINVAL;
        }
        json_array_append_new(a, m);
    }
    json_t *r, *q = json_pack("{s:o, s:b}", "messages", a, "add_generation_prompt",
                              add_generation_prompt);
    if (!q) return SL_ENOMEM;
    sl_err e = call(mb, engine, SL_MSG_APPLY_CHAT_TEMPLATE, q, SL_MSG_CHAT_TEMPLATED, timeout_ms,
                    &r, err, errlen);
    if (e) return e;
    json_t *s = json_object_get(r, "text");
    if (!json_is_string(s)) e = SL_EPROTO;
    if (!e && ids) e = parse_ids(json_object_get(r, "ids"), ids, n);
    if (!e && text && !(*text = strdup(json_string_value(s)))) e = SL_ENOMEM;
    if (e && ids) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    json_decref(r);
    return e;
}
