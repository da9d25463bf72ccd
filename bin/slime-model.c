/*
 * slime-model — look at, tokenize with, score with and sample from a
 * Hugging Face model folder, using the library's kernels only:
 *
 *   slime-model info DIR
 *   slime-model tokenize DIR_OR_TOKENIZER_FILE [--decode]
 *   slime-model score DIR [--max-len N] [--logits]
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
#include "model.h"
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
    "       slime-model score DIR [--max-len N] [--logits]          (JSON lines on stdin)\n"
    "       slime-model generate DIR --prompt TEXT [--chat] [--max-tokens N]\n"
    "                            [--temperature T] [--top-p P] [--top-k K] [--seed S] [--json]\n";

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
static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, double lo, double hi, double *out) {
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

/* ------------------------------------------------------------------ score */

static int load_model(const char *dir, int max_tokens, sl_model **m) {
    char err[SL_MODEL_ERRLEN];
    int rc = sl_model_load_hf(dir, sl_ops_cpu(), max_tokens, m, err, sizeof err);
    if (rc) fprintf(stderr, "slime-model: %s\n", err[0] ? err : sl_strerror(rc));
    return rc;
}

typedef struct score_ctx {
    sl_model *m;
    int max_len;
    float *lp;
    int32_t *cu;
    float *logits; /* --logits: (max_len, vocab) */
} score_ctx;

static int score_line(void *vctx, json_t *obj, size_t lineno) {
    score_ctx *c = vctx;
    json_t *ids = json_object_get(obj, "ids");
    if (!ids) return fail_with(SL_EXIT_USAGE, "stdin line %zu: expected {\"ids\": [...]}", lineno);
    int32_t *v;
    size_t n;
    const char *why;
    if (ids_from_json(ids, &v, &n, &why)) return fail_with(SL_EXIT_USAGE, "stdin line %zu: %s", lineno, why);
    int rc = SL_EXIT_OK;
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        if (v[i] >= c->m->cfg.vocab_size) {
            rc = fail_with(SL_EXIT_USAGE, "stdin line %zu: id %d at position %zu is outside the model's vocabulary (%d)",
                           lineno, (int)v[i], i, c->m->cfg.vocab_size);
            goto done;
        }
    if (n > (size_t)c->max_len) {
        rc = fail_with(SL_EXIT_USAGE, "stdin line %zu: %zu ids, more than the %d this run scores (--max-len)", lineno,
                       n, c->max_len);
        goto done;
    }
    if (n >= 2) {
        int32_t cu[2] = {0, (int32_t)n};
        int e = sl_model_forward(c->m, v, cu, 1, NULL, c->lp, NULL, NULL);
        if (e) {
            rc = fail_with(exit_of(e), "stdin line %zu: forward failed: %s", lineno, sl_strerror(e));
            goto done;
        }
        for (size_t i = 0; i + 1 < n; i++) json_array_append_new(out, json_real(c->lp[i]));
    }
    json_t *o = json_pack("{s:O}", "logprobs", out);
    if (o && c->logits && n >= 1) {
        /* every position's logits (n, vocab), for comparing with other
         * implementations (tests/gpu/check_hf_export.py) */
        int32_t cu[2] = {0, (int32_t)n};
        int e = sl_model_forward_logits(c->m, v, cu, 1, c->logits);
        if (e) {
            json_decref(o);
            rc = fail_with(exit_of(e), "stdin line %zu: forward failed: %s", lineno, sl_strerror(e));
            goto done;
        }
        size_t V = (size_t)c->m->cfg.vocab_size;
        json_t *rows = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *row = json_array();
            for (size_t k = 0; k < V; k++) json_array_append_new(row, json_real(c->logits[i * V + k]));
            json_array_append_new(rows, row);
        }
        json_object_set_new(o, "logits", rows);
    }
    if (!o || put_line(o)) rc = fail_with(SL_EXIT_FAIL, "stdout: write failed");
    json_decref(o);
done:
    json_decref(out);
    free(v);
    return rc;
}

