/*
 * topology.h — topology.conf: parse, validate, resolve, write back.
 *
 * What it is: the one place that turns the text of a topology file (an INI
 * file read with libinih) plus `--set section.key=value` overrides into
 * checked structs: the supervisor's settings, one sl_actor_spec per actor
 * *instance* (after `count = N` expansion), and typed getters with defaults
 * for every other key (the RL sections [model] [data] [rollout] [reward]
 * [algorithm] [trainer]). Every key that exists is described by one static
 * table (keys.c); the validator, the getters' defaults and the reference
 * printed by `slime-supervisor --help-config` all come from that table.
 *
 * What it is not: it starts nothing, opens no sockets and knows nothing of
 * actors beyond their names and settings (DESIGN.md §10).
 *
 * File format (DESIGN.md §5):
 *
 *     # comment            ; comment
 *     [run]
 *     name = demo
 *     [supervisor]
 *     strategy = one_for_one
 *     [actor ping]         ; one section per actor group, NAME = [A-Za-z0-9_-]{1,31}
 *     kind = pinger
 *     peer = echo
 *     [actor echo]
 *     kind = echo
 *     count = 2            ; instances echo.0 and echo.1
 *
 * Lines may be indented (indentation has no meaning; there are no
 * continuation lines). An inline comment starts with ';' after whitespace.
 * A line is at most SL_TOPOLOGY_MAX_LINE characters.
 *
 * Overrides: `--set SECTION.KEY=VALUE` for plain sections (`rollout.
 * rollout_temperature=0.7`) and `--set actor.NAME.KEY=VALUE` for actor
 * sections (`actor.echo.count=3`). An override replaces the file's value (no
 * duplicate error); of two overrides of the same key the last one wins. An
 * override may name a section the file lacks: the section is then created
 * (a new actor is appended after the file's actors). Overrides are validated
 * exactly like file lines; their errors are located `--set:N:` where N is the
 * 1-based position of that override among the --set arguments.
 *
 * Errors: every problem found is written as one line `FILE:LINE: message`
 * (all of them, not only the first; at most SL_TOPOLOGY_MAX_ERRORS lines are
 * printed, the count returned is the true count).
 */
#ifndef SL_TOPOLOGY_H
#define SL_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base.h"

#define SL_TOPOLOGY_MAX_LINE 4095      /* characters per line, newline excluded */
#define SL_TOPOLOGY_MAX_BYTES (1 << 20) /* largest topology file read */
#define SL_TOPOLOGY_MAX_ERRORS 100     /* error lines printed per load */
#define SL_TOPOLOGY_MAX_INSTANCES 1024 /* actor instances after expansion */
#define SL_ACTOR_GROUP_MAX 32          /* group name: 1..31 chars + NUL */
#define SL_ACTOR_NAME_MAX 40           /* instance name: GROUP or GROUP.I + NUL */

/* ------------------------------------------------------------- enums */

/* OTP restart types: permanent = always restarted; transient = restarted
 * only after an abnormal exit (non-zero status or a signal); temporary =
 * never restarted. */
typedef enum sl_restart {
    SL_RESTART_PERMANENT = 0,
    SL_RESTART_TRANSIENT = 1,
    SL_RESTART_TEMPORARY = 2,
} sl_restart;

/* OTP strategies: which children restart when one dies. */
typedef enum sl_strategy {
    SL_STRATEGY_ONE_FOR_ONE = 0,  /* only that child */
    SL_STRATEGY_ONE_FOR_ALL = 1,  /* all children */
    SL_STRATEGY_REST_FOR_ONE = 2, /* that child and those started after it */
} sl_strategy;

/* How the supervisor checks that an actor is alive. */
typedef enum sl_heartbeat {
    SL_HEARTBEAT_NNG = 0,     /* nng SURVEYOR/RESPONDENT (built-in kinds' default) */
    SL_HEARTBEAT_MAILBOX = 1, /* a PING message to its mailbox (kind exec's default) */
    SL_HEARTBEAT_NONE = 2,    /* not checked; only its exit is watched */
} sl_heartbeat;

/* Built-in actor kinds (the `kind` key). SL_KIND_EXEC runs a user program. */
typedef enum sl_actor_kind {
    SL_KIND_BUFFER = 0,
    SL_KIND_ROLLOUT = 1,
    SL_KIND_REWARD = 2,
    SL_KIND_TRAINER = 3,
    SL_KIND_ECHO = 4,
    SL_KIND_PINGER = 5,
    SL_KIND_EXEC = 6,
} sl_actor_kind;

/* Lower-case names: "one_for_one", "permanent", "nng", "echo", ...; never
 * NULL ("?" for a value out of range). Static storage. */
const char *sl_restart_name(sl_restart r);
const char *sl_strategy_name(sl_strategy s);
const char *sl_heartbeat_name(sl_heartbeat h);
const char *sl_actor_kind_name(sl_actor_kind k);

/* ------------------------------------------------------------- specs */

