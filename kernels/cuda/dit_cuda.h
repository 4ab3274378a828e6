/* dit_cuda — the few CUDA-backend details a host program may need beyond
 * the backend vtable: the stream every op of a backend is ordered on (for
 * timing with events, or for handing work to another CUDA library in the
 * same order).  C-callable; the stream comes back as an opaque pointer so
 * that callers without CUDA headers can still link.
 */
#ifndef DIT_CUDA_H
#define DIT_CUDA_H

#include "dit_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backend's cudaStream_t, or NULL when `be` is not a CUDA backend. */
void *dit_backend_cuda_stream (dit_backend *be);

/* Attention with a chosen kernel, for tests and benchmarks that compare
 * the implementations on the same inputs:
 *   0  the generic f32 kernel (any dtype and head_dim)
 *   1  flash, 4 warps x 16 query rows      3  flash, 4 warps x 32 rows
 *   2  flash, 8 warps x 16 query rows      4  flash, 8 warps x 32 rows
 *   5  flash on Hopper wgmma, 2 warpgroups x 64 rows: only on a compute
 *      capability 9.0 device with the sm_90a build, else DIT_ERR_UNSUPPORTED
 *   6  flash on Hopper wgmma, warp-specialised: a TMA producer warpgroup
 *      and two ping-pong consumer warpgroups x 64 rows; as 5, and also
 *      needs the driver's cuTensorMapEncodeTiled, else DIT_ERR_UNSUPPORTED
 *   7-12  FlashAttention-3 style (kernels/cuda/attention_fa3.cu): 6's
 *      block with deeper K/V rings, other key tiles, a softmax that can
 *      overlap both of a warpgroup's GEMMs, and a work schedule that
 *      shares key tiles between blocks; as 6, and also a positive scale
 *      (else DIT_ERR_UNSUPPORTED):
 *        7  128-key tiles, K/V rings 2/2      10  144-key tiles, rings 3/2
 *        8  128-key tiles, rings 3/3          11  80-key tiles, rings 3/3,
 *        9  176-key tiles, rings 2/2              3 softmax stages
 *                                             12  7 without ping-pong
 * The flash kernels take bf16 q/k/v with head_dim 128 (other inputs fall
 * back to the generic one).  dit_attention uses the default configuration
 * named in kernels/cuda/attention.cu (6 where supported, else 5, else 1). */
dit_status dit_cuda_attention_variant (dit_backend *be,
    const dit_attn_params *p, int variant);

#define DIT_CUDA_ATTN_VARIANTS 13   /* configurations 0 .. 12 */

/* Work schedules of configurations 7-12: the order of the work items (one
 * 128-row block of one head each) and which of them are shared out between
 * blocks by key tiles (stream-K, merged by the last piece to finish):
 *   0 AUTO        3 where every item has the same length, else 5
 *   1 ROWS        whole items, row blocks slowest (configuration 6's order)
 *   2 HEADS       whole items, heads slowest
 *   3 HEADS_TAIL  heads slowest; the last one to two waves stream-K
 *   4 ROWS_TAIL   row blocks slowest; the last one to two waves stream-K
 *   5 HEADS_ALL   heads slowest; every item stream-K
 *   6 ROWS_ALL    row blocks slowest; every item stream-K */
#define DIT_CUDA_ATTN_SCHED_AUTO 0
#define DIT_CUDA_ATTN_SCHED_ROWS 1
#define DIT_CUDA_ATTN_SCHED_HEADS 2
#define DIT_CUDA_ATTN_SCHED_HEADS_TAIL 3
#define DIT_CUDA_ATTN_SCHED_ROWS_TAIL 4
#define DIT_CUDA_ATTN_SCHED_HEADS_ALL 5
#define DIT_CUDA_ATTN_SCHED_ROWS_ALL 6
#define DIT_CUDA_ATTN_SCHEDULES 7

/* dit_cuda_attention_variant with a chosen schedule (ignored by the
 * configurations below 7); DIT_ERR_INVALID for a schedule out of range. */
dit_status dit_cuda_attention_schedule (dit_backend *be,
    const dit_attn_params *p, int variant, int schedule);

