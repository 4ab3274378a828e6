/* vae_conv_mma — the pipelined tensor-core path of the VAE convolution
 * (vae_conv_mma.cu), used by dit_cuda_vae_conv when the shapes allow it. */
#ifndef DIT_VAE_CONV_MMA_CUH
#define DIT_VAE_CONV_MMA_CUH

#include "cuda_common.cuh"

/* The channel tile (128, 96 or 64) for a conv the fast path handles, 0 when
 * it must take the generic kernel (dtypes other than bf16, Cin not a
 * multiple of 32, Cout not a multiple of 64 or 96, unaligned views, or
 * DIT_VAE_CONV_GENERIC set in the environment).  Arguments already
 * validated by dit_cuda_vae_conv. */
int dit_cuda_vae_conv_mma_block_n (const dit_vae_conv_params *p, int64_t cin,
    int64_t cout);

dit_status dit_cuda_vae_conv_mma (dit_backend *be, const dit_vae_conv_params *p,
    int bn, int prev_frames, int64_t to, int64_t ho, int64_t wo);

/* The cuDNN path (vae_conv_cudnn.cu): whether it takes this conv (cuDNN
 * loadable, bf16 throughout, symmetric spatial padding, channels multiples
 * of 8, contiguous frames; DIT_VAE_CONV=own or DIT_VAE_CONV_GENERIC set
 * turn it off), and the conv itself. */
int dit_cuda_vae_conv_cudnn_usable (const dit_vae_conv_params *p, int64_t cin,
    int64_t cout);
dit_status dit_cuda_vae_conv_cudnn (dit_backend *be,
    const dit_vae_conv_params *p, int64_t prev_frames, int64_t to, int64_t ho,
    int64_t wo);
/* The CUDA-core path for Cout <= 4 (vae_conv_small.cu): whether it takes
 * this conv (its weights fit in shared memory; DIT_VAE_CONV_GENERIC turns
 * it off), and the conv itself. */
int dit_cuda_vae_conv_small_ok (dit_backend *be, const dit_vae_conv_params *p,
    int64_t cin, int64_t cout);
dit_status dit_cuda_vae_conv_small (dit_backend *be,
    const dit_vae_conv_params *p, int64_t prev_frames, int64_t to, int64_t ho,
    int64_t wo);
/* Releases a backend's cuDNN handle, plans and buffers. */
void dit_cuda_cudnn_free (dit_cuda_backend *cb);

#endif
