/* backend_cuda — the CUDA backend: memory, ordering and the op table.
 *
 * One backend = one device and one non-blocking stream.  Every op is
 * enqueued on that stream and returns without waiting (llm.c style); the
 * only host waits are download (the caller wants the bytes) and
 * synchronize.  Memory is plain cudaMalloc (never managed memory: on shared
 * hosts oversubscribed managed memory can stall the whole GPU).  upload is
 * cudaMemcpyAsync on the stream: from pageable memory the runtime has staged
 * the bytes before returning, so the host buffer may be reused at once;
 * from pinned memory the caller must synchronize first.
 *
 * The backend also owns the cuBLASLt handle, its 32 MiB workspace and the
 * GEMM plan cache (gemm.cu).  Op validation is the CPU backend's
 * (kernels/dit_check.c) on DIT_DEVICE_CUDA: every tensor must be a CUDA view
 * with a contiguous last dimension, shapes must agree, and mistakes come
 * back as DIT_ERR_INVALID naming the op and the tensor.
 */
#include "dit_build_config.h"
#include "cuda_common.cuh"
#include "vae_conv_mma.cuh"
#include "dit_cuda.h"
#include "dit_philox.h"
#include "vae_cuda.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* memory and ordering */

static void *
cuda_alloc (dit_backend *be, size_t bytes)
{
  void *p = NULL;
  /* a zero-byte tensor still gets a distinct, valid pointer */
  if (cudaSetDevice (dit_cuda_impl (be)->device) != cudaSuccess)
    return NULL;
  if (cudaMalloc (&p, bytes ? bytes : 256) != cudaSuccess) {
    cudaGetLastError ();
    return NULL;
  }
  return p;
}

static void
cuda_free (dit_backend *be, void *ptr)
{
  (void) be;
  if (ptr)
    cudaFree (ptr);
}

static dit_status
cuda_upload (dit_backend *be, void *dst, const void *host, size_t bytes)
{
  if (!bytes)
    return DIT_OK;
  if (!dst || !host)
    return dit_error (DIT_ERR_INVALID, "cuda upload: NULL pointer");
  DIT_CUDA_TRY (cudaMemcpyAsync (dst, host, bytes, cudaMemcpyHostToDevice,
      dit_cuda_impl (be)->stream));
  return DIT_OK;
}

static dit_status
cuda_download (dit_backend *be, void *host, const void *src, size_t bytes)
{
  if (!bytes)
    return DIT_OK;
  if (!src || !host)
    return dit_error (DIT_ERR_INVALID, "cuda download: NULL pointer");
  cudaStream_t s = dit_cuda_impl (be)->stream;
  DIT_CUDA_TRY (cudaMemcpyAsync (host, src, bytes, cudaMemcpyDeviceToHost, s));
  DIT_CUDA_TRY (cudaStreamSynchronize (s));
  return DIT_OK;
}

static dit_status
cuda_memset_zero (dit_backend *be, void *dst, size_t bytes)
{
  if (!bytes)
    return DIT_OK;
  if (!dst)
    return dit_error (DIT_ERR_INVALID, "cuda memset: NULL pointer");
  DIT_CUDA_TRY (cudaMemsetAsync (dst, 0, bytes, dit_cuda_impl (be)->stream));
  return DIT_OK;
}

static dit_status
cuda_synchronize (dit_backend *be)
{
  DIT_CUDA_TRY (cudaStreamSynchronize (dit_cuda_impl (be)->stream));
  return DIT_OK;
}

