/* pipeline — dit-serve's GStreamer graph and its WebRTC viewers.
 *
 * Pacing.  ditgenerate makes a chunk (9 or 12 frames) at a time, faster or
 * slower than real time, and its timestamps start at 0 whenever the first
 * chunk is ready.  A probe in front of clocksync shifts timestamps forward
 * whenever a frame would already be late, then clocksync releases frames at
 * their (shifted) running time plus the upstream latency.  A fast generator
 * is therefore held to the frame rate by back-pressure, and a slow one shows
 * each chunk at the frame rate from its arrival; either way the RTP
 * timestamps the browser sees match the wall clock.
 *
 * With a live source the frames carry capture times and the elements report
 * a latency (ditencode waits for a chunk's frames, ditgenerate and ditdecode
 * add their processing time), which clocksync adds to every frame's running
 * time.  The probe judges lateness against that same deadline; judged
 * against the bare running time, every frame of a live stream looks late,
 * is moved to "now", and is then held a whole latency more by clocksync:
 * one frame per latency, about 1 fps.  The reported latency follows the
 * last chunk's processing time, which on a busy machine moves with every
 * chunk; a delay that followed it would freeze the picture when it grows
 * and burst when it shrinks.  clocksync is therefore given the largest
 * latency reported so far, so the delay, like the offset, only grows.
 *
 * Viewers.  A viewer is a GstBin `queue ! rtph264pay ! capssetter !
 * webrtcbin` hung off the tee.  The queue is leaky (drops its oldest
 * packets) and small, so a viewer that stops draining loses its own
 * packets while the encoder and the other viewers go on; the browser asks
 * for a key frame (PLI) when it sees the gap, and rtpbin turns that into a
 * force-key-unit event that travels up through the tee to the encoder.
 * The payload type is the one the browser offered for H.264 with
 * packetization-mode=1, so the answer needs no remapping.
 *
 * Liveness.  A browser that goes away without its DELETE (closed, crashed,
 * network gone) must not keep its branch: ICE on its own never notices a
 * peer that simply stops answering.  A connected viewer sends RTCP receiver
 * reports about once a second; webrtcbin's rtpbin reports each one
 * ("on-ssrc-active"), and a viewer silent for --rtcp-timeout seconds, one
 * that sent an RTCP BYE, one whose connection failed or closed, or one
 * disconnected for DISCONNECT_GRACE_S is dropped by a once-a-second reaper
 * on the main context.
 *
 * Threads.  webrtcbin answers promises and notifies on its own threads;
 * everything that touches the viewer table or replies to HTTP is moved to
 * the main context with g_main_context_invoke_full.
 */
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/video/video.h>
#define GST_USE_UNSTABLE_API
#include <gst/webrtc/webrtc.h>
#include <glib/gstdio.h>

#include "gstditlatent.h"
#include "prompt.h"
#include "stats.h"

G_DEFINE_QUARK (dit-serve-error-quark, dit_serve_error)

#define VIEWER_QUEUE_PACKETS 64
#define FRAMES_PER_CHUNK_MAX 12
/* Most video the display queue holds for a live source. */
#define LIVE_DISPLAY_S 3
/* A WHEP POST fails when webrtcbin has no answer after this long. */
#define ANSWER_DEADLINE_S 15
/* ICE may recover from "disconnected" (a network blip); after this long it
 * is taken as gone. */
#define DISCONNECT_GRACE_S 5

typedef struct _Viewer Viewer;

struct _DitServePipeline
{
  DitServeConfig cfg;
  GMainLoop *loop;
  GstElement *pipeline, *generate, *display_queue, *tee;
  GstElement *source_queue;     /* video-to-video input, or NULL */
  gboolean live_source;         /* known live when built */
  const gchar *encoder_name;
  gint text_dim, text_len;
  gchar *lora;                  /* the list last set on ditgenerate */
  guint bus_watch, reaper_id;
  gint exit_status;
  gint64 start_us;

  /* Pacing state: the offset added to timestamps (clocksync's thread) and
   * the upstream latency clocksync waits for on top of the running time
   * (written by latency queries on any thread, under pace_lock). */
  GstClockTimeDiff pace_offset;
  GMutex pace_lock;
  GstClockTime pace_latency;

  /* Meta of the last chunk (streaming thread writes, stats read). */
  GMutex meta_lock;
  GType meta_api;
  guint64 prompt_epoch, cache_epoch, seed;
  DitServeRate out_rate;
  gsize frames_out;             /* encoded frames, atomic */

  GHashTable *viewers;          /* id -> Viewer*, main context only */
  guint viewer_serial;
  /* Fault injection for tests: viewer number N (1-based) never drains its
   * queue, as if its peer stopped reading (DIT_SERVE_STALL_VIEWER=N). */
  guint stall_serial;
};

struct _Viewer
{
  gint ref;
  DitServePipeline *p;          /* outlives every viewer */
  gchar *id;
  GstElement *bin, *queue, *webrtc;
  GstPad *tee_pad;
  GstPad *queue_sink;           /* for key-frame requests from any thread */
  gint64 created_us;
  gboolean removed;

  gint conn_state;              /* GstWebRTCPeerConnectionState, atomic */
  gsize sent, dropped;          /* packets, atomic */

  /* Liveness (webrtcbin's threads write, the reaper reads; live_lock). */
  GMutex live_lock;
  gint64 connected_us;          /* last change to connected, 0: never */
  gint64 disconnected_us;       /* since when disconnected, 0: not */
  gint64 last_rtcp_us;          /* last RTCP packet from the peer, 0: none */
  gboolean bye;                 /* the peer sent an RTCP BYE */

  /* Negotiation: answered once, on the main context. */
  DitServeAnswerFunc answer_func;
  gpointer answer_data;
  gboolean answered;
  guint gather_timeout_id;
};

static Viewer *
viewer_ref (Viewer * v)
{
  g_atomic_int_inc (&v->ref);
  return v;
}

static void
viewer_unref (gpointer data)
{
  Viewer *v = data;

  if (!g_atomic_int_dec_and_test (&v->ref))
    return;
  g_mutex_clear (&v->live_lock);
  g_clear_object (&v->queue_sink);
  g_free (v->id);
  g_free (v);
}

/* ------------------------------------------------------------------ */
/* Building the graph */

static GstElement *
make (const gchar * factory, const gchar * name, GError ** error)
{
  GstElement *e = gst_element_factory_make (factory, name);

  if (e == NULL)
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
        "GStreamer element '%s' is missing (install the plugin that has it; "
        "for ditgenerate/ditencode/ditdecode set GST_PLUGIN_PATH to the "
        "build's gst/ directory)", factory);
  return e;
}

static void
on_overrun (GstElement * queue, gpointer data)
{
  Viewer *v = data;

  g_atomic_pointer_add (&v->dropped, 1);
}

/* The tee forwards ALLOCATION queries to every branch and waits for each
 * answer; a serialized query waits in a queue until the queue drains, so
 * one stalled consumer would hold the whole pipeline as soon as anything
 * renegotiates (e.g. a viewer joining).  Branches behind a tee answer it
 * at their queue's input instead: encoded video needs no buffer pool. */
static GstPadProbeReturn
answer_allocation (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  if (GST_QUERY_TYPE (GST_PAD_PROBE_INFO_QUERY (info)) == GST_QUERY_ALLOCATION)
    return GST_PAD_PROBE_HANDLED;
  return GST_PAD_PROBE_OK;
}

static void
isolate_branch (GstElement * queue)
{
  GstPad *pad = gst_element_get_static_pad (queue, "sink");

  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM,
      answer_allocation, NULL, NULL);
  gst_object_unref (pad);
}

