/*
 * weights_gpu.c — the `cuda_ipc` object of WEIGHTS messages over
 * gpu_sync.h (weights_gpu.h): parsing/checking, publisher, subscriber.
 */
#include "weights_gpu.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "gpu_sync.h"

/* ================================================================ JSON */

static int perr(char *err, size_t errlen, const char *field, const char *what)
{
    if (err && errlen) snprintf(err, errlen, "cuda_ipc.%s: %s", field, what);
    return SL_EPROTO;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode a hex string field of exactly 2*n chars into out[n]. */
static int hex_field(const json_t *obj, const char *key, unsigned char *out, size_t n, char *err,
                     size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) return perr(err, errlen, key, "missing");
    if (!json_is_string(v)) return perr(err, errlen, key, "not a string");
    const char *s = json_string_value(v);
    if (json_string_length(v) != 2 * n || strlen(s) != 2 * n) {
        char m[64];
        snprintf(m, sizeof m, "want %zu hex characters", 2 * n);
        return perr(err, errlen, key, m);
    }
    for (size_t i = 0; i < n; i++) {
        int a = hexval((unsigned char)s[2 * i]), b = hexval((unsigned char)s[2 * i + 1]);
        if (a < 0 || b < 0) return perr(err, errlen, key, "not hex");
        out[i] = (unsigned char)(a << 4 | b);
    }
    return SL_OK;
}

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

int sl_wgpu_parse(const json_t *obj, uint64_t expect_bytes, sl_wgpu_ref *out, char *err,
                  size_t errlen)
{
    if (!out) return SL_EINVAL;
    memset(out, 0, sizeof(*out));
    if (!obj || !json_is_object(obj)) {
        if (err && errlen) snprintf(err, errlen, "cuda_ipc: not an object");
        return SL_EPROTO;
    }
    int rc;
    if ((rc = hex_field(obj, "mem", out->mem, SL_WGPU_HANDLE_BYTES, err, errlen)) ||
        (rc = hex_field(obj, "ev", out->ev, SL_WGPU_HANDLE_BYTES, err, errlen)))
        return rc;
    const json_t *b = json_object_get(obj, "bytes");
    if (!json_is_integer(b)) return perr(err, errlen, "bytes", b ? "not an integer" : "missing");
    json_int_t bv = json_integer_value(b);
    if (bv <= 0 || (uint64_t)bv > SL_WGPU_MAX_BYTES)
        return perr(err, errlen, "bytes", "out of range (1 .. 2^40)");
    if (expect_bytes && (uint64_t)bv != expect_bytes) {
        char m[96];
        snprintf(m, sizeof m, "%lld but this model's weights take %llu", (long long)bv,
                 (unsigned long long)expect_bytes);
        return perr(err, errlen, "bytes", m);
    }
    out->bytes = (uint64_t)bv;
    const json_t *l = json_object_get(obj, "layout");
    if (!json_is_string(l)) return perr(err, errlen, "layout", l ? "not a string" : "missing");
    if (strcmp(json_string_value(l), SL_WGPU_LAYOUT) != 0)
        return perr(err, errlen, "layout", "not \"" SL_WGPU_LAYOUT "\"");
    const json_t *p = json_object_get(obj, "pid");
    if (!json_is_integer(p)) return perr(err, errlen, "pid", p ? "not an integer" : "missing");
    if (json_integer_value(p) <= 0 || json_integer_value(p) > (1ll << 31))
        return perr(err, errlen, "pid", "out of range");
    out->pid = (int64_t)json_integer_value(p);
    unsigned char nb[8];
    if ((rc = hex_field(obj, "nonce", nb, 8, err, errlen))) return rc;
    for (int i = 0; i < 8; i++) out->nonce = out->nonce << 8 | nb[i];
    return SL_OK;
}

json_t *sl_wgpu_to_json(const sl_wgpu_ref *r)
{
    char mem[2 * SL_WGPU_HANDLE_BYTES + 1], ev[2 * SL_WGPU_HANDLE_BYTES + 1], nonce[17];
    unsigned char nb[8];
    to_hex(r->mem, SL_WGPU_HANDLE_BYTES, mem);
    to_hex(r->ev, SL_WGPU_HANDLE_BYTES, ev);
    for (int i = 0; i < 8; i++) nb[i] = (unsigned char)(r->nonce >> (56 - 8 * i));
    to_hex(nb, 8, nonce);
    return json_pack("{s:s, s:s, s:I, s:s, s:I, s:s}", "mem", mem, "ev", ev, "bytes",
                     (json_int_t)r->bytes, "layout", SL_WGPU_LAYOUT, "pid", (json_int_t)r->pid,
                     "nonce", nonce);
}

/* =========================================================== publisher */

struct sl_wgpu_pub {
    sl_gsync *gs;
    sl_wgpu_ref ref;
};

struct sl_wgpu_sub {
    sl_gsync *gs;
    sl_wgpu_ref cur; /* incarnation of the open mapping */
    bool open;
    uint64_t opens;
};

