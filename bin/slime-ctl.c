/*
 * slime-ctl — talk to a running supervisor over its control socket
 * (nng REQ/REP at ipc://RUN_DIR/control):
 *
 *   slime-ctl [--run-dir DIR] [--timeout MS] status [--json]
 *   slime-ctl [--run-dir DIR] stop
 *   slime-ctl [--run-dir DIR] inject ACTOR kill|term|hang SECONDS|pause|resume|drop|corrupt
 *   slime-ctl [--run-dir DIR] top [--once] [--interval MS] [--count N]
 *
 * inject drop / corrupt: the actor's next outgoing mailbox frame is dropped /
 * has one byte flipped (the receiver's decoder must refuse it); built-in
 * kinds only (SIGUSR1 / SIGUSR2, see mailbox/faults.h). A schedule of faults
 * for a whole run is the topology's [faults] section.
 *
 * `top` is the live view (actors/top.h): refreshed in place every MS
 * (default 1000) on a terminal, one plain snapshot after another otherwise;
 * --once prints one snapshot (taken over ~1 s, so that CPU % and
 * messages/s are rates), --count N stops after N snapshots. It ends with 0
 * when the supervisor goes away after the first snapshot.
 * RUN_DIR defaults to $SL_RUN_DIR. `status --json` prints the supervisor's
 * one JSON object unchanged: {"run_dir":..., "actors":[{"name","kind","pid",
 * "state","restarts","last_exit",...}]}.
 * Exit: 0 done, 1 the supervisor refused or cannot be reached, 2 usage.
 */
#include "control.h"
#include "top.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: slime-ctl [--run-dir DIR] [--timeout MS] status [--json]\n"
               "       slime-ctl [--run-dir DIR] stop\n"
               "       slime-ctl [--run-dir DIR] inject ACTOR kill|term|hang SECONDS|pause|resume|drop|corrupt\n"
               "       slime-ctl [--run-dir DIR] top [--once] [--interval MS] [--count N]\n"
               "RUN_DIR defaults to $SL_RUN_DIR.\n");
}

static void print_table(json_t *o) {
    json_t *rd = json_object_get(o, "run_dir"), *actors = json_object_get(o, "actors");
    printf("run dir: %s\n", json_is_string(rd) ? json_string_value(rd) : "?");
    printf("%-24s %-8s %8s %-10s %8s  %s\n", "NAME", "KIND", "PID", "STATE", "RESTARTS", "LAST EXIT");
    size_t i;
    json_t *a;
    json_array_foreach(actors, i, a) {
        json_t *le = json_object_get(a, "last_exit");
        printf("%-24s %-8s %8lld %-10s %8lld  %s\n", json_string_value(json_object_get(a, "name")),
               json_string_value(json_object_get(a, "kind")),
               (long long)json_integer_value(json_object_get(a, "pid")),
               json_string_value(json_object_get(a, "state")),
               (long long)json_integer_value(json_object_get(a, "restarts")),
               json_is_string(le) ? json_string_value(le) : "-");
    }
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The supervisor's status as an object, or NULL (message on stderr when
 * LOUD). */
static json_t *get_status(const char *run_dir, int timeout, bool loud) {
    char *reply = NULL;
    sl_err e = sl_control_request(run_dir, "status --json", &reply, timeout);
    if (e) {
        if (!loud) return NULL;
        if (e == SL_ECLOSED) fprintf(stderr, "slime-ctl: no supervisor is running in %s\n", run_dir);
        else fprintf(stderr, "slime-ctl: %s: %s\n", run_dir, sl_strerror(e));
        return NULL;
    }
    json_t *o = json_loads(reply, 0, NULL);
    free(reply);
    if (!json_is_object(o) || !json_is_array(json_object_get(o, "actors"))) {
        if (loud) fprintf(stderr, "slime-ctl: the supervisor's status is not the expected JSON object\n");
        json_decref(o);
        return NULL;
    }
    return o;
}

static int run_top(const char *run_dir, int timeout, bool once, long interval, long count) {
    sl_top *t = NULL;
    if (sl_top_new(run_dir, &t)) return 1;
    bool tty = isatty(STDOUT_FILENO);
    int rc = 0;
    if (once) {
        /* a silent first sample, so that the printed one shows rates */
        json_t *o = get_status(run_dir, timeout, true);
        if (!o) {
            sl_top_free(t);
            return 1;
        }
        FILE *nul = fopen("/dev/null", "w");
        if (nul) {
            sl_top_render(t, o, mono_ms(), nul);
            fclose(nul);
        }
        json_decref(o);
        sleep_ms(interval < 1100 ? 1100 : interval);
        count = 1;
    }
    for (long k = 0; count <= 0 || k < count; k++) {
        if (k > 0) sleep_ms(interval);
        json_t *o = get_status(run_dir, timeout, k == 0);
        if (!o) {
            if (k > 0) printf("the supervisor in %s is gone\n", run_dir);
            rc = k > 0 ? 0 : 1;
            break;
        }
        char *frame = NULL;
        size_t flen = 0;
        FILE *mf = open_memstream(&frame, &flen);
        if (!mf) {
            json_decref(o);
            rc = 1;
            break;
        }
        int e = sl_top_render(t, o, mono_ms(), mf);
        fclose(mf);
        json_decref(o);
        if (e) {
            free(frame);
            fprintf(stderr, "slime-ctl: cannot show the status: %s\n", sl_strerror(e));
            rc = 1;
            break;
        }
        /* on a terminal: cursor home, clear, the whole frame in one write */
        if (tty && !once) fputs("\033[H\033[2J", stdout);
        else if (k > 0) fputc('\n', stdout);
        fwrite(frame, 1, flen, stdout);
        fflush(stdout);
        free(frame);
    }
    sl_top_free(t);
    return rc;
}

