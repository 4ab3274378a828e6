/* test_ops — the CPU reference ops against independent expected values.
 *
 * Expected values come from hand computation written out in this file, from
 * the reference values of spec §8 (time sinusoid, RoPE omegas, patch index
 * orders), from the Random123 Philox known-answer vectors, or from naive
 * double-precision implementations written here (GEMM, attention), never
 * from the code under test.  Each check prints what differed; the program
 * returns 1 if any check failed.
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "dit_philox.h"
#include "../common/check.h"
#include "../common/test_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
check_near (const char *what, double got, double want, double tol)
{
  checks++;
  if (!(fabs (got - want) <= tol)) {
    failures++;
    fprintf (stderr, "FAIL %s: got %.9g want %.9g (tol %.3g)\n", what, got,
        want, tol);
  }
}

static dit_backend *be;

static dit_tensor
t2 (void *data, dit_dtype dt, int64_t r, int64_t c)
{
  return dit_tensor_2d (data, dt, DIT_DEVICE_CPU, r, c);
}

static dit_tensor
t1 (void *data, dit_dtype dt, int64_t n)
{
  return dit_tensor_1d (data, dt, DIT_DEVICE_CPU, n);
}

/* ------------------------------------------------------------------------ */

static void
test_conversions (void)
{
  /* bf16: round to nearest, ties to even. */
  CHECK (dit_f32_to_bf16 (1.0f) == 0x3f80, "bf16(1)");
  CHECK (dit_f32_to_bf16 (1.00390625f) == 0x3f80,
      "bf16(1 + 2^-8) tie rounds down to even: %04x", dit_f32_to_bf16 (1.00390625f));
  CHECK (dit_f32_to_bf16 (1.01171875f) == 0x3f82,
      "bf16(1 + 3*2^-8) tie rounds up to even: %04x", dit_f32_to_bf16 (1.01171875f));
  CHECK (dit_f32_to_bf16 (1.00390625f + 1.0f / 1048576.0f) == 0x3f81,
      "bf16 just above the tie rounds up");
  CHECK (dit_f32_to_bf16 (-2.5f) == 0xc020, "bf16(-2.5)");
  CHECK (dit_f32_to_bf16 (INFINITY) == 0x7f80, "bf16(inf)");
  CHECK (dit_f32_to_bf16 (3.4028235e38f) == 0x7f80, "bf16(FLT_MAX) overflows to inf");
  uint16_t qn = dit_f32_to_bf16 (NAN);
  CHECK ((qn & 0x7f80) == 0x7f80 && (qn & 0x7f) != 0, "bf16(nan) stays nan: %04x", qn);
  CHECK (dit_bf16_to_f32 (0x4049) == 3.140625f, "bf16 0x4049 = 3.140625");
  /* f16 */
  CHECK (dit_f32_to_f16 (1.0f) == 0x3c00, "f16(1)");
  CHECK (dit_f32_to_f16 (-2.0f) == 0xc000, "f16(-2)");
  CHECK (dit_f32_to_f16 (65504.0f) == 0x7bff, "f16(65504)");
  CHECK (dit_f32_to_f16 (65520.0f) == 0x7c00, "f16(65520) = inf");
  CHECK (dit_f32_to_f16 (0.1f) == 0x2e66, "f16(0.1) = %04x", dit_f32_to_f16 (0.1f));
  CHECK (dit_f32_to_f16 (5.9604645e-8f) == 0x0001, "f16(2^-24) subnormal");
  CHECK (dit_f32_to_f16 (1.0f + 1.0f / 2048.0f) == 0x3c00, "f16 tie to even");
  CHECK (dit_f16_to_f32 (0x3555) == 0.333251953125f, "f16 0x3555");
  CHECK (dit_f16_to_f32 (0x0001) == 5.9604645e-8f, "f16 smallest subnormal");
}

/* ------------------------------------------------------------------------ */

static void
test_gemm_small (void)
{
  /* x [3,2] · w[4,2]ᵀ: w rows are (1,0), (0,1), (1,1), (1,-1). */
  float x[6] = { 1, 2, 3, 4, 5, 6 };
  float w[8] = { 1, 0, 0, 1, 1, 1, 1, -1 };
  float bias[4] = { 0.5f, -1.0f, 0.0f, 2.0f };
  float want[12] = { 1.5f, 1, 3, 1, 3.5f, 3, 7, 1, 5.5f, 5, 11, 1 };
  float y[12];
  dit_tensor tx = t2 (x, DIT_F32, 3, 2), tw = t2 (w, DIT_F32, 4, 2);
  dit_tensor tb = t1 (bias, DIT_F32, 4), ty = t2 (y, DIT_F32, 3, 4);
  dit_gemm_params p = { &tx, &tw, &tb, &ty, DIT_ACT_NONE, 0, NULL, 0, NULL, NULL };
  CHECK_OK (dit_gemm (be, &p));
  for (int i = 0; i < 12; i++)
    CHECK (y[i] == want[i], "gemm y[%d] = %g want %g", i, y[i], want[i]);

  /* accumulate: y += x·wᵀ + b */
  for (int i = 0; i < 12; i++)
    y[i] = 10.0f;
  p.accumulate = 1;
  CHECK_OK (dit_gemm (be, &p));
  for (int i = 0; i < 12; i++)
    CHECK (y[i] == want[i] + 10.0f, "gemm accumulate y[%d] = %g", i, y[i]);

  /* bf16 storage of exactly representable values: same result. */
  uint16_t xb[6], wb[8], yb[12];
  for (int i = 0; i < 6; i++)
    xb[i] = dit_f32_to_bf16 (x[i]);
  for (int i = 0; i < 8; i++)
    wb[i] = dit_f32_to_bf16 (w[i]);
  dit_tensor txb = t2 (xb, DIT_BF16, 3, 2), twb = t2 (wb, DIT_BF16, 4, 2);
  dit_tensor tyb = t2 (yb, DIT_BF16, 3, 4);
  dit_gemm_params pb = { &txb, &twb, &tb, &tyb, DIT_ACT_NONE, 0, NULL, 0, NULL, NULL };
  CHECK_OK (dit_gemm (be, &pb));
  for (int i = 0; i < 12; i++)
    CHECK (dit_bf16_to_f32 (yb[i]) == want[i], "gemm bf16 y[%d] = %g", i,
        dit_bf16_to_f32 (yb[i]));

  /* Epilogues at known points: pre-activations 1 and -1 and 0. */
  float x1[2] = { 1.0f, 0.0f };
  float w1[6] = { 1, 0, -1, 0, 0, 0 };
  float y1[3];
  dit_tensor tx1 = t2 (x1, DIT_F32, 1, 2), tw1 = t2 (w1, DIT_F32, 3, 2);
  dit_tensor ty1 = t2 (y1, DIT_F32, 1, 3);
  dit_gemm_params pg = { &tx1, &tw1, NULL, &ty1, DIT_ACT_GELU_TANH, 0, NULL, 0, NULL, NULL };
  CHECK_OK (dit_gemm (be, &pg));
  check_near ("gemm GELU_tanh(1)", y1[0], 0.8411920, 1e-6);
  check_near ("gemm GELU_tanh(-1)", y1[1], -0.1588080, 1e-6);
  check_near ("gemm GELU_tanh(0)", y1[2], 0.0, 0.0);
  pg.act = DIT_ACT_SILU;
  CHECK_OK (dit_gemm (be, &pg));
  check_near ("gemm SiLU(1)", y1[0], 0.7310586, 1e-6);
  check_near ("gemm SiLU(-1)", y1[1], -0.2689414, 1e-6);

  /* addend ahead of the activation: pre-activations 1 + 0.5, -1 + 1, 0 - 2
   * (y itself as the addend, each element read before it is written) */
  y1[0] = 0.5f;
  y1[1] = 1.0f;
  y1[2] = -2.0f;
  pg.act = DIT_ACT_GELU_TANH;
  pg.addend = &ty1;
  CHECK_OK (dit_gemm (be, &pg));
  check_near ("gemm GELU_tanh(1 + addend 0.5)", y1[0], 1.3995715, 1e-6);
  check_near ("gemm GELU_tanh(-1 + addend 1)", y1[1], 0.0, 0.0);
  check_near ("gemm GELU_tanh(0 + addend -2)", y1[2], -0.0454023, 1e-6);
  pg.accumulate = 1;
  CHECK (dit_gemm (be, &pg) == DIT_ERR_INVALID
      && strstr (dit_last_error (), "added twice"),
      "addend = y with accumulate refused: %s", dit_last_error ());
}

