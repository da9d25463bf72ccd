/*
 * rollout.c — the `rollout` actor kind: a generation engine (engine.h)
 * behind a mailbox. It takes PROMPTS (one group per message), generates n
 * samples per group, writes each group as a sample_batch.h batch into a
 * slot of its own shm arena, publishes the slot to a reward instance's
 * consumer id and the buffer's (SL_RL_CONSUMER_BUFFER), and sends SAMPLES
 * to that reward instance (round robin over the reward instances). Weights
 * come only from the trainer (WEIGHTS, weights_sync.h); the engine asks
 * WEIGHTS_REQ at start (and again every 2 s until some arrive), and
 * generates nothing before.
 *
 * Threads. Generation of a batch of groups runs on a worker thread so the
 * actor's loop keeps answering heartbeats; the loop queues PROMPTS, keeps
 * the newest WEIGHTS pending while the worker runs (new weights are applied
 * between generation batches, never in the middle of a sequence; an older
 * pending version is released unread), and publishes the finished groups.
 * Groups queued with equal sampling parameters are generated together in
 * one engine call (continuous batching inside it). When the arena has no
 * free slot (consumers still hold them) the finished groups wait and the
 * tick retries; generation does not go on meanwhile (back-pressure). A
 * consumer that dies holding slots never releases them, and nothing tells
 * the rollout; so when the arena stays full for FULL_RECLAIM_MS (60 s, far
 * longer than scoring a group takes) every reward's and the buffer's holds
 * are dropped (logged): groups in flight then read as stale and the
 * buffer's rollout timeout dispatches them again.
 *
 * What it is not: a tokenizer (prompts arrive as token ids), a reward or a
 * scheduler (the buffer decides what to generate).
 */
#include "actor.h"
#include "dataset.h"
#include "engine.h"
#include "rl_common.h"
#include "rl_msg.h"
#include "sample_batch.h"
#include "weights_sync.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GROUPS_PER_CALL 64
#define MAX_SAMPLES_PER_CALL 1024
#define N_SLOTS 64
#define FULL_RECLAIM_MS 60000 /* arena full this long: consumers are gone */

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
    struct group *next;
} group;

typedef struct rollout {
    sl_model *model;
    sl_engine *engine;
    int max_seq_len;
    int32_t vocab;
    float *scratch; /* n_params: weights copied here, then loaded */
    sl_weights_sub *sub;
    bool have_weights;
    bool pending_w;
    sl_shm_desc pending_desc;
    uint64_t pending_ver;
    uint64_t last_req_ms;
    sl_shm_arena *arena;
    size_t slot_bytes;
    const sl_actor_spec *rewards[SL_RL_MAX_INSTANCES];
    int n_rewards, rr;
    const sl_actor_spec *buffer, *trainer;
    group *q_head, *q_tail;
    int n_queued;
    /* the running or finished batch */
    pthread_t th;
    bool running;
    atomic_int done;
    volatile sig_atomic_t abort_flag;
    group *batch;       /* its groups */
    int n_batch;
    sl_gen_request reqs[MAX_GROUPS_PER_CALL];
    sl_gen_output out;
    int gen_rc;
    int next_pub;       /* first group of batch not yet published */
    int *first_sample;  /* per group: index of its first sample in out */
    /* counters */
    uint64_t full_since_ms; /* the arena has been full since (0: not full) */
    uint64_t bad_prompts, groups_done, samples_done, waits_full, send_fail, reclaims;
} rollout;

