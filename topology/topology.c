/*
 * topology.c — loading, validating, resolving and writing topology.conf.
 *
 * What it is: the parser (libinih, fed line by line through our own reader
 * so that every error carries its line), the validator (types and ranges
 * from the key table in keys.c, then the cross-key rules), the resolver
 * (actor instances, supervisor settings) and the getters.
 *
 * What it is not: the key table itself (keys.c), or anything that acts on a
 * topology (actors/).
 *
 * How a load goes: read the whole file into memory; hand it to inih one
 * line at a time. The reader counts lines, classifies each line itself
 * (comment, section header, key = value, or a syntax error), reports syntax
 * errors, tracks the current section (inih's own section buffer truncates
 * long names), strips indentation (so inih never sees a continuation line)
 * and passes values longer than inih's line buffer around it. inih splits
 * `key = value` and calls our handler, which checks each value against the
 * table as it arrives. The --set overrides go through the same entry path.
 * Then one pass checks what needs the whole file (required keys, kinds,
 * peers, devices, supervisor timing) and builds the specs.
 */
#include "topology.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <unistd.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const *sl_topology_section_names_(size_t *n); /* keys.c */

/* ================================================================ names */

const char *sl_restart_name(sl_restart r) {
    switch (r) {
    case SL_RESTART_PERMANENT: return "permanent";
    case SL_RESTART_TRANSIENT: return "transient";
    case SL_RESTART_TEMPORARY: return "temporary";
    }
    return "?";
}

const char *sl_strategy_name(sl_strategy s) {
    switch (s) {
    case SL_STRATEGY_ONE_FOR_ONE: return "one_for_one";
    case SL_STRATEGY_ONE_FOR_ALL: return "one_for_all";
    case SL_STRATEGY_REST_FOR_ONE: return "rest_for_one";
    }
    return "?";
}

const char *sl_heartbeat_name(sl_heartbeat h) {
    switch (h) {
    case SL_HEARTBEAT_NNG: return "nng";
    case SL_HEARTBEAT_MAILBOX: return "mailbox";
    case SL_HEARTBEAT_NONE: return "none";
    }
    return "?";
}

const char *sl_actor_kind_name(sl_actor_kind k) {
    switch (k) {
    case SL_KIND_BUFFER: return "buffer";
    case SL_KIND_ROLLOUT: return "rollout";
    case SL_KIND_REWARD: return "reward";
    case SL_KIND_TRAINER: return "trainer";
    case SL_KIND_ECHO: return "echo";
    case SL_KIND_PINGER: return "pinger";
    case SL_KIND_EXEC: return "exec";
    }
    return "?";
}

/* ================================================================ GPUs */

static int gpu_override = -1;

void sl_topology_set_gpu_count(int n) { gpu_override = n < 0 ? -1 : n; }

/* Entries of DIR whose name is PREFIX followed by digits only. */
static int count_numbered(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t pl = strlen(prefix);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = e->d_name;
        if (strncmp(s, prefix, pl) != 0 || !s[pl]) continue;
        const char *p = s + pl;
        while (*p && isdigit((unsigned char)*p)) p++;
        if (!*p) n++;
    }
    closedir(d);
    return n;
}

int sl_topology_gpu_count(void) {
    if (gpu_override >= 0) return gpu_override;
    const char *env = getenv("SL_GPU_COUNT");
    if (env && *env) {
        char *end;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (!*end && !errno && v >= 0 && v <= 4096) return (int)v;
    }
    int n = count_numbered("/dev", "nvidia");
    if (n == 0) {
        /* /proc/driver/nvidia/gpus/ holds one folder per GPU (PCI address) */
        DIR *d = opendir("/proc/driver/nvidia/gpus");
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)))
                if (e->d_name[0] != '.') n++;
            closedir(d);
        }
    }
    if (n == 0 && access("/usr/bin/nvidia-smi", X_OK) == 0) {
        /* containers may hide the device files: ask the driver's tool
         * (one "GPU i: ..." line per GPU) */
        FILE *f = popen("/usr/bin/nvidia-smi -L 2>/dev/null", "r");
        if (f) {
            char line[512];
            while (fgets(line, sizeof line, f))
                if (strncmp(line, "GPU ", 4) == 0) n++;
            pclose(f);
        }
    }
    return n;
}

/* ================================================================ state */

typedef struct ent {
    char *section; /* canonical */
    char *key;
    char *value;
    const char *file; /* points to priv->source or SET_FILE */
    int line;
    bool bad;         /* its value failed validation (already reported) */
} ent;

typedef struct sec {
    char *name;       /* canonical: "run", "actor NAME" */
    const char *table; /* table section: "run", "actor" */
    const char *file;
    int line;
    bool actor;
} sec;

typedef struct priv {
    char *source;
    char *run_dir;
    sec *secs;
    int n_secs, cap_secs;
    ent *ents;
    int n_ents, cap_ents;
    char **argvs[SL_TOPOLOGY_MAX_INSTANCES]; /* one split command per exec group */
    int n_argvs;
} priv;

typedef struct loader {
    priv *p;
    const char *file; /* = p->source */
    FILE *errs;
    int n_errors;
    bool oom;
    bool saw_actor;   /* any [actor ...] header, even a rejected one */
    /* reader state */
    const char *text;
    size_t len, pos;
    int lineno;
    int cur;          /* current section index; -1 none yet; -2 rejected section */
    char *long_value; /* value of the current line when it exceeds inih's buffer */
    int long_line;
} loader;

static const char SET_FILE[] = "--set";
#define LONG_MARK "\x01"

/* ================================================================ errors */

