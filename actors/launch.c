/*
 * launch.c — command lines of actor instances (launch.h).
 */
#include "launch.h"

#include <stdlib.h>
#include <string.h>

static char *xstrdup(const char *s) { return strdup(s); }

/* WORD with every "{host}" replaced by HOST */
static char *subst(const char *w, const char *host) {
    size_t n = 0, hl = strlen(host);
    for (const char *p = w; *p;) {
        if (strncmp(p, "{host}", 6) == 0) n += hl, p += 6;
        else n++, p++;
    }
    char *o = malloc(n + 1), *q = o;
    if (!o) return NULL;
    for (const char *p = w; *p;) {
        if (strncmp(p, "{host}", 6) == 0) memcpy(q, host, hl), q += hl, p += 6;
        else *q++ = *p++;
    }
    *q = 0;
    return o;
}

static char *kv(const char *k, const char *v) {
    size_t n = strlen(k) + strlen(v) + 2;
    char *o = malloc(n);
    if (o) snprintf(o, n, "%s=%s", k, v);
    return o;
}

void sl_launch_free(char **argv) {
    if (!argv) return;
    for (char **p = argv; *p; p++) free(*p);
    free(argv);
}

sl_err sl_launch_argv(const sl_topology *t, const sl_actor_spec *a, const char *actor_bin,
                      const char *run_dir, const char *topo_path, char ***out, char *why, size_t wl) {
    *out = NULL;
    char **pre = NULL;
    int npre = 0;
    if (a->host) {
        const char *l = sl_topology_get_str(t, "cluster", "launcher");
        const char *key = !strcmp(l, "srun") ? "srun_command" : !strcmp(l, "command") ? "launch_command" : "ssh_command";
        int rc = sl_topology_split_command(sl_topology_get_str(t, "cluster", key), &pre, &npre, why, wl);
        if (rc == -2) return SL_ENOMEM;
        if (rc != 0 || npre == 0) {
            sl_topology_free_argv(pre);
            if (rc == 0 && why && wl) snprintf(why, wl, "[cluster] %s is empty", key);
            return SL_EINVAL;
        }
    }
    int ncmd = a->kind == SL_KIND_EXEC ? a->argc : 5;
    size_t cap = (size_t)npre + 10 + (size_t)ncmd + 1;
    char **v = calloc(cap, sizeof *v);
    if (!v) return sl_topology_free_argv(pre), SL_ENOMEM;
    size_t k = 0;
    bool bad = false;
    if (a->host) {
        for (int i = 0; i < npre; i++) bad |= !(v[k++] = subst(pre[i], a->host));
        bad |= !(v[k++] = xstrdup("env"));
        bad |= !(v[k++] = kv("SL_RUN_DIR", run_dir));
        bad |= !(v[k++] = kv("SL_ACTOR_NAME", a->name));
        bad |= !(v[k++] = kv("SL_ACTOR_KIND", a->kind_name));
        bad |= !(v[k++] = kv("SL_TOPOLOGY", topo_path));
        bad |= !(v[k++] = kv("SL_DEVICE", a->device));
        bad |= !(v[k++] = kv("SL_MB_TCP", a->host));
        const char *f = getenv("SL_FAULTS");
        if (f && *f) bad |= !(v[k++] = kv("SL_FAULTS", f));
    }
    sl_topology_free_argv(pre);
    if (a->kind == SL_KIND_EXEC) {
        for (int i = 0; i < a->argc; i++) bad |= !(v[k++] = xstrdup(a->argv[i]));
    } else {
        const char *src[] = {actor_bin, "--kind", a->kind_name, "--name", a->name};
        for (int i = 0; i < 5; i++) bad |= !(v[k++] = xstrdup(src[i]));
    }
    v[k] = NULL;
    if (bad) {
        for (size_t i = 0; i < cap; i++) free(v[i]);
        free(v);
        return SL_ENOMEM;
    }
    *out = v;
    return SL_OK;
}

void sl_launch_print(FILE *f, char *const *argv) {
    for (int i = 0; argv[i]; i++) {
        const char *w = argv[i];
        bool plain = *w != 0;
        for (const char *p = w; *p; p++)
            if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./=:,+@%{}", *p)) plain = false;
        fputs(i ? " " : "", f);
        if (plain) {
            fputs(w, f);
        } else {
            fputc('\'', f);
            for (const char *p = w; *p; p++) {
                if (*p == '\'') fputs("'\\''", f);
                else fputc(*p, f);
            }
            fputc('\'', f);
        }
    }
    fputc('\n', f);
}
