/* gst-check tests of ditencode, ditgenerate and ditdecode on the CPU
 * backend with the tiny presets (synthetic seeded weights), named on every
 * element (dit_check_presets.h).
 * Frame counts and timestamps are checked against hand-computed values
 * (9 frames for the first 3-latent chunk, 12 after; 16 fps = 62.5 ms). */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_check_presets.h"
#include "gstditlatent.h"
#include "dit_generator.h"
#include "dit_loader.h"
#include "dit_stream.h"
#include "dit_taehv.h"
#include "dit_vae.h"
#include "dit_weights.h"
#include "safetensors.h"

#define FRAME_NS 62500000       /* 1/16 s */
#define LW 8                    /* latent grid of the default 64x64 video */
#define LHW (LW * LW)
#define PW 64
#define PHW (PW * PW)
#define LATENT_CAPS "video/x-dit-latent, channels=16, width=8, height=8, " \
  "frames=3, dtype=f32, framerate=16/1"
#define RAW_CAPS "video/x-raw, format=RGBx, width=64, height=64, framerate=16/1"
#define CHUNK_BYTES (16 * 3 * LHW * 4)

/* GST_DIT_DEVICE (cpu, cuda:N) runs every dit element of the tests on that
 * device: the device property is set as each element is constructed, with
 * the tiny presets (dit_check_presets.h).  Exits 77 when the device cannot
 * be opened. */
static const gchar *test_device;

static void
use_test_device (void)
{
  gchar **parts;
  dit_backend *be = NULL;

  test_device = g_getenv ("GST_DIT_DEVICE");
  if (!test_device || !*test_device || g_str_equal (test_device, "cpu")) {
    test_device = NULL;
    dit_check_use_presets (NULL);
    return;
  }
  parts = g_strsplit (test_device, ":", 2);
  be = dit_backend_create (parts[0], parts[1] ? atoi (parts[1]) : 0);
  g_strfreev (parts);
  if (!be) {
    g_print ("SKIP: device %s: %s\n", test_device, dit_last_error ());
    exit (77);
  }
  dit_backend_destroy (be);
  dit_check_use_presets (test_device);
}

static GstBuffer *
latent_chunk (gint64 index, GstClockTime pts, GstClockTime dur)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, CHUNK_BYTES, NULL);
  GstMapInfo map;
  gfloat *f;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  f = (gfloat *) map.data;
  for (gsize i = 0; i < CHUNK_BYTES / 4; i++)
    f[i] = (gfloat) (((i * 2654435761u + index) % 1000) / 500.0 - 1.0);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = dur;
  return buf;
}

static GstBuffer *
raw_frame (gint i)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, PHW * 4, NULL);
  gst_buffer_memset (buf, 0, (guint8) (i * 7), PHW * 4);
  GST_BUFFER_PTS (buf) = (GstClockTime) i * FRAME_NS;
  GST_BUFFER_DURATION (buf) = FRAME_NS;
  return buf;
}

/* Pull buffers until EOS; returns the count. */
static guint
pull_until_eos (GstHarness * h, GstClockTime * first_pts, GstClockTime * last_end)
{
  guint n = 0;
  for (;;) {
    GstEvent *ev;
    GstBuffer *b;
    while ((b = gst_harness_try_pull (h))) {
      if (n == 0 && first_pts)
        *first_pts = GST_BUFFER_PTS (b);
      if (last_end)
        *last_end = GST_BUFFER_PTS (b) + GST_BUFFER_DURATION (b);
      n++;
      gst_buffer_unref (b);
    }
    ev = gst_harness_try_pull_event (h);
    if (ev) {
      gboolean eos = GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
      gst_event_unref (ev);
      if (eos) {
        while ((b = gst_harness_try_pull (h))) {
          n++;
          gst_buffer_unref (b);
        }
        return n;
      }
    } else {
      g_usleep (10000);
    }
  }
}

static gchar *
error_text (GstBus * bus)
{
  GstMessage *m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  GError *err = NULL;
  gchar *text;
  if (!m)
    return g_strdup ("");
  gst_message_parse_error (m, &err, NULL);
  text = g_strdup (err->message);
  g_error_free (err);
  gst_message_unref (m);
  return text;
}

/* The message of the error `element` posts when it refuses its first
 * buffer (GST_FLOW_NOT_NEGOTIATED) under `caps`. */
static gchar *
refusal_text (const gchar * element, const gchar * caps, GstBuffer * buf)
{
  GstHarness *h = gst_harness_new (element);
  GstBus *bus = gst_bus_new ();
  gchar *msg;

  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h, caps);
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_NOT_NEGOTIATED);
  msg = error_text (bus);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  return msg;
}

/* The message of the error a pipeline posts once playing (30 s at most);
 * the pipeline itself must parse and link. */
static gchar *
playing_error (const gchar * desc)
{
  GError *err = NULL;
  GstElement *p = gst_parse_launch (desc, &err);
  GstBus *bus;
  GstMessage *m;
  gchar *text;

  fail_unless (p != NULL && err == NULL, "%s: %s", desc,
      err ? err->message : "no pipeline");
  bus = gst_element_get_bus (p);

  gst_element_set_state (p, GST_STATE_PLAYING);
  m = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND,
      GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  fail_unless (m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR,
      "%s: no error", desc);
  gst_message_parse_error (m, &err, NULL);
  text = g_strdup (err->message);
  g_error_free (err);
  gst_message_unref (m);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (p);
  return text;
}

/* ------------------------------------------------------------------ */

/* On a CPU session: device latents are refused by a consumer, and a
 * producer whose peer takes nothing else says why. */
static void
device_memory_needs_cuda (void)
{
  gchar *msg = refusal_text ("ditdecode",
      "video/x-dit-latent(memory:DitDevice), channels=16, width=8, height=8, "
      "frames=3, dtype=f32, framerate=16/1", latent_chunk (0, 0, 0));

  fail_unless (strstr (msg, "device memory") != NULL
      && strstr (msg, "cuda") != NULL, "message: %s", msg);
  g_free (msg);

  msg = playing_error ("ditgenerate num-chunks=1 ! "
      "video/x-dit-latent(memory:DitDevice) ! fakesink");
  fail_unless (strstr (msg, "only in device memory") != NULL, "message: %s",
      msg);
  g_free (msg);
}