/* One actor instance. Everything is owned by the sl_topology it came from
 * and lives as long as it; read-only for callers. */
typedef struct sl_actor_spec {
    char name[SL_ACTOR_NAME_MAX];   /* instance: GROUP (count 1) or GROUP.I (count > 1) */
    char group[SL_ACTOR_GROUP_MAX]; /* NAME of its [actor NAME] section */
    const char *section;            /* "actor GROUP": the section for the getters */
    int index;                      /* 0 .. count-1 within its group */
    int count;                      /* instances in its group */
    sl_actor_kind kind;
    const char *kind_name;          /* "echo", ... (static) */
    sl_restart restart;
    int shutdown_ms;                /* SIGTERM, then SIGKILL after this long */
    char device[16];                /* "cpu" or "cuda:N" (placement one_per_gpu: N + index) */
    int cuda_device;                /* N of "cuda:N"; -1 for cpu */
    const char *command;            /* kind exec: the command text as written; else NULL */
    char *const *argv;              /* kind exec: command split shell-like (quotes and
                                       backslash escapes, no expansion), NULL-terminated;
                                       else NULL */
    int argc;                       /* entries in argv (0 when argv is NULL) */
    sl_heartbeat heartbeat;
    const char *peer;               /* kind pinger: the actor it pings (a group or an
                                       instance name); else NULL */
    int interval_ms;                /* kind pinger: time between pings */
    int line;                       /* line of its [actor NAME] header (0: made by --set) */
    const char *host;               /* `host`: the machine that runs it (its IPv4 address);
                                       NULL = this machine */
} sl_actor_spec;

/* The [supervisor] section. */
typedef struct sl_supervisor_spec {
    sl_strategy strategy;
    int intensity;            /* more than this many restarts ... */
    int period;               /* ... within this many seconds: stop all, exit 1 */
    int heartbeat_ms;         /* time between heartbeat surveys */
    int heartbeat_timeout_ms; /* no answer for this long: hung (> heartbeat_ms) */
} sl_supervisor_spec;

/* One `key = value` that was set, in the file or by --set (overrides
 * applied: a key appears once, with its final value and origin). */
typedef struct sl_topology_entry {
    const char *section; /* canonical: "run", "trainer", "actor NAME" */
    const char *key;
    const char *value;   /* as written, surrounding whitespace removed */
    const char *file;    /* the topology's source name, or "--set" */
    int line;            /* line in file, or the 1-based --set index */
} sl_topology_entry;

/* One section header, in order of first appearance. */
typedef struct sl_topology_section {
    const char *name;    /* canonical: "run", "actor NAME" */
    const char *file;    /* source name or "--set" */
    int line;            /* header line, or the --set index that created it */
} sl_topology_section;

/* A loaded, fully validated topology. Immutable after load: any number of
 * threads may read it and call the getters concurrently. Free with
 * sl_topology_free(). Every pointer inside is owned by it. */
typedef struct sl_topology {
    const char *source;             /* path (or name) it was loaded from */
    const char *run_name;           /* [run] name (default "default") */
    const char *run_dir;            /* [run] run_dir (default "runs/" + run_name) */
    sl_supervisor_spec supervisor;
    sl_actor_spec *actors;          /* instances in file order (start order) */
    int n_actors;
    sl_topology_section *sections;  /* every section, file order, then --set-created */
    int n_sections;
    sl_topology_entry *entries;     /* every key set, grouped by section in section order */
    int n_entries;
    void *priv_;                    /* internal storage */
} sl_topology;

/* ------------------------------------------------------------- loading */

/* Read PATH, apply the N_SETS overrides SETS ("section.key=value" or
 * "actor.NAME.key=value"; may be NULL when N_SETS is 0), validate
 * everything, and on success store a new topology in *OUT (the caller owns
 * it; free with sl_topology_free). Each error is written to ERRS (may be
 * NULL: not printed) as one line `FILE:LINE: message`; an unreadable file
 * gives `PATH: cannot read: REASON`.
 * Returns the number of errors: 0 = success (*OUT set); > 0 = *OUT set to
 * NULL. Thread-safe (libinih's option globals are read, never written). */
int sl_topology_load(const char *path, const char *const *sets, int n_sets,
                     sl_topology **out, FILE *errs);

/* Same as sl_topology_load, from TEXT (NUL-terminated) held in memory;
 * NAME is used in error lines and as the topology's source (tests, the
 * embedded default topology). */
int sl_topology_load_string(const char *name, const char *text,
                            const char *const *sets, int n_sets,
                            sl_topology **out, FILE *errs);

/* For programs: sl_topology_load with errors on stderr. Returns the exit
 * code: SL_EXIT_OK (0, *OUT set) or SL_EXIT_USAGE (2, *OUT NULL). */
int sl_topology_cli_load(const char *path, const char *const *sets, int n_sets,
                         sl_topology **out);

/* Free a topology and everything in it. NULL is fine. */
void sl_topology_free(sl_topology *topo);

/* ------------------------------------------------------------- lookups */

