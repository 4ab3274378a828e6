#include "tool_common.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_loader.h"
#include "dit_philox.h"

int
tool_parse_int (const char *s, int lo, int hi, int *out)
{
  char *end;
  errno = 0;
  long v = strtol (s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return 0;
  *out = (int) v;
  return 1;
}

int
tool_parse_u64 (const char *s, uint64_t *out)
{
  char *end;
  errno = 0;
  if (*s == '-')
    return 0;
  unsigned long long v = strtoull (s, &end, 0);
  if (errno || end == s || *end)
    return 0;
  *out = v;
  return 1;
}

int
tool_parse_double (const char *s, double *out)
{
  char *end;
  errno = 0;
  double v = strtod (s, &end);
  if (errno || end == s || *end)
    return 0;
  *out = v;
  return 1;
}

int
tool_parse_size (const char *s, int *h, int *w)
{
  char tail;
  if (sscanf (s, "%dx%d%c", h, w, &tail) != 2 || *h <= 0 || *w <= 0)
    return 0;
  return 1;
}

int
tool_parse_pixel_size (const char *s, int *width, int *height)
{
  char tail;
  if (sscanf (s, "%dx%d%c", width, height, &tail) != 2 || *width <= 0
      || *height <= 0 || *width % 16 || *height % 16)
    return 0;
  return 1;
}

int
tool_parse_dtype (const char *s, dit_dtype *out)
{
  if (strcmp (s, "f32") == 0)
    *out = DIT_F32;
  else if (strcmp (s, "bf16") == 0)
    *out = DIT_BF16;
  else
    return 0;
  return 1;
}

int
tool_parse_precision (const char *s, dit_precision *out)
{
  return dit_precision_parse (s, out) == DIT_OK;
}

dit_backend *
tool_backend (const char *device)
{
  char name[32];
  int index = 0;
  const char *colon = strchr (device, ':');
  size_t len = colon ? (size_t) (colon - device) : strlen (device);
  if (len >= sizeof name) {
    dit_error (DIT_ERR_INVALID, "bad device '%s'", device);
    return NULL;
  }
  memcpy (name, device, len);
  name[len] = '\0';
  if (colon && !tool_parse_int (colon + 1, 0, 1024, &index)) {
    dit_error (DIT_ERR_INVALID, "bad device index in '%s'", device);
    return NULL;
  }
  if (strcmp (name, "cpu") == 0)
    return dit_backend_cpu ();
  return dit_backend_create (name, index);
}

dit_status
tool_load_dit (const char *model, uint64_t seed, dit_precision precision,
    dit_backend *be, dit_model_config *cfg, dit_weights **out)
{
  return dit_load_model_precision (model, seed, precision, be, cfg, out);
}

dit_status
tool_find_tensor (const dit_safetensors *st, const char *name, int ndim,
    const int64_t *shape, dit_tensor *out)
{
  const dit_st_tensor *t = dit_safetensors_find (st, name);
  dit_dtype dt;
  if (!t)
    return dit_error (DIT_ERR_INVALID, "no tensor '%s' in the file", name);
  if (!dit_st_dtype_to_dit (t->dtype, &dt))
    return dit_error (DIT_ERR_INVALID, "tensor '%s' has dtype %s; need F32/BF16/F16",
        name, dit_st_dtype_name (t->dtype));
  if (t->ndim != ndim)
    return dit_error (DIT_ERR_INVALID, "tensor '%s' has %d dims; expected %d",
        name, t->ndim, ndim);
  for (int d = 0; shape && d < ndim; d++)
    if (t->shape[d] != shape[d])
      return dit_error (DIT_ERR_INVALID,
          "tensor '%s' dim %d is %lld; expected %lld", name, d,
          (long long) t->shape[d], (long long) shape[d]);
  *out = dit_tensor_make ((void *) t->data, dt, DIT_DEVICE_CPU, ndim, t->shape);
  return DIT_OK;
}

dit_status
tool_read_tensor_f32 (const char *path, const char *name, int ndim,
    const int64_t *shape, float **data, int64_t *rows)
{
  dit_safetensors *st;
  dit_tensor t;
  DIT_TRY (dit_safetensors_open (path, &st));
  dit_status s = tool_find_tensor (st, name, ndim, shape, &t);
  if (s != DIT_OK) {
    dit_safetensors_close (st);
    return dit_error_prefix (s, "%s", path);
  }
  size_t n = (size_t) dit_tensor_numel (&t);
  *data = malloc ((n ? n : 1) * sizeof (float));
  if (!*data) {
    dit_safetensors_close (st);
    return dit_error (DIT_ERR_NOMEM, "out of memory");
  }
  dit_convert (*data, DIT_F32, t.data, t.dtype, n);
  if (rows)
    *rows = t.shape[0];
  dit_safetensors_close (st);
  return DIT_OK;
}

void
tool_fill_normal (float *dst, size_t n, uint64_t seed, uint64_t stream)
{
  for (size_t i = 0; i < n; i++)
    dst[i] = dit_philox_normal (seed, stream, i);
}
