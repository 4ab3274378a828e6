/* test-backend-ops — every entry of the backend table on a backend against
 * the CPU reference.
 *
 *   test-backend-ops [BACKEND] [DEVICE_INDEX]     (default: cpu 0)
 *
 * Covered, entry by entry (a table at the end lists which entry each case
 * reached): memory (alloc, upload, download, memset_zero, synchronize: bytes
 * must survive bit for bit), the DiT ops, the tensor-parallel RMSNorm halves
 * (against the CPU halves, and their composition against the full-width
 * norm), the fused ops (against the unfused chain on the CPU: the CPU has no
 * fused ops, so there they are skipped), the VAE table (conv in its causal,
 * 1x1x1, strided-time and strided-2-D forms, norm, upsample, frame copy,
 * layout both ways, pixels both ways in packed and planar formats), op
 * recording (a recorded chain replayed against eager runs), events and
 * device-side synthetic weights (against the Philox rule on the host).
 *
 * For each case the same random inputs (fixed seed) are uploaded to the
 * backend under test and to the CPU backend, the op runs on both, the
 * outputs are downloaded and compared by
 *   NMSE = sum((a - b)^2) / sum(b^2)
 * against a per-case threshold (f32 outputs ~1e-10, bf16 ~1e-4, noise must
 * be bit-identical).  One line per case: "op dtype shape nmse threshold
 * OK/FAIL"; then "N passed, N failed, N skipped".  Ops the backend reports
 * as unsupported are skipped (and printed as such).  Only the public
 * backend API is used (alloc, upload, download, dispatch), so the same
 * program checks the CUDA backend on a GPU host.  Exit 77 when the backend
 * cannot be created.  Shapes are those of the tiny model (D = 256, 2 heads
 * of 128, 192 tokens, 384 cached keys) plus odd sizes and strided views.
 */
#include "dit_backend.h"
#include "dit_philox.h"
#include "../common/test_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dit_backend *tb;   /* backend under test */
static dit_backend *rb;   /* CPU reference */
static int n_pass, n_fail, n_skip;

#define THR_F32 1e-10
#define THR_BF16 1e-4
#define THR_F16 1e-6

/* ---- a tensor on both backends ------------------------------------------ */

typedef struct tpair {
  dit_tensor a;   /* on tb */
  dit_tensor b;   /* on rb */
  int ok;
} tpair;

static int
tpair_new (tpair *p, dit_dtype dt, int ndim, const int64_t *shape, float amp)
{
  memset (p, 0, sizeof *p);
  if (dit_tensor_alloc (tb, &p->a, dt, ndim, shape) != DIT_OK)
    return 0;
  if (dit_tensor_alloc (rb, &p->b, dt, ndim, shape) != DIT_OK) {
    dit_tensor_free (tb, &p->a);
    return 0;
  }
  size_t n = (size_t) dit_tensor_numel (&p->a), bytes = dit_tensor_nbytes (&p->a);
  void *host = malloc (bytes ? bytes : 1);
  for (size_t i = 0; i < n; i++)
    dit_store_f32 (host, dt, i, amp * frand ());
  int ok = dit_upload (tb, p->a.data, host, bytes) == DIT_OK
      && dit_upload (rb, p->b.data, host, bytes) == DIT_OK;
  free (host);
  p->ok = ok;
  return ok;
}

static tpair
T (dit_dtype dt, int64_t r, int64_t c, float amp)
{
  tpair p;
  int64_t s[2] = { r, c };
  tpair_new (&p, dt, 2, s, amp);
  return p;
}

static tpair
T1 (dit_dtype dt, int64_t n, float amp)
{
  tpair p;
  tpair_new (&p, dt, 1, &n, amp);
  return p;
}

static void
tpair_free (tpair *p)
{
  dit_tensor_free (tb, &p->a);
  dit_tensor_free (rb, &p->b);
}

/* NMSE of the whole buffer of p (views inside it are covered too). */
static double
tpair_nmse (const tpair *p, int *dl_ok)
{
  size_t n = (size_t) dit_tensor_numel (&p->a), bytes = dit_tensor_nbytes (&p->a);
  void *ha = malloc (bytes ? bytes : 1), *hb = malloc (bytes ? bytes : 1);
  *dl_ok = dit_synchronize (tb) == DIT_OK
      && dit_download (tb, ha, p->a.data, bytes) == DIT_OK
      && dit_download (rb, hb, p->b.data, bytes) == DIT_OK;
  double num = 0.0, den = 0.0;
  int nan = 0;
  for (size_t i = 0; *dl_ok && i < n; i++) {
    double a = dit_load_f32 (ha, p->a.dtype, i), b = dit_load_f32 (hb, p->b.dtype, i);
    if (isnan (a) != isnan (b))
      nan = 1;
    if (isnan (a) || isnan (b))
      continue;
    num += (a - b) * (a - b);
    den += b * b;
  }
  free (ha);
  free (hb);
  if (nan)
    return NAN;
  if (den == 0.0)
    return num == 0.0 ? 0.0 : INFINITY;
  return num / den;
}

/* ---- coverage: which table entries the cases reached -------------------- */

enum {
  E_ALLOC, E_UPLOAD, E_DOWNLOAD, E_MEMSET, E_SYNC, E_GEMM, E_LAYERNORM,
  E_RMSNORM, E_MODULATE, E_RESIDUAL, E_ADD, E_UNARY, E_COPY, E_ROPE,
  E_ATTENTION, E_PATCHIFY, E_UNPATCHIFY, E_TIMESTEP, E_FLOW_STEP, E_NOISE,
  E_VAE_CONV, E_VAE_NORM, E_VAE_UPSAMPLE, E_VAE_COPY_FRAMES, E_VAE_LAYOUT,
  E_PIXELS_TO_TENSOR, E_TENSOR_TO_PIXELS, E_SYNTHETIC_NORMAL,
  E_LAYERNORM_MODULATE, E_QK_NORM_ROPE, E_NOISE_FLOW, E_GRAPH, E_EVENTS,
  E_RMSNORM_SUMSQ, E_RMSNORM_APPLY, E_QUANTIZE_FP8, E_LAYERNORM_FP8,
  E_GEMM_FP8, E_FP8_CHECK, E_HOST_MEMORY, E_DEQUANTIZE_FP8, E_COUNT
};
static const char *const entry_names[E_COUNT] = {
  "alloc", "upload", "download", "memset_zero", "synchronize", "gemm",
  "layernorm", "rmsnorm", "modulate", "residual", "add", "unary", "copy",
  "rope", "attention", "patchify", "unpatchify", "timestep", "flow_step",
  "noise", "vae.conv", "vae.norm", "vae.upsample", "vae.copy_frames",
  "vae.layout", "vae.pixels_to_tensor", "vae.tensor_to_pixels",
  "synthetic_normal", "layernorm_modulate", "qk_norm_rope", "noise_flow",
  "graph_*", "event_*", "rmsnorm_sumsq", "rmsnorm_apply",
  /* quantize_fp8, layernorm_fp8, gemm_fp8 under their report names */
  "quant_fp8", "ln_fp8", "gemm_fp8", "fp8_check", "host_alloc/free",
  "dequant8",
};
static int reached[E_COUNT];     /* 1 compared, -1 skipped (not provided) */

static void
mark (int e, int compared)
{
  if (compared)
    reached[e] = 1;
  else if (!reached[e])
    reached[e] = -1;
}

static void
mark_name (const char *op, int compared)
{
  for (int e = 0; e < E_COUNT; e++)
    if (strcmp (entry_names[e], op) == 0)
      mark (e, compared);
}

/* ---- reporting ------------------------------------------------------------ */

static int
supported (dit_op op, dit_dtype dt)
{
  return dit_backend_supports (tb, op, dt);
}

static void
report_skip (const char *op, dit_dtype dt, const char *shape)
{
  n_skip++;
  mark_name (op, 0);
  printf ("%-20s %-5s %-34s %-12s %-9s SKIP (not supported by %s)\n", op,
      dit_dtype_name (dt), shape, "-", "-", dit_backend_name (tb));
}

static char err_a[512];

static void
save_err (dit_status st)
{
  snprintf (err_a, sizeof err_a, "%s", st == DIT_OK ? "" : dit_last_error ());
}

/* Compare outputs after both runs; st_a/st_b are the op statuses. */
static void
report (const char *op, dit_dtype dt, const char *shape, dit_status st_a,
    dit_status st_b, const tpair *out, double thr)
{
  if (st_b != DIT_OK) {
    n_fail++;
    printf ("%-20s %-5s %-34s %-12s %-9.1e FAIL (reference: %s)\n", op,
        dit_dtype_name (dt), shape, "-", thr, dit_last_error ());
    return;
  }
  if (st_a != DIT_OK) {
    n_fail++;
    printf ("%-20s %-5s %-34s %-12s %-9.1e FAIL (%s: %s)\n", op,
        dit_dtype_name (dt), shape, "-", thr, dit_status_name (st_a), err_a);
    return;
  }
  int dl_ok;
  double e = tpair_nmse (out, &dl_ok);
  int ok = dl_ok && e <= thr;
  mark_name (op, 1);
  if (ok)
    n_pass++;
  else
    n_fail++;
  printf ("%-20s %-5s %-34s %-12.3e %-9.1e %s\n", op, dit_dtype_name (dt), shape,
      e, thr, ok ? "OK" : dl_ok ? "FAIL" : "FAIL (download)");
}

static double
thr_for (dit_dtype dt)
{
  return dt == DIT_F32 ? THR_F32 : dt == DIT_BF16 ? THR_BF16 : THR_F16;
}

/* Run the op on both backends: `run` gets the tensors of one side. */
#define SIDE(p, side) ((side) ? &(p).b : &(p).a)

/* ---- cases ---------------------------------------------------------------- */

