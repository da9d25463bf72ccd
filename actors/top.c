/*
 * top.c — one snapshot of a running topology for `slime-ctl top`: the
 * supervisor's status + /proc + the tail of metrics.jsonl, as a table.
 * See top.h. It is not the terminal loop (bin/slime-ctl.c).
 */
#include "top.h"
#include "topology.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TAIL_BYTES 65536
#define MAX_PREV 256

/* What the previous snapshot saw of one actor. */
typedef struct prev {
    char name[64];
    long pid;
    uint64_t ticks;   /* utime + stime, clock ticks */
    uint64_t at_ms;   /* monotonic */
    long long msgs;   /* msgs_in + msgs_out, -1 unknown */
    long long msgs_t; /* their time_ms */
} prev;

struct sl_top {
    char *run_dir;
    bool topo_tried;
    long long num_steps, sft_steps; /* -1 unknown */
    prev p[MAX_PREV];
    int n;
    double msg_rate[MAX_PREV]; /* last rate seen per slot, NAN none */
};

int sl_top_new(const char *run_dir, sl_top **out) {
    if (!run_dir || !out) return SL_EINVAL;
    *out = NULL;
    sl_top *t = calloc(1, sizeof *t);
    if (!t) return SL_ENOMEM;
    t->run_dir = strdup(run_dir);
    if (!t->run_dir) {
        free(t);
        return SL_ENOMEM;
    }
    t->num_steps = t->sft_steps = -1;
    for (int i = 0; i < MAX_PREV; i++) t->msg_rate[i] = NAN;
    *out = t;
    return SL_OK;
}

void sl_top_free(sl_top *t) {
    if (!t) return;
    free(t->run_dir);
    free(t);
}

/* Step totals from the resolved copy the supervisor wrote. */
static void load_totals(sl_top *t) {
    if (t->topo_tried) return;
    t->topo_tried = true;
    char path[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/topology.conf", t->run_dir) >= sizeof path) return;
    FILE *devnull = fopen("/dev/null", "w");
    sl_topology *topo = NULL;
    if (sl_topology_load(path, NULL, 0, &topo, devnull ? devnull : stderr) == 0 && topo) {
        t->num_steps = sl_topology_get_int(topo, "run", "num_steps");
        t->sft_steps = sl_topology_get_int(topo, "sft", "steps");
    }
    sl_topology_free(topo);
    if (devnull) fclose(devnull);
}

/* ============================================================ /proc */

/* utime + stime of PID (clock ticks) and its resident set (bytes). */
static bool proc_sample(long pid, uint64_t *ticks, uint64_t *rss) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    /* the command name may hold spaces and parentheses: fields restart
     * after the last ')' with field 3 (state) */
    char *p = strrchr(buf, ')');
    if (!p) return false;
    p++;
    unsigned long long ut = 0, st = 0;
    long long rss_pages = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14) ut = strtoull(tok, NULL, 10);
        else if (field == 15) st = strtoull(tok, NULL, 10);
        else if (field == 24) {
            rss_pages = strtoll(tok, NULL, 10);
            break;
        }
    }
    if (field < 24) return false;
    *ticks = ut + st;
    long pg = sysconf(_SC_PAGESIZE);
    *rss = rss_pages > 0 ? (uint64_t)rss_pages * (uint64_t)(pg > 0 ? pg : 4096) : 0;
    return true;
}

static prev *find_prev(sl_top *t, const char *name, int *slot) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->p[i].name, name) == 0) {
            *slot = i;
            return &t->p[i];
        }
    if (t->n >= MAX_PREV) return NULL;
    prev *p = &t->p[t->n];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->msgs = -1;
    *slot = t->n++;
    return p;
}

/* ========================================================== metrics */

typedef struct run_view {
    bool any;
    char phase[16];          /* of the last line */
    long long step;          /* global step of the last line */
    long long rl_step;       /* last rl line's rl_step, -1 none */
    double reward, tps, resp_len, kl;
    long long samples;       /* -1 unknown */
    long long sft_step;      /* last sft line's step, -1 none */
    double sft_loss, sft_tps;
    double eval_acc;         /* last eval line, NAN none */
    long long eval_rl_step;
} run_view;

