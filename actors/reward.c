/*
 * reward.c — the `reward` actor kind: SAMPLES in, SCORED out.
 *
 * For each SAMPLES message (rl_msg.h) it maps the rollout's shm slot as
 * consumer SL_RL_CONSUMER_REWARD_BASE + its instance index, checks the
 * sample batch, decodes prompt and response of every sample with the
 * model's tokenizer (special tokens removed from the response), releases
 * its hold, scores every sample and sends SCORED to the buffer with
 * "rewards", "failed" and "response_len" added to the SAMPLES fields.
 *
 * Scoring ([reward] rm_type):
 *   math | gsm8k | exact | f1 | format   built-in (reward_builtin.h), inline:
 *        they are linear-time pure functions.
 *   custom  a C plugin (reward_plugin.h) loaded at init from
 *        custom_rm_path = FILE.so[:SYMBOL]; every call runs in a forked
 *        worker process under RLIMIT_AS / RLIMIT_CPU with a per-sample
 *        deadline (reward_timeout_ms). A hung, crashing or failing plugin
 *        fails that sample (reward 0, counted) and the worker is restarted.
 *        Calls run on a scoring thread so the actor's loop keeps answering
 *        heartbeats; results are sent from the tick.
 *   remote  REWARD_REQ to the actor named [reward] remote_actor, one per
 *        sample, asynchronously (correlation ids). An attempt fails when
 *        its reply is missing after reward_timeout_ms, is an ERROR reply or
 *        cannot be sent; a failed attempt is sent again (a new correlation
 *        id: a late reply of the old one is ignored) up to reward_retries
 *        times, after reward_retry_backoff_ms doubled per retry (at most
 *        30 s); then the sample fails (reward 0, counted). A reply whose
 *        reward is missing or not finite is an answer: failed, not retried.
 *
 * What it is not: no grouping, filtering or advantages (the buffer).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actor.h"
#include "reward_builtin.h"
#include "reward_plugin.h"
#include "rl_common.h"
#include "rl_msg.h"
#include "sample_batch.h"
#include "shm.h"
#include "tokenizer.h"

/* AddressSanitizer reserves terabytes of address space for its shadow:
 * under it RLIMIT_AS would fail every allocation, so it is not set. */
#if defined(__SANITIZE_ADDRESS__)
#define SL_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SL_ASAN_BUILD 1
#endif
#endif

enum { MODE_BUILTIN, MODE_CUSTOM, MODE_REMOTE };

typedef struct job {
    struct job *next;
    json_t *fields; /* the SAMPLES payload (owned) */
    uint32_t n;
    char **prompt, **response, **label, **meta;
    uint64_t *sample_id;
    int64_t *resp_len;
    double *reward;
    uint8_t *failed;
    /* remote: per sample, the attempt in flight (corr, deadline) or the
     * time of the next one (retry_at >= 0), and the attempts made */
    uint64_t *corr;
    uint8_t *done;
    uint32_t n_done;
    int64_t *deadline_ms, *retry_at;
    int32_t *attempts;
} job;

typedef struct worker {
    pid_t pid;
    int req_fd, rep_fd;
} worker;

typedef struct reward_actor {
    sl_actor_ctx *ctx;
    int mode;
    const char *rm_type;
    char buffer_name[SL_ACTOR_NAME_MAX];
    char remote[SL_ACTOR_NAME_MAX];
    unsigned consumer;
    int timeout_ms;
    long mem_mb;
    int cpu_s;   /* RLIMIT_CPU seconds per plugin call */
    int retries; /* a hung or crashed plugin call / a failed remote attempt is tried again this many times */
    int backoff_ms; /* remote: wait before the first retry (doubled per retry) */
    sl_tokenizer *tok;
    int32_t vocab;
    sl_shm_view *view; /* cached view of the last arena */
    /* plugin */
    void *dl;
    sl_reward_plugin_fn fn;
    worker w;
    /* scoring thread (custom) */
    pthread_t thr;
    int thr_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *todo_head, *todo_tail, *done_head, *done_tail;
    int quit;
    /* remote jobs in flight */
    job *remote_jobs;
    /* counters */
    uint64_t n_groups, n_scored, n_failed, n_timeouts, n_crashes, n_worker_starts, n_bad_msgs,
        n_retries;
    bool started; /* init completed */
} reward_actor;

