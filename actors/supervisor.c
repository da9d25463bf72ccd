/*
 * supervisor.c — the OTP-style supervisor (see supervisor.h): process
 * management (fork+exec, pidfd waits, PDEATHSIG), restart strategies and
 * intensity, heartbeats (nng survey and mailbox PING), the control plane
 * commands, and the run directory.
 *
 * One thread, one loop: signals (a self-pipe), the control socket, the
 * heartbeat surveyor and the supervisor's mailbox are polled together.
 * Stopping children is done synchronously (bounded by their shutdown_ms),
 * which keeps the order obvious.
 */
#include "supervisor.h"
#include "launch.h"
#include "actor.h"
#include "control.h"
#include "faults.h"
#include "mailbox.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

extern char **environ;

#define KILL_WAIT_MS 5000     /* after SIGKILL, how long to wait for the exit */
#define LOOP_MAX_WAIT_MS 50   /* upper bound of one poll */
#define UNIX_PATH_MAX_ 107

const char *sl_child_state_name(sl_child_state s) {
    switch (s) {
    case SL_CHILD_STARTING: return "starting";
    case SL_CHILD_RUNNING: return "running";
    case SL_CHILD_RESTARTING: return "restarting";
    case SL_CHILD_STOPPED: return "stopped";
    case SL_CHILD_FAILED: return "failed";
    }
    return "?";
}

/* ================================================================ types */

typedef struct child {
    const sl_actor_spec *spec;
    pid_t pid;              /* 0 when not running */
    sl_child_state state;
    int restarts;
    char last_exit[32];     /* "" = has not exited yet */
    uint64_t started_ms;
    uint64_t last_seen_ms;  /* last heartbeat answer (0: none since start) */
    uint64_t ping_floor;    /* mailbox PONGs below this seq are from a predecessor */
    uint64_t cont_at_ms;    /* inject hang: SIGCONT at this time (0: none) */
    bool hung;              /* killed by us as hung */
    char **argv, **envp;    /* prepared before fork */
    char log_path[600];
} child;

/* One entry of [faults] schedule (ACTION:ACTOR@WHEN[xK]). */
enum { FA_KILL, FA_TERM, FA_HANG, FA_SLOW, FA_DROP, FA_CORRUPT };
static const char *const fa_names[] = {"kill", "term", "hang", "slow", "drop", "corrupt"};
enum { WHEN_STEP, WHEN_MS, WHEN_RAND };

typedef struct sched {
    int action;
    char actor[SL_ACTOR_NAME_MAX]; /* instance or group */
    int when;                      /* WHEN_* */
    uint64_t at;                   /* step or ms */
    int times, done;
    uint64_t next;                 /* next trigger (step or ms since start) */
} sched;

typedef struct sv {
    const sl_topology *topo;
    const sl_supervisor_opts *opts;
    char run_dir[512];      /* absolute; sockets limit it to ~100 bytes anyway */
    char topo_path[600];
    child *c;
    int n;
    int sfd;
    int log_fd;
    int lock_fd;
    sl_control_server *ctl;
    sl_hb_surveyor *hb;
    sl_mailbox *mb;
    uint64_t ping_seq;
    uint64_t next_beat_ms;
    uint64_t *restart_ms; /* ring of restart times for intensity */
    int n_restart_ms, cap_restart_ms;
    uint64_t bad_requests;
    sched *faults;          /* [faults] schedule */
    int n_faults;
    uint64_t faults_injected;
    uint64_t fault_seed;
    uint64_t start_ms;
    int64_t ledger_steps;   /* RL steps in RUN_DIR/ledger.jsonl (-1: not read yet) */
    uint64_t ledger_off, ledger_ino, next_ledger_ms;
    bool shutdown;
    int exit_code;
} sv;

/* ================================================================ logging */

/* One event: to stderr through sl_log, and to logs/supervisor.log. */
static void sv_log(sv *s, sl_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sv_log(sv *s, sl_log_level lvl, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sl_log(lvl, "%s", msg);
    if (s && s->log_fd >= 0) {
        static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char line[1200];
        int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s\n",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, ts.tv_nsec / 1000000, names[lvl & 3], msg);
        if (n > 0) {
            ssize_t w = write(s->log_fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
            (void)w;
        }
    }
}

/* The final summary: one INFO line on stderr whatever the log level (so
 * --quiet still ends with it) and in logs/supervisor.log: exit status,
 * restarts per actor, the last progress line of the run (RUN_DIR/progress,
 * metrics.h) when there is one. */
static void summary(sv *s, int rc) {
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "summary: exit status %d, %d actors", rc, s->n);
    int restarts = 0;
    for (int i = 0; i < s->n; i++) restarts += s->c[i].restarts;
    if (n > 0 && (size_t)n < sizeof msg) n += snprintf(msg + n, sizeof msg - (size_t)n, ", %d restarts", restarts);
    for (int i = 0; i < s->n && restarts && n > 0 && (size_t)n < sizeof msg; i++)
        if (s->c[i].restarts)
            n += snprintf(msg + n, sizeof msg - (size_t)n, " %s:%d", s->c[i].spec->name, s->c[i].restarts);
    char path[1200], last[512] = "";
    if ((size_t)snprintf(path, sizeof path, "%s/progress", s->run_dir) < sizeof path) {
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(last, sizeof last, f)) last[0] = 0;
            fclose(f);
            last[strcspn(last, "\r\n")] = 0;
        }
    }
    if (last[0] && n > 0 && (size_t)n < sizeof msg)
        n += snprintf(msg + n, sizeof msg - (size_t)n, "; last progress: %s", last);
    if (n > 0 && (size_t)n < sizeof msg) snprintf(msg + n, sizeof msg - (size_t)n, "; run dir %s", s->run_dir);
    sl_log_level lvl = sl_log_get_level();
    if (lvl < SL_LOG_INFO) sl_log_init(NULL, SL_LOG_INFO);
    sv_log(s, SL_LOG_INFO, "%s", msg);
    if (lvl < SL_LOG_INFO) sl_log_init(NULL, lvl);
}

/* ================================================================ run dir */

static sl_err mkdirs(const char *path, char *why, size_t whycap) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return SL_ERANGE;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            snprintf(why, whycap, "cannot create %s: %s", tmp, strerror(errno));
            return SL_EIO;
        }
        *p = '/';
    }
    return SL_OK;
}

