/* flow — the flow-matching update and the Philox noise stream.
 *
 * flow_step, per element in f64 (spec §4.6):
 *   x0  = x - sigma * v
 *   out = (1 - sigma_next) * x0 + sigma_next * noise     (noise given)
 *   out = x0                                             (no noise)
 * Each product and sum is written with an explicit round-to-nearest
 * intrinsic (__dmul_rn, __dadd_rn) so that nvcc cannot contract them into
 * fused multiply-adds: the CPU evaluates them as separate operations, and
 * with the same roundings the f64 results, and therefore the stored values,
 * are bit-identical.
 *
 * noise: element i of the contiguous y is dit_philox_normal (seed, stream,
 * i), the same header function the CPU loop calls (kernels/dit_philox.h,
 * __host__ __device__ under nvcc).  One thread computes a Philox pair and
 * stores both of its normals.  This file must be compiled without
 * --use_fast_math: the Box-Muller step relies on accurate f64 log, sqrt,
 * cos and sin for bit-identical noise.
 */
#include "cuda_common.cuh"
#include "dit_philox.h"

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

__global__ void
flow_step_kernel (const void *x, int dtx, int64_t ldx, const void *v, int dtv,
    int64_t ldv, const void *noise, int dtn, int64_t ldn, void *x0_out,
    int dt0, int64_t ld0, void *out, int dto, int64_t ldo, int64_t rows,
    int64_t cols, double sigma, double sigma_next)
{
  DIT_CUDA_GRID_LOOP (i, rows * cols) {
    int64_t r = i / cols, c = i % cols;
    double xv = (double) dit_cuda_ld (x, dtx, r * ldx + c);
    double vv = (double) dit_cuda_ld (v, dtv, r * ldv + c);
    double x0 = __dsub_rn (xv, __dmul_rn (sigma, vv));
    if (x0_out)
      dit_cuda_st (x0_out, dt0, r * ld0 + c, (float) x0);
    if (out) {
      double o = x0;
      if (noise) {
        double nv = (double) dit_cuda_ld (noise, dtn, r * ldn + c);
        o = __dadd_rn (__dmul_rn (__dsub_rn (1.0, sigma_next), x0),
            __dmul_rn (sigma_next, nv));
      }
      dit_cuda_st (out, dto, r * ldo + c, (float) o);
    }
  }
}

__global__ void
noise_kernel (void *y, int dty, int64_t n, uint64_t seed, uint64_t stream)
{
  DIT_CUDA_GRID_LOOP (p, (n + 1) / 2) {
    float z0, z1;
    dit_philox_normal_pair (seed, stream, (uint64_t) p, &z0, &z1);
    dit_cuda_st (y, dty, 2 * p, z0);
    if (2 * p + 1 < n)
      dit_cuda_st (y, dty, 2 * p + 1, z1);
  }
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

dit_status
dit_cuda_flow_step (dit_backend *be, const dit_flow_step_params *p)
{
  dit_flow_dims d;
  DIT_TRY (dit_check_flow_step (DIT_DEVICE_CUDA, p, &d));
  const int64_t rows = d.x.rows, cols = d.x.cols, ldx = d.x.ld, ldv = d.v.ld;
  const int64_t ldn = d.noise.ld, ld0 = d.x0.ld, ldo = d.out.ld;
  int64_t n = rows * cols;
  if (n == 0)
    return DIT_OK;
  flow_step_kernel<<<dit_cuda_grid_1d (n, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->v->data, p->v->dtype, ldv,
      p->noise ? p->noise->data : NULL, p->noise ? (int) p->noise->dtype : 0,
      ldn, p->x0_out ? p->x0_out->data : NULL,
      p->x0_out ? (int) p->x0_out->dtype : 0, ld0,
      p->out ? p->out->data : NULL, p->out ? (int) p->out->dtype : 0, ldo,
      rows, cols, p->sigma, p->sigma_next);
  DIT_CUDA_CHECK_LAUNCH ("flow_step_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_noise (dit_backend *be, const dit_noise_params *p)
{
  DIT_TRY (dit_check_noise (DIT_DEVICE_CUDA, p));
  int64_t n = dit_tensor_numel (p->y);
  if (n == 0)
    return DIT_OK;
  noise_kernel<<<dit_cuda_grid_1d ((n + 1) / 2, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> (p->y->data, p->y->dtype, n, p->seed,
      p->stream);
  DIT_CUDA_CHECK_LAUNCH ("noise_kernel");
  return DIT_OK;
}
