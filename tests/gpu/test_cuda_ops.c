/* test_cuda_ops — the CUDA backend's hard ops against f64 host references.
 *
 * test-backend-ops compares every op with the CPU backend; this program adds
 * an independent oracle for the ops whose CUDA code takes different paths
 * (tensor-core flash attention vs the generic kernel, cuBLASLt epilogues vs
 * the fallback GEMM) and checks the bit-exact ones bit for bit:
 *  - attention: bf16 head_dim 128 (flash path, every configuration: the
 *    mma.sync shapes 1-4, the Hopper wgmma kernels 5-12 where the device
 *    runs them, 7-12 also under every work schedule on some cases) with
 *    ragged L/N, block-causal masks with a query offset, the log-bias key
 *    range across tile edges, several heads, strided rows, a row block
 *    with an empty warpgroup and more work items than SMs;
 *    f32 and other head_dims (generic path: T5's 64, the VAE's single
 *    384-wide head); bf16 head_dim 384 on the mma.sync kernel of
 *    attention_d384.cu (DIT_ATTN_D384=mma is set here): ragged tiles, the
 *    VAE's fused q/k/v slices, two heads;
 *  - gemm: bias, GELU(tanh), SiLU, accumulate, strided y, mixed dtypes;
 *  - noise and flow_step: identical bits to the host formulas.
 * References are computed here in f64 from the same rounded inputs; outputs
 * are poisoned with NaN before each run so an unwritten element fails.
 * Usage: test-cuda-ops [--attention-only] [--variants LIST] (a reduced run,
 * e.g. under compute-sanitizer).
 * Exit 0 = pass, 1 = fail, 2 = usage, 77 = no CUDA device (skip).
 */
#include "dit_build_config.h"
#include "dit_backend.h"
#include "dit_philox.h"
#include "cuda/dit_cuda.h"
#include "../common/gpu_check.h"
#include "../common/test_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A device tensor filled with random values, and the host copy of exactly
 * what it holds (after rounding to its dtype). */
typedef struct buf {
  dit_tensor t;
  float *host;
  int64_t n;
} buf;

static void
buf_make (dit_backend *be, buf *b, dit_dtype dt, int64_t rows, int64_t cols,
    float amp)
{
  int64_t shape[2] = { rows, cols };
  die_if (dit_tensor_alloc (be, &b->t, dt, 2, shape), "alloc");
  b->n = rows * cols;
  b->host = malloc ((size_t) b->n * sizeof (float));
  void *raw = malloc ((size_t) b->n * dit_dtype_size (dt));
  for (int64_t i = 0; i < b->n; i++) {
    dit_store_f32 (raw, dt, (size_t) i, amp * frand ());
    b->host[i] = dit_load_f32 (raw, dt, (size_t) i);
  }
  die_if (be->ops->upload (be, b->t.data, raw, (size_t) b->n
      * dit_dtype_size (dt)), "upload");
  die_if (be->ops->synchronize (be), "sync");
  free (raw);
}

static void
buf_poison (dit_backend *be, buf *b)
{
  size_t bytes = (size_t) b->n * dit_dtype_size (b->t.dtype);
  void *raw = malloc (bytes);
  memset (raw, 0xff, bytes);   /* NaN in every dtype */
  die_if (be->ops->upload (be, b->t.data, raw, bytes), "upload");
  die_if (be->ops->synchronize (be), "sync");
  free (raw);
}

static void
buf_fetch (dit_backend *be, buf *b)
{
  size_t bytes = (size_t) b->n * dit_dtype_size (b->t.dtype);
  void *raw = malloc (bytes);
  die_if (be->ops->download (be, raw, b->t.data, bytes), "download");
  for (int64_t i = 0; i < b->n; i++)
    b->host[i] = dit_load_f32 (raw, b->t.dtype, (size_t) i);
  free (raw);
}

static void
buf_free (dit_backend *be, buf *b)
{
  dit_tensor_free (be, &b->t);
  free (b->host);
}

