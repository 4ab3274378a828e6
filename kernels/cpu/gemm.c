/* gemm — y[M,N] = act(x[M,K] · w[N,K]ᵀ + bias) (+ y), the nn.Linear GEMM.
 *
 * Layout: x rows and w rows ([out, in], as stored in checkpoints) with
 * contiguous columns; y rows may be strided (a column slice of a fused
 * output).  Any mix of f32/bf16/f16 storage; everything is converted to f32
 * while packing and accumulated in f32.
 *
 * Blocking (plain C with GNU vector types, no intrinsics):
 *   - the output is cut into tiles of GEMM_MB rows x GEMM_NC columns; a tile
 *     is one pool task and owns an f32 accumulator block;
 *   - for each slice of GEMM_KC inputs, the tile's w panel is packed as
 *     k-major strips of GEMM_NR columns and the x rows as k-major groups of
 *     GEMM_MR rows (zero padded at the edges);
 *   - the micro-kernel keeps a GEMM_MR x GEMM_NR accumulator in registers and
 *     adds one rank-1 update per k.
 * Why rank-1 updates instead of dot products: each output element is summed
 * in plain k order (0, 1, ..., K-1) from 0, with no reassociation, so the
 * compiler can vectorise across columns without -ffast-math and the result
 * of an element does not depend on the tile, padding or thread it ran in —
 * any DIT_CPU_THREADS gives the same bits.  Epilogue order: + addend,
 * + bias, act, × gate (per row group, when given), + old y (accumulate),
 * round to y's dtype — the reference for every backend's folded epilogue
 * (the scratch of dit_gemm_params is never needed here).  An addend that is
 * y itself is read row by row before that row is stored.
 */
#include "cpu_internal.h"

#include <stdatomic.h>

#define GEMM_MR 4
#define GEMM_NR 16
#define GEMM_MB 64
#define GEMM_NC 256
#define GEMM_KC 256

/* Scratch layout per task (floats). */
#define GEMM_SCRATCH_A (GEMM_MB * GEMM_KC)
#define GEMM_SCRATCH_B (GEMM_NC * GEMM_KC)
#define GEMM_SCRATCH_C (GEMM_MB * GEMM_NC)
#define GEMM_SCRATCH (GEMM_SCRATCH_A + GEMM_SCRATCH_B + GEMM_SCRATCH_C + GEMM_NC)

typedef struct gemm_ctx {
  dit_cpu_mat x, w, y, bias, gate, addend;
  int has_bias, has_gate, has_addend;
  int64_t rows_per_group;
  dit_act act;
  int accumulate;
  int64_t M, N, K;
  int64_t tiles_n;
  atomic_int failed;
} gemm_ctx;

/* Four floats as one GNU C vector: the compiler maps it to SSE/NEON
 * registers at any optimisation level, which plain loops over a float
 * accumulator array do not reliably get (GEMM_MR x GEMM_NR spills). */
typedef float gemm_v4 __attribute__ ((vector_size (16)));
#define GEMM_NV (GEMM_NR / 4)

/* c[MR][ldc] (+)= a[kc][MR] · b[kc][NR], one rank-1 update per k. */
static void
gemm_micro (int64_t kc, const float *restrict a, const float *restrict b,
    float *restrict c, int64_t ldc, int load_c)
{
  gemm_v4 acc[GEMM_MR][GEMM_NV];
  for (int r = 0; r < GEMM_MR; r++)
    for (int j = 0; j < GEMM_NV; j++) {
      if (load_c)
        memcpy (&acc[r][j], c + r * ldc + 4 * j, sizeof (gemm_v4));
      else
        acc[r][j] = (gemm_v4) { 0.0f, 0.0f, 0.0f, 0.0f };
    }
  for (int64_t k = 0; k < kc; k++) {
    gemm_v4 bv[GEMM_NV];
    for (int j = 0; j < GEMM_NV; j++)
      memcpy (&bv[j], b + k * GEMM_NR + 4 * j, sizeof (gemm_v4));
    const float *ak = a + k * GEMM_MR;
    for (int r = 0; r < GEMM_MR; r++) {
      gemm_v4 av = { ak[r], ak[r], ak[r], ak[r] };
      for (int j = 0; j < GEMM_NV; j++)
        acc[r][j] += av * bv[j];
    }
  }
  for (int r = 0; r < GEMM_MR; r++)
    for (int j = 0; j < GEMM_NV; j++)
      memcpy (c + r * ldc + 4 * j, &acc[r][j], sizeof (gemm_v4));
}

