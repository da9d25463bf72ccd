/*
 * tok_load.c — reading tokenizers: Hugging Face tokenizer.json (+
 * tokenizer_config.json) and GPT-2's encoder.json + vocab.bpe, into the
 * structures of tok_internal.h. Every field is checked: a malformed or
 * hostile file gives a clear error, and a component this code does not
 * implement gives SL_EUNSUPPORTED naming it. Encoding is in tokenizer.c.
 *
 * Read: model BPE (vocab, merges as "a b" strings or ["a","b"] pairs,
 * unk_token, fuse_unk, byte_fallback, ignore_merges, empty or null
 * continuing_subword_prefix / end_of_word_suffix, dropout null or 0);
 * added_tokens; normalizers NFC/NFD/NFKC/NFKD/Prepend/Replace(String)/
 * Sequence; pre-tokenizers Split(Regex|String)/ByteLevel/Sequence (ByteLevel
 * last); decoders ByteLevel/Replace(String)/ByteFallback/Fuse/Strip/
 * Sequence. post_processor, truncation and padding are ignored (encode adds
 * no special tokens).
 */
#include "tok_internal.h"

#include "base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <xxhash.h>

/* ------------------------------------------------------------- errors */

typedef struct lctx {
    char *err;
    size_t errlen;
    const char *file;
} lctx;

