/* test_cuda_vae — the streaming WanVAE and pixel conversion on the CUDA
 * backend against the CPU backend (f32, the reference oracle).
 *
 * VAE cases (same synthetic weights on both backends; the CPU reads them as
 * f32, the device stores them in the case's dtype):
 *  - "tiny" VAE at 64x64 pixels, CUDA f32 and CUDA bf16;
 *  - the real "wan" dims at 64x96 pixels, CUDA bf16.
 * Each case streams: decode of 3 latents one call at a time (1 + 4 + 4 pixel
 * frames), a streaming encode of 1 + 4 + 4 frames (3 latents) and an anchor
 * encode of one frame; outputs are compared per call.
 * Thresholds (NMSE = ||cuda - cpu||^2 / ||cpu||^2 per call):
 *   f32 storage   5e-4  (the conv rounds its operands to bf16 for the tensor
 *                        cores, accumulates in f32; measured at most 1.1e-4
 *                        on an H200 through the decoder's ~20 convs with
 *                        random weights)
 *   bf16 storage  3e-3  (bf16 activations and weights, f32 accumulation;
 *                        measured at most 2.2e-4)
 * An indexing or padding mistake in the conv gives an NMSE near 1.
 * The conv op alone (both CUDA kernels: the pipelined mma path and the
 * generic one, forced with DIT_VAE_CONV_GENERIC): bf16-exact random inputs,
 * NMSE against the CPU's f32 conv <= 1e-4 (bf16 rounding of the output,
 * 2^-9 relative, gives ~1e-5); DIT_TEST_CONV_BIG=1 adds the decoder's
 * heaviest shapes at 320x576 and prints ms and TFLOP/s of both kernels.
 * Pixel conversion: RGB, BGRx, I420 and NV12 with padded strides, bytes ->
 * tensor must match the CPU within 1e-6 (absolute), tensor -> bytes must
 * be identical bytes.
 * Exit 0 = pass, 1 = fail, 77 = no CUDA device (skip).
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "cuda/dit_cuda.h"
#include "dit_philox.h"
#include "dit_vae.h"
#include "dit_weights.h"
#include "../common/gpu_check.h"
#include "dit_clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the label column of the result lines */
#define LABEL_W 48

/* A [c, t, h, w] f32 tensor on `be` holding `host`. */
static dit_tensor
put (dit_backend *be, const float *host, int64_t c, int64_t t, int64_t h,
    int64_t w)
{
  int64_t s[4] = { c, t, h, w };
  dit_tensor x;
  die_if (dit_tensor_alloc (be, &x, DIT_F32, 4, s), "alloc");
  die_if (be->ops->upload (be, x.data, host, (size_t) (c * t * h * w)
      * sizeof (float)), "upload");
  return x;
}

static float *
get (dit_backend *be, const dit_tensor *x)
{
  size_t n = (size_t) dit_tensor_numel (x);
  float *h = malloc (n * sizeof (float));
  die_if (be->ops->download (be, h, x->data, n * sizeof (float)), "download");
  return h;
}

/* Run the same call on both VAEs and compare. */
typedef struct pair {
  dit_backend *be[2];
  dit_vae *v[2];
} pair;

