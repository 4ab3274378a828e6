/* test_cuda_fp8 — the FP8 path on a GPU.
 *
 *   test-cuda-fp8 [refusal,engines,attention,slice,full,small]
 *                                     (default: all but small)
 *
 *  refusal    with DIT_CUDA_FAKE_CC=8.6 the backend refuses --dtype fp8 and
 *             the message names the device and its compute capability;
 *  engines    the FP8 GEMM on each engine (cuBLASLt where the probe found a
 *             working configuration, the own mma.sync kernel always, every
 *             wgmma variant where the device runs them, and the automatic
 *             choice with its wgmma self-check) against the CPU reference:
 *             ragged shapes with every epilogue (bias dtypes, GELU, bf16,
 *             f16, f32 and FP8 outputs, the residual epilogue with f32 and
 *             bf16 gates, activation blocks of 128 and 256), the wgmma
 *             variants on a 7-CTA grid so that each CTA walks several
 *             tiles; then the 14B DiT GEMMs at M = 2160 (CPU on sampled
 *             rows, and each wgmma variant against mma.sync everywhere);
 *  attention  every attention configuration (0 generic, 1-4 mma.sync,
 *             5-6 wgmma, 7-12 FlashAttention-3 style, where the device runs
 *             them) writing FP8: its codes
 *             and scales must equal its own f32 output quantized by the rule
 *             of kernels/dit_fp8.h, bit for bit;
 *  slice      the quality gate on the 14B 2-layer slice, 576x320, 3 chunks:
 *             bf16 and fp8 against f32 (tests/common/fp8_gate.h);
 *  full       the same on the whole 40-layer 14B synthetic model (f32 needs
 *             about 65 GB: run on an 80 GB card, alone).
 * `small` keeps only the small engine and attention cases (for
 * compute-sanitizer).  The device's cuBLASLt FP8 probe report and the
 * wgmma engine's state are printed first, its self-check record last (on
 * a 9.0 device the engine must run and every self-check pass).
 *
 * Gate limits (NMSE of each chunk's final latents against f32) are set
 * wide from the CPU measurement of the same slice at a small latent
 * (bf16 1.1e-5, fp8 1.5e-4, docs/precision.md) until this test's own
 * numbers replace them: slice bf16 <= 1e-4, fp8 <= 1e-3, cos >= 0.999;
 * full bf16 <= 1e-3, fp8 <= 1e-2, cos >= 0.99.  The fp8 / bf16 ratio is
 * printed against issue 14's 4x (not asserted: see docs/precision.md).
 * Exit 0 pass, 1 fail, 77 no CUDA device or no FP8 tensor cores.
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "dit_config.h"
#include "dit_loader.h"
#include "cuda/dit_cuda.h"
#include "fp8_gate.h"
#include "../common/test_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static dit_backend *tb, *rb;

#define EXPECT(cond, ...) do {                                                \
    if (!(cond)) {                                                            \
      failures++;                                                             \
      printf ("FAIL %s:%d: ", __FILE__, __LINE__);                            \
      printf (__VA_ARGS__);                                                   \
      printf ("\n");                                                          \
    }                                                                         \
  } while (0)

static void
die_if (dit_status st, const char *what)
{
  if (st != DIT_OK) {
    printf ("FAIL %s: %s\n", what, dit_last_error ());
    exit (1);
  }
}

/* a tensor on both backends with the same host contents */
typedef struct pair {
  dit_tensor a, b;
} pair;

static pair
P (dit_dtype dt, int64_t r, int64_t c, const void *host)
{
  pair p;
  int64_t s[2] = { r, c };
  die_if (dit_tensor_alloc (tb, &p.a, dt, 2, s), "alloc");
  die_if (dit_tensor_alloc (rb, &p.b, dt, 2, s), "alloc");
  if (host) {
    die_if (tb->ops->upload (tb, p.a.data, host, dit_tensor_nbytes (&p.a)), "up");
    die_if (rb->ops->upload (rb, p.b.data, host, dit_tensor_nbytes (&p.b)), "up");
  }
  return p;
}

static void
pair_free (pair *p)
{
  dit_tensor_free (tb, &p->a);
  dit_tensor_free (rb, &p->b);
}

