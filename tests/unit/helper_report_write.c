/*
 * helper_report_write.c — writes RUN_DIR/report.html with sl_report_write,
 * for tests/report/test_report_chromium.sh:
 *
 *   helper_report_write RUN_DIR          report of an existing run dir
 *   helper_report_write --demo RUN_DIR   first fill RUN_DIR with a synthetic
 *                                        run (10 sft steps, 110 rl steps,
 *                                        eval every 10, a topology, two
 *                                        restarts in supervisor.log, samples
 *                                        and a few garbled lines), then report
 *
 * Prints the report's counters as one JSON object. Exit 0 done, 1 failure,
 * 2 usage.
 */
#include "base.h"
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int demo(const char *rd) {
    char p[4200];
    mkdir(rd, 0700);
    snprintf(p, sizeof p, "%s/logs", rd);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/metrics.jsonl", rd);
    FILE *f = fopen(p, "w");
    if (!f) return 1;
    for (int s = 1; s <= 120; s++) {
        double t = 1.75e9 + 3 * s;
        if (s <= 10)
            fprintf(f, "{\"step\":%d,\"phase\":\"sft\",\"loss\":%.4f,\"tokens_per_s\":%.1f,\"grad_norm\":1.2,"
                       "\"time\":%.1f}\n", s, 2.5 / s, 5200 + 80 * sin(s), t);
        else {
            double r = 0.7 / (1 + exp(-(s - 50) / 15.0)) + 0.04 * sin(s * 1.7);
            fprintf(f, "{\"step\":%d,\"phase\":\"rl\",\"reward_mean\":%.4f,\"reward_std\":0.3,"
                       "\"response_len_mean\":%.1f,\"loss\":%.4f,\"kl\":%.5f,\"entropy\":%.4f,\"grad_norm\":0.8,"
                       "\"tokens_per_s\":%.1f,\"weight_version\":%d,\"samples_trained\":%d,\"time\":%.1f}\n",
                    s, r, 180 + 60 * sin(s / 20.0) + s * 0.5, 0.1 * cos(s), 0.0004 * (s - 10) * (1 + 0.2 * sin(s)),
                    1.6 - 0.006 * s + 0.03 * sin(s * 0.9), 3900 + 300 * sin(s / 7.0), s - 10, (s - 10) * 64, t);
        }
        if (s % 10 == 0)
            fprintf(f, "{\"step\":%d,\"phase\":\"eval\",\"eval_accuracy\":%.4f}\n", s,
                    0.2 + 0.5 * (1 - exp(-s / 50.0)));
        if (s == 33) fprintf(f, "{\"step\": garbled\n\x01\x02 binary junk\n[1,2,3]\n");
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/topology.conf", rd);
    if (!(f = fopen(p, "w"))) return 1;
    fprintf(f, "# demo topology <for the report> & its \"escaping\"\n[run]\nname = demo\n\n[model]\npath = "
               "models/Qwen3-0.6B\n\n[algorithm]\nadvantage_estimator = grpo\nn_samples_per_prompt = 8\n"
               "rollout_batch_size = 32\nkl_loss_coef = 0.001\n\n[actor buffer]\nkind = buffer\n\n"
               "[actor rollout]\nkind = rollout\ncount = 2\nrestart = permanent\n\n[actor trainer]\nkind = trainer\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/logs/supervisor.log", rd);
    if (!(f = fopen(p, "w"))) return 1;
    fprintf(f, "2026-11-29T03:00:00.000Z INFO supervisor pid 100: 4 actors, one_for_one, intensity 5/60 s, run dir %s\n"
               "2026-11-29T03:00:00.010Z INFO started buffer (buffer) pid 101\n"
               "2026-11-29T03:00:00.020Z INFO started rollout0 (rollout) pid 102\n"
               "2026-11-29T03:00:00.030Z INFO started rollout1 (rollout) pid 103\n"
               "2026-11-29T03:00:00.040Z INFO started trainer (trainer) pid 104\n"
               "2026-11-29T03:05:00.000Z WARN rollout1 (pid 103) ended: killed by signal 9\n"
               "2026-11-29T03:05:00.010Z INFO started rollout1 (rollout) pid 105\n"
               "2026-11-29T03:09:00.000Z WARN trainer (pid 104) is hung: no heartbeat for 3000 ms: SIGKILL\n"
               "2026-11-29T03:09:00.100Z WARN trainer (pid 104) ended: hung\n"
               "2026-11-29T03:09:00.110Z INFO started trainer (trainer) pid 106\n", rd);
    fclose(f);
    const char *prompts[] = {"Natalia sold clips to 48 of her friends in April, and then she sold half as many "
                             "clips in May. How many clips did Natalia sell altogether in April and May?",
                             "What is 17 * 23? Answer with <answer>N</answer>.", "Compute 1234 + 8765."};
    const char *early[] = {"48 + 48 = 96 clips.", "17*23 = 381 <answer>381</answer>", "I think 9999?"};
    const char *late[] = {"In May she sold 48 / 2 = 24 clips.\nAltogether 48 + 24 = 72.\n#### 72",
                          "17 * 23 = 391 <answer>391</answer>", "1234 + 8765 = 9999\n#### 9999"};
    for (int i = 0; i < 3; i++) {
        if (sl_report_append_sample(rd, 11, prompts[i], early[i], i == 2 ? 1.0 : 0.0)) return 1;
        if (sl_report_append_sample(rd, 120, prompts[i], late[i], 1.0)) return 1;
    }
    snprintf(p, sizeof p, "%s/%s", rd, SL_REPORT_SAMPLES_FILE);
    if (!(f = fopen(p, "a"))) return 1;
    fprintf(f, "not json\n{\"step\":\"x\",\"prompt\":1}\n");
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    const char *rd = NULL;
    if (argc == 2 && argv[1][0] != '-') rd = argv[1];
    else if (argc == 3 && !strcmp(argv[1], "--demo")) {
        rd = argv[2];
        if (demo(rd)) {
            fprintf(stderr, "helper_report_write: cannot write the demo run in %s\n", rd);
            return 1;
        }
    } else {
        fprintf(stderr, "usage: helper_report_write [--demo] RUN_DIR\n");
        return 2;
    }
    sl_report_info in;
    int e = sl_report_write(rd, &in);
    if (e) {
        fprintf(stderr, "helper_report_write: %s: %s\n", rd, sl_strerror(e));
        return 1;
    }
    printf("{\"metrics_rows\":%d,\"metrics_skipped\":%d,\"samples_rows\":%d,\"samples_skipped\":%d,"
           "\"restarts\":%d,\"has_config\":%d,\"charts_with_data\":%d}\n", in.metrics_rows, in.metrics_skipped,
           in.samples_rows, in.samples_skipped, in.restarts, in.has_config, in.charts_with_data);
    return 0;
}
