/* dit_stream — the Stage 0 bookkeeping of a chunked video stream, with no
 * GStreamer types: chunk/frame arithmetic, the KV-recompute context (anchor
 * path ordering), the in-order display decode queue, pixel conversion and
 * checkpoint detection.  The GStreamer elements call these; tests and tools
 * can drive the same logic without a pipeline.
 *
 * Frame arithmetic (WanVAE, spec §5.6): latent 0 of a stream decodes to 1
 * pixel frame, every later latent to 4.  A chunk is F latents, so chunk 0
 * gives 4F - 3 pixel frames (9 at F = 3) and every later chunk 4F (12).
 *
 * Context of chunk k (n = kF its first latent, C context frames, C <= F),
 * following scope's krea_realtime_video (spec §4.7d):
 *   k = 0:        none (no recompute);
 *   n - C <  C:   [latent 0, latents n-C+1 .. n-1];
 *   n - C >= C:   [anchor, latents n-C+1 .. n-1], where the anchor is
 *                 - DIT_ANCHOR_DECODED: VAE encode (single image, fresh
 *                   cache) of the last pixel frame of latent n - C as the
 *                   display decoder produced it (at C = F: the first latent
 *                   of the previous chunk);
 *                 - DIT_ANCHOR_LATENT: latent n - C itself.
 * So after chunk k's result arrives, latent (k+1)F - C must be decoded and
 * its last frame re-encoded before chunk k+1 can start; the remaining
 * latents of chunk k are decoded for display afterwards.
 *
 * Latent tensors here are host f32 in the generator's layout [16, F, h, w];
 * one latent is [16, h, w].  Pixel frames are VAE layout [3, T, H, W] in
 * [-1, 1].
 */
#ifndef DIT_STREAM_H
#define DIT_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/dit_status.h"
#include "../kernels/dit_tensor.h"
#include "dit_config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DIT_LATENT_CHANNELS 16

/* ---- frame arithmetic ---- */

/* Pixel frames of latent `i` of a stream (1 for latent 0, else 4). */
int dit_stream_latent_frames (int64_t latent_index);
/* Index of the first pixel frame of latent `i` (0, 1, 5, 9, ...). */
int64_t dit_stream_latent_first_frame (int64_t latent_index);
/* Pixel frames of chunk k (4F - 3 for chunk 0, else 4F). */
int dit_stream_chunk_frames (int64_t chunk_index, int frames_per_chunk);
/* Index of the first pixel frame of chunk k (0, 4F-3, 8F-3, ...). */
int64_t dit_stream_chunk_first_frame (int64_t chunk_index, int frames_per_chunk);
/* First denoising step for video-to-video at `strength` in [0, 1]: the
 * first step whose timestep is <= 1000 * strength (the last step when
 * none is). */
int dit_stream_first_step (const double *steps, int num_steps, double strength);

/* ---- context (anchor path) ---- */

typedef enum dit_anchor_mode {
  DIT_ANCHOR_DECODED = 0,
  DIT_ANCHOR_LATENT = 1,
} dit_anchor_mode;

/* The rule itself, for code that keeps the latents elsewhere
 * (model/dit_stage0.h keeps them in backend memory).  For chunk k >= 1:
 * the latent whose data fills context slot j (0 <= j < C); slot 0 holds
 * its re-encoded anchor instead when dit_context_slot0_is_anchor says so. */
int64_t dit_context_slot_latent (int frames_per_chunk, int context_frames,
    int64_t chunk_index, int slot);
int dit_context_slot0_is_anchor (int frames_per_chunk, int context_frames,
    dit_anchor_mode mode, int64_t chunk_index);

typedef struct dit_context dit_context;

dit_status dit_context_create (int frames_per_chunk, int context_frames,
    int latent_h, int latent_w, dit_anchor_mode mode, dit_context **out);
void dit_context_free (dit_context *c);
/* A new stream: forget every latent and anchor. */
void dit_context_reset (dit_context *c);

/* Record chunk k's result x0 [16, F, h, w]; chunks must arrive in order
 * starting at 0 after a reset. */
dit_status dit_context_push_chunk (dit_context *c, int64_t chunk_index,
    const float *x0);
/* The latent whose last decoded pixel frame is the anchor of chunk
 * `next_chunk`, or -1 when that chunk needs no re-encoded anchor (chunk 0,
 * the latent-0 phase, or DIT_ANCHOR_LATENT). */
