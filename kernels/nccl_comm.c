/*
 * nccl_comm.c — the parts of nccl_comm.h that need no GPU: the unique id
 * as hex text, shard ranges and the gradient bucket plan (every build);
 * the device count / selection stubs of builds without CUDA.
 */
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "nccl_comm.h"

void sl_nccl_id_to_hex(const unsigned char id[SL_NCCL_ID_BYTES], char hex[SL_NCCL_ID_HEX])
{
    static const char dig[] = "0123456789abcdef";
    for (int i = 0; i < SL_NCCL_ID_BYTES; i++) {
        hex[2 * i] = dig[id[i] >> 4];
        hex[2 * i + 1] = dig[id[i] & 15];
    }
    hex[2 * SL_NCCL_ID_BYTES] = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sl_nccl_id_from_hex(const char *hex, unsigned char id[SL_NCCL_ID_BYTES], char *why,
                        size_t whylen)
{
    if (!hex) {
        if (why && whylen) snprintf(why, whylen, "no id");
        return SL_EINVAL;
    }
    size_t n = strnlen(hex, SL_NCCL_ID_HEX);
    if (n != 2 * SL_NCCL_ID_BYTES) {
        if (why && whylen)
            snprintf(why, whylen, "NCCL id must be %d hex digits, got %s%zu", 2 * SL_NCCL_ID_BYTES,
                     n >= SL_NCCL_ID_HEX ? "more than " : "", n >= SL_NCCL_ID_HEX ? n - 1 : n);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < n; i += 2) {
        int a = hexval(hex[i]), b = hexval(hex[i + 1]);
        if (a < 0 || b < 0) {
            if (why && whylen)
                snprintf(why, whylen, "NCCL id: character %zu is not a hex digit", a < 0 ? i : i + 1);
            return SL_EINVAL;
        }
        id[i / 2] = (unsigned char)(a << 4 | b);
    }
    return SL_OK;
}

void sl_shard_range(size_t total, int nranks, int rank, size_t align, size_t *lo, size_t *hi)
{
    if (nranks < 1) nranks = 1;
    if (align < 1) align = 1;
    size_t units = (total + align - 1) / align;
    size_t q = units / (size_t)nranks, r = units % (size_t)nranks;
    size_t u0 = (size_t)rank * q + ((size_t)rank < r ? (size_t)rank : r);
    size_t u1 = u0 + q + ((size_t)rank < r ? 1 : 0);
    size_t a = u0 * align, b = u1 * align;
    *lo = a < total ? a : total;
    *hi = b < total ? b : total;
}

int sl_dp_plan(size_t n_total, const size_t *layer_off, int n_layers, size_t bucket_elems,
               size_t *lo, size_t *hi, int *layer, int cap)
{
    if (bucket_elems < 1) bucket_elems = 1;
    int nb = 0;
#define PUT(a, b, l)                                                                           \
    do {                                                                                       \
        if (nb >= cap) return -1;                                                              \
        lo[nb] = (a), hi[nb] = (b), layer[nb] = (l), nb++;                                     \
    } while (0)
    size_t base = n_layers > 0 ? layer_off[0] : 0, top = n_layers > 0 ? layer_off[n_layers] : 0;
    /* the layers, from the top down; a bucket is ready when the lowest
     * layer it touches is done */
    size_t h = top;
    while (h > base) {
        size_t l0 = h - base > bucket_elems ? h - bucket_elems : base;
        int ly = n_layers - 1;
        while (ly > 0 && layer_off[ly] > l0) ly--;
        PUT(l0, h, ly);
        h = l0;
    }
    /* before the layers (embeddings, head), after them (norms, biases) */
    for (size_t a = 0; a < base; a += bucket_elems) PUT(a, a + bucket_elems < base ? a + bucket_elems : base, -1);
    for (size_t a = top; a < n_total; a += bucket_elems)
        PUT(a, a + bucket_elems < n_total ? a + bucket_elems : n_total, -1);
#undef PUT
    return nb;
}

#ifndef SL_HAVE_CUDA
int sl_gpu_device_count(void) { return 0; }
int sl_gpu_set_device(int dev, char *err, size_t errlen)
{
    if (err && errlen) snprintf(err, errlen, "device cuda:%d: built without CUDA", dev);
    return SL_EUNSUPPORTED;
}
#endif
