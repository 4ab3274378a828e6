/* dit_stage0 — Stage 0 of a chunk's life after the generator: the context
 * rule, the anchor path and the in-order display decode queue, in the
 * memory of one backend (DESIGN §2).
 *
 * Per chunk k, in this order:
 *   1. dit_stage0_context (k): the KV-recompute context of chunk k
 *      [16, C, h, w] (model/dit_stream.h states the rule), made from the
 *      latents and anchor held here;
 *   2. the generator (or the mesh) makes chunk k's x0 [16, F, h, w];
 *   3. dit_stage0_push_chunk (k, x0): x0 joins the context history and the
 *      decode queue, and the anchor path runs: the latents up to the next
 *      chunk's anchor latent are decoded by the display decoder and the
 *      last pixel frame of that latent is re-encoded as a single image (the
 *      anchor of chunk k + 1).  The frames stay in the queue;
 *   4. the display takes the frames of each latent (dit_stage0_decode_to,
 *      dit_stage0_frames, dit_stage0_release), so every latent is decoded
 *      exactly once.
 *
 * Memory: every latent, frame and anchor lives in backend memory (device
 * memory on CUDA, host memory on the CPU); nothing here copies to the host.
 * A consumer that wants host bytes downloads a frame view itself.  Tensors
 * of another backend instance of the same device (the generator's own
 * stream) are ordered with events: push_chunk waits for the producer's work
 * before it reads x0, and context makes the consumer's stream wait for the
 * context before the caller runs on it.
 *
 * Decoders: the full VAE decodes for the display and the anchor path, or
 * a display decoder of its own (a TAEHV tiny decoder, model/dit_taehv.h:
 * the same frame counts) decodes the queue beside it.  The anchor's frame
 * then comes from the full VAE (dit_anchor_decoder full: its decoder
 * stream sees only the anchor latents, one full decode per chunk) or from
 * the display decoder's frames (tiny); the re-encode is always the full
 * VAE's.  Without a decoder (anchor = latent, nobody displays) only the
 * context is kept.
 *
 * The anchor's stream: when the full VAE serves only the anchor path (a
 * display decoder of its own decodes the queue), the anchor path runs on
 * a backend instance of its own (its own stream on the same device and
 * context, dit_stage0_anchor_stream): push_chunk enqueues it and returns,
 * the display decode of the same chunk runs beside it on the caller's
 * stream, and events order the two: the anchor stream waits for the
 * latent (or the display's frame) it reads, the caller's stream waits for
 * the anchor before the context reads it and before a slot the anchor
 * path read is written again.  Same ops, same inputs: the results are
 * bit-identical to the serial order.  Where the full VAE also displays,
 * the anchor's frame is the display's own decode, and the anchor path
 * stays on the caller's stream (a re-encode on another stream would need
 * a second full VAE's weights and workspace).  On the CPU every op is
 * complete when it returns, so either order is the serial one.
 *
 * Not thread-safe: a caller that feeds and displays from two threads (the
 * GStreamer session) serialises the calls and bounds the hand-off with
 * dit_stage0_has_room.
 */
#ifndef DIT_STAGE0_H
#define DIT_STAGE0_H

#include "../kernels/dit_backend.h"
#include "dit_stream.h"
#include "dit_taehv.h"
#include "dit_vae.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which decoder makes the anchor path's frame. */
typedef enum dit_anchor_decoder {
  DIT_ANCHOR_DECODER_FULL = 0,  /* the full VAE */
  DIT_ANCHOR_DECODER_TINY = 1,  /* the display decoder (the full VAE unless
                                   a display decoder of its own is set) */
} dit_anchor_decoder;

/* Where the anchor path runs. */
typedef enum dit_stage0_anchor_stream {
  DIT_STAGE0_ANCHOR_STREAM_AUTO = 0,  /* its own where the backend has
                                         events (CUDA), else shared */
  DIT_STAGE0_ANCHOR_STREAM_SHARED = 1,  /* the caller's backend: the serial
                                           order */
  DIT_STAGE0_ANCHOR_STREAM_OWN = 2,   /* a backend instance of its own on
                                         any backend (the CPU too: tests) */
} dit_stage0_anchor_stream;

typedef struct dit_stage0_config {
  int latent_h, latent_w;       /* latent grid (pixels / 8) */
  int frames_per_chunk;         /* F */
  int context_frames;           /* C, 1..F */
  dit_anchor_mode anchor;       /* decoded: the anchor path re-encodes */
  int capacity;                 /* latents held for the display, >= F */
  /* The full VAE (NULL: no decoder; anchor must then be DIT_ANCHOR_LATENT
   * and nothing can be displayed).  dtype: its activation dtype. */
  const dit_vae_config *vae_config;
  const dit_weights *vae_weights;
  dit_dtype vae_dtype;
  /* A display decoder of its own (NULL: the full VAE displays), in
   * vae_dtype; it needs the full VAE beside it. */
  const dit_taehv_config *display_config;
  const dit_weights *display_weights;
  dit_anchor_decoder anchor_decoder;
  /* Used only beside a display decoder of its own (see above);
   * dit_stage0_config_default: auto, or $DIT_STAGE0_ANCHOR_STREAM
   * (shared | own). */
  dit_stage0_anchor_stream anchor_stream;
} dit_stage0_config;

