/*
 * reward_builtin.c — slime's rule-based rewards in C: boxed-answer math
 * grading (Hendrycks' normalization plus a numeric stand-in for slime's
 * sympy check), GSM8K "#### N", exact match, SQuAD F1, a format reward,
 * and the rm_type registry.
 *
 * It is not a sandbox: the reward actor runs these with its own limits.
 * Every string operation here is bounded by its input length; answers are
 * capped at SL_REWARD_MAX_ANSWER bytes before normalization.
 */
#include "reward_builtin.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ strings */

/* A growable NUL-terminated string. */
typedef struct sb {
    char *p;
    size_t n, cap;
} sb;

static bool sb_reserve(sb *s, size_t need)
{
    if (need + 1 <= s->cap)
        return true;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < need + 1)
        cap *= 2;
    char *p = realloc(s->p, cap);
    if (!p)
        return false;
    s->p = p;
    s->cap = cap;
    return true;
}

static bool sb_set(sb *s, const char *src, size_t n)
{
    if (!sb_reserve(s, n))
        return false;
    memmove(s->p, src, n);
    s->n = n;
    s->p[n] = 0;
    return true;
}

static bool sb_add(sb *s, const char *src, size_t n)
{
    if (!sb_reserve(s, s->n + n))
        return false;
    memcpy(s->p + s->n, src, n);
    s->n += n;
    s->p[s->n] = 0;
    return true;
}

static bool sb_addc(sb *s, char c) { return sb_add(s, &c, 1); }

static void sb_free(sb *s)
{
    free(s->p);
    s->p = NULL;
    s->n = s->cap = 0;
}

static const char *find_n(const char *h, size_t hn, const char *needle)
{
    size_t nn = strlen(needle);
    if (nn == 0 || nn > hn)
        return NULL;
    return memmem(h, hn, needle, nn);
}

/* The last occurrence of needle in h[0, hn), or NULL (Python str.rfind). */
static const char *rfind_n(const char *h, size_t hn, const char *needle)
{
    size_t nn = strlen(needle);
    if (nn == 0 || nn > hn)
        return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (h[i] == needle[0] && memcmp(h + i, needle, nn) == 0)
            return h + i;
    return NULL;
}

static size_t count_n(const char *h, size_t hn, const char *needle)
{
    size_t c = 0, nn = strlen(needle);
    const char *p = h, *end = h + hn;
    while ((p = find_n(p, (size_t)(end - p), needle))) {
        c++;
        p += nn;
    }
    return c;
}

/* Python's str.replace(from, to): every non-overlapping occurrence, left
 * to right. false only when out of memory. */
static bool sb_replace(sb *s, const char *from, const char *to)
{
    size_t fn = strlen(from), tn = strlen(to);
    if (!find_n(s->p, s->n, from))
        return true;
    sb o = {0};
    const char *p = s->p, *end = s->p + s->n, *q;
    while ((q = find_n(p, (size_t)(end - p), from))) {
        if (!sb_add(&o, p, (size_t)(q - p)) || !sb_add(&o, to, tn))
            goto oom;
        p = q + fn;
    }
    if (!sb_add(&o, p, (size_t)(end - p)) || !sb_reserve(&o, 0))
        goto oom;
    sb_free(s);
    *s = o;
    return true;
oom:
    sb_free(&o);
    return false;
}

/* Delete the bytes [i, i+k). */
static void sb_cut(sb *s, size_t i, size_t k)
{
    memmove(s->p + i, s->p + i + k, s->n - i - k + 1);
    s->n -= k;
}

static void sb_strip_ws(sb *s)
{
    size_t a = 0, b = s->n;
    while (a < b && isspace((unsigned char)s->p[a]))
        a++;
    while (b > a && isspace((unsigned char)s->p[b - 1]))
        b--;
    memmove(s->p, s->p + a, b - a);
    s->n = b - a;
    s->p[s->n] = 0;
}

static bool starts(const char *s, const char *pre) { return strncmp(s, pre, strlen(pre)) == 0; }

static bool ends(const sb *s, const char *suf)
{
    size_t k = strlen(suf);
    return s->n >= k && memcmp(s->p + s->n - k, suf, k) == 0;
}

/* ================================================================ boxed */

int sl_reward_extract_boxed(const char *text, size_t len, size_t *start, size_t *out_len)
{
    if (!text || !start || !out_len)
        return SL_EINVAL;
    const char *end = text + len, *last = rfind_n(text, len, "\\boxed");
    if (!last)
        return SL_ENOENT;
    const char *b = last + 6;
    if (b >= end || *b != '{')
        return SL_ENOENT; /* slime's remove_boxed wants "\boxed{" */
    long depth = 0;
    for (const char *c = b; c < end; c++) {
        if (*c == '{')
            depth++;
        else if (*c == '}' && --depth == 0) {
            *start = (size_t)(b + 1 - text);
            *out_len = (size_t)(c - b - 1);
            return 0;
        }
    }
    return SL_ENOENT;
}

/* ================================================================ numbers */

/* A full-string decimal (Python float() for plain forms: sign, digits, one
 * dot, exponent; surrounding spaces). No inf/nan/underscores. */
static bool parse_float(const char *s, double *out)
{
    while (isspace((unsigned char)*s))
        s++;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    bool digits = false;
    while (isdigit((unsigned char)*p))
        p++, digits = true;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++, digits = true;
    }
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        const char *e = p + 1;
        if (*e == '+' || *e == '-')
            e++;
        if (!isdigit((unsigned char)*e))
            return false;
        while (isdigit((unsigned char)*e))
            e++;
        p = e;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        return false;
    char *endp;
    double v = strtod(s, &endp);
    if (!isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool is_intval(double v) { return isfinite(v) && fabs(v - nearbyint(v)) <= 1e-7; }

/* slime _strip_properly_formatted_commas: (\d),(\d\d\d)($|\D) -> drop ','. */
static void strip_formatted_commas(sb *s)
{
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t i = 1; i + 3 < s->n; i++) {
            const char *p = s->p;
            if (p[i] == ',' && isdigit((unsigned char)p[i - 1]) && isdigit((unsigned char)p[i + 1]) &&
                isdigit((unsigned char)p[i + 2]) && isdigit((unsigned char)p[i + 3]) &&
                (i + 4 == s->n || !isdigit((unsigned char)p[i + 4]))) {
                sb_cut(s, i, 1);
                changed = true;
            }
        }
    }
}

