/*
 * slime-supervisor — run a topology: start every actor, supervise, stop.
 *
 *   slime-supervisor TOPOLOGY.conf [--run-dir DIR] [--set SECTION.KEY=VALUE ...]
 *                    [--check [--gpus N]] [--dry-run] [--help-config] [--quiet|--verbose]
 *
 * Argument parsing and wiring only; the supervisor is actors/supervisor.c.
 * Exit: 0 stopped on request, 1 restart intensity exceeded or runtime
 * failure, 2 usage or configuration error (FILE:LINE lines on stderr).
 */
#include "actor.h"
#include "launch.h"
#include "supervisor.h"
#include "topology.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: slime-supervisor TOPOLOGY.conf [--run-dir DIR] [--set SECTION.KEY=VALUE ...]\n"
            "                        [--check [--gpus N]] [--dry-run] [--help-config] [--quiet|--verbose]\n"
            "  --run-dir DIR   run directory (default: the topology's [run] run_dir, runs/NAME)\n"
            "  --set K=V       override a key: run.name=x, supervisor.strategy=one_for_all,\n"
            "                  actor.NAME.count=3 (repeatable)\n"
            "  --check         validate the topology and exit (0 valid, 2 not)\n"
            "  --gpus N        check `device = cuda:N` keys against N GPUs instead of this machine's\n"
            "                  (validate a GPU topology on a CPU-only machine)\n"
            "  --dry-run       print the command line of every actor instance (remote ones behind\n"
            "                  the [cluster] launcher: ssh / srun / command) and start nothing\n"
            "  --help-config   print every section and key with type, default and meaning\n"
            "  --quiet         warnings and errors only (supervisor and every actor: run.log_level=warn),\n"
            "                  no progress line but the final one, then the summary line\n"
            "  --verbose       debug lines too (run.log_level=debug)\n"
            "environment: SL_ACTOR_BIN overrides the path of slime-actor (default: beside this program)\n");
}

/* slime-actor beside this executable, unless SL_ACTOR_BIN says otherwise. */
static void actor_bin(char *out, size_t cap) {
    const char *env = getenv("SL_ACTOR_BIN");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(out, cap, "slime-actor");
        return;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    if (strlen(self) + 13 > cap) {
        snprintf(out, cap, "slime-actor");
        return;
    }
    strcpy(out, self);
    strcat(out, "/slime-actor");
}

