/*
 * trainer.c — the `trainer` actor kind: owns the policy model and its
 * optimizer (trainer_core.h), trains on TRAIN_BATCH slots of the buffer's
 * shm arena (SFT warm-up or RL), appends RUN_DIR/ledger.jsonl, publishes
 * weights to the rollout engines (weights_sync.h), writes checkpoints
 * (checkpoint.h) and resumes from them. Messages: rl_msg.h.
 *
 * Threads. The actor's loop (actor.c) answers the supervisor's heartbeat
 * between callbacks, so a handler must return promptly. A training step of
 * a real model takes seconds; it runs on one worker thread per batch: the
 * loop hands the worker a checked batch, the worker runs the step, appends
 * the ledger line (fsync), copies the new weights into the shm arena and
 * writes the checkpoint when due; the loop's tick sees it finish (20 ms
 * ticks while busy) and does the messaging (WEIGHTS to every rollout,
 * TRAIN_DONE to the buffer) and the slot release. While the worker runs,
 * the model belongs to it: batches that arrive queue (FIFO), WEIGHTS_REQ
 * is answered when the step ends, STATUS_REQ at once from the last
 * finished state. We chose a worker over chunking the step because
 * trainer_core's step is one call (micro-batches and optimizer steps
 * inside), and the hand-off is one join.
 *
 * Duplicates: an RL batch whose step is not above the last trained step
 * (a buffer that restarted and re-sent its WAL'd batch after we trained
 * it), or an SFT batch after the warm-up finished, is not trained again:
 * it is released and answered with the current state ("duplicate": true).
 *
 * Restarts. resume = auto, or a restart of this actor under the same
 * supervisor (RUN_DIR/.trainer_session holds the supervisor's pid and start
 * time), loads the latest checkpoint and cuts the ledger back to it. A new
 * run with resume = no forgets the old `latest` pointer and empties the
 * ledger.
 *
 * On a GPU (`device = cuda:0`): the same actor; trainer_core runs the step
 * on an sl_gpum (bf16 mixed precision). Weights go to GPU rollouts through
 * CUDA IPC (weights_gpu.h: the `cuda_ipc` object and a `sync` mode
 * "copy" | "in_place" in WEIGHTS, [trainer] gpu_weight_sync) and to CPU
 * rollouts through the shm fp32 arena as before (copied down from the
 * device only when the topology has CPU rollouts), so a mixed topology
 * works. The CUDA IPC event is recorded by the worker right after the
 * step, on the GPU model's stream.
 *
 * Data parallelism (`count = N` trainers on GPUs, issue 9): instance i is
 * rank i of an NCCL group. Rank 0 makes the group's unique id and sends it
 * (NCCL_ID, nccl_msg.h) to the others every 500 ms until the group is up;
 * every rank joins on a thread (ncclCommInitRank blocks until all have)
 * and then turns data parallelism on (sl_trainer_enable_dp: buckets of
 * [trainer] dp_bucket_mb MiB, ZeRO-1 with zero_stage = 1). Batches wait
 * until then. The buffer and the rollouts talk to rank 0 only: rank 0
 * forwards each TRAIN_BATCH it accepts to the other ranks, which read the
 * same shm slot (rank 0 alone holds and releases it; trainer_core's step
 * ends with a collective after its last read of the batch, so when rank 0
 * releases, no rank reads it) and train their share of it. Every rank
 * makes the same collective calls in the same order (the step; the host
 * copy of the parameters when CPU rollouts need it; sl_trainer_collect
 * before a checkpoint); rank 0 alone appends the ledger, publishes the
 * weights, writes checkpoints and answers the buffer. The other ranks
 * trust rank 0: a batch they cannot train stops them (exit), and the
 * supervisor restarts the whole group (a group of ranks is restarted
 * together whatever [supervisor] strategy says: an NCCL group does not
 * survive a member), which resumes from the last checkpoint like a
 * single trainer. Ranks sharing one GPU (placement = shared) name their
 * own NCCL host (NCCL_HOSTID) so that NCCL accepts them and talks over
 * loopback sockets: slow, for tests on one GPU.
 *
 * What it is not: the loss math (rl_algo.h), the step (trainer_core.h), the
 * data flow (buffer.c).
 */
#include "actor.h"
#include "checkpoint.h"
#include "dataset.h"
#include "nccl_msg.h"
#include "rl_common.h"
#include "rl_msg.h"
#include "sample_batch.h"
#include "trainer_core.h"
#include "wal.h"
#include "weights_gpu.h"
#include "weights_sync.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { PH_NONE = 0, PH_SFT = 1, PH_RL = 2 };
/* data-parallel group: one rank; waiting for the id; joining; up */
enum { DP_OFF = 0, DP_WAIT_ID, DP_JOINING, DP_READY };
#define DP_MAX_RANKS 64
#define DP_ID_RESEND_MS 500
#define BC_TIMEOUT_MS 60000 /* a weights broadcast longer than this lost a rollout */

typedef struct queued {
    sl_msg msg; /* owned copy (payload included) */
    struct queued *next;
} queued;

typedef struct job {
    /* in */
    sl_msg req;        /* header copy for the reply (payload NULL) */
    sl_shm_desc desc;  /* the buffer's slot */
    sl_batch_view bv;
    sl_train_batch tb;
    int phase;
    int64_t step;
    bool last;
    int64_t sft_total;  /* "sft_steps" of the message, else [sft] steps */
    char *cursor_json; /* owned */
    /* out */
    int rc;
    char err[512];
    sl_train_metrics m;
    bool published;
    sl_shm_desc wdesc;
    json_t *ipc;       /* cuda_ipc object of this publish (GPU trainer), owned */
    uint64_t version;
    char ckpt[SL_CKPT_NAME_MAX];
    double pub_s, ckpt_s;
} job;

typedef struct trainer {
    sl_model *model;
    sl_trainer *core;
    sl_trainer_cfg rl_cfg, sft_cfg;
    int cur_phase;
    char model_dir[PATH_MAX];
    char ledger[PATH_MAX];
    const char *run_dir;
    sl_weights_pub *pub;
    const sl_actor_spec *rollouts[SL_RL_MAX_INSTANCES];
    int n_rollouts;
    uint32_t all_mask;
    /* GPU trainer: the GPU model, its CUDA IPC export; rollouts on a GPU
     * (cuda_ipc) and on the CPU (shm, shm_mask) */
    sl_gpum *gpum;
    sl_wgpu_pub *wpub;
    uint32_t gpu_mask, shm_mask;
    const char *sync_mode; /* "copy" | "in_place" */
    sl_shm_view *bview;
    sl_ckpt_state st;   /* state after the last finished batch */
    int64_t save_interval, num_steps, sft_steps;
    int num_steps_per_rollout, global_batch_size, n_samples_per_prompt;
    uint64_t rng;
    /* worker */
    pthread_t th;
    bool running;
    atomic_int done;
    job *cur;
    queued *q_head, *q_tail;
    uint32_t weights_req_mask;
    /* counters */
    bool check_gap;     /* first batch since start: it must follow the state (checked once) */
    uint64_t bad_batches, duplicates, trained, behind;
    /* data parallelism: rank of nranks; peers[r] = the group's instance r */
    int device;         /* cuda:N, or -1 */
    int rank, nranks;
    const sl_actor_spec *peers[DP_MAX_RANKS];
    int dp;             /* DP_* */
    sl_ncjoin dj;       /* the data-parallel group's id, epoch and join */
    uint64_t dp_sent_ms;
    sl_nccl *nc;
    int fatal;          /* rank > 0: something rank 0 sent could not be trained */
    /* weights by NCCL broadcast to GPU rollouts on other GPUs (rank 0):
     * group rank k + 1 = rollout bc_ro[k]; one broadcast at a time, on a
     * thread (rollouts receive when they drain) */
    uint32_t bcast_mask;
    int n_bcast, bc_ro[SL_RL_MAX_INSTANCES];
    int wg;             /* DP_OFF | DP_JOINING | DP_READY */
    sl_ncjoin wj;
    uint64_t wg_sent_ms;
    sl_nccl *wnc;
    size_t bc_bucket;
    pthread_t bc_th;
    bool bc_running;
    atomic_int bc_done;
    int bc_rc, bc_buckets;
    uint64_t bc_version, bc_t0;
} trainer;

/* ============================================================ config */

