/* dit_check — parameter validation shared by every backend (dit_check.h).
 *
 * These used to be copies in kernels/cpu and kernels/cuda that had drifted
 * apart in wording and in a few rules (the CUDA norms refused a NaN eps,
 * the CPU ones did not).  One checker per op now decides what a valid call
 * is; the backends keep only what their kernels add.
 */
#include "dit_check.h"

#include <stdio.h>
#include <string.h>

static const char *
device_name (dit_device d)
{
  return d == DIT_DEVICE_CPU ? "cpu" : d == DIT_DEVICE_CUDA ? "cuda" : "unknown";
}

/* ------------------------------------------------------------------------ */
/* tensors */

dit_status
dit_check_tensor (dit_device dev, const char *op, const char *name,
    const dit_tensor *t)
{
  if (!t)
    return dit_error (DIT_ERR_INVALID, "%s: %s is NULL", op, name);
  if (t->device != dev)
    return dit_error (DIT_ERR_INVALID, "%s: %s is on device %s, the %s "
        "backend needs %s tensors", op, name, device_name (t->device),
        device_name (dev), dev == DIT_DEVICE_CPU ? "host" : "CUDA");
  if (t->dtype != DIT_F32 && t->dtype != DIT_BF16 && t->dtype != DIT_F16)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s: %s has unsupported dtype %d",
        op, name, (int) t->dtype);
  if (t->ndim < 1 || t->ndim > DIT_MAX_DIMS)
    return dit_error (DIT_ERR_INVALID, "%s: %s has %d dimensions", op, name,
        t->ndim);
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] < 0)
      return dit_error (DIT_ERR_INVALID, "%s: %s has negative extent %lld in "
          "dimension %d", op, name, (long long) t->shape[i], i);
  if (!t->data && dit_tensor_numel (t) > 0)
    return dit_error (DIT_ERR_INVALID, "%s: %s has no data", op, name);
  return DIT_OK;
}

dit_status
dit_check_rows (dit_device dev, const char *op, const char *name,
    const dit_tensor *t, dit_rows *v)
{
  DIT_TRY (dit_check_tensor (dev, op, name, t));
  int last = t->ndim - 1;
  if (t->stride[last] != 1 && t->shape[last] > 1)
    return dit_error (DIT_ERR_INVALID, "%s: %s has column stride %lld, the "
        "last dimension must be contiguous", op, name,
        (long long) t->stride[last]);
  v->data = (char *) t->data;
  v->dtype = t->dtype;
  v->cols = t->shape[last];
  if (t->ndim == 1) {
    v->rows = 1;
    v->ld = v->cols;
    return DIT_OK;
  }
  /* Fold dims 0..last-1 into rows: each non-unit dimension must step by
   * exactly the extent of the next non-unit one (extent-1 dims fold). */
  int64_t rows = 1, ld = v->cols, inner_stride = 0, inner_shape = 0;
  for (int i = last - 1; i >= 0; i--) {
    if (t->shape[i] == 1)
      continue;
    if (inner_shape == 0)
      ld = t->stride[i];
    else if (t->stride[i] != inner_stride * inner_shape)
      return dit_error (DIT_ERR_INVALID, "%s: %s (%d-D) cannot be viewed as "
          "rows: stride %lld of dimension %d does not match", op, name,
          t->ndim, (long long) t->stride[i], i);
    inner_stride = t->stride[i];
    inner_shape = t->shape[i];
    rows *= t->shape[i];
  }
  if (rows > 1 && ld < v->cols)
    return dit_error (DIT_ERR_INVALID, "%s: %s has row stride %lld < %lld "
        "columns", op, name, (long long) ld, (long long) v->cols);
  if (rows <= 1)
    ld = v->cols;
  v->rows = rows;
  v->ld = ld;
  return DIT_OK;
}

dit_status
dit_check_rows_shape (dit_device dev, const char *op, const char *name,
    const dit_tensor *t, int64_t rows, int64_t cols, dit_rows *v)
{
  DIT_TRY (dit_check_rows (dev, op, name, t, v));
  if (v->rows != rows || v->cols != cols)
    return dit_error (DIT_ERR_INVALID, "%s: %s is [%lld, %lld] but [%lld, %lld] "
        "is required", op, name, (long long) v->rows, (long long) v->cols,
        (long long) rows, (long long) cols);
  return DIT_OK;
}

