/*
 * tboard.h — a TensorBoard event-file writer for scalars, so that
 * `tensorboard --logdir runs/` shows a run's curves.
 *
 * It writes RUN_DIR/tb/events.out.tfevents.<unix time>.<host>.<pid>.<seq>:
 * TFRecord framing (u64 length, masked CRC32C of the length, data, masked
 * CRC32C of the data) around serialized tensorboard `Event` protobufs. The
 * first record carries file_version "brain.Event:2"; every later one a
 * `Summary` of `simple_value` scalars. The protobuf encoding is written by
 * hand (a few varints and length-delimited fields): no protobuf dependency.
 *
 * It is not a reader, nor a general TensorBoard library: no histograms,
 * images or text summaries. The (tiny) reader the tests use lives in the
 * tests.
 */
#ifndef SL_TBOARD_H
#define SL_TBOARD_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init and final xor
 * 0xFFFFFFFF), slice-by-8. crc32c("123456789") = 0xE3069283. Not the zlib
 * CRC (sl_crc32). Thread-safe. */
uint32_t sl_crc32c(const void *data, size_t len);

/* TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8. */
uint32_t sl_tb_mask_crc(uint32_t crc);

/* Longest tag accepted, in bytes. */
#define SL_TB_MAX_TAG 256

typedef struct sl_tb_writer sl_tb_writer;

/* Create DIR if needed (one level, mode 0755) and a new event file in it,
 * and write its file_version record. The file name is unique (O_EXCL, pid
 * and a sequence number in it), so a restarted writer never clobbers an
 * earlier file; TensorBoard reads all files of the directory in order.
 * On success *OUT owns the writer (close with sl_tb_close).
 * Errors: SL_EINVAL (NULL/empty arguments), SL_EIO (mkdir/open/write
 * failed, errno says more), SL_ENOMEM. */
int sl_tb_open(const char *dir, sl_tb_writer **out);

/* Path of the event file (owned by W, valid until sl_tb_close). */
const char *sl_tb_path(const sl_tb_writer *w);

/* Append one scalar: TAG (1..SL_TB_MAX_TAG bytes of valid UTF-8, no
 * control characters) at STEP with VALUE (stored as a float, as
 * TensorBoard's simple_value is). WALL_TIME is Unix seconds; <= 0 means
 * now. Records are buffered: sl_tb_flush makes them visible.
 * Not thread-safe: one writer per thread, or lock around it.
 * Errors: SL_EINVAL (bad tag, NULL writer), SL_EIO (write failed; the
 * writer stays usable, the record may be torn — TensorBoard stops reading
 * a file at a torn record, so a failed write is worth a log line). */
int sl_tb_scalar(sl_tb_writer *w, const char *tag, int64_t step, float value, double wall_time);

/* Append N scalars as one event (one record): TAGS[i] = VALUES[i] at
 * STEP. Same rules as sl_tb_scalar; nothing is written if any tag is bad.
 * N may be 0 (writes nothing). Errors as sl_tb_scalar, SL_ERANGE if the
 * event would exceed 1 MiB. */
int sl_tb_scalars(sl_tb_writer *w, size_t n, const char *const *tags, const float *values,
                  int64_t step, double wall_time);

/* Write one line of metrics.jsonl as scalars, one event for the line.
 * Every top-level numeric (integer or real, not boolean) field becomes a
 * scalar tagged "PHASE/FIELD" when the object has a string "phase" (e.g.
 * "rl/reward_mean", "sft/loss", "eval/eval_accuracy"), plain "FIELD"
 * otherwise. The fields "step" (the event's step, required, an integer or
 * an integral real), "phase" and "time" are not scalars; "time" is the
 * event's wall time when it looks like Unix seconds (> 1e8), else now.
 * Non-numeric fields (strings, arrays, objects) are ignored; so are keys
 * that make a bad tag. *N_WRITTEN (may be NULL) gets the number of scalars.
 * LEN is the line's length (a trailing newline is fine).
 * Errors: SL_EINVAL (not a JSON object, no usable step), SL_EIO. */
int sl_tb_from_metrics_line(sl_tb_writer *w, const char *json_line, size_t len, int *n_written);

/* Write buffered records to the file (fflush, no fsync).
 * Errors: SL_EINVAL (NULL), SL_EIO. */
int sl_tb_flush(sl_tb_writer *w);

/* Flush, close and free. NULL is fine. Returns SL_EIO if the final flush
 * or close failed (the writer is freed anyway). */
int sl_tb_close(sl_tb_writer *w);

#endif /* SL_TBOARD_H */