static void
cuda_destroy (dit_backend *be)
{
  if (!be)
    return;
  dit_cuda_backend *cb = dit_cuda_impl (be);
  if (cb) {
    cudaSetDevice (cb->device);
    if (cb->stream)
      cudaStreamSynchronize (cb->stream);
    dit_cuda_gemm_cache_clear (cb);
    dit_cuda_fp8_free (cb);
    dit_cuda_cudnn_free (cb);
    if (cb->lt)
      cublasLtDestroy (cb->lt);
    if (cb->workspace)
      cudaFree (cb->workspace);
    if (cb->attn_part)
      cudaFree (cb->attn_part);
    if (cb->attn_count)
      cudaFree (cb->attn_count);
    if (cb->stage)
      cudaFree (cb->stage);
    if (cb->stream)
      cudaStreamDestroy (cb->stream);
    free (cb);
  }
  free (be);
}

/* ------------------------------------------------------------------------ */
/* synthetic weights on the device
 *
 * The rule of dit_weights_synthetic_fill: one Philox call per element pair,
 * value (float) (z * scale + offset) in f64 and then the storage rounding.
 * The multiply and the add are separate round-to-nearest operations
 * (__dmul_rn, __dadd_rn) so the compiler cannot fuse them into an FMA that
 * the host code does not do. */

__global__ void
synthetic_normal_kernel (void *dst, int dt, int64_t begin, int64_t n,
    uint64_t seed, uint64_t stream, double scale, double offset)
{
  /* pair index relative to the first pair that covers `begin` */
  const int64_t p0 = begin >> 1;
  const int64_t pairs = ((begin + n + 1) >> 1) - p0;
  DIT_CUDA_GRID_LOOP (q, pairs) {
    float z[2];
    dit_philox_normal_pair (seed, stream, (uint64_t) (p0 + q), &z[0], &z[1]);
#pragma unroll
    for (int k = 0; k < 2; k++) {
      int64_t e = 2 * (p0 + q) + k - begin;
      if (e < 0 || e >= n)
        continue;
      double v = __dadd_rn (__dmul_rn ((double) z[k], scale), offset);
      dit_cuda_st (dst, dt, e, (float) v);
    }
  }
}

dit_status
dit_cuda_synthetic_normal (dit_backend *be, void *dst, dit_dtype dt,
    int64_t begin, int64_t n, uint64_t seed, uint64_t stream, double scale,
    double offset)
{
  if (n <= 0)
    return DIT_OK;
  if (!dst || begin < 0)
    return dit_error (DIT_ERR_INVALID, "cuda synthetic weights: NULL "
        "destination or negative start");
  int64_t pairs = ((begin + n + 1) >> 1) - (begin >> 1);
  synthetic_normal_kernel<<<dit_cuda_grid_1d (pairs, 256), 256, 0,
      dit_cuda_impl (be)->stream>>> (dst, (int) dt, begin, n, seed, stream,
      scale, offset);
  DIT_CUDA_CHECK_LAUNCH ("synthetic_normal_kernel");
  return DIT_OK;
}

/* ------------------------------------------------------------------------ */
/* events: a dit_event is a cudaEvent_t (timing off, the cheapest kind) */

static dit_status
cuda_event_create (dit_backend *be, dit_event **out)
{
  cudaEvent_t e;
  DIT_CUDA_TRY (cudaSetDevice (dit_cuda_impl (be)->device));
  DIT_CUDA_TRY (cudaEventCreateWithFlags (&e, cudaEventDisableTiming));
  *out = (dit_event *) e;
  return DIT_OK;
}

static dit_status
cuda_event_record (dit_backend *be, dit_event *ev)
{
  DIT_CUDA_TRY (cudaEventRecord ((cudaEvent_t) ev,
      dit_cuda_impl (be)->stream));
  return DIT_OK;
}

static dit_status
cuda_event_wait (dit_backend *be, dit_event *ev)
{
  DIT_CUDA_TRY (cudaStreamWaitEvent (dit_cuda_impl (be)->stream,
      (cudaEvent_t) ev, 0));
  return DIT_OK;
}

static dit_status
cuda_event_synchronize (dit_backend *be, dit_event *ev)
{
  (void) be;
  DIT_CUDA_TRY (cudaEventSynchronize ((cudaEvent_t) ev));
  return DIT_OK;
}

