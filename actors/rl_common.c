/*
 * rl_common.c — helpers shared by the RL actors: model folder resolution
 * (builtin:arith), finding actors by kind, JSON payloads and hex
 * descriptors. See rl_common.h. Not any actor's logic.
 */
#include "rl_common.h"
#include "task_arith.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ========================================================== model folder */

static int file_exists(const char *dir, const char *name) {
    char p[PATH_MAX];
    if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, name) >= sizeof p) return 0;
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void remove_tree_shallow(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[PATH_MAX];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < sizeof p) unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void fsync_path(const char *path, int dir) {
    int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int model_dir_for(const char *model_path, const char *run_dir, const sl_arith_model_cfg *shape,
                         char *out, size_t cap) {
    if (!model_path || !*model_path || !out || !cap) return SL_EINVAL;
    if (strcmp(model_path, SL_RL_BUILTIN_ARITH) != 0) {
        if (strlen(model_path) >= cap) return SL_EINVAL;
        strcpy(out, model_path);
        return SL_OK;
    }
    if (!run_dir || !*run_dir) return SL_EINVAL;
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s/model", run_dir) >= sizeof dir || strlen(dir) >= cap)
        return SL_EINVAL;
    if (file_exists(dir, "config.json") && file_exists(dir, "tokenizer.json") &&
        file_exists(dir, "tokenizer_config.json")) {
        strcpy(out, dir);
        return SL_OK;
    }
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.model.tmp.XXXXXX", run_dir) >= sizeof tmp)
        return SL_EINVAL;
    if (!mkdtemp(tmp)) {
        sl_error("cannot create %s: %s", tmp, strerror(errno));
        return SL_EIO;
    }
    char err[256] = "";
    int e = sl_arith_write_model_config(tmp, shape, err, sizeof err);
    if (!e) e = sl_arith_write_tokenizer(tmp, err, sizeof err);
    if (e) {
        sl_error("cannot write the built-in model into %s: %s", tmp, err);
        remove_tree_shallow(tmp);
        return SL_EIO;
    }
    const char *files[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json"};
    for (size_t i = 0; i < SL_ARRAY_LEN(files); i++) {
        char p[PATH_MAX];
        if ((size_t)snprintf(p, sizeof p, "%s/%s", tmp, files[i]) < sizeof p) fsync_path(p, 0);
    }
    fsync_path(tmp, 1);
    if (rename(tmp, dir) != 0) {
        int en = errno;
        remove_tree_shallow(tmp);
        /* Someone else won the race: their folder has the same content. */
        if (!(file_exists(dir, "config.json") && file_exists(dir, "tokenizer.json"))) {
            sl_error("cannot rename into %s: %s", dir, strerror(en));
            return SL_EIO;
        }
    }
    fsync_path(run_dir, 1);
    strcpy(out, dir);
    return SL_OK;
}

int sl_rl_model_dir_for(const char *model_path, const char *run_dir, char *out, size_t cap) {
    return model_dir_for(model_path, run_dir, NULL, out, cap);
}

void sl_rl_builtin_shape(const sl_topology *t, sl_arith_model_cfg *m) {
    sl_arith_model_cfg_init(m);
    if (!t) return;
    m->model_type = sl_topology_get_str(t, "model", "builtin_model_type");
    m->hidden_size = (int)sl_topology_get_int(t, "model", "builtin_hidden_size");
    m->intermediate_size = (int)sl_topology_get_int(t, "model", "builtin_intermediate_size");
    m->num_hidden_layers = (int)sl_topology_get_int(t, "model", "builtin_num_hidden_layers");
    m->num_attention_heads = (int)sl_topology_get_int(t, "model", "builtin_num_attention_heads");
    m->num_key_value_heads = (int)sl_topology_get_int(t, "model", "builtin_num_key_value_heads");
    m->head_dim = (int)sl_topology_get_int(t, "model", "builtin_head_dim");
    m->vocab_size = (int)sl_topology_get_int(t, "model", "builtin_vocab_size");
    m->max_position_embeddings = (int)sl_topology_get_int(t, "model", "builtin_max_position_embeddings");
    m->tie_word_embeddings = sl_topology_get_bool(t, "model", "builtin_tie_word_embeddings");
}

int sl_rl_model_dir(sl_actor_ctx *ctx, char *out, size_t cap) {
    const sl_topology *t = sl_actor_topology(ctx);
    const char *p = t ? sl_topology_get_str(t, "model", "path") : NULL;
    if (!p || !*p) {
        sl_actor_log(ctx, SL_LOG_ERROR, "no [model] path");
        return SL_EINVAL;
    }
    sl_arith_model_cfg shape;
    sl_rl_builtin_shape(t, &shape);
    return model_dir_for(p, sl_actor_run_dir(ctx), &shape, out, cap);
}

/* ========================================================== topology */

int sl_rl_find_kind(const sl_topology *topo, const char *kind, const sl_actor_spec **out, int max) {
    if (!topo || !kind) return 0;
    int n = 0;
    for (int i = 0; i < topo->n_actors; i++) {
        const sl_actor_spec *s = &topo->actors[i];
        if (!s->kind_name || strcmp(s->kind_name, kind) != 0) continue;
        if (out && n < max) out[n] = s;
        n++;
    }
    return n;
}

const sl_actor_spec *sl_rl_find_first(const sl_topology *topo, const char *kind) {
    const sl_actor_spec *s = NULL;
    return sl_rl_find_kind(topo, kind, &s, 1) > 0 ? s : NULL;
}

/* ========================================================== descriptors */

void sl_rl_desc_to_hex(const sl_shm_desc *desc, char out[SL_RL_DESC_HEX_LEN + 1]) {
    static const char hx[] = "0123456789abcdef";
    uint8_t b[SL_SHM_DESC_SIZE];
    sl_shm_desc_encode(desc, b);
    for (int i = 0; i < SL_SHM_DESC_SIZE; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[SL_RL_DESC_HEX_LEN] = 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sl_rl_desc_from_hex(const char *hex, sl_shm_desc *desc) {
    if (!hex || !desc || strlen(hex) != SL_RL_DESC_HEX_LEN) return SL_EINVAL;
    uint8_t b[SL_SHM_DESC_SIZE];
    for (int i = 0; i < SL_SHM_DESC_SIZE; i++) {
        int h = hexval(hex[2 * i]), l = hexval(hex[2 * i + 1]);
        if (h < 0 || l < 0) return SL_EINVAL;
        b[i] = (uint8_t)(h << 4 | l);
    }
    return sl_shm_desc_decode(b, sizeof b, desc);
}

/* ========================================================== JSON */

int sl_rl_json_parse(const void *payload, size_t len, json_t **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!out) return SL_EINVAL;
    *out = NULL;
    if (!payload || len == 0 || len > SL_FRAME_MAX_PAYLOAD) {
        if (err) snprintf(err, errlen, "payload of %zu bytes", len);
        return SL_EINVAL;
    }
    json_error_t je;
    json_t *j = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        if (err) snprintf(err, errlen, "bad JSON: %s (at %d)", je.text, je.position);
        return SL_EINVAL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        if (err) snprintf(err, errlen, "payload is not a JSON object");
        return SL_EINVAL;
    }
    *out = j;
    return SL_OK;
}

static int json_encode(const json_t *obj, char **text, size_t *len) {
    *text = json_dumps(obj, JSON_COMPACT);
    if (!*text) return SL_ENOMEM;
    *len = strlen(*text);
    if (*len > SL_FRAME_MAX_PAYLOAD) {
        free(*text);
        *text = NULL;
        return SL_ERANGE;
    }
    return SL_OK;
}

int sl_rl_json_send(sl_actor_ctx *ctx, const char *to, uint16_t type, const json_t *obj) {
    char *t;
    size_t n;
    int e = json_encode(obj, &t, &n);
    if (e) return e;
    e = sl_actor_send(ctx, to, type, t, n);
    free(t);
    return e;
}

int sl_rl_json_reply(sl_actor_ctx *ctx, const sl_msg *req, uint16_t type, const json_t *obj) {
    char *t;
    size_t n;
    int e = json_encode(obj, &t, &n);
    if (e) return e;
    e = sl_actor_reply(ctx, req, type, t, n);
    free(t);
    return e;
}

int sl_rl_json_u64(const json_t *obj, const char *key, uint64_t *out) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || !json_is_integer(v) || json_integer_value(v) < 0) return SL_EINVAL;
    *out = (uint64_t)json_integer_value(v);
    return SL_OK;
}

