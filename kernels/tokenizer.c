/*
 * tokenizer.c — encode and decode with a loaded BPE tokenizer (loading is
 * in tok_load.c). The pipeline is the one of Hugging Face `tokenizers`,
 * step for step, so that the ids agree exactly:
 *
 *   text -> added tokens split out (leftmost-longest) -> normalizers on each
 *   remaining segment -> pre-tokenizers (regex splits, byte-level mapping)
 *   -> BPE on each piece (merge ranks in a hash table, a binary heap over
 *   the candidate pairs, like tokenizers' Word::merge_all) -> ids.
 *
 * It is not a training or offsets implementation: no alignments, no
 * truncation/padding, no post-processor (nothing is added around the ids).
 */
#include "tok_internal.h"

#include "base.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>
#include <xxhash.h>

/* ------------------------------------------------------------ buffers */

typedef struct idvec {
    int32_t *v;
    size_t n, cap;
} idvec;

static int ids_push(idvec *a, int32_t id) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        int32_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return SL_ENOMEM;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = id;
    return 0;
}

typedef struct sbuf {
    char *v;
    size_t n, cap;
} sbuf;

static int sb_reserve(sbuf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 64;
    while (nc < b->n + extra + 1) nc *= 2;
    char *nv = realloc(b->v, nc);
    if (!nv) return SL_ENOMEM;
    b->v = nv;
    b->cap = nc;
    return 0;
}

static int sb_add(sbuf *b, const void *p, size_t n) {
    if (sb_reserve(b, n)) return SL_ENOMEM;
    if (n) memcpy(b->v + b->n, p, n);
    b->n += n;
    b->v[b->n] = 0;
    return 0;
}

typedef struct piece {
    const char *p;
    size_t len;
} piece;

typedef struct pvec {
    piece *v;
    size_t n, cap;
} pvec;

static int pv_push(pvec *a, const char *p, size_t len) {
    if (len == 0) return 0; /* tokenizers drops empty splits */
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 32;
        piece *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return SL_ENOMEM;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n].p = p;
    a->v[a->n].len = len;
    a->n++;
    return 0;
}

/* Strings made during one encode call (prefix spaces, normalized text). */
typedef struct arena {
    char **s;
    size_t n, cap;
} arena;

static char *arena_keep(arena *a, char *s) {
    if (!s) return NULL;
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 8;
        char **nv = realloc(a->s, nc * sizeof *nv);
        if (!nv) {
            free(s);
            return NULL;
        }
        a->s = nv;
        a->cap = nc;
    }
    return a->s[a->n++] = s;
}

static void arena_fini(arena *a) {
    for (size_t i = 0; i < a->n; i++) free(a->s[i]);
    free(a->s);
}

/* --------------------------------------------------------------- UTF-8 */

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 when s starts
 * an ill-formed one; *bad gets the length of its maximal subpart (what one
 * U+FFFD replaces, the rule Rust's from_utf8_lossy and Python follow). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
    unsigned c = s[0];
    *bad = 1;
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) { need = 2; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) need = 2;
    else if (c == 0xED) { need = 2; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) need = 2;
    else if (c == 0xF0) { need = 3; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) { need = 3; hi = 0x8F; }
    else return 0;
    for (size_t i = 1; i <= need; i++) {
        if (i >= n) { *bad = i; return 0; }
        unsigned b = s[i];
        unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) { *bad = i; return 0; }
    }
    return need + 1;
}