static void err_at(loader *L, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void err_at(loader *L, const char *file, int line, const char *fmt, ...) {
    L->n_errors++;
    if (!L->errs) return;
    if (L->n_errors > SL_TOPOLOGY_MAX_ERRORS) {
        if (L->n_errors == SL_TOPOLOGY_MAX_ERRORS + 1)
            fprintf(L->errs, "%s: too many errors, the rest are not shown\n", L->file);
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        fprintf(L->errs, "%s:%d: %s\n", file, line, msg);
    else
        fprintf(L->errs, "%s: %s\n", file, msg);
}

static void oom(loader *L) {
    if (!L->oom) err_at(L, L->file, 0, "out of memory");
    L->oom = true;
}

/* A copy of S fit to quote in a one-line message: control characters
 * become '?', long text is cut with "...". */
static const char *q(char *buf, size_t size, const char *s) {
    size_t n = 0, max = size - 4;
    for (; s && *s && n < max; s++) buf[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    buf[n] = 0;
    if (s && *s) strcpy(buf + n, "...");
    return buf;
}
#define Q(s) q((char[72]){0}, 72, (s))

static char *xstrdup(loader *L, const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) oom(L);
    return d;
}

/* ================================================================ small helpers */

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

static char *trim(char *s) {
    while (is_blank(*s)) s++;
    size_t n = strlen(s);
    while (n && (is_blank(s[n - 1]) || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = 0;
    return s;
}

/* Levenshtein distance, capped inputs (names are short). */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

/* A name of 1..MAX-1 characters of A-Z a-z 0-9 _ - (and '.' if DOT). */
static bool valid_name(const char *s, size_t max, bool dot) {
    size_t n = strlen(s);
    if (n == 0 || n >= max) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && !(dot && *s == '.')) return false;
    return true;
}

static bool has_control(const char *s) {
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f) return true;
    return false;
}

/* inih's rule: an inline comment is ';' at the start or after whitespace.
 * Returns the first of CHARS (or the end) not inside such a comment. */
static const char *find_chars_or_comment(const char *s, const char *chars) {
    bool was_space = false;
    while (*s && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* ================================================================ value parsing */

static bool parse_int(const char *s, long long *out) {
    if (!*s || isspace((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out) {
    if (!*s || strspn(s, "0123456789+-.eE") != strlen(s)) return false; /* no inf, nan, hex */
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out) {
    static const char *const t[] = {"true", "yes", "on", "1"}, *const f[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) return *out = true, true;
        if (strcasecmp(s, f[i]) == 0) return *out = false, true;
    }
    return false;
}

/* Milliseconds: digits, then optionally ms, s or m. */
static bool parse_duration(const char *s, long long *out) {
    if (!isdigit((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno) return false;
    long long mul;
    if (!*end || strcmp(end, "ms") == 0) mul = 1;
    else if (strcmp(end, "s") == 0) mul = 1000;
    else if (strcmp(end, "m") == 0) mul = 60000;
    else return false;
    if (v > LLONG_MAX / mul) return false;
    *out = v * mul;
    return true;
}

/* "cpu" -> -1; "cuda:N" -> N. */
static bool parse_device(const char *s, int *out) {
    if (strcmp(s, "cpu") == 0) return *out = -1, true;
    if (strncmp(s, "cuda:", 5) != 0) return false;
    const char *p = s + 5;
    size_t n = strspn(p, "0123456789");
    if (n == 0 || n > 3 || p[n]) return false;
    int v = atoi(p);
    if (v > 255) return false;
    *out = v;
    return true;
}

/* Index of S in "a|b|c", or -1. */
static int enum_index(const char *choices, const char *s) {
    size_t n = strlen(s);
    int i = 0;
    for (const char *c = choices; c && *c; i++) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, s, n) == 0) return i;
        if (!bar) break;
        c = bar + 1;
    }
    return -1;
}

/* "a|b|c" -> "a, b, c" */
static const char *list_choices(char *buf, size_t size, const char *choices) {
    size_t n = 0;
    for (const char *c = choices; *c && n + 3 < size; c++) {
        if (*c == '|') {
            buf[n++] = ',';
            buf[n++] = ' ';
        } else {
            buf[n++] = *c;
        }
    }
    buf[n] = 0;
    return buf;
}

static const char *fmt_range(char *buf, size_t size, const sl_key_def *d) {
    if (d->max >= 1e15)
        snprintf(buf, size, ">= %.15g", d->min);
    else
        snprintf(buf, size, "%.15g..%.15g", d->min, d->max);
    return buf;
}

/* Check VALUE against D; on failure write why into WHY. */
static bool check_value(const sl_key_def *d, const char *v, char *why, size_t wl) {
    char b1[72], b2[512];
    long long iv;
    double dv;
    bool bv;
    int dev;
    switch (d->type) {
    case SL_KEY_INT:
        if (!parse_int(v, &iv)) return snprintf(why, wl, "'%s' is not an integer", q(b1, sizeof b1, v)), false;
        if (iv < d->min || iv > d->max)
            return snprintf(why, wl, "%lld is out of range %s", iv, fmt_range(b2, sizeof b2, d)), false;
        return true;
    case SL_KEY_DURATION_MS:
        if (!parse_duration(v, &iv))
            return snprintf(why, wl, "'%s' is not a duration (milliseconds, e.g. 500, 500ms, 2s)",
                            q(b1, sizeof b1, v)), false;
        if (iv < d->min || iv > d->max)
            return snprintf(why, wl, "%lld ms is out of range %s", iv, fmt_range(b2, sizeof b2, d)), false;
        return true;
    case SL_KEY_DOUBLE:
        if (!parse_double(v, &dv)) return snprintf(why, wl, "'%s' is not a number", q(b1, sizeof b1, v)), false;
        if (dv < d->min || dv > d->max)
            return snprintf(why, wl, "%s is out of range %s", q(b1, sizeof b1, v), fmt_range(b2, sizeof b2, d)),
                   false;
        return true;
    case SL_KEY_BOOL:
        if (!parse_bool(v, &bv))
            return snprintf(why, wl, "'%s' is not a boolean (true, false, yes, no, on, off, 1, 0)",
                            q(b1, sizeof b1, v)), false;
        return true;
    case SL_KEY_ENUM:
        if (enum_index(d->choices, v) < 0)
            return snprintf(why, wl, "'%s' is not one of: %s", q(b1, sizeof b1, v),
                            list_choices(b2, sizeof b2, d->choices)), false;
        return true;
    case SL_KEY_DEVICE:
        if (!parse_device(v, &dev))
            return snprintf(why, wl, "'%s' is not a device (cpu or cuda:N)", q(b1, sizeof b1, v)), false;
        return true;
    case SL_KEY_STRING:
    case SL_KEY_PATH:
        return true;
    }
    return true;
}

/* ================================================================ shell-like split */

static void free_argv(char **argv) {
    if (!argv) return;
    for (char **a = argv; *a; a++) free(*a);
    free(argv);
}

/* Split S into words: blanks separate; '...' is literal; "..." allows
 * \" \\ \$ \` escapes; outside quotes a backslash escapes the next
 * character. No expansion of any kind. Returns 0 and a NULL-terminated
 * argv, or -1 with WHY (or -2: out of memory). */
static int split_command(const char *s, char ***out, int *argc_out, char *why, size_t wl) {
    size_t n = strlen(s);
    char **argv = calloc(n / 2 + 2, sizeof *argv); /* at most (n+1)/2 words */
    char *word = malloc(n + 1);
    int argc = 0;
    if (!argv || !word) goto nomem;
    const char *p = s;
    for (;;) {
        while (is_blank(*p)) p++;
        if (!*p) break;
        size_t w = 0;
        while (*p && !is_blank(*p)) {
            if (*p == '\'') {
                const char *e = strchr(p + 1, '\'');
                if (!e) { snprintf(why, wl, "unterminated ' quote"); goto bad; }
                memcpy(word + w, p + 1, (size_t)(e - p - 1));
                w += (size_t)(e - p - 1);
                p = e + 1;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1] && strchr("\"\\$`", p[1])) p++;
                    word[w++] = *p++;
                }
                if (*p != '"') { snprintf(why, wl, "unterminated \" quote"); goto bad; }
                p++;
            } else if (*p == '\\') {
                if (!p[1]) { snprintf(why, wl, "ends with a lone backslash"); goto bad; }
                word[w++] = p[1];
                p += 2;
            } else {
                word[w++] = *p++;
            }
        }
        word[w] = 0;
        if (!(argv[argc] = strdup(word))) goto nomem;
        argc++;
    }
    free(word);
    if (argc == 0) {
        free(argv);
        snprintf(why, wl, "command is empty");
        return -1;
    }
    *out = argv;
    *argc_out = argc;
    return 0;
bad:
    free(word);
    free_argv(argv);
    return -1;
nomem:
    free(word);
    free_argv(argv);
    return -2;
}

/* ================================================================ store */

int sl_topology_split_command(const char *s, char ***argv, int *argc, char *why, size_t wl) {
    return split_command(s, argv, argc, why, wl);
}
void sl_topology_free_argv(char **argv) { free_argv(argv); }

static int find_sec(const priv *p, const char *name) {
    for (int i = 0; i < p->n_secs; i++)
        if (strcmp(p->secs[i].name, name) == 0) return i;
    return -1;
}

static ent *find_ent(const priv *p, const char *section, const char *key) {
    for (int i = 0; i < p->n_ents; i++)
        if (strcmp(p->ents[i].section, section) == 0 && strcmp(p->ents[i].key, key) == 0) return &p->ents[i];
    return NULL;
}

static const char *closest_section(const char *name) {
    size_t n;
    const char *const *names = sl_topology_section_names_(&n);
    const char *best = NULL;
    int bd = 3;
    for (size_t i = 0; i < n; i++) {
        int d = edit_distance(name, names[i]);
        if (d < bd) bd = d, best = names[i];
    }
    return best;
}

/* Open (or re-open) the section with header text RAW (already trimmed).
 * Returns its index, or -2 when it is rejected (reported). */
static int open_section(loader *L, const char *raw, const char *file, int line) {
    priv *p = L->p;
    char canon[64];
    const char *table;
    bool actor = false;
    if (strncmp(raw, "actor", 5) == 0 && (!raw[5] || is_blank(raw[5]))) {
        L->saw_actor = true;
        const char *name = raw + 5;
        while (is_blank(*name)) name++;
        if (!*name) {
            err_at(L, file, line, "actor section needs a name: [actor NAME]");
            return -2;
        }
        if (!valid_name(name, SL_ACTOR_GROUP_MAX, false)) {
            err_at(L, file, line, "bad actor name '%s': use 1-%d characters of A-Z a-z 0-9 _ -", Q(name),
                   SL_ACTOR_GROUP_MAX - 1);
            return -2;
        }
        snprintf(canon, sizeof canon, "actor %s", name);
        table = "actor";
        actor = true;
        int old = find_sec(p, canon);
        if (old >= 0) {
            const sec *o = &p->secs[old];
            if (o->file == SET_FILE)
                err_at(L, file, line, "duplicate actor '%s' (first defined by --set %d)", name, o->line);
            else
                err_at(L, file, line, "duplicate actor '%s' (first defined at line %d)", name, o->line);
            return -2;
        }
    } else {
        size_t n;
        const char *const *names = sl_topology_section_names_(&n);
        table = NULL;
        for (size_t i = 0; i < n; i++)
            if (strcmp(names[i], "actor") != 0 && strcmp(names[i], raw) == 0) table = names[i];
        if (!table) {
            /* "[actors x]": compare the first word too */
            char first[64];
            snprintf(first, sizeof first, "%.*s", (int)strcspn(raw, " \t"), raw);
            const char *best = closest_section(first);
            if (best && strcmp(best, "actor") == 0) L->saw_actor = true;
            if (best && strcmp(best, "actor") == 0 && strcmp(first, raw) != 0)
                err_at(L, file, line, "unknown section '[%s]' (did you mean [actor%s]?)", Q(raw),
                       Q(raw + strlen(first)));
            else if (best && strcmp(best, "actor") != 0)
                err_at(L, file, line, "unknown section '[%s]' (did you mean [%s]?)", Q(raw), best);
            else
                err_at(L, file, line,
                       "unknown section '[%s]' (known: run, supervisor, actor NAME, model, data, rollout, "
                       "reward, algorithm, trainer, sft, eval, faults)", Q(raw));
            return -2;
        }
        snprintf(canon, sizeof canon, "%s", table);
        int old = find_sec(p, canon);
        if (old >= 0) return old; /* a repeated plain section continues the first one */
    }
    if (p->n_secs == p->cap_secs) {
        int cap = p->cap_secs ? 2 * p->cap_secs : 16;
        sec *s = realloc(p->secs, (size_t)cap * sizeof *s);
        if (!s) return oom(L), -2;
        p->secs = s;
        p->cap_secs = cap;
    }
    sec *s = &p->secs[p->n_secs];
    if (!(s->name = xstrdup(L, canon))) return -2;
    s->table = table;
    s->file = file;
    s->line = line;
    s->actor = actor;
    return p->n_secs++;
}

/* Record KEY = VALUE in section SI, from FILE:LINE. OVERRIDE: --set (replaces
 * an earlier value instead of being a duplicate). */
static void set_entry(loader *L, int si, const char *key, const char *value, const char *file, int line,
                      bool override) {
    priv *p = L->p;
    if (si == -1) {
        err_at(L, file, line, "key '%s' outside any section (put a [section] header above it)", Q(key));
        return;
    }
    if (si < 0) return; /* its section was rejected and reported */
    sec *s = &p->secs[si];
    if (!*key) {
        err_at(L, file, line, "missing key name before '='");
        return;
    }
    const sl_key_def *d = sl_topology_key_find(s->table, key);
    if (!d) {
        const sl_key_def *best = NULL, *elsewhere = NULL;
        int bd = 3;
        size_t n;
        const sl_key_def *all = sl_topology_keys(&n);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(all[i].section, s->table) == 0) {
                int dd = edit_distance(key, all[i].key);
                if (dd < bd) bd = dd, best = &all[i];
            } else if (!elsewhere && strcmp(all[i].key, key) == 0) {
                elsewhere = &all[i];
            }
        }
        const char *hdr = s->actor ? "actor NAME" : s->name;
        if (best)
            err_at(L, file, line, "unknown key '%s' in [%s] (did you mean '%s'?)", Q(key), hdr, best->key);
        else if (elsewhere)
            err_at(L, file, line, "unknown key '%s' in [%s] (it belongs in [%s])", Q(key), hdr,
                   strcmp(elsewhere->section, "actor") == 0 ? "actor NAME" : elsewhere->section);
        else
            err_at(L, file, line, "unknown key '%s' in [%s]", Q(key), hdr);
        return;
    }
    ent *e = find_ent(p, s->name, key);
    if (e && !override) {
        if (e->file == SET_FILE)
            err_at(L, file, line, "duplicate key '%s' in [%s] (first set by --set %d)", key, s->name, e->line);
        else
            err_at(L, file, line, "duplicate key '%s' in [%s] (first set at line %d)", key, s->name, e->line);
        return;
    }
    bool bad = false;
    char why[640];
    if (has_control(value)) {
        err_at(L, file, line, "bad value for '%s': it contains a control character", key);
        bad = true;
    } else if (!check_value(d, value, why, sizeof why)) {
        bool hash = strstr(value, " #") || strstr(value, "\t#");
        err_at(L, file, line, "bad value for '%s': %s%s", key, why,
               hash ? " (inline comments start with ';', not '#')" : "");
        bad = true;
    }
    char *v = xstrdup(L, value);
    if (!v) return;
    if (e) {
        free(e->value);
    } else {
        if (p->n_ents == p->cap_ents) {
            int cap = p->cap_ents ? 2 * p->cap_ents : 64;
            ent *ne = realloc(p->ents, (size_t)cap * sizeof *ne);
            if (!ne) {
                free(v);
                return oom(L);
            }
            p->ents = ne;
            p->cap_ents = cap;
        }
        e = &p->ents[p->n_ents];
        e->section = xstrdup(L, s->name);
        e->key = xstrdup(L, key);
        if (!e->section || !e->key) {
            free(e->section);
            free(e->key);
            free(v);
            return;
        }
        p->n_ents++;
    }
    e->value = v;
    e->file = file;
    e->line = line;
    e->bad = bad;
}

