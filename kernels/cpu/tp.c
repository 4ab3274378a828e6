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
#include "../dit_tp_kernels.h"

#include <math.h>

static dit_status
tp_check_sumsq (const dit_tensor *ss, const char *op, int64_t rows)
{
  if (!ss || ss->dtype != DIT_F32 || ss->device != DIT_DEVICE_CPU
      || !dit_tensor_is_contiguous (ss) || dit_tensor_numel (ss) < rows)
    return dit_error (DIT_ERR_INVALID,
        "%s: sumsq must be a contiguous CPU f32 vector of at least %lld elements",
        op, (long long) rows);
  return DIT_OK;
}

dit_status
dit_cpu_rmsnorm_sumsq (dit_backend *be, const dit_rmsnorm_sumsq_params *p)
{
  dit_cpu_mat x;
  DIT_TRY (dit_cpu_as_mat (p->x, "rmsnorm_sumsq", "x", &x));
  DIT_TRY (tp_check_sumsq (p->sumsq, "rmsnorm_sumsq", x.rows));
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
  dit_cpu_mat x, y, w;
  DIT_TRY (dit_cpu_as_mat (p->x, "rmsnorm_apply", "x", &x));
  DIT_TRY (dit_cpu_as_mat_shape (p->y, "rmsnorm_apply", "y", x.rows, x.cols, &y));
  DIT_TRY (dit_cpu_as_vec (p->weight, "rmsnorm_apply", "weight", x.cols, &w));
  DIT_TRY (tp_check_sumsq (p->sumsq, "rmsnorm_apply", x.rows));
  if (p->total_cols < x.cols)
    return dit_error (DIT_ERR_INVALID,
        "rmsnorm_apply: total width %lld is less than the shard's %lld columns",
        (long long) p->total_cols, (long long) x.cols);
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
