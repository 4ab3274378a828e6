/* dit_backend — one vtable per device kind (ggml-style).
 *
 * The model code is written against this table only.  A backend owns its
 * memory (alloc/free/copies), its ordering primitive (synchronize) and an
 * op table.  `supports` lets callers ask before they rely on an op/dtype
 * combination, so a missing kernel is a clear error instead of a crash.
 *
 * Backends: "cpu" (kernels/cpu, the reference oracle, always built) and
 * "cuda" (kernels/cuda, built with -Dcuda=enabled/auto when nvcc exists).
 *
 * One way to call an op: code outside kernels/ never reads the table; it
 * calls the dit_* wrappers below (memory, ordering, every DiT, fused,
 * tensor-parallel and VAE op, recording, events), which check that the
 * backend has the entry and then hand the parameters over unchanged.
 * Parameter validation is the backends' (kernels/dit_check.h).
 */
#ifndef DIT_BACKEND_H
#define DIT_BACKEND_H

#include "dit_ops.h"
#include "dit_vae_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dit_op {
  DIT_OP_GEMM,
  DIT_OP_LAYERNORM,
  DIT_OP_RMSNORM,
  DIT_OP_MODULATE,
  DIT_OP_RESIDUAL,
  DIT_OP_ADD,
  DIT_OP_UNARY,
  DIT_OP_COPY,
  DIT_OP_ROPE,
  DIT_OP_ATTENTION,
  DIT_OP_PATCHIFY,
  DIT_OP_UNPATCHIFY,
  DIT_OP_TIMESTEP,
  DIT_OP_FLOW_STEP,
  DIT_OP_NOISE,
  DIT_OP_COUNT_DIT,
  /* Optional fused ops (kernels/dit_ops.h); the CPU reference has none and
   * reports supports () = 0, so the model runs the unfused chain there. */
  DIT_OP_LAYERNORM_MODULATE,
  DIT_OP_QK_NORM_ROPE,
  DIT_OP_NOISE_FLOW,
  /* FP8 (e4m3) ops (kernels/dit_ops.h, "FP8"); asked with dtype
   * DIT_F8E4M3.  DIT_OP_ATTENTION_FP8 is attention writing an f8e4m3
   * output with per-head scales. */
  DIT_OP_QUANTIZE_FP8,
  DIT_OP_LAYERNORM_FP8,
  DIT_OP_GEMM_FP8,
  DIT_OP_ATTENTION_FP8,
  /* The two halves of the tensor-parallel RMSNorm (dit_ops.h). */
  DIT_OP_RMSNORM_SUMSQ,
  DIT_OP_RMSNORM_APPLY,
  /* FP8 codes and scales back to f32/bf16/f16 (a merged LoRA on FP8
   * weights); asked with dtype DIT_F8E4M3. */
  DIT_OP_DEQUANTIZE_FP8,
} dit_op;

/* A recorded, replayable sequence of ops (a CUDA graph); opaque. */
typedef struct dit_graph dit_graph;

/* A point in one backend instance's op stream that another instance on the
 * same device can wait for without the host waiting (a CUDA event); opaque. */
typedef struct dit_event dit_event;

