/**
 * SECTION:element-ditdecode
 * @title: ditdecode
 *
 * Decodes latent chunks (video/x-dit-latent) to video/x-raw with the
 * session's streaming WanVAE decoder, or with a TAEHV tiny decoder when
 * decoder-model names one (taew2_1, lighttaew2_1 or a converted checkpoint:
 * several times faster, a little softer; ditgenerate's anchor still comes
 * from the full VAE unless anchor-decoder=tiny).  Either way latent 0 of a
 * stream gives one frame, every later latent four, so a chunk of 3 latents
 * gives 9 frames first and 12 afterwards, with the same timestamps.  Frames already decoded by ditgenerate's anchor path
 * are taken from the session instead of being decoded again.  Chunks of a
 * stale cache epoch (before a flush) are dropped.
 *
 * Output formats: RGBx (when downstream leaves the format open), RGBA,
 * RGB, I420, NV12.  With device=cuda:N (and gstreamer-cuda at build time)
 * the source pad also offers video/x-raw(memory:CUDAMemory) (NV12 first)
 * to a peer that names it (cudadownload, nvh264enc, a capsfilter; a peer
 * that takes anything gets system memory): frames are converted on the
 * device straight into GstCudaMemory of a GstCudaBufferPool in the
 * session's shared (primary) CUDA context, so nvcodec elements take them
 * without a copy.  A downstream size that is no multiple of 16 pixels is
 * an error naming it.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 ditgenerate num-chunks=4 ! ditdecode ! videoconvert ! autovideosink
 * gst-launch-1.0 ditgenerate num-chunks=4 ! ditdecode decoder-model=taehv-tiny ! videoconvert ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstditdecode.h"

#include <gst/video/video.h>

#include "gstditlatent.h"
#include "gstditmemory.h"
#include "gstditprops.h"
#include "gstditsession.h"

#ifdef DIT_HAVE_GST_CUDA
#include <gst/cuda/gstcudabufferpool.h>
#include <gst/cuda/gstcudamemory.h>
#endif

GST_DEBUG_CATEGORY_STATIC (gst_dit_decode_debug);
#define GST_CAT_DEFAULT gst_dit_decode_debug

enum
{
  PROP_0, PROP_VAE_MODEL, PROP_DECODER_MODEL, PROP_DEVICE, PROP_SESSION,
  PROP_FRAMERATE, PROP_FRAMES_OUT, N_PROPS
};

struct _GstDitDecode
{
  GstElement parent;
  GstPad *sinkpad, *srcpad;

  /* properties; object lock */
  gchar *vae_model, *decoder_model, *device, *session_key;
  gint out_fps_n, out_fps_d;
  guint64 frames_pushed;

  GstDitSession *session;
  gboolean attached;

  /* streaming thread */
  GstDitLatentInfo info;
  GstVideoInfo vinfo;
  gboolean configured;
  gfloat *x, *pixels;
  gint64 latents_seen;          /* for chunks without a meta */
  guint64 raw_epoch;
  GstClockTime next_pts;        /* with an output frame rate override */
  gdouble decode_ms;

  gboolean cuda_out;            /* output caps are in CUDA memory */
  GstCudaContext *cuda_offered; /* set on the element */
#ifdef DIT_HAVE_GST_CUDA
  GstBufferPool *cuda_pool;
#endif
};

static GstStaticPadTemplate sink_template =
GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_DIT_LATENT_CAPS_ANY_MEMORY));
static GstStaticPadTemplate src_template =
GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (
#ifdef DIT_HAVE_GST_CUDA
        GST_VIDEO_CAPS_MAKE_WITH_FEATURES (GST_DIT_CAPS_FEATURE_CUDA,
            GST_DIT_CUDA_FORMATS) "; "
#endif
        GST_VIDEO_CAPS_MAKE (GST_DIT_RAW_FORMATS_OUT)));

