/* gst-check tests of ditgenerate on a generator mesh: two dit-worker
 * processes on the CPU comm, each holding a tensor-parallel half of the
 * tiny DiT (synthetic weights), against the in-process generator.
 *
 *  - equal: 3 text-to-video chunks with mesh-devices=0,1 equal the same
 *    pipeline without a mesh within rel L2 <= 1e-5 per chunk (the TP sums
 *    add the same products in another order; f32 rounding only), anchor
 *    path included; the mesh run loads no DiT weights in this process (no
 *    load-dit PROGRESS message, the in-process run posts one); then the
 *    same 3 chunks with mesh-parallel=sp (sequence parallelism: each
 *    worker holds all weights and half of each chunk's tokens) against the
 *    same reference: same limit, chunk indices, timestamps and durations;
 *  - v2v: two input latent chunks (video-to-video, the second after the
 *    element idled for over a second) equal the in-process result within
 *    the same limit;
 *  - kill: SIGKILL of rank 1 while PLAYING posts an ERROR naming rank 1
 *    within mesh-timeout-ms, the element goes to NULL and no worker process
 *    is left (kill (pid, 0) and waitpid); the same with video input while
 *    the element idles between chunks (the mesh heartbeat finds it);
 *  - settings: mesh-devices=0,1,2 (TP 3), a TP degree the model's heads do
 *    not divide, mesh-listen without mesh-ranks, a bad device list, a
 *    missing worker, an unknown mesh-parallel, SP 4 of 2 heads and a
 *    hybrid of 2 ranks fail the start with messages that say so;
 *  - prompt: a text prompt change while PLAYING (prompt-resets-cache=
 *    always) gives chunk 0 of a new cache epoch with the next prompt epoch;
 *    that chunk equals the first chunk of an in-process run started with
 *    the new prompt (rel L2 <= 1e-5), and chunks keep flowing;
 *  - eos: EOS sent to the pipeline ends a text-to-video mesh stream (EOS on
 *    the bus, at most the chunks in flight after it); no worker is left;
 *  - colocated: mesh-colocate=on (mesh rank 0 on a thread of the element's
 *    process, its data an in-process hand-off, rank 1's relayed on the mesh
 *    comm): the 3 chunks with TP 2 and SP 2 against the in-process run
 *    (same limit, chunk indices, timestamps and durations), rank 0 listed
 *    with pid 0; then rank 1 SIGKILLed mid-stream: an ERROR naming rank 1
 *    within mesh-timeout-ms, the element to NULL (the thread joined, no
 *    hang) and no worker left.
 *
 * The dit-worker executable comes from $GST_DIT_WORKER (tests/check/
 * meson.build sets it; the element reads the same variable); without it
 * the test is skipped (77).
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "dit_check_presets.h"
#include "gstditlatent.h"

#define CHUNKS 3
#define CHUNK_FLOATS (16 * 3 * 8 * 8)   /* default caps: 8x8 latents, 3 frames */
#define REL_L2_MAX 1e-5

typedef struct chunk_out
{
  gfloat x[CHUNK_FLOATS];
  gint64 chunk_index;
  guint64 cache_epoch, prompt_epoch;
  GstClockTime pts, duration;
} chunk_out;

/* mesh-parallel of the mesh runs (NULL = the element's default, tp) */
static const gchar *mesh_parallel;
/* mesh-colocate of the mesh runs (NULL = the element's default, auto: off
 * on these CPU meshes) */
static const gchar *mesh_colocate;

static void
take_chunk (GstBuffer * b, chunk_out * c)
{
  GstMapInfo map;
  GstDitLatentMeta *m = gst_buffer_get_dit_latent_meta (b);

  fail_unless (m != NULL, "chunk without GstDitLatentMeta");
  fail_unless (gst_buffer_map (b, &map, GST_MAP_READ));
  fail_unless_equals_uint64 (map.size, sizeof c->x);
  memcpy (c->x, map.data, sizeof c->x);
  gst_buffer_unmap (b, &map);
  c->chunk_index = m->chunk_index;
  c->pts = GST_BUFFER_PTS (b);
  c->duration = GST_BUFFER_DURATION (b);
  c->cache_epoch = m->cache_epoch;
  c->prompt_epoch = m->prompt_epoch;
  gst_buffer_unref (b);
}

