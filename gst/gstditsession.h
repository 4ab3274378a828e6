/* GstDitSession — Stage 0 shared by ditencode, ditgenerate and ditdecode.
 *
 * One session holds one copy of the weights (DiT and VAE) on one backend,
 * the display decoder (a streaming VAE decoder plus the in-order decode
 * queue of model/dit_stream.h) and the cache epoch.  Elements find it
 * through a GstContext of type "dit.session" whose structure carries the
 * session key ("session", the elements' session property) and the object
 * ("dit-session").  Lookup follows the GStreamer context design: a context
 * already set on the element, a CONTEXT query to the peers, a NEED_CONTEXT
 * message, then a new session announced with HAVE_CONTEXT.
 *
 * Stage 0 is a dit_stage0 (model/dit_stage0.h) on the session's backend:
 * the context rule, the anchor path and the display decode queue.  The
 * session adds what GStreamer needs around it: the lock between the
 * generator's and the display's streaming threads, the bounded hand-off
 * (the generator waits while the display is behind), cache epochs and
 * flushing.  ditgenerate takes each chunk's context from it
 * (gst_dit_session_context) and hands it each result
 * (gst_dit_session_push_chunk), which runs the anchor path; ditdecode's
 * display decode (gst_dit_session_display) takes the frames the anchor
 * path decoded instead of decoding again, so every latent is decoded
 * exactly once.
 *
 * The display decoder is the full VAE (vae-model) or, when ditdecode names
 * a decoder-model, a TAEHV tiny decoder (model/dit_taehv.h: the same frame
 * counts); one per session, mixed requests are refused.  The anchor frame
 * comes from the full VAE (default; beside a tiny display its decoder
 * stream sees only the anchor latents) or, with ditgenerate
 * anchor-decoder=tiny, from the display decoder's frames; the re-encode is
 * always the full VAE's.  Both choices go into the dit_stage0's config.
 * Beside a tiny display on CUDA the anchor path runs on a stream of its
 * own (dit_stage0_anchor_stream): gst_dit_session_push_chunk enqueues it
 * and returns, so the display decode of the same chunk runs beside it.
 *
 * On a CUDA backend latents, frames and anchors stay in device memory; a
 * system-memory display downloads its frames, CUDA-memory output converts
 * from the device copy (gst_dit_session_display_device).  With
 * gstreamer-cuda the session also holds the device's primary CUDA context
 * as a GstCudaContext, shared with nvcodec's elements through a
 * "gst.cuda.context" GstContext.
 */
#ifndef __GST_DIT_SESSION_H__
#define __GST_DIT_SESSION_H__

#include <gst/gst.h>
#ifdef DIT_HAVE_GST_CUDA
#include <gst/cuda/gstcudacontext.h>
#else
/* Opaque without gstreamer-cuda (declared as gstcudacontext.h does), so
 * that the elements' cuda_offered field needs no #ifdef; it stays NULL. */
typedef struct _GstCudaContext GstCudaContext;
#endif

#include "dit_generator.h"
#include "dit_loader.h"
#include "dit_stage0.h"
#include "dit_stream.h"
#include "dit_taehv.h"
#include "dit_vae.h"
#include "dit_weights.h"

G_BEGIN_DECLS

#define GST_DIT_SESSION_CONTEXT_TYPE "dit.session"
#define GST_DIT_SESSION_DEFAULT_KEY "default"
/* the libdit defaults (dit_loader.h) */
#define GST_DIT_DEFAULT_MODEL DIT_DEFAULT_MODEL
#define GST_DIT_DEFAULT_VAE DIT_DEFAULT_VAE
#define GST_DIT_DEFAULT_TEXT_MODEL DIT_DEFAULT_TEXT_MODEL
#define GST_DIT_DEFAULT_DEVICE "cpu"

/* TRUE when `model` (NULL or "": `def`) names the demo model and its file
 * for `part` is not installed: the elements then post RESOURCE NOT_FOUND
 * (the message says how to make the file) rather than LIBRARY INIT. */
