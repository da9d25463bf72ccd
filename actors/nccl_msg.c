/*
 * nccl_msg.c — NCCL_ID payloads (nccl_msg.h).
 */
#include "nccl_msg.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base.h"

static int valid_group(const char *g) { return !strcmp(g, "dp") || !strcmp(g, "weights"); }

int sl_nccl_id_msg_encode(const sl_nccl_id_msg *m, char *buf, size_t cap)
{
    unsigned char raw[SL_NCCL_ID_BYTES];
    if (!valid_group(m->group) || m->nranks < 1 || m->nranks > SL_NCCL_MAX_RANKS || m->rank < 0 ||
        m->rank >= m->nranks || m->epoch < 0 || sl_nccl_id_from_hex(m->id, raw, NULL, 0))
        return -1;
    int n = snprintf(buf, cap, "{\"group\":\"%s\",\"nranks\":%d,\"rank\":%d,\"epoch\":%lld,\"id\":\"%s\"}",
                     m->group, m->nranks, m->rank, (long long)m->epoch, m->id);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

#define WHY(...) (why && wl ? snprintf(why, wl, __VA_ARGS__) : 0)

int sl_nccl_id_msg_decode(const void *payload, size_t len, sl_nccl_id_msg *m, char *why, size_t wl)
{
    memset(m, 0, sizeof(*m));
    json_error_t je;
    json_t *o = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        WHY("NCCL_ID: not a JSON object%s%s", o ? "" : ": ", o ? "" : je.text);
        json_decref(o);
        return SL_EPROTO;
    }
    int rc = SL_EINVAL;
    json_t *g = json_object_get(o, "group"), *nr = json_object_get(o, "nranks"),
           *r = json_object_get(o, "rank"), *ep = json_object_get(o, "epoch"), *id = json_object_get(o, "id");
    if (!json_is_string(g) || !valid_group(json_string_value(g))) {
        WHY("NCCL_ID: field group: must be \"dp\" or \"weights\"");
    } else if (!json_is_integer(nr) || json_integer_value(nr) < 1 || json_integer_value(nr) > SL_NCCL_MAX_RANKS) {
        WHY("NCCL_ID: field nranks: an integer in [1, %d]", SL_NCCL_MAX_RANKS);
    } else if (!json_is_integer(r) || json_integer_value(r) < 0 || json_integer_value(r) >= json_integer_value(nr)) {
        WHY("NCCL_ID: field rank: an integer in [0, nranks)");
    } else if (!json_is_integer(ep) || json_integer_value(ep) < 0) {
        WHY("NCCL_ID: field epoch: an integer >= 0");
    } else if (!json_is_string(id)) {
        WHY("NCCL_ID: field id: missing or not a string");
    } else {
        unsigned char raw[SL_NCCL_ID_BYTES];
        char w2[96];
        if (sl_nccl_id_from_hex(json_string_value(id), raw, w2, sizeof w2)) {
            WHY("NCCL_ID: field id: %s", w2);
        } else {
            snprintf(m->group, sizeof m->group, "%s", json_string_value(g));
            m->nranks = (int)json_integer_value(nr), m->rank = (int)json_integer_value(r);
            m->epoch = (int64_t)json_integer_value(ep);
            sl_nccl_id_to_hex(raw, m->id);
            rc = SL_OK;
        }
    }
    json_decref(o);
    return rc;
}
