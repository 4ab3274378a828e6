/* norm — LayerNorm, full-width RMSNorm and the adaLN modulate, per row.
 *
 * Layout: [rows, D] views with contiguous channels; weight/bias/shift/scale
 * vectors are contiguous.  Each row is converted to f32 scratch first, which
 * also makes the documented in-place use (y == x) safe.
 *
 * Precision: the row statistics (mean, variance, mean of squares) are summed
 * in f64, so the reference does not lose bits on wide rows (D = 5120); the
 * normalisation itself is f32 like PyTorch's kernel.  LayerNorm uses the
 * biased variance (spec §2.7).  RMSNorm is the Wan q/k norm: one statistic
 * over all D channels, before the head split.
 */
#include "cpu_internal.h"

static dit_status
norm_scratch (const char *op, int64_t cols, float **row)
{
  *row = dit_cpu_scratch ((size_t) cols * 3 + 64);
  if (!*row)
    return dit_error (DIT_ERR_NOMEM, "%s: cannot allocate scratch for %lld "
        "columns", op, (long long) cols);
  return DIT_OK;
}

/* One row in place: (x - mean) / sqrt(var + eps), then * w + b when w is
 * not NULL.  Shared by the LayerNorm and the FP8-writing LayerNorm so the
 * two references normalise bit-identically. */
void
dit_cpu_layernorm_row (float *row, int64_t D, float eps, const float *w,
    const float *b)
{
  double sum = 0.0;
  for (int64_t i = 0; i < D; i++)
    sum += row[i];
  double mean = sum / (double) D;
  double sq = 0.0;
  for (int64_t i = 0; i < D; i++) {
    double dv = (double) row[i] - mean;
    sq += dv * dv;
  }
  float meanf = (float) mean;
  float rstd = (float) (1.0 / sqrt (sq / (double) D + (double) eps));
  for (int64_t i = 0; i < D; i++)
    row[i] = (row[i] - meanf) * rstd;
  if (w)
    for (int64_t i = 0; i < D; i++)
      row[i] = row[i] * w[i] + b[i];
}

dit_status
dit_cpu_layernorm (dit_backend *be, const dit_layernorm_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_layernorm (DIT_DEVICE_CPU, p, &d));
  const dit_cpu_mat x = d.x, y = d.y, w = d.a, b = d.b;
  int affine = p->weight != NULL;
  if (x.rows == 0 || x.cols == 0)
    return DIT_OK;
  float *row, *wf = NULL, *bf = NULL;
  DIT_TRY (norm_scratch ("layernorm", x.cols, &row));
  if (affine) {
    wf = row + x.cols;
    bf = wf + x.cols;
    dit_cpu_load_row (wf, w.data, w.dtype, x.cols);
    dit_cpu_load_row (bf, b.data, b.dtype, x.cols);
  }
  int64_t D = x.cols;
  for (int64_t r = 0; r < x.rows; r++) {
    dit_cpu_load_row (row, dit_cpu_row (&x, r), x.dtype, D);
    dit_cpu_layernorm_row (row, D, p->eps, wf, bf);
    dit_cpu_store_row (dit_cpu_row (&y, r), y.dtype, row, D);
  }
  return DIT_OK;
}

dit_status
dit_cpu_rmsnorm (dit_backend *be, const dit_rmsnorm_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_rmsnorm (DIT_DEVICE_CPU, p, &d));
  const dit_cpu_mat x = d.x, y = d.y, w = d.a;
  if (x.rows == 0 || x.cols == 0)
    return DIT_OK;
  float *row;
  DIT_TRY (norm_scratch ("rmsnorm", x.cols, &row));
  float *wf = row + x.cols;
  int64_t D = x.cols;
  dit_cpu_load_row (wf, w.data, w.dtype, D);
  for (int64_t r = 0; r < x.rows; r++) {
    dit_cpu_load_row (row, dit_cpu_row (&x, r), x.dtype, D);
    double sq = 0.0;
    for (int64_t i = 0; i < D; i++)
      sq += (double) row[i] * (double) row[i];
    float rstd = (float) (1.0 / sqrt (sq / (double) D + (double) p->eps));
    for (int64_t i = 0; i < D; i++)
      row[i] = row[i] * rstd * wf[i];
    dit_cpu_store_row (dit_cpu_row (&y, r), y.dtype, row, D);
  }
  return DIT_OK;
}

dit_status
dit_cpu_modulate (dit_backend *be, const dit_modulate_params *p)
{
  dit_row_dims d;
  DIT_TRY (dit_check_modulate (DIT_DEVICE_CPU, p, &d));
  const dit_cpu_mat x = d.x, y = d.y, sh = d.a, sc = d.b;
  if (x.rows == 0 || x.cols == 0)
    return DIT_OK;
  float *row;
  DIT_TRY (norm_scratch ("modulate", x.cols, &row));
  float *shf = row + x.cols, *scf = shf + x.cols;
  int64_t D = x.cols, cur = -1;
  for (int64_t r = 0; r < x.rows; r++) {
    int64_t g = r / p->rows_per_group;
    if (g != cur) {
      dit_cpu_load_row (shf, dit_cpu_row (&sh, g), sh.dtype, D);
      dit_cpu_load_row (scf, dit_cpu_row (&sc, g), sc.dtype, D);
      for (int64_t i = 0; i < D; i++)
        scf[i] = 1.0f + scf[i];
      cur = g;
    }
    dit_cpu_load_row (row, dit_cpu_row (&x, r), x.dtype, D);
    for (int64_t i = 0; i < D; i++)
      row[i] = row[i] * scf[i] + shf[i];
    dit_cpu_store_row (dit_cpu_row (&y, r), y.dtype, row, D);
  }
  return DIT_OK;
}
