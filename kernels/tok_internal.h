/*
 * tok_internal.h — the tokenizer's private structures, shared by
 * tokenizer.c (encode/decode) and tok_load.c (reading tokenizer.json and
 * GPT-2's files). Not a public header: include tokenizer.h instead.
 */
#ifndef SL_TOK_INTERNAL_H
#define SL_TOK_INTERNAL_H

#include "tokenizer.h"

#include <pthread.h>
#include <stdint.h>

#include <pcre2.h>

#define TOK_MAX_ID (1 << 24)   /* ids at or above are refused at load */
#define TOK_CACHE_SHARDS 64
#define TOK_CACHE_SLOTS 1024   /* per shard, direct mapped */
#define TOK_CACHE_MAXKEY 64    /* longer words are not cached */
#define TOK_CACHE_MAXIDS 24

/* String -> id, open addressing; keys are the strings stored in `strs`. */
typedef struct tok_map {
    uint32_t *slot;   /* id + 1, 0 = empty */
    uint32_t cap;     /* power of two */
    uint32_t count;
} tok_map;

/* (left id, right id) -> (rank, new id). */
typedef struct tok_merge_ent {
    uint64_t key;     /* (left << 32 | right) + 1, 0 = empty */
    uint32_t rank;
    int32_t new_id;
} tok_merge_ent;

typedef struct tok_added {
    char *content;
    uint32_t len;
    int32_t id;
    uint8_t special, single_word, lstrip, rstrip, normalized;
} tok_added;

enum { NORM_NFC = 1, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_PREPEND, NORM_REPLACE };
typedef struct tok_norm {
    int type;
    char *a; size_t alen;     /* prepend / replace pattern */
    char *b; size_t blen;     /* replace content */
} tok_norm;

enum { SPLIT_REMOVED = 1, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum { PRE_SPLIT = 1, PRE_BYTELEVEL };
typedef struct tok_pre {
    int type;
    pcre2_code *re;           /* Split regex, or ByteLevel's GPT-2 regex when use_regex */
    int behavior, invert;
    int add_prefix_space;
} tok_pre;

enum { DEC_BYTELEVEL = 1, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP };
typedef struct tok_dec {
    int type;
    char *a; size_t alen;     /* replace pattern / strip content */
    char *b; size_t blen;     /* replace content */
    int start, stop;          /* strip */
} tok_dec;

typedef struct tok_cache_ent {
    uint64_t hash;            /* 0 = empty */
    uint8_t klen, nids;
    char key[TOK_CACHE_MAXKEY];
    int32_t ids[TOK_CACHE_MAXIDS];
} tok_cache_ent;

typedef struct tok_cache_shard {
    pthread_mutex_t mu;
    tok_cache_ent *ent;       /* TOK_CACHE_SLOTS, allocated lazily under mu */
} tok_cache_shard;

struct sl_tokenizer {
    const char *kind;
    /* model vocabulary */
    char **mtok;              /* model id -> token (NUL-terminated), NULL = hole */
    uint32_t *mlen;
    int32_t n_model;          /* highest model id + 1 */
    tok_map vocab;
    tok_merge_ent *merges;
    uint32_t merges_cap;
    int32_t unk_id;           /* -1 none */
    int fuse_unk, byte_fallback, ignore_merges;
    int split_mark;           /* words may be cut before each "\u2581" (tok_load.c split_mark_ok) */
    int32_t byte_ids[256];    /* byte fallback "<0xXX>" ids, -1 missing */
    /* added tokens */
    tok_added *added;
    size_t n_added;
    int32_t *added_by_id;     /* id -> index in added, -1; size n_ids */
    int has_norm_added, has_raw_added;
    int32_t *added_by_first;  /* indices into added, grouped by first byte */
    uint32_t first_off[257];  /* group b is added_by_first[first_off[b]..first_off[b+1]) */
    /* pipeline */
    tok_norm *norm; size_t n_norm;
    tok_pre *pre; size_t n_pre;
    int byte_level;           /* a ByteLevel pre-tokenizer is present (last) */
    tok_dec *dec; size_t n_dec;
    int has_decoder;
    /* byte-level alphabet */
    char bl_chr[256][3]; uint8_t bl_len[256];
    int16_t bl_inv[324];      /* code point -> byte, -1 (code points < 324) */
    int32_t n_ids;
    int32_t bos, eos, pad;
    char *chat_template;
    tok_cache_shard cache[TOK_CACHE_SHARDS];
};

/* tok_load.c helpers used by tokenizer.c */
int32_t tok_map_get(const sl_tokenizer *t, const char *s, size_t len);
int tok_merge_get(const sl_tokenizer *t, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id);
void tok_bytelevel_init(sl_tokenizer *t);

#endif /* SL_TOK_INTERNAL_H */
