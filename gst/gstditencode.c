/**
 * SECTION:element-ditencode
 * @title: ditencode
 *
 * Encodes raw video to latent chunks with a streaming WanVAE encoder: the
 * first latent of a stream comes from one frame, every later latent from
 * four, so the first chunk of F latents takes 4F - 3 frames (9 at F = 3)
 * and every later chunk 4F (12).  Each chunk buffer carries the PTS of its
 * first frame and a duration covering all its frames.  At EOS a partial
 * chunk is completed by repeating the last frame and marked (meta
 * valid_frames) so that ditdecode shows exactly the frames that came in.
 * With #GstDitEncode:num-frames the stream ends after that many input
 * frames (EOS at once, later input dropped): an exact limit on a decoded
 * file.  A size that is no multiple of 16 pixels is refused at the caps
 * event with a message naming it.
 *
 * With encoder-model (a TAEHV tiny encoder: taew2_1, taehv-tiny or a
 * converted checkpoint) the latents cover the same frames, but TAEHV forms
 * latent k from frames 4k .. 4k+3, so each latent leaves one group of 4
 * frames later (model/dit_taehv.h): a chunk waits 4 more frames, and at EOS
 * the last latent comes from TAEHV's own end padding (the last frame
 * repeated).  Timestamps are those of the latents' frames either way.
 *
 * With device=cuda:N (and gstreamer-cuda at build time) the sink pad also
 * takes video/x-raw(memory:CUDAMemory): frames are read on the device
 * through the engine's pixel conversion, and the session's primary CUDA
 * context is shared with cudaupload and the other nvcodec elements.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=33 ! video/x-raw,width=128,height=128,framerate=16/1 ! ditencode ! ditdecode ! videoconvert ! autovideosink
 * ]|
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! videoscale ! videorate ! video/x-raw,width=128,height=128,framerate=16/1 ! ditencode num-frames=33 ! ditdecode ! videoconvert ! autovideosink
 * ]| The first 33 frames of a file.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstditencode.h"

#include <gst/video/video.h>

#include "gstditlatent.h"
#include "gstditmemory.h"
#include "gstditprops.h"
#include "gstditsession.h"

#ifdef DIT_HAVE_GST_CUDA
#include <gst/cuda/gstcudamemory.h>
#endif

GST_DEBUG_CATEGORY_STATIC (gst_dit_encode_debug);
#define GST_CAT_DEFAULT gst_dit_encode_debug

#define DEFAULT_FRAMES 3
#define DEFAULT_NUM_FRAMES 0

enum
{
  PROP_0, PROP_VAE_MODEL, PROP_ENCODER_MODEL, PROP_DEVICE, PROP_SESSION,
  PROP_FRAMES, PROP_NUM_FRAMES, N_PROPS
};

/* The timing of one group of input frames (the frames of one latent). */
typedef struct
{
  GstClockTime pts, end;
  gint real;
} GroupTiming;

struct _GstDitEncode
{
  GstElement parent;
  GstPad *sinkpad, *srcpad;

  /* properties; object lock */
  gchar *vae_model, *encoder_model, *device, *session_key;
  gint frames;
  guint num_frames;             /* 0 = every frame */

  GstDitSession *session;

  /* streaming thread */
  GstVideoInfo vinfo;
  GstDitLatentInfo info;
  dit_vae *vae;
  dit_taehv *tae;               /* encoder-model: a TAEHV instead of vae */
  /* groups encoded whose latent has not come out (TAEHV: at most one) */
  GroupTiming pending[2];
  gint npending;
  GroupTiming group_timing;     /* the group being filled */
  gfloat *group;                /* [3, 4, H, W] pixels of the next latent */
  gfloat *chunk;                /* [16, F, h, w] */
  gfloat *latent;               /* [16, 1, h, w] */
  gint group_fill;
  gint64 groups;                /* groups given to the encoder */
  gint64 latent_index;          /* latents out of the encoder */
  gint chunk_fill;              /* latents in the current chunk */
  gint chunk_real_frames;       /* input frames in the current chunk */
  gint64 chunk_index;
  guint64 epoch;
  GstClockTime chunk_pts, last_end;
  GstBuffer *last_frame;        /* for padding at EOS */
  guint64 frames_in;            /* input frames taken in this stream */
  gboolean ended;               /* num-frames reached: EOS sent */
  gdouble encode_ms;

