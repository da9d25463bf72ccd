/*
 * checkpoint.c — checkpoint folders, the `latest` pointer and the ledger.
 * See checkpoint.h. The weights and optimizer files are trainer_core's.
 */
#include "checkpoint.h"
#include "faults.h"
#include "dataset.h"
#include "wal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define ERR(...) (err ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)
#define STATE_MAX (1u << 20) /* state.json larger than this is refused */

static const char *const tok_files[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
    "merges.txt", "generation_config.json", "chat_template.jinja", "added_tokens.json",
};

void sl_ckpt_state_fini(sl_ckpt_state *st) {
    if (!st) return;
    free(st->cursor_json);
    memset(st, 0, sizeof *st);
}

void sl_ckpt_name(int64_t step, char out[SL_CKPT_NAME_MAX]) {
    snprintf(out, SL_CKPT_NAME_MAX, "step_%06lld", (long long)(step < 0 ? 0 : step));
}

bool sl_ckpt_name_parse(const char *name, int64_t *step) {
    if (!name || strncmp(name, "step_", 5) != 0) return false;
    const char *d = name + 5;
    size_t n = strlen(d);
    if (n < 6 || n > 18) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)d[i])) return false;
        v = v * 10 + (d[i] - '0');
    }
    if (step) *step = v;
    return true;
}

/* ------------------------------------------------------------ files */

static int path_join(char *out, size_t cap, const char *a, const char *b) {
    return (size_t)snprintf(out, cap, "%s/%s", a, b) < cap ? SL_OK : SL_EINVAL;
}

static void fsync_dir(const char *path) {
    int fd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Read a whole regular file of at most MAX bytes (NUL appended). */
static int read_file(const char *path, size_t max, char **out, size_t *len) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? SL_ENOENT : SL_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return SL_EINVAL;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return SL_ERANGE;
    }
    char *b = malloc((size_t)st.st_size + 1);
    if (!b) {
        close(fd);
        return SL_ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    b[got] = 0;
    *out = b;
    if (len) *len = got;
    return SL_OK;
}

static int write_fsync(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return SL_EIO;
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            return SL_EIO;
        }
        done += (size_t)w;
    }
    int e = fsync(fd) == 0 ? SL_OK : SL_EIO;
    if (close(fd) != 0) e = SL_EIO;
    return e;
}

static int copy_file(const char *src, const char *dst) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return errno == ENOENT ? SL_ENOENT : SL_EIO;
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return SL_EIO;
    }
    char buf[65536];
    int e = SL_OK;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) e = SL_EIO;
        if (r <= 0) break;
        for (ssize_t d = 0; d < r;) {
            ssize_t w = write(out, buf + d, (size_t)(r - d));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                e = SL_EIO;
                break;
            }
            d += w;
        }
        if (e) break;
    }
    if (!e && fsync(out) != 0) e = SL_EIO;
    close(in);
    if (close(out) != 0) e = SL_EIO;
    return e;
}

/* Remove a flat folder (checkpoint folders hold files only). */
static void remove_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[PATH_MAX];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (path_join(p, sizeof p, dir, e->d_name) == SL_OK) unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* ------------------------------------------------------------ state.json */