__attribute__((format(printf, 3, 4))) static int fail(lctx *c, int code, const char *fmt, ...) {
    if (c->err && c->errlen) {
        int n = snprintf(c->err, c->errlen, "%s: ", c->file ? c->file : "tokenizer");
        if (n < 0) n = 0;
        if ((size_t)n < c->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

/* --------------------------------------------------------- hash tables */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint32_t pow2_at_least(uint64_t n) {
    uint64_t c = 16;
    while (c < n) c <<= 1;
    return (uint32_t)c;
}

int32_t tok_map_get(const sl_tokenizer *t, const char *s, size_t len) {
    if (!t->vocab.cap) return -1;
    uint32_t mask = t->vocab.cap - 1;
    uint32_t i = (uint32_t)XXH3_64bits(s, len) & mask;
    for (;;) {
        uint32_t v = t->vocab.slot[i];
        if (!v) return -1;
        int32_t id = (int32_t)(v - 1);
        if (t->mlen[id] == len && !memcmp(t->mtok[id], s, len)) return id;
        i = (i + 1) & mask;
    }
}

/* Insert model token `id` (its string already stored); 1 if the string is
 * already present (duplicate). */
static int map_put(sl_tokenizer *t, int32_t id) {
    uint32_t mask = t->vocab.cap - 1;
    uint32_t i = (uint32_t)XXH3_64bits(t->mtok[id], t->mlen[id]) & mask;
    for (;;) {
        uint32_t v = t->vocab.slot[i];
        if (!v) break;
        int32_t o = (int32_t)(v - 1);
        if (t->mlen[o] == t->mlen[id] && !memcmp(t->mtok[o], t->mtok[id], t->mlen[id])) return 1;
        i = (i + 1) & mask;
    }
    t->vocab.slot[i] = (uint32_t)id + 1;
    t->vocab.count++;
    return 0;
}

int tok_merge_get(const sl_tokenizer *t, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id) {
    if (!t->merges_cap) return 0;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint32_t mask = t->merges_cap - 1;
    uint32_t i = (uint32_t)mix64(key) & mask;
    for (;;) {
        const tok_merge_ent *e = &t->merges[i];
        if (!e->key) return 0;
        if (e->key == key) {
            *rank = e->rank;
            *new_id = e->new_id;
            return 1;
        }
        i = (i + 1) & mask;
    }
}

/* Insert or overwrite the pair's entry. */
static void merge_put(sl_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint32_t mask = t->merges_cap - 1;
    uint32_t i = (uint32_t)mix64(key) & mask;
    while (t->merges[i].key && t->merges[i].key != key) i = (i + 1) & mask;
    /* tokenizers builds its merge map with collect() into a HashMap, so a
     * repeated pair ends with the rank of its last occurrence. */
    t->merges[i].key = key;
    t->merges[i].rank = rank;
    t->merges[i].new_id = new_id;
}

/* --------------------------------------------------------- byte level */

void tok_bytelevel_init(sl_tokenizer *t) {
    /* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves,
     * the others to 256, 257, ... in byte order. */
    int n = 0;
    for (int i = 0; i < 324; i++) t->bl_inv[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        int cp = keep ? b : 256 + n++;
        if (cp < 0x80) {
            t->bl_chr[b][0] = (char)cp;
            t->bl_len[b] = 1;
        } else {
            t->bl_chr[b][0] = (char)(0xC0 | (cp >> 6));
            t->bl_chr[b][1] = (char)(0x80 | (cp & 0x3F));
            t->bl_len[b] = 2;
        }
        t->bl_inv[cp] = (int16_t)b;
    }
}

/* ------------------------------------------------------------- helpers */

static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static json_t *load_json(lctx *c, const char *path, int flags, int *rc) {
    json_error_t je;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *rc = fail(c, errno == ENOENT ? SL_ENOENT : SL_EIO, "cannot open: %s", strerror(errno));
        return NULL;
    }
    json_t *j = json_loadf(f, JSON_REJECT_DUPLICATES | (size_t)flags, &je);
    fclose(f);
    if (!j) *rc = fail(c, SL_EINVAL, "bad JSON at line %d column %d: %s", je.line, je.column, je.text);
    return j;
}

static const char *jstr(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int jbool(json_t *o, const char *key, int dflt) {
    json_t *v = json_object_get(o, key);
    if (json_is_boolean(v)) return json_is_true(v);
    return dflt;
}

/* ------------------------------------------------------------ tokens */

static int add_model_token(lctx *c, sl_tokenizer *t, const char *s, size_t len, json_int_t id) {
    if (id < 0 || id >= TOK_MAX_ID || id >= t->n_model)
        return fail(c, SL_EINVAL, "vocab id %lld of \"%.40s\" out of range", (long long)id, s);
    if (t->mtok[id]) return fail(c, SL_EINVAL, "duplicate vocab id %lld", (long long)id);
    if (!(t->mtok[id] = dupn(s, len))) return fail(c, SL_ENOMEM, "out of memory");
    t->mlen[id] = (uint32_t)len;
    if (map_put(t, (int32_t)id)) return fail(c, SL_EINVAL, "duplicate vocab token \"%.40s\"", s);
    return 0;
}

static int alloc_model(lctx *c, sl_tokenizer *t, int32_t n_model, size_t n_tokens) {
    t->n_model = n_model;
    t->mtok = calloc((size_t)n_model + 1, sizeof *t->mtok);
    t->mlen = calloc((size_t)n_model + 1, sizeof *t->mlen);
    t->vocab.cap = pow2_at_least((uint64_t)n_tokens * 2 + 1);
    t->vocab.slot = calloc(t->vocab.cap, sizeof *t->vocab.slot);
    if (!t->mtok || !t->mlen || !t->vocab.slot) return fail(c, SL_ENOMEM, "out of memory");
    return 0;
}

static int load_vocab_obj(lctx *c, sl_tokenizer *t, json_t *vocab) {
    if (!json_is_object(vocab)) return fail(c, SL_EINVAL, "model.vocab is not an object");
    size_t n = json_object_size(vocab);
    if (n == 0) return fail(c, SL_EINVAL, "model.vocab is empty");
    if (n >= TOK_MAX_ID) return fail(c, SL_EINVAL, "model.vocab too large");
    json_int_t maxid = -1;
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        if (!json_is_integer(v)) return fail(c, SL_EINVAL, "vocab entry \"%.40s\" has no integer id", k);
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= TOK_MAX_ID)
            return fail(c, SL_EINVAL, "vocab id %lld of \"%.40s\" out of range", (long long)id, k);
        if (id > maxid) maxid = id;
    }
    int rc = alloc_model(c, t, (int32_t)maxid + 1, n);
    if (rc) return rc;
    json_object_foreach(vocab, k, v) {
        /* jansson keys are NUL-terminated; a key with an embedded NUL is
         * cut there, and then collides or is wrong: refuse such keys. */
        size_t kl = strlen(k);
        rc = add_model_token(c, t, k, kl, json_integer_value(v));
        if (rc) return rc;
    }
    return 0;
}

static int add_merge(lctx *c, sl_tokenizer *t, const char *a, size_t al, const char *b, size_t bl,
                     uint32_t rank) {
    int32_t ia = tok_map_get(t, a, al), ib = tok_map_get(t, b, bl);
    if (ia < 0 || ib < 0)
        return fail(c, SL_EINVAL, "merge %u names a token not in the vocab: \"%.*s\"", rank,
                    (int)(ia < 0 ? (al > 40 ? 40 : al) : (bl > 40 ? 40 : bl)), ia < 0 ? a : b);
    char buf[512];
    char *m = al + bl < sizeof buf ? buf : malloc(al + bl);
    if (!m) return fail(c, SL_ENOMEM, "out of memory");
    memcpy(m, a, al);
    memcpy(m + al, b, bl);
    int32_t in = tok_map_get(t, m, al + bl);
    if (m != buf) free(m);
    if (in < 0) return fail(c, SL_EINVAL, "merge %u: the merged token \"%.*s%.*s\" is not in the vocab",
                            rank, (int)(al > 30 ? 30 : al), a, (int)(bl > 30 ? 30 : bl), b);
    merge_put(t, ia, ib, rank, in);
    return 0;
}

static int alloc_merges(lctx *c, sl_tokenizer *t, size_t n) {
    t->merges_cap = pow2_at_least((uint64_t)n * 2 + 1);
    t->merges = calloc(t->merges_cap, sizeof *t->merges);
    if (!t->merges) return fail(c, SL_ENOMEM, "out of memory");
    return 0;
}

static int load_merges(lctx *c, sl_tokenizer *t, json_t *merges) {
    if (!json_is_array(merges)) return fail(c, SL_EINVAL, "model.merges is not an array");
    size_t n = json_array_size(merges);
    int rc = alloc_merges(c, t, n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(merges, i);
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t len = json_string_length(m);
            const char *sp = memchr(s, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)))
                return fail(c, SL_EINVAL, "merge %zu \"%.40s\" is not two tokens separated by one space", i, s);
            rc = add_merge(c, t, s, (size_t)(sp - s), sp + 1, len - (size_t)(sp + 1 - s), (uint32_t)i);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
            rc = add_merge(c, t, json_string_value(a), json_string_length(a), json_string_value(b),
                           json_string_length(b), (uint32_t)i);
        } else {
            return fail(c, SL_EINVAL, "merge %zu is neither \"a b\" nor [\"a\", \"b\"]", i);
        }
        if (rc) return rc;
    }
    return 0;
}

