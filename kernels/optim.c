/*
 * optim.c — AdamW (torch.optim.AdamW arithmetic), global-norm clipping and
 * Megatron-style learning-rate schedules on flat fp32 arrays. See optim.h.
 */
#include "optim.h"

#include "base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ AdamW */

void sl_adamw_params_default(sl_adamw_params *p) {
    p->beta1 = 0.9;
    p->beta2 = 0.999;
    p->eps = 1e-8;
    p->weight_decay = 0.01;
}

int sl_adamw_init(sl_adamw *opt, size_t n, const sl_adamw_params *p) {
    memset(opt, 0, sizeof *opt);
    sl_adamw_params d;
    sl_adamw_params_default(&d);
    if (p) d = *p;
    if (!(d.beta1 >= 0 && d.beta1 < 1) || !(d.beta2 >= 0 && d.beta2 < 1) || !(d.eps >= 0) ||
        !(d.weight_decay >= 0))
        return SL_EINVAL;
    opt->p = d;
    opt->n = n;
    opt->m = calloc(n ? n : 1, sizeof(float));
    opt->v = calloc(n ? n : 1, sizeof(float));
    if (!opt->m || !opt->v) {
        sl_adamw_fini(opt);
        return SL_ENOMEM;
    }
    return SL_OK;
}

void sl_adamw_fini(sl_adamw *opt) {
    if (!opt) return;
    free(opt->m);
    free(opt->v);
    free(opt->no_decay);
    memset(opt, 0, sizeof *opt);
}

static int cmp_range(const void *a, const void *b) {
    const sl_range *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

int sl_adamw_set_no_decay(sl_adamw *opt, const sl_range *ranges, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (ranges[i].off > opt->n || ranges[i].len > opt->n - ranges[i].off) return SL_ERANGE;
    sl_range *r = malloc((n ? n : 1) * sizeof *r);
    if (!r) return SL_ENOMEM;
    if (n) memcpy(r, ranges, n * sizeof *r);
    qsort(r, n, sizeof *r, cmp_range);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!r[i].len) continue;
        if (k && r[i].off <= r[k - 1].off + r[k - 1].len) {
            size_t end = r[i].off + r[i].len;
            if (end > r[k - 1].off + r[k - 1].len) r[k - 1].len = end - r[k - 1].off;
        } else {
            r[k++] = r[i];
        }
    }
    free(opt->no_decay);
    opt->no_decay = r;
    opt->n_no_decay = k;
    return SL_OK;
}

void sl_adamw_update(float *params, const float *grads, float *m, float *v, size_t n,
                     double lr, double beta1, double beta2, double eps, double weight_decay,
                     int64_t step) {
    /* Scalars as Python computes them (double), handed to the float kernels
     * as torch does (converted to the tensor's type). */
    const float decay = (float)(1.0 - lr * weight_decay);
    const float w1 = (float)(1.0 - beta1);
    const float b2 = (float)beta2;
    const float w2 = (float)(1.0 - beta2);
    const double bc1 = 1.0 - pow(beta1, (double)step);
    const double bc2 = 1.0 - pow(beta2, (double)step);
    const float neg_step_size = (float)(-(lr / bc1));
    const float bc2_sqrt = (float)sqrt(bc2);
    const float feps = (float)eps;
    const int do_decay = weight_decay != 0.0;
    /* exp_avg.lerp_(grad, w1): torch's lerp uses self + w*(end-self) when
     * |w| < 0.5, else end - (end-self)*(1-w). */
    const int lerp_low = fabs((double)w1) < 0.5;
    const float w1c = (float)(1.0 - (double)w1);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float p = params[i], g = grads[i];
        if (do_decay) p = p * decay;
        float mi = m[i];
        mi = lerp_low ? mi + w1 * (g - mi) : g - (g - mi) * w1c;
        float vi = v[i] * b2 + w2 * g * g;
        float denom = sqrtf(vi) / bc2_sqrt + feps;
        p = p + neg_step_size * mi / denom;
        m[i] = mi;
        v[i] = vi;
        params[i] = p;
    }
}

