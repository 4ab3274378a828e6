/* norm — LayerNorm and the full-width RMSNorm over the last dimension.
 *
 * Layout: x and y are [rows, D] with strided rows; weight/bias are [D]
 * vectors of any dtype.  One 256-thread block per row: D is at most a few
 * thousand (5120 for the 14B), so a row is read once for the statistics and
 * once more (from L1/L2) for the output.  In place is allowed because each
 * element is read and written by the same thread after the reductions.
 *
 * Precision: f32 throughout.  LayerNorm uses two passes (mean, then the
 * biased variance of x - mean), like the CPU reference and PyTorch, rather
 * than E[x²] - E[x]², which loses digits when |mean| >> std.
 *   LayerNorm: y = (x - mean) * rsqrt(var + eps) [* weight + bias]
 *   RMSNorm:   y = x * rsqrt(mean(x²) + eps) * weight
 * Matches kernels/cpu/norm.c to f32 rounding (reduction order differs).
 */
#include "cuda_common.cuh"

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

#define NORM_THREADS 256

__global__ void __launch_bounds__ (NORM_THREADS)
layernorm_kernel (const void *x, int dtx, int64_t ldx, void *y, int dty,
    int64_t ldy, const void *weight, int dtw, const void *bias, int dtb,
    int64_t D, float eps)
{
  __shared__ float red[NORM_THREADS / 32];
  const int64_t row = blockIdx.x;
  const int64_t xo = row * ldx, yo = row * ldy;
  float s = 0.0f;
  for (int64_t c = threadIdx.x; c < D; c += NORM_THREADS)
    s += dit_cuda_ld (x, dtx, xo + c);
  const float mean = dit_block_sum<NORM_THREADS> (s, red) / (float) D;
  float q = 0.0f;
  for (int64_t c = threadIdx.x; c < D; c += NORM_THREADS) {
    float d = dit_cuda_ld (x, dtx, xo + c) - mean;
    q += d * d;
  }
  const float var = dit_block_sum<NORM_THREADS> (q, red) / (float) D;
  const float rstd = rsqrtf (var + eps);
  for (int64_t c = threadIdx.x; c < D; c += NORM_THREADS) {
    float v = (dit_cuda_ld (x, dtx, xo + c) - mean) * rstd;
    if (weight)
      v = v * dit_cuda_ld (weight, dtw, c) + dit_cuda_ld (bias, dtb, c);
    dit_cuda_st (y, dty, yo + c, v);
  }
}

__global__ void __launch_bounds__ (NORM_THREADS)
rmsnorm_kernel (const void *x, int dtx, int64_t ldx, void *y, int dty,
    int64_t ldy, const void *weight, int dtw, int64_t D, float eps)
{
  __shared__ float red[NORM_THREADS / 32];
  const int64_t row = blockIdx.x;
  const int64_t xo = row * ldx, yo = row * ldy;
  float q = 0.0f;
  for (int64_t c = threadIdx.x; c < D; c += NORM_THREADS) {
    float v = dit_cuda_ld (x, dtx, xo + c);
    q += v * v;
  }
  const float r = rsqrtf (dit_block_sum<NORM_THREADS> (q, red) / (float) D
      + eps);
  for (int64_t c = threadIdx.x; c < D; c += NORM_THREADS) {
    float v = dit_cuda_ld (x, dtx, xo + c) * r;
    dit_cuda_st (y, dty, yo + c, v * dit_cuda_ld (weight, dtw, c));
  }
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

/* One block per row: the grid's x extent is 32-bit. */
static dit_status
norm_rows_fit (const char *op, int64_t rows)
{
  if (rows > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "%s: %lld rows is too many", op,
        (long long) rows);
  return DIT_OK;
}

dit_status
dit_cuda_layernorm (dit_backend *be, const dit_layernorm_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_layernorm (DIT_DEVICE_CUDA, p, &d));
  const int64_t rows = d.x.rows, D = d.x.cols, ldx = d.x.ld, ldy = d.y.ld;
  DIT_TRY (norm_rows_fit ("layernorm", rows));
  if (rows == 0 || D == 0)
    return DIT_OK;
  layernorm_kernel<<<(unsigned) rows, NORM_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->y->data, p->y->dtype, ldy,
      p->weight ? p->weight->data : NULL, p->weight ? (int) p->weight->dtype : 0,
      p->bias ? p->bias->data : NULL, p->bias ? (int) p->bias->dtype : 0,
      D, p->eps);
  DIT_CUDA_CHECK_LAUNCH ("layernorm_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_rmsnorm (dit_backend *be, const dit_rmsnorm_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_rmsnorm (DIT_DEVICE_CUDA, p, &d));
  const int64_t rows = d.x.rows, D = d.x.cols, ldx = d.x.ld, ldy = d.y.ld;
  DIT_TRY (norm_rows_fit ("rmsnorm", rows));
  if (rows == 0 || D == 0)
    return DIT_OK;
  rmsnorm_kernel<<<(unsigned) rows, NORM_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->y->data, p->y->dtype, ldy, p->weight->data, p->weight->dtype, D,
      p->eps);
  DIT_CUDA_CHECK_LAUNCH ("rmsnorm_kernel");
  return DIT_OK;
}
