/*
 * test_sample_batch.c — the shared-memory sample-batch layout: a round trip
 * through the writer and the validating reader, the writer's refusals,
 * every kind of corruption refused by the reader, and 2000 random
 * mutations that must never crash it (run under `make asan` to see any
 * out-of-bounds read: buffers are allocated at their exact size).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base.h"
#include "dataset.h"
#include "sample_batch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { VOCAB = 100 };

static uint64_t rng = 0x1234567;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The samples of a test batch, kept to compare with what is read back. */
typedef struct tsample {
    int32_t tok[64];
    float lp[64], adv[64];
    uint8_t mask[64];
    uint32_t n, plen;
    float reward;
    uint64_t id;
    char label[16], meta[32];
    int has_label, has_meta;
} tsample;

typedef struct tbatch {
    tsample s[16];
    uint32_t n;
    uint8_t *buf;
    size_t size;
} tbatch;

static void make_samples(tbatch *b, uint32_t n) {
    b->n = n;
    for (uint32_t i = 0; i < n; i++) {
        tsample *t = &b->s[i];
        memset(t, 0, sizeof *t);
        t->n = 2 + (uint32_t)(rnd() % 60);
        t->plen = 1 + (uint32_t)(rnd() % (t->n - 1));
        for (uint32_t k = 0; k < t->n; k++) {
            t->tok[k] = (int32_t)(rnd() % VOCAB);
            t->mask[k] = k >= t->plen && rnd() % 4;
            t->lp[k] = k >= t->plen ? -(float)(rnd() % 1000) / 100.0f : 0.0f;
            t->adv[k] = t->mask[k] ? (float)((int)(rnd() % 200) - 100) / 50.0f : 0.0f;
        }
        t->reward = (float)(rnd() % 2);
        assert_int_equal(sl_sample_id_pack(1, 10 + i / 4, i % 4, &t->id), 0);
        t->has_label = i % 3 != 0;
        t->has_meta = i % 2 == 0;
        snprintf(t->label, sizeof t->label, "%u", i * 7);
        snprintf(t->meta, sizeof t->meta, "{\"i\":%u}", i);
    }
}

static sl_batch_dims dims_of(const tbatch *b, uint32_t flags) {
    sl_batch_dims d = {.n_samples = b->n, .flags = flags};
    for (uint32_t i = 0; i < b->n; i++) {
        d.n_tokens += b->s[i].n;
        d.meta_bytes += sl_batch_meta_bytes(b->s[i].has_label ? b->s[i].label : NULL,
                                            b->s[i].has_meta ? b->s[i].meta : NULL);
    }
    return d;
}

static sl_batch_sample_in input_of(const tsample *t) {
    sl_batch_sample_in in = {
        .tokens = t->tok, .n_tokens = t->n, .prompt_len = t->plen, .logprobs = t->lp, .loss_mask = t->mask,
        .advantages = t->adv, .reward = t->reward, .sample_id = t->id, .group_id = sl_sample_prompt_id(t->id),
        .weight_version = 3, .flags = t->n > 50 ? SL_SAMPLE_TRUNCATED : 0,
        .label = t->has_label ? t->label : NULL, .metadata = t->has_meta ? t->meta : NULL,
    };
    return in;
}

/* Build b's samples into a new buffer of exactly the batch's size. */
static void build(tbatch *b, uint32_t flags) {
    sl_batch_dims d = dims_of(b, flags);
    assert_int_equal(sl_batch_size(&d, &b->size), 0);
    assert_int_equal(posix_memalign((void **)&b->buf, 64, b->size), 0);
    sl_batch_writer w;
    assert_int_equal(sl_batch_writer_init(&w, b->buf, b->size, &d, 5, 17, VOCAB), 0);
    for (uint32_t i = 0; i < b->n; i++) {
        sl_batch_sample_in in = input_of(&b->s[i]);
        assert_int_equal(sl_batch_writer_add(&w, &in), 0);
    }
    size_t len = 0;
    assert_int_equal(sl_batch_writer_finish(&w, &len), 0);
    assert_int_equal(len, b->size);
}

