/*
 * metrics.c — metrics.jsonl writer, TensorBoard mirror and progress line
 * (see metrics.h). Not the figures themselves: the buffer computes them.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tboard.h"
#include "wal.h"

struct sl_metrics {
    char path[4096];
    char progress_path[4096];
    int fd;
    sl_tb_writer *tb;
    int tty_fd;  /* the user's stderr (supervisor's), -1 = none */
    int is_tty;
    int line_open; /* a terminal line was written without newline */
    double last_s;   /* when the last progress update was shown */
    char last_phase[16];
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The supervisor's stderr, when our parent is slime-supervisor. */
static int open_user_stderr(void) {
    const char *e = getenv("SL_PROGRESS");
    if (e && strcmp(e, "0") == 0) return -1;
    pid_t pp = getppid();
    if (pp <= 1) return -1;
    char p[64], comm[64] = {0};
    snprintf(p, sizeof p, "/proc/%ld/comm", (long)pp);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
    fclose(f);
    if (strncmp(comm, "slime-superviso", 15) != 0) return -1; /* comm is cut at 15 chars */
    snprintf(p, sizeof p, "/proc/%ld/fd/2", (long)pp);
    int fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return -1;
    /* a regular file the supervisor writes without O_APPEND would have its
     * lines overwritten by ours: only terminals, pipes, sockets and
     * append-mode files get the progress line */
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    if (S_ISREG(st.st_mode)) {
        snprintf(p, sizeof p, "/proc/%ld/fdinfo/2", (long)pp);
        unsigned long flags = 0;
        char line[128];
        int append = 0;
        FILE *fi = fopen(p, "r");
        while (fi && fgets(line, sizeof line, fi))
            if (sscanf(line, "flags: %lo", &flags) == 1) append = (flags & O_APPEND) != 0;
        if (fi) fclose(fi);
        if (!append) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

int sl_metrics_open(const char *run_dir, sl_metrics **out) {
    if (!run_dir || !out) return SL_EINVAL;
    *out = NULL;
    sl_metrics *m = calloc(1, sizeof *m);
    if (!m) return SL_ENOMEM;
    m->fd = -1;
    m->tty_fd = -1;
    if ((size_t)snprintf(m->path, sizeof m->path, "%s/metrics.jsonl", run_dir) >= sizeof m->path ||
        (size_t)snprintf(m->progress_path, sizeof m->progress_path, "%s/progress", run_dir) >=
            sizeof m->progress_path) {
        free(m);
        return SL_EINVAL;
    }
    m->fd = open(m->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (m->fd < 0) {
        sl_error("metrics: cannot open %s: %s", m->path, strerror(errno));
        free(m);
        return SL_EIO;
    }
    char tb[4200];
    snprintf(tb, sizeof tb, "%s/tb", run_dir);
    if (sl_tb_open(tb, &m->tb) != 0) {
        sl_warn("metrics: no TensorBoard events (cannot open %s)", tb);
        m->tb = NULL;
    }
    m->tty_fd = open_user_stderr();
    m->is_tty = m->tty_fd >= 0 && isatty(m->tty_fd);
    *out = m;
    return SL_OK;
}

void sl_metrics_close(sl_metrics *m) {
    if (!m) return;
    if (m->tty_fd >= 0) {
        if (m->line_open) (void)!write(m->tty_fd, "\n", 1);
        close(m->tty_fd);
    }
    if (m->fd >= 0) close(m->fd);
    sl_tb_close(m->tb);
    free(m);
}

int sl_metrics_write(sl_metrics *m, json_t *obj) {
    if (!m || !json_is_object(obj) || !json_is_integer(json_object_get(obj, "step"))) return SL_EINVAL;
    if (!json_object_get(obj, "time")) json_object_set_new(obj, "time", json_real(now_s()));
    char *s = json_dumps(obj, JSON_COMPACT);
    if (!s) return SL_ENOMEM;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return SL_ENOMEM;
    }
    line[n] = '\n';
    line[n + 1] = 0;
    ssize_t w = write(m->fd, line, n + 1);
    int rc = w == (ssize_t)(n + 1) ? SL_OK : SL_EIO;
    if (rc) sl_error("metrics: write %s failed: %s", m->path, strerror(errno));
    if (m->tb) {
        sl_tb_from_metrics_line(m->tb, line, n, NULL);
        sl_tb_flush(m->tb);
    }
    free(line);
    return rc;
}

/* Read a whole file (NUL-terminated). NULL with *missing = 1 when absent. */
static char *slurp(const char *path, size_t *len, int *missing) {
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *missing = errno == ENOENT;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb, cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    if (buf) buf[n] = 0, *len = n;
    return buf;
}

int sl_metrics_truncate(const char *path, bool keep_sft, int64_t max_rl_step, int *kept, int *dropped) {
    int k = 0, d = 0, missing;
    size_t len = 0;
    char *buf = slurp(path, &len, &missing);
    if (!buf) {
        if (kept) *kept = 0;
        if (dropped) *dropped = 0;
        return missing ? SL_OK : SL_EIO;
    }
    char *outb = malloc(len + 1);
    if (!outb) {
        free(buf);
        return SL_ENOMEM;
    }
    size_t on = 0;
    for (char *p = buf; p < buf + len;) {
        char *e = memchr(p, '\n', (size_t)(buf + len - p));
        size_t ll = e ? (size_t)(e - p) : (size_t)(buf + len - p);
        json_t *o = json_loadb(p, ll, 0, NULL);
        bool keep = false;
        if (json_is_object(o)) {
            const char *ph = json_string_value(json_object_get(o, "phase"));
            json_int_t rs = json_integer_value(json_object_get(o, "rl_step"));
            if (ph && strcmp(ph, "sft") == 0) keep = keep_sft;
            else if (ph) keep = keep_sft && rs <= max_rl_step;
        }
        json_decref(o);
        if (keep) {
            memcpy(outb + on, p, ll);
            on += ll;
            outb[on++] = '\n';
            k++;
        } else if (ll > 0) {
            d++;
        }
        p += ll + (e ? 1 : 0);
    }
    struct iovec iov = {outb, on};
    int rc = sl_file_write_atomic(path, &iov, 1);
    free(buf);
    free(outb);
    if (kept) *kept = k;
    if (dropped) *dropped = d;
    return rc;
}

/* The integer FIELD of PATH's last rl line that has it (0 when none). */
static int64_t last_rl_int(const char *path, const char *field) {
    int missing;
    size_t len = 0;
    char *buf = slurp(path, &len, &missing);
    if (!buf) return 0;
    int64_t last = 0;
    for (char *p = buf; p < buf + len;) {
        char *e = memchr(p, '\n', (size_t)(buf + len - p));
        size_t ll = e ? (size_t)(e - p) : (size_t)(buf + len - p);
        json_t *o = json_loadb(p, ll, 0, NULL);
        const char *ph = json_string_value(json_object_get(o, "phase"));
        json_t *st = json_object_get(o, field);
        if (ph && strcmp(ph, "rl") == 0 && json_is_integer(st)) last = json_integer_value(st);
        json_decref(o);
        p += ll + (e ? 1 : 0);
    }
    free(buf);
    return last;
}

int64_t sl_metrics_last_samples_trained(const char *path) { return last_rl_int(path, "samples_trained"); }

int64_t sl_metrics_last_rl_step(const char *path) { return last_rl_int(path, "rl_step"); }

static size_t fmt_dur(double s, char *b, size_t cap) {
    if (!isfinite(s) || s < 0) return (size_t)snprintf(b, cap, "?");
    long t = (long)(s + 0.5);
    if (t >= 3600) return (size_t)snprintf(b, cap, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    if (t >= 60) return (size_t)snprintf(b, cap, "%ldm%02lds", t / 60, t % 60);
    return (size_t)snprintf(b, cap, "%lds", t);
}

size_t sl_progress_format(const sl_progress *p, char *buf, size_t cap) {
    if (!buf || cap == 0) return 0;
    buf[0] = 0;
    if (!p) return 0;
    size_t n = 0;
#define ADD(...)                                                        \
    do {                                                                \
        if (n < cap) {                                                  \
            int w_ = snprintf(buf + n, cap - n, __VA_ARGS__);           \
            if (w_ > 0) n += (size_t)w_ < cap - n ? (size_t)w_ : cap - n - 1; \
        }                                                               \
    } while (0)
    ADD("[%s] step %lld/%lld", p->phase ? p->phase : "?", (long long)p->step, (long long)p->total);
    if (isfinite(p->reward)) ADD(" | reward %.3f", p->reward);
    if (isfinite(p->eval_acc)) ADD(" | eval acc %.3f", p->eval_acc);
    if (isfinite(p->tokens_per_s)) ADD(" | %.0f tok/s", p->tokens_per_s);
    if (isfinite(p->eta_s)) {
        char d[32];
        fmt_dur(p->eta_s, d, sizeof d);
        ADD(" | ETA %s", d);
    }
#undef ADD
    return n;
}

void sl_metrics_progress(sl_metrics *m, const sl_progress *p) {
    if (!m || !p) return;
    /* at most one update a second, except on a change of phase */
    double now = now_s();
    bool same = p->phase && strncmp(m->last_phase, p->phase, sizeof m->last_phase) == 0;
    if (same && now - m->last_s < 1.0 && strcmp(p->phase, "done") != 0) return;
    m->last_s = now;
    snprintf(m->last_phase, sizeof m->last_phase, "%s", p->phase ? p->phase : "");
    char line[512];
    size_t n = sl_progress_format(p, line, sizeof line - 2);
    /* RUN_DIR/progress, replaced atomically */
    char nl[514];
    memcpy(nl, line, n);
    nl[n] = '\n';
    struct iovec iov = {nl, n + 1};
    (void)sl_file_write_atomic(m->progress_path, &iov, 1);
    if (m->tty_fd < 0) return;
    /* run.log_level warn or error (slime-supervisor --quiet): only the
     * final line reaches the user */
    if (sl_log_get_level() < SL_LOG_INFO && !(p->phase && strcmp(p->phase, "done") == 0)) return;
    if (m->is_tty) {
        char out[540];
        int w = snprintf(out, sizeof out, "\r\033[K%s", line);
        if (w > 0) (void)!write(m->tty_fd, out, (size_t)w);
        m->line_open = 1;
        if (p->phase && strcmp(p->phase, "done") == 0) {
            (void)!write(m->tty_fd, "\n", 1);
            m->line_open = 0;
        }
    } else {
        (void)!write(m->tty_fd, nl, n + 1);
    }
}

/* ====================================================== long operations */

static struct {
    char name[64];
    int fd;            /* the user's stderr; -1 none, -2 not opened yet */
    bool tty;
    char what[48];     /* the operation in progress */
    double start, last;
    bool shown;
    double after_s;    /* operations shorter than this stay silent */
} task = {.fd = -2, .after_s = 1.0};

static void fmt_bytes(uint64_t b, char *out, size_t cap) {
    if (b >= (1ull << 30)) snprintf(out, cap, "%.2f GB", (double)b / 1073741824.0);
    else snprintf(out, cap, "%.1f MB", (double)b / 1048576.0);
}

static void task_hook(const char *what, uint64_t done, uint64_t total) {
    if (sl_log_get_level() < SL_LOG_INFO) return; /* --quiet */
    double now = now_s();
    if (done == 0 || strncmp(task.what, what, sizeof task.what - 1) != 0) {
        snprintf(task.what, sizeof task.what, "%s", what);
        task.start = now;
        task.last = 0;
        task.shown = false;
    }
    bool end = done >= total;
    /* short operations stay silent; long ones update 4x a second on a
     * terminal, every 5 s elsewhere, and end with one line */
    if (end ? !task.shown : (now - task.start < task.after_s || now - task.last < (task.tty ? 0.25 : 5.0))) {
        if (end) task.what[0] = 0;
        return;
    }
    if (task.fd == -2) {
        task.fd = open_user_stderr();
        task.tty = task.fd >= 0 && isatty(task.fd);
    }
    if (task.fd < 0) return;
    char d[32], t[32], line[256];
    fmt_bytes(done, d, sizeof d);
    fmt_bytes(total, t, sizeof t);
    int n;
    if (end)
        n = snprintf(line, sizeof line, "%s[%s] %s: %s done in %.1f s\n", task.tty ? "\r\033[K" : "", task.name,
                     what, t, now - task.start);
    else
        n = snprintf(line, sizeof line, "%s[%s] %s %.0f%% (%s of %s)%s", task.tty ? "\r\033[K" : "", task.name,
                     what, total ? 100.0 * (double)done / (double)total : 0.0, d, t, task.tty ? "" : "\n");
    if (n > 0) (void)!write(task.fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    task.shown = !end;
    task.last = now;
    if (end) task.what[0] = 0;
}

void sl_metrics_task_progress_install(const char *name) {
    snprintf(task.name, sizeof task.name, "%s", name ? name : "slime");
    const char *e = getenv("SL_PROGRESS_AFTER_MS"); /* tests: show short operations too */
    if (e && *e) task.after_s = atof(e) / 1000.0;
    sl_progress_set_hook(task_hook);
}
