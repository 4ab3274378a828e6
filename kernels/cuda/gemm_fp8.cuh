/* gemm_fp8.cuh — what the FP8 linear layer's two own kernels share: the
 * argument block (FlashAttention style, the kernels' whole interface),
 * the activation, and the wgmma engine's entry points for gemm_fp8.cu's
 * per-call engine choice.
 *
 * gemm_fp8.cu holds the op (validation, engine choice, cuBLASLt, the
 * mma.sync kernel, the wgmma self-check); gemm_fp8_wgmma.cu the sm_90a
 * kernel.  Both compute
 *   acc[m, n] = Σ_b xs[b, m] Σ_{k in block b} x[m, k] w[n, k]
 *   v[m, n]   = act(acc[m, n] · ws[n] + bias[n])
 * with the K loop in steps of 128 (one activation scale block when
 * xs_div = 1) and the same epilogue arithmetic, so that their results
 * differ only by the tensor cores' summation order inside a block.
 */
#ifndef DIT_CUDA_GEMM_FP8_CUH
#define DIT_CUDA_GEMM_FP8_CUH

#include "cuda_common.cuh"
#include "fp8.cuh"

typedef struct g8_args {
  const uint8_t *x;      /* [M, K] e4m3 codes, row pitch ldx bytes */
  int64_t ldx;
  const float *xs;       /* [K / x_block, M] activation scales */
  int64_t xs_div;        /* K steps of 128 per activation scale */
  const uint8_t *w;      /* [N, K] e4m3 codes, row pitch ldw bytes */
  int64_t ldw;
  const float *ws;       /* [N] channel scales */
  const void *bias;      /* [N] of dtype dtb, or NULL */
  int dtb;
  void *y;               /* [M, N] of dtype dty, row pitch ldy elements */
  int dty;               /* DIT_F8E4M3: codes with scales ys */
  int64_t ldy;
  float *ys;             /* [N / 128, M] output scales (FP8 y) */
  int64_t M, N, K;
  int act;
  /* residual epilogue (16/32-bit y): v * gate[m / rpg, n], + y */
  const void *gate;
  int dtg;
  int64_t ldg, rpg;
  int accumulate;
  int vec;               /* wgmma kernel: G8_VEC_* alignment facts */
} g8_args;

/* y rows (and gate rows) allow 16-byte accesses at every 4th column (for
 * 8-bit y: every 16th), set by the wgmma launcher from the pointers */
#define G8_VEC_Y 1
#define G8_VEC_GATE 2

__device__ __forceinline__ float
g8_act (float v, int act)
{
  if (act == DIT_ACT_GELU_TANH) {
    float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    return 0.5f * v * (1.0f + tanhf (u));
  }
  return v;
}

/* ------------------------------------------------------------------------ */
/* the wgmma engine (gemm_fp8_wgmma.cu) */

/* Kernel variants, selectable per call: tile width, ring depth, promotion
 * schedule and grid. */
typedef struct g8w_variant_info {
  const char *name;
  int bn;                /* output columns per CTA (BM is 128) */
  int stages;            /* depth of the TMA ring */
  int overlap;           /* 1: two partial accumulators, the next block's
                          * wgmma runs while this one is promoted */
  int persistent;        /* 1: one CTA per SM walks the tiles; 0: one CTA
                          * per tile */
  size_t smem;           /* dynamic shared memory bytes */
} g8w_variant_info;

int g8w_variant_count (void);
const g8w_variant_info *g8w_variant (int v);

/* Timing probes of the K loop (dit-fp8-bench): kernels that differ from
 * the op in one respect each, named in their info; their results are not
 * the op's and nothing else launches them. */
int g8w_probe_count (void);
const g8w_variant_info *g8w_probe (int i);
dit_status g8w_launch_probe (dit_cuda_backend *cb, const g8_args &a, int i,
    unsigned *smem_set);

/* 1 when the kernels run on the backend's device: compute capability 9.0,
 * the sm_90a binary of every variant, their shared memory, and the
 * driver's tensor-map encoder.  Asks the runtime (callers cache it). */
int g8w_device_ok (dit_cuda_backend *cb);

/* 1 when variant v can compute this call (an FP8 output needs tiles of
 * whole 128-column scale blocks). */
int g8w_takes (int v, const g8_args &a);

/* The variant the engine uses for a call when none is forced. */
int g8w_default_variant (const g8_args &a);

/* Launch variant v on cb's stream; grid_limit > 0 caps the grid (tests
 * make a small grid walk many tiles per CTA).  *smem_set records which
 * variants had their shared-memory limit raised.  The caller checked
 * g8w_device_ok and g8w_takes and the op's preconditions (K a multiple of
 * 128, x and w contiguous 16-byte aligned rows, N a multiple of 8). */
dit_status g8w_launch (dit_cuda_backend *cb, const g8_args &a, int v,
    int grid_limit, unsigned *smem_set);

#endif
