/*
 * buffer.c — the `buffer` actor kind: the driver of an RL run.
 *
 * It owns the data (prompt dataset or the builtin:arith task), the SFT
 * warm-up batches, prompt dispatch to the rollout instances, the gathering
 * of scored groups, DAPO's dynamic-sampling filter, advantages, the WAL of
 * train batches, evaluation, metrics.jsonl and the end of the run.
 *
 * One run, in order (rl_msg.h has the messages):
 *   1. STATUS_REQ to the trainer (repeated until it answers): a fresh run
 *      (step 0) or a resumed one (resume = auto: its checkpoint's step,
 *      cursor, sft_done).
 *   2. SFT warm-up ([sft] steps > 0, not done yet): TRAIN_BATCH phase "sft"
 *      one at a time, each with a loss mask over the target tokens.
 *   3. The step-0 eval ([eval] at_start): greedy, one sample per held-out
 *      prompt; eval_accuracy = mean of (reward == 1).
 *   4. RL steps 1..num_steps: PROMPTS per group (rround-robin over the
 *      rollout instances), SCORED groups gathered, filtered, advantages
 *      computed (rl_algo.h; left to the trainer when kl_coef > 0, which
 *      needs reference log-probs), the batch written into the buffer's shm
 *      arena, appended to RUN_DIR/wal/buffer.wal and synced, then
 *      TRAIN_BATCH; the next batch goes after TRAIN_DONE. In async mode the
 *      rollout of later steps is dispatched while a step trains, at most
 *      max_staleness steps ahead of the last trained one. Eval every
 *      eval_interval steps and at the end.
 *   5. A "stop" request to the supervisor's control plane ends the run.
 *
 * Exactly once. A sample id names (epoch, prompt index, index in group);
 * a group is dispatched with the ids it must come back with. A rollout
 * that returns nothing for rollout_timeout_ms gets its pending groups
 * dispatched again (same ids); whichever copy arrives first is kept and a
 * later duplicate is dropped (counted). A resumed buffer re-sends the
 * WAL'd batches of the steps the trainer has not trained (last record per
 * step), so no accepted batch is regenerated, and continues from the last
 * re-sent batch's cursor.
 *
 * Trainer crashes. A restarted trainer resumes from its last checkpoint
 * (step S) and cuts the ledger back to S. The buffer learns it from the
 * trainer's "behind" TRAIN_DONE (the first batch after its restart is
 * ahead of it) or, when no TRAIN_DONE comes for PROBE_MS, from a STATUS
 * probe finding it idle below the batch in training (the batch died with
 * it). Either way it reclaims the dead trainer's shm holds (consumer 31),
 * cuts metrics.jsonl and pending evals back to S and re-sends the WAL'd
 * batches S+1.. in order before anything new (SFT: from the trainer's SFT
 * step). A probe finding the trainer past the batch counts it as trained
 * (its TRAIN_DONE was lost). A TRAIN_DONE with "error" is a refusal: the
 * batch goes again, at most MAX_TRAIN_RETRIES times, then the buffer stops
 * with status 1. A TRAIN_DONE for a step not in training is ignored
 * (counted). A buffer restarted by the same supervisor (RUN_DIR/
 * .buffer_session) keeps its WAL and metrics and resumes as with
 * resume = auto.
 *
 * Workflow actors ([rollout] workflow = NAME, actors/workflow.h): PROMPTS
 * go to NAME's instances instead of the rollouts; each WF_SAMPLE is checked
 * (refusals answered with WF_ACK ok=false, counted per reason in
 * metrics.jsonl "wf_refused" and logged); a group whose n samples are all
 * in is written as one batch and, unless every sample brought its own
 * reward, published from the buffer's "buffer-wf" arena to a reward actor
 * (SCORED comes back as for a rollout's group). A group not complete
 * within rollout_timeout_ms is dispatched again (accepted samples kept); a
 * group whose SCORED is lost is scored again. Plugins ([rollout]
 * dynamic_sampling_filter_path, buffer_filter_path, workflow_plugin.h)
 * choose the groups trained.
 *
 * What it is not: no generation, scoring or training (rollout, reward,
 * trainer actors).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor.h"
#include "control.h"
#include "dataset.h"
#include "hfconfig.h"
#include "metrics.h"
#include "report.h"
#include "rl_algo.h"
#include "rl_common.h"
#include "rl_msg.h"
#include "sample_batch.h"
#include "shm.h"
#include "task_arith.h"
#include "tokenizer.h"
#include "wal.h"
#include "workflow.h"
#include "workflow_plugin.h"

#define MAX_ROLLOUTS SL_RL_MAX_INSTANCES
#define MAX_VIEWS 32
#define STATUS_RETRY_MS 2000
#define TICK_MS 10
#define MAX_OVERSAMPLE_ROUNDS 8
#define PROBE_MS 5000        /* no TRAIN_DONE for this long: ask the trainer's STATUS */
#define MAX_TRAIN_RETRIES 3  /* a batch the trainer refuses (TRAIN_DONE "error") is re-sent this often */

enum { PH_RL = 0, PH_EVAL = 1 };
enum { ST_STATUS, ST_SFT, ST_RL, ST_STOPPING, ST_DONE };

typedef struct group {
    uint64_t gid;      /* prompt id */
    int phase;         /* PH_RL | PH_EVAL */
    int64_t step;      /* RL step (eval: the step after which it evaluates) */
    uint32_t n;        /* samples */
    int rollout;       /* instance index it was last sent to */
    int64_t sent_ms;
    int attempts;
    int done;
    uint8_t *batch;    /* copy of the scored sample batch */
    size_t batch_len;
    float *rewards;
    uint8_t *failed;
    int64_t resp_tokens;
    /* workflow runs: the samples accepted so far, then the scoring */
    sl_wf_sample *wf;    /* (n) */
    uint8_t *wf_taken;   /* (n) */
    uint32_t wf_n_taken;
    float *wf_given;     /* (n) rewards the workflow gave */
    uint8_t *wf_has;     /* (n) 1 where it gave one */
    int wf_scoring;      /* all samples in; SAMPLES sent to a reward actor */
    int64_t wf_score_ms;
} group;

#define MAX_WF_METRICS SL_WF_MAX_METRICS

typedef struct rround {
    int phase;
    int64_t step;
    group *g;
    size_t n, cap, n_done;
    int64_t start_ms, end_ms;
    int oversample_rounds;
    sl_data_cursor cursor_after; /* data cursor after this rround's prompts */
    /* workflow metrics of the samples gathered (their "metrics" objects) */
    int n_wm;
    char wm_name[MAX_WF_METRICS][SL_WF_METRIC_NAME_MAX];
    double wm_sum[MAX_WF_METRICS];
    int64_t wm_cnt[MAX_WF_METRICS];
} rround;

typedef struct resend {
    int64_t step;
    char *hdr;     /* the TRAIN_BATCH JSON (without desc) */
    uint8_t *data; /* batch bytes */
    size_t len;
} resend;

typedef struct buffer {
    sl_actor_ctx *ctx;
    const sl_topology *t;
    char run_dir[4096];
    /* peers */
    char trainer[SL_ACTOR_NAME_MAX];
    char rollouts[MAX_ROLLOUTS][SL_ACTOR_NAME_MAX];
    int n_rollouts, rr;
    int64_t last_progress[MAX_ROLLOUTS];
    /* data */
    sl_tokenizer *tok;
    int32_t vocab, eos;
    sl_dataset *rl_ds, *eval_ds, *sft_ds;
    sl_data_cursor cursor;
    /* config */
    int64_t num_steps, rbs, oversample, n_per, max_new, top_k, eval_interval, eval_n;
    int64_t sft_steps, sft_bs, max_staleness, timeout_ms;
    double temperature, top_p, kl_coef;
    bool async, dyn, eval_start, eval_end, std_norm;
    sl_adv_estimator est;
    uint64_t seed;
    /* state */
    int stage;
    int64_t status_sent_ms;
    uint64_t status_corr;
    int64_t sft_step;   /* SFT batches done */
    int sft_inflight;
    int64_t sft_sent_ms;
    int64_t rl_done, rl_sent, next_dispatch; /* RL steps: trained, sent to train, next to dispatch */
    int64_t weight_version;
    int64_t samples_total;
    int64_t last_eval_step;    /* -1 = none */
    bool eval_pending_end;
    rround *rounds[8];
    int n_rounds;
    resend *resends;
    size_t n_resends, resend_pos;
    /* the batch in training (for its metrics line) */
    double tr_reward_mean, tr_reward_std, tr_len_mean, tr_tokens_per_s;
    int64_t tr_n, tr_failed, tr_groups_total, tr_groups_kept;
    int64_t tr_staleness, tr_zero_std_groups; /* max weight-version lag; trained groups of one reward */
    /* shm */
    sl_shm_arena *arena;
    size_t slot_bytes;
    sl_shm_view *views[MAX_VIEWS];
    int n_views;
    /* durability and reporting */
    sl_wal *wal;
    sl_metrics *metrics;
    double last_reward, last_eval, last_tps;
    int64_t rl_start_ms;
    int64_t rl_start_step;
    /* trainer crash recovery: the batch in training, the STATUS probe */
    int64_t train_sent_ms; /* when the batch in training went out */
    int64_t probe_ms;      /* last STATUS probe */
    uint64_t probe_corr;   /* its correlation id (0 = none outstanding) */
    int train_retries;     /* refusals of the batch in training */
    /* workflow actor ([rollout] workflow): rollouts[] then names its instances */
    bool wf;
    sl_wf_limits wf_lim;
    const sl_actor_spec *rewards[MAX_ROLLOUTS];
    int n_rewards, rr_reward;
    sl_shm_arena *wf_arena; /* complete workflow groups published to the reward actors */
    size_t wf_slot_bytes;
    uint64_t wf_refused[SL_WF_N_REASONS], wf_accepted, wf_rescored;
    /* plugins (workflow_plugin.h) */
    void *dsf_dl, *bf_dl;
    sl_dynamic_sampling_filter_fn dsf;
    sl_buffer_filter_fn bf;
    /* the step in training: accuracy and workflow metrics for its line */
    double tr_accuracy;
    /* [sft] loss_mask_spans: the ids of OPEN and CLOSE */
    int32_t *span_open, *span_close;
    size_t n_span_open, n_span_close;
    int tr_n_wm;
    char tr_wm_name[MAX_WF_METRICS][SL_WF_METRIC_NAME_MAX];
    double tr_wm_mean[MAX_WF_METRICS];
    /* counters */
    uint64_t n_dup, n_stale, n_bad, n_redispatch, n_failed_samples;
    uint64_t n_rewinds, n_refused, n_late_done;
} buffer;

/* the workflow section (below) */
static void wf_on_scored(buffer *b, rround *r, group *g, json_t *o);
static bool group_keep(buffer *b, group *g, int64_t step);
static void buffer_filter(buffer *b, rround *r, uint8_t *keep);
static void wf_metrics_into(buffer *b, json_t *line, int n, char name[][SL_WF_METRIC_NAME_MAX], const double *mean);

/* ================================================================ helpers */