int main(int argc, char **argv) {
    const char *run_dir = getenv("SL_RUN_DIR");
    int timeout = SL_CONTROL_TIMEOUT_MS;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (strcmp(argv[i], "--run-dir") == 0) {
            run_dir = argv[++i];
        } else if (strcmp(argv[i], "--timeout") == 0) {
            timeout = atoi(argv[++i]);
            if (timeout <= 0) {
                fprintf(stderr, "slime-ctl: --timeout needs a positive number of milliseconds\n");
                return 2;
            }
        } else {
            fprintf(stderr, "slime-ctl: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!run_dir || !*run_dir) {
        fprintf(stderr, "slime-ctl: no run directory (--run-dir DIR or SL_RUN_DIR)\n");
        return 2;
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i];
    int nargs = argc - i - 1;
    bool json = false;
    if (strcmp(cmd, "status") == 0) {
        if (nargs > 1 || (nargs == 1 && strcmp(argv[i + 1], "--json") != 0)) {
            usage(stderr);
            return 2;
        }
        json = nargs == 1;
    } else if (strcmp(cmd, "top") == 0) {
        bool once = false;
        long interval = 1000, count = 0;
        for (int k = i + 1; k < argc; k++) {
            if (strcmp(argv[k], "--once") == 0) {
                once = true;
            } else if ((strcmp(argv[k], "--interval") == 0 || strcmp(argv[k], "--count") == 0) &&
                       k + 1 < argc) {
                char *end = NULL;
                long v = strtol(argv[k + 1], &end, 10);
                bool iv = argv[k][2] == 'i';
                if (!end || *end || end == argv[k + 1] || v < (iv ? 100 : 1) || v > 86400000) {
                    fprintf(stderr, "slime-ctl: %s needs %s, not '%s'\n", argv[k],
                            iv ? "milliseconds in 100..86400000" : "a positive count", argv[k + 1]);
                    return 2;
                }
                if (iv) interval = v;
                else count = v;
                k++;
            } else {
                fprintf(stderr, "slime-ctl: top: unknown argument '%s'\n", argv[k]);
                usage(stderr);
                return 2;
            }
        }
        return run_top(run_dir, timeout, once, interval, count);
    } else if (strcmp(cmd, "stop") == 0) {
        if (nargs != 0) {
            usage(stderr);
            return 2;
        }
    } else if (strcmp(cmd, "inject") == 0) {
        /* "hang" takes SECONDS, the other actions nothing */
        bool hang = nargs >= 2 && strcmp(argv[i + 2], "hang") == 0;
        if (!(hang ? nargs == 3 : nargs == 2)) {
            usage(stderr);
            return 2;
        }
    } else {
        fprintf(stderr, "slime-ctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    /* The request is the command line, words joined by spaces. */
    char req[SL_CONTROL_MAX_REQUEST + 1];
    size_t len = 0;
    for (int k = i; k < argc; k++) {
        size_t w = strlen(argv[k]);
        if (len + w + 2 > sizeof req || strpbrk(argv[k], " \t\n")) {
            fprintf(stderr, "slime-ctl: bad argument '%s'\n", argv[k]);
            return 2;
        }
        if (len) req[len++] = ' ';
        memcpy(req + len, argv[k], w);
        len += w;
    }
    req[len] = '\0';
    char *reply = NULL;
    sl_err e = sl_control_request(run_dir, req, &reply, timeout);
    if (e) {
        if (e == SL_ECLOSED)
            fprintf(stderr, "slime-ctl: no supervisor is running in %s\n", run_dir);
        else
            fprintf(stderr, "slime-ctl: %s: %s\n", run_dir, sl_strerror(e));
        return 1;
    }
    json_error_t jerr;
    json_t *o = json_loads(reply, 0, &jerr);
    if (!o || !json_is_object(o)) {
        fprintf(stderr, "slime-ctl: the supervisor sent something that is not a JSON object\n");
        free(reply);
        json_decref(o);
        return 1;
    }
    json_t *ok = json_object_get(o, "ok");
    int rc = 0;
    if (json_is_false(ok)) {
        json_t *err = json_object_get(o, "error");
        fprintf(stderr, "slime-ctl: %s\n", json_is_string(err) ? json_string_value(err) : "refused");
        rc = 1;
    } else if (strcmp(cmd, "status") == 0) {
        if (json) printf("%s\n", reply);
        else print_table(o);
    } else if (strcmp(cmd, "stop") == 0) {
        printf("stopping\n");
    } else {
        printf("%s\n", reply);
    }
    json_decref(o);
    free(reply);
    return rc;
}