/* ‖out - ref‖ / ‖ref‖ over a strided [rows, cols] window of `out`. */
static void
check_rel (const char *name, const float *out, int64_t ld, const double *ref,
    int64_t rows, int64_t cols, double tol)
{
  double num = 0.0, den = 0.0;
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      double o = out[r * ld + c], e = ref[r * cols + c];
      if (!isfinite (o))
        bad++;
      num += (o - e) * (o - e);
      den += e * e;
    }
  double rel = sqrt (num / (den > 0 ? den : 1.0));
  int ok = bad == 0 && rel <= tol;
  printf ("%-52s rel %.3e (tol %.0e)%s %s\n", name, rel, tol,
      bad ? " non-finite" : "", ok ? "ok" : "FAIL");
  if (!ok)
    failures++;
}

/* ------------------------------------------------------------------------ */

typedef struct attn_case {
  const char *name;
  dit_dtype dt;
  int heads, d;
  int64_t L, N;
  int64_t causal_block, q_pos0;
  int64_t bias_begin, bias_end;
  int fused;   /* q/k/v are column slices of one [rows, 3*H*d] tensor */
  double tol;
  int schedules;   /* also every work schedule of configurations 7 and up */
} attn_case;

static void
attn_bufs_free (dit_backend *be, buf *qb, buf *kb, buf *vb, buf *ob,
    int fused)
{
  buf_free (be, qb);
  if (!fused) {
    buf_free (be, kb);
    buf_free (be, vb);
  }
  buf_free (be, ob);
}

/* One way of running attention: variant -1 = the backend's dispatch,
 * otherwise dit_cuda_attention_schedule (variant, sched). */
typedef struct attn_way {
  int variant, sched;
} attn_way;

/* Make the case's inputs and f64 reference once, then run and check every
 * way on them. */
static void
attn_run (dit_backend *be, const attn_case *tc, const attn_way *ways,
    int nways)
{
  int64_t W = (int64_t) tc->heads * tc->d;
  int64_t wq = tc->fused ? 3 * W : W;
  int64_t rows_kv = tc->N > tc->L ? tc->N : tc->L;
  buf qb, kb, vb, ob;
  /* q, k, v either separate or three column slices of one fused tensor */
  buf_make (be, &qb, tc->dt, tc->fused ? rows_kv : tc->L, wq, 2.0f);
  dit_tensor q, k, v;
  const float *qh, *kh, *vh;
  int64_t ldq, ldk, ldv;
  if (tc->fused) {
    q = dit_tensor_rows (&qb.t, 0, tc->L);
    q = dit_tensor_cols (&q, 0, W);
    k = dit_tensor_rows (&qb.t, 0, tc->N);
    v = k;
    k = dit_tensor_cols (&k, W, W);
    v = dit_tensor_cols (&v, 2 * W, W);
    qh = qb.host; kh = qb.host + W; vh = qb.host + 2 * W;
    ldq = ldk = ldv = wq;
    memset (&kb, 0, sizeof kb);
    memset (&vb, 0, sizeof vb);
  } else {
    buf_make (be, &kb, tc->dt, tc->N, W, 2.0f);
    buf_make (be, &vb, tc->dt, tc->N, W, 1.0f);
    q = qb.t; k = kb.t; v = vb.t;
    qh = qb.host; kh = kb.host; vh = vb.host;
    ldq = ldk = ldv = W;
  }
  buf_make (be, &ob, tc->dt, tc->L, W, 1.0f);

  float scale = 1.0f / sqrtf ((float) tc->d);
  float log_bias = logf (0.3f);
  dit_attn_params p = { &q, &k, &v, &ob.t, tc->heads, tc->d, scale,
      tc->bias_begin, tc->bias_end, log_bias, tc->causal_block, tc->q_pos0,
      NULL, 0, 0, 0, 0, NULL };

  double *ref = malloc ((size_t) (tc->L * W) * sizeof (double));
  double *s = malloc ((size_t) tc->N * sizeof (double));
  for (int h = 0; h < tc->heads; h++)
    for (int64_t r = 0; r < tc->L; r++) {
      int64_t kend = tc->N;
      if (tc->causal_block > 0) {
        kend = ((tc->q_pos0 + r) / tc->causal_block + 1) * tc->causal_block;
        if (kend > tc->N)
          kend = tc->N;
      }
      double mx = -INFINITY;
      for (int64_t j = 0; j < kend; j++) {
        double dot = 0.0;
        for (int c = 0; c < tc->d; c++)
          dot += (double) qh[r * ldq + h * tc->d + c]
              * (double) kh[j * ldk + h * tc->d + c];
        dot *= scale;
        if (j >= tc->bias_begin && j < tc->bias_end)
          dot += log_bias;
        s[j] = dot;
        if (dot > mx)
          mx = dot;
      }
      double sum = 0.0;
      for (int64_t j = 0; j < kend; j++) {
        s[j] = exp (s[j] - mx);
        sum += s[j];
      }
      for (int c = 0; c < tc->d; c++) {
        double acc = 0.0;
        for (int64_t j = 0; j < kend; j++)
          acc += s[j] * (double) vh[j * ldv + h * tc->d + c];
        ref[r * W + h * tc->d + c] = acc / sum;
      }
    }

  for (int w = 0; w < nways; w++) {
    const int variant = ways[w].variant, sched = ways[w].sched;
    char name[112];
    if (variant < 0)
      snprintf (name, sizeof name, "%s", tc->name);
    else if (variant >= 7)
      snprintf (name, sizeof name, "%s [variant %d schedule %d]", tc->name,
          variant, sched);
    else
      snprintf (name, sizeof name, "%s [variant %d]", tc->name, variant);
    buf_poison (be, &ob);
    if (variant < 0) {
      die_if (be->ops->attention (be, &p), name);
    } else {
      dit_status st = dit_cuda_attention_schedule (be, &p, variant, sched);
      if (st == DIT_ERR_UNSUPPORTED && variant >= 5) {
        /* the wgmma kernels need a compute capability 9.0 device (and 6
         * and up the driver's TMA tensor-map encoder) */
        printf ("%-52s variant %d not supported on this device\n", name,
            variant);
        continue;
      }
      die_if (st, name);
    }
    buf_fetch (be, &ob);
    check_rel (name, ob.host, W, ref, tc->L, W, tc->tol);
  }
  free (ref);
  free (s);
  attn_bufs_free (be, &qb, &kb, &vb, &ob, tc->fused);
}