static void blog(buffer *b, sl_log_level l, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void blog(buffer *b, sl_log_level l, const char *fmt, ...) {
    char m[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    sl_actor_log(b->ctx, l, "%s", m);
}

static json_t *cursor_json(buffer *b, const sl_data_cursor *c) {
    char txt[256];
    if (!b->rl_ds || !sl_data_cursor_format(b->rl_ds, c, txt, sizeof txt)) return json_null();
    json_t *o = json_loads(txt, 0, NULL);
    return o ? o : json_null();
}

static int mkdir_p(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0700);
            *s = '/';
        }
    return mkdir(p, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* ============================================================== the data */

/* Write the builtin:arith splits as JSONL under RUN_DIR/data/ (idempotent:
 * deterministic content, rewritten atomically). */
static int arith_files(buffer *b, char *rl_path, char *eval_path, char *sft_path, size_t cap) {
    const sl_topology *t = b->t;
    sl_arith_cfg cfg;
    sl_arith_cfg_init(&cfg);
    cfg.min_digits = (int)sl_topology_get_int(t, "data", "arith_min_digits");
    cfg.max_digits = (int)sl_topology_get_int(t, "data", "arith_max_digits");
    snprintf(cfg.ops, sizeof cfg.ops, "%s", sl_topology_get_str(t, "data", "arith_ops"));
    cfg.target = strcmp(sl_topology_get_str(t, "data", "arith_target"), "plain") == 0 ? SL_ARITH_PLAIN
                                                                                       : SL_ARITH_REVERSED;
    double sloppy = sl_topology_get_double(t, "data", "arith_sloppy");
    cfg.sloppy_permille = (int)(sloppy * 1000.0 + 0.5);
    cfg.tool_permille = (int)(sl_topology_get_double(t, "data", "arith_tool_share") * 1000.0 + 0.5);
    char err[256];
    if (sl_arith_cfg_validate(&cfg, err, sizeof err) != 0) {
        blog(b, SL_LOG_ERROR, "[data] builtin:arith: %s", err);
        return SL_EINVAL;
    }
    size_t n_rl = (size_t)sl_topology_get_int(t, "data", "arith_heldout_size");
    size_t n_eval = (size_t)b->eval_n;
    size_t n_sft = (size_t)sl_topology_get_int(t, "data", "arith_train_size");
    /* RL prompts from fresh train-split problems: one per prompt the run
     * asks for (a dataset epoch beyond it, with over-sampling, still has
     * unique sample ids), from a seed stream apart from the SFT data's */
    bool rl_train = strcmp(sl_topology_get_str(t, "data", "arith_rl_split"), "heldout") != 0;
    size_t n_rl_train = 0;
    if (rl_train) {
        int64_t per = b->dyn && b->oversample > b->rbs ? b->oversample : b->rbs;
        uint64_t want = (uint64_t)(b->num_steps > 0 ? b->num_steps : 1) * (uint64_t)(per > 0 ? per : 1);
        n_rl_train = want > 4000000 ? 4000000 : (size_t)want;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/data", b->run_dir);
    mkdir_p(dir);
    snprintf(rl_path, cap, "%s/arith_rl.jsonl", dir);
    snprintf(eval_path, cap, "%s/arith_eval.jsonl", dir);
    snprintf(sft_path, cap, "%s/arith_sft.jsonl", dir);
    if (rl_train) n_rl = 0; /* the held-out split serves eval only */
    sl_arith_item *held = calloc(n_rl + n_eval, sizeof *held);
    sl_arith_item *tr = calloc(n_sft, sizeof *tr);
    sl_arith_item *rt = rl_train ? calloc(n_rl_train, sizeof *rt) : NULL;
    int rc = held && tr && (!rl_train || rt) ? 0 : SL_ENOMEM;
    if (!rc) rc = sl_arith_generate(&cfg, SL_ARITH_HELDOUT, b->seed, n_rl + n_eval, held);
    if (!rc) rc = sl_arith_generate(&cfg, SL_ARITH_TRAIN, b->seed, n_sft, tr);
    if (!rc && rl_train) {
        sl_arith_cfg rcfg = cfg;
        rcfg.sloppy_permille = 0; /* prompts and labels only */
        rcfg.tool_permille = 0;
        rc = sl_arith_generate(&rcfg, SL_ARITH_TRAIN, b->seed + 2, n_rl_train, rt);
    }
    if (!rc) rc = rl_train ? sl_arith_write_jsonl(rl_path, rt, n_rl_train, 0)
                           : sl_arith_write_jsonl(rl_path, held, n_rl, 0);
    if (!rc) rc = sl_arith_write_jsonl(eval_path, held + n_rl, n_eval, 0);
    if (!rc) rc = sl_arith_write_jsonl(sft_path, tr, n_sft, 1);
    if (rc) blog(b, SL_LOG_ERROR, "builtin:arith data (%zu RL %s + %zu eval, %zu train): %s",
                 rl_train ? n_rl_train : n_rl, rl_train ? "train-split" : "held-out", n_eval, n_sft,
                 sl_strerror(rc));
    free(held);
    free(tr);
    free(rt);
    return rc;
}

static int load_ds(buffer *b, const char *path, const char *response_key, bool builtin, sl_dataset **out) {
    sl_dataset_opts o;
    sl_dataset_opts_from_topology(&o, b->t);
    o.tok = b->tok;
    if (builtin) {
        o.input_key = "input";
        o.label_key = "label";
        o.metadata_key = NULL;
        o.apply_chat_template = 0;
    }
    if (response_key) {
        o.response_key = response_key;
        o.label_required = 0;
        o.shuffle = 1; /* SFT batches: shuffled by the run seed */
        o.num_epoch = 1000;
    }
    char err[512];
    int rc = sl_dataset_load(path, &o, out, err, sizeof err);
    if (rc) blog(b, SL_LOG_ERROR, "dataset: %s", err);
    return rc;
}

static int load_data(buffer *b) {
    char mdir[4096], err[256];
    int rc = sl_rl_model_dir(b->ctx, mdir, sizeof mdir);
    if (rc) {
        blog(b, SL_LOG_ERROR, "no model folder: %s", sl_strerror(rc));
        return rc;
    }
    rc = sl_tokenizer_load(mdir, &b->tok, err, sizeof err);
    if (rc) {
        blog(b, SL_LOG_ERROR, "tokenizer: %s", err);
        return rc;
    }
    b->vocab = sl_tokenizer_vocab_size(b->tok);
    b->eos = sl_tokenizer_eos_id(b->tok);
    /* the model may have more ids than the tokenizer (Qwen: 151,936 rows for
     * 151,669 tokens) and may sample any of them: batches are checked
     * against the larger */
    sl_hf_config hc;
    if (sl_hf_config_load(&hc, mdir, err, sizeof err) == 0) {
        if (hc.vocab_size > b->vocab) b->vocab = hc.vocab_size;
        sl_hf_config_fini(&hc);
    }
    const char *pd = sl_topology_get_str(b->t, "data", "prompt_data");
    const char *ed = sl_topology_get_str(b->t, "data", "eval_prompt_data");
    const char *sd = sl_topology_get_str(b->t, "sft", "prompt_data");
    const char *rk = sl_topology_get_str(b->t, "sft", "response_key");
    bool builtin = !*pd || strcmp(pd, "builtin:arith") == 0;
    char rl_p[4400], ev_p[4400], sft_p[4400];
    if (builtin) {
        if ((rc = arith_files(b, rl_p, ev_p, sft_p, sizeof rl_p))) return rc;
        if ((rc = load_ds(b, rl_p, NULL, true, &b->rl_ds))) return rc;
        if ((rc = load_ds(b, *ed ? ed : ev_p, NULL, !*ed, &b->eval_ds))) return rc;
        if (b->sft_steps > 0 && (rc = load_ds(b, *sd ? sd : sft_p, *sd ? rk : "response", !*sd, &b->sft_ds)))
            return rc;
    } else {
        if ((rc = load_ds(b, pd, NULL, false, &b->rl_ds))) return rc;
        if (*ed && (rc = load_ds(b, ed, NULL, false, &b->eval_ds))) return rc;
        if (b->sft_steps > 0) {
            if (!*sd) {
                blog(b, SL_LOG_ERROR, "[sft] steps > 0 with a prompt_data file needs [sft] prompt_data");
                return SL_EINVAL;
            }
            if ((rc = load_ds(b, sd, rk, false, &b->sft_ds))) return rc;
        }
    }
    blog(b, SL_LOG_INFO, "data: %zu RL prompts, %zu eval prompts, %zu SFT examples", sl_dataset_size(b->rl_ds),
         b->eval_ds ? sl_dataset_size(b->eval_ds) : 0, b->sft_ds ? sl_dataset_size(b->sft_ds) : 0);
    return SL_OK;
}

/* ============================================================ shm views */

static sl_shm_view *view_for(buffer *b, const sl_shm_desc *d) {
    for (int i = 0; i < b->n_views; i++)
        if (sl_shm_view_matches(b->views[i], d)) return b->views[i];
    sl_shm_view *v = NULL;
    if (sl_shm_arena_open(d, SL_RL_CONSUMER_BUFFER, &v) != 0) return NULL;
    if (b->n_views == MAX_VIEWS) {
        sl_shm_view_close(b->views[0]);
        memmove(b->views, b->views + 1, (MAX_VIEWS - 1) * sizeof *b->views);
        b->n_views--;
    }
    b->views[b->n_views++] = v;
    return v;
}

/* ============================================================== rounds */

static void group_fini(group *g) {
    if (g->wf)
        for (uint32_t i = 0; i < g->n; i++) sl_wf_sample_fini(&g->wf[i]);
    free(g->wf), free(g->wf_taken), free(g->wf_given), free(g->wf_has);
    free(g->batch);
    free(g->rewards);
    free(g->failed);
    memset(g, 0, sizeof *g);
}

static void round_free(rround *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) group_fini(&r->g[i]);
    free(r->g);
    free(r);
}

static rround *round_find(buffer *b, int phase, int64_t step) {
    for (int i = 0; i < b->n_rounds; i++)
        if (b->rounds[i]->phase == phase && b->rounds[i]->step == step) return b->rounds[i];
    return NULL;
}

static void round_drop(buffer *b, rround *r) {
    for (int i = 0; i < b->n_rounds; i++)
        if (b->rounds[i] == r) {
            b->rounds[i] = b->rounds[--b->n_rounds];
            break;
        }
    round_free(r);
}

static rround *round_new(buffer *b, int phase, int64_t step) {
    if (b->n_rounds == (int)SL_ARRAY_LEN(b->rounds)) return NULL;
    rround *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->phase = phase, r->step = step, r->start_ms = (int64_t)sl_now_ms();
    b->rounds[b->n_rounds++] = r;
    return r;
}

static uint64_t group_seed(buffer *b, uint64_t gid, int64_t step, int phase) {
    uint64_t k[4] = {b->seed, gid, (uint64_t)step, (uint64_t)phase};
    return sl_hash64(k, sizeof k);
}

/* Send group G's PROMPTS to the next rollout instance (not AVOID unless it
 * is the only one). */
static int dispatch_group(buffer *b, group *g, int avoid) {
    const sl_dataset *ds = g->phase == PH_EVAL ? b->eval_ds : b->rl_ds;
    const sl_prompt *p = sl_dataset_get_id(ds, g->gid);
    if (!p || !p->ids) return SL_EINVAL;
    int r = b->rr++ % b->n_rollouts;
    if (r == avoid && b->n_rollouts > 1) r = b->rr++ % b->n_rollouts;
    json_t *ids = json_array(), *prompt = json_array();
    for (uint32_t i = 0; i < g->n; i++) json_array_append_new(ids, json_integer((json_int_t)(g->gid + i)));
    for (size_t i = 0; i < p->n_ids; i++) json_array_append_new(prompt, json_integer(p->ids[i]));
    bool ev = g->phase == PH_EVAL;
    json_t *o = json_pack("{s:I,s:s,s:I,s:o,s:o,s:i,s:f,s:f,s:I,s:I,s:I,s:s,s:s}", "step", (json_int_t)g->step,
                          "phase", ev ? "eval" : "rl", "group", (json_int_t)g->gid, "sample_ids", ids, "prompt",
                          prompt, "n", (int)g->n, "temperature", ev ? 0.0 : b->temperature, "top_p",
                          ev ? 1.0 : b->top_p, "top_k", (json_int_t)(ev ? -1 : b->top_k), "max_new_tokens",
                          (json_int_t)b->max_new, "seed", (json_int_t)(group_seed(b, g->gid, g->step, g->phase) >> 1),
                          "label", p->label ? p->label : "", "metadata", p->metadata ? p->metadata : "");
    if (!o) return SL_ENOMEM;
    int rc = sl_rl_json_send(b->ctx, b->rollouts[r], SL_MSG_PROMPTS, o);
    json_decref(o);
    g->rollout = r;
    g->sent_ms = (int64_t)sl_now_ms();
    g->attempts++;
    if (rc) blog(b, SL_LOG_WARN, "PROMPTS to %s: %s (re-dispatched after the timeout)", b->rollouts[r],
                 sl_strerror(rc));
    return SL_OK;
}

/* Take WANT prompts from the RL cursor into rround R. Returns how many. */
static size_t dispatch_rl(buffer *b, rround *r, size_t want) {
    uint64_t *ids = calloc(want ? want : 1, sizeof *ids);
    size_t got = 0;
    if (!ids || sl_dataset_next(b->rl_ds, &b->cursor, ids, want, &got) != 0) got = 0;
    if (r->n + got > r->cap) {
        size_t cap = r->n + got + 16;
        group *ng = realloc(r->g, cap * sizeof *ng);
        if (!ng) got = 0;
        else r->g = ng, r->cap = cap;
    }
    for (size_t i = 0; i < got; i++) {
        group *g = &r->g[r->n++];
        memset(g, 0, sizeof *g);
        g->gid = ids[i], g->phase = PH_RL, g->step = r->step, g->n = (uint32_t)b->n_per;
        dispatch_group(b, g, -1);
    }
    free(ids);
    r->cursor_after = b->cursor;
    return got;
}

static int dispatch_eval(buffer *b, int64_t step) {
    if (!b->eval_ds || round_find(b, PH_EVAL, step)) return SL_OK;
    rround *r = round_new(b, PH_EVAL, step);
    if (!r) return SL_ENOMEM;
    size_t n = sl_dataset_size(b->eval_ds);
    if ((int64_t)n > b->eval_n) n = (size_t)b->eval_n;
    r->g = calloc(n ? n : 1, sizeof *r->g);
    if (!r->g) return SL_ENOMEM;
    r->cap = n;
    for (size_t i = 0; i < n; i++) {
        group *g = &r->g[r->n++];
        uint64_t gid;
        sl_prompt_id_pack(0, i, &gid);
        g->gid = gid, g->phase = PH_EVAL, g->step = step, g->n = 1;
        dispatch_group(b, g, -1);
    }
    b->last_eval_step = step;
    blog(b, SL_LOG_INFO, "eval after RL step %lld: %zu prompts", (long long)step, n);
    return SL_OK;
}

/* ============================================================ SCORED */

static int on_scored(buffer *b, const sl_msg *m) {
    json_t *o = NULL;
    char err[256];
    if (sl_rl_json_parse(m->payload, m->len, &o, err, sizeof err) != 0) {
        b->n_bad++;
        blog(b, SL_LOG_WARN, "bad SCORED from %s: %s", m->sender, err);
        return SL_OK;
    }
    sl_shm_desc d;
    uint64_t gid = 0, step = 0;
    const char *ph = NULL;
    if (sl_rl_json_desc(o, &d) != 0 || sl_rl_json_u64(o, "group", &gid) != 0 ||
        sl_rl_json_u64(o, "step", &step) != 0 || sl_rl_json_str_opt(o, "phase", NULL, &ph) != 0 || !ph) {
        b->n_bad++;
        blog(b, SL_LOG_WARN, "SCORED from %s lacks desc/group/step/phase", m->sender);
        json_decref(o);
        return SL_OK;
    }
    int phase = strcmp(ph, "eval") == 0 ? PH_EVAL : PH_RL;
    rround *r = round_find(b, phase, (int64_t)step);
    group *g = NULL;
    for (size_t i = 0; r && i < r->n; i++)
        if (r->g[i].gid == gid) g = &r->g[i];
    if (b->wf) {
        /* workflow groups: the slot was the reward's alone; the buffer has its copy */
        if (g && !g->done && g->wf_scoring) wf_on_scored(b, r, g, o);
        else if (g) b->n_dup++;
        else b->n_stale++;
        json_decref(o);
        return SL_OK;
    }
    sl_shm_view *v = view_for(b, &d);
    const void *ptr = NULL;
    size_t len = 0;
    int rc = v ? sl_shm_read(v, &d, SL_SHM_READ_TRUST_DATA, &ptr, &len) : SL_ECLOSED;
    if (!g || g->done) {
        if (g) b->n_dup++;
        else b->n_stale++;
        blog(b, SL_LOG_DEBUG, "dropped %s SCORED for group %llu step %llu", g ? "a duplicate" : "a stale",
             (unsigned long long)gid, (unsigned long long)step);
        if (rc == 0) sl_shm_release(v, &d);
        json_decref(o);
        return SL_OK;
    }
    sl_batch_view bv;
    if (rc == 0) rc = sl_batch_view_open(&bv, ptr, len, 0, 0, err, sizeof err);
    else snprintf(err, sizeof err, "%s", sl_strerror(rc));
    json_t *rw = json_object_get(o, "rewards"), *fl = json_object_get(o, "failed");
    if (rc == 0 && (bv.n_samples != g->n || json_array_size(rw) != g->n)) {
        rc = SL_EINVAL;
        snprintf(err, sizeof err, "%u samples / %zu rewards, expected %u", bv.n_samples, json_array_size(rw), g->n);
    }
    for (uint32_t i = 0; rc == 0 && i < g->n; i++)
        if (bv.sample_ids[i] != g->gid + i) {
            rc = SL_EINVAL;
            snprintf(err, sizeof err, "sample %u has id %llu, expected %llu", i,
                     (unsigned long long)bv.sample_ids[i], (unsigned long long)(g->gid + i));
        }
    if (rc != 0) {
        b->n_bad++;
        blog(b, SL_LOG_WARN, "SCORED from %s for group %llu refused: %s", m->sender, (unsigned long long)gid, err);
        if (v && ptr) sl_shm_release(v, &d);
        json_decref(o);
        return SL_OK;
    }
    g->batch = malloc(bv.size);
    g->rewards = calloc(g->n, sizeof(float));
    g->failed = calloc(g->n, 1);
    if (!g->batch || !g->rewards || !g->failed) {
        sl_shm_release(v, &d);
        json_decref(o);
        return SL_ENOMEM;
    }
    memcpy(g->batch, ptr, bv.size);
    g->batch_len = bv.size;
    sl_shm_release(v, &d);
    g->resp_tokens = 0;
    for (uint32_t i = 0; i < g->n; i++) {
        json_t *x = json_array_get(rw, i);
        double rv = json_is_number(x) ? json_number_value(x) : 0;
        g->rewards[i] = isfinite(rv) ? (float)rv : 0.f;
        g->failed[i] = json_is_integer(json_array_get(fl, i)) && json_integer_value(json_array_get(fl, i)) != 0;
        b->n_failed_samples += g->failed[i];
        g->resp_tokens += (int64_t)(bv.offsets[i + 1] - bv.offsets[i] - bv.prompt_len[i]);
    }
    g->done = 1;
    r->n_done++;
    if (r->n_done == r->n) r->end_ms = (int64_t)sl_now_ms();
    if (g->rollout >= 0 && g->rollout < b->n_rollouts) b->last_progress[g->rollout] = (int64_t)sl_now_ms();
    json_decref(o);
    return SL_OK;
}

/* ============================================================ batches */

/* Bytes of a batch of N samples with T tokens and M meta bytes. */
static size_t batch_bytes(uint32_t n, uint64_t t, uint64_t m, uint32_t flags) {
    sl_batch_dims d = {n, t, m, flags};
    size_t s = 0;
    return sl_batch_size(&d, &s) == 0 ? s : 0;
}

/* Publish LEN bytes of DATA (a complete batch) to the trainer with HDR
 * (JSON, "desc" is added) — the WAL write happened before. */
static int send_train_batch(buffer *b, json_t *hdr, const void *data, size_t len) {
    void *slot_ptr;
    uint32_t slot;
    int rc = sl_shm_slot_acquire(b->arena, &slot_ptr, &slot);
    if (rc) return rc; /* SL_EFULL: the trainer still holds them; retried */
    sl_shm_stats st;
    sl_shm_arena_stats(b->arena, &st);
    if (len > st.slot_bytes) {
        sl_shm_slot_cancel(b->arena, slot);
        blog(b, SL_LOG_ERROR, "train batch of %zu bytes over the slot size %zu", len, st.slot_bytes);
        return SL_ERANGE;
    }
    memcpy(slot_ptr, data, len);
    sl_shm_desc d;
    rc = sl_shm_slot_publish_mask(b->arena, slot, len, 1u << SL_RL_CONSUMER_TRAINER, &d);
    if (rc) {
        sl_shm_slot_cancel(b->arena, slot);
        return rc;
    }
    char hex[SL_RL_DESC_HEX_LEN + 1];
    sl_rl_desc_to_hex(&d, hex);
    json_object_set_new(hdr, "desc", json_string(hex));
    rc = sl_rl_json_send(b->ctx, b->trainer, SL_MSG_TRAIN_BATCH, hdr);
    if (rc) blog(b, SL_LOG_WARN, "TRAIN_BATCH to %s: %s", b->trainer, sl_strerror(rc));
    /* a probe sent before this batch no longer says anything about it */
    b->train_sent_ms = b->probe_ms = (int64_t)sl_now_ms();
    b->probe_corr = 0;
    return SL_OK; /* a lost message is seen as a missing TRAIN_DONE: the STATUS probe handles it */
}

/* [sft] loss_mask_spans: every OPEN ... CLOSE id run in the response
 * (TOK[from..n)) gets mask 0 (tool output the model does not write). */
static void mask_spans(buffer *b, const int32_t *tok, uint8_t *mask, uint32_t from, uint32_t n) {
    size_t no = b->n_span_open, nc = b->n_span_close;
    if (!no || !nc) return;
    for (uint32_t i = from; i + no <= n; i++) {
        if (memcmp(tok + i, b->span_open, no * sizeof *tok) != 0) continue;
        uint32_t j = i + (uint32_t)no;
        while (j + nc <= n && memcmp(tok + j, b->span_close, nc * sizeof *tok) != 0) j++;
        if (j + nc > n) return; /* not closed: trained as written */
        for (uint32_t k = i; k < j + nc; k++) mask[k] = 0;
        i = j + (uint32_t)nc - 1;
    }
}

/* The next SFT batch into a heap buffer. */
static int build_sft(buffer *b, uint8_t **out, size_t *out_len, uint32_t *n_out) {
    size_t bs = (size_t)b->sft_bs;
    uint64_t *ids = calloc(bs, sizeof *ids);
    if (!ids) return SL_ENOMEM;
    /* a deterministic position: batch s covers positions (s-1)*bs .. */
    size_t size = sl_dataset_size(b->sft_ds);
    sl_data_cursor c = {(uint32_t)(((uint64_t)b->sft_step * bs) / size), ((uint64_t)b->sft_step * bs) % size};
    size_t got = 0;
    if (sl_dataset_next(b->sft_ds, &c, ids, bs, &got) != 0 || got == 0) {
        free(ids);
        return SL_EINVAL;
    }
    uint64_t T = 0, M = 0;
    for (size_t i = 0; i < got; i++) {
        const sl_prompt *p = sl_dataset_get_id(b->sft_ds, ids[i]);
        T += p->n_ids + p->n_response_ids + (b->eos >= 0);
        M += sl_batch_meta_bytes(p->label, NULL);
    }
    sl_batch_dims dims = {(uint32_t)got, T, M, 0};
    size_t sz = batch_bytes((uint32_t)got, T, M, 0);
    uint8_t *buf = sz ? aligned_alloc(8, (sz + 7) & ~(size_t)7) : NULL;
    int32_t *tok = malloc((size_t)(T ? T : 1) * sizeof *tok);
    uint8_t *mask = malloc(T ? T : 1);
    sl_batch_writer w;
    int rc = buf && tok && mask ? sl_batch_writer_init(&w, buf, sz, &dims, (uint64_t)b->weight_version,
                                                       (uint64_t)b->sft_step + 1, b->vocab)
                                : SL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < got; i++) {
        const sl_prompt *p = sl_dataset_get_id(b->sft_ds, ids[i]);
        uint32_t n = 0;
        for (size_t k = 0; k < p->n_ids; k++) tok[n] = p->ids[k], mask[n++] = 0;
        for (size_t k = 0; k < p->n_response_ids; k++) tok[n] = p->response_ids[k], mask[n++] = 1;
        if (b->eos >= 0) tok[n] = b->eos, mask[n++] = 1;
        mask_spans(b, tok, mask, (uint32_t)p->n_ids, n);
        sl_batch_sample_in s = {.tokens = tok, .n_tokens = n, .prompt_len = (uint32_t)p->n_ids,
                                .loss_mask = mask, .sample_id = ids[i], .group_id = ids[i],
                                .label = p->label};
        if (p->n_ids == 0) rc = SL_EINVAL;
        else rc = sl_batch_writer_add(&w, &s);
    }
    size_t len = 0;
    if (rc == 0) rc = sl_batch_writer_finish(&w, &len);
    free(ids), free(tok), free(mask);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf, *out_len = len, *n_out = (uint32_t)got;
    return SL_OK;
}

static void send_next_sft(buffer *b) {
    uint8_t *data;
    size_t len;
    uint32_t n;
    int rc = build_sft(b, &data, &len, &n);
    if (rc) {
        blog(b, SL_LOG_ERROR, "SFT batch %lld: %s", (long long)b->sft_step + 1, sl_strerror(rc));
        sl_actor_stop(b->ctx, 1);
        return;
    }
    json_t *h = json_pack("{s:I,s:s,s:o,s:I,s:I}", "step", (json_int_t)(b->sft_step + 1), "phase", "sft",
                          "cursor", json_null(), "n_samples", (json_int_t)n, "sft_steps", (json_int_t)b->sft_steps);
    rc = send_train_batch(b, h, data, len);
    json_decref(h);
    free(data);
    if (rc == 0) {
        b->sft_inflight = 1;
        b->sft_sent_ms = (int64_t)sl_now_ms();
    }
}

/* Stats of a set of rewards. */
static void stats(const float *x, size_t n, double *mean, double *sd) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = n ? s / (double)n : NAN;
    for (size_t i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (double)(n - 1)) : 0;
}

