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

#endif