  /* sessions on a device: the encoder's device staging */
  dit_backend *be;
  gboolean on_device;
  gboolean cuda_in;             /* input caps are in CUDA memory */
  dit_tensor dev_group;         /* [3, 4, H, W] */
  dit_tensor dev_latent;        /* [16, 1, h, w] */
  /* device latents out (a peer that takes them): the chunk is assembled
   * on the device and handed on in pooled device buffers */
  gboolean out_device;
  dit_tensor dev_chunk;         /* [16, F, h, w] f32 */
  GstBufferPool *out_pool;
  GstCudaContext *cuda_offered; /* set on the element */
};

static GstStaticPadTemplate sink_template =
GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (
#ifdef DIT_HAVE_GST_CUDA
        "video/x-raw(" GST_DIT_CAPS_FEATURE_CUDA "), format = (string) "
        GST_DIT_CUDA_FORMATS ", width = (int) [ 1, 8192 ], "
        "height = (int) [ 1, 8192 ], framerate = (fraction) [ 0/1, MAX ]; "
#endif
        "video/x-raw, format = (string) " GST_DIT_RAW_FORMATS_IN
        ", width = (int) [ 1, 8192 ], height = (int) [ 1, 8192 ], "
        "framerate = (fraction) [ 0/1, MAX ]"));
static GstStaticPadTemplate src_template =
GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_DIT_LATENT_CAPS_ANY_MEMORY));