/* ------------------------------------------------------------------------ */

typedef struct gemm_case {
  const char *name;
  dit_dtype dtx, dtw, dty;
  int64_t M, N, K;
  int bias;
  dit_act act;
  int accumulate;
  int y_slice;   /* y is columns [N, 2N) of an [M, 3N] tensor */
  double tol;
} gemm_case;

static double
ref_act (double v, dit_act act)
{
  if (act == DIT_ACT_GELU_TANH)
    return 0.5 * v * (1.0 + tanh (0.7978845608028654 * (v + 0.044715 * v * v * v)));
  if (act == DIT_ACT_SILU)
    return v / (1.0 + exp (-v));
  return v;
}

static void
gemm_run (dit_backend *be, const gemm_case *tc)
{
  buf xb, wb, bb, yb;
  buf_make (be, &xb, tc->dtx, tc->M, tc->K, 1.0f);
  buf_make (be, &wb, tc->dtw, tc->N, tc->K, 1.0f / sqrtf ((float) tc->K));
  if (tc->bias)
    buf_make (be, &bb, tc->dty, 1, tc->N, 0.5f);
  int64_t ycols = tc->y_slice ? 3 * tc->N : tc->N;
  buf_make (be, &yb, tc->dty, tc->M, ycols, 1.0f);
  if (!tc->accumulate)
    buf_poison (be, &yb);
  float *y0 = malloc ((size_t) yb.n * sizeof (float));
  memcpy (y0, yb.host, (size_t) yb.n * sizeof (float));
  dit_tensor y = tc->y_slice ? dit_tensor_cols (&yb.t, tc->N, tc->N) : yb.t;
  dit_tensor bias1;
  if (tc->bias)
    bias1 = dit_tensor_reshape (&bb.t, 1, &tc->N);
  dit_gemm_params p = { &xb.t, &wb.t, tc->bias ? &bias1 : NULL, &y, tc->act,
      tc->accumulate, NULL, 0, NULL, NULL };
  die_if (be->ops->gemm (be, &p), tc->name);
  buf_fetch (be, &yb);

  double *ref = malloc ((size_t) (tc->M * tc->N) * sizeof (double));
  int64_t c0 = tc->y_slice ? tc->N : 0;
  for (int64_t m = 0; m < tc->M; m++)
    for (int64_t n = 0; n < tc->N; n++) {
      double acc = 0.0;
      for (int64_t k = 0; k < tc->K; k++)
        acc += (double) xb.host[m * tc->K + k] * (double) wb.host[n * tc->K + k];
      if (tc->bias)
        acc += bb.host[n];
      acc = ref_act (acc, tc->act);
      if (tc->accumulate)
        acc += y0[m * ycols + c0 + n];
      ref[m * tc->N + n] = acc;
    }
  check_rel (tc->name, yb.host + c0, ycols, ref, tc->M, tc->N, tc->tol);
  if (tc->y_slice) {
    /* the columns outside the slice must be untouched (still poisoned) */
    int64_t touched = 0;
    for (int64_t m = 0; m < tc->M; m++)
      for (int64_t n = 0; n < ycols; n++)
        if ((n < tc->N || n >= 2 * tc->N) && !isnan (yb.host[m * ycols + n]))
          touched++;
    if (touched) {
      printf ("%-52s %lld elements outside the slice written FAIL\n", tc->name,
          (long long) touched);
      failures++;
    }
  }
  free (ref);
  free (y0);
  buf_free (be, &xb);
  buf_free (be, &wb);
  if (tc->bias)
    buf_free (be, &bb);
  buf_free (be, &yb);
}

