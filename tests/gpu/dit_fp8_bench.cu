/* dit-fp8-bench — FP8 against bf16 for the GEMMs and producers of one 14B
 * DiT forward at 576x320 (M = 2160 tokens, a 3-frame chunk).
 *
 * Prints the cuBLASLt FP8 probe (which scale modes the installed library
 * runs on this device, each checked against an f64 reference), the wgmma
 * engine's self-checks (the automatic choice run once on each feature set
 * of the model's FP8 GEMMs), then for each GEMM shape of a block (q/k/v
 * and cross q: N = K = 5120, bf16 out; o and cross o: the same,
 * accumulated into the f32 residual stream with the gate; FFN up:
 * N = 13824, K = 5120, GELU, FP8 out; FFN down: N = 5120, K = 13824, into
 * the residual stream; and, not counted in the forward, q/k/v as one
 * N = 15360 GEMM) the median time and TFLOP/s (2 M N K) of:
 *   bf16 cuBLASLt   dit_gemm, bf16 in/out, bias (and GELU) in cuBLASLt's
 *                   epilogue, the residual epilogue folded
 *   fp8 cuBLASLt    the FP8 GEMM on cuBLASLt where its probe passed (FFN
 *                   up: into bf16, then the quantize pass)
 *   fp8 mma.sync    the own mma.sync kernel
 *   fp8 auto        dit_gemm_fp8's own choice (wgmma after its self-check
 *                   where the device runs it)
 *   fp8 wgmma V     each variant V of the own wgmma kernel (n/a: it cannot
 *                   write the FP8 hidden layer)
 *   probe-*         the wgmma kernel's timing probes (each leaves one
 *                   thing out of the K loop; not the op, not compared)
 * each FP8 engine with its output's NMSE against the mma.sync kernel's
 * (FP8 outputs: the scales).  Then the 40-layer forward's GEMM time per
 * engine, and with the fastest wgmma variant of each shape.  Then the
 * producers: LayerNorm+modulate into bf16 (the fused op) against
 * LayerNorm into FP8, and attention at the denoise shape writing bf16
 * against FP8.  Last, one JSON line with every number.
 *
 * Inputs: Philox normals from the backend's noise op, quantized on the
 * device (activations per 128 columns, weights per channel).  Timing:
 * cudaEvents on the backend's stream, 3 warm-up calls, median of `runs`.
 *
 * Usage: dit-fp8-bench [runs]     (default 20; exit 77 without a CUDA
 * device with FP8 tensor cores)
 *        dit-fp8-bench probe      the probe report only
 *        dit-fp8-bench selfcheck  the probe and the wgmma self-checks
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "cuda/dit_cuda.h"
#include "../common/ok_or_exit.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dit_backend *be;
static int runs = 20;
static char json[16384];
static size_t jo;

#define JSON(...) (jo += (size_t) snprintf (json + jo, sizeof json - jo, __VA_ARGS__))

static int
cmp_float (const void *a, const void *b)
{
  float x = *(const float *) a, y = *(const float *) b;
  return x < y ? -1 : x > y;
}

typedef dit_status (*call_fn) (const void *ctx);

/* median ms, or -1 when the call is unsupported */
static float
timeit (call_fn fn, const void *ctx)
{
  cudaStream_t s = (cudaStream_t) dit_backend_cuda_stream (be);
  cudaEvent_t e0, e1;
  for (int i = 0; i < 3; i++) {
    dit_status st = fn (ctx);
    if (st == DIT_ERR_UNSUPPORTED)
      return -1.0f;
    OK_OR_EXIT (st);
  }
  OK_OR_EXIT (be->ops->synchronize (be));
  cudaEventCreate (&e0);
  cudaEventCreate (&e1);
  float *ms = (float *) malloc (sizeof (float) * (size_t) runs);
  for (int i = 0; i < runs; i++) {
    cudaEventRecord (e0, s);
    OK_OR_EXIT (fn (ctx));
    cudaEventRecord (e1, s);
    cudaEventSynchronize (e1);
    cudaEventElapsedTime (&ms[i], e0, e1);
  }
  qsort (ms, (size_t) runs, sizeof (float), cmp_float);
  float med = ms[runs / 2];
  free (ms);
  cudaEventDestroy (e0);
  cudaEventDestroy (e1);
  return med;
}

static dit_tensor
alloc2 (dit_dtype dt, int64_t r, int64_t c)
{
  dit_tensor t;
  int64_t s[2] = { r, c };
  OK_OR_EXIT (dit_tensor_alloc (be, &t, dt, 2, s));
  return t;
}