G_DEFINE_TYPE (GstDitEncode, gst_dit_encode, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (ditencode, "ditencode", GST_RANK_NONE,
    GST_TYPE_DIT_ENCODE);

static void
free_stream (GstDitEncode * self)
{
  if (self->vae)
    dit_vae_free (self->vae);
  self->vae = NULL;
  dit_taehv_free (self->tae);
  self->tae = NULL;
  gst_clear_buffer (&self->last_frame);
  g_clear_pointer (&self->group, g_free);
  g_clear_pointer (&self->chunk, g_free);
  g_clear_pointer (&self->latent, g_free);
  dit_tensor_free (self->be, &self->dev_group);
  dit_tensor_free (self->be, &self->dev_latent);
  dit_tensor_free (self->be, &self->dev_chunk);
  if (self->out_pool) {
    gst_buffer_pool_set_active (self->out_pool, FALSE);
    gst_clear_object (&self->out_pool);
  }
  self->out_device = FALSE;
  if (self->be && self->session)
    gst_dit_session_release_backend (self->session, self->be);
  self->be = NULL;
  self->cuda_in = FALSE;
}

static void
reset_stream (GstDitEncode * self)
{
  self->group_fill = 0;
  self->groups = 0;
  self->latent_index = 0;
  self->chunk_fill = 0;
  self->chunk_real_frames = 0;
  self->chunk_index = 0;
  self->chunk_pts = self->last_end = GST_CLOCK_TIME_NONE;
  gst_clear_buffer (&self->last_frame);
  self->frames_in = 0;
  self->ended = FALSE;
  self->npending = 0;
  self->group_timing.pts = self->group_timing.end = GST_CLOCK_TIME_NONE;
  self->group_timing.real = 0;
  if (self->vae)
    dit_vae_reset_encoder (self->vae);
  dit_taehv_reset_encoder (self->tae);
  if (self->session)
    self->epoch = gst_dit_session_bump_epoch (self->session);
}

static gboolean
set_caps (GstDitEncode * self, GstCaps * caps)
{
  GstVideoInfo vinfo;
  gchar *why, *error = NULL;
  GstCaps *tmpl, *peer, *want;
  GstStructure *s;
  GstDitLatentInfo info;
  gint F;
  gboolean tiny;
  gboolean device = gst_dit_peer_takes_device (self->srcpad, self->session);

  if (!gst_video_info_from_caps (&vinfo, caps)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("invalid raw video caps"),
        ("%" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  why = gst_dit_check_pixel_size (vinfo.width, vinfo.height, vinfo.fps_n,
      vinfo.fps_d);
  if (why) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("%s", why),
        ("caps %" GST_PTR_FORMAT, caps));
    g_free (why);
    return FALSE;
  }
  GST_OBJECT_LOCK (self);
  F = self->frames;
  GST_OBJECT_UNLOCK (self);

  tmpl = gst_pad_get_pad_template_caps (self->srcpad);
  want = gst_caps_copy (tmpl);
  gst_caps_unref (tmpl);
  gst_caps_set_simple (want, "width", G_TYPE_INT, vinfo.width / 8,
      "height", G_TYPE_INT, vinfo.height / 8, "frames", G_TYPE_INT, F,
      "framerate", GST_TYPE_FRACTION, vinfo.fps_n, vinfo.fps_d, NULL);
  peer = gst_dit_caps_keep_memory (gst_pad_peer_query_caps (self->srcpad,
          want), device);
  gst_caps_unref (want);
  if (gst_caps_is_empty (peer)) {
    gst_caps_unref (peer);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("downstream accepts no %dx%d latents of %d frames", vinfo.width / 8,
            vinfo.height / 8, F), (NULL));
    return FALSE;
  }
  peer = gst_caps_make_writable (gst_caps_truncate (peer));
  s = gst_caps_get_structure (peer, 0);
  gst_structure_fixate_field_string (s, "dtype", "f32");
  peer = gst_caps_fixate (peer);
  if (!gst_dit_latent_info_from_caps (&info, peer, &why)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("%s", why), (NULL));
    g_free (why);
    gst_caps_unref (peer);
    return FALSE;
  }

  free_stream (self);
  if (gst_dit_caps_has_feature (caps, GST_DIT_CAPS_FEATURE_CUDA)
      && !gst_dit_session_cuda_memory (self->session)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("CUDA memory input needs "
            "the session on a CUDA device (device=cuda:N)"),
        ("caps %" GST_PTR_FORMAT, caps));
    gst_caps_unref (peer);
    return FALSE;
  }
  self->vinfo = vinfo;
  /* Its own backend: this streaming thread must not share a stream (and
   * cuBLASLt plans) with the decoder's and the generator's threads. */
  self->be = gst_dit_session_new_private_backend (self->session, &error);
  GST_OBJECT_LOCK (self);
  tiny = self->encoder_model && *self->encoder_model;
  GST_OBJECT_UNLOCK (self);
  if (self->be && tiny)
    self->tae = gst_dit_session_new_taehv (self->session, self->be,
        vinfo.width, vinfo.height, DIT_TAEHV_ENCODER, &error);
  else if (self->be)
    self->vae = gst_dit_session_new_vae (self->session, self->be, vinfo.width,
        vinfo.height, &error);
  if (!self->vae && !self->tae) {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT, ("%s", error), (NULL));
    g_free (error);
    gst_caps_unref (peer);
    return FALSE;
  }
  self->info = info;
  self->group = g_new0 (gfloat, (gsize) 3 * 4 * vinfo.width * vinfo.height);
  self->chunk = g_new0 (gfloat, (gsize) DIT_LATENT_CHANNELS * F
      * info.width * info.height);
  self->latent = g_new0 (gfloat, (gsize) DIT_LATENT_CHANNELS * info.width
      * info.height);
  self->on_device = gst_dit_session_on_device (self->session);
  self->cuda_in = gst_dit_caps_has_feature (caps, GST_DIT_CAPS_FEATURE_CUDA);
  if (self->on_device) {
    int64_t gshape[4] = { 3, 4, vinfo.height, vinfo.width };
    int64_t lshape[4] = { DIT_LATENT_CHANNELS, 1, info.height, info.width };
    int64_t cshape[4] = { DIT_LATENT_CHANNELS, F, info.height, info.width };
    if (dit_tensor_alloc (self->be, &self->dev_group, DIT_F32, 4, gshape)
        != DIT_OK
        || dit_tensor_alloc (self->be, &self->dev_latent, DIT_F32, 4, lshape)
        != DIT_OK
        || (device && dit_tensor_alloc (self->be, &self->dev_chunk, DIT_F32,
                4, cshape) != DIT_OK)) {
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, ("%s",
              dit_last_error ()), ("device staging for %dx%d", vinfo.width,
              vinfo.height));
      free_stream (self);
      gst_caps_unref (peer);
      return FALSE;
    }
  }
  if (device) {
    GstAllocator *alloc = gst_dit_device_allocator_new (self->session, &error);
    if (alloc) {
      self->out_pool = gst_dit_device_pool_new (alloc,
          gst_dit_latent_info_buffer_size (&info));
      gst_object_unref (alloc);
    }
    if (!self->out_pool) {
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, ("%s", error ? error
              : "could not activate the device latent buffer pool"), (NULL));
      g_free (error);
      free_stream (self);
      gst_caps_unref (peer);
      return FALSE;
    }
    self->out_device = TRUE;
  }
  reset_stream (self);
  if (!gst_pad_set_caps (self->srcpad, peer)) {
    gst_caps_unref (peer);
    return FALSE;
  }
  gst_caps_unref (peer);
  return TRUE;
}

