/*
 * task_arith.c — the built-in arithmetic task: problem generation, the
 * two splits, the JSONL writer, and the tiny model's tokenizer and config
 * files (see task_arith.h for the formats).
 */
#include "task_arith.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

/* ------------------------------------------------------------- config */

void sl_arith_cfg_init(sl_arith_cfg *cfg) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->min_digits = 1;
    cfg->max_digits = 2;
    strcpy(cfg->ops, "+-");
    cfg->style = SL_ARITH_TERSE;
    cfg->target = SL_ARITH_PLAIN;
    cfg->heldout_permille = 100;
}

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int sl_arith_cfg_validate(const sl_arith_cfg *c, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!c) return fail(err, errlen, SL_EINVAL, "no config");
    if (c->min_digits < 1 || c->min_digits > SL_ARITH_MAX_DIGITS || c->max_digits < c->min_digits ||
        c->max_digits > SL_ARITH_MAX_DIGITS)
        return fail(err, errlen, SL_EINVAL, "digits %d..%d outside 1..%d", c->min_digits, c->max_digits,
                    SL_ARITH_MAX_DIGITS);
    size_t n = strnlen(c->ops, sizeof c->ops);
    if (n == 0 || n == sizeof c->ops) return fail(err, errlen, SL_EINVAL, "ops must be 1..3 of \"+-*\"");
    for (size_t i = 0; i < n; i++) {
        if (!strchr("+-*", c->ops[i])) return fail(err, errlen, SL_EINVAL, "unknown operator '%c'", c->ops[i]);
        if (memchr(c->ops, c->ops[i], i)) return fail(err, errlen, SL_EINVAL, "operator '%c' repeated", c->ops[i]);
    }
    if (c->style != SL_ARITH_TERSE && c->style != SL_ARITH_WORDS) return fail(err, errlen, SL_EINVAL, "bad style");
    if (c->target != SL_ARITH_PLAIN && c->target != SL_ARITH_REVERSED) return fail(err, errlen, SL_EINVAL, "bad target");
    if (c->heldout_permille < 1 || c->heldout_permille > 999)
        return fail(err, errlen, SL_EINVAL, "heldout_permille %d outside 1..999", c->heldout_permille);
    if (c->tool_permille < 0 || c->tool_permille > 1000)
        return fail(err, errlen, SL_EINVAL, "tool_permille %d outside 0..1000", c->tool_permille);
    if (c->sloppy_permille < 0 || c->sloppy_permille > 1000)
        return fail(err, errlen, SL_EINVAL, "sloppy_permille %d outside 0..1000", c->sloppy_permille);
    return 0;
}

/* ------------------------------------------------------------- problems */

static const int64_t POW10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000};

int sl_arith_format(const sl_arith_cfg *cfg, int64_t a, char op, int64_t b, sl_arith_item *it) {
    if (!cfg || !it || a < 0 || b < 0 || a >= POW10[SL_ARITH_MAX_DIGITS] || b >= POW10[SL_ARITH_MAX_DIGITS])
        return SL_EINVAL;
    int64_t r;
    switch (op) {
    case '+': r = a + b; break;
    case '-': r = a - b; break;
    case '*': r = a * b; break;
    default: return SL_EINVAL;
    }
    memset(it, 0, sizeof *it);
    it->a = a;
    it->b = b;
    it->op = op;
    it->answer = r;
    if (cfg->style == SL_ARITH_WORDS)
        snprintf(it->prompt, sizeof it->prompt, "What is %" PRId64 "%c%" PRId64 "?", a, op, b);
    else
        snprintf(it->prompt, sizeof it->prompt, "%" PRId64 "%c%" PRId64 "=", a, op, b);
    snprintf(it->label, sizeof it->label, "%" PRId64, r);
    if (cfg->target == SL_ARITH_REVERSED) {
        char rev[24];
        const char *d = it->label[0] == '-' ? it->label + 1 : it->label;
        size_t n = strlen(d), k = 0;
        for (size_t i = 0; i < n; i++) rev[k++] = d[n - 1 - i];
        if (it->label[0] == '-') rev[k++] = '-';
        rev[k] = 0;
        snprintf(it->target, sizeof it->target, "%s\n#### %s", rev, it->label);
    } else {
        snprintf(it->target, sizeof it->target, "#### %s", it->label);
    }
    return 0;
}

