/* fp8 — the FP8 (e4m3) reference: quantize, dequantize, LayerNorm into
 * FP8, the FP8 linear layer.
 *
 * This is the oracle the CUDA kernels are tested against, so it is written
 * for clarity and a fixed order of operations, not speed:
 *  - quantization follows kernels/dit_fp8.h exactly (per block: amax of the
 *    f32 values, scale = a / 448, code = e4m3(x * 448 / a), round to nearest
 *    even, saturating), so a backend that quantizes the same f32 values
 *    produces the same codes;
 *  - the GEMM decodes the codes to f32 (exact), sums each 128-wide K block
 *    in k order, scales the block sum by the activation's block scale and
 *    adds it to an f32 accumulator, then applies the weight's channel scale,
 *    the bias and the activation (then the residual epilogue: × gate, + y),
 *    all f32 — the products of two e4m3 codes
 *    are exact in f32, so only the order of the additions differs from a
 *    tensor-core kernel that promotes its accumulator every block;
 *  - LayerNorm statistics are summed in f64 like norm.c, the normalised,
 *    affine and modulated value is f32 and is quantized as is (no rounding
 *    to bf16 in between).
 * Layouts: see kernels/dit_ops.h, "FP8" (codes [rows, cols], scales
 * block-major [cols / block, rows]).
 */
#include "cpu_internal.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---- helpers -------------------------------------------------------------- */

static float fp8_lut[256];
static pthread_once_t fp8_lut_once = PTHREAD_ONCE_INIT;

static void
fp8_lut_init (void)
{
  for (int i = 0; i < 256; i++)
    fp8_lut[i] = dit_e4m3_to_f32 ((uint8_t) i);
}

static const float *
fp8_table (void)
{
  pthread_once (&fp8_lut_once, fp8_lut_init);
  return fp8_lut;
}

void
dit_cpu_quantize_row (const float *v, int64_t n, int64_t block, uint8_t *q,
    float *scale, int64_t scale_stride)
{
  for (int64_t b = 0; b * block < n; b++) {
    const float *vb = v + b * block;
    float amax = 0.0f;
    for (int64_t i = 0; i < block; i++) {
      float a = fabsf (vb[i]);
      if (a > amax)     /* NaN never wins: it stays NaN in its own code */
        amax = a;
    }
    const float inv = dit_fp8_inv_scale (amax);
    for (int64_t i = 0; i < block; i++)
      q[b * block + i] = dit_f32_to_e4m3 (vb[i] * inv);
    scale[b * scale_stride] = dit_fp8_scale (amax);
  }
}

/* An FP8 output: codes with contiguous rows of exactly cols, scales. */
static dit_status
fp8_out (const dit_tensor *q, const dit_tensor *scale, int64_t block,
    int64_t rows, int64_t cols, const char *op, const char *name,
    dit_cpu_mat *m, float **sc)
{
  DIT_TRY (dit_cpu_as_fp8 (q, scale, block, op, name, m, sc));
  if (m->rows != rows || m->cols != cols)
    return dit_error (DIT_ERR_INVALID, "%s: %s is [%lld, %lld] but [%lld, %lld] "
        "is required", op, name, (long long) m->rows, (long long) m->cols,
        (long long) rows, (long long) cols);
  return DIT_OK;
}

/* ---- quantize ------------------------------------------------------------- */

dit_status
dit_cpu_quantize_fp8 (dit_backend *be, const dit_quantize_fp8_params *p)
{
  dit_cpu_mat x, q;
  float *sc;
  DIT_TRY (dit_cpu_as_mat (p->x, "quantize_fp8", "x", &x));
  DIT_TRY (fp8_out (p->q, p->scale, p->block, x.rows, x.cols, "quantize_fp8",
      "q", &q, &sc));
  if (x.rows == 0 || x.cols == 0)
    return DIT_OK;
  float *row = dit_cpu_scratch ((size_t) x.cols + 64);
  if (!row)
    return dit_error (DIT_ERR_NOMEM, "quantize_fp8: cannot allocate scratch");
  for (int64_t r = 0; r < x.rows; r++) {
    dit_cpu_load_row (row, dit_cpu_row (&x, r), x.dtype, x.cols);
    dit_cpu_quantize_row (row, x.cols, p->block, (uint8_t *) dit_cpu_row (&q, r),
        sc + r, x.rows);
  }
  return DIT_OK;
}

/* ---- dequantize ----------------------------------------------------------- */

