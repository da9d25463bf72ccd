/*
 * rollout.c — the `rollout` actor kind: a generation engine (engine.h)
 * behind a mailbox, serving two kinds of work from one continuous batch:
 *
 *   - PROMPTS (one group per message, from the buffer): n samples per
 *     group, written as a sample_batch.h batch into a slot of its own shm
 *     arena, published to a reward instance's consumer id and the buffer's
 *     (SL_RL_CONSUMER_BUFFER), announced with SAMPLES to that reward
 *     instance (round robin);
 *   - the generation service (rl_msg.h GENERATE .. CHAT_TEMPLATED,
 *     PROTOCOL.md §11, client actors/gen_client.h): GENERATE from any
 *     actor, each with its own sampling parameters, seed, stop strings /
 *     stop token ids and optional session, answered with GENERATED (to the
 *     request's corr); ABORT; TOKENIZE / DETOKENIZE / APPLY_CHAT_TEMPLATE
 *     with the model's tokenizer. Every field of every request is checked;
 *     a bad one gets an ERROR reply naming the field. Unknown keys are
 *     refused (a misspelt key must not silently mean its default).
 *
 * Scheduling. The engine's scheduler (engine.h sl_engine_submit/step)
 * holds every sequence: a group's n samples (sharing the prompt's KV by
 * copy) and each GENERATE. The actor's tick runs decode steps for at most
 * STEP_BUDGET_MS, returning to the loop at once when the mailbox has input,
 * so heartbeats, new requests and ABORT are handled between steps and new
 * requests join the running batch. A request's tokens come from its own
 * sampler stream (seed, sequence id 0, token index): the same whatever else
 * shares the batch.
 *
 * Device. `[actor NAME] device = cuda:N` runs the engine on that GPU
 * (sl_engine_new_gpu: bf16 weights, paged KV cache, CUDA graphs, device
 * sampling; same scheduler and semantics, no session cache). Its weights
 * come from a WEIGHTS message's `cuda_ipc` object when the trainer is on
 * the GPU (weights_gpu.h: the trainer's bf16 buffer copied device to
 * device), else from the fp32 `desc` (uploaded).
 *
 * Weights come only from the trainer (WEIGHTS, weights_sync.h); the
 * engine asks WEIGHTS_REQ at start (and again every 2 s until some
 * arrive), and generates nothing before. New weights are applied when no
 * sequence is decoding: while they are pending nothing new is admitted and
 * the batch drains (never a change in the middle of a sequence).
 *
 * Back-pressure: a finished group waits when the arena has no free slot
 * (consumers still hold them); while one waits no new group enters the
 * engine (GENERATE requests still do). A consumer that dies holding slots
 * never releases them; when the arena stays full for FULL_RECLAIM_MS every
 * reward's and the buffer's holds are dropped (logged) and the buffer's
 * rollout timeout dispatches the lost groups again.
 *
 * What it is not: a reward or a scheduler of what to generate (the buffer
 * and the callers decide).
 */
#include "actor.h"
#include "chat.h"
#include "dataset.h"
#include "engine.h"
#include "gen_client.h"
#include "nccl_msg.h"
#include "rl_common.h"
#include "rl_msg.h"
#include "sample_batch.h"
#include "tokenizer.h"
#include "weights_gpu.h"
#include "weights_sync.h"
#include "gpu_engine.h"
#include "gpu_sync.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_SLOTS 64
#define FULL_RECLAIM_MS 60000 /* arena full this long: consumers are gone */
#define STEP_BUDGET_MS 20     /* decode work per tick before the mailbox is looked at */
#define PREFILL_BUDGET 512    /* prompt tokens prefilled per step (at least one sequence) */

enum { REF_GROUP = 1, REF_GEN = 2 };

/* One sample of a PROMPTS group in the engine (engine user pointer). */
typedef struct gref {
    int kind; /* REF_GROUP */
    struct group *g;
    int j;
} gref;

typedef struct group {
    int64_t step;
    bool eval;
    uint64_t group_id;
    int32_t *prompt;
    int prompt_len;
    int n;
    uint64_t *ids;
    uint64_t seed;
    char *label, *metadata;
    sl_gen_params gp;
    gref *refs;         /* (n) */
    sl_gen_sample *res; /* (n) results; tokens/logprobs owned */
    int n_done;
    struct group *next;
} group;

/* One GENERATE in flight (engine user pointer). */
typedef struct greq {
    int kind; /* REF_GEN */
    char sender[SL_MB_NAME_MAX];
    uint64_t corr;
    uint32_t flags;
    uint64_t rid;
    uint64_t handle;
    int prompt_len;
    char *stop[SL_GEN_MAX_STOP];
    int n_stop;
    int window; /* tokens decoded to look for a stop string */
    struct rollout *ro;
    struct greq *next;
} greq;

typedef struct rollout {
    sl_model *model;
    sl_engine *engine;
    int max_seq_len;
    int32_t vocab;
    float *scratch; /* n_params: weights copied here, then loaded */
    sl_weights_sub *sub;
    bool have_weights;
    bool pending_w;
    bool pending_has_desc;
    sl_shm_desc pending_desc;
    json_t *pending_ipc;    /* cuda_ipc object of the pending WEIGHTS (GPU engine) */
    uint64_t pending_ver;
    bool gpu;               /* device = cuda:N */
    sl_wgpu_sub *wsub;      /* CUDA IPC subscriber (GPU engine) */
    /* weights by NCCL broadcast from trainer rank 0 (group "weights", a
     * GPU on another GPU than the trainer's): the join (heap: a join
     * blocked on a group that died is left to its thread), the
     * communicator, the receive buffer the engine reads in place */
    bool wbc;
    sl_ncjoin *wj;
    sl_nccl *wnc;
    int64_t wepoch;         /* of wnc; 0: none */
    void *wbuf;
    size_t wbuf_bytes, pending_nccl_bytes;
    bool pending_nccl;
    size_t bc_bucket;
    uint64_t last_req_ms;
    sl_shm_arena *arena;
    size_t slot_bytes;
    const sl_actor_spec *rewards[SL_RL_MAX_INSTANCES];
    int n_rewards, rr;
    const sl_actor_spec *buffer, *trainer;
    group *q_head, *q_tail; /* groups not yet in the engine */
    int n_queued;
    group *in_engine;       /* groups whose samples are in the engine */
    group *ready;           /* finished groups waiting for an arena slot */
    /* generation service */
    sl_tokenizer *tok;
    sl_chat_format chat;
    greq *gens;             /* in flight */
    int n_gens, max_inflight;
    int32_t eos[SL_ENGINE_MAX_STOP];
    int n_eos;
    /* counters */
    uint64_t full_since_ms; /* the arena has been full since (0: not full) */
    uint64_t bad_prompts, groups_done, samples_done, waits_full, send_fail, reclaims;
    uint64_t gen_ok, gen_refused, gen_aborted, reply_fail;
} rollout;

static void group_free(group *g) {
    if (!g) return;
    if (g->res)
        for (int j = 0; j < g->n; j++) {
            free((void *)g->res[j].tokens);
            free((void *)g->res[j].logprobs);
        }
    free(g->res);
    free(g->refs);
    free(g->prompt);
    free(g->ids);
    free(g->label);
    free(g->metadata);
    free(g);
}

static void free_list(group *g) {
    while (g) {
        group *n = g->next;
        group_free(g);
        g = n;
    }
}

static void greq_free(greq *r) {
    if (!r) return;
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r);
}

/* ============================================================ weights */

static void ask_weights(rollout *ro, sl_actor_ctx *ctx) {
    ro->last_req_ms = sl_now_ms();
    if (!ro->trainer) return;
    char body[64] = "{}";
    if (ro->wbc) snprintf(body, sizeof body, "{\"nccl_epoch\": %lld}", (long long)ro->wepoch);
    int e = sl_actor_send(ctx, ro->trainer->name, SL_MSG_WEIGHTS_REQ, body, strlen(body));
    if (e) sl_actor_log(ctx, SL_LOG_DEBUG, "WEIGHTS_REQ: %s", sl_strerror(e));
}

/* Apply the pending weights once no sequence is decoding (the scheduler
 * admits nothing while weights are pending, so the batch drains). */
