/*
 * plugin_len_penalty.c — reward plugins for tests/rl/test_reward_plugins.sh and
 * tests/faults/test_reward_limits.sh
 * (built there with cc -shared -fPIC), written against
 * actors/reward_plugin.h:
 *   slime_reward   1 for a response that ends in a "#### N" line equal to
 *                  the label, else 0; minus 0.01 per response byte over 8
 *                  (a length penalty): any finite score is accepted
 *   reward_hang    never returns (a busy loop): the worker is killed at the
 *                  deadline
 *   reward_crash   dereferences NULL: the worker dies of SIGSEGV
 *   reward_fail    returns -1 (could not score)
 *   reward_hog     allocates 1 GiB unchecked (stopped by reward_memory_mb)
 * Not part of the library.
 */
#include <stdlib.h>
#include <string.h>

#include "reward_plugin.h"

int slime_reward(const sl_reward_plugin_input *in, double *reward) {
    if (in->abi_version != SL_REWARD_PLUGIN_ABI) return -1;
    double r = 0;
    const char *h = NULL;
    for (const char *p = in->response; (p = strstr(p, "####")); p += 4) h = p;
    if (h && in->label) {
        h += 4;
        while (*h == ' ') h++;
        size_t n = strlen(in->label);
        r = strncmp(h, in->label, n) == 0 && (h[n] == 0 || h[n] == '\n') ? 1.0 : 0.0;
    }
    if (in->response_len > 8) r -= 0.01 * (double)(in->response_len - 8);
    *reward = r;
    return 0;
}

int reward_hang(const sl_reward_plugin_input *in, double *reward) {
    volatile unsigned long x = 0;
    (void)in;
    for (;;) x++;
    *reward = (double)x;
    return 0;
}

int reward_crash(const sl_reward_plugin_input *in, double *reward) {
    volatile int *p = NULL;
    (void)in;
    *reward = *p;
    return 0;
}

int reward_fail(const sl_reward_plugin_input *in, double *reward) {
    (void)in;
    *reward = 0;
    return -1;
}

/* reward_hog: wants 1 GiB and does not check malloc: under reward_memory_mb
 * (RLIMIT_AS) smaller than that, the allocation fails and the worker dies
 * of SIGSEGV; without the limit it scores 1. */
int reward_hog(const sl_reward_plugin_input *in, double *reward) {
    (void)in;
    size_t n = (size_t)1 << 30;
    volatile char *p = malloc(n);
    p[0] = 1;
    p[n - 1] = 1;
    *reward = p[0];
    free((void *)p);
    return 0;
}
