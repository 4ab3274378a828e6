/* test_pixels — 8-bit frames <-> [3, H, W] tensors for every format.
 *
 * Independent values: RGB bytes map to byte / 127.5 - 1 exactly; BT.601
 * limited-range gray Y' = 16 -> -1, 235 -> +1; pure red <-> (Y', U, V) =
 * (81, 90, 240) computed by hand from Y' = 16 + 219 Y, Cb = 128 + 224 Pb.
 * Every frame uses padded strides (row bytes + 7) and the padding must
 * survive a write; the tensor is a frame slice of a [3, T, H, W] buffer.
 */
#include "dit_backend.h"
#include "../common/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W = 32, H = 16, T = 3, PAD = 7, FILL = 0xab };

static uint32_t rng = 12345;

static uint8_t
rbyte (void)
{
  rng = rng * 1664525u + 1013904223u;
  return (uint8_t) (rng >> 24);
}

/* frame t of a [3, T, H, W] f32 buffer as a [3, H, W] view */
static dit_tensor
frame_view (float *buf, int t)
{
  int64_t s[3] = { 3, H, W };
  dit_tensor v = dit_tensor_make (buf + (size_t) t * H * W, DIT_F32, DIT_DEVICE_CPU, 3, s);
  v.stride[0] = (int64_t) T * H * W;
  return v;
}

static float
tv (const float *buf, int t, int c, int y, int x)
{
  return buf[((size_t) c * T + t) * H * W + (size_t) y * W + x];
}

typedef struct frame {
  uint8_t *mem[3];
  dit_vae_pixels_params p;
} frame;

static void
frame_alloc (frame *f, dit_pixel_format fmt, dit_tensor *t)
{
  memset (f, 0, sizeof *f);
  f->p.format = fmt;
  f->p.width = W;
  f->p.height = H;
  f->p.tensor = t;
  int bpp = dit_pixel_format_bpp (fmt);
  int planes = bpp ? 1 : (fmt == DIT_PIXEL_I420 ? 3 : 2);
  for (int i = 0; i < planes; i++) {
    int64_t row = bpp ? W * bpp : (i == 0 || fmt == DIT_PIXEL_NV12 ? W : W / 2);
    int64_t rows = i == 0 ? H : H / 2;
    f->p.stride[i] = row + PAD;
    f->mem[i] = malloc ((size_t) (f->p.stride[i] * rows));
    memset (f->mem[i], FILL, (size_t) (f->p.stride[i] * rows));
    f->p.plane[i] = f->mem[i];
  }
}

static void
frame_free (frame *f)
{
  for (int i = 0; i < 3; i++)
    free (f->mem[i]);
}

static int
padding_intact (const frame *f)
{
  int bpp = dit_pixel_format_bpp (f->p.format);
  for (int i = 0; i < 3 && f->mem[i]; i++) {
    int64_t row = f->p.stride[i] - PAD, rows = i == 0 ? H : H / 2;
    for (int64_t y = 0; y < rows; y++)
      for (int k = 0; k < PAD; k++)
        if (f->mem[i][y * f->p.stride[i] + row + k] != FILL)
          return 0;
  }
  (void) bpp;
  return 1;
}

static void
test_rgb_formats (dit_backend *be, float *buf)
{
  const dit_pixel_format fmts[] = { DIT_PIXEL_RGB, DIT_PIXEL_BGR, DIT_PIXEL_RGBA,
      DIT_PIXEL_RGBX, DIT_PIXEL_BGRA, DIT_PIXEL_BGRX };
  for (size_t k = 0; k < sizeof fmts / sizeof *fmts; k++) {
    const dit_pixel_format fmt = fmts[k];
    const int bpp = dit_pixel_format_bpp (fmt);
    const int bgr = fmt == DIT_PIXEL_BGR || fmt == DIT_PIXEL_BGRA || fmt == DIT_PIXEL_BGRX;
    dit_tensor t = frame_view (buf, 1);
    frame in, out;
    frame_alloc (&in, fmt, &t);
    frame_alloc (&out, fmt, &t);
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W * bpp; x++)
        in.p.plane[0][y * in.p.stride[0] + x] = rbyte ();
    CHECK (dit_pixels_to_tensor (be, &in.p) == DIT_OK, "%s to tensor: %s",
        dit_pixel_format_name (fmt), dit_last_error ());
    int bad = 0;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        const uint8_t *px = in.p.plane[0] + y * in.p.stride[0] + x * bpp;
        int r = bgr ? px[2] : px[0], g = px[1], b = bgr ? px[0] : px[2];
        bad += tv (buf, 1, 0, y, x) != (float) r / 127.5f - 1.0f;
        bad += tv (buf, 1, 1, y, x) != (float) g / 127.5f - 1.0f;
        bad += tv (buf, 1, 2, y, x) != (float) b / 127.5f - 1.0f;
      }
    CHECK (bad == 0, "%s: %d tensor values differ from byte/127.5-1",
        dit_pixel_format_name (fmt), bad);
    CHECK (dit_tensor_to_pixels (be, &out.p) == DIT_OK, "%s to pixels: %s",
        dit_pixel_format_name (fmt), dit_last_error ());
    bad = 0;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        for (int c = 0; c < bpp; c++) {
          uint8_t a = in.p.plane[0][y * in.p.stride[0] + x * bpp + c];
          uint8_t b = out.p.plane[0][y * out.p.stride[0] + x * bpp + c];
          bad += c == 3 ? b != 255 : a != b;
        }
    CHECK (bad == 0, "%s: round trip differs in %d bytes", dit_pixel_format_name (fmt), bad);
    CHECK (padding_intact (&out), "%s: row padding overwritten", dit_pixel_format_name (fmt));
    frame_free (&in);
    frame_free (&out);
  }
}