/* The chunk assembled in dev_chunk into a pooled device buffer in the
 * caps' dtype, on this element's stream; marked written there. */
static gboolean
device_chunk_buffer (GstDitEncode * self, GstBuffer ** out, gchar ** error)
{
  GstBuffer *buf = NULL;
  GstMemory *mem;
  gint64 n = dit_tensor_numel (&self->dev_chunk);
  dit_tensor src, dst;
  dit_copy_params cp;

  if (gst_buffer_pool_acquire_buffer (self->out_pool, &buf, NULL)
      != GST_FLOW_OK || !(mem = gst_dit_buffer_device_memory (buf))) {
    if (buf)
      gst_buffer_unref (buf);
    *error = g_strdup ("no device latent buffer from the pool");
    return FALSE;
  }
  src = dit_tensor_2d (self->dev_chunk.data, DIT_F32, self->dev_chunk.device,
      1, n);
  dst = dit_tensor_2d (gst_dit_device_memory_data (mem),
      self->info.bf16 ? DIT_BF16 : DIT_F32, self->dev_chunk.device, 1, n);
  cp.x = &src;
  cp.y = &dst;
  if (!gst_dit_device_memory_begin_write (mem, self->be, error))
    goto fail;
  if (dit_copy (self->be, &cp) != DIT_OK) {
    *error = g_strdup (dit_last_error ());
    goto fail;
  }
  if (!gst_dit_device_memory_written (mem, self->be, error))
    goto fail;
  *out = buf;
  return TRUE;

fail:
  gst_buffer_unref (buf);
  return FALSE;
}

static GstFlowReturn
push_chunk (GstDitEncode * self, gint valid_frames)
{
  GstBuffer *out;
  GstDitLatentMeta *meta;
  GstMapInfo map;

  if (self->out_device) {
    gchar *error = NULL;
    if (!device_chunk_buffer (self, &out, &error)) {
      GST_ELEMENT_ERROR (self, LIBRARY, FAILED, ("%s", error), (NULL));
      g_free (error);
      return GST_FLOW_ERROR;
    }
  } else {
    out = gst_buffer_new_allocate (NULL,
        gst_dit_latent_info_buffer_size (&self->info), NULL);
    gst_buffer_map (out, &map, GST_MAP_WRITE);
    gst_dit_latent_from_f32 (&self->info, self->chunk, map.data);
    gst_buffer_unmap (out, &map);
  }
  GST_BUFFER_PTS (out) = self->chunk_pts;
  if (GST_CLOCK_TIME_IS_VALID (self->chunk_pts)
      && GST_CLOCK_TIME_IS_VALID (self->last_end))
    GST_BUFFER_DURATION (out) = self->last_end - self->chunk_pts;
  meta = gst_buffer_add_dit_latent_meta (out);
  meta->chunk_index = self->chunk_index;
  meta->cache_epoch = self->epoch;
  meta->valid_frames = valid_frames;
  meta->chunk_ms = self->encode_ms;
  meta->produced_ns = g_get_monotonic_time () * 1000;
  GST_LOG_OBJECT (self, "chunk %" G_GINT64_FORMAT " pts %" GST_TIME_FORMAT,
      self->chunk_index, GST_TIME_ARGS (self->chunk_pts));
  self->chunk_index++;
  self->chunk_fill = 0;
  self->chunk_real_frames = 0;
  self->chunk_pts = GST_CLOCK_TIME_NONE;
  self->encode_ms = 0;
  return gst_pad_push (self->srcpad, out);
}

#ifdef DIT_HAVE_GST_CUDA
/* A frame in CUDA memory straight into the device group, frame
 * group_fill of [3, need, H, W].  The backend stream is synchronized
 * before the frame is unmapped: upstream may reuse its memory as soon as
 * the buffer is released (1.22 CUDA memory carries no event to wait on). */