/* Build step R's train batch, WAL it, send it. Returns SL_EFULL to retry. */
static int train_round(buffer *b, rround *r) {
    /* which groups are kept */
    size_t n_groups = r->n, n_per = (size_t)b->n_per;
    uint8_t *keep = calloc(n_groups ? n_groups : 1, 1);
    float *all_r = calloc(n_groups * n_per + 1, sizeof(float));
    if (!keep || !all_r) return SL_ENOMEM;
    for (size_t gi = 0; gi < n_groups; gi++) memcpy(all_r + gi * n_per, r->g[gi].rewards, n_per * sizeof(float));
    size_t kept = n_groups;
    if (b->dyn && !b->dsf) sl_rl_dynamic_sampling_filter(all_r, n_groups * n_per, n_per, keep, &kept);
    else if (b->dsf) {
        kept = 0;
        for (size_t gi = 0; gi < n_groups; gi++) kept += keep[gi] = group_keep(b, &r->g[gi], r->step);
    } else
        memset(keep, 1, n_groups);
    if (b->bf) {
        buffer_filter(b, r, keep);
        kept = 0;
        for (size_t gi = 0; gi < n_groups; gi++) kept += keep[gi];
    }
    if (kept == 0) { /* nothing informative: train on all (zero advantages) rather than stall */
        memset(keep, 1, n_groups);
        kept = n_groups;
    }
    size_t take = kept < (size_t)b->rbs ? kept : (size_t)b->rbs;
    /* the taken groups, in dispatch order */
    size_t *sel = calloc(take ? take : 1, sizeof *sel), k = 0;
    for (size_t gi = 0; gi < n_groups && k < take; gi++)
        if (keep[gi]) sel[k++] = gi;
    uint32_t n = (uint32_t)(take * n_per);
    uint64_t T = 0, M = 0, R = 0;
    bool lp = true;
    for (size_t s = 0; s < take; s++) {
        sl_batch_view v;
        group *g = &r->g[sel[s]];
        sl_batch_view_open(&v, g->batch, g->batch_len, 0, SL_BATCH_SKIP_CHECKSUM, NULL, 0);
        T += v.n_tokens;
        M += v.meta_bytes;
        lp = lp && v.logprobs;
        for (uint32_t i = 0; i < v.n_samples; i++) R += v.offsets[i + 1] - v.offsets[i] - v.prompt_len[i];
    }
    bool adv_here = b->kl_coef == 0;
    uint32_t flags = (lp ? SL_BATCH_HAS_LOGPROBS : 0) | (adv_here ? SL_BATCH_HAS_ADVANTAGES : 0);
    /* advantages over the response tokens (rl_algo layout) */
    float *rew = calloc(n + 1, sizeof(float)), *norm = calloc(n + 1, sizeof(float));
    size_t *off = calloc(n + 1, sizeof(size_t));
    float *rmask = calloc(R + 1, sizeof(float)), *adv = calloc(R + 1, sizeof(float));
    int rc = rew && norm && off && rmask && adv ? 0 : SL_ENOMEM;
    size_t si = 0, ri = 0;
    for (size_t s = 0; rc == 0 && s < take; s++) {
        group *g = &r->g[sel[s]];
        sl_batch_view v;
        sl_batch_view_open(&v, g->batch, g->batch_len, 0, SL_BATCH_SKIP_CHECKSUM, NULL, 0);
        for (uint32_t i = 0; i < v.n_samples; i++, si++) {
            rew[si] = g->rewards[i];
            off[si] = ri;
            for (uint64_t t = v.offsets[i] + v.prompt_len[i]; t < v.offsets[i + 1]; t++) rmask[ri++] = v.loss_mask[t];
        }
    }
    off[n] = ri;
    if (rc == 0 && adv_here) {
        rc = sl_rl_group_rewards(rew, n, n_per, b->est, true, b->std_norm, norm);
        sl_rl_adv_config ac = {b->est, 0.f, SL_KL_K1, 1.f,
                               b->est == SL_ADV_REINFORCE_PLUS_PLUS || b->est == SL_ADV_REINFORCE_PLUS_PLUS_BASELINE};
        bool any_mask = false;
        for (size_t t = 0; t < ri; t++) any_mask = any_mask || rmask[t] != 0;
        if (rc == 0 && (ac.normalize_advantages || b->est == SL_ADV_REINFORCE_PLUS_PLUS) && !any_mask)
            memset(adv, 0, (R + 1) * sizeof(float));
        else if (rc == 0)
            rc = sl_rl_advantages(&ac, n, off, rmask, norm, NULL, adv, NULL);
    }
    /* write the batch */
    size_t sz = batch_bytes(n, T, M, flags);
    uint8_t *buf = sz ? aligned_alloc(8, (sz + 7) & ~(size_t)7) : NULL;
    float *fadv = calloc(T + 1, sizeof(float));
    if (rc == 0 && (!buf || !fadv)) rc = SL_ENOMEM;
    sl_batch_dims dims = {n, T, M, flags};
    sl_batch_writer w;
    if (rc == 0) rc = sl_batch_writer_init(&w, buf, sz, &dims, (uint64_t)b->weight_version, (uint64_t)r->step, b->vocab);
    si = 0, ri = 0;
    double len_sum = 0;
    int64_t n_failed = 0, lag = 0, zero_std = 0;
    for (size_t s = 0; rc == 0 && s < take; s++) {
        group *g = &r->g[sel[s]];
        sl_batch_view v;
        sl_batch_view_open(&v, g->batch, g->batch_len, 0, SL_BATCH_SKIP_CHECKSUM, NULL, 0);
        for (uint32_t i = 0; rc == 0 && i < v.n_samples; i++, si++) {
            sl_batch_sample x;
            sl_batch_view_sample(&v, i, &x);
            for (uint32_t t = 0; t < x.n_tokens; t++) fadv[t] = t >= x.prompt_len ? adv[ri++] : 0.f;
            len_sum += x.n_tokens - x.prompt_len;
            n_failed += g->failed[i];
            if (b->weight_version - (int64_t)x.weight_version > lag) lag = b->weight_version - (int64_t)x.weight_version;
            if (i == 0) {
                double gm, gsd;
                stats(g->rewards, v.n_samples, &gm, &gsd);
                zero_std += gsd <= 1e-6;
            }
            sl_batch_sample_in in = {.tokens = x.tokens, .n_tokens = x.n_tokens, .prompt_len = x.prompt_len,
                                     .logprobs = x.logprobs, .loss_mask = x.loss_mask,
                                     .advantages = adv_here ? fadv : NULL, .reward = g->rewards[i],
                                     .sample_id = x.sample_id, .group_id = x.group_id,
                                     .weight_version = x.weight_version, .flags = x.flags & ~SL_SAMPLE_EVAL,
                                     .label = x.label, .metadata = x.metadata};
            rc = sl_batch_writer_add(&w, &in);
        }
    }
    size_t len = 0;
    if (rc == 0) rc = sl_batch_writer_finish(&w, &len);
    /* figures of the step: every gathered sample (slime logs the raw rollout) */
    if (rc == 0) {
        double mean, sd;
        stats(all_r, n_groups * n_per, &mean, &sd);
        int64_t toks = 0;
        for (size_t gi = 0; gi < n_groups; gi++) toks += r->g[gi].resp_tokens;
        double secs = (double)((r->end_ms ? r->end_ms : (int64_t)sl_now_ms()) - r->start_ms) / 1000.0;
        b->tr_reward_mean = mean, b->tr_reward_std = sd;
        b->tr_len_mean = n_groups ? (double)toks / (double)(n_groups * n_per) : 0;
        b->tr_tokens_per_s = secs > 0 ? (double)toks / secs : NAN;
        b->tr_n = n, b->tr_failed = n_failed, b->tr_groups_total = (int64_t)n_groups, b->tr_groups_kept = (int64_t)kept;
        size_t correct = 0;
        for (size_t k2 = 0; k2 < n_groups * n_per; k2++) correct += all_r[k2] == 1.0f;
        b->tr_accuracy = n_groups ? (double)correct / (double)(n_groups * n_per) : 0;
        b->tr_n_wm = r->n_wm;
        for (int k2 = 0; k2 < r->n_wm; k2++) {
            snprintf(b->tr_wm_name[k2], SL_WF_METRIC_NAME_MAX, "%s", r->wm_name[k2]);
            b->tr_wm_mean[k2] = r->wm_cnt[k2] ? r->wm_sum[k2] / (double)r->wm_cnt[k2] : 0;
        }
        b->tr_staleness = lag, b->tr_zero_std_groups = zero_std;
    }
    json_t *h = NULL;
    char *htxt = NULL;
    if (rc == 0) {
        h = json_pack("{s:I,s:s,s:o,s:I,s:I}", "step", (json_int_t)r->step, "phase", "rl", "cursor",
                      cursor_json(b, &r->cursor_after), "n_samples", (json_int_t)n, "group_size", (json_int_t)n_per);
        htxt = h ? json_dumps(h, JSON_COMPACT) : NULL;
        if (!htxt) rc = SL_ENOMEM;
    }
    /* WAL: u32 header length | header JSON | batch bytes; synced before the send */
    if (rc == 0) {
        size_t hl = strlen(htxt);
        uint8_t *rec = malloc(4 + hl + len);
        if (!rec) rc = SL_ENOMEM;
        else {
            sl_put_u32(rec, (uint32_t)hl);
            memcpy(rec + 4, htxt, hl);
            memcpy(rec + 4 + hl, buf, len);
            sl_fault_point("wal_append"); /* faults.h */
            rc = sl_wal_append(b->wal, rec, 4 + hl + len, NULL);
            if (rc == 0) rc = sl_wal_sync(b->wal);
            free(rec);
        }
        if (rc) blog(b, SL_LOG_ERROR, "WAL append: %s", sl_strerror(rc));
    }
    if (rc == 0) {
        sl_fault_point("wal_ack"); /* faults.h */
        rc = send_train_batch(b, h, buf, len);
        if (rc == SL_EFULL) blog(b, SL_LOG_DEBUG, "arena full: step %lld waits", (long long)r->step);
    }
    /* samples.jsonl for the report: the first two samples of the step */
    if (rc == 0 && take > 0) {
        group *g = &r->g[sel[0]];
        sl_batch_view v;
        sl_batch_view_open(&v, g->batch, g->batch_len, 0, SL_BATCH_SKIP_CHECKSUM, NULL, 0);
        for (uint32_t i = 0; i < v.n_samples && i < 2; i++) {
            sl_batch_sample x;
            sl_batch_view_sample(&v, i, &x);
            char *pt = NULL, *rt = NULL;
            if (sl_tokenizer_decode(b->tok, x.tokens, x.prompt_len, 0, &pt, NULL) == 0 &&
                sl_tokenizer_decode(b->tok, x.tokens + x.prompt_len, x.n_tokens - x.prompt_len, 0, &rt, NULL) == 0)
                sl_report_append_sample(b->run_dir, r->step, pt, rt, g->rewards[i]);
            free(pt), free(rt);
        }
    }
    json_decref(h);
    free(htxt), free(buf), free(fadv), free(rew), free(norm), free(off), free(rmask), free(adv);
    free(keep), free(all_r), free(sel);
    return rc;
}

