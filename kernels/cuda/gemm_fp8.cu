/* gemm_fp8 — the FP8 linear layer (kernels/dit_ops.h "FP8") on CUDA:
 *   acc[m, n] = Σ_b x_scale[b, m] Σ_{k in b} x[m, k] w[n, k]   (e4m3 codes)
 *   y[m, n]   = act(acc[m, n] w_scale[n] + bias[n])  -> bf16/f32, or e4m3
 *               codes with per-(row, 128 columns) scales
 * x carries one scale per token and 128 channels, w one per output channel.
 *
 * Three engines, chosen per call:
 *
 *  cuBLASLt (the installed library's own FP8 kernels): the product is
 *  issued transposed as in gemm.cu (A = w as K x N column-major, B = x as
 *  K x M, D = yᵀ), e4m3 x e4m3 with f32 accumulation and scale vectors.
 *  Which scale modes the library's sm_90 kernels take is known only at run
 *  time, so the first FP8 GEMM of a backend runs a probe: for each
 *  candidate configuration it asks cublasLtMatmulAlgoGetHeuristic and, when
 *  an algorithm comes back, runs it on a 256 x 256 x 512 problem with
 *  distinct scales per block and compares with a host f64 reference.  A
 *  configuration is used only when it gives the right numbers (a scale
 *  layout misread shows as an O(1) error).  Candidates: activation scales
 *  VEC128_32F (our [K/128, M] block-major layout is cuBLASLt's), weight
 *  scales OUTER_VEC_32F (our [N] channel scales as they are) or VEC128_32F
 *  (the channel scale repeated for every K block: a [K/128, N] copy made
 *  once per weight and kept); epilogues BIAS and GELU_BIAS, else none and
 *  a bias/activation pass.  The probe also reports (never uses) the
 *  tensor-wide, per-token and 128x128 block modes, for the record.
 *  dit_cuda_fp8_probe_report prints every answer.
 *
 *  gemm_fp8_mma_kernel (own, any sm_89+ device): mma.sync.m16n8k32 e4m3
 *  tensor cores.  A CTA of 8 warps owns a 128 x 128 output tile, each warp
 *  64 x 32; K advances in steps of 128 = one activation scale block,
 *  through a 3-stage cp.async ring of two 16 KiB tiles (128 rows x 128
 *  bytes, 16-byte chunks XOR-swizzled by row & 7 so that ldmatrix is bank
 *  conflict free; ldmatrix's b16 8x8 matrices are exactly the 8-bit
 *  m16n8k32 fragments).  Each K step accumulates in its own f32 registers
 *  and is then promoted: acc += x_scale[step, m] * part (the per-block f32
 *  promotion of DeepSeek-V3, which also keeps the tensor cores' short FP8
 *  accumulation to 128 products).  The epilogue applies the channel scale,
 *  bias and GELU and either stores bf16/f32 or quantizes: the CTA's 128
 *  columns are one output scale block, whose per-row amax is a quad
 *  shuffle plus four values per row through shared memory — the FFN hidden
 *  layer is quantized where it is produced, no pass over memory.
 *
 *  gemm_fp8_wgmma_kernel (own, sm_90a: gemm_fp8_wgmma.cu): the same
 *  arithmetic on warpgroup MMA with a TMA ring, warp-specialised; its
 *  variants (tile width, ring depth, promotion schedule, grid) are chosen
 *  per call.  It never runs unchecked: before the first call with a new
 *  set of features (output dtype, bias dtype, activation, gate dtype,
 *  accumulate, activation block) and variant, a self-check runs those
 *  features on a small ragged problem through both own kernels and
 *  compares; a difference beyond rounding is logged once on stderr, with
 *  the numbers, and the mma.sync kernel takes every call of the process
 *  from then on.  A self-check needs to synchronise, so a call first seen
 *  while the stream is being captured into a graph takes the mma.sync
 *  kernel (the model's first forward is eager: its GEMMs are checked
 *  before any capture).  dit_cuda_gemm_fp8_wgmma_report prints the record.
 *
 * Per call (auto): cuBLASLt where the probe found a configuration that
 * does the whole call (a 16/32-bit output, no residual epilogue; M and N
 * multiples of 16), else the own kernels: wgmma where the device runs it
 * and the call's features passed the self-check, else mma.sync.  The
 * residual epilogue (gate, accumulate into the f32 residual stream: o,
 * cross o and FFN down) and the FP8 output are the own kernels'
 * epilogues; cuBLASLt does them only through the scratch and a second pass
 * (the residual where no wgmma runs, an FP8 output when forced).
 * DIT_FP8_GEMM=cublaslt|mma|wgmma|own forces an engine (own: wgmma where
 * it runs and passed, else mma.sync; wgmma: without the self-check, for
 * tests), DIT_FP8_WGMMA_VARIANT=<name or index> the wgmma variant.  Every
 * distinct shape is counted with the path it took
 * (dit_cuda_gemm_fp8_report, dit-bench's gemm_paths).
 */
#include "gemm_fp8.cuh"
#include "mma_sync.cuh"
#include "dit_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* CUDA kernels */

#define G8_BM 128
#define G8_BN 128
#define G8_BK 128                       /* = DIT_FP8_BLOCK */
#define G8_STAGES 3
#define G8_THREADS 256
#define G8_TILE (G8_BM * G8_BK)         /* bytes of one operand tile */
#define G8_SMEM (G8_STAGES * 2 * G8_TILE)

/* Byte offset of 16-byte chunk c of row r in a swizzled 128-byte-row tile. */
__device__ __forceinline__ int
g8_swz (int r, int c)
{
  return r * 128 + ((c ^ (r & 7)) << 4);
}

/* Rows [r0, r0 + 128) of a [rows, K] code matrix, K bytes [k0, k0 + 128),
 * into a swizzled tile; rows >= nrows are zero-filled. */
__device__ __forceinline__ void
g8_load_tile (uint8_t *tile, const uint8_t *src, int64_t ld, int64_t r0,
    int64_t nrows, int64_t k0)
{
#pragma unroll
  for (int i = 0; i < G8_BM * 8 / G8_THREADS; i++) {
    const int idx = threadIdx.x + i * G8_THREADS;
    const int r = idx >> 3, c = idx & 7;
    const bool ok = r0 + r < nrows;
    const uint8_t *g = ok ? src + (r0 + r) * ld + k0 + c * 16 : src;
    ptx_cp_async16 (tile + g8_swz (r, c), g, ok);
  }
}

__global__ void __launch_bounds__ (G8_THREADS, 1)
gemm_fp8_mma_kernel (g8_args a)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  extern __shared__ __align__ (128) uint8_t g8_smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const int wm = warp >> 2, wn = warp & 3;      /* 2 x 4 warps */
  const int64_t m0 = (int64_t) blockIdx.y * G8_BM;
  const int64_t n0 = (int64_t) blockIdx.x * G8_BN;
  const int nk = (int) (a.K / G8_BK);

  /* ldmatrix addresses of this lane inside a tile (see the header) */
  const int arow = (lane & 7) + ((lane >> 3) & 1) * 8, achunk = lane >> 4;
  const int brow = (lane & 7) + (lane >> 4) * 8, bchunk = (lane >> 3) & 1;

#pragma unroll
  for (int s = 0; s < G8_STAGES - 1; s++) {
    if (s < nk) {
      uint8_t *st = g8_smem + s * 2 * G8_TILE;
      g8_load_tile (st, a.x, a.ldx, m0, a.M, (int64_t) s * G8_BK);
      g8_load_tile (st + G8_TILE, a.w, a.ldw, n0, a.N, (int64_t) s * G8_BK);
    }
    asm volatile ("cp.async.commit_group;\n" ::);
  }

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
      acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;

  for (int kb = 0; kb < nk; kb++) {
    asm volatile ("cp.async.wait_group %0;\n" :: "n" (G8_STAGES - 2));
    __syncthreads ();
    {
      const int pf = kb + G8_STAGES - 1;
      if (pf < nk) {
        uint8_t *st = g8_smem + (pf % G8_STAGES) * 2 * G8_TILE;
        g8_load_tile (st, a.x, a.ldx, m0, a.M, (int64_t) pf * G8_BK);
        g8_load_tile (st + G8_TILE, a.w, a.ldw, n0, a.N, (int64_t) pf * G8_BK);
      }
      asm volatile ("cp.async.commit_group;\n" ::);
    }
    const uint8_t *xa = g8_smem + (kb % G8_STAGES) * 2 * G8_TILE;
    const uint8_t *wb = xa + G8_TILE;

    float part[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int j = 0; j < 4; j++)
        part[i][j][0] = part[i][j][1] = part[i][j][2] = part[i][j][3] = 0.0f;

#pragma unroll
    for (int kk = 0; kk < G8_BK / 32; kk++) {
      unsigned af[4][4], bf[4][2];
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
        ptx_ldmatrix_x4 (af[mt][0], af[mt][1], af[mt][2], af[mt][3],
            xa + g8_swz (wm * 64 + mt * 16 + arow, kk * 2 + achunk));
#pragma unroll
      for (int np = 0; np < 2; np++)
        ptx_ldmatrix_x4 (bf[2 * np][0], bf[2 * np][1], bf[2 * np + 1][0],
            bf[2 * np + 1][1],
            wb + g8_swz (wn * 32 + np * 16 + brow, kk * 2 + bchunk));
#pragma unroll
      for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
          asm volatile ("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
              "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
              : "+f" (part[mt][nt][0]), "+f" (part[mt][nt][1]),
                "+f" (part[mt][nt][2]), "+f" (part[mt][nt][3])
              : "r" (af[mt][0]), "r" (af[mt][1]), "r" (af[mt][2]),
                "r" (af[mt][3]), "r" (bf[nt][0]), "r" (bf[nt][1]));
    }

    /* promote the block: each row by its activation scale */
    const float *xs = a.xs + (int64_t) (kb / a.xs_div) * a.M;
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int64_t m = m0 + wm * 64 + mt * 16 + g + 8 * h;
        const float s = m < a.M ? xs[m] : 0.0f;
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
          acc[mt][nt][2 * h] += s * part[mt][nt][2 * h];
          acc[mt][nt][2 * h + 1] += s * part[mt][nt][2 * h + 1];
        }
      }
  }
  asm volatile ("cp.async.wait_group 0;\n" ::);

  /* epilogue: channel scale, bias, activation (in place in acc) */