/* ------------------------------------------------------------------------ */

static void
noise_flow_run (dit_backend *be)
{
  const int64_t n = 100001;   /* odd: the last Philox pair is half used */
  buf yb, xb, vb, ob;
  buf_make (be, &yb, DIT_F32, 1, n, 1.0f);
  dit_noise_params np = { &yb.t, 0x0123456789abcdefull, 42 };
  die_if (be->ops->noise (be, &np), "noise");
  buf_fetch (be, &yb);
  int64_t diff = 0;
  for (int64_t i = 0; i < n; i++) {
    float e = dit_philox_normal (np.seed, np.stream, (uint64_t) i);
    if (memcmp (&e, &yb.host[i], 4) != 0)
      diff++;
  }
  printf ("%-52s %lld of %lld differ %s\n", "noise f32 bit-exact vs host Philox",
      (long long) diff, (long long) n, diff ? "FAIL" : "ok");
  if (diff)
    failures++;

  buf_make (be, &xb, DIT_F32, 100, 1001, 1.0f);
  buf_make (be, &vb, DIT_BF16, 100, 1001, 1.0f);
  buf_make (be, &ob, DIT_F32, 100, 1001, 1.0f);
  dit_tensor nz = dit_tensor_2d (yb.t.data, DIT_F32, DIT_DEVICE_CUDA, 100, 1000);
  dit_tensor xs = dit_tensor_cols (&xb.t, 0, 1000);
  dit_tensor vs = dit_tensor_cols (&vb.t, 1, 1000);
  dit_tensor os = dit_tensor_cols (&ob.t, 1, 1000);
  double sigma = 0.8333333333, sn = 0.625;
  dit_flow_step_params fp = { &xs, &vs, &nz, NULL, &os, sigma, sn };
  die_if (be->ops->flow_step (be, &fp), "flow_step");
  buf_fetch (be, &ob);
  diff = 0;
  for (int64_t r = 0; r < 100; r++)
    for (int64_t c = 0; c < 1000; c++) {
      double x0 = (double) xb.host[r * 1001 + c]
          - sigma * (double) vb.host[r * 1001 + c + 1];
      volatile double t1 = (1.0 - sn) * x0;
      volatile double t2 = sn * (double) yb.host[r * 1000 + c];
      float e = (float) (t1 + t2);
      if (memcmp (&e, &ob.host[r * 1001 + c + 1], 4) != 0)
        diff++;
    }
  printf ("%-52s %lld of 100000 differ %s\n", "flow_step f32 bit-exact vs host f64",
      (long long) diff, diff ? "FAIL" : "ok");
  if (diff)
    failures++;
  buf_free (be, &yb);
  buf_free (be, &xb);
  buf_free (be, &vb);
  buf_free (be, &ob);
}

/* --variants LIST: the flash configurations to run (comma-separated, "d"
 * for the backend's dispatch, which also takes the non-flash cases); the
 * others are left out */
static int variant_on[DIT_CUDA_ATTN_VARIANTS], dispatch_on = 1;

