/*
 * dataset.c — JSON-lines prompt datasets (see dataset.h): line checking,
 * chat-template rendering, tokenizing, the seeded per-epoch order, the
 * data cursor and the packed sample ids.
 */
#include "dataset.h"

#include "topology.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ------------------------------------------------------------ sample ids */

int sl_sample_id_pack(uint32_t epoch, uint64_t index, uint32_t sample, uint64_t *id) {
    if (!id || epoch >= SL_SAMPLE_MAX_EPOCHS || index >= SL_SAMPLE_MAX_INDEX || sample >= SL_SAMPLE_MAX_GROUP)
        return SL_ERANGE;
    *id = ((uint64_t)epoch << 44) | (index << 12) | sample;
    return 0;
}

size_t sl_sample_id_format(uint64_t id, char *buf, size_t cap) {
    if (!buf || !cap) return 0;
    int n = snprintf(buf, cap, "e%" PRIu32 ":i%" PRIu64 ":s%" PRIu32, sl_sample_epoch(id), sl_sample_index(id),
                     sl_sample_sub(id));
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = 0;
        return 0;
    }
    return (size_t)n;
}

size_t sl_prompt_id_format(uint64_t id, char *buf, size_t cap) {
    if (!buf || !cap) return 0;
    int n = snprintf(buf, cap, "e%" PRIu32 ":i%" PRIu64, sl_sample_epoch(id), sl_sample_index(id));
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = 0;
        return 0;
    }
    return (size_t)n;
}

/* One decimal field: at least one digit, at most 20, value <= max. */
static int parse_field(const char *s, size_t len, size_t *pos, char tag, uint64_t max, uint64_t *out) {
    if (*pos >= len || s[*pos] != tag) return SL_EINVAL;
    size_t p = *pos + 1, start = p;
    uint64_t v = 0;
    while (p < len && s[p] >= '0' && s[p] <= '9') {
        if (p - start >= 19) return SL_EINVAL; /* > 19 digits cannot be <= max here */
        v = v * 10 + (uint64_t)(s[p] - '0');
        p++;
    }
    if (p == start || v > max) return SL_EINVAL;
    *out = v;
    *pos = p;
    return 0;
}

int sl_sample_id_parse(const char *text, size_t len, uint64_t *id) {
    if (!text || !id) return SL_EINVAL;
    size_t p = 0;
    uint64_t e, i, s;
    if (parse_field(text, len, &p, 'e', SL_SAMPLE_MAX_EPOCHS - 1, &e)) return SL_EINVAL;
    if (p >= len || text[p++] != ':') return SL_EINVAL;
    if (parse_field(text, len, &p, 'i', SL_SAMPLE_MAX_INDEX - 1, &i)) return SL_EINVAL;
    if (p >= len || text[p++] != ':') return SL_EINVAL;
    if (parse_field(text, len, &p, 's', SL_SAMPLE_MAX_GROUP - 1, &s)) return SL_EINVAL;
    if (p != len) return SL_EINVAL;
    return sl_sample_id_pack((uint32_t)e, i, (uint32_t)s, id);
}

/* ---------------------------------------------------------------- options */

void sl_dataset_opts_init(sl_dataset_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->input_key = "input";
    o->label_key = "label";
    o->metadata_key = "metadata";
    o->label_required = 1;
    o->chat_format = SL_CHAT_CHATML;
    sl_chat_opts_init(&o->chat);
    o->max_line_bytes = 16u << 20;
    o->num_epoch = 1;
}

void sl_dataset_opts_gsm8k(sl_dataset_opts *o) {
    sl_dataset_opts_init(o);
    o->input_key = "question";
    o->label_key = "answer";
    o->label_gsm8k = 1;
}

void sl_dataset_opts_from_topology(sl_dataset_opts *o, const sl_topology *topo) {
    sl_dataset_opts_init(o);
    if (!o || !topo) return;
    o->input_key = sl_topology_get_str(topo, "data", "input_key");
    o->label_key = sl_topology_get_str(topo, "data", "label_key");
    o->metadata_key = sl_topology_get_str(topo, "data", "metadata_key");
    o->apply_chat_template = sl_topology_get_bool(topo, "data", "apply_chat_template");
    o->shuffle = sl_topology_get_bool(topo, "data", "rollout_shuffle");
    o->num_epoch = (uint32_t)sl_topology_get_int(topo, "data", "num_epoch");
    o->seed = (uint64_t)sl_topology_get_int(topo, "run", "seed");
}

