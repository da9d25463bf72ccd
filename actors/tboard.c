/*
 * tboard.c — TensorBoard scalar event files: CRC-32C, TFRecord framing, a
 * hand-written encoding of the three protobuf messages TensorBoard needs
 * (Event, Summary, Summary.Value), and metrics.jsonl lines as scalars.
 * See tboard.h. Not a reader and not a general protobuf encoder.
 */
#include "tboard.h"

#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ================================================================ CRC-32C */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

uint32_t sl_crc32c(const void *data, size_t len) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;
    while (len && ((uintptr_t)p & 7)) c = (c >> 8) ^ crc_tab[0][(c ^ *p++) & 0xff], len--;
    while (len >= 8) {
        /* Slice-by-8 over two little-endian words (byte order made
         * explicit, so it is right on any host). */
        uint32_t lo = sl_get_u32(p) ^ c, hi = sl_get_u32(p + 4);
        c = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
            crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
            crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
        p += 8, len -= 8;
    }
    while (len--) c = (c >> 8) ^ crc_tab[0][(c ^ *p++) & 0xff];
    return c ^ 0xFFFFFFFFu;
}

uint32_t sl_tb_mask_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

/* ======================================================= protobuf encoding */

/* A growing byte buffer; on allocation failure it latches `bad`. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
    int bad;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->bad) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->bad = 1;
            return;
        }
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_varint(buf *b, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    put(b, t, n);
}

/* Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. */
static void put_key(buf *b, unsigned field, unsigned wire) { put_varint(b, (uint64_t)field << 3 | wire); }

static void put_bytes_field(buf *b, unsigned field, const void *d, size_t n) {
    put_key(b, field, 2);
    put_varint(b, n);
    put(b, d, n);
}

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) v >>= 7, n++;
    return n;
}

/* Event{wall_time=1 double, step=2 int64, file_version=3 string,
 *       summary=5 Summary{value=1 repeated Value{tag=1 string,
 *       simple_value=2 float}}} */
static void put_event_head(buf *b, double wall_time, int64_t step) {
    uint8_t d[8];
    uint64_t bits;
    memcpy(&bits, &wall_time, 8);
    sl_put_u64(d, bits);
    put_key(b, 1, 1);
    put(b, d, 8);
    if (step != 0) { /* proto3: a zero scalar is simply absent */
        put_key(b, 2, 0);
        put_varint(b, (uint64_t)step); /* int64: negative = 10-byte two's complement */
    }
}

static size_t value_len(size_t tag_len) { return 1 + varint_len(tag_len) + tag_len + 1 + 4; }

static void put_value(buf *b, const char *tag, size_t tag_len, float v) {
    put_key(b, 1, 2); /* Summary.value */
    put_varint(b, value_len(tag_len));
    put_bytes_field(b, 1, tag, tag_len);
    uint8_t d[4];
    uint32_t bits;
    memcpy(&bits, &v, 4);
    sl_put_u32(d, bits);
    put_key(b, 2, 5);
    put(b, d, 4);
}

/* ================================================================= writer */

struct sl_tb_writer {
    FILE *f;
    char *path;
    buf rec; /* scratch for one event */
};

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Frame the event in W->rec and write it. */
static int write_record(sl_tb_writer *w) {
    if (w->rec.bad) return SL_ENOMEM;
    uint8_t head[12], tail[4];
    sl_put_u64(head, (uint64_t)w->rec.n);
    sl_put_u32(head + 8, sl_tb_mask_crc(sl_crc32c(head, 8)));
    sl_put_u32(tail, sl_tb_mask_crc(sl_crc32c(w->rec.p, w->rec.n)));
    if (fwrite(head, 1, 12, w->f) != 12 || fwrite(w->rec.p, 1, w->rec.n, w->f) != w->rec.n ||
        fwrite(tail, 1, 4, w->f) != 4)
        return SL_EIO;
    return SL_OK;
}

static unsigned seq_counter;

int sl_tb_open(const char *dir, sl_tb_writer **out) {
    if (out) *out = NULL;
    if (!dir || !*dir || !out) return SL_EINVAL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        sl_warn("tboard: cannot create %s: %s", dir, strerror(errno));
        return SL_EIO;
    }
    sl_tb_writer *w = calloc(1, sizeof *w);
    if (!w) return SL_ENOMEM;
    int err = SL_ENOMEM, fd = -1;
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0]) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *h = host; *h; h++)
        if (*h == '/' || (unsigned char)*h < 0x21) *h = '_';
    size_t plen = strlen(dir) + strlen(host) + 96;
    w->path = malloc(plen);
    if (!w->path) goto fail;
    for (int attempt = 0; attempt < 1000; attempt++) {
        unsigned seq = __atomic_fetch_add(&seq_counter, 1, __ATOMIC_RELAXED);
        snprintf(w->path, plen, "%s/events.out.tfevents.%010lld.%s.%ld.%u", dir, (long long)time(NULL),
                 host, (long)getpid(), seq);
        fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST) break;
    }
    if (fd < 0) {
        sl_warn("tboard: cannot create %s: %s", w->path, strerror(errno));
        err = SL_EIO;
        goto fail;
    }
    w->f = fdopen(fd, "wb");
    if (!w->f) {
        close(fd);
        err = SL_EIO;
        goto fail;
    }
    put_event_head(&w->rec, wall_now(), 0);
    put_bytes_field(&w->rec, 3, "brain.Event:2", 13);
    if ((err = write_record(w)) != SL_OK || (err = sl_tb_flush(w)) != SL_OK) goto fail;
    *out = w;
    return SL_OK;
