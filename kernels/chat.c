/*
 * chat.c — the built-in chat-template renderers (see chat.h). Each one is a
 * line-by-line transcription of the Jinja template its family ships:
 *   - ChatML: Qwen3's tokenizer_config.json template without tools (system
 *     first, "<think>" handling of assistant turns after the last user
 *     query, the optional empty think block when enable_thinking is false);
 *     for Qwen2/2.5 conversations without reasoning it writes the same
 *     ChatML framing.
 *   - Llama 3: the template of llama3/tokenizer_config.json: bos_token
 *     before the first message, each content trimmed (Python str.strip),
 *     and the assistant header appended after the last message — that
 *     template appends it whatever add_generation_prompt says, and so does
 *     this renderer.
 * Not a Jinja engine; no tools.
 */
#include "chat.h"

#include "base.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

/* ---------------------------------------------------------- string out */

typedef struct obuf {
    char *v;
    size_t n, cap;
    int err;
} obuf;

static void put(obuf *b, const char *s, size_t n) {
    if (b->err) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *nv = realloc(b->v, nc);
        if (!nv) {
            b->err = SL_ENOMEM;
            return;
        }
        b->v = nv;
        b->cap = nc;
    }
    memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = 0;
}

static void puts_(obuf *b, const char *s) { put(b, s, strlen(s)); }

/* A borrowed slice of a string. */
typedef struct sv {
    const char *p;
    size_t n;
} sv;

static sv sv_of(const char *s) { return (sv){s, strlen(s)}; }

static sv lstrip_nl(sv s) {
    while (s.n && s.p[0] == '\n') { s.p++; s.n--; }
    return s;
}

static sv rstrip_nl(sv s) {
    while (s.n && s.p[s.n - 1] == '\n') s.n--;
    return s;
}

static const char *memmem_(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0) return h;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