static double num(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void read_metrics(const char *run_dir, run_view *v) {
    memset(v, 0, sizeof *v);
    v->rl_step = v->sft_step = v->samples = v->eval_rl_step = -1;
    v->reward = v->tps = v->resp_len = v->kl = v->sft_loss = v->sft_tps = v->eval_acc = NAN;
    char path[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir) >= sizeof path) return;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return;
    }
    off_t off = st.st_size > TAIL_BYTES ? st.st_size - TAIL_BYTES : 0;
    char *buf = malloc(TAIL_BYTES + 1);
    ssize_t n = buf ? pread(fd, buf, TAIL_BYTES, off) : -1;
    close(fd);
    if (n <= 0) {
        free(buf);
        return;
    }
    buf[n] = 0;
    char *p = buf, *end = buf + n;
    if (off > 0) { /* skip the partial first line */
        char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break; /* a line being written */
        json_t *o = json_loadb(p, (size_t)(nl - p), 0, NULL);
        p = nl + 1;
        if (!json_is_object(o)) {
            json_decref(o);
            continue;
        }
        const char *ph = json_string_value(json_object_get(o, "phase"));
        json_t *step = json_object_get(o, "step");
        if (!ph || !json_is_integer(step)) {
            json_decref(o);
            continue;
        }
        v->any = true;
        snprintf(v->phase, sizeof v->phase, "%s", ph);
        v->step = json_integer_value(step);
        json_t *rs = json_object_get(o, "rl_step");
        long long rl = json_is_integer(rs) ? json_integer_value(rs) : -1;
        if (strcmp(ph, "rl") == 0) {
            v->rl_step = rl;
            v->reward = num(o, "reward_mean");
            v->tps = num(o, "tokens_per_s");
            v->resp_len = num(o, "response_len_mean");
            v->kl = num(o, "kl");
            json_t *s = json_object_get(o, "samples_trained");
            if (json_is_integer(s)) v->samples = json_integer_value(s);
        } else if (strcmp(ph, "sft") == 0) {
            v->sft_step = v->step;
            v->sft_loss = num(o, "loss");
            v->sft_tps = num(o, "tokens_per_s");
        } else if (strcmp(ph, "eval") == 0) {
            v->eval_acc = num(o, "eval_accuracy");
            v->eval_rl_step = rl;
        }
        json_decref(o);
    }
    free(buf);
}

#define ADD(...)                                                              \
    do {                                                                      \
        if (len < cap) {                                                      \
            int w_ = snprintf(buf + len, cap - len, __VA_ARGS__);             \
            if (w_ > 0) len += (size_t)w_ < cap - len ? (size_t)w_ : cap - len - 1; \
        }                                                                     \
    } while (0)

static size_t fmt_total(long long total, char *b, size_t cap) {
    return total > 0 ? (size_t)snprintf(b, cap, "/%lld", total) : (size_t)snprintf(b, cap, "%s", "");
}

size_t sl_top_run_line(sl_top *t, char *buf, size_t cap) {
    if (!t || !buf || !cap) return 0;
    buf[0] = 0;
    size_t len = 0;
    load_totals(t);
    run_view v;
    read_metrics(t->run_dir, &v);
    if (!v.any) {
        ADD("no metrics yet (%s/metrics.jsonl)", t->run_dir);
        return len;
    }
    char tot[32];
    if (v.rl_step >= 0) {
        fmt_total(t->num_steps, tot, sizeof tot);
        ADD("rl step %lld%s", v.rl_step, tot);
        if (isfinite(v.reward)) ADD(" | reward %.3f", v.reward);
    } else if (v.sft_step >= 0) {
        fmt_total(t->sft_steps, tot, sizeof tot);
        ADD("sft step %lld%s", v.sft_step, tot);
        if (isfinite(v.sft_loss)) ADD(" | loss %.4f", v.sft_loss);
    } else {
        ADD("step %lld", v.step);
    }
    if (isfinite(v.eval_acc)) ADD(" | eval acc %.3f (rl step %lld)", v.eval_acc, v.eval_rl_step);
    double tps = v.rl_step >= 0 ? v.tps : v.sft_tps;
    if (isfinite(tps)) ADD(" | %.0f tok/s", tps);
    if (v.rl_step >= 0 && isfinite(v.resp_len)) ADD(" | resp len %.1f", v.resp_len);
    if (v.samples >= 0) ADD(" | %lld samples trained", v.samples);
    ADD(" | last line: %s", v.phase);
    return len;
}

#undef ADD

/* ============================================================ render */

static const char *str(json_t *o, const char *k, const char *dflt) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : dflt;
}

/* GPU memory per process from nvidia-smi (when the machine has it): up to
 * CAP (pid, MiB) pairs in PIDS/MIB; returns how many. No NVML dependency:
 * the driver's own tool, one call per snapshot. */