static char *state_to_json(const sl_ckpt_state *st, int *bad) {
    *bad = 0;
    json_t *cur = json_null();
    if (st->cursor_json) {
        json_error_t je;
        json_decref(cur);
        cur = json_loads(st->cursor_json, JSON_REJECT_DUPLICATES, &je);
        if (!cur || !json_is_object(cur)) {
            json_decref(cur);
            *bad = 1;
            return NULL;
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "step", json_integer(st->step));
    json_object_set_new(o, "weight_version", json_integer((json_int_t)st->weight_version));
    json_object_set_new(o, "phase", json_string(st->phase[0] ? st->phase : "rl"));
    json_object_set_new(o, "sft_done", json_boolean(st->sft_done));
    json_object_set_new(o, "sft_step", json_integer(st->sft_step));
    json_object_set_new(o, "cursor", cur);
    /* u64 as a decimal string: JSON integers are signed 64-bit here */
    char r[32];
    snprintf(r, sizeof r, "%llu", (unsigned long long)st->rng);
    json_object_set_new(o, "rng", json_string(r));
    char *t = json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(o);
    return t;
}

int sl_ckpt_read_state(const char *dir, sl_ckpt_state *st, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!dir || !st) return SL_EINVAL;
    memset(st, 0, sizeof *st);
    char p[PATH_MAX];
    if (path_join(p, sizeof p, dir, "state.json")) return SL_EINVAL;
    char *text;
    size_t len;
    int e = read_file(p, STATE_MAX, &text, &len);
    if (e) {
        ERR("%s: %s", p, e == SL_ENOENT ? "missing" : e == SL_ERANGE ? "too large" : "unreadable");
        return e == SL_ENOENT ? SL_ENOENT : e == SL_EIO ? SL_EIO : SL_EINVAL;
    }
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!o || !json_is_object(o)) {
        ERR("%s: not a JSON object (%s)", p, o ? "wrong type" : je.text);
        json_decref(o);
        return SL_EINVAL;
    }
    e = SL_EINVAL;
    json_t *v;
    const char *what = NULL;
    if (!(v = json_object_get(o, "step")) || !json_is_integer(v) || json_integer_value(v) < 0) {
        what = "step";
        goto bad;
    }
    st->step = json_integer_value(v);
    if (!(v = json_object_get(o, "weight_version")) || !json_is_integer(v) ||
        json_integer_value(v) < 0) {
        what = "weight_version";
        goto bad;
    }
    st->weight_version = (uint64_t)json_integer_value(v);
    v = json_object_get(o, "phase");
    if (!v || !json_is_string(v) ||
        (strcmp(json_string_value(v), "sft") && strcmp(json_string_value(v), "rl"))) {
        what = "phase";
        goto bad;
    }
    strcpy(st->phase, json_string_value(v));
    if (!(v = json_object_get(o, "sft_done")) || !json_is_boolean(v)) {
        what = "sft_done";
        goto bad;
    }
    st->sft_done = json_is_true(v);
    if (!(v = json_object_get(o, "sft_step")) || !json_is_integer(v) || json_integer_value(v) < 0) {
        what = "sft_step";
        goto bad;
    }
    st->sft_step = json_integer_value(v);
    v = json_object_get(o, "cursor");
    if (!v || !(json_is_null(v) || json_is_object(v))) {
        what = "cursor";
        goto bad;
    }
    if (json_is_object(v)) {
        st->cursor_json = json_dumps(v, JSON_COMPACT);
        if (!st->cursor_json) {
            e = SL_ENOMEM;
            what = "cursor";
            goto bad;
        }
    }
    v = json_object_get(o, "rng");
    if (!v || !json_is_string(v)) {
        what = "rng";
        goto bad;
    }
    {
        const char *r = json_string_value(v);
        char *end;
        errno = 0;
        unsigned long long x = strtoull(r, &end, 10);
        if (!*r || *end || errno || !isdigit((unsigned char)r[0])) {
            what = "rng";
            goto bad;
        }
        st->rng = x;
    }
    json_decref(o);
    return SL_OK;
bad:
    ERR("%s: bad or missing \"%s\"", p, what);
    json_decref(o);
    sl_ckpt_state_fini(st);
    return e;
}

/* ------------------------------------------------------------ write */

int sl_ckpt_write(const char *run_dir, const sl_trainer *t, const char *tokenizer_dir,
                  const sl_ckpt_state *st, char name_out[SL_CKPT_NAME_MAX], char *err,
                  size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!run_dir || !t || !st || st->step < 0) {
        ERR("bad arguments");
        return SL_EINVAL;
    }
    int bad;
    char *state = state_to_json(st, &bad);
    if (!state) {
        ERR(bad ? "cursor is not a JSON object" : "out of memory");
        return bad ? SL_EINVAL : SL_ENOMEM;
    }
    char name[SL_CKPT_NAME_MAX], cdir[PATH_MAX], part[PATH_MAX], final[PATH_MAX], old[PATH_MAX],
        p[PATH_MAX], q[PATH_MAX];
    sl_ckpt_name(st->step, name);
    int e = SL_EINVAL;
    if (path_join(cdir, sizeof cdir, run_dir, "checkpoints") ||
        (size_t)snprintf(part, sizeof part, "%s/.%s.partial", cdir, name) >= sizeof part ||
        (size_t)snprintf(old, sizeof old, "%s/.%s.old", cdir, name) >= sizeof old ||
        path_join(final, sizeof final, cdir, name)) {
        ERR("run directory path too long");
        goto out;
    }
    if (mkdir(cdir, 0755) != 0 && errno != EEXIST) {
        ERR("mkdir %s: %s", cdir, strerror(errno));
        e = SL_EIO;
        goto out;
    }
    remove_flat(part);
    e = sl_trainer_save(t, part, state, err, errlen);
    if (e) goto out;
    sl_fault_point("ckpt_write"); /* faults.h: weights in .partial, not renamed */
    if (tokenizer_dir) {
        for (size_t i = 0; i < SL_ARRAY_LEN(tok_files); i++) {
            if (path_join(p, sizeof p, tokenizer_dir, tok_files[i]) ||
                path_join(q, sizeof q, part, tok_files[i]))
                continue;
            int c = copy_file(p, q);
            if (c && c != SL_ENOENT) {
                ERR("copy %s: %s", p, strerror(errno));
                e = SL_EIO;
                goto fail;
            }
        }
    }
    if (path_join(p, sizeof p, part, "state.json") || write_fsync(p, state, strlen(state))) {
        ERR("write %s: %s", p, strerror(errno));
        e = SL_EIO;
        goto fail;
    }
    fsync_dir(part);
    /* Replace an existing folder of the same name (a re-run step). */
    remove_flat(old);
    struct stat sb;
    if (stat(final, &sb) == 0 && rename(final, old) != 0) {
        ERR("rename %s: %s", final, strerror(errno));
        e = SL_EIO;
        goto fail;
    }
    if (rename(part, final) != 0) {
        ERR("rename %s -> %s: %s", part, final, strerror(errno));
        e = SL_EIO;
        goto fail;
    }
    fsync_dir(cdir);
    remove_flat(old);
    char line[SL_CKPT_NAME_MAX + 2];
    int n = snprintf(line, sizeof line, "%s\n", name);
    struct iovec iov = {.iov_base = line, .iov_len = (size_t)n};
    if (path_join(p, sizeof p, cdir, "latest") || sl_file_write_atomic(p, &iov, 1)) {
        ERR("cannot write %s", p);
        e = SL_EIO;
        goto out;
    }
    if (name_out) strcpy(name_out, name);
    e = SL_OK;
    goto out;