int main(int argc, char **argv) {
    const char *path = NULL, *run_dir = NULL;
    const char **sets = calloc((size_t)argc + 2, sizeof *sets); /* + the log level of --quiet/--verbose */
    int n_sets = 0;
    bool check = false, dry = false;
    sl_log_level lvl = SL_LOG_INFO;
    bool lvl_forced = false;
    if (!sets) return SL_EXIT_FAIL;
    /* Actors run OpenMP loops on a few shared cores; libgomp's default
     * spin-waiting makes small steps 10-20x slower when cores are shared.
     * It reads the variable at load time, so set it for the children here
     * (a user's explicit choice wins). */
    setenv("OMP_WAIT_POLICY", "passive", 0);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            free(sets); /* LeakSanitizer checks every exit */
            return SL_EXIT_OK;
        } else if (strcmp(a, "--help-config") == 0) {
            sl_topology_print_reference(stdout);
            free(sets); /* LeakSanitizer checks every exit */
            return SL_EXIT_OK;
        } else if (strcmp(a, "--check") == 0) {
            check = true;
        } else if (strcmp(a, "--dry-run") == 0) {
            dry = true;
        } else if (strcmp(a, "--gpus") == 0) {
            char *end = NULL;
            long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;
            if (i + 1 >= argc || !*argv[i + 1] || *end || n < 0 || n > 4096) {
                fprintf(stderr, "slime-supervisor: --gpus needs a count in [0, 4096]\n");
                free(sets);
                return SL_EXIT_USAGE;
            }
            sl_topology_set_gpu_count((int)n);
            i++;
        } else if (strcmp(a, "--quiet") == 0) {
            lvl = SL_LOG_WARN;
            lvl_forced = true;
        } else if (strcmp(a, "--verbose") == 0) {
            lvl = SL_LOG_DEBUG;
            lvl_forced = true;
        } else if (strcmp(a, "--run-dir") == 0 || strcmp(a, "--set") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "slime-supervisor: %s needs a value\n", a);
                free(sets);
                return SL_EXIT_USAGE;
            }
            if (a[2] == 'r') run_dir = argv[++i];
            else sets[n_sets++] = argv[++i];
        } else if (strncmp(a, "--set=", 6) == 0) {
            sets[n_sets++] = a + 6;
        } else if (strncmp(a, "--run-dir=", 10) == 0) {
            run_dir = a + 10;
        } else if (a[0] == '-') {
            fprintf(stderr, "slime-supervisor: unknown option '%s'\n", a);
            usage(stderr);
            free(sets);
            return SL_EXIT_USAGE;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "slime-supervisor: more than one topology file ('%s', '%s')\n", path, a);
            free(sets);
            return SL_EXIT_USAGE;
        }
    }
    if (!path) {
        usage(stderr);
        free(sets);
        return SL_EXIT_USAGE;
    }
    /* --quiet / --verbose reach every actor through the resolved topology
     * they read (run.log_level), after any --set so that the flag wins */
    if (lvl_forced) sets[n_sets++] = lvl == SL_LOG_WARN ? "run.log_level=warn" : "run.log_level=debug";
    sl_topology *topo = NULL;
    int rc = sl_topology_cli_load(path, sets, n_sets, &topo);
    free(sets);
    if (rc != SL_EXIT_OK) return rc;
    if (!lvl_forced) {
        int l = sl_topology_get_enum(topo, "run", "log_level");
        if (l >= 0) lvl = (sl_log_level)l;
    }
    sl_log_init("supervisor", lvl);
    if (check) {
        int n = sl_supervisor_check(topo, run_dir, stderr);
        if (n == 0) printf("%s: ok (%d actors)\n", path, topo->n_actors);
        sl_topology_free(topo);
        return n ? SL_EXIT_USAGE : SL_EXIT_OK;
    }
    char bin[PATH_MAX];
    actor_bin(bin, sizeof bin);
    if (dry) {
        /* the run folder and topology copy the supervisor would use */
        char rd[PATH_MAX], tp[PATH_MAX + 32], cwd[PATH_MAX];
        const char *r = run_dir ? run_dir : topo->run_dir;
        if (r[0] == '/' || !getcwd(cwd, sizeof cwd)) snprintf(rd, sizeof rd, "%s", r);
        else snprintf(rd, sizeof rd, "%.2000s/%.2000s", cwd, r);
        snprintf(tp, sizeof tp, "%s/topology.conf", rd);
        int bad = 0;
        for (int i = 0; i < topo->n_actors; i++) {
            const sl_actor_spec *a = &topo->actors[i];
            char **v = NULL, why[128] = "";
            if (sl_launch_argv(topo, a, bin, rd, tp, &v, why, sizeof why)) {
                fprintf(stderr, "%s: %s\n", a->name, *why ? why : "out of memory");
                bad = 1;
                continue;
            }
            printf("# %s (%s, %s, %s)\n", a->name, a->kind_name, a->host ? a->host : "this machine", a->device);
            sl_launch_print(stdout, v);
            sl_launch_free(v);
        }
        sl_topology_free(topo);
        return bad ? SL_EXIT_USAGE : SL_EXIT_OK;
    }
    for (int i = 0; i < topo->n_actors; i++) {
        if (topo->actors[i].kind != SL_KIND_EXEC && access(bin, X_OK) != 0) {
            fprintf(stderr, "slime-supervisor: cannot execute %s (needed for kind %s); "
                            "build it or set SL_ACTOR_BIN\n", bin, topo->actors[i].kind_name);
            sl_topology_free(topo);
            return SL_EXIT_USAGE;
        }
    }
    sl_supervisor_opts opts = {.run_dir = run_dir, .actor_bin = bin};
    rc = sl_supervisor_run(topo, &opts);
    sl_topology_free(topo);
    return rc;
}