typedef struct dit_backend_ops {
  const char *name;
  dit_device device;

  /* memory */
  void *(*alloc) (dit_backend *be, size_t bytes);
  void (*free) (dit_backend *be, void *ptr);
  dit_status (*upload) (dit_backend *be, void *dst, const void *host, size_t bytes);
  dit_status (*download) (dit_backend *be, void *host, const void *src, size_t bytes);
  dit_status (*memset_zero) (dit_backend *be, void *dst, size_t bytes);
  dit_status (*synchronize) (dit_backend *be);
  void (*destroy) (dit_backend *be);

  int (*supports) (dit_backend *be, dit_op op, dit_dtype dtype);

  /* DiT ops */
  dit_status (*gemm) (dit_backend *be, const dit_gemm_params *p);
  dit_status (*layernorm) (dit_backend *be, const dit_layernorm_params *p);
  dit_status (*rmsnorm) (dit_backend *be, const dit_rmsnorm_params *p);
  dit_status (*modulate) (dit_backend *be, const dit_modulate_params *p);
  dit_status (*residual) (dit_backend *be, const dit_residual_params *p);
  dit_status (*add) (dit_backend *be, const dit_add_params *p);
  dit_status (*unary) (dit_backend *be, const dit_unary_params *p);
  dit_status (*copy) (dit_backend *be, const dit_copy_params *p);
  dit_status (*rope) (dit_backend *be, const dit_rope_params *p);
  dit_status (*attention) (dit_backend *be, const dit_attn_params *p);
  dit_status (*patchify) (dit_backend *be, const dit_patchify_params *p);
  dit_status (*unpatchify) (dit_backend *be, const dit_unpatchify_params *p);
  dit_status (*timestep) (dit_backend *be, const dit_timestep_params *p);
  dit_status (*flow_step) (dit_backend *be, const dit_flow_step_params *p);
  dit_status (*noise) (dit_backend *be, const dit_noise_params *p);

  /* VAE ops (kernels/dit_vae_ops.h); NULL when the backend has none. */
  const dit_vae_op_table *vae;

  /* Optional (NULL: not provided).  Fill dst[0, n) of dtype dt with
   * elements [begin, begin + n) of the Philox normal stream (seed, stream)
   * (kernels/dit_philox.h), each mapped to (float) (z * scale + offset) in
   * f64 and then rounded to dt: the synthetic-weight rule of
   * model/dit_weights.c, so large synthetic weights are made where they
   * live instead of being generated on the host and uploaded. */
  dit_status (*synthetic_normal) (dit_backend *be, void *dst, dit_dtype dt,
      int64_t begin, int64_t n, uint64_t seed, uint64_t stream, double scale,
      double offset);

  /* Optional fused ops (NULL and supports () = 0 when not provided). */
  dit_status (*layernorm_modulate) (dit_backend *be,
      const dit_layernorm_modulate_params *p);
  dit_status (*qk_norm_rope) (dit_backend *be, const dit_qk_norm_rope_params *p);
  dit_status (*noise_flow) (dit_backend *be, const dit_noise_flow_params *p);

  /* Optional op recording (NULL: not provided).  graph_begin makes every op
   * enqueued afterwards be recorded instead of run; graph_end stops and
   * returns an executable graph in *out (when a recorded op failed, pass
   * out = NULL to discard the recording).  graph_launch replays it with the
   * same pointers and scalars as recorded; graph_free releases it.  Between
   * begin and end nothing may wait on the host (no download, synchronize,
   * allocation) and every op must already have run once eagerly with the
   * same shapes, so that per-shape setup (GEMM plans) is done. */
  dit_status (*graph_begin) (dit_backend *be);
  dit_status (*graph_end) (dit_backend *be, dit_graph **out);
  dit_status (*graph_launch) (dit_backend *be, dit_graph *g);
  void (*graph_free) (dit_backend *be, dit_graph *g);

  /* Optional cross-stream ordering (NULL: every op of the backend is
   * complete when it returns, so there is nothing to order).  An event is
   * device-wide: recorded on one instance's stream, it can be waited for on
   * another instance's stream of the same device. */
  dit_status (*event_create) (dit_backend *be, dit_event **out);
  dit_status (*event_record) (dit_backend *be, dit_event *ev);
  dit_status (*event_wait) (dit_backend *be, dit_event *ev);
  dit_status (*event_synchronize) (dit_backend *be, dit_event *ev);
  void (*event_destroy) (dit_backend *be, dit_event *ev);

  /* Optional page-locked host memory (NULL: not provided), from which
   * upload copies run asynchronously at the bus's full rate: the caller
   * must not change the bytes until an event recorded after the upload has
   * completed.  Use through dit_host_alloc / dit_host_free. */
  void *(*host_alloc) (dit_backend *be, size_t bytes);
  void (*host_free) (dit_backend *be, void *ptr);

  /* FP8 ops (NULL and supports () = 0 when not provided).  fp8_check says
   * whether this backend's device runs them at all (DIT_ERR_UNSUPPORTED
   * with a message naming the device and why, e.g. a GPU without FP8
   * tensor cores); NULL means they run wherever the backend runs. */
  dit_status (*fp8_check) (dit_backend *be);
  dit_status (*quantize_fp8) (dit_backend *be, const dit_quantize_fp8_params *p);
  dit_status (*layernorm_fp8) (dit_backend *be, const dit_layernorm_fp8_params *p);
  dit_status (*gemm_fp8) (dit_backend *be, const dit_gemm_fp8_params *p);
  /* The tensor-parallel RMSNorm halves (NULL: the backend runs TP = 1
   * only). */
  dit_status (*rmsnorm_sumsq) (dit_backend *be,
      const dit_rmsnorm_sumsq_params *p);
  dit_status (*rmsnorm_apply) (dit_backend *be,
      const dit_rmsnorm_apply_params *p);
  dit_status (*dequantize_fp8) (dit_backend *be,
      const dit_dequantize_fp8_params *p);

  /* Optional timed events (NULL: not provided): an event made by
   * event_create_timed is also an ordinary event; event_elapsed gives the
   * time between two completed timed events recorded on one stream. */
  dit_status (*event_create_timed) (dit_backend *be, dit_event **out);
  dit_status (*event_elapsed) (dit_backend *be, dit_event *start,
      dit_event *end, double *ms);
} dit_backend_ops;

