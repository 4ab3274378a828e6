/* dit_backend — backend creation, tensor allocation and the wrappers that
 * are the one way to reach a backend's table.
 *
 * Model code calls dit_gemm (be, &params), dit_upload (be, ...) and
 * friends; each wrapper checks that the backend exists and has the entry,
 * then hands the parameters over unchanged.  Shape, dtype and device
 * validation is the backends' (kernels/dit_check.c, shared by all of them),
 * so a CPU and a CUDA backend report the same message for the same mistake.
 *
 * Host copies: upload and download count themselves per calling thread
 * (dit_host_copies_get), which is how a test sees that latents stayed on
 * the device along a path.
 */
#include "dit_build_config.h"
#include "dit_backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local dit_host_copies dit_thread_copies;

void
dit_host_copies_get (dit_host_copies *out)
{
  *out = dit_thread_copies;
}

int
dit_backend_shares_memory (const dit_backend *a, const dit_backend *b)
{
  return a == b || (a && b && a->ops == b->ops
      && a->device_index == b->device_index);
}

dit_status
dit_event_create (dit_backend *be, dit_event **out)
{
  *out = NULL;
  if (!be->ops->event_create)
    return DIT_OK;
  return be->ops->event_create (be, out);
}

dit_status
dit_event_record (dit_backend *be, dit_event *ev)
{
  if (!ev || !be->ops->event_record)
    return DIT_OK;
  return be->ops->event_record (be, ev);
}

dit_status
dit_event_wait (dit_backend *be, dit_event *ev)
{
  if (!ev || !be->ops->event_wait)
    return DIT_OK;
  return be->ops->event_wait (be, ev);
}

dit_status
dit_event_synchronize (dit_backend *be, dit_event *ev)
{
  if (!ev || !be->ops->event_synchronize)
    return DIT_OK;
  return be->ops->event_synchronize (be, ev);
}

void
dit_event_destroy (dit_backend *be, dit_event *ev)
{
  if (ev && be->ops->event_destroy)
    be->ops->event_destroy (be, ev);
}

dit_status
dit_event_create_timed (dit_backend *be, dit_event **out)
{
  *out = NULL;
  if (!be->ops->event_create_timed)
    return DIT_OK;
  return be->ops->event_create_timed (be, out);
}

dit_status
dit_event_elapsed (dit_backend *be, dit_event *start, dit_event *end,
    double *ms)
{
  *ms = 0.0;
  if (!start || !end || !be->ops->event_elapsed)
    return dit_error (DIT_ERR_UNSUPPORTED, "%s backend: no timed events",
        dit_backend_name (be));
  return be->ops->event_elapsed (be, start, end, ms);
}

void *
dit_host_alloc (dit_backend *be, size_t bytes)
{
  if (be && be->ops && be->ops->host_alloc)
    return be->ops->host_alloc (be, bytes ? bytes : 1);
  return malloc (bytes ? bytes : 1);
}

int
dit_backend_has_host_memory (const dit_backend *be)
{
  return be && be->ops && be->ops->host_alloc && be->ops->host_free;
}

int
dit_backend_has_events (const dit_backend *be)
{
  return be && be->ops && be->ops->event_create != NULL;
}

void
dit_host_free (dit_backend *be, void *ptr)
{
  if (!ptr)
    return;
  if (be && be->ops && be->ops->host_alloc && be->ops->host_free)
    be->ops->host_free (be, ptr);
  else
    free (ptr);
}

dit_backend *
dit_backend_create (const char *name, int device_index)
{
  if (!name)
    name = "cpu";
  if (strcmp (name, "cpu") == 0) {
    dit_backend *be = dit_backend_cpu_create ();
    if (be)
      be->device_index = device_index;
    return be;
  }
  if (strcmp (name, "cuda") == 0) {
#if DIT_HAVE_CUDA
    return dit_backend_cuda_create (device_index);
#else
    dit_error (DIT_ERR_UNSUPPORTED,
        "CUDA backend not built (configure with -Dcuda=enabled)");
    return NULL;
#endif
  }
  dit_error (DIT_ERR_INVALID, "unknown backend '%s' (known: cpu, cuda)", name);
  return NULL;
}

static dit_backend *dit_cpu_singleton;
static pthread_once_t dit_cpu_singleton_once = PTHREAD_ONCE_INIT;

static void
dit_cpu_singleton_init (void)
{
  dit_cpu_singleton = dit_backend_cpu_create ();
}

