/*
 * control.h — the supervision transport on nng: the control plane (REQ/REP
 * at ipc://RUN_DIR/control) and heartbeats (SURVEYOR/RESPONDENT at
 * ipc://RUN_DIR/heartbeat).
 *
 * What it is: sockets, framing of short text messages, deadlines. The
 * supervisor owns one sl_control_server and one sl_hb_surveyor; every
 * built-in actor owns one sl_hb_responder; slime-ctl uses
 * sl_control_request. What it is not: the meaning of commands (the
 * supervisor parses "status", "stop", "inject ..."), the data-flow mailbox
 * (ZeroMQ, mailbox.h), or process management (actors/supervisor.c).
 * ZeroMQ carries data-flow messages; nng carries supervision (DESIGN §1).
 *
 * Messages here are text: a request is one line of at most
 * SL_CONTROL_MAX_REQUEST bytes (no NUL inside), a reply at most
 * SL_CONTROL_MAX_REPLY bytes. A heartbeat answer is "NAME PID".
 * Anything else received is refused and counted, never trusted.
 *
 * Threads: each object belongs to one thread at a time. Descriptors from
 * the *_fd functions are for poll(2) only (readable = something to
 * receive); never read or close them.
 */
#ifndef SL_CONTROL_H
#define SL_CONTROL_H

#include "base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SL_CONTROL_MAX_REQUEST 4096     /* bytes of one control request */
#define SL_CONTROL_MAX_REPLY (1 << 20)  /* bytes of one control reply */
#define SL_CONTROL_TIMEOUT_MS 5000      /* sl_control_request default */
#define SL_HB_NAME_MAX 40               /* = SL_MB_NAME_MAX */

/* Endpoint strings: "ipc://RUN_DIR/control" and "ipc://RUN_DIR/heartbeat"
 * into OUT (CAP bytes). Errors: SL_EINVAL (NULL), SL_ERANGE (the socket
 * path would exceed the 107 bytes a unix socket path may hold). */
sl_err sl_control_endpoint(const char *run_dir, char *out, size_t cap);
sl_err sl_hb_endpoint(const char *run_dir, char *out, size_t cap);

/* ------------------------------------------------------------ control */

typedef struct sl_control_server sl_control_server;

/* Listen with a REP socket at ipc://RUN_DIR/control. A stale socket file
 * left by a dead supervisor is replaced; a live one refuses.
 * On success *OUT owns the server (close with sl_control_server_close).
 * Errors: SL_EINVAL, SL_ERANGE (path too long), SL_EFULL (another live
 * process listens there), SL_EIO (nng failure), SL_ENOMEM. *OUT NULL on
 * error. */
sl_err sl_control_server_open(const char *run_dir, sl_control_server **out);

/* Close the server and remove its socket file. NULL is safe. */
void sl_control_server_close(sl_control_server *srv);

/* Descriptor readable when a request may be waiting (poll only). -1 on
 * error. */
int sl_control_server_fd(const sl_control_server *srv);

/* Take the next request without blocking: on SL_OK *REQ is a malloc'd
 * NUL-terminated string (the caller frees it) and the caller MUST then
 * answer it with sl_control_server_reply before the next recv. Requests
 * that are empty, too long or contain a NUL byte are answered at once with
 * an error object, counted in *bad (if BAD is not NULL, incremented), and
 * not returned.
 * Errors: SL_EAGAIN (nothing waiting), SL_EIO, SL_ENOMEM. */
sl_err sl_control_server_recv(sl_control_server *srv, char **req, uint64_t *bad);

/* Send REPLY (a NUL-terminated string, at most SL_CONTROL_MAX_REPLY bytes;
 * copied) to the request last received. Errors: SL_ERANGE (too long),
 * SL_EIO (no request pending, or the client is gone: the reply is lost,
 * which is harmless). */
sl_err sl_control_server_reply(sl_control_server *srv, const char *reply);

/* Client: send REQUEST to the supervisor of RUN_DIR and wait up to
 * TIMEOUT_MS (<= 0: SL_CONTROL_TIMEOUT_MS) for its reply; on SL_OK *REPLY
 * is a malloc'd NUL-terminated string the caller frees.
 * Errors: SL_EINVAL, SL_ERANGE (request too long / path too long),
 * SL_ECLOSED (no supervisor listens at RUN_DIR), SL_ETIMEDOUT, SL_EPROTO
 * (the reply is too long or not text), SL_EIO, SL_ENOMEM. Thread-safe
 * (each call opens its own socket). */
sl_err sl_control_request(const char *run_dir, const char *request, char **reply,
                          int timeout_ms);

/* ------------------------------------------------------------ heartbeats */

typedef struct sl_hb_surveyor sl_hb_surveyor;

/* Listen with a SURVEYOR socket at ipc://RUN_DIR/heartbeat. Errors as
 * sl_control_server_open. */
sl_err sl_hb_surveyor_open(const char *run_dir, sl_hb_surveyor **out);

/* Close it and remove its socket file. NULL is safe. */
void sl_hb_surveyor_close(sl_hb_surveyor *s);

/* Send one survey to every connected responder; answers are accepted for
 * DEADLINE_MS (>= 1), after which late answers are discarded. A new survey
 * replaces the previous one (its late answers are discarded too). No nng
 * timer is involved (see control.c). Errors: SL_EIO. */
sl_err sl_hb_survey(sl_hb_surveyor *s, int deadline_ms);

/* Descriptor readable when an answer may be waiting (poll only). */
int sl_hb_surveyor_fd(const sl_hb_surveyor *s);

/* Take the next answer without blocking: NAME (SL_HB_NAME_MAX bytes) and
 * *PID of the actor that answered. Malformed answers are dropped and
 * counted in the surveyor (sl_hb_surveyor_bad). Errors: SL_EAGAIN (none
 * waiting, or the survey's deadline passed), SL_EIO. */
sl_err sl_hb_collect(sl_hb_surveyor *s, char name[SL_HB_NAME_MAX], pid_t *pid);

/* Malformed answers dropped so far. */
uint64_t sl_hb_surveyor_bad(const sl_hb_surveyor *s);

typedef struct sl_hb_responder sl_hb_responder;

/* Dial ipc://RUN_DIR/heartbeat with a RESPONDENT socket that answers as
 * NAME with this process's pid. The dial does not wait: if the supervisor
 * is not there yet, nng keeps retrying in the background.
 * Errors: SL_EINVAL (bad NAME), SL_ERANGE, SL_EIO, SL_ENOMEM. */
sl_err sl_hb_responder_open(const char *run_dir, const char *name, sl_hb_responder **out);

/* Close it. NULL is safe. */
void sl_hb_responder_close(sl_hb_responder *r);

/* Descriptor readable when a survey may be waiting (poll only). */
int sl_hb_responder_fd(const sl_hb_responder *r);

/* Answer every survey waiting now, without blocking. Returns the number
 * answered (0 when none). Called from the actor's own loop: an actor whose
 * loop is stuck does not answer, which is the point. */
int sl_hb_respond(sl_hb_responder *r);

#endif /* SL_CONTROL_H */