/* ---------------------------------------------------------------- dataset */

struct sl_dataset {
    sl_prompt *rec;
    size_t n, cap;
    sl_dataset_stats stats;
    uint64_t seed;
    int shuffle;
    uint32_t num_epoch;
    uint32_t *perm;       /* cached order of perm_epoch (shuffle only) */
    uint32_t perm_epoch;
    int perm_valid;
};

static void rec_fini(sl_prompt *r) {
    free((void *)r->text);
    free((void *)r->ids);
    free((void *)r->label);
    free((void *)r->metadata);
    free((void *)r->response);
    free((void *)r->response_ids);
    memset(r, 0, sizeof *r);
}

void sl_dataset_free(sl_dataset *ds) {
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) rec_fini(&ds->rec[i]);
    free(ds->rec);
    free(ds->perm);
    free(ds);
}

size_t sl_dataset_size(const sl_dataset *ds) { return ds ? ds->n : 0; }
uint32_t sl_dataset_num_epoch(const sl_dataset *ds) { return ds ? ds->num_epoch : 0; }
const sl_dataset_stats *sl_dataset_stats_get(const sl_dataset *ds) { return ds ? &ds->stats : NULL; }

const sl_prompt *sl_dataset_get(const sl_dataset *ds, size_t i) {
    return ds && i < ds->n ? &ds->rec[i] : NULL;
}

const sl_prompt *sl_dataset_get_id(const sl_dataset *ds, uint64_t prompt_id) {
    return sl_dataset_get(ds, (size_t)sl_sample_index(prompt_id));
}

/* ---------------------------------------------------------------- loading */

typedef struct lctx {
    const char *name;
    const sl_dataset_opts *o;
    char *err;
    size_t errlen;
    uint64_t line;
    char msg[512]; /* the current bad line's message */
} lctx;

__attribute__((format(printf, 3, 4))) static int line_bad(lctx *c, sl_dataset_bad kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    return -(int)kind - 1; /* < 0: a bad line of this kind */
}

