/*
 * wf_plugin.c — the built-in driver of [rollout]
 * custom_generate_function_path (workflow_plugin.h), run as a workflow
 * actor by bin/slime-wf-plugin.
 *
 * Threads: the actor's own thread owns the mailbox (PROMPTS in, GENERATE
 * out, GENERATED in, WF_SAMPLE out). A pool of SL_GEN_PLUGIN_THREADS
 * workers runs the user's hook, one sample at a time each. A worker's
 * generate() posts its request on its job and waits; the actor thread
 * (tick every 2 ms and on every message) sends it with sl_gen_send, and on
 * the GENERATED wakes the worker. One mutex guards all shared state.
 */
#include "wf_plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gen_client.h"
#include "rl_common.h"
#include "rl_msg.h"
#include "tokenizer.h"
#include "workflow.h"
#include "workflow_plugin.h"

#define GEN_RESEND_MS 60000
#define MAX_METRICS 8

enum { J_QUEUED, J_RUNNING, J_DONE, J_SENT };     /* job state */
enum { G_IDLE, G_WANT, G_SENT, G_ANSWERED };      /* generate() state */

struct pgroup;

typedef struct pjob {
    sl_gen_plugin_sample api; /* first: the hook's pointer is the job's */
    struct pgroup *g;
    int state, rc;
    int32_t *resp;
    uint8_t *mask;
    float *lp;
    uint32_t n, cap;
    int have_reward;
    double reward;
    char *meta;
    char mname[MAX_METRICS][48];
    double mval[MAX_METRICS];
    int n_metrics;
    uint64_t wv;
    int have_wv;
    /* generate() in flight */
    int gstate, gen_rc;
    sl_gen_call call;
    int32_t *call_ids;
    const char *stop[8];
    uint64_t corr;
    int64_t sent_ms;
    sl_gen_result res;
} pjob;

typedef struct pgroup {
    struct pgroup *next;
    sl_wf_prompts p;
    pjob *j; /* (p.n) */
} pgroup;

typedef struct wf_plugin {
    sl_actor_ctx *ctx;
    sl_tokenizer *tok;
    void *dl;
    sl_custom_generate_fn fn;
    sl_wf_engines eng;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th[SL_GEN_PLUGIN_THREADS];
    int n_th, stop;
    pgroup *groups;
    uint64_t next_rid;
    uint64_t n_samples, n_failed, n_refused, n_gen, n_obs;
} wf_plugin;

/* ------------------------------------------------------------ callbacks (worker threads) */

static wf_plugin *W(const sl_gen_plugin_sample *s) { return s ? (wf_plugin *)s->driver : NULL; }

