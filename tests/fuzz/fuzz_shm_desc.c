/*
 * fuzz_shm_desc.c — libFuzzer target for shared-memory slot descriptors
 * (mailbox/shm.h: sl_shm_desc_decode).
 *
 * Input: the descriptor bytes as they arrive in a mailbox message. Byte
 * strings of the right size get a valid magic and version written over
 * them when the last byte is odd, so the field checks behind them are
 * reached. Properties: a refused descriptor leaves *desc untouched; an
 * accepted one obeys the documented bounds and encodes back to the same
 * 64 bytes.
 * What it is not: a test of mapping an arena (sl_shm_arena_open touches
 * other processes' descriptors; the unit test covers it).
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "base.h"
#include "fuzz_util.h"
#include "shm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) abort();
    if (size) memcpy(buf, data, size);
    if (size == SL_SHM_DESC_SIZE && (buf[size - 1] & 1)) {
        sl_put_u32(buf, SL_SHM_DESC_MAGIC);
        sl_put_u16(buf + 4, SL_SHM_DESC_VERSION);
    }
    sl_shm_desc d, sentinel;
    memset(&d, 0xA5, sizeof d);
    memcpy(&sentinel, &d, sizeof d);
    int rc = sl_shm_desc_decode(buf, size, &d);
    if (rc) {
        FUZZ_CHECK(rc == SL_EINVAL || rc == SL_EPROTO);
        FUZZ_CHECK(memcmp(&d, &sentinel, sizeof d) == 0);
    } else {
        FUZZ_CHECK(size == SL_SHM_DESC_SIZE);
        FUZZ_CHECK(d.ctl_fd <= INT_MAX && d.data_fd <= INT_MAX);
        FUZZ_CHECK(d.offset + d.length >= d.offset);
        uint8_t again[SL_SHM_DESC_SIZE];
        sl_shm_desc_encode(&d, again);
        FUZZ_CHECK(memcmp(again, buf, SL_SHM_DESC_SIZE) == 0);
    }
    free(buf);
    return 0;
}