int64_t sl_arith_carryless(const sl_arith_item *it) {
    if (!it) return 0;
    if (it->op == '*' || it->answer < 0 || it->a < 0 || it->b < 0) return it->answer;
    int64_t a = it->a, b = it->b, r = 0, p = 1;
    while (a > 0 || b > 0) {
        int64_t da = a % 10, db = b % 10;
        int64_t d = it->op == '+' ? (da + db) % 10 : (da >= db ? da - db : db - da);
        r += d * p;
        p *= 10;
        a /= 10;
        b /= 10;
    }
    return r;
}

int sl_arith_make_sloppy(const sl_arith_cfg *cfg, sl_arith_item *it) {
    if (!cfg || !it) return SL_EINVAL;
    if (it->op == '*' || it->answer < 0) return 0;
    char ans[24], rev[24];
    snprintf(ans, sizeof ans, "%" PRId64, sl_arith_carryless(it));
    size_t n = strlen(ans);
    for (size_t i = 0; i < n; i++) rev[i] = ans[n - 1 - i];
    rev[n] = 0;
    if (cfg->target == SL_ARITH_REVERSED) snprintf(it->target, sizeof it->target, "%s\n#### %s", rev, ans);
    else snprintf(it->target, sizeof it->target, "#### %s", ans);
    return 0;
}

int sl_arith_make_tool(sl_arith_item *it) {
    if (!it) return SL_EINVAL;
    snprintf(it->target, sizeof it->target, "<calc>%" PRId64 "%c%" PRId64 "</calc><result>%s</result>#### %s", it->a,
             it->op, it->b, it->label, it->label);
    return 0;
}

sl_arith_split sl_arith_split_of(const sl_arith_cfg *cfg, int64_t a, char op, int64_t b) {
    char key[48];
    int n = snprintf(key, sizeof key, "%" PRId64 "%c%" PRId64, a, op, b);
    uint64_t h = sl_hash64(key, (size_t)(n > 0 ? n : 0));
    int permille = cfg ? cfg->heldout_permille : 100;
    return (int)(h % 1000) < permille ? SL_ARITH_HELDOUT : SL_ARITH_TRAIN;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t uniform(uint64_t *s, uint64_t bound) {
    uint64_t rem = (0 - bound) % bound;
    uint64_t r;
    do r = splitmix64(s);
    while (rem && r > UINT64_MAX - rem);
    return r % bound;
}

static int64_t draw_operand(uint64_t *st, const sl_arith_cfg *c) {
    int d = c->min_digits + (int)uniform(st, (uint64_t)(c->max_digits - c->min_digits + 1));
    int64_t lo = d == 1 ? 0 : POW10[d - 1], hi = POW10[d];
    return lo + (int64_t)uniform(st, (uint64_t)(hi - lo));
}

/* Open-addressing set of 64-bit problem keys (held-out de-duplication). */
typedef struct kset {
    uint64_t *slot;
    size_t cap;
} kset;

static uint64_t problem_key(int64_t a, char op, int64_t b) {
    return ((uint64_t)a << 34) ^ ((uint64_t)b << 2) ^ (uint64_t)(op == '+' ? 1 : op == '-' ? 2 : 3);
}

/* Returns 1 when added, 0 when present. Key 0 never occurs (op bits). */
static int kset_add(kset *s, uint64_t k) {
    uint64_t h = k * 0x9E3779B97F4A7C15ull;
    for (size_t i = (size_t)(h >> 20) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == k) return 0;
        if (!s->slot[i]) {
            s->slot[i] = k;
            return 1;
        }
    }
}

