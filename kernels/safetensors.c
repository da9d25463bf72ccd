/*
 * safetensors.c — mmap reader, validator and writer of safetensors files and
 * their sharded index. See safetensors.h for the contract. The validation
 * follows the reference (Rust) loader: header length within the file and at
 * most 100 MB, a JSON object, every tensor with a known dtype, a shape and
 * data_offsets whose length matches, offsets covering the data section
 * exactly once with no holes and no overlaps.
 */
#include "safetensors.h"

#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- dtypes */

const char *sl_dtype_name(sl_dtype dt) {
    switch (dt) {
    case SL_DTYPE_F32: return "F32";
    case SL_DTYPE_BF16: return "BF16";
    case SL_DTYPE_F16: return "F16";
    }
    return "?";
}

size_t sl_dtype_size(sl_dtype dt) {
    switch (dt) {
    case SL_DTYPE_F32: return 4;
    case SL_DTYPE_BF16: return 2;
    case SL_DTYPE_F16: return 2;
    }
    return 0;
}

int sl_dtype_from_name(const char *s, sl_dtype *out) {
    if (!s) return SL_EINVAL;
    if (!strcmp(s, "F32")) *out = SL_DTYPE_F32;
    else if (!strcmp(s, "BF16")) *out = SL_DTYPE_BF16;
    else if (!strcmp(s, "F16")) *out = SL_DTYPE_F16;
    else return SL_EUNSUPPORTED;
    return SL_OK;
}

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float sl_bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

uint16_t sl_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float sl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        if (man == 0) return bits_to_f32(sign);
        /* subnormal: value = man * 2^-24, exact in f32 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (man << 13));
    return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* ---------------------------------------------------------------- errors */

static int seterr(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int seterr(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void fmt_shape(char *buf, size_t len, const int64_t *shape, int ndim) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

/* ---------------------------------------------------------------- reading */

typedef struct shard {
    char *path;
    void *map;
    size_t size;
} shard;

struct sl_safetensors {
    shard *shards;
    int nshards;
    sl_st_tensor *t; /* sorted by name */
    size_t n, cap;
    int64_t total_numel;
};

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const sl_st_tensor *)a)->name, ((const sl_st_tensor *)b)->name);
}

typedef struct span {
    uint64_t begin, end;
    const char *name;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* A non-negative JSON integer, or -1. */
static int64_t json_uint(const json_t *j) {
    if (!json_is_integer(j)) return -1;
    json_int_t v = json_integer_value(j);
    return v < 0 ? -1 : (int64_t)v;
}

/* Parse and validate one tensor entry. */
static int parse_entry(const char *path, const char *name, json_t *v, uint64_t data_len,
                       sl_st_tensor *t, span *sp, char *err, size_t errlen) {
    if (!json_is_object(v))
        return seterr(err, errlen, SL_EINVAL, "%s: tensor '%s': entry is not a JSON object", path,
                      name);
    json_t *jd = json_object_get(v, "dtype");
    json_t *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!jd) return seterr(err, errlen, SL_EINVAL, "%s: tensor '%s': missing dtype", path, name);
    if (!json_is_string(jd))
        return seterr(err, errlen, SL_EINVAL, "%s: tensor '%s': dtype is not a string", path, name);
    if (sl_dtype_from_name(json_string_value(jd), &t->dtype) != SL_OK)
        return seterr(err, errlen, SL_EUNSUPPORTED,
                      "%s: tensor '%s': unknown/unsupported dtype '%s' (F32, BF16, F16 are read)",
                      path, name, json_string_value(jd));
    if (!js) return seterr(err, errlen, SL_EINVAL, "%s: tensor '%s': missing shape", path, name);
    if (!json_is_array(js))
        return seterr(err, errlen, SL_EINVAL, "%s: tensor '%s': shape is not an array", path, name);
    size_t nd = json_array_size(js);
    if (nd > SL_ST_MAX_DIMS)
        return seterr(err, errlen, SL_EUNSUPPORTED, "%s: tensor '%s': rank %zu above %d", path,
                      name, nd, SL_ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        int64_t d = json_uint(json_array_get(js, i));
        if (d < 0)
            return seterr(err, errlen, SL_EINVAL,
                          "%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name,
                          i);
        t->shape[i] = d;
        if (d && numel > (uint64_t)INT64_MAX / 4 / (uint64_t)d)
            return seterr(err, errlen, SL_EINVAL, "%s: tensor '%s': shape product overflows",
                          path, name);
        numel *= (uint64_t)d;
    }
    t->numel = (int64_t)numel;
    if (!jo)
        return seterr(err, errlen, SL_EINVAL, "%s: tensor '%s': missing data_offsets", path, name);
    int64_t b = -1, e = -1;
    if (json_is_array(jo) && json_array_size(jo) == 2) {
        b = json_uint(json_array_get(jo, 0));
        e = json_uint(json_array_get(jo, 1));
    }
    if (b < 0 || e < 0)
        return seterr(err, errlen, SL_EINVAL,
                      "%s: tensor '%s': data_offsets must be [begin, end], two non-negative "
                      "integers",
                      path, name);
    if (e < b)
        return seterr(err, errlen, SL_EINVAL,
                      "%s: tensor '%s': data_offsets [%lld, %lld] end before begin", path, name,
                      (long long)b, (long long)e);
    if ((uint64_t)e > data_len)
        return seterr(err, errlen, SL_EINVAL,
                      "%s: tensor '%s': data_offsets [%lld, %lld] out of range (data section is "
                      "%llu bytes)",
                      path, name, (long long)b, (long long)e, (unsigned long long)data_len);
    uint64_t want = numel * sl_dtype_size(t->dtype);
    if ((uint64_t)(e - b) != want) {
        char sh[160];
        fmt_shape(sh, sizeof sh, t->shape, t->ndim);
        return seterr(err, errlen, SL_EINVAL,
                      "%s: tensor '%s': data length %lld bytes does not match shape %s x %s (%llu "
                      "bytes)",
                      path, name, (long long)(e - b), sh, sl_dtype_name(t->dtype),
                      (unsigned long long)want);
    }
    t->nbytes = (size_t)want;
    sp->begin = (uint64_t)b;
    sp->end = (uint64_t)e;
    return SL_OK;
}