static size_t gpu_mem(long *pids, double *mib, size_t cap) {
    static const char *const tools[] = {"/usr/bin/nvidia-smi", "/usr/local/bin/nvidia-smi"};
    const char *tool = NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(tools) && !tool; i++)
        if (access(tools[i], X_OK) == 0) tool = tools[i];
    if (!tool) return 0;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "%s --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null",
             tool);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    size_t n = 0;
    char line[128];
    while (n < cap && fgets(line, sizeof line, p)) {
        long pid = 0;
        double m = 0;
        if (sscanf(line, "%ld , %lf", &pid, &m) == 2 && pid > 0 && m >= 0) pids[n] = pid, mib[n++] = m;
    }
    pclose(p);
    return n;
}

int sl_top_render(sl_top *t, json_t *status, uint64_t now_ms, FILE *f) {
    if (!t || !f || !json_is_object(status)) return SL_EINVAL;
    json_t *actors = json_object_get(status, "actors");
    if (!json_is_array(actors)) return SL_EINVAL;
    time_t wall = time(NULL);
    struct tm tm;
    gmtime_r(&wall, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    json_t *spid = json_object_get(status, "pid");
    fprintf(f, "slime top — %s | supervisor pid %lld | %s | %s\n", t->run_dir,
            json_is_integer(spid) ? (long long)json_integer_value(spid) : -1LL,
            str(status, "strategy", "?"), when);
    char line[512];
    sl_top_run_line(t, line, sizeof line);
    fprintf(f, "run: %s\n", line);
    fprintf(f, "%-20s %-8s %-10s %8s %8s %6s %9s %8s %8s  %s\n", "ACTOR", "KIND", "STATE", "PID", "RESTARTS",
            "CPU%", "RSS MiB", "GPU MiB", "MSG/S", "LAST EXIT");
    long gpids[64];
    double gmib[64];
    size_t ng = gpu_mem(gpids, gmib, SL_ARRAY_LEN(gpids));
    long tck = sysconf(_SC_CLK_TCK);
    if (tck <= 0) tck = 100;
    size_t i;
    json_t *a;
    json_array_foreach(actors, i, a) {
        if (!json_is_object(a)) continue;
        const char *name = str(a, "name", "?");
        json_t *jp = json_object_get(a, "pid");
        long pid = json_is_integer(jp) ? (long)json_integer_value(jp) : 0;
        json_t *jr = json_object_get(a, "restarts");
        char cpu[16] = "-", rss[16] = "-", rate[16] = "-", gpu[16] = "-";
        for (size_t g = 0; g < ng && pid > 0; g++)
            if (gpids[g] == pid) snprintf(gpu, sizeof gpu, "%.0f", gmib[g]);
        int slot = -1;
        prev *p = find_prev(t, name, &slot);
        uint64_t ticks = 0, rss_b = 0;
        if (pid > 0 && proc_sample(pid, &ticks, &rss_b)) {
            snprintf(rss, sizeof rss, "%.1f", (double)rss_b / 1048576.0);
            if (p && p->pid == pid && now_ms > p->at_ms && ticks >= p->ticks) {
                double pct = (double)(ticks - p->ticks) / (double)tck * 100.0 /
                             ((double)(now_ms - p->at_ms) / 1000.0);
                snprintf(cpu, sizeof cpu, "%.0f", pct);
            }
        }
        json_t *mi = json_object_get(a, "msgs_in"), *mo = json_object_get(a, "msgs_out");
        json_t *mt = json_object_get(a, "msgs_time_ms");
        long long msgs = json_is_integer(mi) && json_is_integer(mo)
                             ? (long long)(json_integer_value(mi) + json_integer_value(mo))
                             : -1;
        long long msgs_t = json_is_integer(mt) ? (long long)json_integer_value(mt) : 0;
        if (p) {
            if (p->pid == pid && msgs >= 0 && p->msgs >= 0 && msgs_t > p->msgs_t && msgs >= p->msgs)
                t->msg_rate[slot] = (double)(msgs - p->msgs) / ((double)(msgs_t - p->msgs_t) / 1000.0);
            else if (p->pid != pid || msgs < 0)
                t->msg_rate[slot] = NAN;
            /* same counters file as last time: keep the last rate shown */
            if (isfinite(t->msg_rate[slot])) snprintf(rate, sizeof rate, "%.1f", t->msg_rate[slot]);
            if (!(p->pid == pid && msgs_t == p->msgs_t)) {
                p->msgs = msgs;
                p->msgs_t = msgs_t;
            }
            p->pid = pid;
            p->ticks = ticks;
            p->at_ms = now_ms;
        }
        fprintf(f, "%-20s %-8s %-10s %8ld %8lld %6s %9s %8s %8s  %s\n", name, str(a, "kind", "?"),
                str(a, "state", "?"), pid, json_is_integer(jr) ? (long long)json_integer_value(jr) : 0LL, cpu,
                rss, gpu, rate, str(a, "last_exit", "-"));
    }
    return ferror(f) ? SL_EIO : SL_OK;
}
