/*
 * model.h — the Llama/Qwen transformer (Llama 2/3/3.1 incl. "llama3" RoPE
 * scaling, Mistral without sliding window, Qwen2/2.5 with q/k/v bias,
 * Qwen3 with q/k RMSNorm and explicit head_dim): grouped-query attention,
 * SwiGLU, tied or untied embeddings. Forward over a packed batch of
 * variable-length sequences, full backward for every parameter, per-token
 * log-probs / entropy / cross-entropy, and a KV-cache decode path.
 *
 * Every op goes through a backend table (ops.h); the model owns:
 *  - one allocation for all parameters, carved into tensors (llm.c style),
 *    and a table mapping each Hugging Face tensor name to its slice;
 *  - one allocation for the gradients, in the same layout (so an optimizer
 *    sees two flat arrays of n_params floats);
 *  - one allocation for the activations of max_tokens tokens (kept for
 *    backward) and one for the gradient scratch of backward.
 *
 * Models come from and go to Hugging Face folders (config.json +
 * model.safetensors or shards) through hfconfig.h and safetensors.h.
 *
 * It is not a training loop, an optimizer or a sampler (optim.h,
 * sampler.h), and it knows no tokenizer. Not thread-safe: one thread uses a
 * model at a time (the ops are internally threaded).
 */
#ifndef SL_MODEL_H
#define SL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "hfconfig.h"
#include "ops.h"
#include "safetensors.h"

/* Parameters of one layer; NULL for tensors the architecture lacks.
 * C hidden, F intermediate, NH heads, NKV kv heads, HD head_dim. */
typedef struct sl_layer_params {
    float *attn_norm; /* (C)           input_layernorm.weight */
    float *wq;        /* (NH*HD, C)    self_attn.q_proj.weight */
    float *bq;        /* (NH*HD)       self_attn.q_proj.bias (qkv_bias) */
    float *wk;        /* (NKV*HD, C)   self_attn.k_proj.weight */
    float *bk;        /* (NKV*HD)      self_attn.k_proj.bias */
    float *wv;        /* (NKV*HD, C)   self_attn.v_proj.weight */
    float *bv;        /* (NKV*HD)      self_attn.v_proj.bias */
    float *q_norm;    /* (HD)          self_attn.q_norm.weight (qwen3) */
    float *k_norm;    /* (HD)          self_attn.k_norm.weight (qwen3) */
    float *wo;        /* (C, NH*HD)    self_attn.o_proj.weight */
    float *bo;        /* (C)           self_attn.o_proj.bias (o_bias) */
    float *mlp_norm;  /* (C)           post_attention_layernorm.weight */
    float *w_gate;    /* (F, C)        mlp.gate_proj.weight */
    float *w_up;      /* (F, C)        mlp.up_proj.weight */
    float *w_down;    /* (C, F)        mlp.down_proj.weight */
} sl_layer_params;

typedef struct sl_model_params {
    float *embed;           /* (V, C)  model.embed_tokens.weight */
    sl_layer_params *layer; /* (L) */
    float *final_norm;      /* (C)     model.norm.weight */
    float *lm_head;         /* (V, C)  lm_head.weight; == embed when tied */
} sl_model_params;

/* One named tensor of the parameter (and gradient) layout. */
typedef struct sl_model_tensor {
    char name[96];    /* Hugging Face name */
    int ndim;         /* 1 or 2 */
    int64_t shape[2];
    size_t offset;    /* in floats, into params / grads */
    size_t numel;
    int no_decay;     /* norms and biases (for sl_adamw_set_no_decay) */
} sl_model_tensor;

/* Activations of one layer for T <= max_tokens tokens (backend memory). */
typedef struct sl_layer_acts {
    float *ln1;     /* (T, C)      input_layernorm output */
    float *rstd1;   /* (T) */
    float *q_pre;   /* (T, NH*HD)  q_proj (+bias) before q_norm (qwen3 only) */
    float *q_rstd;  /* (T*NH)      (qwen3) */
    float *k_pre;   /* (T, NKV*HD) (qwen3) */
    float *k_rstd;  /* (T*NKV)     (qwen3) */
    float *q;       /* (T, NH*HD)  attention input: after norm and RoPE */
    float *k;       /* (T, NKV*HD) */
    float *v;       /* (T, NKV*HD) */
    float *att;     /* (T, NH*HD)  attention output */
    float *lse;     /* (T, NH)     softmax log-sum-exp per row */
    float *res_mid; /* (T, C)      residual after attention */
    float *ln2;     /* (T, C) */
    float *rstd2;   /* (T) */
    float *gate;    /* (T, F) */
    float *up;      /* (T, F) */
    float *act;     /* (T, F)      silu(gate) * up */
} sl_layer_acts;

