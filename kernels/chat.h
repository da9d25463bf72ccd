/*
 * chat.h — built-in chat-template renderers for the model families we
 * support: ChatML as Qwen3's template writes it, and Llama 3. The output is
 * the same string Hugging Face's apply_chat_template(messages,
 * tokenize=False, add_generation_prompt=...) produces with the templates of
 * those families; tokenize it with sl_tokenizer_encode (added tokens such as
 * "<|im_start|>" are recognized in the text).
 *
 * It is not a Jinja interpreter: a template other than the built-in ones is
 * not rendered. Tools / tool calls are not rendered (messages with the
 * "tool" role are refused with SL_EUNSUPPORTED).
 */
#ifndef SL_CHAT_H
#define SL_CHAT_H

#include <stddef.h>

typedef enum sl_chat_format {
    SL_CHAT_NONE = 0,   /* no template: content concatenated as is */
    SL_CHAT_CHATML = 1, /* Qwen2/2.5/3: <|im_start|>role\n...<|im_end|>\n */
    SL_CHAT_LLAMA3 = 2, /* <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
} sl_chat_format;

/* One message. Strings are borrowed (the caller owns them). role is
 * "system", "user" or "assistant". reasoning_content may be NULL (Qwen3
 * then takes the reasoning from "<think>...</think>" in content). */
typedef struct sl_chat_msg {
    const char *role;
    const char *content;
    const char *reasoning_content;
} sl_chat_msg;

/* A list of messages that owns its strings (from sl_chat_parse_json). */
typedef struct sl_chat_msgs {
    sl_chat_msg *msgs;
    size_t n;
} sl_chat_msgs;

typedef struct sl_chat_opts {
    int add_generation_prompt; /* append the assistant header */
    int enable_thinking;       /* Qwen3: -1 undefined (default), 0 = false
                                  (empty think block after the prompt), 1 */
    const char *bos_token;     /* Llama 3: NULL = "<|begin_of_text|>" */
} sl_chat_opts;

/* Defaults: add_generation_prompt = 1, enable_thinking = -1. */
void sl_chat_opts_init(sl_chat_opts *opts);

/* Format from a name: "chatml", "qwen", "qwen2", "qwen2.5", "qwen3",
 * "llama3", "llama-3", "llama3.1", "none" (case-insensitive), or from a
 * config's model_type ("qwen2", "qwen3", "llama" — llama maps to Llama 3).
 * Returns SL_EINVAL for an unknown name (*out untouched). */
int sl_chat_format_from_name(const char *name, sl_chat_format *out);

/* Guess the format from a raw Jinja template (sl_tokenizer_chat_template):
 * "<|im_start|>" → CHATML, "<|start_header_id|>" → LLAMA3, else NONE. */
sl_chat_format sl_chat_format_from_template(const char *jinja);

/* Name of a format, static storage. */
const char *sl_chat_format_name(sl_chat_format fmt);

/* Render messages. On success *out is a new malloc'd NUL-terminated
 * string (caller frees), *len its length (len may be NULL). opts NULL =
 * defaults. Errors: SL_EINVAL (NULL role/content, unknown role, bad
 * format), SL_EUNSUPPORTED ("tool" role), SL_ENOMEM. On error *out is
 * NULL. Thread-safe (no state). */
int sl_chat_render(sl_chat_format fmt, const sl_chat_msg *msgs, size_t n,
                   const sl_chat_opts *opts, char **out, size_t *len);

/* Parse a JSON message list: either an array of {"role":..., "content":...}
 * objects, or an object holding such an array under "messages". Optional
 * "reasoning_content" strings are kept; other keys are ignored. On success
 * `out` owns copies of the strings (free with sl_chat_msgs_fini). Errors:
 * SL_EINVAL with err (when not NULL) saying what is wrong; on error `out`
 * is left empty. */
int sl_chat_parse_json(const char *json, size_t len, sl_chat_msgs *out, char *err,
                       size_t errlen);

/* Release what sl_chat_parse_json filled; safe on a zeroed or finished
 * list (twice is fine). */
void sl_chat_msgs_fini(sl_chat_msgs *msgs);

#endif /* SL_CHAT_H */
