/* fp8.cuh — device side of the FP8 (e4m3) rule of kernels/dit_fp8.h, for
 * every kernel that quantizes where it produces a value: the quantize and
 * LayerNorm kernels (fp8.cu), the attention epilogues (attention*.cu) and
 * the FP8 GEMM's epilogue (gemm_fp8.cu).
 *
 * The arithmetic is the host rule's, operation for operation: the floor, the
 * two IEEE divisions (this build never uses --use_fast_math, so '/' is
 * correctly rounded), one multiply, and cvt.rn.satfinite to e4m3 (round to
 * nearest even, saturate at ±448, NaN -> 0x7f), so a kernel that quantizes
 * the same f32 values as the CPU reference writes the same codes.
 *
 * An epilogue that holds a row's block spread over a group of lanes (the
 * flash attention kernels: a quad of 4 lanes holds one query row of one
 * head, 32 values each) computes the block's amax with fp8_group_amax and
 * then stores its values with fp8_store2 / fp8_store4.
 */
#ifndef DIT_CUDA_FP8_CUH
#define DIT_CUDA_FP8_CUH

#include <cuda_fp8.h>
#include <stdint.h>

#include "dit_fp8.h"

__device__ __forceinline__ float
fp8_dev_scale (float amax)
{
  float a = amax > DIT_FP8_AMAX_FLOOR ? amax : DIT_FP8_AMAX_FLOOR;
  return a / DIT_FP8_MAX;
}

__device__ __forceinline__ float
fp8_dev_inv_scale (float amax)
{
  float a = amax > DIT_FP8_AMAX_FLOOR ? amax : DIT_FP8_AMAX_FLOOR;
  return DIT_FP8_MAX / a;
}

/* One code: e4m3(v * inv), RN, saturating. */
__device__ __forceinline__ uint8_t
fp8_dev_code (float v, float inv)
{
  return (uint8_t) __nv_cvt_float_to_fp8 (__fmul_rn (v, inv), __NV_SATFINITE,
      __NV_E4M3);
}

/* Two codes packed little-endian (v0 at the lower address). */
__device__ __forceinline__ uint16_t
fp8_dev_code2 (float v0, float v1, float inv)
{
  return (uint16_t) (fp8_dev_code (v0, inv) | (fp8_dev_code (v1, inv) << 8));
}

__device__ __forceinline__ float
fp8_dev_decode (uint8_t b)
{
  __half_raw h = __nv_cvt_fp8_to_halfraw ((__nv_fp8_storage_t) b, __NV_E4M3);
  return __half2float (__half (h));
}

/* Max of |v| over the lanes of a group of `width` consecutive lanes
 * (width a power of two <= 32, the group aligned to it).  fmaxf ignores a
 * NaN operand, as the host rule does. */
__device__ __forceinline__ float
fp8_group_amax (float a, int width)
{
  for (int o = width / 2; o > 0; o >>= 1)
    a = fmaxf (a, __shfl_xor_sync (0xffffffffu, a, o));
  return a;
}

/* Store 2 consecutive codes at byte offset off of p (off even). */
__device__ __forceinline__ void
fp8_store2 (void *p, int64_t off, float v0, float v1, float inv)
{
  *(uint16_t *) ((uint8_t *) p + off) = fp8_dev_code2 (v0, v1, inv);
}

#endif