void sl_adamw_step(sl_adamw *opt, float *params, const float *grads, double lr) {
    opt->step++;
    const sl_adamw_params *h = &opt->p;
    size_t at = 0;
    for (size_t r = 0; r <= opt->n_no_decay; r++) {
        size_t end = r < opt->n_no_decay ? opt->no_decay[r].off : opt->n;
        if (end > at)
            sl_adamw_update(params + at, grads + at, opt->m + at, opt->v + at, end - at, lr,
                            h->beta1, h->beta2, h->eps, h->weight_decay, opt->step);
        if (r < opt->n_no_decay) {
            const sl_range *nd = &opt->no_decay[r];
            sl_adamw_update(params + nd->off, grads + nd->off, opt->m + nd->off, opt->v + nd->off,
                            nd->len, lr, h->beta1, h->beta2, h->eps, 0.0, opt->step);
            at = nd->off + nd->len;
        }
    }
}

/* ------------------------------------------------------------- clipping */

/* The sum of squares in one order whatever the thread count: per chunk of
 * 16384 (in parallel), then the chunks in order. (An OpenMP reduction adds
 * the threads' partial sums in the order they finish: with 3+ threads the
 * norm, and so the clipping, changed in the last bits from run to run.) */
double sl_grad_norm(const float *g, size_t n) {
    enum { CHUNK = 16384, ON_STACK = 64 };
    size_t nc = (n + CHUNK - 1) / CHUNK;
    double stack[ON_STACK], *part = nc <= ON_STACK ? stack : malloc(nc * sizeof *part);
    double s = 0.0;
    if (!part) { /* out of memory: one thread, the same order */
        for (size_t c = 0; c < nc; c++) {
            double p = 0.0;
            for (size_t i = c * CHUNK; i < n && i < (c + 1) * CHUNK; i++) p += (double)g[i] * (double)g[i];
            s += p;
        }
        return sqrt(s);
    }
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t c = 0; c < nc; c++) {
        double p = 0.0;
        size_t hi = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (size_t i = c * CHUNK; i < hi; i++) p += (double)g[i] * (double)g[i];
        part[c] = p;
    }
    for (size_t c = 0; c < nc; c++) s += part[c];
    if (part != stack) free(part);
    return sqrt(s);
}

double sl_grad_clip(float *g, size_t n, double max_norm) {
    double total = sl_grad_norm(g, n);
    if (!isfinite(total) || !(max_norm > 0)) return total;
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) {
        const float c = (float)coef;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) g[i] *= c;
    }
    return total;
}

/* ------------------------------------------------------------ schedules */

int sl_lr_decay_style_from_name(const char *name, sl_lr_decay_style *out) {
    if (!name) return SL_EINVAL;
    if (!strcmp(name, "constant")) *out = SL_LR_CONSTANT;
    else if (!strcmp(name, "linear")) *out = SL_LR_LINEAR;
    else if (!strcmp(name, "cosine")) *out = SL_LR_COSINE;
    else return SL_EINVAL;
    return SL_OK;
}

const char *sl_lr_decay_style_name(sl_lr_decay_style s) {
    switch (s) {
    case SL_LR_CONSTANT: return "constant";
    case SL_LR_LINEAR: return "linear";
    case SL_LR_COSINE: return "cosine";
    }
    return "?";
}

double sl_lr_at(const sl_lr_schedule *s, int64_t step) {
    if (step < 0) step = 0;
    if (s->lr_warmup_steps > 0 && step <= s->lr_warmup_steps)
        return s->lr_warmup_init +
               (s->lr - s->lr_warmup_init) * (double)step / (double)s->lr_warmup_steps;
    if (s->lr_decay_style == SL_LR_CONSTANT) return s->lr;
    if (step > s->lr_decay_steps) return s->min_lr;
    int64_t warm = s->lr_warmup_steps > 0 ? s->lr_warmup_steps : 0;
    int64_t window = s->lr_decay_steps - warm;
    if (window <= 0) return s->min_lr;
    double r = (double)(step - warm) / (double)window;
    if (r < 0) r = 0;
    if (r > 1) r = 1;
    double coeff = s->lr_decay_style == SL_LR_LINEAR ? 1.0 - r : 0.5 * (cos(M_PI * r) + 1.0);
    return s->min_lr + coeff * (s->lr - s->min_lr);
}
