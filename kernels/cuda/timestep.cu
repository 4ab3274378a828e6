/* timestep — sinusoidal time embedding, f64 math like the reference.
 *
 * y[n, j] = cos(t[n] * 10000^(-j/half)), y[n, half + j] = sin(...), cos half
 * first (spec §2.2).  The timesteps are a short host array (one per latent
 * frame), so they travel inside the kernel's parameter block, 64 per launch,
 * instead of through a device buffer the op would have to allocate.  The
 * frequencies and angles are f64 as in the CPU version; CUDA's f64 pow, cos
 * and sin are within an ulp or two of glibc's, far below the f32/bf16
 * rounding of the stored result.
 */
#include "cuda_common.cuh"

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

#define TS_CHUNK 64

typedef struct ts_batch {
  double t[TS_CHUNK];
} ts_batch;

__global__ void
timestep_kernel (ts_batch tb, int64_t count, void *y, int dty, int64_t ldy,
    int64_t row0, int64_t half)
{
  DIT_CUDA_GRID_LOOP (i, count * half) {
    int64_t n = i / half, j = i % half;
    double freq = pow (10000.0, -(double) j / (double) half);
    double a = tb.t[n] * freq;
    int64_t o = (row0 + n) * ldy;
    dit_cuda_st (y, dty, o + j, (float) cos (a));
    dit_cuda_st (y, dty, o + half + j, (float) sin (a));
  }
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

dit_status
dit_cuda_timestep (dit_backend *be, const dit_timestep_params *p)
{
  const char *op = "timestep";
  int64_t rows, cols, ldy;
  DIT_TRY (dit_cuda_rows (op, "y", p->y, &rows, &cols, &ldy));
  if (p->n < 0 || rows != p->n)
    return dit_error (DIT_ERR_INVALID, "timestep: y has %lld rows for %lld "
        "timesteps", (long long) rows, (long long) p->n);
  if (cols % 2 != 0 || cols == 0)
    return dit_error (DIT_ERR_INVALID, "timestep: y width %lld must be even "
        "and positive", (long long) cols);
  if (p->n > 0 && !p->t)
    return dit_error (DIT_ERR_INVALID, "timestep: t is NULL");
  int64_t half = cols / 2;
  cudaStream_t s = dit_cuda_impl (be)->stream;
  for (int64_t r0 = 0; r0 < p->n; r0 += TS_CHUNK) {
    int64_t count = p->n - r0 < TS_CHUNK ? p->n - r0 : TS_CHUNK;
    ts_batch tb;
    memset (&tb, 0, sizeof tb);
    for (int64_t i = 0; i < count; i++)
      tb.t[i] = p->t[r0 + i];
    timestep_kernel<<<dit_cuda_grid_1d (count * half, 128), 128, 0, s>>> (tb,
        count, p->y->data, p->y->dtype, ldy, r0, half);
    DIT_CUDA_CHECK_LAUNCH ("timestep_kernel");
  }
  return DIT_OK;
}
