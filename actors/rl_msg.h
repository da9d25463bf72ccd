/*
 * rl_msg.h — the message types of the RL actors (buffer, rollout, reward,
 * trainer) and their JSON payloads.
 *
 * What it is: the numbers (mailbox/frame.h's RL range 0x0100..0x01FF, which
 * the transport accepts without knowing them) and, per message, the fields
 * of its JSON payload (jansson, UTF-8, < SL_FRAME_MAX_PAYLOAD = 64 KiB).
 * Shared-memory descriptors (mailbox/shm.h, 64 bytes from
 * sl_shm_desc_encode) travel as lowercase hex strings in "desc".
 * mailbox/PROTOCOL.md ("RL messages") describes the same in prose.
 *
 * What it is not: code. Parsing and building the payloads lives with each
 * actor (actors/buffer.c, reward.c, rollout.c, trainer.c).
 *
 * frame.h reserves placeholder names in the RL range (SL_MSG_PROMPTS =
 * 0x0100 ...). The numbers below are the ones actors use on the wire; this
 * header includes frame.h first and then redefines the names as macros, so
 * include rl_msg.h (never frame.h after a use of these names) in actors/.
 */
#ifndef SL_RL_MSG_H
#define SL_RL_MSG_H

#include "frame.h"

/* PROMPTS  buffer -> rollout, one group per message, no reply.
 *   {"step": int, "phase": "rl"|"eval", "group": u64 group id,
 *    "sample_ids": [u64 x n], "prompt": [token ids], "n": int,
 *    "temperature": f, "top_p": f, "top_k": int, "max_new_tokens": int,
 *    "seed": u64, "label": str, "metadata": str}
 * The rollout answers by sending SAMPLES to a reward actor. */
#undef SL_MSG_PROMPTS
#define SL_MSG_PROMPTS 0x0110

/* SAMPLES  rollout -> reward.
 *   {"desc": hex, "step": int, "phase": str, "group": u64,
 *    "weight_version": int, "consumers": {"reward": id, "buffer": id}}
 * The slot holds one group as an actors/sample_batch.h batch (prompt +
 * response ids, per-token rollout logprobs, loss mask 1 on response tokens,
 * sample ids, label and metadata per sample), published to two consumer
 * ids: the reward actor's and the buffer's (SL_RL_CONSUMER_*). */
#undef SL_MSG_SAMPLES
#define SL_MSG_SAMPLES 0x0111

/* SCORED  reward -> buffer.
 *   {"desc": hex, "step", "phase", "group", "weight_version", "consumers"
 *    (the SAMPLES fields, copied), "rewards": [f x n], "failed": [0|1 x n],
 *    "response_len": [int x n]}
 * The reward actor has released its hold; the buffer copies what it needs
 * out of the slot, then releases its own hold. */
#define SL_MSG_SCORED 0x0112

/* TRAIN_BATCH  buffer -> trainer.
 *   {"desc": hex, "step": int, "phase": "sft"|"rl", "cursor": {...},
 *    "n_samples": int}
 * A slot of the buffer's arena: a sample_batch with advantages filled (rl)
 * or a loss mask over the target tokens (sft). "cursor" is the buffer's
 * data cursor (dataset.h) to store in the checkpoint. */
#undef SL_MSG_TRAIN_BATCH
#define SL_MSG_TRAIN_BATCH 0x0113

/* TRAIN_DONE  trainer -> buffer.
 *   {"step": int, "weight_version": int,
 *    "metrics": {"loss", "pg_loss", "kl", "entropy", "grad_norm",
 *                "clipfrac", "lr", "train_rollout_logprob_abs_diff",
 *                "samples_trained", "train_s", ...}}
 * Sent after the ledger line is fsynced, the weights published and the
 * checkpoint (when due) written. */
#define SL_MSG_TRAIN_DONE 0x0114

/* WEIGHTS  trainer -> rollout.
 *   {"desc": hex, "weight_version": int}
 * A flat fp32 parameter array (sl_model params_mem layout) in the trainer's
 * weights arena; the engine copies it in and releases its hold. */
#undef SL_MSG_WEIGHTS
#define SL_MSG_WEIGHTS 0x0115

/* WEIGHTS_REQ  rollout -> trainer.  {}
 * The trainer answers by publishing its current weights (WEIGHTS) to that
 * rollout; a rollout that (re)starts asks. */
#define SL_MSG_WEIGHTS_REQ 0x0116