static void
fill_yuv (frame *f, int y8, int u8, int v8)
{
  for (int y = 0; y < H; y++)
    memset (f->p.plane[0] + y * f->p.stride[0], y8, W);
  for (int y = 0; y < H / 2; y++)
    for (int x = 0; x < W / 2; x++) {
      if (f->p.format == DIT_PIXEL_I420) {
        f->p.plane[1][y * f->p.stride[1] + x] = (uint8_t) u8;
        f->p.plane[2][y * f->p.stride[2] + x] = (uint8_t) v8;
      } else {
        f->p.plane[1][y * f->p.stride[1] + 2 * x] = (uint8_t) u8;
        f->p.plane[1][y * f->p.stride[1] + 2 * x + 1] = (uint8_t) v8;
      }
    }
}

static void
test_yuv_known (dit_backend *be, float *buf, dit_pixel_format fmt)
{
  const char *nm = dit_pixel_format_name (fmt);
  dit_tensor t = frame_view (buf, 2);
  frame f;
  frame_alloc (&f, fmt, &t);
  const struct { int y, u, v; float r, g, b, tol; } cases[] = {
    { 16, 128, 128, -1.0f, -1.0f, -1.0f, 1e-6f },   /* black */
    { 235, 128, 128, 1.0f, 1.0f, 1.0f, 1e-6f },     /* white */
    { 126, 128, 128, 2.0f * 110.0f / 219.0f - 1.0f, 2.0f * 110.0f / 219.0f - 1.0f,
      2.0f * 110.0f / 219.0f - 1.0f, 1e-6f },        /* mid gray */
    { 81, 90, 240, 1.0f, -1.0f, -1.0f, 0.02f },     /* red */
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    fill_yuv (&f, cases[k].y, cases[k].u, cases[k].v);
    CHECK (dit_pixels_to_tensor (be, &f.p) == DIT_OK, "%s: %s", nm, dit_last_error ());
    double m = 0;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        m = fmax (m, fabs (tv (buf, 2, 0, y, x) - cases[k].r));
        m = fmax (m, fabs (tv (buf, 2, 1, y, x) - cases[k].g));
        m = fmax (m, fabs (tv (buf, 2, 2, y, x) - cases[k].b));
      }
    CHECK (m <= cases[k].tol, "%s: Y'UV (%d, %d, %d) -> RGB off by %g", nm,
        cases[k].y, cases[k].u, cases[k].v, m);
  }
  /* pure red tensor -> (81, 90, 240); black -> (16, 128, 128) */
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      buf[((size_t) 0 * T + 2) * H * W + y * W + x] = x < W / 2 ? 1.0f : -1.0f;
      buf[((size_t) 1 * T + 2) * H * W + y * W + x] = -1.0f;
      buf[((size_t) 2 * T + 2) * H * W + y * W + x] = -1.0f;
    }
  memset (f.mem[0], FILL, (size_t) f.p.stride[0] * H);
  CHECK (dit_tensor_to_pixels (be, &f.p) == DIT_OK, "%s: %s", nm, dit_last_error ());
  int bad = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      bad += f.p.plane[0][y * f.p.stride[0] + x] != (x < W / 2 ? 81 : 16);
  for (int y = 0; y < H / 2; y++)
    for (int x = 0; x < W / 2; x++) {
      int u, v;
      if (fmt == DIT_PIXEL_I420) {
        u = f.p.plane[1][y * f.p.stride[1] + x];
        v = f.p.plane[2][y * f.p.stride[2] + x];
      } else {
        u = f.p.plane[1][y * f.p.stride[1] + 2 * x];
        v = f.p.plane[1][y * f.p.stride[1] + 2 * x + 1];
      }
      bad += x < W / 4 ? (u != 90 || v != 240) : (u != 128 || v != 128);
    }
  CHECK (bad == 0, "%s: red/black -> Y'UV: %d wrong samples", nm, bad);
  CHECK (padding_intact (&f), "%s: padding overwritten", nm);
  frame_free (&f);
}

