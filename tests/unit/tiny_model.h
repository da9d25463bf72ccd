/*
 * tiny_model.h — the tiny random Qwen3 models the engine and trainer unit
 * tests run on (CPU ops): a few thousand parameters, head_dim 8, QK-norm,
 * tied embeddings. Include after <cmocka.h> (a failed sl_model_new fails
 * the test).
 *
 * What it is not: a fixture of real weights (see tests/fixtures for those).
 */
#ifndef SL_TEST_TINY_MODEL_H
#define SL_TEST_TINY_MODEL_H

#include <stdint.h>
#include <stdio.h>

#include "model.h"

typedef struct tiny_shape {
    int hidden, intermediate, layers, heads, kv_heads, vocab, max_pos;
    float scale;    /* weights are the 0.02 init times this, so the distributions are not flat */
    int unit_norms; /* the norm weights (no_decay tensors) set to 1 */
} tiny_shape;

/* The engine tests' model (test_engine.c, test_engine_sched.c). */
#define TINY_ENGINE_VOCAB 40
#define TINY_ENGINE_SHAPE                                                                                      \
    ((tiny_shape){.hidden = 32, .intermediate = 48, .layers = 2, .heads = 4, .kv_heads = 2,                    \
                  .vocab = TINY_ENGINE_VOCAB, .max_pos = 128, .scale = 20.0f, .unit_norms = 1})

/* The trainer tests' model (test_trainer_core.c; test_loss_mask.c takes one
 * layer and keeps the norms as initialized). */
#define TINY_TRAINER_VOCAB 24
#define TINY_TRAINER_SHAPE                                                                                     \
    ((tiny_shape){.hidden = 16, .intermediate = 32, .layers = 2, .heads = 2, .kv_heads = 1,                    \
                  .vocab = TINY_TRAINER_VOCAB, .max_pos = 64, .scale = 10.0f, .unit_norms = 1})

/* A new model of shape S (caller: sl_model_free), weights from SEED, room
 * for MAX_TOKENS tokens per forward. */
static inline sl_model *tiny_model_new(tiny_shape s, uint64_t seed, int max_tokens)
{
    sl_hf_config c;
    sl_hf_config_defaults(&c);
    c.arch = SL_ARCH_QWEN3;
    snprintf(c.model_type, sizeof(c.model_type), "qwen3");
    c.hidden_size = s.hidden;
    c.intermediate_size = s.intermediate;
    c.num_hidden_layers = s.layers;
    c.num_attention_heads = s.heads;
    c.num_key_value_heads = s.kv_heads;
    c.head_dim = 8;
    c.vocab_size = s.vocab;
    c.max_position_embeddings = s.max_pos;
    c.qk_norm = 1;
    c.tie_word_embeddings = 1;
    sl_model *m = NULL;
    char err[256];
    assert_int_equal(sl_model_new(&c, sl_ops_cpu(), max_tokens, seed, &m, err, sizeof(err)), 0);
    for (size_t i = 0; i < m->n_params; i++) m->params_mem[i] *= s.scale;
    if (s.unit_norms)
        for (int i = 0; i < m->n_tensors; i++)
            if (m->tensors[i].no_decay)
                for (size_t k = 0; k < m->tensors[i].numel; k++) m->params_mem[m->tensors[i].offset + k] = 1.0f;
    return m;
}

#endif /* SL_TEST_TINY_MODEL_H */
