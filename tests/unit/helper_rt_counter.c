/*
 * helper_rt_counter — a custom C actor built on the actor SDK (actors/
 * actor.h), for test_supervisor: it runs as `kind = exec`, answers TEST
 * requests with the same payload (like the demo echo), upper-cases the
 * payload of user type 0x8001, counts what it saw, logs the count on a
 * tick, and records "start NAME" / "stop NAME" in RUN_DIR/events.log.
 * It is the example from actor.h's header comment, made real.
 */
#include "actor.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define USER_UPPER 0x8001

typedef struct counter {
    unsigned long seen;
} counter;

static sl_err counter_init(sl_actor_ctx *ctx, void **state) {
    *state = calloc(1, sizeof(counter));
    if (!*state) return SL_ENOMEM;
    sl_actor_record_event(ctx, "start");
    return SL_OK;
}

static sl_err counter_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    counter *c = state;
    c->seen++;
    if (m->flags & SL_FLAG_REPLY) return SL_OK;
    if (m->type == SL_MSG_TEST) {
        sl_actor_reply(ctx, m, SL_MSG_TEST, m->payload, m->len); /* a gone asker is not our failure */
        return SL_OK;
    }
    if (m->type == USER_UPPER) {
        char buf[SL_FRAME_MAX_PAYLOAD];
        for (uint32_t i = 0; i < m->len; i++) buf[i] = (char)toupper(m->payload[i]);
        sl_actor_reply(ctx, m, USER_UPPER, buf, m->len);
        return SL_OK;
    }
    sl_actor_reply_error(ctx, m, SL_EUNSUPPORTED, "counter: unknown request");
    return SL_OK;
}

static sl_err counter_tick(void *state, sl_actor_ctx *ctx) {
    sl_actor_log(ctx, SL_LOG_INFO, "seen=%lu", ((counter *)state)->seen);
    return SL_OK;
}

static void counter_fini(void *state, sl_actor_ctx *ctx) {
    free(state);
    sl_actor_record_event(ctx, "stop");
}

static const sl_actor_ops ops = {
    .name = "counter",
    .init = counter_init,
    .handle = counter_handle,
    .tick = counter_tick,
    .tick_ms = 200,
    .fini = counter_fini,
};

int main(int argc, char **argv) { return sl_actor_main(&ops, argc, argv); }
