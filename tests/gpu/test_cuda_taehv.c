/* test_cuda_taehv — the TAEHV tiny autoencoder on the CUDA backend against
 * the CPU backend (f32, itself checked against the float64 reference by
 * tests/reference/test_taehv_reference.sh).
 *
 * 1. The conv shapes TAEHV adds, on every CUDA path (cuDNN where it loads
 *    and applies, the pipelined mma kernel, the generic kernel), against the
 *    CPU's f32 conv with bf16-exact operands: the MemBlock (2, 3, 3) conv
 *    over [previous frame, x] with ReLU, with residual + ReLU, the folded
 *    TPool (2, 3, 3) conv with time and space stride 2, the 16 -> 256 input
 *    conv, the 3 -> 64 encoder input and the 64 -> 3 output conv.
 *    NMSE <= 1e-4 (bf16 output rounding gives ~1e-5; a wrong epilogue or
 *    index gives ~1).
 * 2. The layout op's tanh soft clamp: |cuda - cpu| <= 1e-5.
 * 3. The model, same synthetic weights on both backends: a streaming decode
 *    of 3 latents one call at a time (1 + 4 + 4 frames) and a streaming
 *    encode of 1 + 4 + 4 frames plus the flush (3 latents), compared per
 *    call (NMSE = ||cuda - cpu||^2 / ||cpu||^2):
 *      taehv-tiny 64x64, f32 storage   5e-4 (the convs round operands to
 *                                            bf16 for the tensor cores)
 *      taehv-tiny 64x64, bf16          3e-3
 *      taew2_1 96x64, bf16             3e-3 (the real widths: mma path)
 *      lighttaew2_1 64x48, bf16        3e-3 (raw-latent affine on device)
 *    the thresholds of the full VAE's test (tests/gpu/test_cuda_vae.c).
 * Exit 0 = pass, 1 = fail, 77 = no CUDA device (skip).
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "cuda/dit_cuda.h"
#include "dit_loader.h"
#include "dit_philox.h"
#include "dit_taehv.h"
#include "../common/gpu_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the label column of the result lines */
#define LABEL_W 56

static float *
download (dit_backend *be, const dit_tensor *t)
{
  const size_t n = (size_t) dit_tensor_numel (t);
  void *tmp = malloc (n * dit_dtype_size (t->dtype) + 1);
  float *out = malloc (n * sizeof (float) + 1);
  die_if (be->ops->download (be, tmp, t->data, n * dit_dtype_size (t->dtype)),
      "download");
  dit_convert (out, DIT_F32, tmp, t->dtype, n);
  free (tmp);
  return out;
}

/* ---- 1. conv shapes ------------------------------------------------------ */

typedef struct tconv {
  const char *label;
  int T, H, W, cin, cout, kt, st, s;   /* s: spatial stride; 3x3, padding 1 */
  int pad_front, residual, relu;
} tconv;

static float *
conv_on (dit_backend *be, const tconv *c, dit_dtype dt, const float *x,
    const float *w, const float *b, const float *r, int64_t yd[4])
{
  int64_t xs[4] = { c->T, c->H, c->W, c->cin };
  int64_t ws[2] = { c->cout, (int64_t) c->kt * 9 * c->cin };
  int64_t bs[1] = { c->cout };
  dit_tensor tx = upload_as (be, x, dt, 4, xs);
  dit_tensor tw = upload_as (be, w, dt, 2, ws);
  dit_tensor tb = upload_as (be, b, DIT_F32, 1, bs), tr = { 0 }, ty;
  die_if (dit_tensor_alloc (be, &ty, dt, 4, yd), "alloc y");
  if (c->residual)
    tr = upload_as (be, r, dt, 4, yd);
  dit_vae_conv_params p = { .x = &tx, .weight = &tw, .bias = &tb,
    .residual = c->residual ? &tr : NULL, .y = &ty, .kt = c->kt, .kh = 3,
    .kw = 3, .st = c->st, .sh = c->s, .sw = c->s, .pad_front = c->pad_front,
    .pad_top = 1, .pad_bottom = 1, .pad_left = 1, .pad_right = 1,
    .relu = c->relu };
  die_if (dit_vae_conv (be, &p), c->label);
  float *out = download (be, &ty);
  dit_tensor_free (be, &tx);
  dit_tensor_free (be, &tw);
  dit_tensor_free (be, &tb);
  dit_tensor_free (be, &ty);
  if (c->residual)
    dit_tensor_free (be, &tr);
  return out;
}

