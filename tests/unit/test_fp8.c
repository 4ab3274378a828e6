/* test_fp8 — e4m3 numbers, the scale rule and the CPU FP8 ops against
 * independent expected values.
 *
 * Expected values are exact numbers written out here (448, the subnormals,
 * ties), a brute-force nearest-value search over the 127 positive finite
 * e4m3 values (the oracle for every f32 rounding case), and naive f64
 * implementations of the GEMM and LayerNorm written in this file, never the
 * code under test.  The outlier cases show that a finite input cannot give
 * a NaN or an out-of-range code in any FP8 producer, because every scale
 * comes from its block's own maximum.
 */
#include "dit_backend.h"
#include "../common/check.h"
#include "../common/test_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dit_backend *be;

/* ---- e4m3 numbers ---------------------------------------------------------- */

/* The value of code c written from the format definition (not the library). */
static double
e4m3_value (int c)
{
  int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
  double v = e == 0 ? m / 512.0 : (1.0 + m / 8.0) * pow (2.0, e - 7);
  return s ? -v : v;
}

/* Nearest positive finite e4m3 code to |x| by search, ties to the even
 * code, saturated at 448. */
static int
oracle_code (float x)
{
  double a = fabs ((double) x);
  if (a >= 448.0)
    return (x < 0 ? 0x80 : 0) | 0x7e;
  static double value[0x7f];
  static int have;
  if (!have) {
    for (int c = 0; c <= 0x7e; c++)
      value[c] = e4m3_value (c);
    have = 1;
  }
  int best = 0;
  double bd = INFINITY;
  for (int c = 0; c <= 0x7e; c++) {
    double d = fabs (value[c] - a);
    if (d < bd || (d == bd && (c & 1) == 0 && (best & 1))) {
      bd = d;
      best = c;
    }
  }
  return (signbit (x) ? 0x80 : 0) | best;
}

