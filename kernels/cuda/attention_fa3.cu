/* attention_fa3 — flash configurations 7 and up: which ones exist, whether
 * the device runs them, how a call's work is planned, and the launch.
 *
 * The kernel (attention_fa3.cuh) is a template; each configuration is one
 * instantiation in its own file:
 *
 *   7  attention_fa3_7.cu   128-key tiles, K/V rings 2/2, 2 softmax stages
 *   8  attention_fa3_8.cu   128-key tiles, rings 3/3, 2 stages
 *   9  attention_fa3_9.cu   176-key tiles, rings 2/2, 2 stages
 *  10  attention_fa3_10.cu  144-key tiles (720 = 5 x 144), rings 3/2, 2 stages
 *  11  attention_fa3_11.cu  80-key tiles, rings 3/3, 3 stages
 *  12  attention_fa3_12.cu  as 7 without the ping-pong turns
 *
 * Work schedules (dit_cuda.h, DIT_CUDA_ATTN_SCHED_*): which order the
 * items run in (heads slowest, so the blocks running together read the
 * same heads' K/V from L2, or row blocks slowest as configuration 6 does)
 * and which items are shared out by key tiles (stream-K) instead of going
 * whole to one block: none, the last one to two waves, or all.  AUTO takes
 * heads slowest with the last waves stream-K when every item has the same
 * length (no block-causal mask) and all items stream-K otherwise.
 * Stream-K needs the backend's partial-result buffer (about 18 MB on 132
 * SMs, allocated on first use); while a CUDA graph is being captured before
 * that first use, or when it cannot be allocated, the plan falls back to
 * whole items, which needs none.
 *
 * Measured (one H100, `dit-attn-bench 20`, 2026-12-06; each configuration
 * checked against the generic f32 kernel at full size before it is timed):
 * at the denoise shape (L 2160, N 4320, 40 heads of 128, KV bias) the best
 * schedule of every configuration lands at 537-582 TFLOP/s, configuration
 * 10 with AUTO at 576 (0.332 ms; 582 with the tail forced stream-K); at
 * the recompute shape (L = N = 2160, one causal block) configuration 10
 * AUTO reaches 523, against 389 / 337 for configuration 6.  Configuration
 * 10 is dit_attention's default.
 */
#include "attention_fa3.cuh"
#include "dit_cuda.h"

#include <math.h>
#include <string.h>

static_assert (FA3_SCHED_AUTO == DIT_CUDA_ATTN_SCHED_AUTO
    && FA3_SCHED_ROWS == DIT_CUDA_ATTN_SCHED_ROWS
    && FA3_SCHED_HEADS == DIT_CUDA_ATTN_SCHED_HEADS
    && FA3_SCHED_HEADS_TAIL == DIT_CUDA_ATTN_SCHED_HEADS_TAIL
    && FA3_SCHED_ROWS_TAIL == DIT_CUDA_ATTN_SCHED_ROWS_TAIL
    && FA3_SCHED_HEADS_ALL == DIT_CUDA_ATTN_SCHED_HEADS_ALL
    && FA3_SCHED_ROWS_ALL == DIT_CUDA_ATTN_SCHED_ROWS_ALL
    && DIT_CUDA_ATTN_SCHEDULES == FA3_SCHED_ROWS_ALL + 1, "schedules");

/* the kernel's whole interface travels as its parameter block */
static_assert (sizeof (fa3_params) <= 4096, "kernel parameters");

extern const fa3_config attn_fa3_config_7, attn_fa3_config_8,
    attn_fa3_config_9, attn_fa3_config_10, attn_fa3_config_11,
    attn_fa3_config_12;

static const fa3_config *
fa3_config_of (int variant)
{
  switch (variant) {
    case 7: return &attn_fa3_config_7;
    case 8: return &attn_fa3_config_8;
    case 9: return &attn_fa3_config_9;
    case 10: return &attn_fa3_config_10;
    case 11: return &attn_fa3_config_11;
    case 12: return &attn_fa3_config_12;
    default: return NULL;
  }
}

int
attn_fa3_supported (dit_cuda_backend *cb, int variant)
{
  const fa3_config *c = fa3_config_of (variant);
  if (!c)
    return 0;
  if (cb->attn_fa3[variant] == 0) {
    int ok = 0;
    cudaFuncAttributes fa;
    if (attn_wgmma_supported (cb) && attn_tma_encoder_present ()) {
      if (cudaFuncGetAttributes (&fa, c->kernel) != cudaSuccess)
        cudaGetLastError ();   /* a failed query is an answer */
      else
        ok = fa.binaryVersion == 90
            && cb->smem_optin >= (size_t) c->smem + fa.sharedSizeBytes;
    }
    cb->attn_fa3[variant] = ok ? 1 : -1;
  }
  return cb->attn_fa3[variant] > 0;
}

/* The stream-K buffers, allocated on first use outside a capture; 0 when
 * they are not there (the plan then keeps items whole). */