static void
vae_case (dit_backend *cuda, const char *preset, int width, int height,
    dit_dtype dt, double limit)
{
  dit_vae_config vc;
  die_if (dit_vae_config_preset (preset, &vc), "vae preset");
  dit_param_spec *specs;
  size_t count;
  die_if (dit_vae_config_params (&vc, &specs, &count), "vae params");
  dit_weights *wc, *wd;
  die_if (dit_weights_synthetic (specs, count, 5, DIT_F32, dit_backend_cpu (),
      &wc), "cpu vae weights");
  die_if (dit_weights_synthetic (specs, count, 5, DIT_F32, cuda, &wd),
      "cuda vae weights");
  free (specs);
  pair p = { { dit_backend_cpu (), cuda }, { NULL, NULL } };
  die_if (dit_vae_create (&vc, wc, width, height, DIT_F32, p.be[0], &p.v[0]),
      "cpu vae");
  die_if (dit_vae_create (&vc, wd, width, height, dt, p.be[1], &p.v[1]),
      "cuda vae");
  dit_weights_free (wc);
  dit_weights_free (wd);

  const int lh = height / 8, lw = width / 8;
  const size_t lat_n = (size_t) 16 * lh * lw;
  const size_t frame_n = (size_t) 3 * height * width;
  float *lat = malloc (lat_n * sizeof (float));
  float *pix = malloc (4 * frame_n * sizeof (float));
  char label[160];

  /* streaming decode, one latent per call */
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; i < lat_n; i++)
      lat[i] = dit_philox_normal (11, (uint64_t) k, i);
    float *out[2];
    int64_t T = 0;
    for (int b = 0; b < 2; b++) {
      T = dit_vae_decode_frames (p.v[b], 1);
      dit_tensor l = put (p.be[b], lat, 16, 1, lh, lw);
      int64_t s[4] = { 3, T, height, width };
      dit_tensor o;
      die_if (dit_tensor_alloc (p.be[b], &o, DIT_F32, 4, s), "alloc");
      die_if (dit_vae_decode (p.v[b], &l, &o), "decode");
      out[b] = get (p.be[b], &o);
      dit_tensor_free (p.be[b], &l);
      dit_tensor_free (p.be[b], &o);
    }
    snprintf (label, sizeof label, "vae %s %dx%d %s decode latent %d (%lld "
        "frames)", preset, height, width, dit_dtype_name (dt), k, (long long) T);
    report (LABEL_W, label, nmse (out[1], out[0], (size_t) T * frame_n),
        limit);
    free (out[0]);
    free (out[1]);
  }

  /* streaming encode: 1 + 4 + 4 frames, then an anchor */
  for (int k = 0; k < 4; k++) {
    const int T = k == 0 || k == 3 ? 1 : 4;
    for (size_t i = 0; i < (size_t) T * frame_n; i++)
      pix[i] = tanhf (dit_philox_normal (12, (uint64_t) k, i));
    float *out[2];
    for (int b = 0; b < 2; b++) {
      dit_tensor x = put (p.be[b], pix, 3, T, height, width);
      int64_t s[4] = { 16, 1, lh, lw };
      dit_tensor o;
      die_if (dit_tensor_alloc (p.be[b], &o, DIT_F32, 4, s), "alloc");
      if (k == 3)
        die_if (dit_vae_encode_anchor (p.v[b], &x, &o), "anchor encode");
      else
        die_if (dit_vae_encode (p.v[b], &x, &o), "encode");
      out[b] = get (p.be[b], &o);
      dit_tensor_free (p.be[b], &x);
      dit_tensor_free (p.be[b], &o);
    }
    if (k == 3)
      snprintf (label, sizeof label, "vae %s %dx%d %s anchor encode", preset,
          height, width, dit_dtype_name (dt));
    else
      snprintf (label, sizeof label, "vae %s %dx%d %s encode chunk %d (%d "
          "frames)", preset, height, width, dit_dtype_name (dt), k, T);
    report (LABEL_W, label, nmse (out[1], out[0], lat_n), limit);
    free (out[0]);
    free (out[1]);
  }
  free (lat);
  free (pix);
  dit_vae_free (p.v[0]);
  dit_vae_free (p.v[1]);
}

/* ---------------------------------------------------------------------------
 * pixels */