static int utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, bad;
    while (i < n) {
        if (u[i] < 0x80) { i++; continue; }
        size_t k = utf8_seq(u + i, n - i, &bad);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* Append s[0..n) to b with ill-formed sequences replaced by U+FFFD. */
static int utf8_lossy(sbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, start = 0, bad;
    while (i < n) {
        if (u[i] < 0x80) { i++; continue; }
        size_t k = utf8_seq(u + i, n - i, &bad);
        if (k) { i += k; continue; }
        if (sb_add(b, s + start, i - start) || sb_add(b, "\xEF\xBF\xBD", 3)) return SL_ENOMEM;
        i += bad;
        start = i;
    }
    return sb_add(b, s + start, n - start);
}

static size_t utf8_len1(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* ---------------------------------------------------------- normalizers */

static int replace_all(sbuf *out, const char *s, size_t n, const char *a, size_t al, const char *b, size_t bl) {
    size_t i = 0, start = 0;
    while (i + al <= n) {
        if (s[i] == a[0] && !memcmp(s + i, a, al)) {
            if (sb_add(out, s + start, i - start) || sb_add(out, b, bl)) return SL_ENOMEM;
            i += al;
            start = i;
        } else {
            i++;
        }
    }
    return sb_add(out, s + start, n - start);
}

/* Run the normalizer chain on s[0..n); the result is kept in `ar`. */
static int normalize(const sl_tokenizer *t, arena *ar, const char **s, size_t *n) {
    for (size_t k = 0; k < t->n_norm; k++) {
        const tok_norm *nm = &t->norm[k];
        sbuf o = {0};
        int rc = 0;
        switch (nm->type) {
        case NORM_NFC: case NORM_NFD: case NORM_NFKC: case NORM_NFKD: {
            if (*n == 0) continue;
            size_t j = 0; /* ASCII is unchanged by every normalization form */
            while (j < *n && (unsigned char)(*s)[j] < 0x80) j++;
            if (j == *n) continue;
            int opts = UTF8PROC_STABLE;
            opts |= (nm->type == NORM_NFC || nm->type == NORM_NFKC) ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
            if (nm->type == NORM_NFKC || nm->type == NORM_NFKD) opts |= UTF8PROC_COMPAT;
            utf8proc_uint8_t *dst = NULL;
            utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)*s, (utf8proc_ssize_t)*n, &dst,
                                              (utf8proc_option_t)opts);
            if (r < 0) return r == UTF8PROC_ERROR_NOMEM ? SL_ENOMEM : SL_EINVAL;
            if (!arena_keep(ar, (char *)dst)) return SL_ENOMEM;
            *s = (const char *)dst;
            *n = (size_t)r;
            continue;
        }
        case NORM_PREPEND:
            if (*n == 0) continue;
            rc = sb_add(&o, nm->a, nm->alen);
            if (!rc) rc = sb_add(&o, *s, *n);
            break;
        case NORM_REPLACE:
            rc = replace_all(&o, *s, *n, nm->a, nm->alen, nm->b, nm->blen);
            break;
        default:
            continue;
        }
        if (rc) {
            free(o.v);
            return rc;
        }
        if (!o.v && sb_add(&o, "", 0)) return SL_ENOMEM;
        if (!arena_keep(ar, o.v)) return SL_ENOMEM;
        *s = o.v;
        *n = o.n;
    }
    return 0;
}

/* ------------------------------------------------------- regex splitting */

typedef struct span {
    size_t a, b;
    int match;
} span;

typedef struct spvec {
    span *v;
    size_t n, cap;
} spvec;

static int sp_push(spvec *s, size_t a, size_t b, int match) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        span *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) return SL_ENOMEM;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n].a = a;
    s->v[s->n].b = b;
    s->v[s->n].match = match;
    s->n++;
    return 0;
}

/* All matches of re in p[0..len) and the gaps between them, in order
 * (tokenizers' Pattern::find_matches for a regex). */
static int find_matches(const pcre2_code *re, pcre2_match_data *md, const char *p, size_t len, spvec *out) {
    out->n = 0;
    size_t prev = 0, at = 0;
    while (at <= len) {
        int r = pcre2_match(re, (PCRE2_SPTR)p, len, at, PCRE2_NO_UTF_CHECK, md, NULL);
        if (r == PCRE2_ERROR_JIT_STACKLIMIT)
            r = pcre2_match(re, (PCRE2_SPTR)p, len, at, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (r == PCRE2_ERROR_NOMATCH) break;
        if (r < 0) return r == PCRE2_ERROR_NOMEMORY ? SL_ENOMEM : SL_EINVAL;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms > len || me > len || me < ms) return SL_EINVAL;
        if (prev != ms && sp_push(out, prev, ms, 0)) return SL_ENOMEM;
        if (sp_push(out, ms, me, 1)) return SL_ENOMEM;
        prev = me;
        if (me == ms) { /* empty match: step over one character */
            if (me >= len) break;
            at = me + utf8_len1((unsigned char)p[me]);
        } else {
            at = me;
        }
    }
    if (prev != len && sp_push(out, prev, len, 0)) return SL_ENOMEM;
    return 0;
}

