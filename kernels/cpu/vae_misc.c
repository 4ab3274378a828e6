/* vae_misc — the small WanVAE ops on the CPU and the CPU VAE op table.
 *
 * - norm: WanVAE RMS_norm over the channel axis.  The reference calls
 *   F.normalize (x / max(||x||_2, 1e-12)) then scales by sqrt(C) and gamma;
 *   that is x * rsqrt(mean(x^2)) * gamma except for all-zero vectors, and
 *   the eps placement is kept exact.  Optional fused SiLU, since every
 *   residual branch and the head do norm -> SiLU -> conv.
 * - upsample: nearest x2 per frame (the reference's "nearest-exact" equals
 *   "nearest" for a factor of 2).
 * - copy_frames: frame copies with dtype conversion (cache hand-off).
 * - layout: [C, T, H, W] <-> [T, H, W, C] with per-channel affine, soft
 *   (tanh) clamp and clamp (latent (de)normalisation, decoder output clamp,
 *   TAEHV's pixel range and input clamp).
 * Layout rules are those of kernels/dit_vae_ops.h.  Arithmetic in f32
 * (the norm's sum of squares in f64, so the statistic does not depend on
 * the channel count's rounding), storage in any dtype.
 */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * norm */

typedef struct dit_vae_norm_job {
  const char *x;
  char *y;
  const char *gamma;
  dit_dtype xdt, ydt, gdt;
  int64_t rows_per_frame, xs0, ys0, xld, yld, c;
  int64_t rows;
  int silu;
} dit_vae_norm_job;

#define DIT_VAE_NORM_BLOCK 64

static void
dit_vae_norm_block (void *ctx, int64_t task)
{
  const dit_vae_norm_job *j = (const dit_vae_norm_job *) ctx;
  const size_t xe = dit_dtype_size (j->xdt), ye = dit_dtype_size (j->ydt);
  const float scale_c = sqrtf ((float) j->c);
  const int64_t r1 = (task + 1) * DIT_VAE_NORM_BLOCK < j->rows
      ? (task + 1) * DIT_VAE_NORM_BLOCK : j->rows;
  for (int64_t r = task * DIT_VAE_NORM_BLOCK; r < r1; r++) {
    const int64_t f = r / j->rows_per_frame, i = r % j->rows_per_frame;
    const char *xr = j->x + (size_t) (f * j->xs0 + i * j->xld) * xe;
    char *yr = j->y + (size_t) (f * j->ys0 + i * j->yld) * ye;
    double ss = 0.0;
    for (int64_t c = 0; c < j->c; c++) {
      const double v = dit_load_f32 (xr, j->xdt, (size_t) c);
      ss += v * v;
    }
    double nrm = sqrt (ss);
    if (nrm < 1e-12)
      nrm = 1e-12;
    const float inv = (float) (1.0 / nrm) * scale_c;
    for (int64_t c = 0; c < j->c; c++) {
      float v = dit_load_f32 (xr, j->xdt, (size_t) c) * inv
          * dit_load_f32 (j->gamma, j->gdt, (size_t) c);
      if (j->silu)
        v = dit_cpu_silu (v);
      dit_store_f32 (yr, j->ydt, (size_t) c, v);
    }
  }
}

/* Rows of C channels: a 2-D [N, C] view or a frame tensor [T, H, W, C]. */
static dit_status
dit_vae_rows_view (const dit_tensor *t, const char *op, const char *name,
    int64_t *rows_per_frame, int64_t *frames, int64_t *s0, int64_t *ld,
    int64_t *c)
{
  if (t && t->ndim == 4) {
    int64_t d[4];
    DIT_TRY (dit_cpu_vae_check_frames (t, op, name, d));
    *frames = d[0];
    *rows_per_frame = d[1] * d[2];
    *s0 = t->stride[0];
    *ld = d[3];
    *c = d[3];
    return DIT_OK;
  }
  dit_cpu_mat m;
  DIT_TRY (dit_cpu_as_mat (t, op, name, &m));
  *frames = 1;
  *rows_per_frame = m.rows;
  *s0 = 0;
  *ld = m.ld;
  *c = m.cols;
  return DIT_OK;
}