static void
pixel_case (dit_backend *cuda, dit_pixel_format fmt, dit_yuv_matrix m)
{
  const int w = 46, h = 34;
  const int bpp = dit_pixel_format_bpp (fmt);
  const int planes = bpp ? 1 : (fmt == DIT_PIXEL_I420 ? 3 : 2);
  int64_t stride[3];
  size_t size[3];
  for (int i = 0; i < planes; i++) {
    int64_t row = bpp ? (int64_t) w * bpp : (i == 0 ? w
        : (fmt == DIT_PIXEL_NV12 ? w : w / 2));
    stride[i] = row + 6;                      /* padded rows */
    size[i] = (size_t) stride[i] * (i == 0 ? h : h / 2);
  }
  uint8_t *hp[3] = { NULL, NULL, NULL }, *back[3] = { NULL, NULL, NULL };
  uint8_t *dp[3] = { NULL, NULL, NULL };
  uint64_t r = 0x1234567ull + (uint64_t) fmt * 31 + (uint64_t) m;
  for (int i = 0; i < planes; i++) {
    hp[i] = malloc (size[i]);
    back[i] = malloc (size[i]);
    for (size_t j = 0; j < size[i]; j++) {
      r = r * 6364136223846793005ull + 1442695040888963407ull;
      hp[i][j] = (uint8_t) (r >> 56);
    }
    dp[i] = cuda->ops->alloc (cuda, size[i]);
    die_if (cuda->ops->upload (cuda, dp[i], hp[i], size[i]), "upload bytes");
  }
  /* bytes -> tensor on both */
  int64_t ts[3] = { 3, h, w };
  float *tc = malloc ((size_t) 3 * h * w * sizeof (float));
  dit_tensor t_cpu = dit_tensor_make (tc, DIT_F32, DIT_DEVICE_CPU, 3, ts);
  dit_tensor t_dev;
  die_if (dit_tensor_alloc (cuda, &t_dev, DIT_F32, 3, ts), "alloc");
  dit_vae_pixels_params pc = { .format = fmt, .matrix = m, .width = w,
    .height = h, .tensor = &t_cpu };
  dit_vae_pixels_params pd = pc;
  pd.tensor = &t_dev;
  for (int i = 0; i < planes; i++) {
    pc.plane[i] = hp[i];
    pd.plane[i] = dp[i];
    pc.stride[i] = pd.stride[i] = stride[i];
  }
  die_if (dit_pixels_to_tensor (dit_backend_cpu (), &pc), "cpu pixels_to_tensor");
  die_if (dit_pixels_to_tensor (cuda, &pd), "cuda pixels_to_tensor");
  float *td = get (cuda, &t_dev);
  double maxd = 0.0;
  for (int i = 0; i < 3 * h * w; i++)
    maxd = fmax (maxd, fabs ((double) td[i] - tc[i]));
  int ok = maxd <= 1e-6;
  printf ("pixels %-6s matrix %d -> tensor              %s (max |diff| %.2e)\n",
      dit_pixel_format_name (fmt), (int) m, ok ? "ok" : "FAIL", maxd);
  if (!ok)
    failures++;

  /* tensor -> bytes: a smooth-ish random tensor (values slightly outside
   * [-1, 1] exercise the clamp), same input on both */
  for (int i = 0; i < 3 * h * w; i++)
    tc[i] = 1.1f * tanhf (dit_philox_normal (21, (uint64_t) fmt, (uint64_t) i));
  die_if (cuda->ops->upload (cuda, t_dev.data, tc, (size_t) 3 * h * w
      * sizeof (float)), "upload");
  for (int i = 0; i < planes; i++) {
    memset (hp[i], 0, size[i]);
    die_if (cuda->ops->memset_zero (cuda, dp[i], size[i]), "memset");
  }
  die_if (dit_tensor_to_pixels (dit_backend_cpu (), &pc), "cpu tensor_to_pixels");
  die_if (dit_tensor_to_pixels (cuda, &pd), "cuda tensor_to_pixels");
  size_t diff = 0;
  for (int i = 0; i < planes; i++) {
    die_if (cuda->ops->download (cuda, back[i], dp[i], size[i]), "download");
    for (size_t j = 0; j < size[i]; j++)
      diff += back[i][j] != hp[i][j];
  }
  printf ("pixels %-6s matrix %d <- tensor              %s (%zu bytes differ)\n",
      dit_pixel_format_name (fmt), (int) m, diff ? "FAIL" : "ok", diff);
  if (diff)
    failures++;
  for (int i = 0; i < planes; i++) {
    free (hp[i]);
    free (back[i]);
    cuda->ops->free (cuda, dp[i]);
  }
  free (tc);
  free (td);
  dit_tensor_free (cuda, &t_dev);
}


/* ---- the conv op alone: both CUDA kernels against the CPU's f32 conv ---- */

typedef struct conv_shape {
  const char *label;
  int P, T, H, W, cin, cout, kt, kh, kw, st, sh, sw;
  int pad_front, pad_top, pad_bottom, pad_left, pad_right;
  int residual;
} conv_shape;

