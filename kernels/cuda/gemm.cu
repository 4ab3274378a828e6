/* gemm — y[M,N] = gate[g] ⊙ act(x[M,K] · w[N,K]ᵀ + bias[N]) (+ y), through
 * cuBLASLt.
 *
 * Layout: x, w and y are row-major with strided rows (a column slice of a
 * fused QKV output is a valid y).  cuBLASLt is column-major, so the product
 * is issued transposed: a row-major [R, C] matrix with row stride ld is a
 * column-major C×R matrix with leading dimension ld, hence
 *   yᵀ (N×M) = op(A) · B  with  A = w as K×N (transposed: N×K),  B = x as K×M.
 * The bias then runs along the rows of the column-major result, which is
 * exactly cuBLASLt's bias vector of length m = N, and so does a per-channel
 * gate: cuBLASLt's alpha vector (CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_
 * BETA_HOST) has one scale per row of the column-major D, i.e. per output
 * channel.
 *
 * Precision: bf16/f16/f32 inputs, f32 compute (CUBLAS_COMPUTE_32F, no TF32,
 * so an f32 GEMM matches the CPU reference to f32 rounding), f32 alpha/beta.
 * Epilogues: bias, GELU(tanh) and GELU+bias run inside cuBLASLt (its GELU is
 * the tanh approximation the model uses); SiLU runs as a second in-place
 * pass.  accumulate is cuBLASLt's beta = 1 on C = D = y.
 *
 * The folded forms the model uses (kernels/dit_ops.h, dit_gemm_params):
 *  - a bias whose dtype differs from y's (a bf16 bias into the f32 residual
 *    stream: the patch embedding, the head, every residual-folded
 *    projection).  cuBLASLt first gets the bias as it is
 *    (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE); where its heuristic has no
 *    algorithm for that, the N bias values are converted into y's dtype in
 *    the backend's small staging buffer (one N-element kernel) and passed as
 *    an ordinary bias.  Only a bias larger than the staging buffer still
 *    takes the old route: the product, then a bias pass over y.
 *  - accumulate into an f32 y: x += h Wᵀ + b is one GEMM with beta = 1.
 *  - a per-row-group gate (the adaLN gated residual x += g[frame] ⊙ (h Wᵀ
 *    + b)): a batched matmul with one batch per group of rows (a frame), the
 *    gate row of each group as the batch's alpha vector (alpha vector batch
 *    stride = the gate's row stride), beta = 1 on y, and the bias scaled by
 *    the gate (g ⊙ b, [G, N] in the staging buffer, bias batch stride N),
 *    because cuBLASLt adds the bias after alpha.  When cuBLASLt has no
 *    algorithm with that pointer mode (or the gate is not f32, the rows do
 *    not split evenly, an activation is asked for, or DIT_CUDA_GEMM_GATE=
 *    scratch is set), the product goes into the caller's scratch ([M, N],
 *    rounded to its dtype) and one pass adds gate ⊙ scratch to y — the cost
 *    of the unfolded residual, no more.
 *  - an addend (the live LoRA's low-rank product, dit_gemm_params.addend)
 *    without gate or accumulate: cuBLASLt's C operand with beta = 1, which
 *    it adds ahead of bias and activation (D = act(A·B + C + bias)), so a
 *    GELU layer sees the low-rank term inside its activation at the cost
 *    of reading C in the epilogue.  C may be y itself or another matrix of
 *    y's dtype and row stride; anything else takes the tiled fallback.
 * The arithmetic is the CPU reference's (kernels/cpu/gemm.c): + addend,
 * + bias, act, × gate, + old y; the alpha form computes g·(xw) + g·b,
 * which differs from g·(xw + b) by f32 rounding only.
 *
 * Fallbacks: x and w of different dtypes and act + accumulate (cuBLASLt
 * applies the activation after adding C) go to a plain shared-memory tiled
 * kernel with the same f32 arithmetic: exact, but far slower; the few-row
 * GEMMs of the time-embedding path (f32 activations times bf16 weights,
 * M = frames) run a skinny kernel: one warp per output column, every row of
 * x at once, the weight row streamed once.  dit_cuda_gemm_path_counts says
 * which path each call took.
 *
 * Plans: the matmul descriptor, the three layouts and the heuristic's
 * algorithm are cached per (M, N, K, leading dimensions, dtypes, epilogue,
 * accumulate, batch, pointer mode, pointer alignments) in a small table
 * owned by the backend; a steady-state call only sets the bias pointer and
 * enqueues the matmul.  Every cuBLASLt call shares the backend's single
 * 32 MiB workspace and its staging buffer, which is safe because all of
 * them are ordered on the backend's one stream.
 */
#include "cuda_common.cuh"
#include "dit_cuda.h"