static void cfg_from_topology(const sl_topology *t, sl_trainer_cfg *c) {
    sl_trainer_cfg_default(c);
    if (!t) return;
    sl_adv_estimator_from_name(sl_topology_get_str(t, "algorithm", "advantage_estimator"),
                               &c->advantage_estimator);
    sl_loss_type_from_name(sl_topology_get_str(t, "algorithm", "loss_type"), &c->loss_type);
    c->disable_grpo_std_normalization =
        sl_topology_get_bool(t, "algorithm", "disable_grpo_std_normalization");
    c->eps_clip = (float)sl_topology_get_double(t, "algorithm", "eps_clip");
    double h = sl_topology_get_double(t, "algorithm", "eps_clip_high");
    c->eps_clip_high = h > 0 ? (float)h : -1.0f;
    double cc = sl_topology_get_double(t, "algorithm", "eps_clip_c");
    c->eps_clip_c = cc > 0 ? (float)cc : 0.0f;
    c->entropy_coef = (float)sl_topology_get_double(t, "algorithm", "entropy_coef");
    c->use_kl_loss = sl_topology_get_bool(t, "algorithm", "use_kl_loss");
    c->kl_loss_coef = (float)sl_topology_get_double(t, "algorithm", "kl_loss_coef");
    sl_kl_type_from_name(sl_topology_get_str(t, "algorithm", "kl_loss_type"), &c->kl_loss_type);
    c->kl_coef = (float)sl_topology_get_double(t, "algorithm", "kl_coef");
    c->calculate_per_token_loss = sl_topology_get_bool(t, "algorithm", "calculate_per_token_loss");
    c->use_tis = sl_topology_get_bool(t, "algorithm", "use_tis");
    c->tis_clip = (float)sl_topology_get_double(t, "algorithm", "tis_clip");
    if (c->advantage_estimator == SL_ADV_REINFORCE_PLUS_PLUS) c->normalize_advantages = true;
    double temp = sl_topology_get_double(t, "rollout", "rollout_temperature");
    c->rollout_temperature = temp > 0 ? (float)temp : 1.0f;
    c->micro_batch_size = (int)sl_topology_get_int(t, "trainer", "micro_batch_size");
    c->lr = sl_topology_get_double(t, "trainer", "lr");
    c->min_lr = sl_topology_get_double(t, "trainer", "min_lr");
    c->lr_warmup_steps = sl_topology_get_int(t, "trainer", "lr_warmup_steps");
    sl_lr_decay_style_from_name(sl_topology_get_str(t, "trainer", "lr_decay_style"),
                                &c->lr_decay_style);
    if (c->lr_decay_style != SL_LR_CONSTANT) {
        long long steps = sl_topology_get_int(t, "run", "num_steps") *
                          sl_topology_get_int(t, "trainer", "num_steps_per_rollout");
        c->lr_decay_steps = steps > 0 ? steps : 1;
    }
    c->weight_decay = sl_topology_get_double(t, "trainer", "weight_decay");
    c->adam_beta1 = sl_topology_get_double(t, "trainer", "adam_beta1");
    c->adam_beta2 = sl_topology_get_double(t, "trainer", "adam_beta2");
    c->adam_eps = sl_topology_get_double(t, "trainer", "adam_eps");
    c->clip_grad = sl_topology_get_double(t, "trainer", "clip_grad");
}

/* Batch sizes for a batch of N samples (trainer_core needs N to be a
 * multiple of global_batch_size). */
static void cfg_for_batch(const trainer *tr, sl_trainer_cfg *c, uint32_t n) {
    int steps = tr->num_steps_per_rollout > 0 ? tr->num_steps_per_rollout : 1;
    if (c->loss_type == SL_LOSS_SFT) steps = 1;
    int gbs = tr->global_batch_size;
    if (c->loss_type == SL_LOSS_SFT || gbs <= 0 || n % (uint32_t)gbs != 0)
        gbs = (n % (uint32_t)steps == 0) ? (int)(n / (uint32_t)steps) : (int)n;
    if (gbs < 1) gbs = 1;
    c->global_batch_size = gbs;
    c->num_steps_per_rollout = 0;
    if (c->micro_batch_size > gbs) c->micro_batch_size = gbs;
}

/* ============================================================ session */

/* "PID STARTTIME" of our parent (the supervisor), to tell a restart under
 * the same supervisor from a new run. */
static int parent_session(char *out, size_t cap) {
    pid_t pp = getppid();
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pp);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return SL_EIO;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return SL_EIO;
    buf[n] = 0;
    char *r = strrchr(buf, ')');
    if (!r) return SL_EIO;
    /* field 22 (starttime) is the 20th after ")" */
    char *tok = r + 1, *save = NULL;
    const char *f = NULL;
    int i = 0;
    for (char *s = strtok_r(tok, " ", &save); s; s = strtok_r(NULL, " ", &save))
        if (++i == 20) {
            f = s;
            break;
        }
    if (!f) return SL_EIO;
    snprintf(out, cap, "%d %s\n", (int)pp, f);
    return SL_OK;
}

/* Whether this start is a restart within the same supervised run; records
 * the session for later restarts. */
static bool same_session(const char *run_dir, int rank) {
    char cur[128], path[PATH_MAX], old[128] = "";
    if (parent_session(cur, sizeof cur)) return false;
    if (rank > 0)
        snprintf(path, sizeof path, "%s/.trainer_session.%d", run_dir, rank);
    else
        snprintf(path, sizeof path, "%s/.trainer_session", run_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, old, sizeof old - 1);
        old[n > 0 ? n : 0] = 0;
        close(fd);
    }
    bool same = strcmp(old, cur) == 0;
    if (!same) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            if (write(fd, cur, strlen(cur)) < 0) { /* best effort */
            }
            close(fd);
        }
    }
    return same;
}

/* ============================================================ weights */

/* WEIGHTS to the rollouts of MASK: d (may be NULL) to the shm ones, ipc
 * (may be NULL) to the GPU ones. */
static void send_weights(trainer *tr, sl_actor_ctx *ctx, const sl_shm_desc *d, json_t *ipc,
                         uint64_t version, uint32_t mask) {
    char hex[SL_RL_DESC_HEX_LEN + 1];
    json_t *o = NULL, *og = NULL;
    if (d) {
        sl_rl_desc_to_hex(d, hex);
        o = json_pack("{s:s, s:I}", "desc", hex, "weight_version", (json_int_t)version);
    }
    if (ipc)
        og = json_pack("{s:I, s:O, s:s}", "weight_version", (json_int_t)version, "cuda_ipc", ipc,
                       "sync", tr->sync_mode ? tr->sync_mode : "copy");
    for (int i = 0; i < tr->n_rollouts; i++) {
        uint32_t bit = 1u << (SL_RL_CONSUMER_ROLLOUT_BASE + i);
        if (!(mask & bit)) continue;
        json_t *body = (tr->gpu_mask & bit) ? og : o;
        if (!body) continue;
        int e = sl_rl_json_send(ctx, tr->rollouts[i]->name, SL_MSG_WEIGHTS, body);
        if (e)
            sl_actor_log(ctx, SL_LOG_DEBUG, "WEIGHTS to %s not sent (%s); it will ask",
                         tr->rollouts[i]->name, sl_strerror(e));
    }
    json_decref(o);
    json_decref(og);
}

/* Publish the current parameters (loop thread, worker idle) to MASK. */
static int publish_now(trainer *tr, sl_actor_ctx *ctx, uint32_t mask) {
    if (!mask) return SL_OK;
    uint64_t v = sl_trainer_weight_version(tr->core);
    sl_shm_desc d;
    bool have_d = false;
    uint32_t sm = mask & tr->shm_mask;
    if (sm && tr->pub) {
        size_t n;
        const float *p = sl_trainer_params(tr->core, &n);
        int e = sl_weights_publish(tr->pub, p, v, sm, &d);
        if (e) {
            sl_actor_log(ctx, SL_LOG_ERROR, "cannot publish weights v%llu: %s",
                         (unsigned long long)v, sl_strerror(e));
            return e;
        }
        have_d = true;
    }
    json_t *ipc = (mask & tr->gpu_mask) && tr->wpub ? sl_wgpu_publish(tr->wpub) : NULL;
    send_weights(tr, ctx, have_d ? &d : NULL, ipc, v, mask);
    json_decref(ipc);
    return SL_OK;
}

static void bc_start(trainer *tr, sl_actor_ctx *ctx);

/* ============================================================ worker */

static bool ckpt_due(const trainer *tr, const job *j) {
    if (j->phase == PH_SFT) return j->last || (j->sft_total > 0 && j->step >= j->sft_total);
    if (j->last) return true;
    if (tr->save_interval > 0 && j->step % tr->save_interval == 0) return true;
    return tr->num_steps > 0 && j->step >= tr->num_steps;
}

/* A rank other than 0 after its step: the collective calls rank 0 makes
 * (the same order), nothing else. */
static void worker_follower(trainer *tr, job *j) {
    if (tr->shm_mask) sl_trainer_params(tr->core, NULL); /* rank 0 publishes it */
    if (ckpt_due(tr, j)) {
        int e = sl_trainer_collect(tr->core); /* rank 0 writes the checkpoint */
        if (e) {
            j->rc = e;
            snprintf(j->err, sizeof j->err, "checkpoint (collect) failed: %s", sl_strerror(e));
        }
    }
}