static void a_batch_round_trips_through_writer_and_reader(void **st) {
    (void)st;
    tbatch b;
    make_samples(&b, 12);
    build(&b, SL_BATCH_HAS_LOGPROBS | SL_BATCH_HAS_ADVANTAGES);
    sl_batch_view v;
    char err[256];
    assert_int_equal(sl_batch_view_open(&v, b.buf, b.size, VOCAB, 0, err, sizeof err), 0);
    assert_int_equal(v.n_samples, 12);
    assert_int_equal(v.weight_version, 5);
    assert_int_equal(v.step, 17);
    assert_int_equal(v.vocab_size, VOCAB);
    assert_int_equal(v.size, b.size);
    assert_non_null(v.logprobs);
    assert_non_null(v.advantages);
    for (uint32_t i = 0; i < b.n; i++) {
        const tsample *t = &b.s[i];
        sl_batch_sample s;
        assert_int_equal(sl_batch_view_sample(&v, i, &s), 0);
        assert_int_equal(s.n_tokens, t->n);
        assert_int_equal(s.prompt_len, t->plen);
        assert_memory_equal(s.tokens, t->tok, t->n * 4);
        assert_memory_equal(s.logprobs, t->lp, t->n * 4);
        assert_memory_equal(s.advantages, t->adv, t->n * 4);
        assert_memory_equal(s.loss_mask, t->mask, t->n);
        assert_true(s.reward == t->reward);
        assert_true(s.sample_id == t->id);
        assert_true(s.group_id == sl_sample_prompt_id(t->id));
        assert_int_equal(s.weight_version, 3);
        assert_int_equal(s.flags, t->n > 50 ? SL_SAMPLE_TRUNCATED : 0);
        if (t->has_label) assert_string_equal(s.label, t->label);
        else assert_null(s.label);
        if (t->has_meta) assert_string_equal(s.metadata, t->meta);
        else assert_null(s.metadata);
        /* views are pointers into the buffer: zero copies */
        assert_true((const uint8_t *)s.tokens >= b.buf && (const uint8_t *)(s.tokens + s.n_tokens) <= b.buf + b.size);
    }
    sl_batch_sample s;
    assert_int_equal(sl_batch_view_sample(&v, 12, &s), SL_ERANGE);
    /* the header's vocabulary is used when the caller passes 0 */
    assert_int_equal(sl_batch_view_open(&v, b.buf, b.size, 0, 0, err, sizeof err), 0);
    /* a larger buffer (a whole shm slot) is fine */
    uint8_t *big;
    assert_int_equal(posix_memalign((void **)&big, 64, b.size + 4096), 0);
    memcpy(big, b.buf, b.size);
    assert_int_equal(sl_batch_view_open(&v, big, b.size + 4096, VOCAB, 0, err, sizeof err), 0);
    free(big);
    free(b.buf);
}

static void optional_arrays_are_absent_without_their_flags(void **st) {
    (void)st;
    tbatch b, b2;
    make_samples(&b, 5);
    b2 = b;
    build(&b, 0);
    build(&b2, SL_BATCH_HAS_LOGPROBS | SL_BATCH_HAS_ADVANTAGES);
    assert_true(b.size < b2.size);
    sl_batch_view v;
    assert_int_equal(sl_batch_view_open(&v, b.buf, b.size, VOCAB, 0, NULL, 0), 0);
    assert_null(v.logprobs);
    assert_null(v.advantages);
    sl_batch_sample s;
    assert_int_equal(sl_batch_view_sample(&v, 0, &s), 0);
    assert_null(s.logprobs);
    assert_memory_equal(s.tokens, b.s[0].tok, b.s[0].n * 4);
    free(b.buf);
    free(b2.buf);
    /* an empty batch is valid */
    sl_batch_dims d = {0};
    size_t size;
    assert_int_equal(sl_batch_size(&d, &size), 0);
    uint8_t *buf;
    assert_int_equal(posix_memalign((void **)&buf, 64, size), 0);
    sl_batch_writer w;
    assert_int_equal(sl_batch_writer_init(&w, buf, size, &d, 0, 0, VOCAB), 0);
    assert_int_equal(sl_batch_writer_finish(&w, NULL), 0);
    assert_int_equal(sl_batch_view_open(&v, buf, size, VOCAB, 0, NULL, 0), 0);
    assert_int_equal(v.n_samples, 0);
    free(buf);
}