/* ============================================================ workflow */

/* dlopen FILE.so[:SYMBOL] for a [rollout] plugin key. NULL path = none. */
static int load_plugin(buffer *b, const char *key, const char *def_sym, void **dl, void **fn) {
    const char *v = sl_topology_get_str(b->t, "rollout", key);
    if (!v || !*v) return SL_OK;
    char file[4096], sym[256];
    const char *c = strrchr(v, ':');
    if (c && c != v && !strchr(c, '/')) {
        snprintf(file, sizeof file, "%.*s", (int)(c - v), v);
        snprintf(sym, sizeof sym, "%s", c + 1);
    } else {
        snprintf(file, sizeof file, "%s", v);
        snprintf(sym, sizeof sym, "%s", def_sym);
    }
    *dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!*dl) {
        blog(b, SL_LOG_ERROR, "[rollout] %s: cannot load %s: %s", key, file, dlerror());
        return SL_EINVAL;
    }
    *fn = dlsym(*dl, sym);
    if (!*fn) {
        blog(b, SL_LOG_ERROR, "[rollout] %s: %s has no symbol %s", key, file, sym);
        return SL_EINVAL;
    }
    blog(b, SL_LOG_INFO, "[rollout] %s: %s:%s loaded", key, file, sym);
    return SL_OK;
}

static int load_filters(buffer *b) {
    void *f1 = NULL, *f2 = NULL;
    int rc = load_plugin(b, "dynamic_sampling_filter_path", SL_DYNAMIC_FILTER_DEFAULT_SYMBOL, &b->dsf_dl, &f1);
    if (!rc) rc = load_plugin(b, "buffer_filter_path", SL_BUFFER_FILTER_DEFAULT_SYMBOL, &b->bf_dl, &f2);
    b->dsf = (sl_dynamic_sampling_filter_fn)(uintptr_t)f1;
    b->bf = (sl_buffer_filter_fn)(uintptr_t)f2;
    return rc;
}

/* The filter view of a complete group (arrays: caller's, n entries each). */
static void filter_input(buffer *b, const group *g, int64_t step, sl_group_filter_input *in, uint32_t *rlen,
                         const int32_t **tok, uint32_t *ntok) {
    sl_batch_view v;
    memset(in, 0, sizeof *in);
    in->abi_version = SL_WORKFLOW_PLUGIN_ABI;
    in->n_samples = g->n, in->step = step, in->group_id = g->gid;
    in->rewards = g->rewards, in->failed = g->failed;
    in->response_len = rlen, in->tokens = tok, in->n_tokens = ntok;
    (void)b;
    if (sl_batch_view_open(&v, g->batch, g->batch_len, 0, SL_BATCH_SKIP_CHECKSUM, NULL, 0) != 0) return;
    for (uint32_t i = 0; i < v.n_samples && i < g->n; i++) {
        sl_batch_sample x;
        sl_batch_view_sample(&v, i, &x);
        rlen[i] = x.n_tokens - x.prompt_len, tok[i] = x.tokens, ntok[i] = x.n_tokens;
        if (i == 0) in->prompt_len = x.prompt_len, in->label = x.label, in->metadata = x.metadata;
    }
}

/* Whether a complete RL group is kept: the dynamic-sampling filter plugin,
 * or DAPO's rule (rewards not all equal). */
static bool group_keep(buffer *b, group *g, int64_t step) {
    if (!b->dsf) {
        double m, sd;
        stats(g->rewards, g->n, &m, &sd);
        return sd > 1e-6;
    }
    uint32_t *rlen = calloc(g->n, sizeof *rlen), *ntok = calloc(g->n, sizeof *ntok);
    const int32_t **tok = calloc(g->n, sizeof *tok);
    int k = 1;
    if (rlen && ntok && tok) {
        sl_group_filter_input in;
        filter_input(b, g, step, &in, rlen, tok, ntok);
        k = b->dsf(&in);
        if (k != 0 && k != 1) {
            blog(b, SL_LOG_WARN, "dynamic_sampling_filter returned %d for group %llu: kept", k,
                 (unsigned long long)g->gid);
            k = 1;
        }
    }
    free(rlen), free(ntok), free(tok);
    return k != 0;
}

/* The buffer filter plugin over rround R's groups (KEEP updated in place). */
static void buffer_filter(buffer *b, rround *r, uint8_t *keep) {
    size_t n = r->n;
    sl_group_filter_input *in = calloc(n ? n : 1, sizeof *in);
    uint32_t **rl = calloc(n ? n : 1, sizeof *rl), **nt = calloc(n ? n : 1, sizeof *nt);
    const int32_t ***tk = calloc(n ? n : 1, sizeof *tk);
    uint8_t *k2 = malloc(n ? n : 1);
    bool ok = in && rl && nt && tk && k2;
    for (size_t i = 0; ok && i < n; i++) {
        rl[i] = calloc(r->g[i].n, sizeof **rl), nt[i] = calloc(r->g[i].n, sizeof **nt);
        tk[i] = calloc(r->g[i].n, sizeof **tk);
        ok = rl[i] && nt[i] && tk[i];
        if (ok) filter_input(b, &r->g[i], r->step, &in[i], rl[i], tk[i], nt[i]);
    }
    if (ok) {
        memcpy(k2, keep, n);
        int rc = b->bf(r->step, in, n, k2);
        if (rc == 0)
            for (size_t i = 0; i < n; i++) keep[i] = keep[i] && k2[i];
        else
            blog(b, SL_LOG_WARN, "buffer_filter returned %d at step %lld: ignored", rc, (long long)r->step);
    }
    for (size_t i = 0; i < n && rl && nt && tk; i++) free(rl[i]), free(nt[i]), free(tk[i]);
    free(in), free(rl), free(nt), free(tk), free(k2);
}

static int sender_index(buffer *b, const char *name) {
    for (int i = 0; i < b->n_rollouts; i++)
        if (strcmp(b->rollouts[i], name) == 0) return i;
    return -1;
}

static void wf_ack(buffer *b, const sl_msg *m, uint64_t gid, uint32_t index, sl_wf_reason r) {
    json_t *o = json_pack("{s:I,s:i,s:b,s:s}", "group", (json_int_t)gid, "index", (int)index, "ok", r == SL_WF_OK,
                          "reason", r == SL_WF_OK ? "" : sl_wf_reason_name(r));
    if (!o) return;
    if (sl_rl_is_request(m)) sl_rl_json_reply(b->ctx, m, SL_MSG_WF_ACK, o);
    else sl_rl_json_send(b->ctx, m->sender, SL_MSG_WF_ACK, o);
    json_decref(o);
}

/* Publish group G's batch to a reward actor (SAMPLES, consumer = that
 * reward only: the buffer keeps its own copy in g->batch). */
static int wf_send_scoring(buffer *b, group *g) {
    void *ptr;
    uint32_t slot;
    int rc = sl_shm_slot_acquire(b->wf_arena, &ptr, &slot);
    if (rc == SL_EFULL) {
        /* a reward that died holding slots never releases them: drop every
         * reward hold (a live reward then reads a stale slot, refuses it, and
         * the group is scored again after the timeout) */
        int n = 0;
        for (int i = 0; i < b->n_rewards; i++)
            n += sl_shm_arena_reclaim(b->wf_arena, SL_RL_CONSUMER_REWARD_BASE + (unsigned)b->rewards[i]->index);
        blog(b, SL_LOG_WARN, "workflow samples arena full: dropped %d reward hold(s)", n);
        rc = sl_shm_slot_acquire(b->wf_arena, &ptr, &slot);
    }
    if (rc) return rc;
    if (g->batch_len > b->wf_slot_bytes) {
        sl_shm_slot_cancel(b->wf_arena, slot);
        return SL_ERANGE;
    }
    memcpy(ptr, g->batch, g->batch_len);
    int ri = b->rr_reward++ % b->n_rewards;
    unsigned rcid = SL_RL_CONSUMER_REWARD_BASE + (unsigned)b->rewards[ri]->index;
    sl_shm_desc d;
    rc = sl_shm_slot_publish_mask(b->wf_arena, slot, g->batch_len, 1u << rcid, &d);
    if (rc) {
        sl_shm_slot_cancel(b->wf_arena, slot);
        return rc;
    }
    char hex[SL_RL_DESC_HEX_LEN + 1];
    sl_rl_desc_to_hex(&d, hex);
    sl_batch_view v;
    uint64_t wv = 0;
    if (sl_batch_view_open(&v, g->batch, g->batch_len, 0, SL_BATCH_SKIP_CHECKSUM, NULL, 0) == 0) wv = v.weight_version;
    json_t *o = json_pack("{s:s,s:I,s:s,s:I,s:I,s:{s:i}}", "desc", hex, "step", (json_int_t)g->step, "phase",
                          g->phase == PH_EVAL ? "eval" : "rl", "group", (json_int_t)g->gid, "weight_version",
                          (json_int_t)wv, "consumers", "reward", (int)rcid);
    rc = o ? sl_rl_json_send(b->ctx, b->rewards[ri]->name, SL_MSG_SAMPLES, o) : SL_ENOMEM;
    json_decref(o);
    if (rc) blog(b, SL_LOG_WARN, "SAMPLES of workflow group %llu to %s: %s (sent again after the timeout)",
                 (unsigned long long)g->gid, b->rewards[ri]->name, sl_strerror(rc));
    g->wf_scoring = 1;
    g->wf_score_ms = (int64_t)sl_now_ms();
    return SL_OK;
}

/* Group G of rround R is scored: REWARDS (NULL: the workflow's own) and
 * FAILED (may be NULL). */
static void wf_group_done(buffer *b, rround *r, group *g, const float *rewards, const uint8_t *failed) {
    sl_batch_view v;
    g->resp_tokens = 0;
    if (sl_batch_view_open(&v, g->batch, g->batch_len, 0, SL_BATCH_SKIP_CHECKSUM, NULL, 0) == 0)
        for (uint32_t i = 0; i < v.n_samples; i++) g->resp_tokens += (int64_t)(v.offsets[i + 1] - v.offsets[i] - v.prompt_len[i]);
    for (uint32_t i = 0; i < g->n; i++) {
        bool own = g->wf_has[i] || !rewards;
        g->rewards[i] = own ? g->wf_given[i] : rewards[i];
        g->failed[i] = !own && failed ? failed[i] : 0;
        b->n_failed_samples += g->failed[i];
    }
    g->done = 1;
    g->wf_scoring = 0;
    r->n_done++;
    if (r->n_done == r->n) r->end_ms = (int64_t)sl_now_ms();
}