int64_t dit_context_anchor_latent (const dit_context *c, int64_t next_chunk);
/* Supply that anchor (a VAE-encoded latent [16, h, w]) for `next_chunk`. */
dit_status dit_context_set_anchor (dit_context *c, int64_t next_chunk,
    const float *latent);
/* Write the context of chunk k [16, C, h, w]; DIT_ERR_STATE naming what is
 * missing when the required latents or anchor are not there. */
dit_status dit_context_build (const dit_context *c, int64_t chunk_index,
    float *ctx);

/* ---- in-order display decode queue ---- */

/* Decode one latent [16, 1, h, w] into pixels [3, T, H, W]; T is
 * dit_stream_latent_frames of that latent.  Implemented by the caller
 * around dit_vae_decode. */
typedef dit_status (*dit_decode_fn) (void *user, int64_t latent_index,
    const float *latent, float *pixels);

typedef struct dit_decode_queue dit_decode_queue;

/* capacity: latents held at most (queued + decoded but not yet released). */
dit_status dit_decode_queue_create (int latent_h, int latent_w, int capacity,
    dit_decode_queue **out);
void dit_decode_queue_free (dit_decode_queue *q);
void dit_decode_queue_reset (dit_decode_queue *q);

/* Room for `n` more latents? */
int dit_decode_queue_has_room (const dit_decode_queue *q, int n);
/* Queue latents [first, first + n) taken from x [16, n_total, h, w] at
 * frame offset `offset`.  Latents already queued are skipped; a gap or a
 * full queue is an error. */
dit_status dit_decode_queue_submit (dit_decode_queue *q, int64_t first, int n,
    const float *x, int n_total, int offset);
/* Decode queued latents in order up to and including `latent_index`. */
dit_status dit_decode_queue_run_to (dit_decode_queue *q, int64_t latent_index,
    dit_decode_fn fn, void *user);
/* The decoded frames of a latent (NULL when not decoded or released). */
const float *dit_decode_queue_frames (const dit_decode_queue *q,
    int64_t latent_index, int *nframes);
/* Drop everything up to and including `latent_index`. */
void dit_decode_queue_release (dit_decode_queue *q, int64_t latent_index);
int64_t dit_decode_queue_next_decode (const dit_decode_queue *q);
int64_t dit_decode_queue_next_submit (const dit_decode_queue *q);
/* Latents held (queued or decoded, not released). */
int dit_decode_queue_held (const dit_decode_queue *q);
size_t dit_decode_queue_bytes (const dit_decode_queue *q);

/* ---- latent layout ---- */

/* Copy latent j of x [16, n, h, w] into dst [16, h, w]. */
void dit_latent_extract (const float *x, int n, int j, int hw, float *dst);
/* Copy src [16, h, w] into latent j of x [16, n, h, w]. */
void dit_latent_insert (float *x, int n, int j, int hw, const float *src);

/* ---- latent files ---- */

/* Load the latent stream of a safetensors file as malloc'd host f32
 * [16, N, h, w] (shape in shape[4]): dit-generate's chunks latents.c0 ..
 * latents.c<K-1> (each [16, F_k, h, w]) joined along the frame axis in
 * chunk order, or the one tensor 'latents' [16, N, h, w] of dit-vae
 * encode.  A missing chunk, chunks of different grids, a file with both
 * forms or with neither, and non-float data are errors naming the file and
 * the tensor. */
dit_status dit_stream_load_latents (const char *path, float **out,
    int64_t shape[4]);

/* ---- prompt embeddings ---- */

/* Load text embeddings [rows, dim] from a safetensors file: the tensor
 * named "prompt_embeds", "context" or "embeds", or the only tensor; a
 * leading batch dim of 1 is dropped.  Returns malloc'd f32 rows. */
dit_status dit_stream_load_embeds (const char *path, int text_dim,
    int text_len, float **out, int *rows);

/* The prompt used when none is given: DIT_DEFAULT_PROMPT_ROWS rows of
 * seeded normals (Philox seed 0) scaled by 0.1, the same in the elements
 * and the tools. */
#define DIT_DEFAULT_PROMPT_ROWS 16
void dit_stream_default_embeds (int rows, int dim, float *out);

#ifdef __cplusplus
}
#endif
#endif