static void
cuda_event_destroy (dit_backend *be, dit_event *ev)
{
  (void) be;
  cudaEventDestroy ((cudaEvent_t) ev);
}

/* timed events: timing on (a little dearer to record and wait for) */
static dit_status
cuda_event_create_timed (dit_backend *be, dit_event **out)
{
  cudaEvent_t e;
  DIT_CUDA_TRY (cudaSetDevice (dit_cuda_impl (be)->device));
  DIT_CUDA_TRY (cudaEventCreate (&e));
  *out = (dit_event *) e;
  return DIT_OK;
}

static dit_status
cuda_event_elapsed (dit_backend *be, dit_event *start, dit_event *end,
    double *ms)
{
  float f = 0.0f;
  (void) be;
  DIT_CUDA_TRY (cudaEventElapsedTime (&f, (cudaEvent_t) start,
      (cudaEvent_t) end));
  *ms = f;
  return DIT_OK;
}

/* page-locked host memory for asynchronous uploads */
static void *
cuda_host_alloc (dit_backend *be, size_t bytes)
{
  void *p = NULL;
  if (cudaSetDevice (dit_cuda_impl (be)->device) != cudaSuccess)
    return NULL;
  if (cudaHostAlloc (&p, bytes ? bytes : 1, cudaHostAllocPortable) != cudaSuccess) {
    cudaGetLastError ();
    return NULL;
  }
  return p;
}

static void
cuda_host_free (dit_backend *be, void *ptr)
{
  (void) be;
  if (ptr)
    cudaFreeHost (ptr);
}

static int
cuda_supports (dit_backend *be, dit_op op, dit_dtype dtype)
{
  if (op == DIT_OP_QUANTIZE_FP8 || op == DIT_OP_LAYERNORM_FP8
      || op == DIT_OP_GEMM_FP8 || op == DIT_OP_ATTENTION_FP8)
    return dtype == DIT_F8E4M3 && dit_cuda_fp8_check (be) == DIT_OK;
  /* decoding needs no FP8 tensor cores */
  if (op == DIT_OP_DEQUANTIZE_FP8)
    return dtype == DIT_F8E4M3;
  if (dtype != DIT_F32 && dtype != DIT_BF16 && dtype != DIT_F16)
    return 0;
  if (op == DIT_OP_LAYERNORM_MODULATE || op == DIT_OP_QK_NORM_ROPE
      || op == DIT_OP_NOISE_FLOW || op == DIT_OP_RMSNORM_SUMSQ
      || op == DIT_OP_RMSNORM_APPLY)
    return 1;
  return op >= DIT_OP_GEMM && op < DIT_OP_COUNT_DIT;
}

static const dit_backend_ops dit_cuda_ops = {
  /* name */ "cuda",
  /* device */ DIT_DEVICE_CUDA,
  cuda_alloc,
  cuda_free,
  cuda_upload,
  cuda_download,
  cuda_memset_zero,
  cuda_synchronize,
  cuda_destroy,
  cuda_supports,
  dit_cuda_gemm,
  dit_cuda_layernorm,
  dit_cuda_rmsnorm,
  dit_cuda_modulate,
  dit_cuda_residual,
  dit_cuda_add,
  dit_cuda_unary,
  dit_cuda_copy,
  dit_cuda_rope,
  dit_cuda_attention,
  dit_cuda_patchify,
  dit_cuda_unpatchify,
  dit_cuda_timestep,
  dit_cuda_flow_step,
  dit_cuda_noise,
  /* vae */ &dit_cuda_vae_ops,
  dit_cuda_synthetic_normal,
  dit_cuda_layernorm_modulate,
  dit_cuda_qk_norm_rope,
  dit_cuda_noise_flow,
  dit_cuda_graph_begin,
  dit_cuda_graph_end,
  dit_cuda_graph_launch,
  dit_cuda_graph_free,
  cuda_event_create,
  cuda_event_record,
  cuda_event_wait,
  cuda_event_synchronize,
  cuda_event_destroy,
  cuda_host_alloc,
  cuda_host_free,
  dit_cuda_fp8_check,
  dit_cuda_quantize_fp8,
  dit_cuda_layernorm_fp8,
  dit_cuda_gemm_fp8,
  dit_cuda_rmsnorm_sumsq,
  dit_cuda_rmsnorm_apply,
  dit_cuda_dequantize_fp8,
  cuda_event_create_timed,
  cuda_event_elapsed,
};

