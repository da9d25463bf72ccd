/*
 * actor.h — the actor contract, and the SDK for custom C actors.
 *
 * What it is: everything one actor process needs to take part in a run.
 * An actor is an ops table (init, handle, optional tick, fini) plus
 * sl_actor_main(), which runs the process around it:
 *
 *   - reads who it is from the environment the supervisor sets
 *     (SL_RUN_DIR, SL_ACTOR_NAME, SL_ACTOR_KIND, SL_TOPOLOGY) or from the
 *     flags --run-dir DIR --name NAME [--kind K] [--topology FILE];
 *   - opens its ZeroMQ mailbox at ipc://RUN_DIR/mb/NAME (mailbox.h);
 *   - answers the supervisor's nng heartbeat survey (control.h) from the
 *     same loop that runs the handlers, so an actor stuck in a handler is
 *     seen as hung, killed and restarted;
 *   - answers the runtime messages itself: PING -> PONG, ECHO ->
 *     ECHO_REPLY; STOP ends the actor cleanly;
 *   - delivers every other valid message to ops->handle, and calls
 *     ops->tick every tick period;
 *   - stops cleanly on SIGTERM, SIGINT or STOP: fini is called, the mailbox
 *     closed, exit status 0.
 *
 * Writing a custom C actor:
 *
 *     #include "actor.h"
 *     typedef struct { int seen; } counter;
 *     static sl_err counter_init(sl_actor_ctx *ctx, void **state) {
 *         *state = calloc(1, sizeof(counter));
 *         return *state ? SL_OK : SL_ENOMEM;
 *     }
 *     static sl_err counter_handle(void *state, sl_actor_ctx *ctx, const sl_msg *m) {
 *         ((counter *)state)->seen++;
 *         if (m->type == 0x8001)   // a user type (0x8000..0xFFFF)
 *             return sl_actor_reply(ctx, m, 0x8002, m->payload, m->len);
 *         return SL_OK;
 *     }
 *     static void counter_fini(void *state, sl_actor_ctx *ctx) { free(state); }
 *     static const sl_actor_ops ops = {
 *         .name = "counter", .init = counter_init, .handle = counter_handle,
 *         .fini = counter_fini };
 *     int main(int argc, char **argv) { return sl_actor_main(&ops, argc, argv); }
 *
 * Link it with build/libslime.a and its libraries (see the Makefile), and
 * put it in the topology as
 *
 *     [actor counter]
 *     kind = exec
 *     command = /path/to/counter
 *     heartbeat = nng        ; it speaks nng through this SDK
 *
 * Actors in other languages speak the mailbox protocol directly
 * (mailbox/PROTOCOL.md) and use `heartbeat = mailbox` (answer PING with
 * PONG) or `heartbeat = none`.
 *
 * What it is not: the supervisor (supervisor.h) and not any actor's logic.
 * Handlers run on the actor's one thread; they should return promptly
 * (a handler that blocks longer than the heartbeat timeout gets the actor
 * killed as hung).
 */
#ifndef SL_ACTOR_H
#define SL_ACTOR_H

#include "base.h"
#include "faults.h"
#include "mailbox.h"
#include "topology.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sl_actor_ctx sl_actor_ctx;

/* The ops table of one actor kind. Only handle is required. */
typedef struct sl_actor_ops {
    /* Kind name for logs ("echo", "counter"). */
    const char *name;

    /* Called once, after the mailbox is open and before any message.
     * Store the actor's state in *STATE (may stay NULL). Non-SL_OK ends the
     * process with exit status 1 (fini is not called). */
    sl_err (*init)(sl_actor_ctx *ctx, void **state);

    /* One valid message that is not a runtime message (PING, ECHO, STOP
     * are answered by the runtime). MSG is owned by the runtime and valid
     * only during the call; copy what you keep. Return SL_OK to go on.
     * Bad input from a peer is not a reason to fail: answer it with
     * sl_actor_reply_error and return SL_OK. Any other value means the
     * actor cannot go on: fini is called and it exits with status 1, and
     * the supervisor restarts it per its restart type. */
    sl_err (*handle)(void *state, sl_actor_ctx *ctx, const sl_msg *msg);

    /* Optional: called every tick_ms (see sl_actor_set_tick) from the same
     * loop. Return values as for handle. */
    sl_err (*tick)(void *state, sl_actor_ctx *ctx);

    /* Initial tick period in milliseconds (0 = no tick until
     * sl_actor_set_tick is called). */
    int tick_ms;

    /* Optional: called once on a clean stop (SIGTERM, SIGINT, STOP,
     * sl_actor_stop) and after a handler failure. Release STATE here. */
    void (*fini)(void *state, sl_actor_ctx *ctx);
} sl_actor_ops;

/* Run one actor process with OPS until it is told to stop; returns the
 * exit status for main() to return: 0 after a clean stop, 1 when init or a
 * handler failed or the mailbox broke, 2 on a usage error (missing run dir
 * or name, unknown flag, unreadable topology) — a message says which.
 * Flags: --run-dir DIR, --name NAME, --kind K (the kind name this actor
 * reports; slime-actor uses it to pick OPS), --topology FILE, --verbose.
 * Flags win over the environment. With a topology, the actor's log level
 * is the topology's [run] log_level, and the heartbeat responder runs only
 * for `heartbeat = nng` (the default of built-in kinds).
 * Takes over SIGTERM, SIGINT, SIGHUP and SIGPIPE for the process (blocked
 * and read through a signalfd). Call it once per process, from main. */
