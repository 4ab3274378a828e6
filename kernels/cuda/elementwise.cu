/* elementwise — adaLN modulate, gated residual, broadcast add, SiLU/GELU and
 * dtype-converting copy.
 *
 * Layout: [rows, cols] views with strided rows (copy also takes any 1-4-D
 * strides); per-group vectors [G, cols] are shared by rows_per_group
 * consecutive rows (one latent frame of tokens).  One thread per element in
 * a grid-stride loop; these ops are memory-bound and the model fuses the
 * heavy ones (norm + modulate) elsewhere later.
 *
 * Precision: loads widen to f32, arithmetic is f32, stores round to nearest
 * even: the same as kernels/cpu/elementwise.c.  The only possible
 * difference is the compiler fusing a*b + c into one FMA (one rounding
 * instead of two), which stays below the output dtype's rounding.
 * In place (y == x) is allowed for modulate and unary; residual updates x.
 */
#include "cuda_common.cuh"

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

__device__ __forceinline__ float
ew_act (float v, int act)
{
  if (act == DIT_ACT_GELU_TANH) {
    float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    return 0.5f * v * (1.0f + tanhf (u));
  }
  if (act == DIT_ACT_SILU)
    return v / (1.0f + expf (-v));
  return v;
}

__global__ void
modulate_kernel (const void *x, int dtx, int64_t ldx, const void *shift,
    int dtsh, int64_t ldsh, const void *scale, int dtsc, int64_t ldsc,
    void *y, int dty, int64_t ldy, int64_t rows, int64_t cols, int64_t rpg)
{
  DIT_CUDA_GRID_LOOP (i, rows * cols) {
    int64_t r = i / cols, c = i % cols, g = r / rpg;
    float v = dit_cuda_ld (x, dtx, r * ldx + c);
    float sc = dit_cuda_ld (scale, dtsc, g * ldsc + c);
    float sh = dit_cuda_ld (shift, dtsh, g * ldsh + c);
    dit_cuda_st (y, dty, r * ldy + c, v * (1.0f + sc) + sh);
  }
}

__global__ void
residual_kernel (void *x, int dtx, int64_t ldx, const void *y, int dty,
    int64_t ldy, const void *gate, int dtg, int64_t ldg, int64_t rows,
    int64_t cols, int64_t rpg)
{
  DIT_CUDA_GRID_LOOP (i, rows * cols) {
    int64_t r = i / cols, c = i % cols;
    float v = dit_cuda_ld (y, dty, r * ldy + c);
    if (gate)
      v *= dit_cuda_ld (gate, dtg, (r / rpg) * ldg + c);
    int64_t o = r * ldx + c;
    dit_cuda_st (x, dtx, o, dit_cuda_ld (x, dtx, o) + v);
  }
}

__global__ void
add_kernel (const void *a, int dta, const void *b, int dtb, void *y, int dty,
    int64_t n, int64_t nb)
{
  DIT_CUDA_GRID_LOOP (i, n)
    dit_cuda_st (y, dty, i, dit_cuda_ld (a, dta, i) + dit_cuda_ld (b, dtb, i % nb));
}

__global__ void
unary_kernel (const void *x, int dtx, int64_t ldx, void *y, int dty,
    int64_t ldy, int64_t rows, int64_t cols, int act)
{
  DIT_CUDA_GRID_LOOP (i, rows * cols) {
    int64_t r = i / cols, c = i % cols;
    dit_cuda_st (y, dty, r * ldy + c, ew_act (dit_cuda_ld (x, dtx, r * ldx + c), act));
  }
}

typedef struct copy_geom {
  int64_t shape[DIT_MAX_DIMS];
  int64_t sx[DIT_MAX_DIMS];
  int64_t sy[DIT_MAX_DIMS];
} copy_geom;

