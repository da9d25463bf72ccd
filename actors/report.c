/*
 * report.c — RUN_DIR/report.html: metrics.jsonl as inline SVG charts, the
 * topology, actor restarts, sample tables. See report.h. It reads files
 * and writes one page; it knows nothing of the running system.
 */
#include "report.h"

#include "base.h"
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE (1u << 20)        /* longer lines are skipped */
#define MAX_ROWS 1000000           /* metrics rows kept */
#define MAX_POINTS 1500            /* points drawn per chart (stride beyond) */
#define MAX_CONFIG (256u << 10)    /* topology.conf bytes shown */
#define MAX_SAMPLE_TEXT 2000       /* prompt/response bytes shown */
#define MAX_SAMPLE_WRITE (64u << 10)
#define MAX_STATUS (4u << 20)
#define MAX_ACTORS 256
#define MAX_EVENTS 40

/* ============================================================== escaping */

/* Write S[0..N) HTML-escaped. Control characters other than \n and \t are
 * dropped (they have no business in a page and some are invalid in HTML). */
static void esc_n(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) break;
            fputc(c, f);
        }
    }
}

static void esc(FILE *f, const char *s) { esc_n(f, s ? s : "", s ? strlen(s) : 0); }

/* Longest prefix of S[0..n) of at most MAX bytes that does not cut a
 * UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80) k--;
    return k;
}

/* Numbers for labels: short and readable. */
static void fmt_num(char *b, size_t n, double v) {
    double a = fabs(v);
    if (v == 0) snprintf(b, n, "0");
    else if (a >= 1e6 || a < 1e-3) snprintf(b, n, "%.3g", v);
    else if (a >= 100) snprintf(b, n, "%.0f", v);
    else snprintf(b, n, "%.4g", v);
}

/* ============================================================ line input */

typedef int (*line_fn)(void *ctx, const char *line, size_t len); /* 0 used, 1 skipped */

/* Call FN for each non-blank line of PATH; lines over MAX_LINE count as
 * skipped. Returns SL_ENOENT when PATH cannot be opened. */
static int each_line(const char *path, line_fn fn, void *ctx, int *used, int *skipped) {
    FILE *f = fopen(path, "rb");
    if (!f) return SL_ENOENT;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        size_t k = (size_t)n;
        while (k && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' ')) k--;
        size_t b = 0;
        while (b < k && (line[b] == ' ' || line[b] == '\t')) b++;
        if (b == k) continue;
        if (k > MAX_LINE || fn(ctx, line + b, k - b) != 0) (*skipped)++;
        else (*used)++;
    }
    free(line);
    fclose(f);
    return SL_OK;
}