fail:
    remove_flat(part);
out:
    free(state);
    return e;
}

/* ------------------------------------------------------------ latest, load */

int sl_ckpt_latest(const char *run_dir, char name[SL_CKPT_NAME_MAX], char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!run_dir || !name) return SL_EINVAL;
    char p[PATH_MAX];
    if ((size_t)snprintf(p, sizeof p, "%s/checkpoints/latest", run_dir) >= sizeof p)
        return SL_EINVAL;
    char *text;
    size_t len;
    int e = read_file(p, 256, &text, &len);
    if (e == SL_ENOENT) return SL_ENOENT;
    if (e) {
        ERR("%s: refused (%s)", p, e == SL_ERANGE ? "too large" : "unreadable");
        return e == SL_EIO ? SL_EIO : SL_EINVAL;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0;
    if (strlen(text) != len || !sl_ckpt_name_parse(text, NULL)) {
        ERR("%s: refused: does not name a step_NNNNNN checkpoint", p);
        free(text);
        return SL_EINVAL;
    }
    char d[PATH_MAX];
    struct stat sb;
    if ((size_t)snprintf(d, sizeof d, "%s/checkpoints/%s", run_dir, text) >= sizeof d ||
        lstat(d, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        ERR("%s names %s, which is not a folder", p, text);
        free(text);
        return SL_ENOENT;
    }
    strcpy(name, text);
    free(text);
    return SL_OK;
}

int sl_ckpt_forget_latest(const char *run_dir) {
    char p[PATH_MAX];
    if (!run_dir || (size_t)snprintf(p, sizeof p, "%s/checkpoints/latest", run_dir) >= sizeof p)
        return SL_EINVAL;
    if (unlink(p) != 0 && errno != ENOENT) return SL_EIO;
    return SL_OK;
}

int sl_ckpt_load(const char *run_dir, const char *name, sl_trainer *t, sl_ckpt_state *st,
                 char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!run_dir || !t || !st) return SL_EINVAL;
    memset(st, 0, sizeof *st);
    int64_t step;
    if (!sl_ckpt_name_parse(name, &step)) {
        ERR("refused checkpoint name \"%s\"", name ? name : "(null)");
        return SL_EINVAL;
    }
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s/checkpoints/%s", run_dir, name) >= sizeof dir)
        return SL_EINVAL;
    int e = sl_ckpt_read_state(dir, st, err, errlen);
    if (e) return e;
    if (st->step != step) {
        ERR("%s: state.json says step %lld", dir, (long long)st->step);
        sl_ckpt_state_fini(st);
        return SL_EINVAL;
    }
    char *extra = NULL;
    e = sl_trainer_load(t, dir, &extra, err, errlen);
    free(extra);
    if (e) {
        sl_ckpt_state_fini(st);
        return e;
    }
    if (sl_trainer_weight_version(t) != st->weight_version) {
        /* state.json and the trainer counters disagree: trust neither the
         * version nor the ledger position; refuse (the trainer's weights
         * already changed, which the caller treats as a failed start). */
        ERR("%s: weight_version %llu in state.json, %llu in trainer_state.json", dir,
            (unsigned long long)st->weight_version,
            (unsigned long long)sl_trainer_weight_version(t));
        sl_ckpt_state_fini(st);
        return SL_EINVAL;
    }
    return SL_OK;
}

