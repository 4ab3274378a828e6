/* test_cuda_fused — the CUDA fused ops against the unfused op chains they
 * replace, on random inputs.
 *
 * Each fused op is run on the CUDA backend and compared with
 *  (1) the unfused chain on the CPU backend (the reference oracle), by
 *      NMSE = ||fused - chain||^2 / ||chain||^2 over the output;
 *  (2) the unfused chain on the CUDA backend: layernorm_modulate and
 *      noise_flow bit for bit (they keep the chain's intermediate rounding,
 *      reduction order and expression shapes); qk_norm_rope by NMSE
 *      (f32 1e-12, 16-bit 1e-6): on an H200 12% of its f32 elements and
 *      1 in 10^5 bf16 elements differ from the chain at the last bit,
 *      although the PTX of the statistic and of the rotation have the same
 *      shape as in norm.cu and rope.cu; the source of the difference is not
 *      isolated yet, so only the NMSE is required here.
 * Cases and thresholds against the CPU chain:
 *  - layernorm_modulate (LayerNorm without affine, then modulate), x f32
 *    [180, D] (3 frames of 60 tokens), shift/scale rows of an f32 [3, 6D]
 *    table (strided views, as in the model), D = 5120 and 1536:
 *      y f32  1e-12   (f32 arithmetic, reduction order differs)
 *      y bf16 1e-5    (a reduction-order difference can flip one bf16
 *                      rounding of the intermediate; ~2^-16 relative)
 *  - qk_norm_rope (RMSNorm then RoPE, in place), x [60, 5120] (40 heads,
 *    grid 3x4x5, frame offset 3) and [60, 1536] (12 heads), f32 / bf16:
 *      f32 1e-12, bf16 1e-5 (same reasons)
 *  - noise_flow (Philox noise + flow update with re-noise, f64): bit-
 *    identical to the CPU's noise op followed by flow_step, for an even and
 *    an odd element count, with out aliasing x and separate.
 * Also checked: the CPU backend reports supports () = 0 for the fused ops,
 * so the reference path stays the unfused chain.
 * Exit 0 = pass, 1 = fail, 77 = no CUDA device (skip).
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "dit_philox.h"
#include "../common/gpu_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
check (int ok, const char *label, const char *fmt, double a, double b)
{
  printf ("%-52s %s (", label, ok ? "ok" : "FAIL");
  printf (fmt, a, b);
  printf (")\n");
  if (!ok)
    failures++;
}

static void
fill (float *p, size_t n, uint64_t stream, float scale, float offset)
{
  for (size_t i = 0; i < n; i++)
    p[i] = dit_philox_normal (99, stream, i) * scale + offset;
}

/* A 2-D tensor of dtype dt on `be` holding host f32 values (rounded). */
static dit_tensor
make2 (dit_backend *be, dit_dtype dt, int64_t r, int64_t c, const float *v)
{
  int64_t shape[2] = { r, c };
  return upload_as (be, v, dt, 2, shape);
}

static void
get (dit_backend *be, const dit_tensor *t, float *out)
{
  size_t n = (size_t) dit_tensor_numel (t), bytes = n * dit_dtype_size (t->dtype);
  void *tmp = malloc (bytes);
  die_if (be->ops->download (be, tmp, t->data, bytes), "download");
  dit_convert (out, DIT_F32, tmp, t->dtype, n);
  free (tmp);
}

/* ---- layernorm + modulate ------------------------------------------------ */