static int load_model(lctx *c, sl_tokenizer *t, json_t *model) {
    if (!json_is_object(model)) return fail(c, SL_EINVAL, "no \"model\" object");
    const char *type = jstr(model, "type");
    if (!type && json_object_get(model, "merges")) type = "BPE";
    if (!type) return fail(c, SL_EINVAL, "model has no type");
    if (strcmp(type, "BPE")) return fail(c, SL_EUNSUPPORTED, "model type \"%.40s\" is not supported (only BPE)", type);
    json_t *d = json_object_get(model, "dropout");
    if (d && !json_is_null(d) && !(json_is_number(d) && json_number_value(d) == 0.0))
        return fail(c, SL_EUNSUPPORTED, "BPE dropout is not supported");
    const char *pre = jstr(model, "continuing_subword_prefix"), *suf = jstr(model, "end_of_word_suffix");
    if ((pre && *pre) || (suf && *suf))
        return fail(c, SL_EUNSUPPORTED, "BPE continuing_subword_prefix / end_of_word_suffix are not supported");
    int rc = load_vocab_obj(c, t, json_object_get(model, "vocab"));
    if (rc) return rc;
    rc = load_merges(c, t, json_object_get(model, "merges"));
    if (rc) return rc;
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    json_t *unk = json_object_get(model, "unk_token");
    if (json_is_string(unk)) {
        t->unk_id = tok_map_get(t, json_string_value(unk), json_string_length(unk));
        if (t->unk_id < 0) return fail(c, SL_EINVAL, "unk_token \"%.40s\" is not in the vocab", json_string_value(unk));
    } else if (unk && !json_is_null(unk)) {
        return fail(c, SL_EINVAL, "unk_token is not a string");
    }
    return 0;
}

static int load_added(lctx *c, sl_tokenizer *t, json_t *arr) {
    if (!arr || json_is_null(arr)) return 0;
    if (!json_is_array(arr)) return fail(c, SL_EINVAL, "added_tokens is not an array");
    size_t n = json_array_size(arr);
    t->added = calloc(n + 1, sizeof *t->added);
    if (!t->added) return fail(c, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        json_t *id = json_object_get(o, "id"), *content = json_object_get(o, "content");
        if (!json_is_object(o) || !json_is_integer(id) || !json_is_string(content))
            return fail(c, SL_EINVAL, "added_tokens[%zu] needs an integer id and a string content", i);
        json_int_t v = json_integer_value(id);
        if (v < 0 || v >= TOK_MAX_ID) return fail(c, SL_EINVAL, "added_tokens[%zu] id %lld out of range", i, (long long)v);
        if (json_string_length(content) == 0) return fail(c, SL_EINVAL, "added_tokens[%zu] is empty", i);
        tok_added *a = &t->added[t->n_added];
        for (size_t j = 0; j < t->n_added; j++) {
            if (t->added[j].id == (int32_t)v)
                return fail(c, SL_EINVAL, "added_tokens[%zu]: duplicate id %lld", i, (long long)v);
            if (t->added[j].len == json_string_length(content) &&
                !memcmp(t->added[j].content, json_string_value(content), t->added[j].len))
                return fail(c, SL_EINVAL, "added_tokens[%zu]: duplicate content", i);
        }
        if (!(a->content = dupn(json_string_value(content), json_string_length(content))))
            return fail(c, SL_ENOMEM, "out of memory");
        a->len = (uint32_t)json_string_length(content);
        a->id = (int32_t)v;
        a->special = (uint8_t)jbool(o, "special", 0);
        a->single_word = (uint8_t)jbool(o, "single_word", 0);
        a->lstrip = (uint8_t)jbool(o, "lstrip", 0);
        a->rstrip = (uint8_t)jbool(o, "rstrip", 0);
        a->normalized = (uint8_t)jbool(o, "normalized", !a->special);
        t->n_added++;
    }
    return 0;
}

