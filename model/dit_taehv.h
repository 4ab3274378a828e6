/* dit_taehv — TAEHV, the tiny streaming video autoencoder of the public
 * madebyollin/taehv repository (taehv.py), in its Wan 2.1 form (taew2_1:
 * 16 latent channels, patch size 1, 8x spatial and 4x temporal scale), on
 * any backend with the VAE ops.  LightTAE (lightx2v's lighttaew2_1) is the
 * same network and the same state-dict keys; its decoder takes Wan's raw
 * latents (normalised * std + mean) instead of the normalised ones.
 *
 * Network (checkpoint indices of the nn.Sequential in brackets):
 *   encoder  conv 3->E + ReLU [0, 1], then three stages of
 *            TPool(E, 2|2|1) [2, 7, 12] -> conv E->E stride 2 [3, 8, 13]
 *            -> 3 MemBlocks [4-6, 9-11, 14-16]; conv E->16 [17]
 *   decoder  3 tanh(x / 3) [0], conv 16->D0 + ReLU [1, 2], then three
 *            stages of 3 MemBlocks(Ds) [3-5, 9-11, 15-17] -> nearest x2
 *            [6, 12, 18] -> TGrow(Ds, 1|2|2) [7, 13, 19] -> conv Ds->Ds+1
 *            [8, 14, 20]; ReLU [21], conv D3->3 [22]
 *   MemBlock(C): relu(conv(relu(conv(relu(conv([x, past])))) + x)), where
 *            past is the block's input one time step earlier (zeros at the
 *            start of a stream).
 * Every conv is 3x3 with padding 1 (TPool/TGrow are 1x1, no bias).
 *
 * Streams (the same frame rule as the full VAE, dit_vae.h):
 *  - Decoder: each latent gives 4 frames; the first 3 frames of a stream are
 *    dropped (TAEHV's trim), so latent 0 gives 1 frame and every later
 *    latent 4, frames 4k-3 .. 4k, exactly the full VAE's.  ditdecode's
 *    frame counts and timestamps are therefore the same for both decoders.
 *  - Encoder: calls take the full VAE's groups (frame 0 alone, then frames
 *    4k-3 .. 4k) but TAEHV forms latent k from frames 4k .. 4k+3 (its
 *    encode_video pads the end with the last frame), so latent k comes out
 *    of the call that brings frame 4k+4, one call late; the first call
 *    gives nothing and dit_taehv_encode_flush gives the last latent (frame
 *    4k repeated).  The latents cover the same frames as the full VAE's;
 *    only their delivery is one group (4 frames) later.
 * Streaming equals one offline pass over the whole sequence (taehv.py's
 * parallel mode) exactly: a MemBlock's only state is its previous input
 * frame, kept as frame 0 of the block's input buffer.
 *
 * Tensors at this API: pixels [3, T, H, W] in [-1, 1] (TAEHV works in
 * [0, 1]: the layout op maps them), latents [16, F, H/8, W/8] normalised
 * as the DiT uses them (dit_vae.h).  Not thread safe: one caller at a time.
 */
#ifndef DIT_TAEHV_H
#define DIT_TAEHV_H

#include "../kernels/dit_backend.h"
#include "dit_config.h"
#include "dit_weights.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dit_taehv_config {
  char name[32];
  int z_dim;          /* 16 */
  int enc_dim;        /* encoder width (64) */
  int dec_dim[4];     /* decoder widths: stage inputs and the last conv (256, 128, 64, 64) */
  int latent_raw;     /* 1: the decoder takes Wan's raw latents (LightTAE) */
} dit_taehv_config;

/* Presets: "taew2_1" (real widths), "lighttaew2_1" (real widths, raw
 * latents) and "taehv-tiny" (narrow, for tests). */
dit_status dit_taehv_config_preset (const char *name, dit_taehv_config *cfg);
const char *const *dit_taehv_config_preset_names (void);
/* The checkpoint's parameters (taehv.py state-dict names and shapes, conv
 * weights [out, in, kh, kw]), in state-dict order. */
dit_status dit_taehv_config_params (const dit_taehv_config *cfg,
    dit_param_spec **specs, size_t *count);
/* The preset whose widths an open checkpoint's shapes show, or NULL; `seen`
 * (may be NULL) describes what the shapes said.  No tensor data is read. */
const char *dit_taehv_config_detect (const dit_safetensors *st, char *seen,
    size_t seen_size);
/* A checkpoint path's config: the preset of its shapes, with latent_raw
 * from the file's metadata ("latents": "raw" | "normalised", written by
 * tools/convert-pth.py) or else from its name (LightTAE files are named
 * lighttae*).  Errors name the file and, when it is another kind of model,
 * what it looks like. */
dit_status dit_taehv_config_of_path (const char *path, dit_taehv_config *cfg);

typedef struct dit_taehv dit_taehv;

#define DIT_TAEHV_DECODER 1u
#define DIT_TAEHV_ENCODER 2u

/* width/height in pixels, multiples of 8; `parts` selects the decoder, the
 * encoder or both (weights and workspace only for those).  The weights may
 * be freed once this returns (the conv weights are reordered into buffers
 * of the dit_taehv). */
dit_status dit_taehv_create (const dit_taehv_config *cfg, const dit_weights *w,
    int width, int height, dit_dtype dtype, unsigned parts, dit_backend *be,
    dit_taehv **out);
void dit_taehv_free (dit_taehv *t);

/* Pixel frames a dit_taehv_decode call of n_latents gives now: 4n, or
 * 4n - 3 when the call includes latent 0 (the full VAE's rule). */
int64_t dit_taehv_decode_frames (const dit_taehv *t, int64_t n_latents);
/* Streaming decode: latent [16, F, h, w] -> pixels [3, T, H, W],
 * T = dit_taehv_decode_frames (t, F); latents are decoded one at a time.
 * A failed call resets the decoder stream. */
dit_status dit_taehv_decode (dit_taehv *t, const dit_tensor *latent,
    dit_tensor *pixels);

/* Pixel frames the next dit_taehv_encode call takes: 1, then 4. */
int dit_taehv_encode_frames (const dit_taehv *t);
/* Streaming encode of one group (1 frame first, then 4): writes the latent
 * of the previous group into latent [16, 1, h, w] and sets *n_out to 1, or
 * sets it to 0 (the first call). */
dit_status dit_taehv_encode (dit_taehv *t, const dit_tensor *pixels,
    dit_tensor *latent, int *n_out);
/* End of stream: the last group's latent (*n_out 1), or nothing (*n_out 0)
 * when no frame is pending.  The encoder then needs a reset. */
dit_status dit_taehv_encode_flush (dit_taehv *t, dit_tensor *latent, int *n_out);
/* Offline encode: resets the encoder and encodes pixels [3, T, H, W],
 * T = 1 + 4k, into latents [16, 1 + k, h, w] (the stream, then the flush). */
dit_status dit_taehv_encode_offline (dit_taehv *t, const dit_tensor *pixels,
    dit_tensor *latents);

void dit_taehv_reset_decoder (dit_taehv *t);
void dit_taehv_reset_encoder (dit_taehv *t);

const dit_taehv_config *dit_taehv_get_config (const dit_taehv *t);
/* Bytes of streaming state (one frame per MemBlock, the pending encoder
 * frame) and of the fixed workspace; both allocated at create, constant. */
size_t dit_taehv_state_bytes (const dit_taehv *t);
size_t dit_taehv_workspace_bytes (const dit_taehv *t);

#ifdef __cplusplus
}
#endif
#endif