static void
test_e4m3_values (void)
{
  static const struct { float x; int code; const char *what; } cases[] = {
    { 448.0f, 0x7e, "max" },
    { 449.0f, 0x7e, "above max saturates" },
    { 463.99f, 0x7e, "below the would-be tie" },
    { 464.0f, 0x7e, "tie with the missing 480 saturates" },
    { 1e9f, 0x7e, "huge" },
    { -1e30f, 0xfe, "huge negative" },
    { 1.0f, 0x38, "one" },
    { 1.0625f, 0x38, "tie 1 / 1.125 goes to even 1" },
    { 1.1875f, 0x3a, "tie 1.125 / 1.25 goes to even 1.25" },
    { 1.0625001f, 0x39, "just above a tie" },
    { 240.0f, 0x77, "1.875 * 2^7" },
    { 0.015625f, 0x08, "smallest normal 2^-6" },
    { 0.001953125f, 0x01, "smallest subnormal 2^-9" },
    { 0.0009765625f, 0x00, "tie 0 / 2^-9 goes to even 0" },
    { 0.0029296875f, 0x02, "tie 2^-9 / 2^-8 goes to even 2^-8" },
    { 0.013671875f, 0x07, "largest subnormal 7 * 2^-9" },
    { 0.0146484375f, 0x08, "tie 7 * 2^-9 / 2^-6 goes to even 2^-6" },
    { 1e-10f, 0x00, "underflow to zero" },
    { -0.0f, 0x80, "negative zero" },
    { -2.5f, 0xc2, "-2.5" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int got = dit_f32_to_e4m3 (cases[i].x);
    CHECK (got == cases[i].code, "e4m3(%.9g) = 0x%02x, want 0x%02x (%s)",
        cases[i].x, got, cases[i].code, cases[i].what);
  }
  CHECK (dit_f32_to_e4m3 (INFINITY) == 0x7e, "+inf saturates to 448");
  CHECK (dit_f32_to_e4m3 (-INFINITY) == 0xfe, "-inf saturates to -448");
  CHECK (dit_f32_to_e4m3 (NAN) == 0x7f, "NaN -> 0x7f");
  CHECK (dit_f32_to_e4m3 (-NAN) == 0x7f, "-NaN -> canonical 0x7f");
  CHECK (isnan (dit_e4m3_to_f32 (0x7f)) && isnan (dit_e4m3_to_f32 (0xff)),
      "0x7f and 0xff decode to NaN");
  CHECK (dit_e4m3_to_f32 (0x7e) == 448.0f, "0x7e = 448");
  CHECK (dit_e4m3_to_f32 (0x01) == 0.001953125f, "0x01 = 2^-9");

  /* every finite code decodes to the format's value and encodes back */
  int bad = 0;
  for (int c = 0; c < 256 && bad < 5; c++) {
    if ((c & 0x7f) == 0x7f)
      continue;
    float v = dit_e4m3_to_f32 ((uint8_t) c);
    if ((double) v != e4m3_value (c) || dit_f32_to_e4m3 (v) != c) {
      bad++;
      CHECK (0, "code 0x%02x: decodes to %.9g (want %.9g), encodes to 0x%02x",
          c, v, e4m3_value (c), dit_f32_to_e4m3 (v));
    }
  }
  /* random f32 values over the whole range, and the exact midpoints
   * between neighbouring codes, against the search oracle */
  bad = 0;
  for (int i = 0; i < 200000 && bad < 5; i++) {
    float x;
    if (i < 2 * 126) {
      int c = i / 2;
      x = (float) ((e4m3_value (c) + e4m3_value (c + 1)) / 2.0);
      if (i & 1)
        x = -x;
    } else {
      x = (float) ((2.0 * urand () - 1.0) * pow (2.0, 40.0 * urand () - 20.0));
    }
    int want = oracle_code (x), got = dit_f32_to_e4m3 (x);
    if (got != want) {
      bad++;
      CHECK (0, "e4m3(%.9g) = 0x%02x, the nearest value is 0x%02x", x, got, want);
    }
  }
}

/* ---- the scale rule --------------------------------------------------------- */

static void
test_scale_rule (void)
{
  CHECK (dit_fp8_scale (448.0f) == 1.0f && dit_fp8_inv_scale (448.0f) == 1.0f,
      "amax 448: unit scale");
  CHECK (dit_fp8_scale (1.0f) == 1.0f / 448.0f, "amax 1: scale 1/448");
  float s0 = dit_fp8_scale (0.0f), i0 = dit_fp8_inv_scale (0.0f);
  CHECK (isfinite (s0) && s0 > 0.0f && isfinite (i0),
      "amax 0: finite scale %g and factor %g", s0, i0);
  CHECK (isfinite (dit_fp8_inv_scale (1e-45f)), "subnormal amax: finite factor");
  CHECK (isfinite (dit_fp8_scale (3e38f)) && dit_fp8_inv_scale (3e38f) > 0.0f,
      "amax 3e38: finite scale, nonzero factor");

  /* quantize_row: the block maximum maps to ±448 exactly */
  float v[256], sc[2];
  uint8_t q[256];
  for (int i = 0; i < 256; i++)
    v[i] = frand () * 3.0f;
  v[17] = -7.25f;
  v[200] = 5.5f;
  dit_tensor tv = dit_tensor_2d (v, DIT_F32, DIT_DEVICE_CPU, 1, 256);
  dit_tensor tq = dit_tensor_2d (q, DIT_F8E4M3, DIT_DEVICE_CPU, 1, 256);
  dit_tensor ts = dit_tensor_2d (sc, DIT_F32, DIT_DEVICE_CPU, 2, 1);
  dit_quantize_fp8_params p = { &tv, &tq, &ts, 128 };
  CHECK_OK (dit_quantize_fp8 (be, &p));
  CHECK (q[17] == 0xfe, "block 0 max -7.25 -> code 0x%02x, want 0xfe", q[17]);
  CHECK (q[200] == 0x7e, "block 1 max 5.5 -> code 0x%02x, want 0x7e", q[200]);
  CHECK (sc[0] == 7.25f / 448.0f && sc[1] == 5.5f / 448.0f,
      "scales %g %g", sc[0], sc[1]);
  /* every value within half an e4m3 step of its dequantized code */
  double worst = 0.0;
  for (int i = 0; i < 256; i++) {
    double deq = dit_e4m3_to_f32 (q[i]) * (double) sc[i / 128];
    double tol = fabs ((double) v[i]) / 16.0 + sc[i / 128] / 1024.0;
    if (fabs (deq - v[i]) / tol > worst)
      worst = fabs (deq - v[i]) / tol;
  }
  CHECK (worst <= 1.0, "dequantized error %.3g of the bound", worst);

  /* dequantize_fp8: code × its block's scale, exactly (f32 output), and
   * quantizing that again gives the same codes and scales */
  float back[256], sc2[2];
  uint8_t q2[256];
  dit_tensor tb = dit_tensor_2d (back, DIT_F32, DIT_DEVICE_CPU, 1, 256);
  dit_dequantize_fp8_params d = { &tq, &ts, 128, &tb };
  CHECK_OK (dit_dequantize_fp8 (be, &d));
  int exact = 1;
  for (int i = 0; i < 256; i++)
    exact &= back[i] == (float) (e4m3_value (q[i]) * (double) sc[i / 128]);
  CHECK (exact, "dequantize: code times scale");
  dit_tensor tq2 = dit_tensor_2d (q2, DIT_F8E4M3, DIT_DEVICE_CPU, 1, 256);
  dit_tensor ts2 = dit_tensor_2d (sc2, DIT_F32, DIT_DEVICE_CPU, 2, 1);
  dit_quantize_fp8_params p2 = { &tb, &tq2, &ts2, 128 };
  CHECK_OK (dit_quantize_fp8 (be, &p2));
  CHECK (memcmp (q, q2, sizeof q) == 0 && sc2[0] == sc[0] && sc2[1] == sc[1],
      "quantize (dequantize (q)) = q");
}

static int
all_finite_codes (const uint8_t *q, size_t n, const float *sc, size_t ns)
{
  for (size_t i = 0; i < n; i++)
    if ((q[i] & 0x7f) == 0x7f)
      return 0;
  for (size_t i = 0; i < ns; i++)
    if (!isfinite (sc[i]) || !(sc[i] > 0.0f))
      return 0;
  return 1;
}

/* Rows with outliers: 1e4 next to 1e-4, huge and tiny blocks, an all-zero
 * block.  Every code must be finite, the outlier must come back within an
 * e4m3 step, and the small values of its block may only go to zero. */
static void
test_outliers (void)
{
  enum { R = 4, D = 256 };
  static float x[R * D];
  static uint8_t q[R * D];
  static float sc[(D / 128) * R];
  for (int i = 0; i < R * D; i++)
    x[i] = frand () * 1e-4f;
  x[0 * D + 3] = 1e4f;                 /* 1e4 beside 1e-4 */
  x[1 * D + 130] = -3e38f;             /* near the f32 limit */
  x[2 * D + 5] = 65504.0f;
  for (int i = 0; i < 256; i++)
    x[3 * D + i] = 0.0f;               /* an all-zero block */
  x[3 * D + 200] = 1e-30f;             /* and a block of one tiny value */
  dit_tensor tx = dit_tensor_2d (x, DIT_F32, DIT_DEVICE_CPU, R, D);
  dit_tensor tq = dit_tensor_2d (q, DIT_F8E4M3, DIT_DEVICE_CPU, R, D);
  dit_tensor ts = dit_tensor_2d (sc, DIT_F32, DIT_DEVICE_CPU, D / 128, R);
  dit_quantize_fp8_params p = { &tx, &tq, &ts, 128 };
  CHECK_OK (dit_quantize_fp8 (be, &p));
  CHECK (all_finite_codes (q, sizeof q, sc, sizeof sc / sizeof sc[0]),
      "quantize: a NaN code or a non-finite scale");
  float back = dit_e4m3_to_f32 (q[3]) * sc[0 * R + 0];
  CHECK (fabsf (back - 1e4f) <= 1e4f / 16.0f, "1e4 came back as %g", back);
  CHECK (dit_e4m3_to_f32 (q[4]) == 0.0f, "1e-4 beside 1e4 quantizes to 0");
  back = dit_e4m3_to_f32 (q[1 * D + 130]) * sc[1 * R + 1];
  CHECK (isfinite (back) && fabsf (back + 3e38f) <= 3e38f / 16.0f,
      "-3e38 came back as %g", back);
  for (int i = 0; i < 128; i++)
    CHECK (q[3 * D + i] == 0, "zero block: code 0x%02x", q[3 * D + i]);
  back = dit_e4m3_to_f32 (q[3 * D + 200]) * sc[1 * R + 3];
  CHECK (fabsf (back - 1e-30f) <= 1e-30f / 16.0f, "1e-30 came back as %g", back);

  /* the same rows through LayerNorm: normalisation turns the outlier into a
   * large, finite value; every code stays finite */
  static uint8_t ql[R * D];
  static float sl[(D / 128) * R];
  dit_tensor tql = dit_tensor_2d (ql, DIT_F8E4M3, DIT_DEVICE_CPU, R, D);
  dit_tensor tsl = dit_tensor_2d (sl, DIT_F32, DIT_DEVICE_CPU, D / 128, R);
  x[1 * D + 130] = -1e4f;
  dit_layernorm_fp8_params lp = { .x = &tx, .eps = 1e-6f, .y = &tql,
    .y_scale = &tsl, .block = 128 };
  CHECK_OK (dit_layernorm_fp8 (be, &lp));
  CHECK (all_finite_codes (ql, sizeof ql, sl, sizeof sl / sizeof sl[0]),
      "layernorm_fp8: a NaN code or a non-finite scale");

  /* a GEMM whose output row holds 1e4 next to 1e-4, quantized in its
   * epilogue */
  enum { M = 2, K = 128, N = 256 };
  static uint8_t xq[M * K], wq[N * K], yq[M * N];
  static float xs[M], ws[N], ys[(N / 128) * M];
  for (int i = 0; i < M * K; i++)
    xq[i] = 0x38;                          /* 1.0 */
  for (int n = 0; n < N; n++) {
    for (int k = 0; k < K; k++)
      wq[n * K + k] = k == 0 ? 0x38 : 0x00;
    ws[n] = n == 7 ? 1e4f : 1e-4f;         /* y[m, n] = ws[n] */
  }
  xs[0] = xs[1] = 1.0f;
  dit_tensor gx = dit_tensor_2d (xq, DIT_F8E4M3, DIT_DEVICE_CPU, M, K);
  dit_tensor gxs = dit_tensor_2d (xs, DIT_F32, DIT_DEVICE_CPU, 1, M);
  dit_tensor gw = dit_tensor_2d (wq, DIT_F8E4M3, DIT_DEVICE_CPU, N, K);
  dit_tensor gws = dit_tensor_1d (ws, DIT_F32, DIT_DEVICE_CPU, N);
  dit_tensor gy = dit_tensor_2d (yq, DIT_F8E4M3, DIT_DEVICE_CPU, M, N);
  dit_tensor gys = dit_tensor_2d (ys, DIT_F32, DIT_DEVICE_CPU, N / 128, M);
  dit_gemm_fp8_params gp = { &gx, &gxs, 128, &gw, &gws, NULL, &gy, &gys, 128,
    DIT_ACT_GELU_TANH, NULL, 0, NULL, 0 };
  CHECK_OK (dit_gemm_fp8 (be, &gp));
  CHECK (all_finite_codes (yq, sizeof yq, ys, sizeof ys / sizeof ys[0]),
      "gemm_fp8: a NaN code or a non-finite scale");
  back = dit_e4m3_to_f32 (yq[7]) * ys[0];
  CHECK (fabsf (back - 1e4f) <= 1e4f / 16.0f, "gemm 1e4 came back as %g", back);
}

/* ---- the CPU FP8 ops against f64 loops ---------------------------------------- */

static double
gelu64 (double u)
{
  return 0.5 * u * (1.0 + tanh (0.7978845608028654 * (u + 0.044715 * u * u * u)));
}

/* The operands of an FP8 GEMM, drawn from the program's stream in one
 * order (x codes, w codes, x block scales, then each output channel's w
 * scale and bias): codes of values within ±400, small positive scales. */
typedef struct gemm_operands {
  int M, K, N;
  uint8_t *xq, *wq;            /* [M, K], [N, K] */
  float *xs, *ws, *bias;       /* [K / 128, M], [N], [N] */
  dit_tensor tx, txs, tw, tws, tb;
} gemm_operands;

static gemm_operands
random_gemm_operands (int M, int K, int N)
{
  gemm_operands g = { .M = M, .K = K, .N = N };
  g.xq = malloc ((size_t) (M * K));
  g.wq = malloc ((size_t) (N * K));
  g.xs = malloc ((size_t) ((K / 128) * M) * sizeof (float));
  g.ws = malloc ((size_t) N * sizeof (float));
  g.bias = malloc ((size_t) N * sizeof (float));
  for (int i = 0; i < M * K; i++)
    g.xq[i] = dit_f32_to_e4m3 (frand () * 400.0f);
  for (int i = 0; i < N * K; i++)
    g.wq[i] = dit_f32_to_e4m3 (frand () * 400.0f);
  for (int i = 0; i < (K / 128) * M; i++)
    g.xs[i] = (float) (0.001 + urand () * 0.01);
  for (int n = 0; n < N; n++) {
    g.ws[n] = (float) (0.0001 + urand () * 0.001);
    g.bias[n] = frand ();
  }
  g.tx = dit_tensor_2d (g.xq, DIT_F8E4M3, DIT_DEVICE_CPU, M, K);
  g.txs = dit_tensor_2d (g.xs, DIT_F32, DIT_DEVICE_CPU, K / 128, M);
  g.tw = dit_tensor_2d (g.wq, DIT_F8E4M3, DIT_DEVICE_CPU, N, K);
  g.tws = dit_tensor_1d (g.ws, DIT_F32, DIT_DEVICE_CPU, N);
  g.tb = dit_tensor_1d (g.bias, DIT_F32, DIT_DEVICE_CPU, N);
  return g;
}

static void
gemm_operands_free (gemm_operands *g)
{
  free (g->xq);
  free (g->wq);
  free (g->xs);
  free (g->ws);
  free (g->bias);
}

/* Row m of x times row n of w in f64, dequantized by the definition (no
 * bias). */
static double
gemm_dot64 (const gemm_operands *g, int m, int n)
{
  const int M = g->M, K = g->K;
  double acc = 0.0;
  for (int k = 0; k < K; k++)
    acc += e4m3_value (g->xq[m * K + k]) * g->xs[(k / 128) * M + m]
        * e4m3_value (g->wq[n * K + k]) * g->ws[n];
  return acc;
}

static void
test_gemm_reference (void)
{
  enum { M = 19, K = 384, N = 40 };
  static float y[M * N];
  gemm_operands g = random_gemm_operands (M, K, N);
  for (int act = 0; act < 2; act++) {
    dit_tensor ty = dit_tensor_2d (y, DIT_F32, DIT_DEVICE_CPU, M, N);
    dit_gemm_fp8_params p = { &g.tx, &g.txs, 128, &g.tw, &g.tws, &g.tb, &ty,
      NULL, 0, act ? DIT_ACT_GELU_TANH : DIT_ACT_NONE, NULL, 0, NULL, 0 };
    CHECK_OK (dit_gemm_fp8 (be, &p));
    double num = 0.0, den = 0.0;
    for (int m = 0; m < M; m++)
      for (int n = 0; n < N; n++) {
        double acc = gemm_dot64 (&g, m, n) + g.bias[n];
        if (act)
          acc = gelu64 (acc);
        double d = y[m * N + n] - acc;
        num += d * d;
        den += acc * acc;
      }
    CHECK (num / den < 1e-12, "gemm_fp8 (act %d): NMSE %.3g against f64", act,
        num / den);
  }
  gemm_operands_free (&g);
}

/* The residual epilogue: y += gate[r / rpg] ⊙ (x w + b), into an f32 y. */
static void
test_gemm_residual (void)
{
  enum { M = 12, K = 256, N = 24, RPG = 5 };
  static float gate[3 * N], y[M * N], y0[M * N];
  gemm_operands g = random_gemm_operands (M, K, N);
  for (int i = 0; i < 3 * N; i++)
    gate[i] = frand ();
  for (int i = 0; i < M * N; i++)
    y[i] = y0[i] = frand () * 3.0f;
  dit_tensor tg = dit_tensor_2d (gate, DIT_F32, DIT_DEVICE_CPU, 3, N);
  dit_tensor ty = dit_tensor_2d (y, DIT_F32, DIT_DEVICE_CPU, M, N);
  dit_gemm_fp8_params p = { &g.tx, &g.txs, 128, &g.tw, &g.tws, &g.tb, &ty,
    NULL, 0, DIT_ACT_NONE, NULL, 1, &tg, RPG };
  CHECK_OK (dit_gemm_fp8 (be, &p));
  double num = 0.0, den = 0.0;
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double want = y0[m * N + n] + gate[(m / RPG) * N + n]
          * (gemm_dot64 (&g, m, n) + g.bias[n]);
      num += (y[m * N + n] - want) * (y[m * N + n] - want);
      den += want * want;
    }
  CHECK (num / den < 1e-12, "gemm_fp8 residual epilogue: NMSE %.3g", num / den);
  /* an FP8 output cannot take it */
  static uint8_t yq[M * N];
  static float ysc[(N / 8) * M];
  dit_tensor tyq = dit_tensor_2d (yq, DIT_F8E4M3, DIT_DEVICE_CPU, M, N);
  dit_tensor tys = dit_tensor_2d (ysc, DIT_F32, DIT_DEVICE_CPU, N / 8, M);
  p.y = &tyq;
  p.y_scale = &tys;
  p.y_block = 8;
  dit_clear_error ();
  CHECK (dit_gemm_fp8 (be, &p) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "16/32-bit y"), "gate with an FP8 y: %s",
      dit_last_error ());
  gemm_operands_free (&g);
}

