/* elementwise — gated residual, broadcast add, activations and copy.
 *
 * Layout: residual and unary work on [rows, D] views (strided rows,
 * contiguous channels); add works on contiguous buffers with b repeated
 * along a; copy accepts any strides on both sides (it is how column slices
 * and transposed-free reshapes are materialised) and converts dtypes.
 * Arithmetic is f32; each result is rounded once to the output dtype.
 */
#include "cpu_internal.h"

dit_status
dit_cpu_residual (dit_backend *be, const dit_residual_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_residual (DIT_DEVICE_CPU, p, &d));
  const dit_cpu_mat x = d.x, y = d.y, gate = d.a;
  if (x.rows == 0 || x.cols == 0)
    return DIT_OK;
  int64_t D = x.cols;
  float *xr = dit_cpu_scratch ((size_t) D * 3 + 64);
  if (!xr)
    return dit_error (DIT_ERR_NOMEM, "residual: cannot allocate scratch");
  float *yr = xr + D, *gr = yr + D;
  int64_t cur = -1;
  for (int64_t r = 0; r < x.rows; r++) {
    dit_cpu_load_row (xr, dit_cpu_row (&x, r), x.dtype, D);
    dit_cpu_load_row (yr, dit_cpu_row (&y, r), y.dtype, D);
    if (p->gate) {
      int64_t g = r / p->rows_per_group;
      if (g != cur) {
        dit_cpu_load_row (gr, dit_cpu_row (&gate, g), gate.dtype, D);
        cur = g;
      }
      for (int64_t i = 0; i < D; i++)
        xr[i] += gr[i] * yr[i];
    } else {
      for (int64_t i = 0; i < D; i++)
        xr[i] += yr[i];
    }
    dit_cpu_store_row (dit_cpu_row (&x, r), x.dtype, xr, D);
  }
  return DIT_OK;
}

dit_status
dit_cpu_add (dit_backend *be, const dit_add_params *p)
{
  int64_t na, nb;
  DIT_TRY (dit_check_add (DIT_DEVICE_CPU, p, &na, &nb));
  if (na == 0)
    return DIT_OK;
  float *bf = dit_cpu_scratch ((size_t) nb * 2 + 64);
  if (!bf)
    return dit_error (DIT_ERR_NOMEM, "add: cannot allocate scratch");
  float *af = bf + nb;
  size_t sa = dit_dtype_size (p->a->dtype), sy = dit_dtype_size (p->y->dtype);
  dit_cpu_load_row (bf, p->b->data, p->b->dtype, nb);
  for (int64_t r = 0; r < na / nb; r++) {
    dit_cpu_load_row (af, (const char *) p->a->data + (size_t) (r * nb) * sa,
        p->a->dtype, nb);
    for (int64_t i = 0; i < nb; i++)
      af[i] += bf[i];
    dit_cpu_store_row ((char *) p->y->data + (size_t) (r * nb) * sy,
        p->y->dtype, af, nb);
  }
  return DIT_OK;
}

dit_status
dit_cpu_unary (dit_backend *be, const dit_unary_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_unary (DIT_DEVICE_CPU, p, &d));
  const dit_cpu_mat x = d.x, y = d.y;
  if (x.rows == 0 || x.cols == 0)
    return DIT_OK;
  float *row = dit_cpu_scratch ((size_t) x.cols + 64);
  if (!row)
    return dit_error (DIT_ERR_NOMEM, "unary: cannot allocate scratch");
  for (int64_t r = 0; r < x.rows; r++) {
    dit_cpu_load_row (row, dit_cpu_row (&x, r), x.dtype, x.cols);
    dit_cpu_act_row (row, x.cols, p->act);
    dit_cpu_store_row (dit_cpu_row (&y, r), y.dtype, row, x.cols);
  }
  return DIT_OK;
}

/* Element-strided copy of one innermost run of n elements. */
static void
copy_run (char *dst, dit_dtype ddt, int64_t dstride, const char *src,
    dit_dtype sdt, int64_t sstride, int64_t n)
{
  size_t ds = dit_dtype_size (ddt), ss = dit_dtype_size (sdt);
  if (dstride == 1 && sstride == 1) {
    if (ddt == sdt)
      memmove (dst, src, (size_t) n * ds);
    else
      for (int64_t i = 0; i < n; i++)
        dit_store_f32 (dst, ddt, (size_t) i, dit_load_f32 (src, sdt, (size_t) i));
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    float v = dit_load_f32 (src + (size_t) (i * sstride) * ss, sdt, 0);
    dit_store_f32 (dst + (size_t) (i * dstride) * ds, ddt, 0, v);
  }
}

dit_status
dit_cpu_copy (dit_backend *be, const dit_copy_params *p)
{
  const dit_tensor *x = p->x, *y = p->y;
  int reshape;
  DIT_TRY (dit_check_copy (DIT_DEVICE_CPU, p, &reshape));
  if (reshape) {
    /* Differently shaped but equally sized contiguous buffers. */
    copy_run (y->data, y->dtype, 1, x->data, x->dtype, 1, dit_tensor_numel (x));
    return DIT_OK;
  }
  if (dit_tensor_numel (x) == 0)
    return DIT_OK;
  /* Pad to 4-D with leading extent-1 dims. */
  int64_t sh[4], xs[4], ys[4];
  int pad = 4 - x->ndim;
  for (int i = 0; i < 4; i++) {
    int j = i - pad;
    sh[i] = j >= 0 ? x->shape[j] : 1;
    xs[i] = j >= 0 ? x->stride[j] : 0;
    ys[i] = j >= 0 ? y->stride[j] : 0;
  }
  size_t xsz = dit_dtype_size (x->dtype), ysz = dit_dtype_size (y->dtype);
  for (int64_t a = 0; a < sh[0]; a++)
    for (int64_t b = 0; b < sh[1]; b++)
      for (int64_t c = 0; c < sh[2]; c++) {
        int64_t xo = a * xs[0] + b * xs[1] + c * xs[2];
        int64_t yo = a * ys[0] + b * ys[1] + c * ys[2];
        copy_run ((char *) y->data + (size_t) yo * ysz, y->dtype, ys[3],
            (const char *) x->data + (size_t) xo * xsz, x->dtype, xs[3], sh[3]);
      }
  return DIT_OK;
}
