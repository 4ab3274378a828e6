/* rope — Wan 3-D rotary embedding, in place on x [L, heads*128].
 *
 * Token r sits at grid position (f, h, w) = (r / (gh*gw), (r / gw) % gh,
 * r % gw); pair i of every head (x[2i], x[2i+1], interleaved) rotates by the
 * angle of table row f + frame_offset for i < 22, h for 22 <= i < 43 and w
 * for i >= 43.  cos/sin are the [1024, 64] tables made on the host in f64
 * (dit_rope_table_fill, stored f32) and uploaded once, so the angles are
 * identical to the CPU's; the rotation itself is f32:
 *   (a, b) -> (a cos - b sin, a sin + b cos)
 * One thread per pair; reading both elements of the pair before writing
 * keeps the in-place update safe.
 */
#include "cuda_common.cuh"

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

__global__ void
rope_kernel (void *x, int dtx, int64_t ldx, const void *cos_tab, int dtc,
    int64_t ldc, const void *sin_tab, int dts, int64_t lds, int64_t rows, int heads, int64_t gh, int64_t gw,
    int64_t frame_offset)
{
  const int64_t pairs_per_row = (int64_t) heads * DIT_ROPE_PAIRS;
  DIT_CUDA_GRID_LOOP (t, rows * pairs_per_row) {
    int64_t r = t / pairs_per_row;
    int64_t j = t % pairs_per_row;      /* pair index within the row */
    int i = (int) (j % DIT_ROPE_PAIRS);  /* pair index within the head */
    int64_t pos;
    if (i < 22)
      pos = r / (gh * gw) + frame_offset;
    else if (i < 43)
      pos = (r / gw) % gh;
    else
      pos = r % gw;
    float c = dit_cuda_ld (cos_tab, dtc, pos * ldc + i);
    float s = dit_cuda_ld (sin_tab, dts, pos * lds + i);
    int64_t o = r * ldx + 2 * j;
    float a = dit_cuda_ld (x, dtx, o), b = dit_cuda_ld (x, dtx, o + 1);
    dit_cuda_st (x, dtx, o, a * c - b * s);
    dit_cuda_st (x, dtx, o + 1, a * s + b * c);
  }
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

dit_status
dit_cuda_rope (dit_backend *be, const dit_rope_params *p)
{
  dit_rope_dims d;
  DIT_TRY (dit_check_rope (DIT_DEVICE_CUDA, p, &d));
  const int64_t rows = d.x.rows, ldx = d.x.ld, ldc = d.cos.ld, lds = d.sin.ld;
  if (rows == 0)
    return DIT_OK;
  int64_t n = rows * p->heads * DIT_ROPE_PAIRS;
  rope_kernel<<<dit_cuda_grid_1d (n, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, ldx,
      p->cos->data, p->cos->dtype, ldc, p->sin->data, p->sin->dtype, lds, rows,
      p->heads, p->grid_h, p->grid_w, p->frame_offset);
  DIT_CUDA_CHECK_LAUNCH ("rope_kernel");
  return DIT_OK;
}