G_DEFINE_TYPE (GstDitDecode, gst_dit_decode, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (ditdecode, "ditdecode", GST_RANK_NONE,
    GST_TYPE_DIT_DECODE);

static void
free_cuda_pool (GstDitDecode * self)
{
#ifdef DIT_HAVE_GST_CUDA
  if (self->cuda_pool) {
    gst_buffer_pool_set_active (self->cuda_pool, FALSE);
    gst_clear_object (&self->cuda_pool);
  }
#endif
  self->cuda_out = FALSE;
}

static void
free_buffers (GstDitDecode * self)
{
  g_clear_pointer (&self->x, g_free);
  g_clear_pointer (&self->pixels, g_free);
  free_cuda_pool (self);
  self->configured = FALSE;
}

#ifdef DIT_HAVE_GST_CUDA
static gboolean
setup_cuda_pool (GstDitDecode * self, GstCaps * caps)
{
  GstStructure *config;
  gboolean ok;

  free_cuda_pool (self);
  self->cuda_pool = gst_cuda_buffer_pool_new (gst_dit_session_get_cuda_context
      (self->session));
  config = gst_buffer_pool_get_config (self->cuda_pool);
  gst_buffer_pool_config_set_params (config, caps, self->vinfo.size, 0, 0);
  gst_buffer_pool_config_add_option (config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  /* The CUDA pool pads rows to its pitch and so changes the size: set_config
   * then answers FALSE with the adjusted config, which is taken if it still
   * holds these caps. */
  ok = gst_buffer_pool_set_config (self->cuda_pool, config);
  if (!ok) {
    config = gst_buffer_pool_get_config (self->cuda_pool);
    ok = gst_buffer_pool_config_validate_params (config, caps, 0, 0, 0)
        && gst_buffer_pool_set_config (self->cuda_pool, config);
  }
  if (!ok || !gst_buffer_pool_set_active (self->cuda_pool, TRUE)) {
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
        ("could not set up a CUDA buffer pool for %" GST_PTR_FORMAT, caps),
        (NULL));
    gst_clear_object (&self->cuda_pool);
    return FALSE;
  }
  self->cuda_out = TRUE;
  return TRUE;
}
#endif

static gboolean
set_caps (GstDitDecode * self, GstCaps * caps)
{
  GstDitLatentInfo info;
  gchar *why = NULL;
  GstCaps *tmpl, *peer, *out;
  GstStructure *s;
  gint fps_n, fps_d;

  if (!gst_dit_latent_info_from_caps (&info, caps, &why)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("%s", why),
        ("caps %" GST_PTR_FORMAT, caps));
    g_free (why);
    return FALSE;
  }
  if (gst_dit_caps_has_feature (caps, GST_DIT_CAPS_FEATURE_DEVICE)
      && !gst_dit_session_on_device (self->session)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("latents in device memory "
            "need the session on a CUDA device (device=cuda:N)"),
        ("caps %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  GST_OBJECT_LOCK (self);
  fps_n = self->out_fps_n > 0 ? self->out_fps_n : info.fps_n;
  fps_d = self->out_fps_n > 0 ? self->out_fps_d : info.fps_d;
  GST_OBJECT_UNLOCK (self);

  tmpl = gst_pad_get_pad_template_caps (self->srcpad);
  /* CUDA memory only for a peer that names it (cudadownload, nvh264enc,
   * a capsfilter): a peer taking anything (fakesink, appsink without caps)
   * gets system memory, which every element can read. */
  peer = gst_pad_peer_query_caps (self->srcpad, NULL);
  if (!gst_dit_session_cuda_memory (self->session) || gst_caps_is_any (peer))
    tmpl = gst_dit_caps_drop_feature (tmpl, GST_DIT_CAPS_FEATURE_CUDA);
  gst_caps_unref (peer);
  out = gst_caps_copy (tmpl);
  gst_caps_set_simple (out, "width", G_TYPE_INT, info.width * 8,
      "height", G_TYPE_INT, info.height * 8,
      "framerate", GST_TYPE_FRACTION, fps_n, fps_d,
      "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, NULL);
  gst_caps_unref (tmpl);
  peer = gst_pad_peer_query_caps (self->srcpad, out);
  gst_caps_unref (out);
  if (gst_caps_is_empty (peer)) {
    GstCaps *wants = gst_pad_peer_query_caps (self->srcpad, NULL);
    gchar *size = gst_dit_caps_size_error (wants);
    gst_caps_unref (peer);
    if (size)
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("downstream: %s", size),
          ("downstream takes %" GST_PTR_FORMAT, wants));
    else
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("downstream accepts no %dx%d RGB video at %d/%d fps",
              info.width * 8, info.height * 8, fps_n, fps_d),
          ("downstream takes %" GST_PTR_FORMAT, wants));
    g_free (size);
    gst_caps_unref (wants);
    return FALSE;
  }
  peer = gst_caps_make_writable (gst_caps_truncate (peer));
  s = gst_caps_get_structure (peer, 0);
  /* NV12 is what NVENC takes natively. */
  gst_structure_fixate_field_string (s, "format",
      gst_dit_caps_has_feature (peer, GST_DIT_CAPS_FEATURE_CUDA) ? "NV12" : "RGBx");
  peer = gst_caps_fixate (peer);
  if (!gst_video_info_from_caps (&self->vinfo, peer)) {
    gst_caps_unref (peer);
    return FALSE;
  }

  if (!self->configured || info.width != self->info.width
      || info.height != self->info.height || info.frames != self->info.frames) {
    gchar *error = NULL;
    gsize plane = (gsize) info.width * info.height;
    free_buffers (self);
    if (!gst_dit_session_display_configure (self->session, info.width * 8,
            info.height * 8, info.frames, 2, &error)) {
      GST_ELEMENT_ERROR (self, LIBRARY, INIT, ("%s", error), (NULL));
      g_free (error);
      gst_caps_unref (peer);
      return FALSE;
    }
    self->x = g_new0 (gfloat, plane * DIT_LATENT_CHANNELS * info.frames);
    self->pixels = g_new0 (gfloat, plane * 64 * 3 * 4 * info.frames);
  }
  self->info = info;
  self->configured = TRUE;
  free_cuda_pool (self);
#ifdef DIT_HAVE_GST_CUDA
  if (gst_dit_caps_has_feature (peer, GST_DIT_CAPS_FEATURE_CUDA) && !setup_cuda_pool (self, peer)) {
    gst_caps_unref (peer);
    return FALSE;
  }
#endif
  GST_DEBUG_OBJECT (self, "output caps %" GST_PTR_FORMAT, peer);
  if (!gst_pad_set_caps (self->srcpad, peer)) {
    gst_caps_unref (peer);
    return FALSE;
  }
  gst_caps_unref (peer);
  return TRUE;
}

#ifdef DIT_HAVE_GST_CUDA
typedef struct
{
  dit_backend *be;
  GstVideoFrame *frames;
  gint valid;
} CudaFrames;

static gboolean
write_cuda_frame (const dit_tensor * frame, gint j, gpointer user_data,
    gchar ** error)
{
  CudaFrames *cf = user_data;

  if (j >= cf->valid)
    return TRUE;
  return gst_dit_tensor_to_frame (cf->be, frame, &cf->frames[j], error);
}

/* Display decode into `valid` CUDA buffers of the pool: the engine's pixel
 * conversion writes each frame from the session's device copy into the
 * GstCudaMemory (device to device); the session synchronizes the backend
 * stream before this returns, the 1.22 rule that a producer syncs before
 * it pushes. */
static GstDitDecodeResult
display_cuda (GstDitDecode * self, guint64 epoch, gint64 first, gint valid,
    const gfloat * x, GstBuffer ** out, gint * nframes, gchar ** error)
{
  CudaFrames cf;
  GstDitDecodeResult res = GST_DIT_DECODE_ERROR;
  GstCudaContext *ctx = gst_dit_session_get_cuda_context (self->session);
  gint mapped = 0;

  cf.be = gst_dit_session_get_backend (self->session);
  cf.frames = g_new0 (GstVideoFrame, MAX (valid, 1));
  cf.valid = valid;
  for (; mapped < valid; mapped++) {
    if (gst_buffer_pool_acquire_buffer (self->cuda_pool, &out[mapped], NULL)
        != GST_FLOW_OK) {
      *error = g_strdup ("could not get a buffer from the CUDA pool");
      goto done;
    }
    if (!gst_video_frame_map (&cf.frames[mapped], &self->vinfo, out[mapped],
            GST_MAP_WRITE | GST_MAP_CUDA)) {
      *error = g_strdup ("could not map CUDA memory for writing");
      gst_clear_buffer (&out[mapped]);
      goto done;
    }
  }
  /* The primary context current on this thread puts the runtime's work
   * on the session's device whatever the thread's default device is. */
  gst_cuda_context_push (ctx);
  res = gst_dit_session_display_device (self->session, epoch, first,
      self->info.frames, x, write_cuda_frame, &cf, nframes, error);
  gst_cuda_context_pop (NULL);
done:
  for (gint j = 0; j < mapped; j++)
    gst_video_frame_unmap (&cf.frames[j]);
  if (res != GST_DIT_DECODE_OK)
    for (gint j = 0; j < valid; j++)
      gst_clear_buffer (&out[j]);
  g_free (cf.frames);
  return res;
}
#endif

static GstFlowReturn
gst_dit_decode_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstDitDecode *self = GST_DIT_DECODE (parent);
  GstDitLatentMeta *meta = gst_buffer_get_dit_latent_meta (buf);
  const gint F = self->info.frames;
  GstMapInfo map;
  gint64 first;
  guint64 epoch;
  gint nframes = 0, valid;
  gchar *error = NULL;
  GstClockTime pts = GST_BUFFER_PTS (buf);
  GstFlowReturn ret = GST_FLOW_OK;
  gint64 t0;
  gboolean retime;
  gint fps_n = GST_VIDEO_INFO_FPS_N (&self->vinfo);
  gint fps_d = GST_VIDEO_INFO_FPS_D (&self->vinfo);
  GstBuffer **cuda_bufs = NULL;
  GstDitDecodeResult res;
  const gfloat *x = self->x;

  if (!self->configured) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("received a chunk before caps"),
        (NULL));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (gst_buffer_get_size (buf) < gst_dit_latent_info_buffer_size (&self->info)) {
    GST_ELEMENT_ERROR (self, STREAM, DECODE, ("latent chunk too small"),
        ("%" G_GSIZE_FORMAT " bytes", gst_buffer_get_size (buf)));
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  if (meta) {
    first = meta->chunk_index * F;
    epoch = meta->cache_epoch;
  } else {
    first = self->latents_seen;
    epoch = self->raw_epoch;
  }
  self->latents_seen = first + F;

  /* Latents the anchor path queued already are not read again: device
   * latents from ditgenerate then never leave the device here.  Others
   * are read through a map (for device memory: a download). */
  if (gst_dit_buffer_device_memory (buf)
      && gst_dit_session_display_has_latents (self->session, epoch, first, F)) {
    x = NULL;
  } else {
    if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
      GST_ELEMENT_ERROR (self, STREAM, DECODE, ("could not map a latent "
              "chunk"), (NULL));
      gst_buffer_unref (buf);
      return GST_FLOW_ERROR;
    }
    gst_dit_latent_to_f32 (&self->info, map.data, self->x);
    gst_buffer_unmap (buf, &map);
  }

  t0 = g_get_monotonic_time ();