static void group_free(group *g) {
    if (!g) return;
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

/* ============================================================ weights */

static void ask_weights(rollout *ro, sl_actor_ctx *ctx) {
    ro->last_req_ms = sl_now_ms();
    if (!ro->trainer) return;
    int e = sl_actor_send(ctx, ro->trainer->name, SL_MSG_WEIGHTS_REQ, "{}", 2);
    if (e) sl_actor_log(ctx, SL_LOG_DEBUG, "WEIGHTS_REQ: %s", sl_strerror(e));
}

/* Apply the pending weights (worker idle). */
static void apply_pending(rollout *ro, sl_actor_ctx *ctx) {
    if (!ro->pending_w) return;
    ro->pending_w = false;
    size_t n = ro->model->n_params;
    uint64_t v = 0;
    int e = sl_weights_sub_apply(ro->sub, &ro->pending_desc, ro->scratch, n, &v);
    if (!e && v != ro->pending_ver) e = SL_EPROTO;
    if (!e) e = sl_engine_load_weights(ro->engine, ro->scratch, n, v);
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
    int bad = sl_rl_json_desc(o, &d) || sl_rl_json_u64(o, "weight_version", &v);
    json_decref(o);
    if (bad) {
        sl_actor_log(ctx, SL_LOG_WARN, "bad WEIGHTS from %s: fields", m->sender);
        return;
    }
    if (ro->pending_w) sl_weights_sub_drop(ro->sub, &ro->pending_desc); /* superseded */
    ro->pending_w = true;
    ro->pending_desc = d;
    ro->pending_ver = v;
    if (!ro->running) apply_pending(ro, ctx);
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

static bool same_params(const sl_gen_params *a, const sl_gen_params *b) {
    return a->temperature == b->temperature && a->top_p == b->top_p && a->top_k == b->top_k &&
           a->max_new_tokens == b->max_new_tokens && a->n_stop_token_ids == b->n_stop_token_ids &&
           memcmp(a->stop_token_ids, b->stop_token_ids,
                  (size_t)a->n_stop_token_ids * sizeof(int32_t)) == 0;
}

/* ============================================================ generation */

static void *gen_worker(void *arg) {
    rollout *ro = arg;
    ro->gen_rc = sl_engine_generate(ro->engine, ro->reqs, ro->n_batch, &ro->batch->gp, &ro->out);
    atomic_store(&ro->done, 1);
    return NULL;
}

static void start_batch(rollout *ro, sl_actor_ctx *ctx) {
    if (ro->running || ro->batch || !ro->q_head || !ro->have_weights) return;
    group *head = ro->q_head, *g = head, *last = NULL;
    int ng = 0, ns = 0;
    while (g && ng < MAX_GROUPS_PER_CALL && (ng == 0 || ns + g->n <= MAX_SAMPLES_PER_CALL) &&
           same_params(&g->gp, &head->gp)) {
        ro->reqs[ng] = (sl_gen_request){.prompt = g->prompt, .prompt_len = g->prompt_len,
                                        .n_samples = g->n, .seed = g->seed, .sample_ids = g->ids};
        ns += g->n;
        ng++;
        last = g;
        g = g->next;
    }
    ro->q_head = g;
    if (!g) ro->q_tail = NULL;
    last->next = NULL;
    ro->n_queued -= ng;
    ro->batch = head;
    ro->n_batch = ng;
    ro->next_pub = 0;
    memset(&ro->out, 0, sizeof ro->out);
    atomic_store(&ro->done, 0);
    if (pthread_create(&ro->th, NULL, gen_worker, ro) != 0) {
        sl_actor_log(ctx, SL_LOG_ERROR, "cannot start the generation thread: %d group(s) dropped", ng);
        free_list(ro->batch);
        ro->batch = NULL;
        return;
    }
    ro->running = true;
    sl_actor_set_tick(ctx, 10);
}

/* Write group I of the finished batch into a slot and send SAMPLES.
 * SL_EFULL: no free slot now (try again later). */
static int publish_group(rollout *ro, sl_actor_ctx *ctx, int gi, const group *g, int first) {
    const sl_gen_sample *s = &ro->out.samples[first];
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
    (void)gi;
    return SL_OK;
}

/* Publish what is finished; free the batch when all groups are out. */
static void flush_batch(rollout *ro, sl_actor_ctx *ctx) {
    if (!ro->batch || ro->running) return;
    if (ro->gen_rc) {
        sl_actor_log(ctx, SL_LOG_ERROR, "generation failed (%s): %d group(s) dropped",
                     sl_strerror(ro->gen_rc), ro->n_batch);
        goto drop;
    }
    int first = 0, gi = 0;
    group *g = ro->batch;
    for (; g && gi < ro->next_pub; g = g->next, gi++) first += g->n;
    for (; g; g = g->next, gi++) {
        int e = publish_group(ro, ctx, gi, g, first);
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
        first += g->n;
        ro->next_pub = gi + 1;
    }
    sl_actor_log(ctx, SL_LOG_DEBUG, "%d group(s), %lld tokens in %.2fs", ro->n_batch,
                 (long long)ro->out.gen_tokens, ro->out.seconds);
drop:
    sl_gen_output_fini(&ro->out);
    free_list(ro->batch);
    ro->batch = NULL;
    ro->n_batch = 0;
}

/* ============================================================ ops */

static void rollout_free(rollout *ro) {
    if (!ro) return;
    if (ro->running) {
        ro->abort_flag = 1;
        pthread_join(ro->th, NULL);
    }
    sl_gen_output_fini(&ro->out);
    free_list(ro->batch);
    free_list(ro->q_head);
    sl_engine_free(ro->engine);
    sl_model_free(ro->model);
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
    sl_engine_cfg ec;
    sl_engine_cfg_default(&ec, ro->model);
    ec.max_batch = max_batch;
    ec.max_seq_len = ro->max_seq_len;
    e = sl_engine_new(ro->model, &ec, &ro->engine, err, sizeof err);
    if (e) {
        sl_actor_log(ctx, SL_LOG_ERROR, "cannot create the engine: %s", err);
        goto fail;
    }
    sl_engine_set_abort_flag(ro->engine, &ro->abort_flag);
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
    if (ro->n_rewards < 1) {
        sl_actor_log(ctx, SL_LOG_ERROR, "the topology has no reward actor to send samples to");
        e = SL_EINVAL;
        goto fail;
    }
    /* a slot holds one group of up to n_samples_per_prompt full-length samples */
    int nspp = t ? (int)sl_topology_get_int(t, "rollout", "n_samples_per_prompt") : 8;
    if (nspp < 1) nspp = 1;
    sl_batch_dims dims = {.n_samples = (uint32_t)nspp,
                          .n_tokens = (uint64_t)nspp * (uint64_t)ro->max_seq_len,
                          .meta_bytes = (uint64_t)nspp * (SL_FRAME_MAX_PAYLOAD + 2),
                          .flags = SL_BATCH_HAS_LOGPROBS};
    e = sl_batch_size(&dims, &ro->slot_bytes);
    if (e) goto fail;
    char an[SL_SHM_NAME_MAX];
    snprintf(an, sizeof an, "samples.%d", (int)getpid());
    e = sl_shm_arena_create(an, N_SLOTS, ro->slot_bytes, &ro->arena);
    if (e) {
        sl_actor_log(ctx, SL_LOG_ERROR, "cannot create the samples arena: %s", sl_strerror(e));
        goto fail;
    }
    ask_weights(ro, ctx);
    sl_actor_log(ctx, SL_LOG_INFO, "rollout ready: %zu params, max_seq_len %d, %d reward(s); waiting for weights",
                 ro->model->n_params, ro->max_seq_len, ro->n_rewards);
    *state = ro;
    return SL_OK;
fail:
    rollout_free(ro);
    return e ? e : SL_EINVAL;
}

static sl_err rollout_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    rollout *ro = state;
    if (m->flags & SL_FLAG_REPLY) return SL_OK;
    switch (m->type) {
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
        start_batch(ro, ctx);
        return SL_OK;
    }
    default:
        if (sl_rl_is_request(m))
            sl_actor_reply_error(ctx, m, SL_EPROTO, "rollout: unexpected message type");
        return SL_OK;
    }
}

static sl_err rollout_tick(void *state, sl_actor_ctx *ctx) {
    rollout *ro = state;
    if (ro->running && atomic_load(&ro->done)) {
        pthread_join(ro->th, NULL);
        ro->running = false;
    }
    if (!ro->running) {
        flush_batch(ro, ctx);
        if (!ro->batch) {
            apply_pending(ro, ctx); /* between generation batches */
            start_batch(ro, ctx);
        }
    }
    if (!ro->have_weights && !ro->pending_w && sl_now_ms() - ro->last_req_ms > 2000) ask_weights(ro, ctx);
    if (!ro->running && !ro->batch) sl_actor_set_tick(ctx, ro->have_weights ? 100 : 200);
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