/* Undo a half-made backend and report `st` with its message kept. */
static dit_backend *
cuda_create_fail (dit_backend *be)
{
  cuda_destroy (be);
  return NULL;
}

static dit_status
cuda_create_state (dit_cuda_backend *cb, int device_index)
{
  int count = 0;
  cudaError_t e = cudaGetDeviceCount (&count);
  if (e != cudaSuccess) {
    cudaGetLastError ();
    return dit_error (DIT_ERR_DEVICE, "cuda backend: no usable CUDA device "
        "(%s)", cudaGetErrorString (e));
  }
  if (device_index < 0 || device_index >= count)
    return dit_error (DIT_ERR_INVALID, "cuda backend: device %d requested, "
        "%d present", device_index, count);
  cb->device = device_index;
  DIT_CUDA_TRY (cudaSetDevice (device_index));
  cudaDeviceProp prop;
  DIT_CUDA_TRY (cudaGetDeviceProperties (&prop, device_index));
  cb->num_sms = prop.multiProcessorCount;
  cb->smem_optin = prop.sharedMemPerBlockOptin;
  cb->cc_major = prop.major;
  cb->cc_minor = prop.minor;
  snprintf (cb->device_name, sizeof cb->device_name, "%s", prop.name);
  /* Tests only (tests/gpu/test_cuda_fp8.c): DIT_CUDA_FAKE_CC=M.N makes the
   * FP8 check see compute capability M.N, so the refusal on a GPU without
   * FP8 tensor cores can be exercised on one that has them. */
  const char *fake = getenv ("DIT_CUDA_FAKE_CC");
  if (fake && sscanf (fake, "%d.%d", &cb->cc_major, &cb->cc_minor) != 2) {
    cb->cc_major = prop.major;
    cb->cc_minor = prop.minor;
  }
  DIT_CUDA_TRY (cudaStreamCreateWithFlags (&cb->stream,
      cudaStreamNonBlocking));
  DIT_CUBLAS_TRY (cublasLtCreate (&cb->lt));
  cb->workspace_bytes = DIT_CUDA_WORKSPACE_BYTES;
  DIT_CUDA_TRY (cudaMalloc (&cb->workspace, cb->workspace_bytes));
  cb->stage_bytes = DIT_CUDA_STAGE_BYTES;
  DIT_CUDA_TRY (cudaMalloc (&cb->stage, cb->stage_bytes));
  const char *gate = getenv ("DIT_CUDA_GEMM_GATE");
  cb->gemm_gate_scratch = gate && strcmp (gate, "scratch") == 0;
  return DIT_OK;
}

extern "C" dit_backend *
dit_backend_cuda_create (int device_index)
{
  dit_backend *be = (dit_backend *) calloc (1, sizeof *be);
  dit_cuda_backend *cb = (dit_cuda_backend *) calloc (1, sizeof *cb);
  if (!be || !cb) {
    free (be);
    free (cb);
    dit_error (DIT_ERR_NOMEM, "cuda backend: out of host memory");
    return NULL;
  }
  be->ops = &dit_cuda_ops;
  be->impl = cb;
  be->device_index = device_index;
  if (cuda_create_state (cb, device_index) != DIT_OK)
    return cuda_create_fail (be);
  return be;
}

extern "C" void *
dit_backend_cuda_stream (dit_backend *be)
{
  if (!be || be->ops != &dit_cuda_ops)
    return NULL;
  return (void *) dit_cuda_impl (be)->stream;
}