static void sizes_over_the_limits_are_refused(void **st) {
    (void)st;
    size_t size;
    sl_batch_dims d = {.n_samples = SL_BATCH_MAX_SAMPLES + 1};
    assert_int_equal(sl_batch_size(&d, &size), SL_ERANGE);
    d = (sl_batch_dims){.n_tokens = SL_BATCH_MAX_TOKENS + 1};
    assert_int_equal(sl_batch_size(&d, &size), SL_ERANGE);
    d = (sl_batch_dims){.meta_bytes = SL_BATCH_MAX_META + 1};
    assert_int_equal(sl_batch_size(&d, &size), SL_ERANGE);
    d = (sl_batch_dims){.flags = 0x80};
    assert_int_equal(sl_batch_size(&d, &size), SL_ERANGE);
    d = (sl_batch_dims){.n_samples = SL_BATCH_MAX_SAMPLES, .n_tokens = SL_BATCH_MAX_TOKENS,
                        .meta_bytes = SL_BATCH_MAX_META, .flags = SL_BATCH_FLAGS_KNOWN};
    assert_int_equal(sl_batch_size(&d, &size), 0);
    assert_true(size > SL_BATCH_MAX_TOKENS * 13);
    assert_int_equal(sl_batch_size(NULL, &size), SL_EINVAL);
}

static void the_writer_refuses_samples_that_break_a_rule(void **st) {
    (void)st;
    tbatch b;
    make_samples(&b, 2);
    sl_batch_dims d = dims_of(&b, SL_BATCH_HAS_LOGPROBS | SL_BATCH_HAS_ADVANTAGES);
    size_t size;
    assert_int_equal(sl_batch_size(&d, &size), 0);
    uint8_t *buf;
    assert_int_equal(posix_memalign((void **)&buf, 64, size + 8), 0);
    sl_batch_writer w;
    assert_int_equal(sl_batch_writer_init(&w, buf + 4, size, &d, 0, 0, VOCAB), SL_EINVAL); /* misaligned */
    assert_int_equal(sl_batch_writer_init(&w, buf, size - 1, &d, 0, 0, VOCAB), SL_ERANGE);
    assert_int_equal(sl_batch_writer_init(&w, buf, size, &d, 0, 0, 0), SL_EINVAL);
    for (int c = 0; c < 14; c++) {
        tsample t = b.s[0];
        sl_batch_sample_in in = input_of(&t);
        int want = SL_EINVAL;
        switch (c) {
        case 0: t.tok[0] = VOCAB; break;
        case 1: t.tok[1] = -1; break;
        case 2: in.prompt_len = 0; break;
        case 3: in.prompt_len = t.n + 1; break;
        case 4: t.mask[0] = 1; break; /* on the prompt */
        case 5: t.mask[t.n - 1] = 2; break;
        case 6: t.lp[t.n - 1] = NAN; break;
        case 7: t.mask[t.n - 1] = 1; t.lp[t.n - 1] = 0.5f; break;
        case 8: t.adv[0] = INFINITY; break;
        case 9: in.reward = NAN; break;
        case 10: in.group_id ^= 1ull << 20; break;
        case 11: in.flags = 0x100; break;
        case 12: in.n_tokens = 0; break;
        case 13: t.tok[0] = 0; in.n_tokens = (uint32_t)d.n_tokens + 1; want = SL_ERANGE; break;
        }
        in.tokens = t.tok;
        in.logprobs = t.lp;
        in.loss_mask = t.mask;
        in.advantages = t.adv;
        assert_int_equal(sl_batch_writer_init(&w, buf, size, &d, 0, 0, VOCAB), 0);
        int rc = sl_batch_writer_add(&w, &in);
        if (rc != want) print_error("case %d: rc %d\n", c, rc);
        assert_int_equal(rc, want);
        assert_int_equal(sl_batch_writer_finish(&w, NULL), SL_EINVAL); /* failed writer */
    }
    /* more samples or meta bytes than the dims said, and counts short at finish */
    assert_int_equal(sl_batch_writer_init(&w, buf, size, &d, 0, 0, VOCAB), 0);
    sl_batch_sample_in in0 = input_of(&b.s[0]), in1 = input_of(&b.s[1]);
    assert_int_equal(sl_batch_writer_add(&w, &in0), 0);
    assert_int_equal(sl_batch_writer_finish(&w, NULL), SL_EINVAL);
    assert_int_equal(sl_batch_writer_add(&w, &in1), 0);
    assert_int_equal(sl_batch_writer_add(&w, &in1), SL_ERANGE);
    assert_int_equal(sl_batch_writer_init(&w, buf, size, &d, 0, 0, VOCAB), 0);
    in0.label = "a much longer label than the dims allowed for";
    assert_int_equal(sl_batch_writer_add(&w, &in0), SL_ERANGE);
    free(buf);
}