static void apply_pending(rollout *ro, sl_actor_ctx *ctx) {
    if (!ro->pending_w) return;
    sl_engine_sched_stats st;
    sl_engine_sched_stats_get(ro->engine, &st);
    if (st.n_active > 0) return;
    ro->pending_w = false;
    size_t n = ro->model->n_params;
    uint64_t v = 0;
    int e;
    if (ro->pending_nccl && !ro->wnc) {
        ro->pending_w = true; /* the join ends first (poll_nccl_join) */
        return;
    }
    if (ro->pending_nccl) {
        /* receive the broadcast into our buffer; the engine reads it in
         * place (the next one comes only while nothing decodes, as now) */
        ro->pending_nccl = false;
        v = ro->pending_ver;
        size_t b = ro->pending_nccl_bytes;
        if (!ro->wbuf || ro->wbuf_bytes != b) {
            sl_gpu_free(ro->wbuf);
            ro->wbuf = sl_gpu_alloc(b);
            ro->wbuf_bytes = ro->wbuf ? b : 0;
        }
        e = ro->wbuf ? sl_nccl_broadcast(ro->wnc, ro->wbuf, b, 0, ro->bc_bucket, NULL) : SL_ENOMEM;
        if (!e) e = sl_engine_set_weights_device(ro->engine, ro->wbuf, b, v, 0);
        if (e) {
            /* the group is broken (the trainer is gone): wait for its next id */
            sl_actor_log(ctx, SL_LOG_WARN, "weights v%llu by NCCL: %s", (unsigned long long)v, sl_strerror(e));
            sl_nccl_free(ro->wnc);
            ro->wnc = NULL;
            ro->wepoch = 0;
            return;
        }
    } else if (ro->pending_ipc) {
        /* the trainer's bf16 device buffer: one device-to-device copy */
        char why[256] = "";
        const void *dp = NULL;
        json_t *ipc = ro->pending_ipc;
        ro->pending_ipc = NULL;
        v = ro->pending_ver;
        e = sl_wgpu_sub_pull(ro->wsub, ipc, NULL, 0, &dp, why, sizeof why);
        if (!e) {
            json_int_t b = json_integer_value(json_object_get(ipc, "bytes"));
            e = sl_engine_set_weights_device(ro->engine, dp, (size_t)b, v, 1);
        }
        json_decref(ipc);
        if (e && why[0]) sl_actor_log(ctx, SL_LOG_WARN, "cuda_ipc weights: %s", why);
    } else {
        e = sl_weights_sub_apply(ro->sub, &ro->pending_desc, ro->scratch, n, &v);
        if (!e && v != ro->pending_ver) e = SL_EPROTO;
        if (!e) e = sl_engine_load_weights(ro->engine, ro->scratch, n, v);
    }
    if (e) {
        sl_actor_log(ctx, SL_LOG_WARN, "weights v%llu not applied: %s%s",
                     (unsigned long long)ro->pending_ver, sl_strerror(e),
                     e == SL_ESTALE ? " (superseded)" : "; asking again");
        if (e != SL_ESTALE || !ro->have_weights) ask_weights(ro, ctx);
        return;
    }
    ro->have_weights = true;
    sl_actor_log(ctx, SL_LOG_DEBUG, "weights v%llu applied", (unsigned long long)v);
}

static void on_weights(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m) {
    json_t *o;
    char why[256];
    sl_shm_desc d;
    uint64_t v;
    if (sl_rl_json_parse(m->payload, m->len, &o, why, sizeof why)) {
        sl_actor_log(ctx, SL_LOG_WARN, "bad WEIGHTS from %s: %s", m->sender, why);
        return;
    }
    bool has_desc = !sl_rl_json_desc(o, &d);
    json_t *nc = ro->wbc ? json_object_get(o, "nccl") : NULL;
    if (nc) {
        json_t *je = json_object_get(nc, "epoch"), *jb = json_object_get(nc, "bytes");
        size_t want = 0;
        sl_geng_weights(sl_engine_gpu(ro->engine), &want);
        int bad_n = !json_is_integer(je) || !json_is_integer(jb) || json_integer_value(jb) <= 0 ||
                    (size_t)json_integer_value(jb) != want || sl_rl_json_u64(o, "weight_version", &v);
        /* the group we are in, or the one we are joining (the trainer may
         * see the group up before our join thread reports it) */
        int64_t ep = json_is_integer(je) ? (int64_t)json_integer_value(je) : -1;
        bool ours = (ro->wnc && ep == ro->wepoch) || (ro->wj && ep == ro->wj->epoch);
        if (bad_n || !ours) {
            sl_actor_log(ctx, SL_LOG_WARN, "WEIGHTS by NCCL from %s %s", m->sender,
                         bad_n ? "malformed (epoch, bytes of this engine's weights, weight_version)"
                               : "for another group epoch: ignored");
            json_decref(o);
            return;
        }
        ro->pending_nccl_bytes = (size_t)json_integer_value(jb);
        json_decref(o);
        if (ro->pending_w && ro->pending_has_desc) sl_weights_sub_drop(ro->sub, &ro->pending_desc);
        json_decref(ro->pending_ipc);
        ro->pending_ipc = NULL;
        ro->pending_has_desc = false;
        ro->pending_w = ro->pending_nccl = true;
        ro->pending_ver = v;
        apply_pending(ro, ctx);
        return;
    }
    json_t *ipc = ro->gpu ? json_object_get(o, "cuda_ipc") : NULL;
    if (ipc) {
        sl_wgpu_ref ref;
        if (sl_wgpu_parse(ipc, 0, &ref, why, sizeof why)) {
            sl_actor_log(ctx, SL_LOG_WARN, "bad WEIGHTS from %s: %s", m->sender, why);
            ipc = NULL; /* the fp32 desc, if any, still serves */
        }
    }
    int bad = sl_rl_json_u64(o, "weight_version", &v) || (!has_desc && !ipc);
    if (ipc) json_incref(ipc);
    json_decref(o);
    if (bad) {
        sl_actor_log(ctx, SL_LOG_WARN, "bad WEIGHTS from %s: fields", m->sender);
        json_decref(ipc);
        return;
    }
    if (ro->pending_w && ro->pending_has_desc)
        sl_weights_sub_drop(ro->sub, &ro->pending_desc); /* superseded */
    json_decref(ro->pending_ipc);
    ro->pending_ipc = NULL;
    if (ipc && has_desc) sl_weights_sub_drop(ro->sub, &d), has_desc = false; /* device path */
    ro->pending_w = true;
    ro->pending_has_desc = has_desc;
    if (has_desc) ro->pending_desc = d;
    ro->pending_ipc = ipc;
    ro->pending_ver = v;
    apply_pending(ro, ctx);
}

/* NCCL_ID (group "weights") from the trainer: join the new group (the
 * old one, if any, is torn down: its trainer restarted or rebuilt it). */
static void on_nccl_id(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m) {
    sl_nccl_id_msg im;
    char why[256];
    if (!ro->wbc || !ro->trainer || strcmp(m->sender, ro->trainer->name) != 0) {
        sl_actor_log(ctx, SL_LOG_WARN, "NCCL_ID from %s: not for this rollout: ignored", m->sender);
        return;
    }
    if (sl_nccl_id_msg_decode(m->payload, m->len, &im, why, sizeof why) || strcmp(im.group, "weights")) {
        sl_actor_log(ctx, SL_LOG_WARN, "NCCL_ID from %s refused: %s", m->sender,
                     strcmp(im.group, "weights") ? "not group weights" : why);
        return;
    }
    if ((ro->wnc && im.epoch == ro->wepoch) || (ro->wj && im.epoch == ro->wj->epoch)) return; /* a resend */
    if (ro->wnc) {
        sl_nccl_abort(ro->wnc);
        sl_nccl_free(ro->wnc);
        ro->wnc = NULL;
        ro->wepoch = 0;
    }
    if (ro->wj) { /* an older join: reap it, or leave it to its thread */
        sl_ncjoin_fini(ro->wj);
        if (!ro->wj->started) free(ro->wj);
        ro->wj = NULL;
    }
    sl_ncjoin *j = calloc(1, sizeof *j);
    if (!j) return;
    const sl_actor_spec *self = sl_actor_spec_self(ctx);
    snprintf(j->group, sizeof j->group, "weights");
    j->nranks = im.nranks, j->rank = im.rank, j->epoch = im.epoch;
    j->device = self ? self->cuda_device : 0;
    memcpy(j->id, im.id, sizeof j->id);
    if (sl_ncjoin_start(j)) {
        sl_actor_log(ctx, SL_LOG_ERROR, "weights group: %s", j->err);
        free(j);
        return;
    }
    ro->wj = j;
    sl_actor_set_tick(ctx, 50);
}