#pragma unroll
  for (int nt = 0; nt < 4; nt++) {
    const int64_t n = n0 + wn * 32 + nt * 8 + 2 * t;
    float s0 = 0.0f, s1 = 0.0f, b0 = 0.0f, b1 = 0.0f;
    if (n < a.N) {
      s0 = a.ws[n];
      b0 = a.bias ? dit_cuda_ld (a.bias, a.dtb, n) : 0.0f;
    }
    if (n + 1 < a.N) {
      s1 = a.ws[n + 1];
      b1 = a.bias ? dit_cuda_ld (a.bias, a.dtb, n + 1) : 0.0f;
    }
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        acc[mt][nt][2 * h] = g8_act (acc[mt][nt][2 * h] * s0 + b0, a.act);
        acc[mt][nt][2 * h + 1] = g8_act (acc[mt][nt][2 * h + 1] * s1 + b1,
            a.act);
      }
  }

  if (a.dty != DIT_F8E4M3) {
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int64_t m = m0 + wm * 64 + mt * 16 + g + 8 * h;
        if (m >= a.M)
          continue;
        const int64_t go = a.gate ? (m / a.rpg) * a.ldg : 0;
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
          const int64_t n = n0 + wn * 32 + nt * 8 + 2 * t;
#pragma unroll
          for (int e = 0; e < 2; e++) {
            if (n + e >= a.N)
              continue;
            float v = acc[mt][nt][2 * h + e];
            if (a.gate)
              v *= dit_cuda_ld (a.gate, a.dtg, go + n + e);
            if (a.accumulate)
              v += dit_cuda_ld (a.y, a.dty, m * a.ldy + n + e);
            dit_cuda_st (a.y, a.dty, m * a.ldy + n + e, v);
          }
        }
      }
    return;
  }

  /* FP8 output: the CTA's 128 columns are one scale block per row.  Row
   * amax = this lane's 8 values, its quad (32 columns of the warp), then
   * the 4 warps along N through shared memory (the ring is free now). */
  __syncthreads ();
  float *red = (float *) g8_smem;              /* [128 rows][4] */
#pragma unroll
  for (int mt = 0; mt < 4; mt++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float am = 0.0f;
#pragma unroll
      for (int nt = 0; nt < 4; nt++)
        am = fmaxf (am, fmaxf (fabsf (acc[mt][nt][2 * h]),
            fabsf (acc[mt][nt][2 * h + 1])));
      am = fp8_group_amax (am, 4);
      if (t == 0)
        red[(wm * 64 + mt * 16 + g + 8 * h) * 4 + wn] = am;
    }
  __syncthreads ();
  uint8_t *y8 = (uint8_t *) a.y;
#pragma unroll
  for (int mt = 0; mt < 4; mt++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int lr = wm * 64 + mt * 16 + g + 8 * h;
      const int64_t m = m0 + lr;
      if (m >= a.M)
        continue;
      const float am = fmaxf (fmaxf (red[lr * 4], red[lr * 4 + 1]),
          fmaxf (red[lr * 4 + 2], red[lr * 4 + 3]));
      const float qi = fp8_dev_inv_scale (am);
#pragma unroll
      for (int nt = 0; nt < 4; nt++)
        fp8_store2 (y8, m * a.ldy + n0 + wn * 32 + nt * 8 + 2 * t,
            acc[mt][nt][2 * h], acc[mt][nt][2 * h + 1], qi);
      if (wn == 0 && t == 0)
        a.ys[(n0 / G8_BN) * a.M + m] = fp8_dev_scale (am);
    }
#elif defined(__CUDA_ARCH__)
  __trap ();   /* no FP8 mma below sm_89; dit_cuda_fp8_check refuses it */
#endif
}

/* y = act(y + bias) in place (16/32-bit y), after a cuBLASLt product
 * without epilogue. */
__global__ void
g8_bias_act_kernel (void *y, int dty, int64_t ldy, const void *bias, int dtb,
    int64_t M, int64_t N, int act)
{
  DIT_CUDA_GRID_LOOP (i, M * N) {
    int64_t r = i / N, c = i % N;
    float v = dit_cuda_ld (y, dty, r * ldy + c);
    if (bias)
      v += dit_cuda_ld (bias, dtb, c);
    dit_cuda_st (y, dty, r * ldy + c, g8_act (v, act));
  }
}

/* y = (accumulate ? y : 0) + gate[r / rpg] ⊙ t (gate NULL = 1), the
 * residual epilogue after a cuBLASLt product into the scratch t */
__global__ void
g8_residual_kernel (void *y, int dty, int64_t ldy, const void *t, int dtt,
    int64_t ldt, const void *gate, int dtg, int64_t ldg, int64_t rpg,
    int64_t M, int64_t N, int accumulate)
{
  DIT_CUDA_GRID_LOOP (i, M * N) {
    int64_t r = i / N, c = i % N;
    float v = dit_cuda_ld (t, dtt, r * ldt + c);
    if (gate)
      v *= dit_cuda_ld (gate, dtg, (r / rpg) * ldg + c);
    if (accumulate)
      v += dit_cuda_ld (y, dty, r * ldy + c);
    dit_cuda_st (y, dty, r * ldy + c, v);
  }
}

/* out[b * N + n] = ws[n] for b < blocks: a channel scale per K block */
__global__ void
g8_expand_scales_kernel (float *out, const float *ws, int64_t N,
    int64_t blocks)
{
  DIT_CUDA_GRID_LOOP (i, N * blocks)
    out[i] = ws[i % N];
}

/* ------------------------------------------------------------------------ */
/* backend state */

enum {
  G8_PATH_LT,            /* cuBLASLt, bias/GELU in its epilogue */
  G8_PATH_LT_PASS,       /* cuBLASLt, then a bias/activation pass */
  G8_PATH_LT_QUANT,      /* cuBLASLt into scratch, then a quantize pass */
  G8_PATH_LT_RESIDUAL,   /* cuBLASLt into scratch, then the residual pass */
  G8_PATH_OWN,           /* gemm_fp8_mma_kernel */
  G8_PATH_OWN_QUANT,     /* gemm_fp8_mma_kernel, quantizing epilogue */
  G8_PATH_OWN_RESIDUAL,  /* gemm_fp8_mma_kernel, gate/accumulate epilogue */
  G8_PATH_WG,            /* gemm_fp8_wgmma_kernel */
  G8_PATH_WG_QUANT,      /* gemm_fp8_wgmma_kernel, quantizing epilogue */
  G8_PATH_WG_RESIDUAL,   /* gemm_fp8_wgmma_kernel, gate/accumulate epilogue */
  G8_NPATHS
};

static const char *const g8_path_names[G8_NPATHS] = {
  "cublaslt", "cublaslt+pass", "cublaslt+quantize-pass",
  "cublaslt+residual-pass", "mma", "mma+quantize", "mma+residual",
  "wgmma", "wgmma+quantize", "wgmma+residual",
};

/* engines a call may be forced onto (dit_cuda_gemm_fp8_path, DIT_FP8_GEMM) */
enum { G8_USE_AUTO, G8_USE_LT, G8_USE_MMA, G8_USE_WGMMA, G8_USE_OWN,
  G8_USE_PROBE };

/* weight scale modes the probe tries */
enum { G8_WS_OUTER, G8_WS_VEC128, G8_NWS };
/* epilogues */
enum { G8_EPI_NONE, G8_EPI_BIAS, G8_EPI_GELU_BIAS, G8_NEPI };

#define G8_PLANS 64
#define G8_CHECKS 64
#define G8_SHAPES 64
#define G8_EXPANDED 512

typedef struct g8_plan_key {
  int64_t m, n, k, ldy;
  int dty, ws_mode, epi, dtb;
  int align_y;
} g8_plan_key;

typedef struct g8_plan {
  int used, usable;
  g8_plan_key key;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatmulAlgo_t algo;
} g8_plan;

typedef struct g8_shape {
  int64_t m, n, k;
  int dty, path;
  int64_t calls;
} g8_shape;

/* One wgmma self-check: the call's features (g8_feature_key) and what the
 * comparison with the mma.sync kernel gave. */
typedef struct g8_check {
  unsigned key;
  int passed;
  double nmse;
} g8_check;

typedef struct g8_expanded {
  const float *ws;
  int64_t n, blocks;
  float *buf;
} g8_expanded;

struct dit_cuda_fp8 {
  int probed;
  int ws_mode;                 /* -1: no cuBLASLt configuration works */
  int epi_ok[G8_NEPI];         /* for ws_mode, bf16 output */
  int f32_ok;                  /* ws_mode with an f32 output, no epilogue */
  char report[8192];
  int force;                   /* DIT_FP8_GEMM: a path, 0 auto (see g8_run) */
  int smem_set;
  int wg_variant;              /* DIT_FP8_WGMMA_VARIANT, -1: per call */
  int wg_device;               /* 0 not asked, 1 runs the wgmma kernels, -1 no */
  unsigned wg_smem_set;        /* g8w_launch's per-variant bits */
  g8_check checks[G8_CHECKS];  /* wgmma self-checks so far */
  int nchecks;
  char wg_report[4096];
  g8_plan plans[G8_PLANS];
  int next_victim;
  g8_shape shapes[G8_SHAPES];
  int nshapes;
  g8_expanded expanded[G8_EXPANDED];
  int nexpanded;
};