int sl_rl_json_u64_opt(const json_t *obj, const char *key, uint64_t def, uint64_t *out) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = def;
        return SL_OK;
    }
    return sl_rl_json_u64(obj, key, out);
}

int sl_rl_json_i64_opt(const json_t *obj, const char *key, int64_t def, int64_t *out) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = def;
        return SL_OK;
    }
    if (!json_is_integer(v)) return SL_EINVAL;
    *out = (int64_t)json_integer_value(v);
    return SL_OK;
}

int sl_rl_json_dbl_opt(const json_t *obj, const char *key, double def, double *out) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = def;
        return SL_OK;
    }
    if (!json_is_number(v)) return SL_EINVAL;
    double d = json_number_value(v);
    if (!isfinite(d)) return SL_EINVAL;
    *out = d;
    return SL_OK;
}

int sl_rl_json_str_opt(const json_t *obj, const char *key, const char *def, const char **out) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = def;
        return SL_OK;
    }
    if (!json_is_string(v)) return SL_EINVAL;
    *out = json_string_value(v);
    return SL_OK;
}

int sl_rl_json_desc(const json_t *obj, sl_shm_desc *desc) {
    json_t *v = obj ? json_object_get(obj, "desc") : NULL;
    if (!v || !json_is_string(v)) return SL_EINVAL;
    return sl_rl_desc_from_hex(json_string_value(v), desc);
}
