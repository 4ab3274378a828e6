/* attention_hopper — the Hopper (sm_90a) building blocks the wgmma
 * attention kernels share: shared-memory matrix descriptors, the wgmma
 * issue/commit/wait sequence and its register pinning, the m64n128k16
 * products, mbarriers, TMA loads and named barriers.
 *
 * attention_wgmma.cu (configurations 5 and 6) and attention_fa3.cuh
 * (configurations 7 and up) include it.  Everything here exists only where
 * __CUDA_ARCH_FEAT_SM90_ALL is defined (the sm_90a pass of nvcc); the
 * kernels that use it compile to a trap elsewhere.
 */
#ifndef DIT_ATTENTION_HOPPER_CUH
#define DIT_ATTENTION_HOPPER_CUH

#include "attention_internal.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

/* Shared-memory matrix descriptor: start address, leading and stride byte
 * offsets (all >> 4, 14 bits each at bits 0, 16, 32), base offset 0 (every
 * swizzle pattern starts on a 1024-byte boundary), swizzle mode 1 = 128 B
 * at bits 62-63. */
__device__ __forceinline__ uint64_t
wg_desc (uint32_t addr, uint32_t lbo, uint32_t sbo)
{
  return (uint64_t) ((addr & 0x3ffff) >> 4)
      | (uint64_t) ((lbo & 0x3ffff) >> 4) << 16
      | (uint64_t) ((sbo & 0x3ffff) >> 4) << 32
      | (uint64_t) 1 << 62;
}

__device__ __forceinline__ void
wg_mma_fence (void)
{
  asm volatile ("wgmma.fence.sync.aligned;\n" ::: "memory");
}

__device__ __forceinline__ void
wg_mma_commit (void)
{
  asm volatile ("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

template <int N>
__device__ __forceinline__ void
wg_mma_wait (void)
{
  asm volatile ("wgmma.wait_group.sync.aligned %0;\n" :: "n" (N) : "memory");
}

/* Pin register values at this point of the instruction stream: the
 * compiler may not move their reads or writes across it, so ordinary code
 * touches wgmma operands only between wait and the next fence. */
__device__ __forceinline__ void
wg_pin (float *r, int n)
{
#pragma unroll
  for (int i = 0; i < n; i++)
    asm volatile ("" : "+f" (r[i]) :: "memory");
}

__device__ __forceinline__ void
wg_pin (unsigned *r, int n)
{
#pragma unroll
  for (int i = 0; i < n; i++)
    asm volatile ("" : "+r" (r[i]) :: "memory");
}

#define WG_ACC_LIST                                                           \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "    \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, "    \
  "%30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "    \
  "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, "    \
  "%58, %59, %60, %61, %62, %63"
#define WG_ACC8(d, i)                                                         \
  "+f" (d[i]), "+f" (d[i + 1]), "+f" (d[i + 2]), "+f" (d[i + 3]),             \
  "+f" (d[i + 4]), "+f" (d[i + 5]), "+f" (d[i + 6]), "+f" (d[i + 7])
#define WG_ACC64(d)                                                           \
  WG_ACC8 (d, 0), WG_ACC8 (d, 8), WG_ACC8 (d, 16), WG_ACC8 (d, 24),           \
  WG_ACC8 (d, 32), WG_ACC8 (d, 40), WG_ACC8 (d, 48), WG_ACC8 (d, 56)

/* d[64 x 128] (+)= A[64 x 16] B[16 x 128], A and B K-major in shared
 * memory; SCALE_D 0 overwrites d. */
template <int SCALE_D>
__device__ __forceinline__ void
wg_mma_ss (float *d, uint64_t desc_a, uint64_t desc_b)
{
  asm volatile ("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{" WG_ACC_LIST "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : WG_ACC64 (d)
      : "l" (desc_a), "l" (desc_b), "r" (SCALE_D));
}

/* d[64 x 128] += A[64 x 16] B[16 x 128], A in registers (four bf16 pairs
 * per thread), B MN-major in shared memory (imm-trans-b = 1). */
__device__ __forceinline__ void
wg_mma_rs_tb (float *d, const unsigned *a, uint64_t desc_b)
{
  asm volatile ("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{" WG_ACC_LIST "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : WG_ACC64 (d)
      : "r" (a[0]), "r" (a[1]), "r" (a[2]), "r" (a[3]), "l" (desc_b),
        "r" (1));
}

__device__ __forceinline__ unsigned
wg_pack_bf16 (float lo, float hi)
{
  __nv_bfloat162 v = __floats2bfloat162_rn (lo, hi);
  return *(unsigned *) &v;
}

/* 2^x on the special-function unit; -inf gives +0. */
__device__ __forceinline__ float
wg_exp2 (float x)
{
  float y;
  asm ("ex2.approx.ftz.f32 %0, %1;" : "=f" (y) : "f" (x));
  return y;
}

/* ------------------------------------------------------------------------ */
/* mbarriers, TMA and named barriers (warp-specialised kernels) */

__device__ __forceinline__ void
ws_bar_init (uint32_t bar, unsigned count)
{
  asm volatile ("mbarrier.init.shared::cta.b64 [%0], %1;\n"
      :: "r" (bar), "r" (count) : "memory");
}

__device__ __forceinline__ void
ws_bar_expect (uint32_t bar, unsigned bytes)
{
  asm volatile ("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n"
      :: "r" (bar), "r" (bytes) : "memory");
}

__device__ __forceinline__ void
ws_bar_arrive (uint32_t bar)
{
  asm volatile ("mbarrier.arrive.shared::cta.b64 _, [%0];\n"
      :: "r" (bar) : "memory");
}

/* Spin until the phase of parity `parity` of the barrier has completed. */
__device__ __forceinline__ void
ws_bar_wait (uint32_t bar, unsigned parity)
{
  asm volatile ("{\n.reg .pred done;\n"
      "WS_WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WS_WAIT_%=;\n}\n"
      :: "r" (bar), "r" (parity) : "memory");
}

/* One TMA box (64 columns x box rows) at column c0, row r0 into smem,
 * completing `bar`'s transaction count. */
__device__ __forceinline__ void
ws_tma_load (uint32_t dst, const CUtensorMap *map, int c0, int r0,
    uint32_t bar)
{
  asm volatile ("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier"
      "::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
      :: "r" (dst), "l" ((uint64_t) map), "r" (c0), "r" (r0), "r" (bar)
      : "memory");
}

__device__ __forceinline__ void
ws_named_sync (int id)
{
  asm volatile ("bar.sync %0, 256;\n" :: "r" (id) : "memory");
}

__device__ __forceinline__ void
ws_named_arrive (int id)
{
  asm volatile ("bar.arrive %0, 256;\n" :: "r" (id) : "memory");
}

#endif /* __CUDA_ARCH_FEAT_SM90_ALL */

#endif
