/*
 * actor_driver.h — what the test drivers that play parts of the RL system
 * against real actors share (helper_gen_service.c, helper_rl_driver.c):
 * their SLIME_ACTOR TOPOLOGY RUN_DIR arguments, one printed line per check
 * (CHECK), spawning `slime-actor --kind K --name N` with its stderr in
 * RUN_DIR/N.log, sending the rollout a PROMPTS group as the buffer would,
 * and the closing summary line.
 *
 * Header-only and meant for one translation unit (the Makefile builds every
 * tests/unit/helper_*.c as its own program): it defines static state.
 */
#ifndef SL_TEST_ACTOR_DRIVER_H
#define SL_TEST_ACTOR_DRIVER_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "dataset.h"
#include "mailbox.h"
#include "rl_msg.h"

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

/* PROMPTS to "rollout" as the buffer sends them: group INDEX (epoch 0) of 4
 * samples of "12+7=" (label "19"), RL step STEP, MAX_NEW tokens each, seed
 * INDEX. */
static inline void send_prompts(sl_mailbox *mb, uint64_t index, int64_t step, int max_new) {
    json_t *pr = json_array(), *ids = json_array();
    for (const char *c = "12+7="; *c; c++) json_array_append_new(pr, json_integer(*c - 31));
    uint64_t gid;
    sl_prompt_id_pack(0, index, &gid);
    for (uint32_t k = 0; k < 4; k++) {
        uint64_t id;
        sl_sample_id_pack(0, index, k, &id);
        json_array_append_new(ids, json_integer((json_int_t)id));
    }
    json_t *o = json_pack("{s:I, s:s, s:I, s:o, s:o, s:i, s:f, s:f, s:i, s:i, s:I, s:s, s:s}", "step",
                          (json_int_t)step, "phase", "rl", "group", (json_int_t)gid, "sample_ids", ids, "prompt", pr,
                          "n", 4, "temperature", 1.0, "top_p", 1.0, "top_k", -1, "max_new_tokens", max_new, "seed",
                          (json_int_t)index, "label", "19", "metadata", "{}");
    char *t = json_dumps(o, JSON_COMPACT);
    sl_mailbox_send(mb, "rollout", SL_MSG_PROMPTS, t, strlen(t));
    free(t);
    json_decref(o);
}

/* "PASS|FAIL: N failure(s)"; the driver's exit status (0 when none failed). */
static inline int driver_summary(void) {
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}

#endif /* SL_TEST_ACTOR_DRIVER_H */
