/* test_cuda_fp8 — the FP8 path on a GPU.
 *
 *   test-cuda-fp8 [refusal,engines,attention,slice,full,small]
 *                                     (default: all but small)
 *
 *  refusal    with DIT_CUDA_FAKE_CC=8.6 the backend refuses --dtype fp8 and
 *             the message names the device and its compute capability;
 *  engines    the FP8 GEMM on each engine (cuBLASLt where the probe found a
 *             working configuration, the own mma.sync kernel always)
 *             against the CPU reference at model-like shapes with bias,
 *             GELU and an FP8 output, and the two engines against each
 *             other at the 14B FFN shapes;
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
 * compute-sanitizer).  The device's cuBLASLt FP8 probe report is printed
 * first.
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

static uint64_t rng = 0x0123456789abcdefull;

static float
frand (void)
{
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (float) ((double) ((rng * 0x2545f4914f6cdd1dull) >> 11)
      / 9007199254740992.0 * 2.0 - 1.0);
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

static double
nmse_values (const void *a, const void *b, dit_dtype dt, size_t n)
{
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    double x = dit_load_f32 (a, dt, i), y = dit_load_f32 (b, dt, i);
    if (!isfinite (x) || !isfinite (y))
      return INFINITY;
    num += (x - y) * (x - y);
    den += y * y;
  }
  return den > 0.0 ? num / den : num;
}

/* NMSE of dequantized FP8 pairs [rows, cols] with scales [cols/128, rows] */
static double
nmse_fp8 (const uint8_t *qa, const float *sa, const uint8_t *qb,
    const float *sb, int64_t rows, int64_t cols)
{
  double num = 0.0, den = 0.0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      int64_t k = c / 128 * rows + r;
      double x = dit_e4m3_to_f32 (qa[r * cols + c]) * (double) sa[k];
      double y = dit_e4m3_to_f32 (qb[r * cols + c]) * (double) sb[k];
      if (!isfinite (x) || !isfinite (y))
        return INFINITY;
      num += (x - y) * (x - y);
      den += y * y;
    }
  return den > 0.0 ? num / den : num;
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

typedef struct fp8mat {
  pair q, s;
  uint8_t *hq;
  float *hs;
} fp8mat;

/* codes of 448 * U(-1, 1) and scales in [1e-3, 1e-2], block-major */
static fp8mat
F8 (int64_t rows, int64_t cols, int64_t block)
{
  fp8mat m;
  m.hq = malloc ((size_t) (rows * cols));
  m.hs = malloc ((size_t) (rows * cols / block) * sizeof (float));
  for (int64_t i = 0; i < rows * cols; i++)
    m.hq[i] = dit_f32_to_e4m3 (448.0f * frand ());
  for (int64_t i = 0; i < rows * cols / block; i++)
    m.hs[i] = 0.001f + 0.009f * fabsf (frand ());
  m.q = P (DIT_F8E4M3, rows, cols, m.hq);
  m.s = P (DIT_F32, cols / block, rows, m.hs);
  return m;
}

static void
fp8mat_free (fp8mat *m)
{
  pair_free (&m->q);
  pair_free (&m->s);
  free (m->hq);
  free (m->hs);
}

/* One GEMM case on the given engines against the CPU (cpu = 1) or the two
 * engines against each other (cpu = 0). */