/* ||a - b|| / ||b||, and max |b| so that an all-zero output cannot pass. */
static gdouble
rel_l2 (const gfloat * a, const gfloat * b, gdouble * max_ref)
{
  gdouble num = 0, den = 0;

  *max_ref = 0;
  for (gint i = 0; i < CHUNK_FLOATS; i++) {
    gdouble d = (gdouble) a[i] - b[i];
    num += d * d;
    den += (gdouble) b[i] * b[i];
    *max_ref = MAX (*max_ref, fabs (b[i]));
  }
  return den > 0 ? sqrt (num / den) : INFINITY;
}

/* A source harness; the element starts at once, so READY-time properties
 * are set before (the rest as "name", value pairs, NULL-terminated). */
static GstHarness *
generator_harness (gboolean mesh, GstBus * bus, const gchar * first_prop, ...)
{
  GstElement *el = gst_element_factory_make ("ditgenerate", NULL);
  GstHarness *h;
  va_list ap;

  fail_unless (el != NULL);
  if (bus)
    gst_element_set_bus (el, bus);
  if (mesh)
    g_object_set (el, "mesh-devices", "0,1", "mesh-backend", "cpu",
        "mesh-parallel", mesh_parallel, "mesh-colocate", mesh_colocate, NULL);
  va_start (ap, first_prop);
  if (first_prop)
    g_object_set_valist (G_OBJECT (el), first_prop, ap);
  va_end (ap);
  h = gst_harness_new_with_element (el, NULL, "src");
  gst_object_unref (el);
  return h;
}

static void
harness_done (GstHarness * h, GstBus * bus)
{
  gst_harness_teardown (h);
  if (bus) {
    /* queued messages hold the element, which holds the bus */
    gst_bus_set_flushing (bus, TRUE);
    gst_object_unref (bus);
  }
}

/* Whether a PROGRESS message with `code` was posted. */
static gboolean
saw_progress (GstBus * bus, const gchar * code)
{
  GstMessage *m;
  gboolean seen = FALSE;

  while ((m = gst_bus_pop_filtered (bus, GST_MESSAGE_PROGRESS))) {
    GstProgressType type;
    gchar *c = NULL, *text = NULL;
    gst_message_parse_progress (m, &type, &c, &text);
    if (g_strcmp0 (c, code) == 0)
      seen = TRUE;
    g_free (c);
    g_free (text);
    gst_message_unref (m);
  }
  return seen;
}

/* 3 text-to-video chunks (decoded anchor path, tiny model and VAE). */
static void
run_t2v (gboolean mesh, chunk_out * out, gboolean * loaded_dit)
{
  GstBus *bus = gst_bus_new ();
  GstHarness *h = generator_harness (mesh, bus, "num-chunks", CHUNKS, NULL);

  for (gint k = 0; k < CHUNKS; k++) {
    take_chunk (gst_harness_pull (h), &out[k]);
    fail_unless_equals_int64 (out[k].chunk_index, k);
  }
  *loaded_dit = saw_progress (bus, "load-dit");
  harness_done (h, bus);
}