static GstPadProbeReturn
stall_forever (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
count_sent (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Viewer *v = data;

  g_atomic_pointer_add (&v->sent, 1);
  return GST_PAD_PROBE_OK;
}

/* Chunk meta -> prompt/cache epochs.  The meta API type is registered by
 * the plugin; it is looked up by name so that dit-serve depends on the
 * plugin's header only, not on a second copy of its code. */
static GstPadProbeReturn
read_chunk_meta (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  DitServePipeline *p = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstDitLatentMeta *meta;

  if (p->meta_api == 0)
    p->meta_api = g_type_from_name ("GstDitLatentMetaAPI");
  if (p->meta_api == 0)
    return GST_PAD_PROBE_OK;
  meta = (GstDitLatentMeta *) gst_buffer_get_meta (buf, p->meta_api);
  if (meta) {
    g_mutex_lock (&p->meta_lock);
    p->prompt_epoch = meta->prompt_epoch;
    p->cache_epoch = meta->cache_epoch;
    p->seed = meta->seed;
    g_mutex_unlock (&p->meta_lock);
  }
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
count_encoded (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  DitServePipeline *p = data;

  dit_serve_rate_tick (&p->out_rate, g_get_monotonic_time ());
  g_atomic_pointer_add (&p->frames_out, 1);
  return GST_PAD_PROBE_OK;
}

/* See the file comment: keep every frame's running time at or after now. */
static GstPadProbeReturn
pace_frames (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  /* Frames are scheduled this far ahead of now when the stream is late, so
   * that the frames of one chunk go out evenly spaced. */
  const GstClockTime lead = 40 * GST_MSECOND;
  DitServePipeline *p = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstClock *clock;
  GstEvent *seg_event;
  const GstSegment *seg;
  GstClockTime now, rt;

  if (!GST_BUFFER_PTS_IS_VALID (buf))
    return GST_PAD_PROBE_OK;
  clock = gst_element_get_clock (p->pipeline);
  if (clock == NULL)
    return GST_PAD_PROBE_OK;
  now = gst_clock_get_time (clock) - gst_element_get_base_time (p->pipeline);
  gst_object_unref (clock);
  seg_event = gst_pad_get_sticky_event (pad, GST_EVENT_SEGMENT, 0);
  if (seg_event == NULL)
    return GST_PAD_PROBE_OK;
  gst_event_parse_segment (seg_event, &seg);
  rt = gst_segment_to_running_time (seg, GST_FORMAT_TIME, GST_BUFFER_PTS (buf));
  gst_event_unref (seg_event);
  if (!GST_CLOCK_TIME_IS_VALID (rt))
    return GST_PAD_PROBE_OK;

  /* clocksync releases the frame at rt + offset + latency. */
  g_mutex_lock (&p->pace_lock);
  rt += p->pace_latency;
  g_mutex_unlock (&p->pace_lock);
  if ((GstClockTimeDiff) rt + p->pace_offset < (GstClockTimeDiff) now)
    p->pace_offset = (GstClockTimeDiff) (now + lead) - (GstClockTimeDiff) rt;
  if (p->pace_offset != 0) {
    buf = gst_buffer_make_writable (buf);
    GST_BUFFER_PTS (buf) += p->pace_offset;
    GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
    GST_PAD_PROBE_INFO_DATA (info) = buf;
  }
  return GST_PAD_PROBE_OK;
}

/* Upstream's answer to clocksync's LATENCY query, on its way back to
 * clocksync: a live upstream's minimum latency becomes the largest seen so
 * far (see the file comment), and the probe remembers what clocksync will
 * use (a non-live upstream: 0). */
static GstPadProbeReturn
steady_pace_latency (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  DitServePipeline *p = data;
  GstQuery *query = GST_PAD_PROBE_INFO_QUERY (info);
  gboolean live;
  GstClockTime min, max;

  if (!(info->type & GST_PAD_PROBE_TYPE_PULL)
      || GST_QUERY_TYPE (query) != GST_QUERY_LATENCY)
    return GST_PAD_PROBE_OK;
  gst_query_parse_latency (query, &live, &min, &max);
  g_mutex_lock (&p->pace_lock);
  if (live && GST_CLOCK_TIME_IS_VALID (min)) {
    p->pace_latency = MAX (p->pace_latency, min);
    if (GST_CLOCK_TIME_IS_VALID (max))
      max = MAX (max, p->pace_latency);
    gst_query_set_latency (query, live, p->pace_latency, max);
  } else {
    p->pace_latency = 0;
  }
  g_mutex_unlock (&p->pace_lock);
  return GST_PAD_PROBE_OK;
}

static void
on_uridecodebin_pad (GstElement * dec, GstPad * pad, gpointer data)
{
  GstElement *convert = data;
  GstPad *sink = gst_element_get_static_pad (convert, "sink");
  GstCaps *caps = gst_pad_get_current_caps (pad);
  const gchar *name = NULL;

  if (caps == NULL)
    caps = gst_pad_query_caps (pad, NULL);
  if (caps && gst_caps_get_size (caps) > 0)
    name = gst_structure_get_name (gst_caps_get_structure (caps, 0));
  if (name && g_str_has_prefix (name, "video/") && !gst_pad_is_linked (sink))
    gst_pad_link (pad, sink);
  if (caps)
    gst_caps_unref (caps);
  gst_object_unref (sink);
}

/* A live source cannot be slowed down, so nothing may push back on it:
 * its queue drops what the encoder cannot take, and the display queue holds
 * every frame that waits for its release time (a chunk, plus however much
 * the delay has grown; see the file comment) instead of holding up the
 * generator.  LIVE_DISPLAY_S bounds it. */
static void
use_live_buffering (DitServePipeline * p)
{
  g_print ("dit-serve: the source is live: frames the generator cannot take "
      "in time are dropped\n");
  gst_util_set_object_arg (G_OBJECT (p->source_queue), "leaky", "downstream");
  g_object_set (p->display_queue, "max-size-buffers", 0, "max-size-time",
      (guint64) LIVE_DISPLAY_S * GST_SECOND, NULL);
}

/* First frame into the source queue of a source not known to be live (a
 * file, a pipeline fragment): upstream's latency says whether it is. */
static GstPadProbeReturn
buffer_if_live (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  DitServePipeline *p = data;
  GstQuery *query = gst_query_new_latency ();
  gboolean live = FALSE;

  if (gst_pad_peer_query (pad, query))
    gst_query_parse_latency (query, &live, NULL, NULL);
  gst_query_unref (query);
  if (live)
    use_live_buffering (p);
  return GST_PAD_PROBE_REMOVE;
}

/* SRC ! videoconvert ! videoscale ! videorate ! caps ! queue, returning
 * the queue (whose src pad feeds ditencode). */
static GstElement *
build_source (DitServePipeline * p, GError ** error)
{
  const gchar *src = p->cfg.source;
  GstElement *source, *convert, *scale, *rate, *caps, *queue;
  gboolean live = TRUE, dynamic = FALSE;
  GstCaps *raw;

  if (g_str_has_prefix (src, "pipeline:")) {
    GError *err = NULL;
    /* A gst-launch fragment whose one unlinked src pad gives raw video,
     * e.g. a camera with its own caps.  Whether it is live is asked at
     * its first frame. */
    source = gst_parse_bin_from_description (src + strlen ("pipeline:"),
        TRUE, &err);
    if (source == NULL) {
      g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_BAD_REQUEST,
          "--source '%s': %s", src, err->message);
      g_error_free (err);
      return NULL;
    }
    live = FALSE;
  } else if (g_str_has_prefix (src, "videotestsrc")) {
    if (!(source = make ("videotestsrc", "source", error)))
      return NULL;
    g_object_set (source, "is-live", TRUE, NULL);
    if (src[strlen ("videotestsrc")] == ':')
      gst_util_set_object_arg (G_OBJECT (source), "pattern",
          src + strlen ("videotestsrc:"));
    else
      gst_util_set_object_arg (G_OBJECT (source), "pattern", "ball");
  } else if (g_str_has_prefix (src, "camera")) {
    if (!(source = make ("v4l2src", "source", error)))
      return NULL;
    if (src[strlen ("camera")] == ':')
      g_object_set (source, "device", src + strlen ("camera:"), NULL);
  } else {
    gchar *uri;
    if (gst_uri_is_valid (src)) {
      uri = g_strdup (src);
    } else {
      GError *err = NULL;
      if (!g_file_test (src, G_FILE_TEST_EXISTS)) {
        g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_BAD_REQUEST,
            "--source '%s': no such file, and not videotestsrc, camera, "
            "pipeline:DESCRIPTION or a URI", src);
        return NULL;
      }
      uri = gst_filename_to_uri (src, &err);
      if (uri == NULL) {
        g_propagate_error (error, err);
        return NULL;
      }
    }
    if (!(source = make ("uridecodebin", "source", error))) {
      g_free (uri);
      return NULL;
    }
    /* A file is read at the generator's pace (back-pressure); anything
     * else arrives in real time and must not queue up behind it. */
    live = !g_str_has_prefix (uri, "file:");
    g_object_set (source, "uri", uri, NULL);
    g_free (uri);
    dynamic = TRUE;
  }

  convert = make ("videoconvert", NULL, NULL);
  scale = make ("videoscale", NULL, NULL);
  rate = make ("videorate", NULL, NULL);
  caps = make ("capsfilter", NULL, NULL);
  queue = make ("queue", "source-queue", NULL);
  if (!convert || !scale || !rate || !caps || !queue) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
        "videoconvert, videoscale, videorate, capsfilter or queue is missing "
        "(gstreamer1.0-plugins-base)");
    return NULL;
  }
  raw = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "RGBx",
      "width", G_TYPE_INT, p->cfg.width, "height", G_TYPE_INT, p->cfg.height,
      "framerate", GST_TYPE_FRACTION, p->cfg.fps, 1, NULL);
  g_object_set (caps, "caps", raw, NULL);
  gst_caps_unref (raw);
  /* A chunk's worth of frames; live input beyond that is stale. */
  g_object_set (queue, "max-size-buffers", FRAMES_PER_CHUNK_MAX + 4,
      "max-size-bytes", 0, "max-size-time", (guint64) 0, NULL);
  p->source_queue = queue;
  p->live_source = live;
  if (!live) {
    GstPad *pad = gst_element_get_static_pad (queue, "sink");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, buffer_if_live, p,
        NULL);
    gst_object_unref (pad);
  }
  gst_bin_add_many (GST_BIN (p->pipeline), source, convert, scale, rate, caps,
      queue, NULL);
  if (dynamic)
    g_signal_connect (source, "pad-added", G_CALLBACK (on_uridecodebin_pad),
        convert);
  else if (!gst_element_link (source, convert))
    goto link_failed;
  if (!gst_element_link_many (convert, scale, rate, caps, queue, NULL))
    goto link_failed;
  return queue;