int sl_arith_generate(const sl_arith_cfg *cfg, sl_arith_split split, uint64_t seed, size_t n,
                      sl_arith_item *out) {
    if (sl_arith_cfg_validate(cfg, NULL, 0) || (n && !out) || (split != SL_ARITH_TRAIN && split != SL_ARITH_HELDOUT))
        return SL_EINVAL;
    if (n > (SIZE_MAX >> 8)) return SL_ERANGE;
    kset seen = {0};
    if (split == SL_ARITH_HELDOUT && n) {
        seen.cap = 16;
        while (seen.cap < 2 * n) seen.cap <<= 1;
        if (!(seen.slot = calloc(seen.cap, sizeof *seen.slot))) return SL_ENOMEM;
    }
    uint64_t st = seed ^ (0xD1B54A32D192ED03ull * ((uint64_t)split + 1));
    size_t nops = strlen(cfg->ops), got = 0;
    uint64_t budget = 1000 * (uint64_t)n + 100000;
    int rc = 0;
    while (got < n) {
        if (budget-- == 0) {
            rc = SL_ERANGE;
            break;
        }
        char op = cfg->ops[uniform(&st, nops)];
        int64_t a = draw_operand(&st, cfg), b = draw_operand(&st, cfg);
        if (op == '-' && !cfg->negative && a < b) {
            int64_t t = a;
            a = b;
            b = t;
        }
        if (sl_arith_split_of(cfg, a, op, b) != split) continue;
        if (split == SL_ARITH_HELDOUT && !kset_add(&seen, problem_key(a, op, b))) continue;
        if ((rc = sl_arith_format(cfg, a, op, b, &out[got]))) break;
        if (split == SL_ARITH_TRAIN && cfg->sloppy_permille > 0) {
            /* a stream of its own (item index), so the problems do not change */
            uint64_t ss = seed ^ 0x5107C4A7E5ull ^ ((uint64_t)got * 0x9E3779B97F4A7C15ull);
            if ((int)(splitmix64(&ss) % 1000) < cfg->sloppy_permille) sl_arith_make_sloppy(cfg, &out[got]);
        }
        if (split == SL_ARITH_TRAIN && cfg->tool_permille > 0) {
            uint64_t ss = seed ^ 0x7001CA1Cull ^ ((uint64_t)got * 0xD1B54A32D192ED03ull);
            if ((int)(splitmix64(&ss) % 1000) < cfg->tool_permille) sl_arith_make_tool(&out[got]);
        }
        got++;
    }
    free(seen.slot);
    return rc;
}

/* ------------------------------------------------------------- files */

static int write_json_atomic(const char *path, json_t *root, size_t flags, char *err, size_t errlen) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 8);
    if (!tmp) return SL_ENOMEM;
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    int rc = 0;
    if (json_dump_file(root, tmp, flags) != 0) {
        rc = fail(err, errlen, SL_EIO, "%s: cannot write", tmp);
    } else if (rename(tmp, path) != 0) {
        rc = fail(err, errlen, SL_EIO, "%s: cannot rename: %s", path, strerror(errno));
    }
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

static int ensure_dir(const char *dir, char *err, size_t errlen) {
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return 0;
        return fail(err, errlen, SL_EIO, "%s: not a directory", dir);
    }
    return fail(err, errlen, SL_EIO, "%s: cannot create: %s", dir, strerror(errno));
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int sl_arith_write_jsonl(const char *path, const sl_arith_item *items, size_t n, int with_response) {
    if (!path || (n && !items)) return SL_EINVAL;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    if (!tmp) return SL_ENOMEM;
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f) {
        free(tmp);
        return SL_EIO;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *o = json_object();
        if (!o) { rc = SL_ENOMEM; break; }
        json_object_set_new(o, "input", json_string(items[i].prompt));
        json_object_set_new(o, "label", json_string(items[i].label));
        if (with_response) json_object_set_new(o, "response", json_string(items[i].target));
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!s) { rc = SL_ENOMEM; break; }
        if (fputs(s, f) == EOF || fputc('\n', f) == EOF) rc = SL_EIO;
        free(s);
    }
    if (fclose(f) != 0 && !rc) rc = SL_EIO;
    if (!rc && rename(tmp, path) != 0) rc = SL_EIO;
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

static const char CHATML_TEMPLATE[] =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

static json_t *added_token(int id, const char *content) {
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content, "single_word", 0, "lstrip",
                     0, "rstrip", 0, "normalized", 0, "special", 1);
}