GST_START_TEST (test_mesh_equals_single_device)
{
  static chunk_out ref[CHUNKS], mesh[CHUNKS];
  gboolean ref_loaded, mesh_loaded;

  run_t2v (FALSE, ref, &ref_loaded);
  run_t2v (TRUE, mesh, &mesh_loaded);
  fail_unless (ref_loaded, "the in-process run posted no load-dit progress");
  fail_if (mesh_loaded, "the mesh run loaded the DiT weights in Stage 0");
  for (gint k = 0; k < CHUNKS; k++) {
    gdouble max_ref, e = rel_l2 (mesh[k].x, ref[k].x, &max_ref);
    g_print ("mesh TP 2 vs single device, chunk %d: rel L2 %.3g (limit %.0e), "
        "max |ref| %.3g\n", k, e, REL_L2_MAX, max_ref);
    fail_unless (max_ref > 0.1, "chunk %d: reference output is ~0", k);
    fail_unless (e <= REL_L2_MAX, "chunk %d: rel L2 %.3g > %.0e", k, e,
        REL_L2_MAX);
  }
  /* the chunks differ from each other: the comparison is not trivial */
  {
    gdouble max_ref;
    fail_unless (rel_l2 (ref[1].x, ref[0].x, &max_ref) > 1e-2);
  }

  /* the same with sequence parallelism, against the same reference */
  mesh_parallel = "sp";
  run_t2v (TRUE, mesh, &mesh_loaded);
  mesh_parallel = NULL;
  fail_if (mesh_loaded, "the SP mesh run loaded the DiT weights in Stage 0");
  for (gint k = 0; k < CHUNKS; k++) {
    gdouble max_ref, e = rel_l2 (mesh[k].x, ref[k].x, &max_ref);
    g_print ("mesh SP 2 vs single device, chunk %d: rel L2 %.3g (limit %.0e), "
        "pts %" GST_TIME_FORMAT "\n", k, e, REL_L2_MAX,
        GST_TIME_ARGS (mesh[k].pts));
    fail_unless (e <= REL_L2_MAX, "SP chunk %d: rel L2 %.3g > %.0e", k, e,
        REL_L2_MAX);
    fail_unless_equals_int64 (mesh[k].chunk_index, ref[k].chunk_index);
    fail_unless (GST_CLOCK_TIME_IS_VALID (ref[k].pts));
    fail_unless_equals_uint64 (mesh[k].pts, ref[k].pts);
    fail_unless_equals_uint64 (mesh[k].duration, ref[k].duration);
  }
}

GST_END_TEST;

#define LATENT_CAPS "video/x-dit-latent, channels=16, width=8, height=8, " \
  "frames=3, dtype=f32, framerate=16/1"

static GstBuffer *
latent_chunk (gint64 index)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, CHUNK_FLOATS * 4, NULL);
  GstMapInfo map;
  gfloat *f;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  f = (gfloat *) map.data;
  for (gsize i = 0; i < CHUNK_FLOATS; i++)
    f[i] = (gfloat) (((i * 2654435761u + index * 7) % 1000) / 500.0 - 1.0);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = index * 12 * GST_SECOND / 16;
  GST_BUFFER_DURATION (buf) = 12 * GST_SECOND / 16;
  return buf;
}

static void
run_v2v (gboolean mesh, chunk_out * out)
{
  GstElement *el = gst_element_factory_make ("ditgenerate", NULL);
  GstHarness *h;

  g_object_set (el, "strength", 0.6, NULL);
  if (mesh)
    g_object_set (el, "mesh-devices", "0,1", "mesh-backend", "cpu", NULL);
  h = gst_harness_new_with_element (el, "sink", "src");
  gst_harness_set_src_caps_str (h, LATENT_CAPS);
  for (gint k = 0; k < 2; k++) {
    if (k > 0)
      g_usleep (1200 * 1000);   /* idle past the mesh's idle tick */
    fail_unless_equals_int (gst_harness_push (h, latent_chunk (k)),
        GST_FLOW_OK);
    take_chunk (gst_harness_pull (h), &out[k]);
    fail_unless_equals_int64 (out[k].chunk_index, k);
  }
  gst_harness_teardown (h);
  gst_object_unref (el);
}

GST_START_TEST (test_mesh_v2v)
{
  static chunk_out ref[2], mesh[2];

  run_v2v (FALSE, ref);
  run_v2v (TRUE, mesh);
  for (gint k = 0; k < 2; k++) {
    gdouble max_ref, e = rel_l2 (mesh[k].x, ref[k].x, &max_ref);
    g_print ("mesh TP 2 vs single device, v2v chunk %d: rel L2 %.3g (limit "
        "%.0e)\n", k, e, REL_L2_MAX);
    fail_unless (max_ref > 0.1, "chunk %d: reference output is ~0", k);
    fail_unless (e <= REL_L2_MAX, "v2v chunk %d: rel L2 %.3g", k, e);
  }
}

