/* dit-attn-bench — time the CUDA attention and GEMM at the 14B chunk shape.
 *
 * Attention shapes (40 heads of 128, bf16, scale 1/sqrt(128)):
 *   denoise    L = 2160 queries (a 3-frame chunk) against N = 4320 cached
 *              keys (6 frames), the KV-cache bias on keys [720, 2160)
 *   recompute  L = N = 2160, block-causal with one 2160-key block (the
 *              generator's context recompute: frames_per_chunk x frame
 *              tokens)
 *   causal720  L = N = 2160, block-causal with 720-key (one-frame) blocks
 *   cross      L = 2160 against the 512 text keys, no bias
 * FLOPs = 4·d·heads·Σ_rows (keys the row sees): 4·L·N·d·heads without a
 * causal mask (Q Kᵀ and P V, 2 per MAC); masked keys are not counted.
 * GEMM: M = 2160, N = K = 5120 bf16 with bias through the backend's
 * cuBLASLt path; FLOPs = 2·M·N·K.
 *
 * Every flash configuration (dit_cuda_attention_variant 1-4 on mma.sync,
 * 5 on Hopper wgmma, 6 warp-specialised with TMA, 7-12 FlashAttention-3
 * style, each of 7-12 also under every work schedule) and the backend's
 * dispatch is first checked at full size against the generic f32 kernel
 * on the same values (inputs converted to f32; the output is filled with
 * NaN before each run, so a kernel that writes nothing fails; limit
 * 1e-2 relative).  Only what passes is timed: cudaEvents on the backend's
 * stream around each call, 5 warm-up calls, median of `runs` (default 30).
 * A configuration the device does not run is reported and skipped; one
 * that fails the check is reported, skipped, and makes the exit status 1.
 * Inputs are Philox normals from the backend's noise op (never zeros,
 * which run unrealistically fast).
 *
 * Output: a line per check and per timing, then per shape a summary sorted
 * by time, and one JSON line per result ("ATTN-JSON {...}") for scripts.
 *
 * Usage: dit-attn-bench [--variants LIST] [RUNS]
 *        exit 0 all checks passed, 1 a check failed, 2 usage, 77 no CUDA
 *        device
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

#define CUDA_CHECK(x)                                                         \
  do {                                                                        \
    cudaError_t e_ = (x);                                                     \
    if (e_ != cudaSuccess) {                                                  \
      fprintf (stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x,             \
          cudaGetErrorString (e_));                                           \
      exit (1);                                                               \
    }                                                                         \
  } while (0)

static int
cmp_float (const void *a, const void *b)
{
  float x = *(const float *) a, y = *(const float *) b;
  return x < y ? -1 : x > y;
}

typedef dit_status (*bench_fn) (dit_backend *be, const void *params);

/* which flash configurations run (--variants); the dispatch runs only
 * without --variants */
static int variant_on[DIT_CUDA_ATTN_VARIANTS], dispatch_on = 1;

/* what call_attention runs: variant -1 = dit_attention (the dispatch) */
static int attn_variant = -1, attn_sched = 0;

static dit_status
call_attention (dit_backend *be, const void *p)
{
  if (attn_variant < 0)
    return dit_attention (be, (const dit_attn_params *) p);
  return dit_cuda_attention_schedule (be, (const dit_attn_params *) p,
      attn_variant, attn_sched);
}

static dit_status
call_gemm (dit_backend *be, const void *p)
{
  return dit_gemm (be, (const dit_gemm_params *) p);
}

/* Median milliseconds of `runs` timed calls after 5 warm-up calls. */
static float
bench (dit_backend *be, bench_fn fn, const void *params, int runs)
{
  cudaStream_t s = (cudaStream_t) dit_backend_cuda_stream (be);
  cudaEvent_t e0, e1;
  CUDA_CHECK (cudaEventCreate (&e0));
  CUDA_CHECK (cudaEventCreate (&e1));
  for (int i = 0; i < 5; i++)
    OK_OR_EXIT (fn (be, params));
  OK_OR_EXIT (be->ops->synchronize (be));
  float *ms = (float *) malloc (sizeof (float) * (size_t) runs);
  for (int i = 0; i < runs; i++) {
    CUDA_CHECK (cudaEventRecord (e0, s));
    OK_OR_EXIT (fn (be, params));
    CUDA_CHECK (cudaEventRecord (e1, s));
    CUDA_CHECK (cudaEventSynchronize (e1));
    CUDA_CHECK (cudaEventElapsedTime (&ms[i], e0, e1));
  }
  qsort (ms, (size_t) runs, sizeof (float), cmp_float);
  float med = ms[runs / 2];
  printf ("    min %.4f  median %.4f  max %.4f ms over %d runs\n", ms[0], med,
      ms[runs - 1], runs);
  free (ms);
  cudaEventDestroy (e0);
  cudaEventDestroy (e1);
  return med;
}