sl_err sl_run_dir_prepare(const char *run_dir, char *abs, size_t cap, char *why, size_t whycap) {
    char dummy[8];
    if (!why) {
        why = dummy;
        whycap = sizeof dummy;
    }
    if (!run_dir || !*run_dir || !abs) {
        snprintf(why, whycap, "no run directory");
        return SL_EINVAL;
    }
    sl_err e = mkdirs(run_dir, why, whycap);
    if (e) return e;
    if (mkdir(run_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whycap, "cannot create %s: %s", run_dir, strerror(errno));
        return SL_EIO;
    }
    struct stat st;
    if (lstat(run_dir, &st) != 0) {
        snprintf(why, whycap, "cannot stat %s: %s", run_dir, strerror(errno));
        return SL_EIO;
    }
    if (S_ISLNK(st.st_mode)) {
        snprintf(why, whycap, "%s is a symbolic link; refusing it as a run directory", run_dir);
        return SL_EINVAL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, whycap, "%s exists and is not a directory", run_dir);
        return SL_EINVAL;
    }
    if (st.st_uid != geteuid()) {
        snprintf(why, whycap, "%s belongs to uid %ld, not to this user (uid %ld)", run_dir,
                 (long)st.st_uid, (long)geteuid());
        return SL_EINVAL;
    }
    if (st.st_mode & 077) {
        snprintf(why, whycap, "%s has mode %04o; a run directory must be 0700 (chmod 700 it)",
                 run_dir, (unsigned)(st.st_mode & 07777));
        return SL_EINVAL;
    }
    char real[PATH_MAX];
    if (!realpath(run_dir, real)) {
        snprintf(why, whycap, "cannot resolve %s: %s", run_dir, strerror(errno));
        return SL_EIO;
    }
    if (strlen(real) >= cap) {
        snprintf(why, whycap, "run directory path too long");
        return SL_ERANGE;
    }
    strcpy(abs, real);
    return SL_OK;
}

/* ================================================================ [faults] */

/* Where KEY of [faults] was set: its line, 0 if not found. */
static int faults_line(const sl_topology *topo, const char *key) {
    for (int i = 0; i < topo->n_entries; i++)
        if (strcmp(topo->entries[i].section, "faults") == 0 && strcmp(topo->entries[i].key, key) == 0)
            return topo->entries[i].line;
    return 0;
}

/* Parse one schedule entry E into *O. Returns NULL or what is wrong. */
static const char *sched_parse(const sl_topology *topo, const char *e, sched *o) {
    memset(o, 0, sizeof *o);
    o->times = 1;
    const char *colon = strchr(e, ':'), *at = strchr(e, '@');
    if (!colon || !at || at < colon) return "expected ACTION:ACTOR@WHEN[xK]";
    size_t al = (size_t)(colon - e);
    o->action = -1;
    for (int k = 0; k < (int)SL_ARRAY_LEN(fa_names); k++)
        if (strlen(fa_names[k]) == al && strncmp(fa_names[k], e, al) == 0) o->action = k;
    if (o->action < 0) return "ACTION must be kill, term, hang, slow, drop or corrupt";
    size_t nl = (size_t)(at - colon - 1);
    if (nl == 0 || nl >= sizeof o->actor) return "bad actor name";
    memcpy(o->actor, colon + 1, nl);
    bool found = false;
    for (int i = 0; i < topo->n_actors; i++)
        if (strcmp(topo->actors[i].name, o->actor) == 0 || strcmp(topo->actors[i].group, o->actor) == 0) {
            found = true;
            if ((o->action == FA_DROP || o->action == FA_CORRUPT) && topo->actors[i].kind == SL_KIND_EXEC)
                return "drop and corrupt need a built-in actor kind (they signal it with SIGUSR1/SIGUSR2)";
        }
    if (!found) return "no such actor";
    const char *w = at + 1, *p;
    uint64_t v = 0;
    if (strncmp(w, "rand", 4) == 0) {
        o->when = WHEN_RAND;
        p = w + 4;
    } else {
        bool step = strncmp(w, "step", 4) == 0;
        p = step ? w + 4 : w;
        const char *d = p;
        while (*p >= '0' && *p <= '9' && v < 100000000000ull) v = v * 10 + (uint64_t)(*p++ - '0');
        if (p == d) return "WHEN must be stepN, Nms, Ns or rand";
        if (step) {
            o->when = WHEN_STEP;
            if (v == 0) return "stepN needs N >= 1";
        } else if (strncmp(p, "ms", 2) == 0) {
            o->when = WHEN_MS, p += 2;
        } else if (*p == 's') {
            o->when = WHEN_MS, v *= 1000, p++;
        } else {
            return "WHEN must be stepN, Nms, Ns or rand";
        }
    }
    o->at = v;
    if (*p == 'x') {
        const char *d = ++p;
        long k = 0;
        while (*p >= '0' && *p <= '9' && k <= 100000) k = k * 10 + (*p++ - '0');
        if (p == d || k < 1 || k > 100000) return "xK needs K in 1..100000";
        o->times = (int)k;
    }
    if (*p) return "unexpected text after WHEN[xK]";
    return NULL;
}

/* Split S at ',' and whitespace; FN on each entry; returns problems. */
static int sched_each(const sl_topology *topo, const char *text, const char *src, int line, FILE *errs,
                      sched *out, int cap) {
    int n = 0, bad = 0;
    char buf[128];
    for (const char *q = text; *q;) {
        q += strspn(q, ", \t");
        if (!*q) break;
        size_t l = strcspn(q, ", \t");
        snprintf(buf, sizeof buf, "%.*s", (int)(l < sizeof buf ? l : sizeof buf - 1), q);
        q += l;
        sched o;
        const char *why = l >= sizeof buf ? "entry too long" : sched_parse(topo, buf, &o);
        if (why) {
            if (errs) fprintf(errs, "%s:%d: [faults] schedule: '%s': %s\n", src, line, buf, why);
            bad++;
        } else if (out && n < cap) {
            out[n++] = o;
        }
    }
    return out ? n : bad;
}

static int faults_check(const sl_topology *topo, const char *src, FILE *errs) {
    int bad = 0;
    const char *pts = sl_topology_get_str(topo, "faults", "points");
    char why[300];
    if (sl_faults_check(pts, why, sizeof why) != SL_OK) {
        int ln = faults_line(topo, "points");
        if (errs) fprintf(errs, "%s:%d: [faults] points: %s\n", ln ? src : "SL_FAULTS", ln, why);
        bad++;
    }
    const char *env = getenv("SL_FAULTS");
    if (env && *env && sl_faults_check(env, why, sizeof why) != SL_OK) {
        if (errs) fprintf(errs, "SL_FAULTS: %s\n", why);
        bad++;
    }
    const char *sch = sl_topology_get_str(topo, "faults", "schedule");
    bad += sched_each(topo, sch, src, faults_line(topo, "schedule"), errs, NULL, 0);
    return bad;
}

/* ================================================================ check */

