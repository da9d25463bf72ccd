/*
 * actor.c — sl_actor_main: the process around one actor's ops table
 * (mailbox, heartbeat responder, message loop, clean shutdown), the
 * context helpers, and the registry of built-in kinds. See actor.h.
 * It is not any actor's logic (that is in the kind files: demo.c, ...).
 */
#include "actor.h"
#include "control.h"
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ============================================================== registry */

/* The RL kinds live in their own files (buffer.c, rollout.c, reward.c,
 * trainer.c). Strong references: a weak one would not pull the file out of
 * libslime.a. */
extern const sl_actor_ops sl_buffer_ops;
extern const sl_actor_ops sl_rollout_ops;
extern const sl_actor_ops sl_reward_ops;
extern const sl_actor_ops sl_trainer_ops;

static const struct {
    const char *kind;
    const sl_actor_ops *ops;
} kinds[] = {
    {"echo", &sl_demo_echo_ops},
    {"pinger", &sl_demo_pinger_ops},
    {"buffer", &sl_buffer_ops},
    {"rollout", &sl_rollout_ops},
    {"reward", &sl_reward_ops},
    {"trainer", &sl_trainer_ops},
};

const sl_actor_ops *sl_actor_kind_find(const char *kind) {
    if (!kind) return NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(kinds); i++)
        if (kinds[i].ops && strcmp(kinds[i].kind, kind) == 0) return kinds[i].ops;
    return NULL;
}

const char *sl_actor_kind_list(void) { return "echo|pinger|buffer|rollout|reward|trainer"; }

/* =============================================================== context */

struct sl_actor_ctx {
    const char *name;
    const char *kind;
    const char *run_dir;
    sl_topology *topo;
    const sl_actor_spec *spec;
    sl_mailbox *mb;
    int tick_ms;
    bool stop;
    int status;
};

const char *sl_actor_name(const sl_actor_ctx *ctx) { return ctx->name; }
const char *sl_actor_kind_of(const sl_actor_ctx *ctx) { return ctx->kind; }
const char *sl_actor_run_dir(const sl_actor_ctx *ctx) { return ctx->run_dir; }
const sl_topology *sl_actor_topology(const sl_actor_ctx *ctx) { return ctx->topo; }
const sl_actor_spec *sl_actor_spec_self(const sl_actor_ctx *ctx) { return ctx->spec; }
sl_mailbox *sl_actor_mailbox(sl_actor_ctx *ctx) { return ctx->mb; }

sl_err sl_actor_send(sl_actor_ctx *ctx, const char *to, uint16_t type, const void *payload,
                     size_t len) {
    return sl_mailbox_send(ctx->mb, to, type, payload, len);
}

sl_err sl_actor_request(sl_actor_ctx *ctx, const char *to, uint16_t type, const void *payload,
                        size_t len, sl_msg *reply, int timeout_ms) {
    return sl_mailbox_request(ctx->mb, to, type, payload, len, reply, timeout_ms);
}

sl_err sl_actor_send_corr(sl_actor_ctx *ctx, const char *to, uint16_t type,
                          const void *payload, size_t len, uint64_t *corr) {
    uint64_t c = sl_mailbox_new_corr(ctx->mb);
    if (corr) *corr = c;
    return sl_mailbox_send_ex(ctx->mb, to, type, 0, c, payload, len);
}

sl_err sl_actor_reply(sl_actor_ctx *ctx, const sl_msg *req, uint16_t type, const void *payload,
                      size_t len) {
    return sl_mailbox_reply(ctx->mb, req, type, payload, len);
}

sl_err sl_actor_reply_error(sl_actor_ctx *ctx, const sl_msg *req, sl_err code, const char *text) {
    return sl_mailbox_reply_error(ctx->mb, req, (uint32_t)code, text);
}

void sl_actor_set_tick(sl_actor_ctx *ctx, int tick_ms) { ctx->tick_ms = tick_ms > 0 ? tick_ms : 0; }

void sl_actor_stop(sl_actor_ctx *ctx, int status) {
    ctx->stop = true;
    ctx->status = status;
}