link_failed:
  g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
      "cannot link the source chain for '%s'", src);
  return NULL;
}

static GstElement *
build_encoder (DitServePipeline * p, GstCaps ** raw_caps, GError ** error)
{
  const gchar *want = p->cfg.encoder ? p->cfg.encoder : "auto";
  gboolean nv;
  GstElement *enc;
  GstElementFactory *f;

  if (g_str_equal (want, "auto")) {
    f = gst_element_factory_find ("nvh264enc");
    nv = f != NULL;
    if (f)
      gst_object_unref (f);
  } else if (g_str_equal (want, "nvh264")) {
    nv = TRUE;
  } else if (g_str_equal (want, "x264")) {
    nv = FALSE;
  } else {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_BAD_REQUEST,
        "--encoder '%s': use auto, x264 or nvh264", want);
    return NULL;
  }
  if (nv) {
    if (!(enc = make ("nvh264enc", "encoder", error)))
      return NULL;
    gst_util_set_object_arg (G_OBJECT (enc), "preset", "low-latency-hq");
    gst_util_set_object_arg (G_OBJECT (enc), "rc-mode", "cbr");
    g_object_set (enc, "bitrate", (guint) p->cfg.bitrate_kbps,
        "gop-size", p->cfg.key_int, "zerolatency", TRUE, "bframes", 0, NULL);
    *raw_caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING,
        "NV12", NULL);
    p->encoder_name = "nvh264enc";
  } else {
    if (!(enc = make ("x264enc", "encoder", error)))
      return NULL;
    gst_util_set_object_arg (G_OBJECT (enc), "tune", "zerolatency");
    gst_util_set_object_arg (G_OBJECT (enc), "speed-preset", "ultrafast");
    g_object_set (enc, "bitrate", (guint) p->cfg.bitrate_kbps,
        "key-int-max", (guint) p->cfg.key_int, "threads", 1, NULL);
    *raw_caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING,
        "I420", NULL);
    p->encoder_name = "x264enc";
  }
  return enc;
}

