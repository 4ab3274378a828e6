/* gstditlatent — latent caps, caps mapping and the per-chunk meta.
 *
 * The caps templates are deliberately wide (any size, any rate) so that a
 * wrong size or rate reaches the element's caps handler, which refuses it
 * with a message that says what is wrong, instead of a silent template
 * mismatch.
 */
#include "gstditlatent.h"

#include "dit_lora.h"
#include "dit_prompt_schedule.h"
#include "dit_stage0.h"
#include "dit_stream.h"

#include <string.h>

#include "dit_backend.h"

gchar *
gst_dit_check_pixel_size (gint width, gint height, gint fps_n, gint fps_d)
{
  if (width <= 0 || height <= 0 || width % 16 != 0 || height % 16 != 0)
    return g_strdup_printf ("unsupported size %dx%d: %s", width, height,
        GST_DIT_SIZE_RULE);
  if (fps_n <= 0 || fps_d <= 0
      || (gdouble) fps_n / fps_d > GST_DIT_MAX_FPS)
    return g_strdup_printf ("unsupported frame rate %d/%d: a fixed rate "
        "above 0 and at most %d fps is required", fps_n, fps_d,
        GST_DIT_MAX_FPS);
  return NULL;
}

static gboolean
bad_dimension (gint pixels)
{
  return pixels <= 0 || pixels % 16 != 0;
}

gchar *
gst_dit_caps_size_error (const GstCaps * raw)
{
  gchar *why = NULL;

  if (gst_caps_is_any (raw) || gst_caps_is_empty (raw))
    return NULL;
  for (guint i = 0; i < gst_caps_get_size (raw); i++) {
    const GstStructure *s = gst_caps_get_structure (raw, i);
    gint w = 0, h = 0;
    gboolean has_w = gst_structure_get_int (s, "width", &w);
    gboolean has_h = gst_structure_get_int (s, "height", &h);

    if (!(has_w && bad_dimension (w)) && !(has_h && bad_dimension (h))) {
      g_free (why);             /* this structure can take a good size */
      return NULL;
    }
    if (why)
      continue;
    if (has_w && has_h)
      why = g_strdup_printf ("unsupported size %dx%d: %s", w, h,
          GST_DIT_SIZE_RULE);
    else if (has_w)
      why = g_strdup_printf ("unsupported width %d: %s", w, GST_DIT_SIZE_RULE);
    else
      why = g_strdup_printf ("unsupported height %d: %s", h,
          GST_DIT_SIZE_RULE);
  }
  return why;
}

gboolean
gst_dit_latent_info_from_caps (GstDitLatentInfo * info, const GstCaps * caps,
    gchar ** why)
{
  GstStructure *s;
  const gchar *dtype;
  gchar *reason;

  *why = NULL;
  if (!gst_caps_is_fixed (caps)) {
    *why = g_strdup ("latent caps are not fixed");
    return FALSE;
  }
  s = gst_caps_get_structure (caps, 0);
  if (!gst_structure_has_name (s, GST_DIT_LATENT_MEDIA_TYPE)) {
    *why = g_strdup_printf ("expected %s, got %s", GST_DIT_LATENT_MEDIA_TYPE,
        gst_structure_get_name (s));
    return FALSE;
  }
  memset (info, 0, sizeof *info);
  if (!gst_structure_get_int (s, "channels", &info->channels)
      || !gst_structure_get_int (s, "width", &info->width)
      || !gst_structure_get_int (s, "height", &info->height)
      || !gst_structure_get_int (s, "frames", &info->frames)
      || !gst_structure_get_fraction (s, "framerate", &info->fps_n,
          &info->fps_d) || !(dtype = gst_structure_get_string (s, "dtype"))) {
    *why = g_strdup ("latent caps need channels, width, height, frames, "
        "dtype and framerate");
    return FALSE;
  }
  if (info->channels != 16) {
    *why = g_strdup_printf ("unsupported latent channels %d (Wan2.1 uses 16)",
        info->channels);
    return FALSE;
  }
  if (g_str_equal (dtype, "bf16"))
    info->bf16 = TRUE;
  else if (!g_str_equal (dtype, "f32")) {
    *why = g_strdup_printf ("unsupported latent dtype '%s' (f32 or bf16)",
        dtype);
    return FALSE;
  }
  if (info->frames < 1) {
    *why = g_strdup_printf ("invalid latent frames per buffer %d",
        info->frames);
    return FALSE;
  }
  reason = gst_dit_check_pixel_size (info->width * 8, info->height * 8,
      info->fps_n, info->fps_d);
  if (reason) {
    *why = g_strdup_printf ("latent grid %dx%d: %s", info->width,
        info->height, reason);
    g_free (reason);
    return FALSE;
  }
  return TRUE;
}