typedef struct sl_model {
    sl_hf_config cfg;          /* owned (raw_json included) */
    const sl_ops *ops;
    int max_tokens;
    /* parameters and gradients, same layout */
    size_t n_params;
    float *params_mem;         /* (n_params) backend memory */
    float *grads_mem;          /* (n_params) backend memory */
    sl_model_params w;         /* pointers into params_mem */
    sl_model_params g;         /* pointers into grads_mem */
    sl_model_tensor *tensors;  /* (n_tensors) name table */
    int n_tensors;
    /* rope tables */
    float *rope_cos;           /* (max_position_embeddings, HD/2) */
    float *rope_sin;
    /* activations (max_tokens) */
    float *acts_mem;
    float *resid;              /* (L+1, T, C) residual stream: layer inputs, final output */
    sl_layer_acts *acts;       /* (L) */
    float *ln_f;               /* (T, C) final norm output */
    float *rstd_f;             /* (T) */
    float *head_lse;           /* (T) */
    float *logprob;            /* (T) */
    float *entropy;            /* (T) */
    float *head_scratch;       /* (SL_LMHEAD_SCRATCH) */
    /* backward scratch */
    float *bwd_mem;
    float *dres, *dln;         /* (T, C) */
    float *dq, *dq2, *datt;    /* (T, NH*HD) */
    float *dk, *dk2, *dv;      /* (T, NKV*HD) */
    float *dgate, *dup, *dact; /* (T, F) */
    float *dlogprob, *dentropy; /* (T) */
    /* index arrays of the current batch (backend memory) */
    int32_t *idx_mem;
    int32_t *tokens, *targets, *pos; /* (T) */
    int32_t *cu;                     /* (max_tokens + 1) */
    int32_t *slots, *kv_len;         /* (max_tokens) for the cached path */
    float *logits_rows;              /* (SL_MODEL_LOGIT_ROWS, V) */
    /* state of the last training forward */
    int T, n_seq;
    int have_fwd;             /* activations valid for backward */
    int32_t *h_targets;       /* (max_tokens) host copy of the targets */
    const int32_t *cache_pos; /* host positions during a cached forward */
} sl_model;

#define SL_MODEL_LOGIT_ROWS 32
#define SL_MODEL_ERRLEN 512

/* --------------------------------------------------------- construction */

/* Fill cos/sin tables (max_pos, head_dim/2) for the config's RoPE
 * (default, linear, llama3 as transformers computes inv_freq), host
 * memory, caller-owned. Returns SL_EINVAL for a config without rope
 * fields set. */
int sl_rope_tables(const sl_hf_config *c, int max_pos, float *cos_t, float *sin_t);

/* A model for config *cfg (validated; copied, raw_json included) on
 * backend ops, with activations for max_tokens tokens, parameters
 * initialised from `seed`: normal(0, 0.02) for matrices and embeddings,
 * 1 for norms, 0 for biases; gradients zero. *out owns the model
 * (sl_model_free). Errors: SL_EINVAL (bad config, max_tokens < 1 or above
 * 1<<24), SL_ENOMEM (err says how much). */
int sl_model_new(const sl_hf_config *cfg, const sl_ops *ops, int max_tokens, uint64_t seed,
                 sl_model **out, char *err, size_t errlen);

/* Free everything; NULL is ignored. */
void sl_model_free(sl_model *m);

/* Load a Hugging Face folder (config.json + model.safetensors, or shards
 * with model.safetensors.index.json; F32/BF16/F16). Every tensor of the
 * name table must be present with the config's shape (lm_head.weight is
 * not needed when tied); extra tensors are ignored with a warning. Errors
 * (message in err): SL_ENOENT (missing file or tensor), SL_EINVAL (bad
 * config, shape mismatch, malformed weights), SL_EUNSUPPORTED, SL_EIO,
 * SL_ENOMEM. On error *out is NULL. */
int sl_model_load_hf(const char *dir, const sl_ops *ops, int max_tokens, sl_model **out,
                     char *err, size_t errlen);

/* Write dir/config.json and dir/model.safetensors (shards when larger than
 * 5 GB) with Hugging Face names, as F32 or BF16, so that transformers'
 * from_pretrained loads it (tied: no lm_head.weight). dir is created when
 * missing. Errors: SL_EINVAL, SL_EIO, SL_ENOMEM. */