static void *
host_of (const dit_tensor *t, dit_backend *be)
{
  void *h = malloc (dit_tensor_nbytes (t));
  die_if (be->ops->synchronize (be), "sync");
  die_if (be->ops->download (be, h, t->data, dit_tensor_nbytes (t)), "download");
  return h;
}

/* ---- refusal ------------------------------------------------------------- */

static void
test_refusal (void)
{
  setenv ("DIT_CUDA_FAKE_CC", "8.6", 1);
  dit_backend *old = dit_backend_create ("cuda", 0);
  unsetenv ("DIT_CUDA_FAKE_CC");
  if (!old) {
    EXPECT (0, "cuda backend with a faked capability: %s", dit_last_error ());
    return;
  }
  dit_model_config cfg;
  dit_weights *w = NULL;
  dit_clear_error ();
  dit_status st = dit_load_model_precision ("tiny", 0, DIT_PRECISION_FP8, old,
      &cfg, &w);
  const char *msg = dit_last_error ();
  EXPECT (st == DIT_ERR_UNSUPPORTED && w == NULL && strstr (msg, "8.6")
      && strstr (msg, "compute capability") && strstr (msg, "device 0 '"),
      "fp8 on a compute capability 8.6 device: %s (%s)", dit_status_name (st),
      msg);
  printf ("refusal: %s\n", msg);
  EXPECT (!old->ops->supports (old, DIT_OP_GEMM_FP8, DIT_F8E4M3),
      "supports (GEMM_FP8) on 8.6");
  dit_backend_destroy (old);
}

/* ---- GEMM engines ---------------------------------------------------------- */

/* One FP8 GEMM with every feature the op has, on every CUDA engine:
 * cuBLASLt (where the probe found a configuration), the mma.sync kernel,
 * each wgmma variant (where the device runs them; on a small grid for the
 * small cases, so that each CTA walks several tiles), and the automatic
 * choice (wgmma after its self-check where it runs).  Each against the CPU
 * reference on all rows, or on `sample` rows (the first and last 8, the
 * rest spread evenly: a CPU product at the 14B shapes takes minutes); at
 * the large shapes each wgmma variant also against the mma.sync kernel on
 * every element. */
typedef struct fcase {
  int64_t M, N, K;
  int64_t x_block;
  dit_dtype bias_dt;       /* DIT_F8E4M3: no bias */
  dit_act act;
  dit_dtype ydt;
  dit_dtype gate_dt;       /* DIT_F8E4M3: no gate */
  int accumulate;
  int64_t rpg;
  int sample;              /* 0: all rows */
} fcase;

#define NO_T DIT_F8E4M3

static int wg_expected;    /* the device runs the wgmma kernels */
static int wg_grid;        /* grid cap for the wgmma variants (0: theirs) */

static void *
host_rand (dit_dtype dt, int64_t n, float scale)
{
  void *h = malloc ((size_t) n * dit_dtype_size (dt));
  for (int64_t i = 0; i < n; i++)
    dit_store_f32 (h, dt, (size_t) i, scale * frand ());
  return h;
}

/* rows of a host [rows, cols] matrix of element size es, picked by idx */
static void *
pick_rows (const void *src, size_t es, int64_t cols, const int64_t *idx,
    int64_t n)
{
  uint8_t *d = malloc ((size_t) (n * cols) * es);
  for (int64_t i = 0; i < n; i++)
    memcpy (d + (size_t) (i * cols) * es,
        (const uint8_t *) src + (size_t) (idx[i] * cols) * es,
        (size_t) cols * es);
  return d;
}

static double
nmse_rows (const void *y, const float *ys, const void *ref, const float *rs,
    dit_dtype dt, int64_t M, int64_t N, const int64_t *idx, int64_t n)
{
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < n; i++)
    for (int64_t c = 0; c < N; c++) {
      const int64_t m = idx[i];
      double t, r;
      if (dt == DIT_F8E4M3) {
        t = dit_e4m3_to_f32 (((const uint8_t *) y)[m * N + c])
            * (double) ys[c / 128 * M + m];
        r = dit_e4m3_to_f32 (((const uint8_t *) ref)[i * N + c])
            * (double) rs[c / 128 * n + i];
      } else {
        t = dit_load_f32 (y, dt, (size_t) (m * N + c));
        r = dit_load_f32 (ref, dt, (size_t) (i * N + c));
      }
      if (!isfinite (t) || !isfinite (r))
        return INFINITY;
      num += (t - r) * (t - r);
      den += r * r;
    }
  return den > 0.0 ? num / den : num;
}

