/**
 * SECTION:element-ditgenerate
 * @title: ditgenerate
 *
 * Runs the causal Wan2.1 DiT one chunk at a time with a rolling KV cache.
 * Fed latent chunks (from ditencode) it restyles them (video-to-video,
 * input noised to #GstDitGenerate:strength); with its request sink pad
 * unlinked it is a source (text-to-video).  Output chunks carry a
 * #GstDitLatentMeta (chunk index, cache epoch, prompt epoch, seed, timing).
 *
 * The element owns a bounded input queue (#GstDitGenerate:max-inflight
 * chunks) and a streaming task on its source pad.  The engine is the
 * library's: the generator runs behind a dit_runner (in this process or on
 * a mesh), the prompt follows a dit_prompt_schedule, and Stage 0 (the
 * chunk's context and the anchor path: the latent whose last frame is the
 * next anchor is decoded and that frame re-encoded by the full VAE) is the
 * session's dit_stage0.  Each chunk's result goes through the anchor path
 * before it is pushed.  The anchor's frame comes from the full VAE
 * (#GstDitGenerate:anchor-decoder=full, the default; when ditdecode
 * displays with a tiny decoder, the full VAE then decodes only that latent
 * per chunk) or from the display decoder (anchor-decoder=tiny: no full
 * decode on the critical path, an anchor through the tiny decoder's
 * picture).
 *
 * In text-to-video the stream ends after #GstDitGenerate:num-chunks, or
 * when an EOS event is sent to the element or to its pipeline
 * (gst-launch-1.0 -e does that on Ctrl-C): the chunk in flight is
 * finished and pushed, then EOS, and the task stops.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 ditgenerate num-chunks=4 prompt="a koi pond at dawn, drone shot" ! ditdecode ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
 * ]| Text-to-video with the embedded tiny model and tiny text encoder, no
 * download, CPU only.
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=45 ! video/x-raw,width=128,height=128 ! ditencode ! ditgenerate strength=0.6 ! ditdecode ! videoconvert ! autovideosink
 * ]| Video-to-video.
 * |[
 * gst-launch-1.0 ditgenerate num-chunks=4 mesh-devices=0,1 mesh-backend=cpu ! ditdecode ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
 * ]| Text-to-video on a generator mesh: two dit-worker processes hold
 * tensor-parallel halves of the DiT; this process keeps the VAE.
 *
 * ## LoRA adapters
 *
 * #GstDitGenerate:lora lists up to 8 LoRA files with their strengths
 * ("style.safetensors:0.8|detail.safetensors:0.4"; model/dit_lora.h reads
 * the kohya, PEFT and Diffusers layouts).  With
 * #GstDitGenerate:lora-mode=merge (the default) they are merged into the
 * DiT's weights and a strength change re-merges; with live the weights stay
 * untouched and each touched linear adds its low-rank product.  The list
 * and its strengths may change while PLAYING and take effect at the next
 * chunk; a file that cannot be used then is a warning and the previous
 * list stays.
 * |[
 * gst-launch-1.0 ditgenerate num-chunks=8 lora=style.safetensors:0.8 lora-mode=live ! ditdecode ! videoconvert ! autovideosink
 * ]|
 *
 * ## Generator mesh
 *
 * With #GstDitGenerate:mesh-devices (or #GstDitGenerate:mesh-listen) set,
 * the DiT runs in dit-worker processes (mesh/dit_runner.h) instead of in this
 * process: the element spawns one worker per listed device (or waits for
 * workers started by another launcher), sends every chunk's request to them
 * and gets the latents back.  This process loads no DiT weights, only the
 * model config and the VAE of the anchor path.  A dead, stalled or refused
 * worker is an element error naming the rank; stopping the element shuts
 * the workers down and reaps them.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstditgenerate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gstditgenengine.h"
#include "gstditlatent.h"
#include "gstditmemory.h"
#include "gstditprops.h"
#include "gstditqueue.h"
#include "gstditsession.h"
#include "dit_loader.h"

/* shared with the engine glue, gstditgenengine.c */
GST_DEBUG_CATEGORY (gst_dit_generate_debug);
#define GST_CAT_DEFAULT gst_dit_generate_debug

#define DEFAULT_SEED 42
#define DEFAULT_STEPS "1000,750,500,250"
#define DEFAULT_SHIFT 5.0
#define DEFAULT_STRENGTH 0.7
#define DEFAULT_KV_WINDOW 0
#define DEFAULT_CONTEXT_FRAMES 3
#define DEFAULT_KV_BIAS 0.3
#define DEFAULT_MAX_INFLIGHT 2
#define DEFAULT_NUM_CHUNKS 0
#define DEFAULT_ANCHOR DIT_ANCHOR_DECODED
#define DEFAULT_ANCHOR_DECODER DIT_ANCHOR_DECODER_FULL
#define DEFAULT_DTYPE GST_DIT_DTYPE_AUTO
#define DEFAULT_WIDTH 64
#define DEFAULT_HEIGHT 64
#define DEFAULT_FRAMES 3
#define DEFAULT_FPS_N 16
#define DEFAULT_FPS_D 1
#define DEFAULT_TRANSITION_CHUNKS 0
#define DEFAULT_PROMPT_RESET DIT_PROMPT_RESET_AUTO
#define DEFAULT_MESH_TIMEOUT_MS 10000
#define DEFAULT_MESH_JOIN_TIMEOUT_MS 30000
#define DEFAULT_LORA_MODE DIT_LORA_MERGE
/* Filter mode: how long the task waits for input before it lets the
 * runner look after an idle mesh. */
#define MESH_IDLE_US (1 * G_TIME_SPAN_SECOND)

/* The dit-worker installed with this plugin (gst/meson.build). */
#ifndef GST_DIT_BINDIR
#define GST_DIT_BINDIR "/usr/local/bin"
#endif

enum
{
  PROP_0, PROP_MODEL, PROP_VAE_MODEL, PROP_PROMPT_EMBEDS, PROP_SEED,
  PROP_STEPS, PROP_SHIFT, PROP_STRENGTH, PROP_KV_WINDOW, PROP_CONTEXT_FRAMES,
  PROP_KV_BIAS, PROP_MAX_INFLIGHT, PROP_DEVICE, PROP_SESSION, PROP_ANCHOR,
  PROP_ANCHOR_DECODER,
  PROP_NUM_CHUNKS, PROP_FRAMERATE, PROP_FPS, PROP_CHUNK_MS, PROP_QUEUE_DEPTH,
  PROP_CHUNKS, PROP_CACHE_EPOCH, PROP_PROMPT, PROP_PROMPT_TRANSITION_CHUNKS,
  PROP_PROMPT_RESETS_CACHE, PROP_TEXT_MODEL, PROP_TOKENIZER, PROP_PROMPT_WEIGHT,
  PROP_MESH_DEVICES, PROP_MESH_BACKEND, PROP_MESH_LISTEN, PROP_MESH_RANKS,
  PROP_MESH_PARALLEL, PROP_MESH_TP, PROP_MESH_COLOCATE,
  PROP_WORKER_PATH, PROP_MESH_TIMEOUT_MS, PROP_MESH_JOIN_TIMEOUT_MS,
  PROP_MESH_RANK_MS, PROP_MESH_WORKER_PIDS, PROP_STAGE0_MS, PROP_STAGE1_MS,
  PROP_PERIOD_MS, PROP_HIDDEN_MS, PROP_OVERLAP_SCORE, PROP_HOST_COPIES,
  PROP_DTYPE, PROP_LORA, PROP_LORA_MODE, N_PROPS
};

