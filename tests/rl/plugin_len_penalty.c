/*
 * plugin_len_penalty.c — reward plugins for tests/rl/test_reward_plugins.sh
 * (built there with cc -shared -fPIC), written against
 * actors/reward_plugin.h:
 *   slime_reward   1 for a response that ends in a "#### N" line equal to
 *                  the label, else 0; minus 0.01 per response byte over 8
 *                  (a length penalty): any finite score is accepted
 *   reward_hang    never returns (a busy loop): the worker is killed at the
 *                  deadline
 *   reward_crash   dereferences NULL: the worker dies of SIGSEGV
 *   reward_fail    returns -1 (could not score)
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