static void
gemm_naive (const float *x, const float *w, const float *b, double *y,
    int M, int N, int K)
{
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = b ? b[j] : 0.0;
      for (int k = 0; k < K; k++)
        s += (double) x[i * K + k] * w[j * K + k];
      y[i * N + j] = s;
    }
}

static void
test_gemm_random (void)
{
  /* Odd sizes: partial row groups, column strips, K slices and tiles. */
  const int M = 70, N = 300, K = 530;
  float *x = malloc (sizeof (float) * M * K);
  float *w = malloc (sizeof (float) * N * K);
  float *b = malloc (sizeof (float) * N);
  double *ref = malloc (sizeof (double) * M * N);
  /* y is a column slice [.., 5 .. 5+N) of a wider [M, N+9] buffer. */
  const int ldy = N + 9;
  float *ybuf = malloc (sizeof (float) * M * ldy);
  float *yrow = malloc (sizeof (float) * N);
  for (int i = 0; i < M * K; i++)
    x[i] = frand ();
  for (int i = 0; i < N * K; i++)
    w[i] = frand ();
  for (int i = 0; i < N; i++)
    b[i] = frand ();
  for (int i = 0; i < M * ldy; i++)
    ybuf[i] = 12345.0f;
  gemm_naive (x, w, b, ref, M, N, K);

  dit_tensor tx = t2 (x, DIT_F32, M, K), tw = t2 (w, DIT_F32, N, K);
  dit_tensor tb = t1 (b, DIT_F32, N);
  dit_tensor full = t2 (ybuf, DIT_F32, M, ldy);
  dit_tensor ty = dit_tensor_cols (&full, 5, N);
  dit_gemm_params p = { &tx, &tw, &tb, &ty, DIT_ACT_NONE, 0, NULL, 0, NULL, NULL };
  CHECK_OK (dit_gemm (be, &p));
  double maxerr = 0.0;
  int untouched = 1;
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      double e = fabs (ybuf[i * ldy + 5 + j] - ref[i * N + j]);
      if (e > maxerr)
        maxerr = e;
    }
    for (int j = 0; j < 5; j++)
      untouched &= ybuf[i * ldy + j] == 12345.0f;
    for (int j = 5 + N; j < ldy; j++)
      untouched &= ybuf[i * ldy + j] == 12345.0f;
  }
  CHECK (maxerr < 2e-4, "gemm [%d,%d]x[%d,%d] max error %g vs f64", M, K, N, K, maxerr);
  CHECK (untouched, "gemm wrote outside the y column slice");

  /* Row-by-row calls must give the same bits as the whole matrix: no
   * element's arithmetic depends on tiling or threads. */
  int same = 1;
  for (int i = 0; i < M; i++) {
    dit_tensor xr = dit_tensor_rows (&tx, i, 1);
    dit_tensor yr = t2 (yrow, DIT_F32, 1, N);
    dit_gemm_params pr = { &xr, &tw, &tb, &yr, DIT_ACT_NONE, 0, NULL, 0, NULL, NULL };
    CHECK_OK (dit_gemm (be, &pr));
    same &= memcmp (yrow, ybuf + i * ldy + 5, sizeof (float) * N) == 0;
  }
  CHECK (same, "gemm row-by-row differs from the whole-matrix result");

  free (x);
  free (w);
  free (b);
  free (ref);
  free (ybuf);
  free (yrow);
}

/* ------------------------------------------------------------------------ */

/* The folded residual: y += gate[r / rpg] ⊙ (x wᵀ + b) into an f32 y with
 * bf16 x, w and bias and a strided f32 gate (every other row of a table,
 * like one column block of the model's modulation), against an f64 naive
 * sum of the same bf16 values, and against the chain it replaces (GEMM
 * into a buffer, then the gated residual op).  Groups of 7 rows cross the
 * 64-row tiles of the GEMM. */