dit_backend *
dit_backend_cpu (void)
{
  pthread_once (&dit_cpu_singleton_once, dit_cpu_singleton_init);
  return dit_cpu_singleton;
}

void
dit_backend_destroy (dit_backend *be)
{
  /* The shared CPU backend lives for the whole process. */
  if (!be || be == dit_cpu_singleton)
    return;
  if (be->ops && be->ops->destroy)
    be->ops->destroy (be);
}

const char *
dit_backend_name (const dit_backend *be)
{
  return be && be->ops && be->ops->name ? be->ops->name : "(null)";
}

dit_device
dit_backend_device (const dit_backend *be)
{
  return be && be->ops ? be->ops->device : DIT_DEVICE_CPU;
}

/* Whether the table has the entry of `op` at all. */
static int
backend_has_op (const dit_backend_ops *o, dit_op op)
{
  switch (op) {
    case DIT_OP_GEMM: return o->gemm != NULL;
    case DIT_OP_LAYERNORM: return o->layernorm != NULL;
    case DIT_OP_RMSNORM: return o->rmsnorm != NULL;
    case DIT_OP_MODULATE: return o->modulate != NULL;
    case DIT_OP_RESIDUAL: return o->residual != NULL;
    case DIT_OP_ADD: return o->add != NULL;
    case DIT_OP_UNARY: return o->unary != NULL;
    case DIT_OP_COPY: return o->copy != NULL;
    case DIT_OP_ROPE: return o->rope != NULL;
    case DIT_OP_ATTENTION: return o->attention != NULL;
    case DIT_OP_PATCHIFY: return o->patchify != NULL;
    case DIT_OP_UNPATCHIFY: return o->unpatchify != NULL;
    case DIT_OP_TIMESTEP: return o->timestep != NULL;
    case DIT_OP_FLOW_STEP: return o->flow_step != NULL;
    case DIT_OP_NOISE: return o->noise != NULL;
    case DIT_OP_LAYERNORM_MODULATE: return o->layernorm_modulate != NULL;
    case DIT_OP_QK_NORM_ROPE: return o->qk_norm_rope != NULL;
    case DIT_OP_NOISE_FLOW: return o->noise_flow != NULL;
    case DIT_OP_RMSNORM_SUMSQ: return o->rmsnorm_sumsq != NULL;
    case DIT_OP_RMSNORM_APPLY: return o->rmsnorm_apply != NULL;
    case DIT_OP_QUANTIZE_FP8: return o->quantize_fp8 != NULL;
    case DIT_OP_LAYERNORM_FP8: return o->layernorm_fp8 != NULL;
    case DIT_OP_GEMM_FP8: return o->gemm_fp8 != NULL;
    case DIT_OP_ATTENTION_FP8: return o->attention != NULL;
    case DIT_OP_DEQUANTIZE_FP8: return o->dequantize_fp8 != NULL;
    default: return 0;
  }
}

int
dit_backend_supports (dit_backend *be, dit_op op, dit_dtype dtype)
{
  if (!be || !be->ops || !backend_has_op (be->ops, op))
    return 0;
  return !be->ops->supports || be->ops->supports (be, op, dtype);
}

void *
dit_backend_alloc (dit_backend *be, size_t bytes)
{
  if (!be || !be->ops || !be->ops->alloc) {
    dit_error (DIT_ERR_INVALID, "alloc: no backend");
    return NULL;
  }
  void *p = be->ops->alloc (be, bytes);
  if (!p)
    dit_error (DIT_ERR_NOMEM, "cannot allocate %zu bytes on backend %s",
        bytes, dit_backend_name (be));
  return p;
}

void
dit_backend_free (dit_backend *be, void *ptr)
{
  if (ptr && be && be->ops && be->ops->free)
    be->ops->free (be, ptr);
}