static void
conv_case (dit_backend *cuda, const tconv *c)
{
  const int64_t vt = c->pad_front + c->T;
  int64_t yd[4] = { (vt - c->kt) / c->st + 1, (c->H + 2 - 3) / c->s + 1,
    (c->W + 2 - 3) / c->s + 1, c->cout };
  const size_t nx = (size_t) c->T * c->H * c->W * c->cin;
  const size_t nw = (size_t) c->cout * c->kt * 9 * c->cin;
  const size_t ny = (size_t) yd[0] * yd[1] * yd[2] * yd[3];
  float *x = malloc (nx * sizeof (float)), *w = malloc (nw * sizeof (float));
  float *b = malloc ((size_t) c->cout * sizeof (float));
  float *r = malloc (ny * sizeof (float));
  uint64_t s = 99 + (uint64_t) c->cin * 13 + (uint64_t) c->cout;
  for (size_t i = 0; i < nx; i++) x[i] = bf16_rand (&s);
  for (size_t i = 0; i < nw; i++) w[i] = bf16_rand (&s) * 0.05f;
  for (int i = 0; i < c->cout; i++) b[i] = bf16_rand (&s) * 0.2f;
  for (size_t i = 0; i < ny; i++) r[i] = bf16_rand (&s);
  float *ref = conv_on (dit_backend_cpu (), c, DIT_F32, x, w, b, r, yd);
  char label[128];
  if (dit_cuda_cudnn_version ()) {
    float *dnn = conv_on (cuda, c, DIT_BF16, x, w, b, r, yd);
    snprintf (label, sizeof label, "conv %s, default path", c->label);
    report (LABEL_W, label, nmse (dnn, ref, ny), 1e-4);
    free (dnn);
  }
  setenv ("DIT_VAE_CONV", "own", 1);
  float *fast = conv_on (cuda, c, DIT_BF16, x, w, b, r, yd);
  snprintf (label, sizeof label, "conv %s, own kernels", c->label);
  report (LABEL_W, label, nmse (fast, ref, ny), 1e-4);
  setenv ("DIT_VAE_CONV_GENERIC", "1", 1);
  float *gen = conv_on (cuda, c, DIT_BF16, x, w, b, r, yd);
  snprintf (label, sizeof label, "conv %s, generic kernel", c->label);
  report (LABEL_W, label, nmse (gen, ref, ny), 1e-4);
  unsetenv ("DIT_VAE_CONV_GENERIC");
  unsetenv ("DIT_VAE_CONV");
  free (x); free (w); free (b); free (r); free (ref); free (fast); free (gen);
}