static int cmp_names(const void *a, const void *b) {
    int64_t x = 0, y = 0;
    sl_ckpt_name_parse(*(char *const *)a, &x);
    sl_ckpt_name_parse(*(char *const *)b, &y);
    return x < y ? -1 : x > y;
}

int sl_ckpt_list(const char *run_dir, char ***names, size_t *n) {
    if (!run_dir || !names || !n) return SL_EINVAL;
    *names = NULL;
    *n = 0;
    char p[PATH_MAX];
    if ((size_t)snprintf(p, sizeof p, "%s/checkpoints", run_dir) >= sizeof p) return SL_EINVAL;
    DIR *d = opendir(p);
    if (!d) return errno == ENOENT ? SL_OK : SL_EIO;
    struct dirent *de;
    size_t cap = 0;
    int e = SL_OK;
    while ((de = readdir(d))) {
        if (!sl_ckpt_name_parse(de->d_name, NULL)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            char **nn = realloc(*names, cap * sizeof *nn);
            if (!nn) {
                e = SL_ENOMEM;
                break;
            }
            *names = nn;
        }
        if (!((*names)[*n] = strdup(de->d_name))) {
            e = SL_ENOMEM;
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (e) {
        sl_ckpt_list_free(*names, *n);
        *names = NULL;
        *n = 0;
        return e;
    }
    if (*n) qsort(*names, *n, sizeof **names, cmp_names);
    return SL_OK;
}

void sl_ckpt_list_free(char **names, size_t n) {
    if (!names) return;
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* ------------------------------------------------------------ ledger */

int sl_ledger_append(const char *path, int64_t step, uint64_t weight_version, const uint64_t *ids,
                     size_t n) {
    if (!path || (n && !ids) || step < 0) return SL_EINVAL;
    json_t *o = json_object(), *a = json_array();
    if (!o || !a) {
        json_decref(o);
        json_decref(a);
        return SL_ENOMEM;
    }
    json_object_set_new(o, "step", json_integer(step));
    json_object_set_new(o, "weight_version", json_integer((json_int_t)weight_version));
    for (size_t i = 0; i < n; i++) {
        char t[SL_SAMPLE_ID_TEXT_MAX];
        sl_sample_id_format(ids[i], t, sizeof t);
        json_array_append_new(a, json_string(t));
    }
    json_object_set_new(o, "sample_ids", a);
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!line) return SL_ENOMEM;
    size_t len = strlen(line);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(line);
        return SL_EIO;
    }
    struct iovec iov[2] = {{line, len}, {"\n", 1}};
    ssize_t w = writev(fd, iov, 2);
    int e = (w == (ssize_t)(len + 1) && fdatasync(fd) == 0) ? SL_OK : SL_EIO;
    close(fd);
    free(line);
    return e;
}

int sl_ledger_truncate(const char *path, int64_t max_step, size_t *kept, size_t *dropped,
                       char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (kept) *kept = 0;
    if (dropped) *dropped = 0;
    if (!path) return SL_EINVAL;
    char *text;
    size_t len;
    int e = read_file(path, (size_t)1 << 34, &text, &len);
    if (e == SL_ENOENT) return SL_OK;
    if (e) {
        ERR("%s: unreadable", path);
        return e == SL_ENOMEM ? SL_ENOMEM : e == SL_EIO ? SL_EIO : SL_EINVAL;
    }
    char *out = malloc(len + 1);
    if (!out) {
        free(text);
        return SL_ENOMEM;
    }
    size_t olen = 0, nk = 0, nd = 0, lineno = 0;
    char *p = text, *end = text + len;
    e = SL_OK;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        lineno++;
        if (!nl) { /* torn last line */
            nd++;
            break;
        }
        size_t ll = (size_t)(nl - p);
        json_error_t je;
        json_t *o = ll ? json_loadb(p, ll, JSON_REJECT_DUPLICATES, &je) : NULL;
        json_t *s = o ? json_object_get(o, "step") : NULL;
        if (!o || !json_is_object(o) || !s || !json_is_integer(s)) {
            ERR("%s:%zu: not a ledger line", path, lineno);
            json_decref(o);
            e = SL_EINVAL;
            break;
        }
        if (json_integer_value(s) <= max_step) {
            memcpy(out + olen, p, ll + 1);
            olen += ll + 1;
            nk++;
        } else {
            nd++;
        }
        json_decref(o);
        p = nl + 1;
    }
    if (!e && (nd > 0)) {
        struct iovec iov = {.iov_base = out, .iov_len = olen};
        if (sl_file_write_atomic(path, &iov, olen ? 1 : 0)) {
            ERR("%s: cannot rewrite", path);
            e = SL_EIO;
        }
    }
    free(out);
    free(text);
    if (!e) {
        if (kept) *kept = nk;
        if (dropped) *dropped = nd;
    }
    return e;
}