gboolean gst_dit_demo_missing (const gchar * model, const gchar * def,
    dit_demo_part part);

#define GST_TYPE_DIT_SESSION (gst_dit_session_get_type ())
G_DECLARE_FINAL_TYPE (GstDitSession, gst_dit_session, GST, DIT_SESSION,
    GstObject);

GstDitSession *gst_dit_session_new (const gchar * key);
const gchar *gst_dit_session_get_key (GstDitSession * self);

/* Context plumbing; *session holds a reference. */
gboolean gst_dit_session_ensure (GstElement * element, const gchar * key,
    GstDitSession ** session);
/* An element's set_context and CONTEXT queries.  `key` and `device` point
 * at its session and device properties, read under the element's object
 * lock.  `cuda_offered` is where an element that shares CUDA memory keeps
 * a "gst.cuda.context" set on it (NULL for one that does not); with
 * gstreamer-cuda its CONTEXT queries of that type are answered with the
 * session's CUDA context, made on demand when the device is a CUDA device
 * (so that nvcodec elements that go to READY before ours find it). */
void gst_dit_session_handle_set_context (GstElement * element,
    GstContext * context, gchar * const * key, GstDitSession ** session,
    GstCudaContext ** cuda_offered);
gboolean gst_dit_session_handle_context_query (GstElement * element,
    GstQuery * query, gchar * const * key, gchar * const * device,
    GstDitSession ** session, GstCudaContext ** cuda_offered);

/* Weights.  NULL arguments take the defaults.  On failure *error is a
 * g_malloc'd message (from dit_last_error where the library failed). */
/* precision: a dit_precision, or GST_DIT_PRECISION_AUTO for the session's
 * default (bf16 on CUDA, f32 on the CPU); a session holds one DiT, so a
 * second element asking for another model or precision is refused. */
#define GST_DIT_PRECISION_AUTO (-1)
gboolean gst_dit_session_load_dit (GstDitSession * self, GstElement * element,
    const gchar * model, const gchar * device, gint precision, gchar ** error);
/* The precision the session's DiT weights were loaded in. */
dit_precision gst_dit_session_get_dit_precision (GstDitSession * self);
gboolean gst_dit_session_load_vae (GstDitSession * self, GstElement * element,
    const gchar * vae_model, const gchar * device, gchar ** error);
/* TAEHV weights (a preset or a converted checkpoint) for decoder-model and
 * encoder-model; a session holds one and refuses another. */
gboolean gst_dit_session_load_taehv (GstDitSession * self,
    GstElement * element, const gchar * model, const gchar * device,
    gchar ** error);
/* The display decoder of the session: the loaded TAEHV `decoder_model`, or
 * NULL for the full VAE.  The first call fixes it; a later one that asks
 * for another decoder fails with *error naming both. */
gboolean gst_dit_session_set_display_decoder (GstDitSession * self,
    const gchar * decoder_model, gchar ** error);
/* ditencode's and ditdecode's weights, at NULL_TO_READY.  `key`,
 * `device`, `vae` and `taehv` point at the element's session, device,
 * vae-model and encoder-model or decoder-model properties (read under its
 * object lock); `part` (DIT_TAEHV_ENCODER or DIT_TAEHV_DECODER) says which
 * element it is.  The encoder loads the TAEHV when one is named, else the
 * full VAE; the decoder loads the full VAE either way (the anchor path
 * encodes with it), the TAEHV when named, and makes that the display
 * decoder.  A failure is posted on `element`: RESOURCE NOT_FOUND when the
 * full VAE asked for is the demo's and not installed, else LIBRARY INIT.
 * On a CUDA device the shared CUDA context is made too (`offered` when it
 * wraps it); without it the element has no CUDA memory, which is only
 * logged. */
gboolean gst_dit_session_ensure_vae (GstElement * element,
    GstDitSession ** session, gchar * const * key, gchar * const * device,
    gchar * const * vae, gchar * const * taehv, guint part,
    GstCudaContext * offered);