/* ================================================================ inih glue */

/* Fill BUF with an empty line (a line inih will ignore). */
static char *blank_line(char *buf) {
    buf[0] = '\n';
    buf[1] = 0;
    return buf;
}

/* inih's reader: called once per line, so L->lineno is the line number of
 * whatever the handler is called with next. */
static char *reader(char *buf, int num, void *user) {
    loader *L = user;
    if (L->pos >= L->len || num < 8) return NULL;
    const char *start = L->text + L->pos;
    const char *nl = memchr(start, '\n', L->len - L->pos);
    size_t n = nl ? (size_t)(nl - start) : L->len - L->pos;
    L->pos += n + (nl ? 1 : 0);
    L->lineno++;
    int line = L->lineno;
    if (n > SL_TOPOLOGY_MAX_LINE) {
        err_at(L, L->file, line, "line too long (%zu characters, at most %d)", n, SL_TOPOLOGY_MAX_LINE);
        return blank_line(buf);
    }
    char raw[SL_TOPOLOGY_MAX_LINE + 1];
    memcpy(raw, start, n);
    raw[n] = 0;
    char *s = raw;
    if (line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF)
        s += 3; /* UTF-8 byte order mark */
    s = trim(s); /* indentation means nothing: inih never sees continuation lines */

    if (!*s || *s == ';' || *s == '#') return blank_line(buf);

    if (*s == '[') {
        const char *end = find_chars_or_comment(s + 1, "]");
        if (*end != ']') {
            err_at(L, L->file, line, "unterminated section header (missing ']')");
            if (strncmp(s, "[actor", 6) == 0) L->saw_actor = true; /* no "no actors" on top */
            L->cur = -2;
            return blank_line(buf);
        }
        const char *after = end + 1;
        while (is_blank(*after)) after++;
        if (*after && *after != ';' && *after != '#') {
            err_at(L, L->file, line, "unexpected text after section header: '%s'", Q(after));
            L->cur = -2;
            return blank_line(buf);
        }
        char name[SL_TOPOLOGY_MAX_LINE + 1];
        snprintf(name, sizeof name, "%.*s", (int)(end - s - 1), s + 1);
        char *t = trim(name);
        /* collapse "actor   NAME" to one canonical spelling happens in open_section */
        L->cur = open_section(L, t, L->file, line);
        return blank_line(buf);
    }

    const char *sep = find_chars_or_comment(s, "=:");
    if (*sep != '=' && *sep != ':') {
        err_at(L, L->file, line, "expected 'key = value', '[section]' or a comment, got '%s'", Q(s));
        return blank_line(buf);
    }
    if (strlen(s) + 2 <= (size_t)num) {
        memcpy(buf, s, strlen(s) + 1);
        return buf;
    }
    /* Longer than inih's line buffer: split it here the way inih would, and
     * hand inih the key with a marker the handler swaps for the value. */
    size_t klen = (size_t)(sep - s);
    if (klen + 4 > (size_t)num) {
        err_at(L, L->file, line, "key name too long");
        return blank_line(buf);
    }
    char *v = (char *)sep + 1;
    *(char *)find_chars_or_comment(v, NULL) = 0;
    v = trim(v);
    free(L->long_value);
    L->long_value = xstrdup(L, v);
    L->long_line = line;
    memcpy(buf, s, klen);
    memcpy(buf + klen, "=" LONG_MARK, 3);
    return buf;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    (void)section; /* tracked by the reader: inih's copy is cut at 50 bytes */
    loader *L = user;
    if (strcmp(value, LONG_MARK) == 0 && L->long_line == L->lineno && L->long_value) value = L->long_value;
    set_entry(L, L->cur, name, value, L->file, L->lineno, false);
    return 1;
}