int sl_actor_main(const sl_actor_ops *ops, int argc, char **argv);

/* ---------------------------------------------------------- the context */
/* Every function below takes the CTX handed to init/handle/tick/fini and
 * must be called from those callbacks (the actor's one thread). Strings
 * returned are owned by the context and live as long as the process. */

/* This actor's name (its mailbox name, e.g. "echo.1"). */
const char *sl_actor_name(const sl_actor_ctx *ctx);

/* Its kind as the supervisor knows it ("echo", "exec", ...). */
const char *sl_actor_kind_of(const sl_actor_ctx *ctx);

/* The run directory (absolute). */
const char *sl_actor_run_dir(const sl_actor_ctx *ctx);

/* The resolved topology (SL_TOPOLOGY), or NULL when the actor runs
 * without one. Use the topology.h getters on it, e.g.
 * sl_topology_get_int(sl_actor_topology(ctx), "rollout", "n_samples_per_prompt"). */
const sl_topology *sl_actor_topology(const sl_actor_ctx *ctx);

/* This actor's own spec in that topology (peer, interval_ms, device ...),
 * or NULL when there is no topology or it does not list this name. */
const sl_actor_spec *sl_actor_spec_self(const sl_actor_ctx *ctx);

/* The underlying mailbox, for what the helpers below do not cover. */
sl_mailbox *sl_actor_mailbox(sl_actor_ctx *ctx);

/* Send a one-way message to the actor named TO. PAYLOAD is copied.
 * Errors: as sl_mailbox_send (SL_ECLOSED: the peer is not there now). */
sl_err sl_actor_send(sl_actor_ctx *ctx, const char *to, uint16_t type, const void *payload,
                     size_t len);

/* Send a request and wait up to TIMEOUT_MS for its reply (*REPLY: caller
 * releases it with sl_msg_fini). Blocks the actor's loop meanwhile (the
 * heartbeat too), so keep TIMEOUT_MS well under the heartbeat timeout; for
 * long exchanges use sl_actor_send_corr and match the reply in handle.
 * Messages that arrive meanwhile are delivered to handle afterwards.
 * Errors: as sl_mailbox_request. */
sl_err sl_actor_request(sl_actor_ctx *ctx, const char *to, uint16_t type, const void *payload,
                        size_t len, sl_msg *reply, int timeout_ms);

/* Send a request without waiting: its correlation id goes to *CORR; the
 * reply (SL_FLAG_REPLY, same corr) arrives later through handle.
 * Errors: as sl_mailbox_send. */
sl_err sl_actor_send_corr(sl_actor_ctx *ctx, const char *to, uint16_t type,
                          const void *payload, size_t len, uint64_t *corr);

/* Answer REQ with (TYPE, PAYLOAD) / with an ERROR reply. No-op when REQ
 * asked for no reply. Errors: as sl_mailbox_reply. */
sl_err sl_actor_reply(sl_actor_ctx *ctx, const sl_msg *req, uint16_t type, const void *payload,
                      size_t len);
sl_err sl_actor_reply_error(sl_actor_ctx *ctx, const sl_msg *req, sl_err code, const char *text);

/* Change the tick period (ms; 0 stops ticking). */
void sl_actor_set_tick(sl_actor_ctx *ctx, int tick_ms);

/* Ask the loop to end after the current callback: fini, then exit with
 * STATUS (0 = normal exit, which a transient actor is not restarted for). */
void sl_actor_stop(sl_actor_ctx *ctx, int status);

/* Log a line (sl_log with the actor's name, which sl_actor_main has set as
 * the log name). Lines go to stderr, which the supervisor redirects to
 * RUN_DIR/logs/NAME.log. */
void sl_actor_log(sl_actor_ctx *ctx, sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append the line "WHAT NAME\n" to RUN_DIR/events.log (created 0600), one
 * write with O_APPEND so concurrent actors never interleave. Used by the
 * demo kinds to record "start NAME" / "stop NAME" for the runtime tests.
 * Errors: SL_EIO. */
sl_err sl_actor_record_event(sl_actor_ctx *ctx, const char *what);

/* ------------------------------------------------------- built-in kinds */

/* The registry of kinds slime-actor hosts: the ops for KIND ("echo",
 * "pinger", ...), or NULL when this build has none of that name. Static
 * storage. Later kinds (buffer, rollout, reward, trainer) add one line to
 * the table in actor.c. */
const sl_actor_ops *sl_actor_kind_find(const char *kind);

/* Names of the registered kinds, "echo|pinger|...", for usage messages.
 * Static storage. */
const char *sl_actor_kind_list(void);

/* Placeholder kinds that demonstrate the runtime (actors/demo.c). They
 * carry test messages and heartbeats only; they are neither a trainer nor
 * a rollout engine.
 *   echo    answers TEST requests with a TEST reply of the same payload
 *           (and ECHO like every actor).
 *   pinger  every interval_ms sends a TEST request to its peer (a group
 *           name pings each instance in turn), counts replies and
 *           timeouts, logs a summary line every 10 replies. */
extern const sl_actor_ops sl_demo_echo_ops;
extern const sl_actor_ops sl_demo_pinger_ops;

#endif /* SL_ACTOR_H */