GST_END_TEST;

static gint
worker_pids (GstElement * el, gint * pids, gint max)
{
  GValue v = G_VALUE_INIT;
  gint n;

  g_value_init (&v, GST_TYPE_ARRAY);
  g_object_get_property (G_OBJECT (el), "mesh-worker-pids", &v);
  n = MIN ((gint) gst_value_array_get_size (&v), max);
  for (gint i = 0; i < n; i++)
    pids[i] = g_value_get_int (gst_value_array_get_value (&v, i));
  g_value_unset (&v);
  return n;
}

static void
assert_no_children (const gint * pids, gint n)
{
  gint st;
  pid_t p;

  for (gint i = 0; i < n; i++)
    fail_unless (pids[i] == 0 || (kill (pids[i], 0) == -1 && errno == ESRCH),
        "worker pid %d still exists", pids[i]);
  p = waitpid (-1, &st, WNOHANG);
  fail_unless (p == -1 && errno == ECHILD, "a child process is left "
      "(waitpid -> %d)", (gint) p);
}

/* Kill rank 1 of the running mesh of h's element; an ERROR naming rank 1
 * must follow within `limit_ms`; then to NULL and no worker left. */
static void
kill_rank1_and_check (GstHarness * h, GstBus * bus, gint limit_ms,
    const gchar * what)
{
  GstMessage *m;
  GError *err = NULL;
  gchar *dbg = NULL;
  gint pids[8], n;
  gint64 t0;
  gdouble dt_ms;

  n = worker_pids (h->element, pids, 8);
  fail_unless_equals_int (n, 2);
  for (gint i = 0; i < n; i++) {
    if (i == 0 && mesh_colocate) {
      fail_unless_equals_int (pids[0], 0);      /* a thread, no process */
    } else {
      fail_unless (pids[i] > 0 && kill (pids[i], 0) == 0, "rank %d pid %d",
          i, pids[i]);
    }
  }

  t0 = g_get_monotonic_time ();
  fail_unless (kill (pids[1], SIGKILL) == 0);
  m = gst_bus_timed_pop_filtered (bus, 4 * limit_ms * GST_MSECOND,
      GST_MESSAGE_ERROR);
  dt_ms = (g_get_monotonic_time () - t0) / 1000.0;
  fail_unless (m != NULL, "%s: no ERROR message after killing rank 1", what);
  gst_message_parse_error (m, &err, &dbg);
  g_print ("%s: worker rank 1 killed, ERROR after %.0f ms (limit %d ms): "
      "%s\n", what, dt_ms, limit_ms, err->message);
  fail_unless (strstr (err->message, "rank 1") != NULL,
      "the error does not name rank 1: %s", err->message);
  fail_unless (dt_ms <= limit_ms, "error after %.0f ms", dt_ms);
  g_error_free (err);
  g_free (dbg);
  gst_message_unref (m);

  harness_done (h, bus);        /* to NULL: reaps what is left */
  assert_no_children (pids, n);
}

GST_START_TEST (test_mesh_worker_killed)
{
  const gint timeout_ms = 5000;
  GstBus *bus = gst_bus_new ();
  GstHarness *h = generator_harness (TRUE, bus, "mesh-timeout-ms", timeout_ms,
      NULL);
  chunk_out c;

  take_chunk (gst_harness_pull (h), &c);
  kill_rank1_and_check (h, bus, timeout_ms, "text-to-video, mid-stream");
}

GST_END_TEST;

/* mesh-colocate=on: the same chunks as in process with TP 2 and SP 2, then
 * a spawned rank killed while rank 0 runs in the element's process. */