dit_status
dit_cpu_dequantize_fp8 (dit_backend *be, const dit_dequantize_fp8_params *p)
{
  const char *op = "dequantize_fp8";
  dit_cpu_mat q, y;
  float *sc;
  DIT_TRY (dit_check_dequantize_fp8 (DIT_DEVICE_CPU, p, &q, &y, &sc));
  if (q.rows == 0 || q.cols == 0)
    return DIT_OK;
  const float *lut = fp8_table ();
  float *row = dit_cpu_scratch ((size_t) q.cols + 64);
  if (!row)
    return dit_error (DIT_ERR_NOMEM, "%s: cannot allocate scratch", op);
  for (int64_t r = 0; r < q.rows; r++) {
    const uint8_t *src = (const uint8_t *) dit_cpu_row (&q, r);
    for (int64_t c = 0; c < q.cols; c++)
      row[c] = lut[src[c]] * sc[(c / p->block) * q.rows + r];
    dit_cpu_store_row (dit_cpu_row (&y, r), y.dtype, row, q.cols);
  }
  return DIT_OK;
}

/* ---- LayerNorm into FP8 ----------------------------------------------------- */

dit_status
dit_cpu_layernorm_fp8 (dit_backend *be, const dit_layernorm_fp8_params *p)
{
  const char *op = "layernorm_fp8";
  dit_cpu_mat x, y, w, b, sh, sc;
  float *ys;
  DIT_TRY (dit_cpu_as_mat (p->x, op, "x", &x));
  DIT_TRY (fp8_out (p->y, p->y_scale, p->block, x.rows, x.cols, op, "y", &y,
      &ys));
  if ((p->weight == NULL) != (p->bias == NULL))
    return dit_error (DIT_ERR_INVALID, "%s: weight and bias must both be set "
        "or both be NULL", op);
  if ((p->shift == NULL) != (p->scale == NULL))
    return dit_error (DIT_ERR_INVALID, "%s: shift and scale must both be set "
        "or both be NULL", op);
  const int affine = p->weight != NULL, mod = p->shift != NULL;
  const int64_t D = x.cols;
  if (affine) {
    DIT_TRY (dit_cpu_as_vec (p->weight, op, "weight", D, &w));
    DIT_TRY (dit_cpu_as_vec (p->bias, op, "bias", D, &b));
  }
  if (mod) {
    DIT_TRY (dit_cpu_check_groups (p->shift, op, "shift", x.rows, D,
        p->rows_per_group, &sh));
    DIT_TRY (dit_cpu_check_groups (p->scale, op, "scale", x.rows, D,
        p->rows_per_group, &sc));
  }
  if (x.rows == 0 || D == 0)
    return DIT_OK;
  float *row = dit_cpu_scratch ((size_t) D * 5 + 64);
  if (!row)
    return dit_error (DIT_ERR_NOMEM, "%s: cannot allocate scratch", op);
  float *wf = row + D, *bf = wf + D, *shf = bf + D, *scf = shf + D;
  if (affine) {
    dit_cpu_load_row (wf, w.data, w.dtype, D);
    dit_cpu_load_row (bf, b.data, b.dtype, D);
  }
  int64_t cur = -1;
  for (int64_t r = 0; r < x.rows; r++) {
    dit_cpu_load_row (row, dit_cpu_row (&x, r), x.dtype, D);
    dit_cpu_layernorm_row (row, D, p->eps, affine ? wf : NULL, bf);
    if (mod) {
      int64_t g = r / p->rows_per_group;
      if (g != cur) {
        dit_cpu_load_row (shf, dit_cpu_row (&sh, g), sh.dtype, D);
        dit_cpu_load_row (scf, dit_cpu_row (&sc, g), sc.dtype, D);
        cur = g;
      }
      for (int64_t i = 0; i < D; i++)
        row[i] = row[i] * (1.0f + scf[i]) + shf[i];
    }
    dit_cpu_quantize_row (row, D, p->block, (uint8_t *) dit_cpu_row (&y, r),
        ys + r, x.rows);
  }
  return DIT_OK;
}

/* ---- the FP8 linear layer ----------------------------------------------------- */

#define GQ_MR 8   /* rows of x per task */

typedef struct gemm_fp8_ctx {
  dit_cpu_mat x, w, y, bias, gate;
  const float *xs, *ws;
  float *ys;
  int64_t M, N, K, x_block, y_block, rpg;
  int has_bias, fp8_out, has_gate, accumulate;
  dit_act act;
  atomic_int failed;
} gemm_fp8_ctx;

