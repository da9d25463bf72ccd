/*
 * sample_batch.c — writer and validating reader of the flat sample-batch
 * layout described in sample_batch.h. The reader trusts nothing in the
 * buffer: sizes are recomputed from counts checked against limits (so no
 * arithmetic can overflow), then every offset, id and value is checked
 * before a view is handed out.
 */
#include "sample_batch.h"

#include "dataset.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "sample_batch: the layout is read in place and needs a little-endian host"
#endif

/* ------------------------------------------------------------- header */

enum {
    H_MAGIC = 0,
    H_VERSION = 4,
    H_HSIZE = 6,
    H_FLAGS = 8,
    H_NSAMPLES = 12,
    H_NTOKENS = 16,
    H_METABYTES = 24,
    H_TOTAL = 32,
    H_WVERSION = 40,
    H_STEP = 48,
    H_CHECKSUM = 56,
    H_VOCAB = 64,
    H_END = 68, /* zero padding from here to SL_BATCH_HEADER_SIZE */
};

/* Byte offsets of every array for some dims (all < 2^40 given the limits). */
typedef struct layout {
    uint64_t offsets, sample_ids, group_ids, versions, meta_off, tokens, logprobs, advantages,
        prompt_len, rewards, sample_flags, loss_mask, meta, total;
} layout;

static uint64_t al8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

static int dims_ok(const sl_batch_dims *d) {
    return d->n_samples <= SL_BATCH_MAX_SAMPLES && d->n_tokens <= SL_BATCH_MAX_TOKENS &&
           d->meta_bytes <= SL_BATCH_MAX_META && !(d->flags & ~SL_BATCH_FLAGS_KNOWN);
}

/* Only after dims_ok: with n < 2^24, T < 2^31 and M < 2^30 every sum below
 * stays far under 2^64. */
static void compute_layout(const sl_batch_dims *d, layout *l) {
    uint64_t n = d->n_samples, t = d->n_tokens, p = SL_BATCH_HEADER_SIZE;
    l->offsets = p;      p = al8(p + 8 * (n + 1));
    l->sample_ids = p;   p = al8(p + 8 * n);
    l->group_ids = p;    p = al8(p + 8 * n);
    l->versions = p;     p = al8(p + 8 * n);
    l->meta_off = p;     p = al8(p + 8 * (2 * n + 1));
    l->tokens = p;       p = al8(p + 4 * t);
    l->logprobs = p;     if (d->flags & SL_BATCH_HAS_LOGPROBS) p = al8(p + 4 * t);
    l->advantages = p;   if (d->flags & SL_BATCH_HAS_ADVANTAGES) p = al8(p + 4 * t);
    l->prompt_len = p;   p = al8(p + 4 * n);
    l->rewards = p;      p = al8(p + 4 * n);
    l->sample_flags = p; p = al8(p + 4 * n);
    l->loss_mask = p;    p = al8(p + t);
    l->meta = p;         p = al8(p + d->meta_bytes);
    l->total = p;
}

int sl_batch_size(const sl_batch_dims *dims, size_t *size) {
    if (!dims || !size) return SL_EINVAL;
    if (!dims_ok(dims)) return SL_ERANGE;
    layout l;
    compute_layout(dims, &l);
    if (l.total > SIZE_MAX) return SL_ERANGE;
    *size = (size_t)l.total;
    return 0;
}

uint64_t sl_batch_meta_bytes(const char *label, const char *metadata) {
    return (label ? strlen(label) + 1 : 0) + (metadata ? strlen(metadata) + 1 : 0);
}

/* XXH3 of buf[0..total) with the checksum field read as zero. */
static uint64_t batch_hash(const uint8_t *buf, uint64_t total) {
    XXH3_state_t st;
    static const uint8_t zero[8];
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, buf, H_CHECKSUM);
    XXH3_64bits_update(&st, zero, 8);
    XXH3_64bits_update(&st, buf + H_CHECKSUM + 8, (size_t)(total - H_CHECKSUM - 8));
    return XXH3_64bits_digest(&st);
}

/* ------------------------------------------------------------- writer */