static const char *memrmem_(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn > hn) return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (!memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

/* Python's str.isspace() for one code point. */
static int py_space(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

/* Decode one UTF-8 code point at s (well-formed or not: a bad byte decodes
 * as itself, never as a space). */
static size_t cp_at(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = u[0] < 0x80 ? 1 : u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 1;
    if (k > n) k = 1;
    uint32_t c = k == 1 ? u[0] : (uint32_t)(u[0] & (0x7F >> k));
    for (size_t i = 1; i < k; i++) {
        if ((u[i] & 0xC0) != 0x80) { *cp = 0xFFFD; return 1; }
        c = (c << 6) | (u[i] & 0x3F);
    }
    *cp = c;
    return k;
}

/* Jinja's trim filter: Python str.strip(). */
static sv py_strip(sv s) {
    uint32_t cp;
    while (s.n) {
        size_t k = cp_at(s.p, s.n, &cp);
        if (!py_space(cp)) break;
        s.p += k;
        s.n -= k;
    }
    while (s.n) {
        size_t j = s.n - 1;
        while (j > 0 && ((unsigned char)s.p[j] & 0xC0) == 0x80 && s.n - j < 4) j--;
        size_t k = cp_at(s.p + j, s.n - j, &cp);
        if (j + k != s.n || !py_space(cp)) break; /* a stray byte is no space */
        s.n = j;
    }
    return s;
}

/* --------------------------------------------------------------- ChatML */

static int starts_with(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

static int ends_with(const char *s, const char *p) {
    size_t a = strlen(s), b = strlen(p);
    return a >= b && !memcmp(s + a - b, p, b);
}

static int render_chatml(const sl_chat_msg *m, size_t n, const sl_chat_opts *o, obuf *b) {
    if (n && !strcmp(m[0].role, "system")) {
        puts_(b, "<|im_start|>system\n");
        puts_(b, m[0].content);
        puts_(b, "<|im_end|>\n");
    }
    /* the last user turn that is not a tool response */
    size_t last_query = n ? n - 1 : 0;
    for (size_t k = n; k-- > 0;) {
        if (!strcmp(m[k].role, "user") &&
            !(starts_with(m[k].content, "<tool_response>") && ends_with(m[k].content, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *role = m[i].role;
        if (!strcmp(role, "user") || (!strcmp(role, "system") && i != 0)) {
            puts_(b, "<|im_start|>");
            puts_(b, role);
            puts_(b, "\n");
            puts_(b, m[i].content);
            puts_(b, "<|im_end|>\n");
        } else if (!strcmp(role, "assistant")) {
            sv content = sv_of(m[i].content), reasoning = {"", 0};
            if (m[i].reasoning_content) {
                reasoning = sv_of(m[i].reasoning_content);
            } else {
                const char *all = m[i].content;
                size_t alen = strlen(all);
                const char *end = memmem_(all, alen, "</think>", 8);
                if (end) {
                    /* content.split('</think>')[-1].lstrip('\n') */
                    const char *last = memrmem_(all, alen, "</think>", 8);
                    content = lstrip_nl((sv){last + 8, alen - (size_t)(last + 8 - all)});
                    /* content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
                    sv first = rstrip_nl((sv){all, (size_t)(end - all)});
                    const char *open = memrmem_(first.p, first.n, "<think>", 7);
                    if (open) first = (sv){open + 7, first.n - (size_t)(open + 7 - first.p)};
                    reasoning = lstrip_nl(first);
                }
            }
            if (i > last_query && (i == n - 1 || reasoning.n)) {
                puts_(b, "<|im_start|>assistant\n<think>\n");
                sv r = rstrip_nl(lstrip_nl(reasoning));
                put(b, r.p, r.n);
                puts_(b, "\n</think>\n\n");
                sv c = lstrip_nl(content);
                put(b, c.p, c.n);
            } else {
                puts_(b, "<|im_start|>assistant\n");
                put(b, content.p, content.n);
            }
            puts_(b, "<|im_end|>\n");
        }
    }
    if (o->add_generation_prompt) {
        puts_(b, "<|im_start|>assistant\n");
        if (o->enable_thinking == 0) puts_(b, "<think>\n\n</think>\n\n");
    }
    return 0;
}

/* -------------------------------------------------------------- Llama 3 */

static int render_llama3(const sl_chat_msg *m, size_t n, const sl_chat_opts *o, obuf *b) {
    for (size_t i = 0; i < n; i++) {
        if (i == 0) puts_(b, o->bos_token ? o->bos_token : "<|begin_of_text|>");
        puts_(b, "<|start_header_id|>");
        puts_(b, m[i].role);
        puts_(b, "<|end_header_id|>\n\n");
        sv c = py_strip(sv_of(m[i].content));
        put(b, c.p, c.n);
        puts_(b, "<|eot_id|>");
    }
    puts_(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return 0;
}

/* ---------------------------------------------------------------- public */

void sl_chat_opts_init(sl_chat_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->add_generation_prompt = 1;
    o->enable_thinking = -1;
}

int sl_chat_format_from_name(const char *name, sl_chat_format *out) {
    static const struct {
        const char *name;
        sl_chat_format fmt;
    } names[] = {
        {"chatml", SL_CHAT_CHATML}, {"qwen", SL_CHAT_CHATML},   {"qwen2", SL_CHAT_CHATML},
        {"qwen2.5", SL_CHAT_CHATML}, {"qwen3", SL_CHAT_CHATML}, {"qwen2_moe", SL_CHAT_CHATML},
        {"qwen3_moe", SL_CHAT_CHATML}, {"llama3", SL_CHAT_LLAMA3}, {"llama-3", SL_CHAT_LLAMA3},
        {"llama3.1", SL_CHAT_LLAMA3}, {"llama-3.1", SL_CHAT_LLAMA3}, {"llama", SL_CHAT_LLAMA3},
        {"none", SL_CHAT_NONE},     {"raw", SL_CHAT_NONE},
    };
    if (!name || !out) return SL_EINVAL;
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
        if (!strcasecmp(name, names[i].name)) {
            *out = names[i].fmt;
            return 0;
        }
    return SL_EINVAL;
}

sl_chat_format sl_chat_format_from_template(const char *jinja) {
    if (!jinja) return SL_CHAT_NONE;
    if (strstr(jinja, "<|im_start|>")) return SL_CHAT_CHATML;
    if (strstr(jinja, "<|start_header_id|>")) return SL_CHAT_LLAMA3;
    return SL_CHAT_NONE;
}

const char *sl_chat_format_name(sl_chat_format f) {
    switch (f) {
    case SL_CHAT_CHATML: return "chatml";
    case SL_CHAT_LLAMA3: return "llama3";
    case SL_CHAT_NONE: return "none";
    }
    return "unknown";
}

int sl_chat_render(sl_chat_format fmt, const sl_chat_msg *msgs, size_t n, const sl_chat_opts *opts, char **out,
                   size_t *len) {
    if (out) *out = NULL;
    if (len) *len = 0;
    if (!out || (!msgs && n)) return SL_EINVAL;
    sl_chat_opts dflt;
    sl_chat_opts_init(&dflt);
    if (!opts) opts = &dflt;
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) return SL_EINVAL;
        if (!strcmp(msgs[i].role, "tool")) return SL_EUNSUPPORTED;
        if (strcmp(msgs[i].role, "system") && strcmp(msgs[i].role, "user") && strcmp(msgs[i].role, "assistant"))
            return SL_EINVAL;
    }
    obuf b = {0};
    put(&b, "", 0);
    int rc;
    switch (fmt) {
    case SL_CHAT_CHATML: rc = render_chatml(msgs, n, opts, &b); break;
    case SL_CHAT_LLAMA3: rc = render_llama3(msgs, n, opts, &b); break;
    case SL_CHAT_NONE:
        for (size_t i = 0; i < n; i++) puts_(&b, msgs[i].content);
        rc = 0;
        break;
    default: rc = SL_EINVAL;
    }
    if (!rc) rc = b.err;
    if (rc) {
        free(b.v);
        return rc;
    }
    *out = b.v;
    if (len) *len = b.n;
    return 0;
}

/* ------------------------------------------------------------------ JSON */

__attribute__((format(printf, 3, 4))) static int jfail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return SL_EINVAL;
}

static char *dupj(json_t *s) {
    size_t n = json_string_length(s);
    if (memchr(json_string_value(s), 0, n)) return NULL; /* embedded NUL */
    char *p = malloc(n + 1);
    if (p) memcpy(p, json_string_value(s), n + 1);
    return p;
}

void sl_chat_msgs_fini(sl_chat_msgs *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) {
        free((char *)l->msgs[i].role);
        free((char *)l->msgs[i].content);
        free((char *)l->msgs[i].reasoning_content);
    }
    free(l->msgs);
    l->msgs = NULL;
    l->n = 0;
}

int sl_chat_parse_json(const char *json, size_t len, sl_chat_msgs *out, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!out) return SL_EINVAL;
    out->msgs = NULL;
    out->n = 0;
    if (!json) return jfail(err, errlen, "no JSON text");
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return jfail(err, errlen, "bad JSON at column %d: %s", je.column, je.text);
    json_t *arr = json_is_object(root) ? json_object_get(root, "messages") : root;
    int rc = 0;
    if (!json_is_array(arr)) {
        rc = jfail(err, errlen, "expected an array of messages or {\"messages\": [...]}");
        goto out;
    }
    size_t n = json_array_size(arr);
    out->msgs = calloc(n + 1, sizeof *out->msgs);
    if (!out->msgs) { rc = SL_ENOMEM; goto out; }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        json_t *role = json_object_get(o, "role"), *content = json_object_get(o, "content");
        json_t *rc_ = json_object_get(o, "reasoning_content");
        if (!json_is_object(o) || !json_is_string(role) || !json_is_string(content)) {
            rc = jfail(err, errlen, "message %zu needs string \"role\" and \"content\"", i);
            goto out;
        }
        if (rc_ && !json_is_null(rc_) && !json_is_string(rc_)) {
            rc = jfail(err, errlen, "message %zu: reasoning_content is not a string", i);
            goto out;
        }
        sl_chat_msg *m = &out->msgs[out->n++];
        m->role = dupj(role);
        m->content = dupj(content);
        m->reasoning_content = json_is_string(rc_) ? dupj(rc_) : NULL;
        if (!m->role || !m->content || (json_is_string(rc_) && !m->reasoning_content)) {
            rc = jfail(err, errlen, "message %zu: out of memory or a NUL inside a string", i);
            goto out;
        }
    }
out:
    json_decref(root);
    if (rc) sl_chat_msgs_fini(out);
    return rc;
}