#ifdef DIT_HAVE_GST_CUDA
  if (self->cuda_out) {
    gint total = 0;
    for (gint64 i = first; i < first + F; i++)
      total += dit_stream_latent_frames (i);
    valid = meta && meta->valid_frames >= 0 ? MIN (meta->valid_frames, total)
        : total;
    cuda_bufs = g_new0 (GstBuffer *, MAX (valid, 1));
    res = display_cuda (self, epoch, first, valid, x, cuda_bufs, &nframes,
        &error);
  } else
#endif
    res = gst_dit_session_display (self->session, epoch, first, F, x,
        self->pixels, &nframes, &error);
  if (res != GST_DIT_DECODE_OK)
    g_clear_pointer (&cuda_bufs, g_free);
  switch (res) {
    case GST_DIT_DECODE_OK:
      break;
    case GST_DIT_DECODE_STALE:
      GST_DEBUG_OBJECT (self, "dropping stale chunk (epoch %" G_GUINT64_FORMAT
          ")", epoch);
      gst_buffer_unref (buf);
      return GST_FLOW_OK;
    case GST_DIT_DECODE_FLUSHING:
      gst_buffer_unref (buf);
      return GST_FLOW_FLUSHING;
    case GST_DIT_DECODE_ERROR:
      GST_ELEMENT_ERROR (self, STREAM, DECODE, ("%s", error), (NULL));
      g_free (error);
      gst_buffer_unref (buf);
      return GST_FLOW_ERROR;
  }
  self->decode_ms = (g_get_monotonic_time () - t0) / 1000.0;

  valid = meta && meta->valid_frames >= 0 ? MIN (meta->valid_frames, nframes)
      : nframes;
  GST_OBJECT_LOCK (self);
  retime = self->out_fps_n > 0;
  GST_OBJECT_UNLOCK (self);
  if (retime) {
    if (!GST_CLOCK_TIME_IS_VALID (self->next_pts))
      self->next_pts = GST_CLOCK_TIME_IS_VALID (pts) ? pts : 0;
    pts = self->next_pts;
  }
  for (gint j = 0; j < valid && ret == GST_FLOW_OK; j++) {
    GstBuffer *out;
    GstClockTime a, b;

    if (cuda_bufs) {
      out = cuda_bufs[j];
      cuda_bufs[j] = NULL;
    } else {
      GstVideoFrame frame;
      gchar *why = NULL;

      out = gst_buffer_new_allocate (NULL, self->vinfo.size, NULL);
      gst_video_frame_map (&frame, &self->vinfo, out, GST_MAP_WRITE);
      if (!gst_dit_pixels_to_frame (self->pixels, j, nframes, &frame, &why)) {
        gst_video_frame_unmap (&frame);
        gst_buffer_unref (out);
        GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("%s", why), (NULL));
        g_free (why);
        ret = GST_FLOW_ERROR;
        break;
      }
      gst_video_frame_unmap (&frame);
    }
    if (GST_CLOCK_TIME_IS_VALID (pts)) {
      a = pts + gst_util_uint64_scale (j, fps_d * GST_SECOND, fps_n);
      b = pts + gst_util_uint64_scale (j + 1, fps_d * GST_SECOND, fps_n);
      GST_BUFFER_PTS (out) = a;
      GST_BUFFER_DURATION (out) = b - a;
    }
    if (j == 0 && GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DISCONT))
      GST_BUFFER_FLAG_SET (out, GST_BUFFER_FLAG_DISCONT);
    ret = gst_pad_push (self->srcpad, out);
    GST_OBJECT_LOCK (self);
    self->frames_pushed++;
    GST_OBJECT_UNLOCK (self);
  }
  if (retime)
    self->next_pts = pts + gst_util_uint64_scale (valid, fps_d * GST_SECOND,
        fps_n);
  if (cuda_bufs) {
    for (gint j = 0; j < valid; j++)
      gst_clear_buffer (&cuda_bufs[j]);
    g_free (cuda_bufs);
  }
  gst_buffer_unref (buf);
  return ret;
}