static json_t *parse_object(const char *line, size_t len) {
    json_error_t e;
    json_t *o = json_loadb(line, len, 0, &e);
    if (o && !json_is_object(o)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* =============================================================== metrics */

enum { PH_NONE, PH_SFT, PH_RL, PH_EVAL, PH_OTHER };

static const struct chart_def {
    const char *key, *title, *color;
} CHARTS[] = {
    {"reward_mean", "Reward (mean)", "#1f77b4"},
    {"eval_accuracy", "Eval accuracy", "#2ca02c"},
    {"response_len_mean", "Response length (mean tokens)", "#ff7f0e"},
    {"kl", "KL", "#d62728"},
    {"entropy", "Entropy", "#9467bd"},
    {"tokens_per_s", "Throughput (tokens/s)", "#8c564b"},
};
#define N_CHARTS 6

typedef struct {
    double step;
    int phase;
    double v[N_CHARTS];
} row;

typedef struct {
    row *r;
    size_t n, cap;
    int full;
    double last_weight_version, last_samples_trained;
} metrics;

static int metrics_line(void *ctx, const char *line, size_t len) {
    metrics *m = ctx;
    json_t *o = parse_object(line, len);
    if (!o) return 1;
    json_t *s = json_object_get(o, "step");
    if (!json_is_number(s) || !isfinite(json_number_value(s)) || fabs(json_number_value(s)) > 1e15) {
        json_decref(o);
        return 1;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        row *r = m->n < MAX_ROWS ? realloc(m->r, cap * sizeof *r) : NULL;
        if (!r) {
            m->full = 1;
            json_decref(o);
            return 1;
        }
        m->r = r, m->cap = cap;
    }
    row *r = &m->r[m->n++];
    r->step = json_number_value(s);
    const char *ph = json_string_value(json_object_get(o, "phase"));
    r->phase = !ph ? PH_NONE : !strcmp(ph, "sft") ? PH_SFT : !strcmp(ph, "rl") ? PH_RL
             : !strcmp(ph, "eval") ? PH_EVAL : PH_OTHER;
    for (int c = 0; c < N_CHARTS; c++) {
        json_t *v = json_object_get(o, CHARTS[c].key);
        r->v[c] = json_is_number(v) && isfinite(json_number_value(v)) ? json_number_value(v) : NAN;
    }
    json_t *wv = json_object_get(o, "weight_version"), *st = json_object_get(o, "samples_trained");
    if (json_is_number(wv)) m->last_weight_version = json_number_value(wv);
    if (json_is_number(st)) m->last_samples_trained = json_number_value(st);
    json_decref(o);
    return 0;
}

/* ================================================================ charts */

/* A "nice" tick spacing (1, 2 or 5 times a power of ten) for RANGE in
 * about N intervals. */
static double nice_step(double range, int n) {
    if (!(range > 0) || !isfinite(range)) return 1;
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

typedef struct {
    double x0, x1; /* step domain */
} xdomain;

#define CW 560
#define CH 290
#define ML 66
#define MR 18
#define MT 34
#define MB 46

static int cmp_step(const void *a, const void *b) {
    const row *x = *(const row *const *)a, *y = *(const row *const *)b;
    return x->step < y->step ? -1 : x->step > y->step;
}

static void chart(FILE *f, const metrics *m, row **sorted, int c, xdomain xd) {
    const struct chart_def *d = &CHARTS[c];
    size_t np = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < m->n; i++)
        if (!isnan(sorted[i]->v[c])) {
            np++;
            lo = fmin(lo, sorted[i]->v[c]);
            hi = fmax(hi, sorted[i]->v[c]);
        }
    fprintf(f, "<figure class=\"chart\"><svg id=\"chart-%s\" viewBox=\"0 0 %d %d\" role=\"img\" "
               "aria-label=\"", d->key, CW, CH);
    esc(f, d->title);
    fprintf(f, " over steps\">\n<text class=\"title\" x=\"%d\" y=\"20\">", ML);
    esc(f, d->title);
    fprintf(f, "</text>\n");
    double pw = CW - ML - MR, ph = CH - MT - MB;
    if (np == 0) {
        fprintf(f, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\"/>\n"
                   "<text class=\"nodata\" x=\"%.0f\" y=\"%.0f\">no data</text>\n</svg></figure>\n",
                ML, MT, pw, ph, ML + pw / 2, MT + ph / 2);
        return;
    }
    if (hi == lo) {
        double pad = lo == 0 ? 1 : fabs(lo) * 0.1;
        lo -= pad, hi += pad;
    }
    double ys = nice_step(hi - lo, 5);
    lo = floor(lo / ys) * ys, hi = ceil(hi / ys) * ys;
    double x0 = xd.x0, x1 = xd.x1;
#define PX(s) (ML + ((s) - x0) / (x1 - x0) * pw)
#define PY(v) (MT + ph - ((v) - lo) / (hi - lo) * ph)
    /* Phase shading: runs of consecutive sft / rl rows (eval rows are
     * interleaved and do not break a run), each from its first step to the
     * next run's first step. */
    int run_phase = -1;
    double run_start = 0;
    for (size_t i = 0; i <= m->n; i++) {
        int p = i < m->n ? sorted[i]->phase : -2;
        if (i < m->n && p != PH_SFT && p != PH_RL) continue;
        if (p == run_phase) continue;
        if (run_phase == PH_SFT || run_phase == PH_RL) {
            double end = i < m->n ? sorted[i]->step : x1;
            fprintf(f, "<rect class=\"phase-%s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%.0f\"/>\n",
                    run_phase == PH_SFT ? "sft" : "rl", PX(run_start), MT, fmax(PX(end) - PX(run_start), 1.5), ph);
        }
        run_phase = p;
        if (i < m->n) run_start = sorted[i]->step;
    }
    /* Grid, ticks and labels. */
    char b[32];
    for (double v = lo; v <= hi + ys * 1e-6; v += ys) {
        double y = PY(v);
        fmt_num(b, sizeof b, fabs(v) < ys * 1e-9 ? 0 : v);
        fprintf(f, "<line class=\"grid\" x1=\"%d\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<line class=\"tick\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<text class=\"ylab\" x=\"%d\" y=\"%.1f\">%s</text>\n",
                ML, ML + pw, y, y, ML - 5, ML, y, y, ML - 8, y + 4, b);
    }
    double xs = fmax(nice_step(x1 - x0, 6), 1);
    for (double s = ceil(x0 / xs) * xs; s <= x1 + xs * 1e-6; s += xs) {
        double x = PX(s);
        fmt_num(b, sizeof b, s);
        fprintf(f, "<line class=\"tick\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\"/>"
                   "<text class=\"xlab\" x=\"%.1f\" y=\"%.0f\">%s</text>\n",
                x, x, MT + ph, MT + ph + 5, x, MT + ph + 18, b);
    }
    fprintf(f, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%.0f\"/>"
               "<line class=\"axis\" x1=\"%d\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\"/>\n",
            ML, ML, MT, MT + ph, ML, ML + pw, MT + ph, MT + ph);
    fprintf(f, "<text class=\"axlab\" x=\"%.0f\" y=\"%d\">step</text>\n", ML + pw / 2, CH - 6);
    fprintf(f, "<text class=\"axlab\" transform=\"translate(14 %.0f) rotate(-90)\">", MT + ph / 2);
    esc(f, d->key);
    fprintf(f, "</text>\n");
    /* The series: one path, strided when there are many points. */
    size_t stride = np > MAX_POINTS ? (np + MAX_POINTS - 1) / MAX_POINTS : 1, k = 0, drawn = 0;
    fprintf(f, "<path class=\"series\" stroke=\"%s\" d=\"", d->color);
    size_t last = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (isnan(sorted[i]->v[c])) continue;
        last = i;
        if (k++ % stride) continue;
        fprintf(f, "%s%.1f %.1f", drawn++ ? " L" : "M", PX(sorted[i]->step), PY(sorted[i]->v[c]));
    }
    if ((k - 1) % stride) fprintf(f, " L%.1f %.1f", PX(sorted[last]->step), PY(sorted[last]->v[c]));
    fprintf(f, "\"/>\n");
    if (np <= 60)
        for (size_t i = 0; i < m->n; i++)
            if (!isnan(sorted[i]->v[c]))
                fprintf(f, "<circle class=\"pt\" fill=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"%s\"/>", d->color,
                        PX(sorted[i]->step), PY(sorted[i]->v[c]), np == 1 ? "4" : "2.5");
    fmt_num(b, sizeof b, sorted[last]->v[c]);
    fprintf(f, "\n<text class=\"lastval\" x=\"%d\" y=\"20\" fill=\"%s\">last %s</text>\n", CW - MR, d->color, b);
    fprintf(f, "</svg></figure>\n");
#undef PX
#undef PY
}

/* ============================================================== restarts */

typedef struct {
    char name[64];
    int starts;
} actor_starts;

typedef struct {
    actor_starts a[MAX_ACTORS];
    int n;
    char *ev[MAX_EVENTS]; /* ring of the latest notable lines */
    int nev, evpos;
} suplog;

static int suplog_line(void *ctx, const char *line, size_t len) {
    suplog *s = ctx;
    /* "2026-...Z LEVEL message" */
    const char *sp = memchr(line, ' ', len);
    if (!sp) return 1;
    const char *lv = sp + 1, *end = line + len;
    const char *sp2 = memchr(lv, ' ', (size_t)(end - lv));
    if (!sp2) return 1;
    const char *msg = sp2 + 1;
    size_t mlen = (size_t)(end - msg);
    char buf[512];
    size_t k = mlen < sizeof buf - 1 ? mlen : sizeof buf - 1;
    memcpy(buf, msg, k);
    buf[k] = 0;
    char name[64];
    if (sscanf(buf, "started %63s (", name) == 1) {
        int i;
        for (i = 0; i < s->n && strcmp(s->a[i].name, name); i++) {}
        if (i == s->n && s->n < MAX_ACTORS) snprintf(s->a[s->n++].name, sizeof s->a[0].name, "%s", name);
        if (i < s->n) s->a[i].starts++;
        return 0;
    }
    if (strstr(buf, ") ended: ") || strstr(buf, " is hung") || strstr(buf, "restart intensity") ||
        strstr(buf, ": restarting ")) {
        char *copy = strndup(line, len < 400 ? len : 400);
        if (!copy) return 0;
        free(s->ev[s->evpos]);
        s->ev[s->evpos] = copy;
        s->evpos = (s->evpos + 1) % MAX_EVENTS;
        if (s->nev < MAX_EVENTS) s->nev++;
    }
    return 0;
}

static const char *jstr(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Returns total restarts, or -1 when there is no record. */
static int restarts_section(FILE *f, const char *run_dir) {
    char p[4200];
    int total = -1;
    fputs("<section id=\"restarts\"><h2>Actor restarts</h2>\n", f);
    snprintf(p, sizeof p, "%s/status.json", run_dir);
    struct stat st;
    json_t *o = NULL;
    if (stat(p, &st) == 0 && st.st_size <= (off_t)MAX_STATUS) {
        json_error_t e;
        o = json_load_file(p, 0, &e);
    }
    json_t *actors = o ? json_object_get(o, "actors") : NULL;
    if (json_is_array(actors)) {
        total = 0;
        fputs("<p class=\"src\">from status.json</p>\n<table class=\"actors\"><tr><th>actor</th><th>kind</th>"
              "<th>pid</th><th>state</th><th>restarts</th><th>last exit</th></tr>\n", f);
        size_t i;
        json_t *a;
        json_array_foreach(actors, i, a) {
            if (!json_is_object(a)) continue;
            json_int_t r = json_integer_value(json_object_get(a, "restarts"));
            if (r > 0 && r < 1000000000) total += (int)r;
            fputs("<tr class=\"actor\"><td>", f);
            esc(f, jstr(a, "name"));
            fputs("</td><td>", f);
            esc(f, jstr(a, "kind"));
            fprintf(f, "</td><td>%lld</td><td>", (long long)json_integer_value(json_object_get(a, "pid")));
            esc(f, jstr(a, "state"));
            fprintf(f, "</td><td class=\"num%s\">%lld</td><td>", r > 0 ? " warn" : "", (long long)r);
            esc(f, jstr(a, "last_exit"));
            fputs("</td></tr>\n", f);
        }
        fputs("</table>\n", f);
        json_decref(o);
        fprintf(f, "<p>%d restart%s in total.</p></section>\n", total, total == 1 ? "" : "s");
        return total;
    }
    json_decref(o);
    suplog *s = calloc(1, sizeof *s);
    int used = 0, skipped = 0;
    snprintf(p, sizeof p, "%s/logs/supervisor.log", run_dir);
    if (s && each_line(p, suplog_line, s, &used, &skipped) == SL_OK) {
        total = 0;
        fputs("<p class=\"src\">from logs/supervisor.log</p>\n<table class=\"actors\"><tr><th>actor</th>"
              "<th>starts</th><th>restarts</th></tr>\n", f);
        for (int i = 0; i < s->n; i++) {
            int r = s->a[i].starts - 1;
            total += r;
            fputs("<tr class=\"actor\"><td>", f);
            esc(f, s->a[i].name);
            fprintf(f, "</td><td class=\"num\">%d</td><td class=\"num%s\">%d</td></tr>\n", s->a[i].starts,
                    r > 0 ? " warn" : "", r);
        }
        fputs("</table>\n", f);
        if (s->nev) {
            fputs("<details><summary>latest exits and restarts</summary><pre class=\"events\">", f);
            for (int i = 0; i < s->nev; i++) {
                esc(f, s->ev[(s->evpos - s->nev + i + MAX_EVENTS) % MAX_EVENTS]);
                fputc('\n', f);
            }
            fputs("</pre></details>\n", f);
        }
        fprintf(f, "<p>%d restart%s in total.</p>\n", total, total == 1 ? "" : "s");
    } else {
        fputs("<p class=\"missing\">No record of actor restarts (no status.json, no logs/supervisor.log).</p>\n",
              f);
    }
    if (s)
        for (int i = 0; i < MAX_EVENTS; i++) free(s->ev[i]);
    free(s);
    fputs("</section>\n", f);
    return total;
}

/* =============================================================== samples */

typedef struct {
    int64_t step;
    double reward; /* NAN: null */
    char *prompt, *response;
} sample;

typedef struct {
    sample first[SL_REPORT_SAMPLES_PER_STEP], last[SL_REPORT_SAMPLES_PER_STEP];
    int nfirst, nlast, any;
    int64_t first_step, last_step;
} samples;

static void sample_clear(sample *a, int *n) {
    for (int i = 0; i < *n; i++) free(a[i].prompt), free(a[i].response);
    *n = 0;
}

static int sample_add(sample *a, int *n, const sample *s) {
    if (*n >= SL_REPORT_SAMPLES_PER_STEP) return 0;
    sample *d = &a[*n];
    d->step = s->step, d->reward = s->reward;
    d->prompt = strndup(s->prompt, utf8_cut(s->prompt, strlen(s->prompt), MAX_SAMPLE_TEXT));
    d->response = strndup(s->response, utf8_cut(s->response, strlen(s->response), MAX_SAMPLE_TEXT));
    if (!d->prompt || !d->response) {
        free(d->prompt), free(d->response);
        return 0;
    }
    (*n)++;
    return 0;
}

static int samples_line(void *ctx, const char *line, size_t len) {
    samples *S = ctx;
    json_t *o = parse_object(line, len);
    if (!o) return 1;
    json_t *st = json_object_get(o, "step"), *pr = json_object_get(o, "prompt"),
           *re = json_object_get(o, "response"), *rw = json_object_get(o, "reward");
    if (!json_is_integer(st) || !json_is_string(pr) || !json_is_string(re) ||
        !(json_is_number(rw) || json_is_null(rw))) {
        json_decref(o);
        return 1;
    }
    sample s = {(int64_t)json_integer_value(st), json_is_number(rw) ? json_number_value(rw) : NAN,
                (char *)json_string_value(pr), (char *)json_string_value(re)};
    if (!S->any || s.step < S->first_step) {
        sample_clear(S->first, &S->nfirst);
        S->first_step = s.step;
    }
    if (!S->any || s.step > S->last_step) {
        sample_clear(S->last, &S->nlast);
        S->last_step = s.step;
    }
    S->any = 1;
    if (s.step == S->first_step) sample_add(S->first, &S->nfirst, &s);
    if (s.step == S->last_step) sample_add(S->last, &S->nlast, &s);
    json_decref(o);
    return 0;
}

static void sample_table(FILE *f, const char *label, int64_t step, const sample *a, int n) {
    fprintf(f, "<h3>%s step: %lld</h3>\n<table class=\"samples\"><tr><th>reward</th><th>prompt</th>"
               "<th>response</th></tr>\n", label, (long long)step);
    for (int i = 0; i < n; i++) {
        char b[32];
        if (isnan(a[i].reward)) snprintf(b, sizeof b, "–");
        else fmt_num(b, sizeof b, a[i].reward);
        fprintf(f, "<tr class=\"sample\"><td class=\"num\">%s</td><td class=\"text\">", b);
        esc(f, a[i].prompt);
        fputs("</td><td class=\"text\">", f);
        esc(f, a[i].response);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* ================================================================= page */

static const char CSS[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px;"
    "color:#222;background:#fff;max-width:1180px}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;"
    "padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}\n"
    ".meta{color:#666;font-size:13px}.summary td{padding:2px 14px 2px 0;font-size:14px}\n"
    ".grid2{display:grid;grid-template-columns:1fr 1fr;gap:12px}\n"
    "figure.chart{margin:0;border:1px solid #e3e3e3;border-radius:4px;background:#fff}\n"
    "svg{width:100%;height:auto;display:block;font-size:12px}\n"
    "svg .title{font-size:14px;font-weight:600;fill:#222}svg .lastval{font-size:12px;text-anchor:end}\n"
    "svg .grid{stroke:#eee}svg .tick,svg .axis{stroke:#555}svg .frame{fill:none;stroke:#ddd}\n"
    "svg .ylab{text-anchor:end;fill:#444}svg .xlab{text-anchor:middle;fill:#444}\n"
    "svg .axlab{text-anchor:middle;fill:#666;font-size:12px}svg .nodata{text-anchor:middle;fill:#999;font-size:16px}\n"
    "svg .series{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}\n"
    "svg .phase-sft,.sw-sft{fill:#fbecc8;background:#fbecc8}svg .phase-rl,.sw-rl{fill:#e4eef8;background:#e4eef8}\n"
    ".legend{font-size:13px;color:#444;margin:4px 0 10px}.legend span.sw{display:inline-block;width:14px;"
    "height:10px;margin:0 4px 0 12px;border:1px solid #ccc;vertical-align:middle}\n"
    "table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:4px 8px;"
    "vertical-align:top;text-align:left}th{background:#f5f5f5}td.num{text-align:right;"
    "font-variant-numeric:tabular-nums}td.warn{color:#b00;font-weight:600}\n"
    "table.samples{width:100%;table-layout:fixed}table.samples th:first-child{width:70px}\n"
    "td.text{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,'DejaVu Sans Mono',"
    "monospace;font-size:12px}\n"
    "pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:10px;overflow:auto;font-size:12px;"
    "max-height:480px}.missing{color:#888;font-style:italic}.src{color:#888;font-size:12px;margin:0}\n";

int sl_report_render(const char *run_dir, FILE *f, sl_report_info *info) {
    sl_report_info dummy;
    if (!info) info = &dummy;
    memset(info, 0, sizeof *info);
    if (!run_dir || !f) return SL_EINVAL;
    size_t rdlen = strlen(run_dir);
    if (rdlen == 0 || rdlen > 4000) return SL_EINVAL;
    char p[4200];

    metrics m = {0};
    m.last_weight_version = m.last_samples_trained = NAN;
    snprintf(p, sizeof p, "%s/metrics.jsonl", run_dir);
    int have_metrics = each_line(p, metrics_line, &m, &info->metrics_rows, &info->metrics_skipped) == SL_OK;
    row **sorted = calloc(m.n ? m.n : 1, sizeof *sorted);
    if (!sorted) {
        free(m.r);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < m.n; i++) sorted[i] = &m.r[i];
    qsort(sorted, m.n, sizeof *sorted, cmp_step); /* ties keep no order; fine for charts */

    /* ---- head and summary */
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    const char *base = strrchr(run_dir, '/');
    base = base && base[1] ? base + 1 : run_dir;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>slime run report: ", f);
    esc(f, base);
    fprintf(f, "</title>\n<style>\n%s</style></head>\n<body>\n<h1>Run report: ", CSS);
    esc(f, base);
    fputs("</h1>\n<p class=\"meta\">", f);
    esc(f, run_dir);
    fprintf(f, " &middot; generated %s</p>\n", when);

    int n_sft = 0, n_rl = 0, n_eval = 0;
    for (size_t i = 0; i < m.n; i++) {
        n_sft += m.r[i].phase == PH_SFT;
        n_rl += m.r[i].phase == PH_RL;
        n_eval += m.r[i].phase == PH_EVAL;
    }
    fputs("<table class=\"summary\">\n", f);
    char b[32], b2[32];
    if (m.n) {
        fmt_num(b, sizeof b, sorted[0]->step);
        fmt_num(b2, sizeof b2, sorted[m.n - 1]->step);
        fprintf(f, "<tr><td>steps</td><td>%s &ndash; %s (%d sft, %d rl, %d eval rows)</td></tr>\n", b, b2, n_sft,
                n_rl, n_eval);
    }
    for (int c = 0; c < N_CHARTS; c++) {
        double last = NAN, best = -INFINITY;
        for (size_t i = 0; i < m.n; i++)
            if (!isnan(sorted[i]->v[c])) last = sorted[i]->v[c], best = fmax(best, sorted[i]->v[c]);
        if (isnan(last)) continue;
        info->charts_with_data++;
        if (c > 1) continue; /* reward and eval accuracy in the summary */
        fmt_num(b, sizeof b, last);
        fmt_num(b2, sizeof b2, best);
        fprintf(f, "<tr><td>%s</td><td>last %s, best %s</td></tr>\n", CHARTS[c].key, b, b2);
    }
    if (!isnan(m.last_weight_version)) {
        fmt_num(b, sizeof b, m.last_weight_version);
        fprintf(f, "<tr><td>weight_version</td><td>%s</td></tr>\n", b);
    }
    if (!isnan(m.last_samples_trained)) {
        fmt_num(b, sizeof b, m.last_samples_trained);
        fprintf(f, "<tr><td>samples_trained</td><td>%s</td></tr>\n", b);
    }
    fprintf(f, "<tr><td>metrics.jsonl</td><td>%s%d lines used, %d skipped%s</td></tr>\n",
            have_metrics ? "" : "missing: ", info->metrics_rows, info->metrics_skipped,
            m.full ? " (row limit reached)" : "");
    fputs("</table>\n", f);

    /* ---- charts */
    fputs("<section id=\"curves\"><h2>Curves</h2>\n<div class=\"legend\">phases:<span class=\"sw sw-sft\">"
          "</span>sft<span class=\"sw sw-rl\"></span>rl</div>\n<div class=\"grid2\">\n", f);
    xdomain xd = {0, 1};
    if (m.n) {
        xd.x0 = sorted[0]->step, xd.x1 = sorted[m.n - 1]->step;
        if (xd.x1 - xd.x0 < 1) xd.x0 -= 0.5, xd.x1 += 0.5;
    }
    for (int c = 0; c < N_CHARTS; c++) chart(f, &m, sorted, c, xd);
    fputs("</div></section>\n", f);
    free(sorted);
    free(m.r);

    /* ---- configuration */
    fputs("<section id=\"config\"><h2>Configuration (topology.conf)</h2>\n", f);
    snprintf(p, sizeof p, "%s/topology.conf", run_dir);
    FILE *cf = fopen(p, "rb");
    if (cf) {
        char *cb = malloc(MAX_CONFIG + 1);
        size_t n = cb ? fread(cb, 1, MAX_CONFIG + 1, cf) : 0;
        fclose(cf);
        if (cb) {
            info->has_config = 1;
            fputs("<pre class=\"config\">", f);
            esc_n(f, cb, n > MAX_CONFIG ? utf8_cut(cb, n, MAX_CONFIG) : n);
            fprintf(f, "</pre>\n%s", n > MAX_CONFIG ? "<p class=\"missing\">(truncated)</p>\n" : "");
            free(cb);
        }
    } else {
        fputs("<p class=\"missing\">No topology.conf in the run directory.</p>\n", f);
    }
    fputs("</section>\n", f);

    /* ---- restarts */
    info->restarts = restarts_section(f, run_dir);

    /* ---- samples */
    fputs("<section id=\"samples\"><h2>Samples</h2>\n", f);
    samples *S = calloc(1, sizeof *S);
    if (!S) return SL_ENOMEM;
    snprintf(p, sizeof p, "%s/%s", run_dir, SL_REPORT_SAMPLES_FILE);
    if (each_line(p, samples_line, S, &info->samples_rows, &info->samples_skipped) != SL_OK)
        fputs("<p class=\"missing\">No samples.jsonl in the run directory.</p>\n", f);
    else if (!S->any)
        fprintf(f, "<p class=\"missing\">samples.jsonl has no valid line (%d skipped).</p>\n", info->samples_skipped);
    else {
        sample_table(f, "First", S->first_step, S->first, S->nfirst);
        if (S->last_step != S->first_step) sample_table(f, "Last", S->last_step, S->last, S->nlast);
        if (info->samples_skipped) fprintf(f, "<p class=\"src\">%d bad lines skipped</p>\n", info->samples_skipped);
    }
    sample_clear(S->first, &S->nfirst);
    sample_clear(S->last, &S->nlast);
    free(S);
    fputs("</section>\n</body></html>\n", f);
    return ferror(f) ? SL_EIO : SL_OK;
}

int sl_report_write(const char *run_dir, sl_report_info *info) {
    if (!run_dir || !*run_dir) return SL_EINVAL;
    char *mem = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&mem, &n);
    if (!f) return SL_ENOMEM;
    int err = sl_report_render(run_dir, f, info);
    if (fclose(f) != 0 && !err) err = SL_ENOMEM;
    if (!err) {
        char p[4200];
        snprintf(p, sizeof p, "%s/report.html", run_dir);
        struct iovec iov = {mem, n};
        err = sl_file_write_atomic(p, &iov, 1);
        if (err) sl_warn("report: cannot write %s: %s", p, sl_strerror(err));
    }
    free(mem);
    return err;
}

int sl_report_append_sample(const char *run_dir, int64_t step, const char *prompt, const char *response,
                            double reward) {
    if (!run_dir || !*run_dir || !prompt || !response) return SL_EINVAL;
    char *pr = strndup(prompt, utf8_cut(prompt, strlen(prompt), MAX_SAMPLE_WRITE));
    char *re = strndup(response, utf8_cut(response, strlen(response), MAX_SAMPLE_WRITE));
    json_t *o = json_object();
    int err = SL_ENOMEM;
    char *line = NULL;
    if (!pr || !re || !o) goto out;
    err = SL_EINVAL;
    json_t *jp = json_string(pr), *jr = json_string(re); /* NULL on invalid UTF-8 */
    if (!jp || !jr) {
        json_decref(jp);
        json_decref(jr);
        goto out;
    }
    json_object_set_new(o, "step", json_integer((json_int_t)step));
    json_object_set_new(o, "prompt", jp);
    json_object_set_new(o, "response", jr);
    json_object_set_new(o, "reward", isfinite(reward) ? json_real(reward) : json_null());
    err = SL_ENOMEM;
    if (!(line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER))) goto out;
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps' NUL becomes the newline; length len+1 */
    char p[4200];
    if (strlen(run_dir) > 4000) {
        err = SL_EINVAL;
        goto out;
    }
    snprintf(p, sizeof p, "%s/%s", run_dir, SL_REPORT_SAMPLES_FILE);
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    err = SL_EIO;
    if (fd < 0) goto out;
    ssize_t w = write(fd, line, len + 1);
    if (close(fd) == 0 && w == (ssize_t)(len + 1)) err = SL_OK;
out:
    free(line);
    json_decref(o);
    free(pr);
    free(re);
    return err;
}