/* Corrupt a copy of a good batch with `mutate`, then expect `want` from
 * the reader with the checksum skipped, and a failure with it checked. */
typedef void (*mutator)(uint8_t *buf, const sl_batch_view *v);

static void expect_refused(const tbatch *b, mutator m, int want, size_t len_delta, const char *what) {
    uint8_t *buf;
    assert_int_equal(posix_memalign((void **)&buf, 64, b->size), 0);
    memcpy(buf, b->buf, b->size);
    sl_batch_view good, v;
    assert_int_equal(sl_batch_view_open(&good, b->buf, b->size, VOCAB, 0, NULL, 0), 0);
    /* views of the copy, writable for the mutator */
    m(buf, &good);
    size_t len = b->size - len_delta;
    char err[256] = "";
    int rc = sl_batch_view_open(&v, buf, len, VOCAB, SL_BATCH_SKIP_CHECKSUM, err, sizeof err);
    if (rc != want) print_error("%s: rc %d (want %d) err \"%s\"\n", what, rc, want, err);
    assert_int_equal(rc, want);
    assert_true(err[0] != 0);
    assert_int_equal(v.n_samples, 0); /* zeroed on error */
    assert_int_not_equal(sl_batch_view_open(&v, buf, len, VOCAB, 0, NULL, 0), 0);
    free(buf);
}

#define OFF(v, p) ((size_t)((const uint8_t *)(p) - (const uint8_t *)(v)->offsets) + 128)
/* writable pointer into buf at the same place as view pointer p */
#define AT(buf, v, p, T) ((T *)(void *)((buf) + OFF(v, p)))