static void *worker(void *arg) {
    trainer *tr = arg;
    job *j = tr->cur;
    char derr[128];
    /* CUDA's current device is per thread */
    if (tr->device >= 0 && sl_gpu_set_device(tr->device, derr, sizeof derr)) {
        j->rc = SL_EIO;
        snprintf(j->err, sizeof j->err, "%s", derr);
        goto done;
    }
    j->rc = sl_trainer_step(tr->core, &j->tb, &j->m);
    if (j->rc) {
        snprintf(j->err, sizeof j->err, "train step failed: %s", sl_strerror(j->rc));
        goto done;
    }
    j->version = sl_trainer_weight_version(tr->core);
    sl_fault_point("train_step"); /* faults.h */
    if (tr->rank > 0) {
        worker_follower(tr, j);
        goto done;
    }
    if (j->phase == PH_RL) {
        int e = sl_ledger_append(tr->ledger, j->step, j->version, j->bv.sample_ids, j->bv.n_samples);
        if (e) {
            j->rc = e;
            snprintf(j->err, sizeof j->err, "ledger append failed: %s", sl_strerror(e));
            goto done;
        }
    }
    uint64_t t0 = sl_now_ns();
    if (tr->pub && tr->shm_mask) {
        size_t n;
        const float *p = sl_trainer_params(tr->core, &n); /* GPU: copied down here */
        if (!sl_weights_publish(tr->pub, p, j->version, tr->shm_mask, &j->wdesc)) j->published = true;
    }
    if (tr->wpub && tr->gpu_mask) {
        /* the event after the optimizer step, on the model's stream */
        j->ipc = sl_wgpu_publish(tr->wpub);
        if (j->ipc) j->published = true;
    }
    uint64_t t1 = sl_now_ns();
    j->pub_s = (double)(t1 - t0) / 1e9;
    if (ckpt_due(tr, j)) {
        sl_ckpt_state st = tr->st;
        st.cursor_json = j->cursor_json ? j->cursor_json : tr->st.cursor_json;
        st.weight_version = j->version;
        strcpy(st.phase, j->phase == PH_SFT ? "sft" : "rl");
        if (j->phase == PH_SFT) {
            st.sft_step = j->step;
            st.sft_done = true;
        } else {
            st.step = j->step;
        }
        char err[400];
        /* every rank collects (the moments' shards), then rank 0 writes */
        int e = tr->nranks > 1 ? sl_trainer_collect(tr->core) : SL_OK;
        if (e) snprintf(err, sizeof err, "collect: %s", sl_strerror(e));
        if (!e) e = sl_ckpt_write(tr->run_dir, tr->core, tr->model_dir, &st, j->ckpt, err, sizeof err);
        if (e) {
            j->rc = e;
            snprintf(j->err, sizeof j->err, "checkpoint failed: %s", err);
        }
    }
    j->ckpt_s = (double)(sl_now_ns() - t1) / 1e9;
done:
    atomic_store(&tr->done, 1);
    return NULL;
}

/* ============================================================ batches */

static void reply_done(sl_actor_ctx *ctx, const sl_msg *req, json_t *o) {
    int e;
    if (!sl_rl_is_request(req))
        e = sl_rl_json_send(ctx, req->sender, SL_MSG_TRAIN_DONE, o);
    else
        e = sl_rl_json_reply(ctx, req, SL_MSG_TRAIN_DONE, o);
    if (e) sl_actor_log(ctx, SL_LOG_WARN, "TRAIN_DONE to %s: %s", req->sender, sl_strerror(e));
}

/* Refuse a batch: counted, logged, answered. */
static void refuse(trainer *tr, sl_actor_ctx *ctx, const sl_msg *req, int64_t step, int code,
                   const char *why) {
    tr->bad_batches++;
    if (tr->rank > 0) { /* rank 0 trains it: this rank must too, or the group stalls */
        sl_actor_log(ctx, SL_LOG_ERROR, "rank %d cannot train the batch of step %lld rank 0 sent (%s): "
                     "stopping (the group restarts)", tr->rank, (long long)step, why);
        tr->fatal = code ? code : SL_EINVAL;
        return;
    }
    sl_actor_log(ctx, SL_LOG_WARN, "TRAIN_BATCH from %s refused (%llu so far): %s", req->sender,
                 (unsigned long long)tr->bad_batches, why);
    if (!sl_rl_is_request(req)) {
        json_t *o = json_pack("{s:I, s:I, s:s}", "step", (json_int_t)step, "weight_version",
                              (json_int_t)tr->st.weight_version, "error", why);
        reply_done(ctx, req, o);
        json_decref(o);
    } else {
        sl_actor_reply_error(ctx, req, code, why);
    }
}

static void release_slot(trainer *tr, const sl_shm_desc *d) {
    if (tr->rank > 0) return; /* rank 0 holds the slot for the group */
    if (tr->bview && sl_shm_view_matches(tr->bview, d)) sl_shm_release(tr->bview, d);
}