/* How many dit_gemm calls took each CUDA GEMM path since the backend was
 * created: [0] cuBLASLt with the bias/activation (and accumulation) in its
 * epilogue, [1] cuBLASLt then a bias/activation pass (a bias of another
 * dtype than y and too large for the staging buffer), [2] the skinny
 * kernel (M <= 16, any dtype mix), [3] the tiled fallback kernel (slow; a
 * model GEMM should never land here), [4] a gated GEMM on cuBLASLt with the
 * gate as its alpha vector (one batch per row group), [5] a gated GEMM as
 * cuBLASLt into the caller's scratch plus one gated accumulate pass
 * (cuBLASLt had no alpha-vector algorithm, or DIT_CUDA_GEMM_GATE=scratch
 * is set in the environment when the backend is created). */
#define DIT_CUDA_GEMM_PATH_COUNT 6
void dit_cuda_gemm_path_counts (dit_backend *be,
    int64_t counts[DIT_CUDA_GEMM_PATH_COUNT]);

/* FP8 (kernels/cuda/gemm_fp8.cu).
 * dit_cuda_fp8_probe_report: which cuBLASLt FP8 scale-mode configurations
 *   the installed library runs on this device, with their numeric check
 *   against an f64 reference, and what the backend chose (runs the probe
 *   once per backend; DIT_ERR_UNSUPPORTED below compute capability 8.9).
 * dit_cuda_gemm_fp8_report: every distinct FP8 GEMM shape so far with the
 *   path it took and its call count, as a JSON array.
 * dit_cuda_gemm_fp8_path: the FP8 GEMM on a chosen engine for benchmarks
 *   and tests: 0 as dit_gemm_fp8, 1 cuBLASLt (DIT_ERR_UNSUPPORTED when the
 *   probe found no working configuration for the call), 2 the own mma.sync
 *   kernel, 3 the own wgmma kernel (sm_90a; its default variant, no
 *   self-check; DIT_ERR_UNSUPPORTED where it does not run), 4 the best own
 *   kernel (wgmma where it runs and passed its self-check, else mma.sync).
 *   The environment variable DIT_FP8_GEMM=cublaslt|mma|wgmma|own sets the
 *   default engine the same way, DIT_FP8_WGMMA_VARIANT=<name or index>
 *   the wgmma variant.
 * dit_cuda_gemm_fp8_wgmma: the wgmma kernel's variant `variant` (0 ..,
 *   names from dit_cuda_gemm_fp8_wgmma_variant_name, NULL past the last)
 *   with at most grid_limit CTAs (0: its own grid); DIT_ERR_UNSUPPORTED
 *   where it does not run or the variant cannot write the call's output.
 * dit_cuda_gemm_fp8_wgmma_probe: timing probe `probe` of the wgmma K loop
 *   (names from dit_cuda_gemm_fp8_wgmma_probe_name, NULL past the last):
 *   a kernel that differs from the op in the one respect its name says,
 *   so its output is NOT the op's; dit-fp8-bench times it.
 * dit_cuda_gemm_fp8_wgmma_report: whether the wgmma engine runs on the
 *   device, and every self-check so far with its numbers. */
dit_status dit_cuda_fp8_probe_report (dit_backend *be, char *buf, size_t size);
void dit_cuda_gemm_fp8_report (dit_backend *be, char *buf, size_t size);
dit_status dit_cuda_gemm_fp8_path (dit_backend *be,
    const dit_gemm_fp8_params *p, int path);
dit_status dit_cuda_gemm_fp8_wgmma (dit_backend *be,
    const dit_gemm_fp8_params *p, int variant, int grid_limit);
const char *dit_cuda_gemm_fp8_wgmma_variant_name (int variant);
dit_status dit_cuda_gemm_fp8_wgmma_probe (dit_backend *be,
    const dit_gemm_fp8_params *p, int probe);
const char *dit_cuda_gemm_fp8_wgmma_probe_name (int probe);
dit_status dit_cuda_gemm_fp8_wgmma_report (dit_backend *be, char *buf,
    size_t size);

/* The cuDNN version the VAE conv loaded (e.g. 91900), 0 when libcudnn.so.9
 * could not be loaded (or the build had no cuDNN headers): then every VAE
 * conv runs on the own kernels. */
int dit_cuda_cudnn_version (void);

#ifdef __cplusplus
}
#endif
#endif