#define SIZE_RULE "width and height must be positive multiples of 16 pixels"
static const struct
{
  const gchar *desc, *size;
} bad_sizes[] = {
  {"videotestsrc num-buffers=9 ! video/x-raw,width=100,height=60 ! ditencode "
        "! fakesink", "100x60"},
  {"videotestsrc num-buffers=9 ! video/x-raw,width=100,height=60 ! ditencode "
        "! ditgenerate ! ditdecode ! fakesink", "100x60"},
  {"ditgenerate num-chunks=1 ! ditdecode ! video/x-raw,width=100,height=100 "
        "! fakesink", "100x100"},
  {"ditgenerate num-chunks=1 ! ditdecode ! video/x-raw,width=120 ! fakesink",
      "120x64"},
};

GST_START_TEST (test_caps_reject)
{
  /* 7 latents = 56 pixels: not a multiple of 16. */
  gchar *msg = refusal_text ("ditdecode", "video/x-dit-latent, channels=16, "
      "width=7, height=8, frames=3, dtype=f32, framerate=16/1",
      latent_chunk (0, 0, 0));

  fail_unless (strstr (msg, "multiples of 16") != NULL, "message: %s", msg);
  g_free (msg);

  /* Latents in device memory need a session on a CUDA device (the checks
   * run where the elements compute on the CPU). */
  if (!test_device)
    device_memory_needs_cuda ();

  msg = refusal_text ("ditencode", "video/x-raw, format=RGBx, width=128, "
      "height=128, framerate=0/1", raw_frame (0));
  fail_unless (strstr (msg, "frame rate") != NULL, "message: %s", msg);
  g_free (msg);

  msg = refusal_text ("ditencode", "video/x-raw, format=RGBx, width=100, "
      "height=64, framerate=16/1", raw_frame (0));
  fail_unless (strstr (msg, "100x64") != NULL, "message: %s", msg);
  g_free (msg);

  /* In a pipeline the caps query path must not hide the size: linking
   * succeeds and the element that meets it names the size and the rule
   * (the query path used to drop it: "could not link", "downstream accepts
   * no latent caps"). */
  for (guint i = 0; i < G_N_ELEMENTS (bad_sizes); i++) {
    msg = playing_error (bad_sizes[i].desc);
    fail_unless (strstr (msg, bad_sizes[i].size) != NULL
        && strstr (msg, SIZE_RULE) != NULL, "%s: %s", bad_sizes[i].desc, msg);
    g_free (msg);
  }
}

GST_END_TEST;

/* Text-to-video: the source mode, timestamps and meta of each chunk. */
GST_START_TEST (test_t2v_source)
{
  GstHarness *h = gst_harness_new_with_padnames ("ditgenerate", NULL, "src");
  GstClockTime expect_pts[] = { 0, 9 * FRAME_NS, 21 * FRAME_NS };
  GstClockTime expect_dur[] = { 9 * FRAME_NS, 12 * FRAME_NS, 12 * FRAME_NS };
  GstCaps *caps;
  guint64 epoch = 0;

  g_object_set (h->element, "num-chunks", 3, "anchor", 1, NULL);
  gst_harness_play (h);
  for (gint i = 0; i < 3; i++) {
    GstBuffer *b = gst_harness_pull (h);
    GstDitLatentMeta *m = gst_buffer_get_dit_latent_meta (b);
    fail_unless (b != NULL);
    fail_unless (m != NULL);
    fail_unless_equals_int64 (m->chunk_index, i);
    if (i == 0)
      epoch = m->cache_epoch;
    fail_unless_equals_uint64 (m->cache_epoch, epoch);
    fail_unless_equals_uint64 (m->seed, 42);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b), expect_pts[i]);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (b), expect_dur[i]);
    fail_unless_equals_int (gst_buffer_get_size (b), CHUNK_BYTES);
    gst_buffer_unref (b);
  }
  caps = gst_pad_get_current_caps (h->sinkpad);
  {
    GstStructure *s = gst_caps_get_structure (caps, 0);
    gint w, fr;
    gst_structure_get_int (s, "width", &w);
    gst_structure_get_int (s, "frames", &fr);
    fail_unless_equals_int (w, LW);
    fail_unless_equals_int (fr, 3);
  }
  gst_caps_unref (caps);
  fail_unless_equals_int (pull_until_eos (h, NULL, NULL), 0);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* EOS sent while a text-to-video source runs without a chunk limit (what
 * gst-launch-1.0 -e does on Ctrl-C: EOS to the pipeline, which hands it to
 * its sources) ends the stream: at most the chunks in flight leave after
 * it, then EOS reaches the bus.  Before ditgenerate handled send_event the
 * pipeline refused the event and the source generated on forever. */
static guint64
chunks_of (GstElement * gen)
{
  guint64 n;
  g_object_get (gen, "chunks", &n, NULL);
  return n;
}

static void
check_eos_ends_source (const gchar * desc, gboolean to_element)
{
  GstElement *p = gst_parse_launch (desc, NULL);
  GstElement *gen = gst_bin_get_by_name (GST_BIN (p), "gen");
  GstBus *bus = gst_element_get_bus (p);
  gint64 deadline = g_get_monotonic_time () + 120 * G_TIME_SPAN_SECOND;
  guint64 before, after;
  GstMessage *m;

  fail_unless (gen != NULL);
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE);
  while (chunks_of (gen) < 1 && g_get_monotonic_time () < deadline)
    g_usleep (5000);
  before = chunks_of (gen);
  fail_unless (before >= 1, "%s: no chunk", desc);
  fail_unless (gst_element_send_event (to_element ? gen : p,
          gst_event_new_eos ()), "%s: EOS refused", desc);
  m = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (m != NULL, "%s: no EOS after send_event (EOS)", desc);
  fail_unless_equals_string (GST_MESSAGE_TYPE_NAME (m), "eos");
  gst_message_unref (m);
  /* the chunk being generated when the count was read, and the one in
   * flight when the event came */
  after = chunks_of (gen);
  fail_unless (after <= before + 2, "%s: %" G_GUINT64_FORMAT " chunks after "
      "EOS", desc, after - before);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (gen);
  gst_object_unref (p);
}