static void
test_gemm_gated (void)
{
  const int M = 70, N = 40, K = 33, rpg = 7, G = (M + rpg - 1) / rpg;
  uint16_t *xb = malloc (sizeof (uint16_t) * M * K);
  uint16_t *wb = malloc (sizeof (uint16_t) * N * K);
  uint16_t *bb = malloc (sizeof (uint16_t) * N);
  float *xf = malloc (sizeof (float) * M * K), *wf = malloc (sizeof (float) * N * K);
  float *bf = malloc (sizeof (float) * N);
  float *gate = malloc (sizeof (float) * 2 * G * N);
  float *y = malloc (sizeof (float) * M * N), *y2 = malloc (sizeof (float) * M * N);
  float *proj = malloc (sizeof (float) * M * N);
  double *ref = malloc (sizeof (double) * M * N);
  for (int i = 0; i < M * K; i++)
    xf[i] = dit_bf16_to_f32 (xb[i] = dit_f32_to_bf16 (frand ()));
  for (int i = 0; i < N * K; i++)
    wf[i] = dit_bf16_to_f32 (wb[i] = dit_f32_to_bf16 (frand ()));
  for (int i = 0; i < N; i++)
    bf[i] = dit_bf16_to_f32 (bb[i] = dit_f32_to_bf16 (frand ()));
  for (int i = 0; i < 2 * G * N; i++)
    gate[i] = frand ();
  for (int i = 0; i < M * N; i++)
    y[i] = y2[i] = frand ();
  gemm_naive (xf, wf, bf, ref, M, N, K);

  dit_tensor tx = t2 (xb, DIT_BF16, M, K), tw = t2 (wb, DIT_BF16, N, K);
  dit_tensor tb = t1 (bb, DIT_BF16, N), ty = t2 (y, DIT_F32, M, N);
  dit_tensor tg = t2 (gate, DIT_F32, G, N);
  tg.stride[0] = 2 * N;
  dit_gemm_params p = { &tx, &tw, &tb, &ty, DIT_ACT_NONE, 1, &tg, rpg, NULL, NULL };
  CHECK_OK (dit_gemm (be, &p));
  double maxerr = 0.0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double g = gate[(i / rpg) * 2 * N + j];
      double want = y2[i * N + j] + g * ref[i * N + j];
      double e = fabs (y[i * N + j] - want);
      maxerr = e > maxerr ? e : maxerr;
    }
  CHECK (maxerr < 1e-5, "gated gemm max error %g vs f64", maxerr);

  /* the chain: proj = x wᵀ + b (f32), then x += gate ⊙ proj */
  dit_tensor tp = t2 (proj, DIT_F32, M, N), ty2 = t2 (y2, DIT_F32, M, N);
  dit_gemm_params pp = { &tx, &tw, &tb, &tp, DIT_ACT_NONE, 0, NULL, 0, NULL, NULL };
  CHECK_OK (dit_gemm (be, &pp));
  dit_residual_params rp = { &ty2, &tp, &tg, rpg };
  CHECK_OK (dit_residual (be, &rp));
  double chain = 0.0;
  for (int i = 0; i < M * N; i++) {
    double e = fabs ((double) y[i] - y2[i]) / (fabs (y2[i]) + 1e-3);
    chain = e > chain ? e : chain;
  }
  CHECK (chain < 1e-6, "gated gemm vs gemm + gated residual: max rel %g", chain);

  /* a gate with too few rows for M / rpg groups is refused */
  dit_tensor tshort = tg;
  tshort.shape[0] = G - 1;
  p.gate = &tshort;
  CHECK (dit_gemm (be, &p) == DIT_ERR_INVALID, "gated gemm with %d gate rows "
      "for %d groups must fail", G - 1, G);

  free (xb); free (wb); free (bb); free (xf); free (wf); free (bf);
  free (gate); free (y); free (y2); free (proj); free (ref);
}

static void
test_layernorm (void)
{
  float x[4] = { 1, 2, 3, 4 }, y[4];
  /* mean 2.5, biased var 1.25: (x - 2.5) / sqrt(1.25 + 1e-6) */
  const double want[4] = { -1.341640250, -0.447213417, 0.447213417, 1.341640250 };
  dit_tensor tx = t2 (x, DIT_F32, 1, 4), ty = t2 (y, DIT_F32, 1, 4);
  dit_layernorm_params p = { &tx, NULL, NULL, &ty, 1e-6f };
  CHECK_OK (dit_layernorm (be, &p));
  for (int i = 0; i < 4; i++)
    check_near ("layernorm [1,2,3,4]", y[i], want[i], 2e-6);

  float wt[4] = { 1, 2, -1, 0.5f }, bs[4] = { 0, 1, 0.5f, -2 };
  dit_tensor tw = t1 (wt, DIT_F32, 4), tb = t1 (bs, DIT_F32, 4);
  dit_layernorm_params pa = { &tx, &tw, &tb, &ty, 1e-6f };
  CHECK_OK (dit_layernorm (be, &pa));
  for (int i = 0; i < 4; i++)
    check_near ("layernorm affine", y[i], want[i] * wt[i] + bs[i], 2e-6);

  /* in place, bf16, two rows */
  uint16_t xb[8];
  float rows[8] = { 1, 2, 3, 4, 10, 10, 10, 10 };
  for (int i = 0; i < 8; i++)
    xb[i] = dit_f32_to_bf16 (rows[i]);
  dit_tensor txb = t2 (xb, DIT_BF16, 2, 4);
  dit_layernorm_params pi = { &txb, NULL, NULL, &txb, 1e-6f };
  CHECK_OK (dit_layernorm (be, &pi));
  for (int i = 0; i < 4; i++)
    check_near ("layernorm in-place bf16", dit_bf16_to_f32 (xb[i]), want[i], 1e-2);
  for (int i = 4; i < 8; i++)
    check_near ("layernorm constant row", dit_bf16_to_f32 (xb[i]), 0.0, 0.0);
}

static void
test_rmsnorm (void)
{
  /* Full width: the statistic is over all 8 channels (mean square
   * (1 + 4 + 9 + 16 + 4) / 8 = 4.25), not per head of 4. */
  float x[8] = { 1, 2, 3, 4, 1, 1, 1, 1 }, y[8];
  float w[8] = { 1, 1, 2, 0.5f, 1, 1, 1, 1 };
  const double r = 0.485071193; /* 1/sqrt(4.25 + 1e-6) */
  dit_tensor tx = t2 (x, DIT_F32, 1, 8), ty = t2 (y, DIT_F32, 1, 8);
  dit_tensor tw = t1 (w, DIT_F32, 8);
  dit_rmsnorm_params p = { &tx, &tw, &ty, 1e-6f };
  CHECK_OK (dit_rmsnorm (be, &p));
  const double want[8] = { r, 2 * r, 6 * r, 2 * r, r, r, r, r };
  for (int i = 0; i < 8; i++)
    check_near ("rmsnorm full width", y[i], want[i], 1e-6);
  /* in place */
  CHECK_OK (dit_rmsnorm (be, &(dit_rmsnorm_params) { &tx, &tw, &tx, 1e-6f }));
  for (int i = 0; i < 8; i++)
    check_near ("rmsnorm in place", x[i], want[i], 1e-6);
}