/* ================================================================ --set */

static void apply_set(loader *L, const char *arg, int idx) {
    char b[SL_TOPOLOGY_MAX_LINE + 1];
    if (!arg) arg = "";
    if (strlen(arg) > SL_TOPOLOGY_MAX_LINE) {
        err_at(L, SET_FILE, idx, "override too long (at most %d characters)", SL_TOPOLOGY_MAX_LINE);
        return;
    }
    strcpy(b, arg);
    char *eq = strchr(b, '=');
    if (!eq) {
        err_at(L, SET_FILE, idx, "expected section.key=value or actor.NAME.key=value, got '%s'", Q(arg));
        return;
    }
    *eq = 0;
    char *lhs = trim(b), *value = trim(eq + 1);
    char *dot = strchr(lhs, '.');
    if (!dot || dot == lhs) {
        err_at(L, SET_FILE, idx, "expected section.key=value or actor.NAME.key=value, got '%s'", Q(arg));
        return;
    }
    *dot = 0;
    char *secname = lhs, *key = dot + 1, header[SL_TOPOLOGY_MAX_LINE + 8];
    if (strcmp(secname, "actor") == 0) {
        char *dot2 = strchr(key, '.');
        if (!dot2) {
            err_at(L, SET_FILE, idx, "expected actor.NAME.key=value, got '%s'", Q(arg));
            return;
        }
        *dot2 = 0;
        snprintf(header, sizeof header, "actor %s", key);
        key = dot2 + 1;
    } else {
        snprintf(header, sizeof header, "%s", secname);
    }
    /* What the file format could not hold cannot be written back either. */
    if (has_control(value)) {
        err_at(L, SET_FILE, idx, "bad value for '%s': it contains a control character", Q(key));
        return;
    }
    const char *c = find_chars_or_comment(value, NULL);
    if (*c) {
        err_at(L, SET_FILE, idx, "bad value for '%s': ';' after a space starts a comment in topology files",
               Q(key));
        return;
    }
    int si = find_sec(L->p, header);
    if (si < 0) si = open_section(L, header, SET_FILE, idx);
    set_entry(L, si, key, value, SET_FILE, idx, true);
}

/* ================================================================ validation */

/* Value of KEY in section S, if set and valid; else NULL. */
static const ent *good(const priv *p, const char *s, const char *key) {
    const ent *e = find_ent(p, s, key);
    return e && !e->bad ? e : NULL;
}

static const char *val_or_def(const priv *p, const char *s, const char *key) {
    const ent *e = find_ent(p, s, key);
    if (e && !e->bad) return e->value;
    const sl_key_def *d = sl_topology_key_find(s, key);
    return d && d->def ? d->def : "";
}

static bool kind_applies(const char *kinds, const char *kind) {
    return !kinds || (kind && enum_index(kinds, kind) >= 0);
}

/* Where to point at for a rule about key K of section S: the key's own line
 * if set, else the section's header. */
static void where(const priv *p, int si, const char *k, const char **file, int *line) {
    const ent *e = k ? find_ent(p, p->secs[si].name, k) : NULL;
    *file = e ? e->file : p->secs[si].file;
    *line = e ? e->line : p->secs[si].line;
}

static long long int_of(const priv *p, const char *s, const char *key) {
    const char *v = val_or_def(p, s, key);
    long long x = 0;
    const sl_key_def *d = sl_topology_key_find(s, key);
    if (d && d->type == SL_KEY_DURATION_MS) parse_duration(v, &x);
    else parse_int(v, &x);
    return x;
}

static double dbl_of(const priv *p, const char *s, const char *key) {
    double x = 0;
    parse_double(val_or_def(p, s, key), &x);
    return x;
}