dit_status
dit_check_vector (dit_device dev, const char *op, const char *name,
    const dit_tensor *t, int64_t n, dit_rows *v)
{
  DIT_TRY (dit_check_tensor (dev, op, name, t));
  if (!dit_tensor_is_contiguous (t))
    return dit_error (DIT_ERR_INVALID, "%s: %s must be contiguous", op, name);
  int64_t numel = dit_tensor_numel (t);
  if (numel != n)
    return dit_error (DIT_ERR_INVALID, "%s: %s has %lld elements but %lld are "
        "required", op, name, (long long) numel, (long long) n);
  v->data = (char *) t->data;
  v->dtype = t->dtype;
  v->rows = 1;
  v->cols = n;
  v->ld = n;
  return DIT_OK;
}

dit_status
dit_check_groups (dit_device dev, const char *op, const char *name,
    const dit_tensor *t, int64_t rows, int64_t cols, int64_t rows_per_group,
    dit_rows *v)
{
  DIT_TRY (dit_check_rows (dev, op, name, t, v));
  if (v->cols != cols)
    return dit_error (DIT_ERR_INVALID, "%s: %s has %lld columns but x has %lld",
        op, name, (long long) v->cols, (long long) cols);
  if (rows_per_group <= 0)
    return dit_error (DIT_ERR_INVALID, "%s: rows_per_group is %lld (must be > 0)",
        op, (long long) rows_per_group);
  int64_t need = rows > 0 ? (rows - 1) / rows_per_group + 1 : 0;
  if (v->rows < need)
    return dit_error (DIT_ERR_INVALID, "%s: %s has %lld rows but %lld rows of x "
        "in groups of %lld need %lld", op, name, (long long) v->rows,
        (long long) rows, (long long) rows_per_group, (long long) need);
  return DIT_OK;
}

dit_status
dit_check_fp8_rows (dit_device dev, const char *op, const char *name,
    const dit_tensor *q, const dit_tensor *scale, int64_t block, dit_rows *v,
    float **scale_data)
{
  if (!q)
    return dit_error (DIT_ERR_INVALID, "%s: %s is NULL", op, name);
  if (q->dtype != DIT_F8E4M3)
    return dit_error (DIT_ERR_INVALID, "%s: %s has dtype %s, f8e4m3 is "
        "required", op, name, dit_dtype_name (q->dtype));
  /* view the codes through the common checks with a stand-in dtype (the
   * view counts elements, not bytes), then restore the real one */
  dit_tensor t = *q;
  t.dtype = DIT_F16;
  DIT_TRY (dit_check_rows (dev, op, name, &t, v));
  v->dtype = DIT_F8E4M3;
  if (block <= 0 || v->cols % block != 0)
    return dit_error (DIT_ERR_INVALID, "%s: block %lld does not divide the "
        "%lld columns of %s", op, (long long) block, (long long) v->cols, name);
  if (!scale)
    return dit_error (DIT_ERR_INVALID, "%s: %s has no scale tensor", op, name);
  if (scale->dtype != DIT_F32 || scale->device != dev
      || !dit_tensor_is_contiguous (scale))
    return dit_error (DIT_ERR_INVALID, "%s: the scales of %s must be a "
        "contiguous f32 tensor on the %s device", op, name, device_name (dev));
  int64_t want = v->cols / block * v->rows;
  if (dit_tensor_numel (scale) != want)
    return dit_error (DIT_ERR_INVALID, "%s: %s [%lld, %lld] in blocks of %lld "
        "needs %lld scales, the scale tensor has %lld", op, name,
        (long long) v->rows, (long long) v->cols, (long long) block,
        (long long) want, (long long) dit_tensor_numel (scale));
  if (scale_data)
    *scale_data = (float *) scale->data;
  return DIT_OK;
}