/* slime _str_is_int */
static bool str_is_int(const char *x)
{
    sb t = {0};
    if (!sb_set(&t, x, strlen(x)))
        return false;
    strip_formatted_commas(&t);
    double v;
    bool r = parse_float(t.p, &v) && is_intval(v);
    sb_free(&t);
    return r;
}

/* Replace s by the integer's decimal digits (Python str(int(v))). */
static bool sb_set_int(sb *s, double v)
{
    char buf[400];
    int k = snprintf(buf, sizeof buf, "%.0f", trunc(v));
    if (k < 0 || (size_t)k >= sizeof buf)
        return true; /* leave as is */
    if (strcmp(buf, "-0") == 0)
        strcpy(buf, "0");
    return sb_set(s, buf, (size_t)k);
}

/* ================================================================ mathd */

/* Python int() canonical form: -?(0|[1-9][0-9]*), and not "-0". */
static bool canonical_int(const char *a, size_t n)
{
    size_t i = 0;
    if (i < n && a[i] == '-')
        i++;
    if (i >= n)
        return false;
    if (a[i] == '0')
        return n - i == 1 && i == 0;
    for (; i < n; i++)
        if (!isdigit((unsigned char)a[i]))
            return false;
    return true;
}

/* slime _strip_string (Hendrycks). Returns 1 ok, 0 "python raised" (the
 * caller keeps the unstripped answer), -1 out of memory. */
static int strip_string(sb *s)
{
    static const char *const rep[][2] = {
        {"\n", ""}, {"\\!", ""}, {"\\\\", "\\"}, {"tfrac", "frac"}, {"dfrac", "frac"},
        {"\\left", ""}, {"\\right", ""}, {"^{\\circ}", ""}, {"^\\circ", ""}, {"\\$", ""},
    };
    for (size_t i = 0; i < sizeof rep / sizeof rep[0]; i++)
        if (!sb_replace(s, rep[i][0], rep[i][1]))
            return -1;
    /* units on the right: "\text{ " must occur once (slime asserts) */
    size_t k = count_n(s->p, s->n, "\\text{ ");
    if (k > 1)
        return 0;
    if (k == 1) {
        const char *q = find_n(s->p, s->n, "\\text{ ");
        s->n = (size_t)(q - s->p);
        s->p[s->n] = 0;
    }
    if (!sb_replace(s, "\\%", "") || !sb_replace(s, " .", " 0.") || !sb_replace(s, "{.", "{0."))
        return -1;
    if (s->n == 0)
        return 1;
    if (s->p[0] == '.') {
        sb t = {0};
        if (!sb_set(&t, "0", 1) || !sb_add(&t, s->p, s->n)) {
            sb_free(&t);
            return -1;
        }
        sb_free(s);
        *s = t;
    }
    /* "k = 5" -> "5" when the left side is at most 2 chars */
    if (count_n(s->p, s->n, "=") == 1) {
        const char *q = memchr(s->p, '=', s->n);
        if ((size_t)(q - s->p) <= 2)
            sb_cut(s, 0, (size_t)(q - s->p) + 1);
    }
    /* \sqrt3 -> \sqrt{3} */
    if (find_n(s->p, s->n, "\\sqrt")) {
        sb o = {0};
        const char *p = s->p, *end = s->p + s->n, *q = find_n(p, s->n, "\\sqrt");
        bool ok = sb_add(&o, p, (size_t)(q - p));
        while (ok && q) {
            const char *seg = q + 5;
            const char *nx = find_n(seg, (size_t)(end - seg), "\\sqrt");
            const char *segend = nx ? nx : end;
            if (seg == segend) {
                sb_free(&o);
                return 0; /* split[0] on an empty piece raises */
            }
            if (*seg != '{')
                ok = sb_add(&o, "\\sqrt{", 6) && sb_addc(&o, *seg) && sb_addc(&o, '}') &&
                     sb_add(&o, seg + 1, (size_t)(segend - seg - 1));
            else
                ok = sb_add(&o, "\\sqrt", 5) && sb_add(&o, seg, (size_t)(segend - seg));
            q = nx;
        }
        if (!ok || !sb_reserve(&o, 0)) {
            sb_free(&o);
            return -1;
        }
        sb_free(s);
        *s = o;
    }
    /* remove spaces */
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->p[i] != ' ')
            s->p[w++] = s->p[i];
    s->n = w;
    s->p[w] = 0;
    /* \frac12 -> \frac{1}{2} */
    if (find_n(s->p, s->n, "\\frac")) {
        sb o = {0};
        const char *p = s->p, *end = s->p + s->n, *q = find_n(p, s->n, "\\frac");
        bool ok = sb_add(&o, p, (size_t)(q - p)), keep_orig = false;
        while (ok && q) {
            const char *sub = q + 5;
            const char *nx = find_n(sub, (size_t)(end - sub), "\\frac");
            const char *subend = nx ? nx : end;
            size_t sl = (size_t)(subend - sub);
            ok = sb_add(&o, "\\frac", 5);
            if (!ok)
                break;
            if (sl == 0) {
                sb_free(&o);
                return 0; /* substr[0] raises */
            }
            if (sub[0] == '{') {
                ok = sb_add(&o, sub, sl);
            } else if (sl < 2) {
                keep_orig = true; /* slime returns the string unchanged */
                break;
            } else if (sub[1] != '{') {
                ok = sb_addc(&o, '{') && sb_addc(&o, sub[0]) && sb_add(&o, "}{", 2) &&
                     sb_addc(&o, sub[1]) && sb_addc(&o, '}') && sb_add(&o, sub + 2, sl - 2);
            } else {
                ok = sb_addc(&o, '{') && sb_addc(&o, sub[0]) && sb_addc(&o, '}') &&
                     sb_add(&o, sub + 1, sl - 1);
            }
            q = nx;
        }
        if (!ok || !sb_reserve(&o, 0)) {
            sb_free(&o);
            return -1;
        }
        if (keep_orig) {
            sb_free(&o);
        } else {
            sb_free(s);
            *s = o;
        }
    }
    if (strcmp(s->p, "0.5") == 0 && !sb_set(s, "\\frac{1}{2}", 11))
        return -1;
    /* a/b with canonical integers -> \frac{a}{b} */
    if (count_n(s->p, s->n, "/") == 1) {
        const char *q = memchr(s->p, '/', s->n);
        size_t an = (size_t)(q - s->p), bn = s->n - an - 1;
        if (canonical_int(s->p, an) && canonical_int(q + 1, bn)) {
            sb o = {0};
            bool ok = sb_add(&o, "\\frac{", 6) && sb_add(&o, s->p, an) && sb_add(&o, "}{", 2) &&
                      sb_add(&o, q + 1, bn) && sb_addc(&o, '}');
            if (!ok) {
                sb_free(&o);
                return -1;
            }
            sb_free(s);
            *s = o;
        }
    }
    return 1;
}