/* Tick: the join's end. */
static void poll_nccl_join(rollout *ro, sl_actor_ctx *ctx) {
    if (!ro->wj) return;
    sl_nccl *c = NULL;
    int r = sl_ncjoin_poll(ro->wj, &c);
    if (r == 0) return;
    if (r < 0) {
        sl_actor_log(ctx, SL_LOG_WARN, "weights group (epoch %lld): %s", (long long)ro->wj->epoch, ro->wj->err);
    } else {
        ro->wnc = c;
        ro->wepoch = ro->wj->epoch;
        sl_actor_log(ctx, SL_LOG_INFO, "weights group (epoch %lld) joined: weights by NCCL broadcast, rank %d of %d",
                     (long long)ro->wepoch, ro->wj->rank, ro->wj->nranks);
    }
    free(ro->wj);
    ro->wj = NULL;
    if (ro->pending_nccl && !ro->wnc) ro->pending_w = ro->pending_nccl = false; /* that group failed */
    apply_pending(ro, ctx);
}

/* ============================================================ prompts */

static int parse_prompts(rollout *ro, const json_t *o, group **out, char *why, size_t wl) {
    group *g = calloc(1, sizeof *g);
    if (!g) return SL_ENOMEM;
    uint64_t step = 0, n = 0, gid = 0, seed = 0, top_k_u = 0, mnt = 0;
    int64_t top_k = 0;
    double temp, top_p;
    const char *phase, *label, *meta;
    json_t *pr = json_object_get(o, "prompt"), *ids = json_object_get(o, "sample_ids");
    (void)top_k_u;
    if (sl_rl_json_u64_opt(o, "step", 0, &step) || sl_rl_json_u64(o, "group", &gid) ||
        sl_rl_json_u64(o, "n", &n) || n < 1 || n > SL_SAMPLE_MAX_GROUP ||
        sl_rl_json_u64_opt(o, "seed", 0, &seed) || sl_rl_json_str_opt(o, "phase", "rl", &phase) ||
        (strcmp(phase, "rl") && strcmp(phase, "eval")) ||
        sl_rl_json_dbl_opt(o, "temperature", 1.0, &temp) || temp < 0 || temp > 100 ||
        sl_rl_json_dbl_opt(o, "top_p", 1.0, &top_p) || !(top_p > 0 && top_p <= 1) ||
        sl_rl_json_i64_opt(o, "top_k", 0, &top_k) || top_k < -1 ||
        sl_rl_json_u64_opt(o, "max_new_tokens", 256, &mnt) || mnt < 1 ||
        sl_rl_json_str_opt(o, "label", NULL, &label) ||
        sl_rl_json_str_opt(o, "metadata", NULL, &meta) || !json_is_array(pr) ||
        !json_is_array(ids) || json_array_size(ids) != n || json_array_size(pr) < 1) {
        snprintf(why, wl, "missing or bad fields");
        goto bad;
    }
    size_t pl = json_array_size(pr);
    if ((int)pl >= ro->max_seq_len) {
        snprintf(why, wl, "prompt of %zu tokens (engine holds %d)", pl, ro->max_seq_len);
        goto bad;
    }
    g->prompt = malloc(pl * sizeof *g->prompt);
    g->ids = malloc(n * sizeof *g->ids);
    if (!g->prompt || !g->ids) goto nomem;
    for (size_t i = 0; i < pl; i++) {
        json_t *v = json_array_get(pr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= ro->vocab) {
            snprintf(why, wl, "prompt token %zu out of the vocabulary", i);
            goto bad;
        }
        g->prompt[i] = (int32_t)json_integer_value(v);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            sl_sample_prompt_id((uint64_t)json_integer_value(v)) != gid) {
            snprintf(why, wl, "sample id %zu not of group %llu", i, (unsigned long long)gid);
            goto bad;
        }
        g->ids[i] = (uint64_t)json_integer_value(v);
    }
    if ((label && strlen(label) >= SL_BATCH_MAX_STR) || (meta && strlen(meta) >= SL_BATCH_MAX_STR)) {
        snprintf(why, wl, "label or metadata too long");
        goto bad;
    }
    if (label && !(g->label = strdup(label))) goto nomem;
    if (meta && !(g->metadata = strdup(meta))) goto nomem;
    g->prompt_len = (int)pl;
    g->n = (int)n;
    g->step = (int64_t)step;
    g->eval = strcmp(phase, "eval") == 0;
    g->group_id = gid;
    g->seed = seed;
    sl_gen_params_default(&g->gp);
    g->gp.temperature = (float)temp;
    g->gp.top_p = (float)top_p;
    g->gp.top_k = top_k < 0 ? 0 : (int)top_k;
    int room = ro->max_seq_len - (int)pl;
    g->gp.max_new_tokens = (int)(mnt < (uint64_t)room ? mnt : (uint64_t)room);
    const sl_hf_config *c = &ro->model->cfg;
    for (int i = 0; i < c->n_eos && i < SL_ENGINE_MAX_STOP; i++)
        g->gp.stop_token_ids[g->gp.n_stop_token_ids++] = c->eos_token_ids[i];
    *out = g;
    return SL_OK;
nomem:
    group_free(g);
    snprintf(why, wl, "out of memory");
    return SL_ENOMEM;
bad:
    group_free(g);
    return SL_EINVAL;
}

/* Write finished group G into a slot and send SAMPLES.
 * SL_EFULL: no free slot now (try again later). */
static int publish_group(rollout *ro, sl_actor_ctx *ctx, const group *g) {
    const sl_gen_sample *s = g->res;
    sl_batch_dims dims = {.n_samples = (uint32_t)g->n, .flags = SL_BATCH_HAS_LOGPROBS};
    int maxlen = 0;
    for (int i = 0; i < g->n; i++) {
        dims.n_tokens += (uint64_t)(g->prompt_len + s[i].n_tokens);
        dims.meta_bytes += sl_batch_meta_bytes(g->label, g->metadata);
        if (g->prompt_len + s[i].n_tokens > maxlen) maxlen = g->prompt_len + s[i].n_tokens;
    }
    size_t size;
    int e = sl_batch_size(&dims, &size);
    if (e || size > ro->slot_bytes) {
        sl_actor_log(ctx, SL_LOG_ERROR, "group %llu: batch of %zu bytes does not fit a slot (%zu): dropped",
                     (unsigned long long)g->group_id, size, ro->slot_bytes);
        return SL_ERANGE;
    }
    void *ptr;
    uint32_t slot;
    e = sl_shm_slot_acquire(ro->arena, &ptr, &slot);
    if (e) return e;
    int32_t *tok = malloc((size_t)maxlen * sizeof *tok);
    float *lp = malloc((size_t)maxlen * sizeof *lp);
    if (!tok || !lp) {
        free(tok);
        free(lp);
        sl_shm_slot_cancel(ro->arena, slot);
        return SL_ENOMEM;
    }
    sl_batch_writer w;
    uint64_t version = s[0].weight_version;
    e = sl_batch_writer_init(&w, ptr, ro->slot_bytes, &dims, version, (uint64_t)g->step, ro->vocab);
    for (int i = 0; !e && i < g->n; i++) {
        memcpy(tok, g->prompt, (size_t)g->prompt_len * sizeof *tok);
        memcpy(tok + g->prompt_len, s[i].tokens, (size_t)s[i].n_tokens * sizeof *tok);
        memset(lp, 0, (size_t)g->prompt_len * sizeof *lp);
        for (int k = 0; k < s[i].n_tokens; k++) {
            float v = s[i].logprobs[k];
            lp[g->prompt_len + k] = isfinite(v) ? (v > 0 ? 0 : v) : -1e4f;
        }
        uint32_t fl = g->eval ? SL_SAMPLE_EVAL : 0;
        if (s[i].finish == SL_FINISH_LENGTH) fl |= SL_SAMPLE_TRUNCATED;
        if (s[i].finish == SL_FINISH_ABORT) fl |= SL_SAMPLE_ABORTED;
        sl_batch_sample_in in = {.tokens = tok, .n_tokens = (uint32_t)(g->prompt_len + s[i].n_tokens),
                                 .prompt_len = (uint32_t)g->prompt_len, .logprobs = lp,
                                 .sample_id = s[i].sample_id,
                                 .group_id = sl_sample_prompt_id(s[i].sample_id),
                                 .weight_version = s[i].weight_version, .flags = fl,
                                 .label = g->label, .metadata = g->metadata};
        e = sl_batch_writer_add(&w, &in);
    }
    size_t len = 0;
    if (!e) e = sl_batch_writer_finish(&w, &len);
    free(tok);
    free(lp);
    if (e) {
        sl_shm_slot_cancel(ro->arena, slot);
        sl_actor_log(ctx, SL_LOG_ERROR, "group %llu: cannot write the batch: %s: dropped",
                     (unsigned long long)g->group_id, sl_strerror(e));
        return SL_EINVAL;
    }
    int ri = ro->rr++ % ro->n_rewards;
    unsigned rcid = SL_RL_CONSUMER_REWARD_BASE + (unsigned)ro->rewards[ri]->index;
    sl_shm_desc d;
    e = sl_shm_slot_publish_mask(ro->arena, slot, len, (1u << rcid) | (1u << SL_RL_CONSUMER_BUFFER), &d);
    if (e) {
        sl_shm_slot_cancel(ro->arena, slot);
        return e;
    }
    char hex[SL_RL_DESC_HEX_LEN + 1];
    sl_rl_desc_to_hex(&d, hex);
    json_t *o = json_pack("{s:s, s:I, s:s, s:I, s:I, s:{s:i, s:i}}", "desc", hex, "step",
                          (json_int_t)g->step, "phase", g->eval ? "eval" : "rl", "group",
                          (json_int_t)g->group_id, "weight_version", (json_int_t)version,
                          "consumers", "reward", (int)rcid, "buffer", (int)SL_RL_CONSUMER_BUFFER);
    sl_fault_point("rollout_generate"); /* faults.h */
    e = sl_rl_json_send(ctx, ro->rewards[ri]->name, SL_MSG_SAMPLES, o);
    json_decref(o);
    if (e) {
        ro->send_fail++;
        sl_actor_log(ctx, SL_LOG_WARN, "SAMPLES for group %llu to %s not sent: %s",
                     (unsigned long long)g->group_id, ro->rewards[ri]->name, sl_strerror(e));
    }
    ro->groups_done++;
    ro->samples_done += (uint64_t)g->n;
    return SL_OK;
}