static gboolean
build (DitServePipeline * p, GError ** error)
{
  GstElement *decode, *size_caps, *pace, *convert, *raw_filter, *enc,
      *h264_filter, *parse, *mon_queue, *mon_sink, *upstream = NULL;
  GstCaps *caps, *raw_caps = NULL;
  GstPad *pad;

  p->pipeline = gst_pipeline_new ("dit-serve");
  if (p->cfg.source && !(upstream = build_source (p, error)))
    return FALSE;
  if (upstream) {
    GstElement *encode = make ("ditencode", "encode", error);
    if (!encode)
      return FALSE;
    g_object_set (encode, "device", p->cfg.device, NULL);
    if (p->cfg.vae_model)
      g_object_set (encode, "vae-model", p->cfg.vae_model, NULL);
    gst_bin_add (GST_BIN (p->pipeline), encode);
    if (!gst_element_link (upstream, encode)) {
      g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
          "cannot link the source to ditencode");
      return FALSE;
    }
    upstream = encode;
  }

  if (!(p->generate = make ("ditgenerate", "generate", error))
      || !(decode = make ("ditdecode", "decode", error)))
    return FALSE;
  g_object_set (p->generate, "num-chunks", 0, "seed", p->cfg.seed,
      "device", p->cfg.device, "lora", p->lora, NULL);
  if (p->cfg.lora_mode)
    gst_util_set_object_arg (G_OBJECT (p->generate), "lora-mode",
        p->cfg.lora_mode);
  if (p->cfg.model)
    g_object_set (p->generate, "model", p->cfg.model, NULL);
  if (p->cfg.vae_model) {
    g_object_set (p->generate, "vae-model", p->cfg.vae_model, NULL);
    g_object_set (decode, "vae-model", p->cfg.vae_model, NULL);
  }
  if (p->cfg.text_model)
    g_object_set (p->generate, "text-model", p->cfg.text_model, NULL);
  if (p->cfg.decoder_model)
    g_object_set (decode, "decoder-model", p->cfg.decoder_model, NULL);
  if (p->cfg.steps)
    g_object_set (p->generate, "steps", p->cfg.steps, NULL);
  {
    gchar *rate = g_strdup_printf ("%d/1", p->cfg.fps);
    gst_util_set_object_arg (G_OBJECT (p->generate), "framerate", rate);
    g_free (rate);
  }
  g_object_set (decode, "device", p->cfg.device, NULL);

  size_caps = make ("capsfilter", "size", error);
  p->display_queue = make ("queue", "display-queue", error);
  pace = make ("clocksync", "pace", error);
  convert = make ("videoconvert", "convert", error);
  raw_filter = make ("capsfilter", "encoder-input", error);
  if (!size_caps || !p->display_queue || !pace || !convert || !raw_filter)
    return FALSE;
  if (!(enc = build_encoder (p, &raw_caps, error)))
    return FALSE;
  h264_filter = make ("capsfilter", "h264-caps", error);
  parse = make ("h264parse", "parse", error);
  p->tee = make ("tee", "fanout", error);
  mon_queue = make ("queue", "monitor-queue", error);
  mon_sink = make ("fakesink", "monitor", error);
  if (!h264_filter || !parse || !p->tee || !mon_queue || !mon_sink) {
    gst_caps_unref (raw_caps);
    return FALSE;
  }

  caps = gst_caps_new_simple ("video/x-raw", "width", G_TYPE_INT,
      p->cfg.width, "height", G_TYPE_INT, p->cfg.height, NULL);
  g_object_set (size_caps, "caps", caps, NULL);
  gst_caps_unref (caps);
  /* Two chunks of decoded frames: the generator works on the next chunk
   * while the current one is shown, and runs no further ahead, so that a
   * new prompt shows soon.  A live source buffers by time instead. */
  g_object_set (p->display_queue, "max-size-buffers", 2 * FRAMES_PER_CHUNK_MAX,
      "max-size-bytes", 0, "max-size-time", (guint64) 0, NULL);
  if (p->live_source)
    use_live_buffering (p);
  g_object_set (raw_filter, "caps", raw_caps, NULL);
  gst_caps_unref (raw_caps);
  /* Constrained baseline, byte-stream: what every browser decodes. */
  caps = gst_caps_new_simple ("video/x-h264", "stream-format", G_TYPE_STRING,
      "byte-stream", "profile", G_TYPE_STRING, "constrained-baseline", NULL);
  g_object_set (h264_filter, "caps", caps, NULL);
  gst_caps_unref (caps);
  g_object_set (parse, "config-interval", -1, NULL);
  g_object_set (p->tee, "allow-not-linked", TRUE, NULL);
  g_object_set (mon_queue, "max-size-buffers", 4, "max-size-bytes", 0,
      "max-size-time", (guint64) 0, NULL);
  gst_util_set_object_arg (G_OBJECT (mon_queue), "leaky", "downstream");
  isolate_branch (mon_queue);
  g_object_set (mon_sink, "sync", FALSE, "async", FALSE, NULL);

  gst_bin_add_many (GST_BIN (p->pipeline), p->generate, decode, size_caps,
      p->display_queue, pace, convert, raw_filter, enc, h264_filter, parse,
      p->tee, mon_queue, mon_sink, NULL);
  if ((upstream && !gst_element_link (upstream, p->generate))
      || !gst_element_link_many (p->generate, decode, size_caps,
          p->display_queue, pace, convert, raw_filter, enc, h264_filter,
          parse, p->tee, NULL)
      || !gst_element_link_many (p->tee, mon_queue, mon_sink, NULL)) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
        "cannot link the generation pipeline (size %dx%d must be multiples "
        "of 16; encoder %s)", p->cfg.width, p->cfg.height, p->encoder_name);
    return FALSE;
  }

  if (p->cfg.rtmp_url) {
    GstElement *q = make ("queue", "rtmp-queue", error),
        *rparse = make ("h264parse", "rtmp-parse", error),
        *mux = make ("flvmux", "rtmp-mux", error),
        *sink = make ("rtmp2sink", "rtmp-sink", error);
    if (!q || !rparse || !mux || !sink)
      return FALSE;
    /* Two seconds of slack for the ingest; beyond that the RTMP leg loses
     * packets rather than holding up the viewers. */
    g_object_set (q, "max-size-buffers", 0, "max-size-bytes", 0,
        "max-size-time", (guint64) 2 * GST_SECOND, NULL);
    gst_util_set_object_arg (G_OBJECT (q), "leaky", "downstream");
    isolate_branch (q);
    g_object_set (mux, "streamable", TRUE, NULL);
    g_object_set (sink, "location", p->cfg.rtmp_url, "async", FALSE, NULL);
    gst_bin_add_many (GST_BIN (p->pipeline), q, rparse, mux, sink, NULL);
    if (!gst_element_link_many (p->tee, q, rparse, mux, sink, NULL)) {
      g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
          "cannot link the RTMP output");
      return FALSE;
    }
  }

  pad = gst_element_get_static_pad (p->generate, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, read_chunk_meta, p, NULL);
  gst_object_unref (pad);
  pad = gst_element_get_static_pad (pace, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, pace_frames, p, NULL);
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_QUERY_UPSTREAM
      | GST_PAD_PROBE_TYPE_PULL, steady_pace_latency, p, NULL);
  gst_object_unref (pad);
  pad = gst_element_get_static_pad (p->tee, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_encoded, p, NULL);
  gst_object_unref (pad);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Viewers */

static const gchar *
conn_state_name (gint state)
{
  switch (state) {
    case GST_WEBRTC_PEER_CONNECTION_STATE_NEW:
      return "new";
    case GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTING:
      return "connecting";
    case GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED:
      return "connected";
    case GST_WEBRTC_PEER_CONNECTION_STATE_DISCONNECTED:
      return "disconnected";
    case GST_WEBRTC_PEER_CONNECTION_STATE_FAILED:
      return "failed";
    case GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED:
      return "closed";
    default:
      return "unknown";
  }
}

/* Unlink from the tee and shut the branch down (main context). */
static void
viewer_teardown (Viewer * v)
{
  DitServePipeline *p = v->p;

  if (v->removed)
    return;
  v->removed = TRUE;
  if (v->gather_timeout_id) {
    g_source_remove (v->gather_timeout_id);
    v->gather_timeout_id = 0;
  }
  if (v->tee_pad) {
    GstPad *sink = gst_element_get_static_pad (v->bin, "sink");
    gst_pad_unlink (v->tee_pad, sink);
    gst_object_unref (sink);
    gst_element_release_request_pad (p->tee, v->tee_pad);
    gst_object_unref (v->tee_pad);
    v->tee_pad = NULL;
  }
  /* The bin stops webrtcbin (its sink) before the queue, which releases a
   * queue thread blocked on a stalled peer. */
  gst_element_set_state (v->bin, GST_STATE_NULL);
  gst_bin_remove (GST_BIN (p->pipeline), v->bin);
  v->bin = v->queue = v->webrtc = NULL;
}

static void
viewer_answer (Viewer * v, const gchar * sdp, const GError * error)
{
  if (v->answered)
    return;
  v->answered = TRUE;
  if (v->gather_timeout_id) {
    g_source_remove (v->gather_timeout_id);
    v->gather_timeout_id = 0;
  }
  v->answer_func (error ? NULL : v->id, sdp, error, v->answer_data);
}

static void
viewer_fail (Viewer * v, const GError * error)
{
  DitServePipeline *p = v->p;

  viewer_ref (v);
  viewer_answer (v, NULL, error);
  g_hash_table_remove (p->viewers, v->id);
  viewer_teardown (v);
  viewer_unref (v);
}

static gboolean gather_timeout (gpointer data);

/* Candidate lines in an SDP text: a viewer answered with none can only
 * connect through candidates it learns from the browser's checks. */
static guint
count_candidates (const gchar * sdp)
{
  guint n = 0;

  for (const gchar * c = sdp; (c = strstr (c, "a=candidate:")) != NULL; c++)
    n++;
  return n;
}