static void
g8_plan_release (g8_plan *pl)
{
  if (pl->la) cublasLtMatrixLayoutDestroy (pl->la);
  if (pl->lb) cublasLtMatrixLayoutDestroy (pl->lb);
  if (pl->lc) cublasLtMatrixLayoutDestroy (pl->lc);
  if (pl->desc) cublasLtMatmulDescDestroy (pl->desc);
  memset (pl, 0, sizeof *pl);
}

void
dit_cuda_fp8_free (dit_cuda_backend *cb)
{
  dit_cuda_fp8 *f = cb->fp8;
  if (!f)
    return;
  for (int i = 0; i < G8_PLANS; i++)
    if (f->plans[i].used)
      g8_plan_release (&f->plans[i]);
  for (int i = 0; i < f->nexpanded; i++)
    cudaFree (f->expanded[i].buf);
  free (f);
  cb->fp8 = NULL;
}

/* ------------------------------------------------------------------------ */
/* cuBLASLt plans */

static cudaDataType_t
g8_cuda_type (int dt)
{
  switch (dt) {
    case DIT_F32: return CUDA_R_32F;
    case DIT_BF16: return CUDA_R_16BF;
    case DIT_F16: return CUDA_R_16F;
    default: return CUDA_R_8F_E4M3;
  }
}

static int
g8_align (const void *p)
{
  uintptr_t a = (uintptr_t) p;
  int al = 256;
  while (al > 1 && a % (uintptr_t) al)
    al >>= 1;
  return al;
}

/* Descriptors and the heuristic for one key; *hs receives the heuristic's
 * status (for the probe report).  pl->usable = 0 when no algorithm. */