/* ============================================================ groups */

/* Move queued groups into the engine while no finished group waits for a
 * slot and no weights are pending (bounded by the engine's queue). */
static void feed_groups(rollout *ro, sl_actor_ctx *ctx) {
    while (ro->q_head && !ro->ready && !ro->pending_w && ro->have_weights) {
        sl_engine_sched_stats st;
        sl_engine_sched_stats_get(ro->engine, &st);
        if (st.n_waiting >= 256) return;
        group *g = ro->q_head;
        g->refs = calloc((size_t)g->n, sizeof *g->refs);
        g->res = calloc((size_t)g->n, sizeof *g->res);
        int e = (g->refs && g->res) ? SL_OK : SL_ENOMEM;
        for (int j = 0; !e && j < g->n; j++) {
            g->refs[j] = (gref){.kind = REF_GROUP, .g = g, .j = j};
            sl_engine_seq_req r = {.prompt = g->prompt, .prompt_len = g->prompt_len,
                                   .params = g->gp, .seed = g->seed, .seq_id = g->ids[j],
                                   .share_key = g->group_id + 1, .user = &g->refs[j]};
            e = sl_engine_submit(ro->engine, &r, NULL);
        }
        ro->q_head = g->next;
        if (!ro->q_head) ro->q_tail = NULL;
        ro->n_queued--;
        if (e) {
            /* only possible before any sample went in (the prompt was checked) */
            sl_actor_log(ctx, SL_LOG_ERROR, "group %llu not generated: %s", (unsigned long long)g->group_id,
                         sl_strerror(e));
            group_free(g);
            continue;
        }
        g->next = ro->in_engine;
        ro->in_engine = g;
    }
}

/* A finished sample of group g. */
static void group_sample_done(rollout *ro, group *g, int j, sl_engine_done *d) {
    sl_gen_sample *s = &g->res[j];
    s->sample_id = g->ids[j];
    s->index = j;
    s->n_tokens = d->n_tokens;
    s->tokens = d->tokens;
    s->logprobs = d->logprobs;
    s->finish = d->finish;
    s->weight_version = d->weight_version;
    d->tokens = NULL;
    d->logprobs = NULL;
    if (++g->n_done < g->n) return;
    /* complete: in_engine -> ready (appended, publication order = completion order) */
    for (group **pp = &ro->in_engine; *pp; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    g->next = NULL;
    group **tail = &ro->ready;
    while (*tail) tail = &(*tail)->next;
    *tail = g;
}

/* Publish finished groups; stop at the first that finds the arena full. */
static void flush_ready(rollout *ro, sl_actor_ctx *ctx) {
    while (ro->ready) {
        group *g = ro->ready;
        int e = publish_group(ro, ctx, g);
        if (e == SL_EFULL) {
            ro->waits_full++;
            uint64_t now = sl_now_ms();
            if (!ro->full_since_ms) ro->full_since_ms = now;
            if (now - ro->full_since_ms > FULL_RECLAIM_MS) {
                /* Nobody has released a slot for that long: a consumer died
                 * holding them (a restarted reward or buffer never releases
                 * what its previous incarnation held). Drop every hold; the
                 * buffer re-dispatches what it did not get. */
                int n = 0;
                for (int i = 0; i < ro->n_rewards; i++)
                    n += sl_shm_arena_reclaim(ro->arena, SL_RL_CONSUMER_REWARD_BASE + (unsigned)ro->rewards[i]->index);
                n += sl_shm_arena_reclaim(ro->arena, SL_RL_CONSUMER_BUFFER);
                ro->reclaims++;
                ro->full_since_ms = 0;
                sl_actor_log(ctx, SL_LOG_WARN,
                             "samples arena full for %d s: dropped %d hold(s) of consumers that stopped releasing",
                             FULL_RECLAIM_MS / 1000, n);
            }
            return; /* retry at the next tick */
        }
        ro->full_since_ms = 0;
        ro->ready = g->next;
        group_free(g);
    }
}

/* ============================================================ service */

/* Refuse request M with CODE and a text naming the field. */
static void vrefuse(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, sl_err code, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
static void vrefuse(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, sl_err code, const char *fmt, va_list ap) {
    char why[320];
    vsnprintf(why, sizeof why, fmt, ap);
    ro->gen_refused++;
    sl_actor_log(ctx, SL_LOG_DEBUG, "%s from %s refused: %s", sl_msg_type_name(m->type), m->sender, why);
    if (m->flags & (SL_FLAG_NOREPLY | SL_FLAG_REPLY)) return;
    if (m->corr) {
        sl_actor_reply_error(ctx, m, code, why);
    } else {
        uint8_t buf[400];
        size_t n = sl_frame_error_payload(buf, sizeof buf, (uint32_t)code, why);
        sl_actor_send(ctx, m->sender, SL_MSG_ERROR, buf, n);
    }
}

static void refuse(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, sl_err code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void refuse(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, sl_err code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vrefuse(ro, ctx, m, code, fmt, ap);
    va_end(ap);
}

/* Answer request M with R (owned; freed here): a reply to its corr, or
 * (corr 0) a one-way message of TYPE to its sender; nothing for NOREPLY,
 * nor when R is NULL (it could not be built). An answer too large for a
 * frame is refused with SL_ERANGE and the text TOO_BIG. */
static void reply(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, uint16_t type, json_t *r,
                  const char *too_big, ...) __attribute__((format(printf, 6, 7)));
static void reply(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, uint16_t type, json_t *r,
                  const char *too_big, ...) {
    int e = SL_OK;
    if (!r) e = SL_EINVAL;
    else if (m->flags & SL_FLAG_NOREPLY) e = SL_OK;
    else if (!m->corr) e = sl_rl_json_send(ctx, m->sender, type, r);
    else e = sl_rl_json_reply(ctx, m, type, r);
    json_decref(r);
    if (e == SL_ERANGE) {
        va_list ap;
        va_start(ap, too_big);
        vrefuse(ro, ctx, m, SL_ERANGE, too_big, ap);
        va_end(ap);
    }
}

/* The first key of O not in ALLOWED (NULL-terminated), or NULL. */
static const char *unknown_key(const json_t *o, const char *const *allowed) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        (void)v;
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(*a, k)) ok = true;
        if (!ok) return k;
    }
    return NULL;
}