/* Reply with the local description, candidates included (main context). */
static void
viewer_send_answer (Viewer * v)
{
  GstWebRTCSessionDescription *local = NULL;
  gchar *text;

  if (v->answered || v->removed)
    return;
  g_object_get (v->webrtc, "local-description", &local, NULL);
  if (local == NULL && g_get_monotonic_time () - v->created_us <
      ANSWER_DEADLINE_S * G_USEC_PER_SEC) {
    /* Gathering timed out before the answer itself existed (a busy
     * machine): wait for the answer a little longer. */
    if (v->gather_timeout_id == 0)
      v->gather_timeout_id = g_timeout_add (100, gather_timeout, v);
    return;
  }
  if (local == NULL) {
    GError *err = g_error_new (DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
        "webrtcbin produced no local description");
    viewer_fail (v, err);
    g_error_free (err);
    return;
  }
  text = gst_sdp_message_as_text (local->sdp);
  gst_webrtc_session_description_free (local);
  g_print ("dit-serve: viewer %s: answered with %u ICE candidates\n", v->id,
      count_candidates (text));
  viewer_answer (v, text, NULL);
  g_free (text);
}

static gboolean
gather_timeout (gpointer data)
{
  Viewer *v = data;

  v->gather_timeout_id = 0;
  viewer_send_answer (v);
  return G_SOURCE_REMOVE;
}

typedef struct
{
  Viewer *v;
  GError *error;
  gboolean gathered;
} ViewerEvent;

static void
viewer_event_free (gpointer data)
{
  ViewerEvent *e = data;

  viewer_unref (e->v);
  g_clear_error (&e->error);
  g_free (e);
}

static gboolean
viewer_event_main (gpointer data)
{
  ViewerEvent *e = data;

  if (e->v->removed)
    return G_SOURCE_REMOVE;
  if (e->error)
    viewer_fail (e->v, e->error);
  else if (e->gathered)
    viewer_send_answer (e->v);
  return G_SOURCE_REMOVE;
}

static void
viewer_post (Viewer * v, GError * error, gboolean gathered)
{
  ViewerEvent *e = g_new0 (ViewerEvent, 1);

  e->v = viewer_ref (v);
  e->error = error;
  e->gathered = gathered;
  g_main_context_invoke_full (NULL, G_PRIORITY_DEFAULT, viewer_event_main, e,
      viewer_event_free);
}

static void
on_gathering_state (GstElement * webrtc, GParamSpec * pspec, gpointer data)
{
  Viewer *v = data;
  GstWebRTCICEGatheringState state;

  g_object_get (webrtc, "ice-gathering-state", &state, NULL);
  if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
    viewer_post (v, NULL, TRUE);
}

static void
on_connection_state (GstElement * webrtc, GParamSpec * pspec, gpointer data)
{
  Viewer *v = data;
  GstWebRTCPeerConnectionState state;

  g_object_get (webrtc, "connection-state", &state, NULL);
  if (g_atomic_int_exchange (&v->conn_state, (gint) state) != (gint) state)
    g_print ("dit-serve: viewer %s: %s\n", v->id, conn_state_name (state));
  g_mutex_lock (&v->live_lock);
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED)
    v->connected_us = g_get_monotonic_time ();
  if (state != GST_WEBRTC_PEER_CONNECTION_STATE_DISCONNECTED)
    v->disconnected_us = 0;
  else if (v->disconnected_us == 0)
    v->disconnected_us = g_get_monotonic_time ();
  g_mutex_unlock (&v->live_lock);
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED) {
    /* Start the new viewer on a key frame rather than waiting a GOP. */
    gst_pad_push_event (v->queue_sink,
        gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE,
            TRUE, 0));
  }
}

/* rtpbin: an RTCP packet from the peer's SSRC was processed. */
static void
on_rtcp_from_peer (GstElement * rtpbin, guint session, guint ssrc,
    gpointer data)
{
  Viewer *v = data;

  g_mutex_lock (&v->live_lock);
  v->last_rtcp_us = g_get_monotonic_time ();
  g_mutex_unlock (&v->live_lock);
}

static void
on_bye_from_peer (GstElement * rtpbin, guint session, guint ssrc,
    gpointer data)
{
  Viewer *v = data;

  g_mutex_lock (&v->live_lock);
  v->bye = TRUE;
  g_mutex_unlock (&v->live_lock);
}

/* Hear the peer's RTCP through webrtcbin's rtpbin.  webrtcbin has no
 * public signal for it; without its rtpbin (a future webrtcbin) the viewer
 * is still dropped on ICE/DTLS failure, only not on silence. */
static void
watch_peer_rtcp (Viewer * v)
{
  GstElement *rtpbin = gst_bin_get_by_name (GST_BIN (v->webrtc), "rtpbin");

  if (rtpbin == NULL) {
    g_printerr ("dit-serve: webrtcbin has no rtpbin: viewers are not "
        "dropped on RTCP silence\n");
    return;
  }
  g_signal_connect_data (rtpbin, "on-ssrc-active",
      G_CALLBACK (on_rtcp_from_peer), viewer_ref (v),
      (GClosureNotify) (void (*)(void)) viewer_unref, 0);
  g_signal_connect_data (rtpbin, "on-bye-ssrc", G_CALLBACK (on_bye_from_peer),
      viewer_ref (v), (GClosureNotify) (void (*)(void)) viewer_unref, 0);
  gst_object_unref (rtpbin);
}

static void
on_answer_created (GstPromise * promise, gpointer data)
{
  Viewer *v = data;
  const GstStructure *reply = NULL;
  GstWebRTCSessionDescription *answer = NULL;
  GstWebRTCICEGatheringState state;

  if (gst_promise_wait (promise) != GST_PROMISE_RESULT_REPLIED
      || (reply = gst_promise_get_reply (promise)) == NULL
      || !gst_structure_get (reply, "answer",
          GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL)) {
    GError *err = NULL;
    if (reply)
      gst_structure_get (reply, "error", G_TYPE_ERROR, &err, NULL);
    viewer_post (v, g_error_new (DIT_SERVE_ERROR, DIT_SERVE_ERROR_UNSUPPORTED,
            "cannot answer the offer: %s", err ? err->message :
            "webrtcbin gave no answer"), FALSE);
    g_clear_error (&err);
    gst_promise_unref (promise);
    viewer_unref (v);
    return;
  }
  gst_promise_unref (promise);
  g_signal_emit_by_name (v->webrtc, "set-local-description", answer, NULL);
  gst_webrtc_session_description_free (answer);
  /* Gathering may have finished before the notify was connected. */
  g_object_get (v->webrtc, "ice-gathering-state", &state, NULL);
  if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
    viewer_post (v, NULL, TRUE);
  viewer_unref (v);
}

static void
on_offer_set (GstPromise * promise, gpointer data)
{
  Viewer *v = data;
  const GstStructure *reply = NULL;
  GError *err = NULL;

  if (gst_promise_wait (promise) == GST_PROMISE_RESULT_REPLIED)
    reply = gst_promise_get_reply (promise);
  if (reply && gst_structure_get (reply, "error", G_TYPE_ERROR, &err, NULL)) {
    viewer_post (v, g_error_new (DIT_SERVE_ERROR, DIT_SERVE_ERROR_UNSUPPORTED,
            "offer rejected: %s", err->message), FALSE);
    g_error_free (err);
    gst_promise_unref (promise);
    viewer_unref (v);
    return;
  }
  gst_promise_unref (promise);
  g_signal_emit_by_name (v->webrtc, "create-answer", NULL,
      gst_promise_new_with_change_func (on_answer_created, v, NULL));
}

/* The offered payload type for H.264 that rtph264pay can feed
 * (packetization-mode=1), preferring constrained baseline; -1 if none. */
