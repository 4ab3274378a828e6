/* timestep — sinusoidal time embedding (spec §2.2(2)).
 *
 * y[n, j] = cos(t[n] * 10000^(-j/half)), y[n, half + j] = sin(...), for
 * j = 0..half-1 with half = cols/2: cos half first, base 10000, divisor half
 * (not half-1).  Computed in f64 as the reference does (sinusoidal_embedding_1d
 * upcasts to float64) and rounded once to y's dtype.  t is a host array even
 * on device backends: it is a handful of scalars per forward.
 */
#include "cpu_internal.h"

dit_status
dit_cpu_timestep (dit_backend *be, const dit_timestep_params *p)
{
  dit_cpu_mat y;
  if (p->n < 0)
    return dit_error (DIT_ERR_INVALID, "timestep: n is %lld", (long long) p->n);
  if (p->n > 0 && !p->t)
    return dit_error (DIT_ERR_INVALID, "timestep: t is NULL");
  DIT_TRY (dit_cpu_as_mat (p->y, "timestep", "y", &y));
  if (y.rows != p->n)
    return dit_error (DIT_ERR_INVALID, "timestep: y has %lld rows for %lld "
        "timesteps", (long long) y.rows, (long long) p->n);
  if (y.cols % 2 != 0 || y.cols == 0)
    return dit_error (DIT_ERR_INVALID, "timestep: y has %lld columns, an even "
        "width 2*half is required", (long long) y.cols);
  int64_t half = y.cols / 2;
  for (int64_t n = 0; n < p->n; n++) {
    void *dst = dit_cpu_row (&y, n);
    double t = p->t[n];
    for (int64_t j = 0; j < half; j++) {
      double a = t * pow (10000.0, -(double) j / (double) half);
      dit_store_f32 (dst, y.dtype, (size_t) j, (float) cos (a));
      dit_store_f32 (dst, y.dtype, (size_t) (half + j), (float) sin (a));
    }
  }
  return DIT_OK;
}