/* Block-constant random RGB -> YUV -> RGB stays within quantisation. */
static void
test_yuv_roundtrip (dit_backend *be, float *buf, dit_pixel_format fmt, dit_yuv_matrix mat)
{
  const char *nm = dit_pixel_format_name (fmt);
  dit_tensor t = frame_view (buf, 0);
  float *orig = malloc (sizeof (float) * 3 * H * W);
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < H; y += 2)
      for (int x = 0; x < W; x += 2) {
        float v = rbyte () / 127.5f - 1.0f;
        for (int k = 0; k < 4; k++) {
          orig[(c * H + y + k / 2) * W + x + k % 2] = v;
          buf[((size_t) c * T + 0) * H * W + (y + k / 2) * W + x + k % 2] = v;
        }
      }
  frame f;
  frame_alloc (&f, fmt, &t);
  f.p.matrix = mat;
  CHECK (dit_tensor_to_pixels (be, &f.p) == DIT_OK, "%s: %s", nm, dit_last_error ());
  CHECK (dit_pixels_to_tensor (be, &f.p) == DIT_OK, "%s: %s", nm, dit_last_error ());
  double m = 0;
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        m = fmax (m, fabs (buf[((size_t) c * T) * H * W + y * W + x]
            - orig[(c * H + y) * W + x]));
  /* worst case: rounding of Y and chroma (0.5 LSB of 219/224) through the
   * matrix, in [-1, 1] units */
  CHECK (m < 0.05, "%s matrix %d: RGB -> YUV -> RGB max error %g", nm, (int) mat, m);
  CHECK (padding_intact (&f), "%s: padding overwritten", nm);
  frame_free (&f);
  free (orig);
}

static void
test_errors (dit_backend *be, float *buf)
{
  dit_tensor t = frame_view (buf, 0);
  frame f;
  frame_alloc (&f, DIT_PIXEL_I420, &t);
  f.p.width = W - 1;
  t.shape[2] = W - 1;
  dit_status st = dit_pixels_to_tensor (be, &f.p);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "even"), "odd I420: '%s'",
      dit_last_error ());
  f.p.width = W;
  t.shape[2] = W;
  f.p.stride[1] = W / 2 - 1;
  st = dit_pixels_to_tensor (be, &f.p);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "stride"), "short stride: '%s'",
      dit_last_error ());
  f.p.stride[1] = W / 2 + PAD;
  t.shape[0] = 4;
  st = dit_tensor_to_pixels (be, &f.p);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "[3, 16, 32]"),
      "4-channel tensor: '%s'", dit_last_error ());
  frame_free (&f);
  CHECK (dit_pixel_format_from_name ("NV12") == DIT_PIXEL_NV12
      && dit_pixel_format_from_name ("rgbx") == DIT_PIXEL_RGBX
      && dit_pixel_format_from_name ("yuy2") == -1, "format names");
}

int
main (void)
{
  dit_backend *be = dit_backend_cpu ();
  if (!be || !be->ops->vae) {
    fprintf (stderr, "FAIL: CPU backend without VAE ops\n");
    return 1;
  }
  float *buf = calloc ((size_t) 3 * T * H * W, sizeof (float));
  test_rgb_formats (be, buf);
  test_yuv_known (be, buf, DIT_PIXEL_I420);
  test_yuv_known (be, buf, DIT_PIXEL_NV12);
  for (int m = 0; m < 4; m++) {
    test_yuv_roundtrip (be, buf, DIT_PIXEL_I420, (dit_yuv_matrix) m);
    test_yuv_roundtrip (be, buf, DIT_PIXEL_NV12, (dit_yuv_matrix) m);
  }
  test_errors (be, buf);
  free (buf);
  if (failures) {
    fprintf (stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf ("test_pixels: all passed\n");
  return 0;
}