static dit_status
g8_plan_build (dit_cuda_backend *cb, g8_plan *pl, cublasStatus_t *hs,
    int a_mode_override, int b_mode_override)
{
  const g8_plan_key *k = &pl->key;
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  int32_t amode = k->ws_mode == G8_WS_OUTER
      ? CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
      : CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  int32_t bmode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  if (a_mode_override >= 0)
    amode = a_mode_override;
  if (b_mode_override >= 0)
    bmode = b_mode_override;
  cublasLtEpilogue_t epi = k->epi == G8_EPI_BIAS ? CUBLASLT_EPILOGUE_BIAS
      : k->epi == G8_EPI_GELU_BIAS ? CUBLASLT_EPILOGUE_GELU_BIAS
      : CUBLASLT_EPILOGUE_DEFAULT;
  *hs = CUBLAS_STATUS_SUCCESS;
  DIT_CUBLAS_TRY (cublasLtMatmulDescCreate (&pl->desc, CUBLAS_COMPUTE_32F,
      CUDA_R_32F));
  DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
      CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
      CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  /* a mode the header knows but the library refuses is an answer */
  cublasStatus_t st = cublasLtMatmulDescSetAttribute (pl->desc,
      CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &amode, sizeof amode);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulDescSetAttribute (pl->desc,
        CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &bmode, sizeof bmode);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulDescSetAttribute (pl->desc,
        CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  if (st == CUBLAS_STATUS_SUCCESS && k->epi != G8_EPI_NONE) {
    cudaDataType_t bt = g8_cuda_type (k->dtb);
    st = cublasLtMatmulDescSetAttribute (pl->desc,
        CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
  }
  if (st != CUBLAS_STATUS_SUCCESS) {
    *hs = st;
    pl->usable = 0;
    return DIT_OK;
  }
  DIT_CUBLAS_TRY (cublasLtMatrixLayoutCreate (&pl->la, CUDA_R_8F_E4M3,
      (uint64_t) k->k, (uint64_t) k->n, k->k));
  DIT_CUBLAS_TRY (cublasLtMatrixLayoutCreate (&pl->lb, CUDA_R_8F_E4M3,
      (uint64_t) k->k, (uint64_t) k->m, k->k));
  DIT_CUBLAS_TRY (cublasLtMatrixLayoutCreate (&pl->lc, g8_cuda_type (k->dty),
      (uint64_t) k->n, (uint64_t) k->m, k->ldy));
  cublasLtMatmulPreference_t pref;
  DIT_CUBLAS_TRY (cublasLtMatmulPreferenceCreate (&pref));
  size_t ws = cb->workspace_bytes;
  uint32_t ay = (uint32_t) k->align_y, a16 = 16;
  cublasLtMatmulPreferenceSetAttribute (pref,
      CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  cublasLtMatmulPreferenceSetAttribute (pref,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a16, sizeof a16);
  cublasLtMatmulPreferenceSetAttribute (pref,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &a16, sizeof a16);
  cublasLtMatmulPreferenceSetAttribute (pref,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ay, sizeof ay);
  cublasLtMatmulPreferenceSetAttribute (pref,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ay, sizeof ay);
  cublasLtMatmulHeuristicResult_t res;
  int found = 0;
  *hs = cublasLtMatmulAlgoGetHeuristic (cb->lt, pl->desc, pl->la, pl->lb,
      pl->lc, pl->lc, pref, 1, &res, &found);
  cublasLtMatmulPreferenceDestroy (pref);
  pl->usable = *hs == CUBLAS_STATUS_SUCCESS && found > 0
      && res.state == CUBLAS_STATUS_SUCCESS;
  if (pl->usable)
    pl->algo = res.algo;
  else if (*hs == CUBLAS_STATUS_SUCCESS)
    *hs = CUBLAS_STATUS_NOT_SUPPORTED;
  return DIT_OK;
}

static dit_status
g8_plan_get (dit_cuda_backend *cb, const g8_plan_key *key, g8_plan **out)
{
  dit_cuda_fp8 *f = cb->fp8;
  for (int i = 0; i < G8_PLANS; i++)
    if (f->plans[i].used && memcmp (&f->plans[i].key, key, sizeof *key) == 0) {
      *out = &f->plans[i];
      return DIT_OK;
    }
  int slot = -1;
  for (int i = 0; i < G8_PLANS && slot < 0; i++)
    if (!f->plans[i].used)
      slot = i;
  if (slot < 0) {
    slot = f->next_victim;
    f->next_victim = (f->next_victim + 1) % G8_PLANS;
    g8_plan_release (&f->plans[slot]);
  }
  g8_plan *pl = &f->plans[slot];
  memset (pl, 0, sizeof *pl);
  pl->used = 1;
  pl->key = *key;
  cublasStatus_t hs;
  dit_status st = g8_plan_build (cb, pl, &hs, -1, -1);
  if (st != DIT_OK) {
    g8_plan_release (pl);
    return st;
  }
  *out = pl;
  return DIT_OK;
}

/* The [K/128, N] copy of channel scales ws for the VEC128 weight mode,
 * made once per weight. */
static dit_status
g8_expanded_scales (dit_cuda_backend *cb, const float *ws, int64_t N,
    int64_t blocks, const float **out)
{
  dit_cuda_fp8 *f = cb->fp8;
  for (int i = 0; i < f->nexpanded; i++)
    if (f->expanded[i].ws == ws && f->expanded[i].n == N
        && f->expanded[i].blocks == blocks) {
      *out = f->expanded[i].buf;
      return DIT_OK;
    }
  if (f->nexpanded == G8_EXPANDED)
    return dit_error (DIT_ERR_NOMEM, "gemm_fp8: more than %d FP8 weights in "
        "use on one backend", G8_EXPANDED);
  float *buf;
  DIT_CUDA_TRY (cudaMalloc (&buf, (size_t) (N * blocks) * sizeof (float)));
  g8_expand_scales_kernel<<<dit_cuda_grid_1d (N * blocks, 256), 256, 0,
      cb->stream>>> (buf, ws, N, blocks);
  DIT_CUDA_CHECK_LAUNCH ("g8_expand_scales_kernel");
  f->expanded[f->nexpanded++] = (g8_expanded) { ws, N, blocks, buf };
  *out = buf;
  return DIT_OK;
}

/* One cuBLASLt FP8 matmul with plan pl: y (as D) = act(...) per pl's key. */
static dit_status
g8_lt_run (dit_cuda_backend *cb, g8_plan *pl, const void *x, const float *xs,
    const void *w, const float *ws_arg, const void *bias, void *y)
{
  const void *ap = ws_arg, *bp = xs;
  DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
      CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &ap, sizeof ap));
  DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
      CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &bp, sizeof bp));
  if (pl->key.epi != G8_EPI_NONE)
    DIT_CUBLAS_TRY (cublasLtMatmulDescSetAttribute (pl->desc,
        CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  float alpha = 1.0f, beta = 0.0f;
  DIT_CUBLAS_TRY (cublasLtMatmul (cb->lt, pl->desc, &alpha, w, pl->la, x,
      pl->lb, &beta, y, pl->lc, y, pl->lc, &pl->algo, cb->workspace,
      cb->workspace_bytes, cb->stream));
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* the probe */

#define PR_M 256
#define PR_N 256
#define PR_K 512

typedef struct g8_probe_data {
  uint8_t *x, *w;
  float *xs, *ws, *ws_exp, *bias_f;
  uint16_t *bias_h;
  void *y;
  double *ref[2];        /* [act none, act gelu] */
} g8_probe_data;

static uint64_t
g8_rng (uint64_t *s)
{
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545f4914f6cdd1dull;
}

static double
g8_gelu64 (double u)
{
  return 0.5 * u * (1.0 + tanh (0.7978845608028654 * (u + 0.044715 * u * u * u)));
}

/* Host data and f64 references of the probe problem. */
static void
g8_probe_host (uint8_t *x, uint8_t *w, float *xs, float *ws, float *ws_exp,
    uint16_t *bias_h, double *ref_none, double *ref_gelu)
{
  uint64_t s = 0x9e3779b97f4a7c15ull;
  const int KB = PR_K / 128;
  for (int i = 0; i < PR_M * PR_K; i++)
    x[i] = dit_f32_to_e4m3 ((float) ((g8_rng (&s) >> 40) % 801) - 400.0f);
  for (int i = 0; i < PR_N * PR_K; i++)
    w[i] = dit_f32_to_e4m3 ((float) ((g8_rng (&s) >> 40) % 801) - 400.0f);
  /* distinct scales per block and row: a transposed layout cannot pass */
  for (int b = 0; b < KB; b++)
    for (int m = 0; m < PR_M; m++)
      xs[b * PR_M + m] = ldexpf (1.0f + (float) ((m * 7 + b * 3) % 16) / 16.0f,
          -10 - (b + m) % 4);
  for (int n = 0; n < PR_N; n++) {
    ws[n] = ldexpf (1.0f + (float) ((n * 5) % 16) / 16.0f, -9 - n % 3);
    bias_h[n] = dit_f32_to_bf16 ((float) ((int) (n % 13) - 6) / 8.0f);
  }
  for (int b = 0; b < KB; b++)
    for (int n = 0; n < PR_N; n++)
      ws_exp[b * PR_N + n] = ws[n];
  for (int m = 0; m < PR_M; m++)
    for (int n = 0; n < PR_N; n++) {
      double acc = 0.0;
      for (int b = 0; b < KB; b++) {
        double part = 0.0;
        for (int k = b * 128; k < b * 128 + 128; k++)
          part += (double) dit_e4m3_to_f32 (x[m * PR_K + k])
              * dit_e4m3_to_f32 (w[n * PR_K + k]);
        acc += xs[b * PR_M + m] * part;
      }
      double v = acc * ws[n] + dit_bf16_to_f32 (bias_h[n]);
      ref_none[m * PR_N + n] = acc * ws[n];
      ref_gelu[m * PR_N + n] = g8_gelu64 (v);
    }
}

static double
g8_nmse_vs (const void *y, int dty, const double *ref, const uint16_t *bias_h,
    int add_bias)
{
  double num = 0.0, den = 0.0;
  for (int i = 0; i < PR_M * PR_N; i++) {
    double r = ref[i] + (add_bias ? dit_bf16_to_f32 (bias_h[i % PR_N]) : 0.0);
    double v = dit_load_f32 (y, (dit_dtype) dty, (size_t) i);
    if (!isfinite (v))
      return INFINITY;
    num += (v - r) * (v - r);
    den += r * r;
  }
  return num / den;
}

static const char *
g8_mode_name (int mode)
{
  switch (mode) {
    case CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F: return "SCALAR_32F";
    case CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F: return "OUTER_VEC_32F";
    case CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F: return "VEC128_32F";
    case CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F: return "BLK128x128_32F";
  }
  return "?";
}

static const char *const g8_epi_names[G8_NEPI] = { "none", "bias", "gelu+bias" };

/* Build, heuristic and (when usable and numbers can be checked) run one
 * candidate; appends a line to the report.  Returns 1 when it gave the
 * right numbers. */
static int
g8_probe_one (dit_cuda_backend *cb, dit_cuda_fp8 *f, int amode, int bmode,
    int ws_mode, int dty, int epi, int check, const g8_probe_data *dd,
    const g8_probe_data *hd)
{
  g8_plan pl;
  memset (&pl, 0, sizeof pl);
  pl.key.m = PR_M; pl.key.n = PR_N; pl.key.k = PR_K; pl.key.ldy = PR_N;
  pl.key.dty = dty; pl.key.ws_mode = ws_mode; pl.key.epi = epi;
  pl.key.dtb = DIT_BF16; pl.key.align_y = 256;
  cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
  char line[320];
  int ok = 0;
  dit_status st = g8_plan_build (cb, &pl, &hs, amode, bmode);
  if (st != DIT_OK) {
    snprintf (line, sizeof line, "  A(w) %-14s B(x) %-14s out %-4s epi %-9s: "
        "setup failed: %s\n", g8_mode_name (amode), g8_mode_name (bmode),
        dit_dtype_name ((dit_dtype) dty), g8_epi_names[epi], dit_last_error ());
  } else if (!pl.usable) {
    snprintf (line, sizeof line, "  A(w) %-14s B(x) %-14s out %-4s epi %-9s: "
        "no algorithm (%s)\n", g8_mode_name (amode), g8_mode_name (bmode),
        dit_dtype_name ((dit_dtype) dty), g8_epi_names[epi],
        cublasLtGetStatusString (hs));
  } else if (!check) {
    snprintf (line, sizeof line, "  A(w) %-14s B(x) %-14s out %-4s epi %-9s: "
        "algorithm found (not used: layout not ours)\n", g8_mode_name (amode),
        g8_mode_name (bmode), dit_dtype_name ((dit_dtype) dty),
        g8_epi_names[epi]);
  } else {
    size_t ybytes = (size_t) PR_M * PR_N * dit_dtype_size ((dit_dtype) dty);
    const float *wsp = ws_mode == G8_WS_OUTER ? dd->ws : dd->ws_exp;
    st = cudaMemsetAsync (dd->y, 0, ybytes, cb->stream) == cudaSuccess
        ? g8_lt_run (cb, &pl, dd->x, dd->xs, dd->w, wsp, dd->bias_h, dd->y)
        : DIT_ERR_DEVICE;
    void *host = malloc (ybytes);
    if (st == DIT_OK && cudaMemcpyAsync (host, dd->y, ybytes,
          cudaMemcpyDeviceToHost, cb->stream) == cudaSuccess
        && cudaStreamSynchronize (cb->stream) == cudaSuccess) {
      double e = g8_nmse_vs (host, dty, epi == G8_EPI_GELU_BIAS ? hd->ref[1]
          : hd->ref[0], hd->bias_h, epi == G8_EPI_BIAS);
      /* bf16 output rounding alone is ~3e-6 */
      ok = e < 1e-4;
      snprintf (line, sizeof line, "  A(w) %-14s B(x) %-14s out %-4s epi %-9s: "
          "ran, nmse %.2e vs f64 -> %s\n", g8_mode_name (amode),
          g8_mode_name (bmode), dit_dtype_name ((dit_dtype) dty),
          g8_epi_names[epi], e, ok ? "OK" : "WRONG (not used)");
    } else {
      cudaGetLastError ();
      snprintf (line, sizeof line, "  A(w) %-14s B(x) %-14s out %-4s epi %-9s: "
          "run failed: %s\n", g8_mode_name (amode), g8_mode_name (bmode),
          dit_dtype_name ((dit_dtype) dty), g8_epi_names[epi],
          st != DIT_OK ? dit_last_error () : "copy back");
    }
    free (host);
  }
  g8_plan_release (&pl);
  size_t used = strlen (f->report);
  snprintf (f->report + used, sizeof f->report - used, "%s", line);
  return ok;
}

static dit_status
g8_state (dit_cuda_backend *cb)
{
  if (cb->fp8)
    return DIT_OK;
  cb->fp8 = (dit_cuda_fp8 *) calloc (1, sizeof *cb->fp8);
  if (!cb->fp8)
    return dit_error (DIT_ERR_NOMEM, "gemm_fp8: out of host memory");
  cb->fp8->ws_mode = -1;
  const char *e = getenv ("DIT_FP8_GEMM");
  cb->fp8->force = !e ? 0 : strcmp (e, "cublaslt") == 0 ? G8_USE_LT
      : strcmp (e, "mma") == 0 ? G8_USE_MMA
      : strcmp (e, "wgmma") == 0 ? G8_USE_WGMMA
      : strcmp (e, "own") == 0 ? G8_USE_OWN : 0;
  if (e && *e && !cb->fp8->force)
    fprintf (stderr, "gemm_fp8: DIT_FP8_GEMM=%s is not one of cublaslt, mma, "
        "wgmma, own; choosing per call\n", e);
  cb->fp8->wg_variant = -1;
  const char *v = getenv ("DIT_FP8_WGMMA_VARIANT");
  if (v && *v) {
    for (int i = 0; i < g8w_variant_count (); i++)
      if (strcmp (v, g8w_variant (i)->name) == 0
          || (v[0] >= '0' && v[0] <= '9' && atoi (v) == i))
        cb->fp8->wg_variant = i;
    if (cb->fp8->wg_variant < 0)
      fprintf (stderr, "gemm_fp8: DIT_FP8_WGMMA_VARIANT=%s names no variant; "
          "using the default\n", v);
  }
  return DIT_OK;
}

/* The probe (once per backend, on its first FP8 GEMM or report). */
static dit_status
g8_probe (dit_cuda_backend *cb)
{
  DIT_TRY (g8_state (cb));
  dit_cuda_fp8 *f = cb->fp8;
  if (f->probed)
    return DIT_OK;
  f->probed = 1;
  snprintf (f->report, sizeof f->report, "cuBLASLt %d (header %d), device "
      "%s, compute capability %d.%d\n", (int) cublasLtGetVersion (),
      CUBLAS_VERSION, cb->device_name, cb->cc_major, cb->cc_minor);

  g8_probe_data hd, dd;
  memset (&hd, 0, sizeof hd);
  memset (&dd, 0, sizeof dd);
  const size_t KB = PR_K / 128;
  hd.x = (uint8_t *) malloc (PR_M * PR_K);
  hd.w = (uint8_t *) malloc (PR_N * PR_K);
  hd.xs = (float *) malloc (KB * PR_M * sizeof (float));
  hd.ws = (float *) malloc (PR_N * sizeof (float));
  hd.ws_exp = (float *) malloc (KB * PR_N * sizeof (float));
  hd.bias_h = (uint16_t *) malloc (PR_N * sizeof (uint16_t));
  hd.ref[0] = (double *) malloc (PR_M * PR_N * sizeof (double));
  hd.ref[1] = (double *) malloc (PR_M * PR_N * sizeof (double));
  dit_status st = DIT_OK;
  if (!hd.x || !hd.w || !hd.xs || !hd.ws || !hd.ws_exp || !hd.bias_h
      || !hd.ref[0] || !hd.ref[1])
    st = dit_error (DIT_ERR_NOMEM, "gemm_fp8 probe: out of host memory");
  if (st == DIT_OK) {
    g8_probe_host (hd.x, hd.w, hd.xs, hd.ws, hd.ws_exp, hd.bias_h, hd.ref[0],
        hd.ref[1]);
    if (cudaMalloc (&dd.x, PR_M * PR_K) != cudaSuccess
        || cudaMalloc (&dd.w, PR_N * PR_K) != cudaSuccess
        || cudaMalloc (&dd.xs, KB * PR_M * sizeof (float)) != cudaSuccess
        || cudaMalloc (&dd.ws, PR_N * sizeof (float)) != cudaSuccess
        || cudaMalloc (&dd.ws_exp, KB * PR_N * sizeof (float)) != cudaSuccess
        || cudaMalloc (&dd.bias_h, PR_N * sizeof (uint16_t)) != cudaSuccess
        || cudaMalloc (&dd.y, PR_M * PR_N * sizeof (float)) != cudaSuccess) {
      cudaGetLastError ();
      st = dit_error (DIT_ERR_NOMEM, "gemm_fp8 probe: out of device memory");
    }
  }
  if (st == DIT_OK) {
    /* On the backend's stream: it does not wait for the legacy default
     * stream, and a plain cudaMemcpy from pageable memory may return before
     * its DMA has landed. */
    cudaStream_t s = cb->stream;
    const cudaMemcpyKind h2d = cudaMemcpyHostToDevice;
    cudaMemcpyAsync (dd.x, hd.x, PR_M * PR_K, h2d, s);
    cudaMemcpyAsync (dd.w, hd.w, PR_N * PR_K, h2d, s);
    cudaMemcpyAsync (dd.xs, hd.xs, KB * PR_M * sizeof (float), h2d, s);
    cudaMemcpyAsync (dd.ws, hd.ws, PR_N * sizeof (float), h2d, s);
    cudaMemcpyAsync (dd.ws_exp, hd.ws_exp, KB * PR_N * sizeof (float), h2d, s);
    cudaMemcpyAsync (dd.bias_h, hd.bias_h, PR_N * sizeof (uint16_t), h2d, s);

    const int V = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    const int O = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    /* the configurations we can use: weight scales per channel as they
     * are (OUTER) or repeated per K block (VEC128); activation VEC128 */
    int works[G8_NWS][G8_NEPI];
    for (int m = 0; m < G8_NWS; m++)
      for (int e = 0; e < G8_NEPI; e++)
        works[m][e] = g8_probe_one (cb, f, m == G8_WS_OUTER ? O : V, V, m,
            DIT_BF16, e, 1, &dd, &hd);
    int f32_works[G8_NWS];
    for (int m = 0; m < G8_NWS; m++)
      f32_works[m] = g8_probe_one (cb, f, m == G8_WS_OUTER ? O : V, V, m,
          DIT_F32, G8_EPI_NONE, 1, &dd, &hd);
    /* for the record: tensor-wide, per-token and DeepSeek 128x128 */
    g8_probe_one (cb, f, CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F,
        CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F, 0, DIT_BF16, G8_EPI_BIAS, 0,
        &dd, &hd);
    g8_probe_one (cb, f, O, O, 0, DIT_BF16, G8_EPI_BIAS, 0, &dd, &hd);
    g8_probe_one (cb, f, CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F, V, 0,
        DIT_BF16, G8_EPI_BIAS, 0, &dd, &hd);
    /* prefer channel scales as they are (no [K/128, N] copies) */
    for (int m = 0; m < G8_NWS && f->ws_mode < 0; m++)
      if (works[m][G8_EPI_NONE] || works[m][G8_EPI_BIAS]) {
        f->ws_mode = m;
        for (int e = 0; e < G8_NEPI; e++)
          f->epi_ok[e] = works[m][e];
        f->f32_ok = f32_works[m];
      }
    size_t used = strlen (f->report);
    if (f->ws_mode < 0)
      snprintf (f->report + used, sizeof f->report - used, "chosen: own "
          "mma.sync FP8 kernel for every shape (no cuBLASLt configuration "
          "gave the right numbers)\n");
    else
      snprintf (f->report + used, sizeof f->report - used, "chosen: cuBLASLt "
          "with weight scales %s, epilogues:%s%s%s, f32 output %s; FP8 "
          "outputs: own kernel's quantizing epilogue\n",
          f->ws_mode == G8_WS_OUTER ? "OUTER_VEC_32F" : "VEC128_32F (copies)",
          f->epi_ok[G8_EPI_NONE] ? " none" : "", f->epi_ok[G8_EPI_BIAS]
          ? " bias" : "", f->epi_ok[G8_EPI_GELU_BIAS] ? " gelu+bias" : "",
          f->f32_ok ? "cuBLASLt" : "own kernel");
  }
  cudaFree (dd.x); cudaFree (dd.w); cudaFree (dd.xs); cudaFree (dd.ws);
  cudaFree (dd.ws_exp); cudaFree (dd.bias_h); cudaFree (dd.y);
  free (hd.x); free (hd.w); free (hd.xs); free (hd.ws); free (hd.ws_exp);
  free (hd.bias_h); free (hd.ref[0]); free (hd.ref[1]);
  return st;
}

/* ------------------------------------------------------------------------ */
/* kernel launchers */

static dit_status
g8_launch_own (dit_cuda_backend *cb, const g8_args &a)
{
  dit_cuda_fp8 *f = cb->fp8;
  if (!f->smem_set) {
    DIT_CUDA_TRY (cudaFuncSetAttribute (gemm_fp8_mma_kernel,
        cudaFuncAttributeMaxDynamicSharedMemorySize, G8_SMEM));
    f->smem_set = 1;
  }
  dim3 grid ((unsigned) ((a.N + G8_BN - 1) / G8_BN),
      (unsigned) ((a.M + G8_BM - 1) / G8_BM));
  if (grid.y > 65535)
    return dit_error (DIT_ERR_INVALID, "gemm_fp8: M = %lld too large",
        (long long) a.M);
  gemm_fp8_mma_kernel<<<grid, G8_THREADS, G8_SMEM, cb->stream>>> (a);
  DIT_CUDA_CHECK_LAUNCH ("gemm_fp8_mma_kernel");
  return DIT_OK;
}

static void
g8_count (dit_cuda_fp8 *f, int64_t M, int64_t N, int64_t K, int dty, int path)
{
  for (int i = 0; i < f->nshapes; i++) {
    g8_shape *s = &f->shapes[i];
    if (s->m == M && s->n == N && s->k == K && s->dty == dty && s->path == path) {
      s->calls++;
      return;
    }
  }
  if (f->nshapes < G8_SHAPES)
    f->shapes[f->nshapes++] = (g8_shape) { M, N, K, dty, path, 1 };
}

/* ------------------------------------------------------------------------ */
/* the wgmma engine: device check and self-check */

/* Set once any self-check failed: no wgmma kernel for the rest of the
 * process (the mma.sync kernel takes every call). */
static int g8w_broken;

static int
g8_wg_device (dit_cuda_backend *cb)
{
  dit_cuda_fp8 *f = cb->fp8;
  if (f->wg_device == 0)
    f->wg_device = g8w_device_ok (cb) ? 1 : -1;
  return f->wg_device > 0;
}

/* What a self-check covers: the variant and every feature of the call
 * that selects different epilogue code. */
static unsigned
g8_feature_key (const g8_args &a, int v)
{
  return (unsigned) v | (unsigned) a.dty << 4
      | (unsigned) (a.bias ? a.dtb + 1 : 0) << 8 | (unsigned) a.act << 12
      | (unsigned) (a.gate ? a.dtg + 1 : 0) << 16
      | (unsigned) (a.accumulate != 0) << 20 | (unsigned) (a.xs_div != 1) << 21;
}

#define SC_M 200     /* two row blocks, the second ragged */
#define SC_N 384     /* 2-3 column blocks, ragged for BN 144 */
#define SC_RPG 72    /* gate groups that straddle warpgroups */
#define SC_GRID 3    /* CTAs, so that each walks 2 or more tiles */

static size_t
g8_round256 (size_t n)
{
  return (n + 255) & ~(size_t) 255;
}

/* Value i of an M x N output (FP8: code times its row's block scale). */
static double
g8_sc_value (const void *y, const float *ys, int dty, int64_t i)
{
  if (dty != DIT_F8E4M3)
    return dit_load_f32 (y, (dit_dtype) dty, (size_t) i);
  const int64_t m = i / SC_N, n = i % SC_N;
  return (double) dit_e4m3_to_f32 (((const uint8_t *) y)[i])
      * ys[(n / 128) * SC_M + m];
}

/* Run the call's features (output dtype, bias dtype, activation, gate
 * dtype, accumulate, activation block) on a small problem through the
 * mma.sync kernel (validated against the CPU reference) and wgmma variant
 * v on a grid of SC_GRID CTAs (more K blocks than ring stages, several
 * tiles per CTA, rows and columns past the tiles), and compare: beyond
 * rounding (NMSE 1e-5 for 16/32-bit outputs, 1e-3 for FP8 codes, whose
 * roundings may flip where the two sums differ in their last bits) the
 * wgmma kernel is wrong on this device. */
static dit_status
g8_selfcheck (dit_cuda_backend *cb, const g8_args &call, int v, g8_check *out)
{
  dit_cuda_fp8 *f = cb->fp8;
  const int64_t M = SC_M, N = SC_N, xb = G8_BK * call.xs_div;
  const int64_t K = (1024 + xb - 1) / xb * xb, KB = K / xb;
  const int64_t G = (M + SC_RPG - 1) / SC_RPG;
  const int f8 = call.dty == DIT_F8E4M3;
  const size_t ysz = f8 ? 1 : dit_dtype_size ((dit_dtype) call.dty);
  const size_t bsz = call.bias ? dit_dtype_size ((dit_dtype) call.dtb) : 0;
  const size_t gsz = call.gate ? dit_dtype_size ((dit_dtype) call.dtg) : 0;
  size_t off[10], total = 0;
  const size_t bytes[10] = { (size_t) (M * K), (size_t) (N * K),
    (size_t) (KB * M) * 4, (size_t) N * 4, (size_t) N * bsz,
    (size_t) (G * N) * gsz, (size_t) (M * N) * ysz, (size_t) (M * N) * ysz,
    f8 ? (size_t) (N / 128 * M) * 4 : 0, f8 ? (size_t) (N / 128 * M) * 4 : 0 };
  for (int i = 0; i < 10; i++) {
    off[i] = total;
    total += g8_round256 (bytes[i]);
  }
  uint8_t *h = (uint8_t *) calloc (1, total + (size_t) (M * N) * ysz);
  if (!h)
    return dit_error (DIT_ERR_NOMEM, "gemm_fp8 self-check: out of host "
        "memory");
  uint8_t *y0 = h + total;           /* initial y (accumulate) */
  uint64_t rs = 0x243f6a8885a308d3ull;
  for (int64_t i = 0; i < M * K; i++)
    h[off[0] + i] = dit_f32_to_e4m3 ((float) ((g8_rng (&rs) >> 40) % 801)
        - 400.0f);
  for (int64_t i = 0; i < N * K; i++)
    h[off[1] + i] = dit_f32_to_e4m3 ((float) ((g8_rng (&rs) >> 40) % 801)
        - 400.0f);
  float *hxs = (float *) (h + off[2]), *hws = (float *) (h + off[3]);
  for (int64_t i = 0; i < KB * M; i++)
    hxs[i] = ldexpf (1.0f + (float) ((g8_rng (&rs) >> 40) % 16) / 16.0f,
        -10 - (int) ((g8_rng (&rs) >> 40) % 4));
  for (int64_t i = 0; i < N; i++)
    hws[i] = ldexpf (1.0f + (float) ((g8_rng (&rs) >> 40) % 16) / 16.0f,
        -9 - (int) (i % 3));
  for (int64_t i = 0; call.bias && i < N; i++)
    dit_store_f32 (h + off[4], (dit_dtype) call.dtb, (size_t) i,
        (float) ((int) ((g8_rng (&rs) >> 40) % 13) - 6) / 8.0f);
  for (int64_t i = 0; call.gate && i < G * N; i++)
    dit_store_f32 (h + off[5], (dit_dtype) call.dtg, (size_t) i,
        (float) ((int) ((g8_rng (&rs) >> 40) % 17) - 8) / 8.0f);
  for (int64_t i = 0; !f8 && i < M * N; i++)
    dit_store_f32 (y0, (dit_dtype) call.dty, (size_t) i,
        (float) ((int) ((g8_rng (&rs) >> 40) % 33) - 16) / 4.0f);

  uint8_t *d = NULL;
  dit_status st = DIT_OK;
  if (cudaMalloc (&d, total) != cudaSuccess) {
    cudaGetLastError ();
    free (h);
    return dit_error (DIT_ERR_NOMEM, "gemm_fp8 self-check: out of device "
        "memory");
  }
  g8_args a = call;
  a.x = d + off[0]; a.ldx = K;
  a.w = d + off[1]; a.ldw = K;
  a.xs = (const float *) (d + off[2]);
  a.ws = (const float *) (d + off[3]);
  a.bias = call.bias ? d + off[4] : NULL;
  a.gate = call.gate ? d + off[5] : NULL;
  a.ldg = N;
  a.rpg = call.gate ? SC_RPG : 1;
  a.ldy = N;
  a.M = M; a.N = N; a.K = K;
  /* Uploads on the stream the kernels run on (a non-blocking stream: a
   * plain cudaMemcpy from pageable memory may return before its DMA lands,
   * and the kernels would read part of the inputs uninitialised). */
  const cudaMemcpyKind h2d = cudaMemcpyHostToDevice;
  if (cudaMemcpyAsync (d, h, total, h2d, cb->stream) != cudaSuccess
      || (!f8 && (cudaMemcpyAsync (d + off[6], y0, bytes[6], h2d, cb->stream)
          != cudaSuccess || cudaMemcpyAsync (d + off[7], y0, bytes[7], h2d,
          cb->stream) != cudaSuccess))) {
    cudaGetLastError ();
    st = dit_error (DIT_ERR_DEVICE, "gemm_fp8 self-check: upload failed");
  }
  if (st == DIT_OK) {
    a.y = d + off[6];
    a.ys = f8 ? (float *) (d + off[8]) : NULL;
    st = g8_launch_own (cb, a);
  }
  if (st == DIT_OK) {
    a.y = d + off[7];
    a.ys = f8 ? (float *) (d + off[9]) : NULL;
    st = g8w_launch (cb, a, v, SC_GRID, &f->wg_smem_set);
  }
  if (st == DIT_OK) {
    cudaError_t e = cudaStreamSynchronize (cb->stream);
    if (e == cudaSuccess)
      e = cudaMemcpy (h, d, total, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess)
      st = dit_error (DIT_ERR_DEVICE, "gemm_fp8 self-check: wgmma variant %s "
          "failed on the device: %s", g8w_variant (v)->name,
          cudaGetErrorString (e));
  }
  cudaFree (d);
  if (st == DIT_OK) {
    double num = 0.0, den = 0.0;
    const float *sr = (const float *) (h + off[8]);
    const float *stt = (const float *) (h + off[9]);
    for (int64_t i = 0; i < M * N; i++) {
      const double r = g8_sc_value (h + off[6], sr, call.dty, i);
      const double t = g8_sc_value (h + off[7], stt, call.dty, i);
      if (!isfinite (r) || !isfinite (t)) {
        num = INFINITY;
        break;
      }
      num += (t - r) * (t - r);
      den += r * r;
    }
    out->key = g8_feature_key (call, v);
    out->nmse = den > 0.0 ? num / den : num;
    out->passed = out->nmse <= (f8 ? 1e-3 : 1e-5);
  }
  free (h);
  return st;
}

/* A line of the self-check record: the variant, the features, the result. */
static void
g8_check_line (char *buf, size_t size, const g8_args &a, int v,
    const g8_check *c)
{
  snprintf (buf, size, "wgmma %s: out %s, bias %s, %s, gate %s%s, x_block "
      "%lld: nmse %.2e vs mma.sync -> %s\n", g8w_variant (v)->name,
      dit_dtype_name ((dit_dtype) a.dty),
      a.bias ? dit_dtype_name ((dit_dtype) a.dtb) : "none",
      a.act == DIT_ACT_GELU_TANH ? "gelu" : "no act",
      a.gate ? dit_dtype_name ((dit_dtype) a.dtg) : "none",
      a.accumulate ? ", accumulate" : "", (long long) (a.xs_div * G8_BK),
      c->nmse, c->passed ? "ok" : "FAILED");
}

/* Whether the wgmma kernel takes this call (auto and "own" choice): the
 * device runs it, no self-check has failed in this process, and the
 * call's features passed theirs (run now, on first sight, unless the
 * stream is being captured into a graph: then the mma.sync kernel takes
 * the call).  *variant: the variant, or -1 for the mma.sync kernel. */
static dit_status
g8_wgmma_ready (dit_cuda_backend *cb, const g8_args &a, int *variant)
{
  dit_cuda_fp8 *f = cb->fp8;
  *variant = -1;
  if (__atomic_load_n (&g8w_broken, __ATOMIC_RELAXED) || !g8_wg_device (cb))
    return DIT_OK;
  int v = f->wg_variant >= 0 ? f->wg_variant : g8w_default_variant (a);
  if (!g8w_takes (v, a))
    v = 0;
  const unsigned key = g8_feature_key (a, v);
  for (int i = 0; i < f->nchecks; i++)
    if (f->checks[i].key == key) {
      *variant = f->checks[i].passed ? v : -1;
      return DIT_OK;
    }
  if (f->nchecks == G8_CHECKS)
    return DIT_OK;
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing (cb->stream, &cs) != cudaSuccess
      || cs != cudaStreamCaptureStatusNone) {
    cudaGetLastError ();
    return DIT_OK;
  }
  g8_check c;
  DIT_TRY (g8_selfcheck (cb, a, v, &c));
  f->checks[f->nchecks++] = c;
  char line[320];
  g8_check_line (line, sizeof line, a, v, &c);
  const size_t used = strlen (f->wg_report);
  snprintf (f->wg_report + used, sizeof f->wg_report - used, "%s", line);
  line[strcspn (line, "\n")] = '\0';
  if (!c.passed) {
    if (!__atomic_exchange_n (&g8w_broken, 1, __ATOMIC_RELAXED))
      fprintf (stderr, "gemm_fp8: the wgmma kernel gave different numbers "
          "from the mma.sync kernel on %s (%s); the mma.sync kernel takes "
          "every FP8 GEMM of this process\n", cb->device_name, line);
    return DIT_OK;
  }
  *variant = v;
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* op */

/* How cuBLASLt finishes an output of dtype out_dt with this bias and
 * activation: its epilogue (*pass 0) or no epilogue and g8_bias_act_kernel
 * (*pass 1), each only where the probe saw it give the right numbers.
 * Returns 0 when it cannot. */
static int
g8_lt_epilogue (const dit_cuda_fp8 *f, int out_dt, int dtb, int has_bias,
    int act, int *epi, int *pass)
{
  const int plain_ok = out_dt == DIT_BF16 ? f->epi_ok[G8_EPI_NONE]
      : out_dt == DIT_F32 ? f->f32_ok : 0;
  int want = act == DIT_ACT_GELU_TANH ? (has_bias ? G8_EPI_GELU_BIAS : -1)
      : has_bias ? G8_EPI_BIAS : G8_EPI_NONE;
  if (want == G8_EPI_NONE) {
    *epi = G8_EPI_NONE;
    *pass = 0;
    return plain_ok;
  }
  if (want > 0 && out_dt == DIT_BF16 && dtb == DIT_BF16 && f->epi_ok[want]) {
    *epi = want;
    *pass = 0;
    return 1;
  }
  *epi = G8_EPI_NONE;
  *pass = 1;
  return plain_ok;
}

/* path (G8_USE_*): 0 auto, 1 cuBLASLt (DIT_ERR_UNSUPPORTED when the probe
 * found none for this call), 2 the mma.sync kernel, 3 the wgmma kernel
 * (variant `variant`, or DIT_FP8_WGMMA_VARIANT's, or the default; no
 * self-check; DIT_ERR_UNSUPPORTED where it does not run), 4 own: wgmma
 * where it runs and passed its self-check, else mma.sync.  Auto: cuBLASLt
 * where the probe found a configuration that does the whole call (a
 * 16/32-bit output without the residual epilogue), else as own; the
 * residual epilogue takes cuBLASLt plus a pass only where wgmma cannot.
 * 5 (not public): the wgmma timing probe `variant` (g8w_probe).
 * grid_limit (forced wgmma only) caps the wgmma grid. */

static dit_status
g8_run (dit_backend *be, const dit_gemm_fp8_params *p, int path, int variant,
    int grid_limit)
{
  const char *op = "gemm_fp8";
  int64_t M, K, ldx, N, Kw, ldw, My, Ny, ldy;
  dit_cuda_backend *cb = dit_cuda_impl (be);
  DIT_TRY (dit_cuda_fp8_check (be));
  if (!p->w || !p->y)
    return dit_error (DIT_ERR_INVALID, "%s: w and y are required", op);
  DIT_TRY (dit_cuda_fp8_rows (op, "x", p->x, p->x_scale, p->x_block, &M, &K,
      &ldx));
  DIT_TRY (dit_cuda_fp8_rows (op, "w", p->w, p->w_scale,
      p->w->shape[p->w->ndim - 1], &N, &Kw, &ldw));
  if (Kw != K)
    return dit_error (DIT_ERR_INVALID, "%s: x has %lld columns but w has %lld",
        op, (long long) K, (long long) Kw);
  const int f8out = p->y->dtype == DIT_F8E4M3;
  if (f8out) {
    DIT_TRY (dit_cuda_fp8_rows (op, "y", p->y, p->y_scale, p->y_block, &My,
        &Ny, &ldy));
    if (p->y_block != G8_BN)
      return dit_error (DIT_ERR_UNSUPPORTED, "%s: FP8 output in blocks of %lld "
          "(the CUDA kernels quantize in blocks of %d)", op,
          (long long) p->y_block, G8_BN);
  } else {
    DIT_TRY (dit_cuda_rows (op, "y", p->y, &My, &Ny, &ldy));
  }
  if (My != M || Ny != N)
    return dit_error (DIT_ERR_INVALID, "%s: y is [%lld, %lld], expected "
        "[%lld, %lld]", op, (long long) My, (long long) Ny, (long long) M,
        (long long) N);
  if (p->bias)
    DIT_TRY (dit_cuda_check_vector (op, "bias", p->bias, N));
  if (p->act != DIT_ACT_NONE && p->act != DIT_ACT_GELU_TANH)
    return dit_error (DIT_ERR_INVALID, "%s: activation %d (none or gelu_tanh)",
        op, (int) p->act);
  const int residual = p->gate != NULL || p->accumulate;
  int64_t G = 0, Ng = 0, ldg = 0;
  if (residual && f8out)
    return dit_error (DIT_ERR_INVALID, "%s: gate and accumulate need a "
        "16/32-bit y", op);
  if (p->gate) {
    if (p->rows_per_group <= 0)
      return dit_error (DIT_ERR_INVALID, "%s: rows_per_group %lld", op,
          (long long) p->rows_per_group);
    DIT_TRY (dit_cuda_rows (op, "gate", p->gate, &G, &Ng, &ldg));
    if (Ng != N || G < (M + p->rows_per_group - 1) / p->rows_per_group)
      return dit_error (DIT_ERR_INVALID, "%s: gate is [%lld, %lld] for %lld "
          "rows in groups of %lld", op, (long long) G, (long long) Ng,
          (long long) M, (long long) p->rows_per_group);
  }
  if (K % G8_BK || p->x_block % G8_BK || N % 8)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s: K = %lld and the activation "
        "block %lld must be multiples of %d and N = %lld of 8", op,
        (long long) K, (long long) p->x_block, G8_BK, (long long) N);
  if (ldx != K || ldw != K || ((uintptr_t) p->x->data | (uintptr_t) p->w->data) % 16)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s: x and w need contiguous, "
        "16-byte aligned rows", op);
  if (M == 0 || N == 0)
    return DIT_OK;
  DIT_TRY (g8_probe (cb));
  dit_cuda_fp8 *f = cb->fp8;
  if (path == 0)
    path = f->force;

  const int dty = p->y->dtype;
  const int dtb = p->bias ? (int) p->bias->dtype : -1;
  const float *xs = (const float *) p->x_scale->data;
  const float *ws = (const float *) p->w_scale->data;
  g8_args a;
  memset (&a, 0, sizeof a);
  a.x = (const uint8_t *) p->x->data; a.ldx = ldx;
  a.xs = xs; a.xs_div = p->x_block / G8_BK;
  a.w = (const uint8_t *) p->w->data; a.ldw = ldw; a.ws = ws;
  a.bias = p->bias ? p->bias->data : NULL; a.dtb = dtb < 0 ? 0 : dtb;
  a.y = p->y->data; a.dty = dty; a.ldy = ldy;
  a.ys = f8out ? (float *) p->y_scale->data : NULL;
  a.M = M; a.N = N; a.K = K; a.act = (int) p->act;
  a.gate = p->gate ? p->gate->data : NULL;
  a.dtg = p->gate ? (int) p->gate->dtype : 0;
  a.ldg = ldg;
  a.rpg = p->gate ? p->rows_per_group : 1;
  a.accumulate = p->accumulate != 0;

  if (path == G8_USE_PROBE) {
    if (!g8_wg_device (cb) || !g8w_probe (variant))
      return dit_error (DIT_ERR_UNSUPPORTED, "%s: wgmma probe %d does not "
          "run here", op, variant);
    return g8w_launch_probe (cb, a, variant, &f->wg_smem_set);
  }

  /* the wgmma variant this call takes, -1 none (wv_known: decided) */
  int wv = -1, wv_known = 0;
  if (path == G8_USE_WGMMA) {
    if (!g8_wg_device (cb))
      return dit_error (DIT_ERR_UNSUPPORTED, "%s: the wgmma kernel does not "
          "run on device '%s' (compute capability %d.%d; it needs 9.0, the "
          "sm_90a build and the driver's cuTensorMapEncodeTiled)", op,
          cb->device_name, cb->cc_major, cb->cc_minor);
    wv = variant >= 0 ? variant : f->wg_variant >= 0 ? f->wg_variant
        : g8w_default_variant (a);
    if (!g8w_variant (wv))
      return dit_error (DIT_ERR_INVALID, "%s: wgmma variant %d (0-%d)", op,
          wv, g8w_variant_count () - 1);
    if (!g8w_takes (wv, a))
      return dit_error (DIT_ERR_UNSUPPORTED, "%s: wgmma variant %s cannot "
          "write an FP8 output (its %d-column tiles straddle the 128-column "
          "scale blocks)", op, g8w_variant (wv)->name, g8w_variant (wv)->bn);
    wv_known = 1;
  }

  /* cuBLASLt: 16/32-bit outputs, and FP8 outputs through a scratch when
   * asked for; activation scales must be per 128 columns (VEC128), and M
   * and N multiples of 16 keep every row of the scale tensors 16-byte
   * aligned, as in the probe (the model's M = frames x tokens per frame) */
  int lt = f->ws_mode >= 0 && p->x_block == G8_BK
      && (path == G8_USE_AUTO || path == G8_USE_LT)
      && M % 16 == 0 && N % 16 == 0
      && (f8out ? path == G8_USE_LT && p->scratch
          : residual ? p->scratch != NULL
          : (dty == DIT_BF16 || (dty == DIT_F32 && f->f32_ok)));
  if (path == G8_USE_LT && !lt)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s: cuBLASLt has no working FP8 "
        "configuration for this call (see dit_cuda_fp8_probe_report)", op);
  if (lt && path == G8_USE_AUTO && residual) {
    DIT_TRY (g8_wgmma_ready (cb, a, &wv));
    wv_known = 1;
    lt = wv < 0;
  }
  if (lt) {
    void *yd = p->y->data;
    int64_t ldd = ldy;
    int out_dt = dty;
    if (f8out || residual) {
      /* bf16 into the scratch, then the quantize or residual pass */
      int64_t Ms, Ns, lds;
      DIT_TRY (dit_cuda_rows (op, "scratch", p->scratch, &Ms, &Ns, &lds));
      if (Ms != M || Ns != N || p->scratch->dtype != DIT_BF16)
        return dit_error (DIT_ERR_INVALID, "%s: scratch must be bf16 [%lld, "
            "%lld]", op, (long long) M, (long long) N);
      yd = p->scratch->data;
      ldd = lds;
      out_dt = DIT_BF16;
    }
    int epi, pass;
    if (!g8_lt_epilogue (f, out_dt, dtb, p->bias != NULL, (int) p->act, &epi,
          &pass)) {
      if (path == G8_USE_LT)
        return dit_error (DIT_ERR_UNSUPPORTED, "%s: no cuBLASLt configuration "
            "passed the probe for this output and epilogue", op);
      goto own;
    }
    g8_plan_key key;
    memset (&key, 0, sizeof key);
    key.m = M; key.n = N; key.k = K; key.ldy = ldd;
    key.dty = out_dt; key.ws_mode = f->ws_mode;
    key.epi = epi;
    key.dtb = epi == G8_EPI_NONE ? -1 : dtb;
    key.align_y = g8_align (yd);
    g8_plan *pl;
    DIT_TRY (g8_plan_get (cb, &key, &pl));
    if (pl->usable) {
      const float *wsp = ws;
      if (f->ws_mode == G8_WS_VEC128)
        DIT_TRY (g8_expanded_scales (cb, ws, N, K / G8_BK, &wsp));
      DIT_TRY (g8_lt_run (cb, pl, p->x->data, xs, p->w->data, wsp,
          epi == G8_EPI_NONE ? NULL : p->bias->data, yd));
      if (pass) {
        g8_bias_act_kernel<<<dit_cuda_grid_1d (M * N, 256), 256, 0,
            cb->stream>>> (yd, out_dt, ldd, p->bias ? p->bias->data : NULL,
            dtb, M, N, (int) p->act);
        DIT_CUDA_CHECK_LAUNCH ("g8_bias_act_kernel");
      }
      if (f8out) {
        DIT_TRY (dit_cuda_launch_quantize_fp8 (cb->stream, yd, DIT_BF16, ldd,
            p->y->data, (float *) p->y_scale->data, M, N, p->y_block));
        g8_count (f, M, N, K, dty, G8_PATH_LT_QUANT);
      } else if (residual) {
        g8_residual_kernel<<<dit_cuda_grid_1d (M * N, 256), 256, 0,
            cb->stream>>> (p->y->data, dty, ldy, yd, DIT_BF16, ldd,
            p->gate ? p->gate->data : NULL, p->gate ? (int) p->gate->dtype : 0,
            ldg, p->gate ? p->rows_per_group : 1, M, N, p->accumulate);
        DIT_CUDA_CHECK_LAUNCH ("g8_residual_kernel");
        g8_count (f, M, N, K, dty, G8_PATH_LT_RESIDUAL);
      } else {
        g8_count (f, M, N, K, dty, pass ? G8_PATH_LT_PASS : G8_PATH_LT);
      }
      return DIT_OK;
    }
    if (path == G8_USE_LT)
      return dit_error (DIT_ERR_UNSUPPORTED, "%s: cuBLASLt found no algorithm "
          "for %lld x %lld x %lld", op, (long long) M, (long long) N,
          (long long) K);
  }

