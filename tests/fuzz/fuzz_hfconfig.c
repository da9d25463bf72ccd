/*
 * fuzz_hfconfig.c — libFuzzer target for config.json parsing
 * (kernels/hfconfig.h: sl_hf_config_parse).
 *
 * Input: config.json text (not NUL-terminated). Properties: parsing never
 * crashes or leaks; a refused text leaves nothing to free and gives a
 * message; an accepted config validates, has a positive parameter count,
 * and survives sl_hf_config_save + sl_hf_config_load with the same sizes
 * (the save is into a private temporary folder).
 * What it is not: a test of which keys transformers itself accepts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "hfconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void cleanup(void) {
    char p[128];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/sl_fuzz_hf.XXXXXX");
        if (!mkdtemp(dir)) abort();
        atexit(cleanup);
    }
    /* an exact-size copy so that ASan sees any read past the end */
    char *text = malloc(size ? size : 1);
    if (!text) abort();
    if (size) memcpy(text, data, size);
    sl_hf_config c;
    char err[512];
    err[0] = 0;
    int rc = sl_hf_config_parse(&c, text, size, err, sizeof err);
    if (rc) {
        FUZZ_CHECK(err[0] != 0);
    } else {
        char e2[512];
        FUZZ_CHECK(sl_hf_config_validate(&c, e2, sizeof e2) == 0);
        FUZZ_CHECK(sl_hf_config_param_count(&c) > 0);
        char path[128];
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (sl_hf_config_save(&c, path, "float32", e2, sizeof e2) == 0) {
            sl_hf_config d;
            int rc2 = sl_hf_config_load(&d, path, e2, sizeof e2);
            if (rc2) fprintf(stderr, "reload failed: %s\n", e2);
            FUZZ_CHECK(rc2 == 0);
            FUZZ_CHECK(d.hidden_size == c.hidden_size && d.num_hidden_layers == c.num_hidden_layers);
            FUZZ_CHECK(d.num_attention_heads == c.num_attention_heads);
            FUZZ_CHECK(d.num_key_value_heads == c.num_key_value_heads && d.head_dim == c.head_dim);
            FUZZ_CHECK(d.vocab_size == c.vocab_size && d.intermediate_size == c.intermediate_size);
            FUZZ_CHECK(d.tie_word_embeddings == c.tie_word_embeddings && d.qk_norm == c.qk_norm);
            FUZZ_CHECK(strcmp(d.model_type, c.model_type) == 0);
            sl_hf_config_fini(&d);
        }
        sl_hf_config_fini(&c);
        sl_hf_config_fini(&c); /* documented safe twice */
    }
    free(text);
    return 0;
}