/* Every sample of G is in: write the group batch, then score it. */
static int wf_group_complete(buffer *b, rround *r, group *g) {
    const sl_dataset *ds = g->phase == PH_EVAL ? b->eval_ds : b->rl_ds;
    const sl_prompt *p = sl_dataset_get_id(ds, g->gid);
    const char *label = p ? p->label : NULL;
    sl_batch_dims dims = {g->n, 0, 0, SL_BATCH_HAS_LOGPROBS};
    for (uint32_t i = 0; i < g->n; i++) {
        dims.n_tokens += g->wf[i].n_tokens;
        dims.meta_bytes += sl_batch_meta_bytes(label, g->wf[i].metadata ? g->wf[i].metadata : (p ? p->metadata : NULL));
    }
    size_t sz = batch_bytes(dims.n_samples, dims.n_tokens, dims.meta_bytes, dims.flags);
    g->batch = sz ? aligned_alloc(8, (sz + 7) & ~(size_t)7) : NULL;
    g->rewards = calloc(g->n, sizeof(float));
    g->failed = calloc(g->n, 1);
    if (!g->batch || !g->rewards || !g->failed) return SL_ENOMEM;
    sl_batch_writer w;
    int rc = sl_batch_writer_init(&w, g->batch, sz, &dims, g->wf[0].weight_version, (uint64_t)g->step, b->vocab);
    for (uint32_t i = 0; rc == 0 && i < g->n; i++) {
        sl_wf_sample *s = &g->wf[i];
        sl_batch_sample_in in = {.tokens = s->tokens, .n_tokens = s->n_tokens, .prompt_len = s->prompt_len,
                                 .logprobs = s->logprobs, .loss_mask = s->loss_mask,
                                 .reward = s->has_reward ? (float)s->reward : 0.f, .sample_id = s->sample_id,
                                 .group_id = g->gid, .weight_version = s->weight_version,
                                 .flags = g->phase == PH_EVAL ? SL_SAMPLE_EVAL : 0, .label = label,
                                 .metadata = s->metadata ? s->metadata : (p ? p->metadata : NULL)};
        rc = sl_batch_writer_add(&w, &in);
    }
    size_t len = 0;
    if (rc == 0) rc = sl_batch_writer_finish(&w, &len);
    if (rc) {
        blog(b, SL_LOG_ERROR, "workflow group %llu: cannot write its batch: %s", (unsigned long long)g->gid,
             sl_strerror(rc));
        free(g->batch), g->batch = NULL;
        return rc;
    }
    g->batch_len = len;
    /* the workflow's metrics, averaged per step */
    for (uint32_t i = 0; i < g->n; i++)
        for (int k = 0; k < g->wf[i].n_metrics; k++) {
            int j = 0;
            while (j < r->n_wm && strcmp(r->wm_name[j], g->wf[i].metric_name[k]) != 0) j++;
            if (j == r->n_wm) {
                if (r->n_wm == MAX_WF_METRICS) continue;
                snprintf(r->wm_name[j], SL_WF_METRIC_NAME_MAX, "%s", g->wf[i].metric_name[k]);
                r->n_wm++;
            }
            r->wm_sum[j] += g->wf[i].metric_value[k];
            r->wm_cnt[j]++;
        }
    bool all_given = true;
    for (uint32_t i = 0; i < g->n; i++) all_given = all_given && g->wf_has[i];
    for (uint32_t i = 0; i < g->n; i++) sl_wf_sample_fini(&g->wf[i]);
    free(g->wf), g->wf = NULL;
    if (all_given) {
        wf_group_done(b, r, g, NULL, NULL);
        return SL_OK;
    }
    rc = wf_send_scoring(b, g);
    if (rc) {
        /* retried by the timeout (wf_scoring with an old time) */
        g->wf_scoring = 1;
        g->wf_score_ms = 0;
        blog(b, SL_LOG_WARN, "workflow group %llu: scoring not sent (%s): retried", (unsigned long long)g->gid,
             sl_strerror(rc));
    }
    return SL_OK;
}

/* WF_SAMPLE: check, acknowledge, keep. */
static int on_wf_sample(buffer *b, const sl_msg *m) {
    sl_wf_sample s;
    char why[256];
    sl_wf_reason r = b->wf ? sl_wf_sample_parse(m->payload, m->len, &b->wf_lim, &s, why, sizeof why)
                           : SL_WF_UNKNOWN_GROUP;
    if (!b->wf) {
        memset(&s, 0, sizeof s);
        snprintf(why, sizeof why, "this run has no workflow actor");
    }
    rround *rd = NULL;
    group *g = NULL;
    if (r == SL_WF_OK) {
        rd = round_find(b, s.eval ? PH_EVAL : PH_RL, s.step);
        for (size_t i = 0; rd && i < rd->n; i++)
            if (rd->g[i].gid == s.group) g = &rd->g[i];
        const sl_dataset *ds = s.eval ? b->eval_ds : b->rl_ds;
        const sl_prompt *p = g ? sl_dataset_get_id(ds, g->gid) : NULL;
        uint64_t *ids = g ? calloc(g->n, sizeof *ids) : NULL;
        int32_t *pr = p && p->n_ids ? malloc(p->n_ids * sizeof *pr) : NULL;
        for (uint32_t i = 0; ids && i < g->n; i++) ids[i] = g->gid + i;
        for (size_t i = 0; pr && i < p->n_ids; i++) pr[i] = p->ids[i];
        if (g && !g->wf_taken && !g->done) {
            g->wf = calloc(g->n, sizeof *g->wf);
            g->wf_taken = calloc(g->n, 1);
            g->wf_given = calloc(g->n, sizeof(float));
            g->wf_has = calloc(g->n, 1);
        }
        sl_wf_expect e = {.found = g && p && ids && pr, .complete = g && (g->done || g->wf_scoring),
                          .n = g ? g->n : 0, .sample_ids = ids, .prompt = pr,
                          .prompt_len = p ? (uint32_t)p->n_ids : 0, .taken = g ? g->wf_taken : NULL};
        if (g && !e.complete && (!g->wf || !g->wf_taken || !g->wf_given || !g->wf_has)) e.found = 0;
        r = sl_wf_sample_check(&s, &e, why, sizeof why);
        free(ids), free(pr);
    }
    wf_ack(b, m, s.group, s.index, r);
    if (r != SL_WF_OK) {
        b->wf_refused[r]++;
        blog(b, SL_LOG_WARN, "refused a sample from %s (group %llu, index %u, %s step %lld): %s: %s", m->sender,
             (unsigned long long)s.group, s.index, s.eval ? "eval" : "rl", (long long)s.step, sl_wf_reason_name(r),
             why);
        sl_wf_sample_fini(&s);
        return SL_OK;
    }
    b->wf_accepted++;
    g->wf[s.index] = s; /* moved */
    g->wf_taken[s.index] = 1;
    g->wf_has[s.index] = (uint8_t)s.has_reward;
    g->wf_given[s.index] = (float)s.reward;
    g->wf_n_taken++;
    int si = sender_index(b, m->sender);
    if (si >= 0) b->last_progress[si] = (int64_t)sl_now_ms();
    if (g->wf_n_taken == g->n) return wf_group_complete(b, rd, g);
    return SL_OK;
}

/* SCORED for a workflow group (its batch is the buffer's own copy). */
static void wf_on_scored(buffer *b, rround *r, group *g, json_t *o) {
    json_t *rw = json_object_get(o, "rewards"), *fl = json_object_get(o, "failed");
    if (json_array_size(rw) != g->n) {
        b->n_bad++;
        blog(b, SL_LOG_WARN, "SCORED for workflow group %llu with %zu rewards (expected %u): scored again later",
             (unsigned long long)g->gid, json_array_size(rw), g->n);
        return;
    }
    float *rv = calloc(g->n, sizeof *rv);
    uint8_t *fv = calloc(g->n, 1);
    if (!rv || !fv) {
        free(rv), free(fv);
        return;
    }
    for (uint32_t i = 0; i < g->n; i++) {
        json_t *x = json_array_get(rw, i);
        double v = json_is_number(x) ? json_number_value(x) : 0;
        rv[i] = isfinite(v) ? (float)v : 0.f;
        fv[i] = json_is_integer(json_array_get(fl, i)) && json_integer_value(json_array_get(fl, i)) != 0;
    }
    wf_group_done(b, r, g, rv, fv);
    free(rv), free(fv);
}

/* Complete workflow groups whose SCORED did not come: score them again. */
static void wf_rescore_lost(buffer *b, int64_t now) {
    for (int ri = 0; ri < b->n_rounds; ri++) {
        rround *r = b->rounds[ri];
        for (size_t i = 0; i < r->n; i++) {
            group *g = &r->g[i];
            if (g->done || !g->wf_scoring || now - g->wf_score_ms < b->timeout_ms) continue;
            b->wf_rescored++;
            blog(b, SL_LOG_WARN, "workflow group %llu: no SCORED after %lld ms: scored again",
                 (unsigned long long)g->gid, (long long)(now - g->wf_score_ms));
            if (wf_send_scoring(b, g) != SL_OK) g->wf_score_ms = now;
        }
    }
}

/* The refusal counts as a JSON object (reasons with a count only). */
static json_t *wf_refused_json(buffer *b) {
    json_t *o = json_object();
    for (int i = 1; o && i < SL_WF_N_REASONS; i++)
        if (b->wf_refused[i]) json_object_set_new(o, sl_wf_reason_name((sl_wf_reason)i), json_integer((json_int_t)b->wf_refused[i]));
    return o;
}

/* ============================================================ metrics */

static double eta_s(buffer *b) {
    int64_t done = b->rl_done - b->rl_start_step;
    if (done <= 0) return NAN;
    double per = (double)((int64_t)sl_now_ms() - b->rl_start_ms) / 1000.0 / (double)done;
    double left = per * (double)(b->num_steps - b->rl_done);
    return left;
}

/* A workflow run's extra keys in a metrics line: the per-sample metrics'
 * means (a name the line already has is left alone), the samples accepted
 * and the refusals per reason so far. */
static void wf_metrics_into(buffer *b, json_t *line, int n, char name[][SL_WF_METRIC_NAME_MAX], const double *mean) {
    for (int k = 0; k < n; k++)
        if (!json_object_get(line, name[k])) json_object_set_new(line, name[k], json_real(mean[k]));
    json_object_set_new(line, "wf_accepted", json_integer((json_int_t)b->wf_accepted));
    json_object_set_new(line, "wf_refused", wf_refused_json(b));
}

static void progress(buffer *b, const char *phase, int64_t step, int64_t total) {
    sl_progress p = {phase, step, total, b->last_reward, b->last_eval, b->last_tps,
                     strcmp(phase, "rl") == 0 ? eta_s(b) : NAN};
    sl_metrics_progress(b->metrics, &p);
}

static void copy_metric(json_t *dst, json_t *src, const char *key) {
    json_t *v = json_object_get(src, key);
    if (json_is_number(v)) json_object_set(dst, key, v);
}

static void finish_eval(buffer *b, rround *r) {
    int64_t correct = 0, total = 0, toks = 0;
    float *rw = calloc(r->n + 1, sizeof(float));
    for (size_t i = 0; i < r->n; i++) {
        group *g = &r->g[i];
        rw[i] = g->rewards[0];
        correct += !g->failed[0] && g->rewards[0] == 1.0f;
        total++;
        toks += g->resp_tokens;
    }
    double mean, sd;
    stats(rw, r->n, &mean, &sd);
    free(rw);
    double acc = total ? (double)correct / (double)total : 0;
    double secs = (double)(r->end_ms - r->start_ms) / 1000.0;
    json_t *o = json_pack("{s:I,s:I,s:s,s:f,s:f,s:f,s:f,s:I,s:I,s:I}", "step", (json_int_t)(b->sft_steps + r->step),
                          "rl_step", (json_int_t)r->step, "phase", "eval", "eval_accuracy", acc, "reward_mean", mean,
                          "reward_std", sd, "response_len_mean", total ? (double)toks / (double)total : 0.0,
                          "weight_version", (json_int_t)b->weight_version, "eval_n", (json_int_t)total,
                          "samples_trained", (json_int_t)b->samples_total);
    if (o && secs > 0) json_object_set_new(o, "tokens_per_s", json_real((double)toks / secs));
    if (o && b->wf) {
        double mean_wm[MAX_WF_METRICS];
        for (int k = 0; k < r->n_wm; k++) mean_wm[k] = r->wm_cnt[k] ? r->wm_sum[k] / (double)r->wm_cnt[k] : 0;
        wf_metrics_into(b, o, r->n_wm, r->wm_name, mean_wm);
    }
    if (o) sl_metrics_write(b->metrics, o);
    json_decref(o);
    b->last_eval = acc;
    blog(b, SL_LOG_INFO, "eval after RL step %lld: accuracy %.3f (%lld/%lld), reward %.3f", (long long)r->step, acc,
         (long long)correct, (long long)total, mean);
    progress(b, "eval", r->step, b->num_steps);
}

/* ============================================================ resume */

/* A scan of the WAL: the records of steps after < step <= upto, the latest
 * one of each step, collected into the list *list (*n entries). */
typedef struct wal_scan {
    int64_t after;
    int64_t upto;
    resend **list;
    size_t *n;
} wal_scan;

static int wal_record(void *user, uint64_t seq, const void *data, size_t len) {
    wal_scan *ws = user;
    (void)seq;
    if (len < 4) return 0;
    uint32_t hl = sl_get_u32(data);
    if ((size_t)hl + 4 > len) return 0;
    json_t *h = json_loadb((const char *)data + 4, hl, 0, NULL);
    uint64_t step = 0;
    if (!h || sl_rl_json_u64(h, "step", &step) != 0 || step > (uint64_t)INT64_MAX || (int64_t)step <= ws->after ||
        (int64_t)step > ws->upto) {
        json_decref(h);
        return 0;
    }
    json_decref(h);
    /* a later record of the same step replaces an earlier one */
    resend *rs = NULL;
    for (size_t i = 0; i < *ws->n; i++)
        if ((*ws->list)[i].step == (int64_t)step) rs = &(*ws->list)[i];
    if (!rs) {
        resend *nr = realloc(*ws->list, (*ws->n + 1) * sizeof *nr);
        if (!nr) return SL_ENOMEM;
        *ws->list = nr;
        rs = &nr[(*ws->n)++];
        memset(rs, 0, sizeof *rs);
    }
    free(rs->hdr), free(rs->data);
    rs->step = (int64_t)step;
    rs->hdr = strndup((const char *)data + 4, hl);
    rs->len = len - 4 - hl;
    rs->data = aligned_alloc(8, (rs->len + 8) & ~(size_t)7);
    if (!rs->hdr || !rs->data) return SL_ENOMEM;
    memcpy(rs->data, (const uint8_t *)data + 4 + hl, rs->len);
    return 0;
}

