/* gst-check tests of ditgenerate's text prompts (tiny DiT, tiny umT5, the
 * shipped tiny SentencePiece model, CPU):
 *  - a prompt change while PLAYING gives a new prompt epoch in the meta
 *    within a few chunks, the cache epoch stays (text-to-video, auto), and
 *    no gap between chunks exceeds one chunk's own time by much (the
 *    encoding runs on its own thread);
 *  - prompt-transition-chunks=4: the chunks of the new epoch use blend
 *    weights 1/4, 2/4, 3/4, 1 (read on the streaming thread when each chunk
 *    is pushed, so the value is the one that chunk was made with);
 *  - prompt-resets-cache=always bumps the cache epoch;
 *  - the empty prompt and a 2,000-character prompt run; invalid UTF-8 at
 *    start is an error naming UTF-8, while PLAYING a warning that keeps the
 *    old prompt. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <string.h>

#include "dit_check_presets.h"
#include "gstditlatent.h"

typedef struct chunk_rec {
  guint64 prompt_epoch, cache_epoch;
  gdouble weight, chunk_ms;
  gint64 produced_ns;
} chunk_rec;

typedef struct probe_log {
  GMutex lock;
  GArray *recs;
} probe_log;

static GstPadProbeReturn
record_chunk (GstPad * pad, GstPadProbeInfo * info, gpointer user)
{
  probe_log *log = user;
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  GstDitLatentMeta *m = gst_buffer_get_dit_latent_meta (b);
  GstElement *el = GST_ELEMENT (gst_pad_get_parent (pad));
  chunk_rec r;

  g_object_get (el, "prompt-weight", &r.weight, NULL);
  gst_object_unref (el);
  r.prompt_epoch = m->prompt_epoch;
  r.cache_epoch = m->cache_epoch;
  r.chunk_ms = m->chunk_ms;
  r.produced_ns = m->produced_ns;
  g_mutex_lock (&log->lock);
  g_array_append_val (log->recs, r);
  g_mutex_unlock (&log->lock);
  return GST_PAD_PROBE_OK;
}

static GstHarness *
prompt_harness (probe_log * log, const gchar * prompt, guint transition)
{
  GstHarness *h = gst_harness_new_with_padnames ("ditgenerate", NULL, "src");
  GstPad *src = gst_element_get_static_pad (h->element, "src");

  g_mutex_init (&log->lock);
  log->recs = g_array_new (FALSE, FALSE, sizeof (chunk_rec));
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER, record_chunk, log, NULL);
  gst_object_unref (src);
  g_object_set (h->element, "anchor", 1, "prompt", prompt,
      "prompt-transition-chunks", transition, NULL);
  return h;
}

static void
pull_n (GstHarness * h, gint n)
{
  for (gint i = 0; i < n; i++)
    gst_buffer_unref (gst_harness_pull (h));
}

static guint
n_recs (probe_log * log)
{
  guint n;
  g_mutex_lock (&log->lock);
  n = log->recs->len;
  g_mutex_unlock (&log->lock);
  return n;
}

static chunk_rec
rec_at (probe_log * log, guint i)
{
  chunk_rec r;
  g_mutex_lock (&log->lock);
  r = g_array_index (log->recs, chunk_rec, i);
  g_mutex_unlock (&log->lock);
  return r;
}

/* Pull until a chunk of prompt epoch > `after` was pushed and `extra` more
 * chunks after it; returns the index of the first such chunk. */
static guint
pull_until_epoch (GstHarness * h, probe_log * log, guint64 after, gint extra)
{
  for (gint tries = 0; tries < 40; tries++) {
    gst_buffer_unref (gst_harness_pull (h));
    guint n = n_recs (log);
    for (guint i = 0; i < n; i++) {
      if (rec_at (log, i).prompt_epoch > after) {
        if ((gint) (n - 1 - i) >= extra)
          return i;
        break;
      }
    }
  }
  fail ("the new prompt never took effect");
  return 0;
}