static void
test_modulate (void)
{
  /* 4 rows in 2 groups of 2: y = x * (1 + scale[g]) + shift[g] */
  float x[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, y[8];
  float shift[4] = { 1, 2, 3, 4 }, scale[4] = { 0, 1, -1, 0.5f };
  const float want[8] = { 2, 6, 4, 10, 3, 13, 3, 16 };
  dit_tensor tx = t2 (x, DIT_F32, 4, 2), ty = t2 (y, DIT_F32, 4, 2);
  dit_tensor tsh = t2 (shift, DIT_F32, 2, 2), tsc = t2 (scale, DIT_F32, 2, 2);
  dit_modulate_params p = { &tx, &tsh, &tsc, &ty, 2 };
  CHECK_OK (dit_modulate (be, &p));
  for (int i = 0; i < 8; i++)
    CHECK (y[i] == want[i], "modulate y[%d] = %g want %g", i, y[i], want[i]);
  /* too few groups */
  p.rows_per_group = 1;
  CHECK (dit_modulate (be, &p) == DIT_ERR_INVALID, "modulate with 4 groups needed");
}

static void
test_residual (void)
{
  float x[4] = { 1, 2, 3, 4 }, y[4] = { 10, 20, 30, 40 };
  float gate[4] = { 0.5f, -1, 2, 0 };
  dit_tensor tx = t2 (x, DIT_F32, 2, 2), ty = t2 (y, DIT_F32, 2, 2);
  dit_tensor tg = t2 (gate, DIT_F32, 2, 2);
  /* rows_per_group 1: row 0 uses gate row 0, row 1 gate row 1 */
  dit_residual_params p = { &tx, &ty, &tg, 1 };
  CHECK_OK (dit_residual (be, &p));
  const float want[4] = { 6, -18, 63, 4 };
  for (int i = 0; i < 4; i++)
    CHECK (x[i] == want[i], "gated residual x[%d] = %g want %g", i, x[i], want[i]);
  dit_residual_params pn = { &tx, &ty, NULL, 1 };
  CHECK_OK (dit_residual (be, &pn));
  for (int i = 0; i < 4; i++)
    CHECK (x[i] == want[i] + y[i], "plain residual x[%d] = %g", i, x[i]);
}

static void
test_add_unary (void)
{
  float a[6] = { 1, 2, 3, 4, 5, 6 }, b[3] = { 10, 20, 30 }, y[6];
  dit_tensor ta = t2 (a, DIT_F32, 2, 3), tb = t1 (b, DIT_F32, 3);
  dit_tensor ty = t2 (y, DIT_F32, 2, 3);
  CHECK_OK (dit_add (be, &(dit_add_params) { &ta, &tb, &ty }));
  const float want[6] = { 11, 22, 33, 14, 25, 36 };
  for (int i = 0; i < 6; i++)
    CHECK (y[i] == want[i], "add broadcast y[%d] = %g", i, y[i]);
  float b4[4] = { 0 };
  dit_tensor tb4 = t1 (b4, DIT_F32, 4);
  CHECK (dit_add (be, &(dit_add_params) { &ta, &tb4, &ty }) == DIT_ERR_INVALID,
      "add with 6 %% 4 != 0 must fail");

  float u[4] = { 1, -1, 0, -2 }, s[4];
  dit_tensor tu = t2 (u, DIT_F32, 1, 4), ts = t2 (s, DIT_F32, 1, 4);
  CHECK_OK (dit_unary (be, &(dit_unary_params) { &tu, &ts, DIT_ACT_SILU }));
  check_near ("SiLU(1)", s[0], 0.7310586, 1e-6);
  check_near ("SiLU(-1)", s[1], -0.2689414, 1e-6);
  check_near ("SiLU(0)", s[2], 0.0, 0.0);
  check_near ("SiLU(-2)", s[3], -0.2384058, 1e-6);
  CHECK_OK (dit_unary (be, &(dit_unary_params) { &tu, &tu, DIT_ACT_GELU_TANH }));
  check_near ("GELU_tanh(1) in place", u[0], 0.8411920, 1e-6);
  check_near ("GELU_tanh(-1) in place", u[1], -0.1588080, 1e-6);
}

static void
test_copy (void)
{
  /* Source: columns 1..3 of a [3,5] f32 matrix; destination: columns 2..4
   * of a [3,6] bf16 matrix.  Values 0.1*k are not exact in bf16. */
  float src[15];
  uint16_t dst[18];
  for (int i = 0; i < 15; i++)
    src[i] = 0.1f * (float) i;
  for (int i = 0; i < 18; i++)
    dst[i] = 0xffff;
  dit_tensor sfull = t2 (src, DIT_F32, 3, 5), dfull = t2 (dst, DIT_BF16, 3, 6);
  dit_tensor sx = dit_tensor_cols (&sfull, 1, 3), dy = dit_tensor_cols (&dfull, 2, 3);
  CHECK_OK (dit_copy (be, &(dit_copy_params) { &sx, &dy }));
  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 6; c++) {
      uint16_t got = dst[r * 6 + c];
      if (c >= 2 && c < 5) {
        uint16_t want = dit_f32_to_bf16 (src[r * 5 + 1 + c - 2]);
        CHECK (got == want, "copy f32->bf16 [%d,%d] = %04x want %04x", r, c, got, want);
      } else {
        CHECK (got == 0xffff, "copy wrote outside the view at [%d,%d]", r, c);
      }
    }
  /* bf16 -> f16 back into a contiguous [3,3] */
  uint16_t h[9];
  dit_tensor th = t2 (h, DIT_F16, 3, 3);
  CHECK_OK (dit_copy (be, &(dit_copy_params) { &dy, &th }));
  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 3; c++)
      CHECK (dit_f16_to_f32 (h[r * 3 + c]) == dit_bf16_to_f32 (dst[r * 6 + 2 + c])
          || fabsf (dit_f16_to_f32 (h[r * 3 + c]) - dit_bf16_to_f32 (dst[r * 6 + 2 + c]))
          < 1e-3f, "copy bf16->f16 [%d,%d]", r, c);
  /* transposed strides (column stride != 1) */
  float tsrc[6] = { 1, 2, 3, 4, 5, 6 }, tdst[6];
  dit_tensor tt = t2 (tsrc, DIT_F32, 3, 2);
  tt.stride[0] = 1;
  tt.stride[1] = 3; /* view of the [2,3] matrix transposed */
  dit_tensor td = t2 (tdst, DIT_F32, 3, 2);
  CHECK_OK (dit_copy (be, &(dit_copy_params) { &tt, &td }));
  const float twant[6] = { 1, 4, 2, 5, 3, 6 };
  for (int i = 0; i < 6; i++)
    CHECK (tdst[i] == twant[i], "copy transposed [%d] = %g", i, tdst[i]);
  dit_tensor bad = t2 (tdst, DIT_F32, 2, 3);
  CHECK (dit_copy (be, &(dit_copy_params) { &tt, &bad }) == DIT_ERR_INVALID,
      "copy of a strided [3,2] into [2,3] must fail");
  /* broadcast: a stride-0 middle dimension repeats each row (the model
   * spreads e0 over the blocks this way) */
  float bsrc[4] = { 1, 2, 3, 4 }, bdst[12];
  int64_t bshape[3] = { 2, 3, 2 };
  dit_tensor tbs = dit_tensor_make (bsrc, DIT_F32, DIT_DEVICE_CPU, 3, bshape);
  tbs.stride[0] = 2;
  tbs.stride[1] = 0;
  tbs.stride[2] = 1;
  dit_tensor tbd = dit_tensor_make (bdst, DIT_F32, DIT_DEVICE_CPU, 3, bshape);
  CHECK_OK (dit_copy (be, &(dit_copy_params) { &tbs, &tbd }));
  const float bwant[12] = { 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4 };
  for (int i = 0; i < 12; i++)
    CHECK (bdst[i] == bwant[i], "broadcast copy [%d] = %g", i, bdst[i]);
}

/* ------------------------------------------------------------------------ */

static float cos_tab[DIT_ROPE_POSITIONS * DIT_ROPE_PAIRS];
static float sin_tab[DIT_ROPE_POSITIONS * DIT_ROPE_PAIRS];

static double
tab_angle (int pos, int pair)
{
  return atan2 (sin_tab[pos * 64 + pair], cos_tab[pos * 64 + pair]);
}