static void
alloc2 (dit_backend *be, dit_tensor *t, dit_dtype dt, int64_t r, int64_t c)
{
  int64_t shape[2] = { r, c };
  OK_OR_EXIT (dit_tensor_alloc (be, t, dt, 2, shape));
}

static void
fill_normal (dit_backend *be, dit_tensor *t, uint64_t stream)
{
  dit_noise_params np = { t, 1234, stream };
  OK_OR_EXIT (dit_noise (be, &np));
}

/* ‖a - b‖ / ‖b‖ of two device tensors of equal size (downloaded as f32). */
static double
rel_err (dit_backend *be, const dit_tensor *a, const dit_tensor *b)
{
  int64_t n = dit_tensor_numel (a);
  dit_tensor af, bf;
  alloc2 (be, &af, DIT_F32, 1, n);
  alloc2 (be, &bf, DIT_F32, 1, n);
  dit_tensor a1 = dit_tensor_reshape (a, 2, af.shape);
  dit_tensor b1 = dit_tensor_reshape (b, 2, bf.shape);
  dit_copy_params c1 = { &a1, &af }, c2 = { &b1, &bf };
  OK_OR_EXIT (dit_copy (be, &c1));
  OK_OR_EXIT (dit_copy (be, &c2));
  float *ha = (float *) malloc ((size_t) n * 4), *hb = (float *) malloc ((size_t) n * 4);
  OK_OR_EXIT (be->ops->download (be, ha, af.data, (size_t) n * 4));
  OK_OR_EXIT (be->ops->download (be, hb, bf.data, (size_t) n * 4));
  double num = 0, den = 0;
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite (ha[i]))
      bad++;
    double d = (double) ha[i] - hb[i];
    num += d * d;
    den += (double) hb[i] * hb[i];
  }
  free (ha);
  free (hb);
  dit_tensor_free (be, &af);
  dit_tensor_free (be, &bf);
  if (bad)
    return INFINITY;
  return sqrt (num / den);
}

/* Fill a device tensor with all-ones bytes (NaN in bf16 and f32). */
static void
poison (dit_tensor *t)
{
  CUDA_CHECK (cudaDeviceSynchronize ());
  CUDA_CHECK (cudaMemset (t->data, 0xff, dit_tensor_nbytes (t)));
  CUDA_CHECK (cudaDeviceSynchronize ());
}

/* FLOPs of one call: 4·d·heads per (row, visible key). */
static double
attn_flops (const dit_attn_params *p, int64_t L, int64_t N)
{
  double keys = 0.0;
  for (int64_t r = 0; r < L; r++) {
    int64_t e = N;
    if (p->causal_block > 0) {
      e = ((p->q_pos0 + r) / p->causal_block + 1) * p->causal_block;
      if (e > N)
        e = N;
    }
    keys += (double) e;
  }
  return 4.0 * p->head_dim * p->heads * keys;
}

typedef struct result {
  int variant, sched;   /* variant -1: dit_attention */
  double err;
  float ms;             /* < 0: not timed */
} result;

static int
cmp_result (const void *a, const void *b)
{
  const result *x = (const result *) a, *y = (const result *) b;
  float mx = x->ms < 0 ? 1e30f : x->ms, my = y->ms < 0 ? 1e30f : y->ms;
  return mx < my ? -1 : mx > my;
}

static const char *const sched_names[DIT_CUDA_ATTN_SCHEDULES] = {
  "auto", "rows", "heads", "heads+tail-sk", "rows+tail-sk", "heads-all-sk",
  "rows-all-sk"
};