/* Rules that need more than one value. */
static void validate_whole(loader *L) {
    priv *p = L->p;
    const char *f;
    int ln;
    int gpus = -2; /* counted on first use */
    int cluster_done = 0; /* [cluster] checked (once, with the first actor that has a host) */

    for (int si = 0; si < p->n_secs; si++) {
        sec *s = &p->secs[si];
        size_t nk;
        const sl_key_def *keys = sl_topology_keys(&nk);
        const ent *ek = s->actor ? good(p, s->name, "kind") : NULL;
        const char *kind = ek ? ek->value : NULL;
        bool kind_bad = s->actor && find_ent(p, s->name, "kind") && !ek;
        for (size_t i = 0; i < nk; i++) {
            const sl_key_def *d = &keys[i];
            if (strcmp(d->section, s->table) != 0) continue;
            const ent *e = find_ent(p, s->name, d->key);
            if (d->kinds) {
                if (!kind) continue; /* kind missing or bad: reported already */
                if (e && !kind_applies(d->kinds, kind)) {
                    char b[256];
                    err_at(L, e->file, e->line, "key '%s' is only for kind %s (actor '%s' is kind %s)", d->key,
                           list_choices(b, sizeof b, d->kinds), s->name + 6, kind);
                    continue;
                }
                if (!e && d->required && kind_applies(d->kinds, kind))
                    err_at(L, s->file, s->line, "[%s] kind %s needs key '%s'", s->name, kind, d->key);
                continue;
            }
            if (!e && d->required && !(kind_bad && strcmp(d->key, "kind") == 0))
                err_at(L, s->file, s->line, "[%s] missing required key '%s'", s->name, d->key);
        }
    }

    /* actors */
    if (!L->saw_actor) err_at(L, L->file, 1, "no actors: add at least one [actor NAME] section");
    int total = 0;
    for (int si = 0; si < p->n_secs; si++) {
        sec *s = &p->secs[si];
        if (!s->actor) continue;
        const ent *e;
        if ((e = good(p, s->name, "count"))) total += (int)int_of(p, s->name, "count");
        else total += 1;
        const ent *eh = good(p, s->name, "host");
        bool remote = eh && *eh->value;
        if (remote) {
            /* it goes into a command line and is the mailbox's bind address */
            const char *h = eh->value;
            bool ok = strlen(h) <= 63;
            for (const char *c = h; *c && ok; c++)
                ok = isalnum((unsigned char)*c) || *c == '.' || *c == '-' || *c == '_';
            if (!ok)
                err_at(L, eh->file, eh->line, "bad value for 'host': '%s': an IPv4 address or host name "
                       "(1-63 characters of A-Z a-z 0-9 . - _)", Q(h));
            if (strcmp(val_or_def(p, "run", "transport"), "tcp") != 0)
                err_at(L, eh->file, eh->line, "actor on host %s needs [run] transport = tcp (ipc mailboxes are "
                       "local to one machine)", Q(h));
            const ent *hb2 = good(p, s->name, "heartbeat");
            if (hb2 && strcmp(hb2->value, "nng") == 0)
                err_at(L, hb2->file, hb2->line, "heartbeat nng is local to one machine: use mailbox or none "
                       "for an actor with host");
            const ent *lc = good(p, "cluster", "launcher");
            if (cluster_done++) lc = NULL;
            if (lc && strcmp(lc->value, "command") == 0 && !*val_or_def(p, "cluster", "launch_command"))
                err_at(L, lc->file, lc->line, "launcher = command needs [cluster] launch_command");
            const char *lk = val_or_def(p, "cluster", "launcher");
            const char *tk = strcmp(lk, "srun") == 0 ? "srun_command" : strcmp(lk, "command") == 0 ? "launch_command" : "ssh_command";
            const ent *te = good(p, "cluster", tk);
            char why[128];
            char **av = NULL;
            int ac = 0;
            int rc = cluster_done > 1 ? 0 : split_command(val_or_def(p, "cluster", tk), &av, &ac, why, sizeof why);
            free_argv(av);
            if (rc == -1 && te) err_at(L, te->file, te->line, "bad value for '%s': %s", tk, why);
            else if (rc == -2) oom(L);
        }
        if ((e = good(p, s->name, "device"))) {
            int dev = -1;
            parse_device(e->value, &dev);
            const ent *ec = good(p, s->name, "count");
            int cnt = ec ? (int)int_of(p, s->name, "count") : 1;
            bool spread = strcmp(val_or_def(p, s->name, "placement"), "one_per_gpu") == 0;
            int last = spread ? dev + cnt - 1 : dev;
            int have = -1;
            if (dev >= 0 && remote) {
                have = (int)int_of(p, "cluster", "host_gpus"); /* -1: checked by the actor there */
            } else if (dev >= 0) {
                if (gpus == -2) gpus = sl_topology_gpu_count();
                have = gpus;
            }
            char what[96];
            if (last > dev) snprintf(what, sizeof what, "devices cuda:%d..cuda:%d (one_per_gpu, count %d)", dev, last, cnt);
            else snprintf(what, sizeof what, "device %s", e->value);
            const char *where_ = remote ? "host" : "machine";
            if (dev >= 0 && have == 0)
                err_at(L, e->file, e->line, "%s requested but this %s has no CUDA GPU%s", what, where_,
                       remote ? "" : " (slime-supervisor --check --gpus N checks it for a machine of N GPUs)");
            else if (dev >= 0 && have > 0 && last >= have)
                err_at(L, e->file, e->line, "%s requested but this %s has only %d CUDA GPU%s", what, where_,
                       have, have == 1 ? "" : "s");
        }
        if ((e = good(p, s->name, "command"))) {
            char why[128];
            char **argv = NULL;
            int argc = 0;
            int rc = split_command(e->value, &argv, &argc, why, sizeof why);
            if (rc == -1) err_at(L, e->file, e->line, "bad value for 'command': %s", why);
            else if (rc == -2) oom(L);
            free_argv(argv);
        }
        const ent *ek = good(p, s->name, "kind");
        {
            /* data-parallel trainers run over NCCL: GPUs only */
            const ent *ec = good(p, s->name, "count");
            const ent *ed = good(p, s->name, "device");
            int dev = -1;
            if (ed) parse_device(ed->value, &dev);
            if (ek && strcmp(ek->value, "trainer") == 0 && ec && int_of(p, s->name, "count") > 1 && dev < 0)
                err_at(L, ec->file, ec->line, "count = %s trainers need device = cuda:N: data parallelism "
                       "runs over NCCL between GPUs", ec->value);
        }
        if ((e = good(p, s->name, "peer")) && ek && strcmp(ek->value, "pinger") == 0) {
            /* a group name, or an instance name GROUP.I of a group with count > 1 */
            bool found = false, self = false;
            for (int sj = 0; sj < p->n_secs && !found; sj++) {
                const sec *t = &p->secs[sj];
                if (!t->actor) continue;
                const char *g = t->name + 6;
                size_t gl = strlen(g);
                if (strcmp(e->value, g) == 0) {
                    found = true;
                } else if (strncmp(e->value, g, gl) == 0 && e->value[gl] == '.') {
                    long long idx, cnt = int_of(p, t->name, "count");
                    if (cnt > 1 && parse_int(e->value + gl + 1, &idx) && isdigit((unsigned char)e->value[gl + 1]) &&
                        idx >= 0 && idx < cnt)
                        found = true;
                }
                if (found && sj == si) self = true;
            }
            if (self)
                err_at(L, e->file, e->line, "peer '%s' is the actor itself", Q(e->value));
            else if (!found)
                err_at(L, e->file, e->line, "peer '%s' names no actor", Q(e->value));
        }
    }
    if (total > SL_TOPOLOGY_MAX_INSTANCES)
        err_at(L, L->file, 1, "%d actor instances (at most %d)", total, SL_TOPOLOGY_MAX_INSTANCES);

    /* supervisor timing */
    int sv = find_sec(p, "supervisor");
    long long hb = int_of(p, "supervisor", "heartbeat_ms"), to = int_of(p, "supervisor", "heartbeat_timeout_ms");
    if (to <= hb && sv >= 0 && !(find_ent(p, "supervisor", "heartbeat_ms") && !good(p, "supervisor", "heartbeat_ms")) &&
        !(find_ent(p, "supervisor", "heartbeat_timeout_ms") && !good(p, "supervisor", "heartbeat_timeout_ms"))) {
        where(p, sv, good(p, "supervisor", "heartbeat_timeout_ms") ? "heartbeat_timeout_ms" : "heartbeat_ms", &f,
              &ln);
        err_at(L, f, ln, "heartbeat_timeout_ms (%lld) must exceed heartbeat_ms (%lld)", to, hb);
    }

    /* run name */
    int rs = find_sec(p, "run");
    const ent *e;
    if (rs >= 0 && (e = good(p, "run", "name")) && !valid_name(e->value, 64, true))
        err_at(L, e->file, e->line, "bad value for 'name': '%s': use 1-63 characters of A-Z a-z 0-9 _ - .",
               Q(e->value));
    if (rs >= 0 && (e = good(p, "run", "name")) && (strcmp(e->value, ".") == 0 || strcmp(e->value, "..") == 0))
        err_at(L, e->file, e->line, "bad value for 'name': '%s' is not a usable folder name", e->value);
    if (rs >= 0 && (e = find_ent(p, "run", "run_dir")) && !e->bad && !*e->value)
        err_at(L, e->file, e->line, "bad value for 'run_dir': empty (leave the key out for runs/NAME)");

    /* RL rules */
    int rw = find_sec(p, "reward");
    if (rw >= 0 && strcmp(val_or_def(p, "reward", "rm_type"), "custom") == 0 &&
        !*val_or_def(p, "reward", "custom_rm_path")) {
        where(p, rw, good(p, "reward", "rm_type") ? "rm_type" : NULL, &f, &ln);
        err_at(L, f, ln, "rm_type custom needs custom_rm_path (the reward plugin)");
    }
    int rol = find_sec(p, "rollout");
    if (rol >= 0 && (e = good(p, "rollout", "workflow")) && *e->value) {
        /* the workflow actor must be an [actor NAME] of this topology, not a built-in RL kind */
        int found = -1;
        for (int sj = 0; sj < p->n_secs; sj++)
            if (p->secs[sj].actor && strcmp(p->secs[sj].name + 6, e->value) == 0) found = sj;
        const ent *wk = found >= 0 ? good(p, p->secs[found].name, "kind") : NULL;
        if (found < 0)
            err_at(L, e->file, e->line, "workflow '%s' names no [actor] section", Q(e->value));
        else if (wk && (strcmp(wk->value, "buffer") == 0 || strcmp(wk->value, "trainer") == 0 ||
                        strcmp(wk->value, "reward") == 0 || strcmp(wk->value, "rollout") == 0))
            err_at(L, e->file, e->line, "workflow '%s' is a %s actor (a workflow actor is usually kind exec)",
                   Q(e->value), wk->value);
    }
    if (rol >= 0 && (e = good(p, "rollout", "custom_generate_function_path")) && *e->value) {
        /* the hook's driver is the workflow actor; FILE must load and SYMBOL resolve now, not at run time */
        const ent *wf = good(p, "rollout", "workflow");
        if (!wf || !*wf->value)
            err_at(L, e->file, e->line,
                   "custom_generate_function_path needs [rollout] workflow = NAME ([actor NAME] kind = exec, "
                   "command = build/slime-wf-plugin)");
        char path[4096];
        const char *sym = "slime_custom_generate";
        snprintf(path, sizeof path, "%s", e->value);
        char *c = strrchr(path, ':');
        if (c && !strchr(c, '/')) *c = 0, sym = c + 1;
        void *h = NULL;
        if (!*sym)
            err_at(L, e->file, e->line, "custom_generate_function_path '%s': empty SYMBOL after ':'", Q(e->value));
        else if (access(path, R_OK) != 0)
            err_at(L, e->file, e->line, "custom_generate_function_path: cannot read '%s': %s", Q(path),
                   strerror(errno));
        else if (!(h = dlopen(path, RTLD_NOW | RTLD_LOCAL)))
            err_at(L, e->file, e->line, "custom_generate_function_path: cannot load '%s': %s", Q(path), dlerror());
        else if (!dlsym(h, sym))
            err_at(L, e->file, e->line, "custom_generate_function_path: '%s' has no symbol '%s'", Q(path), Q(sym));
        if (h) dlclose(h);
    }
    int al = find_sec(p, "algorithm");
    if (al >= 0 && good(p, "algorithm", "eps_clip_c")) {
        double c = dbl_of(p, "algorithm", "eps_clip_c");
        if (c != 0 && c <= 1) {
            where(p, al, "eps_clip_c", &f, &ln);
            err_at(L, f, ln, "eps_clip_c must be greater than 1 (or 0 for off), not %g", c);
        }
    }
    int tr = find_sec(p, "trainer");
    if (tr >= 0 && (good(p, "trainer", "min_lr") || good(p, "trainer", "lr")) &&
        dbl_of(p, "trainer", "min_lr") > dbl_of(p, "trainer", "lr")) {
        where(p, tr, good(p, "trainer", "min_lr") ? "min_lr" : "lr", &f, &ln);
        err_at(L, f, ln, "min_lr (%g) must not exceed lr (%g)", dbl_of(p, "trainer", "min_lr"),
               dbl_of(p, "trainer", "lr"));
    }
    if (tr >= 0 && good(p, "trainer", "global_batch_size") && good(p, "trainer", "micro_batch_size")) {
        long long g = int_of(p, "trainer", "global_batch_size"), m = int_of(p, "trainer", "micro_batch_size");
        if (g > 0 && m > g) {
            where(p, tr, "micro_batch_size", &f, &ln);
            err_at(L, f, ln, "micro_batch_size (%lld) must not exceed global_batch_size (%lld)", m, g);
        }
    }
    int ro = find_sec(p, "rollout");
    if (ro >= 0 && good(p, "rollout", "over_sampling_batch_size")) {
        long long o = int_of(p, "rollout", "over_sampling_batch_size"),
                  r = int_of(p, "rollout", "rollout_batch_size");
        if (o > 0 && o < r) {
            where(p, ro, "over_sampling_batch_size", &f, &ln);
            err_at(L, f, ln, "over_sampling_batch_size (%lld) must be 0 or at least rollout_batch_size (%lld)", o,
                   r);
        }
    }
}

