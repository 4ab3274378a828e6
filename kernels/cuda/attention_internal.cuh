/* attention_internal — what the attention files share.
 *
 * attention.cu holds the op (validation, dispatch, the generic and the
 * mma.sync flash kernels); attention_wgmma.cu holds the Hopper wgmma flash
 * kernels 5 and 6, attention_fa3*.cu configurations 7 and up.  All see the
 * same argument block and the same visibility rule, so that every kernel
 * masks exactly the same keys.
 *
 * cb->flash_smem_set is attention's per-backend bit set: bit v (1-12) says
 * the shared-memory limit of flash configuration v was raised;
 * cb->attn_wgmma caches whether the wgmma kernels can run on the backend's
 * device (asked once per backend): 0 not asked, -1 configuration 5 does
 * not run, 1 it runs (6 not asked yet), 2 both 5 and 6 run, 3 only 5;
 * cb->attn_fa3[v] the same for configurations 7 and up (attention_fa3.cu).
 */
#ifndef DIT_ATTENTION_INTERNAL_CUH
#define DIT_ATTENTION_INTERNAL_CUH

#include "cuda_common.cuh"
#include "fp8.cuh"
#include "mma_sync.cuh"

#include <cudaTypedefs.h>   /* CUtensorMap, PFN_cuTensorMapEncodeTiled */

typedef struct attn_args {
  const void *q, *k, *v;
  void *o;
  int dtq, dtk, dtv, dto;
  int64_t ldq, ldk, ldv, ldo;
  int64_t L, N;
  int heads, d;
  float scale;
  int64_t bias_begin, bias_end;
  float log_bias;
  int64_t causal_block, q_pos0;
  const void *pos_bias;      /* [num_buckets, heads] or NULL */
  int dtpb;
  int num_buckets, max_distance, bidirectional;
  int64_t key_len;           /* > 0: keys >= key_len masked */
  float *o_scale;            /* FP8 output: [heads, L] scales, o holds e4m3
                              * codes (1 byte each, ldo in bytes); NULL:
                              * o of dtype dto */
} attn_args;

/* FP8 output (dit_attn_params.o_scale), the recipe every configuration's
 * epilogue follows, so that a new one supports it the same way:
 *  1. normalise as usual: v = o * (1 / l);
 *  2. amax of |v| over the row's head_dim values (all lanes that hold them,
 *     before any lane leaves for a row >= L, because the reduction
 *     shuffles with a full mask): attn_fp8_amax_quad for the mma/wgmma
 *     layout where a quad of lanes holds one row of one head;
 *  3. inv = fp8_dev_inv_scale (amax); store code pairs with
 *     fp8_store2 (a.o, row * a.ldo + col, v0, v1, inv) (byte offsets);
 *  4. one lane per (row, head) stores a.o_scale[h * a.L + row] =
 *     fp8_dev_scale (amax).
 * The codes and scales then equal the CPU reference's for the same f32
 * values (kernels/cpu/attention.c quantizes its normalised f32 row). */
__device__ __forceinline__ float
attn_fp8_amax_quad (float lane_amax)
{
  return fp8_group_amax (lane_amax, 4);
}

/* One past the last key query row r may see (the launchers of the
 * persistent kernels ask it on the host too, to plan their schedules). */
__host__ __device__ __forceinline__ int64_t
attn_key_end (const attn_args &a, int64_t r)
{
  int64_t n = a.key_len > 0 && a.key_len < a.N ? a.key_len : a.N;
  if (a.causal_block <= 0)
    return n;
  int64_t e = ((a.q_pos0 + r) / a.causal_block + 1) * a.causal_block;
  return e < n ? e : n;
}

/* The head_dim 384 mma.sync kernel (attention_d384.cu): 1 when it takes
 * these inputs (and DIT_ATTN_D384=mma asks for it), then its launch. */
int attn_d384_ok (const attn_args &a, size_t smem_optin);
dit_status attn_launch_d384 (dit_cuda_backend *cb, const attn_args &a);

/* 1 when the wgmma kernel runs on this backend's device: compute
 * capability 9.0 and an sm_90a binary of the kernel (a compute_90 PTX
 * build has no wgmma), with enough opt-in shared memory. */
int attn_wgmma_supported (dit_cuda_backend *cb);

/* Launch the wgmma kernel (flash configuration 5) on bf16 q/k/v with
 * head_dim 128 and 16-byte aligned rows; the caller has checked both. */
dit_status attn_launch_wgmma (dit_cuda_backend *cb, const attn_args &a);

/* 1 when the warp-specialised TMA kernel (flash configuration 6) runs:
 * what attn_wgmma_supported needs, plus its sm_90a binary and the
 * driver's cuTensorMapEncodeTiled. */
int attn_ws_supported (dit_cuda_backend *cb);

/* Launch flash configuration 6 (same preconditions as configuration 5);
 * DIT_ERR_UNSUPPORTED when a tensor map cannot be encoded. */
dit_status attn_launch_ws (dit_cuda_backend *cb, const attn_args &a);

/* 1 when flash configuration `variant` (7 and up, attention_fa3.cu) runs
 * on the backend's device: what attn_wgmma_supported needs, its sm_90a
 * binary, its shared memory and the driver's cuTensorMapEncodeTiled. */
int attn_fa3_supported (dit_cuda_backend *cb, int variant);

/* Launch configuration `variant` >= 7 with work schedule `sched`
 * (DIT_CUDA_ATTN_SCHED_*), same preconditions as configuration 5;
 * DIT_ERR_UNSUPPORTED for what it cannot take (a non-positive scale, a
 * tensor map the driver refuses), which configuration 6 then takes. */
dit_status attn_launch_fa3 (dit_cuda_backend *cb, const attn_args &a,
    int variant, int sched);

/* 1 when the driver has cuTensorMapEncodeTiled (looked up once). */
int attn_tma_encoder_present (void);

/* A 2-D bf16 TMA tensor map over rows x cols (row pitch ld elements) read
 * in boxes of 64 columns (128 bytes, the swizzle span) x box_rows rows,
 * 128-byte swizzled, rows past the end zero-filled; DIT_ERR_UNSUPPORTED
 * (naming `what`) when the driver refuses it. */
dit_status attn_tensor_map (CUtensorMap *map, const void *base, int64_t rows,
    int64_t cols, int64_t ld, unsigned box_rows, const char *what);

#endif