/* STATUS_REQ  buffer -> trainer (request).  {}
 * STATUS      the reply (sl_actor_reply):
 *   {"step": int, "weight_version": int, "phase": str,
 *    "cursor": {...} | null, "sft_done": bool}
 * from the trainer's loaded checkpoint (resume = auto), zeros when fresh. */
#define SL_MSG_STATUS_REQ 0x0117
#define SL_MSG_STATUS 0x0118

/* REWARD_REQ  reward -> custom reward actor (kind = exec, any language),
 * request.  {"response": str, "label": str, "metadata": str, "prompt": str}
 * REWARD      the reply.  {"reward": float} */
#define SL_MSG_REWARD_REQ 0x0119
#define SL_MSG_REWARD 0x011A

/* The generation service (any actor -> a rollout engine; PROTOCOL.md §11,
 * actors/gen_client.h). Requests with a corr id get their answer as a
 * reply (same corr); a bad request gets an ERROR reply naming the field.
 *
 * GENERATE   {"rid": u64, "prompt": [ids], "max_tokens": int,
 *             "temperature": f, "top_p": f, "top_k": int, "stop": [str],
 *             "stop_token_ids": [int], "seed": u64, "session": str,
 *             "ignore_eos": bool}   (only rid and prompt required)
 * GENERATED  {"rid", "ids": [ids], "logprobs": [f], "finish_reason":
 *             "stop"|"length"|"abort", "weight_version", "prompt_tokens",
 *             "cached_tokens"}
 * ABORT      {"rid": u64} | {"all": true}   (no reply of its own; each
 *             aborted request is answered with its GENERATED)
 * TOKENIZE   {"text": str, "add_special_tokens": bool} -> TOKENIZED {"ids"}
 * DETOKENIZE {"ids": [ids], "skip_special_tokens": bool} -> DETOKENIZED {"text"}
 * APPLY_CHAT_TEMPLATE {"messages": [{"role", "content"}], "add_generation_prompt": bool}
 *             -> CHAT_TEMPLATED {"text", "ids"} */
#undef SL_MSG_GENERATE
#define SL_MSG_GENERATE 0x0120
#define SL_MSG_GENERATED 0x0121
#define SL_MSG_ABORT 0x0122
#define SL_MSG_TOKENIZE 0x0123
#define SL_MSG_TOKENIZED 0x0124
#define SL_MSG_DETOKENIZE 0x0125
#define SL_MSG_DETOKENIZED 0x0126
#define SL_MSG_APPLY_CHAT_TEMPLATE 0x0127
#define SL_MSG_CHAT_TEMPLATED 0x0128

_Static_assert(SL_MSG_CHAT_TEMPLATED <= SL_MSG_RL_LAST, "generation messages lie in the RL range");

/* WF_SAMPLE  workflow actor -> buffer (request), one per sample, when
 * [rollout] workflow names the actor that answers PROMPTS instead of the
 * built-in rollout driver (mailbox/PROTOCOL.md, actors/workflow.h):
 *   {"step": int, "phase": "rl"|"eval", "group": u64, "index": int,
 *    "sample_id": u64, "tokens": [ids, prompt + response], "prompt_len": int,
 *    "loss_mask": [0|1 per response token], "logprobs": [f per response
 *    token; any finite value where loss_mask is 0], "weight_version": int,
 *    "reward": f (optional), "metadata": str (optional),
 *    "metrics": {name: number} (optional: averaged into metrics.jsonl)}
 * WF_ACK     the reply.  {"group": u64, "index": int, "ok": bool,
 *    "reason": str ("" when ok; else one of workflow.h's reason names)} */
#define SL_MSG_WF_SAMPLE 0x0130
#define SL_MSG_WF_ACK 0x0131

/* Consumer ids for shared-memory holders (mailbox/shm.h). */
#define SL_RL_CONSUMER_REWARD_BASE 0  /* reward instance i -> i (0..15) */
#define SL_RL_CONSUMER_ROLLOUT_BASE 16 /* rollout instance i -> 16 + i (weights) */
#define SL_RL_CONSUMER_BUFFER 30
#define SL_RL_CONSUMER_TRAINER 31 /* trainer reading the buffer's train batches */

_Static_assert(SL_MSG_PROMPTS >= SL_MSG_RL_FIRST && SL_MSG_WF_ACK <= SL_MSG_RL_LAST,
               "RL message types lie in frame.h's RL range");

#endif /* SL_RL_MSG_H */
