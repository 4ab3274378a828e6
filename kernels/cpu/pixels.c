/* pixels — 8-bit video frames <-> VAE pixel tensors on the CPU.
 *
 * Tensor side: [3, H, W] R, G, B planes (channels first; any outer strides,
 * contiguous rows), values in [-1, 1] = 2 * (byte / 255) - 1, any dtype.
 * Frame side: packed RGB/BGR with or without a 4th byte, I420 and NV12, each
 * plane with its own byte stride (GStreamer buffers pad rows).
 *
 * YUV uses the matrix in the params, BT.601 limited range by default:
 *   Y' = 16 + 219 * (Kr R + Kg G + Kb B),  Cb = 128 + 224 * (B - Y) / (2 (1 - Kb)),
 *   Cr = 128 + 224 * (R - Y) / (2 (1 - Kr)),  R, G, B in [0, 1]
 * (full range: 255 for Y and for chroma).  Decoding inverts that exactly in
 * f32 and clamps to [-1, 1]; chroma is replicated over its 2x2 block.
 * Encoding averages the chroma of the four pixels of each block, rounds to
 * nearest and saturates.  Gray Y' = 16 gives -1 and Y' = 235 gives +1.
 */
#include "cpu_internal.h"

#include <math.h>

typedef struct dit_yuv_coef {
  float kr, kb, kg;
  float yoff, yrange, crange;
} dit_yuv_coef;

static dit_yuv_coef
dit_yuv_coef_get (dit_yuv_matrix m)
{
  dit_yuv_coef c;
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

static inline float
dit_pix_clamp1 (float v)
{
  return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
}

static inline uint8_t
dit_pix_byte (float v)
{
  v = floorf (v + 0.5f);
  return (uint8_t) (v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v));
}

static dit_status
dit_pixels_check (const dit_vae_pixels_params *p, const char *op)
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
  if (!t || !t->data || t->device != DIT_DEVICE_CPU || t->ndim != 3
      || t->stride[2] != 1)
    return dit_error (DIT_ERR_INVALID, "%s: tensor must be a 3-D CPU [3, H, W] "
        "view with contiguous rows", op);
  if (t->shape[0] != 3 || t->shape[1] != p->height || t->shape[2] != p->width)
    return dit_error (DIT_ERR_INVALID, "%s: tensor [%lld, %lld, %lld] does not "
        "match a %dx%d frame (expected [3, %d, %d])", op,
        (long long) t->shape[0], (long long) t->shape[1],
        (long long) t->shape[2], p->width, p->height, p->height, p->width);
  const int bpp = dit_pixel_format_bpp (p->format);
  const int planes = bpp ? 1 : (p->format == DIT_PIXEL_I420 ? 3 : 2);
  if (!bpp && (p->width % 2 || p->height % 2))
    return dit_error (DIT_ERR_INVALID, "%s: %s needs an even frame size (got "
        "%dx%d)", op, dit_pixel_format_name (p->format), p->width, p->height);
  for (int i = 0; i < planes; i++) {
    int64_t row = bpp ? (int64_t) p->width * bpp
        : (i == 0 ? p->width : (p->format == DIT_PIXEL_NV12 ? p->width : p->width / 2));
    if (!p->plane[i])
      return dit_error (DIT_ERR_INVALID, "%s: %s plane %d is NULL", op,
          dit_pixel_format_name (p->format), i);
    if (p->stride[i] < row)
      return dit_error (DIT_ERR_INVALID, "%s: %s plane %d stride %lld is less "
          "than a row (%lld bytes)", op, dit_pixel_format_name (p->format), i,
          (long long) p->stride[i], (long long) row);
  }
  return DIT_OK;
}

/* Byte offsets of R, G, B inside a packed pixel. */
static void
dit_pix_rgb_order (dit_pixel_format f, int *r, int *g, int *b)
{
  const int bgr = f == DIT_PIXEL_BGR || f == DIT_PIXEL_BGRA || f == DIT_PIXEL_BGRX;
  *r = bgr ? 2 : 0;
  *g = 1;
  *b = bgr ? 0 : 2;
}

static inline size_t
dit_pix_index (const dit_tensor *t, int c, int64_t y, int64_t x)
{
  return (size_t) (c * t->stride[0] + y * t->stride[1] + x);
}