GST_START_TEST (test_mesh_colocated)
{
  static chunk_out ref[CHUNKS], mesh[CHUNKS];
  static const gchar *const layouts[2] = { "tp", "sp" };
  const gint timeout_ms = 5000;
  gboolean ref_loaded, mesh_loaded;
  GstBus *bus;
  GstHarness *h;
  chunk_out c;

  run_t2v (FALSE, ref, &ref_loaded);
  mesh_colocate = "on";
  for (gint l = 0; l < 2; l++) {
    mesh_parallel = layouts[l];
    run_t2v (TRUE, mesh, &mesh_loaded);
    fail_if (mesh_loaded, "the co-located run loaded the DiT in Stage 0's "
        "element (rank 0 loads its own shard)");
    for (gint k = 0; k < CHUNKS; k++) {
      gdouble max_ref, e = rel_l2 (mesh[k].x, ref[k].x, &max_ref);
      g_print ("co-located mesh %s 2 vs single device, chunk %d: rel L2 %.3g "
          "(limit %.0e), pts %" GST_TIME_FORMAT "\n", layouts[l], k, e,
          REL_L2_MAX, GST_TIME_ARGS (mesh[k].pts));
      fail_unless (max_ref > 0.1, "chunk %d: reference output is ~0", k);
      fail_unless (e <= REL_L2_MAX, "%s chunk %d: rel L2 %.3g > %.0e",
          layouts[l], k, e, REL_L2_MAX);
      fail_unless_equals_int64 (mesh[k].chunk_index, ref[k].chunk_index);
      fail_unless (GST_CLOCK_TIME_IS_VALID (ref[k].pts));
      fail_unless_equals_uint64 (mesh[k].pts, ref[k].pts);
      fail_unless_equals_uint64 (mesh[k].duration, ref[k].duration);
    }
  }
  mesh_parallel = NULL;

  bus = gst_bus_new ();
  h = generator_harness (TRUE, bus, "mesh-timeout-ms", timeout_ms, NULL);
  take_chunk (gst_harness_pull (h), &c);
  kill_rank1_and_check (h, bus, timeout_ms, "co-located rank 0, mid-stream");
  mesh_colocate = NULL;
}

GST_END_TEST;

/* Video input, nothing queued: the element idles and the mesh heartbeat
 * (1 s without an envelope) finds the dead worker before any chunk. */
GST_START_TEST (test_mesh_worker_killed_idle)
{
  const gint timeout_ms = 5000;
  GstElement *el = gst_element_factory_make ("ditgenerate", NULL);
  GstBus *bus = gst_bus_new ();
  GstHarness *h;
  chunk_out c;

  gst_element_set_bus (el, bus);
  g_object_set (el, "mesh-devices", "0,1", "mesh-backend", "cpu",
      "mesh-timeout-ms", timeout_ms, NULL);
  h = gst_harness_new_with_element (el, "sink", "src");
  gst_object_unref (el);
  gst_harness_set_src_caps_str (h, LATENT_CAPS);
  fail_unless_equals_int (gst_harness_push (h, latent_chunk (0)), GST_FLOW_OK);
  take_chunk (gst_harness_pull (h), &c);
  kill_rank1_and_check (h, bus, timeout_ms, "video-to-video, idle");
}

GST_END_TEST;

/* EOS sent to a pipeline whose text-to-video source runs on a mesh (what
 * gst-launch-1.0 -e does on Ctrl-C) ends the stream: EOS on the bus after at
 * most the chunks in flight, and the workers are reaped at NULL.  Before
 * ditgenerate handled send_event, no EOS came. */
