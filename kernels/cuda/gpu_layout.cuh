/*
 * gpu_layout.cuh — the layout of the flat bf16 weight buffer shared by the
 * GPU trainer (gpu_model.cu, sl_gpum_weights) and the GPU rollout engine
 * (gpu_engine.cu), so the engine reads the trainer's buffer in place
 * (CUDA IPC) without a conversion. One definition, used by both.
 *
 * Layout in elements, each tensor padded to 64: [embed] [lm_head if
 * untied] then per layer [wqkv (NH+2NKV)HD x C][wo C x NH*HD][wgu 2F x C]
 * [wd C x F] — the weight-decayed part (n_decay elements) — then per layer
 * [attn_norm][bqkv if q/k/v bias][q_norm HD][k_norm HD if qwen3][mlp_norm]
 * and [final_norm]. segs maps it to the host model's params_mem layout
 * (sl_model): segs[i] = n floats at host offset host go to offset gpu.
 * Not a public header.
 */
#ifndef SL_CUDA_GPU_LAYOUT_CUH
#define SL_CUDA_GPU_LAYOUT_CUH

#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct seg {
    size_t gpu, host, n;
} seg;

typedef struct glayer {
    size_t wqkv, wo, wgu, wd, n1, bqkv, n2, qn, kn; /* bqkv / qn / kn 0 when absent */
} glayer;

typedef struct sl_gpu_layout {
    size_t o_embed, o_head, o_nf, n_decay, n_gpu; /* elements */
    glayer *ly;                                   /* (L) */
    seg *segs;
    int n_segs;
} sl_gpu_layout;

static inline size_t sl_lay_pad64(size_t n) { return (n + 63) & ~(size_t)63; }

static inline void sl_lay_add_(sl_gpu_layout *lo, size_t *off, const sl_model *h,
                               const float *ptr, size_t n)
{
    seg *s = &lo->segs[lo->n_segs++];
    s->gpu = *off, s->host = (size_t)(ptr - h->params_mem), s->n = n;
    *off += n;
}

/* Build lo from the host model h (its config and params_mem). 0 or -1 (out
 * of memory); free with sl_gpu_layout_free. */
static inline int sl_gpu_layout_build(sl_gpu_layout *lo, const sl_model *h)
{
    const sl_hf_config *c = &h->cfg;
    size_t C = c->hidden_size, F = c->intermediate_size, V = c->vocab_size, HD = c->head_dim;
    size_t qd = (size_t)c->num_attention_heads * HD, kd = (size_t)c->num_key_value_heads * HD;
    int L = c->num_hidden_layers;
    lo->ly = (glayer *)calloc((size_t)L, sizeof(glayer));
    lo->segs = (seg *)calloc((size_t)L * 16 + 8, sizeof(seg));
    lo->n_segs = 0;
    if (!lo->ly || !lo->segs) {
        free(lo->ly), free(lo->segs);
        lo->ly = NULL, lo->segs = NULL;
        return -1;
    }
    size_t off = 0;
#define ADD_(ptr, cnt) sl_lay_add_(lo, &off, h, (ptr), (cnt))
#define END_() (off = sl_lay_pad64(off))
    lo->o_embed = off;
    ADD_(h->w.embed, V * C);
    END_();
    lo->o_head = lo->o_embed;
    if (!c->tie_word_embeddings) {
        lo->o_head = off;
        ADD_(h->w.lm_head, V * C);
        END_();
    }
    for (int l = 0; l < L; l++) {
        const sl_layer_params *p = &h->w.layer[l];
        glayer *y = &lo->ly[l];
        y->wqkv = off;
        ADD_(p->wq, qd * C), ADD_(p->wk, kd * C), ADD_(p->wv, kd * C);
        END_();
        y->wo = off;
        ADD_(p->wo, C * qd);
        END_();
        y->wgu = off;
        ADD_(p->w_gate, F * C), ADD_(p->w_up, F * C);
        END_();
        y->wd = off;
        ADD_(p->w_down, C * F);
        END_();
    }
    lo->n_decay = off;
    for (int l = 0; l < L; l++) {
        const sl_layer_params *p = &h->w.layer[l];
        glayer *y = &lo->ly[l];
        y->n1 = off;
        ADD_(p->attn_norm, C);
        END_();
        if (c->qkv_bias) {
            y->bqkv = off;
            ADD_(p->bq, qd), ADD_(p->bk, kd), ADD_(p->bv, kd);
            END_();
        }
        if (c->qk_norm) {
            y->qn = off;
            ADD_(p->q_norm, HD);
            END_();
            y->kn = off;
            ADD_(p->k_norm, HD);
            END_();
        }
        y->n2 = off;
        ADD_(p->mlp_norm, C);
        END_();
    }
    lo->o_nf = off;
    ADD_(h->w.final_norm, C);
    END_();
#undef ADD_
#undef END_
    lo->n_gpu = off;
    return 0;
}

static inline void sl_gpu_layout_free(sl_gpu_layout *lo)
{
    free(lo->ly), free(lo->segs);
    lo->ly = NULL, lo->segs = NULL;
}

/* host params (h->params_mem layout) -> dst (n_gpu floats, zero padding) */
static inline void sl_gpu_layout_gather(const sl_gpu_layout *lo, float *dst, const float *host)
{
    memset(dst, 0, sizeof(float) * lo->n_gpu);
    for (int i = 0; i < lo->n_segs; i++)
        memcpy(dst + lo->segs[i].gpu, host + lo->segs[i].host, sizeof(float) * lo->segs[i].n);
}

#endif
