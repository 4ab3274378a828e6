/* attention_hopper — the Hopper (sm_90a) building blocks the wgmma
 * attention kernels share: the bf16 m64n128k16 products and their operand
 * lists, bf16 packing and exp2, on top of hopper.cuh (descriptors, the
 * wgmma issue/commit/wait sequence and its register pinning, mbarriers,
 * TMA loads and named barriers, shared with the FP8 GEMM).
 *
 * attention_wgmma.cu (configurations 5 and 6) and attention_fa3.cuh
 * (configurations 7 and up) include it.  Everything here exists only where
 * __CUDA_ARCH_FEAT_SM90_ALL is defined (the sm_90a pass of nvcc); the
 * kernels that use it compile to a trap elsewhere.
 */
#ifndef DIT_ATTENTION_HOPPER_CUH
#define DIT_ATTENTION_HOPPER_CUH

#include "attention_internal.cuh"
#include "hopper.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

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

#endif /* __CUDA_ARCH_FEAT_SM90_ALL */

#endif