/* ================================================================ build */

static void priv_free(priv *p) {
    if (!p) return;
    for (int i = 0; i < p->n_secs; i++) free(p->secs[i].name);
    for (int i = 0; i < p->n_ents; i++) {
        free(p->ents[i].section);
        free(p->ents[i].key);
        free(p->ents[i].value);
    }
    for (int i = 0; i < p->n_argvs; i++) free_argv(p->argvs[i]);
    free(p->secs);
    free(p->ents);
    free(p->run_dir);
    free(p->source);
    free(p);
}

void sl_topology_free(sl_topology *t) {
    if (!t) return;
    free(t->actors);
    free(t->sections);
    free(t->entries);
    priv_free(t->priv_);
    free(t);
}

static sl_topology *build(loader *L) {
    priv *p = L->p;
    sl_topology *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->priv_ = p;
    t->source = p->source;

    t->run_name = val_or_def(p, "run", "name");
    const ent *rd = good(p, "run", "run_dir");
    if (rd) {
        p->run_dir = strdup(rd->value);
    } else if ((p->run_dir = malloc(strlen(t->run_name) + 6))) {
        sprintf(p->run_dir, "runs/%s", t->run_name);
    }
    if (!p->run_dir) goto fail;
    t->run_dir = p->run_dir;

    sl_supervisor_spec *sv = &t->supervisor;
    sv->strategy = (sl_strategy)enum_index(sl_topology_key_find("supervisor", "strategy")->choices,
                                           val_or_def(p, "supervisor", "strategy"));
    sv->intensity = (int)int_of(p, "supervisor", "intensity");
    sv->period = (int)int_of(p, "supervisor", "period");
    sv->heartbeat_ms = (int)int_of(p, "supervisor", "heartbeat_ms");
    sv->heartbeat_timeout_ms = (int)int_of(p, "supervisor", "heartbeat_timeout_ms");

    /* sections, then entries grouped by section */
    t->sections = calloc((size_t)p->n_secs + 1, sizeof *t->sections);
    t->entries = calloc((size_t)p->n_ents + 1, sizeof *t->entries);
    if (!t->sections || !t->entries) goto fail;
    int total = 0;
    for (int si = 0; si < p->n_secs; si++) {
        const sec *s = &p->secs[si];
        t->sections[t->n_sections++] = (sl_topology_section){s->name, s->file, s->line};
        for (int i = 0; i < p->n_ents; i++) {
            const ent *e = &p->ents[i];
            if (strcmp(e->section, s->name) == 0)
                t->entries[t->n_entries++] =
                    (sl_topology_entry){s->name, e->key, e->value, e->file, e->line};
        }
        if (s->actor) total += (int)int_of(p, s->name, "count");
    }

    t->actors = calloc((size_t)total + 1, sizeof *t->actors);
    if (!t->actors) goto fail;
    const sl_key_def *kd = sl_topology_key_find("actor", "kind"), *rd2 = sl_topology_key_find("actor", "restart"),
                     *hd = sl_topology_key_find("actor", "heartbeat");
    for (int si = 0; si < p->n_secs; si++) {
        const sec *s = &p->secs[si];
        if (!s->actor) continue;
        const char *g = s->name + 6;
        int count = (int)int_of(p, s->name, "count");
        sl_actor_kind kind = (sl_actor_kind)enum_index(kd->choices, val_or_def(p, s->name, "kind"));
        char **argv = NULL;
        int argc = 0;
        const ent *ce = good(p, s->name, "command");
        if (kind == SL_KIND_EXEC && ce) {
            char why[128];
            if (split_command(ce->value, &argv, &argc, why, sizeof why) != 0) goto fail;
            p->argvs[p->n_argvs++] = argv;
        }
        const char *host = val_or_def(p, s->name, "host");
        const ent *he = good(p, s->name, "heartbeat");
        sl_heartbeat hb = he ? (sl_heartbeat)enum_index(hd->choices, he->value)
                             : (kind == SL_KIND_EXEC || *host ? SL_HEARTBEAT_MAILBOX : SL_HEARTBEAT_NNG);
        int dev = -1;
        parse_device(val_or_def(p, s->name, "device"), &dev);
        bool spread = strcmp(val_or_def(p, s->name, "placement"), "one_per_gpu") == 0;
        for (int i = 0; i < count; i++) {
            sl_actor_spec *a = &t->actors[t->n_actors++];
            if (count > 1) snprintf(a->name, sizeof a->name, "%s.%d", g, i);
            else snprintf(a->name, sizeof a->name, "%s", g);
            snprintf(a->group, sizeof a->group, "%s", g);
            a->section = s->name;
            a->index = i;
            a->count = count;
            a->kind = kind;
            a->kind_name = sl_actor_kind_name(kind);
            a->restart = (sl_restart)enum_index(rd2->choices, val_or_def(p, s->name, "restart"));
            a->shutdown_ms = (int)int_of(p, s->name, "shutdown_ms");
            snprintf(a->device, sizeof a->device, "%s", val_or_def(p, s->name, "device"));
            a->cuda_device = dev;
            if (dev >= 0 && spread) {
                a->cuda_device = dev + i;
                snprintf(a->device, sizeof a->device, "cuda:%d", dev + i);
            }
            a->host = *host ? host : NULL;
            a->command = argv ? ce->value : NULL;
            a->argv = argv;
            a->argc = argc;
            a->heartbeat = hb;
            a->peer = kind == SL_KIND_PINGER ? val_or_def(p, s->name, "peer") : NULL;
            a->interval_ms = kind == SL_KIND_PINGER ? (int)int_of(p, s->name, "interval_ms") : 0;
            a->line = s->file == SET_FILE ? 0 : s->line;
        }
    }
    /* instance names cannot collide while group names hold no '.', but the
     * supervisor depends on it, so it is checked, not assumed */
    for (int i = 0; i < t->n_actors; i++)
        for (int j = i + 1; j < t->n_actors; j++)
            if (strcmp(t->actors[i].name, t->actors[j].name) == 0) {
                const sec *s = &p->secs[find_sec(p, t->actors[j].section)];
                err_at(L, s->file, s->line, "actor instance name '%s' is used twice", t->actors[j].name);
            }
    if (L->n_errors) goto fail;
    return t;
fail:
    t->priv_ = NULL; /* the caller frees p */
    sl_topology_free(t);
    return NULL;
}