/* Find an instance by name ("echo.1", or "ping" for a count-1 group);
 * NULL if none. The result points into TOPO. */
const sl_actor_spec *sl_topology_find_actor(const sl_topology *topo, const char *name);

/* Typed getters. SECTION is canonical ("trainer", "actor NAME"; for actors
 * an instance name "actor NAME.I" works too), KEY a key of the table. The
 * value is the one set (file or --set), else the table's default. Values
 * were validated at load time, so these cannot fail on a loaded topology;
 * asking for a key the table does not have is a programming error: it is
 * logged (sl_error) and 0 / "" / false is returned.
 *   get_str     any type; the text (enum: its name; bool: as written).
 *               Points into TOPO or static storage; never NULL.
 *   get_int     int and duration_ms keys (duration_ms: milliseconds).
 *   get_double  double keys, and int/duration_ms keys converted.
 *   get_bool    bool keys.
 *   get_enum    enum keys: the index of the value in the table's choices
 *               (e.g. advantage_estimator: grpo = 0, gspo = 1, ...); -1 on
 *               a non-enum key.
 *   is_set      whether the key was set explicitly (file or --set). */
const char *sl_topology_get_str(const sl_topology *topo, const char *section, const char *key);
long long sl_topology_get_int(const sl_topology *topo, const char *section, const char *key);
double sl_topology_get_double(const sl_topology *topo, const char *section, const char *key);
bool sl_topology_get_bool(const sl_topology *topo, const char *section, const char *key);
int sl_topology_get_enum(const sl_topology *topo, const char *section, const char *key);
bool sl_topology_is_set(const sl_topology *topo, const char *section, const char *key);

/* ------------------------------------------------------------- output */

/* Write TOPO as an INI file (every key set, overrides applied, sections in
 * order) that sl_topology_load reads back to an identical topology; the
 * supervisor passes this copy to its children. Returns 0 or SL_EIO. */
int sl_topology_write(const sl_topology *topo, FILE *f);

/* Print every section and key of the table: type, default, allowed values
 * or range, and meaning (`slime-supervisor --help-config`). */
void sl_topology_print_reference(FILE *f);

/* ------------------------------------------------------------- the key table */

typedef enum sl_key_type {
    SL_KEY_INT = 0,      /* integer in [min, max] */
    SL_KEY_DOUBLE,       /* finite number in [min, max] */
    SL_KEY_BOOL,         /* true|false|yes|no|on|off|1|0 */
    SL_KEY_STRING,       /* any text */
    SL_KEY_ENUM,         /* one of choices ("a|b|c") */
    SL_KEY_PATH,         /* a file or folder path (not checked for existence) */
    SL_KEY_DURATION_MS,  /* integer milliseconds; suffix ms, s or m allowed ("2s") */
    SL_KEY_DEVICE,       /* cpu | cuda:N */
} sl_key_type;

/* One key of the table. SECTION is "actor" for the keys of every
 * [actor NAME] section. */
typedef struct sl_key_def {
    const char *section;
    const char *key;
    sl_key_type type;
    const char *def;     /* default as text; "" = empty/unset; NULL = computed (see help) */
    double min, max;     /* int, double, duration_ms */
    const char *choices; /* enum: "a|b|c" */
    bool required;       /* must be set when its section exists */
    const char *kinds;   /* actor keys only: the kinds it applies to ("pinger|exec"),
                            NULL = every kind */
    const char *help;
} sl_key_def;

/* The table: *N entries, static storage, in reference order. */
const sl_key_def *sl_topology_keys(size_t *n);

/* The table entry of (SECTION, KEY); SECTION may be "actor NAME". NULL if
 * none. */
const sl_key_def *sl_topology_key_find(const char *section, const char *key);

/* Name of a key type ("int", "duration_ms", ...). Static storage. */
const char *sl_key_type_name(sl_key_type t);

/* Number of CUDA GPUs this machine has, as the device check sees it:
 * the override if one is set (sl_topology_set_gpu_count, else the
 * environment variable SL_GPU_COUNT), else the count of /dev/nvidiaN
 * devices (or /proc/driver/nvidia/gpus/ entries, or the lines of
 * `nvidia-smi -L`). No CUDA call: the supervisor must not start CUDA
 * before it forks; each GPU actor checks cudaGetDeviceCount itself
 * (sl_gpu_set_device, kernels/nccl_comm.h). */
int sl_topology_gpu_count(void);

/* Split S like a shell does (quotes, backslash; no expansion) into a
 * NULL-terminated argv (free with sl_topology_free_argv). Returns 0, -1
 * (malformed: reason in WHY) or -2 (out of memory). */
int sl_topology_split_command(const char *s, char ***argv, int *argc, char *why, size_t wl);
void sl_topology_free_argv(char **argv);

/* Test hook: make sl_topology_gpu_count return N (N < 0: detect again).
 * Process-wide; not thread-safe. */
void sl_topology_set_gpu_count(int n);

#endif /* SL_TOPOLOGY_H */
