/*
 * slime-model — look at, tokenize with, score with and sample from a
 * Hugging Face model folder, using the library's kernels only:
 *
 *   slime-model info DIR
 *   slime-model tokenize DIR_OR_TOKENIZER_FILE [--decode]
 *   slime-model score DIR
 *   slime-model generate DIR --prompt TEXT [--chat] [--max-tokens N]
 *                        [--temperature T] [--top-p P] [--top-k K] [--seed S]
 *
 * tokenize and score read JSON lines on stdin and write JSON lines on
 * stdout. Argument parsing and wiring only: the work is in kernels/.
 * Exit codes: 0 ok, 2 bad arguments / bad files / bad input line, 1 other
 * failures (out of memory, write errors).
 */
#include "base.h"
#include "chat.h"
#include "safetensors.h"
#include "sampler.h"
#include "tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *usage_text =
    "usage: slime-model info DIR\n"
    "       slime-model tokenize DIR_OR_TOKENIZER_FILE [--decode]   (JSON lines on stdin)\n"
    "       slime-model score DIR                                   (JSON lines on stdin)\n"
    "       slime-model generate DIR --prompt TEXT [--chat] [--max-tokens N]\n"
    "                            [--temperature T] [--top-p P] [--top-k K] [--seed S]\n";

static int usage(const char *why) {
    if (why) fprintf(stderr, "slime-model: %s\n", why);
    fputs(usage_text, stderr);
    return SL_EXIT_USAGE;
}