/* ================================================================ load */

static int load_text(const char *name, const char *text, size_t len, const char *const *sets, int n_sets,
                     sl_topology **out, FILE *errs) {
    *out = NULL;
    loader L = {.errs = errs, .text = text, .len = len, .cur = -1};
    L.p = calloc(1, sizeof *L.p);
    if (!L.p || !(L.p->source = strdup(name))) {
        free(L.p);
        if (errs) fprintf(errs, "%s: out of memory\n", name);
        return 1;
    }
    L.file = L.p->source;
    const char *nul = memchr(text, 0, len);
    if (nul) {
        int line = 1;
        for (const char *c = text; c < nul; c++) line += *c == '\n';
        err_at(&L, L.file, line, "contains a NUL byte (not a text file)");
    } else {
        int rc = ini_parse_stream(reader, &L, handler, &L);
        if (rc < 0) oom(&L);
        else if (rc > 0 && L.n_errors == 0) err_at(&L, L.file, rc, "syntax error");
        for (int i = 0; i < n_sets; i++) apply_set(&L, sets ? sets[i] : NULL, i + 1);
        validate_whole(&L);
    }
    free(L.long_value);
    sl_topology *t = NULL;
    if (L.n_errors == 0 && !(t = build(&L)) && L.n_errors == 0) oom(&L);
    if (!t) {
        priv_free(L.p);
        return L.n_errors;
    }
    *out = t;
    return 0;
}

int sl_topology_load_string(const char *name, const char *text, const char *const *sets, int n_sets,
                            sl_topology **out, FILE *errs) {
    if (!out) return 1;
    if (!text) text = "";
    return load_text(name ? name : "<string>", text, strlen(text), sets, n_sets, out, errs);
}