/* y = conv on one backend; returns host f32 (caller frees). */
static float *
conv_run (dit_backend *be, const conv_shape *c, const float *x, const float *prev,
    const float *w, const float *b, const float *r, dit_dtype dt, int64_t yd[4],
    double *ms, int reps)
{
  int64_t xs[4] = { c->T, c->H, c->W, c->cin };
  int64_t ps[4] = { c->P, c->H, c->W, c->cin };
  int64_t ws[2] = { c->cout, (int64_t) c->kt * c->kh * c->kw * c->cin };
  int64_t bs[1] = { c->cout };
  dit_tensor tx = upload_as (be, x, dt, 4, xs);
  dit_tensor tp = { 0 }, tr = { 0 };
  if (c->P)
    tp = upload_as (be, prev, dt, 4, ps);
  dit_tensor tw = upload_as (be, w, dt, 2, ws);
  dit_tensor tb = upload_as (be, b, DIT_F32, 1, bs);
  dit_tensor ty;
  die_if (dit_tensor_alloc (be, &ty, dt, 4, yd), "alloc y");
  if (c->residual)
    tr = upload_as (be, r, dt, 4, yd);
  dit_vae_conv_params p = { .x = &tx, .prev = c->P ? &tp : NULL, .weight = &tw,
    .bias = &tb, .residual = c->residual ? &tr : NULL, .y = &ty,
    .kt = c->kt, .kh = c->kh, .kw = c->kw, .st = c->st, .sh = c->sh,
    .sw = c->sw, .pad_front = c->pad_front, .pad_top = c->pad_top,
    .pad_bottom = c->pad_bottom, .pad_left = c->pad_left,
    .pad_right = c->pad_right };
  die_if (be->ops->vae->conv (be, &p), c->label);
  die_if (be->ops->synchronize (be), "sync");
  if (ms) {
    double t0 = dit_now_ms ();
    for (int i = 0; i < reps; i++)
      die_if (be->ops->vae->conv (be, &p), c->label);
    die_if (be->ops->synchronize (be), "sync");
    *ms = (dit_now_ms () - t0) / reps;
  }
  size_t n = (size_t) dit_tensor_numel (&ty);
  void *tmp = malloc (n * dit_dtype_size (dt));
  float *out = malloc (n * sizeof (float));
  die_if (be->ops->download (be, tmp, ty.data, n * dit_dtype_size (dt)), "dl");
  dit_convert (out, DIT_F32, tmp, dt, n);
  free (tmp);
  dit_tensor_free (be, &tx);
  if (c->P)
    dit_tensor_free (be, &tp);
  dit_tensor_free (be, &tw);
  dit_tensor_free (be, &tb);
  dit_tensor_free (be, &ty);
  if (c->residual)
    dit_tensor_free (be, &tr);
  return out;
}

/* NMSE of the fast (mma) and the generic CUDA kernel against the CPU, and,
 * for `timed` shapes, ms and TFLOP/s of both. */
static void
conv_case (dit_backend *cuda, const conv_shape *c, int timed)
{
  const int64_t vt = c->pad_front + c->P + c->T;
  const int64_t vh = c->H + c->pad_top + c->pad_bottom;
  const int64_t vw = c->W + c->pad_left + c->pad_right;
  int64_t yd[4] = { (vt - c->kt) / c->st + 1, (vh - c->kh) / c->sh + 1,
    (vw - c->kw) / c->sw + 1, c->cout };
  const size_t nx = (size_t) c->T * c->H * c->W * c->cin;
  const size_t np = (size_t) c->P * c->H * c->W * c->cin;
  const size_t nw = (size_t) c->cout * c->kt * c->kh * c->kw * c->cin;
  const size_t ny = (size_t) yd[0] * yd[1] * yd[2] * yd[3];
  float *x = malloc (nx * sizeof (float)), *prev = malloc ((np + 1) * sizeof (float));
  float *w = malloc (nw * sizeof (float)), *b = malloc (c->cout * sizeof (float));
  float *r = malloc (ny * sizeof (float));
  uint64_t s = 12345 + (uint64_t) c->cin * 7 + (uint64_t) c->cout;
  for (size_t i = 0; i < nx; i++) x[i] = bf16_rand (&s);
  for (size_t i = 0; i < np; i++) prev[i] = bf16_rand (&s);
  for (size_t i = 0; i < nw; i++) w[i] = bf16_rand (&s) * 0.05f;
  for (int i = 0; i < c->cout; i++) b[i] = bf16_rand (&s);
  for (size_t i = 0; i < ny; i++) r[i] = bf16_rand (&s);

  float *ref = conv_run (dit_backend_cpu (), c, x, prev, w, b, r, DIT_F32, yd,
      NULL, 0);
  double ms_dnn = 0, ms_fast = 0, ms_gen = 0;
  float *dnn = NULL;
  if (dit_cuda_cudnn_version ())
    dnn = conv_run (cuda, c, x, prev, w, b, r, DIT_BF16, yd,
        timed ? &ms_dnn : NULL, 10);
  setenv ("DIT_VAE_CONV", "own", 1);
  float *fast = conv_run (cuda, c, x, prev, w, b, r, DIT_BF16, yd,
      timed ? &ms_fast : NULL, 10);
  setenv ("DIT_VAE_CONV_GENERIC", "1", 1);
  float *gen = conv_run (cuda, c, x, prev, w, b, r, DIT_BF16, yd,
      timed ? &ms_gen : NULL, 10);
  unsetenv ("DIT_VAE_CONV_GENERIC");
  unsetenv ("DIT_VAE_CONV");
  char label[96];
  /* bf16 output rounding (2^-9 relative) dominates: NMSE ~1e-5; the
   * cuDNN path rounds twice (residual + bias, then the sum). */
  if (dnn) {
    snprintf (label, sizeof label, "conv %s cudnn (where it applies)",
        c->label);
    report (LABEL_W, label, nmse (dnn, ref, ny), 1e-4);
  }
  snprintf (label, sizeof label, "conv %s fast kernel", c->label);
  report (LABEL_W, label, nmse (fast, ref, ny), 1e-4);
  snprintf (label, sizeof label, "conv %s generic kernel", c->label);
  report (LABEL_W, label, nmse (gen, ref, ny), 1e-4);
  if (timed) {
    double flop = 2.0 * (double) ny * c->kt * c->kh * c->kw * c->cin;
    printf ("conv %s: cudnn %.3f ms (%.0f TFLOP/s), fast %.3f ms "
        "(%.0f TFLOP/s), generic %.3f ms (%.0f TFLOP/s)\n", c->label, ms_dnn,
        ms_dnn > 0 ? flop / ms_dnn * 1e-9 : 0.0, ms_fast,
        flop / ms_fast * 1e-9, ms_gen, flop / ms_gen * 1e-9);
  }
  free (x); free (prev); free (w); free (b); free (r);
  free (ref); free (dnn); free (fast); free (gen);
}