/* Check every way of running attention on `ap` against the generic f32
 * kernel on `rp`, then time those that pass; prints a summary. Returns
 * the number of failed checks. */
static int
run_shape (dit_backend *be, const char *shape, dit_attn_params *ap,
    dit_attn_params *rp, int64_t L, int64_t N, int runs, const char *gpu)
{
  printf ("\n== %s: L=%lld N=%lld heads=%d d=%d bias [%lld, %lld) "
      "causal_block %lld ==\n", shape, (long long) L, (long long) N,
      ap->heads, ap->head_dim, (long long) ap->bias_begin,
      (long long) ap->bias_end, (long long) ap->causal_block);
  OK_OR_EXIT (dit_attention (be, rp));   /* the generic f32 reference */
  const double flops = attn_flops (ap, L, N);
  result res[1 + DIT_CUDA_ATTN_VARIANTS * DIT_CUDA_ATTN_SCHEDULES];
  int n = 0, failed = 0;
  if (dispatch_on)
    res[n++] = (result) { -1, 0, 0.0, -1.0f };
  for (int v = 1; v < DIT_CUDA_ATTN_VARIANTS; v++)
    for (int s = 0; s < (v >= 7 ? DIT_CUDA_ATTN_SCHEDULES : 1); s++)
      if (variant_on[v])
        res[n++] = (result) { v, s, 0.0, -1.0f };
  for (int i = 0; i < n; i++) {
    result *r = &res[i];
    char what[64];
    if (r->variant < 0)
      snprintf (what, sizeof what, "dit_attention");
    else if (r->variant >= 7)
      snprintf (what, sizeof what, "variant %d %s", r->variant,
          sched_names[r->sched]);
    else
      snprintf (what, sizeof what, "variant %d", r->variant);
    poison (ap->o);
    dit_status st = r->variant < 0 ? dit_attention (be, ap)
        : dit_cuda_attention_schedule (be, ap, r->variant, r->sched);
    if (st == DIT_ERR_UNSUPPORTED) {
      printf ("%-32s not supported on this device: %s\n", what,
          dit_last_error ());
      r->err = -1.0;
      continue;
    }
    if (st != DIT_OK) {
      printf ("%-32s FAIL: %s\n", what, dit_last_error ());
      r->err = INFINITY;
      failed++;
      continue;
    }
    cudaError_t ce = cudaDeviceSynchronize ();
    if (ce != cudaSuccess) {
      /* a kernel fault poisons the context: nothing after it can run */
      printf ("%-32s FAIL: %s (the context is lost, stopping)\n", what,
          cudaGetErrorString (ce));
      exit (1);
    }
    r->err = rel_err (be, ap->o, rp->o);
    const int ok = r->err < 1e-2;
    printf ("%-32s vs generic f32: rel err %.3e %s\n", what, r->err,
        ok ? "ok" : "FAIL (not timed)");
    if (!ok) {
      failed++;
      continue;
    }
    attn_variant = r->variant;
    attn_sched = r->sched;
    printf ("%s, %s:\n", shape, what);
    r->ms = bench (be, call_attention, ap, runs);
    printf ("ATTN %-10s %-32s %.4f ms  %.1f TFLOP/s\n", shape, what, r->ms,
        flops / (r->ms * 1e-3) / 1e12);
    printf ("ATTN-JSON {\"gpu\": \"%s\", \"shape\": \"%s\", \"variant\": %d, "
        "\"schedule\": \"%s\", \"ms\": %.5f, \"tflops\": %.2f, "
        "\"rel_err\": %.3e}\n", gpu, shape, r->variant,
        r->variant >= 7 ? sched_names[r->sched] : "-", r->ms,
        flops / (r->ms * 1e-3) / 1e12, r->err);
  }
  qsort (res, (size_t) n, sizeof res[0], cmp_result);
  printf ("-- %s summary (fastest first; %.3g GFLOP per call) --\n", shape,
      flops / 1e9);
  for (int i = 0; i < n && i < 12; i++) {
    if (res[i].ms < 0)
      break;
    char what[64];
    if (res[i].variant < 0)
      snprintf (what, sizeof what, "dit_attention");
    else
      snprintf (what, sizeof what, "variant %d %s", res[i].variant,
          res[i].variant >= 7 ? sched_names[res[i].sched] : "");
    printf ("SUMMARY %-10s %-30s %.4f ms %6.1f TFLOP/s (rel err %.1e)\n",
        shape, what, res[i].ms, flops / (res[i].ms * 1e-3) / 1e12,
        res[i].err);
  }
  return failed;
}