own:
  if (f8out && N % G8_BN)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s: an FP8 output needs N = %lld "
        "to be a multiple of %d", op, (long long) N, G8_BN);
  if (!wv_known && (path == G8_USE_AUTO || path == G8_USE_OWN))
    DIT_TRY (g8_wgmma_ready (cb, a, &wv));
  if (wv >= 0) {
    DIT_TRY (g8w_launch (cb, a, wv, path == G8_USE_WGMMA ? grid_limit : 0,
        &f->wg_smem_set));
    g8_count (f, M, N, K, dty, f8out ? G8_PATH_WG_QUANT
        : residual ? G8_PATH_WG_RESIDUAL : G8_PATH_WG);
    return DIT_OK;
  }
  DIT_TRY (g8_launch_own (cb, a));
  g8_count (f, M, N, K, dty, f8out ? G8_PATH_OWN_QUANT
      : residual ? G8_PATH_OWN_RESIDUAL : G8_PATH_OWN);
  return DIT_OK;
}

dit_status
dit_cuda_gemm_fp8 (dit_backend *be, const dit_gemm_fp8_params *p)
{
  return g8_run (be, p, G8_USE_AUTO, -1, 0);
}

extern "C" dit_status
dit_cuda_gemm_fp8_path (dit_backend *be, const dit_gemm_fp8_params *p,
    int path)
{
  if (!be || be->ops->device != DIT_DEVICE_CUDA || !p)
    return dit_error (DIT_ERR_INVALID, "gemm_fp8 path: not a CUDA backend");
  if (path < G8_USE_AUTO || path > G8_USE_OWN)
    return dit_error (DIT_ERR_INVALID, "gemm_fp8 path %d: 0 auto, 1 cuBLASLt, "
        "2 mma.sync, 3 wgmma, 4 own", path);
  return g8_run (be, p, path, -1, 0);
}

