/* dit-prompt-switch — run a gst-launch style pipeline and change the
 * `prompt` of its ditgenerate while it plays (gst-launch-1.0 cannot change
 * a property on a timer).
 *
 *   dit-prompt-switch --every-chunks 4 "ditgenerate num-chunks=12
 *       prompt=\"a koi pond\" ! ditdecode ! videoconvert ! autovideosink"
 *       "a red fox" "a storm:0.5|a lighthouse:0.5"
 *
 * After every --every-chunks N chunks that leave the ditgenerate (counted
 * by a probe on its source pad), or every --every SECONDS of wall clock
 * (default 2 s), the next prompt is set on the first ditgenerate in the
 * pipeline (or the element named by --element).  Each change is printed
 * ("chunk K: prompt -> ..."), and so is the chunk at which a new prompt
 * takes effect ("chunk K: prompt N in effect", from the prompt epoch of
 * the chunk's GstDitLatentMeta), warnings (e.g. a prompt that is not valid
 * UTF-8) too.  Chunk counts hold whatever the machine's speed, which
 * seconds do not.  Runs until EOS or an error.
 * Exit status: 0 EOS, 1 pipeline error, 2 usage error.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gstditlatent.h"

typedef struct app {
  GMainLoop *loop;
  GstElement *pipe, *gen;
  char **prompts;
  int n_prompts, next;
  int every_chunks;
  gint chunks;                  /* chunks pushed so far (atomic) */
  /* the ditgenerate's streaming thread (the probe) */
  guint64 prompt_epoch;
  GType meta_api;
  int rc;
} app;

/* Main loop: the next prompt; FALSE when none is left. */
static gboolean
switch_prompt (gpointer user)
{
  app *a = user;

  if (a->next >= a->n_prompts)
    return G_SOURCE_REMOVE;
  g_print ("chunk %d: prompt -> \"%s\"\n", g_atomic_int_get (&a->chunks),
      a->prompts[a->next]);
  g_object_set (a->gen, "prompt", a->prompts[a->next], NULL);
  a->next++;
  return a->next < a->n_prompts ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean
switch_once (gpointer user)
{
  switch_prompt (user);
  return G_SOURCE_REMOVE;
}

/* Every chunk the ditgenerate pushes: a new prompt epoch in its meta is a
 * change in effect; every N chunks the main loop sets the next prompt. */
static GstPadProbeReturn
on_chunk (GstPad * pad, GstPadProbeInfo * info, gpointer user)
{
  app *a = user;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstDitLatentMeta *m;
  gint n;

  if (!a->meta_api)
    a->meta_api = g_type_from_name ("GstDitLatentMetaAPI");
  m = a->meta_api ? (GstDitLatentMeta *) gst_buffer_get_meta (buf,
      a->meta_api) : NULL;
  n = g_atomic_int_add (&a->chunks, 1) + 1;
  if (m && n > 1 && m->prompt_epoch != a->prompt_epoch)
    g_print ("chunk %d: prompt %" G_GUINT64_FORMAT " in effect\n", n - 1,
        m->prompt_epoch);
  if (m)
    a->prompt_epoch = m->prompt_epoch;
  if (a->every_chunks > 0 && n % a->every_chunks == 0)
    g_idle_add (switch_once, a);
  return GST_PAD_PROBE_OK;
}

static gboolean
on_message (GstBus * bus, GstMessage * m, gpointer user)
{
  app *a = user;
  switch (GST_MESSAGE_TYPE (m)) {
    case GST_MESSAGE_EOS:
      g_main_loop_quit (a->loop);
      break;
    case GST_MESSAGE_ERROR:{
      GError *err = NULL;
      gchar *dbg = NULL;
      gst_message_parse_error (m, &err, &dbg);
      g_printerr ("error: %s\n%s\n", err->message, dbg ? dbg : "");
      g_error_free (err);
      g_free (dbg);
      a->rc = 1;
      g_main_loop_quit (a->loop);
      break;
    }
    case GST_MESSAGE_WARNING:{
      GError *err = NULL;
      gst_message_parse_warning (m, &err, NULL);
      g_printerr ("warning: %s\n", err->message);
      g_error_free (err);
      break;
    }
    default:
      break;
  }
  return TRUE;
}

static GstElement *
find_ditgenerate (GstElement * pipe)
{
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (pipe));
  GValue v = G_VALUE_INIT;
  GstElement *found = NULL;
  while (!found && gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&v);
    GstElementFactory *f = gst_element_get_factory (e);
    if (f && strcmp (GST_OBJECT_NAME (f), "ditgenerate") == 0)
      found = gst_object_ref (e);
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);
  return found;
}