static int push_tensor(sl_safetensors *st, const sl_st_tensor *t) {
    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 64;
        sl_st_tensor *nt = realloc(st->t, nc * sizeof *nt);
        if (!nt) return SL_ENOMEM;
        st->t = nt;
        st->cap = nc;
    }
    st->t[st->n++] = *t;
    return SL_OK;
}

/* Map one file and append its tensors to st (shard index si). */
static int load_shard(sl_safetensors *st, int si, char *err, size_t errlen) {
    shard *sh = &st->shards[si];
    const char *path = sh->path;
    int rc = SL_OK;
    json_t *root = NULL;
    span *spans = NULL;
    size_t first = st->n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return seterr(err, errlen, errno == ENOENT ? SL_ENOENT : SL_EIO, "%s: cannot open: %s",
                      path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = seterr(err, errlen, SL_EIO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return seterr(err, errlen, SL_EINVAL, "%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return seterr(err, errlen, SL_EINVAL,
                      "%s: truncated: %lld bytes, shorter than the 8-byte header length", path,
                      (long long)sb.st_size);
    }
    sh->size = (size_t)sb.st_size;
    sh->map = mmap(NULL, sh->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (sh->map == MAP_FAILED) {
        sh->map = NULL;
        return seterr(err, errlen, SL_EIO, "%s: mmap failed: %s", path, strerror(errno));
    }
    const uint8_t *base = sh->map;
    uint64_t hlen = sl_get_u64(base);
    if (hlen > SL_ST_MAX_HEADER)
        return seterr(err, errlen, SL_EINVAL,
                      "%s: absurd header length %llu (limit %u bytes)", path,
                      (unsigned long long)hlen, SL_ST_MAX_HEADER);
    if (hlen > sh->size - 8)
        return seterr(err, errlen, SL_EINVAL,
                      "%s: header length %llu runs past the end of the file (%zu bytes): "
                      "truncated or not a safetensors file",
                      path, (unsigned long long)hlen, sh->size);
    if (hlen < 2 || base[8] != '{')
        return seterr(err, errlen, SL_EINVAL, "%s: header is not a JSON object", path);
    json_error_t je;
    root = json_loadb((const char *)base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (strstr(je.text, "duplicate"))
            return seterr(err, errlen, SL_EINVAL, "%s: header has duplicate tensor names: %s",
                          path, je.text);
        return seterr(err, errlen, SL_EINVAL, "%s: header is not valid JSON: %s (at byte %d)",
                      path, je.text, je.position);
    }
    if (!json_is_object(root)) {
        rc = seterr(err, errlen, SL_EINVAL, "%s: header is not a JSON object", path);
        goto out;
    }
    uint64_t data_len = sh->size - 8 - hlen;
    const uint8_t *data = base + 8 + hlen;
    size_t nt = json_object_size(root);
    spans = calloc(nt ? nt : 1, sizeof *spans);
    if (!spans) {
        rc = SL_ENOMEM;
        goto out;
    }
    size_t ns = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) {
                rc = seterr(err, errlen, SL_EINVAL, "%s: __metadata__ is not a JSON object", path);
                goto out;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = seterr(err, errlen, SL_EINVAL,
                                "%s: __metadata__ value '%s' is not a string", path, mk);
                    goto out;
                }
            }
            continue;
        }
        if (!*key) {
            rc = seterr(err, errlen, SL_EINVAL, "%s: a tensor has an empty name", path);
            goto out;
        }
        sl_st_tensor t;
        memset(&t, 0, sizeof t);
        rc = parse_entry(path, key, val, data_len, &t, &spans[ns], err, errlen);
        if (rc) goto out;
        t.name = strdup(key);
        if (!t.name) {
            rc = SL_ENOMEM;
            goto out;
        }
        t.data = data + spans[ns].begin;
        t.shard = si;
        spans[ns].name = t.name;
        rc = push_tensor(st, &t);
        if (rc) {
            free((char *)t.name);
            goto out;
        }
        ns++;
    }
    /* The data section must be covered exactly: sorted by offset, each
     * tensor starts where the previous ended, the last ends at the end. */
    qsort(spans, ns, sizeof *spans, cmp_span);
    uint64_t at = 0;
    for (size_t i = 0; i < ns; i++) {
        if (spans[i].begin < at) {
            rc = seterr(err, errlen, SL_EINVAL,
                        "%s: tensor '%s': data_offsets [%llu, %llu] overlap the previous tensor "
                        "(ending at %llu)",
                        path, spans[i].name, (unsigned long long)spans[i].begin,
                        (unsigned long long)spans[i].end, (unsigned long long)at);
            goto out;
        }
        if (spans[i].begin > at) {
            rc = seterr(err, errlen, SL_EINVAL,
                        "%s: tensor '%s': data_offsets [%llu, %llu] leave a hole after byte "
                        "%llu",
                        path, spans[i].name, (unsigned long long)spans[i].begin,
                        (unsigned long long)spans[i].end, (unsigned long long)at);
            goto out;
        }
        at = spans[i].end;
    }
    if (at != data_len) {
        rc = seterr(err, errlen, SL_EINVAL,
                    "%s: tensors cover %llu bytes but the data section is %llu bytes "
                    "(truncated or trailing garbage)",
                    path, (unsigned long long)at, (unsigned long long)data_len);
        goto out;
    }