int sl_supervisor_check(const sl_topology *topo, const char *run_dir, FILE *errs) {
    int n = 0;
    const char *src = topo->source ? topo->source : "topology";
    const char *rd = run_dir ? run_dir : topo->run_dir;
    char absbuf[PATH_MAX];
    /* The ipc paths are measured on the absolute path children will use. */
    if (rd && rd[0] != '/' && getcwd(absbuf, sizeof absbuf)) {
        size_t l = strlen(absbuf);
        snprintf(absbuf + l, sizeof absbuf - l, "/%s", rd);
        rd = absbuf;
    }
    size_t rdl = rd ? strlen(rd) : 0;
    for (int i = 0; i < topo->n_actors; i++) {
        const sl_actor_spec *a = &topo->actors[i];
        if (a->kind != SL_KIND_EXEC && !sl_actor_kind_find(a->kind_name)) {
            if (errs)
                fprintf(errs, "%s:%d: actor '%s': kind '%s' is not available in this build yet "
                              "(available: %s, exec)\n", src, a->line, a->name, a->kind_name,
                        sl_actor_kind_list());
            n++;
        }
        if (strcmp(a->name, SL_MB_SUPERVISOR) == 0) {
            if (errs)
                fprintf(errs, "%s:%d: actor name '%s' is reserved for the supervisor's mailbox\n",
                        src, a->line, a->name);
            n++;
        }
        if (rdl + 4 + strlen(a->name) > UNIX_PATH_MAX_) {
            if (errs)
                fprintf(errs, "%s:%d: actor '%s': mailbox path %s/mb/%s is longer than a unix "
                              "socket path may be (%d bytes); use a shorter run_dir\n",
                        src, a->line, a->name, rd, a->name, UNIX_PATH_MAX_);
            n++;
        }
    }
    n += faults_check(topo, src, errs);
    bool tcp = strcmp(sl_topology_get_str(topo, "run", "transport"), "tcp") == 0;
    for (int i = 0; tcp && i < topo->n_actors; i++)
        if (topo->actors[i].kind == SL_KIND_EXEC) {
            if (errs)
                fprintf(errs, "%s:%d: actor '%s': kind exec speaks ipc mailboxes only, and [run] transport "
                              "is tcp\n", src, topo->actors[i].line, topo->actors[i].name);
            n++;
        }
    const char *ta = sl_topology_get_str(topo, "run", "tcp_address");
    if (tcp && (!*ta || strlen(ta) > 60 || strpbrk(ta, ":/ *"))) {
        if (errs) fprintf(errs, "%s: [run] tcp_address '%s' is not an address (IPv4 or interface name)\n", src, ta);
        n++;
    }
    if (rdl + 10 > UNIX_PATH_MAX_ && topo->n_actors == 0) {
        if (errs) fprintf(errs, "%s: run_dir %s is too long for its sockets\n", src, rd);
        n++;
    }
    return n;
}

/* ================================================================ spawning */

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static void free_strv(char **v) {
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

/* argv and envp of a child, built once (nothing is allocated after fork). */
static sl_err child_prepare(sv *s, child *c) {
    const sl_actor_spec *a = c->spec;
    /* its own command; for an actor with `host`, behind the [cluster]
     * launcher and `env SL_...=...` (launch.h) */
    char why[128] = "";
    sl_err le = sl_launch_argv(s->topo, a, s->opts->actor_bin, s->run_dir, s->topo_path, &c->argv, why,
                               sizeof why);
    if (le) {
        if (*why) sv_log(s, SL_LOG_ERROR, "%s: launcher: %s", a->name, why);
        return le;
    }
    size_t ne = 0;
    while (environ && environ[ne]) ne++;
    c->envp = calloc(ne + 8, sizeof *c->envp);
    if (!c->envp) return SL_ENOMEM;
    size_t k = 0;
    static const char *ours[] = {"SL_RUN_DIR=", "SL_ACTOR_NAME=", "SL_ACTOR_KIND=", "SL_TOPOLOGY=",
                                 "SL_DEVICE="};
    for (size_t i = 0; i < ne; i++) {
        bool skip = false;
        for (size_t j = 0; j < SL_ARRAY_LEN(ours); j++)
            if (strncmp(environ[i], ours[j], strlen(ours[j])) == 0) skip = true;
        if (!skip && !(c->envp[k++] = strdup(environ[i]))) return SL_ENOMEM;
    }
    if (!(c->envp[k++] = xasprintf("SL_RUN_DIR=%s", s->run_dir))) return SL_ENOMEM;
    if (!(c->envp[k++] = xasprintf("SL_ACTOR_NAME=%s", a->name))) return SL_ENOMEM;
    if (!(c->envp[k++] = xasprintf("SL_ACTOR_KIND=%s", a->kind_name))) return SL_ENOMEM;
    if (!(c->envp[k++] = xasprintf("SL_TOPOLOGY=%s", s->topo_path))) return SL_ENOMEM;
    if (!(c->envp[k++] = xasprintf("SL_DEVICE=%s", a->device))) return SL_ENOMEM;
    snprintf(c->log_path, sizeof c->log_path, "%s/logs/%s.log", s->run_dir, a->name);
    return SL_OK;
}

static void child_write(const char *a, const char *b) {
    ssize_t w = write(2, a, strlen(a));
    w = write(2, b, strlen(b));
    w = write(2, "\n", 1);
    (void)w;
}

/* Fork and exec child C. Only async-signal-safe calls after fork. */
static sl_err child_spawn(sv *s, child *c) {
    int log_fd = open(c->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        sv_log(s, SL_LOG_ERROR, "%s: cannot open %s: %s", c->spec->name, c->log_path, strerror(errno));
        return SL_EIO;
    }
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    /* No handler of ours may run in the child between fork and exec (it
     * would write into the supervisor's signal pipe): block everything
     * around fork, reset the handlers in the child, then unblock. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid != 0) sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        int err = errno;
        close(log_fd);
        if (null_fd >= 0) close(null_fd);
        sv_log(s, SL_LOG_ERROR, "%s: fork failed: %s", c->spec->name, strerror(err));
        return SL_EIO;
    }
    if (pid == 0) {
        /* Die with the supervisor; if it already died between fork and
         * prctl, the death signal would never come: check the parent. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        setpgid(0, 0);
        if (null_fd >= 0) dup2(null_fd, 0);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
#ifdef SYS_close_range
        syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
#endif
        /* Back to defaults before unblocking (exec would reset caught
         * signals, but not ignored ones like SIGPIPE). */
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvpe(c->argv[0], c->argv, c->envp);
        child_write("slime-supervisor: cannot execute ", c->argv[0]);
        _exit(127);
    }
    close(log_fd);
    if (null_fd >= 0) close(null_fd);
    c->pid = pid;
    c->started_ms = sl_now_ms();
    c->last_seen_ms = 0;
    c->hung = false;
    c->cont_at_ms = 0;
    c->ping_floor = s->ping_seq + 1;
    c->state = c->spec->heartbeat == SL_HEARTBEAT_NONE ? SL_CHILD_RUNNING : SL_CHILD_STARTING;
    sv_log(s, SL_LOG_INFO, "started %s (%s) pid %ld", c->spec->name, c->spec->kind_name, (long)pid);
    if (sl_log_get_level() >= SL_LOG_DEBUG) {
        char cmd[512];
        size_t n = 0;
        cmd[0] = 0;
        for (char **a = c->argv; *a && n + 2 < sizeof cmd; a++) {
            int w = snprintf(cmd + n, sizeof cmd - n, "%s%s", n ? " " : "", *a);
            if (w < 0) break;
            n += (size_t)w < sizeof cmd - n ? (size_t)w : sizeof cmd - n - 1;
        }
        sl_debug("%s: exec %s; log %s", c->spec->name, cmd, c->log_path);
    }
    return SL_OK;
}