static gboolean
gst_dit_decode_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstDitDecode *self = GST_DIT_DECODE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gboolean ok;
      gst_event_parse_caps (event, &caps);
      ok = set_caps (self, caps);
      gst_event_unref (event);
      return ok;
    }
    case GST_EVENT_FLUSH_STOP:
      self->latents_seen = 0;
      self->next_pts = GST_CLOCK_TIME_NONE;
      if (self->session)
        self->raw_epoch = gst_dit_session_bump_epoch (self->session);
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_dit_decode_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstDitDecode *self = GST_DIT_DECODE (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CONTEXT:
      if (gst_dit_session_handle_context_query (GST_ELEMENT (self), query,
              &self->session_key, &self->device, &self->session,
              &self->cuda_offered))
        return TRUE;
      break;
    case GST_QUERY_LATENCY:
      if (pad == self->srcpad) {
        gboolean live;
        GstClockTime min, max, own;
        if (!gst_pad_peer_query (self->sinkpad, query))
          return FALSE;
        gst_query_parse_latency (query, &live, &min, &max);
        /* Frames of a chunk leave together once it is decoded. */
        own = (GstClockTime) (self->decode_ms * GST_MSECOND);
        min += own;
        if (GST_CLOCK_TIME_IS_VALID (max))
          max += own;
        gst_query_set_latency (query, live, min, max);
        return TRUE;
      }
      break;
    case GST_QUERY_CAPS:
      return gst_dit_caps_query_convert (query, pad, self->srcpad,
          self->sinkpad, GST_DIT_RAW_FORMATS_OUT,
          gst_dit_session_cuda_offerable (self->session, GST_ELEMENT (self),
              &self->device));
    default:
      break;
  }
  return gst_pad_query_default (pad, parent, query);
}