/* ------------------------------------------------------------ jobs */

static void job_free(job *j) {
    if (!j) return;
    for (uint32_t i = 0; i < j->n; i++) {
        if (j->prompt) free(j->prompt[i]);
        if (j->response) free(j->response[i]);
        if (j->label) free(j->label[i]);
        if (j->meta) free(j->meta[i]);
    }
    free(j->prompt), free(j->response), free(j->label), free(j->meta);
    free(j->sample_id), free(j->resp_len), free(j->reward), free(j->failed);
    free(j->corr), free(j->done), free(j->deadline_ms), free(j->retry_at), free(j->attempts);
    json_decref(j->fields);
    free(j);
}

static job *job_new(uint32_t n) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->n = n;
    j->prompt = calloc(n, sizeof(char *));
    j->response = calloc(n, sizeof(char *));
    j->label = calloc(n, sizeof(char *));
    j->meta = calloc(n, sizeof(char *));
    j->sample_id = calloc(n, sizeof(uint64_t));
    j->resp_len = calloc(n, sizeof(int64_t));
    j->reward = calloc(n, sizeof(double));
    j->failed = calloc(n, 1);
    j->corr = calloc(n, sizeof(uint64_t));
    j->done = calloc(n, 1);
    j->deadline_ms = calloc(n, sizeof(int64_t));
    j->retry_at = calloc(n, sizeof(int64_t));
    j->attempts = calloc(n, sizeof(int32_t));
    if (!j->prompt || !j->response || !j->label || !j->meta || !j->sample_id || !j->resp_len ||
        !j->reward || !j->failed || !j->corr || !j->done || !j->deadline_ms || !j->retry_at ||
        !j->attempts) {
        job_free(j);
        return NULL;
    }
    return j;
}

/* ------------------------------------------------------------ plugin worker */

static int read_full(int fd, void *p, size_t n) {
    uint8_t *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        b += r, n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t r = write(fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        b += r, n -= (size_t)r;
    }
    return 0;
}

typedef struct wreq {
    uint32_t magic, index;
    uint64_t sample_id;
    uint32_t len[4]; /* prompt, response, label (+1 present), metadata (+1 present) */
    int32_t cpu_s;
    uint32_t pad;
} wreq;
#define WREQ_MAGIC 0x51455257u

typedef struct wrep {
    int32_t rc;
    uint32_t pad;
    double reward;
} wrep;

/* The worker's loop (in the child): never returns. */
static void worker_main(sl_reward_plugin_fn fn, int in_fd, int out_fd) {
    for (;;) {
        wreq q;
        if (read_full(in_fd, &q, sizeof q) || q.magic != WREQ_MAGIC) _exit(0);
        char *s[4] = {0};
        for (int k = 0; k < 4; k++) {
            uint32_t l = q.len[k];
            if (l > (256u << 20)) _exit(3);
            s[k] = malloc((size_t)l + 1);
            if (!s[k] || read_full(in_fd, s[k], l)) _exit(3);
            s[k][l] = 0;
        }
        /* RLIMIT_CPU: this call may use cpu_s more seconds */
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0) {
            struct rlimit rl;
            if (getrlimit(RLIMIT_CPU, &rl) == 0) {
                rlim_t want = (rlim_t)ru.ru_utime.tv_sec + (rlim_t)ru.ru_stime.tv_sec + (rlim_t)q.cpu_s + 1;
                if (rl.rlim_max == RLIM_INFINITY || want <= rl.rlim_max) {
                    rl.rlim_cur = want;
                    setrlimit(RLIMIT_CPU, &rl);
                }
            }
        }
        sl_reward_plugin_input in = {
            .abi_version = SL_REWARD_PLUGIN_ABI,
            .sample_index = q.index,
            .sample_id = q.sample_id,
            .prompt = s[0],
            .prompt_len = q.len[0],
            .response = s[1],
            .response_len = q.len[1],
            .label = q.len[2] ? s[2] : NULL,
            .metadata = q.len[3] ? s[3] : NULL,
        };
        /* label/metadata presence: a one-byte marker prefix */
        if (q.len[2]) in.label = s[2] + 1;
        if (q.len[3]) in.metadata = s[3] + 1;
        wrep r = {0, 0, 0.0};
        r.rc = fn(&in, &r.reward);
        for (int k = 0; k < 4; k++) free(s[k]);
        if (write_full(out_fd, &r, sizeof r)) _exit(0);
    }
}

