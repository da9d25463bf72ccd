/*
 * bench_tokenizer.c — `slime-bench tokenizer [--file F] [--tokenizer DIR]...`:
 * MB/s of English text encoded on one core, per tokenizer, as one JSON
 * object. The default text is GSM8K's train.jsonl questions and answers
 * (each encoded as its own document, as a dataset loader would), the default
 * tokenizers every folder of $SL_SHARED/data/tokenizers. Each tokenizer is
 * timed twice over the whole text: "cold" (the first pass, word cache
 * empty) and "warm" (the second pass).
 */
#include "base.h"
#include "tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct doc {
    char *s;
    size_t n;
} doc;

static int add_doc(doc **d, size_t *n, size_t *cap, const char *s, size_t len) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        doc *nv = realloc(*d, nc * sizeof *nv);
        if (!nv) return SL_ENOMEM;
        *d = nv;
        *cap = nc;
    }
    char *c = malloc(len + 1);
    if (!c) return SL_ENOMEM;
    memcpy(c, s, len);
    c[len] = 0;
    (*d)[*n].s = c;
    (*d)[*n].n = len;
    (*n)++;
    return 0;
}

/* JSON lines: every string under "question", "answer", "text", "prompt";
 * other files: blocks of lines of about 4 KiB. */
static int read_docs(const char *path, doc **d, size_t *nd) {
    FILE *f = fopen(path, "rb");
    if (!f) return SL_ENOENT;
    size_t cap = 0, plen = strlen(path);
    int jsonl = plen > 6 && !strcmp(path + plen - 6, ".jsonl");
    char *line = NULL, *blk = NULL;
    size_t lcap = 0, bn = 0;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &lcap, f)) >= 0) {
        if (jsonl) {
            json_t *j = json_loadb(line, (size_t)len, 0, NULL);
            static const char *keys[] = {"question", "answer", "text", "prompt"};
            for (size_t k = 0; j && k < SL_ARRAY_LEN(keys) && !rc; k++) {
                json_t *v = json_object_get(j, keys[k]);
                if (json_is_string(v)) rc = add_doc(d, nd, &cap, json_string_value(v), json_string_length(v));
            }
            json_decref(j);
        } else {
            char *nb = realloc(blk, bn + (size_t)len + 1);
            if (!nb) { rc = SL_ENOMEM; break; }
            blk = nb;
            memcpy(blk + bn, line, (size_t)len);
            bn += (size_t)len;
            if (bn >= 4096) {
                rc = add_doc(d, nd, &cap, blk, bn);
                bn = 0;
            }
        }
    }
    if (!rc && bn) rc = add_doc(d, nd, &cap, blk, bn);
    free(line);
    free(blk);
    fclose(f);
    return rc;
}

static double pass(const sl_tokenizer *t, const doc *d, size_t nd, size_t *tokens) {
    uint64_t t0 = sl_now_ns();
    size_t nt = 0;
    for (size_t i = 0; i < nd; i++) {
        int32_t *ids;
        size_t n;
        if (sl_tokenizer_encode(t, d[i].s, d[i].n, &ids, &n) == 0) {
            nt += n;
            free(ids);
        }
    }
    *tokens = nt;
    return (double)(sl_now_ns() - t0) / 1e9;
}

int bench_tokenizer(int argc, char **argv) {
    const char *file = NULL;
    const char *toks[16];
    int ntok = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc && ntok < 16) toks[ntok++] = argv[++i];
        else {
            fprintf(stderr, "usage: slime-bench tokenizer [--file F] [--tokenizer DIR]...\n");
            return SL_EXIT_USAGE;
        }
    }
    const char *shared = getenv("SL_SHARED");
    if (!shared || !*shared) shared = "../shared";
    char deffile[1024];
    static char defdirs[4][1024];
    static const char *names[] = {"qwen3", "llama3", "llama2", "gpt2"};
    if (!file) {
        snprintf(deffile, sizeof deffile, "%s/data/gsm8k/train.jsonl", shared);
        file = deffile;
    }
    if (!ntok) {
        for (int k = 0; k < 4; k++) {
            struct stat st;
            snprintf(defdirs[k], sizeof defdirs[k], "%s/data/tokenizers/%s", shared, names[k]);
            if (stat(defdirs[k], &st) == 0) toks[ntok++] = defdirs[k];
        }
        if (!ntok) {
            fprintf(stderr, "slime-bench tokenizer: no tokenizers under %s/data/tokenizers (set SL_SHARED or pass --tokenizer)\n", shared);
            return SL_EXIT_USAGE;
        }
    }
    doc *d = NULL;
    size_t nd = 0, bytes = 0;
    int rc = read_docs(file, &d, &nd);
    if (rc || !nd) {
        fprintf(stderr, "slime-bench tokenizer: cannot read text from %s: %s\n", file, rc ? sl_strerror(rc) : "empty");
        return SL_EXIT_USAGE;
    }
    for (size_t i = 0; i < nd; i++) bytes += d[i].n;
    printf("{\"bench\": \"tokenizer\", \"file\": \"%s\", \"docs\": %zu, \"bytes\": %zu, \"threads\": 1, \"results\": [",
           file, nd, bytes);
    int status = 0;
    for (int k = 0; k < ntok; k++) {
        char err[SL_TOKENIZER_ERRLEN];
        sl_tokenizer *t;
        uint64_t l0 = sl_now_ns();
        if ((rc = sl_tokenizer_load(toks[k], &t, err, sizeof err))) {
            fprintf(stderr, "slime-bench tokenizer: %s\n", err);
            status = SL_EXIT_USAGE;
            continue;
        }
        double load_s = (double)(sl_now_ns() - l0) / 1e9;
        size_t nt;
        double cold = pass(t, d, nd, &nt);
        double warm = pass(t, d, nd, &nt);
        const char *slash = strrchr(toks[k], '/');
        printf("%s{\"tokenizer\": \"%s\", \"load_s\": %.3f, \"tokens\": %zu, \"bytes_per_token\": %.2f,"
               " \"mb_per_s_cold\": %.2f, \"mb_per_s\": %.2f}",
               k ? ", " : "", slash && slash[1] ? slash + 1 : toks[k], load_s, nt, nt ? (double)bytes / (double)nt : 0.0,
               (double)bytes / 1e6 / cold, (double)bytes / 1e6 / warm);
        fflush(stdout);
        sl_tokenizer_free(t);
    }
    printf("]}\n");
    for (size_t i = 0; i < nd; i++) free(d[i].s);
    free(d);
    return status;
}