static GstStateChangeReturn
gst_dit_decode_change_state (GstElement * element, GstStateChange transition)
{
  GstDitDecode *self = GST_DIT_DECODE (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!gst_dit_session_ensure_vae (element, &self->session,
              &self->session_key, &self->device, &self->vae_model,
              &self->decoder_model, DIT_TAEHV_DECODER, self->cuda_offered))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      self->latents_seen = 0;
      self->next_pts = GST_CLOCK_TIME_NONE;
      self->raw_epoch = gst_dit_session_bump_epoch (self->session);
      gst_dit_session_display_attach (self->session);
      self->attached = TRUE;
      GST_OBJECT_LOCK (self);
      self->frames_pushed = 0;
      GST_OBJECT_UNLOCK (self);
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* Wake a generator waiting for this display before pads stop. */
      if (self->attached)
        gst_dit_session_display_detach (self->session);
      self->attached = FALSE;
      break;
    default:
      break;
  }
  ret = GST_ELEMENT_CLASS (gst_dit_decode_parent_class)->change_state (element,
      transition);
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      free_buffers (self);
      break;
    case GST_STATE_CHANGE_READY_TO_NULL:
      gst_clear_object (&self->session);
      break;
    default:
      break;
  }
  return ret;
}

static void
gst_dit_decode_set_context (GstElement * element, GstContext * context)
{
  GstDitDecode *self = GST_DIT_DECODE (element);

  gst_dit_session_handle_set_context (element, context, &self->session_key,
      &self->session, &self->cuda_offered);
  GST_ELEMENT_CLASS (gst_dit_decode_parent_class)->set_context (element,
      context);
}