/* An optional bool field: 0/1 in *out, -1 when present but not a bool. */
static int opt_bool(const json_t *o, const char *k, bool def, bool *out) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return -1;
    *out = json_is_true(v);
    return 0;
}

/* ids array of 1..max entries in [0, vocab): 0, or -1 with WHY set. */
static int ids_field(const json_t *a, size_t min, size_t max, int32_t vocab, int32_t *out, char *why,
                     size_t wl) {
    if (!json_is_array(a)) {
        snprintf(why, wl, "not an array of token ids");
        return -1;
    }
    size_t n = json_array_size(a);
    if (n < min || n > max) {
        snprintf(why, wl, "%zu ids (%zu .. %zu allowed)", n, min, max);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v)) {
            snprintf(why, wl, "entry %zu is not an integer", i);
            return -1;
        }
        json_int_t x = json_integer_value(v);
        if (x < 0 || x >= vocab) {
            snprintf(why, wl, "entry %zu = %lld outside the vocabulary [0, %d)", i, (long long)x, vocab);
            return -1;
        }
        if (out) out[i] = (int32_t)x;
    }
    return 0;
}

/* Stop strings: decode the newest tokens and look for any stop string. The
 * earlier tokens were checked at their own step, so an occurrence found
 * here ends in the newest token. */
static int gen_stop_fn(void *user, const int32_t *ids, int n) {
    greq *r = user;
    if (!r->n_stop || !r->ro->tok) return 0;
    int from = n > r->window ? n - r->window : 0;
    char *text = NULL;
    if (sl_tokenizer_decode(r->ro->tok, ids + from, (size_t)(n - from), 0, &text, NULL) != SL_OK)
        return 0; /* an id the tokenizer lacks (model vocab > tokenizer's): no text */
    int hit = 0;
    for (int i = 0; i < r->n_stop && !hit; i++) hit = strstr(text, r->stop[i]) != NULL;
    free(text);
    return hit;
}

static void on_generate(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, const json_t *o) {
    char why[256];
    greq *r = NULL;
    int32_t *prompt = NULL;
    uint64_t rid = 0, seed = 0;
    int64_t max_tokens = 256, top_k = 0;
    double temp = 1.0, top_p = 1.0;
    bool ignore_eos = false;
    const char *session = NULL;
    json_t *pr = json_object_get(o, "prompt"), *stop = json_object_get(o, "stop"),
           *sti = json_object_get(o, "stop_token_ids"), *sv = json_object_get(o, "session");
    int max_prompt = ro->max_seq_len - 1;
    if (sl_rl_json_u64(o, "rid", &rid)) {
        refuse(ro, ctx, m, SL_EINVAL, "rid: required, a non-negative integer");
        goto out;
    }
    if (!pr) {
        refuse(ro, ctx, m, SL_EINVAL, "prompt: required");
        goto out;
    }
    if (json_is_array(pr) && json_array_size(pr) > (size_t)max_prompt) {
        refuse(ro, ctx, m, SL_ERANGE, "prompt: %zu tokens, the engine holds at most %d (max positions %d, one for the response)",
               json_array_size(pr), max_prompt, ro->max_seq_len);
        goto out;
    }
    prompt = malloc((json_is_array(pr) && json_array_size(pr) ? json_array_size(pr) : 1) * sizeof *prompt);
    if (!prompt) {
        refuse(ro, ctx, m, SL_ENOMEM, "out of memory");
        goto out;
    }
    if (ids_field(pr, 1, (size_t)max_prompt, ro->vocab, prompt, why, sizeof why)) {
        refuse(ro, ctx, m, SL_EINVAL, "prompt: %s", why);
        goto out;
    }
    if (sl_rl_json_i64_opt(o, "max_tokens", 256, &max_tokens) || max_tokens < 1 ||
        max_tokens > ro->max_seq_len) {
        refuse(ro, ctx, m, SL_EINVAL, "max_tokens: an integer in [1, %d]", ro->max_seq_len);
        goto out;
    }
    if (sl_rl_json_dbl_opt(o, "temperature", 1.0, &temp) || temp < 0 || temp > 100) {
        refuse(ro, ctx, m, SL_EINVAL, "temperature: a number in [0, 100]");
        goto out;
    }
    if (sl_rl_json_dbl_opt(o, "top_p", 1.0, &top_p) || !(top_p > 0 && top_p <= 1)) {
        refuse(ro, ctx, m, SL_EINVAL, "top_p: a number in (0, 1]");
        goto out;
    }
    if (sl_rl_json_i64_opt(o, "top_k", 0, &top_k) || top_k < -1 || top_k > INT_MAX) {
        refuse(ro, ctx, m, SL_EINVAL, "top_k: an integer >= -1 (0 or -1: off)");
        goto out;
    }
    if (json_object_get(o, "seed") && !json_is_null(json_object_get(o, "seed")) &&
        sl_rl_json_u64(o, "seed", &seed)) {
        refuse(ro, ctx, m, SL_EINVAL, "seed: a non-negative integer");
        goto out;
    }
    if (opt_bool(o, "ignore_eos", false, &ignore_eos)) {
        refuse(ro, ctx, m, SL_EINVAL, "ignore_eos: a boolean");
        goto out;
    }
    if (sv && !json_is_null(sv)) {
        if (!json_is_string(sv) || json_string_length(sv) < 1 || json_string_length(sv) > SL_GEN_MAX_SESSION ||
            strlen(json_string_value(sv)) != json_string_length(sv)) {
            refuse(ro, ctx, m, SL_EINVAL, "session: a string of 1..%d characters", SL_GEN_MAX_SESSION);
            goto out;
        }
        session = json_string_value(sv);
    }
    sl_gen_params gp;
    sl_gen_params_default(&gp);
    gp.temperature = (float)temp;
    gp.top_p = (float)top_p;
    gp.top_k = top_k < 0 ? 0 : (int)top_k;
    gp.max_new_tokens = (int)max_tokens;
    if (sti && !json_is_null(sti)) {
        if (ids_field(sti, 0, SL_GEN_MAX_STOP, ro->vocab, gp.stop_token_ids, why, sizeof why)) {
            refuse(ro, ctx, m, SL_EINVAL, "stop_token_ids: %s", why);
            goto out;
        }
        gp.n_stop_token_ids = (int)json_array_size(sti);
    }
    if (!ignore_eos)
        for (int i = 0; i < ro->n_eos && gp.n_stop_token_ids < SL_ENGINE_MAX_STOP; i++)
            gp.stop_token_ids[gp.n_stop_token_ids++] = ro->eos[i];
    r = calloc(1, sizeof *r);
    if (!r) {
        refuse(ro, ctx, m, SL_ENOMEM, "out of memory");
        goto out;
    }
    r->kind = REF_GEN;
    r->ro = ro;
    if (stop && !json_is_null(stop)) {
        if (!json_is_array(stop) || json_array_size(stop) > SL_GEN_MAX_STOP) {
            refuse(ro, ctx, m, SL_EINVAL, "stop: an array of at most %d strings", SL_GEN_MAX_STOP);
            goto out;
        }
        if (json_array_size(stop) && !ro->tok) {
            refuse(ro, ctx, m, SL_EUNSUPPORTED, "stop: this engine has no tokenizer (use stop_token_ids)");
            goto out;
        }
        size_t maxlen = 0;
        for (size_t i = 0; i < json_array_size(stop); i++) {
            json_t *v = json_array_get(stop, i);
            if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > SL_GEN_MAX_STOP_LEN ||
                strlen(json_string_value(v)) != json_string_length(v)) {
                refuse(ro, ctx, m, SL_EINVAL, "stop: entry %zu is not a string of 1..%d bytes", i,
                       SL_GEN_MAX_STOP_LEN);
                goto out;
            }
            if (!(r->stop[r->n_stop] = strdup(json_string_value(v)))) {
                refuse(ro, ctx, m, SL_ENOMEM, "out of memory");
                goto out;
            }
            r->n_stop++;
            if (json_string_length(v) > maxlen) maxlen = json_string_length(v);
        }
        r->window = 2 * (int)maxlen + 8;
    }
    for (greq *x = ro->gens; x; x = x->next)
        if (x->rid == rid && !strcmp(x->sender, m->sender)) {
            refuse(ro, ctx, m, SL_EINVAL, "rid: %llu is already in flight for %s", (unsigned long long)rid,
                   m->sender);
            goto out;
        }
    if (ro->n_gens >= ro->max_inflight) {
        refuse(ro, ctx, m, SL_EFULL, "engine busy: %d requests in flight ([rollout] max_inflight)", ro->n_gens);
        goto out;
    }
    snprintf(r->sender, sizeof r->sender, "%s", m->sender);
    r->corr = m->corr;
    r->flags = m->flags;
    r->rid = rid;
    r->prompt_len = (int)json_array_size(pr);
    sl_engine_seq_req q = {.prompt = prompt, .prompt_len = r->prompt_len, .params = gp, .seed = seed,
                           .seq_id = 0, .session = session, .stop_fn = r->n_stop ? gen_stop_fn : NULL,
                           .user = r};
    int e = sl_engine_submit(ro->engine, &q, &r->handle);
    if (e) {
        refuse(ro, ctx, m, e, "request refused by the engine: %s", sl_strerror(e));
        goto out;
    }
    r->next = ro->gens;
    ro->gens = r;
    ro->n_gens++;
    r = NULL;
    sl_actor_set_tick(ctx, 1);