dit_status
dit_check_frames (dit_device dev, const char *op, const char *name,
    const dit_tensor *t, int64_t dims[4])
{
  if (!t || !t->data)
    return dit_error (DIT_ERR_INVALID, "vae %s: %s is NULL", op, name);
  if (t->device != dev)
    return dit_error (DIT_ERR_INVALID, "vae %s: %s is on device %s, the %s "
        "backend needs %s tensors", op, name, device_name (t->device),
        device_name (dev), dev == DIT_DEVICE_CPU ? "host" : "CUDA");
  if (t->dtype != DIT_F32 && t->dtype != DIT_BF16 && t->dtype != DIT_F16)
    return dit_error (DIT_ERR_UNSUPPORTED, "vae %s: %s has dtype %d", op, name,
        (int) t->dtype);
  if (t->ndim != 4)
    return dit_error (DIT_ERR_INVALID,
        "vae %s: %s must be a [T, H, W, C] frame tensor (got %d dims)", op,
        name, t->ndim);
  for (int i = 0; i < 4; i++) {
    if (t->shape[i] <= 0)
      return dit_error (DIT_ERR_INVALID, "vae %s: %s has an empty dim %d", op,
          name, i);
    dims[i] = t->shape[i];
  }
  if (t->stride[3] != 1 || t->stride[2] != t->shape[3]
      || t->stride[1] != t->shape[2] * t->shape[3]
      || t->stride[0] < t->shape[1] * t->shape[2] * t->shape[3])
    return dit_error (DIT_ERR_INVALID,
        "vae %s: %s [%lld, %lld, %lld, %lld] must have contiguous frames "
        "(strides %lld, %lld, %lld, %lld)", op, name,
        (long long) t->shape[0], (long long) t->shape[1],
        (long long) t->shape[2], (long long) t->shape[3],
        (long long) t->stride[0], (long long) t->stride[1],
        (long long) t->stride[2], (long long) t->stride[3]);
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* DiT ops */

static dit_status
check_act (const char *op, dit_act act)
{
  if (act != DIT_ACT_NONE && act != DIT_ACT_GELU_TANH && act != DIT_ACT_SILU)
    return dit_error (DIT_ERR_INVALID, "%s: unknown activation %d", op,
        (int) act);
  return DIT_OK;
}

static dit_status
check_eps (const char *op, float eps)
{
  if (!(eps >= 0.0f))
    return dit_error (DIT_ERR_INVALID, "%s: eps %g is negative or NaN", op,
        (double) eps);
  return DIT_OK;
}

dit_status
dit_check_gemm (dit_device dev, const dit_gemm_params *p, dit_gemm_dims *d)
{
  memset (d, 0, sizeof *d);
  DIT_TRY (dit_check_rows (dev, "gemm", "x", p->x, &d->x));
  DIT_TRY (dit_check_rows (dev, "gemm", "w", p->w, &d->w));
  DIT_TRY (dit_check_rows (dev, "gemm", "y", p->y, &d->y));
  if (d->x.cols != d->w.cols)
    return dit_error (DIT_ERR_INVALID, "gemm: x has %lld columns but w has %lld",
        (long long) d->x.cols, (long long) d->w.cols);
  if (d->y.rows != d->x.rows || d->y.cols != d->w.rows)
    return dit_error (DIT_ERR_INVALID, "gemm: y is [%lld, %lld] but x [%lld, %lld]"
        " · wᵀ [%lld, %lld] is [%lld, %lld]", (long long) d->y.rows,
        (long long) d->y.cols, (long long) d->x.rows, (long long) d->x.cols,
        (long long) d->w.cols, (long long) d->w.rows, (long long) d->x.rows,
        (long long) d->w.rows);
  if (p->bias)
    DIT_TRY (dit_check_vector (dev, "gemm", "bias", p->bias, d->w.rows,
        &d->bias));
  if (p->gate)
    DIT_TRY (dit_check_groups (dev, "gemm", "gate", p->gate, d->x.rows,
        d->w.rows, p->rows_per_group, &d->gate));
  if (p->addend) {
    DIT_TRY (dit_check_rows_shape (dev, "gemm", "addend", p->addend,
        d->x.rows, d->w.rows, &d->addend));
    if (p->accumulate && d->addend.data == d->y.data)
      return dit_error (DIT_ERR_INVALID, "gemm: the addend is y and "
          "accumulate is set (y would be added twice)");
  }
  DIT_TRY (check_act ("gemm", p->act));
  d->M = d->x.rows;
  d->N = d->w.rows;
  d->K = d->x.cols;
  return DIT_OK;
}

dit_status
dit_check_dequantize_fp8 (dit_device dev, const dit_dequantize_fp8_params *p,
    dit_rows *q, dit_rows *y, float **scale_data)
{
  const char *op = "dequantize_fp8";
  DIT_TRY (dit_check_fp8_rows (dev, op, "q", p->q, p->scale, p->block, q,
      scale_data));
  DIT_TRY (dit_check_rows_shape (dev, op, "y", p->y, q->rows, q->cols, y));
  if (y->dtype != DIT_F32 && y->dtype != DIT_BF16 && y->dtype != DIT_F16)
    return dit_error (DIT_ERR_INVALID, "%s: y has dtype %s, f32, bf16 or f16 "
        "is required", op, dit_dtype_name (y->dtype));
  return DIT_OK;
}

/* x and y of one shape. */
static dit_status
check_xy (dit_device dev, const char *op, const dit_tensor *x,
    const dit_tensor *y, dit_row_dims *d)
{
  memset (d, 0, sizeof *d);
  DIT_TRY (dit_check_rows (dev, op, "x", x, &d->x));
  return dit_check_rows_shape (dev, op, "y", y, d->x.rows, d->x.cols, &d->y);
}

dit_status
dit_check_layernorm (dit_device dev, const dit_layernorm_params *p,
    dit_row_dims *d)
{
  DIT_TRY (check_xy (dev, "layernorm", p->x, p->y, d));
  if ((p->weight == NULL) != (p->bias == NULL))
    return dit_error (DIT_ERR_INVALID, "layernorm: weight and bias must both be "
        "set or both be NULL");
  if (p->weight) {
    DIT_TRY (dit_check_vector (dev, "layernorm", "weight", p->weight,
        d->x.cols, &d->a));
    DIT_TRY (dit_check_vector (dev, "layernorm", "bias", p->bias, d->x.cols,
        &d->b));
  }
  return check_eps ("layernorm", p->eps);
}

dit_status
dit_check_rmsnorm (dit_device dev, const dit_rmsnorm_params *p,
    dit_row_dims *d)
{
  DIT_TRY (check_xy (dev, "rmsnorm", p->x, p->y, d));
  DIT_TRY (dit_check_vector (dev, "rmsnorm", "weight", p->weight, d->x.cols,
      &d->a));
  return check_eps ("rmsnorm", p->eps);
}

dit_status
dit_check_modulate (dit_device dev, const dit_modulate_params *p,
    dit_row_dims *d)
{
  DIT_TRY (check_xy (dev, "modulate", p->x, p->y, d));
  DIT_TRY (dit_check_groups (dev, "modulate", "shift", p->shift, d->x.rows,
      d->x.cols, p->rows_per_group, &d->a));
  return dit_check_groups (dev, "modulate", "scale", p->scale, d->x.rows,
      d->x.cols, p->rows_per_group, &d->b);
}

dit_status
dit_check_residual (dit_device dev, const dit_residual_params *p,
    dit_row_dims *d)
{
  DIT_TRY (check_xy (dev, "residual", p->x, p->y, d));
  if (p->gate)
    DIT_TRY (dit_check_groups (dev, "residual", "gate", p->gate, d->x.rows,
        d->x.cols, p->rows_per_group, &d->a));
  return DIT_OK;
}

dit_status
dit_check_unary (dit_device dev, const dit_unary_params *p, dit_row_dims *d)
{
  DIT_TRY (check_xy (dev, "unary", p->x, p->y, d));
  return check_act ("unary", p->act);
}

dit_status
dit_check_add (dit_device dev, const dit_add_params *p, int64_t *n,
    int64_t *nb)
{
  DIT_TRY (dit_check_tensor (dev, "add", "a", p->a));
  DIT_TRY (dit_check_tensor (dev, "add", "b", p->b));
  DIT_TRY (dit_check_tensor (dev, "add", "y", p->y));
  if (!dit_tensor_is_contiguous (p->a) || !dit_tensor_is_contiguous (p->b)
      || !dit_tensor_is_contiguous (p->y))
    return dit_error (DIT_ERR_INVALID, "add: a, b and y must be contiguous");
  int64_t na = dit_tensor_numel (p->a), ny = dit_tensor_numel (p->y);
  *nb = dit_tensor_numel (p->b);
  if (ny != na)
    return dit_error (DIT_ERR_INVALID, "add: y has %lld elements but a has %lld",
        (long long) ny, (long long) na);
  if (na > 0 && (*nb == 0 || na % *nb != 0))
    return dit_error (DIT_ERR_INVALID, "add: a has %lld elements, not a multiple "
        "of b's %lld", (long long) na, (long long) *nb);
  *n = na;
  return DIT_OK;
}

static void
shape_str (const dit_tensor *t, char *buf, size_t n)
{
  size_t k = (size_t) snprintf (buf, n, "[");
  for (int i = 0; i < t->ndim && k < n; i++)
    k += (size_t) snprintf (buf + k, n - k, "%s%lld", i ? ", " : "",
        (long long) t->shape[i]);
  if (k < n)
    snprintf (buf + k, n - k, "]");
}

dit_status
dit_check_copy (dit_device dev, const dit_copy_params *p, int *reshape)
{
  DIT_TRY (dit_check_tensor (dev, "copy", "x", p->x));
  DIT_TRY (dit_check_tensor (dev, "copy", "y", p->y));
  const dit_tensor *x = p->x, *y = p->y;
  int same = x->ndim == y->ndim;
  for (int i = 0; same && i < x->ndim; i++)
    same = x->shape[i] == y->shape[i];
  *reshape = 0;
  if (same)
    return DIT_OK;
  /* Differently shaped but equally sized contiguous buffers: a reshape. */
  if (dit_tensor_is_contiguous (x) && dit_tensor_is_contiguous (y)
      && dit_tensor_numel (x) == dit_tensor_numel (y)) {
    *reshape = 1;
    return DIT_OK;
  }
  char xs[96], ys[96];
  shape_str (x, xs, sizeof xs);
  shape_str (y, ys, sizeof ys);
  return dit_error (DIT_ERR_INVALID, "copy: x is %s (%d-D) but y is %s (%d-D)",
      xs, x->ndim, ys, y->ndim);
}

/* The RoPE tables [P, 64] and the grid of x's rows; every position the
 * grid reaches must be a table row. */
static dit_status
check_rope_grid (dit_device dev, const char *op, const dit_tensor *x,
    const dit_tensor *cos, const dit_tensor *sin, int heads, int64_t gf,
    int64_t gh, int64_t gw, int64_t frame_offset, dit_rope_dims *d)
{
  DIT_TRY (dit_check_rows (dev, op, "x", x, &d->x));
  DIT_TRY (dit_check_rows (dev, op, "cos", cos, &d->cos));
  DIT_TRY (dit_check_rows (dev, op, "sin", sin, &d->sin));
  if (d->cos.cols != DIT_ROPE_PAIRS || d->sin.cols != DIT_ROPE_PAIRS
      || d->sin.rows != d->cos.rows)
    return dit_error (DIT_ERR_INVALID, "%s: cos is [%lld, %lld] and sin "
        "[%lld, %lld], two [P, %d] tables expected", op,
        (long long) d->cos.rows, (long long) d->cos.cols,
        (long long) d->sin.rows, (long long) d->sin.cols, DIT_ROPE_PAIRS);
  if (heads <= 0 || d->x.cols != (int64_t) heads * 2 * DIT_ROPE_PAIRS)
    return dit_error (DIT_ERR_INVALID, "%s: x has %lld columns but %d heads of "
        "%d need %lld", op, (long long) d->x.cols, heads, 2 * DIT_ROPE_PAIRS,
        (long long) heads * 2 * DIT_ROPE_PAIRS);
  if (gf < 0 || gh < 0 || gw < 0 || frame_offset < 0)
    return dit_error (DIT_ERR_INVALID, "%s: negative grid (%lld, %lld, %lld) "
        "or frame offset %lld", op, (long long) gf, (long long) gh,
        (long long) gw, (long long) frame_offset);
  if (d->x.rows != gf * gh * gw)
    return dit_error (DIT_ERR_INVALID, "%s: x has %lld rows but the grid "
        "%lld x %lld x %lld has %lld tokens", op, (long long) d->x.rows,
        (long long) gf, (long long) gh, (long long) gw,
        (long long) (gf * gh * gw));
  if (d->x.rows == 0)
    return DIT_OK;
  int64_t maxpos = gf - 1 + frame_offset;
  if (gh - 1 > maxpos)
    maxpos = gh - 1;
  if (gw - 1 > maxpos)
    maxpos = gw - 1;
  if (maxpos >= d->cos.rows)
    return dit_error (DIT_ERR_INVALID, "%s: position %lld is outside the "
        "%lld-row table (frame_offset %lld)", op, (long long) maxpos,
        (long long) d->cos.rows, (long long) frame_offset);
  return DIT_OK;
}

dit_status
dit_check_rope (dit_device dev, const dit_rope_params *p, dit_rope_dims *d)
{
  memset (d, 0, sizeof *d);
  return check_rope_grid (dev, "rope", p->x, p->cos, p->sin, p->heads,
      p->grid_f, p->grid_h, p->grid_w, p->frame_offset, d);
}

dit_status
dit_check_attention (dit_device dev, const dit_attn_params *p,
    dit_attn_dims *d)
{
  const char *op = "attention";
  memset (d, 0, sizeof *d);
  DIT_TRY (dit_check_rows (dev, op, "q", p->q, &d->q));
  DIT_TRY (dit_check_rows (dev, op, "k", p->k, &d->k));
  DIT_TRY (dit_check_rows (dev, op, "v", p->v, &d->v));
  if (p->o && p->o->dtype == DIT_F8E4M3)   /* codes + a scale per head */
    DIT_TRY (dit_check_fp8_rows (dev, op, "o", p->o, p->o_scale,
        p->head_dim > 0 ? p->head_dim : 1, &d->o, &d->o_scale));
  else
    DIT_TRY (dit_check_rows (dev, op, "o", p->o, &d->o));
  if (p->heads <= 0 || p->head_dim <= 0)
    return dit_error (DIT_ERR_INVALID, "attention: %d heads of dim %d",
        p->heads, p->head_dim);
  int64_t width = (int64_t) p->heads * p->head_dim;
  if (d->q.cols != width)
    return dit_error (DIT_ERR_INVALID, "attention: q has %lld columns but %d "
        "heads x %d = %lld", (long long) d->q.cols, p->heads, p->head_dim,
        (long long) width);
  if (d->k.cols != width || d->v.cols != width)
    return dit_error (DIT_ERR_INVALID, "attention: k has %lld and v %lld "
        "columns but q has %lld", (long long) d->k.cols, (long long) d->v.cols,
        (long long) width);
  if (d->k.rows != d->v.rows)
    return dit_error (DIT_ERR_INVALID, "attention: k has %lld rows but v has "
        "%lld", (long long) d->k.rows, (long long) d->v.rows);
  if (d->o.rows != d->q.rows || d->o.cols != width)
    return dit_error (DIT_ERR_INVALID, "attention: o is [%lld, %lld] but q is "
        "[%lld, %lld]", (long long) d->o.rows, (long long) d->o.cols,
        (long long) d->q.rows, (long long) width);
  if (p->causal_block < 0 || p->q_pos0 < 0)
    return dit_error (DIT_ERR_INVALID, "attention: causal_block %lld and q_pos0 "
        "%lld must be >= 0", (long long) p->causal_block,
        (long long) p->q_pos0);
  if (p->key_len < 0)
    return dit_error (DIT_ERR_INVALID, "attention: key_len %lld must be >= 0",
        (long long) p->key_len);
  d->L = d->q.rows;
  d->N = d->k.rows;
  if (d->L > 0 && d->N == 0)
    return dit_error (DIT_ERR_INVALID, "attention: no keys for %lld queries",
        (long long) d->L);
  /* the bias range clamped to the keys; empty = no bias */
  d->bias_begin = p->bias_begin < 0 ? 0 : p->bias_begin;
  d->bias_end = p->bias_end > d->N ? d->N : p->bias_end;
  if (d->bias_end <= d->bias_begin)
    d->bias_begin = d->bias_end = 0;
  if (p->pos_bias) {
    const dit_tensor *pb = p->pos_bias;
    int min_buckets = p->bidirectional ? 4 : 2;
    if (p->num_buckets < min_buckets || (p->bidirectional && p->num_buckets % 2)
        || p->max_distance <= 0)
      return dit_error (DIT_ERR_INVALID, "attention: position bias needs an "
          "even number of buckets >= 4 (bidirectional) or >= 2 and a positive "
          "max distance (got %d buckets, max distance %d)", p->num_buckets,
          p->max_distance);
    if (pb->device != dev || pb->ndim != 2 || pb->shape[0] != p->num_buckets
        || pb->shape[1] != p->heads || !dit_tensor_is_contiguous (pb))
      return dit_error (DIT_ERR_INVALID, "attention: pos_bias must be a "
          "contiguous %s [%d buckets, %d heads] table", device_name (dev),
          p->num_buckets, p->heads);
  }
  return DIT_OK;
}

dit_status
dit_check_flow_step (dit_device dev, const dit_flow_step_params *p,
    dit_flow_dims *d)
{
  const char *op = "flow_step";
  memset (d, 0, sizeof *d);
  DIT_TRY (dit_check_rows (dev, op, "x", p->x, &d->x));
  int64_t r = d->x.rows, c = d->x.cols;
  DIT_TRY (dit_check_rows_shape (dev, op, "v", p->v, r, c, &d->v));
  if (p->noise)
    DIT_TRY (dit_check_rows_shape (dev, op, "noise", p->noise, r, c, &d->noise));
  if (p->x0_out)
    DIT_TRY (dit_check_rows_shape (dev, op, "x0_out", p->x0_out, r, c, &d->x0));
  if (p->out)
    DIT_TRY (dit_check_rows_shape (dev, op, "out", p->out, r, c, &d->out));
  if (p->noise && !p->out)
    return dit_error (DIT_ERR_INVALID, "flow_step: noise is set but out is NULL");
  if (!p->out && !p->x0_out)
    return dit_error (DIT_ERR_INVALID, "flow_step: neither out nor x0_out is set");
  return DIT_OK;
}

dit_status
dit_check_noise (dit_device dev, const dit_noise_params *p)
{
  DIT_TRY (dit_check_tensor (dev, "noise", "y", p->y));
  if (!dit_tensor_is_contiguous (p->y))
    return dit_error (DIT_ERR_INVALID, "noise: y must be contiguous");
  return DIT_OK;
}

static dit_status
check_sumsq (dit_device dev, const char *op, const dit_tensor *ss,
    int64_t rows)
{
  DIT_TRY (dit_check_tensor (dev, op, "sumsq", ss));
  if (ss->dtype != DIT_F32 || !dit_tensor_is_contiguous (ss)
      || dit_tensor_numel (ss) < rows)
    return dit_error (DIT_ERR_INVALID, "%s: sumsq must be a contiguous f32 "
        "vector of at least %lld elements", op, (long long) rows);
  return DIT_OK;
}

dit_status
dit_check_rmsnorm_sumsq (dit_device dev, const dit_rmsnorm_sumsq_params *p,
    dit_rows *x)
{
  DIT_TRY (dit_check_rows (dev, "rmsnorm_sumsq", "x", p->x, x));
  return check_sumsq (dev, "rmsnorm_sumsq", p->sumsq, x->rows);
}

dit_status
dit_check_rmsnorm_apply (dit_device dev, const dit_rmsnorm_apply_params *p,
    dit_row_dims *d)
{
  const char *op = "rmsnorm_apply";
  DIT_TRY (check_xy (dev, op, p->x, p->y, d));
  DIT_TRY (dit_check_vector (dev, op, "weight", p->weight, d->x.cols, &d->a));
  DIT_TRY (check_sumsq (dev, op, p->sumsq, d->x.rows));
  if (p->total_cols < d->x.cols || p->total_cols <= 0)
    return dit_error (DIT_ERR_INVALID, "%s: total width %lld is less than the "
        "shard's %lld columns", op, (long long) p->total_cols,
        (long long) d->x.cols);
  return check_eps (op, p->eps);
}

/* ------------------------------------------------------------------------ */
/* fused ops */

dit_status
dit_check_layernorm_modulate (dit_device dev,
    const dit_layernorm_modulate_params *p, dit_row_dims *d)
{
  const char *op = "layernorm_modulate";
  DIT_TRY (check_xy (dev, op, p->x, p->y, d));
  DIT_TRY (check_eps (op, p->eps));
  DIT_TRY (dit_check_groups (dev, op, "shift", p->shift, d->x.rows, d->x.cols,
      p->rows_per_group, &d->a));
  return dit_check_groups (dev, op, "scale", p->scale, d->x.rows, d->x.cols,
      p->rows_per_group, &d->b);
}

dit_status
dit_check_qk_norm_rope (dit_device dev, const dit_qk_norm_rope_params *p,
    dit_rope_dims *d)
{
  const char *op = "qk_norm_rope";
  memset (d, 0, sizeof *d);
  DIT_TRY (check_rope_grid (dev, op, p->x, p->cos, p->sin, p->heads,
      p->grid_f, p->grid_h, p->grid_w, p->frame_offset, d));
  DIT_TRY (dit_check_vector (dev, op, "weight", p->weight, d->x.cols,
      &d->weight));
  return check_eps (op, p->eps);
}

dit_status
dit_check_noise_flow (dit_device dev, const dit_noise_flow_params *p,
    int64_t *n)
{
  const char *op = "noise_flow";
  const dit_tensor *t[3] = { p->x, p->v, p->out };
  const char *names[3] = { "x", "v", "out" };
  for (int i = 0; i < 3; i++) {
    DIT_TRY (dit_check_tensor (dev, op, names[i], t[i]));
    if (!dit_tensor_is_contiguous (t[i]))
      return dit_error (DIT_ERR_INVALID, "%s: %s must be contiguous", op,
          names[i]);
  }
  *n = dit_tensor_numel (p->x);
  if (dit_tensor_numel (p->v) != *n || dit_tensor_numel (p->out) != *n)
    return dit_error (DIT_ERR_INVALID, "%s: x, v and out have %lld, %lld "
        "and %lld elements", op, (long long) *n,
        (long long) dit_tensor_numel (p->v),
        (long long) dit_tensor_numel (p->out));
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* VAE ops */

dit_status
dit_check_vae_conv (dit_device dev, const dit_vae_conv_params *p,
    int max_taps, dit_vae_conv_dims *d)
{
  memset (d, 0, sizeof *d);
  DIT_TRY (dit_check_frames (dev, "conv", "x", p->x, d->x));
  DIT_TRY (dit_check_frames (dev, "conv", "y", p->y, d->y));
  if (p->prev) {
    DIT_TRY (dit_check_frames (dev, "conv", "prev", p->prev, d->prev));
    if (d->prev[1] != d->x[1] || d->prev[2] != d->x[2]
        || d->prev[3] != d->x[3])
      return dit_error (DIT_ERR_INVALID, "vae conv: prev frames [%lld, %lld, "
          "%lld] do not match x [%lld, %lld, %lld]", (long long) d->prev[1],
          (long long) d->prev[2], (long long) d->prev[3], (long long) d->x[1],
          (long long) d->x[2], (long long) d->x[3]);
  }
  d->st = p->st > 0 ? p->st : 1;
  d->sh = p->sh > 0 ? p->sh : 1;
  d->sw = p->sw > 0 ? p->sw : 1;
  if (p->kt < 1 || p->kh < 1 || p->kw < 1 || p->kt * p->kh * p->kw > max_taps)
    return dit_error (DIT_ERR_INVALID, "vae conv: kernel %dx%dx%d not "
        "supported (at most %d taps)", p->kt, p->kh, p->kw, max_taps);
  if (p->pad_front < 0 || p->pad_top < 0 || p->pad_bottom < 0
      || p->pad_left < 0 || p->pad_right < 0)
    return dit_error (DIT_ERR_INVALID, "vae conv: negative padding");
  d->cin = d->x[3];
  const int64_t vt = p->pad_front + d->prev[0] + d->x[0];
  const int64_t vh = d->x[1] + p->pad_top + p->pad_bottom;
  const int64_t vw = d->x[2] + p->pad_left + p->pad_right;
  if (vt < p->kt || vh < p->kh || vw < p->kw)
    return dit_error (DIT_ERR_INVALID, "vae conv: input [%lld, %lld, %lld] "
        "(with padding) smaller than the %dx%dx%d kernel", (long long) vt,
        (long long) vh, (long long) vw, p->kt, p->kh, p->kw);
  d->to = (vt - p->kt) / d->st + 1;
  d->ho = (vh - p->kh) / d->sh + 1;
  d->wo = (vw - p->kw) / d->sw + 1;
  d->k = (int64_t) p->kt * p->kh * p->kw * d->cin;
  const dit_tensor *w = p->weight;
  if (!w || !w->data || w->ndim != 2 || w->stride[1] != 1 || w->device != dev)
    return dit_error (DIT_ERR_INVALID, "vae conv: weight must be a 2-D %s "
        "[Cout, kt*kh*kw*Cin] tensor with contiguous rows", device_name (dev));
  d->cout = w->shape[0];
  if (w->shape[1] != d->k)
    return dit_error (DIT_ERR_INVALID, "vae conv: weight [%lld, %lld] does not "
        "match K = %dx%dx%dx%lld = %lld", (long long) w->shape[0],
        (long long) w->shape[1], p->kt, p->kh, p->kw, (long long) d->cin,
        (long long) d->k);
  if (d->y[0] != d->to || d->y[1] != d->ho || d->y[2] != d->wo
      || d->y[3] != d->cout)
    return dit_error (DIT_ERR_INVALID, "vae conv: y is [%lld, %lld, %lld, "
        "%lld], expected [%lld, %lld, %lld, %lld]", (long long) d->y[0],
        (long long) d->y[1], (long long) d->y[2], (long long) d->y[3],
        (long long) d->to, (long long) d->ho, (long long) d->wo,
        (long long) d->cout);
  if (p->bias && (!p->bias->data || p->bias->device != dev
      || dit_tensor_numel (p->bias) != d->cout
      || p->bias->stride[p->bias->ndim - 1] != 1))
    return dit_error (DIT_ERR_INVALID, "vae conv: bias must be %lld "
        "contiguous %s values", (long long) d->cout, device_name (dev));
  if (p->residual) {
    int64_t rd[4];
    DIT_TRY (dit_check_frames (dev, "conv", "residual", p->residual, rd));
    if (memcmp (rd, d->y, sizeof rd) != 0)
      return dit_error (DIT_ERR_INVALID, "vae conv: residual shape differs "
          "from y");
  }
  return DIT_OK;
}