static void
case_ln_mod (dit_backend *cuda, int64_t D, dit_dtype dt, double thresh)
{
  dit_backend *cpu = dit_backend_cpu ();
  const int64_t F = 3, fs = 60, L = F * fs;
  float *x = malloc ((size_t) (L * D) * sizeof (float));
  float *mod = malloc ((size_t) (F * 6 * D) * sizeof (float));
  float *a = malloc ((size_t) (L * D) * sizeof (float));
  float *b = malloc ((size_t) (L * D) * sizeof (float));
  float *c = malloc ((size_t) (L * D) * sizeof (float));
  fill (x, (size_t) (L * D), 1, 2.0f, 0.5f);
  fill (mod, (size_t) (F * 6 * D), 2, 0.3f, 0.0f);

  dit_tensor xs[2], ms[2], ys[2];
  dit_backend *bes[2] = { cpu, cuda };
  for (int k = 0; k < 2; k++) {
    xs[k] = make2 (bes[k], DIT_F32, L, D, x);
    ms[k] = make2 (bes[k], DIT_F32, F, 6 * D, mod);
    ys[k] = make2 (bes[k], k == 0 ? DIT_F32 : dt, L, D, x);
  }
  /* the CPU chain computes in f32 and rounds its intermediate like the
   * CUDA one: for a 16-bit dtype run it in that dtype */
  dit_tensor ycpu = make2 (cpu, dt, L, D, x);
  for (int k = 0; k < 2; k++) {
    dit_tensor sh = dit_tensor_cols (&ms[k], 0, D);
    dit_tensor sc = dit_tensor_cols (&ms[k], D, D);
    dit_tensor *y = k == 0 ? &ycpu : &ys[1];
    dit_layernorm_params lp = { .x = &xs[k], .y = y, .eps = 1e-6f };
    dit_modulate_params mp = { .x = y, .shift = &sh, .scale = &sc, .y = y,
      .rows_per_group = fs };
    die_if (dit_layernorm (bes[k], &lp), "layernorm");
    die_if (dit_modulate (bes[k], &mp), "modulate");
  }
  get (cpu, &ycpu, a);          /* CPU chain */
  get (cuda, &ys[1], b);        /* CUDA chain */
  dit_tensor yf = make2 (cuda, dt, L, D, x);
  dit_tensor sh = dit_tensor_cols (&ms[1], 0, D);
  dit_tensor sc = dit_tensor_cols (&ms[1], D, D);
  dit_layernorm_modulate_params fp = { .x = &xs[1], .shift = &sh, .scale = &sc,
    .y = &yf, .rows_per_group = fs, .eps = 1e-6f };
  die_if (cuda->ops->layernorm_modulate (cuda, &fp), "layernorm_modulate");
  get (cuda, &yf, c);

  char label[128];
  double e = nmse (c, a, (size_t) (L * D));
  snprintf (label, sizeof label, "layernorm_modulate D %lld %s vs cpu chain",
      (long long) D, dit_dtype_name (dt));
  check (e <= thresh, label, "nmse %.3e, limit %.0e", e, thresh);
  size_t diff = 0;
  for (size_t i = 0; i < (size_t) (L * D); i++)
    diff += memcmp (&b[i], &c[i], sizeof (float)) != 0;
  snprintf (label, sizeof label, "layernorm_modulate D %lld %s vs cuda chain",
      (long long) D, dit_dtype_name (dt));
  check (diff == 0, label, "%.0f of %.0f elements differ", (double) diff,
      (double) (L * D));

  for (int k = 0; k < 2; k++) {
    dit_tensor_free (bes[k], &xs[k]);
    dit_tensor_free (bes[k], &ms[k]);
    dit_tensor_free (bes[k], &ys[k]);
  }
  dit_tensor_free (cpu, &ycpu);
  dit_tensor_free (cuda, &yf);
  free (x); free (mod); free (a); free (b); free (c);
}

/* ---- q/k RMSNorm + RoPE -------------------------------------------------- */