out:
    greq_free(r);
    free(prompt);
}

static void gen_done(rollout *ro, sl_actor_ctx *ctx, greq *r, const sl_engine_done *d) {
    for (greq **pp = &ro->gens; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    ro->n_gens--;
    if (d->finish == SL_FINISH_ABORT) ro->gen_aborted++;
    else ro->gen_ok++;
    sl_gen_result view = {.rid = r->rid, .ids = d->tokens, .logprobs = d->logprobs, .n = d->n_tokens,
                          .finish = d->finish, .weight_version = d->weight_version,
                          .prompt_tokens = d->prompt_len, .cached_tokens = d->cached_tokens};
    char *t = NULL;
    size_t tl = 0;
    int e = sl_gen_result_json(&view, &t, &tl);
    if (!e) {
        if (r->flags & SL_FLAG_NOREPLY) e = SL_OK;
        else if (!r->corr) e = sl_actor_send(ctx, r->sender, SL_MSG_GENERATED, t, tl);
        else {
            sl_msg req = {.type = SL_MSG_GENERATE, .flags = r->flags, .corr = r->corr};
            snprintf(req.sender, sizeof req.sender, "%s", r->sender);
            e = sl_actor_reply(ctx, &req, SL_MSG_GENERATED, t, tl);
        }
    }
    free(t);
    if (e) {
        ro->reply_fail++;
        sl_actor_log(ctx, SL_LOG_WARN, "GENERATED rid %llu to %s not sent: %s", (unsigned long long)r->rid,
                     r->sender, sl_strerror(e));
    }
    greq_free(r);
}

/* Dispatch every finished sequence. */
static void collect(rollout *ro, sl_actor_ctx *ctx) {
    sl_engine_done d;
    while (sl_engine_take_done(ro->engine, &d)) {
        int kind = d.user ? *(int *)d.user : 0;
        if (kind == REF_GROUP) {
            gref *g = d.user;
            group_sample_done(ro, g->g, g->j, &d);
        } else if (kind == REF_GEN) {
            gen_done(ro, ctx, d.user, &d);
        }
        sl_engine_done_fini(&d);
    }
}

static void on_abort(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, const json_t *o) {
    bool all = false;
    uint64_t rid = 0;
    bool has_rid = json_object_get(o, "rid") != NULL;
    if (opt_bool(o, "all", false, &all)) refuse(ro, ctx, m, SL_EINVAL, "all: a boolean");
    else if (has_rid && sl_rl_json_u64(o, "rid", &rid)) refuse(ro, ctx, m, SL_EINVAL, "rid: a non-negative integer");
    else if (all == has_rid) refuse(ro, ctx, m, SL_EINVAL, "rid: give either \"rid\" or \"all\": true");
    else {
        int n = 0;
        for (greq *r = ro->gens; r; r = r->next)
            if (!strcmp(r->sender, m->sender) && (all || r->rid == rid) &&
                sl_engine_cancel(ro->engine, r->handle) == SL_OK)
                n++;
        sl_actor_log(ctx, SL_LOG_DEBUG, "ABORT from %s: %d request(s)", m->sender, n);
        collect(ro, ctx); /* answered at once */
    }
}

static void on_tokenize(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, const json_t *o) {
    json_t *t = json_object_get(o, "text");
    bool add = false;
    int32_t *ids = NULL;
    size_t n = 0;
    if (!json_is_string(t)) refuse(ro, ctx, m, SL_EINVAL, "text: required, a string");
    else if (opt_bool(o, "add_special_tokens", false, &add)) refuse(ro, ctx, m, SL_EINVAL, "add_special_tokens: a boolean");
    else if (sl_tokenizer_encode(ro->tok, json_string_value(t), json_string_length(t), &ids, &n))
        refuse(ro, ctx, m, SL_ENOMEM, "text: cannot tokenize");
    else {
        int32_t bos = sl_tokenizer_bos_id(ro->tok);
        json_t *a = json_array();
        if (add && bos >= 0) json_array_append_new(a, json_integer(bos));
        for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
        reply(ro, ctx, m, SL_MSG_TOKENIZED, json_pack("{s:o}", "ids", a), "text: its %zu ids do not fit a reply", n);
    }
    free(ids);
}

static void on_detokenize(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, const json_t *o) {
    char why[256];
    json_t *a = json_object_get(o, "ids");
    bool skip = false;
    int32_t tv = sl_tokenizer_vocab_size(ro->tok);
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    char *text = NULL;
    if (!ids) refuse(ro, ctx, m, SL_ENOMEM, "out of memory");
    else if (!a) refuse(ro, ctx, m, SL_EINVAL, "ids: required");
    else if (ids_field(a, 0, SIZE_MAX, tv, ids, why, sizeof why)) refuse(ro, ctx, m, SL_EINVAL, "ids: %s", why);
    else if (opt_bool(o, "skip_special_tokens", false, &skip)) refuse(ro, ctx, m, SL_EINVAL, "skip_special_tokens: a boolean");
    else if (sl_tokenizer_decode(ro->tok, ids, n, skip, &text, NULL)) refuse(ro, ctx, m, SL_EINVAL, "ids: cannot decode");
    else {
        reply(ro, ctx, m, SL_MSG_DETOKENIZED, json_pack("{s:s}", "text", text), "ids: their text does not fit a reply");
    }
    free(text);
    free(ids);
}

static void on_chat(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, const json_t *o) {
    static const char *const mkeys[] = {"role", "content", NULL};
    json_t *a = json_object_get(o, "messages");
    bool agp = true;
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    sl_chat_msg *msgs = calloc(n ? n : 1, sizeof *msgs);
    char *text = NULL;
    int32_t *ids = NULL;
    size_t nid = 0;
    if (!msgs) refuse(ro, ctx, m, SL_ENOMEM, "out of memory");
    else if (!json_is_array(a) || n < 1) refuse(ro, ctx, m, SL_EINVAL, "messages: required, a non-empty array");
    else if (opt_bool(o, "add_generation_prompt", true, &agp))
        refuse(ro, ctx, m, SL_EINVAL, "add_generation_prompt: a boolean");
    else {
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_array_get(a, i), *role = json_object_get(x, "role"),
                   *content = json_object_get(x, "content");
            const char *muk = json_is_object(x) ? unknown_key(x, mkeys) : NULL;
            if (!json_is_object(x) || muk || !json_is_string(role) || !json_is_string(content) ||
                strlen(json_string_value(content)) != json_string_length(content) ||
                (strcmp(json_string_value(role), "system") && strcmp(json_string_value(role), "user") &&
                 strcmp(json_string_value(role), "assistant"))) {
                refuse(ro, ctx, m, SL_EINVAL,
                       "messages: entry %zu must be {\"role\": \"system\"|\"user\"|\"assistant\", \"content\": string}%s%s",
                       i, muk ? ", unknown key " : "", muk ? muk : "");
                goto out;
            }
            msgs[i].role = json_string_value(role);
            msgs[i].content = json_string_value(content);
        }
        sl_chat_opts opts;
        sl_chat_opts_init(&opts);
        opts.add_generation_prompt = agp;
        int e = sl_chat_render(ro->chat, msgs, n, &opts, &text, NULL);
        if (e) {
            refuse(ro, ctx, m, e, "messages: cannot render the chat template (%s)", sl_strerror(e));
            goto out;
        }
        if (sl_tokenizer_encode(ro->tok, text, strlen(text), &ids, &nid)) {
            refuse(ro, ctx, m, SL_ENOMEM, "messages: cannot tokenize");
            goto out;
        }
        json_t *ia = json_array();
        for (size_t i = 0; i < nid; i++) json_array_append_new(ia, json_integer(ids[i]));
        reply(ro, ctx, m, SL_MSG_CHAT_TEMPLATED, json_pack("{s:s, s:o}", "text", text, "ids", ia),
              "messages: the rendered chat does not fit a reply");
    }
out:
    free(ids);
    free(text);
    free(msgs);
}

