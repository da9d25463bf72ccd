/*
 * hfconfig.c — reading and writing a Hugging Face config.json (hfconfig.h)
 * with jansson. Defaults follow transformers' config classes (LlamaConfig,
 * Qwen2Config, Qwen3Config) for keys a file may omit.
 */
#include "hfconfig.h"

#include "base.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void sl_hf_config_defaults(sl_hf_config *c)
{
    memset(c, 0, sizeof(*c));
    c->arch = SL_ARCH_LLAMA;
    snprintf(c->model_type, sizeof(c->model_type), "llama");
    c->rms_norm_eps = 1e-6;
    c->rope_theta = 10000.0;
    c->rope_type = SL_ROPE_DEFAULT;
    c->rope_factor = 1.0;
    c->bos_token_id = -1;
    for (int i = 0; i < SL_HF_MAX_EOS; i++) c->eos_token_ids[i] = -1;
}

void sl_hf_config_fini(sl_hf_config *c)
{
    if (!c) return;
    free(c->raw_json);
    c->raw_json = NULL;
}

int64_t sl_hf_config_param_count(const sl_hf_config *c)
{
    int64_t C = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int64_t q = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t kv = (int64_t)c->num_key_value_heads * c->head_dim;
    int64_t layer = 2 * C + q * C + 2 * kv * C + C * q + 3 * F * C;
    if (c->qkv_bias) layer += q + 2 * kv;
    if (c->o_bias) layer += C;
    if (c->qk_norm) layer += 2 * (int64_t)c->head_dim;
    int64_t n = V * C + C + layer * c->num_hidden_layers;
    if (!c->tie_word_embeddings) n += V * C;
    return n;
}

int sl_hf_config_validate(const sl_hf_config *c, char *err, size_t errlen)
{
    struct {
        const char *name;
        long v, max;
    } sz[] = {
        {"hidden_size", c->hidden_size, 1L << 16},
        {"intermediate_size", c->intermediate_size, 1L << 20},
        {"num_hidden_layers", c->num_hidden_layers, 1024},
        {"num_attention_heads", c->num_attention_heads, 1024},
        {"num_key_value_heads", c->num_key_value_heads, 1024},
        {"head_dim", c->head_dim, 1024},
        {"vocab_size", c->vocab_size, 1L << 24},
        {"max_position_embeddings", c->max_position_embeddings, 1L << 21},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(sz); i++) {
        if (sz[i].v <= 0)
            return fail(err, errlen, SL_EINVAL, "config: %s must be positive (got %ld)",
                        sz[i].name, sz[i].v);
        if (sz[i].v > sz[i].max)
            return fail(err, errlen, SL_EINVAL, "config: %s = %ld is absurd (limit %ld)",
                        sz[i].name, sz[i].v, sz[i].max);
    }
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return fail(err, errlen, SL_EINVAL,
                    "config: num_key_value_heads (%d) does not divide num_attention_heads (%d)",
                    c->num_key_value_heads, c->num_attention_heads);
    if (c->head_dim % 2 != 0)
        return fail(err, errlen, SL_EINVAL, "config: head_dim (%d) must be even for RoPE",
                    c->head_dim);
    if (!(c->rms_norm_eps > 0.0) || !(c->rms_norm_eps < 1.0))
        return fail(err, errlen, SL_EINVAL, "config: rms_norm_eps (%g) must be in (0, 1)",
                    c->rms_norm_eps);
    if (!(c->rope_theta > 1.0) || !isfinite(c->rope_theta))
        return fail(err, errlen, SL_EINVAL, "config: rope_theta (%g) must be > 1",
                    c->rope_theta);
    if (c->rope_type != SL_ROPE_DEFAULT && (!(c->rope_factor > 0.0) || c->rope_factor > 1e6))
        return fail(err, errlen, SL_EINVAL, "config: rope factor (%g) must be positive",
                    c->rope_factor);
    if (c->rope_type == SL_ROPE_LLAMA3) {
        if (!(c->rope_low_freq_factor > 0.0) ||
            !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
            c->rope_original_max_pos <= 0)
            return fail(err, errlen, SL_EINVAL,
                        "config: llama3 rope needs 0 < low_freq_factor < high_freq_factor and "
                        "original_max_position_embeddings > 0");
    }
    if (sl_hf_config_param_count(c) > (int64_t)1 << 40)
        return fail(err, errlen, SL_EINVAL, "config: %lld parameters is absurd",
                    (long long)sl_hf_config_param_count(c));
    if (c->bos_token_id >= c->vocab_size)
        return fail(err, errlen, SL_EINVAL, "config: bos_token_id %d >= vocab_size %d",
                    c->bos_token_id, c->vocab_size);
    return SL_OK;
}