static void
test_layernorm_reference (void)
{
  enum { R = 6, D = 256, RPG = 3 };
  static float x[R * D], w[D], b[D], sh[2 * D], sc[2 * D], ys[(D / 128) * R];
  static uint8_t yq[R * D];
  for (int i = 0; i < R * D; i++)
    x[i] = frand () * 4.0f + 1.0f;
  for (int i = 0; i < D; i++) {
    w[i] = 1.0f + 0.1f * frand ();
    b[i] = 0.1f * frand ();
  }
  for (int i = 0; i < 2 * D; i++) {
    sh[i] = 0.5f * frand ();
    sc[i] = 0.5f * frand ();
  }
  for (int variant = 0; variant < 2; variant++) {
    int affine = variant == 1, mod = variant == 0;
    dit_tensor tx = dit_tensor_2d (x, DIT_F32, DIT_DEVICE_CPU, R, D);
    dit_tensor tw = dit_tensor_1d (w, DIT_F32, DIT_DEVICE_CPU, D);
    dit_tensor tb = dit_tensor_1d (b, DIT_F32, DIT_DEVICE_CPU, D);
    dit_tensor tsh = dit_tensor_2d (sh, DIT_F32, DIT_DEVICE_CPU, 2, D);
    dit_tensor tsc = dit_tensor_2d (sc, DIT_F32, DIT_DEVICE_CPU, 2, D);
    dit_tensor ty = dit_tensor_2d (yq, DIT_F8E4M3, DIT_DEVICE_CPU, R, D);
    dit_tensor tys = dit_tensor_2d (ys, DIT_F32, DIT_DEVICE_CPU, D / 128, R);
    dit_layernorm_fp8_params p = { &tx, affine ? &tw : NULL, affine ? &tb : NULL,
      mod ? &tsh : NULL, mod ? &tsc : NULL, RPG, 1e-6f, &ty, &tys, 128 };
    CHECK_OK (dit_layernorm_fp8 (be, &p));
    int mismatched = 0, far = 0;
    for (int r = 0; r < R; r++) {
      double mean = 0.0, var = 0.0, v[D], amax[2] = { 0.0, 0.0 };
      for (int i = 0; i < D; i++)
        mean += x[r * D + i];
      mean /= D;
      for (int i = 0; i < D; i++)
        var += (x[r * D + i] - mean) * (x[r * D + i] - mean);
      var /= D;
      for (int i = 0; i < D; i++) {
        v[i] = (x[r * D + i] - mean) / sqrt (var + 1e-6);
        if (affine)
          v[i] = v[i] * w[i] + b[i];
        if (mod)
          v[i] = v[i] * (1.0 + sc[(r / RPG) * D + i]) + sh[(r / RPG) * D + i];
        if (fabs (v[i]) > amax[i / 128])
          amax[i / 128] = fabs (v[i]);
      }
      for (int blk = 0; blk < 2; blk++) {
        double s = ys[blk * R + r];
        CHECK (fabs (s - amax[blk] / 448.0) <= 1e-5 * s, "row %d block %d: "
            "scale %.9g, want %.9g", r, blk, s, amax[blk] / 448.0);
        for (int i = blk * 128; i < blk * 128 + 128; i++) {
          int want = oracle_code ((float) (v[i] * 448.0 / amax[blk]));
          int got = yq[r * D + i];
          if (got != want) {
            mismatched++;
            /* a value on a rounding boundary may go either way between
             * f32 and f64: never more than one code */
            if (abs ((got & 0x7f) - (want & 0x7f)) > 1 || (got ^ want) & 0x80)
              far++;
          }
        }
      }
    }
    CHECK (far == 0 && mismatched <= R * D / 100, "layernorm_fp8 (%s): %d codes "
        "differ from the f64 result, %d by more than one step",
        affine ? "affine" : "modulate", mismatched, far);
  }
}