dit_status
dit_cpu_vae_norm (dit_backend *be, const dit_vae_norm_params *p)
{
  int64_t xrpf, xf, xs0, xld, xc, yrpf, yf, ys0, yld, yc;
  DIT_TRY (dit_vae_rows_view (p->x, "norm", "x", &xrpf, &xf, &xs0, &xld, &xc));
  DIT_TRY (dit_vae_rows_view (p->y, "norm", "y", &yrpf, &yf, &ys0, &yld, &yc));
  if (xrpf * xf != yrpf * yf || xc != yc || xrpf != yrpf)
    return dit_error (DIT_ERR_INVALID, "vae norm: x (%lld rows x %lld) and y "
        "(%lld rows x %lld) differ", (long long) (xrpf * xf), (long long) xc,
        (long long) (yrpf * yf), (long long) yc);
  dit_cpu_mat g;
  DIT_TRY (dit_cpu_as_vec (p->gamma, "vae norm", "gamma", xc, &g));
  dit_vae_norm_job j = {
    .x = (const char *) p->x->data, .y = (char *) p->y->data,
    .gamma = g.data, .xdt = p->x->dtype, .ydt = p->y->dtype, .gdt = g.dtype,
    .rows_per_frame = xrpf, .xs0 = xs0, .ys0 = ys0, .xld = xld, .yld = yld,
    .c = xc, .rows = xrpf * xf, .silu = p->silu,
  };
  dit_cpu_parallel ((j.rows + DIT_VAE_NORM_BLOCK - 1) / DIT_VAE_NORM_BLOCK,
      dit_vae_norm_block, &j);
  return DIT_OK;
}

/* ---------------------------------------------------------------------------
 * upsample, copy_frames */

dit_status
dit_cpu_vae_upsample (dit_backend *be, const dit_vae_upsample_params *p)
{
  int64_t xd[4], yd[4];
  DIT_TRY (dit_cpu_vae_check_frames (p->x, "upsample", "x", xd));
  DIT_TRY (dit_cpu_vae_check_frames (p->y, "upsample", "y", yd));
  if (yd[0] != xd[0] || yd[1] != 2 * xd[1] || yd[2] != 2 * xd[2] || yd[3] != xd[3])
    return dit_error (DIT_ERR_INVALID, "vae upsample: y [%lld, %lld, %lld, %lld] "
        "is not x [%lld, %lld, %lld, %lld] with H, W doubled",
        (long long) yd[0], (long long) yd[1], (long long) yd[2], (long long) yd[3],
        (long long) xd[0], (long long) xd[1], (long long) xd[2], (long long) xd[3]);
  const size_t xe = dit_dtype_size (p->x->dtype), ye = dit_dtype_size (p->y->dtype);
  const int64_t c = xd[3];
  for (int64_t t = 0; t < yd[0]; t++)
    for (int64_t i = 0; i < yd[1]; i++)
      for (int64_t jx = 0; jx < yd[2]; jx++) {
        const char *src = (const char *) p->x->data
            + (size_t) (t * p->x->stride[0] + ((i / 2) * xd[2] + jx / 2) * c) * xe;
        char *dst = (char *) p->y->data
            + (size_t) (t * p->y->stride[0] + (i * yd[2] + jx) * c) * ye;
        if (p->x->dtype == p->y->dtype)
          memcpy (dst, src, (size_t) c * xe);
        else
          dit_convert (dst, p->y->dtype, src, p->x->dtype, (size_t) c);
      }
  return DIT_OK;
}

