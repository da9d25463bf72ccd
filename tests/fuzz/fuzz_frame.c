/*
 * fuzz_frame.c — libFuzzer target for the mailbox frame decoder
 * (mailbox/frame.h: sl_frame_decode).
 *
 * Input: byte 0 is a mode, the rest is the frame. Mode bit 0 set: the
 * header and payload CRC-32s are recomputed before decoding, so the fuzzer
 * reaches the checks that come after the checksums (type, flags, sender,
 * lengths). Properties checked: decode never reads outside the buffer
 * (ASan), a frame that decodes has a payload pointer inside it and of the
 * promised length, and re-encoding it gives back the same bytes.
 * What it is not: a test of the ZeroMQ transport.
 */
#include <stdint.h>
#include <string.h>

#include "base.h"
#include "frame.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned mode = data[0];
    data++;
    size--;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) abort();
    if (size) memcpy(buf, data, size);
    if ((mode & 1) && size >= SL_FRAME_HEADER_SIZE) {
        /* payload_crc at 72 covers the bytes after the header; header_crc
         * at 76 covers bytes 0..75 (PROTOCOL.md). */
        sl_put_u32(buf + 72, sl_crc32(buf + SL_FRAME_HEADER_SIZE, size - SL_FRAME_HEADER_SIZE));
        sl_put_u32(buf + 76, sl_crc32(buf, 76));
    }
    sl_frame_header h;
    const uint8_t *payload = (const uint8_t *)1;
    sl_frame_reason r = sl_frame_decode(buf, size, &h, &payload);
    (void)sl_frame_reason_err(r);
    if (r == SL_FRAME_OK) {
        FUZZ_CHECK(size == SL_FRAME_HEADER_SIZE + (size_t)h.payload_len);
        FUZZ_CHECK(h.payload_len == 0 ? payload == NULL : payload == buf + SL_FRAME_HEADER_SIZE);
        FUZZ_CHECK(memchr(h.sender, 0, sizeof h.sender) != NULL);
        FUZZ_CHECK(sl_mb_name_valid(h.sender));
        uint8_t *again = malloc(SL_FRAME_MAX_SIZE);
        if (!again) abort();
        size_t n = 0;
        sl_err e = sl_frame_encode(&h, payload, h.payload_len, again, SL_FRAME_MAX_SIZE, &n);
        FUZZ_CHECK(e == SL_OK);
        FUZZ_CHECK(n == size && memcmp(again, buf, size) == 0);
        free(again);
    } else {
        FUZZ_CHECK(payload == NULL);
        FUZZ_CHECK(h.payload_len == 0 && h.type == 0 && h.sender[0] == 0);
    }
    /* validation only: NULL outputs are allowed */
    FUZZ_CHECK(sl_frame_decode(buf, size, NULL, NULL) == r);
    free(buf);
    return 0;
}
