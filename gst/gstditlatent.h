/* gstditlatent — the latent media type shared by ditencode, ditgenerate and
 * ditdecode: caps (video/x-dit-latent), their validation and mapping to and
 * from video/x-raw, and the per-chunk GstDitLatentMeta.
 *
 * Caps fields: channels (16), width/height (the latent grid = pixels / 8,
 * even so that pixels are multiples of 16), frames (latent frames per
 * buffer = per chunk), dtype (f32 or bf16), framerate (of the pixel video
 * the latents stand for).  One buffer is one chunk, laid out as the
 * generator's [channels, frames, height, width] row-major tensor.
 */
#ifndef __GST_DIT_LATENT_H__
#define __GST_DIT_LATENT_H__

#include <gst/gst.h>
#include <gst/video/video.h>

#include "dit_backend.h"

G_BEGIN_DECLS

/* The enums of the engine that properties use: model/dit_stream.h's
 * dit_anchor_mode, model/dit_stage0.h's dit_anchor_decoder,
 * model/dit_prompt_schedule.h's dit_prompt_reset, model/dit_lora.h's
 * dit_lora_mode. */
#define GST_TYPE_DIT_ANCHOR_MODE (gst_dit_anchor_mode_get_type ())
GType gst_dit_anchor_mode_get_type (void);
#define GST_TYPE_DIT_ANCHOR_DECODER (gst_dit_anchor_decoder_get_type ())
GType gst_dit_anchor_decoder_get_type (void);
/* The DiT's precision as a property: auto or a dit_precision. */
typedef enum
{
  GST_DIT_DTYPE_AUTO = 0,       /* bf16 on CUDA, f32 on the CPU */
  GST_DIT_DTYPE_BF16,
  GST_DIT_DTYPE_FP8,
  GST_DIT_DTYPE_F32,
} GstDitDtype;
#define GST_TYPE_DIT_DTYPE (gst_dit_dtype_get_type ())
GType gst_dit_dtype_get_type (void);
/* A dit_precision (model/dit_config.h), or -1 for auto. */
gint gst_dit_dtype_precision (gint dtype);
#define GST_TYPE_DIT_PROMPT_RESET (gst_dit_prompt_reset_get_type ())
GType gst_dit_prompt_reset_get_type (void);
/* model/dit_lora.h's dit_lora_mode. */
#define GST_TYPE_DIT_LORA_MODE (gst_dit_lora_mode_get_type ())
GType gst_dit_lora_mode_get_type (void);

#define GST_DIT_LATENT_MEDIA_TYPE "video/x-dit-latent"
#define GST_DIT_LATENT_FIELDS \
  "channels = (int) 16, width = (int) [ 1, 1024 ], " \
  "height = (int) [ 1, 1024 ], frames = (int) [ 1, 16 ], " \
  "dtype = (string) { f32, bf16 }, framerate = (fraction) [ 0/1, MAX ]"
#define GST_DIT_LATENT_CAPS \
  GST_DIT_LATENT_MEDIA_TYPE ", " GST_DIT_LATENT_FIELDS
/* Pads between dit elements: system memory, or the session device's
 * memory (GST_DIT_CAPS_FEATURE_DEVICE, gstditmemory.h). */
#define GST_DIT_LATENT_CAPS_ANY_MEMORY \
  GST_DIT_LATENT_CAPS "; " GST_DIT_LATENT_MEDIA_TYPE \
  "(" GST_DIT_CAPS_FEATURE_DEVICE "), " GST_DIT_LATENT_FIELDS
#define GST_DIT_RAW_FORMATS_IN "{ RGB, RGBx, RGBA, I420, NV12 }"
#define GST_DIT_RAW_FORMATS_OUT "{ RGBx, RGBA, RGB, I420, NV12 }"
/* Raw video in CUDA memory (gst-plugins-bad's GstCudaMemory) and the
 * formats the engine's pixel conversion reads and writes there. */
#define GST_DIT_CAPS_FEATURE_CUDA "memory:CUDAMemory"
#define GST_DIT_CUDA_FORMATS "{ NV12, RGBA, RGBx, I420 }"
/* Latents in the session device's memory (gstditmemory.h). */
#define GST_DIT_CAPS_FEATURE_DEVICE "memory:DitDevice"
/* The highest frame rate the elements accept. */
#define GST_DIT_MAX_FPS 240

typedef struct _GstDitLatentInfo
{
  gint channels;
  gint width;                   /* latent columns */
  gint height;                  /* latent rows */
  gint frames;                  /* latent frames per buffer */
  gboolean bf16;
  gint fps_n, fps_d;
} GstDitLatentInfo;

/* Parse and validate; on failure returns FALSE and a user-readable reason
 * in *why (g_free it). */
gboolean gst_dit_latent_info_from_caps (GstDitLatentInfo * info,
    const GstCaps * caps, gchar ** why);