/* Extension: U+2212 MINUS SIGN (and U+2013 EN DASH before a digit is NOT
 * touched) reads as '-'. */
static bool unicode_minus(sb *s) { return sb_replace(s, "\xe2\x88\x92", "-"); }

/* slime mathd_normalize_answer. false = out of memory. */
static bool mathd_normalize(sb *s)
{
    if (!unicode_minus(s))
        return false;
    sb_strip_ws(s);
    if (starts(s->p, "\\text{") && s->n > 7 && ends(s, "}")) {
        s->n -= 1;
        s->p[s->n] = 0;
        sb_cut(s, 0, 6);
        sb_strip_ws(s);
    }
    sb keep = {0};
    if (!sb_set(&keep, s->p, s->n))
        return false;
    int r = strip_string(s);
    if (r == 0) {
        sb_free(s);
        *s = keep;
        return true;
    }
    sb_free(&keep);
    return r > 0;
}

/* ================================================================ LaTeX -> text */

/* Convert the LaTeX of slime's answers to plain text as pylatexenc's
 * latex2text roughly does: \frac{a}{b} -> " a/b" (parenthesized when not a
 * single token), \sqrt{x} -> sqrt(x), \pi -> pi, \cdot/\times -> *, text
 * macros -> their argument, other macros -> their name. depth-limited. */
static bool l2t(const char *p, const char *end, sb *o, int depth);

static const char *group_end(const char *p, const char *end)
{
    /* p at '{': the matching '}' or end */
    long d = 0;
    for (const char *c = p; c < end; c++) {
        if (*c == '{')
            d++;
        else if (*c == '}' && --d == 0)
            return c;
    }
    return end;
}

/* The next argument: a {group} or one character. */
static const char *arg(const char *p, const char *end, const char **a, const char **ae)
{
    while (p < end && *p == ' ')
        p++;
    if (p >= end) {
        *a = *ae = end;
        return end;
    }
    if (*p == '{') {
        const char *g = group_end(p, end);
        *a = p + 1;
        *ae = g;
        return g < end ? g + 1 : end;
    }
    if (*p == '\\') { /* a macro as the argument */
        const char *q = p + 1;
        while (q < end && isalpha((unsigned char)*q))
            q++;
        if (q == p + 1 && q < end)
            q++;
        *a = p;
        *ae = q;
        return q;
    }
    *a = p;
    *ae = p + 1;
    return p + 1;
}

static bool simple_token(const sb *s)
{
    if (s->n == 0)
        return true;
    size_t i = (s->p[0] == '-') ? 1 : 0;
    if (i == s->n)
        return false;
    for (; i < s->n; i++)
        if (!isalnum((unsigned char)s->p[i]) && s->p[i] != '.')
            return false;
    return true;
}

static bool add_arg(const char *a, const char *ae, sb *o, int depth, bool paren)
{
    sb t = {0};
    bool ok = l2t(a, ae, &t, depth + 1) && sb_reserve(&t, 0);
    if (ok) {
        sb_strip_ws(&t);
        bool par = paren && !simple_token(&t);
        ok = (!par || sb_addc(o, '(')) && sb_add(o, t.p, t.n) && (!par || sb_addc(o, ')'));
    }
    sb_free(&t);
    return ok;
}