/* properties: one table (gstditprops.h) gives each its spec, its default
 * and its field; the frame rate is made and read in code */

#define READY GST_DIT_PARAM_READY
#define FIELD(f) G_STRUCT_OFFSET (GstDitDecode, f)
#define STAT(id, name, nick, blurb, t, f) \
    [id] = GST_DIT_PROP_STAT (name, nick, blurb, t, FIELD (f))

static const GstDitPropDef props[N_PROPS] = {
  [PROP_VAE_MODEL] = GST_DIT_PROP_VAE_MODEL (FIELD (vae_model)),
  [PROP_DECODER_MODEL] = {"decoder-model", "Decoder model", "Display "
        "decoder: a TAEHV tiny decoder preset (taew2_1, lighttaew2_1, "
        "taehv-tiny: seeded synthetic) or a checkpoint converted by "
        "convert-pth.py; NULL = the full VAE of vae-model.  Every ditdecode "
        "of a session must use the same one", G_TYPE_STRING, .flags = READY,
      .field = FIELD (decoder_model)},
  [PROP_DEVICE] = GST_DIT_PROP_DEVICE (FIELD (device)),
  [PROP_SESSION] = {"session", "Session", "Key of the shared DitSession; the "
        "same key as ditgenerate shares its anchor decode", G_TYPE_STRING,
      .sdef = GST_DIT_SESSION_DEFAULT_KEY, .flags = READY,
      .field = FIELD (session_key)},
  STAT (PROP_FRAMES_OUT, "frames-out", "Frames out", "Frames pushed since "
      "READY", G_TYPE_UINT64, frames_pushed),
};