/* One generation-service request kind (PROTOCOL.md §11). serve() parses
 * the payload, refuses unknown keys and, where the kind needs the
 * tokenizer, a request this engine cannot serve; then FN checks its own
 * fields and answers or refuses (O stays serve()'s). */
typedef struct service {
    uint16_t type;
    const char *const *keys; /* the allowed keys, NULL-terminated */
    const char *tok_field;   /* needs the tokenizer: the field its refusal names (NULL: needs none) */
    bool needs_reply;        /* a request that wants no reply is refused */
    void (*fn)(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m, const json_t *o);
} service;

static const char *const generate_keys[] = {"rid", "prompt", "max_tokens", "temperature", "top_p", "top_k",
                                            "stop", "stop_token_ids", "seed", "session", "ignore_eos", NULL};
static const char *const abort_keys[] = {"rid", "all", NULL};
static const char *const tokenize_keys[] = {"text", "add_special_tokens", NULL};
static const char *const detokenize_keys[] = {"ids", "skip_special_tokens", NULL};
static const char *const chat_keys[] = {"messages", "add_generation_prompt", NULL};

static const service services[] = {
    {SL_MSG_GENERATE, generate_keys, NULL, true, on_generate},
    {SL_MSG_ABORT, abort_keys, NULL, false, on_abort},
    {SL_MSG_TOKENIZE, tokenize_keys, "text", false, on_tokenize},
    {SL_MSG_DETOKENIZE, detokenize_keys, "ids", false, on_detokenize},
    {SL_MSG_APPLY_CHAT_TEMPLATE, chat_keys, "messages", false, on_chat},
};

/* Serve M when it is a generation-service request; false when it is not. */
static bool serve(rollout *ro, sl_actor_ctx *ctx, const sl_msg *m) {
    const service *s = NULL;
    for (size_t i = 0; i < sizeof services / sizeof services[0] && !s; i++)
        if (services[i].type == m->type) s = &services[i];
    if (!s) return false;
    if (s->needs_reply && (m->flags & SL_FLAG_NOREPLY)) {
        refuse(ro, ctx, m, SL_EINVAL, "flags: a %s that wants no reply", sl_msg_type_name(m->type));
        return true;
    }
    char why[256];
    json_t *o;
    if (sl_rl_json_parse(m->payload, m->len, &o, why, sizeof why)) {
        refuse(ro, ctx, m, SL_EINVAL, "payload: %s", why);
        return true;
    }
    const char *uk = unknown_key(o, s->keys);
    if (uk) refuse(ro, ctx, m, SL_EINVAL, "%s: unknown key", uk);
    else if (s->tok_field && !ro->tok)
        refuse(ro, ctx, m, SL_EUNSUPPORTED, "%s: this engine has no tokenizer", s->tok_field);
    else s->fn(ro, ctx, m, o);
    json_decref(o);
    return true;
}

/* ============================================================ ops */

static void rollout_free(rollout *ro) {
    if (!ro) return;
    free_list(ro->q_head);
    free_list(ro->in_engine);
    free_list(ro->ready);
    for (greq *r = ro->gens, *n; r; r = n) {
        n = r->next;
        greq_free(r);
    }
    sl_engine_free(ro->engine);
    json_decref(ro->pending_ipc);
    sl_wgpu_sub_free(ro->wsub);
    if (ro->wj) {
        sl_ncjoin_fini(ro->wj);
        if (!ro->wj->started) free(ro->wj);
    }
    sl_nccl_free(ro->wnc);
    sl_gpu_free(ro->wbuf);
    sl_model_free(ro->model);
    sl_tokenizer_free(ro->tok);
    sl_weights_sub_free(ro->sub);
    sl_shm_arena_close(ro->arena);
    free(ro->scratch);
    free(ro);
}