extern "C" dit_status
dit_cuda_gemm_fp8_wgmma (dit_backend *be, const dit_gemm_fp8_params *p,
    int variant, int grid_limit)
{
  if (!be || be->ops->device != DIT_DEVICE_CUDA || !p)
    return dit_error (DIT_ERR_INVALID, "gemm_fp8 wgmma: not a CUDA backend");
  if (!g8w_variant (variant))
    return dit_error (DIT_ERR_INVALID, "gemm_fp8 wgmma: variant %d (0-%d)",
        variant, g8w_variant_count () - 1);
  return g8_run (be, p, G8_USE_WGMMA, variant, grid_limit);
}

extern "C" dit_status
dit_cuda_gemm_fp8_wgmma_probe (dit_backend *be, const dit_gemm_fp8_params *p,
    int probe)
{
  if (!be || be->ops->device != DIT_DEVICE_CUDA || !p)
    return dit_error (DIT_ERR_INVALID, "gemm_fp8 wgmma: not a CUDA backend");
  if (!g8w_probe (probe))
    return dit_error (DIT_ERR_INVALID, "gemm_fp8 wgmma: probe %d (0-%d)",
        probe, g8w_probe_count () - 1);
  return g8_run (be, p, G8_USE_PROBE, probe, 0);
}