/* ---------------------------------------------------------- pipeline */

static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Oniguruma (used by tokenizers) counts U+0085 as \s; PCRE2 with UCP does
 * not. Rewrite \s / \S so both agree. */
static char *onig_to_pcre(const char *re, size_t len, size_t *outlen) {
    char *o = malloc(len * 8 + 1);
    if (!o) return NULL;
    size_t k = 0;
    int in_class = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = re[i];
        if (ch == '\\' && i + 1 < len) {
            char nx = re[i + 1];
            if (nx == 's') {
                const char *r = in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
                memcpy(o + k, r, strlen(r)); k += strlen(r);
            } else if (nx == 'S' && !in_class) {
                memcpy(o + k, "[^\\s\\x{85}]", 11); k += 11;
            } else {
                o[k++] = ch; o[k++] = nx;
            }
            i++;
            continue;
        }
        if (ch == '[' && !in_class) in_class = 1;
        else if (ch == ']' && in_class) in_class = 0;
        o[k++] = ch;
    }
    o[k] = 0;
    *outlen = k;
    return o;
}

static int compile_re(lctx *c, const char *re, size_t len, int literal, pcre2_code **out) {
    int errcode;
    PCRE2_SIZE erroff;
    char *tr = NULL;
    size_t trlen = len;
    if (!literal) {
        tr = onig_to_pcre(re, len, &trlen);
        if (!tr) return fail(c, SL_ENOMEM, "out of memory");
    }
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)(literal ? re : tr), trlen, opts, &errcode, &erroff, NULL);
    free(tr);
    if (!code) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return fail(c, SL_EINVAL, "regex \"%.60s\" does not compile at %zu: %s", re, (size_t)erroff, (char *)msg);
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    *out = code;
    return 0;
}

static int pattern_of(lctx *c, json_t *o, const char **s, size_t *len, int *is_regex) {
    json_t *p = json_object_get(o, "pattern");
    json_t *v;
    if (json_is_object(p) && json_is_string(v = json_object_get(p, "String"))) {
        *is_regex = 0;
    } else if (json_is_object(p) && json_is_string(v = json_object_get(p, "Regex"))) {
        *is_regex = 1;
    } else {
        return fail(c, SL_EINVAL, "pattern is neither {\"String\": ...} nor {\"Regex\": ...}");
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

static int load_norm(lctx *c, sl_tokenizer *t, json_t *o, int depth) {
    if (!o || json_is_null(o)) return 0;
    const char *type = jstr(o, "type");
    if (!json_is_object(o) || !type) return fail(c, SL_EINVAL, "normalizer without a type");
    if (!strcmp(type, "Sequence")) {
        json_t *arr = json_object_get(o, "normalizers");
        if (!json_is_array(arr) || depth > 4) return fail(c, SL_EINVAL, "normalizer Sequence without a list");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            int rc = load_norm(c, t, json_array_get(arr, i), depth + 1);
            if (rc) return rc;
        }
        return 0;
    }
    tok_norm *nv = realloc(t->norm, (t->n_norm + 1) * sizeof *nv);
    if (!nv) return fail(c, SL_ENOMEM, "out of memory");
    t->norm = nv;
    tok_norm *n = &t->norm[t->n_norm];
    memset(n, 0, sizeof *n);
    if (!strcmp(type, "NFC")) n->type = NORM_NFC;
    else if (!strcmp(type, "NFD")) n->type = NORM_NFD;
    else if (!strcmp(type, "NFKC")) n->type = NORM_NFKC;
    else if (!strcmp(type, "NFKD")) n->type = NORM_NFKD;
    else if (!strcmp(type, "Prepend")) {
        json_t *p = json_object_get(o, "prepend");
        if (!json_is_string(p)) return fail(c, SL_EINVAL, "Prepend normalizer without a string");
        n->type = NORM_PREPEND;
        n->alen = json_string_length(p);
        if (!(n->a = dupn(json_string_value(p), n->alen))) return fail(c, SL_ENOMEM, "out of memory");
    } else if (!strcmp(type, "Replace")) {
        const char *s;
        size_t sl;
        int is_re;
        int rc = pattern_of(c, o, &s, &sl, &is_re);
        if (rc) return rc;
        if (is_re) return fail(c, SL_EUNSUPPORTED, "Replace normalizer with a Regex pattern is not supported");
        json_t *ct = json_object_get(o, "content");
        if (!json_is_string(ct) || sl == 0) return fail(c, SL_EINVAL, "Replace normalizer needs a non-empty pattern and a content");
        n->type = NORM_REPLACE;
        n->alen = sl;
        n->blen = json_string_length(ct);
        if (!(n->a = dupn(s, sl)) || !(n->b = dupn(json_string_value(ct), n->blen))) {
            t->n_norm++;
            return fail(c, SL_ENOMEM, "out of memory");
        }
    } else {
        return fail(c, SL_EUNSUPPORTED, "normalizer type \"%.40s\" is not supported", type);
    }
    t->n_norm++;
    return 0;
}

static int load_pre(lctx *c, sl_tokenizer *t, json_t *o, int depth) {
    if (!o || json_is_null(o)) return 0;
    const char *type = jstr(o, "type");
    if (!json_is_object(o) || !type) return fail(c, SL_EINVAL, "pre_tokenizer without a type");
    if (!strcmp(type, "Sequence")) {
        json_t *arr = json_object_get(o, "pretokenizers");
        if (!json_is_array(arr) || depth > 4) return fail(c, SL_EINVAL, "pre_tokenizer Sequence without a list");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            int rc = load_pre(c, t, json_array_get(arr, i), depth + 1);
            if (rc) return rc;
        }
        return 0;
    }
    if (t->byte_level)
        return fail(c, SL_EUNSUPPORTED, "pre_tokenizer \"%.40s\" after ByteLevel is not supported", type);
    tok_pre *pv = realloc(t->pre, (t->n_pre + 1) * sizeof *pv);
    if (!pv) return fail(c, SL_ENOMEM, "out of memory");
    t->pre = pv;
    tok_pre *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    int rc;
    if (!strcmp(type, "Split")) {
        const char *s;
        size_t sl;
        int is_re;
        if ((rc = pattern_of(c, o, &s, &sl, &is_re))) return rc;
        const char *beh = jstr(o, "behavior");
        if (!beh) return fail(c, SL_EINVAL, "Split without a behavior");
        if (!strcmp(beh, "Removed")) p->behavior = SPLIT_REMOVED;
        else if (!strcmp(beh, "Isolated")) p->behavior = SPLIT_ISOLATED;
        else if (!strcmp(beh, "MergedWithPrevious")) p->behavior = SPLIT_MERGED_PREV;
        else if (!strcmp(beh, "MergedWithNext")) p->behavior = SPLIT_MERGED_NEXT;
        else if (!strcmp(beh, "Contiguous")) p->behavior = SPLIT_CONTIGUOUS;
        else return fail(c, SL_EINVAL, "Split behavior \"%.40s\" unknown", beh);
        p->invert = jbool(o, "invert", 0);
        if ((rc = compile_re(c, s, sl, !is_re, &p->re))) return rc;
        p->type = PRE_SPLIT;
    } else if (!strcmp(type, "ByteLevel")) {
        p->type = PRE_BYTELEVEL;
        p->behavior = SPLIT_ISOLATED;
        p->add_prefix_space = jbool(o, "add_prefix_space", 1);
        if (jbool(o, "use_regex", 1) && (rc = compile_re(c, GPT2_RE, sizeof GPT2_RE - 1, 0, &p->re))) return rc;
        t->byte_level = 1;
    } else {
        return fail(c, SL_EUNSUPPORTED, "pre_tokenizer type \"%.40s\" is not supported", type);
    }
    t->n_pre++;
    return 0;
}

