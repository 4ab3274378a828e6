#include "dit_tensor.h"

#include <math.h>

size_t
dit_dtype_size (dit_dtype dt)
{
  return dt == DIT_F32 ? 4 : dt == DIT_F8E4M3 ? 1 : 2;
}

const char *
dit_dtype_name (dit_dtype dt)
{
  switch (dt) {
    case DIT_F32: return "f32";
    case DIT_BF16: return "bf16";
    case DIT_F16: return "f16";
    case DIT_F8E4M3: return "f8e4m3";
  }
  return "?";
}

dit_tensor
dit_tensor_make (void *data, dit_dtype dt, dit_device dev, int ndim,
    const int64_t *shape)
{
  dit_tensor t;
  int64_t s = 1;
  memset (&t, 0, sizeof t);
  t.data = data;
  t.dtype = dt;
  t.device = dev;
  t.ndim = ndim;
  for (int i = ndim - 1; i >= 0; i--) {
    t.shape[i] = shape[i];
    t.stride[i] = s;
    s *= shape[i];
  }
  return t;
}

dit_tensor
dit_tensor_1d (void *data, dit_dtype dt, dit_device dev, int64_t n0)
{
  return dit_tensor_make (data, dt, dev, 1, &n0);
}

dit_tensor
dit_tensor_2d (void *data, dit_dtype dt, dit_device dev, int64_t n0, int64_t n1)
{
  int64_t s[2] = { n0, n1 };
  return dit_tensor_make (data, dt, dev, 2, s);
}

int64_t
dit_tensor_numel (const dit_tensor *t)
{
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++)
    n *= t->shape[i];
  return n;
}

size_t
dit_tensor_nbytes (const dit_tensor *t)
{
  return (size_t) dit_tensor_numel (t) * dit_dtype_size (t->dtype);
}

int
dit_tensor_is_contiguous (const dit_tensor *t)
{
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != s)
      return 0;
    s *= t->shape[i];
  }
  return 1;
}

dit_tensor
dit_tensor_rows (const dit_tensor *t, int64_t r0, int64_t n)
{
  dit_tensor v = *t;
  v.data = (char *) t->data + (size_t) (r0 * t->stride[0]) * dit_dtype_size (t->dtype);
  v.shape[0] = n;
  return v;
}

dit_tensor
dit_tensor_cols (const dit_tensor *t, int64_t c0, int64_t n)
{
  dit_tensor v = *t;
  int last = t->ndim - 1;
  v.data = (char *) t->data + (size_t) (c0 * t->stride[last]) * dit_dtype_size (t->dtype);
  v.shape[last] = n;
  return v;
}

dit_tensor
dit_tensor_reshape (const dit_tensor *t, int ndim, const int64_t *shape)
{
  return dit_tensor_make (t->data, t->dtype, t->device, ndim, shape);
}

float
dit_f16_to_f32 (uint16_t h)
{
  uint32_t sign = (uint32_t) (h >> 15) << 31;
  int exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  float f;
  if (exp == 0) {
    f = ldexpf ((float) man, -24);
  } else if (exp == 31) {
    f = man ? NAN : INFINITY;
  } else {
    f = ldexpf ((float) (man | 0x400), exp - 25);
  }
  uint32_t u;
  memcpy (&u, &f, 4);
  u |= sign;
  memcpy (&f, &u, 4);
  return f;
}

uint16_t
dit_f32_to_f16 (float f)
{
  uint32_t u;
  memcpy (&u, &f, 4);
  uint16_t sign = (uint16_t) ((u >> 16) & 0x8000u);
  float a = fabsf (f);
  if (isnan (f))
    return sign | 0x7e00u;
  if (a >= 65520.0f)
    return sign | 0x7c00u;
  if (a < ldexpf (1.0f, -14)) {
    /* subnormal: value = m * 2^-24, round to nearest even */
    float m = nearbyintf (ldexpf (a, 24));
    return sign | (uint16_t) m;
  }
  int e;
  float fr = frexpf (a, &e); /* a = fr * 2^e, fr in [0.5, 1) */
  float m = nearbyintf (ldexpf (fr, 11)); /* 1024..2048 */
  if (m >= 2048.0f) {
    m = 1024.0f;
    e++;
  }
  int exp = e - 1 + 15;
  if (exp >= 31)
    return sign | 0x7c00u;
  return sign | (uint16_t) (exp << 10) | ((uint16_t) m & 0x3ff);
}

void
dit_convert (void *dst, dit_dtype dst_dt, const void *src, dit_dtype src_dt,
    size_t n)
{
  if (dst_dt == src_dt) {
    memcpy (dst, src, n * dit_dtype_size (dst_dt));
    return;
  }
  for (size_t i = 0; i < n; i++)
    dit_store_f32 (dst, dst_dt, i, dit_load_f32 (src, src_dt, i));
}