static gint
pick_h264_payload (const GstSDPMessage * sdp, guint * media_index,
    gchar ** profile_name)
{
  gint best = -1, best_rank = 0;

  for (guint m = 0; m < gst_sdp_message_medias_len (sdp); m++) {
    const GstSDPMedia *media = gst_sdp_message_get_media (sdp, m);
    if (g_strcmp0 (gst_sdp_media_get_media (media), "video") != 0)
      continue;
    for (guint f = 0; f < gst_sdp_media_formats_len (media); f++) {
      gint pt = atoi (gst_sdp_media_get_format (media, f));
      GstCaps *caps = gst_sdp_media_get_caps_from_media (media, pt);
      const GstStructure *s;
      const gchar *enc, *mode, *profile;
      gint rank;
      if (caps == NULL)
        continue;
      s = gst_caps_get_structure (caps, 0);
      enc = gst_structure_get_string (s, "encoding-name");
      mode = gst_structure_get_string (s, "packetization-mode");
      /* The SDP parser turns profile-level-id into a profile name. */
      profile = gst_structure_get_string (s, "profile");
      rank = 0;
      if (enc && g_ascii_strcasecmp (enc, "H264") == 0 && g_strcmp0 (mode,
              "1") == 0) {
        rank = 1;
        if (g_strcmp0 (profile, "constrained-baseline") == 0)
          rank = 3;
        else if (g_strcmp0 (profile, "baseline") == 0)
          rank = 2;
      }
      if (rank > best_rank) {
        best_rank = rank;
        best = pt;
        *media_index = m;
        g_free (*profile_name);
        *profile_name = g_strdup (profile);
      }
      gst_caps_unref (caps);
    }
    if (best >= 0)
      break;
  }
  return best;
}

/* With --ice-address, libnice gathers only on the listed addresses (a
 * multi-homed host picking its public side; loopback-only test machines). */
static gboolean
restrict_ice_addresses (DitServePipeline * p, GstElement * webrtc,
    GError ** error)
{
  GObject *ice = NULL;
  gboolean ok = TRUE;

  if (p->cfg.ice_addresses == NULL)
    return TRUE;
  g_object_get (webrtc, "ice-agent", &ice, NULL);
  for (gchar ** a = p->cfg.ice_addresses; ice && ok && *a; a++)
    g_signal_emit_by_name (ice, "add-local-ip-address", *a, &ok);
  if (ice == NULL || !ok) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
        "the ICE agent did not take the --ice-address list");
    ok = FALSE;
  }
  g_clear_object (&ice);
  return ok;
}

static gboolean
build_viewer (DitServePipeline * p, Viewer * v, gint pt,
    const gchar * profile_name, GError ** error)
{
  GstElement *pay, *filter;
  GstPad *pad, *wpad;
  GstCaps *caps;
  GstWebRTCRTPTransceiver *trans = NULL;
  gchar *name;

  name = g_strdup_printf ("viewer-%s", v->id);
  v->bin = gst_bin_new (name);
  g_free (name);
  v->queue = make ("queue", NULL, error);
  pay = make ("rtph264pay", NULL, error);
  filter = make ("capssetter", NULL, error);
  v->webrtc = make ("webrtcbin", "webrtc", error);
  if (!v->queue || !pay || !filter || !v->webrtc) {
    g_clear_object (&v->bin);
    return FALSE;
  }
  g_object_set (v->queue, "max-size-buffers", VIEWER_QUEUE_PACKETS,
      "max-size-bytes", 0, "max-size-time", (guint64) 0, NULL);
  gst_util_set_object_arg (G_OBJECT (v->queue), "leaky", "downstream");
  isolate_branch (v->queue);
  g_signal_connect_data (v->queue, "overrun", G_CALLBACK (on_overrun),
      viewer_ref (v), (GClosureNotify) (void (*)(void)) viewer_unref, 0);
  g_object_set (pay, "config-interval", -1, "pt", (guint) pt, NULL);
  gst_util_set_object_arg (G_OBJECT (pay), "aggregate-mode", "zero-latency");
  caps = gst_caps_new_simple ("application/x-rtp", "media", G_TYPE_STRING,
      "video", "encoding-name", G_TYPE_STRING, "H264", "clock-rate",
      G_TYPE_INT, 90000, "payload", G_TYPE_INT, pt, "packetization-mode",
      G_TYPE_STRING, "1", NULL);
  /* The caps webrtcbin sees are exactly the offered format: rtph264pay
   * adds the stream's own profile-level-id and sprop-parameter-sets, and
   * webrtcbin, which compares caps to the offer by intersection, would
   * then answer with an inactive section once data has flowed. */
  if (profile_name)
    gst_caps_set_simple (caps, "profile", G_TYPE_STRING, profile_name, NULL);
  g_object_set (filter, "caps", caps, "replace", TRUE, NULL);
  gst_util_set_object_arg (G_OBJECT (v->webrtc), "bundle-policy",
      "max-bundle");
  if (p->cfg.stun_server)
    g_object_set (v->webrtc, "stun-server", p->cfg.stun_server, NULL);
  for (gchar ** t = p->cfg.turn_servers; t && *t; t++) {
    gboolean ok = FALSE;
    g_signal_emit_by_name (v->webrtc, "add-turn-server", *t, &ok);
    if (!ok)
      g_printerr ("dit-serve: TURN server '%s' was not accepted\n", *t);
  }

  gst_bin_add_many (GST_BIN (v->bin), v->queue, pay, filter, v->webrtc, NULL);
  if (!restrict_ice_addresses (p, v->webrtc, error)) {
    gst_caps_unref (caps);
    g_clear_object (&v->bin);
    return FALSE;
  }
  if (!gst_element_link_many (v->queue, pay, filter, NULL))
    goto link_failed;
  wpad = gst_element_request_pad_simple (v->webrtc, "sink_%u");
  pad = gst_element_get_static_pad (filter, "src");
  if (wpad == NULL || gst_pad_link (pad, wpad) != GST_PAD_LINK_OK) {
    gst_object_unref (pad);
    g_clear_object (&wpad);
    goto link_failed;
  }
  gst_object_unref (pad);
  g_object_get (wpad, "transceiver", &trans, NULL);
  if (trans) {
    g_object_set (trans, "direction",
        GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, NULL);
    gst_object_unref (trans);
  }
  gst_caps_unref (caps);
  gst_object_unref (wpad);

  v->queue_sink = gst_element_get_static_pad (v->queue, "sink");
  gst_element_add_pad (v->bin, gst_ghost_pad_new ("sink", v->queue_sink));
  pad = gst_element_get_static_pad (v->queue, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_sent,
      viewer_ref (v), viewer_unref);
  if (p->stall_serial == p->viewer_serial) {
    g_printerr ("dit-serve: viewer %s stalls (DIT_SERVE_STALL_VIEWER)\n",
        v->id);
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BLOCK_DOWNSTREAM,
        stall_forever, NULL, NULL);
  }
  gst_object_unref (pad);

  g_signal_connect_data (v->webrtc, "notify::ice-gathering-state",
      G_CALLBACK (on_gathering_state), viewer_ref (v),
      (GClosureNotify) (void (*)(void)) viewer_unref, 0);
  g_signal_connect_data (v->webrtc, "notify::connection-state",
      G_CALLBACK (on_connection_state), viewer_ref (v),
      (GClosureNotify) (void (*)(void)) viewer_unref, 0);
  watch_peer_rtcp (v);
  return TRUE;

link_failed:
  g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
      "cannot link the viewer branch");
  gst_caps_unref (caps);
  g_clear_object (&v->bin);
  return FALSE;
}