static void
test_rope (void)
{
  dit_rope_table_fill (cos_tab, sin_tab);
  /* spec §8: ω^t_1 = 10000^(-2/44) = 0.65793..., ω^s_1 = 10000^(-2/42) = 0.64495... */
  check_near ("rope pair 1 angle at pos 1", tab_angle (1, 1), 0.65793, 1e-5);
  check_near ("rope pair 23 angle at pos 1", tab_angle (1, 23), 0.64495, 1e-5);
  check_near ("rope pair 44 angle at pos 1", tab_angle (1, 44), 0.64495, 1e-5);
  check_near ("rope pair 22 angle at pos 1", tab_angle (1, 22), 1.0, 1e-7);
  check_near ("rope pair 43 angle at pos 1", tab_angle (1, 43), 1.0, 1e-7);
  check_near ("rope pair 0 angle at pos 3", tab_angle (3, 0), 3.0, 1e-7);
  /* pair 21 is the last temporal one: 10000^(-42/44) */
  check_near ("rope pair 21 angle at pos 1", tab_angle (1, 21), 1.519911082952933e-4, 1e-9);
  /* pair 42 (last height) and 63 (last width): 10000^(-40/42) */
  check_near ("rope pair 42 angle at pos 1", tab_angle (1, 42), 1.5505157798326253e-4, 1e-9);
  check_near ("rope pair 63 angle at pos 1", tab_angle (1, 63), 1.5505157798326253e-4, 1e-9);
  check_near ("rope cos at pos 1000 pair 0", cos_tab[1000 * 64], cos (1000.0), 1e-6);
  for (int i = 0; i < 64; i++)
    CHECK (cos_tab[i] == 1.0f && sin_tab[i] == 0.0f, "rope position 0 pair %d", i);

  dit_tensor tc = t2 (cos_tab, DIT_F32, 1024, 64), ts = t2 (sin_tab, DIT_F32, 1024, 64);
  /* grid (2, 2, 2), 2 heads: token 4 = (1,0,0), 2 = (0,1,0), 1 = (0,0,1). */
  const int L = 8, W = 256;
  float *x = malloc (sizeof (float) * L * W), *x0 = malloc (sizeof (float) * L * W);
  for (int i = 0; i < L * W; i++)
    x0[i] = x[i] = frand ();
  dit_tensor tx = t2 (x, DIT_F32, L, W);
  dit_rope_params p = { &tx, &tc, &ts, 2, 2, 2, 2, 0 };
  CHECK_OK (dit_rope (be, &p));
  struct { int tok, lo, hi; } only[4] = { { 0, 0, 0 }, { 4, 0, 44 }, { 2, 44, 86 },
      { 1, 86, 128 } };
  for (int t = 0; t < 4; t++) {
    int tok = only[t].tok, bad_same = 0, bad_changed = 0;
    for (int hd = 0; hd < 2; hd++)
      for (int d = 0; d < 128; d++) {
        int i = tok * W + hd * 128 + d;
        int inside = d >= only[t].lo && d < only[t].hi;
        if (inside && x[i] == x0[i])
          bad_same++;
        if (!inside && x[i] != x0[i])
          bad_changed++;
      }
    CHECK (!bad_same && !bad_changed, "rope token %d: %d dims in [%d,%d) "
        "unchanged, %d outside changed", tok, bad_same, only[t].lo, only[t].hi,
        bad_changed);
  }
  /* exact rotation of pair 1 of token 4 (f = 1), head 1 */
  {
    double ang = 0.6579332246575682, c = cos (ang), s = sin (ang);
    int i = 4 * W + 128 + 2;
    check_near ("rope rotated a", x[i], x0[i] * c - x0[i + 1] * s, 1e-6);
    check_near ("rope rotated b", x[i + 1], x0[i] * s + x0[i + 1] * c, 1e-6);
  }
  /* frame_offset 3: token 0 (f = 0) rotates its temporal pairs by 3·ω */
  memcpy (x, x0, sizeof (float) * L * W);
  p.frame_offset = 3;
  CHECK_OK (dit_rope (be, &p));
  {
    int i = 0;
    check_near ("rope frame_offset pair 0 a", x[i], x0[i] * cos (3.0) - x0[i + 1] * sin (3.0), 1e-6);
    check_near ("rope frame_offset pair 0 b", x[i + 1], x0[i] * sin (3.0) + x0[i + 1] * cos (3.0), 1e-6);
    int same = 1;
    for (int d = 44; d < 128; d++)
      same &= x[d] == x0[d];
    CHECK (same, "rope frame_offset moved spatial dims of token 0");
  }
  /* bad grid */
  p.grid_f = 3;
  CHECK (dit_rope (be, &p) == DIT_ERR_INVALID, "rope with a 12-token grid for 8 rows");
  p.grid_f = 2;
  p.frame_offset = 1023;
  CHECK (dit_rope (be, &p) == DIT_ERR_INVALID, "rope position 1024 is outside the table");
  free (x);
  free (x0);
}

/* ------------------------------------------------------------------------ */

static void
attn_naive (const float *q, const float *k, const float *v, double *o, int L,
    int N, int H, int d, double scale, int64_t bb, int64_t bend, double logb,
    int64_t cb, int64_t qp0)
{
  double *s = malloc (sizeof (double) * N);
  int W = H * d;
  for (int h = 0; h < H; h++)
    for (int r = 0; r < L; r++) {
      int64_t end = N;
      if (cb > 0) {
        end = ((qp0 + r) / cb + 1) * cb;
        if (end > N)
          end = N;
      }
      double mx = -INFINITY;
      for (int j = 0; j < end; j++) {
        double dot = 0.0;
        for (int c = 0; c < d; c++)
          dot += (double) q[r * W + h * d + c] * k[j * W + h * d + c];
        s[j] = dot * scale + (j >= bb && j < bend ? logb : 0.0);
        if (s[j] > mx)
          mx = s[j];
      }
      double den = 0.0;
      for (int j = 0; j < end; j++) {
        s[j] = exp (s[j] - mx);
        den += s[j];
      }
      for (int c = 0; c < d; c++) {
        double acc = 0.0;
        for (int j = 0; j < end; j++)
          acc += s[j] * v[j * W + h * d + c];
        o[r * W + h * d + c] = acc / den;
      }
    }
  free (s);
}