static void
case_gemm (int64_t M, int64_t N, int64_t K, dit_dtype dt, int has_bias,
    dit_act act, int accumulate, int y_slice)
{
  char shape[96];
  snprintf (shape, sizeof shape, "M=%lld N=%lld K=%lld%s%s%s%s", (long long) M,
      (long long) N, (long long) K, has_bias ? " bias" : "",
      act == DIT_ACT_GELU_TANH ? " gelu" : act == DIT_ACT_SILU ? " silu" : "",
      accumulate ? " acc" : "", y_slice ? " yslice" : "");
  if (!supported (DIT_OP_GEMM, dt)) {
    report_skip ("gemm", dt, shape);
    return;
  }
  float amp = 1.0f / sqrtf ((float) K);
  tpair x = T (dt, M, K, 1.0f), w = T (dt, N, K, amp), b = T1 (DIT_F32, N, 0.5f);
  /* y_slice: y is columns [N, 2N) of a fused [M, 3N] output */
  tpair y = T (dt, M, y_slice ? 3 * N : N, 1.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_tensor yv = *SIDE (y, s);
    if (y_slice)
      yv = dit_tensor_cols (&yv, N, N);
    dit_gemm_params p = { SIDE (x, s), SIDE (w, s), has_bias ? SIDE (b, s) : NULL,
        &yv, act, accumulate, NULL, 0, NULL, NULL };
    st[s] = dit_gemm (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("gemm", dt, shape, st[0], st[1], &y, thr_for (dt));
  tpair_free (&x); tpair_free (&w); tpair_free (&b); tpair_free (&y);
}

/* The folded forms of the model's GEMMs (dit_gemm_params): x and w in dt,
 * y in ydt, the bias in bdt (a bf16 bias into an f32 y), optionally
 * accumulating into y and scaled by a per-row-group gate of dtype gdt (a
 * strided view: every third row of a [3 G, N] table, like the model's
 * modulation rows), with a scratch of dtype sdt for backends that need one
 * (sdt < 0: none). */
static void
case_gemm_fold (int64_t M, int64_t N, int64_t K, dit_dtype dt, dit_dtype ydt,
    dit_dtype bdt, int gated, dit_dtype gdt, int64_t rpg, dit_act act,
    int accumulate, int sdt)
{
  char shape[128];
  snprintf (shape, sizeof shape, "M=%lld N=%lld K=%lld y %s bias %s%s%s%s%s%s%s",
      (long long) M, (long long) N, (long long) K, dit_dtype_name (ydt),
      dit_dtype_name (bdt), act == DIT_ACT_GELU_TANH ? " gelu" : "",
      accumulate ? " acc" : "", gated ? " gate " : "",
      gated ? dit_dtype_name (gdt) : "", gated && sdt >= 0 ? " scratch " : "",
      gated && sdt >= 0 ? dit_dtype_name ((dit_dtype) sdt) : "");
  if (!supported (DIT_OP_GEMM, dt)) {
    report_skip ("gemm", dt, shape);
    return;
  }
  const int64_t G = (M + rpg - 1) / rpg;
  float amp = 1.0f / sqrtf ((float) K);
  tpair x = T (dt, M, K, 1.0f), w = T (dt, N, K, amp), b = T1 (bdt, N, 0.5f);
  tpair y = T (ydt, M, N, 1.0f), g = T (gdt, 3 * G, N, 1.0f);
  tpair sc = T (sdt >= 0 ? (dit_dtype) sdt : dt, M, N, 0.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_tensor gv = *SIDE (g, s);
    gv.shape[0] = G;
    gv.stride[0] = 3 * N;
    dit_gemm_params p = { SIDE (x, s), SIDE (w, s), SIDE (b, s), SIDE (y, s),
        act, accumulate, gated ? &gv : NULL, rpg, sdt >= 0 ? SIDE (sc, s) : NULL,
        NULL };
    st[s] = dit_gemm (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  /* one bf16 rounding of the product when a backend goes through a bf16
   * scratch: the bf16 threshold for every bf16-input case */
  report ("gemm", dt, shape, st[0], st[1], &y, thr_for (dt));
  tpair_free (&x); tpair_free (&w); tpair_free (&b); tpair_free (&y);
  tpair_free (&g); tpair_free (&sc);
}

/* The live-LoRA epilogue (dit_gemm_params.addend): y = act(x wᵀ + addend
 * + bias), the addend either y itself (the low-rank product written there
 * first: cuBLASLt's C on CUDA) or another matrix of dtype adt with a row
 * stride of its own (the exact fallback there). */
static void
case_gemm_addend (int64_t M, int64_t N, int64_t K, dit_dtype dt, dit_act act,
    int alias, dit_dtype adt)
{
  char shape[128];
  snprintf (shape, sizeof shape, "M=%lld N=%lld K=%lld addend %s%s",
      (long long) M, (long long) N, (long long) K,
      alias ? "=y" : dit_dtype_name (adt),
      act == DIT_ACT_GELU_TANH ? " gelu" : "");
  if (!supported (DIT_OP_GEMM, dt)) {
    report_skip ("gemm", dt, shape);
    return;
  }
  float amp = 1.0f / sqrtf ((float) K);
  tpair x = T (dt, M, K, 1.0f), w = T (dt, N, K, amp), b = T1 (dt, N, 0.5f);
  tpair y = T (dt, M, N, 1.0f), a = T (adt, M, N + 3, 1.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_tensor av = dit_tensor_cols (SIDE (a, s), 1, N);
    dit_gemm_params p = { .x = SIDE (x, s), .w = SIDE (w, s),
      .bias = SIDE (b, s), .y = SIDE (y, s), .act = act,
      .addend = alias ? SIDE (y, s) : &av };
    st[s] = dit_gemm (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("gemm", dt, shape, st[0], st[1], &y, thr_for (dt));
  tpair_free (&x); tpair_free (&w); tpair_free (&b); tpair_free (&y);
  tpair_free (&a);
}

/* A live LoRA folded into its layer's GEMM along K (model/dit_model.c,
 * lora_fold): x is the first K columns of an [M, K + R] buffer and the
 * weight the first K columns of W_cat [N, K + R].  One GEMM writes u = x Aᵀ
 * into the R spare columns (y strided), then the layer's GEMM runs over
 * all K + R columns: into y [M, N] of an [M, N + R] buffer (the FFN-up
 * output feeding a folded FFN-down: GELU, y strided) or, residual,
 * accumulated into an f32 y with a per-group gate.  plain: the layer at
 * strength 0, x and the weight as [M, K] / [N, K] views of those buffers
 * (both strided).  Both the x buffer (with u) and y are compared. */
static void
case_gemm_lora_fold (int64_t M, int64_t N, int64_t K, int64_t R, dit_dtype dt,
    int residual, int plain)
{
  char shape[128];
  snprintf (shape, sizeof shape, "M=%lld N=%lld K=%lld+%lld %s", (long long) M,
      (long long) N, (long long) K, (long long) R, plain ? "x, w strided"
      : residual ? "lora fold gate +=f32" : "lora fold gelu y strided");
  if (!supported (DIT_OP_GEMM, dt)) {
    report_skip ("gemm", dt, shape);
    return;
  }
  const int64_t rpg = 64, G = (M + rpg - 1) / rpg;
  const int64_t ny = residual ? N : N + R;
  float amp = 1.0f / sqrtf ((float) (K + R));
  tpair xb = T (dt, M, K + R, 1.0f), wc = T (dt, N, K + R, amp);
  tpair a = T (dt, R, K, 1.0f / sqrtf ((float) K)), b = T1 (dt, N, 0.5f);
  tpair y = T (residual ? DIT_F32 : dt, M, ny, 1.0f);
  tpair g = T (DIT_F32, G, N, 1.0f), sc = T (dt, M, N, 0.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_backend *be = s ? rb : tb;
    dit_tensor x = dit_tensor_cols (SIDE (xb, s), 0, K);
    dit_tensor w = dit_tensor_cols (SIDE (wc, s), 0, K);
    dit_tensor u = dit_tensor_cols (SIDE (xb, s), K, R);
    dit_tensor yv = dit_tensor_cols (SIDE (y, s), 0, N);
    if (!plain) {
      dit_gemm_params up = { .x = &x, .w = SIDE (a, s), .y = &u };
      st[s] = dit_gemm (be, &up);
    }
    dit_gemm_params p = { .x = plain ? &x : SIDE (xb, s),
      .w = plain ? &w : SIDE (wc, s), .bias = SIDE (b, s), .y = &yv,
      .act = residual ? DIT_ACT_NONE : DIT_ACT_GELU_TANH,
      .accumulate = residual, .gate = residual ? SIDE (g, s) : NULL,
      .rows_per_group = rpg, .scratch = residual ? SIDE (sc, s) : NULL };
    if (st[s] == DIT_OK)
      st[s] = dit_gemm (be, &p);
    if (s == 0)
      save_err (st[0]);
  }
  char sx[140], sy[140];
  snprintf (sx, sizeof sx, "%s: x|u", shape);
  snprintf (sy, sizeof sy, "%s: y", shape);
  report ("gemm", dt, sx, st[0], st[1], &xb, thr_for (dt));
  report ("gemm", dt, sy, st[0], st[1], &y, thr_for (dt));
  tpair_free (&xb); tpair_free (&wc); tpair_free (&a); tpair_free (&b);
  tpair_free (&y); tpair_free (&g); tpair_free (&sc);
}

/* A [n0, n1, n2] view with row strides s0, s1 (unit stride inside a row)
 * over the buffer of t, e.g. blocks in a wider matrix or a stride-0
 * broadcast. */
static dit_tensor
view3 (const dit_tensor *t, dit_dtype dt, const int64_t n[3], int64_t s0,
    int64_t s1)
{
  dit_tensor v = dit_tensor_make (t->data, dt, t->device, 3, n);
  v.stride[0] = s0;
  v.stride[1] = s1;
  v.stride[2] = 1;
  return v;
}

/* dit_copy of x[s] into y[s] on the backend under test (s = 0) and the
 * reference (s = 1). */
static void
copy_both (const dit_tensor x[2], dit_tensor y[2], dit_status st[2])
{
  for (int s = 0; s < 2; s++) {
    dit_copy_params p = { &x[s], &y[s] };
    st[s] = dit_copy (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
}

/* The sequence-parallel way back (model/dit_model.c, sp_unpack_tokens):
 * [S, Ls, w] received blocks copied into column block j of each of S
 * members' heads in a token matrix [Ls, S w] whose rows carry `spare`
 * more columns (a folded o projection's input). */
static void
case_copy_blocks (int64_t S, int64_t Ls, int64_t w, int64_t spare,
    dit_dtype dt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld, %lld] -> blocks +%lld cols",
      (long long) S, (long long) Ls, (long long) w, (long long) spare);
  if (!supported (DIT_OP_COPY, dt)) {
    report_skip ("copy", dt, shape);
    return;
  }
  int64_t s3[3] = { S, Ls, w };
  tpair x, y = T (dt, Ls, S * w + spare, 1.0f);
  tpair_new (&x, dt, 3, s3, 1.0f);
  dit_status st[2];
  const dit_tensor xv[2] = { x.a, x.b };
  dit_tensor yv[2] = { view3 (&y.a, dt, s3, w, S * w + spare),
    view3 (&y.b, dt, s3, w, S * w + spare) };
  copy_both (xv, yv, st);
  report ("copy", dt, shape, st[0], st[1], &y, thr_for (dt));
  tpair_free (&x); tpair_free (&y);
}

/* spare > 0: y is the first D columns of an [R, D + spare] buffer (the
 * input of a folded live-LoRA linear, whose u goes in the spare columns:
 * they must come back untouched). */
static void
case_layernorm (int64_t R, int64_t D, dit_dtype dt, int affine, int inplace,
    int64_t spare)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld]%s%s%s", (long long) R,
      (long long) D, affine ? " affine" : "", inplace ? " inplace" : "",
      spare ? " y strided" : "");
  if (!supported (DIT_OP_LAYERNORM, dt)) {
    report_skip ("layernorm", dt, shape);
    return;
  }
  tpair x = T (dt, R, D, 2.0f), y = T (dt, R, D + spare, 1.0f);
  tpair w = T1 (dt, D, 1.0f), b = T1 (dt, D, 1.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_tensor yv = dit_tensor_cols (SIDE (y, s), 0, D);
    dit_layernorm_params p = { SIDE (x, s), affine ? SIDE (w, s) : NULL,
        affine ? SIDE (b, s) : NULL, inplace ? SIDE (x, s) : &yv, 1e-6f };
    st[s] = dit_layernorm (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("layernorm", dt, shape, st[0], st[1], inplace ? &x : &y, thr_for (dt));
  tpair_free (&x); tpair_free (&y); tpair_free (&w); tpair_free (&b);
}

static void
case_rmsnorm (int64_t R, int64_t D, dit_dtype dt, int y_slice)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld]%s", (long long) R, (long long) D,
      y_slice ? " q-slice of qkv" : "");
  if (!supported (DIT_OP_RMSNORM, dt)) {
    report_skip ("rmsnorm", dt, shape);
    return;
  }
  /* y_slice: normalise columns [0, D) of a fused [R, 3D] qkv in place */
  tpair x = T (dt, R, y_slice ? 3 * D : D, 3.0f), y = T (dt, R, D, 1.0f);
  tpair w = T1 (dt, D, 1.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_tensor xv = *SIDE (x, s);
    if (y_slice)
      xv = dit_tensor_cols (&xv, 0, D);
    dit_rmsnorm_params p = { &xv, SIDE (w, s), y_slice ? &xv : SIDE (y, s), 1e-6f };
    st[s] = dit_rmsnorm (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("rmsnorm", dt, shape, st[0], st[1], y_slice ? &x : &y, thr_for (dt));
  tpair_free (&x); tpair_free (&y); tpair_free (&w);
}

/* spare > 0: in place on the first D columns of an [R, D + spare] buffer
 * (the model's LayerNorm-then-modulate chain into a folded LoRA's input). */
static void
case_modulate (int64_t R, int64_t D, int64_t rpg, dit_dtype dt, dit_dtype mdt,
    int64_t spare)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld] groups of %lld mod %s%s",
      (long long) R, (long long) D, (long long) rpg, dit_dtype_name (mdt),
      spare ? " inplace strided" : "");
  if (!supported (DIT_OP_MODULATE, dt)) {
    report_skip ("modulate", dt, shape);
    return;
  }
  int64_t G = (R + rpg - 1) / rpg;
  tpair x = T (dt, R, D, 2.0f), y = T (dt, R, D + spare, 1.0f);
  tpair sh = T (mdt, G, D, 1.0f), sc = T (mdt, G, D, 0.5f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_tensor yv = dit_tensor_cols (SIDE (y, s), 0, D);
    dit_modulate_params p = { spare ? &yv : SIDE (x, s), SIDE (sh, s),
        SIDE (sc, s), &yv, rpg };
    st[s] = dit_modulate (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("modulate", dt, shape, st[0], st[1], &y, thr_for (dt));
  tpair_free (&x); tpair_free (&y); tpair_free (&sh); tpair_free (&sc);
}

static void
case_residual (int64_t R, int64_t D, int64_t rpg, dit_dtype dt, int gated)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld]%s", (long long) R, (long long) D,
      gated ? " gated" : "");
  if (!supported (DIT_OP_RESIDUAL, dt)) {
    report_skip ("residual", dt, shape);
    return;
  }
  int64_t G = (R + rpg - 1) / rpg;
  tpair x = T (dt, R, D, 1.0f), y = T (dt, R, D, 1.0f), g = T (DIT_F32, G, D, 1.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_residual_params p = { SIDE (x, s), SIDE (y, s), gated ? SIDE (g, s) : NULL, rpg };
    st[s] = dit_residual (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("residual", dt, shape, st[0], st[1], &x, thr_for (dt));
  tpair_free (&x); tpair_free (&y); tpair_free (&g);
}

static void
case_add (int64_t rows, int64_t n, dit_dtype dt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld] + [%lld]", (long long) rows,
      (long long) n, (long long) n);
  if (!supported (DIT_OP_ADD, dt)) {
    report_skip ("add", dt, shape);
    return;
  }
  tpair a = T (dt, rows, n, 1.0f), b = T1 (DIT_F32, n, 1.0f), y = T (dt, rows, n, 1.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_add_params p = { SIDE (a, s), SIDE (b, s), SIDE (y, s) };
    st[s] = dit_add (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("add", dt, shape, st[0], st[1], &y, thr_for (dt));
  tpair_free (&a); tpair_free (&b); tpair_free (&y);
}

static void
case_unary (int64_t R, int64_t D, dit_dtype dt, dit_act act)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld] %s", (long long) R, (long long) D,
      act == DIT_ACT_SILU ? "silu" : "gelu_tanh");
  if (!supported (DIT_OP_UNARY, dt)) {
    report_skip ("unary", dt, shape);
    return;
  }
  tpair x = T (dt, R, D, 4.0f), y = T (dt, R, D, 1.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_unary_params p = { SIDE (x, s), SIDE (y, s), act };
    st[s] = dit_unary (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("unary", dt, shape, st[0], st[1], &y, thr_for (dt));
  tpair_free (&x); tpair_free (&y);
}

static void
case_copy (int64_t R, int64_t C, dit_dtype sdt, dit_dtype ddt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld] %s cols->slice", (long long) R,
      (long long) C, dit_dtype_name (sdt));
  if (!supported (DIT_OP_COPY, ddt)) {
    report_skip ("copy", ddt, shape);
    return;
  }
  /* columns [C, 2C) of a [R, 3C] source into columns [C/2, C/2 + C) of a
   * [R, 2C] destination */
  tpair x = T (sdt, R, 3 * C, 1.0f), y = T (ddt, R, 2 * C, 1.0f);
  dit_status st[2];
  const dit_tensor xv[2] = { dit_tensor_cols (&x.a, C, C),
    dit_tensor_cols (&x.b, C, C) };
  dit_tensor yv[2] = { dit_tensor_cols (&y.a, C / 2, C),
    dit_tensor_cols (&y.b, C / 2, C) };
  copy_both (xv, yv, st);
  report ("copy", ddt, shape, st[0], st[1], &y, thr_for (ddt));
  tpair_free (&x); tpair_free (&y);
}