GST_START_TEST (test_mesh_eos)
{
  GstElement *p = gst_parse_launch ("ditgenerate name=gen mesh-devices=0,1 "
      "mesh-backend=cpu ! fakesink sync=false", NULL);
  GstElement *gen = gst_bin_get_by_name (GST_BIN (p), "gen");
  GstBus *bus = gst_element_get_bus (p);
  gint64 deadline = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;
  guint64 before = 0, after;
  gint pids[8], n;
  GstMessage *m;

  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING)
      != GST_STATE_CHANGE_FAILURE);
  while (before < 1 && g_get_monotonic_time () < deadline) {
    g_usleep (5000);
    g_object_get (gen, "chunks", &before, NULL);
  }
  fail_unless (before >= 1, "no chunk from the mesh");
  n = worker_pids (gen, pids, 8);
  fail_unless_equals_int (n, 2);
  fail_unless (gst_element_send_event (p, gst_event_new_eos ()));
  m = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (m != NULL, "no EOS after send_event (EOS)");
  fail_unless_equals_string (GST_MESSAGE_TYPE_NAME (m), "eos");
  gst_message_unref (m);
  g_object_get (gen, "chunks", &after, NULL);
  fail_unless (after <= before + 2, "%" G_GUINT64_FORMAT " chunks after EOS",
      after - before);
  gst_element_set_state (p, GST_STATE_NULL);
  assert_no_children (pids, n);
  gst_object_unref (bus);
  gst_object_unref (gen);
  gst_object_unref (p);
}

GST_END_TEST;

/* Start a ditgenerate with `props` and return the error text (or NULL). */
static gchar *
start_error (const gchar * devices, const gchar * listen, const gchar * worker)
{
  GstElement *el = gst_element_factory_make ("ditgenerate", NULL);
  GstBus *bus = gst_bus_new ();
  GstStateChangeReturn ret;
  GstMessage *m;
  gchar *text = NULL;

  gst_element_set_bus (el, bus);
  g_object_set (el, "mesh-devices", devices, "mesh-listen", listen,
      "worker-path", worker, "mesh-backend", "cpu", "mesh-parallel",
      mesh_parallel, NULL);
  ret = gst_element_set_state (el, GST_STATE_READY);
  m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (m) {
    GError *err = NULL;
    gst_message_parse_error (m, &err, NULL);
    text = g_strdup (err->message);
    g_error_free (err);
    gst_message_unref (m);
  }
  fail_unless ((ret == GST_STATE_CHANGE_FAILURE) == (text != NULL),
      "state change %d, error '%s'", ret, text ? text : "(none)");
  gst_element_set_state (el, GST_STATE_NULL);
  gst_element_set_bus (el, NULL);
  gst_object_unref (bus);
  gst_object_unref (el);
  return text;
}

static void
expect_error (const gchar * devices, const gchar * listen, const gchar * worker,
    const gchar * want)
{
  gchar *msg = start_error (devices, listen, worker);

  g_print ("mesh-devices '%s' mesh-listen '%s': %s\n", devices ? devices : "",
      listen ? listen : "", msg ? msg : "(no error)");
  fail_unless (msg && strstr (msg, want), "expected an error with '%s', got "
      "'%s'", want, msg ? msg : "(none)");
  g_free (msg);
}

GST_START_TEST (test_mesh_settings)
{
  gchar *msg;

  expect_error ("0,1,2", NULL, NULL, "must be 1, 2, 4 or 8");
  /* the tiny model has 2 heads: TP 4 cannot split them */
  expect_error ("0,1,2,3", NULL, NULL, "divide its 2 heads");
  expect_error ("0,x", NULL, NULL, "mesh-devices '0,x'");
  expect_error (NULL, "127.0.0.1:29999", NULL, "needs mesh-ranks");
  expect_error ("0,1", NULL, "/nonexistent/dit-worker", "dit-worker");
  /* layouts: an unknown name; SP 4 of the tiny model's 2 heads; hybrid
   * of 2 ranks (no 2 groups of 2) */
  mesh_parallel = "pp";
  expect_error ("0,1", NULL, NULL, "expected tp");
  mesh_parallel = "sp";
  expect_error ("0,1,2,3", NULL, NULL, "divide its 2 heads");
  mesh_parallel = "hybrid";
  expect_error ("0,1", NULL, NULL, "at least 2 groups");
  mesh_parallel = NULL;
  /* a valid mesh is only started with the stream: READY succeeds */
  msg = start_error ("0,1", NULL, NULL);
  fail_unless (msg == NULL, "mesh-devices=0,1: %s", msg);
}

GST_END_TEST;

