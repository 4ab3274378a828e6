/* gst-check tests of ditgenerate's lora and lora-mode properties (tiny DiT,
 * CPU, text-to-video, 4x4 latents, anchor=latent so that no VAE runs):
 *  - strength 0 is bit-identical to no LoRA;
 *  - a lora list set while PLAYING (from a probe on the streaming thread,
 *    after chunk 1 was pushed) leaves chunks 0 and 1 as without it and
 *    changes chunk 2; a strength change after chunk 2 leaves chunks 0..2 as
 *    with the first strength and changes chunk 3;
 *  - live equals merge within f32 rounding;
 *  - a file that cannot be read, set while PLAYING, posts a warning naming
 *    it and the previous list stays: every chunk equals a run that never
 *    changed; at start the same file is an error naming it.
 * The LoRAs are "@synthetic:R" items (model/dit_lora.h: a seeded rank-R
 * LoRA on every linear), which go through the same list, runner and merge
 * as files. */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "dit_check_presets.h"

#define CHUNKS 4

typedef struct change {
  guint after;                  /* set once chunk `after` was pushed */
  const gchar *lora;
} change;

typedef struct run_log {
  GByteArray *chunk[CHUNKS];
  guint n;
  const change *changes;
  guint n_changes;
} run_log;

static GstPadProbeReturn
record_chunk (GstPad * pad, GstPadProbeInfo * info, gpointer user)
{
  run_log *log = user;
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
  GstMapInfo map;

  if (log->n < CHUNKS && gst_buffer_map (b, &map, GST_MAP_READ)) {
    log->chunk[log->n] = g_byte_array_new ();
    g_byte_array_append (log->chunk[log->n], map.data, map.size);
    gst_buffer_unmap (b, &map);
  }
  /* the streaming thread is between chunks here: the next chunk is the
   * first one the change can reach */
  for (guint i = 0; i < log->n_changes; i++)
    if (log->changes[i].after == log->n) {
      GstElement *el = GST_ELEMENT (gst_pad_get_parent (pad));
      g_object_set (el, "lora", log->changes[i].lora, NULL);
      gst_object_unref (el);
    }
  log->n++;
  return GST_PAD_PROBE_OK;
}

/* Runs CHUNKS chunks of text-to-video with `lora` at start, `mode`, and
 * the changes; returns the first WARNING's text (or NULL) in *warning and
 * fails on an ERROR. */
static void
run (const gchar * lora, const gchar * mode, const change * changes,
    guint n_changes, run_log * log, gchar ** warning)
{
  gchar *desc = g_strdup_printf ("ditgenerate name=g num-chunks=%d "
      "anchor=latent lora-mode=%s ! video/x-dit-latent,width=4,height=4 ! "
      "fakesink", CHUNKS, mode);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstElement *g = gst_bin_get_by_name (GST_BIN (pipe), "g");
  GstPad *src = gst_element_get_static_pad (g, "src");
  GstBus *bus = gst_element_get_bus (pipe);
  gboolean done = FALSE;

  memset (log, 0, sizeof *log);
  log->changes = changes;
  log->n_changes = n_changes;
  if (warning)
    *warning = NULL;
  g_object_set (g, "lora", lora, NULL);
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER, record_chunk, log, NULL);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  while (!done) {
    GstMessage *m = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
        GST_MESSAGE_ERROR | GST_MESSAGE_EOS | GST_MESSAGE_WARNING);
    GError *err = NULL;
    gchar *dbg = NULL;

    fail_unless (m != NULL, "no EOS within 120 s");
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
      gst_message_parse_error (m, &err, &dbg);
      fail ("error: %s (%s)", err->message, dbg ? dbg : "");
    } else if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_WARNING) {
      gst_message_parse_warning (m, &err, &dbg);
      if (warning && !*warning)
        *warning = g_strdup_printf ("%s %s", err->message, dbg ? dbg : "");
      g_clear_error (&err);
      g_free (dbg);
    } else {
      done = TRUE;
    }
    gst_message_unref (m);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  fail_unless_equals_int (log->n, CHUNKS);
  gst_object_unref (bus);
  gst_object_unref (src);
  gst_object_unref (g);
  gst_object_unref (pipe);
  g_free (desc);
}

static void
log_clear (run_log * log)
{
  for (guint i = 0; i < CHUNKS; i++)
    if (log->chunk[i])
      g_byte_array_unref (log->chunk[i]);
}

static gboolean
same (const run_log * a, const run_log * b, guint k)
{
  return a->chunk[k]->len == b->chunk[k]->len
      && memcmp (a->chunk[k]->data, b->chunk[k]->data, a->chunk[k]->len) == 0;
}