/* ---------------------------------------------------------------- parsing */

/* key absent or null: *out untouched, returns 0; integer: range-checked. */
static int get_int(json_t *o, const char *key, int required, int *out, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) return fail(err, errlen, SL_EINVAL, "config: missing key \"%s\"", key);
        return 0;
    }
    if (!json_is_integer(v))
        return fail(err, errlen, SL_EINVAL, "config: \"%s\" must be an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < -((json_int_t)1 << 30) || x > ((json_int_t)1 << 30))
        return fail(err, errlen, SL_EINVAL, "config: \"%s\" = %lld is out of range", key,
                    (long long)x);
    *out = (int)x;
    return 0;
}

static int get_num(json_t *o, const char *key, int required, double *out, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) return fail(err, errlen, SL_EINVAL, "config: missing key \"%s\"", key);
        return 0;
    }
    if (!json_is_number(v))
        return fail(err, errlen, SL_EINVAL, "config: \"%s\" must be a number", key);
    *out = json_number_value(v);
    return 0;
}

static int get_bool(json_t *o, const char *key, int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v))
        return fail(err, errlen, SL_EINVAL, "config: \"%s\" must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* rope keys of one object (rope_parameters, or rope_scaling). */
static int parse_rope_obj(sl_hf_config *c, json_t *r, const char *what, char *err,
                          size_t errlen)
{
    int rc;
    if (!json_is_object(r))
        return fail(err, errlen, SL_EINVAL, "config: \"%s\" must be an object", what);
    json_t *t = json_object_get(r, "rope_type");
    if (!t || json_is_null(t)) t = json_object_get(r, "type");
    const char *type = "default";
    if (t && !json_is_null(t)) {
        if (!json_is_string(t))
            return fail(err, errlen, SL_EINVAL, "config: %s.rope_type must be a string", what);
        type = json_string_value(t);
    }
    if ((rc = get_num(r, "rope_theta", 0, &c->rope_theta, err, errlen))) return rc;
    if (strcmp(type, "default") == 0) {
        c->rope_type = SL_ROPE_DEFAULT;
    } else if (strcmp(type, "linear") == 0) {
        c->rope_type = SL_ROPE_LINEAR;
        if ((rc = get_num(r, "factor", 1, &c->rope_factor, err, errlen))) return rc;
    } else if (strcmp(type, "llama3") == 0) {
        c->rope_type = SL_ROPE_LLAMA3;
        if ((rc = get_num(r, "factor", 1, &c->rope_factor, err, errlen)) ||
            (rc = get_num(r, "low_freq_factor", 1, &c->rope_low_freq_factor, err, errlen)) ||
            (rc = get_num(r, "high_freq_factor", 1, &c->rope_high_freq_factor, err, errlen)) ||
            (rc = get_int(r, "original_max_position_embeddings", 1, &c->rope_original_max_pos,
                          err, errlen)))
            return rc;
    } else {
        return fail(err, errlen, SL_EUNSUPPORTED,
                    "config: rope type \"%.40s\" is not supported (default, linear, llama3)",
                    type);
    }
    return 0;
}

static int parse_obj(sl_hf_config *c, json_t *o, char *err, size_t errlen)
{
    int rc;
    if (!json_is_object(o))
        return fail(err, errlen, SL_EINVAL, "config: top level must be a JSON object");
    json_t *mt = json_object_get(o, "model_type");
    if (!json_is_string(mt))
        return fail(err, errlen, SL_EINVAL, "config: missing string key \"model_type\"");
    const char *t = json_string_value(mt);
    if (strcmp(t, "llama") == 0 || strcmp(t, "mistral") == 0) {
        c->arch = SL_ARCH_LLAMA;
        c->max_position_embeddings = 2048;
    } else if (strcmp(t, "qwen2") == 0) {
        c->arch = SL_ARCH_QWEN2;
        c->max_position_embeddings = 32768;
    } else if (strcmp(t, "qwen3") == 0) {
        c->arch = SL_ARCH_QWEN3;
        c->max_position_embeddings = 32768;
        c->head_dim = 128; /* Qwen3Config's default */
    } else {
        return fail(err, errlen, SL_EUNSUPPORTED,
                    "config: model_type \"%.40s\" is not supported (llama, mistral, qwen2, qwen3)",
                    t);
    }
    snprintf(c->model_type, sizeof(c->model_type), "%s", t);

    if ((rc = get_int(o, "hidden_size", 1, &c->hidden_size, err, errlen)) ||
        (rc = get_int(o, "intermediate_size", 1, &c->intermediate_size, err, errlen)) ||
        (rc = get_int(o, "num_hidden_layers", 1, &c->num_hidden_layers, err, errlen)) ||
        (rc = get_int(o, "num_attention_heads", 1, &c->num_attention_heads, err, errlen)) ||
        (rc = get_int(o, "vocab_size", 1, &c->vocab_size, err, errlen)))
        return rc;
    c->num_key_value_heads = c->num_attention_heads;
    if ((rc = get_int(o, "num_key_value_heads", 0, &c->num_key_value_heads, err, errlen)) ||
        (rc = get_int(o, "max_position_embeddings", 0, &c->max_position_embeddings, err,
                      errlen)) ||
        (rc = get_num(o, "rms_norm_eps", 0, &c->rms_norm_eps, err, errlen)) ||
        (rc = get_bool(o, "tie_word_embeddings", &c->tie_word_embeddings, err, errlen)))
        return rc;
    if (c->arch != SL_ARCH_QWEN3) {
        if (c->num_attention_heads <= 0)
            return fail(err, errlen, SL_EINVAL, "config: num_attention_heads must be positive");
        if (!json_object_get(o, "head_dim") || json_is_null(json_object_get(o, "head_dim"))) {
            if (c->hidden_size % c->num_attention_heads != 0)
                return fail(err, errlen, SL_EINVAL,
                            "config: num_attention_heads (%d) does not divide hidden_size (%d)",
                            c->num_attention_heads, c->hidden_size);
        }
        c->head_dim = c->hidden_size / c->num_attention_heads;
    }
    if ((rc = get_int(o, "head_dim", 0, &c->head_dim, err, errlen))) return rc;

    int attention_bias = 0, mlp_bias = 0, use_sw = 0;
    if ((rc = get_bool(o, "attention_bias", &attention_bias, err, errlen)) ||
        (rc = get_bool(o, "mlp_bias", &mlp_bias, err, errlen)) ||
        (rc = get_bool(o, "use_sliding_window", &use_sw, err, errlen)))
        return rc;
    if (mlp_bias) return fail(err, errlen, SL_EUNSUPPORTED, "config: mlp_bias is not supported");
    if (c->arch == SL_ARCH_QWEN2) {
        c->qkv_bias = 1; /* Qwen2Attention: q/k/v always biased, o_proj never */
        c->o_bias = 0;
    } else {
        c->qkv_bias = c->o_bias = attention_bias;
    }
    c->qk_norm = c->arch == SL_ARCH_QWEN3;
    if (use_sw)
        return fail(err, errlen, SL_EUNSUPPORTED,
                    "config: use_sliding_window is not supported");
    json_t *sw = json_object_get(o, "sliding_window");
    if (strcmp(t, "mistral") == 0 && sw && !json_is_null(sw)) {
        if (!json_is_integer(sw) || json_integer_value(sw) < c->max_position_embeddings)
            return fail(err, errlen, SL_EUNSUPPORTED,
                        "config: mistral sliding_window attention is not supported");
    }
    json_t *act = json_object_get(o, "hidden_act");
    if (act && !json_is_null(act) &&
        (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        return fail(err, errlen, SL_EUNSUPPORTED, "config: hidden_act must be \"silu\"");

    /* rope: the newer rope_parameters object wins over the classic keys */
    json_t *rp = json_object_get(o, "rope_parameters");
    if (rp && !json_is_null(rp)) {
        c->rope_new_format = 1;
        if ((rc = parse_rope_obj(c, rp, "rope_parameters", err, errlen))) return rc;
        if (!json_object_get(rp, "rope_theta") &&
            (rc = get_num(o, "rope_theta", 0, &c->rope_theta, err, errlen)))
            return rc;
    } else {
        if ((rc = get_num(o, "rope_theta", 0, &c->rope_theta, err, errlen))) return rc;
        json_t *rs = json_object_get(o, "rope_scaling");
        if (rs && !json_is_null(rs)) {
            double theta = c->rope_theta;
            if ((rc = parse_rope_obj(c, rs, "rope_scaling", err, errlen))) return rc;
            c->rope_theta = theta; /* rope_scaling carries no theta in the classic form */
            if (json_object_get(rs, "rope_theta") &&
                (rc = get_num(rs, "rope_theta", 0, &c->rope_theta, err, errlen)))
                return rc;
        }
    }

    /* special tokens: an int, a list of ints (eos), or null */
    if ((rc = get_int(o, "bos_token_id", 0, &c->bos_token_id, err, errlen))) return rc;
    json_t *eos = json_object_get(o, "eos_token_id");
    if (json_is_integer(eos)) {
        if ((rc = get_int(o, "eos_token_id", 0, &c->eos_token_ids[0], err, errlen))) return rc;
        c->n_eos = 1;
    } else if (json_is_array(eos)) {
        size_t i;
        json_t *e;
        json_array_foreach(eos, i, e) {
            if (!json_is_integer(e) || json_integer_value(e) < 0 ||
                json_integer_value(e) >= (json_int_t)1 << 30)
                return fail(err, errlen, SL_EINVAL, "config: eos_token_id[%zu] is not a token id",
                            i);
            if (c->n_eos < SL_HF_MAX_EOS) c->eos_token_ids[c->n_eos++] = (int)json_integer_value(e);
        }
    } else if (eos && !json_is_null(eos)) {
        return fail(err, errlen, SL_EINVAL, "config: eos_token_id must be an integer or a list");
    }
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] < 0 || c->eos_token_ids[i] >= c->vocab_size) {
            if (c->vocab_size > 0)
                return fail(err, errlen, SL_EINVAL, "config: eos_token_id %d out of vocabulary",
                            c->eos_token_ids[i]);
        }
    return sl_hf_config_validate(c, err, errlen);
}

int sl_hf_config_parse(sl_hf_config *c, const char *text, size_t len, char *err, size_t errlen)
{
    sl_hf_config_defaults(c);
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return fail(err, errlen, SL_EINVAL, "config: JSON error at line %d column %d: %s",
                    je.line, je.column, je.text);
    int rc = parse_obj(c, o, err, errlen);
    json_decref(o);
    if (rc) {
        sl_hf_config_defaults(c);
        return rc;
    }
    c->raw_json = malloc(len + 1);
    if (!c->raw_json) return fail(err, errlen, SL_ENOMEM, "config: out of memory");
    memcpy(c->raw_json, text, len);
    c->raw_json[len] = 0;
    return SL_OK;
}

int sl_hf_config_load(sl_hf_config *c, const char *path, char *err, size_t errlen)
{
    sl_hf_config_defaults(c);
    char buf[4096];
    struct stat st;
    if (stat(path, &st) != 0)
        return fail(err, errlen, errno == ENOENT ? SL_ENOENT : SL_EIO, "%s: %s", path,
                    strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if ((size_t)snprintf(buf, sizeof(buf), "%s/config.json", path) >= sizeof(buf))
            return fail(err, errlen, SL_EINVAL, "path too long");
        path = buf;
    }
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, errlen, errno == ENOENT ? SL_ENOENT : SL_EIO, "%s: %s", path,
                    strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return fail(err, errlen, SL_EIO, "%s: not a regular file", path);
    }
    if (st.st_size > 16 * 1024 * 1024) {
        fclose(f);
        return fail(err, errlen, SL_EINVAL, "%s: %lld bytes is too large for a config",
                    path, (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    char *text = malloc(n + 1);
    if (!text) {
        fclose(f);
        return fail(err, errlen, SL_ENOMEM, "out of memory");
    }
    size_t got = fread(text, 1, n, f);
    fclose(f);
    if (got != n) {
        free(text);
        return fail(err, errlen, SL_EIO, "%s: short read", path);
    }
    char sub[SL_HF_ERRLEN];
    int rc = sl_hf_config_parse(c, text, n, sub, sizeof(sub));
    free(text);
    if (rc) return fail(err, errlen, rc, "%s: %s", path, sub);
    return SL_OK;
}

/* ----------------------------------------------------------------- saving */

static const char *arch_class(const sl_hf_config *c)
{
    if (strcmp(c->model_type, "mistral") == 0) return "MistralForCausalLM";
    switch (c->arch) {
    case SL_ARCH_QWEN2: return "Qwen2ForCausalLM";
    case SL_ARCH_QWEN3: return "Qwen3ForCausalLM";
    default: return "LlamaForCausalLM";
    }
}

static json_t *rope_json(const sl_hf_config *c, int with_theta)
{
    json_t *r = json_object();
    if (!r) return NULL;
    static const char *names[] = {"default", "linear", "llama3"};
    json_object_set_new(r, "rope_type", json_string(names[c->rope_type]));
    if (with_theta) json_object_set_new(r, "rope_theta", json_real(c->rope_theta));
    if (c->rope_type != SL_ROPE_DEFAULT) json_object_set_new(r, "factor", json_real(c->rope_factor));
    if (c->rope_type == SL_ROPE_LLAMA3) {
        json_object_set_new(r, "low_freq_factor", json_real(c->rope_low_freq_factor));
        json_object_set_new(r, "high_freq_factor", json_real(c->rope_high_freq_factor));
        json_object_set_new(r, "original_max_position_embeddings",
                            json_integer(c->rope_original_max_pos));
    }
    return r;
}

int sl_hf_config_save(const sl_hf_config *c, const char *path, const char *dtype_name,
                      char *err, size_t errlen)
{
    json_t *o = NULL;
    if (c->raw_json) o = json_loads(c->raw_json, 0, NULL);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    if (!o) return fail(err, errlen, SL_ENOMEM, "out of memory");
    json_t *archs = json_array();
    json_array_append_new(archs, json_string(arch_class(c)));
    json_object_set_new(o, "architectures", archs);
    json_object_set_new(o, "model_type", json_string(c->model_type));
    json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(o, "intermediate_size", json_integer(c->intermediate_size));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->num_hidden_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(c->num_attention_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->num_key_value_heads));
    json_object_set_new(o, "head_dim", json_integer(c->head_dim));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "max_position_embeddings", json_integer(c->max_position_embeddings));
    json_object_set_new(o, "rms_norm_eps", json_real(c->rms_norm_eps));
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_word_embeddings));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    if (c->arch != SL_ARCH_QWEN2) json_object_set_new(o, "attention_bias", json_boolean(c->o_bias));
    if (c->rope_new_format) {
        json_object_set_new(o, "rope_parameters", rope_json(c, 1));
        json_object_del(o, "rope_scaling");
        json_object_del(o, "rope_theta");
    } else {
        json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
        if (c->rope_type == SL_ROPE_DEFAULT)
            json_object_set_new(o, "rope_scaling", json_null());
        else
            json_object_set_new(o, "rope_scaling", rope_json(c, 0));
    }
    if (c->bos_token_id >= 0) json_object_set_new(o, "bos_token_id", json_integer(c->bos_token_id));
    if (c->n_eos == 1) {
        json_object_set_new(o, "eos_token_id", json_integer(c->eos_token_ids[0]));
    } else if (c->n_eos > 1) {
        json_t *a = json_array();
        for (int i = 0; i < c->n_eos; i++) json_array_append_new(a, json_integer(c->eos_token_ids[i]));
        json_object_set_new(o, "eos_token_id", a);
    }
    if (dtype_name) {
        if (json_object_get(o, "dtype") || !json_object_get(o, "torch_dtype"))
            json_object_set_new(o, "dtype", json_string(dtype_name));
        if (json_object_get(o, "torch_dtype"))
            json_object_set_new(o, "torch_dtype", json_string(dtype_name));
    }
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp)) {
        json_decref(o);
        return fail(err, errlen, SL_EINVAL, "path too long");
    }
    int rc = json_dump_file(o, tmp, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (rc != 0) {
        unlink(tmp);
        return fail(err, errlen, SL_EIO, "%s: cannot write", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return fail(err, errlen, SL_EIO, "%s: rename: %s", path, strerror(e));
    }
    return SL_OK;
}