static int
fa3_workspace (dit_cuda_backend *cb)
{
  if (cb->attn_part && cb->attn_count)
    return 1;
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing (cb->stream, &cs) != cudaSuccess
      || cs != cudaStreamCaptureStatusNone) {
    cudaGetLastError ();
    return 0;
  }
  const int slots = 2 * (cb->num_sms < FA3_MAX_GRID ? cb->num_sms
      : FA3_MAX_GRID);
  const size_t part = (size_t) slots * 2 * FA3_PART_F4 * 128 * sizeof (float4);
  const size_t count = (size_t) FA3_MAX_SK_ITEMS * 2 * sizeof (int);
  if (!cb->attn_part && cudaMalloc (&cb->attn_part, part) != cudaSuccess) {
    cudaGetLastError ();
    cb->attn_part = NULL;
    return 0;
  }
  if (!cb->attn_count) {
    if (cudaMalloc ((void **) &cb->attn_count, count) != cudaSuccess) {
      cudaGetLastError ();
      cb->attn_count = NULL;
      return 0;
    }
    /* zero once; every launch leaves its counters zero again */
    if (cudaMemsetAsync (cb->attn_count, 0, count, cb->stream)
        != cudaSuccess) {
      cudaGetLastError ();
      cudaFree (cb->attn_count);
      cb->attn_count = NULL;
      return 0;
    }
  }
  return 1;
}

dit_status
attn_launch_fa3 (dit_cuda_backend *cb, const attn_args &a, int variant,
    int sched)
{
  const fa3_config *c = fa3_config_of (variant);
  if (!c)
    return dit_error (DIT_ERR_INVALID, "attention: no configuration %d",
        variant);
  if (sched < 0 || sched >= DIT_CUDA_ATTN_SCHEDULES)
    return dit_error (DIT_ERR_INVALID, "attention: schedule %d: 0-%d "
        "expected", sched, DIT_CUDA_ATTN_SCHEDULES - 1);
  /* the bias is added in raw logit units (log_bias / scale) and the row
   * maximum taken before scaling: both need a positive scale */
  const float braw = a.bias_end > a.bias_begin ? a.log_bias / a.scale : 0.0f;
  if (!(a.scale > 0.0f) || isnan (braw) || braw == INFINITY)
    return dit_error (DIT_ERR_UNSUPPORTED, "attention variant %d: needs a "
        "positive scale and a finite bias (scale %g, log_bias %g)", variant,
        (double) a.scale, (double) a.log_bias);
  const int64_t nitems = (a.L + FA3_BM - 1) / FA3_BM * (int64_t) a.heads;
  const int64_t cb_len = a.causal_block > 0 ? a.causal_block : 0;
  if (nitems > 0x7fff0000 || a.q_pos0 + a.L + cb_len + 256 > 0x7fffffff)
    return dit_error (DIT_ERR_UNSUPPORTED, "attention variant %d: %lld "
        "work items or query position %lld + %lld rows + causal block %lld "
        "exceed its 32-bit counters", variant, (long long) nitems,
        (long long) a.q_pos0, (long long) a.L, (long long) cb_len);

  fa3_params p;
  memset (&p, 0, sizeof p);
  const int64_t cols = (int64_t) a.heads * FA3_D;
  DIT_TRY (attn_tensor_map (&p.tq, a.q, a.L, cols, a.ldq, 64, "q"));
  DIT_TRY (attn_tensor_map (&p.tk, a.k, a.N, cols, a.ldk, c->bn, "k"));
  DIT_TRY (attn_tensor_map (&p.tv, a.v, a.N, cols, a.ldv, c->bn, "v"));
  p.a = a;
  p.braw = braw;
  p.sl2 = a.scale * 1.4426950408889634f;
  p.bias_lo = (int) a.bias_begin;
  p.bias_hi = (int) a.bias_end;
  p.o_vec = a.dto == DIT_BF16 && a.ldo % 8 == 0
      && (uintptr_t) a.o % 16 == 0;
  p.kn = (int) (a.key_len > 0 && a.key_len < a.N ? a.key_len : a.N);
  p.cblock = (int) cb_len;
  p.qpos = (int) a.q_pos0;
  const int grid = fa3_plan (&p, c->bn, sched, cb->num_sms,
      sched != DIT_CUDA_ATTN_SCHED_ROWS && sched != DIT_CUDA_ATTN_SCHED_HEADS
      && fa3_workspace (cb));
  p.part = (float4 *) cb->attn_part;
  p.count = cb->attn_count;

  const int bit = 1 << variant;
  if (!(cb->flash_smem_set & bit)) {
    DIT_CUDA_TRY (cudaFuncSetAttribute (c->kernel,
        cudaFuncAttributeMaxDynamicSharedMemorySize, c->smem));
    cb->flash_smem_set |= bit;
  }
  void *args[] = { &p };
  DIT_CUDA_TRY (cudaLaunchKernel (c->kernel, dim3 ((unsigned) grid),
      dim3 (FA3_THREADS), args, (size_t) c->smem, cb->stream));
  DIT_CUDA_CHECK_LAUNCH ("flash_d128_fa3_kernel");
  return DIT_OK;
}