static int cb_generate(const sl_gen_plugin_sample *s, const int32_t *ids, int n, const sl_gen_plugin_params *p,
                       sl_gen_plugin_out *out) {
    wf_plugin *w = W(s);
    pjob *j = (pjob *)s;
    if (!w || !ids || n < 1 || !p || !out || p->n_stop < 0 || p->n_stop > 8) return -1;
    memset(out, 0, sizeof *out);
    int budget = s->max_new_tokens - (int)j->n;
    if (budget < 1) return -2;
    int32_t *copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return -3;
    memcpy(copy, ids, (size_t)n * sizeof *copy);
    pthread_mutex_lock(&w->mu);
    sl_gen_result_fini(&j->res);
    free(j->call_ids);
    j->call_ids = copy;
    sl_gen_call_default(&j->call);
    j->call.prompt = copy;
    j->call.prompt_len = n;
    j->call.max_tokens = p->max_tokens < 1 || p->max_tokens > budget ? budget : p->max_tokens;
    j->call.temperature = p->temperature;
    j->call.top_p = p->top_p;
    j->call.top_k = p->top_k;
    for (int i = 0; i < p->n_stop; i++) j->stop[i] = p->stop[i];
    j->call.stop = p->n_stop ? j->stop : NULL;
    j->call.n_stop = p->n_stop;
    j->call.seed = p->seed;
    j->gstate = G_WANT;
    j->sent_ms = 0;
    while (j->gstate != G_ANSWERED && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
    int rc = w->stop ? -4 : j->gen_rc;
    j->gstate = G_IDLE;
    pthread_mutex_unlock(&w->mu);
    if (rc) return -4;
    out->ids = j->res.ids;
    out->logprobs = j->res.logprobs;
    out->n = j->res.n;
    out->finish = j->res.finish == SL_FINISH_STOP ? 0 : j->res.finish == SL_FINISH_LENGTH ? 1 : 2;
    return 0;
}

static int cb_tokenize(const sl_gen_plugin_sample *s, const char *text, int32_t **ids, size_t *n) {
    wf_plugin *w = W(s);
    if (!w || !text || !ids || !n) return -1;
    pthread_mutex_lock(&w->mu);
    int rc = sl_tokenizer_encode(w->tok, text, strlen(text), ids, n);
    pthread_mutex_unlock(&w->mu);
    return rc ? -1 : 0;
}

static int cb_detokenize(const sl_gen_plugin_sample *s, const int32_t *ids, size_t n, char **text) {
    wf_plugin *w = W(s);
    if (!w || (!ids && n) || !text) return -1;
    size_t tl = 0;
    pthread_mutex_lock(&w->mu);
    int rc = sl_tokenizer_decode(w->tok, ids, n, 1, text, &tl);
    pthread_mutex_unlock(&w->mu);
    return rc ? -1 : 0;
}

static int cb_append(const sl_gen_plugin_sample *s, const int32_t *ids, const float *lp, size_t n, int mask) {
    pjob *j = (pjob *)s;
    if (!s || (!ids && n) || (mask != 0 && mask != 1) || (mask && !lp && n)) return -1;
    if ((uint64_t)j->n + n > (uint64_t)s->max_new_tokens) return -2;
    if (j->n + n > j->cap) {
        uint32_t cap = j->n + (uint32_t)n + 64;
        int32_t *a = realloc(j->resp, cap * sizeof *a);
        if (!a) return -3;
        j->resp = a;
        uint8_t *m = realloc(j->mask, cap);
        if (!m) return -3;
        j->mask = m;
        float *l = realloc(j->lp, cap * sizeof *l);
        if (!l) return -3;
        j->lp = l;
        j->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        j->resp[j->n] = ids[i];
        j->mask[j->n] = (uint8_t)mask;
        float v = mask ? lp[i] : 0.f;
        j->lp[j->n++] = !isfinite(v) || v > 0 ? 0.f : v;
    }
    return 0;
}

static uint32_t cb_response_len(const sl_gen_plugin_sample *s) { return s ? ((const pjob *)s)->n : 0; }
static const int32_t *cb_response(const sl_gen_plugin_sample *s) { return s ? ((const pjob *)s)->resp : NULL; }

static int cb_set_reward(const sl_gen_plugin_sample *s, double r) {
    if (!s || !isfinite(r)) return -1;
    ((pjob *)s)->reward = r, ((pjob *)s)->have_reward = 1;
    return 0;
}

static int cb_set_metadata(const sl_gen_plugin_sample *s, const char *json) {
    pjob *j = (pjob *)s;
    if (!s || !json || strlen(json) > 4000) return -1;
    char *c = strdup(json);
    if (!c) return -3;
    free(j->meta);
    j->meta = c;
    return 0;
}

static int cb_set_metric(const sl_gen_plugin_sample *s, const char *name, double v) {
    pjob *j = (pjob *)s;
    if (!s || !name || !*name || strlen(name) >= 48 || !isfinite(v)) return -1;
    for (int i = 0; i < j->n_metrics; i++)
        if (strcmp(j->mname[i], name) == 0) return j->mval[i] = v, 0;
    if (j->n_metrics >= MAX_METRICS) return -2;
    snprintf(j->mname[j->n_metrics], 48, "%s", name);
    j->mval[j->n_metrics++] = v;
    return 0;
}

static void *worker(void *arg) {
    wf_plugin *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pjob *job = NULL;
        for (pgroup *g = w->groups; g && !job; g = g->next)
            for (uint32_t i = 0; i < g->p.n; i++)
                if (g->j[i].state == J_QUEUED) {
                    job = &g->j[i];
                    break;
                }
        if (!job) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        job->state = J_RUNNING;
        pthread_mutex_unlock(&w->mu);
        int rc = w->fn(&job->api);
        pthread_mutex_lock(&w->mu);
        job->rc = rc;
        job->state = J_DONE;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ------------------------------------------------------------ actor thread */

static void group_free(pgroup *g) {
    for (uint32_t i = 0; g->j && i < g->p.n; i++) {
        pjob *j = &g->j[i];
        free(j->resp), free(j->mask), free(j->lp), free(j->meta), free(j->call_ids);
        sl_gen_result_fini(&j->res);
    }
    free(g->j);
    sl_wf_prompts_fini(&g->p);
    free(g);
}

static void send_sample(wf_plugin *w, pjob *j) {
    pgroup *g = j->g;
    uint32_t n_in = 0;
    for (uint32_t i = 0; i < j->n; i++) n_in += j->mask[i];
    if (j->rc != 0 || n_in == 0) {
        w->n_failed++;
        sl_actor_log(w->ctx, SL_LOG_WARN, "custom generate: group %llu sample %u %s (rc %d): not sent",
                     (unsigned long long)g->p.group, j->api.index, j->rc ? "failed" : "has no model token", j->rc);
        return;
    }
    json_t *tok = json_array(), *mask = json_array(), *lp = json_array(), *met = json_object();
    for (uint32_t i = 0; i < g->p.prompt_len; i++) json_array_append_new(tok, json_integer(g->p.prompt[i]));
    for (uint32_t i = 0; i < j->n; i++) {
        json_array_append_new(tok, json_integer(j->resp[i]));
        json_array_append_new(mask, json_integer(j->mask[i]));
        json_array_append_new(lp, json_real(j->lp[i]));
        w->n_obs += j->mask[i] == 0;
    }
    for (int i = 0; i < j->n_metrics; i++) json_object_set_new(met, j->mname[i], json_real(j->mval[i]));
    json_t *o = json_pack("{s:I,s:s,s:I,s:i,s:I,s:o,s:i,s:o,s:o,s:I,s:o}", "step", (json_int_t)g->p.step, "phase",
                          g->p.eval ? "eval" : "rl", "group", (json_int_t)g->p.group, "index", (int)j->api.index,
                          "sample_id", (json_int_t)j->api.sample_id, "tokens", tok, "prompt_len", (int)g->p.prompt_len,
                          "loss_mask", mask, "logprobs", lp, "weight_version", (json_int_t)j->wv, "metrics", met);
    if (o && j->have_reward) json_object_set_new(o, "reward", json_real(j->reward));
    if (o && j->meta) json_object_set_new(o, "metadata", json_string(j->meta));
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    uint64_t corr = 0;
    int rc = t ? sl_actor_send_corr(w->ctx, g->p.buffer, SL_MSG_WF_SAMPLE, t, strlen(t), &corr) : SL_ENOMEM;
    free(t);
    w->n_samples++;
    if (rc) sl_actor_log(w->ctx, SL_LOG_WARN, "WF_SAMPLE to %s: %s", g->p.buffer, sl_strerror(rc));
}

/* Under the lock: send what the workers asked for, deliver finished samples,
 * free finished groups. */
static void pump(wf_plugin *w) {
    int64_t now = (int64_t)sl_now_ms();
    for (pgroup **pp = &w->groups; *pp;) {
        pgroup *g = *pp;
        uint32_t sent = 0;
        for (uint32_t i = 0; i < g->p.n; i++) {
            pjob *j = &g->j[i];
            if (j->gstate == G_WANT || (j->gstate == G_SENT && now - j->sent_ms > GEN_RESEND_MS)) {
                j->call.rid = ++w->next_rid;
                const char *engine = sl_wf_engine_for(&w->eng, g->p.group, j->api.index);
                int rc = sl_gen_send(sl_actor_mailbox(w->ctx), engine, &j->call, &j->corr);
                j->sent_ms = now;
                w->n_gen++;
                if (rc) {
                    sl_actor_log(w->ctx, SL_LOG_WARN, "GENERATE to %s: %s", engine, sl_strerror(rc));
                    j->gen_rc = rc, j->gstate = G_ANSWERED;
                    pthread_cond_broadcast(&w->cv);
                } else {
                    j->gstate = G_SENT;
                }
            }
            if (j->state == J_DONE) {
                send_sample(w, j);
                j->state = J_SENT;
            }
            sent += j->state == J_SENT;
        }
        if (sent == g->p.n) {
            *pp = g->next;
            group_free(g);
        } else {
            pp = &g->next;
        }
    }
}

static void on_prompts(wf_plugin *w, const sl_msg *m) {
    char why[160];
    pgroup *g = calloc(1, sizeof *g);
    if (!g) return;
    if (sl_wf_prompts_parse(m, &g->p, why, sizeof why) != SL_OK) {
        sl_actor_log(w->ctx, SL_LOG_WARN, "PROMPTS from %s: %s", m->sender, why);
        group_free(g);
        return;
    }
    pthread_mutex_lock(&w->mu);
    for (pgroup *x = w->groups; x; x = x->next)
        if (sl_wf_prompts_same_group(&x->p, &g->p)) {
            pthread_mutex_unlock(&w->mu); /* dispatched again: the first copy is still running */
            group_free(g);
            return;
        }
    pthread_mutex_unlock(&w->mu);
    if (!(g->j = calloc(g->p.n, sizeof *g->j))) {
        group_free(g);
        return;
    }
    const sl_wf_prompts *p = &g->p;
    for (uint32_t i = 0; i < p->n; i++) {
        pjob *j = &g->j[i];
        sl_gen_plugin_sample *a = &j->api;
        j->g = g;
        a->abi_version = SL_GENERATE_PLUGIN_ABI;
        a->index = i, a->n_samples = p->n, a->eval = p->eval, a->step = p->step, a->group_id = p->group;
        a->sample_id = p->sample_ids[i];
        a->seed = p->seed + (uint64_t)i * 7919u;
        a->prompt = p->prompt, a->prompt_len = p->prompt_len, a->label = p->label, a->metadata = p->metadata;
        a->max_new_tokens = (int)p->max_new_tokens;
        a->defaults = (sl_gen_plugin_params){.max_tokens = (int)p->max_new_tokens,
                                             .temperature = (float)p->temperature, .top_p = (float)p->top_p,
                                             .top_k = p->top_k, .seed = a->seed};
        a->generate = cb_generate, a->tokenize = cb_tokenize, a->detokenize = cb_detokenize;
        a->append = cb_append, a->response_len = cb_response_len, a->response = cb_response;
        a->set_reward = cb_set_reward, a->set_metadata = cb_set_metadata, a->set_metric = cb_set_metric;
        a->driver = w;
        j->state = J_QUEUED;
    }
    pthread_mutex_lock(&w->mu);
    g->next = w->groups;
    w->groups = g;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static sl_err wp_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    wf_plugin *w = state;
    (void)ctx;
    if (m->type == SL_MSG_PROMPTS) {
        on_prompts(w, m);
    } else if (m->type == SL_MSG_WF_ACK) {
        json_t *o = NULL;
        if (sl_rl_json_parse(m->payload, m->len, &o, NULL, 0) == 0 && !json_is_true(json_object_get(o, "ok"))) {
            const char *r = "";
            sl_rl_json_str_opt(o, "reason", "", &r);
            w->n_refused++;
            sl_actor_log(w->ctx, SL_LOG_WARN, "the buffer refused a sample: %s", r);
        }
        json_decref(o);
    } else if ((m->flags & SL_FLAG_REPLY) && m->corr) {
        pthread_mutex_lock(&w->mu);
        for (pgroup *g = w->groups; g; g = g->next)
            for (uint32_t i = 0; i < g->p.n; i++) {
                pjob *j = &g->j[i];
                if (j->gstate != G_SENT || j->corr != m->corr) continue;
                sl_gen_result_fini(&j->res);
                j->gen_rc = sl_gen_result_parse(m, &j->res);
                if (j->gen_rc == SL_OK && !j->have_wv) j->wv = j->res.weight_version, j->have_wv = 1;
                j->gstate = G_ANSWERED;
                pthread_cond_broadcast(&w->cv);
                goto found;
            }
    found:
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_lock(&w->mu);
    pump(w);
    pthread_mutex_unlock(&w->mu);
    return SL_OK;
}

static sl_err wp_tick(void *state, sl_actor_ctx *ctx) {
    wf_plugin *w = state;
    (void)ctx;
    pthread_mutex_lock(&w->mu);
    pump(w);
    pthread_mutex_unlock(&w->mu);
    return SL_OK;
}

int sl_wf_plugin_load(const char *spec, void **dl, sl_custom_generate_fn *fn, char *err, size_t errlen) {
    char path[4096];
    const char *sym = SL_CUSTOM_GENERATE_DEFAULT_SYMBOL;
    if (!spec || !*spec || strlen(spec) >= sizeof path) {
        snprintf(err, errlen, "custom_generate_function_path is empty or too long");
        return SL_EINVAL;
    }
    snprintf(path, sizeof path, "%s", spec);
    char *c = strrchr(path, ':');
    if (c && !strchr(c, '/')) {
        *c = 0;
        sym = c + 1;
        if (!*sym) {
            snprintf(err, errlen, "custom_generate_function_path '%s': empty SYMBOL after ':'", spec);
            return SL_EINVAL;
        }
    }
    if (access(path, R_OK) != 0) {
        snprintf(err, errlen, "custom_generate_function_path: %s: %s", path, strerror(errno));
        return SL_EINVAL;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "custom_generate_function_path: %s", dlerror());
        return SL_EINVAL;
    }
    void *f = dlsym(h, sym);
    if (!f) {
        snprintf(err, errlen, "custom_generate_function_path: %s has no symbol '%s'", path, sym);
        dlclose(h);
        return SL_EINVAL;
    }
    *dl = h;
    *(void **)fn = f;
    return SL_OK;
}

static sl_err wp_init(sl_actor_ctx *ctx, void **state) {
    wf_plugin *w = calloc(1, sizeof *w);
    if (!w) return SL_ENOMEM;
    *state = w;
    w->ctx = ctx;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    const sl_topology *t = sl_actor_topology(ctx);
    if (!t) {
        sl_actor_log(ctx, SL_LOG_ERROR, "the plugin driver needs the topology (SL_TOPOLOGY)");
        return SL_EINVAL;
    }
    char err[512];
    const char *spec = sl_topology_get_str(t, "rollout", "custom_generate_function_path");
    if (sl_wf_plugin_load(spec, &w->dl, &w->fn, err, sizeof err) != SL_OK) {
        sl_actor_log(ctx, SL_LOG_ERROR, "%s", err);
        return SL_EINVAL;
    }
    int rc = sl_wf_actor_setup(ctx, "the plugin driver", &w->eng, &w->tok);
    if (rc != SL_OK) return rc;
    for (int i = 0; i < SL_GEN_PLUGIN_THREADS; i++) {
        if (pthread_create(&w->th[i], NULL, worker, w) != 0) break;
        w->n_th++;
    }
    if (w->n_th < 1) return SL_ENOMEM;
    sl_actor_set_tick(ctx, 2);
    sl_actor_log(ctx, SL_LOG_INFO, "custom generate %s: %d engine(s), %d threads", spec, w->eng.n, w->n_th);
    return SL_OK;
}

static void wp_fini(void *state, sl_actor_ctx *ctx) {
    wf_plugin *w = state;
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n_th; i++) pthread_join(w->th[i], NULL);
    sl_actor_log(ctx, SL_LOG_INFO, "stopping: %llu samples sent (%llu mask-0 tokens), %llu failed, %llu refused, %llu GENERATE",
                 (unsigned long long)w->n_samples, (unsigned long long)w->n_obs, (unsigned long long)w->n_failed,
                 (unsigned long long)w->n_refused, (unsigned long long)w->n_gen);
    while (w->groups) {
        pgroup *g = w->groups;
        w->groups = g->next;
        group_free(g);
    }
    sl_tokenizer_free(w->tok);
    /* the library stays loaded: a hook thread that never returned may still run its code */
    free(w);
}

const sl_actor_ops sl_wf_plugin_ops = {
    .name = "wf_plugin",
    .init = wp_init,
    .handle = wp_handle,
    .tick = wp_tick,
    .tick_ms = 2,
    .fini = wp_fini,
};
