/* vae_misc — the small WanVAE ops on CUDA and the CUDA VAE op table.
 *
 * - norm: WanVAE RMS_norm over the channel axis, one warp per row; the sum
 *   of squares in f64 like the CPU op, y = x * ((float) (1 / max(||x||,
 *   1e-12)) * sqrt(C)) * gamma, then SiLU when asked (every residual branch
 *   and the head run norm -> SiLU -> conv, so the fused form saves a pass).
 * - upsample (nearest x2 per frame), copy_frames (cache hand-off with dtype
 *   conversion) and layout ([C, T, H, W] <-> [T, H, W, C] with per-channel
 *   affine, soft (tanh) clamp and clamp): one thread per output element.
 * - pixel conversion: packed RGB / I420 / NV12 bytes in device memory <->
 *   [3, H, W] tensors, the arithmetic of kernels/cpu/pixels.c written with
 *   explicit round-to-nearest intrinsics so that no multiply-add is fused
 *   and the results (bytes and tensor values) match the CPU op.
 * Layout rules are those of kernels/dit_vae_ops.h; arithmetic in f32,
 * storage in any dtype.
 */
#include "vae_cuda.cuh"

/* ---------------------------------------------------------------------------
 * norm */

__global__ void
vae_norm_kernel (const void *x, int xdt, int64_t xs0, int64_t xld,
    const void *gamma, int gdt, void *y, int ydt, int64_t ys0, int64_t yld,
    int64_t rows, int64_t rows_per_frame, int c, int silu)
{
  const int lane = threadIdx.x & 31;
  const int64_t r = (int64_t) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= rows)
    return;
  const int64_t f = r / rows_per_frame, i = r % rows_per_frame;
  const int64_t xo = f * xs0 + i * xld, yo = f * ys0 + i * yld;
  double ss = 0.0;
  for (int k = lane; k < c; k += 32) {
    const double v = dit_cuda_ld (x, xdt, xo + k);
    ss += v * v;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    ss += __shfl_xor_sync (0xffffffffu, ss, o);
  double nrm = sqrt (ss);
  if (nrm < 1e-12)
    nrm = 1e-12;
  const float inv = __fmul_rn ((float) (1.0 / nrm), sqrtf ((float) c));
  for (int k = lane; k < c; k += 32) {
    float v = __fmul_rn (__fmul_rn (dit_cuda_ld (x, xdt, xo + k), inv),
        dit_cuda_ld (gamma, gdt, k));
    if (silu)
      v = v / (1.0f + expf (-v));
    dit_cuda_st (y, ydt, yo + k, v);
  }
}

/* Rows of C channels: a frame tensor [T, H, W, C] or a 2-D [N, C] view. */
static dit_status
vae_rows_view (const dit_tensor *t, const char *name, int64_t *rpf,
    int64_t *frames, int64_t *s0, int64_t *ld, int64_t *c)
{
  if (t && t->ndim == 4) {
    int64_t d[4];
    DIT_TRY (dit_cuda_vae_check_frames (t, "norm", name, d));
    *frames = d[0];
    *rpf = d[1] * d[2];
    *s0 = t->stride[0];
    *ld = d[3];
    *c = d[3];
    return DIT_OK;
  }
  int64_t rows;
  DIT_TRY (dit_cuda_rows ("vae norm", name, t, &rows, c, ld));
  *frames = 1;
  *rpf = rows;
  *s0 = 0;
  return DIT_OK;
}

dit_status
dit_cuda_vae_norm (dit_backend *be, const dit_vae_norm_params *p)
{
  int64_t xrpf, xf, xs0, xld, xc, yrpf, yf, ys0, yld, yc;
  DIT_TRY (vae_rows_view (p->x, "x", &xrpf, &xf, &xs0, &xld, &xc));
  DIT_TRY (vae_rows_view (p->y, "y", &yrpf, &yf, &ys0, &yld, &yc));
  if (xrpf * xf != yrpf * yf || xc != yc || xrpf != yrpf)
    return dit_error (DIT_ERR_INVALID, "vae norm: x (%lld rows x %lld) and y "
        "(%lld rows x %lld) differ", (long long) (xrpf * xf), (long long) xc,
        (long long) (yrpf * yf), (long long) yc);
  DIT_TRY (dit_cuda_check_vector ("vae norm", "gamma", p->gamma, xc));
  const int64_t rows = xrpf * xf;
  if (rows == 0)
    return DIT_OK;
  vae_norm_kernel<<<(unsigned) ((rows + 7) / 8), 256, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype, xs0, xld,
      p->gamma->data, p->gamma->dtype, p->y->data, p->y->dtype, ys0, yld,
      rows, xrpf, (int) xc, p->silu);
  DIT_CUDA_CHECK_LAUNCH ("vae_norm_kernel");
  return DIT_OK;
}