dit_status
dit_cpu_pixels_to_tensor (dit_backend *be, const dit_vae_pixels_params *p)
{
  DIT_TRY (dit_pixels_check (p, "pixels_to_tensor"));
  const dit_tensor *t = p->tensor;
  const int bpp = dit_pixel_format_bpp (p->format);
  if (bpp) {
    int ro, go, bo;
    dit_pix_rgb_order (p->format, &ro, &go, &bo);
    for (int64_t y = 0; y < p->height; y++) {
      const uint8_t *row = p->plane[0] + y * p->stride[0];
      for (int64_t x = 0; x < p->width; x++) {
        const uint8_t *px = row + x * bpp;
        dit_store_f32 (t->data, t->dtype, dit_pix_index (t, 0, y, x), px[ro] / 127.5f - 1.0f);
        dit_store_f32 (t->data, t->dtype, dit_pix_index (t, 1, y, x), px[go] / 127.5f - 1.0f);
        dit_store_f32 (t->data, t->dtype, dit_pix_index (t, 2, y, x), px[bo] / 127.5f - 1.0f);
      }
    }
    return DIT_OK;
  }
  const dit_yuv_coef k = dit_yuv_coef_get (p->matrix);
  for (int64_t y = 0; y < p->height; y++) {
    const uint8_t *yrow = p->plane[0] + y * p->stride[0];
    for (int64_t x = 0; x < p->width; x++) {
      int u8, v8;
      if (p->format == DIT_PIXEL_I420) {
        u8 = p->plane[1][(y / 2) * p->stride[1] + x / 2];
        v8 = p->plane[2][(y / 2) * p->stride[2] + x / 2];
      } else {
        const uint8_t *uv = p->plane[1] + (y / 2) * p->stride[1] + (x / 2) * 2;
        u8 = uv[0];
        v8 = uv[1];
      }
      const float yl = ((float) yrow[x] - k.yoff) / k.yrange;
      const float pb = ((float) u8 - 128.0f) / k.crange;
      const float pr = ((float) v8 - 128.0f) / k.crange;
      const float r = yl + 2.0f * (1.0f - k.kr) * pr;
      const float b = yl + 2.0f * (1.0f - k.kb) * pb;
      const float g = (yl - k.kr * r - k.kb * b) / k.kg;
      dit_store_f32 (t->data, t->dtype, dit_pix_index (t, 0, y, x), dit_pix_clamp1 (2.0f * r - 1.0f));
      dit_store_f32 (t->data, t->dtype, dit_pix_index (t, 1, y, x), dit_pix_clamp1 (2.0f * g - 1.0f));
      dit_store_f32 (t->data, t->dtype, dit_pix_index (t, 2, y, x), dit_pix_clamp1 (2.0f * b - 1.0f));
    }
  }
  return DIT_OK;
}

/* RGB in [0, 1] of tensor pixel (y, x), clamped. */
static inline void
dit_pix_rgb01 (const dit_tensor *t, int64_t y, int64_t x, float rgb[3])
{
  for (int c = 0; c < 3; c++)
    rgb[c] = (dit_pix_clamp1 (dit_load_f32 (t->data, t->dtype,
        dit_pix_index (t, c, y, x))) + 1.0f) * 0.5f;
}

dit_status
dit_cpu_tensor_to_pixels (dit_backend *be, const dit_vae_pixels_params *p)
{
  DIT_TRY (dit_pixels_check (p, "tensor_to_pixels"));
  const dit_tensor *t = p->tensor;
  const int bpp = dit_pixel_format_bpp (p->format);
  if (bpp) {
    int ro, go, bo;
    dit_pix_rgb_order (p->format, &ro, &go, &bo);
    for (int64_t y = 0; y < p->height; y++) {
      uint8_t *row = p->plane[0] + y * p->stride[0];
      for (int64_t x = 0; x < p->width; x++) {
        uint8_t *px = row + x * bpp;
        float rgb[3];
        dit_pix_rgb01 (t, y, x, rgb);
        px[ro] = dit_pix_byte (rgb[0] * 255.0f);
        px[go] = dit_pix_byte (rgb[1] * 255.0f);
        px[bo] = dit_pix_byte (rgb[2] * 255.0f);
        if (bpp == 4)
          px[3] = 255;
      }
    }
    return DIT_OK;
  }
  const dit_yuv_coef k = dit_yuv_coef_get (p->matrix);
  for (int64_t y = 0; y < p->height; y += 2)
    for (int64_t x = 0; x < p->width; x += 2) {
      float pb = 0.0f, pr = 0.0f;
      for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
          float rgb[3];
          dit_pix_rgb01 (t, y + dy, x + dx, rgb);
          const float yl = k.kr * rgb[0] + k.kg * rgb[1] + k.kb * rgb[2];
          p->plane[0][(y + dy) * p->stride[0] + x + dx] =
              dit_pix_byte (k.yoff + k.yrange * yl);
          pb += (rgb[2] - yl) / (2.0f * (1.0f - k.kb));
          pr += (rgb[0] - yl) / (2.0f * (1.0f - k.kr));
        }
      const uint8_t u8 = dit_pix_byte (128.0f + k.crange * pb * 0.25f);
      const uint8_t v8 = dit_pix_byte (128.0f + k.crange * pr * 0.25f);
      if (p->format == DIT_PIXEL_I420) {
        p->plane[1][(y / 2) * p->stride[1] + x / 2] = u8;
        p->plane[2][(y / 2) * p->stride[2] + x / 2] = v8;
      } else {
        uint8_t *uv = p->plane[1] + (y / 2) * p->stride[1] + x;
        uv[0] = u8;
        uv[1] = v8;
      }
    }
  return DIT_OK;
}
