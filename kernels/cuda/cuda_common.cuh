/* cuda_common — what every CUDA op file shares.
 *
 * Error handling: every CUDA, cuBLASLt and launch failure becomes a
 * dit_status (DIT_ERR_DEVICE) whose message carries file:line, the failing
 * call and the runtime's own error string; library code never exits.
 *
 * Tensor access: kernels take raw pointers plus a runtime dtype and load or
 * store through dit_cuda_ld/dit_cuda_st, which convert to and from f32 with
 * the same rounding as the host helpers in dit_tensor.h (round to nearest
 * even), so a CUDA op and its CPU twin see identical inputs and round their
 * f32 results identically.  The dtype switch is uniform across a warp and
 * costs little next to the memory traffic of these elementwise ops.
 *
 * Views: most ops treat a tensor as rows of contiguous columns.  dit_cuda_rows
 * folds a 1-4-D view into (rows, cols, row stride) when its outer dimensions
 * collapse, which is how a KV-cache slice or a fused-QKV column view reaches
 * a kernel without a copy.
 *
 * The per-backend state (stream, cuBLASLt handle, workspace, GEMM plan cache)
 * lives in dit_cuda_backend; op entry points are dit_cuda_<op> and are wired
 * into the vtable in backend_cuda.cu.
 */
#ifndef DIT_CUDA_COMMON_CUH
#define DIT_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cublasLt.h>
#include <stdint.h>

#include "dit_backend.h"
#include "dit_check.h"

/* ------------------------------------------------------------------------ */
/* error macros */

#define DIT_CUDA_TRY(call)                                                    \
  do {                                                                        \
    cudaError_t dit_cuda_err_ = (call);                                       \
    if (dit_cuda_err_ != cudaSuccess)                                         \
      return dit_error (DIT_ERR_DEVICE, "%s:%d: %s failed: %s (%s)",          \
          __FILE__, __LINE__, #call, cudaGetErrorString (dit_cuda_err_),      \
          cudaGetErrorName (dit_cuda_err_));                                  \
  } while (0)

/* After a <<<>>> launch: a bad configuration shows up only here. */
#define DIT_CUDA_CHECK_LAUNCH(what)                                           \
  do {                                                                        \
    cudaError_t dit_cuda_err_ = cudaGetLastError ();                          \
    if (dit_cuda_err_ != cudaSuccess)                                         \
      return dit_error (DIT_ERR_DEVICE, "%s:%d: launch of %s failed: %s",     \
          __FILE__, __LINE__, (what), cudaGetErrorString (dit_cuda_err_));    \
  } while (0)

