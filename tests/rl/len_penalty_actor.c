/*
 * len_penalty_actor.c — a custom reward actor in C, built against the actor
 * SDK (actors/actor.h) and started by the supervisor with kind = exec. The
 * README's "Attaching custom actors" example; tests/rl/test_custom_actors.sh
 * builds it and runs it in a real run.
 *
 *   cc $(make -s cflags) -o len_penalty_actor tests/rl/len_penalty_actor.c $(make -s libs)
 *
 *   [reward]
 *   rm_type = remote
 *   remote_actor = lenpen
 *
 *   [actor lenpen]
 *   kind = exec
 *   command = /path/to/len_penalty_actor --penalty 0.01
 *   heartbeat = nng            ; the SDK answers the supervisor's heartbeat
 *
 * The reward actor sends one REWARD_REQ (0x0119) per sample, JSON
 * {"response","label","metadata","prompt"}; this actor answers each with a
 * REWARD (0x011A) reply {"reward": r} where
 *
 *   r = 1 if the response's last "#### N" line equals the label, else 0,
 *       minus PENALTY x the response's length in bytes
 *
 * (a length penalty on top of GSM8K-style exact match). A malformed request
 * gets an ERROR reply, never a crash. It logs how many samples it scored
 * when it stops.
 */
#include "actor.h"
#include "rl_msg.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lenpen {
    double penalty;
    long scored;
} lenpen;

static double g_penalty = 0.01; /* from --penalty, before sl_actor_main */

/* 1 when the last "#### N" of RESPONSE is LABEL (N ends at a newline or the end). */
static int exact(const char *response, const char *label) {
    const char *h = NULL;
    for (const char *p = response; (p = strstr(p, "####")); p += 4) h = p;
    if (!h || !label || !*label) return 0;
    h += 4;
    while (*h == ' ') h++;
    size_t n = strlen(label);
    return strncmp(h, label, n) == 0 && (h[n] == 0 || h[n] == '\n');
}

static sl_err lp_init(sl_actor_ctx *ctx, void **state) {
    lenpen *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->penalty = g_penalty;
    sl_actor_log(ctx, SL_LOG_INFO, "length-penalty reward actor: penalty %g per byte", s->penalty);
    *state = s;
    return SL_OK;
}

static sl_err lp_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
    lenpen *s = state;
    if (m->type != SL_MSG_REWARD_REQ) return SL_OK; /* not ours: ignore */
    json_error_t je;
    json_t *o = json_loadb((const char *)m->payload, m->len, 0, &je);
    const char *resp = json_string_value(json_object_get(o, "response"));
    const char *label = json_string_value(json_object_get(o, "label"));
    if (!json_is_object(o) || !resp) {
        json_decref(o);
        return sl_actor_reply_error(ctx, m, SL_EINVAL, "REWARD_REQ: expected {\"response\": string, ...}");
    }
    double r = exact(resp, label) - s->penalty * (double)strlen(resp);
    json_decref(o);
    char out[64];
    int n = snprintf(out, sizeof out, "{\"reward\":%.17g}", r);
    s->scored++;
    return sl_actor_reply(ctx, m, SL_MSG_REWARD, out, (size_t)n);
}

static void lp_fini(void *state, sl_actor_ctx *ctx) {
    lenpen *s = state;
    sl_actor_log(ctx, SL_LOG_INFO, "scored %ld samples", s ? s->scored : 0L);
    free(s);
}

static const sl_actor_ops lenpen_ops = {
    .name = "lenpen", .init = lp_init, .handle = lp_handle, .fini = lp_fini};

int main(int argc, char **argv) {
    /* our own flag first; the rest (--run-dir, --name, ...) is the SDK's */
    if (argc >= 3 && strcmp(argv[1], "--penalty") == 0) {
        char *end = NULL;
        g_penalty = strtod(argv[2], &end);
        if (!end || *end || !(g_penalty >= 0 && g_penalty <= 1)) {
            fprintf(stderr, "len_penalty_actor: --penalty needs a number in [0, 1], not '%s'\n", argv[2]);
            return 2;
        }
        argv[2] = argv[0];
        argc -= 2;
        argv += 2;
    }
    return sl_actor_main(&lenpen_ops, argc, argv);
}
