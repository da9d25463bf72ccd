/*
 * slime-bench — measured throughput of the system's parts, printed as one
 * JSON object per benchmark on stdout. Each benchmark lives in its own
 * bin/bench_NAME.c and defines `int bench_NAME(int argc, char **argv)`.
 */
#include "base.h"

#include <stdio.h>
#include <string.h>

typedef int (*bench_fn)(int argc, char **argv);

/* Declared weak so that the program links while a benchmark's file is not
 * part of this build; such a benchmark reports itself as unavailable. */
#define BENCH(name) int bench_##name(int argc, char **argv) __attribute__((weak));
BENCH(mailbox)
BENCH(shm)
BENCH(wal)
BENCH(model)
BENCH(tokenizer)
BENCH(rl_step)
BENCH(gen)
BENCH(gpu_train)
BENCH(gpu_sync)
BENCH(gpu_grpo)
BENCH(multi_gpu)
BENCH(gpu_gen)
#undef BENCH

static const struct {
    const char *name;
    bench_fn *fn;
    const char *what;
} benches[] = {
    {"mailbox", NULL, "message round-trip latency and messages/s over ipc"},
    {"shm", NULL, "shared-memory batch handoff GB/s against memcpy"},
    {"wal", NULL, "io_uring write-ahead log append throughput"},
    {"model", NULL, "CPU forward+backward tokens/s and decode tokens/s"},
    {"tokenizer", NULL, "BPE encoding MB/s on one core"},
    {"rl-step", NULL, "seconds per RL step split by phase"},
    {"gen", NULL, "generation scheduler requests/s and tokens/s, 1 vs 8 in flight"},
    {"gpu-train", NULL, "GPU bf16 training step of a Qwen2.5-0.5B shape: tokens/s, MFU, memory"},
    {"gpu-sync", NULL, "CUDA IPC weight sync latency of the 0.5B bf16 weights"},
    {"gpu-grpo", NULL, "GRPO step of the trainer on the GPU, Qwen2.5-0.5B shape: seconds, tokens/s"},
    {"multi-gpu", NULL, "NCCL data-parallel step and weight broadcast, 1+1 vs 2+2 GPUs (what the machine has)"},
    {"gpu-gen", NULL, "GPU rollout engine: 256 prompts x 128 -> 256 sampled tokens, generated tokens/s"},
};

static bench_fn lookup(const char *name) {
    if (!strcmp(name, "mailbox")) return bench_mailbox;
    if (!strcmp(name, "shm")) return bench_shm;
    if (!strcmp(name, "wal")) return bench_wal;
    if (!strcmp(name, "model")) return bench_model;
    if (!strcmp(name, "tokenizer")) return bench_tokenizer;
    if (!strcmp(name, "rl-step")) return bench_rl_step;
    if (!strcmp(name, "gen")) return bench_gen;
    if (!strcmp(name, "gpu-train")) return bench_gpu_train;
    if (!strcmp(name, "gpu-sync")) return bench_gpu_sync;
    if (!strcmp(name, "gpu-grpo")) return bench_gpu_grpo;
    if (!strcmp(name, "multi-gpu")) return bench_multi_gpu;
    if (!strcmp(name, "gpu-gen")) return bench_gpu_gen;
    return NULL;
}

static void usage(FILE *f) {
    fprintf(f, "usage: slime-bench NAME [options]\n\nbenchmarks:\n");
    for (size_t i = 0; i < SL_ARRAY_LEN(benches); i++)
        fprintf(f, "  %-10s %s%s\n", benches[i].name, benches[i].what,
                lookup(benches[i].name) ? "" : " (not in this build)");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? SL_EXIT_USAGE : SL_EXIT_OK;
    }
    sl_log_init("slime-bench", SL_LOG_WARN);
    int known = 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(benches); i++)
        if (!strcmp(argv[1], benches[i].name)) known = 1;
    if (!known) {
        fprintf(stderr, "slime-bench: unknown benchmark '%s'\n", argv[1]);
        usage(stderr);
        return SL_EXIT_USAGE;
    }
    bench_fn fn = lookup(argv[1]);
    if (!fn) {
        fprintf(stderr, "slime-bench: benchmark '%s' is not in this build\n", argv[1]);
        return SL_EXIT_FAIL;
    }
    return fn(argc - 1, argv + 1);
}
