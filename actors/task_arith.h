/*
 * task_arith.h — the built-in synthetic task of the embedded default run:
 * multi-digit arithmetic problems whose answers end in GSM8K's "#### N"
 * form, so that the built-in `gsm8k` reward grades them. It makes:
 *   - a seeded train split (for the SFT warm-up: prompt + worked target),
 *   - a disjoint held-out split (for RL and eval: prompt + label),
 *   - a character-level tokenizer.json for the tiny model (one id per
 *     character of the task's texts) and the tiny model's config.json.
 *
 * Text format (exactly; see sl_arith_format):
 *   prompt, style TERSE:  "47+385="              style WORDS: "What is 47+385?"
 *   target, PLAIN:        "#### 432"
 *   target, REVERSED:     "234\n#### 432"  (the answer's digits least
 *                          significant first — easier for a small causal
 *                          model to compute — then the answer; a negative
 *                          answer: "24-\n#### -42")
 *   label:                "432" (the answer in decimal, '-' for negatives)
 * Operators: '+', '-', '*'. Operands have min_digits..max_digits digits (a
 * one-digit operand is 0..9, a d-digit one 10^(d-1)..10^d-1, the count of
 * digits drawn uniformly first). With `negative` off a subtraction puts the
 * larger operand first, so answers are never negative.
 *
 * Splits. A problem (a, op, b) belongs to the held-out split when
 * XXH3-64("a op b" as the TERSE text without '=') mod 1000 <
 * heldout_permille, else to train — independent of the seed, so the two
 * splits never share a problem whatever seeds generate them. The held-out
 * split has no duplicates; the train split may repeat problems.
 *
 * Sloppy teacher: with sloppy_permille > 0, that share of the train
 * split's targets forget every carry and borrow (sl_arith_carryless): an
 * SFT warm-up on them copies the habit, and RL with the exact reward can
 * then learn to carry (RL exceeding its demonstrations).
 *
 * Randomness: SplitMix64 seeded with seed ^ (0xD1B54A32D192ED03 * (split +
 * 1)); every draw is uniform by rejection, so a (cfg, split, seed, n)
 * gives the same items on every machine.
 *
 * What it is not: no training, no reward (reward_builtin.h grades), no
 * model weights (the trainer initializes them from the config).
 */
#ifndef SL_TASK_ARITH_H
#define SL_TASK_ARITH_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

typedef enum sl_arith_style {
    SL_ARITH_TERSE = 0, /* "47+385=" */
    SL_ARITH_WORDS = 1, /* "What is 47+385?" */
} sl_arith_style;

typedef enum sl_arith_target {
    SL_ARITH_PLAIN = 0,    /* "#### 432" */
    SL_ARITH_REVERSED = 1, /* "234\n#### 432" */
} sl_arith_target;

typedef enum sl_arith_split {
    SL_ARITH_TRAIN = 0,
    SL_ARITH_HELDOUT = 1,
} sl_arith_split;

/* Products stay below 10^14 < 2^53, exact as doubles (the gsm8k reward
 * parses numbers as doubles). Note: sl_reward_gsm8k compares with a relative
 * tolerance of 1e-6, so answers of 10^6 and more are graded loosely (an
 * off-by-one answer above 10^6 scores 1); keep max_digits <= 3 (every
 * answer, products included, below 10^6) where exact grading matters. */
#define SL_ARITH_MAX_DIGITS 7

/* Difficulty and format knobs. */
typedef struct sl_arith_cfg {
    int min_digits;        /* 1 .. SL_ARITH_MAX_DIGITS (default 1) */
    int max_digits;        /* min_digits .. SL_ARITH_MAX_DIGITS (default 2) */
    char ops[4];           /* NUL-terminated non-empty subset of "+-*", no repeats (default "+-") */
    sl_arith_style style;  /* default TERSE */
    sl_arith_target target;/* default PLAIN */
    int heldout_permille;  /* 1 .. 999: share of all problems reserved for held-out (default 100) */
    int negative;          /* 1: "3-7=" may appear (answer -4); default 0 */
    int sloppy_permille;   /* 0 .. 1000: share of TRAIN-split items whose target
                              is written by the sloppy teacher (see
                              sl_arith_carryless); default 0. Which items:
                              deterministic in (seed, item index). */
    int tool_permille;     /* 0 .. 1000: share of TRAIN-split items whose target
                              uses the calculator tool (sl_arith_make_tool);
                              default 0. Deterministic in (seed, item index),
                              a stream apart from the sloppy teacher's. */
} sl_arith_cfg;

/* Fill the defaults above. */
void sl_arith_cfg_init(sl_arith_cfg *cfg);

/* Check a config. Errors: SL_EINVAL with the reason in err (when not NULL). */
int sl_arith_cfg_validate(const sl_arith_cfg *cfg, char *err, size_t errlen);

/* One problem. */
typedef struct sl_arith_item {
    int64_t a, b, answer;
    char op;          /* '+', '-', '*' */
    char prompt[48];  /* NUL-terminated */
    char target[112]; /* the SFT response */
    char label[24];   /* the answer */
} sl_arith_item;

/* Build item *it from (a, op, b) with cfg's style and target. Errors:
 * SL_EINVAL (bad op, operands negative or over SL_ARITH_MAX_DIGITS digits). */