struct _GstDitGenerate
{
  GstElement parent;

  GstPad *sinkpad;              /* request pad, NULL when not requested */
  GstPad *srcpad;

  /* properties; object lock (the engine's in `s`) */
  GstDitGenSettings s;
  gchar *model, *vae_model, *session_key;
  gint anchor_decoder;          /* dit_anchor_decoder */
  guint num_chunks;
  gint fps_n, fps_d;
  /* read-only statistics; object lock (the engine has its own) */
  gdouble stat_fps;
  gdouble stat_stage0_ms, stat_stage1_ms, stat_period_ms, stat_hidden_ms;
  gdouble stat_overlap;
  guint64 stat_chunks;
  gint stat_queue_depth;

  GstDitSession *session;
  GstDitGenEngine engine;       /* the generator, its prompt, one chunk */

  /* streaming task state */
  gboolean source_mode, started;
  gint64 last_push_us, stage0_busy_us;
  dit_overlap overlap;
  gdouble latency_ms;           /* figure last reported in LATENCY */

  GstDitChunkQueue queue;       /* input chunks and serialized events */
  gboolean eos_pending;         /* text-to-video: EOS sent to the element;
                                   object lock */
};

static GstStaticPadTemplate sink_template =
GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS (GST_DIT_LATENT_CAPS_ANY_MEMORY));
static GstStaticPadTemplate src_template =
GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_DIT_LATENT_CAPS_ANY_MEMORY));

G_DEFINE_TYPE (GstDitGenerate, gst_dit_generate, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (ditgenerate, "ditgenerate", GST_RANK_NONE,
    GST_TYPE_DIT_GENERATE);

static void gst_dit_generate_loop (GstDitGenerate * self);

/* ------------------------------------------------------------------ */
/* one chunk through the engine (gstditgenengine.h) */

static GstFlowReturn
run_chunk (GstDitGenerate * self, GstBuffer * in, GstBuffer ** out)
{
  gchar *error = NULL;
  GstFlowReturn ret;

  ret = gst_dit_gen_engine_run_chunk (&self->engine, in, out, &error);
  if (ret == GST_FLOW_ERROR) {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED, ("%s", error),
        ("chunk %" G_GINT64_FORMAT " failed", self->engine.chunk_index));
    g_free (error);
  }
  return ret;
}

/* ------------------------------------------------------------------ */
/* negotiation */

static gboolean
negotiate_source (GstDitGenerate * self)
{
  GstCaps *tmpl = gst_pad_get_pad_template_caps (self->srcpad);
  GstCaps *caps = gst_pad_peer_query_caps (self->srcpad, tmpl);
  GstStructure *s;
  GstDitLatentInfo info;
  gchar *why = NULL, *error = NULL;
  gint fps_n, fps_d;
  gboolean device = gst_dit_peer_takes_device (self->srcpad, self->session);

  gst_caps_unref (tmpl);
  if (!gst_caps_is_empty (caps)) {
    caps = gst_dit_caps_keep_memory (caps, device);
    if (gst_caps_is_empty (caps)) {
      gst_caps_unref (caps);
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("downstream takes latents "
              "only in device memory (" GST_DIT_CAPS_FEATURE_DEVICE "), which "
              "needs the session on a CUDA device (device=cuda:N)"), (NULL));
      return FALSE;
    }
  }
  if (gst_caps_is_empty (caps)) {
    gst_caps_unref (caps);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("downstream accepts no latent caps"), (NULL));
    return FALSE;
  }
  caps = gst_caps_truncate (caps);
  caps = gst_caps_make_writable (caps);
  s = gst_caps_get_structure (caps, 0);
  GST_OBJECT_LOCK (self);
  fps_n = self->fps_n;
  fps_d = self->fps_d;
  GST_OBJECT_UNLOCK (self);
  gst_structure_fixate_field_nearest_int (s, "width", DEFAULT_WIDTH / 8);
  gst_structure_fixate_field_nearest_int (s, "height", DEFAULT_HEIGHT / 8);
  gst_structure_fixate_field_nearest_int (s, "frames", DEFAULT_FRAMES);
  gst_structure_fixate_field_nearest_int (s, "channels", 16);
  gst_structure_fixate_field_string (s, "dtype", "f32");
  gst_structure_fixate_field_nearest_fraction (s, "framerate", fps_n, fps_d);
  caps = gst_caps_fixate (caps);

  if (!gst_dit_latent_info_from_caps (&info, caps, &why)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("%s", why),
        ("negotiated %" GST_PTR_FORMAT, caps));
    g_free (why);
    gst_caps_unref (caps);
    return FALSE;
  }
  if (!gst_dit_gen_engine_configure (&self->engine, &info, &error)
      || !gst_dit_gen_engine_setup_output (&self->engine, device, &error)) {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("%s", error), (NULL));
    g_free (error);
    gst_caps_unref (caps);
    return FALSE;
  }
  if (!gst_pad_push_event (self->srcpad, gst_event_new_caps (caps))) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("downstream refused %" GST_PTR_FORMAT, caps), (NULL));
    gst_caps_unref (caps);
    return FALSE;
  }
  gst_caps_unref (caps);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* task */

/* Per chunk: stage 0 (Stage 0's decode and anchor work since the last
 * push), stage 1 (the generator call), the period (push to push) and how
 * much of the two ran at the same time (dit_overlap). */
static void
update_stats (GstDitGenerate * self, gint frames)
{
  gint64 now = g_get_monotonic_time ();
  gint64 busy = self->session ?
      gst_dit_session_stage0_busy_us (self->session) : 0;
  gboolean timed = self->last_push_us > 0 && now > self->last_push_us;

  if (timed)
    dit_overlap_add (&self->overlap, (busy - self->stage0_busy_us) / 1000.0,
        self->engine.stage1_ms_pending, (now - self->last_push_us) / 1000.0);
  self->stage0_busy_us = busy;
  GST_OBJECT_LOCK (self);
  if (timed) {
    self->stat_fps = frames * 1e6 / (now - self->last_push_us);
    self->stat_stage0_ms = self->overlap.stage0_ms;
    self->stat_stage1_ms = self->overlap.stage1_ms;
    self->stat_period_ms = self->overlap.period_ms;
    self->stat_hidden_ms = self->overlap.hidden_ms;
    self->stat_overlap = self->overlap.score;
  }
  self->stat_chunks++;
  GST_OBJECT_UNLOCK (self);
  self->last_push_us = now;

  /* Tell the application when the processing latency moved by > 20%. */
  if (!self->source_mode && (self->latency_ms == 0
          || fabs (self->engine.stat_chunk_ms - self->latency_ms) >
          0.2 * self->latency_ms)) {
    self->latency_ms = self->engine.stat_chunk_ms;
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
  }
}