static int cmp_resend(const void *x, const void *y) {
    const resend *a = x, *c = y;
    return a->step < c->step ? -1 : a->step > c->step;
}

/* Add the WAL PATH's records of steps AFTER+1..UPTO to *LIST (*N entries;
 * a step already there is replaced), sorted by step. Returns what
 * sl_wal_replay returns (what was read before an error is kept). */
static int wal_collect(const char *path, int64_t after, int64_t upto, resend **list, size_t *n) {
    wal_scan ws = {after, upto, list, n};
    int rc = sl_wal_replay(path, wal_record, &ws, NULL);
    if (*n) qsort(*list, *n, sizeof **list, cmp_resend);
    return rc;
}

static void resends_free(resend *list, size_t n) {
    for (size_t i = 0; i < n; i++) free(list[i].hdr), free(list[i].data);
    free(list);
}

/* The weight_version of RL step STEP in RUN_DIR/ledger.jsonl (-1: none). */
static int64_t ledger_version(const buffer *b, int64_t step) {
    char p[4200];
    snprintf(p, sizeof p, "%s/ledger.jsonl", b->run_dir);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    int64_t wv = -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_t *o = json_loadb(line, (size_t)n, 0, NULL);
        json_t *s = json_object_get(o, "step"), *v = json_object_get(o, "weight_version");
        if (json_is_integer(s) && json_integer_value(s) == step && json_is_integer(v)) wv = json_integer_value(v);
        json_decref(o);
    }
    free(line);
    fclose(f);
    return wv;
}

/* Metrics lines of RL steps LAST+1..STEP, which the trainer finished but
 * whose TRAIN_DONE never reached us (the run stopped in between), rebuilt
 * from their WAL'd batches: the buffer's own figures (rewards, lengths,
 * samples); the trainer's (loss, kl, ...) are lost: "recovered": true. */
static void recover_metrics(buffer *b, const char *wal_path, int64_t last, int64_t step) {
    resend *list = NULL;
    size_t n_list = 0;
    wal_collect(wal_path, last, step, &list, &n_list);
    for (size_t k = 0; k < n_list; k++) {
        resend *rs = &list[k];
        sl_batch_view v;
        if (sl_batch_view_open(&v, rs->data, rs->len, 0, SL_BATCH_SKIP_CHECKSUM, NULL, 0) != 0 || !v.n_samples) continue;
        double sum = 0, sum2 = 0, len = 0;
        for (uint32_t i = 0; i < v.n_samples; i++) {
            sl_batch_sample x;
            sl_batch_view_sample(&v, i, &x);
            sum += x.reward, sum2 += (double)x.reward * x.reward, len += x.n_tokens - x.prompt_len;
        }
        double n = v.n_samples, mean = sum / n;
        double var = n > 1 ? (sum2 - n * mean * mean) / (n - 1) : 0;
        b->samples_total += v.n_samples;
        json_t *line = json_pack("{s:I,s:I,s:s,s:f,s:f,s:f,s:I,s:I,s:b}", "step", (json_int_t)(b->sft_steps + rs->step),
                                 "rl_step", (json_int_t)rs->step, "phase", "rl", "reward_mean", mean, "reward_std",
                                 var > 0 ? sqrt(var) : 0.0, "response_len_mean", len / n, "samples_trained",
                                 (json_int_t)b->samples_total, "samples_step", (json_int_t)v.n_samples, "recovered", 1);
        int64_t wv = ledger_version(b, rs->step);
        if (line && wv >= 0) json_object_set_new(line, "weight_version", json_integer(wv));
        if (line) sl_metrics_write(b->metrics, line);
        json_decref(line);
        blog(b, SL_LOG_INFO, "metrics of RL step %lld rebuilt from the WAL (its TRAIN_DONE was lost)",
             (long long)rs->step);
    }
    resends_free(list, n_list);
}

static void on_status(buffer *b, const sl_msg *m) {
    json_t *o = NULL;
    uint64_t step = 0, wv = 0, sft_step = 0;
    bool sft_done = false;
    if (sl_rl_json_parse(m->payload, m->len, &o, NULL, 0) != 0 || sl_rl_json_u64_opt(o, "step", 0, &step) != 0 ||
        sl_rl_json_u64_opt(o, "weight_version", 0, &wv) != 0 || sl_rl_json_u64_opt(o, "sft_step", 0, &sft_step) != 0) {
        blog(b, SL_LOG_WARN, "bad STATUS from %s: asking again", m->sender);
        json_decref(o);
        return;
    }
    sft_done = json_is_true(json_object_get(o, "sft_done"));
    b->weight_version = (int64_t)wv;
    b->rl_done = b->rl_sent = (int64_t)step;
    b->next_dispatch = b->rl_done + 1;
    json_t *cur = json_object_get(o, "cursor");
    if (json_is_object(cur)) {
        char *txt = json_dumps(cur, JSON_COMPACT);
        char err[256];
        if (!txt || sl_data_cursor_parse(b->rl_ds, txt, strlen(txt), &b->cursor, err, sizeof err) != 0)
            blog(b, SL_LOG_WARN, "the trainer's cursor is not usable here (%s): starting the data over",
                 txt ? err : "no memory");
        free(txt);
    }
    bool resumed = step > 0 || sft_done || sft_step > 0;
    if (b->sft_steps == 0 || step > 0) sft_done = true;
    b->sft_step = sft_done ? b->sft_steps : (int64_t)sft_step;
    if ((uint64_t)b->sft_step > (uint64_t)b->sft_steps) b->sft_step = b->sft_steps;
    /* metrics.jsonl: keep what the trainer's state covers */
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", b->run_dir);
    int kept = 0, dropped = 0;
    sl_metrics_truncate(path, resumed, (int64_t)step, &kept, &dropped);
    b->samples_total = resumed ? sl_metrics_last_samples_trained(path) : 0;
    if (!b->metrics && sl_metrics_open(b->run_dir, &b->metrics) != 0)
        blog(b, SL_LOG_ERROR, "cannot open %s: no metrics for this run", path);
    /* WAL'd batches the trainer has not trained */
    char wp[4200];
    snprintf(wp, sizeof wp, "%s/wal/buffer.wal", b->run_dir);
    int64_t last_rl = resumed ? sl_metrics_last_rl_step(path) : 0;
    if (resumed && b->metrics && last_rl < (int64_t)step) recover_metrics(b, wp, last_rl, (int64_t)step);
    wal_collect(wp, (int64_t)step, INT64_MAX, &b->resends, &b->n_resends);
    if (b->n_resends) {
        /* continue the data after the last re-sent batch */
        resend *last = &b->resends[b->n_resends - 1];
        json_t *h = json_loads(last->hdr, 0, NULL);
        json_t *c = json_object_get(h, "cursor");
        char *txt = json_is_object(c) ? json_dumps(c, JSON_COMPACT) : NULL;
        if (txt) sl_data_cursor_parse(b->rl_ds, txt, strlen(txt), &b->cursor, NULL, 0);
        free(txt);
        json_decref(h);
        b->next_dispatch = last->step + 1;
    }
    blog(b, SL_LOG_INFO,
         "trainer at RL step %llu (weights v%llu, sft %s, %lld/%lld SFT batches); %zu WAL'd batch(es) to re-send; "
         "metrics: kept %d line(s), dropped %d",
         (unsigned long long)step, (unsigned long long)wv, sft_done ? "done" : "not done", (long long)b->sft_step,
         (long long)b->sft_steps, b->n_resends, kept, dropped);
    b->rl_start_ms = (int64_t)sl_now_ms();
    b->rl_start_step = b->rl_done;
    b->stage = b->sft_step < b->sft_steps ? ST_SFT : ST_RL;
    if (b->stage == ST_RL && b->eval_start && step == 0 && !b->n_resends) dispatch_eval(b, 0);
    json_decref(o);
}

/* ============================================================ TRAIN_DONE */

static void fail_run(buffer *b) {
    blog(b, SL_LOG_ERROR,
         "the run cannot go on: stopping the buffer with status 1 (rewinds %llu, refused batches %llu)",
         (unsigned long long)b->n_rewinds, (unsigned long long)b->n_refused);
    sl_actor_stop(b->ctx, 1);
}

/* SFT batch sft_step + 1 is trained: its metrics line (MT may be NULL). */
static void sft_trained(buffer *b, int64_t wv, json_t *mt) {
    b->sft_inflight = 0;
    b->sft_step++;
    json_t *line = json_pack("{s:I,s:I,s:s,s:I,s:I}", "step", (json_int_t)b->sft_step, "rl_step", (json_int_t)0,
                             "phase", "sft", "weight_version", (json_int_t)wv, "samples_trained",
                             (json_int_t)b->samples_total);
    static const char *keys[] = {"loss", "pg_loss", "entropy", "grad_norm", "lr", "train_s", "tokens_per_s"};
    for (size_t i = 0; line && i < SL_ARRAY_LEN(keys); i++) copy_metric(line, mt, keys[i]);
    json_t *ts = json_object_get(mt, "train_s"), *nt = json_object_get(mt, "n_tokens");
    if (line && json_is_number(ts) && json_is_number(nt) && json_number_value(ts) > 0)
        json_object_set_new(line, "tokens_per_s", json_real(json_number_value(nt) / json_number_value(ts)));
    if (line) sl_metrics_write(b->metrics, line);
    json_decref(line);
    progress(b, "sft", b->sft_step, b->sft_steps);
    if (b->sft_step == b->sft_steps) {
        blog(b, SL_LOG_INFO, "SFT warm-up done (%lld steps)", (long long)b->sft_steps);
        b->stage = ST_RL;
        b->rl_start_ms = (int64_t)sl_now_ms();
        if (b->eval_start) dispatch_eval(b, 0);
    }
}

/* RL step STEP (== rl_sent) is trained: its metrics line (MT may be NULL). */
static void rl_trained(buffer *b, int64_t step, int64_t wv, json_t *mt) {
    b->rl_done = step;
    b->samples_total += b->tr_n;
    json_t *line = json_pack("{s:I,s:I,s:s,s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:I}", "step",
                             (json_int_t)(b->sft_steps + step), "rl_step", (json_int_t)step, "phase", "rl",
                             "reward_mean", b->tr_reward_mean, "reward_std", b->tr_reward_std, "response_len_mean",
                             b->tr_len_mean, "weight_version", (json_int_t)wv, "samples_trained",
                             (json_int_t)b->samples_total, "samples_step", (json_int_t)b->tr_n, "groups_kept",
                             (json_int_t)b->tr_groups_kept, "reward_failed", (json_int_t)b->tr_failed);
    if (line && isfinite(b->tr_tokens_per_s)) json_object_set_new(line, "tokens_per_s", json_real(b->tr_tokens_per_s));
    if (line) json_object_set_new(line, "accuracy", json_real(b->tr_accuracy));
    if (line && b->wf) wf_metrics_into(b, line, b->tr_n_wm, b->tr_wm_name, b->tr_wm_mean);
    if (line) json_object_set_new(line, "staleness", json_integer(b->tr_staleness));
    if (line) json_object_set_new(line, "groups_zero_std", json_integer(b->tr_zero_std_groups));
    static const char *keys[] = {"loss", "pg_loss", "kl", "kl_loss", "entropy", "grad_norm", "clipfrac", "lr",
                                 "train_rollout_logprob_abs_diff", "train_s"};
    for (size_t i = 0; line && i < SL_ARRAY_LEN(keys); i++) copy_metric(line, mt, keys[i]);
    if (line && !json_object_get(line, "kl")) copy_metric(line, mt, "ppo_kl");
    if (line) sl_metrics_write(b->metrics, line);
    json_decref(line);
    b->last_reward = b->tr_reward_mean;
    if (isfinite(b->tr_tokens_per_s)) b->last_tps = b->tr_tokens_per_s;
    progress(b, "rl", b->rl_done, b->num_steps);
    if (b->eval_interval > 0 && b->rl_done % b->eval_interval == 0 && b->rl_done < b->num_steps) dispatch_eval(b, b->rl_done);
}

/* The trainer is at RL step S (behind what was sent): re-send the WAL'd
 * batches S+1..rl_sent, in order, before anything new; metrics.jsonl and
 * the evals are cut back to S. Returns SL_OK, or an error when the WAL
 * does not hold every one of those steps (the run cannot be completed). */
static int rl_rewind(buffer *b, int64_t S) {
    int64_t upto = b->rl_sent;
    resends_free(b->resends, b->n_resends);
    b->resends = NULL;
    b->n_resends = b->resend_pos = 0;
    char wp[4200];
    snprintf(wp, sizeof wp, "%s/wal/buffer.wal", b->run_dir);
    int rc = wal_collect(wp, S, upto, &b->resends, &b->n_resends);
    bool whole = rc == 0 && (int64_t)b->n_resends == upto - S;
    for (size_t i = 0; whole && i < b->n_resends; i++) whole = b->resends[i].step == S + 1 + (int64_t)i;
    if (!whole) {
        blog(b, SL_LOG_ERROR, "the WAL %s does not hold every batch of steps %lld..%lld (%zu found%s%s)", wp,
             (long long)S + 1, (long long)upto, b->n_resends, rc ? ": " : "", rc ? sl_strerror(rc) : "");
        return rc ? rc : SL_EIO;
    }
    /* evals after S are taken again after the re-trained steps */
    for (int i = 0; i < b->n_rounds; i++)
        if (b->rounds[i]->phase == PH_EVAL && b->rounds[i]->step > S) {
            round_drop(b, b->rounds[i]);
            i = -1;
        }
    if (b->last_eval_step > S) b->last_eval_step = -1;
    /* metrics.jsonl: lines of steps after S go (each step once) */
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", b->run_dir);
    sl_metrics_close(b->metrics);
    b->metrics = NULL;
    int kept = 0, dropped = 0;
    if (sl_metrics_truncate(path, true, S, &kept, &dropped) != 0)
        blog(b, SL_LOG_WARN, "cannot cut %s back to step %lld", path, (long long)S);
    b->samples_total = sl_metrics_last_samples_trained(path);
    if (sl_metrics_open(b->run_dir, &b->metrics) != 0) blog(b, SL_LOG_ERROR, "cannot reopen %s", path);
    b->rl_done = b->rl_sent = S;
    blog(b, SL_LOG_INFO, "re-sending the WAL'd batches of steps %lld..%lld; metrics: kept %d line(s), dropped %d",
         (long long)S + 1, (long long)upto, kept, dropped);
    return SL_OK;
}

/* The trainer (re)started behind the batch in training: it is at RL step
 * S / SFT step F. Its dead predecessor's shm holds are reclaimed, then the
 * lost steps go again. */