static gboolean
cuda_frame_to_group (GstDitEncode * self, GstBuffer * buf, gint need,
    gchar ** why)
{
  GstVideoFrame in;
  GstCudaContext *ctx = gst_dit_session_get_cuda_context (self->session);
  gint w = self->vinfo.width, h = self->vinfo.height;
  int64_t shape[3] = { 3, h, w };
  dit_tensor view = dit_tensor_make ((gfloat *) self->dev_group.data
      + (gsize) self->group_fill * h * w, DIT_F32, self->dev_group.device, 3,
      shape);
  gboolean ok;

  view.stride[0] = (int64_t) need * h * w;
  if (!gst_video_frame_map (&in, &self->vinfo, buf,
          GST_MAP_READ | GST_MAP_CUDA)) {
    *why = g_strdup ("could not map CUDA memory for reading");
    return FALSE;
  }
  gst_cuda_context_push (ctx);
  ok = gst_dit_frame_to_tensor (self->be, &in, &view, why);
  if (ok && dit_synchronize (self->be) != DIT_OK) {
    *why = g_strdup (dit_last_error ());
    ok = FALSE;
  }
  gst_cuda_context_pop (NULL);
  gst_video_frame_unmap (&in);
  return ok;
}
#endif

/* The encoder on one group: the full VAE gives its latent, a TAEHV the
 * previous group's (or none, the first time; *n says). */
static dit_status
encoder_run (GstDitEncode * self, const dit_tensor * pixels,
    dit_tensor * latent, gint * n)
{
  if (self->tae)
    return dit_taehv_encode (self->tae, pixels, latent, n);
  *n = 1;
  return dit_vae_encode (self->vae, pixels, latent);
}

/* Host pixels [3, need, H, W] (or, for CUDA memory input, the device
 * group) -> *n latents (0 or 1), on the device for sessions on a device;
 * need = 0 flushes a TAEHV encoder (its last latent). */
static dit_status
encode_group (GstDitEncode * self, gint need, gint * n)
{
  int64_t pshape[4] = { 3, need > 0 ? need : 1, self->vinfo.height,
    self->vinfo.width
  };
  int64_t lshape[4] = { DIT_LATENT_CHANNELS, 1, self->info.height,
    self->info.width
  };
  dit_tensor pt = dit_tensor_make (self->group, DIT_F32, DIT_DEVICE_CPU, 4,
      pshape);
  dit_tensor lt = dit_tensor_make (self->latent, DIT_F32, DIT_DEVICE_CPU, 4,
      lshape);

  dit_tensor *out = self->on_device ? &self->dev_latent : &lt;

  if (need == 0)
    DIT_TRY (dit_taehv_encode_flush (self->tae, out, n));
  else if (!self->on_device)
    DIT_TRY (encoder_run (self, &pt, &lt, n));
  else {
    if (!self->cuda_in)
      DIT_TRY (dit_upload (self->be, self->dev_group.data,
              self->group, dit_tensor_nbytes (&pt)));
    pt.data = self->dev_group.data;
    pt.device = self->dev_group.device;
    DIT_TRY (encoder_run (self, &pt, &self->dev_latent, n));
  }
  if (*n == 0 || !self->on_device)
    return DIT_OK;
  if (self->out_device) {
    /* latent j of the chunk: [16, h*w] rows F*h*w apart */
    gint64 hw = (gint64) self->info.width * self->info.height;
    dit_tensor src = dit_tensor_2d (self->dev_latent.data, DIT_F32,
        self->dev_latent.device, DIT_LATENT_CHANNELS, hw);
    dit_tensor dst = dit_tensor_2d ((gfloat *) self->dev_chunk.data
        + (gsize) self->chunk_fill * hw, DIT_F32, self->dev_chunk.device,
        DIT_LATENT_CHANNELS, hw);
    dit_copy_params cp = {.x = &src,.y = &dst };
    dst.stride[0] = (gint64) self->info.frames * hw;
    return dit_copy (self->be, &cp);
  }
  return dit_download (self->be, self->latent,
      self->dev_latent.data, dit_tensor_nbytes (&lt));
}

/* A latent came out of the encoder: it belongs to the oldest pending
 * group, whose frames and times join the chunk; push the chunk when F
 * latents are there. */