/* Apply a split behaviour (tokenizers' SplitDelimiterBehavior). */
static int split_piece(const tok_pre *pr, pcre2_match_data *md, piece pc, spvec *sp, pvec *out) {
    int rc = find_matches(pr->re, md, pc.p, pc.len, sp);
    if (rc) return rc;
    if (pr->invert)
        for (size_t i = 0; i < sp->n; i++) sp->v[i].match = !sp->v[i].match;
    size_t w = 0;
    int prevm = 0;
    switch (pr->behavior) {
    case SPLIT_ISOLATED:
        w = sp->n;
        break;
    case SPLIT_REMOVED:
        for (size_t i = 0; i < sp->n; i++)
            if (!sp->v[i].match) sp->v[w++] = sp->v[i];
        break;
    case SPLIT_MERGED_PREV:
        for (size_t i = 0; i < sp->n; i++) {
            int m = sp->v[i].match;
            if (m && !prevm && w > 0) sp->v[w - 1].b = sp->v[i].b;
            else sp->v[w++] = sp->v[i];
            prevm = m;
        }
        break;
    case SPLIT_MERGED_NEXT: {
        /* fold from the right, then reverse back */
        spvec r = {0};
        for (size_t k = sp->n; k-- > 0;) {
            int m = sp->v[k].match;
            if (m && !prevm && r.n > 0) r.v[r.n - 1].a = sp->v[k].a;
            else if (sp_push(&r, sp->v[k].a, sp->v[k].b, m)) { free(r.v); return SL_ENOMEM; }
            prevm = m;
        }
        for (size_t k = 0; k < r.n; k++) sp->v[k] = r.v[r.n - 1 - k];
        w = r.n;
        free(r.v);
        break;
    }
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < sp->n; i++) {
            int m = sp->v[i].match;
            if (i > 0 && m == prevm && w > 0) sp->v[w - 1].b = sp->v[i].b;
            else sp->v[w++] = sp->v[i];
            prevm = m;
        }
        break;
    }
    for (size_t i = 0; i < w; i++)
        if (pv_push(out, pc.p + sp->v[i].a, sp->v[i].b - sp->v[i].a)) return SL_ENOMEM;
    return 0;
}

/* ------------------------------------------------------------------ BPE */

typedef struct sym {
    int32_t id;
    int32_t prev, next;
    uint32_t len;
} sym;

typedef struct hent {
    uint32_t rank;
    uint32_t pos;
    int32_t new_id;
    int32_t left, right; /* the pair it was pushed for */
} hent;