static void
pause_task (GstDitGenerate * self, GstFlowReturn ret)
{
  gst_dit_chunk_queue_fail (&self->queue, ret);
  GST_DEBUG_OBJECT (self, "pausing task: %s", gst_flow_get_name (ret));
  gst_pad_pause_task (self->srcpad);
  if (ret == GST_FLOW_EOS)
    return;
  if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) {
    GST_ELEMENT_FLOW_ERROR (self, ret);
    gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  }
}

static GstFlowReturn
push_chunk (GstDitGenerate * self, GstBuffer * buf)
{
  gint frames = (gint) (GST_BUFFER_OFFSET_END (buf) - GST_BUFFER_OFFSET (buf));
  GstDitLatentMeta *m = gst_buffer_get_dit_latent_meta (buf);

  if (!GST_BUFFER_OFFSET_END_IS_VALID (buf) || frames <= 0)
    frames = dit_stream_chunk_frames (m->chunk_index, self->engine.info.frames);
  update_stats (self, frames);
  return gst_pad_push (self->srcpad, buf);
}

static void
start_source (GstDitGenerate * self)
{
  gchar *sid = gst_pad_create_stream_id (self->srcpad, GST_ELEMENT (self),
      NULL);
  GstSegment seg;

  gst_pad_push_event (self->srcpad, gst_event_new_stream_start (sid));
  g_free (sid);
  if (!negotiate_source (self)) {
    pause_task (self, GST_FLOW_NOT_NEGOTIATED);
    return;
  }
  gst_segment_init (&seg, GST_FORMAT_TIME);
  gst_pad_push_event (self->srcpad, gst_event_new_segment (&seg));
  self->started = TRUE;
}

static void
loop_source (GstDitGenerate * self)
{
  GstBuffer *out = NULL;
  GstFlowReturn ret;
  guint limit;
  gboolean eos;

  if (!self->started) {
    start_source (self);
    if (!self->started)
      return;
  }
  GST_OBJECT_LOCK (self);
  limit = self->num_chunks;
  eos = self->eos_pending;
  GST_OBJECT_UNLOCK (self);
  if (eos || (limit > 0 && self->stat_chunks >= limit)) {
    GST_DEBUG_OBJECT (self, "end of stream after %" G_GUINT64_FORMAT
        " chunks%s", self->stat_chunks, eos ? " (EOS sent to the element)" :
        "");
    gst_pad_push_event (self->srcpad, gst_event_new_eos ());
    pause_task (self, GST_FLOW_EOS);
    return;
  }
  ret = run_chunk (self, NULL, &out);
  if (ret == GST_FLOW_OK)
    ret = push_chunk (self, out);
  if (ret != GST_FLOW_OK)
    pause_task (self, ret);
}

static gboolean
handle_queued_event (GstDitGenerate * self, GstEvent * event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS) {
    GstCaps *caps;
    GstDitLatentInfo info;
    gchar *why = NULL, *error = NULL;

    gboolean device;

    gst_event_parse_caps (event, &caps);
    /* Validated in the sink event handler already. */
    gst_dit_latent_info_from_caps (&info, caps, &why);
    g_free (why);
    /* The same latents; the memory is chosen for the downstream link. */
    device = gst_dit_peer_takes_device (self->srcpad, self->session);
    if (!gst_dit_gen_engine_configure (&self->engine, &info, &error)
        || !gst_dit_gen_engine_setup_output (&self->engine, device,
            &error)) {
      GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("%s", error), (NULL));
      g_free (error);
      gst_event_unref (event);
      return FALSE;
    }
    caps = gst_dit_latent_info_to_caps (&info);
    if (device) {
      GstCaps *d = gst_dit_caps_with_feature (caps,
          GST_DIT_CAPS_FEATURE_DEVICE);
      gst_caps_unref (caps);
      caps = d;
    }
    gst_event_unref (event);
    event = gst_event_new_caps (caps);
    gst_caps_unref (caps);
  }
  return gst_pad_push_event (self->srcpad, event);
}

static void
loop_filter (GstDitGenerate * self)
{
  GstMiniObject *item;
  GstFlowReturn ret;
  dit_runner *runner = self->engine.runner;
  gboolean mesh = runner && dit_runner_is_mesh (runner);

  /* A mesh is looked after while no input comes (dit_runner_idle). */
  while (!(item = gst_dit_chunk_queue_pop (&self->queue, mesh ? MESH_IDLE_US
              : -1, &ret)) && ret == GST_FLOW_OK) {
    if (dit_runner_idle (runner) != DIT_OK) {
      GST_ELEMENT_ERROR (self, LIBRARY, FAILED, ("%s", dit_last_error ()),
          ("generator mesh lost while idle"));
      pause_task (self, GST_FLOW_ERROR);
      return;
    }
  }
  if (!item) {
    gst_pad_pause_task (self->srcpad);
    return;
  }
  if (GST_IS_BUFFER (item)) {
    GstBuffer *in = GST_BUFFER (item), *out = NULL;
    if (!self->engine.configured) {
      gst_buffer_unref (in);
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("received a chunk before caps"), (NULL));
      ret = GST_FLOW_NOT_NEGOTIATED;
    } else {
      ret = run_chunk (self, in, &out);
      gst_buffer_unref (in);
      if (ret == GST_FLOW_OK)
        ret = push_chunk (self, out);
    }
  } else {
    GstEvent *event = GST_EVENT (item);
    gboolean eos = GST_EVENT_TYPE (event) == GST_EVENT_EOS;
    if (!handle_queued_event (self, event) && !eos)
      GST_DEBUG_OBJECT (self, "downstream refused a serialized event");
    if (eos)
      ret = GST_FLOW_EOS;
  }
  if (ret != GST_FLOW_OK)
    pause_task (self, ret);
}

static void
gst_dit_generate_loop (GstDitGenerate * self)
{
  if (self->source_mode)
    loop_source (self);
  else
    loop_filter (self);
}

/* ------------------------------------------------------------------ */
/* pads */

static GstFlowReturn
gst_dit_generate_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  /* The bounded hand-off: blocks upstream while the queue is full. */
  return gst_dit_chunk_queue_push_buffer (&GST_DIT_GENERATE (parent)->queue,
      buf);
}

static gboolean
gst_dit_generate_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      gst_pad_push_event (self->srcpad, event);
      gst_dit_chunk_queue_stop (&self->queue, GST_FLOW_FLUSHING);
      if (self->session)
        gst_dit_session_set_flushing (self->session, TRUE);
      gst_pad_pause_task (self->srcpad);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      gst_dit_chunk_queue_flush (&self->queue);
      gst_dit_chunk_queue_start (&self->queue);
      if (self->session)
        gst_dit_session_set_flushing (self->session, FALSE);
      /* Cached KV context and anchors belong to the old position. */
      gst_dit_gen_engine_reset_stream (&self->engine);
      gst_pad_push_event (self->srcpad, event);
      gst_pad_start_task (self->srcpad,
          (GstTaskFunction) gst_dit_generate_loop, self, NULL);
      return TRUE;
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      GstDitLatentInfo info;
      gchar *why = NULL;

      gst_event_parse_caps (event, &caps);
      if (!gst_dit_latent_info_from_caps (&info, caps, &why)) {
        GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("%s", why),
            ("caps %" GST_PTR_FORMAT, caps));
        g_free (why);
        gst_event_unref (event);
        return FALSE;
      }
      if (gst_dit_caps_has_feature (caps, GST_DIT_CAPS_FEATURE_DEVICE)
          && !gst_dit_session_on_device (self->session)) {
        GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("latents in device "
                "memory need the session on a CUDA device (device=cuda:N)"),
            ("caps %" GST_PTR_FORMAT, caps));
        gst_event_unref (event);
        return FALSE;
      }
      break;
    }
    default:
      break;
  }
  if (GST_EVENT_IS_SERIALIZED (event))
    return gst_dit_chunk_queue_push_event (&self->queue, event);
  return gst_pad_push_event (self->srcpad, event);
}