static void describe_status(int st, char *out, size_t cap) {
    if (WIFEXITED(st)) snprintf(out, cap, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) snprintf(out, cap, "signal %d", WTERMSIG(st));
    else snprintf(out, cap, "status %d", st);
}

/* Wait up to MS for PID to end (reaping it). Returns true with *ST set. */
static bool wait_exit(pid_t pid, int pidfd, int ms, int *st) {
    uint64_t deadline = sl_now_ms() + (uint64_t)ms;
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid) return true;
        if (r < 0 && errno == ECHILD) {
            *st = 0;
            return true;
        }
        uint64_t now = sl_now_ms();
        if (now >= deadline) return false;
        int left = (int)(deadline - now);
        if (pidfd >= 0) {
            struct pollfd p = {.fd = pidfd, .events = POLLIN};
            poll(&p, 1, left);
        } else {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

/* Stop child C: SIGTERM (+SIGCONT), SIGKILL after shutdown_ms. Synchronous
 * and bounded. Sets last_exit; the state is left to the caller. */
static void child_stop(sv *s, child *c) {
    if (c->pid <= 0) return;
    pid_t pid = c->pid;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int st = 0;
    bool done = false;
    if (c->spec->shutdown_ms > 0) {
        kill(pid, SIGTERM);
        kill(pid, SIGCONT);
        done = wait_exit(pid, pidfd, c->spec->shutdown_ms, &st);
        if (!done) sv_log(s, SL_LOG_WARN, "%s did not stop within %d ms: SIGKILL", c->spec->name,
                          c->spec->shutdown_ms);
    }
    if (!done) {
        kill(pid, SIGKILL);
        done = wait_exit(pid, pidfd, KILL_WAIT_MS, &st);
    }
    if (pidfd >= 0) close(pidfd);
    if (!done) sv_log(s, SL_LOG_ERROR, "%s (pid %ld) survived SIGKILL for %d ms", c->spec->name,
                      (long)pid, KILL_WAIT_MS);
    else describe_status(st, c->last_exit, sizeof c->last_exit);
    sv_log(s, SL_LOG_INFO, "stopped %s (pid %ld, %s)", c->spec->name, (long)pid, c->last_exit);
    c->pid = 0;
    c->cont_at_ms = 0;
}

/* ================================================================ restarts */

/* Record one restart; returns false when the intensity is exceeded. */
static bool intensity_ok(sv *s) {
    const sl_supervisor_spec *sp = &s->topo->supervisor;
    uint64_t now = sl_now_ms(), window = (uint64_t)sp->period * 1000u;
    int k = 0;
    for (int i = 0; i < s->n_restart_ms; i++)
        if (now - s->restart_ms[i] < window) s->restart_ms[k++] = s->restart_ms[i];
    s->n_restart_ms = k;
    if (s->n_restart_ms == s->cap_restart_ms) {
        int cap = s->cap_restart_ms ? s->cap_restart_ms * 2 : 16;
        uint64_t *p = realloc(s->restart_ms, (size_t)cap * sizeof *p);
        if (p) {
            s->restart_ms = p;
            s->cap_restart_ms = cap;
        }
    }
    if (s->n_restart_ms < s->cap_restart_ms) s->restart_ms[s->n_restart_ms++] = now;
    if (s->n_restart_ms > sp->intensity) {
        sv_log(s, SL_LOG_ERROR, "restart intensity exceeded: %d restarts within %d s (intensity %d): "
                                "stopping everything", s->n_restart_ms, sp->period, sp->intensity);
        return false;
    }
    return true;
}

/* Instances of a group that must live and die together: restart_together,
 * and data-parallel trainer ranks (an NCCL group does not survive a
 * member). */
static bool is_gang(const sv *s, const sl_actor_spec *sp) {
    if (sp->count < 2) return false;
    return (sp->kind_name && strcmp(sp->kind_name, "trainer") == 0) ||
           sl_topology_get_bool(s->topo, sp->section, "restart_together");
}

static void restart_one(sv *s, child *c) {
    c->state = SL_CHILD_RESTARTING;
    c->restarts++;
    if (child_spawn(s, c) != SL_OK) {
        c->state = SL_CHILD_FAILED;
        snprintf(c->last_exit, sizeof c->last_exit, "spawn failed");
    }
}

/* Child I ended with wait status ST (not by our stop). */
static void on_child_exit(sv *s, int i, int st) {
    child *c = &s->c[i];
    if (c->hung) snprintf(c->last_exit, sizeof c->last_exit, "hung");
    else describe_status(st, c->last_exit, sizeof c->last_exit);
    bool abnormal = c->hung || !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    sv_log(s, abnormal ? SL_LOG_WARN : SL_LOG_INFO, "%s (pid %ld) ended: %s", c->spec->name,
           (long)c->pid, c->last_exit);
    c->pid = 0;
    c->cont_at_ms = 0;
    bool restart = c->spec->restart == SL_RESTART_PERMANENT ||
                   (c->spec->restart == SL_RESTART_TRANSIENT && abnormal);
    if (!restart) {
        c->state = abnormal ? SL_CHILD_FAILED : SL_CHILD_STOPPED;
        sv_log(s, SL_LOG_INFO, "%s is %s and not restarted (%s)", c->spec->name,
               sl_child_state_name(c->state), sl_restart_name(c->spec->restart));
        return;
    }
    if (!intensity_ok(s)) {
        c->state = SL_CHILD_FAILED;
        s->shutdown = true;
        s->exit_code = 1;
        return;
    }
    sl_strategy strat = s->topo->supervisor.strategy;
    bool gang = is_gang(s, c->spec);
    if (strat == SL_STRATEGY_ONE_FOR_ONE && !gang) {
        restart_one(s, c);
        return;
    }
    /* Which ones come back: the dead one, and every sibling in range (all
     * for one_for_all, those after it for rest_for_one, its gang for
     * one_for_one) that is alive now and not temporary. */
    /* 0: untouched, 1: stopped, 2: stopped and started again */
    unsigned char *again = calloc((size_t)s->n, sizeof *again);
    if (!again) {
        restart_one(s, c);
        return;
    }
    again[i] = 2;
    for (int j = 0; j < s->n; j++) {
        bool in = strat == SL_STRATEGY_ONE_FOR_ALL || (strat == SL_STRATEGY_REST_FOR_ONE && j > i) ||
                  (gang && strcmp(s->c[j].spec->group, c->spec->group) == 0);
        if (j == i || !in || s->c[j].pid <= 0) continue;
        again[j] = s->c[j].spec->restart != SL_RESTART_TEMPORARY ? 2 : 1;
        if (again[j] == 2) s->c[j].state = SL_CHILD_RESTARTING;
    }
    c->state = SL_CHILD_RESTARTING;
    sv_log(s, SL_LOG_INFO, "%s: restarting %s", gang && strat == SL_STRATEGY_ONE_FOR_ONE ? "gang" : sl_strategy_name(strat),
           strat == SL_STRATEGY_ONE_FOR_ALL    ? "all children"
           : strat == SL_STRATEGY_REST_FOR_ONE ? "it and the children after it"
                                               : "every instance of its group (restart_together)");
    for (int j = s->n - 1; j >= 0; j--) {
        if (j == i || !again[j]) continue;
        child_stop(s, &s->c[j]);
        if (again[j] == 1) s->c[j].state = SL_CHILD_STOPPED;
    }
    for (int j = 0; j < s->n; j++)
        if (again[j] == 2) restart_one(s, &s->c[j]);
    free(again);
    /* The loop was busy stopping children and heard no heartbeats
     * meanwhile: that silence is ours, not the survivors'. */
    uint64_t now = sl_now_ms();
    for (int j = 0; j < s->n; j++)
        if (s->c[j].pid > 0 && s->c[j].last_seen_ms) s->c[j].last_seen_ms = now;
}

static void reap(sv *s) {
    for (;;) {
        int st = 0;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) return;
        for (int i = 0; i < s->n; i++) {
            if (s->c[i].pid == pid) {
                on_child_exit(s, i, st);
                break;
            }
        }
        if (s->shutdown) return;
    }
}

