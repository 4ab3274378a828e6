/* patch — the (1, 2, 2) patch gather and its inverse.
 *
 * patchify:   latent [C, F, H, W] -> tokens [F*(H/2)*(W/2), 4*C] with
 *             column c*4 + q*2 + r for pixel (2h+q, 2w+r)  (channel slowest,
 *             the Conv3d weight order of the patch embedding)
 * unpatchify: tokens [F*(H/2)*(W/2), 4*C] -> latent [C, F, H, W] with
 *             column (q*2 + r)*C + c                        (channel fastest,
 *             the head's output order)
 * Pure data movement with dtype conversion through f32 (exact for every
 * widening and the same rounding as the CPU for narrowing).  One thread per
 * token element; the latent may be any strided 4-D view, the token matrix
 * may have strided rows.
 */
#include "cuda_common.cuh"

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

typedef struct patch_geom {
  int64_t C, F, H, W;      /* latent extents */
  int64_t ls[4];           /* latent strides */
  int64_t ldt;             /* token row stride */
} patch_geom;

__global__ void
patchify_kernel (const void *lat, int dtl, void *tok, int dtt, patch_geom g)
{
  const int64_t hh = g.H / 2, ww = g.W / 2, cols = 4 * g.C;
  DIT_CUDA_GRID_LOOP (i, g.F * hh * ww * cols) {
    int64_t t = i / cols, col = i % cols;
    int64_t c = col / 4, q = (col / 2) % 2, r = col % 2;
    int64_t f = t / (hh * ww), h = (t / ww) % hh, w = t % ww;
    int64_t lo = c * g.ls[0] + f * g.ls[1] + (2 * h + q) * g.ls[2]
        + (2 * w + r) * g.ls[3];
    dit_cuda_st (tok, dtt, t * g.ldt + col, dit_cuda_ld (lat, dtl, lo));
  }
}

__global__ void
unpatchify_kernel (const void *tok, int dtt, void *lat, int dtl, patch_geom g)
{
  const int64_t hh = g.H / 2, ww = g.W / 2, cols = 4 * g.C;
  DIT_CUDA_GRID_LOOP (i, g.F * hh * ww * cols) {
    int64_t t = i / cols, col = i % cols;
    int64_t qr = col / g.C, c = col % g.C, q = qr / 2, r = qr % 2;
    int64_t f = t / (hh * ww), h = (t / ww) % hh, w = t % ww;
    int64_t lo = c * g.ls[0] + f * g.ls[1] + (2 * h + q) * g.ls[2]
        + (2 * w + r) * g.ls[3];
    dit_cuda_st (lat, dtl, lo, dit_cuda_ld (tok, dtt, t * g.ldt + col));
  }
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

static dit_status
patch_geometry (const char *op, const dit_tensor *lat, const dit_tensor *tok,
    patch_geom *g)
{
  int64_t rows, cols;
  DIT_TRY (dit_cuda_check_tensor (op, "latent", lat));
  DIT_TRY (dit_cuda_rows (op, "tokens", tok, &rows, &cols, &g->ldt));
  if (lat->ndim != 4)
    return dit_error (DIT_ERR_INVALID, "%s: latent must be [C, F, H, W], has "
        "%d dimensions", op, lat->ndim);
  g->C = lat->shape[0];
  g->F = lat->shape[1];
  g->H = lat->shape[2];
  g->W = lat->shape[3];
  for (int d = 0; d < 4; d++)
    g->ls[d] = lat->stride[d];
  if (g->H % 2 || g->W % 2)
    return dit_error (DIT_ERR_INVALID, "%s: latent H x W = %lld x %lld must "
        "be even", op, (long long) g->H, (long long) g->W);
  int64_t want_rows = g->F * (g->H / 2) * (g->W / 2);
  if (rows != want_rows || cols != 4 * g->C)
    return dit_error (DIT_ERR_INVALID, "%s: tokens are [%lld, %lld], latent "
        "[%lld, %lld, %lld, %lld] needs [%lld, %lld]", op, (long long) rows,
        (long long) cols, (long long) g->C, (long long) g->F,
        (long long) g->H, (long long) g->W, (long long) want_rows,
        (long long) (4 * g->C));
  return DIT_OK;
}

dit_status
dit_cuda_patchify (dit_backend *be, const dit_patchify_params *p)
{
  patch_geom g;
  DIT_TRY (patch_geometry ("patchify", p->latent, p->tokens, &g));
  int64_t n = g.F * (g.H / 2) * (g.W / 2) * 4 * g.C;
  if (n == 0)
    return DIT_OK;
  patchify_kernel<<<dit_cuda_grid_1d (n, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> (p->latent->data, p->latent->dtype,
      p->tokens->data, p->tokens->dtype, g);
  DIT_CUDA_CHECK_LAUNCH ("patchify_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_unpatchify (dit_backend *be, const dit_unpatchify_params *p)
{
  patch_geom g;
  DIT_TRY (patch_geometry ("unpatchify", p->latent, p->tokens, &g));
  int64_t n = g.F * (g.H / 2) * (g.W / 2) * 4 * g.C;
  if (n == 0)
    return DIT_OK;
  unpatchify_kernel<<<dit_cuda_grid_1d (n, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> (p->tokens->data, p->tokens->dtype,
      p->latent->data, p->latent->dtype, g);
  DIT_CUDA_CHECK_LAUNCH ("unpatchify_kernel");
  return DIT_OK;
}