static bool l2t(const char *p, const char *end, sb *o, int depth)
{
    if (depth > 64)
        return false;
    while (p < end) {
        char c = *p;
        if (c == '{') {
            const char *g = group_end(p, end);
            if (!l2t(p + 1, g, o, depth + 1))
                return false;
            p = g < end ? g + 1 : end;
            continue;
        }
        if (c == '}') {
            p++;
            continue;
        }
        if (c != '\\') {
            if (!sb_addc(o, c))
                return false;
            p++;
            continue;
        }
        const char *q = p + 1;
        while (q < end && isalpha((unsigned char)*q))
            q++;
        size_t nl = (size_t)(q - p - 1);
        const char *name = p + 1;
        if (nl == 0) { /* \, \; \! \  \% \$ \{ ... */
            if (q >= end) {
                p = q;
                continue;
            }
            char s = *q;
            bool ok = true;
            if (s == '%' || s == '$' || s == '{' || s == '}' || s == '_' || s == '&' || s == '#')
                ok = sb_addc(o, s);
            else if (s == ' ')
                ok = sb_addc(o, ' ');
            if (!ok)
                return false;
            p = q + 1;
            continue;
        }
#define IS(lit) (nl == sizeof(lit) - 1 && memcmp(name, lit, nl) == 0)
        const char *a, *ae, *b, *be;
        if (IS("frac") || IS("dfrac") || IS("tfrac") || IS("cfrac")) {
            q = arg(q, end, &a, &ae);
            q = arg(q, end, &b, &be);
            if (!sb_addc(o, ' ') || !add_arg(a, ae, o, depth, true) || !sb_addc(o, '/') ||
                !add_arg(b, be, o, depth, true))
                return false;
        } else if (IS("sqrt")) {
            const char *r = NULL, *re = NULL;
            while (q < end && *q == ' ')
                q++;
            if (q < end && *q == '[') {
                const char *cb = memchr(q, ']', (size_t)(end - q));
                if (cb) {
                    r = q + 1;
                    re = cb;
                    q = cb + 1;
                }
            }
            q = arg(q, end, &a, &ae);
            if (r) {
                if (!sb_add(o, "(", 1) || !add_arg(a, ae, o, depth, false) || !sb_add(o, ")^(1/(", 6) ||
                    !add_arg(r, re, o, depth, false) || !sb_add(o, "))", 2))
                    return false;
            } else if (!sb_add(o, "sqrt(", 5) || !add_arg(a, ae, o, depth, false) || !sb_addc(o, ')')) {
                return false;
            }
        } else if (IS("text") || IS("textbf") || IS("textit") || IS("mathrm") || IS("mathbf") ||
                   IS("mbox") || IS("operatorname") || IS("mathit") || IS("boxed")) {
            q = arg(q, end, &a, &ae);
            if (!l2t(a, ae, o, depth + 1))
                return false;
        } else if (IS("cdot") || IS("times") || IS("ast")) {
            if (!sb_addc(o, '*'))
                return false;
        } else if (IS("div")) {
            if (!sb_addc(o, '/'))
                return false;
        } else if (IS("pi")) {
            if (!sb_add(o, "pi", 2))
                return false;
        } else if (IS("infty")) {
            if (!sb_add(o, "inf", 3))
                return false;
        } else if (IS("left") || IS("right") || IS("displaystyle") || IS("quad") || IS("qquad")) {
            /* nothing */
        } else if (IS("le") || IS("leq")) {
            if (!sb_add(o, "<=", 2))
                return false;
        } else if (IS("ge") || IS("geq")) {
            if (!sb_add(o, ">=", 2))
                return false;
        } else {
            if (!sb_add(o, name, nl))
                return false;
        }
#undef IS
        p = q;
    }
    return true;
}

/* ================================================================ _normalize */

static const char *const unit_words[] = {
    "degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day",
    "week", "month", "year", "foot", "feet", "inch", "yard",
};

/* Remove unit(es)?(s)? *(\^[0-9]+)? everywhere (slime's regex). */
static void remove_unit(sb *s, const char *u)
{
    size_t un = strlen(u), i = 0;
    while (i + un <= s->n) {
        if (memcmp(s->p + i, u, un) != 0) {
            i++;
            continue;
        }
        size_t j = i + un;
        if (j + 1 < s->n + 1 && s->p[j] == 'e' && j + 1 < s->n && s->p[j + 1] == 's')
            j += 2;
        if (j < s->n && s->p[j] == 's')
            j++;
        while (j < s->n && s->p[j] == ' ')
            j++;
        if (j + 1 < s->n && s->p[j] == '^' && isdigit((unsigned char)s->p[j + 1])) {
            j++;
            while (j < s->n && isdigit((unsigned char)s->p[j]))
                j++;
        }
        sb_cut(s, i, j - i);
    }
}

/* slime _normalize. false = out of memory (or LaTeX nesting too deep). */
static bool normalize2(sb *s)
{
    if (!unicode_minus(s))
        return false;
    if (starts(s->p, "\\text{") && s->n > 7 && ends(s, "}")) {
        s->n -= 1;
        s->p[s->n] = 0;
        sb_cut(s, 0, 6);
    }
    static const char *const rep[][2] = {
        {"\\%", "%"}, {"\\$", "$"}, {"$", ""}, {"%", ""}, {" or ", " , "}, {" and ", " , "},
        {"million", "*10^6"}, {"billion", "*10^9"}, {"trillion", "*10^12"},
    };
    for (size_t i = 0; i < sizeof rep / sizeof rep[0]; i++)
        if (!sb_replace(s, rep[i][0], rep[i][1]))
            return false;
    for (size_t i = 0; i < sizeof unit_words / sizeof unit_words[0]; i++)
        remove_unit(s, unit_words[i]);
    /* \^ *\\circ */
    for (size_t i = 0; i < s->n; i++) {
        if (s->p[i] != '^')
            continue;
        size_t j = i + 1;
        while (j < s->n && s->p[j] == ' ')
            j++;
        if (s->n - j >= 5 && memcmp(s->p + j, "\\circ", 5) == 0)
            sb_cut(s, i, j + 5 - i), i--;
    }
    if (s->n > 0 && s->p[0] == '{' && s->p[s->n - 1] == '}') {
        s->n--;
        s->p[s->n] = 0;
        sb_cut(s, 0, 1);
    }
    /* ",\\! *" */
    for (size_t i = 0; i + 2 < s->n; i++)
        if (memcmp(s->p + i, ",\\!", 3) == 0) {
            size_t j = i + 3;
            while (j < s->n && s->p[j] == ' ')
                j++;
            sb_cut(s, i, j - i);
        }
    double v;
    if (parse_float(s->p, &v) && is_intval(v) && !sb_set_int(s, nearbyint(v)))
        return false;
    if (memchr(s->p, '\\', s->n)) {
        sb t = {0};
        if (!l2t(s->p, s->p + s->n, &t, 0) || !sb_reserve(&t, 0)) {
            sb_free(&t);
            return false;
        }
        sb_strip_ws(&t);
        sb_free(s);
        *s = t;
    }
    /* "- *" -> "-" */
    for (size_t i = 0; i < s->n; i++)
        if (s->p[i] == '-') {
            size_t j = i + 1;
            while (j < s->n && s->p[j] == ' ')
                j++;
            if (j > i + 1)
                sb_cut(s, i + 1, j - i - 1);
        }
    /* mixed numbers: "7 3/4" -> "7+3/4" (non-overlapping, left to right) */
    for (size_t i = 0; i + 2 < s->n; i++) {
        if (!isdigit((unsigned char)s->p[i]) || s->p[i + 1] != ' ')
            continue;
        size_t j = i + 1;
        while (j < s->n && s->p[j] == ' ')
            j++;
        if (j < s->n && isdigit((unsigned char)s->p[j])) {
            sb_cut(s, i + 1, j - i - 1);
            if (!sb_reserve(s, s->n + 1))
                return false;
            memmove(s->p + i + 2, s->p + i + 1, s->n - i);
            s->p[i + 1] = '+';
            s->n++;
            i += 2; /* the second digit was consumed by the match */
        }
    }
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++) {
        char c = s->p[i];
        if (c == ' ' || c == '{' || c == '}')
            continue;
        s->p[w++] = (char)tolower((unsigned char)c);
    }
    s->n = w;
    s->p[w] = 0;
    if (str_is_int(s->p)) {
        sb t = {0};
        for (size_t i = 0; i < s->n; i++)
            if (s->p[i] != ',' && !sb_addc(&t, s->p[i])) {
                sb_free(&t);
                return false;
            }
        if (parse_float(t.p ? t.p : "", &v) && !sb_set_int(s, v)) {
            sb_free(&t);
            return false;
        }
        sb_free(&t);
    }
    return true;
}