static GstFlowReturn
take_latent (GstDitEncode * self)
{
  GroupTiming g = self->pending[0];
  gint F = self->info.frames, all;

  self->pending[0] = self->pending[1];
  self->npending--;
  if (self->chunk_fill == 0 || !GST_CLOCK_TIME_IS_VALID (self->chunk_pts))
    self->chunk_pts = g.pts;
  if (GST_CLOCK_TIME_IS_VALID (g.end))
    self->last_end = g.end;
  self->chunk_real_frames += g.real;
  if (!self->out_device)
    dit_latent_insert (self->chunk, F, self->chunk_fill,
        self->info.width * self->info.height, self->latent);
  self->latent_index++;
  if (++self->chunk_fill < F)
    return GST_FLOW_OK;
  all = dit_stream_chunk_frames (self->chunk_index, F);
  return push_chunk (self, self->chunk_real_frames == all ? -1
      : self->chunk_real_frames);
}

/* Encode the group just filled (need frames; 0 = flush a TAEHV) and take
 * the latent that comes out, if any. */
static GstFlowReturn
encode_and_take (GstDitEncode * self, gint need)
{
  gint64 t0 = g_get_monotonic_time ();
  gint n = 0;

  if (need > 0) {
    self->pending[self->npending++] = self->group_timing;
    self->group_timing.pts = self->group_timing.end = GST_CLOCK_TIME_NONE;
    self->group_timing.real = 0;
    self->groups++;
  }
  if (encode_group (self, need, &n) != DIT_OK) {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED, ("%s", dit_last_error ()),
        ("group %" G_GINT64_FORMAT, self->groups));
    return GST_FLOW_ERROR;
  }
  self->encode_ms += (g_get_monotonic_time () - t0) / 1000.0;
  return n ? take_latent (self) : GST_FLOW_OK;
}

/* Add one frame to the group being filled; encodes it when complete. */
static GstFlowReturn
add_frame (GstDitEncode * self, GstBuffer * buf, gboolean real)
{
  GstVideoFrame in;
  gchar *why = NULL;
  gint need = dit_stream_latent_frames (self->groups);
  GstClockTime pts = GST_BUFFER_PTS (buf);

#ifdef DIT_HAVE_GST_CUDA
  if (self->cuda_in) {
    if (!cuda_frame_to_group (self, buf, need, &why)) {
      GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("%s", why), (NULL));
      g_free (why);
      return GST_FLOW_ERROR;
    }
  } else
#endif
  {
    if (!gst_video_frame_map (&in, &self->vinfo, buf, GST_MAP_READ)) {
      GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("could not map a video frame"),
          (NULL));
      return GST_FLOW_ERROR;
    }
    if (!gst_dit_frame_to_pixels (&in, self->group, self->group_fill, need,
            &why)) {
      gst_video_frame_unmap (&in);
      GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("%s", why), (NULL));
      g_free (why);
      return GST_FLOW_ERROR;
    }
    gst_video_frame_unmap (&in);
  }

  if (real) {
    GroupTiming *g = &self->group_timing;
    if (!GST_CLOCK_TIME_IS_VALID (g->pts))
      g->pts = pts;
    if (GST_CLOCK_TIME_IS_VALID (pts)) {
      GstClockTime dur = GST_BUFFER_DURATION_IS_VALID (buf) ?
          GST_BUFFER_DURATION (buf) : gst_util_uint64_scale (GST_SECOND,
          self->vinfo.fps_d, self->vinfo.fps_n);
      g->end = pts + dur;
    }
    g->real++;
  }
  if (++self->group_fill < need)
    return GST_FLOW_OK;
  self->group_fill = 0;
  return encode_and_take (self, need);
}

static GstFlowReturn end_stream (GstDitEncode * self);

static GstFlowReturn
gst_dit_encode_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstDitEncode *self = GST_DIT_ENCODE (parent);
  GstFlowReturn ret;
  guint limit;

  if (!self->vae && !self->tae) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("received a frame before caps"),
        (NULL));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (self->ended) {
    gst_buffer_unref (buf);
    return GST_FLOW_OK;
  }
  ret = add_frame (self, buf, TRUE);
  gst_buffer_replace (&self->last_frame, buf);
  gst_buffer_unref (buf);
  GST_OBJECT_LOCK (self);
  limit = self->num_frames;
  GST_OBJECT_UNLOCK (self);
  if (ret == GST_FLOW_OK && limit > 0 && ++self->frames_in >= limit)
    ret = end_stream (self);
  return ret;
}