/* Output latents equal input latents, in either memory: a CAPS query on
 * `pad` is answered with the peer caps of `other`. */
static gboolean
proxy_caps (GstPad * other, GstPad * pad, GstQuery * query)
{
  GstCaps *filter, *tmpl = gst_pad_get_pad_template_caps (pad), *caps;

  gst_query_parse_caps (query, &filter);
  caps = gst_dit_caps_any_memory (gst_pad_peer_query_caps (other, tmpl));
  gst_caps_unref (tmpl);
  if (filter) {
    GstCaps *t = gst_caps_intersect_full (filter, caps,
        GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = t;
  }
  gst_query_set_caps_result (query, caps);
  gst_caps_unref (caps);
  return TRUE;
}

static gboolean
gst_dit_generate_sink_query (GstPad * pad, GstObject * parent,
    GstQuery * query)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS:
      return proxy_caps (self->srcpad, pad, query);
    case GST_QUERY_CONTEXT:
      if (gst_dit_session_handle_context_query (GST_ELEMENT (self), query,
              &self->session_key, &self->s.device, &self->session, NULL))
        return TRUE;
      break;
    default:
      break;
  }
  return gst_pad_query_default (pad, parent, query);
}

static gboolean
gst_dit_generate_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_LATENCY:{
      gboolean live = FALSE;
      GstClockTime min = 0, max = GST_CLOCK_TIME_NONE, own, chunk_dur;
      gint depth, fps_n, fps_d;

      if (!self->source_mode && self->sinkpad) {
        if (!gst_pad_peer_query (self->sinkpad, query))
          return FALSE;
        gst_query_parse_latency (query, &live, &min, &max);
      }
      GST_OBJECT_LOCK (self);
      own = (GstClockTime) (self->engine.stat_chunk_ms * GST_MSECOND);
      depth = self->s.max_inflight;
      GST_OBJECT_UNLOCK (self);
      fps_n = self->engine.configured ? self->engine.info.fps_n : self->fps_n;
      fps_d = self->engine.configured ? self->engine.info.fps_d : self->fps_d;
      chunk_dur = gst_util_uint64_scale (4 * (self->engine.configured ?
              self->engine.info.frames : DEFAULT_FRAMES), fps_d * GST_SECOND,
          fps_n);
      /* min: one chunk of processing; max: what the bounded input queue
       * and the chunk being processed can hold. */
      min += own;
      if (GST_CLOCK_TIME_IS_VALID (max))
        max += MAX (own, (depth + 1) * chunk_dur);
      GST_DEBUG_OBJECT (self, "latency live %d min %" GST_TIME_FORMAT " max %"
          GST_TIME_FORMAT, live, GST_TIME_ARGS (min), GST_TIME_ARGS (max));
      gst_query_set_latency (query, live, min, max);
      return TRUE;
    }
    case GST_QUERY_CAPS:
      if (!self->source_mode && self->sinkpad)
        return proxy_caps (self->sinkpad, pad, query);
      break;
    case GST_QUERY_CONTEXT:
      if (gst_dit_session_handle_context_query (GST_ELEMENT (self), query,
              &self->session_key, &self->s.device, &self->session, NULL))
        return TRUE;
      break;
    case GST_QUERY_SCHEDULING:
      gst_query_set_scheduling (query, GST_SCHEDULING_FLAG_SEQUENTIAL, 1, -1,
          0);
      gst_query_add_scheduling_mode (query, GST_PAD_MODE_PUSH);
      return TRUE;
    default:
      break;
  }
  return gst_pad_query_default (pad, parent, query);
}

static gboolean
gst_dit_generate_src_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);

  if (self->source_mode || !self->sinkpad) {
    /* A source without seeking: answer upstream events ourselves. */
    gboolean ok = GST_EVENT_TYPE (event) == GST_EVENT_QOS
        || GST_EVENT_TYPE (event) == GST_EVENT_RECONFIGURE
        || GST_EVENT_TYPE (event) == GST_EVENT_LATENCY;
    gst_event_unref (event);
    return ok;
  }
  return gst_pad_push_event (self->sinkpad, event);
}

static gboolean
gst_dit_generate_src_activate_mode (GstPad * pad, GstObject * parent,
    GstPadMode mode, gboolean active)
{
  GstDitGenerate *self = GST_DIT_GENERATE (parent);

  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  if (active) {
    gst_dit_chunk_queue_start (&self->queue);
    GST_OBJECT_LOCK (self);
    self->eos_pending = FALSE;
    GST_OBJECT_UNLOCK (self);
    self->source_mode = !self->sinkpad || !gst_pad_is_linked (self->sinkpad);
    self->started = FALSE;
    GST_DEBUG_OBJECT (self, "starting in %s mode",
        self->source_mode ? "source (text-to-video)" : "video-to-video");
    if (self->session)
      gst_dit_session_set_flushing (self->session, FALSE);
    return gst_pad_start_task (pad, (GstTaskFunction) gst_dit_generate_loop,
        self, NULL);
  }
  gst_dit_chunk_queue_stop (&self->queue, GST_FLOW_FLUSHING);
  if (self->session)
    gst_dit_session_set_flushing (self->session, TRUE);
  gst_pad_stop_task (pad);
  gst_dit_chunk_queue_flush (&self->queue);
  GST_OBJECT_LOCK (self);
  self->eos_pending = FALSE;
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

/* Text-to-video has no upstream that could end the stream: an EOS sent to
 * the element (gst-launch-1.0 -e sends it to the pipeline, which hands it
 * to its sources) ends it after the chunk in flight, as in GstBaseSrc. */
static gboolean
gst_dit_generate_send_event (GstElement * element, GstEvent * event)
{
  GstDitGenerate *self = GST_DIT_GENERATE (element);
  gboolean source;

  if (GST_EVENT_TYPE (event) != GST_EVENT_EOS)
    return GST_ELEMENT_CLASS (gst_dit_generate_parent_class)->send_event
        (element, event);
  GST_OBJECT_LOCK (self);
  source = !self->sinkpad || !gst_pad_is_linked (self->sinkpad);
  if (source)
    self->eos_pending = TRUE;
  GST_OBJECT_UNLOCK (self);
  if (!source)
    return GST_ELEMENT_CLASS (gst_dit_generate_parent_class)->send_event
        (element, event);
  GST_DEBUG_OBJECT (self, "EOS sent to the source: ending the stream");
  gst_event_unref (event);
  return TRUE;
}

static GstPad *
gst_dit_generate_request_new_pad (GstElement * element, GstPadTemplate * templ,
    const gchar * name, const GstCaps * caps)
{
  GstDitGenerate *self = GST_DIT_GENERATE (element);
  GstPad *pad;

  GST_OBJECT_LOCK (self);
  if (self->sinkpad) {
    GST_OBJECT_UNLOCK (self);
    GST_WARNING_OBJECT (self, "only one sink pad is supported");
    return NULL;
  }
  GST_OBJECT_UNLOCK (self);
  pad = gst_pad_new_from_template (templ, "sink");
  gst_pad_set_chain_function (pad, GST_DEBUG_FUNCPTR (gst_dit_generate_chain));
  gst_pad_set_event_function (pad,
      GST_DEBUG_FUNCPTR (gst_dit_generate_sink_event));
  gst_pad_set_query_function (pad,
      GST_DEBUG_FUNCPTR (gst_dit_generate_sink_query));
  GST_PAD_SET_PROXY_ALLOCATION (pad);
  GST_OBJECT_LOCK (self);
  self->sinkpad = pad;
  /* A filter now: a pipeline's EOS reaches it from upstream. */
  GST_OBJECT_FLAG_UNSET (self, GST_ELEMENT_FLAG_SOURCE);
  GST_OBJECT_UNLOCK (self);
  if (GST_STATE (element) > GST_STATE_READY)
    gst_pad_set_active (pad, TRUE);
  gst_element_add_pad (element, pad);
  return pad;
}

static void
gst_dit_generate_release_pad (GstElement * element, GstPad * pad)
{
  GstDitGenerate *self = GST_DIT_GENERATE (element);

  if (pad != self->sinkpad)
    return;
  GST_OBJECT_LOCK (self);
  self->sinkpad = NULL;
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SOURCE);
  GST_OBJECT_UNLOCK (self);
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (element, pad);
}

