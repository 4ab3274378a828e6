/* safetensors — strict reader (mmap) and writer for checkpoint files.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 *   { "<name>": {"dtype": "F32"|"BF16"|"F16"|"F8_E4M3"|..., "shape": [...],
 *                "data_offsets": [begin, end]}, "__metadata__": {...} }
 * then the raw little-endian data; offsets are relative to the data start.
 *
 * A "set" is one file, or the shards named by a Hugging Face index JSON
 * ({"metadata": {...}, "weight_map": {name: shard-file}}).  Opening a path
 * accepts: a .safetensors file, an index .json, or a directory holding
 * exactly one of those (an index wins over a single file).
 *
 * Every structural problem is an error naming the file and the key:
 * truncated file, header length beyond the file, malformed JSON, unknown
 * dtype, shape/offset size mismatch, offsets out of range, overlapping
 * tensors, duplicate keys, a weight_map entry whose shard lacks the key.
 */
#ifndef DIT_SAFETENSORS_H
#define DIT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_status.h"
#include "../kernels/dit_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dit_st_dtype {
  DIT_ST_F32, DIT_ST_BF16, DIT_ST_F16, DIT_ST_F64,
  DIT_ST_I64, DIT_ST_I32, DIT_ST_I16, DIT_ST_I8, DIT_ST_U8, DIT_ST_BOOL,
  DIT_ST_F8_E4M3, DIT_ST_F8_E5M2,
} dit_st_dtype;

#define DIT_ST_MAX_DIMS 8

typedef struct dit_st_tensor {
  const char *name;
  dit_st_dtype dtype;
  int ndim;
  int64_t shape[DIT_ST_MAX_DIMS];
  const void *data;    /* into the mmap */
  size_t nbytes;
  const char *file;    /* the shard it lives in */
  uint64_t file_offset; /* of the data in `file` (for reads without the map) */
} dit_st_tensor;

typedef struct dit_safetensors dit_safetensors;

dit_status dit_safetensors_open (const char *path, dit_safetensors **out);
void dit_safetensors_close (dit_safetensors *st);

size_t dit_safetensors_count (const dit_safetensors *st);
const dit_st_tensor *dit_safetensors_at (const dit_safetensors *st, size_t i);
const dit_st_tensor *dit_safetensors_find (const dit_safetensors *st,
    const char *name);
/* The "__metadata__" string value for `key` in the first file, or NULL. */
const char *dit_safetensors_metadata (const dit_safetensors *st, const char *key);

/* Small helpers for checkpoint keys, file names and messages, shared by
 * the readers of checkpoints (safetensors.c, dit_weights.c, dit_lora.c). */
int dit_str_starts_with (const char *s, const char *prefix);
int dit_str_ends_with (const char *s, const char *suffix);
/* "[a, b, c]" into buf (cut to size); returns buf. */
const char *dit_shape_str (char *buf, size_t size, int ndim,
    const int64_t *shape);

const char *dit_st_dtype_name (dit_st_dtype dt);
size_t dit_st_dtype_size (dit_st_dtype dt);
/* Convertible to a compute dtype (F32/BF16/F16)?  Sets *out.  The FP8
 * types are not (their values need the scale stored beside them, see
 * model/dit_weights.c). */
int dit_st_dtype_to_dit (dit_st_dtype st, dit_dtype *out);

/* Writer: tensors from host memory, in the order given. */
typedef struct dit_st_write_tensor {
  const char *name;
  dit_dtype dtype;
  int ndim;
  const int64_t *shape;
  const void *data;
} dit_st_write_tensor;

/* metadata: NULL or NULL-terminated list of key, value, key, value, ... */
dit_status dit_safetensors_write (const char *path,
    const dit_st_write_tensor *tensors, size_t count,
    const char *const *metadata);

/* Streaming writer: like dit_safetensors_write, but tensor i's bytes come
 * from fill(user, i, dst, nbytes) (nbytes in the tensor's dtype) instead of
 * tensors[i].data, so a checkpoint larger than memory is written one tensor
 * at a time. */
typedef dit_status (*dit_st_fill_fn) (void *user, size_t index, void *dst,
    size_t nbytes);
dit_status dit_safetensors_write_fn (const char *path,
    const dit_st_write_tensor *tensors, size_t count,
    const char *const *metadata, dit_st_fill_fn fill, void *user);

#ifdef __cplusplus
}
#endif
#endif