/* Start (or refuse, or answer as duplicate) one TRAIN_BATCH. */
static void start_batch(trainer *tr, sl_actor_ctx *ctx, const sl_msg *m) {
    char why[512];
    json_t *o = NULL;
    if (sl_rl_json_parse(m->payload, m->len, &o, why, sizeof why)) {
        refuse(tr, ctx, m, 0, SL_EINVAL, why);
        return;
    }
    uint64_t step = 0, n_samples = 0, group_size = 0, sft_total = 0;
    const char *phase = NULL;
    sl_shm_desc d;
    json_t *cur = json_object_get(o, "cursor");
    json_t *last = json_object_get(o, "last");
    if (sl_rl_json_u64(o, "step", &step) || sl_rl_json_str_opt(o, "phase", NULL, &phase) || !phase ||
        (strcmp(phase, "sft") && strcmp(phase, "rl")) ||
        sl_rl_json_u64_opt(o, "n_samples", 0, &n_samples) ||
        sl_rl_json_u64_opt(o, "group_size", 0, &group_size) ||
        sl_rl_json_u64_opt(o, "sft_steps", (uint64_t)tr->sft_steps, &sft_total) || (cur && !json_is_object(cur) && !json_is_null(cur)) ||
        (last && !json_is_boolean(last))) {
        refuse(tr, ctx, m, (int64_t)step, SL_EINVAL,
               "bad fields (need step, phase sft|rl, desc; cursor object, n_samples, last bool)");
        json_decref(o);
        return;
    }
    if (sl_rl_json_desc(o, &d)) {
        refuse(tr, ctx, m, (int64_t)step, SL_EINVAL, "bad desc");
        json_decref(o);
        return;
    }
    int ph = strcmp(phase, "sft") == 0 ? PH_SFT : PH_RL;
    if (!tr->bview || !sl_shm_view_matches(tr->bview, &d)) {
        sl_shm_view_close(tr->bview);
        tr->bview = NULL;
        int e = sl_shm_arena_open(&d, SL_RL_CONSUMER_TRAINER, &tr->bview);
        if (e) {
            snprintf(why, sizeof why, "cannot map the batch's arena: %s", sl_strerror(e));
            refuse(tr, ctx, m, (int64_t)step, e, why);
            json_decref(o);
            return;
        }
    }
    /* already trained? (rank 0 decides for the group) */
    if (tr->rank == 0 && ((ph == PH_RL && (int64_t)step <= tr->st.step) ||
        (ph == PH_SFT && (tr->st.sft_done || (int64_t)step <= tr->st.sft_step)))) {
        release_slot(tr, &d);
        tr->duplicates++;
        sl_actor_log(ctx, SL_LOG_INFO, "%s batch step %llu already trained: not again", phase,
                     (unsigned long long)step);
        json_t *r = json_pack("{s:I, s:I, s:b, s:{}}", "step", (json_int_t)step, "weight_version",
                              (json_int_t)tr->st.weight_version, "duplicate", 1, "metrics");
        reply_done(ctx, m, r);
        json_decref(r);
        json_decref(o);
        return;
    }
    /* Right after a (re)start the first batch must be the next one: when
     * the buffer is ahead (this trainer lost steps since its checkpoint),
     * training it would leave a hole in the run; answer "behind" so the
     * buffer re-sends from our step + 1 (its WAL holds those batches). */
    int64_t want = ph == PH_RL ? tr->st.step + 1 : tr->st.sft_step + 1;
    if (tr->rank == 0 && tr->check_gap && (int64_t)step > want) {
        release_slot(tr, &d);
        tr->behind++;
        /* Once: a buffer that rewinds re-sends from want on; one that does
         * not must not be stalled by refusals of every later step. */
        tr->check_gap = false;
        sl_actor_log(ctx, SL_LOG_WARN, "%s batch step %llu but this trainer is at step %lld: behind",
                     phase, (unsigned long long)step, (long long)(want - 1));
        if (sl_rl_is_request(m)) {
            snprintf(why, sizeof why, "behind: trainer at %s step %lld", phase, (long long)(want - 1));
            sl_actor_reply_error(ctx, m, SL_ESTALE, why);
        } else {
            json_t *r = json_pack("{s:I, s:s, s:s, s:b, s:I, s:I, s:I}", "step", (json_int_t)step,
                                  "phase", phase, "error", "behind", "behind", 1, "trainer_step",
                                  (json_int_t)tr->st.step, "sft_step", (json_int_t)tr->st.sft_step,
                                  "weight_version", (json_int_t)tr->st.weight_version);
            reply_done(ctx, m, r);
            json_decref(r);
        }
        json_decref(o);
        return;
    }
    const void *ptr;
    size_t len;
    int e = sl_shm_read(tr->bview, &d, 0, &ptr, &len);
    if (e) {
        snprintf(why, sizeof why, "slot not readable: %s", sl_strerror(e));
        refuse(tr, ctx, m, (int64_t)step, e, why);
        json_decref(o);
        return;
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        release_slot(tr, &d);
        refuse(tr, ctx, m, (int64_t)step, SL_ENOMEM, "out of memory");
        json_decref(o);
        return;
    }
    char verr[256];
    e = sl_batch_view_open(&j->bv, ptr, len, tr->model->cfg.vocab_size, SL_BATCH_SKIP_CHECKSUM, verr,
                           sizeof verr);
    if (!e && n_samples && n_samples != j->bv.n_samples) {
        snprintf(verr, sizeof verr, "n_samples %llu but the batch holds %u",
                 (unsigned long long)n_samples, j->bv.n_samples);
        e = SL_EINVAL;
    }
    if (!e && j->bv.n_samples == 0) {
        snprintf(verr, sizeof verr, "empty batch");
        e = SL_EINVAL;
    }
    if (e) {
        snprintf(why, sizeof why, "malformed batch: %s", verr);
        release_slot(tr, &d);
        free(j);
        refuse(tr, ctx, m, (int64_t)step, e, why);
        json_decref(o);
        return;
    }
    /* group size: the message's, else the samples sharing the first group
     * id (consecutive) */
    uint32_t gs = 1;
    while (gs < j->bv.n_samples && j->bv.group_ids[gs] == j->bv.group_ids[0]) gs++;
    if (group_size > 0 && group_size <= j->bv.n_samples) gs = (uint32_t)group_size;
    if (j->bv.n_samples % gs) gs = 0;
    sl_train_batch_from_view(&j->bv, ph == PH_RL ? gs : 0, &j->tb);
    /* config of this phase and batch size */
    sl_trainer_cfg c = ph == PH_SFT ? tr->sft_cfg : tr->rl_cfg;
    cfg_for_batch(tr, &c, j->bv.n_samples);
    char cerr[256];
    e = sl_trainer_set_cfg(tr->core, &c, cerr, sizeof cerr);
    if (e) {
        snprintf(why, sizeof why, "cannot configure the step: %s", cerr);
        release_slot(tr, &d);
        free(j);
        refuse(tr, ctx, m, (int64_t)step, e, why);
        json_decref(o);
        return;
    }
    tr->cur_phase = ph;
    j->req = *m;
    j->req.payload = NULL;
    j->req.len = 0;
    j->desc = d;
    j->phase = ph;
    j->step = (int64_t)step;
    j->last = last && json_is_true(last);
    j->sft_total = (int64_t)sft_total;
    j->cursor_json = (cur && json_is_object(cur)) ? json_dumps(cur, JSON_COMPACT) : NULL;
    json_decref(o);
    tr->cur = j;
    /* rank 0: the other ranks train the same batch */
    for (int r = 1; tr->rank == 0 && r < tr->nranks; r++) {
        e = sl_actor_send(ctx, tr->peers[r]->name, SL_MSG_TRAIN_BATCH, m->payload, m->len);
        if (e) {
            sl_actor_log(ctx, SL_LOG_ERROR, "TRAIN_BATCH to rank %d (%s): %s: stopping (the group "
                         "restarts)", r, tr->peers[r]->name, sl_strerror(e));
            tr->fatal = e;
        }
    }
    if (tr->fatal) {
        release_slot(tr, &d);
        free(j->cursor_json);
        free(j);
        tr->cur = NULL;
        return;
    }
    atomic_store(&tr->done, 0);
    if (pthread_create(&tr->th, NULL, worker, tr) != 0) {
        release_slot(tr, &d);
        free(j->cursor_json);
        free(j);
        tr->cur = NULL;
        refuse(tr, ctx, m, (int64_t)step, SL_ENOMEM, "cannot start the worker thread");
        return;
    }
    tr->running = true;
    sl_actor_set_tick(ctx, 20);
}

static void enqueue(trainer *tr, const sl_msg *m) {
    queued *q = calloc(1, sizeof *q);
    if (!q) return;
    q->msg = *m;
    q->msg.payload = NULL;
    if (m->len) {
        q->msg.payload = malloc(m->len);
        if (!q->msg.payload) {
            free(q);
            return;
        }
        memcpy(q->msg.payload, m->payload, m->len);
    }
    if (tr->q_tail)
        tr->q_tail->next = q;
    else
        tr->q_head = q;
    tr->q_tail = q;
}

/* The worker finished: message, release, bookkeeping. Returns non-OK when
 * the actor must stop (a failed ledger or checkpoint write). */
static int finish_batch(trainer *tr, sl_actor_ctx *ctx) {
    pthread_join(tr->th, NULL);
    tr->running = false;
    job *j = tr->cur;
    tr->cur = NULL;
    release_slot(tr, &j->desc);
    int fatal = SL_OK;
    if (j->rc) {
        /* data parallel: a failed step leaves the group out of step: stop */
        bool bad_input = j->rc == SL_EINVAL && strncmp(j->err, "train step", 10) == 0 && tr->nranks == 1;
        if (bad_input) {
            refuse(tr, ctx, &j->req, j->step, j->rc, j->err);
        } else {
            sl_actor_log(ctx, SL_LOG_ERROR, "%s", j->err);
            fatal = j->rc;
        }
    } else {
        tr->trained++;
        tr->check_gap = false;
        tr->st.weight_version = j->version;
        if (j->phase == PH_SFT) {
            tr->st.sft_step = j->step;
            strcpy(tr->st.phase, "sft");
            if (j->ckpt[0]) tr->st.sft_done = true;
        } else {
            tr->st.step = j->step;
            strcpy(tr->st.phase, "rl");
        }
        if (j->cursor_json) {
            free(tr->st.cursor_json);
            tr->st.cursor_json = j->cursor_json;
            j->cursor_json = NULL;
        }
        if (tr->n_bcast > 0) bc_start(tr, ctx); /* the new weights by NCCL */
        if (j->published) {
            bool shm = tr->pub && tr->shm_mask;
            send_weights(tr, ctx, shm ? &j->wdesc : NULL, j->ipc, j->version, tr->all_mask);
            tr->weights_req_mask &= ~tr->all_mask;
        }
        const sl_train_metrics *m = &j->m;
        json_t *mt = json_pack(
            "{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:i, s:i, s:f, s:f, s:f}",
            "loss", m->loss, "pg_loss", m->pg_loss, "kl", m->kl, "entropy", m->entropy,
            "grad_norm", m->grad_norm, "clipfrac", m->clipfrac, "lr", m->lr,
            "train_rollout_logprob_abs_diff", m->train_rollout_logprob_abs_diff, "ppo_kl",
            m->ppo_kl, "adv_mean", m->adv_mean, "samples_trained", (json_int_t)m->samples,
            "n_tokens", (json_int_t)m->tokens, "optimizer_steps", m->steps,
            "skipped_steps", m->skipped_steps, "train_s", m->seconds, "weight_sync_s", j->pub_s,
            "checkpoint_s", j->ckpt_s);
        json_t *r = json_pack("{s:I, s:s, s:I, s:o}", "step", (json_int_t)j->step, "phase",
                              j->phase == PH_SFT ? "sft" : "rl", "weight_version",
                              (json_int_t)j->version, "metrics", mt);
        json_object_set_new(mt, "kl_loss", json_real(tr->rl_cfg.use_kl_loss && j->phase == PH_RL ? m->kl : 0.0));
        if (j->ckpt[0]) json_object_set_new(r, "checkpoint", json_string(j->ckpt));
        if (tr->rank == 0) reply_done(ctx, &j->req, r);
        json_decref(r);
        sl_actor_log(ctx, SL_LOG_INFO, "%s step %lld: loss %.4f grad_norm %.3f v%llu %.2fs%s%s",
                     j->phase == PH_SFT ? "sft" : "rl", (long long)j->step, m->loss, m->grad_norm,
                     (unsigned long long)j->version, m->seconds, j->ckpt[0] ? " checkpoint " : "",
                     j->ckpt);
    }
    free(j->cursor_json);
    json_decref(j->ipc);
    free(j);
    return fatal;
}