GstCaps *
gst_dit_latent_info_to_caps (const GstDitLatentInfo * info)
{
  return gst_caps_new_simple (GST_DIT_LATENT_MEDIA_TYPE,
      "channels", G_TYPE_INT, info->channels,
      "width", G_TYPE_INT, info->width,
      "height", G_TYPE_INT, info->height,
      "frames", G_TYPE_INT, info->frames,
      "dtype", G_TYPE_STRING, info->bf16 ? "bf16" : "f32",
      "framerate", GST_TYPE_FRACTION, info->fps_n, info->fps_d, NULL);
}

gsize
gst_dit_latent_info_buffer_size (const GstDitLatentInfo * info)
{
  return (gsize) info->channels * info->frames * info->width * info->height
      * (info->bf16 ? 2 : 4);
}

void
gst_dit_latent_to_f32 (const GstDitLatentInfo * info, const guint8 * src,
    gfloat * dst)
{
  gsize n = (gsize) info->channels * info->frames * info->width * info->height;
  dit_convert (dst, DIT_F32, src, info->bf16 ? DIT_BF16 : DIT_F32, n);
}

void
gst_dit_latent_from_f32 (const GstDitLatentInfo * info, const gfloat * src,
    guint8 * dst)
{
  gsize n = (gsize) info->channels * info->frames * info->width * info->height;
  dit_convert (dst, info->bf16 ? DIT_BF16 : DIT_F32, src, DIT_F32, n);
}

/* Scale an int / int range / list of ints; FALSE when nothing is left. */
static gboolean
scale_dim (const GValue * in, GValue * out, gint mul, gint div)
{
  if (G_VALUE_HOLDS_INT (in)) {
    gint v = g_value_get_int (in);
    if ((v * mul) % div != 0 || v * mul / div < 1)
      return FALSE;
    g_value_init (out, G_TYPE_INT);
    g_value_set_int (out, v * mul / div);
    return TRUE;
  }
  if (GST_VALUE_HOLDS_INT_RANGE (in)) {
    gint64 lo = gst_value_get_int_range_min (in);
    gint64 hi = gst_value_get_int_range_max (in);
    lo = MAX (1, (lo * mul + div - 1) / div);
    hi = MIN ((gint64) G_MAXINT / 16, hi) * mul / div;
    if (hi < lo)
      return FALSE;
    g_value_init (out, GST_TYPE_INT_RANGE);
    if (hi == lo) {
      g_value_unset (out);
      g_value_init (out, G_TYPE_INT);
      g_value_set_int (out, (gint) lo);
    } else {
      gst_value_set_int_range (out, (gint) lo, (gint) hi);
    }
    return TRUE;
  }
  if (GST_VALUE_HOLDS_LIST (in)) {
    guint i;
    g_value_init (out, GST_TYPE_LIST);
    for (i = 0; i < gst_value_list_get_size (in); i++) {
      GValue v = G_VALUE_INIT;
      if (scale_dim (gst_value_list_get_value (in, i), &v, mul, div))
        gst_value_list_append_and_take_value (out, &v);
    }
    if (gst_value_list_get_size (out) == 0) {
      g_value_unset (out);
      return FALSE;
    }
    return TRUE;
  }
  return FALSE;
}

static GstCaps *
map_caps (const GstCaps * in, const gchar * name, gint mul, gint div,
    const gchar * formats)
{
  GstCaps *out = gst_caps_new_empty ();
  guint i;

  for (i = 0; i < gst_caps_get_size (in); i++) {
    const GstStructure *s = gst_caps_get_structure (in, i);
    GstCapsFeatures *f = gst_caps_get_features (in, i);
    GstStructure *o;
    const GValue *v;
    const gchar *dims[] = { "width", "height" };
    guint d;

    /* Raw video in CUDA memory maps to the same latents as in system
     * memory, latents in device memory to the same raw video; the result
     * never carries a memory feature. */
    if (f && !gst_caps_features_is_any (f)
        && !gst_caps_features_is_equal (f,
            GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY)
        && !gst_caps_features_contains (f, GST_DIT_CAPS_FEATURE_CUDA)
        && !gst_caps_features_contains (f, GST_DIT_CAPS_FEATURE_DEVICE))
      continue;
    o = gst_structure_new_empty (name);
    for (d = 0; d < 2; d++) {
      v = gst_structure_get_value (s, dims[d]);
      if (v) {
        GValue sv = G_VALUE_INIT;
        /* A size with no latent grid (100 pixels) leaves the dimension
         * open: an empty result here fails the link ("could not link",
         * "downstream accepts no latent caps") without saying why, while
         * the element that meets the size names it and the rule. */
        if (scale_dim (v, &sv, mul, div))
          gst_structure_take_value (o, dims[d], &sv);
      }
    }
    if ((v = gst_structure_get_value (s, "framerate")))
      gst_structure_set_value (o, "framerate", v);
    if (formats) {
      GValue fv = G_VALUE_INIT;
      g_value_init (&fv, GST_TYPE_LIST);
      if (gst_value_deserialize (&fv, formats))
        gst_structure_take_value (o, "format", &fv);
      else
        g_value_unset (&fv);
    }
    out = gst_caps_merge_structure (out, o);
  }
  return out;
}