static void worker_stop(reward_actor *a) {
    if (a->w.pid > 0) {
        kill(a->w.pid, SIGKILL);
        while (waitpid(a->w.pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    if (a->w.req_fd >= 0) close(a->w.req_fd);
    if (a->w.rep_fd >= 0) close(a->w.rep_fd);
    a->w.pid = -1, a->w.req_fd = a->w.rep_fd = -1;
}

static int worker_start(reward_actor *a) {
    int q[2], r[2];
    if (pipe2(q, O_CLOEXEC)) return SL_EIO;
    if (pipe2(r, O_CLOEXEC)) {
        close(q[0]), close(q[1]);
        return SL_EIO;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(q[0]), close(q[1]), close(r[0]), close(r[1]);
        return SL_EIO;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(0);
        /* unblock the signals the actor runtime blocked */
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_UNBLOCK, &all, NULL);
        signal(SIGXCPU, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        /* a crashing plugin dies of its own signal (no handler of a
         * sanitizer runtime inherited from the actor reports it) */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        signal(SIGILL, SIG_DFL);
#ifndef SL_ASAN_BUILD
        struct rlimit rl = {(rlim_t)a->mem_mb << 20, (rlim_t)a->mem_mb << 20};
        setrlimit(RLIMIT_AS, &rl);
#endif
        struct rlimit core = {0, 0};
        setrlimit(RLIMIT_CORE, &core);
        close(q[1]), close(r[0]);
        worker_main(a->fn, q[0], r[1]);
        _exit(0);
    }
    close(q[0]), close(r[1]);
    a->w.pid = pid, a->w.req_fd = q[1], a->w.rep_fd = r[0];
    a->n_worker_starts++;
    return SL_OK;
}

/* One plugin call with the deadline. 0 = scored; else failed (the worker
 * was restarted when it hung or died). */
static int plugin_score(reward_actor *a, job *j, uint32_t i) {
    if (a->w.pid <= 0 && worker_start(a) != SL_OK) return -1;
    const char *lab = j->label[i], *met = j->meta[i];
    size_t ll = lab ? strlen(lab) + 1 : 0, ml = met ? strlen(met) + 1 : 0;
    wreq q = {WREQ_MAGIC, i, j->sample_id[i],
              {(uint32_t)strlen(j->prompt[i]), (uint32_t)strlen(j->response[i]), (uint32_t)ll, (uint32_t)ml},
              (uint32_t)a->cpu_s, 0};
    /* presence marker byte before label/metadata */
    int bad = write_full(a->w.req_fd, &q, sizeof q) || write_full(a->w.req_fd, j->prompt[i], q.len[0]) ||
              write_full(a->w.req_fd, j->response[i], q.len[1]);
    if (!bad && ll) bad = write_full(a->w.req_fd, "L", 1) || write_full(a->w.req_fd, lab, ll - 1);
    if (!bad && ml) bad = write_full(a->w.req_fd, "M", 1) || write_full(a->w.req_fd, met, ml - 1);
    int64_t deadline = (int64_t)sl_now_ms() + a->timeout_ms;
    wrep r;
    size_t got = 0;
    while (!bad && got < sizeof r) {
        int64_t left = deadline - (int64_t)sl_now_ms();
        if (left <= 0) {
            a->n_timeouts++;
            sl_warn("reward plugin: sample %u timed out after %d ms: worker killed", i, a->timeout_ms);
            worker_stop(a);
            return -1;
        }
        struct pollfd p = {a->w.rep_fd, POLLIN, 0};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;
        ssize_t n = read(a->w.rep_fd, (uint8_t *)&r + got, sizeof r - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            bad = 1;
            break;
        }
        got += (size_t)n;
    }
    if (bad) {
        a->n_crashes++;
        int st = 0;
        if (a->w.pid > 0) {
            kill(a->w.pid, SIGKILL);
            while (waitpid(a->w.pid, &st, 0) < 0 && errno == EINTR) {}
            a->w.pid = -1;
        }
        sl_warn("reward plugin: worker died on sample %u (%s %d): restarting it", i,
                WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        worker_stop(a);
        return -1;
    }
    if (r.rc != 0 || !isfinite(r.reward)) return -2; /* the plugin's own answer: not retried */
    j->reward[i] = r.reward;
    return 0;
}

/* plugin_score, with a hung or crashed call tried again (a fresh worker)
 * up to reward_retries times; then the sample fails. */
static int plugin_score_retry(reward_actor *a, job *j, uint32_t i) {
    for (int k = 0;; k++) {
        int rc = plugin_score(a, j, i);
        if (rc != -1 || k >= a->retries) return rc;
        a->n_retries++;
    }
}

static void *score_thread(void *arg) {
    reward_actor *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->quit && !a->todo_head) pthread_cond_wait(&a->cv, &a->mu);
        if (a->quit) break;
        job *j = a->todo_head;
        a->todo_head = j->next;
        if (!a->todo_head) a->todo_tail = NULL;
        pthread_mutex_unlock(&a->mu);
        for (uint32_t i = 0; i < j->n; i++)
            if (plugin_score_retry(a, j, i) != 0) j->failed[i] = 1, j->reward[i] = 0;
        pthread_mutex_lock(&a->mu);
        j->next = NULL;
        if (a->done_tail) a->done_tail->next = j;
        else a->done_head = j;
        a->done_tail = j;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ------------------------------------------------------------ SCORED */

static void send_scored(reward_actor *a, job *j) {
    json_t *o = j->fields;
    json_t *rw = json_array(), *fl = json_array(), *rl = json_array();
    for (uint32_t i = 0; i < j->n; i++) {
        if (j->failed[i]) a->n_failed++;
        else a->n_scored++;
        json_array_append_new(rw, json_real(j->failed[i] ? 0.0 : j->reward[i]));
        json_array_append_new(fl, json_integer(j->failed[i]));
        json_array_append_new(rl, json_integer(j->resp_len[i]));
    }
    json_object_set_new(o, "rewards", rw);
    json_object_set_new(o, "failed", fl);
    json_object_set_new(o, "response_len", rl);
    sl_fault_point("reward_score"); /* faults.h */
    int rc = sl_rl_json_send(a->ctx, a->buffer_name, SL_MSG_SCORED, o);
    if (rc) sl_actor_log(a->ctx, SL_LOG_WARN, "SCORED to %s failed: %s", a->buffer_name, sl_strerror(rc));
    a->n_groups++;
    if (a->n_groups % 50 == 0 || (a->n_failed && a->n_groups % 10 == 0))
        sl_actor_log(a->ctx, SL_LOG_INFO,
                     "groups %llu, samples scored %llu, failed %llu (timeouts %llu, crashes %llu), "
                     "worker starts %llu",
                     (unsigned long long)a->n_groups, (unsigned long long)a->n_scored,
                     (unsigned long long)a->n_failed, (unsigned long long)a->n_timeouts,
                     (unsigned long long)a->n_crashes, (unsigned long long)a->n_worker_starts);
}

/* ------------------------------------------------------------ SAMPLES */

static char *decode(reward_actor *a, const int32_t *ids, size_t n, int skip_special) {
    char *t = NULL;
    if (sl_tokenizer_decode(a->tok, ids, n, skip_special, &t, NULL) != 0) return strdup("");
    return t;
}

static void remote_send(reward_actor *a, job *j, uint32_t i);

static int on_samples(reward_actor *a, const sl_msg *m) {
    json_t *o = NULL;
    char err[200];
    if (sl_rl_json_parse(m->payload, m->len, &o, err, sizeof err) != 0) {
        a->n_bad_msgs++;
        sl_actor_log(a->ctx, SL_LOG_WARN, "bad SAMPLES from %s: %s", m->sender, err);
        return SL_OK;
    }
    sl_shm_desc d;
    if (sl_rl_json_desc(o, &d) != 0) {
        a->n_bad_msgs++;
        sl_actor_log(a->ctx, SL_LOG_WARN, "SAMPLES from %s without a valid desc", m->sender);
        json_decref(o);
        return SL_OK;
    }
    if (a->view && !sl_shm_view_matches(a->view, &d)) {
        sl_shm_view_close(a->view);
        a->view = NULL;
    }
    int rc = a->view ? 0 : sl_shm_arena_open(&d, a->consumer, &a->view);
    const void *ptr = NULL;
    size_t len = 0;
    if (rc == 0) rc = sl_shm_read(a->view, &d, SL_SHM_READ_TRUST_DATA, &ptr, &len);
    sl_batch_view v;
    if (rc == 0) rc = sl_batch_view_open(&v, ptr, len, a->vocab, 0, err, sizeof err);
    else snprintf(err, sizeof err, "%s", sl_strerror(rc));
    if (rc != 0) {
        a->n_bad_msgs++;
        sl_actor_log(a->ctx, SL_LOG_WARN, "SAMPLES from %s: cannot read the batch: %s", m->sender, err);
        if (a->view) sl_shm_release(a->view, &d);
        json_decref(o);
        return SL_OK;
    }
    job *j = job_new(v.n_samples);
    if (!j) {
        sl_shm_release(a->view, &d);
        json_decref(o);
        return SL_ENOMEM;
    }
    j->fields = o;
    for (uint32_t i = 0; i < v.n_samples; i++) {
        sl_batch_sample s;
        sl_batch_view_sample(&v, i, &s);
        j->prompt[i] = decode(a, s.tokens, s.prompt_len, 0);
        j->response[i] = decode(a, s.tokens + s.prompt_len, s.n_tokens - s.prompt_len, 1);
        j->label[i] = s.label ? strdup(s.label) : NULL;
        j->meta[i] = s.metadata ? strdup(s.metadata) : NULL;
        j->sample_id[i] = s.sample_id;
        j->resp_len[i] = (int64_t)(s.n_tokens - s.prompt_len);
    }
    sl_shm_release(a->view, &d);
    if (a->mode == MODE_BUILTIN) {
        for (uint32_t i = 0; i < j->n; i++) {
            double sc = 0;
            int r = sl_reward_score(a->rm_type, j->response[i], strlen(j->response[i]), j->label[i],
                                    j->meta[i], &sc);
            if (r != 0 || !isfinite(sc)) j->failed[i] = 1, sc = 0;
            j->reward[i] = sc;
        }
        send_scored(a, j);
        job_free(j);
    } else if (a->mode == MODE_CUSTOM) {
        pthread_mutex_lock(&a->mu);
        if (a->todo_tail) a->todo_tail->next = j;
        else a->todo_head = j;
        a->todo_tail = j;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
    } else {
        for (uint32_t i = 0; i < j->n; i++) remote_send(a, j, i);
        j->next = a->remote_jobs;
        a->remote_jobs = j;
    }
    return SL_OK;
}

/* Sample I of J is over (scored or failed). */
static void remote_done(job *j, uint32_t i, bool failed, double reward) {
    j->done[i] = 1, j->n_done++;
    j->failed[i] = failed;
    j->reward[i] = failed ? 0 : reward;
    j->retry_at[i] = -1;
}

/* Attempt J->attempts[I] of sample I failed (WHY): schedule the next one,
 * or fail the sample when reward_retries are spent. */
static void remote_attempt_failed(reward_actor *a, job *j, uint32_t i, const char *why) {
    j->corr[i] = 0;
    if (j->attempts[i] > a->retries) {
        sl_actor_log(a->ctx, SL_LOG_WARN, "remote reward actor %s: sample %llu failed after %d attempt(s): %s",
                     a->remote, (unsigned long long)j->sample_id[i], j->attempts[i], why);
        remote_done(j, i, true, 0);
        return;
    }
    int64_t delay = a->backoff_ms;
    for (int k = 1; k < j->attempts[i] && delay < 30000; k++) delay *= 2;
    if (delay > 30000) delay = 30000;
    a->n_retries++;
    j->retry_at[i] = (int64_t)sl_now_ms() + delay;
    sl_actor_log(a->ctx, SL_LOG_DEBUG, "remote reward actor %s: sample %llu attempt %d: %s; again in %lld ms",
                 a->remote, (unsigned long long)j->sample_id[i], j->attempts[i], why, (long long)delay);
}

/* Send attempt J->attempts[I] + 1 of sample I's REWARD_REQ. */
static void remote_send(reward_actor *a, job *j, uint32_t i) {
    j->attempts[i]++;
    j->retry_at[i] = -1;
    j->deadline_ms[i] = (int64_t)sl_now_ms() + a->timeout_ms;
    json_t *q = json_pack("{s:s,s:s,s:s,s:s,s:I,s:i}", "response", j->response[i], "label",
                          j->label[i] ? j->label[i] : "", "metadata", j->meta[i] ? j->meta[i] : "",
                          "prompt", j->prompt[i], "sample_id", (json_int_t)j->sample_id[i], "attempt",
                          j->attempts[i]);
    char *txt = q ? json_dumps(q, JSON_COMPACT) : NULL;
    json_decref(q);
    int r = txt ? sl_actor_send_corr(a->ctx, a->remote, SL_MSG_REWARD_REQ, txt, strlen(txt), &j->corr[i])
                : SL_ENOMEM;
    free(txt);
    if (r != 0) remote_attempt_failed(a, j, i, sl_strerror(r));
}

/* Retries due, attempts past their deadline (POLL), and finished jobs sent. */
static void remote_finish_ready(reward_actor *a, bool poll) {
    int64_t now = (int64_t)sl_now_ms();
    for (job **pp = &a->remote_jobs; *pp;) {
        job *j = *pp;
        for (uint32_t i = 0; poll && i < j->n; i++) {
            if (j->done[i]) continue;
            if (j->retry_at[i] >= 0) {
                if (now >= j->retry_at[i]) remote_send(a, j, i);
            } else if (now >= j->deadline_ms[i]) {
                a->n_timeouts++;
                char why[64];
                snprintf(why, sizeof why, "no reply within %d ms", a->timeout_ms);
                remote_attempt_failed(a, j, i, why);
            }
        }
        if (j->n_done == j->n) {
            *pp = j->next;
            send_scored(a, j);
            job_free(j);
        } else {
            pp = &j->next;
        }
    }
}

static void on_reward_reply(reward_actor *a, const sl_msg *m) {
    if (m->corr == 0) return;
    for (job *j = a->remote_jobs; j; j = j->next)
        for (uint32_t i = 0; i < j->n; i++) {
            if (j->done[i] || j->retry_at[i] >= 0 || j->corr[i] != m->corr) continue;
            if (m->type == SL_MSG_ERROR || (m->flags & SL_FLAG_ERROR)) {
                remote_attempt_failed(a, j, i, "ERROR reply");
                return;
            }
            json_t *o = NULL;
            double r = 0;
            bool bad = m->type != SL_MSG_REWARD || sl_rl_json_parse(m->payload, m->len, &o, NULL, 0) != 0 ||
                       sl_rl_json_dbl_opt(o, "reward", NAN, &r) != 0 || !isfinite(r);
            json_decref(o);
            remote_done(j, i, bad, r);
            remote_finish_ready(a, false);
            return;
        }
    /* a late reply of a timed-out request: ignored */
}

/* ------------------------------------------------------------ ops */

static void reward_fini(void *state, sl_actor_ctx *ctx);

static sl_err reward_init_state(sl_actor_ctx *ctx, void **state) {
    reward_actor *a = calloc(1, sizeof *a);
    if (!a) return SL_ENOMEM;
    a->ctx = ctx;
    a->w.pid = -1, a->w.req_fd = a->w.rep_fd = -1;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    *state = a;
    const sl_topology *t = sl_actor_topology(ctx);
    if (!t) {
        sl_actor_log(ctx, SL_LOG_ERROR, "the reward actor needs a topology");
        return SL_EINVAL;
    }
    const sl_actor_spec *self = sl_actor_spec_self(ctx);
    a->consumer = SL_RL_CONSUMER_REWARD_BASE + (unsigned)(self ? self->index : 0);
    if (a->consumer >= SL_RL_CONSUMER_ROLLOUT_BASE) {
        sl_actor_log(ctx, SL_LOG_ERROR, "at most 16 reward instances");
        return SL_EINVAL;
    }
    const sl_actor_spec *buf = sl_rl_find_first(t, "buffer");
    if (!buf) {
        sl_actor_log(ctx, SL_LOG_ERROR, "no actor of kind buffer in the topology");
        return SL_EINVAL;
    }
    snprintf(a->buffer_name, sizeof a->buffer_name, "%s", buf->name);
    a->rm_type = sl_topology_get_str(t, "reward", "rm_type");
    a->timeout_ms = (int)sl_topology_get_int(t, "reward", "reward_timeout_ms");
    a->mem_mb = (long)sl_topology_get_int(t, "reward", "reward_memory_mb");
    a->cpu_s = (int)sl_topology_get_int(t, "reward", "reward_cpu_s");
    if (a->cpu_s <= 0) a->cpu_s = (a->timeout_ms + 999) / 1000;
    a->retries = (int)sl_topology_get_int(t, "reward", "reward_retries");
    a->backoff_ms = (int)sl_topology_get_int(t, "reward", "reward_retry_backoff_ms");
    char dir[4096], err[256];
    int rc = sl_rl_model_dir(ctx, dir, sizeof dir);
    if (rc == 0) rc = sl_tokenizer_load(dir, &a->tok, err, sizeof err);
    else snprintf(err, sizeof err, "no model folder");
    if (rc != 0) {
        sl_actor_log(ctx, SL_LOG_ERROR, "tokenizer: %s", err);
        return rc;
    }
    a->vocab = 0; /* the batch header's vocabulary (a model's may exceed the tokenizer's) */
    if (strcmp(a->rm_type, "custom") == 0) {
        a->mode = MODE_CUSTOM;
        char file[4096];
        snprintf(file, sizeof file, "%s", sl_topology_get_str(t, "reward", "custom_rm_path"));
        const char *sym = SL_REWARD_PLUGIN_DEFAULT_SYMBOL;
        char *colon = strrchr(file, ':');
        if (colon && !strchr(colon, '/')) {
            *colon = 0;
            sym = colon + 1;
        }
        a->dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
        if (!a->dl) {
            sl_actor_log(ctx, SL_LOG_ERROR, "custom_rm_path: cannot load %s: %s", file, dlerror());
            return SL_EINVAL;
        }
        a->fn = (sl_reward_plugin_fn)(uintptr_t)dlsym(a->dl, sym);
        if (!a->fn) {
            sl_actor_log(ctx, SL_LOG_ERROR, "custom_rm_path: %s has no symbol %s", file, sym);
            return SL_EINVAL;
        }
#ifdef SL_ASAN_BUILD
        sl_actor_log(ctx, SL_LOG_WARN, "built with AddressSanitizer: reward_memory_mb not enforced");
#endif
        if (pthread_create(&a->thr, NULL, score_thread, a) != 0) return SL_EIO;
        a->thr_started = 1;
        sl_actor_log(ctx, SL_LOG_INFO, "reward plugin %s:%s in a worker process: %d ms per sample, "
                     "%d CPU s per call, %ld MiB address space, %d retries", file, sym,
                     a->timeout_ms, a->cpu_s, a->mem_mb, a->retries);
    } else if (strcmp(a->rm_type, "remote") == 0) {
        a->mode = MODE_REMOTE;
        snprintf(a->remote, sizeof a->remote, "%s", sl_topology_get_str(t, "reward", "remote_actor"));
        if (!a->remote[0]) {
            sl_actor_log(ctx, SL_LOG_ERROR, "rm_type remote needs [reward] remote_actor");
            return SL_EINVAL;
        }
        sl_actor_log(ctx, SL_LOG_INFO, "remote reward actor %s: %d ms per attempt, %d retries, backoff %d ms",
                     a->remote, a->timeout_ms, a->retries, a->backoff_ms);
    } else {
        a->mode = MODE_BUILTIN;
        if (!sl_reward_find(strncmp(a->rm_type, "boxed_", 6) == 0 ? a->rm_type + 6 : a->rm_type)) {
            sl_actor_log(ctx, SL_LOG_ERROR, "unknown rm_type %s", a->rm_type);
            return SL_EINVAL;
        }
    }
    sl_actor_set_tick(ctx, a->mode == MODE_BUILTIN ? 0 : 5);
    sl_actor_log(ctx, SL_LOG_INFO, "reward %s (consumer %u) -> %s", a->rm_type, a->consumer, a->buffer_name);
    a->started = true;
    return SL_OK;
}

/* A failed init releases what it built (the runtime calls fini only after
 * a successful one). */
static sl_err reward_init(sl_actor_ctx *ctx, void **state) {
    sl_err e = reward_init_state(ctx, state);
    if (e != SL_OK && *state) {
        reward_fini(*state, ctx);
        *state = NULL;
    }
    return e;
}

static sl_err reward_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    reward_actor *a = state;
    (void)ctx;
    if (m->type == SL_MSG_SAMPLES) return on_samples(a, m);
    if (a->mode == MODE_REMOTE && (m->flags & SL_FLAG_REPLY)) {
        on_reward_reply(a, m);
        return SL_OK;
    }
    a->n_bad_msgs++;
    return SL_OK;
}

static sl_err reward_tick(void *state, sl_actor_ctx *ctx) {
    reward_actor *a = state;
    (void)ctx;
    if (a->mode == MODE_CUSTOM) {
        pthread_mutex_lock(&a->mu);
        job *j = a->done_head;
        a->done_head = a->done_tail = NULL;
        pthread_mutex_unlock(&a->mu);
        while (j) {
            job *nx = j->next;
            send_scored(a, j);
            job_free(j);
            j = nx;
        }
    } else if (a->mode == MODE_REMOTE) {
        remote_finish_ready(a, true);
    }
    return SL_OK;
}

static void free_list(job *j) {
    while (j) {
        job *nx = j->next;
        job_free(j);
        j = nx;
    }
}

static void reward_fini(void *state, sl_actor_ctx *ctx) {
    reward_actor *a = state;
    if (!a) return;
    if (a->started)
        sl_actor_log(ctx, SL_LOG_INFO,
                 "stopping: groups %llu, scored %llu, failed %llu (timeouts %llu, crashes %llu, retries %llu)",
                 (unsigned long long)a->n_groups, (unsigned long long)a->n_scored,
                 (unsigned long long)a->n_failed, (unsigned long long)a->n_timeouts,
                 (unsigned long long)a->n_crashes, (unsigned long long)a->n_retries);
    if (a->thr_started) {
        pthread_mutex_lock(&a->mu);
        a->quit = 1;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        /* end a plugin call in flight now (the thread sees the worker die) */
        pid_t p = __atomic_load_n(&a->w.pid, __ATOMIC_SEQ_CST);
        if (p > 0) kill(p, SIGKILL);
        pthread_join(a->thr, NULL);
    }
    worker_stop(a);
    free_list(a->todo_head);
    free_list(a->done_head);
    free_list(a->remote_jobs);
    sl_shm_view_close(a->view);
    sl_tokenizer_free(a->tok);
    if (a->dl) dlclose(a->dl);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}

const sl_actor_ops sl_reward_ops = {
    .name = "reward",
    .init = reward_init,
    .handle = reward_handle,
    .tick = reward_tick,
    .tick_ms = 0,
    .fini = reward_fini,
};
