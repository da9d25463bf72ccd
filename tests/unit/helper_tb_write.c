/*
 * helper_tb_write.c — writes a TensorBoard event directory and the list of
 * scalars it holds, for tests/tboard_check.py (the check with the real
 * tensorboard package):
 *
 *   helper_tb_write OUTDIR    -> OUTDIR/tb/events.out.tfevents.*
 *                                OUTDIR/expected.json
 *
 * expected.json: {"file": PATH, "scalars": [{"tag","step","value"}...]}
 * with every value as the float32 that was written (printed with %.9g).
 * Scalars come from synthetic metrics.jsonl lines (sft, rl and eval phases,
 * through sl_tb_from_metrics_line) and from direct sl_tb_scalar calls.
 * Steps rise per tag (TensorBoard purges a tag's later points when its step
 * goes back). Exit 0 done, 1 write failure, 2 usage.
 */
#include "base.h"
#include "tboard.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static FILE *exp_f;
static int first = 1;

static void expect(const char *tag, long long step, float v) {
    fprintf(exp_f, "%s\n  {\"tag\": \"%s\", \"step\": %lld, \"value\": %.9g}", first ? "" : ",", tag, step,
            (double)v);
    first = 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: helper_tb_write OUTDIR\n");
        return 2;
    }
    char tb[4096], ep[4096];
    snprintf(tb, sizeof tb, "%s/tb", argv[1]);
    snprintf(ep, sizeof ep, "%s/expected.json", argv[1]);
    sl_tb_writer *w = NULL;
    int e = sl_tb_open(tb, &w);
    if (e) {
        fprintf(stderr, "helper_tb_write: %s: %s\n", tb, sl_strerror(e));
        return 1;
    }
    exp_f = fopen(ep, "w");
    if (!exp_f) {
        perror(ep);
        return 1;
    }
    fprintf(exp_f, "{\"file\": \"%s\",\n \"scalars\": [", sl_tb_path(w));
    char line[512];
    int n;
    for (int s = 1; s <= 60 && !e; s++) {
        const char *phase = s <= 10 ? "sft" : "rl";
        float loss = 2.0f / (float)s, reward = 0.01f * (float)s + 0.1f * sinf((float)s);
        float len = 100.0f + 3.0f * (float)s, kl = 1e-4f * (float)(s * s), tps = 1234.5f + (float)s;
        if (s <= 10)
            snprintf(line, sizeof line, "{\"step\":%d,\"phase\":\"sft\",\"loss\":%.9g,\"tokens_per_s\":%.9g,"
                     "\"grad_norm\":%.9g,\"time\":%.3f}", s, (double)loss, (double)tps, 1.5, 1.75e9 + s);
        else
            snprintf(line, sizeof line, "{\"step\":%d,\"phase\":\"rl\",\"loss\":%.9g,\"reward_mean\":%.9g,"
                     "\"reward_std\":0.25,\"response_len_mean\":%.9g,\"kl\":%.9g,\"entropy\":1.0,"
                     "\"tokens_per_s\":%.9g,\"weight_version\":%d,\"samples_trained\":%d,\"time\":%.3f}",
                     s, (double)loss, (double)reward, (double)len, (double)kl, (double)tps, s - 10,
                     (s - 10) * 64, 1.75e9 + s);
        e = sl_tb_from_metrics_line(w, line, strlen(line), &n);
        char t[64];
#define EXP(name, v) (snprintf(t, sizeof t, "%s/%s", phase, name), expect(t, s, (float)(v)))
        EXP("loss", loss);
        EXP("tokens_per_s", tps);
        if (s <= 10) EXP("grad_norm", 1.5);
        else {
            EXP("reward_mean", reward);
            EXP("reward_std", 0.25);
            EXP("response_len_mean", len);
            EXP("kl", kl);
            EXP("entropy", 1.0);
            EXP("weight_version", s - 10);
            EXP("samples_trained", (s - 10) * 64);
        }
        if (s % 20 == 0 && !e) {
            float acc = 0.3f + 0.005f * (float)s;
            snprintf(line, sizeof line, "{\"step\":%d,\"phase\":\"eval\",\"eval_accuracy\":%.9g}", s, (double)acc);
            e = sl_tb_from_metrics_line(w, line, strlen(line), &n);
            expect("eval/eval_accuracy", s, acc);
        }
    }
    for (int s = 0; s < 5 && !e; s++) {
        float v = -1.5f * (float)s;
        e = sl_tb_scalar(w, "direct/value", 1000000000000ll + s, v, 0);
        expect("direct/value", 1000000000000ll + s, v);
    }
    fprintf(exp_f, "\n]}\n");
    int ce = sl_tb_close(w);
    if (fclose(exp_f) != 0 || e || ce) {
        fprintf(stderr, "helper_tb_write: write failed: %s\n", sl_strerror(e ? e : SL_EIO));
        return 1;
    }
    return 0;
}