static int load_dec(lctx *c, sl_tokenizer *t, json_t *o, int depth) {
    if (!o || json_is_null(o)) return 0;
    const char *type = jstr(o, "type");
    if (!json_is_object(o) || !type) return fail(c, SL_EINVAL, "decoder without a type");
    t->has_decoder = 1;
    if (!strcmp(type, "Sequence")) {
        json_t *arr = json_object_get(o, "decoders");
        if (!json_is_array(arr) || depth > 4) return fail(c, SL_EINVAL, "decoder Sequence without a list");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            int rc = load_dec(c, t, json_array_get(arr, i), depth + 1);
            if (rc) return rc;
        }
        return 0;
    }
    tok_dec *dv = realloc(t->dec, (t->n_dec + 1) * sizeof *dv);
    if (!dv) return fail(c, SL_ENOMEM, "out of memory");
    t->dec = dv;
    tok_dec *d = &t->dec[t->n_dec];
    memset(d, 0, sizeof *d);
    if (!strcmp(type, "ByteLevel")) d->type = DEC_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) d->type = DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d->type = DEC_FUSE;
    else if (!strcmp(type, "Strip")) {
        json_t *ct = json_object_get(o, "content"), *st = json_object_get(o, "start"), *sp = json_object_get(o, "stop");
        if (!json_is_string(ct) || !json_is_integer(st) || !json_is_integer(sp) || json_integer_value(st) < 0 ||
            json_integer_value(sp) < 0 || json_integer_value(st) > 1000 || json_integer_value(sp) > 1000)
            return fail(c, SL_EINVAL, "Strip decoder needs content, start and stop");
        d->type = DEC_STRIP;
        d->alen = json_string_length(ct);
        d->start = (int)json_integer_value(st);
        d->stop = (int)json_integer_value(sp);
        t->n_dec++;
        if (!(d->a = dupn(json_string_value(ct), d->alen))) return fail(c, SL_ENOMEM, "out of memory");
        return 0;
    } else if (!strcmp(type, "Replace")) {
        const char *s;
        size_t sl;
        int is_re, rc;
        if ((rc = pattern_of(c, o, &s, &sl, &is_re))) return rc;
        if (is_re) return fail(c, SL_EUNSUPPORTED, "Replace decoder with a Regex pattern is not supported");
        json_t *ct = json_object_get(o, "content");
        if (!json_is_string(ct) || sl == 0) return fail(c, SL_EINVAL, "Replace decoder needs a pattern and a content");
        d->type = DEC_REPLACE;
        d->alen = sl;
        d->blen = json_string_length(ct);
        t->n_dec++;
        if (!(d->a = dupn(s, sl)) || !(d->b = dupn(json_string_value(ct), d->blen)))
            return fail(c, SL_ENOMEM, "out of memory");
        return 0;
    } else {
        return fail(c, SL_EUNSUPPORTED, "decoder type \"%.40s\" is not supported", type);
    }
    t->n_dec++;
    return 0;
}