/* The anchor path's frame: from the full VAE (FALSE, the default) or from
 * the display decoder (TRUE; the same when the display is the full VAE). */
void gst_dit_session_set_anchor_decoder (GstDitSession * self, gboolean tiny);
/* A TAEHV on `be` (NULL: the session's backend) with the session's TAEHV
 * weights; parts: DIT_TAEHV_DECODER and/or DIT_TAEHV_ENCODER. */
dit_taehv *gst_dit_session_new_taehv (GstDitSession * self, dit_backend * be,
    gint width, gint height, guint parts, gchar ** error);
/* The session's device (cpu, cuda:N) without loading weights. */
gboolean gst_dit_session_open_device (GstDitSession * self,
    const gchar * device, gchar ** error);
dit_backend *gst_dit_session_get_backend (GstDitSession * self);
/* Storage dtype of the session's weights: bf16 on CUDA, f32 on the CPU. */
dit_dtype gst_dit_session_get_dtype (GstDitSession * self);
dit_weights *gst_dit_session_get_dit_weights (GstDitSession * self,
    dit_model_config * config);
/* A new VAE instance (own streaming state, shared weights). */
/* A backend of the caller's own on the session's device, for an element
 * that runs ops from its own streaming thread: a backend instance is not
 * thread-safe (stream, cuBLASLt plans, workspace), and on CUDA separate
 * streams also let Stage 0 and the generator run at the same time on one
 * GPU.  The CPU backend is shared.  Release with
 * gst_dit_session_release_backend. */
dit_backend *gst_dit_session_new_private_backend (GstDitSession * self,
    gchar ** error);
void gst_dit_session_release_backend (GstDitSession * self, dit_backend * be);
/* A VAE on `be` (NULL: the session's backend) with the session's weights. */
dit_vae *gst_dit_session_new_vae (GstDitSession * self, dit_backend * be,
    gint width,
    gint height, gchar ** error);

guint64 gst_dit_session_get_epoch (GstDitSession * self);
guint64 gst_dit_session_bump_epoch (GstDitSession * self);

/* Display decoder. */
void gst_dit_session_display_attach (GstDitSession * self);
void gst_dit_session_display_detach (GstDitSession * self);
gboolean gst_dit_session_display_attached (GstDitSession * self);
void gst_dit_session_set_flushing (GstDitSession * self, gboolean flushing);

typedef enum
{
  GST_DIT_DECODE_OK,
  GST_DIT_DECODE_STALE,         /* an older epoch or already shown: drop */
  GST_DIT_DECODE_FLUSHING,
  GST_DIT_DECODE_ERROR,
} GstDitDecodeResult;

/* Display side: prepare Stage 0 for pixel size width x height,
 * `frames_per_chunk` latents per chunk and `max_chunks` chunks in flight. */
gboolean gst_dit_session_display_configure (GstDitSession * self, gint width,
    gint height, gint frames_per_chunk, gint max_chunks, gchar ** error);
/* Generator side: the stream's latent size, context frames and anchor
 * mode (the decoded anchor needs the session's VAE). */
gboolean gst_dit_session_stage0_configure (GstDitSession * self,
    gint latent_w, gint latent_h, gint frames_per_chunk, gint context_frames,
    dit_anchor_mode anchor, gint max_chunks, gchar ** error);

/* Generator side: the context of chunk k of `epoch` (dit_stage0_context:
 * a view valid until the next call, no data for chunk 0; `consumer`'s
 * stream waits for it). */
GstDitDecodeResult gst_dit_session_context (GstDitSession * self,
    guint64 epoch, gint64 chunk_index, dit_backend * consumer,
    dit_tensor * ctx, gchar ** error);
/* Generator side: chunk k's x0 [16, F, h, w] (f32, written by `producer`)
 * joins the history and, with the decoded anchor, the decode queue, and
 * the anchor path runs for chunk k + 1.  Blocks while the decode queue is
 * full (the display has not caught up). */
