/*
 * plugin_calc_generate.c — a custom_generate_function_path hook for the
 * tests (workflow_plugin.h): the <calc> tool loop of actors/wf_tool.h
 * written as one sample's generation. Generate with the stop string
 * "</calc>"; on a closed <calc>A op B</calc> append <result>V</result>
 * (or <result>error</result>) with mask 0 and generate again; at most 4
 * calls. Metrics tool_calls, tool_call_rate, tool_errors.
 *   cc -shared -fPIC -O2 -I actors -o calc.so tests/rl/plugin_calc_generate.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "workflow_plugin.h"

/* "A op B" with integers and one of + - * /; 0 and *v, or -1. */
static int eval2(const char *s, size_t n, long long *v) {
    char buf[80];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    long long a, b;
    char op;
    int used = 0;
    if (sscanf(buf, " %lld %c %lld %n", &a, &op, &b, &used) != 3 || (size_t)used != n) return -1;
    if (a > 1000000 || a < -1000000 || b > 1000000 || b < -1000000) return -1;
    switch (op) {
    case '+': *v = a + b; return 0;
    case '-': *v = a - b; return 0;
    case '*': *v = a * b; return 0;
    case '/': if (b == 0) return -1; *v = a / b; return 0;
    }
    return -1;
}

int calc_generate(const sl_gen_plugin_sample *s) {
    if (s->abi_version < 1) return 1;
    /* tests: crash the driver once (SL_TEST_CRASH_ONCE names a file that is removed first) */
    const char *once = getenv("SL_TEST_CRASH_ONCE");
    if (once && s->step >= 2 && unlink(once) == 0) raise(SIGSEGV);
    static const char *const stop[] = {"</calc>"};
    sl_gen_plugin_params p = s->defaults;
    p.stop = stop;
    p.n_stop = 1;
    int calls = 0, errors = 0;
    int32_t *seq = malloc((s->prompt_len + (size_t)s->max_new_tokens) * sizeof *seq);
    if (!seq) return 2;
    memcpy(seq, s->prompt, s->prompt_len * sizeof *seq);
    for (int turn = 0;; turn++) {
        uint32_t rl = s->response_len(s);
        if ((int)rl >= s->max_new_tokens) break;
        memcpy(seq + s->prompt_len, s->response(s), rl * sizeof *seq);
        sl_gen_plugin_out o;
        p.seed = s->defaults.seed + (uint64_t)turn * 104729u;
        if (s->generate(s, seq, (int)(s->prompt_len + rl), &p, &o) != 0) {
            free(seq);
            return rl > 0 ? 0 : 3;
        }
        if (o.n > 0 && s->append(s, o.ids, o.logprobs, (size_t)o.n, 1) != 0) break;
        if (o.finish != 0 || calls >= 4) break;
        char *text = NULL;
        if (s->detokenize(s, s->response(s), s->response_len(s), &text) != 0) break;
        size_t tl = strlen(text);
        const char *close = "</calc>";
        char *open = NULL;
        for (char *q = strstr(text, "<calc>"); q; q = strstr(q + 1, "<calc>")) open = q;
        if (tl < 7 || strcmp(text + tl - 7, close) != 0 || !open) {
            free(text);
            break; /* EOS */
        }
        long long v = 0;
        char res[64];
        calls++;
        if (eval2(open + 6, (size_t)(text + tl - 7 - (open + 6)), &v) == 0) {
            snprintf(res, sizeof res, "<result>%lld</result>", v);
        } else {
            errors++;
            snprintf(res, sizeof res, "<result>error</result>");
        }
        free(text);
        int32_t *ids = NULL;
        size_t n = 0;
        if (s->tokenize(s, res, &ids, &n) != 0) break;
        int rc = (int)(s->response_len(s) + n) < s->max_new_tokens ? s->append(s, ids, NULL, n, 0) : -1;
        free(ids);
        if (rc != 0) break;
    }
    free(seq);
    s->set_metric(s, "tool_calls", calls);
    s->set_metric(s, "tool_call_rate", calls > 0);
    s->set_metric(s, "tool_errors", errors);
    return 0;
}