/* A stride-0 broadcast view copied out: x [R, B, C] with stride 0 over B
 * (the model spreads e0 over the blocks this way). */
static void
case_copy_broadcast (int64_t R, int64_t B, int64_t C, dit_dtype dt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld (stride 0), %lld]", (long long) R,
      (long long) B, (long long) C);
  if (!supported (DIT_OP_COPY, dt)) {
    report_skip ("copy", dt, shape);
    return;
  }
  tpair x = T (DIT_F32, R, C, 1.0f), y = T (dt, R * B, C, 1.0f);
  int64_t s3[3] = { R, B, C };
  dit_status st[2];
  const dit_tensor xv[2] = { view3 (&x.a, DIT_F32, s3, C, 0),
    view3 (&x.b, DIT_F32, s3, C, 0) };
  dit_tensor yv[2] = { view3 (&y.a, dt, s3, B * C, C),
    view3 (&y.b, dt, s3, B * C, C) };
  copy_both (xv, yv, st);
  report ("copy", dt, shape, st[0], st[1], &y, thr_for (dt));
  tpair_free (&x); tpair_free (&y);
}

static void
case_rope (int heads, int64_t gf, int64_t gh, int64_t gw, int64_t off, dit_dtype dt)
{
  char shape[96];
  int64_t L = gf * gh * gw, W = (int64_t) heads * 128;
  snprintf (shape, sizeof shape, "[%lld, %lld] grid %lldx%lldx%lld +%lld",
      (long long) L, (long long) W, (long long) gf, (long long) gh, (long long) gw,
      (long long) off);
  if (!supported (DIT_OP_ROPE, dt)) {
    report_skip ("rope", dt, shape);
    return;
  }
  static float ct[DIT_ROPE_POSITIONS * DIT_ROPE_PAIRS];
  static float stab[DIT_ROPE_POSITIONS * DIT_ROPE_PAIRS];
  dit_rope_table_fill (ct, stab);
  tpair x = T (dt, L, W, 1.0f);
  tpair c = T (DIT_F32, DIT_ROPE_POSITIONS, DIT_ROPE_PAIRS, 0.0f);
  tpair sn = T (DIT_F32, DIT_ROPE_POSITIONS, DIT_ROPE_PAIRS, 0.0f);
  size_t tb_bytes = sizeof ct;
  dit_upload (tb, c.a.data, ct, tb_bytes);
  dit_upload (rb, c.b.data, ct, tb_bytes);
  dit_upload (tb, sn.a.data, stab, tb_bytes);
  dit_upload (rb, sn.b.data, stab, tb_bytes);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_rope_params p = { SIDE (x, s), SIDE (c, s), SIDE (sn, s), heads, gf, gh, gw, off };
    st[s] = dit_rope (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("rope", dt, shape, st[0], st[1], &x, thr_for (dt));
  tpair_free (&x); tpair_free (&c); tpair_free (&sn);
}

/* o_spare > 0: o is the first H*d columns of an [L, H*d + o_spare]
 * buffer (the input of a folded live-LoRA o projection). */
static void
case_attention (int64_t L, int64_t N, int heads, int d, int64_t bb, int64_t bend,
    float bias, int64_t cb, int64_t qp0, int kv_fused, dit_dtype dt,
    int64_t o_spare)
{
  char shape[128];
  snprintf (shape, sizeof shape, "L=%lld N=%lld H=%d d=%d", (long long) L,
      (long long) N, heads, d);
  if (bend > bb)
    snprintf (shape + strlen (shape), sizeof shape - strlen (shape),
        " bias[%lld,%lld)", (long long) bb, (long long) bend);
  if (cb > 0)
    snprintf (shape + strlen (shape), sizeof shape - strlen (shape),
        " cb=%lld q0=%lld", (long long) cb, (long long) qp0);
  if (kv_fused)
    snprintf (shape + strlen (shape), sizeof shape - strlen (shape), " kv-fused");
  if (o_spare)
    snprintf (shape + strlen (shape), sizeof shape - strlen (shape),
        " o strided");
  if (!supported (DIT_OP_ATTENTION, dt)) {
    report_skip ("attention", dt, shape);
    return;
  }
  int64_t W = (int64_t) heads * d;
  tpair q = T (dt, L, W, 2.0f), o = T (dt, L, W + o_spare, 1.0f);
  /* kv_fused: k and v are the two column halves of one [N, 2W] buffer */
  tpair k = T (dt, N, kv_fused ? 2 * W : W, 2.0f), v = T (dt, N, W, 1.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_tensor kv = *SIDE (k, s), vv = *SIDE (v, s);
    if (kv_fused) {
      vv = dit_tensor_cols (&kv, W, W);
      kv = dit_tensor_cols (&kv, 0, W);
    }
    dit_tensor ov = dit_tensor_cols (SIDE (o, s), 0, W);
    dit_attn_params p = { SIDE (q, s), &kv, &vv, &ov, heads, d,
        1.0f / sqrtf ((float) d), bb, bend, bias > 0 ? logf (bias) : 0.0f, cb, qp0,
        NULL, 0, 0, 0, 0, NULL };
    st[s] = dit_attention (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("attention", dt, shape, st[0], st[1], &o, thr_for (dt));
  tpair_free (&q); tpair_free (&k); tpair_free (&v); tpair_free (&o);
}

static void
case_patchify (int64_t C, int64_t F, int64_t H, int64_t W, dit_dtype dt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld, %lld, %lld]", (long long) C,
      (long long) F, (long long) H, (long long) W);
  int64_t L = F * (H / 2) * (W / 2), ls[4] = { C, F, H, W };
  if (!supported (DIT_OP_PATCHIFY, dt)) {
    report_skip ("patchify", dt, shape);
  } else {
    tpair lat, tok = T (dt, L, 4 * C, 1.0f);
    tpair_new (&lat, DIT_F32, 4, ls, 1.0f);
    dit_status st[2] = { DIT_OK, DIT_OK };
    for (int s = 0; s < 2; s++) {
      dit_patchify_params p = { SIDE (lat, s), SIDE (tok, s) };
      st[s] = dit_patchify (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
    }
    report ("patchify", dt, shape, st[0], st[1], &tok, thr_for (dt));
    tpair_free (&lat); tpair_free (&tok);
  }
  if (!supported (DIT_OP_UNPATCHIFY, dt)) {
    report_skip ("unpatchify", dt, shape);
  } else {
    tpair lat, tok = T (dt, L, 4 * C, 1.0f);
    tpair_new (&lat, DIT_F32, 4, ls, 1.0f);
    dit_status st[2] = { DIT_OK, DIT_OK };
    for (int s = 0; s < 2; s++) {
      dit_unpatchify_params p = { SIDE (tok, s), SIDE (lat, s) };
      st[s] = dit_unpatchify (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
    }
    report ("unpatchify", dt, shape, st[0], st[1], &lat, THR_F32);
    tpair_free (&lat); tpair_free (&tok);
  }
}

static void
case_timestep (dit_dtype dt)
{
  static const double t[5] = { 1000.0, 750.0, 500.5996, 0.0, 937.5 };
  const char *shape = "[5, 256] t=1000,750,500.6,0,937.5";
  if (!supported (DIT_OP_TIMESTEP, dt)) {
    report_skip ("timestep", dt, shape);
    return;
  }
  tpair y = T (dt, 5, 256, 1.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_timestep_params p = { t, 5, SIDE (y, s) };
    st[s] = dit_timestep (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("timestep", dt, shape, st[0], st[1], &y, thr_for (dt));
  tpair_free (&y);
}

static void
case_flow_step (int64_t R, int64_t C, dit_dtype dt, int with_noise)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld]%s", (long long) R, (long long) C,
      with_noise ? " renoise" : " x0 only");
  if (!supported (DIT_OP_FLOW_STEP, dt)) {
    report_skip ("flow_step", dt, shape);
    return;
  }
  tpair x = T (dt, R, C, 1.0f), v = T (dt, R, C, 1.0f), n = T (dt, R, C, 1.0f);
  tpair x0 = T (dt, R, C, 1.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    /* out aliases x, as the generator uses it */
    dit_flow_step_params p = { SIDE (x, s), SIDE (v, s),
        with_noise ? SIDE (n, s) : NULL, SIDE (x0, s),
        with_noise ? SIDE (x, s) : NULL, 0.7500001, 0.5005996 };
    st[s] = dit_flow_step (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("flow_step", dt, shape, st[0], st[1], &x0, thr_for (dt));
  if (with_noise)
    report ("flow_step", dt, "(out aliasing x)", DIT_OK, DIT_OK, &x, thr_for (dt));
  tpair_free (&x); tpair_free (&v); tpair_free (&n); tpair_free (&x0);
}

static void
case_noise (int64_t n, uint64_t seed, uint64_t stream, dit_dtype dt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld] seed=%llu stream=%llu", (long long) n,
      (unsigned long long) seed, (unsigned long long) stream);
  if (!supported (DIT_OP_NOISE, dt)) {
    report_skip ("noise", dt, shape);
    return;
  }
  tpair y = T1 (dt, n, 0.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_noise_params p = { SIDE (y, s), seed, stream };
    st[s] = dit_noise (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("noise", dt, shape, st[0], st[1], &y, 0.0);
  tpair_free (&y);
}

/* ---- FP8 ------------------------------------------------------------------
 * Codes are compared through their dequantized values (code * scale), so a
 * code one step away on a rounding boundary (f32 statistics on one side,
 * f64 on the other; another summation order) costs ~1e-5 of NMSE, while a
 * wrong scale layout or a wrong block costs O(1).  Scales are compared on
 * their own too. */

#define THR_FP8_CODES 1e-3
#define THR_FP8_SCALES 1e-8

/* An FP8 pair on both backends: codes made from amp * frand () scaled into
 * the e4m3 range, and positive scales; or empty outputs. */
typedef struct fp8pair {
  tpair q, s;
  int64_t block;
} fp8pair;

static fp8pair
F8 (int64_t r, int64_t c, int64_t block, int fill)
{
  fp8pair p;
  p.block = block;
  p.q = T (DIT_F8E4M3, r, c, 0.0f);
  p.s = T (DIT_F32, c / block, r, 0.0f);
  if (fill) {
    size_t n = (size_t) (r * c), ns = (size_t) (c / block * r);
    uint8_t *q = malloc (n);
    float *s = malloc (ns * sizeof (float));
    for (size_t i = 0; i < n; i++)
      q[i] = dit_f32_to_e4m3 (448.0f * frand ());
    for (size_t i = 0; i < ns; i++)
      s[i] = 0.001f + 0.01f * fabsf (frand ());
    dit_upload (tb, p.q.a.data, q, n);
    dit_upload (rb, p.q.b.data, q, n);
    dit_upload (tb, p.s.a.data, s, ns * sizeof (float));
    dit_upload (rb, p.s.b.data, s, ns * sizeof (float));
    free (q);
    free (s);
  }
  return p;
}

static void
fp8pair_free (fp8pair *p)
{
  tpair_free (&p->q);
  tpair_free (&p->s);
}

/* NMSE of the dequantized values of an FP8 output pair. */
static double
fp8_nmse (const fp8pair *p, int *dl_ok)
{
  int64_t rows = p->q.a.shape[0], cols = p->q.a.shape[1];
  size_t n = (size_t) (rows * cols), ns = (size_t) (cols / p->block * rows);
  uint8_t *qa = malloc (n), *qb = malloc (n);
  float *sa = malloc (ns * sizeof (float)), *sb = malloc (ns * sizeof (float));
  *dl_ok = dit_synchronize (tb) == DIT_OK
      && dit_download (tb, qa, p->q.a.data, n) == DIT_OK
      && dit_download (rb, qb, p->q.b.data, n) == DIT_OK
      && dit_download (tb, sa, p->s.a.data, ns * sizeof (float)) == DIT_OK
      && dit_download (rb, sb, p->s.b.data, ns * sizeof (float)) == DIT_OK;
  double num = 0.0, den = 0.0;
  int nan = 0;
  for (int64_t r = 0; *dl_ok && r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      size_t i = (size_t) (r * cols + c), k = (size_t) (c / p->block * rows + r);
      double a = dit_e4m3_to_f32 (qa[i]) * (double) sa[k];
      double b = dit_e4m3_to_f32 (qb[i]) * (double) sb[k];
      if (isnan (a) || isnan (b)) {
        nan = 1;
        continue;
      }
      num += (a - b) * (a - b);
      den += b * b;
    }
  free (qa); free (qb); free (sa); free (sb);
  if (nan)
    return NAN;
  return den == 0.0 ? (num == 0.0 ? 0.0 : INFINITY) : num / den;
}

/* scale_thr: the scales' NMSE limit: THR_FP8_SCALES where both sides
 * quantize the same f32 values up to summation order, the op's own output
 * limit where a backend computes the values themselves less precisely
 * (attention's bf16 P on tensor cores). */
static void
report_fp8 (const char *op, const char *shape, dit_status st_a, dit_status st_b,
    const fp8pair *out, double scale_thr)
{
  if (st_a != DIT_OK || st_b != DIT_OK) {
    report (op, DIT_F8E4M3, shape, st_a, st_b, &out->q, THR_FP8_CODES);
    return;
  }
  int dl_ok;
  double e = fp8_nmse (out, &dl_ok);
  int ok = dl_ok && e <= THR_FP8_CODES;
  n_pass += ok;
  n_fail += !ok;
  printf ("%-10s %-5s %-34s %-12.3e %-9.1e %s\n", op, "f8", shape, e,
      THR_FP8_CODES, ok ? "OK" : dl_ok ? "FAIL" : "FAIL (download)");
  /* the scales alone: a layout mistake shows here first */
  char sshape[96];
  snprintf (sshape, sizeof sshape, "%s (scales)", shape);
  report (op, DIT_F32, sshape, DIT_OK, DIT_OK, &out->s, scale_thr);
}

/* fp8_check: the device runs the FP8 ops, or says why not (a GPU without
 * FP8 tensor cores); never another error. */
static void
case_fp8_check (void)
{
  dit_status st = dit_fp8_check (tb);
  int ok = st == DIT_OK || st == DIT_ERR_UNSUPPORTED;
  mark (E_FP8_CHECK, 1);
  n_pass += ok;
  n_fail += !ok;
  printf ("%-20s %-5s %-34s %-12s %-9s %s%s%s\n", "fp8_check", "-",
      st == DIT_OK ? "FP8 ops run here" : "FP8 ops refused", "-", "-",
      ok ? "OK" : "FAIL", st == DIT_OK ? "" : ": ",
      st == DIT_OK ? "" : dit_last_error ());
}

static void
case_quantize_fp8 (int64_t R, int64_t C, int64_t block, dit_dtype dt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld] %s block %lld", (long long) R,
      (long long) C, dit_dtype_name (dt), (long long) block);
  if (!supported (DIT_OP_QUANTIZE_FP8, DIT_F8E4M3)) {
    report_skip ("quant_fp8", DIT_F8E4M3, shape);
    return;
  }
  tpair x = T (dt, R, C, 3.0f);
  fp8pair y = F8 (R, C, block, 0);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_quantize_fp8_params p = { SIDE (x, s), SIDE (y.q, s), SIDE (y.s, s), block };
    st[s] = dit_quantize_fp8 (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report_fp8 ("quant_fp8", shape, st[0], st[1], &y, THR_FP8_SCALES);
  tpair_free (&x);
  fp8pair_free (&y);
}

/* dequantize: codes and block scales back to dt (a weight: block = cols;
 * an activation: blocks of 128), y a column slice (strided rows). */
static void
case_dequantize_fp8 (int64_t R, int64_t C, int64_t block, dit_dtype dt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld] block %lld to %s",
      (long long) R, (long long) C, (long long) block, dit_dtype_name (dt));
  if (!supported (DIT_OP_DEQUANTIZE_FP8, DIT_F8E4M3)) {
    report_skip ("dequant8", DIT_F8E4M3, shape);
    return;
  }
  fp8pair q = F8 (R, C, block, 1);
  tpair y = T (dt, R, C + 5, 0.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_tensor yv = dit_tensor_cols (SIDE (y, s), 2, C);
    dit_dequantize_fp8_params p = { SIDE (q.q, s), SIDE (q.s, s), block, &yv };
    st[s] = dit_dequantize_fp8 (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  /* exact in f32: any difference is a layout or decode mistake */
  report ("dequant8", dt, shape, st[0], st[1], &y, dt == DIT_F32 ? 0.0 : thr_for (dt));
  fp8pair_free (&q);
  tpair_free (&y);
}

static void
case_layernorm_fp8 (int64_t R, int64_t D, int64_t rpg, dit_dtype dt, int affine,
    int mod)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld] %s%s%s", (long long) R,
      (long long) D, dit_dtype_name (dt), affine ? " affine" : "",
      mod ? " modulate" : "");
  if (!supported (DIT_OP_LAYERNORM_FP8, DIT_F8E4M3)) {
    report_skip ("ln_fp8", DIT_F8E4M3, shape);
    return;
  }
  int64_t G = (R + rpg - 1) / rpg;
  tpair x = T (dt, R, D, 2.0f), w = T1 (dt, D, 1.0f), b = T1 (dt, D, 1.0f);
  tpair sh = T (DIT_F32, G, D, 1.0f), sc = T (DIT_F32, G, D, 0.5f);
  fp8pair y = F8 (R, D, 128, 0);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_layernorm_fp8_params p = { SIDE (x, s), affine ? SIDE (w, s) : NULL,
      affine ? SIDE (b, s) : NULL, mod ? SIDE (sh, s) : NULL,
      mod ? SIDE (sc, s) : NULL, rpg, 1e-6f, SIDE (y.q, s), SIDE (y.s, s), 128 };
    st[s] = dit_layernorm_fp8 (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report_fp8 ("ln_fp8", shape, st[0], st[1], &y, THR_FP8_SCALES);
  tpair_free (&x); tpair_free (&w); tpair_free (&b); tpair_free (&sh);
  tpair_free (&sc);
  fp8pair_free (&y);
}

/* y_dt DIT_F8E4M3: quantized output with 128-column blocks. */
static void
case_gemm_fp8 (int64_t M, int64_t N, int64_t K, int has_bias, dit_act act,
    dit_dtype y_dt, int y_slice)
{
  char shape[96];
  snprintf (shape, sizeof shape, "M=%lld N=%lld K=%lld%s%s ->%s%s", (long long) M,
      (long long) N, (long long) K, has_bias ? " bias" : "",
      act == DIT_ACT_GELU_TANH ? " gelu" : "", dit_dtype_name (y_dt),
      y_slice ? " slice" : "");
  if (!supported (DIT_OP_GEMM_FP8, DIT_F8E4M3)) {
    report_skip ("gemm_fp8", DIT_F8E4M3, shape);
    return;
  }
  fp8pair x = F8 (M, K, 128, 1);
  fp8pair w = F8 (N, K, K, 1);
  tpair b = T1 (DIT_BF16, N, 0.5f);
  int f8out = y_dt == DIT_F8E4M3;
  fp8pair yq = F8 (M, f8out ? N : 128, 128, 0);
  tpair y = T (f8out ? DIT_F32 : y_dt, M, y_slice ? 3 * N : N, 1.0f);
  tpair scratch = T (DIT_BF16, M, N, 0.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_tensor yv = *SIDE (y, s);
    if (y_slice)
      yv = dit_tensor_cols (&yv, N, N);
    dit_gemm_fp8_params p = { SIDE (x.q, s), SIDE (x.s, s), 128, SIDE (w.q, s),
      SIDE (w.s, s), has_bias ? SIDE (b, s) : NULL,
      f8out ? SIDE (yq.q, s) : &yv, f8out ? SIDE (yq.s, s) : NULL, 128, act,
      SIDE (scratch, s), 0, NULL, 0 };
    st[s] = dit_gemm_fp8 (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  if (f8out)
    report_fp8 ("gemm_fp8", shape, st[0], st[1], &yq, THR_FP8_SCALES);
  else
    report ("gemm_fp8", y_dt, shape, st[0], st[1], &y,
        y_dt == DIT_F32 ? 1e-6 : thr_for (y_dt));
  fp8pair_free (&x); fp8pair_free (&w); fp8pair_free (&yq);
  tpair_free (&b); tpair_free (&y); tpair_free (&scratch);
}

/* The residual epilogue: y (f32, the residual stream) += gate ⊙ (x w + b). */
static void
case_gemm_fp8_residual (int64_t M, int64_t N, int64_t K, int64_t rpg)
{
  char shape[96];
  snprintf (shape, sizeof shape, "M=%lld N=%lld K=%lld gated +=f32",
      (long long) M, (long long) N, (long long) K);
  if (!supported (DIT_OP_GEMM_FP8, DIT_F8E4M3)) {
    report_skip ("gemm_fp8", DIT_F8E4M3, shape);
    return;
  }
  int64_t G = (M + rpg - 1) / rpg;
  fp8pair x = F8 (M, K, 128, 1), w = F8 (N, K, K, 1);
  tpair b = T1 (DIT_BF16, N, 0.5f), g = T (DIT_F32, G, N, 1.0f);
  tpair y = T (DIT_F32, M, N, 2.0f), scratch = T (DIT_BF16, M, N, 0.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_gemm_fp8_params p = { SIDE (x.q, s), SIDE (x.s, s), 128, SIDE (w.q, s),
      SIDE (w.s, s), SIDE (b, s), SIDE (y, s), NULL, 0, DIT_ACT_NONE,
      SIDE (scratch, s), 1, SIDE (g, s), rpg };
    st[s] = dit_gemm_fp8 (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  /* a backend may finish it through its bf16 scratch: bf16's limit */
  report ("gemm_fp8", DIT_F32, shape, st[0], st[1], &y, THR_BF16);
  fp8pair_free (&x); fp8pair_free (&w);
  tpair_free (&b); tpair_free (&g); tpair_free (&y); tpair_free (&scratch);
}

static void
case_attention_fp8 (int64_t L, int64_t N, int heads, int64_t bb, int64_t bend,
    float bias, int64_t cb, int64_t qp0)
{
  char shape[128];
  snprintf (shape, sizeof shape, "L=%lld N=%lld H=%d%s%s", (long long) L,
      (long long) N, heads, bend > bb ? " bias" : "", cb > 0 ? " causal" : "");
  if (!supported (DIT_OP_ATTENTION_FP8, DIT_F8E4M3)) {
    report_skip ("attn_fp8", DIT_F8E4M3, shape);
    return;
  }
  int64_t W = (int64_t) heads * 128;
  tpair q = T (DIT_BF16, L, W, 2.0f), k = T (DIT_BF16, N, W, 2.0f);
  tpair v = T (DIT_BF16, N, W, 1.0f);
  fp8pair o = F8 (L, W, 128, 0);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_attn_params p = { .q = SIDE (q, s), .k = SIDE (k, s), .v = SIDE (v, s),
      .o = SIDE (o.q, s), .heads = heads, .head_dim = 128,
      .scale = 1.0f / sqrtf (128.0f), .bias_begin = bb, .bias_end = bend,
      .log_bias = bias > 0 ? logf (bias) : 0.0f, .causal_block = cb,
      .q_pos0 = qp0, .o_scale = SIDE (o.s, s) };
    st[s] = dit_attention (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report_fp8 ("attn_fp8", shape, st[0], st[1], &o, THR_BF16);
  tpair_free (&q); tpair_free (&k); tpair_free (&v);
  fp8pair_free (&o);
}

/* ---- memory: bytes survive upload, download and memset bit for bit ------ */

static void
case_memory (size_t bytes)
{
  char shape[96];
  snprintf (shape, sizeof shape, "%zu bytes", bytes);
  unsigned char *h = malloc (bytes), *back = malloc (bytes);
  for (size_t i = 0; i < bytes; i++)
    h[i] = (unsigned char) (frand () * 127.0f + 128.0f);
  void *d = dit_backend_alloc (tb, bytes);
  int ok = d != NULL;
  ok = ok && dit_upload (tb, d, h, bytes) == DIT_OK
      && dit_synchronize (tb) == DIT_OK
      && dit_download (tb, back, d, bytes) == DIT_OK
      && memcmp (h, back, bytes) == 0;
  int zero_ok = ok && dit_memset_zero (tb, d, bytes) == DIT_OK
      && dit_download (tb, back, d, bytes) == DIT_OK;
  for (size_t i = 0; zero_ok && i < bytes; i++)
    zero_ok = back[i] == 0;
  dit_backend_free (tb, d);
  free (h);
  free (back);
  const int entries[5] = { E_ALLOC, E_UPLOAD, E_DOWNLOAD, E_SYNC, E_MEMSET };
  for (int i = 0; i < 5; i++)
    mark (entries[i], 1);
  if (ok && zero_ok)
    n_pass++;
  else
    n_fail++;
  printf ("%-20s %-5s %-34s %-12s %-9s %s\n", "memory", "-", shape, "-", "exact",
      ok && zero_ok ? "OK" : !ok ? "FAIL (round trip)" : "FAIL (memset)");
}

/* Staging memory (dit_host_alloc: page-locked where the backend has it,
 * malloc otherwise): an upload from it, completed by an event, and a
 * download into it round-trip the bytes. */
static void
case_host_memory (size_t bytes)
{
  char shape[96];
  snprintf (shape, sizeof shape, "%zu bytes", bytes);
  unsigned char *h = dit_host_alloc (tb, bytes), *back = dit_host_alloc (tb,
      bytes);
  void *d = dit_backend_alloc (tb, bytes);
  dit_event *ev = NULL;
  int ok = h && back && d;
  for (size_t i = 0; ok && i < bytes; i++)
    h[i] = (unsigned char) (frand () * 127.0f + 128.0f);
  ok = ok && dit_upload (tb, d, h, bytes) == DIT_OK
      && dit_event_create (tb, &ev) == DIT_OK
      && dit_event_record (tb, ev) == DIT_OK
      && dit_event_synchronize (tb, ev) == DIT_OK
      && dit_download (tb, back, d, bytes) == DIT_OK
      && memcmp (h, back, bytes) == 0;
  dit_event_destroy (tb, ev);
  dit_backend_free (tb, d);
  dit_host_free (tb, h);
  dit_host_free (tb, back);
  mark (E_HOST_MEMORY, dit_backend_has_host_memory (tb));
  if (ok)
    n_pass++;
  else
    n_fail++;
  printf ("%-20s %-5s %-34s %-12s %-9s %s%s\n", "host_alloc/free", "-", shape,
      "-", "exact", ok ? "OK" : "FAIL (round trip)",
      dit_backend_has_host_memory (tb) ? "" : " (malloc: not in the table)");
}

/* ---- tensor-parallel RMSNorm halves --------------------------------------- */

static void
case_tp_norm (int64_t R, int64_t D, dit_dtype dt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld] of width %lld", (long long) R,
      (long long) D, (long long) 4 * D);
  int have_ss = dit_backend_supports (tb, DIT_OP_RMSNORM_SUMSQ, dt);
  int have_ap = dit_backend_supports (tb, DIT_OP_RMSNORM_APPLY, dt);
  if (!have_ss)
    report_skip ("rmsnorm_sumsq", dt, shape);
  if (!have_ap)
    report_skip ("rmsnorm_apply", dt, shape);
  if (!have_ss || !have_ap)
    return;
  tpair x = T (dt, R, D, 2.0f), y = T (dt, R, D, 1.0f), w = T1 (dt, D, 1.0f);
  tpair ss = T1 (DIT_F32, R, 0.0f);
  dit_status st[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_rmsnorm_sumsq_params p = { SIDE (x, s), SIDE (ss, s) };
    st[s] = dit_rmsnorm_sumsq (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("rmsnorm_sumsq", dt, shape, st[0], st[1], &ss, 1e-10);
  /* apply with the same (reference) sums on both sides: this shard is a
   * quarter of a row whose other three quarters add 3x its own sum */
  size_t sb = (size_t) R * sizeof (float);
  float *h = malloc (sb);
  dit_download (rb, h, ss.b.data, sb);
  for (int64_t r = 0; r < R; r++)
    h[r] *= 4.0f;
  dit_upload (tb, ss.a.data, h, sb);
  dit_upload (rb, ss.b.data, h, sb);
  free (h);
  for (int s = 0; s < 2; s++) {
    dit_rmsnorm_apply_params p = { SIDE (x, s), SIDE (ss, s), SIDE (w, s),
        SIDE (y, s), 4 * D, 1e-6f };
    st[s] = dit_rmsnorm_apply (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("rmsnorm_apply", dt, shape, st[0], st[1], &y, thr_for (dt));
  tpair_free (&x); tpair_free (&y); tpair_free (&w); tpair_free (&ss);
}

/* The halves over one full row (total width = the shard's) are the
 * full-width norm: on the backend under test, against dit_rmsnorm on the
 * CPU. */
static void
case_tp_norm_full (int64_t R, int64_t D)
{
  const dit_dtype dt = DIT_F32;
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld] halves = rmsnorm", (long long) R,
      (long long) D);
  if (!dit_backend_supports (tb, DIT_OP_RMSNORM_SUMSQ, dt)
      || !dit_backend_supports (tb, DIT_OP_RMSNORM_APPLY, dt)) {
    report_skip ("rmsnorm_apply", dt, shape);
    return;
  }
  tpair x = T (dt, R, D, 2.0f), y = T (dt, R, D, 1.0f), w = T1 (dt, D, 1.0f);
  tpair ss = T1 (DIT_F32, R, 0.0f);
  dit_rmsnorm_sumsq_params sp = { &x.a, &ss.a };
  dit_rmsnorm_apply_params ap = { &x.a, &ss.a, &w.a, &y.a, D, 1e-6f };
  dit_status st = dit_rmsnorm_sumsq (tb, &sp);
  if (st == DIT_OK)
    st = dit_rmsnorm_apply (tb, &ap);
  save_err (st);
  dit_rmsnorm_params rp = { &x.b, &w.b, &y.b, 1e-6f };
  dit_status sr = dit_rmsnorm (rb, &rp);
  report ("rmsnorm_apply", dt, shape, st, sr, &y, THR_F32);
  tpair_free (&x); tpair_free (&y); tpair_free (&w); tpair_free (&ss);
}

/* ---- fused ops against the unfused chain on the CPU ----------------------- */

/* spare > 0: y is the first D columns of an [R, D + spare] buffer (a
 * folded live-LoRA linear's input). */
static void
case_layernorm_modulate (int64_t R, int64_t D, int64_t rpg, dit_dtype dt,
    int64_t spare)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld] groups of %lld vs chain%s",
      (long long) R, (long long) D, (long long) rpg,
      spare ? " y strided" : "");
  if (!dit_backend_supports (tb, DIT_OP_LAYERNORM_MODULATE, dt)) {
    report_skip ("layernorm_modulate", dt, shape);
    return;
  }
  int64_t G = (R + rpg - 1) / rpg;
  tpair x = T (dt, R, D, 2.0f), y = T (dt, R, D + spare, 1.0f);
  tpair sh = T (DIT_F32, G, D, 1.0f), sc = T (DIT_F32, G, D, 0.5f);
  dit_tensor ya = dit_tensor_cols (&y.a, 0, D), yb = dit_tensor_cols (&y.b, 0, D);
  dit_layernorm_modulate_params fp = { &x.a, &sh.a, &sc.a, &ya, rpg, 1e-6f };
  dit_status st = dit_layernorm_modulate (tb, &fp);
  save_err (st);
  dit_layernorm_params lp = { &x.b, NULL, NULL, &yb, 1e-6f };
  dit_modulate_params mp = { &yb, &sh.b, &sc.b, &yb, rpg };
  dit_status sr = dit_layernorm (rb, &lp);
  if (sr == DIT_OK)
    sr = dit_modulate (rb, &mp);
  report ("layernorm_modulate", dt, shape, st, sr, &y, thr_for (dt));
  tpair_free (&x); tpair_free (&y); tpair_free (&sh); tpair_free (&sc);
}

static void
upload_rope_tables (tpair *c, tpair *sn)
{
  static float ct[DIT_ROPE_POSITIONS * DIT_ROPE_PAIRS];
  static float stab[DIT_ROPE_POSITIONS * DIT_ROPE_PAIRS];
  dit_rope_table_fill (ct, stab);
  *c = T (DIT_F32, DIT_ROPE_POSITIONS, DIT_ROPE_PAIRS, 0.0f);
  *sn = T (DIT_F32, DIT_ROPE_POSITIONS, DIT_ROPE_PAIRS, 0.0f);
  dit_upload (tb, c->a.data, ct, sizeof ct);
  dit_upload (rb, c->b.data, ct, sizeof ct);
  dit_upload (tb, sn->a.data, stab, sizeof stab);
  dit_upload (rb, sn->b.data, stab, sizeof stab);
}

static void
case_qk_norm_rope (int heads, int64_t gf, int64_t gh, int64_t gw, int64_t off,
    dit_dtype dt)
{
  char shape[96];
  int64_t L = gf * gh * gw, W = (int64_t) heads * 128;
  snprintf (shape, sizeof shape, "[%lld, %lld] +%lld vs chain", (long long) L,
      (long long) W, (long long) off);
  if (!dit_backend_supports (tb, DIT_OP_QK_NORM_ROPE, dt)) {
    report_skip ("qk_norm_rope", dt, shape);
    return;
  }
  tpair x = T (dt, L, W, 3.0f), w = T1 (dt, W, 1.0f), c, sn;
  upload_rope_tables (&c, &sn);
  dit_qk_norm_rope_params fp = { &x.a, &w.a, &c.a, &sn.a, heads, gf, gh, gw,
      off, 1e-6f };
  dit_status st = dit_qk_norm_rope (tb, &fp);
  save_err (st);
  dit_rmsnorm_params np = { &x.b, &w.b, &x.b, 1e-6f };
  dit_rope_params rp = { &x.b, &c.b, &sn.b, heads, gf, gh, gw, off };
  dit_status sr = dit_rmsnorm (rb, &np);
  if (sr == DIT_OK)
    sr = dit_rope (rb, &rp);
  report ("qk_norm_rope", dt, shape, st, sr, &x, thr_for (dt));
  tpair_free (&x); tpair_free (&w); tpair_free (&c); tpair_free (&sn);
}

static void
case_noise_flow (int64_t n, dit_dtype dt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld] vs noise + flow_step", (long long) n);
  if (!dit_backend_supports (tb, DIT_OP_NOISE_FLOW, DIT_F32)) {
    report_skip ("noise_flow", dt, shape);
    return;
  }
  tpair x = T1 (dt, n, 1.0f), v = T1 (dt, n, 1.0f), nz = T1 (DIT_F32, n, 0.0f);
  dit_noise_flow_params fp = { &x.a, &v.a, &x.a, 42, 0x305, 0.75, 0.5 };
  dit_status st = dit_noise_flow (tb, &fp);
  save_err (st);
  dit_noise_params np = { &nz.b, 42, 0x305 };
  dit_flow_step_params sp = { &x.b, &v.b, &nz.b, NULL, &x.b, 0.75, 0.5 };
  dit_status sr = dit_noise (rb, &np);
  if (sr == DIT_OK)
    sr = dit_flow_step (rb, &sp);
  report ("noise_flow", dt, shape, st, sr, &x, thr_for (dt));
  tpair_free (&x); tpair_free (&v); tpair_free (&nz);
}

/* ---- VAE table ------------------------------------------------------------- */

static tpair
F4 (dit_dtype dt, int64_t t, int64_t h, int64_t w, int64_t c, float amp)
{
  tpair p;
  int64_t s[4] = { t, h, w, c };
  tpair_new (&p, dt, 4, s, amp);
  return p;
}

static int
have_vae (const char *op, const char *shape)
{
  if (dit_backend_has_vae (tb))
    return 1;
  report_skip (op, DIT_F32, shape);
  return 0;
}

/* The conv in one of its forms: kt x kh x kw with strides, front padding
 * and a cache of `prev` frames, spatial padding, bias and residual. */
static void
case_vae_conv (int64_t T_, int64_t P, int64_t H, int64_t W, int64_t cin,
    int64_t cout, int kt, int kh, int kw, int st, int sh, int pad_front,
    int pad, int residual)
{
  char shape[128];
  snprintf (shape, sizeof shape, "%dx%dx%d s%d,%d [%lld+%lld,%lld,%lld,%lld]->%lld%s",
      kt, kh, kw, st, sh, (long long) P, (long long) T_, (long long) H,
      (long long) W, (long long) cin, (long long) cout, residual ? " res" : "");
  if (!have_vae ("vae.conv", shape))
    return;
  const int64_t to = (pad_front + P + T_ - kt) / st + 1;
  const int64_t ho = (H + (sh > 1 ? pad : 2 * pad) - kh) / sh + 1;
  const int64_t wo = (W + (sh > 1 ? pad : 2 * pad) - kw) / sh + 1;
  tpair x = F4 (DIT_F32, T_, H, W, cin, 1.0f);
  tpair pv = F4 (DIT_F32, P > 0 ? P : 1, H, W, cin, 1.0f);
  tpair w = T (DIT_F32, cout, (int64_t) kt * kh * kw * cin,
      1.0f / sqrtf ((float) (kt * kh * kw * cin)));
  tpair b = T1 (DIT_F32, cout, 0.5f);
  tpair y = F4 (DIT_F32, to, ho, wo, cout, 1.0f);
  dit_status s2[2] = { DIT_OK, DIT_OK };
  for (int s = 0; s < 2; s++) {
    dit_vae_conv_params p = { .x = SIDE (x, s), .prev = P > 0 ? SIDE (pv, s) : NULL,
      .weight = SIDE (w, s), .bias = SIDE (b, s),
      .residual = residual ? SIDE (y, s) : NULL, .y = SIDE (y, s),
      .kt = kt, .kh = kh, .kw = kw, .st = st, .sh = sh, .sw = sh,
      .pad_front = pad_front,
      /* stride-2 2-D convs pad right/bottom only (the downsample) */
      .pad_top = sh > 1 ? 0 : pad, .pad_bottom = pad,
      .pad_left = sh > 1 ? 0 : pad, .pad_right = pad };
    s2[s] = dit_vae_conv (s ? rb : tb, &p);
    if (s == 0)
      save_err (s2[0]);
  }
  /* the CUDA conv rounds its operands to bf16 for the tensor cores */
  report ("vae.conv", DIT_F32, shape, s2[0], s2[1], &y, 1e-4);
  tpair_free (&x); tpair_free (&pv); tpair_free (&w); tpair_free (&b);
  tpair_free (&y);
}

static void
case_vae_misc (dit_dtype dt)
{
  const int64_t T_ = 3, H = 6, W = 10, C = 24;
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, %lld, %lld, %lld]", (long long) T_,
      (long long) H, (long long) W, (long long) C);
  if (!have_vae ("vae.norm", shape))
    return;
  dit_status st[2];
  /* norm, with and without SiLU, in place on the second pass */
  for (int silu = 0; silu < 2; silu++) {
    tpair x = F4 (dt, T_, H, W, C, 2.0f), y = F4 (dt, T_, H, W, C, 1.0f);
    tpair g = T1 (dt, C, 1.0f);
    for (int s = 0; s < 2; s++) {
      dit_vae_norm_params p = { SIDE (x, s), SIDE (g, s),
        silu ? SIDE (x, s) : SIDE (y, s), silu };
      st[s] = dit_vae_norm (s ? rb : tb, &p);
      if (s == 0)
        save_err (st[0]);
    }
    report ("vae.norm", dt, silu ? "norm+silu in place" : shape, st[0], st[1],
        silu ? &x : &y, thr_for (dt));
    tpair_free (&x); tpair_free (&y); tpair_free (&g);
  }
  {
    tpair x = F4 (dt, T_, H, W, C, 1.0f), y = F4 (dt, T_, 2 * H, 2 * W, C, 1.0f);
    for (int s = 0; s < 2; s++) {
      dit_vae_upsample_params p = { SIDE (x, s), SIDE (y, s) };
      st[s] = dit_vae_upsample (s ? rb : tb, &p);
      if (s == 0)
        save_err (st[0]);
    }
    report ("vae.upsample", dt, shape, st[0], st[1], &y, 0.0);
    tpair_free (&x); tpair_free (&y);
  }
  {
    /* frames into every other frame of y (frame stride 2 H W C) */
    tpair x = F4 (dt, T_, H, W, C, 1.0f), y = F4 (DIT_F32, 2 * T_, H, W, C, 1.0f);
    for (int s = 0; s < 2; s++) {
      dit_tensor yv = *SIDE (y, s);
      yv.shape[0] = T_;
      yv.stride[0] *= 2;
      dit_vae_copy_frames_params p = { SIDE (x, s), &yv };
      st[s] = dit_vae_copy_frames (s ? rb : tb, &p);
      if (s == 0)
        save_err (st[0]);
    }
    report ("vae.copy_frames", dt, "interleaved into f32", st[0], st[1], &y, 0.0);
    tpair_free (&x); tpair_free (&y);
  }
  {
    /* [C, T, H, W] -> [T, H, W, C] with an affine, and back with a clamp */
    const int64_t c = 16;
    int64_t cf[4] = { c, T_, H, W };
    tpair x, y = F4 (dt, T_, H, W, c, 1.0f), back;
    tpair_new (&x, DIT_F32, 4, cf, 3.0f);
    tpair_new (&back, DIT_F32, 4, cf, 0.0f);
    for (int s = 0; s < 2; s++) {
      dit_vae_layout_params p = { .x = SIDE (x, s), .y = SIDE (y, s),
        .to_channels_last = 1, .affine = 1 };
      for (int k = 0; k < c; k++) {
        p.scale[k] = 0.25f * (k + 1);
        p.shift[k] = -0.125f * k;
      }
      st[s] = dit_vae_layout (s ? rb : tb, &p);
      if (s == 0)
        save_err (st[0]);
    }
    report ("vae.layout", dt, "to channels-last, affine", st[0], st[1], &y,
        thr_for (dt));
    for (int s = 0; s < 2; s++) {
      dit_vae_layout_params p = { .x = SIDE (y, s), .y = SIDE (back, s),
        .to_channels_last = 0, .clamp = 1, .clamp_lo = -1.0f, .clamp_hi = 1.0f };
      st[s] = dit_vae_layout (s ? rb : tb, &p);
      if (s == 0)
        save_err (st[0]);
    }
    report ("vae.layout", dt, "to channels-first, clamp", st[0], st[1], &back,
        thr_for (dt));
    tpair_free (&x); tpair_free (&y); tpair_free (&back);
  }
}