static dit_tensor
normal2 (int64_t r, int64_t c, uint64_t stream)
{
  dit_tensor t = alloc2 (DIT_BF16, r, c);
  dit_noise_params np = { &t, 1234, stream };
  OK_OR_EXIT (dit_noise (be, &np));
  return t;
}

static void
quantize (const dit_tensor *x, int64_t block, dit_tensor *q, dit_tensor *s)
{
  *q = alloc2 (DIT_F8E4M3, x->shape[0], x->shape[1]);
  *s = alloc2 (DIT_F32, x->shape[1] / block, x->shape[0]);
  dit_quantize_fp8_params p = { x, q, s, block };
  OK_OR_EXIT (dit_quantize_fp8 (be, &p));
}

static double
nmse_dev (const dit_tensor *a, const dit_tensor *b)
{
  size_t n = (size_t) dit_tensor_numel (a);
  void *ha = malloc (dit_tensor_nbytes (a)), *hb = malloc (dit_tensor_nbytes (b));
  OK_OR_EXIT (be->ops->download (be, ha, a->data, dit_tensor_nbytes (a)));
  OK_OR_EXIT (be->ops->download (be, hb, b->data, dit_tensor_nbytes (b)));
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double x = dit_load_f32 (ha, a->dtype, i), y = dit_load_f32 (hb, b->dtype, i);
    num += (x - y) * (x - y);
    den += y * y;
  }
  free (ha);
  free (hb);
  return den > 0 ? num / den : num;
}

/* ---- GEMMs ------------------------------------------------------------------ */

/* engines timed per shape: bf16 cuBLASLt, FP8 cuBLASLt, the mma.sync
 * kernel, each wgmma variant, the automatic choice */
enum { E_BF16, E_LT, E_MMA, E_AUTO, E_WG0, E_MAX = E_WG0 + 16,
  E_PROBE0 = E_MAX + 1 };

static int n_engines;

static const char *
engine_label (int e)
{
  static char buf[E_MAX][48];
  if (e == E_BF16) return "bf16 cuBLASLt";
  if (e == E_LT) return "fp8 cuBLASLt";
  if (e == E_MMA) return "fp8 mma.sync";
  if (e == E_AUTO) return "fp8 auto";
  snprintf (buf[e], sizeof buf[e], "fp8 wgmma %s",
      dit_cuda_gemm_fp8_wgmma_variant_name (e - E_WG0));
  return buf[e];
}

typedef struct gemm_ctx {
  dit_gemm_params bf;
  dit_gemm_fp8_params f8;
  int engine;
} gemm_ctx;

static dit_status
call_gemm (const void *c)
{
  const gemm_ctx *g = (const gemm_ctx *) c;
  switch (g->engine) {
    case E_BF16: return dit_gemm (be, &g->bf);
    case E_LT: return dit_cuda_gemm_fp8_path (be, &g->f8, 1);
    case E_MMA: return dit_cuda_gemm_fp8_path (be, &g->f8, 2);
    case E_AUTO: return dit_gemm_fp8 (be, &g->f8);
    default:
      if (g->engine >= E_PROBE0)
        return dit_cuda_gemm_fp8_wgmma_probe (be, &g->f8,
            g->engine - E_PROBE0);
      return dit_cuda_gemm_fp8_wgmma (be, &g->f8, g->engine - E_WG0, 0);
  }
}

static void
zero (dit_tensor *t)
{
  cudaMemsetAsync (t->data, 0, dit_tensor_nbytes (t),
      (cudaStream_t) dit_backend_cuda_stream (be));
}

/* residual: y is the f32 residual stream, += gate ⊙ (x w + b) (both the
 * bf16 GEMM's folded epilogue and the FP8 one), as o, cross o and FFN down
 * run in the model.  Every engine starts from a zeroed y and makes the
 * same number of calls, so the accumulated outputs compare.  sum_ms[e]
 * collects per_layer x the median (negative once an engine is missing). */
