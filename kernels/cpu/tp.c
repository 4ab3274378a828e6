/* tp — the two halves of the tensor-parallel RMSNorm on the CPU.
 *
 * Layout: x and y are [rows, cols] with strided rows (cols = this rank's
 * D / tp channels); sumsq is a contiguous f32 vector with one entry per row;
 * weight is this rank's [cols] slice of the full-width norm weight.
 *
 * Precision: squares are summed in f64 per row (as kernels/cpu/norm.c does
 * for the whole row) and stored as f32; the all-reduced total then gives
 * the same statistic as the full-width norm up to f32 rounding of the
 * partial sums.  The scale is computed in f64 and applied in f32, as in
 * dit_cpu_rmsnorm.
 */
#include "cpu_internal.h"

#include <math.h>

dit_status
dit_cpu_rmsnorm_sumsq (dit_backend *be, const dit_rmsnorm_sumsq_params *p)
{
  dit_cpu_mat x;
  DIT_TRY (dit_check_rmsnorm_sumsq (DIT_DEVICE_CPU, p, &x));
  float *ss = p->sumsq->data;
  float *row = dit_cpu_scratch ((size_t) x.cols + 64);
  if (!row)
    return dit_error (DIT_ERR_NOMEM, "rmsnorm_sumsq: cannot allocate scratch");
  for (int64_t r = 0; r < x.rows; r++) {
    dit_cpu_load_row (row, dit_cpu_row (&x, r), x.dtype, x.cols);
    double sq = 0.0;
    for (int64_t i = 0; i < x.cols; i++)
      sq += (double) row[i] * (double) row[i];
    ss[r] = (float) sq;
  }
  return DIT_OK;
}

dit_status
dit_cpu_rmsnorm_apply (dit_backend *be, const dit_rmsnorm_apply_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_rmsnorm_apply (DIT_DEVICE_CPU, p, &d));
  const dit_cpu_mat x = d.x, y = d.y, w = d.a;
  if (x.rows == 0 || x.cols == 0)
    return DIT_OK;
  const float *ss = p->sumsq->data;
  float *row = dit_cpu_scratch ((size_t) x.cols * 2 + 64);
  if (!row)
    return dit_error (DIT_ERR_NOMEM, "rmsnorm_apply: cannot allocate scratch");
  float *wf = row + x.cols;
  dit_cpu_load_row (wf, w.data, w.dtype, x.cols);
  for (int64_t r = 0; r < x.rows; r++) {
    dit_cpu_load_row (row, dit_cpu_row (&x, r), x.dtype, x.cols);
    float rstd = (float) (1.0 / sqrt ((double) ss[r] / (double) p->total_cols
        + (double) p->eps));
    for (int64_t i = 0; i < x.cols; i++)
      row[i] = row[i] * rstd * wf[i];
    dit_cpu_store_row (dit_cpu_row (&y, r), y.dtype, row, x.cols);
  }
  return DIT_OK;
}