int sl_arith_write_tokenizer(const char *dir, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!dir) return fail(err, errlen, SL_EINVAL, "no folder");
    int rc = ensure_dir(dir, err, errlen);
    if (rc) return rc;
    static const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    json_t *root = NULL, *cfg = NULL;
    char *p1 = join(dir, "tokenizer.json"), *p2 = join(dir, "tokenizer_config.json");
    if (!p1 || !p2) { rc = SL_ENOMEM; goto out; }

    json_t *vocab = json_object();
    json_object_set_new(vocab, "<unk>", json_integer(SL_ARITH_UNK_ID));
    for (int ch = 0x20; ch <= 0x7e; ch++) {
        char s[2] = {(char)ch, 0};
        json_object_set_new(vocab, s, json_integer(ch - 0x20 + 1));
    }
    json_object_set_new(vocab, "\n", json_integer(SL_ARITH_NEWLINE_ID));
    json_t *added = json_array();
    for (int i = 0; i < 3; i++) json_array_append_new(added, added_token(SL_ARITH_ENDOFTEXT_ID + i, specials[i]));
    root = json_pack("{s:s, s:n, s:n, s:o, s:n, s:n, s:n, s:{s:s}, s:{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:[]}}",
                     "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer", "pre_tokenizer",
                     "post_processor", "decoder", "type", "Fuse", "model", "type", "BPE", "dropout", "unk_token",
                     "<unk>", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                     "ignore_merges", 0, "vocab", vocab, "merges");
    if (!root) { rc = SL_ENOMEM; goto out; }
    if ((rc = write_json_atomic(p1, root, JSON_INDENT(2) | JSON_ENSURE_ASCII, err, errlen))) goto out;

    json_t *atd = json_object();
    json_t *unk = json_pack("{s:s, s:b, s:b, s:b, s:b, s:b}", "content", "<unk>", "lstrip", 0, "normalized", 0,
                            "rstrip", 0, "single_word", 0, "special", 1);
    json_object_set_new(atd, "0", unk);
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", SL_ARITH_ENDOFTEXT_ID + i);
        json_object_set_new(atd, id,
                            json_pack("{s:s, s:b, s:b, s:b, s:b, s:b}", "content", specials[i], "lstrip", 0,
                                      "normalized", 0, "rstrip", 0, "single_word", 0, "special", 1));
    }
    cfg = json_pack("{s:o, s:n, s:s, s:s, s:s, s:i, s:b, s:s, s:s}", "added_tokens_decoder", atd, "bos_token",
                    "eos_token", "<|im_end|>", "pad_token", "<|endoftext|>", "unk_token", "<unk>", "model_max_length",
                    1024, "clean_up_tokenization_spaces", 0, "tokenizer_class", "PreTrainedTokenizerFast",
                    "chat_template", CHATML_TEMPLATE);
    if (!cfg) { rc = SL_ENOMEM; goto out; }
    if ((rc = write_json_atomic(p2, cfg, JSON_INDENT(2), err, errlen))) goto out;
    json_decref(cfg);
    cfg = json_pack("{s:s, s:s, s:s}", "eos_token", "<|im_end|>", "pad_token", "<|endoftext|>", "unk_token", "<unk>");
    char *p3 = join(dir, "special_tokens_map.json");
    if (!cfg || !p3) rc = SL_ENOMEM;
    else rc = write_json_atomic(p3, cfg, JSON_INDENT(2), err, errlen);
    free(p3);
out:
    if (rc == SL_ENOMEM) fail(err, errlen, rc, "out of memory");
    json_decref(root);
    json_decref(cfg);
    free(p1);
    free(p2);
    return rc;
}

void sl_arith_model_cfg_init(sl_arith_model_cfg *m) {
    if (!m) return;
    memset(m, 0, sizeof *m);
    m->model_type = "qwen3";
    m->hidden_size = 64;
    m->intermediate_size = 192;
    m->num_hidden_layers = 2;
    m->num_attention_heads = 4;
    m->num_key_value_heads = 2;
    m->head_dim = 16;
    m->max_position_embeddings = 256;
    m->rope_theta = 10000.0;
    m->tie_word_embeddings = 1;
    m->vocab_size = SL_ARITH_VOCAB_SIZE;
}