int sl_arith_format(const sl_arith_cfg *cfg, int64_t a, char op, int64_t b, sl_arith_item *it);

/* Which split (a, op, b) belongs to under cfg (see the header comment). */
sl_arith_split sl_arith_split_of(const sl_arith_cfg *cfg, int64_t a, char op, int64_t b);

/* Generate n items of `split` into out[0..n) (caller's array). Errors:
 * SL_EINVAL (bad cfg / NULL), SL_ERANGE (the held-out split of this cfg
 * has fewer than n distinct problems, or they were not found within
 * 1000 * n + 100000 draws). Deterministic in (cfg, split, seed, n), and
 * the first k items of a run with n >= k equal a run with n = k. Pure. */
int sl_arith_generate(const sl_arith_cfg *cfg, sl_arith_split split, uint64_t seed, size_t n,
                      sl_arith_item *out);

/* The answer of a "sloppy teacher" who forgets every carry and borrow:
 * digit-wise (a_i + b_i) mod 10 for '+', |a_i - b_i| for '-' (a >= b
 * assumed; a problem without carry/borrow gets its right answer). A
 * product, or a negative answer, returns it->answer unchanged. Pure. */
int64_t sl_arith_carryless(const sl_arith_item *it);

/* Rewrite it->target as the sloppy teacher would (the carry-less answer in
 * cfg's target form; label, prompt and answer unchanged: the label stays
 * the true answer). A product or a negative answer keeps its target.
 * Errors: SL_EINVAL (NULL). */
int sl_arith_make_sloppy(const sl_arith_cfg *cfg, sl_arith_item *it);

/* Rewrite it->target in the tool form of the example tool workflow
 * (actors/wf_tool.h): "<calc>A op B</calc><result>ANSWER</result>#### ANSWER"
 * (the calculator's exact answer; the "<result>...</result>" part is what
 * the workflow inserts, with loss_mask 0). Errors: SL_EINVAL (NULL). */
int sl_arith_make_tool(sl_arith_item *it);

/* Write items as JSON lines {"input": prompt, "label": label} plus
 * "response": target when with_response (the dataset's default keys; an
 * SFT dataset reads "response" with opts.response_key). Written to
 * PATH.tmp and renamed. Errors: SL_EIO, SL_EINVAL. */
int sl_arith_write_jsonl(const char *path, const sl_arith_item *items, size_t n, int with_response);

/* ------------------------------------------------------------ tiny model */

/* The character-level tokenizer: a BPE model without merges whose vocab is
 * "<unk>" (id 0), the printable ASCII characters ' '..'~' (ids 1..95, in
 * code order) and "\n" (id 96); added special tokens "<|endoftext|>" (97),
 * "<|im_start|>" (98), "<|im_end|>" (99). No normalizer, no
 * pre-tokenizer, a Fuse decoder: every character of the task's texts (and
 * of the ChatML-rendered prompts) is one id. */
#define SL_ARITH_VOCAB_SIZE 100
#define SL_ARITH_UNK_ID 0
#define SL_ARITH_NEWLINE_ID 96
#define SL_ARITH_ENDOFTEXT_ID 97
#define SL_ARITH_IM_START_ID 98
#define SL_ARITH_IM_END_ID 99

/* Write DIR/tokenizer.json, DIR/tokenizer_config.json (eos
 * "<|im_end|>", pad "<|endoftext|>", no bos, a ChatML chat_template) and
 * DIR/special_tokens_map.json.
 * DIR is created (0755) when missing. Errors: SL_EIO (with err), SL_ENOMEM. */
int sl_arith_write_tokenizer(const char *dir, char *err, size_t errlen);

/* The tiny transformer's shape. */
typedef struct sl_arith_model_cfg {
    const char *model_type;   /* "qwen3" (default), "qwen2" (q/k/v bias) or "llama" */
    int hidden_size;          /* default 64 */
    int intermediate_size;    /* default 192 */
    int num_hidden_layers;    /* default 2 */
    int num_attention_heads;  /* default 4 */
    int num_key_value_heads;  /* default 2 */
    int head_dim;             /* default hidden / heads = 16 */
    int max_position_embeddings; /* default 256 */
    double rope_theta;        /* default 10000 */
    int tie_word_embeddings;  /* default 1 */
    int vocab_size;           /* default SL_ARITH_VOCAB_SIZE; more = rows no token of the
                               * tokenizer uses (the shape of a real vocabulary) */
} sl_arith_model_cfg;

void sl_arith_model_cfg_init(sl_arith_model_cfg *m);

/* Write DIR/config.json for a model of shape *m (NULL = defaults) with
 * its vocab_size (>= SL_ARITH_VOCAB_SIZE), eos_token_id <|im_end|>, pad_token_id
 * <|endoftext|>, dtype float32, in the form transformers writes, and
 * DIR/generation_config.json (eos <|im_end|>, pad <|endoftext|>). DIR is
 * created when missing. Errors: SL_EINVAL (a bad shape, with err), SL_EIO. */
int sl_arith_write_model_config(const char *dir, const sl_arith_model_cfg *m, char *err, size_t errlen);

#endif /* SL_TASK_ARITH_H */