static void
attn_case (const char *name, int L, int N, int H, int d, int64_t bb, int64_t bend,
    double bias, int64_t cb, int64_t qp0, dit_dtype dt, double tol)
{
  int W = H * d;
  float *q = malloc (sizeof (float) * L * W), *k = malloc (sizeof (float) * N * W);
  float *v = malloc (sizeof (float) * N * W), *o = malloc (sizeof (float) * L * W);
  double *ref = malloc (sizeof (double) * L * W);
  uint16_t *qh = malloc (2 * (size_t) L * W), *kh = malloc (2 * (size_t) N * W);
  uint16_t *vh = malloc (2 * (size_t) N * W), *oh = malloc (2 * (size_t) L * W);
  for (int i = 0; i < L * W; i++)
    q[i] = 2.0f * frand ();
  for (int i = 0; i < N * W; i++) {
    k[i] = 2.0f * frand ();
    v[i] = frand ();
  }
  if (dt != DIT_F32) {
    /* Round inputs to the storage dtype so the reference sees the same. */
    for (int i = 0; i < L * W; i++) {
      dit_store_f32 (qh, dt, i, q[i]);
      q[i] = dit_load_f32 (qh, dt, i);
    }
    for (int i = 0; i < N * W; i++) {
      dit_store_f32 (kh, dt, i, k[i]);
      k[i] = dit_load_f32 (kh, dt, i);
      dit_store_f32 (vh, dt, i, v[i]);
      v[i] = dit_load_f32 (vh, dt, i);
    }
  }
  double scale = 1.0 / sqrt ((double) d);
  double logb = bias > 0 ? log (bias) : 0.0;
  attn_naive (q, k, v, ref, L, N, H, d, scale, bb, bend, logb, cb, qp0);
  int f32 = dt == DIT_F32;
  dit_tensor tq = t2 (f32 ? (void *) q : qh, dt, L, W);
  dit_tensor tk = t2 (f32 ? (void *) k : kh, dt, N, W);
  dit_tensor tv = t2 (f32 ? (void *) v : vh, dt, N, W);
  dit_tensor to = t2 (f32 ? (void *) o : oh, dt, L, W);
  dit_attn_params p = { &tq, &tk, &tv, &to, H, d, (float) scale, bb, bend,
      (float) logb, cb, qp0, NULL, 0, 0, 0, 0, NULL };
  CHECK_OK (dit_attention (be, &p));
  double maxerr = 0.0;
  for (int i = 0; i < L * W; i++) {
    double got = f32 ? o[i] : dit_load_f32 (oh, dt, i);
    double e = fabs (got - ref[i]);
    if (!(e <= maxerr))
      maxerr = e;
  }
  CHECK (maxerr <= tol, "attention %s (%s L=%d N=%d H=%d d=%d): max error %g > %g",
      name, dit_dtype_name (dt), L, N, H, d, maxerr, tol);

  if (f32 && L > 1) {
    /* Query rows one at a time (q_pos0 shifted) give the same bits. */
    float *orow = malloc (sizeof (float) * W);
    int same = 1;
    for (int r = 0; r < L; r++) {
      dit_tensor qr = dit_tensor_rows (&tq, r, 1);
      dit_tensor orr = t2 (orow, DIT_F32, 1, W);
      dit_attn_params pr = p;
      pr.q = &qr;
      pr.o = &orr;
      pr.q_pos0 = qp0 + r;
      CHECK_OK (dit_attention (be, &pr));
      same &= memcmp (orow, o + r * W, sizeof (float) * W) == 0;
    }
    CHECK (same, "attention %s: row-by-row result differs from the batch", name);
    free (orow);
  }
  free (q); free (k); free (v); free (o); free (ref);
  free (qh); free (kh); free (vh); free (oh);
}

static void
test_attention (void)
{
  attn_case ("plain", 5, 9, 2, 8, 0, 0, 0, 0, 0, DIT_F32, 1e-6);
  attn_case ("bias range", 7, 12, 2, 16, 3, 8, 0.3, 0, 0, DIT_F32, 1e-6);
  attn_case ("causal block", 12, 12, 1, 8, 0, 0, 0, 4, 0, DIT_F32, 1e-6);
  attn_case ("causal q_pos0", 6, 18, 2, 8, 0, 0, 0, 6, 6, DIT_F32, 1e-6);
  attn_case ("causal + bias", 40, 150, 2, 32, 20, 100, 0.3, 50, 100, DIT_F32, 1e-6);
  attn_case ("multi block", 37, 200, 3, 64, 64, 130, 0.5, 0, 0, DIT_F32, 1e-6);
  attn_case ("vae single head", 20, 20, 1, 384, 0, 0, 0, 0, 0, DIT_F32, 1e-6);
  attn_case ("odd head_dim", 9, 17, 2, 5, 0, 0, 0, 0, 0, DIT_F32, 1e-6);
  attn_case ("bf16", 24, 96, 2, 64, 10, 50, 0.3, 32, 32, DIT_BF16, 2e-2);
  attn_case ("f16", 16, 40, 1, 32, 0, 0, 0, 0, 0, DIT_F16, 2e-3);

  /* Bias of 1 (log 0) must equal no bias. */
  float q[8], k[24], v[24], o1[8], o2[8];
  for (int i = 0; i < 8; i++)
    q[i] = frand ();
  for (int i = 0; i < 24; i++) {
    k[i] = frand ();
    v[i] = frand ();
  }
  dit_tensor tq = t2 (q, DIT_F32, 2, 4), tk = t2 (k, DIT_F32, 6, 4);
  dit_tensor tv = t2 (v, DIT_F32, 6, 4), to1 = t2 (o1, DIT_F32, 2, 4);
  dit_tensor to2 = t2 (o2, DIT_F32, 2, 4);
  dit_attn_params a = { &tq, &tk, &tv, &to1, 1, 4, 0.5f, 0, 0, 0, 0, 0,
    NULL, 0, 0, 0, 0, NULL };
  CHECK_OK (dit_attention (be, &a));
  dit_attn_params b = { &tq, &tk, &tv, &to2, 1, 4, 0.5f, 1, 5, 0.0f, 0, 0,
    NULL, 0, 0, 0, 0, NULL };
  CHECK_OK (dit_attention (be, &b));
  CHECK (memcmp (o1, o2, sizeof o1) == 0, "attention: log_bias 0 changed the result");
  a.heads = 3;
  CHECK (dit_attention (be, &a) == DIT_ERR_INVALID, "attention heads*d != columns");
}

/* ------------------------------------------------------------------------ */

