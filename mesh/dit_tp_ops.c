/* dit_tp_ops — dispatch of the tensor-parallel ops (dit_ops.h) by the
 * backend's device.  They live outside the backend vtable so that a backend
 * without them still works at TP = 1; a backend that has none fails with a
 * message naming the op and the backend.
 */
#include "../kernels/dit_backend.h"
#include "../kernels/dit_tp_kernels.h"
#include "dit_build_config.h"

dit_status
dit_rmsnorm_sumsq (dit_backend *be, const dit_rmsnorm_sumsq_params *p)
{
  if (!be || !p || !p->x || !p->sumsq)
    return dit_error (DIT_ERR_INVALID, "rmsnorm_sumsq: missing argument");
  if (be->ops->device == DIT_DEVICE_CPU)
    return dit_cpu_rmsnorm_sumsq (be, p);
#if DIT_HAVE_CUDA
  if (be->ops->device == DIT_DEVICE_CUDA)
    return dit_cuda_rmsnorm_sumsq (be, p);
#endif
  return dit_error (DIT_ERR_UNSUPPORTED,
      "rmsnorm_sumsq: backend '%s' has no tensor-parallel norm", be->ops->name);
}

dit_status
dit_rmsnorm_apply (dit_backend *be, const dit_rmsnorm_apply_params *p)
{
  if (!be || !p || !p->x || !p->y || !p->sumsq || !p->weight)
    return dit_error (DIT_ERR_INVALID, "rmsnorm_apply: missing argument");
  if (be->ops->device == DIT_DEVICE_CPU)
    return dit_cpu_rmsnorm_apply (be, p);
#if DIT_HAVE_CUDA
  if (be->ops->device == DIT_DEVICE_CUDA)
    return dit_cuda_rmsnorm_apply (be, p);
#endif
  return dit_error (DIT_ERR_UNSUPPORTED,
      "rmsnorm_apply: backend '%s' has no tensor-parallel norm", be->ops->name);
}
