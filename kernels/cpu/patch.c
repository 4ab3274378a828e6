/* patch — the (1, 2, 2) patch gather before the patch-embedding GEMM and
 * the unpatchify scatter after the head.
 *
 * Layout: latent [C, F, H, W] (any strides, typically contiguous);
 * tokens [F*(H/2)*(W/2), 4*C] in token order (f, h, w).  The two column
 * orders differ on purpose, as in the reference (spec §2.2(1), §2.5):
 *   patchify:   column c*4 + q*2 + r   (channel slowest, = Conv3d weight
 *               [D, C, 1, 2, 2] flattened)
 *   unpatchify: column (q*2 + r)*C + c (channel fastest)
 * for latent pixel (2h+q, 2w+r).  Pure data movement with dtype conversion.
 */
#include "cpu_internal.h"

static dit_status
patch_check (const char *op, const dit_tensor *lat, const dit_tensor *tok,
    dit_cpu_mat *tm)
{
  DIT_TRY (dit_cpu_check_tensor (lat, op, "latent"));
  if (lat->ndim != 4)
    return dit_error (DIT_ERR_INVALID, "%s: latent has %d dimensions, [C, F, H, "
        "W] expected", op, lat->ndim);
  int64_t C = lat->shape[0], F = lat->shape[1], H = lat->shape[2],
      W = lat->shape[3];
  if (H % 2 || W % 2)
    return dit_error (DIT_ERR_INVALID, "%s: latent height %lld and width %lld "
        "must be even", op, (long long) H, (long long) W);
  DIT_TRY (dit_cpu_as_mat_shape (tok, op, "tokens", F * (H / 2) * (W / 2),
      4 * C, tm));
  return DIT_OK;
}

static inline size_t
patch_lat_index (const dit_tensor *t, int64_t c, int64_t f, int64_t y, int64_t x)
{
  return (size_t) (c * t->stride[0] + f * t->stride[1] + y * t->stride[2]
      + x * t->stride[3]);
}

dit_status
dit_cpu_patchify (dit_backend *be, const dit_patchify_params *p)
{
  dit_cpu_mat tm;
  DIT_TRY (patch_check ("patchify", p->latent, p->tokens, &tm));
  const dit_tensor *lat = p->latent;
  int64_t C = lat->shape[0], F = lat->shape[1], H2 = lat->shape[2] / 2,
      W2 = lat->shape[3] / 2;
  for (int64_t f = 0; f < F; f++)
    for (int64_t h = 0; h < H2; h++)
      for (int64_t w = 0; w < W2; w++) {
        void *dst = dit_cpu_row (&tm, (f * H2 + h) * W2 + w);
        for (int64_t c = 0; c < C; c++)
          for (int q = 0; q < 2; q++)
            for (int r = 0; r < 2; r++) {
              float v = dit_load_f32 (lat->data, lat->dtype,
                  patch_lat_index (lat, c, f, 2 * h + q, 2 * w + r));
              dit_store_f32 (dst, tm.dtype, (size_t) (c * 4 + q * 2 + r), v);
            }
      }
  return DIT_OK;
}

dit_status
dit_cpu_unpatchify (dit_backend *be, const dit_unpatchify_params *p)
{
  dit_cpu_mat tm;
  DIT_TRY (patch_check ("unpatchify", p->latent, p->tokens, &tm));
  const dit_tensor *lat = p->latent;
  int64_t C = lat->shape[0], F = lat->shape[1], H2 = lat->shape[2] / 2,
      W2 = lat->shape[3] / 2;
  for (int64_t f = 0; f < F; f++)
    for (int64_t h = 0; h < H2; h++)
      for (int64_t w = 0; w < W2; w++) {
        const void *src = dit_cpu_row (&tm, (f * H2 + h) * W2 + w);
        for (int q = 0; q < 2; q++)
          for (int r = 0; r < 2; r++)
            for (int64_t c = 0; c < C; c++) {
              float v = dit_load_f32 (src, tm.dtype, (size_t) ((q * 2 + r) * C + c));
              dit_store_f32 (lat->data, lat->dtype,
                  patch_lat_index (lat, c, f, 2 * h + q, 2 * w + r), v);
            }
      }
  return DIT_OK;
}