static int hless(const hent *a, const hent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void hpush(hent *h, size_t *n, hent e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static hent hpop(hent *h, size_t *n) {
    hent top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= m) break;
        size_t c = (l + 1 < m && hless(&h[l + 1], &h[l])) ? l + 1 : l;
        if (!hless(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static int sym_add(sym *s, size_t *n, int32_t id, uint32_t len) {
    size_t i = (*n)++;
    s[i].id = id;
    s[i].len = len;
    s[i].prev = (int32_t)i - 1;
    s[i].next = -1;
    if (i > 0) s[i - 1].next = (int32_t)i;
    return 0;
}

/* tokenizers' BPE::merge_word + Word::merge_all on the model string w. */
static int bpe_merge(const sl_tokenizer *t, const char *w, size_t wl, idvec *out) {
    /* at most one symbol per byte; the heap holds at most the initial
     * pairs plus two per merge, < 3 symbols' worth */
    sym sbuf_[128];
    hent hbuf_[3 * 128 + 1];
    sym *s = wl <= 128 ? sbuf_ : malloc(wl * sizeof *s);
    hent *h = wl <= 128 ? hbuf_ : malloc((3 * wl + 1) * sizeof *h);
    int rc = 0;
    if (!s || !h) { rc = SL_ENOMEM; goto out; }
    size_t ns = 0;
    int32_t unk_pending = -1;
    uint32_t unk_len = 0;
    const unsigned char *u = (const unsigned char *)w;
    for (size_t i = 0; i < wl;) {
        size_t cl = utf8_len1(u[i]);
        if (i + cl > wl) cl = wl - i;
        int32_t id = tok_map_get(t, w + i, cl);
        if (id >= 0) {
            if (unk_pending >= 0) { sym_add(s, &ns, unk_pending, unk_len); unk_pending = -1; }
            sym_add(s, &ns, id, (uint32_t)cl);
        } else {
            int done = 0;
            if (t->byte_fallback) {
                int all = 1;
                for (size_t k = 0; k < cl; k++) all &= t->byte_ids[u[i + k]] >= 0;
                if (all) {
                    for (size_t k = 0; k < cl; k++) sym_add(s, &ns, t->byte_ids[u[i + k]], 1);
                    done = 1;
                }
            }
            if (!done && t->unk_id >= 0) {
                if (unk_pending >= 0 && t->fuse_unk) {
                    unk_len += (uint32_t)cl;
                } else {
                    if (unk_pending >= 0) sym_add(s, &ns, unk_pending, unk_len);
                    unk_pending = t->unk_id;
                    unk_len = (uint32_t)cl;
                }
            }
        }
        i += cl;
    }
    if (unk_pending >= 0) sym_add(s, &ns, unk_pending, unk_len);

    size_t nh = 0;
    uint32_t rank;
    int32_t nid;
    for (size_t i = 0; i + 1 < ns; i++)
        if (tok_merge_get(t, s[i].id, s[i + 1].id, &rank, &nid))
            hpush(h, &nh, (hent){rank, (uint32_t)i, nid, s[i].id, s[i + 1].id});
    while (nh) {
        hent top = hpop(h, &nh);
        sym *cur = &s[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        sym *right = &s[cur->next];
        /* Stale entry? tokenizers looks the current pair up again and
         * compares new ids. The string a pair spells at a position only
         * grows as merges happen, so "same new id" is "same pair": compare
         * the ids it was pushed for and save the look-up. */
        if (cur->id != top.left || right->id != top.right) continue;
        int32_t rnext = right->next;
        cur->id = top.new_id;
        cur->len += right->len;
        cur->next = rnext;
        right->len = 0;
        if (rnext >= 0) s[rnext].prev = (int32_t)top.pos;
        if (cur->prev >= 0 && tok_merge_get(t, s[cur->prev].id, cur->id, &rank, &nid))
            hpush(h, &nh, (hent){rank, (uint32_t)cur->prev, nid, s[cur->prev].id, cur->id});
        if (cur->next >= 0 && tok_merge_get(t, cur->id, s[cur->next].id, &rank, &nid))
            hpush(h, &nh, (hent){rank, top.pos, nid, cur->id, s[cur->next].id});
    }
    for (size_t i = 0; i < ns; i++)
        if (s[i].len && (rc = ids_push(out, s[i].id))) goto out;
out:
    if (s != sbuf_) free(s);
    if (h != hbuf_) free(h);
    return rc;
}

/* BPE of one word (or one part of it, see bpe_word) through the word
 * cache. */
static int bpe_cached(const sl_tokenizer *t, const char *w, size_t wl, idvec *out) {
    uint64_t hv = 0;
    tok_cache_shard *sh = NULL;
    size_t slot = 0;
    if (wl <= TOK_CACHE_MAXKEY) {
        hv = XXH3_64bits(w, wl) | 1;
        sh = (tok_cache_shard *)&t->cache[hv % TOK_CACHE_SHARDS];
        slot = (size_t)((hv >> 8) % TOK_CACHE_SLOTS);
        pthread_mutex_lock(&sh->mu);
        if (sh->ent) {
            tok_cache_ent *e = &sh->ent[slot];
            if (e->hash == hv && e->klen == wl && !memcmp(e->key, w, wl)) {
                int rc = 0;
                for (int i = 0; i < e->nids && !rc; i++) rc = ids_push(out, e->ids[i]);
                pthread_mutex_unlock(&sh->mu);
                return rc;
            }
        }
        pthread_mutex_unlock(&sh->mu);
    }
    size_t before = out->n;
    int rc = bpe_merge(t, w, wl, out);
    if (rc || !sh) return rc;
    size_t nids = out->n - before;
    if (nids > TOK_CACHE_MAXIDS) return 0;
    pthread_mutex_lock(&sh->mu);
    if (!sh->ent) sh->ent = calloc(TOK_CACHE_SLOTS, sizeof *sh->ent);
    if (sh->ent) {
        tok_cache_ent *e = &sh->ent[slot];
        e->hash = hv;
        e->klen = (uint8_t)wl;
        e->nids = (uint8_t)nids;
        memcpy(e->key, w, wl);
        memcpy(e->ids, out->v + before, nids * sizeof(int32_t));
    }
    pthread_mutex_unlock(&sh->mu);
    return 0;
}

/* BPE of one pre-token.
 *
 * Tokenizers without a pre-tokenizer (Llama 2: the normalizers turn spaces
 * into "\u2581" and that is all) hand BPE the whole text as one word, which
 * the word cache never helps. When the vocabulary passes split_mark_ok
 * (tok_load.c, checked once at load), the word is cut before each mark M
 * ("\u2581", E2 96 81) that does not follow another M, and each part is
 * merged (and cached) on its own. The ids are those of merging the whole:
 *
 *   The initial symbols are the word's UTF-8 characters (segmented as
 *   bpe_merge does, by lead byte); a character not in the vocab becomes
 *   byte-fallback "<0xXX>" symbols or an unk. We cut at a character start
 *   where the character is exactly M and the three bytes before it are not
 *   M. M is in the vocab, so at a cut the right symbol is M itself: no unk
 *   fuses across the cut and nothing there is byte-split. Each symbol spells
 *   a vocab string, and a merge (a, b) exists only if the string a.b is in
 *   the vocab (the loader refuses others). Take the first merge that would
 *   join a symbol L ending at a cut with a symbol R starting there: R's
 *   string starts with M (it starts with the character at the cut), and L's
 *   string ends with the string of the symbol for the character before the
 *   cut, which is not M and does not end with M's bytes (a plain character
 *   other than M; "<0xXX>" ends with '>'; the unk string is checked not to
 *   end with M). So L.R has M at an offset > 0 not preceded by M, and no
 *   such vocab token exists: the pair across a cut never has a merge, never
 *   enters the heap, and merges on either side never change the other side's
 *   pairs. bpe_merge pops (rank, position) minima; restricted to one part,
 *   those are the same pops in the same order as merging that part alone
 *   (positions keep their order). Hence identical symbols, identical ids.
 *   ignore_merges is excluded at load (it looks up whole words first).
 *   Text reaching here is valid UTF-8 (encode makes it so); the cut only
 *   ever lands on a character start of bpe_merge's segmentation anyway. */
static int bpe_word(const sl_tokenizer *t, const char *w, size_t wl, idvec *out) {
    if (wl == 0) return 0;
    if (t->ignore_merges) {
        int32_t id = tok_map_get(t, w, wl);
        if (id >= 0) return ids_push(out, id);
    }
    if (!t->split_mark) return bpe_cached(t, w, wl, out);
    const unsigned char *u = (const unsigned char *)w;
    size_t start = 0, i = 0;
    while (i < wl) {
        size_t cl = utf8_len1(u[i]);
        if (cl == 3 && i > start && i + 3 <= wl && u[i + 1] == 0x96 && u[i + 2] == 0x81 && u[i] == 0xE2 &&
            (i < 3 || u[i - 3] != 0xE2 || u[i - 2] != 0x96 || u[i - 1] != 0x81)) {
            int rc = bpe_cached(t, w + start, i - start, out);
            if (rc) return rc;
            start = i;
        }
        i += cl;
    }
    return bpe_cached(t, w + start, wl - start, out);
}

/* One pre-token: map to the byte-level alphabet when the file says so,
 * then BPE. */
static int bpe_piece(const sl_tokenizer *t, const char *p, size_t len, sbuf *tmp, idvec *out) {
    if (!t->byte_level) return bpe_word(t, p, len, out);
    tmp->n = 0;
    if (sb_reserve(tmp, len * 2)) return SL_ENOMEM;
    char *d = tmp->v;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)p[i];
        d[k++] = t->bl_chr[b][0];
        if (t->bl_len[b] == 2) d[k++] = t->bl_chr[b][1];
    }
    tmp->n = k;
    return bpe_word(t, d, k, out);
}

/* ------------------------------------------------------- the pipeline */

typedef struct enc_ctx {
    const sl_tokenizer *t;
    pcre2_match_data *md;
    arena ar;
    pvec a, b;
    spvec sp;
    sbuf tmp;
    idvec *out;
} enc_ctx;

/* Pre-tokenize and BPE one normalized segment. */
static int encode_normalized(enc_ctx *c, const char *s, size_t n) {
    const sl_tokenizer *t = c->t;
    c->a.n = 0;
    if (pv_push(&c->a, s, n)) return SL_ENOMEM;
    for (size_t k = 0; k < t->n_pre; k++) {
        const tok_pre *pr = &t->pre[k];
        c->b.n = 0;
        for (size_t i = 0; i < c->a.n; i++) {
            piece pc = c->a.v[i];
            if (pr->type == PRE_BYTELEVEL) {
                if (pr->add_prefix_space && pc.p[0] != ' ') {
                    char *ns = malloc(pc.len + 2);
                    if (!ns) return SL_ENOMEM;
                    ns[0] = ' ';
                    memcpy(ns + 1, pc.p, pc.len);
                    ns[pc.len + 1] = 0;
                    if (!arena_keep(&c->ar, ns)) return SL_ENOMEM;
                    pc.p = ns;
                    pc.len++;
                }
                if (!pr->re) {
                    if (pv_push(&c->b, pc.p, pc.len)) return SL_ENOMEM;
                    continue;
                }
            }
            int rc = split_piece(pr, c->md, pc, &c->sp, &c->b);
            if (rc) return rc;
        }
        pvec x = c->a;
        c->a = c->b;
        c->b = x;
    }
    for (size_t i = 0; i < c->a.n; i++) {
        int rc = bpe_piece(t, c->a.v[i].p, c->a.v[i].len, &c->tmp, c->out);
        if (rc) return rc;
    }
    return 0;
}

static int is_ws(const char *s, size_t n, size_t i, size_t *cl) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
    *cl = r > 0 ? (size_t)r : 1;
    if (r <= 0) return 0;
    if (cp == ' ' || (cp >= 9 && cp <= 13) || cp == 0x85) return 1;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

static int is_word_cp(utf8proc_int32_t cp) {
    if (cp == '_') return 1;
    utf8proc_category_t c = utf8proc_category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

static int cp_before(const char *s, size_t i, utf8proc_int32_t *cp) {
    if (i == 0) return 0;
    size_t j = i - 1;
    while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
    return utf8proc_iterate((const utf8proc_uint8_t *)s + j, (utf8proc_ssize_t)(i - j), cp) > 0;
}

/* Longest added token (of the set normalized == want_norm) starting at s+i;
 * -1 if none. */
static int added_at(const sl_tokenizer *t, const char *s, size_t n, size_t i, int want_norm) {
    int best = -1;
    uint32_t blen = 0;
    unsigned char c0 = (unsigned char)s[i];
    for (uint32_t g = t->first_off[c0]; g < t->first_off[c0 + 1]; g++) {
        size_t k = (size_t)t->added_by_first[g];
        const tok_added *a = &t->added[k];
        int isnorm = a->normalized && t->n_norm;
        if (isnorm != want_norm || a->len > n - i || a->len <= blen) continue;
        if (memcmp(a->content, s + i, a->len)) continue;
        if (a->single_word) {
            utf8proc_int32_t cp;
            if (cp_before(s, i, &cp) && is_word_cp(cp)) continue;
            if (i + a->len < n &&
                utf8proc_iterate((const utf8proc_uint8_t *)s + i + a->len, (utf8proc_ssize_t)(n - i - a->len), &cp) > 0 &&
                is_word_cp(cp))
                continue;
        }
        best = (int)k;
        blen = a->len;
    }
    return best;
}

static int encode_gap(enc_ctx *c, const char *s, size_t n);

/* Split s on the added tokens of one pass (pass 0: not normalized, on the
 * raw text; pass 1: normalized ones, on normalized text), like
 * AddedVocabulary::extract_and_normalize; the gaps go on. */
static int encode_segment(enc_ctx *c, const char *s, size_t n, int pass) {
    const sl_tokenizer *t = c->t;
    int have = pass == 0 ? t->has_raw_added : t->has_norm_added;
    size_t gap = 0, i = 0;
    int rc;
    while (have && i < n) {
        unsigned char c0 = (unsigned char)s[i];
        if (t->first_off[c0] == t->first_off[c0 + 1]) {
            i++; /* no added token starts with this byte (continuation bytes included) */
            continue;
        }
        int k = added_at(t, s, n, i, pass);
        if (k < 0) {
            i += utf8_len1((unsigned char)s[i]);
            continue;
        }
        const tok_added *a = &t->added[k];
        size_t ms = i, me = i + a->len, cl;
        if (a->lstrip)
            while (ms > gap) {
                size_t j = ms - 1;
                while (j > gap && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
                if (!is_ws(s, n, j, &cl)) break;
                ms = j;
            }
        if (a->rstrip)
            while (me < n && is_ws(s, n, me, &cl)) me += cl;
        if (ms > gap && (rc = pass == 0 ? encode_gap(c, s + gap, ms - gap)
                                         : encode_normalized(c, s + gap, ms - gap)))
            return rc;
        if ((rc = ids_push(c->out, a->id))) return rc;
        i = gap = me;
    }
    if (gap >= n) return 0;
    return pass == 0 ? encode_gap(c, s + gap, n - gap) : encode_normalized(c, s + gap, n - gap);
}

/* A stretch of raw text between non-normalized added tokens: normalize it,
 * then split out the normalized added tokens, then pre-tokenize + BPE. */
static int encode_gap(enc_ctx *c, const char *s, size_t n) {
    int rc = normalize(c->t, &c->ar, &s, &n);
    if (rc || n == 0) return rc;
    return c->t->has_norm_added ? encode_segment(c, s, n, 1) : encode_normalized(c, s, n);
}

int sl_tokenizer_encode(const sl_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!t || !ids || !n || (!text && len)) return SL_EINVAL;
    idvec out = {0};
    enc_ctx c = {.t = t, .out = &out};
    sbuf fixed = {0};
    int rc = 0;
    if (len && !utf8_valid(text, len)) {
        if ((rc = utf8_lossy(&fixed, text, len))) goto done;
        text = fixed.v;
        len = fixed.n;
    }
    if (t->n_pre) {
        const pcre2_code *re = NULL;
        for (size_t k = 0; k < t->n_pre && !re; k++) re = t->pre[k].re;
        if (re && !(c.md = pcre2_match_data_create(4, NULL))) { rc = SL_ENOMEM; goto done; }
    }
    if (ids_push(&out, 0)) { rc = SL_ENOMEM; goto done; }
    out.n = 0;
    if (len) rc = encode_segment(&c, text, len, 0);
done:
    pcre2_match_data_free(c.md);
    arena_fini(&c.ar);
    free(c.a.v);
    free(c.b.v);
    free(c.sp.v);
    free(c.tmp.v);
    free(fixed.v);
    if (rc) {
        free(out.v);
        return rc;
    }
    *ids = out.v;
    *n = out.n;
    return 0;
}

/* --------------------------------------------------------------- decode */

typedef struct tlist {
    sbuf *v;
    size_t n, cap;
} tlist;

static int tl_push(tlist *l, const char *p, size_t n) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        sbuf *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return SL_ENOMEM;
        memset(nv + l->cap, 0, (nc - l->cap) * sizeof *nv);
        l->v = nv;
        l->cap = nc;
    }
    sbuf *b = &l->v[l->n++];
    return sb_add(b, p, n);
}

static void tl_free(tlist *l) {
    for (size_t i = 0; i < l->cap; i++) free(l->v[i].v);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* One decoder step: in -> out (in is freed). */
static int dec_step(const sl_tokenizer *t, const tok_dec *d, tlist *l) {
    tlist o = {calloc(l->n + 1, sizeof(sbuf)), 0, l->n + 1};
    int rc = 0;
    if (!o.v) return SL_ENOMEM;
    switch (d->type) {
    case DEC_BYTELEVEL: {
        sbuf bytes = {0};
        for (size_t i = 0; i < l->n && !rc; i++) {
            const unsigned char *u = (const unsigned char *)l->v[i].v;
            size_t n = l->v[i].n, k = 0, start = bytes.n;
            int ok = 1;
            while (k < n && ok) {
                utf8proc_int32_t cp;
                utf8proc_ssize_t r = utf8proc_iterate(u + k, (utf8proc_ssize_t)(n - k), &cp);
                if (r <= 0 || cp >= 324 || t->bl_inv[cp] < 0) { ok = 0; break; }
                unsigned char b = (unsigned char)t->bl_inv[cp];
                rc = sb_add(&bytes, &b, 1);
                k += (size_t)r;
            }
            if (!ok) {
                bytes.n = start;
                rc = sb_add(&bytes, l->v[i].v, n);
            }
        }
        if (!rc) rc = utf8_lossy(&o.v[0], bytes.v ? bytes.v : "", bytes.n);
        if (!rc && !o.v[0].v) rc = sb_add(&o.v[0], "", 0);
        o.n = 1;
        free(bytes.v);
        break;
    }
    case DEC_REPLACE:
        for (size_t i = 0; i < l->n && !rc; i++, o.n++)
            rc = replace_all(&o.v[i], l->v[i].v, l->v[i].n, d->a, d->alen, d->b, d->blen);
        break;
    case DEC_BYTEFALLBACK: {
        /* runs of "<0xXX>" tokens become their bytes when those are valid
         * UTF-8, else one U+FFFD per byte (tokenizers' ByteFallback) */
        sbuf pend = {0};
        for (size_t i = 0; i <= l->n && !rc; i++) {
            int byte = -1;
            if (i < l->n) {
                const char *s = l->v[i].v;
                if (l->v[i].n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && isxdigit((unsigned char)s[3]) &&
                    isxdigit((unsigned char)s[4]))
                    byte = (int)strtol((char[]){s[3], s[4], 0}, NULL, 16);
            }
            if (byte >= 0) {
                unsigned char b = (unsigned char)byte;
                rc = sb_add(&pend, &b, 1);
                continue;
            }
            if (pend.n) {
                if (utf8_valid(pend.v, pend.n)) rc = tl_push(&o, pend.v, pend.n);
                else
                    for (size_t k = 0; k < pend.n && !rc; k++) rc = tl_push(&o, "\xEF\xBF\xBD", 3);
                pend.n = 0;
            }
            if (i < l->n && !rc) rc = tl_push(&o, l->v[i].v, l->v[i].n);
        }
        free(pend.v);
        break;
    }
    case DEC_FUSE:
        for (size_t i = 0; i < l->n && !rc; i++) rc = sb_add(&o.v[0], l->v[i].v, l->v[i].n);
        if (!rc && !o.v[0].v) rc = sb_add(&o.v[0], "", 0);
        o.n = 1;
        break;
    case DEC_STRIP:
        for (size_t i = 0; i < l->n && !rc; i++, o.n++) {
            const char *s = l->v[i].v;
            size_t a = 0, b = l->v[i].n;
            for (int k = 0; k < d->start && b - a >= d->alen && !memcmp(s + a, d->a, d->alen); k++) a += d->alen;
            for (int k = 0; k < d->stop && b - a >= d->alen && !memcmp(s + b - d->alen, d->a, d->alen); k++)
                b -= d->alen;
            rc = sb_add(&o.v[i], s + a, b - a);
        }
        break;
    default:
        for (size_t i = 0; i < l->n && !rc; i++, o.n++) rc = sb_add(&o.v[i], l->v[i].v, l->v[i].n);
    }
    tl_free(l);
    if (rc) {
        tl_free(&o);
        return rc;
    }
    *l = o;
    return 0;
}

int sl_tokenizer_decode(const sl_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text,
                        size_t *len) {
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || !text || (!ids && n)) return SL_EINVAL;
    tlist l = {calloc(n + 1, sizeof(sbuf)), 0, n + 1};
    if (!l.v) return SL_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids) { rc = SL_ERANGE; break; }
        int32_t a = t->added_by_id[id];
        if (a >= 0) {
            if (skip_special && t->added[a].special) continue;
            rc = sb_add(&l.v[l.n++], t->added[a].content, t->added[a].len);
        } else if (id < t->n_model && t->mtok[id]) {
            rc = sb_add(&l.v[l.n++], t->mtok[id], t->mlen[id]);
        } else {
            rc = SL_ERANGE;
        }
    }
    for (size_t k = 0; k < t->n_dec && !rc; k++) rc = dec_step(t, &t->dec[k], &l);
    sbuf o = {0};
    for (size_t i = 0; i < l.n && !rc; i++) {
        if (!t->has_decoder && i > 0) rc = sb_add(&o, " ", 1);
        if (!rc) rc = sb_add(&o, l.v[i].v, l.v[i].n);
    }
    if (!rc && !o.v) rc = sb_add(&o, "", 0);
    tl_free(&l);
    if (rc) {
        free(o.v);
        return rc;
    }
    *text = o.v;
    if (len) *len = o.n;
    return 0;
}