/* Attention with an FP8 output gives the codes of its own f32 output,
 * quantized per (row, head). */
static void
test_attention_fp8 (void)
{
  enum { L = 24, N = 40, H = 2, Dh = 128, W = H * Dh };
  static float q[L * W], k[N * W], v[N * W], o[L * W], os[H * L];
  static uint8_t oq[L * W];
  for (int i = 0; i < L * W; i++)
    q[i] = frand ();
  for (int i = 0; i < N * W; i++) {
    k[i] = frand ();
    v[i] = frand () * (i % 97 == 0 ? 1e4f : 1.0f);   /* outliers */
  }
  dit_tensor tq = dit_tensor_2d (q, DIT_F32, DIT_DEVICE_CPU, L, W);
  dit_tensor tk = dit_tensor_2d (k, DIT_F32, DIT_DEVICE_CPU, N, W);
  dit_tensor tv = dit_tensor_2d (v, DIT_F32, DIT_DEVICE_CPU, N, W);
  dit_tensor to = dit_tensor_2d (o, DIT_F32, DIT_DEVICE_CPU, L, W);
  dit_tensor toq = dit_tensor_2d (oq, DIT_F8E4M3, DIT_DEVICE_CPU, L, W);
  dit_tensor tos = dit_tensor_2d (os, DIT_F32, DIT_DEVICE_CPU, H, L);
  dit_attn_params p = { .q = &tq, .k = &tk, .v = &tv, .o = &to, .heads = H,
    .head_dim = Dh, .scale = 0.088f, .bias_begin = 8, .bias_end = 24,
    .log_bias = -1.2f, .causal_block = 8, .q_pos0 = 16 };
  CHECK_OK (dit_attention (be, &p));
  p.o = &toq;
  p.o_scale = &tos;
  CHECK_OK (dit_attention (be, &p));
  int bad = 0;
  for (int r = 0; r < L; r++)
    for (int h = 0; h < H; h++) {
      float amax = 0.0f;
      for (int c = 0; c < Dh; c++)
        amax = fmaxf (amax, fabsf (o[r * W + h * Dh + c]));
      float inv = 448.0f / amax;
      if (os[h * L + r] != amax / 448.0f)
        bad++;
      for (int c = 0; c < Dh; c++)
        if (oq[r * W + h * Dh + c] != oracle_code (o[r * W + h * Dh + c] * inv))
          bad++;
    }
  CHECK (bad == 0, "attention fp8 output: %d codes or scales differ from its "
      "f32 output quantized per head", bad);
  CHECK (all_finite_codes (oq, sizeof oq, os, sizeof os / sizeof os[0]),
      "attention fp8 output: a NaN code or a non-finite scale");
  /* an f8 output without scales is refused */
  p.o_scale = NULL;
  dit_clear_error ();
  CHECK (dit_attention (be, &p) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "scale"), "missing o_scale: %s",
      dit_last_error ());
}