/* ================================================================ heartbeats */

static child *find_child(sv *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->c[i].spec->name, name) == 0) return &s->c[i];
    return NULL;
}

static void seen(sv *s, child *c) {
    c->last_seen_ms = sl_now_ms();
    if (c->state == SL_CHILD_STARTING) {
        c->state = SL_CHILD_RUNNING;
        sv_log(s, SL_LOG_INFO, "%s is running (first heartbeat after %" PRIu64 " ms)", c->spec->name,
               c->last_seen_ms - c->started_ms);
    }
}

static void beat(sv *s) {
    uint64_t now = sl_now_ms();
    if (now < s->next_beat_ms) return;
    const sl_supervisor_spec *sp = &s->topo->supervisor;
    /* While a child has not answered yet, ask more often, so that "running"
     * shows soon after start. */
    int every = sp->heartbeat_ms;
    for (int i = 0; i < s->n && every > 100; i++)
        if (s->c[i].pid > 0 && s->c[i].state == SL_CHILD_STARTING) every = 100;
    s->next_beat_ms = now + (uint64_t)every;
    if (s->hb) sl_hb_survey(s->hb, every);
    if (!s->mb) return;
    for (int i = 0; i < s->n; i++) {
        child *c = &s->c[i];
        if (c->pid <= 0 || c->spec->heartbeat != SL_HEARTBEAT_MAILBOX) continue;
        uint8_t body[8];
        sl_put_u64(body, ++s->ping_seq);
        uint64_t corr = sl_mailbox_new_corr(s->mb);
        sl_err e = sl_mailbox_send_ex(s->mb, c->spec->name, SL_MSG_PING, 0, corr, body, sizeof body);
        if (e) sl_debug("PING %s: %s", c->spec->name, sl_strerror(e));
    }
}

static void collect(sv *s) {
    if (s->hb) {
        char name[SL_HB_NAME_MAX];
        pid_t pid;
        while (sl_hb_collect(s->hb, name, &pid) == SL_OK) {
            child *c = find_child(s, name);
            if (c && c->pid == pid && c->spec->heartbeat == SL_HEARTBEAT_NNG) seen(s, c);
        }
    }
    if (s->mb) {
        for (int n = 0; n < 1024 && sl_mailbox_has_input(s->mb); n++) {
            sl_msg m = {0};
            if (sl_mailbox_recv(s->mb, &m, 0) != SL_OK) break;
            if (m.type == SL_MSG_PONG && (m.flags & SL_FLAG_REPLY) && m.len == 8) {
                child *c = find_child(s, m.sender);
                uint64_t seq = sl_get_u64(m.payload);
                if (c && c->pid > 0 && seq >= c->ping_floor && seq <= s->ping_seq) seen(s, c);
            } else if (!sl_mailbox_handle_builtin(s->mb, &m)) {
                sl_debug("supervisor mailbox: ignored %s from %s", sl_msg_type_name(m.type), m.sender);
            }
            sl_msg_fini(&m);
        }
    }
}

static void check_hung(sv *s) {
    uint64_t now = sl_now_ms();
    const sl_supervisor_spec *sp = &s->topo->supervisor;
    for (int i = 0; i < s->n; i++) {
        child *c = &s->c[i];
        if (c->pid <= 0 || c->hung) continue;
        if (c->cont_at_ms && now >= c->cont_at_ms) {
            kill(c->pid, SIGCONT);
            c->cont_at_ms = 0;
            sv_log(s, SL_LOG_INFO, "inject: %s resumed (SIGCONT)", c->spec->name);
        }
        if (c->spec->heartbeat == SL_HEARTBEAT_NONE) continue;
        uint64_t limit = (uint64_t)sp->heartbeat_timeout_ms;
        uint64_t since = c->last_seen_ms ? c->last_seen_ms : c->started_ms;
        if (!c->last_seen_ms && limit < SL_SUPERVISOR_START_GRACE_MS) limit = SL_SUPERVISOR_START_GRACE_MS;
        if (now - since > limit) {
            sv_log(s, SL_LOG_WARN, "%s (pid %ld) is hung: no heartbeat for %" PRIu64 " ms: SIGKILL",
                   c->spec->name, (long)c->pid, now - since);
            c->hung = true;
            kill(c->pid, SIGKILL);
        }
    }
}

/* ================================================================ fault schedule */

/* RL steps in RUN_DIR/ledger.jsonl (its lines), read incrementally; a
 * shorter or replaced file (the trainer cut it back) is counted again. */
static void ledger_poll(sv *s) {
    uint64_t now = sl_now_ms();
    if (now < s->next_ledger_ms) return;
    s->next_ledger_ms = now + 200;
    char path[600];
    snprintf(path, sizeof path, "%.500s/ledger.jsonl", s->run_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s->ledger_steps = 0, s->ledger_off = 0;
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return;
    }
    if (s->ledger_steps < 0 || (uint64_t)st.st_size < s->ledger_off || (uint64_t)st.st_ino != s->ledger_ino)
        s->ledger_steps = 0, s->ledger_off = 0;
    s->ledger_ino = (uint64_t)st.st_ino;
    char buf[65536];
    while (s->ledger_off < (uint64_t)st.st_size) {
        ssize_t r = pread(fd, buf, sizeof buf, (off_t)s->ledger_off);
        if (r <= 0) break;
        /* count whole lines only: a line being written is counted later */
        ssize_t last = -1;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] == '\n') s->ledger_steps++, last = i;
        if (last < 0) break;
        s->ledger_off += (uint64_t)last + 1;
    }
    close(fd);
}