#define DIT_CUBLAS_TRY(call)                                                  \
  do {                                                                        \
    cublasStatus_t dit_cublas_st_ = (call);                                   \
    if (dit_cublas_st_ != CUBLAS_STATUS_SUCCESS)                              \
      return dit_error (DIT_ERR_DEVICE, "%s:%d: %s failed: %s",               \
          __FILE__, __LINE__, #call, cublasLtGetStatusString (dit_cublas_st_)); \
  } while (0)

/* ------------------------------------------------------------------------ */
/* backend state */

#define DIT_CUDA_WORKSPACE_BYTES (32u << 20)
#define DIT_CUDA_GEMM_CACHE 64
#define DIT_CUDA_GEMM_PATHS 6
/* Staging for converted / gate-scaled GEMM bias vectors (gemm.cu). */
#define DIT_CUDA_STAGE_BYTES (1u << 20)

/* Everything that decides the cuBLASLt algorithm; zero-initialised before
 * filling so that memcmp over padding is well defined. */
typedef struct dit_cuda_gemm_key {
  int64_t m, n, k;
  int64_t ldx, ldw, ldy;
  int dtx, dtw, dty, dtb;
  int epilogue;
  int accumulate;
  int align_x, align_w, align_y, align_b;
  int alpha_vector;           /* gate as cuBLASLt's alpha vector, batched */
  int32_t batch;              /* row groups (alpha_vector only) */
  int64_t ldg;                /* gate row stride = alpha batch stride */
} dit_cuda_gemm_key;

typedef struct dit_cuda_gemm_plan {
  int used;
  dit_cuda_gemm_key key;
  int usable;                 /* 0: cuBLASLt has no algorithm, use the fallback */
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatmulAlgo_t algo;
} dit_cuda_gemm_plan;

/* cuDNN state of a backend (vae_conv_cudnn.cu), made on first use. */
typedef struct dit_cuda_cudnn dit_cuda_cudnn;

/* FP8 GEMM state of a backend (gemm_fp8.cu): the cuBLASLt probe's answers,
 * plans, expanded weight scales and per-shape path counts; made on first
 * use. */
typedef struct dit_cuda_fp8 dit_cuda_fp8;

typedef struct dit_cuda_backend {
  int device;
  cudaStream_t stream;
  cublasLtHandle_t lt;
  void *workspace;
  size_t workspace_bytes;
  int num_sms;
  size_t smem_optin;
  int flash_smem_set;         /* attention.cu raised its kernel's smem limit */
  int attn_wgmma;             /* 0 not asked yet; see attention_internal.cuh */
  signed char attn_fa3[16];   /* flash configuration v >= 7 runs: 0 not asked
                                 yet, 1 yes, -1 no (attention_fa3.cu) */
  void *attn_part;            /* attention_fa3.cu: stream-K partial results */
  int *attn_count;            /* ... and their arrival counters (kept 0) */
  dit_cuda_gemm_plan plans[DIT_CUDA_GEMM_CACHE];
  int next_victim;
  int64_t gemm_calls[DIT_CUDA_GEMM_PATHS]; /* per path, see dit_cuda.h */
  void *stage;                /* DIT_CUDA_STAGE_BYTES for GEMM bias vectors */
  size_t stage_bytes;
  int gemm_gate_scratch;      /* DIT_CUDA_GEMM_GATE=scratch: no alpha vector */
  dit_cuda_cudnn *cudnn;
  int cc_major, cc_minor;     /* compute capability */
  char device_name[256];
  dit_cuda_fp8 *fp8;
} dit_cuda_backend;

static inline dit_cuda_backend *
dit_cuda_impl (dit_backend *be)
{
  return (dit_cuda_backend *) be->impl;
}

/* ------------------------------------------------------------------------ */
/* device-side element access */

__device__ __forceinline__ float
dit_cuda_ld (const void *p, int dt, int64_t i)
{
  switch (dt) {
    case DIT_F32: return ((const float *) p)[i];
    case DIT_BF16: return __bfloat162float (((const __nv_bfloat16 *) p)[i]);
    default: return __half2float (((const __half *) p)[i]);
  }
}

__device__ __forceinline__ void
dit_cuda_st (void *p, int dt, int64_t i, float v)
{
  switch (dt) {
    case DIT_F32: ((float *) p)[i] = v; break;
    case DIT_BF16: ((__nv_bfloat16 *) p)[i] = __float2bfloat16_rn (v); break;
    default: ((__half *) p)[i] = __float2half_rn (v); break;
  }
}

/* A value of a tensor whose dtype is a template argument (float or
 * __nv_bfloat16), for kernels specialised on their dtypes. */
__device__ __forceinline__ float
dit_cuda_to_f32 (float v)
{
  return v;
}

__device__ __forceinline__ float
dit_cuda_to_f32 (__nv_bfloat16 v)
{
  return __bfloat162float (v);
}

/* Sum of v over a block of THREADS threads (a multiple of 32); every
 * thread gets the result.  red: THREADS / 32 floats of shared memory,
 * free again when this returns (the leading barrier lets a kernel call it
 * twice in a row).  One fixed order of additions, so the LayerNorms
 * (plain, fused and FP8-writing) and the TP sums of squares that use it
 * agree bit for bit. */
template <int THREADS>
__device__ __forceinline__ float
dit_block_sum (float v, float *red)
{
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads ();
  if (lane == 0)
    red[warp] = v;
  __syncthreads ();
  v = lane < THREADS / 32 ? red[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  return v;
}

/* Row kernels that hold a whole row in registers (layernorm_fp8,
 * layernorm_modulate) are instantiated for NB = 1 .. DIT_CUDA_ROW_NB_MAX,
 * 1024 columns each: dit_cuda_row_nb gives a row's NB, 0 for a row wider
 * than 6144 columns (those take the streaming kernels), and
 * DIT_CUDA_ROW_NB_CASES (X) expands X (n) for every NB, for the switch that
 * picks an instantiation. */
#define DIT_CUDA_ROW_NB_MAX 6
#define DIT_CUDA_ROW_NB_CASES(X) X (1) X (2) X (3) X (4) X (5) X (6)

static inline int
dit_cuda_row_nb (int64_t cols)
{
  return cols > 0 && cols <= 1024 * DIT_CUDA_ROW_NB_MAX
      ? (int) ((cols + 1023) / 1024) : 0;
}

/* Grid-stride loops over int64 element counts. */
#define DIT_CUDA_GRID_LOOP(i, n)                                              \
  for (int64_t i = (int64_t) blockIdx.x * blockDim.x + threadIdx.x; i < (n);  \
       i += (int64_t) gridDim.x * blockDim.x)

static inline unsigned
dit_cuda_grid_1d (int64_t n, int threads)
{
  int64_t b = (n + threads - 1) / threads;
  if (b < 1)
    b = 1;
  if (b > 65535 * 16)
    b = 65535 * 16;
  return (unsigned) b;
}

/* ------------------------------------------------------------------------ */
/* host-side validation shared by the ops (messages name op and tensor) */

/* Views and checks of kernels/dit_check.h on the CUDA device (the per-op
 * checkers are called by the op files directly). */
static inline dit_status
dit_cuda_check_tensor (const char *op, const char *name, const dit_tensor *t)
{
  return dit_check_tensor (DIT_DEVICE_CUDA, op, name, t);
}

/* Fold a view into rows of contiguous columns; fails (with a message) when
 * the outer dimensions do not collapse into one row stride. */
static inline dit_status
dit_cuda_rows (const char *op, const char *name, const dit_tensor *t,
    int64_t *rows, int64_t *cols, int64_t *ld)
{
  dit_rows v;
  DIT_TRY (dit_check_rows (DIT_DEVICE_CUDA, op, name, t, &v));
  *rows = v.rows;
  *cols = v.cols;
  *ld = v.ld;
  return DIT_OK;
}

static inline dit_status
dit_cuda_check_vector (const char *op, const char *name, const dit_tensor *t,
    int64_t n)
{
  dit_rows v;
  return dit_check_vector (DIT_DEVICE_CUDA, op, name, t, n, &v);
}

/* An FP8 pair: dit_check_fp8_rows on the CUDA device. */
static inline dit_status
dit_cuda_fp8_rows (const char *op, const char *name, const dit_tensor *q,
    const dit_tensor *scale, int64_t block, int64_t *rows, int64_t *cols,
    int64_t *ld)
{
  dit_rows v;
  DIT_TRY (dit_check_fp8_rows (DIT_DEVICE_CUDA, op, name, q, scale, block, &v,
      NULL));
  *rows = v.rows;
  *cols = v.cols;
  *ld = v.ld;
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* op entry points (one file each) */

dit_status dit_cuda_gemm (dit_backend *be, const dit_gemm_params *p);
void dit_cuda_gemm_cache_clear (dit_cuda_backend *cb);
dit_status dit_cuda_layernorm (dit_backend *be, const dit_layernorm_params *p);
dit_status dit_cuda_rmsnorm (dit_backend *be, const dit_rmsnorm_params *p);
dit_status dit_cuda_modulate (dit_backend *be, const dit_modulate_params *p);
dit_status dit_cuda_residual (dit_backend *be, const dit_residual_params *p);
dit_status dit_cuda_add (dit_backend *be, const dit_add_params *p);
dit_status dit_cuda_unary (dit_backend *be, const dit_unary_params *p);
dit_status dit_cuda_copy (dit_backend *be, const dit_copy_params *p);
dit_status dit_cuda_rope (dit_backend *be, const dit_rope_params *p);
dit_status dit_cuda_attention (dit_backend *be, const dit_attn_params *p);
dit_status dit_cuda_patchify (dit_backend *be, const dit_patchify_params *p);
dit_status dit_cuda_unpatchify (dit_backend *be, const dit_unpatchify_params *p);
dit_status dit_cuda_timestep (dit_backend *be, const dit_timestep_params *p);
dit_status dit_cuda_flow_step (dit_backend *be, const dit_flow_step_params *p);
dit_status dit_cuda_noise (dit_backend *be, const dit_noise_params *p);
dit_status dit_cuda_rmsnorm_sumsq (dit_backend *be,
    const dit_rmsnorm_sumsq_params *p);
dit_status dit_cuda_rmsnorm_apply (dit_backend *be,
    const dit_rmsnorm_apply_params *p);
dit_status dit_cuda_synthetic_normal (dit_backend *be, void *dst, dit_dtype dt,
    int64_t begin, int64_t n, uint64_t seed, uint64_t stream, double scale,
    double offset);

/* fused ops (fused.cu) and op recording (graph.cu) */
dit_status dit_cuda_layernorm_modulate (dit_backend *be,
    const dit_layernorm_modulate_params *p);
dit_status dit_cuda_qk_norm_rope (dit_backend *be,
    const dit_qk_norm_rope_params *p);
dit_status dit_cuda_noise_flow (dit_backend *be, const dit_noise_flow_params *p);
dit_status dit_cuda_quantize_fp8 (dit_backend *be,
    const dit_quantize_fp8_params *p);
dit_status dit_cuda_layernorm_fp8 (dit_backend *be,
    const dit_layernorm_fp8_params *p);
dit_status dit_cuda_gemm_fp8 (dit_backend *be, const dit_gemm_fp8_params *p);
dit_status dit_cuda_dequantize_fp8 (dit_backend *be,
    const dit_dequantize_fp8_params *p);
dit_status dit_cuda_fp8_check (dit_backend *be);
void dit_cuda_fp8_free (dit_cuda_backend *cb);
/* Quantize rows x [rows, cols] (ldx) into codes (contiguous) and block
 * scales on stream s: the quantize op's kernel, reused by the GEMM for an
 * FP8 output it finishes in two passes. */
dit_status dit_cuda_launch_quantize_fp8 (cudaStream_t s, const void *x,
    int dtx, int64_t ldx, void *q, float *scale, int64_t rows, int64_t cols,
    int64_t block);
dit_status dit_cuda_graph_begin (dit_backend *be);
dit_status dit_cuda_graph_end (dit_backend *be, dit_graph **out);
dit_status dit_cuda_graph_launch (dit_backend *be, dit_graph *g);
void dit_cuda_graph_free (dit_backend *be, dit_graph *g);

/* Launchers other files reuse (stream-ordered, never synchronise). */
dit_status dit_cuda_launch_unary (cudaStream_t s, const void *x, int dtx,
    int64_t ldx, void *y, int dty, int64_t ldy, int64_t rows, int64_t cols,
    int act);

#endif