static sl_err rollout_init(sl_actor_ctx *ctx, void **state) {
    rollout *ro = calloc(1, sizeof *ro);
    if (!ro) return SL_ENOMEM;
    const sl_topology *t = sl_actor_topology(ctx);
    const sl_actor_spec *self = sl_actor_spec_self(ctx);
    char dir[PATH_MAX], err[SL_MODEL_ERRLEN];
    sl_hf_config cfg;
    int e = sl_rl_model_dir(ctx, dir, sizeof dir);
    if (e) goto fail;
    e = sl_hf_config_load(&cfg, dir, err, sizeof err);
    if (e) {
        sl_actor_log(ctx, SL_LOG_ERROR, "cannot read the model config in %s: %s", dir, err);
        goto fail;
    }
    int mp = cfg.max_position_embeddings;
    ro->max_seq_len = mp < 1024 ? mp : 1024;
    int max_batch = 64;
    int mt = ro->max_seq_len > max_batch ? ro->max_seq_len : max_batch;
    e = sl_model_new(&cfg, sl_ops_cpu(), mt, 0, &ro->model, err, sizeof err);
    sl_hf_config_fini(&cfg);
    if (e) {
        sl_actor_log(ctx, SL_LOG_ERROR, "cannot create the model: %s", err);
        goto fail;
    }
    ro->vocab = ro->model->cfg.vocab_size;
    const sl_hf_config *c = &ro->model->cfg;
    for (int i = 0; i < c->n_eos && ro->n_eos < SL_ENGINE_MAX_STOP; i++)
        if (c->eos_token_ids[i] >= 0 && c->eos_token_ids[i] < ro->vocab) ro->eos[ro->n_eos++] = c->eos_token_ids[i];
    sl_engine_cfg ec;
    sl_engine_cfg_default(&ec, ro->model);
    ec.max_batch = max_batch;
    ec.max_seq_len = ro->max_seq_len;
    ec.max_sessions = t ? (int)sl_topology_get_int(t, "rollout", "session_capacity") : 8;
    if (ec.max_sessions < 0) ec.max_sessions = 0;
    ro->max_inflight = t ? (int)sl_topology_get_int(t, "rollout", "max_inflight") : 1024;
    if (ro->max_inflight < 1) ro->max_inflight = 1024;
    ro->gpu = self && self->cuda_device >= 0;
    if (ro->gpu) {
        /* the GPU engine: same scheduler; sessions are not kept there */
        e = sl_geng_use_device(self->cuda_device);
        if (!e) e = sl_engine_new_gpu(ro->model, &ec, 0, 1, &ro->engine, err, sizeof err);
        else snprintf(err, sizeof err, "cannot select %s", self->device);
        if (!e) e = sl_wgpu_sub_new(&ro->wsub);
        if (e) {
            sl_actor_log(ctx, SL_LOG_ERROR, "device = %s: cannot create the GPU engine: %s",
                         self->device, err);
            goto fail;
        }
        sl_actor_log(ctx, SL_LOG_INFO, "GPU engine on %s (max_batch %d, max_seq_len %d)",
                     self->device, ec.max_batch, ec.max_seq_len);
    } else {
        e = sl_engine_new(ro->model, &ec, &ro->engine, err, sizeof err);
    }
    if (e) {
        sl_actor_log(ctx, SL_LOG_ERROR, "cannot create the engine: %s", err);
        goto fail;
    }
    /* the tokenizer serves TOKENIZE / DETOKENIZE / APPLY_CHAT_TEMPLATE and stop strings */
    char terr[SL_TOKENIZER_ERRLEN];
    if (sl_tokenizer_load(dir, &ro->tok, terr, sizeof terr)) {
        sl_actor_log(ctx, SL_LOG_WARN, "no tokenizer (%s): TOKENIZE, DETOKENIZE, chat templates and stop strings refused",
                     terr);
        ro->tok = NULL;
    } else {
        ro->chat = sl_chat_format_from_template(sl_tokenizer_chat_template(ro->tok));
        if (ro->chat == SL_CHAT_NONE && sl_chat_format_from_name(ro->model->cfg.model_type, &ro->chat))
            ro->chat = SL_CHAT_NONE;
    }
    ro->scratch = malloc(ro->model->n_params * sizeof(float));
    if (!ro->scratch) {
        e = SL_ENOMEM;
        goto fail;
    }
    int idx = self ? self->index : 0;
    if (idx >= SL_RL_MAX_INSTANCES) {
        sl_actor_log(ctx, SL_LOG_ERROR, "rollout index %d: at most %d instances", idx, SL_RL_MAX_INSTANCES);
        e = SL_EINVAL;
        goto fail;
    }
    e = sl_weights_sub_new(SL_RL_CONSUMER_ROLLOUT_BASE + (unsigned)idx, &ro->sub);
    if (e) goto fail;
    ro->n_rewards = sl_rl_find_kind(t, "reward", ro->rewards, SL_RL_MAX_INSTANCES);
    if (ro->n_rewards > SL_RL_MAX_INSTANCES) ro->n_rewards = SL_RL_MAX_INSTANCES;
    ro->buffer = sl_rl_find_first(t, "buffer");
    ro->trainer = sl_rl_find_first(t, "trainer");
    ro->wbc = ro->gpu && sl_weights_by_nccl(t, ro->trainer, self);
    if (ro->wbc) {
        ro->bc_bucket = (size_t)(t ? sl_topology_get_int(t, "trainer", "broadcast_bucket_mb") : 64) << 20;
        if (ro->trainer->cuda_device == self->cuda_device && !self->host && !ro->trainer->host)
            sl_nccl_own_host(self->name); /* one GPU: NCCL over sockets */
        sl_actor_log(ctx, SL_LOG_INFO, "weights from %s by NCCL broadcast (group weights)", ro->trainer->name);
    }
    if (ro->n_rewards < 1)
        sl_actor_log(ctx, SL_LOG_INFO, "the topology has no reward actor: PROMPTS are refused, the generation service runs");
    /* a slot holds one group of up to n_samples_per_prompt full-length samples */
    int nspp = t ? (int)sl_topology_get_int(t, "rollout", "n_samples_per_prompt") : 8;
    if (nspp < 1) nspp = 1;
    sl_batch_dims dims = {.n_samples = (uint32_t)nspp,
                          .n_tokens = (uint64_t)nspp * (uint64_t)ro->max_seq_len,
                          .meta_bytes = (uint64_t)nspp * (SL_FRAME_MAX_PAYLOAD + 2),
                          .flags = SL_BATCH_HAS_LOGPROBS};
    e = sl_batch_size(&dims, &ro->slot_bytes);
    if (e) goto fail;
    if (ro->n_rewards > 0) {
        char an[SL_SHM_NAME_MAX];
        snprintf(an, sizeof an, "samples.%d", (int)getpid());
        e = sl_shm_arena_create(an, N_SLOTS, ro->slot_bytes, &ro->arena);
        if (e) {
            sl_actor_log(ctx, SL_LOG_ERROR, "cannot create the samples arena: %s", sl_strerror(e));
            goto fail;
        }
    }
    ask_weights(ro, ctx);
    sl_actor_log(ctx, SL_LOG_INFO,
                 "rollout ready: %zu params, max_seq_len %d, %d reward(s), %d session(s), chat %s; waiting for weights",
                 ro->model->n_params, ro->max_seq_len, ro->n_rewards, ec.max_sessions, sl_chat_format_name(ro->chat));
    *state = ro;
    return SL_OK;
fail:
    rollout_free(ro);
    return e ? e : SL_EINVAL;
}

/* Decode steps for up to STEP_BUDGET_MS, back to the loop as soon as the
 * mailbox has input; finished work is answered / published. */
static void work(rollout *ro, sl_actor_ctx *ctx) {
    if (ro->have_weights) {
        apply_pending(ro, ctx);
        feed_groups(ro, ctx);
        uint64_t t0 = sl_now_ms();
        sl_mailbox *mb = sl_actor_mailbox(ctx);
        for (;;) {
            sl_engine_sched_stats st;
            sl_engine_sched_stats_get(ro->engine, &st);
            bool admit = !ro->pending_w;
            if (st.n_active == 0 && (st.n_waiting == 0 || !admit)) break;
            int e = sl_engine_step(ro->engine, admit, PREFILL_BUDGET);
            if (e) sl_actor_log(ctx, SL_LOG_ERROR, "generation step failed: %s (active sequences aborted)", sl_strerror(e));
            collect(ro, ctx);
            if (ro->pending_w) apply_pending(ro, ctx);
            if (sl_now_ms() - t0 >= STEP_BUDGET_MS || sl_mailbox_has_input(mb)) break;
        }
        collect(ro, ctx);
        apply_pending(ro, ctx);
        feed_groups(ro, ctx);
    }
    flush_ready(ro, ctx);
    sl_engine_sched_stats st;
    sl_engine_sched_stats_get(ro->engine, &st);
    bool busy = ro->have_weights && (st.n_active > 0 || st.n_waiting > 0 || ro->q_head);
    sl_actor_set_tick(ctx, busy ? 1 : ro->ready ? 10 : ro->have_weights ? 20 : 200);
}

static sl_err rollout_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    rollout *ro = state;
    if (m->flags & SL_FLAG_REPLY) return SL_OK;
    if (serve(ro, ctx, m)) return SL_OK;
    switch (m->type) {
    case SL_MSG_NCCL_ID:
        on_nccl_id(ro, ctx, m);
        return SL_OK;
    case SL_MSG_WEIGHTS:
        on_weights(ro, ctx, m);
        return SL_OK;
    case SL_MSG_PROMPTS: {
        json_t *o;
        char why[256];
        group *g = NULL;
        int e = sl_rl_json_parse(m->payload, m->len, &o, why, sizeof why);
        if (!e) {
            e = parse_prompts(ro, o, &g, why, sizeof why);
            json_decref(o);
        }
        if (!e && ro->n_rewards < 1) {
            group_free(g);
            e = SL_EINVAL;
            snprintf(why, sizeof why, "no reward actor in the topology");
        }
        if (e) {
            ro->bad_prompts++;
            sl_actor_log(ctx, SL_LOG_WARN, "PROMPTS from %s refused (%llu so far): %s", m->sender,
                         (unsigned long long)ro->bad_prompts, why);
            if (sl_rl_is_request(m)) sl_actor_reply_error(ctx, m, e, why);
            return SL_OK;
        }
        if (ro->q_tail)
            ro->q_tail->next = g;
        else
            ro->q_head = g;
        ro->q_tail = g;
        ro->n_queued++;
        sl_actor_set_tick(ctx, 1);
        return SL_OK;
    }
    default:
        if (sl_rl_is_request(m))
            sl_actor_reply_error(ctx, m, SL_EUNSUPPORTED, "rollout: unexpected message type");
        return SL_OK;
    }
}

static sl_err rollout_tick(void *state, sl_actor_ctx *ctx) {
    rollout *ro = state;
    poll_nccl_join(ro, ctx);
    work(ro, ctx);
    if (!ro->have_weights && !ro->pending_w && sl_now_ms() - ro->last_req_ms > 2000) ask_weights(ro, ctx);
    return SL_OK;
}

static void rollout_fini(void *state, sl_actor_ctx *ctx) {
    (void)ctx;
    rollout_free(state);
}

const sl_actor_ops sl_rollout_ops = {
    .name = "rollout",
    .init = rollout_init,
    .handle = rollout_handle,
    .tick = rollout_tick,
    .tick_ms = 200,
    .fini = rollout_fini,
};