/* A random step in 1..num_steps-1 for entry I's K-th firing. */
static uint64_t sched_rand_step(sv *s, int i, int k) {
    long long n = sl_topology_get_int(s->topo, "run", "num_steps");
    char key[64];
    int kl = snprintf(key, sizeof key, "%llu/%d/%d", (unsigned long long)s->fault_seed, i, k);
    return n > 1 ? 1 + sl_hash64(key, (size_t)kl) % (uint64_t)(n - 1) : 1;
}

/* The target of entry F: its instance, or an instance of its group drawn
 * by the seed (running ones only). NULL: none running now. */
static child *sched_target(sv *s, const sched *f, int i) {
    child *c = find_child(s, f->actor);
    if (c) return c->pid > 0 ? c : NULL;
    int cand[SL_TOPOLOGY_MAX_INSTANCES], n = 0;
    for (int j = 0; j < s->n && n < (int)SL_ARRAY_LEN(cand); j++)
        if (strcmp(s->c[j].spec->group, f->actor) == 0 && s->c[j].pid > 0) cand[n++] = j;
    if (n == 0) return NULL;
    char key[64];
    int kl = snprintf(key, sizeof key, "t%llu/%d/%d", (unsigned long long)s->fault_seed, i, f->done);
    return &s->c[cand[sl_hash64(key, (size_t)kl) % (uint64_t)n]];
}

/* Apply ACTION to child C (running). Returns 0 or an errno. */
static int fault_apply(sv *s, child *c, int action, uint64_t slow_ms) {
    int sig = action == FA_KILL ? SIGKILL : action == FA_TERM ? SIGTERM
            : action == FA_DROP ? SIGUSR1 : action == FA_CORRUPT ? SIGUSR2 : SIGSTOP;
    if ((action == FA_DROP || action == FA_CORRUPT) && c->spec->kind == SL_KIND_EXEC) return EINVAL;
    if (kill(c->pid, sig) != 0) return errno;
    if (action == FA_SLOW) c->cont_at_ms = sl_now_ms() + slow_ms;
    if (action == FA_HANG) c->cont_at_ms = 0; /* stays stopped: the heartbeat timeout must catch it */
    s->faults_injected++;
    return 0;
}

static void faults_tick(sv *s) {
    if (s->n_faults == 0) return;
    ledger_poll(s);
    uint64_t el = sl_now_ms() - s->start_ms;
    uint64_t slow_ms = (uint64_t)sl_topology_get_int(s->topo, "faults", "slow_ms");
    for (int i = 0; i < s->n_faults; i++) {
        sched *f = &s->faults[i];
        if (f->done >= f->times) continue;
        bool due = f->when == WHEN_MS ? el >= f->next : s->ledger_steps >= (int64_t)f->next;
        if (!due) continue;
        child *c = sched_target(s, f, i);
        if (!c) continue; /* restarting: try again on the next pass */
        pid_t pid = c->pid;
        int e = fault_apply(s, c, f->action, slow_ms);
        f->done++;
        if (f->when == WHEN_RAND) {
            uint64_t r = sched_rand_step(s, i, f->done);
            f->next = r > (uint64_t)s->ledger_steps ? r : (uint64_t)s->ledger_steps + 1;
        } else {
            f->next = f->at * (uint64_t)(f->done + 1);
        }
        if (e) sv_log(s, SL_LOG_WARN, "fault %s:%s: %s", fa_names[f->action], c->spec->name, strerror(e));
        else sv_log(s, SL_LOG_WARN, "fault: %s %s (pid %ld) at step %lld, %llu ms [%d/%d of %s:%s]",
                    fa_names[f->action], c->spec->name, (long)pid, (long long)s->ledger_steps,
                    (unsigned long long)el, f->done, f->times, fa_names[f->action], f->actor);
    }
}

static void faults_init(sv *s) {
    s->start_ms = sl_now_ms();
    s->ledger_steps = -1;
    s->fault_seed = (uint64_t)sl_topology_get_int(s->topo, "faults", "seed");
    const char *sch = sl_topology_get_str(s->topo, "faults", "schedule");
    int cap = 0;
    for (const char *q = sch; *q; q++) cap += *q == ',' || *q == ' ' || *q == '\t';
    cap += 1;
    s->faults = calloc((size_t)cap, sizeof *s->faults);
    if (!s->faults) return;
    s->n_faults = sched_each(s->topo, sch, "", 0, NULL, s->faults, cap);
    for (int i = 0; i < s->n_faults; i++) {
        sched *f = &s->faults[i];
        f->next = f->when == WHEN_RAND ? sched_rand_step(s, i, 0) : f->at;
        sv_log(s, SL_LOG_INFO, "fault schedule: %s %s at %s%llu%s, %d time(s)", fa_names[f->action], f->actor,
               f->when == WHEN_MS ? "" : "step ", (unsigned long long)(f->when == WHEN_MS ? f->at : f->next),
               f->when == WHEN_MS ? " ms" : "", f->times);
    }
}

/* ================================================================ control */

/* The mailbox counters the child's runtime writes to RUN_DIR/stats/NAME.json
 * (actor.c), when the file is this pid's: "msgs_in", "msgs_out",
 * "msgs_time_ms"; null otherwise (not started yet, or a custom actor that
 * does not write it). The file is hostile: only integers are taken. */
static void add_msg_stats(const sv *s, const child *c, json_t *a) {
    json_t *in = NULL, *out = NULL, *tm = NULL, *f = NULL;
    char path[1200];
    if (c->pid > 0 &&
        (size_t)snprintf(path, sizeof path, "%s/stats/%s.json", s->run_dir, c->spec->name) < sizeof path)
        f = json_load_file(path, JSON_DISABLE_EOF_CHECK, NULL);
    if (json_is_object(f) && json_integer_value(json_object_get(f, "pid")) == (json_int_t)c->pid) {
        json_t *v;
        if (json_is_integer(v = json_object_get(f, "msgs_in"))) in = json_integer(json_integer_value(v));
        if (json_is_integer(v = json_object_get(f, "msgs_out"))) out = json_integer(json_integer_value(v));
        if (json_is_integer(v = json_object_get(f, "time_ms"))) tm = json_integer(json_integer_value(v));
    }
    json_decref(f);
    json_object_set_new(a, "msgs_in", in ? in : json_null());
    json_object_set_new(a, "msgs_out", out ? out : json_null());
    json_object_set_new(a, "msgs_time_ms", tm ? tm : json_null());
}

