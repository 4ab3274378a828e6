/* test_vae_ops — the CPU VAE ops against naive loops written here.
 *
 * The reference conv is the direct formula over the checkpoint layout
 * (weights [Cout, Cin, kt, kh, kw], input [Cin, T, H, W] channels first with
 * explicit zero padding), so it shares neither the layout nor the loop order
 * of kernels/cpu/vae_conv.c.  Covered: causal 3x3x3 with front time padding,
 * 1x1x1, (3,1,1) stride-2 time conv over [prev, x], 2-D stride-2 conv with
 * right/bottom padding, residual add (aliasing y), interleaved output frame
 * strides, and the cache hand-off (chunks [1, 4, 4] == one conv over 9
 * frames); the TAEHV shapes: the (2,3,3) MemBlock conv over [prev, x] with
 * residual and ReLU, the (2,3,3) time-stride-2, space-stride-2 conv of a
 * folded TPool; RMS norm (+SiLU, zero vector), nearest upsample, frame
 * copy, layout with affine, tanh soft clamp and clamp; dispatch errors.
 */
#include "dit_backend.h"
#include "../common/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float
frand (void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (float) ((rng_state >> 40) / (double) (1ull << 24)) * 2.0f - 1.0f;
}

static float *
rand_buf (size_t n)
{
  float *p = malloc (n * sizeof *p);
  for (size_t i = 0; i < n; i++)
    p[i] = frand ();
  return p;
}

static dit_tensor
frames (float *data, int64_t t, int64_t h, int64_t w, int64_t c)
{
  int64_t s[4] = { t, h, w, c };
  return dit_tensor_make (data, DIT_F32, DIT_DEVICE_CPU, 4, s);
}

/* Naive conv: in [Cin, Tv, H, W] channels first (the virtual sequence,
 * already including front zero frames), weight [Cout, Cin, kt, kh, kw];
 * out [Cout, To, Ho, Wo]. */
static void
naive_conv (const float *in, int cin, int tv, int h, int w, const float *wt,
    const float *bias, int cout, int kt, int kh, int kw, int st, int sh, int sw,
    int pt, int pb, int pl, int pr, float *out, int *to_, int *ho_, int *wo_)
{
  const int to = (tv - kt) / st + 1, ho = (h + pt + pb - kh) / sh + 1;
  const int wo = (w + pl + pr - kw) / sw + 1;
  for (int co = 0; co < cout; co++)
    for (int o = 0; o < to; o++)
      for (int y = 0; y < ho; y++)
        for (int x = 0; x < wo; x++) {
          double acc = bias ? bias[co] : 0.0;
          for (int ci = 0; ci < cin; ci++)
            for (int a = 0; a < kt; a++)
              for (int b = 0; b < kh; b++)
                for (int c = 0; c < kw; c++) {
                  int ti = o * st + a, yi = y * sh + b - pt, xi = x * sw + c - pl;
                  if (yi < 0 || yi >= h || xi < 0 || xi >= w)
                    continue;
                  acc += (double) in[((size_t) (ci * tv + ti) * h + yi) * w + xi]
                      * wt[((((size_t) co * cin + ci) * kt + a) * kh + b) * kw + c];
                }
          out[(((size_t) co * to + o) * ho + y) * wo + x] = (float) acc;
        }
  *to_ = to;
  *ho_ = ho;
  *wo_ = wo;
}

/* [Cout, Cin, kt, kh, kw] -> [Cout, kt*kh*kw*Cin] */
static float *
reorder (const float *w, int cout, int cin, int taps)
{
  float *r = malloc ((size_t) cout * cin * taps * sizeof *r);
  for (int o = 0; o < cout; o++)
    for (int i = 0; i < cin; i++)
      for (int k = 0; k < taps; k++)
        r[((size_t) o * taps + k) * cin + i] = w[((size_t) o * cin + i) * taps + k];
  return r;
}