GST_START_TEST (test_eos_ends_source)
{
  check_eos_ends_source ("ditgenerate name=gen ! fakesink sync=false", FALSE);
  check_eos_ends_source ("ditgenerate name=gen ! queue ! ditdecode ! "
      "fakesink sync=false", FALSE);
  check_eos_ends_source ("ditgenerate name=gen ! fakesink sync=false", TRUE);
}

GST_END_TEST;

/* One chunk in, exactly 9 frames out (12 for the next) with their PTS. */
GST_START_TEST (test_decode_chunk_frames)
{
  GstHarness *h = gst_harness_new ("ditdecode");
  GstCaps *caps;
  GstVideoInfo vi;

  gst_harness_set_src_caps_str (h, LATENT_CAPS);
  fail_unless_equals_int (gst_harness_push (h, latent_chunk (0, 0,
              9 * FRAME_NS)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 9);
  for (gint j = 0; j < 9; j++) {
    GstBuffer *b = gst_harness_pull (h);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b), (guint64) j * FRAME_NS);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (b), FRAME_NS);
    gst_buffer_unref (b);
  }
  fail_unless_equals_int (gst_harness_push (h, latent_chunk (1, 9 * FRAME_NS,
              12 * FRAME_NS)), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 12);
  for (gint j = 0; j < 12; j++) {
    GstBuffer *b = gst_harness_pull (h);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b), (guint64) (9 + j) * FRAME_NS);
    gst_buffer_unref (b);
  }
  caps = gst_pad_get_current_caps (h->sinkpad);
  fail_unless (gst_video_info_from_caps (&vi, caps));
  fail_unless_equals_int (vi.width, PW);
  fail_unless_equals_int (vi.height, PW);
  fail_unless_equals_int (vi.fps_n, 16);
  gst_caps_unref (caps);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Encode -> decode keeps the exact frame count and times through EOS,
 * including a partial last chunk. */