/* ============================================================ data parallel */

/* Rank, peers and GPU of a trainer in a group of count > 1 (and the GPU of
 * any GPU trainer). */
static int dp_setup(trainer *tr, sl_actor_ctx *ctx, const sl_actor_spec *self) {
    char err[256];
    tr->nranks = self && self->count > 1 ? self->count : 1;
    tr->rank = tr->nranks > 1 ? self->index : 0;
    if (tr->nranks > 1 && tr->device < 0) {
        sl_actor_log(ctx, SL_LOG_ERROR, "%d trainers (count) need device = cuda:N: data "
                     "parallelism runs over NCCL between GPUs", tr->nranks);
        return SL_EUNSUPPORTED;
    }
    if (tr->nranks > DP_MAX_RANKS) {
        sl_actor_log(ctx, SL_LOG_ERROR, "%d trainers: at most %d data-parallel ranks", tr->nranks,
                     DP_MAX_RANKS);
        return SL_ERANGE;
    }
    if (tr->device >= 0 && sl_gpu_set_device(tr->device, err, sizeof err)) {
        sl_actor_log(ctx, SL_LOG_ERROR, "%s", err);
        return SL_ERANGE;
    }
    if (tr->nranks == 1) return SL_OK;
    const sl_topology *t = sl_actor_topology(ctx);
    bool shared = false;
    for (int i = 0; t && i < t->n_actors; i++) {
        const sl_actor_spec *s = &t->actors[i];
        if (strcmp(s->group, self->group) || s->index < 0 || s->index >= tr->nranks) continue;
        tr->peers[s->index] = s;
        if (s != self && s->cuda_device == self->cuda_device) shared = true;
    }
    for (int r = 0; r < tr->nranks; r++)
        if (!tr->peers[r]) {
            sl_actor_log(ctx, SL_LOG_ERROR, "trainer group %s: no instance %d", self->group, r);
            return SL_EINVAL;
        }
    if (shared) {
        sl_nccl_own_host(self->name);
        sl_actor_log(ctx, SL_LOG_WARN, "trainer ranks share %s: NCCL between them runs over loopback "
                     "sockets (slow: for tests on one GPU; use placement = one_per_gpu)", self->device);
    }
    return SL_OK;
}

static int dp_join_start(trainer *tr, sl_actor_ctx *ctx) {
    tr->dp = DP_JOINING;
    if (sl_ncjoin_start(&tr->dj)) {
        tr->dp = DP_OFF;
        sl_actor_log(ctx, SL_LOG_ERROR, "%s", tr->dj.err);
        return SL_ENOMEM;
    }
    sl_actor_set_tick(ctx, 50);
    return SL_OK;
}

/* Rank 0: the group's id, and its own join; the others wait for the id. */
static int dp_start(trainer *tr, sl_actor_ctx *ctx) {
    snprintf(tr->dj.group, sizeof tr->dj.group, "dp");
    tr->dj.nranks = tr->nranks, tr->dj.rank = tr->rank, tr->dj.device = tr->device;
    if (tr->rank > 0) {
        tr->dp = DP_WAIT_ID;
        return SL_OK;
    }
    char err[256];
    int e = sl_nccl_unique_id(tr->dj.id, err, sizeof err);
    if (e) {
        sl_actor_log(ctx, SL_LOG_ERROR, "NCCL unique id: %s", err);
        return e;
    }
    tr->dj.epoch = (int64_t)getpid();
    return dp_join_start(tr, ctx);
}

/* Rank > 0: the id from rank 0. */
static void dp_on_id(trainer *tr, sl_actor_ctx *ctx, const sl_nccl_id_msg *m, const char *sender) {
    if (tr->rank == 0 || strcmp(sender, tr->peers[0]->name) != 0) {
        sl_actor_log(ctx, SL_LOG_WARN, "NCCL_ID from %s, not this group's rank 0: ignored", sender);
        return;
    }
    if (tr->dp != DP_WAIT_ID) return; /* a resend: already joining */
    if (m->nranks != tr->nranks || m->rank != tr->rank) {
        sl_actor_log(ctx, SL_LOG_WARN, "NCCL_ID from %s refused: rank %d of %d, this is rank %d of %d",
                     sender, m->rank, m->nranks, tr->rank, tr->nranks);
        return;
    }
    memcpy(tr->dj.id, m->id, sizeof tr->dj.id);
    tr->dj.epoch = m->epoch;
    dp_join_start(tr, ctx);
}

/* Loop tick while the group is not up. Non-OK: stop the actor. */
static int dp_tick(trainer *tr, sl_actor_ctx *ctx) {
    uint64_t now = sl_now_ms();
    if (tr->rank == 0 && tr->dp != DP_READY && now - tr->dp_sent_ms >= DP_ID_RESEND_MS) {
        tr->dp_sent_ms = now;
        for (int r = 1; r < tr->nranks; r++)
            sl_nccl_id_send(ctx, tr->peers[r]->name, "dp", tr->nranks, r, tr->dj.epoch, tr->dj.id);
    }
    int j = sl_ncjoin_poll(&tr->dj, &tr->nc);
    if (j == 0) return SL_OK;
    if (j < 0) {
        tr->dp = DP_OFF;
        sl_actor_log(ctx, SL_LOG_ERROR, "rank %d cannot join the NCCL group: %s", tr->rank, tr->dj.err);
        return -j;
    }
    const sl_topology *t = sl_actor_topology(ctx);
    long long mb = t ? sl_topology_get_int(t, "trainer", "dp_bucket_mb") : 16;
    bool zero1 = t ? sl_topology_get_int(t, "trainer", "zero_stage") == 1 : true;
    char err[256];
    int e = sl_trainer_enable_dp(tr->core, tr->nc, (size_t)mb << 20, zero1, err, sizeof err);
    if (e) {
        tr->dp = DP_OFF;
        sl_actor_log(ctx, SL_LOG_ERROR, "data parallelism: %s", err);
        return e;
    }
    tr->dp = DP_READY;
    sl_actor_log(ctx, SL_LOG_INFO, "data parallel: rank %d of %d on %s (epoch %lld), gradient buckets "
                 "of %lld MiB, %s", tr->rank, tr->nranks, tr->peers[tr->rank]->device,
                 (long long)tr->dj.epoch, mb, zero1 ? "ZeRO-1" : "moments on every rank");
    return SL_OK;
}

/* ------------------------------------------- weights group (rank 0) */

/* A new weights group (new id and epoch); the rollouts get NCCL_ID from
 * wg_tick until every one joined. */
static int wg_start(trainer *tr, sl_actor_ctx *ctx) {
    static int64_t seq;
    snprintf(tr->wj.group, sizeof tr->wj.group, "weights");
    tr->wj.nranks = 1 + tr->n_bcast, tr->wj.rank = 0, tr->wj.device = tr->device;
    tr->wj.epoch = ((int64_t)getpid() << 20) + ++seq;
    char err[256];
    int e = sl_nccl_unique_id(tr->wj.id, err, sizeof err);
    if (!e && (e = sl_ncjoin_start(&tr->wj)) != SL_OK) snprintf(err, sizeof err, "%s", tr->wj.err);
    if (e) {
        sl_actor_log(ctx, SL_LOG_ERROR, "weights group: %s", err);
        return e;
    }
    tr->wg = DP_JOINING;
    tr->wg_sent_ms = 0;
    sl_actor_set_tick(ctx, 50);
    return SL_OK;
}

/* The broadcast thread: the bf16 weights from the GPU model to every
 * rollout of the group. */
static void *bc_main(void *arg) {
    trainer *tr = arg;
    char err[128];
    size_t wb = 0;
    void *wp = sl_gpum_weights(tr->gpum, &wb);
    int e = sl_gpu_set_device(tr->device, err, sizeof err);
    if (!e) e = sl_nccl_broadcast(tr->wnc, wp, wb, 0, tr->bc_bucket, &tr->bc_buckets);
    tr->bc_rc = e;
    atomic_store(&tr->bc_done, 1);
    return NULL;
}

/* The WEIGHTS that announces broadcast v of the group to rollout `to`. */
static void send_nccl_weights(trainer *tr, sl_actor_ctx *ctx, const char *to, uint64_t v) {
    size_t wb = 0;
    sl_gpum_weights(tr->gpum, &wb);
    json_t *o = json_pack("{s:I, s:{s:I, s:I}}", "weight_version", (json_int_t)v, "nccl", "epoch",
                          (json_int_t)tr->wj.epoch, "bytes", (json_int_t)wb);
    sl_rl_json_send(ctx, to, SL_MSG_WEIGHTS, o);
    json_decref(o);
}