/* The memory entries every backend has; a table without one is refused. */
#define DIT_MEMORY_ENTRY(be, field)                                           \
  do {                                                                        \
    if (!(be) || !(be)->ops)                                                  \
      return dit_error (DIT_ERR_INVALID, #field ": no backend");              \
    if (!(be)->ops->field)                                                    \
      return dit_error (DIT_ERR_UNSUPPORTED, #field " not implemented by "    \
          "backend %s", dit_backend_name (be));                               \
  } while (0)

dit_status
dit_upload (dit_backend *be, void *dst, const void *host, size_t bytes)
{
  DIT_MEMORY_ENTRY (be, upload);
  dit_thread_copies.uploads++;
  dit_thread_copies.upload_bytes += bytes;
  return be->ops->upload (be, dst, host, bytes);
}

dit_status
dit_download (dit_backend *be, void *host, const void *src, size_t bytes)
{
  DIT_MEMORY_ENTRY (be, download);
  dit_thread_copies.downloads++;
  dit_thread_copies.download_bytes += bytes;
  return be->ops->download (be, host, src, bytes);
}

dit_status
dit_memset_zero (dit_backend *be, void *dst, size_t bytes)
{
  DIT_MEMORY_ENTRY (be, memset_zero);
  return be->ops->memset_zero (be, dst, bytes);
}

dit_status
dit_synchronize (dit_backend *be)
{
  DIT_MEMORY_ENTRY (be, synchronize);
  return be->ops->synchronize (be);
}

int
dit_backend_has_synthetic_normal (const dit_backend *be)
{
  return be && be->ops && be->ops->synthetic_normal;
}

dit_status
dit_synthetic_normal (dit_backend *be, void *dst, dit_dtype dt, int64_t begin,
    int64_t n, uint64_t seed, uint64_t stream, double scale, double offset)
{
  DIT_MEMORY_ENTRY (be, synthetic_normal);
  return be->ops->synthetic_normal (be, dst, dt, begin, n, seed, stream,
      scale, offset);
}

int
dit_backend_has_graphs (const dit_backend *be)
{
  return be && be->ops && be->ops->graph_begin && be->ops->graph_end
      && be->ops->graph_launch && be->ops->graph_free;
}

dit_status
dit_graph_begin (dit_backend *be)
{
  DIT_MEMORY_ENTRY (be, graph_begin);
  return be->ops->graph_begin (be);
}

dit_status
dit_graph_end (dit_backend *be, dit_graph **out)
{
  DIT_MEMORY_ENTRY (be, graph_end);
  return be->ops->graph_end (be, out);
}

dit_status
dit_graph_launch (dit_backend *be, dit_graph *g)
{
  DIT_MEMORY_ENTRY (be, graph_launch);
  return be->ops->graph_launch (be, g);
}

void
dit_graph_free (dit_backend *be, dit_graph *g)
{
  if (g && be && be->ops && be->ops->graph_free)
    be->ops->graph_free (be, g);
}

dit_status
dit_tensor_alloc (dit_backend *be, dit_tensor *t, dit_dtype dt, int ndim,
    const int64_t *shape)
{
  if (!be || !be->ops || !be->ops->alloc)
    return dit_error (DIT_ERR_INVALID, "tensor alloc: no backend");
  if (!t || (ndim > 0 && !shape))
    return dit_error (DIT_ERR_INVALID, "tensor alloc: NULL tensor or shape");
  if (ndim < 1 || ndim > DIT_MAX_DIMS)
    return dit_error (DIT_ERR_INVALID, "tensor alloc: %d dimensions (1..%d "
        "supported)", ndim, DIT_MAX_DIMS);
  if (dt != DIT_F32 && dt != DIT_BF16 && dt != DIT_F16 && dt != DIT_F8E4M3)
    return dit_error (DIT_ERR_INVALID, "tensor alloc: unknown dtype %d", (int) dt);
  size_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return dit_error (DIT_ERR_INVALID, "tensor alloc: negative extent %lld "
          "in dimension %d", (long long) shape[i], i);
    if (shape[i] > 0 && numel > SIZE_MAX / 4 / (size_t) shape[i])
      return dit_error (DIT_ERR_INVALID, "tensor alloc: shape too large");
    numel *= (size_t) shape[i];
  }
  size_t bytes = numel * dit_dtype_size (dt);
  void *p = be->ops->alloc (be, bytes);
  if (!p)
    return dit_error (DIT_ERR_NOMEM, "tensor alloc: cannot allocate %zu bytes "
        "on backend %s", bytes, dit_backend_name (be));
  *t = dit_tensor_make (p, dt, be->ops->device, ndim, shape);
  return DIT_OK;
}

void
dit_tensor_free (dit_backend *be, dit_tensor *t)
{
  if (!t || !t->data)
    return;
  if (be && be->ops && be->ops->free)
    be->ops->free (be, t->data);
  t->data = NULL;
}

void
dit_backend_set_observer (dit_backend *be, dit_op_observer_fn fn, void *user)
{
  if (!be)
    return;
  be->observer = fn;
  be->observer_user = fn ? user : NULL;
}

/* One dispatcher per op: the backend must exist and implement the op; the
 * observer, if any, sees the op first. */
