/*
 * sampler.c — temperature / top-k / top-p sampling of one logits row with a
 * counter-based random number per (seed, sequence, step). See sampler.h.
 * Probabilities are handled in double. Only the part of the vocabulary that
 * top-k / top-p can keep is sorted (quickselect, then a sort of the head).
 */
#include "sampler.h"

#include "base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    double x;   /* logit / T */
    int32_t id;
} cand;

void sl_sampler_cfg_default(sl_sampler_cfg *cfg) {
    cfg->temperature = 1.0f;
    cfg->top_k = 0;
    cfg->top_p = 1.0f;
    cfg->seed = 0;
}

int sl_sampler_cfg_check(const sl_sampler_cfg *cfg) {
    if (!cfg) return SL_EINVAL;
    if (!isfinite(cfg->temperature) || cfg->temperature < 0) return SL_EINVAL;
    if (cfg->top_k < 0) return SL_EINVAL;
    if (!(cfg->top_p > 0.0f && cfg->top_p <= 1.0f)) return SL_EINVAL;
    return SL_OK;
}

size_t sl_sampler_scratch_bytes(int32_t vocab) {
    return vocab > 0 ? (size_t)vocab * sizeof(cand) : sizeof(cand);
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double sl_sampler_uniform(uint64_t seed, uint64_t seq_id, uint64_t step) {
    uint64_t h = splitmix64(seed);
    h = splitmix64(h ^ seq_id);
    h = splitmix64(h ^ (step * 0xd1b54a32d192ed03ull));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

float sl_logprob_of(const float *logits, int32_t vocab, float temperature, int32_t token) {
    if (!logits || vocab < 1 || token < 0 || token >= vocab) return NAN;
    double t = temperature > 0 ? (double)temperature : 1.0;
    double mx = -INFINITY;
    for (int32_t i = 0; i < vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    if (mx == -INFINITY) return NAN;
    double s = 0;
    for (int32_t i = 0; i < vocab; i++) s += exp(((double)logits[i] - mx) / t);
    return (float)(((double)logits[token] - mx) / t - log(s));
}

/* Order: larger x first, then lower id. A strict total order. */
static int before(const cand *a, const cand *b) {
    return a->x > b->x || (a->x == b->x && a->id < b->id);
}

static int cmp_cand(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (before(a, b)) return -1;
    if (before(b, a)) return 1;
    return 0;
}

static void swap_c(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Rearrange c[0..n) so that its first m elements are the m first in the
 * order above (unsorted among themselves). Hoare-style quickselect with a
 * deterministic middle pivot. */
static void select_head(cand *c, size_t n, size_t m) {
    size_t lo = 0, hi = n;
    while (hi - lo > 1 && m > lo && m < hi) {
        size_t mid = lo + (hi - lo) / 2;
        swap_c(&c[mid], &c[hi - 1]);
        cand piv = c[hi - 1];
        size_t store = lo;
        for (size_t i = lo; i < hi - 1; i++)
            if (before(&c[i], &piv)) swap_c(&c[i], &c[store++]);
        swap_c(&c[store], &c[hi - 1]);
        if (store == m || store + 1 == m) return;
        if (store > m) hi = store;
        else lo = store + 1;
    }
}

int sl_sample_logits(const float *logits, int32_t vocab, const sl_sampler_cfg *cfg,
                     uint64_t seq_id, uint64_t step, void *scratch, sl_sample *out) {
    if (!logits || !out || vocab < 1 || sl_sampler_cfg_check(cfg) != SL_OK) return SL_EINVAL;
    float fmx = -INFINITY;
    int32_t arg = -1;
    for (int32_t i = 0; i < vocab; i++) {
        float l = logits[i];
        if (isnan(l) || l == INFINITY) return SL_EINVAL;
        if (l > fmx) {
            fmx = l;
            arg = i;
        }
    }
    if (arg < 0) return SL_EINVAL; /* every logit -inf */
    if (cfg->temperature == 0.0f) {
        out->token = arg;
        out->logprob = sl_logprob_of(logits, vocab, 1.0f, arg);
        out->logprob_sampled = 0.0f;
        return SL_OK;
    }
    cand *c = scratch;
    void *owned = NULL;
    if (!c) {
        owned = c = malloc(sl_sampler_scratch_bytes(vocab));
        if (!c) return SL_ENOMEM;
    }
    const double t = cfg->temperature;
    const double mx = (double)fmx / t;
    size_t cnt = 0;
    double z_all = 0;
    for (int32_t i = 0; i < vocab; i++) {
        if (logits[i] == -INFINITY) continue;
        c[cnt].x = (double)logits[i] / t;
        c[cnt].id = i;
        z_all += exp(c[cnt].x - mx);
        cnt++;
    }
    /* kept = c[0..kept) holds the candidates; sorted = whether they are in
     * the order above (needed for top-p) */
    size_t kept = cnt;
    double z = z_all;
    int truncated = 0;
    if (cfg->top_k > 0 && (size_t)cfg->top_k < cnt) {
        size_t k = (size_t)cfg->top_k;
        select_head(c, cnt, k);
        qsort(c, k, sizeof *c, cmp_cand);
        double thr = c[k - 1].x;
        for (size_t i = k; i < cnt; i++) /* ties with the k-th value stay */
            if (c[i].x == thr) swap_c(&c[i], &c[k++]);
        if (k > (size_t)cfg->top_k) qsort(c, k, sizeof *c, cmp_cand);
        kept = k;
        z = 0;
        for (size_t i = 0; i < kept; i++) z += exp(c[i].x - mx);
        truncated = kept < cnt;
    }
    if (cfg->top_p < 1.0f) {
        const double p = cfg->top_p;
        if (!truncated) {
            /* find a sorted head holding mass >= p: grow it until it does */
            size_t m = cnt < 256 ? cnt : 256;
            for (;;) {
                select_head(c, cnt, m);
                qsort(c, m, sizeof *c, cmp_cand);
                double mass = 0;
                for (size_t i = 0; i < m; i++) mass += exp(c[i].x - mx);
                if (m == cnt || mass / z >= p) break;
                m = m * 4 < cnt ? m * 4 : cnt;
            }
            kept = m;
        }
        double before_mass = 0;
        size_t n = 0;
        while (n < kept && (n == 0 || before_mass / z < p)) {
            before_mass += exp(c[n].x - mx);
            n++;
        }
        kept = n;
        z = before_mass;
    }
    double u = sl_sampler_uniform(cfg->seed, seq_id, step) * z;
    double acc = 0;
    size_t pick = kept - 1;
    for (size_t i = 0; i < kept; i++) {
        acc += exp(c[i].x - mx);
        if (u < acc) {
            pick = i;
            break;
        }
    }
    double e = exp(c[pick].x - mx);
    out->token = c[pick].id;
    out->logprob = (float)(c[pick].x - mx - log(z_all));
    out->logprob_sampled = (float)log(e / z);
    free(owned);
    return SL_OK;
}