int sl_topology_load(const char *path, const char *const *sets, int n_sets, sl_topology **out, FILE *errs) {
    if (!out) return 1;
    *out = NULL;
    if (!path) path = "";
    FILE *f = fopen(path, "rb");
    struct stat st;
    const char *why = NULL;
    if (!f) why = strerror(errno);
    else if (fstat(fileno(f), &st) != 0) why = strerror(errno);
    else if (S_ISDIR(st.st_mode)) why = strerror(EISDIR);
    if (why) {
        if (errs) fprintf(errs, "%s: cannot read: %s\n", path, why);
        if (f) fclose(f);
        return 1;
    }
    char *buf = malloc(SL_TOPOLOGY_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        if (errs) fprintf(errs, "%s: cannot read: %s\n", path, strerror(ENOMEM));
        return 1;
    }
    size_t n = fread(buf, 1, SL_TOPOLOGY_MAX_BYTES + 1, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (rerr || n > SL_TOPOLOGY_MAX_BYTES) {
        if (errs) {
            if (rerr) fprintf(errs, "%s: cannot read: %s\n", path, strerror(rerr ? rerr : EIO));
            else fprintf(errs, "%s: cannot read: larger than %d bytes\n", path, SL_TOPOLOGY_MAX_BYTES);
        }
        free(buf);
        return 1;
    }
    buf[n] = 0;
    int rc = load_text(path, buf, n, sets, n_sets, out, errs);
    free(buf);
    return rc;
}

int sl_topology_cli_load(const char *path, const char *const *sets, int n_sets, sl_topology **out) {
    int n = sl_topology_load(path, sets, n_sets, out, stderr);
    return n == 0 ? SL_EXIT_OK : SL_EXIT_USAGE;
}

/* ================================================================ getters */

const sl_actor_spec *sl_topology_find_actor(const sl_topology *t, const char *name) {
    if (!t || !name) return NULL;
    for (int i = 0; i < t->n_actors; i++)
        if (strcmp(t->actors[i].name, name) == 0) return &t->actors[i];
    return NULL;
}

/* The stored text of (section, key) or its default; NULL + logged if the
 * table has no such key. *SET tells whether it was set explicitly. */
static const char *lookup(const sl_topology *t, const char *section, const char *key, const sl_key_def **dp,
                          bool *set) {
    *set = false;
    const sl_key_def *d = sl_topology_key_find(section, key);
    if (dp) *dp = d;
    if (!t || !d) {
        sl_error("topology: no key '%s' in section '%s'", key ? key : "(null)", section ? section : "(null)");
        return NULL;
    }
    char canon[64];
    const sl_actor_spec *a = NULL;
    if (strcmp(d->section, "actor") == 0) {
        const char *n = section + 5;
        if (*n == ' ' || *n == '.') n++;
        /* an instance name maps to its group */
        if ((a = sl_topology_find_actor(t, n))) n = a->group;
        snprintf(canon, sizeof canon, "actor %s", n);
        section = canon;
    }
    const priv *p = t->priv_;
    const ent *e = find_ent(p, section, key);
    if (e) {
        *set = true;
        return e->value;
    }
    if (d->def) return d->def;
    /* computed defaults */
    if (strcmp(key, "run_dir") == 0) return t->run_dir;
    if (strcmp(key, "heartbeat") == 0) {
        const char *kind = find_ent(p, section, "kind") ? find_ent(p, section, "kind")->value : "";
        return strcmp(kind, "exec") == 0 ? "mailbox" : "nng";
    }
    return "";
}

const char *sl_topology_get_str(const sl_topology *t, const char *section, const char *key) {
    bool set;
    const char *v = lookup(t, section, key, NULL, &set);
    return v ? v : "";
}

long long sl_topology_get_int(const sl_topology *t, const char *section, const char *key) {
    bool set;
    const sl_key_def *d;
    const char *v = lookup(t, section, key, &d, &set);
    long long x = 0;
    if (!v) return 0;
    if (d->type == SL_KEY_DURATION_MS) parse_duration(v, &x);
    else if (d->type == SL_KEY_INT) parse_int(v, &x);
    else sl_error("topology: key %s.%s is a %s, not an int", section, key, sl_key_type_name(d->type));
    return x;
}

double sl_topology_get_double(const sl_topology *t, const char *section, const char *key) {
    bool set;
    const sl_key_def *d;
    const char *v = lookup(t, section, key, &d, &set);
    if (!v) return 0;
    if (d->type == SL_KEY_INT || d->type == SL_KEY_DURATION_MS) return (double)sl_topology_get_int(t, section, key);
    double x = 0;
    if (d->type == SL_KEY_DOUBLE) parse_double(v, &x);
    else sl_error("topology: key %s.%s is a %s, not a double", section, key, sl_key_type_name(d->type));
    return x;
}

bool sl_topology_get_bool(const sl_topology *t, const char *section, const char *key) {
    bool set, x = false;
    const sl_key_def *d;
    const char *v = lookup(t, section, key, &d, &set);
    if (!v) return false;
    if (d->type == SL_KEY_BOOL) parse_bool(v, &x);
    else sl_error("topology: key %s.%s is a %s, not a bool", section, key, sl_key_type_name(d->type));
    return x;
}

int sl_topology_get_enum(const sl_topology *t, const char *section, const char *key) {
    bool set;
    const sl_key_def *d;
    const char *v = lookup(t, section, key, &d, &set);
    if (!v) return -1;
    if (d->type != SL_KEY_ENUM) {
        sl_error("topology: key %s.%s is a %s, not an enum", section, key, sl_key_type_name(d->type));
        return -1;
    }
    return enum_index(d->choices, v);
}

bool sl_topology_is_set(const sl_topology *t, const char *section, const char *key) {
    bool set;
    lookup(t, section, key, NULL, &set);
    return set;
}

/* ================================================================ output */

int sl_topology_write(const sl_topology *t, FILE *f) {
    if (!t || !f) return SL_EINVAL;
    fprintf(f, "# topology resolved from %s (overrides applied)\n", t->source);
    int ei = 0;
    for (int si = 0; si < t->n_sections; si++) {
        fprintf(f, "\n[%s]\n", t->sections[si].name);
        for (; ei < t->n_entries && strcmp(t->entries[ei].section, t->sections[si].name) == 0; ei++)
            fprintf(f, "%s = %s\n", t->entries[ei].key, t->entries[ei].value);
    }
    return fflush(f) == 0 && !ferror(f) ? SL_OK : SL_EIO;
}

void sl_topology_print_reference(FILE *f) {
    size_t ns, nk;
    const char *const *secs = sl_topology_section_names_(&ns);
    const sl_key_def *keys = sl_topology_keys(&nk);
    fprintf(f, "topology.conf reference: every section and key.\n"
               "Override any key with --set section.key=value (actor keys: --set actor.NAME.key=value).\n"
               "Durations (duration_ms) are milliseconds; the suffixes ms, s and m are accepted.\n"
               "Booleans: true|false|yes|no|on|off|1|0. A required key must be set whenever its\n"
               "section is present (kind-specific keys: for that kind).\n");
    for (size_t si = 0; si < ns; si++) {
        if (strcmp(secs[si], "actor") == 0)
            fprintf(f, "\n[actor NAME]    one per actor group; NAME: 1-31 of A-Z a-z 0-9 _ -\n");
        else
            fprintf(f, "\n[%s]\n", secs[si]);
        for (size_t i = 0; i < nk; i++) {
            const sl_key_def *d = &keys[i];
            if (strcmp(d->section, secs[si]) != 0) continue;
            char b[512];
            fprintf(f, "  %-31s %s", d->key, sl_key_type_name(d->type));
            if (d->type == SL_KEY_ENUM) fprintf(f, " (%s)", list_choices(b, sizeof b, d->choices));
            if (d->type == SL_KEY_INT || d->type == SL_KEY_DOUBLE || d->type == SL_KEY_DURATION_MS)
                fprintf(f, " %s", fmt_range(b, sizeof b, d));
            if (d->type == SL_KEY_DEVICE) fprintf(f, " (cpu, cuda:N)");
            if (d->required) fprintf(f, ", required");
            else if (!d->def) fprintf(f, ", default computed");
            else if (*d->def && (d->type == SL_KEY_STRING || d->type == SL_KEY_PATH))
                fprintf(f, ", default '%s'", d->def);
            else if (*d->def) fprintf(f, ", default %s", d->def);
            else fprintf(f, ", default empty");
            if (d->kinds) fprintf(f, ", kind %s only", list_choices(b, sizeof b, d->kinds));
            fprintf(f, "\n      %s\n", d->help);
        }
    }
}