/* ------------------------------------------------------------ finishing */

static sl_tokenizer *tok_new(void) {
    sl_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->unk_id = t->bos = t->eos = t->pad = -1;
    for (int i = 0; i < TOK_CACHE_SHARDS; i++) pthread_mutex_init(&t->cache[i].mu, NULL);
    tok_bytelevel_init(t);
    return t;
}

void sl_tokenizer_free(sl_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; t->mtok && i < t->n_model; i++) free(t->mtok[i]);
    free(t->mtok);
    free(t->mlen);
    free(t->vocab.slot);
    free(t->merges);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->added_by_id);
    free(t->added_by_first);
    for (size_t i = 0; i < t->n_norm; i++) { free(t->norm[i].a); free(t->norm[i].b); }
    free(t->norm);
    for (size_t i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
    free(t->pre);
    for (size_t i = 0; i < t->n_dec; i++) { free(t->dec[i].a); free(t->dec[i].b); }
    free(t->dec);
    free(t->chat_template);
    for (int i = 0; i < TOK_CACHE_SHARDS; i++) {
        pthread_mutex_destroy(&t->cache[i].mu);
        free(t->cache[i].ent);
    }
    free(t);
}

static int32_t find_token(const sl_tokenizer *t, const char *s) {
    if (!s) return -1;
    size_t len = strlen(s);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && !memcmp(t->added[i].content, s, len)) return t->added[i].id;
    return tok_map_get(t, s, len);
}

/* May a BPE word be cut before every "\u2581" (SentencePiece's space mark,
 * bytes E2 96 81) that does not follow another one, and each part be merged
 * on its own? tokenizer.c (bpe_word) explains why that gives the very ids of
 * merging the whole word when this holds:
 *   - merges are not ignored (ignore_merges looks whole words up first);
 *   - the mark is a vocab token (so it is never unk, never fused with an
 *     unk before it, never broken into byte-fallback pieces);
 *   - the unk token's string does not end with the mark;
 *   - no vocab token has the mark's bytes at an offset > 0 unless the three
 *     bytes before them are the mark too ("a▁b" or "\n▁" would refuse it,
 *     "▁▁▁" is fine).
 * A scan of every vocab token once, at load. */
static int split_mark_ok(const sl_tokenizer *t) {
    static const char mark[3] = {(char)0xE2, (char)0x96, (char)0x81};
    if (t->ignore_merges || t->n_model <= 0) return 0;
    if (tok_map_get(t, mark, 3) < 0) return 0;
    if (t->unk_id >= 0 && t->unk_id < t->n_model && t->mtok[t->unk_id]) {
        uint32_t ul = t->mlen[t->unk_id];
        if (ul >= 3 && !memcmp(t->mtok[t->unk_id] + ul - 3, mark, 3)) return 0;
    }
    for (int32_t id = 0; id < t->n_model; id++) {
        const char *s = t->mtok[id];
        if (!s) continue;
        uint32_t n = t->mlen[id];
        for (uint32_t i = 1; i + 3 <= n; i++) {
            if (s[i] != mark[0] || memcmp(s + i, mark, 3)) continue;
            if (i < 3 || memcmp(s + i - 3, mark, 3)) return 0;
        }
    }
    return 1;
}