static void m_magic(uint8_t *b, const sl_batch_view *v) { (void)v; b[0] ^= 1; }
static void m_version(uint8_t *b, const sl_batch_view *v) { (void)v; sl_put_u16(b + 4, 2); }
static void m_hsize(uint8_t *b, const sl_batch_view *v) { (void)v; sl_put_u16(b + 6, 64); }
static void m_flags(uint8_t *b, const sl_batch_view *v) { (void)v; sl_put_u32(b + 8, 0x10); }
static void m_padding(uint8_t *b, const sl_batch_view *v) { (void)v; b[100] = 1; }
static void m_nsamples(uint8_t *b, const sl_batch_view *v) { (void)v; sl_put_u32(b + 12, sl_get_u32(b + 12) + 1); }
static void m_nsamples_huge(uint8_t *b, const sl_batch_view *v) { (void)v; sl_put_u32(b + 12, 0xffffffffu); }
static void m_ntokens_huge(uint8_t *b, const sl_batch_view *v) { (void)v; sl_put_u64(b + 16, 1ull << 40); }
static void m_ntokens_wrap(uint8_t *b, const sl_batch_view *v) { (void)v; sl_put_u64(b + 16, UINT64_MAX); }
static void m_meta_huge(uint8_t *b, const sl_batch_view *v) { (void)v; sl_put_u64(b + 24, 1ull << 62); }
static void m_total(uint8_t *b, const sl_batch_view *v) { (void)v; sl_put_u64(b + 32, sl_get_u64(b + 32) - 8); }
static void m_vocab0(uint8_t *b, const sl_batch_view *v) { (void)v; sl_put_u32(b + 64, 0x80000000u); }
static void m_off0(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->offsets, uint64_t)[0] = 1; }
static void m_off_order(uint8_t *b, const sl_batch_view *v) {
    uint64_t *o = AT(b, v, v->offsets, uint64_t);
    uint64_t t = o[2];
    o[2] = o[1];
    o[1] = t;
}
static void m_off_past(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->offsets, uint64_t)[3] = 1ull << 60; }
static void m_off_last(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->offsets, uint64_t)[v->n_samples] -= 1; }
static void m_off_equal(uint8_t *b, const sl_batch_view *v) {
    uint64_t *o = AT(b, v, v->offsets, uint64_t);
    o[2] = o[1]; /* sample 1 empty */
}
static void m_plen0(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->prompt_len, uint32_t)[1] = 0; }
static void m_plen_big(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->prompt_len, uint32_t)[1] = 1000; }
static void m_token_vocab(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->tokens, int32_t)[5] = VOCAB; }
static void m_token_neg(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->tokens, int32_t)[7] = INT32_MIN; }
static void m_mask2(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->loss_mask, uint8_t)[v->n_tokens - 1] = 2; }
static void m_mask_prompt(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->loss_mask, uint8_t)[0] = 1; }
static void m_lp_nan(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->logprobs, float)[3] = NAN; }
static void m_lp_positive(uint8_t *b, const sl_batch_view *v) {
    /* a masked token (the last of sample 0 has mask 1 after this) with a positive log-prob */
    uint64_t last = v->offsets[1] - 1;
    AT(b, v, v->loss_mask, uint8_t)[last] = 1;
    AT(b, v, v->logprobs, float)[last] = 2.0f;
}
static void m_adv_inf(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->advantages, float)[2] = -INFINITY; }
static void m_reward_nan(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->rewards, float)[4] = NAN; }
static void m_group(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->group_ids, uint64_t)[2] += 1ull << 12; }
static void m_sflags(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->sample_flags, uint32_t)[0] = 0x80000000u; }
static void m_moff0(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->meta_off, uint64_t)[0] = 1; }
static void m_moff_order(uint8_t *b, const sl_batch_view *v) {
    uint64_t *o = AT(b, v, v->meta_off, uint64_t);
    o[2] = o[3] + 1;
}
static void m_moff_past(uint8_t *b, const sl_batch_view *v) { AT(b, v, v->meta_off, uint64_t)[5] = 1ull << 50; }
static void m_meta_nul(uint8_t *b, const sl_batch_view *v) {
    /* the NUL of sample 1's label (present: 1 % 3 != 0) */
    AT(b, v, v->meta, uint8_t)[v->meta_off[3] - 1] = 'x';
}

