/* dit-serve — a live generation server: the dit elements in a pipeline,
 * fanned out to browsers over WebRTC with WHEP signalling, plus a viewer
 * page and a small JSON control API.  The reference for embedding gst-dit
 * in an application: pipeline.c builds and drives the graph, server.c is
 * the HTTP side, main.c only parses options and runs the main loop.
 *
 * Exit status: 0 after SIGINT/SIGTERM or the end of a finite source, 1 on
 * a runtime failure (pipeline error, port in use), 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>

#include <gio/gio.h>
#include <glib-unix.h>
#include <gst/gst.h>

#include "dit_loader.h"
#include "pipeline.h"
#include "server.h"

static gboolean
on_signal (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static gboolean
parse_size (const gchar * s, gint * w, gint * h)
{
  gchar *end;
  gint64 a, b;

  a = g_ascii_strtoll (s, &end, 10);
  if (end == s || (*end != 'x' && *end != 'X'))
    return FALSE;
  s = end + 1;
  b = g_ascii_strtoll (s, &end, 10);
  if (end == s || *end != '\0')
    return FALSE;
  if (a < 16 || b < 16 || a > 8192 || b > 8192 || a % 16 || b % 16)
    return FALSE;
  *w = (gint) a;
  *h = (gint) b;
  return TRUE;
}

/* The viewer page: installed copy first, then the source tree's. */
static gchar *
default_www_dir (void)
{
  const gchar *dirs[] = { DIT_SERVE_WWW_DIR, DIT_SERVE_SOURCE_WWW_DIR };

  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++) {
    gchar *index = g_build_filename (dirs[i], "index.html", NULL);
    gboolean ok = g_file_test (index, G_FILE_TEST_IS_REGULAR);
    g_free (index);
    if (ok)
      return g_strdup (dirs[i]);
  }
  return g_strdup (DIT_SERVE_WWW_DIR);
}

/* Without an installed plugin, use the one built next to this program. */
static void
ensure_plugin (void)
{
  GstElementFactory *f = gst_element_factory_find ("ditgenerate");

  if (f == NULL)
    gst_registry_scan_path (gst_registry_get (), DIT_SERVE_BUILD_PLUGIN_DIR);
  else
    gst_object_unref (f);
}