/* Pack w[n0 .. n0+nc, k0 .. k0+kc) into strips bp[s][k][NR]. */
static void
gemm_pack_b (const gemm_ctx *g, int64_t n0, int64_t nc, int64_t k0, int64_t kc,
    float *bp, float *row)
{
  int64_t strips = (nc + GEMM_NR - 1) / GEMM_NR;
  for (int64_t s = 0; s < strips; s++) {
    float *strip = bp + s * kc * GEMM_NR;
    for (int j = 0; j < GEMM_NR; j++) {
      int64_t n = n0 + s * GEMM_NR + j;
      if (n < n0 + nc) {
        const char *src = (const char *) dit_cpu_row (&g->w, n)
            + (size_t) k0 * dit_dtype_size (g->w.dtype);
        dit_cpu_load_row (row, src, g->w.dtype, kc);
        for (int64_t k = 0; k < kc; k++)
          strip[k * GEMM_NR + j] = row[k];
      } else {
        for (int64_t k = 0; k < kc; k++)
          strip[k * GEMM_NR + j] = 0.0f;
      }
    }
  }
}

/* Pack x[m0 .. m0+mb, k0 .. k0+kc) into groups ap[g][k][MR]. */
static void
gemm_pack_a (const gemm_ctx *g, int64_t m0, int64_t mb, int64_t k0, int64_t kc,
    float *ap, float *row)
{
  int64_t groups = (mb + GEMM_MR - 1) / GEMM_MR;
  for (int64_t gi = 0; gi < groups; gi++) {
    float *grp = ap + gi * kc * GEMM_MR;
    for (int r = 0; r < GEMM_MR; r++) {
      int64_t m = m0 + gi * GEMM_MR + r;
      if (m < m0 + mb) {
        const char *src = (const char *) dit_cpu_row (&g->x, m)
            + (size_t) k0 * dit_dtype_size (g->x.dtype);
        dit_cpu_load_row (row, src, g->x.dtype, kc);
        for (int64_t k = 0; k < kc; k++)
          grp[k * GEMM_MR + r] = row[k];
      } else {
        for (int64_t k = 0; k < kc; k++)
          grp[k * GEMM_MR + r] = 0.0f;
      }
    }
  }
}