/* ================================================================ evaluation */

/* A small expression evaluator standing in for sympy: numbers, + - * / ^
 * (and **), parentheses, sqrt(...), pi, implicit multiplication, and up to
 * two one-letter unknowns bound to the values in vars[26]. */
typedef struct ev {
    const char *p, *end;
    const double *vars;
    int depth;
    bool bad;
} ev;

static double ev_sum(ev *e);

static bool ev_at_atom(ev *e)
{
    if (e->p >= e->end)
        return false;
    char c = *e->p;
    return isdigit((unsigned char)c) || c == '.' || c == '(' || isalpha((unsigned char)c);
}

static double ev_atom(ev *e)
{
    if (++e->depth > 200) {
        e->bad = true;
        return 0;
    }
    double v = 0;
    const char *p = e->p;
    if (p >= e->end) {
        e->bad = true;
    } else if (*p == '(') {
        e->p++;
        v = ev_sum(e);
        if (e->p < e->end && *e->p == ')')
            e->p++;
        else
            e->bad = true;
    } else if (isdigit((unsigned char)*p) || *p == '.') {
        char buf[128];
        size_t n = 0;
        while (p + n < e->end && n < sizeof buf - 1 &&
               (isdigit((unsigned char)p[n]) || p[n] == '.'))
            n++;
        memcpy(buf, p, n);
        buf[n] = 0;
        if (count_n(buf, n, ".") > 1 || strcmp(buf, ".") == 0)
            e->bad = true;
        v = strtod(buf, NULL);
        e->p += n;
    } else if (isalpha((unsigned char)*p)) {
        if (e->end - p >= 4 && memcmp(p, "sqrt", 4) == 0) {
            e->p += 4;
            double a = ev_atom(e);
            v = a < 0 ? (e->bad = true, 0) : sqrt(a);
        } else if (e->end - p >= 2 && memcmp(p, "pi", 2) == 0) {
            e->p += 2;
            v = M_PI;
        } else {
            v = e->vars[tolower((unsigned char)*p) - 'a'];
            e->p++;
        }
    } else {
        e->bad = true;
    }
    e->depth--;
    return v;
}

static double ev_unary(ev *e);

static double ev_pow(ev *e)
{
    double b = ev_atom(e);
    if (e->p < e->end && (*e->p == '^' || (*e->p == '*' && e->p + 1 < e->end && e->p[1] == '*'))) {
        e->p += (*e->p == '^') ? 1 : 2;
        if (++e->depth > 200) {
            e->bad = true;
            return 0;
        }
        double x = ev_unary(e); /* right associative */
        e->depth--;
        b = pow(b, x);
    }
    return b;
}

static double ev_unary(ev *e)
{
    if (e->p < e->end && (*e->p == '-' || *e->p == '+')) {
        bool neg = *e->p == '-';
        e->p++;
        if (++e->depth > 200) {
            e->bad = true;
            return 0;
        }
        double v = ev_unary(e);
        e->depth--;
        return neg ? -v : v;
    }
    return ev_pow(e);
}

static double ev_prod(ev *e)
{
    double v = ev_unary(e);
    for (;;) {
        if (e->bad)
            return 0;
        if (e->p < e->end && *e->p == '*' && !(e->p + 1 < e->end && e->p[1] == '*')) {
            e->p++;
            v *= ev_unary(e);
        } else if (e->p < e->end && *e->p == '/') {
            e->p++;
            double d = ev_unary(e);
            if (d == 0.0)
                e->bad = true;
            else
                v /= d;
        } else if (ev_at_atom(e)) {
            v *= ev_pow(e); /* implicit multiplication */
        } else {
            return v;
        }
    }
}

static double ev_sum(ev *e)
{
    if (++e->depth > 200) {
        e->bad = true;
        return 0;
    }
    double v = ev_prod(e);
    while (!e->bad && e->p < e->end && (*e->p == '+' || *e->p == '-')) {
        bool minus = *e->p == '-';
        e->p++;
        double w = ev_prod(e);
        v = minus ? v - w : v + w;
    }
    e->depth--;
    return v;
}