int sl_arith_write_model_config(const char *dir, const sl_arith_model_cfg *m, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    sl_arith_model_cfg def;
    if (!m) {
        sl_arith_model_cfg_init(&def);
        m = &def;
    }
    if (!dir) return fail(err, errlen, SL_EINVAL, "no folder");
    int qwen3, qwen2 = 0;
    if (m->model_type && !strcmp(m->model_type, "qwen3")) qwen3 = 1;
    else if (m->model_type && !strcmp(m->model_type, "llama")) qwen3 = 0;
    else if (m->model_type && !strcmp(m->model_type, "qwen2")) qwen3 = 0, qwen2 = 1;
    else return fail(err, errlen, SL_EINVAL, "model_type must be \"qwen3\", \"qwen2\" or \"llama\"");
    int vocab = m->vocab_size ? m->vocab_size : SL_ARITH_VOCAB_SIZE;
    if (vocab < SL_ARITH_VOCAB_SIZE || vocab > 1 << 22)
        return fail(err, errlen, SL_EINVAL, "vocab_size must be in [tokenizer size, 2^22]");
    if (m->hidden_size < 8 || m->hidden_size > 8192 || m->intermediate_size < 8 || m->intermediate_size > 32768 ||
        m->num_hidden_layers < 1 || m->num_hidden_layers > 64 || m->num_attention_heads < 1 ||
        m->num_attention_heads > 128 || m->num_key_value_heads < 1 ||
        m->num_attention_heads % m->num_key_value_heads || m->head_dim < 2 || m->head_dim % 2 || m->head_dim > 512 ||
        m->max_position_embeddings < 16 || m->max_position_embeddings > 1 << 20 || !(m->rope_theta > 0))
        return fail(err, errlen, SL_EINVAL, "bad model shape (sizes, heads dividing, even head_dim)");
    if (!qwen3 && m->head_dim * m->num_attention_heads != m->hidden_size)
        return fail(err, errlen, SL_EINVAL, "llama and qwen2 need head_dim * heads == hidden_size");
    int rc = ensure_dir(dir, err, errlen);
    if (rc) return rc;
    char *path = join(dir, "config.json");
    if (!path) return fail(err, errlen, SL_ENOMEM, "out of memory");
    json_t *c = json_pack(
        "{s:[s], s:b, s:f, s:n, s:s, s:i, s:i, s:s, s:i, s:f, s:i, s:i, s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:n, "
        "s:b, s:b, s:i}",
        "architectures", qwen3 ? "Qwen3ForCausalLM" : qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM",
        "attention_bias", 0, "attention_dropout", 0.0,
        "bos_token_id", "torch_dtype", "float32", "eos_token_id", SL_ARITH_IM_END_ID, "head_dim", m->head_dim,
        "hidden_act", "silu", "hidden_size", m->hidden_size, "initializer_range", 0.02, "intermediate_size",
        m->intermediate_size, "max_position_embeddings", m->max_position_embeddings, "model_type",
        qwen3 ? "qwen3" : qwen2 ? "qwen2" : "llama", "num_attention_heads", m->num_attention_heads, "num_hidden_layers",
        m->num_hidden_layers, "num_key_value_heads", m->num_key_value_heads, "pad_token_id", SL_ARITH_ENDOFTEXT_ID,
        "rms_norm_eps", 1e-6, "rope_theta", m->rope_theta, "rope_scaling", "tie_word_embeddings",
        m->tie_word_embeddings ? 1 : 0, "use_cache", 1, "vocab_size", vocab);
    if (!c) {
        free(path);
        return fail(err, errlen, SL_ENOMEM, "out of memory");
    }
    if (qwen2) json_object_del(c, "attention_bias"); /* Qwen2Config: q/k/v always biased */
    if (qwen3 || qwen2) {
        json_object_set_new(c, "use_sliding_window", json_false());
        json_object_set_new(c, "sliding_window", json_null());
        json_object_set_new(c, "max_window_layers", json_integer(m->num_hidden_layers));
    } else {
        json_object_set_new(c, "mlp_bias", json_false());
    }
    rc = write_json_atomic(path, c, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(12), err, errlen);
    json_decref(c);
    free(path);
    if (rc) return rc;
    /* generation_config.json as transformers writes it: generation stops
     * at <|im_end|>, pads with <|endoftext|> */
    path = join(dir, "generation_config.json");
    json_t *g = json_pack("{s:n, s:i, s:i, s:s}", "bos_token_id", "eos_token_id", SL_ARITH_IM_END_ID,
                          "pad_token_id", SL_ARITH_ENDOFTEXT_ID, "transformers_version", "4.51.0");
    if (!path || !g) rc = fail(err, errlen, SL_ENOMEM, "out of memory");
    else rc = write_json_atomic(path, g, JSON_INDENT(2), err, errlen);
    json_decref(g);
    free(path);
    return rc;
}