static void
gst_dit_decode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDitDecode *self = GST_DIT_DECODE (object);

  GST_OBJECT_LOCK (self);
  if (prop_id == PROP_FRAMERATE) {
    self->out_fps_n = gst_value_get_fraction_numerator (value);
    self->out_fps_d = gst_value_get_fraction_denominator (value);
  } else {
    gst_dit_prop_set (self, &props[prop_id], value);
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dit_decode_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstDitDecode *self = GST_DIT_DECODE (object);

  GST_OBJECT_LOCK (self);
  if (prop_id == PROP_FRAMERATE)
    gst_value_set_fraction (value, self->out_fps_n, self->out_fps_d);
  else
    gst_dit_prop_get (self, &props[prop_id], value);
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dit_decode_finalize (GObject * object)
{
  GstDitDecode *self = GST_DIT_DECODE (object);

  free_buffers (self);
  gst_clear_object (&self->session);
  gst_clear_object (&self->cuda_offered);
  gst_dit_props_clear (self, props, N_PROPS);
  G_OBJECT_CLASS (gst_dit_decode_parent_class)->finalize (object);
}

static void
gst_dit_decode_class_init (GstDitDecodeClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_dit_decode_set_property;
  gobject_class->get_property = gst_dit_decode_get_property;
  gobject_class->finalize = gst_dit_decode_finalize;

  gst_dit_props_install (gobject_class, props, N_PROPS);
  g_object_class_install_property (gobject_class, PROP_FRAMERATE,
      gst_param_spec_fraction ("framerate", "Frame rate",
          "Output frame rate; frames are re-timed at this rate (0/1 = the "
          "rate in the latent caps)", 0, 1, GST_DIT_MAX_FPS, 1, 0, 1, READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DiT latent decoder", "Codec/Decoder/Video",
      "Streaming WanVAE decode of latent chunks to raw video", "gst-dit");
  element_class->change_state = GST_DEBUG_FUNCPTR (gst_dit_decode_change_state);
  element_class->set_context = GST_DEBUG_FUNCPTR (gst_dit_decode_set_context);
  GST_DEBUG_CATEGORY_INIT (gst_dit_decode_debug, "ditdecode", 0,
      "dit latent decoder");
}

static void
gst_dit_decode_init (GstDitDecode * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dit_decode_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dit_decode_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dit_decode_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dit_decode_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  gst_dit_props_init (self, props, N_PROPS);
  /* framerate 0/1: the rate of the latent caps */
  self->out_fps_n = 0;
  self->out_fps_d = 1;
  self->next_pts = GST_CLOCK_TIME_NONE;
}