/* channels-last [T, H, W, C] at frame offset -> channels-first slice */
static void
cl_to_cf (const float *cl, int t, int h, int w, int c, float *cf, int tv, int t0)
{
  for (int f = 0; f < t; f++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        for (int ch = 0; ch < c; ch++)
          cf[((size_t) (ch * tv + t0 + f) * h + y) * w + x] =
              cl[(((size_t) f * h + y) * w + x) * c + ch];
}

static double
max_diff_cf_cl (const float *cf, const float *cl, int t, int h, int w, int c,
    int64_t cl_frame_stride)
{
  double m = 0;
  for (int f = 0; f < t; f++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        for (int ch = 0; ch < c; ch++) {
          double d = fabs ((double) cf[((size_t) (ch * t + f) * h + y) * w + x]
              - cl[(size_t) f * cl_frame_stride + ((size_t) y * w + x) * c + ch]);
          if (d > m || d != d)
            m = d != d ? INFINITY : d;
        }
  return m;
}

typedef struct conv_case {
  const char *name;
  int cin, cout, t, p, h, w, kt, kh, kw, st, sh, sw, pad_front, pt, pb, pl, pr;
  int residual;
  int relu;
} conv_case;

static void
run_conv_case (dit_backend *be, const conv_case *cc)
{
  const int taps = cc->kt * cc->kh * cc->kw;
  const int tv = cc->pad_front + cc->p + cc->t;
  float *x = rand_buf ((size_t) cc->t * cc->h * cc->w * cc->cin);
  float *prev = cc->p ? rand_buf ((size_t) cc->p * cc->h * cc->w * cc->cin) : NULL;
  float *wt = rand_buf ((size_t) cc->cout * cc->cin * taps);
  float *bias = rand_buf ((size_t) cc->cout);
  float *wr = reorder (wt, cc->cout, cc->cin, taps);
  float *virt = calloc ((size_t) cc->cin * tv * cc->h * cc->w, sizeof *virt);
  if (prev)
    cl_to_cf (prev, cc->p, cc->h, cc->w, cc->cin, virt, tv, cc->pad_front);
  cl_to_cf (x, cc->t, cc->h, cc->w, cc->cin, virt, tv, cc->pad_front + cc->p);
  int to, ho, wo;
  float *ref = malloc ((size_t) cc->cout * tv * (cc->h + 2) * (cc->w + 2) * sizeof *ref);
  naive_conv (virt, cc->cin, tv, cc->h, cc->w, wt, bias, cc->cout, cc->kt, cc->kh,
      cc->kw, cc->st, cc->sh, cc->sw, cc->pt, cc->pb, cc->pl, cc->pr, ref, &to, &ho, &wo);
  const size_t ny = (size_t) to * ho * wo * cc->cout;
  float *y = malloc (ny * sizeof *y);
  float *res = cc->residual ? rand_buf (ny) : NULL;
  if (res) {
    /* reference += residual (cl -> cf) */
    for (int f = 0; f < to; f++)
      for (int i = 0; i < ho; i++)
        for (int j = 0; j < wo; j++)
          for (int c = 0; c < cc->cout; c++)
            ref[(((size_t) c * to + f) * ho + i) * wo + j] +=
                res[(((size_t) f * ho + i) * wo + j) * cc->cout + c];
    memcpy (y, res, ny * sizeof *y);   /* residual aliases y */
  }
  if (cc->relu)
    for (size_t i = 0; i < ny; i++)
      ref[i] = ref[i] < 0.0f ? 0.0f : ref[i];
  dit_tensor tx = frames (x, cc->t, cc->h, cc->w, cc->cin);
  dit_tensor tp = frames (prev, cc->p, cc->h, cc->w, cc->cin);
  dit_tensor tw = dit_tensor_2d (wr, DIT_F32, DIT_DEVICE_CPU, cc->cout,
      (int64_t) taps * cc->cin);
  dit_tensor tb = dit_tensor_1d (bias, DIT_F32, DIT_DEVICE_CPU, cc->cout);
  dit_tensor ty = frames (y, to, ho, wo, cc->cout);
  dit_vae_conv_params p = {
    .x = &tx, .prev = prev ? &tp : NULL, .weight = &tw, .bias = &tb,
    .residual = res ? &ty : NULL, .y = &ty, .kt = cc->kt, .kh = cc->kh, .kw = cc->kw,
    .st = cc->st, .sh = cc->sh, .sw = cc->sw, .pad_front = cc->pad_front,
    .pad_top = cc->pt, .pad_bottom = cc->pb, .pad_left = cc->pl, .pad_right = cc->pr,
    .relu = cc->relu,
  };
  dit_status st = dit_vae_conv (be, &p);
  CHECK (st == DIT_OK, "conv %s: %s", cc->name, dit_last_error ());
  if (st == DIT_OK) {
    double d = max_diff_cf_cl (ref, y, to, ho, wo, cc->cout, (int64_t) ho * wo * cc->cout);
    CHECK (d < 1e-4, "conv %s: max diff %g", cc->name, d);
  }
  free (x); free (prev); free (wt); free (bias); free (wr); free (virt);
  free (ref); free (y); free (res);
}

static void
test_conv_cases (dit_backend *be)
{
  static const conv_case cases[] = {
    /* name       cin cout t p  h  w kt kh kw st sh sw pf pt pb pl pr res relu */
    { "causal333", 5, 6, 5, 0, 5, 7, 3, 3, 3, 1, 1, 1, 2, 1, 1, 1, 1, 0, 0 },
    { "causal333-vec", 16, 3, 2, 0, 4, 6, 3, 3, 3, 1, 1, 1, 2, 1, 1, 1, 1, 0, 0 },
    { "cache2", 9, 4, 4, 2, 3, 5, 3, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0 },
    { "cache1", 8, 8, 1, 1, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0 },
    { "1x1x1+res", 24, 10, 3, 0, 3, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0 },
    { "time311s2", 12, 12, 4, 1, 3, 3, 3, 1, 1, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0 },
    { "time311pad", 7, 14, 1, 2, 2, 3, 3, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0 },
    { "down2d", 10, 10, 2, 0, 8, 6, 1, 3, 3, 1, 2, 2, 0, 0, 1, 0, 1, 0, 0 },
    { "up2d", 16, 8, 2, 0, 6, 4, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0 },
    { "relu", 8, 16, 2, 0, 5, 4, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1 },
    /* TAEHV: MemBlock conv over [previous input, x], skip add, ReLU */
    { "mem233+res+relu", 8, 8, 2, 1, 4, 5, 2, 3, 3, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1 },
    { "mem233-start", 6, 6, 1, 0, 3, 3, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1 },
    /* TAEHV encoder: TPool folded into the strided conv */
    { "pool233s2", 8, 8, 2, 0, 6, 8, 2, 3, 3, 2, 2, 2, 0, 1, 1, 1, 1, 0, 0 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    run_conv_case (be, &cases[i]);
}

/* Streaming causal conv over chunks [1, 4, 4] with a 2-frame input cache
 * == one causal conv over the 9 frames. */
static void
test_cache_handoff (dit_backend *be)
{
  const int cin = 6, cout = 5, h = 4, w = 5, T = 9, taps = 27;
  const size_t fr = (size_t) h * w * cin;
  float *x = rand_buf (T * fr);
  float *wt = rand_buf ((size_t) cout * cin * taps);
  float *bias = rand_buf (cout);
  float *wr = reorder (wt, cout, cin, taps);
  const int tv = T + 2;
  float *virt = calloc ((size_t) cin * tv * h * w, sizeof *virt);
  cl_to_cf (x, T, h, w, cin, virt, tv, 2);
  float *ref = malloc ((size_t) cout * T * h * w * sizeof *ref);
  int to, ho, wo;
  naive_conv (virt, cin, tv, h, w, wt, bias, cout, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1,
      ref, &to, &ho, &wo);
  CHECK (to == T, "handoff: naive gave %d frames", to);

  float *y = malloc ((size_t) T * h * w * cout * sizeof *y);
  float cache[2 * 4 * 5 * 6];
  int ncache = 0, t0 = 0;
  const int chunks[3] = { 1, 4, 4 };
  dit_tensor tw = dit_tensor_2d (wr, DIT_F32, DIT_DEVICE_CPU, cout, taps * cin);
  dit_tensor tb = dit_tensor_1d (bias, DIT_F32, DIT_DEVICE_CPU, cout);
  for (int c = 0; c < 3; c++) {
    const int n = chunks[c];
    dit_tensor tx = frames (x + t0 * fr, n, h, w, cin);
    dit_tensor tp = frames (cache, ncache, h, w, cin);
    dit_tensor ty = frames (y + (size_t) t0 * h * w * cout, n, h, w, cout);
    dit_vae_conv_params p = {
      .x = &tx, .prev = ncache ? &tp : NULL, .weight = &tw, .bias = &tb, .y = &ty,
      .kt = 3, .kh = 3, .kw = 3, .pad_front = 2 - ncache,
      .pad_top = 1, .pad_bottom = 1, .pad_left = 1, .pad_right = 1,
    };
    dit_status st = dit_vae_conv (be, &p);
    CHECK (st == DIT_OK, "handoff chunk %d: %s", c, dit_last_error ());
    /* new cache: last 2 frames of [cache, x] */
    float tmp[4 * 4 * 5 * 6];
    int nt = 0;
    for (int i = 0; i < ncache; i++)
      memcpy (tmp + (nt++) * fr, cache + i * fr, fr * sizeof (float));
    for (int i = (n > 2 ? n - 2 : 0); i < n; i++)
      memcpy (tmp + (nt++) * fr, x + (t0 + i) * fr, fr * sizeof (float));
    ncache = nt < 2 ? nt : 2;
    memcpy (cache, tmp + (nt - ncache) * fr, ncache * fr * sizeof (float));
    t0 += n;
  }
  double d = max_diff_cf_cl (ref, y, T, h, w, cout, (int64_t) h * w * cout);
  CHECK (d < 1e-4, "handoff: streaming vs one pass max diff %g", d);
  free (x); free (wt); free (bias); free (wr); free (virt); free (ref); free (y);
}

/* The upsample3d pattern: two half-weight convs writing frames 2t, 2t+1. */
static void
test_interleaved_output (dit_backend *be)
{
  const int C = 4, T = 3, h = 2, w = 3;
  float *x = rand_buf ((size_t) T * h * w * C);
  float *wt = rand_buf ((size_t) 2 * C * C * 3);
  float *bias = rand_buf (2 * C);
  float *wr = reorder (wt, 2 * C, C, 3);
  float *y = malloc ((size_t) 2 * T * h * w * C * sizeof *y);
  dit_tensor tx = frames (x, T, h, w, C);
  for (int half = 0; half < 2; half++) {
    dit_tensor ty = frames (y + half * h * w * C, T, h, w, C);
    ty.stride[0] = 2 * h * w * C;
    dit_tensor full = dit_tensor_2d (wr, DIT_F32, DIT_DEVICE_CPU, 2 * C, 3 * C);
    dit_tensor wh = dit_tensor_rows (&full, half * C, C);
    dit_tensor bh = dit_tensor_1d (bias + half * C, DIT_F32, DIT_DEVICE_CPU, C);
    dit_vae_conv_params p = { .x = &tx, .weight = &wh, .bias = &bh, .y = &ty,
        .kt = 3, .kh = 1, .kw = 1, .pad_front = 2 };
    CHECK (dit_vae_conv (be, &p) == DIT_OK, "interleave: %s", dit_last_error ());
  }
  /* reference: 2C-channel conv, then channel block s -> frame 2t+s */
  double m = 0;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < h * w; i++)
      for (int co = 0; co < 2 * C; co++) {
        double acc = bias[co];
        for (int a = 0; a < 3; a++) {
          int ti = t + a - 2;
          if (ti < 0)
            continue;
          for (int ci = 0; ci < C; ci++)
            acc += x[((size_t) ti * h * w + i) * C + ci] * wt[((size_t) co * C + ci) * 3 + a];
        }
        int s = co / C, c = co % C;
        double d = fabs (acc - y[((size_t) (2 * t + s) * h * w + i) * C + c]);
        if (d > m)
          m = d;
      }
  CHECK (m < 1e-5, "interleave: max diff %g", m);
  free (x); free (wt); free (bias); free (wr); free (y);
}

static void
test_conv_errors (dit_backend *be)
{
  float x[2 * 4 * 4 * 3] = { 0 }, w[5 * 27 * 3] = { 0 }, y[2 * 4 * 4 * 5];
  dit_tensor tx = frames (x, 2, 4, 4, 3);
  dit_tensor tw = dit_tensor_2d (w, DIT_F32, DIT_DEVICE_CPU, 5, 27 * 2);
  dit_tensor ty = frames (y, 2, 4, 4, 5);
  dit_vae_conv_params p = { .x = &tx, .weight = &tw, .y = &ty, .kt = 3, .kh = 3,
      .kw = 3, .pad_front = 2, .pad_top = 1, .pad_bottom = 1, .pad_left = 1,
      .pad_right = 1 };
  dit_status st = dit_vae_conv (be, &p);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "weight"),
      "wrong weight K: %d '%s'", st, dit_last_error ());
  tw = dit_tensor_2d (w, DIT_F32, DIT_DEVICE_CPU, 5, 27 * 3);
  dit_tensor ty2 = frames (y, 1, 4, 4, 5);
  p.y = &ty2;
  st = dit_vae_conv (be, &p);
  CHECK (st == DIT_ERR_INVALID && strstr (dit_last_error (), "expected [2, 4, 4, 5]"),
      "wrong y: %d '%s'", st, dit_last_error ());
  uint16_t xb[2 * 4 * 4 * 3];
  dit_tensor txb = dit_tensor_make (xb, DIT_BF16, DIT_DEVICE_CPU, 4, tx.shape);
  p.x = &txb;
  p.y = &ty;
  st = dit_vae_conv (be, &p);
  CHECK (st == DIT_ERR_UNSUPPORTED, "bf16 conv on cpu: %d '%s'", st, dit_last_error ());
}

static void
test_norm (dit_backend *be)
{
  const int n = 7, C = 13;
  float *x = rand_buf ((size_t) n * C), *g = rand_buf (C);
  float y[7 * 13], ys[7 * 13];
  memset (x + 3 * C, 0, C * sizeof (float));  /* all-zero row: eps branch */
  dit_tensor tx = frames (x, 1, 1, n, C);
  dit_tensor tg = dit_tensor_1d (g, DIT_F32, DIT_DEVICE_CPU, C);
  dit_tensor ty = frames (y, 1, 1, n, C), tys = frames (ys, 1, 1, n, C);
  dit_vae_norm_params p = { &tx, &tg, &ty, 0 };
  CHECK (dit_vae_norm (be, &p) == DIT_OK, "norm: %s", dit_last_error ());
  dit_vae_norm_params ps = { &tx, &tg, &tys, 1 };
  CHECK (dit_vae_norm (be, &ps) == DIT_OK, "norm silu: %s", dit_last_error ());
  double m = 0, ms = 0;
  for (int r = 0; r < n; r++) {
    double ss = 0;
    for (int c = 0; c < C; c++)
      ss += (double) x[r * C + c] * x[r * C + c];
    double den = sqrt (ss) > 1e-12 ? sqrt (ss) : 1e-12;
    for (int c = 0; c < C; c++) {
      double e = x[r * C + c] / den * sqrt ((double) C) * g[c];
      double es = e / (1.0 + exp (-e));
      m = fmax (m, fabs (e - y[r * C + c]));
      ms = fmax (ms, fabs (es - ys[r * C + c]));
    }
  }
  CHECK (m < 1e-5 && ms < 1e-5, "norm: max diff %g, silu %g", m, ms);
  CHECK (y[3 * C] == 0.0f && y[3 * C + 5] == 0.0f, "norm of zero row not 0");
  /* known value: x = (3, 4), gamma = 1: y = x / 5 * sqrt(2) */
  float x2[2] = { 3, 4 }, g2[2] = { 1, 1 }, y2[2];
  dit_tensor a = dit_tensor_2d (x2, DIT_F32, DIT_DEVICE_CPU, 1, 2);
  dit_tensor b = dit_tensor_1d (g2, DIT_F32, DIT_DEVICE_CPU, 2);
  dit_tensor c = dit_tensor_2d (y2, DIT_F32, DIT_DEVICE_CPU, 1, 2);
  dit_vae_norm_params p2 = { &a, &b, &c, 0 };
  CHECK (dit_vae_norm (be, &p2) == DIT_OK, "norm 2-d: %s", dit_last_error ());
  CHECK (fabs (y2[0] - 0.6 * sqrt (2.0)) < 1e-6 && fabs (y2[1] - 0.8 * sqrt (2.0)) < 1e-6,
      "norm known value: %g %g", y2[0], y2[1]);
  free (x); free (g);
}

static void
test_upsample_copy_layout (dit_backend *be)
{
  const int T = 2, h = 3, w = 2, C = 5;
  float *x = rand_buf ((size_t) T * h * w * C);
  float *y = malloc ((size_t) T * 4 * h * w * C * sizeof *y);
  dit_tensor tx = frames (x, T, h, w, C), ty = frames (y, T, 2 * h, 2 * w, C);
  dit_vae_upsample_params up = { &tx, &ty };
  CHECK (dit_vae_upsample (be, &up) == DIT_OK, "upsample: %s", dit_last_error ());
  int bad = 0;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < 2 * h; i++)
      for (int j = 0; j < 2 * w; j++)
        for (int c = 0; c < C; c++)
          bad += y[(((size_t) t * 2 * h + i) * 2 * w + j) * C + c]
              != x[(((size_t) t * h + i / 2) * w + j / 2) * C + c];
  CHECK (bad == 0, "upsample: %d wrong elements", bad);
  dit_tensor wrong = frames (y, T, 2 * h, w, C);
  up.y = &wrong;
  CHECK (dit_vae_upsample (be, &up) == DIT_ERR_INVALID, "upsample shape not checked");

  /* copy into a strided destination (every other frame) */
  float z[4 * 3 * 2 * 5] = { 0 };
  dit_tensor tz = frames (z, T, h, w, C);
  tz.stride[0] = 2 * h * w * C;
  dit_vae_copy_frames_params cp = { &tx, &tz };
  CHECK (dit_vae_copy_frames (be, &cp) == DIT_OK, "copy: %s", dit_last_error ());
  CHECK (memcmp (z, x, h * w * C * 4) == 0
      && memcmp (z + 2 * h * w * C, x + h * w * C, h * w * C * 4) == 0
      && z[h * w * C] == 0.0f, "copy_frames wrong");

  /* layout: [C, T, H, W] -> [T, H, W, C] with affine, back with clamp */
  float cf[5 * 2 * 3 * 2], cl[2 * 3 * 2 * 5], back[5 * 2 * 3 * 2];
  for (int i = 0; i < 60; i++)
    cf[i] = (float) i / 10.0f - 3.0f;
  int64_t scf[4] = { C, T, h, w };
  dit_tensor tcf = dit_tensor_make (cf, DIT_F32, DIT_DEVICE_CPU, 4, scf);
  dit_tensor tcl = frames (cl, T, h, w, C);
  dit_tensor tback = dit_tensor_make (back, DIT_F32, DIT_DEVICE_CPU, 4, scf);
  dit_vae_layout_params lp = { .x = &tcf, .y = &tcl, .to_channels_last = 1, .affine = 1 };
  for (int c = 0; c < C; c++) {
    lp.scale[c] = (float) (c + 1);
    lp.shift[c] = -0.5f * c;
  }
  CHECK (dit_vae_layout (be, &lp) == DIT_OK, "layout: %s", dit_last_error ());
  bad = 0;
  for (int c = 0; c < C; c++)
    for (int t = 0; t < T; t++)
      for (int i = 0; i < h * w; i++)
        bad += fabsf (cl[((size_t) t * h * w + i) * C + c]
            - (cf[((size_t) c * T + t) * h * w + i] * (c + 1) - 0.5f * c)) > 1e-6f;
  CHECK (bad == 0, "layout affine: %d wrong", bad);
  dit_vae_layout_params lb = { .x = &tcl, .y = &tback, .to_channels_last = 0,
      .clamp = 1, .clamp_lo = -1.0f, .clamp_hi = 1.0f };
  CHECK (dit_vae_layout (be, &lb) == DIT_OK, "layout back: %s", dit_last_error ());
  bad = 0;
  for (int c = 0; c < C; c++)
    for (int t = 0; t < T; t++)
      for (int i = 0; i < h * w; i++) {
        float e = cf[((size_t) c * T + t) * h * w + i] * (c + 1) - 0.5f * c;
        e = e < -1 ? -1 : (e > 1 ? 1 : e);
        bad += fabsf (back[((size_t) c * T + t) * h * w + i] - e) > 1e-6f;
      }
  CHECK (bad == 0, "layout clamp: %d wrong", bad);
  /* soft clamp after the affine (TAEHV's 3 tanh(x / 3) on the latent) */
  dit_vae_layout_params ls = { .x = &tcf, .y = &tcl, .to_channels_last = 1,
      .affine = 1, .soft_clamp = 3.0f };
  for (int c = 0; c < C; c++) {
    ls.scale[c] = 4.0f;
    ls.shift[c] = 0.25f;
  }
  CHECK (dit_vae_layout (be, &ls) == DIT_OK, "layout soft: %s", dit_last_error ());
  bad = 0;
  for (int c = 0; c < C; c++)
    for (int t = 0; t < T; t++)
      for (int i = 0; i < h * w; i++) {
        double v = cf[((size_t) c * T + t) * h * w + i] * 4.0 + 0.25;
        bad += fabs (cl[((size_t) t * h * w + i) * C + c] - 3.0 * tanh (v / 3.0))
            > 1e-6;
      }
  CHECK (bad == 0, "layout soft clamp: %d wrong", bad);
  free (x);
  free (y);
}