GstCaps *gst_dit_latent_info_to_caps (const GstDitLatentInfo * info);
gsize gst_dit_latent_info_buffer_size (const GstDitLatentInfo * info);
#define GST_DIT_SIZE_RULE \
  "width and height must be positive multiples of 16 pixels"
/* Rejects pixel sizes that are not multiples of 16 and rates outside
 * (0, GST_DIT_MAX_FPS]; NULL when fine, else a g_malloc'd reason. */
gchar *gst_dit_check_pixel_size (gint width, gint height, gint fps_n,
    gint fps_d);
/* For raw caps a peer takes: when every structure fixes a width or height
 * that is no multiple of 16, a g_malloc'd reason naming the size and the
 * rule; else NULL. */
gchar *gst_dit_caps_size_error (const GstCaps * raw);

/* Caps transforms for queries: width/height scaled by 1/8 (raw -> latent)
 * or 8 (latent -> raw), framerate kept; the result is unconstrained in the
 * other fields (intersect it with a template), and in a width or height
 * none of whose values maps (so that the size reaches an element's caps
 * handler, which names it). */
GstCaps *gst_dit_caps_raw_to_latent (const GstCaps * raw);
GstCaps *gst_dit_caps_latent_to_raw (const GstCaps * latent,
    const gchar * formats);

/* The system-memory structures of raw caps again with the CUDA memory
 * feature and `formats` (new caps). */
GstCaps *gst_dit_caps_to_cuda (const GstCaps * caps, const gchar * formats);
/* Takes caps, returns them without the structures that have `feature`. */
GstCaps *gst_dit_caps_drop_feature (GstCaps * caps, const gchar * feature);
/* Whether the first structure of caps has `feature`. */
gboolean gst_dit_caps_has_feature (const GstCaps * caps,
    const gchar * feature);

/* One mapped raw frame <-> frame t of host f32 pixels [3, T, H, W] in
 * [-1, 1], through the engine's pixel conversion (RGB/RGBx/RGBA/I420/NV12;
 * YUV uses the caps' colorimetry: BT.709 when the caps say so, BT.601
 * otherwise, limited range unless the caps say full).  FALSE with the
 * library's message in *why on failure. */
gboolean gst_dit_frame_to_pixels (const GstVideoFrame * frame, gfloat * pixels,
    gint t, gint num_frames, gchar ** why);
gboolean gst_dit_pixels_to_frame (const gfloat * pixels, gint t,
    gint num_frames, GstVideoFrame * frame, gchar ** why);

/* The same conversions on backend `be` with an explicit [3, H, W] f32
 * view: on a CUDA backend the frame is mapped with GST_MAP_CUDA (its
 * planes are device pointers) and the view is device memory; the work is
 * queued on the backend's stream, not waited for. */
gboolean gst_dit_frame_to_tensor (dit_backend * be,
    const GstVideoFrame * frame, dit_tensor * view, gchar ** why);
gboolean gst_dit_tensor_to_frame (dit_backend * be, const dit_tensor * view,
    GstVideoFrame * frame, gchar ** why);

/* Buffer payload <-> host f32 [channels, frames, h, w]. */
/* Text-to-video timestamps of chunk k: PTS, duration and frame offsets
 * of its pixel frames (frames_out: frames before it, advanced). */
void gst_dit_latent_set_chunk_times (GstBuffer * buf,
    const GstDitLatentInfo * info, gint64 chunk_index, guint64 * frames_out);
void gst_dit_latent_to_f32 (const GstDitLatentInfo * info, const guint8 * src,
    gfloat * dst);
void gst_dit_latent_from_f32 (const GstDitLatentInfo * info,
    const gfloat * src, guint8 * dst);

/* Per-chunk meta. */
typedef struct _GstDitLatentMeta
{
  GstMeta meta;

  gint64 chunk_index;           /* within the cache epoch, from 0 */
  guint64 cache_epoch;          /* bumped on flush and on hard resets */
  guint64 prompt_epoch;         /* bumped on every prompt change */
  guint64 seed;
  gint valid_frames;            /* pixel frames of this chunk to show */
  gdouble chunk_ms;             /* generator time for the chunk */
  gdouble recompute_ms;
  gdouble denoise_ms;
  gint64 produced_ns;           /* monotonic time the chunk was finished */
} GstDitLatentMeta;

GType gst_dit_latent_meta_api_get_type (void);
#define GST_DIT_LATENT_META_API_TYPE (gst_dit_latent_meta_api_get_type ())
const GstMetaInfo *gst_dit_latent_meta_get_info (void);
#define GST_DIT_LATENT_META_INFO (gst_dit_latent_meta_get_info ())

GstDitLatentMeta *gst_buffer_add_dit_latent_meta (GstBuffer * buffer);
#define gst_buffer_get_dit_latent_meta(b) \
  ((GstDitLatentMeta *) gst_buffer_get_meta ((b), GST_DIT_LATENT_META_API_TYPE))

G_END_DECLS
#endif /* __GST_DIT_LATENT_H__ */