/* Complete a partial chunk with copies of the last frame.  A TAEHV
 * encoder's last latent comes from its flush (its own end padding, the
 * last frame repeated) once the chunk needs just that one. */
static GstFlowReturn
drain (GstDitEncode * self)
{
  GstFlowReturn ret = GST_FLOW_OK;
  gint64 chunk = self->chunk_index;
  gint real = self->chunk_real_frames + self->group_timing.real;

  for (gint i = 0; i < self->npending; i++)
    real += self->pending[i].real;
  if (!self->last_frame || real == 0)
    return GST_FLOW_OK;
  while (ret == GST_FLOW_OK && self->chunk_index == chunk) {
    if (self->tae && self->group_fill == 0 && self->npending == 1
        && self->chunk_fill == self->info.frames - 1)
      ret = encode_and_take (self, 0);
    else
      ret = add_frame (self, self->last_frame, FALSE);
  }
  return ret;
}

/* num-frames reached: the partial chunk out and EOS downstream now; later
 * frames are dropped.  Upstream is not told GST_FLOW_EOS: some decoders
 * fail on it with frames in flight ("reference picture missing"), and the
 * pipeline stops anyway once its sinks have the EOS. */
static GstFlowReturn
end_stream (GstDitEncode * self)
{
  GstFlowReturn ret = drain (self);

  GST_DEBUG_OBJECT (self, "%" G_GUINT64_FORMAT " frames in: end of stream",
      self->frames_in);
  self->ended = TRUE;
  gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  return ret;
}

static gboolean
gst_dit_encode_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstDitEncode *self = GST_DIT_ENCODE (parent);

  /* After num-frames the source pad is EOS: upstream's later events (tags,
   * segments, its own EOS) are taken here, or their sticky push would fail
   * upstream's next buffer; a flush starts a new stream. */
  if (self->ended && GST_EVENT_TYPE (event) != GST_EVENT_FLUSH_START
      && GST_EVENT_TYPE (event) != GST_EVENT_FLUSH_STOP) {
    gst_event_unref (event);
    return TRUE;
  }
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gboolean ok;
      gst_event_parse_caps (event, &caps);
      ok = set_caps (self, caps);
      gst_event_unref (event);
      return ok;
    }
    case GST_EVENT_EOS:
      if (self->vae || self->tae)
        drain (self);
      break;
    case GST_EVENT_FLUSH_STOP:
      reset_stream (self);
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_dit_encode_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstDitEncode *self = GST_DIT_ENCODE (parent);

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
        gint F = self->info.frames > 0 ? self->info.frames : self->frames;
        gint n = self->vinfo.fps_n > 0 ? self->vinfo.fps_n : 16;
        gint d = self->vinfo.fps_n > 0 ? self->vinfo.fps_d : 1;
        if (!gst_pad_peer_query (self->sinkpad, query))
          return FALSE;
        gst_query_parse_latency (query, &live, &min, &max);
        /* A chunk leaves when its last frame is in: the first frame of a
         * steady-state chunk waits 4F - 1 frame durations, 4 more with a
         * TAEHV encoder (its latents come one group late). */
        gboolean tiny;
        GST_OBJECT_LOCK (self);
        tiny = self->encoder_model && *self->encoder_model;
        GST_OBJECT_UNLOCK (self);
        own = gst_util_uint64_scale (4 * F - 1 + (tiny ? 4 : 0),
            d * GST_SECOND, n);
        min += own;
        if (GST_CLOCK_TIME_IS_VALID (max))
          max += own;
        gst_query_set_latency (query, live, min, max);
        return TRUE;
      }
      break;
    case GST_QUERY_CAPS:
      return gst_dit_caps_query_convert (query, pad, self->sinkpad,
          self->srcpad, GST_DIT_RAW_FORMATS_IN,
          gst_dit_session_cuda_offerable (self->session, GST_ELEMENT (self),
              &self->device));
    default:
      break;
  }
  return gst_pad_query_default (pad, parent, query);
}