enum { ENG_LT, ENG_MMA, ENG_AUTO, ENG_WG0 };

static const char *
engine_name (int e, char *buf, size_t size)
{
  if (e < ENG_WG0)
    return e == ENG_LT ? "cublaslt" : e == ENG_MMA ? "mma" : "auto";
  snprintf (buf, size, "wgmma %s", dit_cuda_gemm_fp8_wgmma_variant_name (e
      - ENG_WG0));
  return buf;
}

static void
fp8_case (const fcase *fc)
{
  const int64_t M = fc->M, N = fc->N, K = fc->K, xb = fc->x_block;
  const int f8 = fc->ydt == DIT_F8E4M3, has_bias = fc->bias_dt != NO_T;
  const int has_gate = fc->gate_dt != NO_T;
  const int64_t rpg = fc->rpg > 0 ? fc->rpg : 1, G = (M + rpg - 1) / rpg;
  char label[200];
  snprintf (label, sizeof label, "gemm_fp8 M=%lld N=%lld K=%lld%s%s%s%s%s%s "
      "-> %s", (long long) M, (long long) N, (long long) K,
      xb != 128 ? " xblock=256" : "", has_bias ? " bias " : "",
      has_bias ? dit_dtype_name (fc->bias_dt) : "",
      fc->act == DIT_ACT_GELU_TANH ? " gelu" : "",
      has_gate ? (fc->gate_dt == DIT_F32 ? " gate f32" : " gate 16b") : "",
      fc->accumulate ? " +=" : "", dit_dtype_name (fc->ydt));
  /* host inputs */
  uint8_t *hx = malloc ((size_t) (M * K)), *hw = malloc ((size_t) (N * K));
  for (int64_t i = 0; i < M * K; i++)
    hx[i] = dit_f32_to_e4m3 (448.0f * frand ());
  for (int64_t i = 0; i < N * K; i++)
    hw[i] = dit_f32_to_e4m3 (448.0f * frand ());
  float *hxs = malloc ((size_t) (K / xb * M) * sizeof (float));
  float *hws = malloc ((size_t) N * sizeof (float));
  for (int64_t i = 0; i < K / xb * M; i++)
    hxs[i] = 0.001f + 0.009f * fabsf (frand ());
  for (int64_t i = 0; i < N; i++)
    hws[i] = 0.001f + 0.009f * fabsf (frand ());
  void *hb = has_bias ? host_rand (fc->bias_dt, N, 0.5f) : NULL;
  void *hg = has_gate ? host_rand (fc->gate_dt, G * N, 1.0f) : NULL;
  void *hy0 = fc->accumulate ? host_rand (fc->ydt, M * N, 2.0f) : NULL;

  /* the rows the CPU computes */
  const int64_t n = fc->sample > 0 && fc->sample < M ? fc->sample : M;
  int64_t *idx = malloc ((size_t) n * sizeof (int64_t));
  for (int64_t i = 0; i < n; i++)
    idx[i] = n == M ? i : i < 8 ? i : i >= n - 8 ? M - (n - i)
        : 8 + (i - 8) * (M - 16) / (n - 16);
  float *rxs = malloc ((size_t) (K / xb * n) * sizeof (float));
  for (int64_t b = 0; b < K / xb; b++)
    for (int64_t i = 0; i < n; i++)
      rxs[b * n + i] = hxs[b * M + idx[i]];
  uint8_t *rx = pick_rows (hx, 1, K, idx, n);
  void *rg = NULL, *ry0 = NULL;
  if (has_gate) {            /* one gate row per sampled row */
    int64_t *gi = malloc ((size_t) n * sizeof (int64_t));
    for (int64_t i = 0; i < n; i++)
      gi[i] = idx[i] / rpg;
    rg = pick_rows (hg, dit_dtype_size (fc->gate_dt), N, gi, n);
    free (gi);
  }
  if (hy0)
    ry0 = pick_rows (hy0, dit_dtype_size (fc->ydt), N, idx, n);

  /* CPU reference of the sampled rows */
  void *ref = NULL;
  float *refs = NULL;
  {
    dit_tensor x, xs, w, ws, b, g, y, ys;
    int64_t s2[2];
    s2[0] = n; s2[1] = K;
    die_if (dit_tensor_alloc (rb, &x, DIT_F8E4M3, 2, s2), "alloc");
    memcpy (x.data, rx, (size_t) (n * K));
    s2[0] = K / xb; s2[1] = n;
    die_if (dit_tensor_alloc (rb, &xs, DIT_F32, 2, s2), "alloc");
    memcpy (xs.data, rxs, dit_tensor_nbytes (&xs));
    s2[0] = N; s2[1] = K;
    die_if (dit_tensor_alloc (rb, &w, DIT_F8E4M3, 2, s2), "alloc");
    memcpy (w.data, hw, (size_t) (N * K));
    s2[0] = 1; s2[1] = N;
    die_if (dit_tensor_alloc (rb, &ws, DIT_F32, 2, s2), "alloc");
    memcpy (ws.data, hws, (size_t) N * sizeof (float));
    if (has_bias) {
      die_if (dit_tensor_alloc (rb, &b, fc->bias_dt, 2, s2), "alloc");
      memcpy (b.data, hb, dit_tensor_nbytes (&b));
    }
    s2[0] = n; s2[1] = N;
    if (has_gate) {
      die_if (dit_tensor_alloc (rb, &g, fc->gate_dt, 2, s2), "alloc");
      memcpy (g.data, rg, dit_tensor_nbytes (&g));
    }
    die_if (dit_tensor_alloc (rb, &y, fc->ydt, 2, s2), "alloc");
    if (ry0)
      memcpy (y.data, ry0, dit_tensor_nbytes (&y));
    s2[0] = N / 128; s2[1] = n;
    if (f8)
      die_if (dit_tensor_alloc (rb, &ys, DIT_F32, 2, s2), "alloc");
    dit_gemm_fp8_params p = { &x, &xs, xb, &w, &ws, has_bias ? &b : NULL, &y,
      f8 ? &ys : NULL, 128, fc->act, NULL, fc->accumulate,
      has_gate ? &g : NULL, 1 };
    die_if (dit_gemm_fp8 (rb, &p), "cpu gemm_fp8");
    ref = malloc (dit_tensor_nbytes (&y));
    memcpy (ref, y.data, dit_tensor_nbytes (&y));
    if (f8) {
      refs = malloc (dit_tensor_nbytes (&ys));
      memcpy (refs, ys.data, dit_tensor_nbytes (&ys));
      dit_tensor_free (rb, &ys);
    }
    dit_tensor_free (rb, &x); dit_tensor_free (rb, &xs);
    dit_tensor_free (rb, &w); dit_tensor_free (rb, &ws);
    if (has_bias)
      dit_tensor_free (rb, &b);
    if (has_gate)
      dit_tensor_free (rb, &g);
    dit_tensor_free (rb, &y);
  }

  /* the engines on the GPU, full problem */
  dit_tensor x, xs, w, ws, b, g, y, ys, scratch;
  int64_t s2[2] = { M, K };
  die_if (dit_tensor_alloc (tb, &x, DIT_F8E4M3, 2, s2), "alloc");
  die_if (tb->ops->upload (tb, x.data, hx, (size_t) (M * K)), "up");
  s2[0] = K / xb; s2[1] = M;
  die_if (dit_tensor_alloc (tb, &xs, DIT_F32, 2, s2), "alloc");
  die_if (tb->ops->upload (tb, xs.data, hxs, dit_tensor_nbytes (&xs)), "up");
  s2[0] = N; s2[1] = K;
  die_if (dit_tensor_alloc (tb, &w, DIT_F8E4M3, 2, s2), "alloc");
  die_if (tb->ops->upload (tb, w.data, hw, (size_t) (N * K)), "up");
  s2[0] = 1; s2[1] = N;
  die_if (dit_tensor_alloc (tb, &ws, DIT_F32, 2, s2), "alloc");
  die_if (tb->ops->upload (tb, ws.data, hws, (size_t) N * 4), "up");
  if (has_bias) {
    die_if (dit_tensor_alloc (tb, &b, fc->bias_dt, 2, s2), "alloc");
    die_if (tb->ops->upload (tb, b.data, hb, dit_tensor_nbytes (&b)), "up");
  }
  s2[0] = G; s2[1] = N;
  if (has_gate) {
    die_if (dit_tensor_alloc (tb, &g, fc->gate_dt, 2, s2), "alloc");
    die_if (tb->ops->upload (tb, g.data, hg, dit_tensor_nbytes (&g)), "up");
  }
  s2[0] = M; s2[1] = N;
  die_if (dit_tensor_alloc (tb, &y, fc->ydt, 2, s2), "alloc");
  die_if (dit_tensor_alloc (tb, &scratch, DIT_BF16, 2, s2), "alloc");
  s2[0] = N / 128; s2[1] = M;
  if (f8)
    die_if (dit_tensor_alloc (tb, &ys, DIT_F32, 2, s2), "alloc");
  const double thr = f8 ? 1e-3 : fc->accumulate || has_gate ? 1e-4
      : fc->ydt == DIT_F32 ? 1e-6 : 1e-4;
  const int nwg = wg_expected ? 16 : 0;
  void *mma_out = NULL;
  float *mma_outs = NULL;
  for (int e = 0; e < ENG_WG0 + nwg; e++) {
    char nb[64];
    const char *en = engine_name (e, nb, sizeof nb);
    if (e >= ENG_WG0 && !dit_cuda_gemm_fp8_wgmma_variant_name (e - ENG_WG0))
      break;
    if (hy0)
      die_if (tb->ops->upload (tb, y.data, hy0, dit_tensor_nbytes (&y)), "up");
    dit_gemm_fp8_params p = { &x, &xs, xb, &w, &ws, has_bias ? &b : NULL, &y,
      f8 ? &ys : NULL, 128, fc->act, &scratch, fc->accumulate,
      has_gate ? &g : NULL, rpg };
    dit_status st = e == ENG_LT ? dit_cuda_gemm_fp8_path (tb, &p, 1)
        : e == ENG_MMA ? dit_cuda_gemm_fp8_path (tb, &p, 2)
        : e == ENG_AUTO ? dit_gemm_fp8 (tb, &p)
        : dit_cuda_gemm_fp8_wgmma (tb, &p, e - ENG_WG0, wg_grid);
    if (st == DIT_ERR_UNSUPPORTED && (e == ENG_LT || (e >= ENG_WG0 && f8))) {
      printf ("%-66s %-22s n/a (%s)\n", label, en, dit_last_error ());
      continue;
    }
    EXPECT (st == DIT_OK, "%s %s: %s", label, en, dit_last_error ());
    if (st != DIT_OK)
      continue;
    void *out = host_of (&y, tb);
    float *outs = f8 ? host_of (&ys, tb) : NULL;
    const double err = nmse_rows (out, outs, ref, refs, fc->ydt, M, N, idx, n);
    printf ("%-66s %-22s vs cpu (%lld rows) nmse %.3e (limit %.0e) %s\n",
        label, en, (long long) n, err, thr, err <= thr ? "ok" : "FAIL");
    EXPECT (err <= thr, "%s %s: nmse %.3e vs cpu", label, en, err);
    if (e == ENG_MMA) {
      mma_out = out;
      mma_outs = outs;
      continue;
    }
    if (e >= ENG_WG0 && n < M && mma_out) {
      /* every element against the mma.sync kernel */
      int64_t *all = malloc ((size_t) M * sizeof (int64_t));
      for (int64_t i = 0; i < M; i++)
        all[i] = i;
      const double d = nmse_rows (out, outs, mma_out, mma_outs, fc->ydt, M, N,
          all, M);
      const double lim = f8 ? 1e-3 : 1e-5;
      printf ("%-66s %-22s vs mma (all rows) nmse %.3e (limit %.0e) %s\n",
          label, en, d, lim, d <= lim ? "ok" : "FAIL");
      EXPECT (d <= lim, "%s %s: nmse %.3e vs mma", label, en, d);
      free (all);
    }
    free (out);
    free (outs);
  }
  free (mma_out);
  free (mma_outs);
  dit_tensor_free (tb, &x); dit_tensor_free (tb, &xs);
  dit_tensor_free (tb, &w); dit_tensor_free (tb, &ws);
  if (has_bias)
    dit_tensor_free (tb, &b);
  if (has_gate)
    dit_tensor_free (tb, &g);
  dit_tensor_free (tb, &y);
  dit_tensor_free (tb, &scratch);
  if (f8)
    dit_tensor_free (tb, &ys);
  free (hx); free (hw); free (hxs); free (hws); free (hb); free (hg);
  free (hy0); free (idx); free (rxs); free (rx); free (rg); free (ry0);
  free (ref); free (refs);
}