void
dit_serve_pipeline_add_viewer (DitServePipeline * p, const gchar * offer_sdp,
    DitServeAnswerFunc func, gpointer user_data)
{
  GstSDPMessage *sdp = NULL;
  GstWebRTCSessionDescription *offer;
  GError *error = NULL;
  Viewer *v;
  GstPad *sink;
  GstPadLinkReturn link;
  guint media_index = 0;
  gchar *profile_name = NULL;
  gint pt;

  if ((gint) g_hash_table_size (p->viewers) >= p->cfg.max_viewers) {
    error = g_error_new (DIT_SERVE_ERROR, DIT_SERVE_ERROR_BUSY,
        "viewer limit reached (%d); see --max-viewers", p->cfg.max_viewers);
    goto fail;
  }
  if (gst_sdp_message_new_from_text (offer_sdp, &sdp) != GST_SDP_OK
      || gst_sdp_message_medias_len (sdp) == 0) {
    error = g_error_new (DIT_SERVE_ERROR, DIT_SERVE_ERROR_BAD_REQUEST,
        "the body is not an SDP offer with at least one media section");
    goto fail;
  }
  pt = pick_h264_payload (sdp, &media_index, &profile_name);
  if (pt < 0) {
    error = g_error_new (DIT_SERVE_ERROR, DIT_SERVE_ERROR_UNSUPPORTED,
        "the offer has no video section with H.264 packetization-mode=1");
    goto fail;
  }

  v = g_new0 (Viewer, 1);
  v->ref = 1;
  g_mutex_init (&v->live_lock);
  v->p = p;
  v->id = g_strdup_printf ("%u-%08x", ++p->viewer_serial, g_random_int ());
  v->created_us = g_get_monotonic_time ();
  v->answer_func = func;
  v->answer_data = user_data;
  if (!build_viewer (p, v, pt, profile_name, &error)) {
    viewer_unref (v);
    goto fail;
  }
  g_free (profile_name);
  g_hash_table_insert (p->viewers, v->id, v);
  gst_bin_add (GST_BIN (p->pipeline), v->bin);
  /* Start the branch before linking it.  The tee pushes from its own
   * thread; a push into a branch whose pads are not active yet returns
   * FLUSHING, which the tee passes upstream as a fatal flow return: the
   * display queue pauses its task and generation stops for good. */
  if (!gst_element_sync_state_with_parent (v->bin)) {
    error = g_error_new (DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
        "the viewer branch did not start");
    goto fail_viewer;
  }
  v->tee_pad = gst_element_request_pad_simple (p->tee, "src_%u");
  sink = gst_element_get_static_pad (v->bin, "sink");
  link = gst_pad_link (v->tee_pad, sink);
  gst_object_unref (sink);
  if (link != GST_PAD_LINK_OK) {
    error = g_error_new (DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
        "cannot link the viewer branch to the tee (%s)",
        gst_pad_link_get_name (link));
    goto fail_viewer;
  }

  v->gather_timeout_id = g_timeout_add (p->cfg.ice_timeout_ms, gather_timeout,
      v);
  offer = gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_OFFER, sdp);
  g_signal_emit_by_name (v->webrtc, "set-remote-description", offer,
      gst_promise_new_with_change_func (on_offer_set, viewer_ref (v), NULL));
  gst_webrtc_session_description_free (offer);
  return;

fail_viewer:
  gst_sdp_message_free (sdp);
  viewer_fail (v, error);
  g_error_free (error);
  return;

fail:
  g_free (profile_name);
  if (sdp)
    gst_sdp_message_free (sdp);
  func (NULL, NULL, error, user_data);
  g_error_free (error);
}

gboolean
dit_serve_pipeline_remove_viewer (DitServePipeline * p, const gchar * id)
{
  Viewer *v = g_hash_table_lookup (p->viewers, id);

  if (v == NULL)
    return FALSE;
  viewer_ref (v);
  g_hash_table_remove (p->viewers, id);
  viewer_teardown (v);
  viewer_unref (v);
  return TRUE;
}

/* Why a viewer should go, or NULL while it is alive (see the file
 * comment).  The text is for the log. */
static gchar *
viewer_dead_reason (DitServePipeline * p, Viewer * v, gint64 now)
{
  gint state = g_atomic_int_get (&v->conn_state);
  gint64 connected_us, disconnected_us, last_rtcp_us, heard_us;
  gboolean bye;

  if (!v->answered)
    return NULL;
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED
      || state == GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED)
    return g_strdup_printf ("connection %s", conn_state_name (state));
  g_mutex_lock (&v->live_lock);
  connected_us = v->connected_us;
  disconnected_us = v->disconnected_us;
  last_rtcp_us = v->last_rtcp_us;
  bye = v->bye;
  g_mutex_unlock (&v->live_lock);

  if (bye)
    return g_strdup ("RTCP BYE from the viewer");
  if (connected_us == 0) {
    if (now - v->created_us > (gint64) p->cfg.connect_timeout_s *
        G_USEC_PER_SEC)
      return g_strdup_printf ("not connected after %d s",
          p->cfg.connect_timeout_s);
    return NULL;
  }
  if (disconnected_us && now - disconnected_us > (gint64) DISCONNECT_GRACE_S *
      G_USEC_PER_SEC)
    return g_strdup_printf ("disconnected for %d s", DISCONNECT_GRACE_S);
  heard_us = MAX (connected_us, last_rtcp_us);
  if (p->cfg.rtcp_timeout_s > 0 && now - heard_us >
      (gint64) p->cfg.rtcp_timeout_s * G_USEC_PER_SEC)
    return g_strdup_printf ("no RTCP for %d s", p->cfg.rtcp_timeout_s);
  return NULL;
}

static gboolean
reap_viewers (gpointer data)
{
  DitServePipeline *p = data;
  GHashTableIter it;
  gpointer value;
  GPtrArray *dead = g_ptr_array_new ();
  gint64 now = g_get_monotonic_time ();

  g_hash_table_iter_init (&it, p->viewers);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Viewer *v = value;
    gchar *why = viewer_dead_reason (p, v, now);
    if (why) {
      g_print ("dit-serve: viewer %s dropped (%s)\n", v->id, why);
      g_ptr_array_add (dead, g_strdup (v->id));
      g_free (why);
    }
  }
  for (guint i = 0; i < dead->len; i++) {
    dit_serve_pipeline_remove_viewer (p, dead->pdata[i]);
    g_free (dead->pdata[i]);
  }
  g_ptr_array_free (dead, TRUE);
  return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------------ */
/* Bus, lifecycle */

static Viewer *
viewer_of_object (DitServePipeline * p, GstObject * obj)
{
  GHashTableIter it;
  gpointer value;

  g_hash_table_iter_init (&it, p->viewers);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Viewer *v = value;
    if (v->bin && (obj == GST_OBJECT (v->bin)
            || gst_object_has_as_ancestor (obj, GST_OBJECT (v->bin))))
      return v;
  }
  return NULL;
}

