/* mma_sync — the sm_80 building blocks every mma.sync kernel uses: 16-byte
 * cp.async into shared memory, ldmatrix, the bf16 m16n8k16 MMA with f32
 * accumulators, bf16 packing and 2^x on the special-function unit.
 *
 * One definition each, so that the attention kernels (attention.cu,
 * attention_d384.cu, the Hopper ones' softmax), the FP8 GEMM and the VAE's
 * conv kernel issue exactly the same instructions.
 */
#ifndef DIT_MMA_SYNC_CUH
#define DIT_MMA_SYNC_CUH

#include <cuda_bf16.h>

/* Copy 16 bytes, of which the first `src_bytes` (0-16) are read from gmem
 * and the rest zero-filled.  .cg bypasses L1 (data read once per block),
 * .ca keeps it (data that neighbouring threads read again). */
__device__ __forceinline__ void
ptx_cp_async16_cg (void *smem, const void *gmem, int src_bytes)
{
  unsigned s = (unsigned) __cvta_generic_to_shared (smem);
  asm volatile ("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
      :: "r" (s), "l" (gmem), "r" (src_bytes));
}

__device__ __forceinline__ void
ptx_cp_async16_ca (void *smem, const void *gmem, int src_bytes)
{
  unsigned s = (unsigned) __cvta_generic_to_shared (smem);
  asm volatile ("cp.async.ca.shared.global [%0], [%1], 16, %2;\n"
      :: "r" (s), "l" (gmem), "r" (src_bytes));
}

/* 16 bytes, or 16 zeros where !pred (nothing is read then). */
__device__ __forceinline__ void
ptx_cp_async16 (void *smem, const void *gmem, bool pred)
{
  ptx_cp_async16_cg (smem, gmem, pred ? 16 : 0);
}

__device__ __forceinline__ void
ptx_cp_commit (void)
{
  asm volatile ("cp.async.commit_group;\n" ::);
}

template <int N>
__device__ __forceinline__ void
ptx_cp_wait (void)
{
  asm volatile ("cp.async.wait_group %0;\n" :: "n" (N));
}

__device__ __forceinline__ void
ptx_ldmatrix_x4 (unsigned &r0, unsigned &r1, unsigned &r2, unsigned &r3,
    const void *smem)
{
  unsigned s = (unsigned) __cvta_generic_to_shared (smem);
  asm volatile ("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
      : "=r" (r0), "=r" (r1), "=r" (r2), "=r" (r3) : "r" (s));
}

__device__ __forceinline__ void
ptx_ldmatrix_x4 (unsigned r[4], const void *smem)
{
  ptx_ldmatrix_x4 (r[0], r[1], r[2], r[3], smem);
}

__device__ __forceinline__ void
ptx_ldmatrix_x4_trans (unsigned &r0, unsigned &r1, unsigned &r2,
    unsigned &r3, const void *smem)
{
  unsigned s = (unsigned) __cvta_generic_to_shared (smem);
  asm volatile ("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
      : "=r" (r0), "=r" (r1), "=r" (r2), "=r" (r3) : "r" (s));
}

/* c += a · b for one m16n8k16 tile: a row-major bf16 (4 registers), b
 * column-major bf16 (2), c f32 (4). */
__device__ __forceinline__ void
ptx_mma_bf16 (float *c, const unsigned *a, unsigned b0, unsigned b1)
{
  asm volatile ("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f" (c[0]), "+f" (c[1]), "+f" (c[2]), "+f" (c[3])
      : "r" (a[0]), "r" (a[1]), "r" (a[2]), "r" (a[3]), "r" (b0), "r" (b1));
}

__device__ __forceinline__ unsigned
ptx_pack_bf16 (float lo, float hi)
{
  __nv_bfloat162 v = __floats2bfloat162_rn (lo, hi);
  return *(unsigned *) &v;
}

/* 2^x on the special-function unit; -inf gives +0, which masked logits
 * rely on. */
__device__ __forceinline__ float
ptx_exp2 (float x)
{
  float y;
  asm ("ex2.approx.ftz.f32 %0, %1;" : "=f" (y) : "f" (x));
  return y;
}

#endif
