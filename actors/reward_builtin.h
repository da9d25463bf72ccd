/*
 * reward_builtin.h — the built-in rule-based rewards (slime's rm_hub):
 * `math` (last \boxed{} answer graded like slime's grade_answer_verl:
 * Hendrycks normalization, then a normalized/numeric comparison), `gsm8k`
 * (the "#### N" answer), `exact` (trimmed equality), `f1` (SQuAD token F1,
 * slime's f1_score), `format` (a well-formed final answer is present), and a
 * registry by rm_type name; a "boxed_" prefix (as in slime) first replaces
 * the response by its last \boxed{} content.
 *
 * What it is not: no plugins, no processes, no time limits (the reward
 * actor owns those). These are pure functions over bytes.
 *
 * Hostile input: responses are (pointer, length) and may hold NUL bytes or
 * be huge; labels and metadata are NUL-terminated and may be NULL. Every
 * function runs in time linear (or n log n) in its input and never reads
 * past it; answers longer than SL_REWARD_MAX_ANSWER bytes score 0.
 *
 * Thread safety: all functions are reentrant.
 */
#ifndef SL_REWARD_BUILTIN_H
#define SL_REWARD_BUILTIN_H

#include <stddef.h>

#include "base.h"

/* Longest extracted answer / label the graders normalize (bytes). */
#define SL_REWARD_MAX_ANSWER 4096

/* One reward function. Scores `response` (response_len bytes, need not be
 * NUL-terminated) against `label` (NUL-terminated, NULL = none) with
 * optional `metadata_json` (a JSON object as text, NULL = none; unknown
 * keys ignored, bad JSON ignored). Writes a score in [0, 1] to *score and
 * returns 0; returns SL_EINVAL only when score is NULL (or response is NULL
 * with a non-zero length), SL_ENOMEM when scratch memory ran out (*score is
 * then 0). A missing answer or label is a score of 0, not an error. */
typedef int (*sl_reward_fn)(const char *response, size_t response_len,
                            const char *label, const char *metadata_json,
                            double *score);

/* math: 1 when the last \boxed{...} of the response equals the label (a
 * label holding \boxed{} is extracted first), else 0. Equality, as in
 * slime's grade_answer_verl (slime/rollout/rm_hub/math_utils.py): equal
 * strings after Hendrycks' _strip_string (\left/\right, \!, dollars, units
 * after "\text{ ", degrees, \%, dfrac/tfrac, \frac12, a/b -> \frac{a}{b},
 * 0.5 -> \frac{1}{2}, "x = " prefixes, spaces), or after the second
 * normalization (\text{} wrapper, $, %, unit words, thousands separators,
 * x.0 -> x, LaTeX to text, lowercase) either equal strings or, element by
 * element for tuples/intervals: two plain fractions must match exactly
 * (2/4 != 1/2, as slime), an integer only equals an integer, and otherwise
 * the two expressions must evaluate to the same number (relative 1e-12) at
 * three points for up to two unknown letters (slime uses sympy.simplify).
 * Extension over slime: the Unicode minus U+2212 reads as '-'. */
int sl_reward_math(const char *response, size_t response_len, const char *label,
                   const char *metadata_json, double *score);

/* gsm8k: the number after the last "####" of the response (commas, '$' and
 * a trailing '.' dropped; U+2212 reads as '-') compared numerically with
 * the label's number (the label's own last "####" answer when it has one,
 * else the whole label). No "####": 0, unless metadata has
 * {"flexible": true}, then the last number of the response is used (the
 * "flexible" mode of the common GSM8K graders; slime has no gsm8k rm_type
 * and grades GSM8K with `math`). */
int sl_reward_gsm8k(const char *response, size_t response_len, const char *label,
                    const char *metadata_json, double *score);

/* exact: 1 when response and label are equal after trimming ASCII
 * whitespace at both ends (case-sensitive), else 0. */
int sl_reward_exact(const char *response, size_t response_len, const char *label,
                    const char *metadata_json, double *score);

/* f1: slime's f1_score (slime/rollout/rm_hub/f1.py, SQuAD's): lowercase,
 * drop ASCII punctuation, drop the articles a/an/the, split on whitespace,
 * token-multiset F1; "yes"/"no"/"noanswer" must match exactly. Lowercasing
 * is ASCII-only (Python lowercases all of Unicode). */
int sl_reward_f1(const char *response, size_t response_len, const char *label,
                 const char *metadata_json, double *score);

/* format: 1 when the response ends its answer in a form the graders can
 * read, else 0; the label is ignored. Accepted forms: a line "#### N" with N
 * a number and nothing but whitespace after N on that line, or a balanced
 * \boxed{...} with non-blank content. metadata {"format": "gsm8k"} or
 * {"format": "boxed"} accepts only that form. (Our own definition: slime
 * has no format reward.) */
int sl_reward_format(const char *response, size_t response_len, const char *label,
                     const char *metadata_json, double *score);

/* The function registered under rm_type ("math", "gsm8k", "exact", "f1",
 * "format"), or NULL. The "boxed_" prefix is handled by sl_reward_score,
 * not here. */
sl_reward_fn sl_reward_find(const char *rm_type);

/* Score with the function named rm_type; "boxed_X" first replaces the
 * response by its last \boxed{} content ("" when there is none), then
 * applies X (slime async_rm). Returns SL_ENOENT for an unknown or NULL name
 * (*score = 0), otherwise what the function returns. */
int sl_reward_score(const char *rm_type, const char *response, size_t response_len,
                    const char *label, const char *metadata_json, double *score);

/* The last \boxed{...} of text (slime last_boxed_only_string + remove_boxed
 * over "\boxed"): on success *start and *out_len give the content between the
 * braces (inside text) and 0 is returned; SL_ENOENT when there is no
 * "\boxed" followed directly by '{' at the last occurrence, or its braces
 * never balance. */
int sl_reward_extract_boxed(const char *text, size_t len, size_t *start, size_t *out_len);

/* slime's grade_answer_verl on two already-extracted answers (NUL-
 * terminated): 1 if `given` equals `truth` as described for sl_reward_math,
 * 0 if not (or on a NULL/empty/too long argument or no memory). */
int sl_reward_math_equal(const char *given, const char *truth);

#endif /* SL_REWARD_BUILTIN_H */
