/* dit-attn-bench — time the CUDA attention and GEMM at the 14B chunk shape.
 *
 * Attention: one denoising forward of the scope/Krea 320x576 setting,
 * L = 2160 queries (a 3-frame chunk) against N = 4320 cached keys (6
 * frames), 40 heads of 128, bf16, with the KV-cache bias range on the two
 * middle context frames; FLOPs = 4·L·N·d·heads (QKᵀ and PV, 2 per MAC).
 * Also the block-causal recompute shape (L = N = 2160, one block).
 * GEMM: M = 2160, N = K = 5120 bf16 with bias through the backend's
 * cuBLASLt path; FLOPs = 2·M·N·K.
 *
 * Timing: cudaEvents on the backend's own stream around each call, 5
 * warm-up calls, median of `runs` (default 30).  Inputs are Philox normals
 * from the backend's noise op (never zeros, which run unrealistically fast).
 * Before timing, the flash (bf16 tensor-core) result of every configuration
 * (dit_cuda_attention_variant 1-4 on mma.sync, 5 on Hopper wgmma and 6 on
 * warp-specialised wgmma with TMA where the device runs them; the output
 * is filled with NaN before each, so a kernel that writes nothing fails)
 * is checked against the generic f32 kernel on the same
 * values (inputs converted to f32), which validates the fast path at full
 * size, for the KV-bias shape and the block-causal one.
 *
 * Usage: dit-attn-bench [runs]     exit 77 when no CUDA device is present
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "cuda/dit_cuda.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                              \
  do {                                                                        \
    if ((x) != DIT_OK) {                                                      \
      fprintf (stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x,             \
          dit_last_error ());                                                 \
      exit (1);                                                               \
    }                                                                         \
  } while (0)

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

static int attn_variant = 2;

static dit_status
call_attention (dit_backend *be, const void *p)
{
  return dit_cuda_attention_variant (be, (const dit_attn_params *) p,
      attn_variant);
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
    CHECK (fn (be, params));
  CHECK (be->ops->synchronize (be));
  float *ms = (float *) malloc (sizeof (float) * (size_t) runs);
  for (int i = 0; i < runs; i++) {
    CUDA_CHECK (cudaEventRecord (e0, s));
    CHECK (fn (be, params));
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
  CHECK (dit_tensor_alloc (be, t, dt, 2, shape));
}

static void
fill_normal (dit_backend *be, dit_tensor *t, uint64_t stream)
{
  dit_noise_params np = { t, 1234, stream };
  CHECK (dit_noise (be, &np));
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
  CHECK (dit_copy (be, &c1));
  CHECK (dit_copy (be, &c2));
  float *ha = (float *) malloc ((size_t) n * 4), *hb = (float *) malloc ((size_t) n * 4);
  CHECK (be->ops->download (be, ha, af.data, (size_t) n * 4));
  CHECK (be->ops->download (be, hb, bf.data, (size_t) n * 4));
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

int
main (int argc, char **argv)
{
  int runs = argc > 1 ? atoi (argv[1]) : 30;
  if (runs < 1)
    runs = 30;
  dit_backend *be = dit_backend_create ("cuda", 0);
  if (!be) {
    printf ("SKIP: %s\n", dit_last_error ());
    return 77;
  }
  cudaDeviceProp prop;
  CUDA_CHECK (cudaGetDeviceProperties (&prop, 0));
  printf ("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);

  const int64_t L = 2160, N = 4320, H = 40, d = 128, W = H * d;
  dit_tensor q, k, v, o, o_ref, qf, kf, vf;
  alloc2 (be, &q, DIT_BF16, L, W);
  alloc2 (be, &k, DIT_BF16, N, W);
  alloc2 (be, &v, DIT_BF16, N, W);
  alloc2 (be, &o, DIT_BF16, L, W);
  fill_normal (be, &q, 1);
  fill_normal (be, &k, 2);
  fill_normal (be, &v, 3);

  /* kv bias on context frames 1-2 of 6 (720 tokens each), as scope does */
  dit_attn_params ap = { &q, &k, &v, &o, (int) H, (int) d,
      1.0f / sqrtf ((float) d), 720, 2160, logf (0.3f), 0, 0,
      NULL, 0, 0, 0, 0 };

  /* full-size check of the flash path against the generic f32 kernel */
  alloc2 (be, &qf, DIT_F32, L, W);
  alloc2 (be, &kf, DIT_F32, N, W);
  alloc2 (be, &vf, DIT_F32, N, W);
  alloc2 (be, &o_ref, DIT_F32, L, W);
  dit_copy_params cq = { &q, &qf }, ck = { &k, &kf }, cv = { &v, &vf };
  CHECK (dit_copy (be, &cq));
  CHECK (dit_copy (be, &ck));
  CHECK (dit_copy (be, &cv));
  dit_attn_params rp = ap;
  rp.q = &qf; rp.k = &kf; rp.v = &vf; rp.o = &o_ref;
  CHECK (dit_attention (be, &rp));
  double err = 0.0;
  /* configurations 5 and 6 need Hopper (and 6 the driver's TMA encoder) */
  int have[7] = { 1, 1, 1, 1, 1, 1, 1 };
  for (int fv = 1; fv <= 6; fv++) {
    poison (&o);
    dit_status st = dit_cuda_attention_variant (be, &ap, fv);
    if (fv >= 5 && st == DIT_ERR_UNSUPPORTED) {
      printf ("variant %d not supported on this device: %s\n", fv,
          dit_last_error ());
      have[fv] = 0;
      continue;
    }
    CHECK (st);
    double e = rel_err (be, &o, &o_ref);
    printf ("flash bf16 (variant %d) vs generic f32 at L=%lld N=%lld H=%lld: "
        "rel err %.3e %s\n", fv, (long long) L, (long long) N, (long long) H,
        e, e < 1e-2 ? "ok" : "FAIL");
    if (e > err)
      err = e;
  }

  /* block-causal recompute pass: 3 context frames, one block */
  dit_attn_params cp = ap;
  cp.k = &k; cp.v = &v;
  dit_tensor k3 = dit_tensor_rows (&k, 0, L), v3 = dit_tensor_rows (&v, 0, L);
  cp.k = &k3; cp.v = &v3;
  cp.bias_begin = cp.bias_end = 0;
  cp.causal_block = 2160;
  dit_tensor q3f = dit_tensor_rows (&qf, 0, L);
  dit_tensor k3f = dit_tensor_rows (&kf, 0, L), v3f = dit_tensor_rows (&vf, 0, L);
  dit_attn_params cpr = cp;
  cpr.q = &q3f; cpr.k = &k3f; cpr.v = &v3f; cpr.o = &o_ref;
  /* one block (every key visible), then per-frame blocks of 720 keys whose
   * edges fall inside key tiles; each flash variant and the dispatch */
  double err2 = 0.0;
  static const int64_t blocks[2] = { 2160, 720 };
  for (int b = 0; b < 2; b++) {
    dit_attn_params bp = cp, bpr = cpr;
    bp.causal_block = bpr.causal_block = blocks[b];
    CHECK (dit_attention (be, &bpr));
    for (int fv = 0; fv <= 6; fv++) {
      if (!have[fv])
        continue;
      poison (&o);
      if (fv == 0)
        CHECK (dit_attention (be, &bp));
      else
        CHECK (dit_cuda_attention_variant (be, &bp, fv));
      double e = rel_err (be, &o, &o_ref);
      char what[32] = "dit_attention";
      if (fv)
        snprintf (what, sizeof what, "variant %d", fv);
      printf ("flash bf16 (%s) vs generic f32, block-causal %lld L=N=%lld: "
          "rel err %.3e %s\n", what, (long long) blocks[b], (long long) L, e,
          e < 1e-2 ? "ok" : "FAIL");
      if (e > err2)
        err2 = e;
    }
  }

  double flops = 4.0 * L * N * d * H;
  double flops_c = 4.0 * L * L * d * H;
  for (attn_variant = 1; attn_variant <= 6; attn_variant++) {
    if (!have[attn_variant])
      continue;
    printf ("attention bf16 L=%lld N=%lld heads=%lld d=%lld (kv bias), flash "
        "variant %d:\n", (long long) L, (long long) N, (long long) H,
        (long long) d, attn_variant);
    float ms = bench (be, call_attention, &ap, runs);
    printf ("ATTN-V%d  %.4f ms  %.1f TFLOP/s\n", attn_variant, ms,
        flops / (ms * 1e-3) / 1e12);
    printf ("attention bf16 L=N=%lld block-causal 2160 (recompute pass), "
        "flash variant %d:\n", (long long) L, attn_variant);
    float msc = bench (be, call_attention, &cp, runs);
    printf ("ATTN-RECOMPUTE-V%d  %.4f ms  %.1f TFLOP/s\n", attn_variant, msc,
        flops_c / (msc * 1e-3) / 1e12);
  }

  dit_tensor_free (be, &qf);
  dit_tensor_free (be, &kf);
  dit_tensor_free (be, &vf);
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
  dit_gemm_params gp = { &x, &w, &b1, &y, DIT_ACT_NONE, 0, NULL, 0, NULL };
  double gflops = 2.0 * GM * GN * GK;
  printf ("gemm bf16 %lldx%lldx%lld + bias (cuBLASLt):\n", (long long) GM,
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
  dit_tensor_free (be, &o);
  dit_backend_destroy (be);
  return (err < 1e-2 && err2 < 1e-2) ? 0 : 1;
}