static json_t *status_json(sv *s) {
    json_t *root = json_object();
    json_object_set_new(root, "run_dir", json_string(s->run_dir));
    json_object_set_new(root, "pid", json_integer(getpid()));
    json_object_set_new(root, "strategy", json_string(sl_strategy_name(s->topo->supervisor.strategy)));
    json_t *arr = json_array();
    uint64_t now = sl_now_ms();
    for (int i = 0; i < s->n; i++) {
        child *c = &s->c[i];
        json_t *a = json_object();
        json_object_set_new(a, "name", json_string(c->spec->name));
        json_object_set_new(a, "kind", json_string(c->spec->kind_name));
        json_object_set_new(a, "pid", json_integer(c->pid));
        json_object_set_new(a, "state", json_string(sl_child_state_name(c->state)));
        json_object_set_new(a, "restarts", json_integer(c->restarts));
        json_object_set_new(a, "last_exit", c->last_exit[0] ? json_string(c->last_exit) : json_null());
        json_object_set_new(a, "restart", json_string(sl_restart_name(c->spec->restart)));
        json_object_set_new(a, "heartbeat", json_string(sl_heartbeat_name(c->spec->heartbeat)));
        json_object_set_new(a, "heartbeat_age_ms",
                            c->pid > 0 && c->last_seen_ms ? json_integer((json_int_t)(now - c->last_seen_ms))
                                                          : json_null());
        add_msg_stats(s, c, a);
        json_array_append_new(arr, a);
    }
    json_object_set_new(root, "actors", arr);
    json_object_set_new(root, "bad_requests", json_integer((json_int_t)s->bad_requests));
    json_object_set_new(root, "faults_injected", json_integer((json_int_t)s->faults_injected));
    return root;
}

static char *error_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *error_reply(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:b,s:s}", "ok", 0, "error", msg);
    char *r = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return r;
}

/* Parse the whole of TEXT as a decimal in [0, MAX]. */
static bool parse_uint(const char *text, long max, long *out) {
    if (!text || !*text) return false;
    long v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
        if (v > max) return false;
    }
    *out = v;
    return true;
}

#define INJECT_USAGE "kill|term|hang SECONDS|pause|resume|drop|corrupt"

static char *command(sv *s, char *req) {
    char *tok[8];
    int nt = 0;
    for (char *save = NULL, *t = strtok_r(req, " \t", &save); t && nt < 8; t = strtok_r(NULL, " \t", &save))
        tok[nt++] = t;
    if (nt == 0) return error_reply("empty request");
    if (strcmp(tok[0], "status") == 0) {
        if (nt > 2 || (nt == 2 && strcmp(tok[1], "--json") != 0))
            return error_reply("usage: status [--json]");
        json_t *o = status_json(s);
        char *r = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        return r;
    }
    if (strcmp(tok[0], "stop") == 0) {
        if (nt != 1) return error_reply("usage: stop");
        sv_log(s, SL_LOG_INFO, "stop requested over the control plane");
        s->shutdown = true;
        s->exit_code = 0;
        return strdup("{\"ok\":true,\"stopping\":true}");
    }
    if (strcmp(tok[0], "inject") == 0) {
        if (nt < 3) return error_reply("usage: inject ACTOR " INJECT_USAGE);
        child *c = find_child(s, tok[1]);
        if (!c) return error_reply("no actor named '%.64s'", tok[1]);
        if (c->pid <= 0) return error_reply("actor '%s' is not running", c->spec->name);
        const char *what = tok[2];
        long secs = 0;
        int sig = 0;
        if (strcmp(what, "kill") == 0 && nt == 3) sig = SIGKILL;
        else if (strcmp(what, "term") == 0 && nt == 3) sig = SIGTERM;
        else if (strcmp(what, "pause") == 0 && nt == 3) sig = SIGSTOP;
        else if (strcmp(what, "resume") == 0 && nt == 3) sig = SIGCONT;
        else if (strcmp(what, "hang") == 0 && nt == 4 && parse_uint(tok[3], 86400, &secs)) sig = SIGSTOP;
        else if ((strcmp(what, "drop") == 0 || strcmp(what, "corrupt") == 0) && nt == 3) {
            if (c->spec->kind == SL_KIND_EXEC)
                return error_reply("drop and corrupt need a built-in actor kind ('%s' is exec)", c->spec->name);
            sig = what[0] == 'd' ? SIGUSR1 : SIGUSR2;
        } else return error_reply("usage: inject ACTOR " INJECT_USAGE);
        pid_t pid = c->pid;
        if (kill(pid, sig) != 0) return error_reply("kill(%ld): %s", (long)pid, strerror(errno));
        if (strcmp(what, "hang") == 0) c->cont_at_ms = sl_now_ms() + (uint64_t)secs * 1000u;
        if (sig == SIGCONT) c->cont_at_ms = 0;
        s->faults_injected++;
        sv_log(s, SL_LOG_WARN, "inject: %s %s%s%s (pid %ld)", c->spec->name, what, nt == 4 ? " " : "",
               nt == 4 ? tok[3] : "", (long)pid);
        json_t *o = json_pack("{s:b,s:s,s:s,s:I}", "ok", 1, "actor", c->spec->name, "inject", what,
                              "pid", (json_int_t)pid);
        char *r = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        return r;
    }
    if (strcmp(tok[0], "help") == 0)
        return strdup("{\"ok\":true,\"commands\":[\"status [--json]\",\"stop\","
                      "\"inject ACTOR " INJECT_USAGE "\"]}");
    s->bad_requests++;
    return error_reply("unknown command '%.64s' (commands: status, stop, inject, help)", tok[0]);
}

static void serve_control(sv *s) {
    if (!s->ctl) return;
    for (int n = 0; n < 64; n++) {
        char *req = NULL;
        if (sl_control_server_recv(s->ctl, &req, &s->bad_requests) != SL_OK) return;
        char *reply = command(s, req);
        free(req);
        sl_control_server_reply(s->ctl, reply ? reply : "{\"ok\":false,\"error\":\"out of memory\"}");
        free(reply);
    }
}