#include <stdlib.h>
#include <string.h>

static_assert (DIT_CUDA_GEMM_PATHS == DIT_CUDA_GEMM_PATH_COUNT,
    "path counters of cuda_common.cuh and dit_cuda.h differ");

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16

__device__ __forceinline__ float
gemm_act (float v, int act)
{
  if (act == DIT_ACT_GELU_TANH) {
    float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    return 0.5f * v * (1.0f + tanhf (u));
  }
  if (act == DIT_ACT_SILU)
    return v / (1.0f + expf (-v));
  return v;
}

/* The epilogue every own kernel shares: + addend, + bias, act, × gate,
 * + old y. */
typedef struct gemm_epi {
  const void *addend; /* NULL: none */
  int dta;
  int64_t lda;
  const void *bias;
  int dtb;
  const void *gate;   /* NULL: no gate */
  int dtg;
  int64_t ldg, rows_per_group;
  int act, accumulate;
} gemm_epi;

__device__ __forceinline__ void
gemm_epilogue (const gemm_epi &e, float v, int64_t m, int64_t n, void *y,
    int dty, int64_t ldy)
{
  if (e.addend)
    v += dit_cuda_ld (e.addend, e.dta, m * e.lda + n);
  if (e.bias)
    v += dit_cuda_ld (e.bias, e.dtb, n);
  v = gemm_act (v, e.act);
  if (e.gate)
    v *= dit_cuda_ld (e.gate, e.dtg, (m / e.rows_per_group) * e.ldg + n);
  int64_t o = m * ldy + n;
  if (e.accumulate)
    v += dit_cuda_ld (y, dty, o);
  dit_cuda_st (y, dty, o, v);
}

/* 64×64 output tile per 256-thread block, each thread a 4×4 sub-tile with
 * stride 16 so that a warp's shared-memory reads are broadcast or
 * conflict-free. */
__global__ void __launch_bounds__ (256)
gemm_simt_kernel (const void *x, int dtx, int64_t ldx,
    const void *w, int dtw, int64_t ldw, gemm_epi epi,
    void *y, int dty, int64_t ldy, int64_t M, int64_t N, int64_t K)
{
  __shared__ float xs[GEMM_BK][GEMM_BM + 1];
  __shared__ float ws[GEMM_BK][GEMM_BN + 1];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int64_t m0 = (int64_t) blockIdx.y * GEMM_BM;
  const int64_t n0 = (int64_t) blockIdx.x * GEMM_BN;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
      acc[i][j] = 0.0f;

  for (int64_t k0 = 0; k0 < K; k0 += GEMM_BK) {
    /* 64 rows × 16 k per operand: 4 elements per thread, k fastest so that
     * global reads walk along rows */
#pragma unroll
    for (int e = 0; e < 4; e++) {
      int idx = tid + e * 256;
      int r = idx / GEMM_BK, kk = idx % GEMM_BK;
      int64_t gk = k0 + kk;
      int64_t gm = m0 + r, gn = n0 + r;
      xs[kk][r] = (gm < M && gk < K) ? dit_cuda_ld (x, dtx, gm * ldx + gk) : 0.0f;
      ws[kk][r] = (gn < N && gk < K) ? dit_cuda_ld (w, dtw, gn * ldw + gk) : 0.0f;
    }
    __syncthreads ();
#pragma unroll
    for (int kk = 0; kk < GEMM_BK; kk++) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) {
        a[i] = xs[kk][ty + 16 * i];
        b[i] = ws[kk][tx + 16 * i];
      }
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
          acc[i][j] += a[i] * b[j];
    }
    __syncthreads ();
  }

#pragma unroll
  for (int i = 0; i < 4; i++) {
    int64_t gm = m0 + ty + 16 * i;
    if (gm >= M)
      continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      int64_t gn = n0 + tx + 16 * j;
      if (gn < N)
        gemm_epilogue (epi, acc[i][j], gm, gn, y, dty, ldy);
    }
  }
}

/* Skinny GEMM (M <= GEMM_SKINNY_M): warp `w` of the block owns output
 * column n; each lane walks k with stride 32 for every row of x, so the
 * weight row is read once and coalesced; a warp reduction finishes. */
#define GEMM_SKINNY_M 16