dit_status
dit_cpu_vae_copy_frames (dit_backend *be, const dit_vae_copy_frames_params *p)
{
  int64_t xd[4], yd[4];
  DIT_TRY (dit_cpu_vae_check_frames (p->x, "copy_frames", "x", xd));
  DIT_TRY (dit_cpu_vae_check_frames (p->y, "copy_frames", "y", yd));
  if (memcmp (xd, yd, sizeof xd) != 0)
    return dit_error (DIT_ERR_INVALID, "vae copy_frames: shapes differ "
        "([%lld, %lld, %lld, %lld] vs [%lld, %lld, %lld, %lld])",
        (long long) xd[0], (long long) xd[1], (long long) xd[2], (long long) xd[3],
        (long long) yd[0], (long long) yd[1], (long long) yd[2], (long long) yd[3]);
  const size_t n = (size_t) (xd[1] * xd[2] * xd[3]);
  const size_t xe = dit_dtype_size (p->x->dtype), ye = dit_dtype_size (p->y->dtype);
  for (int64_t t = 0; t < xd[0]; t++) {
    const char *src = (const char *) p->x->data + (size_t) (t * p->x->stride[0]) * xe;
    char *dst = (char *) p->y->data + (size_t) (t * p->y->stride[0]) * ye;
    if (src == dst && p->x->dtype == p->y->dtype)
      continue;
    if (p->x->dtype == p->y->dtype)
      memmove (dst, src, n * xe);
    else
      dit_convert (dst, p->y->dtype, src, p->x->dtype, n);
  }
  return DIT_OK;
}

/* ---------------------------------------------------------------------------
 * layout */

dit_status
dit_cpu_vae_layout (dit_backend *be, const dit_vae_layout_params *p)
{
  const dit_tensor *cf = p->to_channels_last ? p->x : p->y;
  const dit_tensor *cl = p->to_channels_last ? p->y : p->x;
  int64_t d[4];
  DIT_TRY (dit_cpu_vae_check_frames (cl, "layout",
      p->to_channels_last ? "y" : "x", d));
  if (!cf || !cf->data || cf->ndim != 4 || cf->device != DIT_DEVICE_CPU
      || cf->stride[3] != 1)
    return dit_error (DIT_ERR_INVALID, "vae layout: the channels-first tensor "
        "must be a 4-D CPU [C, T, H, W] view with contiguous rows");
  if (cf->shape[0] != d[3] || cf->shape[1] != d[0] || cf->shape[2] != d[1]
      || cf->shape[3] != d[2])
    return dit_error (DIT_ERR_INVALID, "vae layout: [C, T, H, W] = [%lld, %lld, "
        "%lld, %lld] does not match [T, H, W, C] = [%lld, %lld, %lld, %lld]",
        (long long) cf->shape[0], (long long) cf->shape[1],
        (long long) cf->shape[2], (long long) cf->shape[3], (long long) d[0],
        (long long) d[1], (long long) d[2], (long long) d[3]);
  if (p->affine && d[3] > DIT_VAE_MAX_AFFINE)
    return dit_error (DIT_ERR_INVALID, "vae layout: affine over %lld channels "
        "(max %d)", (long long) d[3], DIT_VAE_MAX_AFFINE);
  const int64_t C = d[3];
  for (int64_t t = 0; t < d[0]; t++)
    for (int64_t h = 0; h < d[1]; h++)
      for (int64_t w = 0; w < d[2]; w++)
        for (int64_t c = 0; c < C; c++) {
          const size_t icf = (size_t) (c * cf->stride[0] + t * cf->stride[1]
              + h * cf->stride[2] + w);
          const size_t icl = (size_t) (t * cl->stride[0] + (h * d[2] + w) * C + c);
          const size_t is = p->to_channels_last ? icf : icl;
          const size_t id = p->to_channels_last ? icl : icf;
          float v = dit_load_f32 (p->x->data, p->x->dtype, is);
          if (p->affine)
            v = v * p->scale[c] + p->shift[c];
          if (p->soft_clamp > 0.0f)
            v = p->soft_clamp * tanhf (v / p->soft_clamp);
          if (p->clamp)
            v = v < p->clamp_lo ? p->clamp_lo : (v > p->clamp_hi ? p->clamp_hi : v);
          dit_store_f32 (p->y->data, p->y->dtype, id, v);
        }
  return DIT_OK;
}

/* ---------------------------------------------------------------------------
 * op table */

const dit_vae_op_table dit_cpu_vae_ops = {
  .conv = dit_cpu_vae_conv,
  .norm = dit_cpu_vae_norm,
  .upsample = dit_cpu_vae_upsample,
  .copy_frames = dit_cpu_vae_copy_frames,
  .layout = dit_cpu_vae_layout,
  .pixels_to_tensor = dit_cpu_pixels_to_tensor,
  .tensor_to_pixels = dit_cpu_tensor_to_pixels,
};
