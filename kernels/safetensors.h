/*
 * safetensors.h — reading and writing Hugging Face safetensors weights.
 *
 * Reading maps the files (mmap, read-only): a single model.safetensors, any
 * *.safetensors file, or a folder holding model.safetensors.index.json and
 * its shards (each shard mapped once) or a plain model.safetensors. Tensors
 * are found by name and give their dtype, shape and a pointer to the bytes
 * inside the mapping; sl_safetensors_read_f32 converts F32 / BF16 / F16 into
 * a caller's fp32 buffer after checking the shape.
 *
 * Writing takes fp32 tensors (name + shape + data) and writes F32 or BF16
 * (round to nearest even) in the layout transformers' save_pretrained uses:
 * model.safetensors, or model-0000i-of-0000N.safetensors shards plus
 * model.safetensors.index.json {"metadata": {"total_size": N},
 * "weight_map": {...}} when the data is larger than the shard size. Header
 * keys and data are in name order, the header is padded with spaces so the
 * data starts 8-byte aligned, "__metadata__" is {"format": "pt"}, and the
 * tensors are contiguous (the format forbids holes between tensors).
 * Files are written to a temporary name, fsync'd, then renamed.
 *
 * Every file is hostile: a truncated file, an absurd header length, bad
 * JSON, missing/invalid dtype/shape/data_offsets, overlapping, gapped,
 * reversed or out-of-range offsets, a byte length that does not match the
 * shape, an unknown dtype (only F32, BF16, F16 are accepted), duplicate
 * names, a broken index or a shard it names that is missing — each is
 * refused with an error code and a message naming the file and the problem.
 * Nothing is read outside the mapped ranges.
 *
 * It is not a general tensor library: no other dtypes, no writing of F16,
 * no lazy loading over the network. It knows nothing about models (model.h
 * maps names to parameters).
 */
#ifndef SL_SAFETENSORS_H
#define SL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* ----------------------------------------------------------------- dtypes */

typedef enum sl_dtype {
    SL_DTYPE_F32 = 0,
    SL_DTYPE_BF16 = 1,
    SL_DTYPE_F16 = 2,
} sl_dtype;

/* "F32", "BF16", "F16" (the safetensors spelling); "?" for anything else. */
const char *sl_dtype_name(sl_dtype dt);

/* Bytes per element: 4, 2, 2; 0 for an invalid value. */
size_t sl_dtype_size(sl_dtype dt);

/* Parse a safetensors dtype string; SL_EUNSUPPORTED for a known but
 * unsupported one ("F64", "I64", "U8", ...) and for anything else. */
int sl_dtype_from_name(const char *s, sl_dtype *out);

/* Scalar conversions. bf16 → f32 and f16 → f32 are exact (f16 subnormals,
 * infinities and NaN included). f32 → bf16 rounds to nearest, ties to even,
 * as torch's tensor.to(torch.bfloat16) does; NaN stays a (quiet) NaN. */
float sl_bf16_to_f32(uint16_t h);
uint16_t sl_f32_to_bf16(float f);
float sl_f16_to_f32(uint16_t h);

/* --------------------------------------------------------------- reading */

#define SL_ST_MAX_DIMS 8        /* tensors of higher rank are refused */
#define SL_ST_ERRLEN 512        /* suggested size of err buffers */
#define SL_ST_MAX_HEADER (100u * 1000u * 1000u) /* as the reference loader */

typedef struct sl_st_tensor {
    const char *name;              /* NUL-terminated, owned by the handle */
    sl_dtype dtype;
    int ndim;                      /* 0 (a scalar) .. SL_ST_MAX_DIMS */
    int64_t shape[SL_ST_MAX_DIMS];
    int64_t numel;                 /* product of shape (1 for a scalar) */
    const void *data;              /* inside the read-only mapping */
    size_t nbytes;                 /* numel * sl_dtype_size(dtype) */
    int shard;                     /* which file it lives in (0 for one file) */
} sl_st_tensor;

typedef struct sl_safetensors sl_safetensors;