static void
usage (FILE *f)
{
  fprintf (f,
      "Usage: dit-prompt-switch [OPTIONS] PIPELINE PROMPT...\n"
      "\n"
      "Run PIPELINE (gst-launch-1.0 syntax) and set the next PROMPT on its\n"
      "ditgenerate while it plays; print each change and the chunk at which\n"
      "each new prompt takes effect.\n"
      "\n"
      "  --every-chunks N   change after every N chunks the ditgenerate made\n"
      "  --every SECONDS    change every SECONDS of wall clock (default 2,\n"
      "                     when --every-chunks is not given)\n"
      "  --element NAME     the ditgenerate named NAME (default: the first)\n"
      "  -h, --help         this help\n"
      "\n"
      "Exit status: 0 success (EOS), 1 pipeline error, 2 usage error.\n");
}

int
main (int argc, char **argv)
{
  app a = { 0 };
  double every = 2.0;
  const char *name = NULL;
  int i = 1;
  GError *err = NULL;
  GstPad *src;

  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp (argv[i], "-h") || !strcmp (argv[i], "--help")) {
      usage (stdout);
      return 0;
    } else if (!strcmp (argv[i], "--every") && i + 1 < argc) {
      every = atof (argv[++i]);
    } else if (!strcmp (argv[i], "--every-chunks") && i + 1 < argc) {
      a.every_chunks = atoi (argv[++i]);
      if (a.every_chunks <= 0) {
        fprintf (stderr, "dit-prompt-switch: --every-chunks %s: a positive "
            "number\n", argv[i]);
        return 2;
      }
    } else if (!strcmp (argv[i], "--element") && i + 1 < argc) {
      name = argv[++i];
    } else {
      usage (stderr);
      return 2;
    }
  }
  if (argc - i < 2 || every <= 0) {
    usage (stderr);
    return 2;
  }
  gst_init (NULL, NULL);
  a.pipe = gst_parse_launch (argv[i], &err);
  if (!a.pipe || err) {
    g_printerr ("pipeline: %s\n", err ? err->message : "?");
    g_clear_error (&err);
    if (a.pipe)
      gst_object_unref (a.pipe);
    return 2;
  }
  a.gen = name ? gst_bin_get_by_name (GST_BIN (a.pipe), name)
      : find_ditgenerate (a.pipe);
  if (!a.gen) {
    g_printerr ("no ditgenerate in the pipeline\n");
    gst_object_unref (a.pipe);
    return 2;
  }
  a.prompts = argv + i + 1;
  a.n_prompts = argc - i - 1;
  a.loop = g_main_loop_new (NULL, FALSE);
  GstBus *bus = gst_element_get_bus (a.pipe);
  gst_bus_add_watch (bus, on_message, &a);
  gst_object_unref (bus);
  src = gst_element_get_static_pad (a.gen, "src");
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER, on_chunk, &a, NULL);
  gst_object_unref (src);
  if (a.every_chunks == 0)
    g_timeout_add ((guint) (every * 1000), switch_prompt, &a);
  gst_element_set_state (a.pipe, GST_STATE_PLAYING);
  g_main_loop_run (a.loop);
  gst_element_set_state (a.pipe, GST_STATE_NULL);
  gst_object_unref (a.gen);
  gst_object_unref (a.pipe);
  g_main_loop_unref (a.loop);
  return a.rc;
}