#define DIT_DISPATCH(fn, field, ptype, opid)                                  \
  dit_status                                                                  \
  fn (dit_backend *be, const ptype *p)                                        \
  {                                                                           \
    if (!be || !be->ops)                                                      \
      return dit_error (DIT_ERR_INVALID, "op " #field ": no backend");        \
    if (!p)                                                                   \
      return dit_error (DIT_ERR_INVALID, "op " #field ": NULL parameters");   \
    if (!be->ops->field)                                                      \
      return dit_error (DIT_ERR_UNSUPPORTED,                                  \
          "op " #field " not implemented by backend %s",                      \
          dit_backend_name (be));                                             \
    if (be->observer)                                                         \
      be->observer (be->observer_user, be, opid);                             \
    return be->ops->field (be, p);                                            \
  }

DIT_DISPATCH (dit_gemm, gemm, dit_gemm_params, DIT_OP_GEMM)
DIT_DISPATCH (dit_layernorm, layernorm, dit_layernorm_params, DIT_OP_LAYERNORM)
DIT_DISPATCH (dit_rmsnorm, rmsnorm, dit_rmsnorm_params, DIT_OP_RMSNORM)
DIT_DISPATCH (dit_modulate, modulate, dit_modulate_params, DIT_OP_MODULATE)
DIT_DISPATCH (dit_residual, residual, dit_residual_params, DIT_OP_RESIDUAL)
DIT_DISPATCH (dit_add, add, dit_add_params, DIT_OP_ADD)
DIT_DISPATCH (dit_unary, unary, dit_unary_params, DIT_OP_UNARY)
DIT_DISPATCH (dit_copy, copy, dit_copy_params, DIT_OP_COPY)
DIT_DISPATCH (dit_rope, rope, dit_rope_params, DIT_OP_ROPE)
DIT_DISPATCH (dit_attention, attention, dit_attn_params, DIT_OP_ATTENTION)
DIT_DISPATCH (dit_patchify, patchify, dit_patchify_params, DIT_OP_PATCHIFY)
DIT_DISPATCH (dit_unpatchify, unpatchify, dit_unpatchify_params,
    DIT_OP_UNPATCHIFY)
DIT_DISPATCH (dit_timestep, timestep, dit_timestep_params, DIT_OP_TIMESTEP)
DIT_DISPATCH (dit_flow_step, flow_step, dit_flow_step_params, DIT_OP_FLOW_STEP)
DIT_DISPATCH (dit_noise, noise, dit_noise_params, DIT_OP_NOISE)
DIT_DISPATCH (dit_layernorm_modulate, layernorm_modulate,
    dit_layernorm_modulate_params, DIT_OP_LAYERNORM_MODULATE)
DIT_DISPATCH (dit_qk_norm_rope, qk_norm_rope, dit_qk_norm_rope_params,
    DIT_OP_QK_NORM_ROPE)
DIT_DISPATCH (dit_noise_flow, noise_flow, dit_noise_flow_params,
    DIT_OP_NOISE_FLOW)
DIT_DISPATCH (dit_quantize_fp8, quantize_fp8, dit_quantize_fp8_params,
    DIT_OP_QUANTIZE_FP8)
DIT_DISPATCH (dit_layernorm_fp8, layernorm_fp8, dit_layernorm_fp8_params,
    DIT_OP_LAYERNORM_FP8)
DIT_DISPATCH (dit_gemm_fp8, gemm_fp8, dit_gemm_fp8_params, DIT_OP_GEMM_FP8)
DIT_DISPATCH (dit_dequantize_fp8, dequantize_fp8, dit_dequantize_fp8_params,
    DIT_OP_DEQUANTIZE_FP8)

dit_status
dit_fp8_check (dit_backend *be)
{
  if (!be || !be->ops)
    return dit_error (DIT_ERR_INVALID, "fp8: no backend");
  if (!be->ops->gemm_fp8 || !be->ops->quantize_fp8 || !be->ops->layernorm_fp8)
    return dit_error (DIT_ERR_UNSUPPORTED, "fp8: backend %s has no FP8 ops",
        dit_backend_name (be));
  return be->ops->fp8_check ? be->ops->fp8_check (be) : DIT_OK;
}
DIT_DISPATCH (dit_rmsnorm_sumsq, rmsnorm_sumsq, dit_rmsnorm_sumsq_params,
    DIT_OP_RMSNORM_SUMSQ)
DIT_DISPATCH (dit_rmsnorm_apply, rmsnorm_apply, dit_rmsnorm_apply_params,
    DIT_OP_RMSNORM_APPLY)