static int finish(lctx *c, sl_tokenizer *t) {
    int32_t n = t->n_model;
    for (size_t i = 0; i < t->n_added; i++) {
        if (t->added[i].id >= n) n = t->added[i].id + 1;
        if (t->added[i].normalized && t->n_norm) t->has_norm_added = 1;
        else t->has_raw_added = 1;
    }
    t->n_ids = n;
    t->added_by_id = malloc((size_t)n * sizeof *t->added_by_id);
    if (!t->added_by_id) return fail(c, SL_ENOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++) t->added_by_id[i] = -1;
    for (size_t i = 0; i < t->n_added; i++) t->added_by_id[t->added[i].id] = (int32_t)i;
    /* index of the added tokens by first byte, so that the scan for them
     * costs one table look-up per byte of text */
    t->added_by_first = malloc((t->n_added + 1) * sizeof *t->added_by_first);
    if (!t->added_by_first) return fail(c, SL_ENOMEM, "out of memory");
    memset(t->first_off, 0, sizeof t->first_off);
    for (size_t i = 0; i < t->n_added; i++) t->first_off[(unsigned char)t->added[i].content[0] + 1]++;
    for (int b = 0; b < 256; b++) t->first_off[b + 1] += t->first_off[b];
    uint32_t fill[256];
    memcpy(fill, t->first_off, sizeof fill);
    for (size_t i = 0; i < t->n_added; i++) t->added_by_first[fill[(unsigned char)t->added[i].content[0]]++] = (int32_t)i;
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        t->byte_ids[b] = tok_map_get(t, s, 6);
    }
    t->split_mark = split_mark_ok(t);
    return 0;
}

/* tokenizer_config.json's token fields are a string, an AddedToken object
 * {"content": ...}, or null. */
static const char *cfg_token(json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return jstr(v, "content");
    return NULL;
}

static void guess_specials(sl_tokenizer *t) {
    static const char *bos[] = {"<|begin_of_text|>", "<s>"};
    static const char *eos[] = {"<|end_of_text|>", "</s>", "<|endoftext|>"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bos) && t->bos < 0; i++) t->bos = find_token(t, bos[i]);
    for (size_t i = 0; i < SL_ARRAY_LEN(eos) && t->eos < 0; i++) t->eos = find_token(t, eos[i]);
}

static int load_config(lctx *c, sl_tokenizer *t, const char *path) {
    int rc = 0;
    lctx cc = *c;
    cc.file = path;
    /* model_max_length is often 1e30 written as an integer */
    json_t *cfg = load_json(&cc, path, JSON_DECODE_INT_AS_REAL, &rc);
    if (!cfg) return rc;
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return fail(&cc, SL_EINVAL, "not a JSON object");
    }
    const char *b = cfg_token(cfg, "bos_token"), *e = cfg_token(cfg, "eos_token"), *p = cfg_token(cfg, "pad_token");
    t->bos = find_token(t, b);
    t->eos = find_token(t, e);
    t->pad = find_token(t, p);
    json_t *tpl = json_object_get(cfg, "chat_template");
    if (json_is_string(tpl)) {
        t->chat_template = dupn(json_string_value(tpl), json_string_length(tpl));
    } else if (json_is_array(tpl)) { /* [{"name": "default", "template": ...}, ...] */
        for (size_t i = 0; i < json_array_size(tpl) && !t->chat_template; i++) {
            json_t *o = json_array_get(tpl, i);
            const char *nm = jstr(o, "name"), *tx = jstr(o, "template");
            if (tx && (!nm || !strcmp(nm, "default"))) t->chat_template = dupn(tx, strlen(tx));
        }
    }
    json_decref(cfg);
    return 0;
}

static int load_tokenizer_json(lctx *c, sl_tokenizer *t, const char *path, const char *cfg_path) {
    int rc = 0;
    json_t *root = load_json(c, path, 0, &rc);
    if (!root) return rc;
    if (!json_is_object(root)) rc = fail(c, SL_EINVAL, "not a JSON object");
    if (!rc) rc = load_model(c, t, json_object_get(root, "model"));
    if (!rc) rc = load_added(c, t, json_object_get(root, "added_tokens"));
    if (!rc) rc = load_norm(c, t, json_object_get(root, "normalizer"), 0);
    if (!rc) rc = load_pre(c, t, json_object_get(root, "pre_tokenizer"), 0);
    if (!rc) rc = load_dec(c, t, json_object_get(root, "decoder"), 0);
    if (!rc) rc = finish(c, t);
    json_decref(root);
    if (rc) return rc;
    t->kind = t->byte_level ? "tokenizer.json (byte-level BPE)" : "tokenizer.json (BPE)";
    if (cfg_path && exists(cfg_path)) {
        if ((rc = load_config(c, t, cfg_path))) return rc;
    } else {
        guess_specials(t);
    }
    return 0;
}

/* -------------------------------------------------------------- GPT-2 */

