/*
 * hfconfig.h — a Hugging Face model's config.json, as transformers writes
 * it, for the Llama/Qwen family the transformer in model.h supports:
 * model_type llama, mistral (without a sliding window), qwen2, qwen3.
 *
 * RoPE is read from either form transformers has used: the classic
 * top-level `rope_theta` + `rope_scaling` {rope_type | type, factor,
 * low_freq_factor, high_freq_factor, original_max_position_embeddings}, or
 * the newer `rope_parameters` object (transformers >= 5) holding rope_type,
 * rope_theta and the same scaling keys. Supported rope types: default,
 * linear, llama3.
 *
 * The file is hostile input: JSON errors, missing keys, wrong types, zero,
 * negative, absurd or inconsistent sizes and unknown model types are
 * refused with SL_EINVAL / SL_EUNSUPPORTED and a message; nothing crashes.
 *
 * It is not a general config reader: keys the model does not use are kept
 * only as the original text, so that saving writes them back unchanged.
 */
#ifndef SL_HFCONFIG_H
#define SL_HFCONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef enum sl_arch {
    SL_ARCH_LLAMA = 0, /* llama, mistral */
    SL_ARCH_QWEN2 = 1, /* q/k/v bias */
    SL_ARCH_QWEN3 = 2, /* q/k RMSNorm, explicit head_dim */
} sl_arch;

typedef enum sl_rope_type {
    SL_ROPE_DEFAULT = 0,
    SL_ROPE_LINEAR = 1,
    SL_ROPE_LLAMA3 = 2,
} sl_rope_type;

#define SL_HF_MAX_EOS 8
#define SL_HF_ERRLEN 256

typedef struct sl_hf_config {
    sl_arch arch;
    char model_type[16];          /* "llama", "mistral", "qwen2", "qwen3" */
    int hidden_size;              /* C */
    int intermediate_size;        /* F */
    int num_hidden_layers;        /* L */
    int num_attention_heads;      /* NH */
    int num_key_value_heads;      /* NKV, divides NH */
    int head_dim;                 /* HD (default C / NH) */
    int vocab_size;               /* V */
    int max_position_embeddings;  /* rope table length */
    double rms_norm_eps;
    int tie_word_embeddings;
    int qkv_bias;                 /* q/k/v projections have a bias (qwen2; attention_bias) */
    int o_bias;                   /* o_proj has a bias (attention_bias on llama/qwen3) */
    int qk_norm;                  /* qwen3 */
    /* rope */
    double rope_theta;
    sl_rope_type rope_type;
    double rope_factor;           /* linear, llama3 */
    double rope_low_freq_factor;  /* llama3 */
    double rope_high_freq_factor; /* llama3 */
    int rope_original_max_pos;    /* llama3 original_max_position_embeddings */
    int rope_new_format;          /* read from rope_parameters (and saved so) */
    /* special tokens, -1 when absent */
    int bos_token_id;
    int eos_token_ids[SL_HF_MAX_EOS];
    int n_eos;
    char *raw_json;               /* the file's text (owned, may be NULL) */
} sl_hf_config;

/* Fill a config in memory (no file): all sizes given by the caller, then
 * call sl_hf_config_validate. Sets defaults: llama arch, rope default,
 * theta 10000, eps 1e-6, no bias, bos/eos -1, raw_json NULL. */
void sl_hf_config_defaults(sl_hf_config *c);

/* Check sizes and consistency (positive, heads divide, even head_dim,
 * limits against absurd values, llama3 factors sane). Errors: SL_EINVAL
 * with the reason in err. */
int sl_hf_config_validate(const sl_hf_config *c, char *err, size_t errlen);

/* Parse config.json text (len bytes, need not be NUL-terminated). On
 * success *c is filled and owns a copy of the text (sl_hf_config_fini).
 * Errors: SL_EINVAL (JSON error with line/column, missing or mistyped key,
 * bad sizes), SL_EUNSUPPORTED (unknown model_type, rope type, sliding
 * window, mlp_bias), SL_ENOMEM; on error *c holds nothing to free.
 * Thread-safe (no shared state). */
int sl_hf_config_parse(sl_hf_config *c, const char *text, size_t len, char *err, size_t errlen);

/* Read and parse `path`: a config.json file or a folder holding one.
 * Errors as sl_hf_config_parse plus SL_ENOENT / SL_EIO (file), SL_EINVAL
 * for a file over 16 MiB. */
int sl_hf_config_load(sl_hf_config *c, const char *path, char *err, size_t errlen);

/* Write the config as config.json at `path` (a file name). The original
 * text's other keys are kept; the model's keys are written from *c, in the
 * rope form it was read in; "torch_dtype"/"dtype" set to dtype_name
 * ("float32", "bfloat16") when not NULL. Written to a temporary name and
 * renamed. Errors: SL_EIO, SL_ENOMEM. */
int sl_hf_config_save(const sl_hf_config *c, const char *path, const char *dtype_name,
                      char *err, size_t errlen);

/* Free the owned text; safe twice and on a zeroed struct. */
void sl_hf_config_fini(sl_hf_config *c);

/* Number of parameters the model has for this config. */
int64_t sl_hf_config_param_count(const sl_hf_config *c);

#endif /* SL_HFCONFIG_H */