GstCaps *
gst_dit_caps_raw_to_latent (const GstCaps * raw)
{
  if (gst_caps_is_any (raw))
    return gst_caps_new_empty_simple (GST_DIT_LATENT_MEDIA_TYPE);
  return map_caps (raw, GST_DIT_LATENT_MEDIA_TYPE, 1, 8, NULL);
}

GstCaps *
gst_dit_caps_latent_to_raw (const GstCaps * latent, const gchar * formats)
{
  if (gst_caps_is_any (latent))
    return gst_caps_new_empty_simple ("video/x-raw");
  return map_caps (latent, "video/x-raw", 8, 1, formats);
}

GstCaps *
gst_dit_caps_to_cuda (const GstCaps * caps, const gchar * formats)
{
  GstCaps *out = gst_caps_new_empty ();

  for (guint i = 0; i < gst_caps_get_size (caps); i++) {
    GstCapsFeatures *f = gst_caps_get_features (caps, i);
    GstStructure *s;
    GValue fv = G_VALUE_INIT;

    if (f && !gst_caps_features_is_equal (f,
            GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY))
      continue;
    s = gst_structure_copy (gst_caps_get_structure (caps, i));
    g_value_init (&fv, GST_TYPE_LIST);
    if (gst_value_deserialize (&fv, formats))
      gst_structure_take_value (s, "format", &fv);
    else
      g_value_unset (&fv);
    out = gst_caps_merge_structure_full (out, s,
        gst_caps_features_new (GST_DIT_CAPS_FEATURE_CUDA, NULL));
  }
  return out;
}

GstCaps *
gst_dit_caps_drop_feature (GstCaps * caps, const gchar * feature)
{
  caps = gst_caps_make_writable (caps);
  for (guint i = gst_caps_get_size (caps); i > 0; i--) {
    GstCapsFeatures *f = gst_caps_get_features (caps, i - 1);
    if (f && !gst_caps_features_is_any (f)
        && gst_caps_features_contains (f, feature))
      gst_caps_remove_structure (caps, i - 1);
  }
  return caps;
}

gboolean
gst_dit_caps_has_feature (const GstCaps * caps, const gchar * feature)
{
  GstCapsFeatures *f;

  if (!caps || gst_caps_is_any (caps) || gst_caps_get_size (caps) == 0)
    return FALSE;
  f = gst_caps_get_features (caps, 0);
  return f && !gst_caps_features_is_any (f)
      && gst_caps_features_contains (f, feature);
}

/* ---- meta ---- */

