/*
 * tokenizer.h — byte-pair-encoding tokenizers read from Hugging Face files:
 * a tokenizer.json (Qwen2/3, Llama 3, Llama 2 with byte fallback, GPT-2
 * style) or GPT-2's original encoder.json + vocab.bpe pair. Encode gives the
 * ids that Hugging Face `tokenizers` gives for encode(text,
 * add_special_tokens=False): no BOS/EOS is added, but added tokens written
 * in the text ("<|im_start|>") are recognized. Decode follows the file's
 * decoder chain.
 *
 * It is not a general tokenizers port: only the BPE model and the
 * normalizers / pre-tokenizers / decoders those families use are read (see
 * tokenizer.c for the list). A file naming anything else is refused at load
 * with SL_EUNSUPPORTED and the component named in the error text — never
 * tokenized silently wrong. Chat templates live in chat.h.
 */
#ifndef SL_TOKENIZER_H
#define SL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_tokenizer sl_tokenizer;

/* Suggested size of the error buffers below (longer messages are cut). */
#define SL_TOKENIZER_ERRLEN 256

/* Load a tokenizer. `path` is one of:
 *   - a tokenizer.json file;
 *   - a folder holding tokenizer.json (tokenizer_config.json beside it, when
 *     present, supplies bos/eos/pad and the chat template);
 *   - a folder holding GPT-2's encoder.json + vocab.bpe (then
 *     "<|endoftext|>", id 50256 in GPT-2's vocab, is the special bos/eos
 *     token, as in Hugging Face's gpt2 tokenizer);
 *   - an encoder.json or vocab.bpe file (its sibling is taken from the same
 *     folder).
 * On success *out owns a new tokenizer (free with sl_tokenizer_free). On
 * error *out is NULL and, when err is not NULL, err[0..errlen) holds a
 * message naming the file and the problem. Errors: SL_ENOENT (no file),
 * SL_EIO, SL_EINVAL (malformed JSON, ids out of range, duplicate ids, merges
 * naming unknown tokens, ...), SL_EUNSUPPORTED (a model / normalizer /
 * pre-tokenizer / decoder type this code does not implement), SL_ENOMEM. */
int sl_tokenizer_load(const char *path, sl_tokenizer **out, char *err, size_t errlen);

/* Load GPT-2's pair of files explicitly. Same contract as above. */
int sl_tokenizer_load_gpt2(const char *encoder_json, const char *vocab_bpe,
                           sl_tokenizer **out, char *err, size_t errlen);

/* Free a tokenizer; NULL is ignored. Not while another thread uses it. */
void sl_tokenizer_free(sl_tokenizer *tok);

/* Encode `len` bytes of `text` (UTF-8; ill-formed sequences are first
 * replaced by U+FFFD as Rust's from_utf8_lossy / Python's
 * decode(errors="replace") do — never an error). Semantics of `tokenizers`'
 * encode(text, add_special_tokens=False). On success *ids is a new
 * malloc'd array of *n ids (caller frees; may be non-NULL with *n == 0 for
 * an empty text). On error *ids is NULL, *n is 0. Errors: SL_EINVAL (NULL
 * arguments), SL_ENOMEM.
 * Thread safety: safe to call from many threads on one tokenizer at once.
 * The per-word BPE cache is split in 64 shards, each behind its own mutex;
 * everything else read during encode is immutable after load. */
int sl_tokenizer_encode(const sl_tokenizer *tok, const char *text, size_t len,
                        int32_t **ids, size_t *n);

/* Decode ids back to text, through the file's decoder chain (byte-level,
 * or Llama 2's Replace/ByteFallback/Fuse/Strip). skip_special != 0 drops
 * special added tokens (like `skip_special_tokens=True`). Byte sequences
 * that are not valid UTF-8 come out as U+FFFD the way `tokenizers` does.
 * On success *text is a new malloc'd NUL-terminated string of *len bytes
 * (len may be NULL). Errors: SL_ERANGE (an id outside the vocabulary;
 * *text is NULL), SL_EINVAL, SL_ENOMEM. Thread-safe. */
int sl_tokenizer_decode(const sl_tokenizer *tok, const int32_t *ids, size_t n,
                        int skip_special, char **text, size_t *len);

/* Number of ids: highest id (model vocabulary or added token) + 1. */
int32_t sl_tokenizer_vocab_size(const sl_tokenizer *tok);

/* Id of a token given by its stored string (the byte-level form, e.g.
 * "Ġthe", or an added token "<|im_end|>"); -1 when there is none. */
int32_t sl_tokenizer_token_to_id(const sl_tokenizer *tok, const char *token, size_t len);

/* Stored string of an id (NUL-terminated, owned by the tokenizer, valid
 * until sl_tokenizer_free); NULL for an id that has no token. *len gets the
 * length when len is not NULL. */
const char *sl_tokenizer_id_to_token(const sl_tokenizer *tok, int32_t id, size_t *len);

/* Special ids, -1 when not known. bos/eos/pad come from
 * tokenizer_config.json when present (bos_token, eos_token, pad_token),
 * otherwise from well-known names in the vocabulary. */
int32_t sl_tokenizer_bos_id(const sl_tokenizer *tok);
int32_t sl_tokenizer_eos_id(const sl_tokenizer *tok);
int32_t sl_tokenizer_pad_id(const sl_tokenizer *tok);

/* 1 when `id` is an added token flagged special (skipped by decode with
 * skip_special), else 0. */
int sl_tokenizer_is_special(const sl_tokenizer *tok, int32_t id);

/* The raw Jinja chat_template string of tokenizer_config.json, or NULL
 * (owned by the tokenizer). chat.h renders the known families natively; this
 * is here so a caller can tell which family a model expects. */
const char *sl_tokenizer_chat_template(const sl_tokenizer *tok);

/* A short name of what was loaded, static storage: "tokenizer.json" or
 * "gpt2-files"; plus the file's pre-tokenizer family guessed for info
 * printing ("byte-level", "metaspace/byte-fallback"). */
const char *sl_tokenizer_kind(const sl_tokenizer *tok);

#endif /* SL_TOKENIZER_H */
