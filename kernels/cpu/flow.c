/* flow — flow-matching update and seeded Gaussian noise (spec §4.6).
 *
 * flow_step, per element in f64:  x0 = x - sigma * v;
 *   out = (1 - sigma_next) * x0 + sigma_next * noise   (when noise is given)
 *   out = x0                                           (otherwise)
 * x0 is kept in f64 for the re-noise and rounded once into each output, so
 * out may alias x (every input of an element is read before it is written).
 * Tensors are [rows, cols] views with contiguous columns and equal shapes.
 *
 * noise: y[i] = dit_philox_normal(seed, stream, i) over a contiguous y,
 * rounded to y's dtype.  Counter-based, so any backend and any split of the
 * work produce the same bits.
 */
#include "cpu_internal.h"
#include "dit_philox.h"

dit_status
dit_cpu_flow_step (dit_backend *be, const dit_flow_step_params *p)
{
  dit_flow_dims d;
  DIT_TRY (dit_check_flow_step (DIT_DEVICE_CPU, p, &d));
  const dit_cpu_mat x = d.x, v = d.v, nz = d.noise, x0 = d.x0, out = d.out;
  const double sigma = p->sigma, sn = p->sigma_next;
  for (int64_t r = 0; r < x.rows; r++) {
    const void *xr = dit_cpu_row (&x, r), *vr = dit_cpu_row (&v, r);
    const void *nr = p->noise ? dit_cpu_row (&nz, r) : NULL;
    void *x0r = p->x0_out ? dit_cpu_row (&x0, r) : NULL;
    void *outr = p->out ? dit_cpu_row (&out, r) : NULL;
    for (int64_t c = 0; c < x.cols; c++) {
      size_t i = (size_t) c;
      double xv = dit_load_f32 (xr, x.dtype, i);
      double vv = dit_load_f32 (vr, v.dtype, i);
      double n = nr ? dit_load_f32 (nr, nz.dtype, i) : 0.0;
      double x0v = xv - sigma * vv;
      double o = nr ? (1.0 - sn) * x0v + sn * n : x0v;
      if (x0r)
        dit_store_f32 (x0r, x0.dtype, i, (float) x0v);
      if (outr)
        dit_store_f32 (outr, out.dtype, i, (float) o);
    }
  }
  return DIT_OK;
}

dit_status
dit_cpu_noise (dit_backend *be, const dit_noise_params *p)
{
  DIT_TRY (dit_check_noise (DIT_DEVICE_CPU, p));
  uint64_t n = (uint64_t) dit_tensor_numel (p->y);
  void *y = p->y->data;
  dit_dtype dt = p->y->dtype;
  for (uint64_t i = 0; i < n; i += 2) {
    float z0, z1;
    dit_philox_normal_pair (p->seed, p->stream, i >> 1, &z0, &z1);
    dit_store_f32 (y, dt, (size_t) i, z0);
    if (i + 1 < n)
      dit_store_f32 (y, dt, (size_t) (i + 1), z1);
  }
  return DIT_OK;
}