int
main (int argc, char **argv)
{
  int runs = 30;
  for (int i = 0; i < DIT_CUDA_ATTN_VARIANTS; i++)
    variant_on[i] = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--help") || !strcmp (argv[i], "-h")) {
      printf ("usage: dit-attn-bench [--variants LIST] [RUNS]\n"
          "Checks every attention configuration (or those in LIST, e.g. "
          "7,8: then\nwithout the dispatch) at the 14B shapes against the "
          "generic f32 kernel,\nthen times those that pass (median of RUNS, "
          "default 30).\n");
      return 0;
    }
    if (!strcmp (argv[i], "--variants") && i + 1 < argc) {
      memset (variant_on, 0, sizeof variant_on);
      dispatch_on = 0;
      const char *c = argv[++i];
      while (*c) {
        char *end;
        long v = strtol (c, &end, 10);
        if (end == c || v < 1 || v >= DIT_CUDA_ATTN_VARIANTS
            || (*end && *end != ',')) {
          fprintf (stderr, "dit-attn-bench: --variants wants a "
              "comma-separated list of 1-%d, got '%s'\n",
              DIT_CUDA_ATTN_VARIANTS - 1, argv[i]);
          return 2;
        }
        variant_on[v] = 1;
        c = *end ? end + 1 : end;
      }
      continue;
    }
    char *end;
    runs = (int) strtol (argv[i], &end, 10);
    if (*end || runs < 1) {
      fprintf (stderr, "dit-attn-bench: RUNS must be a positive number, got "
          "'%s' (--help for usage)\n", argv[i]);
      return 2;
    }
  }
  /* line-buffered even into a log file: a run killed by a timeout still
   * shows the last check it began */
  setvbuf (stdout, NULL, _IOLBF, 0);
  dit_backend *be = dit_backend_create ("cuda", 0);
  if (!be) {
    printf ("SKIP: %s\n", dit_last_error ());
    return 77;
  }
  cudaDeviceProp prop;
  CUDA_CHECK (cudaGetDeviceProperties (&prop, 0));
  printf ("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);

  const int64_t L = 2160, N = 4320, H = 40, d = 128, W = H * d, NT = 512;
  dit_tensor q, k, v, o, o_ref, qf, kf, vf, kt, vt, ktf, vtf;
  alloc2 (be, &q, DIT_BF16, L, W);
  alloc2 (be, &k, DIT_BF16, N, W);
  alloc2 (be, &v, DIT_BF16, N, W);
  alloc2 (be, &kt, DIT_BF16, NT, W);
  alloc2 (be, &vt, DIT_BF16, NT, W);
  alloc2 (be, &o, DIT_BF16, L, W);
  fill_normal (be, &q, 1);
  fill_normal (be, &k, 2);
  fill_normal (be, &v, 3);
  fill_normal (be, &kt, 7);
  fill_normal (be, &vt, 8);
  alloc2 (be, &qf, DIT_F32, L, W);
  alloc2 (be, &kf, DIT_F32, N, W);
  alloc2 (be, &vf, DIT_F32, N, W);
  alloc2 (be, &ktf, DIT_F32, NT, W);
  alloc2 (be, &vtf, DIT_F32, NT, W);
  alloc2 (be, &o_ref, DIT_F32, L, W);
  dit_copy_params cq = { &q, &qf }, ck = { &k, &kf }, cv = { &v, &vf };
  dit_copy_params ckt = { &kt, &ktf }, cvt = { &vt, &vtf };
  OK_OR_EXIT (dit_copy (be, &cq));
  OK_OR_EXIT (dit_copy (be, &ck));
  OK_OR_EXIT (dit_copy (be, &cv));
  OK_OR_EXIT (dit_copy (be, &ckt));
  OK_OR_EXIT (dit_copy (be, &cvt));

  int failed = 0;
  /* denoise: kv bias on context frames 1-2 of 6 (720 tokens each), as
   * scope does */
  dit_attn_params ap = { &q, &k, &v, &o, (int) H, (int) d,
      1.0f / sqrtf ((float) d), 720, 2160, logf (0.3f), 0, 0,
      NULL, 0, 0, 0, 0, NULL };
  dit_attn_params rp = ap;
  rp.q = &qf; rp.k = &kf; rp.v = &vf; rp.o = &o_ref;
  failed += run_shape (be, "denoise", &ap, &rp, L, N, runs, prop.name);

  /* recompute: the first 2160 keys, block-causal, no bias */
  dit_tensor k3 = dit_tensor_rows (&k, 0, L), v3 = dit_tensor_rows (&v, 0, L);
  dit_tensor k3f = dit_tensor_rows (&kf, 0, L), v3f = dit_tensor_rows (&vf, 0, L);
  static const int64_t blocks[2] = { 2160, 720 };
  static const char *const names[2] = { "recompute", "causal720" };
  for (int b = 0; b < 2; b++) {
    dit_attn_params cp = ap, cpr = rp;
    cp.k = &k3; cp.v = &v3;
    cpr.k = &k3f; cpr.v = &v3f;
    cp.bias_begin = cp.bias_end = cpr.bias_begin = cpr.bias_end = 0;
    cp.causal_block = cpr.causal_block = blocks[b];
    failed += run_shape (be, names[b], &cp, &cpr, L, L, runs, prop.name);
  }

  /* cross-attention against the 512 text keys */
  dit_attn_params xp = ap, xpr = rp;
  xp.k = &kt; xp.v = &vt;
  xpr.k = &ktf; xpr.v = &vtf;
  xp.bias_begin = xp.bias_end = xpr.bias_begin = xpr.bias_end = 0;
  failed += run_shape (be, "cross", &xp, &xpr, L, NT, runs, prop.name);

  dit_tensor_free (be, &qf);
  dit_tensor_free (be, &kf);
  dit_tensor_free (be, &vf);
  dit_tensor_free (be, &ktf);
  dit_tensor_free (be, &vtf);
  dit_tensor_free (be, &o_ref);

  /* GEMM through the cuBLASLt path */
  const int64_t GM = 2160, GN = 5120, GK = 5120;
  dit_tensor x, w, b, y;
  alloc2 (be, &x, DIT_BF16, GM, GK);
  alloc2 (be, &w, DIT_BF16, GN, GK);
  alloc2 (be, &b, DIT_BF16, 1, GN);
  alloc2 (be, &y, DIT_BF16, GM, GN);
  fill_normal (be, &x, 4);
  fill_normal (be, &w, 5);
  fill_normal (be, &b, 6);
  dit_tensor b1 = dit_tensor_reshape (&b, 1, &GN);
  dit_gemm_params gp = { &x, &w, &b1, &y, DIT_ACT_NONE, 0, NULL, 0, NULL, NULL };
  double gflops = 2.0 * GM * GN * GK;
  printf ("\ngemm bf16 %lldx%lldx%lld + bias (cuBLASLt):\n", (long long) GM,
      (long long) GN, (long long) GK);
  float gms = bench (be, call_gemm, &gp, runs);
  printf ("GEMM  %.4f ms  %.1f TFLOP/s\n", gms, gflops / (gms * 1e-3) / 1e12);
  gp.act = DIT_ACT_GELU_TANH;
  printf ("gemm bf16 %lldx%lldx%lld + bias + GELU epilogue:\n", (long long) GM,
      (long long) GN, (long long) GK);
  float gms2 = bench (be, call_gemm, &gp, runs);
  printf ("GEMM-GELU  %.4f ms  %.1f TFLOP/s\n", gms2,
      gflops / (gms2 * 1e-3) / 1e12);

  dit_tensor_free (be, &x);
  dit_tensor_free (be, &w);
  dit_tensor_free (be, &b);
  dit_tensor_free (be, &y);
  dit_tensor_free (be, &q);
  dit_tensor_free (be, &k);
  dit_tensor_free (be, &v);
  dit_tensor_free (be, &kt);
  dit_tensor_free (be, &vt);
  dit_tensor_free (be, &o);
  dit_backend_destroy (be);
  printf ("\n%s: %d failed check(s)\n", failed ? "FAIL" : "PASS", failed);
  return failed ? 1 : 0;
}
