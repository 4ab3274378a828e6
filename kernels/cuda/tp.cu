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
#include "../dit_tp_kernels.h"

#define TP_THREADS 256

__device__ __forceinline__ float
tp_block_sum (float v, float *red)
{
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0)
    red[warp] = v;
  __syncthreads ();
  v = lane < TP_THREADS / 32 ? red[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  return v;
}

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
  q = tp_block_sum (q, red);
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

static dit_status
tp_check_ss (const char *op, const dit_tensor *ss, int64_t rows)
{
  DIT_TRY (dit_cuda_check_tensor (op, "sumsq", ss));
  if (ss->dtype != DIT_F32 || !dit_tensor_is_contiguous (ss)
      || dit_tensor_numel (ss) < rows)
    return dit_error (DIT_ERR_INVALID, "%s: sumsq must be a contiguous f32 "
        "vector of at least %lld elements", op, (long long) rows);
  return DIT_OK;
}

dit_status
dit_cuda_rmsnorm_sumsq (dit_backend *be, const dit_rmsnorm_sumsq_params *p)
{
  const char *op = "rmsnorm_sumsq";
  int64_t rows, D, ldx;
  DIT_TRY (dit_cuda_rows (op, "x", p->x, &rows, &D, &ldx));
  DIT_TRY (tp_check_ss (op, p->sumsq, rows));
  if (rows == 0)
    return DIT_OK;
  if (rows > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "%s: %lld rows is too many", op,
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
  const char *op = "rmsnorm_apply";
  int64_t rows, D, ldx, ry, dy, ldy;
  DIT_TRY (dit_cuda_rows (op, "x", p->x, &rows, &D, &ldx));
  DIT_TRY (dit_cuda_rows (op, "y", p->y, &ry, &dy, &ldy));
  if (ry != rows || dy != D)
    return dit_error (DIT_ERR_INVALID, "%s: y is [%lld, %lld] but x is "
        "[%lld, %lld]", op, (long long) ry, (long long) dy, (long long) rows,
        (long long) D);
  DIT_TRY (dit_cuda_check_vector (op, "weight", p->weight, D));
  DIT_TRY (tp_check_ss (op, p->sumsq, rows));
  if (p->total_cols < D || p->total_cols <= 0)
    return dit_error (DIT_ERR_INVALID, "%s: total width %lld is less than the "
        "shard's %lld columns", op, (long long) p->total_cols, (long long) D);
  if (rows == 0 || D == 0)
    return DIT_OK;
  if (rows > 0x7fffffff)
    return dit_error (DIT_ERR_INVALID, "%s: %lld rows is too many", op,
        (long long) rows);
  tp_apply_kernel<<<(unsigned) rows, TP_THREADS, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->y->data, p->y->dtype, ldy, (const float *) p->sumsq->data,
      p->weight->data, p->weight->dtype, D, 1.0f / (float) p->total_cols,
      p->eps);
  DIT_CUDA_CHECK_LAUNCH ("tp_apply_kernel");
  return DIT_OK;
}