/* Open weights. `path` is a .safetensors file, a model.safetensors.index.json
 * file, or a folder (its model.safetensors.index.json when present, else
 * its model.safetensors). Every header is validated completely here; a file
 * that opens has only valid, in-range, non-overlapping tensors.
 * On success *out owns a new handle (sl_safetensors_close). On error *out is
 * NULL and err[0..errlen) (when err is not NULL) names the file and what is
 * wrong. Errors: SL_ENOENT (no such file / shard / weights in the folder),
 * SL_EIO, SL_EINVAL (malformed file or index), SL_EUNSUPPORTED (a dtype other
 * than F32/BF16/F16, or rank > SL_ST_MAX_DIMS), SL_ENOMEM.
 * The handle is immutable after open: lookups and reads are thread-safe. */
int sl_safetensors_open(const char *path, sl_safetensors **out, char *err, size_t errlen);

/* Unmap and free; NULL is ignored. Pointers from the handle die with it. */
void sl_safetensors_close(sl_safetensors *st);

/* Number of tensors, and the i-th in name order (NULL when i is out of
 * range). The pointer is owned by the handle. */
size_t sl_safetensors_count(const sl_safetensors *st);
const sl_st_tensor *sl_safetensors_at(const sl_safetensors *st, size_t i);

/* Tensor by name (binary search), or NULL when absent. Owned by the handle. */
const sl_st_tensor *sl_safetensors_find(const sl_safetensors *st, const char *name);

/* Number of files mapped (1, or the number of shards) and the path of one
 * (owned by the handle). */
int sl_safetensors_shard_count(const sl_safetensors *st);
const char *sl_safetensors_shard_path(const sl_safetensors *st, int i);

/* Sum of numel over all tensors. */
int64_t sl_safetensors_total_numel(const sl_safetensors *st);

/* Convert one tensor into dst (numel floats, caller-owned), F32 copied,
 * BF16 / F16 widened. Never fails for a tensor of an open handle. */
void sl_st_tensor_to_f32(const sl_st_tensor *t, float *dst);

/* Find `name`, check that its shape equals shape[0..ndim) and convert it
 * into dst (caller-owned, product of shape floats). Errors: SL_ENOENT (no
 * such tensor: "tensor 'x' not found in FILE"), SL_EINVAL (shape mismatch:
 * "tensor 'x' in FILE: expected shape [a, b], found [c, d]"), with the
 * message in err. Thread-safe. */
int sl_safetensors_read_f32(const sl_safetensors *st, const char *name, const int64_t *shape,
                            int ndim, float *dst, char *err, size_t errlen);

/* --------------------------------------------------------------- writing */

/* One tensor to write. Strings and data are borrowed for the call. */
typedef struct sl_st_save_tensor {
    const char *name;
    int ndim;                      /* 0 .. SL_ST_MAX_DIMS */
    int64_t shape[SL_ST_MAX_DIMS];
    const float *data;             /* product of shape floats */
} sl_st_save_tensor;

/* transformers' default max_shard_size ("5GB" = 5e9 bytes). */
#define SL_ST_DEFAULT_SHARD_BYTES ((size_t)5000000000ull)

/* Write tensors into folder `dir` (created, mode 0755, when missing) as
 * `dtype` (SL_DTYPE_F32 or SL_DTYPE_BF16). When the total data is at most
 * max_shard_bytes (0 = SL_ST_DEFAULT_SHARD_BYTES) it writes
 * dir/model.safetensors; otherwise tensors, in name order, are packed
 * greedily into shards of at most max_shard_bytes each (a tensor larger than
 * that gets a shard of its own, as transformers does), named
 * model-00001-of-0000N.safetensors, plus model.safetensors.index.json. A
 * stale model.safetensors / index of the other layout is removed so the
 * folder is never ambiguous. Names must be unique and non-empty. Each file
 * is written to "NAME.tmp.PID", fsync'd and renamed.
 * Errors: SL_EINVAL (bad arguments, duplicate name, dtype F16), SL_EIO
 * (with the path and strerror in err), SL_ENOMEM. Thread-safe for distinct
 * folders. */
int sl_safetensors_save(const char *dir, const sl_st_save_tensor *tensors, size_t n,
                        sl_dtype dtype, size_t max_shard_bytes, char *err, size_t errlen);

/* Write exactly one file `path` (no index), same rules as above. */
int sl_safetensors_save_file(const char *path, const sl_st_save_tensor *tensors, size_t n,
                             sl_dtype dtype, char *err, size_t errlen);

#endif /* SL_SAFETENSORS_H */
