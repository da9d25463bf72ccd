/*
 * actor_driver.h — what the test drivers that play parts of the RL system
 * against real actors share (helper_gen_service.c, helper_rl_driver.c):
 * their SLIME_ACTOR TOPOLOGY RUN_DIR arguments, one printed line per check
 * (CHECK), spawning `slime-actor --kind K --name N` with its stderr in
 * RUN_DIR/N.log, and the closing summary line.
 *
 * Header-only and meant for one translation unit (the Makefile builds every
 * tests/unit/helper_*.c as its own program): it defines static state.
 */
#ifndef SL_TEST_ACTOR_DRIVER_H
#define SL_TEST_ACTOR_DRIVER_H

#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

static const char *actor_bin, *topo, *run_dir; /* argv[1], argv[2], argv[3] */
static int failures;

/* Print "ok   " or "FAIL " (counted) and then the printf-style message. */
#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (cond) {                                                                               \
            printf("ok   ");                                                                      \
        } else {                                                                                  \
            printf("FAIL ");                                                                      \
            failures++;                                                                           \
        }                                                                                         \
        printf(__VA_ARGS__);                                                                      \
        printf("\n");                                                                             \
        fflush(stdout);                                                                           \
    } while (0)

/* Start actor NAME of KIND (the child's pid; -1 when fork fails). */
static inline pid_t spawn(const char *kind, const char *name) {
    pid_t pid = fork();
    if (pid == 0) {
        char log[1024];
        snprintf(log, sizeof log, "%s/%s.log", run_dir, name);
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        execl(actor_bin, actor_bin, "--kind", kind, "--name", name, "--run-dir", run_dir, "--topology", topo,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* "PASS|FAIL: N failure(s)"; the driver's exit status (0 when none failed). */
static inline int driver_summary(void) {
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}

#endif /* SL_TEST_ACTOR_DRIVER_H */