GST_START_TEST (test_eos_frame_counts)
{
  static const gint counts[] = { 9, 21, 14 };
  for (guint c = 0; c < G_N_ELEMENTS (counts); c++) {
    GstHarness *h = gst_harness_new_parse ("ditencode ! ditdecode");
    GstClockTime first_pts = 1, end = 0;
    gst_harness_set_src_caps_str (h, RAW_CAPS);
    for (gint i = 0; i < counts[c]; i++)
      fail_unless_equals_int (gst_harness_push (h, raw_frame (i)), GST_FLOW_OK);
    fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
    fail_unless_equals_int (pull_until_eos (h, &first_pts, &end), counts[c]);
    fail_unless_equals_uint64 (first_pts, 0);
    fail_unless_equals_uint64 (end, (guint64) counts[c] * FRAME_NS);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* num-frames: exactly that many frames come out, EOS follows at once, and
 * later frames and events from upstream are taken without an error (a
 * decoder keeps pushing: identity eos-after could not limit a file). */
GST_START_TEST (test_num_frames)
{
  GstHarness *h = gst_harness_new_parse ("ditencode num-frames=14 ! ditdecode");
  GstClockTime first_pts = 1, end = 0;

  gst_harness_set_src_caps_str (h, RAW_CAPS);
  for (gint i = 0; i < 20; i++) {
    fail_unless_equals_int (gst_harness_push (h, raw_frame (i)), GST_FLOW_OK);
    if (i == 10)
      fail_unless (gst_harness_push_event (h, gst_event_new_tag
              (gst_tag_list_new_empty ())));
  }
  fail_unless_equals_int (pull_until_eos (h, &first_pts, &end), 14);
  fail_unless_equals_uint64 (end, 14 * FRAME_NS);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Every raw format in and out: frames go through the engine's pixel
 * conversion (packed RGB and 4:2:0 YUV) with the sizes and counts intact. */
GST_START_TEST (test_raw_formats)
{
  static const gchar *const in_formats[] = { "RGB", "RGBx", "RGBA", "I420",
    "NV12"
  };
  static const gchar *const out_formats[] = { "RGBx", "RGBA", "RGB", "I420",
    "NV12"
  };
  for (guint f = 0; f < G_N_ELEMENTS (in_formats); f++) {
    const gchar *out_format = out_formats[f];
    gchar *launch = g_strdup_printf ("ditencode ! ditdecode ! "
        "capsfilter caps=video/x-raw,format=%s", out_format);
    GstHarness *h = gst_harness_new_parse (launch);
    GstVideoInfo in_info, out_info;
    gchar *caps;
    guint n = 0;

    g_free (launch);

    gst_video_info_set_format (&in_info,
        gst_video_format_from_string (in_formats[f]), 64, 64);
    gst_video_info_set_format (&out_info,
        gst_video_format_from_string (out_format), 64, 64);
    caps = g_strdup_printf ("video/x-raw, format=%s, width=64, height=64, "
        "framerate=16/1", in_formats[f]);
    gst_harness_set_src_caps_str (h, caps);
    g_free (caps);
    for (gint i = 0; i < 5; i++) {
      GstBuffer *buf = gst_buffer_new_allocate (NULL, in_info.size, NULL);
      gst_buffer_memset (buf, 0, (guint8) (60 + 20 * i), in_info.size);
      GST_BUFFER_PTS (buf) = (GstClockTime) i * FRAME_NS;
      GST_BUFFER_DURATION (buf) = FRAME_NS;
      fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
    }
    fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
    for (;;) {
      GstBuffer *b = gst_harness_try_pull (h);
      GstEvent *ev;
      if (b) {
        fail_unless (gst_buffer_get_size (b) == out_info.size,
            "%s -> %s: %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT,
            in_formats[f], out_format, gst_buffer_get_size (b), out_info.size);
        n++;
        gst_buffer_unref (b);
        continue;
      }
      ev = gst_harness_try_pull_event (h);
      if (ev && GST_EVENT_TYPE (ev) == GST_EVENT_EOS) {
        gst_event_unref (ev);
        while ((b = gst_harness_try_pull (h))) {
          n++;
          gst_buffer_unref (b);
        }
        break;
      }
      if (ev)
        gst_event_unref (ev);
      else
        g_usleep (10000);
    }
    fail_unless_equals_int (n, 5);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* Video-to-video through all three elements. */
GST_START_TEST (test_v2v)
{
  GstHarness *h =
      gst_harness_new_parse ("ditencode ! ditgenerate strength=0.6 ! ditdecode");
  GstClockTime first_pts = 1, end = 0;

  gst_harness_set_src_caps_str (h, RAW_CAPS);
  for (gint i = 0; i < 21; i++)
    fail_unless_equals_int (gst_harness_push (h, raw_frame (i)), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (pull_until_eos (h, &first_pts, &end), 21);
  fail_unless_equals_uint64 (end, 21 * FRAME_NS);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* FLUSH starts a new cache epoch: chunk indices restart at 0 and nothing
 * of the old epoch comes out after the flush. */
GST_START_TEST (test_flush_epoch)
{
  GstHarness *h = gst_harness_new_with_padnames ("ditgenerate", "sink", "src");
  guint64 e0, e1;
  GstBuffer *b;
  GstDitLatentMeta *m;

  g_object_set (h->element, "anchor", 1, NULL);
  gst_harness_set_src_caps_str (h, LATENT_CAPS);
  gst_harness_push (h, latent_chunk (0, 0, 9 * FRAME_NS));
  gst_harness_push (h, latent_chunk (1, 9 * FRAME_NS, 12 * FRAME_NS));
  b = gst_harness_pull (h);
  m = gst_buffer_get_dit_latent_meta (b);
  e0 = m->cache_epoch;
  fail_unless_equals_int64 (m->chunk_index, 0);
  gst_buffer_unref (b);

  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  /* Drop whatever was pushed before the flush reached the sink pad. */
  while ((b = gst_harness_try_pull (h)))
    gst_buffer_unref (b);
  g_object_get (h->element, "cache-epoch", &e1, NULL);
  fail_unless (e1 > e0, "epoch %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT,
      e0, e1);
  gst_harness_push_event (h, gst_event_new_segment (&(GstSegment) {
        .format = GST_FORMAT_TIME,.rate = 1.0,.applied_rate = 1.0,.stop = -1}));
  gst_harness_push (h, latent_chunk (5, 0, 9 * FRAME_NS));
  b = gst_harness_pull (h);
  m = gst_buffer_get_dit_latent_meta (b);
  fail_unless_equals_uint64 (m->cache_epoch, e1);
  fail_unless_equals_int64 (m->chunk_index, 0);
  gst_buffer_unref (b);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* The display drops chunks of an epoch older than the one it decodes. */
GST_START_TEST (test_stale_dropped)
{
  GstHarness *h = gst_harness_new ("ditdecode");
  GstBuffer *b;
  GstDitLatentMeta *m;

  gst_harness_set_src_caps_str (h, LATENT_CAPS);
  b = latent_chunk (0, 0, 9 * FRAME_NS);
  m = gst_buffer_add_dit_latent_meta (b);
  m->cache_epoch = 1000;
  gst_harness_push (h, b);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 9);
  b = latent_chunk (1, 9 * FRAME_NS, 12 * FRAME_NS);
  m = gst_buffer_add_dit_latent_meta (b);
  m->cache_epoch = 999;
  m->chunk_index = 1;
  fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 9);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_state_stress)
{
  GstElement *p = gst_parse_launch ("ditgenerate num-chunks=2 ! ditdecode ! "
      "fakesink sync=false", NULL);
  for (gint i = 0; i < 4; i++) {
    fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
        GST_STATE_CHANGE_FAILURE);
    g_usleep (i * 100000);
    fail_unless (gst_element_set_state (p, i % 2 ? GST_STATE_NULL :
            GST_STATE_READY) != GST_STATE_CHANGE_FAILURE);
  }
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
}

GST_END_TEST;

/* A sink that stops pulling stops the generator: chunk count and held
 * decoded frames stay bounded. */
GST_START_TEST (test_backpressure)
{
  GstElement *p = gst_parse_launch ("ditgenerate name=g max-inflight=1 ! "
      "queue max-size-buffers=1 max-size-bytes=0 max-size-time=0 ! "
      "ditdecode ! appsink name=s max-buffers=1 sync=false", NULL);
  GstElement *g = gst_bin_get_by_name (GST_BIN (p), "g");
  guint64 c = 0, last = G_MAXUINT64, most = 0;
  gint64 stable_since = 0, deadline;

  gst_element_set_state (p, GST_STATE_PLAYING);
  /* Sample the chunk count until it has not moved for 3 s (a loaded machine
   * only delays that point).  appsink holds 1 frame (ditdecode blocked in
   * chunk 0), the queue one chunk, the generator is blocked pushing the
   * next: never more than 3 made, however long we wait. */
  deadline = g_get_monotonic_time () + 90 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < deadline) {
    g_object_get (g, "chunks", &c, NULL);
    most = MAX (most, c);
    if (c != last) {
      last = c;
      stable_since = g_get_monotonic_time ();
    } else if (c > 0 && g_get_monotonic_time () - stable_since
        > 3 * G_USEC_PER_SEC) {
      break;
    }
    g_usleep (100 * 1000);
  }
  fail_unless (most <= 3, "generator ran ahead: %" G_GUINT64_FORMAT, most);
  fail_unless (c >= 1 && g_get_monotonic_time () < deadline,
      "chunk count never settled (last %" G_GUINT64_FORMAT ")", c);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (g);
  gst_object_unref (p);
}

GST_END_TEST;

static gchar *
write_embeds (const gchar * dir, gfloat value)
{
  gchar *path = g_build_filename (dir, "embeds.safetensors", NULL);
  static gfloat data[4 * 64];
  int64_t shape[2] = { 4, 64 };
  dit_st_write_tensor t = { "prompt_embeds", DIT_F32, 2, shape, data };
  for (gint i = 0; i < 4 * 64; i++)
    data[i] = value * ((i % 7) - 3);
  fail_unless (dit_safetensors_write (path, &t, 1, NULL) == DIT_OK, "%s",
      dit_last_error ());
  return path;
}

GST_START_TEST (test_properties_playing)
{
  GstHarness *h = gst_harness_new_with_padnames ("ditgenerate", NULL, "src");
  gchar *dir = g_dir_make_tmp ("ditcheck-XXXXXX", NULL);
  gchar *embeds = write_embeds (dir, 0.05f);
  GstBuffer *b;
  GstDitLatentMeta *m;
  guint64 epoch, pepoch;

  g_object_set (h->element, "anchor", 1, NULL);
  gst_harness_play (h);
  b = gst_harness_pull (h);
  m = gst_buffer_get_dit_latent_meta (b);
  epoch = m->cache_epoch;
  pepoch = m->prompt_epoch;
  gst_buffer_unref (b);

  g_object_set (h->element, "seed", (guint64) 7, "prompt-embeds", embeds, NULL);
  /* Chunks already queued downstream may carry the old values. */
  for (gint i = 0; i < 4; i++) {
    b = gst_harness_pull (h);
    m = gst_buffer_get_dit_latent_meta (b);
    if (m->seed == 7) {
      fail_unless (m->prompt_epoch > pepoch);
      /* Text-to-video keeps the cache across prompt changes. */
      fail_unless_equals_uint64 (m->cache_epoch, epoch);
      gst_buffer_unref (b);
      break;
    }
    fail_unless (i < 3, "seed change never applied");
    gst_buffer_unref (b);
  }
  gst_harness_teardown (h);
  g_unlink (embeds);
  g_rmdir (dir);
  g_free (embeds);
  g_free (dir);
}

GST_END_TEST;

GST_START_TEST (test_latency)
{
  GstHarness *h = gst_harness_new ("ditencode");
  GstClockTime lat;

  gst_harness_set_src_caps_str (h, RAW_CAPS);
  gst_harness_set_upstream_latency (h, 0);
  gst_harness_push (h, raw_frame (0));
  lat = gst_harness_query_latency (h);
  /* The first frame of a 12-frame chunk waits for 11 more: 687.5 ms. */
  fail_unless_equals_uint64 (lat, 11 * FRAME_NS);
  gst_harness_teardown (h);

  h = gst_harness_new_with_padnames ("ditgenerate", "sink", "src");
  g_object_set (h->element, "anchor", 1, NULL);
  gst_harness_set_src_caps_str (h, LATENT_CAPS);
  gst_harness_set_upstream_latency (h, 11 * FRAME_NS);
  gst_harness_push (h, latent_chunk (0, 0, 9 * FRAME_NS));
  gst_buffer_unref (gst_harness_pull (h));
  {
    gdouble ms;
    g_object_get (h->element, "chunk-ms", &ms, NULL);
    lat = gst_harness_query_latency (h);
    fail_unless (ms > 0);
    /* Upstream plus the measured time of a chunk. */
    fail_unless_equals_uint64 (lat, 11 * FRAME_NS + (GstClockTime) (ms *
            GST_MSECOND));
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* The error a pipeline posts when it cannot reach PAUSED. */
static GError *
state_gerror (const gchar * desc)
{
  GstElement *p = gst_parse_launch (desc, NULL);
  GstBus *bus = gst_element_get_bus (p);
  GstMessage *m;
  GError *err = NULL;

  fail_unless_equals_int (gst_element_set_state (p, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (m != NULL, "%s: no error message", desc);
  gst_message_parse_error (m, &err, NULL);
  gst_message_unref (m);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (p);
  return err;
}

static gchar *
state_error (const gchar * desc)
{
  GError *err = state_gerror (desc);
  gchar *msg = g_strdup (err->message);

  g_error_free (err);
  return msg;
}

GST_START_TEST (test_errors)
{
  gchar *dir = g_dir_make_tmp ("ditcheck-XXXXXX", NULL);
  gchar *bad = g_build_filename (dir, "corrupt.safetensors", NULL);
  gchar *desc, *msg;

  msg = state_error ("ditgenerate model=/nonexistent/dit.safetensors ! fakesink");
  fail_unless (strstr (msg, "/nonexistent/dit.safetensors") != NULL, "%s", msg);
  g_free (msg);

  /* A header length far beyond the file. */
  fail_unless (g_file_set_contents (bad, "\xff\xff\xff\x00\x00\x00\x00\x00{}",
          10, NULL));
  desc = g_strdup_printf ("ditgenerate model=%s ! fakesink", bad);
  msg = state_error (desc);
  fail_unless (strstr (msg, "corrupt.safetensors") != NULL, "%s", msg);
  g_free (msg);
  g_free (desc);

  desc = g_strdup_printf ("ditgenerate ! ditdecode vae-model=%s ! fakesink",
      bad);
  msg = state_error (desc);
  fail_unless (strstr (msg, "corrupt.safetensors") != NULL, "%s", msg);
  g_free (msg);
  g_free (desc);

  /* A misspelled preset lists the presets (it used to say "cannot open"). */
  msg = state_error ("ditgenerate model=wan-3b ! fakesink");
  fail_unless (strstr (msg, "wan-3b") != NULL
      && strstr (msg, "wan-14b, wan-1.3b, tiny") != NULL, "%s", msg);
  g_free (msg);
  msg = state_error ("ditgenerate ! ditdecode vae-model=wann ! fakesink");
  fail_unless (strstr (msg, "wann") != NULL && strstr (msg, "wan, tiny")
      != NULL, "%s", msg);
  g_free (msg);
  msg = state_error ("ditencode vae-model=tinny ! fakesink");
  fail_unless (strstr (msg, "tinny") != NULL && strstr (msg, "wan, tiny")
      != NULL, "%s", msg);
  g_free (msg);

  /* The demo model (the defaults) without its files: NOT_FOUND, naming the
   * file and how to make it ($DIT_DEMO_DIR: an empty directory). */
  {
    static const gchar *const demo[][2] = {
      {"ditgenerate model=demo ! fakesink", "demo-dit.safetensors"},
      {"ditgenerate ! ditdecode vae-model=demo ! fakesink",
          "demo-vae.safetensors"},
      {"ditencode vae-model=demo ! fakesink", "demo-vae.safetensors"},
    };
    g_setenv ("DIT_DEMO_DIR", dir, TRUE);
    for (guint i = 0; i < G_N_ELEMENTS (demo); i++) {
      GError *err = state_gerror (demo[i][0]);
      fail_unless (g_error_matches (err, GST_RESOURCE_ERROR,
              GST_RESOURCE_ERROR_NOT_FOUND) && strstr (err->message,
              demo[i][1]) && strstr (err->message, "install-weights.sh")
          && strstr (err->message, "run-gpu.sh"), "%s: %s", demo[i][0],
          err->message);
      g_error_free (err);
    }
    g_unsetenv ("DIT_DEMO_DIR");
  }

  g_unlink (bad);
  g_rmdir (dir);
  g_free (bad);
  g_free (dir);
}

GST_END_TEST;

/* The anchor path against an engine-only rollout: chunk 2's recompute
 * context must be [encode(last decoded frame of latent 3), latent 4,
 * latent 5]; the rollout builds that context by hand from the generator
 * and a streaming VAE of its own. */
/* Where chunk 2's anchor frame comes from in engine_rollout. */
typedef enum
{
  ANCHOR_FULL_DISPLAY,          /* the full VAE decodes every latent */
  ANCHOR_FULL_ALONE,            /* tiny display: the full VAE decodes only
                                   the anchor latent, as its stream's first */
  ANCHOR_TINY,                  /* the TAEHV display decoder's frame */
} AnchorSource;

static void
engine_rollout_from (const gchar * embeds_path, gfloat * chunks,
    gboolean decoded, AnchorSource src);

static void
engine_rollout (const gchar * embeds_path, gfloat * chunks /* 3 x [16,3,16,16] */ ,
    gboolean decoded)
{
  engine_rollout_from (embeds_path, chunks, decoded, ANCHOR_FULL_DISPLAY);
}

static void
engine_rollout_from (const gchar * embeds_path, gfloat * chunks,
    gboolean decoded, AnchorSource src)
{
  dit_taehv *tae = NULL;
  dit_model_config mc;
  dit_gen_config gc;
  dit_param_spec *specs;
  size_t n;
  dit_weights *w, *vw;
  dit_vae_config vc;
  dit_vae *vae;
  dit_generator *g;
  dit_backend *be = dit_backend_cpu ();
  const gsize plane = 16 * LHW;
  gfloat *rows;
  gint nrows;
  gfloat ctx[3 * 16 * LHW], lat[16 * LHW], pix[3 * 4 * PHW],
      frame[3 * PHW];

  fail_unless (dit_model_config_preset ("tiny", &mc) == DIT_OK);
  fail_unless (dit_model_config_params (&mc, &specs, &n) == DIT_OK);
  fail_unless (dit_weights_synthetic (specs, n, 0, DIT_F32, be, &w) == DIT_OK);
  free (specs);
  fail_unless (dit_vae_config_preset ("tiny", &vc) == DIT_OK);
  fail_unless (dit_vae_config_params (&vc, &specs, &n) == DIT_OK);
  fail_unless (dit_weights_synthetic (specs, n, 0, DIT_F32, be, &vw) == DIT_OK);
  free (specs);
  fail_unless (dit_vae_create (&vc, vw, PW, PW, DIT_F32, be, &vae) == DIT_OK,
      "%s", dit_last_error ());
  if (src == ANCHOR_TINY) {
    dit_taehv_config tc;
    dit_weights *tw;
    fail_unless (dit_load_taehv ("taehv-tiny", 0, DIT_F32, be, &tc, &tw)
        == DIT_OK);
    fail_unless (dit_taehv_create (&tc, tw, PW, PW, DIT_F32,
            DIT_TAEHV_DECODER, be, &tae) == DIT_OK, "%s", dit_last_error ());
    dit_weights_free (tw);
  }
  dit_gen_config_default (&gc);
  gc.latent_h = gc.latent_w = LW;
  gc.dtype = DIT_F32;
  fail_unless (dit_generator_create (&mc, &gc, w, be, &g) == DIT_OK);
  fail_unless (dit_stream_load_embeds (embeds_path, 64, 512, &rows, &nrows)
      == DIT_OK);
  {
    dit_tensor t = dit_tensor_2d (rows, DIT_F32, DIT_DEVICE_CPU, nrows, 64);
    fail_unless (dit_generator_set_prompt (g, &t) == DIT_OK);
  }
  free (rows);

  for (gint k = 0; k < 3; k++) {
    int64_t shape[4] = { 16, 3, LW, LW };
    dit_tensor out = dit_tensor_make (chunks + k * 3 * plane, DIT_F32,
        DIT_DEVICE_CPU, 4, shape);
    dit_tensor ct = dit_tensor_make (ctx, DIT_F32, DIT_DEVICE_CPU, 4, shape);
    dit_chunk_request req = { 0 };
    req.chunk_index = k;
    if (k == 1) {
      memcpy (ctx, chunks, sizeof ctx);   /* latents 0, 1, 2 */
      req.context = &ct;
    } else if (k == 2) {
      const gfloat *c1 = chunks + 3 * plane;
      for (gint c = 0; c < 16; c++) {
        memcpy (ctx + (c * 3 + 1) * LHW, c1 + (c * 3 + 1) * LHW, LHW * 4);
        memcpy (ctx + (c * 3 + 2) * LHW, c1 + (c * 3 + 2) * LHW, LHW * 4);
        if (!decoded)
          memcpy (ctx + (c * 3) * LHW, c1 + (c * 3) * LHW, LHW * 4);
      }
      if (decoded) {
        /* Decode latents 0..3 one at a time; keep latent 3's last frame
         * (with the full VAE beside a tiny display only latent 3 is
         * decoded, as the first latent of the full VAE's stream). */
        for (gint l = src == ANCHOR_FULL_ALONE ? 3 : 0; l < 4; l++) {
          const gfloat *cs = chunks + (l / 3) * 3 * plane;
          gint T = l == 0 || src == ANCHOR_FULL_ALONE ? 1 : 4;
          int64_t ls[4] = { 16, 1, LW, LW }, ps[4] = { 3, T, PW, PW };
          for (gint c = 0; c < 16; c++)
            memcpy (lat + c * LHW, cs + (c * 3 + l % 3) * LHW, LHW * 4);
          dit_tensor lt = dit_tensor_make (lat, DIT_F32, DIT_DEVICE_CPU, 4, ls);
          dit_tensor pt = dit_tensor_make (pix, DIT_F32, DIT_DEVICE_CPU, 4, ps);
          if (tae)
            fail_unless (dit_taehv_decode (tae, &lt, &pt) == DIT_OK);
          else
            fail_unless (dit_vae_decode (vae, &lt, &pt) == DIT_OK);
          if (l == 3)
            for (gint c = 0; c < 3; c++)
              memcpy (frame + c * PHW, pix + (c * T + T - 1) * PHW,
                  PHW * 4);
        }
        {
          int64_t fs[4] = { 3, 1, PW, PW }, ls[4] = { 16, 1, LW, LW };
          dit_tensor ft = dit_tensor_make (frame, DIT_F32, DIT_DEVICE_CPU, 4,
              fs);
          dit_tensor lt = dit_tensor_make (lat, DIT_F32, DIT_DEVICE_CPU, 4, ls);
          fail_unless (dit_vae_encode_anchor (vae, &ft, &lt) == DIT_OK);
          for (gint c = 0; c < 16; c++)
            memcpy (ctx + (c * 3) * LHW, lat + c * LHW, LHW * 4);
        }
      }
      req.context = &ct;
    }
    fail_unless (dit_generator_run_chunk (g, &req, &out, NULL) == DIT_OK,
        "%s", dit_last_error ());
  }
  dit_generator_free (g);
  dit_vae_free (vae);
  dit_taehv_free (tae);
  dit_weights_free (w);
  dit_weights_free (vw);
}

static void
pipeline_chunks_with (const gchar * embeds, const gchar * anchor,
    const gchar * gen_extra, const gchar * dec_extra, gfloat * chunks)
{
  gchar *desc = g_strdup_printf ("ditgenerate num-chunks=3 prompt-embeds=%s "
      "anchor=%s %s ! tee name=t ! queue ! ditdecode %s ! fakesink sync=false "
      "t. ! queue ! appsink name=s sync=false", embeds, anchor, gen_extra,
      dec_extra);
  GstElement *p = gst_parse_launch (desc, NULL);
  GstElement *s = gst_bin_get_by_name (GST_BIN (p), "s");

  gst_element_set_state (p, GST_STATE_PLAYING);
  for (gint k = 0; k < 3; k++) {
    GstSample *smp = NULL;
    GstMapInfo map;
    g_signal_emit_by_name (s, "pull-sample", &smp);
    fail_unless (smp != NULL);
    gst_buffer_map (gst_sample_get_buffer (smp), &map, GST_MAP_READ);
    fail_unless_equals_int (map.size, CHUNK_BYTES);
    memcpy (chunks + k * CHUNK_BYTES / 4, map.data, CHUNK_BYTES);
    gst_buffer_unmap (gst_sample_get_buffer (smp), &map);
    gst_sample_unref (smp);
  }
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (s);
  gst_object_unref (p);
  g_free (desc);
}

static void
pipeline_chunks (const gchar * embeds, const gchar * anchor, gfloat * chunks)
{
  pipeline_chunks_with (embeds, anchor, "", "", chunks);
}

static gdouble
max_diff (const gfloat * a, const gfloat * b, gsize n)
{
  gdouble m = 0;
  for (gsize i = 0; i < n; i++)
    m = MAX (m, fabs ((gdouble) a[i] - b[i]));
  return m;
}

GST_START_TEST (test_anchor_path)
{
  gchar *dir = g_dir_make_tmp ("ditcheck-XXXXXX", NULL);
  gchar *embeds = write_embeds (dir, 0.1f);
  gfloat *ref = g_new (gfloat, 3 * CHUNK_BYTES / 4);
  gfloat *ref_latent = g_new (gfloat, 3 * CHUNK_BYTES / 4);
  gfloat *got = g_new (gfloat, 3 * CHUNK_BYTES / 4);
  const gsize n = CHUNK_BYTES / 4;

  engine_rollout (embeds, ref, TRUE);
  engine_rollout (embeds, ref_latent, FALSE);
  /* The two anchors must lead to different chunk 2s, or the test could
   * not tell them apart. */
  fail_unless (max_diff (ref + 2 * n, ref_latent + 2 * n, n) > 1e-4);

  pipeline_chunks (embeds, "decoded", got);
  fail_unless (max_diff (got, ref, n) == 0, "chunk 0 differs");
  fail_unless (max_diff (got + n, ref + n, n) == 0, "chunk 1 differs");
  fail_unless (max_diff (got + 2 * n, ref + 2 * n, n) == 0,
      "chunk 2 differs from the decoded-anchor rollout by %g",
      max_diff (got + 2 * n, ref + 2 * n, n));

  pipeline_chunks (embeds, "latent", got);
  fail_unless (max_diff (got + 2 * n, ref_latent + 2 * n, n) == 0,
      "anchor=latent chunk 2 differs by %g",
      max_diff (got + 2 * n, ref_latent + 2 * n, n));

  g_unlink (embeds);
  g_rmdir (dir);
  g_free (embeds);
  g_free (dir);
  g_free (ref);
  g_free (ref_latent);
  g_free (got);
}

GST_END_TEST;

/* With a tiny display decoder the anchor still comes from the full VAE
 * (which then decodes only the anchor latent), or with anchor-decoder=tiny
 * from the tiny decoder's frame: chunk 2 against engine rollouts built
 * each way by hand. */
GST_START_TEST (test_anchor_path_tiny)
{
  gchar *dir = g_dir_make_tmp ("ditcheck-XXXXXX", NULL);
  gchar *embeds = write_embeds (dir, 0.1f);
  const gsize n = CHUNK_BYTES / 4;
  gfloat *alone = g_new (gfloat, 3 * n), *tiny = g_new (gfloat, 3 * n);
  gfloat *full = g_new (gfloat, 3 * n), *got = g_new (gfloat, 3 * n);

  engine_rollout_from (embeds, full, TRUE, ANCHOR_FULL_DISPLAY);
  engine_rollout_from (embeds, alone, TRUE, ANCHOR_FULL_ALONE);
  engine_rollout_from (embeds, tiny, TRUE, ANCHOR_TINY);
  /* the three anchors lead to three different chunk 2s */
  fail_unless (max_diff (alone + 2 * n, full + 2 * n, n) > 1e-4);
  fail_unless (max_diff (tiny + 2 * n, full + 2 * n, n) > 1e-4);
  fail_unless (max_diff (tiny + 2 * n, alone + 2 * n, n) > 1e-4);

  pipeline_chunks_with (embeds, "decoded", "", "decoder-model=taehv-tiny", got);
  fail_unless (max_diff (got, full, 2 * n) == 0, "chunks 0, 1 differ");
  fail_unless (max_diff (got + 2 * n, alone + 2 * n, n) == 0, "tiny display, "
      "full anchor: chunk 2 differs by %g", max_diff (got + 2 * n,
          alone + 2 * n, n));
  pipeline_chunks_with (embeds, "decoded", "anchor-decoder=tiny",
      "decoder-model=taehv-tiny", got);
  fail_unless (max_diff (got + 2 * n, tiny + 2 * n, n) == 0, "tiny anchor: "
      "chunk 2 differs by %g", max_diff (got + 2 * n, tiny + 2 * n, n));
  /* anchor-decoder=tiny with the full VAE displaying is the full anchor */
  pipeline_chunks_with (embeds, "decoded", "anchor-decoder=tiny", "", got);
  fail_unless (max_diff (got + 2 * n, full + 2 * n, n) == 0, "tiny anchor "
      "with a full display: chunk 2 differs");

  g_unlink (embeds);
  g_rmdir (dir);
  g_free (embeds);
  g_free (dir);
  g_free (alone);
  g_free (tiny);
  g_free (full);
  g_free (got);
}

GST_END_TEST;

/* The tiny decoder and encoder keep the full VAE's frame counts and
 * timestamps through EOS (a partial last chunk included): the same
 * pipelines as test_eos_frame_counts with decoder-model, encoder-model or
 * both, and text-to-video with a tiny display. */
GST_START_TEST (test_tiny_frame_counts)
{
  /* 14: a partial second chunk, 4: a partial first chunk */
  static const gint counts[] = { 14, 4 };
  static const gchar *const launches[] = {
    "ditencode ! ditdecode decoder-model=taehv-tiny",
    "ditencode encoder-model=taehv-tiny ! ditdecode",
    "ditencode encoder-model=taehv-tiny ! ditdecode decoder-model=taehv-tiny",
  };
  for (guint l = 0; l < G_N_ELEMENTS (launches); l++)
    for (guint c = 0; c < G_N_ELEMENTS (counts); c++) {
      GstHarness *h = gst_harness_new_parse (launches[l]);
      GstClockTime first_pts = 1, end = 0;
      gst_harness_set_src_caps_str (h, RAW_CAPS);
      for (gint i = 0; i < counts[c]; i++)
        fail_unless_equals_int (gst_harness_push (h, raw_frame (i)),
            GST_FLOW_OK);
      fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
      fail_unless_equals_int (pull_until_eos (h, &first_pts, &end),
          counts[c]);
      fail_unless_equals_uint64 (first_pts, 0);
      fail_unless_equals_uint64 (end, (guint64) counts[c] * FRAME_NS);
      gst_harness_teardown (h);
    }
  {
    /* text-to-video: 9 + 12 + 12 frames at contiguous times */
    GstHarness *h = gst_harness_new_parse ("ditgenerate num-chunks=3 ! "
        "ditdecode decoder-model=taehv-tiny");
    guint n = 0;
    gst_harness_play (h);
    for (;;) {
      GstBuffer *b = gst_harness_try_pull (h);
      GstEvent *ev;
      if (b) {
        fail_unless_equals_uint64 (GST_BUFFER_PTS (b), (guint64) n * FRAME_NS);
        fail_unless_equals_uint64 (GST_BUFFER_DURATION (b), FRAME_NS);
        n++;
        gst_buffer_unref (b);
        continue;
      }
      ev = gst_harness_try_pull_event (h);
      if (ev && GST_EVENT_TYPE (ev) == GST_EVENT_EOS) {
        gst_event_unref (ev);
        break;
      }
      if (ev)
        gst_event_unref (ev);
      else
        g_usleep (10000);
    }
    fail_unless_equals_int (n, 33);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* One display decoder and one tiny autoencoder per session: mixing is an
 * error that names both; separate sessions may differ. */
GST_START_TEST (test_mixed_decoders_refused)
{
  gchar *msg;
  GstElement *p;
  GstBus *bus;
  GstMessage *m;

  msg = state_error ("ditgenerate num-chunks=1 ! tee name=t ! queue ! "
      "ditdecode decoder-model=taehv-tiny ! fakesink t. ! queue ! ditdecode ! "
      "fakesink");
  fail_unless (strstr (msg, "already displays with") != NULL
      && strstr (msg, "taehv-tiny") != NULL
      && strstr (msg, "full VAE") != NULL, "%s", msg);
  g_free (msg);
  msg = state_error ("ditencode encoder-model=taehv-tiny ! ditdecode "
      "decoder-model=taew2_1 ! fakesink");
  fail_unless (strstr (msg, "already holds the tiny autoencoder") != NULL,
      "%s", msg);
  g_free (msg);
  msg = state_error ("ditgenerate ! ditdecode decoder-model=wan ! fakesink");
  fail_unless (strstr (msg, "wan") != NULL, "%s", msg);
  g_free (msg);

  /* different sessions: allowed */
  p = gst_parse_launch ("ditgenerate num-chunks=1 ! tee name=t ! queue ! "
      "ditdecode decoder-model=taehv-tiny ! fakesink t. ! queue ! "
      "ditdecode session=other ! fakesink", NULL);
  bus = gst_element_get_bus (p);
  gst_element_set_state (p, GST_STATE_PLAYING);
  m = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  fail_unless (m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS,
      "two sessions with two display decoders did not reach EOS");
  gst_message_unref (m);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (p);
}

GST_END_TEST;

static Suite *
dit_suite (void)
{
  Suite *s = suite_create ("dit");
  TCase *tc = tcase_create ("elements");

  use_test_device ();
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_caps_reject);
  tcase_add_test (tc, test_t2v_source);
  tcase_add_test (tc, test_eos_ends_source);
  tcase_add_test (tc, test_decode_chunk_frames);
  tcase_add_test (tc, test_eos_frame_counts);
  tcase_add_test (tc, test_num_frames);
  tcase_add_test (tc, test_raw_formats);
  tcase_add_test (tc, test_v2v);
  tcase_add_test (tc, test_flush_epoch);
  tcase_add_test (tc, test_stale_dropped);
  tcase_add_test (tc, test_state_stress);
  tcase_add_test (tc, test_backpressure);
  tcase_add_test (tc, test_properties_playing);
  tcase_add_test (tc, test_latency);
  tcase_add_test (tc, test_errors);
  tcase_add_test (tc, test_tiny_frame_counts);
  tcase_add_test (tc, test_mixed_decoders_refused);
  /* compared bit for bit with a rollout on the CPU backend */
  if (!test_device) {
    tcase_add_test (tc, test_anchor_path);
    tcase_add_test (tc, test_anchor_path_tiny);
  }
  return s;
}

GST_CHECK_MAIN (dit);