/* ---------------------------------------------------------------------------
 * upsample, copy_frames */

__global__ void
vae_upsample_kernel (const void *x, int xdt, int64_t xs0, void *y, int ydt,
    int64_t ys0, int64_t T, int64_t H2, int64_t W2, int64_t C)
{
  const int64_t n = T * H2 * W2 * C;
  DIT_CUDA_GRID_LOOP (e, n) {
    int64_t c = e % C, q = e / C;
    int64_t j = q % W2, q2 = q / W2;
    int64_t i = q2 % H2, t = q2 / H2;
    int64_t src = t * xs0 + ((i / 2) * (W2 / 2) + j / 2) * C + c;
    int64_t dst = t * ys0 + (i * W2 + j) * C + c;
    dit_cuda_st (y, ydt, dst, dit_cuda_ld (x, xdt, src));
  }
}

dit_status
dit_cuda_vae_upsample (dit_backend *be, const dit_vae_upsample_params *p)
{
  int64_t xd[4], yd[4];
  DIT_TRY (dit_cuda_vae_check_frames (p->x, "upsample", "x", xd));
  DIT_TRY (dit_cuda_vae_check_frames (p->y, "upsample", "y", yd));
  if (yd[0] != xd[0] || yd[1] != 2 * xd[1] || yd[2] != 2 * xd[2]
      || yd[3] != xd[3])
    return dit_error (DIT_ERR_INVALID, "vae upsample: y [%lld, %lld, %lld, "
        "%lld] is not x [%lld, %lld, %lld, %lld] with H, W doubled",
        (long long) yd[0], (long long) yd[1], (long long) yd[2],
        (long long) yd[3], (long long) xd[0], (long long) xd[1],
        (long long) xd[2], (long long) xd[3]);
  const int64_t n = yd[0] * yd[1] * yd[2] * yd[3];
  vae_upsample_kernel<<<dit_cuda_grid_1d (n, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> (p->x->data, p->x->dtype,
      p->x->stride[0], p->y->data, p->y->dtype, p->y->stride[0], yd[0], yd[1],
      yd[2], yd[3]);
  DIT_CUDA_CHECK_LAUNCH ("vae_upsample_kernel");
  return DIT_OK;
}

__global__ void
vae_copy_frames_kernel (const void *x, int xdt, int64_t xs0, void *y, int ydt,
    int64_t ys0, int64_t T, int64_t fn)
{
  DIT_CUDA_GRID_LOOP (e, T * fn) {
    int64_t t = e / fn, i = e % fn;
    dit_cuda_st (y, ydt, t * ys0 + i, dit_cuda_ld (x, xdt, t * xs0 + i));
  }
}

dit_status
dit_cuda_vae_copy_frames (dit_backend *be, const dit_vae_copy_frames_params *p)
{
  int64_t xd[4], yd[4];
  DIT_TRY (dit_cuda_vae_check_frames (p->x, "copy_frames", "x", xd));
  DIT_TRY (dit_cuda_vae_check_frames (p->y, "copy_frames", "y", yd));
  if (memcmp (xd, yd, sizeof xd) != 0)
    return dit_error (DIT_ERR_INVALID, "vae copy_frames: shapes differ "
        "([%lld, %lld, %lld, %lld] vs [%lld, %lld, %lld, %lld])",
        (long long) xd[0], (long long) xd[1], (long long) xd[2],
        (long long) xd[3], (long long) yd[0], (long long) yd[1],
        (long long) yd[2], (long long) yd[3]);
  if (p->x->data == p->y->data && p->x->dtype == p->y->dtype
      && p->x->stride[0] == p->y->stride[0])
    return DIT_OK;
  const int64_t fn = xd[1] * xd[2] * xd[3];
  cudaStream_t s = dit_cuda_impl (be)->stream;
  if (p->x->dtype == p->y->dtype) {
    /* frame by frame, so a one-frame shift inside a cache (distinct frames
     * of one buffer) is a plain device copy */
    const size_t es = dit_dtype_size (p->x->dtype);
    for (int64_t t = 0; t < xd[0]; t++)
      DIT_CUDA_TRY (cudaMemcpyAsync ((char *) p->y->data
          + (size_t) (t * p->y->stride[0]) * es, (const char *) p->x->data
          + (size_t) (t * p->x->stride[0]) * es, (size_t) fn * es,
          cudaMemcpyDeviceToDevice, s));
    return DIT_OK;
  }
  vae_copy_frames_kernel<<<dit_cuda_grid_1d (xd[0] * fn, 256), 256, 0, s>>> (
      p->x->data, p->x->dtype, p->x->stride[0], p->y->data, p->y->dtype,
      p->y->stride[0], xd[0], fn);
  DIT_CUDA_CHECK_LAUNCH ("vae_copy_frames_kernel");
  return DIT_OK;
}

/* ---------------------------------------------------------------------------
 * layout */

typedef struct vae_layout_args {
  const void *x;
  void *y;
  int xdt, ydt, to_cl, affine, clamp;
  float lo, hi, soft;
  int64_t T, H, W, C;
  int64_t cf_s0, cf_s1, cf_s2;  /* channels-first strides (c, t, h) */
  int64_t cl_s0;                /* channels-last frame stride */
  float scale[DIT_VAE_MAX_AFFINE], shift[DIT_VAE_MAX_AFFINE];
} vae_layout_args;

__global__ void
vae_layout_kernel (vae_layout_args a)
{
  const int64_t n = a.T * a.H * a.W * a.C;
  DIT_CUDA_GRID_LOOP (e, n) {
    /* e walks the output in its own memory order */
    int64_t c, t, h, w;
    if (a.to_cl) {
      c = e % a.C;
      int64_t q = e / a.C;
      w = q % a.W; q /= a.W;
      h = q % a.H; t = q / a.H;
    } else {
      w = e % a.W;
      int64_t q = e / a.W;
      h = q % a.H; q /= a.H;
      t = q % a.T; c = q / a.T;
    }
    const int64_t icf = c * a.cf_s0 + t * a.cf_s1 + h * a.cf_s2 + w;
    const int64_t icl = t * a.cl_s0 + (h * a.W + w) * a.C + c;
    float v = dit_cuda_ld (a.x, a.xdt, a.to_cl ? icf : icl);
    if (a.affine)
      v = __fadd_rn (__fmul_rn (v, a.scale[c]), a.shift[c]);
    if (a.soft > 0.0f)
      v = a.soft * tanhf (v / a.soft);
    if (a.clamp)
      v = v < a.lo ? a.lo : (v > a.hi ? a.hi : v);
    dit_cuda_st (a.y, a.ydt, a.to_cl ? icl : icf, v);
  }
}

dit_status
dit_cuda_vae_layout (dit_backend *be, const dit_vae_layout_params *p)
{
  const dit_tensor *cf = p->to_channels_last ? p->x : p->y;
  const dit_tensor *cl = p->to_channels_last ? p->y : p->x;
  int64_t d[4];
  DIT_TRY (dit_cuda_vae_check_frames (cl, "layout",
      p->to_channels_last ? "y" : "x", d));
  if (!cf || !cf->data || cf->ndim != 4 || cf->device != DIT_DEVICE_CUDA
      || cf->stride[3] != 1)
    return dit_error (DIT_ERR_INVALID, "vae layout: the channels-first tensor "
        "must be a 4-D CUDA [C, T, H, W] view with contiguous rows");
  if (cf->shape[0] != d[3] || cf->shape[1] != d[0] || cf->shape[2] != d[1]
      || cf->shape[3] != d[2])
    return dit_error (DIT_ERR_INVALID, "vae layout: [C, T, H, W] = [%lld, "
        "%lld, %lld, %lld] does not match [T, H, W, C] = [%lld, %lld, %lld, "
        "%lld]", (long long) cf->shape[0], (long long) cf->shape[1],
        (long long) cf->shape[2], (long long) cf->shape[3], (long long) d[0],
        (long long) d[1], (long long) d[2], (long long) d[3]);
  if (p->affine && d[3] > DIT_VAE_MAX_AFFINE)
    return dit_error (DIT_ERR_INVALID, "vae layout: affine over %lld channels "
        "(max %d)", (long long) d[3], DIT_VAE_MAX_AFFINE);
  vae_layout_args a;
  memset (&a, 0, sizeof a);
  a.x = p->x->data;
  a.y = p->y->data;
  a.xdt = p->x->dtype;
  a.ydt = p->y->dtype;
  a.to_cl = p->to_channels_last;
  a.affine = p->affine;
  a.clamp = p->clamp;
  a.lo = p->clamp_lo;
  a.hi = p->clamp_hi;
  a.soft = p->soft_clamp;
  a.T = d[0]; a.H = d[1]; a.W = d[2]; a.C = d[3];
  a.cf_s0 = cf->stride[0];
  a.cf_s1 = cf->stride[1];
  a.cf_s2 = cf->stride[2];
  a.cl_s0 = cl->stride[0];
  if (p->affine)
    for (int c = 0; c < (int) d[3]; c++) {
      a.scale[c] = p->scale[c];
      a.shift[c] = p->shift[c];
    }
  const int64_t n = d[0] * d[1] * d[2] * d[3];
  vae_layout_kernel<<<dit_cuda_grid_1d (n, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("vae_layout_kernel");
  return DIT_OK;
}

/* ---------------------------------------------------------------------------
 * pixels */

typedef struct vae_yuv_coef {
  float kr, kb, kg;
  float yoff, yrange, crange;
} vae_yuv_coef;

static vae_yuv_coef
vae_yuv_coef_get (dit_yuv_matrix m)
{
  vae_yuv_coef c;
  const int bt709 = m == DIT_YUV_BT709_LIMITED || m == DIT_YUV_BT709_FULL;
  const int full = m == DIT_YUV_BT601_FULL || m == DIT_YUV_BT709_FULL;
  c.kr = bt709 ? 0.2126f : 0.299f;
  c.kb = bt709 ? 0.0722f : 0.114f;
  c.kg = 1.0f - c.kr - c.kb;
  c.yoff = full ? 0.0f : 16.0f;
  c.yrange = full ? 255.0f : 219.0f;
  c.crange = full ? 255.0f : 224.0f;
  return c;
}

typedef struct vae_pix_args {
  int format, bpp, ro, go, bo;
  int width, height;
  uint8_t *plane[3];
  int64_t stride[3];
  void *t;
  int dt;
  int64_t ts0, ts1;
  vae_yuv_coef k;
} vae_pix_args;

__device__ __forceinline__ float
vae_pix_clamp1 (float v)
{
  return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
}

__device__ __forceinline__ uint8_t
vae_pix_byte (float v)
{
  v = floorf (__fadd_rn (v, 0.5f));
  return (uint8_t) (v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v));
}

__global__ void
vae_pixels_to_tensor_kernel (vae_pix_args a)
{
  const int64_t n = (int64_t) a.width * a.height;
  DIT_CUDA_GRID_LOOP (e, n) {
    const int64_t y = e / a.width, x = e % a.width;
    const int64_t o = y * a.ts1 + x;
    if (a.bpp) {
      const uint8_t *px = a.plane[0] + y * a.stride[0] + x * a.bpp;
      dit_cuda_st (a.t, a.dt, o, px[a.ro] / 127.5f - 1.0f);
      dit_cuda_st (a.t, a.dt, a.ts0 + o, px[a.go] / 127.5f - 1.0f);
      dit_cuda_st (a.t, a.dt, 2 * a.ts0 + o, px[a.bo] / 127.5f - 1.0f);
      continue;
    }
    const vae_yuv_coef k = a.k;
    int u8, v8;
    if (a.format == DIT_PIXEL_I420) {
      u8 = a.plane[1][(y / 2) * a.stride[1] + x / 2];
      v8 = a.plane[2][(y / 2) * a.stride[2] + x / 2];
    } else {
      const uint8_t *uv = a.plane[1] + (y / 2) * a.stride[1] + (x / 2) * 2;
      u8 = uv[0];
      v8 = uv[1];
    }
    const uint8_t yb = a.plane[0][y * a.stride[0] + x];
    const float yl = ((float) yb - k.yoff) / k.yrange;
    const float pb = ((float) u8 - 128.0f) / k.crange;
    const float pr = ((float) v8 - 128.0f) / k.crange;
    const float r = __fadd_rn (yl, __fmul_rn (__fmul_rn (2.0f, 1.0f - k.kr), pr));
    const float b = __fadd_rn (yl, __fmul_rn (__fmul_rn (2.0f, 1.0f - k.kb), pb));
    const float g = __fsub_rn (__fsub_rn (yl, __fmul_rn (k.kr, r)),
        __fmul_rn (k.kb, b)) / k.kg;
    dit_cuda_st (a.t, a.dt, o, vae_pix_clamp1 (__fsub_rn (__fmul_rn (2.0f, r), 1.0f)));
    dit_cuda_st (a.t, a.dt, a.ts0 + o, vae_pix_clamp1 (__fsub_rn (__fmul_rn (2.0f, g), 1.0f)));
    dit_cuda_st (a.t, a.dt, 2 * a.ts0 + o, vae_pix_clamp1 (__fsub_rn (__fmul_rn (2.0f, b), 1.0f)));
  }
}

__device__ __forceinline__ float
vae_pix_01 (const vae_pix_args &a, int c, int64_t y, int64_t x)
{
  return __fmul_rn (__fadd_rn (vae_pix_clamp1 (dit_cuda_ld (a.t, a.dt,
      c * a.ts0 + y * a.ts1 + x)), 1.0f), 0.5f);
}

__global__ void
vae_tensor_to_pixels_kernel (vae_pix_args a)
{
  if (a.bpp) {
    const int64_t n = (int64_t) a.width * a.height;
    DIT_CUDA_GRID_LOOP (e, n) {
      const int64_t y = e / a.width, x = e % a.width;
      uint8_t *px = a.plane[0] + y * a.stride[0] + x * a.bpp;
      px[a.ro] = vae_pix_byte (__fmul_rn (vae_pix_01 (a, 0, y, x), 255.0f));
      px[a.go] = vae_pix_byte (__fmul_rn (vae_pix_01 (a, 1, y, x), 255.0f));
      px[a.bo] = vae_pix_byte (__fmul_rn (vae_pix_01 (a, 2, y, x), 255.0f));
      if (a.bpp == 4)
        px[3] = 255;
    }
    return;
  }
  const vae_yuv_coef k = a.k;
  const int64_t bw = a.width / 2, n = bw * (a.height / 2);
  DIT_CUDA_GRID_LOOP (e, n) {
    const int64_t y = (e / bw) * 2, x = (e % bw) * 2;
    float pb = 0.0f, pr = 0.0f;
    for (int dy = 0; dy < 2; dy++)
      for (int dx = 0; dx < 2; dx++) {
        const float r = vae_pix_01 (a, 0, y + dy, x + dx);
        const float g = vae_pix_01 (a, 1, y + dy, x + dx);
        const float b = vae_pix_01 (a, 2, y + dy, x + dx);
        const float yl = __fadd_rn (__fadd_rn (__fmul_rn (k.kr, r),
            __fmul_rn (k.kg, g)), __fmul_rn (k.kb, b));
        a.plane[0][(y + dy) * a.stride[0] + x + dx] =
            vae_pix_byte (__fadd_rn (k.yoff, __fmul_rn (k.yrange, yl)));
        pb = __fadd_rn (pb, __fsub_rn (b, yl) / __fmul_rn (2.0f, 1.0f - k.kb));
        pr = __fadd_rn (pr, __fsub_rn (r, yl) / __fmul_rn (2.0f, 1.0f - k.kr));
      }
    const uint8_t u8 = vae_pix_byte (__fadd_rn (128.0f,
        __fmul_rn (__fmul_rn (k.crange, pb), 0.25f)));
    const uint8_t v8 = vae_pix_byte (__fadd_rn (128.0f,
        __fmul_rn (__fmul_rn (k.crange, pr), 0.25f)));
    if (a.format == DIT_PIXEL_I420) {
      a.plane[1][(y / 2) * a.stride[1] + x / 2] = u8;
      a.plane[2][(y / 2) * a.stride[2] + x / 2] = v8;
    } else {
      uint8_t *uv = a.plane[1] + (y / 2) * a.stride[1] + x;
      uv[0] = u8;
      uv[1] = v8;
    }
  }
}

static dit_status
vae_pixels_setup (const dit_vae_pixels_params *p, const char *op,
    vae_pix_args *a)
{
  const dit_tensor *t = p->tensor;
  if (p->width <= 0 || p->height <= 0)
    return dit_error (DIT_ERR_INVALID, "%s: frame size %dx%d", op, p->width,
        p->height);
  if ((int) p->format < 0 || p->format > DIT_PIXEL_NV12)
    return dit_error (DIT_ERR_INVALID, "%s: unknown pixel format %d", op,
        (int) p->format);
  if ((int) p->matrix < 0 || p->matrix > DIT_YUV_BT709_FULL)
    return dit_error (DIT_ERR_INVALID, "%s: unknown YUV matrix %d", op,
        (int) p->matrix);
  if (!t || !t->data || t->device != DIT_DEVICE_CUDA || t->ndim != 3
      || t->stride[2] != 1)
    return dit_error (DIT_ERR_INVALID, "%s: tensor must be a 3-D CUDA "
        "[3, H, W] view with contiguous rows", op);
  if (t->shape[0] != 3 || t->shape[1] != p->height || t->shape[2] != p->width)
    return dit_error (DIT_ERR_INVALID, "%s: tensor [%lld, %lld, %lld] does "
        "not match a %dx%d frame (expected [3, %d, %d])", op,
        (long long) t->shape[0], (long long) t->shape[1],
        (long long) t->shape[2], p->width, p->height, p->height, p->width);
  const int bpp = dit_pixel_format_bpp (p->format);
  const int planes = bpp ? 1 : (p->format == DIT_PIXEL_I420 ? 3 : 2);
  if (!bpp && (p->width % 2 || p->height % 2))
    return dit_error (DIT_ERR_INVALID, "%s: %s needs an even frame size (got "
        "%dx%d)", op, dit_pixel_format_name (p->format), p->width, p->height);
  memset (a, 0, sizeof *a);
  for (int i = 0; i < planes; i++) {
    int64_t row = bpp ? (int64_t) p->width * bpp : (i == 0 ? p->width
        : (p->format == DIT_PIXEL_NV12 ? p->width : p->width / 2));
    if (!p->plane[i])
      return dit_error (DIT_ERR_INVALID, "%s: %s plane %d is NULL", op,
          dit_pixel_format_name (p->format), i);
    if (p->stride[i] < row)
      return dit_error (DIT_ERR_INVALID, "%s: %s plane %d stride %lld is less "
          "than a row (%lld bytes)", op, dit_pixel_format_name (p->format), i,
          (long long) p->stride[i], (long long) row);
    a->plane[i] = p->plane[i];
    a->stride[i] = p->stride[i];
  }
  const int bgr = p->format == DIT_PIXEL_BGR || p->format == DIT_PIXEL_BGRA
      || p->format == DIT_PIXEL_BGRX;
  a->format = p->format;
  a->bpp = bpp;
  a->ro = bgr ? 2 : 0;
  a->go = 1;
  a->bo = bgr ? 0 : 2;
  a->width = p->width;
  a->height = p->height;
  a->t = t->data;
  a->dt = t->dtype;
  a->ts0 = t->stride[0];
  a->ts1 = t->stride[1];
  a->k = vae_yuv_coef_get (p->matrix);
  return DIT_OK;
}

dit_status
dit_cuda_pixels_to_tensor (dit_backend *be, const dit_vae_pixels_params *p)
{
  vae_pix_args a;
  DIT_TRY (vae_pixels_setup (p, "pixels_to_tensor", &a));
  vae_pixels_to_tensor_kernel<<<dit_cuda_grid_1d ((int64_t) a.width
      * a.height, 256), 256, 0, dit_cuda_impl (be)->stream>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("vae_pixels_to_tensor_kernel");
  return DIT_OK;
}

dit_status
dit_cuda_tensor_to_pixels (dit_backend *be, const dit_vae_pixels_params *p)
{
  vae_pix_args a;
  DIT_TRY (vae_pixels_setup (p, "tensor_to_pixels", &a));
  vae_tensor_to_pixels_kernel<<<dit_cuda_grid_1d ((int64_t) a.width
      * a.height, 256), 256, 0, dit_cuda_impl (be)->stream>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("vae_tensor_to_pixels_kernel");
  return DIT_OK;
}

/* ---------------------------------------------------------------------------
 * op table */

const dit_vae_op_table dit_cuda_vae_ops = {
  dit_cuda_vae_conv,
  dit_cuda_vae_norm,
  dit_cuda_vae_upsample,
  dit_cuda_vae_copy_frames,
  dit_cuda_vae_layout,
  dit_cuda_pixels_to_tensor,
  dit_cuda_tensor_to_pixels,
};