static void
test_patch (void)
{
  enum { C = 3, F = 2, H = 4, W = 6, H2 = H / 2, W2 = W / 2, L = F * H2 * W2 };
  float lat[C * F * H * W], tok[L * 4 * C], back[C * F * H * W];
  for (int i = 0; i < C * F * H * W; i++)
    lat[i] = (float) i;
  int64_t ls[4] = { C, F, H, W };
  dit_tensor tl = dit_tensor_make (lat, DIT_F32, DIT_DEVICE_CPU, 4, ls);
  dit_tensor tt = t2 (tok, DIT_F32, L, 4 * C);
  CHECK_OK (dit_patchify (be, &(dit_patchify_params) { &tl, &tt }));
  int bad = 0;
  for (int f = 0; f < F; f++)
    for (int h = 0; h < H2; h++)
      for (int w = 0; w < W2; w++)
        for (int c = 0; c < C; c++)
          for (int q = 0; q < 2; q++)
            for (int r = 0; r < 2; r++) {
              int token = (f * H2 + h) * W2 + w;
              float want = lat[((c * F + f) * H + 2 * h + q) * W + 2 * w + r];
              bad += tok[token * 4 * C + c * 4 + q * 2 + r] != want;
            }
  CHECK (bad == 0, "patchify: %d elements not at column c*4 + q*2 + r", bad);

  /* unpatchify of tokens laid out with (q*2 + r)*C + c restores lat */
  float tok2[L * 4 * C];
  for (int t = 0; t < L; t++)
    for (int c = 0; c < C; c++)
      for (int qr = 0; qr < 4; qr++)
        tok2[t * 4 * C + qr * C + c] = tok[t * 4 * C + c * 4 + qr];
  dit_tensor tt2 = t2 (tok2, DIT_F32, L, 4 * C);
  dit_tensor tb = dit_tensor_make (back, DIT_F32, DIT_DEVICE_CPU, 4, ls);
  CHECK_OK (dit_unpatchify (be, &(dit_unpatchify_params) { &tt2, &tb }));
  CHECK (memcmp (back, lat, sizeof lat) == 0, "unpatchify(channel-fastest tokens) "
      "is not the original latent");
  /* direct index check: out[c, f, 2h+q, 2w+r] = y[token][(q*2 + r)*C + c] */
  bad = 0;
  for (int f = 0; f < F; f++)
    for (int h = 0; h < H2; h++)
      for (int w = 0; w < W2; w++)
        for (int c = 0; c < C; c++)
          for (int q = 0; q < 2; q++)
            for (int r = 0; r < 2; r++)
              bad += back[((c * F + f) * H + 2 * h + q) * W + 2 * w + r]
                  != tok2[((f * H2 + h) * W2 + w) * 4 * C + (q * 2 + r) * C + c];
  CHECK (bad == 0, "unpatchify index order: %d mismatches", bad);

  /* bf16 tokens, C = 1 (both column orders coincide): round trip */
  float lat1[1 * 2 * 4 * 4], back1[32];
  uint16_t tk1[8 * 4];
  for (int i = 0; i < 32; i++)
    lat1[i] = (float) (i - 16);
  int64_t s1[4] = { 1, 2, 4, 4 };
  dit_tensor tl1 = dit_tensor_make (lat1, DIT_F32, DIT_DEVICE_CPU, 4, s1);
  dit_tensor tb1 = dit_tensor_make (back1, DIT_F32, DIT_DEVICE_CPU, 4, s1);
  dit_tensor tt1 = t2 (tk1, DIT_BF16, 8, 4);
  CHECK_OK (dit_patchify (be, &(dit_patchify_params) { &tl1, &tt1 }));
  CHECK_OK (dit_unpatchify (be, &(dit_unpatchify_params) { &tt1, &tb1 }));
  CHECK (memcmp (back1, lat1, sizeof lat1) == 0, "patchify/unpatchify round trip (C=1)");

  int64_t odd[4] = { 1, 1, 3, 4 };
  dit_tensor to = dit_tensor_make (lat1, DIT_F32, DIT_DEVICE_CPU, 4, odd);
  CHECK (dit_patchify (be, &(dit_patchify_params) { &to, &tt1 }) == DIT_ERR_INVALID,
      "patchify with odd height must fail");
}

static void
test_timestep (void)
{
  double t[2] = { 1000.0, 0.0 };
  float y[2 * 256];
  dit_tensor ty = t2 (y, DIT_F32, 2, 256);
  CHECK_OK (dit_timestep (be, &(dit_timestep_params) { t, 2, &ty }));
  const double cosv[3] = { 0.562379076290703, 0.789614728633505, 0.439953862701706 };
  const double sinv[3] = { 0.826879540532003, 0.613602950062202, -0.898020377660690 };
  for (int j = 0; j < 3; j++) {
    check_near ("timestep t=1000 cos", y[j], cosv[j], 1e-6);
    check_near ("timestep t=1000 sin", y[128 + j], sinv[j], 1e-6);
  }
  int ok = 1;
  for (int j = 0; j < 128; j++)
    ok &= y[256 + j] == 1.0f && y[256 + 128 + j] == 0.0f;
  CHECK (ok, "timestep t=0: cos half must be 1 and sin half 0");
  /* bf16 output is the rounded f32 value */
  uint16_t yb[256];
  dit_tensor tb = t2 (yb, DIT_BF16, 1, 256);
  CHECK_OK (dit_timestep (be, &(dit_timestep_params) { t, 1, &tb }));
  CHECK (yb[0] == dit_f32_to_bf16 (0.562379076290703f), "timestep bf16 output");
}

static void
test_flow_step (void)
{
  float x[4] = { 1, 2, -1, 0.5f }, v[4] = { 0.5f, 1, 2, -4 }, n[4] = { 1, -1, 0.25f, 2 };
  float x0[4], out[4];
  /* sigma 0.75: x0 = x - 0.75 v; sigma_next 0.25: out = 0.75 x0 + 0.25 n */
  const float want_x0[4] = { 0.625f, 1.25f, -2.5f, 3.5f };
  const float want_out[4] = { 0.71875f, 0.6875f, -1.8125f, 3.125f };
  dit_tensor tx = t2 (x, DIT_F32, 2, 2), tv = t2 (v, DIT_F32, 2, 2);
  dit_tensor tn = t2 (n, DIT_F32, 2, 2), tx0 = t2 (x0, DIT_F32, 2, 2);
  dit_tensor to = t2 (out, DIT_F32, 2, 2);
  CHECK_OK (dit_flow_step (be, &(dit_flow_step_params) { &tx, &tv, &tn, &tx0, &to,
      0.75, 0.25 }));
  for (int i = 0; i < 4; i++) {
    CHECK (x0[i] == want_x0[i], "flow_step x0[%d] = %g want %g", i, x0[i], want_x0[i]);
    CHECK (out[i] == want_out[i], "flow_step out[%d] = %g want %g", i, out[i], want_out[i]);
  }
  /* no noise, out aliases x */
  CHECK_OK (dit_flow_step (be, &(dit_flow_step_params) { &tx, &tv, NULL, NULL, &tx,
      0.75, 0.5 }));
  for (int i = 0; i < 4; i++)
    CHECK (x[i] == want_x0[i], "flow_step in place x[%d] = %g", i, x[i]);
}