/* Generic strided copy: shapes padded to 4 dims with leading 1s. */
__global__ void
copy_kernel (const void *x, int dtx, void *y, int dty, copy_geom g, int64_t n)
{
  DIT_CUDA_GRID_LOOP (i, n) {
    int64_t rem = i, ox = 0, oy = 0;
#pragma unroll
    for (int d = DIT_MAX_DIMS - 1; d >= 0; d--) {
      int64_t idx = rem % g.shape[d];
      rem /= g.shape[d];
      ox += idx * g.sx[d];
      oy += idx * g.sy[d];
    }
    dit_cuda_st (y, dty, oy, dit_cuda_ld (x, dtx, ox));
  }
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

#define EW_THREADS 256

dit_status
dit_cuda_launch_unary (cudaStream_t s, const void *x, int dtx, int64_t ldx,
    void *y, int dty, int64_t ldy, int64_t rows, int64_t cols, int act)
{
  int64_t n = rows * cols;
  if (n == 0)
    return DIT_OK;
  unary_kernel<<<dit_cuda_grid_1d (n, EW_THREADS), EW_THREADS, 0, s>>> (x,
      dtx, ldx, y, dty, ldy, rows, cols, act);
  DIT_CUDA_CHECK_LAUNCH ("unary_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_modulate (dit_backend *be, const dit_modulate_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_modulate (DIT_DEVICE_CUDA, p, &d));
  const int64_t rows = d.x.rows, cols = d.x.cols, ldx = d.x.ld, ldy = d.y.ld;
  const int64_t ldsh = d.a.ld, ldsc = d.b.ld;
  int64_t n = rows * cols;
  if (n == 0)
    return DIT_OK;
  modulate_kernel<<<dit_cuda_grid_1d (n, EW_THREADS), EW_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->shift->data, p->shift->dtype, ldsh, p->scale->data, p->scale->dtype,
      ldsc, p->y->data, p->y->dtype, ldy, rows, cols, p->rows_per_group);
  DIT_CUDA_CHECK_LAUNCH ("modulate_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_residual (dit_backend *be, const dit_residual_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_residual (DIT_DEVICE_CUDA, p, &d));
  const int64_t rows = d.x.rows, cols = d.x.cols, ldx = d.x.ld, ldy = d.y.ld;
  const int64_t ldg = p->gate ? d.a.ld : 0;
  const int64_t rpg = p->gate ? p->rows_per_group : 1;
  int64_t n = rows * cols;
  if (n == 0)
    return DIT_OK;
  residual_kernel<<<dit_cuda_grid_1d (n, EW_THREADS), EW_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->y->data, p->y->dtype, ldy, p->gate ? p->gate->data : NULL,
      p->gate ? (int) p->gate->dtype : 0, ldg, rows, cols, rpg);
  DIT_CUDA_CHECK_LAUNCH ("residual_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_add (dit_backend *be, const dit_add_params *p)
{
  int64_t n, nb;
  DIT_TRY (dit_check_add (DIT_DEVICE_CUDA, p, &n, &nb));
  if (n == 0)
    return DIT_OK;
  add_kernel<<<dit_cuda_grid_1d (n, EW_THREADS), EW_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->a->data, p->a->dtype, p->b->data,
      p->b->dtype, p->y->data, p->y->dtype, n, nb);
  DIT_CUDA_CHECK_LAUNCH ("add_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_unary (dit_backend *be, const dit_unary_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_unary (DIT_DEVICE_CUDA, p, &d));
  return dit_cuda_launch_unary (dit_cuda_impl (be)->stream, p->x->data,
      p->x->dtype, d.x.ld, p->y->data, p->y->dtype, d.y.ld, d.x.rows,
      d.x.cols, (int) p->act);
}

dit_status
dit_cuda_copy (dit_backend *be, const dit_copy_params *p)
{
  const dit_tensor *x = p->x, *y = p->y;
  int reshape;
  DIT_TRY (dit_check_copy (DIT_DEVICE_CUDA, p, &reshape));
  copy_geom g;
  if (reshape) {
    /* equally sized contiguous buffers of different shapes */
    {
      int64_t n = dit_tensor_numel (x);
      if (n == 0)
        return DIT_OK;
      for (int d = 0; d < DIT_MAX_DIMS; d++) {
        g.shape[d] = d == DIT_MAX_DIMS - 1 ? n : 1;
        g.sx[d] = g.sy[d] = d == DIT_MAX_DIMS - 1 ? 1 : 0;
      }
      copy_kernel<<<dit_cuda_grid_1d (n, EW_THREADS), EW_THREADS, 0,
          dit_cuda_impl (be)->stream>>> (x->data, x->dtype, y->data, y->dtype,
          g, n);
      DIT_CUDA_CHECK_LAUNCH ("copy_kernel");
      return DIT_OK;
    }
  }
  int pad = DIT_MAX_DIMS - x->ndim;
  for (int d = 0; d < DIT_MAX_DIMS; d++) {
    if (d < pad) {
      g.shape[d] = 1;
      g.sx[d] = g.sy[d] = 0;
      continue;
    }
    int s = d - pad;
    g.shape[d] = x->shape[s];
    g.sx[d] = x->stride[s];
    g.sy[d] = y->stride[s];
  }
  int64_t n = dit_tensor_numel (x);
  if (n == 0)
    return DIT_OK;
  copy_kernel<<<dit_cuda_grid_1d (n, EW_THREADS), EW_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (x->data, x->dtype, y->data, y->dtype, g, n);
  DIT_CUDA_CHECK_LAUNCH ("copy_kernel");
  return DIT_OK;
}