static int fail_with(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_with(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("slime-model: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* Exit code for a library error: bad input is 2, the rest 1. */
static int exit_of(int err) {
    switch (err) {
    case SL_ENOMEM:
    case SL_EIO: return SL_EXIT_FAIL;
    default: return SL_EXIT_USAGE;
    }
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int file_in(const char *dir, const char *name, char *buf, size_t len) {
    snprintf(buf, len, "%s/%s", dir, name);
    struct stat sb;
    return stat(buf, &sb) == 0;
}

/* Print one JSON value as a line on stdout; 0 on success. */
static int put_line(json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT);
    if (!s) return -1;
    int rc = puts(s) < 0 ? -1 : 0;
    free(s);
    return rc;
}

/* Read a strictly parsed argument. */
__attribute__((unused)) static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

__attribute__((unused)) static int parse_float(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* -------------------------------------------------------------------- info */

static void info_config(const char *dir, json_t *out, int *bad) {
    char p[4096];
    if (!file_in(dir, "config.json", p, sizeof p)) {
        json_object_set_new(out, "config", json_null());
        return;
    }
    json_error_t je;
    json_t *cfg = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    if (!cfg || !json_is_object(cfg)) {
        fprintf(stderr, "slime-model: %s: not a JSON object: %s (line %d)\n", p,
                cfg ? "wrong type" : je.text, je.line);
        json_decref(cfg);
        *bad = 1;
        return;
    }
    static const char *keys[] = {"model_type",          "hidden_size",         "intermediate_size",
                                 "num_hidden_layers",   "num_attention_heads", "num_key_value_heads",
                                 "head_dim",            "vocab_size",          "max_position_embeddings",
                                 "rope_theta",          "rms_norm_eps",        "tie_word_embeddings",
                                 "torch_dtype",         "dtype",               "rope_scaling"};
    json_t *c = json_object();
    json_t *arch = json_object_get(cfg, "architectures");
    if (json_is_array(arch) && json_is_string(json_array_get(arch, 0)))
        json_object_set(out, "architecture", json_array_get(arch, 0));
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(cfg, keys[i]);
        if (v) json_object_set(c, keys[i], v);
    }
    json_object_set_new(out, "config", c);
    json_decref(cfg);
}

static int info_weights(const char *dir, json_t *out) {
    char err[SL_ST_ERRLEN];
    sl_safetensors *st;
    int rc = sl_safetensors_open(dir, &st, err, sizeof err);
    if (rc == SL_ENOENT && strstr(err, "no model.safetensors")) {
        json_object_set_new(out, "weights", json_null());
        return SL_OK;
    }
    if (rc) {
        fprintf(stderr, "slime-model: %s\n", err);
        return rc;
    }
    int64_t counts[3] = {0, 0, 0};
    size_t n = sl_safetensors_count(st);
    for (size_t i = 0; i < n; i++) {
        const sl_st_tensor *t = sl_safetensors_at(st, i);
        counts[t->dtype] += t->numel;
    }
    json_t *dt = json_object();
    for (int d = 0; d < 3; d++)
        if (counts[d]) json_object_set_new(dt, sl_dtype_name((sl_dtype)d), json_integer(counts[d]));
    json_object_set_new(out, "weights",
                        json_pack("{s:i,s:i,s:I,s:o}", "files", sl_safetensors_shard_count(st),
                                  "tensors", (int)n, "parameters",
                                  (json_int_t)sl_safetensors_total_numel(st), "dtypes", dt));
    sl_safetensors_close(st);
    return SL_OK;
}

static json_t *token_json(const sl_tokenizer *tok, int32_t id) {
    if (id < 0) return json_null();
    size_t len = 0;
    const char *s = sl_tokenizer_id_to_token(tok, id, &len);
    return json_pack("{s:i,s:s%}", "id", (int)id, "token", s ? s : "", s ? len : (size_t)0);
}

static int has_tokenizer_files(const char *dir) {
    char p[4096];
    return file_in(dir, "tokenizer.json", p, sizeof p) || file_in(dir, "encoder.json", p, sizeof p);
}

static int info_tokenizer(const char *dir, json_t *out) {
    if (!has_tokenizer_files(dir)) {
        json_object_set_new(out, "tokenizer", json_null());
        return SL_OK;
    }
    char err[SL_TOKENIZER_ERRLEN];
    sl_tokenizer *tok;
    int rc = sl_tokenizer_load(dir, &tok, err, sizeof err);
    if (rc) {
        fprintf(stderr, "slime-model: %s\n", err);
        return rc;
    }
    const char *tmpl = sl_tokenizer_chat_template(tok);
    json_t *t = json_pack("{s:s,s:i,s:o,s:o,s:o,s:s}", "kind", sl_tokenizer_kind(tok), "vocab_size",
                          (int)sl_tokenizer_vocab_size(tok), "bos", token_json(tok, sl_tokenizer_bos_id(tok)),
                          "eos", token_json(tok, sl_tokenizer_eos_id(tok)), "pad",
                          token_json(tok, sl_tokenizer_pad_id(tok)), "chat_format",
                          sl_chat_format_name(sl_chat_format_from_template(tmpl)));
    json_t *sp = json_array();
    int32_t vs = sl_tokenizer_vocab_size(tok);
    for (int32_t id = 0; id < vs; id++)
        if (sl_tokenizer_is_special(tok, id)) json_array_append_new(sp, token_json(tok, id));
    json_object_set_new(t, "special_tokens", sp);
    json_object_set_new(out, "tokenizer", t);
    sl_tokenizer_free(tok);
    return SL_OK;
}

static int cmd_info(int argc, char **argv) {
    if (argc != 1) return usage("info takes one folder");
    const char *dir = argv[0];
    if (!is_dir(dir)) return fail_with(SL_EXIT_USAGE, "%s: not a folder", dir);
    json_t *out = json_pack("{s:s}", "path", dir);
    int bad = 0;
    info_config(dir, out, &bad);
    int rc = info_weights(dir, out);
    if (!rc) rc = info_tokenizer(dir, out);
    if (rc || bad) {
        json_decref(out);
        return rc ? exit_of(rc) : SL_EXIT_USAGE;
    }
    char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(out);
    if (!s) return SL_EXIT_FAIL;
    puts(s);
    free(s);
    return SL_EXIT_OK;
}

/* --------------------------------------------------------------- tokenize */

static int load_tokenizer(const char *path, sl_tokenizer **tok) {
    char err[SL_TOKENIZER_ERRLEN];
    int rc = sl_tokenizer_load(path, tok, err, sizeof err);
    if (rc) fprintf(stderr, "slime-model: %s\n", err);
    return rc;
}

/* Parse "ids": an array of integers in [0, INT32_MAX]. */
static int ids_from_json(json_t *arr, int32_t **ids, size_t *n, const char **why) {
    *ids = NULL;
    *n = 0;
    if (!json_is_array(arr)) {
        *why = "\"ids\" is not an array";
        return -1;
    }
    size_t m = json_array_size(arr);
    int32_t *v = malloc((m ? m : 1) * sizeof *v);
    if (!v) {
        *why = "out of memory";
        return -1;
    }
    for (size_t i = 0; i < m; i++) {
        json_t *e = json_array_get(arr, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX) {
            free(v);
            *why = "\"ids\" holds something other than non-negative 32-bit integers";
            return -1;
        }
        v[i] = (int32_t)json_integer_value(e);
    }
    *ids = v;
    *n = m;
    return 0;
}

static json_t *ids_to_json(const int32_t *ids, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n && a; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

typedef int (*line_fn)(void *ctx, json_t *obj, size_t lineno);

/* Read JSON lines from stdin, call fn on each object; blank lines are
 * skipped. A line that is not a JSON object ends the run with exit 2. */
static int each_line(line_fn fn, void *ctx) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t lineno = 0;
    int rc = SL_EXIT_OK;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t k = (size_t)len;
        while (k && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' ' || line[k - 1] == '\t')) k--;
        size_t b = 0;
        while (b < k && (line[b] == ' ' || line[b] == '\t')) b++;
        if (b == k) continue;
        json_error_t je;
        json_t *obj = json_loadb(line + b, k - b, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
        if (!obj || !json_is_object(obj)) {
            fprintf(stderr, "slime-model: stdin line %zu: %s%s\n", lineno,
                    obj ? "not a JSON object" : "invalid JSON: ", obj ? "" : je.text);
            json_decref(obj);
            rc = SL_EXIT_USAGE;
            break;
        }
        rc = fn(ctx, obj, lineno);
        json_decref(obj);
        if (rc) break;
    }
    free(line);
    if (fflush(stdout) != 0 && !rc) rc = fail_with(SL_EXIT_FAIL, "stdout: %s", strerror(errno));
    return rc;
}

typedef struct tok_ctx {
    sl_tokenizer *tok;
    int decode_only;
} tok_ctx;

static int tokenize_line(void *vctx, json_t *obj, size_t lineno) {
    tok_ctx *c = vctx;
    json_t *text = json_object_get(obj, "text");
    json_t *ids = json_object_get(obj, "ids");
    if (text && !c->decode_only) {
        if (!json_is_string(text))
            return fail_with(SL_EXIT_USAGE, "stdin line %zu: \"text\" is not a string", lineno);
        int32_t *out;
        size_t n;
        int rc = sl_tokenizer_encode(c->tok, json_string_value(text), json_string_length(text), &out, &n);
        if (rc) return fail_with(exit_of(rc), "stdin line %zu: encode: %s", lineno, sl_strerror(rc));
        json_t *o = json_pack("{s:o}", "ids", ids_to_json(out, n));
        free(out);
        int w = o ? put_line(o) : -1;
        json_decref(o);
        return w ? fail_with(SL_EXIT_FAIL, "stdout: write failed") : 0;
    }
    if (ids) {
        int32_t *v;
        size_t n;
        const char *why;
        if (ids_from_json(ids, &v, &n, &why)) return fail_with(SL_EXIT_USAGE, "stdin line %zu: %s", lineno, why);
        char *s;
        size_t len;
        int rc = sl_tokenizer_decode(c->tok, v, n, 0, &s, &len);
        free(v);
        if (rc)
            return fail_with(exit_of(rc), "stdin line %zu: decode: %s%s", lineno, sl_strerror(rc),
                             rc == SL_ERANGE ? " (an id outside the vocabulary)" : "");
        json_t *o = json_pack("{s:s%}", "text", s, len);
        free(s);
        int w = o ? put_line(o) : -1;
        json_decref(o);
        return w ? fail_with(SL_EXIT_FAIL, "stdout: write failed") : 0;
    }
    return fail_with(SL_EXIT_USAGE, "stdin line %zu: expected %s", lineno,
                     c->decode_only ? "{\"ids\": [...]}" : "{\"text\": ...} or {\"ids\": [...]}");
}

static int cmd_tokenize(int argc, char **argv) {
    tok_ctx c = {0};
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--decode")) c.decode_only = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return usage("tokenize: unknown option");
        else if (!path) path = argv[i];
        else return usage("tokenize takes one path");
    }
    if (!path) return usage("tokenize needs a folder or tokenizer file");
    int rc = load_tokenizer(path, &c.tok);
    if (rc) return exit_of(rc);
    rc = each_line(tokenize_line, &c);
    sl_tokenizer_free(c.tok);
    return rc;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv) {
    sl_log_init("slime-model", SL_LOG_WARN);
    if (argc < 2) return usage(NULL);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        fputs(usage_text, stdout);
        return SL_EXIT_OK;
    }
    if (!strcmp(cmd, "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 2, argv + 2);
    return usage("unknown command");
}