GstDitDecodeResult gst_dit_session_push_chunk (GstDitSession * self,
    guint64 epoch, gint64 chunk_index, const dit_tensor * x0,
    dit_backend * producer, gchar ** error);

/* Display side: frames of latents [first, first + n) of x [16, n, h, w]
 * into pixels [3, T, H, W] (T returned), decoding what the anchor path has
 * not decoded yet. */
GstDitDecodeResult gst_dit_session_display (GstDitSession * self,
    guint64 epoch, gint64 first, gint n, const gfloat * x, gfloat * pixels,
    gint * num_frames, gchar ** error);

/* Whether the decode queue already holds latents [first, first + n) of
 * `epoch` (queued by the anchor path): then gst_dit_session_display and
 * gst_dit_session_display_device do not read x, which may be NULL. */
gboolean gst_dit_session_display_has_latents (GstDitSession * self,
    guint64 epoch, gint64 first, gint n);

/* Whether the session's backend computes on a CUDA device. */
gboolean gst_dit_session_on_device (GstDitSession * self);
/* Whether the elements of `self` (NULL: no session yet) take and give
 * CUDA memory: the session computes on a CUDA device and holds the shared
 * CUDA context.  FALSE without gstreamer-cuda. */
gboolean gst_dit_session_cuda_memory (GstDitSession * self);
/* What an element's caps queries offer: gst_dit_session_cuda_memory once
 * it has a session; before (a pipeline is linked in NULL) its device
 * property (`device`, read under the element's object lock) decides, so
 * that cudaupload ! ditencode and ditdecode ! cudadownload link at parse
 * time. */
gboolean gst_dit_session_cuda_offerable (GstDitSession * self,
    GstElement * element, gchar * const * device);

/* Display side on the device (CUDA sessions): like gst_dit_session_display,
 * but instead of copying the frames to the host it calls `func` for frame
 * j of the T frames with a [3, H, W] f32 view of the session's device copy
 * of that frame.  `func` runs with the decoder locked and must only queue
 * work on the session backend's stream (FALSE with *error set stops the
 * display); the call synchronizes that stream before it returns, so
 * whatever `func` wrote is complete then. */
typedef gboolean (*GstDitFrameFunc) (const dit_tensor * frame, gint j,
    gpointer user_data, gchar ** error);
GstDitDecodeResult gst_dit_session_display_device (GstDitSession * self,
    guint64 epoch, gint64 first, gint n, const gfloat * x,
    GstDitFrameFunc func, gpointer user_data, gint * num_frames,
    gchar ** error);

#ifdef DIT_HAVE_GST_CUDA
/* The CUDA context shared with gst-plugins-bad's CUDA elements: the
 * device's primary context (the one the CUDA runtime, and so the CUDA
 * backend, works in) retained with cuDevicePrimaryCtxRetain and wrapped as
 * a GstCudaContext.  Made on first need for `device` ("cuda:N"), posted
 * with HAVE_CONTEXT (context type "gst.cuda.context") through `element`.
 * A GstCudaContext set on an element (`offered`) is taken instead when it
 * wraps that same primary context.  FALSE with *error set when `device` is
 * not a CUDA device or CUDA is not usable. */
gboolean gst_dit_session_ensure_cuda_context (GstDitSession * self,
    GstElement * element, const gchar * device, GstCudaContext * offered,
    gchar ** error);
/* transfer none; NULL until ensured. */
GstCudaContext *gst_dit_session_get_cuda_context (GstDitSession * self);
#endif

/* Decoded latents waiting for the display (for stats and tests). */
gint gst_dit_session_display_held (GstDitSession * self);
/* Latents decoded since the last reset (each exactly once). */
gint64 gst_dit_session_decoded_latents (GstDitSession * self);
/* Stage 0 work so far, in us of wall time: every latent decode (display
 * and anchor path) and every anchor re-encode. */
gint64 gst_dit_session_stage0_busy_us (GstDitSession * self);

G_END_DECLS
#endif /* __GST_DIT_SESSION_H__ */