static void
conv_cases (dit_backend *cuda)
{
  static const tconv cases[] = {
    /* label                          T   H   W  cin cout kt st s pf res relu */
    { "mem 2x3x3 64 relu",            3, 18, 22, 64, 64, 2, 1, 1, 0, 0, 1 },
    { "mem 2x3x3 64 res+relu",        3, 18, 22, 64, 64, 2, 1, 1, 0, 1, 1 },
    { "mem 2x3x3 256 start+relu",     1, 5, 9, 256, 256, 2, 1, 1, 1, 0, 1 },
    { "mem 3x3 128 res+relu",         1, 10, 18, 128, 128, 1, 1, 1, 0, 1, 1 },
    { "pool 2x3x3 t2 s2 64",          2, 20, 36, 64, 64, 2, 2, 2, 0, 0, 0 },
    { "in 3x3 16->256 relu",          1, 5, 9, 16, 256, 1, 1, 1, 0, 0, 1 },
    { "enc in 3x3 3->64 relu",        2, 16, 24, 3, 64, 1, 1, 1, 0, 0, 1 },
    { "out 3x3 64->3",                2, 32, 48, 64, 3, 1, 1, 1, 0, 0, 0 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    conv_case (cuda, &cases[i]);
}

/* ---- 2. soft clamp -------------------------------------------------------- */

static void
soft_clamp_case (dit_backend *cuda)
{
  const int C = 16, T = 1, h = 5, w = 7;
  const size_t n = (size_t) C * T * h * w;
  float *x = malloc (n * sizeof (float));
  for (size_t i = 0; i < n; i++)
    x[i] = 4.0f * dit_philox_normal (3, 0, i);
  int64_t cf[4] = { C, T, h, w }, cl[4] = { T, h, w, C };
  float *out[2];
  dit_backend *be[2] = { dit_backend_cpu (), cuda };
  for (int k = 0; k < 2; k++) {
    dit_tensor tx = upload_as (be[k], x, DIT_F32, 4, cf), ty;
    die_if (dit_tensor_alloc (be[k], &ty, DIT_F32, 4, cl), "alloc");
    dit_vae_layout_params lp = { .x = &tx, .y = &ty, .to_channels_last = 1,
      .affine = 1, .soft_clamp = 3.0f };
    for (int c = 0; c < C; c++) {
      lp.scale[c] = 1.0f + 0.1f * c;
      lp.shift[c] = -0.2f * c;
    }
    die_if (dit_vae_layout (be[k], &lp), "layout");
    out[k] = download (be[k], &ty);
    dit_tensor_free (be[k], &tx);
    dit_tensor_free (be[k], &ty);
  }
  double m = 0;
  for (size_t i = 0; i < n; i++)
    m = fmax (m, fabs ((double) out[1][i] - out[0][i]));
  const int ok = m <= 1e-5;
  printf ("%-56s %s (max |diff| %.2e)\n", "layout affine + 3 tanh(x/3)",
      ok ? "ok" : "FAIL", m);
  failures += !ok;
  free (x); free (out[0]); free (out[1]);
}

/* ---- 3. the model ----------------------------------------------------------- */

static void
model_case (dit_backend *cuda, const char *preset, int width, int height,
    dit_dtype dt, double limit)
{
  dit_backend *be[2] = { dit_backend_cpu (), cuda };
  dit_taehv *t[2] = { NULL, NULL };
  for (int k = 0; k < 2; k++) {
    dit_taehv_config cfg;
    dit_weights *w = NULL;
    die_if (dit_load_taehv (preset, 5, DIT_F32, be[k], &cfg, &w), "weights");
    die_if (dit_taehv_create (&cfg, w, width, height, k ? dt : DIT_F32,
        DIT_TAEHV_DECODER | DIT_TAEHV_ENCODER, be[k], &t[k]), "create");
    dit_weights_free (w);
  }
  const int lh = height / 8, lw = width / 8;
  const size_t lat_n = (size_t) 16 * lh * lw, frame_n = (size_t) 3 * height * width;
  float *lat = malloc (lat_n * sizeof (float));
  float *pix = malloc (4 * frame_n * sizeof (float));
  char label[160];

  for (int i = 0; i < 3; i++) {
    for (size_t j = 0; j < lat_n; j++)
      lat[j] = dit_philox_normal (11, (uint64_t) i, j);
    float *out[2];
    int64_t T = 0;
    for (int k = 0; k < 2; k++) {
      T = dit_taehv_decode_frames (t[k], 1);
      int64_t ls[4] = { 16, 1, lh, lw }, ps[4] = { 3, T, height, width };
      dit_tensor l = upload_as (be[k], lat, DIT_F32, 4, ls), p;
      die_if (dit_tensor_alloc (be[k], &p, DIT_F32, 4, ps), "alloc");
      die_if (dit_taehv_decode (t[k], &l, &p), "decode");
      out[k] = download (be[k], &p);
      dit_tensor_free (be[k], &l);
      dit_tensor_free (be[k], &p);
    }
    snprintf (label, sizeof label, "%s %dx%d %s decode latent %d (%lld frames)",
        preset, height, width, dit_dtype_name (dt), i, (long long) T);
    report (LABEL_W, label, nmse (out[1], out[0], (size_t) T * frame_n),
        limit);
    free (out[0]);
    free (out[1]);
  }

  for (int g = 0; g < 4; g++) {
    const int T = g == 0 ? 1 : 4;
    for (size_t j = 0; j < (size_t) T * frame_n; j++)
      pix[j] = tanhf (dit_philox_normal (12, (uint64_t) g, j));
    float *out[2];
    int n[2] = { 0, 0 };
    for (int k = 0; k < 2; k++) {
      int64_t ps[4] = { 3, T, height, width }, ls[4] = { 16, 1, lh, lw };
      dit_tensor p = upload_as (be[k], pix, DIT_F32, 4, ps), l;
      die_if (dit_tensor_alloc (be[k], &l, DIT_F32, 4, ls), "alloc");
      if (g < 3)
        die_if (dit_taehv_encode (t[k], &p, &l, &n[k]), "encode");
      else
        die_if (dit_taehv_encode_flush (t[k], &l, &n[k]), "flush");
      out[k] = download (be[k], &l);
      dit_tensor_free (be[k], &p);
      dit_tensor_free (be[k], &l);
    }
    if (n[0] != n[1] || n[0] != (g == 0 ? 0 : 1)) {
      printf ("%s encode group %d: %d and %d latents  FAIL\n", preset, g, n[0],
          n[1]);
      failures++;
    } else if (n[0]) {
      snprintf (label, sizeof label, "%s %dx%d %s encode latent %d%s", preset,
          height, width, dit_dtype_name (dt), g - 1, g == 3 ? " (flush)" : "");
      report (LABEL_W, label, nmse (out[1], out[0], lat_n), limit);
    }
    free (out[0]);
    free (out[1]);
  }
  free (lat);
  free (pix);
  dit_taehv_free (t[0]);
  dit_taehv_free (t[1]);
}

int
main (void)
{
  dit_backend *cuda = cuda_backend_or_skip ();
  printf ("cudnn: %s (version %d)\n", dit_cuda_cudnn_version () ? "loaded"
      : "not loadable, own kernels only", dit_cuda_cudnn_version ());
  conv_cases (cuda);
  soft_clamp_case (cuda);
  model_case (cuda, "taehv-tiny", 64, 64, DIT_F32, 5e-4);
  model_case (cuda, "taehv-tiny", 64, 64, DIT_BF16, 3e-3);
  model_case (cuda, "taew2_1", 96, 64, DIT_BF16, 3e-3);
  model_case (cuda, "lighttaew2_1", 64, 48, DIT_BF16, 3e-3);
  dit_backend_destroy (cuda);
  printf ("%s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