int sl_model_save_hf(const sl_model *m, const char *dir, sl_dtype dtype, char *err,
                     size_t errlen);

/* Tensor by Hugging Face name, or NULL. */
const sl_model_tensor *sl_model_find_tensor(const sl_model *m, const char *name);

/* ------------------------------------------------------------- training */

/* Forward over a packed batch: n_seq sequences, sequence s is tokens
 * [cu_seqlens[s], cu_seqlens[s+1]) (host arrays; cu_seqlens[0] = 0, every
 * sequence non-empty, T = cu_seqlens[n_seq] <= max_tokens, each length <=
 * max_position_embeddings). Positions restart at 0 in every sequence.
 * targets (T, host) gives the token whose log-prob is wanted at each
 * position (-1: none); NULL means the next token of the same sequence (-1
 * at each sequence's last token). Outputs (host, may be NULL): logprobs
 * (T) log p(target) (0 where no target), entropy (T) of the next-token
 * distribution at every position, *loss = mean of -logprob over positions
 * with a target (0 when none). Keeps the activations for
 * sl_model_backward*. Errors: SL_EINVAL / SL_ERANGE (bad batch: message
 * logged), nothing changed. */
int sl_model_forward(sl_model *m, const int32_t *tokens, const int32_t *cu_seqlens, int n_seq,
                     const int32_t *targets, float *logprobs, float *entropy, double *loss);

/* Forward for logits only (T, V) into host memory `logits` (caller-owned,
 * T*V floats); same batch rules. Invalidates the training activations. */
int sl_model_forward_logits(sl_model *m, const int32_t *tokens, const int32_t *cu_seqlens,
                            int n_seq, float *logits);

/* Backward of the last sl_model_forward given the upstream gradients
 * dlogprob[t] = d loss / d logprob[t] and dentropy[t] = d loss /
 * d entropy[t] (host arrays of T; dentropy may be NULL; positions without
 * target ignore dlogprob). Gradients ACCUMULATE into grads_mem. RL losses
 * use this entry. Errors: SL_EINVAL when no forward precedes it. */
int sl_model_backward(sl_model *m, const float *dlogprob, const float *dentropy);

/* Cross-entropy backward: loss = -sum_t w[t] logprob[t], w = weights
 * (host, T; masks or per-token weights, as the caller normalises them) or,
 * when weights is NULL, 1 / (number of positions with a target) — the
 * gradient of the *loss of sl_model_forward. Accumulates into grads_mem;
 * *loss_out (may be NULL) gets the weighted loss. */
int sl_model_backward_ce(sl_model *m, const float *weights, double *loss_out);

/* Zero all gradients. */
void sl_model_zero_grad(sl_model *m);

/* ---------------------------------------------------------- KV cache */

typedef struct sl_kv_cache {
    const sl_ops *ops;
    int n_layers, n_slots, max_len, kv_dim; /* kv_dim = NKV*HD */
    float *k;    /* (L, n_slots, max_len, kv_dim) backend memory, after k_norm and RoPE */
    float *v;    /* (L, n_slots, max_len, kv_dim) */
    int32_t *len; /* (n_slots) host: tokens held per slot */
} sl_kv_cache;

/* A cache for n_slots sequences of up to max_len tokens each (max_len <=
 * max_position_embeddings). Errors: SL_EINVAL, SL_ENOMEM. */
int sl_kv_cache_new(const sl_model *m, int n_slots, int max_len, sl_kv_cache **out);
void sl_kv_cache_free(sl_kv_cache *c);
/* Empty one slot (slot < 0: all). */
void sl_kv_cache_reset(sl_kv_cache *c, int slot);

/* Append n tokens (a prompt, or a continuation) to `slot` and write the
 * logits of the last one (V floats, host) to logits (may be NULL). Errors:
 * SL_EINVAL (bad slot/tokens, n > max_tokens), SL_ERANGE (cache full). */
int sl_model_prefill(sl_model *m, sl_kv_cache *c, int slot, const int32_t *tokens, int n,
                     float *logits);

/* One decode step: for i < n, append tokens[i] to slots[i] (distinct) and
 * write that sequence's next-token logits to logits[i*V..] (host, n*V
 * floats). Errors as prefill. */
int sl_model_decode(sl_model *m, sl_kv_cache *c, const int32_t *slots, const int32_t *tokens,
                    int n, float *logits);

#endif /* SL_MODEL_H */