/* Largest |a - b| / max |b| over chunk k. */
static gdouble
rel_diff (const run_log * a, const run_log * b, guint k)
{
  const gfloat *x = (const gfloat *) a->chunk[k]->data;
  const gfloat *y = (const gfloat *) b->chunk[k]->data;
  gsize n = b->chunk[k]->len / sizeof (gfloat);
  gdouble d = 0, m = 0;

  for (gsize i = 0; i < n; i++) {
    d = MAX (d, fabs ((gdouble) x[i] - y[i]));
    m = MAX (m, fabs ((gdouble) y[i]));
  }
  return m > 0 ? d / m : d;
}

GST_START_TEST (test_lora_strength_zero)
{
  run_log none, zero;

  run ("", "merge", NULL, 0, &none, NULL);
  run ("@synthetic:8:0", "merge", NULL, 0, &zero, NULL);
  for (guint k = 0; k < CHUNKS; k++)
    fail_unless (same (&zero, &none, k), "chunk %u: strength 0 differs from "
        "no LoRA", k);
  log_clear (&none);
  log_clear (&zero);
}

GST_END_TEST;

GST_START_TEST (test_lora_change_playing)
{
  const change set[] = { {1, "@synthetic:8:0.7"} };
  const change set_then_move[] = { {1, "@synthetic:8:0.7"},
  {2, "@synthetic:8:-0.4"}
  };
  run_log none, a, b;

  run ("", "merge", NULL, 0, &none, NULL);
  run ("", "merge", set, 1, &a, NULL);
  run ("", "merge", set_then_move, 2, &b, NULL);
  /* the list reaches the chunk after the one pushed when it was set */
  fail_unless (same (&a, &none, 0) && same (&a, &none, 1));
  fail_if (same (&a, &none, 2), "chunk 2 does not carry the new LoRA");
  /* a strength change likewise */
  for (guint k = 0; k < 3; k++)
    fail_unless (same (&b, &a, k), "chunk %u differs before the strength "
        "change", k);
  fail_if (same (&b, &a, 3), "chunk 3 does not carry the new strength");
  log_clear (&none);
  log_clear (&a);
  log_clear (&b);
}

GST_END_TEST;

GST_START_TEST (test_lora_live_equals_merge)
{
  run_log m, l, none;

  run ("@synthetic:8:0.7|@synthetic:4:-0.5", "merge", NULL, 0, &m, NULL);
  run ("@synthetic:8:0.7|@synthetic:4:-0.5", "live", NULL, 0, &l, NULL);
  run ("", "live", NULL, 0, &none, NULL);
  for (guint k = 0; k < CHUNKS; k++) {
    gdouble e = rel_diff (&l, &m, k);
    fail_unless (e < 1e-4, "chunk %u: live differs from merge by %g", k, e);
    /* and the LoRAs did something */
    fail_unless (rel_diff (&none, &m, k) > 1e-3, "chunk %u: no effect", k);
  }
  log_clear (&m);
  log_clear (&l);
  log_clear (&none);
}

GST_END_TEST;

GST_START_TEST (test_lora_bad_file_playing)
{
  const change bad[] = { {1, "/nonexistent/dir/style.safetensors:0.8"} };
  run_log kept, changed;
  gchar *warning;

  run ("@synthetic:8:0.5", "merge", NULL, 0, &kept, NULL);
  run ("@synthetic:8:0.5", "merge", bad, 1, &changed, &warning);
  fail_unless (warning && strstr (warning, "style.safetensors"), "warning: %s",
      warning ? warning : "(none)");
  /* the previous list stayed applied for every chunk */
  for (guint k = 0; k < CHUNKS; k++)
    fail_unless (same (&changed, &kept, k), "chunk %u changed", k);
  g_free (warning);
  log_clear (&kept);
  log_clear (&changed);
}

GST_END_TEST;

GST_START_TEST (test_lora_bad_file_start)
{
  GstElement *pipe = gst_parse_launch ("ditgenerate num-chunks=1 "
      "anchor=latent lora=/nonexistent/dir/style.safetensors ! fakesink",
      NULL);
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *m;
  GError *err = NULL;
  gchar *dbg = NULL;

  gst_element_set_state (pipe, GST_STATE_PLAYING);
  m = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  fail_unless (m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR,
      "no error for an unreadable LoRA at start");
  gst_message_parse_error (m, &err, &dbg);
  fail_unless (strstr (err->message, "style.safetensors") != NULL,
      "error: %s", err->message);
  g_error_free (err);
  g_free (dbg);
  gst_message_unref (m);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
}

GST_END_TEST;

static Suite *
lora_suite (void)
{
  Suite *s = suite_create ("ditlora");
  TCase *tc = tcase_create ("lora");

  dit_check_use_presets (NULL);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_lora_strength_zero);
  tcase_add_test (tc, test_lora_change_playing);
  tcase_add_test (tc, test_lora_live_equals_merge);
  tcase_add_test (tc, test_lora_bad_file_playing);
  tcase_add_test (tc, test_lora_bad_file_start);
  return s;
}

GST_CHECK_MAIN (lora);