/* ------------------------------------------------------------------ */
/* state */

static gboolean
load_weights (GstDitGenerate * self)
{
  gchar *model, *vae, *device, *key, *error = NULL;
  gboolean ok, decoded, anchor_tiny;
  gint precision;

  GST_OBJECT_LOCK (self);
  model = g_strdup (self->model);
  vae = g_strdup (self->vae_model);
  device = g_strdup (self->s.device);
  key = g_strdup (self->session_key);
  decoded = self->s.anchor == DIT_ANCHOR_DECODED;
  anchor_tiny = self->anchor_decoder == DIT_ANCHOR_DECODER_TINY;
  precision = gst_dit_dtype_precision (self->s.dtype);
  GST_OBJECT_UNLOCK (self);

  if (!gst_dit_gen_engine_read_mesh_spec (&self->engine, &error)) {
    GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS, ("%s", error),
        ("generator mesh settings"));
    ok = FALSE;
    goto out;
  }
  gst_dit_session_ensure (GST_ELEMENT (self), key, &self->session);
  gst_dit_session_set_anchor_decoder (self->session, anchor_tiny);
  ok = gst_dit_gen_engine_load_dit (&self->engine, model, device, precision,
      &error);
  if (ok && decoded)
    ok = gst_dit_session_load_vae (self->session, GST_ELEMENT (self), vae,
        device, &error);
  if (!ok) {
    if ((model && !g_file_test (model, G_FILE_TEST_EXISTS)
            && strchr (model, G_DIR_SEPARATOR))
        || gst_dit_demo_missing (model, GST_DIT_DEFAULT_MODEL, DIT_DEMO_DIT)
        || (decoded && gst_dit_demo_missing (vae, GST_DIT_DEFAULT_VAE,
                DIT_DEMO_VAE)))
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("%s", error),
          ("model '%s', vae-model '%s'", model ? model : GST_DIT_DEFAULT_MODEL,
              vae ? vae : GST_DIT_DEFAULT_VAE));
    else
      GST_ELEMENT_ERROR (self, LIBRARY, INIT, ("%s", error),
          ("model '%s', vae-model '%s'", model ? model : GST_DIT_DEFAULT_MODEL,
              vae ? vae : GST_DIT_DEFAULT_VAE));
  }
out:
  g_free (error);
  g_free (model);
  g_free (vae);
  g_free (device);
  g_free (key);
  return ok;
}