static void
gemm_fp8_task (void *arg, int64_t task)
{
  gemm_fp8_ctx *g = arg;
  const float *lut = fp8_table ();
  const int64_t K = g->K, N = g->N, nb = K / g->x_block;
  const int64_t m0 = task * GQ_MR;
  const int64_t mr = g->M - m0 < GQ_MR ? g->M - m0 : GQ_MR;
  float *xf = dit_cpu_scratch ((size_t) (GQ_MR * K + K + GQ_MR * N + 3 * N)
      + 64);
  if (!xf) {
    atomic_store (&g->failed, 1);
    return;
  }
  float *wf = xf + GQ_MR * K;      /* one weight row, decoded */
  float *out = wf + K;             /* [mr][N] results */
  float *bias = out + GQ_MR * N;   /* [N] */

  for (int64_t i = 0; i < mr; i++) {
    const uint8_t *src = (const uint8_t *) dit_cpu_row (&g->x, m0 + i);
    for (int64_t k = 0; k < K; k++)
      xf[i * K + k] = lut[src[k]];
  }
  if (g->has_bias)
    dit_cpu_load_row (bias, g->bias.data, g->bias.dtype, N);
  for (int64_t n = 0; n < N; n++) {
    const uint8_t *src = (const uint8_t *) dit_cpu_row (&g->w, n);
    for (int64_t k = 0; k < K; k++)
      wf[k] = lut[src[k]];
    for (int64_t i = 0; i < mr; i++) {
      const float *xr = xf + i * K;
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; b++) {
        float part = 0.0f;
        for (int64_t k = b * g->x_block; k < (b + 1) * g->x_block; k++)
          part += xr[k] * wf[k];
        acc += g->xs[b * g->M + m0 + i] * part;
      }
      float v = acc * g->ws[n];
      if (g->has_bias)
        v += bias[n];
      out[i * N + n] = v;
    }
  }
  float *gr = bias + N, *old = gr + N;
  for (int64_t i = 0; i < mr; i++) {
    float *o = out + i * N;
    dit_cpu_act_row (o, N, g->act);
    if (g->has_gate) {
      dit_cpu_load_row (gr, dit_cpu_row (&g->gate, (m0 + i) / g->rpg),
          g->gate.dtype, N);
      for (int64_t n = 0; n < N; n++)
        o[n] *= gr[n];
    }
    if (g->accumulate) {
      dit_cpu_load_row (old, dit_cpu_row (&g->y, m0 + i), g->y.dtype, N);
      for (int64_t n = 0; n < N; n++)
        o[n] += old[n];
    }
    if (g->fp8_out)
      dit_cpu_quantize_row (o, N, g->y_block,
          (uint8_t *) dit_cpu_row (&g->y, m0 + i), g->ys + m0 + i, g->M);
    else
      dit_cpu_store_row (dit_cpu_row (&g->y, m0 + i), g->y.dtype, o, N);
  }
}

dit_status
dit_cpu_gemm_fp8 (dit_backend *be, const dit_gemm_fp8_params *p)
{
  const char *op = "gemm_fp8";
  gemm_fp8_ctx g;
  memset (&g, 0, sizeof g);
  float *xs, *ws;
  DIT_TRY (dit_cpu_as_fp8 (p->x, p->x_scale, p->x_block, op, "x", &g.x, &xs));
  if (!p->w)
    return dit_error (DIT_ERR_INVALID, "%s: w is NULL", op);
  DIT_TRY (dit_cpu_as_fp8 (p->w, p->w_scale, p->w->shape[p->w->ndim - 1], op,
      "w", &g.w, &ws));
  if (g.w.cols != g.x.cols)
    return dit_error (DIT_ERR_INVALID, "%s: x has %lld columns but w has %lld",
        op, (long long) g.x.cols, (long long) g.w.cols);
  g.M = g.x.rows;
  g.N = g.w.rows;
  g.K = g.x.cols;
  g.xs = xs;
  g.ws = ws;
  g.x_block = p->x_block;
  if (!p->y)
    return dit_error (DIT_ERR_INVALID, "%s: y is NULL", op);
  g.fp8_out = p->y->dtype == DIT_F8E4M3;
  if (g.fp8_out) {
    DIT_TRY (fp8_out (p->y, p->y_scale, p->y_block, g.M, g.N, op, "y", &g.y,
        &g.ys));
    g.y_block = p->y_block;
  } else {
    DIT_TRY (dit_cpu_as_mat_shape (p->y, op, "y", g.M, g.N, &g.y));
  }
  if (p->bias) {
    DIT_TRY (dit_cpu_as_vec (p->bias, op, "bias", g.N, &g.bias));
    g.has_bias = 1;
  }
  if (p->act != DIT_ACT_NONE && p->act != DIT_ACT_GELU_TANH)
    return dit_error (DIT_ERR_INVALID, "%s: activation %d (none or gelu_tanh)",
        op, (int) p->act);
  g.act = p->act;
  if ((p->gate || p->accumulate) && g.fp8_out)
    return dit_error (DIT_ERR_INVALID, "%s: gate and accumulate need a "
        "16/32-bit y", op);
  if (p->gate) {
    DIT_TRY (dit_cpu_check_groups (p->gate, op, "gate", g.M, g.N,
        p->rows_per_group, &g.gate));
    g.has_gate = 1;
    g.rpg = p->rows_per_group;
  }
  g.accumulate = p->accumulate != 0;
  if (g.M == 0 || g.N == 0)
    return DIT_OK;
  atomic_init (&g.failed, 0);
  dit_cpu_parallel ((g.M + GQ_MR - 1) / GQ_MR, gemm_fp8_task, &g);
  if (atomic_load (&g.failed))
    return dit_error (DIT_ERR_NOMEM, "%s: cannot allocate scratch for K = %lld",
        op, (long long) g.K);
  return DIT_OK;
}
