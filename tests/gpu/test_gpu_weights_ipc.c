/*
 * test_gpu_weights_ipc.c — weights_gpu.h between two processes on one GPU,
 * as the trainer and a GPU rollout use it: the parent (trainer) exports a
 * GPU model's bf16 weights and sends the `cuda_ipc` JSON of each publish
 * over a socket; the child (rollout) pulls:
 *  - copy into its own device buffer: the bytes equal the trainer's (CRC),
 *    before and after an optimizer step (same incarnation: opened once);
 *  - in place (dst NULL): the mapped buffer holds the same bytes;
 *  - a new exporter (trainer restarted: another buffer, another nonce):
 *    the old mapping is closed and the new one opened, bytes equal;
 *  - well-formed JSON whose handles are garbage: an error, no crash.
 * Exit 0 pass, 1 failure, 77 no GPU / no CUDA.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base.h"
#include "gpu_model.h"
#include "gpu_sync.h"
#include "model.h"
#include "weights_gpu.h"

#ifndef SL_HAVE_CUDA
int main(void)
{
    printf("built without CUDA: skipped\n");
    return 77;
}
#else
#include "gpu_test.h"

/* one line of text each way */
static int send_line(int fd, const char *s)
{
    size_t n = strlen(s);
    return write(fd, s, n) == (ssize_t)n && write(fd, "\n", 1) == 1 ? 0 : -1;
}
static int recv_line(int fd, char *buf, size_t cap)
{
    size_t k = 0;
    while (k + 1 < cap) {
        char c;
        if (read(fd, &c, 1) != 1) return -1;
        if (c == '\n') break;
        buf[k++] = c;
    }
    buf[k] = 0;
    return 0;
}

static uint32_t dev_crc(const void *d, size_t n)
{
    void *h = malloc(n);
    sl_gpu_to_host(h, d, n);
    uint32_t c = sl_crc32(h, n);
    free(h);
    return c;
}

/* The child: "PULL copy|inplace CRC JSON" lines; answers "ok OPENS" or "bad ...". */
static int child(int fd)
{
    static char line[8192];
    sl_wgpu_sub *s = NULL;
    void *own = NULL;
    size_t own_n = 0;
    if (sl_wgpu_sub_new(&s)) return 1;
    while (recv_line(fd, line, sizeof line) == 0) {
        if (!strcmp(line, "quit")) break;
        char mode[16];
        unsigned crc;
        int off = 0;
        if (sscanf(line, "PULL %15s %u %n", mode, &crc, &off) != 2) return 1;
        json_t *o = json_loads(line + off, 0, NULL);
        json_t *b = json_object_get(o, "bytes");
        size_t n = json_is_integer(b) ? (size_t)json_integer_value(b) : 0;
        if (!strcmp(mode, "copy") && n != own_n) {
            sl_gpu_free(own);
            own = sl_gpu_alloc(n);
            own_n = n;
        }
        const void *p = NULL;
        char err[256] = "";
        int rc = sl_wgpu_sub_pull(s, o, !strcmp(mode, "copy") ? own : NULL, own_n, &p, err, sizeof err);
        json_decref(o);
        char ans[400];
        if (rc) snprintf(ans, sizeof ans, "err %d %s", rc, err);
        else if (dev_crc(p, n) != crc) snprintf(ans, sizeof ans, "bad crc");
        else snprintf(ans, sizeof ans, "ok %llu", (unsigned long long)sl_wgpu_sub_opens(s));
        send_line(fd, ans);
    }
    sl_gpu_free(own);
    sl_wgpu_sub_free(s);
    return 0;
}

static void expect(int fd, const char *what, const char *mode, uint32_t crc, json_t *o,
                   const char *want_prefix)
{
    char *txt = json_dumps(o, JSON_COMPACT);
    char line[8192], ans[400];
    snprintf(line, sizeof line, "PULL %s %u %s", mode, crc, txt);
    free(txt);
    if (send_line(fd, line) || recv_line(fd, ans, sizeof ans)) snprintf(ans, sizeof ans, "(child gone)");
    int ok = strncmp(ans, want_prefix, strlen(want_prefix)) == 0;
    printf("  %-52s %s -> %s\n", what, ans, ok ? "ok" : "FAIL");
    if (!ok) g_fail = 1;
}