/* Shape and layout mistakes are refused with a message naming the tensor. */
static void
test_refusals (void)
{
  static uint8_t q[4 * 256];
  static float x[4 * 256], s[8];
  dit_tensor tx = dit_tensor_2d (x, DIT_F32, DIT_DEVICE_CPU, 4, 256);
  dit_tensor tq = dit_tensor_2d (q, DIT_F8E4M3, DIT_DEVICE_CPU, 4, 256);
  dit_tensor ts = dit_tensor_1d (s, DIT_F32, DIT_DEVICE_CPU, 4);
  dit_quantize_fp8_params p = { &tx, &tq, &ts, 128 };
  dit_clear_error ();
  CHECK (dit_quantize_fp8 (be, &p) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "needs 8 scales"), "too few scales: %s",
      dit_last_error ());
  ts = dit_tensor_1d (s, DIT_F32, DIT_DEVICE_CPU, 8);
  p.block = 100;
  CHECK (dit_quantize_fp8 (be, &p) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "block 100"), "bad block: %s",
      dit_last_error ());
  /* a bf16 tensor where FP8 codes are expected */
  dit_tensor wrong = dit_tensor_2d (x, DIT_BF16, DIT_DEVICE_CPU, 4, 256);
  dit_gemm_fp8_params g = { &wrong, &ts, 128, &tq, &ts, NULL, &tx, NULL, 0,
    DIT_ACT_NONE, NULL, 0, NULL, 0 };
  CHECK (dit_gemm_fp8 (be, &g) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "x has dtype bf16"), "bf16 x: %s",
      dit_last_error ());
  /* FP8 codes given to an op that does not take them */
  dit_tensor y = dit_tensor_2d (x, DIT_F32, DIT_DEVICE_CPU, 4, 256);
  dit_unary_params u = { &tq, &y, DIT_ACT_SILU };
  CHECK (dit_unary (be, &u) != DIT_OK, "unary took f8e4m3 codes");
}

int
main (void)
{
  be = dit_backend_cpu ();
  test_e4m3_values ();
  test_scale_rule ();
  test_outliers ();
  test_gemm_reference ();
  test_gemm_residual ();
  test_layernorm_reference ();
  test_attention_fp8 ();
  test_refusals ();
  printf ("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
