/*
 * weights_sync.c — CPU weight publishing over an shm arena. See
 * weights_sync.h. It sends no messages and knows no model.
 */
#include "weights_sync.h"
#include "faults.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct sl_weights_pub {
    sl_shm_arena *arena;
    size_t n_params;
    uint64_t forced;
};

int sl_weights_pub_new(const char *name, size_t n_params, uint32_t n_slots,
                       sl_weights_pub **out) {
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!name || n_params == 0 || n_slots < 2 || n_params > ((size_t)1 << 38)) return SL_EINVAL;
    sl_weights_pub *p = calloc(1, sizeof *p);
    if (!p) return SL_ENOMEM;
    p->n_params = n_params;
    int e = sl_shm_arena_create(name, n_slots, SL_WEIGHTS_HEADER_SIZE + n_params * sizeof(float),
                                &p->arena);
    if (e) {
        free(p);
        return e;
    }
    *out = p;
    return SL_OK;
}

void sl_weights_pub_free(sl_weights_pub *p) {
    if (!p) return;
    sl_shm_arena_close(p->arena);
    free(p);
}

int sl_weights_publish(sl_weights_pub *p, const float *params, uint64_t weight_version,
                       uint32_t mask, sl_shm_desc *desc) {
    if (!p || !params || !mask || !desc) return SL_EINVAL;
    void *ptr;
    uint32_t slot;
    int e = sl_shm_slot_acquire(p->arena, &ptr, &slot);
    if (e == SL_EFULL) {
        /* Engines hold older versions they have not copied yet: those are
         * superseded by this one, so drop their holds rather than wait. */
        p->forced++;
        for (unsigned c = 0; c < SL_SHM_CONSUMERS_MAX; c++)
            if (mask & (1u << c)) sl_shm_arena_reclaim(p->arena, c);
        e = sl_shm_slot_acquire(p->arena, &ptr, &slot);
        if (e == SL_EFULL) {
            for (unsigned c = 0; c < SL_SHM_CONSUMERS_MAX; c++) sl_shm_arena_reclaim(p->arena, c);
            e = sl_shm_slot_acquire(p->arena, &ptr, &slot);
        }
    }
    if (e) return e;
    uint8_t *b = ptr;
    memset(b, 0, SL_WEIGHTS_HEADER_SIZE);
    sl_put_u32(b, SL_WEIGHTS_MAGIC);
    sl_put_u16(b + 4, SL_WEIGHTS_VERSION);
    sl_put_u16(b + 6, SL_WEIGHTS_HEADER_SIZE);
    sl_put_u64(b + 8, (uint64_t)p->n_params);
    sl_put_u64(b + 16, weight_version);
    memcpy(b + SL_WEIGHTS_HEADER_SIZE, params, p->n_params * sizeof(float));
    sl_fault_point("weights_publish"); /* faults.h */
    e = sl_shm_slot_publish_mask(p->arena, slot,
                                 SL_WEIGHTS_HEADER_SIZE + p->n_params * sizeof(float), mask, desc);
    if (e) sl_shm_slot_cancel(p->arena, slot);
    return e;
}

int sl_weights_pub_reclaim(sl_weights_pub *p, unsigned consumer_id) {
    if (!p) return -SL_EINVAL;
    return sl_shm_arena_reclaim(p->arena, consumer_id);
}

void sl_weights_pub_stats(const sl_weights_pub *p, sl_shm_stats *st) {
    if (p && st) sl_shm_arena_stats(p->arena, st);
}

uint64_t sl_weights_pub_forced(const sl_weights_pub *p) { return p ? p->forced : 0; }

/* ================================================================ consumer */

struct sl_weights_sub {
    unsigned consumer_id;
    sl_shm_view *view;
};

int sl_weights_sub_new(unsigned consumer_id, sl_weights_sub **out) {
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (consumer_id >= SL_SHM_CONSUMERS_MAX) return SL_EINVAL;
    sl_weights_sub *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->consumer_id = consumer_id;
    *out = s;
    return SL_OK;
}

void sl_weights_sub_free(sl_weights_sub *s) {
    if (!s) return;
    sl_shm_view_close(s->view);
    free(s);
}

static int sub_view(sl_weights_sub *s, const sl_shm_desc *desc) {
    if (s->view && sl_shm_view_matches(s->view, desc)) return SL_OK;
    sl_shm_view_close(s->view);
    s->view = NULL;
    return sl_shm_arena_open(desc, s->consumer_id, &s->view);
}

int sl_weights_sub_apply(sl_weights_sub *s, const sl_shm_desc *desc, float *dst,
                         size_t n_params, uint64_t *weight_version) {
    if (!s || !desc || !dst || n_params == 0) return SL_EINVAL;
    int e = sub_view(s, desc);
    if (e) return e;
    const void *ptr;
    size_t len;
    /* The bytes are hashed below, on our private copy (which also proves
     * the copy is not torn by a concurrent reuse of the slot). */
    e = sl_shm_read(s->view, desc, SL_SHM_READ_TRUST_DATA, &ptr, &len);
    if (e) return e;
    const uint8_t *b = ptr;
    if (len < SL_WEIGHTS_HEADER_SIZE || sl_get_u32(b) != SL_WEIGHTS_MAGIC ||
        sl_get_u16(b + 4) != SL_WEIGHTS_VERSION || sl_get_u16(b + 6) != SL_WEIGHTS_HEADER_SIZE) {
        sl_shm_release(s->view, desc);
        return SL_EPROTO;
    }
    uint64_t n = sl_get_u64(b + 8), ver = sl_get_u64(b + 16);
    if (n != n_params || len != SL_WEIGHTS_HEADER_SIZE + n_params * sizeof(float)) {
        sl_shm_release(s->view, desc);
        return SL_ERANGE;
    }
    /* Hash header + copy, in the same order the publisher hashed. */
    uint8_t hdr[SL_WEIGHTS_HEADER_SIZE];
    memcpy(hdr, b, sizeof hdr);
    memcpy(dst, b + SL_WEIGHTS_HEADER_SIZE, n_params * sizeof(float));
    sl_shm_release(s->view, desc);
    /* Recompute the checksum of what we copied: header + params. */
    XXH3_state_t *st = XXH3_createState();
    if (!st) return SL_ENOMEM;
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, hdr, sizeof hdr);
    XXH3_64bits_update(st, dst, n_params * sizeof(float));
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    if (h != desc->checksum || sl_get_u64(hdr + 16) != ver) return SL_ECHECKSUM;
    if (weight_version) *weight_version = ver;
    return SL_OK;
}

int sl_weights_sub_drop(sl_weights_sub *s, const sl_shm_desc *desc) {
    if (!s || !desc) return SL_EINVAL;
    int e = sub_view(s, desc);
    if (e) return e;
    return sl_shm_release(s->view, desc);
}
