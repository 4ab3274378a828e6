/* dit_tp_kernels — per-device entry points of the tensor-parallel ops
 * declared in dit_ops.h (dit_rmsnorm_sumsq, dit_rmsnorm_apply).  They are
 * not in the backend vtable: dist/dit_tp_ops.c dispatches on the backend's
 * device, so adding them leaves every backend's op table untouched.
 */
#ifndef DIT_TP_KERNELS_H
#define DIT_TP_KERNELS_H

#include "dit_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

dit_status dit_cpu_rmsnorm_sumsq (dit_backend *be, const dit_rmsnorm_sumsq_params *p);
dit_status dit_cpu_rmsnorm_apply (dit_backend *be, const dit_rmsnorm_apply_params *p);
dit_status dit_cuda_rmsnorm_sumsq (dit_backend *be, const dit_rmsnorm_sumsq_params *p);
dit_status dit_cuda_rmsnorm_apply (dit_backend *be, const dit_rmsnorm_apply_params *p);

#ifdef __cplusplus
}
#endif
#endif