static void
case_norm_rope (dit_backend *cuda, int heads, dit_dtype dt, double thresh)
{
  dit_backend *cpu = dit_backend_cpu ();
  const int64_t gf = 3, gh = 4, gw = 5, L = gf * gh * gw, D = heads * 128;
  const int64_t off = 3;
  float *x = malloc ((size_t) (L * D) * sizeof (float));
  float *w = malloc ((size_t) D * sizeof (float));
  float *a = malloc ((size_t) (L * D) * sizeof (float));
  float *b = malloc ((size_t) (L * D) * sizeof (float));
  float *c = malloc ((size_t) (L * D) * sizeof (float));
  size_t tab = (size_t) DIT_ROPE_POSITIONS * DIT_ROPE_PAIRS;
  float *ct = malloc (tab * sizeof (float)), *st = malloc (tab * sizeof (float));
  dit_rope_table_fill (ct, st);
  fill (x, (size_t) (L * D), 3, 1.5f, 0.1f);
  fill (w, (size_t) D, 4, 0.2f, 1.0f);

  dit_backend *bes[2] = { cpu, cuda };
  dit_tensor xs[3], ws[2], cs[2], ss[2];
  for (int k = 0; k < 2; k++) {
    xs[k] = make2 (bes[k], dt, L, D, x);
    ws[k] = make2 (bes[k], dt, 1, D, w);
    cs[k] = make2 (bes[k], DIT_F32, DIT_ROPE_POSITIONS, DIT_ROPE_PAIRS, ct);
    ss[k] = make2 (bes[k], DIT_F32, DIT_ROPE_POSITIONS, DIT_ROPE_PAIRS, st);
    dit_tensor wv = dit_tensor_1d (ws[k].data, dt, ws[k].device, D);
    dit_rmsnorm_params np = { .x = &xs[k], .weight = &wv, .y = &xs[k],
      .eps = 1e-6f };
    dit_rope_params rp = { .x = &xs[k], .cos = &cs[k], .sin = &ss[k],
      .heads = heads, .grid_f = gf, .grid_h = gh, .grid_w = gw,
      .frame_offset = off };
    die_if (dit_rmsnorm (bes[k], &np), "rmsnorm");
    die_if (dit_rope (bes[k], &rp), "rope");
  }
  get (cpu, &xs[0], a);
  get (cuda, &xs[1], b);
  xs[2] = make2 (cuda, dt, L, D, x);
  dit_tensor wv = dit_tensor_1d (ws[1].data, dt, ws[1].device, D);
  dit_qk_norm_rope_params fp = { .x = &xs[2], .weight = &wv, .cos = &cs[1],
    .sin = &ss[1], .heads = heads, .grid_f = gf, .grid_h = gh, .grid_w = gw,
    .frame_offset = off, .eps = 1e-6f };
  die_if (cuda->ops->qk_norm_rope (cuda, &fp), "qk_norm_rope");
  get (cuda, &xs[2], c);

  char label[128];
  double e = nmse (c, a, (size_t) (L * D));
  snprintf (label, sizeof label, "qk_norm_rope %d heads %s vs cpu chain",
      heads, dit_dtype_name (dt));
  check (e <= thresh, label, "nmse %.3e, limit %.0e", e, thresh);
  size_t diff = 0;
  for (size_t i = 0; i < (size_t) (L * D); i++)
    diff += memcmp (&b[i], &c[i], sizeof (float)) != 0;
  const double lim = dt == DIT_F32 ? 1e-12 : 1e-6;
  e = nmse (c, b, (size_t) (L * D));
  snprintf (label, sizeof label, "qk_norm_rope %d heads %s vs cuda chain",
      heads, dit_dtype_name (dt));
  check (e <= lim, label, "nmse %.3e, limit %.0e", e, lim);
  printf ("  (%zu of %lld elements differ from the cuda chain)\n", diff,
      (long long) (L * D));

  for (int k = 0; k < 2; k++) {
    dit_tensor_free (bes[k], &xs[k]);
    dit_tensor_free (bes[k], &ws[k]);
    dit_tensor_free (bes[k], &cs[k]);
    dit_tensor_free (bes[k], &ss[k]);
  }
  dit_tensor_free (cuda, &xs[2]);
  free (x); free (w); free (a); free (b); free (c); free (ct); free (st);
}

/* ---- noise + flow update ------------------------------------------------- */