void dit_stage0_config_default (dit_stage0_config *c);

typedef struct dit_stage0 dit_stage0;

dit_status dit_stage0_create (const dit_stage0_config *cfg, dit_backend *be,
    dit_stage0 **out);
void dit_stage0_free (dit_stage0 *s);
/* A new stream: history, anchor, decode queue and decoder state go. */
void dit_stage0_reset (dit_stage0 *s);
const dit_stage0_config *dit_stage0_get_config (const dit_stage0 *s);
int dit_stage0_has_decoder (const dit_stage0 *s);
/* Whether a display decoder of its own decodes the queue. */
int dit_stage0_has_display_decoder (const dit_stage0 *s);
/* Whether the anchor path runs on a backend instance of its own. */
int dit_stage0_anchor_on_own_stream (const dit_stage0 *s);
/* The host waits for both streams (the caller's and the anchor's); the
 * anchor path's time is then in the statistics. */
dit_status dit_stage0_sync (dit_stage0 *s);

/* ---- generator side ------------------------------------------------------- */

/* The context of chunk k (k >= 1) as a view of a buffer held here, valid
 * until the next call; *ctx's data is NULL for chunk 0.  `consumer` (the
 * backend that reads it; NULL = this one) waits for it on its stream, and
 * for every earlier push_chunk to have read its x0. */
dit_status dit_stage0_context (dit_stage0 *s, int64_t chunk_index,
    dit_backend *consumer, dit_tensor *ctx);

/* Take chunk k's result x0 [16, F, h, w] (f32, on this device or the host;
 * `producer` = the backend that wrote it, NULL = this one) and run the
 * anchor path for chunk k + 1.  Chunks come in order from 0 after a reset.
 * DIT_ERR_STATE when the decode queue has no room for F more latents (the
 * display is behind): the caller waits for dit_stage0_has_room first. */
dit_status dit_stage0_push_chunk (dit_stage0 *s, int64_t chunk_index,
    const dit_tensor *x0, dit_backend *producer);

/* ---- display side --------------------------------------------------------- */

/* Room for n more latents in the decode queue. */
int dit_stage0_has_room (const dit_stage0 *s, int n);
/* Queue latents [first, first + n) of x [16, n, h, w] (any device) that the
 * generator side did not push (a display fed by something else); latents
 * already queued are skipped, a gap is an error. */
dit_status dit_stage0_submit (dit_stage0 *s, int64_t first, int n,
    const dit_tensor *x, dit_backend *producer);
/* Decode queued latents in order up to and including `latent`. */
dit_status dit_stage0_decode_to (dit_stage0 *s, int64_t latent);
/* The decoded frames of a latent as a view [3, T, H, W] in backend memory
 * (T = 1 for latent 0, else 4); DIT_ERR_STATE when not decoded or already
 * released. */
dit_status dit_stage0_frames (const dit_stage0 *s, int64_t latent,
    dit_tensor *frames);
/* Drop everything up to and including `latent`; releasing past what was
 * queued skips ahead (a display that decodes on its own). */
void dit_stage0_release (dit_stage0 *s, int64_t latent);
/* Nobody displays: decode what is queued (the decoder must see every
 * latent) and drop it. */
dit_status dit_stage0_drain (dit_stage0 *s);

int64_t dit_stage0_next_submit (const dit_stage0 *s);
int64_t dit_stage0_next_decode (const dit_stage0 *s);
int dit_stage0_held (const dit_stage0 *s);

/* ---- statistics ----------------------------------------------------------- */

typedef struct dit_stage0_stats {
  int64_t decoded;              /* latents decoded since the last reset */
  int64_t anchors;              /* anchors re-encoded */
  int64_t busy_us;              /* decodes + the anchor path since create:
                                   wall time (the backend is synchronised
                                   after each), on the anchor's own stream
                                   its time between two timed events */
  double last_anchor_ms;        /* the last anchor path: decodes + encode
                                   (on its own stream: the display decodes
                                   up to the anchor latent, if they make its
                                   frame, plus the anchor stream's time;
                                   collected by the next push_chunk or by
                                   dit_stage0_sync) */
  double last_decode_ms;        /* the last latent decode */
} dit_stage0_stats;
void dit_stage0_get_stats (const dit_stage0 *s, dit_stage0_stats *out);

#ifdef __cplusplus
}
#endif
#endif