int sl_batch_writer_init(sl_batch_writer *w, void *buf, size_t cap, const sl_batch_dims *dims,
                         uint64_t weight_version, uint64_t step, int32_t vocab_size) {
    if (!w || !buf || !dims || vocab_size <= 0 || ((uintptr_t)buf & 7)) return SL_EINVAL;
    memset(w, 0, sizeof *w);
    if (!dims_ok(dims)) return SL_ERANGE;
    layout l;
    compute_layout(dims, &l);
    if (l.total > cap) return SL_ERANGE;
    w->buf = buf;
    w->size = (size_t)l.total;
    w->dims = *dims;
    w->vocab_size = vocab_size;
    uint8_t *h = w->buf;
    memset(h, 0, SL_BATCH_HEADER_SIZE);
    sl_put_u32(h + H_MAGIC, SL_BATCH_MAGIC);
    sl_put_u16(h + H_VERSION, SL_BATCH_VERSION);
    sl_put_u16(h + H_HSIZE, SL_BATCH_HEADER_SIZE);
    sl_put_u32(h + H_FLAGS, dims->flags);
    sl_put_u32(h + H_NSAMPLES, dims->n_samples);
    sl_put_u64(h + H_NTOKENS, dims->n_tokens);
    sl_put_u64(h + H_METABYTES, dims->meta_bytes);
    sl_put_u64(h + H_TOTAL, l.total);
    sl_put_u64(h + H_WVERSION, weight_version);
    sl_put_u64(h + H_STEP, step);
    sl_put_u32(h + H_VOCAB, (uint32_t)vocab_size);
    /* zero everything after the header so that padding is deterministic */
    memset(h + SL_BATCH_HEADER_SIZE, 0, w->size - SL_BATCH_HEADER_SIZE);
    ((uint64_t *)(void *)(h + l.offsets))[0] = 0;
    ((uint64_t *)(void *)(h + l.meta_off))[0] = 0;
    return 0;
}

static void put_str(uint8_t *meta, uint64_t *off, uint64_t *pos, const char *s) {
    if (s) {
        size_t n = strlen(s) + 1;
        memcpy(meta + *pos, s, n);
        *pos += n;
    }
    *off = *pos;
}

int sl_batch_writer_add(sl_batch_writer *w, const sl_batch_sample_in *s) {
    if (!w || !w->buf || !s) return SL_EINVAL;
    if (w->failed) return SL_EINVAL;
    int rc = SL_EINVAL;
    const sl_batch_dims *d = &w->dims;
    uint32_t n = s->n_tokens;
    if (!s->tokens || n == 0 || s->prompt_len < 1 || s->prompt_len > n) goto fail;
    if (s->flags & ~SL_SAMPLE_FLAGS_KNOWN) goto fail;
    if (s->group_id != sl_sample_prompt_id(s->sample_id)) goto fail;
    if (!isfinite(s->reward)) goto fail;
    uint64_t mb = sl_batch_meta_bytes(s->label, s->metadata);
    if ((s->label && strlen(s->label) + 1 > SL_BATCH_MAX_STR) ||
        (s->metadata && strlen(s->metadata) + 1 > SL_BATCH_MAX_STR))
        goto fail;
    rc = SL_ERANGE;
    if (w->next_sample >= d->n_samples || n > d->n_tokens - w->next_token || mb > d->meta_bytes - w->next_meta)
        goto fail;
    rc = SL_EINVAL;
    for (uint32_t k = 0; k < n; k++) {
        if (s->tokens[k] < 0 || s->tokens[k] >= w->vocab_size) goto fail;
        uint8_t m = s->loss_mask ? s->loss_mask[k] : (k >= s->prompt_len);
        if (m > 1 || (m && k < s->prompt_len)) goto fail;
        if ((d->flags & SL_BATCH_HAS_LOGPROBS) && s->logprobs &&
            (!isfinite(s->logprobs[k]) || (m && s->logprobs[k] > SL_BATCH_LOGPROB_TOL)))
            goto fail;
        if ((d->flags & SL_BATCH_HAS_ADVANTAGES) && s->advantages && !isfinite(s->advantages[k])) goto fail;
    }

    layout l;
    compute_layout(d, &l);
    uint8_t *b = w->buf;
    uint32_t i = w->next_sample;
    uint64_t t0 = w->next_token;
    memmove((int32_t *)(void *)(b + l.tokens) + t0, s->tokens, (size_t)n * 4);
    if (d->flags & SL_BATCH_HAS_LOGPROBS) {
        float *lp = (float *)(void *)(b + l.logprobs) + t0;
        if (s->logprobs) memmove(lp, s->logprobs, (size_t)n * 4);
        else memset(lp, 0, (size_t)n * 4);
    }
    if (d->flags & SL_BATCH_HAS_ADVANTAGES) {
        float *ad = (float *)(void *)(b + l.advantages) + t0;
        if (s->advantages) memmove(ad, s->advantages, (size_t)n * 4);
        else memset(ad, 0, (size_t)n * 4);
    }
    uint8_t *mask = b + l.loss_mask + t0;
    for (uint32_t k = 0; k < n; k++) mask[k] = s->loss_mask ? s->loss_mask[k] : (uint8_t)(k >= s->prompt_len);
    ((uint64_t *)(void *)(b + l.offsets))[i + 1] = t0 + n;
    ((uint64_t *)(void *)(b + l.sample_ids))[i] = s->sample_id;
    ((uint64_t *)(void *)(b + l.group_ids))[i] = s->group_id;
    ((uint64_t *)(void *)(b + l.versions))[i] = s->weight_version;
    ((uint32_t *)(void *)(b + l.prompt_len))[i] = s->prompt_len;
    ((float *)(void *)(b + l.rewards))[i] = s->reward;
    ((uint32_t *)(void *)(b + l.sample_flags))[i] = s->flags;
    uint64_t *moff = (uint64_t *)(void *)(b + l.meta_off);
    uint64_t pos = w->next_meta;
    put_str(b + l.meta, &moff[2 * i + 1], &pos, s->label);
    put_str(b + l.meta, &moff[2 * i + 2], &pos, s->metadata);
    w->next_meta = pos;
    w->next_token = t0 + n;
    w->next_sample = i + 1;
    return 0;
fail:
    w->failed = 1;
    return rc;
}