int main(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 1;
    pid_t pid = fork(); /* before any CUDA call: the child opens its own context */
    if (pid == 0) {
        close(sv[0]);
        _exit(child(sv[1]));
    }
    close(sv[1]);
    int fd = sv[0];
    sl_log_init("test_gpu_weights_ipc", SL_LOG_WARN);
    if (!sl_cuda_available()) {
        printf("no CUDA device: skipped\n");
        send_line(fd, "quit");
        waitpid(pid, NULL, 0);
        return 77;
    }
    sl_hf_config c;
    tiny_qwen3(&c, 1000, 128);
    char err[256];
    sl_model *m = NULL;
    sl_gpum *g = NULL, *g2 = NULL;
    if (sl_model_new(&c, sl_ops_cpu(), 1, 5, &m, err, sizeof err) ||
        sl_gpum_new(m, 64, &g, err, sizeof err) || sl_gpum_new(m, 64, &g2, err, sizeof err)) {
        printf("model: %s\n", err);
        return 1;
    }
    printf("CUDA IPC weights between two processes (weights_gpu.h)\n");
    size_t nb = 0;
    void *w = sl_gpum_weights(g, &nb);
    sl_wgpu_pub *pub = NULL;
    if (sl_wgpu_pub_new(w, nb, &pub, err, sizeof err)) {
        printf("  export: %s FAIL\n", err);
        return 1;
    }
    json_t *o = sl_wgpu_publish(pub);
    expect(fd, "copy, first publish (opens the handles)", "copy", dev_crc(w, nb), o, "ok 1");
    json_decref(o);
    /* an optimizer step changes the weights; the same incarnation */
    int32_t tok[40], cu[2] = {0, 40};
    for (int i = 0; i < 40; i++) tok[i] = (i * 37) % 1000;
    sl_gpum_forward(g, tok, cu, 1, NULL, NULL, NULL, NULL);
    sl_gpum_backward_ce(g, NULL);
    uint32_t before = dev_crc(w, nb);
    sl_gpum_adamw_step(g, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.f, 0.f, NULL);
    o = sl_wgpu_publish(pub);
    uint32_t after = dev_crc(w, nb);
    if (after == before) printf("  the step did not change the weights FAIL\n"), g_fail = 1;
    expect(fd, "copy after an optimizer step (no reopen)", "copy", after, o, "ok 1");
    expect(fd, "in place (no copy)", "inplace", after, o, "ok 1");
    json_decref(o);
    /* the trainer restarted: another buffer, another nonce */
    sl_wgpu_pub_free(pub);
    size_t nb2 = 0;
    void *w2 = sl_gpum_weights(g2, &nb2);
    if (sl_wgpu_pub_new(w2, nb2, &pub, err, sizeof err)) {
        printf("  export 2: %s FAIL\n", err);
        return 1;
    }
    o = sl_wgpu_publish(pub);
    expect(fd, "a new exporter: old mapping closed, new opened", "copy", dev_crc(w2, nb2), o, "ok 2");
    /* well-formed, garbage handles */
    sl_wgpu_ref r;
    sl_wgpu_parse(o, 0, &r, err, sizeof err);
    json_decref(o);
    for (int i = 0; i < SL_WGPU_HANDLE_BYTES; i++) r.mem[i] ^= 0x5a, r.ev[i] ^= 0xa5;
    r.nonce ^= 1;
    o = sl_wgpu_to_json(&r);
    expect(fd, "garbage handles: an error, the child lives", "copy", 0, o, "err");
    json_decref(o);
    o = sl_wgpu_publish(pub);
    expect(fd, "and pulls the good one after it", "copy", dev_crc(w2, nb2), o, "ok");
    json_decref(o);
    send_line(fd, "quit");
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) printf("  child exit status %d FAIL\n", st), g_fail = 1;
    sl_wgpu_pub_free(pub);
    sl_gpum_free(g), sl_gpum_free(g2);
    sl_model_free(m);
    printf("%s\n", g_fail ? "FAILED" : "all CUDA IPC weight checks passed");
    return g_fail ? 1 : 0;
}
#endif