static gboolean
on_bus (GstBus * bus, GstMessage * msg, gpointer data)
{
  DitServePipeline *p = data;
  GError *err = NULL;
  gchar *dbg = NULL;
  Viewer *v;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR:
      gst_message_parse_error (msg, &err, &dbg);
      v = viewer_of_object (p, GST_MESSAGE_SRC (msg));
      if (v) {
        /* One viewer's transport failing is that viewer's problem. */
        g_printerr ("dit-serve: viewer %s: %s\n", v->id, err->message);
        dit_serve_pipeline_remove_viewer (p, v->id);
      } else {
        g_printerr ("dit-serve: pipeline error from %s: %s\n%s%s",
            GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message,
            dbg ? dbg : "", dbg ? "\n" : "");
        p->exit_status = 1;
        g_main_loop_quit (p->loop);
      }
      g_clear_error (&err);
      g_free (dbg);
      break;
    case GST_MESSAGE_WARNING:
      gst_message_parse_warning (msg, &err, &dbg);
      g_printerr ("dit-serve: warning from %s: %s\n",
          GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message);
      g_clear_error (&err);
      g_free (dbg);
      break;
    case GST_MESSAGE_EOS:
      g_print ("dit-serve: the source ended\n");
      g_main_loop_quit (p->loop);
      break;
    case GST_MESSAGE_LATENCY:
      gst_bin_recalculate_latency (GST_BIN (p->pipeline));
      break;
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

DitServePipeline *
dit_serve_pipeline_new (const DitServeConfig * cfg, GMainLoop * loop,
    GError ** error)
{
  DitServePipeline *p = g_new0 (DitServePipeline, 1);
  GstBus *bus;

  p->cfg = *cfg;
  p->loop = loop;
  p->start_us = g_get_monotonic_time ();
  p->seed = cfg->seed;
  if (g_getenv ("DIT_SERVE_STALL_VIEWER"))
    p->stall_serial = (guint) g_ascii_strtoull (g_getenv
        ("DIT_SERVE_STALL_VIEWER"), NULL, 10);
  g_mutex_init (&p->meta_lock);
  g_mutex_init (&p->pace_lock);
  dit_serve_rate_init (&p->out_rate);
  p->viewers = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
      viewer_unref);
  p->lora = g_strdup (cfg->lora ? cfg->lora : "");
  if (!dit_serve_model_text_shape (cfg->model, &p->text_dim, &p->text_len,
          error) || !dit_serve_lora_check (cfg->model, p->lora,
          cfg->lora_mode, error) || !build (p, error)) {
    dit_serve_pipeline_free (p);
    return NULL;
  }
  bus = gst_element_get_bus (p->pipeline);
  p->bus_watch = gst_bus_add_watch (bus, on_bus, p);
  gst_object_unref (bus);
  return p;
}

gboolean
dit_serve_pipeline_start (DitServePipeline * p, GError ** error)
{
  if (gst_element_set_state (p->pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    g_set_error (error, DIT_SERVE_ERROR, DIT_SERVE_ERROR_FAILED,
        "the pipeline did not start (see the error above: model, device or "
        "source)");
    return FALSE;
  }
  p->reaper_id = g_timeout_add_seconds (1, reap_viewers, p);
  return TRUE;
}

gint
dit_serve_pipeline_exit_status (DitServePipeline * p)
{
  return p->exit_status;
}

void
dit_serve_pipeline_free (DitServePipeline * p)
{
  if (p->reaper_id)
    g_source_remove (p->reaper_id);
  if (p->bus_watch)
    g_source_remove (p->bus_watch);
  if (p->pipeline) {
    GHashTableIter it;
    gpointer value;
    GError *bye = g_error_new (DIT_SERVE_ERROR, DIT_SERVE_ERROR_BUSY,
        "the server is shutting down");
    g_hash_table_iter_init (&it, p->viewers);
    while (g_hash_table_iter_next (&it, NULL, &value))
      viewer_answer (value, NULL, bye);
    g_error_free (bye);
    gst_element_set_state (p->pipeline, GST_STATE_NULL);
    gst_object_unref (p->pipeline);
  }
  g_hash_table_destroy (p->viewers);
  dit_serve_rate_clear (&p->out_rate);
  g_free (p->lora);
  g_mutex_clear (&p->meta_lock);
  g_mutex_clear (&p->pace_lock);
  g_free (p);
}

/* ------------------------------------------------------------------ */
/* Control */

gboolean
dit_serve_pipeline_set_prompt_embeds (DitServePipeline * p,
    const gchar * path, GError ** error)
{
  if (!dit_serve_prompt_check_embeds (path, p->text_dim, p->text_len, error))
    return FALSE;
  g_object_set (p->generate, "prompt-embeds", path, NULL);
  return TRUE;
}

gboolean
dit_serve_pipeline_set_prompt_text (DitServePipeline * p, const gchar * text,
    GError ** error)
{
  if (!dit_serve_prompt_check_text (text, error))
    return FALSE;
  /* prompt-embeds wins over prompt in ditgenerate: clear it so the text
   * takes over from an earlier embeddings file. */
  g_object_set (p->generate, "prompt-embeds", NULL, "prompt", text, NULL);
  return TRUE;
}

void
dit_serve_pipeline_set_seed (DitServePipeline * p, guint64 seed)
{
  g_object_set (p->generate, "seed", seed, NULL);
}

gboolean
dit_serve_pipeline_set_lora (DitServePipeline * p, const gchar * text,
    GError ** error)
{
  if (!dit_serve_lora_check (p->cfg.model, text, p->cfg.lora_mode, error))
    return FALSE;
  g_free (p->lora);
  p->lora = g_strdup (text);
  g_object_set (p->generate, "lora", text, NULL);
  return TRUE;
}

JsonNode *
dit_serve_pipeline_lora (DitServePipeline * p)
{
  JsonBuilder *b = json_builder_new ();
  JsonNode *node;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "lora");
  json_builder_add_string_value (b, p->lora);
  json_builder_set_member_name (b, "mode");
  json_builder_add_string_value (b, p->cfg.lora_mode ? p->cfg.lora_mode
      : "merge");
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  g_object_unref (b);
  return node;
}

JsonNode *
dit_serve_pipeline_stats (DitServePipeline * p)
{
  DitServeStats s = { 0 };
  GArray *views = g_array_new (FALSE, TRUE, sizeof (DitServeViewerStats));
  GHashTableIter it;
  gpointer value;
  gint64 now = g_get_monotonic_time ();
  JsonNode *node;
  guint level;

  g_object_get (p->generate, "fps", &s.fps, "chunk-ms", &s.chunk_ms,
      "chunks", &s.chunks, "queue-depth", &s.generator_queue, NULL);
  g_object_get (p->display_queue, "current-level-buffers", &level, NULL);
  s.display_queue = (gint) level;
  s.mesh_ms = 0.0;
  g_mutex_lock (&p->meta_lock);
  s.prompt_epoch = p->prompt_epoch;
  s.cache_epoch = p->cache_epoch;
  s.seed = p->seed;
  g_mutex_unlock (&p->meta_lock);
  s.output_fps = dit_serve_rate_fps (&p->out_rate, now, 2 * G_USEC_PER_SEC);
  s.frames = g_atomic_pointer_get (&p->frames_out);

  g_hash_table_iter_init (&it, p->viewers);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Viewer *v = value;
    DitServeViewerStats vs = { 0 };
    vs.id = v->id;
    vs.state = conn_state_name (g_atomic_int_get (&v->conn_state));
    if (v->queue)
      g_object_get (v->queue, "current-level-buffers", &vs.queued, NULL);
    vs.sent = g_atomic_pointer_get (&v->sent);
    vs.dropped = g_atomic_pointer_get (&v->dropped);
    vs.age_s = (now - v->created_us) / 1e6;
    g_mutex_lock (&v->live_lock);
    vs.rtcp_age_s = v->last_rtcp_us ? (now - v->last_rtcp_us) / 1e6 : -1.0;
    g_mutex_unlock (&v->live_lock);
    g_array_append_val (views, vs);
  }
  s.n_viewers = views->len;
  s.viewers = (const DitServeViewerStats *) views->data;
  s.width = p->cfg.width;
  s.height = p->cfg.height;
  s.framerate = p->cfg.fps;
  s.encoder = p->encoder_name;
  s.uptime_s = (now - p->start_us) / 1e6;
  node = dit_serve_stats_to_json (&s);
  g_array_free (views, TRUE);
  return node;
}