static void every_kind_of_corruption_is_refused(void **st) {
    (void)st;
    tbatch b;
    make_samples(&b, 10);
    build(&b, SL_BATCH_HAS_LOGPROBS | SL_BATCH_HAS_ADVANTAGES);
    struct { mutator m; int want; size_t cut; const char *what; } cases[] = {
        {m_magic, SL_EPROTO, 0, "bad magic"},
        {m_version, SL_EPROTO, 0, "unknown version"},
        {m_hsize, SL_EPROTO, 0, "header size"},
        {m_flags, SL_EPROTO, 0, "unknown flags"},
        {m_padding, SL_EPROTO, 0, "header padding"},
        {m_nsamples, SL_EINVAL, 0, "sample count disagrees with total_size"},
        {m_nsamples_huge, SL_ERANGE, 0, "sample count overflow"},
        {m_ntokens_huge, SL_ERANGE, 0, "token count overflow"},
        {m_ntokens_wrap, SL_ERANGE, 0, "token count 2^64-1"},
        {m_meta_huge, SL_ERANGE, 0, "meta count overflow"},
        {m_total, SL_EINVAL, 0, "total_size"},
        {m_vocab0, SL_EINVAL, 0, "header vocab"},
        {m_off0, SL_EINVAL, 0, "offsets[0]"},
        {m_off_order, SL_EINVAL, 0, "offsets not monotone"},
        {m_off_past, SL_EINVAL, 0, "offset past the end"},
        {m_off_last, SL_EINVAL, 0, "offsets[n] != n_tokens"},
        {m_off_equal, SL_EINVAL, 0, "empty sample"},
        {m_plen0, SL_EINVAL, 0, "prompt_len 0"},
        {m_plen_big, SL_EINVAL, 0, "prompt_len over the sample"},
        {m_token_vocab, SL_EINVAL, 0, "token id = vocab"},
        {m_token_neg, SL_EINVAL, 0, "negative token id"},
        {m_mask2, SL_EINVAL, 0, "mask value 2"},
        {m_mask_prompt, SL_EINVAL, 0, "mask on the prompt"},
        {m_lp_nan, SL_EINVAL, 0, "NaN log-prob"},
        {m_lp_positive, SL_EINVAL, 0, "positive log-prob on a trained token"},
        {m_adv_inf, SL_EINVAL, 0, "infinite advantage"},
        {m_reward_nan, SL_EINVAL, 0, "NaN reward"},
        {m_group, SL_EINVAL, 0, "group id not the sample's prompt"},
        {m_sflags, SL_EINVAL, 0, "unknown sample flags"},
        {m_moff0, SL_EINVAL, 0, "meta_off[0]"},
        {m_moff_order, SL_EINVAL, 0, "meta offsets not monotone"},
        {m_moff_past, SL_EINVAL, 0, "meta offset past the end"},
        {m_meta_nul, SL_EINVAL, 0, "string without NUL"},
        {m_padding, SL_ERANGE, b.size - 100, "truncated header"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) expect_refused(&b, cases[i].m, cases[i].want, cases[i].cut, cases[i].what);

    sl_batch_view v;
    char err[256];
    /* truncated by one byte, or to nothing */
    assert_int_equal(sl_batch_view_open(&v, b.buf, b.size - 1, VOCAB, 0, err, sizeof err), SL_ERANGE);
    assert_non_null(strstr(err, "truncated"));
    assert_int_equal(sl_batch_view_open(&v, b.buf, 0, VOCAB, 0, err, sizeof err), SL_ERANGE);
    assert_int_equal(sl_batch_view_open(&v, NULL, b.size, VOCAB, 0, err, sizeof err), SL_EINVAL);
    /* a consumer with a smaller vocabulary refuses ids beyond it */
    assert_int_equal(sl_batch_view_open(&v, b.buf, b.size, 10, 0, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "outside vocabulary"));
    /* a token changed to another valid id: only the checksum tells */
    uint8_t *buf;
    assert_int_equal(posix_memalign((void **)&buf, 64, b.size + 8), 0);
    memcpy(buf, b.buf, b.size);
    sl_batch_view good;
    assert_int_equal(sl_batch_view_open(&good, b.buf, b.size, VOCAB, 0, NULL, 0), 0);
    int32_t *t = AT(buf, &good, good.tokens, int32_t);
    t[0] = (t[0] + 1) % VOCAB;
    assert_int_equal(sl_batch_view_open(&v, buf, b.size, VOCAB, 0, err, sizeof err), SL_ECHECKSUM);
    assert_int_equal(sl_batch_view_open(&v, buf, b.size, VOCAB, SL_BATCH_SKIP_CHECKSUM, err, sizeof err), 0);
    /* a misaligned buffer is refused rather than read unaligned */
    memmove(buf + 4, b.buf, b.size);
    assert_int_equal(sl_batch_view_open(&v, buf + 4, b.size, VOCAB, 0, err, sizeof err), SL_EINVAL);
    free(buf);
    free(b.buf);
}

/* Read every byte a view points at (ASan would flag any outside the buffer). */
static uint64_t touch(const sl_batch_view *v) {
    uint64_t acc = 0;
    for (uint32_t i = 0; i < v->n_samples; i++) {
        sl_batch_sample s;
        assert_int_equal(sl_batch_view_sample(v, i, &s), 0);
        for (uint32_t k = 0; k < s.n_tokens; k++) {
            acc += (uint64_t)s.tokens[k] + s.loss_mask[k];
            if (s.logprobs) acc += (uint64_t)(int64_t)s.logprobs[k];
            if (s.advantages) acc += (uint64_t)(int64_t)s.advantages[k];
        }
        if (s.label) acc += strlen(s.label);
        if (s.metadata) acc += strlen(s.metadata);
        acc += s.sample_id + s.group_id + s.weight_version + s.flags;
    }
    return acc;
}

static void random_mutations_never_crash_the_reader(void **st) {
    (void)st;
    tbatch b;
    make_samples(&b, 16);
    build(&b, SL_BATCH_HAS_LOGPROBS | SL_BATCH_HAS_ADVANTAGES);
    int accepted = 0, refused = 0;
    for (int it = 0; it < 2000; it++) {
        size_t len = b.size;
        if (it % 10 == 9) len = (size_t)(rnd() % (b.size + 1)); /* truncation */
        uint8_t *buf;
        assert_int_equal(posix_memalign((void **)&buf, 64, len ? len : 1), 0);
        memcpy(buf, b.buf, len);
        int nmut = 1 + (int)(rnd() % 8);
        for (int k = 0; k < nmut && len; k++) {
            size_t pos = (size_t)(rnd() % len);
            switch (rnd() % 4) {
            case 0: buf[pos] ^= (uint8_t)(1u << (rnd() % 8)); break;  /* bit flip */
            case 1: buf[pos] = (uint8_t)rnd(); break;                    /* random byte */
            case 2:                                                      /* a header field */
                if (len >= 72) {
                    static const size_t fields[] = {12, 16, 24, 32, 64};
                    size_t f = fields[rnd() % SL_ARRAY_LEN(fields)];
                    uint64_t vals[] = {0, 1, UINT32_MAX, UINT64_MAX, 1ull << 31, rnd()};
                    if (f == 12 || f == 64) sl_put_u32(buf + f, (uint32_t)vals[rnd() % 6]);
                    else sl_put_u64(buf + f, vals[rnd() % 6]);
                }
                break;
            case 3:                                                      /* an 8-byte word */
                if (len >= 8) sl_put_u64(buf + (pos & ~(size_t)7) - ((pos & ~(size_t)7) + 8 > len ? 8 : 0), rnd());
                break;
            }
        }
        sl_batch_view v;
        unsigned flags = it % 2 ? SL_BATCH_SKIP_CHECKSUM : 0;
        int rc = sl_batch_view_open(&v, buf, len, VOCAB, flags, NULL, 0);
        if (rc == 0) {
            accepted++;
            assert_true(v.size <= len);
            touch(&v);
        } else {
            refused++;
            assert_true(rc == SL_EINVAL || rc == SL_EPROTO || rc == SL_ERANGE || rc == SL_ECHECKSUM);
        }
        free(buf);
    }
    /* most mutations are caught; some (a float changed to another finite
     * float, with the checksum skipped) are legitimately accepted */
    assert_true(refused > 1000);
    assert_int_equal(accepted + refused, 2000);
    free(b.buf);
}

int main(void) {
    sl_log_init("test_sample_batch", SL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_batch_round_trips_through_writer_and_reader),
        cmocka_unit_test(optional_arrays_are_absent_without_their_flags),
        cmocka_unit_test(sizes_over_the_limits_are_refused),
        cmocka_unit_test(the_writer_refuses_samples_that_break_a_rule),
        cmocka_unit_test(every_kind_of_corruption_is_refused),
        cmocka_unit_test(random_mutations_never_crash_the_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