static GstStateChangeReturn
gst_dit_encode_change_state (GstElement * element, GstStateChange transition)
{
  GstDitEncode *self = GST_DIT_ENCODE (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_NULL_TO_READY
      && !gst_dit_session_ensure_vae (element, &self->session,
          &self->session_key, &self->device, &self->vae_model,
          &self->encoder_model, DIT_TAEHV_ENCODER, self->cuda_offered))
    return GST_STATE_CHANGE_FAILURE;
  ret = GST_ELEMENT_CLASS (gst_dit_encode_parent_class)->change_state (element,
      transition);
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      free_stream (self);
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
gst_dit_encode_set_context (GstElement * element, GstContext * context)
{
  GstDitEncode *self = GST_DIT_ENCODE (element);

  gst_dit_session_handle_set_context (element, context, &self->session_key,
      &self->session, &self->cuda_offered);
  GST_ELEMENT_CLASS (gst_dit_encode_parent_class)->set_context (element,
      context);
}

/* properties: one table (gstditprops.h) gives each its spec, its default
 * and its field */

#define READY GST_DIT_PARAM_READY
#define FIELD(f) G_STRUCT_OFFSET (GstDitEncode, f)

static const GstDitPropDef props[N_PROPS] = {
  [PROP_VAE_MODEL] = GST_DIT_PROP_VAE_MODEL (FIELD (vae_model)),
  [PROP_ENCODER_MODEL] = {"encoder-model", "Encoder model", "Encode with a "
        "TAEHV tiny encoder instead of the full VAE: a preset (taew2_1, "
        "taehv-tiny: seeded synthetic) or a checkpoint converted by "
        "convert-pth.py; NULL = the full VAE of vae-model.  Each latent then "
        "leaves 4 input frames later", G_TYPE_STRING, .flags = READY,
      .field = FIELD (encoder_model)},
  [PROP_DEVICE] = GST_DIT_PROP_DEVICE (FIELD (device)),
  [PROP_SESSION] = {"session", "Session", "Key of the shared DitSession (one "
        "copy of the VAE weights)", G_TYPE_STRING,
      .sdef = GST_DIT_SESSION_DEFAULT_KEY, .flags = READY,
      .field = FIELD (session_key)},
  [PROP_FRAMES] = {"frames", "Frames", "Latent frames per output chunk (3 = "
        "9 input frames first, then 12)", G_TYPE_INT, 1, 16, DEFAULT_FRAMES,
      .flags = READY, .field = FIELD (frames)},
  [PROP_NUM_FRAMES] = {"num-frames", "Number of frames", "Input frames to "
        "encode before EOS (0 = all): later frames are dropped; limits a "
        "decoded file exactly, where identity eos-after does not", G_TYPE_UINT,
      0, G_MAXUINT, DEFAULT_NUM_FRAMES, .flags = READY,
      .field = FIELD (num_frames)},
};

static void
gst_dit_encode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDitEncode *self = GST_DIT_ENCODE (object);

  GST_OBJECT_LOCK (self);
  gst_dit_prop_set (self, &props[prop_id], value);
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dit_encode_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstDitEncode *self = GST_DIT_ENCODE (object);

  GST_OBJECT_LOCK (self);
  gst_dit_prop_get (self, &props[prop_id], value);
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dit_encode_finalize (GObject * object)
{
  GstDitEncode *self = GST_DIT_ENCODE (object);

  free_stream (self);
  gst_clear_object (&self->session);
  gst_clear_object (&self->cuda_offered);
  gst_dit_props_clear (self, props, N_PROPS);
  G_OBJECT_CLASS (gst_dit_encode_parent_class)->finalize (object);
}

static void
gst_dit_encode_class_init (GstDitEncodeClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_dit_encode_set_property;
  gobject_class->get_property = gst_dit_encode_get_property;
  gobject_class->finalize = gst_dit_encode_finalize;

  gst_dit_props_install (gobject_class, props, N_PROPS);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DiT latent encoder", "Codec/Encoder/Video",
      "Streaming WanVAE encode of raw video to latent chunks", "gst-dit");
  element_class->change_state = GST_DEBUG_FUNCPTR (gst_dit_encode_change_state);
  element_class->set_context = GST_DEBUG_FUNCPTR (gst_dit_encode_set_context);
  GST_DEBUG_CATEGORY_INIT (gst_dit_encode_debug, "ditencode", 0,
      "dit latent encoder");
}

static void
gst_dit_encode_init (GstDitEncode * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dit_encode_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dit_encode_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_dit_encode_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dit_encode_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  gst_dit_props_init (self, props, N_PROPS);
}