out:
    if (rc && rc != SL_ENOMEM) {
        /* drop the tensors of this shard (names freed by close otherwise) */
        for (size_t i = first; i < st->n; i++) free((char *)st->t[i].name);
        st->n = first;
    } else if (rc == SL_ENOMEM) {
        seterr(err, errlen, SL_ENOMEM, "%s: out of memory", path);
    }
    free(spans);
    json_decref(root);
    return rc;
}

void sl_safetensors_close(sl_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free((char *)st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->nshards; i++) {
        if (st->shards[i].map) munmap(st->shards[i].map, st->shards[i].size);
        free(st->shards[i].path);
    }
    free(st->shards);
    free(st);
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

static char *dir_of(const char *path) {
    const char *s = strrchr(path, '/');
    if (!s) return strdup(".");
    if (s == path) return strdup("/");
    return strndup(path, (size_t)(s - path));
}

static int add_shard(sl_safetensors *st, char *path) {
    shard *ns = realloc(st->shards, (size_t)(st->nshards + 1) * sizeof *ns);
    if (!ns) {
        free(path);
        return SL_ENOMEM;
    }
    st->shards = ns;
    memset(&ns[st->nshards], 0, sizeof *ns);
    ns[st->nshards].path = path;
    st->nshards++;
    return SL_OK;
}

/* A shard name from an index: a plain file name in the same folder. */
static int shard_name_ok(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    if (strchr(s, '/') || strchr(s, '\\')) return 0;
    return 1;
}

static int load_index(sl_safetensors *st, const char *ipath, char *err, size_t errlen) {
    int rc = SL_OK;
    json_error_t je;
    char *dir = NULL;
    const char **names = NULL;
    struct stat sb;
    if (stat(ipath, &sb) != 0)
        return seterr(err, errlen, errno == ENOENT ? SL_ENOENT : SL_EIO, "%s: cannot open: %s",
                      ipath, strerror(errno));
    if (!S_ISREG(sb.st_mode) || sb.st_size > 1000ll * 1000 * 1000)
        return seterr(err, errlen, SL_EINVAL, "%s: not a regular file of sane size", ipath);
    json_t *root = json_load_file(ipath, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return seterr(err, errlen, SL_EINVAL, "%s: index is not valid JSON: %s (line %d)", ipath,
                      je.text, je.line);
    if (!json_is_object(root)) {
        rc = seterr(err, errlen, SL_EINVAL, "%s: index is not a JSON object", ipath);
        goto out;
    }
    json_t *meta = json_object_get(root, "metadata");
    if (meta && !json_is_object(meta) && !json_is_null(meta)) {
        rc = seterr(err, errlen, SL_EINVAL, "%s: index \"metadata\" is not an object", ipath);
        goto out;
    }
    json_t *ts = meta ? json_object_get(meta, "total_size") : NULL;
    if (ts && !json_is_integer(ts) && !json_is_real(ts)) {
        rc = seterr(err, errlen, SL_EINVAL, "%s: index \"metadata.total_size\" is not a number",
                    ipath);
        goto out;
    }
    json_t *wm = json_object_get(root, "weight_map");
    if (!wm || !json_is_object(wm)) {
        rc = seterr(err, errlen, SL_EINVAL, "%s: index has no \"weight_map\" object", ipath);
        goto out;
    }
    if (json_object_size(wm) == 0) {
        rc = seterr(err, errlen, SL_EINVAL, "%s: index \"weight_map\" is empty", ipath);
        goto out;
    }
    dir = dir_of(ipath);
    names = calloc(json_object_size(wm), sizeof *names);
    if (!dir || !names) {
        rc = SL_ENOMEM;
        goto out;
    }
    int nn = 0;
    const char *key;
    json_t *val;
    json_object_foreach(wm, key, val) {
        if (!json_is_string(val)) {
            rc = seterr(err, errlen, SL_EINVAL,
                        "%s: index weight_map['%s'] is not a file name string", ipath, key);
            goto out;
        }
        const char *fn = json_string_value(val);
        if (!shard_name_ok(fn)) {
            rc = seterr(err, errlen, SL_EINVAL,
                        "%s: index weight_map['%s'] names '%s', not a file in the same folder",
                        ipath, key, fn);
            goto out;
        }
        int seen = 0;
        for (int i = 0; i < nn && !seen; i++) seen = !strcmp(names[i], fn);
        if (!seen) names[nn++] = fn;
    }
    for (int i = 0; i < nn; i++) {
        char *p = path_join(dir, names[i]);
        if (!p || add_shard(st, p) != SL_OK) {
            rc = SL_ENOMEM;
            goto out;
        }
    }
    for (int i = 0; i < st->nshards; i++) {
        rc = load_shard(st, i, err, errlen);
        if (rc == SL_ENOENT) {
            seterr(err, errlen, SL_ENOENT, "%s: shard '%s' named in the index is missing", ipath,
                   names[i]);
        }
        if (rc) goto out;
    }
    qsort(st->t, st->n, sizeof *st->t, cmp_name);
    for (size_t i = 0; i + 1 < st->n; i++) {
        if (!strcmp(st->t[i].name, st->t[i + 1].name)) {
            rc = seterr(err, errlen, SL_EINVAL, "%s: tensor '%s' appears in two shards (%s, %s)",
                        ipath, st->t[i].name, names[st->t[i].shard], names[st->t[i + 1].shard]);
            goto out;
        }
    }
    /* every weight_map entry must be in the shard it names */
    json_object_foreach(wm, key, val) {
        sl_st_tensor k = {.name = key};
        sl_st_tensor *t = bsearch(&k, st->t, st->n, sizeof *st->t, cmp_name);
        const char *fn = json_string_value(val);
        if (!t || strcmp(fn, names[t->shard]) != 0) {
            rc = seterr(err, errlen, SL_EINVAL,
                        "%s: tensor '%s' is in the index but not in shard '%s'", ipath, key, fn);
            goto out;
        }
    }
out:
    if (rc == SL_ENOMEM) seterr(err, errlen, SL_ENOMEM, "%s: out of memory", ipath);
    free(names);
    free(dir);
    json_decref(root);
    return rc;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int sl_safetensors_open(const char *path, sl_safetensors **out, char *err, size_t errlen) {
    if (out) *out = NULL;
    if (!path || !out) return seterr(err, errlen, SL_EINVAL, "safetensors: NULL argument");
    if (err && errlen) err[0] = 0;
    sl_safetensors *st = calloc(1, sizeof *st);
    if (!st) return seterr(err, errlen, SL_ENOMEM, "%s: out of memory", path);
    int rc;
    char *index = NULL;
    if (is_dir(path)) {
        index = path_join(path, "model.safetensors.index.json");
        char *single = path_join(path, "model.safetensors");
        if (!index || !single) {
            free(single);
            rc = seterr(err, errlen, SL_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        if (exists(index)) {
            free(single);
            rc = load_index(st, index, err, errlen);
        } else if (exists(single)) {
            rc = add_shard(st, single);
            if (!rc) rc = load_shard(st, 0, err, errlen);
        } else {
            free(single);
            rc = seterr(err, errlen, SL_ENOENT,
                        "%s: no model.safetensors or model.safetensors.index.json in the folder",
                        path);
        }
    } else if (ends_with(path, ".json")) {
        rc = load_index(st, path, err, errlen);
    } else {
        char *p = strdup(path);
        rc = p ? add_shard(st, p) : SL_ENOMEM;
        if (!rc) rc = load_shard(st, 0, err, errlen);
    }
    if (rc) goto fail;
    qsort(st->t, st->n, sizeof *st->t, cmp_name);
    for (size_t i = 0; i + 1 < st->n; i++) {
        if (!strcmp(st->t[i].name, st->t[i + 1].name)) {
            rc = seterr(err, errlen, SL_EINVAL, "%s: tensor '%s' appears in two shards (%s, %s)",
                        path, st->t[i].name, st->shards[st->t[i].shard].path,
                        st->shards[st->t[i + 1].shard].path);
            goto fail;
        }
    }
    for (size_t i = 0; i < st->n; i++) st->total_numel += st->t[i].numel;
    free(index);
    *out = st;
    return SL_OK;
fail:
    if (rc == SL_ENOMEM && err && errlen && !err[0]) seterr(err, errlen, rc, "%s: out of memory", path);
    free(index);
    sl_safetensors_close(st);
    return rc;
}

size_t sl_safetensors_count(const sl_safetensors *st) { return st ? st->n : 0; }

const sl_st_tensor *sl_safetensors_at(const sl_safetensors *st, size_t i) {
    return st && i < st->n ? &st->t[i] : NULL;
}

const sl_st_tensor *sl_safetensors_find(const sl_safetensors *st, const char *name) {
    if (!st || !name) return NULL;
    sl_st_tensor k = {.name = name};
    return bsearch(&k, st->t, st->n, sizeof *st->t, cmp_name);
}

int sl_safetensors_shard_count(const sl_safetensors *st) { return st ? st->nshards : 0; }

const char *sl_safetensors_shard_path(const sl_safetensors *st, int i) {
    return st && i >= 0 && i < st->nshards ? st->shards[i].path : NULL;
}

int64_t sl_safetensors_total_numel(const sl_safetensors *st) { return st ? st->total_numel : 0; }

void sl_st_tensor_to_f32(const sl_st_tensor *t, float *dst) {
    const uint8_t *p = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case SL_DTYPE_F32:
        memcpy(dst, p, n * 4);
        break;
    case SL_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = sl_bf16_to_f32(sl_get_u16(p + 2 * i));
        break;
    case SL_DTYPE_F16:
        for (size_t i = 0; i < n; i++) dst[i] = sl_f16_to_f32(sl_get_u16(p + 2 * i));
        break;
    }
}

int sl_safetensors_read_f32(const sl_safetensors *st, const char *name, const int64_t *shape,
                            int ndim, float *dst, char *err, size_t errlen) {
    if (!st || !name || !dst || ndim < 0 || (ndim && !shape))
        return seterr(err, errlen, SL_EINVAL, "safetensors read: bad argument");
    const sl_st_tensor *t = sl_safetensors_find(st, name);
    const char *file = st->nshards == 1 ? st->shards[0].path : "the shards";
    if (!t) return seterr(err, errlen, SL_ENOENT, "tensor '%s' not found in %s", name, file);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char a[160], b[160];
        fmt_shape(a, sizeof a, shape, ndim);
        fmt_shape(b, sizeof b, t->shape, t->ndim);
        return seterr(err, errlen, SL_EINVAL, "tensor '%s' in %s: expected shape %s, found %s",
                      name, st->shards[t->shard].path, a, b);
    }
    sl_st_tensor_to_f32(t, dst);
    return SL_OK;
}

/* ---------------------------------------------------------------- writing */

typedef struct wt {
    const sl_st_save_tensor *t;
    uint64_t numel;
    uint64_t nbytes;
} wt;

static int cmp_wt(const void *a, const void *b) {
    return strcmp(((const wt *)a)->t->name, ((const wt *)b)->t->name);
}

static int write_all(int fd, const void *buf, size_t len) {
    const uint8_t *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void fsync_dir_of(const char *path) {
    char *d = dir_of(path);
    if (!d) return;
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(d);
}

/* Write bytes produced by `emit` to path via a temporary name. */
static int atomic_write_begin(const char *path, char **tmp, int *fd, char *err, size_t errlen) {
    size_t l = strlen(path) + 32;
    *tmp = malloc(l);
    if (!*tmp) return seterr(err, errlen, SL_ENOMEM, "%s: out of memory", path);
    snprintf(*tmp, l, "%s.tmp.%ld", path, (long)getpid());
    *fd = open(*tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd < 0) {
        int rc = seterr(err, errlen, SL_EIO, "%s: cannot create: %s", *tmp, strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return rc;
    }
    return SL_OK;
}

static int atomic_write_end(const char *path, char *tmp, int fd, int ok, char *err,
                            size_t errlen) {
    int rc = SL_OK;
    if (ok && fsync(fd) != 0)
        rc = seterr(err, errlen, SL_EIO, "%s: fsync: %s", tmp, strerror(errno));
    if (close(fd) != 0 && ok && !rc)
        rc = seterr(err, errlen, SL_EIO, "%s: close: %s", tmp, strerror(errno));
    if (ok && !rc && rename(tmp, path) != 0)
        rc = seterr(err, errlen, SL_EIO, "%s: rename to %s: %s", tmp, path, strerror(errno));
    if (!ok || rc) unlink(tmp);
    else fsync_dir_of(path);
    free(tmp);
    return ok ? rc : SL_EIO;
}

/* Write tensors w[0..n) (already sorted) as one safetensors file. */
static int write_one(const char *path, const wt *w, size_t n, sl_dtype dtype, char *err,
                     size_t errlen) {
    int rc = SL_OK;
    char *hdr = NULL, *tmp = NULL;
    void *buf = NULL;
    int fd = -1;
    json_t *root = json_object();
    if (!root) return seterr(err, errlen, SL_ENOMEM, "%s: out of memory", path);
    json_t *meta = json_pack("{s:s}", "format", "pt");
    if (!meta || json_object_set_new(root, "__metadata__", meta)) goto nomem;
    uint64_t off = 0;
    size_t es = sl_dtype_size(dtype);
    for (size_t i = 0; i < n; i++) {
        json_t *shape = json_array();
        if (!shape) goto nomem;
        for (int d = 0; d < w[i].t->ndim; d++)
            json_array_append_new(shape, json_integer((json_int_t)w[i].t->shape[d]));
        uint64_t nb = w[i].numel * es;
        json_t *e = json_pack("{s:s,s:o,s:[I,I]}", "dtype", sl_dtype_name(dtype), "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)(off + nb));
        if (!e || json_object_set_new(root, w[i].t->name, e)) goto nomem;
        off += nb;
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (!hdr) goto nomem;
    size_t hl = strlen(hdr);
    size_t padded = (hl + 7) & ~(size_t)7;
    rc = atomic_write_begin(path, &tmp, &fd, err, errlen);
    if (rc) goto out;
    uint8_t lenb[8];
    sl_put_u64(lenb, padded);
    int ok = write_all(fd, lenb, 8) == 0 && write_all(fd, hdr, hl) == 0 &&
             write_all(fd, "        ", padded - hl) == 0;
    enum { CH = 1 << 16 };
    buf = malloc(CH * 4);
    if (!buf) {
        atomic_write_end(path, tmp, fd, 0, err, errlen);
        goto nomem;
    }
    uint64_t done = 0;
    sl_progress_report("writing weights", 0, off);
    for (size_t i = 0; i < n && ok; i++) {
        const float *src = w[i].t->data;
        for (uint64_t at = 0; at < w[i].numel && ok; at += CH) {
            size_t m = (size_t)(w[i].numel - at < CH ? w[i].numel - at : CH);
            if (dtype == SL_DTYPE_F32) {
                uint8_t *b = buf;
                for (size_t k = 0; k < m; k++) {
                    uint32_t u;
                    memcpy(&u, &src[at + k], 4);
                    sl_put_u32(b + 4 * k, u);
                }
                ok = write_all(fd, buf, m * 4) == 0;
            } else {
                uint8_t *b = buf;
                for (size_t k = 0; k < m; k++) sl_put_u16(b + 2 * k, sl_f32_to_bf16(src[at + k]));
                ok = write_all(fd, buf, m * 2) == 0;
            }
        }
        done += w[i].numel * es;
        if (ok) sl_progress_report("writing weights", done, off);
    }
    if (!ok) seterr(err, errlen, SL_EIO, "%s: write: %s", tmp, strerror(errno));
    rc = atomic_write_end(path, tmp, fd, ok, err, errlen);
    goto out;
nomem:
    rc = seterr(err, errlen, SL_ENOMEM, "%s: out of memory", path);
out:
    free(buf);
    free(hdr);
    json_decref(root);
    return rc;
}

/* Validate and sort the tensors to write. */
static int prepare(const char *where, const sl_st_save_tensor *ts, size_t n, sl_dtype dtype,
                   wt **out, char *err, size_t errlen) {
    *out = NULL;
    if (dtype != SL_DTYPE_F32 && dtype != SL_DTYPE_BF16)
        return seterr(err, errlen, SL_EINVAL, "%s: can only write F32 or BF16, not %s", where,
                      sl_dtype_name(dtype));
    if (n && !ts) return seterr(err, errlen, SL_EINVAL, "%s: NULL tensors", where);
    wt *w = calloc(n ? n : 1, sizeof *w);
    if (!w) return seterr(err, errlen, SL_ENOMEM, "%s: out of memory", where);
    for (size_t i = 0; i < n; i++) {
        const sl_st_save_tensor *t = &ts[i];
        if (!t->name || !*t->name || !strcmp(t->name, "__metadata__") || t->ndim < 0 ||
            t->ndim > SL_ST_MAX_DIMS) {
            free(w);
            return seterr(err, errlen, SL_EINVAL, "%s: tensor %zu has a bad name or rank", where,
                          i);
        }
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0 ||
                (t->shape[d] && numel > (uint64_t)INT64_MAX / 4 / (uint64_t)t->shape[d])) {
                free(w);
                return seterr(err, errlen, SL_EINVAL, "%s: tensor '%s' has a bad shape", where,
                              t->name);
            }
            numel *= (uint64_t)t->shape[d];
        }
        if (numel && !t->data) {
            free(w);
            return seterr(err, errlen, SL_EINVAL, "%s: tensor '%s' has no data", where, t->name);
        }
        w[i].t = t;
        w[i].numel = numel;
        w[i].nbytes = numel * sl_dtype_size(dtype);
    }
    qsort(w, n, sizeof *w, cmp_wt);
    for (size_t i = 0; i + 1 < n; i++)
        if (!strcmp(w[i].t->name, w[i + 1].t->name)) {
            int rc = seterr(err, errlen, SL_EINVAL, "%s: duplicate tensor name '%s'", where,
                            w[i].t->name);
            free(w);
            return rc;
        }
    *out = w;
    return SL_OK;
}

int sl_safetensors_save_file(const char *path, const sl_st_save_tensor *tensors, size_t n,
                             sl_dtype dtype, char *err, size_t errlen) {
    if (!path) return seterr(err, errlen, SL_EINVAL, "safetensors save: NULL path");
    wt *w;
    int rc = prepare(path, tensors, n, dtype, &w, err, errlen);
    if (rc) return rc;
    rc = write_one(path, w, n, dtype, err, errlen);
    free(w);
    return rc;
}

static int write_index(const char *path, const wt *w, size_t n, const int *shard_of, int nsh,
                       uint64_t total, char *err, size_t errlen) {
    int rc = SL_OK;
    char *txt = NULL, *tmp = NULL;
    int fd = -1;
    json_t *wm = json_object();
    json_t *root = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total,
                             "weight_map", wm);
    if (!root) return seterr(err, errlen, SL_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        char fn[64];
        snprintf(fn, sizeof fn, "model-%05d-of-%05d.safetensors", shard_of[i] + 1, nsh);
        if (json_object_set_new(wm, w[i].t->name, json_string(fn))) {
            rc = seterr(err, errlen, SL_ENOMEM, "%s: out of memory", path);
            goto out;
        }
    }
    txt = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!txt) {
        rc = seterr(err, errlen, SL_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    rc = atomic_write_begin(path, &tmp, &fd, err, errlen);
    if (rc) goto out;
    int ok = write_all(fd, txt, strlen(txt)) == 0 && write_all(fd, "\n", 1) == 0;
    if (!ok) seterr(err, errlen, SL_EIO, "%s: write: %s", tmp, strerror(errno));
    rc = atomic_write_end(path, tmp, fd, ok, err, errlen);
out:
    free(txt);
    json_decref(root);
    return rc;
}

int sl_safetensors_save(const char *dir, const sl_st_save_tensor *tensors, size_t n,
                        sl_dtype dtype, size_t max_shard_bytes, char *err, size_t errlen) {
    if (!dir) return seterr(err, errlen, SL_EINVAL, "safetensors save: NULL folder");
    if (!max_shard_bytes) max_shard_bytes = SL_ST_DEFAULT_SHARD_BYTES;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return seterr(err, errlen, SL_EIO, "%s: cannot create folder: %s", dir, strerror(errno));
    if (!is_dir(dir)) return seterr(err, errlen, SL_EIO, "%s: not a folder", dir);
    wt *w;
    int rc = prepare(dir, tensors, n, dtype, &w, err, errlen);
    if (rc) return rc;
    int *shard_of = calloc(n ? n : 1, sizeof *shard_of);
    char *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    if (!shard_of || !single || !index) {
        rc = seterr(err, errlen, SL_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    uint64_t total = 0, cur = 0;
    int nsh = 0;
    for (size_t i = 0; i < n; i++) {
        /* transformers / huggingface_hub: start a new shard when this
         * tensor would push a non-empty shard past the limit */
        if (i == 0 || (cur > 0 && cur + w[i].nbytes > max_shard_bytes)) {
            nsh++;
            cur = 0;
        }
        shard_of[i] = nsh - 1;
        cur += w[i].nbytes;
        total += w[i].nbytes;
    }
    if (nsh <= 1) {
        rc = write_one(single, w, n, dtype, err, errlen);
        if (!rc && exists(index)) unlink(index);
        goto out;
    }
    size_t at = 0;
    for (int s = 0; s < nsh && !rc; s++) {
        size_t b = at;
        while (at < n && shard_of[at] == s) at++;
        char fn[64];
        snprintf(fn, sizeof fn, "model-%05d-of-%05d.safetensors", s + 1, nsh);
        char *p = path_join(dir, fn);
        if (!p) {
            rc = seterr(err, errlen, SL_ENOMEM, "%s: out of memory", dir);
            break;
        }
        rc = write_one(p, w + b, at - b, dtype, err, errlen);
        free(p);
    }
    if (!rc) rc = write_index(index, w, n, shard_of, nsh, total, err, errlen);
    if (!rc && exists(single)) unlink(single);
out:
    free(index);
    free(single);
    free(shard_of);
    free(w);
    return rc;
}