/* Called by every dit_* op dispatcher just before the op is handed to the
 * backend (see dit_backend_set_observer). */
typedef void (*dit_op_observer_fn) (void *user, dit_backend *be, dit_op op);

struct dit_backend {
  const dit_backend_ops *ops;
  void *impl;   /* backend private state */
  int device_index;
  dit_op_observer_fn observer;   /* NULL: none (the default) */
  void *observer_user;
};

/* Watch the op stream of `be`: fn (user, be, op) runs on the calling thread
 * before each op that goes through a dit_* dispatcher below (the DiT ops and
 * the fused ones; not the VAE sub-table, memory or event calls).  For
 * profiling (dit-bench --breakdown records a CUDA event there); it must not
 * enqueue ops itself.  NULL removes it.  Without an observer the only cost
 * is one test per op. */
void dit_backend_set_observer (dit_backend *be, dit_op_observer_fn fn,
    void *user);

/* Whether memory allocated by `a` can be used by ops of `b`: the same
 * backend, or two instances of one kind on the same device (separate
 * streams of one GPU). */
int dit_backend_shares_memory (const dit_backend *a, const dit_backend *b);

/* Create a backend by name ("cpu", "cuda") and device index.  Returns NULL
 * with the reason in dit_last_error() when unavailable. */
dit_backend *dit_backend_create (const char *name, int device_index);
void dit_backend_destroy (dit_backend *be);

/* The always-available CPU backend (created on first use, never freed). */
dit_backend *dit_backend_cpu (void);

/* Constructors behind dit_backend_create. */
dit_backend *dit_backend_cpu_create (void);
#if defined(DIT_HAVE_CUDA) && DIT_HAVE_CUDA
dit_backend *dit_backend_cuda_create (int device_index);
#endif

/* Allocation helpers: a tensor that owns backend memory. */
dit_status dit_tensor_alloc (dit_backend *be, dit_tensor *t, dit_dtype dt,
    int ndim, const int64_t *shape);
void dit_tensor_free (dit_backend *be, dit_tensor *t);

/* Host memory for staging uploads to `be`: page-locked where the backend
 * has it (dit_backend_ops.host_alloc), plain malloc otherwise; free with
 * dit_host_free on the same backend.  NULL when out of memory. */
void *dit_host_alloc (dit_backend *be, size_t bytes);
void dit_host_free (dit_backend *be, void *ptr);
/* Whether `be` has page-locked host memory of its own (else dit_host_alloc
 * is malloc). */
int dit_backend_has_host_memory (const dit_backend *be);

/* Events (see dit_backend_ops): *out is NULL on a backend without them, and
 * every call below accepts a NULL event as "already complete".
 * record: the event completes when everything enqueued on be so far has;
 * wait: ops enqueued on be afterwards start only once the event completed
 * (the host does not wait); synchronize: the host waits for it.
 * has_events: whether the backend has them (CUDA; the CPU does not). */
int dit_backend_has_events (const dit_backend *be);
dit_status dit_event_create (dit_backend *be, dit_event **out);
dit_status dit_event_record (dit_backend *be, dit_event *ev);
dit_status dit_event_wait (dit_backend *be, dit_event *ev);
dit_status dit_event_synchronize (dit_backend *be, dit_event *ev);
void dit_event_destroy (dit_backend *be, dit_event *ev);
/* A timed event (*out NULL where the backend has none); elapsed: the ms
 * between two completed timed events, DIT_ERR_UNSUPPORTED without them. */
dit_status dit_event_create_timed (dit_backend *be, dit_event **out);
dit_status dit_event_elapsed (dit_backend *be, dit_event *start,
    dit_event *end, double *ms);

/* ---- memory and ordering ------------------------------------------------ */

/* The backend's name ("cpu", "cuda"; "(null)" without one) and device. */
const char *dit_backend_name (const dit_backend *be);
dit_device dit_backend_device (const dit_backend *be);
/* Whether `be` runs `op` on `dtype`: the backend has the entry and its
 * supports () says yes.  The optional ops (fused, tensor-parallel) are
 * asked this way before a caller relies on them. */
int dit_backend_supports (dit_backend *be, dit_op op, dit_dtype dtype);
/* Raw backend memory (NULL with dit_last_error set when it cannot be
 * had); dit_backend_free takes NULL. */