extern "C" const char *
dit_cuda_gemm_fp8_wgmma_probe_name (int probe)
{
  const g8w_variant_info *v = g8w_probe (probe);
  return v ? v->name : NULL;
}

extern "C" const char *
dit_cuda_gemm_fp8_wgmma_variant_name (int variant)
{
  const g8w_variant_info *v = g8w_variant (variant);
  return v ? v->name : NULL;
}

extern "C" dit_status
dit_cuda_gemm_fp8_wgmma_report (dit_backend *be, char *buf, size_t size)
{
  if (!be || be->ops->device != DIT_DEVICE_CUDA)
    return dit_error (DIT_ERR_INVALID, "gemm_fp8 wgmma: not a CUDA backend");
  dit_cuda_backend *cb = dit_cuda_impl (be);
  DIT_TRY (dit_cuda_fp8_check (be));
  DIT_TRY (g8_state (cb));
  dit_cuda_fp8 *f = cb->fp8;
  const int ok = g8_wg_device (cb);
  g8_args none;
  memset (&none, 0, sizeof none);
  snprintf (buf, size, "wgmma engine on '%s' (compute capability %d.%d): "
      "%s%s; variant %s%s\n%s", cb->device_name, cb->cc_major, cb->cc_minor,
      ok ? "runs" : "does not run (needs 9.0, the sm_90a build and the "
      "driver's cuTensorMapEncodeTiled)",
      __atomic_load_n (&g8w_broken, __ATOMIC_RELAXED)
      ? ", DISABLED by a failed self-check" : "",
      g8w_variant (f->wg_variant >= 0 ? f->wg_variant
          : g8w_default_variant (none))->name,
      f->wg_variant >= 0 ? " (DIT_FP8_WGMMA_VARIANT)" : " (default)",
      f->nchecks ? f->wg_report : "no self-check has run yet\n");
  return DIT_OK;
}

