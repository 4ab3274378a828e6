/* vae_cuda — the CUDA backend's WanVAE op table (kernels/dit_vae_ops.h).
 *
 * vae_conv.cu holds the convolution (implicit GEMM on tensor cores),
 * vae_misc.cu the channel RMS norm (+SiLU), upsample, frame copies, the
 * layout/affine op, pixel conversion and the op table itself.  Layout rules
 * are those of dit_vae_ops.h; every tensor must live on the CUDA device,
 * and so must the pixel planes of the pixel ops.
 */
#ifndef DIT_VAE_CUDA_CUH
#define DIT_VAE_CUDA_CUH

#include "cuda_common.cuh"

extern const dit_vae_op_table dit_cuda_vae_ops;

dit_status dit_cuda_vae_conv (dit_backend *be, const dit_vae_conv_params *p);
dit_status dit_cuda_vae_norm (dit_backend *be, const dit_vae_norm_params *p);
dit_status dit_cuda_vae_upsample (dit_backend *be,
    const dit_vae_upsample_params *p);
dit_status dit_cuda_vae_copy_frames (dit_backend *be,
    const dit_vae_copy_frames_params *p);
dit_status dit_cuda_vae_layout (dit_backend *be, const dit_vae_layout_params *p);
dit_status dit_cuda_pixels_to_tensor (dit_backend *be,
    const dit_vae_pixels_params *p);
dit_status dit_cuda_tensor_to_pixels (dit_backend *be,
    const dit_vae_pixels_params *p);

/* A [T, H, W, C] frame tensor on the CUDA device with contiguous frames
 * (free frame stride); writes its dims. */
dit_status dit_cuda_vae_check_frames (const dit_tensor *t, const char *op,
    const char *name, int64_t dims[4]);

#endif