static void
conv_cases (dit_backend *cuda)
{
  /* Streaming causal 3x3x3 (2 cached frames), spatial 1x3x3 with stride 2
   * (asymmetric padding), a residual that is added in the epilogue, and the
   * three channel tiles (Cout 96, 192, 384); odd sizes leave partial tiles. */
  static const conv_shape small[] = {
    { "3x3x3 96->96 cache", 2, 2, 13, 11, 96, 96, 3, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 0 },
    { "3x3x3 192->192 front pad + res", 0, 3, 9, 10, 192, 192, 3, 3, 3, 1, 1, 1, 2, 1, 1, 1, 1, 1 },
    { "3x3x3 192->384", 2, 1, 7, 9, 192, 384, 3, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 0 },
    { "1x3x3 s2 384->384", 0, 2, 12, 14, 384, 384, 1, 3, 3, 1, 2, 2, 0, 0, 1, 0, 1, 0 },
    { "1x1x1 96->64", 0, 2, 5, 6, 96, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0 },
  };
  for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
    conv_case (cuda, &small[i], 0);
  if (getenv ("DIT_TEST_CONV_BIG")) {
    /* The decoder's heaviest convs at 320x576 (4 frames, 2 cached). */
    static const conv_shape big[] = {
      { "320x576 96->96", 2, 4, 320, 576, 96, 96, 3, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 0 },
      { "160x288 192->192", 2, 4, 160, 288, 192, 192, 3, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 0 },
      { "80x144 384->384", 2, 2, 80, 144, 384, 384, 3, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 0 },
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
      conv_case (cuda, &big[i], 1);
  }
}

int
main (void)
{
  dit_backend *cuda = cuda_backend_or_skip ();
  printf ("cudnn: %s (version %d)\n", dit_cuda_cudnn_version ()
      ? "loaded, used for the bf16 convs it expresses" : "not loadable, own "
      "kernels only", dit_cuda_cudnn_version ());
  conv_cases (cuda);
  pixel_case (cuda, DIT_PIXEL_RGB, DIT_YUV_BT601_LIMITED);
  pixel_case (cuda, DIT_PIXEL_BGRX, DIT_YUV_BT601_LIMITED);
  pixel_case (cuda, DIT_PIXEL_I420, DIT_YUV_BT601_LIMITED);
  pixel_case (cuda, DIT_PIXEL_NV12, DIT_YUV_BT709_FULL);
  vae_case (cuda, "tiny", 64, 64, DIT_F32, 5e-4);
  vae_case (cuda, "tiny", 64, 64, DIT_BF16, 3e-3);
  vae_case (cuda, "wan", 96, 64, DIT_BF16, 3e-3);
  dit_backend_destroy (cuda);
  printf ("%s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
