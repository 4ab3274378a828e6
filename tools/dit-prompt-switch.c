/* dit-prompt-switch — run a gst-launch style pipeline and change the
 * `prompt` of its ditgenerate while it plays (gst-launch-1.0 cannot change
 * a property on a timer).
 *
 *   dit-prompt-switch --every 2 "ditgenerate num-chunks=8 prompt=\"a koi pond\"
 *       ! ditdecode ! videoconvert ! autovideosink" "a red fox" "a storm:0.5|a lighthouse:0.5"
 *
 * Every --every seconds (default 2) the next prompt is set on the first
 * ditgenerate in the pipeline (or the element named by --element); each
 * change is printed, warnings (e.g. a prompt that is not valid UTF-8) too.
 * Runs until EOS or an error.  Exit status: 0 EOS, 1 pipeline error, 2 usage error.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct app {
  GMainLoop *loop;
  GstElement *pipe, *gen;
  char **prompts;
  int n_prompts, next;
  int rc;
} app;

static gboolean
switch_prompt (gpointer user)
{
  app *a = user;
  if (a->next >= a->n_prompts)
    return G_SOURCE_REMOVE;
  g_print ("prompt -> \"%s\"\n", a->prompts[a->next]);
  g_object_set (a->gen, "prompt", a->prompts[a->next], NULL);
  a->next++;
  return a->next < a->n_prompts ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
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
      "usage: dit-prompt-switch [--every SECONDS] [--element NAME] PIPELINE "
      "PROMPT...\n"
      "Run PIPELINE (gst-launch syntax) and set the next PROMPT on its\n"
      "ditgenerate every SECONDS (default 2).  Exit status: 0 EOS, 1 error,\n"
      "2 usage error.\n");
}

int
main (int argc, char **argv)
{
  app a = { 0 };
  double every = 2.0;
  const char *name = NULL;
  int i = 1;
  GError *err = NULL;

  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp (argv[i], "-h") || !strcmp (argv[i], "--help")) {
      usage (stdout);
      return 0;
    } else if (!strcmp (argv[i], "--every") && i + 1 < argc) {
      every = atof (argv[++i]);
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
  if (!a.pipe) {
    g_printerr ("pipeline: %s\n", err ? err->message : "?");
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
  g_timeout_add ((guint) (every * 1000), switch_prompt, &a);
  gst_element_set_state (a.pipe, GST_STATE_PLAYING);
  g_main_loop_run (a.loop);
  gst_element_set_state (a.pipe, GST_STATE_NULL);
  gst_object_unref (a.gen);
  gst_object_unref (a.pipe);
  g_main_loop_unref (a.loop);
  return a.rc;
}