extern "C" dit_status
dit_cuda_fp8_probe_report (dit_backend *be, char *buf, size_t size)
{
  if (!be || be->ops->device != DIT_DEVICE_CUDA)
    return dit_error (DIT_ERR_INVALID, "fp8 probe: not a CUDA backend");
  dit_cuda_backend *cb = dit_cuda_impl (be);
  DIT_TRY (dit_cuda_fp8_check (be));
  DIT_TRY (g8_probe (cb));
  snprintf (buf, size, "%s", cb->fp8->report);
  return DIT_OK;
}

extern "C" void
dit_cuda_gemm_fp8_report (dit_backend *be, char *buf, size_t size)
{
  size_t o = 0;
  if (size)
    buf[0] = '\0';
  o += (size_t) snprintf (buf, size, "[");
  if (be && be->ops->device == DIT_DEVICE_CUDA && dit_cuda_impl (be)->fp8) {
    const dit_cuda_fp8 *f = dit_cuda_impl (be)->fp8;
    for (int i = 0; i < f->nshapes && o < size; i++) {
      const g8_shape *s = &f->shapes[i];
      o += (size_t) snprintf (buf + o, size - o, "%s{\"m\": %lld, \"n\": %lld, "
          "\"k\": %lld, \"out\": \"%s\", \"path\": \"%s\", \"calls\": %lld}",
          i ? ", " : "", (long long) s->m, (long long) s->n, (long long) s->k,
          dit_dtype_name ((dit_dtype) s->dty), g8_path_names[s->path],
          (long long) s->calls);
    }
  }
  if (o < size)
    snprintf (buf + o, size - o, "]");
}