static void
case_noise_flow (dit_backend *cuda, int64_t n, int alias)
{
  dit_backend *cpu = dit_backend_cpu ();
  const uint64_t seed = 42, stream = ((uint64_t) 7 << 8) | 2;
  const double sigma = 0.9375, sigma_next = 0.8333333333333334;
  float *x = malloc ((size_t) n * sizeof (float));
  float *v = malloc ((size_t) n * sizeof (float));
  float *a = malloc ((size_t) n * sizeof (float));
  float *c = malloc ((size_t) n * sizeof (float));
  fill (x, (size_t) n, 5, 1.0f, 0.0f);
  fill (v, (size_t) n, 6, 1.3f, -0.2f);

  /* CPU: noise into a buffer, then flow_step */
  dit_tensor xc = make2 (cpu, DIT_F32, 1, n, x), vc = make2 (cpu, DIT_F32, 1, n, v);
  dit_tensor nc = make2 (cpu, DIT_F32, 1, n, x), oc = make2 (cpu, DIT_F32, 1, n, x);
  dit_noise_params np = { .y = &nc, .seed = seed, .stream = stream };
  die_if (dit_noise (cpu, &np), "cpu noise");
  dit_flow_step_params fp = { .x = &xc, .v = &vc, .noise = &nc, .out = &oc,
    .sigma = sigma, .sigma_next = sigma_next };
  die_if (dit_flow_step (cpu, &fp), "cpu flow_step");
  get (cpu, &oc, a);

  dit_tensor xd = make2 (cuda, DIT_F32, 1, n, x), vd = make2 (cuda, DIT_F32, 1, n, v);
  dit_tensor od = make2 (cuda, DIT_F32, 1, n, x);
  dit_noise_flow_params nf = { .x = &xd, .v = &vd, .out = alias ? &xd : &od,
    .seed = seed, .stream = stream, .sigma = sigma, .sigma_next = sigma_next };
  die_if (cuda->ops->noise_flow (cuda, &nf), "noise_flow");
  get (cuda, alias ? &xd : &od, c);
  size_t diff = 0;
  for (int64_t i = 0; i < n; i++)
    diff += memcmp (&a[i], &c[i], sizeof (float)) != 0;
  char label[128];
  snprintf (label, sizeof label, "noise_flow n %lld%s vs cpu noise+flow_step",
      (long long) n, alias ? " (out = x)" : "");
  check (diff == 0, label, "%.0f of %.0f elements differ", (double) diff,
      (double) n);

  dit_tensor *ts[] = { &xc, &vc, &nc, &oc };
  for (int i = 0; i < 4; i++)
    dit_tensor_free (cpu, ts[i]);
  dit_tensor_free (cuda, &xd);
  dit_tensor_free (cuda, &vd);
  dit_tensor_free (cuda, &od);
  free (x); free (v); free (a); free (c);
}

int
main (void)
{
  dit_backend *cpu = dit_backend_cpu ();
  int cpu_fused = cpu->ops->supports (cpu, DIT_OP_LAYERNORM_MODULATE, DIT_F32)
      || cpu->ops->supports (cpu, DIT_OP_QK_NORM_ROPE, DIT_F32)
      || cpu->ops->supports (cpu, DIT_OP_NOISE_FLOW, DIT_F32);
  check (!cpu_fused, "cpu backend has no fused ops", "supports %.0f", cpu_fused, 0);

  dit_backend *cuda = cuda_backend_or_skip ();
  int cuda_fused = cuda->ops->supports (cuda, DIT_OP_LAYERNORM_MODULATE, DIT_BF16)
      && cuda->ops->supports (cuda, DIT_OP_QK_NORM_ROPE, DIT_BF16)
      && cuda->ops->supports (cuda, DIT_OP_NOISE_FLOW, DIT_F32);
  check (cuda_fused, "cuda backend has the fused ops", "supports %.0f", cuda_fused, 0);

  case_ln_mod (cuda, 5120, DIT_F32, 1e-12);
  case_ln_mod (cuda, 5120, DIT_BF16, 1e-5);
  case_ln_mod (cuda, 1536, DIT_BF16, 1e-5);
  case_norm_rope (cuda, 40, DIT_F32, 1e-12);
  case_norm_rope (cuda, 40, DIT_BF16, 1e-5);
  case_norm_rope (cuda, 12, DIT_BF16, 1e-5);
  case_noise_flow (cuda, 16 * 3 * 40 * 72, 0);
  case_noise_flow (cuda, 16 * 3 * 40 * 72, 1);
  case_noise_flow (cuda, 1001, 1);
  dit_backend_destroy (cuda);
  printf ("%s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
