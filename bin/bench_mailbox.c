/*
 * bench_mailbox.c — `slime-bench mailbox [--messages N] [--size BYTES]`:
 * mailbox round-trip latency (request/reply, p50/p99 µs) and one-way
 * messages/s between two processes over ipc, printed as one JSON object.
 * The server is a forked child that opens its own mailbox (no ZeroMQ state
 * crosses the fork). Not a test: it asserts nothing about speed.
 */
#include "mailbox.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_DONE 0x8f01 /* user type: "tell me how many you received" */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The server: echo requests, count one-way TEST messages, answer DONE
 * with the count, exit on STOP. */
static int server(const char *run_dir, int ready_fd) {
    sl_mailbox *mb;
    if (sl_mailbox_open(run_dir, "bench_server", &mb)) return 1;
    if (write(ready_fd, "r", 1) != 1) return 1;
    close(ready_fd);
    uint64_t count = 0;
    for (;;) {
        sl_msg m;
        sl_err err = sl_mailbox_recv(mb, &m, 10000);
        if (err == SL_EAGAIN) continue;
        if (err) break;
        if (m.type == SL_MSG_TEST) count++;
        else if (m.type == BENCH_DONE) {
            uint8_t p[8];
            sl_put_u64(p, count);
            sl_mailbox_reply(mb, &m, BENCH_DONE, p, 8);
            count = 0;
        } else if (m.type == SL_MSG_STOP) {
            sl_msg_fini(&m);
            break;
        } else sl_mailbox_handle_builtin(mb, &m);
        sl_msg_fini(&m);
    }
    sl_mailbox_close(mb);
    return 0;
}

int bench_mailbox(int argc, char **argv) {
    long n = 20000, size = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--messages") && i + 1 < argc) n = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: slime-bench mailbox [--messages N] [--size BYTES]\n");
            return SL_EXIT_USAGE;
        }
    }
    if (n < 1 || size < 0 || size > SL_FRAME_MAX_PAYLOAD) {
        fprintf(stderr, "slime-bench mailbox: --messages >= 1, --size 0..%d\n", SL_FRAME_MAX_PAYLOAD);
        return SL_EXIT_USAGE;
    }
    char run_dir[] = "/tmp/slbenchXXXXXX";
    if (!mkdtemp(run_dir)) {
        perror("mkdtemp");
        return SL_EXIT_FAIL;
    }
    int pfd[2];
    if (pipe(pfd)) return SL_EXIT_FAIL;
    pid_t pid = fork();
    if (pid < 0) return SL_EXIT_FAIL;
    if (pid == 0) {
        close(pfd[0]);
        _exit(server(run_dir, pfd[1]));
    }
    close(pfd[1]);
    char c;
    int rc = SL_EXIT_FAIL;
    sl_mailbox *mb = NULL;
    uint8_t *payload = calloc(1, (size_t)size + 1);
    uint64_t *lat = malloc(sizeof *lat * (size_t)n);
    if (read(pfd[0], &c, 1) != 1 || !payload || !lat) goto out;
    if (sl_mailbox_open(run_dir, "bench_client", &mb)) goto out;
    sl_mailbox_set_send_timeout(mb, 5000);
    for (long i = 0; i < size; i++) payload[i] = (uint8_t)i;

    /* round trips (a few warm-up ones first) */
    sl_msg r;
    for (int i = 0; i < 100; i++) {
        if (sl_mailbox_request(mb, "bench_server", SL_MSG_ECHO, payload, (size_t)size, &r, 5000))
            goto out;
        sl_msg_fini(&r);
    }
    uint64_t t0 = sl_now_ns();
    for (long i = 0; i < n; i++) {
        uint64_t a = sl_now_ns();
        if (sl_mailbox_request(mb, "bench_server", SL_MSG_ECHO, payload, (size_t)size, &r, 5000))
            goto out;
        lat[i] = sl_now_ns() - a;
        sl_msg_fini(&r);
    }
    double rt_s = (double)(sl_now_ns() - t0) / 1e9;
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);

    /* one way: send N, then ask how many arrived (the DONE reply comes
     * after all of them, as one peer's messages stay in order) */
    uint64_t t1 = sl_now_ns();
    long sent = 0;
    for (long i = 0; i < n; i++) {
        sl_err err = sl_mailbox_send(mb, "bench_server", SL_MSG_TEST, payload, (size_t)size);
        if (err == SL_OK) sent++;
        else if (err != SL_EFULL) goto out;
    }
    if (sl_mailbox_request(mb, "bench_server", BENCH_DONE, NULL, 0, &r, 30000)) goto out;
    double ow_s = (double)(sl_now_ns() - t1) / 1e9;
    uint64_t got = r.len == 8 ? sl_get_u64(r.payload) : 0;
    sl_msg_fini(&r);
    sl_mailbox_send(mb, "bench_server", SL_MSG_STOP, NULL, 0);

    printf("{\"bench\":\"mailbox\",\"transport\":\"zeromq ipc\",\"messages\":%ld,\"payload_bytes\":%ld,"
           "\"frame_bytes\":%ld,\"roundtrip_us\":{\"p50\":%.1f,\"p99\":%.1f,\"min\":%.1f,\"max\":%.1f},"
           "\"roundtrips_per_s\":%.0f,\"oneway_msgs_per_s\":%.0f,\"oneway_MB_per_s\":%.1f,"
           "\"oneway_sent\":%ld,\"oneway_received\":%llu}\n",
           n, size, size + SL_FRAME_HEADER_SIZE, lat[n / 2] / 1e3,
           lat[(size_t)((double)n * 0.99) < (size_t)n ? (size_t)((double)n * 0.99) : (size_t)n - 1] / 1e3,
           lat[0] / 1e3, lat[n - 1] / 1e3, (double)n / rt_s, (double)got / ow_s,
           (double)got * (double)(size + SL_FRAME_HEADER_SIZE) / ow_s / 1e6, sent,
           (unsigned long long)got);
    rc = got == (uint64_t)sent ? SL_EXIT_OK : SL_EXIT_FAIL;
out:
    if (rc != SL_EXIT_OK) fprintf(stderr, "slime-bench mailbox: failed\n");
    sl_mailbox_close(mb);
    free(payload);
    free(lat);
    close(pfd[0]);
    int st;
    if (waitpid(pid, &st, WNOHANG) == 0) {
        usleep(200000);
        if (waitpid(pid, &st, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
    }
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", run_dir);
    if (system(cmd) != 0) fprintf(stderr, "slime-bench mailbox: could not remove %s\n", run_dir);
    return rc;
}