GST_START_TEST (test_prompt_change_playing)
{
  probe_log log;
  GstHarness *h = prompt_harness (&log, "a koi pond at dawn, drone shot", 0);
  chunk_rec start;
  guint i0;

  gst_harness_play (h);
  pull_n (h, 1);
  start = rec_at (&log, 0);
  g_object_set (h->element, "prompt", "a red fox running through snow", NULL);
  i0 = pull_until_epoch (h, &log, start.prompt_epoch, 1);
  fail_unless (i0 < 6, "new prompt took %u chunks", i0);
  for (guint i = 1; i < n_recs (&log); i++) {
    chunk_rec a = rec_at (&log, i - 1), b = rec_at (&log, i);
    gdouble gap_ms = (b.produced_ns - a.produced_ns) / 1e6;
    /* the chunk's own generator time plus its anchor/push overhead; an
     * encoder on the streaming thread would add a whole encode here */
    fail_unless (gap_ms < 2.0 * b.chunk_ms + 100.0, "chunk %u: %.1f ms after "
        "the previous one, the chunk took %.1f ms", i, gap_ms, b.chunk_ms);
    fail_unless_equals_uint64 (b.cache_epoch, start.cache_epoch);
  }
  fail_unless_equals_uint64 (rec_at (&log, i0).prompt_epoch,
      start.prompt_epoch + 1);
  fail_unless (rec_at (&log, i0).weight == 1.0);
  gst_harness_teardown (h);
  g_array_free (log.recs, TRUE);
  g_mutex_clear (&log.lock);
}

GST_END_TEST;

GST_START_TEST (test_prompt_transition)
{
  probe_log log;
  GstHarness *h = prompt_harness (&log, "a koi pond at dawn", 4);
  chunk_rec start;
  guint i0;
  const gdouble want[5] = { 0.25, 0.5, 0.75, 1.0, 1.0 };

  gst_harness_play (h);
  pull_n (h, 1);
  start = rec_at (&log, 0);
  g_object_set (h->element, "prompt", "a lighthouse:0.7|a storm:0.3", NULL);
  i0 = pull_until_epoch (h, &log, start.prompt_epoch, 4);
  for (guint i = 0; i < i0; i++)
    fail_unless (rec_at (&log, i).weight == 1.0, "chunk %u before the change "
        "has weight %g", i, rec_at (&log, i).weight);
  for (gint k = 0; k < 5; k++) {
    chunk_rec r = rec_at (&log, i0 + k);
    fail_unless (fabs (r.weight - want[k]) < 1e-6, "transition chunk %d: "
        "weight %g, expected %g", k + 1, r.weight, want[k]);
    fail_unless_equals_uint64 (r.prompt_epoch, start.prompt_epoch + 1);
    fail_unless_equals_uint64 (r.cache_epoch, start.cache_epoch);
  }
  gst_harness_teardown (h);
  g_array_free (log.recs, TRUE);
  g_mutex_clear (&log.lock);
}

GST_END_TEST;

GST_START_TEST (test_prompt_resets_cache)
{
  probe_log log;
  GstHarness *h = prompt_harness (&log, "a koi pond", 0);
  chunk_rec start;
  guint i0;

  g_object_set (h->element, "prompt-resets-cache", 1 /* always */ , NULL);
  gst_harness_play (h);
  pull_n (h, 1);
  start = rec_at (&log, 0);
  g_object_set (h->element, "prompt", "a desert caravan", NULL);
  i0 = pull_until_epoch (h, &log, start.prompt_epoch, 0);
  fail_unless (rec_at (&log, i0).cache_epoch > start.cache_epoch);
  gst_harness_teardown (h);
  g_array_free (log.recs, TRUE);
  g_mutex_clear (&log.lock);
}

GST_END_TEST;