static int cmd_score(int argc, char **argv) {
    const char *dir = NULL;
    long max_len = 0;
    int want_logits = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--logits")) {
            want_logits = 1;
        } else if (!strcmp(argv[i], "--max-len")) {
            if (i + 1 >= argc || parse_long(argv[++i], 2, 1 << 20, &max_len))
                return usage("score: --max-len needs an integer in [2, 1048576]");
        } else if (argv[i][0] == '-') return usage("score: unknown option");
        else if (!dir) dir = argv[i];
        else return usage("score takes one folder");
    }
    if (!dir) return usage("score needs a model folder");
    if (!is_dir(dir)) return fail_with(SL_EXIT_USAGE, "%s: not a folder", dir);
    /* size the activations for the longest sequence we accept */
    sl_hf_config cfg;
    char err[SL_HF_ERRLEN];
    int rc = sl_hf_config_load(&cfg, dir, err, sizeof err);
    if (rc) return fail_with(exit_of(rc), "%s", err);
    int maxpos = cfg.max_position_embeddings;
    sl_hf_config_fini(&cfg);
    if (!max_len) max_len = maxpos < 2048 ? maxpos : 2048;
    if (max_len > maxpos) max_len = maxpos;
    score_ctx c = {0};
    c.max_len = (int)max_len;
    rc = load_model(dir, c.max_len, &c.m);
    if (rc) return exit_of(rc);
    c.lp = malloc((size_t)c.max_len * sizeof *c.lp);
    if (want_logits) c.logits = malloc((size_t)c.max_len * (size_t)c.m->cfg.vocab_size * sizeof *c.logits);
    if (!c.lp || (want_logits && !c.logits)) rc = fail_with(SL_EXIT_FAIL, "out of memory");
    else rc = each_line(score_line, &c);
    free(c.lp);
    free(c.logits);
    sl_model_free(c.m);
    return rc;
}

/* --------------------------------------------------------------- generate */

typedef struct gen_opts {
    const char *dir, *prompt;
    int chat, json;
    long max_tokens;
    sl_sampler_cfg s;
} gen_opts;

static int parse_gen(int argc, char **argv, gen_opts *o) {
    memset(o, 0, sizeof *o);
    sl_sampler_cfg_default(&o->s);
    o->max_tokens = 128;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        long l;
        if (!strcmp(a, "--chat")) o->chat = 1;
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--prompt")) {
            if (!v) return usage("generate: --prompt needs a text");
            o->prompt = v, i++;
        } else if (!strcmp(a, "--max-tokens")) {
            if (!v || parse_long(v, 0, 1 << 20, &l)) return usage("generate: --max-tokens needs an integer in [0, 1048576]");
            o->max_tokens = l, i++;
        } else if (!strcmp(a, "--temperature")) {
            if (!v || parse_float(v, 0, 1000, &d)) return usage("generate: --temperature needs a number in [0, 1000]");
            o->s.temperature = (float)d, i++;
        } else if (!strcmp(a, "--top-p")) {
            if (!v || parse_float(v, 0, 1, &d) || d <= 0) return usage("generate: --top-p needs a number in (0, 1]");
            o->s.top_p = (float)d, i++;
        } else if (!strcmp(a, "--top-k")) {
            if (!v || parse_long(v, 0, INT32_MAX, &l)) return usage("generate: --top-k needs an integer >= 0");
            o->s.top_k = (int)l, i++;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            if (!v || v[0] == '-' || (o->s.seed = strtoull(v, &end, 10), errno || end == v || *end))
                return usage("generate: --seed needs a non-negative integer");
            i++;
        } else if (a[0] == '-') {
            return usage("generate: unknown option");
        } else if (!o->dir) {
            o->dir = a;
        } else {
            return usage("generate takes one folder");
        }
    }
    if (!o->dir) return usage("generate needs a model folder");
    if (!o->prompt) return usage("generate needs --prompt TEXT");
    return 0;
}

/* Render and tokenize the prompt. */
static int prompt_ids(const gen_opts *o, const sl_tokenizer *tok, const char *model_type, int32_t **ids,
                      size_t *n) {
    char *text = NULL;
    size_t len = strlen(o->prompt);
    const char *src = o->prompt;
    if (o->chat) {
        sl_chat_format fmt = sl_chat_format_from_template(sl_tokenizer_chat_template(tok));
        if (fmt == SL_CHAT_NONE && sl_chat_format_from_name(model_type, &fmt) != SL_OK) fmt = SL_CHAT_NONE;
        sl_chat_msg msg = {.role = "user", .content = o->prompt};
        int rc = sl_chat_render(fmt, &msg, 1, NULL, &text, &len);
        if (rc) return fail_with(exit_of(rc), "chat template: %s", sl_strerror(rc));
        src = text;
    }
    int rc = sl_tokenizer_encode(tok, src, len, ids, n);
    free(text);
    if (rc) return fail_with(exit_of(rc), "encode: %s", sl_strerror(rc));
    if (*n == 0) {
        free(*ids);
        return fail_with(SL_EXIT_USAGE, "the prompt encodes to no tokens");
    }
    return 0;
}

static int is_stop(int32_t t, const sl_model *m, const sl_tokenizer *tok) {
    if (t == sl_tokenizer_eos_id(tok)) return 1;
    for (int i = 0; i < m->cfg.n_eos; i++)
        if (t == m->cfg.eos_token_ids[i]) return 1;
    return 0;
}