static void
gemm_case (int64_t M, int64_t N, int64_t K, int bias, dit_act act,
    dit_dtype ydt, int cpu)
{
  char label[160];
  snprintf (label, sizeof label, "gemm_fp8 M=%lld N=%lld K=%lld%s%s -> %s",
      (long long) M, (long long) N, (long long) K, bias ? " bias" : "",
      act == DIT_ACT_GELU_TANH ? " gelu" : "", dit_dtype_name (ydt));
  fp8mat x = F8 (M, K, 128), w = F8 (N, K, K);
  uint16_t *hb = malloc ((size_t) N * 2);
  for (int64_t i = 0; i < N; i++)
    hb[i] = dit_f32_to_bf16 (0.5f * frand ());
  pair b = P (DIT_BF16, 1, N, hb);
  const int f8 = ydt == DIT_F8E4M3;
  pair y[3], ys[3], scratch = P (DIT_BF16, M, N, NULL);
  for (int e = 0; e < 3; e++) {
    y[e] = P (ydt, M, N, NULL);
    ys[e] = P (DIT_F32, N / 128, M, NULL);
  }
  void *out[3] = { NULL, NULL, NULL };
  float *outs[3] = { NULL, NULL, NULL };
  int ran[3] = { 0, 0, 0 };
  for (int e = 0; e < 3; e++) {   /* 0 CPU, 1 cuBLASLt, 2 own */
    if (e == 0 && !cpu)
      continue;
    dit_gemm_fp8_params p = { e ? &x.q.a : &x.q.b, e ? &x.s.a : &x.s.b, 128,
      e ? &w.q.a : &w.q.b, e ? &w.s.a : &w.s.b, bias ? (e ? &b.a : &b.b) : NULL,
      e ? &y[e].a : &y[e].b, f8 ? (e ? &ys[e].a : &ys[e].b) : NULL, 128, act,
      e ? &scratch.a : &scratch.b, 0, NULL, 0 };
    dit_status st = e == 0 ? dit_gemm_fp8 (rb, &p)
        : dit_cuda_gemm_fp8_path (tb, &p, e);
    if (st == DIT_ERR_UNSUPPORTED && e == 1) {
      printf ("%-58s cublaslt: not available (%s)\n", label, dit_last_error ());
      continue;
    }
    EXPECT (st == DIT_OK, "%s engine %d: %s", label, e, dit_last_error ());
    if (st != DIT_OK)
      continue;
    ran[e] = 1;
    out[e] = host_of (e ? &y[e].a : &y[e].b, e ? tb : rb);
    if (f8)
      outs[e] = host_of (e ? &ys[e].a : &ys[e].b, e ? tb : rb);
  }
  const double thr = f8 ? 1e-3 : ydt == DIT_F32 ? 1e-6 : 1e-4;
  const int ref = cpu ? 0 : 2;
  for (int e = 1; e < 3; e++) {
    if (!ran[e] || e == ref || !ran[ref])
      continue;
    double err = f8 ? nmse_fp8 (out[e], outs[e], out[ref], outs[ref], M, N)
        : nmse_values (out[e], out[ref], ydt, (size_t) (M * N));
    printf ("%-58s %-8s vs %-8s nmse %.3e (limit %.0e) %s\n", label,
        e == 1 ? "cublaslt" : "mma", ref == 0 ? "cpu" : "mma", err, thr,
        err <= thr ? "ok" : "FAIL");
    EXPECT (err <= thr, "%s engine %d: nmse %.3e", label, e, err);
  }
  for (int e = 0; e < 3; e++) {
    free (out[e]);
    free (outs[e]);
    pair_free (&y[e]);
    pair_free (&ys[e]);
  }
  pair_free (&scratch);
  pair_free (&b);
  free (hb);
  fp8mat_free (&x);
  fp8mat_free (&w);
}

/* The residual epilogue (y f32 += gate ⊙ (x w + b)) on each engine against
 * the CPU: the own kernel applies it in its epilogue, cuBLASLt through the
 * bf16 scratch and a pass. */
