/* dit_backend — backend creation, tensor allocation and op dispatch.
 *
 * Model code calls dit_gemm (be, &params) and friends; each dispatch
 * function checks that the backend exists and implements the op, then hands
 * the parameter struct to the backend's table unchanged.  Shape, dtype and
 * device validation is the backend's job (it knows what it can do), so a CPU
 * and a CUDA backend report the same kind of message for the same mistake.
 */
#include "dit_build_config.h"
#include "dit_backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

void *
dit_host_alloc (dit_backend *be, size_t bytes)
{
  if (be && be->ops && be->ops->host_alloc)
    return be->ops->host_alloc (be, bytes ? bytes : 1);
  return malloc (bytes ? bytes : 1);
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

static const char *
dit_backend_name (const dit_backend *be)
{
  return be && be->ops && be->ops->name ? be->ops->name : "(null)";
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