__global__ void __launch_bounds__ (256)
gemm_skinny_kernel (const void *x, int dtx, int64_t ldx,
    const void *w, int dtw, int64_t ldw, gemm_epi epi,
    void *y, int dty, int64_t ldy, int M, int64_t N, int64_t K)
{
  const int lane = threadIdx.x & 31;
  const int64_t n = (int64_t) blockIdx.x * 8 + (threadIdx.x >> 5);
  if (n >= N)
    return;
  float acc[GEMM_SKINNY_M];
#pragma unroll
  for (int m = 0; m < GEMM_SKINNY_M; m++)
    acc[m] = 0.0f;
  for (int64_t k = lane; k < K; k += 32) {
    const float wv = dit_cuda_ld (w, dtw, n * ldw + k);
#pragma unroll
    for (int m = 0; m < GEMM_SKINNY_M; m++)
      if (m < M)
        acc[m] += dit_cuda_ld (x, dtx, (int64_t) m * ldx + k) * wv;
  }
#pragma unroll
  for (int m = 0; m < GEMM_SKINNY_M; m++) {
    float v = acc[m];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
      v += __shfl_xor_sync (0xffffffffu, v, o);
    acc[m] = v;
  }
  if (lane != 0)
    return;
  for (int m = 0; m < M; m++)
    gemm_epilogue (epi, acc[m], m, n, y, dty, ldy);
}

/* y = act(y + bias) in place, after a bias-less cuBLASLt product (a bias
 * too large for the staging buffer). */
__global__ void
gemm_bias_act_kernel (void *y, int dty, int64_t ldy, const void *bias,
    int dtb, int64_t M, int64_t N, int act)
{
  DIT_CUDA_GRID_LOOP (i, M * N) {
    int64_t r = i / N, c = i % N;
    int64_t o = r * ldy + c;
    float v = dit_cuda_ld (y, dty, o);
    if (bias)
      v += dit_cuda_ld (bias, dtb, c);
    dit_cuda_st (y, dty, o, gemm_act (v, act));
  }
}

/* Staged bias for cuBLASLt: dst[g, n] = gate[g, n] · bias[n] (gate NULL:
 * bias[n], G = 1), rounded to dst's dtype (y's). */
__global__ void
gemm_stage_bias_kernel (void *dst, int dtd, const void *bias, int dtb,
    const void *gate, int dtg, int64_t ldg, int64_t G, int64_t N)
{
  DIT_CUDA_GRID_LOOP (i, G * N) {
    int64_t g = i / N, n = i % N;
    float v = dit_cuda_ld (bias, dtb, n);
    if (gate)
      v *= dit_cuda_ld (gate, dtg, g * ldg + n);
    dit_cuda_st (dst, dtd, i, v);
  }
}

/* y[r, n] = (accumulate ? y[r, n] : 0) + gate[r / rpg, n] · p[r, n]: the
 * second half of the scratch form of a gated GEMM. */
__global__ void
gemm_gate_accumulate_kernel (void *y, int dty, int64_t ldy, const void *p,
    int dtp, int64_t ldp, const void *gate, int dtg, int64_t ldg,
    int64_t rows_per_group, int64_t M, int64_t N, int accumulate)
{
  DIT_CUDA_GRID_LOOP (i, M * N) {
    int64_t r = i / N, c = i % N;
    float v = dit_cuda_ld (gate, dtg, (r / rows_per_group) * ldg + c)
        * dit_cuda_ld (p, dtp, r * ldp + c);
    int64_t o = r * ldy + c;
    if (accumulate)
      v += dit_cuda_ld (y, dty, o);
    dit_cuda_st (y, dty, o, v);
  }
}

/* ------------------------------------------------------------------------ */
/* one GEMM as the launchers see it */

typedef struct gemm_job {
  const void *x, *w;
  int dtx, dtw;
  int64_t ldx, ldw;
  void *y;
  int dty;
  int64_t ldy;
  int64_t M, N, K;
  const void *bias;        /* NULL: none */
  int dtb;
  int act, accumulate;
  const void *gate;        /* NULL: none */
  int dtg;
  int64_t ldg, rows_per_group;
  const void *addend;      /* NULL: none; cuBLASLt's C (y's dtype and ld) */
  int dta;
  int64_t lda;
} gemm_job;