int
main (int argc, char **argv)
{
  DitServeConfig cfg = { 0 };
  gchar *bind = NULL, *www_dir = NULL, *size = NULL, *url;
  gint port = 8080;
  gint64 seed = 42;
  GOptionContext *ctx;
  GError *err = NULL;
  GMainLoop *loop;
  DitServePipeline *pipeline;
  DitServeServer *server;
  gint status;
  GOptionEntry entries[] = {
    {"bind", 'b', 0, G_OPTION_ARG_STRING, &bind,
        "Address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)",
        "ADDR"},
    {"port", 'p', 0, G_OPTION_ARG_INT, &port,
        "HTTP port (default 8080; 0 picks a free port, printed at start)",
        "PORT"},
    {"www-dir", 0, 0, G_OPTION_ARG_FILENAME, &www_dir,
        "Directory of the viewer page (default: the installed one)", "DIR"},
    {"source", 's', 0, G_OPTION_ARG_STRING, &cfg.source,
        "Video-to-video input: videotestsrc[:PATTERN] (live), "
          "camera[:/dev/videoN], pipeline:DESCRIPTION (a gst-launch fragment "
          "ending in an element that gives raw video, e.g. "
          "'pipeline:videotestsrc is-live=true ! capsfilter "
          "caps=video/x-raw,framerate=30/1'), a file or a URI (default: "
          "text-to-video)", "SRC"},
    {"model", 'm', 0, G_OPTION_ARG_STRING, &cfg.model,
        "DiT model: preset or checkpoint (default " DIT_DEFAULT_MODEL ")",
        "MODEL"},
    {"vae-model", 0, 0, G_OPTION_ARG_STRING, &cfg.vae_model,
        "VAE: preset or checkpoint (default " DIT_DEFAULT_VAE ")", "VAE"},
    {"text-model", 0, 0, G_OPTION_ARG_STRING, &cfg.text_model,
        "umT5 text encoder of the prompts: preset or checkpoint (default "
          DIT_DEFAULT_TEXT_MODEL ")", "MODEL"},
    {"decoder", 0, 0, G_OPTION_ARG_STRING, &cfg.decoder_model,
        "Display decoder: a TAEHV tiny decoder (taew2_1, lighttaew2_1, "
          "taehv-tiny or a converted checkpoint; default: the full VAE; the "
          "anchor stays the full VAE's)", "MODEL"},
    {"device", 'd', 0, G_OPTION_ARG_STRING, &cfg.device,
        "Backend device: cpu or cuda:N (default cpu)", "DEV"},
    {"steps", 0, 0, G_OPTION_ARG_STRING, &cfg.steps,
        "Denoising timesteps, e.g. 1000,750,500,250", "LIST"},
    {"size", 0, 0, G_OPTION_ARG_STRING, &size,
        "Frame size, multiples of 16 (default 64x64)", "WxH"},
    {"fps", 0, 0, G_OPTION_ARG_INT, &cfg.fps,
        "Frame rate (default 16)", "N"},
    {"seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Initial seed (default 42)",
        "N"},
    {"lora", 0, 0, G_OPTION_ARG_STRING, &cfg.lora,
        "LoRA adapters: PATH[:STRENGTH]|PATH[:STRENGTH]... (up to 8; POST "
          "/lora changes them while serving)", "LIST"},
    {"lora-mode", 0, 0, G_OPTION_ARG_STRING, &cfg.lora_mode,
        "merge (default: merged into the weights) or live (the low-rank "
          "term folded into each layer's GEMM)", "MODE"},
    {"encoder", 'e', 0, G_OPTION_ARG_STRING, &cfg.encoder,
        "H.264 encoder: auto (nvh264enc when present), x264, nvh264", "ENC"},
    {"bitrate", 0, 0, G_OPTION_ARG_INT, &cfg.bitrate_kbps,
        "Encoder bitrate in kbit/s (default 600)", "KBPS"},
    {"key-int", 0, 0, G_OPTION_ARG_INT, &cfg.key_int,
        "Frames between key frames (default 16)", "N"},
    {"rtmp", 0, 0, G_OPTION_ARG_STRING, &cfg.rtmp_url,
        "Also stream to this RTMP URL (rtmp://host/app/key)", "URL"},
    {"stun", 0, 0, G_OPTION_ARG_STRING, &cfg.stun_server,
        "STUN server, stun://host:port", "URL"},
    {"turn", 0, 0, G_OPTION_ARG_STRING_ARRAY, &cfg.turn_servers,
        "TURN server, turn(s)://user:pass@host:port (repeatable)", "URL"},
    {"ice-address", 0, 0, G_OPTION_ARG_STRING_ARRAY, &cfg.ice_addresses,
        "Offer ICE candidates only on this local address (repeatable; "
          "default every interface)", "ADDR"},
    {"ice-timeout", 0, 0, G_OPTION_ARG_INT, &cfg.ice_timeout_ms,
        "Milliseconds to wait for ICE gathering before answering "
          "(default 2000)", "MS"},
    {"max-viewers", 0, 0, G_OPTION_ARG_INT, &cfg.max_viewers,
        "Viewer limit; more get 503 (default 16)", "N"},
    {"connect-timeout", 0, 0, G_OPTION_ARG_INT, &cfg.connect_timeout_s,
        "Seconds a viewer may take to connect before it is dropped "
          "(default 30)", "S"},
    {"rtcp-timeout", 0, 0, G_OPTION_ARG_INT, &cfg.rtcp_timeout_s,
        "Seconds without RTCP from a connected viewer (a closed or crashed "
          "browser) before it is dropped (default 15; 0: never)", "S"},
    {NULL}
  };

  ctx = g_option_context_new ("- serve live generated video to browsers");
  g_option_context_set_summary (ctx,
      "Runs ditgenerate (text-to-video, or video-to-video from --source),\n"
      "encodes H.264 once and sends it to every viewer over WebRTC.\n"
      "Open the printed URL in a browser. HTTP API:\n"
      "  POST /whep (SDP offer -> answer), DELETE /whep/ID, GET /stats,\n"
      "  GET /health, POST /prompt {\"prompt\": TEXT} | {\"embeds\": PATH},\n"
      "  POST /seed {\"seed\": N}, GET|POST /lora {\"lora\": \"a.safetensors:0.8|...\"}.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  cfg.rtcp_timeout_s = G_MININT;        /* not given */
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("dit-serve: %s (see --help)\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (argc > 1) {
    g_printerr ("dit-serve: unexpected argument '%s' (see --help)\n", argv[1]);
    return 2;
  }
  cfg.width = cfg.height = 64;
  if (size && !parse_size (size, &cfg.width, &cfg.height)) {
    g_printerr ("dit-serve: --size '%s': use WxH, multiples of 16 from 16\n",
        size);
    return 2;
  }
  if (cfg.fps == 0)
    cfg.fps = 16;
  if (cfg.bitrate_kbps == 0)
    cfg.bitrate_kbps = 600;
  if (cfg.key_int == 0)
    cfg.key_int = 16;
  if (cfg.ice_timeout_ms == 0)
    cfg.ice_timeout_ms = 2000;
  if (cfg.max_viewers == 0)
    cfg.max_viewers = 16;
  if (cfg.connect_timeout_s == 0)
    cfg.connect_timeout_s = 30;
  if (cfg.rtcp_timeout_s == G_MININT)
    cfg.rtcp_timeout_s = 15;
  if (port < 0 || port > 65535 || cfg.fps < 1 || cfg.fps > 240
      || cfg.bitrate_kbps < 0 || cfg.key_int < 0 || cfg.ice_timeout_ms < 0
      || cfg.max_viewers < 0 || cfg.connect_timeout_s < 0
      || cfg.rtcp_timeout_s < 0 || seed < 0) {
    g_printerr ("dit-serve: out-of-range option: port 0..65535, fps 1..240, "
        "counts and times positive, seed >= 0\n");
    return 2;
  }
  for (gchar ** a = cfg.ice_addresses; a && *a; a++) {
    GInetAddress *addr = g_inet_address_new_from_string (*a);
    if (addr == NULL) {
      g_printerr ("dit-serve: --ice-address '%s' is not an IP address\n", *a);
      return 2;
    }
    g_object_unref (addr);
  }
  cfg.seed = (guint64) seed;
  if (cfg.device == NULL)
    cfg.device = g_strdup ("cpu");
  if (bind == NULL)
    bind = g_strdup ("127.0.0.1");
  if (www_dir == NULL)
    www_dir = default_www_dir ();

  ensure_plugin ();
  loop = g_main_loop_new (NULL, FALSE);
  pipeline = dit_serve_pipeline_new (&cfg, loop, &err);
  if (pipeline == NULL) {
    /* A bad option value (e.g. --source) is a usage error. */
    gint code = g_error_matches (err, DIT_SERVE_ERROR,
        DIT_SERVE_ERROR_BAD_REQUEST) ? 2 : 1;
    g_printerr ("dit-serve: %s\n", err->message);
    return code;
  }
  server = dit_serve_server_new (pipeline, www_dir, &err);
  if (server == NULL) {
    g_printerr ("dit-serve: %s\n", err->message);
    dit_serve_pipeline_free (pipeline);
    return 2;
  }
  url = dit_serve_server_listen (server, bind, (guint) port, &err);
  if (url == NULL) {
    g_printerr ("dit-serve: cannot listen on %s:%d: %s\n", bind, port,
        err->message);
    dit_serve_server_free (server);
    dit_serve_pipeline_free (pipeline);
    return 1;
  }
  if (!dit_serve_pipeline_start (pipeline, &err)) {
    g_printerr ("dit-serve: %s\n", err->message);
    dit_serve_server_free (server);
    dit_serve_pipeline_free (pipeline);
    return 1;
  }
  /* Scripts wait for this line to learn the port. */
  g_print ("dit-serve: listening on %s\n", url);
  fflush (stdout);
  g_free (url);

  g_unix_signal_add (SIGINT, on_signal, loop);
  g_unix_signal_add (SIGTERM, on_signal, loop);
  g_main_loop_run (loop);

  status = dit_serve_pipeline_exit_status (pipeline);
  dit_serve_pipeline_free (pipeline);
  dit_serve_server_free (server);
  g_main_loop_unref (loop);
  g_free (bind);
  g_free (www_dir);
  g_free (size);
  g_free (cfg.source);
  g_free (cfg.model);
  g_free (cfg.vae_model);
  g_free (cfg.text_model);
  g_free (cfg.decoder_model);
  g_free (cfg.device);
  g_free (cfg.steps);
  g_free (cfg.encoder);
  g_free (cfg.rtmp_url);
  g_free (cfg.stun_server);
  g_strfreev (cfg.turn_servers);
  g_strfreev (cfg.ice_addresses);
  g_print ("dit-serve: stopped\n");
  return status;
}