static void
gemm_shape (const char *name, int64_t M, int64_t N, int64_t K, dit_act act,
    int f8out, int residual, int per_layer, double *sum_ms)
{
  dit_tensor x = normal2 (M, K, 1), w = normal2 (N, K, 2), b = normal2 (1, N, 3);
  dit_tensor y = alloc2 (residual ? DIT_F32 : DIT_BF16, M, N);
  dit_tensor gate = normal2 (3, N, 4);
  dit_tensor xq, xs, wq, wsc;
  quantize (&x, 128, &xq, &xs);
  quantize (&w, K, &wq, &wsc);
  /* [0] the mma.sync reference, [1] every other FP8 engine */
  dit_tensor y8[2], y8s[2], yb[2];
  for (int i = 0; i < 2; i++) {
    y8[i] = alloc2 (DIT_F8E4M3, M, N);
    y8s[i] = alloc2 (DIT_F32, N / 128, M);
    yb[i] = alloc2 (residual ? DIT_F32 : DIT_BF16, M, N);
  }
  dit_tensor scratch = alloc2 (DIT_BF16, M, N);
  const double flop = 2.0 * M * N * K;
  gemm_ctx c;
  memset (&c, 0, sizeof c);
  c.bf = (dit_gemm_params) { &x, &w, &b, &y, act, residual,
    residual ? &gate : NULL, M / 3, &scratch, NULL };
  printf ("  %-9s %5lld x %5lld x %5lld %s\n", name, (long long) M,
      (long long) N, (long long) K, f8out ? "-> fp8 (GELU)" : residual
      ? "+= f32 (gated)" : "-> bf16");
  JSON ("%s{\"name\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, "
      "\"per_layer\": %d", jo > 0 && json[jo - 1] == '}' ? ", " : "", name,
      (long long) M, (long long) N, (long long) K, per_layer);
  double mma_ms = -1.0, best = -1.0;
  for (int e = 0; e < n_engines; e++) {
    const int o = e == E_MMA ? 0 : 1;
    c.engine = e;
    c.f8 = (dit_gemm_fp8_params) { &xq, &xs, 128, &wq, &wsc, &b,
      f8out ? &y8[o] : &yb[o], f8out ? &y8s[o] : NULL, 128, act, &scratch,
      residual, residual ? &gate : NULL, M / 3 };
    zero (e == E_BF16 ? &y : f8out ? &y8[o] : &yb[o]);
    const float t = timeit (call_gemm, &c);
    double diff = -1.0;   /* -1: not compared */
    if (t > 0 && e > E_MMA && mma_ms > 0)
      diff = f8out ? nmse_dev (&y8s[1], &y8s[0]) : nmse_dev (&yb[1], &yb[0]);
    if (e == E_MMA)
      mma_ms = t;
    if (e >= E_WG0 && t > 0 && (best < 0 || t < best))
      best = t;
    if (t > 0)
      printf ("      %-28s %8.3f ms %6.0f TF/s", engine_label (e), t,
          flop / t * 1e-9);
    else
      printf ("      %-28s      n/a", engine_label (e));
    if (diff >= 0)
      printf ("   vs mma.sync nmse %.1e%s", diff, f8out ? " (scales)" : "");
    printf ("\n");
    JSON (", \"%s_ms\": %.4f", e == E_BF16 ? "bf16" : e == E_LT ? "fp8_lt"
        : e == E_MMA ? "fp8_mma" : e == E_AUTO ? "fp8_auto"
        : dit_cuda_gemm_fp8_wgmma_variant_name (e - E_WG0), t);
    if (diff >= 0)
      JSON (", \"%s_nmse\": %.3e", e == E_LT ? "fp8_lt" : e == E_AUTO
          ? "fp8_auto" : dit_cuda_gemm_fp8_wgmma_variant_name (e - E_WG0),
          diff);
    if (t > 0 && sum_ms[e] >= 0)
      sum_ms[e] += per_layer * t;
    else if (per_layer)
      sum_ms[e] = -1e9;   /* prints as negative: an engine missing */
  }
  /* the K loop's timing probes: kernels that leave one thing out, so
   * their outputs are not compared (not the op) */
  for (int i = 0; dit_cuda_gemm_fp8_wgmma_probe_name (i); i++) {
    c.engine = E_PROBE0 + i;
    c.f8 = (dit_gemm_fp8_params) { &xq, &xs, 128, &wq, &wsc, &b,
      f8out ? &y8[1] : &yb[1], f8out ? &y8s[1] : NULL, 128, act, &scratch,
      residual, residual ? &gate : NULL, M / 3 };
    const float t = timeit (call_gemm, &c);
    if (t > 0)
      printf ("      %-28s %8.3f ms %6.0f TF/s   (timing probe, not the op)\n",
          dit_cuda_gemm_fp8_wgmma_probe_name (i), t, flop / t * 1e-9);
    else
      printf ("      %-28s      n/a\n", dit_cuda_gemm_fp8_wgmma_probe_name (i));
    JSON (", \"%s_ms\": %.4f", dit_cuda_gemm_fp8_wgmma_probe_name (i), t);
  }
  if (best > 0 && sum_ms[E_MAX] >= 0)
    sum_ms[E_MAX] += per_layer * best;
  else if (per_layer)
    sum_ms[E_MAX] = -1e9;
  JSON ("}");
  dit_tensor *all[] = { &x, &w, &b, &y, &gate, &xq, &xs, &wq, &wsc, &scratch,
    &y8[0], &y8[1], &y8s[0], &y8s[1], &yb[0], &yb[1] };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    dit_tensor_free (be, all[i]);
}