static int cmd_generate(int argc, char **argv) {
    gen_opts o;
    int rc = parse_gen(argc, argv, &o);
    if (rc) return rc;
    if (!is_dir(o.dir)) return fail_with(SL_EXIT_USAGE, "%s: not a folder", o.dir);
    sl_hf_config cfg;
    char err[SL_HF_ERRLEN];
    rc = sl_hf_config_load(&cfg, o.dir, err, sizeof err);
    if (rc) return fail_with(exit_of(rc), "%s", err);
    sl_tokenizer *tok = NULL;
    sl_model *m = NULL;
    sl_kv_cache *kv = NULL;
    int32_t *ids = NULL, *gen = NULL;
    float *logits = NULL, *lps = NULL;
    void *scratch = NULL;
    size_t n = 0, ng = 0;
    const char *finish = "length";
    if ((rc = load_tokenizer(o.dir, &tok))) {
        rc = exit_of(rc);
        goto out;
    }
    if ((rc = prompt_ids(&o, tok, cfg.model_type, &ids, &n))) goto out;
    int maxpos = cfg.max_position_embeddings;
    if (n >= (size_t)maxpos) {
        rc = fail_with(SL_EXIT_USAGE, "the prompt has %zu tokens, the model at most %d positions", n, maxpos);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= cfg.vocab_size) {
            rc = fail_with(SL_EXIT_USAGE, "prompt token %d is outside the model's vocabulary (%d): tokenizer and model do not match",
                           (int)ids[i], cfg.vocab_size);
            goto out;
        }
    size_t total = n + (size_t)o.max_tokens;
    if (total > (size_t)maxpos) total = (size_t)maxpos;
    if ((rc = load_model(o.dir, (int)n, &m))) {
        rc = exit_of(rc);
        goto out;
    }
    int V = m->cfg.vocab_size;
    if (sl_kv_cache_new(m, 1, (int)total, &kv) != SL_OK) {
        rc = fail_with(SL_EXIT_FAIL, "cannot allocate a KV cache of %zu tokens", total);
        goto out;
    }
    logits = malloc((size_t)V * sizeof *logits);
    scratch = malloc(sl_sampler_scratch_bytes(V));
    gen = malloc(((size_t)o.max_tokens + 1) * sizeof *gen);
    lps = malloc(((size_t)o.max_tokens + 1) * sizeof *lps);
    if (!logits || !scratch || !gen || !lps) {
        rc = fail_with(SL_EXIT_FAIL, "out of memory");
        goto out;
    }
    int e = sl_model_prefill(m, kv, 0, ids, (int)n, logits);
    if (e) {
        rc = fail_with(exit_of(e), "prefill failed: %s", sl_strerror(e));
        goto out;
    }
    for (ng = 0; ng < (size_t)o.max_tokens;) {
        if (n + ng >= total) break; /* out of positions */
        sl_sample s;
        e = sl_sample_logits(logits, V, &o.s, 0, ng, scratch, &s);
        if (e) {
            rc = fail_with(SL_EXIT_FAIL, "sampling failed: %s (non-finite logits?)", sl_strerror(e));
            goto out;
        }
        gen[ng] = s.token;
        lps[ng] = s.logprob;
        ng++;
        if (is_stop(s.token, m, tok)) {
            finish = "stop";
            break;
        }
        if (ng == (size_t)o.max_tokens || n + ng >= total) break;
        int32_t slot = 0;
        e = sl_model_decode(m, kv, &slot, &s.token, 1, logits);
        if (e) {
            rc = fail_with(exit_of(e), "decode failed: %s", sl_strerror(e));
            goto out;
        }
    }
    char *text = NULL;
    size_t tlen = 0;
    e = sl_tokenizer_decode(tok, gen, ng, 1, &text, &tlen);
    if (e) {
        rc = fail_with(exit_of(e), "decode of the output failed: %s", sl_strerror(e));
        goto out;
    }
    if (o.json) {
        json_t *lp = json_array();
        for (size_t i = 0; i < ng; i++) json_array_append_new(lp, json_real(lps[i]));
        json_t *j = json_pack("{s:s%,s:o,s:o,s:i,s:s}", "text", text, tlen, "tokens", ids_to_json(gen, ng),
                              "logprobs", lp, "prompt_tokens", (int)n, "finish_reason", finish);
        if (!j || put_line(j)) rc = fail_with(SL_EXIT_FAIL, "stdout: write failed");
        json_decref(j);
    } else {
        fwrite(text, 1, tlen, stdout);
        fputc('\n', stdout);
    }
    free(text);
    if (fflush(stdout) != 0) rc = fail_with(SL_EXIT_FAIL, "stdout: %s", strerror(errno));
out:
    free(lps);
    free(gen);
    free(scratch);
    free(logits);
    sl_kv_cache_free(kv);
    sl_model_free(m);
    free(ids);
    sl_tokenizer_free(tok);
    sl_hf_config_fini(&cfg);
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
    if (!strcmp(cmd, "score")) return cmd_score(argc - 2, argv + 2);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 2, argv + 2);
    return usage("unknown command");
}