static void
test_dispatch (dit_backend *cpu)
{
  dit_backend_ops ops = *cpu->ops;
  ops.vae = NULL;
  dit_backend fake = *cpu;
  fake.ops = &ops;
  dit_vae_norm_params p = { 0 };
  dit_status st = dit_vae_norm (&fake, &p);
  CHECK (st == DIT_ERR_UNSUPPORTED && strstr (dit_last_error (), "not implemented"),
      "no vae table: %d '%s'", st, dit_last_error ());
  dit_vae_op_table t = { 0 };
  ops.vae = &t;
  st = dit_vae_conv (&fake, NULL);
  CHECK (st == DIT_ERR_INVALID, "NULL params: %d", st);
  dit_vae_conv_params cp = { 0 };
  st = dit_vae_conv (&fake, &cp);
  CHECK (st == DIT_ERR_UNSUPPORTED, "NULL conv entry: %d", st);
}

int
main (void)
{
  dit_backend *be = dit_backend_cpu ();
  if (!be || !be->ops || be->ops->vae != &dit_cpu_vae_ops) {
    fprintf (stderr, "FAIL: the CPU backend does not carry dit_cpu_vae_ops "
        "(kernels/cpu/backend_cpu.c .vae)\n");
    return 1;
  }
  test_conv_cases (be);
  test_cache_handoff (be);
  test_interleaved_output (be);
  test_conv_errors (be);
  test_norm (be);
  test_upsample_copy_layout (be);
  test_dispatch (be);
  if (failures) {
    fprintf (stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf ("test_vae_ops: all passed\n");
  return 0;
}
