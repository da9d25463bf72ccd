/*
 * demo.c — placeholder actor kinds that exercise the runtime: `echo` and
 * `pinger`. They exchange TEST messages and answer heartbeats, nothing
 * more; they are demonstrations of supervision and messaging, not parts of
 * the RL system (the buffer, rollout, reward and trainer kinds come with
 * their own issues). Both record "start NAME" / "stop NAME" in
 * RUN_DIR/events.log so tests can check start and stop order.
 */
#include "actor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================= echo */

static sl_err echo_init(sl_actor_ctx *ctx, void **state) {
    *state = NULL;
    sl_actor_record_event(ctx, "start");
    return SL_OK;
}

static sl_err echo_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    (void)state;
    /* A TEST that is not itself a reply is a request: answer it with the
     * same payload. Everything else is ignored (counted by nobody: the
     * echo has no use for it). */
    if (m->type == SL_MSG_TEST && !(m->flags & SL_FLAG_REPLY)) {
        sl_err e = sl_actor_reply(ctx, m, SL_MSG_TEST, m->payload, m->len);
        if (e) sl_debug("reply to %s failed: %s", m->sender, sl_strerror(e));
    }
    return SL_OK;
}

static void echo_fini(void *state, sl_actor_ctx *ctx) {
    (void)state;
    sl_actor_record_event(ctx, "stop");
}

const sl_actor_ops sl_demo_echo_ops = {
    .name = "echo",
    .init = echo_init,
    .handle = echo_handle,
    .fini = echo_fini,
};

/* =============================================================== pinger */

#define PINGER_OUTSTANDING 64
#define PINGER_LOG_EVERY 10

typedef struct pinger {
    char (*peers)[SL_ACTOR_NAME_MAX];
    int n_peers, next_peer;
    int timeout_ms;
    uint64_t seq;
    uint64_t sent, replies, timeouts, send_failed, bad_replies;
    struct {
        uint64_t corr;
        uint64_t sent_ms;
    } out[PINGER_OUTSTANDING]; /* corr 0 = free */
} pinger;

static void pinger_report(sl_actor_ctx *ctx, pinger *p) {
    sl_actor_log(ctx, SL_LOG_INFO,
                 "ping stats: sent=%" PRIu64 " replies=%" PRIu64 " timeouts=%" PRIu64
                 " send_failed=%" PRIu64 " bad_replies=%" PRIu64,
                 p->sent, p->replies, p->timeouts, p->send_failed, p->bad_replies);
}

static sl_err pinger_init(sl_actor_ctx *ctx, void **state) {
    const sl_actor_spec *self = sl_actor_spec_self(ctx);
    const sl_topology *topo = sl_actor_topology(ctx);
    if (!self || !topo || !self->peer) {
        sl_actor_log(ctx, SL_LOG_ERROR, "pinger needs a topology entry with `peer`");
        return SL_EINVAL;
    }
    pinger *p = calloc(1, sizeof *p);
    if (!p) return SL_ENOMEM;
    p->peers = calloc((size_t)topo->n_actors, sizeof *p->peers);
    if (!p->peers) {
        free(p);
        return SL_ENOMEM;
    }
    /* peer is an instance name, or a group: every instance in turn. */
    const sl_actor_spec *one = sl_topology_find_actor(topo, self->peer);
    for (int i = 0; i < topo->n_actors; i++) {
        const sl_actor_spec *a = &topo->actors[i];
        if (one ? a == one : strcmp(a->group, self->peer) == 0)
            snprintf(p->peers[p->n_peers++], SL_ACTOR_NAME_MAX, "%s", a->name);
    }
    if (p->n_peers == 0) {
        sl_actor_log(ctx, SL_LOG_ERROR, "peer '%s' names no actor", self->peer);
        free(p->peers);
        free(p);
        return SL_EINVAL;
    }
    int iv = self->interval_ms > 0 ? self->interval_ms : 200;
    p->timeout_ms = iv * 5 < 1000 ? 1000 : iv * 5;
    sl_actor_set_tick(ctx, iv);
    *state = p;
    sl_actor_record_event(ctx, "start");
    return SL_OK;
}

static sl_err pinger_tick(void *state, sl_actor_ctx *ctx) {
    pinger *p = state;
    uint64_t now = sl_now_ms();
    int free_slot = -1;
    for (int i = 0; i < PINGER_OUTSTANDING; i++) {
        if (p->out[i].corr && now - p->out[i].sent_ms > (uint64_t)p->timeout_ms) {
            p->out[i].corr = 0;
            p->timeouts++;
        }
        if (!p->out[i].corr && free_slot < 0) free_slot = i;
    }
    if (free_slot < 0) return SL_OK; /* everything still in flight: skip a beat */
    const char *to = p->peers[p->next_peer];
    p->next_peer = (p->next_peer + 1) % p->n_peers;
    char body[64];
    int n = snprintf(body, sizeof body, "ping %" PRIu64, ++p->seq);
    uint64_t corr = 0;
    sl_err e = sl_actor_send_corr(ctx, to, SL_MSG_TEST, body, (size_t)n, &corr);
    if (e) {
        p->send_failed++;
        sl_debug("ping to %s failed: %s", to, sl_strerror(e));
        return SL_OK; /* a missing peer is normal while it restarts */
    }
    p->sent++;
    p->out[free_slot].corr = corr;
    p->out[free_slot].sent_ms = now;
    return SL_OK;
}

static sl_err pinger_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    pinger *p = state;
    if (m->type != SL_MSG_TEST || !(m->flags & SL_FLAG_REPLY)) return SL_OK;
    for (int i = 0; i < PINGER_OUTSTANDING; i++) {
        if (p->out[i].corr && p->out[i].corr == m->corr) {
            p->out[i].corr = 0;
            p->replies++;
            if (p->replies % PINGER_LOG_EVERY == 0) pinger_report(ctx, p);
            return SL_OK;
        }
    }
    p->bad_replies++; /* late (already timed out) or unknown */
    return SL_OK;
}

static void pinger_fini(void *state, sl_actor_ctx *ctx) {
    pinger *p = state;
    if (p) {
        pinger_report(ctx, p);
        free(p->peers);
        free(p);
    }
    sl_actor_record_event(ctx, "stop");
}

const sl_actor_ops sl_demo_pinger_ops = {
    .name = "pinger",
    .init = pinger_init,
    .handle = pinger_handle,
    .tick = pinger_tick,
    .fini = pinger_fini,
};