/* Pixels both ways in one format: random bytes -> tensor on both sides,
 * then the reference tensor -> bytes on both sides (bytes compared
 * exactly). */
static void
case_pixels (dit_pixel_format fmt, int w, int h)
{
  char shape[96];
  snprintf (shape, sizeof shape, "%s %dx%d", dit_pixel_format_name (fmt), w, h);
  if (!have_vae ("vae.pixels_to_tensor", shape))
    return;
  const int bpp = dit_pixel_format_bpp (fmt);
  int planes = bpp ? 1 : fmt == DIT_PIXEL_I420 ? 3 : 2;
  size_t pb[3];
  int64_t stride[3];
  stride[0] = bpp ? (int64_t) w * bpp : w;
  pb[0] = (size_t) stride[0] * h;
  for (int i = 1; i < planes; i++) {
    stride[i] = fmt == DIT_PIXEL_I420 ? w / 2 : w;
    pb[i] = (size_t) stride[i] * (h / 2);
  }
  size_t total = 0;
  for (int i = 0; i < planes; i++)
    total += pb[i];
  unsigned char *host = malloc (total), *ha = malloc (total), *hb = malloc (total);
  for (size_t i = 0; i < total; i++)
    host[i] = (unsigned char) (frand () * 127.0f + 128.0f);
  unsigned char *da = dit_backend_alloc (tb, total), *db = dit_backend_alloc (rb, total);
  dit_upload (tb, da, host, total);
  dit_upload (rb, db, host, total);
  int64_t ts[3] = { 3, h, w };
  tpair t;
  tpair_new (&t, DIT_F32, 3, ts, 0.0f);
  dit_status st[2];
  for (int s = 0; s < 2; s++) {
    unsigned char *base = s ? db : da;
    dit_vae_pixels_params p = { .format = fmt, .matrix = DIT_YUV_BT709_LIMITED,
      .width = w, .height = h, .tensor = SIDE (t, s) };
    size_t off = 0;
    for (int i = 0; i < planes; i++) {
      p.plane[i] = base + off;
      p.stride[i] = stride[i];
      off += pb[i];
    }
    st[s] = dit_pixels_to_tensor (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  report ("vae.pixels_to_tensor", DIT_F32, shape, st[0], st[1], &t, 1e-10);
  /* back to bytes from the same (reference) tensor on both sides */
  int64_t tbytes = dit_tensor_nbytes (&t.b);
  float *tf = malloc ((size_t) tbytes);
  dit_download (rb, tf, t.b.data, (size_t) tbytes);
  dit_upload (tb, t.a.data, tf, (size_t) tbytes);
  free (tf);
  for (int s = 0; s < 2; s++) {
    unsigned char *base = s ? db : da;
    dit_vae_pixels_params p = { .format = fmt, .matrix = DIT_YUV_BT709_LIMITED,
      .width = w, .height = h, .tensor = SIDE (t, s) };
    size_t off = 0;
    for (int i = 0; i < planes; i++) {
      p.plane[i] = base + off;
      p.stride[i] = stride[i];
      off += pb[i];
    }
    st[s] = dit_tensor_to_pixels (s ? rb : tb, &p);
    if (s == 0)
      save_err (st[0]);
  }
  int same = st[0] == DIT_OK && st[1] == DIT_OK
      && dit_synchronize (tb) == DIT_OK
      && dit_download (tb, ha, da, total) == DIT_OK
      && dit_download (rb, hb, db, total) == DIT_OK && memcmp (ha, hb, total) == 0;
  mark (E_TENSOR_TO_PIXELS, 1);
  if (same)
    n_pass++;
  else
    n_fail++;
  printf ("%-20s %-5s %-34s %-12s %-9s %s\n", "vae.tensor_to_pixels", "f32",
      shape, "-", "exact", same ? "OK" : "FAIL");
  dit_backend_free (tb, da);
  dit_backend_free (rb, db);
  tpair_free (&t);
  free (host); free (ha); free (hb);
}

/* ---- recording, events, synthetic weights --------------------------------- */

/* unary, then gemm, recorded once and replayed: the replay writes what the
 * eager chain wrote (on the CPU reference). */
static void
case_graph (dit_dtype dt)
{
  const char *shape = "unary+gemm recorded, replayed twice";
  if (!dit_backend_has_graphs (tb)) {
    report_skip ("graph_*", dt, shape);
    return;
  }
  tpair x = T (dt, 64, 128, 2.0f), h = T (dt, 64, 128, 0.0f);
  tpair w = T (dt, 96, 128, 0.1f), y = T (dt, 64, 96, 0.0f);
  dit_unary_params up[2] = { { &x.a, &h.a, DIT_ACT_SILU }, { &x.b, &h.b, DIT_ACT_SILU } };
  dit_gemm_params gp[2] = { { .x = &h.a, .w = &w.a, .y = &y.a },
    { .x = &h.b, .w = &w.b, .y = &y.b } };
  /* eager once (per-shape setup), then record, then replay twice */
  dit_graph *g = NULL;
  dit_status st = dit_unary (tb, &up[0]);
  if (st == DIT_OK)
    st = dit_gemm (tb, &gp[0]);
  if (st == DIT_OK)
    st = dit_memset_zero (tb, y.a.data, dit_tensor_nbytes (&y.a));
  if (st == DIT_OK)
    st = dit_graph_begin (tb);
  if (st == DIT_OK) {
    dit_status rs = dit_unary (tb, &up[0]);
    if (rs == DIT_OK)
      rs = dit_gemm (tb, &gp[0]);
    st = dit_graph_end (tb, rs == DIT_OK ? &g : NULL);
    if (rs != DIT_OK)
      st = rs;
  }
  for (int i = 0; st == DIT_OK && i < 2; i++)
    st = dit_graph_launch (tb, g);
  save_err (st);
  dit_graph_free (tb, g);
  dit_status sr = dit_unary (rb, &up[1]);
  if (sr == DIT_OK)
    sr = dit_gemm (rb, &gp[1]);
  report ("graph_*", dt, shape, st, sr, &y, thr_for (dt));
  tpair_free (&x); tpair_free (&h); tpair_free (&w); tpair_free (&y);
}

/* An event recorded after a write and waited on before a read: the read
 * sees the write (a backend without events completes every op at once). */
static void
case_events (void)
{
  tpair x = T (DIT_F32, 16, 64, 1.0f), y = T (DIT_F32, 16, 64, 0.0f);
  dit_event *ev = NULL;
  dit_status st = dit_event_create (tb, &ev);
  dit_unary_params p = { &x.a, &y.a, DIT_ACT_SILU };
  if (st == DIT_OK)
    st = dit_unary (tb, &p);
  if (st == DIT_OK)
    st = dit_event_record (tb, ev);
  if (st == DIT_OK)
    st = dit_event_wait (tb, ev);
  if (st == DIT_OK)
    st = dit_event_synchronize (tb, ev);
  save_err (st);
  dit_event_destroy (tb, ev);
  dit_unary_params q = { &x.b, &y.b, DIT_ACT_SILU };
  dit_status sr = dit_unary (rb, &q);
  report ("event_*", DIT_F32, ev ? "record, wait, synchronize" :
      "no events: ops complete at once", st, sr, &y, THR_F32);
  tpair_free (&x); tpair_free (&y);
}

/* Device-made synthetic weights against the Philox rule computed here:
 * element i of [begin, begin + n) is (float) (z_i * scale + offset) rounded
 * to the dtype, z_i = dit_philox_normal (seed, stream, i). */
static void
case_synthetic_normal (int64_t begin, int64_t n, dit_dtype dt)
{
  char shape[96];
  snprintf (shape, sizeof shape, "[%lld, +%lld)", (long long) begin,
      (long long) n);
  if (!dit_backend_has_synthetic_normal (tb)) {
    report_skip ("synthetic_normal", dt, shape);
    return;
  }
  tpair y = T1 (dt, n, 0.0f);
  const uint64_t seed = 5, stream = 0xabc;
  const double scale = 0.02, offset = 1.0;
  dit_status st = dit_synthetic_normal (tb, y.a.data, dt, begin, n, seed,
      stream, scale, offset);
  save_err (st);
  size_t bytes = dit_tensor_nbytes (&y.b);
  void *h = malloc (bytes);
  for (int64_t i = 0; i < n; i++) {
    double z = dit_philox_normal (seed, stream, (uint64_t) (begin + i));
    dit_store_f32 (h, dt, (size_t) i, (float) (z * scale + offset));
  }
  dit_status sr = dit_upload (rb, y.b.data, h, bytes);
  free (h);
  report ("synthetic_normal", dt, shape, st, sr, &y, 0.0);
  tpair_free (&y);
}

int
main (int argc, char **argv)
{
  const char *name = argc > 1 ? argv[1] : "cpu";
  int index = argc > 2 ? atoi (argv[2]) : 0;
  /* the inputs of every case come from this seed (and the cases' order) */
  test_rng = 0x0123456789abcdefull;
  tb = dit_backend_create (name, index);
  if (!tb) {
    printf ("backend '%s' not available: %s\n", name, dit_last_error ());
    return 77;
  }
  rb = dit_backend_cpu ();
  printf ("test-backend-ops: %s (device %d) against cpu\n", dit_backend_name (tb),
      index);
  printf ("%-20s %-5s %-34s %-12s %-9s %s\n", "op", "dtype", "shape", "nmse",
      "threshold", "result");

  const dit_dtype dts[2] = { DIT_F32, DIT_BF16 };
  for (int i = 0; i < 2; i++) {
    dit_dtype dt = dts[i];
    /* tiny model: D = 256, FFN 512, 192 tokens; q/k/v fused output slice */
    case_gemm (192, 256, 256, dt, 1, DIT_ACT_NONE, 0, 0);
    case_gemm (192, 512, 256, dt, 1, DIT_ACT_GELU_TANH, 0, 0);
    case_gemm (192, 256, 512, dt, 1, DIT_ACT_NONE, 1, 0);
    case_gemm (192, 256, 256, dt, 1, DIT_ACT_NONE, 0, 1);
    case_gemm (1, 1536, 256, dt, 1, DIT_ACT_SILU, 0, 0);
    case_gemm (7, 13, 29, dt, 0, DIT_ACT_NONE, 0, 0);
    /* folded model GEMMs: patch embedding / head (bias of x's dtype into
     * an f32 y), the cross-attention residual (accumulate), the gated
     * residuals (3 frames of 64 tokens; f32 gate; scratch in dt), a gate
     * the backend cannot take as a scale (bf16, and a GELU), rows that do
     * not split evenly, no scratch */
    case_gemm_fold (192, 256, 64, dt, DIT_F32, dt, 0, DIT_F32, 1, DIT_ACT_NONE, 0, -1);
    case_gemm_fold (192, 64, 256, dt, DIT_F32, dt, 0, DIT_F32, 1, DIT_ACT_NONE, 0, -1);
    case_gemm_fold (192, 256, 256, dt, DIT_F32, dt, 0, DIT_F32, 1, DIT_ACT_NONE, 1, -1);
    case_gemm_fold (192, 256, 256, dt, DIT_F32, dt, 1, DIT_F32, 64, DIT_ACT_NONE, 1, dt);
    case_gemm_fold (192, 256, 512, dt, DIT_F32, dt, 1, DIT_F32, 64, DIT_ACT_NONE, 1, dt);
    case_gemm_fold (192, 256, 256, dt, DIT_F32, dt, 1, DIT_BF16, 64, DIT_ACT_NONE, 1, dt);
    case_gemm_fold (192, 256, 256, dt, DIT_F32, dt, 1, DIT_F32, 64, DIT_ACT_GELU_TANH, 0, dt);
    case_gemm_fold (200, 256, 256, dt, DIT_F32, dt, 1, DIT_F32, 64, DIT_ACT_NONE, 1, dt);
    case_gemm_fold (192, 256, 256, dt, DIT_F32, dt, 1, DIT_F32, 64, DIT_ACT_NONE, 1, -1);
    case_gemm_fold (3, 256, 256, dt, DIT_F32, dt, 1, DIT_F32, 1, DIT_ACT_NONE, 1, -1);
    case_gemm_fold (192, 256, 256, dt, dt, DIT_F32, 1, DIT_F32, 64, DIT_ACT_NONE, 0, dt);
    /* live LoRA: FFN-up with the low-rank product in y (GELU after it), a
     * projection without activation, an addend of another dtype/stride */
    case_gemm_addend (192, 512, 256, dt, DIT_ACT_GELU_TANH, 1, dt);
    case_gemm_addend (192, 256, 256, dt, DIT_ACT_NONE, 1, dt);
    case_gemm_addend (37, 96, 64, dt, DIT_ACT_GELU_TANH, 0, DIT_F32);
    case_layernorm (192, 256, dt, 0, 0, 0);
    case_layernorm (192, 256, dt, 1, 1, 0);
    case_rmsnorm (192, 256, dt, 0);
    case_rmsnorm (192, 256, dt, 1);
    case_modulate (192, 256, 64, dt, DIT_F32, 0);
    case_modulate (192, 256, 192, dt, dt, 0);
    case_residual (192, 256, 64, dt, 1);
    case_residual (192, 256, 64, dt, 0);
    case_add (3, 1536, dt);
    case_unary (192, 512, dt, DIT_ACT_SILU);
    case_unary (192, 512, dt, DIT_ACT_GELU_TANH);
    case_copy (37, 64, DIT_F32, dt);
    case_copy (37, 64, DIT_BF16, dt);
    case_copy_broadcast (3, 5, 96, dt);
    case_rope (2, 3, 8, 8, 0, dt);
    case_rope (2, 3, 8, 8, 3, dt);
    case_attention (192, 192, 2, 128, 0, 0, 0.0f, 0, 0, 0, dt, 0);
    case_attention (192, 384, 2, 128, 64, 192, 0.3f, 0, 0, 0, dt, 0);
    case_attention (192, 384, 2, 128, 64, 192, 0.3f, 64, 128, 1, dt, 0);
    case_attention (192, 192, 2, 128, 0, 0, 0.0f, 64, 0, 0, dt, 0);
    case_attention (192, 512, 2, 128, 0, 0, 0.0f, 0, 0, 0, dt, 0);
    case_attention (33, 77, 4, 64, 5, 40, 0.5f, 0, 0, 0, dt, 0);
    case_attention (64, 64, 1, 384, 0, 0, 0.0f, 0, 0, 0, dt, 0);
    /* the VAE mid-block's head (attention_d384.cu on CUDA): partial
     * query and key tiles, two heads of strided k/v columns */
    case_attention (130, 200, 1, 384, 0, 0, 0.0f, 0, 0, 0, dt, 0);
    case_attention (70, 129, 2, 384, 0, 0, 0.0f, 0, 0, 1, dt, 0);
    /* live LoRA folded along K: the u GEMM into the input's spare
     * columns, the layer's GEMM over K + R (FFN-up into a strided y; a
     * gated residual), the strength-0 product on strided x and weight;
     * every producer of a folded linear's input writing a strided y: the
     * LayerNorm (+ modulate in place, or affine: cross-attention), the
     * attention output, the sequence-parallel unpack */
    case_gemm_lora_fold (192, 512, 256, 16, dt, 0, 0);
    case_gemm_lora_fold (192, 256, 512, 72, dt, 1, 0);
    case_gemm_lora_fold (37, 96, 64, 8, dt, 0, 1);
    case_layernorm (192, 256, dt, 0, 0, 24);
    case_layernorm (192, 256, dt, 1, 0, 24);
    case_modulate (192, 256, 64, dt, DIT_F32, 24);
    case_attention (192, 384, 2, 128, 64, 192, 0.3f, 64, 128, 0, dt, 16);
    case_attention (33, 77, 4, 64, 5, 40, 0.5f, 0, 0, 0, dt, 8);
    case_copy_blocks (2, 96, 128, 16, dt);
    case_patchify (16, 3, 16, 16, dt);
    case_timestep (dt);
    case_flow_step (192, 64, dt, 1);
    case_flow_step (192, 64, dt, 0);
    case_noise (3 * 16 * 16 * 16 + 1, 42, 7, dt);
  }
  /* FP8: the tiny model's shapes, the 14B widths' block structure
   * (K = 1024 in 8 blocks, FFN-down K = 13824 / 27 = 512) and odd rows */
  case_fp8_check ();
  case_quantize_fp8 (192, 256, 128, DIT_BF16);
  case_quantize_fp8 (37, 384, 128, DIT_F32);
  case_quantize_fp8 (512, 1024, 1024, DIT_BF16);   /* weights: per channel */
  case_dequantize_fp8 (512, 1024, 1024, DIT_F32);  /* a merged LoRA's weight */
  case_dequantize_fp8 (192, 256, 128, DIT_BF16);
  case_dequantize_fp8 (37, 384, 128, DIT_F32);
  case_layernorm_fp8 (192, 256, 64, DIT_F32, 0, 1);
  case_layernorm_fp8 (192, 1024, 96, DIT_F32, 0, 1);
  case_layernorm_fp8 (77, 256, 77, DIT_F32, 1, 0);
  /* the 14B width (a row in registers), a width that ends inside a
   * 256-column chunk, bf16 x and parameters, a row too wide for registers */
  case_layernorm_fp8 (48, 5120, 24, DIT_F32, 0, 1);
  case_layernorm_fp8 (40, 384, 7, DIT_F32, 1, 1);
  case_layernorm_fp8 (20, 5120, 20, DIT_BF16, 1, 0);
  case_layernorm_fp8 (6, 6400, 3, DIT_F32, 0, 1);
  case_gemm_fp8 (192, 256, 256, 1, DIT_ACT_NONE, DIT_BF16, 0);
  case_gemm_fp8 (192, 512, 256, 1, DIT_ACT_GELU_TANH, DIT_F8E4M3, 0);
  case_gemm_fp8 (192, 256, 512, 1, DIT_ACT_NONE, DIT_F32, 0);
  case_gemm_fp8 (192, 256, 256, 0, DIT_ACT_NONE, DIT_BF16, 1);
  case_gemm_fp8 (200, 384, 1024, 1, DIT_ACT_GELU_TANH, DIT_BF16, 0);
  case_gemm_fp8 (130, 1024, 512, 1, DIT_ACT_GELU_TANH, DIT_F8E4M3, 0);
  case_gemm_fp8 (5, 256, 256, 1, DIT_ACT_NONE, DIT_F32, 0);
  case_gemm_fp8_residual (192, 256, 256, 64);
  case_gemm_fp8_residual (100, 384, 512, 33);
  case_attention_fp8 (192, 384, 2, 64, 192, 0.3f, 64, 128);
  case_attention_fp8 (192, 512, 2, 0, 0, 0.0f, 0, 0);
  case_attention_fp8 (33, 77, 3, 0, 0, 0.0f, 0, 0);

  case_copy (16, 32, DIT_F32, DIT_F16);
  case_noise (1000, 0xffffffffffffull, 1ull << 40, DIT_F32);

  case_memory (1);
  case_memory (3 * 1024 * 1024 + 5);
  case_host_memory (1);
  case_host_memory (3 * 1024 * 1024 + 5);
  for (int i = 0; i < 2; i++) {
    dit_dtype dt = dts[i];
    case_tp_norm (192, 64, dt);
    case_layernorm_modulate (192, 256, 64, dt, 0);
    case_layernorm_modulate (192, 256, 64, dt, 24);
    case_layernorm_modulate (48, 5120, 24, dt, 0);
    case_layernorm_modulate (6, 6400, 3, dt, 0);
    case_qk_norm_rope (2, 3, 8, 8, 3, dt);
    case_noise_flow (3 * 16 * 16 * 16 + 1, dt);
    case_vae_misc (dt);
    case_graph (dt);
    case_synthetic_normal (0, 4097, dt);
    case_synthetic_normal (7, 1000, dt);
  }
  case_tp_norm_full (64, 256);
  /* causal 3x3x3 over [front pad, 2 cached frames, 4 new], 1x1x1 with a
   * residual, (3,1,1) stride-2 time conv, 2-D stride-2 with right/bottom
   * padding */
  case_vae_conv (4, 2, 6, 10, 24, 32, 3, 3, 3, 1, 1, 0, 1, 0);
  case_vae_conv (1, 0, 6, 10, 24, 32, 3, 3, 3, 1, 1, 2, 1, 0);
  case_vae_conv (4, 0, 6, 10, 32, 32, 1, 1, 1, 1, 1, 0, 0, 1);
  case_vae_conv (3, 1, 6, 10, 16, 16, 3, 1, 1, 2, 1, 0, 0, 0);
  case_vae_conv (1, 0, 8, 12, 16, 16, 1, 3, 3, 1, 2, 0, 1, 0);
  case_pixels (DIT_PIXEL_RGBX, 20, 12);
  case_pixels (DIT_PIXEL_BGR, 20, 12);
  case_pixels (DIT_PIXEL_I420, 20, 12);
  case_pixels (DIT_PIXEL_NV12, 20, 12);
  case_events ();

  printf ("table entries:");
  int missing = 0;
  for (int e = 0; e < E_COUNT; e++) {
    printf (" %s=%s", entry_names[e], reached[e] > 0 ? "compared"
        : reached[e] < 0 ? "absent" : "NOT REACHED");
    missing += reached[e] == 0;
  }
  printf ("\n");
  if (missing) {
    printf ("%d table entries have no case\n", missing);
    n_fail++;
  }
  printf ("%d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
  dit_backend_destroy (tb);
  return n_fail ? 1 : 0;
}