fail:
    if (w->f) fclose(w->f);
    free(w->rec.p);
    free(w->path);
    free(w);
    return err;
}

const char *sl_tb_path(const sl_tb_writer *w) { return w ? w->path : NULL; }

/* Valid UTF-8 (shortest forms, no surrogates), no control characters. */
static int tag_ok(const char *t, size_t *len_out) {
    if (!t) return 0;
    size_t n = strnlen(t, SL_TB_MAX_TAG + 1);
    if (n == 0 || n > SL_TB_MAX_TAG) return 0;
    const uint8_t *s = (const uint8_t *)t;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c < 0x20 || c == 0x7f) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) k = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) k = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) k = 3, cp = c & 0x07;
        else return 0;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    *len_out = n;
    return 1;
}

int sl_tb_scalars(sl_tb_writer *w, size_t n, const char *const *tags, const float *values,
                  int64_t step, double wall_time) {
    if (!w || (n && (!tags || !values))) return SL_EINVAL;
    if (n == 0) return SL_OK;
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        size_t tl;
        if (!tag_ok(tags[i], &tl)) return SL_EINVAL;
        sum += value_len(tl) + 4;
        if (sum > (1u << 20)) return SL_ERANGE;
    }
    w->rec.n = 0;
    w->rec.bad = 0;
    put_event_head(&w->rec, wall_time > 0 && isfinite(wall_time) ? wall_time : wall_now(), step);
    buf s = {0};
    for (size_t i = 0; i < n; i++) put_value(&s, tags[i], strlen(tags[i]), values[i]);
    if (s.bad) {
        free(s.p);
        return SL_ENOMEM;
    }
    put_bytes_field(&w->rec, 5, s.p, s.n);
    free(s.p);
    return write_record(w);
}

int sl_tb_scalar(sl_tb_writer *w, const char *tag, int64_t step, float value, double wall_time) {
    return sl_tb_scalars(w, 1, &tag, &value, step, wall_time);
}

int sl_tb_from_metrics_line(sl_tb_writer *w, const char *json_line, size_t len, int *n_written) {
    if (n_written) *n_written = 0;
    if (!w || !json_line) return SL_EINVAL;
    json_error_t jerr;
    json_t *o = json_loadb(json_line, len, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return SL_EINVAL;
    }
    int err = SL_EINVAL;
    json_t *js = json_object_get(o, "step");
    int64_t step;
    if (json_is_integer(js)) step = (int64_t)json_integer_value(js);
    else if (json_is_real(js) && fabs(json_real_value(js)) < 9e15 &&
             json_real_value(js) == floor(json_real_value(js)))
        step = (int64_t)json_real_value(js);
    else goto out;
    const char *phase = json_string_value(json_object_get(o, "phase"));
    json_t *jt = json_object_get(o, "time");
    double wall = json_is_number(jt) && json_number_value(jt) > 1e8 ? json_number_value(jt) : 0;

    size_t cap = json_object_size(o), n = 0;
    char **tags = calloc(cap ? cap : 1, sizeof *tags);
    float *vals = calloc(cap ? cap : 1, sizeof *vals);
    err = SL_ENOMEM;
    if (!tags || !vals) goto out_free;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (!json_is_number(v) || !strcmp(key, "step") || !strcmp(key, "time")) continue;
        char t[SL_TB_MAX_TAG + 2];
        int k = phase && *phase ? snprintf(t, sizeof t, "%s/%s", phase, key) : snprintf(t, sizeof t, "%s", key);
        size_t tl;
        if (k < 0 || (size_t)k > SL_TB_MAX_TAG || !tag_ok(t, &tl)) continue;
        if (!(tags[n] = strdup(t))) goto out_free;
        vals[n++] = (float)json_number_value(v);
    }
    err = sl_tb_scalars(w, n, (const char *const *)tags, vals, step, wall);
    if (err == SL_OK && n_written) *n_written = (int)n;
out_free:
    for (size_t i = 0; tags && i < n; i++) free(tags[i]);
    free(tags);
    free(vals);
out:
    json_decref(o);
    return err;
}

int sl_tb_flush(sl_tb_writer *w) {
    if (!w) return SL_EINVAL;
    return fflush(w->f) == 0 ? SL_OK : SL_EIO;
}

int sl_tb_close(sl_tb_writer *w) {
    if (!w) return SL_OK;
    int err = SL_OK;
    if (w->f && fclose(w->f) != 0) err = SL_EIO;
    free(w->rec.p);
    free(w->path);
    free(w);
    return err;
}
