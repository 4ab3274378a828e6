/* dit_tensor — a non-owning view of up to 4 dimensions.
 *
 * A tensor is a pointer, a dtype, a shape and strides counted in elements.
 * The last dimension is always contiguous for the ops in libdit (stride 1);
 * outer strides may be larger, which is how a column slice of a fused QKV
 * output or a row range of a KV cache is passed to an op without a copy.
 * Memory belongs to whoever allocated it (an arena, a mmap'd checkpoint);
 * ops never allocate.  `device` is the backend kind that can dereference
 * `data` (DIT_DEVICE_CPU pointers are host memory).
 *
 * Storage dtypes are f32, bf16 and f16; every op accumulates in f32.
 * f8e4m3 (OCP FP8 E4M3FN, kernels/dit_fp8.h) holds quantized linear weights
 * and activations; only the FP8 ops take it, always with a scale tensor
 * beside it (dit_ops.h, "FP8"), and the host helpers below convert its raw
 * values (unscaled).
 */
#ifndef DIT_TENSOR_H
#define DIT_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dit_fp8.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dit_dtype {
  DIT_F32 = 0,
  DIT_BF16 = 1,
  DIT_F16 = 2,
  DIT_F8E4M3 = 3,
} dit_dtype;

typedef enum dit_device {
  DIT_DEVICE_CPU = 0,
  DIT_DEVICE_CUDA = 1,
} dit_device;

#define DIT_MAX_DIMS 4

typedef struct dit_tensor {
  void *data;
  dit_dtype dtype;
  dit_device device;
  int ndim;
  int64_t shape[DIT_MAX_DIMS];
  int64_t stride[DIT_MAX_DIMS]; /* in elements */
} dit_tensor;

size_t dit_dtype_size (dit_dtype dt);
const char *dit_dtype_name (dit_dtype dt);

/* A contiguous (row-major) view. */
dit_tensor dit_tensor_make (void *data, dit_dtype dt, dit_device dev,
    int ndim, const int64_t *shape);
dit_tensor dit_tensor_1d (void *data, dit_dtype dt, dit_device dev, int64_t n0);
dit_tensor dit_tensor_2d (void *data, dit_dtype dt, dit_device dev,
    int64_t n0, int64_t n1);

int64_t dit_tensor_numel (const dit_tensor *t);
size_t dit_tensor_nbytes (const dit_tensor *t); /* contiguous size */
int dit_tensor_is_contiguous (const dit_tensor *t);

/* Rows [r0, r0 + n) of dimension 0 (same strides). */
dit_tensor dit_tensor_rows (const dit_tensor *t, int64_t r0, int64_t n);
/* Columns [c0, c0 + n) of the last dimension of a 2-D tensor. */
dit_tensor dit_tensor_cols (const dit_tensor *t, int64_t c0, int64_t n);
/* Reinterpret a contiguous tensor with a new shape of the same numel. */
dit_tensor dit_tensor_reshape (const dit_tensor *t, int ndim, const int64_t *shape);

/* Element address for a 2-D view. */
static inline void *
dit_tensor_at2 (const dit_tensor *t, int64_t r, int64_t c)
{
  return (char *) t->data + (size_t) (r * t->stride[0] + c * t->stride[t->ndim - 1])
      * dit_dtype_size (t->dtype);
}

/* bf16 <-> f32, round to nearest even (NaN kept quiet). */
static inline float
dit_bf16_to_f32 (uint16_t h)
{
  uint32_t u = (uint32_t) h << 16;
  float f;
  memcpy (&f, &u, 4);
  return f;
}

static inline uint16_t
dit_f32_to_bf16 (float f)
{
  uint32_t u;
  memcpy (&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t) ((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t) (u >> 16);
}

float dit_f16_to_f32 (uint16_t h);
uint16_t dit_f32_to_f16 (float f);

/* Host-side scalar load/store of element i of a buffer of dtype dt. */
static inline float
dit_load_f32 (const void *p, dit_dtype dt, size_t i)
{
  switch (dt) {
    case DIT_F32: return ((const float *) p)[i];
    case DIT_BF16: return dit_bf16_to_f32 (((const uint16_t *) p)[i]);
    case DIT_F8E4M3: return dit_e4m3_to_f32 (((const uint8_t *) p)[i]);
    default: return dit_f16_to_f32 (((const uint16_t *) p)[i]);
  }
}

static inline void
dit_store_f32 (void *p, dit_dtype dt, size_t i, float v)
{
  switch (dt) {
    case DIT_F32: ((float *) p)[i] = v; break;
    case DIT_BF16: ((uint16_t *) p)[i] = dit_f32_to_bf16 (v); break;
    case DIT_F8E4M3: ((uint8_t *) p)[i] = dit_f32_to_e4m3 (v); break;
    default: ((uint16_t *) p)[i] = dit_f32_to_f16 (v); break;
  }
}

/* Convert n host elements between dtypes (src and dst may not overlap). */
void dit_convert (void *dst, dit_dtype dst_dt, const void *src, dit_dtype src_dt,
    size_t n);

#ifdef __cplusplus
}
#endif
#endif