static int load_gpt2(lctx *c, sl_tokenizer *t, const char *enc_path, const char *bpe_path) {
    int rc = 0;
    c->file = enc_path;
    json_t *enc = load_json(c, enc_path, 0, &rc);
    if (!enc) return rc;
    rc = load_vocab_obj(c, t, enc);
    json_decref(enc);
    if (rc) return rc;
    c->file = bpe_path;
    FILE *f = fopen(bpe_path, "rb");
    if (!f) return fail(c, errno == ENOENT ? SL_ENOENT : SL_EIO, "cannot open: %s", strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t nlines = 0;
    while ((len = getline(&buf, &cap, f)) >= 0) nlines++;
    rewind(f);
    if ((rc = alloc_merges(c, t, nlines))) goto out;
    uint32_t rank = 0;
    size_t lineno = 0;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
        if (len == 0 || (lineno == 1 && !strncmp(buf, "#version", 8))) continue;
        char *sp = memchr(buf, ' ', (size_t)len);
        if (!sp || memchr(sp + 1, ' ', (size_t)(len - (sp + 1 - buf)))) {
            rc = fail(c, SL_EINVAL, "line %zu is not two tokens separated by one space", lineno);
            goto out;
        }
        if ((rc = add_merge(c, t, buf, (size_t)(sp - buf), sp + 1, (size_t)(len - (sp + 1 - buf)), rank++))) goto out;
    }
    /* GPT-2 as Hugging Face ships it: ByteLevel pre-tokenizer with the
     * GPT-2 regex and no prefix space, ByteLevel decoder, and
     * <|endoftext|> as a special added token. */
    t->pre = calloc(1, sizeof *t->pre);
    t->dec = calloc(1, sizeof *t->dec);
    t->added = calloc(1, sizeof *t->added);
    if (!t->pre || !t->dec || !t->added) { rc = fail(c, SL_ENOMEM, "out of memory"); goto out; }
    t->pre[0].type = PRE_BYTELEVEL;
    t->pre[0].behavior = SPLIT_ISOLATED;
    t->n_pre = 1;
    if ((rc = compile_re(c, GPT2_RE, sizeof GPT2_RE - 1, 0, &t->pre[0].re))) goto out;
    t->byte_level = 1;
    t->dec[0].type = DEC_BYTELEVEL;
    t->n_dec = 1;
    t->has_decoder = 1;
    int32_t eot = tok_map_get(t, "<|endoftext|>", 13);
    if (eot >= 0) {
        if (!(t->added[0].content = dupn("<|endoftext|>", 13))) { rc = fail(c, SL_ENOMEM, "out of memory"); goto out; }
        t->added[0].len = 13;
        t->added[0].id = eot;
        t->added[0].special = 1;
        t->added[0].normalized = 1;
        t->n_added = 1;
    }
    if ((rc = finish(c, t))) goto out;
    t->bos = t->eos = eot;
    t->kind = "gpt2 encoder.json + vocab.bpe";
out:
    free(buf);
    fclose(f);
    return rc;
}

/* --------------------------------------------------------------- public */

static void path_join(char *out, size_t n, const char *dir, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

int sl_tokenizer_load_gpt2(const char *encoder_json, const char *vocab_bpe, sl_tokenizer **out, char *err,
                           size_t errlen) {
    lctx c = {err, errlen, encoder_json};
    if (err && errlen) err[0] = 0;
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!encoder_json || !vocab_bpe) return fail(&c, SL_EINVAL, "NULL path");
    sl_tokenizer *t = tok_new();
    if (!t) return fail(&c, SL_ENOMEM, "out of memory");
    int rc = load_gpt2(&c, t, encoder_json, vocab_bpe);
    if (rc) {
        sl_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int sl_tokenizer_load(const char *path, sl_tokenizer **out, char *err, size_t errlen) {
    lctx c = {err, errlen, path};
    if (err && errlen) err[0] = 0;
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!path) return fail(&c, SL_EINVAL, "NULL path");
    char a[4096], b[4096];
    if (strlen(path) > 4000) return fail(&c, SL_EINVAL, "path too long");
    if (is_dir(path)) {
        path_join(a, sizeof a, path, "tokenizer.json");
        if (exists(a)) {
            path_join(b, sizeof b, path, "tokenizer_config.json");
            goto tj;
        }
        path_join(a, sizeof a, path, "encoder.json");
        path_join(b, sizeof b, path, "vocab.bpe");
        if (exists(a) && exists(b)) return sl_tokenizer_load_gpt2(a, b, out, err, errlen);
        return fail(&c, SL_ENOENT, "no tokenizer.json nor encoder.json + vocab.bpe in this folder");
    }
    if (!exists(path)) return fail(&c, SL_ENOENT, "no such file");
    {
        const char *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        size_t dl = (size_t)(base - path);
        if (!strcmp(base, "encoder.json") || !strcmp(base, "vocab.bpe")) {
            snprintf(a, sizeof a, "%.*sencoder.json", (int)dl, path);
            snprintf(b, sizeof b, "%.*svocab.bpe", (int)dl, path);
            return sl_tokenizer_load_gpt2(a, b, out, err, errlen);
        }
        snprintf(a, sizeof a, "%s", path);
        snprintf(b, sizeof b, "%.*stokenizer_config.json", (int)dl, path);
    }
tj:;
    sl_tokenizer *t = tok_new();
    if (!t) return fail(&c, SL_ENOMEM, "out of memory");
    c.file = a;
    int rc = load_tokenizer_json(&c, t, a, b);
    if (rc) {
        sl_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}
