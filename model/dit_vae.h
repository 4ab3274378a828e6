/* dit_vae — streaming WanVAE (spec §5): causal encoder and decoder with
 * bounded per-conv feature caches, single-frame anchor encode.
 *
 * Streams:
 *  - Encoder: the first call takes exactly 1 pixel frame (frame 0), every
 *    later call exactly 4; each call returns 1 latent frame.  Streaming equals
 *    one offline pass over 1+4k frames.
 *  - Decoder: each call takes 1 (or more) latent frames; latent 0 gives 1
 *    pixel frame, every later latent 4.
 *  - Anchor encode: one pixel frame encoded as a first frame with a fresh
 *    cache, leaving the streaming encoder untouched.
 * State is a fixed set of 2-frame caches per causal conv, so memory does
 * not grow with stream length; reset drops it (new stream / flush).
 *
 * Tensors at this API: pixels [3, T, H, W] in [-1, 1], latents [16, F, H/8,
 * W/8] (normalised with the spec §5.5 mean/std), channels first like the
 * reference; internally the VAE runs channels-last (kernels/dit_vae_ops.h).
 */
#ifndef DIT_VAE_H
#define DIT_VAE_H

#include "../kernels/dit_backend.h"
#include "dit_config.h"
#include "dit_weights.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dit_vae_config {
  char name[32];
  int base_dim;        /* 96 real, smaller for tiny */
  int dim_mult[4];     /* [1, 2, 4, 4] */
  int z_dim;           /* 16 */
  int num_res_blocks;  /* 2 */
} dit_vae_config;

/* "wan" (real dims) or "tiny"; "demo" is the trained demo VAE's shape
 * (detected from its file, no synthetic weights). */
dit_status dit_vae_config_preset (const char *name, dit_vae_config *cfg);
dit_status dit_vae_config_params (const dit_vae_config *cfg,
    dit_param_spec **specs, size_t *count);
const char *const *dit_vae_config_preset_names (void);
/* The preset a checkpoint's shapes name (open file or path), or NULL. */
const char *dit_vae_config_detect (const dit_safetensors *st);
const char *dit_vae_config_detect_path (const char *path);

typedef struct dit_vae dit_vae;

/* width/height in pixels, multiples of 16. */
dit_status dit_vae_create (const dit_vae_config *cfg, const dit_weights *w,
    int width, int height, dit_dtype dtype, dit_backend *be, dit_vae **out);
void dit_vae_free (dit_vae *v);

/* Streaming encode: pixels [3, T, H, W], T = 1 on the first call after
 * create/reset, 4 afterwards; writes latent [16, 1, h, w]. */
dit_status dit_vae_encode (dit_vae *v, const dit_tensor *pixels, dit_tensor *latent);

/* Streaming decode: latent [16, F, h, w]; writes pixels [3, T, H, W] with
 * T = 4F (or 4F - 3 when this call includes latent 0). */
dit_status dit_vae_decode (dit_vae *v, const dit_tensor *latent, dit_tensor *pixels);

/* Encode one frame [3, 1, H, W] with a fresh cache (streaming state kept). */
dit_status dit_vae_encode_anchor (dit_vae *v, const dit_tensor *frame,
    dit_tensor *latent);

void dit_vae_reset_encoder (dit_vae *v);
void dit_vae_reset_decoder (dit_vae *v);

/* Bytes held by the streaming caches (for the bounded-memory tests). */
size_t dit_vae_state_bytes (const dit_vae *v);

/* Additions: */

/* Pixel frames the next dit_vae_encode call takes: 1 (first), then 4. */
int dit_vae_encode_frames (const dit_vae *v);
/* Pixel frames a dit_vae_decode call of n_latents gives now:
 * 4n, or 4n - 3 when the call includes latent 0. */
int64_t dit_vae_decode_frames (const dit_vae *v, int64_t n_latents);
/* Offline encode: resets the encoder, then streams pixels [3, T, H, W]
 * with T = 1 + 4k (frame 0, then chunks of 4) into latents [16, 1 + k, h, w].
 * Any other T is an error. */
dit_status dit_vae_encode_offline (dit_vae *v, const dit_tensor *pixels,
    dit_tensor *latents);
/* Bytes of the fixed activation workspace (allocated at create). */
size_t dit_vae_workspace_bytes (const dit_vae *v);

/* ---------------------------------------------------------------------------
 * Shared with dit_taehv (the tiny autoencoder), which keeps this API's
 * create rules, tensor contract and stream frame rule, and holds its
 * reordered weights the same way. */

/* The checks of a create call after its config's: weights, a backend with
 * the VAE ops, a resolution that is a positive multiple of `multiple`;
 * `what` ("vae create") starts the messages. */
dit_status dit_vae_check_create (const char *what, const dit_weights *w,
    dit_backend *be, int width, int height, int multiple);
/* t is [c, T, h, w] (T < 0: any frame count); `what` starts the messages. */
dit_status dit_vae_check_video (const dit_tensor *t, const char *what,
    int64_t c, int64_t T, int64_t h, int64_t w);
/* Frames [f0, f0 + n) of a [C, T, H, W] tensor, as a view. */
dit_tensor dit_vae_video_frames (const dit_tensor *t, int64_t f0, int64_t n);
/* Pixel frames n_latents give after `decoded` latents of a stream: 4 each,
 * but latent 0 only 1 (a stream's first 3 frames are dropped). */
int64_t dit_vae_stream_frames (int64_t decoded, int64_t n_latents);

/* One latent [16, 1, h, w] of a stream decoded into its pixel frames
 * [3, 1 or 4, H, W]. */
typedef dit_status (*dit_vae_decode_step_fn) (void *net,
    const dit_tensor *latent, dit_tensor *pixels);
/* The decode loop: latent [16, F, h, w] decoded one latent at a time by
 * step (net) into its frames of pixels [3, dit_vae_stream_frames
 * (*decoded, F), H, W] (both checked by the caller), counting them in
 * *decoded.  Stops at the first failure; the caller then resets its
 * stream, whose state the failed step may have left half updated. */
dit_status dit_vae_decode_stream (const dit_tensor *latent,
    dit_tensor *pixels, int64_t *decoded, dit_vae_decode_step_fn step,
    void *net);

/* The checks of an offline encode: pixels [3, 1 + 4k, H, W] and latents
 * [z, 1 + k, H/8, W/8]; `what` ("vae encode") starts the messages. */
dit_status dit_vae_check_offline (const char *what, const dit_tensor *pixels,
    const dit_tensor *latents, int64_t z, int64_t H, int64_t W);
/* Group g of the pixels [3, 1 + 4k, H, W] of a stream, as the encoders
 * take them: frame 0 alone, then frames 4g - 3 .. 4g. */
dit_tensor dit_vae_stream_group (const dit_tensor *pixels, int64_t g);

/* Every backend buffer of one network, freed together.  The owner sets be,
 * dtype (of every buffer) and who (the network's name in messages). */
typedef struct dit_vae_buffers {
  dit_backend *be;
  dit_dtype dtype;
  const char *who;
  void **data;
  size_t count, cap;
} dit_vae_buffers;

dit_status dit_vae_buffers_alloc (dit_vae_buffers *b, dit_tensor *t,
    int ndim, const int64_t *shape);
/* A buffer of `shape` holding the host f32 values `host`, in b's dtype. */
dit_status dit_vae_buffers_upload (dit_vae_buffers *b, dit_tensor *t,
    int ndim, const int64_t *shape, const float *host);
void dit_vae_buffers_free (dit_vae_buffers *b);

#ifdef __cplusplus
}
#endif
#endif
