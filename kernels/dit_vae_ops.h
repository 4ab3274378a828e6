/* dit_vae_ops — op parameter structs for the WanVAE (conv3d, norms,
 * resampling, pixel conversion) and the VAE part of the backend op table.
 *
 * VAE activation layout: channels-last, one frame after another:
 * [T, H, W, C] (NDHWC without the batch).  That is the layout an implicit-GEMM
 * conv on tensor cores wants (K = kt*kh*kw*Cin contiguous per output pixel),
 * and the channel RMS norm reads contiguous channel vectors.  Checkpoint
 * conv weights [Cout, Cin, kt, kh, kw] are reordered at load time to
 * [Cout, kt, kh, kw, Cin].
 */
#ifndef DIT_VAE_OPS_H
#define DIT_VAE_OPS_H

#include "dit_status.h"
#include "dit_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dit_backend dit_backend;

/* The VAE ops are filled in by the VAE work; each entry may be NULL on a
 * backend that does not implement it (dit_backend supports() says so). */
typedef struct dit_vae_op_table {
  void *reserved[16];
} dit_vae_op_table;

#ifdef __cplusplus
}
#endif
#endif