static void
residual_case (int64_t M, int64_t N, int64_t K, int64_t rpg)
{
  char label[160];
  snprintf (label, sizeof label, "gemm_fp8 M=%lld N=%lld K=%lld gated += f32",
      (long long) M, (long long) N, (long long) K);
  fp8mat x = F8 (M, K, 128), w = F8 (N, K, K);
  const int64_t G = (M + rpg - 1) / rpg;
  uint16_t *hb = malloc ((size_t) N * 2);
  float *hg = malloc ((size_t) (G * N) * sizeof (float));
  float *hy = malloc ((size_t) (M * N) * sizeof (float));
  for (int64_t i = 0; i < N; i++)
    hb[i] = dit_f32_to_bf16 (0.5f * frand ());
  for (int64_t i = 0; i < G * N; i++)
    hg[i] = frand ();
  for (int64_t i = 0; i < M * N; i++)
    hy[i] = 2.0f * frand ();
  pair b = P (DIT_BF16, 1, N, hb), gt = P (DIT_F32, G, N, hg);
  pair scratch = P (DIT_BF16, M, N, NULL);
  float *ref = NULL;
  for (int e = 0; e < 3; e++) {
    pair y = P (DIT_F32, M, N, hy);
    dit_gemm_fp8_params p = { e ? &x.q.a : &x.q.b, e ? &x.s.a : &x.s.b, 128,
      e ? &w.q.a : &w.q.b, e ? &w.s.a : &w.s.b, e ? &b.a : &b.b,
      e ? &y.a : &y.b, NULL, 0, DIT_ACT_NONE, e ? &scratch.a : &scratch.b, 1,
      e ? &gt.a : &gt.b, rpg };
    dit_status st = e == 0 ? dit_gemm_fp8 (rb, &p)
        : dit_cuda_gemm_fp8_path (tb, &p, e);
    if (st == DIT_ERR_UNSUPPORTED && e == 1) {
      printf ("%-58s cublaslt: not available (%s)\n", label, dit_last_error ());
      pair_free (&y);
      continue;
    }
    EXPECT (st == DIT_OK, "%s engine %d: %s", label, e, dit_last_error ());
    if (st == DIT_OK) {
      float *out = host_of (e ? &y.a : &y.b, e ? tb : rb);
      if (e == 0) {
        ref = out;
      } else {
        double err = nmse_values (out, ref, DIT_F32, (size_t) (M * N));
        printf ("%-58s %-8s vs cpu      nmse %.3e (limit 1e-4) %s\n", label,
            e == 1 ? "cublaslt" : "mma", err, err <= 1e-4 ? "ok" : "FAIL");
        EXPECT (err <= 1e-4, "%s engine %d: nmse %.3e", label, e, err);
        free (out);
      }
    }
    pair_free (&y);
  }
  free (ref);
  free (hb);
  free (hg);
  free (hy);
  pair_free (&b);
  pair_free (&gt);
  pair_free (&scratch);
  fp8mat_free (&x);
  fp8mat_free (&w);
}

static int small;

static void
test_engines (void)
{
  if (small) {
    gemm_case (130, 384, 256, 1, DIT_ACT_GELU_TANH, DIT_F8E4M3, 1);
    gemm_case (77, 136, 384, 1, DIT_ACT_NONE, DIT_BF16, 1);
    residual_case (130, 512, 256, 33);
    return;
  }
  gemm_case (400, 1024, 1024, 1, DIT_ACT_NONE, DIT_BF16, 1);
  gemm_case (400, 1024, 1024, 1, DIT_ACT_GELU_TANH, DIT_BF16, 1);
  gemm_case (400, 1024, 1024, 1, DIT_ACT_GELU_TANH, DIT_F8E4M3, 1);
  gemm_case (320, 640, 512, 1, DIT_ACT_NONE, DIT_F32, 1);
  gemm_case (300, 1024, 1024, 1, DIT_ACT_NONE, DIT_BF16, 1);
  gemm_case (257, 640, 512, 1, DIT_ACT_NONE, DIT_F32, 1);
  gemm_case (5, 256, 256, 0, DIT_ACT_NONE, DIT_BF16, 1);
  gemm_case (129, 384, 1536, 0, DIT_ACT_GELU_TANH, DIT_F8E4M3, 1);
  residual_case (400, 1024, 1024, 96);
  residual_case (130, 512, 256, 33);
  /* the 14B FFN shapes: engines against each other */
  gemm_case (2160, 13824, 5120, 1, DIT_ACT_GELU_TANH, DIT_BF16, 0);
  gemm_case (2160, 5120, 13824, 1, DIT_ACT_NONE, DIT_BF16, 0);
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
  printf ("%s\n", failures ? "FAIL" : "OK");
  dit_backend_destroy (tb);
  return failures ? 1 : 0;
}