static int
parse_variants (const char *list)
{
  memset (variant_on, 0, sizeof variant_on);
  dispatch_on = 0;
  const char *c = list;
  while (*c) {
    char *end;
    long v;
    if (*c == 'd') {
      dispatch_on = 1;
      end = (char *) c + 1;
    } else {
      v = strtol (c, &end, 10);
      if (end == c || v < 0 || v >= DIT_CUDA_ATTN_VARIANTS)
        return 0;
      variant_on[v] = 1;
    }
    if (*end && *end != ',')
      return 0;
    c = *end ? end + 1 : end;
  }
  return 1;
}

int
main (int argc, char **argv)
{
  int attention_only = 0;
  for (int i = 0; i < DIT_CUDA_ATTN_VARIANTS; i++)
    variant_on[i] = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--attention-only")) {
      attention_only = 1;
    } else if (!strcmp (argv[i], "--variants") && i + 1 < argc) {
      if (!parse_variants (argv[++i])) {
        fprintf (stderr, "test-cuda-ops: --variants wants a comma-separated "
            "list of d and 0-%d, got '%s'\n", DIT_CUDA_ATTN_VARIANTS - 1,
            argv[i]);
        return 2;
      }
    } else {
      int help = !strcmp (argv[i], "--help") || !strcmp (argv[i], "-h");
      fprintf (help ? stdout : stderr, "usage: test-cuda-ops "
          "[--attention-only] [--variants LIST]\n"
          "Checks the CUDA backend's attention, GEMM, noise and flow ops "
          "against f64\nhost references.  --attention-only: only "
          "attention; --variants 7,11: only\nthose flash configurations "
          "(d: also the backend's dispatch), e.g. for a reduced\nrun under "
          "compute-sanitizer.\n");
      return help ? 0 : 2;
    }
  }
  setvbuf (stdout, NULL, _IOLBF, 0);
  /* bf16 head_dim 384 through attention_d384.cu (off by default) */
  setenv ("DIT_ATTN_D384", "mma", 1);
  dit_backend *be = dit_backend_create ("cuda", 0);
  if (!be) {
    printf ("SKIP: no CUDA backend: %s\n", dit_last_error ());
    return 77;
  }

  static const attn_case attn_cases[] = {
    { "attn bf16 d128 flash L150 N300", DIT_BF16, 2, 128, 150, 300, 0, 0, 0, 0, 0, 1e-2, 0 },
    { "attn bf16 d128 flash causal48 pos100 bias[20,90)", DIT_BF16, 3, 128, 100, 260,
      48, 100, 20, 90, 0, 1e-2, 0 },
    { "attn bf16 d128 flash fused-QKV strided rows", DIT_BF16, 2, 128, 96, 200, 0, 0,
      64, 128, 1, 1e-2, 0 },
    { "attn bf16 d128 flash self block-causal 64", DIT_BF16, 2, 128, 200, 200, 64, 0,
      0, 0, 0, 1e-2, 0 },
    /* three 128-row blocks, up to five 128-key tiles, causal blocks and
     * the bias range crossing tile edges; every schedule of 7-12 */
    { "attn bf16 d128 flash causal160 pos250 bias[100,390)", DIT_BF16, 4, 128,
      300, 700, 160, 250, 100, 390, 0, 1e-2, 1 },
    /* fewer queries than one warpgroup's rows, eight key tiles (both
     * buffers reused several times), strided rows */
    { "attn bf16 d128 flash L40 N1000 fused bias[128,640)", DIT_BF16, 2, 128,
      40, 1000, 0, 0, 128, 640, 1, 1e-2, 0 },
    /* 216 row-block x head items, more than one per SM: configuration 6's
     * persistent grid walks several items per block, of 3 and 2 key tiles
     * (odd tile counts carry the ring's stage and parity across items);
     * 7-12 share every item's tiles between blocks (stream-K), or with
     * other schedules keep them whole */
    { "attn bf16 d128 flash 72 heads causal96 bias[30,150)", DIT_BF16, 72,
      128, 260, 260, 96, 0, 30, 150, 0, 1e-2, 1 },
    /* 280 items of one 64-row block (the second consumer warpgroup of
     * 7-12 has no valid row), over twice the SMs of an H100: 7-12 take
     * the first wave whole and share the rest by key tiles */
    { "attn bf16 d128 flash 280 heads L64 N300 bias[100,230)", DIT_BF16, 280,
      128, 64, 300, 0, 0, 100, 230, 0, 1e-2, 1 },
    { "attn f32 d128 generic causal16 bias", DIT_F32, 2, 128, 70, 90, 16, 5, 10, 40, 0, 1e-5, 0 },
    { "attn bf16 d64 generic (T5) N512", DIT_BF16, 4, 64, 40, 512, 0, 0, 0, 0, 0, 1e-2, 0 },
    { "attn f32 d384 generic (VAE) 1 head", DIT_F32, 1, 384, 96, 96, 0, 0, 0, 0, 0, 1e-5, 0 },
    { "attn bf16 d384 mma (VAE) fused L700 N700", DIT_BF16, 1, 384, 700, 700,
      0, 0, 0, 0, 1, 1e-2, 0 },
    { "attn bf16 d384 mma 2 heads L130 N333", DIT_BF16, 2, 384, 130, 333,
      0, 0, 0, 0, 0, 1e-2, 0 },
    { "attn f16 d128 generic", DIT_F16, 2, 128, 33, 65, 0, 0, 3, 9, 0, 5e-3, 0 },
  };
  for (size_t i = 0; i < sizeof attn_cases / sizeof attn_cases[0]; i++) {
    const attn_case *tc = &attn_cases[i];
    attn_way ways[1 + DIT_CUDA_ATTN_VARIANTS
        + 6 * (DIT_CUDA_ATTN_SCHEDULES - 1)];
    int n = 0;
    if (dispatch_on)
      ways[n++] = (attn_way) { -1, 0 };
    /* the bf16 d128 cases also through every flash configuration and the
     * generic kernel (held to the bf16 tolerance: its inputs are bf16);
     * some through every work schedule of configurations 7 and up */
    if (tc->dt == DIT_BF16 && tc->d == 128) {
      for (int variant = 0; variant < DIT_CUDA_ATTN_VARIANTS; variant++)
        if (variant_on[variant])
          ways[n++] = (attn_way) { variant, DIT_CUDA_ATTN_SCHED_AUTO };
      if (tc->schedules)
        for (int variant = 7; variant < DIT_CUDA_ATTN_VARIANTS; variant++)
          for (int sched = 1; sched < DIT_CUDA_ATTN_SCHEDULES; sched++)
            if (variant_on[variant])
              ways[n++] = (attn_way) { variant, sched };
    }
    /* the d384 mma cases also on the generic kernel, as a control */
    if (tc->dt == DIT_BF16 && tc->d == 384 && variant_on[0])
      ways[n++] = (attn_way) { 0, DIT_CUDA_ATTN_SCHED_AUTO };
    if (n > 0)
      attn_run (be, tc, ways, n);
  }
  if (attention_only) {
    dit_backend_destroy (be);
    printf ("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
  }

  static const gemm_case gemm_cases[] = {
    { "gemm bf16 bias+gelu (cuBLASLt epilogue)", DIT_BF16, DIT_BF16, DIT_BF16,
      77, 130, 200, 1, DIT_ACT_GELU_TANH, 0, 0, 1e-2 },
    { "gemm bf16 300x512x1024 bias", DIT_BF16, DIT_BF16, DIT_BF16,
      300, 512, 1024, 1, DIT_ACT_NONE, 0, 0, 1e-2 },
    { "gemm f32 accumulate", DIT_F32, DIT_F32, DIT_F32,
      64, 48, 96, 1, DIT_ACT_NONE, 1, 0, 1e-5 },
    { "gemm bf16 silu into strided y slice", DIT_BF16, DIT_BF16, DIT_BF16,
      40, 64, 128, 1, DIT_ACT_SILU, 0, 1, 1e-2 },
    { "gemm bf16 in, f32 out, no bias", DIT_BF16, DIT_BF16, DIT_F32,
      33, 40, 72, 0, DIT_ACT_NONE, 0, 0, 1e-5 },
    { "gemm mixed f32 x bf16 gelu+accumulate (fallback)", DIT_F32, DIT_BF16, DIT_F32,
      50, 70, 90, 1, DIT_ACT_GELU_TANH, 1, 0, 1e-5 },
  };
  for (size_t i = 0; i < sizeof gemm_cases / sizeof gemm_cases[0]; i++)
    gemm_run (be, &gemm_cases[i]);

  noise_flow_run (be);

  dit_backend_destroy (be);
  printf ("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