/* WEIGHTS ("nccl") to every rollout of the group, then the broadcast. */
static void bc_start(trainer *tr, sl_actor_ctx *ctx) {
    if (tr->wg != DP_READY || tr->bc_running) return;
    uint64_t v = sl_trainer_weight_version(tr->core);
    for (int k = 0; k < tr->n_bcast; k++) send_nccl_weights(tr, ctx, tr->rollouts[tr->bc_ro[k]]->name, v);
    atomic_store(&tr->bc_done, 0);
    tr->bc_version = v;
    tr->bc_t0 = sl_now_ns();
    if (pthread_create(&tr->bc_th, NULL, bc_main, tr) != 0) {
        sl_actor_log(ctx, SL_LOG_ERROR, "cannot start the broadcast thread");
        return;
    }
    tr->bc_running = true;
    sl_actor_set_tick(ctx, 20);
}

/* Tear the group down (a member left) and make a new one. */
static void wg_rebuild(trainer *tr, sl_actor_ctx *ctx, const char *why) {
    sl_actor_log(ctx, SL_LOG_WARN, "weights group (epoch %lld): %s: making a new one",
                 (long long)tr->wj.epoch, why);
    if (tr->bc_running) {
        sl_nccl_abort(tr->wnc); /* the broadcast waits for a rollout that is gone */
        pthread_join(tr->bc_th, NULL);
        tr->bc_running = false;
    }
    sl_nccl_free(tr->wnc);
    tr->wnc = NULL;
    tr->wg = DP_OFF;
    if (wg_start(tr, ctx) != SL_OK) tr->fatal = SL_EIO;
}

/* Loop tick: the group's joining, the broadcast's end. */
static void wg_tick(trainer *tr, sl_actor_ctx *ctx) {
    if (tr->wg == DP_JOINING) {
        uint64_t now = sl_now_ms();
        if (now - tr->wg_sent_ms >= DP_ID_RESEND_MS) {
            tr->wg_sent_ms = now;
            for (int k = 0; k < tr->n_bcast; k++)
                sl_nccl_id_send(ctx, tr->rollouts[tr->bc_ro[k]]->name, "weights", tr->wj.nranks, k + 1,
                                tr->wj.epoch, tr->wj.id);
        }
        int j = sl_ncjoin_poll(&tr->wj, &tr->wnc);
        if (j < 0) {
            sl_actor_log(ctx, SL_LOG_ERROR, "weights group: %s", tr->wj.err);
            tr->fatal = -j;
        } else if (j > 0) {
            tr->wg = DP_READY;
            tr->wg_sent_ms = sl_now_ms(); /* the time it came up */
            sl_actor_log(ctx, SL_LOG_INFO, "weights group (epoch %lld): %d rollout(s) by NCCL "
                         "broadcast, buckets of %zu MiB", (long long)tr->wj.epoch, tr->n_bcast,
                         tr->bc_bucket >> 20);
            if (!tr->running) bc_start(tr, ctx); /* the current weights */
        }
    }
    if (tr->bc_running && !atomic_load(&tr->bc_done) &&
        sl_now_ns() - tr->bc_t0 > (uint64_t)BC_TIMEOUT_MS * 1000000u)
        wg_rebuild(tr, ctx, "a broadcast has waited too long for a rollout");
    if (tr->bc_running && atomic_load(&tr->bc_done)) {
        pthread_join(tr->bc_th, NULL);
        tr->bc_running = false;
        double ms = (double)(sl_now_ns() - tr->bc_t0) / 1e6;
        if (tr->bc_rc)
            wg_rebuild(tr, ctx, "the broadcast failed");
        else
            sl_actor_log(ctx, SL_LOG_DEBUG, "weights v%llu broadcast to %d rollout(s): %.1f ms, %d "
                         "bucket(s)", (unsigned long long)tr->bc_version, tr->n_bcast, ms, tr->bc_buckets);
    }
}

/* WEIGHTS_REQ from a rollout of the group: in the group (its epoch), it
 * lacks weights: broadcast again; from a new incarnation (another epoch,
 * once the group has been up a while: a request sent before it joined
 * may still arrive), the group lost it: rebuild. */
static void wg_on_req(trainer *tr, sl_actor_ctx *ctx, const sl_msg *m) {
    json_t *o = NULL;
    int64_t ep = -1;
    if (sl_rl_json_parse(m->payload, m->len, &o, NULL, 0) == SL_OK &&
        sl_rl_json_i64_opt(o, "nccl_epoch", -1, &ep) != SL_OK)
        ep = -1;
    json_decref(o);
    if (tr->wg != DP_READY) return; /* joining: the NCCL_ID resends reach it */
    if (ep == tr->wj.epoch && tr->bc_running) {
        /* a broadcast waits for it: it missed (or dropped) that WEIGHTS */
        send_nccl_weights(tr, ctx, m->sender, tr->bc_version);
    } else if (ep == tr->wj.epoch) {
        if (!tr->running) bc_start(tr, ctx);
    } else if (sl_now_ms() - tr->wg_sent_ms > 2000) {
        char why[160];
        snprintf(why, sizeof why, "%s asks for weights outside it (a restart)", m->sender);
        wg_rebuild(tr, ctx, why);
    }
}

static bool dp_ready(const trainer *tr) { return tr->nranks == 1 || tr->dp == DP_READY; }

/* ============================================================ ops */

static void load_or_fresh(trainer *tr, sl_actor_ctx *ctx, int *rc) {
    const sl_topology *t = sl_actor_topology(ctx);
    bool resume = t && strcmp(sl_topology_get_str(t, "run", "resume"), "auto") == 0;
    bool restart = same_session(tr->run_dir, tr->rank);
    char name[SL_CKPT_NAME_MAX], err[512];
    *rc = SL_OK;
    if (resume || restart) {
        int e = sl_ckpt_latest(tr->run_dir, name, err, sizeof err);
        if (e == SL_OK) {
            sl_ckpt_state st;
            e = sl_ckpt_load(tr->run_dir, name, tr->core, &st, err, sizeof err);
            if (e) {
                sl_actor_log(ctx, SL_LOG_ERROR, "cannot resume from %s: %s", name, err);
                *rc = e;
                return;
            }
            sl_ckpt_state_fini(&tr->st);
            tr->st = st;
            size_t kept = 0, dropped = 0;
            /* the ledger is rank 0's */
            e = tr->rank > 0 ? SL_OK : sl_ledger_truncate(tr->ledger, st.step, &kept, &dropped, err, sizeof err);
            if (e) {
                sl_actor_log(ctx, SL_LOG_ERROR, "cannot truncate the ledger: %s", err);
                *rc = e;
                return;
            }
            sl_actor_log(ctx, SL_LOG_INFO,
                         "resumed from %s (%s): step %lld, weight_version %llu, sft_done %d; "
                         "ledger: kept %zu, dropped %zu",
                         name, restart ? "restart" : "resume = auto", (long long)st.step,
                         (unsigned long long)st.weight_version, st.sft_done, kept, dropped);
            return;
        }
        if (e != SL_ENOENT) {
            sl_actor_log(ctx, SL_LOG_ERROR, "latest checkpoint refused: %s", err);
            *rc = e;
            return;
        }
        if (restart || resume) {
            /* nothing saved yet: the ledger must not keep steps we lost */
            if (tr->rank == 0) sl_ledger_truncate(tr->ledger, 0, NULL, NULL, err, sizeof err);
            sl_actor_log(ctx, SL_LOG_INFO, "no checkpoint yet: starting fresh");
        }
        return;
    }
    /* a new run that does not resume */
    if (tr->rank > 0) return;
    sl_ckpt_forget_latest(tr->run_dir);
    struct iovec iov = {0};
    struct stat sb;
    if (stat(tr->ledger, &sb) == 0) sl_file_write_atomic(tr->ledger, &iov, 0);
}

static void trainer_free(trainer *tr) {
    if (!tr) return;
    if (tr->running) pthread_join(tr->th, NULL);
    if (tr->cur) {
        free(tr->cur->cursor_json);
        json_decref(tr->cur->ipc);
        free(tr->cur);
    }
    for (queued *q = tr->q_head; q;) {
        queued *n = q->next;
        sl_msg_fini(&q->msg);
        free(q);
        q = n;
    }
    sl_shm_view_close(tr->bview);
    sl_weights_pub_free(tr->pub);
    sl_wgpu_pub_free(tr->wpub);
    sl_trainer_free(tr->core);
    sl_ncjoin_fini(&tr->dj); /* a join still blocked in NCCL dies with the process */
    sl_ncjoin_fini(&tr->wj);
    if (tr->bc_running) { /* a broadcast blocked on a rollout that is gone */
        sl_nccl_abort(tr->wnc);
        pthread_join(tr->bc_th, NULL);
    }
    sl_nccl_free(tr->wnc);
    sl_nccl_free(tr->nc);
    sl_gpum_free(tr->gpum);
    sl_model_free(tr->model);
    sl_ckpt_state_fini(&tr->st);
    free(tr);
}

