/*
 * slime-ctl — talk to a running supervisor over its control socket
 * (nng REQ/REP at ipc://RUN_DIR/control):
 *
 *   slime-ctl [--run-dir DIR] [--timeout MS] status [--json]
 *   slime-ctl [--run-dir DIR] stop
 *   slime-ctl [--run-dir DIR] inject ACTOR kill|term|hang SECONDS|pause|resume|drop|corrupt
 *
 * inject drop / corrupt: the actor's next outgoing mailbox frame is dropped /
 * has one byte flipped (the receiver's decoder must refuse it); built-in
 * kinds only (SIGUSR1 / SIGUSR2, see mailbox/faults.h). A schedule of faults
 * for a whole run is the topology's [faults] section.
 *
 * RUN_DIR defaults to $SL_RUN_DIR. `status --json` prints the supervisor's
 * one JSON object unchanged: {"run_dir":..., "actors":[{"name","kind","pid",
 * "state","restarts","last_exit",...}]}.
 * Exit: 0 done, 1 the supervisor refused or cannot be reached, 2 usage.
 */
#include "control.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: slime-ctl [--run-dir DIR] [--timeout MS] status [--json]\n"
               "       slime-ctl [--run-dir DIR] stop\n"
               "       slime-ctl [--run-dir DIR] inject ACTOR kill|term|hang SECONDS|pause|resume|drop|corrupt\n"
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