GType
gst_dit_latent_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { NULL };

  if (g_once_init_enter (&type)) {
    /* Test programs link this file too: reuse a registration made by
     * another copy in the same process. */
    GType t = g_type_from_name ("GstDitLatentMetaAPI");
    if (!t)
      t = gst_meta_api_type_register ("GstDitLatentMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
gst_dit_latent_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  GstDitLatentMeta *m = (GstDitLatentMeta *) meta;

  m->chunk_index = 0;
  m->cache_epoch = 0;
  m->prompt_epoch = 0;
  m->seed = 0;
  m->valid_frames = -1;
  m->chunk_ms = m->recompute_ms = m->denoise_ms = 0.0;
  m->produced_ns = 0;
  return TRUE;
}

static gboolean
gst_dit_latent_meta_transform (GstBuffer * dest, GstMeta * meta,
    GstBuffer * buffer, GQuark type, gpointer data)
{
  GstDitLatentMeta *src = (GstDitLatentMeta *) meta, *dst;

  if (!GST_META_TRANSFORM_IS_COPY (type))
    return FALSE;
  dst = gst_buffer_add_dit_latent_meta (dest);
  if (!dst)
    return FALSE;
  dst->chunk_index = src->chunk_index;
  dst->cache_epoch = src->cache_epoch;
  dst->prompt_epoch = src->prompt_epoch;
  dst->seed = src->seed;
  dst->valid_frames = src->valid_frames;
  dst->chunk_ms = src->chunk_ms;
  dst->recompute_ms = src->recompute_ms;
  dst->denoise_ms = src->denoise_ms;
  dst->produced_ns = src->produced_ns;
  return TRUE;
}

const GstMetaInfo *
gst_dit_latent_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi = gst_meta_get_info ("GstDitLatentMeta");
    if (!mi)
      mi = gst_meta_register (GST_DIT_LATENT_META_API_TYPE,
        "GstDitLatentMeta", sizeof (GstDitLatentMeta),
        gst_dit_latent_meta_init, NULL, gst_dit_latent_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

GstDitLatentMeta *
gst_buffer_add_dit_latent_meta (GstBuffer * buffer)
{
  return (GstDitLatentMeta *) gst_buffer_add_meta (buffer,
      GST_DIT_LATENT_META_INFO, NULL);
}

/* ---- raw frames <-> pixel tensors ------------------------------------- */

/* The engine's description of a mapped frame; the planes are wherever the
 * frame was mapped (host memory, or device memory with GST_MAP_CUDA). */
static gboolean
pixel_params (const GstVideoFrame * frame, dit_vae_pixels_params * p,
    gchar ** why)
{
  const GstVideoInfo *info = &frame->info;
  const GstVideoColorimetry *c = &info->colorimetry;
  gboolean bt709 = c->matrix == GST_VIDEO_COLOR_MATRIX_BT709;
  gboolean full = c->range == GST_VIDEO_COLOR_RANGE_0_255;

  memset (p, 0, sizeof *p);
  switch (GST_VIDEO_INFO_FORMAT (info)) {
    case GST_VIDEO_FORMAT_RGB:
      p->format = DIT_PIXEL_RGB;
      break;
    case GST_VIDEO_FORMAT_RGBx:
      p->format = DIT_PIXEL_RGBX;
      break;
    case GST_VIDEO_FORMAT_RGBA:
      p->format = DIT_PIXEL_RGBA;
      break;
    case GST_VIDEO_FORMAT_I420:
      p->format = DIT_PIXEL_I420;
      break;
    case GST_VIDEO_FORMAT_NV12:
      p->format = DIT_PIXEL_NV12;
      break;
    default:
      *why = g_strdup_printf ("unsupported raw format %s",
          gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (info)));
      return FALSE;
  }
  p->matrix = bt709 ? (full ? DIT_YUV_BT709_FULL : DIT_YUV_BT709_LIMITED)
      : (full ? DIT_YUV_BT601_FULL : DIT_YUV_BT601_LIMITED);
  p->width = GST_VIDEO_INFO_WIDTH (info);
  p->height = GST_VIDEO_INFO_HEIGHT (info);
  for (guint i = 0; i < GST_VIDEO_FRAME_N_PLANES (frame) && i < 3; i++) {
    p->plane[i] = GST_VIDEO_FRAME_PLANE_DATA (frame, i);
    p->stride[i] = GST_VIDEO_FRAME_PLANE_STRIDE (frame, i);
  }
  return TRUE;
}

/* Frame t of a channels-first [3, T, H, W] host buffer is a strided
 * [3, H, W]. */
static dit_tensor
frame_view (const gfloat * pixels, const GstVideoFrame * frame, gint t,
    gint num_frames)
{
  gint w = GST_VIDEO_FRAME_WIDTH (frame), h = GST_VIDEO_FRAME_HEIGHT (frame);
  int64_t shape[3] = { 3, h, w };
  dit_tensor view = dit_tensor_make ((gfloat *) pixels + (gsize) t * h * w,
      DIT_F32, DIT_DEVICE_CPU, 3, shape);

  view.stride[0] = (int64_t) num_frames * h * w;
  return view;
}

gboolean
gst_dit_frame_to_tensor (dit_backend * be, const GstVideoFrame * frame,
    dit_tensor * view, gchar ** why)
{
  dit_vae_pixels_params p;

  if (!pixel_params (frame, &p, why))
    return FALSE;
  p.tensor = view;
  if (dit_pixels_to_tensor (be, &p) != DIT_OK) {
    *why = g_strdup (dit_last_error ());
    return FALSE;
  }
  return TRUE;
}

gboolean
gst_dit_tensor_to_frame (dit_backend * be, const dit_tensor * view,
    GstVideoFrame * frame, gchar ** why)
{
  dit_vae_pixels_params p;
  dit_tensor v = *view;

  if (!pixel_params (frame, &p, why))
    return FALSE;
  p.tensor = &v;
  if (dit_tensor_to_pixels (be, &p) != DIT_OK) {
    *why = g_strdup (dit_last_error ());
    return FALSE;
  }
  return TRUE;
}

gboolean
gst_dit_frame_to_pixels (const GstVideoFrame * frame, gfloat * pixels, gint t,
    gint num_frames, gchar ** why)
{
  dit_tensor view = frame_view (pixels, frame, t, num_frames);

  return gst_dit_frame_to_tensor (dit_backend_cpu (), frame, &view, why);
}

gboolean
gst_dit_pixels_to_frame (const gfloat * pixels, gint t, gint num_frames,
    GstVideoFrame * frame, gchar ** why)
{
  dit_tensor view = frame_view (pixels, frame, t, num_frames);

  return gst_dit_tensor_to_frame (dit_backend_cpu (), &view, frame, why);
}

/* ------------------------------------------------------------------ */
/* engine enums and chunk timing */

GType
gst_dit_anchor_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {DIT_ANCHOR_DECODED, "Re-encode the last decoded frame of the chunk's "
          "first latent (scope's krea_realtime_video)", "decoded"},
    {DIT_ANCHOR_LATENT, "Use the previous chunk's first latent as is "
          "(no decode on the critical path)", "latent"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDitAnchorMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_dit_anchor_decoder_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {DIT_ANCHOR_DECODER_FULL, "The full VAE decodes the anchor latent "
          "(beside a tiny display decoder, one full decode per chunk)", "full"},
    {DIT_ANCHOR_DECODER_TINY, "The display decoder's frame is "
          "re-encoded (with a tiny display decoder: no full decode)", "tiny"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDitAnchorDecoder", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_dit_lora_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {DIT_LORA_MERGE, "Merged into the weights (full speed; a strength "
          "change re-merges every touched layer)", "merge"},
    {DIT_LORA_LIVE, "The low-rank term folded into each touched layer's "
          "GEMM (the weights' values stay untouched; a strength change is a "
          "rescale)", "live"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDitLoraMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_dit_dtype_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DIT_DTYPE_AUTO, "bf16 on CUDA, f32 on the CPU", "auto"},
    {GST_DIT_DTYPE_BF16, "bf16 weights and activations", "bf16"},
    {GST_DIT_DTYPE_FP8, "bf16 with the transformer blocks' linear layers as "
          "FP8 (e4m3) GEMMs; needs a GPU with FP8 tensor cores (compute "
          "capability 8.9 or newer) or the CPU reference", "fp8"},
    {GST_DIT_DTYPE_F32, "f32 weights and activations", "f32"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDitDtype", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

gint
gst_dit_dtype_precision (gint dtype)
{
  switch (dtype) {
    case GST_DIT_DTYPE_BF16:
      return DIT_PRECISION_BF16;
    case GST_DIT_DTYPE_FP8:
      return DIT_PRECISION_FP8;
    case GST_DIT_DTYPE_F32:
      return DIT_PRECISION_F32;
    default:
      return -1;
  }
}

GType
gst_dit_prompt_reset_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {DIT_PROMPT_RESET_AUTO, "Restart the cache with video input when the "
          "prompt switches without a transition (scope's behaviour)", "auto"},
    {DIT_PROMPT_RESET_ALWAYS, "Restart the cache on every prompt change",
        "always"},
    {DIT_PROMPT_RESET_NEVER, "Never restart the cache on a prompt change",
        "never"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDitPromptReset", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

void
gst_dit_latent_set_chunk_times (GstBuffer * buf, const GstDitLatentInfo * info,
    gint64 chunk_index, guint64 * frames_out)
{
  gint n = dit_stream_chunk_frames (chunk_index, info->frames);
  GstClockTime t0 = gst_util_uint64_scale (*frames_out,
      info->fps_d * GST_SECOND, info->fps_n);
  GstClockTime t1 = gst_util_uint64_scale (*frames_out + n,
      info->fps_d * GST_SECOND, info->fps_n);

  GST_BUFFER_PTS (buf) = t0;
  GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION (buf) = t1 - t0;
  GST_BUFFER_OFFSET (buf) = *frames_out;
  GST_BUFFER_OFFSET_END (buf) = *frames_out + n;
  *frames_out += n;
}
