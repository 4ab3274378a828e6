/* tp — the two halves of the tensor-parallel RMSNorm on the GPU.
 *
 * Layout: x and y are [rows, cols] with strided rows (cols = this rank's
 * D / tp channels); sumsq is a contiguous f32 device vector, one entry per
 * row; weight is this rank's [cols] slice of the norm weight.  One
 * 256-thread block per row, like the full-width norm in norm.cu.
 *
 * Precision: f32 throughout.  Matches kernels/cpu/tp.c to f32 rounding
 * (reduction order differs).  Stream-ordered on the backend's stream, so
 * the all-reduce between the halves must be enqueued on the same stream
 * (or ordered after it with an event).
 */
#include "cuda_common.cuh"

#define TP_THREADS 256

__global__ void __launch_bounds__ (TP_THREADS)
tp_sumsq_kernel (const void *x, int dtx, int64_t ldx, float *ss, int64_t D)
{
  __shared__ float red[TP_THREADS / 32];
  const int64_t xo = (int64_t) blockIdx.x * ldx;
  float q = 0.0f;
  for (int64_t c = threadIdx.x; c < D; c += TP_THREADS) {
    float v = dit_cuda_ld (x, dtx, xo + c);
    q += v * v;
  }
  q = dit_block_sum<TP_THREADS> (q, red);
  if (threadIdx.x == 0)
    ss[blockIdx.x] = q;
}

__global__ void __launch_bounds__ (TP_THREADS)
tp_apply_kernel (const void *x, int dtx, int64_t ldx, void *y, int dty,
    int64_t ldy, const float *ss, const void *w, int dtw, int64_t D,
    float inv_total, float eps)
{
  const int64_t row = blockIdx.x;
  const float r = rsqrtf (ss[row] * inv_total + eps);
  for (int64_t c = threadIdx.x; c < D; c += TP_THREADS) {
    float v = dit_cuda_ld (x, dtx, row * ldx + c) * r;
    dit_cuda_st (y, dty, row * ldy + c, v * dit_cuda_ld (w, dtw, c));
  }
}

dit_status
dit_cuda_rmsnorm_sumsq (dit_backend *be, const dit_rmsnorm_sumsq_params *p)
{
  dit_rows x;
  DIT_TRY (dit_check_rmsnorm_sumsq (DIT_DEVICE_CUDA, p, &x));
  const int64_t rows = x.rows, D = x.cols, ldx = x.ld;
  if (rows == 0)
    return DIT_OK;
  if (rows > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "rmsnorm_sumsq: %lld rows is too many",
        (long long) rows);
  tp_sumsq_kernel<<<(unsigned) rows, TP_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      (float *) p->sumsq->data, D);
  DIT_CUDA_CHECK_LAUNCH ("tp_sumsq_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_rmsnorm_apply (dit_backend *be, const dit_rmsnorm_apply_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_rmsnorm_apply (DIT_DEVICE_CUDA, p, &d));
  const int64_t rows = d.x.rows, D = d.x.cols, ldx = d.x.ld, ldy = d.y.ld;
  if (rows == 0 || D == 0)
    return DIT_OK;
  if (rows > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "rmsnorm_apply: %lld rows is too many",
        (long long) rows);
  tp_apply_kernel<<<(unsigned) rows, TP_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->y->data, p->y->dtype, ldy, (const float *) p->sumsq->data,
      p->weight->data, p->weight->dtype, D, 1.0f / (float) p->total_cols,
      p->eps);
  DIT_CUDA_CHECK_LAUNCH ("tp_apply_kernel");
  return DIT_OK;
}