/* ================================================================ run */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(sig_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

static sl_err write_topology(sv *s) {
    char tmp[640];
    snprintf(s->topo_path, sizeof s->topo_path, "%s/topology.conf", s->run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", s->topo_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return SL_EIO;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return SL_EIO;
    }
    fprintf(f, "# Resolved topology of this run, written by slime-supervisor from %s\n"
               "# (overrides applied). Actors read it through SL_TOPOLOGY.\n",
            s->topo->source ? s->topo->source : "?");
    sl_err e = sl_topology_write(s->topo, f);
    if (fclose(f) != 0) e = SL_EIO;
    if (!e && rename(tmp, s->topo_path) != 0) e = SL_EIO;
    return e;
}

static void shutdown_all(sv *s) {
    for (int i = s->n - 1; i >= 0; i--) {
        child *c = &s->c[i];
        if (c->pid <= 0) continue;
        child_stop(s, c);
        if (c->state != SL_CHILD_FAILED) c->state = SL_CHILD_STOPPED;
    }
}

int sl_supervisor_run(const sl_topology *topo, const sl_supervisor_opts *opts) {
    sv S = {0}, *s = &S;
    s->topo = topo;
    s->opts = opts;
    s->sfd = s->log_fd = s->lock_fd = -1;
    int rc = SL_EXIT_USAGE;
    char why[PATH_MAX + 128];
    const char *rd = opts && opts->run_dir ? opts->run_dir : topo->run_dir;

    if (sl_supervisor_check(topo, rd, stderr) > 0) return SL_EXIT_USAGE;
    if (sl_run_dir_prepare(rd, s->run_dir, sizeof s->run_dir, why, sizeof why) != SL_OK) {
        fprintf(stderr, "slime-supervisor: run directory: %s\n", why);
        return SL_EXIT_USAGE;
    }

    /* Signals become events of the loop through a self-pipe (handlers run
     * in whichever thread the kernel picks; libraries may have started
     * threads before main, so blocking + signalfd would not be enough). */
    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        fprintf(stderr, "slime-supervisor: pipe: %s\n", strerror(errno));
        return SL_EXIT_FAIL;
    }
    s->sfd = sig_pipe[0];
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char path[600];
    snprintf(path, sizeof path, "%.500s/supervisor.lock", s->run_dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "slime-supervisor: %s: %s\n", path,
                errno == EWOULDBLOCK ? "another supervisor runs in this run directory" : strerror(errno));
        goto out;
    }
    if (ftruncate(s->lock_fd, 0) == 0) dprintf(s->lock_fd, "%ld\n", (long)getpid());
    snprintf(path, sizeof path, "%.500s/logs", s->run_dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "slime-supervisor: cannot create %s: %s\n", path, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "%.500s/logs/supervisor.log", s->run_dir);
    s->log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    /* transport tcp: a CURVE key pair for this run, and the address every
     * mailbox (ours and the children's, through the environment) binds */
    if (strcmp(sl_topology_get_str(topo, "run", "transport"), "tcp") == 0) {
        sl_err ke = sl_mailbox_curve_keygen(s->run_dir);
        if (ke) {
            fprintf(stderr, "slime-supervisor: cannot make the run's CURVE keys: %s\n", sl_strerror(ke));
            goto out;
        }
        setenv(SL_ENV_MB_TCP, sl_topology_get_str(topo, "run", "tcp_address"), 1);
        sv_log(s, SL_LOG_INFO, "mailboxes on tcp %s with CURVE (key pair %s/%s)",
               sl_topology_get_str(topo, "run", "tcp_address"), s->run_dir, SL_MB_CURVE_KEY_FILE);
    } else {
        unsetenv(SL_ENV_MB_TCP);
    }
    if (write_topology(s) != SL_OK) {
        fprintf(stderr, "slime-supervisor: cannot write %s\n", s->topo_path);
        goto out;
    }
    rc = SL_EXIT_FAIL;
    sl_err e = sl_control_server_open(s->run_dir, &s->ctl);
    if (e) {
        sv_log(s, SL_LOG_ERROR, "control socket in %s: %s", s->run_dir, sl_strerror(e));
        goto out;
    }
    e = sl_hb_surveyor_open(s->run_dir, &s->hb);
    if (e) {
        sv_log(s, SL_LOG_ERROR, "heartbeat socket in %s: %s", s->run_dir, sl_strerror(e));
        goto out;
    }
    bool need_mb = false;
    for (int i = 0; i < topo->n_actors; i++)
        if (topo->actors[i].heartbeat == SL_HEARTBEAT_MAILBOX) need_mb = true;
    e = sl_mailbox_open(s->run_dir, SL_MB_SUPERVISOR, &s->mb);
    if (e) {
        sv_log(s, need_mb ? SL_LOG_ERROR : SL_LOG_WARN, "supervisor mailbox: %s", sl_strerror(e));
        if (need_mb) goto out;
    } else {
        sl_mailbox_set_send_timeout(s->mb, 0); /* never block the loop on a peer */
    }

    s->n = topo->n_actors;
    s->c = calloc((size_t)(s->n ? s->n : 1), sizeof *s->c);
    if (!s->c) goto out;
    for (int i = 0; i < s->n; i++) {
        s->c[i].spec = &topo->actors[i];
        s->c[i].state = SL_CHILD_STOPPED;
        if (child_prepare(s, &s->c[i]) != SL_OK) {
            sv_log(s, SL_LOG_ERROR, "out of memory");
            goto out;
        }
    }
    sv_log(s, SL_LOG_INFO, "supervisor pid %ld: %d actors, %s, intensity %d/%d s, run dir %s",
           (long)getpid(), s->n, sl_strategy_name(topo->supervisor.strategy), topo->supervisor.intensity,
           topo->supervisor.period, s->run_dir);

    for (int i = 0; i < s->n; i++)
        if (child_spawn(s, &s->c[i]) != SL_OK) {
            s->c[i].state = SL_CHILD_FAILED;
            snprintf(s->c[i].last_exit, sizeof s->c[i].last_exit, "spawn failed");
        }
    s->next_beat_ms = sl_now_ms();
    faults_init(s);

    while (!s->shutdown) {
        beat(s);
        uint64_t now = sl_now_ms();
        int timeout = LOOP_MAX_WAIT_MS;
        if (s->next_beat_ms > now && s->next_beat_ms - now < (uint64_t)timeout)
            timeout = (int)(s->next_beat_ms - now);
        struct pollfd fds[3] = {
            {.fd = s->sfd, .events = POLLIN},
            {.fd = sl_control_server_fd(s->ctl), .events = POLLIN},
            {.fd = sl_hb_surveyor_fd(s->hb), .events = POLLIN},
        };
        if (s->mb) sl_mailbox_poll(s->mb, fds, 3, timeout);
        else poll(fds, 3, timeout);
        unsigned char sig;
        while (read(s->sfd, &sig, 1) == 1) {
            if (sig == SIGINT || sig == SIGTERM) {
                sv_log(s, SL_LOG_INFO, "signal %u: stopping everything", sig);
                s->shutdown = true;
                s->exit_code = 0;
            }
        }
        if (s->shutdown) break;
        reap(s);
        if (s->shutdown) break;
        collect(s);
        serve_control(s);
        if (s->shutdown) break;
        check_hung(s);
        reap(s);
        if (!s->shutdown) faults_tick(s);
    }
    rc = s->exit_code;
    shutdown_all(s);
    sv_log(s, SL_LOG_INFO, "supervisor exits with status %d (faults injected: %llu)", rc,
           (unsigned long long)s->faults_injected);
    summary(s, rc);

out:
    if (s->c)
        for (int i = 0; i < s->n; i++) {
            free_strv(s->c[i].argv);
            free_strv(s->c[i].envp);
        }
    free(s->c);
    free(s->restart_ms);
    free(s->faults);
    sl_mailbox_close(s->mb);
    sl_hb_surveyor_close(s->hb);
    sl_control_server_close(s->ctl);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    if (s->log_fd >= 0) close(s->log_fd);
    if (s->lock_fd >= 0) close(s->lock_fd);
    return rc;
}