static uint64_t new_nonce(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec ^
            ((uint64_t)getpid() << 32);
    }
    return v ? v : 1;
}

int sl_wgpu_sub_new(sl_wgpu_sub **out)
{
    if (!out) return SL_EINVAL;
    *out = calloc(1, sizeof(**out));
    return *out ? SL_OK : SL_ENOMEM;
}

uint64_t sl_wgpu_sub_opens(const sl_wgpu_sub *s) { return s ? s->opens : 0; }

#ifdef SL_HAVE_CUDA

int sl_wgpu_pub_new(void *dptr, size_t bytes, sl_wgpu_pub **out, char *err, size_t errlen)
{
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!dptr || bytes == 0 || bytes > SL_WGPU_MAX_BYTES) {
        if (err && errlen) snprintf(err, errlen, "weights_gpu: bad buffer");
        return SL_EINVAL;
    }
    sl_wgpu_pub *p = calloc(1, sizeof(*p));
    if (!p) return SL_ENOMEM;
    sl_gsync_handle h;
    int rc = sl_gsync_export(dptr, bytes, &p->gs, &h, err, errlen);
    if (rc) {
        free(p);
        return rc;
    }
    memcpy(p->ref.mem, h.mem, SL_WGPU_HANDLE_BYTES);
    memcpy(p->ref.ev, h.ev, SL_WGPU_HANDLE_BYTES);
    p->ref.bytes = bytes;
    p->ref.pid = getpid();
    p->ref.nonce = new_nonce();
    *out = p;
    return SL_OK;
}

json_t *sl_wgpu_publish(sl_wgpu_pub *p)
{
    if (!p) return NULL;
    sl_gsync_publish(p->gs);
    return sl_wgpu_to_json(&p->ref);
}

void sl_wgpu_pub_free(sl_wgpu_pub *p)
{
    if (!p) return;
    sl_gsync_free(p->gs);
    free(p);
}

static bool same_incarnation(const sl_wgpu_ref *a, const sl_wgpu_ref *b)
{
    return a->pid == b->pid && a->nonce == b->nonce && a->bytes == b->bytes &&
           memcmp(a->mem, b->mem, SL_WGPU_HANDLE_BYTES) == 0 &&
           memcmp(a->ev, b->ev, SL_WGPU_HANDLE_BYTES) == 0;
}

/* sl_wgpu_sub_pull past the parse of r */
static int sub_pull(sl_wgpu_sub *s, const sl_wgpu_ref *r, void *dst, const void **out, char *err,
                    size_t errlen)
{
    if (!s->open || !same_incarnation(&s->cur, r)) {
        /* a new exporter (first use, or the trainer restarted) */
        if (s->open) {
            sl_gsync_free(s->gs);
            s->gs = NULL;
            s->open = false;
        }
        sl_gsync_handle h;
        memcpy(h.mem, r->mem, SL_WGPU_HANDLE_BYTES);
        memcpy(h.ev, r->ev, SL_WGPU_HANDLE_BYTES);
        h.bytes = r->bytes;
        int rc = sl_gsync_import(&h, 0, &s->gs, err, errlen);
        if (rc) return rc;
        s->cur = *r;
        s->open = true;
        s->opens++;
    }
    const void *p;
    if (dst) {
        sl_gsync_pull_into(s->gs, dst);
        p = dst;
    } else {
        p = sl_gsync_pull(s->gs, 0);
    }
    if (out) *out = p;
    return SL_OK;
}

void sl_wgpu_sub_free(sl_wgpu_sub *s)
{
    if (!s) return;
    if (s->open) sl_gsync_free(s->gs);
    free(s);
}

#else /* !SL_HAVE_CUDA */

static int no_cuda(char *err, size_t errlen)
{
    if (err && errlen) snprintf(err, errlen, "weights_gpu: built without CUDA");
    return SL_EUNSUPPORTED;
}

int sl_wgpu_pub_new(void *dptr, size_t bytes, sl_wgpu_pub **out, char *err, size_t errlen)
{
    (void)dptr, (void)bytes;
    if (out) *out = NULL;
    return no_cuda(err, errlen);
}
json_t *sl_wgpu_publish(sl_wgpu_pub *p)
{
    (void)p;
    (void)new_nonce;
    return NULL;
}
void sl_wgpu_pub_free(sl_wgpu_pub *p) { free(p); }

static int sub_pull(sl_wgpu_sub *s, const sl_wgpu_ref *r, void *dst, const void **out, char *err,
                    size_t errlen)
{
    (void)s, (void)r, (void)dst, (void)out;
    return no_cuda(err, errlen);
}
void sl_wgpu_sub_free(sl_wgpu_sub *s) { free(s); }

#endif

int sl_wgpu_sub_pull(sl_wgpu_sub *s, const json_t *obj, void *dst, size_t dst_bytes,
                     const void **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!s) return SL_EINVAL;
    sl_wgpu_ref r;
    int rc = sl_wgpu_parse(obj, dst ? dst_bytes : 0, &r, err, errlen);
    if (rc) return rc;
    return sub_pull(s, &r, dst, out, err, errlen);
}