static void
gemm_task (void *arg, int64_t task)
{
  gemm_ctx *g = arg;
  float *scratch = dit_cpu_scratch (GEMM_SCRATCH);
  if (!scratch) {
    atomic_store (&g->failed, 1);
    return;
  }
  float *ap = scratch;
  float *bp = ap + GEMM_SCRATCH_A;
  float *cb = bp + GEMM_SCRATCH_B;   /* [MB padded][NC] accumulators */
  float *row = cb + GEMM_SCRATCH_C;  /* GEMM_NC floats (>= KC) */

  int64_t m0 = (task / g->tiles_n) * GEMM_MB;
  int64_t n0 = (task % g->tiles_n) * GEMM_NC;
  int64_t mb = g->M - m0 < GEMM_MB ? g->M - m0 : GEMM_MB;
  int64_t nc = g->N - n0 < GEMM_NC ? g->N - n0 : GEMM_NC;
  int64_t groups = (mb + GEMM_MR - 1) / GEMM_MR;
  int64_t strips = (nc + GEMM_NR - 1) / GEMM_NR;

  if (g->K == 0)
    memset (cb, 0, sizeof (float) * GEMM_SCRATCH_C);
  for (int64_t k0 = 0; k0 < g->K; k0 += GEMM_KC) {
    int64_t kc = g->K - k0 < GEMM_KC ? g->K - k0 : GEMM_KC;
    gemm_pack_b (g, n0, nc, k0, kc, bp, row);
    gemm_pack_a (g, m0, mb, k0, kc, ap, row);
    for (int64_t s = 0; s < strips; s++)
      for (int64_t gi = 0; gi < groups; gi++)
        gemm_micro (kc, ap + gi * kc * GEMM_MR, bp + s * kc * GEMM_NR,
            cb + gi * GEMM_MR * GEMM_NC + s * GEMM_NR, GEMM_NC, k0 > 0);
  }

  /* Epilogue: bias, activation, accumulate, store. */
  float *bias = row;
  if (g->has_bias)
    dit_cpu_load_row (bias, (const char *) g->bias.data
        + (size_t) n0 * dit_dtype_size (g->bias.dtype), g->bias.dtype, nc);
  float old[GEMM_NC], gv[GEMM_NC];
  int64_t cur_group = -1;
  for (int64_t i = 0; i < mb; i++) {
    float *c = cb + i * GEMM_NC;
    if (g->has_addend) {
      dit_cpu_load_row (old, (const char *) dit_cpu_row (&g->addend, m0 + i)
          + (size_t) n0 * dit_dtype_size (g->addend.dtype), g->addend.dtype,
          nc);
      for (int64_t j = 0; j < nc; j++)
        c[j] += old[j];
    }
    if (g->has_bias)
      for (int64_t j = 0; j < nc; j++)
        c[j] += bias[j];
    dit_cpu_act_row (c, nc, g->act);
    if (g->has_gate) {
      int64_t grp = (m0 + i) / g->rows_per_group;
      if (grp != cur_group) {
        dit_cpu_load_row (gv, (const char *) dit_cpu_row (&g->gate, grp)
            + (size_t) n0 * dit_dtype_size (g->gate.dtype), g->gate.dtype, nc);
        cur_group = grp;
      }
      for (int64_t j = 0; j < nc; j++)
        c[j] *= gv[j];
    }
    char *dst = (char *) dit_cpu_row (&g->y, m0 + i)
        + (size_t) n0 * dit_dtype_size (g->y.dtype);
    if (g->accumulate) {
      dit_cpu_load_row (old, dst, g->y.dtype, nc);
      for (int64_t j = 0; j < nc; j++)
        c[j] += old[j];
    }
    dit_cpu_store_row (dst, g->y.dtype, c, nc);
  }
}

dit_status
dit_cpu_gemm (dit_backend *be, const dit_gemm_params *p)
{
  gemm_ctx g;
  memset (&g, 0, sizeof g);
  dit_gemm_dims d;
  DIT_TRY (dit_check_gemm (DIT_DEVICE_CPU, p, &d));
  g.x = d.x;
  g.w = d.w;
  g.y = d.y;
  g.bias = d.bias;
  g.has_bias = p->bias != NULL;
  g.gate = d.gate;
  g.has_gate = p->gate != NULL;
  g.rows_per_group = p->rows_per_group;
  g.addend = d.addend;
  g.has_addend = p->addend != NULL;
  g.act = p->act;
  g.accumulate = p->accumulate;
  g.M = d.M;
  g.N = d.N;
  g.K = d.K;
  if (g.M == 0 || g.N == 0)
    return DIT_OK;
  g.tiles_n = (g.N + GEMM_NC - 1) / GEMM_NC;
  int64_t tiles = ((g.M + GEMM_MB - 1) / GEMM_MB) * g.tiles_n;
  atomic_init (&g.failed, 0);
  dit_cpu_parallel (tiles, gemm_task, &g);
  if (atomic_load (&g.failed))
    return dit_error (DIT_ERR_NOMEM, "gemm: cannot allocate scratch for "
        "[%lld, %lld] x [%lld, %lld]", (long long) g.M, (long long) g.K,
        (long long) g.N, (long long) g.K);
  return DIT_OK;
}