GST_START_TEST (test_prompt_edge_cases)
{
  gchar *big = g_malloc (2001);
  probe_log log;
  GstHarness *h;

  for (gint i = 0; i < 2000; i++)
    big[i] = "a red fox, "[i % 11];
  big[2000] = '\0';
  h = prompt_harness (&log, "", 0);
  gst_harness_play (h);
  pull_n (h, 2);
  g_object_set (h->element, "prompt", big, NULL);
  pull_until_epoch (h, &log, rec_at (&log, 0).prompt_epoch, 1);
  gst_harness_teardown (h);
  g_array_free (log.recs, TRUE);
  g_mutex_clear (&log.lock);
  g_free (big);
}

GST_END_TEST;

/* Run `el` (prompt already set) in a pipeline until ERROR or EOS. */
static gchar *
run_for_error (GstElement * pipe)
{
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *m;
  gchar *text = NULL;

  gst_element_set_state (pipe, GST_STATE_PLAYING);
  m = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  if (m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *dbg = NULL;
    gst_message_parse_error (m, &err, &dbg);
    text = g_strdup_printf ("%s %s", err->message, dbg ? dbg : "");
    g_error_free (err);
    g_free (dbg);
  }
  if (m)
    gst_message_unref (m);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  return text;
}

GST_START_TEST (test_prompt_invalid_utf8)
{
  GstElement *pipe = gst_parse_launch ("ditgenerate name=g num-chunks=1 "
      "anchor=latent ! fakesink", NULL);
  GstElement *g = gst_bin_get_by_name (GST_BIN (pipe), "g");
  gchar *msg;
  probe_log log;
  GstHarness *h;
  GstBus *bus;
  GstMessage *w;

  /* at start: an error that says what is wrong */
  g_object_set (g, "prompt", "a koi \xff pond", NULL);
  msg = run_for_error (pipe);
  fail_unless (msg && strstr (msg, "UTF-8"), "error: %s", msg ? msg : "(none)");
  g_free (msg);
  gst_object_unref (g);
  gst_object_unref (pipe);

  /* while playing: a warning, the old prompt stays */
  h = prompt_harness (&log, "a koi pond", 0);
  bus = gst_bus_new ();
  gst_element_set_bus (h->element, bus);
  gst_harness_play (h);
  pull_n (h, 1);
  g_object_set (h->element, "prompt", "bad \xe6\x97", NULL);
  w = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND, GST_MESSAGE_WARNING);
  fail_unless (w != NULL, "no warning for an invalid prompt");
  gst_message_unref (w);
  pull_n (h, 2);
  for (guint i = 0; i < n_recs (&log); i++)
    fail_unless_equals_uint64 (rec_at (&log, i).prompt_epoch,
        rec_at (&log, 0).prompt_epoch);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  g_array_free (log.recs, TRUE);
  g_mutex_clear (&log.lock);
}

GST_END_TEST;

/* A misspelled text-model preset lists the presets (it used to say
 * "umt5: cannot open"). */
GST_START_TEST (test_text_model_misspelled)
{
  GstElement *pipe = gst_parse_launch ("ditgenerate num-chunks=1 "
      "text-model=umt5 prompt=\"a koi pond\" ! fakesink", NULL);
  gchar *msg = run_for_error (pipe);

  fail_unless (msg && strstr (msg, "'umt5'") && strstr (msg,
          "umt5-xxl, tiny"), "error: %s", msg ? msg : "(none)");
  g_free (msg);
  gst_object_unref (pipe);
}

GST_END_TEST;

static Suite *
prompt_suite (void)
{
  Suite *s = suite_create ("ditprompt");
  TCase *tc = tcase_create ("prompt");

  dit_check_use_presets (NULL);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_prompt_change_playing);
  tcase_add_test (tc, test_prompt_transition);
  tcase_add_test (tc, test_prompt_resets_cache);
  tcase_add_test (tc, test_prompt_edge_cases);
  tcase_add_test (tc, test_prompt_invalid_utf8);
  tcase_add_test (tc, test_text_model_misspelled);
  return s;
}

GST_CHECK_MAIN (prompt);
