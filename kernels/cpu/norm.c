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

dit_status
dit_cpu_layernorm (dit_backend *be, const dit_layernorm_params *p)
{
  dit_cpu_mat x, y, w, b;
  DIT_TRY (dit_cpu_as_mat (p->x, "layernorm", "x", &x));
  DIT_TRY (dit_cpu_as_mat_shape (p->y, "layernorm", "y", x.rows, x.cols, &y));
  if ((p->weight == NULL) != (p->bias == NULL))
    return dit_error (DIT_ERR_INVALID, "layernorm: weight and bias must both be "
        "set or both be NULL");
  int affine = p->weight != NULL;
  if (affine) {
    DIT_TRY (dit_cpu_as_vec (p->weight, "layernorm", "weight", x.cols, &w));
    DIT_TRY (dit_cpu_as_vec (p->bias, "layernorm", "bias", x.cols, &b));
  }
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
    double sum = 0.0;
    for (int64_t i = 0; i < D; i++)
      sum += row[i];
    double mean = sum / (double) D;
    double sq = 0.0;
    for (int64_t i = 0; i < D; i++) {
      double d = (double) row[i] - mean;
      sq += d * d;
    }
    float meanf = (float) mean;
    float rstd = (float) (1.0 / sqrt (sq / (double) D + (double) p->eps));
    for (int64_t i = 0; i < D; i++)
      row[i] = (row[i] - meanf) * rstd;
    if (affine)
      for (int64_t i = 0; i < D; i++)
        row[i] = row[i] * wf[i] + bf[i];
    dit_cpu_store_row (dit_cpu_row (&y, r), y.dtype, row, D);
  }
  return DIT_OK;
}

dit_status
dit_cpu_rmsnorm (dit_backend *be, const dit_rmsnorm_params *p)
{
  dit_cpu_mat x, y, w;
  DIT_TRY (dit_cpu_as_mat (p->x, "rmsnorm", "x", &x));
  DIT_TRY (dit_cpu_as_mat_shape (p->y, "rmsnorm", "y", x.rows, x.cols, &y));
  DIT_TRY (dit_cpu_as_vec (p->weight, "rmsnorm", "weight", x.cols, &w));
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
dit_cpu_check_groups (const dit_tensor *t, const char *op, const char *name,
    int64_t rows, int64_t cols, int64_t rows_per_group, dit_cpu_mat *m)
{
  DIT_TRY (dit_cpu_as_mat (t, op, name, m));
  if (m->cols != cols)
    return dit_error (DIT_ERR_INVALID, "%s: %s has %lld columns but x has %lld",
        op, name, (long long) m->cols, (long long) cols);
  if (rows_per_group <= 0)
    return dit_error (DIT_ERR_INVALID, "%s: rows_per_group is %lld (must be > 0)",
        op, (long long) rows_per_group);
  int64_t need = rows > 0 ? (rows - 1) / rows_per_group + 1 : 0;
  if (m->rows < need)
    return dit_error (DIT_ERR_INVALID, "%s: %s has %lld rows but %lld rows of x "
        "in groups of %lld need %lld", op, name, (long long) m->rows,
        (long long) rows, (long long) rows_per_group, (long long) need);
  return DIT_OK;
}

dit_status
dit_cpu_modulate (dit_backend *be, const dit_modulate_params *p)
{
  dit_cpu_mat x, y, sh, sc;
  DIT_TRY (dit_cpu_as_mat (p->x, "modulate", "x", &x));
  DIT_TRY (dit_cpu_as_mat_shape (p->y, "modulate", "y", x.rows, x.cols, &y));
  DIT_TRY (dit_cpu_check_groups (p->shift, "modulate", "shift", x.rows, x.cols,
      p->rows_per_group, &sh));
  DIT_TRY (dit_cpu_check_groups (p->scale, "modulate", "scale", x.rows, x.cols,
      p->rows_per_group, &sc));
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