/* The automatic choice on each feature set of the model's FP8 GEMMs (a
 * small problem each), which runs the wgmma self-checks, then the record. */
static void
selfcheck (void)
{
  const int64_t M = 300, N = 512, K = 1024;
  dit_tensor x = normal2 (M, K, 21), w = normal2 (N, K, 22), b = normal2 (1, N, 23);
  dit_tensor gate = normal2 (3, N, 24);
  dit_tensor xq, xs, wq, wsc;
  quantize (&x, 128, &xq, &xs);
  quantize (&w, K, &wq, &wsc);
  dit_tensor yb = alloc2 (DIT_BF16, M, N), yf = alloc2 (DIT_F32, M, N);
  dit_tensor y8 = alloc2 (DIT_F8E4M3, M, N), y8s = alloc2 (DIT_F32, N / 128, M);
  dit_tensor scratch = alloc2 (DIT_BF16, M, N);
  dit_gemm_fp8_params ps[3] = {
    { &xq, &xs, 128, &wq, &wsc, &b, &yb, NULL, 128, DIT_ACT_NONE, &scratch, 0,
      NULL, 0 },
    { &xq, &xs, 128, &wq, &wsc, &b, &y8, &y8s, 128, DIT_ACT_GELU_TANH,
      &scratch, 0, NULL, 0 },
    { &xq, &xs, 128, &wq, &wsc, &b, &yf, NULL, 128, DIT_ACT_NONE, &scratch, 1,
      &gate, M / 3 } };
  for (int i = 0; i < 3; i++)
    OK_OR_EXIT (dit_gemm_fp8 (be, &ps[i]));
  OK_OR_EXIT (be->ops->synchronize (be));
  static char rep[8192];
  OK_OR_EXIT (dit_cuda_gemm_fp8_wgmma_report (be, rep, sizeof rep));
  printf ("%s", rep);
  dit_cuda_gemm_fp8_report (be, rep, sizeof rep);
  printf ("paths: %s\n", rep);
  dit_tensor *all[] = { &x, &w, &b, &gate, &xq, &xs, &wq, &wsc, &yb, &yf, &y8,
    &y8s, &scratch };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    dit_tensor_free (be, all[i]);
}

/* ---- producers ---------------------------------------------------------------- */

typedef struct prod_ctx {
  dit_layernorm_modulate_params lm;
  dit_layernorm_fp8_params l8;
  dit_attn_params a;
} prod_ctx;

static dit_status
call_lm (const void *c)
{
  return be->ops->layernorm_modulate (be, &((const prod_ctx *) c)->lm);
}

static dit_status
call_l8 (const void *c)
{
  return dit_layernorm_fp8 (be, &((const prod_ctx *) c)->l8);
}

static dit_status
call_attn (const void *c)
{
  return dit_attention (be, &((const prod_ctx *) c)->a);
}

static void
producers (void)
{
  const int64_t L = 2160, D = 5120, N = 4320;
  dit_tensor x = alloc2 (DIT_F32, L, D), h = alloc2 (DIT_BF16, L, D);
  dit_noise_params np = { &x, 7, 9 };
  OK_OR_EXIT (dit_noise (be, &np));
  dit_tensor sh = normal2 (3, D, 4), sc = normal2 (3, D, 5);
  dit_tensor h8 = alloc2 (DIT_F8E4M3, L, D), h8s = alloc2 (DIT_F32, D / 128, L);
  prod_ctx c;
  memset (&c, 0, sizeof c);
  c.lm = (dit_layernorm_modulate_params) { &x, &sh, &sc, &h, 720, 1e-6f };
  c.l8 = (dit_layernorm_fp8_params) { &x, NULL, NULL, &sh, &sc, 720, 1e-6f,
    &h8, &h8s, 128 };
  float tlm = be->ops->layernorm_modulate ? timeit (call_lm, &c) : -1.0f;
  float tl8 = timeit (call_l8, &c);
  printf ("  layernorm+modulate [%lld, %lld] f32 -> bf16 %.4f ms, -> fp8 + "
      "scales %.4f ms\n", (long long) L, (long long) D, tlm, tl8);
  dit_tensor q = normal2 (L, D, 11), k = normal2 (N, D, 12), v = normal2 (N, D, 13);
  dit_tensor o = alloc2 (DIT_BF16, L, D);
  memset (&c.a, 0, sizeof c.a);
  c.a.q = &q;
  c.a.k = &k;
  c.a.v = &v;
  c.a.o = &o;
  c.a.heads = 40;
  c.a.head_dim = 128;
  c.a.scale = 0.0883883f;
  c.a.bias_begin = 720;
  c.a.bias_end = 2160;
  c.a.log_bias = -1.2f;
  float ta = timeit (call_attn, &c);
  c.a.o = &h8;
  c.a.o_scale = &h8s;
  float ta8 = timeit (call_attn, &c);
  printf ("  attention L=%lld N=%lld 40 heads -> bf16 %.4f ms, -> fp8 + "
      "scales %.4f ms\n", (long long) L, (long long) N, ta, ta8);
  JSON (", \"ln_bf16_ms\": %.4f, \"ln_fp8_ms\": %.4f, \"attn_bf16_ms\": %.4f, "
      "\"attn_fp8_ms\": %.4f", tlm, tl8, ta, ta8);
  dit_tensor *all[] = { &x, &h, &sh, &sc, &h8, &h8s, &q, &k, &v, &o };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    dit_tensor_free (be, all[i]);
}