static GstStateChangeReturn
gst_dit_generate_change_state (GstElement * element, GstStateChange transition)
{
  GstDitGenerate *self = GST_DIT_GENERATE (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!load_weights (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      GST_OBJECT_LOCK (self);
      self->stat_chunks = 0;
      self->stat_fps = 0;
      self->engine.stat_chunk_ms = 0;
      GST_OBJECT_UNLOCK (self);
      self->engine.frames_out = 0;
      self->last_push_us = 0;
      self->latency_ms = 0;
      dit_overlap_reset (&self->overlap);
      if (self->engine.configured)
        gst_dit_gen_engine_reset_stream (&self->engine);
      break;
    default:
      break;
  }
  ret = GST_ELEMENT_CLASS (gst_dit_generate_parent_class)->change_state
      (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      gst_dit_gen_engine_free (&self->engine);
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
gst_dit_generate_set_context (GstElement * element, GstContext * context)
{
  GstDitGenerate *self = GST_DIT_GENERATE (element);

  gst_dit_session_handle_set_context (element, context, &self->session_key,
      &self->session, NULL);
  GST_ELEMENT_CLASS (gst_dit_generate_parent_class)->set_context (element,
      context);
}

/* ------------------------------------------------------------------ */
/* properties: one table (gstditprops.h) gives each its spec, its default
 * and its field; the few that are not plain values are made and read in
 * code */

#define READY GST_DIT_PARAM_READY
#define PLAYING GST_DIT_PARAM_PLAYING
#define RO GST_DIT_PARAM_RO
#define FIELD(f) G_STRUCT_OFFSET (GstDitGenerate, f)
#define STAT(id, name, nick, blurb, t, f) \
    [id] = GST_DIT_PROP_STAT (name, nick, blurb, t, FIELD (f))

static const GstDitPropDef props[N_PROPS] = {
  [PROP_MODEL] = {"model", "Model", "DiT weights: a preset name (tiny, "
        "wan-1.3b, wan-14b: seeded synthetic weights; demo: the trained demo "
        "model once installed, docs/demo-model.md) or a safetensors file, "
        "index JSON or directory (NULL = " GST_DIT_DEFAULT_MODEL ")",
      G_TYPE_STRING, .flags = READY,
      .field = FIELD (model)},
  [PROP_VAE_MODEL] = {"vae-model", "VAE model", "VAE weights for the anchor "
        "path: a preset (tiny, wan; demo once installed) or a safetensors path (NULL = "
        GST_DIT_DEFAULT_VAE ")",
      G_TYPE_STRING, .flags = READY, .field = FIELD (vae_model)},
  [PROP_PROMPT_EMBEDS] = {"prompt-embeds", "Prompt embeddings", "safetensors "
        "file with one text-embedding tensor [rows, text_dim] (NULL = a fixed "
        "seeded prompt); may change while PLAYING", G_TYPE_STRING,
      .flags = PLAYING, .field = FIELD (s.prompt_embeds)},
  [PROP_PROMPT] = {"prompt", "Prompt", "Text prompt, or a weighted list \"a "
        "koi pond:0.7|a red fox:0.3\" (NULL = a fixed seeded prompt).  May "
        "change while PLAYING: it is encoded on a worker thread and takes "
        "effect at the first chunk after it is ready (prompt-embeds wins when "
        "set)", G_TYPE_STRING, .flags = PLAYING, .field = FIELD (s.prompt)},
  [PROP_PROMPT_TRANSITION_CHUNKS] = {"prompt-transition-chunks", "Prompt "
        "transition chunks", "Blend the old prompt embedding into the new one "
        "linearly over this many chunks (0 = switch at once)", G_TYPE_UINT, 0,
      1000, DEFAULT_TRANSITION_CHUNKS, .flags = PLAYING,
      .field = FIELD (s.transition_chunks)},
  [PROP_TEXT_MODEL] = {"text-model", "Text model", "umT5 text encoder: a "
        "preset (tiny, umt5-xxl: seeded synthetic weights; demo once installed) or a safetensors "
        "checkpoint (NULL = " GST_DIT_DEFAULT_TEXT_MODEL ")", G_TYPE_STRING,
      .flags = READY,
      .field = FIELD (s.text_model)},
  [PROP_TOKENIZER] = {"tokenizer", "Tokenizer", "SentencePiece model file "
        "(NULL = the shipped tiny model; use umt5-xxl's spiece.model with the "
        "real encoder)", G_TYPE_STRING, .flags = READY,
      .field = FIELD (s.tokenizer)},
  [PROP_SEED] = {"seed", "Seed", "Base seed of the per-chunk noise; may "
        "change while PLAYING", G_TYPE_UINT64, 0, 0, DEFAULT_SEED,
      .flags = PLAYING, .field = FIELD (s.seed)},
  [PROP_STEPS] = {"steps", "Steps", "Comma-separated denoising timesteps, "
        "e.g. \"1000,750,500,250\"", G_TYPE_STRING, .sdef = DEFAULT_STEPS,
      .flags = READY, .field = FIELD (s.steps)},
  [PROP_SHIFT] = {"shift", "Shift", "Flow-matching timestep shift",
      G_TYPE_DOUBLE, 0.1, 100.0, DEFAULT_SHIFT, .flags = READY,
      .field = FIELD (s.shift)},
  [PROP_STRENGTH] = {"strength", "Strength", "Video-to-video: how far input "
        "latents are noised (1 = ignore the input, lower keeps more of it)",
      G_TYPE_DOUBLE, 0.0, 1.0, DEFAULT_STRENGTH, .flags = PLAYING,
      .field = FIELD (s.strength)},
  [PROP_KV_WINDOW] = {"kv-window", "KV window", "Latent frames in the KV "
        "window (0 = context-frames + frames per chunk)", G_TYPE_INT, 0, 64,
      DEFAULT_KV_WINDOW, .flags = READY, .field = FIELD (s.kv_window)},
  [PROP_CONTEXT_FRAMES] = {"context-frames", "Context frames", "Latent frames "
        "of the per-chunk KV recompute (anchor + previous latents); at most "
        "the frames per chunk", G_TYPE_INT, 1, 16, DEFAULT_CONTEXT_FRAMES,
      .flags = READY, .field = FIELD (s.context_frames)},
  [PROP_KV_BIAS] = {"kv-bias", "KV bias", "Attention weight of the context "
        "frames after the anchor (1 = off)", G_TYPE_DOUBLE, 0.001, 1.0,
      DEFAULT_KV_BIAS, .flags = READY, .field = FIELD (s.kv_bias)},
  [PROP_MAX_INFLIGHT] = {"max-inflight", "Max in-flight", "Input chunks "
        "queued ahead of the generator (upstream blocks beyond this); also "
        "bounds decoded frames held for the display and a generator mesh's "
        "requests in flight", G_TYPE_INT, 1, 16, DEFAULT_MAX_INFLIGHT,
      .flags = READY, .field = FIELD (s.max_inflight)},
  [PROP_DEVICE] = GST_DIT_PROP_DEVICE (FIELD (s.device)),
  [PROP_SESSION] = {"session", "Session", "Key of the shared DitSession "
        "(weights, VAE, anchor path); elements with the same key share one",
      G_TYPE_STRING, .sdef = GST_DIT_SESSION_DEFAULT_KEY, .flags = READY,
      .field = FIELD (session_key)},
  [PROP_NUM_CHUNKS] = {"num-chunks", "Number of chunks", "Text-to-video: "
        "chunks to generate before EOS (0 = unlimited)", G_TYPE_UINT, 0,
      G_MAXUINT, DEFAULT_NUM_CHUNKS, .flags = READY,
      .field = FIELD (num_chunks)},
  [PROP_MESH_DEVICES] = {"mesh-devices", "Mesh devices", "Run the DiT on a "
        "generator mesh: one dit-worker process per listed device (e.g. "
        "\"0,1\"), split as mesh-parallel says (tensor-parallel shards by "
        "default: the count is the TP degree, 1, 2, 4 or 8).  This process then loads no DiT "
        "weights, only the VAE of the anchor path (NULL or empty = the DiT "
        "runs in this process)", G_TYPE_STRING, .flags = READY,
      .field = FIELD (s.mesh_devices)},
  [PROP_MESH_BACKEND] = {"mesh-backend", "Mesh backend", "Backend of the "
        "spawned workers: cpu or cuda (NULL = cuda when device is cuda:N, "
        "else cpu)", G_TYPE_STRING, .flags = READY,
      .field = FIELD (s.mesh_backend)},
  [PROP_MESH_LISTEN] = {"mesh-listen", "Mesh listen address", "HOST:PORT to "
        "wait on for mesh-ranks workers started by another launcher "
        "(dit-worker --connect HOST:PORT --rank R --tp N ...) instead of "
        "spawning them; wins over mesh-devices (NULL = spawn)", G_TYPE_STRING,
      .flags = READY, .field = FIELD (s.mesh_listen)},
  [PROP_MESH_RANKS] = {"mesh-ranks", "Mesh ranks", "Workers to wait for with "
        "mesh-listen (tp: 1, 2, 4 or 8; sp: 1 to 8; hybrid: 4, 6 or 8); "
        "with mesh-devices 0 or the number of devices", G_TYPE_INT, 0,
      DIT_MESH_MAX_RANKS, 0, .flags = READY,
      .field = FIELD (s.mesh_ranks)},
  [PROP_MESH_PARALLEL] = {"mesh-parallel", "Mesh parallel layout", "How "
        "the mesh's ranks split the DiT: tp (tensor parallel: each rank holds "
        "1/N of the heads and FFN, all-reduces per block; N = 1, 2, 4 or 8), "
        "sp (sequence parallel, Ulysses: every rank holds all weights and "
        "1/N of each chunk's tokens, all-to-alls around self-attention; N "
        "must divide the heads and the chunk's tokens, e.g. 2, 4, 5 or 8 for "
        "wan-14b at 2160 tokens) or hybrid (sp across groups of mesh-tp "
        "ranks, tp inside a group).  NULL = tp",
      G_TYPE_STRING, .flags = READY, .field = FIELD (s.mesh_parallel)},
  [PROP_MESH_TP] = {"mesh-tp", "Mesh TP degree", "With mesh-parallel=hybrid: "
        "the tensor-parallel ranks of each group (the groups are mesh ranks / "
        "mesh-tp); 0 = 2", G_TYPE_INT, 0, DIT_MESH_MAX_RANKS, 0,
      .flags = READY, .field = FIELD (s.mesh_tp)},
  [PROP_MESH_COLOCATE] = {"mesh-colocate", "Mesh rank 0 co-location",
        "Where mesh rank 0 runs: off (a dit-worker process like the other "
        "ranks), on (a thread of this process with its own stream on the "
        "same GPU: the chunk data goes to it inside the process and on to "
        "the other ranks over the mesh's own communicator, NCCL on cuda) or "
        "auto (on when mesh rank 0 is on this element's GPU, i.e. the first "
        "of mesh-devices is the device's index with mesh-backend cuda).  "
        "Needs spawned workers (not mesh-listen).  NULL = auto",
      G_TYPE_STRING, .flags = READY, .field = FIELD (s.mesh_colocate)},
  [PROP_WORKER_PATH] = {"worker-path", "Worker path", "dit-worker executable "
        "the mesh spawns (NULL = $GST_DIT_WORKER, then " GST_DIT_BINDIR
        "/dit-worker, then dit-worker on PATH)", G_TYPE_STRING,
      .flags = READY, .field = FIELD (s.worker_path)},
  [PROP_MESH_TIMEOUT_MS] = {"mesh-timeout-ms", "Mesh chunk timeout",
        "Milliseconds every worker has for one chunk (and each collective) "
        "before the element fails with an error naming the rank; set it a "
        "few seconds above the expected chunk time", G_TYPE_INT, 100,
      G_MAXINT, DEFAULT_MESH_TIMEOUT_MS, .flags = READY,
      .field = FIELD (s.mesh_timeout_ms)},
  [PROP_MESH_JOIN_TIMEOUT_MS] = {"mesh-join-timeout-ms", "Mesh join timeout",
        "Milliseconds for all workers to join and load their shards",
      G_TYPE_INT, 100, G_MAXINT, DEFAULT_MESH_JOIN_TIMEOUT_MS,
      .flags = READY, .field = FIELD (s.mesh_join_timeout_ms)},
  STAT (PROP_PROMPT_WEIGHT, "prompt-weight", "Prompt weight", "Weight of the "
      "newest prompt in the last chunk's embedding (below 1 during a "
      "transition)", G_TYPE_DOUBLE, engine.stat_prompt_weight),
  STAT (PROP_FPS, "fps", "FPS", "Output pixel frames per second over the "
      "last chunk", G_TYPE_DOUBLE, stat_fps),
  STAT (PROP_CHUNK_MS, "chunk-ms", "Chunk ms", "Generator time of the last "
      "chunk in milliseconds", G_TYPE_DOUBLE, engine.stat_chunk_ms),
  STAT (PROP_QUEUE_DEPTH, "queue-depth", "Queue depth", "Input chunks "
      "waiting for the generator", G_TYPE_INT, queue.buffers),
  STAT (PROP_CHUNKS, "chunks", "Chunks", "Chunks produced since READY",
      G_TYPE_UINT64, stat_chunks),
  STAT (PROP_CACHE_EPOCH, "cache-epoch", "Cache epoch", "Current cache epoch "
      "(bumped by flushes and resets)", G_TYPE_UINT64, engine.stat_epoch),
  STAT (PROP_STAGE0_MS, "stage0-ms", "Stage 0 ms", "Stage 0 work for the last "
      "chunk in milliseconds: the session's VAE decode of its latents and the "
      "anchor re-encode", G_TYPE_DOUBLE, stat_stage0_ms),
  STAT (PROP_STAGE1_MS, "stage1-ms", "Stage 1 ms", "Generator call for the "
      "last chunk in milliseconds (in-process, or the mesh round trip)",
      G_TYPE_DOUBLE, stat_stage1_ms),
  STAT (PROP_PERIOD_MS, "period-ms", "Period ms", "Time between the last two "
      "chunks leaving the element", G_TYPE_DOUBLE, stat_period_ms),
  STAT (PROP_HIDDEN_MS, "hidden-ms", "Hidden ms", "stage0-ms + stage1-ms - "
      "period-ms of the last chunk (clamped at 0): the time both stages ran "
      "at once", G_TYPE_DOUBLE, stat_hidden_ms),
  STAT (PROP_OVERLAP_SCORE, "overlap-score", "Overlap score", "Median hidden "
      "time / min (median stage 0, median stage 1) over the last 32 chunks: "
      "0 = the stages run one after the other, 1 = the shorter one is "
      "completely hidden", G_TYPE_DOUBLE, stat_overlap),
  STAT (PROP_HOST_COPIES, "host-copies", "Host copies", "Copies of latents "
      "between host and device memory the last chunk made in this element "
      "(context, generator or mesh, anchor path, output): 0 when they stayed "
      "on the device", G_TYPE_UINT, engine.stat_host_copies),
  [PROP_ANCHOR] = {.field = FIELD (s.anchor)},
  [PROP_ANCHOR_DECODER] = {.field = FIELD (anchor_decoder)},
  [PROP_DTYPE] = {.field = FIELD (s.dtype)},
  [PROP_PROMPT_RESETS_CACHE] = {.field = FIELD (s.prompt_reset)},
  [PROP_LORA] = {"lora", "LoRA", "LoRA adapters: PATH[:STRENGTH] items "
        "joined by '|', e.g. \"style.safetensors:0.8|detail.safetensors:0.4\" "
        "(up to 8; strength 1 without ':'; kohya, PEFT or Diffusers layout, "
        "found from the keys; NULL or empty = none).  May change while "
        "PLAYING: it takes effect at the next chunk; a file that cannot be "
        "read or does not fit the model then posts a warning and the "
        "previous list stays (at start it is an error)", G_TYPE_STRING,
      .flags = PLAYING, .field = FIELD (s.lora)},
  [PROP_LORA_MODE] = {.field = FIELD (s.lora_mode)},
};

static void
gst_dit_generate_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDitGenerate *self = GST_DIT_GENERATE (object);

  GST_OBJECT_LOCK (self);
  if (prop_id == PROP_FRAMERATE) {
    self->fps_n = gst_value_get_fraction_numerator (value);
    self->fps_d = gst_value_get_fraction_denominator (value);
  } else {
    gst_dit_prop_set (self, &props[prop_id], value);
  }
  /* what takes effect at the next chunk boundary */
  if (prop_id == PROP_PROMPT_EMBEDS)
    self->s.prompt_dirty = TRUE;
  else if (prop_id == PROP_SEED)
    self->s.seed_dirty = TRUE;
  else if (prop_id == PROP_LORA)
    self->s.lora_dirty = TRUE;
  else if (prop_id == PROP_PROMPT && self->engine.penc && self->s.prompt)
    /* running: queue it for the encoder thread; otherwise it is encoded
     * when the engine is configured */
    self->s.prompt_request = dit_prompt_encoder_submit (self->engine.penc,
        self->s.prompt);
  GST_OBJECT_UNLOCK (self);
  if (prop_id == PROP_MAX_INFLIGHT)     /* wakes a blocked chain */
    gst_dit_chunk_queue_set_limit (&self->queue, g_value_get_int (value));
}

static void
gst_dit_generate_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDitGenerate *self = GST_DIT_GENERATE (object);
  const dit_runner_stats *rs = &self->engine.stat_runner;

  GST_OBJECT_LOCK (self);
  if (prop_id == PROP_FRAMERATE)
    gst_value_set_fraction (value, self->fps_n, self->fps_d);
  else if (prop_id == PROP_QUEUE_DEPTH)
    g_value_set_int (value, gst_dit_chunk_queue_buffers (&self->queue));
  else if (prop_id == PROP_MESH_RANK_MS)
    gst_dit_value_array_append (value, G_TYPE_DOUBLE, rs->rank_ms, rs->ranks);
  else if (prop_id == PROP_MESH_WORKER_PIDS)
    gst_dit_value_array_append (value, G_TYPE_INT, rs->pids, rs->ranks);
  else                          /* mesh-backend too: as set */
    gst_dit_prop_get (self, &props[prop_id], value);
  GST_OBJECT_UNLOCK (self);
}

static void
gst_dit_generate_finalize (GObject * object)
{
  GstDitGenerate *self = GST_DIT_GENERATE (object);

  gst_dit_gen_engine_clear (&self->engine);
  gst_clear_object (&self->session);
  gst_dit_props_clear (self, props, N_PROPS);
  gst_dit_chunk_queue_clear (&self->queue);
  G_OBJECT_CLASS (gst_dit_generate_parent_class)->finalize (object);
}

static void
gst_dit_generate_class_init (GstDitGenerateClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_dit_generate_set_property;
  gobject_class->get_property = gst_dit_generate_get_property;
  gobject_class->finalize = gst_dit_generate_finalize;

  gst_dit_props_install (gobject_class, props, N_PROPS);
  g_object_class_install_property (gobject_class, PROP_PROMPT_RESETS_CACHE,
      g_param_spec_enum ("prompt-resets-cache", "Prompt resets cache",
          "Whether a prompt change restarts the KV cache: auto (scope: with "
          "video input when switching without a transition), always, never",
          GST_TYPE_DIT_PROMPT_RESET, DEFAULT_PROMPT_RESET, PLAYING));
  g_object_class_install_property (gobject_class, PROP_ANCHOR,
      g_param_spec_enum ("anchor", "Anchor",
          "First KV-recompute context frame: the re-encoded decoded frame "
          "(decoded) or the previous chunk's first latent (latent)",
          GST_TYPE_DIT_ANCHOR_MODE, DEFAULT_ANCHOR, READY));
  g_object_class_install_property (gobject_class, PROP_ANCHOR_DECODER,
      g_param_spec_enum ("anchor-decoder", "Anchor decoder",
          "With anchor=decoded: the decoder of the re-encoded frame, the "
          "full VAE (full) or the session's display decoder (tiny; the same "
          "as full unless ditdecode has a decoder-model)",
          GST_TYPE_DIT_ANCHOR_DECODER, DEFAULT_ANCHOR_DECODER, READY));
  g_object_class_install_property (gobject_class, PROP_DTYPE,
      g_param_spec_enum ("dtype", "Dtype",
          "Precision of the DiT: auto (bf16 on CUDA, f32 on the CPU), bf16, "
          "fp8 (bf16 with FP8 linear layers; refused on a GPU without FP8 "
          "tensor cores) or f32.  Mesh workers run the same; elements "
          "sharing a session must agree", GST_TYPE_DIT_DTYPE, DEFAULT_DTYPE,
          READY));
  g_object_class_install_property (gobject_class, PROP_LORA_MODE,
      g_param_spec_enum ("lora-mode", "LoRA mode",
          "How the lora list is applied: merge (into the weights: full speed; "
          "strength changes re-merge, and the weights as loaded are kept "
          "beside them, a copy of every touched tensor) or live (the low-rank "
          "term folded into each touched layer's GEMM: a few percent per "
          "forward, strength changes are a rescale; not with dtype=fp8).  "
          "Elements "
          "sharing a session share its merged weights", GST_TYPE_DIT_LORA_MODE,
          DEFAULT_LORA_MODE, READY));
  g_object_class_install_property (gobject_class, PROP_FRAMERATE,
      gst_param_spec_fraction ("framerate", "Frame rate",
          "Text-to-video: preferred output frame rate when downstream allows "
          "any (Wan's native rate is 16 fps)", 1, 1, GST_DIT_MAX_FPS, 1,
          DEFAULT_FPS_N, DEFAULT_FPS_D, READY));
  g_object_class_install_property (gobject_class, PROP_MESH_RANK_MS,
      gst_param_spec_array ("mesh-rank-ms", "Mesh rank ms",
          "Each mesh rank's time for the last chunk in milliseconds, from "
          "receiving the request to sending the result (empty without a "
          "mesh)", g_param_spec_double ("rank-ms", "Rank ms",
              "One rank's time for the last chunk", 0, G_MAXDOUBLE, 0, RO),
          RO));
  g_object_class_install_property (gobject_class, PROP_MESH_WORKER_PIDS,
      gst_param_spec_array ("mesh-worker-pids", "Mesh worker pids",
          "Process id of each spawned mesh rank (0 for workers started "
          "elsewhere and for a rank 0 co-located by mesh-colocate; empty "
          "while no mesh runs)",
          g_param_spec_int ("pid", "Pid", "A worker's process id", 0,
              G_MAXINT, 0, RO), RO));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "DiT video generator", "Generator/Filter/Video",
      "Causal Wan2.1 video diffusion, chunk by chunk with a rolling KV cache "
      "(text-to-video when the sink pad is unlinked)", "gst-dit");
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_dit_generate_change_state);
  element_class->set_context = GST_DEBUG_FUNCPTR (gst_dit_generate_set_context);
  element_class->request_new_pad =
      GST_DEBUG_FUNCPTR (gst_dit_generate_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR (gst_dit_generate_release_pad);
  element_class->send_event = GST_DEBUG_FUNCPTR (gst_dit_generate_send_event);

  gst_type_mark_as_plugin_api (GST_TYPE_DIT_ANCHOR_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DIT_ANCHOR_DECODER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DIT_PROMPT_RESET, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DIT_DTYPE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_DIT_LORA_MODE, 0);
  GST_DEBUG_CATEGORY_INIT (gst_dit_generate_debug, "ditgenerate", 0,
      "dit generator element");
}

static void
gst_dit_generate_init (GstDitGenerate * self)
{
  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_activatemode_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dit_generate_src_activate_mode));
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dit_generate_src_query));
  gst_pad_set_event_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_dit_generate_src_event));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);
  /* Text-to-video until a sink pad is requested. */
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SOURCE);

  gst_dit_props_init (self, props, N_PROPS);
  gst_dit_chunk_queue_init (&self->queue, self->s.max_inflight);
  self->s.anchor = DEFAULT_ANCHOR;
  self->anchor_decoder = DEFAULT_ANCHOR_DECODER;
  self->s.dtype = DEFAULT_DTYPE;
  self->s.prompt_reset = DEFAULT_PROMPT_RESET;
  self->s.lora_mode = DEFAULT_LORA_MODE;
  self->fps_n = DEFAULT_FPS_N;
  self->fps_d = DEFAULT_FPS_D;
  gst_dit_gen_engine_init (&self->engine, GST_ELEMENT (self), &self->s,
      &self->session);
}