static int small;

static void
test_engines (void)
{
  /* M N K x_block bias act y gate accumulate rpg sample */
  static const fcase small_cases[] = {
    { 130, 384, 1024, 128, DIT_BF16, DIT_ACT_GELU_TANH, DIT_F8E4M3, NO_T, 0,
      0, 0 },
    { 77, 136, 384, 128, DIT_BF16, DIT_ACT_NONE, DIT_BF16, NO_T, 0, 0, 0 },
    { 130, 512, 1024, 128, DIT_BF16, DIT_ACT_NONE, DIT_F32, DIT_F32, 1, 33,
      0 },
    { 200, 288, 768, 256, DIT_F32, DIT_ACT_NONE, DIT_F16, DIT_BF16, 1, 72,
      0 },
  };
  static const fcase cases[] = {
    { 400, 1024, 1024, 128, DIT_BF16, DIT_ACT_NONE, DIT_BF16, NO_T, 0, 0, 0 },
    { 400, 1024, 1024, 128, DIT_BF16, DIT_ACT_GELU_TANH, DIT_BF16, NO_T, 0, 0,
      0 },
    { 400, 1024, 1024, 128, DIT_BF16, DIT_ACT_GELU_TANH, DIT_F8E4M3, NO_T, 0,
      0, 0 },
    { 320, 640, 512, 128, DIT_BF16, DIT_ACT_NONE, DIT_F32, NO_T, 0, 0, 0 },
    { 300, 1024, 1024, 128, DIT_BF16, DIT_ACT_NONE, DIT_BF16, NO_T, 0, 0, 0 },
    { 257, 640, 512, 128, DIT_F32, DIT_ACT_NONE, DIT_F32, NO_T, 0, 0, 0 },
    { 5, 256, 256, 128, NO_T, DIT_ACT_NONE, DIT_BF16, NO_T, 0, 0, 0 },
    { 129, 384, 1536, 128, NO_T, DIT_ACT_GELU_TANH, DIT_F8E4M3, NO_T, 0, 0,
      0 },
    { 250, 520, 1024, 256, DIT_F16, DIT_ACT_GELU_TANH, DIT_F16, NO_T, 0, 0,
      0 },
    { 400, 1024, 1024, 128, DIT_BF16, DIT_ACT_NONE, DIT_F32, DIT_F32, 1, 96,
      0 },
    { 130, 512, 256, 128, DIT_BF16, DIT_ACT_NONE, DIT_F32, DIT_F32, 1, 33, 0 },
    { 333, 648, 640, 128, DIT_BF16, DIT_ACT_NONE, DIT_BF16, DIT_BF16, 1, 111,
      0 },
    { 190, 384, 512, 128, DIT_BF16, DIT_ACT_NONE, DIT_F32, DIT_F32, 0, 64, 0 },
  };
  /* the 14B DiT's shapes at 576x320 (M = 2160 tokens): q/k/v/cross q,
   * o/cross o and FFN down into the f32 residual stream with the per-frame
   * gate, FFN up with GELU into the FP8 hidden layer */
  static const fcase big_cases[] = {
    { 2160, 5120, 5120, 128, DIT_BF16, DIT_ACT_NONE, DIT_BF16, NO_T, 0, 0,
      48 },
    { 2160, 5120, 5120, 128, DIT_BF16, DIT_ACT_NONE, DIT_F32, DIT_F32, 1, 720,
      48 },
    { 2160, 13824, 5120, 128, DIT_BF16, DIT_ACT_GELU_TANH, DIT_F8E4M3, NO_T,
      0, 0, 32 },
    { 2160, 5120, 13824, 128, DIT_BF16, DIT_ACT_NONE, DIT_F32, DIT_F32, 1,
      720, 32 },
  };
  wg_grid = 7;
  if (small) {
    for (size_t i = 0; i < sizeof small_cases / sizeof small_cases[0]; i++)
      fp8_case (&small_cases[i]);
    return;
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    fp8_case (&cases[i]);
  wg_grid = 0;
  for (size_t i = 0; i < sizeof big_cases / sizeof big_cases[0]; i++)
    fp8_case (&big_cases[i]);
}

/* ---- attention epilogues ---------------------------------------------------- */

static void
attention_case (int64_t L, int64_t N, int heads, int64_t cb, int64_t q0,
    int64_t bb, int64_t be_)
{
  const int64_t W = (int64_t) heads * 128;
  size_t nq = (size_t) (L * W), nk = (size_t) (N * W);
  uint16_t *hq = malloc (nq * 2), *hk = malloc (nk * 2), *hv = malloc (nk * 2);
  for (size_t i = 0; i < nq; i++)
    hq[i] = dit_f32_to_bf16 (2.0f * frand ());
  for (size_t i = 0; i < nk; i++) {
    hk[i] = dit_f32_to_bf16 (2.0f * frand ());
    hv[i] = dit_f32_to_bf16 (frand () * (i % 251 == 0 ? 300.0f : 1.0f));
  }
  pair q = P (DIT_BF16, L, W, hq), k = P (DIT_BF16, N, W, hk);
  pair v = P (DIT_BF16, N, W, hv);
  pair of = P (DIT_F32, L, W, NULL), o8 = P (DIT_F8E4M3, L, W, NULL);
  pair os = P (DIT_F32, heads, L, NULL);
  for (int var = 0; var < DIT_CUDA_ATTN_VARIANTS; var++) {
    dit_attn_params p = { .q = &q.a, .k = &k.a, .v = &v.a, .o = &of.a,
      .heads = heads, .head_dim = 128, .scale = 0.0883883f,
      .bias_begin = bb, .bias_end = be_, .log_bias = -1.2f,
      .causal_block = cb, .q_pos0 = q0 };
    dit_status st = dit_cuda_attention_variant (tb, &p, var);
    if (st == DIT_ERR_UNSUPPORTED) {
      printf ("attention variant %d: not run here (%s)\n", var,
          dit_last_error ());
      continue;
    }
    EXPECT (st == DIT_OK, "attention variant %d f32: %s", var, dit_last_error ());
    p.o = &o8.a;
    p.o_scale = &os.a;
    st = dit_cuda_attention_variant (tb, &p, var);
    EXPECT (st == DIT_OK, "attention variant %d fp8: %s", var, dit_last_error ());
    if (st != DIT_OK)
      continue;
    float *f = host_of (&of.a, tb), *s = host_of (&os.a, tb);
    uint8_t *c = host_of (&o8.a, tb);
    int64_t bad = 0;
    for (int64_t r = 0; r < L; r++)
      for (int h = 0; h < heads; h++) {
        float amax = 0.0f;
        for (int d = 0; d < 128; d++)
          amax = fmaxf (amax, fabsf (f[r * W + h * 128 + d]));
        float inv = dit_fp8_inv_scale (amax);
        bad += s[h * L + r] != dit_fp8_scale (amax);
        for (int d = 0; d < 128; d++)
          bad += c[r * W + h * 128 + d] != dit_f32_to_e4m3 (f[r * W + h * 128 + d]
              * inv);
      }
    printf ("attention variant %d L=%lld N=%lld%s: fp8 output vs its f32 "
        "output quantized: %lld of %lld codes/scales differ %s\n", var,
        (long long) L, (long long) N, cb ? " block-causal" : "", (long long) bad,
        (long long) (L * W + L * heads), bad ? "FAIL" : "ok");
    EXPECT (bad == 0, "attention variant %d: %lld differ", var, (long long) bad);
    free (f);
    free (s);
    free (c);
  }
  pair_free (&q); pair_free (&k); pair_free (&v); pair_free (&of);
  pair_free (&o8); pair_free (&os);
  free (hq); free (hk); free (hv);
}

static void
test_attention (void)
{
  if (small) {
    attention_case (333, 777, 3, 0, 0, 0, 0);
    attention_case (200, 200, 2, 64, 0, 0, 0);
    return;
  }
  attention_case (2160, 4320, 4, 0, 0, 720, 2160);
  attention_case (2160, 2160, 4, 2160, 0, 0, 0);
  attention_case (333, 777, 3, 0, 0, 0, 0);
}

/* ---- quality gates ---------------------------------------------------------- */

static void
gate (const char *label, int layers, double lim_bf16, double lim_fp8,
    double lim_cos)
{
  fp8_gate_case c = { .label = label, .latent_h = 40, .latent_w = 72,
    .chunks = 3, .wseed = 0 };
  dit_model_config_preset ("wan-14b", &c.cfg);
  c.cfg.num_layers = layers;
  fp8_gate_result r;
  dit_status st = fp8_gate_run (tb, &c, &r);
  EXPECT (st == DIT_OK, "%s gate: %s", label, dit_last_error ());
  if (st != DIT_OK)
    return;
  for (int k = 0; k < c.chunks; k++) {
    double ratio = r.nmse[1][k] / r.nmse[0][k];
    printf ("%s chunk %d: fp8/bf16 NMSE ratio %.1f (issue 14 asks <= 4: %s)\n",
        label, k, ratio, ratio <= 4.0 ? "met" : "NOT MET");
    EXPECT (r.nmse[0][k] <= lim_bf16 && r.nmse[1][k] <= lim_fp8
        && r.cos[0][k] >= lim_cos && r.cos[1][k] >= lim_cos,
        "%s chunk %d: bf16 %.3e cos %.6f, fp8 %.3e cos %.6f (limits %.0e %.0e "
        "%.4f)", label, k, r.nmse[0][k], r.cos[0][k], r.nmse[1][k], r.cos[1][k],
        lim_bf16, lim_fp8, lim_cos);
  }
}

int
main (int argc, char **argv)
{
  const char *what = argc > 1 ? argv[1] : "refusal,engines,attention,slice,full";
  test_rng = 0x0123456789abcdefull;     /* this program's frand sequence */
  tb = dit_backend_create ("cuda", 0);
  if (!tb) {
    printf ("no CUDA device: %s\n", dit_last_error ());
    return 77;
  }
  rb = dit_backend_cpu ();
  small = strstr (what, "small") != NULL;
  if (strstr (what, "refusal"))
    test_refusal ();
  if (dit_fp8_check (tb) != DIT_OK) {
    printf ("skip: %s\n", dit_last_error ());
    dit_backend_destroy (tb);
    return failures ? 1 : 77;
  }
  static char report[8192];
  die_if (dit_cuda_fp8_probe_report (tb, report, sizeof report), "probe");
  printf ("%s", report);
  die_if (dit_cuda_gemm_fp8_wgmma_report (tb, report, sizeof report),
      "wgmma report");
  printf ("%s", report);
  /* a 9.0 device must run the wgmma engine (the kernels are built for
   * sm_90a): a device check that says no there is a failure */
  wg_expected = strstr (report, "): runs") != NULL;
  EXPECT (wg_expected || !strstr (report, "compute capability 9.0"),
      "the wgmma engine does not run on a compute capability 9.0 device");
  if (strstr (what, "engines"))
    test_engines ();
  if (strstr (what, "attention"))
    test_attention ();
  if (strstr (what, "slice"))
    gate ("wan-14b/2 576x320", 2, 1e-4, 1e-3, 0.999);
  if (strstr (what, "full"))
    gate ("wan-14b/40 576x320", 40, 1e-3, 1e-2, 0.99);
  char paths[4096];
  dit_cuda_gemm_fp8_report (tb, paths, sizeof paths);
  printf ("gemm_fp8 paths: %s\n", paths);
  die_if (dit_cuda_gemm_fp8_wgmma_report (tb, report, sizeof report),
      "wgmma report");
  printf ("%s", report);
  /* the automatic choice ran every feature set through its self-check
   * (unless DIT_FP8_GEMM forces an engine: then none runs) */
  const char *forced = getenv ("DIT_FP8_GEMM");
  EXPECT (!wg_expected || !strstr (what, "engines") || (forced && *forced)
      || (strstr (report, "-> ok") && !strstr (report, "FAILED")),
      "wgmma self-checks: %s", report);
  printf ("%s\n", failures ? "FAIL" : "OK");
  dit_backend_destroy (tb);
  return failures ? 1 : 0;
}
