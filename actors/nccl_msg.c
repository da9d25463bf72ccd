/*
 * nccl_msg.c — NCCL_ID payloads (nccl_msg.h).
 */
#include "nccl_msg.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor.h"
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

int sl_nccl_id_send(struct sl_actor_ctx *ctx, const char *to, const char *group, int nranks, int rank,
                    int64_t epoch, const char hex[SL_NCCL_ID_HEX])
{
    sl_nccl_id_msg m = {.nranks = nranks, .rank = rank, .epoch = epoch};
    snprintf(m.group, sizeof m.group, "%s", group);
    memcpy(m.id, hex, sizeof m.id);
    char buf[512];
    int n = sl_nccl_id_msg_encode(&m, buf, sizeof buf);
    if (n < 0) return SL_EINVAL;
    return sl_actor_send(ctx, to, SL_MSG_NCCL_ID, buf, (size_t)n);
}

void sl_nccl_own_host(const char *actor_name)
{
    char host[128];
    snprintf(host, sizeof host, "slime-%d-%s", (int)getppid(), actor_name);
    setenv("NCCL_HOSTID", host, 1);
    setenv("NCCL_SOCKET_IFNAME", "lo", 0);
}

static void *ncjoin_main(void *arg)
{
    sl_ncjoin *j = arg;
    char err[256] = "";
    int e = sl_gpu_set_device(j->device, err, sizeof err);
    if (!e) e = sl_nccl_init(j->id, j->nranks, j->rank, &j->nc, err, sizeof err);
    j->rc = e;
    snprintf(j->err, sizeof j->err, "%s", err);
    atomic_store(&j->done, 1);
    return NULL;
}

int sl_ncjoin_start(sl_ncjoin *j)
{
    atomic_store(&j->done, 0);
    j->rc = 0, j->err[0] = 0, j->nc = NULL;
    if (pthread_create(&j->th, NULL, ncjoin_main, j) != 0) {
        snprintf(j->err, sizeof j->err, "cannot start the NCCL join thread");
        return SL_ENOMEM;
    }
    j->started = true;
    return SL_OK;
}

int sl_ncjoin_poll(sl_ncjoin *j, sl_nccl **nc)
{
    if (!j->started || !atomic_load(&j->done)) return 0;
    pthread_join(j->th, NULL);
    j->started = false;
    if (j->rc) return -j->rc;
    *nc = j->nc;
    j->nc = NULL;
    return 1;
}

void sl_ncjoin_fini(sl_ncjoin *j)
{
    if (!j->started) return;
    if (!atomic_load(&j->done)) return; /* blocked in NCCL: dies with the process */
    pthread_join(j->th, NULL);
    j->started = false;
    sl_nccl_free(j->nc);
    j->nc = NULL;
}

bool sl_weights_by_nccl(const struct sl_topology *t, const struct sl_actor_spec *tr,
                        const struct sl_actor_spec *ro)
{
    if (!tr || !ro || tr->cuda_device < 0 || ro->cuda_device < 0) return false;
    if (tr->cuda_device != ro->cuda_device) return true;
    const char *a = tr->host ? tr->host : "", *b = ro->host ? ro->host : "";
    if (strcmp(a, b) != 0) return true; /* other machines: no CUDA IPC */
    return t && strcmp(sl_topology_get_str(t, "trainer", "gpu_weight_sync"), "broadcast") == 0;
}