static sl_err trainer_init(sl_actor_ctx *ctx, void **state) {
    trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return SL_ENOMEM;
    const sl_topology *t = sl_actor_topology(ctx);
    tr->run_dir = sl_actor_run_dir(ctx);
    strcpy(tr->st.phase, "rl");
    char err[SL_MODEL_ERRLEN];
    int e = sl_rl_model_dir(ctx, tr->model_dir, sizeof tr->model_dir);
    if (e) goto fail;
    snprintf(tr->ledger, sizeof tr->ledger, "%s/ledger.jsonl", tr->run_dir);
    tr->save_interval = t ? sl_topology_get_int(t, "trainer", "save_interval") : 0;
    tr->num_steps = t ? sl_topology_get_int(t, "run", "num_steps") : 0;
    tr->sft_steps = t ? sl_topology_get_int(t, "sft", "steps") : 0;
    tr->num_steps_per_rollout = t ? (int)sl_topology_get_int(t, "trainer", "num_steps_per_rollout") : 1;
    tr->global_batch_size = t ? (int)sl_topology_get_int(t, "trainer", "global_batch_size") : 0;
    uint64_t seed = t ? (uint64_t)sl_topology_get_int(t, "run", "seed") : 1234;
    tr->rng = seed;
    tr->st.rng = seed;

    /* model: HF weights when the folder has them, else seeded init */
    char wpath[PATH_MAX + 32];
    snprintf(wpath, sizeof wpath, "%s/model.safetensors", tr->model_dir);
    char ipath[PATH_MAX + 32];
    snprintf(ipath, sizeof ipath, "%s/model.safetensors.index.json", tr->model_dir);
    struct stat sb;
    int mbs = t ? (int)sl_topology_get_int(t, "trainer", "micro_batch_size") : 1;
    if (mbs < 1) mbs = 1;
    long long mt_key = t ? sl_topology_get_int(t, "trainer", "max_tokens_per_gpu") : 0;
    const sl_actor_spec *self = sl_actor_spec_self(ctx);
    bool on_gpu = self && self->cuda_device >= 0;
    tr->device = on_gpu ? self->cuda_device : -1;
    e = dp_setup(tr, ctx, self);
    if (e) goto fail;
    sl_hf_config cfg;
    bool have_weights = stat(wpath, &sb) == 0 || stat(ipath, &sb) == 0;
    if (on_gpu) {
        /* the host twin holds parameters only (max_tokens 1: no activations
         * worth the name); the GPU model gets the activations */
        if (have_weights) {
            e = sl_model_load_hf(tr->model_dir, sl_ops_cpu(), 1, &tr->model, err, sizeof err);
        } else {
            char cpath[PATH_MAX + 32];
            snprintf(cpath, sizeof cpath, "%s/config.json", tr->model_dir);
            e = sl_hf_config_load(&cfg, cpath, err, sizeof err);
            if (!e) {
                e = sl_model_new(&cfg, sl_ops_cpu(), 1, seed, &tr->model, err, sizeof err);
                sl_hf_config_fini(&cfg);
            }
        }
        if (e) goto fail_model;
        int mp = tr->model->cfg.max_position_embeddings;
        long long mt = mt_key > 0 ? mt_key : (long long)(mp < 4096 ? mp : 4096) * mbs;
        if (mt_key <= 0 && mt > 16384) mt = 16384;
        sl_gpum_opts go = {.recompute = t && sl_topology_get_bool(t, "trainer", "recompute_activations")};
        e = sl_gpum_new_opts(tr->model, (int)mt, &go, &tr->gpum, err, sizeof err);
        if (e) {
            sl_actor_log(ctx, SL_LOG_ERROR, "cannot put the model on the GPU: %s", err);
            goto fail;
        }
    } else if (have_weights) {
        /* max_tokens needs the config first; load once to read it */
        e = sl_model_load_hf(tr->model_dir, sl_ops_cpu(), 256, &tr->model, err, sizeof err);
        if (e) goto fail_model;
        int mp = tr->model->cfg.max_position_embeddings;
        int per = mp < 4096 ? mp : 4096;
        long long mt = mt_key > 0 ? mt_key : (long long)per * mbs;
        if (mt_key <= 0 && mt > 65536) mt = 65536;
        if (mt > 256) {
            sl_model_free(tr->model);
            tr->model = NULL;
            e = sl_model_load_hf(tr->model_dir, sl_ops_cpu(), (int)mt, &tr->model, err, sizeof err);
            if (e) goto fail_model;
        }
    } else {
        char cpath[PATH_MAX + 32];
        snprintf(cpath, sizeof cpath, "%s/config.json", tr->model_dir);
        e = sl_hf_config_load(&cfg, cpath, err, sizeof err);
        if (e) goto fail_model;
        int mp = cfg.max_position_embeddings;
        int per = mp < 4096 ? mp : 4096;
        long long mt = mt_key > 0 ? mt_key : (long long)per * mbs;
        if (mt_key <= 0 && mt > 65536) mt = 65536;
        e = sl_model_new(&cfg, sl_ops_cpu(), (int)mt, seed, &tr->model, err, sizeof err);
        sl_hf_config_fini(&cfg);
        if (e) goto fail_model;
    }
    cfg_from_topology(t, &tr->rl_cfg);
    tr->rl_cfg.loss_type = SL_LOSS_POLICY;
    tr->sft_cfg = tr->rl_cfg;
    tr->sft_cfg.loss_type = SL_LOSS_SFT;
    tr->sft_cfg.lr = t ? sl_topology_get_double(t, "sft", "lr") : 1e-3;
    tr->sft_cfg.min_lr = 0;
    tr->sft_cfg.lr_warmup_steps = 0;
    tr->sft_cfg.lr_decay_style = SL_LR_CONSTANT;
    tr->sft_cfg.lr_decay_steps = 0;
    if (t) { /* [sft] schedule: warm-up, then decay over [sft] steps */
        tr->sft_cfg.min_lr = sl_topology_get_double(t, "sft", "min_lr");
        tr->sft_cfg.lr_warmup_steps = sl_topology_get_int(t, "sft", "lr_warmup_steps");
        sl_lr_decay_style_from_name(sl_topology_get_str(t, "sft", "lr_decay_style"),
                                    &tr->sft_cfg.lr_decay_style);
        if (tr->sft_cfg.lr_decay_style != SL_LR_CONSTANT)
            tr->sft_cfg.lr_decay_steps = tr->sft_steps > 0 ? tr->sft_steps : 1;
    }
    tr->sft_cfg.use_kl_loss = false;
    tr->sft_cfg.kl_coef = 0;
    tr->sft_cfg.use_tis = false;
    /* The trainer starts with the RL config so that a reference model
     * (use_kl_loss / kl_coef) is the run's initial policy. */
    sl_trainer_cfg c0 = tr->rl_cfg;
    cfg_for_batch(tr, &c0, 1);
    e = tr->gpum ? sl_trainer_new_gpu(tr->model, tr->gpum, &c0, &tr->core, err, sizeof err)
                 : sl_trainer_new(tr->model, &c0, &tr->core, err, sizeof err);
    if (e) {
        sl_actor_log(ctx, SL_LOG_ERROR, "trainer config: %s", err);
        goto fail;
    }
    tr->cur_phase = PH_NONE;
    load_or_fresh(tr, ctx, &e);
    if (e) goto fail;

    /* weights arena and the rollouts to publish to */
    tr->n_rollouts = sl_rl_find_kind(t, "rollout", tr->rollouts, SL_RL_MAX_INSTANCES);
    if (tr->n_rollouts > SL_RL_MAX_INSTANCES) tr->n_rollouts = SL_RL_MAX_INSTANCES;
    for (int i = 0; i < tr->n_rollouts; i++) {
        uint32_t bit = 1u << (SL_RL_CONSUMER_ROLLOUT_BASE + i);
        tr->all_mask |= bit;
        /* NCCL broadcast to GPU rollouts elsewhere (and with gpu_weight_sync
         * = broadcast); CUDA IPC to those on the trainer's GPU; shm to CPU ones */
        /* as rank 0 sees them (it publishes): every rank must agree, the
         * collective calls of a step depend on shm_mask */
        const sl_actor_spec *ro = tr->rollouts[i], *r0 = tr->nranks > 1 ? tr->peers[0] : self;
        if (tr->gpum && sl_weights_by_nccl(t, r0, ro)) {
            tr->bcast_mask |= bit;
            tr->bc_ro[tr->n_bcast++] = i;
            if (ro->cuda_device == self->cuda_device && !ro->host && tr->rank == 0)
                sl_nccl_own_host(self->name); /* one GPU: NCCL over sockets */
        } else if (tr->gpum && ro->cuda_device == r0->cuda_device) {
            tr->gpu_mask |= bit;
        } else {
            tr->shm_mask |= bit;
        }
    }
    if (tr->rank > 0) goto ready; /* rank 0 publishes for the group */
    if (tr->gpu_mask) {
        size_t wb = 0;
        void *wp = sl_gpum_weights(tr->gpum, &wb);
        e = sl_wgpu_pub_new(wp, wb, &tr->wpub, err, sizeof err);
        if (e) {
            sl_actor_log(ctx, SL_LOG_ERROR, "cannot export the weights (CUDA IPC): %s", err);
            goto fail;
        }
        const char *gs = t ? sl_topology_get_str(t, "trainer", "gpu_weight_sync") : "auto";
        bool async = t && sl_topology_get_bool(t, "rollout", "async");
        tr->sync_mode = !strcmp(gs, "in_place") || (!strcmp(gs, "auto") && !async) ? "in_place" : "copy";
        if (!strcmp(tr->sync_mode, "in_place") && async)
            sl_actor_log(ctx, SL_LOG_WARN, "gpu_weight_sync = in_place with rollout.async: rollouts "
                         "may read weights while an optimizer step writes them");
    }
    if (tr->shm_mask) {
        char an[SL_SHM_NAME_MAX];
        snprintf(an, sizeof an, "weights.%d", (int)getpid());
        e = sl_weights_pub_new(an, tr->model->n_params, (uint32_t)tr->n_rollouts + 2, &tr->pub);
        if (e) {
            sl_actor_log(ctx, SL_LOG_ERROR, "cannot create the weights arena: %s", sl_strerror(e));
            goto fail;
        }
        publish_now(tr, ctx, tr->all_mask);
    }
    if (tr->n_rollouts > 0 && !tr->shm_mask) publish_now(tr, ctx, tr->all_mask);
    if (tr->n_bcast > 0) {
        tr->bc_bucket = (size_t)(t ? sl_topology_get_int(t, "trainer", "broadcast_bucket_mb") : 64) << 20;
        if ((e = wg_start(tr, ctx)) != SL_OK) goto fail;
    }
ready:
    if (tr->nranks > 1 && (e = dp_start(tr, ctx)) != SL_OK) goto fail;
    sl_actor_log(ctx, SL_LOG_INFO,
                 "trainer ready: model %s (%zu params) on %s, %d rollout(s) (%d by CUDA IPC, sync "
                 "%s), step %lld, weight_version %llu",
                 tr->model_dir, tr->model->n_params, tr->gpum ? "the GPU (bf16)" : "the CPU",
                 tr->n_rollouts, __builtin_popcount(tr->gpu_mask), tr->sync_mode ? tr->sync_mode : "-",
                 (long long)tr->st.step, (unsigned long long)sl_trainer_weight_version(tr->core));
    tr->st.weight_version = sl_trainer_weight_version(tr->core);
    tr->check_gap = true;
    *state = tr;
    return SL_OK;
fail_model:
    sl_actor_log(ctx, SL_LOG_ERROR, "cannot load the model from %s: %s", tr->model_dir, err);
fail:
    trainer_free(tr);
    return e ? e : SL_EINVAL;
}

