/*
 * helper_make_qwen.c — writes a tiny randomly initialised Qwen3 model as a
 * Hugging Face folder, for tests that need "a user's Qwen folder"
 * (tests/rl/test_gsm8k_conf.sh):
 *
 *   helper_make_qwen OUTDIR TOKENIZER_DIR [HIDDEN]
 *     -> OUTDIR/config.json, OUTDIR/model.safetensors (F32, tied
 *        embeddings), OUTDIR/tokenizer.json and tokenizer_config.json
 *        copied from TOKENIZER_DIR (e.g. ../shared/data/tokenizers/qwen3).
 *
 * Shape: qwen3, 1 layer, hidden HIDDEN (default 16), 2 heads of 8, 1 KV
 * head, intermediate 2 x hidden, vocab 151936 (Qwen3's; the tokenizer's
 * 151,669 ids fit), eos <|im_end|> 151645 and <|endoftext|> 151643, seed 1.
 * What it is not: a useful model (its answers are noise).
 * Exit 0 done, 1 failure, 2 usage.
 */
#include "base.h"
#include "hfconfig.h"
#include "model.h"
#include "ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int copy_file(const char *from_dir, const char *to_dir, const char *name) {
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, name);
    FILE *in = fopen(a, "rb");
    if (!in) {
        fprintf(stderr, "helper_make_qwen: %s: %s\n", a, strerror(errno));
        return 1;
    }
    FILE *out = fopen(b, "wb");
    if (!out) {
        fprintf(stderr, "helper_make_qwen: %s: %s\n", b, strerror(errno));
        fclose(in);
        return 1;
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = 1;
    if (ferror(in)) rc = 1;
    fclose(in);
    if (fclose(out) != 0) rc = 1;
    if (rc) fprintf(stderr, "helper_make_qwen: copying %s failed\n", a);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: helper_make_qwen OUTDIR TOKENIZER_DIR [HIDDEN]\n");
        return 2;
    }
    int hidden = argc == 4 ? atoi(argv[3]) : 16;
    if (hidden < 16 || hidden > 1024 || hidden % 16) {
        fprintf(stderr, "helper_make_qwen: HIDDEN must be a multiple of 16 in 16..1024\n");
        return 2;
    }
    sl_hf_config c;
    sl_hf_config_defaults(&c);
    c.arch = SL_ARCH_QWEN3;
    snprintf(c.model_type, sizeof c.model_type, "qwen3");
    c.hidden_size = hidden;
    c.intermediate_size = 2 * hidden;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.head_dim = hidden / 2;
    c.vocab_size = 151936;
    c.max_position_embeddings = 2048;
    c.rms_norm_eps = 1e-6;
    c.tie_word_embeddings = 1;
    c.qk_norm = 1;
    c.rope_theta = 1000000.0;
    c.eos_token_ids[0] = 151645;
    c.eos_token_ids[1] = 151643;
    c.n_eos = 2;
    char err[512];
    if (sl_hf_config_validate(&c, err, sizeof err) != 0) {
        fprintf(stderr, "helper_make_qwen: config: %s\n", err);
        return 1;
    }
    sl_model *m = NULL;
    if (sl_model_new(&c, sl_ops_cpu(), 8, 1, &m, err, sizeof err) != 0) {
        fprintf(stderr, "helper_make_qwen: model: %s\n", err);
        return 1;
    }
    int rc = sl_model_save_hf(m, argv[1], SL_DTYPE_F32, err, sizeof err);
    sl_model_free(m);
    if (rc) {
        fprintf(stderr, "helper_make_qwen: save %s: %s\n", argv[1], err);
        return 1;
    }
    if (copy_file(argv[2], argv[1], "tokenizer.json") || copy_file(argv[2], argv[1], "tokenizer_config.json"))
        return 1;
    printf("%s: qwen3, hidden %d, 1 layer, vocab %d\n", argv[1], hidden, c.vocab_size);
    return 0;
}