__attribute__((format(printf, 3, 4))) static int file_err(lctx *c, int code, const char *fmt, ...) {
    if (c->err && c->errlen) {
        int k = snprintf(c->err, c->errlen, "%s: ", c->name);
        if (k >= 0 && (size_t)k < c->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

/* "NAME:LINE: message" for the current line. */
static int at_line(lctx *c, int code, const char *msg) {
    if (c->err && c->errlen) snprintf(c->err, c->errlen, "%s:%" PRIu64 ": %s", c->name, c->line, msg);
    return code;
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static int has_key(const char *k) { return k && k[0]; }

/* The text after the last "####", trimmed; NULL when there is none. */
static char *gsm8k_answer(const char *s) {
    const char *last = NULL;
    for (const char *p = strstr(s, "####"); p; p = strstr(p + 1, "####")) last = p;
    if (!last) return NULL;
    const char *a = last + 4, *e = s + strlen(s);
    while (a < e && isspace((unsigned char)*a)) a++;
    while (e > a && isspace((unsigned char)e[-1])) e--;
    if (e == a) return NULL;
    return dupn(a, (size_t)(e - a));
}

/* Render (or copy) the prompt of `in` into r->text. */
static int make_text(lctx *c, json_t *in, sl_prompt *r) {
    const sl_dataset_opts *o = c->o;
    if (json_is_string(in)) {
        const char *s = json_string_value(in);
        size_t n = json_string_length(in);
        if (!o->apply_chat_template) {
            if (!(r->text = dupn(s, n))) return SL_ENOMEM;
            r->text_len = n;
            return 0;
        }
        sl_chat_msg m = {.role = "user", .content = s};
        char *out = NULL;
        size_t len = 0;
        int rc = sl_chat_render(o->chat_format, &m, 1, &o->chat, &out, &len);
        if (rc == SL_ENOMEM) return rc;
        if (rc) return line_bad(c, SL_DATASET_BAD_TYPE, "chat template failed: %s", sl_strerror(rc));
        r->text = out;
        r->text_len = len;
        return 0;
    }
    if (json_is_array(in) || json_is_object(in)) {
        if (!o->apply_chat_template)
            return line_bad(c, SL_DATASET_BAD_TYPE, "\"%s\" is a message list but apply_chat_template is off",
                            o->input_key);
        char *js = json_dumps(in, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!js) return SL_ENOMEM;
        sl_chat_msgs msgs = {0};
        char perr[200];
        int rc = sl_chat_parse_json(js, strlen(js), &msgs, perr, sizeof perr);
        free(js);
        if (rc == SL_ENOMEM) return rc;
        if (rc) return line_bad(c, SL_DATASET_BAD_TYPE, "\"%s\": %s", o->input_key, perr);
        if (msgs.n == 0) {
            sl_chat_msgs_fini(&msgs);
            return line_bad(c, SL_DATASET_BAD_TYPE, "\"%s\" is an empty message list", o->input_key);
        }
        char *out = NULL;
        size_t len = 0;
        rc = sl_chat_render(o->chat_format, msgs.msgs, msgs.n, &o->chat, &out, &len);
        sl_chat_msgs_fini(&msgs);
        if (rc == SL_ENOMEM) return rc;
        if (rc) return line_bad(c, SL_DATASET_BAD_TYPE, "\"%s\": chat template refused the messages (%s)",
                                o->input_key, sl_strerror(rc));
        r->text = out;
        r->text_len = len;
        return 0;
    }
    return line_bad(c, SL_DATASET_BAD_TYPE, "\"%s\" must be a string or a list of messages", o->input_key);
}

/* Parse one non-blank line into *r. Returns 0, a negative bad-line kind
 * (message in c->msg) or a positive sl_err for system failures. */
static int parse_line(lctx *c, const char *line, size_t len, sl_prompt *r) {
    const sl_dataset_opts *o = c->o;
    memset(r, 0, sizeof *r);
    r->line = (uint32_t)(c->line > UINT32_MAX ? UINT32_MAX : c->line);
    if (len > o->max_line_bytes)
        return line_bad(c, SL_DATASET_BAD_LONG, "line of %zu bytes, over max_line_bytes %zu", len, o->max_line_bytes);
    json_error_t je;
    json_t *root = json_loadb(line, len, 0, &je);
    if (!root) return line_bad(c, SL_DATASET_BAD_JSON, "bad JSON at column %d: %s", je.column, je.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = line_bad(c, SL_DATASET_BAD_JSON, "not a JSON object");
        goto out;
    }
    json_t *in = json_object_get(root, o->input_key);
    if (!in) {
        rc = line_bad(c, SL_DATASET_BAD_MISSING, "no key \"%s\" (input_key)", o->input_key);
        goto out;
    }
    if ((rc = make_text(c, in, r))) goto out;

    if (has_key(o->label_key)) {
        json_t *lb = json_object_get(root, o->label_key);
        if (!lb || json_is_null(lb)) {
            if (o->label_required) {
                rc = line_bad(c, SL_DATASET_BAD_MISSING, "no key \"%s\" (label_key)", o->label_key);
                goto out;
            }
        } else if (json_is_string(lb)) {
            if (!(r->label = dupn(json_string_value(lb), json_string_length(lb)))) { rc = SL_ENOMEM; goto out; }
        } else if (json_is_number(lb)) {
            if (!(r->label = json_dumps(lb, JSON_ENCODE_ANY))) { rc = SL_ENOMEM; goto out; }
        } else {
            rc = line_bad(c, SL_DATASET_BAD_TYPE, "\"%s\" must be a string or a number", o->label_key);
            goto out;
        }
        if (r->label && o->label_gsm8k) {
            char *a = gsm8k_answer(r->label);
            if (!a) {
                rc = line_bad(c, SL_DATASET_BAD_LABEL, "\"%s\" has no \"#### N\" answer", o->label_key);
                goto out;
            }
            free((void *)r->label);
            r->label = a;
        }
    }
    if (has_key(o->metadata_key)) {
        json_t *md = json_object_get(root, o->metadata_key);
        if (md && !json_is_null(md) && !(r->metadata = json_dumps(md, JSON_COMPACT | JSON_ENCODE_ANY))) {
            rc = SL_ENOMEM;
            goto out;
        }
    }
    if (has_key(o->response_key)) {
        json_t *rs = json_object_get(root, o->response_key);
        if (!rs) {
            rc = line_bad(c, SL_DATASET_BAD_MISSING, "no key \"%s\" (response_key)", o->response_key);
            goto out;
        }
        if (!json_is_string(rs)) {
            rc = line_bad(c, SL_DATASET_BAD_TYPE, "\"%s\" must be a string", o->response_key);
            goto out;
        }
        if (!(r->response = dupn(json_string_value(rs), json_string_length(rs)))) { rc = SL_ENOMEM; goto out; }
    }
    if (o->tok) {
        int32_t *ids = NULL;
        size_t n = 0;
        if ((rc = sl_tokenizer_encode(o->tok, r->text, r->text_len, &ids, &n))) goto out;
        r->ids = ids;
        r->n_ids = n;
        if (o->max_prompt_tokens && n > o->max_prompt_tokens) {
            rc = line_bad(c, SL_DATASET_BAD_LONG, "prompt of %zu tokens, over the limit of %zu", n,
                          o->max_prompt_tokens);
            goto out;
        }
        if (r->response) {
            if ((rc = sl_tokenizer_encode(o->tok, r->response, strlen(r->response), &ids, &n))) goto out;
            r->response_ids = ids;
            r->n_response_ids = n;
        }
    }
out:
    json_decref(root);
    if (rc) rec_fini(r);
    return rc;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i])) return 0;
    return 1;
}

static int load_stream(FILE *f, lctx *c, sl_dataset *ds) {
    const sl_dataset_opts *o = c->o;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    unsigned warned = 0;
    errno = 0;
    while ((got = getline(&buf, &cap, f)) >= 0) {
        c->line++;
        ds->stats.lines++;
        size_t len = (size_t)got;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
        if (blank(buf, len)) {
            ds->stats.blank++;
            continue;
        }
        if (ds->n == ds->cap) {
            size_t nc = ds->cap ? ds->cap * 2 : 256;
            sl_prompt *nr = realloc(ds->rec, nc * sizeof *nr);
            if (!nr) { rc = file_err(c, SL_ENOMEM, "out of memory"); goto out; }
            ds->rec = nr;
            ds->cap = nc;
        }
        sl_prompt *r = &ds->rec[ds->n];
        int k = parse_line(c, buf, len, r);
        if (k > 0) {
            rc = at_line(c, k, sl_strerror(k));
            goto out;
        }
        if (k < 0) {
            int kind = -k - 1;
            if (!o->skip_bad) {
                rc = at_line(c, SL_EINVAL, c->msg);
                goto out;
            }
            ds->stats.skipped[kind]++;
            ds->stats.skipped_total++;
            if (warned++ < 5) sl_warn("%s:%" PRIu64 ": skipped: %s", c->name, c->line, c->msg);
            continue;
        }
        if (ds->n >= SL_SAMPLE_MAX_INDEX) {
            rec_fini(r);
            rc = at_line(c, SL_ERANGE, "more records than the sample-id limit (2^32)");
            goto out;
        }
        if (r->n_ids > ds->stats.max_prompt_tokens_seen) ds->stats.max_prompt_tokens_seen = r->n_ids;
        ds->n++;
        ds->stats.kept++;
    }
    if (ferror(f)) { rc = file_err(c, SL_EIO, "read error: %s", strerror(errno ? errno : EIO)); goto out; }
    if (ds->n == 0) {
        rc = file_err(c, SL_EINVAL, "no prompts (%" PRIu64 " lines, %" PRIu64 " skipped as bad)", ds->stats.lines,
                      ds->stats.skipped_total);
        goto out;
    }
    if (ds->stats.skipped_total)
        sl_warn("%s: %" PRIu64 " bad lines skipped (json %" PRIu64 ", missing %" PRIu64 ", type %" PRIu64
                ", long %" PRIu64 ", label %" PRIu64 "), %zu prompts kept",
                c->name, ds->stats.skipped_total, ds->stats.skipped[0], ds->stats.skipped[1], ds->stats.skipped[2],
                ds->stats.skipped[3], ds->stats.skipped[4], ds->n);
out:
    free(buf);
    return rc;
}

static int load_common(const char *name, FILE *f, const sl_dataset_opts *opts, sl_dataset **out, char *err,
                       size_t errlen) {
    lctx c = {.name = name, .o = opts, .err = err, .errlen = errlen};
    sl_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return file_err(&c, SL_ENOMEM, "out of memory");
    ds->seed = opts->seed;
    ds->shuffle = opts->shuffle;
    ds->num_epoch = opts->num_epoch;
    int rc = load_stream(f, &c, ds);
    if (rc) {
        sl_dataset_free(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

static int check_opts(const char *name, const sl_dataset_opts *o, char *err, size_t errlen) {
    lctx c = {.name = name ? name : "(dataset)", .err = err, .errlen = errlen};
    if (!has_key(o->input_key)) return file_err(&c, SL_EINVAL, "input_key is empty");
    if (o->num_epoch < 1 || o->num_epoch > SL_SAMPLE_MAX_EPOCHS - 1)
        return file_err(&c, SL_EINVAL, "num_epoch %u outside 1..%u", o->num_epoch, SL_SAMPLE_MAX_EPOCHS - 1);
    if (o->max_line_bytes == 0) return file_err(&c, SL_EINVAL, "max_line_bytes is 0");
    return 0;
}

int sl_dataset_load(const char *path, const sl_dataset_opts *opts, sl_dataset **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (out) *out = NULL;
    if (!path || !opts || !out) return SL_EINVAL;
    int rc = check_opts(path, opts, err, errlen);
    if (rc) return rc;
    FILE *f = fopen(path, "rb");
    if (!f) {
        lctx c = {.name = path, .err = err, .errlen = errlen};
        return file_err(&c, errno == ENOENT ? SL_ENOENT : SL_EIO, "cannot open: %s", strerror(errno));
    }
    rc = load_common(path, f, opts, out, err, errlen);
    fclose(f);
    return rc;
}

int sl_dataset_load_text(const char *name, const char *text, size_t len, const sl_dataset_opts *opts,
                         sl_dataset **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (out) *out = NULL;
    if (!opts || !out || (!text && len)) return SL_EINVAL;
    if (!name) name = "(text)";
    int rc = check_opts(name, opts, err, errlen);
    if (rc) return rc;
    lctx c = {.name = name, .err = err, .errlen = errlen};
    if (len == 0) return file_err(&c, SL_EINVAL, "no prompts (empty text)");
    FILE *f = fmemopen((void *)text, len, "rb");
    if (!f) return file_err(&c, SL_ENOMEM, "fmemopen failed");
    rc = load_common(name, f, opts, out, err, errlen);
    fclose(f);
    return rc;
}

/* ---------------------------------------------------------------- order */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound) by rejecting the top 2^64 mod bound outputs. */
static uint64_t uniform(uint64_t *s, uint64_t bound) {
    uint64_t rem = (0 - bound) % bound; /* 2^64 mod bound */
    uint64_t r;
    do r = splitmix64(s);
    while (rem && r > UINT64_MAX - rem);
    return r % bound;
}

static int build_perm(sl_dataset *ds, uint32_t epoch) {
    if (ds->perm_valid && ds->perm_epoch == epoch) return 0;
    if (!ds->perm) {
        ds->perm = malloc(ds->n * sizeof *ds->perm);
        if (!ds->perm) return SL_ENOMEM;
    }
    for (size_t i = 0; i < ds->n; i++) ds->perm[i] = (uint32_t)i;
    uint64_t st = ds->seed ^ (0x9E3779B97F4A7C15ull * ((uint64_t)epoch + 1));
    for (size_t i = ds->n - 1; i >= 1; i--) {
        size_t j = (size_t)uniform(&st, (uint64_t)i + 1);
        uint32_t t = ds->perm[i];
        ds->perm[i] = ds->perm[j];
        ds->perm[j] = t;
    }
    ds->perm_epoch = epoch;
    ds->perm_valid = 1;
    return 0;
}

int sl_dataset_index_at(sl_dataset *ds, uint32_t epoch, uint64_t position, uint64_t *index) {
    if (!ds || !index) return SL_EINVAL;
    if (position >= ds->n || epoch >= SL_SAMPLE_MAX_EPOCHS) return SL_ERANGE;
    if (!ds->shuffle) {
        *index = position;
        return 0;
    }
    int rc = build_perm(ds, epoch);
    if (rc) return rc;
    *index = ds->perm[position];
    return 0;
}

int sl_dataset_next(sl_dataset *ds, sl_data_cursor *cur, uint64_t *out_ids, size_t want, size_t *got) {
    if (got) *got = 0;
    if (!ds || !cur || !got || (want && !out_ids)) return SL_EINVAL;
    if (cur->epoch < ds->num_epoch && cur->position >= ds->n) return SL_EINVAL;
    size_t k = 0;
    while (k < want && cur->epoch < ds->num_epoch) {
        uint64_t idx;
        int rc = sl_dataset_index_at(ds, cur->epoch, cur->position, &idx);
        if (rc) return rc;
        if ((rc = sl_prompt_id_pack(cur->epoch, idx, &out_ids[k]))) return rc;
        k++;
        *got = k;
        if (++cur->position == ds->n) {
            cur->position = 0;
            cur->epoch++;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- cursor */

size_t sl_data_cursor_format(const sl_dataset *ds, const sl_data_cursor *cur, char *buf, size_t cap) {
    if (!ds || !cur || !buf || !cap) return 0;
    int n = snprintf(buf, cap,
                     "{\"epoch\":%" PRIu32 ",\"position\":%" PRIu64 ",\"size\":%zu,\"seed\":\"%" PRIu64
                     "\",\"shuffle\":%s,\"num_epoch\":%" PRIu32 "}",
                     cur->epoch, cur->position, ds->n, ds->seed, ds->shuffle ? "true" : "false", ds->num_epoch);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = 0;
        return 0;
    }
    return (size_t)n;
}

__attribute__((format(printf, 4, 5))) static int cerr(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int get_uint(json_t *o, const char *k, uint64_t max, uint64_t *v) {
    json_t *x = json_object_get(o, k);
    if (!json_is_integer(x) || json_integer_value(x) < 0 || (uint64_t)json_integer_value(x) > max) return SL_EINVAL;
    *v = (uint64_t)json_integer_value(x);
    return 0;
}

int sl_data_cursor_parse(const sl_dataset *ds, const char *text, size_t len, sl_data_cursor *cur, char *err,
                         size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!ds || !text || !cur) return cerr(err, errlen, SL_EINVAL, "data cursor: NULL argument");
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    if (!o) return cerr(err, errlen, SL_EINVAL, "data cursor: bad JSON: %s", je.text);
    int rc = SL_EINVAL;
    uint64_t epoch, pos, size, nep;
    json_t *sh = json_object_get(o, "shuffle"), *sd = json_object_get(o, "seed");
    if (!json_is_object(o) || get_uint(o, "epoch", SL_SAMPLE_MAX_EPOCHS - 1, &epoch) ||
        get_uint(o, "position", UINT64_MAX >> 1, &pos) || get_uint(o, "size", UINT64_MAX >> 1, &size) ||
        get_uint(o, "num_epoch", SL_SAMPLE_MAX_EPOCHS - 1, &nep) || !json_is_boolean(sh) || !json_is_string(sd)) {
        rc = cerr(err, errlen, SL_EINVAL, "data cursor: a field is missing or has the wrong type");
        goto out;
    }
    const char *ss = json_string_value(sd);
    char *end = NULL;
    errno = 0;
    unsigned long long seed = strtoull(ss, &end, 10);
    if (!ss[0] || *end || errno || ss[0] == '-' || ss[0] == '+' || isspace((unsigned char)ss[0])) {
        rc = cerr(err, errlen, SL_EINVAL, "data cursor: seed \"%.30s\" is not a decimal number", ss);
        goto out;
    }
    if (size != ds->n || seed != ds->seed || json_is_true(sh) != !!ds->shuffle) {
        rc = cerr(err, errlen, SL_ESTALE,
                  "data cursor was saved for another dataset order (size %llu seed %llu shuffle %d; this one: size "
                  "%zu seed %llu shuffle %d)",
                  (unsigned long long)size, seed, json_is_true(sh), ds->n, (unsigned long long)ds->seed, !!ds->shuffle);
        goto out;
    }
    if (pos >= ds->n) {
        rc = cerr(err, errlen, SL_EINVAL, "data cursor: position %llu outside 0..%zu", (unsigned long long)pos,
                  ds->n - 1);
        goto out;
    }
    cur->epoch = (uint32_t)epoch;
    cur->position = pos;
    rc = 0;
out:
    json_decref(o);
    return rc;
}