static void trainer_rewind(buffer *b, int64_t S, int64_t F, int64_t wv, const char *why) {
    int n = sl_shm_arena_reclaim(b->arena, SL_RL_CONSUMER_TRAINER);
    b->n_rewinds++;
    b->probe_corr = 0;
    b->train_sent_ms = 0;
    b->train_retries = 0;
    if (wv >= 0) b->weight_version = wv;
    if (b->stage == ST_SFT) {
        if (F > b->sft_step) F = b->sft_step;
        if (F < 0) F = 0;
        blog(b, SL_LOG_WARN, "the trainer is behind (%s): at SFT step %lld, %lld sent; SFT goes on from step %lld "
             "(%d shm hold(s) reclaimed)", why, (long long)F, (long long)b->sft_step + 1, (long long)F + 1, n);
        b->sft_step = F;
        b->sft_inflight = 0;
        return;
    }
    blog(b, SL_LOG_WARN, "the trainer is behind (%s): at RL step %lld, step %lld sent (%d shm hold(s) reclaimed)",
         why, (long long)S, (long long)b->rl_sent, n);
    if (S < 0) S = 0;
    if (S >= b->rl_sent) return;
    if (rl_rewind(b, S) != SL_OK) fail_run(b);
}

/* The trainer refused the batch in training (TRAIN_DONE "error"): send it
 * again, at most MAX_TRAIN_RETRIES times. */
static void train_refused(buffer *b, int64_t step, const char *why) {
    b->n_refused++;
    b->probe_corr = 0;
    b->train_sent_ms = 0;
    if (++b->train_retries > MAX_TRAIN_RETRIES) {
        blog(b, SL_LOG_ERROR, "the trainer refused the %s batch of step %lld %d times (last: %s)",
             b->stage == ST_SFT ? "SFT" : "RL", (long long)step, b->train_retries, why);
        fail_run(b);
        return;
    }
    blog(b, SL_LOG_WARN, "the trainer refused the %s batch of step %lld (%s): sending it again (%d of %d)",
         b->stage == ST_SFT ? "SFT" : "RL", (long long)step, why, b->train_retries, MAX_TRAIN_RETRIES);
    /* a refusal may leave the slot held; the trainer holds nothing else now */
    sl_shm_arena_reclaim(b->arena, SL_RL_CONSUMER_TRAINER);
    if (b->stage == ST_SFT) {
        b->sft_inflight = 0; /* rebuilt (deterministic) at the next tick */
        return;
    }
    if (rl_rewind(b, b->rl_sent - 1) != SL_OK) fail_run(b);
}

static void on_train_done(buffer *b, const sl_msg *m) {
    json_t *o = NULL;
    uint64_t step = 0, wv = 0;
    if (sl_rl_json_parse(m->payload, m->len, &o, NULL, 0) != 0 || sl_rl_json_u64(o, "step", &step) != 0 ||
        sl_rl_json_u64_opt(o, "weight_version", (uint64_t)b->weight_version, &wv) != 0) {
        b->n_bad++;
        blog(b, SL_LOG_WARN, "bad TRAIN_DONE from %s", m->sender);
        json_decref(o);
        return;
    }
    json_t *mt = json_object_get(o, "metrics");
    const char *ph = NULL;
    sl_rl_json_str_opt(o, "phase", NULL, &ph);
    bool is_sft = ph && strcmp(ph, "sft") == 0, is_rl = ph && strcmp(ph, "rl") == 0;
    /* only the answer for the batch in training counts */
    bool sft_wait = b->stage == ST_SFT && b->sft_inflight && (int64_t)step == b->sft_step + 1 && !is_rl;
    bool rl_wait = b->stage == ST_RL && !is_sft && b->rl_sent > b->rl_done && (int64_t)step == b->rl_sent;
    if (!sft_wait && !rl_wait) {
        b->n_late_done++;
        blog(b, SL_LOG_WARN, "TRAIN_DONE for %s step %llu not awaited (SFT %lld/%lld%s, RL sent %lld, done %lld): ignored",
             ph ? ph : "?", (unsigned long long)step, (long long)b->sft_step, (long long)b->sft_steps,
             b->sft_inflight ? " in flight" : "", (long long)b->rl_sent, (long long)b->rl_done);
        json_decref(o);
        return;
    }
    json_t *err = json_object_get(o, "error");
    if (json_is_true(json_object_get(o, "behind"))) {
        uint64_t ts = 0, fs = 0;
        if (sl_rl_json_u64_opt(o, "trainer_step", 0, &ts) != 0 || sl_rl_json_u64_opt(o, "sft_step", 0, &fs) != 0 ||
            ts > (uint64_t)INT64_MAX || fs > (uint64_t)INT64_MAX) {
            b->n_bad++;
            blog(b, SL_LOG_WARN, "TRAIN_DONE \"behind\" from %s without usable trainer_step/sft_step", m->sender);
            train_refused(b, (int64_t)step, "behind, no step");
        } else {
            trainer_rewind(b, (int64_t)ts, (int64_t)fs, (int64_t)wv, "it answered behind");
        }
        json_decref(o);
        return;
    }
    if (err) {
        train_refused(b, (int64_t)step, json_is_string(err) ? json_string_value(err) : "error");
        json_decref(o);
        return;
    }
    b->weight_version = (int64_t)wv;
    b->train_retries = 0;
    b->train_sent_ms = 0;
    b->probe_corr = 0;
    if (sft_wait) sft_trained(b, (int64_t)wv, mt);
    else rl_trained(b, (int64_t)step, (int64_t)wv, mt);
    json_decref(o);
}

/* The answer to a STATUS probe sent while a batch was in training and no
 * TRAIN_DONE came: a trainer that is idle and not past the batch lost it
 * (it was killed, restarted from its checkpoint) -> rewind; one past it
 * trained it and the TRAIN_DONE was lost -> done; a busy one -> wait. */
static void on_probe_status(buffer *b, const sl_msg *m) {
    b->probe_corr = 0;
    json_t *o = NULL;
    uint64_t step = 0, wv = 0, sft_step = 0;
    if (sl_rl_json_parse(m->payload, m->len, &o, NULL, 0) != 0 || sl_rl_json_u64_opt(o, "step", 0, &step) != 0 ||
        sl_rl_json_u64_opt(o, "weight_version", 0, &wv) != 0 || sl_rl_json_u64_opt(o, "sft_step", 0, &sft_step) != 0 ||
        step > (uint64_t)INT64_MAX || sft_step > (uint64_t)INT64_MAX || wv > (uint64_t)INT64_MAX) {
        b->n_bad++;
        blog(b, SL_LOG_WARN, "bad STATUS from %s", m->sender);
        json_decref(o);
        return;
    }
    bool busy = json_is_true(json_object_get(o, "busy")), sft_done = json_is_true(json_object_get(o, "sft_done"));
    json_decref(o);
    if (busy) return; /* the step runs; TRAIN_DONE will come */
    if (b->stage == ST_SFT && b->sft_inflight) {
        if (sft_done || (int64_t)sft_step >= b->sft_step + 1) {
            b->n_late_done++;
            blog(b, SL_LOG_WARN, "SFT step %lld trained but its TRAIN_DONE was lost: counted", (long long)b->sft_step + 1);
            b->weight_version = (int64_t)wv;
            b->train_sent_ms = 0;
            sft_trained(b, (int64_t)wv, NULL);
        } else {
            trainer_rewind(b, (int64_t)step, (int64_t)sft_step, (int64_t)wv, "idle, no TRAIN_DONE");
        }
    } else if (b->stage == ST_RL && b->rl_sent > b->rl_done) {
        if ((int64_t)step >= b->rl_sent) {
            b->n_late_done++;
            blog(b, SL_LOG_WARN, "RL step %lld trained but its TRAIN_DONE was lost: counted", (long long)b->rl_sent);
            b->weight_version = (int64_t)wv;
            b->train_sent_ms = 0;
            rl_trained(b, b->rl_sent, (int64_t)wv, NULL);
        } else {
            trainer_rewind(b, (int64_t)step, (int64_t)sft_step, (int64_t)wv, "idle, no TRAIN_DONE");
        }
    }
}

/* No TRAIN_DONE for PROBE_MS since the batch went out: ask the trainer. */
static void probe_trainer(buffer *b, int64_t now) {
    bool waiting = (b->stage == ST_SFT && b->sft_inflight) || (b->stage == ST_RL && b->rl_sent > b->rl_done);
    if (!waiting || !b->train_sent_ms || now - b->probe_ms < PROBE_MS) return;
    b->probe_ms = now;
    uint64_t corr = 0;
    if (sl_actor_send_corr(b->ctx, b->trainer, SL_MSG_STATUS_REQ, "{}", 2, &corr) != 0) corr = 0;
    b->probe_corr = corr;
}

/* ============================================================ the loop */

static void redispatch_lost(buffer *b) {
    int64_t now = (int64_t)sl_now_ms();
    for (int ri = 0; ri < b->n_rounds; ri++) {
        rround *r = b->rounds[ri];
        for (size_t i = 0; i < r->n; i++) {
            group *g = &r->g[i];
            if (g->done || g->wf_scoring) continue;
            int64_t since = g->sent_ms;
            if (g->rollout >= 0 && b->last_progress[g->rollout] > since) since = b->last_progress[g->rollout];
            if (now - since < b->timeout_ms) continue;
            b->n_redispatch++;
            blog(b, SL_LOG_WARN, "group %llu (%s step %lld) not back from %s after %lld ms: dispatched again",
                 (unsigned long long)g->gid, g->phase == PH_EVAL ? "eval" : "rl", (long long)g->step,
                 b->rollouts[g->rollout], (long long)(now - since));
            int old = g->rollout;
            dispatch_group(b, g, old);
        }
    }
}

static void request_stop(buffer *b) {
    char *reply = NULL;
    int rc = sl_control_request(b->run_dir, "stop", &reply, 2000);
    blog(b, rc ? SL_LOG_WARN : SL_LOG_INFO, "asked the supervisor to stop the run: %s",
         rc ? sl_strerror(rc) : reply);
    free(reply);
    b->stage = ST_STOPPING;
    b->status_sent_ms = (int64_t)sl_now_ms();
}

static void rl_tick(buffer *b) {
    /* finished eval rounds */
    for (int i = 0; i < b->n_rounds; i++) {
        rround *r = b->rounds[i];
        if (r->phase == PH_EVAL && r->n_done == r->n) {
            finish_eval(b, r);
            round_drop(b, r);
            i = -1;
        }
    }
    bool training = b->rl_sent > b->rl_done;
    /* re-sends from the WAL first */
    if (!training && b->resend_pos < b->n_resends) {
        resend *rs = &b->resends[b->resend_pos];
        json_t *h = json_loads(rs->hdr, 0, NULL);
        sl_batch_view v;
        if (h && sl_batch_view_open(&v, rs->data, rs->len, 0, 0, NULL, 0) == 0) {
            if (send_train_batch(b, h, rs->data, rs->len) == SL_OK) {
                float *rw = calloc(v.n_samples + 1, sizeof(float));
                double tl = 0;
                for (uint32_t i = 0; i < v.n_samples; i++)
                    rw[i] = v.rewards[i], tl += (double)(v.offsets[i + 1] - v.offsets[i] - v.prompt_len[i]);
                stats(rw, v.n_samples, &b->tr_reward_mean, &b->tr_reward_std);
                free(rw);
                b->tr_len_mean = v.n_samples ? tl / v.n_samples : 0;
                b->tr_tokens_per_s = NAN;
                b->tr_n = v.n_samples, b->tr_failed = 0;
                b->rl_sent = rs->step;
                b->resend_pos++;
                blog(b, SL_LOG_INFO, "re-sent the WAL'd batch of step %lld (%u samples)", (long long)rs->step,
                     v.n_samples);
            }
        } else {
            blog(b, SL_LOG_WARN, "WAL record of step %lld is not a valid batch: regenerating it", (long long)rs->step);
            b->resend_pos++;
        }
        json_decref(h);
        return;
    }
    if (b->resend_pos < b->n_resends) return;
    /* dispatch: at most 1 (sync) or 1 + max_staleness (async) steps ahead of the trained one */
    int64_t ahead = b->async ? 1 + b->max_staleness : 1;
    while (b->next_dispatch <= b->num_steps && b->next_dispatch - b->rl_done <= ahead) {
        rround *r = round_new(b, PH_RL, b->next_dispatch);
        if (!r) break;
        size_t want = (size_t)(b->dyn && b->oversample > b->rbs ? b->oversample : b->rbs);
        size_t got = dispatch_rl(b, r, want);
        if (got == 0) {
            blog(b, SL_LOG_WARN, "the data is exhausted at RL step %lld: ending the run there",
                 (long long)b->next_dispatch);
            round_drop(b, r);
            b->num_steps = b->next_dispatch - 1;
            break;
        }
        b->next_dispatch++;
    }
    /* train the next step when its rround is complete */
    if (!training && b->rl_done < b->num_steps) {
        rround *r = round_find(b, PH_RL, b->rl_done + 1);
        if (r && r->n_done == r->n && r->n > 0) {
            if (b->dyn) {
                size_t kept = 0;
                for (size_t i = 0; i < r->n; i++) kept += group_keep(b, &r->g[i], r->step);
                if ((int64_t)kept < b->rbs && r->oversample_rounds < MAX_OVERSAMPLE_ROUNDS) {
                    r->oversample_rounds++;
                    /* more prompts continue from the rround's own cursor only when it is the newest */
                    if (r->step == b->next_dispatch - 1) {
                        size_t want = (size_t)(b->oversample > 0 ? b->oversample : b->rbs);
                        if (dispatch_rl(b, r, want) > 0) return;
                    }
                }
            }
            int rc = train_round(b, r);
            if (rc == SL_OK) {
                b->rl_sent = r->step;
                round_drop(b, r);
            } else if (rc != SL_EFULL) {
                blog(b, SL_LOG_ERROR, "train batch of step %lld: %s", (long long)r->step, sl_strerror(rc));
                sl_actor_stop(b->ctx, 1);
            }
        }
    }
    /* the end */
    if (b->rl_done >= b->num_steps && b->rl_sent == b->rl_done) {
        bool eval_running = false;
        for (int i = 0; i < b->n_rounds; i++) eval_running = eval_running || b->rounds[i]->phase == PH_EVAL;
        if (b->eval_end && b->last_eval_step != b->rl_done && b->eval_ds) {
            dispatch_eval(b, b->rl_done);
            return;
        }
        if (!eval_running) {
            progress(b, "done", b->rl_done, b->num_steps);
            blog(b, SL_LOG_INFO,
                 "run complete: %lld RL steps, %lld samples trained; duplicates dropped %llu, stale %llu, "
                 "re-dispatched %llu, failed rewards %llu",
                 (long long)b->rl_done, (long long)b->samples_total, (unsigned long long)b->n_dup,
                 (unsigned long long)b->n_stale, (unsigned long long)b->n_redispatch,
                 (unsigned long long)b->n_failed_samples);
            request_stop(b);
        }
    }
}

