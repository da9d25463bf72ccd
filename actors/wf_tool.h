/*
 * wf_tool.h — the example multi-turn tool workflow (bin/slime-wf-tool, run
 * as a workflow actor: [rollout] workflow = NAME, [actor NAME] kind = exec,
 * command = build/slime-wf-tool) and its calculator.
 *
 * The workflow: for every sample of a PROMPTS group it asks a rollout
 * engine to GENERATE (actors/gen_client.h, asynchronously: all samples of
 * all groups in flight share the engine's batch) with the stop string
 * "</calc>". When the model closes a `<calc>EXPR</calc>`, EXPR is evaluated
 * here (sl_calc_eval) and `<result>VALUE</result>` (or `<result>error
 * </result>`) is appended with loss_mask 0, then generation continues from
 * the whole sequence (same session: the engine reuses its KV). A sample
 * ends at EOS, at the response budget (max_new_tokens, tool text
 * included) or after SL_WF_TOOL_MAX_CALLS calls; it goes to the buffer as
 * WF_SAMPLE with metrics {"tool_call_rate": 0|1, "tool_calls": k,
 * "tool_errors": e} (averaged per step in metrics.jsonl). The reward
 * actors score it (no reward of its own).
 *
 * Text <-> ids with the run's model tokenizer, loaded locally (C); the
 * Python twin (bin/wf_tool.py) asks the engine (TOKENIZE/DETOKENIZE).
 *
 * What it is not: a sandbox (the calculator is a pure bounded parser; it
 * never executes anything).
 */
#ifndef SL_WF_TOOL_H
#define SL_WF_TOOL_H

#include <stddef.h>
#include <stdint.h>

#include "actor.h"

#define SL_CALC_MAX_LEN 64     /* characters of an expression */
#define SL_CALC_MAX_DEPTH 8    /* nested parentheses */
#define SL_CALC_MAX_ABS 1000000000000LL /* |every intermediate value| <= 10^12 */
#define SL_WF_TOOL_MAX_CALLS 4 /* tool calls per sample */

/* Evaluate EXPR (LEN bytes): integers, + - * / (integer division that
 * truncates toward zero), unary minus, parentheses, spaces. Returns 0 and
 * *out, or SL_EINVAL with a reason in ERR (syntax, too long, too deep,
 * division by zero, a value over SL_CALC_MAX_ABS). Pure, bounded
 * (O(LEN) time, depth <= SL_CALC_MAX_DEPTH). */
int sl_calc_eval(const char *expr, size_t len, int64_t *out, char *err, size_t errlen);

/* If TEXT (a response so far) ends with "</calc>" after an opening
 * "<calc>", the expression between the last "<calc>" and that end:
 * *expr points into TEXT, *len its length; returns 1. Else 0. */
int sl_calc_find_call(const char *text, size_t n, const char **expr, size_t *len);

/* The workflow actor (bin/slime-wf-tool.c runs it with sl_actor_main). */
extern const sl_actor_ops sl_wf_tool_ops;

#endif /* SL_WF_TOOL_H */