static void
pull_first (const gchar * prompt, gboolean mesh, chunk_out * c)
{
  GstHarness *h = generator_harness (mesh, NULL, "prompt", prompt, NULL);

  take_chunk (gst_harness_pull (h), c);
  harness_done (h, NULL);
}

GST_START_TEST (test_mesh_prompt_change)
{
  const gchar *new_prompt = "a red fox running through snow";
  GstHarness *h = generator_harness (TRUE, NULL, "prompt",
      "a koi pond at dawn, drone shot", "prompt-resets-cache", 1 /* always */ ,
      NULL);
  static chunk_out before, c, next, ref;
  gboolean switched = FALSE;
  gdouble e, max_ref;

  take_chunk (gst_harness_pull (h), &before);
  g_object_set (h->element, "prompt", new_prompt, NULL);
  for (gint tries = 0; tries < 40 && !switched; tries++) {
    take_chunk (gst_harness_pull (h), &c);
    switched = c.prompt_epoch > before.prompt_epoch;
  }
  fail_unless (switched, "the new prompt never took effect on the mesh");
  fail_unless_equals_uint64 (c.prompt_epoch, before.prompt_epoch + 1);
  fail_unless (c.cache_epoch > before.cache_epoch, "cache epoch %"
      G_GUINT64_FORMAT " after the switch, %" G_GUINT64_FORMAT " before",
      c.cache_epoch, before.cache_epoch);
  fail_unless_equals_int64 (c.chunk_index, 0);
  take_chunk (gst_harness_pull (h), &next);
  fail_unless_equals_int64 (next.chunk_index, 1);
  fail_unless_equals_uint64 (next.cache_epoch, c.cache_epoch);
  harness_done (h, NULL);

  /* Chunk 0 depends on the seed and the prompt only. */
  pull_first (new_prompt, FALSE, &ref);
  e = rel_l2 (c.x, ref.x, &max_ref);
  g_print ("mesh after the prompt switch vs in-process with that prompt: rel "
      "L2 %.3g (limit %.0e)\n", e, REL_L2_MAX);
  fail_unless (max_ref > 0.1);
  fail_unless (e <= REL_L2_MAX, "rel L2 %.3g", e);
  fail_unless (rel_l2 (before.x, ref.x, &max_ref) > 1e-3,
      "the two prompts give the same chunk 0");
}

GST_END_TEST;

/* `colocated` alone is its own test program run (mesh-element-colocated):
 * it runs the DiT inside the checked process, which under valgrind costs
 * minutes, so that run is left out of the valgrind pass ('slow'). */
static Suite *
mesh_element_suite (gboolean colocated)
{
  Suite *s = suite_create ("ditmesh");
  TCase *tc = tcase_create ("mesh");

  dit_check_use_presets (NULL);
  suite_add_tcase (s, tc);
  if (colocated) {
    tcase_add_test (tc, test_mesh_colocated);
    return s;
  }
  tcase_add_test (tc, test_mesh_equals_single_device);
  tcase_add_test (tc, test_mesh_v2v);
  tcase_add_test (tc, test_mesh_worker_killed);
  tcase_add_test (tc, test_mesh_worker_killed_idle);
  tcase_add_test (tc, test_mesh_eos);
  tcase_add_test (tc, test_mesh_settings);
  tcase_add_test (tc, test_mesh_prompt_change);
  return s;
}

int
main (int argc, char **argv)
{
  const gchar *w = g_getenv ("GST_DIT_WORKER");

  if (!w || !g_file_test (w, G_FILE_TEST_IS_EXECUTABLE)) {
    g_printerr ("GST_DIT_WORKER does not name the dit-worker executable: "
        "skipped\n");
    return 77;
  }
  gst_check_init (&argc, &argv);
  gboolean colocated = argc > 1 && g_str_equal (argv[1], "colocated");
  if (argc > 1 && !colocated) {
    g_printerr ("usage: test-mesh-element [colocated]\n");
    return 2;
  }
  return gst_check_run_suite (mesh_element_suite (colocated), "ditmesh",
      __FILE__);
}