static sl_err trainer_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    trainer *tr = state;
    if (m->flags & SL_FLAG_REPLY) return SL_OK; /* nothing we asked for */
    switch (m->type) {
    case SL_MSG_TRAIN_BATCH:
        if (tr->rank > 0 && strcmp(m->sender, tr->peers[0]->name) != 0) {
            sl_actor_log(ctx, SL_LOG_WARN, "TRAIN_BATCH from %s: rank %d takes batches from rank 0 "
                         "only: ignored", m->sender, tr->rank);
            return SL_OK;
        }
        if (tr->running || tr->q_head || !dp_ready(tr) || tr->bc_running)
            enqueue(tr, m); /* the broadcast reads the weights the step would write */
        else
            start_batch(tr, ctx, m);
        return tr->fatal;
    case SL_MSG_NCCL_ID: {
        sl_nccl_id_msg im;
        char why[256];
        if (sl_nccl_id_msg_decode(m->payload, m->len, &im, why, sizeof why)) {
            sl_actor_log(ctx, SL_LOG_WARN, "NCCL_ID from %s refused: %s", m->sender, why);
        } else if (strcmp(im.group, "dp") == 0 && tr->nranks > 1) {
            dp_on_id(tr, ctx, &im, m->sender);
        } else {
            sl_actor_log(ctx, SL_LOG_WARN, "NCCL_ID (group %s) from %s: not for a trainer: ignored",
                         im.group, m->sender);
        }
        return SL_OK;
    }
    case SL_MSG_WEIGHTS_REQ: {
        int idx = -1;
        for (int i = 0; i < tr->n_rollouts; i++)
            if (strcmp(tr->rollouts[i]->name, m->sender) == 0) idx = i;
        if (idx < 0) {
            sl_actor_log(ctx, SL_LOG_WARN, "WEIGHTS_REQ from %s, not a rollout: ignored", m->sender);
            return SL_OK;
        }
        unsigned cid = SL_RL_CONSUMER_ROLLOUT_BASE + (unsigned)idx;
        if (tr->bcast_mask & (1u << cid)) {
            wg_on_req(tr, ctx, m);
            return SL_OK;
        }
        /* its previous incarnation's holds will never be released */
        if (tr->pub) sl_weights_pub_reclaim(tr->pub, cid);
        if (tr->running)
            tr->weights_req_mask |= 1u << cid;
        else
            publish_now(tr, ctx, 1u << cid);
        return SL_OK;
    }
    case SL_MSG_STATUS_REQ: {
        json_t *cur = NULL;
        if (tr->st.cursor_json) cur = json_loads(tr->st.cursor_json, 0, NULL);
        json_t *o = json_pack("{s:I, s:I, s:s, s:o, s:b, s:I, s:b}", "step", (json_int_t)tr->st.step,
                              "weight_version", (json_int_t)tr->st.weight_version, "phase",
                              tr->st.phase, "cursor", cur ? cur : json_null(), "sft_done",
                              tr->st.sft_done, "sft_step", (json_int_t)tr->st.sft_step, "busy",
                              tr->running || tr->q_head); /* queued: waiting for the group, or a step */
        if (!sl_rl_is_request(m))
            sl_rl_json_send(ctx, m->sender, SL_MSG_STATUS, o);
        else
            sl_rl_json_reply(ctx, m, SL_MSG_STATUS, o);
        json_decref(o);
        return SL_OK;
    }
    default:
        sl_actor_log(ctx, SL_LOG_DEBUG, "message type 0x%04x from %s ignored", m->type, m->sender);
        if (sl_rl_is_request(m))
            sl_actor_reply_error(ctx, m, SL_EPROTO, "trainer: unexpected message type");
        return SL_OK;
    }
}

static sl_err trainer_tick(void *state, sl_actor_ctx *ctx) {
    trainer *tr = state;
    if (tr->fatal) return tr->fatal;
    if (tr->nranks > 1 && tr->dp != DP_READY) {
        int e = dp_tick(tr, ctx);
        if (e) return e;
        if (!dp_ready(tr)) return SL_OK;
    }
    if (tr->running && atomic_load(&tr->done)) {
        int e = finish_batch(tr, ctx);
        if (e) return e;
        if (tr->weights_req_mask) {
            publish_now(tr, ctx, tr->weights_req_mask);
            tr->weights_req_mask = 0;
        }
    }
    if (tr->n_bcast > 0) wg_tick(tr, ctx);
    if (tr->fatal) return tr->fatal;
    while (!tr->running && !tr->bc_running && tr->q_head) {
        queued *q = tr->q_head;
        tr->q_head = q->next;
        if (!tr->q_head) tr->q_tail = NULL;
        start_batch(tr, ctx, &q->msg);
        sl_msg_fini(&q->msg);
        free(q);
        if (tr->fatal) return tr->fatal;
    }
    if (!tr->running) sl_actor_set_tick(ctx, 200);
    return SL_OK;
}

static void trainer_fini(void *state, sl_actor_ctx *ctx) {
    trainer *tr = state;
    if (tr && tr->running) {
        sl_actor_log(ctx, SL_LOG_INFO, "stopping: waiting for the running step");
        pthread_join(tr->th, NULL);
        tr->running = false;
        if (tr->cur) release_slot(tr, &tr->cur->desc);
    }
    trainer_free(tr);
}

const sl_actor_ops sl_trainer_ops = {
    .name = "trainer",
    .init = trainer_init,
    .handle = trainer_handle,
    .tick = trainer_tick,
    .tick_ms = 200,
    .fini = trainer_fini,
};