static gemm_epi
gemm_job_epi (const gemm_job *j)
{
  gemm_epi e;
  e.addend = j->addend;
  e.dta = j->dta;
  e.lda = j->lda;
  e.bias = j->bias;
  e.dtb = j->dtb;
  e.gate = j->gate;
  e.dtg = j->dtg;
  e.ldg = j->ldg;
  e.rows_per_group = j->rows_per_group > 0 ? j->rows_per_group : 1;
  e.act = j->act;
  e.accumulate = j->accumulate;
  return e;
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

static dit_status
gemm_launch_skinny (cudaStream_t s, const gemm_job *j)
{
  gemm_skinny_kernel<<<(unsigned) ((j->N + 7) / 8), 256, 0, s>>> (j->x,
      j->dtx, j->ldx, j->w, j->dtw, j->ldw, gemm_job_epi (j), j->y, j->dty,
      j->ldy, (int) j->M, j->N, j->K);
  DIT_CUDA_CHECK_LAUNCH ("gemm_skinny_kernel");
  return DIT_OK;
}

static dit_status
gemm_launch_simt (cudaStream_t s, const gemm_job *j)
{
  dim3 grid ((unsigned) ((j->N + GEMM_BN - 1) / GEMM_BN),
      (unsigned) ((j->M + GEMM_BM - 1) / GEMM_BM));
  if (grid.y > 65535)
    return dit_error (DIT_ERR_INVALID, "gemm: M = %lld too large for the "
        "fallback kernel", (long long) j->M);
  gemm_simt_kernel<<<grid, 256, 0, s>>> (j->x, j->dtx, j->ldx, j->w, j->dtw,
      j->ldw, gemm_job_epi (j), j->y, j->dty, j->ldy, j->M, j->N, j->K);
  DIT_CUDA_CHECK_LAUNCH ("gemm_simt_kernel");
  return DIT_OK;
}

/* The path for GEMMs cuBLASLt cannot take: skinny for few rows, else the
 * tiled kernel. */
static dit_status
gemm_launch_fallback (dit_cuda_backend *cb, const gemm_job *j)
{
  if (j->M <= GEMM_SKINNY_M) {
    cb->gemm_calls[2]++;
    return gemm_launch_skinny (cb->stream, j);
  }
  cb->gemm_calls[3]++;
  return gemm_launch_simt (cb->stream, j);
}

static dit_status
gemm_launch_stage_bias (dit_cuda_backend *cb, const gemm_job *j, int64_t G)
{
  gemm_stage_bias_kernel<<<dit_cuda_grid_1d (G * j->N, 256), 256, 0,
      cb->stream>>> (cb->stage, j->dty, j->bias, j->dtb, j->gate, j->dtg,
      j->ldg, G, j->N);
  DIT_CUDA_CHECK_LAUNCH ("gemm_stage_bias_kernel");
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* cuBLASLt plans */

static cudaDataType_t
gemm_cuda_type (int dt)
{
  switch (dt) {
    case DIT_F32: return CUDA_R_32F;
    case DIT_BF16: return CUDA_R_16BF;
    default: return CUDA_R_16F;
  }
}

static int
gemm_alignment (const void *ptr)
{
  uintptr_t a = (uintptr_t) ptr;
  int al = 256;
  while (al > 1 && (a % (uintptr_t) al) != 0)
    al >>= 1;
  return al;
}

static void
gemm_plan_release (dit_cuda_gemm_plan *pl)
{
  if (!pl->used)
    return;
  if (pl->la)
    cublasLtMatrixLayoutDestroy (pl->la);
  if (pl->lb)
    cublasLtMatrixLayoutDestroy (pl->lb);
  if (pl->lc)
    cublasLtMatrixLayoutDestroy (pl->lc);
  if (pl->desc)
    cublasLtMatmulDescDestroy (pl->desc);
  memset (pl, 0, sizeof *pl);
}

void
dit_cuda_gemm_cache_clear (dit_cuda_backend *cb)
{
  for (int i = 0; i < DIT_CUDA_GEMM_CACHE; i++)
    gemm_plan_release (&cb->plans[i]);
  cb->next_victim = 0;
}

/* Batches of `rows` rows: every layout gets the batch count and stride. */
static cublasStatus_t
gemm_layout_batch (cublasLtMatrixLayout_t l, int32_t batch, int64_t stride)
{
  cublasStatus_t st = cublasLtMatrixLayoutSetAttribute (l,
      CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatrixLayoutSetAttribute (l,
        CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride);
  return st;
}

/* Whether `algo` implements the alpha-vector pointer mode. */
static int
gemm_algo_has_alpha_vector (const cublasLtMatmulAlgo_t *algo)
{
  uint32_t mask = 0;
  size_t written = 0;
  if (cublasLtMatmulAlgoCapGetAttribute (algo,
        CUBLASLT_ALGO_CAP_POINTER_MODE_MASK, &mask, sizeof mask, &written)
      != CUBLAS_STATUS_SUCCESS)
    return 0;
  return (mask & CUBLASLT_POINTER_MODE_MASK_ALPHA_DEVICE_VECTOR_BETA_HOST) != 0;
}

#define GEMM_HEURISTIC_RESULTS 8

/* Build descriptors and ask the heuristic; `usable` = 0 when cuBLASLt has
 * no algorithm for this combination (the caller then takes another path). */
static dit_status
gemm_plan_build (dit_cuda_backend *cb, dit_cuda_gemm_plan *pl)
{
  const dit_cuda_gemm_key *k = &pl->key;
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  cublasLtEpilogue_t epi = (cublasLtEpilogue_t) k->epilogue;

  DIT_CUBLAS_TRY (cublasLtMatmulDescCreate (&pl->desc, CUBLAS_COMPUTE_32F,
      CUDA_R_32F));
  DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
      CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
      CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
      CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  if (k->dtb >= 0) {
    cudaDataType_t bt = gemm_cuda_type (k->dtb);
    DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
        CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
  }
  /* A: w stored as column-major K×N; B: x as K×M; C = D: y as N×M */
  DIT_CUBLAS_TRY (cublasLtMatrixLayoutCreate (&pl->la, gemm_cuda_type (k->dtw),
      (uint64_t) k->k, (uint64_t) k->n, k->ldw));
  DIT_CUBLAS_TRY (cublasLtMatrixLayoutCreate (&pl->lb, gemm_cuda_type (k->dtx),
      (uint64_t) k->k, (uint64_t) k->m, k->ldx));
  DIT_CUBLAS_TRY (cublasLtMatrixLayoutCreate (&pl->lc, gemm_cuda_type (k->dty),
      (uint64_t) k->n, (uint64_t) k->m, k->ldy));
  if (k->alpha_vector) {
    /* one batch per row group: the weight is shared (stride 0), x and y
     * step by the group's rows, alpha by the gate's row stride and the
     * staged g ⊙ b by N */
    cublasLtPointerMode_t pm = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST;
    int64_t bias_stride = k->n;
    DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
        CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof pm));
    DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
        CUBLASLT_MATMUL_DESC_ALPHA_VECTOR_BATCH_STRIDE, &k->ldg, sizeof k->ldg));
    if (k->dtb >= 0)
      DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
          CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &bias_stride,
          sizeof bias_stride));
    DIT_CUBLAS_TRY (gemm_layout_batch (pl->la, k->batch, 0));
    DIT_CUBLAS_TRY (gemm_layout_batch (pl->lb, k->batch, k->m * k->ldx));
    DIT_CUBLAS_TRY (gemm_layout_batch (pl->lc, k->batch, k->m * k->ldy));
  }

  cublasLtMatmulPreference_t pref;
  DIT_CUBLAS_TRY (cublasLtMatmulPreferenceCreate (&pref));
  size_t ws = cb->workspace_bytes;
  uint32_t al[4] = { (uint32_t) k->align_w, (uint32_t) k->align_x,
      (uint32_t) k->align_y, (uint32_t) k->align_b };
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute (pref,
      CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute (pref,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], sizeof al[0]);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute (pref,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], sizeof al[1]);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute (pref,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], sizeof al[2]);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute (pref,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], sizeof al[2]);
  cublasLtMatmulHeuristicResult_t res[GEMM_HEURISTIC_RESULTS];
  int found = 0;
  if (st == CUBLAS_STATUS_SUCCESS) {
    /* "not supported" (or a combination the library rejects as invalid)
     * is an answer, not an error: take another path */
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic (cb->lt, pl->desc,
        pl->la, pl->lb, pl->lc, pl->lc, pref,
        k->alpha_vector ? GEMM_HEURISTIC_RESULTS : 1, res, &found);
    if (hs != CUBLAS_STATUS_SUCCESS && hs != CUBLAS_STATUS_NOT_SUPPORTED
        && hs != CUBLAS_STATUS_INVALID_VALUE)
      st = hs;
    if (hs != CUBLAS_STATUS_SUCCESS)
      found = 0;
  }
  cublasLtMatmulPreferenceDestroy (pref);
  if (st != CUBLAS_STATUS_SUCCESS)
    return dit_error (DIT_ERR_DEVICE, "%s:%d: cuBLASLt heuristic for "
        "gemm %lldx%lldx%lld failed: %s", __FILE__, __LINE__,
        (long long) k->m, (long long) k->n, (long long) k->k,
        cublasLtGetStatusString (st));
  pl->usable = 0;
  for (int i = 0; i < found && !pl->usable; i++) {
    if (res[i].state != CUBLAS_STATUS_SUCCESS)
      continue;
    if (k->alpha_vector && !gemm_algo_has_alpha_vector (&res[i].algo))
      continue;
    pl->algo = res[i].algo;
    pl->usable = 1;
  }
  return DIT_OK;
}