int sl_batch_writer_finish(sl_batch_writer *w, size_t *len) {
    if (!w || !w->buf || w->failed) return SL_EINVAL;
    if (w->next_sample != w->dims.n_samples || w->next_token != w->dims.n_tokens ||
        w->next_meta != w->dims.meta_bytes)
        return SL_EINVAL;
    sl_put_u64(w->buf + H_CHECKSUM, 0);
    sl_put_u64(w->buf + H_CHECKSUM, batch_hash(w->buf, w->size));
    if (len) *len = w->size;
    return 0;
}

/* ------------------------------------------------------------- reader */

__attribute__((format(printf, 4, 5))) static int bad(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int sl_batch_view_open(sl_batch_view *v, const void *buf, size_t len, int32_t vocab_size,
                       unsigned flags, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!v) return bad(err, errlen, SL_EINVAL, "no view");
    memset(v, 0, sizeof *v);
    const uint8_t *b = buf;
    if (!b) return bad(err, errlen, SL_EINVAL, "no buffer");
    if ((uintptr_t)b & 7) return bad(err, errlen, SL_EINVAL, "buffer not 8-byte aligned");
    if (len < SL_BATCH_HEADER_SIZE) return bad(err, errlen, SL_ERANGE, "truncated: %zu bytes, header needs %d", len, SL_BATCH_HEADER_SIZE);
    if (sl_get_u32(b + H_MAGIC) != SL_BATCH_MAGIC) return bad(err, errlen, SL_EPROTO, "bad magic 0x%08x", sl_get_u32(b + H_MAGIC));
    if (sl_get_u16(b + H_VERSION) != SL_BATCH_VERSION)
        return bad(err, errlen, SL_EPROTO, "layout version %u, this reader knows %d", sl_get_u16(b + H_VERSION), SL_BATCH_VERSION);
    if (sl_get_u16(b + H_HSIZE) != SL_BATCH_HEADER_SIZE) return bad(err, errlen, SL_EPROTO, "header size %u", sl_get_u16(b + H_HSIZE));
    for (int k = H_END; k < SL_BATCH_HEADER_SIZE; k++)
        if (b[k]) return bad(err, errlen, SL_EPROTO, "header padding byte %d is not zero", k);
    sl_batch_dims d = {
        .n_samples = sl_get_u32(b + H_NSAMPLES),
        .n_tokens = sl_get_u64(b + H_NTOKENS),
        .meta_bytes = sl_get_u64(b + H_METABYTES),
        .flags = sl_get_u32(b + H_FLAGS),
    };
    if (d.flags & ~SL_BATCH_FLAGS_KNOWN) return bad(err, errlen, SL_EPROTO, "unknown flags 0x%x", d.flags);
    if (!dims_ok(&d))
        return bad(err, errlen, SL_ERANGE, "counts over the limits: %u samples, %llu tokens, %llu meta bytes",
                   d.n_samples, (unsigned long long)d.n_tokens, (unsigned long long)d.meta_bytes);
    layout l;
    compute_layout(&d, &l);
    uint64_t total = sl_get_u64(b + H_TOTAL);
    if (total != l.total) return bad(err, errlen, SL_EINVAL, "total_size %llu but the counts need %llu", (unsigned long long)total, (unsigned long long)l.total);
    if (total > len) return bad(err, errlen, SL_ERANGE, "truncated: batch of %llu bytes in a buffer of %zu", (unsigned long long)total, len);
    uint32_t hv = sl_get_u32(b + H_VOCAB);
    if (hv > INT32_MAX) return bad(err, errlen, SL_EINVAL, "header vocab_size %u", hv);
    int64_t vocab = vocab_size > 0 ? vocab_size : (int64_t)hv;
    if (vocab_size > 0 && hv > 0 && hv < (uint32_t)vocab_size) vocab = hv;
    if (vocab <= 0) return bad(err, errlen, SL_EINVAL, "vocabulary size unknown (caller and header both 0)");
    uint64_t sum = sl_get_u64(b + H_CHECKSUM);
    if (!(flags & SL_BATCH_SKIP_CHECKSUM) && batch_hash(b, total) != sum)
        return bad(err, errlen, SL_ECHECKSUM, "checksum mismatch");

    uint32_t n = d.n_samples;
    uint64_t T = d.n_tokens, M = d.meta_bytes;
    const uint64_t *off = (const void *)(b + l.offsets);
    const uint64_t *sid = (const void *)(b + l.sample_ids);
    const uint64_t *gid = (const void *)(b + l.group_ids);
    const uint64_t *moff = (const void *)(b + l.meta_off);
    const int32_t *tok = (const void *)(b + l.tokens);
    const float *lp = (d.flags & SL_BATCH_HAS_LOGPROBS) ? (const void *)(b + l.logprobs) : NULL;
    const float *adv = (d.flags & SL_BATCH_HAS_ADVANTAGES) ? (const void *)(b + l.advantages) : NULL;
    const uint32_t *plen = (const void *)(b + l.prompt_len);
    const float *rew = (const void *)(b + l.rewards);
    const uint32_t *sfl = (const void *)(b + l.sample_flags);
    const uint8_t *mask = b + l.loss_mask;
    const char *meta = (const char *)(b + l.meta);

    if (off[0] != 0) return bad(err, errlen, SL_EINVAL, "offsets[0] = %llu, not 0", (unsigned long long)off[0]);
    if (off[n] != T) return bad(err, errlen, SL_EINVAL, "offsets[%u] = %llu, not n_tokens %llu", n, (unsigned long long)off[n], (unsigned long long)T);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t a = off[i], e = off[i + 1];
        if (e <= a || e > T) return bad(err, errlen, SL_EINVAL, "sample %u: offsets %llu..%llu not increasing within %llu tokens", i, (unsigned long long)a, (unsigned long long)e, (unsigned long long)T);
        uint64_t len_i = e - a;
        if (plen[i] < 1 || plen[i] > len_i) return bad(err, errlen, SL_EINVAL, "sample %u: prompt_len %u outside 1..%llu", i, plen[i], (unsigned long long)len_i);
        if (!isfinite(rew[i])) return bad(err, errlen, SL_EINVAL, "sample %u: reward is not finite", i);
        if (sfl[i] & ~SL_SAMPLE_FLAGS_KNOWN) return bad(err, errlen, SL_EINVAL, "sample %u: unknown flags 0x%x", i, sfl[i]);
        if (gid[i] != sl_sample_prompt_id(sid[i]))
            return bad(err, errlen, SL_EINVAL, "sample %u: group id 0x%llx is not the prompt of sample id 0x%llx", i, (unsigned long long)gid[i], (unsigned long long)sid[i]);
        for (uint64_t t = a; t < e; t++) {
            if (tok[t] < 0 || tok[t] >= vocab) return bad(err, errlen, SL_EINVAL, "sample %u token %llu: id %d outside vocabulary of %lld", i, (unsigned long long)(t - a), tok[t], (long long)vocab);
            uint8_t m = mask[t];
            if (m > 1) return bad(err, errlen, SL_EINVAL, "sample %u token %llu: loss mask %u", i, (unsigned long long)(t - a), m);
            if (m && t - a < plen[i]) return bad(err, errlen, SL_EINVAL, "sample %u token %llu: loss mask on a prompt token", i, (unsigned long long)(t - a));
            if (lp && (!isfinite(lp[t]) || (m && lp[t] > SL_BATCH_LOGPROB_TOL)))
                return bad(err, errlen, SL_EINVAL, "sample %u token %llu: bad log-prob %g", i, (unsigned long long)(t - a), (double)lp[t]);
            if (adv && !isfinite(adv[t])) return bad(err, errlen, SL_EINVAL, "sample %u token %llu: advantage is not finite", i, (unsigned long long)(t - a));
        }
    }
    if (moff[0] != 0) return bad(err, errlen, SL_EINVAL, "meta_off[0] = %llu, not 0", (unsigned long long)moff[0]);
    if (moff[2 * (uint64_t)n] != M) return bad(err, errlen, SL_EINVAL, "meta_off[%llu] is not meta_bytes %llu", 2 * (unsigned long long)n, (unsigned long long)M);
    for (uint64_t k = 0; k < 2 * (uint64_t)n; k++) {
        uint64_t a = moff[k], e = moff[k + 1];
        if (e < a || e > M) return bad(err, errlen, SL_EINVAL, "meta string %llu: offsets %llu..%llu not within %llu", (unsigned long long)k, (unsigned long long)a, (unsigned long long)e, (unsigned long long)M);
        if (e > a && (e - a > SL_BATCH_MAX_STR || meta[e - 1] != 0))
            return bad(err, errlen, SL_EINVAL, "meta string %llu: longer than %u bytes or not NUL-terminated", (unsigned long long)k, SL_BATCH_MAX_STR);
    }

    v->n_samples = n;
    v->n_tokens = T;
    v->meta_bytes = M;
    v->flags = d.flags;
    v->weight_version = sl_get_u64(b + H_WVERSION);
    v->step = sl_get_u64(b + H_STEP);
    v->checksum = sum;
    v->vocab_size = (int32_t)hv;
    v->size = (size_t)total;
    v->offsets = off;
    v->sample_ids = sid;
    v->group_ids = gid;
    v->versions = (const void *)(b + l.versions);
    v->meta_off = moff;
    v->tokens = tok;
    v->logprobs = lp;
    v->advantages = adv;
    v->prompt_len = plen;
    v->rewards = rew;
    v->sample_flags = sfl;
    v->loss_mask = mask;
    v->meta = meta;
    return 0;
}

int sl_batch_view_sample(const sl_batch_view *v, uint32_t i, sl_batch_sample *s) {
    if (!s) return SL_EINVAL;
    memset(s, 0, sizeof *s);
    if (!v || i >= v->n_samples) return SL_ERANGE;
    uint64_t a = v->offsets[i];
    s->tokens = v->tokens + a;
    s->n_tokens = (uint32_t)(v->offsets[i + 1] - a);
    s->prompt_len = v->prompt_len[i];
    s->logprobs = v->logprobs ? v->logprobs + a : NULL;
    s->advantages = v->advantages ? v->advantages + a : NULL;
    s->loss_mask = v->loss_mask + a;
    s->reward = v->rewards[i];
    s->sample_id = v->sample_ids[i];
    s->group_id = v->group_ids[i];
    s->weight_version = v->versions[i];
    s->flags = v->sample_flags[i];
    uint64_t la = v->meta_off[2 * (uint64_t)i], le = v->meta_off[2 * (uint64_t)i + 1], me = v->meta_off[2 * (uint64_t)i + 2];
    s->label = le > la ? v->meta + la : NULL;
    s->metadata = me > le ? v->meta + le : NULL;
    return 0;
}