int
main (int argc, char **argv)
{
  const int probe_only = argc > 1 && strcmp (argv[1], "probe") == 0;
  const int check_only = argc > 1 && strcmp (argv[1], "selfcheck") == 0;
  if (argc > 1 && !probe_only && !check_only)
    runs = atoi (argv[1]) > 0 ? atoi (argv[1]) : runs;
  be = dit_backend_create ("cuda", 0);
  if (!be) {
    printf ("no CUDA device: %s\n", dit_last_error ());
    return 77;
  }
  if (dit_fp8_check (be) != DIT_OK) {
    printf ("%s\n", dit_last_error ());
    return 77;
  }
  static char report[8192];
  OK_OR_EXIT (dit_cuda_fp8_probe_report (be, report, sizeof report));
  printf ("cuBLASLt FP8 probe:\n%s", report);
  if (probe_only) {
    dit_backend_destroy (be);
    return 0;
  }
  printf ("wgmma self-checks (the automatic choice on the model's feature "
      "sets):\n");
  selfcheck ();
  if (check_only) {
    dit_backend_destroy (be);
    return 0;
  }
  n_engines = E_WG0;
  while (n_engines < E_MAX
      && dit_cuda_gemm_fp8_wgmma_variant_name (n_engines - E_WG0))
    n_engines++;
  printf ("GEMMs of one 14B block at 576x320 (median of %d):\n", runs);
  const int64_t M = 2160;
  double sum[E_MAX + 1];   /* [E_MAX]: the fastest wgmma variant per shape */
  memset (sum, 0, sizeof sum);
  JSON ("{\"gemms\": [");
  gemm_shape ("qkv/cq", M, 5120, 5120, DIT_ACT_NONE, 0, 0, 4, sum);
  gemm_shape ("o/co", M, 5120, 5120, DIT_ACT_NONE, 0, 1, 2, sum);
  gemm_shape ("ffn-up", M, 13824, 5120, DIT_ACT_GELU_TANH, 1, 0, 1, sum);
  gemm_shape ("ffn-down", M, 5120, 13824, DIT_ACT_NONE, 0, 1, 1, sum);
  gemm_shape ("qkv-fused", M, 15360, 5120, DIT_ACT_NONE, 0, 0, 0, sum);
  printf ("  per 40-layer forward (6 projections + FFN; qkv-fused not "
      "counted):\n");
  JSON ("], \"forward_gemm_ms\": {");
  for (int e = 0; e < n_engines; e++) {
    if (sum[e] > 0)
      printf ("      %-28s %8.1f ms\n", engine_label (e), 40 * sum[e]);
    else
      printf ("      %-28s      n/a\n", engine_label (e));
    JSON ("%s\"%s\": %.2f", e ? ", " : "", e == E_BF16 ? "bf16" : e == E_LT
        ? "fp8_lt" : e == E_MMA ? "fp8_mma" : e == E_AUTO ? "fp8_auto"
        : dit_cuda_gemm_fp8_wgmma_variant_name (e - E_WG0),
        sum[e] > 0 ? 40 * sum[e] : -1.0);
  }
  printf ("      %-28s %8.1f ms\n", "fp8 wgmma, best per shape",
      sum[E_MAX] > 0 ? 40 * sum[E_MAX] : -1.0);
  JSON (", \"wgmma_best\": %.2f}", sum[E_MAX] > 0 ? 40 * sum[E_MAX] : -1.0);
  producers ();
  JSON ("}");
  printf ("JSON %s\n", json);
  dit_backend_destroy (be);
  return 0;
}