static sl_err buffer_tick(void *state, sl_actor_ctx *ctx) {
    buffer *b = state;
    (void)ctx;
    int64_t now = (int64_t)sl_now_ms();
    switch (b->stage) {
    case ST_STATUS:
        if (now - b->status_sent_ms >= STATUS_RETRY_MS) {
            json_t *o = json_object();
            char *t = json_dumps(o, JSON_COMPACT);
            json_decref(o);
            if (t && sl_actor_send_corr(ctx, b->trainer, SL_MSG_STATUS_REQ, t, strlen(t), &b->status_corr) != 0)
                b->status_corr = 0;
            free(t);
            b->status_sent_ms = now;
        }
        break;
    case ST_SFT:
        if (!b->sft_inflight) send_next_sft(b);
        else probe_trainer(b, now);
        break;
    case ST_RL:
        redispatch_lost(b);
        if (b->wf) wf_rescore_lost(b, now);
        probe_trainer(b, now);
        rl_tick(b);
        break;
    case ST_STOPPING:
        /* the supervisor stops us; ask again now and then if it did not hear */
        if (now - b->status_sent_ms > 5000) {
            b->status_sent_ms = now;
            request_stop(b);
        }
        break;
    default:
        break;
    }
    return SL_OK;
}

static sl_err buffer_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    buffer *b = state;
    (void)ctx;
    switch (m->type) {
    case SL_MSG_STATUS:
        if (b->stage == ST_STATUS) on_status(b, m);
        else if (b->probe_corr && m->corr == b->probe_corr) on_probe_status(b, m);
        return SL_OK;
    case SL_MSG_SCORED:
        return on_scored(b, m);
    case SL_MSG_WF_SAMPLE:
        return on_wf_sample(b, m);
    case SL_MSG_TRAIN_DONE:
        on_train_done(b, m);
        return SL_OK;
    default:
        if (m->flags & SL_FLAG_REPLY) return SL_OK; /* e.g. an error reply to an early STATUS_REQ */
        b->n_bad++;
        return SL_OK;
    }
}

/* ============================================================ init/fini */

/* Whether this start is a restart under the same supervisor as the last
 * one (RUN_DIR/.buffer_session holds "PPID STARTTIME" of the parent); the
 * session is recorded for later restarts. A restarted buffer keeps its WAL
 * and metrics whatever [run] resume says: it resumes from the trainer's
 * state like resume = auto. */
static bool same_session(const char *run_dir) {
    char p[4200], buf[1024], cur[128] = "", old[128] = "";
    pid_t pp = getppid();
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pp);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    char *r = strrchr(buf, ')'), *save = NULL;
    const char *f = NULL;
    int i = 0;
    for (char *x = r ? strtok_r(r + 1, " ", &save) : NULL; x; x = strtok_r(NULL, " ", &save))
        if (++i == 20) { /* field 22: starttime */
            f = x;
            break;
        }
    if (!f) return false;
    snprintf(cur, sizeof cur, "%d %s\n", (int)pp, f);
    snprintf(p, sizeof p, "%s/.buffer_session", run_dir);
    fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, old, sizeof old - 1);
        old[n > 0 ? n : 0] = 0;
        close(fd);
    }
    bool same = strcmp(old, cur) == 0;
    if (!same) {
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            if (write(fd, cur, strlen(cur)) < 0) { /* best effort */
            }
            close(fd);
        }
    }
    return same;
}

static sl_err buffer_init(sl_actor_ctx *ctx, void **state) {
    buffer *b = calloc(1, sizeof *b);
    if (!b) return SL_ENOMEM;
    *state = b;
    b->ctx = ctx;
    b->t = sl_actor_topology(ctx);
    b->last_eval_step = -1;
    b->last_reward = b->last_eval = b->last_tps = NAN;
    if (!b->t) {
        blog(b, SL_LOG_ERROR, "the buffer needs a topology");
        return SL_EINVAL;
    }
    const sl_topology *t = b->t;
    snprintf(b->run_dir, sizeof b->run_dir, "%s", sl_actor_run_dir(ctx));
    const sl_actor_spec *tr = sl_rl_find_first(t, "trainer");
    const sl_actor_spec *ro[MAX_ROLLOUTS];
    b->n_rollouts = sl_rl_find_kind(t, "rollout", ro, MAX_ROLLOUTS);
    const char *wfn = sl_topology_get_str(t, "rollout", "workflow");
    b->wf = wfn && *wfn;
    if (b->wf) {
        /* the workflow actor's instances take the PROMPTS */
        b->n_rollouts = 0;
        for (int i = 0; i < t->n_actors; i++)
            if (strcmp(t->actors[i].group, wfn) == 0 && b->n_rollouts < MAX_ROLLOUTS) ro[b->n_rollouts++] = &t->actors[i];
    }
    b->n_rewards = sl_rl_find_kind(t, "reward", b->rewards, MAX_ROLLOUTS);
    if (b->n_rewards > MAX_ROLLOUTS) b->n_rewards = MAX_ROLLOUTS;
    if (!tr || b->n_rollouts < 1 || b->n_rollouts > MAX_ROLLOUTS || b->n_rewards < 1) {
        blog(b, SL_LOG_ERROR, "the topology needs a trainer, 1..%d %s and a reward actor", MAX_ROLLOUTS,
             b->wf ? "workflow instances" : "rollout");
        return SL_EINVAL;
    }
    snprintf(b->trainer, sizeof b->trainer, "%s", tr->name);
    for (int i = 0; i < b->n_rollouts; i++) snprintf(b->rollouts[i], sizeof b->rollouts[i], "%s", ro[i]->name);
    b->seed = (uint64_t)sl_topology_get_int(t, "run", "seed");
    b->num_steps = sl_topology_get_int(t, "run", "num_steps");
    b->rbs = sl_topology_get_int(t, "rollout", "rollout_batch_size");
    b->oversample = sl_topology_get_int(t, "rollout", "over_sampling_batch_size");
    b->n_per = sl_topology_get_int(t, "rollout", "n_samples_per_prompt");
    b->max_new = sl_topology_get_int(t, "rollout", "rollout_max_response_len");
    b->temperature = sl_topology_get_double(t, "rollout", "rollout_temperature");
    b->top_p = sl_topology_get_double(t, "rollout", "rollout_top_p");
    b->top_k = sl_topology_get_int(t, "rollout", "rollout_top_k");
    b->async = sl_topology_get_bool(t, "rollout", "async");
    b->max_staleness = sl_topology_get_int(t, "rollout", "max_staleness");
    b->timeout_ms = sl_topology_get_int(t, "rollout", "rollout_timeout_ms");
    b->dyn = sl_topology_get_bool(t, "algorithm", "dynamic_sampling");
    b->kl_coef = sl_topology_get_double(t, "algorithm", "kl_coef");
    b->std_norm = !sl_topology_get_bool(t, "algorithm", "disable_grpo_std_normalization");
    if (sl_adv_estimator_from_name(sl_topology_get_str(t, "algorithm", "advantage_estimator"), &b->est) != 0)
        b->est = SL_ADV_GRPO;
    b->eval_interval = sl_topology_get_int(t, "trainer", "eval_interval");
    b->eval_n = sl_topology_get_int(t, "eval", "n_prompts");
    b->eval_start = sl_topology_get_bool(t, "eval", "at_start");
    b->eval_end = sl_topology_get_bool(t, "eval", "at_end");
    b->sft_steps = sl_topology_get_int(t, "sft", "steps");
    b->sft_bs = sl_topology_get_int(t, "sft", "batch_size");
    if (b->n_per > (int64_t)SL_SAMPLE_MAX_GROUP) return SL_EINVAL;
    int rc = load_data(b);
    if (rc) return rc;
    /* a fresh run forgets an old run's WAL and metrics in the same folder */
    bool restarted = same_session(b->run_dir);
    bool resume = restarted || strcmp(sl_topology_get_str(t, "run", "resume"), "auto") == 0;
    if (restarted) blog(b, SL_LOG_WARN, "restarted within the same run: resuming from the trainer's state and the WAL");
    char p[4200];
    snprintf(p, sizeof p, "%s/wal", b->run_dir);
    mkdir_p(p);
    snprintf(p, sizeof p, "%s/wal/buffer.wal", b->run_dir);
    if (!resume) unlink(p);
    if ((rc = sl_wal_open(p, 0, &b->wal, NULL))) {
        blog(b, SL_LOG_ERROR, "cannot open the WAL %s: %s", p, sl_strerror(rc));
        return rc;
    }
    snprintf(p, sizeof p, "%s/metrics.jsonl", b->run_dir);
    if (!resume) unlink(p);
    /* metrics.jsonl is opened once the trainer's STATUS said what to keep */
    /* the train-batch arena: the largest batch, SFT or RL (memfd pages are only used when touched) */
    size_t max_prompt = sl_dataset_stats_get(b->rl_ds)->max_prompt_tokens_seen;
    uint64_t meta = 0;
    for (size_t i = 0; i < sl_dataset_size(b->rl_ds); i++) {
        const sl_prompt *pr = sl_dataset_get(b->rl_ds, i);
        uint64_t mb = sl_batch_meta_bytes(pr->label, pr->metadata);
        if (mb > meta) meta = mb;
    }
    if (b->wf) meta += SL_WF_MAX_METADATA + 1; /* a workflow's own metadata per sample */
    uint64_t n_rl = (uint64_t)b->rbs * (uint64_t)b->n_per;
    size_t rl_sz = batch_bytes((uint32_t)n_rl, n_rl * (max_prompt + (uint64_t)b->max_new + 1), n_rl * meta,
                               SL_BATCH_FLAGS_KNOWN);
    size_t sft_sz = 0;
    if (b->sft_ds) {
        uint64_t mx = 0, mm = 0;
        for (size_t i = 0; i < sl_dataset_size(b->sft_ds); i++) {
            const sl_prompt *pr = sl_dataset_get(b->sft_ds, i);
            if (pr->n_ids + pr->n_response_ids + 1 > mx) mx = pr->n_ids + pr->n_response_ids + 1;
            if (sl_batch_meta_bytes(pr->label, NULL) > mm) mm = sl_batch_meta_bytes(pr->label, NULL);
        }
        sft_sz = batch_bytes((uint32_t)b->sft_bs, (uint64_t)b->sft_bs * mx, (uint64_t)b->sft_bs * mm, 0);
    }
    b->slot_bytes = (rl_sz > sft_sz ? rl_sz : sft_sz) + 4096;
    if (!rl_sz || (rc = sl_shm_arena_create("buffer", 3, b->slot_bytes, &b->arena))) {
        blog(b, SL_LOG_ERROR, "cannot create the train-batch arena (%zu bytes a slot)", b->slot_bytes);
        return rc ? rc : SL_ERANGE;
    }
    if (b->wf) {
        size_t mp = max_prompt;
        if (b->eval_ds && sl_dataset_stats_get(b->eval_ds)->max_prompt_tokens_seen > mp)
            mp = sl_dataset_stats_get(b->eval_ds)->max_prompt_tokens_seen;
        b->wf_lim.vocab = b->vocab;
        b->wf_lim.max_response = (uint32_t)b->max_new;
        b->wf_lim.max_prompt = (uint32_t)mp;
        uint64_t np = (uint64_t)b->n_per;
        b->wf_slot_bytes = batch_bytes((uint32_t)np, np * (mp + (uint64_t)b->max_new + 1), np * meta,
                                       SL_BATCH_HAS_LOGPROBS) + 4096;
        if ((rc = sl_shm_arena_create("buffer-wf", 64, b->wf_slot_bytes, &b->wf_arena))) {
            blog(b, SL_LOG_ERROR, "cannot create the workflow samples arena (%zu bytes a slot)", b->wf_slot_bytes);
            return rc;
        }
    }
    if ((rc = load_filters(b))) return rc;
    const char *spans = sl_topology_get_str(t, "sft", "loss_mask_spans");
    if (spans && *spans) {
        const char *bar = strchr(spans, '|');
        size_t n1 = 0, n2 = 0;
        if (!bar || bar == spans || !bar[1] || sl_tokenizer_encode(b->tok, spans, (size_t)(bar - spans), &b->span_open, &n1) ||
            sl_tokenizer_encode(b->tok, bar + 1, strlen(bar + 1), &b->span_close, &n2) || !n1 || !n2) {
            blog(b, SL_LOG_ERROR, "[sft] loss_mask_spans = \"%s\": not OPEN|CLOSE with two non-empty texts", spans);
            return SL_EINVAL;
        }
        b->n_span_open = n1, b->n_span_close = n2;
    }
    int64_t now = (int64_t)sl_now_ms();
    for (int i = 0; i < b->n_rollouts; i++) b->last_progress[i] = now;
    b->stage = ST_STATUS;
    b->status_sent_ms = now - STATUS_RETRY_MS;
    sl_actor_set_tick(ctx, TICK_MS);
    blog(b, SL_LOG_INFO,
         "buffer: %lld RL steps x %lld prompts x %lld samples (%s%s), %d %s, trainer %s, SFT %lld x %lld, "
         "eval %lld prompts every %lld steps",
         (long long)b->num_steps, (long long)b->rbs, (long long)b->n_per, sl_adv_estimator_name(b->est),
         b->async ? ", async" : "", b->n_rollouts, b->wf ? "workflow instance(s)" : "rollout(s)", b->trainer, (long long)b->sft_steps, (long long)b->sft_bs,
         (long long)b->eval_n, (long long)b->eval_interval);
    return SL_OK;
}

static void buffer_fini(void *state, sl_actor_ctx *ctx) {
    buffer *b = state;
    (void)ctx;
    if (!b) return;
    for (int i = 0; i < b->n_rounds; i++) round_free(b->rounds[i]);
    resends_free(b->resends, b->n_resends);
    for (int i = 0; i < b->n_views; i++) sl_shm_view_close(b->views[i]);
    sl_shm_arena_close(b->arena);
    sl_shm_arena_close(b->wf_arena);
    free(b->span_open), free(b->span_close);
    if (b->dsf_dl) dlclose(b->dsf_dl);
    if (b->bf_dl) dlclose(b->bf_dl);
    sl_wal_close(b->wal);
    sl_metrics_close(b->metrics);
    sl_dataset_free(b->rl_ds);
    sl_dataset_free(b->eval_ds);
    sl_dataset_free(b->sft_ds);
    sl_tokenizer_free(b->tok);
    free(b);
}

const sl_actor_ops sl_buffer_ops = {
    .name = "buffer",
    .init = buffer_init,
    .handle = buffer_handle,
    .tick = buffer_tick,
    .tick_ms = TICK_MS,
    .fini = buffer_fini,
};