static bool eval_expr(const char *s, const double *vars, double *out)
{
    ev e = {.p = s, .end = s + strlen(s), .vars = vars};
    double v = ev_sum(&e);
    if (e.bad || e.p != e.end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* slime should_allow_eval over "(a)-(b)". */
static bool allow_eval(const char *a, const char *b)
{
    bool seen[26] = {0};
    int letters = 0;
    const char *ss[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        sb t = {0};
        if (!sb_set(&t, ss[k], strlen(ss[k])) || !sb_replace(&t, "sqrt", "") ||
            !sb_replace(&t, "frac", "")) {
            sb_free(&t);
            return false;
        }
        for (size_t i = 0; i < t.n; i++) {
            unsigned char c = (unsigned char)t.p[i];
            if (c >= 0x80) { /* Python isalpha() is true for most non-ASCII letters */
                sb_free(&t);
                return false;
            }
            if (isalpha(c) && !seen[tolower(c) - 'a']) {
                seen[tolower(c) - 'a'] = true;
                letters++;
            }
        }
        bool bad = strstr(t.p ? t.p : "", "^{") || strstr(t.p ? t.p : "", "^(");
        /* \^[0-9]+\^ and \^[0-9][0-9]+ */
        for (size_t i = 0; !bad && i < t.n; i++) {
            if (t.p[i] != '^')
                continue;
            size_t j = i + 1;
            while (j < t.n && isdigit((unsigned char)t.p[j]))
                j++;
            if (j - i - 1 >= 2 || (j > i + 1 && j < t.n && t.p[j] == '^'))
                bad = true;
        }
        sb_free(&t);
        if (bad)
            return false;
    }
    return letters <= 2;
}

static bool numerically_equal(const char *a, const char *b)
{
    if (!allow_eval(a, b))
        return false;
    static const double pts[3] = {0.7359, 1.9173, -2.4321};
    for (int k = 0; k < 3; k++) {
        double vars[26];
        for (int i = 0; i < 26; i++)
            vars[i] = pts[k] + 0.1037 * i; /* distinct per letter */
        double x, y;
        if (!eval_expr(a, vars, &x) || !eval_expr(b, vars, &y))
            return false;
        double sc = fmax(1.0, fmax(fabs(x), fabs(y)));
        if (fabs(x - y) > 1e-12 * sc)
            return false;
    }
    return true;
}

/* slime _is_frac: ^-?[0-9]+.?/0*[1-9][0-9]*.?$ */
static bool is_frac(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    /* ".?" then "/": the regex's '.' is any char */
    if (*p != '/') {
        if (!*p || p[1] != '/')
            return false;
        p++;
    }
    p++;
    while (*p == '0')
        p++;
    if (!(*p >= '1' && *p <= '9'))
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p && p[1])
        return false;
    return true;
}

#define MAX_ELEMS 64

/* slime split_tuple; pieces point into `buf` (modified). n = 0 for empty. */
static size_t split_tuple(sb *buf, char **el)
{
    strip_formatted_commas(buf);
    if (buf->n == 0)
        return 0;
    const char *tc = "()[]";
    bool tuple = buf->n > 2 && strchr(tc, buf->p[0]) && strchr(tc, buf->p[buf->n - 1]);
    for (size_t i = 1; tuple && i + 1 < buf->n; i++)
        if (strchr(tc, buf->p[i]))
            tuple = false;
    if (!tuple) {
        el[0] = buf->p;
        return 1;
    }
    buf->p[buf->n - 1] = 0;
    size_t n = 0;
    char *p = buf->p + 1;
    for (;;) {
        char *c = strchr(p, ',');
        if (c)
            *c = 0;
        while (isspace((unsigned char)*p))
            p++;
        size_t l = strlen(p);
        while (l > 0 && isspace((unsigned char)p[l - 1]))
            p[--l] = 0;
        if (n == MAX_ELEMS)
            return MAX_ELEMS + 1; /* too many: refuse */
        el[n++] = p;
        if (!c)
            break;
        p = c + 1;
    }
    return n;
}

static bool grade_sympy(const char *given, const char *truth)
{
    bool res = false;
    sb g = {0}, t = {0}, g2 = {0}, t2 = {0};
    if (!sb_set(&g, given, strlen(given)) || !sb_set(&t, truth, strlen(truth)) ||
        !normalize2(&g) || !normalize2(&t))
        goto out;
    if (strcmp(g.p, t.p) == 0) {
        res = true;
        goto out;
    }
    if (g.n == 0)
        goto out;
    if (!sb_set(&g2, g.p, g.n) || !sb_set(&t2, t.p, t.n))
        goto out;
    char *ge[MAX_ELEMS + 1], *te[MAX_ELEMS + 1];
    size_t tn = split_tuple(&t2, te), gn = split_tuple(&g2, ge);
    if (tn > MAX_ELEMS || gn > MAX_ELEMS)
        goto out;
    if (tn > 1 && (t.p[0] != g.p[0] || t.p[t.n - 1] != g.p[g.n - 1]))
        goto out;
    if (tn != gn)
        goto out;
    res = true;
    for (size_t i = 0; i < tn && res; i++) {
        if (is_frac(te[i]) && is_frac(ge[i]))
            res = strcmp(te[i], ge[i]) == 0; /* unreduced fractions stay unequal */
        else if (str_is_int(te[i]) != str_is_int(ge[i]))
            res = false;
        else
            res = numerically_equal(te[i], ge[i]);
    }
out:
    sb_free(&g), sb_free(&t), sb_free(&g2), sb_free(&t2);
    return res;
}

static bool grade_mathd(const char *given, const char *truth)
{
    sb g = {0}, t = {0};
    bool res = sb_set(&g, given, strlen(given)) && sb_set(&t, truth, strlen(truth)) &&
               mathd_normalize(&g) && mathd_normalize(&t) && strcmp(g.p, t.p) == 0;
    sb_free(&g), sb_free(&t);
    return res;
}

int sl_reward_math_equal(const char *given, const char *truth)
{
    if (!given || !truth || !*truth)
        return 0;
    if (strlen(given) > SL_REWARD_MAX_ANSWER || strlen(truth) > SL_REWARD_MAX_ANSWER)
        return 0;
    return grade_mathd(given, truth) || grade_sympy(given, truth);
}

/* ================================================================ rewards */

#define CHECK_ARGS()                                   \
    do {                                               \
        if (!score)                                    \
            return SL_EINVAL;                          \
        *score = 0.0;                                  \
        if (!response && response_len > 0)            \
            return SL_EINVAL;                          \
        if (!response)                                 \
            response = "";                             \
    } while (0)

int sl_reward_math(const char *response, size_t response_len, const char *label,
                   const char *metadata_json, double *score)
{
    (void)metadata_json;
    CHECK_ARGS();
    if (!label || !*label)
        return 0;
    size_t ls = 0, ll = strlen(label);
    if (find_n(label, ll, "\\boxed")) {
        size_t st;
        if (sl_reward_extract_boxed(label, ll, &st, &ls) != 0)
            return 0;
        label += st;
        ll = ls;
    }
    size_t st, an;
    if (sl_reward_extract_boxed(response, response_len, &st, &an) != 0)
        return 0;
    if (an > SL_REWARD_MAX_ANSWER || ll > SL_REWARD_MAX_ANSWER || memchr(response + st, 0, an))
        return 0;
    char given[SL_REWARD_MAX_ANSWER + 1], truth[SL_REWARD_MAX_ANSWER + 1];
    memcpy(given, response + st, an);
    given[an] = 0;
    memcpy(truth, label, ll);
    truth[ll] = 0;
    if (!truth[0])
        return 0;
    *score = sl_reward_math_equal(given, truth) ? 1.0 : 0.0;
    return 0;
}

/* A number at p (sign incl. U+2212, '$', digits with commas, decimals);
 * returns the end or NULL. */
static const char *scan_number(const char *p, const char *end, double *out)
{
    char buf[128];
    size_t n = 0;
    bool neg = false;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p < end && *p == '$')
        p++;
    if (p < end && (*p == '-' || *p == '+')) {
        neg = *p == '-';
        p++;
    } else if (end - p >= 3 && memcmp(p, "\xe2\x88\x92", 3) == 0) {
        neg = true;
        p += 3;
    }
    if (p < end && *p == '$')
        p++;
    bool digits = false, dot = false;
    while (p < end && n < sizeof buf - 1) {
        if (isdigit((unsigned char)*p)) {
            buf[n++] = *p;
            digits = true;
        } else if (*p == ',' && digits && p + 1 < end && isdigit((unsigned char)p[1])) {
            /* thousands separator */
        } else if (*p == '.' && !dot && p + 1 < end && isdigit((unsigned char)p[1])) {
            buf[n++] = '.';
            dot = true;
        } else {
            break;
        }
        p++;
    }
    if (!digits)
        return NULL;
    buf[n] = 0;
    *out = neg ? -strtod(buf, NULL) : strtod(buf, NULL);
    return p;
}