/* ------------------------------------------------------------ accessors */

int32_t sl_tokenizer_vocab_size(const sl_tokenizer *t) { return t ? t->n_ids : 0; }

int32_t sl_tokenizer_token_to_id(const sl_tokenizer *t, const char *s, size_t len) {
    if (!t || !s) return -1;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && !memcmp(t->added[i].content, s, len)) return t->added[i].id;
    return tok_map_get(t, s, len);
}

const char *sl_tokenizer_id_to_token(const sl_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_ids) return NULL;
    int32_t a = t->added_by_id[id];
    if (a >= 0) {
        if (len) *len = t->added[a].len;
        return t->added[a].content;
    }
    if (id >= t->n_model || !t->mtok[id]) return NULL;
    if (len) *len = t->mlen[id];
    return t->mtok[id];
}

int32_t sl_tokenizer_bos_id(const sl_tokenizer *t) { return t ? t->bos : -1; }
int32_t sl_tokenizer_eos_id(const sl_tokenizer *t) { return t ? t->eos : -1; }
int32_t sl_tokenizer_pad_id(const sl_tokenizer *t) { return t ? t->pad : -1; }

int sl_tokenizer_is_special(const sl_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_ids) return 0;
    int32_t a = t->added_by_id[id];
    return a >= 0 && t->added[a].special;
}

const char *sl_tokenizer_chat_template(const sl_tokenizer *t) { return t ? t->chat_template : NULL; }

const char *sl_tokenizer_kind(const sl_tokenizer *t) { return t && t->kind ? t->kind : "none"; }