static dit_status
gemm_plan_get (dit_cuda_backend *cb, const dit_cuda_gemm_key *key,
    dit_cuda_gemm_plan **out)
{
  for (int i = 0; i < DIT_CUDA_GEMM_CACHE; i++) {
    dit_cuda_gemm_plan *pl = &cb->plans[i];
    if (pl->used && memcmp (&pl->key, key, sizeof *key) == 0) {
      *out = pl;
      return DIT_OK;
    }
  }
  int slot = -1;
  for (int i = 0; i < DIT_CUDA_GEMM_CACHE && slot < 0; i++)
    if (!cb->plans[i].used)
      slot = i;
  if (slot < 0) {
    /* full: evict round-robin (a model uses a few dozen shapes) */
    slot = cb->next_victim;
    cb->next_victim = (cb->next_victim + 1) % DIT_CUDA_GEMM_CACHE;
    gemm_plan_release (&cb->plans[slot]);
  }
  dit_cuda_gemm_plan *pl = &cb->plans[slot];
  memset (pl, 0, sizeof *pl);
  pl->used = 1;
  pl->key = *key;
  dit_status st = gemm_plan_build (cb, pl);
  if (st != DIT_OK) {
    gemm_plan_release (pl);
    return st;
  }
  *out = pl;
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* cuBLASLt calls */

/* The plan of one matmul: y = epilogue(alpha · x wᵀ + beta · y) with a bias
 * of dtype `dtb` at `bias` (NULL: none; only its alignment matters here)
 * and the activation of j (none or GELU; SiLU is the caller's pass).  With
 * `alpha_vector` the rows are batched by j->rows_per_group and alpha is the
 * gate (f32, one row per batch).  *out = NULL when cuBLASLt has no
 * algorithm for it. */
static dit_status
gemm_lt_plan (dit_cuda_backend *cb, const gemm_job *j, const void *bias,
    int dtb, int alpha_vector, dit_cuda_gemm_plan **out)
{
  *out = NULL;
  int gelu = j->act == DIT_ACT_GELU_TANH;
  cublasLtEpilogue_t epi;
  if (bias)
    epi = gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  else
    epi = gelu ? CUBLASLT_EPILOGUE_GELU : CUBLASLT_EPILOGUE_DEFAULT;

  dit_cuda_gemm_key key;
  memset (&key, 0, sizeof key);
  key.m = alpha_vector ? j->rows_per_group : j->M;
  key.n = j->N;
  key.k = j->K;
  key.ldx = j->ldx; key.ldw = j->ldw; key.ldy = j->ldy;
  key.dtx = j->dtx; key.dtw = j->dtw; key.dty = j->dty;
  key.dtb = bias ? dtb : -1;
  key.epilogue = (int) epi;
  key.accumulate = j->accumulate || j->addend ? 1 : 0;
  key.align_x = gemm_alignment (j->x);
  key.align_w = gemm_alignment (j->w);
  key.align_y = gemm_alignment (j->y);
  key.align_b = bias ? gemm_alignment (bias) : 256;
  if (alpha_vector) {
    key.alpha_vector = 1;
    key.batch = (int32_t) (j->M / j->rows_per_group);
    key.ldg = j->ldg;
    /* the later batches start at these offsets: their alignment counts */
    int ax = gemm_alignment ((const char *) j->x + (size_t) (j->rows_per_group
        * j->ldx) * dit_dtype_size ((dit_dtype) j->dtx));
    int ay = gemm_alignment ((const char *) j->y + (size_t) (j->rows_per_group
        * j->ldy) * dit_dtype_size ((dit_dtype) j->dty));
    key.align_x = key.align_x < ax ? key.align_x : ax;
    key.align_y = key.align_y < ay ? key.align_y : ay;
  }
  dit_cuda_gemm_plan *pl;
  DIT_TRY (gemm_plan_get (cb, &key, &pl));
  if (pl->usable)
    *out = pl;
  return DIT_OK;
}

/* Enqueue the matmul of a usable plan from gemm_lt_plan.  A combination
 * the heuristic accepted but the matmul itself refuses (not supported,
 * invalid value) marks the plan unusable and sets *done = 0, so that this
 * and every later call of the shape takes another path. */
static dit_status
gemm_lt_run (dit_cuda_backend *cb, const gemm_job *j, dit_cuda_gemm_plan *pl,
    const void *bias, int alpha_vector, int *done)
{
  *done = 0;
  if (bias)
    DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
        CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  float one = 1.0f, beta = j->accumulate || j->addend ? 1.0f : 0.0f;
  const void *alpha = alpha_vector ? j->gate : (const void *) &one;
  const void *c = j->addend ? j->addend : j->y;
  cublasStatus_t cs = cublasLtMatmul (cb->lt, pl->desc, alpha,
      j->w, pl->la, j->x, pl->lb, &beta,
      c, pl->lc, j->y, pl->lc, &pl->algo,
      cb->workspace, cb->workspace_bytes, cb->stream);
  if (cs == CUBLAS_STATUS_NOT_SUPPORTED || cs == CUBLAS_STATUS_INVALID_VALUE) {
    pl->usable = 0;
    return DIT_OK;
  }
  if (cs != CUBLAS_STATUS_SUCCESS)
    return dit_error (DIT_ERR_DEVICE, "%s:%d: cublasLtMatmul of gemm "
        "%lldx%lldx%lld failed: %s", __FILE__, __LINE__, (long long) j->M,
        (long long) j->N, (long long) j->K, cublasLtGetStatusString (cs));
  *done = 1;
  return DIT_OK;
}

/* Plan and run; *done = 0 when cuBLASLt has no algorithm (nothing was
 * enqueued). */
static dit_status
gemm_lt (dit_cuda_backend *cb, const gemm_job *j, const void *bias, int dtb,
    int *done)
{
  dit_cuda_gemm_plan *pl;
  *done = 0;
  DIT_TRY (gemm_lt_plan (cb, j, bias, dtb, 0, &pl));
  if (!pl)
    return DIT_OK;
  return gemm_lt_run (cb, j, pl, bias, 0, done);
}

/* An ungated GEMM on cuBLASLt, with a bias of any dtype; the tiled
 * fallback when cuBLASLt has no algorithm. */
static dit_status
gemm_plain (dit_cuda_backend *cb, const gemm_job *j)
{
  int done = 0;
  int split = 0;   /* bias applied by a pass after the product */
  if (!j->bias || j->dtb == j->dty) {
    DIT_TRY (gemm_lt (cb, j, j->bias, j->dtb, &done));
  } else {
    /* the bias as it is, where cuBLASLt takes that dtype ... */
    DIT_TRY (gemm_lt (cb, j, j->bias, j->dtb, &done));
    /* ... else converted to y's dtype in the staging buffer ... */
    if (!done && (size_t) j->N * dit_dtype_size ((dit_dtype) j->dty)
        <= cb->stage_bytes) {
      gemm_job one = *j;
      one.gate = NULL;
      DIT_TRY (gemm_launch_stage_bias (cb, &one, 1));
      DIT_TRY (gemm_lt (cb, j, cb->stage, j->dty, &done));
    }
    /* ... else the product without it and one bias pass (accumulate
     * would add y before the bias: that goes to the fallback) */
    if (!done && !j->accumulate) {
      /* (an addend stays in the product: C comes before the bias pass) */
      gemm_job nb = *j;
      nb.bias = NULL;
      nb.act = DIT_ACT_NONE;
      DIT_TRY (gemm_lt (cb, &nb, NULL, -1, &done));
      split = done;
    }
  }
  if (!done)
    return gemm_launch_fallback (cb, j);
  if (split) {
    cb->gemm_calls[1]++;
    gemm_bias_act_kernel<<<dit_cuda_grid_1d (j->M * j->N, 256), 256, 0,
        cb->stream>>> (j->y, j->dty, j->ldy, j->bias, j->dtb, j->M, j->N,
        j->act);
    DIT_CUDA_CHECK_LAUNCH ("gemm_bias_act_kernel");
    return DIT_OK;
  }
  cb->gemm_calls[0]++;
  if (j->act == DIT_ACT_SILU)
    DIT_TRY (dit_cuda_launch_unary (cb->stream, j->y, j->dty, j->ldy, j->y,
        j->dty, j->ldy, j->M, j->N, DIT_ACT_SILU));
  return DIT_OK;
}

/* A gated GEMM: alpha-vector cuBLASLt where it can, else the product into
 * the scratch and one gated accumulate pass, else the tiled fallback. */
static dit_status
gemm_gated (dit_cuda_backend *cb, const gemm_job *j, const dit_tensor *scratch)
{
  const int64_t G = (j->M + j->rows_per_group - 1) / j->rows_per_group;
  if (!cb->gemm_gate_scratch && j->act == DIT_ACT_NONE && j->dtg == DIT_F32
      && j->M % j->rows_per_group == 0 && j->rows_per_group > 0
      && gemm_alignment (j->gate) >= 16 && (j->ldg % 4) == 0
      && (!j->bias || (size_t) (G * j->N) * dit_dtype_size ((dit_dtype) j->dty)
          <= cb->stage_bytes)) {
    dit_cuda_gemm_plan *pl;
    const void *gb = j->bias ? cb->stage : NULL;
    DIT_TRY (gemm_lt_plan (cb, j, gb, j->dty, 1, &pl));
    if (pl) {
      int done = 0;
      if (gb)
        DIT_TRY (gemm_launch_stage_bias (cb, j, G));
      DIT_TRY (gemm_lt_run (cb, j, pl, gb, 1, &done));
      if (done) {
        cb->gemm_calls[4]++;
        return DIT_OK;
      }
    }
  }
  if (scratch) {
    int64_t sr, sc, lds;
    DIT_TRY (dit_cuda_rows ("gemm", "scratch", scratch, &sr, &sc, &lds));
    if (sr != j->M || sc != j->N)
      return dit_error (DIT_ERR_INVALID, "gemm: scratch is [%lld, %lld], "
          "expected [%lld, %lld]", (long long) sr, (long long) sc,
          (long long) j->M, (long long) j->N);
    if (lds < j->N)
      lds = j->N;
    gemm_job prod = *j;
    prod.y = scratch->data;
    prod.dty = scratch->dtype;
    prod.ldy = lds;
    prod.accumulate = 0;
    prod.gate = NULL;
    int64_t before[DIT_CUDA_GEMM_PATHS];
    memcpy (before, cb->gemm_calls, sizeof before);
    DIT_TRY (gemm_plain (cb, &prod));
    /* count the call once, as the scratch form */
    memcpy (cb->gemm_calls, before, sizeof before);
    cb->gemm_calls[5]++;
    gemm_gate_accumulate_kernel<<<dit_cuda_grid_1d (j->M * j->N, 256), 256,
        0, cb->stream>>> (j->y, j->dty, j->ldy, prod.y, prod.dty, prod.ldy,
        j->gate, j->dtg, j->ldg, j->rows_per_group, j->M, j->N,
        j->accumulate);
    DIT_CUDA_CHECK_LAUNCH ("gemm_gate_accumulate_kernel");
    return DIT_OK;
  }
  return gemm_launch_fallback (cb, j);
}

/* ------------------------------------------------------------------------ */
/* op */

dit_status
dit_cuda_gemm (dit_backend *be, const dit_gemm_params *p)
{
  dit_gemm_dims d;
  DIT_TRY (dit_check_gemm (DIT_DEVICE_CUDA, p, &d));
  const int64_t M = d.M, N = d.N, K = d.K;
  int64_t ldx = d.x.ld, ldw = d.w.ld, ldy = d.y.ld;
  int64_t ldg = d.gate.ld < N ? N : d.gate.ld;
  int64_t lda = d.addend.ld < N ? N : d.addend.ld;
  if (M == 0 || N == 0)
    return DIT_OK;
  /* cuBLASLt needs ld >= rows of the stored matrix even for one row */
  if (ldx < K) ldx = K;
  if (ldw < K) ldw = K;
  if (ldy < N) ldy = N;

  dit_cuda_backend *cb = dit_cuda_impl (be);
  gemm_job j;
  memset (&j, 0, sizeof j);
  j.x = p->x->data; j.dtx = p->x->dtype; j.ldx = ldx;
  j.w = p->w->data; j.dtw = p->w->dtype; j.ldw = ldw;
  j.y = p->y->data; j.dty = p->y->dtype; j.ldy = ldy;
  j.M = M; j.N = N; j.K = K;
  j.bias = p->bias ? p->bias->data : NULL;
  j.dtb = p->bias ? (int) p->bias->dtype : -1;
  j.act = (int) p->act;
  j.accumulate = p->accumulate ? 1 : 0;
  if (p->gate) {
    j.gate = p->gate->data;
    j.dtg = p->gate->dtype;
    j.ldg = ldg;
    j.rows_per_group = p->rows_per_group;
  }
  if (p->addend) {
    j.addend = p->addend->data;
    j.dta = p->addend->dtype;
    j.lda = lda;
  }

  /* cuBLASLt wants one input dtype, an output of that dtype or f32, and no
   * activation together with accumulate (it would add C before the
   * activation) */
  int lt_types = j.dtx == j.dtw && (j.dty == j.dtx || j.dty == DIT_F32);
  /* cuBLASLt takes an addend as C: y's dtype and row stride, nothing else
   * in C's place (no accumulate, no gate) */
  int lt_addend = !j.addend || (!j.accumulate && !j.gate && j.dta == j.dty
      && j.lda == j.ldy);
  if (!lt_types || !lt_addend || K == 0
      || (j.accumulate && j.act != DIT_ACT_NONE))
    return gemm_launch_fallback (cb, &j);
  if (j.gate)
    return gemm_gated (cb, &j, p->scratch);
  return gemm_plain (cb, &j);
}

extern "C" void
dit_cuda_gemm_path_counts (dit_backend *be,
    int64_t counts[DIT_CUDA_GEMM_PATH_COUNT])
{
  for (int i = 0; i < DIT_CUDA_GEMM_PATH_COUNT; i++)
    counts[i] = 0;
  if (!be || be->ops->device != DIT_DEVICE_CUDA)
    return;
  for (int i = 0; i < DIT_CUDA_GEMM_PATH_COUNT; i++)
    counts[i] = dit_cuda_impl (be)->gemm_calls[i];
}