static void
test_noise (void)
{
  /* Philox4x32-10 known answers (Random123 kat_vectors). */
  dit_philox_out k0 = dit_philox4x32_10 (0, 0, 0, 0, 0, 0);
  CHECK (k0.v[0] == 0x6627e8d5u && k0.v[1] == 0xe169c58du && k0.v[2] == 0xbc57ac4cu
      && k0.v[3] == 0x9b00dbd8u, "philox KAT zeros");
  dit_philox_out k1 = dit_philox4x32_10 (0xffffffffu, 0xffffffffu, 0xffffffffu,
      0xffffffffu, 0xffffffffu, 0xffffffffu);
  CHECK (k1.v[0] == 0x408f276du && k1.v[1] == 0x41c83b0eu && k1.v[2] == 0xa20bc7c6u
      && k1.v[3] == 0x6d5451fdu, "philox KAT ones");
  dit_philox_out k2 = dit_philox4x32_10 (0x243f6a88u, 0x85a308d3u, 0x13198a2eu,
      0x03707344u, 0xa4093822u, 0x299f31d0u);
  CHECK (k2.v[0] == 0xd16cfe09u && k2.v[1] == 0x94fdccebu && k2.v[2] == 0x5001e420u
      && k2.v[3] == 0x24126ea1u, "philox KAT pi");

  enum { N = 100001 };  /* odd: the last pair is half used */
  float *y = malloc (sizeof (float) * N), *y2 = malloc (sizeof (float) * N);
  dit_tensor ty = t1 (y, DIT_F32, N), ty2 = t1 (y2, DIT_F32, N);
  CHECK_OK (dit_noise (be, &(dit_noise_params) { &ty, 42, 7 }));
  int mism = 0;
  double sum = 0.0, sq = 0.0;
  for (int i = 0; i < N; i++) {
    mism += y[i] != dit_philox_normal (42, 7, (uint64_t) i);
    sum += y[i];
    sq += (double) y[i] * y[i];
  }
  CHECK (mism == 0, "noise: %d elements differ from dit_philox_normal", mism);
  double mean = sum / N, var = sq / N - mean * mean;
  CHECK (fabs (mean) < 0.02, "noise mean %g", mean);
  CHECK (fabs (var - 1.0) < 0.02, "noise variance %g", var);
  CHECK_OK (dit_noise (be, &(dit_noise_params) { &ty2, 42, 8 }));
  int same = 0;
  for (int i = 0; i < N; i++)
    same += y[i] == y2[i];
  CHECK (same < 10, "noise streams 7 and 8 share %d values", same);
  CHECK_OK (dit_noise (be, &(dit_noise_params) { &ty2, 43, 7 }));
  same = 0;
  for (int i = 0; i < N; i++)
    same += y[i] == y2[i];
  CHECK (same < 10, "noise seeds 42 and 43 share %d values", same);
  /* bf16 output = rounded f32 stream */
  uint16_t yb[33];
  dit_tensor tb = t1 (yb, DIT_BF16, 33);
  CHECK_OK (dit_noise (be, &(dit_noise_params) { &tb, 42, 7 }));
  mism = 0;
  for (int i = 0; i < 33; i++)
    mism += yb[i] != dit_f32_to_bf16 (y[i]);
  CHECK (mism == 0, "noise bf16: %d elements differ", mism);
  free (y);
  free (y2);
}

/* ------------------------------------------------------------------------ */

static void
test_errors (void)
{
  float a[2 * 64], w[3 * 128], y[6];
  dit_tensor tx = t2 (a, DIT_F32, 2, 64), tw = t2 (w, DIT_F32, 3, 128);
  dit_tensor ty = t2 (y, DIT_F32, 2, 3);
  dit_gemm_params p = { &tx, &tw, NULL, &ty, DIT_ACT_NONE, 0, NULL, 0, NULL, NULL };
  dit_clear_error ();
  CHECK (dit_gemm (be, &p) == DIT_ERR_INVALID, "gemm K mismatch must fail");
  CHECK (strstr (dit_last_error (), "gemm: x has 64 columns but w has 128") != NULL,
      "gemm mismatch message: '%s'", dit_last_error ());

  dit_tensor tw2 = t2 (w, DIT_F32, 2, 64);
  dit_gemm_params p2 = { &tx, &tw2, NULL, &ty, DIT_ACT_NONE, 0, NULL, 0, NULL, NULL };
  CHECK (dit_gemm (be, &p2) == DIT_ERR_INVALID, "gemm y shape mismatch must fail");
  CHECK (strstr (dit_last_error (), "gemm: y") != NULL, "gemm y message: '%s'",
      dit_last_error ());

  dit_tensor tdev = tx;
  tdev.device = DIT_DEVICE_CUDA;
  dit_gemm_params p3 = { &tdev, &tw2, NULL, &ty, DIT_ACT_NONE, 0, NULL, 0, NULL, NULL };
  CHECK (dit_gemm (be, &p3) == DIT_ERR_INVALID, "gemm on a cuda tensor must fail");
  CHECK (strstr (dit_last_error (), "x is on device cuda") != NULL,
      "device message: '%s'", dit_last_error ());

  float ln[4];
  dit_tensor tl = t2 (ln, DIT_F32, 1, 4), tl3 = t2 (ln, DIT_F32, 1, 3);
  CHECK (dit_layernorm (be, &(dit_layernorm_params) { &tl, NULL, NULL, &tl3, 1e-6f })
      == DIT_ERR_INVALID, "layernorm y shape mismatch");
  CHECK (strstr (dit_last_error (), "layernorm: y is [1, 3]") != NULL,
      "layernorm message: '%s'", dit_last_error ());

  /* backend creation */
  CHECK (dit_backend_create ("tpu", 0) == NULL, "unknown backend must fail");
  CHECK (strstr (dit_last_error (), "unknown backend 'tpu'") != NULL,
      "unknown backend message: '%s'", dit_last_error ());
#if !DIT_HAVE_CUDA
  CHECK (dit_backend_create ("cuda", 0) == NULL, "cuda must fail without CUDA");
  CHECK (strstr (dit_last_error (), "-Dcuda=enabled") != NULL,
      "cuda message: '%s'", dit_last_error ());
#endif
  dit_backend *cpu2 = dit_backend_create ("cpu", 0);
  CHECK (cpu2 != NULL && cpu2->ops->device == DIT_DEVICE_CPU, "create cpu");
  if (cpu2) {
    CHECK (cpu2->ops->supports (cpu2, DIT_OP_ATTENTION, DIT_BF16), "cpu supports attention bf16");
    CHECK (cpu2->ops->supports (cpu2, DIT_OP_NOISE, DIT_F16), "cpu supports noise f16");
    CHECK (cpu2->ops->synchronize (cpu2) == DIT_OK, "cpu synchronize");
    dit_tensor t;
    int64_t shape[2] = { 3, 5 };
    CHECK_OK (dit_tensor_alloc (cpu2, &t, DIT_BF16, 2, shape));
    CHECK (((uintptr_t) t.data & 63) == 0, "cpu alloc is 64-byte aligned");
    CHECK (t.stride[0] == 5 && t.device == DIT_DEVICE_CPU, "alloc strides/device");
    dit_tensor_free (cpu2, &t);
    CHECK (t.data == NULL, "free clears data");
    dit_backend_destroy (cpu2);
  }
  CHECK (dit_backend_cpu () == be, "dit_backend_cpu is a singleton");

  /* A backend without the op: UNSUPPORTED from the dispatcher. */
  dit_backend_ops ops;
  memset (&ops, 0, sizeof ops);
  ops.name = "empty";
  dit_backend fake = { &ops, NULL, 0, NULL, NULL };
  CHECK (dit_gemm (&fake, &p) == DIT_ERR_UNSUPPORTED, "missing op");
  CHECK (strstr (dit_last_error (), "op gemm not implemented by backend empty") != NULL,
      "missing op message: '%s'", dit_last_error ());
  CHECK (dit_noise (NULL, &(dit_noise_params) { NULL, 0, 0 }) == DIT_ERR_INVALID,
      "NULL backend");
}

int
main (void)
{
  be = dit_backend_cpu ();
  if (!be) {
    fprintf (stderr, "cannot create the cpu backend: %s\n", dit_last_error ());
    return 1;
  }
  test_conversions ();
  test_gemm_small ();
  test_gemm_random ();
  test_gemm_gated ();
  test_layernorm ();
  test_rmsnorm ();
  test_modulate ();
  test_residual ();
  test_add_unary ();
  test_copy ();
  test_rope ();
  test_attention ();
  test_patch ();
  test_timestep ();
  test_flow_step ();
  test_noise ();
  test_errors ();
  printf ("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
