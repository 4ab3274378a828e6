/* hopper — the Hopper (sm_90a) building blocks every warp-specialised
 * wgmma kernel shares: shared-memory matrix descriptors, the wgmma
 * fence/commit/wait sequence and its register pinning, mbarriers, TMA
 * loads and named barriers; on the host, the driver's tensor-map encoder.
 *
 * The attention kernels (attention_hopper.cuh adds their bf16 products)
 * and the FP8 GEMM (gemm_fp8_wgmma.cu) include it.  The device helpers
 * exist only where __CUDA_ARCH_FEAT_SM90_ALL is defined (the sm_90a pass
 * of nvcc); the kernels that use them compile to a trap elsewhere and are
 * launched only after a run-time check saw the sm_90a binary on a 9.0
 * device.
 */
#ifndef DIT_CUDA_HOPPER_CUH
#define DIT_CUDA_HOPPER_CUH

#include "cuda_common.cuh"

#include <cudaTypedefs.h>   /* CUtensorMap, PFN_cuTensorMapEncodeTiled */

/* ------------------------------------------------------------------------ */
/* host: TMA tensor maps (tma.cu) */

/* 1 when the driver the runtime loaded has cuTensorMapEncodeTiled (looked
 * up once per process, no libcuda link). */
int dit_cuda_tma_present (void);

/* A 2-D tensor map over rows x cols elements of `type` (row pitch
 * ld_bytes, a multiple of 16; base 16-byte aligned) read in boxes of
 * box_cols x box_rows with the 128-byte swizzle (box_cols x element size
 * must be 128 bytes), rows and columns past the end zero-filled;
 * DIT_ERR_UNSUPPORTED naming `op` and `what` when the driver refuses it
 * or has no encoder. */
dit_status dit_cuda_tensor_map_2d (CUtensorMap *map, CUtensorMapDataType type,
    const void *base, int64_t rows, int64_t cols, int64_t ld_bytes,
    unsigned box_cols, unsigned box_rows, const char *op, const char *what);

/* ------------------------------------------------------------------------ */
/* device */

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

/* One TMA box of the map (attention: 64 bf16 columns x box rows; the FP8
 * GEMM: 128 bytes x box rows) at column c0, row r0 into smem, completing
 * `bar`'s transaction count. */
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

/* One poll of the barrier: 1 when the phase of parity `parity` has
 * completed (try_wait may suspend the thread for a short while first). */
__device__ __forceinline__ int
hp_bar_try (uint32_t bar, unsigned parity)
{
  unsigned done;
  asm volatile ("{\n.reg .pred p;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n}\n"
      : "=r" (done) : "r" (bar), "r" (parity) : "memory");
  return (int) done;
}

__device__ __forceinline__ uint64_t
hp_globaltimer (void)
{
  uint64_t t;
  asm volatile ("mov.u64 %0, %%globaltimer;" : "=l" (t));
  return t;
}

/* ws_bar_wait that traps instead of hanging: a phase that has not
 * completed after `limit_ns` of polling means a broken protocol (a lost
 * arrival, a TMA that never lands), and an error the host sees beats a
 * process that never returns.  The clock is read only once the first
 * poll failed. */
__device__ __forceinline__ void
hp_bar_wait_bounded (uint32_t bar, unsigned parity, uint64_t limit_ns)
{
  if (hp_bar_try (bar, parity))
    return;
  const uint64_t t0 = hp_globaltimer ();
  while (!hp_bar_try (bar, parity))
    if (hp_globaltimer () - t0 > limit_ns)
      __trap ();
}

/* Fetch a tensor map (a __grid_constant__ kernel parameter) into the TMA
 * unit's descriptor cache ahead of its first use. */
__device__ __forceinline__ void
hp_tma_prefetch (const CUtensorMap *map)
{
  asm volatile ("prefetch.tensormap [%0];\n"
      :: "l" ((uint64_t) map) : "memory");
}

/* Operand lists for wgmma accumulators: HP_R10(p) is "%p0, ..., %p9",
 * HP_A8(d, i) the constraints of d[i .. i + 7] (read and written). */
#define HP_R2(p) "%" #p "0, %" #p "1"
#define HP_R4(p) HP_R2 (p) ", %" #p "2, %" #p "3"
#define HP_R6(p) HP_R4 (p) ", %" #p "4, %" #p "5"
#define HP_R8(p) HP_R6 (p) ", %" #p "6, %" #p "7"
#define HP_R10(p) HP_R8 (p) ", %" #p "8, %" #p "9"
#define HP_A8(d, i)                                                           \
  "+f" (d[i]), "+f" (d[i + 1]), "+f" (d[i + 2]), "+f" (d[i + 3]),             \
  "+f" (d[i + 4]), "+f" (d[i + 5]), "+f" (d[i + 6]), "+f" (d[i + 7])

#endif /* __CUDA_ARCH_FEAT_SM90_ALL */

#endif