void sl_actor_log(sl_actor_ctx *ctx, sl_log_level level, const char *fmt, ...) {
    (void)ctx;
    va_list ap;
    va_start(ap, fmt);
    sl_vlog(level, fmt, ap);
    va_end(ap);
}

sl_err sl_actor_record_event(sl_actor_ctx *ctx, const char *what) {
    char path[4096], line[256];
    int n = snprintf(path, sizeof path, "%s/events.log", ctx->run_dir);
    if (n < 0 || (size_t)n >= sizeof path) return SL_EIO;
    int ln = snprintf(line, sizeof line, "%s %s\n", what, ctx->name);
    if (ln < 0 || (size_t)ln >= sizeof line) return SL_EIO;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return SL_EIO;
    ssize_t w = write(fd, line, (size_t)ln);
    close(fd);
    return w == ln ? SL_OK : SL_EIO;
}

/* ============================================================ main loop */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(sig_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

/* slime-ctl inject ACTOR drop|corrupt: the next outgoing frame (faults.h) */
static void on_net_fault(int sig) {
    int saved = errno;
    sl_faults_request_net(sig == SIGUSR1 ? SL_FAULT_DROP : SL_FAULT_CORRUPT);
    errno = saved;
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s [--run-dir DIR] [--name NAME] [--kind KIND] [--topology FILE] [--verbose]\n"
            "  (defaults from SL_RUN_DIR, SL_ACTOR_NAME, SL_ACTOR_KIND, SL_TOPOLOGY)\n",
            prog);
}

static const char *env_or(const char *flag, const char *env) {
    if (flag) return flag;
    const char *v = getenv(env);
    return v && *v ? v : NULL;
}

/* Deliver one message; returns false when the actor must end. */
static bool deliver(const sl_actor_ops *ops, void *state, sl_actor_ctx *ctx, sl_msg *m) {
    if (sl_mailbox_handle_builtin(ctx->mb, m)) return true;
    if (m->type == SL_MSG_STOP) {
        sl_info("STOP from %s", m->sender);
        sl_actor_stop(ctx, 0);
        return true;
    }
    sl_err e = ops->handle(state, ctx, m);
    if (e != SL_OK) {
        sl_error("handler failed on %s from %s: %s", sl_msg_type_name(m->type), m->sender,
                 sl_strerror(e));
        ctx->stop = true;
        ctx->status = 1;
        return false;
    }
    return true;
}

/* ================================================================= stats */

/* RUN_DIR/stats/NAME.json, replaced (tmp + rename, no fsync: it is a live
 * figure, not state) about once a second from the loop:
 * {"pid","time_ms" (CLOCK_REALTIME),"msgs_in","msgs_out","dropped"}.
 * The supervisor's status and `slime-ctl top` read it. Best effort. */