static bool meta_flag(const char *meta, const char *key, char *sval, size_t sval_cap)
{
    if (!meta || strlen(meta) > 65536)
        return false;
    json_t *j = json_loads(meta, JSON_REJECT_DUPLICATES, NULL);
    if (!j)
        return false;
    bool r = false;
    json_t *v = json_object_get(j, key);
    if (v && json_is_true(v))
        r = true;
    if (v && json_is_string(v) && sval && sval_cap) {
        snprintf(sval, sval_cap, "%s", json_string_value(v));
        r = true;
    }
    json_decref(j);
    return r;
}

static const char *last_hashes(const char *s, size_t n) { return rfind_n(s, n, "####"); }

int sl_reward_gsm8k(const char *response, size_t response_len, const char *label,
                    const char *metadata_json, double *score)
{
    CHECK_ARGS();
    if (!label)
        return 0;
    size_t ll = strlen(label);
    const char *lh = last_hashes(label, ll);
    const char *lp = lh ? lh + 4 : label, *lend = label + ll;
    while (lp < lend && isspace((unsigned char)*lp))
        lp++;
    double want, got;
    if (!scan_number(lp, lend, &want))
        return 0;
    const char *end = response + response_len;
    const char *h = last_hashes(response, response_len);
    if (h) {
        const char *p = h + 4;
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (!scan_number(p, end, &got))
            return 0;
    } else {
        if (!meta_flag(metadata_json, "flexible", NULL, 0))
            return 0;
        /* the last number of the response */
        const char *found = NULL;
        for (const char *p = end; p > response;) {
            p--;
            if (isdigit((unsigned char)*p)) {
                const char *a = p;
                while (a > response && (isdigit((unsigned char)a[-1]) || a[-1] == ',' || a[-1] == '.'))
                    a--;
                while (a < p && !isdigit((unsigned char)*a))
                    a++;
                if (a > response && a[-1] == '-')
                    a--;
                found = a;
                break;
            }
        }
        if (!found || !scan_number(found, end, &got))
            return 0;
    }
    /* integers (GSM8K answers) must match exactly: a relative tolerance
     * would grade 12804185 equal to 12804184 */
    if (is_intval(got) && is_intval(want) && fabs(want) < 9007199254740992.0)
        *score = nearbyint(got) == nearbyint(want) ? 1.0 : 0.0;
    else
        *score = fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want)) ? 1.0 : 0.0;
    return 0;
}

int sl_reward_exact(const char *response, size_t response_len, const char *label,
                    const char *metadata_json, double *score)
{
    (void)metadata_json;
    CHECK_ARGS();
    if (!label)
        return 0;
    size_t a = 0, b = response_len, la = 0, lb = strlen(label);
    while (a < b && isspace((unsigned char)response[a]))
        a++;
    while (b > a && isspace((unsigned char)response[b - 1]))
        b--;
    while (la < lb && isspace((unsigned char)label[la]))
        la++;
    while (lb > la && isspace((unsigned char)label[lb - 1]))
        lb--;
    *score = (b - a == lb - la && memcmp(response + a, label + la, b - a) == 0) ? 1.0 : 0.0;
    return 0;
}

/* ---------------------------------------------------------------- f1 */

typedef struct tok {
    const char *p;
    size_t n;
} tok;