void *dit_backend_alloc (dit_backend *be, size_t bytes);
void dit_backend_free (dit_backend *be, void *ptr);
/* Host <-> backend copies.  upload is ordered on the backend's stream (the
 * host buffer may be reused when it returns); download returns once the
 * bytes are on the host. */
dit_status dit_upload (dit_backend *be, void *dst, const void *host,
    size_t bytes);
dit_status dit_download (dit_backend *be, void *host, const void *src,
    size_t bytes);
dit_status dit_memset_zero (dit_backend *be, void *dst, size_t bytes);
/* The host waits until everything enqueued on `be` has completed. */
dit_status dit_synchronize (dit_backend *be);
/* Synthetic weights made where they live (dit_backend_ops.synthetic_normal);
 * DIT_ERR_UNSUPPORTED on a backend without it (see
 * dit_backend_has_synthetic_normal). */
int dit_backend_has_synthetic_normal (const dit_backend *be);
dit_status dit_synthetic_normal (dit_backend *be, void *dst, dit_dtype dt,
    int64_t begin, int64_t n, uint64_t seed, uint64_t stream, double scale,
    double offset);

/* Host copies made by the dit_* wrappers so far on the calling thread
 * (upload and download calls, over every backend; a per-thread counter, so
 * the threads of other elements do not disturb a count).  A test reads it
 * before and after a chunk to count the host round trips of a path; on the
 * CPU backend they are memcpys, counted all the same (paths that stay in
 * one backend's memory make none there either). */
typedef struct dit_host_copies {
  uint64_t uploads, downloads;
  uint64_t upload_bytes, download_bytes;
} dit_host_copies;
void dit_host_copies_get (dit_host_copies *out);

/* ---- op recording (CUDA graphs; see dit_backend_ops.graph_*) ----------- */

int dit_backend_has_graphs (const dit_backend *be);
dit_status dit_graph_begin (dit_backend *be);
dit_status dit_graph_end (dit_backend *be, dit_graph **out);
dit_status dit_graph_launch (dit_backend *be, dit_graph *g);
void dit_graph_free (dit_backend *be, dit_graph *g);

/* ---- ops ------------------------------------------------------------------
 * Op dispatch: checks that the backend implements the op, then calls it. */
dit_status dit_gemm (dit_backend *be, const dit_gemm_params *p);
dit_status dit_layernorm (dit_backend *be, const dit_layernorm_params *p);
dit_status dit_rmsnorm (dit_backend *be, const dit_rmsnorm_params *p);
dit_status dit_modulate (dit_backend *be, const dit_modulate_params *p);
dit_status dit_residual (dit_backend *be, const dit_residual_params *p);
dit_status dit_add (dit_backend *be, const dit_add_params *p);
dit_status dit_unary (dit_backend *be, const dit_unary_params *p);
dit_status dit_copy (dit_backend *be, const dit_copy_params *p);
dit_status dit_rope (dit_backend *be, const dit_rope_params *p);
dit_status dit_attention (dit_backend *be, const dit_attn_params *p);
dit_status dit_patchify (dit_backend *be, const dit_patchify_params *p);
dit_status dit_unpatchify (dit_backend *be, const dit_unpatchify_params *p);
dit_status dit_timestep (dit_backend *be, const dit_timestep_params *p);
dit_status dit_flow_step (dit_backend *be, const dit_flow_step_params *p);
dit_status dit_noise (dit_backend *be, const dit_noise_params *p);
/* Fused ops: DIT_ERR_UNSUPPORTED where the backend has none (the CPU
 * reference); ask dit_backend_supports first and run the chain instead. */
dit_status dit_layernorm_modulate (dit_backend *be,
    const dit_layernorm_modulate_params *p);
dit_status dit_qk_norm_rope (dit_backend *be, const dit_qk_norm_rope_params *p);
dit_status dit_noise_flow (dit_backend *be, const dit_noise_flow_params *p);
dit_status dit_quantize_fp8 (dit_backend *be, const dit_quantize_fp8_params *p);
dit_status dit_layernorm_fp8 (dit_backend *be, const dit_layernorm_fp8_params *p);
dit_status dit_gemm_fp8 (dit_backend *be, const dit_gemm_fp8_params *p);
dit_status dit_dequantize_fp8 (dit_backend *be,
    const dit_dequantize_fp8_params *p);

/* DIT_OK when the backend runs the FP8 ops on its device; otherwise
 * DIT_ERR_UNSUPPORTED with a message naming the device and the reason
 * (callers check once, before quantizing any weight). */
dit_status dit_fp8_check (dit_backend *be);

#ifdef __cplusplus
}
#endif
#endif