static void write_stats(const sl_actor_ctx *ctx) {
    sl_mailbox_stats st;
    sl_mailbox_stats_get(ctx->mb, &st);
    char dir[4096], path[4200], tmp[4300];
    if ((size_t)snprintf(dir, sizeof dir, "%s/stats", ctx->run_dir) >= sizeof dir) return;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return;
    snprintf(path, sizeof path, "%s/%s.json", dir, ctx->name);
    snprintf(tmp, sizeof tmp, "%s/.%s.json.tmp", dir, ctx->name);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "{\"pid\":%ld,\"time_ms\":%lld,\"msgs_in\":%llu,\"msgs_out\":%llu,\"dropped\":%llu}\n",
                     (long)getpid(), (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                     (unsigned long long)st.received, (unsigned long long)st.sent,
                     (unsigned long long)st.dropped_total);
    if (n <= 0 || (size_t)n >= sizeof buf) return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return;
    bool ok = write(fd, buf, (size_t)n) == n;
    close(fd);
    if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

int sl_actor_main(const sl_actor_ops *ops, int argc, char **argv) {
    const char *prog = argc > 0 ? argv[0] : "slime-actor";
    if (!ops || !ops->handle) {
        fprintf(stderr, "%s: actor ops table without a handle function\n", prog);
        return SL_EXIT_USAGE;
    }
    const char *f_run = NULL, *f_name = NULL, *f_kind = NULL, *f_topo = NULL;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--run-dir") == 0) slot = &f_run;
        else if (strcmp(a, "--name") == 0) slot = &f_name;
        else if (strcmp(a, "--kind") == 0) slot = &f_kind;
        else if (strcmp(a, "--topology") == 0) slot = &f_topo;
        else if (strcmp(a, "--verbose") == 0) { verbose = true; continue; }
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(prog); return SL_EXIT_OK; }
        else {
            fprintf(stderr, "%s: unknown argument '%s'\n", prog, a);
            usage(prog);
            return SL_EXIT_USAGE;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return SL_EXIT_USAGE;
        }
        *slot = argv[++i];
    }
    sl_actor_ctx ctx = {0};
    ctx.run_dir = env_or(f_run, SL_ENV_RUN_DIR);
    ctx.name = env_or(f_name, SL_ENV_ACTOR_NAME);
    const char *env_kind = getenv(SL_ENV_ACTOR_KIND);
    ctx.kind = f_kind ? f_kind : (env_kind && *env_kind ? env_kind : ops->name);
    const char *topo_path = env_or(f_topo, SL_ENV_TOPOLOGY);
    if (!ctx.run_dir || !ctx.name) {
        fprintf(stderr, "%s: no %s (set %s or --run-dir/--name)\n", prog,
                !ctx.run_dir ? "run directory" : "actor name",
                !ctx.run_dir ? SL_ENV_RUN_DIR : SL_ENV_ACTOR_NAME);
        usage(prog);
        return SL_EXIT_USAGE;
    }
    if (!sl_mb_name_valid(ctx.name)) {
        fprintf(stderr, "%s: invalid actor name '%s'\n", prog, ctx.name);
        return SL_EXIT_USAGE;
    }
    sl_log_init(ctx.name, verbose ? SL_LOG_DEBUG : SL_LOG_INFO);
    sl_metrics_task_progress_install(ctx.name); /* long loads and saves on the user's terminal */

    if (topo_path) {
        if (sl_topology_load(topo_path, NULL, 0, &ctx.topo, stderr) != 0) {
            fprintf(stderr, "%s: cannot use topology %s\n", prog, topo_path);
            return SL_EXIT_USAGE;
        }
        ctx.spec = sl_topology_find_actor(ctx.topo, ctx.name);
        if (!verbose) {
            int lvl = sl_topology_get_enum(ctx.topo, "run", "log_level");
            if (lvl >= 0) sl_log_init(ctx.name, (sl_log_level)lvl);
        }
    }

    /* Signals become events of the loop through a self-pipe. (A signalfd
     * with blocked signals is not enough: libraries may start threads
     * before main, e.g. OpenBLAS or a sanitizer, and a signal delivered to
     * one of them would take the default action.) */
    int status = 1;
    sl_hb_responder *hb = NULL;
    void *state = NULL;
    bool inited = false;
    int sfd = -1;
    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        sl_error("pipe: %s", strerror(errno));
        goto out;
    }
    sfd = sig_pipe[0];
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction fa = {.sa_handler = on_net_fault, .sa_flags = SA_RESTART};
    sigemptyset(&fa.sa_mask);
    sigaction(SIGUSR1, &fa, NULL);
    sigaction(SIGUSR2, &fa, NULL);
    /* fault injection points ([faults] points, or SL_FAULTS); none by default */
    if (sl_faults_arm(ctx.topo ? sl_topology_get_str(ctx.topo, "faults", "points") : NULL, ctx.name,
                      ctx.run_dir, ctx.topo ? (uint64_t)sl_topology_get_int(ctx.topo, "faults", "seed") : 1) < 0)
        goto out;

    sl_err e = sl_mailbox_open(ctx.run_dir, ctx.name, &ctx.mb);
    if (e) {
        sl_error("cannot open mailbox %s in %s: %s", ctx.name, ctx.run_dir, sl_strerror(e));
        goto out;
    }
    if (!ctx.spec || ctx.spec->heartbeat == SL_HEARTBEAT_NNG) {
        e = sl_hb_responder_open(ctx.run_dir, ctx.name, &hb);
        if (e) sl_warn("no heartbeat responder: %s", sl_strerror(e));
    }
    ctx.tick_ms = ops->tick_ms > 0 ? ops->tick_ms : 0;
    if (ops->init) {
        e = ops->init(&ctx, &state);
        if (e) {
            sl_error("init failed: %s", sl_strerror(e));
            goto out;
        }
    }
    inited = true;
    sl_info("%s actor running (pid %ld)", ctx.kind, (long)getpid());
    sl_debug("runtime: mailbox %s/mb/%s, heartbeat %s, tick %d ms, log level from %s", ctx.run_dir, ctx.name,
             hb ? "nng" : "mailbox/none", ctx.tick_ms, verbose ? "--verbose" : topo_path ? "the topology" : "default");

    uint64_t next_tick = ctx.tick_ms ? sl_now_ms() + (uint64_t)ctx.tick_ms : 0;
    uint64_t next_stats = 0;
    status = 0;
    while (!ctx.stop) {
        if (sl_now_ms() >= next_stats) {
            write_stats(&ctx);
            next_stats = sl_now_ms() + 1000;
        }
        int timeout = 100; /* bounded: ZeroMQ's fd is edge-triggered */
        if (ctx.tick_ms && ops->tick) {
            if (!next_tick) next_tick = sl_now_ms() + (uint64_t)ctx.tick_ms;
            uint64_t now = sl_now_ms();
            int until = next_tick > now ? (int)(next_tick - now) : 0;
            if (until < timeout) timeout = until;
        }
        struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = sl_hb_responder_fd(hb), .events = POLLIN}};
        int nfds = fds[1].fd >= 0 ? 2 : 1;
        int r = sl_mailbox_poll(ctx.mb, fds, nfds, timeout);
        if (r == -SL_EIO) {
            sl_error("mailbox poll failed");
            status = 1;
            break;
        }
        if (fds[0].revents & POLLIN) {
            unsigned char sig;
            while (read(sfd, &sig, 1) == 1) {
                sl_info("signal %u: stopping", sig);
                sl_actor_stop(&ctx, 0);
            }
        }
        if (hb) sl_hb_respond(hb);
        /* Drain: messages first, a stop request ends the drain. */
        for (int n = 0; !ctx.stop && n < 1024 && sl_mailbox_has_input(ctx.mb); n++) {
            sl_msg m = {0};
            e = sl_mailbox_recv(ctx.mb, &m, 0);
            if (e == SL_ETIMEDOUT || e == SL_EAGAIN) break;
            if (e) {
                sl_error("mailbox receive failed: %s", sl_strerror(e));
                ctx.stop = true;
                ctx.status = 1;
                break;
            }
            deliver(ops, state, &ctx, &m);
            sl_msg_fini(&m);
        }
        if (!ctx.stop && ctx.tick_ms && ops->tick && sl_now_ms() >= next_tick) {
            next_tick = sl_now_ms() + (uint64_t)ctx.tick_ms;
            e = ops->tick(state, &ctx);
            if (e) {
                sl_error("tick failed: %s", sl_strerror(e));
                ctx.stop = true;
                ctx.status = 1;
            }
        }
        status = ctx.status;
    }
    status = ctx.status;

out:
    if (inited && ops->fini) ops->fini(state, &ctx);
    if (ctx.mb) {
        sl_mailbox_stats st;
        sl_mailbox_stats_get(ctx.mb, &st);
        uint64_t bad = 0;
        for (int r = 1; r < SL_FRAME_NREASONS; r++) bad += st.dropped[r];
        if (bad || sl_faults_fired())
            sl_info("mailbox: %llu malformed frame(s) refused; faults injected here: %llu",
                    (unsigned long long)bad, (unsigned long long)sl_faults_fired());
    }
    sl_hb_responder_close(hb);
    sl_mailbox_close(ctx.mb);
    sl_topology_free(ctx.topo);
    if (sfd >= 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        sig_pipe[0] = sig_pipe[1] = -1;
    }
    if (inited) sl_info("stopped (status %d)", status);
    return status;
}