static int tok_cmp(const void *x, const void *y)
{
    const tok *a = x, *b = y;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->p, b->p, n);
    return c ? c : (a->n < b->n ? -1 : a->n > b->n);
}

/* SQuAD normalize_answer into buf (lowercased, punctuation dropped), then
 * tokens without articles. Returns the token count or (size_t)-1. */
static size_t squad_tokens(const char *s, size_t n, char **buf, tok **toks)
{
    *buf = malloc(n + 1);
    *toks = malloc((n / 2 + 1) * sizeof **toks);
    if (!*buf || !*toks)
        return (size_t)-1;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && ispunct(c))
            continue;
        (*buf)[w++] = (char)tolower(c);
    }
    size_t k = 0, i = 0;
    while (i < w) {
        while (i < w && isspace((unsigned char)(*buf)[i]))
            i++;
        size_t a = i;
        while (i < w && !isspace((unsigned char)(*buf)[i]))
            i++;
        size_t l = i - a;
        if (l == 0)
            break;
        const char *t = *buf + a;
        if ((l == 1 && t[0] == 'a') || (l == 2 && memcmp(t, "an", 2) == 0) ||
            (l == 3 && memcmp(t, "the", 3) == 0))
            continue;
        (*toks)[k].p = t;
        (*toks)[k].n = l;
        k++;
    }
    return k;
}

static bool joined_is(const tok *t, size_t n, const char *word)
{
    return n == 1 && t[0].n == strlen(word) && memcmp(t[0].p, word, t[0].n) == 0;
}

static bool same_tokens(const tok *a, size_t an, const tok *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (a[i].n != b[i].n || memcmp(a[i].p, b[i].p, a[i].n) != 0)
            return false;
    return true;
}

int sl_reward_f1(const char *response, size_t response_len, const char *label,
                 const char *metadata_json, double *score)
{
    (void)metadata_json;
    CHECK_ARGS();
    if (!label)
        return 0;
    char *pb = NULL, *gb = NULL;
    tok *pt = NULL, *gt = NULL;
    int rc = 0;
    size_t pn = squad_tokens(response, response_len, &pb, &pt);
    size_t gn = squad_tokens(label, strlen(label), &gb, &gt);
    if (pn == (size_t)-1 || gn == (size_t)-1) {
        rc = SL_ENOMEM;
        goto out;
    }
    /* yes/no/noanswer must match exactly (on the joined normalized text) */
    static const char *const special[] = {"yes", "no", "noanswer"};
    bool eq = same_tokens(pt, pn, gt, gn);
    for (size_t i = 0; i < 3; i++)
        if ((joined_is(pt, pn, special[i]) || joined_is(gt, gn, special[i])) && !eq)
            goto out;
    if (pn == 0 || gn == 0)
        goto out;
    qsort(pt, pn, sizeof *pt, tok_cmp);
    qsort(gt, gn, sizeof *gt, tok_cmp);
    size_t i = 0, j = 0, same = 0;
    while (i < pn && j < gn) {
        int c = tok_cmp(&pt[i], &gt[j]);
        if (c == 0)
            same++, i++, j++;
        else if (c < 0)
            i++;
        else
            j++;
    }
    if (same > 0) {
        double prec = (double)same / (double)pn, rec = (double)same / (double)gn;
        *score = 2.0 * prec * rec / (prec + rec);
    }
out:
    free(pb), free(gb), free(pt), free(gt);
    return rc;
}

/* ---------------------------------------------------------------- format */

static bool has_hash_answer(const char *s, size_t n)
{
    const char *h = last_hashes(s, n), *end = s + n;
    if (!h)
        return false;
    const char *p = h + 4;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    double v;
    p = scan_number(p, end, &v);
    if (!p)
        return false;
    if (p < end && *p == '.')
        p++;
    while (p < end && *p != '\n') {
        if (!isspace((unsigned char)*p))
            return false;
        p++;
    }
    return true;
}

static bool has_boxed_answer(const char *s, size_t n)
{
    size_t st, l;
    if (sl_reward_extract_boxed(s, n, &st, &l) != 0)
        return false;
    for (size_t i = 0; i < l; i++)
        if (!isspace((unsigned char)s[st + i]))
            return true;
    return false;
}

int sl_reward_format(const char *response, size_t response_len, const char *label,
                     const char *metadata_json, double *score)
{
    (void)label;
    CHECK_ARGS();
    char kind[16] = "";
    meta_flag(metadata_json, "format", kind, sizeof kind);
    bool want_hash = strcmp(kind, "boxed") != 0, want_boxed = strcmp(kind, "gsm8k") != 0;
    bool ok = (want_hash && has_hash_answer(response, response_len)) ||
              (want_boxed && has_boxed_answer(response, response_len));
    *score = ok ? 1.0 : 0.0;
    return 0;
}

/* ================================================================ registry */

static const struct {
    const char *name;
    sl_reward_fn fn;
} registry[] = {
    {"math", sl_reward_math},   {"gsm8k", sl_reward_gsm8k},   {"exact", sl_reward_exact},
    {"f1", sl_reward_f1},       {"format", sl_reward_format},
};

sl_reward_fn sl_reward_find(const char *rm_type)
{
    if (!rm_type)
        return NULL;
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (strcmp(rm_type, registry[i].name) == 0)
            return registry[i].fn;
    return NULL;
}

int sl_reward_score(const char *rm_type, const char *response, size_t response_len,
                    const char *label, const char *metadata_json, double *score)
{
    if (score)
        *score = 0.0;
    if (!rm_type)
        return SL_ENOENT;
    bool boxed = starts(rm_type, "boxed_");
    sl_reward_fn fn = sl_reward_find(boxed ? rm_type + 6 : rm_type);
    if (!fn)
        return SL_ENOENT;
    if (boxed && response) {
        size_t st, l;
        if (sl_reward_extract_boxed(response, response_len, &st, &l) == 0) {
            response += st;
            response_len = l;
        } else {
            response = "";
            response_len = 0;
        }
    }
    return fn(response, response_len, label, metadata_json, score);
}
